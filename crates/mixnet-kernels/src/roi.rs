//! Region-of-interest pooling (MXNet's `ROIPooling`): max pooling of each box
//! `[batch_index, x1, y1, x2, y2]` (image coordinates, times `spatial_scale`) of
//! `(N, C, H, W)` features into a fixed `(ph, pw)` grid of bins.

use crate::unary::Real;

/// Geometry of one ROI pooling call.
#[derive(Clone, Copy, Debug)]
pub struct RoiPool {
    pub batch: usize,
    pub channels: usize,
    pub hw: (usize, usize),
    pub pooled: (usize, usize),
    pub spatial_scale: f32,
}

impl RoiPool {
    /// Max over each bin into `out` (`rois, channels, ph, pw`); returns for every output the
    /// flat input index it came from (`None`: empty bin or bad batch index, output 0).
    pub fn forward<R: Real>(&self, data: &[R], rois: &[R], out: &mut [R]) -> Vec<Option<usize>> {
        let ((h, w), (ph, pw), c) = (self.hw, self.pooled, self.channels);
        let n_rois = rois.len() / 5;
        let mut arg = vec![None; n_rois * c * ph * pw];
        for r in 0..n_rois {
            let roi: Vec<f32> = rois[r * 5..r * 5 + 5].iter().map(|v| v.to_f64() as f32).collect();
            let scaled = |v: f32| (v * self.spatial_scale).round() as i64;
            let (sw, sh, ew, eh) = (scaled(roi[1]), scaled(roi[2]), scaled(roi[3]), scaled(roi[4]));
            let b = roi[0] as i64;
            let valid = (0..self.batch as i64).contains(&b);
            let (rh, rw) = ((eh - sh + 1).max(1), (ew - sw + 1).max(1));
            let (bin_h, bin_w) = (rh as f32 / ph as f32, rw as f32 / pw as f32);
            for ch in 0..c {
                for i in 0..ph {
                    for j in 0..pw {
                        let clamp = |v: i64, n: usize| v.clamp(0, n as i64) as usize;
                        let h0 = clamp((i as f32 * bin_h).floor() as i64 + sh, h);
                        let h1 = clamp(((i + 1) as f32 * bin_h).ceil() as i64 + sh, h);
                        let w0 = clamp((j as f32 * bin_w).floor() as i64 + sw, w);
                        let w1 = clamp(((j + 1) as f32 * bin_w).ceil() as i64 + sw, w);
                        let o = ((r * c + ch) * ph + i) * pw + j;
                        if !valid || h1 <= h0 || w1 <= w0 {
                            out[o] = R::ZERO;
                            continue;
                        }
                        let base = (b as usize * c + ch) * h * w;
                        let (mut best, mut at) = (R::from_f64(f32::MIN as f64), None);
                        for y in h0..h1 {
                            for x in w0..w1 {
                                let k = base + y * w + x;
                                if data[k] > best {
                                    best = data[k];
                                    at = Some(k);
                                }
                            }
                        }
                        out[o] = best;
                        arg[o] = at;
                    }
                }
            }
        }
        arg
    }

    /// Gradient with respect to the data: each output's gradient goes to its argmax.
    pub fn backward<R: Real>(&self, dout: &[R], arg: &[Option<usize>], ddata: &mut [R]) {
        ddata.fill(R::ZERO);
        for (g, a) in dout.iter().zip(arg) {
            if let Some(k) = *a {
                ddata[k] = ddata[k] + *g;
            }
        }
    }
}
