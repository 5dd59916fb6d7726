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
use crate::op::{GradContext, Operator};
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
pub(crate) fn record_op(op: &Arc<dyn Operator>, inputs: &[NDArray], outputs: Outputs) -> Outputs {
    let entries: Vec<Option<Entry>> = inputs.iter().map(NDArray::ag_entry).collect();
    if entries.iter().all(Option::is_none) {
        return outputs; // nothing upstream needs a gradient: a constant result
    }
    let versions = inputs.iter().chain(outputs.iter()).map(NDArray::write_count).collect();
    let node = Arc::new(Node::Op(OpNode {
        op: op.clone(),
        train: is_training(),
        saved: Mutex::new(Some(Saved {
            inputs: inputs.iter().map(NDArray::without_entry).collect(),
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

/// Back-propagate from `heads` (MXNet's `autograd.backward`). `head_grads` empty means
/// ones; `retain_graph` keeps the tape for another backward.
pub fn backward(heads: &[NDArray], head_grads: &[NDArray], retain_graph: bool) -> Result<()> {
    let grads = run_backward(heads, head_grads, retain_graph, None)?;
    debug_assert!(grads.is_empty());
    Ok(())
}

/// Gradients of `heads` with respect to `variables`, returned instead of written to the
/// variables' buffers (MXNet's `autograd.grad` without `create_graph`).
pub fn grad(
    heads: &[NDArray],
    variables: &[NDArray],
    head_grads: &[NDArray],
    retain_graph: bool,
) -> Result<Vec<NDArray>> {
    run_backward(heads, head_grads, retain_graph, Some(variables))
}

fn run_backward(
    heads: &[NDArray],
    head_grads: &[NDArray],
    retain_graph: bool,
    wanted: Option<&[NDArray]>,
) -> Result<Vec<NDArray>> {
    if !head_grads.is_empty() && head_grads.len() != heads.len() {
        return Err(Error::Invalid(format!(
            "backward: {} head gradients for {} heads",
            head_grads.len(),
            heads.len()
        )));
    }
    let _pause = pause(is_training());
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
        let prev_train = set_training(op_node.train);
        let ctx = GradContext { inputs: &saved.inputs, outputs: &saved.outputs, out_grads: &out_grads };
        let in_grads = op_node.op.gradient(&ctx);
        set_training(prev_train);
        let in_grads = in_grads?;
        for (entry, g) in saved.entries.iter().zip(in_grads) {
            if let (Some(entry), Some(g)) = (entry, g) {
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
    for (k, grads) in pending {
        let Some(node) = nodes.get(&k) else { continue };
        if let (Node::Variable { grad, req }, Some(Some(g))) = (node.as_ref(), grads.into_iter().next()) {
            match req {
                GradReq::Null => {}
                GradReq::Write => grad.assign(&g)?,
                GradReq::Add => grad.assign(&add(grad, &g)?)?,
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
