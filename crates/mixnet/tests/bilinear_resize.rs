//! `_contrib_BilinearResize2D` against MXNet 1.9.1 over its modes (`tests/fixtures/
//! generated/bilinear_resize.params`, from `gen_bilinear_resize.py`): outputs and data
//! gradients.

use std::collections::HashMap;
use std::path::PathBuf;

use mixnet::autograd;
use mixnet::imperative::invoke;
use mixnet::NDArray;

#[test]
fn matches_mxnet_in_every_mode() {
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/generated/bilinear_resize.params"
    ));
    let (arrays, names) = mixnet::ndarray::load(&path).unwrap();
    let g: HashMap<String, NDArray> = names.into_iter().zip(arrays).collect();
    let cases: [(&str, &[(&str, &str)]); 8] = [
        ("up_align", &[("height", "5"), ("width", "7")]),
        ("down_noalign", &[("height", "4"), ("width", "3"), ("align_corners", "False")]),
        ("up_noalign", &[("height", "7"), ("width", "5"), ("align_corners", "False")]),
        ("scale", &[("scale_height", "1.5"), ("scale_width", "0.5")]),
        ("odd_scale", &[("mode", "odd_scale"), ("scale_height", "2"), ("scale_width", "2")]),
        ("like", &[("mode", "like")]),
        ("to_even_down", &[("mode", "to_even_down")]),
        ("to_odd_up", &[("mode", "to_odd_up"), ("align_corners", "False")]),
    ];
    for (case, attrs) in cases {
        let x = g[&format!("{case}/x")].copy().unwrap();
        x.attach_grad().unwrap();
        let mut inputs = vec![x.clone()];
        inputs.extend(g.get(&format!("{case}/like")).cloned());
        let y = {
            let _rec = autograd::record(true);
            invoke("_contrib_BilinearResize2D", &inputs, attrs).unwrap().remove(0)
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
    let e = invoke("_contrib_BilinearResize2D", &[x], &[]).unwrap_err().to_string();
    assert!(e.contains("BilinearResize2D") && e.contains("(2, 3)"), "{e}");
    let x = NDArray::from_slice(&[0.0f32; 4], [1, 1, 2, 2]).unwrap();
    assert!(invoke("_contrib_BilinearResize2D", &[x.clone()], &[("mode", "odd_scale")]).is_err());
    assert!(invoke("_contrib_BilinearResize2D", &[x], &[("mode", "nearest")]).is_err());
}
