//! `UpSampling` (MXNet's `nn/upsampling-inl.h`), 4-D `(batch, channel, y, x)` data.
//!
//! `nearest` repeats each pixel `scale`×`scale` times; with several inputs (`num_args`)
//! each is scaled to the first input's size × `scale` and the results are concatenated
//! along channels (`multi_input_mode='concat'`) or summed (`'sum'`). `bilinear` is, as in
//! MXNet, a depthwise `Deconvolution` with a `weight` input of shape `(channels, 1, k, k)`,
//! `k = 2·scale - scale % 2`, stride `scale`, pad `ceil((scale - 1) / 2)`.

use std::sync::Arc;

use super::kernel::{check_float, load, run_kernel, store, with_real, Compute};
use crate::op::{Attrs, Blob, GradContext, OpContext, Operator, Registry, TensorInfo};
use crate::{Error, NDArray, Result, Shape};

const NAME: &str = "UpSampling";

enum Sample {
    Nearest {
        sum: bool,
    },
    /// The equivalent depthwise Deconvolution and its kernel size.
    Bilinear {
        deconv: Arc<dyn Operator>,
        kernel: usize,
    },
}

/// A configured `UpSampling`.
pub struct UpSampling {
    scale: usize,
    num_args: usize,
    sample: Sample,
}

fn build(_name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    let scale = match attrs.opt_int("scale")? {
        Some(s) if s >= 1 => s as usize,
        Some(s) => return Err(Error::op(NAME, format!("scale must be at least 1, got {s}"))),
        None => return Err(Error::op(NAME, "required attribute scale is missing")),
    };
    let num_args = match attrs.opt_int("num_args")? {
        Some(n) if n >= 1 => n as usize,
        Some(n) => return Err(Error::op(NAME, format!("num_args must be at least 1, got {n}"))),
        None => return Err(Error::op(NAME, "required attribute num_args is missing")),
    };
    let num_filter = attrs.usize("num_filter", 0)?;
    let workspace = attrs.usize("workspace", 512)?;
    let sum = attrs.choice("multi_input_mode", &["concat", "sum"], "concat")? == "sum";
    let sample = match attrs.get("sample_type").map(str::trim) {
        Some("nearest") => Sample::Nearest { sum },
        Some("bilinear") => {
            if num_args != 2 {
                return Err(Error::op(
                    NAME,
                    format!("bilinear takes 2 inputs (data, weight), num_args is {num_args}"),
                ));
            }
            let kernel = 2 * scale - scale % 2;
            let pad = (scale - 1).div_ceil(2);
            let (k, s, p) =
                (format!("({kernel}, {kernel})"), format!("({scale}, {scale})"), format!("({pad}, {pad})"));
            let (f, w) = (num_filter.to_string(), workspace.to_string());
            let deconv = crate::imperative::create(
                "Deconvolution",
                &[
                    ("kernel", &k),
                    ("stride", &s),
                    ("pad", &p),
                    ("num_filter", &f),
                    ("num_group", &f),
                    ("no_bias", "True"),
                    ("workspace", &w),
                ],
            )
            .map_err(|e| Error::op(NAME, format!("bilinear as Deconvolution: {e}")))?;
            Sample::Bilinear { deconv, kernel }
        }
        Some(other) => {
            return Err(Error::op(NAME, format!("sample_type must be nearest or bilinear, got {other}")))
        }
        None => return Err(Error::op(NAME, "required attribute sample_type is missing")),
    };
    Ok(Arc::new(UpSampling { scale, num_args, sample }))
}

/// Nearest upsampling of `x` (n, c, h, w) by `s` into channels `c0..c0 + c` of `out`
/// (n, oc, h·s, w·s), adding when `add`; with `adjoint`, the other way: sum each s×s block
/// of `out`'s channels into `x`'s shape (the gradient).
#[allow(clippy::too_many_arguments)]
fn nearest<R: Compute>(
    dims: [usize; 4],
    s: usize,
    oc: usize,
    c0: usize,
    x: &mut [R],
    out: &mut [R],
    add: bool,
    adjoint: bool,
) {
    let [n, c, h, w] = dims;
    let (oh, ow) = (h * s, w * s);
    let zero = <R as mixnet_kernels::Element>::ZERO;
    if adjoint {
        x.fill(zero);
    }
    for b in 0..n {
        for ch in 0..c {
            let xi = (b * c + ch) * h * w;
            let oi = (b * oc + c0 + ch) * oh * ow;
            for y in 0..oh {
                for xx in 0..ow {
                    let (src, dst) = (xi + (y / s) * w + xx / s, oi + y * ow + xx);
                    if adjoint {
                        x[src] = x[src] + out[dst];
                    } else if add {
                        out[dst] = out[dst] + x[src];
                    } else {
                        out[dst] = x[src];
                    }
                }
            }
        }
    }
}

fn dims4(shape: &Shape) -> Result<[usize; 4]> {
    match *shape.dims() {
        [n, c, h, w] => Ok([n, c, h, w]),
        _ => Err(Error::op(NAME, format!("data must be 4-D (batch, channel, y, x), got {shape}"))),
    }
}

impl Operator for UpSampling {
    fn name(&self) -> &'static str {
        NAME
    }
    fn num_inputs(&self) -> usize {
        self.num_args
    }
    fn input_names(&self) -> Vec<String> {
        match self.sample {
            Sample::Bilinear { .. } => vec!["data".into(), "weight".into()],
            Sample::Nearest { .. } => (0..self.num_args).map(|i| format!("arg{i}")).collect(),
        }
    }
    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        let [n, c, h, w] = dims4(&inputs[0].shape)?;
        check_float(NAME, "data", &inputs[0])?;
        let (oh, ow) = (h * self.scale, w * self.scale);
        match &self.sample {
            Sample::Bilinear { deconv, kernel } => {
                let want = [c, 1, *kernel, *kernel];
                if inputs[1].shape.dims() != want {
                    return Err(Error::op(
                        NAME,
                        format!("bilinear weight must be {want:?}, got {}", inputs[1].shape),
                    ));
                }
                deconv.infer(inputs)
            }
            Sample::Nearest { sum } => {
                let mut channels = 0;
                for x in inputs {
                    let [xn, xc, xh, xw] = dims4(&x.shape)?;
                    if xn != n
                        || x.dtype != inputs[0].dtype
                        || oh % xh != 0
                        || ow % xw != 0
                        || oh / xh != ow / xw
                    {
                        return Err(Error::op(
                            NAME,
                            format!(
                                "input {x} cannot be scaled to ({n}, _, {oh}, {ow}) like the first input"
                            ),
                        ));
                    }
                    if *sum && channels != 0 && channels != xc {
                        return Err(Error::op(
                            NAME,
                            "inputs must have the same channels when multi_input_mode=sum",
                        ));
                    }
                    channels = if *sum { xc } else { channels + xc };
                }
                Ok(vec![TensorInfo::new(Shape::new(&[n, channels, oh, ow]), inputs[0].dtype)])
            }
        }
    }
    fn compute(&self, ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let sum = match &self.sample {
            Sample::Nearest { sum } => *sum,
            Sample::Bilinear { deconv, .. } => return deconv.compute(ctx, inputs, outputs),
        };
        let out_dims = dims4(outputs[0].shape())?;
        with_real!(inputs[0].dtype(), NAME, R => {
            let xs = inputs.iter().map(|b| load::<R>(b).map(|v| (dims4(b.shape()), v.into_owned()))).collect::<Result<Vec<_>>>()?;
            store::<R>(&mut outputs[0], |out| {
                let mut c0 = 0;
                for (i, (d, x)) in xs.into_iter().enumerate() {
                    let d = d?;
                    let s = out_dims[2] / d[2];
                    let mut x = x;
                    nearest(d, s, out_dims[1], if sum { 0 } else { c0 }, &mut x, out, sum && i > 0, false);
                    c0 += d[1];
                }
                Ok(())
            })
        })
    }
    fn has_gradient(&self) -> bool {
        true
    }
    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let sum = match &self.sample {
            Sample::Nearest { sum } => *sum,
            Sample::Bilinear { deconv, .. } => return deconv.gradient(ctx),
        };
        let dy = &ctx.out_grads[0];
        let out_dims = dims4(dy.shape())?;
        let mut grads = Vec::with_capacity(ctx.inputs.len());
        let mut c0 = 0;
        for x in ctx.inputs {
            let d = dims4(x.shape())?;
            let (s, start) = (out_dims[2] / d[2], if sum { 0 } else { c0 });
            let dx = run_kernel(
                "_backward_UpSampling",
                std::slice::from_ref(dy),
                vec![super::kernel::info(x)],
                move |_, ins, outs| {
                    with_real!(ins[0].dtype(), NAME, R => {
                        let mut dy = load::<R>(&ins[0])?.into_owned();
                        store::<R>(&mut outs[0], |dx| {
                            nearest(d, s, out_dims[1], start, dx, &mut dy, false, true);
                            Ok(())
                        })
                    })
                },
            )?;
            grads.extend(dx.into_iter().map(Some));
            c0 += d[1];
        }
        Ok(grads)
    }
}

pub(crate) fn register(r: &mut Registry) {
    r.register_family(build, &[(NAME, &[])]);
}
