//! Learning-rate schedules (MXNet's `mx.lr_scheduler`): Factor, MultiFactor, Poly and
//! Cosine, each with an optional warmup (`warmup_steps`, `warmup_begin_lr`,
//! `warmup_mode` linear or constant). `lr(num_update)` is MXNet's `__call__`.

use std::f64::consts::PI;

use crate::{Error, Result};

/// How the learning rate moves during warmup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WarmupMode {
    Linear,
    Constant,
}

/// Warmup shared by every schedule.
#[derive(Clone, Copy, Debug)]
pub struct Warmup {
    pub steps: u64,
    pub begin_lr: f64,
    pub mode: WarmupMode,
}

impl Default for Warmup {
    fn default() -> Self {
        Warmup { steps: 0, begin_lr: 0.0, mode: WarmupMode::Linear }
    }
}

impl Warmup {
    fn lr(&self, base_lr: f64, num_update: u64) -> f64 {
        match self.mode {
            WarmupMode::Linear => {
                self.begin_lr + (base_lr - self.begin_lr) * num_update as f64 / self.steps as f64
            }
            WarmupMode::Constant => self.begin_lr,
        }
    }
}

/// A learning-rate schedule.
pub trait LRScheduler: Send + Sync + std::fmt::Debug {
    /// The rate for update number `num_update` (1-based, as the optimizer counts).
    fn lr(&mut self, num_update: u64) -> f64;
    /// Set the rate the schedule starts from (the optimizer's `learning_rate`).
    fn set_base_lr(&mut self, lr: f64);
    fn base_lr(&self) -> f64;
}

fn check_warmup(w: &Warmup, base_lr: f64) -> Result<()> {
    if w.mode == WarmupMode::Linear && w.steps > 0 && w.begin_lr > base_lr {
        return Err(Error::Invalid(format!(
            "lr_scheduler: base_lr {base_lr} must not be smaller than warmup_begin_lr {}",
            w.begin_lr
        )));
    }
    Ok(())
}

/// Multiply by `factor` every `step` updates, never below `stop_factor_lr`
/// (MXNet's `FactorScheduler(step, factor=1, stop_factor_lr=1e-8, base_lr=0.01)`).
#[derive(Clone, Debug)]
pub struct FactorScheduler {
    step: u64,
    factor: f64,
    stop_factor_lr: f64,
    base_lr: f64,
    count: u64,
    pub warmup: Warmup,
}

impl FactorScheduler {
    pub fn new(step: u64, factor: f64) -> Result<Self> {
        if step < 1 {
            return Err(Error::Invalid("FactorScheduler: schedule step must be at least 1".into()));
        }
        if factor > 1.0 {
            return Err(Error::Invalid(
                "FactorScheduler: factor must be no more than 1 to make lr reduce".into(),
            ));
        }
        Ok(FactorScheduler {
            step,
            factor,
            stop_factor_lr: 1e-8,
            base_lr: 0.01,
            count: 0,
            warmup: Warmup::default(),
        })
    }
    pub fn stop_factor_lr(mut self, v: f64) -> Self {
        self.stop_factor_lr = v;
        self
    }
    pub fn with_warmup(mut self, w: Warmup) -> Result<Self> {
        check_warmup(&w, self.base_lr)?;
        self.warmup = w;
        Ok(self)
    }
}

impl LRScheduler for FactorScheduler {
    fn lr(&mut self, num_update: u64) -> f64 {
        if num_update < self.warmup.steps {
            return self.warmup.lr(self.base_lr, num_update);
        }
        while num_update > self.count + self.step {
            self.count += self.step;
            self.base_lr *= self.factor;
            if self.base_lr < self.stop_factor_lr {
                self.base_lr = self.stop_factor_lr;
            }
        }
        self.base_lr
    }
    fn set_base_lr(&mut self, lr: f64) {
        self.base_lr = lr;
    }
    fn base_lr(&self) -> f64 {
        self.base_lr
    }
}

/// Multiply by `factor` after each update count in `steps` (MXNet's
/// `MultiFactorScheduler(step, factor=1)`).
#[derive(Clone, Debug)]
pub struct MultiFactorScheduler {
    steps: Vec<u64>,
    factor: f64,
    base_lr: f64,
    cur: usize,
    pub warmup: Warmup,
}

impl MultiFactorScheduler {
    pub fn new(steps: &[u64], factor: f64) -> Result<Self> {
        if steps.is_empty() {
            return Err(Error::Invalid("MultiFactorScheduler: at least one step is needed".into()));
        }
        for (i, &s) in steps.iter().enumerate() {
            if i > 0 && s <= steps[i - 1] {
                return Err(Error::Invalid("MultiFactorScheduler: schedule steps must be increasing".into()));
            }
            if s < 1 {
                return Err(Error::Invalid("MultiFactorScheduler: schedule step must be at least 1".into()));
            }
        }
        if factor > 1.0 {
            return Err(Error::Invalid("MultiFactorScheduler: factor must be no more than 1".into()));
        }
        Ok(MultiFactorScheduler {
            steps: steps.to_vec(),
            factor,
            base_lr: 0.01,
            cur: 0,
            warmup: Warmup::default(),
        })
    }
    pub fn with_warmup(mut self, w: Warmup) -> Result<Self> {
        check_warmup(&w, self.base_lr)?;
        self.warmup = w;
        Ok(self)
    }
}

impl LRScheduler for MultiFactorScheduler {
    fn lr(&mut self, num_update: u64) -> f64 {
        if num_update < self.warmup.steps {
            return self.warmup.lr(self.base_lr, num_update);
        }
        while self.cur < self.steps.len() && num_update > self.steps[self.cur] {
            self.cur += 1;
            self.base_lr *= self.factor;
        }
        self.base_lr
    }
    fn set_base_lr(&mut self, lr: f64) {
        self.base_lr = lr;
    }
    fn base_lr(&self) -> f64 {
        self.base_lr
    }
}

/// Polynomial decay to `final_lr` at `max_update` (MXNet's `PolyScheduler(max_update,
/// base_lr=0.01, pwr=2, final_lr=0)`).
#[derive(Clone, Debug)]
pub struct PolyScheduler {
    max_update: u64,
    power: f64,
    final_lr: f64,
    base_lr: f64,
    cur_lr: f64,
    pub warmup: Warmup,
}

impl PolyScheduler {
    pub fn new(max_update: u64, pwr: f64, final_lr: f64) -> Result<Self> {
        if max_update < 1 {
            return Err(Error::Invalid(
                "PolyScheduler: maximum number of updates must be strictly positive".into(),
            ));
        }
        Ok(PolyScheduler {
            max_update,
            power: pwr,
            final_lr,
            base_lr: 0.01,
            cur_lr: 0.01,
            warmup: Warmup::default(),
        })
    }
    pub fn with_warmup(mut self, w: Warmup) -> Result<Self> {
        check_warmup(&w, self.cur_lr)?;
        if w.steps >= self.max_update {
            return Err(Error::Invalid("PolyScheduler: warmup_steps must be smaller than max_update".into()));
        }
        self.warmup = w;
        Ok(self)
    }
}

impl LRScheduler for PolyScheduler {
    fn lr(&mut self, num_update: u64) -> f64 {
        if num_update < self.warmup.steps {
            return self.warmup.lr(self.base_lr, num_update);
        }
        if num_update <= self.max_update {
            let max_steps = (self.max_update - self.warmup.steps) as f64;
            let frac = 1.0 - (num_update - self.warmup.steps) as f64 / max_steps;
            self.cur_lr = self.final_lr + (self.base_lr - self.final_lr) * frac.powf(self.power);
        }
        self.cur_lr
    }
    fn set_base_lr(&mut self, lr: f64) {
        self.base_lr = lr;
        self.cur_lr = lr;
    }
    fn base_lr(&self) -> f64 {
        self.base_lr
    }
}

/// Cosine decay to `final_lr` at `max_update` (MXNet's `CosineScheduler(max_update,
/// base_lr=0.01, final_lr=0)`).
#[derive(Clone, Debug)]
pub struct CosineScheduler {
    max_update: u64,
    final_lr: f64,
    base_lr: f64,
    cur_lr: f64,
    pub warmup: Warmup,
}

impl CosineScheduler {
    pub fn new(max_update: u64, final_lr: f64) -> Result<Self> {
        if max_update < 1 {
            return Err(Error::Invalid(
                "CosineScheduler: maximum number of updates must be strictly positive".into(),
            ));
        }
        Ok(CosineScheduler { max_update, final_lr, base_lr: 0.01, cur_lr: 0.01, warmup: Warmup::default() })
    }
    pub fn with_warmup(mut self, w: Warmup) -> Result<Self> {
        check_warmup(&w, self.cur_lr)?;
        if w.steps >= self.max_update {
            return Err(Error::Invalid(
                "CosineScheduler: warmup_steps must be smaller than max_update".into(),
            ));
        }
        self.warmup = w;
        Ok(self)
    }
}

impl LRScheduler for CosineScheduler {
    fn lr(&mut self, num_update: u64) -> f64 {
        if num_update < self.warmup.steps {
            return self.warmup.lr(self.base_lr, num_update);
        }
        if num_update <= self.max_update {
            let max_steps = (self.max_update - self.warmup.steps) as f64;
            let t = (num_update - self.warmup.steps) as f64;
            self.cur_lr =
                self.final_lr + (self.base_lr - self.final_lr) * (1.0 + (PI * t / max_steps).cos()) / 2.0;
        }
        self.cur_lr
    }
    fn set_base_lr(&mut self, lr: f64) {
        self.base_lr = lr;
        self.cur_lr = lr;
    }
    fn base_lr(&self) -> f64 {
        self.base_lr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factor_steps_down() {
        let mut s = FactorScheduler::new(2, 0.5).unwrap();
        s.set_base_lr(1.0);
        let lrs: Vec<f64> = (1..=7).map(|t| s.lr(t)).collect();
        assert_eq!(lrs, vec![1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.125]);
    }

    #[test]
    fn multifactor_and_warmup() {
        let mut s = MultiFactorScheduler::new(&[3, 5], 0.1)
            .unwrap()
            .with_warmup(Warmup { steps: 2, begin_lr: 0.0, mode: WarmupMode::Linear })
            .unwrap();
        s.set_base_lr(1.0);
        let lrs: Vec<f64> = (0..=6).map(|t| s.lr(t)).collect();
        let want = [0.0, 0.5, 1.0, 1.0, 0.1, 0.1, 0.01];
        for (a, b) in lrs.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{lrs:?}");
        }
    }

    #[test]
    fn poly_and_cosine_reach_final() {
        let mut p = PolyScheduler::new(10, 2.0, 0.0).unwrap();
        p.set_base_lr(0.1);
        assert!((p.lr(0) - 0.1).abs() < 1e-12);
        assert!((p.lr(5) - 0.025).abs() < 1e-12);
        assert!(p.lr(10).abs() < 1e-12);
        assert!(p.lr(20).abs() < 1e-12);
        let mut c = CosineScheduler::new(10, 0.0).unwrap();
        c.set_base_lr(0.1);
        assert!((c.lr(5) - 0.05).abs() < 1e-12);
        assert!(c.lr(10).abs() < 1e-12);
    }
}
