//! Pooling over channel-first planes, as MXNet's CPU `pool.h` computes it: 1-D and 2-D
//! pooling are 3-D pooling with unit leading dimensions.
//!
//! A window along one dimension starts at `o·stride - pad`. Max pooling clips it to the
//! input (padding never wins; an empty window gives the lowest finite value) and starts
//! from that value, so NaNs are skipped. Sum-type pooling (avg, sum, lp) divides each
//! term by the window size: avg counts the window up to `input + pad` (the padding
//! included) or, with `count_include_pad` false, only the input positions; sum and lp
//! divide by 1. Lp raises terms to the p-th power without taking absolute values
//! (MXNet's `a_pow_p`) and takes the p-th root of the sum. The max gradient goes to the
//! first position of the window (in d, h, w order) equal to the output.

use crate::unary::Real;
use crate::{f16, Element};

/// How a window is reduced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    Max,
    Avg {
        count_include_pad: bool,
    },
    Sum,
    /// Lp pooling with p in 1..=3.
    Lp(u32),
}

/// Geometry of one pooling: `planes` (batch × channels) planes of spatial `input` (d, h, w)
/// pooled to `output`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeom {
    pub planes: usize,
    pub input: [usize; 3],
    pub output: [usize; 3],
    pub kernel: [usize; 3],
    pub stride: [usize; 3],
    pub pad: [usize; 3],
}

impl PoolGeom {
    fn in_plane(&self) -> usize {
        self.input.iter().product()
    }
    fn out_plane(&self) -> usize {
        self.output.iter().product()
    }
}

/// Window of output position `o` along dimension `i`: the clipped input range, and the
/// extent counted by avg pooling with padding included.
#[inline]
fn window(g: &PoolGeom, i: usize, o: usize) -> (usize, usize, usize) {
    let start = (o * g.stride[i]) as isize - g.pad[i] as isize;
    let n = g.input[i] as isize;
    let end_padded = (start + g.kernel[i] as isize).min(n + g.pad[i] as isize);
    let size = (end_padded - start).max(0) as usize;
    let lo = start.max(0).min(n) as usize;
    let hi = (start + g.kernel[i] as isize).min(n).max(lo as isize) as usize;
    (lo, hi, size)
}

/// Visit every output position of a plane with its windows.
#[inline]
fn for_each_window(g: &PoolGeom, mut f: impl FnMut(usize, [(usize, usize, usize); 3])) {
    let [od, oh, ow] = g.output;
    let mut o = 0;
    for z in 0..od {
        let wz = window(g, 0, z);
        for y in 0..oh {
            let wy = window(g, 1, y);
            for x in 0..ow {
                f(o, [wz, wy, window(g, 2, x)]);
                o += 1;
            }
        }
    }
}

/// Float types pooled natively.
pub trait PoolFloat: Element {
    const LOWEST: Self;
    fn root(self, p: u32) -> Self;
}

impl PoolFloat for f32 {
    const LOWEST: f32 = f32::MIN;
    fn root(self, p: u32) -> f32 {
        match p {
            1 => self,
            2 => self.sqrt(),
            3 => self.cbrt(),
            _ => self.powf(1.0 / p as f32),
        }
    }
}

impl PoolFloat for f64 {
    const LOWEST: f64 = f64::MIN;
    fn root(self, p: u32) -> f64 {
        match p {
            1 => self,
            2 => self.sqrt(),
            3 => self.cbrt(),
            _ => self.powf(1.0 / p as f64),
        }
    }
}

#[inline(always)]
fn pow_p<T: Element>(a: T, p: u32) -> T {
    match p {
        1 => a,
        2 => a.mul(a),
        _ => a.mul(a).mul(a),
    }
}

/// Whether `g` is 2-D (or 1-D) max pooling, the common case in CNNs, which takes the loops
/// below: same results as the general path, without its per-output window arithmetic
/// (about 3x faster on LeNet's 2x2 pools; ResNet's padded 3x3 stem pool about 5x).
fn plain_2d_max(g: &PoolGeom, kind: PoolKind) -> bool {
    kind == PoolKind::Max && g.input[0] == 1 && g.output[0] == 1 && g.kernel[0] == 1 && g.pad[0] == 0
}

/// The clipped input window of each output column.
fn col_windows(g: &PoolGeom) -> impl Iterator<Item = (usize, usize)> + '_ {
    (0..g.output[2]).map(|o| {
        let (lo, hi, _) = window(g, 2, o);
        (lo, hi)
    })
}

/// 2×2 windows at stride 2, unpadded and all inside the input (LeNet's and most CNNs' pooling): the
/// generic window walk costs several times the four compares it does per output.
fn pairs_2x2(g: &PoolGeom) -> bool {
    g.kernel[1..] == [2, 2]
        && g.stride[1..] == [2, 2]
        && g.pad[1..] == [0, 0]
        && 2 * g.output[1] <= g.input[1]
        && 2 * g.output[2] <= g.input[2]
}

/// The window's maximum as the generic walk takes it: `>` in row-major order from
/// LOWEST, so NaN is never chosen.
#[inline(always)]
fn max_2x2<T: PoolFloat>(w: [T; 4]) -> T {
    let mut m = T::LOWEST;
    for v in w {
        if v > m {
            m = v;
        }
    }
    m
}

fn max_plane_2d<T: PoolFloat>(g: &PoolGeom, x: &[T], y: &mut [T]) {
    let (iw, ow) = (g.input[2], g.output[2]);
    if pairs_2x2(g) {
        for (oy, yrow) in y.chunks_exact_mut(ow).enumerate() {
            let (r0, r1) = (&x[2 * oy * iw..][..2 * ow], &x[(2 * oy + 1) * iw..][..2 * ow]);
            for (j, out) in yrow.iter_mut().enumerate() {
                *out = max_2x2([r0[2 * j], r0[2 * j + 1], r1[2 * j], r1[2 * j + 1]]);
            }
        }
        return;
    }
    // The window's rows are reduced first, a whole input row at a time (it vectorizes),
    // into a row padded with LOWEST on both sides (`pad` before the input's columns, and
    // after them as far as the last window reaches). That row is then dealt into one
    // row per phase of the stride (`phases[r][j]` is padded column `j·stride + r`), so
    // that window offset t of every output is one contiguous run, `phases[t % stride]`
    // from `t / stride`, and each offset is a vectorized max across all outputs (a fold
    // per output over its clipped window was 80% of ResNet's 3×3 stem pool, ~0.5 ms at
    // batch 1). Same value as the row-major walk: `>` from LOWEST keeps the first of
    // equal values and skips NaN, so only a tie between -0 and +0 may come out with the
    // other sign.
    let (k, st, pad) = (g.kernel[2], g.stride[2], g.pad[2]);
    let len = ((ow.max(1) - 1) * st + k).max(pad + iw);
    let per_phase = len.div_ceil(st);
    let mut padded = vec![T::LOWEST; len];
    let mut phases = vec![T::LOWEST; st * per_phase];
    for (oy, yrow) in y.chunks_exact_mut(ow).enumerate() {
        let (r0, r1, _) = window(g, 1, oy);
        let column_max = &mut padded[pad..pad + iw];
        column_max.fill(T::LOWEST);
        for row in x[r0 * iw..r1 * iw].chunks_exact(iw) {
            for (m, &v) in column_max.iter_mut().zip(row) {
                // A select, not a conditional store: it vectorizes.
                *m = if v > *m { v } else { *m };
            }
        }
        for (r, phase) in phases.chunks_exact_mut(per_phase).enumerate() {
            for (dst, &v) in phase.iter_mut().zip(padded[r..].iter().step_by(st)) {
                *dst = v;
            }
        }
        yrow.fill(T::LOWEST);
        for t in 0..k {
            let run = &phases[t % st * per_phase + t / st..][..ow];
            for (out, &v) in yrow.iter_mut().zip(run) {
                *out = if v > *out { v } else { *out };
            }
        }
    }
}

fn unmax_plane_2d<T: PoolFloat>(g: &PoolGeom, dy: &[T], x: &[T], y: &[T], dx: &mut [T]) {
    let (iw, ow) = (g.input[2], g.output[2]);
    dx.fill(T::ZERO);
    if pairs_2x2(g) {
        // As the generic walk: the first position (row-major) equal to the output.
        for (oy, (yrow, dyrow)) in y.chunks_exact(ow).zip(dy.chunks_exact(ow)).enumerate() {
            let (r0, r1) = (&x[2 * oy * iw..][..2 * ow], &x[(2 * oy + 1) * iw..][..2 * ow]);
            let (d0, d1) = dx[2 * oy * iw..].split_at_mut(iw);
            for (j, (&out, &grad)) in yrow.iter().zip(dyrow).enumerate() {
                // Windows do not overlap, so each dx element is written once; selects
                // instead of a search keep the data-dependent branches out.
                let hit = [r0[2 * j] == out, r0[2 * j + 1] == out, r1[2 * j] == out, r1[2 * j + 1] == out];
                let first = [
                    hit[0],
                    hit[1] && !hit[0],
                    hit[2] && !(hit[0] || hit[1]),
                    hit[3] && !(hit[0] || hit[1] || hit[2]),
                ];
                let pick = |f: bool| if f { grad } else { T::ZERO };
                d0[2 * j] = pick(first[0]);
                d0[2 * j + 1] = pick(first[1]);
                d1[2 * j] = pick(first[2]);
                d1[2 * j + 1] = pick(first[3]);
            }
        }
        return;
    }
    for (oy, (yrow, dyrow)) in y.chunks_exact(ow).zip(dy.chunks_exact(ow)).enumerate() {
        let (r0, r1, _) = window(g, 1, oy);
        for ((&out, &grad), (c0, c1)) in yrow.iter().zip(dyrow).zip(col_windows(g)) {
            // The first position (row-major) equal to the output takes the gradient.
            'found: for r in r0..r1 {
                let row = r * iw;
                if let Some(j) = x[row + c0..row + c1].iter().position(|&v| v == out) {
                    let at = row + c0 + j;
                    dx[at] = dx[at].add(grad);
                    break 'found;
                }
            }
        }
    }
}

fn pool_plane<T: PoolFloat>(g: &PoolGeom, kind: PoolKind, x: &[T], y: &mut [T]) {
    if plain_2d_max(g, kind) {
        max_plane_2d(g, x, y)
    } else {
        pool_plane_windows(g, kind, x, y)
    }
}

fn pool_plane_windows<T: PoolFloat>(g: &PoolGeom, kind: PoolKind, x: &[T], y: &mut [T]) {
    let [_, ih, iw] = g.input;
    for_each_window(g, |o, [(z0, z1, zs), (y0, y1, ys), (x0, x1, xs)]| {
        y[o] = match kind {
            PoolKind::Max => {
                let mut m = T::LOWEST;
                for z in z0..z1 {
                    for r in y0..y1 {
                        for &v in &x[(z * ih + r) * iw..][x0..x1] {
                            if v > m {
                                m = v;
                            }
                        }
                    }
                }
                m
            }
            _ => {
                let (p, size) = match kind {
                    PoolKind::Avg { count_include_pad: true } => (1, zs * ys * xs),
                    PoolKind::Avg { count_include_pad: false } => (1, (z1 - z0) * (y1 - y0) * (x1 - x0)),
                    PoolKind::Lp(p) => (p, 1),
                    _ => (1, 1),
                };
                let size = T::from_f64(size as f64);
                let mut s = T::ZERO;
                for z in z0..z1 {
                    for r in y0..y1 {
                        for &v in &x[(z * ih + r) * iw..][x0..x1] {
                            s = s.add(pow_p(v, p).div(size));
                        }
                    }
                }
                s.root(p)
            }
        };
    });
}

fn unpool_plane<T: PoolFloat>(g: &PoolGeom, kind: PoolKind, dy: &[T], x: &[T], y: &[T], dx: &mut [T]) {
    if plain_2d_max(g, kind) {
        unmax_plane_2d(g, dy, x, y, dx)
    } else {
        unpool_plane_windows(g, kind, dy, x, y, dx)
    }
}

fn unpool_plane_windows<T: PoolFloat>(
    g: &PoolGeom,
    kind: PoolKind,
    dy: &[T],
    x: &[T],
    y: &[T],
    dx: &mut [T],
) {
    let [_, ih, iw] = g.input;
    dx.fill(T::ZERO);
    for_each_window(g, |o, [(z0, z1, zs), (y0, y1, ys), (x0, x1, xs)]| match kind {
        PoolKind::Max => {
            'found: for z in z0..z1 {
                for r in y0..y1 {
                    let row = (z * ih + r) * iw;
                    if let Some(j) = x[row + x0..row + x1].iter().position(|&v| v == y[o]) {
                        let at = row + x0 + j;
                        dx[at] = dx[at].add(dy[o]);
                        break 'found;
                    }
                }
            }
        }
        _ => {
            let (p, size) = match kind {
                PoolKind::Avg { count_include_pad: true } => (1, zs * ys * xs),
                PoolKind::Avg { count_include_pad: false } => (1, (z1 - z0) * (y1 - y0) * (x1 - x0)),
                PoolKind::Lp(p) => (p, 1),
                _ => (1, 1),
            };
            let size = T::from_f64(size as f64);
            let (g_out, out) = (dy[o], y[o]);
            for z in z0..z1 {
                for r in y0..y1 {
                    let row = (z * ih + r) * iw;
                    for at in row + x0..row + x1 {
                        let v = x[at];
                        let grad = match p {
                            1 => g_out,
                            _ if out == T::ZERO => T::ZERO,
                            2 => g_out.mul(v.div(out)),
                            _ => {
                                let ratio = v.div(out);
                                g_out.mul(ratio).mul(ratio)
                            }
                        };
                        dx[at] = dx[at].add(grad.div(size));
                    }
                }
            }
        }
    });
}

/// Planes per parallel task for this geometry, or None to stay on one thread.
fn planes_per_task(g: &PoolGeom) -> Option<usize> {
    let work = g.planes * (g.in_plane() + g.out_plane() * g.kernel.iter().product::<usize>());
    let threads = crate::parallel::threads();
    (threads > 1 && work >= 1 << 15 && g.planes > 1).then(|| g.planes.div_ceil(threads * 4).max(1))
}

fn check(g: &PoolGeom, x: usize, y: usize) {
    assert!(
        x == g.planes * g.in_plane() && y == g.planes * g.out_plane(),
        "pool: slice lengths {x}, {y} do not fit {g:?}"
    );
}

/// Pool `x` (planes × input) into `y` (planes × output).
pub fn pool<T: PoolFloat>(g: &PoolGeom, kind: PoolKind, x: &[T], y: &mut [T]) {
    check(g, x.len(), y.len());
    let (si, so) = (g.in_plane(), g.out_plane());
    if so == 0 {
        return;
    }
    match planes_per_task(g) {
        Some(per) => crate::parallel::chunks(y, per * so, &|t, ys| {
            for (i, y) in ys.chunks_exact_mut(so).enumerate() {
                pool_plane(g, kind, &x[(t * per + i) * si..][..si], y);
            }
        }),
        None => {
            for (p, y) in y.chunks_exact_mut(so).enumerate() {
                pool_plane(g, kind, &x[p * si..][..si], y);
            }
        }
    }
}

/// Gradient of [`pool`]: `dx` (overwritten) from the output gradient `dy`, input `x` and
/// output `y`.
pub fn unpool<T: PoolFloat>(g: &PoolGeom, kind: PoolKind, dy: &[T], x: &[T], y: &[T], dx: &mut [T]) {
    check(g, x.len(), y.len());
    assert!(dy.len() == y.len() && dx.len() == x.len());
    let (si, so) = (g.in_plane(), g.out_plane());
    if si == 0 {
        return;
    }
    let plane = |p: usize, dx: &mut [T]| {
        unpool_plane(g, kind, &dy[p * so..][..so], &x[p * si..][..si], &y[p * so..][..so], dx)
    };
    match planes_per_task(g) {
        Some(per) => crate::parallel::chunks(dx, per * si, &|t, xs| {
            for (i, dx) in xs.chunks_exact_mut(si).enumerate() {
                plane(t * per + i, dx);
            }
        }),
        None => {
            for (p, dx) in dx.chunks_exact_mut(si).enumerate() {
                plane(p, dx);
            }
        }
    }
}

/// Pooling of one element type, compiled once here (see `reduce::Reduce`).
pub trait Pool: Element {
    fn pool(g: &PoolGeom, kind: PoolKind, x: &[Self], y: &mut [Self]);
    fn unpool(g: &PoolGeom, kind: PoolKind, dy: &[Self], x: &[Self], y: &[Self], dx: &mut [Self]);
}

macro_rules! impl_pool {
    ($($t:ty),*) => {$(
        impl Pool for $t {
            fn pool(g: &PoolGeom, kind: PoolKind, x: &[$t], y: &mut [$t]) {
                pool(g, kind, x, y)
            }
            fn unpool(g: &PoolGeom, kind: PoolKind, dy: &[$t], x: &[$t], y: &[$t], dx: &mut [$t]) {
                unpool(g, kind, dy, x, y, dx)
            }
        }
    )*};
}
impl_pool!(f32, f64);

fn widen(x: &[f16]) -> Vec<f32> {
    x.iter().map(|v| v.to_f32()).collect()
}

// float16 pools through f32 copies: MXNet accumulates half sums in float too, and max
// compares exactly.
impl Pool for f16 {
    fn pool(g: &PoolGeom, kind: PoolKind, x: &[f16], y: &mut [f16]) {
        let mut wide = vec![0f32; y.len()];
        pool(g, kind, &widen(x), &mut wide);
        for (d, s) in y.iter_mut().zip(wide) {
            *d = f16::from_f32(s);
        }
    }
    fn unpool(g: &PoolGeom, kind: PoolKind, dy: &[f16], x: &[f16], y: &[f16], dx: &mut [f16]) {
        let mut wide = vec![0f32; dx.len()];
        unpool(g, kind, &widen(dy), &widen(x), &widen(y), &mut wide);
        for (d, s) in dx.iter_mut().zip(wide) {
            *d = f16::from_f32(s);
        }
    }
}

/// Input rows `[start, end)` that adaptive pooling averages for output `o` of `n_out`
/// over `n_in` (MXNet's `START_IND`/`END_IND`, computed in f32 as there).
fn adaptive_bin(o: usize, n_out: usize, n_in: usize) -> (usize, usize) {
    let start = ((o * n_in) as f32 / n_out as f32).floor() as usize;
    let end = (((o + 1) * n_in) as f32 / n_out as f32).ceil() as usize;
    (start, end.min(n_in))
}

/// Adaptive average pooling of `planes` planes `(h, w)` to `(oh, ow)`
/// (`_contrib_AdaptiveAvgPooling2D`): each output averages its bin.
pub fn adaptive_avg_pool2d<R: Real>(
    x: &[R],
    y: &mut [R],
    planes: usize,
    (h, w): (usize, usize),
    (oh, ow): (usize, usize),
) {
    for p in 0..planes {
        let (xp, yp) = (&x[p * h * w..(p + 1) * h * w], &mut y[p * oh * ow..(p + 1) * oh * ow]);
        for i in 0..oh {
            let (h0, h1) = adaptive_bin(i, oh, h);
            for j in 0..ow {
                let (w0, w1) = adaptive_bin(j, ow, w);
                let mut sum = R::ZERO;
                for r in h0..h1 {
                    for c in w0..w1 {
                        sum = sum + xp[r * w + c];
                    }
                }
                yp[i * ow + j] = sum / R::from_f64((w1 - w0) as f64) / R::from_f64((h1 - h0) as f64);
            }
        }
    }
}

/// Gradient of [`adaptive_avg_pool2d`]: each output's gradient spread evenly over its bin.
pub fn adaptive_avg_pool2d_backward<R: Real>(
    dy: &[R],
    dx: &mut [R],
    planes: usize,
    (h, w): (usize, usize),
    (oh, ow): (usize, usize),
) {
    dx.fill(R::ZERO);
    for p in 0..planes {
        let (gp, dp) = (&dy[p * oh * ow..(p + 1) * oh * ow], &mut dx[p * h * w..(p + 1) * h * w]);
        for i in 0..oh {
            let (h0, h1) = adaptive_bin(i, oh, h);
            for j in 0..ow {
                let (w0, w1) = adaptive_bin(j, ow, w);
                let delta = gp[i * ow + j] / R::from_f64((h1 - h0) as f64) / R::from_f64((w1 - w0) as f64);
                for r in h0..h1 {
                    for c in w0..w1 {
                        dp[r * w + c] = dp[r * w + c] + delta;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geom2(planes: usize, h: usize, w: usize, k: usize, s: usize, p: usize) -> PoolGeom {
        let o = |n: usize| (n + 2 * p - k) / s + 1;
        PoolGeom {
            planes,
            input: [1, h, w],
            output: [1, o(h), o(w)],
            kernel: [1, k, k],
            stride: [1, s, s],
            pad: [0, p, p],
        }
    }

    #[test]
    fn max_and_avg_small() {
        let x: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let g = geom2(1, 4, 4, 2, 2, 0);
        let mut y = vec![0.0; 4];
        pool(&g, PoolKind::Max, &x, &mut y);
        assert_eq!(y, [5.0, 7.0, 13.0, 15.0]);
        pool(&g, PoolKind::Avg { count_include_pad: true }, &x, &mut y);
        assert_eq!(y, [2.5, 4.5, 10.5, 12.5]);
        let mut dx = vec![9.0; 16];
        unpool(&g, PoolKind::Max, &[1.0, 2.0, 3.0, 4.0], &x, &[5.0, 7.0, 13.0, 15.0], &mut dx);
        assert_eq!(dx[5], 1.0);
        assert_eq!(dx[15], 4.0);
        assert_eq!(dx.iter().sum::<f32>(), 10.0);
        // Padding: 3x3 windows with pad 1 over 2x2, include vs exclude.
        let g = geom2(1, 2, 2, 3, 1, 1);
        let x = [1.0f32, 2.0, 3.0, 4.0];
        let mut y = vec![0.0; 4];
        pool(&g, PoolKind::Avg { count_include_pad: true }, &x, &mut y);
        assert_eq!(y, [10.0 / 9.0; 4]);
        pool(&g, PoolKind::Avg { count_include_pad: false }, &x, &mut y);
        assert_eq!(y, [2.5; 4]);
        pool(&g, PoolKind::Lp(2), &x, &mut y);
        assert!((y[0] - 30f32.sqrt()).abs() < 1e-5);
    }

    #[test]
    fn parallel_matches_serial() {
        let g = geom2(64, 24, 24, 2, 2, 0);
        let x: Vec<f64> = (0..64 * 576).map(|i| ((i * 37) % 101) as f64).collect();
        let mut y = vec![0.0; 64 * 144];
        pool(&g, PoolKind::Max, &x, &mut y);
        let mut y1 = vec![0.0; 144];
        pool_plane(&g, PoolKind::Max, &x[63 * 576..], &mut y1);
        assert_eq!(&y[63 * 144..], &y1[..]);
    }

    #[test]
    fn plain_max_path_equals_window_path() {
        // Non-overlapping (2x2 fast path, also with an unused last row and column),
        // overlapping and clipped ("full" convention) windows, with ties and a NaN.
        for (h, w, k, s, p, full) in [
            (8, 8, 2, 2, 0, false),
            (9, 7, 2, 2, 0, false),
            (7, 9, 3, 2, 0, false),
            (5, 5, 2, 2, 0, true),
            (6, 1, 3, 1, 0, false),
            (12, 12, 3, 2, 1, false),
            (11, 9, 3, 2, 1, true),
            (6, 7, 3, 1, 1, false),
            (5, 6, 4, 3, 2, true),
        ] {
            let o = |n: usize| {
                let n = n + 2 * p;
                if full {
                    (n - k).div_ceil(s) + 1
                } else {
                    (n - k) / s + 1
                }
            };
            let g = PoolGeom {
                planes: 1,
                input: [1, h, w],
                output: [1, o(h), if w == 1 { 1 } else { o(w) }],
                kernel: [1, k, if w == 1 { 1 } else { k }],
                stride: [1, s, if w == 1 { 1 } else { s }],
                pad: [0, p, if w == 1 { 0 } else { p }],
            };
            assert!(plain_2d_max(&g, PoolKind::Max));
            let mut x: Vec<f32> = (0..h * w).map(|i| ((i * 7) % 5) as f32).collect();
            x[1] = f32::NAN;
            let n = g.out_plane();
            let (mut fast, mut slow) = (vec![0.0; n], vec![0.0; n]);
            max_plane_2d(&g, &x, &mut fast);
            pool_plane_windows(&g, PoolKind::Max, &x, &mut slow);
            assert_eq!(fast, slow, "{g:?}");
            let dy: Vec<f32> = (0..n).map(|i| i as f32 + 1.0).collect();
            let (mut dfast, mut dslow) = (vec![7.0; h * w], vec![7.0; h * w]);
            unmax_plane_2d(&g, &dy, &x, &fast, &mut dfast);
            unpool_plane_windows(&g, PoolKind::Max, &dy, &x, &fast, &mut dslow);
            assert_eq!(dfast, dslow, "{g:?}");
        }
    }
}

/// The reduction of MXNet's legacy `Pooling_v1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolV1Kind {
    Max,
    Avg,
    Sum,
}

/// 2-D geometry of `Pooling_v1`, which runs mshadow's `pool` on a zero-padded image: the
/// window of output `o` starts at `o * stride` in the padded image and is clipped to it,
/// padding takes part as 0 (also in max), and avg divides by the whole kernel area.
#[derive(Clone, Copy, Debug)]
pub struct PoolV1 {
    pub kind: PoolV1Kind,
    /// (batch * channels, input h, input w).
    pub planes: usize,
    pub hw: (usize, usize),
    pub out: (usize, usize),
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    pub pad: (usize, usize),
}

impl PoolV1 {
    /// Padded-image rows (or columns) of output index `o` along one axis.
    fn window(o: usize, k: usize, s: usize, padded: usize) -> std::ops::Range<usize> {
        (o * s).min(padded)..(o * s + k).min(padded)
    }

    /// The value at padded position `(y, x)` of plane `p`: 0 in the padding.
    fn at<R: Real>(&self, x: &[R], p: usize, y: usize, xx: usize) -> R {
        let (h, w) = self.hw;
        match (y.checked_sub(self.pad.0), xx.checked_sub(self.pad.1)) {
            (Some(iy), Some(ix)) if iy < h && ix < w => x[(p * h + iy) * w + ix],
            _ => R::ZERO,
        }
    }

    pub fn forward<R: Real>(&self, x: &[R], y: &mut [R]) {
        let (ph, pw) = (self.hw.0 + 2 * self.pad.0, self.hw.1 + 2 * self.pad.1);
        let (oh, ow) = self.out;
        let area = R::from_f64((self.kernel.0 * self.kernel.1) as f64);
        for p in 0..self.planes {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc =
                        if self.kind == PoolV1Kind::Max { R::from_f64(f64::NEG_INFINITY) } else { R::ZERO };
                    for yy in Self::window(oy, self.kernel.0, self.stride.0, ph) {
                        for xx in Self::window(ox, self.kernel.1, self.stride.1, pw) {
                            let v = self.at(x, p, yy, xx);
                            acc = match self.kind {
                                PoolV1Kind::Max if v > acc => v,
                                PoolV1Kind::Max => acc,
                                _ => acc + v,
                            };
                        }
                    }
                    y[(p * oh + oy) * ow + ox] = if self.kind == PoolV1Kind::Avg { acc / area } else { acc };
                }
            }
        }
    }

    /// mshadow's `unpool`: max sends a window's gradient to every element equal to its
    /// maximum; avg and sum spread it over the window (avg scaled by 1 / kernel area).
    pub fn backward<R: Real>(&self, x: &[R], y: &[R], dy: &[R], dx: &mut [R]) {
        let (h, w) = self.hw;
        let (ph, pw) = (h + 2 * self.pad.0, w + 2 * self.pad.1);
        let (oh, ow) = self.out;
        let area = R::from_f64((self.kernel.0 * self.kernel.1) as f64);
        dx.fill(R::ZERO);
        for p in 0..self.planes {
            for oy in 0..oh {
                for ox in 0..ow {
                    let o = (p * oh + oy) * ow + ox;
                    for yy in Self::window(oy, self.kernel.0, self.stride.0, ph) {
                        for xx in Self::window(ox, self.kernel.1, self.stride.1, pw) {
                            let (Some(iy), Some(ix)) =
                                (yy.checked_sub(self.pad.0), xx.checked_sub(self.pad.1))
                            else {
                                continue;
                            };
                            if iy >= h || ix >= w {
                                continue;
                            }
                            let i = (p * h + iy) * w + ix;
                            let g = match self.kind {
                                PoolV1Kind::Max if x[i] == y[o] => dy[o],
                                PoolV1Kind::Max => R::ZERO,
                                PoolV1Kind::Avg => dy[o] / area,
                                PoolV1Kind::Sum => dy[o],
                            };
                            dx[i] = dx[i] + g;
                        }
                    }
                }
            }
        }
    }
}
