//! `SequenceMask`, `SequenceLast`, `SequenceReverse` (MXNet's `sequence_*-inl.h`): ops on
//! padded batches of sequences laid out `(time, batch, ...)` (or `(batch, time, ...)` with
//! `axis=1`), with an optional `sequence_length` input of shape `(batch,)` giving each
//! sequence's true length. Lengths are read as integers (truncated); a length outside
//! `0..=time` (or 0 for `SequenceLast`) is an error, where MXNet reads out of bounds.

use std::sync::Arc;

use super::kernel::{check_float, info, load, load_i64, run_kernel, store, with_real, Compute};
use crate::op::{Attrs, Blob, GradContext, OpContext, Operator, Registry, TensorInfo};
use crate::{Error, NDArray, Result, Shape};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Mask { value: f64 },
    Last,
    Reverse,
}

/// A configured sequence operator.
pub struct SequenceOp {
    name: &'static str,
    kind: Kind,
    use_length: bool,
    axis: usize,
}

fn build(name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    let kind = match name {
        "SequenceMask" => Kind::Mask { value: attrs.float("value", 0.0)? as f32 as f64 },
        "SequenceLast" => Kind::Last,
        "SequenceReverse" => Kind::Reverse,
        _ => return Err(Error::op(name, "not a sequence operator")),
    };
    let use_length = attrs.bool("use_sequence_length", false)?;
    let axis = attrs.int("axis", 0)?;
    let allowed: &[i64] = if kind == Kind::Reverse { &[0] } else { &[0, 1] };
    if !allowed.contains(&axis) {
        return Err(Error::op(name, format!("axis must be {allowed:?}, got {axis}")));
    }
    Ok(Arc::new(SequenceOp { name, kind, use_length, axis: axis as usize }))
}

/// `(time, batch, rest)` and the sequence axis of a data shape.
#[derive(Clone, Copy, Debug)]
struct Layout {
    time: usize,
    batch: usize,
    rest: usize,
    axis: usize,
}

impl Layout {
    /// Index of element `r` of step `t` of sequence `n`.
    #[inline]
    fn at(&self, t: usize, n: usize, r: usize) -> usize {
        if self.axis == 0 {
            (t * self.batch + n) * self.rest + r
        } else {
            (n * self.time + t) * self.rest + r
        }
    }
}

impl SequenceOp {
    fn layout(&self, shape: &Shape) -> Result<Layout> {
        let d = shape.dims();
        if d.len() < 2 {
            return Err(Error::op(self.name, format!("data must have at least 2 dimensions, got {shape}")));
        }
        let (time, batch) = if self.axis == 0 { (d[0], d[1]) } else { (d[1], d[0]) };
        Ok(Layout { time, batch, rest: d[2..].iter().product(), axis: self.axis })
    }

    /// Each sequence's length, checked against the time axis.
    fn lengths(&self, l: &Layout, input: Option<&Blob<'_>>) -> Result<Vec<usize>> {
        let Some(b) = input else { return Ok(vec![l.time; l.batch]) };
        let min = usize::from(self.kind == Kind::Last) as i64;
        load_i64(b)?
            .into_iter()
            .map(|v| {
                if v < min || v > l.time as i64 {
                    Err(Error::op(
                        self.name,
                        format!("sequence_length {v} is outside {min}..={} (the sequence axis)", l.time),
                    ))
                } else {
                    Ok(v as usize)
                }
            })
            .collect()
    }
}

/// Forward of `kind` (and, being linear, its gradient with `x` = the output gradient;
/// `gradient` selects the adjoint where it differs: SequenceLast scatters back).
fn apply<R: Compute>(kind: Kind, l: &Layout, len: &[usize], x: &[R], out: &mut [R], gradient: bool) {
    let zero = <R as mixnet_kernels::Element>::ZERO;
    match kind {
        Kind::Mask { value } => {
            let fill = if gradient { zero } else { R::from_f64(value) };
            out.copy_from_slice(x);
            for (n, &len) in len.iter().enumerate() {
                for t in len..l.time {
                    for r in 0..l.rest {
                        out[l.at(t, n, r)] = fill;
                    }
                }
            }
        }
        Kind::Last if !gradient => {
            for (n, &len) in len.iter().enumerate() {
                for r in 0..l.rest {
                    out[n * l.rest + r] = x[l.at(len - 1, n, r)];
                }
            }
        }
        Kind::Last => {
            out.fill(zero);
            for (n, &len) in len.iter().enumerate() {
                for r in 0..l.rest {
                    out[l.at(len - 1, n, r)] = x[n * l.rest + r];
                }
            }
        }
        Kind::Reverse => {
            out.copy_from_slice(x);
            for (n, &len) in len.iter().enumerate() {
                for t in 0..len {
                    for r in 0..l.rest {
                        out[l.at(len - 1 - t, n, r)] = x[l.at(t, n, r)];
                    }
                }
            }
        }
    }
}

impl Operator for SequenceOp {
    fn name(&self) -> &'static str {
        self.name
    }
    fn num_inputs(&self) -> usize {
        1 + usize::from(self.use_length)
    }
    fn input_names(&self) -> Vec<String> {
        let mut v = vec!["data".to_string()];
        if self.use_length {
            v.push("sequence_length".into());
        }
        v
    }
    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        let data = &inputs[0];
        check_float(self.name, "data", data)?;
        let l = self.layout(&data.shape)?;
        if self.use_length && inputs[1].shape.dims() != [l.batch] {
            return Err(Error::op(
                self.name,
                format!(
                    "sequence_length must have shape ({},) for data {}, got {}",
                    l.batch, data.shape, inputs[1].shape
                ),
            ));
        }
        let shape = if self.kind == Kind::Last {
            let mut d = data.shape.dims().to_vec();
            d.remove(self.axis);
            Shape::new(&d)
        } else {
            data.shape.clone()
        };
        Ok(vec![TensorInfo::new(shape, data.dtype)])
    }
    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let l = self.layout(inputs[0].shape())?;
        let len = self.lengths(&l, inputs.get(1).filter(|_| self.use_length))?;
        let kind = self.kind;
        with_real!(inputs[0].dtype(), self.name, R => {
            let x = load::<R>(&inputs[0])?;
            store::<R>(&mut outputs[0], |o| {
                apply(kind, &l, &len, &x, o, false);
                Ok(())
            })
        })
    }
    fn has_gradient(&self) -> bool {
        true
    }
    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let x = &ctx.inputs[0];
        let mut ins = vec![ctx.out_grads[0].clone()];
        if self.use_length {
            ins.push(ctx.inputs[1].clone());
        }
        let l = self.layout(x.shape())?;
        let (kind, name) = (self.kind, self.name);
        let this = SequenceOp { name, kind, use_length: self.use_length, axis: self.axis };
        let backward = match kind {
            Kind::Mask { .. } => "_backward_SequenceMask",
            Kind::Last => "_backward_SequenceLast",
            Kind::Reverse => "_backward_SequenceReverse",
        };
        let mut grads: Vec<Option<NDArray>> =
            run_kernel(backward, &ins, vec![info(x)], move |_, ins, outs| {
                let len = this.lengths(&l, ins.get(1))?;
                with_real!(ins[0].dtype(), name, R => {
                    let dy = load::<R>(&ins[0])?;
                    store::<R>(&mut outs[0], |dx| {
                        apply(kind, &l, &len, &dy, dx, true);
                        Ok(())
                    })
                })
            })?
            .into_iter()
            .map(Some)
            .collect();
        if self.use_length {
            let s = &ctx.inputs[1];
            grads.push(Some(NDArray::zeros(s.shape().clone(), s.dtype(), s.context())?));
        }
        Ok(grads)
    }
}

pub(crate) fn register(r: &mut Registry) {
    r.register_family(build, &[("SequenceMask", &[]), ("SequenceLast", &[]), ("SequenceReverse", &[])]);
}
