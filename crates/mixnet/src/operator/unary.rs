//! Elementwise unary operators: MXNet's legacy math and activation functions (`exp`,
//! `relu`, `hard_sigmoid`, ...), the identity-forward ops (`_copy`, `BlockGrad`,
//! `make_loss`), `clip` and `Cast`. One table of functions, one operator type; the kernels
//! crate reproduces MXNet's compute types and C++ conversions per dtype.

use std::sync::Arc;

use mixnet_kernels::unary::{cast, cast_to_bool, clip, unary, UnaryFn};

use crate::op::{Attrs, Blob, OpContext, OpDef, Operator, Registry, TensorInfo};
use crate::{with_dtype, DType, Error, Result};

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
const IDENTITY: &[(&str, &[&str])] =
    &[("_copy", &["identity"]), ("BlockGrad", &["stop_gradient"]), ("make_loss", &[])];

#[derive(Clone, Copy, Debug)]
enum Kind {
    Math(UnaryFn),
    Identity,
    Clip { a_min: f32, a_max: f32 },
    Cast(DType),
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
    } else if name == "Cast" {
        let dtype = attrs.dtype("dtype")?;
        Kind::Cast(dtype.ok_or_else(|| Error::op(name, "required attribute dtype is missing"))?)
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
            Kind::Clip { .. } | Kind::Cast(_) => &[],
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
            _ => x.dtype,
        };
        Ok(vec![TensorInfo { shape: x.shape.clone(), dtype }])
    }

    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob], outputs: &mut [Blob]) -> Result<()> {
        let (x, out) = (&inputs[0], &mut outputs[0]);
        match self.kind {
            Kind::Identity | Kind::Cast(_) if x.dtype() == out.dtype() => {
                with_dtype!(out.dtype(), T => out.slice_mut::<T>()?.copy_from_slice(x.slice::<T>()?))
            }
            Kind::Math(f) => with_dtype!(out.dtype(), T => unary(f, x.slice::<T>()?, out.slice_mut::<T>()?)),
            Kind::Clip { a_min, a_max } => {
                with_dtype!(out.dtype(), T => clip(x.slice::<T>()?, out.slice_mut::<T>()?, a_min, a_max))
            }
            Kind::Cast(DType::Bool) => {
                with_dtype!(x.dtype(), S => cast_to_bool(x.slice::<S>()?, out.slice_mut::<u8>()?))
            }
            // The output dtype is Cast's target.
            Kind::Identity | Kind::Cast(_) => with_dtype!(out.dtype(), D => {
                let out = out.slice_mut::<D>()?;
                with_dtype!(x.dtype(), S => cast::<S, D>(x.slice::<S>()?, out))
            }),
        }
        Ok(())
    }
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
}
