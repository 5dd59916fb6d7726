//! Reductions over any set of axes, arg-max/min along one axis, broadcasting copies and the
//! n-ary sum, on contiguous row-major slices.
//!
//! A reduction first merges adjacent dimensions that are reduced (or kept) together and drops
//! size-1 ones, so `sum(axis=(1, 2))` of `(N, C, H, W)` runs as `(N, C·H, W)` with the
//! middle block reduced. Two loop shapes then cover every case without transposing: a reduced
//! innermost block is folded as contiguous runs (several independent accumulators, so the
//! loop vectorizes), and a kept innermost block is folded a strip of columns at a time (one
//! accumulator per column, input rows streamed through four at a time). Floats accumulate
//! wider than they are stored (f32 in f64, half types in f32), which matches what MXNet's
//! Kahan summation gives; integers wrap in their own type, as MXNet's do. The order in which
//! partial results merge is fixed by the shape alone, so a result never depends on the
//! number of threads.
//!
//! Performance note: the workspace builds for baseline x86-64 (SSE2), where an f64
//! accumulator holds two lanes; a kept-innermost sum runs at about half the speed of a
//! full one on this machine, memory-bound otherwise.

use crate::elementwise::PARALLEL_MIN;
use crate::parallel::{chunks, threads};
use crate::{bf16, f16, Element};

/// Enough work for one parallel task (elements read).
const TASK_WORK: usize = 1 << 14;
/// Elements folded into one partial result before it is merged into the running one. The
/// pieces depend only on the shape, so the summation order, and the result, are the same
/// however many threads fold them.
const PIECE: usize = 1 << 15;
/// Columns folded together when the innermost dimension is kept.
const COLS: usize = 1024;
/// Below this many strips of columns, a kept-innermost reduction splits the reduced
/// positions over threads instead.
const FEW_TASKS: usize = 16;
/// Independent accumulators in a contiguous fold.
const LANES: usize = 8;

/// How an element type accumulates in reductions.
pub trait Accumulate: Element {
    /// f64 for f32 and f64, f32 for half types, the type itself for integers.
    type Acc: Element;
    /// Identity of `max`: -inf for floats, the minimum for integers.
    const LOWEST: Self;
    /// Identity of `min`.
    const HIGHEST: Self;
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
            const LOWEST: $t = <$t>::NEG_INFINITY;
            const HIGHEST: $t = <$t>::INFINITY;
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
    // `|`, not `||`: both sides are cheap, and a select vectorizes where a branch does not.
    if is_nan(a) | (a >= b) {
        a
    } else {
        b
    }
}

#[inline(always)]
fn min_nan<A: PartialOrd + Copy>(a: A, b: A) -> A {
    if is_nan(a) | (a <= b) {
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
    ($(#[$doc:meta])* $name:ident($acc:ty) -> $out:ty, $init:expr,
     fold |$a:ident, $x:ident| $fold:expr, merge |$p:ident, $q:ident| $merge:expr,
     finish |$f:ident| $finish:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default)]
        pub struct $name;
        impl<T: Accumulate> Reducer<T> for $name {
            type Acc = $acc;
            type Out = $out;
            #[inline(always)]
            fn init(self) -> $acc { $init }
            #[inline(always)]
            fn fold(self, $a: $acc, $x: T) -> $acc { $fold }
            #[inline(always)]
            fn merge(self, $p: $acc, $q: $acc) -> $acc { $merge }
            #[inline(always)]
            fn finish(self, $f: $acc) -> $out { $finish }
        }
    };
}

reducer!(
    /// Sum (`sum`, and `mean` before its division).
    Sum(T::Acc) -> T, <T::Acc as Element>::ZERO,
    fold |a, x| a.add(x.widen()), merge |a, b| a.add(b), finish |a| T::narrow(a)
);
reducer!(
    /// Sum skipping NaNs.
    NanSum(T::Acc) -> T, <T::Acc as Element>::ZERO,
    fold |a, x| if is_nan(x) { a } else { a.add(x.widen()) }, merge |a, b| a.add(b),
    finish |a| T::narrow(a)
);
reducer!(
    /// Product.
    Prod(T::Acc) -> T, <T::Acc as Element>::ONE,
    fold |a, x| a.mul(x.widen()), merge |a, b| a.mul(b), finish |a| T::narrow(a)
);
reducer!(
    /// Product skipping NaNs.
    NanProd(T::Acc) -> T, <T::Acc as Element>::ONE,
    fold |a, x| if is_nan(x) { a } else { a.mul(x.widen()) }, merge |a, b| a.mul(b),
    finish |a| T::narrow(a)
);
reducer!(
    /// Maximum (exact, so kept in `T`); NaN if any element is NaN.
    Max(T) -> T, T::LOWEST,
    fold |a, x| max_nan(a, x), merge |a, b| max_nan(a, b), finish |a| a
);
reducer!(
    /// Minimum; NaN if any element is NaN.
    Min(T) -> T, T::HIGHEST,
    fold |a, x| min_nan(a, x), merge |a, b| min_nan(a, b), finish |a| a
);
reducer!(
    /// Sum of absolute values, as f64 (`norm`, ord 1).
    L1Norm(T::Acc) -> f64, <T::Acc as Element>::ZERO,
    fold |a, x| a.add(abs(x.widen())), merge |a, b| a.add(b), finish |a| a.to_f64()
);
reducer!(
    /// Square root of the sum of squares, as f64 (`norm`, ord 2).
    L2Norm(T::Acc) -> f64, <T::Acc as Element>::ZERO,
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
    // Merge as a tree: three steps of latency instead of seven.
    let mut half = LANES / 2;
    while half > 0 {
        for k in 0..half {
            lanes[k] = r.merge(lanes[k], lanes[k + half]);
        }
        half /= 2;
    }
    rest.iter().fold(lanes[0], |a, &x| r.fold(a, x))
}

/// Row-major walk over a multi-index of `(size, stride)` dimensions, tracking the offset.
struct Walk<'a> {
    dims: &'a [(usize, usize)],
    idx: Vec<usize>,
    offset: usize,
}

impl<'a> Walk<'a> {
    fn new(dims: &'a [(usize, usize)]) -> Self {
        Walk { dims, idx: vec![0; dims.len()], offset: 0 }
    }

    /// Move to row-major position `pos`.
    fn seek(&mut self, mut pos: usize) -> &mut Self {
        self.offset = 0;
        for (d, &(size, stride)) in self.dims.iter().enumerate().rev() {
            self.idx[d] = pos % size;
            pos /= size;
            self.offset += self.idx[d] * stride;
        }
        self
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

/// Split `out` into chunks of whole `unit`s, each worth about [`TASK_WORK`] elements of
/// work at `work_per_unit`, and run `f(first_unit, chunk)` on each, in parallel when
/// `parallel`.
fn for_each_chunk<O: Send, F>(out: &mut [O], unit: usize, work_per_unit: usize, parallel: bool, f: F)
where
    F: Fn(usize, &mut [O]) + Sync,
{
    // Called through a reference to a trait object, the body compiles once, not once per
    // branch below.
    let f: &(dyn Fn(usize, &mut [O]) + Sync) = &f;
    if out.is_empty() || unit == 0 {
        return;
    }
    if !parallel {
        return f(0, out);
    }
    let units = TASK_WORK.div_ceil(work_per_unit.max(1)).max(1);
    chunks(out, unit * units, &|c, chunk| f(c * units, chunk));
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
    match dims.last() {
        Some(&(inner, _, true)) => reduce_runs(x, &dims, inner, out, r),
        Some(&(inner, _, false)) => reduce_strips(x, &dims, inner, out, r),
        None => {}
    }
}

/// The `(size, stride)` of the dimensions among `dims` that are (or are not) `reduced`.
fn pick(dims: &[(usize, usize, bool)], reduced: bool) -> Vec<(usize, usize)> {
    dims.iter().filter(|d| d.2 == reduced).map(|d| (d.0, d.1)).collect()
}

/// A reduced innermost block of `inner` elements: each output merges, in order, the folds
/// of its contiguous runs (one per position of the other reduced dimensions; long runs in
/// slices).
fn reduce_runs<T: Copy + Sync, R: Reducer<T>>(
    x: &[T],
    dims: &[(usize, usize, bool)],
    inner: usize,
    out: &mut [R::Out],
    r: R,
) {
    let (parallel, threads) = (x.len() >= PARALLEL_MIN, threads());
    let kept = pick(dims, false);
    let run_dims = pick(&dims[..dims.len() - 1], true);
    let n_runs: usize = run_dims.iter().map(|d| d.0).product();
    let slices = inner.div_ceil(PIECE);
    let fold_slice =
        |start: usize, k: usize| fold_run(r, &x[start + k * PIECE..start + inner.min((k + 1) * PIECE)]);
    if parallel && out.len() < FEW_TASKS {
        // Few outputs: split each one over threads in pieces (a slice of a long run, or a
        // group of short runs), merged in order.
        let runs_per_piece = (PIECE / inner).max(1);
        let n_pieces = n_runs.div_ceil(runs_per_piece) * slices;
        let piece = |base: usize, walk: &mut Walk, p: usize| {
            if slices > 1 {
                return fold_slice(base + walk.seek(p / slices).offset, p % slices);
            }
            let first = p * runs_per_piece;
            walk.seek(first);
            (first..n_runs.min(first + runs_per_piece)).fold(r.init(), |a, _| {
                let run = fold_run(r, &x[base + walk.offset..][..inner]);
                walk.advance();
                r.merge(a, run)
            })
        };
        let mut at = Walk::new(&kept);
        for o in out.iter_mut() {
            let base = at.offset;
            let mut parts = vec![r.init(); n_pieces];
            chunks(&mut parts, 4, &|c, slots| {
                let mut walk = Walk::new(&run_dims);
                for (i, slot) in slots.iter_mut().enumerate() {
                    *slot = piece(base, &mut walk, c * 4 + i);
                }
            });
            *o = r.finish(parts.into_iter().fold(r.init(), |a, b| r.merge(a, b)));
            at.advance();
        }
        return;
    }
    // Many outputs: a chunk of them at a time, taking every run position in turn so that
    // the input streams in memory order.
    let per_chunk = (TASK_WORK / inner).clamp(1, out.len().div_ceil(4 * threads).max(1));
    let chunk_fn: &(dyn Fn(usize, &mut [R::Out]) + Sync) = &|first, chunk| {
        let mut acc = vec![r.init(); chunk.len()];
        let (mut at, mut run) = (Walk::new(&kept), Walk::new(&run_dims));
        for _ in 0..n_runs {
            at.seek(first);
            for a in acc.iter_mut() {
                let start = at.offset + run.offset;
                *a = (0..slices).fold(*a, |a, k| r.merge(a, fold_slice(start, k)));
                at.advance();
            }
            run.advance();
        }
        chunk.iter_mut().zip(acc).for_each(|(o, a)| *o = r.finish(a));
    };
    if parallel {
        chunks(out, per_chunk, &|c, o| chunk_fn(c * per_chunk, o));
    } else {
        out.chunks_mut(per_chunk).enumerate().for_each(|(c, o)| chunk_fn(c * per_chunk, o));
    }
}

/// A kept innermost block of `inner` elements: each row of outputs is folded a strip of
/// columns at a time, streaming the input rows at every position of the reduced
/// dimensions. When there are few strips, each is split into pieces (groups of positions)
/// folded in parallel and merged in order; whether that happens depends on the shape alone.
fn reduce_strips<T: Copy + Sync, R: Reducer<T>>(
    x: &[T],
    dims: &[(usize, usize, bool)],
    inner: usize,
    out: &mut [R::Out],
    r: R,
) {
    let (parallel, threads) = (x.len() >= PARALLEL_MIN, threads());
    let kept = pick(&dims[..dims.len() - 1], false);
    let red = pick(dims, true);
    let m: usize = red.iter().map(|d| d.0).product();
    let (rows, strips) = (out.len() / inner, inner.div_ceil(COLS));
    let per_piece = (PIECE / inner.min(COLS)).max(1);
    let split = parallel && rows * strips < FEW_TASKS && m > per_piece;
    let split_strips = parallel && rows < 2 * threads && strips > 1;
    let fold = |from: usize, first: usize, count: usize, acc: &mut [R::Acc]| {
        let mut walk = Walk::new(&red);
        walk.seek(first);
        fold_rows(r, x, from, &mut walk, count, acc);
    };
    let strip: &(dyn Fn(usize, &mut [R::Out]) + Sync) = &|from, o| {
        let mut acc = [r.init(); COLS];
        let acc = &mut acc[..o.len()];
        if split {
            let w = o.len();
            let mut parts = vec![r.init(); m.div_ceil(per_piece) * w];
            chunks(&mut parts, w, &|p, part| {
                fold(from, p * per_piece, per_piece.min(m - p * per_piece), part);
            });
            for part in parts.chunks(w) {
                acc.iter_mut().zip(part).for_each(|(a, &p)| *a = r.merge(*a, p));
            }
        } else {
            fold(from, 0, m, acc);
        }
        for (o, &a) in o.iter_mut().zip(acc.iter()) {
            *o = r.finish(a);
        }
    };
    for_each_chunk(out, inner, m * inner, parallel, |first, chunk| {
        let mut at = Walk::new(&kept);
        at.seek(first);
        for orow in chunk.chunks_mut(inner) {
            let base = at.offset;
            if split_strips {
                chunks(orow, COLS, &|s, o| strip(base + s * COLS, o));
            } else {
                orow.chunks_mut(COLS).enumerate().for_each(|(s, o)| strip(base + s * COLS, o));
            }
            at.advance();
        }
    });
}

/// The `w` elements of `x` at `from` plus the walk's offset; then step the walk.
#[inline(always)]
fn next_row<'x, T>(x: &'x [T], from: usize, w: usize, walk: &mut Walk) -> &'x [T] {
    let row = &x[from + walk.offset..][..w];
    walk.advance();
    row
}

/// Fold `count` rows into `acc`, row `i` being `acc.len()` elements of `x` at `from` plus
/// the `i`-th offset of `walk`. Four rows pass through `acc` at a time (in the same order
/// as one by one), which saves three quarters of the accumulator traffic.
fn fold_rows<T: Copy, R: Reducer<T>>(
    r: R,
    x: &[T],
    from: usize,
    walk: &mut Walk,
    count: usize,
    acc: &mut [R::Acc],
) {
    let w = acc.len();
    for _ in 0..count / 4 {
        let (a, b) = (next_row(x, from, w, walk), next_row(x, from, w, walk));
        let (c, d) = (next_row(x, from, w, walk), next_row(x, from, w, walk));
        for ((((s, &a), &b), &c), &d) in acc.iter_mut().zip(a).zip(b).zip(c).zip(d) {
            *s = r.fold(r.fold(r.fold(r.fold(*s, a), b), c), d);
        }
    }
    for _ in 0..count % 4 {
        for (s, &a) in acc.iter_mut().zip(next_row(x, from, w, walk)) {
            *s = r.fold(*s, a);
        }
    }
}

/// Index of the first maximum (`max`) or minimum along the middle axis of `x` viewed as
/// `(outer, m, inner)`, written as `T` into `out` (`(outer, inner)`), as MXNet's
/// `argmax`/`argmin`: the first NaN counts as the extreme. `m` must be at least 1.
pub fn arg_reduce<T: Accumulate>(x: &[T], outer: usize, m: usize, inner: usize, out: &mut [T], max: bool) {
    if max {
        arg_reduce_by(x, outer, m, inner, out, Max, |best, v| (best < v) | is_nan(v));
    } else {
        arg_reduce_by(x, outer, m, inner, out, Min, |best, v| (best > v) | is_nan(v));
    }
}

fn arg_reduce_by<T: Accumulate, R, F>(
    x: &[T],
    outer: usize,
    m: usize,
    inner: usize,
    out: &mut [T],
    r: R,
    better: F,
) where
    R: Reducer<T, Acc = T>,
    F: Fn(T, T) -> bool + Sync,
{
    debug_assert!(x.len() == outer * m * inner && out.len() == outer * inner && m > 0);
    let parallel = x.len() >= PARALLEL_MIN;
    if inner == 1 {
        // Contiguous rows: find the extreme with a vectorized fold, then its first position.
        return for_each_chunk(out, 1, m, parallel, |first, chunk| {
            for (o, row) in chunk.iter_mut().zip(x[first * m..].chunks(m)) {
                let best = fold_run(r, row);
                let nan = is_nan(best);
                let at = row.iter().position(|&v| if nan { is_nan(v) } else { v == best });
                *o = T::from_usize(at.unwrap_or(0));
            }
        });
    }
    // Positions as u32 (same width as f32, so the selects vectorize); MXNet's own `int`
    // cast of the index overflows sooner.
    let strip: &(dyn Fn(usize, usize, &mut [T]) + Sync) = &|o, j0, dst| {
        let xo = &x[o * m * inner + j0..];
        let mut best = [T::ZERO; COLS];
        let mut idx = [0u32; COLS];
        let (best, idx) = (&mut best[..dst.len()], &mut idx[..dst.len()]);
        best.copy_from_slice(&xo[..dst.len()]);
        for k in 1..m {
            let row = &xo[k * inner..k * inner + dst.len()];
            for ((b, i), &v) in best.iter_mut().zip(idx.iter_mut()).zip(row) {
                // Selects written as arithmetic and as the reducer's fold: with `if`s, LLVM
                // makes per-lane branches of them.
                let take = !is_nan(*b) & better(*b, v);
                let mask = 0u32.wrapping_sub(take as u32);
                *i ^= (*i ^ k as u32) & mask;
                *b = r.fold(*b, v);
            }
        }
        for (d, &i) in dst.iter_mut().zip(idx.iter()) {
            *d = T::from_usize(i as usize);
        }
    };
    let split_strips = parallel && outer < 2 * threads() && inner > COLS;
    for_each_chunk(out, inner, m * inner, parallel, |first, chunk| {
        for (i, orow) in chunk.chunks_mut(inner).enumerate() {
            if split_strips {
                chunks(orow, COLS, &|s, dst| strip(first + i, s * COLS, dst));
            } else {
                orow.chunks_mut(COLS).enumerate().for_each(|(s, dst)| strip(first + i, s * COLS, dst));
            }
        }
    });
}

/// One of MXNet's reducers, for [`Reduce::reduce_axes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    Sum,
    Prod,
    NanSum,
    NanProd,
    Max,
    Min,
}

/// The norm [`Reduce::norm_axes`] computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Norm {
    L1,
    L2,
}

/// The reductions of each element type, compiled once, here, rather than in every crate
/// that calls them (each is a large function); the reduction is picked at run time, once
/// per call.
pub trait Reduce: Accumulate {
    /// [`reduce`] with one of MXNet's reducers.
    fn reduce_axes(x: &[Self], shape: &[usize], reduced: &[bool], out: &mut [Self], op: Reduction);
    /// The L1 or L2 norm over the reduced dimensions, in f64.
    fn norm_axes(x: &[Self], shape: &[usize], reduced: &[bool], out: &mut [f64], ord: Norm);
    /// [`arg_reduce`].
    fn arg_axis(x: &[Self], outer: usize, m: usize, inner: usize, out: &mut [Self], max: bool);
}

macro_rules! impl_reduce {
    // Integers have no NaN: their nan-reductions are the plain ones.
    ($nan_sum:ident, $nan_prod:ident: $($t:ty),*) => {$(
        impl Reduce for $t {
            fn reduce_axes(x: &[$t], shape: &[usize], reduced: &[bool], out: &mut [$t], op: Reduction) {
                match op {
                    Reduction::Sum => reduce(x, shape, reduced, out, Sum),
                    Reduction::Prod => reduce(x, shape, reduced, out, Prod),
                    Reduction::NanSum => reduce(x, shape, reduced, out, $nan_sum),
                    Reduction::NanProd => reduce(x, shape, reduced, out, $nan_prod),
                    Reduction::Max => reduce(x, shape, reduced, out, Max),
                    Reduction::Min => reduce(x, shape, reduced, out, Min),
                }
            }
            fn norm_axes(x: &[$t], shape: &[usize], reduced: &[bool], out: &mut [f64], ord: Norm) {
                match ord {
                    Norm::L1 => reduce(x, shape, reduced, out, L1Norm),
                    Norm::L2 => reduce(x, shape, reduced, out, L2Norm),
                }
            }
            fn arg_axis(x: &[$t], outer: usize, m: usize, inner: usize, out: &mut [$t], max: bool) {
                arg_reduce(x, outer, m, inner, out, max)
            }
        }
    )*};
}
impl_reduce!(NanSum, NanProd: f32, f64);
impl_reduce!(Sum, Prod: i32, i64);

/// `x` converted elementwise into a new vector.
fn converted<A: Copy + Sync, B: Copy + Send + Default>(x: &[A], f: impl Fn(A) -> B + Sync) -> Vec<B> {
    let mut v = vec![B::default(); x.len()];
    crate::elementwise::map(x, &mut v, f);
    v
}

// Half and byte types reduce through a widened copy, which halves the compiled code and
// changes nothing: half values are exact in f32 (whose sums accumulate in f64 anyway),
// and wrapping i32 arithmetic cut to 8 bits is wrapping 8-bit arithmetic. Integer norms
// come out more exact than 8-bit ones would (MXNet's are garbage there).
macro_rules! impl_reduce_widened {
    ($($t:ty => $w:ty, $to:expr, $from:expr);*) => {$(
        impl Reduce for $t {
            fn reduce_axes(x: &[$t], shape: &[usize], reduced: &[bool], out: &mut [$t], op: Reduction) {
                let mut wide = vec![<$w>::default(); out.len()];
                <$w>::reduce_axes(&converted(x, $to), shape, reduced, &mut wide, op);
                crate::elementwise::map(&wide, out, $from);
            }
            fn norm_axes(x: &[$t], shape: &[usize], reduced: &[bool], out: &mut [f64], ord: Norm) {
                <$w>::norm_axes(&converted(x, $to), shape, reduced, out, ord);
            }
            fn arg_axis(x: &[$t], outer: usize, m: usize, inner: usize, out: &mut [$t], max: bool) {
                let mut wide = vec![<$w>::default(); out.len()];
                <$w>::arg_axis(&converted(x, $to), outer, m, inner, &mut wide, max);
                crate::elementwise::map(&wide, out, $from);
            }
        }
    )*};
}
impl_reduce_widened!(
    f16 => f32, f16::to_f32, f16::from_f32;
    bf16 => f32, bf16::to_f32, bf16::from_f32;
    u8 => i32, i32::from, |v: i32| v as u8;
    i8 => i32, i32::from, |v: i32| v as i8
);

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
        let mut walk = Walk::new(&dims);
        walk.seek(first);
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
        chunks(out, CHUNK, &|c, o| part(c, o));
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

    /// Sum over `axes` of a `(a, b, c)` array in f64, one element at a time.
    fn naive_sum(x: &[f32], [a, b, c]: [usize; 3], red: [bool; 3]) -> Vec<f64> {
        let keep = |i: usize, n: usize, r: bool| if r { (0, 1) } else { (i, n) };
        let n_out: usize = [a, b, c].iter().zip(red).filter(|(_, r)| !r).map(|(&d, _)| d).product();
        let mut out = vec![0.0; n_out];
        for i in 0..a {
            for j in 0..b {
                for k in 0..c {
                    let ((oi, _), (oj, nj), (ok, nk)) =
                        (keep(i, a, red[0]), keep(j, b, red[1]), keep(k, c, red[2]));
                    out[(oi * nj + oj) * nk + ok] += x[(i * b + j) * c + k] as f64;
                }
            }
        }
        out
    }

    #[test]
    fn every_loop_shape_matches_naive() {
        // Shapes that take each path: few or many outputs, short or long runs, kept
        // innermost with few or many rows, sequential and parallel.
        for shape in [[300, 3, 200], [4000, 3, 20], [3, 40000, 2], [2, 3000, 40], [5, 6, 7], [1, 100000, 3]] {
            let n = shape.iter().product::<usize>();
            let x: Vec<f32> = (0..n).map(|v| ((v * 7919) % 1013) as f32 * 0.01 - 5.0).collect();
            for red in [
                [true, false, true],
                [false, true, false],
                [true, true, false],
                [false, true, true],
                [true; 3],
            ] {
                let got = reduce_vec(&x, &shape, &red, Sum);
                let want = naive_sum(&x, shape, red);
                assert_eq!(got.len(), want.len(), "{shape:?} {red:?}");
                for (g, w) in got.iter().zip(&want) {
                    assert!((*g as f64 - w).abs() <= 1e-3 + 1e-6 * w.abs(), "{shape:?} {red:?}: {g} vs {w}");
                }
            }
        }
    }

    #[test]
    fn argmax_strips_and_rows() {
        let (outer, m, inner) = (3, 50, 1500);
        let mut x: Vec<f32> = (0..outer * m * inner).map(|v| ((v * 7919) % 1013) as f32).collect();
        x[(m + 7) * inner + 5] = f32::NAN; // outer 1, k 7, column 5
        let mut out = vec![0f32; outer * inner];
        arg_reduce(&x, outer, m, inner, &mut out, true);
        for o in 0..outer {
            for j in 0..inner {
                let at = |k: usize| x[(o * m + k) * inner + j];
                let want = if (o, j) == (1, 5) {
                    7
                } else {
                    (0..m).fold(0, |b, k| if at(k) > at(b) { k } else { b })
                };
                assert_eq!(out[o * inner + j], want as f32, "outer {o} column {j}");
            }
        }
        let mut out = vec![0i32; 2];
        arg_reduce(&[5, 1, 1, 9, 0, 0], 2, 3, 1, &mut out, false);
        assert_eq!(out, [1, 1]);
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
