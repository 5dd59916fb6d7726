//! FlowNet's correlation layer (MXNet's `Correlation`, `correlation.cc`): compare patches
//! of two `(N, C, H, W)` maps at displacements on a grid, as a mean over channels and the
//! patch of products (or of absolute differences).
//!
//! As MXNet's CPU kernel: both maps are zero-padded by `pad`; output `(i, j)` puts the
//! first patch's top-left corner at `(i·stride1 + max_displacement, j·stride1 + ...)` in the
//! padded map, and displacement channel `q` moves the second patch by
//! `((q / grid) − r, (q % grid) − r)·stride2` with `r = max_displacement / stride2`.

use crate::unary::Real;

/// The geometry of one correlation.
#[derive(Clone, Copy, Debug)]
pub struct Correlation {
    pub batch: usize,
    pub channels: usize,
    pub hw: (usize, usize),
    pub kernel: usize,
    pub max_displacement: usize,
    pub stride1: usize,
    pub stride2: usize,
    pub pad: usize,
    pub multiply: bool,
}

impl Correlation {
    /// Side of the displacement grid (`2·(max_displacement / stride2) + 1`).
    pub fn grid(&self) -> usize {
        2 * (self.max_displacement / self.stride2) + 1
    }

    /// Output `(channels, height, width)`; `None` when the patch and neighbourhood do not
    /// fit in the padded map.
    pub fn out_shape(&self) -> Option<(usize, usize, usize)> {
        let border = self.max_displacement + (self.kernel - 1) / 2;
        let side = |len: usize| {
            let padded = len + 2 * self.pad;
            (padded > 2 * border).then(|| (padded - 2 * border).div_ceil(self.stride1))
        };
        Some((self.grid() * self.grid(), side(self.hw.0)?, side(self.hw.1)?))
    }

    /// Element `(c, y, x)` of plane `n` at padded position `(y, x)`: 0 in the padding (and
    /// past the map, where an even kernel reaches).
    fn index(&self, n: usize, c: usize, y: isize, x: isize) -> Option<usize> {
        let (h, w) = self.hw;
        let (y, x) = (y - self.pad as isize, x - self.pad as isize);
        (y >= 0 && x >= 0 && (y as usize) < h && (x as usize) < w)
            .then(|| ((n * self.channels + c) * h + y as usize) * w + x as usize)
    }

    /// Visit every (output index, first-map element, second-map element) triple.
    fn each(&self, mut f: impl FnMut(usize, Option<usize>, Option<usize>)) {
        let Some((top_c, top_h, top_w)) = self.out_shape() else { return };
        let (grid, radius) = (self.grid() as isize, (self.max_displacement / self.stride2) as isize);
        let (s1, s2, md) = (self.stride1 as isize, self.stride2 as isize, self.max_displacement as isize);
        for n in 0..self.batch {
            for q in 0..top_c {
                let dx = (q as isize % grid - radius) * s2;
                let dy = (q as isize / grid - radius) * s2;
                for i in 0..top_h {
                    for j in 0..top_w {
                        let o = ((n * top_c + q) * top_h + i) * top_w + j;
                        let (y1, x1) = (i as isize * s1 + md, j as isize * s1 + md);
                        for h in 0..self.kernel as isize {
                            for w in 0..self.kernel as isize {
                                for c in 0..self.channels {
                                    let a = self.index(n, c, y1 + h, x1 + w);
                                    let b = self.index(n, c, y1 + dy + h, x1 + dx + w);
                                    f(o, a, b);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    fn sumelems<R: Real>(&self) -> R {
        R::from_f64((self.kernel * self.kernel * self.channels) as f64)
    }

    pub fn forward<R: Real>(&self, a: &[R], b: &[R], out: &mut [R]) {
        out.fill(R::ZERO);
        let v = |x: &[R], i: Option<usize>| i.map_or(R::ZERO, |i| x[i]);
        self.each(|o, ia, ib| {
            let (x, y) = (v(a, ia), v(b, ib));
            out[o] = out[o] + if self.multiply { x * y } else { (x - y).abs() };
        });
        let n = self.sumelems::<R>();
        for x in out.iter_mut() {
            *x = *x / n;
        }
    }

    /// Gradients of both maps. Subtraction's derivative takes `a ≥ b` as positive.
    pub fn backward<R: Real>(&self, a: &[R], b: &[R], dy: &[R], da: &mut [R], db: &mut [R]) {
        da.fill(R::ZERO);
        db.fill(R::ZERO);
        let n = self.sumelems::<R>();
        let v = |x: &[R], i: Option<usize>| i.map_or(R::ZERO, |i| x[i]);
        self.each(|o, ia, ib| {
            let (x, y) = (v(a, ia), v(b, ib));
            let (ga, gb) = if self.multiply {
                (dy[o] * y / n, dy[o] * x / n)
            } else {
                let s = if x >= y { R::ONE } else { -R::ONE };
                (dy[o] * s / n, dy[o] * -s / n)
            };
            if let Some(i) = ia {
                da[i] = da[i] + ga;
            }
            if let Some(i) = ib {
                db[i] = db[i] + gb;
            }
        });
    }
}
