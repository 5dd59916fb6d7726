//! Layout kernels: they move elements and never look at their values, so callers
//! instantiate them on a plain word of the element's size (`u8`, `u16`, `u32`, `u64`) and
//! four copies of each loop serve every dtype. Every layout op reduces to one of three
//! shapes of work: a strided gather ([`gather`]: transpose, swapaxes, depth/space moves,
//! tile, repeat, reverse, split), side-by-side rows ([`concat`]: concat, stack), or index
//! maps with a fill value ([`pad`]).

use crate::elementwise::PARALLEL_MIN;

/// Elements per parallel task (a rayon split costs ~µs; this keeps tasks well above it).
const TASK: usize = 1 << 14;
/// Most rows in a transpose tile (128 bytes of one-byte elements is more than enough).
const MAX_GROUP: usize = 64;
/// Columns per transpose tile.
const COLS: usize = 32;

/// `dst = src`, split across cores when large.
pub fn copy<T: Copy + Send + Sync>(src: &[T], dst: &mut [T]) {
    if dst.len() >= PARALLEL_MIN {
        crate::parallel::split(dst, TASK, &|off, d| d.copy_from_slice(&src[off..off + d.len()]));
    } else {
        dst.copy_from_slice(src);
    }
}

/// Where each element of a row-major output comes from in a source slice: output
/// dimension `d` has `dims[d]` positions, each `strides[d]` source elements apart (0
/// repeats an element, a negative stride walks backwards), starting at `offset`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    pub offset: usize,
    pub dims: Vec<usize>,
    pub strides: Vec<isize>,
}

impl View {
    /// The row-major layout of an array of `shape`.
    pub fn contiguous(shape: &[usize]) -> View {
        let mut strides = vec![0isize; shape.len()];
        let mut s = 1isize;
        for d in (0..shape.len()).rev() {
            strides[d] = s;
            s *= shape[d] as isize;
        }
        View { offset: 0, dims: shape.to_vec(), strides }
    }

    /// Number of output elements.
    pub fn numel(&self) -> usize {
        self.dims.iter().product()
    }

    /// Output dimension `i` becomes this view's dimension `axes[i]`.
    pub fn permute(&self, axes: &[usize]) -> View {
        View {
            offset: self.offset,
            dims: axes.iter().map(|&a| self.dims[a]).collect(),
            strides: axes.iter().map(|&a| self.strides[a]).collect(),
        }
    }

    /// Walk dimension `d` backwards.
    pub fn flip(&mut self, d: usize) {
        if self.dims[d] > 0 {
            self.offset = (self.offset as isize + (self.dims[d] as isize - 1) * self.strides[d]) as usize;
        }
        self.strides[d] = -self.strides[d];
    }

    /// Insert a dimension of `len` positions that all read the same element, at `d`.
    pub fn broadcast(&mut self, d: usize, len: usize) {
        self.dims.insert(d, len);
        self.strides.insert(d, 0);
    }

    /// Keep positions `start..start + len` of dimension `d`.
    pub fn narrow(&mut self, d: usize, start: usize, len: usize) {
        self.offset = (self.offset as isize + start as isize * self.strides[d]) as usize;
        self.dims[d] = len;
    }

    /// The same mapping with size-1 dimensions dropped and neighbours that step through
    /// the source as one dimension merged, so loops run as few and as long as possible.
    fn simplified(&self) -> View {
        let mut dims: Vec<usize> = Vec::with_capacity(self.dims.len());
        let mut strides: Vec<isize> = Vec::with_capacity(self.dims.len());
        for (&d, &s) in self.dims.iter().zip(&self.strides) {
            if d == 1 {
                continue;
            }
            match (dims.last_mut(), strides.last_mut()) {
                (Some(ld), Some(ls)) if *ls == s * d as isize => {
                    *ld *= d;
                    *ls = s;
                }
                _ => {
                    dims.push(d);
                    strides.push(s);
                }
            }
        }
        View { offset: self.offset, dims, strides }
    }
}

/// The offset of successive positions of an odometer over `dims`, stepping `strides`.
struct Rows<'a> {
    dims: &'a [usize],
    strides: &'a [isize],
    idx: Vec<usize>,
    base: isize,
}

impl<'a> Rows<'a> {
    fn starting_at(dims: &'a [usize], strides: &'a [isize], offset: isize, mut row: usize) -> Self {
        let mut idx = vec![0; dims.len()];
        let mut base = offset;
        for d in (0..dims.len()).rev() {
            idx[d] = row % dims[d];
            row /= dims[d];
            base += idx[d] as isize * strides[d];
        }
        Rows { dims, strides, idx, base }
    }

    /// Offset of the current position, then step to the next one.
    #[inline]
    fn next_base(&mut self) -> isize {
        let b = self.base;
        for d in (0..self.dims.len()).rev() {
            self.idx[d] += 1;
            self.base += self.strides[d];
            if self.idx[d] < self.dims[d] {
                break;
            }
            self.base -= self.strides[d] * self.dims[d] as isize;
            self.idx[d] = 0;
        }
        b
    }
}

/// Split `out`, made of rows of `width` elements, into tasks of whole rows (a multiple
/// of `step` rows each) and run `f(first_row, rows)` on them, in parallel when large.
fn for_row_blocks<T: Send, F: Fn(usize, &mut [T]) + Sync>(out: &mut [T], width: usize, step: usize, f: F) {
    let rows = out.len() / width;
    let per_task = (TASK / width).max(1).div_ceil(step) * step;
    if out.len() >= PARALLEL_MIN && rows > per_task {
        crate::parallel::chunks(out, per_task * width, &|t, block| f(t * per_task, block));
    } else {
        f(0, out);
    }
}

/// `out[i0, .., ik] = src[offset + Σ i_d · strides[d]]` over `view`. The view must stay
/// inside `src` (indexing panics otherwise) and `out.len()` must equal `view.numel()`.
pub fn gather<T: Copy + Send + Sync>(src: &[T], view: &View, out: &mut [T]) {
    debug_assert_eq!(out.len(), view.numel());
    if out.is_empty() {
        return;
    }
    let v = view.simplified();
    let (Some((&n, outer_dims)), Some((&s, outer_strides))) = (v.dims.split_last(), v.strides.split_last())
    else {
        out[0] = src[v.offset];
        return;
    };
    if outer_dims.is_empty() && s == 1 {
        return copy(&src[v.offset..v.offset + n], out);
    }
    if !outer_dims.is_empty() && !(-1..=1).contains(&s) {
        return gather_tiled(src, &v, out);
    }
    for_row_blocks(out, n, 1, |first_row, block| {
        let mut odometer = Rows::starting_at(outer_dims, outer_strides, v.offset as isize, first_row);
        let rows = block.chunks_exact_mut(n).map(|row| (odometer.next_base(), row));
        match s {
            1 => rows.for_each(|(b, row)| row.copy_from_slice(&src[b as usize..b as usize + n])),
            0 => rows.for_each(|(b, row)| row.fill(src[b as usize])),
            -1 => rows.for_each(|(b, row)| {
                let last = b as usize;
                row.iter_mut().zip(src[last + 1 - n..=last].iter().rev()).for_each(|(o, &x)| *o = x);
            }),
            _ => rows.for_each(|(b, row)| {
                row.iter_mut().enumerate().for_each(|(c, o)| *o = src[(b + c as isize * s) as usize]);
            }),
        }
    });
}

/// The gather of a transpose: the innermost source stride is not 0 or ±1, so reading an
/// output row touches a new cache line per element. Tile the innermost output dimension
/// against the outer dimension `p` that steps least through the source: a tile of
/// `group` rows (128 bytes of neighbouring source elements per column) by `COLS` columns
/// stays in L1 while it is read and written, the 32 x 32 float tile MXNet's CPU transpose
/// uses. Against tiling only with the row above the innermost, on float32 with 2 threads:
/// (2, 0, 1) of 256^3 3.5x and NCHW -> NHWC 1.8x faster, a 2-D transpose the same.
fn gather_tiled<T: Copy + Send + Sync>(src: &[T], v: &View, out: &mut [T]) {
    let rank = v.dims.len();
    let (n, s) = (v.dims[rank - 1], v.strides[rank - 1]);
    let out_strides = View::contiguous(&v.dims).strides;
    let p = (0..rank - 1).rev().min_by_key(|&k| v.strides[k].unsigned_abs()).unwrap_or(0);
    let (sp, op) = (v.strides[p], out_strides[p] as usize);
    let group = (128 / std::mem::size_of::<T>()).clamp(8, MAX_GROUP);
    // Every outer dimension but p, walked by an odometer over source and output offsets.
    let others: Vec<usize> = (0..rank - 1).filter(|&k| k != p).collect();
    let src_strides: Vec<isize> = others.iter().map(|&k| v.strides[k]).collect();
    let dst_strides: Vec<isize> = others.iter().map(|&k| out_strides[k]).collect();
    // Tasks take ranges of dimension 0, which are contiguous in the output (whole tiles of
    // it when it is p).
    let per_index = out.len() / v.dims[0];
    for_row_blocks(out, per_index, if p == 0 { group } else { 1 }, |first, block| {
        let last = first + block.len() / per_index;
        let mut dims: Vec<usize> = others.iter().map(|&k| v.dims[k]).collect();
        let (p_range, offset) = if p == 0 {
            (first..last, v.offset as isize)
        } else {
            dims[0] = last - first;
            (0..v.dims[p], v.offset as isize + first as isize * v.strides[0])
        };
        let mut src_rows = Rows::starting_at(&dims, &src_strides, offset, 0);
        let mut dst_rows = Rows::starting_at(&dims, &dst_strides, 0, 0);
        let (mut sb, mut ob) = ([0isize; MAX_GROUP], [0usize; MAX_GROUP]);
        for _ in 0..dims.iter().product::<usize>() {
            let (s0, o0) = (src_rows.next_base(), dst_rows.next_base() as usize);
            for i0 in p_range.clone().step_by(group) {
                let g = group.min(p_range.end - i0);
                for r in 0..g {
                    sb[r] = s0 + (i0 + r) as isize * sp;
                    ob[r] = o0 + (i0 + r - p_range.start) * op;
                }
                for c0 in (0..n).step_by(COLS) {
                    let c1 = (c0 + COLS).min(n);
                    for r in 0..g {
                        let (b, row) = (sb[r], &mut block[ob[r] + c0..ob[r] + c1]);
                        for (c, o) in (c0..c1).zip(row) {
                            *o = src[(b + c as isize * s) as usize];
                        }
                    }
                }
            }
        }
    });
}

/// Rows of `out` are rows of `parts` side by side: part `i` supplies `widths[i]`
/// elements to each row. `out.len()` must be a multiple of `Σ widths`.
pub fn concat<T: Copy + Send + Sync>(parts: &[&[T]], widths: &[usize], out: &mut [T]) {
    let width: usize = widths.iter().sum();
    if width == 0 || out.is_empty() {
        return;
    }
    for_row_blocks(out, width, 1, |first, block| {
        let (rows, mut at) = (block.len() / width, 0);
        for (part, &w) in parts.iter().zip(widths) {
            let part = &part[first * w..(first + rows) * w];
            let out_rows = block.chunks_exact_mut(width);
            if w == 1 {
                out_rows.zip(part).for_each(|(row, &x)| row[at] = x);
            } else if w > 0 {
                out_rows.zip(part.chunks_exact(w)).for_each(|(row, x)| row[at..at + w].copy_from_slice(x));
            }
            at += w;
        }
    });
}

/// What [`pad`] writes outside the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PadMode {
    /// The fill value.
    Constant,
    /// The nearest edge element, repeated.
    Edge,
    /// The mirror image about the edge element, which is not repeated (numpy's `reflect`);
    /// needs each pad width below that dimension's size.
    Reflect,
}

/// Source position along one dimension of each output position; `None` is fill.
fn pad_map(n: usize, before: usize, after: usize, mode: PadMode) -> Vec<Option<usize>> {
    let lead = (0..before).map(|j| match mode {
        PadMode::Constant => None,
        PadMode::Edge => Some(0),
        PadMode::Reflect => Some(before - j),
    });
    let tail = (0..after).map(|k| match mode {
        PadMode::Constant => None,
        PadMode::Edge => Some(n - 1),
        PadMode::Reflect => Some(n - 2 - k),
    });
    lead.chain((0..n).map(Some)).chain(tail).collect()
}

/// Pad a row-major array of shape `dims` with `before[d]` and `after[d]` positions on
/// each dimension. `out` has the padded shape; `fill` is used by [`PadMode::Constant`].
pub fn pad<T: Copy + Send + Sync>(
    src: &[T],
    dims: &[usize],
    before: &[usize],
    after: &[usize],
    mode: PadMode,
    fill: T,
    out: &mut [T],
) {
    let rank = dims.len();
    if out.is_empty() {
        return;
    }
    let strides = View::contiguous(dims).strides;
    // Per dimension, the source offset of each output position.
    let maps: Vec<Vec<Option<usize>>> = (0..rank)
        .map(|d| {
            let step = strides[d] as usize;
            pad_map(dims[d], before[d], after[d], mode).into_iter().map(|m| m.map(|i| i * step)).collect()
        })
        .collect();
    let Some((inner, outer)) = maps.split_last() else {
        out[0] = src[0];
        return;
    };
    let (n, b, w) = (dims[rank - 1], before[rank - 1], inner.len());
    for_row_blocks(out, w, 1, |first_row, block| {
        let mut idx: Vec<usize> = vec![0; outer.len()];
        let mut row = first_row;
        for d in (0..outer.len()).rev() {
            idx[d] = row % outer[d].len();
            row /= outer[d].len();
        }
        for out_row in block.chunks_exact_mut(w) {
            let base: Option<usize> = idx.iter().zip(outer).map(|(&i, m)| m[i]).sum();
            match base {
                None => out_row.fill(fill),
                Some(base) => {
                    for (o, m) in out_row.iter_mut().zip(inner).take(b) {
                        *o = m.map_or(fill, |i| src[base + i]);
                    }
                    out_row[b..b + n].copy_from_slice(&src[base..base + n]);
                    for (o, m) in out_row.iter_mut().zip(inner).skip(b + n) {
                        *o = m.map_or(fill, |i| src[base + i]);
                    }
                }
            }
            for d in (0..outer.len()).rev() {
                idx[d] += 1;
                if idx[d] < outer[d].len() {
                    break;
                }
                idx[d] = 0;
            }
        }
    });
}

/// The adjoint of [`pad`]: each position of `gout` (padded shape) adds its value to the
/// source element it was copied from; fill positions contribute nothing. `gin` (shape
/// `dims`) is overwritten.
pub fn pad_grad<T: crate::Element>(
    gout: &[T],
    dims: &[usize],
    before: &[usize],
    after: &[usize],
    mode: PadMode,
    gin: &mut [T],
) {
    gin.iter_mut().for_each(|g| *g = T::ZERO);
    let rank = dims.len();
    if gout.is_empty() || gin.is_empty() {
        return;
    }
    let strides = View::contiguous(dims).strides;
    let maps: Vec<Vec<Option<usize>>> = (0..rank)
        .map(|d| {
            let step = strides[d] as usize;
            pad_map(dims[d], before[d], after[d], mode).into_iter().map(|m| m.map(|i| i * step)).collect()
        })
        .collect();
    let mut idx = vec![0usize; rank];
    for &g in gout {
        let src: Option<usize> = idx.iter().zip(&maps).map(|(&i, m)| m[i]).sum();
        if let Some(s) = src {
            gin[s] = gin[s].add(g);
        }
        for d in (0..rank).rev() {
            idx[d] += 1;
            if idx[d] < maps[d].len() {
                break;
            }
            idx[d] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iota(n: usize) -> Vec<u32> {
        (0..n as u32).collect()
    }

    #[test]
    fn transpose_2d_small_and_large() {
        for (r, c) in [(2, 3), (37, 129), (300, 260)] {
            let x = iota(r * c);
            let v = View::contiguous(&[r, c]).permute(&[1, 0]);
            let mut out = vec![0; r * c];
            gather(&x, &v, &mut out);
            for i in 0..c {
                for j in 0..r {
                    assert_eq!(out[i * r + j], x[j * c + i]);
                }
            }
        }
    }

    /// Every path of [`gather`] against per-element index arithmetic.
    fn check_gather<T: Copy + Send + Sync + PartialEq + std::fmt::Debug + TryFrom<usize>>(
        src_shape: &[usize],
    ) {
        let n: usize = src_shape.iter().product();
        let src: Vec<T> = (0..n).map(|i| T::try_from(i % 251).ok().unwrap()).collect();
        let rank = src_shape.len();
        let mut views = Vec::new();
        for perm in [(0..rank).collect::<Vec<_>>(), (0..rank).rev().collect(), vec![2, 0, 1], vec![0, 2, 1]] {
            let mut v = View::contiguous(src_shape).permute(&perm);
            views.push(v.clone());
            v.flip(0);
            v.flip(rank - 1);
            views.push(v.clone());
            v.narrow(1, 1, v.dims[1] - 2);
            v.broadcast(1, 3);
            views.push(v);
        }
        for v in views {
            let mut out = vec![src[0]; v.numel()];
            gather(&src, &v, &mut out);
            let mut idx = vec![0usize; v.dims.len()];
            for (i, &o) in out.iter().enumerate() {
                let mut rem = i;
                for d in (0..idx.len()).rev() {
                    idx[d] = rem % v.dims[d];
                    rem /= v.dims[d];
                }
                let at = v.offset as isize
                    + idx.iter().zip(&v.strides).map(|(&i, &s)| i as isize * s).sum::<isize>();
                assert_eq!(o, src[at as usize], "{v:?} at {idx:?}");
            }
        }
    }

    #[test]
    fn gather_paths_in_every_word_size() {
        check_gather::<u8>(&[70, 9, 130]);
        check_gather::<u16>(&[5, 33, 7]);
        check_gather::<u32>(&[64, 40, 30]);
        check_gather::<u64>(&[3, 200, 129]);
    }

    #[test]
    fn flip_broadcast_narrow() {
        let x = iota(6); // (2, 3)
        let mut v = View::contiguous(&[2, 3]);
        v.flip(1);
        let mut out = vec![0; 6];
        gather(&x, &v, &mut out);
        assert_eq!(out, [2, 1, 0, 5, 4, 3]);
        let mut v = View::contiguous(&[2, 3]);
        v.broadcast(2, 2);
        let mut out = vec![0; 12];
        gather(&x, &v, &mut out);
        assert_eq!(out, [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]);
        let mut v = View::contiguous(&[2, 3]);
        v.narrow(1, 1, 2);
        let mut out = vec![0; 4];
        gather(&x, &v, &mut out);
        assert_eq!(out, [1, 2, 4, 5]);
    }

    #[test]
    fn concat_rows() {
        let a = [1u8, 2, 3, 4];
        let b = [9u8, 8];
        let mut out = [0u8; 6];
        concat(&[&a, &b], &[2, 1], &mut out);
        assert_eq!(out, [1, 2, 9, 3, 4, 8]);
        // Parts of width 1, 0 and more, over enough rows for the parallel path.
        let rows = 20_000;
        let widths = [1, 3, 0, 2];
        let parts: Vec<Vec<u32>> = widths.iter().map(|&w| (0..(rows * w) as u32).collect()).collect();
        let refs: Vec<&[u32]> = parts.iter().map(|p| &p[..]).collect();
        let mut out = vec![0u32; rows * 6];
        concat(&refs, &widths, &mut out);
        for r in 0..rows {
            let want: Vec<u32> =
                parts.iter().zip(widths).flat_map(|(p, w)| p[r * w..(r + 1) * w].to_vec()).collect();
            assert_eq!(out[r * 6..(r + 1) * 6], want[..]);
        }
    }

    #[test]
    fn pad_modes() {
        let x = [1u32, 2, 3];
        let mut out = [0u32; 7];
        pad(&x, &[3], &[2], &[2], PadMode::Reflect, 0, &mut out);
        assert_eq!(out, [3, 2, 1, 2, 3, 2, 1]);
        pad(&x, &[3], &[2], &[2], PadMode::Edge, 0, &mut out);
        assert_eq!(out, [1, 1, 1, 2, 3, 3, 3]);
        pad(&x, &[3], &[2], &[2], PadMode::Constant, 7, &mut out);
        assert_eq!(out, [7, 7, 1, 2, 3, 7, 7]);
        let mut out = [0u32; 10]; // (1, 3) padded to (2, 5)
        pad(&x, &[1, 3], &[1, 1], &[0, 1], PadMode::Constant, 0, &mut out);
        assert_eq!(out, [0, 0, 0, 0, 0, 0, 1, 2, 3, 0]);
    }
}
