//! The f32 register tile and packing on AVX2 with FMA (detected at run time): the CPUs
//! without AVX-512, AMD's Zen among them. Our own kernel rather than the `gemm` crate's
//! so that these CPUs share the blocking, threading and in-place reads of
//! [`super::blocked`] (the crate packs every operand of every product and splits through
//! its own barriers).
//!
//! A tile is up to 6 rows × 16 columns: twelve 8-lane accumulators, two vectors of a row
//! of `b` and one broadcast element of `a`, fifteen of the sixteen vector registers. A
//! transposed `b` is packed through 8×8 in-register transposes. Without AVX-512's masks,
//! column remainders go through a spill buffer and a `b` narrower than a tile is packed.

use std::arch::x86_64::*;

use super::blocked::{Kernel, Tile, View};

/// The AVX2 + FMA kernel.
pub(super) struct Avx2;

/// Rows of one register tile.
const MR: usize = 6;
/// Columns of one register tile: two 8-lane vectors.
const NR: usize = 16;

// SAFETY: `available` checks AVX2 and FMA, the features the functions below are compiled
// for.
unsafe impl Kernel for Avx2 {
    const MR: usize = MR;
    const NR: usize = NR;
    /// A packed sliver of 256 × 16 floats is 16 KiB, half of a 32 KiB L1.
    const KC: usize = 512;
    /// 192 × 256 floats of packed `a` is 192 KiB of a 512 KiB L2.
    const MC: usize = 384;
    const MASKED: bool = false;

    fn available() -> bool {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }

    unsafe fn pack_a(panel: &mut [f32], a: View, mc: usize, kc: usize) {
        pack_a(panel, a, mc, kc)
    }

    unsafe fn pack_b(sliver: &mut [f32], b: View, p0: usize, j0: usize, nr: usize) {
        pack_b(sliver, b, p0, j0, nr)
    }

    unsafe fn tile(rows: usize, packed: bool, t: &Tile) {
        if packed {
            tile_rows::<true>(rows, t)
        } else {
            tile_rows::<false>(rows, t)
        }
    }
}

/// [`Kernel::pack_a`]: rows with contiguous `k` (a convolution's weights, `x` of a dense
/// layer) go eight steps at a time through 8×8 register transposes, anything else element
/// by element.
#[target_feature(enable = "avx2,fma")]
unsafe fn pack_a(panel: &mut [f32], a: View, mc: usize, kc: usize) {
    for ir in (0..mc).step_by(MR) {
        let rows = MR.min(mc - ir);
        let dst = &mut panel[ir * kc..][..kc * MR];
        let base = a.ptr.add(ir * a.rs);
        let blocked = if a.cs == 1 && rows == MR { kc - kc % 8 } else { 0 };
        for p in (0..blocked).step_by(8) {
            let mut v = [_mm256_setzero_ps(); 8];
            for (r, v) in v.iter_mut().enumerate().take(MR) {
                *v = _mm256_loadu_ps(base.add(r * a.rs + p));
            }
            transpose8(&mut v);
            // Step p + q: lanes 0..6 of v[q] (the MR rows), as four and two floats.
            for (q, v) in v.iter().enumerate() {
                let d = dst.as_mut_ptr().add((p + q) * MR);
                _mm_storeu_ps(d, _mm256_castps256_ps128(*v));
                _mm_storel_epi64(d.add(4).cast(), _mm_castps_si128(_mm256_extractf128_ps::<1>(*v)));
            }
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

/// [`Kernel::pack_b`]: two vector loads per row when `b`'s columns are contiguous and the
/// sliver is whole, a transposed `b` 8×8 blocks at a time through registers, anything
/// else element by element.
#[target_feature(enable = "avx2,fma")]
unsafe fn pack_b(sliver: &mut [f32], b: View, p0: usize, j0: usize, nr: usize) {
    let dst = sliver.as_mut_ptr();
    let src = b.ptr.add(p0 * b.rs + j0 * b.cs);
    let rows = sliver.len() / NR;
    let blocked = if b.rs == 1 && b.cs != 1 { rows - rows % 8 } else { 0 };
    for p in (0..blocked).step_by(8) {
        for jj in [0, 8] {
            let mut v = [_mm256_setzero_ps(); 8];
            for (j, v) in v.iter_mut().enumerate().take(nr.saturating_sub(jj)) {
                *v = _mm256_loadu_ps(src.add((jj + j) * b.cs + p));
            }
            transpose8(&mut v);
            for (q, v) in v.iter().enumerate() {
                _mm256_store_ps(dst.add((p + q) * NR + jj), *v);
            }
        }
    }
    for p in blocked..rows {
        let row = src.add(p * b.rs);
        let d = dst.add(p * NR);
        if b.cs == 1 && nr == NR {
            _mm256_store_ps(d, _mm256_loadu_ps(row));
            _mm256_store_ps(d.add(8), _mm256_loadu_ps(row.add(8)));
        } else {
            let mut v = [0.0f32; NR];
            for (jj, v) in v.iter_mut().enumerate().take(nr) {
                *v = *row.add(jj * b.cs);
            }
            _mm256_store_ps(d, _mm256_loadu_ps(v.as_ptr()));
            _mm256_store_ps(d.add(8), _mm256_loadu_ps(v.as_ptr().add(8)));
        }
    }
}

/// Transpose 8 rows of 8 floats in registers: afterwards `v[q]` holds element `q` of
/// every input row.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn transpose8(v: &mut [__m256; 8]) {
    // t: pairs of rows interleaved; s[4h + c]: columns c and c + 4 of rows 4h..4h+4 (one
    // per 128-bit lane); the last round joins the lanes of the two row halves.
    let t: [__m256; 8] = std::array::from_fn(|i| {
        let (x, y) = (v[i / 2 * 2], v[i / 2 * 2 + 1]);
        if i % 2 == 0 {
            _mm256_unpacklo_ps(x, y)
        } else {
            _mm256_unpackhi_ps(x, y)
        }
    });
    let mut s = [_mm256_setzero_ps(); 8];
    for h in 0..2 {
        let (lo, hi) = (t[4 * h], t[4 * h + 1]);
        let (lo2, hi2) = (t[4 * h + 2], t[4 * h + 3]);
        s[4 * h] = _mm256_shuffle_ps::<0x44>(lo, lo2);
        s[4 * h + 1] = _mm256_shuffle_ps::<0xee>(lo, lo2);
        s[4 * h + 2] = _mm256_shuffle_ps::<0x44>(hi, hi2);
        s[4 * h + 3] = _mm256_shuffle_ps::<0xee>(hi, hi2);
    }
    for c in 0..4 {
        v[c] = _mm256_permute2f128_ps::<0x20>(s[c], s[4 + c]);
        v[4 + c] = _mm256_permute2f128_ps::<0x31>(s[c], s[4 + c]);
    }
}

/// [`tile`] for `rows` (1..=MR) rows; `PACKED`: `b` is a packed sliver (`ldb == NR`).
///
/// # Safety
/// As for [`Kernel::tile`].
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_rows<const PACKED: bool>(rows: usize, t: &Tile) {
    // A last sliver of at most 8 columns multiplies one vector per row, not two (n = 49,
    // ResNet-50's 7×7 stage, ends in a sliver of 1). Such a sliver is always packed.
    if PACKED && t.nr <= 8 {
        tile_rows_of::<true, 1>(rows, t)
    } else {
        tile_rows_of::<PACKED, 2>(rows, t)
    }
}

/// [`tile_rows`] with `V` vectors per row.
///
/// # Safety
/// As for [`Kernel::tile`], and `nr <= 8` when `V` is 1.
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_rows_of<const PACKED: bool, const V: usize>(rows: usize, t: &Tile) {
    tile_by_rows!(rows, tile::<[6, 5, 4, 3, 2], PACKED, V>(t))
}

/// [`Kernel::tile`] for `R` rows of `V` vectors: `c[R×nr] (+)= a[R×k] · b[k×8V]`; a
/// partial tile's columns are spilled to the stack and copied.
///
/// # Safety
/// As for [`Kernel::tile`], and `nr <= 8` when `V` is 1.
#[target_feature(enable = "avx2,fma")]
unsafe fn tile<const R: usize, const PACKED: bool, const V: usize>(t: &Tile) {
    let mut acc = [[_mm256_setzero_ps(); 2]; R];
    let (mut a, mut b) = (t.a, t.b);
    // Row offsets held apart from the moving base: deriving each row's address from the
    // previous row's would chain R dependent adds through every step of the loop.
    let rows: [usize; R] = std::hint::black_box(std::array::from_fn(|r| r * t.ars));
    // The block of `c` this tile ends on is fetched while it computes, not after.
    for r in 0..R {
        let c = t.c.wrapping_add(r * t.ldc);
        _mm_prefetch::<_MM_HINT_T0>(c.cast());
        _mm_prefetch::<_MM_HINT_T0>(c.wrapping_add(NR - 1).cast());
    }
    for _ in 0..t.k {
        let (b0, b1) = match (PACKED, V) {
            (true, 2) => (_mm256_load_ps(b), _mm256_load_ps(b.add(8))),
            (true, _) => (_mm256_load_ps(b), _mm256_setzero_ps()),
            _ => (_mm256_loadu_ps(b), _mm256_loadu_ps(b.add(8))),
        };
        for (acc, &row) in acc.iter_mut().zip(&rows) {
            let x = _mm256_broadcast_ss(&*a.add(row));
            acc[0] = _mm256_fmadd_ps(x, b0, acc[0]);
            if V == 2 {
                acc[1] = _mm256_fmadd_ps(x, b1, acc[1]);
            }
        }
        a = a.wrapping_add(t.acs);
        b = b.wrapping_add(t.ldb);
    }
    for (r, acc) in acc.iter().enumerate() {
        let c = t.c.add(r * t.ldc);
        if t.nr == NR {
            let (mut x0, mut x1) = (acc[0], acc[1]);
            if t.load_c {
                x0 = _mm256_add_ps(x0, _mm256_loadu_ps(c));
                x1 = _mm256_add_ps(x1, _mm256_loadu_ps(c.add(8)));
            }
            if !t.bias.is_null() {
                x0 = _mm256_add_ps(x0, _mm256_loadu_ps(t.bias));
                x1 = _mm256_add_ps(x1, _mm256_loadu_ps(t.bias.add(8)));
            }
            if !t.post.scale.is_null() {
                let (s, h) = (_mm256_set1_ps(*t.post.scale.add(r)), _mm256_set1_ps(*t.post.shift.add(r)));
                x0 = _mm256_fmadd_ps(x0, s, h);
                x1 = _mm256_fmadd_ps(x1, s, h);
                if !t.post.sum.is_null() {
                    let sum = t.post.sum.add(r * t.post.ld);
                    x0 = _mm256_add_ps(x0, _mm256_loadu_ps(sum));
                    x1 = _mm256_add_ps(x1, _mm256_loadu_ps(sum.add(8)));
                }
                if t.post.relu {
                    // MXNet's relu: x > 0 or NaN gives x, else +0. `max` returns its second
                    // operand for a NaN, and -0 for (0, -0), which adding +0 makes +0.
                    let zero = _mm256_setzero_ps();
                    x0 = _mm256_add_ps(_mm256_max_ps(zero, x0), zero);
                    x1 = _mm256_add_ps(_mm256_max_ps(zero, x1), zero);
                }
            }
            _mm256_storeu_ps(c, x0);
            _mm256_storeu_ps(c.add(8), x1);
        } else {
            let mut spill = [0.0f32; NR];
            _mm256_storeu_ps(spill.as_mut_ptr(), acc[0]);
            _mm256_storeu_ps(spill.as_mut_ptr().add(8), acc[1]);
            for (j, &x) in spill.iter().enumerate().take(t.nr) {
                let c = c.add(j);
                let x = if t.load_c { *c + x } else { x };
                let x = if t.bias.is_null() { x } else { x + *t.bias.add(j) };
                *c = if t.post.scale.is_null() { x } else { t.post.apply(x, r, j) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose8_transposes() {
        if !Avx2::available() {
            return;
        }
        super::super::blocked::check_transpose(8, |x, out| {
            // SAFETY: AVX2 and FMA are present (checked above); loads and stores stay in 64 floats.
            unsafe {
                let mut v: [__m256; 8] = std::array::from_fn(|r| _mm256_loadu_ps(x.as_ptr().add(8 * r)));
                transpose8(&mut v);
                for (q, v) in v.iter().enumerate() {
                    _mm256_storeu_ps(out.as_mut_ptr().add(8 * q), *v);
                }
            }
        });
    }

    #[test]
    fn matches_f64_reference() {
        super::super::blocked::check_kernel::<Avx2>();
    }
}
