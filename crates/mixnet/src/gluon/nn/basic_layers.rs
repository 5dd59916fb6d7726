//! Dense, Dropout, BatchNorm, LayerNorm, Embedding, Flatten, Identity (MXNet's
//! `gluon.nn.basic_layers`).

use std::sync::Arc;

use crate::autograd::GradReq;
use crate::gluon::block::{Block, BlockBase, HybridBlock};
use crate::gluon::{bool_attr, op, Parameter};
use crate::initializer::{Initializer, One, Zero};
use crate::{DType, Error, NDArray, Result};

fn zeros() -> Option<Arc<dyn Initializer>> {
    Some(Arc::new(Zero))
}
fn ones() -> Option<Arc<dyn Initializer>> {
    Some(Arc::new(One))
}

/// Fully connected layer `y = act(x·Wᵀ + b)` (MXNet's `nn.Dense(units, activation=None,
/// use_bias=True, flatten=True, dtype='float32', weight_initializer=None,
/// bias_initializer='zeros', in_units=0)`).
pub struct Dense {
    base: BlockBase,
    units: usize,
    flatten: bool,
    act: Option<String>,
    weight: Parameter,
    bias: Option<Parameter>,
}

impl Dense {
    pub fn new(units: usize) -> Self {
        Self::build(BlockBase::new(None, "dense"), units)
    }
    pub fn with_prefix(prefix: &str, units: usize) -> Self {
        Self::build(BlockBase::new(Some(prefix), "dense"), units)
    }
    fn build(base: BlockBase, units: usize) -> Self {
        let weight = base.param("weight", &[units, 0]);
        let bias = Some(base.param("bias", &[units]).with_init(zeros()));
        Dense { base, units, flatten: true, act: None, weight, bias }
    }
    /// Activation applied to the output (`relu`, `sigmoid`, `tanh`, `softrelu`, `softsign`).
    pub fn activation(mut self, act: &str) -> Self {
        self.act = Some(act.to_string());
        self
    }
    /// Input features, when known up front (otherwise from the first input).
    pub fn in_units(self, n: usize) -> Self {
        self.weight.set_shape(vec![self.units, n]);
        self
    }
    pub fn use_bias(mut self, use_bias: bool) -> Self {
        if !use_bias {
            self.bias = None;
        }
        self
    }
    /// `false`: apply to the last axis only, keeping the leading axes.
    pub fn flatten(mut self, flatten: bool) -> Self {
        self.flatten = flatten;
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
    pub fn dtype(mut self, dtype: DType) -> Self {
        self.weight = self.weight.with_dtype(dtype);
        self.bias = self.bias.map(|b| b.with_dtype(dtype));
        self
    }
    pub fn weight(&self) -> &Parameter {
        &self.weight
    }
    pub fn bias(&self) -> Option<&Parameter> {
        self.bias.as_ref()
    }
}

impl Block for Dense {
    fn base(&self) -> &BlockBase {
        &self.base
    }
    fn forward(&self, x: &NDArray) -> Result<NDArray> {
        if x.ndim() < 2 && self.flatten || x.ndim() < 1 {
            return Err(Error::Invalid(format!(
                "{}: input of shape {} has too few dimensions",
                self.name(),
                x.shape()
            )));
        }
        let in_units = if self.flatten { x.shape()[1..].iter().product() } else { x.shape()[x.ndim() - 1] };
        self.weight.infer_shape(self.name(), &[self.units, in_units])?;
        let mut inputs = vec![x.clone(), self.weight.data()?];
        if let Some(b) = &self.bias {
            inputs.push(b.data()?);
        }
        let units = self.units.to_string();
        let y = op(
            "FullyConnected",
            &inputs,
            &[
                ("num_hidden", &units),
                ("no_bias", bool_attr(self.bias.is_none())),
                ("flatten", bool_attr(self.flatten)),
            ],
        )?;
        match &self.act {
            Some(a) => op("Activation", &[y], &[("act_type", a)]),
            None => Ok(y),
        }
    }
    fn params(&self) -> Vec<(String, Parameter)> {
        let mut v = vec![("weight".to_string(), self.weight.clone())];
        if let Some(b) = &self.bias {
            v.push(("bias".to_string(), b.clone()));
        }
        v
    }
    fn describe(&self) -> String {
        let s = self.weight.shape();
        let input = if s[1] == 0 { "None".to_string() } else { s[1].to_string() };
        format!("Dense({input} -> {}, {})", self.units, self.act.as_deref().unwrap_or("linear"))
    }
    crate::impl_as_dyn!();
}
impl HybridBlock for Dense {}

/// Dropout with probability `rate` in training mode (MXNet's `nn.Dropout(rate, axes=())`).
pub struct Dropout {
    base: BlockBase,
    rate: f64,
    axes: Vec<usize>,
}

impl Dropout {
    pub fn new(rate: f64) -> Self {
        Dropout { base: BlockBase::new(None, "dropout"), rate, axes: Vec::new() }
    }
    /// Axes along which the same mask is shared (variational dropout).
    pub fn axes(mut self, axes: &[usize]) -> Self {
        self.axes = axes.to_vec();
        self
    }
}

impl Block for Dropout {
    fn base(&self) -> &BlockBase {
        &self.base
    }
    fn forward(&self, x: &NDArray) -> Result<NDArray> {
        if self.rate <= 0.0 {
            return op("_copy", &[x.clone()], &[]);
        }
        let p = self.rate.to_string();
        let axes = crate::gluon::tuple_attr(&self.axes);
        let axes = if self.axes.is_empty() { "()".to_string() } else { axes };
        op("Dropout", &[x.clone()], &[("p", &p), ("axes", &axes)])
    }
    fn describe(&self) -> String {
        format!("Dropout(p = {}, axes={:?})", self.rate, self.axes)
    }
    crate::impl_as_dyn!();
}
impl HybridBlock for Dropout {}

/// Batch normalization (MXNet's `nn.BatchNorm(axis=1, momentum=0.9, epsilon=1e-5,
/// center=True, scale=True, use_global_stats=False, in_channels=0)`). Running statistics
/// are auxiliary parameters (`grad_req` null) updated by the operator in training mode.
pub struct BatchNorm {
    base: BlockBase,
    axis: i64,
    momentum: f64,
    epsilon: f64,
    scale: bool,
    use_global_stats: bool,
    gamma: Parameter,
    beta: Parameter,
    running_mean: Parameter,
    running_var: Parameter,
}

impl BatchNorm {
    pub fn new() -> Self {
        let base = BlockBase::new(None, "batchnorm");
        let gamma = base.param("gamma", &[0]).with_init(ones());
        let beta = base.param("beta", &[0]).with_init(zeros());
        let running_mean = base.param("running_mean", &[0]).with_init(zeros()).with_differentiable(false);
        let running_var = base.param("running_var", &[0]).with_init(ones()).with_differentiable(false);
        BatchNorm {
            base,
            axis: 1,
            momentum: 0.9,
            epsilon: 1e-5,
            scale: true,
            use_global_stats: false,
            gamma,
            beta,
            running_mean,
            running_var,
        }
    }
    pub fn axis(mut self, axis: i64) -> Self {
        self.axis = axis;
        self
    }
    pub fn momentum(mut self, m: f64) -> Self {
        self.momentum = m;
        self
    }
    pub fn epsilon(mut self, e: f64) -> Self {
        self.epsilon = e;
        self
    }
    /// `false`: no learned offset (beta frozen at its initial value).
    pub fn center(mut self, center: bool) -> Self {
        self.beta = self.beta.with_grad_req(if center { GradReq::Write } else { GradReq::Null });
        self
    }
    /// `false`: no learned scale (gamma fixed at 1, MXNet's `fix_gamma`).
    pub fn scale(mut self, scale: bool) -> Self {
        self.scale = scale;
        self.gamma = self.gamma.with_grad_req(if scale { GradReq::Write } else { GradReq::Null });
        self
    }
    pub fn use_global_stats(mut self, v: bool) -> Self {
        self.use_global_stats = v;
        self
    }
    pub fn in_channels(self, n: usize) -> Self {
        for p in [&self.gamma, &self.beta, &self.running_mean, &self.running_var] {
            p.set_shape(vec![n]);
        }
        self
    }
    pub fn gamma(&self) -> &Parameter {
        &self.gamma
    }
    pub fn beta(&self) -> &Parameter {
        &self.beta
    }
    pub fn running_mean(&self) -> &Parameter {
        &self.running_mean
    }
    pub fn running_var(&self) -> &Parameter {
        &self.running_var
    }

    /// Whether it normalizes axis 1, the channels of a channel-first convolution's output.
    pub(crate) fn normalizes_channels(&self) -> bool {
        self.axis == 1
    }

    pub(crate) fn uses_global_stats(&self) -> bool {
        self.use_global_stats
    }

    /// The inputs (gamma, beta, moving mean and variance, shaped for `channels`) and the
    /// attributes (`eps`, `fix_gamma`) of a `_sg_conv` that takes this layer in.
    pub(crate) fn fused_inputs(&self, channels: usize) -> Result<(Vec<NDArray>, String, bool)> {
        let params = [&self.gamma, &self.beta, &self.running_mean, &self.running_var];
        for p in params {
            p.infer_shape(self.name(), &[channels])?;
        }
        let inputs = params.iter().map(|p| p.data()).collect::<Result<Vec<_>>>()?;
        Ok((inputs, self.epsilon.to_string(), !self.scale))
    }
}

impl Default for BatchNorm {
    fn default() -> Self {
        Self::new()
    }
}

fn norm_axis(layer: &str, axis: i64, x: &NDArray) -> Result<usize> {
    let nd = x.ndim() as i64;
    let a = if axis < 0 { axis + nd } else { axis };
    if a < 0 || a >= nd {
        return Err(Error::Invalid(format!(
            "{layer}: axis {axis} is out of range for input of shape {}",
            x.shape()
        )));
    }
    Ok(a as usize)
}

impl Block for BatchNorm {
    fn base(&self) -> &BlockBase {
        &self.base
    }
    fn fusion_part(&self) -> Option<crate::gluon::block::FusionPart<'_>> {
        Some(crate::gluon::block::FusionPart::BatchNorm(self))
    }
    fn forward(&self, x: &NDArray) -> Result<NDArray> {
        let c = x.shape()[norm_axis(self.name(), self.axis, x)?];
        for p in [&self.gamma, &self.beta, &self.running_mean, &self.running_var] {
            p.infer_shape(self.name(), &[c])?;
        }
        let (axis, eps, mom) = (self.axis.to_string(), self.epsilon.to_string(), self.momentum.to_string());
        op(
            "BatchNorm",
            &[
                x.clone(),
                self.gamma.data()?,
                self.beta.data()?,
                self.running_mean.data()?,
                self.running_var.data()?,
            ],
            &[
                ("axis", &axis),
                ("eps", &eps),
                ("momentum", &mom),
                ("fix_gamma", bool_attr(!self.scale)),
                ("use_global_stats", bool_attr(self.use_global_stats)),
            ],
        )
    }
    fn params(&self) -> Vec<(String, Parameter)> {
        vec![
            ("gamma".into(), self.gamma.clone()),
            ("beta".into(), self.beta.clone()),
            ("running_mean".into(), self.running_mean.clone()),
            ("running_var".into(), self.running_var.clone()),
        ]
    }
    fn describe(&self) -> String {
        let c = self.gamma.shape()[0];
        let c = if c == 0 { "None".to_string() } else { c.to_string() };
        format!(
            "BatchNorm(axis={}, eps={}, momentum={}, fix_gamma={}, use_global_stats={}, in_channels={c})",
            self.axis,
            self.epsilon,
            self.momentum,
            bool_attr(!self.scale),
            bool_attr(self.use_global_stats)
        )
    }
    crate::impl_as_dyn!();
}
impl HybridBlock for BatchNorm {}

/// `epsilon`, `center` and `scale` of the normalization layers with `gamma`/`beta`:
/// `center(false)` freezes beta, `scale(false)` freezes gamma (at their initial values).
macro_rules! norm_options {
    () => {
        pub fn epsilon(mut self, e: f64) -> Self {
            self.epsilon = e;
            self
        }
        pub fn center(mut self, center: bool) -> Self {
            self.beta = self.beta.with_grad_req(if center { GradReq::Write } else { GradReq::Null });
            self
        }
        pub fn scale(mut self, scale: bool) -> Self {
            self.gamma = self.gamma.with_grad_req(if scale { GradReq::Write } else { GradReq::Null });
            self
        }
    };
}

/// Layer normalization over `axis` (MXNet's `nn.LayerNorm(axis=-1, epsilon=1e-5,
/// center=True, scale=True, in_channels=0)`).
pub struct LayerNorm {
    base: BlockBase,
    axis: i64,
    epsilon: f64,
    gamma: Parameter,
    beta: Parameter,
}

impl LayerNorm {
    pub fn new() -> Self {
        let base = BlockBase::new(None, "layernorm");
        let gamma = base.param("gamma", &[0]).with_init(ones());
        let beta = base.param("beta", &[0]).with_init(zeros());
        LayerNorm { base, axis: -1, epsilon: 1e-5, gamma, beta }
    }
    pub fn axis(mut self, axis: i64) -> Self {
        self.axis = axis;
        self
    }
    norm_options!();
}

impl Default for LayerNorm {
    fn default() -> Self {
        Self::new()
    }
}

impl Block for LayerNorm {
    fn base(&self) -> &BlockBase {
        &self.base
    }
    fn forward(&self, x: &NDArray) -> Result<NDArray> {
        let c = x.shape()[norm_axis(self.name(), self.axis, x)?];
        self.gamma.infer_shape(self.name(), &[c])?;
        self.beta.infer_shape(self.name(), &[c])?;
        let (axis, eps) = (self.axis.to_string(), self.epsilon.to_string());
        op(
            "LayerNorm",
            &[x.clone(), self.gamma.data()?, self.beta.data()?],
            &[("axis", &axis), ("eps", &eps)],
        )
    }
    fn params(&self) -> Vec<(String, Parameter)> {
        vec![("gamma".into(), self.gamma.clone()), ("beta".into(), self.beta.clone())]
    }
    crate::impl_as_dyn!();
}
impl HybridBlock for LayerNorm {}

/// Group normalization (MXNet 1.x's `nn.GroupNorm(num_groups=1, epsilon=1e-5,
/// center=True, scale=True)`): `gamma` and `beta` hold one value per group, as in 1.x.
pub struct GroupNorm {
    base: BlockBase,
    num_groups: usize,
    epsilon: f64,
    gamma: Parameter,
    beta: Parameter,
}

impl GroupNorm {
    pub fn new(num_groups: usize) -> Self {
        let base = BlockBase::new(None, "groupnorm");
        let gamma = base.param("gamma", &[num_groups]).with_init(ones());
        let beta = base.param("beta", &[num_groups]).with_init(zeros());
        GroupNorm { base, num_groups, epsilon: 1e-5, gamma, beta }
    }
    norm_options!();
}

impl Block for GroupNorm {
    fn base(&self) -> &BlockBase {
        &self.base
    }
    fn forward(&self, x: &NDArray) -> Result<NDArray> {
        let (groups, eps) = (self.num_groups.to_string(), self.epsilon.to_string());
        op(
            "GroupNorm",
            &[x.clone(), self.gamma.data()?, self.beta.data()?],
            &[("num_groups", &groups), ("eps", &eps)],
        )
    }
    fn params(&self) -> Vec<(String, Parameter)> {
        vec![("gamma".into(), self.gamma.clone()), ("beta".into(), self.beta.clone())]
    }
    crate::impl_as_dyn!();
}
impl HybridBlock for GroupNorm {}

/// Instance normalization over the spatial axes of each (sample, channel) (MXNet's
/// `nn.InstanceNorm(axis=1, epsilon=1e-5, center=True, scale=False, in_channels=0)`:
/// note the layer's `scale` defaults to false, so `gamma` stays one).
pub struct InstanceNorm {
    base: BlockBase,
    epsilon: f64,
    gamma: Parameter,
    beta: Parameter,
}

impl InstanceNorm {
    pub fn new() -> Self {
        let base = BlockBase::new(None, "instancenorm");
        let gamma = base.param("gamma", &[0]).with_init(ones()).with_grad_req(GradReq::Null);
        let beta = base.param("beta", &[0]).with_init(zeros());
        InstanceNorm { base, epsilon: 1e-5, gamma, beta }
    }
    norm_options!();
}

impl Default for InstanceNorm {
    fn default() -> Self {
        Self::new()
    }
}

impl Block for InstanceNorm {
    fn base(&self) -> &BlockBase {
        &self.base
    }
    fn forward(&self, x: &NDArray) -> Result<NDArray> {
        let c = x.shape().get(1).copied().ok_or_else(|| {
            crate::Error::op(
                self.name(),
                format!("input {} needs a channel axis (batch, channels, ...)", x.shape()),
            )
        })?;
        self.gamma.infer_shape(self.name(), &[c])?;
        self.beta.infer_shape(self.name(), &[c])?;
        let eps = self.epsilon.to_string();
        op("InstanceNorm", &[x.clone(), self.gamma.data()?, self.beta.data()?], &[("eps", &eps)])
    }
    fn params(&self) -> Vec<(String, Parameter)> {
        vec![("gamma".into(), self.gamma.clone()), ("beta".into(), self.beta.clone())]
    }
    crate::impl_as_dyn!();
}
impl HybridBlock for InstanceNorm {}

/// Lookup table of `input_dim` vectors of `output_dim` (MXNet's `nn.Embedding`); indices
/// out of range are clipped, as MXNet's `Embedding` does.
pub struct Embedding {
    base: BlockBase,
    weight: Parameter,
}

impl Embedding {
    pub fn new(input_dim: usize, output_dim: usize) -> Self {
        let base = BlockBase::new(None, "embedding");
        let weight = base.param("weight", &[input_dim, output_dim]);
        Embedding { base, weight }
    }
    pub fn weight_initializer(mut self, init: Arc<dyn Initializer>) -> Self {
        self.weight = self.weight.with_init(Some(init));
        self
    }
    pub fn weight(&self) -> &Parameter {
        &self.weight
    }
}

impl Block for Embedding {
    fn base(&self) -> &BlockBase {
        &self.base
    }
    fn forward(&self, x: &NDArray) -> Result<NDArray> {
        let s = self.weight.shape();
        let (input_dim, output_dim, dtype) =
            (s[0].to_string(), s[1].to_string(), self.weight.dtype().to_string());
        op(
            "Embedding",
            &[x.clone(), self.weight.data()?],
            &[("input_dim", &input_dim), ("output_dim", &output_dim), ("dtype", &dtype)],
        )
    }
    fn params(&self) -> Vec<(String, Parameter)> {
        vec![("weight".into(), self.weight.clone())]
    }
    fn describe(&self) -> String {
        let s = self.weight.shape();
        format!("Embedding({} -> {}, float32)", s[0], s[1])
    }
    crate::impl_as_dyn!();
}
impl HybridBlock for Embedding {}

/// Flatten to `(batch, -1)` (MXNet's `nn.Flatten`).
pub struct Flatten {
    base: BlockBase,
}

impl Flatten {
    pub fn new() -> Self {
        Flatten { base: BlockBase::new(None, "flatten") }
    }
}
impl Default for Flatten {
    fn default() -> Self {
        Self::new()
    }
}

impl Block for Flatten {
    fn base(&self) -> &BlockBase {
        &self.base
    }
    fn forward(&self, x: &NDArray) -> Result<NDArray> {
        op("Flatten", &[x.clone()], &[])
    }
    fn describe(&self) -> String {
        "Flatten".into()
    }
    crate::impl_as_dyn!();
}
impl HybridBlock for Flatten {}

/// The input unchanged (MXNet's `contrib.nn.Identity`).
pub struct Identity {
    base: BlockBase,
}
impl Identity {
    pub fn new() -> Self {
        Identity { base: BlockBase::new(None, "identity") }
    }
}
impl Default for Identity {
    fn default() -> Self {
        Self::new()
    }
}
impl Block for Identity {
    fn base(&self) -> &BlockBase {
        &self.base
    }
    fn forward(&self, x: &NDArray) -> Result<NDArray> {
        Ok(x.clone())
    }
    crate::impl_as_dyn!();
}
impl HybridBlock for Identity {}
