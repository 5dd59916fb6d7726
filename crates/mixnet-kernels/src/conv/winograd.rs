//! Winograd's minimal filtering F(4×4, 3×3) for unit-step, undilated 3×3 convolutions in
//! f32 (every 3×3 of ResNet). Each 6×6 input tile and each 3×3 filter are carried to 36
//! transform points, where the convolution is 36 independent products
//! `M_ξ (tiles × F) = V_ξ (tiles × C) · U_ξ (C × F)`; each 4×4 output tile comes back from
//! its 36 points. That is 36 multiply-adds per 16 outputs and input channel instead of
//! 144, so the products do a quarter of the direct convolution's work (less where 4 does
//! not divide the output side: 14×14 computes 16×16).
//!
//! Transforms (Lavin and Gray, 2016; interpolation points 0, ±1, ±2, ∞):
//! `U = G g Gᵀ`, `V = Bᵀ d B`, `Y = Aᵀ (U ⊙ V) A`. The points' larger factors (up to 8 in
//! `Aᵀ`, 1/24 in `G`) cost accuracy: outputs differ from the direct product by about 2e-6
//! of the sum of their terms' magnitudes (the direct product's error is ~1e-7 of it), so
//! only shapes with many channels take this path (see [`applies`]), and
//! `MIXNET_CONV_WINOGRAD=0` turns it off.
//!
//! In the transform domain data is channel-last, so every transform is a vector loop over
//! 16 channels: the image is copied once into a zero-padded (rows, cols, C) buffer, the
//! products read `V` with channels along their depth, and the output transform maps each
//! channel (bias, BatchNorm's scale and shift, a residual, ReLU) before it stores its 4×4
//! tile back in the caller's channel-first layout.

use super::{with_scratch, ConvGeom};
use crate::gemm::{MatMul, RowAffine};
use crate::parallel;

/// Channels moved together by one vector step of the transforms.
const LANES: usize = 16;
type Lanes = [f32; LANES];

/// Output channels whose filter transform, products and output transform run together on
/// one core when the filters are transformed per call: 36 × C × 16 transformed filters
/// are 590 KB at C = 256, within Zen 4's 1 MB L2 (blocks of 32 ran the network 0-3%
/// slower, alternating). Filters made ahead come in larger blocks ([`prepared_block`]).
const BLOCK: usize = 16;

/// Fewest input and output channels for this path: the products are then deep and wide
/// enough for the packed kernel, and the golden tests' small convolutions stay direct.
/// Channel counts must also be whole vectors ([`LANES`]) and output ones whole blocks
/// ([`BLOCK`]), as every ResNet's are: the transforms then never handle a partial one.
const MIN_CHANNELS: usize = 32;

/// Most (input, output) channel pairs for this path: the transformed filters are 4x
/// the filters' size (36 points for 9 taps), and beyond 256×256 (9.4 MB) they no longer
/// stay in cache between their transform and the products. ResNet-50's 512×512 3×3 at
/// 7×7, batch 1, ran 1.4 -> 6.9 ms.
const MAX_FILTER_PAIRS: usize = 256 * 256;

/// Largest error of an output, relative to the sum of its terms' absolute values (the
/// scale of a product's rounding error), measured over the tests' shapes with room to
/// spare. The direct product's is about `C·9·2⁻²⁴` at worst and far less in practice.
#[cfg(test)]
pub(super) const ERROR_BOUND: f64 = 5e-6;

/// Tiles from which the products of one pass are worth their packing: small images are
/// taken several at a time.
const MIN_TILES: usize = 192;

/// Whether Winograd is allowed at all: `MIXNET_CONV_WINOGRAD=0` computes every
/// convolution directly (outputs then match MXNet's to the last few bits).
fn enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("MIXNET_CONV_WINOGRAD").map_or(true, |v| v.trim() != "0"))
}

/// Whether `g` takes this path (the caller checks that the element type is f32).
pub(super) fn applies(g: &ConvGeom) -> bool {
    filters_apply(g.out_channels, g.in_channels, g.kernel, g.groups)
        && g.stride == [1; 3]
        && g.dilate == [1; 3]
        && g.input[0] == 1
        && g.output[0] == 1
        && g.pad[0] == 0
        && g.output[1] >= 4
        && g.output[2] >= 4
}

/// The part of [`applies`] that depends on the filters alone: whether filters (F, C, kernel)
/// in `groups` groups are worth carrying to the transform domain ahead of time.
pub(super) fn filters_apply(f: usize, c: usize, kernel: [usize; 3], groups: usize) -> bool {
    enabled()
        && groups == 1
        && kernel == [1, 3, 3]
        && c >= MIN_CHANNELS
        && f >= MIN_CHANNELS
        && c.is_multiple_of(LANES)
        && f.is_multiple_of(BLOCK)
        && c * f <= MAX_FILTER_PAIRS
}

/// Output channels per block of filters made ahead ([`transform_all`]): the native
/// kernel's tile width (16 on AVX2, 32 on AVX-512) where it divides F. A block is a unit
/// of the product phase ([`forward`]): ResNet-50's 256×256 3×3s at 14×14 have too few
/// tiles to split by tiles, so narrow blocks are what lets their products be balanced
/// between the cores (with two blocks, one per core, a core slowed by a neighbour held up
/// the other for a fifth of the convolution; on the Zen 3 VM blocks of 16 ran the network
/// at a median 49.4 ms against 53.4 with blocks of 32, 8 of 11 paired runs).
fn prepared_block(f: usize) -> usize {
    let width = crate::gemm::native_f32_columns().max(LANES);
    if f.is_multiple_of(width) {
        width
    } else {
        LANES
    }
}

/// Elements of F filters over C channels in the transform domain, as [`transform_all`]
/// lays them out: per block of [`prepared_block`] filters, 36 planes of `C × block`
/// (`U_ξ[c][k]`, each the `b` of one product), [`plane_stride`] apart.
pub(super) fn filters_len(f: usize, c: usize) -> usize {
    let bs = prepared_block(f);
    f / bs * 36 * plane_stride(c * bs)
}

/// All of `w`'s (F, C, 3, 3) filters in the transform domain, into `out`
/// ([`filters_len`]): done once per weight version by an inference graph, where
/// [`forward`] would redo it per call. (One thread: it runs once.)
pub(super) fn transform_all(w: &[f32], c: usize, f: usize, out: &mut [f32]) {
    assert_eq!(out.len(), filters_len(f, c), "winograd: filters of {f} x {c}");
    let bs = prepared_block(f);
    for (b, u) in out.chunks_exact_mut(36 * plane_stride(c * bs)).enumerate() {
        for k0 in (0..bs).step_by(LANES) {
            let layout = FilterLayout { stride: plane_stride(c * bs), ld: bs, col0: k0 };
            filters_wide(&w[(b * bs + k0) * c * 9..][..LANES * c * 9], c, u, layout);
        }
    }
}

/// The per-channel map after the product: `y·scale + shift`, then ReLU.
#[derive(Clone, Copy)]
struct ChannelMap<'a> {
    scale: Option<&'a [f32]>,
    shift: Option<&'a [f32]>,
    relu: bool,
}

impl ChannelMap<'_> {
    /// The map of channels `k0..`.
    fn part(&self, k0: usize) -> ChannelMap<'_> {
        ChannelMap {
            scale: self.scale.map(|s| &s[k0..]),
            shift: self.shift.map(|h| &h[k0..]),
            relu: self.relu,
        }
    }

    /// Channels `k0..k0 + LANES` of the map, as (scale, shift) vectors.
    fn lanes(&self, k0: usize) -> (Lanes, Lanes) {
        let s = self.scale.map_or([1.0; LANES], |s| lanes(&s[k0..]));
        let h = self.shift.map_or([0.0; LANES], |h| lanes(&h[k0..]));
        (s, h)
    }
}

/// `fn $name(args) { $body }` that runs `$body` compiled for AVX-512, else AVX2, when the
/// CPU has it (the workspace targets baseline x86-64: 4-lane SSE). `$body` calls an
/// `#[inline(always)]` transform, so its loops are compiled inside each copy; a closure
/// handed to `fastmath::wide` was not always inlined, and its transforms then ran in SSE.
macro_rules! widest {
    ($name:ident($($a:ident: $t:ty),*) => $body:expr) => {
        fn $name($($a: $t),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                unsafe fn avx512($($a: $t),*) {
                    $body
                }
                #[target_feature(enable = "avx2")]
                unsafe fn avx2($($a: $t),*) {
                    $body
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512F, all that `avx512` is compiled for.
                    return unsafe { avx512($($a),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU has AVX2, all that `avx2` is compiled for.
                    return unsafe { avx2($($a),*) };
                }
            }
            $body
        }
    };
    // An `unsafe fn` whose body needs its caller's promise: the copies are the safe form's,
    // nested inside it, so nothing but this function can reach them.
    (unsafe $name:ident($($a:ident: $t:ty),*) => $body:expr) => {
        unsafe fn $name($($a: $t),*) {
            // SAFETY: only called from here, under this function's caller's promise.
            widest!(promised($($a: $t),*) => unsafe { $body });
            promised($($a),*)
        }
    };
}

widest!(filters_wide(w: &[f32], c: usize, u: &mut [f32], layout: FilterLayout) => transform_filters(w, c, u, layout));
widest!(input_wide(shape: &Tiles, p: &[f32], c: usize, first: usize, planes: &mut [&mut [f32]]) =>
    shape.input_part(p, c, first, planes));
widest!(unsafe output_wide(shape: &Tiles, m: &[f32], width: usize, map: ChannelMap<'_>, out: &Outputs<'_>, at: usize, rows: std::ops::Range<usize>) =>
    shape.transform_output(m, width, map, out, at, rows));

/// `y = post(conv(x, w) + bias)` over the whole batch, for a geometry where [`applies`]
/// holds, with `w` already transformed when `filters` ([`transform_all`]) is given.
/// Splits every pass across the cores itself.
pub(super) fn forward(
    g: &ConvGeom,
    x: &[f32],
    w: &[f32],
    filters: Option<&[f32]>,
    bias: Option<&[f32]>,
    post: Option<&RowAffine<'_, f32>>,
    y: &mut [f32],
) {
    let (c, f) = (g.in_channels, g.out_channels);
    // (y + b)·s + h = y·s + (b·s + h)
    let folded: Option<Vec<f32>> = match (bias, post) {
        (Some(b), Some(p)) => Some((0..f).map(|k| b[k] * p.scale[k] + p.shift[k]).collect()),
        _ => None,
    };
    let map = ChannelMap {
        scale: post.map(|p| p.scale),
        shift: folded.as_deref().or(post.map(|p| p.shift)).or(bias),
        relu: post.is_some_and(|p| p.relu),
    };
    let sum = post.and_then(|p| p.sum);
    let shape = Tiles::of(g);
    let per_image = shape.th * shape.tw;
    let group = MIN_TILES.div_ceil(per_image).clamp(1, g.batch);
    let (sx, sy) = (c * g.in_spatial(), f * g.out_spatial());
    let padded = shape.hp * shape.wp * c;
    let tmax = group * per_image;
    let plane = g.out_spatial();
    // Units of the product phase: a block of `bs` output channels over a chunk of tile
    // rows, claimed one by one (see `parallel::claim`); each runner keeps its own
    // transformed filters (when made per call) and products in its scratch.
    let bs = if filters.is_some() { prepared_block(f) } else { BLOCK };
    let blocks = f / bs;
    let runners = parallel::threads();
    let ustride = plane_stride(c * bs);
    let most_rows = (group * shape.th).div_ceil(chunks(blocks, group * shape.th, shape.tw));
    let own = 36 * (ustride + plane_stride(bs * most_rows * shape.tw));
    let lens = [group * padded, 36 * plane_stride(tmax * c), runners * own];
    with_scratch(lens.iter().sum(), |buf: &mut [f32]| {
        let (p, rest) = buf.split_at_mut(lens[0]);
        let (v, own_bufs) = rest.split_at_mut(lens[1]);
        // Each runner's scratch and the block whose filters it holds.
        let mut state: Vec<(&mut [f32], Option<usize>)> =
            own_bufs.chunks_mut(own).map(|b| (b, None)).collect();
        for first in (0..g.batch).step_by(group) {
            let imgs = group.min(g.batch - first);
            let t = imgs * per_image;
            let (p, v) = (&mut p[..imgs * padded], &mut v[..36 * plane_stride(t * c)]);
            shape.pad_channels_last(g, &x[first * sx..][..imgs * sx], p);
            shape.transform_input(p, c, v);
            let vstride = plane_stride(t * c);
            let rows = imgs * shape.th;
            let parts = chunks(blocks, rows, shape.tw);
            let sums = sum.map(|s| &s[first * sy..][..imgs * sy]);
            let out = Outputs::new(&mut y[first * sy..][..imgs * sy], sums, f, plane);
            let v = &*v;
            parallel::claim_with(blocks * parts, &mut state, &|(own, held), unit| {
                // With filters made ahead, units go chunk by chunk (all blocks of the
                // first tile rows first): the caller, claiming from the front, then
                // multiplies the tile rows whose input it transformed, and writes the
                // output rows the next layer's split hands it, and the helper likewise
                // from the back. Filters made per call go block by block, so that each
                // runner transforms a block's filters once.
                let (b, part) = if filters.is_some() {
                    (unit % blocks, unit / blocks)
                } else {
                    (unit / parts, unit % parts)
                };
                let (r0, r1) = (part * rows / parts, (part + 1) * rows / parts);
                let (t0, mt) = (r0 * shape.tw, (r1 - r0) * shape.tw);
                let k0 = b * bs;
                let (u, m) = own.split_at_mut(36 * ustride);
                let u = match filters {
                    Some(all) => &all[b * 36 * ustride..][..36 * ustride],
                    None => {
                        if *held != Some(b) {
                            filters_wide(&w[k0 * c * 9..][..bs * c * 9], c, u, FilterLayout::block(c));
                            *held = Some(b);
                        }
                        &*u
                    }
                };
                let mstride = plane_stride(mt * bs);
                let m = &mut m[..36 * mstride];
                let product = MatMul { m: mt, n: bs, k: c, trans_a: false, trans_b: false };
                for (xi, m) in m.chunks_exact_mut(mstride).enumerate() {
                    let v = &v[xi * vstride + t0 * c..][..mt * c];
                    product.run_with(v, &u[xi * ustride..][..c * bs], &mut m[..mt * bs], false, false);
                }
                // SAFETY: units are claimed once each and cover disjoint (channel block,
                // tile rows) pairs, so no two write the same outputs.
                unsafe { output_wide(&shape, m, bs, map.part(k0), &out, k0, r0..r1) };
            });
        }
    });
}

/// Chunks of tile rows per block in the product phase: enough units for each core to
/// take several (a core slowed by a neighbour then takes fewer), each chunk at least
/// [`MIN_CHUNK_TILES`] tiles so that its products stay worth their packing.
fn chunks(blocks: usize, rows: usize, tw: usize) -> usize {
    let want = (UNITS_PER_CORE * parallel::threads()).div_ceil(blocks);
    want.min(rows * tw / MIN_CHUNK_TILES).clamp(1, rows)
}

/// Units per core that each phase (padding, input transform, products) is cut into, so
/// that a core a neighbour slows takes fewer of them instead of holding up the other.
const UNITS_PER_CORE: usize = 4;

/// Fewest tiles in a chunk (rows of each product) when tiles are split.
const MIN_CHUNK_TILES: usize = 24;

/// The convolution's output for one pass, written by units of the product phase, each to
/// its own channels and tile rows (which, channel-first, are not one contiguous slice),
/// and the residual to add to it, laid out alike.
struct Outputs<'a> {
    ptr: *mut f32,
    len: usize,
    sum: Option<&'a [f32]>,
    /// Output channels and the size of one channel's plane.
    f: usize,
    plane: usize,
    _y: std::marker::PhantomData<&'a mut [f32]>,
}

// SAFETY: `Outputs` holds a pointer into a buffer borrowed mutably for its lifetime
// (`new`); the writers (`row`) promise disjoint ranges.
unsafe impl Sync for Outputs<'_> {}

impl<'a> Outputs<'a> {
    fn new(y: &'a mut [f32], sum: Option<&'a [f32]>, f: usize, plane: usize) -> Outputs<'a> {
        assert!(sum.is_none_or(|s| s.len() == y.len()), "winograd: a residual shaped as the output");
        Outputs { ptr: y.as_mut_ptr(), len: y.len(), sum, f, plane, _y: std::marker::PhantomData }
    }

    /// `len` outputs of image `img`, channel `k`, from position `pos` of its plane.
    ///
    /// # Safety
    /// No other reference to these outputs may exist while the slice lives, and the
    /// buffer given to [`Outputs::new`] must outlive it.
    #[inline(always)]
    #[allow(clippy::mut_from_ref)]
    unsafe fn row(&self, img: usize, k: usize, pos: usize, len: usize) -> &mut [f32] {
        let at = (img * self.f + k) * self.plane + pos;
        assert!(pos + len <= self.plane && at + len <= self.len, "winograd: output row out of bounds");
        // SAFETY: in bounds (asserted); exclusive by the caller's promise.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(at), len) }
    }
}

/// Tile grid of one image: `th × tw` output tiles of 4×4 over a zero-padded input of
/// `hp × wp` (enough for every tile's 6×6 window).
#[derive(Clone, Copy)]
struct Tiles {
    th: usize,
    tw: usize,
    hp: usize,
    wp: usize,
    ih: usize,
    iw: usize,
    oh: usize,
    ow: usize,
    ph: usize,
    pw: usize,
}

impl Tiles {
    fn of(g: &ConvGeom) -> Tiles {
        let ([_, ih, iw], [_, oh, ow], [_, ph, pw]) = (g.input, g.output, g.pad);
        let (th, tw) = (oh.div_ceil(4), ow.div_ceil(4));
        Tiles { th, tw, hp: 4 * th + 2, wp: 4 * tw + 2, ih, iw, oh, ow, ph, pw }
    }

    /// `x` (images, C, ih, iw) into `p` (images, hp, wp, C), padded with zeros.
    fn pad_channels_last(&self, g: &ConvGeom, x: &[f32], p: &mut [f32]) {
        let c = g.in_channels;
        let row = self.wp * c;
        let fill = |r: usize, dst: &mut [f32]| {
            let (img, h) = (r / self.hp, (r % self.hp).wrapping_sub(self.ph));
            if h >= self.ih {
                return dst.fill(0.0);
            }
            let left = self.pw.min(self.wp);
            let right = (self.pw + self.iw).min(self.wp);
            dst[..left * c].fill(0.0);
            dst[right * c..].fill(0.0);
            let x = &x[img * c * self.ih * self.iw..][..c * self.ih * self.iw];
            for (ch, plane) in x.chunks_exact(self.ih * self.iw).enumerate() {
                let src = &plane[h * self.iw..][..right - left];
                for (j, &v) in src.iter().enumerate() {
                    dst[(left + j) * c + ch] = v;
                }
            }
        };
        // Parts claimed one by one, several per core (see `parallel::claim`).
        let rows = p.len() / row;
        let per = rows.div_ceil(UNITS_PER_CORE * parallel::threads()).max(1);
        let parts = p.chunks_mut(per * row).enumerate();
        parallel::each(parts, &|(i, part): (usize, &mut [f32])| {
            for (j, dst) in part.chunks_exact_mut(row).enumerate() {
                fill(i * per + j, dst);
            }
        });
    }

    /// `V_ξ[t][c]` for every tile `t` of the padded images `p`: `Bᵀ d B` of its 6×6 window.
    fn transform_input(&self, p: &[f32], c: usize, v: &mut [f32]) {
        let tiles = (v.len() / 36 - LANES) / c;
        let parts = cut(v, 36, plane_stride(tiles * c), c, &bounds(tiles));
        let run = |(first, mut planes): (usize, Vec<&mut [f32]>)| input_wide(self, p, c, first, &mut planes);
        parallel::each(parts, &run);
    }

    /// [`Tiles::transform_input`] of tiles `first..` into `planes` (their rows of each
    /// `V_ξ`).
    #[inline(always)]
    fn input_part(&self, p: &[f32], c: usize, first: usize, planes: &mut [&mut [f32]]) {
        let per_image = self.th * self.tw;
        {
            let count = planes[0].len() / c;
            let (mut d, mut tmp, mut s) = ([[0.0; LANES]; 36], [[0.0; LANES]; 36], [[0.0; LANES]; 36]);
            for t in 0..count {
                let tile = first + t;
                let (img, ty, tx) = (tile / per_image, tile % per_image / self.tw, tile % self.tw);
                let corner = (img * self.hp + 4 * ty) * self.wp + 4 * tx;
                for c0 in (0..c).step_by(LANES) {
                    for (i, d) in d.iter_mut().enumerate() {
                        *d = lanes(&p[(corner + (i / 6) * self.wp + i % 6) * c + c0..]);
                    }
                    input_2d(&d, &mut tmp, &mut s);
                    for (plane, s) in planes.iter_mut().zip(&s) {
                        plane[t * c + c0..][..LANES].copy_from_slice(s);
                    }
                }
            }
        }
    }

    /// The output tiles of one block of `width` channels over the pass's tile rows
    /// `rows` (counted across its images) from their products `m` (`M_ξ[t][k]`, tiles
    /// from the first row's): `Aᵀ M A`, mapped per channel (and `out`'s residual
    /// added), stored into channels `at..` of `out`. Writes only those channels' output
    /// rows of those tile rows.
    ///
    /// # Safety
    /// Nothing else may read or write those outputs while this runs.
    #[inline(always)]
    unsafe fn transform_output(
        &self,
        m: &[f32],
        width: usize,
        map: ChannelMap<'_>,
        out: &Outputs<'_>,
        at: usize,
        rows: std::ops::Range<usize>,
    ) {
        // The products' planes, [`plane_stride`] apart.
        let stride = m.len() / 36;
        let plane = self.oh * self.ow;
        // With a residual to add, the ReLU comes after it, value by value as it is stored.
        let relu_here = map.relu && out.sum.is_none();
        #[cfg(target_arch = "x86_64")]
        let stores_512 = std::arch::is_x86_feature_detected!("avx512f");
        let (mut s, mut tmp, mut o) = ([[0.0; LANES]; 36], [[0.0; LANES]; 24], [[0.0; LANES]; 16]);
        for k0 in (0..width).step_by(LANES) {
            let (scale, shift) = map.lanes(k0);
            for r in rows.clone() {
                let (img, ty) = (r / self.th, r % self.th);
                let out_rows = (self.oh - 4 * ty).min(4);
                for tx in 0..self.tw {
                    let t = (r - rows.start) * self.tw + tx;
                    for (xi, s) in s.iter_mut().enumerate() {
                        *s = lanes(&m[xi * stride + t * width + k0..]);
                    }
                    output_2d(&s, &mut tmp, &mut o);
                    for o in o.iter_mut() {
                        for l in 0..LANES {
                            let v = o[l] * scale[l] + shift[l];
                            o[l] = if relu_here { crate::unary::relu(v) } else { v };
                        }
                    }
                    let cols = (self.ow - 4 * tx).min(4);
                    #[cfg(target_arch = "x86_64")]
                    if stores_512 {
                        let pos = 4 * ty * self.ow + 4 * tx;
                        // SAFETY: the CPU has AVX-512F (checked above); these outputs are
                        // this call's alone (its caller promises it).
                        unsafe {
                            store_tile_512(&o, out, img, at + k0, pos, self.ow, out_rows, cols, map.relu)
                        };
                        continue;
                    }
                    // Channel by channel: each channel's 4×4 tile made contiguous (a
                    // 16×16 transpose, gathers on AVX-512) and stored row by row.
                    let mut tiles = [[0.0f32; 16]; LANES];
                    for (p, o) in o.iter().enumerate() {
                        for (tile, &v) in tiles.iter_mut().zip(o) {
                            tile[p] = v;
                        }
                    }
                    for (l, tile) in tiles.iter().enumerate() {
                        let k = at + k0 + l;
                        for (a, src) in tile.chunks_exact(4).take(out_rows).enumerate() {
                            let pos = (4 * ty + a) * self.ow + 4 * tx;
                            // SAFETY: these outputs are this call's alone (its caller
                            // promises it).
                            let row = unsafe { out.row(img, k, pos, cols) };
                            match out.sum {
                                None => store_row(row, src, cols),
                                Some(sum) => {
                                    let sum = &sum[(img * out.f + k) * plane + pos..][..cols];
                                    for ((dst, &v), &r) in row.iter_mut().zip(src).zip(sum) {
                                        let v = v + r;
                                        *dst = if map.relu { crate::unary::relu(v) } else { v };
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The 4×4 output tiles `o` (`o[p][l]`: position p of channel `k + l`) of 16 channels
/// stored into `out` at `pos` of each channel's plane (`rows` × `cols` of them, output
/// rows `ow` apart), with `out`'s residual added and then, with one, the ReLU (`relu`;
/// without a residual it was applied already). Through registers: one 16×16 transpose
/// and a masked store per tile row. The portable form (an array transpose, which LLVM
/// makes 16 gathers and a memset, and 64 scalar-sized copies) was half of the output
/// transform's time at 56×56.
///
/// # Safety
/// The CPU has AVX-512F; nothing else reads or writes these outputs meanwhile.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn store_tile_512(
    o: &[Lanes; 16],
    out: &Outputs<'_>,
    img: usize,
    k: usize,
    pos: usize,
    ow: usize,
    rows: usize,
    cols: usize,
    relu: bool,
) {
    use std::arch::x86_64::*;
    let mut v: [__m512; 16] = std::array::from_fn(|p| _mm512_loadu_ps(o[p].as_ptr()));
    // SAFETY: AVX-512F (the caller's promise).
    unsafe { crate::gemm::transpose16(&mut v) };
    // v[l]: channel k + l's tile, row-major; tile row a is lanes 4a..4a + cols.
    let row_mask = |a: usize| (((1u32 << cols) - 1) << (4 * a)) as __mmask16;
    let plane = out.plane;
    for (l, &tile) in v.iter().enumerate() {
        let mut t = tile;
        if let Some(sum) = out.sum {
            let mut r = _mm512_setzero_ps();
            for a in 0..rows {
                let src = &sum[(img * out.f + k + l) * plane + pos + a * ow..][..cols];
                // SAFETY: the mask's lanes read exactly `src` (masked-off lanes are never
                // accessed, so the pointer before it is formed with wrapping arithmetic).
                r = unsafe { _mm512_mask_loadu_ps(r, row_mask(a), src.as_ptr().wrapping_sub(4 * a)) };
            }
            t = _mm512_add_ps(t, r);
            if relu {
                t = crate::gemm::relu_512(t);
            }
        }
        for a in 0..rows {
            // SAFETY: these outputs are this call's alone (the caller's promise).
            let dst = unsafe { out.row(img, k + l, pos + a * ow, cols) };
            // SAFETY: the mask's lanes write exactly `dst`, as for the loads above.
            unsafe { _mm512_mask_storeu_ps(dst.as_mut_ptr().wrapping_sub(4 * a), row_mask(a), t) };
        }
    }
}

/// `U_ξ[c][k]` of one block of [`BLOCK`] filters `w` (BLOCK, C, 3, 3): `G g Gᵀ` of each
/// 3×3, into `u` (36, C, BLOCK). Done per block just before its products, so that `u`
/// stays in the core's cache: all of ResNet-50's at once (9.4 MB for a 256×256) went to
/// memory and back, and writing it took 16% of the network's time.
#[inline(always)]
fn transform_filters(w: &[f32], c: usize, u: &mut [f32], layout: FilterLayout) {
    let nk = w.len() / (c * 9);
    let (mut g, mut tmp, mut s) = ([[0.0; LANES]; 9], [[0.0; LANES]; 18], [[0.0; LANES]; 36]);
    for k0 in (0..nk).step_by(LANES) {
        // Each of the LANES filters is read front to back.
        let rows: [&[f32]; LANES] = std::array::from_fn(|l| &w[(k0 + l) * c * 9..][..c * 9]);
        for ch in 0..c {
            for (l, row) in rows.iter().enumerate() {
                let taps: &[f32; 9] = row[ch * 9..][..9].try_into().expect("nine taps");
                for (g, &tap) in g.iter_mut().zip(taps) {
                    g[l] = tap;
                }
            }
            filter_2d(&g, &mut tmp, &mut s);
            for (plane, s) in u.chunks_exact_mut(layout.stride).zip(&s) {
                plane[ch * layout.ld + layout.col0 + k0..][..LANES].copy_from_slice(s);
            }
        }
    }
}

/// Where [`transform_filters`] writes: point ξ of channel c, filter k (counted from the
/// first it is given) at `ξ·stride + c·ld + col0 + k`.
#[derive(Clone, Copy)]
struct FilterLayout {
    stride: usize,
    ld: usize,
    col0: usize,
}

impl FilterLayout {
    /// One block of [`BLOCK`] filters, its planes [`plane_stride`] apart.
    fn block(c: usize) -> FilterLayout {
        FilterLayout { stride: plane_stride(c * BLOCK), ld: BLOCK, col0: 0 }
    }
}

/// Elements from one transform plane to the next for planes of `len`: one cache line more
/// than `len`. The transforms write (or read) one vector in each of 36 planes in turn;
/// planes a power of two apart (16 KB for ResNet's 256-channel blocks) share the same
/// cache sets, and those 36 stores evicted each other.
fn plane_stride(len: usize) -> usize {
    len + LANES
}

/// The first `cols` (1 to 4) values of `src` into `dst`, as fixed-size copies (a copy of
/// a variable length is a `memcpy` call).
#[inline(always)]
fn store_row(dst: &mut [f32], src: &[f32], cols: usize) {
    match cols {
        4 => dst[..4].copy_from_slice(&src[..4]),
        3 => dst[..3].copy_from_slice(&src[..3]),
        2 => dst[..2].copy_from_slice(&src[..2]),
        _ => dst[0] = src[0],
    }
}

/// The first [`LANES`] values of `src`.
#[inline(always)]
fn lanes(src: &[f32]) -> Lanes {
    src[..LANES].try_into().expect("a whole vector")
}

/// `Bᵀ` on the six points `x[at + i·step]`, into `out[to + i·ostep]`. (The transforms
/// write into arrays they are given: a large array returned by value is moved with a
/// `memcpy` call, which cost more than the arithmetic.)
#[inline(always)]
fn input_1d(x: &[Lanes], at: usize, step: usize, out: &mut [Lanes], to: usize, ostep: usize) {
    for l in 0..LANES {
        let d = |i: usize| x[at + i * step][l];
        let (d0, d1, d2, d3, d4, d5) = (d(0), d(1), d(2), d(3), d(4), d(5));
        out[to][l] = 4.0 * d0 - 5.0 * d2 + d4;
        out[to + ostep][l] = -4.0 * (d1 + d2) + (d3 + d4);
        out[to + 2 * ostep][l] = 4.0 * (d1 - d2) + (d4 - d3);
        out[to + 3 * ostep][l] = 2.0 * (d3 - d1) + (d4 - d2);
        out[to + 4 * ostep][l] = 2.0 * (d1 - d3) + (d4 - d2);
        out[to + 5 * ostep][l] = 4.0 * d1 - 5.0 * d3 + d5;
    }
}

/// `Aᵀ` on six transform points, into four outputs (see [`input_1d`]).
#[inline(always)]
fn output_1d(x: &[Lanes], at: usize, step: usize, out: &mut [Lanes], to: usize, ostep: usize) {
    for l in 0..LANES {
        let m = |i: usize| x[at + i * step][l];
        let (s12, d12, s34, d34) = (m(1) + m(2), m(1) - m(2), m(3) + m(4), m(3) - m(4));
        out[to][l] = m(0) + s12 + s34;
        out[to + ostep][l] = d12 + 2.0 * d34;
        out[to + 2 * ostep][l] = s12 + 4.0 * s34;
        out[to + 3 * ostep][l] = d12 + 8.0 * d34 + m(5);
    }
}

/// `G` on three filter taps, into six points (see [`input_1d`]).
#[inline(always)]
fn filter_1d(x: &[Lanes], at: usize, step: usize, out: &mut [Lanes], to: usize, ostep: usize) {
    for l in 0..LANES {
        let (g0, g1, g2) = (x[at][l], x[at + step][l], x[at + 2 * step][l]);
        let even = g0 + g2;
        out[to][l] = g0 * (1.0 / 4.0);
        out[to + ostep][l] = (even + g1) * (-1.0 / 6.0);
        out[to + 2 * ostep][l] = (even - g1) * (-1.0 / 6.0);
        out[to + 3 * ostep][l] = g0 * (1.0 / 24.0) + g1 * (1.0 / 12.0) + g2 * (1.0 / 6.0);
        out[to + 4 * ostep][l] = g0 * (1.0 / 24.0) - g1 * (1.0 / 12.0) + g2 * (1.0 / 6.0);
        out[to + 5 * ostep][l] = g2;
    }
}

/// `Bᵀ d B` of a 6×6 input tile (row-major) into `out`: down each column, then along
/// each row.
#[inline(always)]
fn input_2d(d: &[Lanes; 36], tmp: &mut [Lanes; 36], out: &mut [Lanes; 36]) {
    for j in 0..6 {
        input_1d(d, j, 6, tmp, j, 6);
    }
    for i in 0..6 {
        input_1d(tmp, 6 * i, 1, out, 6 * i, 1);
    }
}

/// `Aᵀ m A` of a tile's 36 transform points (row-major) into its 4×4 outputs.
#[inline(always)]
fn output_2d(m: &[Lanes; 36], tmp: &mut [Lanes; 24], out: &mut [Lanes; 16]) {
    for j in 0..6 {
        output_1d(m, j, 6, tmp, j, 6);
    }
    for i in 0..4 {
        output_1d(tmp, 6 * i, 1, out, 4 * i, 1);
    }
}

/// `G g Gᵀ` of a 3×3 filter (row-major) into its 36 transform points.
#[inline(always)]
fn filter_2d(g: &[Lanes; 9], tmp: &mut [Lanes; 18], out: &mut [Lanes; 36]) {
    for j in 0..3 {
        filter_1d(g, j, 3, tmp, j, 3);
    }
    for i in 0..6 {
        filter_1d(tmp, 3 * i, 1, out, 6 * i, 1);
    }
}

/// Split points of `n` rows into parts claimed one by one, several per core.
fn bounds(n: usize) -> Bounds {
    let parts = (UNITS_PER_CORE * parallel::threads()).clamp(1, n.max(1));
    Bounds((0..=parts).map(|p| p * n / parts).collect())
}

/// Row split points, ascending from 0 to the row count.
struct Bounds(Vec<usize>);

/// `buf` as `blocks` blocks `stride` apart, each rows of `width` (and perhaps padding at
/// its end), every block cut at the same row bounds: one list of `blocks` slices per
/// part, with the part's first row. Lets each thread write its rows of every block.
fn cut<'a>(
    buf: &'a mut [f32],
    blocks: usize,
    stride: usize,
    width: usize,
    bounds: &Bounds,
) -> Vec<(usize, Vec<&'a mut [f32]>)> {
    let b = &bounds.0;
    let mut parts: Vec<(usize, Vec<&mut [f32]>)> =
        b.windows(2).map(|w| (w[0], Vec::with_capacity(blocks))).collect();
    for block in buf.chunks_exact_mut(stride).take(blocks) {
        let mut rest = block;
        for (part, w) in parts.iter_mut().zip(b.windows(2)) {
            let (mine, tail) = rest.split_at_mut((w[1] - w[0]) * width);
            part.1.push(mine);
            rest = tail;
        }
    }
    parts.retain(|p| p.1.first().is_some_and(|s| !s.is_empty()));
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geom(batch: usize, c: usize, f: usize, h: usize, w: usize, pad: usize) -> ConvGeom {
        ConvGeom {
            batch,
            groups: 1,
            in_channels: c,
            out_channels: f,
            input: [1, h, w],
            output: [1, h + 2 * pad - 2, w + 2 * pad - 2],
            kernel: [1, 3, 3],
            stride: [1; 3],
            pad: [0, pad, pad],
            dilate: [1; 3],
        }
    }

    /// Direct 3×3 convolution in f64, and the sum of the absolute values of each output's
    /// terms (what a rounding error of the products scales with).
    fn direct(g: &ConvGeom, x: &[f32], w: &[f32], bias: &[f32]) -> (Vec<f64>, Vec<f64>) {
        let ([_, ih, iw], [_, oh, ow], [_, ph, pw]) = (g.input, g.output, g.pad);
        let (c, f) = (g.in_channels, g.out_channels);
        let (mut y, mut size) = (vec![0.0; g.output_len()], vec![0.0; g.output_len()]);
        for n in 0..g.batch {
            for k in 0..f {
                for yo in 0..oh {
                    for xo in 0..ow {
                        let (mut s, mut a) = (bias[k] as f64, bias[k].abs() as f64);
                        for ch in 0..c {
                            for (i, j) in (0..9).map(|t| (t / 3, t % 3)) {
                                let (yi, xi) = ((yo + i).wrapping_sub(ph), (xo + j).wrapping_sub(pw));
                                if yi < ih && xi < iw {
                                    let t = x[((n * c + ch) * ih + yi) * iw + xi] as f64
                                        * w[((k * c + ch) * 3 + i) * 3 + j] as f64;
                                    s += t;
                                    a += t.abs();
                                }
                            }
                        }
                        let at = ((n * f + k) * oh + yo) * ow + xo;
                        (y[at], size[at]) = (s, a);
                    }
                }
            }
        }
        (y, size)
    }

    /// Largest error of `got` against `want`, relative to the size of each output's terms.
    fn worst(got: &[f32], want: &[f64], size: &[f64]) -> f64 {
        got.iter()
            .zip(want)
            .zip(size)
            .map(|((&g, &w), &s)| (g as f64 - w).abs() / s.max(1e-30))
            .fold(0.0, f64::max)
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(12345);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn matches_the_direct_convolution() {
        // Sides that 4 divides and not, batches that fill one pass and several, more
        // input than output channels and fewer, and pads 0 to 2.
        for &(n, c, f, h, w, pad) in &[
            (1, 32, 32, 8, 8, 1),
            (1, 48, 64, 14, 14, 1),
            (2, 32, 96, 7, 9, 1),
            (3, 32, 64, 10, 6, 0),
            (9, 32, 64, 14, 14, 1),
            (1, 64, 32, 9, 11, 2),
            // One image split into four chunks of tile rows of unequal size.
            (1, 32, 32, 54, 54, 1),
        ] {
            let g = geom(n, c, f, h, w, pad);
            assert!(applies(&g), "{g:?}");
            let (x, wt, bias) = (values(g.input_len(), 1), values(g.weight_len(), 2), values(f, 3));
            let (want, size) = direct(&g, &x, &wt, &bias);
            let mut y = vec![f32::NAN; g.output_len()];
            forward(&g, &x, &wt, None, Some(&bias), None, &mut y);
            let e = worst(&y, &want, &size);
            assert!(e <= ERROR_BOUND, "{g:?}: error {e:e} of the terms' size");
        }
    }

    /// Filters transformed ahead of time give exactly what the per-call transform does.
    #[test]
    fn takes_filters_transformed_ahead() {
        // Two small images in one pass; one image whose tile rows are split, with a
        // residual and ReLU.
        for (g, with_post) in [(geom(2, 48, 96, 10, 10, 1), false), (geom(1, 32, 64, 28, 28, 1), true)] {
            let (c, f) = (g.in_channels, g.out_channels);
            let (x, wt, bias) = (values(g.input_len(), 9), values(g.weight_len(), 10), values(f, 11));
            let (scale, shift, residual) = (values(f, 12), values(f, 13), values(g.output_len(), 14));
            let post = RowAffine { scale: &scale, shift: &shift, sum: Some(&residual), relu: true };
            let post = with_post.then_some(&post);
            let mut filters = vec![0.0; filters_len(f, c)];
            transform_all(&wt, c, f, &mut filters);
            let (mut a, mut b) = (vec![0.0; g.output_len()], vec![1.0; g.output_len()]);
            forward(&g, &x, &wt, None, Some(&bias), post, &mut a);
            forward(&g, &x, &wt, Some(&filters), Some(&bias), post, &mut b);
            assert_eq!(a, b, "{g:?}");
        }
    }

    #[test]
    fn applies_the_channel_map() {
        // A batch of 3 in two passes (2 images of 100 tiles, then 1), with and without a
        // residual to add.
        let g = geom(3, 32, 64, 40, 40, 1);
        assert_eq!(MIN_TILES.div_ceil(100), 2);
        let (x, wt, bias) = (values(g.input_len(), 4), values(g.weight_len(), 5), values(64, 6));
        let (scale, shift, residual) = (values(64, 7), values(64, 8), values(g.output_len(), 9));
        let (want, size) = direct(&g, &x, &wt, &bias);
        let plane = 1600;
        for with_sum in [false, true] {
            let sum = with_sum.then_some(&residual[..]);
            let post = RowAffine { scale: &scale, shift: &shift, sum, relu: true };
            let mut y = vec![0.0; g.output_len()];
            forward(&g, &x, &wt, None, Some(&bias), Some(&post), &mut y);
            for (i, (&got, &want)) in y.iter().zip(&want).enumerate() {
                let k = i / plane % 64;
                let r = if with_sum { residual[i] as f64 } else { 0.0 };
                let mapped = (want * scale[k] as f64 + shift[k] as f64 + r).max(0.0);
                let bound = ERROR_BOUND * size[i] * (scale[k].abs() as f64)
                    + 1e-6 * (shift[k].abs() as f64 + r.abs());
                assert!((got as f64 - mapped).abs() <= bound, "sum={with_sum} output {i}: {got} vs {mapped}");
            }
        }
    }
}
