//! Broadcasting an array to a larger shape along its size-1 axes: `broadcast_to` (target
//! shape, 0 keeps a dimension), `broadcast_axis` (axes and sizes) and `broadcast_like`
//! (another array's shape, optionally only some axes). The three differ only in how the
//! output shape is found; one strided copy fills it.

use std::sync::Arc;

use mixnet_kernels::elementwise::broadcast_strides;
use mixnet_kernels::reduce::broadcast_copy;

use crate::op::{Attrs, Blob, GradContext, OpContext, Operator, Registry, TensorInfo};
use crate::operator::binary::sum_to_shape;
use crate::operator::grad::zeros_like;
use crate::shape::Shape;
use crate::{with_dtype, Error, NDArray, Result};

/// How the output shape is specified.
#[derive(Clone, Debug)]
enum Target {
    To(Vec<i64>),
    Axis { axis: Vec<i64>, size: Vec<i64> },
    Like { lhs_axes: Option<Vec<i64>>, rhs_axes: Option<Vec<i64>> },
}

/// A configured broadcasting op.
pub struct BroadcastOp {
    name: &'static str,
    target: Target,
}

fn axis_index(op: &str, what: &str, a: i64, shape: &Shape) -> Result<usize> {
    let n = if a < 0 { a + shape.ndim() as i64 } else { a };
    if n < 0 || n >= shape.ndim() as i64 {
        return Err(Error::op(op, format!("{what} {a} is out of range for shape {shape}")));
    }
    Ok(n as usize)
}

fn dim(op: &str, what: &str, v: i64) -> Result<usize> {
    usize::try_from(v).map_err(|_| Error::op(op, format!("{what} {v} must be non-negative")))
}

impl BroadcastOp {
    fn out_shape(&self, inputs: &[TensorInfo]) -> Result<Shape> {
        let name = self.name;
        let ishape = &inputs[0].shape;
        let mut oshape: Vec<usize> = ishape.to_vec();
        match &self.target {
            Target::To(shape) => {
                if shape.len() != ishape.ndim() {
                    return Err(Error::op(
                        name,
                        format!("operand of shape {ishape} cannot be broadcast to {shape:?} (ranks differ)"),
                    ));
                }
                for (o, &s) in oshape.iter_mut().zip(shape) {
                    let s = dim(name, "target dimension", s)?;
                    if s != 0 {
                        if *o != s && *o != 1 {
                            return Err(Error::op(
                                name,
                                format!("array of shape {ishape} cannot be broadcast to {shape:?}"),
                            ));
                        }
                        *o = s;
                    }
                }
            }
            Target::Axis { axis, size } => {
                if axis.len() != size.len() {
                    return Err(Error::op(
                        name,
                        format!("axis {axis:?} and size {size:?} must have the same length"),
                    ));
                }
                for (&a, &s) in axis.iter().zip(size) {
                    let i = axis_index(name, "axis", a, ishape)?;
                    if oshape[i] != 1 {
                        return Err(Error::op(
                            name,
                            format!("broadcasting axis {a} must have size 1, input shape is {ishape}"),
                        ));
                    }
                    oshape[i] = dim(name, "size", s)?;
                }
            }
            Target::Like { lhs_axes: Some(la), rhs_axes: Some(ra) } => {
                let rshape = &inputs[1].shape;
                if la.len() != ra.len() {
                    return Err(Error::op(
                        name,
                        format!("lhs_axes {la:?} and rhs_axes {ra:?} differ in length"),
                    ));
                }
                if la.is_empty() {
                    return Err(Error::op(name, "empty lhs_axes/rhs_axes are not allowed"));
                }
                for (&l, &r) in la.iter().zip(ra) {
                    let from = axis_index(name, "lhs_axes entry", l, ishape)?;
                    let to = axis_index(name, "rhs_axes entry", r, rshape)?;
                    if ishape[from] != 1 {
                        return Err(Error::op(
                            name,
                            format!(
                                "lhs axis {l} of shape {ishape} is not 1 and cannot be broadcast to {}",
                                rshape[to]
                            ),
                        ));
                    }
                    oshape[from] = rshape[to];
                }
            }
            // Both axes lists are needed to broadcast selectively; otherwise the whole shape.
            Target::Like { .. } => {
                let rshape = &inputs[1].shape;
                let ok = rshape.ndim() == ishape.ndim()
                    && ishape.iter().zip(rshape.iter()).all(|(&l, &r)| l == r || l == 1);
                if !ok {
                    return Err(Error::op(
                        name,
                        format!("operand of shape {ishape} cannot be broadcast to {rshape}"),
                    ));
                }
                oshape = rshape.to_vec();
            }
        }
        Ok(oshape.into())
    }
}

impl Operator for BroadcastOp {
    fn name(&self) -> &'static str {
        self.name
    }

    fn num_inputs(&self) -> usize {
        match self.target {
            Target::Like { .. } => 2,
            _ => 1,
        }
    }

    fn input_names(&self) -> Vec<String> {
        match self.target {
            Target::Like { .. } => vec!["lhs".into(), "rhs".into()],
            _ => vec!["data".into()],
        }
    }

    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        Ok(vec![TensorInfo::new(self.out_shape(inputs)?, inputs[0].dtype)])
    }

    fn has_gradient(&self) -> bool {
        true
    }

    /// Summed back over the broadcast axes; `broadcast_like`'s rhs gets zeros, as in MXNet.
    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let x = &ctx.inputs[0];
        let mut grads = vec![Some(sum_to_shape(&ctx.out_grads[0], x.shape())?)];
        if let Some(rhs) = ctx.inputs.get(1) {
            grads.push(Some(zeros_like(rhs)?));
        }
        Ok(grads)
    }

    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob], outputs: &mut [Blob]) -> Result<()> {
        let x = &inputs[0];
        let out = &mut outputs[0];
        if out.numel() == 0 {
            return Ok(());
        }
        let out_shape = out.shape().clone();
        let strides = broadcast_strides(x.shape(), &out_shape).ok_or_else(|| {
            Error::op(self.name, format!("cannot broadcast {} to {}", x.shape(), out_shape))
        })?;
        with_dtype!(x.dtype(), T => broadcast_copy(x.slice::<T>()?, &strides, out.slice_mut::<T>()?, &out_shape));
        Ok(())
    }
}

fn build(name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    let target = match name {
        "broadcast_to" => Target::To(attrs.tuple("shape")?.unwrap_or_default()),
        "broadcast_axis" => Target::Axis {
            axis: attrs.tuple("axis")?.unwrap_or_default(),
            size: attrs.tuple("size")?.unwrap_or_default(),
        },
        "broadcast_like" => {
            Target::Like { lhs_axes: attrs.tuple("lhs_axes")?, rhs_axes: attrs.tuple("rhs_axes")? }
        }
        _ => return Err(Error::op(name, "not a broadcasting operator")),
    };
    Ok(Arc::new(BroadcastOp { name, target }))
}

pub(super) fn register(r: &mut Registry) {
    r.register_family(
        build,
        &[("broadcast_to", &[]), ("broadcast_axis", &["broadcast_axes"]), ("broadcast_like", &[])],
    );
}
