//! Recurrent layers (MXNet's `gluon.rnn` `RNN`, `LSTM`, `GRU`) on the fused `RNN`
//! operator. Parameters carry MXNet's names (`l0_i2h_weight`, `l0_h2h_weight`,
//! `l0_i2h_bias`, `l0_h2h_bias`, `r0_...` for the reverse direction) and shapes, and are
//! concatenated in the operator's flat order, so `save_parameters` files of MXNet's layers
//! load unchanged.

mod cell;

pub use cell::{
    BidirectionalCell, DropoutCell, GRUCell, LSTMCell, RNNCell, RecurrentCell, ResidualCell,
    SequentialRNNCell,
};

use std::sync::Arc;

use crate::gluon::block::{Block, BlockBase, HybridBlock};
use crate::gluon::{op, Parameter};
use crate::initializer::{Initializer, Zero};
use crate::{Error, NDArray, Result};

/// A fused recurrent layer; build it with [`RNN::new`], [`LSTM::new`] or [`GRU::new`].
pub struct RnnLayer {
    base: BlockBase,
    mode: &'static str,
    hidden: usize,
    layers: usize,
    bidirectional: bool,
    ntc: bool,
    /// `(direction, layer)` weights and biases in the operator's order.
    params: Vec<(String, Parameter)>,
}

/// MXNet's `gluon.rnn.RNN(hidden_size, num_layers=1, activation='relu', layout='TNC')`.
pub struct RNN;
/// MXNet's `gluon.rnn.LSTM(hidden_size, num_layers=1, layout='TNC')`.
pub struct LSTM;
/// MXNet's `gluon.rnn.GRU(hidden_size, num_layers=1, layout='TNC')`.
pub struct GRU;

impl RNN {
    /// `activation` is `"relu"` (MXNet's default) or `"tanh"`.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(hidden_size: usize, activation: &str) -> Result<RnnLayer> {
        let mode = match activation {
            "relu" => "rnn_relu",
            "tanh" => "rnn_tanh",
            other => {
                return Err(Error::Invalid(format!("RNN: activation must be relu or tanh, got {other}")))
            }
        };
        Ok(RnnLayer::new(mode, "rnn", hidden_size, 1, false))
    }
}

impl LSTM {
    #[allow(clippy::new_ret_no_self)]
    pub fn new(hidden_size: usize) -> RnnLayer {
        RnnLayer::new("lstm", "lstm", hidden_size, 1, false)
    }
}

impl GRU {
    #[allow(clippy::new_ret_no_self)]
    pub fn new(hidden_size: usize) -> RnnLayer {
        RnnLayer::new("gru", "gru", hidden_size, 1, false)
    }
}

fn gates(mode: &str) -> usize {
    match mode {
        "lstm" => 4,
        "gru" => 3,
        _ => 1,
    }
}

impl RnnLayer {
    fn new(mode: &'static str, hint: &str, hidden: usize, layers: usize, bidirectional: bool) -> RnnLayer {
        let base = BlockBase::new(None, hint);
        let mut layer =
            RnnLayer { base, mode, hidden, layers, bidirectional, ntc: false, params: Vec::new() };
        layer.make_params();
        layer
    }

    fn make_params(&mut self) {
        let gh = gates(self.mode) * self.hidden;
        let dirs: &[&str] = if self.bidirectional { &["l", "r"] } else { &["l"] };
        let zero: Option<Arc<dyn Initializer>> = Some(Arc::new(Zero));
        let mut weights = Vec::new();
        let mut biases = Vec::new();
        for l in 0..self.layers {
            // Layer 0's input size is inferred at the first forward (0 = unknown).
            let input = if l == 0 { 0 } else { self.hidden * dirs.len() };
            for d in dirs {
                for (g, cols) in [("i2h", input), ("h2h", self.hidden)] {
                    let name = format!("{d}{l}_{g}_weight");
                    weights.push((name.clone(), self.base.param(&name, &[gh, cols])));
                    let name = format!("{d}{l}_{g}_bias");
                    biases.push((name.clone(), self.base.param(&name, &[gh]).with_init(zero.clone())));
                }
            }
        }
        self.params = weights.into_iter().chain(biases).collect();
    }

    /// Number of stacked layers (rebuilds the parameters).
    pub fn num_layers(mut self, n: usize) -> Self {
        self.layers = n.max(1);
        self.make_params();
        self
    }

    /// Run both directions (rebuilds the parameters).
    pub fn bidirectional(mut self, yes: bool) -> Self {
        self.bidirectional = yes;
        self.make_params();
        self
    }

    /// `"TNC"` (default) or `"NTC"`.
    pub fn layout(mut self, layout: &str) -> Result<Self> {
        self.ntc = match layout {
            "TNC" => false,
            "NTC" => true,
            other => {
                return Err(Error::Invalid(format!(
                    "{}: layout must be TNC or NTC, got {other}",
                    self.name()
                )))
            }
        };
        Ok(self)
    }

    fn directions(&self) -> usize {
        if self.bidirectional {
            2
        } else {
            1
        }
    }

    /// Zero initial states for a batch: `[h]` (and `c` for LSTM), each
    /// `(layers·directions, batch, hidden)`.
    pub fn begin_state(&self, batch: usize) -> Result<Vec<NDArray>> {
        let shape = [self.layers * self.directions(), batch, self.hidden];
        let n = if self.mode == "lstm" { 2 } else { 1 };
        let dtype = self.params[0].1.dtype();
        (0..n).map(|_| NDArray::zeros(shape, dtype, crate::cpu(0))).collect()
    }

    /// Forward with explicit states: returns the output and the final states.
    pub fn forward_with_states(&self, x: &NDArray, states: &[NDArray]) -> Result<(NDArray, Vec<NDArray>)> {
        self.forward_with_lengths(x, states, None)
    }

    /// Forward with explicit states and per-sample lengths `(batch,)` (MXNet's
    /// `use_sequence_length=True` layer called with `sequence_length`): outputs past a
    /// sample's length are 0 and its final state is the one at its last step.
    pub fn forward_with_lengths(
        &self,
        x: &NDArray,
        states: &[NDArray],
        sequence_length: Option<&NDArray>,
    ) -> Result<(NDArray, Vec<NDArray>)> {
        let name = self.name().to_string();
        if x.shape().ndim() != 3 {
            return Err(Error::op(
                &name,
                format!("input must be 3-D ({}), got {}", if self.ntc { "NTC" } else { "TNC" }, x.shape()),
            ));
        }
        let x =
            if self.ntc { op("SwapAxis", &[x.clone()], &[("dim1", "0"), ("dim2", "1")])? } else { x.clone() };
        let input = x.shape()[2];
        let gh = gates(self.mode) * self.hidden;
        self.params[0].1.infer_shape(&name, &[gh, input])?;
        if self.bidirectional {
            self.params[2].1.infer_shape(&name, &[gh, input])?;
        }
        let flat: Vec<NDArray> = self
            .params
            .iter()
            .map(|(_, p)| op("Reshape", &[p.data()?], &[("shape", "(-1,)")]))
            .collect::<Result<_>>()?;
        let num = flat.len().to_string();
        let packed = op("Concat", &flat, &[("num_args", &num), ("dim", "0")])?;
        let mut inputs = vec![x, packed];
        inputs.extend(states.iter().cloned());
        inputs.extend(sequence_length.cloned());
        let (hidden, layers) = (self.hidden.to_string(), self.layers.to_string());
        let bi = if self.bidirectional { "True" } else { "False" };
        let attrs = [
            ("mode", self.mode),
            ("state_size", hidden.as_str()),
            ("num_layers", layers.as_str()),
            ("bidirectional", bi),
            ("state_outputs", "True"),
            ("use_sequence_length", if sequence_length.is_some() { "True" } else { "False" }),
        ];
        let mut outs = crate::imperative::invoke("RNN", &inputs, &attrs)?;
        let mut out = outs.remove(0);
        if self.ntc {
            out = op("SwapAxis", &[out], &[("dim1", "0"), ("dim2", "1")])?;
        }
        Ok((out, outs))
    }
}

impl Block for RnnLayer {
    fn base(&self) -> &BlockBase {
        &self.base
    }
    /// The output sequence from zero initial states (MXNet's `layer(x)` without states).
    fn forward(&self, x: &NDArray) -> Result<NDArray> {
        let batch = x.shape().get(if self.ntc { 0 } else { 1 }).copied().unwrap_or(0);
        let states = self.begin_state(batch)?;
        Ok(self.forward_with_states(x, &states)?.0)
    }
    fn params(&self) -> Vec<(String, Parameter)> {
        self.params.clone()
    }
    fn describe(&self) -> String {
        format!(
            "{}({} layers, hidden {}, {})",
            self.mode.to_uppercase(),
            self.layers,
            self.hidden,
            if self.bidirectional { "bidirectional" } else { "unidirectional" }
        )
    }
    crate::impl_as_dyn!();
}
impl HybridBlock for RnnLayer {}
