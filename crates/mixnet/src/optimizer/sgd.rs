//! The SGD family: SGD (with momentum), NAG, Signum, LARS, SGLD, DCASGD.

use super::{apply, call, expect_states, optimizer_common, zeros_like, Attrs, Optimizer, OptimizerBase};
use crate::{NDArray, Result};

/// `sgd_mom_update` with a momentum state, `sgd_update` without (SGD and LARS).
fn sgd_step(attrs: Attrs, momentum: f64, weight: &NDArray, grad: &NDArray, state: &[NDArray]) -> Result<()> {
    match state.first() {
        Some(mom) => apply(
            "sgd_mom_update",
            &[weight.clone(), grad.clone(), mom.clone()],
            &attrs.with("momentum", momentum),
            weight,
        ),
        None => apply("sgd_update", &[weight.clone(), grad.clone()], &attrs, weight),
    }
}

fn momentum_state(momentum: f64, weight: &NDArray) -> Result<Vec<NDArray>> {
    if momentum != 0.0 {
        Ok(vec![zeros_like(weight)?])
    } else {
        Ok(Vec::new())
    }
}

/// Stochastic gradient descent with optional momentum (MXNet's `SGD(learning_rate=0.01,
/// momentum=0.0, wd=0.0)`): `mom = momentum·mom − lr·(rescale·grad + wd·w); w += mom`.
#[derive(Debug)]
pub struct SGD {
    base: OptimizerBase,
    pub momentum: f64,
    pub lazy_update: bool,
}

impl SGD {
    pub fn new(lr: f64) -> Self {
        SGD { base: OptimizerBase::new(lr), momentum: 0.0, lazy_update: true }
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
    optimizer_common!("sgd", momentum, lazy_update);
    fn create_state(&self, _: usize, weight: &NDArray) -> Result<Vec<NDArray>> {
        momentum_state(self.momentum, weight)
    }
    fn update(&mut self, index: usize, weight: &NDArray, grad: &NDArray, state: &[NDArray]) -> Result<()> {
        let (lr, wd) = self.base.begin(index);
        sgd_step(self.base.common_attrs(lr, wd), self.momentum, weight, grad, state)
    }
}

/// Nesterov accelerated gradient (MXNet's `NAG(momentum=0.0)`, `nag_mom_update`).
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

impl Default for NAG {
    fn default() -> Self {
        NAG::new(0.01)
    }
}

impl Optimizer for NAG {
    optimizer_common!("nag", momentum);
    fn create_state(&self, _: usize, weight: &NDArray) -> Result<Vec<NDArray>> {
        momentum_state(self.momentum, weight)
    }
    fn update(&mut self, index: usize, weight: &NDArray, grad: &NDArray, state: &[NDArray]) -> Result<()> {
        let (lr, wd) = self.base.begin(index);
        let attrs = self.base.common_attrs(lr, wd);
        match state.first() {
            Some(mom) => apply(
                "nag_mom_update",
                &[weight.clone(), grad.clone(), mom.clone()],
                &attrs.with("momentum", self.momentum),
                weight,
            ),
            None => apply("sgd_update", &[weight.clone(), grad.clone()], &attrs, weight),
        }
    }
}

/// Sign of the (momentum-averaged) gradient (MXNet's `Signum(learning_rate=0.01,
/// momentum=0.9, wd_lh=0.0)`; `signum_update`, or `signsgd_update` without momentum).
#[derive(Debug)]
pub struct Signum {
    base: OptimizerBase,
    pub momentum: f64,
    /// Decoupled weight decay (`w *= 1 − lr·wd_lh`).
    pub wd_lh: f64,
}

impl Default for Signum {
    fn default() -> Self {
        Signum { base: OptimizerBase::new(0.01), momentum: 0.9, wd_lh: 0.0 }
    }
}

impl Optimizer for Signum {
    optimizer_common!("signum", momentum, wd_lh);
    fn create_state(&self, _: usize, weight: &NDArray) -> Result<Vec<NDArray>> {
        momentum_state(self.momentum, weight)
    }
    fn update(&mut self, index: usize, weight: &NDArray, grad: &NDArray, state: &[NDArray]) -> Result<()> {
        let (lr, wd) = self.base.begin(index);
        let attrs = self.base.common_attrs(lr, wd).with_if(self.wd_lh != 0.0, "wd_lh", self.wd_lh);
        match state.first() {
            Some(mom) => apply(
                "signum_update",
                &[weight.clone(), grad.clone(), mom.clone()],
                &attrs.with_if(self.momentum > 0.0, "momentum", self.momentum),
                weight,
            ),
            None => apply("signsgd_update", &[weight.clone(), grad.clone()], &attrs, weight),
        }
    }
}

/// Layer-wise adaptive rate scaling (MXNet's `LARS(momentum=0.0, eta=0.001, eps=0,
/// momentum_correction=True)`): SGD whose learning rate per layer is scaled by
/// `eta·‖w‖ / (‖rescale·g‖ + wd·‖w‖ + eps)` (when both norms are positive), except for
/// parameters named `*gamma`, `*beta`, `*bias`.
///
/// MXNet's momentum correction scales momentum by `lr_now / lr_before` when the
/// schedule moved; here "before" is the previous step's rate, for every parameter.
#[derive(Debug)]
pub struct LARS {
    base: OptimizerBase,
    pub momentum: f64,
    pub eta: f64,
    pub eps: f64,
    pub momentum_correction: bool,
    pub lazy_update: bool,
    /// (`num_update` it was computed at, current rate, previous rate).
    rates: Option<(u64, f64, f64)>,
}

impl Default for LARS {
    fn default() -> Self {
        LARS {
            base: OptimizerBase::new(0.01),
            momentum: 0.0,
            eta: 0.001,
            eps: 0.0,
            momentum_correction: true,
            lazy_update: true,
            rates: None,
        }
    }
}

impl LARS {
    fn skips(&self, index: usize) -> bool {
        let name = self.base.idx2name.get(&index).cloned().unwrap_or_else(|| index.to_string());
        ["gamma", "beta", "bias"].iter().any(|s| name.ends_with(s))
    }
}

fn l2norm(x: &NDArray) -> Result<f64> {
    x.astype(crate::DType::F32)?.norm()?.as_scalar::<f32>().map(f64::from)
}

impl Optimizer for LARS {
    optimizer_common!("lars", momentum, eta, eps, momentum_correction, lazy_update);
    fn create_state(&self, _: usize, weight: &NDArray) -> Result<Vec<NDArray>> {
        momentum_state(self.momentum, weight)
    }
    fn update(&mut self, index: usize, weight: &NDArray, grad: &NDArray, state: &[NDArray]) -> Result<()> {
        self.base.update_count(index);
        let step = self.base.num_update;
        let (cur, last) = match self.rates {
            Some((at, cur, last)) if at == step => (cur, last),
            prev => {
                let now = self.base.scheduled_lr();
                (now, prev.map_or(now, |(_, cur, _)| cur))
            }
        };
        self.rates = Some((step, cur, last));
        let mut lr = cur * self.base.lr_mult.get(&index).copied().unwrap_or(1.0);
        let wd = self.base.get_wd(index);
        if !self.skips(index) {
            let w_norm = l2norm(weight)?;
            let g_norm = l2norm(grad)? * self.base.rescale_grad;
            if w_norm > 0.0 && g_norm > 0.0 {
                lr *= self.eta * w_norm / (g_norm + wd * w_norm + self.eps);
            }
        }
        let momentum =
            if self.momentum_correction && last != 0.0 { self.momentum * cur / last } else { self.momentum };
        sgd_step(self.base.common_attrs(lr, wd), momentum, weight, grad, state)
    }
}

/// Stochastic gradient Langevin dynamics (MXNet's `SGLD`): a half gradient step plus
/// Gaussian noise of variance `lr`.
#[derive(Debug)]
pub struct SGLD {
    base: OptimizerBase,
}

impl Default for SGLD {
    fn default() -> Self {
        SGLD { base: OptimizerBase::new(0.01) }
    }
}

impl Optimizer for SGLD {
    optimizer_common!("sgld");
    fn create_state(&self, _: usize, _: &NDArray) -> Result<Vec<NDArray>> {
        Ok(Vec::new())
    }
    fn update(&mut self, index: usize, weight: &NDArray, grad: &NDArray, _: &[NDArray]) -> Result<()> {
        let (lr, wd) = self.base.begin(index);
        let _pause = crate::autograd::pause(false);
        let g = self.base.rescaled_grad(grad)?;
        let step = ((&g + &(weight * wd)?)? * (-lr / 2.0))?;
        weight.assign_from((weight + &step)?)?;
        let noise = call(
            "_random_normal_like",
            std::slice::from_ref(weight),
            &Attrs::default().with("loc", 0.0).with("scale", lr.sqrt()),
        )?;
        weight.assign_from((weight + &noise)?)
    }
}

/// Delay-compensated asynchronous SGD (MXNet's `DCASGD(momentum=0.0, lamda=0.04)`): the
/// gradient is corrected by `lamda·g²·(w − w_previous)`.
#[derive(Debug)]
pub struct DCASGD {
    base: OptimizerBase,
    pub momentum: f64,
    pub lamda: f64,
}

impl Default for DCASGD {
    fn default() -> Self {
        DCASGD { base: OptimizerBase::new(0.01), momentum: 0.0, lamda: 0.04 }
    }
}

impl Optimizer for DCASGD {
    optimizer_common!("dcasgd", momentum, lamda);
    /// `[previous weight]`, or `[momentum, previous weight]` with momentum.
    fn create_state(&self, _: usize, weight: &NDArray) -> Result<Vec<NDArray>> {
        let previous = weight.copy()?;
        if self.momentum == 0.0 {
            Ok(vec![previous])
        } else {
            Ok(vec![zeros_like(weight)?, previous])
        }
    }
    fn update(&mut self, index: usize, weight: &NDArray, grad: &NDArray, state: &[NDArray]) -> Result<()> {
        let (lr, wd) = self.base.begin(index);
        let _pause = crate::autograd::pause(false);
        let (mom, previous) = match state {
            [previous] => (None, previous),
            _ => {
                let [mom, previous] = expect_states::<2>("dcasgd", state)?;
                (Some(mom), previous)
            }
        };
        let g = self.base.rescaled_grad(grad)?;
        let compensation = ((&(&g * &g)? * self.lamda)? * (weight - previous)?)?;
        let delta = ((&(&g + &(weight * wd)?)? + &compensation)? * -lr)?;
        let step = match mom {
            Some(m) => {
                m.assign_from((&(m * self.momentum)? + &delta)?)?;
                m.clone()
            }
            None => delta,
        };
        previous.assign(weight)?;
        weight.assign_from((weight + &step)?)
    }
}
