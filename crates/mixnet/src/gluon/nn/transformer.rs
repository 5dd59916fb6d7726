//! Transformer layers on the fused attention operator: `MultiHeadAttention`,
//! `TransformerEncoderLayer`, `TransformerEncoder`. MXNet 1.9's Gluon has none (GluonNLP
//! had them); the structure and defaults follow the original post-norm encoder as GluonNLP
//! and PyTorch build it: `x = LN(x + Dropout(MHA(x)))`, `x = LN(x + Dropout(FFN(x)))`,
//! with `pre_norm` for the `x + MHA(LN(x))` variant. Inputs are `(batch, seq, units)`.

use super::{Dense, Dropout, LayerNorm};
use crate::gluon::block::{Block, BlockBase, HybridBlock};
use crate::gluon::op;
use crate::{Error, NDArray, Result};

/// `(batch, seq, heads·dim)` → `(batch, heads, seq, dim)`.
fn split_heads(x: &NDArray, heads: usize) -> Result<NDArray> {
    let s = x.shape();
    let shape = format!("({}, {}, {heads}, -1)", s[0], s[1]);
    let x = op("Reshape", &[x.clone()], &[("shape", &shape)])?;
    op("transpose", &[x], &[("axes", "(0, 2, 1, 3)")])
}

/// The inverse of `split_heads`.
fn merge_heads(x: &NDArray) -> Result<NDArray> {
    let x = op("transpose", &[x.clone()], &[("axes", "(0, 2, 1, 3)")])?;
    op("Reshape", &[x], &[("shape", "(0, 0, -1)")])
}

/// Multi-head scaled dot-product attention with input and output projections (query,
/// key, value and output `Dense` layers of `units` each, named `query_`, `key_`,
/// `value_`, `proj_`). Attention runs in `_contrib_scaled_dot_product_attention`, so memory
/// stays linear in the sequence length.
pub struct MultiHeadAttention {
    base: BlockBase,
    units: usize,
    num_heads: usize,
    causal: bool,
    query: Dense,
    key: Dense,
    value: Dense,
    proj: Dense,
    dropout: Dropout,
}

impl MultiHeadAttention {
    /// `units` must be a multiple of `num_heads`.
    pub fn new(units: usize, num_heads: usize) -> Result<Self> {
        if num_heads == 0 || !units.is_multiple_of(num_heads) {
            return Err(Error::Invalid(format!(
                "MultiHeadAttention: units={units} is not a positive multiple of num_heads={num_heads}"
            )));
        }
        let base = BlockBase::new(None, "multiheadattention");
        let (query, key, value, proj, dropout) = {
            let _scope = base.name_scope();
            let dense = |p: &str| Dense::with_prefix(p, units).flatten(false);
            (dense("query_"), dense("key_"), dense("value_"), dense("proj_"), Dropout::new(0.0))
        };
        Ok(MultiHeadAttention { base, units, num_heads, causal: false, query, key, value, proj, dropout })
    }
    /// Hide keys after each query position (decoder self-attention).
    pub fn causal(mut self, causal: bool) -> Self {
        self.causal = causal;
        self
    }
    /// Dropout on the attention output, before the projection (training mode only).
    pub fn dropout(mut self, rate: f64) -> Self {
        let _scope = self.base.name_scope();
        self.dropout = Dropout::new(rate);
        self
    }
    pub fn query(&self) -> &Dense {
        &self.query
    }
    pub fn key(&self) -> &Dense {
        &self.key
    }
    pub fn value(&self) -> &Dense {
        &self.value
    }
    pub fn proj(&self) -> &Dense {
        &self.proj
    }

    /// Attend from `query` `(batch, q_len, q_units)` over `key`/`value` `(batch, kv_len,
    /// units)`; `valid_length` `(batch,)` hides padded keys.
    pub fn attend(
        &self,
        query: &NDArray,
        key: &NDArray,
        value: &NDArray,
        valid_length: Option<&NDArray>,
    ) -> Result<NDArray> {
        for (what, x) in [("query", query), ("key", key), ("value", value)] {
            if x.ndim() != 3 || x.shape()[0] != query.shape()[0] {
                return Err(Error::Invalid(format!(
                    "{}: {what} must be (batch, seq, units) with query's batch, got {} (query {})",
                    self.name(),
                    x.shape(),
                    query.shape()
                )));
            }
        }
        let q = split_heads(&self.query.call(query)?, self.num_heads)?;
        let k = split_heads(&self.key.call(key)?, self.num_heads)?;
        let v = split_heads(&self.value.call(value)?, self.num_heads)?;
        let mut inputs = vec![q, k, v];
        inputs.extend(valid_length.cloned());
        let attended = op(
            "_contrib_scaled_dot_product_attention",
            &inputs,
            &[
                ("causal", crate::gluon::bool_attr(self.causal)),
                ("use_valid_length", crate::gluon::bool_attr(valid_length.is_some())),
            ],
        )?;
        let merged = self.dropout.call(&merge_heads(&attended)?)?;
        self.proj.call(&merged)
    }
}

impl Block for MultiHeadAttention {
    fn base(&self) -> &BlockBase {
        &self.base
    }
    /// Self-attention.
    fn forward(&self, x: &NDArray) -> Result<NDArray> {
        self.attend(x, x, x, None)
    }
    fn children(&self) -> Vec<(String, &dyn Block)> {
        vec![
            ("query".into(), &self.query as &dyn Block),
            ("key".into(), &self.key),
            ("value".into(), &self.value),
            ("proj".into(), &self.proj),
            ("dropout".into(), &self.dropout),
        ]
    }
    fn describe(&self) -> String {
        format!(
            "MultiHeadAttention(units={}, num_heads={}, causal={})",
            self.units, self.num_heads, self.causal
        )
    }
    crate::impl_as_dyn!();
}
impl HybridBlock for MultiHeadAttention {}

/// One encoder layer: self-attention and a two-layer feed-forward network, each in a
/// residual branch with dropout and layer normalization.
pub struct TransformerEncoderLayer {
    base: BlockBase,
    pre_norm: bool,
    activation: String,
    attention: MultiHeadAttention,
    ffn_1: Dense,
    ffn_2: Dense,
    ln_1: LayerNorm,
    ln_2: LayerNorm,
    dropout: Dropout,
}

impl TransformerEncoderLayer {
    /// `units` model width, `hidden_size` feed-forward width, `num_heads` heads; `relu`
    /// activation, no dropout, post-norm, LayerNorm epsilon 1e-5.
    pub fn new(units: usize, hidden_size: usize, num_heads: usize) -> Result<Self> {
        let base = BlockBase::new(None, "transformerencoderlayer");
        let _scope = base.name_scope();
        let attention = MultiHeadAttention::new(units, num_heads)?;
        let ffn_1 = Dense::with_prefix("ffn_1_", hidden_size).flatten(false);
        let ffn_2 = Dense::with_prefix("ffn_2_", units).flatten(false);
        let ln_1 = LayerNorm::new();
        let ln_2 = LayerNorm::new();
        let dropout = Dropout::new(0.0);
        drop(_scope);
        Ok(TransformerEncoderLayer {
            base,
            pre_norm: false,
            activation: "relu".into(),
            attention,
            ffn_1,
            ffn_2,
            ln_1,
            ln_2,
            dropout,
        })
    }
    /// Normalize before each branch instead of after the residual sum.
    pub fn pre_norm(mut self, pre_norm: bool) -> Self {
        self.pre_norm = pre_norm;
        self
    }
    /// Feed-forward activation: `relu` (default), `gelu` (erf form), or any of
    /// `Activation`'s types (`tanh`, `sigmoid`, `softrelu`, `softsign`).
    pub fn activation(mut self, act: &str) -> Result<Self> {
        if !["relu", "gelu", "tanh", "sigmoid", "softrelu", "softsign"].contains(&act) {
            return Err(Error::Invalid(format!("{}: unknown activation '{act}'", self.name())));
        }
        self.activation = act.into();
        Ok(self)
    }
    /// Dropout on both residual branches and inside attention.
    pub fn dropout(mut self, rate: f64) -> Self {
        let _scope = self.base.name_scope();
        self.dropout = Dropout::new(rate);
        drop(_scope);
        self.attention = self.attention.dropout(rate);
        self
    }
    pub fn attention(&self) -> &MultiHeadAttention {
        &self.attention
    }
    pub fn ffn(&self) -> (&Dense, &Dense) {
        (&self.ffn_1, &self.ffn_2)
    }
    pub fn layer_norms(&self) -> (&LayerNorm, &LayerNorm) {
        (&self.ln_1, &self.ln_2)
    }

    /// The layer with padded keys hidden by `valid_length` `(batch,)`.
    pub fn forward_masked(&self, x: &NDArray, valid_length: Option<&NDArray>) -> Result<NDArray> {
        let add = |a: &NDArray, b: &NDArray| op("elemwise_add", &[a.clone(), b.clone()], &[]);
        let attend = |h: &NDArray| -> Result<NDArray> {
            self.dropout.call(&self.attention.attend(h, h, h, valid_length)?)
        };
        let ffn = |h: &NDArray| -> Result<NDArray> {
            let h = self.ffn_1.call(h)?;
            let h = match self.activation.as_str() {
                "gelu" => op("LeakyReLU", &[h], &[("act_type", "gelu")])?,
                act => op("Activation", &[h], &[("act_type", act)])?,
            };
            self.dropout.call(&self.ffn_2.call(&h)?)
        };
        if self.pre_norm {
            let x = add(x, &attend(&self.ln_1.call(x)?)?)?;
            add(&x, &ffn(&self.ln_2.call(&x)?)?)
        } else {
            let x = self.ln_1.call(&add(x, &attend(x)?)?)?;
            self.ln_2.call(&add(&x, &ffn(&x)?)?)
        }
    }
}

impl Block for TransformerEncoderLayer {
    fn base(&self) -> &BlockBase {
        &self.base
    }
    fn forward(&self, x: &NDArray) -> Result<NDArray> {
        self.forward_masked(x, None)
    }
    fn children(&self) -> Vec<(String, &dyn Block)> {
        vec![
            ("attention".into(), &self.attention as &dyn Block),
            ("ffn_1".into(), &self.ffn_1),
            ("ffn_2".into(), &self.ffn_2),
            ("ln_1".into(), &self.ln_1),
            ("ln_2".into(), &self.ln_2),
            ("dropout".into(), &self.dropout),
        ]
    }
    crate::impl_as_dyn!();
}
impl HybridBlock for TransformerEncoderLayer {}

/// A stack of encoder layers; with `pre_norm` a final LayerNorm closes the stack.
pub struct TransformerEncoder {
    base: BlockBase,
    layers: Vec<TransformerEncoderLayer>,
    final_norm: Option<LayerNorm>,
}

impl TransformerEncoder {
    /// `num_layers` layers built by `make(i)` inside this encoder's name scope, e.g.
    /// `|_| TransformerEncoderLayer::new(64, 256, 4)`.
    pub fn new(
        num_layers: usize,
        pre_norm: bool,
        make: impl Fn(usize) -> Result<TransformerEncoderLayer>,
    ) -> Result<Self> {
        let base = BlockBase::new(None, "transformerencoder");
        let _scope = base.name_scope();
        let layers = (0..num_layers).map(|i| Ok(make(i)?.pre_norm(pre_norm))).collect::<Result<Vec<_>>>()?;
        let final_norm = pre_norm.then(LayerNorm::new);
        drop(_scope);
        Ok(TransformerEncoder { base, layers, final_norm })
    }
    pub fn layers(&self) -> &[TransformerEncoderLayer] {
        &self.layers
    }

    pub fn forward_masked(&self, x: &NDArray, valid_length: Option<&NDArray>) -> Result<NDArray> {
        let mut x = x.clone();
        for l in &self.layers {
            x = l.forward_masked(&x, valid_length)?;
        }
        match &self.final_norm {
            Some(ln) => ln.call(&x),
            None => Ok(x),
        }
    }
}

impl Block for TransformerEncoder {
    fn base(&self) -> &BlockBase {
        &self.base
    }
    fn forward(&self, x: &NDArray) -> Result<NDArray> {
        self.forward_masked(x, None)
    }
    fn children(&self) -> Vec<(String, &dyn Block)> {
        let mut v: Vec<(String, &dyn Block)> =
            self.layers.iter().enumerate().map(|(i, l)| (i.to_string(), l as &dyn Block)).collect();
        if let Some(ln) = &self.final_norm {
            v.push(("final_norm".into(), ln));
        }
        v
    }
    crate::impl_as_dyn!();
}
impl HybridBlock for TransformerEncoder {}
