//! Convolution and pooling layers (MXNet's `gluon.nn.conv_layers`). `Conv2D::new(20, 5)`
//! makes a [`Conv`]; `MaxPool2D::new(2)` makes a [`Pool`]; options are builder methods
//! named as MXNet's keyword arguments.

use std::sync::{Arc, Mutex};

use crate::gluon::block::{Block, BlockBase, HybridBlock};
use crate::gluon::nn::BatchNorm;
use crate::gluon::{bool_attr, op, tuple_attr, Parameter};
use crate::initializer::{Initializer, Zero};
use crate::{DType, Error, NDArray, Result};

/// Sizes per spatial dimension: one number for all, or one each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dims(Vec<usize>);

impl Dims {
    fn expand(&self, n: usize, what: &str) -> Result<Vec<usize>> {
        match self.0.len() {
            1 => Ok(vec![self.0[0]; n]),
            k if k == n => Ok(self.0.clone()),
            k => Err(Error::Invalid(format!("{what} needs 1 or {n} values, got {k}"))),
        }
    }
}
impl From<usize> for Dims {
    fn from(v: usize) -> Self {
        Dims(vec![v])
    }
}
impl<const N: usize> From<[usize; N]> for Dims {
    fn from(v: [usize; N]) -> Self {
        Dims(v.to_vec())
    }
}
impl From<(usize, usize)> for Dims {
    fn from(v: (usize, usize)) -> Self {
        Dims(vec![v.0, v.1])
    }
}
impl From<(usize, usize, usize)> for Dims {
    fn from(v: (usize, usize, usize)) -> Self {
        Dims(vec![v.0, v.1, v.2])
    }
}
impl From<Vec<usize>> for Dims {
    fn from(v: Vec<usize>) -> Self {
        Dims(v)
    }
}

fn expand_or_panic(d: Dims, n: usize) -> Vec<usize> {
    // Builders cannot return Result; a wrong count is reported at forward time instead.
    d.expand(n, "").unwrap_or(d.0)
}

fn check_len(layer: &str, what: &str, v: &[usize], n: usize) -> Result<()> {
    if v.len() != n {
        return Err(Error::Invalid(format!("{layer}: {what} needs {n} values, got {v:?}")));
    }
    Ok(())
}

/// A convolution or transposed convolution over 1, 2 or 3 spatial dimensions
/// (MXNet's `_Conv`: `Convolution`/`Deconvolution` operators).
pub struct Conv {
    base: BlockBase,
    ndim: usize,
    transposed: bool,
    channels: usize,
    kernel: Vec<usize>,
    strides: Vec<usize>,
    padding: Vec<usize>,
    dilation: Vec<usize>,
    output_padding: Vec<usize>,
    groups: usize,
    layout: String,
    act: Option<String>,
    weight: Parameter,
    bias: Option<Parameter>,
    /// The weight carried to Winograd's transform domain for `_sg_conv`, kept while the
    /// weight is unchanged (see [`Conv::winograd_filters`]).
    winograd: Mutex<Option<WinogradFilters>>,
}

/// `_winograd_filters` of `weight` as it was after `writes` writes.
struct WinogradFilters {
    weight: NDArray,
    writes: u64,
    filters: NDArray,
}

impl Conv {
    fn build(ndim: usize, transposed: bool, channels: usize, kernel: Dims) -> Conv {
        let base = BlockBase::new(None, "conv");
        let kernel = expand_or_panic(kernel, ndim);
        let layout = match ndim {
            1 => "NCW",
            2 => "NCHW",
            _ => "NCDHW",
        }
        .to_string();
        let zero: Arc<dyn Initializer> = Arc::new(Zero);
        let bias = Some(base.param("bias", &[channels]).with_init(Some(zero)));
        let weight = base.param("weight", &[0]);
        let c = Conv {
            base,
            ndim,
            transposed,
            channels,
            kernel,
            strides: vec![1; ndim],
            padding: vec![0; ndim],
            dilation: vec![1; ndim],
            output_padding: vec![0; ndim],
            groups: 1,
            layout,
            act: None,
            weight,
            bias,
            winograd: Mutex::new(None),
        };
        c.weight.set_shape(c.weight_shape(0));
        c
    }

    fn channel_last(&self) -> bool {
        self.layout.ends_with('C')
    }

    fn weight_shape(&self, in_channels: usize) -> Vec<usize> {
        let g = self.groups.max(1);
        let (outer, inner) = if self.transposed {
            (in_channels, self.channels / g)
        } else {
            (self.channels, if in_channels == 0 { 0 } else { in_channels / g })
        };
        let mut s = vec![outer];
        if self.channel_last() {
            s.extend(&self.kernel);
            s.push(inner);
        } else {
            s.push(inner);
            s.extend(&self.kernel);
        }
        s
    }

    pub fn strides(mut self, s: impl Into<Dims>) -> Self {
        self.strides = expand_or_panic(s.into(), self.ndim);
        self
    }
    pub fn padding(mut self, p: impl Into<Dims>) -> Self {
        self.padding = expand_or_panic(p.into(), self.ndim);
        self
    }
    pub fn dilation(mut self, d: impl Into<Dims>) -> Self {
        self.dilation = expand_or_panic(d.into(), self.ndim);
        self
    }
    /// Extra size added to one side of a transposed convolution's output (MXNet's
    /// `output_padding`, the operator's `adj`).
    pub fn output_padding(mut self, p: impl Into<Dims>) -> Self {
        self.output_padding = expand_or_panic(p.into(), self.ndim);
        self
    }
    pub fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self.weight.set_shape(self.weight_shape(0));
        self
    }
    /// Data layout: `NCW`, `NCHW`, `NCDHW` (default) or channel-last `NWC`, `NHWC`, `NDHWC`.
    pub fn layout(mut self, layout: &str) -> Self {
        self.layout = layout.to_string();
        self.weight.set_shape(self.weight_shape(0));
        self
    }
    pub fn activation(mut self, act: &str) -> Self {
        self.act = Some(act.to_string());
        self
    }
    pub fn use_bias(mut self, use_bias: bool) -> Self {
        if !use_bias {
            self.bias = None;
        }
        self
    }
    pub fn in_channels(self, n: usize) -> Self {
        self.weight.set_shape(self.weight_shape(n));
        self
    }
    pub fn weight_initializer(mut self, init: Arc<dyn Initializer>) -> Self {
        self.weight = self.weight.with_init(Some(init));
        self
    }
    pub fn bias_initializer(mut self, init: Arc<dyn Initializer>) -> Self {
        self.bias = self.bias.map(|b| b.with_init(Some(init)));
        self
    }
    pub fn weight(&self) -> &Parameter {
        &self.weight
    }
    pub fn bias(&self) -> Option<&Parameter> {
        self.bias.as_ref()
    }
    /// This convolution, the BatchNorm after it (moving statistics), `sum` added when
    /// given and, with `relu`, a ReLU (after the sum), as one operator (see
    /// [`crate::gluon::HybridSequential`]).
    pub(crate) fn forward_with_batch_norm(
        &self,
        x: &NDArray,
        bn: &BatchNorm,
        relu: bool,
        sum: Option<&NDArray>,
    ) -> Result<NDArray> {
        self.run(x, Some((bn, relu, sum)))
    }

    /// The layer's forward; with `bn`, as one `_sg_conv` that takes in that BatchNorm, the
    /// sum when there is one, and a ReLU after them when the flag is set.
    fn run(&self, x: &NDArray, bn: Option<(&BatchNorm, bool, Option<&NDArray>)>) -> Result<NDArray> {
        let name = self.name();
        for (what, v) in [
            ("kernel_size", &self.kernel),
            ("strides", &self.strides),
            ("padding", &self.padding),
            ("dilation", &self.dilation),
            ("output_padding", &self.output_padding),
        ] {
            check_len(name, what, v, self.ndim)?;
        }
        if x.ndim() != self.ndim + 2 {
            return Err(Error::Invalid(format!(
                "{name}: expects a {}-d input in layout {}, got shape {}",
                self.ndim + 2,
                self.layout,
                x.shape()
            )));
        }
        let c = if self.channel_last() { x.shape()[x.ndim() - 1] } else { x.shape()[1] };
        self.weight.infer_shape(name, &self.weight_shape(c))?;
        let mut inputs = vec![x.clone(), self.weight.data()?];
        if let Some(b) = &self.bias {
            inputs.push(b.data()?);
        }
        let (kernel, stride, dilate, pad) = (
            tuple_attr(&self.kernel),
            tuple_attr(&self.strides),
            tuple_attr(&self.dilation),
            tuple_attr(&self.padding),
        );
        let (num_filter, num_group) = (self.channels.to_string(), self.groups.to_string());
        let adj = tuple_attr(&self.output_padding);
        let mut attrs = vec![
            ("kernel", kernel.as_str()),
            ("stride", &stride),
            ("dilate", &dilate),
            ("pad", &pad),
            ("num_filter", &num_filter),
            ("num_group", &num_group),
            ("no_bias", bool_attr(self.bias.is_none())),
            ("layout", &self.layout),
        ];
        let op_name = if self.transposed {
            attrs.push(("adj", &adj));
            "Deconvolution"
        } else {
            "Convolution"
        };
        let Some((bn, relu, sum)) = bn else {
            let y = op(op_name, &inputs, &attrs)?;
            return match &self.act {
                Some(a) => op("Activation", &[y], &[("act_type", a)]),
                None => Ok(y),
            };
        };
        let (stats, eps, fix_gamma) = bn.fused_inputs(self.channels)?;
        inputs.extend(stats);
        attrs.extend([("eps", eps.as_str()), ("fix_gamma", bool_attr(fix_gamma))]);
        match sum {
            Some(sum) => {
                inputs.push(sum.clone());
                attrs.extend([("with_sum", "1"), ("with_postsum_act", bool_attr(relu))]);
            }
            None => attrs.push(("with_act", bool_attr(relu))),
        }
        if let Some(filters) = self.winograd_filters(&inputs[1])? {
            inputs.push(filters);
            attrs.push(("winograd", "1"));
        }
        op("_sg_conv", &inputs, &attrs)
    }

    /// The weight in Winograd's transform domain when this convolution takes that path
    /// (unit-step 3×3s with enough channels, f32): made by `_winograd_filters` once and
    /// reused until the weight is written again or replaced, so an inference network does
    /// not transform its filters on every call (ResNet-50 b1: 41.0-42.5 -> 39.4-41.6 ms).
    fn winograd_filters(&self, weight: &NDArray) -> Result<Option<NDArray>> {
        let s = weight.shape().dims();
        let applies = self.ndim == 2
            && weight.dtype() == DType::F32
            && self.strides == [1, 1]
            && self.dilation == [1, 1]
            && s.len() == 4
            && mixnet_kernels::conv::winograd_filters_len(s[0], s[1], [1, s[2], s[3]], self.groups).is_some();
        if !applies {
            return Ok(None);
        }
        let mut cache = self.winograd.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) =
            cache.as_ref().filter(|c| c.weight.same_view(weight) && c.writes == weight.write_count())
        {
            return Ok(Some(c.filters.clone()));
        }
        // Counted before the transform is pushed: a write pushed meanwhile makes the next
        // call transform again, never reuse filters older than the weight.
        let writes = weight.write_count();
        let filters = op("_winograd_filters", std::slice::from_ref(weight), &[])?;
        *cache = Some(WinogradFilters { weight: weight.clone(), writes, filters: filters.clone() });
        Ok(Some(filters))
    }
}

impl Block for Conv {
    fn base(&self) -> &BlockBase {
        &self.base
    }
    fn forward(&self, x: &NDArray) -> Result<NDArray> {
        self.run(x, None)
    }
    fn fusion_part(&self) -> Option<crate::gluon::block::FusionPart<'_>> {
        let fusable = !self.transposed && self.act.is_none() && !self.channel_last();
        fusable.then_some(crate::gluon::block::FusionPart::Conv(self))
    }
    fn params(&self) -> Vec<(String, Parameter)> {
        let mut v = vec![("weight".to_string(), self.weight.clone())];
        if let Some(b) = &self.bias {
            v.push(("bias".to_string(), b.clone()));
        }
        v
    }
    fn describe(&self) -> String {
        let w = self.weight.shape();
        let cin = if self.transposed { w[0] } else { w[1] * self.groups };
        let cin = if cin == 0 { "None".to_string() } else { cin.to_string() };
        let kind = if self.transposed { "Conv{}DTranspose" } else { "Conv{}D" }
            .replace("{}", &self.ndim.to_string());
        format!(
            "{kind}({cin} -> {}, kernel_size={:?}, stride={:?})",
            self.channels, self.kernel, self.strides
        )
    }
    crate::impl_as_dyn!();
}
impl HybridBlock for Conv {}

macro_rules! conv_ctor {
    ($(#[$doc:meta])* $name:ident, $nd:literal, $transposed:literal) => {
        $(#[$doc])*
        pub struct $name;
        impl $name {
            /// `channels` output channels, `kernel_size` one number or one per dimension.
            #[allow(clippy::new_ret_no_self)]
            pub fn new(channels: usize, kernel_size: impl Into<Dims>) -> Conv {
                Conv::build($nd, $transposed, channels, kernel_size.into())
            }
        }
    };
}

conv_ctor!(
    /// 1-D convolution, layout `NCW` (MXNet's `nn.Conv1D`).
    Conv1D, 1, false
);
conv_ctor!(
    /// 2-D convolution, layout `NCHW` (MXNet's `nn.Conv2D`).
    Conv2D, 2, false
);
conv_ctor!(
    /// 3-D convolution, layout `NCDHW` (MXNet's `nn.Conv3D`).
    Conv3D, 3, false
);
conv_ctor!(
    /// 1-D transposed convolution (MXNet's `nn.Conv1DTranspose`).
    Conv1DTranspose, 1, true
);
conv_ctor!(
    /// 2-D transposed convolution (MXNet's `nn.Conv2DTranspose`).
    Conv2DTranspose, 2, true
);
conv_ctor!(
    /// 3-D transposed convolution (MXNet's `nn.Conv3DTranspose`).
    Conv3DTranspose, 3, true
);

/// Max or average pooling, windowed or global (MXNet's `_Pooling` over the `Pooling`
/// operator).
pub struct Pool {
    base: BlockBase,
    ndim: usize,
    pool_type: &'static str,
    global: bool,
    pool_size: Vec<usize>,
    strides: Option<Vec<usize>>,
    padding: Vec<usize>,
    ceil_mode: bool,
    count_include_pad: Option<bool>,
    layout: String,
}

impl Pool {
    fn build(ndim: usize, pool_type: &'static str, global: bool, pool_size: Dims) -> Pool {
        let layout = match ndim {
            1 => "NCW",
            2 => "NCHW",
            _ => "NCDHW",
        };
        Pool {
            base: BlockBase::new(None, "pool"),
            ndim,
            pool_type,
            global,
            pool_size: expand_or_panic(pool_size, ndim),
            strides: None,
            padding: vec![0; ndim],
            ceil_mode: global,
            count_include_pad: (pool_type == "avg" && !global).then_some(true),
            layout: layout.to_string(),
        }
    }
    /// Window step (default: the pool size).
    pub fn strides(mut self, s: impl Into<Dims>) -> Self {
        self.strides = Some(expand_or_panic(s.into(), self.ndim));
        self
    }
    pub fn padding(mut self, p: impl Into<Dims>) -> Self {
        self.padding = expand_or_panic(p.into(), self.ndim);
        self
    }
    /// `true`: output size rounds up (MXNet's pooling convention `full`).
    pub fn ceil_mode(mut self, ceil: bool) -> Self {
        self.ceil_mode = ceil;
        self
    }
    /// Average pooling: whether padded zeros count in the divisor (default true).
    pub fn count_include_pad(mut self, v: bool) -> Self {
        if self.pool_type == "avg" {
            self.count_include_pad = Some(v);
        }
        self
    }
    pub fn layout(mut self, layout: &str) -> Self {
        self.layout = layout.to_string();
        self
    }
}

impl Block for Pool {
    fn base(&self) -> &BlockBase {
        &self.base
    }
    fn forward(&self, x: &NDArray) -> Result<NDArray> {
        let name = self.name();
        let strides = self.strides.clone().unwrap_or_else(|| self.pool_size.clone());
        check_len(name, "pool_size", &self.pool_size, self.ndim)?;
        check_len(name, "strides", &strides, self.ndim)?;
        check_len(name, "padding", &self.padding, self.ndim)?;
        let (kernel, stride, pad) =
            (tuple_attr(&self.pool_size), tuple_attr(&strides), tuple_attr(&self.padding));
        let mut attrs = vec![
            ("kernel", kernel.as_str()),
            ("stride", &stride),
            ("pad", &pad),
            ("global_pool", bool_attr(self.global)),
            ("pool_type", self.pool_type),
            ("layout", &self.layout),
            ("pooling_convention", if self.ceil_mode { "full" } else { "valid" }),
        ];
        if let Some(c) = self.count_include_pad {
            attrs.push(("count_include_pad", bool_attr(c)));
        }
        op("Pooling", &[x.clone()], &attrs)
    }
    fn describe(&self) -> String {
        let kind = if self.pool_type == "max" { "MaxPool" } else { "AvgPool" };
        let g = if self.global { "Global" } else { "" };
        format!(
            "{g}{kind}{}D(size={:?}, stride={:?}, padding={:?}, ceil_mode={})",
            self.ndim,
            self.pool_size,
            self.strides.as_ref().unwrap_or(&self.pool_size),
            self.padding,
            bool_attr(self.ceil_mode)
        )
    }
    crate::impl_as_dyn!();
}
impl HybridBlock for Pool {}

macro_rules! pool_ctor {
    ($(#[$doc:meta])* $name:ident, $nd:literal, $ty:literal) => {
        $(#[$doc])*
        pub struct $name;
        impl $name {
            /// Window of `pool_size` (one number or one per dimension); stride = window.
            #[allow(clippy::new_ret_no_self)]
            pub fn new(pool_size: impl Into<Dims>) -> Pool {
                Pool::build($nd, $ty, false, pool_size.into())
            }
        }
    };
}
macro_rules! global_pool_ctor {
    ($(#[$doc:meta])* $name:ident, $nd:literal, $ty:literal) => {
        $(#[$doc])*
        pub struct $name;
        impl $name {
            #[allow(clippy::new_ret_no_self)]
            pub fn new() -> Pool {
                Pool::build($nd, $ty, true, Dims::from(1))
            }
        }
    };
}

pool_ctor!(
    /// MXNet's `nn.MaxPool1D`.
    MaxPool1D, 1, "max"
);
pool_ctor!(
    /// MXNet's `nn.MaxPool2D(pool_size=(2, 2), strides=None, padding=0, ceil_mode=False)`.
    MaxPool2D, 2, "max"
);
pool_ctor!(
    /// MXNet's `nn.MaxPool3D`.
    MaxPool3D, 3, "max"
);
pool_ctor!(
    /// MXNet's `nn.AvgPool1D`.
    AvgPool1D, 1, "avg"
);
pool_ctor!(
    /// MXNet's `nn.AvgPool2D(pool_size=(2, 2), strides=None, padding=0, ceil_mode=False,
    /// count_include_pad=True)`.
    AvgPool2D, 2, "avg"
);
pool_ctor!(
    /// MXNet's `nn.AvgPool3D`.
    AvgPool3D, 3, "avg"
);
global_pool_ctor!(
    /// MXNet's `nn.GlobalMaxPool1D`.
    GlobalMaxPool1D, 1, "max"
);
global_pool_ctor!(
    /// MXNet's `nn.GlobalMaxPool2D`.
    GlobalMaxPool2D, 2, "max"
);
global_pool_ctor!(
    /// MXNet's `nn.GlobalMaxPool3D`.
    GlobalMaxPool3D, 3, "max"
);
global_pool_ctor!(
    /// MXNet's `nn.GlobalAvgPool1D`.
    GlobalAvgPool1D, 1, "avg"
);
global_pool_ctor!(
    /// MXNet's `nn.GlobalAvgPool2D`.
    GlobalAvgPool2D, 2, "avg"
);
global_pool_ctor!(
    /// MXNet's `nn.GlobalAvgPool3D`.
    GlobalAvgPool3D, 3, "avg"
);
