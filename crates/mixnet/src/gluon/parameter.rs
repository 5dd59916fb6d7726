//! `Parameter` and `ParameterDict` (MXNet's `gluon.parameter`).
//!
//! A [`Parameter`] is a shared handle (clones see the same value), so a block, its
//! `collect_params()` and a `Trainer` all hold the same parameter. Shapes may have unknown
//! dimensions (0); such a parameter's initialization is deferred until a forward pass
//! supplies the missing dimensions ([`Parameter::infer_shape`]).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::autograd::GradReq;
use crate::initializer::{Initializer, Uniform};
use crate::{autograd, Context, DType, Error, NDArray, Result, Shape};

struct Inner {
    name: String,
    shape: Vec<usize>,
    dtype: DType,
    grad_req: GradReq,
    lr_mult: f64,
    wd_mult: f64,
    init: Option<Arc<dyn Initializer>>,
    allow_deferred_init: bool,
    differentiable: bool,
    data: Option<NDArray>,
    /// Initialization waiting for the shape: (initializer to use, context).
    deferred: Option<(Arc<dyn Initializer>, Context)>,
}

/// A trainable (or auxiliary) array of a block (MXNet's `gluon.Parameter`).
#[derive(Clone)]
pub struct Parameter(Arc<Mutex<Inner>>);

impl fmt::Debug for Parameter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.0.lock();
        write!(f, "Parameter {} (shape={:?}, dtype={})", p.name, p.shape, p.dtype)
    }
}

impl Parameter {
    /// A parameter named `name` with `shape` (0 = unknown until the first forward),
    /// float32, `grad_req` write, multipliers 1, no own initializer.
    pub fn new(name: impl Into<String>, shape: &[usize]) -> Parameter {
        Parameter(Arc::new(Mutex::new(Inner {
            name: name.into(),
            shape: shape.to_vec(),
            dtype: DType::F32,
            grad_req: GradReq::Write,
            lr_mult: 1.0,
            wd_mult: 1.0,
            init: None,
            allow_deferred_init: true,
            differentiable: true,
            data: None,
            deferred: None,
        })))
    }

    /// Builder: element type.
    pub fn with_dtype(self, dtype: DType) -> Self {
        self.0.lock().dtype = dtype;
        self
    }
    /// Builder: own initializer (MXNet's `init=`; wins over the one given to `initialize`).
    pub fn with_init(self, init: Option<Arc<dyn Initializer>>) -> Self {
        self.0.lock().init = init;
        self
    }
    /// Builder: `grad_req` (`Null` for auxiliary states such as BatchNorm's running mean).
    pub fn with_grad_req(self, req: GradReq) -> Self {
        self.0.lock().grad_req = req;
        self
    }
    /// Builder: whether gradients flow to this parameter at all (false: aux state).
    pub fn with_differentiable(self, differentiable: bool) -> Self {
        let mut p = self.0.lock();
        p.differentiable = differentiable;
        if !differentiable {
            p.grad_req = GradReq::Null;
        }
        drop(p);
        self
    }
    /// Builder: allow unknown dimensions at `initialize` (default true in Gluon layers).
    pub fn with_allow_deferred_init(self, allow: bool) -> Self {
        self.0.lock().allow_deferred_init = allow;
        self
    }

    pub fn name(&self) -> String {
        self.0.lock().name.clone()
    }
    /// Set the declared shape (layer builders, before initialization).
    pub(crate) fn set_shape(&self, shape: Vec<usize>) {
        self.0.lock().shape = shape;
    }
    /// The shape, 0 for dimensions not yet known.
    pub fn shape(&self) -> Vec<usize> {
        self.0.lock().shape.clone()
    }
    pub fn dtype(&self) -> DType {
        self.0.lock().dtype
    }
    pub fn grad_req(&self) -> GradReq {
        self.0.lock().grad_req
    }
    pub fn lr_mult(&self) -> f64 {
        self.0.lock().lr_mult
    }
    pub fn wd_mult(&self) -> f64 {
        self.0.lock().wd_mult
    }
    pub fn set_lr_mult(&self, v: f64) {
        self.0.lock().lr_mult = v;
    }
    pub fn set_wd_mult(&self, v: f64) {
        self.0.lock().wd_mult = v;
    }
    pub fn init(&self) -> Option<Arc<dyn Initializer>> {
        self.0.lock().init.clone()
    }
    pub fn differentiable(&self) -> bool {
        self.0.lock().differentiable
    }
    /// Whether the two handles are the same parameter.
    pub fn ptr_eq(&self, other: &Parameter) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
    /// Whether the value exists (initialized and, if deferred, completed).
    pub fn is_initialized(&self) -> bool {
        self.0.lock().data.is_some()
    }

    /// Change `grad_req`; an initialized parameter gets a fresh gradient buffer (or none).
    pub fn set_grad_req(&self, req: GradReq) -> Result<()> {
        let mut p = self.0.lock();
        if !p.differentiable && req != GradReq::Null {
            return Err(Error::Invalid(format!(
                "parameter '{}' is not differentiable; its grad_req stays null",
                p.name
            )));
        }
        p.grad_req = req;
        if let Some(data) = &p.data {
            let fresh = data.detach();
            let copy = crate::imperative::invoke("_copy", &[fresh], &[])?.remove(0);
            if req != GradReq::Null {
                copy.attach_grad_with(req)?;
            }
            p.data = Some(copy);
        }
        Ok(())
    }

    /// Initialize on `ctx` with the parameter's own initializer, else `default_init`.
    /// Unknown dimensions defer the work to the first forward pass. An initialized
    /// parameter is left alone unless `force_reinit`.
    pub fn initialize(
        &self,
        default_init: Option<Arc<dyn Initializer>>,
        ctx: Context,
        force_reinit: bool,
    ) -> Result<()> {
        let mut p = self.0.lock();
        if p.data.is_some() && !force_reinit {
            return Ok(());
        }
        let init = p.init.clone().or(default_init).unwrap_or_else(|| Arc::new(Uniform::default()));
        p.data = None;
        if p.shape.contains(&0) || p.shape.is_empty() {
            if !p.allow_deferred_init || p.shape.is_empty() {
                return Err(Error::Invalid(format!(
                    "cannot initialize parameter '{}' because it has invalid shape {:?}",
                    p.name, p.shape
                )));
            }
            p.deferred = Some((init, ctx));
            return Ok(());
        }
        p.deferred = Some((init, ctx));
        Self::finish(&mut p)
    }

    fn finish(p: &mut Inner) -> Result<()> {
        let Some((init, ctx)) = p.deferred.take() else { return Ok(()) };
        let shape = Shape::new(&p.shape);
        let _pause = autograd::pause(false);
        let data = init.init_weight(&p.name, &shape, p.dtype, ctx)?;
        if data.shape() != &shape || data.dtype() != p.dtype {
            return Err(Error::Invalid(format!(
                "initializer {:?} made a {} {} array for parameter '{}' of shape {} {}",
                init,
                data.shape(),
                data.dtype(),
                p.name,
                shape,
                p.dtype
            )));
        }
        if p.grad_req != GradReq::Null {
            data.attach_grad_with(p.grad_req)?;
        }
        p.data = Some(data);
        Ok(())
    }

    /// Complete unknown dimensions from what a forward pass saw, check the known ones, and
    /// finish a deferred initialization (MXNet does this by shape inference).
    pub fn infer_shape(&self, layer: &str, shape: &[usize]) -> Result<()> {
        let mut p = self.0.lock();
        if p.shape.len() != shape.len()
            || p.shape.iter().zip(shape).any(|(&have, &want)| have != 0 && have != want)
        {
            return Err(Error::Invalid(format!(
                "{layer}: parameter '{}' has shape {:?} but the input needs {:?}",
                p.name, p.shape, shape
            )));
        }
        if shape.contains(&0) {
            return Err(Error::Invalid(format!(
                "{layer}: cannot infer the shape of parameter '{}' from the input (got {:?})",
                p.name, shape
            )));
        }
        p.shape = shape.to_vec();
        if p.data.is_none() && p.deferred.is_some() {
            Self::finish(&mut p)?;
        }
        Ok(())
    }

    /// The value (MXNet's `data()`); an error before `initialize` or while deferred.
    pub fn data(&self) -> Result<NDArray> {
        let p = self.0.lock();
        match &p.data {
            Some(d) => Ok(d.clone()),
            None if p.deferred.is_some() => Err(Error::Invalid(format!(
                "parameter '{}' has not been initialized yet because initialization was deferred; \
                 actual initialization happens during the first forward pass",
                p.name
            ))),
            None => Err(Error::Invalid(format!(
                "parameter '{}' has not been initialized; call initialize() on the block (or the parameter) first",
                p.name
            ))),
        }
    }

    /// The gradient buffer (MXNet's `grad()`); an error for `grad_req` null.
    pub fn grad(&self) -> Result<NDArray> {
        let data = self.data()?;
        let p = self.0.lock();
        if p.grad_req == GradReq::Null {
            return Err(Error::Invalid(format!(
                "cannot get gradient array for parameter '{}' because grad_req='null'",
                p.name
            )));
        }
        data.grad().ok_or_else(|| Error::Invalid(format!("parameter '{}' has no gradient buffer", p.name)))
    }

    /// Replace the value, keeping the array (and its gradient buffer) when initialized.
    /// Sets the shape of a parameter that was never initialized.
    pub fn set_data(&self, value: &NDArray) -> Result<()> {
        let mut p = self.0.lock();
        let known = p.shape.len() == value.ndim()
            && p.shape.iter().zip(value.shape().iter()).all(|(&a, &b)| a == 0 || a == b);
        if !known {
            return Err(Error::Invalid(format!(
                "parameter '{}' has shape {:?}, cannot set it from an array of shape {}",
                p.name,
                p.shape,
                value.shape()
            )));
        }
        let value = if value.dtype() == p.dtype { value.detach() } else { value.astype(p.dtype)? };
        let _pause = autograd::pause(false);
        match &p.data {
            Some(d) => d.assign(&value),
            None => {
                p.shape = value.shape().to_vec();
                let data = crate::imperative::invoke("_copy", &[value], &[])?.remove(0);
                if p.grad_req != GradReq::Null {
                    data.attach_grad_with(p.grad_req)?;
                }
                p.deferred = None;
                p.data = Some(data);
                Ok(())
            }
        }
    }

    /// Set the gradient buffer to zeros (MXNet's `zero_grad`).
    pub fn zero_grad(&self) -> Result<()> {
        if self.grad_req() == GradReq::Null || !self.is_initialized() {
            return Ok(());
        }
        let g = self.grad()?;
        g.assign_from(NDArray::zeros(g.shape().clone(), g.dtype(), g.context())?)
    }

    /// Convert to `dtype` (MXNet's `cast`), keeping the values.
    pub fn cast(&self, dtype: DType) -> Result<()> {
        let data = {
            let mut p = self.0.lock();
            p.dtype = dtype;
            p.data.take()
        };
        if let Some(d) = data {
            let cast = d.detach().astype(dtype)?;
            let mut p = self.0.lock();
            if p.grad_req != GradReq::Null {
                cast.attach_grad_with(p.grad_req)?;
            }
            p.data = Some(cast);
        }
        Ok(())
    }
}

/// Parameters by full name, in insertion order (MXNet's `ParameterDict`).
#[derive(Clone, Default, Debug)]
pub struct ParameterDict {
    items: Vec<(String, Parameter)>,
}

impl ParameterDict {
    pub fn new() -> Self {
        Self::default()
    }
    /// Add a parameter under its name; the same parameter twice is kept once, a different
    /// one under a name already taken is an error.
    pub fn insert(&mut self, param: Parameter) -> Result<()> {
        let name = param.name();
        if let Some((_, have)) = self.items.iter().find(|(n, _)| *n == name) {
            if have.ptr_eq(&param) {
                return Ok(());
            }
            return Err(Error::Invalid(format!("two different parameters are named '{name}'")));
        }
        self.items.push((name, param));
        Ok(())
    }
    pub fn get(&self, name: &str) -> Option<&Parameter> {
        self.items.iter().find(|(n, _)| n == name).map(|(_, p)| p)
    }
    pub fn len(&self) -> usize {
        self.items.len()
    }
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.items.iter().map(|(n, _)| n.as_str())
    }
    pub fn values(&self) -> impl Iterator<Item = &Parameter> {
        self.items.iter().map(|(_, p)| p)
    }
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Parameter)> {
        self.items.iter().map(|(n, p)| (n.as_str(), p))
    }
    /// Add every parameter of `other`.
    pub fn update(&mut self, other: &ParameterDict) -> Result<()> {
        for p in other.values() {
            self.insert(p.clone())?;
        }
        Ok(())
    }
    /// Initialize every parameter (see [`Parameter::initialize`]).
    pub fn initialize(
        &self,
        init: Option<Arc<dyn Initializer>>,
        ctx: Context,
        force_reinit: bool,
    ) -> Result<()> {
        for p in self.values() {
            p.initialize(init.clone(), ctx, force_reinit)?;
        }
        Ok(())
    }
    pub fn zero_grad(&self) -> Result<()> {
        self.values().try_for_each(Parameter::zero_grad)
    }
    /// Set `grad_req` on all (MXNet's `setattr('grad_req', ...)`).
    pub fn set_grad_req(&self, req: GradReq) -> Result<()> {
        for p in self.values() {
            if p.differentiable() {
                p.set_grad_req(req)?;
            }
        }
        Ok(())
    }
    pub fn set_lr_mult(&self, v: f64) {
        self.values().for_each(|p| p.set_lr_mult(v));
    }
    pub fn set_wd_mult(&self, v: f64) {
        self.values().for_each(|p| p.set_wd_mult(v));
    }

    /// Save as an NDArray dict file with names stripped of `strip_prefix`
    /// (MXNet's `ParameterDict.save`).
    pub fn save(&self, path: impl AsRef<std::path::Path>, strip_prefix: &str) -> Result<()> {
        let mut arrays = Vec::new();
        let mut names = Vec::new();
        for (name, p) in self.iter() {
            let short = name.strip_prefix(strip_prefix).ok_or_else(|| {
                Error::Invalid(format!(
                    "prefix '{strip_prefix}' is to be stripped before saving, but parameter '{name}' does not start with it"
                ))
            })?;
            arrays.push(p.data()?);
            names.push(short.to_string());
        }
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        crate::ndarray::save(path, &arrays, &refs)
    }

    /// Load an NDArray dict file (MXNet's `ParameterDict.load`): `arg:`/`aux:` prefixes
    /// (files written by `export`/`save_checkpoint`) are dropped and `restore_prefix` is
    /// put in front of each name.
    pub fn load(
        &self,
        path: impl AsRef<std::path::Path>,
        ctx: Context,
        allow_missing: bool,
        ignore_extra: bool,
        restore_prefix: &str,
    ) -> Result<()> {
        let path = path.as_ref();
        let (arrays, names) = crate::ndarray::load(path)?;
        if names.is_empty() && !arrays.is_empty() {
            return Err(Error::format(
                path.display().to_string(),
                "holds an unnamed array list, not parameters",
            ));
        }
        let mut loaded = BTreeMap::new();
        for (name, a) in names.into_iter().zip(arrays) {
            let short = name.strip_prefix("arg:").or_else(|| name.strip_prefix("aux:")).unwrap_or(&name);
            loaded.insert(format!("{restore_prefix}{short}"), a);
        }
        load_into(self.iter(), loaded, ctx, allow_missing, ignore_extra, &path.display().to_string())
    }
}

/// Assign loaded arrays to parameters by name; shared by `ParameterDict::load` and
/// `Block::load_parameters`.
pub(crate) fn load_into<'a>(
    params: impl Iterator<Item = (&'a str, &'a Parameter)>,
    mut loaded: BTreeMap<String, NDArray>,
    ctx: Context,
    allow_missing: bool,
    ignore_extra: bool,
    file: &str,
) -> Result<()> {
    let params: Vec<(&str, &Parameter)> = params.collect();
    if !allow_missing {
        if let Some((name, _)) = params.iter().find(|(n, _)| !loaded.contains_key(*n)) {
            return Err(Error::Invalid(format!(
                "parameter '{name}' is missing in file '{file}', which contains parameters: {}. \
                 Set allow_missing=true to ignore missing parameters.",
                brief(loaded.keys())
            )));
        }
    }
    for (name, p) in &params {
        let Some(value) = loaded.remove(*name) else { continue };
        if value.context() != ctx {
            return Err(Error::Unsupported(format!("loading parameters onto {ctx} is not supported yet")));
        }
        let want = p.shape();
        if want.len() != value.ndim()
            || want.iter().zip(value.shape().iter()).any(|(&a, &b)| a != 0 && a != b)
        {
            return Err(Error::Invalid(format!(
                "failed loading parameter '{name}' from '{file}': shape incompatible, expected {want:?} vs saved {}",
                value.shape()
            )));
        }
        p.set_data(&value)?;
    }
    if !ignore_extra && !loaded.is_empty() {
        return Err(Error::Invalid(format!(
            "parameters {} in file '{file}' are not present in the block; set ignore_extra=true to ignore them",
            brief(loaded.keys())
        )));
    }
    Ok(())
}

fn brief<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    if names.len() > 8 {
        format!("{}, ... ({} in all)", names[..8].join(", "), names.len())
    } else {
        names.join(", ")
    }
}
