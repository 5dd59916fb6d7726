//! `PearsonCorrelation` (MXNet's `PearsonCorrelation(average='macro')`, name `pearsonr`).
//! Macro: the correlation of each (label, prediction) pair, averaged. Micro: one
//! correlation over everything seen, accumulated in one pass (Welford's updates, with
//! MXNet's order: label moments, then the co-moment, then prediction moments).

use super::binary::Average;
use super::{check_pairs, Acc, EvalMetric};
use crate::{Error, NDArray, Result};

#[derive(Clone, Debug)]
pub struct PearsonCorrelation {
    pub average: Average,
    acc: Acc,
    /// (count, mean, sum of squared deviations) of labels and of predictions; co-moment.
    label: (f64, f64, f64),
    pred: (f64, f64, f64),
    conv: f64,
}

impl PearsonCorrelation {
    pub fn new(average: Average) -> Self {
        PearsonCorrelation {
            average,
            acc: Acc::default(),
            label: (0.0, 0.0, 0.0),
            pred: (0.0, 0.0, 0.0),
            conv: 0.0,
        }
    }
}

impl Default for PearsonCorrelation {
    fn default() -> Self {
        Self::new(Average::Macro)
    }
}

/// MXNet's `update_variance`: the mean moves by the batch's summed deltas at once.
fn update_variance(v: &[f64], (count, mean, m2): (f64, f64, f64)) -> (f64, f64, f64) {
    let count = count + v.len() as f64;
    let new_mean = mean + v.iter().map(|x| (x - mean) / count).sum::<f64>();
    let m2 = m2 + v.iter().map(|x| (x - mean) * (x - new_mean)).sum::<f64>();
    (count, new_mean, m2)
}

fn corrcoef(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma) * (x - ma)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb) * (y - mb)).sum();
    cov / (va.sqrt() * vb.sqrt())
}

impl EvalMetric for PearsonCorrelation {
    fn update(&mut self, labels: &[NDArray], preds: &[NDArray]) -> Result<()> {
        check_pairs("pearsonr", labels, preds)?;
        for (l, p) in labels.iter().zip(preds) {
            if l.shape() != p.shape() {
                return Err(Error::Invalid(format!(
                    "pearsonr: labels of shape {} do not match predictions of shape {}",
                    l.shape(),
                    p.shape()
                )));
            }
            let (lv, pv) = (l.to_f64_vec()?, p.to_f64_vec()?);
            self.acc.num += 1.0;
            match self.average {
                Average::Macro => self.acc.sum += corrcoef(&pv, &lv),
                Average::Micro => {
                    self.label = update_variance(&lv, self.label);
                    let (ml, mp) = (self.label.1, self.pred.1);
                    self.conv += lv.iter().zip(&pv).map(|(x, y)| (x - ml) * (y - mp)).sum::<f64>();
                    self.pred = update_variance(&pv, self.pred);
                }
            }
        }
        Ok(())
    }
    fn reset(&mut self) {
        *self = Self::new(self.average);
    }
    fn get_name_value(&self) -> Vec<(String, f64)> {
        let v = if self.acc.num == 0.0 {
            f64::NAN
        } else {
            match self.average {
                Average::Macro => self.acc.value(),
                Average::Micro => {
                    let n = self.label.0;
                    self.conv
                        / ((n - 1.0) * (self.pred.2 / (n - 1.0)).sqrt() * (self.label.2 / (n - 1.0)).sqrt())
                }
            }
        };
        vec![("pearsonr".into(), v)]
    }
}
