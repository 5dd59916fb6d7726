//! Neural-network kernels on slices: activations and their gradients, softmax along an
//! axis, and the per-group statistics of the normalization layers. They compute in `f32`
//! or `f64` ([`Real`]); callers convert half types through `f32`, as MXNet's CPU kernels
//! do. Each kernel is generic over that one type parameter only, and the parallel split
//! goes through one helper taking a trait object, so rayon compiles once per element type.

use crate::elementwise::PARALLEL_MIN;
use crate::unary::Real;

/// Elements of work per parallel task.
const TASK: usize = 1 << 14;

/// `f(first_unit, chunk)` over `out` split into whole `unit`s, in parallel when the total
/// is large. Generic over the element type only.
pub fn par_units<O: Send>(out: &mut [O], unit: usize, f: &(dyn Fn(usize, &mut [O]) + Sync)) {
    if out.is_empty() || unit == 0 {
        return;
    }
    if out.len() < PARALLEL_MIN {
        return f(0, out);
    }
    let units = TASK.div_ceil(unit).max(1);
    crate::parallel::chunks(out, unit * units, &|i, c| f(i * units, c));
}

/// The body of [`par_units2`].
pub type Units2Fn<'a, O> = dyn Fn(usize, &mut [O], &mut [O]) + Sync + 'a;

/// `f(first_unit, a_chunk, b_chunk)` over two equally split outputs (e.g. the two
/// gradients of a binary op).
pub fn par_units2<O: Send>(a: &mut [O], b: &mut [O], unit: usize, f: &Units2Fn<'_, O>) {
    if a.is_empty() || unit == 0 {
        return;
    }
    if a.len() < PARALLEL_MIN {
        return f(0, a, b);
    }
    let size = a.len().div_ceil(unit).div_ceil(crate::parallel::threads()).max(1) * unit;
    let parts = a.chunks_mut(size).zip(b.chunks_mut(size)).enumerate();
    crate::parallel::each(parts, &|(i, (a, b))| f(i * size / unit, a, b));
}

/// MXNet's SELU constants (`mshadow_op.h`, stored as `float`).
pub const SELU_ALPHA: f32 = 1.673_263_2;
pub const SELU_LAMBDA: f32 = 1.050_701;

/// An elementwise activation of `Activation` or `LeakyReLU`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Act {
    Relu,
    Sigmoid,
    Tanh,
    /// softplus: `log(1 + exp(x))`, `x` itself above 20.
    SoftRelu,
    SoftSign,
    /// `x > 0 ? x : slope * x` (leaky, rrelu in inference).
    Leaky(f32),
    /// `x > 0 ? x : slope * expm1(x)`.
    Elu(f32),
    Selu,
    /// The erf form.
    Gelu,
}

#[inline(always)]
fn c<R: Real>(v: f64) -> R {
    R::from_f64(v)
}

impl Act {
    #[inline(always)]
    fn forward<R: Real>(self, x: R) -> R {
        let zero = R::ZERO;
        match self {
            Act::Relu => {
                if x.is_nan() || x > zero {
                    x
                } else {
                    zero
                }
            }
            Act::Sigmoid => R::ONE / (R::ONE + (-x).exp()),
            Act::Tanh => x.tanh(),
            Act::SoftRelu => {
                if x > c(20.0) {
                    x
                } else {
                    x.exp().ln_1p()
                }
            }
            Act::SoftSign => x / (R::ONE + x.abs()),
            Act::Leaky(s) => {
                if x > zero {
                    x
                } else {
                    x * c(s as f64)
                }
            }
            Act::Elu(s) => {
                if x > zero {
                    x
                } else {
                    c::<R>(s as f64) * x.exp_m1()
                }
            }
            Act::Selu => {
                let v = if x > zero { x } else { c::<R>(SELU_ALPHA as f64) * x.exp_m1() };
                c::<R>(SELU_LAMBDA as f64) * v
            }
            Act::Gelu => c::<R>(0.5) * x * (R::ONE + (x / c(std::f64::consts::SQRT_2)).erf()),
        }
    }

    /// d out / d x from the input `x` and output `y`, by MXNet's formulas (most of them
    /// read the output; SELU's is MXNet's `lambda * (alpha + y)` for negative inputs).
    #[inline(always)]
    fn derivative<R: Real>(self, x: R, y: R) -> R {
        let zero = R::ZERO;
        match self {
            Act::Relu => {
                if y.is_nan() {
                    y
                } else if y > zero {
                    R::ONE
                } else {
                    zero
                }
            }
            Act::Sigmoid => y * (R::ONE - y),
            Act::Tanh => R::ONE - y * y,
            Act::SoftRelu => -(-y).exp_m1(),
            Act::SoftSign => {
                let d = R::ONE + x.abs();
                R::ONE / (d * d)
            }
            Act::Leaky(s) => {
                if y > zero {
                    R::ONE
                } else {
                    c(s as f64)
                }
            }
            Act::Elu(s) => {
                if y > zero {
                    R::ONE
                } else {
                    c::<R>(s as f64) + y
                }
            }
            Act::Selu => {
                let d = if y > zero { R::ONE } else { c::<R>(SELU_ALPHA as f64) + y };
                c::<R>(SELU_LAMBDA as f64) * d
            }
            Act::Gelu => {
                let z = x / c(std::f64::consts::SQRT_2);
                let erf_grad = c::<R>(2.0 / std::f64::consts::PI.sqrt()) * (-(z * z)).exp();
                c::<R>(0.5) * (R::ONE + z.erf() + x * erf_grad / c(std::f64::consts::SQRT_2))
            }
        }
    }
}

/// `out = act(x)`.
pub fn act_forward<R: Real>(act: Act, x: &[R], out: &mut [R]) {
    macro_rules! run {
        ($a:expr) => {
            par_units(out, 1, &|i, o| {
                for (o, &x) in o.iter_mut().zip(&x[i..]) {
                    *o = $a.forward(x);
                }
            })
        };
    }
    // One loop per variant, so each vectorizes.
    match act {
        Act::Relu => run!(Act::Relu),
        Act::Sigmoid => run!(Act::Sigmoid),
        Act::Tanh => run!(Act::Tanh),
        Act::SoftRelu => run!(Act::SoftRelu),
        Act::SoftSign => run!(Act::SoftSign),
        Act::Leaky(s) => run!(Act::Leaky(s)),
        Act::Elu(s) => run!(Act::Elu(s)),
        Act::Selu => run!(Act::Selu),
        Act::Gelu => run!(Act::Gelu),
    }
}

/// `dx = dy * act'(x, y)`. `x` may be empty for activations whose derivative reads only
/// the output (all but softsign and gelu).
pub fn act_backward<R: Real>(act: Act, dy: &[R], x: &[R], y: &[R], dx: &mut [R]) {
    macro_rules! run {
        ($a:expr, x) => {
            par_units(dx, 1, &|i, o| {
                for ((o, &g), (&x, &y)) in o.iter_mut().zip(&dy[i..]).zip(x[i..].iter().zip(&y[i..])) {
                    *o = g * $a.derivative(x, y);
                }
            })
        };
        ($a:expr) => {
            par_units(dx, 1, &|i, o| {
                for ((o, &g), &y) in o.iter_mut().zip(&dy[i..]).zip(&y[i..]) {
                    *o = g * $a.derivative(R::ZERO, y);
                }
            })
        };
    }
    // One loop per variant, so each vectorizes (a match per element does not).
    match act {
        Act::Relu => run!(Act::Relu),
        Act::Sigmoid => run!(Act::Sigmoid),
        Act::Tanh => run!(Act::Tanh),
        Act::SoftRelu => run!(Act::SoftRelu),
        Act::SoftSign => run!(Act::SoftSign, x),
        Act::Leaky(s) => run!(Act::Leaky(s)),
        Act::Elu(s) => run!(Act::Elu(s)),
        Act::Selu => run!(Act::Selu),
        Act::Gelu => run!(Act::Gelu, x),
    }
}

/// Leaky ReLU with a slope per element of `slope_at(i)` (PReLU's broadcast gamma, RReLU's
/// random mask): `out = x > 0 ? x : slope * x`.
pub fn leaky_var_forward<R: Real>(x: &[R], slope: &(dyn Fn(usize) -> R + Sync), out: &mut [R]) {
    par_units(out, 1, &|i, o| {
        for (k, o) in o.iter_mut().enumerate() {
            let v = x[i + k];
            *o = if v > R::ZERO { v } else { v * slope(i + k) };
        }
    })
}

/// How the softmax family transforms a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SoftmaxKind {
    Softmax,
    LogSoftmax,
}

/// Softmax of `x` viewed as `(outer, m, inner)` along the middle axis. `negate` gives
/// softmin; `temperature` divides the shifted inputs; `length[o * inner + j]` (if given)
/// limits the row to its first entries, the rest of the output being 0. As MXNet's CPU
/// kernel: the maximum and the sum are taken in `R`, `out = exp(v - max) / sum` (or
/// `v - max - log(sum)`).
#[allow(clippy::too_many_arguments)]
pub fn softmax<R: Real>(
    x: &[R],
    out: &mut [R],
    dims: (usize, usize, usize),
    kind: SoftmaxKind,
    negate: bool,
    temperature: R,
    length: Option<&[i64]>,
) {
    softmax_with(x, out, dims, kind, negate, temperature, length, false)
}

/// [`softmax`], with exponentials correctly rounded (in practice) when `rounded_exp`: as
/// glibc's `expf` that MXNet calls, so that a result widened to f64 (`dtype='float64'`)
/// carries MXNet's digits. Otherwise f32 rows use [`Real::exp_fast`] (2 ulp).
#[allow(clippy::too_many_arguments)]
pub fn softmax_with<R: Real>(
    x: &[R],
    out: &mut [R],
    (outer, m, inner): (usize, usize, usize),
    kind: SoftmaxKind,
    negate: bool,
    temperature: R,
    length: Option<&[i64]>,
    rounded_exp: bool,
) {
    debug_assert_eq!(x.len(), outer * m * inner);
    if m == 0 {
        return;
    }
    let unit = m * inner;
    let _ = outer;
    if inner == 1 && length.is_none() && !negate && temperature == R::ONE {
        return par_units(out, unit, &|first, chunk| {
            for (b, row) in chunk.chunks_mut(unit).enumerate() {
                let o = first + b;
                softmax_row(&x[o * unit..(o + 1) * unit], row, kind, rounded_exp);
            }
        });
    }
    par_units(out, unit, &|first, chunk| {
        for (b, block) in chunk.chunks_mut(unit).enumerate() {
            let o = first + b;
            let xs = &x[o * unit..(o + 1) * unit];
            for j in 0..inner {
                let len = match length {
                    Some(l) => (l[o * inner + j].max(0) as usize).min(m),
                    None => m,
                };
                let v = |k: usize| if negate { -xs[k * inner + j] } else { xs[k * inner + j] };
                for k in len..m {
                    block[k * inner + j] = R::ZERO;
                }
                if len == 0 {
                    continue;
                }
                let mut mx = v(0);
                for k in 1..len {
                    let t = v(k);
                    if mx < t {
                        mx = t;
                    }
                }
                let scaled = |k: usize| {
                    if temperature == R::ONE {
                        v(k) - mx
                    } else {
                        (v(k) - mx) / temperature
                    }
                };
                let mut sum = R::ZERO;
                for k in 0..len {
                    sum = sum + scaled(k).exp();
                }
                match kind {
                    SoftmaxKind::Softmax => {
                        for k in 0..len {
                            block[k * inner + j] = scaled(k).exp() / sum;
                        }
                    }
                    SoftmaxKind::LogSoftmax => {
                        let ls = sum.ln();
                        for k in 0..len {
                            block[k * inner + j] = scaled(k) - ls;
                        }
                    }
                }
            }
        }
    });
}

/// Gradient of one contiguous row (the fast path of [`softmax_backward`]).
fn softmax_backward_row<R: Real>(ys: &[R], gs: &[R], row: &mut [R], kind: SoftmaxKind) {
    crate::fastmath::wide(
        #[inline(always)]
        || softmax_backward_row_body(ys, gs, row, kind),
    )
}

#[inline(always)]
fn softmax_backward_row_body<R: Real>(ys: &[R], gs: &[R], row: &mut [R], kind: SoftmaxKind) {
    match kind {
        SoftmaxKind::Softmax => {
            for ((d, &yv), &g) in row.iter_mut().zip(ys).zip(gs) {
                *d = g * yv;
            }
            let sum = sum_lanes(row);
            for ((d, &yv), &g) in row.iter_mut().zip(ys).zip(gs) {
                *d = yv * (g - sum);
            }
        }
        SoftmaxKind::LogSoftmax => {
            let sum = sum_lanes(gs);
            for ((d, &yv), &g) in row.iter_mut().zip(ys).zip(gs) {
                *d = g - yv.exp_fast() * sum;
            }
        }
    }
}

/// Sum with eight independent accumulators, so the loop vectorizes.
#[inline(always)]
fn sum_lanes<R: Real>(v: &[R]) -> R {
    let mut acc = [R::ZERO; 8];
    let chunks = v.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a = *a + x;
        }
    }
    let mut s = acc.iter().fold(R::ZERO, |s, &a| s + a);
    for &x in tail {
        s = s + x;
    }
    s
}

/// `x.iter().fold(x[0], |m, v| if m < v { v } else { m })` (a NaN first element wins,
/// later NaNs are skipped) with sixteen independent lanes, so the scan vectorizes; the
/// maximum does not depend on the order, so the result is the same.
#[inline(always)]
fn max_lanes<R: Real>(x: &[R]) -> R {
    let pick = |m: R, v: R| if m < v { v } else { m };
    let mut acc = [x[0]; 16];
    let chunks = x.chunks_exact(16);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = pick(*a, v);
        }
    }
    tail.iter().fold(acc.iter().fold(x[0], |m, &a| pick(m, a)), |m, &v| pick(m, v))
}

/// One contiguous row of (log-)softmax: the exponentials are computed once, in place, in
/// loops the compiler vectorizes (4 f64 lanes where the CPU has AVX2: `fastmath::wide`).
fn softmax_row<R: Real>(x: &[R], out: &mut [R], kind: SoftmaxKind, rounded_exp: bool) {
    crate::fastmath::wide(
        #[inline(always)]
        || softmax_row_body(x, out, kind, rounded_exp),
    )
}

#[inline(always)]
fn softmax_row_body<R: Real>(x: &[R], out: &mut [R], kind: SoftmaxKind, rounded_exp: bool) {
    let mx = max_lanes(x);
    if rounded_exp {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = (v - mx).exp_rounded();
        }
    } else {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = (v - mx).exp_fast();
        }
    }
    let sum = sum_lanes(out);
    match kind {
        SoftmaxKind::Softmax => out.iter_mut().for_each(|o| *o = *o / sum),
        SoftmaxKind::LogSoftmax => {
            let shift = mx + sum.ln();
            for (o, &v) in out.iter_mut().zip(x) {
                *o = v - shift;
            }
        }
    }
}

/// Gradient of [`softmax`] from its output `y` and the output gradient `dy`:
/// softmax `y * (dy - sum(dy * y))`, log-softmax `dy - exp(y) * sum(dy)`, negated for
/// softmin, divided by the temperature; entries past a row's length get 0.
#[allow(clippy::too_many_arguments)]
pub fn softmax_backward<R: Real>(
    y: &[R],
    dy: &[R],
    dx: &mut [R],
    (_outer, m, inner): (usize, usize, usize),
    kind: SoftmaxKind,
    negate: bool,
    temperature: R,
    length: Option<&[i64]>,
) {
    if m == 0 {
        return;
    }
    let unit = m * inner;
    if inner == 1 && length.is_none() && !negate && temperature == R::ONE {
        return par_units(dx, unit, &|first, chunk| {
            for (b, row) in chunk.chunks_mut(unit).enumerate() {
                let o = first + b;
                let (ys, gs) = (&y[o * unit..(o + 1) * unit], &dy[o * unit..(o + 1) * unit]);
                softmax_backward_row(ys, gs, row, kind);
            }
        });
    }
    par_units(dx, unit, &|first, chunk| {
        for (b, block) in chunk.chunks_mut(unit).enumerate() {
            let o = first + b;
            let (ys, gs) = (&y[o * unit..(o + 1) * unit], &dy[o * unit..(o + 1) * unit]);
            for j in 0..inner {
                let len = match length {
                    Some(l) => (l[o * inner + j].max(0) as usize).min(m),
                    None => m,
                };
                let at = |k: usize| k * inner + j;
                let mut sum = R::ZERO;
                for k in 0..len {
                    sum = sum
                        + match kind {
                            SoftmaxKind::Softmax => gs[at(k)] * ys[at(k)],
                            SoftmaxKind::LogSoftmax => gs[at(k)],
                        };
                }
                for k in 0..m {
                    let mut g = match kind {
                        SoftmaxKind::Softmax => ys[at(k)] * (gs[at(k)] - sum),
                        SoftmaxKind::LogSoftmax => gs[at(k)] - ys[at(k)].exp() * sum,
                    };
                    if negate {
                        g = -g;
                    }
                    if temperature != R::ONE {
                        g = g / temperature;
                    }
                    block[at(k)] = if k < len { g } else { R::ZERO };
                }
            }
        }
    });
}

/// Mean and biased variance of each channel of `x` viewed as `(outer, channels, inner)`
/// (BatchNorm's statistics), accumulated in `R`.
pub fn channel_moments<R: Real>(x: &[R], (outer, c, inner): (usize, usize, usize)) -> (Vec<R>, Vec<R>) {
    let count = R::from_f64((outer * inner) as f64);
    let mut mean = vec![R::ZERO; c];
    let mut var = vec![R::ZERO; c];
    for ch in 0..c {
        let mut s = R::ZERO;
        for o in 0..outer {
            for &v in &x[(o * c + ch) * inner..][..inner] {
                s = s + v;
            }
        }
        let m = s / count;
        let mut q = R::ZERO;
        for o in 0..outer {
            for &v in &x[(o * c + ch) * inner..][..inner] {
                q = q + (v - m) * (v - m);
            }
        }
        mean[ch] = m;
        var[ch] = q / count;
    }
    (mean, var)
}

/// `out = ((x - mean[ch]) * invstd[ch]) * weight[ch] + shift[ch]` over
/// `(outer, channels, inner)`, associated as MXNet's BatchNorm kernel.
pub fn channel_affine<R: Real>(
    x: &[R],
    (_outer, c, inner): (usize, usize, usize),
    mean: &[R],
    invstd: &[R],
    weight: &[R],
    shift: &[R],
    out: &mut [R],
) {
    par_units(out, inner.max(1), &|first, chunk| {
        for (b, row) in chunk.chunks_mut(inner.max(1)).enumerate() {
            let r = first + b;
            let ch = r % c;
            let xs = &x[r * inner..][..row.len()];
            for (o, &v) in row.iter_mut().zip(xs) {
                *o = ((v - mean[ch]) * invstd[ch]) * weight[ch] + shift[ch];
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_rows_and_columns() {
        let x = [1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0];
        let mut out = [0.0; 6];
        softmax(&x, &mut out, (2, 3, 1), SoftmaxKind::Softmax, false, 1.0, None);
        let e: f64 = (0..3).map(|k| (k as f64).exp()).sum();
        assert!((out[0] - 1.0 / e).abs() < 1e-15 && (out[5] - 2f64.exp() / e).abs() < 1e-15);
        // Along axis 0 of (2, 3): inner = 3.
        softmax(&x, &mut out, (1, 2, 3), SoftmaxKind::Softmax, false, 1.0, None);
        let p = 1.0 / (1.0 + 3f64.exp());
        assert!((out[0] - p).abs() < 1e-15 && (out[3] - (1.0 - p)).abs() < 1e-15);
        // Length 2 of 3: the last entry is 0.
        softmax(&x, &mut out, (2, 3, 1), SoftmaxKind::Softmax, false, 1.0, Some(&[2, 3]));
        assert_eq!(out[2], 0.0);
        assert!((out[0] + out[1] - 1.0).abs() < 1e-15);
    }

    #[test]
    fn activation_gradients_match_differences() {
        let xs = [-1.5f64, -0.3, 0.4, 2.0];
        for act in [Act::Sigmoid, Act::Tanh, Act::SoftRelu, Act::SoftSign, Act::Elu(0.7), Act::Gelu] {
            for &x in &xs {
                let h = 1e-6;
                let num = (act.forward(x + h) - act.forward(x - h)) / (2.0 * h);
                let ana = act.derivative(x, act.forward(x));
                assert!((num - ana).abs() < 1e-6, "{act:?} at {x}: {num} vs {ana}");
            }
        }
    }
}
