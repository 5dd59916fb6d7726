//! `Convolution` (1-D, 2-D, 3-D; groups, dilation, padding, stride) on channel-first
//! layouts, through the im2col + gemm kernels of `mixnet_kernels::conv`. MXNet's CPU
//! attributes that only steer cuDNN or the workspace size (`workspace`, `cudnn_tune`,
//! `cudnn_off`) are accepted and ignored, as MXNet's CPU build does.
//!
//! The gradient is the registered `_backward_Convolution` (inputs: output gradient, data,
//! weight; outputs: gradients of data, weight and, with a bias, bias).

use std::sync::Arc;

use mixnet_kernels::conv::{Conv, ConvGeom};
use mixnet_kernels::reduce::{Reduce, Reduction};

use crate::op::{Attrs, Blob, GradContext, OpContext, Operator, Registry, TensorInfo};
use crate::shape::Shape;
use crate::{DType, Error, NDArray, Result};

const NAME: &str = "Convolution";
const BACKWARD: &str = "_backward_Convolution";

/// Attributes shared by `Convolution` and `Deconvolution`, defaults filled in: stride and
/// dilate 1, pad 0, one entry per kernel dimension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvParam {
    pub kernel: Vec<usize>,
    pub stride: Vec<usize>,
    pub dilate: Vec<usize>,
    pub pad: Vec<usize>,
    pub num_filter: usize,
    pub num_group: usize,
    pub no_bias: bool,
}

fn positive_tuple(
    attrs: &mut Attrs<'_>,
    key: &str,
    n: usize,
    default: usize,
    min: i64,
) -> Result<Vec<usize>> {
    let op = attrs.op();
    match attrs.tuple(key)? {
        None => Ok(vec![default; n]),
        Some(v) if v.is_empty() => Ok(vec![default; n]),
        Some(v) => {
            if v.len() != n {
                return Err(Error::op(
                    op,
                    format!("{key} {v:?} must have the same number of dimensions as kernel ({n})"),
                ));
            }
            v.iter()
                .map(|&x| {
                    if x < min {
                        Err(Error::op(op, format!("{key} {v:?}: entries must be >= {min}")))
                    } else {
                        Ok(x as usize)
                    }
                })
                .collect()
        }
    }
}

impl ConvParam {
    /// Parse the common attributes; `no_bias` defaults differ (Convolution false,
    /// Deconvolution true).
    pub(crate) fn parse(attrs: &mut Attrs<'_>, no_bias_default: bool) -> Result<Self> {
        let op = attrs.op();
        let kernel = attrs.tuple("kernel")?.ok_or_else(|| Error::op(op, "attribute kernel is required"))?;
        let n = kernel.len();
        if !(1..=3).contains(&n) {
            return Err(Error::op(op, format!("kernel {kernel:?}: only 1-D, 2-D and 3-D are supported")));
        }
        if kernel.iter().any(|&k| k < 1) {
            return Err(Error::op(op, format!("incorrect kernel size {kernel:?}")));
        }
        let kernel: Vec<usize> = kernel.iter().map(|&k| k as usize).collect();
        let stride = positive_tuple(attrs, "stride", n, 1, 1)?;
        let dilate = positive_tuple(attrs, "dilate", n, 1, 1)?;
        let pad = positive_tuple(attrs, "pad", n, 0, 0)?;
        let num_filter =
            attrs.opt_int("num_filter")?.ok_or_else(|| Error::op(op, "attribute num_filter is required"))?;
        if num_filter < 1 {
            return Err(Error::op(op, format!("num_filter={num_filter} must be >= 1")));
        }
        let num_group = attrs.int("num_group", 1)?;
        if num_group < 1 {
            return Err(Error::op(op, format!("num_group={num_group} must be >= 1")));
        }
        let workspace = attrs.int("workspace", 1024)?;
        if workspace < 0 {
            return Err(Error::op(op, format!("workspace={workspace} must be >= 0")));
        }
        if let Some(v) = attrs.get("cudnn_tune") {
            let v = v.trim().trim_matches('\'');
            if !matches!(v, "None" | "off" | "limited_workspace" | "fastest") {
                return Err(Error::op(
                    op,
                    format!("attribute cudnn_tune='{v}' must be one of off, limited_workspace, fastest"),
                ));
            }
        }
        attrs.bool("cudnn_off", false)?;
        if let Some(v) = attrs.get("layout") {
            let v = v.trim().trim_matches('\'');
            let native = ["NCW", "NCHW", "NCDHW"][n - 1];
            match v {
                "None" => {}
                _ if v == native => {}
                "NCW" | "NCHW" | "NCDHW" => {
                    return Err(Error::op(op, format!("layout {v} does not fit a {n}-D kernel {kernel:?}")))
                }
                "NWC" | "NHWC" | "NDHWC" => {
                    return Err(Error::op(op, format!("layout {v} is not supported on CPU (use {native})")))
                }
                _ => return Err(Error::op(op, format!("unknown layout '{v}'"))),
            }
        }
        Ok(ConvParam {
            kernel,
            stride,
            dilate,
            pad,
            num_filter: num_filter as usize,
            num_group: num_group as usize,
            no_bias: attrs.bool("no_bias", no_bias_default)?,
        })
    }

    pub(crate) fn spatial(&self) -> usize {
        self.kernel.len()
    }

    /// Extent of the dilated kernel along spatial dimension `i`.
    pub(crate) fn dilated(&self, i: usize) -> usize {
        1 + (self.kernel[i] - 1) * self.dilate[i]
    }

    /// Input names for these attributes.
    pub(crate) fn input_names(&self) -> Vec<String> {
        let names: &[&str] = if self.no_bias { &["data", "weight"] } else { &["data", "weight", "bias"] };
        names.iter().map(|s| s.to_string()).collect()
    }

    /// The kernel geometry with spatial dimensions padded to three: `x` has `in_channels`
    /// and spatial `input`, `y` has `out_channels` and spatial `output`.
    pub(crate) fn geom(
        &self,
        batch: usize,
        in_channels: usize,
        out_channels: usize,
        input: &[usize],
        output: &[usize],
        pad: &[usize],
    ) -> ConvGeom {
        let lead = 3 - self.spatial();
        let fill = |v: &[usize], d: usize| -> [usize; 3] {
            std::array::from_fn(|i| if i < lead { d } else { v[i - lead] })
        };
        ConvGeom {
            batch,
            groups: self.num_group,
            in_channels,
            out_channels,
            input: fill(input, 1),
            output: fill(output, 1),
            kernel: fill(&self.kernel, 1),
            stride: fill(&self.stride, 1),
            pad: fill(pad, 0),
            dilate: fill(&self.dilate, 1),
        }
    }
}

/// Common dtype rule of the conv family: all inputs alike, float32 or float64.
pub(crate) fn check_dtype(op: &str, inputs: &[TensorInfo]) -> Result<DType> {
    let dtype = inputs[0].dtype;
    if let Some(x) = inputs.iter().find(|x| x.dtype != dtype) {
        return Err(Error::op(op, format!("inputs have different dtypes {dtype} and {}", x.dtype)));
    }
    match dtype {
        DType::F32 | DType::F64 => Ok(dtype),
        // MXNet 1.9.1's CPU build: "FP16 gemm on cpu not implemented!".
        DType::F16 => Err(Error::op(op, "float16 is not implemented on CPU (float32, float64)")),
        other => Err(Error::op(op, format!("dtype {other} is not supported (float32, float64)"))),
    }
}

/// Check an input's shape against what the attributes imply.
pub(crate) fn expect_shape(op: &str, what: &str, got: &Shape, want: &[usize]) -> Result<()> {
    if got.dims() == want {
        Ok(())
    } else {
        Err(Error::op(op, format!("{what} has shape {got}, expected {}", Shape::new(want))))
    }
}

/// A configured `Convolution`.
pub struct Convolution {
    param: ConvParam,
    /// `Convolution`, or `Convolution_v1` (MXNet's legacy operator: same attributes and
    /// arithmetic).
    name: &'static str,
}

fn build(name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    Ok(Arc::new(Convolution { param: ConvParam::parse(attrs, false)?, name }))
}

impl Convolution {
    /// A `Convolution` of these attributes, reporting errors as operator `name`.
    pub(crate) fn from_param(param: ConvParam, name: &'static str) -> Self {
        Convolution { param, name }
    }

    pub(crate) fn param(&self) -> &ConvParam {
        &self.param
    }

    /// Geometry and output shape for `data`, checking it.
    pub(crate) fn plan(&self, op: &str, data: &Shape) -> Result<(ConvGeom, Shape)> {
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
        let mut out = vec![data[0], p.num_filter];
        for i in 0..n {
            let padded = data[2 + i] + 2 * p.pad[i];
            if p.dilated(i) > padded {
                return Err(Error::op(
                    op,
                    format!(
                        "kernel size exceeds input: dilated kernel {} > {} (data {data}, pad {:?})",
                        p.dilated(i),
                        padded,
                        p.pad
                    ),
                ));
            }
            out.push((padded - p.dilated(i)) / p.stride[i] + 1);
        }
        let geom = p.geom(data[0], c, p.num_filter, &data[2..], &out[2..], &p.pad);
        Ok((geom, Shape::new(&out)))
    }

    fn weight_shape(&self, channels: usize) -> Vec<usize> {
        let p = &self.param;
        [p.num_filter, channels / p.num_group].into_iter().chain(p.kernel.iter().copied()).collect()
    }
}

impl Operator for Convolution {
    fn name(&self) -> &'static str {
        self.name
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
        let dtype = check_dtype(self.name, inputs)?;
        let (_, out) = self.plan(self.name, &inputs[0].shape)?;
        expect_shape(self.name, "weight", &inputs[1].shape, &self.weight_shape(inputs[0].shape[1]))?;
        if !self.param.no_bias {
            expect_shape(self.name, "bias", &inputs[2].shape, &[self.param.num_filter])?;
        }
        Ok(vec![TensorInfo { shape: out, dtype }])
    }

    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let (g, _) = self.plan(self.name, inputs[0].shape())?;
        macro_rules! run {
            ($T:ty) => {{
                let bias = if self.param.no_bias { None } else { Some(inputs[2].slice::<$T>()?) };
                let y = outputs[0].slice_mut::<$T>()?;
                <$T>::conv_forward(&g, inputs[0].slice::<$T>()?, inputs[1].slice::<$T>()?, bias, y)
            }};
        }
        match outputs[0].dtype() {
            DType::F32 => run!(f32),
            DType::F64 => run!(f64),
            other => return Err(Error::op(self.name, format!("dtype {other} is not supported"))),
        }
        Ok(())
    }

    fn has_gradient(&self) -> bool {
        true
    }

    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let data_grad = ctx.needs_grad.first().copied().unwrap_or(true);
        let op: Arc<dyn Operator> = Arc::new(BackwardConvolution {
            fwd: Convolution { param: self.param.clone(), name: self.name },
            data_grad,
        });
        let ins = [ctx.out_grads[0].clone(), ctx.inputs[0].clone(), ctx.inputs[1].clone()];
        let grads = crate::imperative::invoke_operator(&op, &ins)?.into_iter().map(Some);
        Ok((!data_grad).then_some(None).into_iter().chain(grads).collect())
    }
}

/// Sum of `dy` (batch, channels, spatial) over batch and spatial positions, into `db`.
pub(crate) fn bias_grad<T: Reduce>(dy: &[T], batch: usize, channels: usize, db: &mut [T]) {
    let spatial = dy.len().checked_div(batch * channels).unwrap_or(0);
    T::reduce_axes(dy, &[batch, channels, spatial], &[true, false, true], db, Reduction::Sum);
}

/// `_backward_Convolution`: (output gradient, data, weight) -> gradients of data (unless
/// `data_grad` is false: nothing needs it), weight and (unless `no_bias`) bias.
pub struct BackwardConvolution {
    fwd: Convolution,
    data_grad: bool,
}

fn build_backward(_name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    let fwd = Convolution { param: ConvParam::parse(attrs, false)?, name: NAME };
    Ok(Arc::new(BackwardConvolution { fwd, data_grad: true }))
}

impl Operator for BackwardConvolution {
    fn name(&self) -> &'static str {
        BACKWARD
    }

    fn num_inputs(&self) -> usize {
        3
    }

    fn num_outputs(&self) -> usize {
        1 + usize::from(self.data_grad) + usize::from(!self.fwd.param.no_bias)
    }

    fn input_names(&self) -> Vec<String> {
        vec!["ograd".into(), "data".into(), "weight".into()]
    }

    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        let dtype = check_dtype(BACKWARD, inputs)?;
        let (_, out) = self.fwd.plan(BACKWARD, &inputs[1].shape)?;
        expect_shape(BACKWARD, "output gradient", &inputs[0].shape, &out)?;
        expect_shape(BACKWARD, "weight", &inputs[2].shape, &self.fwd.weight_shape(inputs[1].shape[1]))?;
        let mut outs = vec![inputs[1].clone(), inputs[2].clone()];
        if !self.fwd.param.no_bias {
            outs.push(TensorInfo::new(Shape::new(&[self.fwd.param.num_filter]), dtype));
        }
        if !self.data_grad {
            outs.remove(0);
        }
        Ok(outs)
    }

    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let (g, _) = self.fwd.plan(BACKWARD, inputs[1].shape())?;
        macro_rules! run {
            ($T:ty) => {{
                let (dy, x, w) =
                    (inputs[0].slice::<$T>()?, inputs[1].slice::<$T>()?, inputs[2].slice::<$T>()?);
                let (dx, rest) = outputs.split_at_mut(usize::from(self.data_grad));
                if let Some(dx) = dx.first_mut() {
                    <$T>::conv_backward_data(&g, dy, w, dx.slice_mut::<$T>()?);
                }
                <$T>::conv_backward_weight(&g, dy, x, rest[0].slice_mut::<$T>()?);
                if !self.fwd.param.no_bias {
                    bias_grad(dy, g.batch, g.out_channels, rest[1].slice_mut::<$T>()?);
                }
            }};
        }
        match inputs[0].dtype() {
            DType::F32 => run!(f32),
            DType::F64 => run!(f64),
            other => return Err(Error::op(BACKWARD, format!("dtype {other} is not supported"))),
        }
        Ok(())
    }
}

pub(crate) fn register(r: &mut Registry) {
    r.register_family(build, &[(NAME, &["_npx_convolution"]), ("Convolution_v1", &[])]);
    r.register_family(build_backward, &[(BACKWARD, &[])]);
}
