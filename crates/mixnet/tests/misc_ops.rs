//! Smaller legacy operators against values computed by hand: moments, _square_sum,
//! amp_cast's dtype rules, copies.

use mixnet::imperative::invoke;
use mixnet::{DType, NDArray};

fn arr(v: &[f32], shape: &[usize]) -> NDArray {
    NDArray::from_vec(v.to_vec(), shape.to_vec()).unwrap()
}

#[test]
fn moments_and_square_sum() {
    let x = arr(&[1.0, 2.0, 3.0, 4.0, 5.0, 9.0], &[2, 3]);
    let r = invoke("moments", &[x.clone()], &[("axes", "(1,)")]).unwrap();
    assert_eq!(r[0].to_vec::<f32>().unwrap(), [2.0, 6.0]);
    let v = r[1].to_vec::<f32>().unwrap();
    assert!((v[0] - 2.0 / 3.0).abs() < 1e-6 && (v[1] - 14.0 / 3.0).abs() < 1e-5, "{v:?}");
    let r = invoke("moments", &[x.clone()], &[("keepdims", "True")]).unwrap();
    assert_eq!(r[0].shape().dims(), [1, 1]);
    let s = invoke("_square_sum", &[x.clone()], &[("axis", "0")]).unwrap().remove(0);
    assert_eq!(s.to_vec::<f32>().unwrap(), [17.0, 29.0, 90.0]);
    // exclude: reduce every axis but 0.
    let s = invoke("_square_sum", &[x.clone()], &[("axis", "0"), ("exclude", "True"), ("keepdims", "True")])
        .unwrap()
        .remove(0);
    assert_eq!(s.shape().dims(), [2, 1]);
    assert_eq!(s.to_vec::<f32>().unwrap(), [14.0, 122.0]);
    let e = invoke("moments", &[x], &[("axes", "(2,)")]).unwrap_err().to_string();
    assert!(e.contains("moments") && e.contains("axis 2"), "{e}");
}

#[test]
fn amp_cast_casts_only_floats() {
    let x = arr(&[1.5, -2.0], &[2]);
    let h = invoke("amp_cast", &[x], &[("dtype", "float16")]).unwrap().remove(0);
    assert_eq!(h.dtype(), DType::F16);
    let i = NDArray::from_vec(vec![3i32, 4], [2]).unwrap();
    let same = invoke("amp_cast", &[i], &[("dtype", "float16")]).unwrap().remove(0);
    assert_eq!(same.dtype(), DType::I32, "integer inputs pass through amp_cast");
    let c = invoke("_copyto", &[h.clone()], &[]).unwrap().remove(0);
    assert_eq!(c.to_f64_vec().unwrap(), [1.5, -2.0]);
}

#[test]
fn ravel_and_unravel_round_trip() {
    let coords = arr(&[1.0, 2.0, 0.0, 3.0, 1.0, 2.0], &[2, 3]);
    let flat = invoke("ravel_multi_index", &[coords.clone()], &[("shape", "(4, 5)")]).unwrap().remove(0);
    assert_eq!(flat.to_vec::<f32>().unwrap(), [8.0, 11.0, 2.0]);
    let back = invoke("unravel_index", &[flat], &[("shape", "(4, 5)")]).unwrap().remove(0);
    assert_eq!(back.to_vec::<f32>().unwrap(), coords.to_vec::<f32>().unwrap());
    let e = invoke("ravel_multi_index", &[coords], &[("shape", "(4, 5, 6)")]).unwrap_err().to_string();
    assert!(e.contains("_ravel_multi_index") && e.contains("(3, N)"), "{e}");
}

#[test]
fn khatri_rao_matches_mxnet_doc_example() {
    let a = arr(&[1.0, -1.0, 2.0, -3.0], &[2, 2]);
    let b = arr(&[1.0, 4.0, 2.0, 5.0, 3.0, 6.0], &[3, 2]);
    let c = invoke("khatri_rao", &[a, b], &[("num_args", "2")]).unwrap().remove(0);
    assert_eq!(c.shape().dims(), [6, 2]);
    assert_eq!(
        c.to_vec::<f32>().unwrap(),
        [1.0, -4.0, 2.0, -5.0, 3.0, -6.0, 2.0, -12.0, 4.0, -15.0, 6.0, -18.0]
    );
}

#[test]
fn contrib_helpers() {
    let x = arr(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    let y = invoke("_contrib_div_sqrt_dim", &[x.clone()], &[]).unwrap().remove(0).to_vec::<f32>().unwrap();
    assert!((y[2] - 3.0 / 3f32.sqrt()).abs() < 1e-6);
    let r = invoke("_contrib_arange_like", &[x.clone()], &[("start", "1"), ("step", "2"), ("repeat", "2")])
        .unwrap()
        .remove(0);
    assert_eq!(r.to_vec::<f32>().unwrap(), [1.0, 1.0, 3.0, 3.0, 5.0, 5.0]);
    let r = invoke("_contrib_arange_like", &[x.clone()], &[("axis", "-1")]).unwrap().remove(0);
    assert_eq!(r.to_vec::<f32>().unwrap(), [0.0, 1.0, 2.0]);
    let i = invoke("_contrib_index_array", &[x.clone()], &[("axes", "(1,)")]).unwrap().remove(0);
    assert_eq!(i.dtype(), DType::I64);
    assert_eq!(i.to_vec::<i64>().unwrap(), [0, 1, 2, 0, 1, 2]);
    let a = arr(&[1.0, 2.0], &[2]);
    let b = arr(&[3.0], &[1]);
    let out = invoke("reset_arrays", &[a.clone(), b.clone()], &[("num_arrays", "2")]).unwrap();
    assert!(out.is_empty());
    assert_eq!(a.to_vec::<f32>().unwrap(), [0.0, 0.0]);
    assert_eq!(b.to_vec::<f32>().unwrap(), [0.0]);
}

#[test]
fn im2col_blocks_and_col2im_sums_them_back() {
    let x = arr(&(1..=9).map(|v| v as f32).collect::<Vec<_>>(), &[1, 1, 3, 3]);
    let cols = invoke("im2col", &[x], &[("kernel", "(2, 2)")]).unwrap().remove(0);
    assert_eq!(cols.shape().dims(), [1, 4, 4]);
    // Row k holds kernel offset k of every block (blocks in row-major order).
    assert_eq!(
        cols.to_vec::<f32>().unwrap(),
        [1.0, 2.0, 4.0, 5.0, 2.0, 3.0, 5.0, 6.0, 4.0, 5.0, 7.0, 8.0, 5.0, 6.0, 8.0, 9.0]
    );
    let back =
        invoke("col2im", &[cols], &[("kernel", "(2, 2)"), ("output_size", "(3, 3)")]).unwrap().remove(0);
    // Each pixel summed once per block that covers it.
    assert_eq!(back.to_vec::<f32>().unwrap(), [1.0, 4.0, 3.0, 8.0, 20.0, 12.0, 7.0, 16.0, 9.0]);
}

#[test]
fn amp_multicast_widest_and_narrowest() {
    let h = arr(&[1.0, 2.0], &[2]).astype(DType::F16).unwrap();
    let f = arr(&[3.0], &[1]);
    let i = NDArray::from_vec(vec![7i32], [1]).unwrap();
    let wide = invoke("amp_multicast", &[h.clone(), f.clone(), i.clone()], &[("num_outputs", "3")]).unwrap();
    assert_eq!([wide[0].dtype(), wide[1].dtype(), wide[2].dtype()], [DType::F32, DType::F32, DType::I32]);
    let narrow =
        invoke("amp_multicast", &[h, f, i], &[("num_outputs", "3"), ("cast_narrow", "True")]).unwrap();
    assert_eq!(
        [narrow[0].dtype(), narrow[1].dtype(), narrow[2].dtype()],
        [DType::F16, DType::F16, DType::I32]
    );
    assert_eq!(narrow[1].to_f64_vec().unwrap(), [3.0]);
}

#[test]
fn legacy_ndarray_functions() {
    let idx = arr(&[2.0, 0.0], &[2]);
    let like = arr(&[9.0; 6], &[2, 3]);
    let oh = invoke("_onehot_encode", &[idx.clone(), like.clone()], &[]).unwrap().remove(0);
    assert_eq!(oh.to_vec::<f32>().unwrap(), [0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
    let vals = arr(&[5.0, 6.0], &[2]);
    let f = invoke("fill_element_0index", &[like, vals, idx], &[]).unwrap().remove(0);
    assert_eq!(f.to_vec::<f32>().unwrap(), [9.0, 9.0, 5.0, 6.0, 9.0, 9.0]);
    let bad =
        invoke("_onehot_encode", &[arr(&[3.0, 0.0], &[2]), arr(&[0.0; 6], &[2, 3])], &[]).unwrap().remove(0);
    let e = bad.wait_to_read().unwrap_err().to_string();
    assert!(e.contains("_onehot_encode") && e.contains("index 3"), "{e}");
}
