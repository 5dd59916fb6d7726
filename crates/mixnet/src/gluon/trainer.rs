//! `Trainer` (MXNet's `gluon.Trainer`): applies an optimizer to a set of parameters.
//!
//! `step(batch_size)` sets `rescale_grad = 1 / batch_size`, reduces gradients across
//! devices (`allreduce_grads`; one device here, so nothing moves) and updates every
//! parameter whose `grad_req` is not null. A gradient that was not written since the
//! previous step is "stale": an error unless `ignore_stale_grad`, as in MXNet.

use std::path::Path;

use super::parameter::{Parameter, ParameterDict};
use crate::autograd::GradReq;
use crate::optimizer::{self, Optimizer};
use crate::{DType, Error, NDArray, Result};

/// Applies an optimizer to parameters.
pub struct Trainer {
    params: Vec<Parameter>,
    optimizer: Box<dyn Optimizer>,
    states: Vec<Option<Vec<NDArray>>>,
    /// Pushed-write count of each gradient at the last update (stale-gradient check).
    grad_writes: Vec<u64>,
    scale: f64,
}

impl Trainer {
    /// A trainer over `params` (their `lr_mult`/`wd_mult` are read at each update).
    pub fn new(params: &ParameterDict, optimizer: Box<dyn Optimizer>) -> Self {
        let params: Vec<Parameter> = params.values().cloned().collect();
        let n = params.len();
        Trainer { params, optimizer, states: vec![None; n], grad_writes: vec![0; n], scale: 1.0 }
    }

    /// MXNet's `Trainer(params, 'sgd', {'learning_rate': 0.1, 'momentum': 0.9})`.
    pub fn with_optimizer(
        params: &ParameterDict,
        name: &str,
        optimizer_params: &[(&str, f64)],
    ) -> Result<Self> {
        Ok(Self::new(params, optimizer::create(name, optimizer_params)?))
    }

    pub fn learning_rate(&self) -> f64 {
        self.optimizer.learning_rate()
    }
    pub fn set_learning_rate(&mut self, lr: f64) -> Result<()> {
        self.optimizer.set_learning_rate(lr)
    }
    pub fn optimizer(&self) -> &dyn Optimizer {
        self.optimizer.as_ref()
    }
    pub fn optimizer_mut(&mut self) -> &mut dyn Optimizer {
        self.optimizer.as_mut()
    }
    pub fn params(&self) -> &[Parameter] {
        &self.params
    }

    /// One optimization step for a batch of `batch_size` samples (MXNet's `step`).
    pub fn step(&mut self, batch_size: usize, ignore_stale_grad: bool) -> Result<()> {
        self.set_rescale(batch_size)?;
        self.allreduce_grads()?;
        self.apply_updates(ignore_stale_grad)
    }

    /// Reduce gradients over devices (MXNet's `allreduce_grads`); with one device there
    /// is nothing to reduce.
    pub fn allreduce_grads(&mut self) -> Result<()> {
        Ok(())
    }

    /// Update without reducing (MXNet's `update(batch_size)`, after `allreduce_grads`).
    pub fn update(&mut self, batch_size: usize, ignore_stale_grad: bool) -> Result<()> {
        self.set_rescale(batch_size)?;
        self.apply_updates(ignore_stale_grad)
    }

    fn set_rescale(&mut self, batch_size: usize) -> Result<()> {
        if batch_size == 0 {
            return Err(Error::Invalid("Trainer.step: batch_size must be positive".into()));
        }
        self.optimizer.base_mut().rescale_grad = self.scale / batch_size as f64;
        Ok(())
    }

    fn apply_updates(&mut self, ignore_stale_grad: bool) -> Result<()> {
        for (i, p) in self.params.iter().enumerate() {
            if p.grad_req() == GradReq::Null {
                continue;
            }
            let weight = p.data()?;
            let grad = p.grad()?;
            let writes = grad.write_count();
            if writes == self.grad_writes[i] {
                if ignore_stale_grad {
                    continue;
                }
                return Err(Error::Invalid(format!(
                    "gradient of parameter '{}' has not been updated by backward since the last step; \
                     this could mean a bug in your model that made it only use a subset of the parameters \
                     (Blocks) for this iteration. If you are intentionally only using a subset, call step \
                     with ignore_stale_grad=true to suppress this error and skip updating those parameters",
                    p.name()
                )));
            }
            if self.states[i].is_none() {
                self.states[i] = Some(self.optimizer.create_state(i, &weight)?);
            }
            let b = self.optimizer.base_mut();
            b.lr_mult.insert(i, p.lr_mult());
            b.wd_mult.insert(i, p.wd_mult());
            b.idx2name.entry(i).or_insert_with(|| p.name().to_string());
            let state = self.states[i].as_deref().unwrap_or_default();
            self.optimizer.update(i, &weight, &grad, state)?;
            // Updates write the weight (not the gradient): record the count after them.
            self.grad_writes[i] = grad.write_count();
        }
        Ok(())
    }

    /// Save optimizer states and update counts to an NDArray file (states named
    /// `<index>:<k>`; counts in `__index_update_count__`, `-1` for never updated).
    /// MXNet pickles its `Updater` here; this file is mixnet's own.
    pub fn save_states(&self, path: &Path) -> Result<()> {
        let mut arrays = Vec::new();
        let mut names = Vec::new();
        for (i, s) in self.states.iter().enumerate() {
            for (k, a) in s.iter().flatten().enumerate() {
                arrays.push(a.clone());
                names.push(format!("{i}:{k}"));
            }
        }
        let b = self.optimizer.base();
        let counts: Vec<i64> =
            (0..self.params.len()).map(|i| b.index_update_count.get(&i).map_or(-1, |&c| c as i64)).collect();
        if !counts.is_empty() {
            arrays.push(NDArray::from_slice(&counts, [counts.len()])?);
            names.push("__index_update_count__".into());
        }
        arrays.push(NDArray::from_slice(&[b.num_update as i64], [1])?);
        names.push("__num_update__".into());
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        crate::ndarray::save(path, &arrays, &refs)
    }

    /// Load what `save_states` wrote (same parameters, same optimizer).
    pub fn load_states(&mut self, path: &Path) -> Result<()> {
        let file = path.display().to_string();
        let (arrays, names) = crate::ndarray::load(path)?;
        let bad = |msg: String| Error::format(file.clone(), msg);
        let mut states: Vec<Option<Vec<NDArray>>> = vec![None; self.params.len()];
        let mut counts = None;
        let mut num_update = None;
        for (name, a) in names.iter().zip(arrays) {
            match name.as_str() {
                "__index_update_count__" => counts = Some(a.to_vec::<i64>()?),
                "__num_update__" => num_update = a.to_vec::<i64>()?.first().copied(),
                _ => {
                    let (i, k) = name
                        .split_once(':')
                        .and_then(|(i, k)| Some((i.parse::<usize>().ok()?, k.parse::<usize>().ok()?)))
                        .ok_or_else(|| bad(format!("unexpected entry '{name}' in a trainer states file")))?;
                    let p = self.params.get(i).ok_or_else(|| {
                        bad(format!("state for parameter {i}, but the trainer has {}", self.params.len()))
                    })?;
                    let v = states[i].get_or_insert_with(Vec::new);
                    if k != v.len() {
                        return Err(bad(format!("state '{name}' out of order")));
                    }
                    let want = p.shape();
                    if a.shape().to_vec() != want || a.dtype() != p.dtype() && p.dtype() != DType::F16 {
                        return Err(bad(format!(
                            "state '{name}' has shape {} {}, parameter '{}' is {:?} {}",
                            a.shape(),
                            a.dtype(),
                            p.name(),
                            want,
                            p.dtype()
                        )));
                    }
                    v.push(a);
                }
            }
        }
        for (i, (s, p)) in states.iter().zip(&self.params).enumerate() {
            if let Some(s) = s {
                let expected = self.optimizer.create_state(i, &p.data()?)?.len();
                if s.len() != expected {
                    return Err(bad(format!(
                        "parameter {i} has {} state arrays, optimizer '{}' needs {expected}",
                        s.len(),
                        self.optimizer.name()
                    )));
                }
            }
        }
        self.states = states;
        let b = self.optimizer.base_mut();
        if let Some(c) = counts {
            if c.len() != self.params.len() {
                return Err(bad(format!(
                    "update counts for {} parameters, the trainer has {}",
                    c.len(),
                    self.params.len()
                )));
            }
            b.index_update_count =
                c.iter().enumerate().filter(|(_, &c)| c >= 0).map(|(i, &c)| (i, c as u64)).collect();
        }
        if let Some(n) = num_update {
            b.num_update = n.max(0) as u64;
        }
        Ok(())
    }
}
