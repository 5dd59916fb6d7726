//! The Adam family: Adam, AdamW, Adamax, Nadam, LAMB.

use super::{apply, call, expect_states, optimizer_common, zeros_n, Attrs, Optimizer, OptimizerBase};
use crate::{NDArray, Result};

/// `1 − beta^t`, the bias correction of a moment after `t` updates.
fn correction(beta: f64, t: u64) -> f64 {
    1.0 - beta.powi(t.min(i32::MAX as u64) as i32)
}

/// Adam (MXNet's `Adam(learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8)`), with
/// the bias correction folded into the learning rate as MXNet does.
#[derive(Debug)]
pub struct Adam {
    base: OptimizerBase,
    pub beta1: f64,
    pub beta2: f64,
    pub epsilon: f64,
    pub lazy_update: bool,
}

impl Adam {
    pub fn new(lr: f64) -> Self {
        Adam { base: OptimizerBase::new(lr), beta1: 0.9, beta2: 0.999, epsilon: 1e-8, lazy_update: true }
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
    optimizer_common!("adam", beta1, beta2, epsilon, lazy_update);
    fn create_state(&self, _: usize, weight: &NDArray) -> Result<Vec<NDArray>> {
        zeros_n(weight, 2)
    }
    fn update(&mut self, index: usize, weight: &NDArray, grad: &NDArray, state: &[NDArray]) -> Result<()> {
        let [mean, var] = expect_states::<2>("adam", state)?;
        let (lr, wd) = self.base.begin(index);
        let t = self.base.count(index);
        let lr = lr * correction(self.beta2, t).sqrt() / correction(self.beta1, t);
        let attrs = self
            .base
            .common_attrs(lr, wd)
            .with("beta1", self.beta1)
            .with("beta2", self.beta2)
            .with("epsilon", self.epsilon);
        apply("adam_update", &[weight.clone(), grad.clone(), mean.clone(), var.clone()], &attrs, weight)
    }
}

/// Adam with decoupled weight decay (MXNet 2's `AdamW(learning_rate=0.001, beta1=0.9,
/// beta2=0.999, epsilon=1e-6, correct_bias=True)` on `_adamw_update`):
/// `w −= lr_t·(m / (√v + ε) + wd·w)`. A non-finite `rescale_grad` skips the update.
#[derive(Debug)]
pub struct AdamW {
    base: OptimizerBase,
    pub beta1: f64,
    pub beta2: f64,
    pub epsilon: f64,
    pub correct_bias: bool,
}

impl Default for AdamW {
    fn default() -> Self {
        AdamW { base: OptimizerBase::new(0.001), beta1: 0.9, beta2: 0.999, epsilon: 1e-6, correct_bias: true }
    }
}

impl Optimizer for AdamW {
    optimizer_common!("adamw", beta1, beta2, epsilon, correct_bias);
    fn create_state(&self, _: usize, weight: &NDArray) -> Result<Vec<NDArray>> {
        zeros_n(weight, 2)
    }
    fn update(&mut self, index: usize, weight: &NDArray, grad: &NDArray, state: &[NDArray]) -> Result<()> {
        let [mean, var] = expect_states::<2>("adamw", state)?;
        let (mut lr, wd) = self.base.begin(index);
        if self.correct_bias {
            let t = self.base.count(index);
            lr *= correction(self.beta2, t).sqrt() / correction(self.beta1, t);
        }
        let attrs = Attrs::default()
            .with("lr", 1.0)
            .with("eta", lr)
            .with("wd", wd)
            .with("beta1", self.beta1)
            .with("beta2", self.beta2)
            .with("epsilon", self.epsilon);
        let attrs = self.base.with_clip(attrs, "clip_gradient");
        let rescale = NDArray::full([1], self.base.rescale_grad, crate::DType::F32, weight.context())?;
        apply(
            "_adamw_update",
            &[weight.clone(), grad.clone(), mean.clone(), var.clone(), rescale],
            &attrs,
            weight,
        )
    }
}

/// AdaMax, Adam under the infinity norm (MXNet's `Adamax(learning_rate=0.002, beta1=0.9,
/// beta2=0.999)`).
#[derive(Debug)]
pub struct Adamax {
    base: OptimizerBase,
    pub beta1: f64,
    pub beta2: f64,
}

impl Default for Adamax {
    fn default() -> Self {
        Adamax { base: OptimizerBase::new(0.002), beta1: 0.9, beta2: 0.999 }
    }
}

impl Optimizer for Adamax {
    optimizer_common!("adamax", beta1, beta2);
    fn create_state(&self, _: usize, weight: &NDArray) -> Result<Vec<NDArray>> {
        zeros_n(weight, 2)
    }
    fn update(&mut self, index: usize, weight: &NDArray, grad: &NDArray, state: &[NDArray]) -> Result<()> {
        let [m, u] = expect_states::<2>("adamax", state)?;
        let (lr, wd) = self.base.begin(index);
        let lr = lr / correction(self.beta1, self.base.count(index));
        let _pause = crate::autograd::pause(false);
        let g = decayed_grad(&self.base, grad, weight, wd)?;
        m.assign_from((&(m * self.beta1)? + &(&g * (1.0 - self.beta1))?)?)?;
        u.assign_from((u * self.beta2)?.maximum(&g.abs()?)?)?;
        weight.assign_from((weight - &(&(m * lr)? / u)?)?)
    }
}

/// `rescale·grad + wd·w`, then clipped: the gradient Adamax and Nadam use.
fn decayed_grad(base: &OptimizerBase, grad: &NDArray, weight: &NDArray, wd: f64) -> Result<NDArray> {
    let g = (&(grad * base.rescale_grad)? + &(weight * wd)?)?;
    match base.clip_gradient {
        Some(c) => g.clip(-c, c),
        None => Ok(g),
    }
}

/// Adam with Nesterov momentum (MXNet's `Nadam(learning_rate=0.001, beta1=0.9,
/// beta2=0.999, epsilon=1e-8, schedule_decay=0.004)`).
///
/// As in MXNet, the momentum schedule product `m_schedule` is one number for the whole
/// optimizer, advanced by every parameter's update.
#[derive(Debug)]
pub struct Nadam {
    base: OptimizerBase,
    pub beta1: f64,
    pub beta2: f64,
    pub epsilon: f64,
    pub schedule_decay: f64,
    m_schedule: f64,
}

impl Default for Nadam {
    fn default() -> Self {
        Nadam {
            base: OptimizerBase::new(0.001),
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            schedule_decay: 0.004,
            m_schedule: 1.0,
        }
    }
}

impl Optimizer for Nadam {
    optimizer_common!("nadam", beta1, beta2, epsilon, schedule_decay);
    fn create_state(&self, _: usize, weight: &NDArray) -> Result<Vec<NDArray>> {
        zeros_n(weight, 2)
    }
    fn update(&mut self, index: usize, weight: &NDArray, grad: &NDArray, state: &[NDArray]) -> Result<()> {
        let [m, v] = expect_states::<2>("nadam", state)?;
        let (lr, wd) = self.base.begin(index);
        let t = self.base.count(index) as f64;
        let _pause = crate::autograd::pause(false);
        let g = decayed_grad(&self.base, grad, weight, wd)?;
        let momentum_t = self.beta1 * (1.0 - 0.5 * 0.96f64.powf(t * self.schedule_decay));
        let momentum_t1 = self.beta1 * (1.0 - 0.5 * 0.96f64.powf((t + 1.0) * self.schedule_decay));
        self.m_schedule *= momentum_t;
        let m_schedule_next = self.m_schedule * momentum_t1;
        m.assign_from((&(m * self.beta1)? + &(&g * (1.0 - self.beta1))?)?)?;
        v.assign_from((&(v * self.beta2)? + &(&g.square()? * (1.0 - self.beta2))?)?)?;
        let g_prime = (&g * (1.0 / (1.0 - self.m_schedule)))?;
        let m_prime = (m * (1.0 / (1.0 - m_schedule_next)))?;
        let v_prime = (v * (1.0 / (1.0 - self.beta2.powf(t))))?;
        let m_bar = (&(&g_prime * (1.0 - momentum_t))? + &(&m_prime * momentum_t1)?)?;
        let denom = (&v_prime.sqrt()? + self.epsilon)?;
        weight.assign_from((weight - &(&(&m_bar * lr)? / &denom)?)?)
    }
}

/// Layer-wise adaptive moments (MXNet's `LAMB(learning_rate=0.001, beta1=0.9, beta2=0.999,
/// epsilon=1e-6, lower_bound=None, upper_bound=None, bias_correction=True)`):
/// `lamb_update_phase1` gives the Adam direction, `lamb_update_phase2` scales it by the
/// trust ratio `‖w‖ / ‖g‖`.
#[derive(Debug)]
pub struct LAMB {
    base: OptimizerBase,
    pub beta1: f64,
    pub beta2: f64,
    pub epsilon: f64,
    pub lower_bound: Option<f64>,
    pub upper_bound: Option<f64>,
    pub bias_correction: bool,
}

impl Default for LAMB {
    fn default() -> Self {
        LAMB {
            base: OptimizerBase::new(0.001),
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-6,
            lower_bound: None,
            upper_bound: None,
            bias_correction: true,
        }
    }
}

impl Optimizer for LAMB {
    optimizer_common!("lamb", beta1, beta2, epsilon, lower_bound, upper_bound, bias_correction);
    fn create_state(&self, _: usize, weight: &NDArray) -> Result<Vec<NDArray>> {
        zeros_n(weight, 2)
    }
    fn update(&mut self, index: usize, weight: &NDArray, grad: &NDArray, state: &[NDArray]) -> Result<()> {
        let [mean, var] = expect_states::<2>("lamb", state)?;
        let (lr, wd) = self.base.begin(index);
        let attrs = Attrs::default()
            .with("beta1", self.beta1)
            .with("beta2", self.beta2)
            .with("epsilon", self.epsilon)
            .with("bias_correction", if self.bias_correction { "True" } else { "False" })
            .with("rescale_grad", self.base.rescale_grad)
            .with("t", self.base.count(index))
            .with("wd", wd);
        let attrs = self.base.with_clip(attrs, "clip_gradient");
        let g =
            call("lamb_update_phase1", &[weight.clone(), grad.clone(), mean.clone(), var.clone()], &attrs)?;
        let (r1, r2) = {
            let _pause = crate::autograd::pause(false);
            (weight.norm()?, g.norm()?)
        };
        let bound = |b: Option<f64>| b.filter(|b| *b != 0.0);
        let mut attrs2 = Attrs::default().with("lr", lr);
        if let Some(b) = bound(self.lower_bound) {
            attrs2 = attrs2.with("lower_bound", b);
        }
        if let Some(b) = bound(self.upper_bound) {
            attrs2 = attrs2.with("upper_bound", b);
        }
        apply("lamb_update_phase2", &[weight.clone(), g, r1, r2], &attrs2, weight)
    }
}
