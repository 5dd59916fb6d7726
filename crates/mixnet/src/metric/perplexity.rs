//! `Perplexity` (MXNet's `Perplexity(ignore_label, axis=-1)`, name `perplexity`):
//! `exp(−mean log p(label))` over every label not equal to `ignore_label`.

use super::{check_pairs, Acc, EvalMetric};
use crate::{Error, NDArray, Result};

#[derive(Clone, Debug)]
pub struct Perplexity {
    pub ignore_label: Option<f64>,
    pub axis: i64,
    acc: Acc,
}

impl Perplexity {
    pub fn new(ignore_label: Option<f64>) -> Self {
        Perplexity { ignore_label, axis: -1, acc: Acc::default() }
    }
    pub fn axis(mut self, axis: i64) -> Self {
        self.axis = axis;
        self
    }
}

impl EvalMetric for Perplexity {
    fn update(&mut self, labels: &[NDArray], preds: &[NDArray]) -> Result<()> {
        check_pairs("perplexity", labels, preds)?;
        for (l, p) in labels.iter().zip(preds) {
            let shape = p.shape().to_vec();
            let nd = shape.len() as i64;
            let axis = if self.axis < 0 { self.axis + nd } else { self.axis };
            let bad = || {
                Error::Invalid(format!(
                    "perplexity: labels of shape {} do not match predictions of shape {} (axis {})",
                    l.shape(),
                    p.shape(),
                    self.axis
                ))
            };
            if !(0..nd).contains(&axis) || l.size() * shape[axis as usize] != p.size() {
                return Err(bad());
            }
            let axis = axis as usize;
            let (k, inner) = (shape[axis], shape[axis + 1..].iter().product::<usize>());
            let (pv, lv) = (p.to_f64_vec()?, l.to_f64_vec()?);
            for (i, &label) in lv.iter().enumerate() {
                if self.ignore_label == Some(label) {
                    continue;
                }
                // MXNet's pick clips the index into range.
                let c = (label as i64).clamp(0, k as i64 - 1) as usize;
                let (outer, rest) = (i / inner, i % inner);
                let prob = pv[(outer * k + c) * inner + rest];
                self.acc.sum -= prob.max(1e-10).ln();
                self.acc.num += 1.0;
            }
        }
        Ok(())
    }
    fn reset(&mut self) {
        self.acc = Acc::default();
    }
    fn get_name_value(&self) -> Vec<(String, f64)> {
        vec![("perplexity".into(), self.acc.value().exp())]
    }
}
