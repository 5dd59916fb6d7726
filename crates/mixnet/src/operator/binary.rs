//! Binary arithmetic and comparison: same-shape (`elemwise_add`, `_mod`, `_greater`, ...),
//! broadcasting (`broadcast_add`, ...) and tensor–scalar (`_plus_scalar`, `_rminus_scalar`,
//! ...). One table of functions serves all three forms.

use smallvec::SmallVec;
use std::sync::Arc;

use mixnet_kernels::elementwise::{broadcast_shape, broadcast_strides, broadcast_zip, map, zip};
use mixnet_kernels::Element;

use crate::op::{Attrs, Blob, GradContext, OpContext, Operator, Registry, TensorInfo};
use crate::NDArray;
use crate::{with_dtype, DType, Error, Result};

/// The elementwise function of a binary operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryFn {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Power,
    Maximum,
    Minimum,
    Hypot,
    Equal,
    NotEqual,
    Greater,
    GreaterEqual,
    Lesser,
    LesserEqual,
    LogicalAnd,
    LogicalOr,
    LogicalXor,
}

/// Python-style modulo as MXNet's `mshadow_op::mod`: the result takes the divisor's sign,
/// and a zero divisor gives 0.
fn modulo(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        return 0.0;
    }
    let r = a % b;
    if r != 0.0 && ((r < 0.0) != (b < 0.0)) {
        r + b
    } else {
        r
    }
}

fn truth<T: Element>(c: bool) -> T {
    if c {
        T::ONE
    } else {
        T::ZERO
    }
}

impl BinaryFn {
    #[inline(always)]
    fn apply<T: Element>(self, a: T, b: T) -> T {
        match self {
            BinaryFn::Add => a.add(b),
            BinaryFn::Sub => a.sub(b),
            BinaryFn::Mul => a.mul(b),
            BinaryFn::Div => a.div(b),
            BinaryFn::Mod => T::from_f64(modulo(a.to_f64(), b.to_f64())),
            BinaryFn::Power => T::from_f64(a.to_f64().powf(b.to_f64())),
            // NaN-propagating, as MXNet's maximum/minimum.
            BinaryFn::Maximum => {
                if a > b || a.is_nan() {
                    a
                } else {
                    b
                }
            }
            BinaryFn::Minimum => {
                if a < b || a.is_nan() {
                    a
                } else {
                    b
                }
            }
            BinaryFn::Hypot => T::from_f64(a.to_f64().hypot(b.to_f64())),
            BinaryFn::Equal => truth(a == b),
            BinaryFn::NotEqual => truth(a != b),
            BinaryFn::Greater => truth(a > b),
            BinaryFn::GreaterEqual => truth(a >= b),
            BinaryFn::Lesser => truth(a < b),
            BinaryFn::LesserEqual => truth(a <= b),
            BinaryFn::LogicalAnd => truth(a != T::ZERO && b != T::ZERO),
            BinaryFn::LogicalOr => truth(a != T::ZERO || b != T::ZERO),
            BinaryFn::LogicalXor => truth((a != T::ZERO) != (b != T::ZERO)),
        }
    }
}

/// How the two operands meet.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Form {
    /// Shapes must be equal (`elemwise_*`, `_mod`, ...; MXNet's Symbol `+`).
    Elemwise,
    /// numpy broadcasting (`broadcast_*`; MXNet's NDArray `+`).
    Broadcast,
    /// Tensor and a scalar attribute; `reverse` puts the scalar on the left.
    Scalar { scalar: f64, reverse: bool },
}

/// A configured binary operator.
pub struct BinaryOp {
    name: &'static str,
    func: BinaryFn,
    form: Form,
}

// (canonical name, aliases, function) for each form.
const ELEMWISE: &[(&str, &[&str], BinaryFn)] = &[
    ("elemwise_add", &["_Plus", "_add", "_plus"], BinaryFn::Add),
    ("_grad_add", &[], BinaryFn::Add),
    ("elemwise_sub", &["_Minus", "_minus", "_sub"], BinaryFn::Sub),
    ("elemwise_mul", &["_Mul", "_mul"], BinaryFn::Mul),
    ("elemwise_div", &["_Div", "_div"], BinaryFn::Div),
    ("_mod", &["_Mod"], BinaryFn::Mod),
    ("_power", &["_Power"], BinaryFn::Power),
    ("_maximum", &["_Maximum"], BinaryFn::Maximum),
    ("_minimum", &["_Minimum"], BinaryFn::Minimum),
    ("_hypot", &["_Hypot"], BinaryFn::Hypot),
    ("_equal", &["_Equal"], BinaryFn::Equal),
    ("_not_equal", &["_Not_Equal"], BinaryFn::NotEqual),
    ("_greater", &["_Greater"], BinaryFn::Greater),
    ("_greater_equal", &["_Greater_Equal"], BinaryFn::GreaterEqual),
    ("_lesser", &["_Lesser"], BinaryFn::Lesser),
    ("_lesser_equal", &["_Lesser_Equal"], BinaryFn::LesserEqual),
    ("_logical_and", &["_Logical_And"], BinaryFn::LogicalAnd),
    ("_logical_or", &["_Logical_Or"], BinaryFn::LogicalOr),
    ("_logical_xor", &["_Logical_Xor"], BinaryFn::LogicalXor),
];

const BROADCAST: &[(&str, &[&str], BinaryFn)] = &[
    ("broadcast_add", &["broadcast_plus"], BinaryFn::Add),
    ("broadcast_sub", &["broadcast_minus"], BinaryFn::Sub),
    ("broadcast_mul", &[], BinaryFn::Mul),
    ("broadcast_div", &[], BinaryFn::Div),
    ("broadcast_mod", &[], BinaryFn::Mod),
    ("broadcast_power", &[], BinaryFn::Power),
    ("broadcast_maximum", &[], BinaryFn::Maximum),
    ("broadcast_minimum", &[], BinaryFn::Minimum),
    ("broadcast_hypot", &[], BinaryFn::Hypot),
    ("broadcast_equal", &[], BinaryFn::Equal),
    ("broadcast_not_equal", &[], BinaryFn::NotEqual),
    ("broadcast_greater", &[], BinaryFn::Greater),
    ("broadcast_greater_equal", &[], BinaryFn::GreaterEqual),
    ("broadcast_lesser", &[], BinaryFn::Lesser),
    ("broadcast_lesser_equal", &[], BinaryFn::LesserEqual),
    ("broadcast_logical_and", &[], BinaryFn::LogicalAnd),
    ("broadcast_logical_or", &[], BinaryFn::LogicalOr),
    ("broadcast_logical_xor", &[], BinaryFn::LogicalXor),
];

// (name, aliases, function, scalar on the left)
const SCALAR: &[(&str, &[&str], BinaryFn, bool)] = &[
    ("_plus_scalar", &["_PlusScalar"], BinaryFn::Add, false),
    ("_minus_scalar", &["_MinusScalar"], BinaryFn::Sub, false),
    ("_rminus_scalar", &["_RMinusScalar"], BinaryFn::Sub, true),
    ("_mul_scalar", &["_MulScalar"], BinaryFn::Mul, false),
    ("_div_scalar", &["_DivScalar"], BinaryFn::Div, false),
    ("_rdiv_scalar", &["_RDivScalar"], BinaryFn::Div, true),
    ("_mod_scalar", &["_ModScalar"], BinaryFn::Mod, false),
    ("_rmod_scalar", &["_RModScalar"], BinaryFn::Mod, true),
    ("_power_scalar", &["_PowerScalar"], BinaryFn::Power, false),
    ("_rpower_scalar", &["_RPowerScalar"], BinaryFn::Power, true),
    ("_maximum_scalar", &["_MaximumScalar"], BinaryFn::Maximum, false),
    ("_minimum_scalar", &["_MinimumScalar"], BinaryFn::Minimum, false),
    ("_hypot_scalar", &["_HypotScalar"], BinaryFn::Hypot, false),
    ("_equal_scalar", &["_EqualScalar"], BinaryFn::Equal, false),
    ("_not_equal_scalar", &["_NotEqualScalar"], BinaryFn::NotEqual, false),
    ("_greater_scalar", &["_GreaterScalar"], BinaryFn::Greater, false),
    ("_greater_equal_scalar", &["_GreaterEqualScalar"], BinaryFn::GreaterEqual, false),
    ("_lesser_scalar", &["_LesserScalar"], BinaryFn::Lesser, false),
    ("_lesser_equal_scalar", &["_LesserEqualScalar"], BinaryFn::LesserEqual, false),
    ("_logical_and_scalar", &["_LogicalAndScalar"], BinaryFn::LogicalAnd, false),
    ("_logical_or_scalar", &["_LogicalOrScalar"], BinaryFn::LogicalOr, false),
    ("_logical_xor_scalar", &["_LogicalXorScalar"], BinaryFn::LogicalXor, false),
];

fn lookup<T: Copy>(table: &[(&str, &[&str], BinaryFn, T)], name: &str) -> Option<(BinaryFn, T)> {
    table.iter().find(|e| e.0 == name).map(|e| (e.2, e.3))
}

fn build(name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    let (func, form) = if let Some(e) = ELEMWISE.iter().find(|e| e.0 == name) {
        (e.2, Form::Elemwise)
    } else if let Some(e) = BROADCAST.iter().find(|e| e.0 == name) {
        (e.2, Form::Broadcast)
    } else if let Some((func, reverse)) = lookup(SCALAR, name) {
        let scalar = attrs.float("scalar", 1.0)?;
        // 1.9.1 front ends may add `is_int`; the value is cast to the array's dtype anyway.
        attrs.get("is_int");
        (func, Form::Scalar { scalar, reverse })
    } else {
        return Err(Error::op(name, "not a binary operator"));
    };
    Ok(Arc::new(BinaryOp { name, func, form }))
}

impl BinaryOp {
    /// The operator behind NDArray's `+ - * /`: broadcasting, as MXNet's NDArray does.
    pub fn broadcast(func: BinaryFn) -> Self {
        let name = BROADCAST.iter().find(|e| e.2 == func).map_or("broadcast_add", |e| e.0);
        BinaryOp { name, func, form: Form::Broadcast }
    }

    /// `x op scalar` (or `scalar op x` when `reverse`).
    pub fn scalar(func: BinaryFn, scalar: f64, reverse: bool) -> Self {
        let name = SCALAR.iter().find(|e| e.2 == func && e.3 == reverse).map_or("_plus_scalar", |e| e.0);
        BinaryOp { name, func, form: Form::Scalar { scalar, reverse } }
    }
}

impl Operator for BinaryOp {
    fn name(&self) -> &'static str {
        self.name
    }

    fn num_inputs(&self) -> usize {
        match self.form {
            Form::Scalar { .. } => 1,
            _ => 2,
        }
    }

    fn input_names(&self) -> Vec<String> {
        match self.form {
            Form::Scalar { .. } => vec!["data".into()],
            _ => vec!["lhs".into(), "rhs".into()],
        }
    }

    fn inplace(&self) -> &[(usize, usize)] {
        &[(0, 0)]
    }

    fn has_gradient(&self) -> bool {
        true
    }

    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let g = &ctx.out_grads[0];
        match self.form {
            Form::Scalar { scalar, reverse } => {
                Ok(vec![Some(scalar_grad(self.func, scalar, reverse, &ctx.inputs[0], &ctx.outputs[0], g)?)])
            }
            Form::Elemwise | Form::Broadcast => {
                let (a, b) = (&ctx.inputs[0], &ctx.inputs[1]);
                let (ga, gb) = pair_grad(self.func, a, b, &ctx.outputs[0], g)?;
                // Broadcast inputs get the gradient summed back to their own shape.
                Ok(vec![Some(sum_to_shape(&ga, a.shape())?), Some(sum_to_shape(&gb, b.shape())?)])
            }
        }
    }

    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        self.infer_small(inputs).map(SmallVec::into_vec)
    }

    fn infer_small(&self, inputs: &[TensorInfo]) -> Result<SmallVec<[TensorInfo; 2]>> {
        let dtype = inputs[0].dtype;
        if dtype == DType::Bool {
            return Err(Error::op(
                self.name,
                "bool arrays are not supported by this legacy operator; Cast first",
            ));
        }
        let shape = match self.form {
            Form::Scalar { .. } => inputs[0].shape.clone(),
            Form::Elemwise | Form::Broadcast => {
                let (l, r) = (&inputs[0], &inputs[1]);
                if l.dtype != r.dtype {
                    return Err(Error::op(
                        self.name,
                        format!("operands have different dtypes {} and {}", l.dtype, r.dtype),
                    ));
                }
                if self.form == Form::Elemwise {
                    if l.shape != r.shape {
                        return Err(Error::op(
                            self.name,
                            format!(
                                "shapes {} and {} differ (use broadcast_* to broadcast)",
                                l.shape, r.shape
                            ),
                        ));
                    }
                    l.shape.clone()
                } else if l.shape == r.shape {
                    l.shape.clone()
                } else {
                    broadcast_shape(&l.shape, &r.shape)
                        .ok_or_else(|| {
                            Error::op(
                                self.name,
                                format!("shapes {} and {} cannot be broadcast together", l.shape, r.shape),
                            )
                        })?
                        .into()
                }
            }
        };
        Ok(smallvec::smallvec![TensorInfo { shape, dtype }])
    }

    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let out = &mut outputs[0];
        with_dtype!(out.dtype(), T => with_binary_fn!(self.func, T, f => self.run::<T>(inputs, out, f)))
    }
}

/// Bind `$f` to a closure for `$func` specialized at compile time, so each loop is
/// branch-free and vectorizes (a runtime match per element costs ~10x on large arrays).
macro_rules! with_binary_fn {
    ($func:expr, $T:ty, $f:ident => $body:expr) => {{
        macro_rules! arm {
            ($variant:ident) => {{
                let $f = |a: $T, b: $T| BinaryFn::$variant.apply(a, b);
                $body
            }};
        }
        match $func {
            BinaryFn::Add => arm!(Add),
            BinaryFn::Sub => arm!(Sub),
            BinaryFn::Mul => arm!(Mul),
            BinaryFn::Div => arm!(Div),
            BinaryFn::Mod => arm!(Mod),
            BinaryFn::Power => arm!(Power),
            BinaryFn::Maximum => arm!(Maximum),
            BinaryFn::Minimum => arm!(Minimum),
            BinaryFn::Hypot => arm!(Hypot),
            BinaryFn::Equal => arm!(Equal),
            BinaryFn::NotEqual => arm!(NotEqual),
            BinaryFn::Greater => arm!(Greater),
            BinaryFn::GreaterEqual => arm!(GreaterEqual),
            BinaryFn::Lesser => arm!(Lesser),
            BinaryFn::LesserEqual => arm!(LesserEqual),
            BinaryFn::LogicalAnd => arm!(LogicalAnd),
            BinaryFn::LogicalOr => arm!(LogicalOr),
            BinaryFn::LogicalXor => arm!(LogicalXor),
        }
    }};
}
use with_binary_fn;

impl BinaryOp {
    fn run<T: Element + crate::NativeType>(
        &self,
        inputs: &[Blob<'_>],
        out: &mut Blob<'_>,
        f: impl Fn(T, T) -> T + Sync + Copy,
    ) -> Result<()> {
        match self.form {
            Form::Scalar { scalar, reverse } => {
                let s = T::from_f64(scalar);
                let x = inputs[0].slice::<T>()?;
                if reverse {
                    map(x, out.slice_mut::<T>()?, |x| f(s, x));
                } else {
                    map(x, out.slice_mut::<T>()?, |x| f(x, s));
                }
            }
            Form::Elemwise => zip(inputs[0].slice::<T>()?, inputs[1].slice::<T>()?, out.slice_mut::<T>()?, f),
            Form::Broadcast => {
                let (l, r) = (&inputs[0], &inputs[1]);
                if l.shape() == out.shape() && r.shape() == out.shape() {
                    zip(l.slice::<T>()?, r.slice::<T>()?, out.slice_mut::<T>()?, f);
                } else {
                    let out_shape = out.shape().clone();
                    let bad = || Error::op(self.name, "operands do not broadcast");
                    let sa = broadcast_strides(l.shape(), &out_shape).ok_or_else(bad)?;
                    let sb = broadcast_strides(r.shape(), &out_shape).ok_or_else(bad)?;
                    broadcast_zip(
                        l.slice::<T>()?,
                        &sa,
                        r.slice::<T>()?,
                        &sb,
                        out.slice_mut::<T>()?,
                        &out_shape,
                        f,
                    );
                }
            }
        }
        Ok(())
    }
}

pub(crate) fn register(r: &mut Registry) {
    for e in ELEMWISE.iter().chain(BROADCAST) {
        r.register(crate::op::OpDef { name: e.0, aliases: e.1, build });
    }
    for e in SCALAR {
        r.register(crate::op::OpDef { name: e.0, aliases: e.1, build });
    }
}

// ---- gradients (MXNet's `_backward_*` of each function, written with operators) ----

fn zeros_like(x: &NDArray) -> Result<NDArray> {
    NDArray::zeros(x.shape().clone(), x.dtype(), x.context())
}

/// `f(a, b)` elementwise with broadcasting (comparisons give 1 or 0 in the dtype).
fn elementwise(cmp: BinaryFn, a: &NDArray, b: &NDArray) -> Result<NDArray> {
    let op: Arc<dyn Operator> = Arc::new(BinaryOp::broadcast(cmp));
    Ok(crate::imperative::invoke_operator(&op, &[a.clone(), b.clone()])?.remove(0))
}

fn with_scalar(cmp: BinaryFn, a: &NDArray, s: f64) -> Result<NDArray> {
    let op: Arc<dyn Operator> = Arc::new(BinaryOp::scalar(cmp, s, false));
    Ok(crate::imperative::invoke_operator(&op, std::slice::from_ref(a))?.remove(0))
}

fn unary(op: &str, x: &NDArray) -> Result<NDArray> {
    Ok(crate::imperative::invoke(op, std::slice::from_ref(x), &[])?.remove(0))
}

/// Gradients of `out = f(a, b)` for same-shape (or broadcast, before reduction) operands.
fn pair_grad(
    f: BinaryFn,
    a: &NDArray,
    b: &NDArray,
    out: &NDArray,
    g: &NDArray,
) -> Result<(NDArray, NDArray)> {
    Ok(match f {
        BinaryFn::Add => ((g * 1.0)?, (g * 1.0)?),
        BinaryFn::Sub => ((g * 1.0)?, (-g)?),
        BinaryFn::Mul => ((g * b)?, (g * a)?),
        BinaryFn::Div => ((g / b)?, (&(-g)? * &(out / b)?)?),
        BinaryFn::Mod => ((g * 1.0)?, (&(-g)? * &unary("floor", &(a / b)?)?)?),
        BinaryFn::Power => {
            // d/da a^b = b a^(b-1) = b out / a;  d/db a^b = out ln a
            let ga = (g * &(b * &elementwise(BinaryFn::Power, a, &(b - 1.0)?)?)?)?;
            (ga, (g * &(out * &unary("log", a)?)?)?)
        }
        BinaryFn::Maximum => {
            ((g * &elementwise(BinaryFn::GreaterEqual, a, b)?)?, (g * &elementwise(BinaryFn::Lesser, a, b)?)?)
        }
        BinaryFn::Minimum => {
            ((g * &elementwise(BinaryFn::LesserEqual, a, b)?)?, (g * &elementwise(BinaryFn::Greater, a, b)?)?)
        }
        BinaryFn::Hypot => ((g * &(a / out)?)?, (g * &(b / out)?)?),
        // Comparisons and logic are piecewise constant: zero gradient, as MXNet defines it.
        _ => (zeros_like(out)?, zeros_like(out)?),
    })
}

fn scalar_grad(
    f: BinaryFn,
    s: f64,
    reverse: bool,
    x: &NDArray,
    out: &NDArray,
    g: &NDArray,
) -> Result<NDArray> {
    match (f, reverse) {
        (BinaryFn::Add, _) | (BinaryFn::Sub, false) | (BinaryFn::Mod, false) => g * 1.0,
        (BinaryFn::Sub, true) => -g,
        (BinaryFn::Mul, _) => g * s,
        (BinaryFn::Div, false) => g / s,
        (BinaryFn::Div, true) => g * &(&(-out)? / x)?, // d(s/x) = -s/x^2 = -out/x
        (BinaryFn::Power, false) => g * &(&with_scalar(BinaryFn::Power, x, s - 1.0)? * s)?,
        (BinaryFn::Power, true) => g * &(out * s.ln())?,
        (BinaryFn::Mod, true) => g * &(-&unary("floor", &(s / x)?)?)?,
        (BinaryFn::Maximum, _) => g * &with_scalar(BinaryFn::GreaterEqual, x, s)?,
        (BinaryFn::Minimum, _) => g * &with_scalar(BinaryFn::LesserEqual, x, s)?,
        (BinaryFn::Hypot, _) => g * &(x / out)?,
        _ => zeros_like(out),
    }
}

/// Sum `g` over the axes along which an operand of `shape` was broadcast.
pub(crate) fn sum_to_shape(g: &NDArray, shape: &[usize]) -> Result<NDArray> {
    if g.shape().dims() == shape {
        return Ok(g.clone());
    }
    if shape.contains(&0) || g.size() == 0 {
        return NDArray::zeros(shape, g.dtype(), g.context());
    }
    let lead = g.ndim() - shape.len();
    let axes: Vec<usize> =
        (0..g.ndim()).filter(|&i| i < lead || (shape[i - lead] == 1 && g.shape()[i] != 1)).collect();
    let summed = if axes.is_empty() {
        g.clone()
    } else {
        let axis = super::grad::tuple(&axes);
        super::grad::call("sum", std::slice::from_ref(g), &[("axis", &axis), ("keepdims", "True")])?
    };
    super::grad::reshape_to(&summed, shape)
}
