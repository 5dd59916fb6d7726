//! Optimizer updates (MXNet's `src/operator/optimizer_op.cc`, `contrib/adamw.cc`,
//! `contrib/multi_lars.cc`, `contrib/multi_sum_sq.cc`, `contrib/all_finite.cc`).
//!
//! An update reads `weight` and `grad`, writes its states in place (MXNet's
//! `FMutateInputs`: `mom`, `mean`/`var`, `weight32`, ...) and returns the new weight; the
//! Python optimizers call it with `out=weight`. Hyper-parameters are MXNet's `float`
//! fields, so they are rounded to f32 before use, and `clip_gradient < 0` turns clipping
//! off. Rules compute in the weight's dtype (f32 or f64; half types in f32), the
//! multi-precision ones (`mp_*`, `multi_mp_*`) in f32 on the master weights.

use std::sync::Arc;

use mixnet_kernels::optimizer::{self as k, Adam, Ftml, Grad, LambBias, RmsProp};
use mixnet_kernels::unary::Real;
use mixnet_kernels::Element;

use crate::op::{Attrs, Blob, OpContext, OpDef, Operator, Registry, TensorInfo};
use crate::{with_dtype, DType, Error, NativeType, Result};

/// How one input relates to the weight of its group.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Arg {
    /// The weight of group `g`: defines the shape, dtype and the output.
    Weight(usize),
    /// Same shape and dtype as the weight of group `g`.
    Same(usize),
    /// Same shape as the weight of group `g`, float32 (states of multi-precision rules).
    F32(usize),
    /// A one-element array of the weight's dtype (`r1`, `r2` of LAMB).
    ScalarSame(usize),
    /// A one-element float32 array (`rescale_grad` of AdamW).
    ScalarF32,
    /// A float32 array with one value per weight (`lrs`, `wds` of the preloaded updates).
    PerWeightF32,
}

/// The update rule and its parsed hyper-parameters (f32 values held as f64).
#[derive(Clone, Debug)]
enum Rule {
    Sgd {
        lr: f64,
        wd: f64,
    },
    SgdMom {
        lr: f64,
        wd: f64,
        momentum: f64,
    },
    Nag {
        lr: f64,
        wd: f64,
        momentum: f64,
    },
    Adam(Adam<f64>),
    AdamW {
        p: Adam<f64>,
        eta: f64,
    },
    RmsProp(RmsProp<f64>),
    RmsPropAlex(RmsProp<f64>),
    Ftrl {
        lr: f64,
        lamda1: f64,
        beta: f64,
        wd: f64,
    },
    Ftml(Ftml<f64>),
    SignSgd {
        lr: f64,
        wd: f64,
    },
    Signum {
        lr: f64,
        wd: f64,
        momentum: f64,
        wd_lh: f64,
    },
    Lamb1 {
        beta1: f64,
        beta2: f64,
        epsilon: f64,
        wd: f64,
        bias: Option<(f64, f64)>,
    },
    Lamb2 {
        lr: f64,
        lower: f64,
        upper: f64,
    },
    /// `rates` are `(lrs, wds)` from the attributes; `None` reads them from the last two
    /// inputs (`preloaded_multi_*`).
    MultiSgd {
        rates: Option<(Vec<f64>, Vec<f64>)>,
        momentum: Option<f64>,
    },
    MultiLamb(MultiLamb),
    MultiAdamW {
        lrs: Vec<f64>,
        wds: Vec<f64>,
        etas: Vec<f64>,
        beta1: f64,
        beta2: f64,
        epsilon: f64,
    },
}

/// `_multi_lamb_update`'s hyper-parameters.
#[derive(Clone, Debug)]
struct MultiLamb {
    lrs: Vec<f64>,
    wds: Vec<f64>,
    steps: Vec<i64>,
    beta1: f64,
    beta2: f64,
    epsilon: f64,
    lower: f64,
    upper: f64,
    bias_correction: bool,
}

/// A configured optimizer update.
pub struct UpdateOp {
    name: &'static str,
    rule: Rule,
    /// Multi-precision: the rule runs in f32 on `weight32` and writes it back.
    mp: bool,
    rescale: f64,
    clip: Option<f64>,
    args: Vec<Arg>,
    names: Vec<String>,
    mutate: Vec<usize>,
    groups: usize,
    /// The outputs' dtype when it is not the weight's (`mp_lamb_update_phase1`'s f32 `g`).
    out_dtype: Option<DType>,
}

/// An MXNet `float` attribute: parsed, then rounded to f32.
fn f32_attr(attrs: &mut Attrs<'_>, key: &str, default: f64) -> Result<f64> {
    Ok(attrs.float(key, default)? as f32 as f64)
}

fn required_f32(attrs: &mut Attrs<'_>, key: &str) -> Result<f64> {
    match attrs.opt_float(key)? {
        Some(v) => Ok(v as f32 as f64),
        None => Err(Error::op(attrs.op(), format!("required attribute {key} is missing"))),
    }
}

/// A required `Tuple<float>` attribute (`lrs`, `wds`, `etas`), rounded to f32 as MXNet's.
fn float_tuple(attrs: &mut Attrs<'_>, key: &str) -> Result<Vec<f64>> {
    let op = attrs.op();
    let v = attrs
        .float_tuple(key)?
        .ok_or_else(|| Error::op(op, format!("required attribute {key} is missing")))?;
    Ok(v.into_iter().map(|x| x as f32 as f64).collect())
}

/// `clip_gradient` (or FTML's `clip_grad`): negative turns clipping off.
fn clip_attr(attrs: &mut Attrs<'_>, key: &str) -> Result<Option<f64>> {
    let c = f32_attr(attrs, key, -1.0)?;
    Ok((c >= 0.0).then_some(c))
}

fn build(name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    use Arg::*;
    let one = |extra: &[(&str, Arg)]| -> (Vec<Arg>, Vec<String>) {
        let mut args = vec![Weight(0), Same(0)];
        let mut names = vec!["weight".to_string(), "grad".to_string()];
        for (n, a) in extra {
            args.push(*a);
            names.push(n.to_string());
        }
        (args, names)
    };
    let mut mp = false;
    let mut out_dtype = None;
    let mut mutate_override = None;
    let mut clip_key = "clip_gradient";
    let mut rescale_key = Some("rescale_grad");
    let mut groups = 1;
    let (rule, (args, names)) = match name {
        "sgd_update" | "mp_sgd_update" => {
            attrs.bool("lazy_update", true)?;
            mp = name == "mp_sgd_update";
            let rule = Rule::Sgd { lr: required_f32(attrs, "lr")?, wd: f32_attr(attrs, "wd", 0.0)? };
            (rule, if mp { one(&[("weight32", F32(0))]) } else { one(&[]) })
        }
        "sgd_mom_update" | "mp_sgd_mom_update" | "nag_mom_update" | "mp_nag_mom_update" => {
            if name.contains("sgd") {
                attrs.bool("lazy_update", true)?;
            }
            mp = name.starts_with("mp_");
            let (lr, wd) = (required_f32(attrs, "lr")?, f32_attr(attrs, "wd", 0.0)?);
            let momentum = f32_attr(attrs, "momentum", 0.0)?;
            let rule = if name.contains("nag") {
                Rule::Nag { lr, wd, momentum }
            } else {
                Rule::SgdMom { lr, wd, momentum }
            };
            (rule, if mp { one(&[("mom", F32(0)), ("weight32", F32(0))]) } else { one(&[("mom", Same(0))]) })
        }
        "adam_update" => {
            attrs.bool("lazy_update", true)?;
            (Rule::Adam(adam_params(attrs)?), one(&[("mean", Same(0)), ("var", Same(0))]))
        }
        "_adamw_update" | "_mp_adamw_update" => {
            mp = name == "_mp_adamw_update";
            rescale_key = None;
            let p = adam_params(attrs)?;
            let eta = required_f32(attrs, "eta")?;
            let args = if mp {
                one(&[("mean", F32(0)), ("var", F32(0)), ("weight32", F32(0)), ("rescale_grad", ScalarF32)])
            } else {
                one(&[("mean", Same(0)), ("var", Same(0)), ("rescale_grad", ScalarF32)])
            };
            (Rule::AdamW { p, eta }, args)
        }
        "rmsprop_update" | "rmspropalex_update" => {
            let alex = name == "rmspropalex_update";
            let p = RmsProp {
                lr: required_f32(attrs, "lr")?,
                gamma1: f32_attr(attrs, "gamma1", 0.95)?,
                gamma2: if alex { f32_attr(attrs, "gamma2", 0.9)? } else { 0.0 },
                epsilon: f32_attr(attrs, "epsilon", 1e-8)?,
                wd: f32_attr(attrs, "wd", 0.0)?,
                clip_weights: {
                    let c = f32_attr(attrs, "clip_weights", -1.0)?;
                    (c >= 0.0).then_some(c)
                },
            };
            if alex {
                (Rule::RmsPropAlex(p), one(&[("n", Same(0)), ("g", Same(0)), ("delta", Same(0))]))
            } else {
                (Rule::RmsProp(p), one(&[("n", Same(0))]))
            }
        }
        "ftrl_update" => {
            let rule = Rule::Ftrl {
                lr: required_f32(attrs, "lr")?,
                lamda1: f32_attr(attrs, "lamda1", 0.01)?,
                beta: f32_attr(attrs, "beta", 1.0)?,
                wd: f32_attr(attrs, "wd", 0.0)?,
            };
            (rule, one(&[("z", Same(0)), ("n", Same(0))]))
        }
        "ftml_update" => {
            clip_key = "clip_grad";
            let lr = required_f32(attrs, "lr")?;
            let beta1 = f32_attr(attrs, "beta1", 0.6)?;
            let beta2 = f32_attr(attrs, "beta2", 0.999)?;
            // `epsilon` is a double field here; its default is the float 1e-8f.
            let epsilon = attrs.float("epsilon", 1e-8f32 as f64)?;
            let t = attrs.opt_int("t")?.ok_or_else(|| Error::op(name, "required attribute t is missing"))?;
            let wd = f32_attr(attrs, "wd", 0.0)?;
            let rule = Rule::Ftml(Ftml { lr, beta1, beta2, epsilon, t: t as f64, wd });
            (rule, one(&[("d", Same(0)), ("v", Same(0)), ("z", Same(0))]))
        }
        "signsgd_update" => {
            let rule = Rule::SignSgd { lr: required_f32(attrs, "lr")?, wd: f32_attr(attrs, "wd", 0.0)? };
            (rule, one(&[]))
        }
        "signum_update" => {
            let rule = Rule::Signum {
                lr: required_f32(attrs, "lr")?,
                momentum: f32_attr(attrs, "momentum", 0.0)?,
                wd: f32_attr(attrs, "wd", 0.0)?,
                wd_lh: f32_attr(attrs, "wd_lh", 0.0)?,
            };
            (rule, one(&[("mom", Same(0))]))
        }
        "lamb_update_phase1" | "mp_lamb_update_phase1" => {
            mp = name.starts_with("mp_");
            let beta1 = f32_attr(attrs, "beta1", 0.9)?;
            let beta2 = f32_attr(attrs, "beta2", 0.999)?;
            let epsilon = f32_attr(attrs, "epsilon", 1e-6)?;
            let t = attrs.opt_int("t")?.ok_or_else(|| Error::op(name, "required attribute t is missing"))?;
            let bc = attrs.bool("bias_correction", true)?;
            let wd = required_f32(attrs, "wd")?;
            // `std::pow(float, int)` is computed in double.
            let bias = bc.then(|| (beta1.powi(t as i32), beta2.powi(t as i32)));
            let rule = Rule::Lamb1 { beta1, beta2, epsilon, wd, bias };
            if mp {
                // `g` comes out in f32; MXNet leaves `weight32` unwritten (reads it for wd).
                out_dtype = Some(DType::F32);
                mutate_override = Some(vec![2, 3]);
                (rule, one(&[("mean", F32(0)), ("var", F32(0)), ("weight32", F32(0))]))
            } else {
                (rule, one(&[("mean", Same(0)), ("var", Same(0))]))
            }
        }
        "lamb_update_phase2" | "mp_lamb_update_phase2" => {
            mp = name.starts_with("mp_");
            rescale_key = None;
            clip_key = "";
            let rule = Rule::Lamb2 {
                lr: required_f32(attrs, "lr")?,
                lower: f32_attr(attrs, "lower_bound", -1.0)?,
                upper: f32_attr(attrs, "upper_bound", -1.0)?,
            };
            // MXNet's mp form computes from `weight32` but does not write it back, though
            // it declares it mutated.
            let mut a = if mp {
                one(&[("r1", ScalarF32), ("r2", ScalarF32), ("weight32", F32(0))])
            } else {
                one(&[("r1", ScalarSame(0)), ("r2", ScalarSame(0))])
            };
            a.1[1] = "g".into();
            if mp {
                a.0[1] = F32(0);
            }
            (rule, a)
        }
        "multi_sgd_update"
        | "multi_sgd_mom_update"
        | "multi_mp_sgd_update"
        | "multi_mp_sgd_mom_update"
        | "preloaded_multi_sgd_update"
        | "preloaded_multi_sgd_mom_update"
        | "preloaded_multi_mp_sgd_update"
        | "preloaded_multi_mp_sgd_mom_update" => {
            mp = name.contains("_mp_");
            let with_mom = name.contains("mom");
            let preloaded = name.starts_with("preloaded_");
            let momentum = if with_mom { Some(f32_attr(attrs, "momentum", 0.0)?) } else { None };
            let rates = if preloaded {
                groups = num_weights(attrs, "num_weights", &[])?;
                None
            } else {
                let lrs = float_tuple(attrs, "lrs")?;
                let wds = float_tuple(attrs, "wds")?;
                groups = num_weights(attrs, "num_weights", &[("lrs", lrs.len()), ("wds", wds.len())])?;
                Some((lrs, wds))
            };
            let mut args = Vec::new();
            let mut names = Vec::new();
            for g in 0..groups {
                args.extend([Weight(g), Same(g)]);
                names.extend([format!("weight_{g}"), format!("grad_{g}")]);
                if with_mom {
                    args.push(if mp { F32(g) } else { Same(g) });
                    names.push(format!("mom_{g}"));
                }
                if mp {
                    args.push(F32(g));
                    names.push(format!("weight32_{g}"));
                }
            }
            if preloaded {
                args.extend([PerWeightF32, PerWeightF32]);
                names.extend(["lrs".to_string(), "wds".to_string()]);
            }
            (Rule::MultiSgd { rates, momentum }, (args, names))
        }
        "_multi_lamb_update" | "_multi_mp_lamb_update" => {
            mp = name == "_multi_mp_lamb_update";
            let lrs = float_tuple(attrs, "learning_rates")?;
            let wds = float_tuple(attrs, "wds")?;
            let steps = attrs
                .opt_tuple("step_count")?
                .ok_or_else(|| Error::op(name, "required attribute step_count is missing"))?
                .into_iter()
                .map(|s| s.ok_or_else(|| Error::op(name, "step_count must hold integers")))
                .collect::<Result<Vec<i64>>>()?;
            let rule = MultiLamb {
                beta1: f32_attr(attrs, "beta1", 0.9)?,
                beta2: f32_attr(attrs, "beta2", 0.999)?,
                epsilon: f32_attr(attrs, "epsilon", 1e-6)?,
                lower: f32_attr(attrs, "lower_bound", -1.0)?,
                upper: f32_attr(attrs, "upper_bound", -1.0)?,
                bias_correction: attrs.bool("bias_correction", true)?,
                lrs,
                wds,
                steps,
            };
            groups = num_weights(
                attrs,
                "num_tensors",
                &[
                    ("learning_rates", rule.lrs.len()),
                    ("wds", rule.wds.len()),
                    ("step_count", rule.steps.len()),
                ],
            )?;
            if groups > 45 {
                return Err(Error::op(name, format!("num_tensors={groups} exceeds MXNet's maximum of 45")));
            }
            let mut args = Vec::new();
            let mut names = Vec::new();
            for g in 0..groups {
                let st = if mp { F32(g) } else { Same(g) };
                args.extend([Weight(g), Same(g), st, st]);
                names.extend([
                    format!("weight_{g}"),
                    format!("grad_{g}"),
                    format!("mean_{g}"),
                    format!("var_{g}"),
                ]);
                if mp {
                    args.push(F32(g));
                    names.push(format!("weight32_{g}"));
                }
            }
            (Rule::MultiLamb(rule), (args, names))
        }
        "_multi_adamw_update" | "_multi_mp_adamw_update" => {
            mp = name == "_multi_mp_adamw_update";
            rescale_key = None;
            let lrs = float_tuple(attrs, "lrs")?;
            let wds = float_tuple(attrs, "wds")?;
            let etas = float_tuple(attrs, "etas")?;
            let beta1 = f32_attr(attrs, "beta1", 0.9)?;
            let beta2 = f32_attr(attrs, "beta2", 0.999)?;
            let epsilon = f32_attr(attrs, "epsilon", 1e-8)?;
            groups = num_weights(
                attrs,
                "num_weights",
                &[("lrs", lrs.len()), ("wds", wds.len()), ("etas", etas.len())],
            )?;
            let mut args = Vec::new();
            let mut names = Vec::new();
            for g in 0..groups {
                let st = if mp { F32(g) } else { Same(g) };
                args.extend([Weight(g), Same(g), st, st]);
                names.extend([
                    format!("weight_{g}"),
                    format!("grad_{g}"),
                    format!("mean_{g}"),
                    format!("var_{g}"),
                ]);
                if mp {
                    args.push(F32(g));
                    names.push(format!("weight32_{g}"));
                }
            }
            args.push(ScalarF32);
            names.push("rescale_grad".into());
            (Rule::MultiAdamW { lrs, wds, etas, beta1, beta2, epsilon }, (args, names))
        }
        _ => return Err(Error::op(name, "not an optimizer update")),
    };
    let rescale = match rescale_key {
        Some(key) => f32_attr(attrs, key, 1.0)?,
        None => 1.0,
    };
    let clip = if clip_key.is_empty() { None } else { clip_attr(attrs, clip_key)? };
    let mutate = mutate_override.unwrap_or_else(|| mutated_states(&args));
    Ok(Arc::new(UpdateOp { name, rule, mp, rescale, clip, args, names, mutate, groups, out_dtype }))
}

/// The inputs a rule writes: every state (all but weights, grads and the scalars).
fn mutated_states(args: &[Arg]) -> Vec<usize> {
    args.iter()
        .enumerate()
        .filter(|(i, a)| match a {
            Arg::Same(_) | Arg::F32(_) => !matches!(args.get(i - 1), Some(Arg::Weight(_))),
            _ => false,
        })
        .map(|(i, _)| i)
        .collect()
}

fn adam_params(attrs: &mut Attrs<'_>) -> Result<Adam<f64>> {
    Ok(Adam {
        lr: required_f32(attrs, "lr")?,
        beta1: f32_attr(attrs, "beta1", 0.9)?,
        beta2: f32_attr(attrs, "beta2", 0.999)?,
        epsilon: f32_attr(attrs, "epsilon", 1e-8)?,
        wd: f32_attr(attrs, "wd", 0.0)?,
    })
}

/// `num_weights` (default 1), checked against the lengths of the per-weight tuples.
fn num_weights(attrs: &mut Attrs<'_>, key: &str, tuples: &[(&str, usize)]) -> Result<usize> {
    let n = attrs.int(key, 1)?;
    if n < 1 {
        return Err(Error::op(attrs.op(), format!("{key}={n} must be at least 1")));
    }
    let n = n as usize;
    for (t, len) in tuples {
        if *len != n {
            return Err(Error::op(attrs.op(), format!("{t} has {len} values but {key}={n}")));
        }
    }
    Ok(n)
}

/// An input converted to (or borrowed as) the compute type.
enum Buf<'a, C> {
    Ro(&'a [C]),
    RoOwned(Vec<C>),
    Rw(&'a mut [C]),
    /// A converted copy of a mutated input, written back after the rule ran.
    RwOwned(usize, Vec<C>),
}

/// Elements of any dtype as the compute type `C`.
fn convert<C: Real>(b: &Blob<'_>) -> Result<Vec<C>> {
    with_dtype!(b.dtype(), T => Ok(b.slice::<T>()?.iter().map(|x| C::from_f64(x.to_f64())).collect()))
}

/// Store compute values into a blob of another dtype.
fn store<C: Real>(vals: &[C], b: &mut Blob<'_>) -> Result<()> {
    with_dtype!(b.dtype(), T => {
        for (o, v) in b.slice_mut::<T>()?.iter_mut().zip(vals) {
            *o = T::from_f32(v.to_f32());
        }
        Ok(())
    })
}

impl UpdateOp {
    fn grad<C: Real>(&self) -> Grad<C> {
        Grad { rescale: C::from_f64(self.rescale), clip: self.clip.map(C::from_f64) }
    }

    fn run<C: Real + NativeType>(&self, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        // `_multi_lamb_update` takes `‖w‖` of the stored (possibly half) weights.
        let w_sq = match self.rule {
            Rule::MultiLamb(_) => {
                let stride = self.args.len() / self.groups;
                (0..self.groups).map(|g| sum_sq(&inputs[g * stride])).collect::<Result<Vec<f32>>>()?
            }
            _ => Vec::new(),
        };
        let facts = Facts { w_sq, grad_dtype: inputs[1].dtype() };
        let mut bufs: Vec<Buf<'_, C>> = Vec::with_capacity(inputs.len());
        for (i, b) in inputs.iter_mut().enumerate() {
            let m = self.mutate.contains(&i);
            bufs.push(match (b.dtype() == C::DTYPE, m) {
                (true, true) => Buf::Rw(b.slice_mut::<C>()?),
                (true, false) => {
                    let b: &Blob<'_> = b;
                    Buf::Ro(b.slice::<C>()?)
                }
                (false, true) => Buf::RwOwned(i, convert::<C>(b)?),
                (false, false) => Buf::RoOwned(convert::<C>(b)?),
            });
        }
        let mut owned: Vec<Option<Vec<C>>> =
            outputs.iter().map(|o| (o.dtype() != C::DTYPE).then(|| vec![C::ZERO; o.numel()])).collect();
        {
            let mut outs: Vec<&mut [C]> = Vec::with_capacity(outputs.len());
            for (o, own) in outputs.iter_mut().zip(owned.iter_mut()) {
                outs.push(match own {
                    Some(v) => v.as_mut_slice(),
                    None => o.slice_mut::<C>()?,
                });
            }
            let mut ro: Vec<&[C]> = Vec::new();
            let mut rw: Vec<&mut [C]> = Vec::new();
            for b in bufs.iter_mut() {
                match b {
                    Buf::Ro(c) => ro.push(c),
                    Buf::RoOwned(v) => ro.push(v),
                    Buf::Rw(s) => rw.push(s),
                    Buf::RwOwned(_, v) => rw.push(v),
                }
            }
            self.apply::<C>(&ro, &mut rw, &mut outs, &facts)?;
        }
        let written: Vec<(usize, Vec<C>)> = bufs
            .into_iter()
            .filter_map(|b| match b {
                Buf::RwOwned(i, v) => Some((i, v)),
                _ => None,
            })
            .collect();
        for (i, v) in written {
            store(&v, &mut inputs[i])?;
        }
        for (o, own) in outputs.iter_mut().zip(owned) {
            if let Some(v) = own {
                store(&v, o)?;
            }
        }
        Ok(())
    }

    /// Run the rule. `ro` holds the inputs it only reads (weights, grads, scalars) and `rw`
    /// the states it writes, each in input order.
    /// `facts` holds what the compute-type slices no longer show.
    fn apply<C: Real>(
        &self,
        ro: &[&[C]],
        rw: &mut [&mut [C]],
        out: &mut [&mut [C]],
        facts: &Facts,
    ) -> Result<()> {
        let c = |x: f64| C::from_f64(x);
        let gp = self.grad::<C>();
        let bad = || Error::op(self.name, "internal: unexpected argument layout");
        match &self.rule {
            Rule::Sgd { lr, wd } => {
                if self.mp {
                    let [w32] = rw else { return Err(bad()) };
                    k::sgd(c(*lr), c(*wd), gp, w32, ro[1], out[0]);
                    w32.copy_from_slice(out[0]);
                } else {
                    k::sgd(c(*lr), c(*wd), gp, ro[0], ro[1], out[0]);
                }
            }
            Rule::SgdMom { lr, wd, momentum } | Rule::Nag { lr, wd, momentum } => {
                let f = if matches!(self.rule, Rule::Nag { .. }) { k::nag_mom::<C> } else { k::sgd_mom::<C> };
                if self.mp {
                    let [mom, w32] = rw else { return Err(bad()) };
                    f(c(*lr), c(*wd), c(*momentum), gp, w32, ro[1], mom, out[0]);
                    w32.copy_from_slice(out[0]);
                } else {
                    let [mom] = rw else { return Err(bad()) };
                    f(c(*lr), c(*wd), c(*momentum), gp, ro[0], ro[1], mom, out[0]);
                }
            }
            Rule::Adam(p) => {
                let [mean, var] = rw else { return Err(bad()) };
                k::adam(adam_c(p), gp, ro[0], ro[1], mean, var, out[0]);
            }
            Rule::AdamW { p, eta } => {
                let scale = ro[2][0];
                let gp = Grad { rescale: scale, clip: gp.clip };
                if self.mp {
                    let [mean, var, w32] = rw else { return Err(bad()) };
                    if skip(scale) {
                        out[0].copy_from_slice(w32);
                        return Ok(());
                    }
                    k::adamw(adam_c(p), c(*eta), gp, w32, ro[1], mean, var, out[0]);
                    w32.copy_from_slice(out[0]);
                } else {
                    let [mean, var] = rw else { return Err(bad()) };
                    if skip(scale) {
                        out[0].copy_from_slice(ro[0]);
                        return Ok(());
                    }
                    k::adamw(adam_c(p), c(*eta), gp, ro[0], ro[1], mean, var, out[0]);
                }
            }
            Rule::RmsProp(p) => {
                let [n] = rw else { return Err(bad()) };
                k::rmsprop(rms_c(p), gp, ro[0], ro[1], n, out[0]);
            }
            Rule::RmsPropAlex(p) => {
                let [n, g, delta] = rw else { return Err(bad()) };
                k::rmspropalex(rms_c(p), gp, ro[0], ro[1], n, g, delta, out[0]);
            }
            Rule::Ftrl { lr, lamda1, beta, wd } => {
                let [z, n] = rw else { return Err(bad()) };
                k::ftrl(c(*lr), c(*lamda1), c(*beta), c(*wd), gp, ro[0], ro[1], z, n, out[0]);
            }
            Rule::Ftml(p) => {
                let [d, v, z] = rw else { return Err(bad()) };
                let p = Ftml {
                    lr: c(p.lr),
                    beta1: c(p.beta1),
                    beta2: c(p.beta2),
                    epsilon: c(p.epsilon),
                    t: c(p.t),
                    wd: c(p.wd),
                };
                k::ftml(p, gp, ro[0], ro[1], d, v, z, out[0]);
            }
            Rule::SignSgd { lr, wd } => k::signsgd(c(*lr), c(*wd), ro[0], ro[1], out[0]),
            Rule::Signum { lr, wd, momentum, wd_lh } => {
                let [mom] = rw else { return Err(bad()) };
                k::signum(c(*lr), c(*wd), c(*momentum), c(*wd_lh), gp, ro[0], ro[1], mom, out[0]);
            }
            Rule::Lamb1 { beta1, beta2, epsilon, wd, bias } => {
                let [mean, var] = rw else { return Err(bad()) };
                // `beta^t` is held in the compute type (float for the mp form).
                let bias =
                    bias.map_or(LambBias::Off, |(b1, b2)| LambBias::Double(round::<C>(b1), round::<C>(b2)));
                let (w, (b1, b2, eps, wd)) =
                    (if self.mp { ro[2] } else { ro[0] }, (c(*beta1), c(*beta2), c(*epsilon), c(*wd)));
                if self.mp && facts.grad_dtype == DType::F16 {
                    // `half_t * float` is a half: the mp form rounds the rescaled gradient.
                    let g: Vec<C> = ro[1]
                        .iter()
                        .map(|&x| c(half::f16::from_f64((x * gp.rescale).to_f64()).to_f64()))
                        .collect();
                    let gp = Grad { rescale: C::ONE, clip: gp.clip };
                    k::lamb_phase1(b1, b2, eps, wd, bias, gp, w, &g, mean, var, out[0]);
                } else {
                    k::lamb_phase1(b1, b2, eps, wd, bias, gp, w, ro[1], mean, var, out[0]);
                }
            }
            Rule::Lamb2 { lr, lower, upper } => {
                let w = if self.mp {
                    let [w32] = rw else { return Err(bad()) };
                    &**w32
                } else {
                    ro[0]
                };
                k::lamb_phase2(c(*lr), c(*lower), c(*upper), ro[2][0], ro[3][0], w, ro[1], out[0]);
            }
            Rule::MultiSgd { rates, momentum } => {
                let per = rw.len() / self.groups;
                let (lrs, wds): (Vec<C>, Vec<C>) = match rates {
                    Some((l, w)) => (l.iter().map(|&x| c(x)).collect(), w.iter().map(|&x| c(x)).collect()),
                    None => (ro[ro.len() - 2].to_vec(), ro[ro.len() - 1].to_vec()),
                };
                for (g, o) in out.iter_mut().enumerate() {
                    let states = &mut rw[g * per..(g + 1) * per];
                    let (w, grad) = (ro[2 * g], ro[2 * g + 1]);
                    let m = momentum.map_or(C::ZERO, c);
                    let (lr, wd) = (lrs[g], wds[g]);
                    match (momentum.is_some(), self.mp, states) {
                        (false, false, []) => k::multi_sgd(lr, wd, m, gp, w, grad, None, o),
                        (true, false, [mom]) => k::multi_sgd(lr, wd, m, gp, w, grad, Some(&mut **mom), o),
                        (false, true, [w32]) => {
                            k::multi_sgd(lr, wd, m, gp, w32, grad, None, o);
                            w32.copy_from_slice(o);
                        }
                        (true, true, [mom, w32]) => {
                            k::multi_sgd(lr, wd, m, gp, w32, grad, Some(&mut **mom), o);
                            w32.copy_from_slice(o);
                        }
                        _ => return Err(bad()),
                    }
                }
            }
            Rule::MultiLamb(p) => {
                let per = rw.len() / self.groups;
                for (g, o) in out.iter_mut().enumerate() {
                    let states = &mut rw[g * per..(g + 1) * per];
                    let grad = ro[2 * g + 1];
                    let (mean, var, w): (&mut [C], &mut [C], &[C]) = match states {
                        [mean, var] => (mean, var, ro[2 * g]),
                        [mean, var, w32] => (mean, var, &**w32),
                        _ => return Err(bad()),
                    };
                    // `power::Map(beta, step)` in the compute type.
                    let t = p.steps[g] as f64;
                    let bias = if p.bias_correction {
                        LambBias::Native(c(round::<C>(p.beta1).powf(t)), c(round::<C>(p.beta2).powf(t)))
                    } else {
                        LambBias::Off
                    };
                    let (b1, b2, eps, wd) = (c(p.beta1), c(p.beta2), c(p.epsilon), c(p.wds[g]));
                    k::lamb_phase1(b1, b2, eps, wd, bias, gp, w, grad, mean, var, o);
                    k::multi_lamb_step2(c(p.lrs[g]), p.lower as f32, p.upper as f32, facts.w_sq[g], w, o);
                }
                if self.mp {
                    for (g, o) in out.iter().enumerate() {
                        rw[g * per + 2].copy_from_slice(o);
                    }
                }
            }
            Rule::MultiAdamW { lrs, wds, etas, beta1, beta2, epsilon } => {
                let scale = ro[ro.len() - 1][0];
                let per = rw.len() / self.groups;
                for (g, o) in out.iter_mut().enumerate() {
                    let states = &mut rw[g * per..(g + 1) * per];
                    let (w, grad) = (ro[2 * g], ro[2 * g + 1]);
                    let p = Adam {
                        lr: c(lrs[g]),
                        beta1: c(*beta1),
                        beta2: c(*beta2),
                        epsilon: c(*epsilon),
                        wd: c(wds[g]),
                    };
                    let gpg = Grad { rescale: scale, clip: gp.clip };
                    match states {
                        [mean, var] => {
                            if skip(scale) {
                                o.copy_from_slice(w);
                            } else {
                                k::multi_adamw(p, c(etas[g]), gpg, w, grad, mean, var, o);
                            }
                        }
                        [mean, var, w32] => {
                            if skip(scale) {
                                o.copy_from_slice(w32);
                            } else {
                                k::multi_adamw(p, c(etas[g]), gpg, w32, grad, mean, var, o);
                                w32.copy_from_slice(o);
                            }
                        }
                        _ => return Err(bad()),
                    }
                }
            }
        }
        Ok(())
    }
}

/// AdamW skips the update when `rescale_grad` is 0, NaN or infinite (the output keeps the
/// weight, as MXNet's `out=weight` call leaves it).
fn skip<C: Real>(scale: C) -> bool {
    let s = scale.to_f32();
    !s.is_finite() || s == 0.0
}

/// What a rule may need beyond its compute-type slices.
struct Facts {
    /// Each weight's sum of squares, from its stored dtype (`_multi_lamb_update`).
    w_sq: Vec<f32>,
    /// The gradient's stored dtype.
    grad_dtype: DType,
}

/// MXNet's `multi_sum_sq` of one array: squares in the element type, sums in a float.
fn sum_sq(b: &Blob<'_>) -> Result<f32> {
    with_dtype!(b.dtype(), T => {
        let mut sum = 0.0f32;
        for &x in b.slice::<T>()? {
            sum += x.mul(x).to_f32();
        }
        Ok(sum)
    })
}

/// `x` rounded to the compute type.
fn round<C: Real>(x: f64) -> f64 {
    C::from_f64(x).to_f64()
}

fn adam_c<C: Real>(p: &Adam<f64>) -> Adam<C> {
    let c = |x: f64| C::from_f64(x);
    Adam { lr: c(p.lr), beta1: c(p.beta1), beta2: c(p.beta2), epsilon: c(p.epsilon), wd: c(p.wd) }
}

fn rms_c<C: Real>(p: &RmsProp<f64>) -> RmsProp<C> {
    let c = |x: f64| C::from_f64(x);
    RmsProp {
        lr: c(p.lr),
        gamma1: c(p.gamma1),
        gamma2: c(p.gamma2),
        epsilon: c(p.epsilon),
        wd: c(p.wd),
        clip_weights: p.clip_weights.map(c),
    }
}

fn is_real(d: DType) -> bool {
    matches!(d, DType::F32 | DType::F64 | DType::F16 | DType::BF16)
}

impl Operator for UpdateOp {
    fn name(&self) -> &'static str {
        self.name
    }

    fn num_inputs(&self) -> usize {
        self.args.len()
    }

    fn num_outputs(&self) -> usize {
        self.groups
    }

    fn input_names(&self) -> Vec<String> {
        self.names.clone()
    }

    fn mutate_inputs(&self) -> &[usize] {
        &self.mutate
    }

    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        let weight_of = |g: usize| {
            let i = self.args.iter().position(|a| *a == Arg::Weight(g)).expect("each group has a weight");
            &inputs[i]
        };
        for (i, (arg, info)) in self.args.iter().zip(inputs).enumerate() {
            let name = &self.names[i];
            let fail = |what: String| Err(Error::op(self.name, format!("input {name}: {what}")));
            match *arg {
                Arg::Weight(_) => {
                    if !is_real(info.dtype) {
                        return fail(format!("dtype {} is not a floating-point type", info.dtype));
                    }
                    if self.mp && !matches!(info.dtype, DType::F16 | DType::F32) {
                        return fail(format!(
                            "multi-precision weights must be float16 or float32, got {}",
                            info.dtype
                        ));
                    }
                }
                Arg::Same(g) | Arg::F32(g) => {
                    let w = weight_of(g);
                    if info.shape != w.shape {
                        return fail(format!("shape {} differs from the weight's {}", info.shape, w.shape));
                    }
                    let want = if matches!(arg, Arg::F32(_)) { DType::F32 } else { w.dtype };
                    if info.dtype != want {
                        return fail(format!("dtype {} should be {want}", info.dtype));
                    }
                }
                Arg::PerWeightF32 => {
                    if info.shape.numel() != self.groups {
                        return fail(format!(
                            "shape {} should hold {} values, one per weight",
                            info.shape, self.groups
                        ));
                    }
                    if info.dtype != DType::F32 {
                        return fail(format!("dtype {} should be float32", info.dtype));
                    }
                }
                Arg::ScalarSame(_) | Arg::ScalarF32 => {
                    let want = match *arg {
                        Arg::ScalarSame(g) => weight_of(g).dtype,
                        _ => DType::F32,
                    };
                    if info.shape.numel() != 1 {
                        return fail(format!("shape {} should hold one element", info.shape));
                    }
                    if info.dtype != want {
                        return fail(format!("dtype {} should be {want}", info.dtype));
                    }
                }
            }
        }
        Ok((0..self.groups)
            .map(|g| {
                let w = weight_of(g);
                TensorInfo::new(w.shape.clone(), self.out_dtype.unwrap_or(w.dtype))
            })
            .collect())
    }

    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        if !self.mp && inputs[0].dtype() == DType::F64 {
            self.run::<f64>(inputs, outputs)
        } else {
            self.run::<f32>(inputs, outputs)
        }
    }
}

// ---- multi_lars, multi_sum_sq, all_finite, multi_all_finite ----

#[derive(Clone, Copy, Debug)]
enum Util {
    Lars { eta: f32, eps: f32, rescale: f32 },
    SumSq { n: usize },
    AllFinite { n: usize, init: bool },
}

/// The helper ops of the multi-tensor optimizers.
pub struct UtilOp {
    name: &'static str,
    kind: Util,
}

fn build_util(name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    let kind = match name {
        "multi_lars" => Util::Lars {
            eta: required_f32(attrs, "eta")? as f32,
            eps: required_f32(attrs, "eps")? as f32,
            rescale: f32_attr(attrs, "rescale_grad", 1.0)? as f32,
        },
        "multi_sum_sq" => {
            let n = attrs
                .opt_int("num_arrays")?
                .ok_or_else(|| Error::op(name, "required attribute num_arrays is missing"))?;
            if n < 1 {
                return Err(Error::op(name, format!("num_arrays={n} must be at least 1")));
            }
            Util::SumSq { n: n as usize }
        }
        "all_finite" => Util::AllFinite { n: 1, init: attrs.bool("init_output", true)? },
        _ => {
            let n = attrs.int("num_arrays", 1)?;
            if n < 1 {
                return Err(Error::op(name, format!("num_arrays={n} must be at least 1")));
            }
            Util::AllFinite { n: n as usize, init: attrs.bool("init_output", true)? }
        }
    };
    Ok(Arc::new(UtilOp { name, kind }))
}

impl Operator for UtilOp {
    fn name(&self) -> &'static str {
        self.name
    }

    fn num_inputs(&self) -> usize {
        match self.kind {
            Util::Lars { .. } => 4,
            Util::SumSq { n } | Util::AllFinite { n, .. } => n,
        }
    }

    fn input_names(&self) -> Vec<String> {
        match self.kind {
            Util::Lars { .. } => ["lrs", "weights_sum_sq", "grads_sum_sq", "wds"].map(String::from).to_vec(),
            _ if self.name == "all_finite" => vec!["data".into()],
            _ => (0..self.num_inputs()).map(|i| format!("array_{i}")).collect(),
        }
    }

    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        match self.kind {
            Util::Lars { .. } => {
                for (i, x) in inputs.iter().enumerate() {
                    if x.dtype != DType::F32 {
                        return Err(Error::op(
                            self.name,
                            format!("only float32 is supported, input {i} is {}", x.dtype),
                        ));
                    }
                    if x.shape != inputs[1].shape {
                        return Err(Error::op(
                            self.name,
                            format!("input {i} has shape {}, expected {}", x.shape, inputs[1].shape),
                        ));
                    }
                }
                Ok(vec![TensorInfo::new(inputs[1].shape.clone(), DType::F32)])
            }
            Util::SumSq { n } => {
                let d = inputs[0].dtype;
                if let Some(i) = inputs.iter().position(|x| x.dtype != d) {
                    return Err(Error::op(
                        self.name,
                        format!("array_{i} has dtype {}, expected {d}", inputs[i].dtype),
                    ));
                }
                if !is_real(d) {
                    return Err(Error::op(self.name, format!("dtype {d} is not a floating-point type")));
                }
                Ok(vec![TensorInfo::new([n].as_slice(), DType::F32)])
            }
            Util::AllFinite { .. } => {
                let d = inputs[0].dtype;
                if let Some(i) = inputs.iter().position(|x| x.dtype != d || !is_real(x.dtype)) {
                    return Err(Error::op(
                        self.name,
                        format!(
                            "input {i} has dtype {}; all inputs must share one floating-point dtype",
                            inputs[i].dtype
                        ),
                    ));
                }
                Ok(vec![TensorInfo::new([1].as_slice(), DType::F32)])
            }
        }
    }

    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let out = outputs[0].slice_mut::<f32>()?;
        match self.kind {
            Util::Lars { eta, eps, rescale } => {
                let s = |i: usize| inputs[i].slice::<f32>();
                k::multi_lars(s(0)?, s(1)?, s(2)?, s(3)?, eta, eps, rescale, out);
            }
            Util::SumSq { .. } => {
                for (o, b) in out.iter_mut().zip(inputs.iter()) {
                    *o = sum_sq(b)?;
                }
            }
            Util::AllFinite { init, .. } => {
                // MXNet leaves the output alone with init_output=False (it is called with
                // out= an existing flag); a fresh output starts at 1 here.
                let _ = init;
                let mut finite = true;
                for b in inputs.iter() {
                    finite &=
                        with_dtype!(b.dtype(), T => b.slice::<T>()?.iter().all(|x| x.to_f32().is_finite()));
                }
                out[0] = if finite { 1.0 } else { 0.0 };
            }
        }
        Ok(())
    }
}

pub(crate) fn register(r: &mut Registry) {
    for name in [
        "sgd_update",
        "sgd_mom_update",
        "mp_sgd_update",
        "mp_sgd_mom_update",
        "nag_mom_update",
        "mp_nag_mom_update",
        "adam_update",
        "_adamw_update",
        "_mp_adamw_update",
        "rmsprop_update",
        "rmspropalex_update",
        "ftrl_update",
        "ftml_update",
        "signsgd_update",
        "signum_update",
        "lamb_update_phase1",
        "lamb_update_phase2",
        "mp_lamb_update_phase1",
        "mp_lamb_update_phase2",
        "multi_sgd_update",
        "multi_sgd_mom_update",
        "multi_mp_sgd_update",
        "multi_mp_sgd_mom_update",
        "preloaded_multi_sgd_update",
        "preloaded_multi_sgd_mom_update",
        "preloaded_multi_mp_sgd_update",
        "preloaded_multi_mp_sgd_mom_update",
        "_multi_lamb_update",
        "_multi_mp_lamb_update",
        "_multi_adamw_update",
        "_multi_mp_adamw_update",
    ] {
        r.register(OpDef { name, aliases: &[], build });
    }
    r.register(OpDef { name: "multi_lars", aliases: &[], build: build_util });
    r.register(OpDef { name: "multi_sum_sq", aliases: &[], build: build_util });
    r.register(OpDef { name: "all_finite", aliases: &[], build: build_util });
    r.register(OpDef { name: "multi_all_finite", aliases: &[], build: build_util });
}
