//! Reductions over any set of axes, arg-max/min along one axis, broadcasting copies and the
//! n-ary sum, on contiguous row-major slices.
//!
//! A reduction first merges adjacent dimensions that are reduced (or kept) together and drops
//! size-1 ones, so `sum(axis=(1, 2))` of `(N, C, H, W)` runs as `(N, C·H, W)` with the
//! middle block reduced. Two loop shapes then cover every case without transposing: a
//! reduced innermost block is folded as contiguous runs (several independent accumulators,
//! so the loop vectorizes), and a kept innermost block is folded a strip of columns at a time
//! (one accumulator per column, rows of the input streamed through). Floats accumulate wider
//! than they are stored (f32 in f64, half types in f32), which gives what MXNet's Kahan
//! summation gives; integers wrap in their own type, as MXNet's do. Work is split over
//! threads only along boundaries fixed by the shape, so a result never depends on the
//! thread count.

use rayon::prelude::*;

use crate::elementwise::PARALLEL_MIN;
use crate::{bf16, f16, Element};

/// Enough work for one parallel task (elements read).
const TASK_WORK: usize = 1 << 14;
/// Columns folded together when the innermost dimension is kept.
const COLS: usize = 256;
/// Contiguous run folded before merging into the running result; fixes the summation
/// order independently of threading.
const BLOCK: usize = 1 << 13;
/// Independent accumulators in a contiguous fold.
const LANES: usize = 8;

/// How an element type accumulates in reductions.
pub trait Accumulate: Element {
    /// f64 for f32 and f64, f32 for half types, the type itself for integers.
    type Acc: Element;
    /// Identity of `max`: -inf for floats, the minimum for integers.
    const LOWEST: Self::Acc;
    /// Identity of `min`.
    const HIGHEST: Self::Acc;
    fn widen(self) -> Self::Acc;
    fn narrow(acc: Self::Acc) -> Self;
    /// A count or an index converted as C++'s `static_cast` does (integers wrap).
    fn from_usize(n: usize) -> Self;
}

macro_rules! int_accumulate {
    ($($t:ty),*) => {$(
        impl Accumulate for $t {
            type Acc = $t;
            const LOWEST: $t = <$t>::MIN;
            const HIGHEST: $t = <$t>::MAX;
            #[inline(always)]
            fn widen(self) -> $t { self }
            #[inline(always)]
            fn narrow(acc: $t) -> $t { acc }
            #[inline(always)]
            fn from_usize(n: usize) -> $t { n as $t }
        }
    )*};
}
int_accumulate!(u8, i8, i32, i64);

macro_rules! float_accumulate {
    ($($t:ty => $acc:ty, $widen:expr, $narrow:expr);*) => {$(
        impl Accumulate for $t {
            type Acc = $acc;
            const LOWEST: $acc = <$acc>::NEG_INFINITY;
            const HIGHEST: $acc = <$acc>::INFINITY;
            #[inline(always)]
            fn widen(self) -> $acc { $widen(self) }
            #[inline(always)]
            fn narrow(acc: $acc) -> $t { $narrow(acc) }
            #[inline(always)]
            fn from_usize(n: usize) -> $t { <$t as Element>::from_f64(n as f64) }
        }
    )*};
}
float_accumulate!(
    f32 => f64, |x: f32| x as f64, |a: f64| a as f32;
    f64 => f64, |x: f64| x, |a: f64| a;
    f16 => f32, f16::to_f32, f16::from_f32;
    bf16 => f32, bf16::to_f32, bf16::from_f32
);

/// One reduction: fold elements into an accumulator, merge partial accumulators, and turn
/// the final accumulator into the output value.
pub trait Reducer<T>: Copy + Send + Sync {
    type Acc: Copy + Send + Sync;
    type Out: Copy + Send + Sync;
    fn init(self) -> Self::Acc;
    fn fold(self, acc: Self::Acc, x: T) -> Self::Acc;
    fn merge(self, a: Self::Acc, b: Self::Acc) -> Self::Acc;
    fn finish(self, acc: Self::Acc) -> Self::Out;
}

#[inline(always)]
#[allow(clippy::eq_op)]
fn is_nan<A: PartialEq + Copy>(a: A) -> bool {
    a != a
}

/// MXNet's `red::maximum`: a NaN, once met, wins.
#[inline(always)]
fn max_nan<A: PartialOrd + Copy>(a: A, b: A) -> A {
    if is_nan(a) || a >= b {
        a
    } else {
        b
    }
}

#[inline(always)]
fn min_nan<A: PartialOrd + Copy>(a: A, b: A) -> A {
    if is_nan(a) || a <= b {
        a
    } else {
        b
    }
}

#[inline(always)]
fn abs<A: Element>(a: A) -> A {
    if a < A::ZERO {
        A::ZERO.sub(a)
    } else {
        a
    }
}

macro_rules! reducer {
    ($(#[$doc:meta])* $name:ident -> $out:ty, $init:expr,
     fold |$a:ident, $x:ident| $fold:expr, merge |$p:ident, $q:ident| $merge:expr,
     finish |$f:ident| $finish:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default)]
        pub struct $name;
        impl<T: Accumulate> Reducer<T> for $name {
            type Acc = T::Acc;
            type Out = $out;
            #[inline(always)]
            fn init(self) -> T::Acc { $init }
            #[inline(always)]
            fn fold(self, $a: T::Acc, $x: T) -> T::Acc { $fold }
            #[inline(always)]
            fn merge(self, $p: T::Acc, $q: T::Acc) -> T::Acc { $merge }
            #[inline(always)]
            fn finish(self, $f: T::Acc) -> $out { $finish }
        }
    };
}

reducer!(
    /// Sum (`sum`, and `mean` before its division).
    Sum -> T, <T::Acc as Element>::ZERO,
    fold |a, x| a.add(x.widen()), merge |a, b| a.add(b), finish |a| T::narrow(a)
);
reducer!(
    /// Sum skipping NaNs.
    NanSum -> T, <T::Acc as Element>::ZERO,
    fold |a, x| if is_nan(x) { a } else { a.add(x.widen()) }, merge |a, b| a.add(b),
    finish |a| T::narrow(a)
);
reducer!(
    /// Product.
    Prod -> T, <T::Acc as Element>::ONE,
    fold |a, x| a.mul(x.widen()), merge |a, b| a.mul(b), finish |a| T::narrow(a)
);
reducer!(
    /// Product skipping NaNs.
    NanProd -> T, <T::Acc as Element>::ONE,
    fold |a, x| if is_nan(x) { a } else { a.mul(x.widen()) }, merge |a, b| a.mul(b),
    finish |a| T::narrow(a)
);
reducer!(
    /// Maximum; NaN if any element is NaN.
    Max -> T, T::LOWEST,
    fold |a, x| max_nan(a, x.widen()), merge |a, b| max_nan(a, b), finish |a| T::narrow(a)
);
reducer!(
    /// Minimum; NaN if any element is NaN.
    Min -> T, T::HIGHEST,
    fold |a, x| min_nan(a, x.widen()), merge |a, b| min_nan(a, b), finish |a| T::narrow(a)
);
reducer!(
    /// Sum of absolute values, as f64 (`norm`, ord 1).
    L1Norm -> f64, <T::Acc as Element>::ZERO,
    fold |a, x| a.add(abs(x.widen())), merge |a, b| a.add(b), finish |a| a.to_f64()
);
reducer!(
    /// Square root of the sum of squares, as f64 (`norm`, ord 2).
    L2Norm -> f64, <T::Acc as Element>::ZERO,
    fold |a, x| { let w = x.widen(); a.add(w.mul(w)) }, merge |a, b| a.add(b),
    finish |a| a.to_f64().sqrt()
);

/// Fold a contiguous run with independent accumulators (the loop vectorizes); the result
/// depends only on the run.
#[inline(always)]
fn fold_run<T: Copy, R: Reducer<T>>(r: R, xs: &[T]) -> R::Acc {
    if xs.len() < 2 * LANES {
        return xs.iter().fold(r.init(), |a, &x| r.fold(a, x));
    }
    let mut lanes = [r.init(); LANES];
    let chunks = xs.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for k in 0..LANES {
            lanes[k] = r.fold(lanes[k], c[k]);
        }
    }
    let acc = lanes[1..].iter().fold(lanes[0], |a, &b| r.merge(a, b));
    rest.iter().fold(acc, |a, &x| r.fold(a, x))
}

/// Row-major walk over a multi-index of `(size, stride)` dimensions, tracking the offset.
struct Walk<'a> {
    dims: &'a [(usize, usize)],
    idx: Vec<usize>,
    offset: usize,
}

impl<'a> Walk<'a> {
    /// Start at row-major position `pos`.
    fn at(dims: &'a [(usize, usize)], mut pos: usize) -> Self {
        let mut idx = vec![0; dims.len()];
        let mut offset = 0;
        for (d, &(size, stride)) in dims.iter().enumerate().rev() {
            idx[d] = pos % size;
            pos /= size;
            offset += idx[d] * stride;
        }
        Walk { dims, idx, offset }
    }

    fn advance(&mut self) {
        for (d, &(size, stride)) in self.dims.iter().enumerate().rev() {
            self.idx[d] += 1;
            self.offset += stride;
            if self.idx[d] < size {
                return;
            }
            self.offset -= size * stride;
            self.idx[d] = 0;
        }
    }
}

/// Offsets of every position of `dims`, in row-major order (`[0]` for no dimensions).
fn offsets(dims: &[(usize, usize)]) -> Vec<usize> {
    let n = dims.iter().map(|d| d.0).product();
    let mut walk = Walk::at(dims, 0);
    (0..n)
        .map(|_| {
            let o = walk.offset;
            walk.advance();
            o
        })
        .collect()
}

/// Split `out` into chunks of whole `unit`s, each worth about [`TASK_WORK`] elements of
/// work at `work_per_unit`, and run `f(first_unit, chunk)` on each, in parallel when
/// `parallel`.
fn for_each_chunk<O: Send, F>(out: &mut [O], unit: usize, work_per_unit: usize, parallel: bool, f: F)
where
    F: Fn(usize, &mut [O]) + Sync,
{
    if out.is_empty() || unit == 0 {
        return;
    }
    if !parallel {
        return f(0, out);
    }
    let units = TASK_WORK.div_ceil(work_per_unit.max(1)).max(1);
    out.par_chunks_mut(unit * units).enumerate().for_each(|(c, chunk)| f(c * units, chunk));
}

/// Dimensions of `shape` with reduced flags, size-1 dimensions dropped and runs of equal
/// flags merged, with their row-major strides: `(size, stride, reduced)`.
fn merge_dims(shape: &[usize], reduced: &[bool]) -> Vec<(usize, usize, bool)> {
    let mut merged: Vec<(usize, usize, bool)> = Vec::new();
    for (&d, &red) in shape.iter().zip(reduced) {
        match merged.last_mut() {
            _ if d == 1 => {}
            Some(last) if last.2 == red => last.0 *= d,
            _ => merged.push((d, 0, red)),
        }
    }
    if merged.is_empty() {
        merged.push((1, 0, false));
    }
    let mut stride = 1;
    for m in merged.iter_mut().rev() {
        m.1 = stride;
        stride *= m.0;
    }
    merged
}

/// Reduce `x` (row-major, `shape`) over the dimensions flagged in `reduced` into `out`,
/// whose length is the product of the kept dimensions. An empty reduction gives
/// `finish(init)`.
pub fn reduce<T: Copy + Sync, R: Reducer<T>>(
    x: &[T],
    shape: &[usize],
    reduced: &[bool],
    out: &mut [R::Out],
    r: R,
) {
    debug_assert_eq!(shape.iter().product::<usize>(), x.len());
    if x.is_empty() {
        out.fill(r.finish(r.init()));
        return;
    }
    let dims = merge_dims(shape, reduced);
    let parallel = x.len() >= PARALLEL_MIN;
    let &(inner, _, inner_reduced) = dims.last().unwrap_or(&(1, 1, false));
    let select = |red: bool, upto: usize| -> Vec<(usize, usize)> {
        dims[..upto].iter().filter(|d| d.2 == red).map(|d| (d.0, d.1)).collect()
    };
    if inner_reduced {
        // Each output folds runs of `inner` contiguous elements, one run per position of
        // the other reduced dimensions.
        let kept = select(false, dims.len());
        let runs = offsets(&select(true, dims.len() - 1));
        let per_out = runs.len() * inner;
        let fold_out = |base: usize, acc: &mut R::Acc, blocks: std::ops::Range<usize>| {
            let per_run = inner.div_ceil(BLOCK);
            for b in blocks {
                let (run, k) = (runs[b / per_run], b % per_run);
                let start = base + run + k * BLOCK;
                let end = base + run + inner.min((k + 1) * BLOCK);
                *acc = r.merge(*acc, fold_run(r, &x[start..end]));
            }
        };
        let n_blocks = runs.len() * inner.div_ceil(BLOCK);
        if parallel && out.len() < 2 * rayon::current_num_threads() {
            // Few outputs: split each one's blocks over threads, merge in order.
            let mut walk = Walk::at(&kept, 0);
            for o in out.iter_mut() {
                let base = walk.offset;
                let parts: Vec<R::Acc> = (0..n_blocks)
                    .into_par_iter()
                    .map(|b| {
                        let mut acc = r.init();
                        fold_out(base, &mut acc, b..b + 1);
                        acc
                    })
                    .collect();
                *o = r.finish(parts.into_iter().fold(r.init(), |a, p| r.merge(a, p)));
                walk.advance();
            }
        } else {
            for_each_chunk(out, 1, per_out, parallel, |first, chunk| {
                let mut walk = Walk::at(&kept, first);
                for o in chunk {
                    let mut acc = r.init();
                    fold_out(walk.offset, &mut acc, 0..n_blocks);
                    *o = r.finish(acc);
                    walk.advance();
                }
            });
        }
    } else {
        // Each row of `inner` outputs is folded a strip of columns at a time over every
        // position of the reduced dimensions.
        let kept = select(false, dims.len() - 1);
        let reduced_at = offsets(&select(true, dims.len()));
        let nested = parallel && out.len() / inner < 2 * rayon::current_num_threads() && inner > COLS;
        let strip = |base: usize, j0: usize, o: &mut [R::Out]| {
            let mut acc = [r.init(); COLS];
            let acc = &mut acc[..o.len()];
            for &at in &reduced_at {
                let xs = &x[base + at + j0..base + at + j0 + o.len()];
                for (a, &v) in acc.iter_mut().zip(xs) {
                    *a = r.fold(*a, v);
                }
            }
            for (o, &a) in o.iter_mut().zip(acc.iter()) {
                *o = r.finish(a);
            }
        };
        for_each_chunk(out, inner, reduced_at.len() * inner, parallel, |first, chunk| {
            let mut walk = Walk::at(&kept, first);
            for orow in chunk.chunks_mut(inner) {
                let base = walk.offset;
                if nested {
                    orow.par_chunks_mut(COLS).enumerate().for_each(|(s, o)| strip(base, s * COLS, o));
                } else {
                    orow.chunks_mut(COLS).enumerate().for_each(|(s, o)| strip(base, s * COLS, o));
                }
                walk.advance();
            }
        });
    }
}

/// Index of the first maximum (`max`) or minimum along the middle axis of `x` viewed as
/// `(outer, m, inner)`, written as `T` into `out` (`(outer, inner)`), as MXNet's
/// `argmax`/`argmin`: the first NaN counts as the extreme. `m` must be at least 1.
pub fn arg_reduce<T: Accumulate>(x: &[T], outer: usize, m: usize, inner: usize, out: &mut [T], max: bool) {
    if max {
        arg_reduce_by(x, outer, m, inner, out, |best, v| best < v || is_nan(v));
    } else {
        arg_reduce_by(x, outer, m, inner, out, |best, v| best > v || is_nan(v));
    }
}

fn arg_reduce_by<T: Accumulate, F>(x: &[T], outer: usize, m: usize, inner: usize, out: &mut [T], better: F)
where
    F: Fn(T::Acc, T::Acc) -> bool + Sync,
{
    debug_assert!(x.len() == outer * m * inner && out.len() == outer * inner && m > 0);
    let strip = |o: usize, j0: usize, dst: &mut [T]| {
        let xo = &x[o * m * inner + j0..];
        let mut best = [<T::Acc as Element>::ZERO; COLS];
        let mut idx = [0usize; COLS];
        let (best, idx) = (&mut best[..dst.len()], &mut idx[..dst.len()]);
        for (b, &v) in best.iter_mut().zip(xo) {
            *b = v.widen();
        }
        for k in 1..m {
            let row = &xo[k * inner..k * inner + dst.len()];
            for ((b, i), &v) in best.iter_mut().zip(idx.iter_mut()).zip(row) {
                let v = v.widen();
                if !is_nan(*b) && better(*b, v) {
                    *b = v;
                    *i = k;
                }
            }
        }
        for (d, &i) in dst.iter_mut().zip(idx.iter()) {
            *d = T::from_usize(i);
        }
    };
    let parallel = x.len() >= PARALLEL_MIN;
    for_each_chunk(out, inner, m * inner, parallel, |first, chunk| {
        for (r, orow) in chunk.chunks_mut(inner).enumerate() {
            orow.chunks_mut(COLS).enumerate().for_each(|(s, dst)| strip(first + r, s * COLS, dst));
        }
    });
}

/// `out[idx] = x[idx · strides]` over `out_shape`, with strides from
/// [`crate::elementwise::broadcast_strides`].
pub fn broadcast_copy<T: Copy + Send + Sync>(x: &[T], strides: &[usize], out: &mut [T], out_shape: &[usize]) {
    if out.is_empty() {
        return;
    }
    // Drop size-1 dimensions and merge neighbours that step through x as one.
    let mut dims: Vec<(usize, usize)> = Vec::new();
    for (&size, &stride) in out_shape.iter().zip(strides) {
        match dims.last_mut() {
            _ if size == 1 => {}
            Some(last) if last.1 == stride * size => *last = (last.0 * size, stride),
            _ => dims.push((size, stride)),
        }
    }
    let (inner, step) = dims.pop().unwrap_or((1, 1));
    for_each_chunk(out, inner, inner, out.len() >= PARALLEL_MIN, |first, chunk| {
        let mut walk = Walk::at(&dims, first);
        for row in chunk.chunks_mut(inner) {
            let src = &x[walk.offset..];
            match step {
                0 => row.fill(src[0]),
                1 => row.copy_from_slice(&src[..inner]),
                _ => row.iter_mut().enumerate().for_each(|(j, o)| *o = src[j * step]),
            }
            walk.advance();
        }
    });
}

/// Elementwise sum of `inputs` (at least one, all of `out`'s length), associating as
/// MXNet's `add_n` does: `a0 + (a1 + (a2 + a3))` for up to four inputs, left to right
/// beyond.
pub fn add_n<T: Element>(inputs: &[&[T]], out: &mut [T]) {
    const CHUNK: usize = 1 << 12;
    let n = inputs.len();
    let part = |c: usize, o: &mut [T]| {
        let (at, len) = (c * CHUNK, o.len());
        let slice = |i: usize| &inputs[i][at..at + len];
        if n <= 4 {
            o.copy_from_slice(slice(n - 1));
            for i in (0..n - 1).rev() {
                o.iter_mut().zip(slice(i)).for_each(|(o, &a)| *o = a.add(*o));
            }
        } else {
            o.copy_from_slice(slice(0));
            for i in 1..n {
                o.iter_mut().zip(slice(i)).for_each(|(o, &a)| *o = o.add(a));
            }
        }
    };
    if n == 0 {
        return;
    }
    if out.len() * n >= PARALLEL_MIN {
        out.par_chunks_mut(CHUNK).enumerate().for_each(|(c, o)| part(c, o));
    } else {
        out.chunks_mut(CHUNK).enumerate().for_each(|(c, o)| part(c, o));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reduce_vec<R: Reducer<f32, Out = f32>>(x: &[f32], shape: &[usize], red: &[bool], r: R) -> Vec<f32> {
        let n = shape.iter().zip(red).filter(|(_, &r)| !r).map(|(&d, _)| d).product();
        let mut out = vec![0.0; n];
        reduce(x, shape, red, &mut out, r);
        out
    }

    #[test]
    fn reduces_any_axes() {
        let x: Vec<f32> = (0..24).map(|v| v as f32).collect();
        let s = [2, 3, 4];
        assert_eq!(reduce_vec(&x, &s, &[true, true, true], Sum), vec![276.0]);
        assert_eq!(reduce_vec(&x, &s, &[false, true, false], Sum)[..4], [12.0, 15.0, 18.0, 21.0]);
        assert_eq!(reduce_vec(&x, &s, &[true, false, true], Sum), vec![60.0, 92.0, 124.0]);
        assert_eq!(
            reduce_vec(&x, &s, &[false, false, true], Max),
            (0..6).map(|i| (i * 4 + 3) as f32).collect::<Vec<_>>()
        );
        assert_eq!(reduce_vec(&x, &s, &[false, false, false], Sum), x);
    }

    #[test]
    fn large_and_parallel_match_sequential_order() {
        let x: Vec<f32> = (0..(1 << 18)).map(|v| ((v * 7919) % 1000) as f32 * 0.001).collect();
        let full = reduce_vec(&x, &[1 << 18], &[true], Sum)[0] as f64;
        let exact: f64 = x.iter().map(|&v| v as f64).sum();
        assert!((full - exact).abs() <= exact * 1e-7);
        let cols = reduce_vec(&x, &[512, 512], &[true, false], Sum);
        let rows = reduce_vec(&x, &[512, 512], &[false, true], Sum);
        assert!((cols.iter().map(|&v| v as f64).sum::<f64>() - exact).abs() < exact * 1e-6);
        assert!((rows.iter().map(|&v| v as f64).sum::<f64>() - exact).abs() < exact * 1e-6);
    }

    #[test]
    fn nan_handling() {
        let x = [1.0f32, f32::NAN, 3.0];
        assert!(reduce_vec(&x, &[3], &[true], Max)[0].is_nan());
        assert!(reduce_vec(&x, &[3], &[true], Min)[0].is_nan());
        assert_eq!(reduce_vec(&x, &[3], &[true], NanSum), vec![4.0]);
        assert_eq!(reduce_vec(&x, &[3], &[true], NanProd), vec![3.0]);
        let mut out = [0.0f32];
        arg_reduce(&[1.0f32, f32::NAN, 5.0, f32::NAN], 1, 4, 1, &mut out, true);
        assert_eq!(out, [1.0]);
        arg_reduce(&[3.0f32, 1.0, 1.0], 1, 3, 1, &mut out, false);
        assert_eq!(out, [1.0]);
    }

    #[test]
    fn broadcast_and_add_n() {
        let x = [1, 2, 3i32];
        let mut out = [0i32; 6];
        broadcast_copy(&x, &[0, 1], &mut out, &[2, 3]);
        assert_eq!(out, [1, 2, 3, 1, 2, 3]);
        broadcast_copy(&x, &[1, 0], &mut out, &[3, 2]);
        assert_eq!(out, [1, 1, 2, 2, 3, 3]);
        let mut sum = [0i32; 3];
        add_n(&[&x, &x, &x, &x, &x], &mut sum);
        assert_eq!(sum, [5, 10, 15]);
    }
}
