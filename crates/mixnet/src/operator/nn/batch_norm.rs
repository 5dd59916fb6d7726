//! `BatchNorm` (MXNet's `nn/batch_norm`): inputs `data, gamma, beta, moving_mean,
//! moving_var`; outputs `output` and the hidden batch `mean` and `var` (visible with
//! `output_mean_var=True`; as in MXNet's CPU kernel, `var` holds `1/sqrt(var + eps)`). In training without `use_global_stats` it normalizes with the
//! batch statistics (biased variance) and updates the moving statistics in place,
//! `moving = moving * momentum + batch * (1 - momentum)`, during the forward pass as
//! MXNet's oneDNN build does; otherwise it uses the moving statistics. `fix_gamma` treats
//! gamma as 1 (and gives it a zero gradient).
//!
//! `BatchNorm_v1` is MXNet's legacy form: channel axis 1, and its third output is the
//! batch variance itself. MXNet's v1 updates the moving statistics in the backward pass
//! (and writes 1s into gamma under `fix_gamma`); here they update in the forward pass, as
//! `BatchNorm`'s do, and gamma is left alone — the same state after forward and backward.

use std::sync::Arc;

use mixnet_kernels::nn::{channel_affine, channel_moments};
use mixnet_kernels::Element;

use super::kernel::{
    check_float, info, load, norm_axis, run_kernel, split_at_axis, store, with_real, write, Compute,
};
use crate::op::{Attrs, Blob, GradContext, OpContext, OpDef, Operator, Registry, TensorInfo};
use crate::{Error, NDArray, Result};

const NAME: &str = "BatchNorm";
const NAME_V1: &str = "BatchNorm_v1";

/// A configured `BatchNorm`.
pub struct BatchNorm {
    eps: f64,
    momentum: f32,
    fix_gamma: bool,
    use_global_stats: bool,
    output_mean_var: bool,
    axis: i64,
    /// `BatchNorm_v1`: the third output holds the variance, not `1/sqrt(var + eps)`.
    v1: bool,
}

fn build(name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    let v1 = name == NAME_V1;
    let op = BatchNorm {
        // MXNet declares the default as the float literal 1e-3f.
        eps: attrs.float("eps", 1e-3f32 as f64)?,
        momentum: attrs.float("momentum", 0.9)? as f32,
        fix_gamma: attrs.bool("fix_gamma", true)?,
        use_global_stats: attrs.bool("use_global_stats", false)?,
        output_mean_var: attrs.bool("output_mean_var", false)?,
        axis: if v1 { 1 } else { attrs.int("axis", 1)? },
        v1,
    };
    attrs.get("cudnn_off");
    attrs.get("min_calib_range");
    attrs.get("max_calib_range");
    Ok(Arc::new(op))
}

/// `1 / sqrt(var + eps)` as MXNet's `VARIANCE_TO_INVSTD`.
pub(crate) fn invstd<R: Compute>(var: R, eps: f64) -> R {
    R::from_f64(1.0 / (var.to_f64() + R::from_f64(eps).to_f64()).sqrt())
}

impl BatchNorm {
    fn dims(&self, shape: &[usize]) -> Result<(usize, usize, usize)> {
        Ok(split_at_axis(shape, norm_axis(NAME, self.axis, shape.len())?))
    }
}

impl Operator for BatchNorm {
    fn name(&self) -> &'static str {
        if self.v1 {
            NAME_V1
        } else {
            NAME
        }
    }
    fn num_inputs(&self) -> usize {
        5
    }
    fn num_outputs(&self) -> usize {
        3
    }
    fn num_visible_outputs(&self) -> usize {
        if self.output_mean_var {
            3
        } else {
            1
        }
    }
    fn input_names(&self) -> Vec<String> {
        ["data", "gamma", "beta", "moving_mean", "moving_var"].iter().map(|s| s.to_string()).collect()
    }
    fn mutate_inputs(&self) -> &[usize] {
        &[3, 4]
    }
    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        let data = &inputs[0];
        check_float(self.name(), "data", data)?;
        let (_, c, _) = self.dims(data.shape.dims())?;
        let names = ["gamma", "beta", "moving_mean", "moving_var"];
        for (i, p) in inputs[1..].iter().enumerate() {
            check_float(self.name(), names[i], p)?;
            if p.shape.dims() != [c] {
                return Err(Error::op(
                    self.name(),
                    format!(
                        "{} has shape {}, expected ({c},) for {c} channels on axis {}",
                        names[i], p.shape, self.axis
                    ),
                ));
            }
        }
        let stat = TensorInfo { shape: inputs[1].shape.clone(), dtype: inputs[1].dtype };
        Ok(vec![data.clone(), stat.clone(), stat])
    }
    fn compute(&self, ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let dims = self.dims(inputs[0].shape().dims())?;
        let batch_stats = ctx.is_train && !self.use_global_stats;
        let (params, moving) = inputs.split_at_mut(3);
        with_real!(params[0].dtype(), self.name(), R => {
            let x = load::<R>(&params[0])?;
            let (gamma, beta) = (load::<R>(&params[1])?, load::<R>(&params[2])?);
            let (mean, var) = if batch_stats {
                let (mean, var) = channel_moments(&x, dims);
                let m = R::from_f64(self.momentum as f64);
                let keep = R::from_f64((1.0 - self.momentum) as f64);
                let mm: Vec<R> = load::<R>(&moving[0])?.iter().zip(&mean).map(|(&a, &b)| a * m + b * keep).collect();
                let mv: Vec<R> = load::<R>(&moving[1])?.iter().zip(&var).map(|(&a, &b)| a * m + b * keep).collect();
                write(&mut moving[0], &mm)?;
                write(&mut moving[1], &mv)?;
                (mean, var)
            } else {
                (load::<R>(&moving[0])?.into_owned(), load::<R>(&moving[1])?.into_owned())
            };
            let invstds: Vec<R> = var
                .iter()
                .map(|&v| if batch_stats && v == R::ZERO && self.eps == 0.0 { R::ZERO } else { invstd(v, self.eps) })
                .collect();
            let weight: Vec<R> = if self.fix_gamma { vec![R::ONE; gamma.len()] } else { gamma.into_owned() };
            store::<R>(&mut outputs[0], |o| {
                channel_affine(&x, dims, &mean, &invstds, &weight, &beta, o);
                Ok(())
            })?;
            write(&mut outputs[1], &mean)?;
            // The third output is 1/sqrt(var + eps), as MXNet's CPU kernel saves it (v1:
            // the variance).
            write(&mut outputs[2], if self.v1 { &var } else { &invstds })
        })
    }
    fn has_gradient(&self) -> bool {
        true
    }
    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let (x, gamma, dy) = (&ctx.inputs[0], &ctx.inputs[1], &ctx.out_grads[0]);
        // The statistics the forward pass used are its saved outputs (the batch's, or the
        // moving ones in inference). MXNet's backward runs in training mode (autograd's
        // default `train_mode=True`), so unless `use_global_stats` the gradient takes the
        // batch form, with those statistics, even after an inference-mode forward.
        let batch_stats = !self.use_global_stats;
        let (mean, var) =
            if batch_stats { (&ctx.outputs[1], &ctx.outputs[2]) } else { (&ctx.inputs[3], &ctx.inputs[4]) };
        let dims = self.dims(x.shape().dims())?;
        let (eps, fix_gamma, saved_invstd) = (self.eps, self.fix_gamma, batch_stats && !self.v1);
        let ins = [dy.clone(), x.clone(), gamma.clone(), mean.clone(), var.clone()];
        let outs = vec![info(x), info(gamma), info(&ctx.inputs[2])];
        let mut r = run_kernel("_backward_BatchNorm", &ins, outs, move |_, ins, outs| {
            let (outer, c, inner) = dims;
            with_real!(ins[0].dtype(), NAME, R => {
                let (dy, x, g) = (load::<R>(&ins[0])?, load::<R>(&ins[1])?, load::<R>(&ins[2])?);
                let (mean, var) = (load::<R>(&ins[3])?, load::<R>(&ins[4])?);
                let count = R::from_f64((outer * inner) as f64);
                let mut dgamma = vec![R::ZERO; c];
                let mut dbeta = vec![R::ZERO; c];
                let mut dx = vec![R::ZERO; x.len()];
                for ch in 0..c {
                    let w = if fix_gamma { R::ONE } else { g[ch] };
                    let is = if saved_invstd { var[ch] } else { invstd(var[ch], eps) };
                    let (mut sum, mut dotp) = (R::ZERO, R::ZERO);
                    for o in 0..outer {
                        let at = (o * c + ch) * inner;
                        for k in at..at + inner {
                            sum += dy[k];
                            dotp += (x[k] - mean[ch]) * dy[k];
                        }
                    }
                    let iw = is * w;
                    let (kk, gm) = (dotp * is * is / count, sum / count);
                    for o in 0..outer {
                        let at = (o * c + ch) * inner;
                        for k in at..at + inner {
                            dx[k] = if batch_stats { (dy[k] - gm - (x[k] - mean[ch]) * kk) * iw } else { dy[k] * iw };
                        }
                    }
                    dgamma[ch] = if fix_gamma { R::ZERO } else { dotp * is };
                    dbeta[ch] = sum;
                }
                write(&mut outs[0], &dx)?;
                write(&mut outs[1], &dgamma)?;
                write(&mut outs[2], &dbeta)
            })
        })?;
        let dbeta = r.remove(2);
        let dgamma = r.remove(1);
        Ok(vec![Some(r.remove(0)), Some(dgamma), Some(dbeta), None, None])
    }
}

pub(crate) fn register(r: &mut Registry) {
    r.register(OpDef { name: NAME, aliases: &[], build });
    r.register(OpDef { name: NAME_V1, aliases: &[], build });
}
