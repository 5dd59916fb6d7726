//! Every optimizer against MXNet 1.9.1 itself: `tests/fixtures/generated/optimizers.params`
//! (written by `gen_optimizers.py` in that directory) holds three steps of two parameters
//! (`fc_weight`, `fc_bias`) through MXNet's `opt.update`; we replay the same gradients
//! through `optimizer::create` with the same keywords and compare every step.

use std::collections::HashMap;
use std::path::PathBuf;

use mixnet::optimizer;
use mixnet::NDArray;

const NAMES: [&str; 2] = ["fc_weight", "fc_bias"];
const STEPS: usize = 3;

/// (case, optimizer, keywords): the cases of `gen_optimizers.py`.
type Case = (&'static str, &'static str, Vec<(&'static str, f64)>);

fn cases() -> Vec<Case> {
    vec![
        ("sgd", "sgd", vec![("learning_rate", 0.1), ("momentum", 0.9), ("wd", 0.01), ("rescale_grad", 0.5)]),
        ("sgd_nomom_clip", "sgd", vec![("learning_rate", 0.1), ("clip_gradient", 0.3)]),
        ("nag", "nag", vec![("learning_rate", 0.1), ("momentum", 0.9), ("wd", 0.01)]),
        ("signum", "signum", vec![("learning_rate", 0.05), ("momentum", 0.9), ("wd", 0.01), ("wd_lh", 0.02)]),
        ("signsgd", "signum", vec![("learning_rate", 0.05), ("momentum", 0.0)]),
        (
            "lars",
            "lars",
            vec![
                ("learning_rate", 0.1),
                ("momentum", 0.9),
                ("wd", 0.01),
                ("eta", 0.01),
                ("rescale_grad", 0.5),
            ],
        ),
        ("dcasgd_nomom", "dcasgd", vec![("learning_rate", 0.1), ("lamda", 0.5), ("clip_gradient", 0.4)]),
        ("adam", "adam", vec![("learning_rate", 0.01), ("wd", 0.01), ("rescale_grad", 0.5)]),
        ("adamax", "adamax", vec![("wd", 0.01), ("clip_gradient", 0.5)]),
        ("nadam", "nadam", vec![("learning_rate", 0.01), ("wd", 0.01)]),
        (
            "lamb",
            "lamb",
            vec![("learning_rate", 0.01), ("wd", 0.01), ("lower_bound", 0.1), ("upper_bound", 5.0)],
        ),
        ("rmsprop", "rmsprop", vec![("learning_rate", 0.01), ("wd", 0.01)]),
        (
            "rmsprop_centered",
            "rmsprop",
            vec![("learning_rate", 0.01), ("centered", 1.0), ("clip_weights", 1.5)],
        ),
        ("adagrad", "adagrad", vec![("learning_rate", 0.1), ("wd", 0.01), ("rescale_grad", 0.5)]),
        ("adadelta", "adadelta", vec![("wd", 0.01), ("rho", 0.8)]),
        ("ftrl", "ftrl", vec![("learning_rate", 0.1), ("wd", 0.01), ("lamda1", 0.02)]),
        ("ftml", "ftml", vec![("learning_rate", 0.05), ("wd", 0.01), ("clip_gradient", 0.5)]),
        ("adamw", "adamw", vec![("learning_rate", 0.01), ("wd", 0.05), ("rescale_grad", 0.5)]),
    ]
}

fn golden() -> HashMap<String, NDArray> {
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/generated/optimizers.params"
    ));
    let (arrays, names) = mixnet::ndarray::load(&path).expect("optimizer goldens load");
    names.into_iter().zip(arrays).collect()
}

fn copy(x: &NDArray) -> NDArray {
    x.copy().unwrap()
}

#[test]
fn every_optimizer_matches_mxnet_step_by_step() {
    let g = golden();
    let get = |k: String| g.get(&k).unwrap_or_else(|| panic!("golden {k} missing")).clone();
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for (case, name, kw) in cases() {
        let mut opt = optimizer::create(name, &kw).unwrap();
        for (i, n) in NAMES.iter().enumerate() {
            opt.base_mut().idx2name.insert(i, n.to_string());
        }
        let weights: Vec<NDArray> = (0..2).map(|i| copy(&get(format!("{case}/init/{i}")))).collect();
        let states: Vec<Vec<NDArray>> =
            weights.iter().enumerate().map(|(i, w)| opt.create_state(i, w).unwrap()).collect();
        let mut worst = 0.0f64;
        for step in 0..STEPS {
            for (i, w) in weights.iter().enumerate() {
                let grad = get(format!("{case}/grad/{step}/{i}"));
                opt.update(i, w, &grad, &states[i]).unwrap();
                let want = get(format!("{case}/weight/{step}/{i}")).to_f64_vec().unwrap();
                let got = w.to_f64_vec().unwrap();
                for (a, b) in got.iter().zip(&want) {
                    worst = worst.max((a - b).abs() / (1.0 + b.abs()));
                }
            }
        }
        report.push(format!("{case:<18} {name:<9} max rel err {worst:.2e}"));
        if worst > 2e-6 {
            failures.push(case);
        }
    }
    println!("{}", report.join("\n"));
    assert!(failures.is_empty(), "optimizers differing from MXNet 1.9.1: {failures:?}");
}

#[test]
fn create_knows_every_registered_name_and_rejects_unknown_keywords() {
    for name in optimizer::OPTIMIZERS {
        let opt = optimizer::create(name, &[("learning_rate", 0.5)]).unwrap();
        assert_eq!(opt.name(), *name);
        assert_eq!(opt.learning_rate(), 0.5);
    }
    assert_eq!(optimizer::create("Adam", &[]).unwrap().name(), "adam", "names are case-insensitive");
    let err = optimizer::create("adam", &[("momentum", 0.9)]).unwrap_err().to_string();
    assert!(err.contains("adam") && err.contains("momentum") && err.contains("beta1"), "{err}");
    let err = optimizer::create("adamm", &[]).unwrap_err().to_string();
    assert!(err.contains("adamm") && err.contains("lamb"), "{err}");
}

#[test]
fn defaults_are_mxnets() {
    let lr = |n: &str| optimizer::create(n, &[]).unwrap().learning_rate();
    for (n, want) in
        [("sgd", 0.01), ("adam", 0.001), ("adamax", 0.002), ("ftrl", 0.1), ("lamb", 0.001), ("ftml", 0.01)]
    {
        assert_eq!(lr(n), want, "{n}");
    }
}

#[test]
fn wrong_state_count_is_an_error_naming_the_optimizer() {
    let mut opt = optimizer::create("adam", &[]).unwrap();
    let w = NDArray::from_slice(&[1.0f32, 2.0], [2]).unwrap();
    let err = opt.update(0, &w, &w.copy().unwrap(), &[]).unwrap_err().to_string();
    assert!(err.contains("adam") && err.contains("2 state arrays"), "{err}");
}

#[test]
fn sgld_adds_gaussian_noise_of_variance_lr() {
    // Zero gradient and no weight decay: the update is pure N(0, lr) noise.
    let n = 20000;
    let mut opt = optimizer::create("sgld", &[("learning_rate", 0.04)]).unwrap();
    let w = NDArray::zeros([n], mixnet::DType::F32, mixnet::Context::cpu(0)).unwrap();
    let g = NDArray::zeros([n], mixnet::DType::F32, mixnet::Context::cpu(0)).unwrap();
    opt.update(0, &w, &g, &[]).unwrap();
    let v = w.to_f64_vec().unwrap();
    let mean = v.iter().sum::<f64>() / n as f64;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
    assert!(mean.abs() < 0.01, "mean {mean}");
    assert!((var - 0.04).abs() < 0.003, "variance {var}");
    // The deterministic half step: w -= lr/2 * (g + wd w), checked with the noise removed.
    let mut opt = optimizer::create("sgld", &[("learning_rate", 1e-12), ("wd", 0.0)]).unwrap();
    let w = NDArray::from_slice(&[1.0f32, -2.0], [2]).unwrap();
    let g = NDArray::from_slice(&[4e11f32, 2e11], [2]).unwrap();
    opt.update(0, &w, &g, &[]).unwrap();
    let got = w.to_f64_vec().unwrap();
    assert!((got[0] - (1.0 - 0.2)).abs() < 1e-3 && (got[1] - (-2.0 - 0.1)).abs() < 1e-3, "{got:?}");
}

#[test]
fn lars_leaves_bias_rates_unscaled() {
    // With eta tiny, a scaled layer barely moves; a `*_bias` parameter takes the plain SGD step.
    let mut opt = optimizer::create("lars", &[("learning_rate", 0.1), ("eta", 1e-6)]).unwrap();
    opt.base_mut().idx2name.insert(0, "dense0_weight".into());
    opt.base_mut().idx2name.insert(1, "dense0_bias".into());
    let w = NDArray::from_slice(&[1.0f32, 1.0], [2]).unwrap();
    let b = NDArray::from_slice(&[1.0f32, 1.0], [2]).unwrap();
    let g = NDArray::from_slice(&[1.0f32, 1.0], [2]).unwrap();
    opt.update(0, &w, &g, &[]).unwrap();
    opt.update(1, &b, &g, &[]).unwrap();
    assert!((w.to_f64_vec().unwrap()[0] - 1.0).abs() < 1e-5);
    assert!((b.to_f64_vec().unwrap()[0] - 0.9).abs() < 1e-6);
}

#[test]
fn clip_global_norm_scales_jointly() {
    let a = NDArray::from_slice(&[3.0f32, 0.0], [2]).unwrap();
    let b = NDArray::from_slice(&[0.0f32, 4.0], [2]).unwrap();
    let norm = mixnet::gluon::clip_global_norm(&[a.clone(), b.clone()], 1.0).unwrap();
    assert!((norm - 5.0).abs() < 1e-6);
    let (va, vb) = (a.to_f64_vec().unwrap(), b.to_f64_vec().unwrap());
    assert!((va[0] - 0.6).abs() < 1e-6 && (vb[1] - 0.8).abs() < 1e-6, "{va:?} {vb:?}");
    // Below the limit nothing changes.
    let norm = mixnet::gluon::clip_global_norm(&[a.clone()], 10.0).unwrap();
    assert!((norm - 0.6).abs() < 1e-6 && (a.to_f64_vec().unwrap()[0] - 0.6).abs() < 1e-7);
    assert!(mixnet::gluon::clip_global_norm(&[], 1.0).is_err());
}
