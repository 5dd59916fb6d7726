//! Eager execution: `invoke` an operator by MXNet name on NDArrays.
//!
//! Attribute parsing, shape and dtype inference and output allocation happen here, on the
//! caller's thread, so a mistake comes back at once as an `Err` naming the operator and
//! the input shapes. The kernel runs as an engine operation reading the inputs' vars and
//! writing the outputs' vars: at once on the calling thread when those vars are idle,
//! otherwise queued behind the work it depends on.

use std::sync::Arc;

use mixnet_engine::OpProps;
use smallvec::SmallVec;

use crate::op::{registry, Attrs, OpContext, Operator, Resource, TensorInfo};
use crate::{Error, NDArray, Result};

/// Outputs of one call; almost every operator has one or two.
pub(crate) type Outputs = SmallVec<[NDArray; 2]>;

/// Below this many output elements a queued op is marked light: when the engine makes it
/// ready it runs on the thread that completed its dependency instead of waking a worker.
const LIGHT_NUMEL: usize = 1 << 15;

/// Run operator `op` (MXNet name or alias) on `inputs` with MXNet-style string attributes.
pub fn invoke(op: &str, inputs: &[NDArray], attrs: &[(&str, &str)]) -> Result<Vec<NDArray>> {
    let operator = create(op, attrs)?;
    invoke_operator(&operator, inputs)
}

/// Parse attributes and configure operator `op`.
pub fn create(op: &str, attrs: &[(&str, &str)]) -> Result<Arc<dyn Operator>> {
    let def = registry()
        .get(op)
        .ok_or_else(|| Error::op(op, "no such operator registered (names are MXNet's, case-sensitive)"))?;
    let mut a = Attrs::new(def.name, attrs);
    let operator = (def.build)(def.name, &mut a)?;
    a.finish()?;
    Ok(operator)
}

fn describe(inputs: &[TensorInfo]) -> String {
    inputs.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
}

/// Add the input shapes and dtypes to an operator's inference error.
fn with_inputs(e: Error, name: &str, inputs: &[TensorInfo]) -> Error {
    match e {
        Error::Operator { op, msg } => {
            Error::Operator { op, msg: format!("{msg} (inputs: {})", describe(inputs)) }
        }
        other => Error::op(name, format!("{other} (inputs: {})", describe(inputs))),
    }
}

/// Run a configured operator on `inputs`.
pub fn invoke_operator(op: &Arc<dyn Operator>, inputs: &[NDArray]) -> Result<Vec<NDArray>> {
    invoke_operator_small(op, inputs).map(SmallVec::into_vec)
}

/// [`invoke_operator`] without the `Vec`: the hot path of Rust operators and methods.
/// Inputs may be borrowed (`&[&a, &b]`), which spares `&a + &b` two reference-count round
/// trips (four atomics) on a path that costs about half a microsecond in all.
pub(crate) fn invoke_operator_small<A: AsRef<NDArray>>(
    op: &Arc<dyn Operator>,
    inputs: &[A],
) -> Result<Outputs> {
    let refs: SmallVec<[&NDArray; 4]> = inputs.iter().map(AsRef::as_ref).collect();
    invoke_refs(op, &refs)
}

fn invoke_refs(op: &Arc<dyn Operator>, inputs: &[&NDArray]) -> Result<Outputs> {
    let name = op.name();
    // Plain push loops: SmallVec's generic `extend` costs more than the work on this path.
    let mut infos: SmallVec<[TensorInfo; 4]> = SmallVec::new();
    for x in inputs {
        infos.push(TensorInfo { shape: x.shape().clone(), dtype: x.dtype() });
    }
    if inputs.len() != op.num_inputs() {
        return Err(Error::op(
            name,
            format!(
                "expects {} input(s) ({}), got {} ({})",
                op.num_inputs(),
                op.input_names().join(", "),
                inputs.len(),
                describe(&infos)
            ),
        ));
    }
    let ctx = inputs.first().map(|x| x.context()).unwrap_or_default();
    if let Some(x) = inputs.iter().find(|x| x.context() != ctx) {
        return Err(Error::op(name, format!("inputs on different devices: {ctx} and {}", x.context())));
    }
    let out_infos = match op.infer_from_values(inputs) {
        Some(r) => r.map(SmallVec::from_vec),
        None => op.infer_small(&infos),
    }
    .map_err(|e| with_inputs(e, name, &infos))?;
    let mut outputs = Outputs::new();
    for i in out_infos {
        outputs.push(NDArray::empty(i.shape, i.dtype, ctx)?);
    }

    let mutated = op.mutate_inputs();
    for &m in mutated {
        for (j, x) in inputs.iter().enumerate() {
            if j != m && x.overlaps(inputs[m]) {
                return Err(Error::op(
                    name,
                    format!("input {m} is written by the operator and also passed as input {j}"),
                ));
            }
        }
    }
    // The vars are borrowed from the arrays until the op is pushed or has run.
    {
        let mut reads: SmallVec<[&mixnet_engine::Var; 4]> = SmallVec::new();
        for x in inputs {
            reads.push(x.var());
        }
        let mut created: SmallVec<[&mixnet_engine::Var; 2]> = SmallVec::new();
        for x in &outputs {
            created.push(x.var());
        }
        let mut writes: SmallVec<[&mixnet_engine::Var; 4]> = SmallVec::new();
        for &m in mutated {
            writes.push(inputs[m].var());
        }
        if op.resources().contains(&Resource::Random) {
            // Ops drawing from the context's generator serialize on it, as in MXNet.
            writes.push(crate::resource::random_var(ctx));
        }

        let light = outputs.iter().map(NDArray::size).sum::<usize>() <= LIGHT_NUMEL;
        let op_ctx = OpContext { is_train: crate::autograd::is_training(), ctx };
        let engine = mixnet_engine::get();
        // An op whose vars are idle runs here and now, borrowing its arrays: its kernel
        // still uses every core (`mixnet_kernels::parallel`), and handing it to the worker would only add two
        // cross-thread wakes (MLP training step 1.7 -> 1.2 ms). Ops that must wait for
        // queued work are pushed and run asynchronously in dependency order.
        // The outputs were made above and no other thread holds them yet.
        let mut kernel = || run_kernel(&**op, &op_ctx, inputs, &outputs);
        let ran = engine.try_run_now_creating(&mut kernel, &reads, &writes, &created, name);
        if !ran {
            // Only queued (heavy) ops count against the cap on queued output bytes.
            let guard = (!light)
                .then(|| crate::throttle::admit(outputs.iter().map(|o| o.size() * o.dtype().size()).sum()));
            let (op2, ins, outs) = (
                op.clone(),
                inputs.iter().map(|&x| x.clone()).collect::<SmallVec<[NDArray; 4]>>(),
                outputs.clone(),
            );
            let kernel: mixnet_engine::OpFn = Box::new(move || {
                let _guard = guard;
                run_kernel(&*op2, &op_ctx, &ins, &outs)
            });
            let reads: SmallVec<[mixnet_engine::Var; 4]> = reads.iter().map(|&v| v.clone()).collect();
            let writes: SmallVec<[mixnet_engine::Var; 4]> =
                created.iter().chain(&writes).map(|&v| v.clone()).collect();
            engine.push(kernel, &reads, &writes, OpProps::new(name).light(light));
        }
    }
    let mut outputs = if crate::autograd::is_recording() {
        crate::autograd::record_op(op, inputs, outputs)
    } else {
        outputs
    };
    // Hidden outputs (masks, saved statistics) stay with the tape node only.
    outputs.truncate(op.num_visible_outputs());
    Ok(outputs)
}

/// The body of an eager operation: view the arrays as blobs and run the kernel.
/// Runs as the engine operation that reads every input's var and writes every output's var,
/// every mutated input's var (and any resource var the op uses).
fn run_kernel<A: AsRef<NDArray>>(
    op: &dyn Operator,
    ctx: &OpContext,
    inputs: &[A],
    outputs: &[NDArray],
) -> mixnet_engine::OpResult {
    let mutated = op.mutate_inputs();
    // SAFETY: the caller runs this as the engine operation holding the inputs' vars for
    // reading and the outputs' and mutated inputs' vars for writing; outputs are fresh
    // arrays, and mutated inputs were checked not to overlap any other argument.
    let mut in_blobs: SmallVec<[_; 4]> = SmallVec::new();
    for (i, x) in inputs.iter().enumerate() {
        in_blobs.push(unsafe { x.as_ref().blob(mutated.contains(&i)) });
    }
    let mut out_blobs: SmallVec<[_; 2]> = SmallVec::new();
    for x in outputs {
        out_blobs.push(unsafe { x.blob(true) });
    }
    op.compute(ctx, &mut in_blobs, &mut out_blobs).map_err(|e| match e {
        // The engine's error already names the operator.
        Error::Operator { op: name, msg } if name == op.name() => msg.into(),
        other => other.into(),
    })
}
