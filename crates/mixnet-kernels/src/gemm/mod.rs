//! Matrix products for `dot`, `batch_dot` and everything built on them (FullyConnected,
//! convolution via im2col). One strided entry point on the `gemm` crate: transposed operands
//! are read through strides, never copied, and the choice between one thread and both
//! cores is made here, once, from a measured threshold.

use ::gemm::Parallelism;

use crate::Element;

/// `$tile::<R, ...>($t)` for a tile of `$rows` rows: const-generic tiles need one call per
/// row count, listed from the kernel's MR down to 2 (anything else runs 1 row).
#[cfg(target_arch = "x86_64")]
macro_rules! tile_by_rows {
    ($rows:expr, $tile:ident::<[$($r:literal),+], $p:tt, $v:tt>($t:expr)) => {
        match $rows {
            $($r => $tile::<$r, $p, $v>($t),)+
            _ => $tile::<1, $p, $v>($t),
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
pub(crate) use avx512::{relu as relu_512, transpose16};
#[cfg(target_arch = "x86_64")]
mod blocked;

/// Below this many multiply-adds (m·n·k) a product runs on the calling thread: splitting it
/// costs more than the second core gives back. Measured with `benches/gemm.rs` (square
/// f32, 2 cores): one thread wins up to n = 96 (95 vs 64 GFLOP/s), n = 128 is even
/// (102 vs 101), two threads win from n = 160 on (115 vs 91).
pub const PARALLEL_MIN_MACS: usize = 128 * 128 * 128;

/// Rows at most of a product whose time is reading its `b` (see `MatMul::worth_splitting`).
const FEW_ROWS: usize = 4;
/// Elements of `b` (1 MB of f32) from which such a product is split.
const FEW_ROWS_MIN_B: usize = 1 << 18;

/// Fewest output rows per thread worth a row split of one product.
const MIN_SPLIT_ROWS: usize = 32;

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
    impl Sealed for half::f16 {}
}

/// Element types the `gemm` crate multiplies (it panics on any other type, so the bound is
/// sealed to exactly these). The crate widens f16 operands to f32 for its kernels.
pub trait GemmElement: Element + sealed::Sealed {
    /// Runs rows `first..` of `p` into `c` on this crate's own kernel when the element type
    /// and the CPU have one (f32 on AVX-512, or on AVX2 with FMA), and says whether it did.
    /// `bias` (n values, with `acc` false) starts every row of `c`; `post` (rows `first..`)
    /// maps each finished row.
    #[doc(hidden)]
    #[allow(clippy::too_many_arguments)]
    fn native(
        _p: &MatMul,
        _a: &[Self],
        _b: &[Self],
        _c: &mut [Self],
        _first: usize,
        _acc: bool,
        _bias: Option<&[Self]>,
        _post: Option<&RowAffine<'_, Self>>,
        _threads: usize,
    ) -> bool {
        false
    }

    /// Whether [`MatMul::run_gather`] packs straight from its `base` here (a native kernel
    /// for this type and CPU) rather than building `b` first.
    fn gathers() -> bool {
        false
    }

    /// [`MatMul::run_gather`] on the native kernel, when this type and CPU have one.
    #[doc(hidden)]
    #[allow(clippy::too_many_arguments)]
    fn native_gather(
        _p: &MatMul,
        _a: &[Self],
        _base: &[Self],
        _rows: &[usize],
        _cols: &[usize],
        _c: &mut [Self],
        _acc: bool,
        _post: Option<&RowAffine<'_, Self>>,
        _threads: usize,
    ) -> bool {
        false
    }
}
/// `$call` with `$k` naming the native f32 kernel for this CPU (AVX-512, else AVX2 with
/// FMA), evaluating to whether there was one.
macro_rules! on_native_kernel {
    ($k:ident => $call:expr) => {{
        #[cfg(target_arch = "x86_64")]
        {
            use blocked::Kernel;
            if avx512::Avx512::available() {
                type $k = avx512::Avx512;
                $call;
                true
            } else if avx2::Avx2::available() {
                type $k = avx2::Avx2;
                $call;
                true
            } else {
                false
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        false
    }};
}

/// Columns of the native f32 kernel's register tile on this CPU (32 on AVX-512, 16 on
/// AVX2), 16 where there is none: a product whose `n` is a multiple of it wastes no lanes.
pub fn native_f32_columns() -> usize {
    let mut nr = 16;
    let _native = on_native_kernel!(K => nr = K::NR);
    nr
}

impl GemmElement for f32 {
    fn gathers() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            use blocked::Kernel;
            avx512::Avx512::available() || avx2::Avx2::available()
        }
        #[cfg(not(target_arch = "x86_64"))]
        false
    }

    #[allow(clippy::too_many_arguments)]
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
    fn native_gather(
        p: &MatMul,
        a: &[f32],
        base: &[f32],
        rows: &[usize],
        cols: &[usize],
        c: &mut [f32],
        acc: bool,
        post: Option<&RowAffine<'_, f32>>,
        threads: usize,
    ) -> bool {
        let b = blocked::BSource::Gather { base, rows, cols };
        let dims = (p.m, p.n, p.k);
        on_native_kernel!(K => blocked::product::<K>(dims, a, p.strides().0, b, c, acc, None, post, threads))
    }

    #[allow(clippy::too_many_arguments)]
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
    fn native(
        p: &MatMul,
        a: &[f32],
        b: &[f32],
        c: &mut [f32],
        first: usize,
        acc: bool,
        bias: Option<&[f32]>,
        post: Option<&RowAffine<'_, f32>>,
        threads: usize,
    ) -> bool {
        on_native_kernel!(K => blocked::rows_of::<K>(p, a, b, c, first, acc, bias, post, threads))
    }
}
impl GemmElement for f64 {}
impl GemmElement for half::f16 {}

/// A map of each row of a product's result, applied as the result is stored: row i
/// becomes `c * scale[i] + shift[i]`, plus `sum` (a matrix shaped like `c`) when given,
/// then, with `relu`, 0 unless above 0 or NaN (MXNet's `relu`, which passes NaN). A
/// convolution's output rows are its channels, so an inference BatchNorm after it is this
/// map, a residual connection is the `sum`, and the ReLU after either: fused, they cost no
/// passes of their own.
#[derive(Clone, Copy, Debug)]
pub struct RowAffine<'a, T> {
    pub scale: &'a [T],
    pub shift: &'a [T],
    pub sum: Option<&'a [T]>,
    pub relu: bool,
}

impl<'a, T: Element> RowAffine<'a, T> {
    /// The map of rows `first..first + rows` of a product `n` wide.
    pub fn rows(&self, first: usize, rows: usize, n: usize) -> RowAffine<'a, T> {
        RowAffine {
            scale: &self.scale[first..first + rows],
            shift: &self.shift[first..first + rows],
            sum: self.sum.map(|s| &s[first * n..(first + rows) * n]),
            relu: self.relu,
        }
    }

    /// Whether the map fits a product of m rows, n columns.
    pub fn fits(&self, m: usize, n: usize) -> bool {
        self.scale.len() == m && self.shift.len() == m && self.sum.is_none_or(|s| s.len() == m * n)
    }

    /// Row `i`'s map of one value in column `j` (rows `n` wide).
    #[inline]
    pub fn map(&self, v: T, i: usize, j: usize, n: usize) -> T {
        let y = v.mul(self.scale[i]).add(self.shift[i]);
        let y = match self.sum {
            Some(s) => y.add(s[i * n + j]),
            None => y,
        };
        if self.relu {
            crate::unary::relu(y)
        } else {
            y
        }
    }

    /// The map for rows `first..` on `c` (rows of `n`), as a pass of its own: for products
    /// that did not run on a native kernel.
    fn apply(&self, c: &mut [T], n: usize, first: usize, parallel: bool) {
        let map = |off: usize, part: &mut [T]| {
            for (i, row) in part.chunks_exact_mut(n).enumerate() {
                let r = first + off / n + i;
                for (j, v) in row.iter_mut().enumerate() {
                    *v = self.map(*v, r, j, n);
                }
            }
        };
        if n == 0 {
            return;
        }
        if parallel && c.len() >= 1 << 16 {
            crate::parallel::split(c, n, &map);
        } else {
            map(0, c);
        }
    }
}

/// Shape of one product `c (m×n) = op(a) (m×k) · op(b) (k×n)`, all row-major. With
/// `trans_a`, `a` is stored as k×m; with `trans_b`, `b` is stored as n×k.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatMul {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub trans_a: bool,
    pub trans_b: bool,
}

impl MatMul {
    /// Multiply-adds in one product.
    pub fn macs(&self) -> usize {
        self.m.saturating_mul(self.n).saturating_mul(self.k)
    }

    /// Whether one product is worth splitting across cores: [`PARALLEL_MIN_MACS`]
    /// multiply-adds, or, with at most [`FEW_ROWS`] rows, where the time goes to reading
    /// `b` once from memory, a `b` of [`FEW_ROWS_MIN_B`] elements (ResNet-50's 2048 ->
    /// 1000 classifier at batch 1, 2M multiply-adds, ran on one core for ~0.5 ms).
    fn worth_splitting(&self) -> bool {
        let b = self.k.saturating_mul(self.n);
        self.macs() >= PARALLEL_MIN_MACS || (self.m <= FEW_ROWS && b >= FEW_ROWS_MIN_B)
    }

    /// Sizes of one a, b and c, after checking that the slices hold `batch` of each.
    ///
    /// # Panics
    /// If they do not (callers check shapes first).
    fn operand_sizes(&self, batch: usize, a: usize, b: usize, c: usize) -> (usize, usize, usize) {
        let (sa, sb, sc) = (self.m * self.k, self.k * self.n, self.m * self.n);
        assert!(
            a == batch * sa && b == batch * sb && c == batch * sc,
            "gemm: operand lengths {a}, {b}, {c} do not fit {batch} x {self:?}"
        );
        (sa, sb, sc)
    }

    /// `c = op(a) · op(b)`, overwriting `c`.
    ///
    /// # Panics
    /// If a slice length is not the product's operand size (callers check shapes first).
    pub fn run<T: GemmElement>(&self, a: &[T], b: &[T], c: &mut [T]) {
        self.run_batch(1, a, b, c);
    }

    /// `c = op(a) · op(b)` (`accumulate` false) or `c += op(a) · op(b)` (true), on the
    /// calling thread only when `parallel` is false (callers that already run one task per
    /// core), else split across cores as [`MatMul::run`] does.
    ///
    /// # Panics
    /// If a slice length is not the product's operand size.
    pub fn run_with<T: GemmElement>(&self, a: &[T], b: &[T], c: &mut [T], accumulate: bool, parallel: bool) {
        self.run_post(a, b, c, accumulate, None, parallel)
    }

    /// `c = post(op(a) · op(b))`: the product with each row mapped as it is stored (see
    /// [`RowAffine`]), split across cores as [`MatMul::run`] does (unless `parallel` is
    /// false).
    ///
    /// # Panics
    /// If a slice length is not the product's operand size, or `post` does not hold m
    /// values of each.
    pub fn run_mapped<T: GemmElement>(
        &self,
        a: &[T],
        b: &[T],
        c: &mut [T],
        post: &RowAffine<'_, T>,
        parallel: bool,
    ) {
        self.run_post(a, b, c, false, Some(post), parallel)
    }

    fn run_post<T: GemmElement>(
        &self,
        a: &[T],
        b: &[T],
        c: &mut [T],
        accumulate: bool,
        post: Option<&RowAffine<'_, T>>,
        parallel: bool,
    ) {
        let (_, _, sc) = self.operand_sizes(1, a.len(), b.len(), c.len());
        assert!(
            post.is_none_or(|p| p.fits(self.m, self.n)),
            "gemm: a row map has m values (and a sum m x n)"
        );
        if sc == 0 {
            return;
        }
        if self.k == 0 {
            if !accumulate {
                c.fill(T::ZERO);
            }
            if let Some(post) = post {
                post.apply(c, self.n, 0, parallel);
            }
            return;
        }
        let threads = crate::parallel::threads();
        if parallel && threads > 1 && self.worth_splitting() {
            self.split(a, b, c, threads, accumulate, post);
        } else {
            self.rows(a, b, c, 0, accumulate, post);
        }
    }

    /// `c = op(a) · b` (or `c +=` with `accumulate`), then `post`, where `b` (k × n) is gathered:
    /// element (p, j) is `base[rows[p] + cols[j]]`. A convolution's column matrix is such
    /// a `b` over its image, so on a native kernel (see [`GemmElement::gathers`]) the
    /// product packs it straight from the image instead of from a copy; elsewhere `b` is
    /// built and multiplied as [`MatMul::run_with`] does. `trans_b` is ignored. Split
    /// across cores as [`MatMul::run_with`] does.
    ///
    /// # Panics
    /// If `a` or `c` is not its operand size, the tables are not k and n long, or an
    /// element they address is outside `base`.
    #[allow(clippy::too_many_arguments)]
    pub fn run_gather<T: GemmElement>(
        &self,
        a: &[T],
        base: &[T],
        rows: &[usize],
        cols: &[usize],
        c: &mut [T],
        accumulate: bool,
        post: Option<&RowAffine<'_, T>>,
        parallel: bool,
    ) {
        assert!(rows.len() == self.k && cols.len() == self.n, "gemm: gather tables do not fit {self:?}");
        let threads = crate::parallel::threads();
        let threads = if parallel && threads > 1 && self.worth_splitting() { threads } else { 1 };
        let native =
            self.macs() > 0 && T::native_gather(self, a, base, rows, cols, c, accumulate, post, threads);
        if !native {
            let b: Vec<T> = rows.iter().flat_map(|&r| cols.iter().map(move |&j| base[r + j])).collect();
            let plain = MatMul { trans_b: false, ..*self };
            plain.run_post(a, &b, c, accumulate, post, parallel);
        }
    }

    /// `c = op(a) · op(b) + bias`, `bias` (n values) added to every row: a dense layer's
    /// forward. The native kernels add it as they store each tile, saving a pass over `c`;
    /// otherwise `c` is filled with it first.
    ///
    /// # Panics
    /// If a slice length is not the product's operand size, or `bias` not n long.
    pub fn run_with_bias<T: GemmElement>(&self, a: &[T], b: &[T], c: &mut [T], bias: &[T], parallel: bool) {
        let (_, _, sc) = self.operand_sizes(1, a.len(), b.len(), c.len());
        assert_eq!(bias.len(), self.n, "gemm: bias of {} values for {} columns", bias.len(), self.n);
        if sc == 0 {
            return;
        }
        let threads = crate::parallel::threads();
        let threads = if parallel && threads > 1 && self.worth_splitting() { threads } else { 1 };
        if self.k > 0 && T::native(self, a, b, c, 0, false, Some(bias), None, threads) {
            return;
        }
        let fill = |_: usize, part: &mut [T]| {
            part.chunks_exact_mut(self.n).for_each(|row| row.copy_from_slice(bias))
        };
        if parallel && c.len() >= 1 << 16 {
            crate::parallel::split(c, self.n, &fill);
        } else {
            fill(0, c);
        }
        self.run_with(a, b, c, true, parallel);
    }

    /// `batch` independent products over consecutive matrices of `a`, `b` and `c`.
    ///
    /// # Panics
    /// If a slice length is not `batch` times the operand size.
    pub fn run_batch<T: GemmElement>(&self, batch: usize, a: &[T], b: &[T], c: &mut [T]) {
        let (sa, sb, sc) = self.operand_sizes(batch, a.len(), b.len(), c.len());
        if sc == 0 {
            return;
        }
        if self.k == 0 {
            c.fill(T::ZERO);
            return;
        }
        let threads = crate::parallel::threads();
        let split_each = threads > 1 && self.worth_splitting();
        if !split_each && threads > 1 && self.macs().saturating_mul(batch) >= PARALLEL_MIN_MACS {
            // Many small products: one per task, each single-threaded.
            crate::parallel::chunks(c, sc, &|i, c| {
                self.rows(&a[i * sa..][..sa], &b[i * sb..][..sb], c, 0, false, None)
            });
            return;
        }
        for (c, (a, b)) in c.chunks_exact_mut(sc).zip(a.chunks_exact(sa).zip(b.chunks_exact(sb))) {
            if split_each {
                self.split(a, b, c, threads, false, None);
            } else {
                self.rows(a, b, c, 0, false, None);
            }
        }
    }

    /// One large product on `threads` cores: a block of output rows per thread (or, with
    /// too few rows, a band of columns), each a single-threaded gemm. That synchronises
    /// once per product instead of once per gemm cache block as the gemm crate's own
    /// rayon split does, which is worth 10-15% of median throughput at n = 1024 on this
    /// 2-core VM (a preempted thread stalls every barrier); and the calling thread works
    /// a share instead of sleeping while the pool runs the product.
    fn split<T: GemmElement>(
        &self,
        a: &[T],
        b: &[T],
        c: &mut [T],
        threads: usize,
        acc: bool,
        post: Option<&RowAffine<'_, T>>,
    ) {
        if T::native(self, a, b, c, 0, acc, None, post, threads) {
            return;
        }
        if let Some(post) = post {
            self.split(a, b, c, threads, acc, None);
            return post.apply(c, self.n, 0, true);
        }
        let (m, n) = (self.m, self.n);
        if m.div_ceil(threads) >= MIN_SPLIT_ROWS {
            crate::parallel::split(c, n, &|off, c| self.rows(a, b, c, off / n, acc, None));
        } else {
            let per = n.div_ceil(threads).next_multiple_of(COL_BAND);
            let out = OutPtr(c.as_mut_ptr());
            crate::parallel::each((0..n).step_by(per), &|j0| {
                // SAFETY: every band j0..j0+per lies within the n columns of `c`, which is
                // exclusively borrowed for this call, and the bands are disjoint, so no
                // two tasks write the same element.
                unsafe { self.raw(a, b, out, 0, m, j0, per.min(n - j0), acc) }
            });
        }
    }

    /// (row stride, column stride) of op(a) and of op(b) in their row-major storage.
    fn strides(&self) -> ((usize, usize), (usize, usize)) {
        let MatMul { m, n, k, trans_a, trans_b } = *self;
        let a = if trans_a { (1, m) } else { (k, 1) };
        let b = if trans_b { (1, k) } else { (n, 1) };
        (a, b)
    }

    /// Output rows `first..first + c.len() / n` of one product into `c` on this thread,
    /// from operand slices of exactly the operand sizes; m, n, k > 0. With `acc`, adds to
    /// `c`.
    fn rows<T: GemmElement>(
        &self,
        a: &[T],
        b: &[T],
        c: &mut [T],
        first: usize,
        acc: bool,
        post: Option<&RowAffine<'_, T>>,
    ) {
        let MatMul { m, n, k, .. } = *self;
        let rows = c.len() / n;
        assert!(a.len() == m * k && b.len() == k * n && c.len() == rows * n && first + rows <= m);
        let post_rows = post.map(|p| p.rows(first, rows, n));
        if rows == 0 || T::native(self, a, b, c, first, acc, None, post_rows.as_ref(), 1) {
            return;
        }
        // SAFETY: `c` is exclusively borrowed and holds exactly rows x n elements, which
        // is what `raw` writes for rows first..first+rows, columns 0..n.
        unsafe { self.raw(a, b, OutPtr(c.as_mut_ptr()), first, rows, 0, n, acc) }
        if let Some(post) = post {
            post.apply(c, n, first, false);
        }
    }

    /// Rows `first..first + rows`, columns `j0..j0 + cols` of one product, written at
    /// `c.0 + (i - first) * n + j` on this thread through the gemm crate.
    ///
    /// # Safety
    /// `a` and `b` hold exactly the operand sizes (asserted); `c.0` must be valid for
    /// writes at every offset `(i - first) * n + j` of that window, and nothing else may
    /// access that window during the call.
    #[allow(clippy::too_many_arguments)]
    unsafe fn raw<T: GemmElement>(
        &self,
        a: &[T],
        b: &[T],
        c: OutPtr<T>,
        first: usize,
        rows: usize,
        j0: usize,
        cols: usize,
        acc: bool,
    ) {
        let MatMul { m, n, k, .. } = *self;
        assert!(a.len() == m * k && b.len() == k * n && first + rows <= m && j0 + cols <= n);
        let ((a_rs, a_cs), (b_rs, b_cs)) = self.strides();
        // SAFETY: the gemm crate reads op(a) at a[(first + i)*a_rs + p*a_cs] for i < rows,
        // p < k: at most (m-1)*a_rs + (k-1)*a_cs, below m*k = a.len() in both layouts;
        // likewise op(b) at b[p*b_rs + (j0 + j)*b_cs] below k*n = b.len() (asserted
        // above). It writes c.0[i*n + j0 + j] for i < rows, j < cols: the caller's
        // window. T is one of the sealed GemmElement types, so gemm's type dispatch does
        // not panic; with read_dst = false the window is never read (with `acc` it holds
        // initialized elements).
        unsafe {
            ::gemm::gemm(
                rows,
                cols,
                k,
                c.0.add(j0),
                1,
                n as isize,
                acc,
                a.as_ptr().add(first * a_rs),
                a_cs as isize,
                a_rs as isize,
                b.as_ptr().add(j0 * b_cs),
                b_cs as isize,
                b_rs as isize,
                if acc { T::ONE } else { T::ZERO },
                T::ONE,
                false,
                false,
                false,
                Parallelism::None,
            );
        }
    }
}

/// Columns per band when a short product is split by columns (a multiple of every
/// microkernel width the gemm crate uses).
const COL_BAND: usize = 16;

/// The output of a product shared by tasks writing disjoint windows of it.
#[derive(Clone, Copy)]
struct OutPtr<T>(*mut T);
// SAFETY: an OutPtr is only dereferenced inside `MatMul::raw`, whose callers give each
// task a disjoint window of one exclusively borrowed output.
unsafe impl<T: Send> Send for OutPtr<T> {}
// SAFETY: as for Send; shared references to it are only copied, never written through.
unsafe impl<T: Send> Sync for OutPtr<T> {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Naive f64 reference for op(a)·op(b).
    fn reference(p: &MatMul, a: &[f64], b: &[f64]) -> Vec<f64> {
        let mut c = vec![0.0; p.m * p.n];
        for i in 0..p.m {
            for j in 0..p.n {
                c[i * p.n + j] = (0..p.k)
                    .map(|q| {
                        let x = if p.trans_a { a[q * p.m + i] } else { a[i * p.k + q] };
                        let y = if p.trans_b { b[j * p.k + q] } else { b[q * p.n + j] };
                        x * y
                    })
                    .sum();
            }
        }
        c
    }

    fn data(len: usize, seed: usize) -> Vec<f64> {
        (0..len).map(|i| ((i * 7 + seed * 13) % 17) as f64 / 4.0 - 2.0).collect()
    }

    #[test]
    fn gathered_b_matches_explicit_b() {
        // Where no native kernel gathers (f64 always; f32 on CPUs without AVX2), `b` is
        // built first; with k = 0, c is cleared or kept.
        let (base, rows, cols) = ([1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0], [0, 3], [0, 2]);
        let mut c = [1.0f64; 4];
        MatMul { m: 2, n: 2, k: 2, trans_a: false, trans_b: false }.run_gather(
            &[1.0, 0.0, 0.0, 1.0],
            &base,
            &rows,
            &cols,
            &mut c,
            true,
            None,
            false,
        );
        assert_eq!(c, [2.0, 4.0, 5.0, 7.0]);
        let empty = MatMul { m: 2, n: 2, k: 0, trans_a: false, trans_b: false };
        empty.run_gather(&[], &base, &[], &cols, &mut c, true, None, false);
        assert_eq!(c, [2.0, 4.0, 5.0, 7.0]);
        empty.run_gather(&[], &base, &[], &cols, &mut c, false, None, false);
        assert_eq!(c, [0.0; 4]);
        // f32 on the native kernels where the CPU has them. Columns in runs of 1 to 40 (a sliver cut anywhere), rows at scattered offsets,
        // the last elements of `base` read (the fixed-size moves fall back at its end);
        // one and two threads, overwrite and accumulate.
        let base: Vec<f32> = (0..5000).map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0).collect();
        for (m, k, runs) in
            [(5, 7, vec![40, 1, 3, 17]), (70, 300, vec![9; 30]), (200, 90, vec![33, 2, 64, 5, 70])]
        {
            let mut cols = Vec::new();
            for (r, &len) in runs.iter().enumerate() {
                cols.extend((0..len).map(|j| r * 150 + j));
            }
            let n = cols.len();
            let span = cols.iter().max().unwrap();
            let rows: Vec<usize> = (0..k).map(|p| (p * 7919) % (base.len() - span)).collect();
            let rows = [&rows[..k - 1], &[base.len() - 1 - span]].concat();
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 13) % 29) as f32 / 14.0 - 1.0).collect();
            let (base, cols_ref) = (&base, &cols);
            let b: Vec<f32> = rows.iter().flat_map(|&r| cols_ref.iter().map(move |&c| base[r + c])).collect();
            let p = MatMul { m, n, k, trans_a: false, trans_b: false };
            for (acc, parallel) in [(false, false), (true, false), (false, true), (true, true)] {
                let init: Vec<f32> = (0..m * n).map(|i| (i % 5) as f32).collect();
                let (mut want, mut got) = (init.clone(), init);
                p.run_with(&a, &b, &mut want, acc, parallel);
                p.run_gather(&a, base, &rows, &cols, &mut got, acc, None, parallel);
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (g - w).abs() <= 1e-4 * w.abs().max(1.0),
                        "{m}x{n}x{k} acc={acc} at {i}: {g} vs {w}"
                    );
                }
            }
        }
    }

    /// A row map applied as tiles are stored (f32 native kernels, plain and gathered `b`)
    /// or as a pass of its own (f64, and k = 0) gives the mapped product; single-threaded,
    /// and split by rows and by columns.
    #[test]
    fn row_maps() {
        for &(m, n, k) in &[(5, 37, 9), (300, 70, 260), (40, 300, 300), (3, 4, 0), (1, 1, 1)] {
            let p = MatMul { m, n, k, trans_a: false, trans_b: false };
            let (a, b) = (data(m * k, 1), data(k * n, 2));
            let (scale, shift) = (data(m, 3), data(m, 4));
            let product = reference(&p, &a, &b);
            let f32s = |v: &[f64]| -> Vec<f32> { v.iter().map(|&x| x as f32).collect() };
            let (a32, b32, scale32, shift32) = (f32s(&a), f32s(&b), f32s(&scale), f32s(&shift));
            let rows: Vec<usize> = (0..k).map(|q| q * n).collect();
            let cols: Vec<usize> = (0..n).collect();
            let sum = data(m * n, 5);
            let sum32 = f32s(&sum);
            for (relu, parallel, with_sum) in [
                (false, false, false),
                (true, false, false),
                (true, true, false),
                (false, true, false),
                (true, false, true),
                (true, true, true),
                (false, true, true),
            ] {
                let want: Vec<f64> = product
                    .iter()
                    .enumerate()
                    .map(|(i, &x)| {
                        let y = x * scale[i / n] + shift[i / n] + if with_sum { sum[i] } else { 0.0 };
                        if relu {
                            y.max(0.0)
                        } else {
                            y
                        }
                    })
                    .collect();
                let mut c = vec![f64::NAN; m * n];
                let sum64 = with_sum.then_some(&sum[..]);
                p.run_mapped(
                    &a,
                    &b,
                    &mut c,
                    &RowAffine { scale: &scale, shift: &shift, sum: sum64, relu },
                    parallel,
                );
                assert_eq!(c, want, "{p:?} relu={relu} sum={with_sum}");
                let map =
                    RowAffine { scale: &scale32, shift: &shift32, sum: with_sum.then_some(&sum32[..]), relu };
                let mut plain = vec![f32::NAN; m * n];
                p.run_mapped(&a32, &b32, &mut plain, &map, parallel);
                let mut gathered = vec![f32::NAN; m * n];
                p.run_gather(&a32, &b32, &rows, &cols, &mut gathered, false, Some(&map), parallel);
                for (i, w) in want.iter().enumerate() {
                    for (how, got) in [("plain", plain[i]), ("gathered", gathered[i])] {
                        let err = (got as f64 - w).abs();
                        assert!(
                            err <= 1e-4 * w.abs().max(1.0),
                            "{p:?} {how} relu={relu} sum={with_sum} at {i}: {got} vs {w}"
                        );
                    }
                }
            }
        }
    }

    /// The map's ReLU is MXNet's: NaN passes, and -0 becomes +0; in the tiles (f32, full
    /// and remainder columns) as in the pass of its own (f64).
    #[test]
    fn row_map_relu_is_mxnets() {
        let (m, n, k) = (3, 37, 5);
        let p = MatMul { m, n, k, trans_a: false, trans_b: false };
        let (scale, shift) = ([1.0, 0.0, 1.0], [f64::NAN, -0.0, -2.0]);
        let (a, b) = (data(m * k, 1), data(k * n, 2));
        let mut c = vec![0.0; m * n];
        p.run_mapped(
            &a,
            &b,
            &mut c,
            &RowAffine { scale: &scale, shift: &shift, sum: None, relu: true },
            false,
        );
        let f32s = |v: &[f64]| -> Vec<f32> { v.iter().map(|&x| x as f32).collect() };
        let (scale32, shift32) = (f32s(&scale), f32s(&shift));
        let mut c32 = vec![0.0f32; m * n];
        let map = RowAffine { scale: &scale32, shift: &shift32, sum: None, relu: true };
        p.run_mapped(&f32s(&a), &f32s(&b), &mut c32, &map, false);
        let product = reference(&p, &a, &b);
        for j in 0..n {
            assert!(c[j].is_nan() && c32[j].is_nan(), "NaN passes at {j}");
            assert!(
                c[n + j].to_bits() == 0 && c32[n + j].to_bits() == 0,
                "+0 at {j}: {} {}",
                c[n + j],
                c32[n + j]
            );
            let want = (product[2 * n + j] - 2.0).max(0.0);
            assert_eq!(c[2 * n + j], want);
            assert!((c32[2 * n + j] as f64 - want).abs() < 1e-5, "at {j}");
        }
    }

    /// A row split whose `b` is past L2 packs `b` once for all bands (two and three
    /// depth passes, a last partial sliver): the same bits as one thread's product, for a
    /// plain, transposed and gathered `b`, overwriting and accumulating, with a bias and
    /// with a row map and residual. (On one core it is the single-threaded path twice.)
    #[test]
    fn row_split_with_b_packed_once() {
        let (m, n, k) = (260, 200, 700);
        assert!(k * n >= 1 << 17 && m >= 128, "the shared packing's shape");
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 13) % 29) as f32 / 14.0 - 1.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 7) % 31) as f32 / 15.0 - 1.0).collect();
        let bias: Vec<f32> = (0..n).map(|j| j as f32 * 0.01).collect();
        let (scale, shift) = (data(m, 3), data(m, 4));
        let (scale, shift): (Vec<f32>, Vec<f32>) =
            (scale.iter().map(|&x| x as f32).collect(), shift.iter().map(|&x| x as f32).collect());
        let sum: Vec<f32> = (0..m * n).map(|i| (i % 9) as f32 - 4.0).collect();
        let map = RowAffine { scale: &scale, shift: &shift, sum: Some(&sum), relu: true };
        let init: Vec<f32> = (0..m * n).map(|i| (i % 5) as f32).collect();
        let rows: Vec<usize> = (0..k).map(|q| q * n).collect();
        let cols: Vec<usize> = (0..n).collect();
        for trans_b in [false, true] {
            let p = MatMul { m, n, k, trans_a: false, trans_b };
            for acc in [false, true] {
                let run = |parallel| {
                    let mut c = init.clone();
                    p.run_with(&a, &b, &mut c, acc, parallel);
                    c
                };
                assert_eq!(run(true), run(false), "trans_b={trans_b} acc={acc}");
            }
            let with_bias = |parallel| {
                let mut c = vec![f32::NAN; m * n];
                p.run_with_bias(&a, &b, &mut c, &bias, parallel);
                c
            };
            assert_eq!(with_bias(true), with_bias(false), "bias, trans_b={trans_b}");
            let mapped = |parallel| {
                let mut c = vec![f32::NAN; m * n];
                p.run_mapped(&a, &b, &mut c, &map, parallel);
                c
            };
            assert_eq!(mapped(true), mapped(false), "map, trans_b={trans_b}");
        }
        let p = MatMul { m, n, k, trans_a: false, trans_b: false };
        let gathered = |parallel| {
            let mut c = vec![f32::NAN; m * n];
            p.run_gather(&a, &b, &rows, &cols, &mut c, false, Some(&map), parallel);
            c
        };
        let mut plain = vec![f32::NAN; m * n];
        p.run_mapped(&a, &b, &mut plain, &map, false);
        assert_eq!(gathered(true), plain, "gathered");
        assert_eq!(gathered(false), plain, "gathered, one thread");
    }

    /// A `b` one native sliver wide (Winograd's filter planes) is read in place as packed
    /// when it starts on a 64-byte boundary: the same values, bit for bit, as the copy
    /// made when it does not, over several depth passes and row tiles.
    #[test]
    fn one_sliver_b_read_in_place() {
        let (m, n, k) = (50, native_f32_columns(), 600);
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 13) % 29) as f32 / 14.0 - 1.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 7) % 31) as f32 / 15.0 - 1.0).collect();
        let mut room = vec![0.0f32; k * n + 32];
        let aligned = room.as_ptr().align_offset(64);
        let p = MatMul { m, n, k, trans_a: false, trans_b: false };
        let mut run = |at: usize, acc: bool| {
            room[at..at + k * n].copy_from_slice(&b);
            let mut c: Vec<f32> = (0..m * n).map(|i| (i % 5) as f32).collect();
            p.run_with(&a, &room[at..at + k * n], &mut c, acc, true);
            c
        };
        for acc in [false, true] {
            let (in_place, copied) = (run(aligned, acc), run(aligned + 1, acc));
            assert_eq!(in_place, copied, "acc={acc}");
            for (i, &got) in in_place.iter().enumerate() {
                let (r, j) = (i / n, i % n);
                let want: f64 = (0..k).map(|q| a[r * k + q] as f64 * b[q * n + j] as f64).sum::<f64>()
                    + if acc { (i % 5) as f64 } else { 0.0 };
                assert!((got as f64 - want).abs() < 1e-3, "({r}, {j}): {got} vs {want}");
            }
        }
    }

    #[test]
    fn all_layouts_and_sizes() {
        // The last two are split across threads: by row blocks, and (too few rows) by column bands.
        for &(m, n, k) in
            &[(3, 5, 4), (1, 1, 7), (0, 3, 2), (4, 3, 0), (130, 70, 90), (301, 130, 70), (40, 300, 300)]
        {
            for (trans_a, trans_b) in [(false, false), (true, false), (false, true), (true, true)] {
                let p = MatMul { m, n, k, trans_a, trans_b };
                let (a, b) = (data(m * k, 1), data(k * n, 2));
                let want = reference(&p, &a, &b);
                let mut c = vec![f64::NAN; m * n];
                p.run(&a, &b, &mut c);
                assert_eq!(c, want, "{p:?}");
                let (a32, b32): (Vec<f32>, Vec<f32>) =
                    (a.iter().map(|&x| x as f32).collect(), b.iter().map(|&x| x as f32).collect());
                let mut c32 = vec![f32::NAN; m * n];
                p.run(&a32, &b32, &mut c32);
                for (g, w) in c32.iter().zip(&want) {
                    assert!((*g as f64 - w).abs() <= 1e-3 * w.abs().max(1.0), "{p:?}: {g} vs {w}");
                }
            }
        }
    }

    /// The bias added as tiles are stored (f32) equals a product onto a bias-filled `c`,
    /// bit for bit; f64 takes the fill path. Both a single-threaded and a split product.
    #[test]
    fn bias_rows() {
        for &(m, n, k) in &[(5, 37, 9), (300, 70, 260)] {
            let p = MatMul { m, n, k, trans_a: false, trans_b: true };
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 13) as f32 * 0.25 - 1.0).collect();
            let b: Vec<f32> = (0..k * n).map(|i| ((i * 5) % 11) as f32 * 0.5 - 2.0).collect();
            let bias: Vec<f32> = (0..n).map(|j| j as f32 * 0.125 - 3.0).collect();
            let mut want: Vec<f32> = (0..m * n).map(|i| bias[i % n]).collect();
            p.run_with(&a, &b, &mut want, true, true);
            let mut got = vec![f32::NAN; m * n];
            p.run_with_bias(&a, &b, &mut got, &bias, true);
            assert_eq!(got, want, "{m}x{n}x{k}");
            let (a, b, bias): (Vec<f64>, Vec<f64>, Vec<f64>) = (
                a.iter().map(|&v| v as f64).collect(),
                b.iter().map(|&v| v as f64).collect(),
                bias.iter().map(|&v| v as f64).collect(),
            );
            let mut got = vec![f64::NAN; m * n];
            p.run_with_bias(&a, &b, &mut got, &bias, false);
            let close = got
                .iter()
                .zip(&want)
                .all(|(&g, &w)| (g - w as f64).abs() <= 1e-9 * (w.abs() as f64).max(1.0));
            assert!(close, "f64 {m}x{n}x{k}");
        }
    }

    #[test]
    fn batches_small_and_large() {
        for &(batch, m, n, k) in &[(3, 2, 3, 4), (200, 8, 8, 8), (2, 100, 100, 100)] {
            let p = MatMul { m, n, k, trans_a: true, trans_b: false };
            let (a, b) = (data(batch * m * k, 3), data(batch * k * n, 4));
            let mut c = vec![0.0; batch * m * n];
            p.run_batch(batch, &a, &b, &mut c);
            for i in 0..batch {
                let want = reference(&p, &a[i * m * k..][..m * k], &b[i * k * n..][..k * n]);
                assert_eq!(&c[i * m * n..][..m * n], &want[..]);
            }
        }
    }

    #[test]
    fn half_precision() {
        let p = MatMul { m: 2, n: 2, k: 3, trans_a: false, trans_b: false };
        let a: Vec<half::f16> = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0].map(half::f16::from_f32).to_vec();
        let b: Vec<half::f16> = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0].map(half::f16::from_f32).to_vec();
        let mut c = vec![half::f16::ZERO; 4];
        p.run(&a, &b, &mut c);
        assert_eq!(c.iter().map(|x| x.to_f32()).collect::<Vec<_>>(), [4.0, 5.0, 10.0, 11.0]);
    }
}
