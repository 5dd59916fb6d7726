//! Normalization over sets of elements: LayerNorm, GroupNorm, InstanceNorm and
//! L2Normalization all normalize the elements of a set with the set's statistics and
//! differ only in how sets are laid out and which scale (`gamma`) an element takes. Also
//! local response normalization (LRN) across channels.
//!
//! Statistics and gradients accumulate in f64 whatever the element type; MXNet accumulates
//! in the element type, which is within the goldens' tolerance of the exact value.

use crate::Element;

/// Sets as `x` viewed as `(outer, len, inner)`: set `(o, i)` (number `o * inner + i`)
/// holds `x[o, j, i]` for `j < len`, so its statistics lay out as `(outer, 1, inner)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sets {
    pub outer: usize,
    pub len: usize,
    pub inner: usize,
}

impl Sets {
    pub fn count(&self) -> usize {
        self.outer * self.inner
    }

    /// Index in `x` of element `j` of set `s`.
    #[inline]
    fn at(&self, s: usize, j: usize) -> usize {
        let (o, i) = (s / self.inner, s % self.inner);
        (o * self.len + j) * self.inner + i
    }

    fn check(&self, n: usize) {
        assert_eq!(self.outer * self.len * self.inner, n, "norm: {self:?} does not fit {n} elements");
    }
}

/// Which scale and shift an element takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Affine {
    /// Indexed by the position `j` inside the set (LayerNorm's axis).
    AlongSet,
    /// Indexed by `o % n` of the set's outer index (InstanceNorm's channel with
    /// `outer = batch * channels`, GroupNorm's group with `outer = batch * groups`).
    PerOuter(usize),
}

impl Affine {
    #[inline]
    fn index(self, sets: &Sets, s: usize, j: usize) -> usize {
        match self {
            Affine::AlongSet => j,
            Affine::PerOuter(n) => (s / sets.inner) % n,
        }
    }
}

/// Mean and biased variance of set `s`.
fn moments<T: Element>(x: &[T], sets: &Sets, s: usize) -> (f64, f64) {
    let n = sets.len as f64;
    let mean = (0..sets.len).map(|j| x[sets.at(s, j)].to_f64()).sum::<f64>() / n;
    let var = (0..sets.len)
        .map(|j| {
            let d = x[sets.at(s, j)].to_f64() - mean;
            d * d
        })
        .sum::<f64>()
        / n;
    (mean, var)
}

/// `out = (x - mean) / sqrt(var + eps) * gamma + beta` per set; writes each set's mean and
/// `sqrt(var + eps)` to `mean`/`std` when given (one value per set).
#[allow(clippy::too_many_arguments)]
pub fn norm_forward<T: Element>(
    x: &[T],
    sets: Sets,
    affine: Affine,
    eps: f64,
    gamma: &[T],
    beta: &[T],
    out: &mut [T],
    mut mean_out: Option<&mut [T]>,
    mut std_out: Option<&mut [T]>,
) {
    sets.check(x.len());
    for s in 0..sets.count() {
        let (mean, var) = moments(x, &sets, s);
        let std = (var + eps).sqrt();
        for j in 0..sets.len {
            let at = sets.at(s, j);
            let p = affine.index(&sets, s, j);
            let v = (x[at].to_f64() - mean) / std * gamma[p].to_f64() + beta[p].to_f64();
            out[at] = T::from_f64(v);
        }
        if let Some(m) = mean_out.as_deref_mut() {
            m[s] = T::from_f64(mean);
        }
        if let Some(d) = std_out.as_deref_mut() {
            d[s] = T::from_f64(std);
        }
    }
}

/// Gradients of [`norm_forward`] from the output gradient `dy` (statistics recomputed):
/// with `xhat = (x - mean) / std` and `g = dy * gamma`,
/// `dx = (g - mean(g) - xhat * mean(g * xhat)) / std`, `dgamma = Σ dy * xhat`,
/// `dbeta = Σ dy` (sums over every element taking that parameter).
#[allow(clippy::too_many_arguments)]
pub fn norm_backward<T: Element>(
    x: &[T],
    dy: &[T],
    sets: Sets,
    affine: Affine,
    eps: f64,
    gamma: &[T],
    dx: &mut [T],
    dgamma: &mut [T],
    dbeta: &mut [T],
) {
    sets.check(x.len());
    let mut dg = vec![0f64; dgamma.len()];
    let mut db = vec![0f64; dbeta.len()];
    let n = sets.len as f64;
    for s in 0..sets.count() {
        let (mean, var) = moments(x, &sets, s);
        let std = (var + eps).sqrt();
        let (mut sum_g, mut sum_gx) = (0f64, 0f64);
        for j in 0..sets.len {
            let at = sets.at(s, j);
            let p = affine.index(&sets, s, j);
            let (xhat, d) = ((x[at].to_f64() - mean) / std, dy[at].to_f64());
            dg[p] += d * xhat;
            db[p] += d;
            let g = d * gamma[p].to_f64();
            sum_g += g;
            sum_gx += g * xhat;
        }
        let (mean_g, mean_gx) = (sum_g / n, sum_gx / n);
        for j in 0..sets.len {
            let at = sets.at(s, j);
            let p = affine.index(&sets, s, j);
            let xhat = (x[at].to_f64() - mean) / std;
            let g = dy[at].to_f64() * gamma[p].to_f64();
            dx[at] = T::from_f64((g - mean_g - xhat * mean_gx) / std);
        }
    }
    for (o, v) in dgamma.iter_mut().zip(dg) {
        *o = T::from_f64(v);
    }
    for (o, v) in dbeta.iter_mut().zip(db) {
        *o = T::from_f64(v);
    }
}

/// `sqrt(Σ x² + eps)` of set `s`.
fn l2_norm<T: Element>(x: &[T], sets: &Sets, s: usize, eps: f64) -> f64 {
    ((0..sets.len).map(|j| x[sets.at(s, j)].to_f64().powi(2)).sum::<f64>() + eps).sqrt()
}

/// L2Normalization: `out = x / sqrt(Σ x² + eps)` per set.
pub fn l2_forward<T: Element>(x: &[T], sets: Sets, eps: f64, out: &mut [T]) {
    sets.check(x.len());
    for s in 0..sets.count() {
        let norm = l2_norm(x, &sets, s, eps);
        for j in 0..sets.len {
            let at = sets.at(s, j);
            out[at] = T::from_f64(x[at].to_f64() / norm);
        }
    }
}

/// Gradient of [`l2_forward`]: `dx = dy / n - x * Σ(dy * x) / n³` with `n` the set's norm.
pub fn l2_backward<T: Element>(x: &[T], dy: &[T], sets: Sets, eps: f64, dx: &mut [T]) {
    sets.check(x.len());
    for s in 0..sets.count() {
        let norm = l2_norm(x, &sets, s, eps);
        let dot: f64 = (0..sets.len).map(|j| dy[sets.at(s, j)].to_f64() * x[sets.at(s, j)].to_f64()).sum();
        for j in 0..sets.len {
            let at = sets.at(s, j);
            dx[at] = T::from_f64(dy[at].to_f64() / norm - x[at].to_f64() * dot / norm.powi(3));
        }
    }
}

/// Geometry of LRN: `x` as `(batch, channels, spatial)`, windows of `size` (odd) channels
/// centred on each channel and clipped at the ends.
#[derive(Clone, Copy, Debug)]
pub struct Lrn {
    pub batch: usize,
    pub channels: usize,
    pub spatial: usize,
    pub size: usize,
    pub alpha: f64,
    pub beta: f64,
    pub knorm: f64,
}

impl Lrn {
    fn at(&self, n: usize, c: usize, p: usize) -> usize {
        (n * self.channels + c) * self.spatial + p
    }

    /// Channels of the window around `c`.
    fn window(&self, c: usize) -> std::ops::Range<usize> {
        let half = self.size / 2;
        c.saturating_sub(half)..(c + half + 1).min(self.channels)
    }

    /// MXNet's `tmp_norm = knorm + alpha / size * Σ_window x²`.
    fn scale<T: Element>(&self, x: &[T]) -> Vec<f64> {
        let mut scale = vec![0f64; x.len()];
        let salpha = self.alpha / self.size as f64;
        for n in 0..self.batch {
            for c in 0..self.channels {
                for p in 0..self.spatial {
                    let sum: f64 = self.window(c).map(|k| x[self.at(n, k, p)].to_f64().powi(2)).sum();
                    scale[self.at(n, c, p)] = self.knorm + salpha * sum;
                }
            }
        }
        scale
    }

    /// `out = x * tmp_norm^-beta`.
    pub fn forward<T: Element>(&self, x: &[T], out: &mut [T]) {
        let scale = self.scale(x);
        for ((o, &v), s) in out.iter_mut().zip(x).zip(&scale) {
            *o = T::from_f64(v.to_f64() * s.powf(-self.beta));
        }
    }

    /// MXNet's gradient: `dx = dy * tmp^-beta - 2 beta alpha / size * x * Σ_window(dy * x * tmp^(-beta-1))`.
    pub fn backward<T: Element>(&self, x: &[T], dy: &[T], dx: &mut [T]) {
        let scale = self.scale(x);
        let t: Vec<f64> =
            (0..x.len()).map(|i| dy[i].to_f64() * x[i].to_f64() * scale[i].powf(-self.beta - 1.0)).collect();
        let salpha = self.alpha / self.size as f64;
        for n in 0..self.batch {
            for c in 0..self.channels {
                for p in 0..self.spatial {
                    let i = self.at(n, c, p);
                    let sum: f64 = self.window(c).map(|k| t[self.at(n, k, p)]).sum();
                    let v = dy[i].to_f64() * scale[i].powf(-self.beta)
                        - 2.0 * self.beta * salpha * sum * x[i].to_f64();
                    dx[i] = T::from_f64(v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_norm_of_a_row() {
        let x = [1.0f64, 2.0, 3.0, 4.0];
        let sets = Sets { outer: 1, len: 4, inner: 1 };
        let mut out = [0.0; 4];
        norm_forward(&x, sets, Affine::AlongSet, 0.0, &[1.0; 4], &[0.0; 4], &mut out, None, None);
        let std = 1.25f64.sqrt();
        for (o, v) in out.iter().zip(x) {
            assert!((o - (v - 2.5) / std).abs() < 1e-12);
        }
    }

    #[test]
    fn strided_sets_match_contiguous() {
        // (2, 3, 2) normalized over the middle axis equals normalizing each transposed row.
        let x: Vec<f64> = (0..12).map(|i| ((i * 5) % 7) as f64).collect();
        let mut out = vec![0.0; 12];
        let sets = Sets { outer: 2, len: 3, inner: 2 };
        norm_forward(&x, sets, Affine::AlongSet, 1e-5, &[1.0; 3], &[0.0; 3], &mut out, None, None);
        for o in 0..2 {
            for i in 0..2 {
                let row: Vec<f64> = (0..3).map(|j| x[(o * 3 + j) * 2 + i]).collect();
                let mut r = vec![0.0; 3];
                let one = Sets { outer: 1, len: 3, inner: 1 };
                norm_forward(&row, one, Affine::AlongSet, 1e-5, &[1.0; 3], &[0.0; 3], &mut r, None, None);
                for j in 0..3 {
                    assert!((out[(o * 3 + j) * 2 + i] - r[j]).abs() < 1e-12);
                }
            }
        }
    }
}
