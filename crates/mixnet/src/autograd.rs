//! Autograd (MXNet's `mx.autograd`): recording operations on a tape, and back-propagation.
//!
//! While recording, every `invoke` attaches a tape node to its outputs: the operator and its
//! input entries, the same shape a graph node has, so a recorded region can become a graph.
//! `backward` walks the nodes from the heads, calls each operator's gradient (defined once,
//! in terms of operators, so it runs on the engine like any other work) and accumulates into
//! the variables' gradient buffers according to their `grad_req`.
//!
//! Versions make mutation safe: each node remembers the engine-var version of every array
//! it saved; if one was written in place afterwards, `backward` fails naming the operator
//! and the array instead of returning a silently wrong gradient.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::imperative::Outputs;
use crate::op::{Blob, GradContext, OpContext, Operator, TensorInfo};
use crate::{imperative, Error, NDArray, Result};

thread_local! {
    static TRAINING: Cell<bool> = const { Cell::new(false) };
    static RECORDING: Cell<bool> = const { Cell::new(false) };
}

/// Whether operators run in training mode on this thread (Dropout, BatchNorm).
pub fn is_training() -> bool {
    TRAINING.with(Cell::get)
}

/// Set training mode on this thread; returns the previous value (MXNet's `set_training`).
pub fn set_training(train: bool) -> bool {
    TRAINING.with(|t| t.replace(train))
}

/// Whether operations are being recorded on this thread.
pub fn is_recording() -> bool {
    RECORDING.with(Cell::get)
}

/// Turn recording on or off; returns the previous value (MXNet's `set_recording`).
pub fn set_recording(recording: bool) -> bool {
    RECORDING.with(|r| r.replace(recording))
}

/// Restores the recording and training flags when dropped.
#[must_use = "the scope ends when the guard is dropped"]
pub struct ScopeGuard {
    recording: Option<bool>,
    training: Option<bool>,
}

impl Drop for ScopeGuard {
    fn drop(&mut self) {
        if let Some(r) = self.recording {
            set_recording(r);
        }
        if let Some(t) = self.training {
            set_training(t);
        }
    }
}

/// Record operations until the guard drops (MXNet's `with autograd.record(train_mode)`).
pub fn record(train_mode: bool) -> ScopeGuard {
    ScopeGuard { recording: Some(set_recording(true)), training: Some(set_training(train_mode)) }
}

/// Stop recording until the guard drops (MXNet's `with autograd.pause(train_mode)`).
pub fn pause(train_mode: bool) -> ScopeGuard {
    ScopeGuard { recording: Some(set_recording(false)), training: Some(set_training(train_mode)) }
}

/// Training mode until the guard drops, recording unchanged.
pub fn train_mode() -> ScopeGuard {
    ScopeGuard { recording: None, training: Some(set_training(true)) }
}

/// Inference mode until the guard drops, recording unchanged.
pub fn predict_mode() -> ScopeGuard {
    ScopeGuard { recording: None, training: Some(set_training(false)) }
}

/// How a variable's gradient buffer is updated by `backward` (MXNet's `grad_req`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GradReq {
    /// Overwrite with each backward.
    Write,
    /// Accumulate; the user zeroes the buffer (Gluon's `zero_grad`).
    Add,
    /// No gradient.
    Null,
}

impl GradReq {
    /// Parse MXNet's spelling: `write`, `add`, `null`.
    pub fn parse(s: &str) -> Result<GradReq> {
        match s {
            "write" => Ok(GradReq::Write),
            "add" => Ok(GradReq::Add),
            "null" => Ok(GradReq::Null),
            _ => Err(Error::Invalid(format!("grad_req '{s}' is not one of write, add, null"))),
        }
    }
}

/// A point of the recorded graph: output `index` of `node`.
#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) node: Arc<Node>,
    pub(crate) index: usize,
}

/// A tape node: a marked variable, or one recorded operator call.
pub(crate) enum Node {
    Variable { grad: NDArray, req: GradReq },
    Op(OpNode),
}

pub(crate) struct OpNode {
    op: Arc<dyn Operator>,
    train: bool,
    /// Released after a backward that does not retain the graph.
    saved: Mutex<Option<Saved>>,
}

struct Saved {
    /// Inputs as called (values) with their tape entries (None: a constant).
    inputs: Vec<NDArray>,
    entries: Vec<Option<Entry>>,
    /// Outputs without their entries (an output holding its own node would be a cycle).
    outputs: Vec<NDArray>,
    /// Pushed-write counts of inputs and outputs when recorded.
    versions: Vec<u64>,
}

/// Record one operator call whose outputs were just created; returns the outputs with
/// their tape entries attached. Called by `invoke` while recording.
pub(crate) fn record_op<A: AsRef<NDArray>>(
    op: &Arc<dyn Operator>,
    inputs: &[A],
    outputs: Outputs,
) -> Outputs {
    let entries: Vec<Option<Entry>> = inputs.iter().map(|x| x.as_ref().ag_entry()).collect();
    if entries.iter().all(Option::is_none) {
        return outputs; // nothing upstream needs a gradient: a constant result
    }
    let versions = inputs.iter().map(AsRef::as_ref).chain(outputs.iter()).map(NDArray::write_count).collect();
    let node = Arc::new(Node::Op(OpNode {
        op: op.clone(),
        train: is_training(),
        saved: Mutex::new(Some(Saved {
            inputs: inputs.iter().map(|x| x.as_ref().without_entry()).collect(),
            entries,
            outputs: outputs.iter().map(NDArray::without_entry).collect(),
            versions,
        })),
    }));
    outputs
        .into_iter()
        .enumerate()
        .map(|(index, o)| o.with_entry(Entry { node: node.clone(), index }))
        .collect()
}

/// Mark `array` as a variable with a zeroed gradient buffer (MXNet's `attach_grad`).
pub(crate) fn attach_grad(array: &NDArray, req: GradReq) -> Result<()> {
    let grad = NDArray::zeros(array.shape().clone(), array.dtype(), array.context())?;
    array.set_variable(Arc::new(Node::Variable { grad, req }));
    Ok(())
}

fn ones_like(x: &NDArray) -> Result<NDArray> {
    NDArray::full(x.shape().clone(), 1.0, x.dtype(), x.context())
}

fn zeros_like(x: &NDArray) -> Result<NDArray> {
    NDArray::zeros(x.shape().clone(), x.dtype(), x.context())
}

fn add(a: &NDArray, b: &NDArray) -> Result<NDArray> {
    Ok(imperative::invoke("elemwise_add", &[a.clone(), b.clone()], &[])?.remove(0))
}

/// Key of a node in maps: its address (nodes live as long as the walk holds them).
fn key(node: &Arc<Node>) -> usize {
    Arc::as_ptr(node) as usize
}

/// Back-propagate from `heads` (MXNet's `autograd.backward`) into the gradient buffers of
/// the variables, then free the tape. `head_grads` empty means ones. Each recorded call's
/// gradient runs in the training mode the call was recorded in. [`backward_with`] keeps
/// the tape (`retain_graph`) or forces a training mode.
pub fn backward(heads: &[NDArray], head_grads: &[NDArray]) -> Result<()> {
    let opts = Options { retain_graph: false, create_graph: false, train_mode: None };
    let grads = run_backward(heads, head_grads, opts, None)?;
    debug_assert!(grads.is_empty());
    Ok(())
}

/// MXNet's full `autograd.backward(heads, head_grads, retain_graph, train_mode)`: the
/// gradients run in `train_mode` (what Dropout's and BatchNorm's gradients consult).
pub fn backward_with(
    heads: &[NDArray],
    head_grads: &[NDArray],
    retain_graph: bool,
    train_mode: bool,
) -> Result<()> {
    let opts = Options { retain_graph, create_graph: false, train_mode: Some(train_mode) };
    run_backward(heads, head_grads, opts, None).map(drop)
}

/// Gradients of `heads` with respect to `variables`, returned instead of written to the
/// variables' buffers (MXNet's `autograd.grad`). The variables must be marked
/// (`attach_grad`/`mark_variables`). With `create_graph` the backward computation is
/// itself recorded, so the returned gradients can be differentiated again (higher-order
/// gradients); MXNet's default for `retain_graph` is then `true`.
pub fn grad(
    heads: &[NDArray],
    variables: &[NDArray],
    head_grads: &[NDArray],
    retain_graph: bool,
    create_graph: bool,
) -> Result<Vec<NDArray>> {
    let opts = Options { retain_graph, create_graph, train_mode: None };
    run_backward(heads, head_grads, opts, Some(variables))
}

/// [`grad`] with the training mode of the backward pass given (MXNet's `train_mode`).
pub fn grad_with(
    heads: &[NDArray],
    variables: &[NDArray],
    head_grads: &[NDArray],
    retain_graph: bool,
    create_graph: bool,
    train_mode: bool,
) -> Result<Vec<NDArray>> {
    let opts = Options { retain_graph, create_graph, train_mode: Some(train_mode) };
    run_backward(heads, head_grads, opts, Some(variables))
}

/// Mark `variables` with caller-provided gradient buffers and requests (MXNet's
/// `autograd.mark_variables`); `attach_grad` is the one-array form with a fresh buffer.
pub fn mark_variables(variables: &[NDArray], gradients: &[NDArray], grad_reqs: &[GradReq]) -> Result<()> {
    if variables.len() != gradients.len() || (grad_reqs.len() != variables.len() && grad_reqs.len() != 1) {
        return Err(Error::Invalid(format!(
            "mark_variables: {} variables, {} gradients and {} grad_reqs (need equal counts, or one grad_req for all)",
            variables.len(),
            gradients.len(),
            grad_reqs.len()
        )));
    }
    for (i, (v, g)) in variables.iter().zip(gradients).enumerate() {
        if v.shape() != g.shape() || v.dtype() != g.dtype() || v.context() != g.context() {
            return Err(Error::Invalid(format!(
                "mark_variables: variable {i} is {} {} on {} but its gradient buffer is {} {} on {}",
                v.shape(),
                v.dtype(),
                v.context(),
                g.shape(),
                g.dtype(),
                g.context()
            )));
        }
    }
    for (i, (v, g)) in variables.iter().zip(gradients).enumerate() {
        let req = grad_reqs[if grad_reqs.len() == 1 { 0 } else { i }];
        v.set_variable(Arc::new(Node::Variable { grad: g.without_entry(), req }));
    }
    Ok(())
}

#[derive(Clone, Copy)]
struct Options {
    retain_graph: bool,
    create_graph: bool,
    /// None: each call's gradient runs in the mode it was recorded in.
    train_mode: Option<bool>,
}

fn run_backward(
    heads: &[NDArray],
    head_grads: &[NDArray],
    opts: Options,
    wanted: Option<&[NDArray]>,
) -> Result<Vec<NDArray>> {
    if !head_grads.is_empty() && head_grads.len() != heads.len() {
        return Err(Error::Invalid(format!(
            "backward: {} head gradients for {} heads",
            head_grads.len(),
            heads.len()
        )));
    }
    // Recording stays on while the gradients run when they are to be differentiated again.
    let _scope = ScopeGuard {
        recording: Some(set_recording(opts.create_graph)),
        training: Some(set_training(opts.train_mode.unwrap_or_else(is_training))),
    };
    let retain_graph = opts.retain_graph || opts.create_graph;
    // Seed: gradient of each head's entry.
    let mut pending: HashMap<usize, Vec<Option<NDArray>>> = HashMap::new();
    let mut nodes: HashMap<usize, Arc<Node>> = HashMap::new();
    let mut roots = Vec::new();
    for (i, h) in heads.iter().enumerate() {
        let entry = h.ag_entry().ok_or_else(|| {
            Error::Invalid(format!(
                "backward: head {i} ({} {}) was not computed from a variable while recording \
                 (call attach_grad on the inputs and run the forward pass inside autograd::record)",
                h.shape(),
                h.dtype()
            ))
        })?;
        let g = match head_grads.get(i) {
            Some(g) => g.clone(),
            None => ones_like(h)?,
        };
        accumulate(&mut pending, &entry, g)?;
        nodes.insert(key(&entry.node), entry.node.clone());
        roots.push(entry.node);
    }
    // Reverse topological order by depth-first post-order over recorded inputs.
    let order = topo_order(&roots)?;
    for node in order.iter().rev() {
        let Node::Op(op_node) = node.as_ref() else { continue };
        let Some(out_grads) = pending.remove(&key(node)) else { continue };
        let mut saved_guard = op_node.saved.lock();
        let saved = saved_guard.as_ref().ok_or_else(|| {
            Error::op(
                op_node.op.name(),
                "the graph was freed by an earlier backward; pass retain_graph=true to backward twice",
            )
        })?;
        check_versions(op_node, saved)?;
        let out_grads: Vec<NDArray> = out_grads
            .into_iter()
            .zip(&saved.outputs)
            .map(|(g, o)| g.map_or_else(|| zeros_like(o), Ok))
            .collect::<Result<_>>()?;
        // For a recorded backward the saved arrays take their places on the tape again, so
        // the gradient's own dependence on them is recorded.
        let (inputs, outputs);
        let (inputs, outputs) = if opts.create_graph {
            inputs = saved
                .inputs
                .iter()
                .zip(&saved.entries)
                .map(|(x, e)| match e {
                    Some(e) => x.clone().with_entry(e.clone()),
                    None => x.clone(),
                })
                .collect::<Vec<_>>();
            outputs = saved
                .outputs
                .iter()
                .enumerate()
                .map(|(index, y)| y.clone().with_entry(Entry { node: node.clone(), index }))
                .collect::<Vec<_>>();
            (&inputs[..], &outputs[..])
        } else {
            (&saved.inputs[..], &saved.outputs[..])
        };
        let prev_train = opts.train_mode.is_none().then(|| set_training(op_node.train));
        let needs_grad: Vec<bool> = saved.entries.iter().map(Option::is_some).collect();
        let ctx = GradContext { inputs, outputs, out_grads: &out_grads, needs_grad: &needs_grad };
        let in_grads = op_node.op.gradient(&ctx);
        if let Some(t) = prev_train {
            set_training(t);
        }
        let in_grads = in_grads?;
        if in_grads.len() != saved.entries.len() {
            return Err(Error::op(
                op_node.op.name(),
                format!("gradient returned {} arrays for {} inputs", in_grads.len(), saved.entries.len()),
            ));
        }
        for ((entry, g), x) in saved.entries.iter().zip(in_grads).zip(&saved.inputs) {
            if let (Some(entry), Some(g)) = (entry, g) {
                if g.shape() != x.shape() {
                    return Err(Error::op(
                        op_node.op.name(),
                        format!("gradient of shape {} for an input of shape {}", g.shape(), x.shape()),
                    ));
                }
                nodes.entry(key(&entry.node)).or_insert_with(|| entry.node.clone());
                accumulate(&mut pending, entry, g)?;
            }
        }
        if !retain_graph {
            *saved_guard = None;
        }
    }
    // What is left in `pending` are variables.
    if let Some(vars) = wanted {
        return vars
            .iter()
            .map(|v| {
                let entry = v.ag_entry().filter(|e| matches!(e.node.as_ref(), Node::Variable { .. }));
                let entry = entry
                    .ok_or_else(|| Error::Invalid("grad: a variable has no attached gradient".into()))?;
                match pending.get(&key(&entry.node)).and_then(|g| g[0].clone()) {
                    Some(g) => Ok(g),
                    None => zeros_like(v),
                }
            })
            .collect();
    }
    let _pause = pause(is_training());
    for (k, grads) in pending {
        let Some(node) = nodes.get(&k) else { continue };
        if let (Node::Variable { grad, req }, Some(Some(g))) = (node.as_ref(), grads.into_iter().next()) {
            match req {
                GradReq::Null => {}
                GradReq::Write => grad.assign_from(g)?,
                GradReq::Add => grad.assign_from(add(grad, &g)?)?,
            }
        }
    }
    Ok(Vec::new())
}

fn accumulate(pending: &mut HashMap<usize, Vec<Option<NDArray>>>, entry: &Entry, g: NDArray) -> Result<()> {
    let n_out = match entry.node.as_ref() {
        Node::Variable { .. } => 1,
        Node::Op(op) => op.op.num_outputs(),
    };
    let slots = pending.entry(key(&entry.node)).or_insert_with(|| vec![None; n_out]);
    let slot = slots
        .get_mut(entry.index)
        .ok_or_else(|| Error::Invalid(format!("backward: output {} out of range", entry.index)))?;
    *slot = Some(match slot.take() {
        Some(prev) => add(&prev, &g)?,
        None => g,
    });
    Ok(())
}

fn topo_order(roots: &[Arc<Node>]) -> Result<Vec<Arc<Node>>> {
    let mut order = Vec::new();
    let mut seen: HashMap<usize, bool> = HashMap::new();
    // Iterative DFS: (node, children pushed?)
    let mut stack: Vec<(Arc<Node>, bool)> = roots.iter().map(|r| (r.clone(), false)).collect();
    while let Some((node, expanded)) = stack.pop() {
        let k = key(&node);
        if expanded {
            order.push(node);
            continue;
        }
        if seen.insert(k, true).is_some() {
            continue;
        }
        stack.push((node.clone(), true));
        if let Node::Op(op) = node.as_ref() {
            if let Some(saved) = op.saved.lock().as_ref() {
                for e in saved.entries.iter().flatten() {
                    if !seen.contains_key(&key(&e.node)) {
                        stack.push((e.node.clone(), false));
                    }
                }
            }
        }
    }
    Ok(order)
}

fn check_versions(op_node: &OpNode, saved: &Saved) -> Result<()> {
    for (i, (a, &v)) in saved.inputs.iter().chain(&saved.outputs).zip(&saved.versions).enumerate() {
        if a.write_count() != v {
            let what = if i < saved.inputs.len() {
                format!("input {i}")
            } else {
                format!("output {}", i - saved.inputs.len())
            };
            return Err(Error::op(
                op_node.op.name(),
                format!(
                    "{what} of shape {} {} was modified in place after it was recorded \
                     (write count {v} -> {}); its gradient would be wrong",
                    a.shape(),
                    a.dtype(),
                    a.write_count()
                ),
            ));
        }
    }
    Ok(())
}

/// A differentiable function written by the user (MXNet's `autograd.Function`): `forward`
/// computes outputs from inputs with recording paused, `backward` maps the outputs'
/// gradients to the inputs' gradients. Call it with [`apply`]; under [`record`] the call
/// becomes one tape node whose gradient is `backward`.
///
/// Arrays `forward` needs again in `backward` go into `saved` (MXNet's
/// `save_for_backward`); `backward` receives them in the same order.
pub trait Function: Send + Sync + 'static {
    /// Name shown in errors (MXNet records these calls as `_CustomFunction`).
    fn name(&self) -> &'static str {
        "_CustomFunction"
    }

    /// Outputs from `inputs`. Runs with recording paused.
    fn forward(&self, inputs: &[NDArray], saved: &mut Vec<NDArray>) -> Result<Vec<NDArray>>;

    /// One gradient per input (same shape), from one gradient per output.
    fn backward(&self, saved: &[NDArray], out_grads: &[NDArray]) -> Result<Vec<NDArray>>;
}

/// The tape's view of one [`Function`] call.
struct FunctionNode {
    f: Arc<dyn Function>,
    saved: Vec<NDArray>,
    num_inputs: usize,
    num_outputs: usize,
}

impl Operator for FunctionNode {
    fn name(&self) -> &'static str {
        self.f.name()
    }
    fn num_inputs(&self) -> usize {
        self.num_inputs
    }
    fn num_outputs(&self) -> usize {
        self.num_outputs
    }
    fn infer(&self, _inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        Err(Error::op(self.name(), "a recorded Function call cannot be invoked as an operator"))
    }
    fn compute(&self, _: &OpContext, _: &mut [Blob<'_>], _: &mut [Blob<'_>]) -> Result<()> {
        Err(Error::op(self.name(), "a recorded Function call cannot be invoked as an operator"))
    }
    fn has_gradient(&self) -> bool {
        true
    }
    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let grads = self.f.backward(&self.saved, ctx.out_grads)?;
        if grads.len() != self.num_inputs {
            return Err(Error::op(
                self.name(),
                format!("backward returned {} gradients for {} inputs", grads.len(), self.num_inputs),
            ));
        }
        Ok(grads.into_iter().map(Some).collect())
    }
}

/// Call a user [`Function`] on `inputs`: run its forward with recording paused and, while
/// recording, record the call so `backward` reaches the inputs through `Function::backward`.
pub fn apply(f: Arc<dyn Function>, inputs: &[NDArray]) -> Result<Vec<NDArray>> {
    let mut saved = Vec::new();
    let outputs = {
        let _p = pause(is_training());
        f.forward(inputs, &mut saved)?
    };
    if !is_recording() {
        return Ok(outputs);
    }
    // Fresh handles: an output that is an input itself must not take over its entry.
    let outputs: Outputs = outputs.iter().map(NDArray::without_entry).collect();
    let node: Arc<dyn Operator> = Arc::new(FunctionNode {
        f,
        saved: saved.iter().map(NDArray::without_entry).collect(),
        num_inputs: inputs.len(),
        num_outputs: outputs.len(),
    });
    Ok(record_op(&node, inputs, outputs).into_vec())
}
