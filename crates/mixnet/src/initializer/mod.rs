//! Parameter initializers (MXNet's `mx.init`): Uniform, Normal, Xavier, MSRAPrelu, Zero,
//! One, Constant here; Orthogonal, Bilinear, LSTMBias and Mixed in `structured`.
//!
//! Gluon calls [`Initializer::init_weight`] for every parameter: a parameter's own
//! initializer (`bias_initializer="zeros"`, BatchNorm's `ones`/`zeros`) wins over the one
//! given to `initialize`, exactly as MXNet passes it as the variable's `__init__`.
//! [`Initializer::init_by_name`] is the name-suffix dispatch MXNet's `Module` path uses
//! (`…weight` → the rule, `…bias`/`…beta` → 0, `…gamma` → 1, ...).
//!
//! Random initializers draw through the `_random_uniform` / `_random_normal` operators,
//! so `mixnet::random::seed` makes them reproducible.

mod structured;

pub use structured::{Bilinear, LSTMBias, Mixed, Orthogonal, RandType};

use std::fmt;
use std::sync::Arc;

use crate::{imperative, Context, DType, Error, NDArray, Result, Shape};

/// How a parameter's first value is made.
pub trait Initializer: Send + Sync + fmt::Debug {
    /// A fresh array of `shape`/`dtype` on `ctx` for the parameter named `name`.
    fn init_weight(&self, name: &str, shape: &Shape, dtype: DType, ctx: Context) -> Result<NDArray>;

    /// MXNet's `dumps()`: `["name", {attrs}]` as JSON.
    fn dumps(&self) -> String;

    /// MXNet's name-suffix dispatch (`Initializer.__call__` without `__init__`).
    fn init_by_name(&self, name: &str, shape: &Shape, dtype: DType, ctx: Context) -> Result<NDArray> {
        let fill = |v: f64| NDArray::full(shape.clone(), v, dtype, ctx);
        if name.ends_with("weight") {
            self.init_weight(name, shape, dtype, ctx)
        } else if name.ends_with("bias")
            || name.ends_with("beta")
            || name.ends_with("moving_mean")
            || name.ends_with("running_mean")
            || name.ends_with("moving_inv_var")
            || name.ends_with("min")
        {
            fill(0.0)
        } else if name.ends_with("gamma")
            || name.ends_with("moving_var")
            || name.ends_with("running_var")
            || name.ends_with("moving_avg")
            || name.ends_with("max")
        {
            fill(1.0)
        } else {
            Err(Error::Invalid(format!(
                "unknown initialization pattern for '{name}': names must end with weight, bias, gamma, \
                 beta, moving_mean, moving_var, min or max (or give the parameter its own initializer)"
            )))
        }
    }
}

fn check_float(name: &str, init: &str, dtype: DType) -> Result<()> {
    if dtype.is_float() {
        Ok(())
    } else {
        Err(Error::Invalid(format!("{init} initializer cannot fill parameter '{name}' of dtype {dtype}")))
    }
}

fn shape_attr(shape: &Shape) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    }
}

/// Uniform draws in `[low, high)` through `_random_uniform`.
pub fn random_uniform(low: f64, high: f64, shape: &Shape, dtype: DType, ctx: Context) -> Result<NDArray> {
    let (low, high, shape, dt) = (low.to_string(), high.to_string(), shape_attr(shape), dtype.name());
    let x = imperative::invoke(
        "_random_uniform",
        &[],
        &[("low", &low), ("high", &high), ("shape", &shape), ("dtype", dt), ("ctx", &ctx.to_string())],
    )?;
    Ok(x.into_iter().next().expect("one output"))
}

/// Normal draws with mean `loc` and standard deviation `scale` through `_random_normal`.
pub fn random_normal(loc: f64, scale: f64, shape: &Shape, dtype: DType, ctx: Context) -> Result<NDArray> {
    let (loc, scale, shape, dt) = (loc.to_string(), scale.to_string(), shape_attr(shape), dtype.name());
    let x = imperative::invoke(
        "_random_normal",
        &[],
        &[("loc", &loc), ("scale", &scale), ("shape", &shape), ("dtype", dt), ("ctx", &ctx.to_string())],
    )?;
    Ok(x.into_iter().next().expect("one output"))
}

/// All zeros (`mx.init.Zero`, alias `zeros`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Zero;
impl Initializer for Zero {
    fn init_weight(&self, _: &str, shape: &Shape, dtype: DType, ctx: Context) -> Result<NDArray> {
        NDArray::zeros(shape.clone(), dtype, ctx)
    }
    fn dumps(&self) -> String {
        r#"["zero", {}]"#.into()
    }
}

/// All ones (`mx.init.One`, alias `ones`).
#[derive(Clone, Copy, Debug, Default)]
pub struct One;
impl Initializer for One {
    fn init_weight(&self, _: &str, shape: &Shape, dtype: DType, ctx: Context) -> Result<NDArray> {
        NDArray::full(shape.clone(), 1.0, dtype, ctx)
    }
    fn dumps(&self) -> String {
        r#"["one", {}]"#.into()
    }
}

/// One value everywhere (`mx.init.Constant(value)`).
#[derive(Clone, Copy, Debug)]
pub struct Constant {
    pub value: f64,
}
impl Constant {
    pub fn new(value: f64) -> Self {
        Constant { value }
    }
}
impl Initializer for Constant {
    fn init_weight(&self, _: &str, shape: &Shape, dtype: DType, ctx: Context) -> Result<NDArray> {
        NDArray::full(shape.clone(), self.value, dtype, ctx)
    }
    fn dumps(&self) -> String {
        format!(r#"["constant", {{"value": {}}}]"#, self.value)
    }
}

/// Uniform in `[-scale, scale)` (`mx.init.Uniform(scale=0.07)`, Gluon's default).
#[derive(Clone, Copy, Debug)]
pub struct Uniform {
    pub scale: f64,
}
impl Uniform {
    pub fn new(scale: f64) -> Self {
        Uniform { scale }
    }
}
impl Default for Uniform {
    fn default() -> Self {
        Uniform { scale: 0.07 }
    }
}
impl Initializer for Uniform {
    fn init_weight(&self, name: &str, shape: &Shape, dtype: DType, ctx: Context) -> Result<NDArray> {
        check_float(name, "Uniform", dtype)?;
        random_uniform(-self.scale, self.scale, shape, dtype, ctx)
    }
    fn dumps(&self) -> String {
        format!(r#"["uniform", {{"scale": {}}}]"#, self.scale)
    }
}

/// Normal with mean 0 and standard deviation `sigma` (`mx.init.Normal(sigma=0.01)`).
#[derive(Clone, Copy, Debug)]
pub struct Normal {
    pub sigma: f64,
}
impl Normal {
    pub fn new(sigma: f64) -> Self {
        Normal { sigma }
    }
}
impl Default for Normal {
    fn default() -> Self {
        Normal { sigma: 0.01 }
    }
}
impl Initializer for Normal {
    fn init_weight(&self, name: &str, shape: &Shape, dtype: DType, ctx: Context) -> Result<NDArray> {
        check_float(name, "Normal", dtype)?;
        random_normal(0.0, self.sigma, shape, dtype, ctx)
    }
    fn dumps(&self) -> String {
        format!(r#"["normal", {{"sigma": {}}}]"#, self.sigma)
    }
}

/// Xavier's distribution: `uniform` or `gaussian`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RndType {
    Uniform,
    Gaussian,
}

/// Which fan Xavier divides by: `avg`, `in` or `out`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FactorType {
    Avg,
    In,
    Out,
}

impl FactorType {
    fn name(self) -> &'static str {
        match self {
            FactorType::Avg => "avg",
            FactorType::In => "in",
            FactorType::Out => "out",
        }
    }
}

/// Glorot/Xavier (`mx.init.Xavier(rnd_type="uniform", factor_type="avg", magnitude=3)`):
/// scale `sqrt(magnitude / factor)`, fans over `shape[0]`, `shape[1]` times the kernel size.
#[derive(Clone, Copy, Debug)]
pub struct Xavier {
    pub rnd_type: RndType,
    pub factor_type: FactorType,
    pub magnitude: f64,
}
impl Default for Xavier {
    fn default() -> Self {
        Xavier { rnd_type: RndType::Uniform, factor_type: FactorType::Avg, magnitude: 3.0 }
    }
}
impl Xavier {
    pub fn new(rnd_type: RndType, factor_type: FactorType, magnitude: f64) -> Self {
        Xavier { rnd_type, factor_type, magnitude }
    }

    /// The scale Xavier uses for `shape` (errors for fewer than 2 dimensions, as MXNet).
    pub fn scale(&self, name: &str, shape: &Shape) -> Result<f64> {
        if shape.len() < 2 {
            return Err(Error::Invalid(format!(
                "Xavier initializer cannot be applied to vector {name} of shape {shape}. It requires at least 2D."
            )));
        }
        let hw: usize = shape[2..].iter().product();
        let fan_in = (shape[1] * hw) as f64;
        let fan_out = (shape[0] * hw) as f64;
        let factor = match self.factor_type {
            FactorType::Avg => (fan_in + fan_out) / 2.0,
            FactorType::In => fan_in,
            FactorType::Out => fan_out,
        };
        if factor <= 0.0 {
            return Err(Error::Invalid(format!(
                "Xavier initializer: parameter {name} of shape {shape} has no elements"
            )));
        }
        Ok((self.magnitude / factor).sqrt())
    }
}
impl Initializer for Xavier {
    fn init_weight(&self, name: &str, shape: &Shape, dtype: DType, ctx: Context) -> Result<NDArray> {
        check_float(name, "Xavier", dtype)?;
        let scale = self.scale(name, shape)?;
        match self.rnd_type {
            RndType::Uniform => random_uniform(-scale, scale, shape, dtype, ctx),
            RndType::Gaussian => random_normal(0.0, scale, shape, dtype, ctx),
        }
    }
    fn dumps(&self) -> String {
        let rnd = if self.rnd_type == RndType::Uniform { "uniform" } else { "gaussian" };
        format!(
            r#"["xavier", {{"rnd_type": "{rnd}", "factor_type": "{}", "magnitude": {}}}]"#,
            self.factor_type.name(),
            self.magnitude
        )
    }
}

/// He/MSRA for PReLU nets (`mx.init.MSRAPrelu(factor_type="avg", slope=0.25)`): Xavier
/// gaussian with magnitude `2 / (1 + slope²)`.
#[derive(Clone, Copy, Debug)]
pub struct MSRAPrelu {
    pub factor_type: FactorType,
    pub slope: f64,
}
impl Default for MSRAPrelu {
    fn default() -> Self {
        MSRAPrelu { factor_type: FactorType::Avg, slope: 0.25 }
    }
}
impl Initializer for MSRAPrelu {
    fn init_weight(&self, name: &str, shape: &Shape, dtype: DType, ctx: Context) -> Result<NDArray> {
        let magnitude = 2.0 / (1.0 + self.slope * self.slope);
        Xavier::new(RndType::Gaussian, self.factor_type, magnitude).init_weight(name, shape, dtype, ctx)
    }
    fn dumps(&self) -> String {
        format!(r#"["msraprelu", {{"factor_type": "{}", "slope": {}}}]"#, self.factor_type.name(), self.slope)
    }
}

/// An initializer from MXNet's string alias: `zeros`, `ones`, `uniform`, `normal`,
/// `xavier`, `msraprelu`, `orthogonal`, `bilinear`, `lstmbias` (defaults for each).
pub fn create(name: &str) -> Result<Arc<dyn Initializer>> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "zeros" | "zero" => Arc::new(Zero),
        "ones" | "one" => Arc::new(One),
        "uniform" => Arc::new(Uniform::default()),
        "normal" => Arc::new(Normal::default()),
        "xavier" => Arc::new(Xavier::default()),
        "msraprelu" => Arc::new(MSRAPrelu::default()),
        "orthogonal" => Arc::new(Orthogonal::default()),
        "bilinear" => Arc::new(Bilinear),
        "lstmbias" => Arc::new(LSTMBias::default()),
        other => {
            return Err(Error::Invalid(format!(
                "unknown initializer '{other}' (known: zeros, ones, uniform, normal, xavier, msraprelu, \
                 orthogonal, bilinear, lstmbias)"
            )))
        }
    })
}
