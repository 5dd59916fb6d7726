//! The last legacy operators of MXNet 1.9.1's list against goldens from MXNet itself
//! (`tests/fixtures/generated/gen_legacy_ops.py`): preloaded/multi/mp SGD and LAMB updates
//! (outputs and mutated states), the `_random_pdf_*` densities with their gradients,
//! Correlation, Convolution_v1, Pooling_v1 and BatchNorm_v1.

mod common;

#[test]
fn legacy_ops_match_mxnet() {
    common::cases::run("legacy_ops");
}

use mixnet::imperative::invoke;
use mixnet::{DType, NDArray};

fn arr(v: &[f32], shape: &[usize]) -> NDArray {
    NDArray::from_vec(v.to_vec(), shape.to_vec()).unwrap()
}

fn err(op: &str, inputs: &[NDArray], attrs: &[(&str, &str)]) -> String {
    invoke(op, inputs, attrs).map(|_| ()).unwrap_err().to_string()
}

#[test]
fn set_value_fills_its_input_in_place() {
    let x = NDArray::zeros([2, 3], DType::F64, Default::default()).unwrap();
    let before = x.version();
    assert!(invoke("_set_value", std::slice::from_ref(&x), &[("src", "2.5")]).unwrap().is_empty());
    assert_eq!(x.to_vec::<f64>().unwrap(), [2.5; 6]);
    assert!(x.version() > before);
    let i = NDArray::zeros([2], DType::I32, Default::default()).unwrap();
    invoke("_set_value", std::slice::from_ref(&i), &[("src", "-3.7")]).unwrap();
    assert_eq!(i.to_vec::<i32>().unwrap(), [-3, -3]);
    assert!(err("_set_value", &[x], &[]).contains("src"));
}

#[test]
fn errors_name_the_op_and_shapes() {
    let s = arr(&[0.5; 6], &[2, 3]);
    let e = err("_random_pdf_normal", &[s.clone(), arr(&[0.0; 3], &[3]), arr(&[1.0; 3], &[3])], &[]);
    assert!(e.contains("_random_pdf_normal") && e.contains("(3,)") && e.contains("(2, 3)"), "{e}");
    let e = err("_random_pdf_normal", &[s.clone(), arr(&[0.0; 2], &[2]), arr(&[1.0; 3], &[3])], &[]);
    assert!(e.contains("sigma"), "{e}");
    let e = err("_random_pdf_exponential", &[s.clone(), NDArray::from_vec(vec![1i32, 2], [2]).unwrap()], &[]);
    assert!(e.contains("lam") && e.contains("int32"), "{e}");
    let img = arr(&[0.0; 2 * 3 * 3], &[1, 2, 3, 3]);
    let e = err("Correlation", &[img.clone(), img.clone()], &[("max_displacement", "2")]);
    assert!(e.contains("Correlation") && e.contains("(1, 2, 3, 3)"), "{e}");
    let e = err("Correlation", &[img.clone(), arr(&[0.0; 18], &[1, 2, 9])], &[]);
    assert!(e.contains("data1") && e.contains("(1, 2, 9)"), "{e}");
    let e = err("Pooling_v1", &[img.clone()], &[("kernel", "(2, 2, 2)")]);
    assert!(e.contains("Pooling_v1") && e.contains("2-D"), "{e}");
    let e = err("Pooling_v1", &[img.clone()], &[("kernel", "(4, 4)")]);
    assert!(e.contains("exceeds") && e.contains("(1, 2, 3, 3)"), "{e}");
    let e = err("BatchNorm_v1", &[img.clone(), s.clone(), s.clone(), s.clone(), s], &[]);
    assert!(e.contains("BatchNorm_v1") && e.contains("gamma"), "{e}");
    let e = err("BatchNorm_v1", &[img.clone()], &[("axis", "1")]);
    assert!(e.contains("BatchNorm_v1"), "{e}");
    let w = arr(&[0.0; 4], &[4]);
    let e = err(
        "preloaded_multi_sgd_update",
        &[w.clone(), w.clone(), arr(&[0.1; 2], &[2]), arr(&[0.0], &[1])],
        &[],
    );
    assert!(e.contains("lrs") && e.contains("(2,)"), "{e}");
    let e = err(
        "_multi_lamb_update",
        &[w.clone(), w.clone(), w.clone(), w],
        &[("learning_rates", "(0.1,)"), ("wds", "(0.0,)"), ("step_count", "(1, 2)")],
    );
    assert!(e.contains("step_count has 2 values"), "{e}");
    let e = err("_sample_unique_zipfian", &[], &[("range_max", "10"), ("shape", "(3,)")]);
    assert!(e.contains("_sample_unique_zipfian") && e.contains("2-D"), "{e}");
}
