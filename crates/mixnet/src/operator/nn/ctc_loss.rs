//! `CTCLoss` (aliases `ctc_loss`, `_contrib_CTCLoss`, `_contrib_ctc_loss`; MXNet's
//! `nn/ctc_loss-inl.h`): `data` `(T, N, alphabet)` activations (softmax applied inside),
//! `label` `(N, L)`, optional `data_lengths` and `label_lengths` `(N,)`. Output: the loss
//! per sequence `(N,)`.
//!
//! Blank is label 0 with `blank_label='first'` (labels end at the first 0, MXNet's padding
//! mask) or `alphabet - 1` with `'last'` (labels end at the first -1). The gradient
//! reaches `data` only, scaled per sequence by the head gradient as MXNet does; steps past
//! a sequence's data length get zero gradient.

use std::sync::Arc;

use mixnet_kernels::ctc::ctc_sequence;

use super::kernel::{check_float, info, load, load_i64, run_kernel, write};
use crate::op::{Attrs, Blob, GradContext, OpContext, Operator, Registry, TensorInfo};
use crate::{Error, NDArray, Result, Shape};

const NAME: &str = "CTCLoss";

/// A configured `CTCLoss`.
#[derive(Clone, Copy)]
pub struct CtcLoss {
    use_data_lengths: bool,
    use_label_lengths: bool,
    blank_last: bool,
}

fn build(_name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    Ok(Arc::new(CtcLoss {
        use_data_lengths: attrs.bool("use_data_lengths", false)?,
        use_label_lengths: attrs.bool("use_label_lengths", false)?,
        blank_last: attrs.choice("blank_label", &["first", "last"], "first")? == "last",
    }))
}

impl CtcLoss {
    /// Loss per sequence and (with `grad`) the gradient, from the op's inputs.
    fn run(&self, ins: &[Blob<'_>], grad: Option<&mut [f64]>) -> Result<Vec<f64>> {
        let [t_len, n, c] = match *ins[0].shape().dims() {
            [t, n, c] => [t, n, c],
            _ => {
                return Err(Error::op(
                    NAME,
                    format!("data must be 3-D (time, batch, alphabet), got {}", ins[0].shape()),
                ))
            }
        };
        let x = load::<f64>(&ins[0])?;
        let labels = load_i64(&ins[1])?;
        let width = ins[1].shape().dims()[1];
        let data_len = if self.use_data_lengths { Some(load_i64(&ins[2])?) } else { None };
        let label_len = if self.use_label_lengths {
            Some(load_i64(&ins[2 + usize::from(self.use_data_lengths)])?)
        } else {
            None
        };
        let blank = if self.blank_last { c - 1 } else { 0 };
        let pad = if self.blank_last { -1 } else { 0 };
        let mut grad = grad;
        if let Some(g) = grad.as_deref_mut() {
            g.fill(0.0);
        }
        let mut losses = Vec::with_capacity(n);
        for b in 0..n {
            let row = &labels[b * width..(b + 1) * width];
            let len = match &label_len {
                Some(l) => usize::try_from(l[b]).ok().filter(|&v| v <= width),
                None => Some(row.iter().position(|&v| v == pad).unwrap_or(width)),
            }
            .ok_or_else(|| Error::op(NAME, format!("label length of sequence {b} is outside 0..={width}")))?;
            let label: Vec<usize> = row[..len]
                .iter()
                .map(|&v| usize::try_from(v).ok().filter(|&k| k < c && k != blank))
                .collect::<Option<_>>()
                .ok_or_else(|| {
                    Error::op(
                        NAME,
                        format!("sequence {b}: labels must be tokens in 0..{c} other than the blank {blank}"),
                    )
                })?;
            let steps = match &data_len {
                Some(d) => usize::try_from(d[b]).ok().filter(|&v| v <= t_len),
                None => Some(t_len),
            }
            .ok_or_else(|| Error::op(NAME, format!("data length of sequence {b} is outside 0..={t_len}")))?;
            // Sequence b's rows are x[(t * n + b) * c ..].
            let g = grad.as_deref_mut().map(|g| &mut g[b * c..]);
            losses.push(ctc_sequence(&x[b * c..], n * c, steps, c, &label, blank, g));
        }
        Ok(losses)
    }
}

impl Operator for CtcLoss {
    fn name(&self) -> &'static str {
        NAME
    }
    fn num_inputs(&self) -> usize {
        2 + usize::from(self.use_data_lengths) + usize::from(self.use_label_lengths)
    }
    fn input_names(&self) -> Vec<String> {
        let mut v = vec!["data".to_string(), "label".into()];
        if self.use_data_lengths {
            v.push("data_lengths".into());
        }
        if self.use_label_lengths {
            v.push("label_lengths".into());
        }
        v
    }
    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        let data = &inputs[0];
        check_float(NAME, "data", data)?;
        let d = data.shape.dims();
        if d.len() != 3 {
            return Err(Error::op(
                NAME,
                format!("data must be 3-D (time, batch, alphabet), got {}", data.shape),
            ));
        }
        if inputs[1].shape.ndim() != 2 || inputs[1].shape.dims()[0] != d[1] {
            return Err(Error::op(
                NAME,
                format!(
                    "label must be (batch, max_label_length) with batch {}, got {}",
                    d[1], inputs[1].shape
                ),
            ));
        }
        for x in &inputs[2..] {
            if x.shape.dims() != [d[1]] {
                return Err(Error::op(NAME, format!("lengths must have shape ({},), got {}", d[1], x.shape)));
            }
        }
        Ok(vec![TensorInfo::new(Shape::new(&[d[1]]), data.dtype)])
    }
    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let losses = self.run(inputs, None)?;
        write::<f64>(&mut outputs[0], &losses)
    }
    fn has_gradient(&self) -> bool {
        true
    }
    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let this = *self;
        let data = &ctx.inputs[0];
        let mut args = vec![ctx.out_grads[0].clone()];
        args.extend(ctx.inputs.iter().cloned());
        let dx = run_kernel("_backward_ctc_loss", &args, vec![info(data)], move |_, ins, outs| {
            let head = load::<f64>(&ins[0])?.into_owned();
            let n = head.len();
            let mut g = vec![0.0; ins[1].numel()];
            this.run(&ins[1..], Some(&mut g))?;
            let c = ins[1].shape().dims()[2];
            for (i, v) in g.iter_mut().enumerate() {
                *v *= head[(i / c) % n];
            }
            write::<f64>(&mut outs[0], &g)
        })?
        .remove(0);
        let mut grads = vec![Some(dx)];
        for x in &ctx.inputs[1..] {
            grads.push(Some(NDArray::zeros(x.shape().clone(), x.dtype(), x.context())?));
        }
        Ok(grads)
    }
}

pub(crate) fn register(r: &mut Registry) {
    r.register_family(build, &[(NAME, &["ctc_loss", "_contrib_CTCLoss", "_contrib_ctc_loss"])]);
}
