//! `Deconvolution` (transposed convolution, 1-D/2-D/3-D, groups, `adj`, `target_shape`):
//! the data gradient of the convolution whose input has the deconvolution's output shape,
//! so it runs on the same kernels as `Convolution` with the roles swapped. The weight is
//! (input channels, num_filter / num_group, kernel...). `no_bias` defaults to true.
//!
//! `target_shape` picks the padding (and `adj`) that give that output, as MXNet's
//! `InferPad` does; MXNet's oneDNN build only runs the values that need no padding, this
//! one runs them all. The gradient is the registered `_backward_Deconvolution`.

use std::sync::Arc;

use mixnet_kernels::conv::{Conv, ConvGeom};

use super::convolution::{bias_grad, check_dtype, expect_shape, ConvParam};
use crate::op::{Attrs, Blob, GradContext, OpContext, Operator, Registry, TensorInfo};
use crate::shape::Shape;
use crate::{DType, Error, NDArray, Result};

const NAME: &str = "Deconvolution";
const BACKWARD: &str = "_backward_Deconvolution";

/// A configured `Deconvolution`.
#[derive(Clone)]
pub struct Deconvolution {
    param: ConvParam,
    adj: Vec<usize>,
    target_shape: Vec<usize>,
}

fn parse(attrs: &mut Attrs<'_>) -> Result<Deconvolution> {
    let op = attrs.op();
    let param = ConvParam::parse(attrs, true)?;
    let n = param.spatial();
    let mut tuple = |key: &str| -> Result<Vec<usize>> {
        match attrs.tuple(key)? {
            None => Ok(vec![0; n]),
            Some(v) if v.is_empty() => Ok(vec![0; n]),
            Some(v) if v.len() != n || v.iter().any(|&x| x < 0) => Err(Error::op(
                op,
                format!("{key} {v:?} must have {n} non-negative entries (one per kernel dimension)"),
            )),
            Some(v) => Ok(v.iter().map(|&x| x as usize).collect()),
        }
    };
    let adj = tuple("adj")?;
    let target_shape = tuple("target_shape")?;
    Ok(Deconvolution { param, adj, target_shape })
}

fn build(_name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    Ok(Arc::new(parse(attrs)?))
}

impl Deconvolution {
    /// The geometry of the matching convolution (its input is this op's output) and the
    /// output shape.
    fn plan(&self, op: &str, data: &Shape) -> Result<(ConvGeom, Shape)> {
        let p = &self.param;
        let n = p.spatial();
        if data.ndim() != n + 2 {
            return Err(Error::op(
                op,
                format!(
                    "data {data} must have {} dimensions (batch, channel, {n} spatial) for kernel {:?}",
                    n + 2,
                    p.kernel
                ),
            ));
        }
        let (c, g) = (data[1], p.num_group);
        if !c.is_multiple_of(g) || !p.num_filter.is_multiple_of(g) {
            return Err(Error::op(
                op,
                format!(
                    "num_group={g} must divide the input channels ({c}) and num_filter ({})",
                    p.num_filter
                ),
            ));
        }
        if n == 3 && p.dilate.iter().any(|&d| d != 1) {
            return Err(Error::op(op, "dilate is not supported in 3-D deconvolution"));
        }
        let use_target = self.target_shape.iter().any(|&t| t != 0);
        let mut pad = Vec::with_capacity(n);
        let mut out = vec![data[0], p.num_filter];
        for i in 0..n {
            let full = p.stride[i] * data[2 + i].saturating_sub(1) + p.dilated(i);
            let (pd, adj) = if use_target {
                let t = self.target_shape[i];
                if t > full {
                    return Err(Error::op(
                        op,
                        format!("target_shape {:?} is too big for data {data}", self.target_shape),
                    ));
                }
                let d = full - t;
                (d.div_ceil(2), d % 2)
            } else {
                (p.pad[i], self.adj[i])
            };
            if adj >= p.stride[i] {
                return Err(Error::op(
                    op,
                    format!("adj {:?} must be smaller than stride {:?}", self.adj, p.stride),
                ));
            }
            if data[2 + i] == 0 || full + adj <= 2 * pd {
                return Err(Error::op(
                    op,
                    format!("data {data} with pad {:?} and adj {:?} gives an empty output", p.pad, self.adj),
                ));
            }
            out.push(full + adj - 2 * pd);
            pad.push(pd);
        }
        let geom = p.geom(data[0], p.num_filter, c, &out[2..], &data[2..], &pad);
        Ok((geom, Shape::new(&out)))
    }

    fn weight_shape(&self, channels: usize) -> Vec<usize> {
        let p = &self.param;
        [channels, p.num_filter / p.num_group].into_iter().chain(p.kernel.iter().copied()).collect()
    }

    fn check_inputs(&self, op: &str, data: &TensorInfo, weight: &TensorInfo) -> Result<Shape> {
        let (_, out) = self.plan(op, &data.shape)?;
        expect_shape(op, "weight", &weight.shape, &self.weight_shape(data.shape[1]))?;
        Ok(out)
    }
}

impl Operator for Deconvolution {
    fn name(&self) -> &'static str {
        NAME
    }

    fn num_inputs(&self) -> usize {
        if self.param.no_bias {
            2
        } else {
            3
        }
    }

    fn input_names(&self) -> Vec<String> {
        self.param.input_names()
    }

    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        let dtype = check_dtype(NAME, inputs)?;
        let out = self.check_inputs(NAME, &inputs[0], &inputs[1])?;
        if !self.param.no_bias {
            expect_shape(NAME, "bias", &inputs[2].shape, &[self.param.num_filter])?;
        }
        Ok(vec![TensorInfo { shape: out, dtype }])
    }

    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let (g, _) = self.plan(NAME, inputs[0].shape())?;
        macro_rules! run {
            ($T:ty) => {{
                let y = outputs[0].slice_mut::<$T>()?;
                <$T>::conv_backward_data(&g, inputs[0].slice::<$T>()?, inputs[1].slice::<$T>()?, y);
                if !self.param.no_bias {
                    let bias = inputs[2].slice::<$T>()?;
                    let sp = g.in_spatial();
                    if sp > 0 {
                        for (i, plane) in y.chunks_exact_mut(sp).enumerate() {
                            let b = bias[i % g.in_channels];
                            plane.iter_mut().for_each(|v| *v += b);
                        }
                    }
                }
            }};
        }
        match outputs[0].dtype() {
            DType::F32 => run!(f32),
            DType::F64 => run!(f64),
            other => return Err(Error::op(NAME, format!("dtype {other} is not supported"))),
        }
        Ok(())
    }

    fn has_gradient(&self) -> bool {
        true
    }

    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let op: Arc<dyn Operator> = Arc::new(BackwardDeconvolution { fwd: self.clone() });
        let ins = [ctx.out_grads[0].clone(), ctx.inputs[0].clone(), ctx.inputs[1].clone()];
        Ok(crate::imperative::invoke_operator(&op, &ins)?.into_iter().map(Some).collect())
    }
}

/// `_backward_Deconvolution`: (output gradient, data, weight) -> gradients of data, weight
/// and (unless `no_bias`) bias.
pub struct BackwardDeconvolution {
    fwd: Deconvolution,
}

fn build_backward(_name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    Ok(Arc::new(BackwardDeconvolution { fwd: parse(attrs)? }))
}

impl Operator for BackwardDeconvolution {
    fn name(&self) -> &'static str {
        BACKWARD
    }

    fn num_inputs(&self) -> usize {
        3
    }

    fn num_outputs(&self) -> usize {
        if self.fwd.param.no_bias {
            2
        } else {
            3
        }
    }

    fn input_names(&self) -> Vec<String> {
        vec!["ograd".into(), "data".into(), "weight".into()]
    }

    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        let dtype = check_dtype(BACKWARD, inputs)?;
        let out = self.fwd.check_inputs(BACKWARD, &inputs[1], &inputs[2])?;
        expect_shape(BACKWARD, "output gradient", &inputs[0].shape, &out)?;
        let mut outs = vec![inputs[1].clone(), inputs[2].clone()];
        if !self.fwd.param.no_bias {
            outs.push(TensorInfo::new(Shape::new(&[self.fwd.param.num_filter]), dtype));
        }
        Ok(outs)
    }

    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let (g, _) = self.fwd.plan(BACKWARD, inputs[1].shape())?;
        macro_rules! run {
            ($T:ty) => {{
                let (dy, x, w) =
                    (inputs[0].slice::<$T>()?, inputs[1].slice::<$T>()?, inputs[2].slice::<$T>()?);
                let (dx, rest) = outputs.split_at_mut(1);
                <$T>::conv_forward(&g, dy, w, None, dx[0].slice_mut::<$T>()?);
                <$T>::conv_backward_weight(&g, x, dy, rest[0].slice_mut::<$T>()?);
                if !self.fwd.param.no_bias {
                    bias_grad(dy, g.batch, g.in_channels, rest[1].slice_mut::<$T>()?);
                }
            }};
        }
        match outputs[0].dtype() {
            DType::F32 => run!(f32),
            DType::F64 => run!(f64),
            other => return Err(Error::op(BACKWARD, format!("dtype {other} is not supported"))),
        }
        Ok(())
    }
}

pub(crate) fn register(r: &mut Registry) {
    r.register_family(build, &[(NAME, &["_npx_deconvolution"])]);
    r.register_family(build_backward, &[(BACKWARD, &[])]);
}
