//! Losses that compare embeddings rather than a prediction with a label: MXNet's
//! `TripletLoss`, `CosineEmbeddingLoss` and `SDMLLoss`. They take two or three inputs, so
//! each has its own `call` instead of the two-input [`Loss`](super::Loss) trait.

use super::{mul, op, reshape_like, scalar, sub, unary, Base};
use crate::{Error, NDArray, Result};

/// `relu(Σ (positive − pred)² − (negative − pred)² + margin)` summed over every axis but
/// the batch axis (MXNet's `TripletLoss(margin=1)`).
#[derive(Clone, Debug)]
pub struct TripletLoss {
    base: Base,
    margin: f64,
}

impl TripletLoss {
    pub fn new() -> Self {
        TripletLoss { base: Base { weight: None, batch_axis: 0 }, margin: 1.0 }
    }
    pub fn margin(mut self, m: f64) -> Self {
        self.margin = m;
        self
    }
    super::loss_common!();

    /// Per-sample loss of shape `(batch,)`; `positive`/`negative` may be any shape with
    /// `pred`'s size.
    pub fn call(&self, pred: &NDArray, positive: &NDArray, negative: &NDArray) -> Result<NDArray> {
        let positive = reshape_like(positive, pred, "TripletLoss")?;
        let negative = reshape_like(negative, pred, "TripletLoss")?;
        let pos = unary("square", &sub(&positive, pred)?)?;
        let neg = unary("square", &sub(&negative, pred)?)?;
        let axis = self.base.batch_axis.to_string();
        let d = op("sum", &[sub(&pos, &neg)?], &[("axis", &axis), ("exclude", "True")])?;
        let loss = unary("relu", &scalar("_plus_scalar", &d, self.margin)?)?;
        self.base.weighting(loss, None)
    }
}

impl Default for TripletLoss {
    fn default() -> Self {
        Self::new()
    }
}

/// `1 − cos(x₁, x₂)` for label 1 and `max(0, cos(x₁, x₂) − margin)` for label −1 (MXNet's
/// `CosineEmbeddingLoss(margin=0)`); as MXNet, the result has shape `(batch, 1)`.
#[derive(Clone, Debug)]
pub struct CosineEmbeddingLoss {
    base: Base,
    margin: f64,
}

impl CosineEmbeddingLoss {
    pub fn new() -> Self {
        CosineEmbeddingLoss { base: Base { weight: None, batch_axis: 0 }, margin: 0.0 }
    }
    pub fn margin(mut self, m: f64) -> Self {
        self.margin = m;
        self
    }
    super::loss_common!();

    pub fn call(&self, input1: &NDArray, input2: &NDArray, label: &NDArray) -> Result<NDArray> {
        self.loss(input1, input2, label, None)
    }

    /// The loss with a per-sample weight broadcast against `(batch, 1)`.
    pub fn loss(
        &self,
        input1: &NDArray,
        input2: &NDArray,
        label: &NDArray,
        sample_weight: Option<&NDArray>,
    ) -> Result<NDArray> {
        let x = reshape_like(input1, input2, "CosineEmbeddingLoss")?;
        let y = input2;
        let label = op("reshape", &[label.clone()], &[("shape", "(-1, 1)")])?;
        let column = |a: NDArray| op("reshape", &[a], &[("shape", "(-1, 1)")]);
        let norm = |a: &NDArray| column(op("norm", &[a.clone()], &[("axis", "-1")])?);
        let dot = column(op("sum", &[mul(&x, y)?], &[("axis", "-1")])?)?;
        let denom = scalar("_maximum_scalar", &mul(&norm(&x)?, &norm(y)?)?, 1e-12)?;
        let cos = op("broadcast_div", &[dot, denom], &[])?;
        if label.shape() != cos.shape() {
            return Err(Error::Invalid(format!(
                "CosineEmbeddingLoss: label of shape {} does not give one value per sample of input {}",
                label.shape(),
                input2.shape()
            )));
        }
        let is_pos = scalar("_equal_scalar", &label, 1.0)?;
        let is_neg = scalar("_equal_scalar", &label, -1.0)?;
        let a = mul(&scalar("_rminus_scalar", &cos, 1.0)?, &is_pos)?;
        let b = unary("relu", &mul(&is_neg, &scalar("_minus_scalar", &cos, self.margin)?)?)?;
        let loss = op("elemwise_add", &[a, b], &[])?;
        self.base.weighting(loss, sample_weight)
    }
}

impl Default for CosineEmbeddingLoss {
    fn default() -> Self {
        Self::new()
    }
}

/// Smoothed deep metric learning (MXNet's `SDMLLoss(smoothing_parameter=0.3, weight=1)`):
/// row `i` of `x1` should be nearest to row `i` of `x2` among all rows of `x2`. The
/// negative squared distances go through a log-softmax and are compared by KL divergence
/// with a smoothed identity matrix.
#[derive(Clone, Debug)]
pub struct SDMLLoss {
    base: Base,
    smoothing_parameter: f64,
}

impl SDMLLoss {
    pub fn new() -> Self {
        SDMLLoss { base: Base { weight: Some(1.0), batch_axis: 0 }, smoothing_parameter: 0.3 }
    }
    pub fn smoothing_parameter(mut self, s: f64) -> Self {
        self.smoothing_parameter = s;
        self
    }
    super::loss_common!();

    /// Per-row loss of shape `(batch,)` for two aligned `(batch, dim)` batches.
    pub fn call(&self, x1: &NDArray, x2: &NDArray) -> Result<NDArray> {
        let (s1, s2) = (x1.shape(), x2.shape());
        if s1 != s2 || s1.ndim() != 2 || s1[0] < 2 {
            return Err(Error::Invalid(format!(
                "SDMLLoss: inputs must both be (batch, dim) with batch >= 2, got {s1} and {s2}"
            )));
        }
        let n = s1[0];
        let a = op("expand_dims", &[x1.clone()], &[("axis", "1")])?;
        let b = op("expand_dims", &[x2.clone()], &[("axis", "0")])?;
        let diff = op("broadcast_sub", &[a, b], &[])?;
        let distances = op("sum", &[unary("square", &diff)?], &[("axis", "2")])?;
        let log_probs = op("log_softmax", &[unary("negative", &distances)?], &[("axis", "1")])?;
        let s = self.smoothing_parameter;
        let off = s / (n - 1) as f64;
        let labels: Vec<f32> =
            (0..n * n).map(|k| if k / n == k % n { (1.0 - s) as f32 } else { off as f32 }).collect();
        let labels = NDArray::from_slice(&labels, [n, n])?;
        let kl = super::KLDivLoss::new().from_logits(true);
        let kl = match self.base.weight {
            Some(w) => kl.weight(w),
            None => kl,
        };
        super::Loss::call(&kl, &log_probs, &labels)
    }
}

impl Default for SDMLLoss {
    fn default() -> Self {
        Self::new()
    }
}
