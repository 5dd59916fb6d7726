//! Ops whose output is a strided view of the input, materialized: `transpose`,
//! `SwapAxis`, `depth_to_space`, `space_to_depth`, `tile`, `repeat`, `reverse`. Each one
//! only describes its [`View`] (shared by inference and compute, so they cannot
//! disagree); [`gather`] does the copying for all of them.

use std::sync::Arc;

use mixnet_kernels::shape::{gather, View};

use super::{norm_axis, required, with_word, words, words_mut};
use crate::op::{Attrs, Blob, GradContext, OpContext, OpDef, Operator, Registry, TensorInfo};
use crate::operator::grad::{call, reshape_like, reshape_to, tuple, zeros_like};
use crate::shape::Shape;
use crate::{Error, NDArray, Result};

enum Kind {
    /// Output axis i is input axis `axes[i]`; `None` reverses the axes.
    Transpose(Option<Vec<i64>>),
    SwapAxis(i64, i64),
    DepthToSpace(usize),
    SpaceToDepth(usize),
    Tile(Vec<usize>),
    /// `axis: None` repeats the flattened input.
    Repeat {
        repeats: usize,
        axis: Option<i64>,
    },
    Reverse(Vec<i64>),
}

struct LayoutOp {
    name: &'static str,
    kind: Kind,
}

/// A non-negative integer attribute MXNet declares without a default.
fn required_count(attrs: &mut Attrs<'_>, key: &str) -> Result<usize> {
    let v = attrs.opt_int(key)?;
    let v = required(attrs, key, v)?;
    usize::try_from(v).map_err(|_| Error::op(attrs.op(), format!("attribute {key}={v} must be non-negative")))
}

fn build(name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    let kind = match name {
        "transpose" => Kind::Transpose(attrs.tuple("axes")?.filter(|a| !a.is_empty())),
        "SwapAxis" => Kind::SwapAxis(attrs.int("dim1", 0)?, attrs.int("dim2", 0)?),
        "depth_to_space" | "space_to_depth" => {
            let block = required_count(attrs, "block_size")?;
            if block == 0 {
                return Err(Error::op(name, "block_size must be a positive integer"));
            }
            if name == "depth_to_space" {
                Kind::DepthToSpace(block)
            } else {
                Kind::SpaceToDepth(block)
            }
        }
        "tile" => {
            let reps = attrs.tuple("reps")?;
            let reps = required(attrs, "reps", reps)?;
            let reps = reps.iter().map(|&r| usize::try_from(r)).collect::<Result<Vec<_>, _>>();
            Kind::Tile(reps.map_err(|_| Error::op(name, "reps must be non-negative"))?)
        }
        "repeat" => Kind::Repeat { repeats: required_count(attrs, "repeats")?, axis: attrs.opt_int("axis")? },
        "reverse" => {
            let axis = attrs.tuple("axis")?;
            Kind::Reverse(required(attrs, "axis", axis)?)
        }
        _ => return Err(Error::op(name, "not a layout operator")),
    };
    Ok(Arc::new(LayoutOp { name, kind }))
}

/// `d * r` for an output dimension, refusing sizes that do not fit.
fn times(op: &str, d: usize, r: usize) -> Result<usize> {
    d.checked_mul(r).ok_or_else(|| Error::op(op, format!("output dimension {d} x {r} is too large")))
}

impl LayoutOp {
    /// The output shape and where each output element comes from.
    fn plan(&self, shape: &Shape) -> Result<(Shape, View)> {
        let op = self.name;
        let ndim = shape.ndim();
        let input = View::contiguous(shape);
        let permuted = |perm: &[usize]| {
            let v = input.permute(perm);
            (v.dims.iter().copied().collect(), v)
        };
        Ok(match &self.kind {
            Kind::Transpose(None) => permuted(&(0..ndim).rev().collect::<Vec<_>>()),
            Kind::Transpose(Some(axes)) => {
                if axes.len() != ndim {
                    return Err(Error::op(
                        op,
                        format!("axes {axes:?} do not match the {ndim} axes of {shape}"),
                    ));
                }
                let perm = axes.iter().map(|&a| norm_axis(op, a, ndim)).collect::<Result<Vec<_>>>()?;
                let mut seen = vec![false; ndim];
                for &p in &perm {
                    if std::mem::replace(&mut seen[p], true) {
                        return Err(Error::op(op, format!("axes {axes:?} repeat axis {p}")));
                    }
                }
                permuted(&perm)
            }
            Kind::SwapAxis(d1, d2) => {
                let mut perm: Vec<usize> = (0..ndim).collect();
                perm.swap(norm_axis(op, *d1, ndim)?, norm_axis(op, *d2, ndim)?);
                permuted(&perm)
            }
            Kind::DepthToSpace(b) | Kind::SpaceToDepth(b) => {
                let b = *b;
                let &[n, c, h, w] = &shape[..] else {
                    return Err(Error::op(op, format!("needs a 4-D (N, C, H, W) input, got shape {shape}")));
                };
                if shape.contains(&0) {
                    return Err(Error::op(op, format!("shape {shape} has a zero-size dimension")));
                }
                if let Kind::DepthToSpace(_) = self.kind {
                    if !c.is_multiple_of(b * b) {
                        return Err(Error::op(
                            op,
                            format!(
                                "depth (dimension 1) of {shape} is not a multiple of block_size^2 = {}",
                                b * b
                            ),
                        ));
                    }
                    // (N, b, b, C/b², H, W) -> (N, C/b², H, b, W, b)
                    let v = View::contiguous(&[n, b, b, c / (b * b), h, w]).permute(&[0, 3, 4, 1, 5, 2]);
                    (Shape::new(&[n, c / (b * b), h * b, w * b]), v)
                } else {
                    if !h.is_multiple_of(b) || !w.is_multiple_of(b) {
                        return Err(Error::op(
                            op,
                            format!("height and width (dimensions 2, 3) of {shape} are not multiples of block_size {b}"),
                        ));
                    }
                    // (N, C, H/b, b, W/b, b) -> (N, b, b, C, H/b, W/b)
                    let v = View::contiguous(&[n, c, h / b, b, w / b, b]).permute(&[0, 3, 5, 1, 2, 4]);
                    (Shape::new(&[n, c * b * b, h / b, w / b]), v)
                }
            }
            Kind::Tile(reps) if reps.is_empty() => (shape.clone(), input),
            Kind::Tile(reps) => {
                // Align input and reps on the right, then read each input axis `rep` times.
                let m = ndim.max(reps.len());
                let dims: Vec<usize> =
                    std::iter::repeat_n(1, m - ndim).chain(shape.iter().copied()).collect();
                let reps: Vec<usize> =
                    std::iter::repeat_n(1, m - reps.len()).chain(reps.iter().copied()).collect();
                let mut v = View::contiguous(&dims);
                for (i, &r) in reps.iter().enumerate().rev() {
                    v.broadcast(i, r);
                }
                (dims.iter().zip(&reps).map(|(&d, &r)| times(op, d, r)).collect::<Result<Shape>>()?, v)
            }
            Kind::Repeat { repeats, axis } => {
                let axis = axis.map(|a| norm_axis(op, a, ndim)).transpose()?;
                match (*repeats, axis) {
                    // MXNet: zero repeats give an empty 1-d array, whatever the axis.
                    (0, _) => (Shape::new(&[0]), View::contiguous(&[0])),
                    (r, None) => {
                        let mut v = View::contiguous(&[shape.numel()]);
                        v.broadcast(1, r);
                        (Shape::new(&[times(op, shape.numel(), r)?]), v)
                    }
                    (r, Some(a)) => {
                        let mut v = input;
                        v.broadcast(a + 1, r);
                        let mut out = shape.to_vec();
                        out[a] = times(op, out[a], r)?;
                        (out.into(), v)
                    }
                }
            }
            Kind::Reverse(axes) => {
                // Each listed axis flips once; an axis listed twice flips back, as in MXNet.
                let mut v = input;
                for &a in axes {
                    v.flip(norm_axis(op, a, ndim)?);
                }
                (shape.clone(), v)
            }
        })
    }
}

impl LayoutOp {
    /// The adjoint of the layout change: the inverse permutation for permutations, the
    /// sum over the copies for `tile` and `repeat`.
    fn grad(&self, x: &NDArray, g: &NDArray) -> Result<NDArray> {
        let op = self.name;
        let one = |name: &str, attrs: &[(&str, &str)]| call(name, std::slice::from_ref(g), attrs);
        let ndim = x.ndim();
        Ok(match &self.kind {
            Kind::Transpose(None) => one("transpose", &[])?,
            Kind::Transpose(Some(axes)) => {
                let perm = axes.iter().map(|&a| norm_axis(op, a, ndim)).collect::<Result<Vec<_>>>()?;
                let mut inv = vec![0; ndim];
                for (i, &p) in perm.iter().enumerate() {
                    inv[p] = i;
                }
                one("transpose", &[("axes", &tuple(&inv))])?
            }
            Kind::SwapAxis(d1, d2) => {
                one("SwapAxis", &[("dim1", &d1.to_string()), ("dim2", &d2.to_string())])?
            }
            Kind::DepthToSpace(b) => one("space_to_depth", &[("block_size", &b.to_string())])?,
            Kind::SpaceToDepth(b) => one("depth_to_space", &[("block_size", &b.to_string())])?,
            Kind::Reverse(axes) => one("reverse", &[("axis", &tuple(axes))])?,
            _ if x.size() == 0 || g.size() == 0 => zeros_like(x)?,
            Kind::Tile(reps) if reps.is_empty() => g.clone(),
            Kind::Tile(reps) => {
                // Output axis i is (rep, d) with the repetition outer: view g as
                // (r0, d0, r1, d1, ...) and sum the r axes.
                let m = ndim.max(reps.len());
                let dims: Vec<usize> =
                    std::iter::repeat_n(1, m - ndim).chain(x.shape().iter().copied()).collect();
                let reps: Vec<usize> =
                    std::iter::repeat_n(1, m - reps.len()).chain(reps.iter().copied()).collect();
                let split: Vec<usize> = reps.iter().zip(&dims).flat_map(|(&r, &d)| [r, d]).collect();
                let axes: Vec<usize> = (0..m).map(|i| 2 * i).collect();
                let summed = call("sum", &[reshape_to(g, &split)?], &[("axis", &tuple(&axes))])?;
                reshape_like(&summed, x)?
            }
            Kind::Repeat { repeats, axis } => {
                let r = *repeats;
                let (split, axis): (Vec<usize>, usize) = match axis {
                    None => (vec![x.size(), r], 1),
                    Some(a) => {
                        let a = norm_axis(op, *a, ndim)?;
                        let mut d = x.shape().to_vec();
                        d.insert(a + 1, r);
                        (d, a + 1)
                    }
                };
                let summed = call("sum", &[reshape_to(g, &split)?], &[("axis", &axis.to_string())])?;
                reshape_like(&summed, x)?
            }
        })
    }
}

impl Operator for LayoutOp {
    fn name(&self) -> &'static str {
        self.name
    }

    fn num_inputs(&self) -> usize {
        1
    }

    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        let (shape, _) = self.plan(&inputs[0].shape)?;
        Ok(vec![TensorInfo { shape, dtype: inputs[0].dtype }])
    }

    fn has_gradient(&self) -> bool {
        true
    }

    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        Ok(vec![Some(self.grad(&ctx.inputs[0], &ctx.out_grads[0])?)])
    }

    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let (_, view) = self.plan(inputs[0].shape())?;
        let (x, out) = (&inputs[0], &mut outputs[0]);
        with_word!(x.dtype(), W => gather(words::<W>(x)?, &view, words_mut::<W>(out)?));
        Ok(())
    }
}

pub(super) fn register(r: &mut Registry) {
    for (name, aliases) in [
        ("transpose", &[][..]),
        ("SwapAxis", &["swapaxes"]),
        ("depth_to_space", &[]),
        ("space_to_depth", &[]),
        ("tile", &[]),
        ("repeat", &[]),
        ("reverse", &["flip"]),
    ] {
        r.register(OpDef { name, aliases, build });
    }
}
