//! Sorting along an axis (MXNet's `tensor/ordering_op-inl.h`): `topk` (every `ret_typ`),
//! `sort`, `argsort`. Values of `topk`/`sort` get the head gradient scattered back to the
//! positions they came from (`_backward_topk`); indices and masks have zero gradient.

use std::cmp::Ordering;
use std::sync::Arc;

use mixnet_kernels::Element;

use crate::op::{Attrs, Blob, GradContext, OpContext, OpDef, Operator, Registry, TensorInfo};
use crate::shape::Shape;
use crate::{with_dtype, DType, Error, NDArray, Result};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Ret {
    Value,
    Indices,
    Mask,
    Both,
}

#[derive(Clone, Debug)]
enum Kind {
    TopK {
        axis: Option<i64>,
        k: i64,
        ret: Ret,
        ascend: bool,
        dtype: DType,
    },
    /// Gradient: inputs (head of the values, indices), output shaped like `data`.
    Backward {
        axis: Option<i64>,
        data: Shape,
    },
}

/// A configured ordering operator (`sort` and `argsort` are `topk` with fixed settings).
pub struct OrderOp {
    name: &'static str,
    kind: Kind,
}

fn axis_attr(attrs: &mut Attrs<'_>) -> Result<Option<i64>> {
    match attrs.get("axis") {
        None => Ok(Some(-1)),
        Some(v) if matches!(v.trim(), "None" | "") => Ok(None),
        Some(v) => v
            .trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| Error::op(attrs.op(), format!("attribute axis='{v}' is not an integer or None"))),
    }
}

fn build(name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    let axis = axis_attr(attrs)?;
    let kind = match name {
        "topk" => {
            let k = attrs.int("k", 1)?;
            let ret = match attrs.choice("ret_typ", &["value", "indices", "mask", "both"], "indices")? {
                "value" => Ret::Value,
                "mask" => Ret::Mask,
                "both" => Ret::Both,
                _ => Ret::Indices,
            };
            let ascend = attrs.bool("is_ascend", false)?;
            let dtype = attrs.dtype("dtype")?.unwrap_or(DType::F32);
            Kind::TopK { axis, k, ret, ascend, dtype }
        }
        "sort" => Kind::TopK {
            axis,
            k: 0,
            ret: Ret::Value,
            ascend: attrs.bool("is_ascend", true)?,
            dtype: DType::F32,
        },
        _ => {
            let ascend = attrs.bool("is_ascend", true)?;
            let dtype = attrs.dtype("dtype")?.unwrap_or(DType::F32);
            Kind::TopK { axis, k: 0, ret: Ret::Indices, ascend, dtype }
        }
    };
    if let Kind::TopK { dtype, .. } = &kind {
        if matches!(dtype, DType::Bool | DType::BF16) {
            return Err(Error::op(name, format!("index dtype {dtype} is not supported")));
        }
    }
    Ok(Arc::new(OrderOp { name, kind }))
}

/// (outer, n, inner, k) of a sort of `shape` along `axis` (None: flattened).
fn layout(op: &str, shape: &[usize], axis: Option<i64>, k: i64) -> Result<(usize, usize, usize, usize)> {
    let (outer, n, inner) = match axis {
        None => (1, shape.iter().product(), 1),
        Some(a) => {
            let nd = shape.len() as i64;
            let a2 = if a < 0 { a + nd } else { a };
            if !(0..nd).contains(&a2) {
                return Err(Error::op(op, format!("axis {a} is out of bounds for array of dimension {nd}")));
            }
            let a2 = a2 as usize;
            (shape[..a2].iter().product(), shape[a2], shape[a2 + 1..].iter().product())
        }
    };
    let k = if k < 1 { n } else { k as usize };
    if k > n {
        return Err(Error::op(op, format!("k={k} exceeds the {n} elements along the axis")));
    }
    Ok((outer, n, inner, k))
}

fn out_shape(shape: &[usize], axis: Option<i64>, k: usize) -> Vec<usize> {
    match axis {
        None => vec![k],
        Some(a) => {
            let a = if a < 0 { (a + shape.len() as i64) as usize } else { a as usize };
            let mut d = shape.to_vec();
            d[a] = k;
            d
        }
    }
}

impl Operator for OrderOp {
    fn name(&self) -> &'static str {
        self.name
    }

    fn num_inputs(&self) -> usize {
        match self.kind {
            Kind::TopK { .. } => 1,
            Kind::Backward { .. } => 2,
        }
    }

    fn num_outputs(&self) -> usize {
        match self.kind {
            Kind::TopK { ret: Ret::Both, .. } => 2,
            _ => 1,
        }
    }

    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        let x = &inputs[0];
        match &self.kind {
            Kind::Backward { data, .. } => Ok(vec![TensorInfo::new(data.clone(), x.dtype)]),
            Kind::TopK { axis, k, ret, dtype, .. } => {
                if x.dtype == DType::Bool {
                    return Err(Error::op(self.name, "bool arrays cannot be sorted"));
                }
                let (.., kk) = layout(self.name, &x.shape, *axis, *k)?;
                let s = out_shape(&x.shape, *axis, kk);
                Ok(match ret {
                    Ret::Value => vec![TensorInfo::new(s.as_slice(), x.dtype)],
                    Ret::Indices => vec![TensorInfo::new(s.as_slice(), *dtype)],
                    Ret::Mask => vec![x.clone()],
                    Ret::Both => {
                        vec![TensorInfo::new(s.as_slice(), x.dtype), TensorInfo::new(s.as_slice(), *dtype)]
                    }
                })
            }
        }
    }

    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        match &self.kind {
            Kind::TopK { axis, k, ret, ascend, .. } => {
                let (outer, n, inner, k) = layout(self.name, inputs[0].shape(), *axis, *k)?;
                with_dtype!(inputs[0].dtype(), T => {
                    let x = inputs[0].slice::<T>()?;
                    // (source flat offset, position along the axis) of every selected element.
                    let mut pos: Vec<usize> = Vec::with_capacity(n);
                    let mut sel = vec![(0usize, 0usize); outer * k * inner];
                    for o in 0..outer {
                        for r in 0..inner {
                            let at = |j: usize| x[(o * n + j) * inner + r];
                            pos.clear();
                            pos.extend(0..n);
                            let cmp = |a: &usize, b: &usize| {
                                let (va, vb) = (at(*a), at(*b));
                                let c = va.partial_cmp(&vb).unwrap_or_else(|| va.is_nan().cmp(&vb.is_nan()));
                                if *ascend { c } else { c.reverse() }
                            };
                            pos.sort_by(|a, b| match cmp(a, b) {
                                Ordering::Equal => a.cmp(b),
                                c => c,
                            });
                            for (j, &p) in pos[..k].iter().enumerate() {
                                sel[(o * k + j) * inner + r] = ((o * n + p) * inner + r, p);
                            }
                        }
                    }
                    let write_idx = |b: &mut Blob<'_>| -> Result<()> {
                        with_dtype!(b.dtype(), I => {
                            for (o, &(_, p)) in b.slice_mut::<I>()?.iter_mut().zip(&sel) {
                                *o = I::from_f64(p as f64);
                            }
                        });
                        Ok(())
                    };
                    match ret {
                        Ret::Value | Ret::Both => {
                            for (o, &(s, _)) in outputs[0].slice_mut::<T>()?.iter_mut().zip(&sel) {
                                *o = x[s];
                            }
                            if *ret == Ret::Both {
                                write_idx(&mut outputs[1])?;
                            }
                        }
                        Ret::Indices => write_idx(&mut outputs[0])?,
                        Ret::Mask => {
                            let m = outputs[0].slice_mut::<T>()?;
                            m.fill(T::ZERO);
                            for &(s, _) in &sel {
                                m[s] = T::ONE;
                            }
                        }
                    }
                });
                Ok(())
            }
            Kind::Backward { axis, data } => {
                let g_shape = inputs[0].shape().clone();
                let (outer, n, inner, _) = layout(self.name, data, *axis, 0)?;
                let k = g_shape.numel() / (outer * inner);
                let idx: Vec<usize> = with_dtype!(inputs[1].dtype(), I => inputs[1].slice::<I>()?.iter().map(|v| v.to_f64() as usize).collect());
                with_dtype!(outputs[0].dtype(), T => {
                    let g = inputs[0].slice::<T>()?;
                    let out = outputs[0].slice_mut::<T>()?;
                    out.fill(T::ZERO);
                    for o in 0..outer {
                        for j in 0..k {
                            for r in 0..inner {
                                let e = (o * k + j) * inner + r;
                                let p = idx[e].min(n - 1);
                                let d = (o * n + p) * inner + r;
                                out[d] = out[d].add(g[e]);
                            }
                        }
                    }
                });
                Ok(())
            }
        }
    }

    fn has_gradient(&self) -> bool {
        matches!(self.kind, Kind::TopK { .. })
    }

    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let x = &ctx.inputs[0];
        let Kind::TopK { axis, k, ret, ascend, .. } = &self.kind else {
            return Err(Error::op(self.name, "has no gradient defined"));
        };
        if matches!(ret, Ret::Indices | Ret::Mask) {
            return Ok(vec![Some(NDArray::zeros(x.shape().clone(), x.dtype(), x.context())?)]);
        }
        // Indices of the selected values (recomputed; the forward may not have kept them).
        let idx = match ret {
            Ret::Both => ctx.outputs[1].clone(),
            _ => {
                let op: Arc<dyn Operator> = Arc::new(OrderOp {
                    name: "topk",
                    kind: Kind::TopK {
                        axis: *axis,
                        k: *k,
                        ret: Ret::Indices,
                        ascend: *ascend,
                        dtype: DType::I64,
                    },
                });
                crate::imperative::invoke_operator(&op, std::slice::from_ref(x))?.remove(0)
            }
        };
        let op: Arc<dyn Operator> = Arc::new(OrderOp {
            name: "_backward_topk",
            kind: Kind::Backward { axis: *axis, data: x.shape().clone() },
        });
        let g = crate::imperative::invoke_operator(&op, &[ctx.out_grads[0].clone(), idx])?.remove(0);
        Ok(vec![Some(g)])
    }
}

pub(crate) fn register(r: &mut Registry) {
    for name in ["topk", "sort", "argsort"] {
        r.register(OpDef { name, aliases: &[], build });
    }
}
