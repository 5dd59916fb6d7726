//! Gluon blocks and parameters: MXNet naming, deferred init, collect_params, save/load in
//! MXNet's formats, the MXNet 1.9.1 exported models reproduced, and a two-step SGD run
//! checked against values computed by hand.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mixnet::autograd::{self, GradReq};
use mixnet::gluon::loss::{Loss, SoftmaxCrossEntropyLoss};
use mixnet::gluon::nn::*;
use mixnet::gluon::*;
use mixnet::initializer::{Constant, Initializer, Xavier, Zero};
use mixnet::{cpu, NDArray, Result};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/mxnet-1.9.1/models").join(name)
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mixnet-gluon-block-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn io(name: &str) -> (NDArray, NDArray) {
    let (arrays, names) = mixnet::ndarray::load(fixture(&format!("{name}-io.params"))).unwrap();
    let get = |n: &str| arrays[names.iter().position(|x| x == n).unwrap()].clone();
    (get("data"), get("output"))
}

/// The `mlp` fixture: HybridSequential(prefix='mlp_') of Dense 128 relu, 64 relu, 10.
fn mlp() -> HybridSequential {
    let mut net = HybridSequential::with_prefix("mlp_");
    {
        let _scope = net.name_scope();
        net.add(Dense::new(128).activation("relu"));
        net.add(Dense::new(64).activation("relu"));
        net.add(Dense::new(10));
    }
    net
}

/// The `lenet_bn` fixture (see SOURCE-README.md).
fn lenet_bn() -> HybridSequential {
    let mut net = HybridSequential::with_prefix("lenet_");
    {
        let _scope = net.name_scope();
        net.add(Conv2D::new(6, 5).padding(2));
        net.add(BatchNorm::new());
        net.add(Activation::new("relu"));
        net.add(MaxPool2D::new(2).strides(2));
        net.add(Conv2D::new(16, 5));
        net.add(BatchNorm::new());
        net.add(Activation::new("relu"));
        net.add(MaxPool2D::new(2).strides(2));
        net.add(Flatten::new());
        net.add(Dense::new(120).activation("relu"));
        net.add(Dense::new(84).activation("relu"));
        net.add(Dense::new(10));
    }
    net
}

#[test]
fn names_follow_mxnet_scopes() {
    let net = lenet_bn();
    let names: Vec<String> = net.collect_params().unwrap().keys().map(String::from).collect();
    assert_eq!(
        names,
        [
            "lenet_conv0_weight",
            "lenet_conv0_bias",
            "lenet_batchnorm0_gamma",
            "lenet_batchnorm0_beta",
            "lenet_batchnorm0_running_mean",
            "lenet_batchnorm0_running_var",
            "lenet_conv1_weight",
            "lenet_conv1_bias",
            "lenet_batchnorm1_gamma",
            "lenet_batchnorm1_beta",
            "lenet_batchnorm1_running_mean",
            "lenet_batchnorm1_running_var",
            "lenet_dense0_weight",
            "lenet_dense0_bias",
            "lenet_dense1_weight",
            "lenet_dense1_bias",
            "lenet_dense2_weight",
            "lenet_dense2_bias",
        ]
    );
    assert_eq!(net.get(2).unwrap().prefix(), "lenet_relu0_");
    assert_eq!(net.get(3).unwrap().prefix(), "lenet_pool0_");
    assert_eq!(net.get(8).unwrap().prefix(), "lenet_flatten0_");
    let structured: Vec<String> = net.collect_params_with_prefix().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        structured[..6],
        ["0.weight", "0.bias", "1.gamma", "1.beta", "1.running_mean", "1.running_var"]
    );
    assert_eq!(structured[12..14], ["9.weight", "9.bias"]);
    // regex selection from the start of the name (re.match)
    let sel = net.collect_params_select(".*_weight|.*gamma").unwrap();
    assert_eq!(sel.len(), 7);
    assert_eq!(net.collect_params_select("conv").unwrap().len(), 0);
    assert!(net.collect_params_select("(").is_err());
    // aux states carry grad_req null
    let bn = net.collect_params().unwrap();
    assert_eq!(bn.get("lenet_batchnorm0_running_mean").unwrap().grad_req(), GradReq::Null);
    assert_eq!(bn.get("lenet_batchnorm0_gamma").unwrap().grad_req(), GradReq::Write);
    assert!(net.describe().contains("Conv2D(None -> 6"), "{}", net.describe());
}

#[test]
fn deferred_initialization() {
    let mut net = HybridSequential::with_prefix("deferred_");
    {
        let _scope = net.name_scope();
        net.add(Dense::new(3));
    }
    let p = net.collect_params().unwrap();
    let w = p.get("deferred_dense0_weight").unwrap().clone();
    assert_eq!(w.shape(), vec![3, 0]);
    let e = w.data().err().unwrap().to_string();
    assert!(e.contains("not been initialized"), "{e}");
    net.initialize(Some(Arc::new(Constant::new(0.5))), cpu(0), false).unwrap();
    let e = w.data().err().unwrap().to_string();
    assert!(e.contains("deferred"), "{e}");
    // bias has its own initializer (zeros) and a known shape: done at once
    let b = p.get("deferred_dense0_bias").unwrap();
    assert_eq!(b.data().unwrap().to_vec::<f32>().unwrap(), vec![0.0; 3]);
    // the forward pass supplies the missing dimension
    w.infer_shape("dense0", &[3, 4]).unwrap();
    assert_eq!(w.data().unwrap().to_vec::<f32>().unwrap(), vec![0.5; 12]);
    assert!(w.grad().unwrap().to_vec::<f32>().unwrap().iter().all(|&g| g == 0.0));
    // a conflicting shape is refused
    assert!(w.infer_shape("dense0", &[3, 5]).is_err());
    // Xavier refuses vectors, as MXNet
    let v = Parameter::new("v_weight", &[4]);
    assert!(v.initialize(Some(Arc::new(Xavier::default())), cpu(0), false).is_err());
    // shapes that can never be completed
    let e = Parameter::new("x", &[]).with_allow_deferred_init(false);
    assert!(e.initialize(None, cpu(0), false).is_err());
}

#[test]
fn mlp_fixture_loads_by_name_and_round_trips() {
    let net = mlp();
    // export files hold arg:/aux: names; ParameterDict.load strips them (restore_prefix '')
    net.collect_params().unwrap().load(fixture("mlp-0000.params"), cpu(0), false, false, "").unwrap();
    let (arrays, names) = mixnet::ndarray::load(fixture("mlp-0000.params")).unwrap();
    let params = net.collect_params().unwrap();
    for (n, a) in names.iter().zip(&arrays) {
        let p = params.get(n.trim_start_matches("arg:")).unwrap();
        assert_eq!(p.data().unwrap().to_vec::<f32>().unwrap(), a.to_vec::<f32>().unwrap(), "{n}");
        assert_eq!(p.shape(), a.shape().to_vec());
    }
    // save_parameters writes MXNet's structured names; load them into another net
    let path = tmp("mlp.params");
    net.save_parameters(&path).unwrap();
    let (_, saved) = mixnet::ndarray::load(&path).unwrap();
    assert_eq!(saved, ["0.weight", "0.bias", "1.weight", "1.bias", "2.weight", "2.bias"]);
    let other = mlp();
    other.load_parameters(&path, LoadOptions::default()).unwrap();
    for ((_, a), (_, b)) in
        net.collect_params_with_prefix().iter().zip(other.collect_params_with_prefix().iter())
    {
        assert_eq!(a.data().unwrap().to_vec::<f32>().unwrap(), b.data().unwrap().to_vec::<f32>().unwrap());
    }
    // wrong files are errors naming the parameter
    let small = {
        let mut n = HybridSequential::with_prefix("small_");
        let _s = n.name_scope();
        n.add(Dense::new(5).in_units(784));
        drop(_s);
        n
    };
    let e = small.load_parameters(&path, LoadOptions::default()).err().unwrap().to_string();
    assert!(e.contains("0.weight") && e.contains("shape"), "{e}");
    let e =
        small.load_parameters(&fixture("mlp-io.params"), LoadOptions::default()).err().unwrap().to_string();
    assert!(e.contains("missing"), "{e}");
    let opts = LoadOptions { allow_missing: true, ignore_extra: true, ..Default::default() };
    small.load_parameters(&fixture("mlp-io.params"), opts).unwrap();
    std::fs::write(tmp("garbage.params"), b"not a params file").unwrap();
    assert!(small.load_parameters(&tmp("garbage.params"), LoadOptions::default()).is_err());
}

fn assert_close(got: &NDArray, want: &NDArray, tol: f64) {
    assert_eq!(got.shape(), want.shape());
    let (g, w) = (got.to_f64_vec().unwrap(), want.to_f64_vec().unwrap());
    let worst = g.iter().zip(&w).map(|(a, b)| (a - b).abs() / b.abs().max(1.0)).fold(0.0, f64::max);
    assert!(worst <= tol, "max relative difference {worst:e} > {tol:e}\n got {g:?}\nwant {w:?}");
}

#[test]
fn mlp_fixture_reproduces_mxnet_output() {
    let net = mlp();
    net.collect_params().unwrap().load(fixture("mlp-0000.params"), cpu(0), false, false, "").unwrap();
    let (x, want) = io("mlp");
    assert_close(&net.call(&x).unwrap(), &want, 1e-5);
}

#[test]
fn lenet_bn_fixture_reproduces_mxnet_output() {
    let net = lenet_bn();
    // deferred shapes ((120, 0) in the symbol) are completed by loading
    net.collect_params().unwrap().load(fixture("lenet_bn-0000.params"), cpu(0), false, false, "").unwrap();
    let (x, want) = io("lenet_bn");
    assert_close(&net.call(&x).unwrap(), &want, 1e-5);
    // and through save_parameters / load_parameters (structured names, aux states included)
    let path = tmp("lenet.params");
    net.save_parameters(&path).unwrap();
    let other = lenet_bn();
    other.load_parameters(&path, LoadOptions::default()).unwrap();
    assert_close(&other.call(&x).unwrap(), &want, 1e-5);
}

/// `y = x ⊙ w` with one parameter `w`: a custom block.
struct Scale {
    base: BlockBase,
    w: Parameter,
}

impl Scale {
    fn new(prefix: &str, n: usize) -> Self {
        let base = BlockBase::new(Some(prefix), "scale");
        let w = base.param("weight", &[n]);
        Scale { base, w }
    }
}

impl Block for Scale {
    fn base(&self) -> &BlockBase {
        &self.base
    }
    fn forward(&self, x: &NDArray) -> Result<NDArray> {
        Ok(mixnet::imperative::invoke("elemwise_mul", &[x.clone(), self.w.data()?], &[])?.remove(0))
    }
    fn params(&self) -> Vec<(String, Parameter)> {
        vec![("weight".into(), self.w.clone())]
    }
    mixnet::impl_as_dyn!();
}

#[test]
fn two_sgd_momentum_steps_match_hand_computation() {
    let a = Scale::new("a_", 3);
    let b = Scale::new("b_", 3);
    a.initialize(Some(Arc::new(Constant::new(1.0))), cpu(0), false).unwrap();
    b.initialize(None, cpu(0), false).unwrap();
    a.w.set_data(&NDArray::from_slice(&[1.0f32, 2.0, -3.0], [3]).unwrap()).unwrap();
    b.w.set_data(&NDArray::from_slice(&[0.5f32, 0.25, 4.0], [3]).unwrap()).unwrap();
    b.w.set_lr_mult(0.5);
    b.w.set_wd_mult(0.0);
    let mut params = a.collect_params().unwrap();
    params.update(&b.collect_params().unwrap()).unwrap();
    let clash = Parameter::new("a_weight", &[3]);
    assert!(params.insert(clash).is_err(), "two parameters under one name");
    let bw = b.w.clone();

    let (lr, momentum, wd, batch) = (0.1, 0.9, 0.01, 2usize);
    let mut trainer =
        Trainer::with_optimizer(&params, "sgd", &[("learning_rate", lr), ("momentum", momentum), ("wd", wd)])
            .unwrap();
    let xs = [[0.5f32, -1.0, 2.0], [1.0, 1.0, -1.0]];
    let mut w = [[1.0f64, 2.0, -3.0], [0.5, 0.25, 4.0]];
    let mults = [(1.0, 1.0), (0.5, 0.0)];
    let mut mom = [[0.0f64; 3]; 2];
    for x in xs {
        let xa = NDArray::from_slice(&x, [3]).unwrap();
        {
            let _rec = autograd::record(true);
            let ya = mixnet::imperative::invoke("elemwise_mul", &[xa.clone(), a.w.data().unwrap()], &[])
                .unwrap()
                .remove(0);
            let yb = mixnet::imperative::invoke("elemwise_mul", &[xa.clone(), bw.data().unwrap()], &[])
                .unwrap()
                .remove(0);
            drop(_rec);
            autograd::backward(&[ya, yb], &[]).unwrap();
        }
        trainer.step(batch, false).unwrap();
        // by hand: mom = momentum·mom − lr·lr_mult·(grad/batch + wd·wd_mult·w); w += mom
        for p in 0..2 {
            let (lm, wm) = mults[p];
            for i in 0..3 {
                let g = x[i] as f64 / batch as f64;
                mom[p][i] = momentum * mom[p][i] - lr * lm * (g + wd * wm * w[p][i]);
                w[p][i] += mom[p][i];
            }
        }
    }
    for (p, param) in [&a.w, &bw].into_iter().enumerate() {
        let got = param.data().unwrap().to_f64_vec().unwrap();
        for i in 0..3 {
            assert!((got[i] - w[p][i]).abs() < 1e-6, "param {p}[{i}]: {} vs {}", got[i], w[p][i]);
        }
    }
    // no backward since the last step: stale gradient
    let e = trainer.step(batch, false).err().unwrap().to_string();
    assert!(e.contains("has not been updated"), "{e}");
    trainer.step(batch, true).unwrap();
    // states round-trip through a file
    let path = tmp("trainer.states");
    trainer.save_states(&path).unwrap();
    let mut t2 =
        Trainer::with_optimizer(&params, "sgd", &[("learning_rate", lr), ("momentum", momentum)]).unwrap();
    t2.load_states(&path).unwrap();
    assert_eq!(t2.optimizer().base().num_update, 2);
    assert!(Trainer::with_optimizer(&params, "sgd", &[("learning_rat", 0.1)]).is_err());
    assert!(Trainer::with_optimizer(&params, "adadeltaa", &[]).is_err());
    assert!(Trainer::with_optimizer(&params, "adadelta", &[]).is_ok());
}

#[test]
fn softmax_cross_entropy_loss_values() {
    let pred = NDArray::from_slice(&[1.0f32, 2.0, 3.0, 0.0, 0.0, 0.0], [2, 3]).unwrap();
    let label = NDArray::from_slice(&[2.0f32, 0.0], [2]).unwrap();
    let l = SoftmaxCrossEntropyLoss::new().call(&pred, &label).unwrap();
    let lse = (1f64.exp() + 2f64.exp() + 3f64.exp()).ln();
    let want = [lse - 3.0, 3f64.ln()];
    let got = l.to_f64_vec().unwrap();
    assert_eq!(l.shape().to_vec(), vec![2]);
    for i in 0..2 {
        assert!((got[i] - want[i]).abs() < 1e-6, "{got:?} vs {want:?}");
    }
    let _ = Zero.dumps();
}

/// A hybridized `HybridSequential` runs each Conv → BatchNorm (→ ReLU) as one `_sg_conv`
/// when predicting: the output matches the layers run one by one (and differs in rounding,
/// which shows the fused operator ran). A convolution with its own activation is not
/// fused. Recording for training, it runs the layers themselves (BatchNorm on batch
/// statistics), so outputs and gradients equal those without hybridize.
/// Moving statistics and affine parameters of every BatchNorm in `net` away from their
/// 0/1 initial values.
fn move_batch_norm_stats(net: &HybridSequential) {
    for (name, p) in net.collect_params().unwrap().iter() {
        if name.contains("batchnorm") {
            let n = p.shape()[0];
            let offset = if name.ends_with("var") || name.ends_with("gamma") { 1.5 } else { 0.0 };
            let v: Vec<f32> = (0..n).map(|i| offset + ((i * 5) % 7) as f32 / 10.0 - 0.3).collect();
            p.set_data(&NDArray::from_vec(v, [n]).unwrap()).unwrap();
        }
    }
}

#[test]
fn hybridized_conv_batch_norm_fuses_when_predicting() {
    let mut net = HybridSequential::new();
    net.add(Conv2D::new(8, 3).padding(1));
    net.add(BatchNorm::new());
    net.add(Activation::new("relu"));
    net.add(Conv2D::new(6, 1).use_bias(false));
    net.add(BatchNorm::new().scale(false));
    net.add(MaxPool2D::new(2));
    net.add(Conv2D::new(4, 3).activation("relu"));
    net.add(BatchNorm::new());
    net.add(Conv2D::new(5, 1));
    net.add(BatchNorm::new());
    mixnet::random::seed(3).unwrap();
    net.initialize(None, cpu(0), false).unwrap();
    let x = NDArray::from_vec(
        (0..2 * 3 * 10 * 10).map(|i| ((i * 37) % 23) as f32 / 11.0 - 1.0).collect(),
        [2, 3, 10, 10],
    )
    .unwrap();
    net.call(&x).unwrap();
    move_batch_norm_stats(&net);
    let values = |y: &NDArray| y.to_vec::<f32>().unwrap();
    let layers = values(&net.call(&x).unwrap());
    net.hybridize(true);
    let fused = values(&net.call(&x).unwrap());
    assert_eq!(fused.len(), layers.len());
    for (i, (a, b)) in fused.iter().zip(&layers).enumerate() {
        assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "at {i}: {a} vs {b}");
    }
    assert_ne!(fused, layers, "the fused operator rounds differently");
    // Training: the same operators as without hybridize, gradients included.
    let train = |hybrid: bool| {
        net.hybridize(hybrid);
        let y = {
            let _rec = autograd::record(true);
            net.call(&x).unwrap()
        };
        autograd::backward(&[y.clone()], &[]).unwrap();
        let w = net.collect_params().unwrap().iter().next().unwrap().1.grad().unwrap();
        (values(&y), values(&w))
    };
    assert_eq!(train(true), train(false));
}

/// A hybridized 3×3 convolution with Winograd's path keeps its transformed weight between
/// calls, and transforms again when the weight is written in place or replaced: the
/// output always follows the current weight (checked against the layers run one by one).
#[test]
fn hybridized_winograd_filters_follow_the_weight() {
    let mut net = HybridSequential::new();
    net.add(Conv2D::new(32, 3).padding(1).use_bias(false));
    net.add(BatchNorm::new());
    net.add(Activation::new("relu"));
    mixnet::random::seed(5).unwrap();
    net.initialize(None, cpu(0), false).unwrap();
    let x = NDArray::from_vec(
        (0..32 * 8 * 8).map(|i| ((i * 29) % 31) as f32 / 15.0 - 1.0).collect(),
        [1, 32, 8, 8],
    )
    .unwrap();
    let values = |y: &NDArray| y.to_vec::<f32>().unwrap();
    let close = |a: &[f32], b: &[f32]| {
        let top = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(top > 0.0);
        for (i, (a, b)) in a.iter().zip(b).enumerate() {
            assert!((a - b).abs() <= 1e-4 * top, "at {i}: {a} vs {b}");
        }
    };
    let weight = net.collect_params().unwrap().iter().find(|(n, _)| n.ends_with("weight")).unwrap().1.clone();
    let check = |net: &mut HybridSequential| {
        net.hybridize(false);
        let layers = values(&net.call(&x).unwrap());
        net.hybridize(true);
        let fused = values(&net.call(&x).unwrap());
        close(&fused, &layers);
        assert!(values(&net.call(&x).unwrap()) == fused, "the kept filters give the same output");
        fused
    };
    let first = check(&mut net);
    // Written in place (as an optimizer does), then replaced by a new array.
    let w = weight.data().unwrap();
    let doubled: Vec<f32> = values(&w).iter().map(|v| v * -2.0).collect();
    w.assign(&NDArray::from_vec(doubled, w.shape().clone()).unwrap()).unwrap();
    let second = check(&mut net);
    assert!(first != second);
    let halved: Vec<f32> = values(&w).iter().map(|v| v * 0.5).collect();
    weight.set_data(&NDArray::from_vec(halved, w.shape().clone()).unwrap()).unwrap();
    let third = check(&mut net);
    assert!(second != third);
}

/// `forward_residual` is `relu(body(x) + residual)`: hybridized and predicting, the body's
/// last Convolution → BatchNorm takes the residual in (one `_sg_conv`), with the same
/// result up to rounding; recording, or not hybridized, it runs the layers and the join.
#[test]
fn forward_residual_fuses_the_join() {
    let mut body = HybridSequential::new();
    body.add(Conv2D::new(32, 3).padding(1).use_bias(false));
    body.add(BatchNorm::new());
    body.add(Activation::new("relu"));
    body.add(Conv2D::new(16, 1));
    body.add(BatchNorm::new());
    mixnet::random::seed(7).unwrap();
    body.initialize(None, cpu(0), false).unwrap();
    let x = NDArray::from_vec(
        (0..2 * 16 * 6 * 6).map(|i| ((i * 13) % 17) as f32 / 8.0 - 1.0).collect(),
        [2, 16, 6, 6],
    )
    .unwrap();
    let residual = NDArray::from_vec(
        (0..2 * 16 * 6 * 6).map(|i| ((i * 7) % 11) as f32 / 5.0 - 1.0).collect(),
        [2, 16, 6, 6],
    )
    .unwrap();
    body.call(&x).unwrap();
    move_batch_norm_stats(&body);
    let values = |y: &NDArray| y.to_vec::<f32>().unwrap();
    for relu in [true, false] {
        body.hybridize(false);
        let y = values(&body.call(&x).unwrap());
        let r = values(&residual);
        let want: Vec<f32> =
            y.iter().zip(&r).map(|(a, b)| if relu { (a + b).max(0.0) } else { a + b }).collect();
        assert_eq!(values(&body.forward_residual(&x, &residual, relu).unwrap()), want);
        body.hybridize(true);
        let fused = values(&body.forward_residual(&x, &residual, relu).unwrap());
        for (i, (a, b)) in fused.iter().zip(&want).enumerate() {
            assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "relu={relu} at {i}: {a} vs {b}");
        }
        assert!(fused != want, "the fused operator rounds differently");
        if relu {
            assert!(fused.contains(&0.0) && fused.iter().any(|&v| v > 0.0));
        }
    }
    // Recording: the layers and the join, as without hybridize.
    let record = |hybrid: bool| {
        body.hybridize(hybrid);
        let _rec = autograd::record(true);
        values(&body.forward_residual(&x, &residual, true).unwrap())
    };
    assert!(record(true) == record(false));
}
