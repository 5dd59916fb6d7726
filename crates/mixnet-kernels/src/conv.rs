//! Convolution on channel-first slices (N, C, D, H, W): im2col / col2im around the strided
//! gemm of [`crate::gemm`]. 1-D and 2-D convolutions are 3-D ones with unit leading spatial
//! dimensions, so one code path serves all three.
//!
//! Per image and group, with `K = C/G · kd·kh·kw` and `N` output positions:
//! - forward: `y (F/G × N) = W_g (F/G × K) · col(x) (K × N)`, the bias written first and the
//!   product accumulated onto it;
//! - data gradient: `col (K × N) = W_gᵀ · dy`, scattered back with col2im;
//! - weight gradient: `dW_g += dy (F/G × N) · col(x)ᵀ`, summed over the batch.
//!
//! Deconvolution is the same three kernels with the roles swapped (its forward is the data
//! gradient of the convolution whose input has the deconvolution's output shape).
//!
//! Threads: a batch is split into one contiguous run of images per core, each run with
//! single-threaded products and its own scratch; a batch too small to split evenly runs
//! image by image with products split across cores instead. Pointwise convolutions
//! (1×1 kernel, unit stride, no padding) skip im2col: the image is its own column matrix.
//! On the native f32 kernels, undilated 2-D forward convolutions skip it too: the product
//! gathers the column matrix from the padded image (`forward_gathered`).
//! Scratch memory is kept per thread between calls (see [`with_scratch`]).

use std::cell::RefCell;

use crate::gemm::{GemmElement, MatMul, RowAffine, PARALLEL_MIN_MACS};
use crate::Element;

mod winograd;

/// Geometry of one convolution, spatial dimensions as (d, h, w) (1-D and 2-D ones padded
/// with leading 1s, kernel 1, stride 1, pad 0, dilate 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    pub batch: usize,
    pub groups: usize,
    /// Channels of the input `x` (all groups).
    pub in_channels: usize,
    /// Channels of the output `y` (all groups).
    pub out_channels: usize,
    pub input: [usize; 3],
    pub output: [usize; 3],
    pub kernel: [usize; 3],
    pub stride: [usize; 3],
    pub pad: [usize; 3],
    pub dilate: [usize; 3],
}

impl ConvGeom {
    pub fn in_spatial(&self) -> usize {
        self.input.iter().product()
    }
    pub fn out_spatial(&self) -> usize {
        self.output.iter().product()
    }
    pub fn kernel_volume(&self) -> usize {
        self.kernel.iter().product()
    }
    /// Elements of `x`.
    pub fn input_len(&self) -> usize {
        self.batch * self.in_channels * self.in_spatial()
    }
    /// Elements of `y`.
    pub fn output_len(&self) -> usize {
        self.batch * self.out_channels * self.out_spatial()
    }
    /// Elements of the weight (F, C/G, kd, kh, kw).
    pub fn weight_len(&self) -> usize {
        self.out_channels * self.col_rows()
    }
    /// Multiply-adds of the forward pass.
    pub fn macs(&self) -> usize {
        self.output_len() * self.col_rows()
    }
    /// Rows of one group's column matrix, `C/G · kernel volume`.
    fn col_rows(&self) -> usize {
        self.in_channels / self.groups * self.kernel_volume()
    }
    /// A 2-D window moved one step at a time over an unpadded input (LeNet's convolutions):
    /// every window row lies inside the input, so the column matrix is plain row copies.
    fn dense_2d(&self) -> bool {
        self.input[0] == 1
            && self.kernel[0] == 1
            && self.stride == [1; 3]
            && self.dilate == [1; 3]
            && self.pad == [0; 3]
            && self.output[1] + self.kernel[1] <= self.input[1] + 1
            && self.output[2] + self.kernel[2] <= self.input[2] + 1
    }
    /// A padded 2-D window moved one step at a time with output rows as wide as the
    /// input's ("same" convolutions: ResNet's 3×3s): a column-matrix row is then the
    /// flattened input plane shifted by a constant, with a few edge columns zeroed.
    fn shifted_2d(&self) -> bool {
        self.unit_steps_2d() && self.output[2] == self.input[2]
    }
    /// An undilated 2-D window: every column-matrix row is a window, at a fixed offset, of
    /// one phase plane of the padded image (the elements at one offset modulo the stride;
    /// at unit stride, the padded image itself).
    fn planar_2d(&self) -> bool {
        self.input[0] == 1
            && self.output[0] == 1
            && self.kernel[0] == 1
            && self.pad[0] == 0
            && self.stride[0] == 1
            && self.dilate == [1; 3]
    }
    /// [`ConvGeom::planar_2d`] moved one step at a time.
    fn unit_steps_2d(&self) -> bool {
        self.planar_2d() && self.stride == [1; 3]
    }
    fn pointwise(&self) -> bool {
        self.kernel == [1; 3] && self.stride == [1; 3] && self.pad == [0; 3]
    }
    /// A 2-D 1×1 window, unpadded, with a step: the column matrix is the image subsampled
    /// (ResNet's stride-2 1×1s).
    fn subsampled_2d(&self) -> bool {
        self.input[0] == 1
            && self.output[0] == 1
            && self.kernel == [1; 3]
            && self.pad == [0; 3]
            && self.output[1].saturating_sub(1) * self.stride[1] < self.input[1]
            && self.output[2].saturating_sub(1) * self.stride[2] < self.input[2]
    }
    /// Whether the dimensions are consistent: groups divide the channels and every output
    /// position is `(in + 2·pad - dilated kernel) / stride + 1` or smaller.
    pub fn check(&self) -> bool {
        self.groups > 0
            && self.in_channels.is_multiple_of(self.groups)
            && self.out_channels.is_multiple_of(self.groups)
            && (0..3).all(|i| {
                let span = self.dilate[i] * (self.kernel[i].max(1) - 1) + 1;
                self.kernel[i] > 0
                    && self.stride[i] > 0
                    && self.dilate[i] > 0
                    && (self.output[i] == 0
                        || (self.output[i] - 1) * self.stride[i] + span <= self.input[i] + 2 * self.pad[i])
            })
    }

    /// Images per parallel task, or None to go image by image with parallel products.
    fn images_per_task(&self) -> Option<usize> {
        let threads = crate::parallel::threads();
        let (b, macs) = (self.batch, self.macs());
        if threads < 2 || b < 2 || macs < PARALLEL_MIN_MACS / 4 {
            return None;
        }
        let per_image = macs / b;
        // An uneven split (3 images on 2 cores) idles a core for a whole image; products
        // large enough to split well are then better taken one at a time.
        if b.is_multiple_of(threads) || b >= 4 * threads || per_image < PARALLEL_MIN_MACS {
            Some(b.div_ceil(threads))
        } else {
            None
        }
    }
}

/// A cache line: where scratch buffers start.
const LINE: usize = 64;

/// Scratch buffers larger than this are not kept between calls.
const KEEP_SCRATCH_BYTES: usize = 64 << 20;

thread_local! {
    static SCRATCH: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// Run `f` with `len` elements of scratch memory (contents unspecified but initialized),
/// reusing a buffer kept per thread: fresh multi-megabyte buffers cost page faults on every
/// call. A nested call on the same thread gets a fresh buffer.
pub fn with_scratch<T: bytemuck::Pod, R>(len: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
    let bytes = len * std::mem::size_of::<T>();
    // Room to start on a cache line: the allocator aligns to 16 bytes only, and where a
    // buffer started then changed from run to run; with the Winograd transforms' 64-byte
    // vectors split across lines, whole runs of ResNet-50 took 47-48 ms instead of 37-38.
    let words = bytes.div_ceil(8) + LINE / 8;
    assert!(std::mem::align_of::<T>() <= 8);
    let run = |buf: &mut Vec<u64>| {
        if buf.len() < words {
            buf.resize(words, 0);
        }
        let skip = buf.as_ptr().align_offset(LINE);
        let all: &mut [T] = bytemuck::cast_slice_mut(&mut buf[skip..skip + bytes.div_ceil(8)]);
        f(&mut all[..len])
    };
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) if bytes <= KEEP_SCRATCH_BYTES => run(&mut buf),
        _ => run(&mut Vec::new()),
    })
}

/// `dst[j] = src[j·stride + off]` where that index is inside `src`, else zero.
#[inline]
fn gather_row<T: Element>(dst: &mut [T], src: &[T], off: isize, stride: usize) {
    let (lo, hi) = valid_range(dst.len(), src.len(), off, stride);
    dst[..lo].fill(T::ZERO);
    dst[hi..].fill(T::ZERO);
    if lo == hi {
        return;
    }
    let start = (lo as isize * stride as isize + off) as usize;
    if stride == 1 {
        copy_row(&mut dst[lo..hi], &src[start..start + (hi - lo)]);
    } else {
        for (d, s) in dst[lo..hi].iter_mut().zip(src[start..].iter().step_by(stride)) {
            *d = *s;
        }
    }
}

/// `dst[j] = src[j·stride]`. Stride 2 reads pairs so that the copy vectorizes: the
/// strided 1×1s' im2col was a fifth of their time as a scalar strided walk.
#[inline]
fn subsample_row<T: Copy>(dst: &mut [T], src: &[T], stride: usize) {
    if stride == 2 {
        let (pairs, _) = src.as_chunks::<2>();
        let whole = pairs.len().min(dst.len());
        for (d, p) in dst[..whole].iter_mut().zip(pairs) {
            *d = p[0];
        }
        for (j, d) in dst.iter_mut().enumerate().skip(whole) {
            *d = src[j * 2];
        }
    } else {
        for (d, s) in dst.iter_mut().zip(src.iter().step_by(stride)) {
            *d = *s;
        }
    }
}

/// `dst.copy_from_slice(src)` as fixed-size 8-element moves: rows here are often 8-30
/// elements (LeNet), where a `memcpy` call costs more than the copy.
#[inline]
fn copy_row<T: Copy>(dst: &mut [T], src: &[T]) {
    let (db, dt) = dst.as_chunks_mut::<8>();
    let (sb, st) = src.as_chunks::<8>();
    for (d, s) in db.iter_mut().zip(sb) {
        *d = *s;
    }
    for (d, s) in dt.iter_mut().zip(st) {
        *d = *s;
    }
}

/// `dst[j·stride + off] += src[j]` where that index is inside `dst`.
#[inline]
fn scatter_row<T: Element>(dst: &mut [T], src: &[T], off: isize, stride: usize) {
    let (lo, hi) = valid_range(src.len(), dst.len(), off, stride);
    if lo == hi {
        return;
    }
    let start = (lo as isize * stride as isize + off) as usize;
    if stride == 1 {
        for (d, s) in dst[start..start + (hi - lo)].iter_mut().zip(&src[lo..hi]) {
            *d = d.add(*s);
        }
    } else {
        for (d, s) in dst[start..].iter_mut().step_by(stride).zip(&src[lo..hi]) {
            *d = d.add(*s);
        }
    }
}

/// The `j` in `0..n` with `0 <= j·stride + off < len`, as a range.
#[inline]
fn valid_range(n: usize, len: usize, off: isize, stride: usize) -> (usize, usize) {
    if stride == 1 {
        // The common case, without the two divisions (a row here may be only 8 long).
        let lo = ((-off).max(0) as usize).min(n);
        let hi = (len as isize - off).clamp(0, n as isize) as usize;
        return (lo, hi.max(lo));
    }
    let s = stride as isize;
    let lo = if off >= 0 { 0 } else { ((-off) + s - 1) / s } as usize;
    let hi = if (len as isize) <= off { 0 } else { ((len as isize - off) + s - 1) / s } as usize;
    let lo = lo.min(n);
    (lo, hi.min(n).max(lo))
}

/// Visit every (column-matrix row, output row) pair of one group's image: `f(row, zo, yo,
/// input row offset or None when padding, x offset along w)`.
#[inline]
fn for_each_row(g: &ConvGeom, channels: usize, mut f: impl FnMut(usize, usize, Option<usize>, isize)) {
    let [id, ih, iw] = g.input;
    let [od, oh, _] = g.output;
    let [kd, kh, kw] = g.kernel;
    let in_sp = id * ih * iw;
    let mut row = 0;
    for c in 0..channels {
        for a in 0..kd {
            for b in 0..kh {
                for e in 0..kw {
                    let off_w = (e * g.dilate[2]) as isize - g.pad[2] as isize;
                    for zo in 0..od {
                        let zi = (zo * g.stride[0] + a * g.dilate[0]) as isize - g.pad[0] as isize;
                        for yo in 0..oh {
                            let yi = (yo * g.stride[1] + b * g.dilate[1]) as isize - g.pad[1] as isize;
                            let inside = zi >= 0 && (zi as usize) < id && yi >= 0 && (yi as usize) < ih;
                            let at = inside.then(|| c * in_sp + (zi as usize * ih + yi as usize) * iw);
                            f(row, zo * oh + yo, at, off_w);
                        }
                    }
                    row += 1;
                }
            }
        }
    }
}

/// `f(row, at)` for every column-matrix row of one group's image under
/// [`ConvGeom::dense_2d`]: `at` is where its window's first element sits in the image.
#[inline]
fn dense_rows(g: &ConvGeom, mut f: impl FnMut(usize, usize)) {
    let [_, ih, iw] = g.input;
    let [_, kh, kw] = g.kernel;
    let channels = g.in_channels / g.groups;
    for c in 0..channels {
        for b in 0..kh {
            for e in 0..kw {
                f((c * kh + b) * kw + e, (c * ih + b) * iw + e);
            }
        }
    }
}

/// Column matrix (K × N) of one group of one image `x` (C/G × in spatial).
pub fn im2col<T: Element>(g: &ConvGeom, x: &[T], col: &mut [T]) {
    let (n, ow, iw) = (g.out_spatial(), g.output[2], g.input[2]);
    if g.dense_2d() {
        return dense_rows(g, |row, src_at| {
            for (yo, dst) in col[row * n..][..n].chunks_exact_mut(ow).enumerate() {
                copy_row(dst, &x[src_at + yo * iw..][..ow]);
            }
        });
    }
    if g.shifted_2d() {
        return shifted_rows(g, x, col);
    }
    if g.subsampled_2d() {
        let (plane, sh, sw) = (g.input[1] * iw, g.stride[1], g.stride[2]);
        for (c, dst) in col.chunks_exact_mut(n).take(g.in_channels / g.groups).enumerate() {
            for (yo, dst) in dst.chunks_exact_mut(ow).enumerate() {
                subsample_row(dst, &x[c * plane + yo * sh * iw..][..iw], sw);
            }
        }
        return;
    }
    for_each_row(g, g.in_channels / g.groups, |row, orow, at, off| {
        let dst = &mut col[row * n + orow * ow..][..ow];
        match at {
            Some(at) => gather_row(dst, &x[at..at + iw], off, g.stride[2]),
            None => dst.fill(T::ZERO),
        }
    });
}

/// [`im2col`] under [`ConvGeom::shifted_2d`]: output position `j = yo·w + xo` of kernel
/// offset (b, e) reads plane element `j + (b − ph)·w + (e − pw)`, so each row is one copy
/// of the plane shifted, zero where that runs off the top or bottom, and the `|e − pw|`
/// columns on one side of each output row zeroed (they would wrap into the next row).
/// One copy per row instead of one gather per output row (ResNet-50's 7×7 stage: 7
/// elements per gather).
fn shifted_rows<T: Element>(g: &ConvGeom, x: &[T], col: &mut [T]) {
    let [_, ih, w] = g.input;
    let [_, oh, _] = g.output;
    let [_, kh, kw] = g.kernel;
    let (plane, n) = (ih * w, oh * w);
    for c in 0..g.in_channels / g.groups {
        let src = &x[c * plane..][..plane];
        for b in 0..kh {
            for e in 0..kw {
                let dst = &mut col[((c * kh + b) * kw + e) * n..][..n];
                let shift = (b * w + e) as isize - (g.pad[1] * w + g.pad[2]) as isize;
                let lo = ((-shift).max(0) as usize).min(n);
                let hi = (plane as isize - shift).clamp(lo as isize, n as isize) as usize;
                dst[..lo].fill(T::ZERO);
                dst[hi..].fill(T::ZERO);
                let start = (lo as isize + shift) as usize;
                dst[lo..hi].copy_from_slice(&src[start..start + (hi - lo)]);
                let dx = e as isize - g.pad[2] as isize;
                let edge = dx.unsigned_abs().min(w);
                if edge > 0 {
                    for row in dst.chunks_exact_mut(w) {
                        let zeros = if dx < 0 { &mut row[..edge] } else { &mut row[w - edge..] };
                        zeros.fill(T::ZERO);
                    }
                }
            }
        }
    }
}

/// Add a column matrix (K × N) back onto one group of one image `x` (the adjoint of
/// [`im2col`]).
pub fn col2im<T: Element>(g: &ConvGeom, col: &[T], x: &mut [T]) {
    let (n, ow, iw) = (g.out_spatial(), g.output[2], g.input[2]);
    if g.dense_2d() {
        return dense_rows(g, |row, dst_at| {
            for (yo, src) in col[row * n..][..n].chunks_exact(ow).enumerate() {
                for (d, &s) in x[dst_at + yo * iw..][..ow].iter_mut().zip(src) {
                    *d = d.add(s);
                }
            }
        });
    }
    for_each_row(g, g.in_channels / g.groups, |row, orow, at, off| {
        if let Some(at) = at {
            scatter_row(&mut x[at..at + iw], &col[row * n + orow * ow..][..ow], off, g.stride[2]);
        }
    });
}

/// Column-matrix elements from which [`im2col`] and [`col2im`] split across cores: the
/// strided copies of ResNet-50's stride-2 1×1s at 7×7 (50K elements) took 0.15-0.2 ms
/// on one core while the other waited.
const SPLIT_COLUMNS: usize = 1 << 14;

/// [`im2col`], or split by channel across cores when `par` and the matrix is large.
fn im2col_maybe_par<T: Element>(g: &ConvGeom, x: &[T], col: &mut [T], par: bool) {
    let rows = g.kernel_volume() * g.out_spatial();
    if !par || col.len() < SPLIT_COLUMNS || crate::parallel::threads() < 2 {
        return im2col(g, x, col);
    }
    let one = ConvGeom { in_channels: 1, groups: 1, ..*g };
    let sp = g.in_spatial();
    crate::parallel::chunks(col, rows, &|c, col| im2col(&one, &x[c * sp..][..sp], col));
}

/// [`col2im`], or split by channel across cores when `par` and the matrix is large.
fn col2im_maybe_par<T: Element>(g: &ConvGeom, col: &[T], x: &mut [T], par: bool) {
    let rows = g.kernel_volume() * g.out_spatial();
    if !par || col.len() < SPLIT_COLUMNS || crate::parallel::threads() < 2 {
        return col2im(g, col, x);
    }
    let one = ConvGeom { in_channels: 1, groups: 1, ..*g };
    let sp = g.in_spatial();
    crate::parallel::chunks(x, sp, &|c, x| col2im(&one, &col[c * rows..][..rows], x));
}

/// Per-image sizes: (x, y, group input, group output, K, N, F/G).
fn sizes(g: &ConvGeom) -> (usize, usize, usize, usize, usize, usize, usize) {
    let (cg, fg) = (g.in_channels / g.groups, g.out_channels / g.groups);
    let (isp, osp) = (g.in_spatial(), g.out_spatial());
    (g.in_channels * isp, g.out_channels * osp, cg * isp, fg * osp, g.col_rows(), osp, fg)
}

/// One image's forward: `y = conv(x, w) + bias`, then `post` on each channel (the bias
/// is folded into `post` by the caller when both are given).
fn forward_image<T: GemmElement>(
    g: &ConvGeom,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    post: Option<&RowAffine<'_, T>>,
    y: &mut [T],
    par: bool,
) {
    let (_, _, gx, gy, k, n, fg) = sizes(g);
    let p = MatMul { m: fg, n, k, trans_a: false, trans_b: false };
    if let Some(bias) = bias {
        for (row, &b) in y.chunks_exact_mut(n).zip(bias) {
            row.fill(b);
        }
    }
    let acc = bias.is_some();
    let wg = fg * k;
    // The map of group `grp`'s channels.
    let post_of = |grp: usize| {
        post.map(|p| RowAffine {
            scale: &p.scale[grp * fg..][..fg],
            shift: &p.shift[grp * fg..][..fg],
            sum: p.sum.map(|s| &s[grp * gy..][..gy]),
            relu: p.relu,
        })
    };
    if g.pointwise() {
        for grp in 0..g.groups {
            let (w, x, y) = (&w[grp * wg..][..wg], &x[grp * gx..][..gx], &mut y[grp * gy..][..gy]);
            match post_of(grp) {
                Some(post) => p.run_mapped(w, x, y, &post, par),
                None => p.run_with(w, x, y, acc, par),
            }
        }
        return;
    }
    // (A strided 1×1 has no overlap to save: im2col copies just the subsample, and packs
    // it faster than the gathering does: 256×56² to 128 at stride 2, batch 8, 2.9 -> 4.8 ms.)
    let strided_1x1 = g.kernel_volume() == 1;
    if g.planar_2d() && !strided_1x1 && g.output[2] >= GATHER_MIN_WIDTH && T::gathers() {
        return forward_gathered(g, x, w, y, acc, &post_of, par);
    }
    with_scratch(k * n, |col: &mut [T]| {
        for grp in 0..g.groups {
            im2col_maybe_par(g, &x[grp * gx..][..gx], col, par);
            let (w, y) = (&w[grp * wg..][..wg], &mut y[grp * gy..][..gy]);
            match post_of(grp) {
                Some(post) => p.run_mapped(w, col, y, &post, par),
                None => p.run_with(w, col, y, acc, par),
            }
        }
    });
}

/// Output width from which a unit-step convolution gathers its column matrix from the
/// image. Narrower output rows cut each row of a packed sliver into many short runs:
/// ResNet-50's 3×3 at 7×7 (up to 6 runs per 32 columns) ran 1.50 -> 1.60 ms gathered,
/// while the 56×56 one ran the same at batch 1 and 14.5 -> 10.4 ms at batch 8.
const GATHER_MIN_WIDTH: usize = 14;

/// [`forward_image`] without a column matrix, for [`ConvGeom::planar_2d`]. The image is
/// padded and split once into phase planes, plane (r, q) of a channel holding padded
/// elements (i·sh + r, j·sw + q) (one plane at unit stride; none of this when that is
/// the image itself). Column-matrix row (c, b, e) at output (yo, xo) is padded element
/// (c, yo·sh + b, xo·sw + e), which is element (yo + b/sh, xo + e/sw) of plane
/// (b % sh, e % sw): so the product gathers `b` straight from the planes (row offset
/// per (c, b, e), column offset `yo·wq + xo`; see [`MatMul::run_gather`]), runs of `ow`
/// contiguous columns. The copy is the image's size, where im2col's is the kernel's
/// area times the output's (9x for a 3×3, 12x for ResNet's 7×7 stride-2 stem).
fn forward_gathered<'a, T: GemmElement>(
    g: &ConvGeom,
    x: &[T],
    w: &[T],
    y: &mut [T],
    acc: bool,
    post_of: &dyn Fn(usize) -> Option<RowAffine<'a, T>>,
    par: bool,
) {
    let (_, _, _, gy, k, n, fg) = sizes(g);
    let p = MatMul { m: fg, n, k, trans_a: false, trans_b: false };
    let ([_, ih, iw], [_, oh, ow], [_, kh, kw]) = (g.input, g.output, g.kernel);
    let ([_, ph, pw], [_, sh, sw]) = (g.pad, g.stride);
    let (hq, wq) = ((ih + 2 * ph).div_ceil(sh), (iw + 2 * pw).div_ceil(sw));
    // Phases a kernel offset reaches (all of them unless the kernel is narrower than the
    // stride), one phase plane, and one channel's planes.
    let (rh, rw) = (kh.min(sh), kw.min(sw));
    let (pq, plane) = (hq * wq, rh * rw * hq * wq);
    let cg = g.in_channels / g.groups;
    let row =
        |c: usize, b: usize, e: usize| c * plane + ((b % sh) * rw + e % sw) * pq + (b / sh) * wq + e / sw;
    let rows: Vec<usize> =
        (0..cg).flat_map(|c| (0..kh).flat_map(move |b| (0..kw).map(move |e| row(c, b, e)))).collect();
    let cols: Vec<usize> = (0..oh).flat_map(|yo| (0..ow).map(move |xo| yo * wq + xo)).collect();
    let wg = fg * k;
    let run = |planes: &[T], y: &mut [T]| {
        for grp in 0..g.groups {
            let base = &planes[grp * cg * plane..][..cg * plane];
            let (w, y, post) = (&w[grp * wg..][..wg], &mut y[grp * gy..][..gy], post_of(grp));
            p.run_gather(w, base, &rows, &cols, y, acc, post.as_ref(), par);
        }
    };
    if ph == 0 && pw == 0 && sh == 1 && sw == 1 {
        return run(x, y);
    }
    with_scratch(g.in_channels * plane, |planes: &mut [T]| {
        let split = |c: usize, dst: &mut [T]| {
            let src = &x[c * ih * iw..][..ih * iw];
            for (phase, dst) in dst.chunks_exact_mut(pq).enumerate() {
                let (r, q) = (phase / rw, phase % rw);
                for (i, dst) in dst.chunks_exact_mut(wq).enumerate() {
                    let yi = (i * sh + r).wrapping_sub(ph);
                    if yi < ih {
                        gather_row(dst, &src[yi * iw..][..iw], q as isize - pw as isize, sw);
                    } else {
                        dst.fill(T::ZERO);
                    }
                }
            }
        };
        if par && planes.len() >= 1 << 16 {
            crate::parallel::chunks(planes, plane, &split);
        } else {
            planes.chunks_exact_mut(plane).enumerate().for_each(|(c, dst)| split(c, dst));
        }
        run(planes, y)
    });
}

fn backward_data_image<T: GemmElement>(g: &ConvGeom, dy: &[T], w: &[T], dx: &mut [T], par: bool) {
    let (_, _, gx, gy, k, n, fg) = sizes(g);
    let p = MatMul { m: k, n, k: fg, trans_a: true, trans_b: false };
    let wg = fg * k;
    if g.pointwise() {
        for grp in 0..g.groups {
            p.run_with(&w[grp * wg..][..wg], &dy[grp * gy..][..gy], &mut dx[grp * gx..][..gx], false, par);
        }
        return;
    }
    dx.fill(T::ZERO);
    with_scratch(k * n, |col: &mut [T]| {
        for grp in 0..g.groups {
            p.run_with(&w[grp * wg..][..wg], &dy[grp * gy..][..gy], col, false, par);
            col2im_maybe_par(g, col, &mut dx[grp * gx..][..gx], par);
        }
    });
}

fn backward_weight_image<T: GemmElement>(
    g: &ConvGeom,
    dy: &[T],
    x: &[T],
    dw: &mut [T],
    acc: bool,
    par: bool,
) {
    let (_, _, gx, gy, k, n, fg) = sizes(g);
    let p = MatMul { m: fg, n: k, k: n, trans_a: false, trans_b: true };
    let wg = fg * k;
    if g.pointwise() {
        for grp in 0..g.groups {
            p.run_with(&dy[grp * gy..][..gy], &x[grp * gx..][..gx], &mut dw[grp * wg..][..wg], acc, par);
        }
        return;
    }
    with_scratch(k * n, |col: &mut [T]| {
        for grp in 0..g.groups {
            im2col_maybe_par(g, &x[grp * gx..][..gx], col, par);
            p.run_with(&dy[grp * gy..][..gy], col, &mut dw[grp * wg..][..wg], acc, par);
        }
    });
}

fn assert_lens(g: &ConvGeom, x: usize, w: usize, y: usize) {
    assert!(g.check(), "conv: inconsistent geometry {g:?}");
    assert!(
        x == g.input_len() && w == g.weight_len() && y == g.output_len(),
        "conv: slice lengths {x}, {w}, {y} do not fit {g:?}"
    );
}

/// `y = conv(x, w) + bias`, overwriting `y` (N, F, out spatial).
pub fn conv_forward<T: GemmElement>(g: &ConvGeom, x: &[T], w: &[T], bias: Option<&[T]>, y: &mut [T]) {
    forward_batch(g, x, w, None, bias, None, y)
}

/// Length of [`winograd_filters`]' output for filters (F, C/G, kernel) in `groups` groups,
/// or None when convolutions with them never take Winograd's path (see `winograd.rs`:
/// unit-step 3×3s with enough channels, in f32).
pub fn winograd_filters_len(
    out_channels: usize,
    in_channels: usize,
    kernel: [usize; 3],
    groups: usize,
) -> Option<usize> {
    winograd::filters_apply(out_channels, in_channels, kernel, groups)
        .then(|| winograd::filters_len(out_channels, in_channels))
}

/// The filters `w` (F, C, 3, 3) carried to Winograd's transform domain once, for
/// [`conv_forward_mapped`] to reuse on every call while the weights do not change
/// (oneDNN keeps reordered weights the same way).
///
/// # Panics
/// If [`winograd_filters_len`] is None for these filters or `out` is not that long.
pub fn winograd_filters(out_channels: usize, in_channels: usize, w: &[f32], out: &mut [f32]) {
    let len = winograd_filters_len(out_channels, in_channels, [1, 3, 3], 1);
    assert!(
        len == Some(out.len()) && w.len() == out_channels * in_channels * 9,
        "conv: no Winograd filters of that size"
    );
    winograd::transform_all(w, in_channels, out_channels, out)
}

/// `y = post(conv(x, w) + bias)`, `post` mapping each output channel (a BatchNorm with
/// fixed statistics, and ReLU, folded into the convolution: see [`RowAffine`]), as the
/// product stores its tiles, with no pass of its own on the native kernels. `filters`,
/// when given, are `w` from [`winograd_filters`], used where Winograd's path is taken.
///
/// # Panics
/// If `filters` is not [`winograd_filters_len`] long.
#[allow(clippy::too_many_arguments)]
pub fn conv_forward_mapped<T: GemmElement>(
    g: &ConvGeom,
    x: &[T],
    w: &[T],
    filters: Option<&[T]>,
    bias: Option<&[T]>,
    post: &RowAffine<'_, T>,
    y: &mut [T],
) {
    let f = g.out_channels;
    assert!(post.scale.len() == f && post.shift.len() == f, "conv: a channel map has {f} values");
    assert!(post.sum.is_none_or(|s| s.len() == g.output_len()), "conv: a residual is shaped as the output");
    match bias {
        // (y + b)·s + h = y·s + (b·s + h)
        Some(bias) => {
            let shift: Vec<T> = (0..f).map(|c| bias[c].mul(post.scale[c]).add(post.shift[c])).collect();
            forward_batch(g, x, w, filters, None, Some(&RowAffine { shift: &shift, ..*post }), y)
        }
        None => forward_batch(g, x, w, filters, None, Some(post), y),
    }
}

fn forward_batch<T: GemmElement>(
    g: &ConvGeom,
    x: &[T],
    w: &[T],
    filters: Option<&[T]>,
    bias: Option<&[T]>,
    post: Option<&RowAffine<'_, T>>,
    y: &mut [T],
) {
    assert_lens(g, x.len(), w.len(), y.len());
    assert!(bias.is_none_or(|b| b.len() == g.out_channels));
    let (sx, sy, ..) = sizes(g);
    if sy == 0 {
        return;
    }
    if winograd::applies(g) {
        if let (Some(x), Some(w), Some(y)) = (as_f32(x), as_f32(w), as_f32_mut(y)) {
            let bias = bias.and_then(as_f32);
            let post = post.and_then(|p| {
                Some(RowAffine {
                    scale: as_f32(p.scale)?,
                    shift: as_f32(p.shift)?,
                    sum: p.sum.and_then(as_f32),
                    relu: p.relu,
                })
            });
            let filters = filters.and_then(as_f32);
            let len = winograd::filters_len(g.out_channels, g.in_channels);
            assert!(filters.is_none_or(|u| u.len() == len), "conv: Winograd filters are {len} long");
            return winograd::forward(g, x, w, filters, bias, post.as_ref(), y);
        }
    }
    match g.images_per_task() {
        Some(per) => crate::parallel::chunks(y, per * sy, &|t, ys| {
            for (i, y) in ys.chunks_exact_mut(sy).enumerate() {
                let b = t * per + i;
                forward_image(g, &x[b * sx..][..sx], w, bias, image_map(post, b, sy).as_ref(), y, false);
            }
        }),
        None => {
            for (b, y) in y.chunks_exact_mut(sy).enumerate() {
                forward_image(g, &x[b * sx..][..sx], w, bias, image_map(post, b, sy).as_ref(), y, true);
            }
        }
    }
}

/// Image `b`'s part of a channel map over a batch of outputs `sy` long each: its part of
/// the residual to add.
fn image_map<'a, T: Element>(
    post: Option<&RowAffine<'a, T>>,
    b: usize,
    sy: usize,
) -> Option<RowAffine<'a, T>> {
    post.map(|p| RowAffine { sum: p.sum.map(|s| &s[b * sy..][..sy]), ..*p })
}

/// `s` as f32 when `T` is f32 (the element type a kernel of its own serves).
fn as_f32<T: Element>(s: &[T]) -> Option<&[f32]> {
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()).then(|| bytemuck::cast_slice(s))
}

fn as_f32_mut<T: Element>(s: &mut [T]) -> Option<&mut [f32]> {
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()).then(|| bytemuck::cast_slice_mut(s))
}

/// Gradient of the input: `dx = convᵀ(dy, w)`, overwriting `dx` (N, C, in spatial).
pub fn conv_backward_data<T: GemmElement>(g: &ConvGeom, dy: &[T], w: &[T], dx: &mut [T]) {
    assert_lens(g, dx.len(), w.len(), dy.len());
    let (sx, sy, ..) = sizes(g);
    if sx == 0 {
        return;
    }
    if sy == 0 {
        dx.fill(T::ZERO);
        return;
    }
    match g.images_per_task() {
        Some(per) => crate::parallel::chunks(dx, per * sx, &|t, xs| {
            for (i, dx) in xs.chunks_exact_mut(sx).enumerate() {
                let b = t * per + i;
                backward_data_image(g, &dy[b * sy..][..sy], w, dx, false);
            }
        }),
        None => {
            for (b, dx) in dx.chunks_exact_mut(sx).enumerate() {
                backward_data_image(g, &dy[b * sy..][..sy], w, dx, true);
            }
        }
    }
}

/// Gradient of the weight, summed over the batch, overwriting `dw` (F, C/G, kernel).
pub fn conv_backward_weight<T: GemmElement>(g: &ConvGeom, dy: &[T], x: &[T], dw: &mut [T]) {
    assert_lens(g, x.len(), dw.len(), dy.len());
    let (sx, sy, ..) = sizes(g);
    if dw.is_empty() {
        return;
    }
    if sy == 0 || sx == 0 {
        dw.fill(T::ZERO);
        return;
    }
    match g.images_per_task() {
        Some(per) => {
            let tasks = g.batch.div_ceil(per);
            // The first run of images sums into dw, the others into their own buffers.
            let mut partial: Vec<Vec<T>> = (1..tasks).map(|_| vec![T::ZERO; dw.len()]).collect();
            let dests: Vec<&mut [T]> =
                std::iter::once(&mut *dw).chain(partial.iter_mut().map(|v| v.as_mut_slice())).collect();
            crate::parallel::each(dests.into_iter().enumerate(), &|(t, dw)| {
                for b in t * per..((t + 1) * per).min(g.batch) {
                    backward_weight_image(g, &dy[b * sy..][..sy], &x[b * sx..][..sx], dw, b > t * per, false);
                }
            });
            for p in &partial {
                for (d, s) in dw.iter_mut().zip(p) {
                    *d = d.add(*s);
                }
            }
        }
        None => {
            for b in 0..g.batch {
                backward_weight_image(g, &dy[b * sy..][..sy], &x[b * sx..][..sx], dw, b > 0, true);
            }
        }
    }
}

/// Convolutions of one element type, compiled once here (see `reduce::Reduce`).
pub trait Conv: GemmElement {
    fn conv_forward(g: &ConvGeom, x: &[Self], w: &[Self], bias: Option<&[Self]>, y: &mut [Self]);
    #[allow(clippy::too_many_arguments)]
    fn conv_forward_mapped(
        g: &ConvGeom,
        x: &[Self],
        w: &[Self],
        filters: Option<&[Self]>,
        bias: Option<&[Self]>,
        post: &RowAffine<'_, Self>,
        y: &mut [Self],
    );
    fn conv_backward_data(g: &ConvGeom, dy: &[Self], w: &[Self], dx: &mut [Self]);
    fn conv_backward_weight(g: &ConvGeom, dy: &[Self], x: &[Self], dw: &mut [Self]);
}

macro_rules! impl_conv {
    ($($t:ty),*) => {$(
        impl Conv for $t {
            fn conv_forward(g: &ConvGeom, x: &[$t], w: &[$t], bias: Option<&[$t]>, y: &mut [$t]) {
                conv_forward(g, x, w, bias, y)
            }
            fn conv_forward_mapped(g: &ConvGeom, x: &[$t], w: &[$t], filters: Option<&[$t]>, bias: Option<&[$t]>, post: &RowAffine<'_, $t>, y: &mut [$t]) {
                conv_forward_mapped(g, x, w, filters, bias, post, y)
            }
            fn conv_backward_data(g: &ConvGeom, dy: &[$t], w: &[$t], dx: &mut [$t]) {
                conv_backward_data(g, dy, w, dx)
            }
            fn conv_backward_weight(g: &ConvGeom, dy: &[$t], x: &[$t], dw: &mut [$t]) {
                conv_backward_weight(g, dy, x, dw)
            }
        }
    )*};
}
impl_conv!(f32, f64);

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct convolution in f64.
    fn naive(g: &ConvGeom, x: &[f64], w: &[f64]) -> Vec<f64> {
        let (cg, fg) = (g.in_channels / g.groups, g.out_channels / g.groups);
        let [id, ih, iw] = g.input;
        let [od, oh, ow] = g.output;
        let [kd, kh, kw] = g.kernel;
        let mut y = vec![0.0; g.output_len()];
        for b in 0..g.batch {
            for f in 0..g.out_channels {
                let grp = f / fg;
                for (zo, yo, xo) in itertools(od, oh, ow) {
                    let mut s = 0.0;
                    for c in 0..cg {
                        for (a, bb, e) in itertools(kd, kh, kw) {
                            let zi = (zo * g.stride[0] + a * g.dilate[0]) as isize - g.pad[0] as isize;
                            let yi = (yo * g.stride[1] + bb * g.dilate[1]) as isize - g.pad[1] as isize;
                            let xi = (xo * g.stride[2] + e * g.dilate[2]) as isize - g.pad[2] as isize;
                            if zi < 0 || yi < 0 || xi < 0 {
                                continue;
                            }
                            let (zi, yi, xi) = (zi as usize, yi as usize, xi as usize);
                            if zi >= id || yi >= ih || xi >= iw {
                                continue;
                            }
                            let xv = x[(((b * g.in_channels + grp * cg + c) * id + zi) * ih + yi) * iw + xi];
                            let wv = w[(((f * cg + c) * kd + a) * kh + bb) * kw + e];
                            s += xv * wv;
                        }
                    }
                    y[(((b * g.out_channels + f) * od + zo) * oh + yo) * ow + xo] = s;
                }
            }
        }
        y
    }

    fn itertools(a: usize, b: usize, c: usize) -> impl Iterator<Item = (usize, usize, usize)> {
        (0..a).flat_map(move |i| (0..b).flat_map(move |j| (0..c).map(move |k| (i, j, k))))
    }

    fn data(len: usize, seed: usize) -> Vec<f64> {
        (0..len).map(|i| ((i * 7 + seed * 13) % 17) as f64 / 4.0 - 2.0).collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn geom(
        batch: usize,
        groups: usize,
        c: usize,
        f: usize,
        input: [usize; 3],
        k: [usize; 3],
        s: [usize; 3],
        p: [usize; 3],
        d: [usize; 3],
    ) -> ConvGeom {
        let output = std::array::from_fn(|i| (input[i] + 2 * p[i] - (d[i] * (k[i] - 1) + 1)) / s[i] + 1);
        ConvGeom {
            batch,
            groups,
            in_channels: c,
            out_channels: f,
            input,
            output,
            kernel: k,
            stride: s,
            pad: p,
            dilate: d,
        }
    }

    fn dot(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn forward_and_adjoints_match_naive() {
        let cases = [
            geom(2, 1, 3, 4, [1, 6, 7], [1, 3, 3], [1, 1, 1], [0, 1, 1], [1; 3]),
            geom(1, 2, 4, 6, [1, 5, 5], [1, 3, 3], [1, 2, 1], [0, 0, 2], [1, 2, 1]),
            geom(3, 4, 4, 4, [1, 5, 5], [1, 3, 3], [1, 1, 1], [0, 1, 1], [1; 3]),
            geom(2, 1, 3, 5, [1, 1, 11], [1, 1, 3], [1, 1, 2], [0, 0, 1], [1, 1, 2]),
            geom(1, 1, 2, 3, [5, 5, 5], [3, 3, 3], [2, 2, 2], [1, 1, 1], [1; 3]),
            geom(4, 1, 8, 6, [1, 4, 4], [1; 3], [1; 3], [0; 3], [1; 3]),
            geom(4, 2, 8, 6, [1, 4, 4], [1; 3], [1, 2, 2], [0; 3], [1; 3]),
            geom(8, 1, 20, 50, [1, 12, 12], [1, 5, 5], [1; 3], [0; 3], [1; 3]),
            // Unpadded, stride 1 (the plain row-copy path), non-square and grouped.
            geom(2, 1, 3, 4, [1, 7, 9], [1, 2, 4], [1; 3], [0; 3], [1; 3]),
            geom(2, 3, 6, 3, [1, 5, 6], [1, 3, 1], [1; 3], [0; 3], [1; 3]),
            // One image, columns split by channel across cores.
            geom(1, 1, 16, 8, [1, 40, 40], [1, 3, 3], [1; 3], [1, 1, 1], [1; 3]),
        ];
        for g in cases {
            let x = data(g.input_len(), 1);
            let w = data(g.weight_len(), 2);
            let want = naive(&g, &x, &w);
            let mut y = vec![f64::NAN; g.output_len()];
            conv_forward(&g, &x, &w, None, &mut y);
            for (a, b) in y.iter().zip(&want) {
                assert!((a - b).abs() < 1e-9, "{g:?}: {a} vs {b}");
            }
            // Bias.
            let bias = data(g.out_channels, 5);
            conv_forward(&g, &x, &w, Some(&bias), &mut y);
            let sp = g.out_spatial();
            for (i, (a, b)) in y.iter().zip(&want).enumerate() {
                let f = (i / sp) % g.out_channels;
                assert!((a - b - bias[f]).abs() < 1e-9);
            }
            // Adjoint identities: <conv(x, w), dy> = <x, dx(dy, w)> = <w, dw(dy, x)>.
            let dy = data(g.output_len(), 3);
            let lhs = dot(&want, &dy);
            let mut dx = vec![f64::NAN; g.input_len()];
            conv_backward_data(&g, &dy, &w, &mut dx);
            assert!((lhs - dot(&x, &dx)).abs() < 1e-6 * lhs.abs().max(1.0), "{g:?} data");
            let mut dw = vec![f64::NAN; g.weight_len()];
            conv_backward_weight(&g, &dy, &x, &mut dw);
            assert!((lhs - dot(&w, &dw)).abs() < 1e-6 * lhs.abs().max(1.0), "{g:?} weight");
        }
    }

    /// f32 convolutions against the f64 reference. Where the CPU has a native kernel, the
    /// undilated ones with outputs 14+ wide gather `b` from the padded image
    /// (`forward_gathered`): padded and not, strided, grouped, non-square kernels, 1-D, a
    /// batch, and single images whose products split by rows and by columns. The dilated
    /// and the narrow one take im2col. Each also with a channel map stored with the output
    /// (`conv_forward_mapped`, also in f64, where the map is a pass of its own).
    #[test]
    fn f32_forward_matches_naive() {
        let cases = [
            geom(2, 1, 3, 4, [1, 6, 16], [1, 3, 3], [1, 1, 1], [0, 1, 1], [1; 3]),
            geom(1, 2, 4, 6, [1, 5, 5], [1, 3, 3], [1, 2, 1], [0, 0, 2], [1, 2, 1]),
            geom(4, 1, 8, 6, [1, 16, 16], [1, 3, 3], [1, 1, 1], [0, 1, 1], [1; 3]),
            geom(2, 3, 6, 9, [1, 7, 16], [1, 2, 4], [1; 3], [0, 1, 2], [1; 3]),
            geom(2, 1, 3, 4, [1, 7, 18], [1, 2, 4], [1; 3], [0; 3], [1; 3]),
            geom(1, 1, 3, 4, [1, 6, 7], [1, 3, 3], [1; 3], [0, 1, 1], [1; 3]),
            geom(1, 1, 64, 160, [1, 14, 14], [1, 3, 3], [1; 3], [0, 1, 1], [1; 3]),
            geom(1, 1, 16, 40, [1, 40, 40], [1, 3, 3], [1; 3], [0, 1, 1], [1; 3]),
            // Strided: split into phase planes first (a 7×7 stem, a grouped one with
            // unequal strides, and kernels narrower than the stride, which reach only some
            // phases); a strided 1×1 takes im2col.
            geom(1, 1, 3, 8, [1, 40, 40], [1, 7, 7], [1, 2, 2], [0, 3, 3], [1; 3]),
            geom(1, 2, 4, 6, [1, 31, 33], [1, 3, 2], [1, 3, 2], [0, 1, 0], [1; 3]),
            geom(2, 1, 8, 6, [1, 30, 29], [1, 1, 3], [1, 2, 2], [0, 0, 1], [1; 3]),
            geom(1, 1, 4, 5, [1, 20, 50], [1, 2, 2], [1, 3, 3], [0; 3], [1; 3]),
            geom(2, 1, 8, 6, [1, 30, 29], [1; 3], [1, 2, 2], [0; 3], [1; 3]),
            // 1-D, strided and padded.
            geom(2, 1, 3, 4, [1, 1, 40], [1, 1, 5], [1, 1, 2], [0, 0, 2], [1; 3]),
            // No input channels: bias only (an empty product, no panic).
            geom(1, 1, 0, 4, [1, 6, 16], [1, 3, 3], [1; 3], [0, 1, 1], [1; 3]),
        ];
        for g in cases {
            let (x, w, bias) = (data(g.input_len(), 1), data(g.weight_len(), 2), data(g.out_channels, 5));
            let (scale, shift) = (data(g.out_channels, 6), data(g.out_channels, 7));
            let want = naive(&g, &x, &w);
            let abs = |v: &[f64]| v.iter().map(|v| v.abs()).collect::<Vec<f64>>();
            let sizes = winograd::applies(&g).then(|| naive(&g, &abs(&x), &abs(&w)));
            let f = |v: &[f64]| v.iter().map(|&v| v as f32).collect::<Vec<f32>>();
            // `map`: a channel map (with ReLU or not) stored with the output, in f32 and f64.
            // `sum`: a residual added by the map, before its ReLU.
            let residual = data(g.output_len(), 8);
            for (with_bias, map, with_sum) in [
                (false, None, false),
                (true, None, false),
                (false, Some(true), false),
                (true, Some(false), false),
                (true, Some(true), false),
                (true, Some(true), true),
                (false, Some(false), true),
            ] {
                let mut y = vec![f32::NAN; g.output_len()];
                let mut y64 = vec![f64::NAN; g.output_len()];
                let (x32, w32, bias32) = (f(&x), f(&w), with_bias.then(|| f(&bias)));
                let residual32 = f(&residual);
                match map {
                    None => conv_forward(&g, &x32, &w32, bias32.as_deref(), &mut y),
                    Some(relu) => {
                        let (scale32, shift32) = (f(&scale), f(&shift));
                        let sum32 = with_sum.then_some(&residual32[..]);
                        let map32 = RowAffine { scale: &scale32, shift: &shift32, sum: sum32, relu };
                        conv_forward_mapped(&g, &x32, &w32, None, bias32.as_deref(), &map32, &mut y);
                        let sum64 = with_sum.then_some(&residual[..]);
                        let map64 = RowAffine { scale: &scale, shift: &shift, sum: sum64, relu };
                        let bias64 = with_bias.then_some(&bias[..]);
                        conv_forward_mapped(&g, &x, &w, None, bias64, &map64, &mut y64);
                    }
                }
                let sp = g.out_spatial();
                for (i, (&a, &b)) in y.iter().zip(&want).enumerate() {
                    let ch = (i / sp) % g.out_channels;
                    let b = if with_bias { b + bias[ch] } else { b };
                    let r = if with_sum { residual[i] } else { 0.0 };
                    let b = match map {
                        None => b,
                        Some(relu) if relu => (b * scale[ch] + shift[ch] + r).max(0.0),
                        Some(_) => b * scale[ch] + shift[ch] + r,
                    };
                    // Winograd's error scales with the size of the terms, not of the sum.
                    let tol = match &sizes {
                        Some(size) => {
                            let size = size[i] + if with_bias { bias[ch].abs() } else { 0.0 };
                            let s = map.map_or(1.0, |_| scale[ch].abs());
                            winograd::ERROR_BOUND * size * s + 1e-6 * (b.abs() + r.abs())
                        }
                        None => 1e-4 * b.abs().max(1.0),
                    };
                    assert!((a as f64 - b).abs() <= tol, "{g:?} {map:?} sum={with_sum} at {i}: {a} vs {b}");
                    if map.is_some() {
                        let a = y64[i];
                        assert!(
                            (a - b).abs() <= 1e-9 * b.abs().max(1.0),
                            "f64 {g:?} {map:?} at {i}: {a} vs {b}"
                        );
                    }
                }
            }
        }
    }

    /// The shifted-plane path equals the general gather path, at paddings smaller than,
    /// equal to and larger than the kernel's half width.
    #[test]
    fn shifted_rows_match_gather() {
        for (h, w, kh, kw, ph, pw) in
            [(6, 7, 3, 3, 1, 1), (5, 4, 1, 3, 0, 1), (4, 5, 5, 5, 2, 2), (3, 4, 3, 3, 2, 1)]
        {
            let oh = h + 2 * ph - kh + 1;
            if w + 2 * pw - kw + 1 != w {
                continue;
            }
            let g = geom(1, 1, 2, 1, [1, h, w], [1, kh, kw], [1; 3], [0, ph, pw], [1; 3]);
            assert!(g.shifted_2d() && g.output[1] == oh, "{g:?}");
            let x = data(g.input_len(), 1);
            let (k, n) = (g.col_rows(), g.out_spatial());
            let (mut fast, mut slow) = (vec![f64::NAN; k * n], vec![f64::NAN; k * n]);
            im2col(&g, &x, &mut fast);
            for_each_row(&g, 2, |row, orow, at, off| {
                let dst = &mut slow[row * n + orow * w..][..w];
                match at {
                    Some(at) => gather_row(dst, &x[at..at + w], off, 1),
                    None => dst.fill(0.0),
                }
            });
            assert_eq!(fast, slow, "{g:?}");
        }
    }

    /// The subsampling path of strided 1×1s equals the general gather path, at strides 2
    /// (pairs) and 3, even and odd widths, unequal strides.
    #[test]
    fn subsampled_rows_match_gather() {
        for (h, w, sh, sw) in [(28, 28, 2, 2), (7, 7, 2, 2), (5, 9, 1, 2), (6, 8, 2, 3), (3, 1, 2, 2)] {
            let g = geom(1, 1, 3, 1, [1, h, w], [1; 3], [1, sh, sw], [0; 3], [1; 3]);
            assert!(g.subsampled_2d(), "{g:?}");
            let x = data(g.input_len(), 1);
            let (k, n, ow) = (g.col_rows(), g.out_spatial(), g.output[2]);
            let (mut fast, mut slow) = (vec![f64::NAN; k * n], vec![f64::NAN; k * n]);
            im2col(&g, &x, &mut fast);
            for_each_row(&g, 3, |row, orow, at, off| {
                let dst = &mut slow[row * n + orow * ow..][..ow];
                gather_row(dst, &x[at.unwrap()..][..w], off, sw);
            });
            assert_eq!(fast, slow, "{g:?}");
        }
    }

    #[test]
    fn rows_at_the_edges() {
        let mut d = [9.0; 5];
        gather_row(&mut d, &[1.0, 2.0, 3.0, 4.0], -1, 2);
        assert_eq!(d, [0.0, 2.0, 4.0, 0.0, 0.0]);
        gather_row(&mut d, &[1.0, 2.0, 3.0, 4.0], 2, 1);
        assert_eq!(d, [3.0, 4.0, 0.0, 0.0, 0.0]);
        gather_row(&mut d, &[1.0, 2.0], 7, 1);
        assert_eq!(d, [0.0; 5]);
        let mut x = [0.0; 4];
        scatter_row(&mut x, &[1.0, 1.0, 1.0, 1.0, 1.0], -1, 2);
        assert_eq!(x, [0.0, 1.0, 0.0, 1.0]);
    }
}
