//! Contrib/internal operators the shared fixtures lack (index_copy, box_iou, box_nms,
//! boolean_mask, _histogram, _scatter_set_nd, IdentityAttachKLSparseReg) against goldens
//! from MXNet 1.9.1 itself (`tests/fixtures/generated/gen_misc_ops.py`): outputs, and input
//! gradients where MXNet has them; plus their error cases.

mod common;

use mixnet::imperative::invoke;
use mixnet::{DType, NDArray};

#[test]
fn misc_ops_match_mxnet() {
    common::cases::run("misc_ops");
}

fn arr(v: &[f32], shape: &[usize]) -> NDArray {
    NDArray::from_vec(v.to_vec(), shape.to_vec()).unwrap()
}

fn err(op: &str, inputs: &[NDArray], attrs: &[(&str, &str)]) -> String {
    invoke(op, inputs, attrs).map(|_| ()).unwrap_err().to_string()
}

#[test]
fn boolean_mask_reads_its_shape_from_the_mask() {
    let x = arr(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[3, 2]);
    let none = invoke("_contrib_boolean_mask", &[x.clone(), arr(&[0.0, 0.0, 0.0], &[3])], &[]).unwrap();
    assert_eq!(none[0].shape().dims(), [0, 2]);
    // The mask may come from queued work: the shape waits for its value.
    let m = invoke("_greater_scalar", &[arr(&[0.5, -1.0, 2.0], &[3])], &[("scalar", "0")]).unwrap().remove(0);
    let y = invoke("_npi_boolean_mask", &[x.clone(), m], &[]).unwrap().remove(0);
    assert_eq!(y.to_vec::<f32>().unwrap(), [1.0, 2.0, 5.0, 6.0]);
    let e = err("_contrib_boolean_mask", &[x.clone(), arr(&[1.0, 0.0], &[2])], &[]);
    assert!(e.contains("_contrib_boolean_mask") && e.contains("(2,)") && e.contains("(3, 2)"), "{e}");
    let e = err("_contrib_boolean_mask", &[x, arr(&[1.0, 0.0, 1.0], &[3])], &[("axis", "1")]);
    assert!(e.contains("axis=1"), "{e}");
}

#[test]
fn error_cases_name_the_op_and_shapes() {
    let m = arr(&[0.0; 12], &[3, 4]);
    let e = err("_contrib_index_copy", &[m.clone(), arr(&[0.0, 1.0], &[2]), arr(&[0.0; 4], &[1, 4])], &[]);
    assert!(e.contains("_contrib_index_copy") && e.contains("(1, 4)") && e.contains("(3, 4)"), "{e}");
    // Index values are checked by the kernel: the error surfaces when the result is read.
    let e = invoke("_contrib_index_copy", &[m.clone(), arr(&[3.0], &[1]), arr(&[0.0; 4], &[1, 4])], &[])
        .unwrap()
        .remove(0)
        .to_f64_vec()
        .unwrap_err()
        .to_string();
    assert!(e.contains("index 3 is out of range"), "{e}");
    let e = err("_contrib_box_iou", &[m.clone(), arr(&[0.0; 6], &[2, 3])], &[]);
    assert!(e.contains("_contrib_box_iou") && e.contains("(2, 3)"), "{e}");
    let e = err("_contrib_box_iou", &[m.clone(), m.clone()], &[("format", "xywh")]);
    assert!(e.contains("format"), "{e}");
    let d = arr(&[0.0; 12], &[2, 6]);
    let e = err("_contrib_box_nms", &[d.clone()], &[("score_index", "3")]);
    assert!(e.contains("_contrib_box_nms") && e.contains("score_index 3"), "{e}");
    let e = err("_contrib_box_non_maximum_suppression", &[m.clone()], &[("id_index", "0")]);
    assert!(e.contains("at least 6") && e.contains("(3, 4)"), "{e}");
    let i = NDArray::from_vec(vec![1i32; 12], [2, 6]).unwrap();
    let e = err("_contrib_box_nms", &[i], &[]);
    assert!(e.contains("floating point") && e.contains("int32"), "{e}");
    let e = err("_histogram", &[m.clone()], &[("bin_cnt", "3")]);
    assert!(e.contains("_histogram") && e.contains("both"), "{e}");
    let e = err("_histogram", &[m.clone()], &[("bin_cnt", "3"), ("range", "(2, 1)")]);
    assert!(e.contains("lower bound"), "{e}");
    let e = err("_histogram", &[m.clone(), arr(&[1.0], &[1])], &[]);
    assert!(e.contains("bins") && e.contains("(1,)"), "{e}");
    let e = err(
        "_scatter_set_nd",
        &[m.clone(), arr(&[1.0], &[1]), arr(&[0.0, 0.0], &[2, 1])],
        &[("shape", "(4, 3)")],
    );
    assert!(e.contains("_scatter_set_nd") && e.contains("(3, 4)"), "{e}");
    let e = invoke(
        "_scatter_set_nd",
        &[m.clone(), arr(&[1.0], &[1]), arr(&[5.0, 0.0], &[2, 1])],
        &[("shape", "(3, 4)")],
    )
    .unwrap()
    .remove(0)
    .to_f64_vec()
    .unwrap_err()
    .to_string();
    assert!(e.contains("out of bounds"), "{e}");
    let e = err("_NoGradient", &[], &[]);
    assert!(e.contains("_NoGradient") && e.contains("placeholder"), "{e}");
    let e = err("IdentityAttachKLSparseReg", &[m.clone(), arr(&[0.5; 3], &[3])], &[]);
    assert!(e.contains("IdentityAttachKLSparseReg") && e.contains("(3,)"), "{e}");
    let e = err("IdentityAttachKLSparseReg", &[m, arr(&[0.5; 4], &[4])], &[("momentum", "2")]);
    assert!(e.contains("momentum"), "{e}");
}

#[test]
fn scatter_set_nd_keeps_the_other_elements() {
    let lhs = arr(&[1.0; 4], &[2, 2]);
    let idx = NDArray::from_vec(vec![1i64, 1, 0, 0, 1, 0], [2, 3]).unwrap();
    let out = invoke("_scatter_set_nd", &[lhs, arr(&[2.0, 3.0, 0.0], &[3]), idx], &[("shape", "(2, 2)")])
        .unwrap()
        .remove(0);
    // MXNet's own docstring example.
    assert_eq!(out.to_vec::<f32>().unwrap(), [0.0, 1.0, 2.0, 3.0]);
    assert_eq!(out.dtype(), DType::F32);
}
