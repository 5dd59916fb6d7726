//! `LeakyReLU` (leaky, prelu, rrelu, elu, selu, gelu), MXNet's `leaky_relu-inl.h`.
//!
//! prelu takes a second input `gamma`, laid against the data from axis 1 (a `(C,)` gamma
//! scales channels of `(N, C, ...)`; a `(1,)` gamma is shared). rrelu returns two outputs,
//! `output` and `mask` (the slope of each element): random slopes in
//! `[lower_bound, upper_bound)` in training, their mean in inference.

use std::sync::Arc;

use mixnet_kernels::elementwise::broadcast_strides;
use mixnet_kernels::nn::{leaky_var_forward, par_units, par_units2, Act};
use mixnet_kernels::reduce::broadcast_copy;
use mixnet_kernels::Element;
use rand::Rng;

use super::activation;
use super::kernel::{check_float, info, load, run_kernel, store, store2, with_real, Compute};
use crate::op::{Attrs, Blob, GradContext, OpContext, OpDef, Operator, Registry, Resource, TensorInfo};
use crate::{Error, NDArray, Result};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// leaky, elu, selu, gelu: one elementwise function.
    Plain(Act),
    Prelu,
    Rrelu {
        lower: f32,
        upper: f32,
    },
}

/// A configured `LeakyReLU`.
pub struct LeakyReLU {
    kind: Kind,
}

const NAME: &str = "LeakyReLU";

fn build(name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    let act_type = attrs.choice("act_type", &["rrelu", "leaky", "prelu", "elu", "selu", "gelu"], "leaky")?;
    let slope = attrs.float("slope", 0.25)? as f32;
    let lower = attrs.float("lower_bound", 0.125)? as f32;
    let upper = attrs.float("upper_bound", 0.334)? as f32;
    let kind = match act_type {
        "leaky" => Kind::Plain(Act::Leaky(slope)),
        "elu" => Kind::Plain(Act::Elu(slope)),
        "selu" => Kind::Plain(Act::Selu),
        "gelu" => Kind::Plain(Act::Gelu),
        "prelu" => Kind::Prelu,
        "rrelu" => Kind::Rrelu { lower, upper },
        _ => return Err(Error::op(name, format!("unknown act_type {act_type}"))),
    };
    Ok(Arc::new(LeakyReLU { kind }))
}

/// MXNet's `expand_shape`: gamma's dimensions placed at data axes 0 and 1 from the right
/// end of gamma, 1 elsewhere.
fn gamma_shape(gamma: &[usize], data: &[usize]) -> Result<Vec<usize>> {
    let mut out = vec![1; data.len()];
    let mut s = gamma.len() as isize - 1;
    for i in (0..data.len()).rev() {
        if s >= 0 && i <= 1 && (data[i] == gamma[s as usize] || gamma[s as usize] == 1) {
            out[i] = gamma[s as usize];
            s -= 1;
        }
    }
    if s != -1 {
        return Err(Error::op(
            NAME,
            format!("cannot broadcast gamma {gamma:?} to data {data:?} (gamma is laid against axis 1)"),
        ));
    }
    Ok(out)
}

/// gamma broadcast to the data's shape.
fn gamma_full<R: Compute>(gamma: &[R], gshape: &[usize], data: &[usize]) -> Result<Vec<R>> {
    let strides = broadcast_strides(gshape, data)
        .ok_or_else(|| Error::op(NAME, format!("gamma {gshape:?} does not broadcast to {data:?}")))?;
    let mut full = vec![R::ZERO; data.iter().product()];
    broadcast_copy(gamma, &strides, &mut full, data);
    Ok(full)
}

impl Operator for LeakyReLU {
    fn name(&self) -> &'static str {
        NAME
    }
    fn num_inputs(&self) -> usize {
        if self.kind == Kind::Prelu {
            2
        } else {
            1
        }
    }
    fn num_outputs(&self) -> usize {
        if matches!(self.kind, Kind::Rrelu { .. }) {
            2
        } else {
            1
        }
    }
    fn input_names(&self) -> Vec<String> {
        if self.kind == Kind::Prelu {
            vec!["data".into(), "gamma".into()]
        } else {
            vec!["data".into()]
        }
    }
    fn inplace(&self) -> &[(usize, usize)] {
        &[(0, 0)]
    }
    fn resources(&self) -> &[Resource] {
        if matches!(self.kind, Kind::Rrelu { .. }) {
            &[Resource::Random]
        } else {
            &[]
        }
    }
    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        let data = &inputs[0];
        check_float(NAME, "data", data)?;
        if data.shape.ndim() == 0 {
            return Err(Error::op(NAME, "data must have at least one dimension"));
        }
        if self.kind == Kind::Prelu {
            let g = &inputs[1];
            if g.dtype != data.dtype {
                return Err(Error::op(
                    NAME,
                    format!("gamma dtype {} differs from data dtype {}", g.dtype, data.dtype),
                ));
            }
            gamma_shape(g.shape.dims(), data.shape.dims())?;
        }
        Ok(vec![data.clone(); self.num_outputs()])
    }
    fn compute(&self, ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        match self.kind {
            Kind::Plain(act) => activation::forward_blobs(NAME, act, &inputs[0], &mut outputs[0]),
            Kind::Prelu => {
                let dshape = inputs[0].shape().dims().to_vec();
                let gshape = gamma_shape(inputs[1].shape().dims(), &dshape)?;
                with_real!(inputs[0].dtype(), NAME, R => {
                    let (x, g) = (load::<R>(&inputs[0])?, load::<R>(&inputs[1])?);
                    let slopes = gamma_full(&g, &gshape, &dshape)?;
                    store::<R>(&mut outputs[0], |o| {
                        leaky_var_forward(&x, &|i| slopes[i], o);
                        Ok(())
                    })
                })
            }
            Kind::Rrelu { lower, upper } => {
                let (out, mask) = outputs.split_at_mut(1);
                with_real!(inputs[0].dtype(), NAME, R => {
                    let x = load::<R>(&inputs[0])?;
                    let n = x.len();
                    let slopes: Vec<R> = if ctx.is_train {
                        // Uniform in [0, 1), scaled into [lower, upper) as MXNet does.
                        let (range, low) = (R::from_f64((upper - lower) as f64), R::from_f64(lower as f64));
                        crate::resource::random(ctx.ctx).with_rng(|rng| {
                            (0..n).map(|_| R::from_f64(rng.gen::<f32>() as f64) * range + low).collect()
                        })
                    } else {
                        vec![R::from_f64(((lower + upper) / 2.0) as f64); n]
                    };
                    store::<R>(&mut out[0], |o| {
                        leaky_var_forward(&x, &|i| slopes[i], o);
                        Ok(())
                    })?;
                    super::kernel::write::<R>(&mut mask[0], &slopes)
                })
            }
        }
    }
    fn has_gradient(&self) -> bool {
        true
    }
    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let (dy, x, y) = (&ctx.out_grads[0], &ctx.inputs[0], &ctx.outputs[0]);
        match self.kind {
            Kind::Plain(act) => Ok(vec![Some(activation::backward("_backward_LeakyReLU", act, dy, x, y)?)]),
            Kind::Rrelu { .. } => {
                // dx = dy * (y > 0 ? 1 : mask)
                let mask = &ctx.outputs[1];
                let mut r = run_kernel(
                    "_backward_LeakyReLU",
                    &[dy.clone(), y.clone(), mask.clone()],
                    vec![info(x)],
                    move |_, ins, outs| {
                        with_real!(ins[0].dtype(), NAME, R => {
                            let (dy, y, m) = (load::<R>(&ins[0])?, load::<R>(&ins[1])?, load::<R>(&ins[2])?);
                            store::<R>(&mut outs[0], |dx| {
                                par_units(dx, 1, &|i, o| {
                                    for (k, o) in o.iter_mut().enumerate() {
                                        let j = i + k;
                                        *o = dy[j] * if y[j] > R::ZERO { R::ONE } else { m[j] };
                                    }
                                });
                                Ok(())
                            })
                        })
                    },
                )?;
                Ok(vec![Some(r.remove(0))])
            }
            Kind::Prelu => {
                let gamma = &ctx.inputs[1];
                let dshape = x.shape().dims().to_vec();
                let gshape = gamma_shape(gamma.shape().dims(), &dshape)?;
                let gs = gshape.clone();
                // dx = dy * (x > 0 ? 1 : gamma);  dgamma (before summing) = dy * (x > 0 ? 0 : x)
                let mut r = run_kernel(
                    "_backward_LeakyReLU",
                    &[dy.clone(), x.clone(), gamma.clone()],
                    vec![info(x), info(x)],
                    move |_, ins, outs| {
                        let (a, b) = outs.split_at_mut(1);
                        with_real!(ins[0].dtype(), NAME, R => {
                            let (dy, x, g) = (load::<R>(&ins[0])?, load::<R>(&ins[1])?, load::<R>(&ins[2])?);
                            let slopes = gamma_full(&g, &gs, &dshape)?;
                            store2::<R>(&mut a[0], &mut b[0], |dx, dg| {
                                par_units2(dx, dg, 1, &|i, dx, dg| {
                                    for k in 0..dx.len() {
                                        let j = i + k;
                                        let pos = x[j] > R::ZERO;
                                        dx[k] = dy[j] * if pos { R::ONE } else { slopes[j] };
                                        dg[k] = dy[j] * if pos { R::ZERO } else { x[j] };
                                    }
                                });
                                Ok(())
                            })
                        })
                    },
                )?;
                let dg_full = r.remove(1);
                let dg = crate::operator::binary::sum_to_shape(&dg_full, &gshape)?;
                let dims: Vec<i64> = gamma.shape().dims().iter().map(|&d| d as i64).collect();
                Ok(vec![Some(r.remove(0)), Some(dg.reshape(&dims)?)])
            }
        }
    }
}

pub(crate) fn register(r: &mut Registry) {
    r.register(OpDef { name: NAME, aliases: &[], build });
}

#[cfg(test)]
mod tests {
    use super::gamma_shape;

    #[test]
    fn gamma_lies_against_axis_one() {
        assert_eq!(gamma_shape(&[3], &[2, 3, 4]).unwrap(), vec![1, 3, 1]);
        assert_eq!(gamma_shape(&[1], &[2, 3, 4]).unwrap(), vec![1, 1, 1]);
        assert_eq!(gamma_shape(&[5], &[5]).unwrap(), vec![5]);
        assert!(gamma_shape(&[4], &[2, 3, 4]).is_err());
    }
}
