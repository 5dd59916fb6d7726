//! MXNet's `_linalg_*` operators (`tensor/la_op.cc`), batched over leading dimensions,
//! float32 and float64, computed in f64 with `mixnet_kernels::linalg`. Gradients follow
//! MXNet's `la_op-inl.h` step by step (same triangle conventions: potrf's result and the
//! triangular ops' gradients keep only the `lower` (or upper) triangle).
//!
//! Reductions to a scalar per matrix (`sumlogdiag`, `det`, `slogdet`) give shape `(1,)`
//! for a single matrix, as MXNet does. Only the default `axis=-2` of `gemm`/`gemm2` is
//! supported.

use std::sync::Arc;

use mixnet_kernels::linalg::{
    cholesky, gelqf, inverse, matmul, mirror_triangle, slogdet, syevd, transpose, trmm, trsm, zero_triangle,
};

use super::nn::kernel::{load, run_kernel, write};
use crate::op::{Attrs, Blob, GradContext, OpContext, Operator, Registry, TensorInfo};
use crate::{DType, Error, NDArray, Result, Shape};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Gemm { ta: bool, tb: bool, alpha: f64, beta: f64 },
    Gemm2 { ta: bool, tb: bool, alpha: f64 },
    Potrf { lower: bool },
    Potri { lower: bool },
    Trmm { transpose: bool, rightside: bool, lower: bool, alpha: f64 },
    Trsm { transpose: bool, rightside: bool, lower: bool, alpha: f64 },
    Syrk { transpose: bool, alpha: f64 },
    SumLogDiag,
    ExtractDiag { offset: i64 },
    MakeDiag { offset: i64 },
    ExtractTrian { offset: i64, lower: bool },
    MakeTrian { offset: i64, lower: bool },
    Gelqf,
    Syevd,
    Inverse,
    Det,
    Slogdet,
}

/// A configured linalg operator.
pub struct Linalg {
    name: &'static str,
    kind: Kind,
}

fn build(name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    // MXNet's alpha/beta are double fields; offsets ints; flags bools.
    let alpha = |a: &mut Attrs<'_>| a.float("alpha", 1.0);
    let kind = match name {
        "_linalg_gemm" | "_linalg_gemm2" => {
            let axis = attrs.int("axis", -2)?;
            if axis != -2 {
                return Err(Error::op(name, format!("only axis=-2 is supported, got {axis}")));
            }
            let (ta, tb) = (attrs.bool("transpose_a", false)?, attrs.bool("transpose_b", false)?);
            let a = alpha(attrs)?;
            if name == "_linalg_gemm" {
                Kind::Gemm { ta, tb, alpha: a, beta: attrs.float("beta", 1.0)? }
            } else {
                Kind::Gemm2 { ta, tb, alpha: a }
            }
        }
        "_linalg_potrf" => Kind::Potrf { lower: attrs.bool("lower", true)? },
        "_linalg_potri" => Kind::Potri { lower: attrs.bool("lower", true)? },
        "_linalg_trmm" | "_linalg_trsm" => {
            let (transpose, rightside) = (attrs.bool("transpose", false)?, attrs.bool("rightside", false)?);
            let (lower, a) = (attrs.bool("lower", true)?, alpha(attrs)?);
            if name == "_linalg_trmm" {
                Kind::Trmm { transpose, rightside, lower, alpha: a }
            } else {
                Kind::Trsm { transpose, rightside, lower, alpha: a }
            }
        }
        "_linalg_syrk" => Kind::Syrk { transpose: attrs.bool("transpose", false)?, alpha: alpha(attrs)? },
        "_linalg_sumlogdiag" => Kind::SumLogDiag,
        "_linalg_extractdiag" => Kind::ExtractDiag { offset: attrs.int("offset", 0)? },
        "_linalg_makediag" => Kind::MakeDiag { offset: attrs.int("offset", 0)? },
        "_linalg_extracttrian" => {
            Kind::ExtractTrian { offset: attrs.int("offset", 0)?, lower: attrs.bool("lower", true)? }
        }
        "_linalg_maketrian" => {
            Kind::MakeTrian { offset: attrs.int("offset", 0)?, lower: attrs.bool("lower", true)? }
        }
        "_linalg_gelqf" => Kind::Gelqf,
        "_linalg_syevd" => Kind::Syevd,
        "_linalg_inverse" => Kind::Inverse,
        "_linalg_det" => Kind::Det,
        "_linalg_slogdet" => Kind::Slogdet,
        _ => return Err(Error::op(name, "not a linalg operator")),
    };
    Ok(Arc::new(Linalg { name, kind }))
}

/// Leading (batch) dimensions and the trailing matrix shape.
fn split(op: &str, what: &str, s: &Shape, min_ndim: usize) -> Result<(Vec<usize>, usize, usize)> {
    let d = s.dims();
    if d.len() < min_ndim {
        return Err(Error::op(op, format!("{what} must have at least {min_ndim} dimensions, got {s}")));
    }
    if min_ndim == 1 {
        return Ok((d[..d.len() - 1].to_vec(), 1, d[d.len() - 1]));
    }
    Ok((d[..d.len() - 2].to_vec(), d[d.len() - 2], d[d.len() - 1]))
}

fn shape_of(batch: &[usize], tail: &[usize]) -> Shape {
    Shape::new(&[batch, tail].concat())
}

/// Scalars per matrix: `(1,)` for one matrix, else the batch shape.
fn scalar_shape(batch: &[usize]) -> Shape {
    if batch.is_empty() {
        Shape::new(&[1])
    } else {
        Shape::new(batch)
    }
}

/// Side of the square matrix whose packed triangle (offset `k`) has `len` entries.
fn trian_side(len: usize, k: i64) -> Option<usize> {
    let m = ((((8 * len + 1) as f64).sqrt() - 1.0) / 2.0).round() as usize;
    (m * (m + 1) / 2 == len).then_some(m + k.unsigned_abs() as usize)
}

impl Linalg {
    fn err(&self, msg: String) -> Error {
        Error::op(self.name, msg)
    }

    fn square(&self, what: &str, s: &Shape) -> Result<(Vec<usize>, usize)> {
        let (b, r, c) = split(self.name, what, s, 2)?;
        if r != c {
            return Err(self.err(format!("{what} must be square matrices, got {s}")));
        }
        Ok((b, r))
    }

    /// Output shapes for input shapes.
    fn shapes(&self, ins: &[&Shape]) -> Result<Vec<Shape>> {
        let same_batch = |a: &[usize], b: &[usize]| -> Result<()> {
            if a != b {
                return Err(self.err(format!("batch dimensions differ: {} and {}", ins[0], ins[1])));
            }
            Ok(())
        };
        Ok(match self.kind {
            Kind::Gemm { ta, tb, .. } | Kind::Gemm2 { ta, tb, .. } => {
                let (ba, ar, ac) = split(self.name, "A", ins[0], 2)?;
                let (bb, br, bc) = split(self.name, "B", ins[1], 2)?;
                same_batch(&ba, &bb)?;
                let (m, k) = if ta { (ac, ar) } else { (ar, ac) };
                let (k2, n) = if tb { (bc, br) } else { (br, bc) };
                if k != k2 {
                    return Err(self.err(format!(
                        "op(A) is {m}x{k} but op(B) is {k2}x{n} (A {}, B {})",
                        ins[0], ins[1]
                    )));
                }
                let out = shape_of(&ba, &[m, n]);
                if let Kind::Gemm { .. } = self.kind {
                    if ins[2] != &out {
                        return Err(self.err(format!("C must be {out}, got {}", ins[2])));
                    }
                }
                vec![out]
            }
            Kind::Potrf { .. } | Kind::Potri { .. } | Kind::Inverse => {
                self.square("A", ins[0])?;
                vec![ins[0].clone()]
            }
            Kind::Trmm { rightside, .. } | Kind::Trsm { rightside, .. } => {
                let (ba, n) = self.square("A", ins[0])?;
                let (bb, br, bc) = split(self.name, "B", ins[1], 2)?;
                same_batch(&ba, &bb)?;
                let side = if rightside { bc } else { br };
                if side != n {
                    return Err(
                        self.err(format!("A {} does not fit B {} (rightside={rightside})", ins[0], ins[1]))
                    );
                }
                vec![ins[1].clone()]
            }
            Kind::Syrk { transpose, .. } => {
                let (b, r, c) = split(self.name, "A", ins[0], 2)?;
                let n = if transpose { c } else { r };
                vec![shape_of(&b, &[n, n])]
            }
            Kind::SumLogDiag | Kind::Det => vec![scalar_shape(&self.square("A", ins[0])?.0)],
            Kind::Slogdet => {
                let s = scalar_shape(&self.square("A", ins[0])?.0);
                vec![s.clone(), s]
            }
            Kind::ExtractDiag { offset } => {
                let (b, n) = self.square("A", ins[0])?;
                let k = offset.unsigned_abs() as usize;
                if k >= n {
                    return Err(self.err(format!("offset {offset} is outside {n}x{n} matrices")));
                }
                vec![shape_of(&b, &[n - k])]
            }
            Kind::MakeDiag { offset } => {
                let (b, _, len) = split(self.name, "A", ins[0], 1)?;
                let n = len + offset.unsigned_abs() as usize;
                vec![shape_of(&b, &[n, n])]
            }
            Kind::ExtractTrian { offset, .. } => {
                let (b, n) = self.square("A", ins[0])?;
                let k = offset.unsigned_abs() as usize;
                if k >= n {
                    return Err(self.err(format!("offset {offset} is outside {n}x{n} matrices")));
                }
                let m = n - k;
                vec![shape_of(&b, &[m * (m + 1) / 2])]
            }
            Kind::MakeTrian { offset, .. } => {
                let (b, _, len) = split(self.name, "A", ins[0], 1)?;
                let n = trian_side(len, offset).ok_or_else(|| {
                    self.err(format!("{len} is not the size of a packed triangle ({})", ins[0]))
                })?;
                vec![shape_of(&b, &[n, n])]
            }
            Kind::Gelqf => {
                let (b, m, n) = split(self.name, "A", ins[0], 2)?;
                if m > n {
                    return Err(self.err(format!("A must have no more rows than columns, got {}", ins[0])));
                }
                vec![ins[0].clone(), shape_of(&b, &[m, m])]
            }
            Kind::Syevd => {
                let (b, n) = self.square("A", ins[0])?;
                vec![ins[0].clone(), shape_of(&b, &[n])]
            }
        })
    }

    /// Forward on one matrix set (`ins` are that batch entry's matrices, row-major).
    fn forward_one(&self, ins: &[(&[f64], (usize, usize))]) -> Result<Vec<Vec<f64>>> {
        let (a, (ar, ac)) = ins[0];
        let n = ar;
        let singular = || self.err("matrix is singular".into());
        Ok(match self.kind {
            Kind::Gemm { ta, tb, alpha, beta } => {
                let (b, bs) = ins[1];
                let p = matmul(a, (ar, ac), ta, b, bs, tb);
                vec![p.iter().zip(ins[2].0).map(|(x, c)| alpha * x + beta * c).collect()]
            }
            Kind::Gemm2 { ta, tb, alpha } => {
                let (b, bs) = ins[1];
                vec![matmul(a, (ar, ac), ta, b, bs, tb).into_iter().map(|x| alpha * x).collect()]
            }
            Kind::Potrf { lower } => {
                let l = cholesky(a, n).ok_or_else(|| self.err("matrix is not positive definite".into()))?;
                vec![if lower { l } else { transpose(&l, n, n) }]
            }
            Kind::Potri { lower } => {
                let t = mixnet_kernels::linalg::triangle(a, n, lower);
                // lower: A = L·Lᵀ; upper: A = Uᵀ·U.
                let prod = if lower {
                    matmul(&t, (n, n), false, &t, (n, n), true)
                } else {
                    matmul(&t, (n, n), true, &t, (n, n), false)
                };
                vec![inverse(&prod, n).ok_or_else(singular)?]
            }
            Kind::Trmm { transpose, rightside, lower, alpha } => {
                vec![trmm(a, n, ins[1].0, ins[1].1, alpha, rightside, lower, transpose)]
            }
            Kind::Trsm { transpose, rightside, lower, alpha } => {
                vec![trsm(a, n, ins[1].0, ins[1].1, alpha, rightside, lower, transpose)
                    .ok_or_else(singular)?]
            }
            Kind::Syrk { transpose, alpha } => {
                vec![matmul(a, (ar, ac), transpose, a, (ar, ac), !transpose)
                    .into_iter()
                    .map(|x| alpha * x)
                    .collect()]
            }
            Kind::SumLogDiag => vec![vec![(0..n).map(|i| a[i * n + i].ln()).sum()]],
            Kind::ExtractDiag { offset } => {
                vec![diag_positions(n, offset).map(|(i, j)| a[i * n + j]).collect()]
            }
            Kind::MakeDiag { offset } => {
                let size = ac + offset.unsigned_abs() as usize;
                let mut m = vec![0.0; size * size];
                for (v, (i, j)) in a.iter().zip(diag_positions(size, offset)) {
                    m[i * size + j] = *v;
                }
                vec![m]
            }
            Kind::ExtractTrian { offset, lower } => {
                vec![trian_positions(n, offset, lower).map(|(i, j)| a[i * n + j]).collect()]
            }
            Kind::MakeTrian { offset, lower } => {
                let size = trian_side(ac, offset).unwrap_or(0);
                let mut m = vec![0.0; size * size];
                for (v, (i, j)) in a.iter().zip(trian_positions(size, offset, lower)) {
                    m[i * size + j] = *v;
                }
                vec![m]
            }
            Kind::Gelqf => {
                let (q, l) = gelqf(a, ar, ac);
                vec![q, l]
            }
            Kind::Syevd => {
                let (u, w) = syevd(a, n);
                vec![u, w]
            }
            Kind::Inverse => vec![inverse(a, n).ok_or_else(singular)?],
            Kind::Det => {
                let (s, l) = slogdet(a, n);
                vec![vec![s * l.exp()]]
            }
            Kind::Slogdet => {
                let (s, l) = slogdet(a, n);
                vec![vec![s], vec![l]]
            }
        })
    }

    /// Gradients of every input of one matrix set, from the output gradients `dys`, the
    /// inputs `ins` and the outputs `outs` (MXNet's `*_backward`).
    fn backward_one(
        &self,
        dys: &[&[f64]],
        ins: &[(&[f64], (usize, usize))],
        outs: &[&[f64]],
    ) -> Result<Vec<Vec<f64>>> {
        let (a, (ar, ac)) = ins[0];
        let n = ar;
        let scale = |v: Vec<f64>, s: f64| -> Vec<f64> { v.into_iter().map(|x| x * s).collect() };
        let add =
            |x: Vec<f64>, y: Vec<f64>| -> Vec<f64> { x.into_iter().zip(y).map(|(p, q)| p + q).collect() };
        let singular = || self.err("matrix is singular".into());
        Ok(match self.kind {
            Kind::Gemm { ta, tb, alpha, .. } | Kind::Gemm2 { ta, tb, alpha } => {
                let (b, (br, bc)) = ins[1];
                let dc = dys[0];
                let (m, nn) = (if ta { ac } else { ar }, if tb { br } else { bc });
                let dcs = (m, nn);
                let da = if ta {
                    matmul(b, (br, bc), tb, dc, dcs, true)
                } else {
                    matmul(dc, dcs, false, b, (br, bc), !tb)
                };
                let db = if tb {
                    matmul(dc, dcs, true, a, (ar, ac), ta)
                } else {
                    matmul(a, (ar, ac), !ta, dc, dcs, false)
                };
                let mut g = vec![scale(da, alpha), scale(db, alpha)];
                if let Kind::Gemm { beta, .. } = self.kind {
                    g.push(dc.iter().map(|x| beta * x).collect());
                }
                g
            }
            Kind::Potrf { lower } => {
                let l = outs[0];
                let mut da = trmm(l, n, dys[0], (n, n), 1.0, !lower, lower, true);
                mirror_triangle(&mut da, n, !lower);
                let da = trsm(l, n, &da, (n, n), 1.0, false, lower, lower).ok_or_else(singular)?;
                vec![trsm(l, n, &da, (n, n), 0.5, true, lower, !lower).ok_or_else(singular)?]
            }
            Kind::Potri { lower } => {
                let (out, d) = (outs[0], dys[0]);
                let db = if lower {
                    add(
                        matmul(out, (n, n), false, d, (n, n), false),
                        matmul(out, (n, n), false, d, (n, n), true),
                    )
                } else {
                    add(
                        matmul(d, (n, n), false, out, (n, n), false),
                        matmul(d, (n, n), true, out, (n, n), false),
                    )
                };
                let mut db = trsm(a, n, &db, (n, n), -1.0, lower, lower, true).ok_or_else(singular)?;
                zero_triangle(&mut db, n, !lower);
                vec![db]
            }
            Kind::Trmm { transpose, rightside, lower, alpha } => {
                let (b, bs) = ins[1];
                let dc = dys[0];
                let mut da = if rightside == transpose {
                    matmul(dc, bs, transpose, b, bs, !transpose)
                } else {
                    matmul(b, bs, !transpose, dc, bs, transpose)
                };
                da = scale(da, alpha);
                zero_triangle(&mut da, n, !lower);
                let db = trmm(a, n, dc, bs, alpha, rightside, lower, !transpose);
                vec![da, db]
            }
            Kind::Trsm { transpose, rightside, lower, alpha } => {
                let bs = ins[1].1;
                let c = outs[0];
                let db = trsm(a, n, dys[0], bs, alpha, rightside, lower, !transpose).ok_or_else(singular)?;
                let s = -1.0 / alpha;
                let mut da = if rightside == transpose {
                    matmul(&db, bs, transpose, c, bs, !transpose)
                } else {
                    matmul(c, bs, !transpose, &db, bs, transpose)
                };
                da = scale(da, s);
                zero_triangle(&mut da, n, !lower);
                vec![da, db]
            }
            Kind::Syrk { transpose, alpha } => {
                let k = if transpose { ac } else { ar };
                let d = dys[0];
                let da = if transpose {
                    add(
                        matmul(a, (ar, ac), false, d, (k, k), false),
                        matmul(a, (ar, ac), false, d, (k, k), true),
                    )
                } else {
                    add(
                        matmul(d, (k, k), false, a, (ar, ac), false),
                        matmul(d, (k, k), true, a, (ar, ac), false),
                    )
                };
                vec![scale(da, alpha)]
            }
            Kind::SumLogDiag => {
                let mut da = vec![0.0; n * n];
                for i in 0..n {
                    da[i * n + i] = dys[0][0] / a[i * n + i];
                }
                vec![da]
            }
            Kind::ExtractDiag { offset } => {
                let mut da = vec![0.0; n * n];
                for (g, (i, j)) in dys[0].iter().zip(diag_positions(n, offset)) {
                    da[i * n + j] = *g;
                }
                vec![da]
            }
            Kind::MakeDiag { offset } => {
                let size = ac + offset.unsigned_abs() as usize;
                vec![diag_positions(size, offset).map(|(i, j)| dys[0][i * size + j]).collect()]
            }
            Kind::ExtractTrian { offset, lower } => {
                let mut da = vec![0.0; n * n];
                for (g, (i, j)) in dys[0].iter().zip(trian_positions(n, offset, lower)) {
                    da[i * n + j] = *g;
                }
                vec![da]
            }
            Kind::MakeTrian { offset, lower } => {
                let size = trian_side(ac, offset).unwrap_or(0);
                vec![trian_positions(size, offset, lower).map(|(i, j)| dys[0][i * size + j]).collect()]
            }
            Kind::Gelqf => {
                let (m, nn) = (ar, ac);
                let (q, l) = (outs[0], outs[1]);
                let (dq, dl) = (dys[0], dys[1]);
                let mut t = trmm(l, m, dl, (m, m), 1.0, false, true, true);
                let aq = matmul(dq, (m, nn), false, q, (m, nn), true);
                for (x, y) in t.iter_mut().zip(aq) {
                    *x -= y;
                }
                mirror_triangle(&mut t, m, false);
                let da = add(matmul(&t, (m, m), false, q, (m, nn), false), dq.to_vec());
                vec![trsm(l, m, &da, (m, nn), 1.0, false, true, true).ok_or_else(singular)?]
            }
            Kind::Syevd => {
                let (u, w) = (outs[0], outs[1]);
                let (du, dw) = (dys[0], dys[1]);
                let x = matmul(du, (n, n), false, u, (n, n), true);
                let mut y = vec![0.0; n * n];
                for i in 1..n {
                    for j in 0..i {
                        let denom = 2.0 * (w[i] - w[j]).max(1e-100);
                        let e = (x[i * n + j] - x[j * n + i]) / denom;
                        y[i * n + j] = e;
                        y[j * n + i] = e;
                    }
                }
                for i in 0..n {
                    y[i * n + i] = dw[i];
                }
                let t = matmul(u, (n, n), true, &y, (n, n), false);
                vec![matmul(&t, (n, n), false, u, (n, n), false)]
            }
            Kind::Inverse => {
                // dA = -Bᵀ·dB·Bᵀ with B = A⁻¹.
                let b = outs[0];
                let t = matmul(dys[0], (n, n), false, b, (n, n), true);
                vec![scale(matmul(b, (n, n), true, &t, (n, n), false), -1.0)]
            }
            Kind::Det | Kind::Slogdet => {
                // d det = det·A⁻ᵀ; d logdet = A⁻ᵀ (the sign has no gradient).
                let g = if self.kind == Kind::Det { dys[0][0] * outs[0][0] } else { dys[1][0] };
                let inv = inverse(a, n).ok_or_else(singular)?;
                vec![scale(transpose(&inv, n, n), g)]
            }
        })
    }
}

/// `(row, col)` of the entries of diagonal `k` of an `n × n` matrix.
fn diag_positions(n: usize, k: i64) -> impl Iterator<Item = (usize, usize)> {
    let a = k.unsigned_abs() as usize;
    (0..n.saturating_sub(a)).map(move |i| if k >= 0 { (i, i + a) } else { (i + a, i) })
}

/// `(row, col)` of the packed triangle entries in MXNet's order: the lower triangle below
/// diagonal `k <= 0` row by row, or (for `k > 0`, or `k == 0` and not `lower`) the upper
/// triangle column by column (the transpose of the lower order).
fn trian_positions(n: usize, k: i64, lower: bool) -> impl Iterator<Item = (usize, usize)> {
    let a = k.unsigned_abs() as usize;
    let upper = k > 0 || (k == 0 && !lower);
    let m = n.saturating_sub(a);
    (0..m).flat_map(move |r| (0..=r).map(move |c| if upper { (c, r + a) } else { (r + a, c) }))
}

impl Operator for Linalg {
    fn name(&self) -> &'static str {
        self.name
    }
    fn num_inputs(&self) -> usize {
        match self.kind {
            Kind::Gemm { .. } => 3,
            Kind::Gemm2 { .. } | Kind::Trmm { .. } | Kind::Trsm { .. } => 2,
            _ => 1,
        }
    }
    fn num_outputs(&self) -> usize {
        match self.kind {
            Kind::Gelqf | Kind::Syevd | Kind::Slogdet => 2,
            _ => 1,
        }
    }
    fn input_names(&self) -> Vec<String> {
        ["A", "B", "C"][..self.num_inputs()].iter().map(|s| s.to_string()).collect()
    }
    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        let dtype = inputs[0].dtype;
        if !matches!(dtype, DType::F32 | DType::F64) || inputs.iter().any(|i| i.dtype != dtype) {
            let d: Vec<String> = inputs.iter().map(|i| i.dtype.to_string()).collect();
            return Err(self.err(format!("inputs must all be float32 or all float64, got {}", d.join(", "))));
        }
        let shapes: Vec<&Shape> = inputs.iter().map(|i| &i.shape).collect();
        Ok(self.shapes(&shapes)?.into_iter().map(|s| TensorInfo::new(s, dtype)).collect())
    }
    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let ins: Vec<Vec<f64>> =
            inputs.iter().map(|b| load::<f64>(b).map(|c| c.into_owned())).collect::<Result<_>>()?;
        let shapes: Vec<Shape> = inputs.iter().map(|b| b.shape().clone()).collect();
        let results = self.batched(&shapes, &ins, &[], &[], false)?;
        for (o, v) in outputs.iter_mut().zip(results) {
            write::<f64>(o, &v)?;
        }
        Ok(())
    }
    fn has_gradient(&self) -> bool {
        true
    }
    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let this = Linalg { name: self.name, kind: self.kind };
        let (k, n_in) = (ctx.out_grads.len(), ctx.inputs.len());
        let mut args: Vec<NDArray> = ctx.out_grads.to_vec();
        args.extend(ctx.inputs.iter().cloned());
        args.extend(ctx.outputs.iter().cloned());
        let infos = ctx.inputs.iter().map(super::nn::kernel::info).collect();
        let backward = backward_name(self.kind);
        let grads = run_kernel(backward, &args, infos, move |_, ins, outs| {
            let vals: Vec<Vec<f64>> =
                ins.iter().map(|b| load::<f64>(b).map(|c| c.into_owned())).collect::<Result<_>>()?;
            let shapes: Vec<Shape> = ins.iter().map(|b| b.shape().clone()).collect();
            let (dys, rest) = vals.split_at(k);
            let (xs, ys) = rest.split_at(n_in);
            let results = this.batched(&shapes[k..k + n_in], xs, dys, ys, true)?;
            for (o, v) in outs.iter_mut().zip(results) {
                write::<f64>(o, &v)?;
            }
            Ok(())
        })?;
        Ok(grads.into_iter().map(Some).collect())
    }
}

impl Linalg {
    /// Run forward (or, with `backward`, the gradient) over every batch entry: `xs` are the
    /// inputs (shapes `in_shapes`), `dys`/`ys` the output gradients and outputs (backward).
    fn batched(
        &self,
        in_shapes: &[Shape],
        xs: &[Vec<f64>],
        dys: &[Vec<f64>],
        ys: &[Vec<f64>],
        backward: bool,
    ) -> Result<Vec<Vec<f64>>> {
        let min_ndim = |i: usize| match (self.kind, i) {
            (Kind::MakeDiag { .. } | Kind::MakeTrian { .. }, 0) => 1,
            _ => 2,
        };
        let mats: Vec<(usize, usize, usize)> = in_shapes
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let (b, r, c) = split(self.name, "input", s, min_ndim(i))?;
                Ok((b.iter().product(), r, c))
            })
            .collect::<Result<_>>()?;
        let batch = mats[0].0;
        let per = |v: &Vec<f64>| v.len().checked_div(batch).unwrap_or(0);
        let mut results: Vec<Vec<f64>> = Vec::new();
        for t in 0..batch {
            let ins: Vec<(&[f64], (usize, usize))> = xs
                .iter()
                .zip(&mats)
                .map(|(x, &(_, r, c))| (&x[t * r * c..(t + 1) * r * c], (r, c)))
                .collect();
            let out = if backward {
                let d: Vec<&[f64]> = dys.iter().map(|v| &v[t * per(v)..(t + 1) * per(v)]).collect();
                let y: Vec<&[f64]> = ys.iter().map(|v| &v[t * per(v)..(t + 1) * per(v)]).collect();
                self.backward_one(&d, &ins, &y)?
            } else {
                self.forward_one(&ins)?
            };
            if results.is_empty() {
                results = out.iter().map(|o| Vec::with_capacity(o.len() * batch)).collect();
            }
            for (r, o) in results.iter_mut().zip(out) {
                r.extend(o);
            }
        }
        if batch == 0 {
            results = vec![Vec::new(); if backward { xs.len() } else { self.num_outputs() }];
        }
        Ok(results)
    }
}

fn backward_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Gemm { .. } => "_backward_linalg_gemm",
        Kind::Gemm2 { .. } => "_backward_linalg_gemm2",
        Kind::Potrf { .. } => "_backward_linalg_potrf",
        Kind::Potri { .. } => "_backward_linalg_potri",
        Kind::Trmm { .. } => "_backward_linalg_trmm",
        Kind::Trsm { .. } => "_backward_linalg_trsm",
        Kind::Syrk { .. } => "_backward_linalg_syrk",
        Kind::SumLogDiag => "_backward_linalg_sumlogdiag",
        Kind::ExtractDiag { .. } => "_backward_linalg_extractdiag",
        Kind::MakeDiag { .. } => "_backward_linalg_makediag",
        Kind::ExtractTrian { .. } => "_backward_linalg_extracttrian",
        Kind::MakeTrian { .. } => "_backward_linalg_maketrian",
        Kind::Gelqf => "_backward_linalg_gelqf",
        Kind::Syevd => "_backward_linalg_syevd",
        Kind::Inverse => "_backward_linalg_inverse",
        Kind::Det => "_backward_linalg_det",
        Kind::Slogdet => "_backward_linalg_slogdet",
    }
}

pub(crate) fn register(r: &mut Registry) {
    r.register_family(
        build,
        &[
            ("_linalg_gemm", &["linalg_gemm"]),
            ("_linalg_gemm2", &["linalg_gemm2"]),
            ("_linalg_potrf", &["linalg_potrf"]),
            ("_linalg_potri", &["linalg_potri"]),
            ("_linalg_trmm", &["linalg_trmm"]),
            ("_linalg_trsm", &["linalg_trsm"]),
            ("_linalg_syrk", &["linalg_syrk"]),
            ("_linalg_sumlogdiag", &["linalg_sumlogdiag"]),
            ("_linalg_extractdiag", &["linalg_extractdiag"]),
            ("_linalg_makediag", &["linalg_makediag"]),
            ("_linalg_extracttrian", &["linalg_extracttrian"]),
            ("_linalg_maketrian", &["linalg_maketrian"]),
            ("_linalg_gelqf", &["linalg_gelqf"]),
            ("_linalg_syevd", &[]),
            ("_linalg_inverse", &["linalg_inverse", "_npi_inv"]),
            ("_linalg_det", &["linalg_det", "_npi_det"]),
            ("_linalg_slogdet", &["linalg_slogdet", "_npi_slogdet"]),
        ],
    );
}
