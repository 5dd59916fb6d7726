//! Image resampling: `(H, W, C)` pixels as MXNet's `gluon.data.vision.transforms` resize
//! them through OpenCV, and `(N, C, H, W)` planes as `_contrib_BilinearResize2D` does.

use crate::unary::Real;

/// Bilinear resize of an `(h, w, c)` image to `(oh, ow, c)` with OpenCV's `INTER_LINEAR`
/// sampling: pixel centers aligned (`src = (dst + 0.5)·scale − 0.5`), edges clamped.
/// Values are computed in f64; the caller rounds for integer images.
pub fn resize_bilinear_hwc(
    src: &[f64],
    (h, w, c): (usize, usize, usize),
    (oh, ow): (usize, usize),
) -> Vec<f64> {
    let mut out = vec![0.0; oh * ow * c];
    if h == 0 || w == 0 {
        return out;
    }
    // (index, next index, weight of next) along one axis.
    let taps = |n_out: usize, n_in: usize| -> Vec<(usize, usize, f64)> {
        let scale = n_in as f64 / n_out as f64;
        (0..n_out)
            .map(|o| {
                let s = ((o as f64 + 0.5) * scale - 0.5).max(0.0);
                let i0 = (s.floor() as usize).min(n_in - 1);
                let i1 = (i0 + 1).min(n_in - 1);
                let f = if i0 == n_in - 1 { 0.0 } else { s - i0 as f64 };
                (i0, i1, f)
            })
            .collect()
    };
    let (ys, xs) = (taps(oh, h), taps(ow, w));
    for (oy, &(y0, y1, fy)) in ys.iter().enumerate() {
        for (ox, &(x0, x1, fx)) in xs.iter().enumerate() {
            for ch in 0..c {
                let px = |y: usize, x: usize| src[(y * w + x) * c + ch];
                let top = px(y0, x0) * (1.0 - fx) + px(y0, x1) * fx;
                let bottom = px(y1, x0) * (1.0 - fx) + px(y1, x1) * fx;
                out[(oy * ow + ox) * c + ch] = top * (1.0 - fy) + bottom * fy;
            }
        }
    }
    out
}

/// Source position, lower index, whether a next index exists, and the weight of the next
/// index, for output `o` (MXNet's `area_pixel_compute_*` in f32).
fn resize_tap(o: usize, n_out: usize, n_in: usize, align_corners: bool) -> (usize, usize, f32) {
    let scale = if n_out > 1 {
        if align_corners {
            (n_in - 1) as f32 / (n_out - 1) as f32
        } else {
            n_in as f32 / n_out as f32
        }
    } else {
        0.0
    };
    let src = if align_corners { scale * o as f32 } else { (scale * (o as f32 + 0.5) - 0.5).max(0.0) };
    let i = src as usize;
    let next = usize::from(i + 1 < n_in);
    (i, next, src - i as f32)
}

/// [`resize_tap`] for every output along one axis.
fn resize_taps(n_out: usize, n_in: usize, align_corners: bool) -> Vec<(usize, usize, f32)> {
    (0..n_out).map(|o| resize_tap(o, n_out, n_in, align_corners)).collect()
}

/// Bilinear resize of `planes` planes `(h, w)` to `(oh, ow)` (`_contrib_BilinearResize2D`).
pub fn bilinear_resize_planes<R: Real>(
    x: &[R],
    y: &mut [R],
    planes: usize,
    (h, w): (usize, usize),
    (oh, ow): (usize, usize),
    align_corners: bool,
) {
    let (ys, xs) = (resize_taps(oh, h, align_corners), resize_taps(ow, w, align_corners));
    for p in 0..planes {
        let (xp, yp) = (&x[p * h * w..(p + 1) * h * w], &mut y[p * oh * ow..(p + 1) * oh * ow]);
        if (h, w) == (oh, ow) {
            yp.copy_from_slice(xp);
            continue;
        }
        for (i, &(h1, hp, hl)) in ys.iter().enumerate() {
            let (h1l, h0l) = (R::from_f64(hl as f64), R::ONE - R::from_f64(hl as f64));
            for (j, &(w1, wp, wl)) in xs.iter().enumerate() {
                let (w1l, w0l) = (R::from_f64(wl as f64), R::ONE - R::from_f64(wl as f64));
                let at = |r: usize, c: usize| xp[r * w + c];
                yp[i * ow + j] = h0l * (w0l * at(h1, w1) + w1l * at(h1, w1 + wp))
                    + h1l * (w0l * at(h1 + hp, w1) + w1l * at(h1 + hp, w1 + wp));
            }
        }
    }
}

/// Gradient of [`bilinear_resize_planes`] with respect to its input.
pub fn bilinear_resize_planes_backward<R: Real>(
    dy: &[R],
    dx: &mut [R],
    planes: usize,
    (h, w): (usize, usize),
    (oh, ow): (usize, usize),
    align_corners: bool,
) {
    let (ys, xs) = (resize_taps(oh, h, align_corners), resize_taps(ow, w, align_corners));
    dx.fill(R::ZERO);
    for p in 0..planes {
        let (gp, dp) = (&dy[p * oh * ow..(p + 1) * oh * ow], &mut dx[p * h * w..(p + 1) * h * w]);
        if (h, w) == (oh, ow) {
            dp.copy_from_slice(gp);
            continue;
        }
        for (i, &(h1, hp, hl)) in ys.iter().enumerate() {
            let (h1l, h0l) = (R::from_f64(hl as f64), R::ONE - R::from_f64(hl as f64));
            for (j, &(w1, wp, wl)) in xs.iter().enumerate() {
                let (w1l, w0l) = (R::from_f64(wl as f64), R::ONE - R::from_f64(wl as f64));
                let g = gp[i * ow + j];
                let mut add = |r: usize, c: usize, v: R| dp[r * w + c] = dp[r * w + c] + v;
                add(h1, w1, h0l * w0l * g);
                add(h1, w1 + wp, h0l * w1l * g);
                add(h1 + hp, w1, h1l * w0l * g);
                add(h1 + hp, w1 + wp, h1l * w1l * g);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::resize_bilinear_hwc;

    #[test]
    fn identity_and_halving() {
        let img: Vec<f64> = (0..12).map(f64::from).collect();
        assert_eq!(resize_bilinear_hwc(&img, (3, 4, 1), (3, 4)), img);
        // 2x downscale samples between pixel pairs.
        let img = [0.0, 2.0, 4.0, 6.0];
        assert_eq!(resize_bilinear_hwc(&img, (1, 4, 1), (1, 2)), vec![1.0, 5.0]);
    }
}
