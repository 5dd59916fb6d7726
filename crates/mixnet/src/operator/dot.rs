//! `dot` and `batch_dot`. MXNet's `dot` is not numpy's for N-d inputs: it flattens each
//! operand to a matrix around one axis (the last of lhs, the first of rhs; the other end
//! when transposed) and does a single matrix product, so one gemm call serves every rank.

use std::sync::Arc;

use mixnet_kernels::fill::fill;
use mixnet_kernels::gemm::MatMul;
use mixnet_kernels::Element;

use super::grad::{call, reshape_like, reshape_to, zeros_like};
use crate::op::{Attrs, Blob, GradContext, OpContext, Operator, Registry, TensorInfo};
use crate::shape::Shape;
use crate::{with_dtype, DType, Error, NDArray, Result};

const NAMES: &[(&str, &[&str])] = &[("dot", &["_sparse_dot"]), ("batch_dot", &["_npx_batch_dot"])];

/// A configured `dot` (`batched` false) or `batch_dot`.
pub struct DotOp {
    name: &'static str,
    batched: bool,
    transpose_a: bool,
    transpose_b: bool,
}

fn build(name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    let transpose_a = attrs.bool("transpose_a", false)?;
    let transpose_b = attrs.bool("transpose_b", false)?;
    // Only dense storage exists here; a sparse hint still gives the right (dense) values.
    if let Some(v) = attrs.get("forward_stype") {
        let v = v.trim().trim_matches('\'');
        if !matches!(v, "None" | "default" | "row_sparse" | "csr") {
            return Err(Error::op(
                name,
                format!("attribute forward_stype='{v}' must be None, default, row_sparse or csr"),
            ));
        }
    }
    Ok(Arc::new(DotOp { name, batched: name == "batch_dot", transpose_a, transpose_b }))
}

impl DotOp {
    fn shape_error(&self, l: &Shape, r: &Shape, what: &str) -> Error {
        Error::op(
            self.name,
            format!("{what}: {l} X {r} (transpose_a={}, transpose_b={})", self.transpose_a, self.transpose_b),
        )
    }

    /// The gemm problem (and batch count) for these input shapes, with the output shape.
    fn plan(&self, l: &Shape, r: &Shape) -> Result<(usize, MatMul, Shape)> {
        if self.batched {
            self.plan_batch(l, r)
        } else {
            self.plan_dot(l, r).map(|(p, s)| (1, p, s))
        }
    }

    /// MXNet's `DotShape`: lhs is (m, k) flattened around its last axis, or (k, m) around
    /// its first when transposed; rhs is (k, n) around its first axis, or (n, k) around its
    /// last. The output keeps lhs's free axes, then rhs's (none for a 1-D operand).
    fn plan_dot(&self, l: &Shape, r: &Shape) -> Result<(MatMul, Shape)> {
        let (ta, tb) = (self.transpose_a, self.transpose_b);
        if l.ndim() == 0 || r.ndim() == 0 {
            return Err(self.shape_error(l, r, "scalar (0-d) operands are not supported"));
        }
        if l.ndim() == 1 && r.ndim() == 1 {
            if ta || tb {
                return Err(self.shape_error(l, r, "cannot transpose vectors"));
            }
            if l[0] != r[0] {
                return Err(self.shape_error(l, r, "dot shape error"));
            }
            let p = MatMul { m: 1, n: 1, k: l[0], trans_a: false, trans_b: false };
            return Ok((p, Shape::new(&[1])));
        }
        // (free axes, contracted length) of each operand.
        let (l_free, kl) = if ta { (&l[1..], l[0]) } else { (&l[..l.ndim() - 1], l[l.ndim() - 1]) };
        let (r_free, kr) = if tb { (&r[..r.ndim() - 1], r[r.ndim() - 1]) } else { (&r[1..], r[0]) };
        if kl != kr {
            return Err(self.shape_error(l, r, "dot shape error (contracted dimensions differ)"));
        }
        let out: Shape = l_free.iter().chain(r_free).copied().collect();
        let (m, n) = (l_free.iter().product(), r_free.iter().product());
        Ok((MatMul { m, n, k: kl, trans_a: ta, trans_b: tb }, out))
    }

    /// MXNet's `BatchDotShape`: equal ranks >= 3, equal leading (batch) dimensions, a
    /// matrix product over the last two.
    fn plan_batch(&self, l: &Shape, r: &Shape) -> Result<(usize, MatMul, Shape)> {
        let nd = l.ndim();
        if nd < 3 || r.ndim() != nd {
            return Err(self.shape_error(l, r, "batch_dot needs two arrays of the same rank N >= 3"));
        }
        if l[..nd - 2] != r[..nd - 2] {
            return Err(self.shape_error(l, r, "the leading batch dimensions must be equal"));
        }
        let (ta, tb) = (self.transpose_a, self.transpose_b);
        let (m, kl) = if ta { (l[nd - 1], l[nd - 2]) } else { (l[nd - 2], l[nd - 1]) };
        let (n, kr) = if tb { (r[nd - 2], r[nd - 1]) } else { (r[nd - 1], r[nd - 2]) };
        if kl != kr {
            return Err(self.shape_error(l, r, "batch_dot shape mismatch"));
        }
        let out: Shape = l[..nd - 2].iter().copied().chain([m, n]).collect();
        let batch = l[..nd - 2].iter().product();
        Ok((batch, MatMul { m, n, k: kl, trans_a: ta, trans_b: tb }, out))
    }
}

impl Operator for DotOp {
    fn name(&self) -> &'static str {
        self.name
    }

    fn num_inputs(&self) -> usize {
        2
    }

    fn input_names(&self) -> Vec<String> {
        vec!["lhs".into(), "rhs".into()]
    }

    fn has_gradient(&self) -> bool {
        true
    }

    /// For C = op(A) op(B) on the (flattened) matrices:
    /// A B: dA = g Bᵀ, dB = Aᵀ g;  Aᵀ B: dA = B gᵀ, dB = A g;
    /// A Bᵀ: dA = g B, dB = gᵀ A;  Aᵀ Bᵀ: dA = Bᵀ gᵀ, dB = gᵀ Aᵀ.
    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let (a, b, g) = (&ctx.inputs[0], &ctx.inputs[1], &ctx.out_grads[0]);
        if a.size() == 0 || b.size() == 0 || g.size() == 0 {
            return Ok(vec![Some(zeros_like(a)?), Some(zeros_like(b)?)]);
        }
        if !self.batched && a.ndim() == 1 && b.ndim() == 1 {
            return Ok(vec![Some((g * b)?), Some((g * a)?)]);
        }
        let (ta, tb) = (self.transpose_a, self.transpose_b);
        let (a2, b2, g2) = if self.batched {
            (a.clone(), b.clone(), g.clone())
        } else {
            // dot flattens each operand to a matrix around its contracted axis.
            let (p, _) = self.plan_dot(a.shape(), b.shape())?;
            let (l, r) = (a.shape(), b.shape());
            let ad =
                if ta { [l[0], l.numel() / l[0]] } else { [l.numel() / l[l.ndim() - 1], l[l.ndim() - 1]] };
            let bd =
                if tb { [r.numel() / r[r.ndim() - 1], r[r.ndim() - 1]] } else { [r[0], r.numel() / r[0]] };
            (reshape_to(a, &ad)?, reshape_to(b, &bd)?, reshape_to(g, &[p.m, p.n])?)
        };
        let op = if self.batched { "batch_dot" } else { "dot" };
        let mm = |x: &NDArray, y: &NDArray, tx: bool, ty: bool| {
            let (tx, ty) = (if tx { "True" } else { "False" }, if ty { "True" } else { "False" });
            call(op, &[x.clone(), y.clone()], &[("transpose_a", tx), ("transpose_b", ty)])
        };
        let (da, db) = match (ta, tb) {
            (false, false) => (mm(&g2, &b2, false, true)?, mm(&a2, &g2, true, false)?),
            (true, false) => (mm(&b2, &g2, false, true)?, mm(&a2, &g2, false, false)?),
            (false, true) => (mm(&g2, &b2, false, false)?, mm(&g2, &a2, true, false)?),
            (true, true) => (mm(&b2, &g2, true, true)?, mm(&g2, &a2, true, true)?),
        };
        Ok(vec![Some(reshape_like(&da, a)?), Some(reshape_like(&db, b)?)])
    }

    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        let (l, r) = (&inputs[0], &inputs[1]);
        if l.dtype != r.dtype {
            return Err(Error::op(
                self.name,
                format!("operands have different dtypes {} and {}", l.dtype, r.dtype),
            ));
        }
        // MXNet's CPU dot takes float32/float64 only; float16 (gemm's f16 path, which
        // computes in f32) is a mixnet extension.
        if !matches!(l.dtype, DType::F32 | DType::F64 | DType::F16) {
            return Err(Error::op(
                self.name,
                format!("dtype {} is not supported (float32, float64 and float16 only)", l.dtype),
            ));
        }
        let (_, _, shape) = self.plan(&l.shape, &r.shape)?;
        Ok(vec![TensorInfo { shape, dtype: l.dtype }])
    }

    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let (batch, p, _) = self.plan(inputs[0].shape(), inputs[1].shape())?;
        let (a, b, out) = (&inputs[0], &inputs[1], &mut outputs[0]);
        // Zero-size operands are not viewed: a typed view of an empty chunk fails today
        // (its dangling base pointer is only byte-aligned).
        if out.numel() == 0 {
            return Ok(());
        }
        if p.k == 0 {
            with_dtype!(out.dtype(), T => fill(out.slice_mut::<T>()?, T::ZERO));
            return Ok(());
        }
        match out.dtype() {
            DType::F32 => p.run_batch(batch, a.slice::<f32>()?, b.slice::<f32>()?, out.slice_mut::<f32>()?),
            DType::F64 => p.run_batch(batch, a.slice::<f64>()?, b.slice::<f64>()?, out.slice_mut::<f64>()?),
            DType::F16 => p.run_batch(
                batch,
                a.slice::<crate::f16>()?,
                b.slice::<crate::f16>()?,
                out.slice_mut::<crate::f16>()?,
            ),
            other => return Err(Error::op(self.name, format!("dtype {other} is not supported"))),
        }
        Ok(())
    }
}

pub(crate) fn register(r: &mut Registry) {
    r.register_family(build, NAMES);
}
