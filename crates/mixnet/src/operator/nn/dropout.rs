//! `Dropout` (MXNet's `nn/dropout-inl.h`): in training (or with `mode='always'`) each
//! element is kept with probability `1 - p` and scaled by `1 / (1 - p)`; `axes` shares one
//! draw along those axes (variational dropout). Outputs `output` and the hidden `mask`
//! (the scale applied to each element, with the data's shape except 1 along `axes`); the
//! gradient is the head times the mask. In inference the op is the identity (mask of ones).

use std::sync::Arc;

use mixnet_kernels::elementwise::broadcast_strides;
use mixnet_kernels::nn::par_units;
use mixnet_kernels::reduce::broadcast_copy;
use mixnet_kernels::Element;
use rand::Rng;

use super::kernel::{check_float, info, load, run_kernel, store, with_real, Compute};
use crate::op::{Attrs, Blob, GradContext, OpContext, OpDef, Operator, Registry, Resource, TensorInfo};
use crate::{Error, NDArray, Result};

const NAME: &str = "Dropout";

/// A configured `Dropout`.
pub struct Dropout {
    p: f32,
    always: bool,
    axes: Vec<i64>,
}

fn build(name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    let p = attrs.float("p", 0.5)? as f32;
    if !(0.0..=1.0).contains(&p) {
        return Err(Error::op(name, format!("p={p} must lie in [0, 1]")));
    }
    let always = attrs.choice("mode", &["training", "always"], "training")? == "always";
    let axes = attrs.tuple("axes")?.unwrap_or_default();
    attrs.get("cudnn_off"); // a GPU switch; nothing to do on CPU
    Ok(Arc::new(Dropout { p, always, axes }))
}

impl Dropout {
    fn mask_shape(&self, shape: &[usize]) -> Result<Vec<usize>> {
        let mut m = shape.to_vec();
        for &a in &self.axes {
            let i = super::kernel::norm_axis(NAME, a, shape.len())?;
            m[i] = 1;
        }
        Ok(m)
    }
}

/// `out = x * broadcast(mask)`.
fn apply_mask<R: Compute>(
    x: &[R],
    mask: &[R],
    mshape: &[usize],
    shape: &[usize],
    out: &mut [R],
) -> Result<()> {
    if mask.len() == x.len() {
        par_units(out, 1, &|i, o| {
            for (k, o) in o.iter_mut().enumerate() {
                *o = x[i + k] * mask[i + k];
            }
        });
        return Ok(());
    }
    let strides = broadcast_strides(mshape, shape)
        .ok_or_else(|| Error::op(NAME, "mask does not broadcast to the data"))?;
    broadcast_copy(mask, &strides, out, shape);
    par_units(out, 1, &|i, o| {
        for (k, o) in o.iter_mut().enumerate() {
            *o = x[i + k] * *o;
        }
    });
    Ok(())
}

impl Operator for Dropout {
    fn name(&self) -> &'static str {
        NAME
    }
    fn num_inputs(&self) -> usize {
        1
    }
    fn num_outputs(&self) -> usize {
        2
    }
    fn num_visible_outputs(&self) -> usize {
        1
    }
    fn inplace(&self) -> &[(usize, usize)] {
        &[(0, 0)]
    }
    fn resources(&self) -> &[Resource] {
        &[Resource::Random]
    }
    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        let x = &inputs[0];
        check_float(NAME, "data", x)?;
        let m = self.mask_shape(x.shape.dims())?;
        Ok(vec![x.clone(), TensorInfo::new(crate::Shape::new(&m), x.dtype)])
    }
    fn compute(&self, ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let shape = inputs[0].shape().dims().to_vec();
        let mshape = self.mask_shape(&shape)?;
        let pkeep = 1.0f32 - self.p;
        let active = pkeep < 1.0 && (ctx.is_train || self.always);
        let (out, mask_out) = outputs.split_at_mut(1);
        with_real!(inputs[0].dtype(), NAME, R => {
            let x = load::<R>(&inputs[0])?;
            let n: usize = mshape.iter().product();
            let mask: Vec<R> = if active {
                // Keep when a uniform draw is below pkeep; kept elements scale by 1/pkeep
                // (computed in float, as MXNet).
                let scale = R::from_f64((1.0f32 / pkeep) as f64);
                crate::resource::random(ctx.ctx)
                    .with_rng(|rng| (0..n).map(|_| if rng.gen::<f32>() < pkeep { scale } else { R::ZERO }).collect())
            } else {
                vec![R::ONE; n]
            };
            store::<R>(&mut out[0], |o| apply_mask(&x, &mask, &mshape, &shape, o))?;
            super::kernel::write::<R>(&mut mask_out[0], &mask)
        })
    }
    fn has_gradient(&self) -> bool {
        true
    }
    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let (x, dy, mask) = (&ctx.inputs[0], &ctx.out_grads[0], &ctx.outputs[1]);
        let shape = x.shape().dims().to_vec();
        let mshape = mask.shape().dims().to_vec();
        let mut r = run_kernel(
            "_backward_Dropout",
            &[dy.clone(), mask.clone()],
            vec![info(x)],
            move |_, ins, outs| {
                with_real!(ins[0].dtype(), NAME, R => {
                    let (dy, m) = (load::<R>(&ins[0])?, load::<R>(&ins[1])?);
                    store::<R>(&mut outs[0], |dx| apply_mask(&dy, &m, &mshape, &shape, dx))
                })
            },
        )?;
        Ok(vec![Some(r.remove(0))])
    }
}

pub(crate) fn register(r: &mut Registry) {
    r.register(OpDef { name: NAME, aliases: &[], build });
}
