//! Evaluation metrics (MXNet's `mx.metric`): Accuracy, TopKAccuracy, CrossEntropy, Loss,
//! MAE, MSE, RMSE and CompositeEvalMetric here; F1 and MCC in `binary`, Perplexity,
//! PearsonCorrelation. As in MXNet they compute on the host (MXNet goes through numpy),
//! in f64.

mod binary;
mod pearson;
mod perplexity;

pub use binary::{Average, F1, MCC};
pub use pearson::PearsonCorrelation;
pub use perplexity::Perplexity;

use crate::{Error, NDArray, Result};

/// A metric accumulated over batches (MXNet's `EvalMetric`).
pub trait EvalMetric: Send {
    /// Add one batch: `labels[i]` goes with `preds[i]`.
    fn update(&mut self, labels: &[NDArray], preds: &[NDArray]) -> Result<()>;
    fn reset(&mut self);
    /// `(name, value)` pairs; NaN before any update (MXNet's `get_name_value`).
    fn get_name_value(&self) -> Vec<(String, f64)>;
    /// The first `(name, value)` (MXNet's `get` for single metrics).
    fn get(&self) -> (String, f64) {
        self.get_name_value().into_iter().next().unwrap_or_else(|| (String::new(), f64::NAN))
    }
}

fn check_pairs(name: &str, labels: &[NDArray], preds: &[NDArray]) -> Result<()> {
    if labels.len() != preds.len() {
        return Err(Error::Invalid(format!(
            "{name}: {} labels for {} predictions (shapes must pair up)",
            labels.len(),
            preds.len()
        )));
    }
    Ok(())
}

/// Sum and count, the state of most metrics.
#[derive(Clone, Debug, Default)]
struct Acc {
    sum: f64,
    num: f64,
}
impl Acc {
    fn value(&self) -> f64 {
        if self.num == 0.0 {
            f64::NAN
        } else {
            self.sum / self.num
        }
    }
}

/// Fraction of predictions equal to the label (MXNet's `Accuracy(axis=1)`, name `accuracy`).
/// Predictions with one more dimension than the labels are argmax-ed along `axis`.
#[derive(Clone, Debug)]
pub struct Accuracy {
    pub axis: usize,
    acc: Acc,
}
impl Accuracy {
    pub fn new() -> Self {
        Accuracy { axis: 1, acc: Acc::default() }
    }
}
impl Default for Accuracy {
    fn default() -> Self {
        Self::new()
    }
}

/// Argmax over `axis` of a row-major array with `shape`.
fn argmax(values: &[f64], shape: &[usize], axis: usize) -> Vec<f64> {
    let outer: usize = shape[..axis].iter().product();
    let n = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    let mut out = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for i in 0..inner {
            let mut best = 0;
            for k in 1..n {
                if values[(o * n + k) * inner + i] > values[(o * n + best) * inner + i] {
                    best = k;
                }
            }
            out.push(best as f64);
        }
    }
    out
}

impl EvalMetric for Accuracy {
    fn update(&mut self, labels: &[NDArray], preds: &[NDArray]) -> Result<()> {
        check_pairs("accuracy", labels, preds)?;
        for (l, p) in labels.iter().zip(preds) {
            let pv = p.to_f64_vec()?;
            let pred = if p.shape() != l.shape() {
                if self.axis >= p.ndim() {
                    return Err(Error::Invalid(format!(
                        "accuracy: axis {} out of range for predictions of shape {}",
                        self.axis,
                        p.shape()
                    )));
                }
                argmax(&pv, p.shape(), self.axis)
            } else {
                pv
            };
            let lv = l.to_f64_vec()?;
            if lv.len() != pred.len() {
                return Err(Error::Invalid(format!(
                    "accuracy: labels of shape {} do not match predictions of shape {}",
                    l.shape(),
                    p.shape()
                )));
            }
            let correct = lv.iter().zip(&pred).filter(|(a, b)| (**a as i64) == (**b as i64)).count();
            self.acc.sum += correct as f64;
            self.acc.num += lv.len() as f64;
        }
        Ok(())
    }
    fn reset(&mut self) {
        self.acc = Acc::default();
    }
    fn get_name_value(&self) -> Vec<(String, f64)> {
        vec![("accuracy".into(), self.acc.value())]
    }
}

/// Label among the `top_k` highest scores (MXNet's `TopKAccuracy(top_k=1)`, name
/// `top_k_accuracy_<k>`).
#[derive(Clone, Debug)]
pub struct TopKAccuracy {
    pub top_k: usize,
    acc: Acc,
}
impl TopKAccuracy {
    pub fn new(top_k: usize) -> Self {
        TopKAccuracy { top_k, acc: Acc::default() }
    }
}
impl EvalMetric for TopKAccuracy {
    fn update(&mut self, labels: &[NDArray], preds: &[NDArray]) -> Result<()> {
        check_pairs("top_k_accuracy", labels, preds)?;
        for (l, p) in labels.iter().zip(preds) {
            if p.ndim() != 2 {
                return Err(Error::Invalid(format!(
                    "top_k_accuracy: predictions must be (batch, classes), got {}",
                    p.shape()
                )));
            }
            let (n, c) = (p.shape()[0], p.shape()[1]);
            let pv = p.to_f64_vec()?;
            let lv = l.to_f64_vec()?;
            if lv.len() != n {
                return Err(Error::Invalid(format!(
                    "top_k_accuracy: {} labels for {n} predictions",
                    lv.len()
                )));
            }
            for (row, &label) in pv.chunks(c).zip(&lv) {
                let label = label as i64;
                if label < 0 || label as usize >= c {
                    continue;
                }
                let score = row[label as usize];
                // Rank: how many classes score strictly higher (MXNet argsorts; ties aside, equal).
                let higher = row.iter().filter(|&&s| s > score).count();
                if higher < self.top_k {
                    self.acc.sum += 1.0;
                }
            }
            self.acc.num += n as f64;
        }
        Ok(())
    }
    fn reset(&mut self) {
        self.acc = Acc::default();
    }
    fn get_name_value(&self) -> Vec<(String, f64)> {
        vec![(format!("top_k_accuracy_{}", self.top_k), self.acc.value())]
    }
}

/// Mean of `-log(p[label] + eps)` over samples (MXNet's `CrossEntropy(eps=1e-12)`, name
/// `cross-entropy`); predictions are probabilities.
#[derive(Clone, Debug)]
pub struct CrossEntropy {
    pub eps: f64,
    acc: Acc,
}
impl CrossEntropy {
    pub fn new() -> Self {
        CrossEntropy { eps: 1e-12, acc: Acc::default() }
    }
}
impl Default for CrossEntropy {
    fn default() -> Self {
        Self::new()
    }
}
impl EvalMetric for CrossEntropy {
    fn update(&mut self, labels: &[NDArray], preds: &[NDArray]) -> Result<()> {
        check_pairs("cross-entropy", labels, preds)?;
        for (l, p) in labels.iter().zip(preds) {
            let lv = l.to_f64_vec()?;
            let pv = p.to_f64_vec()?;
            if lv.is_empty() || pv.len() % lv.len() != 0 {
                return Err(Error::Invalid(format!(
                    "cross-entropy: labels {} do not match predictions {}",
                    l.shape(),
                    p.shape()
                )));
            }
            let c = pv.len() / lv.len();
            for (row, &label) in pv.chunks(c).zip(&lv) {
                let k = label as usize;
                if label < 0.0 || k >= c {
                    return Err(Error::Invalid(format!(
                        "cross-entropy: label {label} out of range for {c} classes"
                    )));
                }
                self.acc.sum += -(row[k] + self.eps).ln();
            }
            self.acc.num += lv.len() as f64;
        }
        Ok(())
    }
    fn reset(&mut self) {
        self.acc = Acc::default();
    }
    fn get_name_value(&self) -> Vec<(String, f64)> {
        vec![("cross-entropy".into(), self.acc.value())]
    }
}

/// Mean of loss values (MXNet's `Loss`, name `loss`): sums every element of the
/// "predictions" (the losses); labels are ignored.
#[derive(Clone, Debug, Default)]
pub struct Loss {
    acc: Acc,
}
impl Loss {
    pub fn new() -> Self {
        Self::default()
    }
}
impl EvalMetric for Loss {
    fn update(&mut self, _labels: &[NDArray], preds: &[NDArray]) -> Result<()> {
        for p in preds {
            let v = p.to_f64_vec()?;
            self.acc.sum += v.iter().sum::<f64>();
            self.acc.num += v.len() as f64;
        }
        Ok(())
    }
    fn reset(&mut self) {
        self.acc = Acc::default();
    }
    fn get_name_value(&self) -> Vec<(String, f64)> {
        vec![("loss".into(), self.acc.value())]
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Regression {
    Mae,
    Mse,
    Rmse,
}

/// MAE, MSE or RMSE. As MXNet 1.x, each batch contributes its own mean (RMSE: its own root)
/// and the metric is the mean over batches.
#[derive(Clone, Debug)]
pub struct RegressionMetric {
    kind: Regression,
    acc: Acc,
}

/// Mean absolute error (MXNet's `MAE`, name `mae`).
pub fn mae() -> RegressionMetric {
    RegressionMetric { kind: Regression::Mae, acc: Acc::default() }
}
/// Mean squared error (MXNet's `MSE`, name `mse`).
pub fn mse() -> RegressionMetric {
    RegressionMetric { kind: Regression::Mse, acc: Acc::default() }
}
/// Root mean squared error (MXNet's `RMSE`, name `rmse`).
pub fn rmse() -> RegressionMetric {
    RegressionMetric { kind: Regression::Rmse, acc: Acc::default() }
}

impl EvalMetric for RegressionMetric {
    fn update(&mut self, labels: &[NDArray], preds: &[NDArray]) -> Result<()> {
        let name = self.get().0;
        check_pairs(&name, labels, preds)?;
        for (l, p) in labels.iter().zip(preds) {
            let lv = l.to_f64_vec()?;
            let pv = p.to_f64_vec()?;
            if lv.len() != pv.len() {
                return Err(Error::Invalid(format!(
                    "{name}: labels of shape {} do not match predictions of shape {}",
                    l.shape(),
                    p.shape()
                )));
            }
            if lv.is_empty() {
                continue;
            }
            let n = lv.len() as f64;
            let v = match self.kind {
                Regression::Mae => lv.iter().zip(&pv).map(|(a, b)| (a - b).abs()).sum::<f64>() / n,
                Regression::Mse => lv.iter().zip(&pv).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / n,
                Regression::Rmse => {
                    (lv.iter().zip(&pv).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / n).sqrt()
                }
            };
            self.acc.sum += v;
            self.acc.num += 1.0;
        }
        Ok(())
    }
    fn reset(&mut self) {
        self.acc = Acc::default();
    }
    fn get_name_value(&self) -> Vec<(String, f64)> {
        let name = match self.kind {
            Regression::Mae => "mae",
            Regression::Mse => "mse",
            Regression::Rmse => "rmse",
        };
        vec![(name.into(), self.acc.value())]
    }
}

/// Several metrics updated together (MXNet's `CompositeEvalMetric`).
#[derive(Default)]
pub struct CompositeEvalMetric {
    metrics: Vec<Box<dyn EvalMetric>>,
}
impl CompositeEvalMetric {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn add(&mut self, m: Box<dyn EvalMetric>) -> &mut Self {
        self.metrics.push(m);
        self
    }
}
impl EvalMetric for CompositeEvalMetric {
    fn update(&mut self, labels: &[NDArray], preds: &[NDArray]) -> Result<()> {
        self.metrics.iter_mut().try_for_each(|m| m.update(labels, preds))
    }
    fn reset(&mut self) {
        self.metrics.iter_mut().for_each(|m| m.reset());
    }
    fn get_name_value(&self) -> Vec<(String, f64)> {
        self.metrics.iter().flat_map(|m| m.get_name_value()).collect()
    }
}

/// A metric by MXNet's name: `acc`/`accuracy`, `top_k_accuracy` (k=1), `ce`/`cross-entropy`,
/// `loss`, `mae`, `mse`, `rmse`, `f1`, `mcc`, `perplexity` (no ignored label),
/// `pearsonr`/`pearsoncorrelation` (macro averages).
pub fn create(name: &str) -> Result<Box<dyn EvalMetric>> {
    Ok(match name {
        "acc" | "accuracy" => Box::new(Accuracy::new()),
        "top_k_accuracy" | "top_k_acc" => Box::new(TopKAccuracy::new(1)),
        "ce" | "cross-entropy" => Box::new(CrossEntropy::new()),
        "loss" => Box::new(Loss::new()),
        "mae" => Box::new(mae()),
        "mse" => Box::new(mse()),
        "rmse" => Box::new(rmse()),
        "f1" => Box::new(F1::default()),
        "mcc" => Box::new(MCC::default()),
        "perplexity" => Box::new(Perplexity::new(None)),
        "pearsonr" | "pearsoncorrelation" => Box::new(PearsonCorrelation::default()),
        other => return Err(Error::Invalid(format!("unknown metric '{other}'"))),
    })
}
