//! What the MXNet goldens leave out for reductions, broadcasting-to and `add_n`: attribute
//! edge cases, the error messages, dtypes other than float32, and arrays large enough to
//! take the parallel paths (checked against a plain f64 computation).

// `&[x.clone()]` reads better than `std::slice::from_ref(&x)` in a list of calls.
#![allow(clippy::cloned_ref_to_slice_refs)]

use mixnet::imperative::invoke;
use mixnet::{f16, Context, DType, NDArray};

fn arr(data: &[f32], shape: &[usize]) -> NDArray {
    NDArray::from_slice(data, shape).unwrap()
}

fn iota(shape: &[usize]) -> NDArray {
    let n: usize = shape.iter().product();
    arr(&(0..n).map(|v| v as f32).collect::<Vec<_>>(), shape)
}

fn run(op: &str, inputs: &[NDArray], attrs: &[(&str, &str)]) -> NDArray {
    invoke(op, inputs, attrs).unwrap_or_else(|e| panic!("{op} {attrs:?}: {e}")).remove(0)
}

fn vals(x: &NDArray) -> Vec<f64> {
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

#[test]
fn axis_forms() {
    let x = iota(&[2, 3, 4]);
    for axis in ["()", "None"] {
        let y = run("sum", &[x.clone()], &[("axis", axis)]);
        assert_eq!((y.shape().to_vec(), vals(&y)), (vec![1], vec![276.0]));
    }
    let y = run("sum", &[x.clone()], &[("keepdims", "True")]);
    assert_eq!(y.shape().dims(), &[1, 1, 1]);
    // exclude: reduce every axis but 1, keeping dims.
    let y = run("sum", &[x.clone()], &[("axis", "1"), ("exclude", "True"), ("keepdims", "True")]);
    assert_eq!((y.shape().to_vec(), vals(&y)), (vec![1, 3, 1], vec![60.0, 92.0, 124.0]));
    // exclude over all axes reduces nothing; an empty axis tuple still reduces all.
    let y = run("sum", &[x.clone()], &[("axis", "(0, 1, 2)"), ("exclude", "True")]);
    assert_eq!(vals(&y), vals(&x));
    let y = run("sum", &[x.clone()], &[("axis", "()"), ("exclude", "True")]);
    assert_eq!(vals(&y), vec![276.0]);
    // Negative and list axes, and the aliases.
    let a = run("sum_axis", &[x.clone()], &[("axis", "[-1, 0]")]);
    let b = run("sum", &[x.clone()], &[("axis", "(0, 2)")]);
    assert_eq!(vals(&a), vals(&b));
    let y = run("max_axis", &[x.clone()], &[("axis", "-2")]);
    assert_eq!(y.shape().dims(), &[2, 4]);
    let y = run("min_axis", &[x.clone()], &[("axis", "0")]);
    assert_eq!(vals(&y), (0..12).map(f64::from).collect::<Vec<_>>());
    // Reducing every axis without keepdims leaves shape (1,).
    let y = run("prod", &[arr(&[1.0, 2.0, 3.0, 4.0], &[2, 2])], &[("axis", "(0, 1)")]);
    assert_eq!((y.shape().to_vec(), vals(&y)), (vec![1], vec![24.0]));
}

#[test]
fn axis_errors_name_op_and_shape() {
    let x = iota(&[2, 3, 4]);
    let e = err("sum", &[x.clone()], &[("axis", "3")]);
    assert!(e.contains("'sum'") && e.contains("(2, 3, 4)") && e.contains('3'), "{e}");
    let e = err("mean", &[x.clone()], &[("axis", "(1, -2)")]);
    assert!(e.contains("'mean'") && e.contains("duplicates"), "{e}");
    let e = err("max", &[x.clone()], &[("axis", "-4")]);
    assert!(e.contains("'max'") && e.contains("-4"), "{e}");
    let e = err("sum", &[x.clone()], &[("axes", "1")]);
    assert!(e.contains("'sum'") && e.contains("axes"), "{e}");
    let e = err("sum", &[x.clone()], &[("keepdims", "maybe")]);
    assert!(e.contains("keepdims"), "{e}");
    // norm has no exclude.
    let e = err("norm", &[x], &[("exclude", "True")]);
    assert!(e.contains("'norm'") && e.contains("exclude"), "{e}");
}

#[test]
fn empty_inputs() {
    let x = NDArray::zeros([3, 0], DType::F32, Context::cpu(0)).unwrap();
    assert_eq!(vals(&run("sum", &[x.clone()], &[("axis", "1")])), vec![0.0; 3]);
    assert_eq!(vals(&run("prod", &[x.clone()], &[("axis", "1")])), vec![1.0; 3]);
    assert!(vals(&run("mean", &[x.clone()], &[("axis", "1")])).iter().all(|v| v.is_nan()));
    assert_eq!(vals(&run("norm", &[x.clone()], &[("axis", "1")])), vec![0.0; 3]);
    assert_eq!(run("add_n", &[x.clone(), x.clone()], &[("num_args", "2")]).shape().dims(), &[3, 0]);
    assert_eq!(run("broadcast_to", &[x.clone()], &[("shape", "(3, 0)")]).shape().dims(), &[3, 0]);
    let b = run("sum", &[x.clone()], &[("axis", "1"), ("keepdims", "True")]);
    assert_eq!(vals(&run("broadcast_axis", &[b], &[("axis", "1"), ("size", "2")])), vec![0.0; 6]);
    let e = err("max", &[x.clone()], &[("axis", "1")]);
    assert!(e.contains("'max'") && e.contains("(3, 0)"), "{e}");
    let e = err("argmax", &[x.clone()], &[("axis", "1")]);
    assert!(e.contains("'argmax'") && e.contains("(3, 0)"), "{e}");
    let e = err("argmin", &[x.clone()], &[]);
    assert!(e.contains("'argmin'") && e.contains("empty"), "{e}");
    // Searching along a non-empty axis of an empty array gives an empty result.
    let y = run("argmax", &[x], &[("axis", "0")]);
    assert_eq!(y.shape().dims(), &[0]);
}

#[test]
fn nan_semantics() {
    let n = f32::NAN;
    let x = arr(&[1.0, n, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    let y = vals(&run("max", &[x.clone()], &[("axis", "1")]));
    assert!(y[0].is_nan() && y[1] == 6.0);
    let y = vals(&run("min", &[x.clone()], &[("axis", "0")]));
    assert!(y[1].is_nan() && y[0] == 1.0 && y[2] == 3.0);
    assert_eq!(vals(&run("nansum", &[x.clone()], &[("axis", "1")])), vec![4.0, 15.0]);
    assert_eq!(vals(&run("nanprod", &[x.clone()], &[("axis", "1")])), vec![3.0, 120.0]);
    assert!(vals(&run("sum", &[x.clone()], &[]))[0].is_nan());
    // argmax points at the first NaN; ties go to the first occurrence.
    assert_eq!(vals(&run("argmax", &[x], &[("axis", "1")])), vec![1.0, 2.0]);
    let t = arr(&[2.0, 7.0, 7.0, 1.0, 1.0, 0.0], &[6]);
    assert_eq!(vals(&run("argmax", &[t.clone()], &[])), vec![1.0]);
    assert_eq!(vals(&run("argmin", &[t], &[])), vec![5.0]);
}

#[test]
fn integer_and_half_dtypes() {
    // Integer sums wrap in their own type, and mean divides the wrapped sum, as in MXNet.
    let x = NDArray::from_slice(&[100i8, 100, 100, -3], [4]).unwrap();
    let y = run("sum", &[x.clone()], &[]);
    assert_eq!((y.dtype(), y.to_vec::<i8>().unwrap()), (DType::I8, vec![41]));
    assert_eq!(run("mean", &[x.clone()], &[]).to_vec::<i8>().unwrap(), vec![10]);
    assert_eq!(run("max", &[x.clone()], &[]).to_vec::<i8>().unwrap(), vec![100]);
    assert_eq!(run("min", &[x.clone()], &[]).to_vec::<i8>().unwrap(), vec![-3]);
    let x = NDArray::from_slice(&[7i32, -2, 5, 9], [2, 2]).unwrap();
    assert_eq!(run("mean", &[x.clone()], &[("axis", "1")]).to_vec::<i32>().unwrap(), vec![2, 7]);
    assert_eq!(run("prod", &[x.clone()], &[("axis", "0")]).to_vec::<i32>().unwrap(), vec![35, -18]);
    assert_eq!(run("nansum", &[x.clone()], &[]).to_vec::<i32>().unwrap(), vec![19]);
    // argmax keeps the input dtype.
    let y = run("argmax", &[x.clone()], &[("axis", "0")]);
    assert_eq!((y.dtype(), y.to_vec::<i32>().unwrap()), (DType::I32, vec![0, 1]));
    let x = NDArray::from_slice(&[1i64 << 40, 1 << 40, 3], [3]).unwrap();
    assert_eq!(run("sum", &[x], &[]).to_vec::<i64>().unwrap(), vec![(1 << 41) + 3]);
    let x = NDArray::from_slice(&[200u8, 100, 7], [3]).unwrap();
    assert_eq!(run("sum", &[x.clone()], &[]).to_vec::<u8>().unwrap(), vec![51]);
    assert_eq!(run("argmin", &[x], &[]).to_vec::<u8>().unwrap(), vec![2]);
    // float16 accumulates in f32: 4096 ones sum exactly (f16 steps by 4 there).
    let ones = NDArray::from_slice(&vec![f16::from_f32(1.0); 4097], [4097]).unwrap();
    let y = run("sum", &[ones.clone()], &[]);
    assert_eq!((y.dtype(), vals(&y)), (DType::F16, vec![4096.0]));
    assert_eq!(vals(&run("mean", &[ones], &[])), vec![1.0]);
    let x = NDArray::from_slice(&[1.5f64, -2.25, 4.0], [3]).unwrap();
    assert_eq!(vals(&run("norm", &[x.clone()], &[("ord", "1")])), vec![7.75]);
    assert_eq!(run("argmax", &[x], &[]).dtype(), DType::F64);
}

#[test]
fn bool_reductions_are_logical() {
    let b = NDArray::from_bytes(&[1, 0, 0, 1, 1, 1], [2, 3], DType::Bool, Context::cpu(0)).unwrap();
    let any = run("sum", &[b.clone()], &[("axis", "1")]);
    assert_eq!((any.dtype(), any.to_vec::<u8>().unwrap()), (DType::Bool, vec![1, 1]));
    assert_eq!(run("prod", &[b.clone()], &[("axis", "1")]).to_vec::<u8>().unwrap(), vec![0, 1]);
    assert_eq!(run("min", &[b.clone()], &[("axis", "0")]).to_vec::<u8>().unwrap(), vec![1, 0, 0]);
    assert_eq!(run("mean", &[b.clone()], &[("axis", "0")]).to_vec::<u8>().unwrap(), vec![1, 1, 1]);
    let e = err("argmax", &[b.clone()], &[]);
    assert!(e.contains("'argmax'") && e.contains("bool"), "{e}");
    let y = run(
        "broadcast_to",
        &[run("sum", &[b], &[("axis", "1"), ("keepdims", "True")])],
        &[("shape", "(2, 2)")],
    );
    assert_eq!((y.dtype(), y.to_vec::<u8>().unwrap()), (DType::Bool, vec![1, 1, 1, 1]));
}

#[test]
fn argmax_shapes() {
    let x = iota(&[2, 3, 4]);
    assert_eq!(run("argmax", &[x.clone()], &[("keepdims", "True")]).shape().dims(), &[1, 1, 1]);
    assert_eq!(vals(&run("argmax", &[x.clone()], &[])), vec![23.0]);
    let y = run("argmin", &[x.clone()], &[("axis", "-1"), ("keepdims", "True")]);
    assert_eq!((y.shape().to_vec(), vals(&y)), (vec![2, 3, 1], vec![0.0; 6]));
    // On a vector the result keeps shape (1,), as MXNet's ReduceAxisShapeImpl.
    let v = arr(&[3.0, 9.0, 2.0], &[3]);
    let y = run("argmax", &[v.clone()], &[("axis", "0")]);
    assert_eq!((y.shape().to_vec(), vals(&y)), (vec![1], vec![1.0]));
    assert_eq!(run("argmax", &[v], &[("axis", "0"), ("keepdims", "True")]).shape().dims(), &[1]);
    let y = run("argmax_channel", &[x.clone()], &[]);
    assert_eq!((y.shape().to_vec(), vals(&y)), (vec![2, 4], vec![2.0; 8]));
    let e = err("argmax", &[x.clone()], &[("axis", "3")]);
    assert!(e.contains("'argmax'") && e.contains("(2, 3, 4)"), "{e}");
    let e = err("argmax", &[x], &[("axis", "(0, 1)")]);
    assert!(e.contains("axis"), "{e}");
}

#[test]
fn norm_options() {
    let x = arr(&[3.0, -4.0, 0.0, 12.0], &[2, 2]);
    assert_eq!(vals(&run("norm", &[x.clone()], &[])), vec![13.0]);
    assert_eq!(vals(&run("norm", &[x.clone()], &[("ord", "1"), ("axis", "0")])), vec![3.0, 16.0]);
    let y = run("norm", &[x.clone()], &[("axis", "1"), ("keepdims", "True"), ("out_dtype", "float64")]);
    assert_eq!((y.dtype(), y.shape().to_vec(), vals(&y)), (DType::F64, vec![2, 1], vec![5.0, 12.0]));
    let y = run("norm", &[x.clone()], &[("out_dtype", "int32")]);
    assert_eq!(y.to_vec::<i32>().unwrap(), vec![13]);
    let h = NDArray::from_slice(&[f16::from_f32(3.0), f16::from_f32(4.0)], [2]).unwrap();
    let y = run("norm", &[h], &[("out_dtype", "float32")]);
    assert_eq!((y.dtype(), vals(&y)), (DType::F32, vec![5.0]));
    let i = NDArray::from_slice(&[3i32, 4], [2]).unwrap();
    assert_eq!(run("norm", &[i], &[]).to_vec::<i32>().unwrap(), vec![5]);
    let e = err("norm", &[x.clone()], &[("ord", "3")]);
    assert!(e.contains("'norm'") && e.contains("ord"), "{e}");
    let e = err("norm", &[x], &[("out_dtype", "uint8")]);
    assert!(e.contains("out_dtype"), "{e}");
}

#[test]
fn broadcast_to_and_axis() {
    let x = arr(&[1.0, 2.0], &[2, 1]);
    let y = run("broadcast_to", &[x.clone()], &[("shape", "(0, 3)")]);
    assert_eq!((y.shape().to_vec(), vals(&y)), (vec![2, 3], vec![1.0, 1.0, 1.0, 2.0, 2.0, 2.0]));
    let y = run("broadcast_axes", &[x.clone()], &[("axis", "-1"), ("size", "2")]);
    assert_eq!((y.shape().to_vec(), vals(&y)), (vec![2, 2], vec![1.0, 1.0, 2.0, 2.0]));
    assert_eq!(vals(&run("broadcast_axis", &[x.clone()], &[])), vec![1.0, 2.0]);
    let e = err("broadcast_to", &[x.clone()], &[("shape", "(3, 3)")]);
    assert!(e.contains("'broadcast_to'") && e.contains("(2, 1)") && e.contains("[3, 3]"), "{e}");
    let e = err("broadcast_to", &[x.clone()], &[("shape", "(2, 1, 3)")]);
    assert!(e.contains("ranks differ"), "{e}");
    let e = err("broadcast_axis", &[x.clone()], &[("axis", "0"), ("size", "4")]);
    assert!(e.contains("'broadcast_axis'") && e.contains("size 1") && e.contains("(2, 1)"), "{e}");
    let e = err("broadcast_axis", &[x.clone()], &[("axis", "(1, 1)"), ("size", "(3, 3)")]);
    assert!(e.contains("size 1"), "{e}");
    let e = err("broadcast_axis", &[x.clone()], &[("axis", "(1,)"), ("size", "(3, 3)")]);
    assert!(e.contains("same length"), "{e}");
    let e = err("broadcast_axis", &[x], &[("axis", "2"), ("size", "3")]);
    assert!(e.contains("out of range"), "{e}");
    // Other dtypes, and broadcasting a dimension to 0.
    let i = NDArray::from_slice(&[5i64, 6], [1, 2]).unwrap();
    let y = run("broadcast_to", &[i.clone()], &[("shape", "(2, 2)")]);
    assert_eq!(y.to_vec::<i64>().unwrap(), vec![5, 6, 5, 6]);
    assert_eq!(run("broadcast_to", &[i], &[("shape", "(0, 2)")]).shape().dims(), &[1, 2]);
    let y = run("broadcast_axis", &[arr(&[1.0], &[1, 1])], &[("axis", "0"), ("size", "0")]);
    assert_eq!(y.shape().dims(), &[0, 1]);
}

#[test]
fn broadcast_like_forms() {
    let x = arr(&[1.0, 2.0], &[1, 2]);
    let like = NDArray::zeros([3, 2], DType::I32, Context::cpu(0)).unwrap();
    let y = run("broadcast_like", &[x.clone(), like.clone()], &[]);
    assert_eq!((y.dtype(), y.shape().to_vec()), (DType::F32, vec![3, 2]));
    // Only one of lhs_axes/rhs_axes given: the whole shape is used, as in MXNet.
    let y = run("broadcast_like", &[x.clone(), like.clone()], &[("lhs_axes", "(0,)")]);
    assert_eq!(y.shape().dims(), &[3, 2]);
    let other = NDArray::zeros([4, 5, 6], DType::F32, Context::cpu(0)).unwrap();
    let y =
        run("broadcast_like", &[x.clone(), other.clone()], &[("lhs_axes", "(-2,)"), ("rhs_axes", "(2,)")]);
    assert_eq!((y.shape().to_vec(), vals(&y).len()), (vec![6, 2], 12));
    let e = err("broadcast_like", &[x.clone(), other.clone()], &[]);
    assert!(e.contains("'broadcast_like'") && e.contains("(1, 2)") && e.contains("(4, 5, 6)"), "{e}");
    let e = err("broadcast_like", &[x.clone(), other.clone()], &[("lhs_axes", "(1,)"), ("rhs_axes", "(0,)")]);
    assert!(e.contains("not 1"), "{e}");
    let e = err("broadcast_like", &[x.clone(), other.clone()], &[("lhs_axes", "()"), ("rhs_axes", "()")]);
    assert!(e.contains("empty"), "{e}");
    let e = err("broadcast_like", &[x.clone(), other], &[("lhs_axes", "(0,)"), ("rhs_axes", "(0, 1)")]);
    assert!(e.contains("length"), "{e}");
    let e = err("broadcast_like", &[x], &[]);
    assert!(e.contains("lhs, rhs"), "{e}");
}

#[test]
fn add_n_forms() {
    let a = arr(&[1.0, 2.0], &[2]);
    let b = arr(&[10.0, 20.0], &[2]);
    let y = run("ElementWiseSum", &[a.clone(), b.clone()], &[("num_args", "2")]);
    assert_eq!(vals(&y), vec![11.0, 22.0]);
    assert_eq!(vals(&run("add_n", &[a.clone()], &[("num_args", "1")])), vec![1.0, 2.0]);
    let many = vec![a.clone(); 7];
    assert_eq!(vals(&run("add_n", &many, &[("num_args", "7")])), vec![7.0, 14.0]);
    let i = NDArray::from_slice(&[i32::MAX, 1], [2]).unwrap();
    assert_eq!(run("add_n", &[i.clone(), i], &[("num_args", "2")]).to_vec::<i32>().unwrap(), vec![-2, 2]);
    let e = err("add_n", &[a.clone(), b.clone()], &[]);
    assert!(e.contains("'add_n'") && e.contains("num_args"), "{e}");
    let e = err("add_n", &[a.clone(), b.clone()], &[("num_args", "3")]);
    assert!(e.contains("'add_n'") && e.contains("arg2"), "{e}");
    let e = err("add_n", &[], &[("num_args", "0")]);
    assert!(e.contains("num_args=0"), "{e}");
    let c = arr(&[1.0, 2.0, 3.0], &[3]);
    let e = err("add_n", &[a.clone(), b, c], &[("num_args", "3")]);
    assert!(e.contains("arg2") && e.contains("(3,)") && e.contains("(2,)"), "{e}");
    let d = NDArray::from_slice(&[1.0f64, 2.0], [2]).unwrap();
    let e = err("add_n", &[a, d], &[("num_args", "2")]);
    assert!(e.contains("float64") && e.contains("float32"), "{e}");
}

/// A deterministic pseudo-random array in [-1, 1).
fn noise(shape: &[usize], seed: u64) -> (NDArray, Vec<f32>) {
    let n: usize = shape.iter().product();
    let mut s = seed;
    let data: Vec<f32> = (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    (arr(&data, shape), data)
}

/// Reference reduction in f64 over `axes` of a row-major array.
fn naive(data: &[f32], shape: &[usize], axes: &[usize], f: fn(f64, f64) -> f64, init: f64) -> Vec<f64> {
    let kept: Vec<usize> = (0..shape.len()).filter(|a| !axes.contains(a)).collect();
    let out_n: usize = kept.iter().map(|&a| shape[a]).product();
    let mut out = vec![init; out_n];
    for (i, &v) in data.iter().enumerate() {
        let (mut rem, mut idx) = (i, vec![0; shape.len()]);
        for d in (0..shape.len()).rev() {
            idx[d] = rem % shape[d];
            rem /= shape[d];
        }
        let o = kept.iter().fold(0, |acc, &a| acc * shape[a] + idx[a]);
        out[o] = f(out[o], v as f64);
    }
    out
}

fn close(got: &[f64], want: &[f64], rtol: f64) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 1e-5 + rtol * w.abs(), "element {i}: got {g}, want {w}");
    }
}

#[test]
fn large_reductions_match_f64() {
    let shape = [24, 130, 70];
    let (x, data) = noise(&shape, 7);
    for axes in [vec![0], vec![1], vec![2], vec![0, 2], vec![1, 2], vec![0, 1], vec![0, 1, 2]] {
        let axis = format!("({})", axes.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", "));
        let got = vals(&run("sum", &[x.clone()], &[("axis", &axis)]));
        close(&got, &naive(&data, &shape, &axes, |a, v| a + v, 0.0), 1e-5);
        let got = vals(&run("max", &[x.clone()], &[("axis", &axis)]));
        close(&got, &naive(&data, &shape, &axes, f64::max, f64::NEG_INFINITY), 0.0);
        let got = vals(&run("norm", &[x.clone()], &[("axis", &axis)]));
        let want: Vec<f64> =
            naive(&data, &shape, &axes, |a, v| a + v * v, 0.0).into_iter().map(f64::sqrt).collect();
        close(&got, &want, 1e-5);
    }
    // A kept innermost axis wider than one strip, with few rows.
    let shape = [300, 2, 1000];
    let (x, data) = noise(&shape, 11);
    let got = vals(&run("mean", &[x.clone()], &[("axis", "0")]));
    let want: Vec<f64> = naive(&data, &shape, &[0], |a, v| a + v, 0.0).iter().map(|s| s / 300.0).collect();
    close(&got, &want, 1e-5);
    // Full reduction of a long vector splits into blocks over threads.
    let (x, data) = noise(&[1 << 20], 3);
    let want: f64 = data.iter().map(|&v| v as f64).sum();
    close(&vals(&run("sum", &[x], &[])), &[want], 1e-6);
}

#[test]
fn large_argmax_broadcast_add_n() {
    let shape = [40, 50, 60];
    let (x, data) = noise(&shape, 5);
    for axis in 0..3 {
        let got = vals(&run("argmax", &[x.clone()], &[("axis", &axis.to_string())]));
        let (outer, m, inner) = (
            shape[..axis].iter().product::<usize>(),
            shape[axis],
            shape[axis + 1..].iter().product::<usize>(),
        );
        let mut want = Vec::new();
        for o in 0..outer {
            for j in 0..inner {
                let at = |k: usize| data[(o * m + k) * inner + j];
                want.push((0..m).fold(0, |b, k| if at(k) > at(b) { k } else { b }) as f64);
            }
        }
        assert_eq!(got, want, "axis {axis}");
    }
    let (small, sdata) = noise(&[40, 1, 60], 9);
    let y = run("broadcast_to", &[small], &[("shape", "(40, 500, 60)")]);
    let got = vals(&y);
    for (i, g) in got.iter().enumerate() {
        assert_eq!(*g, sdata[(i / 30000) * 60 + i % 60] as f64);
    }
    let (a, ad) = noise(&[300_000], 1);
    let (b, bd) = noise(&[300_000], 2);
    let got = vals(&run("add_n", &[a.clone(), b.clone(), a], &[("num_args", "3")]));
    for i in 0..got.len() {
        assert_eq!(got[i], (ad[i] + (bd[i] + ad[i])) as f64);
    }
}
