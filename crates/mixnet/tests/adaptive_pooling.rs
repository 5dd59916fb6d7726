//! `_contrib_AdaptiveAvgPooling2D` against MXNet 1.9.1 (`tests/fixtures/generated/
//! adaptive_pool.params`, from `gen_adaptive_pool.py`): outputs and input gradients.

use std::collections::HashMap;
use std::path::PathBuf;

use mixnet::autograd;
use mixnet::imperative::invoke;
use mixnet::NDArray;

#[test]
fn matches_mxnet_forward_and_backward() {
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/generated/adaptive_pool.params"
    ));
    let (arrays, names) = mixnet::ndarray::load(&path).unwrap();
    let g: HashMap<String, NDArray> = names.into_iter().zip(arrays).collect();
    for (case, size) in
        [("square", Some("3")), ("rect", Some("(2, 3)")), ("global", None), ("up", Some("(5, 4)"))]
    {
        let x = g[&format!("{case}/x")].copy().unwrap();
        x.attach_grad().unwrap();
        let attrs: Vec<(&str, &str)> = size.map(|s| vec![("output_size", s)]).unwrap_or_default();
        let y = {
            let _rec = autograd::record(true);
            invoke("_contrib_AdaptiveAvgPooling2D", std::slice::from_ref(&x), &attrs).unwrap().remove(0)
        };
        autograd::backward(&[y.clone()], &[g[&format!("{case}/r")].clone()]).unwrap();
        for (got, want) in [(y, &g[&format!("{case}/out")]), (x.grad().unwrap(), &g[&format!("{case}/grad")])]
        {
            assert_eq!(got.shape(), want.shape(), "{case}");
            for (a, b) in got.to_f64_vec().unwrap().iter().zip(want.to_f64_vec().unwrap()) {
                assert!((a - b).abs() <= 1e-6 * (1.0 + b.abs()), "{case}: {a} vs MXNet {b}");
            }
        }
    }
}

#[test]
fn bad_inputs_are_errors() {
    let x = NDArray::from_slice(&[0.0f32; 6], [2, 3]).unwrap();
    let e = invoke("_contrib_AdaptiveAvgPooling2D", &[x], &[]).unwrap_err().to_string();
    assert!(e.contains("AdaptiveAvgPooling2D") && e.contains("(2, 3)"), "{e}");
    let x = NDArray::from_slice(&[0.0f32; 4], [1, 1, 2, 2]).unwrap();
    assert!(invoke("_contrib_AdaptiveAvgPooling2D", &[x.clone()], &[("output_size", "(1, 2, 3)")]).is_err());
    assert!(invoke("_contrib_AdaptiveAvgPooling2D", &[x], &[("output_size", "0")]).is_err());
}
