//! Image resampling on `(H, W, C)` pixels, as MXNet's `gluon.data.vision.transforms`
//! use it through OpenCV.

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
