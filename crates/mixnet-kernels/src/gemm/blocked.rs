//! The blocked f32 product shared by this crate's SIMD kernels: how a product is split
//! across threads, cut into depth passes and column slivers, and where operands are packed.
//! A [`Kernel`] supplies only what depends on the vector width: its register tile and the
//! packing routines that feed it.
//!
//! One register tile covers up to `MR` rows × `NR` columns of `c`, built from broadcast
//! elements of `a` times the vectors of one row of `b`. `a` is read in place through its
//! strides (its elements are broadcast one at a time, so layout does not matter), or packed
//! into `MR`-row panels when enough slivers reuse it. `b` is packed one `NR`-column sliver
//! at a time into an aligned thread-local buffer that every row tile then reuses; blocks of
//! few rows read a `b` with contiguous rows in place instead.

use std::cell::RefCell;

/// One SIMD instruction set's register tile and packing.
///
/// # Safety
/// An implementation's `available` must return true only on CPUs that have every feature
/// its other functions are compiled for.
pub(super) unsafe trait Kernel {
    /// Rows of one register tile.
    const MR: usize;
    /// Columns of one register tile (whole vectors).
    const NR: usize;
    /// Depth of one pass: a packed sliver of `KC × NR` floats stays in L1.
    const KC: usize;
    /// Rows per pass over one sliver, so the rows of `a` it reads (MC × KC floats) stay in
    /// L2; a multiple of `MR`.
    const MC: usize;
    /// Whether a tile reads an in-place `b` narrower than `NR` (masked loads); without
    /// them, such a sliver is packed.
    const MASKED: bool;

    /// Whether this CPU has the features the kernel runs on.
    fn available() -> bool;

    /// `panel[ir*kc + p*MR + r] = a(ir + r, p)` for each MR-row block `ir` of `mc` rows
    /// (rows past `mc` in the last block are left as they were: tiles never read them).
    ///
    /// # Safety
    /// `a` addresses `mc × kc` elements in bounds; `panel` holds `mc` rounded up to MR
    /// times `kc` floats; [`Kernel::available`].
    unsafe fn pack_a(panel: &mut [f32], a: View, mc: usize, kc: usize);

    /// `sliver[p*NR + jj] = b(p0 + p, j0 + jj)` for `p < sliver.len() / NR`, jj < nr, and
    /// zero for nr <= jj < NR.
    ///
    /// # Safety
    /// `b` addresses those elements in bounds; `sliver` starts on a 64-byte boundary and
    /// holds whole rows of NR floats; [`Kernel::available`].
    unsafe fn pack_b(sliver: &mut [f32], b: View, p0: usize, j0: usize, nr: usize);

    /// [`Kernel::pack_b`] for a gathered `b` (see [`pack_gather`]).
    ///
    /// # Safety
    /// As [`pack_gather`] with `w == NR`; [`Kernel::available`].
    unsafe fn pack_gather(sliver: &mut [f32], g: Gather, p0: usize, j0: usize, nr: usize) {
        pack_gather(sliver, g, p0, j0, nr, Self::NR)
    }

    /// `c[rows × nr] (+)= a[rows × k] · b[k × nr]` for 1 <= rows <= MR, 1 <= nr <= NR;
    /// `packed`: `b` is a packed sliver (`ldb == NR`, zero-padded, 64-byte aligned rows).
    ///
    /// # Safety
    /// Rows `0..rows` of `a` and `c`, `k` rows of `b` and columns `0..nr` of each are in
    /// bounds (all NR columns of a packed `b`), and `nr` values of a non-null `bias`
    /// (NR when `nr == NR`); nothing else accesses that part of `c`;
    /// [`Kernel::available`]. An in-place `b` has `nr == NR` unless `MASKED`.
    unsafe fn tile(rows: usize, packed: bool, t: &Tile);
}

/// A strided f32 matrix: element (i, j) at `ptr + i*rs + j*cs`.
#[derive(Clone, Copy)]
pub(super) struct View {
    pub ptr: *const f32,
    pub rs: usize,
    pub cs: usize,
}

/// `b` as a caller hands it over: a strided matrix (see [`product`]), or gathered.
pub(super) enum BSource<'a> {
    /// op(b) element (p, j) at `b[p*rs + j*cs]`.
    Strided(&'a [f32], (usize, usize)),
    /// Element (p, j) at `base[rows[p] + cols[j]]`: a convolution's column matrix read
    /// straight from its (padded) image (see [`super::MatMul::run_gather`]).
    Gather { base: &'a [f32], rows: &'a [usize], cols: &'a [usize] },
}

/// `b` as a task reads it.
#[derive(Clone, Copy)]
enum BView {
    Strided(View),
    Gather(Gather),
    /// Packed ahead, shared by every task ([`Packed`]).
    Packed(Packed),
}

/// A `b` packed whole before a row split's bands start, as each band would pack it: per
/// depth pass of [`Kernel::KC`] rows (`p0`), the pass's slivers of `kc × NR` floats one
/// after another; pass `p0` starts at `p0 · n_pad`. `s0` is the first sliver a task
/// reads (a column band's, bands being whole slivers of `nr` columns).
#[derive(Clone, Copy)]
struct Packed {
    ptr: *const f32,
    n_pad: usize,
    nr: usize,
    s0: usize,
}

/// [`BSource::Gather`] as raw parts; `cols` moves with a column band.
#[derive(Clone, Copy)]
pub(super) struct Gather {
    pub base: *const f32,
    /// Elements at `base`.
    pub len: usize,
    pub rows: *const usize,
    pub cols: *const usize,
}

/// The output block: element (i, j) at `ptr + i*ld + j`.
#[derive(Clone, Copy)]
struct Out {
    ptr: *mut f32,
    ld: usize,
}

impl Out {
    /// The element `off` places on (a method, so that a closure takes the whole `Out`,
    /// which is `Sync`, not its raw pointer).
    fn at(&self, off: usize) -> *mut f32 {
        self.ptr.wrapping_add(off)
    }
}

// SAFETY: the views are only handed to tasks that read (`View`) or write (`Out`) disjoint
// parts of slices borrowed for the whole parallel region by `product`, which joins every
// task before it returns.
unsafe impl Send for View {}
unsafe impl Sync for View {}
unsafe impl Send for BView {}
unsafe impl Sync for BView {}
unsafe impl Send for Packed {}
unsafe impl Sync for Packed {}
unsafe impl Send for Out {}
unsafe impl Sync for Out {}
unsafe impl Send for Post {}
unsafe impl Sync for Post {}

/// Operands of one register tile: `a` element (r, p) at `a + r*ars + p*acs`, `b` element
/// (p, j) at `b + p*ldb + j`, `c` element (r, j) at `c + r*ldc + j`.
pub(super) struct Tile {
    pub k: usize,
    pub a: *const f32,
    pub ars: usize,
    pub acs: usize,
    pub b: *const f32,
    pub ldb: usize,
    pub c: *mut f32,
    pub ldc: usize,
    /// Columns of `c` written (1..=NR).
    pub nr: usize,
    /// Add to `c` rather than overwrite it.
    pub load_c: bool,
    /// A row of `nr` values added to every row of the result (a dense layer's bias, per
    /// column), or null.
    pub bias: *const f32,
    /// Per-row affine map applied to the finished result as it is stored (the last depth
    /// pass only): row r becomes `c * scale[r] + shift[r]`, then MXNet's relu with `relu`.
    /// Null `scale` when none.
    pub post: Post,
}

/// [`super::RowAffine`] as raw parts; `scale` and `shift` hold a value per row of the
/// block they are handed with, and move with a row band; `sum` (null when none) is the
/// block's top-left element of a matrix laid out as `c` (rows `ld` apart), and moves with
/// rows and columns.
#[derive(Clone, Copy)]
pub(super) struct Post {
    pub scale: *const f32,
    pub shift: *const f32,
    pub sum: *const f32,
    pub ld: usize,
    pub relu: bool,
}

impl Post {
    const NONE: Post =
        Post { scale: std::ptr::null(), shift: std::ptr::null(), sum: std::ptr::null(), ld: 0, relu: false };

    /// The map for row `r`, column `j` on one value (remainder columns without vector
    /// masks).
    ///
    /// # Safety
    /// `scale` and `shift` hold at least `r + 1` values, and `sum` (unless null) element
    /// (r, j).
    pub unsafe fn apply(&self, x: f32, r: usize, j: usize) -> f32 {
        let y = x.mul_add(*self.scale.add(r), *self.shift.add(r));
        let y = if self.sum.is_null() { y } else { y + *self.sum.add(r * self.ld + j) };
        if self.relu {
            crate::unary::relu(y)
        } else {
            y
        }
    }

    /// The map from row `i0` on (none stays none).
    fn rows_from(self, i0: usize) -> Post {
        if self.scale.is_null() {
            return self;
        }
        Post {
            scale: self.scale.wrapping_add(i0),
            shift: self.shift.wrapping_add(i0),
            sum: if self.sum.is_null() { self.sum } else { self.sum.wrapping_add(i0 * self.ld) },
            ..self
        }
    }

    /// The map from column `j0` on: only `sum` moves.
    fn cols_from(self, j0: usize) -> Post {
        if self.sum.is_null() {
            return self;
        }
        Post { sum: self.sum.wrapping_add(j0), ..self }
    }
}

/// Rows per task from which a product is split by rows (balanced to a tile) rather than
/// by panels of columns (balanced only to a panel, and lopsided when n has few panels).
const SPLIT_ROWS: usize = 64;
/// Panels per thread a wide product needs to be split by columns: enough bands for a
/// late or slowed thread to take fewer of them. (Bands are cut by
/// `parallel::claim_ranges`: large at both ends, small where the threads meet.)
const UNITS_PER_THREAD: usize = 4;
/// Fewest rows in a band of a row split (each band packs all of `b`).
const MIN_BAND: usize = 32;
/// Rows of a block (a band of a split product) at most which a `b` with contiguous rows
/// is read in place: its few tiles read each sliver about as often as packing would, so
/// the copy is pure cost (the MLP's weight gradients: bands of 32 rows on AVX-512, 36 on
/// AVX2, k = 64).
const IN_PLACE_ROWS: usize = 36;

/// Elements of `b` from which a product wider than tall splits by columns (512 KiB, an L2).
const WIDE_B: usize = 1 << 17;

/// `c (m×n, row-major, dense) = a·b` (or `+=` with `acc`), where op(a) element (i, p) is
/// `a[i*ars + p*acs]` and op(b) is read as `b` says, then `post` applied to each row;
/// split over up to `threads` tasks. m, n, k > 0.
///
/// # Panics
/// If the kernel is not available on this CPU, or an operand slice is shorter than its
/// strides address.
#[allow(clippy::too_many_arguments)]
pub(super) fn product<K: Kernel>(
    (m, n, k): (usize, usize, usize),
    a: &[f32],
    (ars, acs): (usize, usize),
    b: BSource<'_>,
    c: &mut [f32],
    acc: bool,
    bias: Option<&[f32]>,
    post: Option<&super::RowAffine<'_, f32>>,
    threads: usize,
) {
    assert!(K::available(), "gemm: SIMD kernel called on a CPU without its features");
    assert!(m > 0 && n > 0 && k > 0 && c.len() == m * n);
    assert!((m - 1) * ars + (k - 1) * acs < a.len(), "gemm: a too short for its strides");
    // One row times a `b` whose columns are contiguous (a dense layer at batch 1: `b` is
    // its weight, transposed): a dot product down each column, read once in place.
    // Packing would transpose all of `b` for one row of tiles (ResNet-50's last layer,
    // 2048×1000: 8 MB copied to be read once; `benches/gemm.rs` dense_b1 0.85 -> 0.17 ms).
    if let (1, None, BSource::Strided(bs, (1, cs)), 1) = (m, post, &b, acs) {
        let fits = *cs >= k && (n - 1) * cs + k <= bs.len() && bias.is_none_or(|v| v.len() == n && !acc);
        if fits {
            return dot_columns(&a[..k], bs, *cs, c, acc, bias, threads);
        }
    }
    let b = match b {
        BSource::Strided(b, (rs, cs)) => {
            assert!((k - 1) * rs + (n - 1) * cs < b.len(), "gemm: b too short for its strides");
            BView::Strided(View { ptr: b.as_ptr(), rs, cs })
        }
        BSource::Gather { base, rows, cols } => {
            assert!(rows.len() == k && cols.len() == n, "gemm: gather tables do not fit k, n");
            let last = rows.iter().max().zip(cols.iter().max()).map(|(r, c)| r + c);
            assert!(last.is_some_and(|i| i < base.len()), "gemm: gathered b out of bounds");
            BView::Gather(Gather {
                base: base.as_ptr(),
                len: base.len(),
                rows: rows.as_ptr(),
                cols: cols.as_ptr(),
            })
        }
    };
    assert!(bias.is_none_or(|v| v.len() == n && !acc), "gemm: a bias has n values and starts c");
    assert!(post.is_none_or(|p| p.fits(m, n)), "gemm: a row map has m values (and a sum m x n)");
    let post = post.map_or(Post::NONE, |p| Post {
        scale: p.scale.as_ptr(),
        shift: p.shift.as_ptr(),
        sum: p.sum.map_or(std::ptr::null(), <[f32]>::as_ptr),
        ld: n,
        relu: p.relu,
    });
    // A 1×n matrix, null when there is none.
    let bias = View { ptr: bias.map_or(std::ptr::null(), <[f32]>::as_ptr), rs: 0, cs: 1 };
    let a = View { ptr: a.as_ptr(), rs: ars, cs: acs };
    let c = Out { ptr: c.as_mut_ptr(), ld: n };
    let panels = n.div_ceil(K::NR);
    let rows_fit = m >= threads * SPLIT_ROWS || (panels < threads && m >= threads * K::MR);
    // A row band packs all of `b` and a column band (at most) all of `a`, so a product
    // wider than it is tall, with a `b` past L2 and panels enough to balance, splits by
    // columns: the language model's decoder (700×10000×256, `b` transposed) spent 18% of
    // its time transposing `b` once per row band (130 -> 172 GFLOP/s split by columns).
    let wide = n > m && k * n >= WIDE_B && panels >= threads * UNITS_PER_THREAD;
    if threads > 1 && rows_fit && !wide {
        // Rows: bands claimed one at a time (see `parallel::claim_ranges`), balanced to
        // a tile whatever n is. Each band packs all of `b`, which is cheap next to at
        // least MIN_BAND rows of multiply-adds per packed element, unless `b` is past
        // L2: then it is packed once for all bands first ([`pack_whole`]), and bands need
        // not be tall. (Packing per band made every band a pass over memory, so bands
        // were few and coarse, two per thread at m = 256, and a core slowed by a
        // neighbour held the other up for a fifth of such a product: ResNet-50's
        // 1024 -> 256 1×1s at 14×14, its 512-channel 3×3s at 7×7.)
        let whole = k * n >= WIDE_B;
        let (_packing, b) = if whole { pack_whole::<K>(b, k, n) } else { (None, b) };
        let smallest = if whole { 2 * K::MR } else { MIN_BAND };
        crate::parallel::claim_ranges(m, K::MR, smallest, &|rows| {
            let i0 = rows.start;
            // SAFETY: rows i0..i0+rows are in bounds (asserted above); each band is
            // claimed once, so each task writes only its own rows; a packed `b` is
            // complete (`pack_whole` has joined) and read only; the kernel is available.
            let (a, c, post) = (shift_rows(a, i0), shift_out(c, i0, 0), post.rows_from(i0));
            unsafe { block::<K>(rows.len(), n, k, a, b, c, acc, bias, post) }
        });
    } else if threads > 1 && panels >= threads {
        // Columns: bands of whole panels, each packing only the slivers of `b` it
        // multiplies.
        crate::parallel::claim_ranges(n, K::NR, K::NR, &|cols| {
            let j0 = cols.start;
            // SAFETY: columns j0..j0+cols of every operand are in bounds (asserted above)
            // and each band is claimed once, so each task writes only its own columns.
            let bias = if bias.ptr.is_null() { bias } else { shift_cols(bias, j0) };
            let (b, c, post) = (shift_b(b, j0), shift_out(c, 0, j0), post.cols_from(j0));
            unsafe { block::<K>(m, cols.len(), k, a, b, c, acc, bias, post) }
        });
    } else {
        // SAFETY: the whole product, bounds asserted above; the kernel is available.
        unsafe { block::<K>(m, n, k, a, b, c, acc, bias, post) };
    }
}

/// `b` (k × n, every element in bounds) packed whole by all threads together, as each
/// band of a row split would pack it ([`Packed`]): the buffer that holds it (kept alive
/// while the view is read) and the view. A `b` already packed is returned as it is.
fn pack_whole<K: Kernel>(b: BView, k: usize, n: usize) -> (Option<crate::scratch::Buffer<f32>>, BView) {
    if let BView::Packed(_) = b {
        return (None, b);
    }
    let panels = n.div_ceil(K::NR);
    let n_pad = panels * K::NR;
    let mut buf = crate::scratch::Buffer::<f32>::unset(k * n_pad + 16);
    let skip = buf.as_ptr().align_offset(64);
    let packed = Out { ptr: buf[skip..].as_mut_ptr(), ld: n_pad };
    crate::parallel::claim(k.div_ceil(K::KC) * panels, &|u| {
        let (p0, s) = (u / panels * K::KC, u % panels);
        let (kc, j0) = (K::KC.min(k - p0), s * K::NR);
        // SAFETY: sliver s of pass p0 is its own `kc × NR` floats inside the buffer
        // (k · n_pad in all, from a 64-byte boundary; n_pad and kc·NR keep it there),
        // claimed once; `b` addresses every element packed (the caller's bound); the
        // kernel is available (`product` asserted it).
        unsafe {
            let dst = std::slice::from_raw_parts_mut(packed.at(p0 * n_pad + s * kc * K::NR), kc * K::NR);
            match b {
                BView::Strided(b) => K::pack_b(dst, b, p0, j0, K::NR.min(n - j0)),
                BView::Gather(g) => K::pack_gather(dst, g, p0, j0, K::NR.min(n - j0)),
                BView::Packed(_) => {} // (returned above)
            }
        }
    });
    (Some(buf), BView::Packed(Packed { ptr: packed.ptr, n_pad, nr: K::NR, s0: 0 }))
}

/// `c[j] (+)= a · b[j*cs..][..k]` for every column j of `c` (`bias[j]` first when given),
/// split over up to `threads` parts.
fn dot_columns(
    a: &[f32],
    b: &[f32],
    cs: usize,
    c: &mut [f32],
    acc: bool,
    bias: Option<&[f32]>,
    threads: usize,
) {
    let k = a.len();
    let run = |j0: usize, part: &mut [f32]| {
        crate::fastmath::wide(|| {
            for (i, c) in part.iter_mut().enumerate() {
                let j = j0 + i;
                let d = dot(a, &b[j * cs..][..k]);
                let start = if acc { *c } else { bias.map_or(0.0, |v| v[j]) };
                *c = start + d;
            }
        })
    };
    if threads > 1 && c.len() >= 2 * threads {
        crate::parallel::split(c, 1, &run);
    } else {
        run(0, c);
    }
}

/// `x · y` summed in 16 lanes (vectors), then across them.
#[inline(always)]
fn dot(x: &[f32], y: &[f32]) -> f32 {
    const L: usize = 16;
    let mut lanes = [0.0f32; L];
    let (xc, yc) = (x.chunks_exact(L), y.chunks_exact(L));
    let tail: f32 = xc.remainder().iter().zip(yc.remainder()).map(|(a, b)| a * b).sum();
    for (x, y) in xc.zip(yc) {
        for l in 0..L {
            lanes[l] += x[l] * y[l];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// Rows `first..first + c.len() / n` of `p` into `c`, from `bias` when given (see
/// [`super::GemmElement::native`]).
///
/// # Panics
/// As [`product`].
#[allow(clippy::too_many_arguments)]
pub(super) fn rows_of<K: Kernel>(
    p: &super::MatMul,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    first: usize,
    acc: bool,
    bias: Option<&[f32]>,
    post: Option<&super::RowAffine<'_, f32>>,
    threads: usize,
) {
    let ((a_rs, a_cs), b_strides) = p.strides();
    let dims = (c.len() / p.n, p.n, p.k);
    let b = BSource::Strided(b, b_strides);
    product::<K>(dims, &a[first * a_rs..], (a_rs, a_cs), b, c, acc, bias, post, threads);
}

fn shift_rows(a: View, i0: usize) -> View {
    View { ptr: a.ptr.wrapping_add(i0 * a.rs), ..a }
}

fn shift_cols(b: View, j0: usize) -> View {
    View { ptr: b.ptr.wrapping_add(j0 * b.cs), ..b }
}

/// `b` from column `j0` on.
fn shift_b(b: BView, j0: usize) -> BView {
    match b {
        BView::Strided(v) => BView::Strided(shift_cols(v, j0)),
        BView::Gather(g) => BView::Gather(Gather { cols: g.cols.wrapping_add(j0), ..g }),
        BView::Packed(p) => BView::Packed(Packed { s0: p.s0 + j0 / p.nr, ..p }),
    }
}

fn shift_out(c: Out, i0: usize, j0: usize) -> Out {
    Out { ptr: c.ptr.wrapping_add(i0 * c.ld + j0), ..c }
}

/// One cache line of floats: the sliver's rows must start on line boundaries, or vector
/// loads of `b` would straddle two lines.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; 16]);

/// Per-thread packing buffers, reused across calls: one sliver of `b` (KC × NR) and,
/// when `a` is packed, one block of `a` (MC × KC).
#[derive(Default)]
struct Buffers {
    sliver: Vec<Line>,
    panel: Vec<f32>,
}

impl Buffers {
    fn get(&mut self, sliver: usize, panel: usize) -> (&mut [f32], &mut [f32]) {
        if self.sliver.len() * 16 < sliver {
            self.sliver.resize(sliver.div_ceil(16), Line([0.0; 16]));
        }
        if self.panel.len() < panel {
            self.panel.resize(panel, 0.0);
        }
        let lines = &mut self.sliver;
        // SAFETY: `Line` is `repr(C)` over 16 f32 with no padding (64 bytes, align 64), so
        // the lines are exactly `16 * len` consecutive initialised f32.
        let sliver =
            unsafe { std::slice::from_raw_parts_mut(lines.as_mut_ptr().cast::<f32>(), lines.len() * 16) };
        (sliver, &mut self.panel)
    }
}

thread_local! {
    static BUFFERS: RefCell<Buffers> = RefCell::new(Buffers::default());
}

/// One task's block: `c (m×n) (+)= a (m×k) · b (k×n)`.
///
/// # Safety
/// Every element the views address for these m, n, k is in bounds (`bias`: null, or n
/// values; `post`: null, or m values each); nothing else writes this block of `c`
/// meanwhile, and `c` does not overlap `a` or `b`; [`Kernel::available`].
#[allow(clippy::too_many_arguments)]
unsafe fn block<K: Kernel>(
    m: usize,
    n: usize,
    k: usize,
    a: View,
    b: BView,
    c: Out,
    acc: bool,
    bias: View,
    post: Post,
) {
    let (mr, nr_max) = (K::MR, K::NR);
    // Rows of `a` that are not contiguous (a transposed `a`) put every step of a tile on
    // a new cache line and, for long columns, a new page; contiguous rows a power-of-two
    // apart land in the same cache sets (1024² f32 on AVX-512: 132-145 GFLOP/s unpacked,
    // 167-173 packed). So `a` is packed into MR-row panels whenever enough column slivers
    // reuse the packing: two for a transposed `a`, eight otherwise (the MLP's 64×128×784
    // blocks ran no faster packed).
    let pack_a = m > 1 && if a.cs != 1 { n > nr_max } else { n >= 8 * nr_max };
    let in_place_b = matches!(b, BView::Strided(v) if m <= IN_PLACE_ROWS && v.cs == 1 && v.rs != nr_max);
    // A `b` one whole sliver wide, rows NR apart from a 64-byte boundary, is laid out as
    // its packing would be (Winograd's transformed filters, a block of NR output channels
    // per product): read in place as packed. Copying it was 60% of all packing in
    // ResNet-50 b1, a copy per 16-56 multiply-adds.
    let packed_b = matches!(b, BView::Strided(v) if v.cs == 1 && v.rs == nr_max && n == nr_max
        && (v.ptr as usize).is_multiple_of(64));
    BUFFERS.with(|buffers| {
        let mut buffers = buffers.borrow_mut();
        let panel_len = if pack_a { K::MC * K::KC } else { 0 };
        let (sliver, panel) = buffers.get(K::KC * nr_max, panel_len);
        for i0 in (0..m).step_by(K::MC) {
            let mc = K::MC.min(m - i0);
            for p0 in (0..k).step_by(K::KC) {
                let kc = K::KC.min(k - p0);
                let a_blk = View { ptr: a.ptr.add(i0 * a.rs + p0 * a.cs), ..a };
                if pack_a {
                    K::pack_a(&mut panel[..mc.next_multiple_of(mr) * kc], a_blk, mc, kc);
                }
                let load_c = acc || p0 > 0;
                let last = p0 + kc == k && !post.scale.is_null();
                for j0 in (0..n).step_by(nr_max) {
                    let nr = nr_max.min(n - j0);
                    // (A `b` exactly NR wide would read as packed: it is packed.)
                    let (bp, ldb) = match b {
                        BView::Gather(g) => {
                            K::pack_gather(&mut sliver[..kc * nr_max], g, p0, j0, nr);
                            (sliver.as_ptr(), nr_max)
                        }
                        BView::Strided(b) if packed_b => (b.ptr.add(p0 * nr_max), nr_max),
                        BView::Strided(b) if in_place_b && (K::MASKED || nr == nr_max) => {
                            (b.ptr.add(p0 * b.rs + j0), b.rs)
                        }
                        BView::Strided(b) => {
                            K::pack_b(&mut sliver[..kc * nr_max], b, p0, j0, nr);
                            (sliver.as_ptr(), nr_max)
                        }
                        BView::Packed(pk) => {
                            (pk.ptr.add(p0 * pk.n_pad + (pk.s0 + j0 / nr_max) * kc * nr_max), nr_max)
                        }
                    };
                    for ir in (0..mc).step_by(mr) {
                        // A packed panel holds MR rows p-major: row r of step p at p*MR + r.
                        let (ap, ars, acs) = if pack_a {
                            (panel.as_ptr().add(ir * kc), 1, mr)
                        } else {
                            (a_blk.ptr.add(ir * a.rs), a.rs, a.cs)
                        };
                        let t = Tile {
                            k: kc,
                            a: ap,
                            ars,
                            acs,
                            b: bp,
                            ldb,
                            c: c.ptr.add((i0 + ir) * c.ld + j0),
                            ldc: c.ld,
                            nr,
                            load_c,
                            // The first depth pass adds the bias; later ones add to it.
                            bias: if p0 == 0 && !bias.ptr.is_null() {
                                bias.ptr.add(j0)
                            } else {
                                std::ptr::null()
                            },
                            post: if last { post.rows_from(i0 + ir).cols_from(j0) } else { Post::NONE },
                        };
                        K::tile(mr.min(mc - ir), ldb == nr_max, &t);
                    }
                }
            }
        }
    });
}

/// Columns `j0..j0 + nr` (at most 32) of a gathered `b` as runs contiguous in its `base`:
/// (first column in the sliver, length, offset of the run in a row), and how many.
///
/// # Safety
/// `g.cols` holds columns `j0..j0 + nr`.
pub(super) unsafe fn runs(g: Gather, j0: usize, nr: usize) -> ([(usize, usize, usize); 32], usize) {
    let mut runs = [(0usize, 0usize, 0usize); 32];
    let mut count = 0;
    for jj in 0..nr {
        let off = *g.cols.add(j0 + jj);
        if count > 0 {
            let (start, len, at) = &mut runs[count - 1];
            if *at + *len == off && *start + *len == jj {
                *len += 1;
                continue;
            }
        }
        runs[count] = (jj, 1, off);
        count += 1;
    }
    (runs, count)
}

/// [`Kernel::pack_b`] for a gathered `b`: `sliver[p*w + jj] = b(p0 + p, j0 + jj)` for jj <
/// nr, zero up to `w` (NR, at most 32). The columns fall in runs that are contiguous in
/// `base` (one output row of a convolution each). Each run is moved as a fixed 8, 16 or
/// 32 floats where that fits in the row, later runs overwriting what an earlier one moved
/// past its end: fixed sizes compile to plain vector moves, where copies of a run's own
/// length (7 to 32 floats) cost a loop each. (Staging the row in a buffer instead stalled
/// on store forwarding: its vector reads spanned several of the moves' stores.)
///
/// # Safety
/// `g`'s tables hold rows `p0..p0 + sliver.len()/w` and columns `j0..j0 + nr`, and every
/// element they address is in bounds.
unsafe fn pack_gather(sliver: &mut [f32], g: Gather, p0: usize, j0: usize, nr: usize, w: usize) {
    debug_assert!(w <= 32 && nr <= w);
    let (runs, count) = runs(g, j0, nr);
    let runs = &runs[..count];
    /// `dst[..N] = src[..N]`: a copy of constant length, which compiles to vector moves.
    #[inline(always)]
    fn moved<const N: usize>(dst: &mut [f32], src: &[f32]) {
        dst[..N].copy_from_slice(&src[..N]);
    }
    crate::fastmath::wide256(|| {
        for (p, dst) in sliver.chunks_exact_mut(w).enumerate() {
            let first = *g.rows.add(p0 + p);
            // SAFETY (of the reads): the caller's bounds hold for every addressed element;
            // a fixed-size move reads past a run only while that stays below `len`.
            let row = std::slice::from_raw_parts(g.base.add(first), g.len - first);
            for &(start, len, at) in runs {
                let (d, s) = (&mut dst[start..], &row[at..]);
                let room = d.len().min(s.len());
                match len {
                    _ if len <= 8 && room >= 8 => moved::<8>(d, s),
                    _ if len <= 16 && room >= 16 => moved::<16>(d, s),
                    _ if room >= 32 => moved::<32>(d, s),
                    _ => d[..len].iter_mut().zip(&s[..len]).for_each(|(d, s)| *d = *s),
                }
            }
            dst[nr..].fill(0.0);
        }
    });
}

/// Checks a kernel against an f64 reference: every tile remainder, several depth passes
/// (k > KC), row passes (m > MC), both layouts of each operand, `a` packed and read in
/// place, `b` packed, read in place and gathered, accumulation, and every split rule.
#[cfg(test)]
pub(super) fn check_kernel<K: Kernel>() {
    if !K::available() {
        eprintln!("{}: not available on this CPU, not exercised", std::any::type_name::<K>());
        return;
    }
    let data = |len: usize, seed: usize| -> Vec<f32> {
        (0..len).map(|i| ((i * 7 + seed * 13) % 17) as f32 / 4.0 - 2.0).collect()
    };
    let shapes = [
        (1, 1, 1),
        (7, 33, 5),
        (9, 31, 300),
        (17, 64, 257),
        (530, 40, 20),
        (64, 250, 784),
        (3, 200, 9),
        (13, 17, 19),
        // A last sliver three quarters wide (n = 49: 32 + 17), whole 8-row tiles, two
        // depth passes.
        (24, 49, 300),
        (400, 130, 70),
        // A `b` past L2: split by columns when wide, by 96-row bands when tall.
        (300, 200, 700),
        // Wide enough to pack an untransposed `a` (k-contiguous rows, in 8-step blocks
        // and a remainder; a last panel of 4 rows).
        (20, 300, 37),
        // One row: with `b` transposed, dot products down its contiguous columns.
        (1, 1000, 300),
        (1, 7, 35),
    ];
    for &(m, n, k) in &shapes {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            // `post`: a row map (with ReLU or not) on the stored result; `sum`: with a
            // matrix added by the map (before its ReLU).
            for (acc, threads, with_bias, post, with_sum) in [
                (false, 1, false, None, false),
                (true, 1, false, None, false),
                (false, 2, false, None, false),
                (true, 2, false, None, false),
                (false, 1, true, None, false),
                (false, 2, true, None, false),
                (false, 1, false, Some(true), false),
                (true, 2, false, Some(false), false),
                (false, 2, true, Some(true), false),
                (false, 1, false, Some(true), true),
                (true, 2, false, Some(true), true),
                (false, 2, false, Some(false), true),
            ] {
                let (a, b) = (data(m * k, 1), data(k * n, 2));
                let sa = if ta { (1, m) } else { (k, 1) };
                let sb = if tb { (1, k) } else { (n, 1) };
                let init = data(m * n, 3);
                let bias = data(n, 4);
                let (scale, shift) = (data(m, 5), data(m, 6));
                let sum = data(m * n, 7);
                let map = post.map(|relu| super::RowAffine {
                    scale: &scale,
                    shift: &shift,
                    sum: with_sum.then_some(&sum[..]),
                    relu,
                });
                // `b` gathered too (with `b` not transposed): rows of a wider buffer, the
                // columns in runs of 5 with gaps of NaN between (moves that run past a run
                // must be overwritten or zeroed).
                let stride = n + 2 * (n / 5) + 1;
                let cols: Vec<usize> = (0..n).map(|j| j + 2 * (j / 5)).collect();
                let rows: Vec<usize> = (0..k).map(|p| p * stride).collect();
                let mut base = vec![f32::NAN; k * stride];
                for p in 0..k {
                    for j in 0..n {
                        base[rows[p] + cols[j]] = b[p * sb.0 + j * sb.1];
                    }
                }
                let mut sources = vec![BSource::Strided(&b, sb)];
                if !tb {
                    sources.push(BSource::Gather { base: &base, rows: &rows, cols: &cols });
                }
                for bs in sources {
                    let mut c = if acc { init.clone() } else { vec![f32::NAN; m * n] };
                    let bias_row = with_bias.then_some(&bias[..]);
                    product::<K>((m, n, k), &a, sa, bs, &mut c, acc, bias_row, map.as_ref(), threads);
                    for i in 0..m {
                        for j in 0..n {
                            let mut want: f64 = (0..k)
                                .map(|p| a[i * sa.0 + p * sa.1] as f64 * b[p * sb.0 + j * sb.1] as f64)
                                .sum();
                            if acc {
                                want += init[i * n + j] as f64;
                            }
                            if with_bias {
                                want += bias[j] as f64;
                            }
                            if let Some(relu) = post {
                                want = want * scale[i] as f64 + shift[i] as f64;
                                if with_sum {
                                    want += sum[i * n + j] as f64;
                                }
                                if relu {
                                    want = want.max(0.0);
                                }
                            }
                            let got = c[i * n + j] as f64;
                            assert!(
                            (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                            "{m}x{n}x{k} ta={ta} tb={tb} acc={acc} bias={with_bias} post={post:?} sum={with_sum} threads={threads} at ({i},{j}): {got} vs {want}"
                        );
                        }
                    }
                }
            }
        }
    }
}

/// Checks an in-register transpose of `n × n` floats: `run(x, out)` loads the rows of `x`,
/// transposes them and stores the registers to `out` in order.
#[cfg(test)]
pub(super) fn check_transpose(n: usize, run: impl Fn(&[f32], &mut [f32])) {
    let x: Vec<f32> = (0..n * n).map(|i| i as f32).collect();
    let mut out = vec![0f32; n * n];
    run(&x, &mut out);
    for q in 0..n {
        for r in 0..n {
            assert_eq!(out[n * q + r], x[n * r + q], "({q}, {r})");
        }
    }
}
