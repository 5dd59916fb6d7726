//! Creation operators, `dot` and `batch_dot` beyond the MXNet goldens: every creation op's
//! values against MXNet 1.9.1's kernels, attribute defaults and edge cases, dtypes, aliases,
//! and errors that name the operator and the shapes.

use mixnet::imperative::invoke;
use mixnet::{f16, DType, NDArray};

fn run(op: &str, inputs: &[NDArray], attrs: &[(&str, &str)]) -> NDArray {
    let mut out = invoke(op, inputs, attrs).unwrap_or_else(|e| panic!("{op} {attrs:?}: {e}"));
    assert_eq!(out.len(), 1);
    out.remove(0)
}

fn values(x: &NDArray) -> Vec<f64> {
    x.to_f64_vec().unwrap()
}

fn err(op: &str, inputs: &[NDArray], attrs: &[(&str, &str)]) -> String {
    match invoke(op, inputs, attrs) {
        Ok(out) => match out[0].wait_to_read() {
            Ok(()) => panic!("{op} {attrs:?} succeeded"),
            Err(e) => e.to_string(),
        },
        Err(e) => e.to_string(),
    }
}

fn assert_err(op: &str, inputs: &[NDArray], attrs: &[(&str, &str)], parts: &[&str]) {
    let e = err(op, inputs, attrs);
    for p in parts.iter().chain(&[op]) {
        assert!(e.contains(p), "error for {op} {attrs:?} lacks '{p}': {e}");
    }
}

fn arr(data: &[f32], shape: &[usize]) -> NDArray {
    NDArray::from_slice(data, shape).unwrap()
}

fn seq(n: usize) -> Vec<f32> {
    (0..n).map(|i| ((i * 7) % 11) as f32 - 5.0).collect()
}

// ---------------------------------------------------------------- constants

#[test]
fn zeros_ones_full() {
    let z = run("_zeros", &[], &[("shape", "(2, 3)")]);
    assert_eq!((z.shape().dims(), z.dtype()), (&[2, 3][..], DType::F32));
    assert_eq!(values(&z), [0.0; 6]);
    let o = run("_ones", &[], &[("shape", "(4,)"), ("dtype", "int32"), ("ctx", "cpu(0)")]);
    assert_eq!((o.dtype(), values(&o)), (DType::I32, vec![1.0; 4]));
    let f = run("_full", &[], &[("shape", "(2, 2)"), ("value", "2.5"), ("dtype", "float64")]);
    assert_eq!((f.dtype(), values(&f)), (DType::F64, vec![2.5; 4]));
    // C casts: to int truncates, to bool is value != 0.
    assert_eq!(
        values(&run("_full", &[], &[("shape", "(2,)"), ("value", "-2.7"), ("dtype", "int8")])),
        [-2.0; 2]
    );
    let b = run("_full", &[], &[("shape", "(3,)"), ("value", "0.5"), ("dtype", "bool")]);
    assert_eq!((b.dtype(), values(&b)), (DType::Bool, vec![1.0; 3]));
    let h = run("_npi_full", &[], &[("shape", "3"), ("value", "0.1"), ("dtype", "float16")]);
    assert_eq!(values(&h), [f16::from_f64(0.1).to_f64(); 3]);
    // Large enough for the parallel fill.
    let big = run("_ones", &[], &[("shape", "(300, 1000)")]);
    assert!(values(&big).iter().all(|&v| v == 1.0));
}

#[test]
fn zeros_without_dtype() {
    let z = run("_zeros_without_dtype", &[], &[("shape", "(2, 1)"), ("dtype", "-1")]);
    assert_eq!((z.dtype(), values(&z)), (DType::F32, vec![0.0; 2]));
    let z = run("_zeros_without_dtype", &[], &[("shape", "(3,)"), ("dtype", "4")]);
    assert_eq!(z.dtype(), DType::I32);
}

#[test]
fn legacy_shapes_must_be_known() {
    for shape in ["(2, 0)", "()", "(-1, 2)"] {
        for op in ["_zeros", "_ones", "_zeros_without_dtype"] {
            assert_err(op, &[], &[("shape", shape)], &["shape", "unknown"]);
        }
    }
    assert_err("_zeros", &[], &[], &["shape", "required"]);
    assert_err("_full", &[], &[("shape", "(2,)")], &["value", "required"]);
    assert_err("_zeros", &[], &[("shape", "(2,)"), ("dtype", "float8")], &["dtype", "float8"]);
    assert_err("_ones", &[], &[("shape", "(2,)"), ("value", "1")], &["unknown attribute", "value"]);
}

#[test]
fn like_ops_keep_shape_and_dtype() {
    let x = NDArray::from_slice(&[3i64, -4, 5, 6, 7, 8], [3, 2]).unwrap();
    let o = run("ones_like", std::slice::from_ref(&x), &[]);
    assert_eq!((o.shape().dims(), o.dtype(), values(&o)), (&[3, 2][..], DType::I64, vec![1.0; 6]));
    let z = run("_sparse_zeros_like", &[x], &[]);
    assert_eq!((z.dtype(), values(&z)), (DType::I64, vec![0.0; 6]));
    let b = NDArray::from_bytes(&[0, 1], [2], DType::Bool, mixnet::Context::cpu(0)).unwrap();
    let o = run("ones_like", &[b], &[]);
    assert_eq!((o.dtype(), values(&o)), (DType::Bool, vec![1.0, 1.0]));
    assert_err("zeros_like", &[], &[], &["expects 1 input"]);
}

// ---------------------------------------------------------------- ranges

#[test]
fn arange_values() {
    // A lone start is the stop, as mx.nd.arange(5).
    let a = run("_arange", &[], &[("start", "5")]);
    assert_eq!(
        (a.shape().dims(), a.dtype(), values(&a)),
        (&[5][..], DType::F32, vec![0.0, 1.0, 2.0, 3.0, 4.0])
    );
    let a = run("_arange", &[], &[("start", "1"), ("stop", "2"), ("step", "0.25"), ("dtype", "float64")]);
    assert_eq!(values(&a), [1.0, 1.25, 1.5, 1.75]);
    // Length ceil((stop - start) / step) * repeat; each value repeated.
    let a = run("_arange", &[], &[("start", "0"), ("stop", "5"), ("step", "2"), ("repeat", "2")]);
    assert_eq!(values(&a), [0.0, 0.0, 2.0, 2.0, 4.0, 4.0]);
    let a = run("_arange", &[], &[("start", "3"), ("stop", "-1"), ("step", "-1.5"), ("dtype", "int32")]);
    assert_eq!((a.dtype(), values(&a)), (DType::I32, vec![3.0, 2.0, 1.0]));
    // float32 arithmetic: start + (i/repeat) as f32 * step, in f32.
    let a = run("_arange", &[], &[("start", "0.1"), ("stop", "1"), ("step", "0.1")]);
    let want: Vec<f64> = (0..9).map(|i| (0.1f32 + i as f32 * 0.1f32) as f64).collect();
    assert_eq!(values(&a), want);
    // infer_range with a stop is an ordinary range.
    let a = run("_arange", &[], &[("start", "0"), ("stop", "3"), ("infer_range", "True")]);
    assert_eq!(values(&a), [0.0, 1.0, 2.0]);
}

#[test]
fn arange_quirks_of_mxnet() {
    // MXNet casts start and step through int64 for types std::is_signed rejects: uint8 and
    // the mshadow half types. A float16 range with step 0.5 therefore has step 0.
    let a = run("_arange", &[], &[("start", "1.5"), ("stop", "3"), ("step", "0.5"), ("dtype", "float16")]);
    assert_eq!((a.dtype(), values(&a)), (DType::F16, vec![1.0; 3]));
    // uint8 wraps: step -1 becomes 255, and 255 * i wraps back to -i.
    let a = run("_arange", &[], &[("start", "3"), ("stop", "0"), ("step", "-1"), ("dtype", "uint8")]);
    assert_eq!(values(&a), [3.0, 2.0, 1.0]);
}

#[test]
fn arange_errors() {
    assert_err("_arange", &[], &[("start", "0"), ("stop", "3"), ("step", "0")], &["invalid range"]);
    assert_err("_arange", &[], &[("start", "3"), ("stop", "0")], &["invalid range", "(3, 0, 1)"]);
    assert_err("_arange", &[], &[("start", "0"), ("stop", "3"), ("repeat", "0")], &["repeat"]);
    assert_err("_arange", &[], &[("stop", "3")], &["start", "required"]);
    assert_err("_arange", &[], &[("start", "0"), ("infer_range", "True")], &["infer_range"]);
    assert_err("_arange", &[], &[("start", "3"), ("dtype", "bool")], &["bool"]);
}

#[test]
fn arange_like() {
    let x = arr(&seq(6), &[2, 3]);
    let a = run("_contrib_arange_like", std::slice::from_ref(&x), &[]);
    assert_eq!((a.shape().dims(), values(&a)), (&[2, 3][..], vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]));
    let a =
        run("_npx_arange_like", std::slice::from_ref(&x), &[("axis", "-1"), ("start", "10"), ("step", "-2")]);
    assert_eq!((a.shape().dims(), values(&a)), (&[3][..], vec![10.0, 8.0, 6.0]));
    let a = run("_contrib_arange_like", std::slice::from_ref(&x), &[("repeat", "4")]);
    assert_eq!(values(&a), [0.0, 0.0, 0.0, 0.0, 1.0, 1.0]);
    let xi = NDArray::from_slice(&[1i32, 2, 3], [3]).unwrap();
    let a = run("_contrib_arange_like", &[xi], &[("start", "2.9")]);
    assert_eq!((a.dtype(), values(&a)), (DType::I32, vec![2.0, 3.0, 4.0]));
    assert_err("_contrib_arange_like", &[x], &[("axis", "2")], &["axis 2", "(2, 3)"]);
}

#[test]
fn linspace() {
    let l = run("_linspace", &[], &[("start", "0"), ("stop", "1"), ("num", "5")]);
    assert_eq!((l.dtype(), values(&l)), (DType::F32, vec![0.0, 0.25, 0.5, 0.75, 1.0]));
    let l = run("_npi_linspace", &[], &[("start", "0"), ("stop", "1"), ("num", "4"), ("endpoint", "False")]);
    assert_eq!(values(&l), [0.0, 0.25, 0.5, 0.75]);
    // Values are computed in f64, then cast (truncating for integers).
    let l = run("_linspace", &[], &[("start", "0"), ("stop", "3"), ("num", "5"), ("dtype", "int64")]);
    assert_eq!((l.dtype(), values(&l)), (DType::I64, vec![0.0, 0.0, 1.0, 2.0, 3.0]));
    let l = run("_linspace", &[], &[("start", "0.3"), ("stop", "0.9"), ("num", "3"), ("dtype", "float64")]);
    let step = (0.9f64 - 0.3) / 2.0;
    assert_eq!(values(&l), [0.3, 0.3 + step, 0.3 + step * 2.0]);
    assert_eq!(values(&run("_linspace", &[], &[("start", "7"), ("stop", "9"), ("num", "1")])), [7.0]);
    let empty = run("_linspace", &[], &[("start", "7"), ("stop", "9"), ("num", "0")]);
    assert_eq!((empty.shape().dims(), values(&empty)), (&[0][..], vec![]));
    let empty = run("_eye", &[], &[("N", "0"), ("M", "3")]);
    assert_eq!((empty.shape().dims(), values(&empty)), (&[0, 3][..], vec![]));
    assert_err("_linspace", &[], &[("start", "0"), ("stop", "1"), ("num", "-1")], &["num"]);
    assert_err("_linspace", &[], &[("start", "0"), ("num", "3")], &["stop", "required"]);
}

#[test]
fn eye() {
    let e = run("_eye", &[], &[("N", "3")]);
    assert_eq!((e.shape().dims(), e.dtype()), (&[3, 3][..], DType::F32));
    assert_eq!(values(&e), [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
    let e = run("_eye", &[], &[("N", "2"), ("M", "4"), ("k", "1"), ("dtype", "int32")]);
    assert_eq!((e.dtype(), values(&e)), (DType::I32, vec![0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]));
    let e = run("_eye", &[], &[("N", "3"), ("M", "2"), ("k", "-1")]);
    assert_eq!(values(&e), [0.0, 0.0, 1.0, 0.0, 0.0, 1.0]);
    assert_eq!(values(&run("_eye", &[], &[("N", "2"), ("k", "5")])), [0.0; 4]);
    // M <= 0 means M = N, as in MXNet.
    assert_eq!(run("_eye", &[], &[("N", "2"), ("M", "-3")]).shape().dims(), [2, 2]);
    assert_err("_eye", &[], &[("N", "2"), ("dtype", "bool")], &["bool"]);
    assert_err("_eye", &[], &[("N", "2"), ("dtype", "bfloat16")], &["bfloat16"]);
    assert_err("_eye", &[], &[], &["N", "required"]);
}

#[test]
fn shape_and_size_arrays() {
    let x = arr(&seq(24), &[2, 3, 4]);
    let s = run("shape_array", std::slice::from_ref(&x), &[]);
    assert_eq!((s.shape().dims(), s.dtype(), values(&s)), (&[3][..], DType::I64, vec![2.0, 3.0, 4.0]));
    let s = run("_npx_shape_array", std::slice::from_ref(&x), &[]);
    assert_eq!(values(&s), [2.0, 3.0, 4.0]);
    let n = run("size_array", &[x], &[]);
    assert_eq!((n.shape().dims(), n.dtype(), values(&n)), (&[1][..], DType::I64, vec![24.0]));
}

// ---------------------------------------------------------------- dot

/// MXNet's dot by definition: lhs as (m, k) around its last axis, or (k, m) around its first
/// when transposed; rhs as (k, n) around its first axis, or (n, k) around its last.
fn reference_dot(a: &[f32], a_shape: &[usize], b: &[f32], ta: bool, tb: bool) -> Vec<f64> {
    let (a_len, b_len) = (a.len(), b.len());
    let k = if ta { a_shape[0] } else { a_shape[a_shape.len() - 1] };
    let (m, n) = (a_len / k, b_len / k);
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = (0..k)
                .map(|p| {
                    let x = if ta { a[p * m + i] } else { a[i * k + p] };
                    let y = if tb { b[j * k + p] } else { b[p * n + j] };
                    x as f64 * y as f64
                })
                .sum();
        }
    }
    out
}

fn close(got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 1e-4 * w.abs().max(1.0), "element {i}: {g} vs {w}");
    }
}

#[test]
fn dot_nd_with_transposes() {
    // (a_shape, b_shape, transpose_a, transpose_b, expected output shape)
    type Case = (&'static [usize], &'static [usize], bool, bool, &'static [usize]);
    let cases: &[Case] = &[
        (&[2, 3, 4], &[4, 5], false, false, &[2, 3, 5]),
        (&[2, 3, 4], &[4, 5, 2], false, false, &[2, 3, 5, 2]),
        (&[4, 2, 3], &[4, 5], true, false, &[2, 3, 5]),
        (&[2, 3, 4], &[5, 6, 4], false, true, &[2, 3, 5, 6]),
        (&[4, 2, 3], &[5, 4], true, true, &[2, 3, 5]),
        (&[4], &[4, 5], false, false, &[5]),
        (&[4], &[4, 5], true, false, &[5]),
        (&[3, 4], &[4], false, false, &[3]),
        (&[3, 4], &[4], false, true, &[3]),
        (&[120, 70], &[70, 90], false, false, &[120, 90]),
    ];
    for &(sa, sb, ta, tb, want_shape) in cases {
        let (a, b) = (seq(sa.iter().product()), seq(sb.iter().product::<usize>() + 3)[3..].to_vec());
        let attrs =
            [("transpose_a", if ta { "True" } else { "False" }), ("transpose_b", if tb { "1" } else { "0" })];
        let out = run("dot", &[arr(&a, sa), arr(&b, sb)], &attrs);
        assert_eq!(out.shape().dims(), want_shape, "{sa:?} x {sb:?} ta={ta} tb={tb}");
        close(&values(&out), &reference_dot(&a, sa, &b, ta, tb));
    }
    let v = run("dot", &[arr(&[1.0, 2.0, 3.0], &[3]), arr(&[4.0, 5.0, 6.0], &[3])], &[]);
    assert_eq!((v.shape().dims(), values(&v)), (&[1][..], vec![32.0]));
}

#[test]
fn dot_dtypes_and_aliases() {
    let a: Vec<f64> = (0..6).map(|i| i as f64 * 0.5).collect();
    let x = NDArray::from_slice(&a, [2, 3]).unwrap();
    let out = run("_sparse_dot", &[x.clone(), x], &[("transpose_b", "True"), ("forward_stype", "default")]);
    assert_eq!((out.dtype(), values(&out)), (DType::F64, vec![1.25, 3.5, 3.5, 12.5]));
    let h: Vec<f16> = [1.0, 2.0, 3.0, 4.0].iter().map(|&v| f16::from_f32(v)).collect();
    let h = NDArray::from_slice(&h, [2, 2]).unwrap();
    let out = run("dot", &[h.clone(), h], &[]);
    assert_eq!((out.dtype(), values(&out)), (DType::F16, vec![7.0, 10.0, 15.0, 22.0]));
}

#[test]
fn dot_large_uses_both_cores_and_zero_size() {
    let (m, k, n) = (150, 200, 130);
    let (a, b) = (seq(m * k), seq(k * n));
    let out = run("dot", &[arr(&a, &[m, k]), arr(&b, &[k, n])], &[]);
    close(&values(&out), &reference_dot(&a, &[m, k], &b, false, false));
    // Contracting an empty axis gives zeros.
    let out = run("dot", &[arr(&[], &[2, 0]), arr(&[], &[0, 3])], &[]);
    assert_eq!((out.shape().dims(), values(&out)), (&[2, 3][..], vec![0.0; 6]));
    let out = run("batch_dot", &[arr(&[], &[2, 0, 4]), arr(&seq(24), &[2, 4, 3])], &[]);
    assert_eq!((out.shape().dims(), values(&out)), (&[2, 0, 3][..], vec![]));
}

#[test]
fn dot_errors_name_shapes_and_dtypes() {
    let x = arr(&seq(12), &[3, 4]);
    let y = arr(&seq(30), &[5, 6]);
    assert_err("dot", &[x.clone(), y], &[], &["(3, 4) X (5, 6)"]);
    let v = arr(&seq(4), &[4]);
    assert_err("dot", &[v.clone(), v.clone()], &[("transpose_a", "True")], &["transpose vectors"]);
    let s = NDArray::scalar(1.0f32).unwrap();
    assert_err("dot", &[s, v], &[], &["scalar"]);
    let i = NDArray::from_slice(&[1i32; 12], [3, 4]).unwrap();
    assert_err("dot", &[i.clone(), i.clone()], &[("transpose_b", "True")], &["int32"]);
    assert_err("dot", &[x.clone(), i], &[], &["float32", "int32"]);
    assert_err("dot", &[x.clone(), x.clone()], &[("forward_stype", "dense")], &["forward_stype"]);
    assert_err("dot", &[x.clone(), x], &[("transpose_c", "True")], &["unknown attribute"]);
}

// ---------------------------------------------------------------- batch_dot

#[test]
fn batch_dot_4d_and_transposes() {
    let (b0, b1, m, k, n) = (2, 3, 4, 5, 6);
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let sa = if ta { [b0, b1, k, m] } else { [b0, b1, m, k] };
        let sb = if tb { [b0, b1, n, k] } else { [b0, b1, k, n] };
        let (a, b) = (seq(b0 * b1 * m * k), seq(b0 * b1 * k * n + 1)[1..].to_vec());
        let attrs = [
            ("transpose_a", if ta { "True" } else { "False" }),
            ("transpose_b", if tb { "True" } else { "False" }),
        ];
        let out = run("_npx_batch_dot", &[arr(&a, &sa), arr(&b, &sb)], &attrs);
        assert_eq!(out.shape().dims(), [b0, b1, m, n]);
        let got = values(&out);
        for i in 0..b0 * b1 {
            let want = reference_dot(&a[i * m * k..][..m * k], &sa[2..], &b[i * k * n..][..k * n], ta, tb);
            close(&got[i * m * n..][..m * n], &want);
        }
    }
    // Many small products take the batch-parallel path.
    let (batch, m) = (300, 8);
    let a = seq(batch * m * m);
    let out =
        run("batch_dot", &[arr(&a, &[batch, m, m]), arr(&a, &[batch, m, m])], &[("transpose_b", "True")]);
    let got = values(&out);
    for i in (0..batch).step_by(37) {
        let blk = &a[i * m * m..][..m * m];
        close(&got[i * m * m..][..m * m], &reference_dot(blk, &[m, m], blk, false, true));
    }
}

#[test]
fn batch_dot_errors() {
    let x = arr(&seq(24), &[2, 3, 4]);
    assert_err(
        "batch_dot",
        &[x.clone(), arr(&seq(30), &[2, 5, 3])],
        &[],
        &["(2, 3, 4) X (2, 5, 3)", "mismatch"],
    );
    assert_err("batch_dot", &[x.clone(), arr(&seq(60), &[3, 4, 5])], &[], &["batch dimensions"]);
    assert_err("batch_dot", &[arr(&seq(12), &[3, 4]), arr(&seq(12), &[4, 3])], &[], &["N >= 3"]);
    assert_err("batch_dot", &[x.clone(), arr(&seq(20), &[4, 5])], &[], &["same rank"]);
}
