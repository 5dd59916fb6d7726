//! `LayerNorm`, `GroupNorm`, `InstanceNorm` and `L2Normalization`: each normalizes sets of
//! elements by their own statistics (see `mixnet_kernels::norm`), so they share one operator
//! that differs in how the data splits into sets and which scale an element takes.
//!
//! As MXNet 1.9.1: LayerNorm's `std` output is `sqrt(var + eps)`; GroupNorm's `gamma`/`beta`
//! hold one value per *group* (1.x; MXNet 2 changed it to per channel); InstanceNorm's
//! `eps` defaults to 1e-3; L2Normalization divides by `sqrt(Σx² + eps)`. The mean/std
//! outputs of `output_mean_var` receive no gradient (MXNet documents the same).

use std::sync::Arc;

use mixnet_kernels::norm::{l2_backward, l2_forward, norm_backward, norm_forward, Affine, Sets};

use super::kernel::{check_float, info, load, norm_axis, run_kernel, store, store2, with_real, Compute};
use crate::op::{Attrs, Blob, GradContext, OpContext, Operator, Registry, TensorInfo};
use crate::{Error, NDArray, Result, Shape};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Layer { axis: i64 },
    Group { groups: usize },
    Instance,
    L2 { mode: L2Mode },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum L2Mode {
    Instance,
    Channel,
    Spatial,
}

/// A configured normalization operator.
pub struct SetNorm {
    name: &'static str,
    kind: Kind,
    eps: f64,
    output_mean_var: bool,
}

fn build(name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    let (kind, eps) = match name {
        "LayerNorm" => (Kind::Layer { axis: attrs.int("axis", -1)? }, attrs.float("eps", 1e-5)?),
        "GroupNorm" => {
            let groups = attrs.usize("num_groups", 1)?;
            if groups == 0 {
                return Err(Error::op(name, "num_groups must be at least 1"));
            }
            (Kind::Group { groups }, attrs.float("eps", 1e-5)?)
        }
        "InstanceNorm" => (Kind::Instance, attrs.float("eps", 1e-3)?),
        "L2Normalization" => {
            let mode = match attrs.choice("mode", &["instance", "channel", "spatial"], "instance")? {
                "channel" => L2Mode::Channel,
                "spatial" => L2Mode::Spatial,
                _ => L2Mode::Instance,
            };
            (Kind::L2 { mode }, attrs.float("eps", 1e-10)?)
        }
        _ => return Err(Error::op(name, "not a normalization operator")),
    };
    let output_mean_var = match kind {
        Kind::Layer { .. } | Kind::Group { .. } => attrs.bool("output_mean_var", false)?,
        _ => false,
    };
    // `eps` is a float field in MXNet: round as it does.
    Ok(Arc::new(SetNorm { name, kind, eps: eps as f32 as f64, output_mean_var }))
}

impl SetNorm {
    fn affine(&self) -> bool {
        !matches!(self.kind, Kind::L2 { .. })
    }

    /// Sets, how `gamma` is indexed, its length, and the shape of the per-set statistics.
    fn plan(&self, shape: &Shape) -> Result<(Sets, Affine, usize, Vec<usize>)> {
        let d = shape.dims();
        let need = |n: usize, what: &str| -> Result<()> {
            if d.len() < n {
                return Err(Error::op(
                    self.name,
                    format!("data {shape} needs at least {n} dimensions ({what})"),
                ));
            }
            Ok(())
        };
        let rest = |from: usize| d[from..].iter().product::<usize>();
        Ok(match self.kind {
            Kind::Layer { axis } => {
                let a = norm_axis(self.name, axis, d.len())?;
                let sets = Sets { outer: d[..a].iter().product(), len: d[a], inner: rest(a + 1) };
                let mut stats = d.to_vec();
                stats[a] = 1;
                (sets, Affine::AlongSet, d[a], stats)
            }
            Kind::Group { groups } => {
                need(2, "batch, channels, ...")?;
                if !d[1].is_multiple_of(groups) {
                    return Err(Error::op(
                        self.name,
                        format!(
                            "channels ({}) of data {shape} are not divisible by num_groups ({groups})",
                            d[1]
                        ),
                    ));
                }
                let sets = Sets { outer: d[0] * groups, len: d[1] / groups * rest(2), inner: 1 };
                (sets, Affine::PerOuter(groups), groups, vec![d[0], groups])
            }
            Kind::Instance => {
                need(3, "batch, channels, spatial...")?;
                (
                    Sets { outer: d[0] * d[1], len: rest(2), inner: 1 },
                    Affine::PerOuter(d[1]),
                    d[1],
                    vec![d[0], d[1]],
                )
            }
            Kind::L2 { mode } => {
                let sets = match mode {
                    L2Mode::Instance => {
                        need(2, "batch, ...")?;
                        Sets { outer: d[0], len: rest(1), inner: 1 }
                    }
                    L2Mode::Channel => {
                        need(3, "batch, channels, spatial...")?;
                        Sets { outer: d[0], len: d[1], inner: rest(2) }
                    }
                    L2Mode::Spatial => {
                        need(3, "batch, channels, spatial...")?;
                        Sets { outer: d[0] * d[1], len: rest(2), inner: 1 }
                    }
                };
                (sets, Affine::AlongSet, 0, vec![sets.outer * sets.inner])
            }
        })
    }
}

impl Operator for SetNorm {
    fn name(&self) -> &'static str {
        self.name
    }
    fn num_inputs(&self) -> usize {
        if self.affine() {
            3
        } else {
            1
        }
    }
    fn num_outputs(&self) -> usize {
        if self.output_mean_var {
            3
        } else {
            1
        }
    }
    fn input_names(&self) -> Vec<String> {
        if self.affine() {
            vec!["data".into(), "gamma".into(), "beta".into()]
        } else {
            vec!["data".into()]
        }
    }
    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        let data = &inputs[0];
        check_float(self.name, "data", data)?;
        let (_, _, params, stats) = self.plan(&data.shape)?;
        if self.affine() {
            for (what, p) in [("gamma", &inputs[1]), ("beta", &inputs[2])] {
                if p.shape.dims() != [params] || p.dtype != data.dtype {
                    return Err(Error::op(
                        self.name,
                        format!("{what} must be ({params},) {} for data {data}, got {p}", data.dtype),
                    ));
                }
            }
        }
        let mut outs = vec![data.clone()];
        if self.output_mean_var {
            let s = TensorInfo::new(Shape::new(&stats), data.dtype);
            outs.push(s.clone());
            outs.push(s);
        }
        Ok(outs)
    }
    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let (sets, affine, _, _) = self.plan(inputs[0].shape())?;
        let eps = self.eps;
        with_real!(inputs[0].dtype(), self.name, R => {
            let x = load::<R>(&inputs[0])?;
            if !self.affine() {
                return store::<R>(&mut outputs[0], |o| {
                    l2_forward(&x, sets, eps, o);
                    Ok(())
                });
            }
            let (gamma, beta) = (load::<R>(&inputs[1])?, load::<R>(&inputs[2])?);
            if self.output_mean_var {
                let (out, stats) = outputs.split_at_mut(1);
                let (mean, std) = stats.split_at_mut(1);
                let mut y = vec![<R as mixnet_kernels::Element>::ZERO; x.len()];
                store2::<R>(&mut mean[0], &mut std[0], |m, s| {
                    norm_forward(&x, sets, affine, eps, &gamma, &beta, &mut y, Some(m), Some(s));
                    Ok(())
                })?;
                super::kernel::write::<R>(&mut out[0], &y)
            } else {
                store::<R>(&mut outputs[0], |o| {
                    norm_forward(&x, sets, affine, eps, &gamma, &beta, o, None, None);
                    Ok(())
                })
            }
        })
    }
    fn has_gradient(&self) -> bool {
        true
    }
    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let (x, dy) = (&ctx.inputs[0], &ctx.out_grads[0]);
        let (sets, affine, _, _) = self.plan(x.shape())?;
        let (name, eps) = (self.name, self.eps);
        let backward = match self.kind {
            Kind::Layer { .. } => "_backward_LayerNorm",
            Kind::Group { .. } => "_backward_GroupNorm",
            Kind::Instance => "_backward_InstanceNorm",
            Kind::L2 { .. } => "_backward_L2Normalization",
        };
        if !self.affine() {
            let dx = run_kernel(backward, &[dy.clone(), x.clone()], vec![info(x)], move |_, ins, outs| {
                with_real!(ins[1].dtype(), name, R => {
                    let (dy, x) = (load::<R>(&ins[0])?, load::<R>(&ins[1])?);
                    store::<R>(&mut outs[0], |dx| {
                        l2_backward(&x, &dy, sets, eps, dx);
                        Ok(())
                    })
                })
            })?;
            return Ok(dx.into_iter().map(Some).collect());
        }
        let gamma = &ctx.inputs[1];
        let outs = vec![info(x), info(gamma), info(&ctx.inputs[2])];
        let grads = run_kernel(
            backward,
            &[dy.clone(), x.clone(), gamma.clone()],
            outs,
            move |_, ins, outs| with_real!(ins[1].dtype(), name, R => affine_backward::<R>(ins, outs, sets, affine, eps)),
        )?;
        Ok(grads.into_iter().map(Some).collect())
    }
}

/// `_backward_*Norm`: (dy, x, gamma) -> (dx, dgamma, dbeta).
fn affine_backward<R: Compute>(
    ins: &mut [Blob<'_>],
    outs: &mut [Blob<'_>],
    sets: Sets,
    affine: Affine,
    eps: f64,
) -> Result<()> {
    let (dy, x, gamma) = (load::<R>(&ins[0])?, load::<R>(&ins[1])?, load::<R>(&ins[2])?);
    let zero = <R as mixnet_kernels::Element>::ZERO;
    let (mut dg, mut db) = (vec![zero; gamma.len()], vec![zero; gamma.len()]);
    let (dx, params) = outs.split_at_mut(1);
    store::<R>(&mut dx[0], |dx| {
        norm_backward(&x, &dy, sets, affine, eps, &gamma, dx, &mut dg, &mut db);
        Ok(())
    })?;
    let (g, b) = params.split_at_mut(1);
    super::kernel::write::<R>(&mut g[0], &dg)?;
    super::kernel::write::<R>(&mut b[0], &db)
}

pub(crate) fn register(r: &mut Registry) {
    r.register_family(
        build,
        &[
            ("LayerNorm", &["_npx_layer_norm"]),
            ("GroupNorm", &[]),
            ("InstanceNorm", &[]),
            ("L2Normalization", &[]),
        ],
    );
}
