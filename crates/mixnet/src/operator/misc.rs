//! Assorted MXNet 1.9.1 operators: `_contrib_index_copy`, `_contrib_boolean_mask` (output
//! shape read from the mask's values), `_histogram`, `_scatter_set_nd`, `_NoGradient` and
//! `IdentityAttachKLSparseReg` — names, defaults and gradients as MXNet's sources have them.

use std::sync::Arc;

use mixnet_kernels::Element;

use super::indexing::{indices as index_values, nd_offsets};
use super::nn::kernel::{check_float, info, load, run_kernel, store, with_real};
use crate::op::{Attrs, Blob, GradContext, OpContext, Operator, Registry, TensorInfo};
use crate::{with_dtype, DType, Error, NDArray, Result, Shape};

#[derive(Clone, Debug)]
enum Kind {
    IndexCopy,
    BooleanMask,
    /// `bin_cnt` and `range` given (one input), or neither (bins as a second input).
    Histogram {
        uniform: Option<(usize, f64, f64)>,
    },
    ScatterSetNd {
        shape: Shape,
    },
    NoGradient,
    KlSparseReg {
        target: f64,
        penalty: f64,
        momentum: f64,
    },
}

/// A configured operator of this module.
pub struct Misc {
    name: &'static str,
    kind: Kind,
}

fn build(name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    let kind = match name {
        "_contrib_index_copy" => Kind::IndexCopy,
        "_contrib_boolean_mask" => match attrs.int("axis", 0)? {
            0 => Kind::BooleanMask,
            a => {
                return Err(Error::op(
                    name,
                    format!("axis={a} is not supported (MXNet 1.9.1 masks axis 0 only)"),
                ))
            }
        },
        "_histogram" => {
            let cnt = attrs.opt_int("bin_cnt")?;
            let range = attrs.float_tuple("range")?;
            match (cnt, range) {
                (None, None) => Kind::Histogram { uniform: None },
                (Some(c), Some(r)) => {
                    if c < 1 {
                        return Err(Error::op(name, format!("bin_cnt={c} must be positive")));
                    }
                    let [lo, hi] = r[..] else {
                        return Err(Error::op(name, format!("range {r:?} must have exactly 2 elements")));
                    };
                    if lo > hi {
                        return Err(Error::op(
                            name,
                            format!("range ({lo}, {hi}): the lower bound exceeds the upper"),
                        ));
                    }
                    // MXNet widens an empty range by 0.5 on each side.
                    let (lo, hi) = if lo == hi { (lo - 0.5, hi + 0.5) } else { (lo, hi) };
                    Kind::Histogram { uniform: Some((c as usize, lo, hi)) }
                }
                _ => return Err(Error::op(name, "bin_cnt and range must both be given or both be absent")),
            }
        }
        "_scatter_set_nd" => {
            let dims = attrs
                .tuple("shape")?
                .ok_or_else(|| Error::op(name, "required attribute shape is missing"))?;
            if dims.is_empty() || dims.iter().any(|&d| d <= 0) {
                return Err(Error::op(name, format!("shape {dims:?} is not a known shape")));
            }
            let d: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
            Kind::ScatterSetNd { shape: Shape::new(&d) }
        }
        "_NoGradient" => Kind::NoGradient,
        "IdentityAttachKLSparseReg" => {
            let target = attrs.float("sparseness_target", 0.1)?;
            let penalty = attrs.float("penalty", 0.001)?;
            let momentum = attrs.float("momentum", 0.9)?;
            for (k, v) in [("sparseness_target", target), ("momentum", momentum)] {
                if !(0.0..=1.0).contains(&v) {
                    return Err(Error::op(name, format!("{k}={v} must be in [0, 1]")));
                }
            }
            // MXNet's fields are `float`.
            let f = |v: f64| v as f32 as f64;
            Kind::KlSparseReg { target: f(target), penalty: f(penalty), momentum: f(momentum) }
        }
        _ => return Err(Error::op(name, "not an operator of this module")),
    };
    Ok(Arc::new(Misc { name, kind }))
}

/// Row indices of a 1-D index array, truncated toward zero as MXNet's `int` casts do,
/// checked against `rows`.
fn rows_of(op: &str, index: &Blob<'_>, rows: usize) -> Result<Vec<usize>> {
    index_values(index)?
        .into_iter()
        .map(|i| {
            usize::try_from(i)
                .ok()
                .filter(|&r| r < rows)
                .ok_or_else(|| Error::op(op, format!("index {i} is out of range for {rows} rows")))
        })
        .collect()
}

/// Whether each mask element is nonzero.
fn mask_of(b: &Blob<'_>) -> Result<Vec<bool>> {
    with_dtype!(b.dtype(), T => Ok(b.slice::<T>()?.iter().map(|&v| v != T::ZERO).collect()))
}

impl Misc {
    fn boolean_mask_shape(&self, data: &TensorInfo, index: &TensorInfo) -> Result<()> {
        if data.shape.ndim() == 0 || index.shape.ndim() != 1 || index.shape[0] != data.shape[0] {
            return Err(Error::op(
                self.name,
                format!("index {} must be 1-D with data {}'s first dimension", index.shape, data.shape),
            ));
        }
        Ok(())
    }
}

impl Operator for Misc {
    fn name(&self) -> &'static str {
        self.name
    }
    fn num_inputs(&self) -> usize {
        match self.kind {
            Kind::IndexCopy | Kind::ScatterSetNd { .. } => 3,
            Kind::BooleanMask | Kind::KlSparseReg { .. } | Kind::Histogram { uniform: None } => 2,
            Kind::Histogram { .. } => 1,
            Kind::NoGradient => 0,
        }
    }
    fn num_outputs(&self) -> usize {
        match self.kind {
            Kind::Histogram { .. } => 2,
            _ => 1,
        }
    }
    fn input_names(&self) -> Vec<String> {
        let v: &[&str] = match self.kind {
            Kind::IndexCopy => &["old_tensor", "index_vector", "new_tensor"],
            Kind::BooleanMask => &["data", "index"],
            Kind::Histogram { uniform: None } => &["data", "bins"],
            Kind::Histogram { .. } => &["data"],
            Kind::ScatterSetNd { .. } => &["lhs", "rhs", "indices"],
            Kind::NoGradient => &[],
            Kind::KlSparseReg { .. } => &["data", "moving_avg"],
        };
        v.iter().map(|s| s.to_string()).collect()
    }
    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        let name = self.name;
        match &self.kind {
            Kind::IndexCopy => {
                let (old, idx, new) = (&inputs[0], &inputs[1], &inputs[2]);
                let (o, n) = (old.shape.dims(), new.shape.dims());
                let ok = idx.shape.ndim() == 1
                    && o.len() == n.len()
                    && !o.is_empty()
                    && o[0] >= n[0]
                    && o[1..] == n[1..]
                    && idx.shape[0] == n[0];
                if !ok {
                    return Err(Error::op(
                        name,
                        format!(
                            "new_tensor {} must be old_tensor {} with at most as many rows, one per \
                             entry of the 1-D index_vector {}",
                            new.shape, old.shape, idx.shape
                        ),
                    ));
                }
                if old.dtype != new.dtype {
                    return Err(Error::op(
                        name,
                        format!("new_tensor {new} must have old_tensor's dtype ({old})"),
                    ));
                }
                Ok(vec![old.clone()])
            }
            Kind::BooleanMask => {
                self.boolean_mask_shape(&inputs[0], &inputs[1])?;
                Err(Error::op(
                    name,
                    "the output shape depends on the index values (known only when they are)",
                ))
            }
            Kind::Histogram { uniform } => {
                let x = &inputs[0];
                if x.dtype == DType::Bool {
                    return Err(Error::op(name, "data of dtype bool is not supported"));
                }
                let (cnt, edges) = match uniform {
                    Some((c, _, _)) => (*c, TensorInfo::new(Shape::new(&[c + 1]), x.dtype)),
                    None => {
                        let b = &inputs[1];
                        if b.shape.ndim() != 1 || b.shape[0] < 2 || b.dtype != x.dtype {
                            return Err(Error::op(
                                name,
                                format!("bins {b} must be a 1-D vector of at least 2 bounds with data's dtype ({x})"),
                            ));
                        }
                        (b.shape[0] - 1, b.clone())
                    }
                };
                Ok(vec![TensorInfo::new(Shape::new(&[cnt]), DType::I64), edges])
            }
            Kind::ScatterSetNd { shape } => {
                let (lhs, rhs, ind) = (&inputs[0], &inputs[1], &inputs[2].shape);
                if lhs.shape != *shape {
                    return Err(Error::op(
                        name,
                        format!("lhs {} must have the shape attribute {shape}", lhs.shape),
                    ));
                }
                if rhs.dtype != lhs.dtype {
                    return Err(Error::op(name, format!("rhs {rhs} must have lhs's dtype ({lhs})")));
                }
                let m = ind.dims().first().copied().unwrap_or(0);
                if m == 0 || m > shape.ndim() {
                    return Err(Error::op(
                        name,
                        format!("indices {ind} must have a first dimension in 1..={}", shape.ndim()),
                    ));
                }
                let mut want = ind[1..].to_vec();
                want.extend_from_slice(&shape[m..]);
                if rhs.shape.dims() != want.as_slice() {
                    return Err(Error::op(
                        name,
                        format!(
                            "rhs shape {} should be {want:?} for indices {ind} and shape {shape}",
                            rhs.shape
                        ),
                    ));
                }
                Ok(vec![lhs.clone()])
            }
            // MXNet registers no shape or type inference for it: invoking it fails there too.
            Kind::NoGradient => Err(Error::op(
                name,
                "is a placeholder for the gradient of a variable that has none; it cannot run",
            )),
            Kind::KlSparseReg { .. } => {
                let (x, avg) = (&inputs[0], &inputs[1]);
                check_float(name, "data", x)?;
                if x.shape.ndim() < 2 || avg.shape.dims() != [x.shape[1]] || avg.dtype != x.dtype {
                    return Err(Error::op(
                        name,
                        format!(
                            "data {x} must have at least 2 dimensions and moving_avg {avg} be data's dim 1"
                        ),
                    ));
                }
                Ok(vec![x.clone()])
            }
        }
    }
    fn infer_from_values(&self, inputs: &[&NDArray]) -> Option<Result<Vec<TensorInfo>>> {
        if !matches!(self.kind, Kind::BooleanMask) || inputs.len() != 2 {
            return None;
        }
        let (data, index) = (info(inputs[0]), info(inputs[1]));
        Some(self.boolean_mask_shape(&data, &index).and_then(|()| {
            let kept = inputs[1].to_f64_vec()?.iter().filter(|&&v| v != 0.0).count();
            let mut d = data.shape.dims().to_vec();
            d[0] = kept;
            Ok(vec![TensorInfo::new(Shape::new(&d), data.dtype)])
        }))
    }
    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let name = self.name;
        match &self.kind {
            Kind::IndexCopy => {
                let rows = inputs[0].shape()[0];
                let dst = rows_of(name, &inputs[1], rows)?;
                let width = inputs[0].numel() / rows.max(1);
                with_dtype!(outputs[0].dtype(), T => {
                    let (old, new) = (inputs[0].slice::<T>()?, inputs[2].slice::<T>()?);
                    let out = outputs[0].slice_mut::<T>()?;
                    out.copy_from_slice(old);
                    for (i, &r) in dst.iter().enumerate() {
                        out[r * width..(r + 1) * width].copy_from_slice(&new[i * width..(i + 1) * width]);
                    }
                });
                Ok(())
            }
            Kind::BooleanMask => {
                let mask = mask_of(&inputs[1])?;
                let width = inputs[0].numel() / mask.len().max(1);
                if outputs[0].numel() != width * mask.iter().filter(|&&m| m).count() {
                    return Err(Error::op(name, "the index changed between shape inference and the kernel"));
                }
                with_dtype!(outputs[0].dtype(), T => {
                    let x = inputs[0].slice::<T>()?;
                    let out = outputs[0].slice_mut::<T>()?;
                    let kept = x.chunks_exact(width.max(1)).zip(&mask).filter(|(_, &m)| m).map(|(r, _)| r);
                    for (o, r) in out.chunks_exact_mut(width.max(1)).zip(kept) {
                        o.copy_from_slice(r);
                    }
                });
                Ok(())
            }
            Kind::Histogram { uniform } => {
                let (counts, edges) = outputs.split_at_mut(1);
                let mut hist = vec![0i64; counts[0].numel()];
                with_dtype!(inputs[0].dtype(), T => {
                    let x = inputs[0].slice::<T>()?;
                    let e = edges[0].slice_mut::<T>()?;
                    match *uniform {
                        Some((cnt, lo, hi)) => {
                            for (i, b) in e.iter_mut().enumerate() {
                                *b = T::from_f64((hi * i as f64 + (cnt - i) as f64 * lo) / cnt as f64);
                            }
                            let e: Vec<f64> = e.iter().map(|v| v.to_f64()).collect();
                            for &v in x {
                                if let Some(t) = uniform_bin(v.to_f64(), &e, cnt, lo, hi) {
                                    hist[t] += 1;
                                }
                            }
                        }
                        None => {
                            e.copy_from_slice(inputs[1].slice::<T>()?);
                            let e: Vec<f64> = e.iter().map(|v| v.to_f64()).collect();
                            for &v in x {
                                if let Some(t) = explicit_bin(v.to_f64(), &e) {
                                    hist[t] += 1;
                                }
                            }
                        }
                    }
                });
                counts[0].slice_mut::<i64>()?.copy_from_slice(&hist);
                Ok(())
            }
            Kind::ScatterSetNd { shape } => {
                let offs = nd_offsets(name, shape, inputs[2].shape(), &index_values(&inputs[2])?)?;
                with_dtype!(outputs[0].dtype(), T => {
                    let out = outputs[0].slice_mut::<T>()?;
                    out.copy_from_slice(inputs[0].slice::<T>()?);
                    for (&d, &v) in offs.iter().zip(inputs[1].slice::<T>()?) {
                        out[d] = v;
                    }
                });
                Ok(())
            }
            Kind::NoGradient => Err(Error::op(name, "cannot run")),
            Kind::KlSparseReg { .. } => {
                mixnet_kernels::elementwise::copy(inputs[0].bytes()?, outputs[0].bytes_mut()?);
                Ok(())
            }
        }
    }
    fn has_gradient(&self) -> bool {
        matches!(self.kind, Kind::IndexCopy | Kind::BooleanMask | Kind::KlSparseReg { .. })
    }
    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let dy = &ctx.out_grads[0];
        let zeros = |x: &NDArray| super::grad::zeros_like(x).map(Some);
        match self.kind {
            // MXNet's `_contrib_backward_index_copy`: old_tensor's gradient is the head with
            // the overwritten rows zeroed; new_tensor's rows take the head rows they went to.
            Kind::IndexCopy => {
                let (old, new) = (&ctx.inputs[0], &ctx.inputs[2]);
                let name = "_contrib_backward_index_copy";
                let ins = [dy.clone(), ctx.inputs[1].clone()];
                let g = run_kernel(name, &ins, vec![info(old), info(new)], move |_, ins, outs| {
                    let rows = ins[0].shape()[0];
                    let src = rows_of(name, &ins[1], rows)?;
                    let width = ins[0].numel() / rows.max(1);
                    let (a, b) = outs.split_at_mut(1);
                    with_dtype!(a[0].dtype(), T => {
                        let g = ins[0].slice::<T>()?;
                        let (d_old, d_new) = (a[0].slice_mut::<T>()?, b[0].slice_mut::<T>()?);
                        d_old.copy_from_slice(g);
                        for (i, &r) in src.iter().enumerate() {
                            d_new[i * width..(i + 1) * width].copy_from_slice(&g[r * width..(r + 1) * width]);
                        }
                        for &r in &src {
                            d_old[r * width..(r + 1) * width].fill(T::ZERO);
                        }
                    });
                    Ok(())
                })?;
                let mut g = g.into_iter();
                Ok(vec![g.next(), zeros(&ctx.inputs[1])?, g.next()])
            }
            // MXNet's `_backward_contrib_boolean_mask`: kept rows take the head's rows in
            // order, dropped rows get zero; the index gets zero.
            Kind::BooleanMask => {
                let x = &ctx.inputs[0];
                let ins = [dy.clone(), ctx.inputs[1].clone()];
                let g = run_kernel("_backward_contrib_boolean_mask", &ins, vec![info(x)], |_, ins, outs| {
                    let mask = mask_of(&ins[1])?;
                    let width = outs[0].numel() / mask.len().max(1);
                    with_dtype!(outs[0].dtype(), T => {
                        let g = ins[0].slice::<T>()?;
                        let dx = outs[0].slice_mut::<T>()?;
                        let mut kept = g.chunks_exact(width.max(1));
                        for (d, &m) in dx.chunks_exact_mut(width.max(1)).zip(&mask) {
                            match if m { kept.next() } else { None } {
                                Some(row) => d.copy_from_slice(row),
                                None => d.fill(T::ZERO),
                            }
                        }
                    });
                    Ok(())
                })?;
                Ok(vec![g.into_iter().next(), zeros(&ctx.inputs[1])?])
            }
            // MXNet's legacy backward: updates moving_avg with the batch mean of each column
            // and adds the KL sparseness penalty's gradient to the head.
            Kind::KlSparseReg { target, penalty, momentum } => {
                let op: Arc<dyn Operator> = Arc::new(KlSparseRegBackward { target, penalty, momentum });
                let ins = [dy.clone(), ctx.inputs[0].clone(), ctx.inputs[1].clone()];
                let dx = crate::imperative::invoke_operator(&op, &ins)?.into_iter().next();
                Ok(vec![dx, None])
            }
            _ => Err(Error::op(self.name, "has no gradient defined")),
        }
    }
}

/// MXNet's `ComputeBinKernel` for uniform bins: the arithmetic guess, corrected by one
/// against the stored edges `e` (so values on an edge land in the bin it starts).
fn uniform_bin(v: f64, e: &[f64], cnt: usize, lo: f64, hi: f64) -> Option<usize> {
    if !(v >= lo && v <= hi) {
        return None;
    }
    let mut t = (((v - lo) * cnt as f64 / (hi - lo)) as i64).min(cnt as i64 - 1);
    if v < e[t.max(0) as usize] {
        t -= 1;
    }
    if t < 0 {
        return None;
    }
    if v >= e[t as usize + 1] && t != cnt as i64 - 1 {
        t += 1;
    }
    Some(t as usize)
}

/// MXNet's `ComputeBinKernel` for explicit bounds: the last bound whose value is <= v,
/// the top bound counting into the last bin.
fn explicit_bin(v: f64, e: &[f64]) -> Option<usize> {
    let n = e.len() - 1;
    if !(v >= e[0] && v <= e[n]) {
        return None;
    }
    let mut t = 0;
    while t <= n && v - e[t] >= 0.0 {
        t += 1;
    }
    Some((t - 1).min(n - 1))
}

/// `_backward_IdentityAttachKLSparseReg`: inputs (head, data, moving_avg); writes
/// moving_avg in place (MXNet's auxiliary state update) and returns the data gradient.
struct KlSparseRegBackward {
    target: f64,
    penalty: f64,
    momentum: f64,
}

impl Operator for KlSparseRegBackward {
    fn name(&self) -> &'static str {
        "_backward_IdentityAttachKLSparseReg"
    }
    fn num_inputs(&self) -> usize {
        3
    }
    fn mutate_inputs(&self) -> &[usize] {
        &[2]
    }
    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        let (x, avg) = (&inputs[1], &inputs[2]);
        let cols = x.shape.numel() / x.shape.dims().first().copied().unwrap_or(1).max(1);
        if avg.shape.numel() != cols {
            return Err(Error::op(
                self.name(),
                format!("moving_avg {avg} must have one entry per column of data {x} flattened to 2-D"),
            ));
        }
        Ok(vec![x.clone()])
    }
    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let (mom, target, penalty) = (self.momentum, self.target, self.penalty);
        with_real!(outputs[0].dtype(), self.name(), R => {
            let (ins, avg_in) = inputs.split_at_mut(2);
            let (g, x) = (load::<R>(&ins[0])?, load::<R>(&ins[1])?);
            let cols = avg_in[0].numel();
            let rows = x.len() / cols.max(1);
            let r = |v: f64| R::from_f64(v);
            let mut avg = vec![R::ZERO; cols];
            for row in x.chunks_exact(cols.max(1)) {
                for (a, &v) in avg.iter_mut().zip(row) {
                    *a = Element::add(*a, v);
                }
            }
            let mut ma: Vec<R> = load::<R>(&avg_in[0])?.into_owned();
            for (m, a) in ma.iter_mut().zip(&avg) {
                *m = r(mom) * *m + (r(1.0) - r(mom)) * (*a / r(rows as f64));
            }
            store::<R>(&mut avg_in[0], |o| {
                o.copy_from_slice(&ma);
                Ok(())
            })?;
            store::<R>(&mut outputs[0], |dx| {
                for (d, gr) in dx.chunks_exact_mut(cols.max(1)).zip(g.chunks_exact(cols.max(1))) {
                    for ((o, &gv), &m) in d.iter_mut().zip(gr).zip(&ma) {
                        *o = gv + r(penalty) * (-r(target) / m + (r(1.0) - r(target)) / (r(1.0) - m));
                    }
                }
                Ok(())
            })
        })
    }
}

pub(crate) fn register(r: &mut Registry) {
    r.register_family(
        build,
        &[
            ("_contrib_index_copy", &[]),
            ("_contrib_boolean_mask", &["_npi_boolean_mask"]),
            ("_histogram", &["_npi_histogram"]),
            ("_scatter_set_nd", &["_npi_scatter_set_nd"]),
            ("_NoGradient", &[]),
            ("IdentityAttachKLSparseReg", &[]),
        ],
    );
}
