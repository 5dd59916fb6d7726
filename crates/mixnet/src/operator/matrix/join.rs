//! Joining arrays along an axis (`Concat`, `stack`) and cutting one apart
//! (`SliceChannel`, `_split_v2`). Viewed as (outer, axis, inner), a join places each
//! input's rows side by side and a split is a narrowed view of the input per output.

use std::sync::Arc;

use mixnet_kernels::shape::{concat, gather, View};

use super::{count, norm_axis, required, same_dtype, with_word, words, words_mut};
use crate::op::{Attrs, Blob, GradContext, OpContext, OpDef, Operator, Registry, TensorInfo};
use crate::operator::grad::{call, call_all, tuple};
use crate::shape::Shape;
use crate::{Error, NDArray, Result};

/// `Concat` (along an existing axis) and `stack` (along a new one).
struct JoinOp {
    name: &'static str,
    num_args: usize,
    axis: i64,
    new_axis: bool,
}

fn build_join(name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    let num_args = count(attrs, "num_args")?;
    let (axis, new_axis) = match name {
        // `_rnn_param_concat` is Concat with a looser shape inference in MXNet (for deferred
        // parameter shapes); shapes are always known at an eager call.
        "Concat" | "_rnn_param_concat" => (attrs.int("dim", 1)?, false),
        _ => (attrs.int("axis", 0)?, true),
    };
    Ok(Arc::new(JoinOp { name, num_args, axis, new_axis }))
}

impl JoinOp {
    /// The axis in the output, the output shape, and each input's extent along that axis.
    fn plan(&self, shapes: &[&Shape]) -> Result<(usize, Shape, Vec<usize>)> {
        let op = self.name;
        let first = shapes[0];
        if self.new_axis {
            let axis = norm_axis(op, self.axis, first.ndim() + 1)?;
            if let Some(i) = shapes.iter().position(|s| *s != first) {
                return Err(Error::op(
                    op,
                    format!(
                        "all inputs must have the same shape: input 0 is {first}, input {i} is {}",
                        shapes[i]
                    ),
                ));
            }
            let mut out = first.to_vec();
            out.insert(axis, shapes.len());
            return Ok((axis, out.into(), vec![1; shapes.len()]));
        }
        if first.ndim() == 0 {
            return Err(Error::op(op, "zero-dimensional arrays cannot be concatenated"));
        }
        let axis = norm_axis(op, self.axis, first.ndim())?;
        let agree = |s: &Shape| {
            s.ndim() == first.ndim()
                && s.iter().zip(first.iter()).enumerate().all(|(d, (a, b))| d == axis || a == b)
        };
        if let Some(i) = shapes.iter().position(|s| !agree(s)) {
            return Err(Error::op(
                op,
                format!(
                    "input {i} has shape {}, incompatible with input 0's {first} (all but axis {axis} must agree)",
                    shapes[i]
                ),
            ));
        }
        let extents: Vec<usize> = shapes.iter().map(|s| s[axis]).collect();
        let mut out = first.to_vec();
        out[axis] = extents.iter().sum();
        Ok((axis, out.into(), extents))
    }
}

impl Operator for JoinOp {
    fn name(&self) -> &'static str {
        self.name
    }

    fn num_inputs(&self) -> usize {
        self.num_args
    }

    fn input_names(&self) -> Vec<String> {
        (0..self.num_args).map(|i| format!("arg{i}")).collect()
    }

    fn has_gradient(&self) -> bool {
        true
    }

    /// The output gradient cut back into the inputs' pieces.
    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let g = std::slice::from_ref(&ctx.out_grads[0]);
        let shapes: Vec<&Shape> = ctx.inputs.iter().map(|x| x.shape()).collect();
        let (axis, _, extents) = self.plan(&shapes)?;
        let axis_s = axis.to_string();
        let parts = if self.new_axis {
            let n = self.num_args.to_string();
            call_all("SliceChannel", g, &[("num_outputs", &n), ("axis", &axis_s), ("squeeze_axis", "True")])?
        } else {
            let starts: Vec<usize> =
                extents.iter().scan(0, |at, &e| Some(std::mem::replace(at, *at + e))).collect();
            call_all("_split_v2", g, &[("indices", &tuple(&starts)), ("axis", &axis_s)])?
        };
        Ok(parts.into_iter().map(Some).collect())
    }

    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        let dtype = same_dtype(self.name, inputs)?;
        let shapes: Vec<&Shape> = inputs.iter().map(|i| &i.shape).collect();
        let (_, shape, _) = self.plan(&shapes)?;
        Ok(vec![TensorInfo { shape, dtype }])
    }

    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let shapes: Vec<&Shape> = inputs.iter().map(|b| b.shape()).collect();
        let (axis, out_shape, extents) = self.plan(&shapes)?;
        let inner: usize = out_shape[axis + 1..].iter().product();
        let widths: Vec<usize> = extents.iter().map(|e| e * inner).collect();
        let out = &mut outputs[0];
        with_word!(out.dtype(), W => {
            let parts = inputs.iter().map(|b| words::<W>(b)).collect::<Result<Vec<_>>>()?;
            concat(&parts, &widths, words_mut::<W>(out)?)
        });
        Ok(())
    }
}

/// Where the cuts go.
enum Cuts {
    /// `SliceChannel`: this many equal parts.
    Even(usize),
    /// `_split_v2` with `indices`: part i starts at `indices[i]` and ends at the next
    /// index (the last at the axis end); anything before `indices[0]` is dropped.
    Indices(Vec<usize>),
    /// `_split_v2` with `sections`: numpy's `array_split`, leading parts one longer.
    Sections(usize),
}

/// `SliceChannel` and `_split_v2`.
struct SplitOp {
    name: &'static str,
    axis: i64,
    squeeze_axis: bool,
    cuts: Cuts,
}

fn build_split(name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    let cuts = if name == "SliceChannel" {
        Cuts::Even(count(attrs, "num_outputs")?)
    } else {
        let indices = attrs.tuple("indices")?;
        let indices = required(attrs, "indices", indices)?;
        match attrs.int("sections", 0)? {
            0 if indices.is_empty() => {
                return Err(Error::op(name, "needs non-empty indices or sections > 0"))
            }
            0 => Cuts::Indices(
                indices
                    .iter()
                    .map(|&i| usize::try_from(i))
                    .collect::<Result<_, _>>()
                    .map_err(|_| Error::op(name, format!("indices {indices:?} must be non-negative")))?,
            ),
            s if s > 0 => Cuts::Sections(s as usize),
            s => return Err(Error::op(name, format!("sections={s} must be non-negative"))),
        }
    };
    let axis = attrs.int("axis", 1)?;
    let squeeze_axis = attrs.bool("squeeze_axis", false)?;
    Ok(Arc::new(SplitOp { name, axis, squeeze_axis, cuts }))
}

impl SplitOp {
    /// The axis and each output's (start, length) along it.
    fn plan(&self, shape: &Shape) -> Result<(usize, Vec<(usize, usize)>)> {
        let op = self.name;
        let axis = norm_axis(op, self.axis, shape.ndim())?;
        let size = shape[axis];
        let parts: Vec<(usize, usize)> = match &self.cuts {
            Cuts::Even(n) => {
                if !size.is_multiple_of(*n) {
                    return Err(Error::op(
                        op,
                        format!("cannot split axis {axis} of shape {shape} into {n} equal parts"),
                    ));
                }
                if self.squeeze_axis && size != *n {
                    return Err(Error::op(
                        op,
                        format!(
                            "squeeze_axis needs axis {axis} of shape {shape} to have num_outputs={n} entries"
                        ),
                    ));
                }
                (0..*n).map(|i| (i * size / n, size / n)).collect()
            }
            Cuts::Sections(n) => {
                let (base, extra) = (size / n, size % n);
                let mut start = 0;
                (0..*n)
                    .map(|i| {
                        let len = base + usize::from(i < extra);
                        start += len;
                        (start - len, len)
                    })
                    .collect()
            }
            Cuts::Indices(idx) => {
                let mut parts = Vec::with_capacity(idx.len());
                for (i, &start) in idx.iter().enumerate() {
                    let end = idx.get(i + 1).copied().unwrap_or(size);
                    if size == 0 {
                        parts.push((0, 0));
                    } else if start > end || end > size {
                        return Err(Error::op(
                            op,
                            format!("indices {idx:?} do not cut axis {axis} of shape {shape} in order"),
                        ));
                    } else {
                        parts.push((start, end - start));
                    }
                }
                parts
            }
        };
        if self.squeeze_axis {
            if let Some(&(_, len)) = parts.iter().find(|p| p.1 != 1) {
                return Err(Error::op(
                    op,
                    format!("squeeze_axis needs parts of length 1 along axis {axis} of {shape}, got {len}"),
                ));
            }
        }
        Ok((axis, parts))
    }
}

impl Operator for SplitOp {
    fn name(&self) -> &'static str {
        self.name
    }

    fn num_inputs(&self) -> usize {
        1
    }

    fn num_outputs(&self) -> usize {
        match &self.cuts {
            Cuts::Even(n) | Cuts::Sections(n) => *n,
            Cuts::Indices(idx) => idx.len(),
        }
    }

    fn has_gradient(&self) -> bool {
        true
    }

    /// The outputs' gradients joined back along the axis; a part `_split_v2` dropped
    /// (before `indices[0]`) gets zeros.
    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let x = &ctx.inputs[0];
        let (axis, parts) = self.plan(x.shape())?;
        let axis_s = axis.to_string();
        let mut pieces = Vec::with_capacity(parts.len() + 1);
        if let Some(&(start, _)) = parts.first().filter(|p| p.0 > 0) {
            let mut dims = x.shape().to_vec();
            dims[axis] = start;
            pieces.push(NDArray::zeros(dims, x.dtype(), x.context())?);
        }
        for g in ctx.out_grads {
            pieces.push(if self.squeeze_axis {
                call("expand_dims", std::slice::from_ref(g), &[("axis", &axis_s)])?
            } else {
                g.clone()
            });
        }
        let n = pieces.len().to_string();
        Ok(vec![Some(call("Concat", &pieces, &[("dim", &axis_s), ("num_args", &n)])?)])
    }

    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        let shape = &inputs[0].shape;
        let (axis, parts) = self.plan(shape)?;
        Ok(parts
            .iter()
            .map(|&(_, len)| {
                let mut dims = shape.to_vec();
                if self.squeeze_axis {
                    dims.remove(axis);
                } else {
                    dims[axis] = len;
                }
                TensorInfo { shape: dims.into(), dtype: inputs[0].dtype }
            })
            .collect())
    }

    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let x = &inputs[0];
        let (axis, parts) = self.plan(x.shape())?;
        with_word!(x.dtype(), W => {
            let src = words::<W>(x)?;
            for (&(start, len), out) in parts.iter().zip(outputs.iter_mut()) {
                let mut view = View::contiguous(x.shape());
                view.narrow(axis, start, len);
                gather(src, &view, words_mut::<W>(out)?);
            }
        });
        Ok(())
    }
}

pub(super) fn register(r: &mut Registry) {
    r.register(OpDef { name: "Concat", aliases: &["concat"], build: build_join });
    r.register(OpDef { name: "stack", aliases: &[], build: build_join });
    r.register(OpDef { name: "_rnn_param_concat", aliases: &[], build: build_join });
    r.register(OpDef { name: "SliceChannel", aliases: &["split"], build: build_split });
    r.register(OpDef { name: "_split_v2", aliases: &[], build: build_split });
}
