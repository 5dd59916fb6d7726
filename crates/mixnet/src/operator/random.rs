//! Random sampling (MXNet's `src/operator/random/`): `_random_*` with scalar parameters
//! and a `shape`, their `_like` forms shaped like an input, `_sample_*` with one
//! distribution per element of parameter arrays, `_sample_multinomial` and `_shuffle`.
//!
//! Every op requests the context's generator ([`Resource::Random`]), so the engine runs
//! them one at a time in push order and draws come from one sequential stream: the same
//! seed gives the same numbers on every engine. The streams are not MXNet's (its
//! generator is not reproduced); the distributions are, with MXNet's samplers (Marsaglia
//! and Tsang gamma with MXNet's boost for `alpha < 1`, Knuth/Numerical-Recipes Poisson,
//! negative binomials as gamma–Poisson mixtures).

use std::sync::Arc;

use mixnet_kernels::Element;
use rand::rngs::StdRng;
use rand::Rng;

use crate::op::{Attrs, Blob, GradContext, OpContext, OpDef, Operator, Registry, Resource, TensorInfo};
use crate::shape::Shape;
use crate::{with_dtype, DType, Error, NDArray, Result};

/// A distribution with its parameters (as f64; MXNet's are `float`, rounded here).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Dist {
    Uniform,
    Normal,
    Gamma,
    Exponential,
    Poisson,
    NegBinomial,
    GenNegBinomial,
    RandInt,
}

impl Dist {
    fn of(name: &str) -> Option<Dist> {
        let base =
            name.trim_start_matches("_random_").trim_start_matches("_sample_").trim_end_matches("_like");
        Some(match base {
            "uniform" => Dist::Uniform,
            "normal" => Dist::Normal,
            "gamma" => Dist::Gamma,
            "exponential" => Dist::Exponential,
            "poisson" => Dist::Poisson,
            "negative_binomial" => Dist::NegBinomial,
            "generalized_negative_binomial" => Dist::GenNegBinomial,
            "randint" => Dist::RandInt,
            _ => return None,
        })
    }

    /// (attribute name, default) of the scalar parameters of `_random_*`.
    fn scalar_params(self) -> &'static [(&'static str, f64)] {
        match self {
            Dist::Uniform => &[("low", 0.0), ("high", 1.0)],
            Dist::Normal => &[("loc", 0.0), ("scale", 1.0)],
            Dist::Gamma => &[("alpha", 1.0), ("beta", 1.0)],
            Dist::Exponential | Dist::Poisson => &[("lam", 1.0)],
            Dist::NegBinomial => &[("k", 1.0), ("p", 1.0)],
            Dist::GenNegBinomial => &[("mu", 1.0), ("alpha", 1.0)],
            Dist::RandInt => &[("low", f64::NAN), ("high", f64::NAN)],
        }
    }

    /// Input names of `_sample_*`.
    fn array_params(self) -> &'static [&'static str] {
        match self {
            Dist::Uniform => &["low", "high"],
            Dist::Normal => &["mu", "sigma"],
            Dist::Gamma => &["alpha", "beta"],
            Dist::Exponential | Dist::Poisson => &["lam"],
            Dist::NegBinomial => &["k", "p"],
            Dist::GenNegBinomial => &["mu", "alpha"],
            Dist::RandInt => &[],
        }
    }

    /// MXNet's parameter checks of the scalar forms (a NaN parameter fails them).
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    fn check(self, op: &str, a: f64, b: f64) -> Result<()> {
        let fail = |m: &str| Err(Error::op(op, m.to_string()));
        match self {
            Dist::Uniform if a > b => fail("low must be less or equal to high in uniform distribution"),
            Dist::Normal if !(b > 0.0) => fail("scale parameter in gaussian has to be positive"),
            Dist::Gamma if !(a > 0.0 && b > 0.0) => fail("alpha and beta parameters in gamma distribution have to be positive"),
            Dist::Exponential if !(a > 0.0) => fail("lambda parameter in exponential distribution has to be positive"),
            Dist::Poisson if !(a >= 0.0) => fail("lambda parameter in poisson distribution has to be non-negative"),
            Dist::NegBinomial if !(a >= 0.0 && b >= 0.0) => fail("k and p parameters in negative binomial distribution have to be non-negative"),
            Dist::GenNegBinomial if !(a >= 0.0 && b >= 0.0) => fail("mu and alpha parameters in generalized negative binomial distribution have to be non-negative"),
            Dist::RandInt if a >= b => fail("low must be less than high in randint distribution"),
            _ => Ok(()),
        }
    }

    /// One draw (in f64; the float-typed samplers of MXNet compute Poisson in float).
    fn draw(self, rng: &mut StdRng, a: f64, b: f64) -> f64 {
        match self {
            Dist::Uniform => a + (b - a) * uniform(rng),
            Dist::Normal => a + b * normal(rng),
            Dist::Gamma => gamma(rng, a, b),
            Dist::Exponential => -(1.0 - uniform(rng)).ln() / a,
            Dist::Poisson => poisson(rng, a) as f64,
            Dist::NegBinomial => {
                let lambda = gamma(rng, a, (1.0 - b) / b);
                poisson(rng, lambda) as f64
            }
            Dist::GenNegBinomial => {
                let lambda = if b == 0.0 { a } else { gamma(rng, 1.0 / b, b * a) };
                poisson(rng, lambda) as f64
            }
            Dist::RandInt => {
                let (lo, hi) = (a as i64, b as i64);
                rng.gen_range(lo..hi) as f64
            }
        }
    }
}

/// Uniform on [0, 1).
fn uniform(rng: &mut StdRng) -> f64 {
    rng.gen::<f64>()
}

/// Standard normal (Marsaglia's polar method).
fn normal(rng: &mut StdRng) -> f64 {
    loop {
        let u = 2.0 * uniform(rng) - 1.0;
        let v = 2.0 * uniform(rng) - 1.0;
        let s = u * u + v * v;
        if s > 0.0 && s < 1.0 {
            return u * (-2.0 * s.ln() / s).sqrt();
        }
    }
}

/// MXNet's `SampleGamma`: shape `a`, scale `b`.
fn gamma(rng: &mut StdRng, a: f64, b: f64) -> f64 {
    let d = if a < 1.0 { a + 2.0 / 3.0 } else { a - 1.0 / 3.0 };
    let k = (9.0 * d).sqrt();
    let c = 1.0 / k;
    let sample = loop {
        let z = normal(rng);
        if z > -k {
            let x = 1.0 + c * z;
            let v = x * x * x;
            if (1.0 - uniform(rng)).ln() < 0.5 * z * z + d * (1.0 - v + v.ln()) {
                break d * v * b;
            }
        }
    };
    if a < 1.0 {
        sample * uniform(rng).powf(1.0 / a)
    } else {
        sample
    }
}

/// MXNet's `SamplePoisson`: multiplication below 12, Numerical Recipes' rejection above.
fn poisson(rng: &mut StdRng, lambda: f64) -> i64 {
    if lambda < 12.0 {
        let t = (-lambda).exp();
        let mut x = 0;
        let mut prod = uniform(rng);
        while prod > t {
            x += 1;
            prod *= uniform(rng);
        }
        x
    } else {
        let sq = (2.0 * lambda).sqrt();
        let loglambda = lambda.ln();
        let g = lambda * loglambda - lgamma(lambda + 1.0);
        loop {
            let (mut y, mut em);
            loop {
                y = (std::f64::consts::PI * uniform(rng)).tan();
                em = sq * y + lambda;
                if em >= 0.0 {
                    break;
                }
            }
            em = em.floor();
            let t = 0.9 * (1.0 + y * y) * (em * loglambda - lgamma(em + 1.0) - g).exp();
            if uniform(rng) <= t {
                return em as i64;
            }
        }
    }
}

fn lgamma(x: f64) -> f64 {
    use mixnet_kernels::unary::Real;
    x.lgamma()
}

/// What a sampling op draws from and into.
#[derive(Clone, Debug)]
enum Kind {
    /// `_random_*`: scalar parameters, `shape` and `dtype` attributes.
    Scalar {
        a: f64,
        b: f64,
        shape: Shape,
        dtype: DType,
    },
    /// `_random_*_like`: scalar parameters, the input's shape and dtype.
    Like {
        a: f64,
        b: f64,
    },
    /// `_sample_*`: parameter arrays; each element draws `shape` samples.
    Array {
        shape: Shape,
        dtype: Option<DType>,
    },
    Multinomial {
        shape: Shape,
        get_prob: bool,
        dtype: DType,
    },
    Shuffle,
}

/// A configured sampling operator.
pub struct RandomOp {
    name: &'static str,
    dist: Option<Dist>,
    kind: Kind,
}

/// The `shape` of a sampling op: MXNet (outside numpy mode) reads an empty shape or a 0
/// dimension as unknown, which fails; front ends pass `shape=(1,)` for a lone draw.
fn sample_shape(attrs: &mut Attrs<'_>, required: bool) -> Result<Shape> {
    let op = attrs.op();
    let dims = attrs.tuple("shape")?.unwrap_or_default();
    if dims.iter().any(|&d| d <= 0) || (required && dims.is_empty()) {
        return Err(Error::op(
            op,
            format!(
                "shape {dims:?} is not a known shape: legacy MXNet operators read an empty shape or a \
                 dimension <= 0 as unknown"
            ),
        ));
    }
    Ok(dims.iter().map(|&d| d as usize).collect())
}

fn float_dtype(op: &str, d: DType) -> Result<DType> {
    match d {
        DType::F16 | DType::F32 | DType::F64 => Ok(d),
        _ => Err(Error::op(op, format!("output dtype must be float16, float32 or float64, got {d}"))),
    }
}

fn build(name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    if name == "_shuffle" {
        return Ok(Arc::new(RandomOp { name, dist: None, kind: Kind::Shuffle }));
    }
    if name == "_sample_multinomial" {
        let shape = sample_shape(attrs, false)?;
        let get_prob = attrs.bool("get_prob", false)?;
        let dtype = attrs.dtype("dtype")?.unwrap_or(DType::I32);
        if !matches!(dtype, DType::U8 | DType::I32 | DType::F16 | DType::F32 | DType::F64) {
            return Err(Error::op(name, format!("dtype {dtype} is not supported")));
        }
        return Ok(Arc::new(RandomOp {
            name,
            dist: None,
            kind: Kind::Multinomial { shape, get_prob, dtype },
        }));
    }
    let dist = Dist::of(name).ok_or_else(|| Error::op(name, "not a sampling operator"))?;
    let kind = if name.starts_with("_sample_") {
        let shape = sample_shape(attrs, false)?;
        let dtype = attrs.dtype("dtype")?.map(|d| float_dtype(name, d)).transpose()?;
        Kind::Array { shape, dtype }
    } else {
        let mut p = [0.0; 2];
        for (slot, &(key, default)) in p.iter_mut().zip(dist.scalar_params()) {
            *slot = if dist == Dist::RandInt {
                attrs
                    .opt_int(key)?
                    .ok_or_else(|| Error::op(name, format!("required attribute {key} is missing")))?
                    as f64
            } else if key == "k" {
                attrs.int(key, default as i64)? as f64
            } else {
                attrs.float(key, default)? as f32 as f64
            };
        }
        if dist.scalar_params().len() == 1 {
            p[1] = 0.0;
        }
        dist.check(name, p[0], p[1])?;
        if name.ends_with("_like") {
            Kind::Like { a: p[0], b: p[1] }
        } else {
            let shape = sample_shape(attrs, true)?;
            attrs.get("ctx");
            let dtype = match (dist, attrs.dtype("dtype")?) {
                (Dist::RandInt, None) => DType::I32,
                (Dist::RandInt, Some(d @ (DType::I32 | DType::I64))) => d,
                (Dist::RandInt, Some(d)) => {
                    return Err(Error::op(name, format!("output dtype must be int32 or int64, got {d}")))
                }
                (_, None) => DType::F32,
                (_, Some(d)) => float_dtype(name, d)?,
            };
            Kind::Scalar { a: p[0], b: p[1], shape, dtype }
        }
    };
    Ok(Arc::new(RandomOp { name, dist: Some(dist), kind }))
}

/// Write `f(i)` for every element of `out`, converted to its dtype.
fn fill(out: &mut Blob<'_>, mut f: impl FnMut(usize) -> f64) -> Result<()> {
    with_dtype!(out.dtype(), T => {
        for (i, o) in out.slice_mut::<T>()?.iter_mut().enumerate() {
            *o = T::from_f64(f(i));
        }
    });
    Ok(())
}

fn values(b: &Blob<'_>) -> Result<Vec<f64>> {
    with_dtype!(b.dtype(), T => Ok(b.slice::<T>()?.iter().map(|x| x.to_f64()).collect()))
}

impl Operator for RandomOp {
    fn name(&self) -> &'static str {
        self.name
    }

    fn num_inputs(&self) -> usize {
        match (&self.kind, self.dist) {
            (Kind::Scalar { .. }, _) => 0,
            (Kind::Array { .. }, Some(d)) => d.array_params().len(),
            _ => 1,
        }
    }

    fn num_outputs(&self) -> usize {
        match self.kind {
            Kind::Multinomial { get_prob: true, .. } => 2,
            _ => 1,
        }
    }

    fn input_names(&self) -> Vec<String> {
        match (&self.kind, self.dist) {
            (Kind::Scalar { .. }, _) => vec![],
            (Kind::Array { .. }, Some(d)) => d.array_params().iter().map(|s| s.to_string()).collect(),
            _ => vec!["data".into()],
        }
    }

    fn resources(&self) -> &[Resource] {
        &[Resource::Random]
    }

    fn inplace(&self) -> &[(usize, usize)] {
        match self.kind {
            Kind::Shuffle => &[(0, 0)],
            _ => &[],
        }
    }

    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        match &self.kind {
            Kind::Scalar { shape, dtype, .. } => Ok(vec![TensorInfo::new(shape.clone(), *dtype)]),
            Kind::Like { .. } => {
                float_dtype(self.name, inputs[0].dtype)?;
                Ok(vec![inputs[0].clone()])
            }
            Kind::Shuffle => Ok(vec![inputs[0].clone()]),
            Kind::Array { shape, dtype } => {
                let first = &inputs[0];
                for (i, x) in inputs.iter().enumerate() {
                    if x.shape != first.shape || x.dtype != first.dtype {
                        return Err(Error::op(
                            self.name,
                            format!("parameter {i} is {x}, but parameter 0 is {first}; they must agree"),
                        ));
                    }
                }
                float_dtype(self.name, first.dtype).map_err(|_| {
                    Error::op(self.name, format!("parameters must be floating point, got {}", first.dtype))
                })?;
                let mut dims = first.shape.dims().to_vec();
                dims.extend_from_slice(shape);
                Ok(vec![TensorInfo::new(dims.as_slice(), dtype.unwrap_or(DType::F32))])
            }
            Kind::Multinomial { shape, get_prob, dtype } => {
                let x = &inputs[0];
                float_dtype(self.name, x.dtype)?;
                if x.shape.ndim() == 0 || x.shape[x.shape.ndim() - 1] == 0 {
                    return Err(Error::op(self.name, format!("data {} has no categories", x.shape)));
                }
                let out_shape: Shape = if x.shape.ndim() == 1 {
                    if shape.ndim() > 0 {
                        shape.clone()
                    } else {
                        Shape::new(&[1])
                    }
                } else {
                    let mut d = x.shape[..x.shape.ndim() - 1].to_vec();
                    d.extend_from_slice(shape);
                    Shape::new(&d)
                };
                let mut out = vec![TensorInfo::new(out_shape.clone(), *dtype)];
                if *get_prob {
                    out.push(TensorInfo::new(out_shape, x.dtype));
                }
                Ok(out)
            }
        }
    }

    fn compute(&self, ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let res = crate::resource::random(ctx.ctx);
        res.with_rng(|rng| self.sample(rng, inputs, outputs))
    }

    fn has_gradient(&self) -> bool {
        !matches!(self.kind, Kind::Multinomial { get_prob: true, .. } | Kind::Shuffle)
    }

    /// Sampling ops pass no gradient to their inputs (MXNet's `MakeZeroGradNodes`).
    /// `_shuffle` has none in MXNet.
    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        ctx.inputs
            .iter()
            .map(|x| NDArray::zeros(x.shape().clone(), x.dtype(), x.context()).map(Some))
            .collect()
    }
}

impl RandomOp {
    fn sample(&self, rng: &mut StdRng, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        match &self.kind {
            Kind::Scalar { a, b, .. } | Kind::Like { a, b } => {
                let d = self.dist.expect("distribution ops have one");
                fill(&mut outputs[0], |_| d.draw(rng, *a, *b))
            }
            Kind::Array { .. } => {
                let d = self.dist.expect("distribution ops have one");
                let pa = values(&inputs[0])?;
                let pb = if inputs.len() > 1 { values(&inputs[1])? } else { vec![0.0; pa.len()] };
                let per = outputs[0].numel() / pa.len().max(1);
                let name = self.name;
                // MXNet checks each parameter inside the kernel; here a bad one is an error.
                for (&a, &b) in pa.iter().zip(&pb) {
                    d.check(name, a, b)?;
                }
                fill(&mut outputs[0], |i| d.draw(rng, pa[i / per], pb[i / per]))
            }
            Kind::Shuffle => {
                let x = &inputs[0];
                let rows = x.shape().first().copied().unwrap_or(1).max(1);
                let row_bytes = x.numel() * x.dtype().size() / rows;
                let src = x.bytes()?.to_vec();
                // Fisher–Yates over row indices.
                let mut perm: Vec<usize> = (0..rows).collect();
                for i in (1..rows).rev() {
                    let j = rng.gen_range(0..=i);
                    perm.swap(i, j);
                }
                let out = outputs[0].bytes_mut()?;
                for (dst, &s) in perm.iter().enumerate() {
                    out[dst * row_bytes..(dst + 1) * row_bytes]
                        .copy_from_slice(&src[s * row_bytes..(s + 1) * row_bytes]);
                }
                Ok(())
            }
            Kind::Multinomial { get_prob, .. } => {
                let dist = values(&inputs[0])?;
                let k = *inputs[0].shape().last().expect("checked in infer");
                let n = dist.len() / k;
                let m = outputs[0].numel() / n.max(1);
                let mut idx = vec![0usize; n * m];
                for i in 0..n {
                    // Cumulative sums in double, stored as float, as MXNet does.
                    let mut acc = 0.0f64;
                    let cum: Vec<f32> = dist[i * k..(i + 1) * k]
                        .iter()
                        .map(|&p| {
                            acc += p;
                            acc as f32
                        })
                        .collect();
                    for j in 0..m {
                        let u = rng.gen::<f32>();
                        // First category whose cumulative probability reaches u.
                        idx[i * m + j] = cum.partition_point(|&c| c < u).min(k - 1);
                    }
                }
                fill(&mut outputs[0], |i| idx[i] as f64)?;
                if *get_prob {
                    let per = m;
                    fill(&mut outputs[1], |i| (dist[(i / per) * k + idx[i]] as f32).ln() as f64)?;
                }
                Ok(())
            }
        }
    }
}

pub(crate) fn register(r: &mut Registry) {
    const NAMES: &[(&str, &[&str])] = &[
        ("_random_uniform", &["uniform", "random_uniform"]),
        ("_random_normal", &["normal", "random_normal"]),
        ("_random_gamma", &["random_gamma"]),
        ("_random_exponential", &["random_exponential"]),
        ("_random_poisson", &["random_poisson"]),
        ("_random_negative_binomial", &["random_negative_binomial"]),
        ("_random_generalized_negative_binomial", &["random_generalized_negative_binomial"]),
        ("_random_randint", &["random_randint"]),
        ("_random_uniform_like", &[]),
        ("_random_normal_like", &[]),
        ("_random_gamma_like", &[]),
        ("_random_exponential_like", &[]),
        ("_random_poisson_like", &[]),
        ("_random_negative_binomial_like", &[]),
        ("_random_generalized_negative_binomial_like", &[]),
        ("_sample_uniform", &["sample_uniform"]),
        ("_sample_normal", &["sample_normal"]),
        ("_sample_gamma", &["sample_gamma"]),
        ("_sample_exponential", &["sample_exponential"]),
        ("_sample_poisson", &["sample_poisson"]),
        ("_sample_negative_binomial", &["sample_negative_binomial"]),
        ("_sample_generalized_negative_binomial", &["sample_generalized_negative_binomial"]),
        ("_sample_multinomial", &["sample_multinomial"]),
        ("_shuffle", &["shuffle"]),
    ];
    for &(name, aliases) in NAMES {
        r.register(OpDef { name, aliases, build });
    }
}
