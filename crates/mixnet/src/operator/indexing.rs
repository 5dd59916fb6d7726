//! Indexing (MXNet's `tensor/indexing_op.h`, `matrix_op-inl.h` slices,
//! `control_flow_op.h`): `pick`, `take`, `batch_take`, `one_hot`, `where`, `slice`,
//! `slice_axis`, `slice_like`, `_slice_assign`, `_slice_assign_scalar`, with gradients
//! written with operators (`_backward_pick`, `_backward_take` scatter-add the head
//! gradient; slices pad it back with `_slice_assign`).
//!
//! Index arrays may be any dtype; values are truncated to integers as MXNet's
//! `static_cast<int>` does.

use std::sync::Arc;

use mixnet_kernels::Element;

use crate::op::{Attrs, Blob, GradContext, OpContext, OpDef, Operator, Registry, TensorInfo};
use crate::shape::Shape;
use crate::{with_dtype, DType, Error, NDArray, Result};

/// How an out-of-range index is treated.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Clip,
    Wrap,
    Raise,
}

impl Mode {
    fn resolve(self, op: &str, i: i64, n: usize) -> Result<usize> {
        let n = n as i64;
        Ok(match self {
            Mode::Clip => i.clamp(0, n - 1) as usize,
            Mode::Wrap => i.rem_euclid(n) as usize,
            Mode::Raise => {
                if i < -n || i >= n {
                    return Err(Error::op(op, format!("index {i} is out of bounds for axis of size {n}")));
                }
                i.rem_euclid(n) as usize
            }
        })
    }
}

fn norm_axis(op: &str, axis: i64, ndim: usize) -> Result<usize> {
    let a = if axis < 0 { axis + ndim as i64 } else { axis };
    if (0..ndim as i64).contains(&a) {
        Ok(a as usize)
    } else {
        Err(Error::op(op, format!("axis {axis} is out of bounds for array of dimension {ndim}")))
    }
}

/// Index values as integers (truncated toward zero).
pub(crate) fn indices(b: &Blob<'_>) -> Result<Vec<i64>> {
    with_dtype!(b.dtype(), T => Ok(b.slice::<T>()?.iter().map(|x| x.to_f64() as i64).collect()))
}

/// (outer, n, inner) around `axis`.
fn split(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (shape[..axis].iter().product(), shape[axis], shape[axis + 1..].iter().product())
}

/// Copy elements `out[k] = x[src(k)]` for any dtype.
fn gather(x: &Blob<'_>, out: &mut Blob<'_>, src: &[usize]) -> Result<()> {
    with_dtype!(out.dtype(), T => {
        let xs = x.slice::<T>()?;
        for (o, &s) in out.slice_mut::<T>()?.iter_mut().zip(src) {
            *o = xs[s];
        }
    });
    Ok(())
}

/// `out = zeros; out[dst(k)] += g[k]`.
fn scatter_add(g: &Blob<'_>, out: &mut Blob<'_>, dst: &[usize]) -> Result<()> {
    with_dtype!(out.dtype(), T => {
        let gs = g.slice::<T>()?;
        let o = out.slice_mut::<T>()?;
        o.fill(T::ZERO);
        for (&v, &d) in gs.iter().zip(dst) {
            o[d] = o[d].add(v);
        }
    });
    Ok(())
}

#[derive(Clone, Debug)]
enum Kind {
    Pick {
        axis: Option<i64>,
        keepdims: bool,
        mode: Mode,
    },
    /// Gradient of pick: inputs (head, index), output shaped like the data.
    PickBackward {
        axis: Option<i64>,
        mode: Mode,
        data: Shape,
    },
    Take {
        axis: i64,
        mode: Mode,
    },
    TakeBackward {
        axis: i64,
        mode: Mode,
        data: Shape,
    },
    BatchTake,
    /// `diag`: extract (N-D) or build (1-D); `back` is the gradient of one applied to an
    /// array shaped like `data`.
    Diag {
        k: i64,
        axis1: i64,
        axis2: i64,
        back: Option<Shape>,
    },
    GatherNd,
    /// `scatter_nd` (assign) and `_backward_gather_nd` (accumulate) into `shape`.
    ScatterNd {
        shape: Shape,
        add: bool,
    },
    OneHot {
        depth: usize,
        on: f64,
        off: f64,
        dtype: DType,
    },
    Where,
    /// Per-axis optional begin/end/step (`slice`, `slice_axis` via one axis).
    Slice {
        begin: Vec<Option<i64>>,
        end: Vec<Option<i64>>,
        step: Vec<Option<i64>>,
    },
    SliceAxis {
        axis: i64,
        begin: i64,
        end: Option<i64>,
    },
    SliceLike {
        axes: Vec<i64>,
    },
    SliceAssign {
        begin: Vec<Option<i64>>,
        end: Vec<Option<i64>>,
        step: Vec<Option<i64>>,
    },
    SliceAssignScalar {
        scalar: f64,
        begin: Vec<Option<i64>>,
        end: Vec<Option<i64>>,
        step: Vec<Option<i64>>,
    },
}

/// A configured indexing operator.
pub struct IndexOp {
    name: &'static str,
    kind: Kind,
}

fn mode_attr(attrs: &mut Attrs<'_>, with_raise: bool) -> Result<Mode> {
    let opts: &[&'static str] = if with_raise { &["clip", "wrap", "raise"] } else { &["clip", "wrap"] };
    Ok(match attrs.choice("mode", opts, "clip")? {
        "wrap" => Mode::Wrap,
        "raise" => Mode::Raise,
        _ => Mode::Clip,
    })
}

/// Optional per-axis integers (`begin`, `end`, `step` of a slice).
type Opts = Vec<Option<i64>>;

fn slice_attrs(attrs: &mut Attrs<'_>) -> Result<(Opts, Opts, Opts)> {
    let op = attrs.op();
    let begin =
        attrs.opt_tuple("begin")?.ok_or_else(|| Error::op(op, "required attribute begin is missing"))?;
    let end = attrs.opt_tuple("end")?.ok_or_else(|| Error::op(op, "required attribute end is missing"))?;
    let step = attrs.opt_tuple("step")?.unwrap_or_default();
    if begin.len() != end.len() {
        return Err(Error::op(op, "begin and end must have the same length"));
    }
    if !step.is_empty() && step.len() != begin.len() {
        return Err(Error::op(op, "step and begin must have the same length"));
    }
    Ok((begin, end, step))
}

fn build(name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    let kind = match name {
        "pick" => Kind::Pick {
            axis: match attrs.get("axis") {
                None => Some(-1),
                Some(v) if v.trim() == "None" => None,
                Some(v) => Some(
                    v.trim()
                        .parse::<i64>()
                        .map_err(|_| Error::op(name, format!("axis='{v}' is not an integer")))?,
                ),
            },
            keepdims: attrs.bool("keepdims", false)?,
            mode: mode_attr(attrs, false)?,
        },
        "take" => Kind::Take { axis: attrs.int("axis", 0)?, mode: mode_attr(attrs, true)? },
        "batch_take" => Kind::BatchTake,
        "gather_nd" => Kind::GatherNd,
        "diag" => Kind::Diag {
            k: attrs.int("k", 0)?,
            axis1: attrs.int("axis1", 0)?,
            axis2: attrs.int("axis2", 1)?,
            back: None,
        },
        "scatter_nd" | "_backward_gather_nd" => {
            let dims = attrs
                .tuple("shape")?
                .ok_or_else(|| Error::op(name, "required attribute shape is missing"))?;
            if dims.is_empty() || dims.iter().any(|&d| d <= 0) {
                return Err(Error::op(name, format!("shape {dims:?} is not a known shape")));
            }
            let shape: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
            Kind::ScatterNd { shape: Shape::new(&shape), add: name == "_backward_gather_nd" }
        }
        "one_hot" => {
            let depth = attrs
                .opt_int("depth")?
                .ok_or_else(|| Error::op(name, "required attribute depth is missing"))?;
            if depth <= 0 {
                return Err(Error::op(name, format!("depth={depth} must be positive")));
            }
            Kind::OneHot {
                depth: depth as usize,
                on: attrs.float("on_value", 1.0)?,
                off: attrs.float("off_value", 0.0)?,
                dtype: attrs.dtype("dtype")?.unwrap_or(DType::F32),
            }
        }
        "where" => Kind::Where,
        "slice" => {
            let (begin, end, step) = slice_attrs(attrs)?;
            Kind::Slice { begin, end, step }
        }
        "_slice_assign" => {
            let (begin, end, step) = slice_attrs(attrs)?;
            Kind::SliceAssign { begin, end, step }
        }
        "_slice_assign_scalar" => {
            let scalar = attrs.float("scalar", 0.0)?;
            let (begin, end, step) = slice_attrs(attrs)?;
            Kind::SliceAssignScalar { scalar, begin, end, step }
        }
        "slice_axis" => {
            let axis = attrs
                .opt_int("axis")?
                .ok_or_else(|| Error::op(name, "required attribute axis is missing"))?;
            let begin = attrs
                .opt_int("begin")?
                .ok_or_else(|| Error::op(name, "required attribute begin is missing"))?;
            Kind::SliceAxis { axis, begin, end: attrs.opt_int("end")? }
        }
        "slice_like" => Kind::SliceLike { axes: attrs.tuple("axes")?.unwrap_or_default() },
        _ => return Err(Error::op(name, "not an indexing operator")),
    };
    Ok(Arc::new(IndexOp { name, kind }))
}

/// One axis of a resolved slice: first index, step, length.
#[derive(Clone, Copy, Debug)]
struct Range {
    begin: i64,
    step: i64,
    len: usize,
}

/// MXNet's `GetIndexRange` + `SetSliceOpOutputDimSize`.
fn slice_ranges(
    op: &str,
    shape: &[usize],
    begin: &[Option<i64>],
    end: &[Option<i64>],
    step: &[Option<i64>],
) -> Result<Vec<Range>> {
    if shape.is_empty() || begin.len() > shape.len() {
        return Err(Error::op(
            op,
            format!("slicing {} axes of an array of dimension {}", begin.len(), shape.len()),
        ));
    }
    let mut out = Vec::with_capacity(shape.len());
    for (i, &len) in shape.iter().enumerate() {
        if i >= begin.len() {
            out.push(Range { begin: 0, step: 1, len });
            continue;
        }
        let s = step.get(i).copied().flatten().unwrap_or(1);
        if s == 0 {
            return Err(Error::op(op, format!("step[{i}] cannot be 0")));
        }
        let n = len as i64;
        let mut b = begin[i].unwrap_or(if s < 0 { n - 1 } else { 0 });
        let mut e = end[i].unwrap_or(if s < 0 { -1 } else { n });
        if b < 0 {
            b += n;
        }
        if e < 0 && end[i].is_some() {
            e += n;
        }
        if b < 0 && s > 0 {
            b = 0;
        }
        if b > n - 1 && s < 0 {
            b = n - 1;
        }
        if b < 0 || b > n - 1 {
            b = -1;
        }
        e = e.clamp(-1, n);
        let size = if e != b && b >= 0 {
            if s > 0 {
                if e > b {
                    (e - b - 1) / s + 1
                } else {
                    0
                }
            } else if e < b {
                (b - e - 1) / (-s) + 1
            } else {
                0
            }
        } else {
            0
        };
        if size == 0 {
            return Err(Error::op(
                op,
                format!(
                    "axis {i} of shape {shape:?} sliced to an empty range (legacy arrays cannot be empty)"
                ),
            ));
        }
        out.push(Range { begin: b, step: s, len: size as usize });
    }
    Ok(out)
}

/// Flat source offsets of every element of the sliced view, row-major.
fn slice_offsets(shape: &[usize], ranges: &[Range]) -> Vec<usize> {
    let strides = Shape::new(shape).strides();
    let total: usize = ranges.iter().map(|r| r.len).product();
    let mut out = Vec::with_capacity(total);
    let mut idx = vec![0usize; ranges.len()];
    for _ in 0..total {
        let off: i64 = ranges
            .iter()
            .zip(&idx)
            .zip(strides.iter())
            .map(|((r, &k), &st)| (r.begin + r.step * k as i64) * st as i64)
            .sum();
        out.push(off as usize);
        for d in (0..idx.len()).rev() {
            idx[d] += 1;
            if idx[d] < ranges[d].len {
                break;
            }
            idx[d] = 0;
        }
    }
    out
}

/// Offsets (in output order) of the `k`-th diagonal of axes `axis1`, `axis2` of an array
/// of `shape`, and the extracted shape (other axes in order, then the diagonal).
fn diag_offsets(
    op: &str,
    shape: &[usize],
    k: i64,
    axis1: i64,
    axis2: i64,
) -> Result<(Vec<usize>, Vec<usize>)> {
    let nd = shape.len();
    let (a1, a2) = (norm_axis(op, axis1, nd)?, norm_axis(op, axis2, nd)?);
    if a1 == a2 {
        return Err(Error::op(op, format!("axis1 and axis2 are the same axis {a1}")));
    }
    let (d1, d2) = (shape[a1] as i64, shape[a2] as i64);
    let len = if k >= 0 { d1.min(d2 - k) } else { (d1 + k).min(d2) };
    if len <= 0 {
        return Err(Error::op(op, format!("diagonal k={k} of a {d1}x{d2} matrix is empty")));
    }
    let strides = Shape::new(shape).strides();
    let rest: Vec<usize> = (0..nd).filter(|&a| a != a1 && a != a2).collect();
    let mut dims: Vec<usize> = rest.iter().map(|&a| shape[a]).collect();
    dims.push(len as usize);
    let total: usize = dims.iter().product();
    let (r0, c0) = if k >= 0 { (0, k) } else { (-k, 0) };
    let mut out = Vec::with_capacity(total);
    let mut idx = vec![0usize; dims.len()];
    for _ in 0..total {
        let j = idx[dims.len() - 1] as i64;
        let mut off = ((r0 + j) as usize) * strides[a1] + ((c0 + j) as usize) * strides[a2];
        for (p, &a) in rest.iter().enumerate() {
            off += idx[p] * strides[a];
        }
        out.push(off);
        for d in (0..idx.len()).rev() {
            idx[d] += 1;
            if idx[d] < dims[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    Ok((out, dims))
}

/// Flat offsets into an array of `shape` addressed by `indices` (first dimension M: one
/// coordinate per leading axis; the trailing axes are copied whole). Negative coordinates
/// count from the end; out-of-range ones are an error.
pub(crate) fn nd_offsets(op: &str, shape: &[usize], ind_shape: &[usize], idx: &[i64]) -> Result<Vec<usize>> {
    let m = ind_shape[0];
    let n = idx.len() / m;
    let block: usize = shape[m..].iter().product();
    let strides = Shape::new(shape).strides();
    let mut out = Vec::with_capacity(n * block);
    for j in 0..n {
        let mut base = 0usize;
        for a in 0..m {
            let v = idx[a * n + j];
            let d = shape[a] as i64;
            let v2 = if v < 0 { v + d } else { v };
            if !(0..d).contains(&v2) {
                return Err(Error::op(op, format!("index {v} is out of bounds for axis {a} of size {d}")));
            }
            base += v2 as usize * strides[a];
        }
        out.extend(base..base + block);
    }
    Ok(out)
}

impl IndexOp {
    /// (begin, end, step) of `slice_axis` / `slice_like` as full-rank slice attributes.
    fn as_slice(&self, shape: &[usize], like: Option<&[usize]>) -> Result<Vec<Range>> {
        let nd = shape.len();
        match &self.kind {
            Kind::Slice { begin, end, step }
            | Kind::SliceAssign { begin, end, step }
            | Kind::SliceAssignScalar { begin, end, step, .. } => {
                slice_ranges(self.name, shape, begin, end, step)
            }
            Kind::SliceAxis { axis, begin, end } => {
                let a = norm_axis(self.name, *axis, nd)?;
                let mut b = vec![None; nd];
                let mut e = vec![None; nd];
                b[a] = Some(*begin);
                e[a] = *end;
                slice_ranges(self.name, shape, &b, &e, &[])
            }
            Kind::SliceLike { axes } => {
                let like = like.ok_or_else(|| Error::op(self.name, "needs its shape_like input"))?;
                let mut e: Vec<Option<i64>> = vec![None; nd];
                let all: Vec<i64> = (0..like.len() as i64).collect();
                let axes = if axes.is_empty() { &all } else { axes };
                if axes.is_empty() || like.len() > nd && axes == &all {
                    return Err(Error::op(
                        self.name,
                        format!("shape_like {like:?} has more axes than data {shape:?}"),
                    ));
                }
                for &ax in axes {
                    let a = norm_axis(self.name, ax, nd)?;
                    let la = norm_axis(self.name, ax, like.len())?;
                    if like[la] > shape[a] {
                        return Err(Error::op(
                            self.name,
                            format!("slice axis {ax} size {} exceeds data size {}", like[la], shape[a]),
                        ));
                    }
                    e[a] = Some(like[la] as i64);
                }
                let b: Vec<Option<i64>> = e.iter().map(|x| x.map(|_| 0)).collect();
                slice_ranges(self.name, shape, &b, &e, &[])
            }
            _ => Err(Error::op(self.name, "is not a slicing operator")),
        }
    }

    fn pick_layout(&self, axis: Option<i64>, data: &[usize]) -> Result<(usize, usize, usize)> {
        match axis {
            None => Ok((1, data.iter().product(), 1)),
            Some(a) => Ok(split(data, norm_axis(self.name, a, data.len())?)),
        }
    }

    /// Flat data offsets picked by `index` (pick and its backward).
    fn pick_offsets(
        &self,
        axis: Option<i64>,
        mode: Mode,
        data: &[usize],
        index: &[i64],
    ) -> Result<Vec<usize>> {
        let (_, k, inner) = self.pick_layout(axis, data)?;
        index
            .iter()
            .enumerate()
            .map(|(j, &i)| {
                let (o, r) = (j / inner, j % inner);
                Ok((o * k + mode.resolve(self.name, i, k)?) * inner + r)
            })
            .collect()
    }

    fn take_offsets(&self, axis: i64, mode: Mode, data: &[usize], index: &[i64]) -> Result<Vec<usize>> {
        let a = norm_axis(self.name, axis, data.len())?;
        let (outer, k, inner) = split(data, a);
        let resolved: Vec<usize> =
            index.iter().map(|&i| mode.resolve(self.name, i, k)).collect::<Result<_>>()?;
        let mut out = Vec::with_capacity(outer * resolved.len() * inner);
        for o in 0..outer {
            for &j in &resolved {
                for r in 0..inner {
                    out.push((o * k + j) * inner + r);
                }
            }
        }
        Ok(out)
    }
}

impl Operator for IndexOp {
    fn name(&self) -> &'static str {
        self.name
    }

    fn num_inputs(&self) -> usize {
        match self.kind {
            Kind::Where => 3,
            Kind::Pick { .. }
            | Kind::PickBackward { .. }
            | Kind::Take { .. }
            | Kind::TakeBackward { .. }
            | Kind::BatchTake
            | Kind::GatherNd
            | Kind::ScatterNd { .. }
            | Kind::SliceLike { .. }
            | Kind::SliceAssign { .. } => 2,
            _ => 1,
        }
    }

    fn input_names(&self) -> Vec<String> {
        let v: &[&str] = match self.kind {
            Kind::Pick { .. } => &["data", "index"],
            Kind::Take { .. } | Kind::BatchTake => &["a", "indices"],
            Kind::GatherNd | Kind::ScatterNd { .. } => &["data", "indices"],
            Kind::OneHot { .. } => &["indices"],
            Kind::Where => &["condition", "x", "y"],
            Kind::SliceLike { .. } => &["data", "shape_like"],
            Kind::SliceAssign { .. } => &["lhs", "rhs"],
            Kind::PickBackward { .. } | Kind::TakeBackward { .. } => &["ograd", "index"],
            _ => &["data"],
        };
        v.iter().map(|s| s.to_string()).collect()
    }

    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        let x = &inputs[0];
        let err = |m: String| Err(Error::op(self.name, m));
        match &self.kind {
            Kind::Pick { axis, keepdims, .. } => {
                let mut dims = x.shape.dims().to_vec();
                match axis {
                    None => dims = vec![1],
                    Some(a) => {
                        let a = norm_axis(self.name, *a, dims.len())?;
                        if *keepdims {
                            dims[a] = 1;
                        } else {
                            dims.remove(a);
                        }
                    }
                }
                let want: usize = dims.iter().product();
                if inputs[1].shape.numel() != want {
                    return err(format!(
                        "index shape {} does not match the picked shape {dims:?}",
                        inputs[1].shape
                    ));
                }
                Ok(vec![TensorInfo::new(dims.as_slice(), x.dtype)])
            }
            Kind::PickBackward { data, .. } | Kind::TakeBackward { data, .. } => {
                Ok(vec![TensorInfo::new(data.clone(), x.dtype)])
            }
            Kind::Take { axis, .. } => {
                let a = norm_axis(self.name, *axis, x.shape.ndim())?;
                let mut dims = x.shape[..a].to_vec();
                dims.extend_from_slice(&inputs[1].shape);
                dims.extend_from_slice(&x.shape[a + 1..]);
                Ok(vec![TensorInfo::new(dims.as_slice(), x.dtype)])
            }
            Kind::BatchTake => {
                if x.shape.ndim() != 2 || inputs[1].shape.numel() != x.shape[0] {
                    return err(format!(
                        "a must be 2-D (N, M) and indices hold N values, got {} and {}",
                        x.shape, inputs[1].shape
                    ));
                }
                Ok(vec![TensorInfo::new(inputs[1].shape.clone(), x.dtype)])
            }
            Kind::Diag { back: Some(data), .. } => Ok(vec![TensorInfo::new(data.clone(), x.dtype)]),
            Kind::Diag { k, axis1, axis2, back: None } => {
                if x.shape.ndim() == 1 {
                    let n = x.shape[0] + k.unsigned_abs() as usize;
                    return Ok(vec![TensorInfo::new([n, n].as_slice(), x.dtype)]);
                }
                let (_, dims) = diag_offsets(self.name, &x.shape, *k, *axis1, *axis2)?;
                Ok(vec![TensorInfo::new(dims.as_slice(), x.dtype)])
            }
            Kind::GatherNd => {
                let ind = &inputs[1].shape;
                let m = ind.first().copied().unwrap_or(0);
                if ind.ndim() == 0 || m == 0 || m > x.shape.ndim() {
                    return err(format!(
                        "indices {} must have a first dimension in 1..={}",
                        ind,
                        x.shape.ndim()
                    ));
                }
                let mut dims = ind[1..].to_vec();
                dims.extend_from_slice(&x.shape[m..]);
                if dims.is_empty() {
                    dims.push(1);
                }
                Ok(vec![TensorInfo::new(dims.as_slice(), x.dtype)])
            }
            Kind::ScatterNd { shape, .. } => {
                let ind = &inputs[1].shape;
                let m = ind.first().copied().unwrap_or(0);
                if ind.ndim() == 0 || m == 0 || m > shape.ndim() {
                    return err(format!(
                        "indices {} must have a first dimension in 1..={}",
                        ind,
                        shape.ndim()
                    ));
                }
                let mut want = ind[1..].to_vec();
                want.extend_from_slice(&shape[m..]);
                if x.shape.numel() != want.iter().product::<usize>() {
                    return err(format!(
                        "data shape {} should be {want:?} for indices {ind} and shape {shape}",
                        x.shape
                    ));
                }
                Ok(vec![TensorInfo::new(shape.clone(), x.dtype)])
            }
            Kind::OneHot { depth, dtype, .. } => {
                let mut dims = x.shape.dims().to_vec();
                dims.push(*depth);
                Ok(vec![TensorInfo::new(dims.as_slice(), *dtype)])
            }
            Kind::Where => {
                let (c, a, b) = (&inputs[0], &inputs[1], &inputs[2]);
                if a.shape != b.shape || a.dtype != b.dtype {
                    return err(format!("x ({a}) and y ({b}) must have the same shape and dtype"));
                }
                let ok = c.shape == a.shape
                    || (c.shape.ndim() == 1 && a.shape.ndim() >= 1 && c.shape[0] == a.shape[0]);
                if !ok {
                    return err(format!(
                        "condition shape {} must equal x's {} or be 1-D of length x.shape[0]",
                        c.shape, a.shape
                    ));
                }
                Ok(vec![a.clone()])
            }
            Kind::Slice { .. } | Kind::SliceAxis { .. } | Kind::SliceLike { .. } => {
                let like = inputs.get(1).map(|l| l.shape.dims());
                let r = self.as_slice(&x.shape, like)?;
                let dims: Vec<usize> = r.iter().map(|r| r.len).collect();
                Ok(vec![TensorInfo::new(dims.as_slice(), x.dtype)])
            }
            Kind::SliceAssign { .. } | Kind::SliceAssignScalar { .. } => {
                let r = self.as_slice(&x.shape, None)?;
                if let Some(rhs) = inputs.get(1) {
                    let dims: Vec<usize> = r.iter().map(|r| r.len).collect();
                    if rhs.shape.dims() != dims.as_slice() || rhs.dtype != x.dtype {
                        return err(format!("rhs {rhs} must be {dims:?} {}", x.dtype));
                    }
                }
                Ok(vec![x.clone()])
            }
        }
    }

    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let out = &mut outputs[0];
        match &self.kind {
            Kind::Pick { axis, mode, .. } => {
                let offs = self.pick_offsets(*axis, *mode, inputs[0].shape(), &indices(&inputs[1])?)?;
                gather(&inputs[0], out, &offs)
            }
            Kind::PickBackward { axis, mode, data } => {
                let offs = self.pick_offsets(*axis, *mode, data, &indices(&inputs[1])?)?;
                scatter_add(&inputs[0], out, &offs)
            }
            Kind::Take { axis, mode } => {
                let offs = self.take_offsets(*axis, *mode, inputs[0].shape(), &indices(&inputs[1])?)?;
                gather(&inputs[0], out, &offs)
            }
            Kind::TakeBackward { axis, mode, data } => {
                let offs = self.take_offsets(*axis, *mode, data, &indices(&inputs[1])?)?;
                scatter_add(&inputs[0], out, &offs)
            }
            Kind::BatchTake => {
                let m = inputs[0].shape()[1];
                let offs: Vec<usize> = indices(&inputs[1])?
                    .iter()
                    .enumerate()
                    .map(|(i, &j)| i * m + j.clamp(0, m as i64 - 1) as usize)
                    .collect();
                gather(&inputs[0], out, &offs)
            }
            Kind::Diag { k, axis1, axis2, back } => {
                let x_shape = inputs[0].shape().clone();
                let o_shape = out.shape().clone();
                // The matrix side of the pair, and whether this call builds it.
                let (matrix, build) = match back {
                    None => (
                        if x_shape.ndim() == 1 { o_shape.clone() } else { x_shape.clone() },
                        x_shape.ndim() == 1,
                    ),
                    Some(data) => {
                        (if data.ndim() == 1 { x_shape.clone() } else { data.clone() }, data.ndim() != 1)
                    }
                };
                let (offs, _) = diag_offsets(self.name, &matrix, *k, *axis1, *axis2)?;
                if build {
                    scatter_add(&inputs[0], out, &offs)
                } else {
                    gather(&inputs[0], out, &offs)
                }
            }
            Kind::GatherNd => {
                let offs =
                    nd_offsets(self.name, inputs[0].shape(), inputs[1].shape(), &indices(&inputs[1])?)?;
                gather(&inputs[0], out, &offs)
            }
            Kind::ScatterNd { shape, add } => {
                let offs = nd_offsets(self.name, shape, inputs[1].shape(), &indices(&inputs[1])?)?;
                if *add {
                    scatter_add(&inputs[0], out, &offs)
                } else {
                    with_dtype!(out.dtype(), T => {
                        let o = out.slice_mut::<T>()?;
                        o.fill(T::ZERO);
                        for (&d, &v) in offs.iter().zip(inputs[0].slice::<T>()?) {
                            o[d] = v;
                        }
                    });
                    Ok(())
                }
            }
            Kind::OneHot { depth, on, off, .. } => {
                let idx = indices(&inputs[0])?;
                let d = *depth;
                with_dtype!(out.dtype(), T => {
                    let (on, off) = (T::from_f64(*on), T::from_f64(*off));
                    let o = out.slice_mut::<T>()?;
                    o.fill(off);
                    for (row, &i) in idx.iter().enumerate() {
                        if (0..d as i64).contains(&i) {
                            o[row * d + i as usize] = on;
                        }
                    }
                });
                Ok(())
            }
            Kind::Where => {
                let cond = with_dtype!(inputs[0].dtype(), T => inputs[0].slice::<T>()?.iter().map(|c| *c != T::ZERO).collect::<Vec<bool>>());
                let n = out.numel();
                let per = n / cond.len().max(1);
                with_dtype!(out.dtype(), T => {
                    let (x, y) = (inputs[1].slice::<T>()?, inputs[2].slice::<T>()?);
                    for (i, o) in out.slice_mut::<T>()?.iter_mut().enumerate() {
                        *o = if cond[i / per] { x[i] } else { y[i] };
                    }
                });
                Ok(())
            }
            Kind::Slice { .. } | Kind::SliceAxis { .. } | Kind::SliceLike { .. } => {
                let like = inputs.get(1).map(|l| l.shape().dims().to_vec());
                let r = self.as_slice(inputs[0].shape(), like.as_deref())?;
                gather(&inputs[0], out, &slice_offsets(inputs[0].shape(), &r))
            }
            Kind::SliceAssign { .. } | Kind::SliceAssignScalar { .. } => {
                let r = self.as_slice(inputs[0].shape(), None)?;
                let offs = slice_offsets(inputs[0].shape(), &r);
                with_dtype!(out.dtype(), T => {
                    let o = out.slice_mut::<T>()?;
                    o.copy_from_slice(inputs[0].slice::<T>()?);
                    match &self.kind {
                        Kind::SliceAssignScalar { scalar, .. } => {
                            let v = T::from_f64(*scalar);
                            for &d in &offs {
                                o[d] = v;
                            }
                        }
                        _ => {
                            for (&d, &v) in offs.iter().zip(inputs[1].slice::<T>()?) {
                                o[d] = v;
                            }
                        }
                    }
                });
                Ok(())
            }
        }
    }

    fn has_gradient(&self) -> bool {
        !matches!(
            self.kind,
            Kind::BatchTake
                | Kind::PickBackward { .. }
                | Kind::TakeBackward { .. }
                | Kind::ScatterNd { add: true, .. }
        )
    }

    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let g = &ctx.out_grads[0];
        let x = &ctx.inputs[0];
        let zeros = |a: &NDArray| NDArray::zeros(a.shape().clone(), a.dtype(), a.context());
        let run = |kind: Kind, ins: &[NDArray]| -> Result<NDArray> {
            let op: Arc<dyn Operator> = Arc::new(IndexOp { name: self.name, kind });
            Ok(crate::imperative::invoke_operator(&op, ins)?.remove(0))
        };
        // (begin, end, step) attributes selecting exactly the ranges `r`.
        type Parts = (Vec<Option<i64>>, Vec<Option<i64>>, Vec<Option<i64>>);
        let slice_parts = |r: &[Range]| -> Parts {
            (
                r.iter().map(|r| Some(r.begin)).collect(),
                r.iter()
                    .map(|r| Some(r.begin + r.step * r.len as i64))
                    .map(|e| e.filter(|&e| e >= 0))
                    .collect(),
                r.iter().map(|r| Some(r.step)).collect(),
            )
        };
        match &self.kind {
            Kind::Pick { axis, mode, .. } => {
                let name = "_backward_pick";
                let op: Arc<dyn Operator> = Arc::new(IndexOp {
                    name,
                    kind: Kind::PickBackward { axis: *axis, mode: *mode, data: x.shape().clone() },
                });
                let gx =
                    crate::imperative::invoke_operator(&op, &[g.clone(), ctx.inputs[1].clone()])?.remove(0);
                Ok(vec![Some(gx), Some(zeros(&ctx.inputs[1])?)])
            }
            Kind::Take { axis, mode } => {
                let op: Arc<dyn Operator> = Arc::new(IndexOp {
                    name: "_backward_take",
                    kind: Kind::TakeBackward { axis: *axis, mode: *mode, data: x.shape().clone() },
                });
                let gx =
                    crate::imperative::invoke_operator(&op, &[g.clone(), ctx.inputs[1].clone()])?.remove(0);
                Ok(vec![Some(gx), Some(zeros(&ctx.inputs[1])?)])
            }
            Kind::OneHot { .. } => Ok(vec![Some(zeros(x)?)]),
            Kind::Diag { k, axis1, axis2, back: None } => {
                let kind = Kind::Diag { k: *k, axis1: *axis1, axis2: *axis2, back: Some(x.shape().clone()) };
                Ok(vec![Some(run(kind, std::slice::from_ref(g))?)])
            }
            Kind::GatherNd => {
                let op: Arc<dyn Operator> = Arc::new(IndexOp {
                    name: "_backward_gather_nd",
                    kind: Kind::ScatterNd { shape: x.shape().clone(), add: true },
                });
                let gx =
                    crate::imperative::invoke_operator(&op, &[g.clone(), ctx.inputs[1].clone()])?.remove(0);
                Ok(vec![Some(gx), Some(zeros(&ctx.inputs[1])?)])
            }
            Kind::ScatterNd { add: false, .. } => {
                let gx = run(Kind::GatherNd, &[g.clone(), ctx.inputs[1].clone()])?
                    .reshape(&x.shape().iter().map(|&d| d as i64).collect::<Vec<_>>())?;
                Ok(vec![Some(gx), Some(zeros(&ctx.inputs[1])?)])
            }
            Kind::Where => {
                let c = &ctx.inputs[0];
                let z = zeros(g)?;
                let gx = run(Kind::Where, &[c.clone(), g.clone(), z.clone()])?;
                let gy = run(Kind::Where, &[c.clone(), z, g.clone()])?;
                Ok(vec![Some(zeros(c)?), Some(gx), Some(gy)])
            }
            Kind::Slice { .. } | Kind::SliceAxis { .. } | Kind::SliceLike { .. } => {
                let like = ctx.inputs.get(1).map(|l| l.shape().dims().to_vec());
                let r = self.as_slice(x.shape(), like.as_deref())?;
                let (begin, end, step) = slice_parts(&r);
                let gx = run(Kind::SliceAssign { begin, end, step }, &[zeros(x)?, g.clone()])?;
                let mut v = vec![Some(gx)];
                if let Some(l) = ctx.inputs.get(1) {
                    v.push(Some(zeros(l)?));
                }
                Ok(v)
            }
            Kind::SliceAssign { .. } => {
                // lhs keeps the gradient outside the region; rhs gets the region.
                let r = self.as_slice(x.shape(), None)?;
                let (begin, end, step) = slice_parts(&r);
                let assign = Kind::SliceAssign { begin: begin.clone(), end: end.clone(), step: step.clone() };
                let glhs = run(assign, &[g.clone(), zeros(&ctx.inputs[1])?])?;
                let grhs = run(Kind::Slice { begin, end, step }, &[g.clone()])?;
                Ok(vec![Some(glhs), Some(grhs)])
            }
            Kind::SliceAssignScalar { .. } => {
                let r = self.as_slice(x.shape(), None)?;
                let (begin, end, step) = slice_parts(&r);
                Ok(vec![Some(run(Kind::SliceAssignScalar { scalar: 0.0, begin, end, step }, &[g.clone()])?)])
            }
            _ => Err(Error::op(self.name, "has no gradient defined")),
        }
    }
}

pub(crate) fn register(r: &mut Registry) {
    for (name, aliases) in [
        ("pick", &[][..]),
        ("take", &[]),
        ("batch_take", &[]),
        ("gather_nd", &[]),
        ("diag", &[]),
        ("scatter_nd", &[]),
        ("_backward_gather_nd", &[]),
        ("one_hot", &[]),
        ("where", &[]),
        ("slice", &["crop"]),
        ("slice_axis", &[]),
        ("slice_like", &[]),
        ("_slice_assign", &["_crop_assign"]),
        ("_slice_assign_scalar", &["_crop_assign_scalar"]),
    ] {
        r.register(OpDef { name, aliases, build });
    }
}
