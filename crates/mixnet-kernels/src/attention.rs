//! Scaled dot-product attention computed flash-attention style: for each query row the keys
//! are visited tile by tile with an online softmax (running maximum and sum), so memory is
//! O(sequence) — the `Lq × Lk` score matrix is never formed. The forward saves only the
//! output and each row's log-sum-exp; the backward recomputes scores tile by tile
//! (flash-attention 2: `D_i = dO_i·O_i`, `dS = P ⊙ (dP - D)`).
//!
//! Layout: `q` `(B, Hq, Lq, D)`, `k` `(B, Hkv, Lk, D)`, `v` `(B, Hkv, Lk, Dv)`. Grouped-query
//! attention: `Hq` a multiple of `Hkv`, query head `h` reads key/value head
//! `h / (Hq / Hkv)`. Masks: `causal` hides keys `j > i`; `valid[b]` hides keys `j >= valid[b]`.
//! A row whose keys are all hidden outputs zeros.

/// Keys per tile of the online softmax.
const TILE: usize = 64;

/// Geometry and options of one attention call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Attention {
    pub batch: usize,
    pub q_heads: usize,
    pub kv_heads: usize,
    pub q_len: usize,
    pub k_len: usize,
    pub dim: usize,
    pub v_dim: usize,
    pub scale: f64,
    pub causal: bool,
}

impl Attention {
    fn group(&self) -> usize {
        self.q_heads / self.kv_heads
    }

    /// Keys row `i` of batch `b` may see: `0..end`.
    fn key_end(&self, b: usize, i: usize, valid: Option<&[usize]>) -> usize {
        let mut end = self.k_len;
        if self.causal {
            end = end.min(i + 1);
        }
        if let Some(v) = valid {
            end = end.min(v[b]);
        }
        end
    }

    /// `out` `(B, Hq, Lq, Dv)` and the log-sum-exp of each row `(B, Hq, Lq)`.
    pub fn forward(
        &self,
        q: &[f64],
        k: &[f64],
        v: &[f64],
        valid: Option<&[usize]>,
        out: &mut [f64],
        lse: &mut [f64],
    ) {
        let (lq, d, dv) = (self.q_len, self.dim, self.v_dim);
        crate::parallel::each(out.chunks_mut(lq * dv).zip(lse.chunks_mut(lq)).enumerate(), &|(
            bh,
            (o, l),
        )| {
            let (b, h) = (bh / self.q_heads, bh % self.q_heads);
            let kvh = b * self.kv_heads + h / self.group();
            let kb = &k[kvh * self.k_len * d..];
            let vb = &v[kvh * self.k_len * dv..];
            let mut scores = [0f64; TILE];
            for i in 0..lq {
                let qi = &q[(bh * lq + i) * d..][..d];
                let acc = &mut o[i * dv..(i + 1) * dv];
                acc.fill(0.0);
                let (mut m, mut sum) = (f64::NEG_INFINITY, 0.0);
                let end = self.key_end(b, i, valid);
                for t0 in (0..end).step_by(TILE) {
                    let t1 = (t0 + TILE).min(end);
                    let mut tile_max = f64::NEG_INFINITY;
                    for j in t0..t1 {
                        let s = dot(qi, &kb[j * d..][..d]) * self.scale;
                        scores[j - t0] = s;
                        tile_max = tile_max.max(s);
                    }
                    let new_m = m.max(tile_max);
                    let correction = (m - new_m).exp();
                    sum *= correction;
                    acc.iter_mut().for_each(|a| *a *= correction);
                    for j in t0..t1 {
                        let p = (scores[j - t0] - new_m).exp();
                        sum += p;
                        for (a, &x) in acc.iter_mut().zip(&vb[j * dv..][..dv]) {
                            *a += p * x;
                        }
                    }
                    m = new_m;
                }
                if sum > 0.0 {
                    acc.iter_mut().for_each(|a| *a /= sum);
                    l[i] = m + sum.ln();
                } else {
                    l[i] = f64::NEG_INFINITY;
                }
            }
        });
    }

    /// Gradients `(dq, dk, dv)` from `dout`, with the forward's `out` and `lse`.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        q: &[f64],
        k: &[f64],
        v: &[f64],
        valid: Option<&[usize]>,
        out: &[f64],
        lse: &[f64],
        dout: &[f64],
        dq: &mut [f64],
        dk: &mut [f64],
        dvv: &mut [f64],
    ) {
        let (lq, lk, d, dv, g) = (self.q_len, self.k_len, self.dim, self.v_dim, self.group());
        // One task per key/value head: it owns that head's dK, dV and its query heads' dQ.
        let dq_chunks: Vec<&mut [f64]> = dq.chunks_mut(g * lq * d).collect();
        let heads = dk.chunks_mut(lk * d).zip(dvv.chunks_mut(lk * dv)).zip(dq_chunks).enumerate();
        crate::parallel::each(heads, &|(kvh, ((dkb, dvb), dqg))| {
            dkb.fill(0.0);
            dvb.fill(0.0);
            dqg.fill(0.0);
            let b = kvh / self.kv_heads;
            let kb = &k[kvh * lk * d..][..lk * d];
            let vb = &v[kvh * lk * dv..][..lk * dv];
            for hg in 0..g {
                let bh = kvh * g + hg;
                for i in 0..lq {
                    let row = bh * lq + i;
                    if lse[row] == f64::NEG_INFINITY {
                        continue;
                    }
                    let qi = &q[row * d..][..d];
                    let (oi, doi) = (&out[row * dv..][..dv], &dout[row * dv..][..dv]);
                    let di = dot(doi, oi);
                    let dqi = &mut dqg[(hg * lq + i) * d..][..d];
                    for j in 0..self.key_end(b, i, valid) {
                        let kj = &kb[j * d..][..d];
                        let p = (dot(qi, kj) * self.scale - lse[row]).exp();
                        for (a, &x) in dvb[j * dv..][..dv].iter_mut().zip(doi) {
                            *a += p * x;
                        }
                        let dp = dot(doi, &vb[j * dv..][..dv]);
                        let ds = p * (dp - di) * self.scale;
                        for (a, &x) in dqi.iter_mut().zip(kj) {
                            *a += ds * x;
                        }
                        for (a, &x) in dkb[j * d..][..d].iter_mut().zip(qi) {
                            *a += ds * x;
                        }
                    }
                }
            }
        });
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Rotary position embedding, half-split convention (GPT-NeoX / LLaMA): rows of `x`
/// `(rows, len, dim)` with `dim` even; position `p = offset + t` rotates the pairs
/// `(x[i], x[i + dim/2])` by `p · base^(-2i/dim)`. `inverse` rotates back (the gradient).
pub fn rope(x: &[f64], len: usize, dim: usize, base: f64, offset: usize, inverse: bool, out: &mut [f64]) {
    let half = dim / 2;
    let sign = if inverse { -1.0 } else { 1.0 };
    for (r, (xr, o)) in x.chunks_exact(dim).zip(out.chunks_exact_mut(dim)).enumerate() {
        let pos = (offset + r % len) as f64;
        for i in 0..half {
            let theta = pos * base.powf(-2.0 * i as f64 / dim as f64);
            let (s, c) = (sign * theta).sin_cos();
            let (a, b) = (xr[i], xr[i + half]);
            o[i] = a * c - b * s;
            o[i + half] = b * c + a * s;
        }
    }
}
