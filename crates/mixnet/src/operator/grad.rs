//! Building blocks of gradient definitions: short calls of registered operators (so a
//! gradient runs on the engine and, under `create_graph`, is itself recorded), and the few
//! dedicated backward kernels that no composition of operators expresses well
//! (`_backward_gamma`'s digamma, `_backward_nanprod`, `_backward_Pad`). Those are internal
//! operators, not registered by name, as the in-place copy is.

use std::sync::Arc;

use mixnet_kernels::shape::{pad_grad, PadMode};
use mixnet_kernels::special::digamma;
use mixnet_kernels::Element;

use crate::op::{Blob, OpContext, Operator, TensorInfo};
use crate::{with_dtype, with_float_dtype, DType, Error, NDArray, Result};

/// Run registered operator `op` and return its first output.
pub(crate) fn call(op: &str, inputs: &[NDArray], attrs: &[(&str, &str)]) -> Result<NDArray> {
    let mut out = crate::imperative::invoke(op, inputs, attrs)?;
    if out.is_empty() {
        return Err(Error::op(op, "returned no output"));
    }
    Ok(out.swap_remove(0))
}

/// Run registered operator `op` and return all its outputs.
pub(crate) fn call_all(op: &str, inputs: &[NDArray], attrs: &[(&str, &str)]) -> Result<Vec<NDArray>> {
    crate::imperative::invoke(op, inputs, attrs)
}

/// `op(x)` for a unary operator without attributes.
pub(crate) fn un(op: &str, x: &NDArray) -> Result<NDArray> {
    call(op, std::slice::from_ref(x), &[])
}

/// A fresh zero array like `x` (a constant: nothing upstream).
pub(crate) fn zeros_like(x: &NDArray) -> Result<NDArray> {
    NDArray::zeros(x.shape().clone(), x.dtype(), x.context())
}

/// A fresh array of ones like `x`.
pub(crate) fn ones_like(x: &NDArray) -> Result<NDArray> {
    NDArray::full(x.shape().clone(), 1.0, x.dtype(), x.context())
}

/// MXNet's tuple spelling of `dims`: `(2, 3)`, `(4,)`.
pub(crate) fn tuple<T: std::fmt::Display>(dims: &[T]) -> String {
    match dims {
        [d] => format!("({d},)"),
        _ => format!("({})", dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    }
}

/// `g` with `like`'s shape: a view (recorded while building a higher-order graph).
pub(crate) fn reshape_like(g: &NDArray, like: &NDArray) -> Result<NDArray> {
    reshape_to(g, like.shape().dims())
}

/// `g` reshaped to `dims`, every one of which is positive (`Reshape`'s 0 means "copy"):
/// a view of `g`'s memory, as [`NDArray::reshape`] makes it.
pub(crate) fn reshape_to(g: &NDArray, dims: &[usize]) -> Result<NDArray> {
    if g.shape().dims() == dims {
        return Ok(g.clone());
    }
    let dims: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
    g.reshape(&dims)
}

/// `g` converted to `dtype` (identity when it already is).
pub(crate) fn cast(g: &NDArray, dtype: DType) -> Result<NDArray> {
    if g.dtype() == dtype {
        return Ok(g.clone());
    }
    call("Cast", std::slice::from_ref(g), &[("dtype", dtype.name())])
}

/// `g` (reduced over the axes marked in `reduced`, kept or not) broadcast back to `shape`.
pub(crate) fn unreduce(g: &NDArray, shape: &[usize], reduced: &[bool]) -> Result<NDArray> {
    let keep: Vec<usize> = shape.iter().zip(reduced).map(|(&d, &r)| if r { 1 } else { d }).collect();
    let g = reshape_to(g, &keep)?;
    if keep == shape {
        return Ok(g);
    }
    call("broadcast_to", &[g], &[("shape", &tuple(shape))])
}

/// Elementwise functions of the dedicated backward kernels.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ElemFn {
    /// ψ(x) (`gammaln`'s derivative).
    Digamma,
    /// Γ(x) ψ(x) from (x, Γ(x)) (`gamma`'s derivative).
    GammaGrad,
    /// `nanprod`'s derivative from (x, broadcast product): 0 where x is NaN, else prod / x.
    NanprodGrad,
}

/// An internal elementwise operator over same-shape float inputs, computed in f64.
pub(crate) struct ElemGrad(pub(crate) ElemFn);

impl ElemFn {
    fn arity(self) -> usize {
        match self {
            ElemFn::Digamma => 1,
            ElemFn::GammaGrad | ElemFn::NanprodGrad => 2,
        }
    }
    fn apply(self, a: f64, b: f64) -> f64 {
        match self {
            ElemFn::Digamma => digamma(a),
            ElemFn::GammaGrad => b * digamma(a),
            ElemFn::NanprodGrad => {
                if a.is_nan() {
                    0.0
                } else {
                    b / a
                }
            }
        }
    }
}

impl Operator for ElemGrad {
    fn name(&self) -> &'static str {
        match self.0 {
            ElemFn::Digamma => "_backward_gammaln",
            ElemFn::GammaGrad => "_backward_gamma",
            ElemFn::NanprodGrad => "_backward_nanprod",
        }
    }
    fn num_inputs(&self) -> usize {
        self.0.arity()
    }
    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        if inputs.iter().any(|i| *i != inputs[0]) {
            return Err(Error::op(self.name(), "inputs must have one shape and dtype"));
        }
        Ok(vec![inputs[0].clone()])
    }
    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let f = self.0;
        let name = self.name();
        with_float_dtype!(outputs[0].dtype(), name, T => {
            let a = inputs[0].slice::<T>()?;
            let b = if f.arity() == 2 { inputs[1].slice::<T>()? } else { a };
            let out = outputs[0].slice_mut::<T>()?;
            for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
                *o = T::from_f64(f.apply(x.to_f64(), y.to_f64()));
            }
        });
        Ok(())
    }
}

/// Apply a dedicated backward kernel.
pub(crate) fn elem(f: ElemFn, inputs: &[NDArray]) -> Result<NDArray> {
    let op: Arc<dyn Operator> = Arc::new(ElemGrad(f));
    Ok(crate::imperative::invoke_operator(&op, inputs)?.swap_remove(0))
}

/// `_backward_Pad`: the adjoint of `Pad` (edge and reflect positions add into the source
/// element they copied).
pub(crate) struct PadGrad {
    pub(crate) in_shape: crate::Shape,
    pub(crate) before: Vec<usize>,
    pub(crate) after: Vec<usize>,
    pub(crate) mode: PadMode,
}

impl Operator for PadGrad {
    fn name(&self) -> &'static str {
        "_backward_Pad"
    }
    fn num_inputs(&self) -> usize {
        1
    }
    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        Ok(vec![TensorInfo { shape: self.in_shape.clone(), dtype: inputs[0].dtype }])
    }
    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let dims = self.in_shape.to_vec();
        with_dtype!(outputs[0].dtype(), T => pad_grad(
            inputs[0].slice::<T>()?,
            &dims,
            &self.before,
            &self.after,
            self.mode,
            outputs[0].slice_mut::<T>()?,
        ));
        Ok(())
    }
}

/// Run an internal operator on `inputs`, first output.
pub(crate) fn run(op: impl Operator, inputs: &[NDArray]) -> Result<NDArray> {
    let op: Arc<dyn Operator> = Arc::new(op);
    Ok(crate::imperative::invoke_operator(&op, inputs)?.swap_remove(0))
}
