//! Optimizers (MXNet's `mx.optimizer`), each under its registry name: `sgd`, `nag`,
//! `signum`, `lars`, `sgld`, `dcasgd` (`sgd.rs`); `adam`, `adamw`, `adamax`, `nadam`,
//! `lamb` (`adam.rs`); `rmsprop`, `adagrad`, `adadelta`, `ftrl`, `ftml` (`adaptive.rs`).
//!
//! Where MXNet calls a fused update operator (`sgd_mom_update`, `ftml_update`, ...) so do
//! we; where its Python composes NDArray arithmetic (AdaGrad, AdaDelta, Adamax, Nadam,
//! SGLD, DCASGD) we compose the same operators in the same order, so results match.
//!
//! The bookkeeping is MXNet's: `num_update` and per-index update counts, per-index
//! `lr_mult`/`wd_mult` (from each Gluon `Parameter`), `rescale_grad` (set by the
//! `Trainer` to `1 / batch_size`), `clip_gradient`, and an optional learning-rate
//! schedule.
#![allow(clippy::upper_case_acronyms)]

mod adam;
mod adaptive;
mod sgd;

pub use adam::{Adam, AdamW, Adamax, Nadam, LAMB};
pub use adaptive::{AdaDelta, AdaGrad, Ftrl, RMSProp, FTML};
pub use sgd::{Signum, DCASGD, LARS, NAG, SGD, SGLD};

use std::collections::HashMap;

use crate::lr_scheduler::LRScheduler;
use crate::{gluon, Error, NDArray, Result};

/// What every optimizer shares (MXNet's `Optimizer.__init__` fields).
#[derive(Debug)]
pub struct OptimizerBase {
    pub lr: f64,
    pub wd: f64,
    pub rescale_grad: f64,
    pub clip_gradient: Option<f64>,
    pub lr_scheduler: Option<Box<dyn LRScheduler>>,
    pub num_update: u64,
    pub begin_num_update: u64,
    pub index_update_count: HashMap<usize, u64>,
    pub lr_mult: HashMap<usize, f64>,
    pub wd_mult: HashMap<usize, f64>,
    /// Parameter names by index (MXNet's `idx2name`); LARS skips `*bias`/`*gamma`/`*beta`.
    pub idx2name: HashMap<usize, String>,
}

impl OptimizerBase {
    pub fn new(lr: f64) -> Self {
        OptimizerBase {
            lr,
            wd: 0.0,
            rescale_grad: 1.0,
            clip_gradient: None,
            lr_scheduler: None,
            num_update: 0,
            begin_num_update: 0,
            index_update_count: HashMap::new(),
            lr_mult: HashMap::new(),
            wd_mult: HashMap::new(),
            idx2name: HashMap::new(),
        }
    }

    /// Count one more update of `index` (MXNet's `_update_count`).
    pub fn update_count(&mut self, index: usize) {
        let c = self.index_update_count.entry(index).or_insert(self.begin_num_update);
        *c += 1;
        self.num_update = self.num_update.max(*c);
    }

    /// Updates of `index` so far, this one included (MXNet's `t`).
    pub fn count(&self, index: usize) -> u64 {
        self.index_update_count.get(&index).copied().unwrap_or(self.begin_num_update)
    }

    /// The scheduled learning rate before `lr_mult`.
    fn scheduled_lr(&mut self) -> f64 {
        match &mut self.lr_scheduler {
            Some(s) => s.lr(self.num_update),
            None => self.lr,
        }
    }

    /// The learning rate for `index` now (schedule, then `lr_mult`).
    pub fn get_lr(&mut self, index: usize) -> f64 {
        self.scheduled_lr() * self.lr_mult.get(&index).copied().unwrap_or(1.0)
    }

    /// The weight decay for `index` (`wd` times `wd_mult`).
    pub fn get_wd(&self, index: usize) -> f64 {
        self.wd * self.wd_mult.get(&index).copied().unwrap_or(1.0)
    }

    /// Count the update, then the learning rate and weight decay it uses.
    fn begin(&mut self, index: usize) -> (f64, f64) {
        self.update_count(index);
        (self.get_lr(index), self.get_wd(index))
    }

    /// `lr`, `wd`, `rescale_grad` and `clip_gradient` attributes; like MXNet's Python a
    /// zero `clip_gradient` is not passed (it would clip every gradient to zero).
    fn common_attrs(&self, lr: f64, wd: f64) -> Attrs {
        let a = Attrs::default().with("lr", lr).with("wd", wd).with("rescale_grad", self.rescale_grad);
        self.with_clip(a, "clip_gradient")
    }

    fn with_clip(&self, a: Attrs, key: &'static str) -> Attrs {
        match self.clip_gradient {
            Some(c) if c != 0.0 => a.with(key, c),
            _ => a,
        }
    }

    /// The gradient as MXNet's Python-side updates preprocess it: rescaled, then clipped.
    fn rescaled_grad(&self, grad: &NDArray) -> Result<NDArray> {
        let g = (grad * self.rescale_grad)?;
        match self.clip_gradient {
            Some(c) => g.clip(-c, c),
            None => Ok(g),
        }
    }
}

/// An update rule.
pub trait Optimizer: Send + Sync + std::fmt::Debug {
    fn base(&self) -> &OptimizerBase;
    fn base_mut(&mut self) -> &mut OptimizerBase;
    /// Registry name (`sgd`, `adam`, ...).
    fn name(&self) -> &'static str;
    /// The optimizer's own keyword parameters, by MXNet's names (`momentum`, `beta1`, ...).
    fn hyper_params(&self) -> &'static [&'static str];
    /// Set one of `hyper_params` (booleans are nonzero); false for an unknown name.
    fn set_hyper(&mut self, key: &str, value: f64) -> bool;
    /// Per-weight state arrays (momentum, moments), zeros.
    fn create_state(&self, index: usize, weight: &NDArray) -> Result<Vec<NDArray>>;
    /// Update `weight` in place from `grad` and `state`.
    fn update(&mut self, index: usize, weight: &NDArray, grad: &NDArray, state: &[NDArray]) -> Result<()>;

    fn learning_rate(&self) -> f64 {
        let b = self.base();
        match &b.lr_scheduler {
            Some(s) => s.base_lr(),
            None => b.lr,
        }
    }
    /// Set the learning rate (an error with a schedule, as MXNet).
    fn set_learning_rate(&mut self, lr: f64) -> Result<()> {
        let b = self.base_mut();
        if b.lr_scheduler.is_some() {
            return Err(Error::Invalid(
                "LRScheduler of the optimizer has already been defined; set_learning_rate would be ignored"
                    .into(),
            ));
        }
        b.lr = lr;
        Ok(())
    }
    fn set_lr_scheduler(&mut self, mut s: Box<dyn LRScheduler>) {
        let b = self.base_mut();
        s.set_base_lr(b.lr);
        b.lr_scheduler = Some(s);
    }
}

/// A hyperparameter field settable from `create`'s `f64` keywords.
pub(crate) trait Hyper {
    fn set(&mut self, v: f64);
}
impl Hyper for f64 {
    fn set(&mut self, v: f64) {
        *self = v;
    }
}
impl Hyper for bool {
    fn set(&mut self, v: f64) {
        *self = v != 0.0;
    }
}
impl Hyper for Option<f64> {
    fn set(&mut self, v: f64) {
        *self = Some(v);
    }
}

/// The `Optimizer` methods every rule writes the same way: base access, name, and its
/// hyperparameters (fields named as MXNet's keywords).
macro_rules! optimizer_common {
    ($name:literal $(, $field:ident)* $(,)?) => {
        fn base(&self) -> &$crate::optimizer::OptimizerBase {
            &self.base
        }
        fn base_mut(&mut self) -> &mut $crate::optimizer::OptimizerBase {
            &mut self.base
        }
        fn name(&self) -> &'static str {
            $name
        }
        fn hyper_params(&self) -> &'static [&'static str] {
            &[$(stringify!($field)),*]
        }
        fn set_hyper(&mut self, key: &str, value: f64) -> bool {
            match key {
                $(stringify!($field) => {
                    $crate::optimizer::Hyper::set(&mut self.$field, value);
                    true
                })*
                _ => {
                    let _ = value;
                    false
                }
            }
        }
    };
}
pub(crate) use optimizer_common;

/// Operator attributes built from numbers and flags.
#[derive(Default, Debug, Clone)]
pub(crate) struct Attrs(Vec<(&'static str, String)>);

impl Attrs {
    fn with(mut self, key: &'static str, v: impl ToString) -> Self {
        self.0.push((key, v.to_string()));
        self
    }
    fn with_if(self, cond: bool, key: &'static str, v: impl ToString) -> Self {
        if cond {
            self.with(key, v)
        } else {
            self
        }
    }
    fn pairs(&self) -> Vec<(&str, &str)> {
        self.0.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }
}

fn zeros_like(w: &NDArray) -> Result<NDArray> {
    NDArray::zeros(w.shape().clone(), w.dtype(), w.context())
}

fn zeros_n(w: &NDArray, n: usize) -> Result<Vec<NDArray>> {
    (0..n).map(|_| zeros_like(w)).collect()
}

/// Check the number of state arrays an update got.
fn expect_states<'a, const N: usize>(name: &str, state: &'a [NDArray]) -> Result<&'a [NDArray; N]> {
    state.try_into().map_err(|_| {
        Error::Invalid(format!("optimizer '{name}': expected {N} state arrays, got {}", state.len()))
    })
}

/// Run an operator outside autograd recording (updates are not part of the graph).
fn call(op: &str, inputs: &[NDArray], attrs: &Attrs) -> Result<NDArray> {
    let _pause = crate::autograd::pause(crate::autograd::is_training());
    gluon::op(op, inputs, &attrs.pairs())
}

/// Run a fused update and write its result into `weight` (MXNet passes `out=weight`).
fn apply(op: &str, inputs: &[NDArray], attrs: &Attrs, weight: &NDArray) -> Result<()> {
    let out = call(op, inputs, attrs)?;
    if !out.shares_memory_with(weight) {
        weight.assign_from(out)?;
    }
    Ok(())
}

/// Registry names `create` knows.
pub const OPTIMIZERS: &[&str] = &[
    "sgd", "nag", "signum", "lars", "sgld", "dcasgd", "adam", "adamw", "adamax", "nadam", "lamb", "rmsprop",
    "adagrad", "adadelta", "ftrl", "ftml",
];

/// An optimizer by MXNet's registry name (case-insensitive, as `mx.optimizer.create`) with
/// keyword parameters: the common ones (`learning_rate`, `wd`, `clip_gradient`,
/// `rescale_grad`, `begin_num_update`) and the optimizer's own (`hyper_params`), as
/// `Trainer(params, 'sgd', {...})` takes them. Unset ones keep MXNet's defaults.
pub fn create(name: &str, params: &[(&str, f64)]) -> Result<Box<dyn Optimizer>> {
    let mut opt: Box<dyn Optimizer> = match name.to_ascii_lowercase().as_str() {
        "sgd" | "ccsgd" => Box::<SGD>::default(),
        "nag" => Box::<NAG>::default(),
        "signum" => Box::<Signum>::default(),
        "lars" => Box::<LARS>::default(),
        "sgld" => Box::<SGLD>::default(),
        "dcasgd" => Box::<DCASGD>::default(),
        "adam" => Box::<Adam>::default(),
        "adamw" => Box::<AdamW>::default(),
        "adamax" => Box::<Adamax>::default(),
        "nadam" => Box::<Nadam>::default(),
        "lamb" => Box::<LAMB>::default(),
        "rmsprop" => Box::<RMSProp>::default(),
        "adagrad" => Box::<AdaGrad>::default(),
        "adadelta" => Box::<AdaDelta>::default(),
        "ftrl" => Box::<Ftrl>::default(),
        "ftml" => Box::<FTML>::default(),
        other => {
            return Err(Error::Invalid(format!(
                "unknown optimizer '{other}' (available: {})",
                OPTIMIZERS.join(", ")
            )))
        }
    };
    for &(key, v) in params {
        let b = opt.base_mut();
        match key {
            "learning_rate" => b.lr = v,
            "wd" => b.wd = v,
            "clip_gradient" => b.clip_gradient = Some(v),
            "rescale_grad" => b.rescale_grad = v,
            "begin_num_update" => {
                b.begin_num_update = v.max(0.0) as u64;
                b.num_update = b.begin_num_update;
            }
            _ => {
                if !opt.set_hyper(key, v) {
                    return Err(Error::Invalid(format!(
                        "optimizer '{}' has no parameter '{key}' (known: learning_rate, wd, clip_gradient, \
                         rescale_grad, begin_num_update, {})",
                        opt.name(),
                        opt.hyper_params().join(", ")
                    )));
                }
            }
        }
    }
    Ok(opt)
}
