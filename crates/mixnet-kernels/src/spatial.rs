//! Spatial transformer networks' pieces (MXNet's `GridGenerator`, `BilinearSampler`):
//! sampling grids in normalized `[-1, 1]` coordinates (channel 0 = x, 1 = y) and bilinear
//! sampling of `(C, H, W)` planes at them, zero outside the image.

use crate::unary::Real;

/// The target grid `[x; y; 1]` of an `(h, w)` output, `3 × h·w`, as MXNet builds it.
fn target_grid(h: usize, w: usize) -> Vec<f64> {
    let mut g = vec![0.0; 3 * h * w];
    for i in 0..h * w {
        g[i] = (i % w) as f64 * 2.0 / (w as f64 - 1.0) - 1.0;
        g[h * w + i] = (i / w) as f64 * 2.0 / (h as f64 - 1.0) - 1.0;
        g[2 * h * w + i] = 1.0;
    }
    g
}

/// Affine grids: for each of `n` transforms `θ` (2×3, row-major) the `(2, h, w)` source
/// coordinates `θ · [x; y; 1]`.
pub fn affine_grid<R: Real>(theta: &[R], out: &mut [R], n: usize, (h, w): (usize, usize)) {
    let (t, hw) = (target_grid(h, w), h * w);
    for b in 0..n {
        let th: Vec<f64> = theta[b * 6..(b + 1) * 6].iter().map(|v| v.to_f64()).collect();
        for r in 0..2 {
            for i in 0..hw {
                let v = th[r * 3] * t[i] + th[r * 3 + 1] * t[hw + i] + th[r * 3 + 2] * t[2 * hw + i];
                out[(b * 2 + r) * hw + i] = R::from_f64(v);
            }
        }
    }
}

/// Gradient of [`affine_grid`] with respect to `θ`: `dgrid · [x; y; 1]ᵀ`.
pub fn affine_grid_backward<R: Real>(dgrid: &[R], dtheta: &mut [R], n: usize, (h, w): (usize, usize)) {
    let (t, hw) = (target_grid(h, w), h * w);
    for b in 0..n {
        for r in 0..2 {
            for k in 0..3 {
                let s: f64 = (0..hw).map(|i| dgrid[(b * 2 + r) * hw + i].to_f64() * t[k * hw + i]).sum();
                dtheta[b * 6 + r * 3 + k] = R::from_f64(s);
            }
        }
    }
}

/// Warp grids: a `(2, h, w)` pixel flow added to each pixel's position, normalized.
pub fn warp_grid<R: Real>(flow: &[R], out: &mut [R], n: usize, (h, w): (usize, usize)) {
    let hw = h * w;
    let (sx, sy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
    for b in 0..n {
        for i in 0..hw {
            let (x, y) = ((i % w) as f64, (i / w) as f64);
            out[b * 2 * hw + i] = R::from_f64((flow[b * 2 * hw + i].to_f64() + x) / sx - 1.0);
            out[(b * 2 + 1) * hw + i] = R::from_f64((flow[(b * 2 + 1) * hw + i].to_f64() + y) / sy - 1.0);
        }
    }
}

/// Gradient of [`warp_grid`] with respect to the flow.
pub fn warp_grid_backward<R: Real>(dgrid: &[R], dflow: &mut [R], n: usize, (h, w): (usize, usize)) {
    let hw = h * w;
    let (sx, sy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
    for b in 0..n {
        for i in 0..hw {
            dflow[b * 2 * hw + i] = R::from_f64(dgrid[b * 2 * hw + i].to_f64() / sx);
            dflow[(b * 2 + 1) * hw + i] = R::from_f64(dgrid[(b * 2 + 1) * hw + i].to_f64() / sy);
        }
    }
}

/// Geometry of a bilinear sampling: `n` images of `c` planes `(h, w)`, grids `(oh, ow)`.
#[derive(Clone, Copy, Debug)]
pub struct Sampling {
    pub n: usize,
    pub c: usize,
    pub hw: (usize, usize),
    pub out: (usize, usize),
}

/// The four neighbours of a grid point: top-left `(y, x)`, and the top-left weights.
fn corners(gx: f64, gy: f64, (h, w): (usize, usize)) -> (i64, i64, f64, f64) {
    let xr = (gx + 1.0) * (w as f64 - 1.0) / 2.0;
    let yr = (gy + 1.0) * (h as f64 - 1.0) / 2.0;
    let (x0, y0) = (xr.floor(), yr.floor());
    (y0 as i64, x0 as i64, 1.0 - (yr - y0), 1.0 - (xr - x0))
}

impl Sampling {
    /// `data` sampled at `grid` into `out` (`n, c, oh, ow`).
    pub fn forward<R: Real>(&self, data: &[R], grid: &[R], out: &mut [R]) {
        let ((h, w), (oh, ow)) = (self.hw, self.out);
        let ohw = oh * ow;
        let at = |img: &[R], y: i64, x: i64| -> f64 {
            if (0..h as i64).contains(&y) && (0..w as i64).contains(&x) {
                img[y as usize * w + x as usize].to_f64()
            } else {
                0.0
            }
        };
        for b in 0..self.n {
            for i in 0..ohw {
                let (gx, gy) = (grid[b * 2 * ohw + i].to_f64(), grid[(b * 2 + 1) * ohw + i].to_f64());
                let (y0, x0, wy, wx) = corners(gx, gy, self.hw);
                for ch in 0..self.c {
                    let img = &data[(b * self.c + ch) * h * w..][..h * w];
                    let v = at(img, y0, x0) * wy * wx
                        + at(img, y0, x0 + 1) * wy * (1.0 - wx)
                        + at(img, y0 + 1, x0) * (1.0 - wy) * wx
                        + at(img, y0 + 1, x0 + 1) * (1.0 - wy) * (1.0 - wx);
                    out[(b * self.c + ch) * ohw + i] = R::from_f64(v);
                }
            }
        }
    }

    /// Gradients of [`Sampling::forward`]: `ddata` (zeroed first) and `dgrid`.
    pub fn backward<R: Real>(&self, dout: &[R], data: &[R], grid: &[R], ddata: &mut [R], dgrid: &mut [R]) {
        let ((h, w), (oh, ow)) = (self.hw, self.out);
        let ohw = oh * ow;
        ddata.fill(R::ZERO);
        let inside = |y: i64, x: i64| (0..h as i64).contains(&y) && (0..w as i64).contains(&x);
        for b in 0..self.n {
            for i in 0..ohw {
                let (gx, gy) = (grid[b * 2 * ohw + i].to_f64(), grid[(b * 2 + 1) * ohw + i].to_f64());
                let (y0, x0, wy, wx) = corners(gx, gy, self.hw);
                let (mut gyw, mut gxw) = (0.0, 0.0);
                for ch in 0..self.c {
                    let base = (b * self.c + ch) * h * w;
                    let g = dout[(b * self.c + ch) * ohw + i].to_f64();
                    let mut corner = |y: i64, x: i64, weight: f64| -> f64 {
                        if !inside(y, x) {
                            return 0.0;
                        }
                        let k = base + y as usize * w + x as usize;
                        ddata[k] = ddata[k] + R::from_f64(g * weight);
                        data[k].to_f64()
                    };
                    let tl = corner(y0, x0, wy * wx);
                    let tr = corner(y0, x0 + 1, wy * (1.0 - wx));
                    let bl = corner(y0 + 1, x0, (1.0 - wy) * wx);
                    let br = corner(y0 + 1, x0 + 1, (1.0 - wy) * (1.0 - wx));
                    gyw -= g * (tr * (1.0 - wx) + tl * wx - br * (1.0 - wx) - bl * wx);
                    gxw -= g * (bl * (1.0 - wy) + tl * wy - br * (1.0 - wy) - tr * wy);
                }
                dgrid[b * 2 * ohw + i] = R::from_f64(gxw * (w as f64 - 1.0) / 2.0);
                dgrid[(b * 2 + 1) * ohw + i] = R::from_f64(gyw * (h as f64 - 1.0) / 2.0);
            }
        }
    }
}
