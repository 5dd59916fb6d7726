//! Binary classification metrics on a confusion count: `F1` and `MCC` (MXNet's
//! `_BinaryClassificationMetrics`). The predicted class is the argmax over axis 1 of a
//! `(batch, 2)` prediction, positive means class 1, and labels may take at most two
//! distinct values.

use super::{check_pairs, Acc, EvalMetric};
use crate::{Error, NDArray, Result};

/// Macro averaging scores each `update` call and averages the scores; micro averaging
/// scores all the counts together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Average {
    Macro,
    Micro,
}

impl Average {
    pub fn parse(name: &str, s: &str) -> Result<Self> {
        match s {
            "macro" => Ok(Average::Macro),
            "micro" => Ok(Average::Micro),
            other => {
                Err(Error::Invalid(format!("{name}: average must be 'macro' or 'micro', got '{other}'")))
            }
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    tp: f64,
    fp: f64,
    fn_: f64,
    tn: f64,
}

impl Counts {
    fn total(&self) -> f64 {
        self.tp + self.fp + self.fn_ + self.tn
    }
    fn precision(&self) -> f64 {
        if self.tp + self.fp > 0.0 {
            self.tp / (self.tp + self.fp)
        } else {
            0.0
        }
    }
    fn recall(&self) -> f64 {
        if self.tp + self.fn_ > 0.0 {
            self.tp / (self.tp + self.fn_)
        } else {
            0.0
        }
    }
    fn fscore(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r > 0.0 {
            2.0 * p * r / (p + r)
        } else {
            0.0
        }
    }
    /// Matthews' correlation; zero factors of the denominator are left out, as MXNet does.
    fn mcc(&self) -> f64 {
        if self.total() == 0.0 {
            return 0.0;
        }
        let terms = [self.tp + self.fp, self.tp + self.fn_, self.tn + self.fp, self.tn + self.fn_];
        let denom: f64 = terms.iter().filter(|&&t| t != 0.0).product();
        (self.tp * self.tn - self.fp * self.fn_) / denom.sqrt()
    }

    fn add(&mut self, name: &str, label: &NDArray, pred: &NDArray) -> Result<()> {
        let shape = pred.shape();
        if shape.ndim() != 2 || label.shape().first() != shape.first() {
            return Err(Error::Invalid(format!(
                "{name}: predictions must be (batch, classes) with one label per row, got labels {} and \
                 predictions {}",
                label.shape(),
                shape
            )));
        }
        let (rows, cols) = (shape[0], shape[1]);
        let labels: Vec<i64> = label.to_f64_vec()?.iter().map(|&v| v as i64).collect();
        let mut distinct = labels.clone();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() > 2 {
            return Err(Error::Invalid(format!(
                "{name} currently only supports binary classification (labels take {} values)",
                distinct.len()
            )));
        }
        let p = pred.to_f64_vec()?;
        for (r, &l) in labels.iter().enumerate().take(rows) {
            let row = &p[r * cols..(r + 1) * cols];
            // numpy's argmax: the first maximum.
            let best = (0..cols).fold(0, |b, j| if row[j] > row[b] { j } else { b });
            match (best == 1, l == 1) {
                (true, true) => self.tp += 1.0,
                (true, false) => self.fp += 1.0,
                (false, true) => self.fn_ += 1.0,
                (false, false) => self.tn += 1.0,
            }
        }
        Ok(())
    }
}

/// A confusion-count metric: F1 or MCC.
#[derive(Clone, Debug)]
struct BinaryMetric {
    name: &'static str,
    average: Average,
    counts: Counts,
    acc: Acc,
    score: fn(&Counts) -> f64,
}

impl BinaryMetric {
    fn update(&mut self, labels: &[NDArray], preds: &[NDArray]) -> Result<()> {
        check_pairs(self.name, labels, preds)?;
        for (l, p) in labels.iter().zip(preds) {
            self.counts.add(self.name, l, p)?;
        }
        let score = (self.score)(&self.counts);
        match self.average {
            Average::Macro => {
                self.acc.sum += score;
                self.acc.num += 1.0;
                self.counts = Counts::default();
            }
            Average::Micro => {
                self.acc.sum = score * self.counts.total();
                self.acc.num = self.counts.total();
            }
        }
        Ok(())
    }
    fn reset(&mut self) {
        self.counts = Counts::default();
        self.acc = Acc::default();
    }
}

macro_rules! binary_metric {
    ($(#[$doc:meta])* $ty:ident, $name:literal, $score:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $ty(BinaryMetric);
        impl $ty {
            pub fn new(average: Average) -> Self {
                $ty(BinaryMetric {
                    name: $name,
                    average,
                    counts: Counts::default(),
                    acc: Acc::default(),
                    score: $score,
                })
            }
        }
        impl Default for $ty {
            fn default() -> Self {
                Self::new(Average::Macro)
            }
        }
        impl EvalMetric for $ty {
            fn update(&mut self, labels: &[NDArray], preds: &[NDArray]) -> Result<()> {
                self.0.update(labels, preds)
            }
            fn reset(&mut self) {
                self.0.reset()
            }
            fn get_name_value(&self) -> Vec<(String, f64)> {
                vec![($name.into(), self.0.acc.value())]
            }
        }
    };
}

binary_metric!(
    /// F1 score of the positive class (MXNet's `F1(average="macro")`, name `f1`).
    F1,
    "f1",
    Counts::fscore
);
binary_metric!(
    /// Matthews correlation coefficient (MXNet's `MCC(average="macro")`, name `mcc`).
    MCC,
    "mcc",
    Counts::mcc
);
