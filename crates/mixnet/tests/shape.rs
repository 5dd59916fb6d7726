//! Shape and layout operators beyond the MXNet goldens: attribute edge cases, error
//! messages, other dtypes, and arrays large enough to take the parallel kernel paths
//! (checked against naive index arithmetic).

use mixnet::imperative::invoke;
use mixnet::{bf16, f16, DType, NDArray, NativeType};

fn iota(shape: &[usize]) -> NDArray {
    let n: usize = shape.iter().product();
    NDArray::from_vec((0..n).map(|i| i as f32).collect(), shape).unwrap()
}

fn iota_of<T: NativeType>(shape: &[usize]) -> NDArray {
    let n: usize = shape.iter().product();
    NDArray::from_vec((0..n).map(|i| T::from_f64((i % 100) as f64)).collect::<Vec<T>>(), shape).unwrap()
}

/// A single input, borrowed.
fn one_of(x: &NDArray) -> &[NDArray] {
    std::slice::from_ref(x)
}

fn one(op: &str, inputs: &[NDArray], attrs: &[(&str, &str)]) -> NDArray {
    let mut out = invoke(op, inputs, attrs).unwrap_or_else(|e| panic!("{op}: {e}"));
    assert_eq!(out.len(), 1);
    out.remove(0)
}

fn shape_of(op: &str, inputs: &[NDArray], attrs: &[(&str, &str)]) -> Vec<usize> {
    one(op, inputs, attrs).shape().to_vec()
}

fn vals(x: &NDArray) -> Vec<f64> {
    x.to_f64_vec().unwrap()
}

/// The error message, which must name the operator and contain each of `parts`.
fn err(op: &str, inputs: &[NDArray], attrs: &[(&str, &str)], parts: &[&str]) {
    let e = match invoke(op, inputs, attrs) {
        Ok(out) => panic!(
            "{op} {attrs:?} succeeded with shapes {:?}",
            out.iter().map(|o| o.shape().to_vec()).collect::<Vec<_>>()
        ),
        Err(e) => e.to_string(),
    };
    assert!(e.contains(&format!("'{}'", canonical(op))), "{e}");
    for p in parts {
        assert!(e.contains(p), "{e:?} lacks {p:?}");
    }
}

fn canonical(op: &str) -> &'static str {
    mixnet::op::registry().get(op).unwrap().name
}

/// Row-major multi-index of flat position `i` in `shape`.
fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = i % shape[d];
        i /= shape[d];
    }
    idx
}

fn ravel(idx: &[usize], shape: &[usize]) -> usize {
    idx.iter().zip(shape).fold(0, |acc, (&i, &d)| acc * d + i)
}

#[test]
fn reshape_codes_and_errors() {
    let x = iota(&[2, 3, 4]);
    assert_eq!(shape_of("reshape", one_of(&x), &[("shape", "(6, 1, -1)")]), [6, 1, 4]);
    assert_eq!(shape_of("Reshape", one_of(&x), &[("shape", "(3, -1, 8)")]), [3, 1, 8]);
    assert_eq!(shape_of("Reshape", one_of(&x), &[("shape", "(-2, 1, 1)")]), [2, 3, 4, 1, 1]);
    assert_eq!(shape_of("Reshape", one_of(&x), &[("shape", "(2, -4, -1, 3, -2)")]), [2, 1, 3, 4]);
    assert_eq!(shape_of("Reshape", &[iota(&[2, 3, 4, 5])], &[("shape", "(-3, -3)")]), [6, 20]);
    assert_eq!(shape_of("Reshape", &[iota(&[10, 5, 4])], &[("shape", "(-1, 0)")]), [40, 5]);
    // The deprecated target_shape: one 0 is inferred; keep_highest keeps dimension 0.
    assert_eq!(shape_of("Reshape", one_of(&x), &[("target_shape", "(0, 4)")]), [6, 4]);
    assert_eq!(
        shape_of("Reshape", one_of(&x), &[("target_shape", "(7, 0)"), ("keep_highest", "True")]),
        [2, 12]
    );
    // Values are copied in order, in every dtype.
    for x in [iota_of::<i64>(&[2, 3]), iota_of::<u8>(&[2, 3]), iota_of::<bf16>(&[2, 3])] {
        let y = one("Reshape", one_of(&x), &[("shape", "(3, 2)")]);
        assert_eq!((y.dtype(), vals(&y)), (x.dtype(), vals(&x)));
    }

    err("Reshape", one_of(&x), &[("shape", "(5, -1)")], &["(2, 3, 4)", "different size"]);
    err("Reshape", one_of(&x), &[("shape", "(-1, -1)")], &["only one dimension can be -1"]);
    err("Reshape", one_of(&x), &[("shape", "(0, 0, 0, 0)")], &["0 copies input dimension 3"]);
    err("Reshape", one_of(&x), &[("shape", "(2, 3, -3)")], &["-3 merges"]);
    err("Reshape", one_of(&x), &[("shape", "(-4, -1, -1, 3, 4)")], &["cannot both be -1"]);
    err("Reshape", one_of(&x), &[("shape", "(-4, 5, -1, 3, 4)")], &["do not make input dimension 2"]);
    err("Reshape", one_of(&x), &[("shape", "(2, -4, 1)")], &["-4 must be followed"]);
    err("Reshape", one_of(&x), &[("shape", "(-5, 24)")], &["-5 is not"]);
    err("Reshape", one_of(&x), &[], &["required attribute shape"]);
    err("Reshape", one_of(&x), &[("shape", "(24,)"), ("shap", "(1,)")], &["unknown attribute", "shap"]);
    err("Reshape", one_of(&x), &[("shape", "(3037000500, 3037000500, -1)")], &["too large"]);
    err("Reshape", &[x], &[("target_shape", "(0, 0)")], &["only one dimension can be 0"]);
}

#[test]
fn reshape_like_ranges() {
    let lhs = iota(&[30, 7]);
    let rhs = iota(&[15, 2, 4]);
    let attrs = [("lhs_begin", "0"), ("lhs_end", "1"), ("rhs_begin", "0"), ("rhs_end", "2")];
    assert_eq!(shape_of("reshape_like", &[lhs, rhs], &attrs), [15, 2, 7]);
    let attrs = [("lhs_begin", "-1"), ("lhs_end", "None"), ("rhs_begin", "1"), ("rhs_end", "None")];
    assert_eq!(shape_of("reshape_like", &[iota(&[30, 12]), iota(&[4, 2, 2, 3])], &attrs), [30, 2, 2, 3]);
    // rhs contributes only its shape; its dtype does not matter, the output has lhs's.
    let y = one("reshape_like", &[iota_of::<i32>(&[6]), iota_of::<u8>(&[3, 2])], &[]);
    assert_eq!((y.shape().to_vec(), y.dtype()), (vec![3, 2], DType::I32));
    err("reshape_like", &[iota(&[6]), iota(&[4])], &[], &["different size", "(6,)", "(4,)"]);
    err("reshape_like", &[iota(&[6]), iota(&[6])], &[("lhs_begin", "1"), ("lhs_end", "1")], &["lhs_begin=1"]);
    err("reshape_like", &[iota(&[6]), iota(&[6])], &[("rhs_end", "3")], &["rhs_end=3"]);
    let op = mixnet::imperative::create("reshape_like", &[]).unwrap();
    assert_eq!(op.input_names(), ["lhs", "rhs"]);
}

#[test]
fn flatten_expand_squeeze() {
    assert_eq!(shape_of("flatten", &[iota(&[5])], &[]), [5, 1]);
    assert_eq!(shape_of("Flatten", &[iota(&[2, 0, 3])], &[]), [2, 0]);
    err("Flatten", &[NDArray::scalar(1.0f32).unwrap()], &[], &["0-d"]);

    let x = iota(&[2, 3]);
    assert_eq!(shape_of("expand_dims", one_of(&x), &[("axis", "0")]), [1, 2, 3]);
    assert_eq!(shape_of("expand_dims", one_of(&x), &[("axis", "2")]), [2, 3, 1]);
    assert_eq!(shape_of("expand_dims", one_of(&x), &[("axis", "-3")]), [1, 2, 3]);
    err("expand_dims", one_of(&x), &[("axis", "3")], &["axis 3", "[-3, 2]"]);
    err("expand_dims", one_of(&x), &[("axis", "-4")], &["axis -4"]);
    err("expand_dims", &[x], &[], &["required attribute axis"]);

    let x = iota(&[1, 2, 1, 3, 1]);
    assert_eq!(shape_of("squeeze", one_of(&x), &[("axis", "(0, -1)")]), [2, 1, 3]);
    assert_eq!(shape_of("squeeze", one_of(&x), &[("axis", "()")]), [1, 2, 1, 3, 1]);
    assert_eq!(shape_of("squeeze", one_of(&x), &[("axis", "None")]), [2, 3]);
    assert_eq!(shape_of("squeeze", &[iota(&[1, 1])], &[]), [1]);
    err("squeeze", one_of(&x), &[("axis", "1")], &["cannot squeeze axis 1", "(1, 2, 1, 3, 1)"]);
    err("squeeze", one_of(&x), &[("axis", "(0, -5)")], &["duplicate"]);
    err("squeeze", &[x], &[("axis", "5")], &["axis 5 is out of bounds"]);
}

#[test]
fn transpose_and_swapaxis() {
    let x = iota(&[2, 3, 4]);
    let t = one("transpose", one_of(&x), &[("axes", "(-1, 0, 1)")]);
    assert_eq!(t.shape().to_vec(), [4, 2, 3]);
    let want: Vec<f64> = (0..24)
        .map(|i| {
            let o = unravel(i, &[4, 2, 3]);
            ravel(&[o[1], o[2], o[0]], &[2, 3, 4]) as f64
        })
        .collect();
    assert_eq!(vals(&t), want);
    // The default reverses the axes, in every dtype.
    for x in
        [iota_of::<f64>(&[2, 3]), iota_of::<f16>(&[2, 3]), iota_of::<i8>(&[2, 3]), iota_of::<i32>(&[2, 3])]
    {
        let t = one("transpose", one_of(&x), &[]);
        assert_eq!((t.shape().to_vec(), t.dtype()), (vec![3, 2], x.dtype()));
        assert_eq!(vals(&t), [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    }
    let b = NDArray::from_bytes(&[1, 0, 0, 1, 1, 0], [2, 3], DType::Bool, mixnet::cpu(0)).unwrap();
    assert_eq!(vals(&one("transpose", &[b], &[])), [1.0, 1.0, 0.0, 1.0, 0.0, 0.0]);
    err("transpose", one_of(&x), &[("axes", "(0, 1)")], &["do not match", "(2, 3, 4)"]);
    err("transpose", one_of(&x), &[("axes", "(0, 1, 1)")], &["repeat axis 1"]);
    err("transpose", one_of(&x), &[("axes", "(0, 1, 3)")], &["axis 3 is out of bounds"]);

    let s = one("swapaxes", one_of(&x), &[("dim1", "-1"), ("dim2", "1")]);
    assert_eq!(s.shape().to_vec(), [2, 4, 3]);
    assert_eq!(vals(&s), vals(&one("transpose", one_of(&x), &[("axes", "(0, 2, 1)")])));
    assert_eq!(vals(&one("SwapAxis", one_of(&x), &[("dim1", "1"), ("dim2", "1")])), vals(&x));
    err("SwapAxis", &[x], &[("dim1", "3")], &["axis 3 is out of bounds for array of dimension 3"]);
}

#[test]
fn large_transposes_match_index_arithmetic() {
    for (shape, axes) in [
        (vec![300, 517], vec![1, 0]),
        (vec![8, 33, 40, 17], vec![0, 2, 3, 1]),
        (vec![8, 17, 33, 40], vec![0, 3, 1, 2]),
        (vec![64, 70, 30], vec![2, 0, 1]),
    ] {
        let x = iota(&shape);
        let axes_s =
            format!("({})", axes.iter().map(|a: &usize| a.to_string()).collect::<Vec<_>>().join(", "));
        let t = one("transpose", &[x], &[("axes", &axes_s)]);
        let out_shape: Vec<usize> = axes.iter().map(|&a| shape[a]).collect();
        assert_eq!(t.shape().to_vec(), out_shape);
        let got = vals(&t);
        for (i, &g) in got.iter().enumerate() {
            let o = unravel(i, &out_shape);
            let mut src = vec![0; shape.len()];
            for (k, &a) in axes.iter().enumerate() {
                src[a] = o[k];
            }
            assert_eq!(g, ravel(&src, &shape) as f64, "{shape:?} {axes:?} at {i}");
        }
    }
}

#[test]
fn concat_and_stack() {
    let (a, b) = (iota(&[2, 1, 3]), iota(&[2, 2, 3]));
    let c = one("concat", &[a.clone(), b.clone()], &[("num_args", "2"), ("dim", "-2")]);
    assert_eq!(c.shape().to_vec(), [2, 3, 3]);
    assert_eq!(&vals(&c)[..9], [0.0, 1.0, 2.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    let one_arg = one("Concat", one_of(&a), &[("num_args", "1")]);
    assert_eq!(vals(&one_arg), vals(&a));
    let op = mixnet::imperative::create("Concat", &[("num_args", "1")]).unwrap();
    assert_eq!(op.input_names(), ["arg0"]);
    let attrs = [("num_args", "2"), ("dim", "0")];
    err("Concat", &[a.clone(), b.clone()], &attrs, &["input 1 has shape (2, 2, 3)", "(2, 1, 3)"]);
    err("Concat", &[a.clone(), iota_of::<f64>(&[2, 1, 3])], &[("num_args", "2")], &["float32", "float64"]);
    err("Concat", &[a.clone(), b.clone()], &[("dim", "1")], &["required attribute num_args"]);
    err("Concat", &[a.clone(), b.clone()], &[("num_args", "0")], &["num_args=0"]);
    err("Concat", &[a.clone(), b.clone()], &[("num_args", "3"), ("dim", "1")], &["expects 3 input(s)"]);
    err("Concat", &[a.clone(), iota(&[2, 1])], &[("num_args", "2")], &["input 1 has shape (2, 1)"]);

    let s = one("stack", &[a.clone(), a.clone()], &[("num_args", "2"), ("axis", "-1")]);
    assert_eq!(s.shape().to_vec(), [2, 1, 3, 2]);
    assert_eq!(&vals(&s)[..6], [0.0, 0.0, 1.0, 1.0, 2.0, 2.0]);
    err("stack", &[a.clone(), b], &[("num_args", "2")], &["same shape", "(2, 2, 3)"]);
    err("stack", &[a.clone(), a], &[("num_args", "2"), ("axis", "4")], &["axis 4"]);

    // Large enough for the parallel path, in a 2-byte dtype.
    let (p, q) = (iota_of::<f16>(&[300, 200]), iota_of::<f16>(&[300, 57]));
    let c = one("Concat", &[p.clone(), q.clone()], &[("num_args", "2")]);
    let (pv, qv, cv) = (vals(&p), vals(&q), vals(&c));
    for r in 0..300 {
        assert_eq!(cv[r * 257..r * 257 + 200], pv[r * 200..(r + 1) * 200]);
        assert_eq!(cv[r * 257 + 200..(r + 1) * 257], qv[r * 57..(r + 1) * 57]);
    }
}

#[test]
fn split_ops() {
    let x = iota(&[2, 6, 2]);
    let parts = invoke("split", one_of(&x), &[("num_outputs", "3"), ("axis", "-2")]).unwrap();
    assert_eq!(parts.len(), 3);
    assert_eq!(vals(&parts[1]), [4.0, 5.0, 6.0, 7.0, 16.0, 17.0, 18.0, 19.0]);
    let parts =
        invoke("SliceChannel", one_of(&x), &[("num_outputs", "2"), ("axis", "0"), ("squeeze_axis", "1")])
            .unwrap();
    assert_eq!(parts[1].shape().to_vec(), [6, 2]);
    err(
        "SliceChannel",
        one_of(&x),
        &[("num_outputs", "4")],
        &["cannot split axis 1 of shape (2, 6, 2) into 4"],
    );
    err("SliceChannel", one_of(&x), &[("num_outputs", "3"), ("squeeze_axis", "True")], &["squeeze_axis"]);
    err("SliceChannel", one_of(&x), &[("num_outputs", "1"), ("axis", "-4")], &["axis -4"]);
    err("SliceChannel", one_of(&x), &[], &["required attribute num_outputs"]);

    // _split_v2 with sections is numpy's array_split: leading parts are one longer.
    let y = iota(&[7, 2]);
    let parts =
        invoke("_split_v2", one_of(&y), &[("indices", "()"), ("sections", "3"), ("axis", "0")]).unwrap();
    let shapes: Vec<Vec<usize>> = parts.iter().map(|p| p.shape().to_vec()).collect();
    assert_eq!(shapes, [[3, 2], [2, 2], [2, 2]]);
    assert_eq!(vals(&parts[2]), [10.0, 11.0, 12.0, 13.0]);
    // Elements before the first index are dropped, as in MXNet.
    let parts = invoke("_split_v2", one_of(&y), &[("indices", "(2, 5)"), ("axis", "0")]).unwrap();
    assert_eq!(vals(&parts[0]), [4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
    assert_eq!(parts[1].shape().to_vec(), [2, 2]);
    let parts =
        invoke("_split_v2", one_of(&y), &[("indices", "(0, 1)"), ("axis", "1"), ("squeeze_axis", "True")])
            .unwrap();
    assert_eq!((parts[1].shape().to_vec(), vals(&parts[1])[..2].to_vec()), (vec![7], vec![1.0, 3.0]));
    err("_split_v2", one_of(&y), &[("indices", "(0, 5, 3)"), ("axis", "0")], &["[0, 5, 3]", "in order"]);
    err("_split_v2", one_of(&y), &[("indices", "(0, 9)"), ("axis", "0")], &["(7, 2)"]);
    err("_split_v2", one_of(&y), &[("sections", "2")], &["required attribute indices"]);
    err("_split_v2", one_of(&y), &[("indices", "()")], &["indices or sections"]);
    err("_split_v2", &[y], &[("indices", "(0, 3)"), ("axis", "0"), ("squeeze_axis", "1")], &["length 1"]);
}

#[test]
fn tile_repeat_reverse() {
    let x = iota(&[2, 3]);
    assert_eq!(shape_of("tile", one_of(&x), &[("reps", "(2,)")]), [2, 6]);
    assert_eq!(vals(&one("tile", one_of(&x), &[("reps", "()")])), vals(&x));
    let t = one("tile", &[iota(&[2])], &[("reps", "(2, 2)")]);
    assert_eq!((t.shape().to_vec(), vals(&t)), (vec![2, 4], vec![0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0]));
    assert_eq!(shape_of("tile", one_of(&x), &[("reps", "(0, 2)")]), [0, 6]);
    err("tile", one_of(&x), &[("reps", "(-1, 2)")], &["non-negative"]);
    err("tile", one_of(&x), &[], &["required attribute reps"]);

    let r = one("repeat", one_of(&x), &[("repeats", "2"), ("axis", "-2")]);
    assert_eq!(
        (r.shape().to_vec(), vals(&r)[..6].to_vec()),
        (vec![4, 3], vec![0.0, 1.0, 2.0, 0.0, 1.0, 2.0])
    );
    // Zero repeats give an empty 1-d array whatever the axis, as in MXNet.
    assert_eq!(shape_of("repeat", one_of(&x), &[("repeats", "0"), ("axis", "1")]), [0]);
    err("repeat", one_of(&x), &[("repeats", "0"), ("axis", "2")], &["axis 2"]);
    err("repeat", one_of(&x), &[("repeats", "-1")], &["repeats=-1"]);
    let r = one("repeat", &[iota_of::<i64>(&[2])], &[("repeats", "3")]);
    assert_eq!((r.dtype(), vals(&r)), (DType::I64, vec![0.0, 0.0, 0.0, 1.0, 1.0, 1.0]));

    assert_eq!(vals(&one("flip", one_of(&x), &[("axis", "-1")])), [2.0, 1.0, 0.0, 5.0, 4.0, 3.0]);
    // An axis listed twice flips back.
    assert_eq!(vals(&one("reverse", one_of(&x), &[("axis", "(1, 1, 0)")])), [3.0, 4.0, 5.0, 0.0, 1.0, 2.0]);
    assert_eq!(vals(&one("reverse", one_of(&x), &[("axis", "()")])), vals(&x));
    err("reverse", one_of(&x), &[("axis", "2")], &["axis 2 is out of bounds"]);
    err("reverse", &[x], &[], &["required attribute axis"]);

    // Large arrays against index arithmetic.
    let (shape, out_shape) = ([40, 3, 700], [80, 3, 2100]);
    let t = vals(&one("tile", &[iota(&shape)], &[("reps", "(2, 1, 3)")]));
    for (i, &g) in t.iter().enumerate() {
        let o = unravel(i, &out_shape);
        assert_eq!(g, ravel(&[o[0] % 40, o[1], o[2] % 700], &shape) as f64);
    }
    let r = vals(&one("repeat", &[iota(&shape)], &[("repeats", "3"), ("axis", "2")]));
    for (i, &g) in r.iter().enumerate() {
        let o = unravel(i, &[40, 3, 2100]);
        assert_eq!(g, ravel(&[o[0], o[1], o[2] / 3], &shape) as f64);
    }
    let f = vals(&one("reverse", &[iota(&shape)], &[("axis", "(0, 2)")]));
    for (i, &g) in f.iter().enumerate() {
        let o = unravel(i, &shape);
        assert_eq!(g, ravel(&[39 - o[0], o[1], 699 - o[2]], &shape) as f64);
    }
}

#[test]
fn depth_space_round_trip() {
    for x in [iota_of::<f32>(&[2, 36, 5, 7]), iota_of::<f16>(&[1, 9, 2, 2]), iota_of::<u8>(&[3, 8, 60, 60])] {
        let c = x.shape()[1];
        let b = if c % 9 == 0 { "3" } else { "2" };
        let d = one("depth_to_space", one_of(&x), &[("block_size", b)]);
        let back = one("space_to_depth", one_of(&d), &[("block_size", b)]);
        assert_eq!((back.shape(), back.dtype()), (x.shape(), x.dtype()));
        assert_eq!(vals(&back), vals(&x));
    }
    // MXNet's documented example.
    let x = iota(&[1, 4, 2, 3]);
    let d = one("depth_to_space", one_of(&x), &[("block_size", "2")]);
    assert_eq!(&vals(&d)[..6], [0.0, 6.0, 1.0, 7.0, 2.0, 8.0]);
    err("depth_to_space", one_of(&x), &[("block_size", "3")], &["multiple of block_size^2 = 9"]);
    err("space_to_depth", one_of(&x), &[("block_size", "2")], &["not multiples of block_size 2"]);
    err("space_to_depth", one_of(&x), &[("block_size", "0")], &["positive"]);
    err("depth_to_space", &[iota(&[4, 2, 3])], &[("block_size", "1")], &["4-D", "(4, 2, 3)"]);
    err("depth_to_space", &[x], &[], &["required attribute block_size"]);
}

#[test]
fn pad_modes_and_limits() {
    let x = iota(&[1, 1, 2, 3]);
    let attrs = |mode: &'static str| {
        [("mode", mode), ("pad_width", "(0, 0, 0, 0, 1, 1, 2, 2)"), ("constant_value", "-1")]
    };
    let c = one("pad", one_of(&x), &attrs("constant"));
    assert_eq!(c.shape().to_vec(), [1, 1, 4, 7]);
    assert_eq!(&vals(&c)[7..14], [-1.0, -1.0, 0.0, 1.0, 2.0, -1.0, -1.0]);
    let e = one("Pad", one_of(&x), &attrs("edge"));
    assert_eq!(&vals(&e)[..7], [0.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0]);
    let r = one("Pad", one_of(&x), &attrs("reflect"));
    assert_eq!(&vals(&r)[..7], [5.0, 4.0, 3.0, 4.0, 5.0, 4.0, 3.0]);
    for x in [iota_of::<f64>(&[1, 1, 2, 3]), iota_of::<f16>(&[1, 1, 2, 3])] {
        let c = one("Pad", one_of(&x), &attrs("constant"));
        assert_eq!((c.dtype(), vals(&c)[..3].to_vec()), (x.dtype(), vec![-1.0; 3]));
    }
    err("Pad", &[iota_of::<i32>(&[1, 1, 2, 3])], &attrs("edge"), &["int32", "floating-point"]);
    err(
        "Pad",
        &[iota(&[1, 2, 3])],
        &[("mode", "edge"), ("pad_width", "(0, 0, 0, 0, 1, 1)")],
        &["4-D and 5-D"],
    );
    err(
        "Pad",
        one_of(&x),
        &[("mode", "edge"), ("pad_width", "(0, 1, 0, 0, 1, 1, 1, 1)")],
        &["first two axes"],
    );
    err("Pad", one_of(&x), &[("mode", "edge"), ("pad_width", "(0, 0, 1, 1)")], &["2 pairs", "(1, 1, 2, 3)"]);
    err("Pad", one_of(&x), &[("mode", "reflect"), ("pad_width", "(0, 0, 0, 0, 2, 0, 0, 0)")], &["axis 2"]);
    err("Pad", one_of(&x), &[("mode", "wrap"), ("pad_width", "(0, 0, 0, 0, 1, 1, 1, 1)")], &["mode='wrap'"]);
    err("Pad", one_of(&x), &[("pad_width", "(0, 0, 0, 0, 1, 1, 1, 1)")], &["required attribute mode"]);
    err("Pad", &[x], &[("mode", "edge")], &["required attribute pad_width"]);

    // 5-D and large enough for the parallel path, against index arithmetic.
    let shape = [2, 3, 10, 40, 50];
    let (before, after) = ([0, 0, 2, 3, 4], [0, 0, 1, 5, 6]);
    let out_shape: Vec<usize> = (0..5).map(|d| shape[d] + before[d] + after[d]).collect();
    let pw = "(0, 0, 0, 0, 2, 1, 3, 5, 4, 6)";
    for mode in ["constant", "edge", "reflect"] {
        let got = vals(&one(
            "Pad",
            &[iota(&shape)],
            &[("mode", mode), ("pad_width", pw), ("constant_value", "0.5")],
        ));
        for (i, &g) in got.iter().enumerate() {
            let o = unravel(i, &out_shape);
            let mut src = vec![0; 5];
            let mut fill = false;
            for d in 0..5 {
                let (j, n) = (o[d] as i64 - before[d] as i64, shape[d] as i64);
                src[d] = match mode {
                    "edge" => j.clamp(0, n - 1),
                    "reflect" if j < 0 => -j,
                    "reflect" if j >= n => 2 * (n - 1) - j,
                    _ => {
                        fill |= j < 0 || j >= n;
                        j.clamp(0, n - 1)
                    }
                } as usize;
            }
            let want = if fill { 0.5 } else { ravel(&src, &shape) as f64 };
            assert_eq!(g, want, "{mode} at {o:?}");
        }
    }
}
