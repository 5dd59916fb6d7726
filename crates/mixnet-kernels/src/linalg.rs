//! Dense linear algebra on small row-major f64 matrices, the building blocks of MXNet's
//! `_linalg_*` operators and their gradients (which are written, as in MXNet's
//! `la_op-inl.h`, as sequences of gemm/trmm/trsm steps). Matrices are `&[f64]` with their
//! `(rows, cols)`; operators convert their element type to f64 around these calls.
//!
//! These are straightforward O(n³) loops: the linalg operators serve small and batched
//! matrices (covariances, Cholesky factors); large products go through [`crate::gemm`].

/// `op(A) · op(B)` with `op(X) = Xᵀ` when its flag is set; `a` is `ar × ac`, `b` is
/// `br × bc`. Returns the `m × n` product.
///
/// # Panics
/// If the inner dimensions differ (callers check shapes first).
pub fn matmul(
    a: &[f64],
    (ar, ac): (usize, usize),
    ta: bool,
    b: &[f64],
    (br, bc): (usize, usize),
    tb: bool,
) -> Vec<f64> {
    let (m, k) = if ta { (ac, ar) } else { (ar, ac) };
    let (k2, n) = if tb { (bc, br) } else { (br, bc) };
    assert_eq!(k, k2, "linalg matmul: inner dimensions {k} and {k2}");
    let ga = |i: usize, p: usize| if ta { a[p * ac + i] } else { a[i * ac + p] };
    let gb = |p: usize, j: usize| if tb { b[j * bc + p] } else { b[p * bc + j] };
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for p in 0..k {
            let v = ga(i, p);
            if v != 0.0 {
                for j in 0..n {
                    c[i * n + j] += v * gb(p, j);
                }
            }
        }
    }
    c
}

/// `r × c` transpose.
pub fn transpose(a: &[f64], r: usize, c: usize) -> Vec<f64> {
    let mut t = vec![0.0; r * c];
    for i in 0..r {
        for j in 0..c {
            t[j * r + i] = a[i * c + j];
        }
    }
    t
}

/// The lower (or upper) triangle of square `a`, the rest zero.
pub fn triangle(a: &[f64], n: usize, lower: bool) -> Vec<f64> {
    let mut t = a.to_vec();
    zero_triangle(&mut t, n, !lower);
    t
}

/// MXNet's `ZeroTriangular`: zero the strict lower (`zero_lower`) or strict upper triangle.
pub fn zero_triangle(a: &mut [f64], n: usize, zero_lower: bool) {
    for i in 0..n {
        for j in 0..n {
            if (zero_lower && i > j) || (!zero_lower && i < j) {
                a[i * n + j] = 0.0;
            }
        }
    }
}

/// MXNet's `CopyTriangularToOppositeSide`: mirror the strict upper triangle into the lower
/// one (`to_lower`) or the lower into the upper.
pub fn mirror_triangle(a: &mut [f64], n: usize, to_lower: bool) {
    for i in 0..n {
        for j in 0..i {
            if to_lower {
                a[i * n + j] = a[j * n + i];
            } else {
                a[j * n + i] = a[i * n + j];
            }
        }
    }
}

/// Inverse of square `a` by Gauss-Jordan elimination with partial pivoting; `None` when
/// singular.
pub fn inverse(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut m = a.to_vec();
    let mut inv = vec![0.0; n * n];
    for i in 0..n {
        inv[i * n + i] = 1.0;
    }
    for col in 0..n {
        let piv = (col..n).max_by(|&x, &y| m[x * n + col].abs().total_cmp(&m[y * n + col].abs()))?;
        let p = m[piv * n + col];
        if p == 0.0 || !p.is_finite() {
            return None;
        }
        if piv != col {
            for j in 0..n {
                m.swap(piv * n + j, col * n + j);
                inv.swap(piv * n + j, col * n + j);
            }
        }
        for j in 0..n {
            m[col * n + j] /= p;
            inv[col * n + j] /= p;
        }
        for r in 0..n {
            let f = m[r * n + col];
            if r != col && f != 0.0 {
                for j in 0..n {
                    m[r * n + j] -= f * m[col * n + j];
                    inv[r * n + j] -= f * inv[col * n + j];
                }
            }
        }
    }
    Some(inv)
}

/// `(sign, log|det|)` of square `a` by LU with partial pivoting (`(0, -inf)` if singular).
pub fn slogdet(a: &[f64], n: usize) -> (f64, f64) {
    let mut m = a.to_vec();
    let (mut sign, mut logdet) = (1.0, 0.0);
    for col in 0..n {
        let piv =
            (col..n).max_by(|&x, &y| m[x * n + col].abs().total_cmp(&m[y * n + col].abs())).unwrap_or(col);
        let p = m[piv * n + col];
        if p == 0.0 {
            return (0.0, f64::NEG_INFINITY);
        }
        if piv != col {
            for j in 0..n {
                m.swap(piv * n + j, col * n + j);
            }
            sign = -sign;
        }
        if p < 0.0 {
            sign = -sign;
        }
        logdet += p.abs().ln();
        for r in col + 1..n {
            let f = m[r * n + col] / p;
            for j in col..n {
                m[r * n + j] -= f * m[col * n + j];
            }
        }
    }
    (sign, logdet)
}

/// Lower Cholesky factor of symmetric positive-definite `a` (reads its lower triangle);
/// `None` when `a` is not positive definite.
pub fn cholesky(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; n * n];
    for j in 0..n {
        let d = a[j * n + j] - (0..j).map(|k| l[j * n + k] * l[j * n + k]).sum::<f64>();
        if d <= 0.0 || !d.is_finite() {
            return None;
        }
        let d = d.sqrt();
        l[j * n + j] = d;
        for i in j + 1..n {
            let s = a[i * n + j] - (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum::<f64>();
            l[i * n + j] = s / d;
        }
    }
    Some(l)
}

/// `op(tri(A))` of square `a`: its lower/upper triangle, transposed when `transpose`.
fn op_tri(a: &[f64], n: usize, lower: bool, transpose: bool) -> Vec<f64> {
    let t = triangle(a, n, lower);
    if transpose {
        self::transpose(&t, n, n)
    } else {
        t
    }
}

/// BLAS trmm as MXNet uses it: `B ← α·op(A)·B` (or `α·B·op(A)` with `rightside`), `A`
/// triangular (`lower` or upper triangle read), `B` is `(br, bc)`.
#[allow(clippy::too_many_arguments)]
pub fn trmm(
    a: &[f64],
    n: usize,
    b: &[f64],
    (br, bc): (usize, usize),
    alpha: f64,
    rightside: bool,
    lower: bool,
    transpose: bool,
) -> Vec<f64> {
    side_product(&op_tri(a, n, lower, transpose), n, b, (br, bc), alpha, rightside)
}

/// `α·t·B` (or `α·B·t` with `rightside`) for a square `n × n` matrix `t`.
fn side_product(t: &[f64], n: usize, b: &[f64], bs: (usize, usize), alpha: f64, rightside: bool) -> Vec<f64> {
    let p = if rightside {
        matmul(b, bs, false, t, (n, n), false)
    } else {
        matmul(t, (n, n), false, b, bs, false)
    };
    p.into_iter().map(|v| alpha * v).collect()
}

/// BLAS trsm as MXNet uses it: `B ← α·op(A)⁻¹·B` (or `α·B·op(A)⁻¹`); `None` when the
/// triangle is singular.
#[allow(clippy::too_many_arguments)]
pub fn trsm(
    a: &[f64],
    n: usize,
    b: &[f64],
    (br, bc): (usize, usize),
    alpha: f64,
    rightside: bool,
    lower: bool,
    transpose: bool,
) -> Option<Vec<f64>> {
    let inv = inverse(&op_tri(a, n, lower, transpose), n)?;
    Some(side_product(&inv, n, b, (br, bc), alpha, rightside))
}

/// LQ factorization of `a` (`m × n`, `m ≤ n`) by Householder reflections with LAPACK's
/// sign convention (`dgelqf` + `dorglq`): returns `(q, l)`, `q` `m × n` with orthonormal
/// rows and `l` `m × m` lower triangular, `a = l·q`.
pub fn gelqf(a: &[f64], m: usize, n: usize) -> (Vec<f64>, Vec<f64>) {
    // Work on rows of R = A; reflect columns k..n of rows k..m.
    let mut r = a.to_vec();
    let mut vs: Vec<(Vec<f64>, f64)> = Vec::with_capacity(m);
    for k in 0..m {
        let alpha = r[k * n + k];
        let xnorm = (k + 1..n).map(|j| r[k * n + j].powi(2)).sum::<f64>().sqrt();
        let mut v = vec![0.0; n];
        if xnorm == 0.0 {
            vs.push((v, 0.0));
            continue;
        }
        let beta = -alpha.signum() * (alpha * alpha + xnorm * xnorm).sqrt();
        let beta = if alpha == 0.0 { -(xnorm) } else { beta };
        let tau = (beta - alpha) / beta;
        let scale = 1.0 / (alpha - beta);
        v[k] = 1.0;
        for j in k + 1..n {
            v[j] = r[k * n + j] * scale;
        }
        // Apply H = I - tau v vᵀ from the right to rows k..m.
        for i in k..m {
            let dot: f64 = (k..n).map(|j| r[i * n + j] * v[j]).sum();
            for j in k..n {
                r[i * n + j] -= tau * dot * v[j];
            }
        }
        vs.push((v, tau));
    }
    let mut l = vec![0.0; m * m];
    for i in 0..m {
        for j in 0..=i {
            l[i * m + j] = r[i * n + j];
        }
    }
    // Q = first m rows of H_{m-1} ... H_0 applied to the identity: Q = I_{m×n} H_{m-1}..H_0.
    let mut q = vec![0.0; m * n];
    for i in 0..m {
        q[i * n + i] = 1.0;
    }
    for (v, tau) in vs.iter().rev() {
        if *tau == 0.0 {
            continue;
        }
        for i in 0..m {
            let dot: f64 = (0..n).map(|j| q[i * n + j] * v[j]).sum();
            for j in 0..n {
                q[i * n + j] -= tau * dot * v[j];
            }
        }
    }
    (q, l)
}

/// Eigendecomposition of symmetric `a` (`n × n`, lower triangle read) by cyclic Jacobi:
/// returns `(u, w)` with eigenvalues `w` ascending and `u`'s rows the eigenvectors, so
/// `a = uᵀ·diag(w)·u` (MXNet's `syevd` layout). Each row is signed so that its largest
/// component is positive (eigenvector signs are implementation-defined).
pub fn syevd(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut m = a.to_vec();
    mirror_triangle(&mut m, n, false);
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| m[i * n + j].powi(2))
            .sum();
        if off < 1e-30 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = m[p * n + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (m[q * n + q] - m[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (mkp, mkq) = (m[k * n + p], m[k * n + q]);
                    m[k * n + p] = c * mkp - s * mkq;
                    m[k * n + q] = s * mkp + c * mkq;
                }
                for k in 0..n {
                    let (mpk, mqk) = (m[p * n + k], m[q * n + k]);
                    m[p * n + k] = c * mpk - s * mqk;
                    m[q * n + k] = s * mpk + c * mqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    // Columns of v are eigenvectors; sort by eigenvalue and store as rows.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&x, &y| m[x * n + x].total_cmp(&m[y * n + y]));
    let w: Vec<f64> = order.iter().map(|&k| m[k * n + k]).collect();
    let mut u = vec![0.0; n * n];
    for (row, &k) in order.iter().enumerate() {
        let big = (0..n).max_by(|&x, &y| v[x * n + k].abs().total_cmp(&v[y * n + k].abs())).unwrap_or(0);
        let sign = if v[big * n + k] < 0.0 { -1.0 } else { 1.0 };
        for j in 0..n {
            u[row * n + j] = sign * v[j * n + k];
        }
    }
    (u, w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f64], b: &[f64]) {
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-9, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn inverse_cholesky_lq_eigen() {
        let a = [4.0, 2.0, 0.6, 2.0, 5.0, 1.0, 0.6, 1.0, 3.0];
        let inv = inverse(&a, 3).unwrap();
        close(
            &matmul(&a, (3, 3), false, &inv, (3, 3), false),
            &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        );
        let l = cholesky(&a, 3).unwrap();
        close(&matmul(&l, (3, 3), false, &l, (3, 3), true), &a);
        let (s, ld) = slogdet(&a, 3);
        assert!((s * ld.exp() - 44.6).abs() < 1e-9);
        let b = [1.0, 2.0, 3.0, 4.0, 0.5, -1.0, 2.0, 0.0];
        let (q, l) = gelqf(&b, 2, 4);
        close(&matmul(&l, (2, 2), false, &q, (2, 4), false), &b);
        close(&matmul(&q, (2, 4), false, &q, (2, 4), true), &[1.0, 0.0, 0.0, 1.0]);
        let (u, w) = syevd(&a, 3);
        let d: Vec<f64> = (0..9).map(|i| if i % 4 == 0 { w[i / 4] } else { 0.0 }).collect();
        let back = matmul(&matmul(&u, (3, 3), true, &d, (3, 3), false), (3, 3), false, &u, (3, 3), false);
        close(&back, &a);
        assert!(w[0] <= w[1] && w[1] <= w[2]);
    }
}
