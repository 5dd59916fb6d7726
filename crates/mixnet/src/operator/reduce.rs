//! Reductions over axes (`sum`, `mean`, `prod`, `nansum`, `nanprod`, `max`, `min`, `norm`)
//! and along one axis (`argmax`, `argmin`, `argmax_channel`), with MXNet's axis rules:
//! `axis` absent or `()` reduces everything to shape `(1,)`, `exclude` reduces the axes not
//! listed. The broadcasting-to ops, the adjoint of a reduction, and `add_n` live beside.

mod add_n;
mod broadcast;

use std::sync::Arc;

use mixnet_kernels::reduce::{Accumulate, Norm, Reduce, Reduction};
use mixnet_kernels::Element;

use super::grad::{call, cast, elem, un, unreduce, zeros_like, ElemFn};
use crate::op::{Attrs, Blob, GradContext, OpContext, Operator, Registry, TensorInfo};
use crate::shape::Shape;
use crate::{with_dtype, DType, Error, NDArray, Result};

/// The reduction of an axes-reducing operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Sum,
    Mean,
    Prod,
    NanSum,
    NanProd,
    Max,
    Min,
}

const REDUCE: &[(&str, &[&str], Kind)] = &[
    ("sum", &["sum_axis"], Kind::Sum),
    ("mean", &[], Kind::Mean),
    ("prod", &[], Kind::Prod),
    ("nansum", &[], Kind::NanSum),
    ("nanprod", &[], Kind::NanProd),
    ("max", &["max_axis"], Kind::Max),
    ("min", &["min_axis"], Kind::Min),
];

/// MXNet's `ReduceAxesParam`: which axes a reduction removes.
#[derive(Clone, Debug)]
struct Axes {
    axis: Option<Vec<i64>>,
    keepdims: bool,
    exclude: bool,
}

impl Axes {
    /// The output shape, and which input dimensions are reduced (`ReduceAxesShapeImpl`).
    fn apply(&self, op: &str, ishape: &Shape) -> Result<(Shape, Vec<bool>)> {
        let ndim = ishape.ndim();
        let axis = match &self.axis {
            Some(a) if !a.is_empty() => a,
            _ => {
                let shape = if self.keepdims { Shape::from(vec![1; ndim]) } else { Shape::from([1]) };
                return Ok((shape, vec![true; ndim]));
            }
        };
        let mut axes = Vec::with_capacity(axis.len());
        for &a in axis {
            let n = if a < 0 { a + ndim as i64 } else { a };
            if n < 0 || n >= ndim as i64 {
                return Err(Error::op(
                    op,
                    format!("reduction axis {a} is out of range for input shape {ishape}"),
                ));
            }
            axes.push(n as usize);
        }
        axes.sort_unstable();
        if axes.windows(2).any(|w| w[0] == w[1]) {
            return Err(Error::op(op, format!("reduction axes {axis:?} have duplicates")));
        }
        let reduced: Vec<bool> = (0..ndim).map(|i| axes.contains(&i) != self.exclude).collect();
        let shape: Shape = if self.keepdims {
            ishape.iter().zip(&reduced).map(|(&d, &r)| if r { 1 } else { d }).collect()
        } else {
            let kept: Vec<usize> =
                ishape.iter().zip(&reduced).filter(|(_, &r)| !r).map(|(&d, _)| d).collect();
            if kept.is_empty() {
                Shape::from([1])
            } else {
                kept.into()
            }
        };
        Ok((shape, reduced))
    }
}

fn parse_axes(attrs: &mut Attrs<'_>, exclude: bool) -> Result<Axes> {
    let axis = attrs.tuple("axis")?;
    let keepdims = attrs.bool("keepdims", false)?;
    let exclude = exclude && attrs.bool("exclude", false)?;
    Ok(Axes { axis, keepdims, exclude })
}

/// A configured axes reduction.
pub struct ReduceOp {
    name: &'static str,
    kind: Kind,
    axes: Axes,
}

impl Operator for ReduceOp {
    fn name(&self) -> &'static str {
        self.name
    }

    fn num_inputs(&self) -> usize {
        1
    }

    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        let x = &inputs[0];
        if matches!(self.kind, Kind::Max | Kind::Min) && x.shape.numel() == 0 {
            return Err(Error::op(self.name, format!("cannot reduce an empty array of shape {}", x.shape)));
        }
        let (shape, _) = self.axes.apply(self.name, &x.shape)?;
        Ok(vec![TensorInfo::new(shape, x.dtype)])
    }

    fn has_gradient(&self) -> bool {
        true
    }

    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        Ok(vec![Some(self.grad(ctx)?)])
    }

    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob], outputs: &mut [Blob]) -> Result<()> {
        let (x, out) = (&inputs[0], &mut outputs[0]);
        if out.numel() == 0 {
            return Ok(());
        }
        let (_, mask) = self.axes.apply(self.name, x.shape())?;
        let shape = x.shape().clone();
        if x.dtype() == DType::Bool {
            // MXNet's reducers on bool: sums and maxima are "any", products and minima "all".
            let op = match self.kind {
                Kind::Prod | Kind::NanProd | Kind::Min => Reduction::Min,
                _ => Reduction::Max,
            };
            u8::reduce_axes(x.slice::<u8>()?, &shape, &mask, out.slice_mut::<u8>()?, op);
            return Ok(());
        }
        let op = match self.kind {
            Kind::Sum | Kind::Mean => Reduction::Sum,
            Kind::Prod => Reduction::Prod,
            Kind::NanSum => Reduction::NanSum,
            Kind::NanProd => Reduction::NanProd,
            Kind::Max => Reduction::Max,
            Kind::Min => Reduction::Min,
        };
        let count = x.numel().checked_div(out.numel()).unwrap_or(0);
        with_dtype!(x.dtype(), T => {
            let os = out.slice_mut::<T>()?;
            T::reduce_axes(x.slice::<T>()?, &shape, &mask, os, op);
            if self.kind == Kind::Mean {
                // As MXNet: the sum rounded to T, then divided in T.
                let n = T::from_usize(count);
                os.iter_mut().for_each(|o| *o = o.div(n));
            }
        });
        Ok(())
    }
}

impl ReduceOp {
    fn grad(&self, ctx: &GradContext<'_>) -> Result<NDArray> {
        let (x, y, g) = (&ctx.inputs[0], &ctx.outputs[0], &ctx.out_grads[0]);
        if x.size() == 0 {
            return zeros_like(x);
        }
        let (_, mask) = self.axes.apply(self.name, x.shape())?;
        let gb = unreduce(g, x.shape(), &mask)?;
        let yb = || unreduce(y, x.shape(), &mask);
        Ok(match self.kind {
            Kind::Sum => gb,
            Kind::Mean => (&gb / (x.size() / y.size().max(1)) as f64)?,
            // prod / x (MXNet's rdiv): a zero factor gives inf or NaN there, as in MXNet.
            Kind::Prod => (&gb * &(&yb()? / x)?)?,
            Kind::NanSum => (&gb * &call("_equal", &[x.clone(), x.clone()], &[])?)?,
            Kind::NanProd => (&gb * &elem(ElemFn::NanprodGrad, &[x.clone(), yb()?])?)?,
            // Every element equal to the extreme gets the gradient (MXNet's `eq`).
            Kind::Max | Kind::Min => (&gb * &call("_equal", &[x.clone(), yb()?], &[])?)?,
        })
    }
}

/// `norm`: the L1 or L2 norm over axes, computed in f64 and cast to `out_dtype`. (MXNet
/// 1.9.1 honours an `out_dtype` other than the input's only under
/// `MXNET_SAFE_ACCUMULATION=1`, and fails without it; here it always works.)
pub struct NormOp {
    ord: Norm,
    axes: Axes,
    out_dtype: Option<DType>,
}

impl Operator for NormOp {
    fn name(&self) -> &'static str {
        "norm"
    }

    fn num_inputs(&self) -> usize {
        1
    }

    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        let x = &inputs[0];
        if x.dtype == DType::Bool {
            return Err(Error::op("norm", "bool arrays are not supported; Cast first"));
        }
        let (shape, _) = self.axes.apply("norm", &x.shape)?;
        Ok(vec![TensorInfo::new(shape, self.out_dtype.unwrap_or(x.dtype))])
    }

    fn has_gradient(&self) -> bool {
        true
    }

    /// L2: x / norm; L1: sign(x) (MXNet's `_backward_norm`).
    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let (x, y, g) = (&ctx.inputs[0], &ctx.outputs[0], &ctx.out_grads[0]);
        if x.size() == 0 {
            return Ok(vec![Some(zeros_like(x)?)]);
        }
        let (_, mask) = self.axes.apply("norm", x.shape())?;
        let gb = unreduce(&cast(g, x.dtype())?, x.shape(), &mask)?;
        let d = match self.ord {
            Norm::L1 => un("sign", x)?,
            Norm::L2 => (x / &unreduce(&cast(y, x.dtype())?, x.shape(), &mask)?)?,
        };
        Ok(vec![Some((&gb * &d)?)])
    }

    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob], outputs: &mut [Blob]) -> Result<()> {
        let (x, out) = (&inputs[0], &mut outputs[0]);
        if out.numel() == 0 {
            return Ok(());
        }
        let (_, mask) = self.axes.apply("norm", x.shape())?;
        let mut norms = vec![0.0f64; out.numel()];
        with_dtype!(x.dtype(), T => T::norm_axes(x.slice::<T>()?, x.shape(), &mask, &mut norms, self.ord));
        with_dtype!(out.dtype(), O => {
            out.slice_mut::<O>()?.iter_mut().zip(&norms).for_each(|(o, &v)| *o = O::from_f64(v));
        });
        Ok(())
    }
}

/// `argmax`, `argmin`, `argmax_channel`: the index of the first extreme along one axis (or
/// of the flattened array), stored in the input's dtype as MXNet does.
pub struct ArgOp {
    name: &'static str,
    max: bool,
    axis: Option<i64>,
    keepdims: bool,
}

impl ArgOp {
    /// Output shape and the `(outer, m, inner)` view of the input (`ReduceAxisShapeImpl`).
    fn plan(&self, ishape: &Shape) -> Result<(Shape, [usize; 3])> {
        let ndim = ishape.ndim();
        let flat = |keep: bool| if keep { Shape::from(vec![1; ndim]) } else { Shape::from([1]) };
        let Some(a) = self.axis else {
            if ishape.numel() == 0 {
                return Err(Error::op(self.name, format!("cannot search an empty array of shape {ishape}")));
            }
            return Ok((flat(self.keepdims), [1, ishape.numel(), 1]));
        };
        let n = if a < 0 { a + ndim as i64 } else { a };
        if ndim == 0 || n < 0 || n >= ndim as i64 {
            return Err(Error::op(self.name, format!("axis {a} is out of range for input shape {ishape}")));
        }
        let n = n as usize;
        if ishape[n] == 0 {
            return Err(Error::op(
                self.name,
                format!("cannot search along axis {a} of size 0 (input shape {ishape})"),
            ));
        }
        let view = [ishape[..n].iter().product(), ishape[n], ishape[n + 1..].iter().product()];
        let shape = if ndim == 1 {
            flat(self.keepdims)
        } else if self.keepdims {
            ishape.iter().enumerate().map(|(i, &d)| if i == n { 1 } else { d }).collect()
        } else {
            ishape.iter().enumerate().filter(|&(i, _)| i != n).map(|(_, &d)| d).collect()
        };
        Ok((shape, view))
    }
}

impl Operator for ArgOp {
    fn name(&self) -> &'static str {
        self.name
    }

    fn num_inputs(&self) -> usize {
        1
    }

    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        let x = &inputs[0];
        if x.dtype == DType::Bool {
            return Err(Error::op(self.name, "bool arrays are not supported; Cast first"));
        }
        let (shape, _) = self.plan(&x.shape)?;
        Ok(vec![TensorInfo::new(shape, x.dtype)])
    }

    /// `argmax`/`argmin`: MXNet defines a zero gradient; `argmax_channel` has none.
    fn has_gradient(&self) -> bool {
        self.name != "argmax_channel"
    }

    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        if !self.has_gradient() {
            return Err(Error::op(self.name, "is not differentiable (MXNet registers no gradient)"));
        }
        Ok(vec![Some(zeros_like(&ctx.inputs[0])?)])
    }

    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob], outputs: &mut [Blob]) -> Result<()> {
        let x = &inputs[0];
        let out = &mut outputs[0];
        let (_, [outer, m, inner]) = self.plan(x.shape())?;
        if out.numel() == 0 {
            return Ok(());
        }
        with_dtype!(x.dtype(), T => {
            T::arg_axis(x.slice::<T>()?, outer, m, inner, out.slice_mut::<T>()?, self.max);
        });
        Ok(())
    }
}

fn build(name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    if let Some(&(_, _, kind)) = REDUCE.iter().find(|e| e.0 == name) {
        return Ok(Arc::new(ReduceOp { name, kind, axes: parse_axes(attrs, true)? }));
    }
    match name {
        "norm" => {
            let ord = match attrs.int("ord", 2)? {
                1 => Norm::L1,
                2 => Norm::L2,
                ord => return Err(Error::op(name, format!("ord={ord} is not supported (only 1 and 2)"))),
            };
            let out_dtype = attrs.dtype("out_dtype")?;
            if let Some(d) = out_dtype {
                if !matches!(d, DType::F16 | DType::F32 | DType::F64 | DType::I64 | DType::I32 | DType::I8) {
                    return Err(Error::op(
                        name,
                        format!("out_dtype={d} is not one of float16, float32, float64, int64, int32, int8"),
                    ));
                }
            }
            let axes = parse_axes(attrs, false)?;
            Ok(Arc::new(NormOp { ord, axes, out_dtype }))
        }
        "argmax" | "argmin" => {
            let axis = attrs.opt_int("axis")?;
            let keepdims = attrs.bool("keepdims", false)?;
            Ok(Arc::new(ArgOp { name, max: name == "argmax", axis, keepdims }))
        }
        "argmax_channel" => Ok(Arc::new(ArgOp { name, max: true, axis: Some(1), keepdims: false })),
        _ => Err(Error::op(name, "not a reduction operator")),
    }
}

pub(crate) fn register(r: &mut Registry) {
    for e in REDUCE {
        r.register(crate::op::OpDef { name: e.0, aliases: e.1, build });
    }
    r.register_family(build, &[("norm", &[]), ("argmax", &[]), ("argmin", &[]), ("argmax_channel", &[])]);
    broadcast::register(r);
    add_n::register(r);
}
