//! F1, MCC, Perplexity and PearsonCorrelation against MXNet 1.9.1: the updates and `get()`
//! values in `tests/fixtures/generated/metrics.params` (from `gen_metrics.py` there).

use std::collections::HashMap;
use std::path::PathBuf;

use mixnet::metric::{self, Average, EvalMetric, PearsonCorrelation, Perplexity, F1, MCC};
use mixnet::NDArray;

fn golden() -> HashMap<String, NDArray> {
    let path =
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/generated/metrics.params"));
    let (arrays, names) = mixnet::ndarray::load(&path).expect("metric goldens load");
    names.into_iter().zip(arrays).collect()
}

fn cases() -> Vec<(&'static str, Box<dyn EvalMetric>)> {
    vec![
        ("f1_macro", Box::new(F1::new(Average::Macro))),
        ("f1_micro", Box::new(F1::new(Average::Micro))),
        ("mcc_macro", Box::new(MCC::new(Average::Macro))),
        ("mcc_micro", Box::new(MCC::new(Average::Micro))),
        ("perplexity", Box::new(Perplexity::new(None))),
        ("perplexity_ignore", Box::new(Perplexity::new(Some(0.0)))),
        ("pearson_macro", Box::new(PearsonCorrelation::new(Average::Macro))),
        ("pearson_micro", Box::new(PearsonCorrelation::new(Average::Micro))),
    ]
}

#[test]
fn metrics_match_mxnet_after_every_update_and_reset() {
    let g = golden();
    for (case, mut m) in cases() {
        for step in 0..4 {
            if step == 3 {
                m.reset();
            }
            let pairs = if step == 1 { 2 } else { 1 };
            let labels: Vec<NDArray> =
                (0..pairs).map(|k| g[&format!("{case}/{step}/label{k}")].clone()).collect();
            let preds: Vec<NDArray> =
                (0..pairs).map(|k| g[&format!("{case}/{step}/pred{k}")].clone()).collect();
            m.update(&labels, &preds).unwrap();
            let want = g[&format!("{case}/{step}/value")].to_f64_vec().unwrap()[0];
            let got = m.get().1;
            assert!(
                (got - want).abs() <= 1e-6 * (1.0 + want.abs()),
                "{case} step {step}: {got} vs MXNet {want}"
            );
        }
    }
}

#[test]
fn names_errors_and_empty_values() {
    for (name, shown) in
        [("f1", "f1"), ("mcc", "mcc"), ("perplexity", "perplexity"), ("pearsonr", "pearsonr")]
    {
        let m = metric::create(name).unwrap();
        let (n, v) = m.get();
        assert_eq!(n, shown);
        assert!(v.is_nan(), "{name} before any update");
    }
    let three = NDArray::from_slice(&[0.0f32, 1.0, 2.0], [3]).unwrap();
    let pred = NDArray::from_slice(&[0.1f32, 0.9, 0.8, 0.2, 0.5, 0.5], [3, 2]).unwrap();
    let e = F1::default().update(&[three], &[pred.clone()]).unwrap_err().to_string();
    assert!(e.contains("F1") || e.contains("f1"), "{e}");
    let two = NDArray::from_slice(&[0.0f32, 1.0], [2]).unwrap();
    let e = MCC::default().update(&[two.clone()], &[pred]).unwrap_err().to_string();
    assert!(e.contains("mcc") && e.contains("(3, 2)"), "{e}");
    let e = PearsonCorrelation::default().update(&[two], &[NDArray::from_slice(&[1.0f32; 3], [3]).unwrap()]);
    assert!(e.is_err());
    assert!(Average::parse("f1", "weighted").is_err());
}
