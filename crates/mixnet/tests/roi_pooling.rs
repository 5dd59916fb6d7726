//! `ROIPooling` against MXNet 1.9.1 (`tests/fixtures/generated/roi_pooling.params`, from
//! `gen_roi_pooling.py`): outputs and data gradients, including a box of a batch index
//! past the data (output 0) and boxes partly outside the image.

use std::collections::HashMap;
use std::path::PathBuf;

use mixnet::autograd;
use mixnet::imperative::invoke;
use mixnet::NDArray;

#[test]
fn matches_mxnet() {
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/generated/roi_pooling.params"
    ));
    let (arrays, names) = mixnet::ndarray::load(&path).unwrap();
    let g: HashMap<String, NDArray> = names.into_iter().zip(arrays).collect();
    for (case, pooled, scale) in [("scale1", "(2, 3)", "1.0"), ("scale_half", "(3, 2)", "0.5")] {
        let x = g[&format!("{case}/x")].copy().unwrap();
        x.attach_grad().unwrap();
        let rois = g[&format!("{case}/rois")].clone();
        let y = {
            let _rec = autograd::record(true);
            invoke("ROIPooling", &[x.clone(), rois], &[("pooled_size", pooled), ("spatial_scale", scale)])
                .unwrap()
                .remove(0)
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
    let x = NDArray::from_slice(&[0.0f32; 16], [1, 1, 4, 4]).unwrap();
    let rois = NDArray::from_slice(&[0.0f32; 4], [1, 4]).unwrap();
    let e = invoke("ROIPooling", &[x.clone(), rois], &[("pooled_size", "(2, 2)"), ("spatial_scale", "1")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("ROIPooling") && e.contains("(1, 4)"), "{e}");
    let rois = NDArray::from_slice(&[0.0f32; 5], [1, 5]).unwrap();
    assert!(invoke("ROIPooling", &[x, rois], &[("spatial_scale", "1")]).is_err());
}
