//! Elementwise unary math and activations, `clip` and dtype casts, computed along the same
//! paths as MXNet 1.9.1's CPU kernels so that results agree with MXNet's, not just with
//! mathematics: float32, float16 and bfloat16 in `f32` math; float64 in `f64`; integers
//! through `double` (a few ops through `float`, as `math::id`/`math::sqr` do); and every
//! conversion back as compiled C++ converts on x86-64 (truncation toward zero, `INT_MIN`
//! when out of range, bfloat16 by dropping the low 16 bits of the float).
//!
//! Each op is a tight loop monomorphized for `f32` and `f64` only; the other element types
//! convert through a small stack buffer and reuse those loops, which keeps the code size
//! of 44 ops × 8 dtypes in check.

use std::ops::{Add, Div, Mul, Neg, Sub};

use half::{bf16, f16};

use crate::elementwise::{map, PARALLEL_MIN};
use crate::Element;

/// The elementwise function of a legacy unary operator.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryFn {
    Abs,
    Arccos,
    Arccosh,
    Arcsin,
    Arcsinh,
    Arctan,
    Arctanh,
    Cbrt,
    Ceil,
    Cos,
    Cosh,
    Degrees,
    Erf,
    Erfinv,
    Exp,
    Expm1,
    Fix,
    Floor,
    Gamma,
    Gammaln,
    Log,
    Log10,
    Log1p,
    Log2,
    Negative,
    Radians,
    Rcbrt,
    Reciprocal,
    Rint,
    Round,
    Rsqrt,
    Sign,
    Sin,
    Sinh,
    Sqrt,
    Square,
    Tan,
    Tanh,
    Trunc,
    LogicalNot,
    Relu,
    Sigmoid,
    /// `max(0, min(1, alpha * x + beta))`; MXNet stores both as `float`.
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    Softsign,
}

/// A floating-point compute type (`f32` or `f64`): the C math library under MXNet's
/// `math::` wrappers.
pub trait Real:
    Element
    + Neg<Output = Self>
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
{
    fn abs(self) -> Self;
    fn acos(self) -> Self;
    fn acosh(self) -> Self;
    fn asin(self) -> Self;
    fn asinh(self) -> Self;
    fn atan(self) -> Self;
    fn atanh(self) -> Self;
    fn cbrt(self) -> Self;
    fn ceil(self) -> Self;
    fn cos(self) -> Self;
    fn cosh(self) -> Self;
    fn erf(self) -> Self;
    fn exp(self) -> Self;
    /// `exp` in a form loops vectorize (f32: [`crate::fastmath::expf_fast`], within 2 ulp);
    /// for kernels whose cost is dominated by exponentials, such as softmax.
    fn exp_fast(self) -> Self;
    /// `exp` correctly rounded in practice, in a form loops vectorize (f32:
    /// [`crate::fastmath::expf`], half the vector width of [`Real::exp_fast`]).
    fn exp_rounded(self) -> Self;
    fn exp_m1(self) -> Self;
    fn floor(self) -> Self;
    fn tgamma(self) -> Self;
    fn lgamma(self) -> Self;
    fn ln(self) -> Self;
    fn log10(self) -> Self;
    fn ln_1p(self) -> Self;
    fn log2(self) -> Self;
    /// Half away from zero, as C's `round`.
    fn round(self) -> Self;
    fn sin(self) -> Self;
    fn sinh(self) -> Self;
    fn sqrt(self) -> Self;
    fn tan(self) -> Self;
    fn tanh(self) -> Self;
    fn trunc(self) -> Self;
    /// An element value in this compute type (`static_cast<float|double>`).
    fn from_elem<T: CElement>(t: T) -> Self;
    /// This value stored as element type `T` (C++ conversion).
    fn to_elem<T: CElement>(self) -> T;
}

macro_rules! real {
    ($t:ty, from_elem: $from:ident, exp_fast: $ef:path, exp_rounded: $er:path, std: [$($s:ident),*], libm: [$($m:ident => $lm:path),*]) => {
        impl Real for $t {
            #[inline(always)] fn exp_fast(self) -> Self { $ef(self) }
            #[inline(always)] fn exp_rounded(self) -> Self { $er(self) }
            $( #[inline(always)] fn $s(self) -> Self { <$t>::$s(self) } )*
            $( #[inline(always)] fn $m(self) -> Self { $lm(self) } )*
            #[inline(always)]
            fn from_elem<T: CElement>(t: T) -> Self { t.$from() }
            #[inline(always)]
            fn to_elem<T: CElement>(self) -> T { T::from_f64_c(self as f64) }
        }
    };
}

real!(f32, from_elem: to_f32_c, exp_fast: crate::fastmath::expf_fast, exp_rounded: crate::fastmath::expf,
    std: [abs, acos, asin, atan, cbrt, ceil, cos, cosh, exp, exp_m1, floor, ln, log10, ln_1p, log2,
          round, sin, sinh, sqrt, tan, tanh, trunc],
    libm: [acosh => libm::acoshf, asinh => libm::asinhf, atanh => libm::atanhf, erf => libm::erff,
           tgamma => libm::tgammaf, lgamma => libm::lgammaf]);
real!(f64, from_elem: to_f64, exp_fast: f64::exp, exp_rounded: f64::exp,
    std: [abs, acos, asin, atan, cbrt, ceil, cos, cosh, exp, exp_m1, floor, ln, log10, ln_1p, log2,
          round, sin, sinh, sqrt, tan, tanh, trunc],
    libm: [acosh => libm::acosh, asinh => libm::asinh, atanh => libm::atanh, erf => libm::erf,
           tgamma => libm::tgamma, lgamma => libm::lgamma]);

/// An element type with MXNet's C++ conversions and its route through [`UnaryFn`].
pub trait CElement: Element {
    /// `static_cast<Self>(double)` as x86-64 code does it.
    fn from_f64_c(v: f64) -> Self;
    /// `static_cast<Self>(int64_t)`.
    fn from_i64_c(v: i64) -> Self;
    /// `static_cast<float>(self)`.
    fn to_f32_c(self) -> f32;
    /// The value as MXNet compares it with a `float` attribute: as `float`, or as `double`
    /// for float64 (C's usual arithmetic conversions).
    fn vs_float(self) -> f64;
    /// This element converted to `D` as MXNet's `Cast` does.
    fn cast<D: CElement>(self) -> D;
    /// `out[i] = op(x[i])` on one thread.
    fn unary_slice(op: UnaryFn, x: &[Self], out: &mut [Self]);
}

/// `cvttsd2si` to 32 bits: truncation, `INT_MIN` for NaN and out-of-range values. Narrower
/// integer types take the low bits of this, as compilers emit it.
#[inline(always)]
fn cvtt_i32(v: f64) -> i32 {
    if v > -2147483649.0 && v < 2147483648.0 {
        v as i32
    } else {
        i32::MIN
    }
}

/// `cvttsd2si` to 64 bits.
#[inline(always)]
fn cvtt_i64(v: f64) -> i64 {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if (-TWO_63..TWO_63).contains(&v) {
        v as i64
    } else {
        i64::MIN
    }
}

/// mshadow's `bf16_t(float)`: the high half of the float's bits (truncation, not rounding).
#[inline(always)]
fn bf16_trunc(v: f32) -> bf16 {
    bf16::from_bits((v.to_bits() >> 16) as u16)
}

macro_rules! float_element {
    ($t:ty) => {
        impl CElement for $t {
            #[inline(always)]
            fn from_f64_c(v: f64) -> Self {
                v as $t
            }
            #[inline(always)]
            fn from_i64_c(v: i64) -> Self {
                v as $t
            }
            #[inline(always)]
            fn to_f32_c(self) -> f32 {
                self as f32
            }
            #[inline(always)]
            fn vs_float(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn cast<D: CElement>(self) -> D {
                D::from_f64_c(self as f64)
            }
            fn unary_slice(op: UnaryFn, x: &[Self], out: &mut [Self]) {
                op.apply_real(x, out)
            }
        }
    };
}
float_element!(f32);
float_element!(f64);

macro_rules! half_element {
    ($t:ty, $from_f32:expr) => {
        impl CElement for $t {
            #[inline(always)]
            fn from_f64_c(v: f64) -> Self {
                $from_f32(v as f32)
            }
            #[inline(always)]
            fn from_i64_c(v: i64) -> Self {
                $from_f32(v as f32)
            }
            #[inline(always)]
            fn to_f32_c(self) -> f32 {
                self.to_f32()
            }
            #[inline(always)]
            fn vs_float(self) -> f64 {
                self.to_f64()
            }
            #[inline(always)]
            fn cast<D: CElement>(self) -> D {
                D::from_f64_c(self.to_f64())
            }
            fn unary_slice(op: UnaryFn, x: &[Self], out: &mut [Self]) {
                via::<Self, f32>(op, x, out)
            }
        }
    };
}
half_element!(f16, f16::from_f32);
half_element!(bf16, bf16_trunc);

macro_rules! int_element {
    ($t:ty, $cvtt:ident) => {
        impl CElement for $t {
            #[inline(always)]
            fn from_f64_c(v: f64) -> Self {
                $cvtt(v) as $t
            }
            #[inline(always)]
            fn from_i64_c(v: i64) -> Self {
                v as $t
            }
            #[inline(always)]
            fn to_f32_c(self) -> f32 {
                self as f32
            }
            #[inline(always)]
            fn vs_float(self) -> f64 {
                self as f32 as f64
            }
            #[inline(always)]
            fn cast<D: CElement>(self) -> D {
                D::from_i64_c(self as i64)
            }
            fn unary_slice(op: UnaryFn, x: &[Self], out: &mut [Self]) {
                int_unary(op, x, out)
            }
        }
    };
}
int_element!(u8, cvtt_i32);
int_element!(i8, cvtt_i32);
int_element!(i32, cvtt_i32);
int_element!(i64, cvtt_i64);

#[inline(always)]
fn each<A: Copy, B, F: Fn(A) -> B>(x: &[A], out: &mut [B], f: F) {
    out.iter_mut().zip(x).for_each(|(o, &a)| *o = f(a));
}

/// MXNet's `relu`: `a` when above 0 or NaN, else 0 (also the ReLU a fused convolution
/// stores: `gemm::RowAffine`).
#[inline(always)]
pub(crate) fn relu<T: Element>(a: T) -> T {
    // NaN passes through, as MXNet's `IsNan(a) || a > 0`.
    #[allow(clippy::eq_op)]
    let nan = a != a;
    if nan || a > T::ZERO {
        a
    } else {
        T::ZERO
    }
}

#[inline(always)]
fn sign<T: Element>(a: T) -> T {
    if a < T::ZERO {
        T::ZERO.sub(T::ONE)
    } else if a > T::ZERO {
        T::ONE
    } else {
        T::ZERO
    }
}

#[inline(always)]
fn logical_not<T: Element>(a: T) -> T {
    if a != T::ZERO {
        T::ZERO
    } else {
        T::ONE
    }
}

/// Integers: relu, sign, logical_not and negative stay exact in the element type; the rest
/// go through `double`, except the ops MXNet writes with `math::id`/`math::sqr` (`float`).
fn int_unary<T: CElement>(op: UnaryFn, x: &[T], out: &mut [T]) {
    match op {
        UnaryFn::Relu => each(x, out, relu),
        UnaryFn::Sign => each(x, out, sign),
        UnaryFn::LogicalNot => each(x, out, logical_not),
        UnaryFn::Negative => each(x, out, |a| T::ZERO.sub(a)),
        UnaryFn::Reciprocal | UnaryFn::Degrees | UnaryFn::Radians | UnaryFn::Square => {
            via::<T, f32>(op, x, out)
        }
        _ => via::<T, f64>(op, x, out),
    }
}

/// Widen a block to compute type `R`, apply `op`, convert back.
fn via<T: CElement, R: Real>(op: UnaryFn, x: &[T], out: &mut [T]) {
    const BLOCK: usize = 256;
    let (mut a, mut b) = ([R::ZERO; BLOCK], [R::ZERO; BLOCK]);
    for (xs, os) in x.chunks(BLOCK).zip(out.chunks_mut(BLOCK)) {
        let n = xs.len();
        each(xs, &mut a[..n], R::from_elem);
        op.apply_real(&a[..n], &mut b[..n]);
        each(&b[..n], os, R::to_elem);
    }
}

impl UnaryFn {
    /// One tight loop per op in compute type `R`; the match runs once per slice.
    fn apply_real<R: Real>(self, x: &[R], out: &mut [R]) {
        let c = R::from_f32;
        let one = R::ONE;
        match self {
            UnaryFn::Abs => each(x, out, R::abs),
            UnaryFn::Arccos => each(x, out, R::acos),
            UnaryFn::Arccosh => each(x, out, R::acosh),
            UnaryFn::Arcsin => each(x, out, R::asin),
            UnaryFn::Arcsinh => each(x, out, R::asinh),
            UnaryFn::Arctan => each(x, out, R::atan),
            UnaryFn::Arctanh => each(x, out, R::atanh),
            UnaryFn::Cbrt => each(x, out, R::cbrt),
            UnaryFn::Ceil => each(x, out, R::ceil),
            UnaryFn::Cos => each(x, out, R::cos),
            UnaryFn::Cosh => each(x, out, R::cosh),
            // MXNet's constants are `float` (180.0f / PI) even for float64 data.
            UnaryFn::Degrees => {
                let k = c(180.0f32 / std::f32::consts::PI);
                each(x, out, |a| k * a)
            }
            UnaryFn::Radians => {
                let k = c(std::f32::consts::PI / 180.0f32);
                each(x, out, |a| k * a)
            }
            UnaryFn::Erf => each(x, out, R::erf),
            UnaryFn::Erfinv => each(x, out, |a| R::from_f64(erfinv(a.to_f64()))),
            UnaryFn::Exp => each(x, out, R::exp),
            UnaryFn::Expm1 => each(x, out, R::exp_m1),
            // Toward zero, written as MXNet writes it (the nearer-to-zero of floor and ceil).
            UnaryFn::Fix => each(x, out, |a| {
                let (f, c) = (a.floor(), a.ceil());
                if f.abs() < c.abs() {
                    f
                } else {
                    c
                }
            }),
            UnaryFn::Floor => each(x, out, R::floor),
            UnaryFn::Gamma => each(x, out, R::tgamma),
            UnaryFn::Gammaln => each(x, out, R::lgamma),
            UnaryFn::Log => each(x, out, R::ln),
            UnaryFn::Log10 => each(x, out, R::log10),
            UnaryFn::Log1p => each(x, out, R::ln_1p),
            UnaryFn::Log2 => each(x, out, R::log2),
            UnaryFn::Negative => each(x, out, |a| -a),
            UnaryFn::Rcbrt => each(x, out, |a| one / a.cbrt()),
            UnaryFn::Reciprocal => each(x, out, |a| one / a),
            // MXNet's rint: the nearer of floor and ceil, ties to floor (2.5 -> 2, -2.5 -> -3).
            UnaryFn::Rint => each(x, out, |a| {
                let (f, c) = (a.floor(), a.ceil());
                if a - f <= c - a {
                    f
                } else {
                    c
                }
            }),
            UnaryFn::Round => each(x, out, R::round),
            UnaryFn::Rsqrt => each(x, out, |a| one / a.sqrt()),
            UnaryFn::Sign => each(x, out, sign),
            UnaryFn::Sin => each(x, out, R::sin),
            UnaryFn::Sinh => each(x, out, R::sinh),
            UnaryFn::Sqrt => each(x, out, R::sqrt),
            UnaryFn::Square => each(x, out, |a| a * a),
            UnaryFn::Tan => each(x, out, R::tan),
            UnaryFn::Tanh => each(x, out, R::tanh),
            UnaryFn::Trunc => each(x, out, R::trunc),
            UnaryFn::LogicalNot => each(x, out, logical_not),
            UnaryFn::Relu => each(x, out, relu),
            UnaryFn::Sigmoid => each(x, out, |a| one / (one + (-a).exp())),
            UnaryFn::HardSigmoid { alpha, beta } => {
                let (alpha, beta) = (c(alpha), c(beta));
                each(x, out, |a| {
                    let r = alpha * a + beta;
                    let r = if one < r { one } else { r };
                    if R::ZERO > r {
                        R::ZERO
                    } else {
                        r
                    }
                })
            }
            UnaryFn::Softsign => each(x, out, |a| a / (one + a.abs())),
        }
    }
}

const CHUNK: usize = 1 << 14;

/// `f` over matching pieces of `x` and `out`, on both cores when the array is large.
fn par_slices<A: Sync, B: Send, F: Fn(&[A], &mut [B]) + Sync>(x: &[A], out: &mut [B], f: F) {
    if out.len() >= PARALLEL_MIN {
        crate::parallel::split(out, CHUNK, &|off, o| f(&x[off..off + o.len()], o));
    } else {
        f(x, out);
    }
}

/// `out[i] = op(x[i])`.
pub fn unary<T: CElement>(op: UnaryFn, x: &[T], out: &mut [T]) {
    debug_assert_eq!(x.len(), out.len());
    par_slices(x, out, |x, o| T::unary_slice(op, x, o));
}

/// MXNet's `clip`: values above `a_max` become `a_max`, other values below `a_min` become
/// `a_min` (no check that `a_min <= a_max`); NaN passes through. The bounds are `float`,
/// compared in `float` (in `double` for float64 data).
pub fn clip<T: CElement>(x: &[T], out: &mut [T], a_min: f32, a_max: f32) {
    let (lo, hi) = (a_min as f64, a_max as f64);
    let (lo_t, hi_t) = (T::from_f64_c(lo), T::from_f64_c(hi));
    map(x, out, |a| {
        let v = a.vs_float();
        if v > hi {
            hi_t
        } else if v < lo {
            lo_t
        } else {
            a
        }
    });
}

/// MXNet's `Cast` between non-bool types: C++ conversions (`float -> int` truncates,
/// `300.0 -> uint8` wraps to 44, `float64 -> float16` rounds through float32).
pub fn cast<S: CElement, D: CElement>(x: &[S], out: &mut [D]) {
    map(x, out, |a| a.cast::<D>());
}

/// `Cast` to bool: nonzero (NaN included) becomes 1.
pub fn cast_to_bool<S: CElement>(x: &[S], out: &mut [u8]) {
    map(x, out, |a| u8::from(a != S::ZERO));
}

fn polevl(x: f64, coef: &[f64]) -> f64 {
    coef.iter().fold(0.0, |acc, &c| acc * x + c)
}

/// Like [`polevl`] with an implicit leading coefficient of 1.
fn p1evl(x: f64, coef: &[f64]) -> f64 {
    coef.iter().fold(1.0, |acc, &c| acc * x + c)
}

/// Inverse of the standard normal CDF for `0 < y0 < 1` (Cephes `ndtri`, as MXNet uses).
/// Coefficients are Cephes' decimal strings verbatim.
#[allow(clippy::excessive_precision)]
fn ndtri(y0: f64) -> f64 {
    const S2PI: f64 = 2.50662827463100050242E0;
    const EXP_M2: f64 = 0.13533528323661269189;
    const P0: [f64; 5] = [
        -5.99633501014107895267E1,
        9.80010754185999661536E1,
        -5.66762857469070293439E1,
        1.39312609387279679503E1,
        -1.23916583867381258016E0,
    ];
    const Q0: [f64; 8] = [
        1.95448858338141759834E0,
        4.67627912898881538453E0,
        8.63602421390890590575E1,
        -2.25462687854119370527E2,
        2.00260212380060660359E2,
        -8.20372256168333339912E1,
        1.59056225126211695515E1,
        -1.18331621121330003142E0,
    ];
    const P1: [f64; 9] = [
        4.05544892305962419923E0,
        3.15251094599893866154E1,
        5.71628192246421288162E1,
        4.40805073893200834700E1,
        1.46849561928858024014E1,
        2.18663306850790267539E0,
        -1.40256079171354495875E-1,
        -3.50424626827848203418E-2,
        -8.57456785154685413611E-4,
    ];
    const Q1: [f64; 8] = [
        1.57799883256466749731E1,
        4.53907635128879210584E1,
        4.13172038254672030440E1,
        1.50425385692907503408E1,
        2.50464946208309415979E0,
        -1.42182922854787788574E-1,
        -3.80806407691578277194E-2,
        -9.33259480895457427372E-4,
    ];
    const P2: [f64; 9] = [
        3.23774891776946035970E0,
        6.91522889068984211695E0,
        3.93881025292474443415E0,
        1.33303460815807542389E0,
        2.01485389549179081538E-1,
        1.23716634817820021358E-2,
        3.01581553508235416007E-4,
        2.65806974686737550832E-6,
        6.23974539184983293730E-9,
    ];
    const Q2: [f64; 8] = [
        6.02427039364742014255E0,
        3.67983563856160859403E0,
        1.37702099489081330271E0,
        2.16236993594496635890E-1,
        1.34204006088543189037E-2,
        3.28014464682127739104E-4,
        2.89247864745380683936E-6,
        6.79019408009981274425E-9,
    ];

    let mut y = y0;
    let mut negate = true;
    if y > 1.0 - EXP_M2 {
        y = 1.0 - y;
        negate = false;
    }
    if y > EXP_M2 {
        let y = y - 0.5;
        let y2 = y * y;
        let x = y + y * (y2 * polevl(y2, &P0) / p1evl(y2, &Q0));
        return x * S2PI;
    }
    let x = (-2.0 * y.ln()).sqrt();
    let x0 = x - x.ln() / x;
    let z = 1.0 / x;
    let x1 = if x < 8.0 { z * polevl(z, &P1) / p1evl(z, &Q1) } else { z * polevl(z, &P2) / p1evl(z, &Q2) };
    let x = x0 - x1;
    if negate {
        -x
    } else {
        x
    }
}

/// Inverse error function, in `double` for every dtype as MXNet computes it: linear near
/// 0, ±inf at ±1, NaN outside [-1, 1].
pub fn erfinv(y: f64) -> f64 {
    const TWO_OVER_SQRT_PI: f64 = std::f64::consts::FRAC_2_SQRT_PI;
    if -1e-7 < y && y < 1e-7 {
        y / TWO_OVER_SQRT_PI
    } else if -1.0 < y && y < 1.0 {
        ndtri(0.5 * (y + 1.0)) * std::f64::consts::FRAC_1_SQRT_2
    } else if y == -1.0 || y == 1.0 {
        y * f64::INFINITY
    } else {
        f64::NAN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<T: CElement>(op: UnaryFn, x: &[T]) -> Vec<T> {
        let mut out = vec![T::ZERO; x.len()];
        unary(op, x, &mut out);
        out
    }

    #[test]
    fn rounding_follows_mxnet() {
        let x = [2.5f32, -2.5, 3.5, 0.5, -0.5, 1.7, -1.7];
        assert_eq!(run(UnaryFn::Round, &x), [3.0, -3.0, 4.0, 1.0, -1.0, 2.0, -2.0]);
        assert_eq!(run(UnaryFn::Rint, &x), [2.0, -3.0, 3.0, 0.0, -1.0, 2.0, -2.0]);
        assert_eq!(run(UnaryFn::Fix, &x), [2.0, -2.0, 3.0, 0.0, -0.0, 1.0, -1.0]);
    }

    #[test]
    fn c_conversions() {
        assert_eq!(u8::from_f64_c(300.7), 44);
        assert_eq!(u8::from_f64_c(-1.0), 255);
        assert_eq!(i8::from_f64_c(-3.9), -3);
        assert_eq!(i32::from_f64_c(f64::NAN), i32::MIN);
        assert_eq!(i32::from_f64_c(3e9), i32::MIN);
        assert_eq!(i64::from_f64_c(1e30), i64::MIN);
        assert_eq!(bf16::from_f64_c(1.0 + 255.0 / 256.0).to_f32(), 1.9921875);
        assert_eq!(f16::from_f64_c(1e20).to_f32(), f32::INFINITY);
        assert_eq!(1i64.cast::<u8>(), 1);
        assert_eq!(300i32.cast::<u8>(), 44);
        assert_eq!((-1.5f32).cast::<i32>(), -1);
    }

    #[test]
    fn integers_go_through_double_or_float() {
        assert_eq!(run(UnaryFn::Sqrt, &[16i32, 17, -1]), [4, 4, i32::MIN]);
        assert_eq!(run(UnaryFn::Negative, &[3u8, 0, i8::MAX as u8]), [253, 0, 129]);
        assert_eq!(run(UnaryFn::Abs, &[-5i8, i8::MIN]), [5, i8::MIN]);
        // math::sqr works in float: 4097^2 is not a float.
        assert_eq!(run(UnaryFn::Square, &[4097i32]), [16785408]);
        assert_eq!(run(UnaryFn::Sign, &[0u8, 7]), [0, 1]);
    }

    #[test]
    fn erfinv_matches_reference_points() {
        for &(y, x) in &[(0.5, 0.4769362762044699), (-0.9, -1.1630871536766743), (0.999, 2.326753765513525)] {
            assert!((erfinv(y) - x).abs() < 1e-12 * x.abs(), "erfinv({y}) = {}", erfinv(y));
            assert!((libm::erf(erfinv(y)) - y).abs() < 1e-15);
        }
        assert_eq!(erfinv(1.0), f64::INFINITY);
        assert_eq!(erfinv(-1.0), f64::NEG_INFINITY);
        assert!(erfinv(1.5).is_nan());
    }

    #[test]
    fn large_arrays_split_and_match() {
        let x: Vec<f32> = (0..PARALLEL_MIN * 3 + 17).map(|i| (i as f32) * 1e-4 - 3.0).collect();
        let big = run(UnaryFn::Tanh, &x);
        assert!(big.iter().zip(&x).all(|(&y, &a)| y == a.tanh()));
        let h: Vec<f16> = x.iter().map(|&v| f16::from_f32(v)).collect();
        let hy = run(UnaryFn::Exp, &h);
        assert!(hy.iter().zip(&h).all(|(&y, &a)| y == f16::from_f32(a.to_f32().exp())));
    }
}
