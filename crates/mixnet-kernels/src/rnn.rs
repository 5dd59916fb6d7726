//! MXNet's fused RNN (`rnn-inl.h`, `rnn_impl.h`): multi-layer, optionally bidirectional
//! vanilla RNN (tanh/relu), LSTM (gates i, f, g, o) and GRU (gates r, z, n; cuDNN's form
//! `n = tanh(W_n x + b_in + r ⊙ (U_n h + b_hn))`, `h' = (1 - z) ⊙ n + z ⊙ h`), in f64.
//!
//! Parameters are MXNet's one flat vector: every layer's and direction's `W_i2h`
//! (`gates·H × input`) and `W_h2h` (`gates·H × H`) first, in (layer, direction) order,
//! then all `b_i2h`, `b_h2h` in the same order. Data is `(T, N, input)`; states are
//! `(layers·directions, N, H)`; the output is `(T, N, directions·H)` with the reverse
//! direction in the second half.
//!
//! The backward pass recomputes the forward (nothing is saved between the two calls) and
//! runs back-propagation through time. The loops use [`crate::linalg::matmul`]; a packed
//! GEMM version is future work (see NOTES: LSTM step speed).

use crate::linalg::matmul;

/// Cell type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    RnnRelu,
    RnnTanh,
    Lstm,
    Gru,
}

impl Mode {
    pub fn gates(self) -> usize {
        match self {
            Mode::RnnRelu | Mode::RnnTanh => 1,
            Mode::Lstm => 4,
            Mode::Gru => 3,
        }
    }
}

/// Geometry of one fused RNN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rnn {
    pub mode: Mode,
    pub layers: usize,
    pub directions: usize,
    pub hidden: usize,
    pub input: usize,
    pub seq: usize,
    pub batch: usize,
}

/// Offsets of one (layer, direction)'s weights and biases in the flat vector.
struct Slot {
    w_i: usize,
    w_h: usize,
    b_i: usize,
    b_h: usize,
    input: usize,
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// What one step of one (layer, direction) computed, for back-propagation.
struct Step {
    h_prev: Vec<f64>,
    c_prev: Vec<f64>,
    /// Activated gates (N × gates·H); for GRU also `U_n h + b_hn` (N × H) in `hn`.
    gates: Vec<f64>,
    hn: Vec<f64>,
    /// New cell (LSTM) and hidden state.
    c: Vec<f64>,
    h: Vec<f64>,
}

impl Rnn {
    /// Number of parameters MXNet's layout holds.
    pub fn param_count(&self) -> usize {
        let gh = self.mode.gates() * self.hidden;
        (0..self.layers)
            .map(|l| {
                let input = if l == 0 { self.input } else { self.directions * self.hidden };
                self.directions * (gh * input + gh * self.hidden + 2 * gh)
            })
            .sum()
    }

    fn slots(&self) -> Vec<Slot> {
        let gh = self.mode.gates() * self.hidden;
        let mut slots = Vec::new();
        let mut w = 0;
        for l in 0..self.layers {
            let input = if l == 0 { self.input } else { self.directions * self.hidden };
            for _ in 0..self.directions {
                slots.push(Slot { w_i: w, w_h: w + gh * input, b_i: 0, b_h: 0, input });
                w += gh * input + gh * self.hidden;
            }
        }
        for s in &mut slots {
            s.b_i = w;
            s.b_h = w + gh;
            w += 2 * gh;
        }
        slots
    }

    fn t_of(&self, d: usize, s: usize) -> usize {
        if d == 0 {
            s
        } else {
            self.seq - 1 - s
        }
    }

    /// One step of cell `slot` on input `x` (N × input) from `h`, `c` (N × H).
    fn step(&self, p: &[f64], slot: &Slot, x: &[f64], h: &[f64], c: &[f64]) -> Step {
        let (n, hs, g) = (self.batch, self.hidden, self.mode.gates());
        let gh = g * hs;
        let wi = &p[slot.w_i..slot.w_i + gh * slot.input];
        let wh = &p[slot.w_h..slot.w_h + gh * hs];
        let mut gi = matmul(x, (n, slot.input), false, wi, (gh, slot.input), true);
        let mut hh = matmul(h, (n, hs), false, wh, (gh, hs), true);
        for r in 0..n {
            for j in 0..gh {
                gi[r * gh + j] += p[slot.b_i + j];
                hh[r * gh + j] += p[slot.b_h + j];
            }
        }
        let mut gates = vec![0.0; n * gh];
        let (mut new_c, mut new_h, mut hn) = (Vec::new(), vec![0.0; n * hs], Vec::new());
        match self.mode {
            Mode::RnnTanh | Mode::RnnRelu => {
                for k in 0..n * hs {
                    let a = gi[k] + hh[k];
                    let v = if self.mode == Mode::RnnTanh { a.tanh() } else { a.max(0.0) };
                    gates[k] = v;
                    new_h[k] = v;
                }
            }
            Mode::Lstm => {
                new_c = vec![0.0; n * hs];
                for r in 0..n {
                    for j in 0..hs {
                        let a = |q: usize| gi[r * gh + q * hs + j] + hh[r * gh + q * hs + j];
                        let (i, f, gg, o) = (sigmoid(a(0)), sigmoid(a(1)), a(2).tanh(), sigmoid(a(3)));
                        for (q, v) in [i, f, gg, o].into_iter().enumerate() {
                            gates[r * gh + q * hs + j] = v;
                        }
                        let cv = f * c[r * hs + j] + i * gg;
                        new_c[r * hs + j] = cv;
                        new_h[r * hs + j] = o * cv.tanh();
                    }
                }
            }
            Mode::Gru => {
                hn = vec![0.0; n * hs];
                for r in 0..n {
                    for j in 0..hs {
                        let at = |q: usize| r * gh + q * hs + j;
                        let rg = sigmoid(gi[at(0)] + hh[at(0)]);
                        let z = sigmoid(gi[at(1)] + hh[at(1)]);
                        let nn = (gi[at(2)] + rg * hh[at(2)]).tanh();
                        gates[at(0)] = rg;
                        gates[at(1)] = z;
                        gates[at(2)] = nn;
                        hn[r * hs + j] = hh[at(2)];
                        new_h[r * hs + j] = (1.0 - z) * nn + z * h[r * hs + j];
                    }
                }
            }
        }
        Step { h_prev: h.to_vec(), c_prev: c.to_vec(), gates, hn, c: new_c, h: new_h }
    }

    /// Forward: returns `(out, hy, cy, steps)` where `steps[layer·D + d][s]` are the saved
    /// steps (kept only when `keep`).
    #[allow(clippy::type_complexity)]
    fn run(
        &self,
        x: &[f64],
        p: &[f64],
        h0: &[f64],
        c0: &[f64],
        keep: bool,
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<Vec<f64>>, Vec<Vec<Step>>) {
        let (t_len, n, hs, dirs) = (self.seq, self.batch, self.hidden, self.directions);
        let slots = self.slots();
        let nh = n * hs;
        let (mut hy, mut cy) = (vec![0.0; self.layers * dirs * nh], vec![0.0; self.layers * dirs * nh]);
        let mut layer_in = x.to_vec();
        let mut inputs = Vec::new();
        let mut saved = Vec::new();
        for l in 0..self.layers {
            let width = dirs * hs;
            let mut out = vec![0.0; t_len * n * width];
            for d in 0..dirs {
                let k = l * dirs + d;
                let slot = &slots[k];
                let mut h = h0[k * nh..(k + 1) * nh].to_vec();
                let mut c =
                    if self.mode == Mode::Lstm { c0[k * nh..(k + 1) * nh].to_vec() } else { vec![0.0; nh] };
                let mut steps = Vec::new();
                for s in 0..t_len {
                    let t = self.t_of(d, s);
                    let xt = &layer_in[t * n * slot.input..(t + 1) * n * slot.input];
                    let st = self.step(p, slot, xt, &h, &c);
                    for r in 0..n {
                        out[(t * n + r) * width + d * hs..][..hs]
                            .copy_from_slice(&st.h[r * hs..(r + 1) * hs]);
                    }
                    h.clone_from(&st.h);
                    if self.mode == Mode::Lstm {
                        c.clone_from(&st.c);
                    }
                    if keep {
                        steps.push(st);
                    }
                }
                hy[k * nh..(k + 1) * nh].copy_from_slice(&h);
                cy[k * nh..(k + 1) * nh].copy_from_slice(&c);
                saved.push(steps);
            }
            inputs.push(std::mem::replace(&mut layer_in, out));
        }
        (layer_in, hy, cy, inputs, saved)
    }

    /// Forward pass: `(out, hy, cy)` (cy is zeros except for LSTM).
    pub fn forward(&self, x: &[f64], p: &[f64], h0: &[f64], c0: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let (out, hy, cy, _, _) = self.run(x, p, h0, c0, false);
        (out, hy, cy)
    }

    /// Gradients `(dx, dparams, dh0, dc0)` from the gradients of `out`, `hy` and `cy`
    /// (pass zeros for outputs not used).
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    pub fn backward(
        &self,
        x: &[f64],
        p: &[f64],
        h0: &[f64],
        c0: &[f64],
        dout: &[f64],
        dhy: &[f64],
        dcy: &[f64],
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
        let (_, _, _, inputs, saved) = self.run(x, p, h0, c0, true);
        let (t_len, n, hs, dirs, g) = (self.seq, self.batch, self.hidden, self.directions, self.mode.gates());
        let (gh, nh) = (g * hs, n * hs);
        let slots = self.slots();
        let mut dp = vec![0.0; p.len()];
        let (mut dh0, mut dc0) = (vec![0.0; h0.len()], vec![0.0; h0.len()]);
        let mut d_above = dout.to_vec();
        for l in (0..self.layers).rev() {
            let input = slots[l * dirs].input;
            let layer_in = &inputs[l];
            let width = dirs * hs;
            let mut dx = vec![0.0; t_len * n * input];
            for d in 0..dirs {
                let k = l * dirs + d;
                let slot = &slots[k];
                let mut dh = dhy[k * nh..(k + 1) * nh].to_vec();
                let mut dc = dcy[k * nh..(k + 1) * nh].to_vec();
                for s in (0..t_len).rev() {
                    let t = self.t_of(d, s);
                    let st = &saved[k][s];
                    for r in 0..n {
                        for j in 0..hs {
                            dh[r * hs + j] += d_above[(t * n + r) * width + d * hs + j];
                        }
                    }
                    // Gradients of the input-side and hidden-side pre-activations.
                    let (mut dgi, mut dgh) = (vec![0.0; n * gh], vec![0.0; n * gh]);
                    let mut dh_prev = vec![0.0; nh];
                    let mut dc_prev = vec![0.0; nh];
                    match self.mode {
                        Mode::RnnTanh | Mode::RnnRelu => {
                            for q in 0..nh {
                                let v = st.gates[q];
                                let da = if self.mode == Mode::RnnTanh {
                                    dh[q] * (1.0 - v * v)
                                } else if v > 0.0 {
                                    dh[q]
                                } else {
                                    0.0
                                };
                                dgi[q] = da;
                                dgh[q] = da;
                            }
                        }
                        Mode::Lstm => {
                            for r in 0..n {
                                for j in 0..hs {
                                    let at = |q: usize| r * gh + q * hs + j;
                                    let (i, f, gg, o) =
                                        (st.gates[at(0)], st.gates[at(1)], st.gates[at(2)], st.gates[at(3)]);
                                    let q = r * hs + j;
                                    let tc = st.c[q].tanh();
                                    let dct = dc[q] + dh[q] * o * (1.0 - tc * tc);
                                    let grads = [
                                        dct * gg * i * (1.0 - i),
                                        dct * st.c_prev[q] * f * (1.0 - f),
                                        dct * i * (1.0 - gg * gg),
                                        dh[q] * tc * o * (1.0 - o),
                                    ];
                                    for (gq, v) in grads.into_iter().enumerate() {
                                        dgi[at(gq)] = v;
                                        dgh[at(gq)] = v;
                                    }
                                    dc_prev[q] = dct * f;
                                }
                            }
                        }
                        Mode::Gru => {
                            for r in 0..n {
                                for j in 0..hs {
                                    let at = |q: usize| r * gh + q * hs + j;
                                    let q = r * hs + j;
                                    let (rg, z, nn) = (st.gates[at(0)], st.gates[at(1)], st.gates[at(2)]);
                                    let dn = dh[q] * (1.0 - z);
                                    let dz = dh[q] * (st.h_prev[q] - nn);
                                    dh_prev[q] += dh[q] * z;
                                    let dan = dn * (1.0 - nn * nn);
                                    let dr = dan * st.hn[q];
                                    let dar = dr * rg * (1.0 - rg);
                                    let daz = dz * z * (1.0 - z);
                                    dgi[at(0)] = dar;
                                    dgh[at(0)] = dar;
                                    dgi[at(1)] = daz;
                                    dgh[at(1)] = daz;
                                    dgi[at(2)] = dan;
                                    dgh[at(2)] = dan * rg;
                                }
                            }
                        }
                    }
                    let xt = &layer_in[t * n * input..(t + 1) * n * input];
                    // Weight and bias gradients.
                    let dwi = matmul(&dgi, (n, gh), true, xt, (n, input), false);
                    let dwh = matmul(&dgh, (n, gh), true, &st.h_prev, (n, hs), false);
                    for (a, b) in dp[slot.w_i..slot.w_i + gh * input].iter_mut().zip(dwi) {
                        *a += b;
                    }
                    for (a, b) in dp[slot.w_h..slot.w_h + gh * hs].iter_mut().zip(dwh) {
                        *a += b;
                    }
                    for r in 0..n {
                        for j in 0..gh {
                            dp[slot.b_i + j] += dgi[r * gh + j];
                            dp[slot.b_h + j] += dgh[r * gh + j];
                        }
                    }
                    // Input and previous-state gradients.
                    let wi = &p[slot.w_i..slot.w_i + gh * input];
                    let wh = &p[slot.w_h..slot.w_h + gh * hs];
                    let dxt = matmul(&dgi, (n, gh), false, wi, (gh, input), false);
                    for (a, b) in dx[t * n * input..(t + 1) * n * input].iter_mut().zip(dxt) {
                        *a += b;
                    }
                    let dhp = matmul(&dgh, (n, gh), false, wh, (gh, hs), false);
                    for (a, b) in dh_prev.iter_mut().zip(dhp) {
                        *a += b;
                    }
                    dh = dh_prev;
                    dc = dc_prev;
                }
                dh0[k * nh..(k + 1) * nh].copy_from_slice(&dh);
                dc0[k * nh..(k + 1) * nh].copy_from_slice(&dc);
            }
            d_above = dx;
        }
        (d_above, dp, dh0, dc0)
    }
}
