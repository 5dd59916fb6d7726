//! Connectionist temporal classification loss (MXNet's `gluon.loss.CTCLoss`) on the
//! `CTCLoss` operator, with the blank as the last class as Gluon sets it.

use super::{op, Base, Loss};
use crate::{Error, NDArray, Result};

/// MXNet's `CTCLoss(layout='NTC', label_layout='NT', weight=None)`. Labels are padded
/// with `-1` (or bounded by `label_lengths`); the blank is class `alphabet_size − 1`.
#[derive(Clone, Debug)]
pub struct CTCLoss {
    base: Base,
    time_major: bool,
}

impl CTCLoss {
    pub fn new() -> Self {
        CTCLoss { base: Base { weight: None, batch_axis: 0 }, time_major: false }
    }

    /// `pred` layout, `"NTC"` (default) or `"TNC"`.
    pub fn layout(mut self, layout: &str) -> Result<Self> {
        self.time_major = match layout {
            "NTC" => false,
            "TNC" => true,
            other => {
                return Err(Error::Invalid(format!("CTCLoss: layout must be NTC or TNC, got '{other}'")))
            }
        };
        Ok(self)
    }

    /// `label` layout, `"NT"` (default) or `"TN"`; it sets the batch axis.
    pub fn label_layout(mut self, layout: &str) -> Result<Self> {
        self.base.batch_axis = match layout {
            "NT" => 0,
            "TN" => 1,
            other => {
                return Err(Error::Invalid(format!("CTCLoss: label_layout must be NT or TN, got '{other}'")))
            }
        };
        Ok(self)
    }

    /// Global scale applied to the loss.
    pub fn weight(mut self, w: f64) -> Self {
        self.base.weight = Some(w);
        self
    }

    /// The loss with optional per-sample sequence lengths (MXNet's `pred_lengths`,
    /// `label_lengths`) and sample weight; shape `(batch,)`.
    pub fn loss_with_lengths(
        &self,
        pred: &NDArray,
        label: &NDArray,
        pred_lengths: Option<&NDArray>,
        label_lengths: Option<&NDArray>,
        sample_weight: Option<&NDArray>,
    ) -> Result<NDArray> {
        let swap = |a: &NDArray| op("SwapAxis", &[a.clone()], &[("dim1", "0"), ("dim2", "1")]);
        let pred = if self.time_major { pred.clone() } else { swap(pred)? };
        let label = if self.base.batch_axis == 1 { swap(label)? } else { label.clone() };
        let mut inputs = vec![pred, label];
        inputs.extend(pred_lengths.cloned());
        inputs.extend(label_lengths.cloned());
        let flag = |b: bool| if b { "True" } else { "False" };
        let loss = op(
            "CTCLoss",
            &inputs,
            &[
                ("use_data_lengths", flag(pred_lengths.is_some())),
                ("use_label_lengths", flag(label_lengths.is_some())),
                ("blank_label", "last"),
            ],
        )?;
        self.base.weighting(loss, sample_weight)
    }
}

impl Default for CTCLoss {
    fn default() -> Self {
        Self::new()
    }
}

impl Loss for CTCLoss {
    fn loss(&self, pred: &NDArray, label: &NDArray, sample_weight: Option<&NDArray>) -> Result<NDArray> {
        self.loss_with_lengths(pred, label, None, None, sample_weight)
    }
}
