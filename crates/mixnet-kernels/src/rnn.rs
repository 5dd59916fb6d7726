//! MXNet's fused RNN (`rnn-inl.h`, `rnn_impl.h`): multi-layer, optionally bidirectional
//! vanilla RNN (tanh/relu), LSTM (gates i, f, g, o) and GRU (gates r, z, n; cuDNN's form
//! `n = tanh(W_n x + b_in + r ⊙ (U_n h + b_hn))`, `h' = (1 - z) ⊙ n + z ⊙ h`).
//!
//! Parameters are MXNet's one flat vector: every layer's and direction's `W_i2h`
//! (`gates·H × input`) and `W_h2h` (`gates·H × H`) first, in (layer, direction) order,
//! then all `b_i2h`, `b_h2h` in the same order. Data is `(T, N, input)`; states are
//! `(layers·directions, N, H)`; the output is `(T, N, directions·H)` with the reverse
//! direction in the second half.
//!
//! Speed comes from the shape of the work: the input projection of a whole sequence is one
//! GEMM (`T·N × input` by `input × gates·H`), and so are the weight and input gradients in
//! backward; only the recurrent product `h · W_h2hᵀ` runs per step. Gate arithmetic is
//! done in f64 whatever the element type, with the branch-free `exp`/`tanh` of
//! `fastmath` (libm calls dominated the step). A training forward can keep its gates and
//! states ([`Saved`]) for backward; otherwise backward recomputes the forward.

use crate::gemm::{GemmElement, MatMul};
use crate::scratch::Buffer;

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

use crate::fastmath::{sigmoid, tanh};

/// What the forward of one (layer, direction) computed, by time index, for backward.
struct Trace<T> {
    /// Activated gates, `T·N × gates·H`.
    gates: Buffer<T>,
    /// The hidden and cell state each step started from, `T·N × H`.
    h_prev: Buffer<T>,
    c_prev: Buffer<T>,
    /// The new cell state (LSTM), `T·N × H`.
    c: Buffer<T>,
    /// GRU: `U_n h + b_hn`, `T·N × H`.
    hn: Buffer<T>,
}

/// What a training forward keeps for backward: the row lengths, each layer's input, and
/// every (layer, direction)'s gates and states.
pub struct Saved<T> {
    lens: Vec<usize>,
    inputs: Vec<Buffer<T>>,
    traces: Vec<Trace<T>>,
}

/// `c (m×n) = a (m×k) · bᵀ + bias` with `b` stored `n×k` and `bias` added to every row
/// (as the kernel stores each tile).
fn gemm_nt_bias<T: GemmElement>(m: usize, n: usize, k: usize, a: &[T], b: &[T], bias: &[T], c: &mut [T]) {
    MatMul { m, n, k, trans_a: false, trans_b: true }.run_with_bias(a, b, c, bias, true);
}

/// `c (m×n) += aᵀ · b` with `a` stored `k×m`, `b` stored `k×n`.
fn gemm_tn_acc<T: GemmElement>(m: usize, n: usize, k: usize, a: &[T], b: &[T], c: &mut [T]) {
    MatMul { m, n, k, trans_a: true, trans_b: false }.run_with(a, b, c, true, true);
}

/// `c (m×n) += a (m×k) · b (k×n)`.
fn gemm_nn_acc<T: GemmElement>(m: usize, n: usize, k: usize, a: &[T], b: &[T], c: &mut [T]) {
    MatMul { m, n, k, trans_a: false, trans_b: false }.run_with(a, b, c, true, true);
}

/// `out = a + b` elementwise.
#[inline(always)]
fn sum_into<T: GemmElement>(out: &mut [T], a: &[T], b: &[T]) {
    for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
        *o = x.add(*y);
    }
}

/// `v = f(v)` elementwise, computed in f64.
#[inline(always)]
fn act<T: GemmElement>(v: &mut [T], f: impl Fn(f64) -> f64) {
    for x in v {
        *x = T::from_f64(f(x.to_f64()));
    }
}

/// Add the column sums of `m` (rows of `acc.len()`) to `acc`.
fn add_col_sums<T: GemmElement>(acc: &mut [T], m: &[T]) {
    for row in m.chunks_exact(acc.len()) {
        for (a, v) in acc.iter_mut().zip(row) {
            *a = a.add(*v);
        }
    }
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

    /// The time step a row of length `len` is at on step `s` of direction `d`, or `None`
    /// once `s` is past its length (the reverse direction starts at the row's last step).
    fn time_of(&self, d: usize, s: usize, len: usize) -> Option<usize> {
        (s < len).then(|| if d == 0 { s } else { len - 1 - s })
    }

    /// One (layer, direction) over the sequence: writes its half of `out` and the final
    /// states into `h`, `c`; returns the trace when `keep`.
    #[allow(clippy::too_many_arguments)]
    fn run_slot<T: GemmElement>(
        &self,
        p: &[T],
        slot: &Slot,
        d: usize,
        layer_in: &[T],
        lens: &[usize],
        h: &mut [T],
        c: &mut [T],
        out: &mut [T],
        keep: bool,
    ) -> Option<Trace<T>> {
        let (t_len, n, hs, g) = (self.seq, self.batch, self.hidden, self.mode.gates());
        let (gh, nh, width) = (g * hs, n * hs, self.directions * hs);
        let wi = &p[slot.w_i..slot.w_i + gh * slot.input];
        let wh = &p[slot.w_h..slot.w_h + gh * hs];
        let (bi, bh) = (&p[slot.b_i..slot.b_i + gh], &p[slot.b_h..slot.b_h + gh]);
        // The input projection of every step at once (written whole, so not zeroed first).
        let mut xw = Buffer::unset(t_len * n * gh);
        gemm_nt_bias(t_len * n, gh, slot.input, layer_in, wi, bi, &mut xw);
        let mut trace = keep.then(|| Trace {
            gates: Buffer::zeroed(t_len * n * gh),
            h_prev: Buffer::zeroed(t_len * nh),
            c_prev: Buffer::zeroed(if self.mode == Mode::Lstm { t_len * nh } else { 0 }),
            c: Buffer::zeroed(if self.mode == Mode::Lstm { t_len * nh } else { 0 }),
            hn: Buffer::zeroed(if self.mode == Mode::Gru { t_len * nh } else { 0 }),
        });
        let mut hh = vec![T::ZERO; n * gh];
        let mut new_h = vec![T::ZERO; nh];
        let mut new_c = vec![T::ZERO; nh];
        let mut hn = vec![T::ZERO; nh];
        let mut gates_row = vec![T::ZERO; gh];
        // The gate arithmetic at the CPU's full vector width (same results: see `wide`).
        crate::fastmath::wide(
            #[inline(always)]
            || {
                for s in 0..t_len {
                    gemm_nt_bias(n, gh, hs, h, wh, bh, &mut hh);
                    for r in 0..n {
                        let states = r * hs..(r + 1) * hs;
                        let Some(t) = self.time_of(d, s, lens[r]) else {
                            // Past this sequence's length: the state carries over, the output stays 0.
                            new_h[states.clone()].copy_from_slice(&h[states.clone()]);
                            new_c[states.clone()].copy_from_slice(&c[states]);
                            continue;
                        };
                        let at = (t * n + r) * gh;
                        self.cell(
                            &xw[at..at + gh],
                            &hh[r * gh..(r + 1) * gh],
                            &h[states.clone()],
                            &c[states.clone()],
                            &mut gates_row,
                            &mut new_h[states.clone()],
                            &mut new_c[states.clone()],
                            &mut hn[states.clone()],
                        );
                        let ts = (t * n + r) * hs..(t * n + r + 1) * hs;
                        if let Some(tr) = trace.as_mut() {
                            tr.gates[at..at + gh].copy_from_slice(&gates_row);
                            tr.h_prev[ts.clone()].copy_from_slice(&h[states.clone()]);
                            match self.mode {
                                Mode::Lstm => {
                                    tr.c_prev[ts.clone()].copy_from_slice(&c[states.clone()]);
                                    tr.c[ts].copy_from_slice(&new_c[states.clone()]);
                                }
                                Mode::Gru => tr.hn[ts].copy_from_slice(&hn[states.clone()]),
                                _ => {}
                            }
                        }
                        out[(t * n + r) * width + d * hs..][..hs].copy_from_slice(&new_h[states]);
                    }
                    h.copy_from_slice(&new_h);
                    if self.mode == Mode::Lstm {
                        c.copy_from_slice(&new_c);
                    }
                }
            },
        );
        trace
    }

    /// One batch row of one step: activated gates, new hidden (and cell) state. Each
    /// activation runs over a contiguous slice, so the loops vectorize.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn cell<T: GemmElement>(
        &self,
        gi: &[T],
        hh: &[T],
        h: &[T],
        c: &[T],
        gates: &mut [T],
        new_h: &mut [T],
        new_c: &mut [T],
        hn: &mut [T],
    ) {
        let hs = self.hidden;
        let f64s = |v: T| v.to_f64();
        match self.mode {
            Mode::RnnTanh | Mode::RnnRelu => {
                sum_into(gates, gi, hh);
                if self.mode == Mode::RnnTanh {
                    act(gates, tanh);
                } else {
                    act(gates, |x| x.max(0.0));
                }
                new_h.copy_from_slice(gates);
            }
            Mode::Lstm => {
                sum_into(gates, gi, hh);
                act(&mut gates[..2 * hs], sigmoid);
                act(&mut gates[2 * hs..3 * hs], tanh);
                act(&mut gates[3 * hs..], sigmoid);
                let (i, rest) = gates.split_at(hs);
                let (f, rest) = rest.split_at(hs);
                let (g, o) = rest.split_at(hs);
                for j in 0..hs {
                    new_c[j] = T::from_f64(f64s(f[j]) * f64s(c[j]) + f64s(i[j]) * f64s(g[j]));
                }
                for j in 0..hs {
                    new_h[j] = T::from_f64(f64s(o[j]) * tanh(f64s(new_c[j])));
                }
            }
            Mode::Gru => {
                sum_into(&mut gates[..2 * hs], &gi[..2 * hs], &hh[..2 * hs]);
                act(&mut gates[..2 * hs], sigmoid);
                hn.copy_from_slice(&hh[2 * hs..]);
                let (rz, nn) = gates.split_at_mut(2 * hs);
                for j in 0..hs {
                    nn[j] = T::from_f64(tanh(f64s(gi[2 * hs + j]) + f64s(rz[j]) * f64s(hn[j])));
                }
                let z = &rz[hs..];
                for j in 0..hs {
                    new_h[j] = T::from_f64((1.0 - f64s(z[j])) * f64s(nn[j]) + f64s(z[j]) * f64s(h[j]));
                }
            }
        }
    }

    /// Forward over every layer: `(out, hy, cy, layer inputs, traces)`; inputs and traces
    /// are kept only when `keep`.
    #[allow(clippy::type_complexity)]
    fn run<T: GemmElement>(
        &self,
        x: &[T],
        p: &[T],
        h0: &[T],
        c0: &[T],
        lens: &[usize],
        keep: bool,
    ) -> (Buffer<T>, Buffer<T>, Buffer<T>, Vec<Buffer<T>>, Vec<Trace<T>>) {
        let (t_len, n, hs, dirs) = (self.seq, self.batch, self.hidden, self.directions);
        let slots = self.slots();
        let nh = n * hs;
        let mut hy = Buffer::from_slice(&h0[..self.layers * dirs * nh]);
        let mut cy = if self.mode == Mode::Lstm {
            Buffer::from_slice(&c0[..hy.len()])
        } else {
            Buffer::zeroed(hy.len())
        };
        let mut layer_in = Buffer::from_slice(x);
        let mut inputs = Vec::new();
        let mut traces = Vec::new();
        for l in 0..self.layers {
            let mut out = Buffer::zeroed(t_len * n * dirs * hs);
            for d in 0..dirs {
                let k = l * dirs + d;
                let (h, c) = (&mut hy[k * nh..(k + 1) * nh], &mut cy[k * nh..(k + 1) * nh]);
                if let Some(tr) = self.run_slot(p, &slots[k], d, &layer_in, lens, h, c, &mut out, keep) {
                    traces.push(tr);
                }
            }
            let prev = std::mem::replace(&mut layer_in, out);
            if keep {
                inputs.push(prev);
            }
        }
        if self.mode != Mode::Lstm {
            cy.fill(T::ZERO);
        }
        (layer_in, hy, cy, inputs, traces)
    }

    /// Every row's length: `lengths` (MXNet's `sequence_length`, clamped to the sequence)
    /// or the full sequence.
    fn lengths(&self, lengths: Option<&[usize]>) -> Vec<usize> {
        match lengths {
            Some(l) => l.iter().map(|&v| v.min(self.seq)).collect(),
            None => vec![self.seq; self.batch],
        }
    }

    /// Forward pass: `(out, hy, cy)` (cy is zeros except for LSTM). With `lengths` (one per
    /// batch row), steps past a row's length leave its state as it was and its output 0;
    /// the reverse direction starts at the row's last step (cuDNN's padded layout).
    pub fn forward<T: GemmElement>(
        &self,
        x: &[T],
        p: &[T],
        h0: &[T],
        c0: &[T],
        lengths: Option<&[usize]>,
    ) -> (Buffer<T>, Buffer<T>, Buffer<T>) {
        let lens = self.lengths(lengths);
        let (out, hy, cy, _, _) = self.run(x, p, h0, c0, &lens, false);
        (out, hy, cy)
    }

    /// Gradients `(dx, dparams, dh0, dc0)` from the gradients of `out`, `hy` and `cy`
    /// (pass zeros for outputs not used), with the same `lengths` as the forward.
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    pub fn backward<T: GemmElement>(
        &self,
        x: &[T],
        p: &[T],
        h0: &[T],
        c0: &[T],
        dout: &[T],
        dhy: &[T],
        dcy: &[T],
        lengths: Option<&[usize]>,
    ) -> (Buffer<T>, Buffer<T>, Buffer<T>, Buffer<T>) {
        let lens = self.lengths(lengths);
        let (_, _, _, inputs, traces) = self.run(x, p, h0, c0, &lens, true);
        self.backward_saved(Saved { lens, inputs, traces }, p, h0.len(), dout, dhy, dcy)
    }

    /// Forward pass that also returns what backward needs (MXNet's reserve space), so a
    /// training step does not run the forward twice.
    #[allow(clippy::type_complexity)]
    pub fn forward_saved<T: GemmElement>(
        &self,
        x: &[T],
        p: &[T],
        h0: &[T],
        c0: &[T],
        lengths: Option<&[usize]>,
    ) -> (Buffer<T>, Buffer<T>, Buffer<T>, Saved<T>) {
        let lens = self.lengths(lengths);
        let (out, hy, cy, inputs, traces) = self.run(x, p, h0, c0, &lens, true);
        (out, hy, cy, Saved { lens, inputs, traces })
    }

    /// [`Rnn::backward`] from a [`Saved`] forward of the same inputs.
    #[allow(clippy::type_complexity)]
    pub fn backward_saved<T: GemmElement>(
        &self,
        saved: Saved<T>,
        p: &[T],
        state_len: usize,
        dout: &[T],
        dhy: &[T],
        dcy: &[T],
    ) -> (Buffer<T>, Buffer<T>, Buffer<T>, Buffer<T>) {
        let Saved { lens, inputs, traces } = saved;
        let (t_len, n, hs, dirs, g) = (self.seq, self.batch, self.hidden, self.directions, self.mode.gates());
        let (gh, nh, width) = (g * hs, n * hs, dirs * hs);
        let slots = self.slots();
        let mut dp = Buffer::zeroed(p.len());
        let (mut dh0, mut dc0) = (Buffer::zeroed(state_len), Buffer::zeroed(state_len));
        let mut d_above = Buffer::from_slice(dout);
        // Both are zeroed per (layer, direction) below.
        let mut dgi_all = Buffer::unset(t_len * n * gh);
        // Only GRU's recurrent gate gradients differ from the input ones.
        let mut dgh_all = Buffer::unset(if self.mode == Mode::Gru { t_len * n * gh } else { 0 });
        let mut dgh_step = vec![T::ZERO; n * gh];
        for l in (0..self.layers).rev() {
            let input = slots[l * dirs].input;
            let layer_in = &inputs[l];
            let mut dx = Buffer::zeroed(t_len * n * input);
            for d in 0..dirs {
                let k = l * dirs + d;
                let (slot, tr) = (&slots[k], &traces[k]);
                let wh = &p[slot.w_h..slot.w_h + gh * hs];
                let mut dh: Vec<f64> = dhy[k * nh..(k + 1) * nh].iter().map(|v| v.to_f64()).collect();
                let mut dc: Vec<f64> = dcy[k * nh..(k + 1) * nh].iter().map(|v| v.to_f64()).collect();
                let mut dh_prev = vec![T::ZERO; nh];
                dgi_all.fill(T::ZERO);
                if self.mode == Mode::Gru {
                    dgh_all.fill(T::ZERO);
                }
                // The gate gradients at the CPU's full vector width (same results: see
                // `wide`).
                crate::fastmath::wide(
                    #[inline(always)]
                    || {
                        for s in (0..t_len).rev() {
                            let times: Vec<Option<usize>> =
                                (0..n).map(|r| self.time_of(d, s, lens[r])).collect();
                            let mut dc_prev = dc.clone();
                            let mut dh_direct = vec![0.0; nh];
                            dgh_step.fill(T::ZERO);
                            for (r, t) in times.iter().enumerate() {
                                let Some(t) = *t else { continue };
                                for j in 0..hs {
                                    dh[r * hs + j] += d_above[(t * n + r) * width + d * hs + j].to_f64();
                                }
                                let at0 = (t * n + r) * gh;
                                if self.mode == Mode::Lstm {
                                    // Gate by gate over contiguous slices, so the loop vectorizes;
                                    // the gradient of the recurrent input equals the input's.
                                    let gates = &tr.gates[at0..at0 + gh];
                                    let [i, f, gg, o]: [&[T]; 4] =
                                        std::array::from_fn(|q| &gates[q * hs..][..hs]);
                                    let ts = (t * n + r) * hs..(t * n + r + 1) * hs;
                                    let (cq, cp) = (&tr.c[ts.clone()], &tr.c_prev[ts]);
                                    let (dh, dc) = (&dh[r * hs..][..hs], &dc[r * hs..][..hs]);
                                    let dcp = &mut dc_prev[r * hs..][..hs];
                                    let (di, rest) = dgi_all[at0..at0 + gh].split_at_mut(hs);
                                    let (df, rest) = rest.split_at_mut(hs);
                                    let (dg, do_) = rest.split_at_mut(hs);
                                    for j in 0..hs {
                                        let (i, f, gg, o) =
                                            (i[j].to_f64(), f[j].to_f64(), gg[j].to_f64(), o[j].to_f64());
                                        let tc = tanh(cq[j].to_f64());
                                        let dct = dc[j] + dh[j] * o * (1.0 - tc * tc);
                                        di[j] = T::from_f64(dct * gg * i * (1.0 - i));
                                        df[j] = T::from_f64(dct * cp[j].to_f64() * f * (1.0 - f));
                                        dg[j] = T::from_f64(dct * i * (1.0 - gg * gg));
                                        do_[j] = T::from_f64(dh[j] * tc * o * (1.0 - o));
                                        dcp[j] = dct * f;
                                    }
                                    dgh_step[r * gh..(r + 1) * gh].copy_from_slice(&dgi_all[at0..at0 + gh]);
                                    continue;
                                }
                                for j in 0..hs {
                                    let at = |q: usize| at0 + q * hs + j;
                                    let q = r * hs + j;
                                    let tq = (t * n + r) * hs + j;
                                    let gate = |i: usize| tr.gates[at(i)].to_f64();
                                    let mut set = |i: usize, vi: f64, vh: f64| {
                                        dgi_all[at(i)] = T::from_f64(vi);
                                        if self.mode == Mode::Gru {
                                            dgh_all[at(i)] = T::from_f64(vh);
                                        }
                                        dgh_step[r * gh + i * hs + j] = T::from_f64(vh);
                                    };
                                    match self.mode {
                                        Mode::RnnTanh | Mode::RnnRelu => {
                                            let v = gate(0);
                                            let da = if self.mode == Mode::RnnTanh {
                                                dh[q] * (1.0 - v * v)
                                            } else if v > 0.0 {
                                                dh[q]
                                            } else {
                                                0.0
                                            };
                                            set(0, da, da);
                                        }
                                        Mode::Lstm => unreachable!("LSTM rows take the sliced loop above"),
                                        Mode::Gru => {
                                            let (rg, z, nn) = (gate(0), gate(1), gate(2));
                                            let dn = dh[q] * (1.0 - z);
                                            let dz = dh[q] * (tr.h_prev[tq].to_f64() - nn);
                                            dh_direct[q] = dh[q] * z;
                                            let dan = dn * (1.0 - nn * nn);
                                            let dar = dan * tr.hn[tq].to_f64() * rg * (1.0 - rg);
                                            let daz = dz * z * (1.0 - z);
                                            set(0, dar, dar);
                                            set(1, daz, daz);
                                            set(2, dan, dan * rg);
                                        }
                                    }
                                }
                            }
                            // dh_prev = dgh · W_h2h (+ the direct path of GRU's z gate); rows past
                            // their length pass their gradient through unchanged.
                            dh_prev.iter_mut().zip(&dh_direct).for_each(|(a, v)| *a = T::from_f64(*v));
                            gemm_nn_acc(n, hs, gh, &dgh_step, wh, &mut dh_prev);
                            for (r, t) in times.iter().enumerate() {
                                if t.is_some() {
                                    for j in r * hs..(r + 1) * hs {
                                        dh[j] = dh_prev[j].to_f64();
                                    }
                                }
                            }
                            dc = dc_prev;
                        }
                    },
                );
                for (a, v) in dh0[k * nh..(k + 1) * nh].iter_mut().zip(&dh) {
                    *a = T::from_f64(*v);
                }
                for (a, v) in dc0[k * nh..(k + 1) * nh].iter_mut().zip(&dc) {
                    *a = T::from_f64(*v);
                }
                // Whole-sequence products: weight, bias and input gradients.
                let rows = t_len * n;
                gemm_tn_acc(gh, input, rows, &dgi_all, layer_in, &mut dp[slot.w_i..slot.w_i + gh * input]);
                let dgh_all = if self.mode == Mode::Gru { &dgh_all } else { &dgi_all };
                gemm_tn_acc(gh, hs, rows, dgh_all, &tr.h_prev, &mut dp[slot.w_h..slot.w_h + gh * hs]);
                add_col_sums(&mut dp[slot.b_i..slot.b_i + gh], &dgi_all);
                add_col_sums(&mut dp[slot.b_h..slot.b_h + gh], dgh_all);
                let wi = &p[slot.w_i..slot.w_i + gh * input];
                gemm_nn_acc(rows, input, gh, &dgi_all, wi, &mut dx);
            }
            d_above = dx;
        }
        (d_above, dp, dh0, dc0)
    }
}
