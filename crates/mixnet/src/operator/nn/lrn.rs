//! `LRN`: local response normalization across channels (MXNet's `nn/lrn-inl.h`):
//! `out = x * (knorm + alpha / nsize * Σ_window x²)^-beta` over a window of `nsize` (odd)
//! channels centred on each channel. MXNet keeps the scale as a hidden second output;
//! here the gradient recomputes it.

use std::sync::Arc;

use mixnet_kernels::norm::Lrn;

use super::kernel::{check_float, info, load, run_kernel, store, with_real};
use crate::op::{Attrs, Blob, GradContext, OpContext, Operator, Registry, TensorInfo};
use crate::{Error, NDArray, Result, Shape};

const NAME: &str = "LRN";

/// A configured `LRN`.
pub struct LrnOp {
    alpha: f64,
    beta: f64,
    knorm: f64,
    nsize: usize,
}

fn build(_name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    let nsize = match attrs.opt_int("nsize")? {
        Some(n) if n > 0 && n % 2 == 1 => n as usize,
        Some(n) => return Err(Error::op(NAME, format!("nsize must be a positive odd number, got {n}"))),
        None => return Err(Error::op(NAME, "required attribute nsize is missing")),
    };
    // float fields in MXNet
    let f = |v: f64| v as f32 as f64;
    Ok(Arc::new(LrnOp {
        alpha: f(attrs.float("alpha", 1e-4)?),
        beta: f(attrs.float("beta", 0.75)?),
        knorm: f(attrs.float("knorm", 2.0)?),
        nsize,
    }))
}

impl LrnOp {
    fn geometry(&self, shape: &Shape) -> Result<Lrn> {
        let d = shape.dims();
        if d.len() != 4 {
            return Err(Error::op(
                NAME,
                format!("data must be 4-D (batch, channels, height, width), got {shape}"),
            ));
        }
        Ok(Lrn {
            batch: d[0],
            channels: d[1],
            spatial: d[2] * d[3],
            size: self.nsize,
            alpha: self.alpha,
            beta: self.beta,
            knorm: self.knorm,
        })
    }
}

impl Operator for LrnOp {
    fn name(&self) -> &'static str {
        NAME
    }
    fn num_inputs(&self) -> usize {
        1
    }
    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        check_float(NAME, "data", &inputs[0])?;
        self.geometry(&inputs[0].shape)?;
        Ok(vec![inputs[0].clone()])
    }
    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let g = self.geometry(inputs[0].shape())?;
        with_real!(inputs[0].dtype(), NAME, R => {
            let x = load::<R>(&inputs[0])?;
            store::<R>(&mut outputs[0], |o| {
                g.forward(&x, o);
                Ok(())
            })
        })
    }
    fn has_gradient(&self) -> bool {
        true
    }
    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let (x, dy) = (&ctx.inputs[0], &ctx.out_grads[0]);
        let g = self.geometry(x.shape())?;
        let dx =
            run_kernel("_backward_LRN", &[dy.clone(), x.clone()], vec![info(x)], move |_, ins, outs| {
                with_real!(ins[1].dtype(), NAME, R => {
                    let (dy, x) = (load::<R>(&ins[0])?, load::<R>(&ins[1])?);
                    store::<R>(&mut outs[0], |dx| {
                        g.backward(&x, &dy, dx);
                        Ok(())
                    })
                })
            })?;
        Ok(dx.into_iter().map(Some).collect())
    }
}

pub(crate) fn register(r: &mut Registry) {
    r.register_family(build, &[(NAME, &[])]);
}
