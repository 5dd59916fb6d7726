//! Transformer layers against PyTorch (MXNet 1.9.1 has none): the goldens in
//! `tests/fixtures/generated/transformer.params` come from `nn.MultiheadAttention` and
//! `nn.TransformerEncoderLayer` (`gen_transformer.py`), with the weights stored under our
//! attribute names. We load them with `load_parameters`, run forward and backward, and
//! compare the output and the gradients.

use std::collections::HashMap;
use std::path::PathBuf;

use mixnet::autograd;
use mixnet::gluon::nn::{MultiHeadAttention, TransformerEncoder, TransformerEncoderLayer};
use mixnet::gluon::{Block, LoadOptions};
use mixnet::NDArray;

fn golden() -> HashMap<String, NDArray> {
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/generated/transformer.params"
    ));
    let (arrays, names) = mixnet::ndarray::load(&path).expect("transformer goldens load");
    names.into_iter().zip(arrays).collect()
}

/// Write the case's parameters under structured names (`prefix` + golden key) and load them.
fn load_case(block: &dyn Block, g: &HashMap<String, NDArray>, case: &str, attention_prefix: &str) {
    let mut names = Vec::new();
    let mut arrays = Vec::new();
    let head = format!("{case}/param/");
    for (k, v) in g {
        if let Some(attr) = k.strip_prefix(&head) {
            let is_attention = ["query.", "key.", "value.", "proj."].iter().any(|p| attr.starts_with(p));
            names.push(if is_attention { format!("{attention_prefix}{attr}") } else { attr.to_string() });
            arrays.push(v.clone());
        }
    }
    let path = std::env::temp_dir().join(format!("mixnet-transformer-{}-{case}.params", std::process::id()));
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    mixnet::ndarray::save(&path, &arrays, &refs).unwrap();
    block.load_parameters(&path, LoadOptions::default()).unwrap();
    let _ = std::fs::remove_file(&path);
}

fn max_rel(a: &NDArray, b: &NDArray) -> f64 {
    assert_eq!(a.shape(), b.shape());
    let (a, b) = (a.to_f64_vec().unwrap(), b.to_f64_vec().unwrap());
    a.iter().zip(&b).map(|(x, y)| (x - y).abs() / (1.0 + y.abs())).fold(0.0, f64::max)
}

/// Forward with `f`, backward with the golden head gradient, and compare the output, the
/// input gradient and each named parameter gradient.
fn check(
    case: &str,
    g: &HashMap<String, NDArray>,
    f: impl Fn(&NDArray) -> NDArray,
    param_grads: &[(&str, NDArray)],
) -> f64 {
    let x = g[&format!("{case}/x")].copy().unwrap();
    x.attach_grad().unwrap();
    let y = {
        let _rec = autograd::record(true);
        f(&x)
    };
    autograd::backward(&[y.clone()], &[g[&format!("{case}/r")].clone()]).unwrap();
    let mut worst = max_rel(&y, &g[&format!("{case}/out")]);
    worst = worst.max(max_rel(&x.grad().unwrap(), &g[&format!("{case}/grad/x")]));
    for (k, grad) in param_grads {
        worst = worst.max(max_rel(grad, &g[&format!("{case}/grad/{k}")]));
    }
    println!("{case:<12} max rel err {worst:.2e}");
    worst
}

#[test]
fn multi_head_attention_matches_pytorch() {
    let g = golden();
    let mha = MultiHeadAttention::new(8, 2).unwrap().causal(true);
    load_case(&mha, &g, "mha_causal", "");
    let worst = check("mha_causal", &g, |x| mha.call(x).unwrap(), &[]);
    let worst = worst
        .max(max_rel(&mha.proj().weight().grad().unwrap(), &g["mha_causal/grad/out_proj.weight"]))
        .max(max_rel(&mha.query().weight().grad().unwrap(), &g["mha_causal/grad/query.weight"]));
    assert!(worst < 1e-5, "max rel err {worst}");
}

#[test]
fn encoder_layers_match_pytorch_post_and_pre_norm() {
    let g = golden();
    let post = TransformerEncoderLayer::new(8, 16, 2).unwrap();
    load_case(&post, &g, "enc_post", "attention.");
    let valid = g["enc_post/valid_length"].clone();
    let worst = check("enc_post", &g, |x| post.forward_masked(x, Some(&valid)).unwrap(), &[])
        .max(max_rel(&post.ffn().0.weight().grad().unwrap(), &g["enc_post/grad/ffn_1.weight"]));
    assert!(worst < 1e-5, "post-norm: max rel err {worst}");

    let pre = TransformerEncoderLayer::new(8, 16, 2).unwrap().pre_norm(true).activation("gelu").unwrap();
    load_case(&pre, &g, "enc_pre", "attention.");
    let worst = check("enc_pre", &g, |x| pre.call(x).unwrap(), &[])
        .max(max_rel(&pre.ffn().0.weight().grad().unwrap(), &g["enc_pre/grad/ffn_1.weight"]));
    assert!(worst < 1e-5, "pre-norm: max rel err {worst}");
}

#[test]
fn encoder_stack_names_parameters_and_trains() {
    let enc = TransformerEncoder::new(2, true, |_| TransformerEncoderLayer::new(8, 16, 2)).unwrap();
    enc.initialize(None, mixnet::Context::cpu(0), false).unwrap();
    let x = NDArray::from_slice(&(0..80).map(|i| (i as f32 * 0.37).sin()).collect::<Vec<_>>(), [2, 5, 8])
        .unwrap();
    let y = enc.call(&x).unwrap();
    assert_eq!(y.shape().to_vec(), vec![2, 5, 8]);
    let params = enc.collect_params().unwrap();
    // 2 layers x (4 dense x 2 + 2 ffn x 2 + 2 norms x 2) + final norm x 2
    assert_eq!(params.len(), 2 * (8 + 4 + 4) + 2, "{:?}", params.keys().collect::<Vec<_>>());
    assert!(
        params.keys().any(|k| k.ends_with("multiheadattention0_query_weight")),
        "{:?}",
        params.keys().collect::<Vec<_>>()
    );
    // A few SGD steps lower a regression loss toward a fixed target.
    let target =
        NDArray::from_slice(&(0..80).map(|i| (i as f32 * 0.11).cos()).collect::<Vec<_>>(), [2, 5, 8])
            .unwrap();
    let mut trainer =
        mixnet::gluon::Trainer::with_optimizer(&params, "adam", &[("learning_rate", 0.01)]).unwrap();
    let loss_of =
        |y: &NDArray| -> NDArray { ((y - &target).unwrap().square().unwrap()).mean(None, false).unwrap() };
    let first = loss_of(&enc.call(&x).unwrap()).as_scalar::<f32>().unwrap();
    for _ in 0..60 {
        let l = {
            let _rec = autograd::record(true);
            loss_of(&enc.call(&x).unwrap())
        };
        autograd::backward(&[l], &[]).unwrap();
        trainer.step(1, false).unwrap();
    }
    let last = loss_of(&enc.call(&x).unwrap()).as_scalar::<f32>().unwrap();
    assert!(last < 0.5 * first, "loss {first} -> {last}");
}

#[test]
fn bad_shapes_are_errors_naming_the_layer() {
    assert!(MultiHeadAttention::new(10, 3).is_err());
    let mha = MultiHeadAttention::new(8, 2).unwrap();
    mha.initialize(None, mixnet::Context::cpu(0), false).unwrap();
    let x = NDArray::from_slice(&[0.0f32; 16], [2, 8]).unwrap();
    let e = mha.call(&x).unwrap_err().to_string();
    assert!(e.contains("multiheadattention") && e.contains("(2, 8)"), "{e}");
    assert!(TransformerEncoderLayer::new(8, 16, 2).unwrap().activation("swishy").is_err());
}
