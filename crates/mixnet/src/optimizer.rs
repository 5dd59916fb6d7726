//! Optimizers (MXNet's `mx.optimizer`): SGD (with momentum), NAG, Adam, RMSProp, on the
//! fused update operators (`sgd_update`, `sgd_mom_update`, `nag_mom_update`,
//! `adam_update`, `rmsprop_update`, `rmspropalex_update`).
//!
//! The bookkeeping is MXNet's: `num_update` and per-index update counts, per-index
//! `lr_mult`/`wd_mult` (from each Gluon `Parameter`), `rescale_grad` (set by the
//! `Trainer` to `1 / batch_size`), `clip_gradient`, and an optional learning-rate
//! schedule.
#![allow(clippy::upper_case_acronyms)]

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
        }
    }

    /// Count one more update of `index` (MXNet's `_update_count`).
    pub fn update_count(&mut self, index: usize) {
        let c = self.index_update_count.entry(index).or_insert(self.begin_num_update);
        *c += 1;
        self.num_update = self.num_update.max(*c);
    }

    /// The learning rate for `index` now (schedule, then `lr_mult`).
    pub fn get_lr(&mut self, index: usize) -> f64 {
        let lr = match &mut self.lr_scheduler {
            Some(s) => s.lr(self.num_update),
            None => self.lr,
        };
        lr * self.lr_mult.get(&index).copied().unwrap_or(1.0)
    }

    /// The weight decay for `index` (`wd` times `wd_mult`).
    pub fn get_wd(&self, index: usize) -> f64 {
        self.wd * self.wd_mult.get(&index).copied().unwrap_or(1.0)
    }

    fn common_attrs(&self, lr: f64, wd: f64) -> Vec<(String, String)> {
        let mut a = vec![
            ("lr".to_string(), lr.to_string()),
            ("wd".to_string(), wd.to_string()),
            ("rescale_grad".to_string(), self.rescale_grad.to_string()),
        ];
        if let Some(c) = self.clip_gradient {
            a.push(("clip_gradient".to_string(), c.to_string()));
        }
        a
    }
}

/// An update rule.
pub trait Optimizer: Send + Sync + std::fmt::Debug {
    fn base(&self) -> &OptimizerBase;
    fn base_mut(&mut self) -> &mut OptimizerBase;
    /// Registry name (`sgd`, `adam`, ...).
    fn name(&self) -> &'static str;
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

fn zeros_like(w: &NDArray) -> Result<NDArray> {
    NDArray::zeros(w.shape().clone(), w.dtype(), w.context())
}

/// Run a fused update and write its result into `weight` (MXNet passes `out=weight`).
fn apply(op: &str, inputs: &[NDArray], attrs: &[(String, String)], weight: &NDArray) -> Result<()> {
    let attrs: Vec<(&str, &str)> = attrs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let _pause = crate::autograd::pause(crate::autograd::is_training());
    let out = gluon::op(op, inputs, &attrs)?;
    if !out.shares_memory_with(weight) {
        weight.assign(&out)?;
    }
    Ok(())
}

/// Stochastic gradient descent with optional momentum (MXNet's `SGD(learning_rate=0.01,
/// momentum=0.0, wd=0.0)`): `mom = momentum·mom − lr·(rescale·grad + wd·w); w += mom`.
#[derive(Debug)]
pub struct SGD {
    base: OptimizerBase,
    pub momentum: f64,
}

impl SGD {
    pub fn new(lr: f64) -> Self {
        SGD { base: OptimizerBase::new(lr), momentum: 0.0 }
    }
    pub fn momentum(mut self, m: f64) -> Self {
        self.momentum = m;
        self
    }
    pub fn wd(mut self, wd: f64) -> Self {
        self.base.wd = wd;
        self
    }
    pub fn clip_gradient(mut self, c: f64) -> Self {
        self.base.clip_gradient = Some(c);
        self
    }
}

impl Default for SGD {
    fn default() -> Self {
        SGD::new(0.01)
    }
}

impl Optimizer for SGD {
    fn base(&self) -> &OptimizerBase {
        &self.base
    }
    fn base_mut(&mut self) -> &mut OptimizerBase {
        &mut self.base
    }
    fn name(&self) -> &'static str {
        "sgd"
    }
    fn create_state(&self, _: usize, weight: &NDArray) -> Result<Vec<NDArray>> {
        if self.momentum != 0.0 {
            Ok(vec![zeros_like(weight)?])
        } else {
            Ok(Vec::new())
        }
    }
    fn update(&mut self, index: usize, weight: &NDArray, grad: &NDArray, state: &[NDArray]) -> Result<()> {
        self.base.update_count(index);
        let lr = self.base.get_lr(index);
        let wd = self.base.get_wd(index);
        let mut attrs = self.base.common_attrs(lr, wd);
        match state.first() {
            Some(mom) => {
                attrs.push(("momentum".into(), self.momentum.to_string()));
                apply("sgd_mom_update", &[weight.clone(), grad.clone(), mom.clone()], &attrs, weight)
            }
            None => apply("sgd_update", &[weight.clone(), grad.clone()], &attrs, weight),
        }
    }
}

/// Nesterov accelerated gradient (MXNet's `NAG(momentum=0.0)`).
#[derive(Debug)]
pub struct NAG {
    base: OptimizerBase,
    pub momentum: f64,
}

impl NAG {
    pub fn new(lr: f64) -> Self {
        NAG { base: OptimizerBase::new(lr), momentum: 0.0 }
    }
    pub fn momentum(mut self, m: f64) -> Self {
        self.momentum = m;
        self
    }
}

impl Optimizer for NAG {
    fn base(&self) -> &OptimizerBase {
        &self.base
    }
    fn base_mut(&mut self) -> &mut OptimizerBase {
        &mut self.base
    }
    fn name(&self) -> &'static str {
        "nag"
    }
    fn create_state(&self, _: usize, weight: &NDArray) -> Result<Vec<NDArray>> {
        if self.momentum != 0.0 {
            Ok(vec![zeros_like(weight)?])
        } else {
            Ok(Vec::new())
        }
    }
    fn update(&mut self, index: usize, weight: &NDArray, grad: &NDArray, state: &[NDArray]) -> Result<()> {
        self.base.update_count(index);
        let lr = self.base.get_lr(index);
        let wd = self.base.get_wd(index);
        let mut attrs = self.base.common_attrs(lr, wd);
        match state.first() {
            Some(mom) => {
                attrs.push(("momentum".into(), self.momentum.to_string()));
                apply("nag_mom_update", &[weight.clone(), grad.clone(), mom.clone()], &attrs, weight)
            }
            None => apply("sgd_update", &[weight.clone(), grad.clone()], &attrs, weight),
        }
    }
}

/// Adam (MXNet's `Adam(learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8)`), with
/// the bias correction folded into the learning rate as MXNet does.
#[derive(Debug)]
pub struct Adam {
    base: OptimizerBase,
    pub beta1: f64,
    pub beta2: f64,
    pub epsilon: f64,
}

impl Adam {
    pub fn new(lr: f64) -> Self {
        Adam { base: OptimizerBase::new(lr), beta1: 0.9, beta2: 0.999, epsilon: 1e-8 }
    }
    pub fn wd(mut self, wd: f64) -> Self {
        self.base.wd = wd;
        self
    }
}

impl Default for Adam {
    fn default() -> Self {
        Adam::new(0.001)
    }
}

impl Optimizer for Adam {
    fn base(&self) -> &OptimizerBase {
        &self.base
    }
    fn base_mut(&mut self) -> &mut OptimizerBase {
        &mut self.base
    }
    fn name(&self) -> &'static str {
        "adam"
    }
    fn create_state(&self, _: usize, weight: &NDArray) -> Result<Vec<NDArray>> {
        Ok(vec![zeros_like(weight)?, zeros_like(weight)?])
    }
    fn update(&mut self, index: usize, weight: &NDArray, grad: &NDArray, state: &[NDArray]) -> Result<()> {
        self.base.update_count(index);
        let lr = self.base.get_lr(index);
        let wd = self.base.get_wd(index);
        let t = self.base.index_update_count[&index] as i32;
        let coef1 = 1.0 - self.beta1.powi(t);
        let coef2 = 1.0 - self.beta2.powi(t);
        let lr = lr * coef2.sqrt() / coef1;
        let mut attrs = self.base.common_attrs(lr, wd);
        attrs.push(("beta1".into(), self.beta1.to_string()));
        attrs.push(("beta2".into(), self.beta2.to_string()));
        attrs.push(("epsilon".into(), self.epsilon.to_string()));
        let [mean, var] = state else {
            return Err(Error::Invalid(format!("adam: expected 2 state arrays, got {}", state.len())));
        };
        apply("adam_update", &[weight.clone(), grad.clone(), mean.clone(), var.clone()], &attrs, weight)
    }
}

/// RMSProp (MXNet's `RMSProp(learning_rate=0.001, gamma1=0.9, gamma2=0.9, epsilon=1e-8,
/// centered=False)`; centered is Graves' variant, `rmspropalex_update`).
#[derive(Debug)]
pub struct RMSProp {
    base: OptimizerBase,
    pub gamma1: f64,
    pub gamma2: f64,
    pub epsilon: f64,
    pub centered: bool,
}

impl RMSProp {
    pub fn new(lr: f64) -> Self {
        RMSProp { base: OptimizerBase::new(lr), gamma1: 0.9, gamma2: 0.9, epsilon: 1e-8, centered: false }
    }
    pub fn centered(mut self, c: bool) -> Self {
        self.centered = c;
        self
    }
}

impl Optimizer for RMSProp {
    fn base(&self) -> &OptimizerBase {
        &self.base
    }
    fn base_mut(&mut self) -> &mut OptimizerBase {
        &mut self.base
    }
    fn name(&self) -> &'static str {
        "rmsprop"
    }
    fn create_state(&self, _: usize, weight: &NDArray) -> Result<Vec<NDArray>> {
        if self.centered {
            Ok(vec![zeros_like(weight)?, zeros_like(weight)?, zeros_like(weight)?])
        } else {
            Ok(vec![zeros_like(weight)?])
        }
    }
    fn update(&mut self, index: usize, weight: &NDArray, grad: &NDArray, state: &[NDArray]) -> Result<()> {
        self.base.update_count(index);
        let lr = self.base.get_lr(index);
        let wd = self.base.get_wd(index);
        let mut attrs = self.base.common_attrs(lr, wd);
        attrs.push(("gamma1".into(), self.gamma1.to_string()));
        attrs.push(("epsilon".into(), self.epsilon.to_string()));
        let mut inputs = vec![weight.clone(), grad.clone()];
        inputs.extend(state.iter().cloned());
        if self.centered {
            attrs.push(("gamma2".into(), self.gamma2.to_string()));
            apply("rmspropalex_update", &inputs, &attrs, weight)
        } else {
            apply("rmsprop_update", &inputs, &attrs, weight)
        }
    }
}

/// An optimizer by MXNet's registry name with keyword parameters (`learning_rate`,
/// `momentum`, `wd`, `clip_gradient`, `rescale_grad`, `beta1`, `beta2`, `epsilon`,
/// `gamma1`, `gamma2`, `centered`), as `Trainer(params, 'sgd', {...})` takes them.
pub fn create(name: &str, params: &[(&str, f64)]) -> Result<Box<dyn Optimizer>> {
    let get = |k: &str| params.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
    let known: &[&str] = match name {
        "sgd" | "nag" => {
            &["learning_rate", "momentum", "wd", "clip_gradient", "rescale_grad", "begin_num_update"]
        }
        "adam" => &[
            "learning_rate",
            "beta1",
            "beta2",
            "epsilon",
            "wd",
            "clip_gradient",
            "rescale_grad",
            "begin_num_update",
        ],
        "rmsprop" => &[
            "learning_rate",
            "gamma1",
            "gamma2",
            "epsilon",
            "centered",
            "wd",
            "clip_gradient",
            "rescale_grad",
            "begin_num_update",
        ],
        other => {
            return Err(Error::Invalid(format!(
                "unknown optimizer '{other}' (available: sgd, nag, adam, rmsprop)"
            )))
        }
    };
    if let Some((k, _)) = params.iter().find(|(k, _)| !known.contains(k)) {
        return Err(Error::Invalid(format!(
            "optimizer '{name}' has no parameter '{k}' (known: {})",
            known.join(", ")
        )));
    }
    let mut opt: Box<dyn Optimizer> = match name {
        "sgd" => {
            Box::new(SGD::new(get("learning_rate").unwrap_or(0.01)).momentum(get("momentum").unwrap_or(0.0)))
        }
        "nag" => {
            Box::new(NAG::new(get("learning_rate").unwrap_or(0.01)).momentum(get("momentum").unwrap_or(0.0)))
        }
        "adam" => {
            let mut a = Adam::new(get("learning_rate").unwrap_or(0.001));
            a.beta1 = get("beta1").unwrap_or(0.9);
            a.beta2 = get("beta2").unwrap_or(0.999);
            a.epsilon = get("epsilon").unwrap_or(1e-8);
            Box::new(a)
        }
        _ => {
            let mut r = RMSProp::new(get("learning_rate").unwrap_or(0.001));
            r.gamma1 = get("gamma1").unwrap_or(0.9);
            r.gamma2 = get("gamma2").unwrap_or(0.9);
            r.epsilon = get("epsilon").unwrap_or(1e-8);
            r.centered = get("centered").unwrap_or(0.0) != 0.0;
            Box::new(r)
        }
    };
    let b = opt.base_mut();
    b.wd = get("wd").unwrap_or(0.0);
    b.clip_gradient = get("clip_gradient");
    b.rescale_grad = get("rescale_grad").unwrap_or(1.0);
    b.begin_num_update = get("begin_num_update").unwrap_or(0.0) as u64;
    b.num_update = b.begin_num_update;
    Ok(opt)
}
