//! `_contrib_ROIAlign` against MXNet 1.9.1 (`tests/fixtures/generated/roi_align.params`,
//! from `gen_roi_align.py`): adaptive and fixed sampling, scaled, aligned and
//! position-sensitive forms, boxes partly outside the image; outputs and data gradients.

use std::collections::HashMap;
use std::path::PathBuf;

use mixnet::autograd;
use mixnet::imperative::invoke;
use mixnet::NDArray;

type Case = (&'static str, &'static [(&'static str, &'static str)]);

#[test]
fn matches_mxnet() {
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/generated/roi_align.params"
    ));
    let (arrays, names) = mixnet::ndarray::load(&path).unwrap();
    let g: HashMap<String, NDArray> = names.into_iter().zip(arrays).collect();
    let cases: [Case; 4] = [
        ("adaptive", &[("pooled_size", "(2, 3)"), ("spatial_scale", "1.0")]),
        ("ratio2_scaled", &[("pooled_size", "(3, 2)"), ("spatial_scale", "0.5"), ("sample_ratio", "2")]),
        ("aligned", &[("pooled_size", "(2, 2)"), ("spatial_scale", "1.0"), ("aligned", "True")]),
        (
            "position_sensitive",
            &[("pooled_size", "(2, 2)"), ("spatial_scale", "1.0"), ("position_sensitive", "True")],
        ),
    ];
    for (case, attrs) in cases {
        let x = g[&format!("{case}/x")].copy().unwrap();
        x.attach_grad().unwrap();
        let rois = g[&format!("{case}/rois")].clone();
        let y = {
            let _rec = autograd::record(true);
            invoke("_contrib_ROIAlign", &[x.clone(), rois], attrs).unwrap().remove(0)
        };
        autograd::backward(&[y.clone()], &[g[&format!("{case}/r")].clone()]).unwrap();
        for (got, want) in [(y, &g[&format!("{case}/out")]), (x.grad().unwrap(), &g[&format!("{case}/grad")])]
        {
            assert_eq!(got.shape(), want.shape(), "{case}");
            for (a, b) in got.to_f64_vec().unwrap().iter().zip(want.to_f64_vec().unwrap()) {
                assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{case}: {a} vs MXNet {b}");
            }
        }
    }
}

#[test]
fn bad_inputs_are_errors() {
    let x = NDArray::from_slice(&[0.0f32; 48], [1, 3, 4, 4]).unwrap();
    let rois = NDArray::from_slice(&[0.0f32; 4], [1, 4]).unwrap();
    let a = [("pooled_size", "(2, 2)"), ("spatial_scale", "1")];
    let e = invoke("_contrib_ROIAlign", &[x.clone(), rois], &a).unwrap_err().to_string();
    assert!(e.contains("ROIAlign") && e.contains("(1, 4)"), "{e}");
    let rois = NDArray::from_slice(&[0.0f32, 0.0, 0.0, 2.0, 2.0], [1, 5]).unwrap();
    let ps = [("pooled_size", "(2, 2)"), ("spatial_scale", "1"), ("position_sensitive", "True")];
    assert!(invoke("_contrib_ROIAlign", &[x, rois], &ps).is_err(), "3 channels, 4 bins");
}
