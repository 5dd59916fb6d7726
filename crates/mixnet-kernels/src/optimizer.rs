//! Optimizer update rules (MXNet's `optimizer_op-inl.h`, `contrib/adamw-inl.h`), one
//! elementwise loop per rule over contiguous slices. Each computes in one real type `F`
//! (`f32` or `f64`), as MXNet's kernels compute in the weight's dtype (half types and the
//! multi-precision variants in `f32`); the caller converts other element types.
//!
//! Hyper-parameters arrive as `F` values converted from MXNet's `float` attributes.
//! Formulas follow MXNet term by term (including where two rules that look alike round
//! differently), so results agree with MXNet's to the last bit or close to it.

#![allow(clippy::too_many_arguments)] // update rules take their hyper-parameters and slices

use crate::elementwise::PARALLEL_MIN;
use crate::unary::Real;

/// Elements per parallel piece of a large update (whole cache lines of f64 too).
const CHUNK: usize = 1 << 14;

/// MXNet's `mshadow_op::clip::Map(x, bound)`: NaN passes through.
#[inline(always)]
pub fn clip<F: Real>(x: F, bound: F) -> F {
    if x > bound {
        bound
    } else if x < -bound {
        -bound
    } else {
        x
    }
}

/// `(x > 0) - (x < 0)`.
#[inline(always)]
fn sign<F: Real>(x: F) -> F {
    if x > F::ZERO {
        F::ONE
    } else if x < F::ZERO {
        -F::ONE
    } else {
        F::ZERO
    }
}

/// The rescale-and-clip step every rule shares.
#[derive(Clone, Copy, Debug)]
pub struct Grad<F> {
    pub rescale: F,
    /// `None` when `clip_gradient < 0` (clipping off).
    pub clip: Option<F>,
}

impl<F: Real> Grad<F> {
    #[inline(always)]
    fn clip(self, g: F) -> F {
        match self.clip {
            Some(b) => clip(g, b),
            None => g,
        }
    }
}

/// `sgd_update` (and `mp_sgd_update` with `F = f32` on the master weights).
pub fn sgd<F: Real>(lr: F, wd: F, gp: Grad<F>, w: &[F], g: &[F], out: &mut [F]) {
    // Memory-bound: large updates are split across cores (the caller thread takes a part).
    if out.len() >= PARALLEL_MIN {
        return crate::parallel::split(out, CHUNK, &|off, o| {
            let end = off + o.len();
            sgd_serial(lr, wd, gp, &w[off..end], &g[off..end], o)
        });
    }
    sgd_serial(lr, wd, gp, w, g, out)
}

fn sgd_serial<F: Real>(lr: F, wd: F, gp: Grad<F>, w: &[F], g: &[F], out: &mut [F]) {
    let decay = F::ONE - lr * wd;
    // Zipped slices: no bounds checks, so the clip-free loop vectorises.
    let rows = out.iter_mut().zip(w.iter().zip(g));
    match gp.clip {
        Some(b) => rows.for_each(|(o, (&w, &g))| *o = decay * w - lr * clip(gp.rescale * g, b)),
        None => {
            let step = lr * gp.rescale;
            rows.for_each(|(o, (&w, &g))| *o = decay * w - step * g);
        }
    }
}

/// `sgd_mom_update`: `mom = momentum·mom − lr·wd·w − lr·g'`, `out = w + mom`.
pub fn sgd_mom<F: Real>(
    lr: F,
    wd: F,
    momentum: F,
    gp: Grad<F>,
    w: &[F],
    g: &[F],
    mom: &mut [F],
    out: &mut [F],
) {
    split_update(w, g, mom, out, &|w, g, mom, out| {
        for i in 0..out.len() {
            let gr = match gp.clip {
                Some(b) => lr * clip(gp.rescale * g[i], b),
                None => lr * gp.rescale * g[i],
            };
            mom[i] = momentum * mom[i] - lr * wd * w[i] - gr;
            out[i] = w[i] + mom[i];
        }
    })
}

/// Run an elementwise update with one state array on pieces of the arrays, split across
/// cores when they are large (the update is memory-bound). Each piece gets slices of the
/// same length.
fn split_update<F: Real, U>(w: &[F], g: &[F], state: &mut [F], out: &mut [F], f: &U)
where
    U: Fn(&[F], &[F], &mut [F], &mut [F]) + Sync,
{
    let n = out.len();
    let (w, g, state) = (&w[..n], &g[..n], &mut state[..n]);
    if n < PARALLEL_MIN {
        return f(w, g, state, out);
    }
    let size = n.div_ceil(CHUNK).div_ceil(crate::parallel::threads()).max(1) * CHUNK;
    let parts = state.chunks_mut(size).zip(out.chunks_mut(size)).enumerate();
    crate::parallel::each(parts, &|(i, (state, out))| {
        let at = i * size..i * size + out.len();
        f(&w[at.clone()], &g[at], state, out)
    });
}

/// `nag_mom_update` (and `mp_nag_mom_update` on the master weights), as MXNet runs it
/// in place.
pub fn nag_mom<F: Real>(
    lr: F,
    wd: F,
    momentum: F,
    gp: Grad<F>,
    w: &[F],
    g: &[F],
    mom: &mut [F],
    out: &mut [F],
) {
    for i in 0..out.len() {
        let gr = match gp.clip {
            Some(b) => clip(gp.rescale * g[i], b),
            None => gp.rescale * g[i],
        };
        let m = momentum * mom[i];
        let nw = w[i] - m + (momentum + F::ONE) * (m - lr * (gr + wd * w[i]));
        out[i] = nw;
        // MXNet's kernel reads the weight again after writing the output; called with
        // `out=weight` (as every optimizer calls it), and in the multi-precision kernel
        // always, the momentum decays with the *new* weight.
        mom[i] = m - lr * (gr + wd * nw);
    }
}

/// Adam's hyper-parameters.
#[derive(Clone, Copy, Debug)]
pub struct Adam<F> {
    pub lr: F,
    pub beta1: F,
    pub beta2: F,
    pub epsilon: F,
    pub wd: F,
}

/// `adam_update`: no bias correction (the Python optimizer folds it into `lr`).
pub fn adam<F: Real>(
    p: Adam<F>,
    gp: Grad<F>,
    w: &[F],
    g: &[F],
    mean: &mut [F],
    var: &mut [F],
    out: &mut [F],
) {
    for i in 0..out.len() {
        let gr = gp.clip(g[i] * gp.rescale + w[i] * p.wd);
        mean[i] = p.beta1 * mean[i] + (F::ONE - p.beta1) * gr;
        var[i] = p.beta2 * var[i] + (F::ONE - p.beta2) * gr * gr;
        out[i] = w[i] - p.lr * mean[i] / (var[i].sqrt() + p.epsilon);
    }
}

/// `_adamw_update` (decoupled weight decay, scaled by `eta`).
pub fn adamw<F: Real>(
    p: Adam<F>,
    eta: F,
    gp: Grad<F>,
    w: &[F],
    g: &[F],
    mean: &mut [F],
    var: &mut [F],
    out: &mut [F],
) {
    for i in 0..out.len() {
        let gr = gp.clip(gp.rescale * g[i]);
        mean[i] = p.beta1 * mean[i] + (F::ONE - p.beta1) * gr;
        var[i] = p.beta2 * var[i] + (F::ONE - p.beta2) * (gr * gr);
        out[i] = w[i] - eta * (p.lr * mean[i] / (var[i].sqrt() + p.epsilon) + p.wd * w[i]);
    }
}

/// One weight of `_multi_adamw_update`, whose moment updates are arranged differently
/// from `_adamw_update`'s (`beta·(m − g) + g`).
pub fn multi_adamw<F: Real>(
    p: Adam<F>,
    eta: F,
    gp: Grad<F>,
    w: &[F],
    g: &[F],
    mean: &mut [F],
    var: &mut [F],
    out: &mut [F],
) {
    for i in 0..out.len() {
        let gr = gp.clip(gp.rescale * g[i]);
        let m = p.beta1 * (mean[i] - gr) + gr;
        let adj = gr * gr;
        let v = p.beta2 * (var[i] - adj) + adj;
        mean[i] = m;
        var[i] = v;
        out[i] = w[i] - eta * (p.lr * m / (v.sqrt() + p.epsilon) + p.wd * w[i]);
    }
}

/// RMSProp's hyper-parameters (`gamma2` only for the Graves variant).
#[derive(Clone, Copy, Debug)]
pub struct RmsProp<F> {
    pub lr: F,
    pub gamma1: F,
    pub gamma2: F,
    pub epsilon: F,
    pub wd: F,
    /// `None` when `clip_weights < 0`.
    pub clip_weights: Option<F>,
}

/// `rmsprop_update` (Tieleman & Hinton).
pub fn rmsprop<F: Real>(p: RmsProp<F>, gp: Grad<F>, w: &[F], g: &[F], n: &mut [F], out: &mut [F]) {
    for i in 0..out.len() {
        let gr = gp.clip(gp.rescale * g[i] + p.wd * w[i]);
        n[i] = (F::ONE - p.gamma1) * (gr * gr) + p.gamma1 * n[i];
        let nw = w[i] - p.lr * (gr / (n[i] + p.epsilon).sqrt());
        out[i] = match p.clip_weights {
            Some(b) => clip(nw, b),
            None => nw,
        };
    }
}

/// `rmspropalex_update` (Graves 2013).
pub fn rmspropalex<F: Real>(
    p: RmsProp<F>,
    gp: Grad<F>,
    w: &[F],
    g: &[F],
    n: &mut [F],
    gs: &mut [F],
    delta: &mut [F],
    out: &mut [F],
) {
    for i in 0..out.len() {
        let gr = gp.clip(gp.rescale * g[i] + p.wd * w[i]);
        n[i] = (F::ONE - p.gamma1) * gr * gr + p.gamma1 * n[i];
        gs[i] = (F::ONE - p.gamma1) * gr + p.gamma1 * gs[i];
        delta[i] = p.gamma2 * delta[i] - (p.lr * gr / (n[i] - gs[i] * gs[i] + p.epsilon).sqrt());
        let nw = w[i] + delta[i];
        out[i] = match p.clip_weights {
            Some(b) => clip(nw, b),
            None => nw,
        };
    }
}

/// `ftrl_update`.
pub fn ftrl<F: Real>(
    lr: F,
    lamda1: F,
    beta: F,
    wd: F,
    gp: Grad<F>,
    w: &[F],
    g: &[F],
    z: &mut [F],
    n: &mut [F],
    out: &mut [F],
) {
    for i in 0..out.len() {
        let gr = gp.clip(g[i] * gp.rescale);
        z[i] = z[i] + (gr - ((n[i] + gr * gr).sqrt() - n[i].sqrt()) * w[i] / lr);
        n[i] = n[i] + gr * gr;
        let active = if z[i].abs() > lamda1 { F::ONE } else { F::ZERO };
        out[i] = (sign(z[i]) * lamda1 - z[i]) / ((beta + n[i].sqrt()) / lr + wd) * active;
    }
}

/// FTML's hyper-parameters; `t` is the step count.
#[derive(Clone, Copy, Debug)]
pub struct Ftml<F> {
    pub lr: F,
    pub beta1: F,
    pub beta2: F,
    pub epsilon: F,
    pub t: F,
    pub wd: F,
}

/// `ftml_update` (clipping is applied after weight decay is added).
pub fn ftml<F: Real>(
    p: Ftml<F>,
    gp: Grad<F>,
    w: &[F],
    g: &[F],
    d: &mut [F],
    v: &mut [F],
    z: &mut [F],
    out: &mut [F],
) {
    let pow = |b: F| F::from_f64(b.to_f64().powf(p.t.to_f64()));
    let (b1t, b2t) = (pow(p.beta1), pow(p.beta2));
    for i in 0..out.len() {
        let gr = gp.clip(gp.rescale * g[i] + p.wd * w[i]);
        v[i] = p.beta2 * v[i] + (F::ONE - p.beta2) * (gr * gr);
        let d_t = (F::ONE - b1t) / p.lr * ((v[i] / (F::ONE - b2t)).sqrt() + p.epsilon);
        z[i] = p.beta1 * z[i] + (F::ONE - p.beta1) * gr - (d_t - p.beta1 * d[i]) * w[i];
        d[i] = d_t;
        out[i] = -z[i] / d_t;
    }
}

/// `signsgd_update`: the gradient's sign only (rescale and clip do not matter).
pub fn signsgd<F: Real>(lr: F, wd: F, w: &[F], g: &[F], out: &mut [F]) {
    for i in 0..out.len() {
        out[i] = (F::ONE - lr * wd) * w[i] - lr * sign(g[i]);
    }
}

/// `signum_update`.
pub fn signum<F: Real>(
    lr: F,
    wd: F,
    momentum: F,
    wd_lh: F,
    gp: Grad<F>,
    w: &[F],
    g: &[F],
    mom: &mut [F],
    out: &mut [F],
) {
    let one_m = F::ONE - momentum;
    for i in 0..out.len() {
        let gr = match gp.clip {
            Some(b) => one_m * clip(gp.rescale * g[i], b),
            None => one_m * gp.rescale * g[i],
        };
        mom[i] = momentum * mom[i] - one_m * wd * w[i] - gr;
        out[i] = (F::ONE - lr * wd_lh) * w[i] + lr * sign(mom[i]);
    }
}

/// How LAMB divides out the moments' bias.
#[derive(Clone, Copy, Debug)]
pub enum LambBias<F> {
    Off,
    /// `lamb_update_phase1`: `mean / (1. - beta1_t)` computed in double.
    Double(f64, f64),
    /// `_multi_lamb_update`: `beta^t` and the division in the compute type.
    Native(F, F),
}

/// `lamb_update_phase1` (and step one of `_multi_lamb_update`): update the moments and
/// return the LAMB direction `g = m̂/(√v̂ + ε) + wd·w`.
pub fn lamb_phase1<F: Real>(
    beta1: F,
    beta2: F,
    epsilon: F,
    wd: F,
    bias: LambBias<F>,
    gp: Grad<F>,
    w: &[F],
    g: &[F],
    mean: &mut [F],
    var: &mut [F],
    out: &mut [F],
) {
    for i in 0..out.len() {
        let gr = gp.clip(g[i] * gp.rescale);
        mean[i] = beta1 * mean[i] + (F::ONE - beta1) * gr;
        var[i] = beta2 * var[i] + (F::ONE - beta2) * gr * gr;
        out[i] = match bias {
            LambBias::Off => mean[i] / (var[i].sqrt() + epsilon) + wd * w[i],
            LambBias::Double(b1t, b2t) => {
                let mean_hat = F::from_f64(mean[i].to_f64() / (1.0 - b1t));
                let var_hat = F::from_f64(var[i].to_f64() / (1.0 - b2t));
                mean_hat / (var_hat.sqrt() + epsilon) + wd * w[i]
            }
            LambBias::Native(b1t, b2t) => {
                let (mean_hat, var_hat) = (mean[i] / (F::ONE - b1t), var[i] / (F::ONE - b2t));
                mean_hat / (var_hat.sqrt() + epsilon) + wd * w[i]
            }
        };
    }
}

/// Step two of `_multi_lamb_update` for one tensor: `g` (step one's direction) is held in
/// a float workspace, `r1 = √w_sq` is bounded by the non-negative bounds, `r2 = ‖g‖`, and
/// `out = w − lr·(r1/r2)·g` (`lr` alone when either norm is 0). `g` becomes the output.
pub fn multi_lamb_step2<F: Real>(lr: F, lower: f32, upper: f32, w_sq: f32, w: &[F], g: &mut [F]) {
    let mut g_sq = 0.0f32;
    for x in g.iter_mut() {
        let t = x.to_f32();
        *x = F::from_f32(t);
        g_sq += t * t;
    }
    let (mut r1, r2) = (w_sq.sqrt(), g_sq.sqrt());
    // `std::max`/`std::min` keep the first argument when the comparison fails.
    if lower >= 0.0 && r1 < lower {
        r1 = lower;
    }
    if upper >= 0.0 && upper < r1 {
        r1 = upper;
    }
    let r = if r1 == 0.0 || r2 == 0.0 { F::ONE } else { F::from_f32(r1 / r2) };
    let lr = lr * r;
    for (x, &wi) in g.iter_mut().zip(w) {
        *x = wi - lr * *x;
    }
}

/// `lamb_update_phase2`: `out = w − lr·(r1'/r2)·g`, with `r1` clamped to the bounds that
/// are non-negative, and the plain `lr` when either norm is 0.
pub fn lamb_phase2<F: Real>(lr: F, lower: F, upper: F, r1: F, r2: F, w: &[F], g: &[F], out: &mut [F]) {
    let mut r = r1;
    if lower >= F::ZERO && (r < lower || r.is_nan()) {
        r = lower;
    }
    if upper >= F::ZERO && (r > upper || r.is_nan()) {
        r = upper;
    }
    let lr = if r == F::ZERO || r2 == F::ZERO { lr } else { lr * r / r2 };
    for i in 0..out.len() {
        out[i] = w[i] - lr * g[i];
    }
}

/// One weight of `multi_sgd_update` / `multi_sgd_mom_update` (and their multi-precision
/// forms on the master weights): `mom = momentum·mom − lr·wd·w − lr·g'`, `w += mom`. With
/// `mom` absent the momentum term is 0.
pub fn multi_sgd<F: Real>(
    lr: F,
    wd: F,
    momentum: F,
    gp: Grad<F>,
    w: &[F],
    g: &[F],
    mut mom: Option<&mut [F]>,
    out: &mut [F],
) {
    for i in 0..out.len() {
        let m0 = mom.as_deref().map_or(F::ZERO, |m| m[i]);
        let gr = match gp.clip {
            Some(b) => lr * clip(gp.rescale * g[i], b),
            None => lr * gp.rescale * g[i],
        };
        let m = momentum * m0 - lr * wd * w[i] - gr;
        if let Some(mm) = mom.as_deref_mut() {
            mm[i] = m;
        }
        out[i] = w[i] + m;
    }
}

/// `multi_lars`: per-layer learning rates scaled by the LARS trust ratio.
pub fn multi_lars(
    lrs: &[f32],
    w_sq: &[f32],
    g_sq: &[f32],
    wds: &[f32],
    eta: f32,
    eps: f32,
    rescale: f32,
    out: &mut [f32],
) {
    for i in 0..out.len() {
        let w_norm = w_sq[i].sqrt();
        out[i] = if w_norm > 0.0 && g_sq[i] > 0.0 {
            lrs[i] * eta * w_norm / (g_sq[i].sqrt() * rescale + wds[i] * w_norm + eps)
        } else {
            lrs[i]
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sgd_rule() {
        let (w, g) = ([1.0f32, -2.0], [0.5f32, 4.0]);
        let mut out = [0.0f32; 2];
        sgd(0.1, 0.0, Grad { rescale: 1.0, clip: Some(1.0) }, &w, &g, &mut out);
        assert_eq!(out, [1.0 - 0.05, -2.0 - 0.1]);
        let mut mom = [0.0f32; 2];
        sgd_mom(0.1, 0.0, 0.9, Grad { rescale: 1.0, clip: None }, &w, &g, &mut mom, &mut out);
        assert_eq!(mom, [-0.05, -0.4]);
        assert!(clip(f32::NAN, 1.0).is_nan());
    }

    /// Updates split across cores give exactly the results of running them piece by piece
    /// below the split threshold (on one thread).
    #[test]
    fn large_updates_split_across_cores_match_serial() {
        let n = 3 * PARALLEL_MIN + 77;
        let w: Vec<f32> = (0..n).map(|i| (i % 101) as f32 * 0.01).collect();
        let g: Vec<f32> = (0..n).map(|i| (i % 37) as f32 * 0.1 - 1.5).collect();
        let piece = 1000;
        for clip in [None, Some(1.0)] {
            let gp = Grad { rescale: 0.5, clip };
            let (mut par, mut ser) = (vec![0.0; n], vec![0.0; n]);
            sgd(0.1, 0.01, gp, &w, &g, &mut par);
            for (i, o) in ser.chunks_mut(piece).enumerate() {
                let at = i * piece..i * piece + o.len();
                sgd(0.1, 0.01, gp, &w[at.clone()], &g[at], o);
            }
            assert_eq!(par, ser);
            let (mut mp, mut ms) = (vec![0.25f32; n], vec![0.25f32; n]);
            sgd_mom(0.1, 0.01, 0.9, gp, &w, &g, &mut mp, &mut par);
            for (i, (m, o)) in ms.chunks_mut(piece).zip(ser.chunks_mut(piece)).enumerate() {
                let at = i * piece..i * piece + o.len();
                sgd_mom(0.1, 0.01, 0.9, gp, &w[at.clone()], &g[at], m, o);
            }
            assert_eq!((par, mp), (ser, ms));
        }
    }
}
