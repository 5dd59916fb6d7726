//! `_contrib_AdaptiveAvgPooling2D` (MXNet's `contrib/adaptive_avg_pooling.cc`): average
//! pooling of `(N, C, H, W)` to a fixed `output_size` (one value for a square output, two
//! for `(height, width)`, none for 1×1), each output averaging the rows
//! `floor(i·H/oh) .. ceil((i+1)·H/oh)` and likewise for columns.

use std::sync::Arc;

use mixnet_kernels::pool::{adaptive_avg_pool2d, adaptive_avg_pool2d_backward};

use super::kernel::{check_float, info, load, run_kernel, store, with_real};
use crate::op::{Attrs, Blob, GradContext, OpContext, Operator, Registry, TensorInfo};
use crate::{Error, NDArray, Result, Shape};

const NAME: &str = "_contrib_AdaptiveAvgPooling2D";

/// A configured adaptive average pooling.
pub struct AdaptiveAvgPool {
    size: Option<(usize, usize)>,
}

fn build(_name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    let size = match attrs.tuple("output_size")?.as_deref() {
        None | Some([]) => None,
        Some(&[s]) => Some((s, s)),
        Some(&[h, w]) => Some((h, w)),
        Some(other) => {
            return Err(Error::op(NAME, format!("output_size must have 1 or 2 values, got {other:?}")))
        }
    };
    let size = match size {
        Some((h, w)) if h < 1 || w < 1 => {
            return Err(Error::op(NAME, format!("output_size must be positive, got ({h}, {w})")))
        }
        Some((h, w)) => Some((h as usize, w as usize)),
        None => None,
    };
    Ok(Arc::new(AdaptiveAvgPool { size }))
}

/// `(planes, (h, w), (oh, ow))`.
type Geometry = (usize, (usize, usize), (usize, usize));

impl AdaptiveAvgPool {
    /// The geometry of an `(N, C, H, W)` input.
    fn geometry(&self, s: &Shape) -> Result<Geometry> {
        match *s.dims() {
            [n, c, h, w] => Ok((n * c, (h, w), self.size.unwrap_or((1, 1)))),
            _ => Err(Error::op(NAME, format!("data must be 4-D (N, C, H, W), got {s}"))),
        }
    }
}

impl Operator for AdaptiveAvgPool {
    fn name(&self) -> &'static str {
        NAME
    }
    fn num_inputs(&self) -> usize {
        1
    }
    fn input_names(&self) -> Vec<String> {
        vec!["data".into()]
    }
    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        let x = &inputs[0];
        check_float(NAME, "data", x)?;
        let (_, _, (oh, ow)) = self.geometry(&x.shape)?;
        let d = x.shape.dims();
        Ok(vec![TensorInfo::new(Shape::new(&[d[0], d[1], oh, ow]), x.dtype)])
    }
    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let (planes, hw, out) = self.geometry(inputs[0].shape())?;
        with_real!(inputs[0].dtype(), NAME, R => {
            let x = load::<R>(&inputs[0])?;
            store::<R>(&mut outputs[0], |y| {
                adaptive_avg_pool2d(&x, y, planes, hw, out);
                Ok(())
            })
        })
    }
    fn has_gradient(&self) -> bool {
        true
    }
    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let (planes, hw, out) = self.geometry(ctx.inputs[0].shape())?;
        let dx = run_kernel(
            "_backward_contrib_AdaptiveAvgPooling2D",
            &[ctx.out_grads[0].clone()],
            vec![info(&ctx.inputs[0])],
            move |_, ins, outs| {
                with_real!(ins[0].dtype(), NAME, R => {
                    let dy = load::<R>(&ins[0])?;
                    store::<R>(&mut outs[0], |dx| {
                        adaptive_avg_pool2d_backward(&dy, dx, planes, hw, out);
                        Ok(())
                    })
                })
            },
        )?
        .remove(0);
        Ok(vec![Some(dx)])
    }
}

pub(crate) fn register(r: &mut Registry) {
    r.register_family(build, &[(NAME, &[])]);
}
