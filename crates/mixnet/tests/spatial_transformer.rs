//! GridGenerator (affine, warp), BilinearSampler and SpatialTransformer against MXNet
//! 1.9.1 (`tests/fixtures/generated/spatial.params`, from `gen_spatial.py`): outputs and
//! the gradients of every input.

use std::collections::HashMap;
use std::path::PathBuf;

use mixnet::autograd;
use mixnet::imperative::invoke;
use mixnet::NDArray;

/// (case, operator, attributes).
type Case = (&'static str, &'static str, &'static [(&'static str, &'static str)]);

#[test]
fn matches_mxnet_forward_and_backward() {
    let path =
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/generated/spatial.params"));
    let (arrays, names) = mixnet::ndarray::load(&path).unwrap();
    let g: HashMap<String, NDArray> = names.into_iter().zip(arrays).collect();
    let cases: [Case; 4] = [
        ("grid_affine", "GridGenerator", &[("transform_type", "affine"), ("target_shape", "(4, 5)")]),
        ("grid_warp", "GridGenerator", &[("transform_type", "warp")]),
        ("sampler", "BilinearSampler", &[]),
        (
            "st",
            "SpatialTransformer",
            &[("target_shape", "(4, 4)"), ("transform_type", "affine"), ("sampler_type", "bilinear")],
        ),
    ];
    for (case, op, attrs) in cases {
        let inputs: Vec<NDArray> =
            (0..).map_while(|k| g.get(&format!("{case}/in{k}")).map(|x| x.copy().unwrap())).collect();
        for x in &inputs {
            x.attach_grad().unwrap();
        }
        let y = {
            let _rec = autograd::record(true);
            invoke(op, &inputs, attrs).unwrap().remove(0)
        };
        autograd::backward(&[y.clone()], &[g[&format!("{case}/r")].clone()]).unwrap();
        let mut pairs = vec![(y, g[&format!("{case}/out")].clone())];
        for (k, x) in inputs.iter().enumerate() {
            pairs.push((x.grad().unwrap(), g[&format!("{case}/grad{k}")].clone()));
        }
        for (i, (got, want)) in pairs.iter().enumerate() {
            assert_eq!(got.shape(), want.shape(), "{case} #{i}");
            for (a, b) in got.to_f64_vec().unwrap().iter().zip(want.to_f64_vec().unwrap()) {
                assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{case} #{i}: {a} vs MXNet {b}");
            }
        }
    }
}

#[test]
fn bad_shapes_and_attributes_are_errors() {
    let theta = NDArray::from_slice(&[1.0f32, 0.0, 0.0, 0.0, 1.0, 0.0], [1, 6]).unwrap();
    let e =
        invoke("GridGenerator", &[theta.clone()], &[("transform_type", "affine")]).unwrap_err().to_string();
    assert!(e.contains("GridGenerator") && e.contains("target_shape"), "{e}");
    assert!(invoke("GridGenerator", &[theta.clone()], &[]).is_err());
    let data = NDArray::from_slice(&[0.0f32; 8], [1, 2, 2, 2]).unwrap();
    let e = invoke("BilinearSampler", &[data.clone(), theta.clone()], &[]).unwrap_err().to_string();
    assert!(e.contains("BilinearSampler") && e.contains("(1, 6)"), "{e}");
    let st = [("target_shape", "(2, 2)"), ("transform_type", "affine"), ("sampler_type", "nearest")];
    assert!(invoke("SpatialTransformer", &[data, theta], &st).is_err());
}
