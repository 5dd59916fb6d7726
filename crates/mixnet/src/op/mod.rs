//! The operator registry: one entry per operator under MXNet's name and aliases. Each
//! entry parses MXNet's attribute strings into a configured [`Operator`], which infers
//! output shapes and dtypes and runs its CPU kernel. The eager path, the graph executor
//! and autograd all reach computation through here.

mod attrs;
mod blob;
pub mod coverage;
pub mod registry;

pub use attrs::{parse_tuple, Attrs};
pub use blob::Blob;
pub use registry::{registry, OpDef, Registry};

use smallvec::SmallVec;

use crate::shape::Shape;
use crate::{DType, Result};

/// Shape and dtype of one argument, as inference sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    pub shape: Shape,
    pub dtype: DType,
}

impl TensorInfo {
    pub fn new(shape: impl Into<Shape>, dtype: DType) -> Self {
        TensorInfo { shape: shape.into(), dtype }
    }
}

impl std::fmt::Display for TensorInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.shape, self.dtype)
    }
}

/// What a running kernel may know about the call (MXNet's `OpContext`).
#[derive(Clone, Copy, Debug, Default)]
pub struct OpContext {
    /// Training mode (Dropout, BatchNorm consult it); set by `autograd::record`/`train_mode`.
    pub is_train: bool,
    /// Where the op runs (kernels reach per-context resources such as the generator).
    pub ctx: crate::Context,
}

/// Resources an operator asks the engine for (MXNet's `FResourceRequest`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    /// Scratch memory for the duration of the kernel.
    TempSpace,
    /// The context's random generator (serializes ops that draw from it).
    Random,
}

/// What a gradient definition sees: the recorded call and the gradients of its outputs.
pub struct GradContext<'a> {
    /// Inputs as they were when the call was recorded (their versions are checked).
    pub inputs: &'a [crate::NDArray],
    /// Outputs of the call.
    pub outputs: &'a [crate::NDArray],
    /// Gradient of the loss with respect to each output (zeros for unused outputs).
    pub out_grads: &'a [crate::NDArray],
    /// Whether each input's gradient is used (the input is on the tape). An operator may
    /// skip the work for the others and return `None` there, as MXNet's backward skips
    /// inputs whose request is `kNullOp` (the data gradient of a network's first layer).
    pub needs_grad: &'a [bool],
}

/// A configured operator: attributes parsed, ready to infer and compute.
pub trait Operator: Send + Sync + 'static {
    /// Canonical registered name (the one symbol JSON stores).
    fn name(&self) -> &'static str;

    /// Number of inputs for these attributes.
    fn num_inputs(&self) -> usize;

    /// Number of outputs for these attributes.
    fn num_outputs(&self) -> usize {
        1
    }

    /// Outputs the caller sees (MXNet's `FNumVisibleOutputs`): the first this many of
    /// [`Operator::num_outputs`]. The rest (Dropout's mask, BatchNorm's batch mean and
    /// variance) are kept for the gradient only.
    fn num_visible_outputs(&self) -> usize {
        self.num_outputs()
    }

    /// Output shapes and dtypes. Errors name the op; `invoke` adds the input shapes.
    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>>;

    /// [`Operator::infer`] without the `Vec`: what eager calls use. Ops whose calls are
    /// cheap enough for a heap allocation to show (elementwise arithmetic) override it.
    fn infer_small(&self, inputs: &[TensorInfo]) -> Result<SmallVec<[TensorInfo; 2]>> {
        self.infer(inputs).map(SmallVec::from_vec)
    }

    /// Output shapes and dtypes of an op whose output shape depends on input *values*
    /// (MXNet's dynamic-shape ops, `_contrib_boolean_mask`), read from `inputs` (which
    /// waits for them, as MXNet's imperative path does for such ops). `None`, the default:
    /// [`Operator::infer`] decides from shapes and dtypes alone.
    fn infer_from_values(&self, _inputs: &[&crate::NDArray]) -> Option<Result<Vec<TensorInfo>>> {
        None
    }

    /// Run the kernel. `inputs` listed in [`Operator::mutate_inputs`] are writable.
    fn compute(&self, ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()>;

    /// Inputs the op writes (MXNet's `FMutateInputs`: optimizer states, BatchNorm stats).
    fn mutate_inputs(&self) -> &[usize] {
        &[]
    }

    /// (input, output) pairs that may share memory (MXNet's `FInplaceOption`).
    fn inplace(&self) -> &[(usize, usize)] {
        &[]
    }

    /// Resources the kernel needs (MXNet's `FResourceRequest`).
    fn resources(&self) -> &[Resource] {
        &[]
    }

    /// Gradients of the inputs (None: no gradient flows to that input), written once per
    /// operator in terms of operators, so autograd and the graph's gradient pass share it
    /// and it runs on the engine. The default: the operator is not differentiable.
    fn gradient(&self, _ctx: &GradContext<'_>) -> Result<Vec<Option<crate::NDArray>>> {
        Err(crate::Error::op(self.name(), "has no gradient defined"))
    }

    /// Whether [`Operator::gradient`] is defined (the registry test lists ops lacking one).
    fn has_gradient(&self) -> bool {
        false
    }

    /// Argument names (MXNet's `FListInputNames`): `data`, or `arg0, arg1, ...`.
    fn input_names(&self) -> Vec<String> {
        match self.num_inputs() {
            1 => vec!["data".into()],
            n => (0..n).map(|i| format!("arg{i}")).collect(),
        }
    }
}

/// Shorthand for an operator error.
pub fn op_err(op: &str, msg: impl Into<String>) -> crate::Error {
    crate::Error::op(op, msg)
}
