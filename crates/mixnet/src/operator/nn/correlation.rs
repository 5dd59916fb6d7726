//! `Correlation` (MXNet's `correlation.cc`, FlowNet's correlation layer) with gradients for
//! both maps. MXNet's two hidden padded-copy outputs are not materialized.

use std::sync::Arc;

use mixnet_kernels::correlation::Correlation as Geom;

use super::kernel::{check_float, info, load, run_kernel, store, store2, with_real};
use crate::op::{Attrs, Blob, GradContext, OpContext, OpDef, Operator, Registry, TensorInfo};
use crate::{Error, NDArray, Result, Shape};

const NAME: &str = "Correlation";

/// A configured `Correlation`.
pub struct Correlation {
    kernel: usize,
    max_displacement: usize,
    stride1: usize,
    stride2: usize,
    pad: usize,
    multiply: bool,
}

fn build(_name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    let mut positive = |key: &str, default: i64, min: i64| -> Result<usize> {
        let v = attrs.int(key, default)?;
        if v < min {
            return Err(Error::op(NAME, format!("{key}={v} must be at least {min}")));
        }
        Ok(v as usize)
    };
    let kernel = positive("kernel_size", 1, 1)?;
    let max_displacement = positive("max_displacement", 1, 0)?;
    let stride1 = positive("stride1", 1, 1)?;
    let stride2 = positive("stride2", 1, 1)?;
    let pad = positive("pad_size", 0, 0)?;
    let multiply = attrs.bool("is_multiply", true)?;
    Ok(Arc::new(Correlation { kernel, max_displacement, stride1, stride2, pad, multiply }))
}

impl Correlation {
    fn geometry(&self, a: &Shape, b: &Shape) -> Result<Geom> {
        let &[n, c, h, w] = a.dims() else {
            return Err(Error::op(NAME, format!("data1 must be 4-D (N, C, H, W), got {a}")));
        };
        if a != b {
            return Err(Error::op(NAME, format!("data1 {a} and data2 {b} must have the same shape")));
        }
        Ok(Geom {
            batch: n,
            channels: c,
            hw: (h, w),
            kernel: self.kernel,
            max_displacement: self.max_displacement,
            stride1: self.stride1,
            stride2: self.stride2,
            pad: self.pad,
            multiply: self.multiply,
        })
    }
}

impl Operator for Correlation {
    fn name(&self) -> &'static str {
        NAME
    }
    fn num_inputs(&self) -> usize {
        2
    }
    fn input_names(&self) -> Vec<String> {
        vec!["data1".into(), "data2".into()]
    }
    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        check_float(NAME, "data1", &inputs[0])?;
        if inputs[1].dtype != inputs[0].dtype {
            return Err(Error::op(
                NAME,
                format!("data2 must be {}, got {}", inputs[0].dtype, inputs[1].dtype),
            ));
        }
        let g = self.geometry(&inputs[0].shape, &inputs[1].shape)?;
        let (c, h, w) = g.out_shape().ok_or_else(|| {
            Error::op(
                NAME,
                format!(
                    "the neighbourhood (max_displacement {}) and kernel ({}) do not fit in data {} padded by {}",
                    self.max_displacement, self.kernel, inputs[0].shape, self.pad
                ),
            )
        })?;
        Ok(vec![TensorInfo::new(Shape::new(&[g.batch, c, h, w]), inputs[0].dtype)])
    }
    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let g = self.geometry(inputs[0].shape(), inputs[1].shape())?;
        with_real!(inputs[0].dtype(), NAME, R => {
            let (a, b) = (load::<R>(&inputs[0])?, load::<R>(&inputs[1])?);
            store::<R>(&mut outputs[0], |o| {
                g.forward(&a, &b, o);
                Ok(())
            })
        })
    }
    fn has_gradient(&self) -> bool {
        true
    }
    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let (a, b) = (&ctx.inputs[0], &ctx.inputs[1]);
        let g = self.geometry(a.shape(), b.shape())?;
        let ins = [ctx.out_grads[0].clone(), a.clone(), b.clone()];
        let grads =
            run_kernel("_backward_Correlation", &ins, vec![info(a), info(b)], move |_, ins, outs| {
                with_real!(ins[0].dtype(), NAME, R => {
                    let (dy, a, b) = (load::<R>(&ins[0])?, load::<R>(&ins[1])?, load::<R>(&ins[2])?);
                    let (da, db) = outs.split_at_mut(1);
                    store2::<R>(&mut da[0], &mut db[0], |da, db| {
                        g.backward(&a, &b, &dy, da, db);
                        Ok(())
                    })
                })
            })?;
        Ok(grads.into_iter().map(Some).collect())
    }
}

pub(crate) fn register(r: &mut Registry) {
    r.register(OpDef { name: NAME, aliases: &[], build });
}
