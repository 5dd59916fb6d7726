//! Operators MXNet lacked, for transformer models (registered with MXNet's `_contrib_`
//! prefix for extensions):
//!
//! - `_contrib_scaled_dot_product_attention(query, key, value[, valid_length])`:
//!   `softmax(q·kᵀ·scale + mask)·v`, computed flash-attention style in O(sequence) memory
//!   (see `mixnet_kernels::attention`). Layout `(batch, heads, seq, dim)`; `key`/`value`
//!   may have fewer heads than `query` (grouped-query attention: a divisor of the query
//!   heads). Attributes: `causal` (False; keys after the query position are hidden),
//!   `scale` (None: `1/sqrt(dim)`), `use_valid_length` (False; a `(batch,)` input of how
//!   many keys each sequence has, the rest being padding).
//! - `_contrib_rope(data)`: rotary position embedding over `(..., seq, dim)`, half-split
//!   pairs `(i, i + dim/2)` as GPT-NeoX/LLaMA; attributes `base` (10000), `offset` (0).

use std::sync::Arc;

use mixnet_kernels::attention::{rope, Attention};

use super::kernel::{check_float, info, load, load_i64, run_kernel, write};
use crate::op::{Attrs, Blob, GradContext, OpContext, Operator, Registry, TensorInfo};
use crate::{Error, NDArray, Result, Shape};

const SDPA: &str = "_contrib_scaled_dot_product_attention";
const ROPE: &str = "_contrib_rope";

/// A configured scaled dot-product attention.
#[derive(Clone, Copy)]
pub struct Sdpa {
    causal: bool,
    scale: Option<f64>,
    use_valid_length: bool,
}

fn build_sdpa(_name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    Ok(Arc::new(Sdpa {
        causal: attrs.bool("causal", false)?,
        scale: attrs.opt_float("scale")?,
        use_valid_length: attrs.bool("use_valid_length", false)?,
    }))
}

fn dims4(what: &str, s: &Shape) -> Result<[usize; 4]> {
    match *s.dims() {
        [a, b, c, d] => Ok([a, b, c, d]),
        _ => Err(Error::op(SDPA, format!("{what} must be 4-D (batch, heads, seq, dim), got {s}"))),
    }
}

impl Sdpa {
    fn geometry(&self, q: &Shape, k: &Shape, v: &Shape) -> Result<Attention> {
        let ([b, hq, lq, d], [kb, hk, lk, kd], [vb, vh, vl, dv]) =
            (dims4("query", q)?, dims4("key", k)?, dims4("value", v)?);
        if kb != b || vb != b || kd != d || vh != hk || vl != lk {
            return Err(Error::op(
                SDPA,
                format!("query {q}, key {k} and value {v} do not fit (batch, heads, seq, dim)"),
            ));
        }
        if hk == 0 || hq % hk != 0 {
            return Err(Error::op(SDPA, format!("key/value heads ({hk}) must divide query heads ({hq})")));
        }
        let scale = self.scale.unwrap_or(1.0 / (d as f64).sqrt());
        Ok(Attention {
            batch: b,
            q_heads: hq,
            kv_heads: hk,
            q_len: lq,
            k_len: lk,
            dim: d,
            v_dim: dv,
            scale,
            causal: self.causal,
        })
    }

    fn valid(&self, g: &Attention, b: Option<&Blob<'_>>) -> Result<Option<Vec<usize>>> {
        let Some(b) = b.filter(|_| self.use_valid_length) else { return Ok(None) };
        load_i64(b)?
            .into_iter()
            .map(|v| usize::try_from(v).ok().filter(|&v| v <= g.k_len))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| Error::op(SDPA, format!("valid_length values must be in 0..={}", g.k_len)))
    }
}

impl Operator for Sdpa {
    fn name(&self) -> &'static str {
        SDPA
    }
    fn num_inputs(&self) -> usize {
        3 + usize::from(self.use_valid_length)
    }
    /// The output and (hidden) each row's log-sum-exp, which the gradient needs.
    fn num_outputs(&self) -> usize {
        2
    }
    fn num_visible_outputs(&self) -> usize {
        1
    }
    fn input_names(&self) -> Vec<String> {
        let mut v: Vec<String> = ["query", "key", "value"].iter().map(|s| s.to_string()).collect();
        if self.use_valid_length {
            v.push("valid_length".into());
        }
        v
    }
    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        let q = &inputs[0];
        check_float(SDPA, "query", q)?;
        if inputs[1].dtype != q.dtype || inputs[2].dtype != q.dtype {
            return Err(Error::op(
                SDPA,
                format!(
                    "query, key and value must share a dtype, got {}, {}, {}",
                    q.dtype, inputs[1].dtype, inputs[2].dtype
                ),
            ));
        }
        let g = self.geometry(&q.shape, &inputs[1].shape, &inputs[2].shape)?;
        if self.use_valid_length && inputs[3].shape.dims() != [g.batch] {
            return Err(Error::op(
                SDPA,
                format!("valid_length must have shape ({},), got {}", g.batch, inputs[3].shape),
            ));
        }
        Ok(vec![
            TensorInfo::new(Shape::new(&[g.batch, g.q_heads, g.q_len, g.v_dim]), q.dtype),
            TensorInfo::new(Shape::new(&[g.batch, g.q_heads, g.q_len]), q.dtype),
        ])
    }
    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let g = self.geometry(inputs[0].shape(), inputs[1].shape(), inputs[2].shape())?;
        let valid = self.valid(&g, inputs.get(3))?;
        let (q, k, v) = (load::<f64>(&inputs[0])?, load::<f64>(&inputs[1])?, load::<f64>(&inputs[2])?);
        let mut out = vec![0.0; outputs[0].numel()];
        let mut lse = vec![0.0; outputs[1].numel()];
        g.forward(&q, &k, &v, valid.as_deref(), &mut out, &mut lse);
        write::<f64>(&mut outputs[0], &out)?;
        write::<f64>(&mut outputs[1], &lse)
    }
    fn has_gradient(&self) -> bool {
        true
    }
    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let this = *self;
        let mut args: Vec<NDArray> =
            vec![ctx.out_grads[0].clone(), ctx.outputs[0].clone(), ctx.outputs[1].clone()];
        args.extend(ctx.inputs.iter().cloned());
        let infos = ctx.inputs[..3].iter().map(info).collect();
        let grads = run_kernel(
            "_backward_contrib_scaled_dot_product_attention",
            &args,
            infos,
            move |_, ins, outs| {
                let g = this.geometry(ins[3].shape(), ins[4].shape(), ins[5].shape())?;
                let valid = this.valid(&g, ins.get(6))?;
                let v: Vec<Vec<f64>> =
                    ins[..6].iter().map(|b| load::<f64>(b).map(|c| c.into_owned())).collect::<Result<_>>()?;
                let (mut dq, mut dk, mut dv) =
                    (vec![0.0; v[3].len()], vec![0.0; v[4].len()], vec![0.0; v[5].len()]);
                g.backward(
                    &v[3],
                    &v[4],
                    &v[5],
                    valid.as_deref(),
                    &v[1],
                    &v[2],
                    &v[0],
                    &mut dq,
                    &mut dk,
                    &mut dv,
                );
                write::<f64>(&mut outs[0], &dq)?;
                write::<f64>(&mut outs[1], &dk)?;
                write::<f64>(&mut outs[2], &dv)
            },
        )?;
        let mut out: Vec<Option<NDArray>> = grads.into_iter().map(Some).collect();
        if self.use_valid_length {
            let l = &ctx.inputs[3];
            out.push(Some(NDArray::zeros(l.shape().clone(), l.dtype(), l.context())?));
        }
        Ok(out)
    }
}

/// A configured rotary position embedding.
#[derive(Clone, Copy)]
pub struct Rope {
    base: f64,
    offset: usize,
}

fn build_rope(_name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    let offset = attrs.int("offset", 0)?;
    let offset =
        usize::try_from(offset).map_err(|_| Error::op(ROPE, format!("offset must be >= 0, got {offset}")))?;
    Ok(Arc::new(Rope { base: attrs.float("base", 10000.0)?, offset }))
}

impl Rope {
    fn dims(&self, s: &Shape) -> Result<(usize, usize)> {
        let d = s.dims();
        if d.len() < 2 || !d[d.len() - 1].is_multiple_of(2) {
            return Err(Error::op(ROPE, format!("data must be (..., seq, dim) with an even dim, got {s}")));
        }
        Ok((d[d.len() - 2], d[d.len() - 1]))
    }

    fn apply(&self, b: &Blob<'_>, out: &mut Blob<'_>, inverse: bool) -> Result<()> {
        let (len, dim) = self.dims(b.shape())?;
        let x = load::<f64>(b)?;
        let mut y = vec![0.0; x.len()];
        rope(&x, len, dim, self.base, self.offset, inverse, &mut y);
        write::<f64>(out, &y)
    }
}

impl Operator for Rope {
    fn name(&self) -> &'static str {
        ROPE
    }
    fn num_inputs(&self) -> usize {
        1
    }
    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        check_float(ROPE, "data", &inputs[0])?;
        self.dims(&inputs[0].shape)?;
        Ok(vec![inputs[0].clone()])
    }
    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        self.apply(&inputs[0], &mut outputs[0], false)
    }
    fn has_gradient(&self) -> bool {
        true
    }
    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let this = *self;
        let dy = &ctx.out_grads[0];
        // A rotation's adjoint is the opposite rotation.
        let dx = run_kernel(
            "_backward_contrib_rope",
            std::slice::from_ref(dy),
            vec![info(dy)],
            move |_, ins, outs| this.apply(&ins[0], &mut outs[0], true),
        )?;
        Ok(dx.into_iter().map(Some).collect())
    }
}

pub(crate) fn register(r: &mut Registry) {
    r.register_family(build_sdpa, &[(SDPA, &[])]);
    r.register_family(build_rope, &[(ROPE, &[])]);
}
