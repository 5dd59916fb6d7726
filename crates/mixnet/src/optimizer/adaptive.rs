//! Per-coordinate adaptive rates: RMSProp, AdaGrad, AdaDelta, Ftrl, FTML.

use super::{apply, expect_states, optimizer_common, zeros_n, Optimizer, OptimizerBase};
use crate::{NDArray, Result};

/// RMSProp (MXNet's `RMSProp(learning_rate=0.001, gamma1=0.9, gamma2=0.9, epsilon=1e-8,
/// centered=False, clip_weights=None)`; centered is Graves' variant, `rmspropalex_update`).
#[derive(Debug)]
pub struct RMSProp {
    base: OptimizerBase,
    pub gamma1: f64,
    pub gamma2: f64,
    pub epsilon: f64,
    pub centered: bool,
    pub clip_weights: Option<f64>,
}

impl RMSProp {
    pub fn new(lr: f64) -> Self {
        RMSProp {
            base: OptimizerBase::new(lr),
            gamma1: 0.9,
            gamma2: 0.9,
            epsilon: 1e-8,
            centered: false,
            clip_weights: None,
        }
    }
    pub fn centered(mut self, c: bool) -> Self {
        self.centered = c;
        self
    }
}

impl Default for RMSProp {
    fn default() -> Self {
        RMSProp::new(0.001)
    }
}

impl Optimizer for RMSProp {
    optimizer_common!("rmsprop", gamma1, gamma2, epsilon, centered, clip_weights);
    fn create_state(&self, _: usize, weight: &NDArray) -> Result<Vec<NDArray>> {
        zeros_n(weight, if self.centered { 3 } else { 1 })
    }
    fn update(&mut self, index: usize, weight: &NDArray, grad: &NDArray, state: &[NDArray]) -> Result<()> {
        let (lr, wd) = self.base.begin(index);
        let attrs = self
            .base
            .common_attrs(lr, wd)
            .with("gamma1", self.gamma1)
            .with("epsilon", self.epsilon)
            .with_if(self.centered, "gamma2", self.gamma2);
        let attrs = match self.clip_weights {
            Some(c) if c != 0.0 => attrs.with("clip_weights", c),
            _ => attrs,
        };
        let mut inputs = vec![weight.clone(), grad.clone()];
        if self.centered {
            inputs.extend(expect_states::<3>("rmsprop", state)?.iter().cloned());
            apply("rmspropalex_update", &inputs, &attrs, weight)
        } else {
            inputs.extend(expect_states::<1>("rmsprop", state)?.iter().cloned());
            apply("rmsprop_update", &inputs, &attrs, weight)
        }
    }
}

/// AdaGrad (MXNet's `AdaGrad(learning_rate=0.01, eps=1e-7)`): the step divides by the root
/// of the summed squared gradients.
#[derive(Debug)]
pub struct AdaGrad {
    base: OptimizerBase,
    pub eps: f64,
}

impl Default for AdaGrad {
    fn default() -> Self {
        AdaGrad { base: OptimizerBase::new(0.01), eps: 1e-7 }
    }
}

impl Optimizer for AdaGrad {
    optimizer_common!("adagrad", eps);
    fn create_state(&self, _: usize, weight: &NDArray) -> Result<Vec<NDArray>> {
        zeros_n(weight, 1)
    }
    fn update(&mut self, index: usize, weight: &NDArray, grad: &NDArray, state: &[NDArray]) -> Result<()> {
        let [history] = expect_states::<1>("adagrad", state)?;
        let (lr, wd) = self.base.begin(index);
        let _pause = crate::autograd::pause(false);
        let g = self.base.rescaled_grad(grad)?;
        history.assign_from((history + &g.square()?)?)?;
        let div = (&g / &(history + self.eps)?.sqrt()?)?;
        let step = (&(&div + &(weight * wd)?)? * -lr)?;
        weight.assign_from((weight + &step)?)
    }
}

/// AdaDelta (MXNet's `AdaDelta(rho=0.9, epsilon=1e-5)`); it has no learning rate.
#[derive(Debug)]
pub struct AdaDelta {
    base: OptimizerBase,
    pub rho: f64,
    pub epsilon: f64,
}

impl Default for AdaDelta {
    fn default() -> Self {
        AdaDelta { base: OptimizerBase::new(0.01), rho: 0.9, epsilon: 1e-5 }
    }
}

impl Optimizer for AdaDelta {
    optimizer_common!("adadelta", rho, epsilon);
    fn create_state(&self, _: usize, weight: &NDArray) -> Result<Vec<NDArray>> {
        zeros_n(weight, 2)
    }
    fn update(&mut self, index: usize, weight: &NDArray, grad: &NDArray, state: &[NDArray]) -> Result<()> {
        let [acc_g, acc_delta] = expect_states::<2>("adadelta", state)?;
        let wd = self.base.get_wd(index);
        self.base.update_count(index);
        let _pause = crate::autograd::pause(false);
        let g = self.base.rescaled_grad(grad)?;
        let rho = self.rho;
        acc_g.assign_from((&(acc_g * rho)? + &(&(&g * &g)? * (1.0 - rho))?)?)?;
        let ratio = (&(acc_delta + self.epsilon)?.sqrt()? / &(acc_g + self.epsilon)?.sqrt()?)?;
        let delta = (&ratio * &g)?;
        acc_delta.assign_from((&(acc_delta * rho)? + &(&(&delta * &delta)? * (1.0 - rho))?)?)?;
        weight.assign_from((weight - &(&delta + &(weight * wd)?)?)?)
    }
}

/// Follow the regularized leader (MXNet's `Ftrl(lamda1=0.01, learning_rate=0.1, beta=1)`,
/// `ftrl_update`).
#[derive(Debug)]
pub struct Ftrl {
    base: OptimizerBase,
    pub lamda1: f64,
    pub beta: f64,
}

impl Default for Ftrl {
    fn default() -> Self {
        Ftrl { base: OptimizerBase::new(0.1), lamda1: 0.01, beta: 1.0 }
    }
}

impl Optimizer for Ftrl {
    optimizer_common!("ftrl", lamda1, beta);
    fn create_state(&self, _: usize, weight: &NDArray) -> Result<Vec<NDArray>> {
        zeros_n(weight, 2)
    }
    fn update(&mut self, index: usize, weight: &NDArray, grad: &NDArray, state: &[NDArray]) -> Result<()> {
        let [z, n] = expect_states::<2>("ftrl", state)?;
        let (lr, wd) = self.base.begin(index);
        let attrs = self.base.common_attrs(lr, wd).with("lamda1", self.lamda1).with("beta", self.beta);
        apply("ftrl_update", &[weight.clone(), grad.clone(), z.clone(), n.clone()], &attrs, weight)
    }
}

/// Follow the moving leader (MXNet's `FTML(beta1=0.6, beta2=0.999, epsilon=1e-8)`,
/// `ftml_update`).
#[derive(Debug)]
pub struct FTML {
    base: OptimizerBase,
    pub beta1: f64,
    pub beta2: f64,
    pub epsilon: f64,
}

impl Default for FTML {
    fn default() -> Self {
        FTML { base: OptimizerBase::new(0.01), beta1: 0.6, beta2: 0.999, epsilon: 1e-8 }
    }
}

impl Optimizer for FTML {
    optimizer_common!("ftml", beta1, beta2, epsilon);
    fn create_state(&self, _: usize, weight: &NDArray) -> Result<Vec<NDArray>> {
        zeros_n(weight, 3)
    }
    fn update(&mut self, index: usize, weight: &NDArray, grad: &NDArray, state: &[NDArray]) -> Result<()> {
        let [d, v, z] = expect_states::<3>("ftml", state)?;
        let (lr, wd) = self.base.begin(index);
        let attrs = super::Attrs::default()
            .with("lr", lr)
            .with("wd", wd)
            .with("beta1", self.beta1)
            .with("beta2", self.beta2)
            .with("epsilon", self.epsilon)
            .with("rescale_grad", self.base.rescale_grad)
            .with("t", self.base.count(index));
        let attrs = self.base.with_clip(attrs, "clip_grad");
        apply("ftml_update", &[weight.clone(), grad.clone(), d.clone(), v.clone(), z.clone()], &attrs, weight)
    }
}
