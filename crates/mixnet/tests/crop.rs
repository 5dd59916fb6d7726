//! Legacy `Crop` against MXNet 1.9.1 (`tests/fixtures/generated/crop.params`, from
//! `gen_crop.py`): `h_w` and crop-like forms, offset and centered; outputs and gradients.

use std::collections::HashMap;
use std::path::PathBuf;

use mixnet::autograd;
use mixnet::imperative::invoke;
use mixnet::NDArray;

#[test]
fn matches_mxnet() {
    let path =
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/generated/crop.params"));
    let (arrays, names) = mixnet::ndarray::load(&path).unwrap();
    let g: HashMap<String, NDArray> = names.into_iter().zip(arrays).collect();
    let cases: [(&str, &[(&str, &str)]); 4] = [
        ("h_w_offset", &[("num_args", "1"), ("h_w", "(2, 3)"), ("offset", "(1, 2)")]),
        ("h_w_center", &[("num_args", "1"), ("h_w", "(3, 2)"), ("center_crop", "True")]),
        ("like", &[("num_args", "2"), ("offset", "(2, 1)")]),
        ("like_center", &[("num_args", "2"), ("center_crop", "True")]),
    ];
    for (case, attrs) in cases {
        let x = g[&format!("{case}/x")].copy().unwrap();
        x.attach_grad().unwrap();
        let mut inputs = vec![x.clone()];
        inputs.extend(g.get(&format!("{case}/like")).cloned());
        let y = {
            let _rec = autograd::record(true);
            invoke("Crop", &inputs, attrs).unwrap().remove(0)
        };
        autograd::backward(&[y.clone()], &[g[&format!("{case}/r")].clone()]).unwrap();
        for (got, want) in [(y, &g[&format!("{case}/out")]), (x.grad().unwrap(), &g[&format!("{case}/grad")])]
        {
            assert_eq!(got.shape(), want.shape(), "{case}");
            assert_eq!(got.to_f64_vec().unwrap(), want.to_f64_vec().unwrap(), "{case}");
        }
    }
}

#[test]
fn bad_windows_are_errors() {
    let x = NDArray::from_slice(&[0.0f32; 16], [1, 1, 4, 4]).unwrap();
    let e = invoke("Crop", &[x.clone()], &[("num_args", "1"), ("h_w", "(5, 2)")]).unwrap_err().to_string();
    assert!(e.contains("Crop") && e.contains("(1, 1, 4, 4)"), "{e}");
    let e = invoke("Crop", &[x.clone()], &[("num_args", "1"), ("h_w", "(2, 2)"), ("offset", "(3, 0)")]);
    assert!(e.unwrap_err().to_string().contains("offset"));
    assert!(invoke("Crop", &[x], &[("num_args", "3")]).is_err());
}
