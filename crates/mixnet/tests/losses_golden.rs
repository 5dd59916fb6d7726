//! Every Gluon loss against MXNet 1.9.1:
//! `tests/fixtures/generated/losses.params` (from `gen_losses.py` there) holds inputs,
//! outputs, and input gradients of `sum(loss * r)`.

use std::collections::HashMap;
use std::path::PathBuf;

use mixnet::autograd;
use mixnet::gluon::loss::{
    squared_hinge_loss, CTCLoss, CosineEmbeddingLoss, HingeLoss, HuberLoss, KLDivLoss, L1Loss, L2Loss,
    LogisticLoss, Loss, PoissonNLLLoss, SDMLLoss, SigmoidBinaryCrossEntropyLoss, SoftmaxCrossEntropyLoss,
    TripletLoss,
};
use mixnet::{NDArray, Result};

fn golden() -> HashMap<String, NDArray> {
    let path =
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/generated/losses.params"));
    let (arrays, names) = mixnet::ndarray::load(&path).expect("loss goldens load");
    names.into_iter().zip(arrays).collect()
}

type LossFn = Box<dyn Fn(&[NDArray]) -> Result<NDArray>>;

fn cases() -> Vec<(&'static str, usize, Vec<usize>, LossFn)> {
    vec![
        ("triplet", 3, vec![0, 1, 2], Box::new(|x| TripletLoss::new().margin(0.5).call(&x[0], &x[1], &x[2]))),
        (
            "triplet_weighted",
            3,
            vec![0, 1, 2],
            Box::new(|x| TripletLoss::new().weight(2.0).call(&x[0], &x[1], &x[2])),
        ),
        (
            "cosine",
            3,
            vec![0, 1],
            Box::new(|x| CosineEmbeddingLoss::new().margin(0.2).call(&x[0], &x[1], &x[2])),
        ),
        (
            "cosine_sample_weight",
            4,
            vec![0, 1],
            Box::new(|x| CosineEmbeddingLoss::new().loss(&x[0], &x[1], &x[2], Some(&x[3]))),
        ),
        ("sdml", 2, vec![0, 1], Box::new(|x| SDMLLoss::new().call(&x[0], &x[1]))),
        (
            "sdml_smooth",
            2,
            vec![0, 1],
            Box::new(|x| SDMLLoss::new().smoothing_parameter(0.1).call(&x[0], &x[1])),
        ),
        ("kldiv", 2, vec![0], Box::new(|x| KLDivLoss::new().call(&x[0], &x[1]))),
        (
            "kldiv_logits",
            2,
            vec![0],
            Box::new(|x| KLDivLoss::new().from_logits(false).weight(0.5).call(&x[0], &x[1])),
        ),
        ("l2", 3, vec![0], Box::new(|x| L2Loss::new().loss(&x[0], &x[1], Some(&x[2])))),
        ("l1", 2, vec![0], Box::new(|x| L1Loss::new().weight(0.7).call(&x[0], &x[1]))),
        (
            "sigmoid_bce",
            3,
            vec![0],
            Box::new(|x| SigmoidBinaryCrossEntropyLoss::new().loss(&x[0], &x[1], Some(&x[2]))),
        ),
        (
            "sigmoid_bce_probs",
            2,
            vec![0],
            Box::new(|x| SigmoidBinaryCrossEntropyLoss::new().from_sigmoid(true).call(&x[0], &x[1])),
        ),
        ("softmax_ce", 2, vec![0], Box::new(|x| SoftmaxCrossEntropyLoss::new().call(&x[0], &x[1]))),
        (
            "softmax_ce_dense",
            2,
            vec![0],
            Box::new(|x| SoftmaxCrossEntropyLoss::new().sparse_label(false).call(&x[0], &x[1])),
        ),
        ("hinge", 2, vec![0], Box::new(|x| HingeLoss::new().margin(0.5).call(&x[0], &x[1]))),
        ("squared_hinge", 2, vec![0], Box::new(|x| squared_hinge_loss().call(&x[0], &x[1]))),
        ("logistic_signed", 2, vec![0], Box::new(|x| LogisticLoss::new().call(&x[0], &x[1]))),
        (
            "logistic_binary",
            2,
            vec![0],
            Box::new(|x| LogisticLoss::new().label_format("binary")?.call(&x[0], &x[1])),
        ),
        ("huber", 2, vec![0], Box::new(|x| HuberLoss::new().rho(0.3).call(&x[0], &x[1]))),
        ("poisson_nll", 2, vec![0], Box::new(|x| PoissonNLLLoss::new().call(&x[0], &x[1]))),
        (
            "poisson_nll_full",
            2,
            vec![],
            Box::new(|x| PoissonNLLLoss::new().from_logits(false).compute_full(true).call(&x[0], &x[1])),
        ),
        ("ctc", 2, vec![0], Box::new(|x| CTCLoss::new().call(&x[0], &x[1]))),
        (
            "ctc_lengths",
            4,
            vec![0],
            Box::new(|x| {
                CTCLoss::new().layout("TNC")?.label_layout("TN")?.loss_with_lengths(
                    &x[0],
                    &x[1],
                    Some(&x[2]),
                    Some(&x[3]),
                    None,
                )
            }),
        ),
    ]
}

fn max_rel(a: &NDArray, b: &NDArray) -> f64 {
    assert_eq!(a.shape(), b.shape());
    let (a, b) = (a.to_f64_vec().unwrap(), b.to_f64_vec().unwrap());
    a.iter().zip(&b).map(|(x, y)| (x - y).abs() / (1.0 + y.abs())).fold(0.0, f64::max)
}

#[test]
fn losses_match_mxnet_values_and_gradients() {
    let g = golden();
    let get = |k: String| g.get(&k).unwrap_or_else(|| panic!("golden {k} missing")).copy().unwrap();
    let mut bad = Vec::new();
    for (name, n, diff, f) in cases() {
        let inputs: Vec<NDArray> = (0..n).map(|k| get(format!("{name}/in/{k}"))).collect();
        for &k in &diff {
            inputs[k].attach_grad().unwrap();
        }
        let out = {
            let _rec = autograd::record(true);
            f(&inputs).unwrap()
        };
        if !diff.is_empty() {
            autograd::backward(&[out.clone()], &[get(format!("{name}/r"))]).unwrap();
        }
        let mut worst = max_rel(&out, &get(format!("{name}/out")));
        for &k in &diff {
            worst = worst.max(max_rel(&inputs[k].grad().unwrap(), &get(format!("{name}/grad/{k}"))));
        }
        println!("{name:<22} max rel err {worst:.2e}");
        if worst > 1e-5 {
            bad.push(name);
        }
    }
    assert!(bad.is_empty(), "losses differing from MXNet 1.9.1: {bad:?}");
}

#[test]
fn bad_inputs_are_errors_naming_the_loss() {
    let a = NDArray::from_slice(&[1.0f32; 6], [2, 3]).unwrap();
    let b = NDArray::from_slice(&[1.0f32; 4], [2, 2]).unwrap();
    let e = TripletLoss::new().call(&a, &b, &a).unwrap_err().to_string();
    assert!(e.contains("TripletLoss") && e.contains("(2, 2)"), "{e}");
    let e = SDMLLoss::new().call(&a, &b).unwrap_err().to_string();
    assert!(e.contains("SDMLLoss"), "{e}");
    let one = NDArray::from_slice(&[1.0f32; 3], [1, 3]).unwrap();
    assert!(SDMLLoss::new().call(&one, &one).is_err(), "a batch of one has no negatives");
    let label = NDArray::from_slice(&[1.0f32; 3], [3]).unwrap();
    let e = CosineEmbeddingLoss::new().call(&a, &a, &label).unwrap_err().to_string();
    assert!(e.contains("CosineEmbeddingLoss"), "{e}");
    assert!(CTCLoss::new().layout("NCT").is_err());
}
