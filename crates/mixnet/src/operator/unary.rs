//! Elementwise unary operators: MXNet's legacy math and activation functions (`exp`,
//! `relu`, `hard_sigmoid`, ...), the identity-forward ops (`_copy`, `BlockGrad`,
//! `make_loss`), `clip` and `Cast`. One table of functions, one operator type; the kernels
//! crate reproduces MXNet's compute types and C++ conversions per dtype.

use std::sync::Arc;

use mixnet_kernels::unary::{cast, cast_to_bool, clip, unary, UnaryFn};

use super::grad::{call, cast as cast_to, elem, ones_like, un, zeros_like, ElemFn};
use crate::op::{Attrs, Blob, GradContext, OpContext, OpDef, Operator, Registry, TensorInfo};
use crate::{with_dtype, DType, Error, NDArray, Result};

// (canonical name, aliases, function). `_np*`/`_sparse_*` aliases are not registered.
const MATH: &[(&str, &[&str], UnaryFn)] = &[
    ("abs", &[], UnaryFn::Abs),
    ("arccos", &[], UnaryFn::Arccos),
    ("arccosh", &[], UnaryFn::Arccosh),
    ("arcsin", &[], UnaryFn::Arcsin),
    ("arcsinh", &[], UnaryFn::Arcsinh),
    ("arctan", &[], UnaryFn::Arctan),
    ("arctanh", &[], UnaryFn::Arctanh),
    ("cbrt", &[], UnaryFn::Cbrt),
    ("ceil", &[], UnaryFn::Ceil),
    ("cos", &[], UnaryFn::Cos),
    ("cosh", &[], UnaryFn::Cosh),
    ("degrees", &[], UnaryFn::Degrees),
    ("erf", &[], UnaryFn::Erf),
    ("erfinv", &[], UnaryFn::Erfinv),
    ("exp", &[], UnaryFn::Exp),
    ("expm1", &[], UnaryFn::Expm1),
    ("fix", &[], UnaryFn::Fix),
    ("floor", &[], UnaryFn::Floor),
    ("gamma", &[], UnaryFn::Gamma),
    ("gammaln", &[], UnaryFn::Gammaln),
    ("log", &[], UnaryFn::Log),
    ("log10", &[], UnaryFn::Log10),
    ("log1p", &[], UnaryFn::Log1p),
    ("log2", &[], UnaryFn::Log2),
    ("negative", &[], UnaryFn::Negative),
    ("radians", &[], UnaryFn::Radians),
    ("rcbrt", &[], UnaryFn::Rcbrt),
    ("reciprocal", &[], UnaryFn::Reciprocal),
    ("rint", &[], UnaryFn::Rint),
    ("round", &[], UnaryFn::Round),
    ("rsqrt", &[], UnaryFn::Rsqrt),
    ("sign", &[], UnaryFn::Sign),
    ("sin", &[], UnaryFn::Sin),
    ("sinh", &[], UnaryFn::Sinh),
    ("sqrt", &[], UnaryFn::Sqrt),
    ("square", &[], UnaryFn::Square),
    ("tan", &[], UnaryFn::Tan),
    ("tanh", &[], UnaryFn::Tanh),
    ("trunc", &[], UnaryFn::Trunc),
    ("logical_not", &[], UnaryFn::LogicalNot),
    ("relu", &[], UnaryFn::Relu),
    ("sigmoid", &[], UnaryFn::Sigmoid),
    ("hard_sigmoid", &[], UnaryFn::HardSigmoid { alpha: 0.2, beta: 0.5 }),
    ("softsign", &[], UnaryFn::Softsign),
];

/// Forward is a copy; they differ in their gradients (copy, zero, ones).
const IDENTITY: &[(&str, &[&str])] = &[
    ("_copy", &["identity"]),
    ("BlockGrad", &["stop_gradient"]),
    ("make_loss", &[]),
    // Copies to another device; with one device kind they are copies.
    ("_copyto", &[]),
    ("_CrossDeviceCopy", &[]),
];

#[derive(Clone, Copy, Debug)]
enum Kind {
    Math(UnaryFn),
    Identity,
    Clip {
        a_min: f32,
        a_max: f32,
    },
    Cast(DType),
    /// `amp_cast`: casts float16/bfloat16/float32 inputs to the dtype, passes others.
    AmpCast(DType),
}

/// A configured unary operator.
pub struct UnaryOp {
    name: &'static str,
    kind: Kind,
}

/// A required `float` attribute (MXNet's `real_t` fields parse as float).
fn required_f32(attrs: &mut Attrs<'_>, key: &str) -> Result<f32> {
    let op = attrs.op();
    let v = attrs.opt_float(key)?;
    v.map(|v| v as f32).ok_or_else(|| Error::op(op, format!("required attribute {key} is missing")))
}

fn build(name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    let kind = if let Some(e) = MATH.iter().find(|e| e.0 == name) {
        match e.2 {
            UnaryFn::HardSigmoid { alpha, beta } => Kind::Math(UnaryFn::HardSigmoid {
                alpha: attrs.float("alpha", alpha as f64)? as f32,
                beta: attrs.float("beta", beta as f64)? as f32,
            }),
            f => Kind::Math(f),
        }
    } else if IDENTITY.iter().any(|e| e.0 == name) {
        Kind::Identity
    } else if name == "clip" {
        Kind::Clip { a_min: required_f32(attrs, "a_min")?, a_max: required_f32(attrs, "a_max")? }
    } else if name == "Cast" || name == "amp_cast" {
        let dtype = attrs.dtype("dtype")?;
        let dtype = dtype.ok_or_else(|| Error::op(name, "required attribute dtype is missing"))?;
        if name == "Cast" {
            Kind::Cast(dtype)
        } else {
            Kind::AmpCast(dtype)
        }
    } else {
        return Err(Error::op(name, "not a unary operator"));
    };
    Ok(Arc::new(UnaryOp { name, kind }))
}

impl Operator for UnaryOp {
    fn name(&self) -> &'static str {
        self.name
    }

    fn num_inputs(&self) -> usize {
        1
    }

    fn inplace(&self) -> &[(usize, usize)] {
        match self.kind {
            Kind::Math(_) | Kind::Identity => &[(0, 0)],
            // MXNet declares none for clip; Cast may change the element size.
            Kind::Clip { .. } | Kind::Cast(_) | Kind::AmpCast(_) => &[],
        }
    }

    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        let x = &inputs[0];
        let dtype = match self.kind {
            Kind::Math(UnaryFn::HardSigmoid { .. })
                if !matches!(x.dtype, DType::F32 | DType::F64 | DType::F16) =>
            {
                return Err(Error::op(
                    self.name,
                    format!("supports float32, float64 and float16 only, got {}", x.dtype),
                ));
            }
            Kind::Math(_) | Kind::Clip { .. } if x.dtype == DType::Bool => {
                return Err(Error::op(
                    self.name,
                    "bool arrays are not supported by this legacy operator; Cast first",
                ));
            }
            Kind::Cast(to) => to,
            Kind::AmpCast(to) if matches!(x.dtype, DType::F32 | DType::F16 | DType::BF16) => to,
            _ => x.dtype,
        };
        Ok(vec![TensorInfo { shape: x.shape.clone(), dtype }])
    }

    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob], outputs: &mut [Blob]) -> Result<()> {
        let (x, out) = (&inputs[0], &mut outputs[0]);
        match self.kind {
            Kind::Identity | Kind::Cast(_) | Kind::AmpCast(_) if x.dtype() == out.dtype() => {
                with_dtype!(out.dtype(), T => out.slice_mut::<T>()?.copy_from_slice(x.slice::<T>()?))
            }
            Kind::Math(f) => with_dtype!(out.dtype(), T => unary(f, x.slice::<T>()?, out.slice_mut::<T>()?)),
            Kind::Clip { a_min, a_max } => {
                with_dtype!(out.dtype(), T => clip(x.slice::<T>()?, out.slice_mut::<T>()?, a_min, a_max))
            }
            Kind::Cast(DType::Bool) | Kind::AmpCast(DType::Bool) => {
                with_dtype!(x.dtype(), S => cast_to_bool(x.slice::<S>()?, out.slice_mut::<u8>()?))
            }
            // The output dtype is Cast's target.
            Kind::Identity | Kind::Cast(_) | Kind::AmpCast(_) => with_dtype!(out.dtype(), D => {
                let out = out.slice_mut::<D>()?;
                with_dtype!(x.dtype(), S => cast::<S, D>(x.slice::<S>()?, out))
            }),
        }
        Ok(())
    }

    fn has_gradient(&self) -> bool {
        true
    }

    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let (x, y, g) = (&ctx.inputs[0], &ctx.outputs[0], &ctx.out_grads[0]);
        let d = match self.kind {
            Kind::Math(f) => math_grad(f, x, y, g)?,
            Kind::Identity => match self.name {
                "BlockGrad" => zeros_like(x)?,
                // MXNet's make_loss: ones, whatever the head gradient.
                "make_loss" => ones_like(x)?,
                _ => g.clone(),
            },
            // Passes where a_min <= x <= a_max (MXNet's clip_grad).
            Kind::Clip { a_min, a_max } => {
                let lo = call(
                    "_greater_equal_scalar",
                    std::slice::from_ref(x),
                    &[("scalar", &a_min.to_string())],
                )?;
                let hi =
                    call("_lesser_equal_scalar", std::slice::from_ref(x), &[("scalar", &a_max.to_string())])?;
                (g * &(&lo * &hi)?)?
            }
            Kind::Cast(_) | Kind::AmpCast(_) => cast_to(g, x.dtype())?,
        };
        Ok(vec![Some(d)])
    }
}

/// `amp_multicast`: casts its float16/bfloat16/float32 inputs to one type — the widest of
/// them (float32 if any is float32), or with `cast_narrow` the narrowest — as MXNet's
/// `AMPMultiCastType`; other inputs pass through. Gradients cast back.
pub struct AmpMultiCast {
    n: usize,
    narrow: bool,
}

fn build_multicast(name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    let n = match attrs.opt_int("num_outputs")? {
        Some(n) if n >= 1 => n as usize,
        _ => return Err(Error::op(name, "num_outputs must be at least 1")),
    };
    Ok(Arc::new(AmpMultiCast { n, narrow: attrs.bool("cast_narrow", false)? }))
}

fn amp_float(d: DType) -> bool {
    matches!(d, DType::F32 | DType::F16 | DType::BF16)
}

impl Operator for AmpMultiCast {
    fn name(&self) -> &'static str {
        "amp_multicast"
    }
    fn num_inputs(&self) -> usize {
        self.n
    }
    fn num_outputs(&self) -> usize {
        self.n
    }
    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        let mut target = if self.narrow { DType::F32 } else { inputs[0].dtype };
        for x in inputs {
            match (self.narrow, x.dtype) {
                (false, DType::F32) => target = DType::F32,
                (true, DType::F16) => target = DType::F16,
                (true, DType::BF16) => target = DType::BF16,
                _ => {}
            }
        }
        Ok(inputs
            .iter()
            .map(|x| TensorInfo {
                shape: x.shape.clone(),
                dtype: if amp_float(x.dtype) { target } else { x.dtype },
            })
            .collect())
    }
    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob], outputs: &mut [Blob]) -> Result<()> {
        for (x, out) in inputs.iter().zip(outputs.iter_mut()) {
            with_dtype!(out.dtype(), D => {
                let o = out.slice_mut::<D>()?;
                with_dtype!(x.dtype(), S => cast::<S, D>(x.slice::<S>()?, o))
            });
        }
        Ok(())
    }
    fn has_gradient(&self) -> bool {
        true
    }
    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        ctx.inputs.iter().zip(ctx.out_grads).map(|(x, g)| cast_to(g, x.dtype()).map(Some)).collect()
    }
}

fn scalar_op(op: &str, x: &NDArray, s: f64) -> Result<NDArray> {
    call(op, std::slice::from_ref(x), &[("scalar", &s.to_string())])
}

/// `d out / d x` times `g` for each math function, as MXNet's `_backward_*` kernels
/// define it (some from the input, some from the output), written with operators.
fn math_grad(f: UnaryFn, x: &NDArray, y: &NDArray, g: &NDArray) -> Result<NDArray> {
    use std::f64::consts::{LN_10, LN_2, PI};
    let sq = |a: &NDArray| un("square", a);
    Ok(match f {
        UnaryFn::Abs => (g * &un("sign", x)?)?,
        UnaryFn::Arccos => (&(-g)? / &un("sqrt", &(1.0 - &sq(x)?)?)?)?,
        UnaryFn::Arccosh => (g / &un("sqrt", &(&sq(x)? - 1.0)?)?)?,
        UnaryFn::Arcsin => (g / &un("sqrt", &(1.0 - &sq(x)?)?)?)?,
        UnaryFn::Arcsinh => (g / &un("sqrt", &(&sq(x)? + 1.0)?)?)?,
        UnaryFn::Arctan => (g / &(&sq(x)? + 1.0)?)?,
        UnaryFn::Arctanh => (g / &(1.0 - &sq(x)?)?)?,
        UnaryFn::Cbrt => (g / &(&sq(y)? * 3.0)?)?,
        // Piecewise constant: MXNet's zero gradient (MakeZeroGradNodes, sign_grad = 0).
        UnaryFn::Ceil
        | UnaryFn::Fix
        | UnaryFn::Floor
        | UnaryFn::Rint
        | UnaryFn::Round
        | UnaryFn::Trunc
        | UnaryFn::Sign
        | UnaryFn::LogicalNot => zeros_like(x)?,
        UnaryFn::Cos => (g * &(-&un("sin", x)?)?)?,
        UnaryFn::Cosh => (g * &un("sinh", x)?)?,
        UnaryFn::Degrees => (g * (180.0 / PI))?,
        UnaryFn::Erf => (g * &(&un("exp", &(-&sq(x)?)?)? * (2.0 / PI.sqrt()))?)?,
        UnaryFn::Erfinv => (g * &(&un("exp", &sq(y)?)? * (0.5 * PI.sqrt()))?)?,
        UnaryFn::Exp => (g * y)?,
        UnaryFn::Expm1 => (g * &un("exp", x)?)?,
        UnaryFn::Gamma => (g * &elem(ElemFn::GammaGrad, &[x.clone(), y.clone()])?)?,
        UnaryFn::Gammaln => (g * &elem(ElemFn::Digamma, std::slice::from_ref(x))?)?,
        UnaryFn::Log => (g / x)?,
        UnaryFn::Log10 => (g / &(x * LN_10)?)?,
        UnaryFn::Log1p => (g / &(x + 1.0)?)?,
        UnaryFn::Log2 => (g / &(x * LN_2)?)?,
        UnaryFn::Negative => (-g)?,
        UnaryFn::Radians => (g * (PI / 180.0))?,
        // -1 / (3 cbrt(x) x)
        UnaryFn::Rcbrt => (&(-g)? / &(&(&un("cbrt", x)? * x)? * 3.0)?)?,
        UnaryFn::Reciprocal => (&(-g)? / &sq(x)?)?,
        // -0.5 / (sqrt(x) x)
        UnaryFn::Rsqrt => (&(g * -0.5)? / &(&un("sqrt", x)? * x)?)?,
        UnaryFn::Sin => (g * &un("cos", x)?)?,
        UnaryFn::Sinh => (g * &un("cosh", x)?)?,
        UnaryFn::Sqrt => (&(g * 0.5)? / y)?,
        UnaryFn::Square => (g * &(x * 2.0)?)?,
        UnaryFn::Tan => (g * &(&sq(y)? + 1.0)?)?,
        UnaryFn::Tanh => (g * &(1.0 - &sq(y)?)?)?,
        UnaryFn::Relu => (g * &scalar_op("_greater_scalar", y, 0.0)?)?,
        UnaryFn::Sigmoid => (g * &(y * &(1.0 - y)?)?)?,
        // alpha where 0 < alpha x + beta < 1 (MXNet's hard_sigmoid_backward).
        UnaryFn::HardSigmoid { alpha, beta } => {
            let t = (&(x * alpha as f64)? + beta as f64)?;
            let inside = (&scalar_op("_greater_scalar", &t, 0.0)? * &scalar_op("_lesser_scalar", &t, 1.0)?)?;
            (g * &(&inside * alpha as f64)?)?
        }
        UnaryFn::Softsign => (g / &sq(&(&un("abs", x)? + 1.0)?)?)?,
    })
}

pub(crate) fn register(r: &mut Registry) {
    for e in MATH {
        r.register(OpDef { name: e.0, aliases: e.1, build });
    }
    for e in IDENTITY {
        r.register(OpDef { name: e.0, aliases: e.1, build });
    }
    r.register(OpDef { name: "clip", aliases: &[], build });
    r.register(OpDef { name: "Cast", aliases: &["cast"], build });
    r.register(OpDef { name: "amp_cast", aliases: &[], build });
    r.register(OpDef { name: "amp_multicast", aliases: &[], build: build_multicast });
}
