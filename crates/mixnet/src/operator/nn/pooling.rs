//! `Pooling`: max, avg, sum and lp (p = 1, 2, 3) pooling over 1-D, 2-D and 3-D channel-first
//! data, with MXNet's `valid` / `full` / `same` output conventions, `global_pool` and
//! `count_include_pad`. Kernels in `mixnet_kernels::pool` follow MXNet's CPU `pool.h`.
//!
//! The gradient is the registered `_backward_Pooling` (inputs: output gradient, data,
//! output; output: data gradient). MXNet's oneDNN build adds a hidden workspace output for
//! max pooling; it is not part of the operator's visible outputs and mixnet has none.

use std::sync::Arc;

use mixnet_kernels::pool::{Pool, PoolGeom, PoolKind};

use crate::op::{Attrs, Blob, GradContext, OpContext, Operator, Registry, TensorInfo};
use crate::shape::Shape;
use crate::{f16, DType, Error, NDArray, Result};

const NAME: &str = "Pooling";
const BACKWARD: &str = "_backward_Pooling";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Convention {
    Valid,
    Full,
    Same,
}

/// Parsed attributes of `Pooling`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolParam {
    kernel: Vec<usize>,
    stride: Vec<usize>,
    pad: Vec<usize>,
    kind: PoolKind,
    global: bool,
    convention: Convention,
}

fn tuple_or(attrs: &mut Attrs<'_>, key: &str, n: usize, default: usize, min: i64) -> Result<Vec<usize>> {
    let op = attrs.op();
    match attrs.tuple(key)? {
        None => Ok(vec![default; n]),
        Some(v) if v.is_empty() => Ok(vec![default; n]),
        Some(v) => {
            if n > 0 && v.len() != n {
                return Err(Error::op(
                    op,
                    format!("{key} {v:?} must have as many dimensions as kernel ({n})"),
                ));
            }
            if v.iter().any(|&x| x < min) {
                return Err(Error::op(op, format!("{key} {v:?}: entries must be >= {min}")));
            }
            Ok(v.iter().map(|&x| x as usize).collect())
        }
    }
}

impl PoolParam {
    fn parse(attrs: &mut Attrs<'_>) -> Result<Self> {
        let op = attrs.op();
        let kernel = attrs.tuple("kernel")?.unwrap_or_default();
        if kernel.iter().any(|&k| k < 1) {
            return Err(Error::op(op, format!("kernel {kernel:?}: entries must be >= 1")));
        }
        if kernel.len() > 3 {
            return Err(Error::op(op, format!("{}-D pooling is not supported", kernel.len())));
        }
        let kernel: Vec<usize> = kernel.iter().map(|&k| k as usize).collect();
        let n = kernel.len();
        let stride = tuple_or(attrs, "stride", n, 1, 1)?;
        let pad = tuple_or(attrs, "pad", n, 0, 0)?;
        let pool_type = attrs.choice("pool_type", &["max", "avg", "sum", "lp"], "max")?;
        let global = attrs.bool("global_pool", false)?;
        attrs.bool("cudnn_off", false)?;
        let convention = match attrs.choice("pooling_convention", &["valid", "full", "same"], "valid")? {
            "full" => Convention::Full,
            "same" => Convention::Same,
            _ => Convention::Valid,
        };
        let p_value = attrs.opt_int("p_value")?;
        let count_include_pad = match attrs.get("count_include_pad") {
            None => true,
            Some(v) if v.trim() == "None" => true,
            Some(v) => match v.trim() {
                "True" | "true" | "1" => true,
                "False" | "false" | "0" => false,
                _ => {
                    return Err(Error::op(op, format!("attribute count_include_pad='{v}' is not a boolean")))
                }
            },
        };
        if let Some(v) = attrs.get("layout") {
            let v = v.trim().trim_matches('\'');
            if !matches!(v, "None" | "NCW" | "NCHW" | "NCDHW") {
                return Err(Error::op(op, format!("layout {v} is not supported (NCW, NCHW, NCDHW)")));
            }
        }
        if let Some(v) = attrs.get("output_size") {
            if v.trim() != "None" {
                return Err(Error::op(op, "output_size (adaptive pooling) is not supported"));
            }
        }
        let kind = match pool_type {
            "max" => PoolKind::Max,
            "avg" => PoolKind::Avg { count_include_pad },
            "sum" => PoolKind::Sum,
            _ => match p_value {
                None => return Err(Error::op(op, "lp pooling needs p_value")),
                Some(p @ 1..=3) => PoolKind::Lp(p as u32),
                Some(p) => {
                    return Err(Error::op(op, format!("p value of {p} is not supported yet (1, 2, 3)")))
                }
            },
        };
        Ok(PoolParam { kernel, stride, pad, kind, global, convention })
    }

    /// Geometry and output shape for `data`.
    fn plan(&self, op: &str, data: &Shape) -> Result<(PoolGeom, Shape)> {
        let nd = data.ndim();
        if !(3..=5).contains(&nd) {
            return Err(Error::op(
                op,
                format!("data {data} must be 3-D (N, C, W), 4-D (N, C, H, W) or 5-D (N, C, D, H, W)"),
            ));
        }
        let n = nd - 2;
        let spatial = &data[2..];
        let (kernel, stride, pad, out): (Vec<usize>, Vec<usize>, Vec<usize>, Vec<usize>) = if self.global {
            (spatial.to_vec(), vec![1; n], vec![0; n], vec![1; n])
        } else {
            if self.kernel.len() != n {
                return Err(Error::op(
                    op,
                    format!("kernel {:?} does not fit data {data} ({n} spatial dimensions)", self.kernel),
                ));
            }
            if self.convention == Convention::Same && (n != 1 || self.pad.iter().any(|&p| p != 0)) {
                return Err(Error::op(
                    op,
                    "pooling_convention 'same' supports 1-D data (N, C, W) without pad only",
                ));
            }
            let mut out = Vec::with_capacity(n);
            for (i, &len) in spatial.iter().enumerate() {
                let padded = len + 2 * self.pad[i];
                let (k, s) = (self.kernel[i], self.stride[i]);
                if k > padded {
                    return Err(Error::op(
                        op,
                        format!(
                            "kernel size ({k}) exceeds input ({} padded to {padded}) (data {data})",
                            spatial[i]
                        ),
                    ));
                }
                out.push(match self.convention {
                    Convention::Valid => 1 + (padded - k) / s,
                    Convention::Full => 1 + (padded - k).div_ceil(s),
                    Convention::Same => padded.div_ceil(s),
                });
            }
            (self.kernel.clone(), self.stride.clone(), self.pad.clone(), out)
        };
        let lead = 3 - n;
        let fill = |v: &[usize], d: usize| -> [usize; 3] {
            std::array::from_fn(|i| if i < lead { d } else { v[i - lead] })
        };
        let geom = PoolGeom {
            planes: data[0] * data[1],
            input: fill(spatial, 1),
            output: fill(&out, 1),
            kernel: fill(&kernel, 1),
            stride: fill(&stride, 1),
            pad: fill(&pad, 0),
        };
        let shape: Shape = data[..2].iter().copied().chain(out).collect();
        Ok((geom, shape))
    }
}

fn check_dtype(op: &str, dtype: DType) -> Result<()> {
    match dtype {
        DType::F32 | DType::F64 | DType::F16 => Ok(()),
        other => Err(Error::op(op, format!("dtype {other} is not supported (float32, float64, float16)"))),
    }
}

/// A configured `Pooling`.
pub struct Pooling {
    param: PoolParam,
}

fn build(_name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    Ok(Arc::new(Pooling { param: PoolParam::parse(attrs)? }))
}

impl Operator for Pooling {
    fn name(&self) -> &'static str {
        NAME
    }

    fn num_inputs(&self) -> usize {
        1
    }

    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        check_dtype(NAME, inputs[0].dtype)?;
        let (_, shape) = self.param.plan(NAME, &inputs[0].shape)?;
        Ok(vec![TensorInfo { shape, dtype: inputs[0].dtype }])
    }

    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let (g, _) = self.param.plan(NAME, inputs[0].shape())?;
        let kind = self.param.kind;
        match outputs[0].dtype() {
            DType::F32 => f32::pool(&g, kind, inputs[0].slice()?, outputs[0].slice_mut()?),
            DType::F64 => f64::pool(&g, kind, inputs[0].slice()?, outputs[0].slice_mut()?),
            DType::F16 => f16::pool(&g, kind, inputs[0].slice()?, outputs[0].slice_mut()?),
            other => return Err(Error::op(NAME, format!("dtype {other} is not supported"))),
        }
        Ok(())
    }

    fn has_gradient(&self) -> bool {
        true
    }

    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let op: Arc<dyn Operator> = Arc::new(BackwardPooling { param: self.param.clone() });
        let ins = [ctx.out_grads[0].clone(), ctx.inputs[0].clone(), ctx.outputs[0].clone()];
        Ok(vec![Some(crate::imperative::invoke_operator(&op, &ins)?.remove(0))])
    }
}

/// `_backward_Pooling`: (output gradient, data, output) -> data gradient.
pub struct BackwardPooling {
    param: PoolParam,
}

fn build_backward(_name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    Ok(Arc::new(BackwardPooling { param: PoolParam::parse(attrs)? }))
}

impl Operator for BackwardPooling {
    fn name(&self) -> &'static str {
        BACKWARD
    }

    fn num_inputs(&self) -> usize {
        3
    }

    fn input_names(&self) -> Vec<String> {
        vec!["ograd".into(), "data".into(), "output".into()]
    }

    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        let dtype = inputs[1].dtype;
        check_dtype(BACKWARD, dtype)?;
        if inputs.iter().any(|x| x.dtype != dtype) {
            return Err(Error::op(BACKWARD, "inputs have different dtypes"));
        }
        let (_, out) = self.param.plan(BACKWARD, &inputs[1].shape)?;
        if inputs[0].shape != out || inputs[2].shape != out {
            return Err(Error::op(
                BACKWARD,
                format!(
                    "output gradient {} and output {} must have shape {out}",
                    inputs[0].shape, inputs[2].shape
                ),
            ));
        }
        Ok(vec![inputs[1].clone()])
    }

    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let (g, _) = self.param.plan(BACKWARD, inputs[1].shape())?;
        let kind = self.param.kind;
        macro_rules! run {
            ($T:ty) => {
                <$T>::unpool(
                    &g,
                    kind,
                    inputs[0].slice()?,
                    inputs[1].slice()?,
                    inputs[2].slice()?,
                    outputs[0].slice_mut()?,
                )
            };
        }
        match outputs[0].dtype() {
            DType::F32 => run!(f32),
            DType::F64 => run!(f64),
            DType::F16 => run!(f16),
            other => return Err(Error::op(BACKWARD, format!("dtype {other} is not supported"))),
        }
        Ok(())
    }
}

pub(crate) fn register(r: &mut Registry) {
    r.register_family(build, &[(NAME, &["_npx_pooling"])]);
    r.register_family(build_backward, &[(BACKWARD, &[])]);
}
