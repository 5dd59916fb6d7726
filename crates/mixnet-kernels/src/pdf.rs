//! Densities of MXNet's `_random_pdf_*` operators (`src/operator/random/pdf_op.h`) and
//! their gradients.
//!
//! Parameters have the leading shape of `sample`; each parameter set serves the
//! `num_samples = sample.len() / param.len()` consecutive samples after it (Dirichlet: each
//! sample is a vector of `k` values and `alpha` holds `k` values per set). Arithmetic
//! follows MXNet's term by term in the compute type `F`, with its few double-precision
//! constants; ψ (digamma) is computed in f64.

use crate::special::digamma;
use crate::unary::Real;

/// The distribution of a `_random_pdf_*` operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pdf {
    /// `low`, `high`.
    Uniform,
    /// `mu`, `sigma`.
    Normal,
    /// `alpha` (shape), `beta` (rate).
    Gamma,
    /// `lam`.
    Exponential,
    /// `lam`.
    Poisson,
    /// `k` (limit), `p` (failure probability).
    NegativeBinomial,
    /// `mu`, `alpha` (dispersion).
    GeneralizedNegativeBinomial,
    /// `alpha`, one vector per distribution.
    Dirichlet,
}

impl Pdf {
    /// MXNet's distribution name (`_random_pdf_<name>`).
    pub fn name(self) -> &'static str {
        match self {
            Pdf::Uniform => "uniform",
            Pdf::Normal => "normal",
            Pdf::Gamma => "gamma",
            Pdf::Exponential => "exponential",
            Pdf::Poisson => "poisson",
            Pdf::NegativeBinomial => "negative_binomial",
            Pdf::GeneralizedNegativeBinomial => "generalized_negative_binomial",
            Pdf::Dirichlet => "dirichlet",
        }
    }

    /// The parameters' argument names.
    pub fn params(self) -> &'static [&'static str] {
        match self {
            Pdf::Uniform => &["low", "high"],
            Pdf::Normal => &["mu", "sigma"],
            Pdf::Gamma => &["alpha", "beta"],
            Pdf::Exponential | Pdf::Poisson => &["lam"],
            Pdf::NegativeBinomial => &["k", "p"],
            Pdf::GeneralizedNegativeBinomial => &["mu", "alpha"],
            Pdf::Dirichlet => &["alpha"],
        }
    }
}

fn psi<F: Real>(x: F) -> F {
    F::from_f64(digamma(x.to_f64()))
}

/// MXNet's negative-binomial log density (`p` is the failure probability).
fn nb_lpdf<F: Real>(l: F, p: F, x: F) -> F {
    ((x + l).lgamma() - (x + F::ONE).lgamma() - l.lgamma()) + l * p.ln() + x * (F::ONE - p).ln()
}

/// d lpdf / d(limit, prob) of the negative binomial, times `scaling`.
fn nb_grad<F: Real>(l: F, p: F, x: F, scaling: F) -> (F, F) {
    (scaling * ((psi(x + l) - psi(l)) + p.ln()), scaling * (l / p - x / (F::ONE - p)))
}

/// `(limit, prob)` of the generalized negative binomial's reparameterization, computed in
/// double as MXNet's `1.0 / alpha`, `1.0 / (mu * alpha + 1.0)`.
fn gnb_params<F: Real>(mu: F, alpha: F) -> (F, F) {
    (F::from_f64(1.0 / alpha.to_f64()), F::from_f64(1.0 / ((mu * alpha).to_f64() + 1.0)))
}

/// The density (or log density) of each sample into `out`. Dirichlet: `k` values per
/// sample and per `alpha` set; `out` has one value per sample vector.
pub fn forward<F: Real>(d: Pdf, is_log: bool, sample: &[F], params: &[&[F]], k: usize, out: &mut [F]) {
    let sets = params[0].len() / if d == Pdf::Dirichlet { k } else { 1 };
    if sets == 0 {
        return;
    }
    let per = out.len() / sets;
    let p = |j: usize, idx: usize| params[j][idx];
    let fin = |lpdf: F| if is_log { lpdf } else { lpdf.exp() };
    for (i, o) in out.iter_mut().enumerate() {
        let idx = i / per;
        *o = match d {
            Pdf::Uniform => {
                let (l, h) = (p(0, idx), p(1, idx));
                if is_log {
                    -(h - l).ln()
                } else {
                    F::ONE / (h - l)
                }
            }
            Pdf::Normal => {
                let (u, s, x) = (p(0, idx), p(1, idx), sample[i]);
                let normalizer = F::from_f64((2.0 * std::f64::consts::PI).sqrt() * s.to_f64());
                let exponent = (F::from_f64(-0.5) * (x - u) * (x - u)) / (s * s);
                if is_log {
                    exponent - normalizer.ln()
                } else {
                    exponent.exp() / normalizer
                }
            }
            Pdf::Gamma => {
                let (a, b, x) = (p(0, idx), p(1, idx), sample[i]);
                fin(a * b.ln() + (a - F::ONE) * x.ln() - b * x - a.lgamma())
            }
            Pdf::Exponential => {
                let (l, x) = (p(0, idx), sample[i]);
                if is_log {
                    l.ln() - l * x
                } else {
                    l * (-l * x).exp()
                }
            }
            Pdf::Poisson => {
                let (l, x) = (p(0, idx), sample[i]);
                fin((x * l.ln() - (x + F::ONE).lgamma()) - l)
            }
            Pdf::NegativeBinomial => fin(nb_lpdf(p(0, idx), p(1, idx), sample[i])),
            Pdf::GeneralizedNegativeBinomial => {
                let (l, pr) = gnb_params(p(0, idx), p(1, idx));
                fin(nb_lpdf(l, pr, sample[i]))
            }
            Pdf::Dirichlet => {
                let (x, a) = (&sample[i * k..(i + 1) * k], &params[0][idx * k..(idx + 1) * k]);
                let (mut sum_alpha, mut sum_lgamma, mut sum_sample) = (F::ZERO, F::ZERO, F::ZERO);
                for j in 0..k {
                    sum_alpha = sum_alpha + a[j];
                    sum_lgamma = sum_lgamma + a[j].lgamma();
                    sum_sample = sum_sample + (a[j] - F::ONE) * x[j].ln();
                }
                fin(sum_sample + (sum_alpha.lgamma() - sum_lgamma))
            }
        };
    }
}

/// Gradients of the density: `d_sample` per sample element and `d_params[j]` per
/// parameter, summed over the samples each parameter set serves. `out` is the forward's
/// result and `dy` the head gradient (both one value per sample, or per sample vector).
#[allow(clippy::too_many_arguments)]
pub fn backward<F: Real>(
    d: Pdf,
    is_log: bool,
    sample: &[F],
    params: &[&[F]],
    k: usize,
    out: &[F],
    dy: &[F],
    d_sample: &mut [F],
    d_params: &mut [&mut [F]],
) {
    for dp in d_params.iter_mut() {
        dp.fill(F::ZERO);
    }
    let sets = params[0].len() / if d == Pdf::Dirichlet { k } else { 1 };
    if sets == 0 {
        return;
    }
    let per = out.len() / sets;
    for i in 0..out.len() {
        let idx = i / per;
        let scaling = dy[i] * if is_log { F::ONE } else { out[i] };
        let p = |j: usize| params[j][idx];
        let (ds, g0, g1) = match d {
            Pdf::Uniform => {
                let (l, h) = (p(0), p(1));
                (F::ZERO, scaling / (h - l), scaling / (l - h))
            }
            Pdf::Normal => {
                let (u, s, x) = (p(0), p(1), sample[i]);
                let s2 = s * s;
                let s3 = s2 * s;
                (scaling * (u - x) / s2, scaling * (x - u) / s2, scaling * ((x - u) * (x - u) - s2) / s3)
            }
            Pdf::Gamma => {
                let (a, b, x) = (p(0), p(1), sample[i]);
                (
                    scaling * ((a - F::ONE) / x - b),
                    scaling * (b.ln() + x.ln() - psi(a)),
                    scaling * (a / b - x),
                )
            }
            Pdf::Exponential => {
                let (l, x) = (p(0), sample[i]);
                (-scaling * l, scaling * (F::ONE / l - x), F::ZERO)
            }
            Pdf::Poisson => {
                let (l, x) = (p(0), sample[i]);
                (F::ZERO, scaling * (x / l - F::ONE), F::ZERO)
            }
            Pdf::NegativeBinomial => {
                let (gl, gp) = nb_grad(p(0), p(1), sample[i], scaling);
                (F::ZERO, gl, gp)
            }
            Pdf::GeneralizedNegativeBinomial => {
                let (mu, alpha) = (p(0), p(1));
                let den = F::from_f64((mu * alpha).to_f64() + 1.0);
                let (l, pr) = gnb_params(mu, alpha);
                let (gl, gp) = nb_grad(l, pr, sample[i], scaling);
                (F::ZERO, -gp * alpha / (den * den), -gl / (alpha * alpha) - gp * mu / (den * den))
            }
            Pdf::Dirichlet => {
                let (x, a) = (&sample[i * k..(i + 1) * k], &params[0][idx * k..(idx + 1) * k]);
                let mut sum_alpha = F::ZERO;
                for &aj in a {
                    sum_alpha = sum_alpha + aj;
                }
                let psi_sum = psi(sum_alpha);
                for j in 0..k {
                    let ga = &mut d_params[0][idx * k + j];
                    *ga = *ga + scaling * (x[j].ln() + (psi_sum - psi(a[j])));
                    d_sample[i * k + j] = scaling * (a[j] - F::ONE) / x[j];
                }
                continue;
            }
        };
        d_sample[i] = ds;
        d_params[0][idx] = d_params[0][idx] + g0;
        if let Some(dp) = d_params.get_mut(1) {
            dp[idx] = dp[idx] + g1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn densities_match_known_values() {
        let mut out = [0.0f64; 5];
        forward(Pdf::Normal, false, &[-2.0, -1.0, 0.0, 1.0, 2.0], &[&[0.0], &[1.0]], 1, &mut out);
        let want = [0.05399097, 0.24197073, 0.3989423, 0.24197073, 0.05399097];
        for (o, w) in out.iter().zip(want) {
            assert!((o - w).abs() < 1e-7, "{out:?}");
        }
        let mut out = [0.0f64; 4];
        forward(Pdf::Poisson, false, &[0.0, 1.0, 2.0, 3.0], &[&[1.0]], 1, &mut out);
        let want = [0.36787945, 0.36787945, 0.18393973, 0.06131324];
        for (o, w) in out.iter().zip(want) {
            assert!((o - w).abs() < 1e-7, "{out:?}");
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        // (distribution, sample, parameters, k)
        type Case = (Pdf, Vec<f64>, Vec<Vec<f64>>, usize);
        let cases: [Case; 8] = [
            (Pdf::Uniform, vec![0.3, 0.6], vec![vec![0.1], vec![1.2]], 1),
            (Pdf::Normal, vec![0.3, -0.6], vec![vec![0.1], vec![1.2]], 1),
            (Pdf::Gamma, vec![0.3, 1.6], vec![vec![2.1], vec![1.2]], 1),
            (Pdf::Exponential, vec![0.3, 1.6], vec![vec![2.1]], 1),
            (Pdf::Poisson, vec![2.0, 5.0], vec![vec![2.1]], 1),
            (Pdf::NegativeBinomial, vec![2.0, 5.0], vec![vec![3.5], vec![0.4]], 1),
            (Pdf::GeneralizedNegativeBinomial, vec![2.0, 5.0], vec![vec![3.5], vec![0.4]], 1),
            (Pdf::Dirichlet, vec![0.2, 0.3, 0.5], vec![vec![1.5, 2.0, 3.0]], 3),
        ];
        for is_log in [false, true] {
            for (d, sample, params, k) in &cases {
                let n_out = sample.len() / k;
                let f = |s: &[f64], ps: &[Vec<f64>]| {
                    let refs: Vec<&[f64]> = ps.iter().map(|p| p.as_slice()).collect();
                    let mut o = vec![0.0; n_out];
                    forward(*d, is_log, s, &refs, *k, &mut o);
                    o.iter().sum::<f64>()
                };
                let refs: Vec<&[f64]> = params.iter().map(|p| p.as_slice()).collect();
                let mut out = vec![0.0; n_out];
                forward(*d, is_log, sample, &refs, *k, &mut out);
                let dy = vec![1.0; n_out];
                let mut ds = vec![0.0; sample.len()];
                let mut dps: Vec<Vec<f64>> = params.iter().map(|p| vec![0.0; p.len()]).collect();
                let mut dp_refs: Vec<&mut [f64]> = dps.iter_mut().map(|p| p.as_mut_slice()).collect();
                backward(*d, is_log, sample, &refs, *k, &out, &dy, &mut ds, &mut dp_refs);
                let h = 1e-6;
                for j in 0..params.len() {
                    for e in 0..params[j].len() {
                        let (mut up, mut dn) = (params.clone(), params.clone());
                        up[j][e] += h;
                        dn[j][e] -= h;
                        let num = (f(sample, &up) - f(sample, &dn)) / (2.0 * h);
                        assert!(
                            (num - dps[j][e]).abs() < 1e-5 * (1.0 + num.abs()),
                            "{d:?} param {j}: {num} vs {}",
                            dps[j][e]
                        );
                    }
                }
                // Discrete distributions and the uniform report a zero sample gradient, as MXNet.
                if matches!(d, Pdf::Normal | Pdf::Gamma | Pdf::Exponential | Pdf::Dirichlet) {
                    for e in 0..sample.len() {
                        let (mut up, mut dn) = (sample.clone(), sample.clone());
                        up[e] += h;
                        dn[e] -= h;
                        let num = (f(&up, params) - f(&dn, params)) / (2.0 * h);
                        assert!(
                            (num - ds[e]).abs() < 1e-5 * (1.0 + num.abs()),
                            "{d:?} sample: {num} vs {}",
                            ds[e]
                        );
                    }
                }
            }
        }
    }
}
