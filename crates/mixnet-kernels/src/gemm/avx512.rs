//! The f32 register tile and packing on AVX-512 (detected at run time). The `gemm` crate's
//! stable build stops at AVX2/FMA, half the vector width of the machines that have AVX-512.
//!
//! A tile is up to 8 rows × 32 columns: two 16-lane vectors per row of `b`. A transposed
//! `b` is packed through 16×16 in-register transposes; column remainders use masked loads
//! and stores, so an in-place `b` of any width is read directly.

use std::arch::x86_64::*;

use super::blocked::{Gather, Kernel, Tile, View};

/// The AVX-512F kernel.
pub(super) struct Avx512;

/// Rows of one register tile (12-row tiles measured 40% slower than 8-row ones).
const MR: usize = 8;
/// Columns of one register tile: two 16-lane vectors.
const NR: usize = 32;
// `pack_a` moves a panel's rows through 8×8 transposes.
const _: () = assert!(MR == 8);

// SAFETY: `available` checks AVX-512F, the only feature the functions below are compiled
// for (AVX2's gathers, used when packing `a`, are implied by it).
unsafe impl Kernel for Avx512 {
    const MR: usize = MR;
    const NR: usize = NR;
    /// A packed sliver of 256 × 32 floats is 32 KiB.
    const KC: usize = 256;
    const MC: usize = 512;
    const MASKED: bool = true;

    fn available() -> bool {
        is_x86_feature_detected!("avx512f")
    }

    unsafe fn pack_a(panel: &mut [f32], a: View, mc: usize, kc: usize) {
        pack_a(panel, a, mc, kc)
    }

    unsafe fn pack_b(sliver: &mut [f32], b: View, p0: usize, j0: usize, nr: usize) {
        pack_b(sliver, b, p0, j0, nr)
    }

    unsafe fn pack_gather(sliver: &mut [f32], g: Gather, p0: usize, j0: usize, nr: usize) {
        pack_gather(sliver, g, p0, j0, nr)
    }

    unsafe fn tile(rows: usize, packed: bool, t: &Tile) {
        if packed {
            tile_rows::<true>(rows, t)
        } else {
            tile_rows::<false>(rows, t)
        }
    }
}

/// [`Kernel::pack_a`]: eight rows with contiguous `k` (a convolution's weights) eight
/// steps at a time through 8×8 register transposes (a third less time than gathering
/// each step's column), other strided rows through gathers.
#[target_feature(enable = "avx512f")]
unsafe fn pack_a(panel: &mut [f32], a: View, mc: usize, kc: usize) {
    // Gather offsets are i32 element indices: r * rs for r < MR.
    let gather = a.rs != 1 && i32::try_from(a.rs * MR).is_ok();
    let rows8 = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(a.rs as i32));
    for ir in (0..mc).step_by(MR) {
        let rows = MR.min(mc - ir);
        let dst = &mut panel[ir * kc..][..kc * MR];
        let base = a.ptr.add(ir * a.rs);
        let blocked = if a.cs == 1 && rows == MR { kc - kc % 8 } else { 0 };
        for p in (0..blocked).step_by(8) {
            let mut v: [__m256; 8] = std::array::from_fn(|r| _mm256_loadu_ps(base.add(r * a.rs + p)));
            super::avx2::transpose8(&mut v);
            // Step p + q holds the MR rows' elements q of this block.
            for (q, v) in v.iter().enumerate() {
                _mm256_storeu_ps(dst.as_mut_ptr().add((p + q) * MR), *v);
            }
        }
        if rows == MR && gather {
            for (p, d) in dst.chunks_exact_mut(MR).enumerate().skip(blocked) {
                let v = _mm256_i32gather_ps::<4>(base.add(p * a.cs), rows8);
                _mm256_storeu_ps(d.as_mut_ptr(), v);
            }
            continue;
        }
        for (p, d) in dst.chunks_exact_mut(MR).enumerate().skip(blocked) {
            let src = base.add(p * a.cs);
            if a.rs == 1 && rows == MR {
                // A transposed `a` (weight gradients): the panel's rows lie side by side.
                std::ptr::copy_nonoverlapping(src, d.as_mut_ptr(), MR);
                continue;
            }
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

/// [`Kernel::pack_b`]: two vector stores per row, from two (masked) row loads when `b`'s
/// columns are contiguous, else two gathers; a transposed `b` through 16×16 transposes.
#[target_feature(enable = "avx512f")]
unsafe fn pack_b(sliver: &mut [f32], b: View, p0: usize, j0: usize, nr: usize) {
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

/// [`Kernel::pack_gather`]: each run of a sliver row moved by one or two masked loads and
/// stores (masked-off lanes are never accessed, so no run reads or writes past its end),
/// after zeros when the sliver is narrower than NR.
#[target_feature(enable = "avx512f")]
unsafe fn pack_gather(sliver: &mut [f32], g: Gather, p0: usize, j0: usize, nr: usize) {
    let (runs, count) = super::blocked::runs(g, j0, nr);
    let runs = &runs[..count];
    let zero = _mm512_setzero_ps();
    for (p, dst) in sliver.chunks_exact_mut(NR).enumerate() {
        let row = g.base.add(*g.rows.add(p0 + p));
        let d = dst.as_mut_ptr();
        if nr < NR {
            _mm512_store_ps(d, zero);
            _mm512_store_ps(d.add(16), zero);
        }
        for &(start, len, at) in runs {
            let (m0, m1) = masks(len);
            let (src, to) = (row.wrapping_add(at), d.add(start));
            _mm512_mask_storeu_ps(to, m0, _mm512_maskz_loadu_ps(m0, src));
            if len > 16 {
                _mm512_mask_storeu_ps(
                    to.wrapping_add(16),
                    m1,
                    _mm512_maskz_loadu_ps(m1, src.wrapping_add(16)),
                );
            }
        }
    }
}

/// Transpose 16 rows of 16 floats in registers: afterwards `v[q]` holds element `q` of
/// every input row. Four rounds of lane shuffles; the comments track, for the register
/// at each index, what its 128-bit lane `L` holds.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn transpose16(v: &mut [__m512; 16]) {
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
/// As for [`Kernel::tile`].
#[target_feature(enable = "avx512f")]
unsafe fn tile_rows<const PACKED: bool>(rows: usize, t: &Tile) {
    // A last sliver narrower than NR multiplies only the 8-lane quarters its columns reach
    // (n = 49, ResNet-50's 7×7 stage, ends in a sliver of 17; n = 196 in one of 4).
    match t.nr.div_ceil(8) {
        1 => tile_rows_of::<PACKED, 1>(rows, t),
        2 => tile_rows_of::<PACKED, 2>(rows, t),
        3 => tile_rows_of::<PACKED, 3>(rows, t),
        _ => tile_rows_of::<PACKED, 4>(rows, t),
    }
}

/// [`tile_rows`] `W` quarters (8 lanes each) wide.
///
/// # Safety
/// As for [`Kernel::tile`], and `nr <= 8 * W`.
#[target_feature(enable = "avx512f")]
unsafe fn tile_rows_of<const PACKED: bool, const W: usize>(rows: usize, t: &Tile) {
    tile_by_rows!(rows, tile::<[8, 7, 6, 5, 4, 3, 2], PACKED, W>(t))
}

/// `acc + x · b` over all 16 lanes, or (`half`) over the low 8 only, leaving the high
/// lanes undefined: CPUs that run a 512-bit operation as two 256-bit halves (AMD Zen 4)
/// then spend one half, not two, on a vector whose columns end within its low 8 lanes.
macro_rules! fma_lanes {
    ($half:expr, $x:expr, $b:expr, $acc:expr) => {
        if $half {
            let (x, b, acc) =
                (_mm512_castps512_ps256($x), _mm512_castps512_ps256($b), _mm512_castps512_ps256($acc));
            _mm512_castps256_ps512(_mm256_fmadd_ps(x, b, acc))
        } else {
            _mm512_fmadd_ps($x, $b, $acc)
        }
    };
}

/// MXNet's relu on every lane: x > 0 or NaN gives x, else +0. `max` returns its second
/// operand for a NaN, and -0 for (0, -0), which adding +0 makes +0.
#[target_feature(enable = "avx512f")]
#[inline]
pub(crate) fn relu(x: __m512) -> __m512 {
    let zero = _mm512_setzero_ps();
    _mm512_add_ps(_mm512_max_ps(zero, x), zero)
}

/// `*p` in every lane, as one broadcast load that the caller's 256-bit use reads from the
/// same register: from `_mm512_set1_ps`, LLVM reloads a second, narrower broadcast for
/// the half-width FMA of a tile 3 quarters wide, and its 16 loads per step made that tile
/// slower than a full one (n = 49 cost more than n = 64).
///
/// # Safety
/// `p` is valid for a read of one f32.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn broadcast(p: *const f32) -> __m512 {
    let x: __m512;
    // SAFETY: reads the one f32 at `p` (the caller's promise); no other memory or flags.
    unsafe {
        std::arch::asm!("vbroadcastss {x}, dword ptr [{p}]", x = out(zmm_reg) x, p = in(reg) p,
            options(pure, readonly, nostack, preserves_flags));
    }
    x
}

/// [`Kernel::tile`] for `R` rows, `W` quarters wide (one vector per row up to 16 columns,
/// two beyond; a vector's last 8 lanes skipped when no column reaches them):
/// `c[R×nr] (+)= a[R×k] · b[k×nr]`, columns masked to `nr`.
///
/// # Safety
/// As for [`Kernel::tile`], and `nr <= 8 * W`; masked-off lanes are never accessed
/// (AVX-512 masked loads and stores suppress them), so their addresses are formed with
/// wrapping arithmetic only. Lanes past `nr` may hold anything and are never stored.
#[target_feature(enable = "avx512f")]
unsafe fn tile<const R: usize, const PACKED: bool, const W: usize>(t: &Tile) {
    let (m0, m1) = masks(t.nr);
    // Whether there is a second vector, and which vectors end in their low half.
    let (two, half0, half1) = (W > 2, W == 1, W == 3);
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    let (mut a, mut b) = (t.a, t.b);
    // Row offsets held apart from the moving base: deriving each row's address from the
    // previous row's would chain R dependent adds through every step of the loop.
    let rows: [usize; R] = std::hint::black_box(std::array::from_fn(|r| r * t.ars));
    for _ in 0..t.k {
        // A packed sliver is zero-padded to whole, aligned rows; one read in place ends
        // where `b` does, so its loads are masked (slower here: packed ones stay plain).
        let b0 = if PACKED { _mm512_load_ps(b) } else { _mm512_maskz_loadu_ps(m0, b) };
        let b1 = match (two, PACKED) {
            (false, _) => _mm512_setzero_ps(),
            (true, true) => _mm512_load_ps(b.add(16)),
            (true, false) => _mm512_maskz_loadu_ps(m1, b.wrapping_add(16)),
        };
        for (acc, &row) in acc.iter_mut().zip(&rows) {
            let x = if half1 { broadcast(a.add(row)) } else { _mm512_set1_ps(*a.add(row)) };
            acc[0] = fma_lanes!(half0, x, b0, acc[0]);
            if two {
                acc[1] = fma_lanes!(half1, x, b1, acc[1]);
            }
        }
        a = a.wrapping_add(t.acs);
        b = b.wrapping_add(t.ldb);
    }
    let bias = (!t.bias.is_null())
        .then(|| (_mm512_maskz_loadu_ps(m0, t.bias), _mm512_maskz_loadu_ps(m1, t.bias.wrapping_add(16))));
    for (r, acc) in acc.iter().enumerate() {
        let c = t.c.add(r * t.ldc);
        let c1 = c.wrapping_add(16);
        let (mut x0, mut x1) = (acc[0], acc[1]);
        if t.load_c {
            x0 = _mm512_add_ps(x0, _mm512_maskz_loadu_ps(m0, c));
            x1 = _mm512_add_ps(x1, _mm512_maskz_loadu_ps(m1, c1));
        }
        if let Some((b0, b1)) = bias {
            x0 = _mm512_add_ps(x0, b0);
            x1 = _mm512_add_ps(x1, b1);
        }
        if !t.post.scale.is_null() {
            let (s, h) = (_mm512_set1_ps(*t.post.scale.add(r)), _mm512_set1_ps(*t.post.shift.add(r)));
            x0 = _mm512_fmadd_ps(x0, s, h);
            x1 = _mm512_fmadd_ps(x1, s, h);
            if !t.post.sum.is_null() {
                let sum = t.post.sum.add(r * t.post.ld);
                x0 = _mm512_add_ps(x0, _mm512_maskz_loadu_ps(m0, sum));
                x1 = _mm512_add_ps(x1, _mm512_maskz_loadu_ps(m1, sum.wrapping_add(16)));
            }
            if t.post.relu {
                (x0, x1) = (relu(x0), relu(x1));
            }
        }
        _mm512_mask_storeu_ps(c, m0, x0);
        if two {
            _mm512_mask_storeu_ps(c1, m1, x1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose16_transposes() {
        if !Avx512::available() {
            return;
        }
        super::super::blocked::check_transpose(16, |x, out| {
            // SAFETY: AVX-512F is present (checked above); loads and stores stay in 256 floats.
            unsafe {
                let mut v: [__m512; 16] = std::array::from_fn(|r| _mm512_loadu_ps(x.as_ptr().add(16 * r)));
                transpose16(&mut v);
                for (q, v) in v.iter().enumerate() {
                    _mm512_storeu_ps(out.as_mut_ptr().add(16 * q), *v);
                }
            }
        });
    }

    #[test]
    fn matches_f64_reference() {
        super::super::blocked::check_kernel::<Avx512>();
    }
}
