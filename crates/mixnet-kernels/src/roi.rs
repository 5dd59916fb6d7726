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

/// Region-of-interest align (MXNet's `_contrib_ROIAlign`, Detectron's form): each bin is
/// the mean of `grid_h × grid_w` bilinear samples; boxes are `[batch, x1, y1, x2, y2]` (or
/// without the batch index). With `position_sensitive`, output channel `c` of bin
/// `(i, j)` reads input channel `(c·ph + i)·pw + j`.
#[derive(Clone, Copy, Debug)]
pub struct RoiAlign {
    pub batch: usize,
    /// Input channels.
    pub channels: usize,
    pub hw: (usize, usize),
    pub pooled: (usize, usize),
    pub spatial_scale: f64,
    pub sample_ratio: i64,
    pub position_sensitive: bool,
    pub aligned: bool,
}

/// The four (flat index, weight) taps of one bilinear sample, or none outside the image.
fn taps(y: f64, x: f64, (h, w): (usize, usize)) -> Option<[(usize, f64); 4]> {
    if y < -1.0 || y > h as f64 || x < -1.0 || x > w as f64 {
        return None;
    }
    let (mut y, mut x) = (y.max(0.0), x.max(0.0));
    let (mut y0, mut x0) = (y as usize, x as usize);
    let y1 = if y0 >= h - 1 {
        y0 = h - 1;
        y = y0 as f64;
        y0
    } else {
        y0 + 1
    };
    let x1 = if x0 >= w - 1 {
        x0 = w - 1;
        x = x0 as f64;
        x0
    } else {
        x0 + 1
    };
    let (ly, lx) = (y - y0 as f64, x - x0 as f64);
    let (hy, hx) = (1.0 - ly, 1.0 - lx);
    Some([(y0 * w + x0, hy * hx), (y0 * w + x1, hy * lx), (y1 * w + x0, ly * hx), (y1 * w + x1, ly * lx)])
}

impl RoiAlign {
    /// Output channels.
    pub fn out_channels(&self) -> usize {
        if self.position_sensitive {
            self.channels / (self.pooled.0 * self.pooled.1)
        } else {
            self.channels
        }
    }

    /// Every output's samples: `(output index, input plane offset, taps, 1/count)`, calling
    /// `f` for each tap.
    fn visit<R: Real>(&self, rois: &[R], cols: usize, mut f: impl FnMut(usize, usize, f64)) {
        let ((h, w), (ph, pw)) = (self.hw, self.pooled);
        let cout = self.out_channels();
        for (r, roi) in rois.chunks_exact(cols).enumerate() {
            let roi: Vec<f64> = roi.iter().map(|v| v.to_f64()).collect();
            let (b, bx) = if cols == 5 { (roi[0] as i64, &roi[1..]) } else { (0, &roi[..]) };
            if b < 0 || b as usize >= self.batch {
                continue;
            }
            let off = if self.aligned { 0.5 } else { 0.0 };
            let (sx, sy) = (bx[0] * self.spatial_scale - off, bx[1] * self.spatial_scale - off);
            let (mut rw, mut rh) =
                (bx[2] * self.spatial_scale - off - sx, bx[3] * self.spatial_scale - off - sy);
            if !self.aligned {
                rw = rw.max(1.0);
                rh = rh.max(1.0);
            }
            let (bh, bw) = (rh / ph as f64, rw / pw as f64);
            let grid = |n: f64, p: usize| {
                if self.sample_ratio > 0 {
                    self.sample_ratio as usize
                } else {
                    (n / p as f64).ceil() as usize
                }
            };
            let (gh, gw) = (grid(rh, ph), grid(rw, pw));
            let inv = 1.0 / (gh * gw) as f64;
            for c in 0..cout {
                for i in 0..ph {
                    for j in 0..pw {
                        let cin = if self.position_sensitive { (c * ph + i) * pw + j } else { c };
                        let plane = (b as usize * self.channels + cin) * h * w;
                        let o = ((r * cout + c) * ph + i) * pw + j;
                        for iy in 0..gh {
                            let y = sy + i as f64 * bh + (iy as f64 + 0.5) * bh / gh as f64;
                            for ix in 0..gw {
                                let x = sx + j as f64 * bw + (ix as f64 + 0.5) * bw / gw as f64;
                                if let Some(t) = taps(y, x, (h, w)) {
                                    for (k, wt) in t {
                                        f(o, plane + k, wt * inv);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Forward into `out` (`rois, out_channels, ph, pw`); `cols` is 4 or 5.
    pub fn forward<R: Real>(&self, data: &[R], rois: &[R], cols: usize, out: &mut [R]) {
        let mut acc = vec![0.0f64; out.len()];
        self.visit(rois, cols, |o, k, wt| acc[o] += wt * data[k].to_f64());
        for (y, v) in out.iter_mut().zip(acc) {
            *y = R::from_f64(v);
        }
    }

    /// Gradient with respect to the data (zeroed first).
    pub fn backward<R: Real>(&self, dout: &[R], rois: &[R], cols: usize, ddata: &mut [R]) {
        let mut acc = vec![0.0f64; ddata.len()];
        self.visit(rois, cols, |o, k, wt| acc[k] += wt * dout[o].to_f64());
        for (d, v) in ddata.iter_mut().zip(acc) {
            *d = R::from_f64(v);
        }
    }
}
