//! Losses (MXNet's `gluon.loss`). Each returns one value per sample: the elementwise loss,
//! times `sample_weight` (broadcast) and the loss's `weight`, averaged over every axis but
//! `batch_axis`. The losses over pairs and triplets of inputs (Triplet, CosineEmbedding,
//! SDML) live in `embedding.rs`, CTC in `ctc.rs`.

mod ctc;
mod embedding;

pub use ctc::CTCLoss;
pub use embedding::{CosineEmbeddingLoss, SDMLLoss, TripletLoss};

use super::op;
use crate::{Error, NDArray, Result};

/// A loss function `(pred, label[, sample_weight]) -> per-sample loss`.
pub trait Loss: Send + Sync {
    /// Per-sample loss of shape `(batch,)`.
    fn loss(&self, pred: &NDArray, label: &NDArray, sample_weight: Option<&NDArray>) -> Result<NDArray>;

    /// `loss(pred, label, None)`, as MXNet's `loss_fn(pred, label)`.
    fn call(&self, pred: &NDArray, label: &NDArray) -> Result<NDArray> {
        self.loss(pred, label, None)
    }
}

/// The common part of every loss: MXNet's `weight` and `batch_axis`.
#[derive(Clone, Copy, Debug)]
struct Base {
    weight: Option<f64>,
    batch_axis: usize,
}

impl Base {
    /// MXNet's `_apply_weighting`: times `sample_weight` (broadcast), times `weight`.
    fn weighting(&self, loss: NDArray, sample_weight: Option<&NDArray>) -> Result<NDArray> {
        let mut loss = loss;
        if let Some(w) = sample_weight {
            loss = op("broadcast_mul", &[loss, w.clone()], &[])?;
        }
        if let Some(w) = self.weight {
            loss = op("_mul_scalar", &[loss], &[("scalar", &w.to_string())])?;
        }
        Ok(loss)
    }

    /// `_apply_weighting` then the mean over non-batch axes.
    fn finish(&self, loss: NDArray, sample_weight: Option<&NDArray>) -> Result<NDArray> {
        let loss = self.weighting(loss, sample_weight)?;
        if loss.ndim() <= 1 {
            return Ok(loss);
        }
        op("mean", &[loss], &[("axis", &self.batch_axis.to_string()), ("exclude", "True")])
    }
}

fn reshape_like(label: &NDArray, pred: &NDArray, loss: &str) -> Result<NDArray> {
    if label.shape() == pred.shape() {
        return Ok(label.clone());
    }
    if label.size() != pred.size() {
        return Err(Error::Invalid(format!(
            "{loss}: label of shape {} cannot be matched with prediction of shape {}",
            label.shape(),
            pred.shape()
        )));
    }
    op("reshape_like", &[label.clone(), pred.clone()], &[])
}

fn sub(a: &NDArray, b: &NDArray) -> Result<NDArray> {
    op("elemwise_sub", &[a.clone(), b.clone()], &[])
}
fn mul(a: &NDArray, b: &NDArray) -> Result<NDArray> {
    op("elemwise_mul", &[a.clone(), b.clone()], &[])
}
fn scalar(name: &str, a: &NDArray, s: f64) -> Result<NDArray> {
    op(name, &[a.clone()], &[("scalar", &s.to_string())])
}
fn unary(name: &str, a: &NDArray) -> Result<NDArray> {
    op(name, &[a.clone()], &[])
}

macro_rules! loss_common {
    () => {
        /// Global scale applied to the loss.
        pub fn weight(mut self, w: f64) -> Self {
            self.base.weight = Some(w);
            self
        }
        /// The axis that holds samples (default 0).
        pub fn batch_axis(mut self, a: usize) -> Self {
            self.base.batch_axis = a;
            self
        }
    };
}
pub(crate) use loss_common;

/// Softmax cross-entropy (MXNet's `SoftmaxCrossEntropyLoss(axis=-1, sparse_label=True,
/// from_logits=False)`): `-pick(log_softmax(pred), label)`.
#[derive(Clone, Debug)]
pub struct SoftmaxCrossEntropyLoss {
    base: Base,
    axis: i64,
    sparse_label: bool,
    from_logits: bool,
}

/// MXNet's short name.
pub type SoftmaxCELoss = SoftmaxCrossEntropyLoss;

impl SoftmaxCrossEntropyLoss {
    pub fn new() -> Self {
        SoftmaxCrossEntropyLoss {
            base: Base { weight: None, batch_axis: 0 },
            axis: -1,
            sparse_label: true,
            from_logits: false,
        }
    }
    pub fn axis(mut self, axis: i64) -> Self {
        self.axis = axis;
        self
    }
    /// `false`: labels are distributions shaped like `pred`.
    pub fn sparse_label(mut self, v: bool) -> Self {
        self.sparse_label = v;
        self
    }
    /// `true`: `pred` already holds log-probabilities.
    pub fn from_logits(mut self, v: bool) -> Self {
        self.from_logits = v;
        self
    }
    loss_common!();
}

impl Default for SoftmaxCrossEntropyLoss {
    fn default() -> Self {
        Self::new()
    }
}

impl Loss for SoftmaxCrossEntropyLoss {
    fn loss(&self, pred: &NDArray, label: &NDArray, sample_weight: Option<&NDArray>) -> Result<NDArray> {
        let axis = self.axis.to_string();
        let logp = if self.from_logits {
            pred.clone()
        } else {
            op("log_softmax", &[pred.clone()], &[("axis", &axis)])?
        };
        let picked = if self.sparse_label {
            op("pick", &[logp, label.clone()], &[("axis", &axis), ("keepdims", "True")])?
        } else {
            let label = reshape_like(label, pred, "SoftmaxCrossEntropyLoss")?;
            op("sum", &[mul(&logp, &label)?], &[("axis", &axis), ("keepdims", "True")])?
        };
        self.base.finish(unary("negative", &picked)?, sample_weight)
    }
}

/// `½·(pred − label)²` (MXNet's `L2Loss(weight=1.0)`).
#[derive(Clone, Debug)]
pub struct L2Loss {
    base: Base,
}
impl L2Loss {
    pub fn new() -> Self {
        L2Loss { base: Base { weight: Some(1.0), batch_axis: 0 } }
    }
    loss_common!();
}
impl Default for L2Loss {
    fn default() -> Self {
        Self::new()
    }
}
impl Loss for L2Loss {
    fn loss(&self, pred: &NDArray, label: &NDArray, sample_weight: Option<&NDArray>) -> Result<NDArray> {
        let label = reshape_like(label, pred, "L2Loss")?;
        let l = unary("square", &sub(&label, pred)?)?;
        let half = Base { weight: Some(self.base.weight.unwrap_or(1.0) / 2.0), ..self.base };
        half.finish(l, sample_weight)
    }
}

/// `|pred − label|` (MXNet's `L1Loss`).
#[derive(Clone, Debug)]
pub struct L1Loss {
    base: Base,
}
impl L1Loss {
    pub fn new() -> Self {
        L1Loss { base: Base { weight: None, batch_axis: 0 } }
    }
    loss_common!();
}
impl Default for L1Loss {
    fn default() -> Self {
        Self::new()
    }
}
impl Loss for L1Loss {
    fn loss(&self, pred: &NDArray, label: &NDArray, sample_weight: Option<&NDArray>) -> Result<NDArray> {
        let label = reshape_like(label, pred, "L1Loss")?;
        self.base.finish(unary("abs", &sub(&label, pred)?)?, sample_weight)
    }
}

/// Binary cross-entropy on logits or probabilities (MXNet's
/// `SigmoidBinaryCrossEntropyLoss(from_sigmoid=False)`, alias `SigmoidBCELoss`).
#[derive(Clone, Debug)]
pub struct SigmoidBinaryCrossEntropyLoss {
    base: Base,
    from_sigmoid: bool,
}
pub type SigmoidBCELoss = SigmoidBinaryCrossEntropyLoss;
impl SigmoidBinaryCrossEntropyLoss {
    pub fn new() -> Self {
        SigmoidBinaryCrossEntropyLoss { base: Base { weight: None, batch_axis: 0 }, from_sigmoid: false }
    }
    pub fn from_sigmoid(mut self, v: bool) -> Self {
        self.from_sigmoid = v;
        self
    }
    loss_common!();
}
impl Default for SigmoidBinaryCrossEntropyLoss {
    fn default() -> Self {
        Self::new()
    }
}
impl Loss for SigmoidBinaryCrossEntropyLoss {
    fn loss(&self, pred: &NDArray, label: &NDArray, sample_weight: Option<&NDArray>) -> Result<NDArray> {
        let label = reshape_like(label, pred, "SigmoidBinaryCrossEntropyLoss")?;
        let l = if !self.from_sigmoid {
            // relu(x) - x*z + softrelu(-|x|)
            let relu = unary("relu", pred)?;
            let xz = mul(pred, &label)?;
            let neg_abs = unary("negative", &unary("abs", pred)?)?;
            let soft = op("Activation", &[neg_abs], &[("act_type", "softrelu")])?;
            op("elemwise_add", &[sub(&relu, &xz)?, soft], &[])?
        } else {
            // -(log(p + eps)·z + log(1 − p + eps)·(1 − z))
            let eps = 1e-12;
            let lp = unary("log", &scalar("_plus_scalar", pred, eps)?)?;
            let one_minus_p = scalar("_rminus_scalar", pred, 1.0)?;
            let lq = unary("log", &scalar("_plus_scalar", &one_minus_p, eps)?)?;
            let one_minus_z = scalar("_rminus_scalar", &label, 1.0)?;
            let s = op("elemwise_add", &[mul(&lp, &label)?, mul(&lq, &one_minus_z)?], &[])?;
            unary("negative", &s)?
        };
        self.base.finish(l, sample_weight)
    }
}

/// `max(0, margin − pred·label)` for labels ±1 (MXNet's `HingeLoss(margin=1)`).
#[derive(Clone, Debug)]
pub struct HingeLoss {
    base: Base,
    margin: f64,
    squared: bool,
}
impl HingeLoss {
    pub fn new() -> Self {
        HingeLoss { base: Base { weight: None, batch_axis: 0 }, margin: 1.0, squared: false }
    }
    pub fn margin(mut self, m: f64) -> Self {
        self.margin = m;
        self
    }
    loss_common!();
}
impl Default for HingeLoss {
    fn default() -> Self {
        Self::new()
    }
}
/// `max(0, margin − pred·label)²` (MXNet's `SquaredHingeLoss`).
pub fn squared_hinge_loss() -> HingeLoss {
    HingeLoss { squared: true, ..HingeLoss::new() }
}
impl Loss for HingeLoss {
    fn loss(&self, pred: &NDArray, label: &NDArray, sample_weight: Option<&NDArray>) -> Result<NDArray> {
        let label = reshape_like(label, pred, "HingeLoss")?;
        let l = unary("relu", &scalar("_rminus_scalar", &mul(pred, &label)?, self.margin)?)?;
        let l = if self.squared { unary("square", &l)? } else { l };
        self.base.finish(l, sample_weight)
    }
}

/// Smooth L1: `|label − pred| − rho/2` beyond `rho`, `(label − pred)²/(2·rho)` within
/// (MXNet's `HuberLoss(rho=1)`).
#[derive(Clone, Debug)]
pub struct HuberLoss {
    base: Base,
    rho: f64,
}
impl HuberLoss {
    pub fn new() -> Self {
        HuberLoss { base: Base { weight: None, batch_axis: 0 }, rho: 1.0 }
    }
    pub fn rho(mut self, rho: f64) -> Self {
        self.rho = rho;
        self
    }
    loss_common!();
}
impl Default for HuberLoss {
    fn default() -> Self {
        Self::new()
    }
}
impl Loss for HuberLoss {
    fn loss(&self, pred: &NDArray, label: &NDArray, sample_weight: Option<&NDArray>) -> Result<NDArray> {
        let label = reshape_like(label, pred, "HuberLoss")?;
        let d = unary("abs", &sub(&label, pred)?)?;
        let outside = scalar("_greater_scalar", &d, self.rho)?;
        let linear = scalar("_minus_scalar", &d, 0.5 * self.rho)?;
        let quadratic = scalar("_mul_scalar", &unary("square", &d)?, 0.5 / self.rho)?;
        let l = op("where", &[outside, linear, quadratic], &[])?;
        self.base.finish(l, sample_weight)
    }
}

/// Poisson negative log-likelihood (MXNet's `PoissonNLLLoss(from_logits=True,
/// compute_full=False)`): `exp(pred) − target·pred` from log-rates, or
/// `pred − target·log(pred + 1e-8)` from rates; `compute_full` adds Stirling's term where
/// `target > 1`. As MXNet, the result is the mean over *all* elements (shape `(1,)`), not a
/// per-sample loss.
#[derive(Clone, Debug)]
pub struct PoissonNLLLoss {
    base: Base,
    from_logits: bool,
    compute_full: bool,
}
impl PoissonNLLLoss {
    pub fn new() -> Self {
        PoissonNLLLoss { base: Base { weight: None, batch_axis: 0 }, from_logits: true, compute_full: false }
    }
    pub fn from_logits(mut self, v: bool) -> Self {
        self.from_logits = v;
        self
    }
    pub fn compute_full(mut self, v: bool) -> Self {
        self.compute_full = v;
        self
    }
    loss_common!();
}
impl Default for PoissonNLLLoss {
    fn default() -> Self {
        Self::new()
    }
}
impl Loss for PoissonNLLLoss {
    fn loss(&self, pred: &NDArray, target: &NDArray, sample_weight: Option<&NDArray>) -> Result<NDArray> {
        let target = reshape_like(target, pred, "PoissonNLLLoss")?;
        let mut l = if self.from_logits {
            sub(&unary("exp", pred)?, &mul(&target, pred)?)?
        } else {
            sub(pred, &mul(&target, &unary("log", &scalar("_plus_scalar", pred, 1e-8)?)?)?)?
        };
        if self.compute_full {
            let t_log_t = mul(&target, &unary("log", &target)?)?;
            let half_log = scalar(
                "_mul_scalar",
                &unary("log", &scalar("_mul_scalar", &target, 2.0 * std::f64::consts::PI)?)?,
                0.5,
            )?;
            let stirling = op("elemwise_add", &[sub(&t_log_t, &target)?, half_log], &[])?;
            let gt1 = scalar("_greater_scalar", &target, 1.0)?;
            // Where target <= 1 the term is dropped. MXNet multiplies by the mask instead, which
            // gives NaN for zero targets (0 · log 0); selecting keeps the loss finite.
            let zeros = scalar("_mul_scalar", &target, 0.0)?;
            l = op("elemwise_add", &[l, op("where", &[gt1, stirling, zeros], &[])?], &[])?;
        }
        let mut l = l;
        if let Some(w) = sample_weight {
            l = op("broadcast_mul", &[l, w.clone()], &[])?;
        }
        if let Some(w) = self.base.weight {
            l = scalar("_mul_scalar", &l, w)?;
        }
        op("mean", &[l], &[])
    }
}

/// Kullback-Leibler divergence `label·(log(label) − pred)` summed per sample (MXNet's
/// `KLDivLoss(from_logits=True, axis=-1)`).
#[derive(Clone, Debug)]
pub struct KLDivLoss {
    base: Base,
    from_logits: bool,
    axis: i64,
}
impl KLDivLoss {
    pub fn new() -> Self {
        KLDivLoss { base: Base { weight: None, batch_axis: 0 }, from_logits: true, axis: -1 }
    }
    pub fn from_logits(mut self, v: bool) -> Self {
        self.from_logits = v;
        self
    }
    pub fn axis(mut self, axis: i64) -> Self {
        self.axis = axis;
        self
    }
    loss_common!();
}
impl Default for KLDivLoss {
    fn default() -> Self {
        Self::new()
    }
}
impl Loss for KLDivLoss {
    fn loss(&self, pred: &NDArray, label: &NDArray, sample_weight: Option<&NDArray>) -> Result<NDArray> {
        let pred = if self.from_logits {
            pred.clone()
        } else {
            op("log_softmax", &[pred.clone()], &[("axis", &self.axis.to_string())])?
        };
        let log_label = unary("log", &scalar("_plus_scalar", label, 1e-12)?)?;
        let l = mul(label, &sub(&log_label, &pred)?)?;
        // MXNet sums the divergence over the class axes (other losses average).
        let l = self.base.weighting(l, sample_weight)?;
        if l.ndim() <= 1 {
            return Ok(l);
        }
        op("sum", &[l], &[("axis", &self.base.batch_axis.to_string()), ("exclude", "True")])
    }
}

/// `log(1 + exp(−pred·label))` (MXNet's `LogisticLoss(label_format='signed')`; `binary`
/// labels 0/1 are mapped to ±1).
#[derive(Clone, Debug)]
pub struct LogisticLoss {
    base: Base,
    binary: bool,
}
impl LogisticLoss {
    pub fn new() -> Self {
        LogisticLoss { base: Base { weight: None, batch_axis: 0 }, binary: false }
    }
    /// `"signed"` (labels ±1, default) or `"binary"` (labels 0/1).
    pub fn label_format(mut self, format: &str) -> Result<Self> {
        self.binary = match format {
            "signed" => false,
            "binary" => true,
            other => {
                return Err(Error::Invalid(format!(
                    "LogisticLoss: label_format must be signed or binary, got {other}"
                )))
            }
        };
        Ok(self)
    }
    loss_common!();
}
impl Default for LogisticLoss {
    fn default() -> Self {
        Self::new()
    }
}
impl Loss for LogisticLoss {
    fn loss(&self, pred: &NDArray, label: &NDArray, sample_weight: Option<&NDArray>) -> Result<NDArray> {
        let label = reshape_like(label, pred, "LogisticLoss")?;
        let label = if self.binary {
            scalar("_minus_scalar", &scalar("_mul_scalar", &label, 2.0)?, 1.0)?
        } else {
            label
        };
        let m = unary("negative", &mul(pred, &label)?)?;
        let relu = unary("relu", &m)?;
        let soft = op("Activation", &[unary("negative", &unary("abs", &m)?)?], &[("act_type", "softrelu")])?;
        self.base.finish(op("elemwise_add", &[relu, soft], &[])?, sample_weight)
    }
}
