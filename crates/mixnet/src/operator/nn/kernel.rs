//! Shared plumbing of the nn operators: the float compute type of a dtype, reading and
//! writing blobs in that type (half types through `f32` copies), and [`KernelOp`], a
//! one-off operator around a closure that the gradients (MXNet's `_backward_*` ops) use.

use std::borrow::Cow;
use std::sync::Arc;

use mixnet_kernels::unary::Real;
use mixnet_kernels::Element;

use crate::op::{Blob, OpContext, Operator, Resource, TensorInfo};
use crate::{with_dtype, Error, NDArray, NativeType, Result};

/// A compute type: `f32` (for float32, float16, bfloat16) or `f64`.
pub(crate) trait Compute: Real + NativeType {}
impl Compute for f32 {}
impl Compute for f64 {}

/// Bind `$R` to the compute type of float dtype `$dtype` (f64 for float64, f32 for the
/// other floats); other dtypes return an error naming `$op`.
macro_rules! with_real {
    ($dtype:expr, $op:expr, $R:ident => $body:expr) => {{
        match $dtype {
            $crate::DType::F64 => {
                type $R = f64;
                $body
            }
            $crate::DType::F32 | $crate::DType::F16 | $crate::DType::BF16 => {
                type $R = f32;
                $body
            }
            other => {
                return Err($crate::Error::op(
                    $op,
                    format!("dtype {other} is not supported (floating-point only)"),
                ))
            }
        }
    }};
}
pub(crate) use with_real;

/// Refuse non-float dtypes at inference.
pub(crate) fn check_float(op: &str, what: &str, info: &TensorInfo) -> Result<()> {
    if info.dtype.is_float() {
        Ok(())
    } else {
        Err(Error::op(op, format!("{what} must be floating point, got {}", info.dtype)))
    }
}

/// The elements of `b` in compute type `R`: borrowed when the dtype is `R`'s, else a
/// converted copy (exact for half types into `f32`; integers convert by value).
pub(crate) fn load<'a, R: Compute>(b: &'a Blob<'_>) -> Result<Cow<'a, [R]>> {
    if R::views(b.dtype()) {
        return Ok(Cow::Borrowed(b.slice::<R>()?));
    }
    with_dtype!(b.dtype(), T => {
        let s = b.slice::<T>()?;
        Ok(Cow::Owned(s.iter().map(|&v| R::from_f64(Element::to_f64(v))).collect()))
    })
}

/// Integer values of `b` (labels, lengths) as i64, truncating floats toward zero.
pub(crate) fn load_i64(b: &Blob<'_>) -> Result<Vec<i64>> {
    with_dtype!(b.dtype(), T => Ok(b.slice::<T>()?.iter().map(|&v| Element::to_f64(v) as i64).collect()))
}

/// Compute `b`'s elements in type `R` with `f`, writing in place when the dtype is
/// `R`'s and through a converted copy otherwise.
pub(crate) fn store<R: Compute>(b: &mut Blob<'_>, f: impl FnOnce(&mut [R]) -> Result<()>) -> Result<()> {
    if R::views(b.dtype()) {
        return f(b.slice_mut::<R>()?);
    }
    let mut tmp = vec![R::ZERO; b.numel()];
    f(&mut tmp)?;
    with_dtype!(b.dtype(), T => {
        let out = b.slice_mut::<T>()?;
        for (o, &v) in out.iter_mut().zip(&tmp) {
            *o = <T as Element>::from_f64(v.to_f64());
        }
    });
    Ok(())
}

/// Write `values` (compute type `R`) into `b`, converting to its dtype.
pub(crate) fn write<R: Compute>(b: &mut Blob<'_>, values: &[R]) -> Result<()> {
    store::<R>(b, |o| {
        o.copy_from_slice(values);
        Ok(())
    })
}

/// Like [`store`] for two outputs at once (through copies).
pub(crate) fn store2<R: Compute>(
    a: &mut Blob<'_>,
    b: &mut Blob<'_>,
    f: impl FnOnce(&mut [R], &mut [R]) -> Result<()>,
) -> Result<()> {
    let (mut ta, mut tb) = (vec![R::ZERO; a.numel()], vec![R::ZERO; b.numel()]);
    f(&mut ta, &mut tb)?;
    write(a, &ta)?;
    write(b, &tb)
}

/// The body of a [`KernelOp`].
pub(crate) type KernelFn = dyn Fn(&OpContext, &mut [Blob<'_>], &mut [Blob<'_>]) -> Result<()> + Send + Sync;

/// An operator made for one call: fixed output shapes, a closure for a kernel. Gradients
/// use it for MXNet's `_backward_*` operators, which exist only inside a backward pass.
pub(crate) struct KernelOp {
    name: &'static str,
    num_inputs: usize,
    outputs: Vec<TensorInfo>,
    resources: &'static [Resource],
    run: Box<KernelFn>,
}

impl Operator for KernelOp {
    fn name(&self) -> &'static str {
        self.name
    }
    fn num_inputs(&self) -> usize {
        self.num_inputs
    }
    fn num_outputs(&self) -> usize {
        self.outputs.len()
    }
    fn resources(&self) -> &[Resource] {
        self.resources
    }
    fn infer(&self, _inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        Ok(self.outputs.clone())
    }
    fn compute(&self, ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        (self.run)(ctx, inputs, outputs)
    }
}

/// Run `run` as operator `name` on `inputs`, producing outputs of `outputs`' shapes and
/// dtypes, on the engine like any other operator.
pub(crate) fn run_kernel(
    name: &'static str,
    inputs: &[NDArray],
    outputs: Vec<TensorInfo>,
    run: impl Fn(&OpContext, &mut [Blob<'_>], &mut [Blob<'_>]) -> Result<()> + Send + Sync + 'static,
) -> Result<Vec<NDArray>> {
    let op: Arc<dyn Operator> =
        Arc::new(KernelOp { name, num_inputs: inputs.len(), outputs, resources: &[], run: Box::new(run) });
    crate::imperative::invoke_operator(&op, inputs)
}

/// Shape and dtype of `x`.
pub(crate) fn info(x: &NDArray) -> TensorInfo {
    TensorInfo { shape: x.shape().clone(), dtype: x.dtype() }
}

/// `axis` (negative counts from the end) checked against `ndim`.
pub(crate) fn norm_axis(op: &str, axis: i64, ndim: usize) -> Result<usize> {
    let n = ndim as i64;
    let a = if axis < 0 { axis + n } else { axis };
    if a < 0 || a >= n {
        return Err(Error::op(op, format!("axis {axis} is out of range for {ndim} dimensions")));
    }
    Ok(a as usize)
}

/// `(outer, shape[axis], inner)` of a shape split at `axis`.
pub(crate) fn split_at_axis(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (shape[..axis].iter().product(), shape[axis], shape[axis + 1..].iter().product())
}
