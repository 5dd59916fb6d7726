//! Orthogonal, Bilinear, LSTMBias and Mixed initializers. Bilinear and LSTMBias are
//! deterministic and checked against MXNet 1.9.1 (`tests/fixtures/generated/
//! initializers.params`, from `gen_initializers.py`); Orthogonal by its defining property.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use mixnet::initializer::{
    self, Bilinear, Constant, Initializer, LSTMBias, Mixed, Orthogonal, RandType, Zero,
};
use mixnet::{Context, DType, NDArray, Shape};

fn golden() -> HashMap<String, NDArray> {
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/generated/initializers.params"
    ));
    let (arrays, names) = mixnet::ndarray::load(&path).expect("initializer goldens load");
    names.into_iter().zip(arrays).collect()
}

fn init(i: &dyn Initializer, name: &str, shape: &[usize]) -> NDArray {
    i.init_weight(name, &Shape::new(shape), DType::F32, Context::cpu(0)).unwrap()
}

#[test]
fn bilinear_and_lstm_bias_match_mxnet() {
    let g = golden();
    for (key, want) in &g {
        let got = if let Some(dims) = key.strip_prefix("bilinear/") {
            let shape: Vec<usize> = dims.split('x').map(|d| d.parse().unwrap()).collect();
            init(&Bilinear, "w", &shape)
        } else {
            let fb: f64 = key.strip_prefix("lstmbias/").unwrap().parse().unwrap();
            init(&LSTMBias { forget_bias: fb }, "b", &[12])
        };
        assert_eq!(got.shape(), want.shape(), "{key}");
        assert_eq!(got.to_vec::<f32>().unwrap(), want.to_vec::<f32>().unwrap(), "{key}");
    }
}

#[test]
fn orthogonal_rows_or_columns_are_orthonormal_times_scale() {
    mixnet::random::seed(3).unwrap();
    for (shape, rand) in
        [(vec![3, 5], RandType::Uniform), (vec![6, 2], RandType::Normal), (vec![4, 2, 3], RandType::Uniform)]
    {
        let o = Orthogonal { scale: 1.5, rand_type: rand };
        let w = init(&o, "w", &shape).to_f64_vec().unwrap();
        let (rows, cols) = (shape[0], shape[1..].iter().product::<usize>());
        // Gram matrix of the shorter side: scale² I.
        let wide = rows <= cols;
        let (n, len) = if wide { (rows, cols) } else { (cols, rows) };
        let at = |i: usize, k: usize| if wide { w[i * cols + k] } else { w[k * cols + i] };
        for i in 0..n {
            for j in 0..n {
                let dot: f64 = (0..len).map(|k| at(i, k) * at(j, k)).sum();
                let want = if i == j { 2.25 } else { 0.0 };
                assert!((dot - want).abs() < 1e-5, "{shape:?} gram[{i}][{j}] = {dot}");
            }
        }
    }
    let e = Orthogonal::default()
        .init_weight("b", &Shape::new(&[4]), DType::F32, Context::cpu(0))
        .unwrap_err()
        .to_string();
    assert!(e.contains("Orthogonal") && e.contains("'b'"), "{e}");
}

#[test]
fn mixed_picks_by_name_prefix_pattern() {
    let m = Mixed::new(&["bias", ".*"], vec![Arc::new(Constant::new(3.0)), Arc::new(Zero)]).unwrap();
    assert_eq!(init(&m, "bias_of_something", &[2]).to_vec::<f32>().unwrap(), [3.0, 3.0]);
    // re.match anchors at the start: "dense0_bias" does not start with "bias".
    assert_eq!(init(&m, "dense0_bias", &[2]).to_vec::<f32>().unwrap(), [0.0, 0.0]);
    let only = Mixed::new(&["conv"], vec![Arc::new(Zero)]).unwrap();
    let e = only.init_weight("dense0_weight", &Shape::new(&[2]), DType::F32, Context::cpu(0)).unwrap_err();
    assert!(e.to_string().contains("dense0_weight"), "{e}");
    assert!(Mixed::new(&["("], vec![Arc::new(Zero)]).is_err());
    assert!(Mixed::new(&["a", "b"], vec![Arc::new(Zero)]).is_err());
    for name in ["orthogonal", "bilinear", "lstmbias"] {
        assert!(initializer::create(name).is_ok(), "{name}");
    }
}
