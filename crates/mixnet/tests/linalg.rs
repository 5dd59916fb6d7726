//! The linalg operators beyond the goldens: batching over several leading dimensions,
//! float64, identities between the ops, and the errors a user can hit.

use mixnet::imperative::invoke;
use mixnet::NDArray;

fn arr(v: &[f64], shape: &[usize]) -> NDArray {
    NDArray::from_slice(v, shape.to_vec()).unwrap()
}

fn run(op: &str, xs: &[NDArray], attrs: &[(&str, &str)]) -> NDArray {
    invoke(op, xs, attrs).unwrap_or_else(|e| panic!("{op}: {e}")).remove(0)
}

fn close(a: &NDArray, b: &NDArray) {
    assert_eq!(a.shape(), b.shape());
    for (x, y) in a.to_f64_vec().unwrap().iter().zip(b.to_f64_vec().unwrap()) {
        assert!((x - y).abs() < 1e-9, "{x} vs {y}");
    }
}

/// Symmetric positive definite 3x3 matrices, a batch of shape (2, 2).
fn spd() -> NDArray {
    let mut v = Vec::new();
    for k in 0..4 {
        let d = 4.0 + k as f64;
        v.extend([d, 1.0, 0.5, 1.0, d + 1.0, 0.25 * k as f64, 0.5, 0.25 * k as f64, d + 2.0]);
    }
    arr(&v, &[2, 2, 3, 3])
}

#[test]
fn cholesky_round_trips_and_batches() {
    let a = spd();
    let l = run("_linalg_potrf", &[a.clone()], &[]);
    assert_eq!(l.shape().dims(), [2, 2, 3, 3]);
    // L Lᵀ = A, and potri(L) = A⁻¹ = inverse(A).
    close(&run("linalg_gemm2", &[l.clone(), l.clone()], &[("transpose_b", "True")]), &a);
    close(&run("_linalg_potri", &[l.clone()], &[]), &run("_linalg_inverse", &[a.clone()], &[]));
    // log det A = 2 Σ log diag L.
    let sld = run("_linalg_sumlogdiag", &[l], &[]).to_f64_vec().unwrap();
    let (_, logdet) = {
        let mut r = invoke("_linalg_slogdet", &[a], &[]).unwrap();
        (r.remove(0), r.remove(0))
    };
    for (x, y) in sld.iter().zip(logdet.to_f64_vec().unwrap()) {
        assert!((2.0 * x - y).abs() < 1e-9);
    }
}

#[test]
fn trsm_inverts_trmm() {
    let a = run("_linalg_potrf", &[spd()], &[]);
    let b = arr(&(0..24).map(|i| i as f64 / 7.0 - 1.0).collect::<Vec<_>>(), &[2, 2, 3, 2]);
    let attrs = [("alpha", "2.0"), ("transpose", "True")];
    let ab = run("_linalg_trmm", &[a.clone(), b.clone()], &attrs);
    let back = run("_linalg_trsm", &[a, ab], &[("alpha", "0.5"), ("transpose", "True")]);
    close(&back, &b);
}

#[test]
fn errors_name_the_operator() {
    let msg = |op: &str, xs: &[NDArray], attrs: &[(&str, &str)]| match invoke(op, xs, attrs) {
        Ok(r) => r[0].wait_to_read().unwrap_err().to_string(),
        Err(e) => e.to_string(),
    };
    let e = msg("_linalg_potrf", &[arr(&[1.0, 2.0, 2.0, 1.0], &[2, 2])], &[]);
    assert!(e.contains("_linalg_potrf") && e.contains("positive definite"), "{e}");
    let e = msg("_linalg_inverse", &[arr(&[1.0; 6], &[2, 3])], &[]);
    assert!(e.contains("_linalg_inverse") && e.contains("square"), "{e}");
    let e = msg("_linalg_gemm2", &[arr(&[1.0; 6], &[2, 3]), arr(&[1.0; 6], &[2, 3])], &[]);
    assert!(e.contains("_linalg_gemm2") && e.contains("op(A) is 2x3"), "{e}");
    let e = msg("_linalg_inverse", &[arr(&[1.0, 2.0, 2.0, 4.0], &[2, 2])], &[]);
    assert!(e.contains("singular"), "{e}");
    let e = msg("_linalg_maketrian", &[arr(&[1.0; 5], &[5])], &[]);
    assert!(e.contains("_linalg_maketrian") && e.contains("packed triangle"), "{e}");
    let e = msg("_linalg_det", &[NDArray::from_slice(&[1i32, 0, 0, 1], [2, 2]).unwrap()], &[]);
    assert!(e.contains("_linalg_det") && e.contains("int32"), "{e}");
}
