//! f32 products on AVX-512 (detected at run time). The `gemm` crate's stable build stops at
//! AVX2/FMA, half the vector width of the machines that have AVX-512.
//!
//! One register tile: up to 8 rows × 32 columns of `c`, built from broadcast elements of
//! `a` times two 16-lane vectors of a row of `b`. `a` is read in place through its strides
//! (its elements are broadcast one at a time, so layout does not matter), or packed into
//! 8-row panels when enough slivers reuse it. `b` is packed one 32-column sliver at a time
//! into an aligned thread-local buffer that every row tile then reuses (a transposed `b`
//! through 16×16 in-register transposes); blocks of at most 32 rows read a `b` with
//! contiguous rows in place instead. Column remainders use masked loads and stores.

use std::arch::x86_64::*;
use std::cell::RefCell;

/// Rows of one register tile.
const MR: usize = 8;
/// Columns of one register tile: two 16-lane vectors.
const NR: usize = 32;
/// Depth of one pass: a packed sliver of `KC × NR` floats (32 KiB) stays in L1.
const KC: usize = 256;
/// Rows per task from which a product is split by rows (balanced to a tile) rather than
/// by 32-column panels (balanced only to a panel, and lopsided when n has few panels).
const SPLIT_ROWS: usize = 64;
/// Bands of a split product per thread: enough that a late or slowed thread takes fewer
/// of them instead of holding up the end, few enough that repacking per band stays cheap.
const UNITS_PER_THREAD: usize = 4;
/// Fewest rows in a band of a row split (each band packs all of `b`).
const MIN_BAND: usize = 32;
/// Rows of a block (a band of a split product) at most which a `b` with contiguous rows is
/// read in place: its few tiles read each sliver about as often as packing would, so the
/// copy is pure cost (the MLP's weight gradients: 32-row bands, k = 64).
const IN_PLACE_ROWS: usize = 4 * MR;
/// Rows per pass over one sliver, so the rows of `a` it reads (MC × KC floats) stay in L2.
const MC: usize = 512;

/// Whether this CPU runs the AVX-512 path (the result is cached by the standard library).
pub(super) fn available() -> bool {
    is_x86_feature_detected!("avx512f")
}

/// A strided f32 matrix: element (i, j) at `ptr + i*rs + j*cs`.
#[derive(Clone, Copy)]
struct View {
    ptr: *const f32,
    rs: usize,
    cs: usize,
}

/// The output block: element (i, j) at `ptr + i*ld + j`.
#[derive(Clone, Copy)]
struct Out {
    ptr: *mut f32,
    ld: usize,
}

// SAFETY: the views are only handed to tasks that read (`View`) or write (`Out`) disjoint
// parts of slices borrowed for the whole parallel region by `product`, which joins every
// task before it returns.
unsafe impl Send for View {}
unsafe impl Sync for View {}
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

/// `c (m×n, row-major, dense) = a·b` (or `+=` with `acc`), where op(a) element (i, p) is
/// `a[i*ars + p*acs]` and op(b) element (p, j) is `b[p*brs + j*bcs]`; split over up to
/// `threads` tasks. m, n, k > 0. Only call when [`available`].
///
/// # Panics
/// If an operand slice is shorter than its strides address.
#[allow(clippy::too_many_arguments)]
pub(super) fn product(
    (m, n, k): (usize, usize, usize),
    a: &[f32],
    (ars, acs): (usize, usize),
    b: &[f32],
    (brs, bcs): (usize, usize),
    c: &mut [f32],
    acc: bool,
    threads: usize,
) {
    assert!(available(), "gemm: AVX-512 path called on a CPU without AVX-512F");
    assert!(m > 0 && n > 0 && k > 0 && c.len() == m * n);
    assert!((m - 1) * ars + (k - 1) * acs < a.len(), "gemm: a too short for its strides");
    assert!((k - 1) * brs + (n - 1) * bcs < b.len(), "gemm: b too short for its strides");
    let a = View { ptr: a.as_ptr(), rs: ars, cs: acs };
    let b = View { ptr: b.as_ptr(), rs: brs, cs: bcs };
    let c = Out { ptr: c.as_mut_ptr(), ld: n };
    let panels = n.div_ceil(NR);
    if threads > 1 && (m >= threads * SPLIT_ROWS || (panels < threads && m >= threads * MR)) {
        // Rows: bands claimed one at a time (see `parallel::claim`), balanced to a tile
        // whatever n is; each band packs all of `b`, which is cheap next to at least
        // MIN_BAND rows of multiply-adds per packed element.
        let per = m
            .div_ceil(threads * UNITS_PER_THREAD)
            .max(MIN_BAND.min(m.div_ceil(threads)))
            .next_multiple_of(MR);
        crate::parallel::claim(m.div_ceil(per), &|u| {
            let i0 = u * per;
            // SAFETY: rows i0..i0+rows are in bounds (asserted above); each band is
            // claimed once, so each task writes only its own rows.
            unsafe { block(per.min(m - i0), n, k, shift_rows(a, i0), b, shift_out(c, i0, 0), acc) }
        });
    } else if threads > 1 && panels >= threads {
        // Columns: bands of 32-column panels, each packing only the slivers of `b` it
        // multiplies.
        let per = panels.div_ceil(threads * UNITS_PER_THREAD) * NR;
        crate::parallel::claim(n.div_ceil(per), &|u| {
            let j0 = u * per;
            // SAFETY: columns j0..j0+cols of every operand are in bounds (asserted above)
            // and each band is claimed once, so each task writes only its own columns.
            unsafe { block(m, per.min(n - j0), k, a, shift_cols(b, j0), shift_out(c, 0, j0), acc) }
        });
    } else {
        // SAFETY: the whole product, bounds asserted above.
        unsafe { block(m, n, k, a, b, c, acc) };
    }
}

fn shift_rows(a: View, i0: usize) -> View {
    View { ptr: a.ptr.wrapping_add(i0 * a.rs), ..a }
}

fn shift_cols(b: View, j0: usize) -> View {
    View { ptr: b.ptr.wrapping_add(j0 * b.cs), ..b }
}

fn shift_out(c: Out, i0: usize, j0: usize) -> Out {
    Out { ptr: c.ptr.wrapping_add(i0 * c.ld + j0), ..c }
}

/// One cache line of floats: the sliver's rows must start on line boundaries, or every
/// vector load of `b` would straddle two lines.
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
    fn get(&mut self, with_panel: bool) -> (&mut [f32], &mut [f32]) {
        if self.sliver.len() < KC * NR / 16 {
            self.sliver.resize(KC * NR / 16, Line([0.0; 16]));
        }
        if with_panel && self.panel.len() < MC * KC {
            self.panel.resize(MC * KC, 0.0);
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
/// Every element the views address for these m, n, k is in bounds; nothing else writes
/// this block of `c` meanwhile, and `c` does not overlap `a` or `b`. The CPU has AVX-512F.
unsafe fn block(m: usize, n: usize, k: usize, a: View, b: View, c: Out, acc: bool) {
    // Rows of `a` that are not contiguous (a transposed `a`) put every step of a tile on
    // a new cache line and, for long columns, a new page; contiguous rows a power-of-two
    // apart land in the same cache sets (1024² f32: 132-145 GFLOP/s unpacked, 167-173
    // packed). So `a` is packed into MR-row panels whenever enough column slivers reuse
    // the packing: two for a transposed `a`, eight otherwise (the MLP's 64×128×784 blocks
    // ran no faster packed).
    let pack_a = m > 1 && if a.cs != 1 { n > NR } else { n >= 8 * NR };
    BUFFERS.with(|buffers| {
        let mut buffers = buffers.borrow_mut();
        let (sliver, panel) = buffers.get(pack_a);
        for i0 in (0..m).step_by(MC) {
            let mc = MC.min(m - i0);
            for p0 in (0..k).step_by(KC) {
                let kc = KC.min(k - p0);
                let a_blk = View { ptr: a.ptr.add(i0 * a.rs + p0 * a.cs), ..a };
                if pack_a {
                    pack_panels(&mut panel[..mc.next_multiple_of(MR) * kc], a_blk, mc, kc);
                }
                let load_c = acc || p0 > 0;
                for j0 in (0..n).step_by(NR) {
                    let nr = NR.min(n - j0);
                    let (m0, m1) = masks(nr);
                    // (A `b` exactly NR wide would read as packed: it is packed.)
                    let (bp, ldb) = if m <= IN_PLACE_ROWS && b.cs == 1 && b.rs != NR {
                        (b.ptr.add(p0 * b.rs + j0), b.rs)
                    } else {
                        pack(&mut sliver[..kc * NR], b, p0, j0, nr);
                        (sliver.as_ptr(), NR)
                    };
                    for ir in (0..mc).step_by(MR) {
                        // A packed panel holds MR rows p-major: row r of step p at p*MR + r.
                        let (ap, ars, acs) = if pack_a {
                            (panel.as_ptr().add(ir * kc), 1, MR)
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
                            m0,
                            m1,
                            load_c,
                        };
                        if ldb == NR {
                            tile_rows::<true>(MR.min(mc - ir), t)
                        } else {
                            tile_rows::<false>(MR.min(mc - ir), t)
                        }
                    }
                }
            }
        }
    });
}

/// `panel[ir*kc + p*MR + r] = a(ir + r, p)` for each MR-row block `ir` of `mc` rows (rows
/// past `mc` in the last block are left as they were: tiles never read them).
///
/// # Safety
/// `a` addresses `mc × kc` elements in bounds; `panel` holds `mc` rounded up to MR times
/// `kc` floats. AVX-512F is present (which implies AVX2's gathers).
#[target_feature(enable = "avx512f")]
unsafe fn pack_panels(panel: &mut [f32], a: View, mc: usize, kc: usize) {
    // Gather offsets are i32 element indices: r * rs for r < MR.
    let gather = a.rs != 1 && i32::try_from(a.rs * MR).is_ok();
    let rows8 = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(a.rs as i32));
    for ir in (0..mc).step_by(MR) {
        let rows = MR.min(mc - ir);
        let dst = &mut panel[ir * kc..][..kc * MR];
        let base = a.ptr.add(ir * a.rs);
        if rows == MR && gather {
            for (p, d) in dst.chunks_exact_mut(MR).enumerate() {
                let v = _mm256_i32gather_ps::<4>(base.add(p * a.cs), rows8);
                _mm256_storeu_ps(d.as_mut_ptr(), v);
            }
            continue;
        }
        for (p, d) in dst.chunks_exact_mut(MR).enumerate() {
            let src = base.add(p * a.cs);
            for (r, d) in d.iter_mut().enumerate().take(rows) {
                *d = *src.add(r * a.rs);
            }
        }
    }
}

/// Lane masks of the two vectors of a tile `nr` columns wide.
fn masks(nr: usize) -> (__mmask16, __mmask16) {
    let lanes = |w: usize| if w >= 16 { 0xffff } else { ((1u32 << w) - 1) as __mmask16 };
    (lanes(nr), lanes(nr.saturating_sub(16)))
}

/// `sliver[p*NR + jj] = b(p0 + p, j0 + jj)` for jj < nr, zero beyond: two vector stores per
/// row, from two (masked) row loads when `b`'s columns are contiguous, else two gathers.
///
/// # Safety
/// `b` addresses those elements in bounds; `sliver` starts on a 64-byte boundary and holds
/// whole rows of NR floats. AVX-512F is present.
#[target_feature(enable = "avx512f")]
unsafe fn pack(sliver: &mut [f32], b: View, p0: usize, j0: usize, nr: usize) {
    let (m0, m1) = masks(nr);
    let dst = sliver.as_mut_ptr();
    let src = b.ptr.add(p0 * b.rs + j0 * b.cs);
    // Gather offsets are i32 element indices: jj * cs for jj < 32.
    let gather = i32::try_from(b.cs * NR).is_ok();
    let idx0 = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(b.cs as i32),
    );
    let idx1 = _mm512_add_epi32(idx0, _mm512_set1_epi32((16 * b.cs) as i32));
    let rows = sliver.len() / NR;
    // A transposed `b` (k contiguous, as `x · Wᵀ` of a dense layer) goes 16×16 blocks at a
    // time through registers: a quarter of the cost of gathering every row.
    let blocked = if b.rs == 1 && b.cs != 1 { rows - rows % 16 } else { 0 };
    for p in (0..blocked).step_by(16) {
        for jj in [0, 16] {
            let mut v = [_mm512_setzero_ps(); 16];
            for (j, v) in v.iter_mut().enumerate().take(nr.saturating_sub(jj)) {
                *v = _mm512_loadu_ps(src.add((jj + j) * b.cs + p));
            }
            transpose16(&mut v);
            for (q, v) in v.iter().enumerate() {
                _mm512_store_ps(dst.add((p + q) * NR + jj), *v);
            }
        }
    }
    for p in blocked..rows {
        let row = src.wrapping_add(p * b.rs);
        let (v0, v1) = if b.cs == 1 {
            (_mm512_maskz_loadu_ps(m0, row), _mm512_maskz_loadu_ps(m1, row.wrapping_add(16)))
        } else if gather {
            let zero = _mm512_setzero_ps();
            (
                _mm512_mask_i32gather_ps::<4>(zero, m0, idx0, row),
                _mm512_mask_i32gather_ps::<4>(zero, m1, idx1, row),
            )
        } else {
            let mut v = [0.0f32; NR];
            for (jj, v) in v.iter_mut().enumerate().take(nr) {
                *v = *row.add(jj * b.cs);
            }
            (_mm512_loadu_ps(v.as_ptr()), _mm512_loadu_ps(v.as_ptr().add(16)))
        };
        _mm512_store_ps(dst.add(p * NR), v0);
        _mm512_store_ps(dst.add(p * NR + 16), v1);
    }
}

/// Transpose 16 rows of 16 floats in registers: afterwards `v[q]` holds element `q` of
/// every input row. Four rounds of lane shuffles; the comments track, for the register
/// at each index, what its 128-bit lane `L` holds.
#[target_feature(enable = "avx512f")]
unsafe fn transpose16(v: &mut [__m512; 16]) {
    let pd = _mm512_castps_pd;
    let ps = _mm512_castpd_ps;
    // t[2i], t[2i+1]: rows 2i and 2i+1 interleaved, columns 4L, 4L+1 and 4L+2, 4L+3.
    let mut t = [_mm512_setzero_ps(); 16];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]);
    }
    // s[4i + c]: column 4L + c of rows 4i..4i+4.
    let mut s = [_mm512_setzero_ps(); 16];
    for i in 0..4 {
        s[4 * i] = ps(_mm512_unpacklo_pd(pd(t[4 * i]), pd(t[4 * i + 2])));
        s[4 * i + 1] = ps(_mm512_unpackhi_pd(pd(t[4 * i]), pd(t[4 * i + 2])));
        s[4 * i + 2] = ps(_mm512_unpacklo_pd(pd(t[4 * i + 1]), pd(t[4 * i + 3])));
        s[4 * i + 3] = ps(_mm512_unpackhi_pd(pd(t[4 * i + 1]), pd(t[4 * i + 3])));
    }
    for c in 0..4 {
        // Lanes 0, 1 (u0) and 2, 3 (u1) of row groups 0 and 1; likewise v0, v1 for 2, 3.
        let u0 = _mm512_shuffle_f32x4::<0x44>(s[c], s[4 + c]);
        let u1 = _mm512_shuffle_f32x4::<0xee>(s[c], s[4 + c]);
        let v0 = _mm512_shuffle_f32x4::<0x44>(s[8 + c], s[12 + c]);
        let v1 = _mm512_shuffle_f32x4::<0xee>(s[8 + c], s[12 + c]);
        // Column 4L + c: lane L of each row group.
        v[c] = _mm512_shuffle_f32x4::<0x88>(u0, v0);
        v[4 + c] = _mm512_shuffle_f32x4::<0xdd>(u0, v0);
        v[8 + c] = _mm512_shuffle_f32x4::<0x88>(u1, v1);
        v[12 + c] = _mm512_shuffle_f32x4::<0xdd>(u1, v1);
    }
}

/// [`tile`] for `rows` (1..=MR) rows; `PACKED`: `b` is a packed sliver (`ldb == NR`).
///
/// # Safety
/// As for [`tile`].
#[target_feature(enable = "avx512f")]
unsafe fn tile_rows<const PACKED: bool>(rows: usize, t: Tile) {
    match rows {
        8 => tile::<8, PACKED>(t),
        7 => tile::<7, PACKED>(t),
        6 => tile::<6, PACKED>(t),
        5 => tile::<5, PACKED>(t),
        4 => tile::<4, PACKED>(t),
        3 => tile::<3, PACKED>(t),
        2 => tile::<2, PACKED>(t),
        _ => tile::<1, PACKED>(t),
    }
}

/// Operands of one register tile.
struct Tile {
    k: usize,
    a: *const f32,
    ars: usize,
    acs: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    m0: __mmask16,
    m1: __mmask16,
    load_c: bool,
}

/// `c[R×32] (+)= a[R×k] · b[k×32]`; `b` is a packed sliver, columns of `c` masked by
/// `m0`/`m1`. (12-row tiles measured 40% slower than 8-row ones here.)
///
/// # Safety
/// Rows `0..R` of `a` and `c`, `k` rows of `b`, and the columns the masks select are in
/// bounds; masked-off lanes are never accessed (AVX-512 masked loads and stores suppress
/// them), so their addresses are formed with wrapping arithmetic only. AVX-512F is present.
#[target_feature(enable = "avx512f")]
unsafe fn tile<const R: usize, const PACKED: bool>(t: Tile) {
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    let (mut a, mut b) = (t.a, t.b);
    // Row offsets held apart from the moving base: deriving each row's address from the
    // previous row's would chain R dependent adds through every step of the loop.
    let rows: [usize; R] = std::hint::black_box(std::array::from_fn(|r| r * t.ars));
    for _ in 0..t.k {
        // A packed sliver is zero-padded to whole, aligned rows; one read in place ends
        // where `b` does, so its loads are masked (slower here: packed ones stay plain).
        let (b0, b1) = if PACKED {
            (_mm512_load_ps(b), _mm512_load_ps(b.add(16)))
        } else {
            (_mm512_maskz_loadu_ps(t.m0, b), _mm512_maskz_loadu_ps(t.m1, b.wrapping_add(16)))
        };
        for (acc, &row) in acc.iter_mut().zip(&rows) {
            let x = _mm512_set1_ps(*a.add(row));
            acc[0] = _mm512_fmadd_ps(x, b0, acc[0]);
            acc[1] = _mm512_fmadd_ps(x, b1, acc[1]);
        }
        a = a.wrapping_add(t.acs);
        b = b.wrapping_add(t.ldb);
    }
    for (r, acc) in acc.iter().enumerate() {
        let c = t.c.add(r * t.ldc);
        let c1 = c.wrapping_add(16);
        let (mut x0, mut x1) = (acc[0], acc[1]);
        if t.load_c {
            x0 = _mm512_add_ps(x0, _mm512_maskz_loadu_ps(t.m0, c));
            x1 = _mm512_add_ps(x1, _mm512_maskz_loadu_ps(t.m1, c1));
        }
        _mm512_mask_storeu_ps(c, t.m0, x0);
        _mm512_mask_storeu_ps(c1, t.m1, x1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize, seed: usize) -> Vec<f32> {
        (0..len).map(|i| ((i * 7 + seed * 13) % 17) as f32 / 4.0 - 2.0).collect()
    }

    /// Every tile remainder (rows 1..8, columns 1..32), several depth passes (k > KC),
    /// row passes (m > MC), both layouts of each operand, `a` packed and read in place
    /// (gathered and copied panels), accumulation, and both splits.
    #[test]
    fn transpose16_transposes() {
        if !available() {
            return;
        }
        let x: Vec<f32> = (0..256).map(|i| i as f32).collect();
        let mut out = [0f32; 256];
        // SAFETY: AVX-512F is present (checked above); loads and stores stay in 256 floats.
        unsafe {
            let mut v: [__m512; 16] = std::array::from_fn(|r| _mm512_loadu_ps(x.as_ptr().add(16 * r)));
            transpose16(&mut v);
            for (q, v) in v.iter().enumerate() {
                _mm512_storeu_ps(out.as_mut_ptr().add(16 * q), *v);
            }
        }
        for q in 0..16 {
            for r in 0..16 {
                assert_eq!(out[16 * q + r], x[16 * r + q], "({q}, {r})");
            }
        }
    }

    #[test]
    fn matches_f64_reference() {
        if !available() {
            eprintln!("AVX-512F absent: the AVX-512 gemm path is not exercised on this CPU");
            return;
        }
        let shapes =
            [(1, 1, 1), (7, 33, 5), (9, 31, 300), (17, 64, 257), (530, 40, 20), (64, 250, 784), (3, 200, 9)];
        for &(m, n, k) in &shapes {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                for (acc, threads) in [(false, 1), (true, 1), (false, 2), (true, 2)] {
                    let (a, b) = (data(m * k, 1), data(k * n, 2));
                    let sa = if ta { (1, m) } else { (k, 1) };
                    let sb = if tb { (1, k) } else { (n, 1) };
                    let init = data(m * n, 3);
                    let mut c = if acc { init.clone() } else { vec![f32::NAN; m * n] };
                    product((m, n, k), &a, sa, &b, sb, &mut c, acc, threads);
                    for i in 0..m {
                        for j in 0..n {
                            let mut want: f64 = (0..k)
                                .map(|p| a[i * sa.0 + p * sa.1] as f64 * b[p * sb.0 + j * sb.1] as f64)
                                .sum();
                            if acc {
                                want += init[i * n + j] as f64;
                            }
                            let got = c[i * n + j] as f64;
                            assert!(
                                (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                                "{m}x{n}x{k} ta={ta} tb={tb} acc={acc} threads={threads} at ({i},{j}): {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }
}
