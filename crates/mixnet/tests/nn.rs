//! The nn family beyond the goldens: random and mode-dependent behaviour (rrelu, Dropout,
//! BatchNorm's moving statistics), hidden outputs, attribute errors, dtypes.

use mixnet::imperative::invoke;
use mixnet::{autograd, f16, DType, NDArray, NativeType};

fn arr<T: NativeType>(v: &[T], shape: &[usize]) -> NDArray {
    NDArray::from_slice(v, shape).unwrap()
}

fn run(op: &str, xs: &[NDArray], attrs: &[(&str, &str)]) -> Vec<NDArray> {
    invoke(op, xs, attrs).unwrap_or_else(|e| panic!("{op}: {e}"))
}

fn err(op: &str, xs: &[NDArray], attrs: &[(&str, &str)]) -> String {
    match invoke(op, xs, attrs) {
        Ok(_) => panic!("{op} accepted {attrs:?}"),
        Err(e) => e.to_string(),
    }
}

fn f32s(x: &NDArray) -> Vec<f32> {
    x.to_vec::<f32>().unwrap()
}

fn close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "element {i}: {x} vs {y}");
    }
}

#[test]
fn activation_errors_and_half() {
    let x = arr(&[-1.0f32, 2.0], &[2]);
    let e = err("Activation", std::slice::from_ref(&x), &[("act_type", "swish")]);
    assert!(e.contains("Activation") && e.contains("swish"), "{e}");
    let e = err("Activation", std::slice::from_ref(&x), &[]);
    assert!(e.contains("act_type"), "{e}");
    let xi = arr(&[1i32, 2], &[2]);
    let e = err("Activation", &[xi], &[("act_type", "relu")]);
    assert!(e.contains("float"), "{e}");
    let h = arr(&[f16::from_f32(-1.0), f16::from_f32(0.5)], &[2]);
    let y = run("Activation", &[h], &[("act_type", "sigmoid")]).remove(0);
    assert_eq!(y.dtype(), DType::F16);
    let v = y.to_f64_vec().unwrap();
    assert!((v[1] - 0.6225).abs() < 1e-3, "{v:?}");
}

#[test]
fn rrelu_random_in_training_mean_in_inference() {
    let x = arr(&[-1.0f32; 1000], &[10, 100]);
    let outs = run("LeakyReLU", std::slice::from_ref(&x), &[("act_type", "rrelu")]);
    assert_eq!(outs.len(), 2, "rrelu returns output and mask");
    let (y, mask) = (f32s(&outs[0]), f32s(&outs[1]));
    let mean = (0.125 + 0.334) / 2.0;
    assert!(y.iter().all(|&v| (v + mean).abs() < 1e-6), "inference slope is the mean");
    assert!(mask.iter().all(|&m| (m - mean).abs() < 1e-6));
    let outs = {
        let _t = autograd::train_mode();
        run(
            "LeakyReLU",
            std::slice::from_ref(&x),
            &[("act_type", "rrelu"), ("lower_bound", "0.1"), ("upper_bound", "0.3")],
        )
    };
    let (y, mask) = (f32s(&outs[0]), f32s(&outs[1]));
    assert!(mask.iter().all(|&m| (0.1..0.3).contains(&m)));
    let spread =
        mask.iter().cloned().fold(f32::MIN, f32::max) - mask.iter().cloned().fold(f32::MAX, f32::min);
    assert!(spread > 0.15, "slopes vary: {spread}");
    close(&y, &mask.iter().map(|m| -m).collect::<Vec<_>>(), 1e-6);
}

#[test]
fn prelu_shared_gamma_gradient() {
    let x = arr(&[-1.0f32, 2.0, -3.0, 4.0], &[2, 2]);
    let g = arr(&[0.5f32], &[1]);
    x.attach_grad().unwrap();
    g.attach_grad().unwrap();
    let y = {
        let _r = autograd::record(true);
        run("LeakyReLU", &[x.clone(), g.clone()], &[("act_type", "prelu")]).remove(0)
    };
    close(&f32s(&y), &[-0.5, 2.0, -1.5, 4.0], 1e-6);
    autograd::backward(&[y], &[]).unwrap();
    close(&f32s(&x.grad().unwrap()), &[0.5, 1.0, 0.5, 1.0], 1e-6);
    close(&f32s(&g.grad().unwrap()), &[-4.0], 1e-6);
    let bad = arr(&[0.5f32; 3], &[3]);
    let e = err("LeakyReLU", &[x, bad], &[("act_type", "prelu")]);
    assert!(e.contains("gamma"), "{e}");
}

#[test]
fn softmax_length_axis_and_errors() {
    let x = arr(&[1.0f32, 2.0, 3.0, 1.0, 1.0, 1.0], &[2, 3]);
    let len = arr(&[2i64, 3], &[2]);
    x.attach_grad().unwrap();
    let y = {
        let _r = autograd::record(true);
        run("softmax", &[x.clone(), len.clone()], &[("use_length", "True")]).remove(0)
    };
    let v = f32s(&y);
    let p = 1.0 / (1.0 + 1f32.exp());
    close(&v, &[p, 1.0 - p, 0.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0], 1e-6);
    autograd::backward(&[y], &[arr(&[1.0f32, 0.0, 5.0, 1.0, 0.0, 0.0], &[2, 3])]).unwrap();
    let g = f32s(&x.grad().unwrap());
    assert_eq!(g[2], 0.0, "no gradient past the length");
    close(&g[..2], &[p * (1.0 - p), -p * (1.0 - p)], 1e-6);
    // log_softmax = log(softmax); softmin(x) = softmax(-x).
    let ls = f32s(&run("log_softmax", std::slice::from_ref(&x), &[("axis", "0")]).remove(0));
    let s = f32s(&run("softmax", std::slice::from_ref(&x), &[("axis", "0")]).remove(0));
    close(&ls, &s.iter().map(|v| v.ln()).collect::<Vec<_>>(), 1e-6);
    let neg = run("negative", std::slice::from_ref(&x), &[]).remove(0);
    close(
        &f32s(&run("softmin", std::slice::from_ref(&x), &[]).remove(0)),
        &f32s(&run("softmax", &[neg], &[]).remove(0)),
        1e-6,
    );
    let e = err("softmax", std::slice::from_ref(&x), &[("axis", "2")]);
    assert!(e.contains("softmax") && e.contains("axis"), "{e}");
    let e = err("softmax", &[x.clone(), arr(&[2i64, 3, 1], &[3])], &[("use_length", "True")]);
    assert!(e.contains("length"), "{e}");
    let e = err("log_softmax", &[x.clone(), len], &[("use_length", "True")]);
    assert!(e.contains("softmax only"), "{e}");
    let y64 = run("softmax", std::slice::from_ref(&x), &[("dtype", "float64")]).remove(0);
    assert_eq!(y64.dtype(), DType::F64);
}

#[test]
fn losses_without_goldens() {
    // softmax_cross_entropy: sum of -log p[label]; gradient (p - onehot) * head.
    let x = arr(&[1.0f32, 2.0, 3.0, 0.0, 0.0, 0.0], &[2, 3]);
    let l = arr(&[2.0f32, 0.0], &[2]);
    x.attach_grad().unwrap();
    let y = {
        let _r = autograd::record(true);
        run("softmax_cross_entropy", &[x.clone(), l.clone()], &[]).remove(0)
    };
    let e: f32 = [1f32, 2.0, 3.0].iter().map(|v| v.exp()).sum();
    let want = -(3f32.exp() / e).ln() + 3f32.ln();
    close(&f32s(&y), &[want], 1e-5);
    autograd::backward(&[y], &[arr(&[2.0f32], &[1])]).unwrap();
    let g = f32s(&x.grad().unwrap());
    close(&g[3..], &[2.0 * (1.0 / 3.0 - 1.0), 2.0 / 3.0, 2.0 / 3.0], 1e-5);
    // SVMOutput (L2): identity forward; gradient by MXNet's L2_SVM.
    let s = arr(&[0.5f32, -2.0], &[1, 2]);
    s.attach_grad().unwrap();
    let y = {
        let _r = autograd::record(true);
        run("SVMOutput", &[s.clone(), arr(&[0.0f32], &[1])], &[]).remove(0)
    };
    close(&f32s(&y), &[0.5, -2.0], 0.0);
    autograd::backward(&[y], &[]).unwrap();
    // label column: -2 (m - s) = -1; other: -2 (m + s) * -1 where m > -s: 1 > 2 is false -> 0
    close(&f32s(&s.grad().unwrap()), &[-1.0, 0.0], 1e-6);
    let e = err("SoftmaxOutput", &[x.clone(), arr(&[1.0f32; 3], &[3])], &[]);
    assert!(e.contains("label shape"), "{e}");
    let e = err("SoftmaxOutput", &[x, l], &[("normalization", "all")]);
    assert!(e.contains("normalization"), "{e}");
}

#[test]
fn dropout_scales_kept_elements_and_hides_its_mask() {
    let x = arr(&vec![1.0f32; 20000], &[100, 200]);
    let outs = run("Dropout", std::slice::from_ref(&x), &[("p", "0.3")]);
    assert_eq!(outs.len(), 1, "the mask is hidden");
    assert!(f32s(&outs[0]).iter().all(|&v| v == 1.0), "identity in inference");
    x.attach_grad().unwrap();
    let y = {
        let _r = autograd::record(true);
        run("Dropout", std::slice::from_ref(&x), &[("p", "0.3")]).remove(0)
    };
    let v = f32s(&y);
    let scale = 1.0 / 0.7f32;
    assert!(v.iter().all(|&e| e == 0.0 || (e - scale).abs() < 1e-6));
    let kept = v.iter().filter(|&&e| e != 0.0).count() as f64 / v.len() as f64;
    assert!((kept - 0.7).abs() < 0.02, "kept fraction {kept}");
    autograd::backward(std::slice::from_ref(&y), &[]).unwrap();
    assert_eq!(f32s(&x.grad().unwrap()), v, "gradient of x * mask with unit head is the mask");
    // axes: one draw per row shared along axis 1.
    let y = {
        let _t = autograd::train_mode();
        run("Dropout", std::slice::from_ref(&x), &[("p", "0.5"), ("axes", "(1,)")]).remove(0)
    };
    for row in f32s(&y).chunks(200) {
        assert!(row.iter().all(|&e| e == row[0]), "shared along axes");
    }
    let y = run("Dropout", std::slice::from_ref(&x), &[("p", "0.5"), ("mode", "always")]).remove(0);
    assert!(f32s(&y).contains(&0.0), "mode=always drops in inference too");
    let e = err("Dropout", std::slice::from_ref(&x), &[("p", "1.5")]);
    assert!(e.contains("Dropout") && e.contains("p="), "{e}");
}

#[test]
fn batch_norm_updates_moving_statistics_in_training_only() {
    let x = arr(&[1.0f32, 3.0, 5.0, 7.0], &[2, 2]); // channel 0: 1, 5; channel 1: 3, 7
    let ones = arr(&[1.0f32, 1.0], &[2]);
    let zeros = arr(&[0.0f32, 0.0], &[2]);
    let (mm, mv) = (arr(&[0.0f32, 0.0], &[2]), arr(&[1.0f32, 1.0], &[2]));
    let ins = [x.clone(), ones.clone(), zeros.clone(), mm.clone(), mv.clone()];
    let outs = run("BatchNorm", &ins, &[("momentum", "0.5"), ("output_mean_var", "True")]);
    assert_eq!(outs.len(), 3);
    assert_eq!(f32s(&mm), vec![0.0, 0.0], "inference leaves the moving mean");
    let outs = {
        let _t = autograd::train_mode();
        run("BatchNorm", &ins, &[("momentum", "0.5")])
    };
    assert_eq!(outs.len(), 1, "mean and var are hidden by default");
    close(&f32s(&mm), &[1.5, 2.5], 1e-6); // 0 * 0.5 + (3, 5) * 0.5
    close(&f32s(&mv), &[2.5, 2.5], 1e-6); // 1 * 0.5 + 4 * 0.5
    let e = err("BatchNorm", &[x, arr(&[1.0f32; 3], &[3]), zeros, mm, mv], &[]);
    assert!(e.contains("gamma"), "{e}");
}

/// FullyConnected and Convolution skip the data gradient when the data is not on the tape
/// (a network's first layer); the weight and bias gradients stay the same.
#[test]
fn weight_gradients_without_data_gradient() {
    type Case = (&'static str, Vec<usize>, Vec<usize>, Vec<(&'static str, &'static str)>);
    let cases: [Case; 2] = [
        ("FullyConnected", vec![4, 6], vec![3, 6], vec![("num_hidden", "3")]),
        ("Convolution", vec![2, 2, 5, 5], vec![3, 2, 3, 3], vec![("kernel", "(3, 3)"), ("num_filter", "3")]),
    ];
    for (op, xs, ws, attrs) in cases {
        let fill = |shape: &[usize], k: usize| {
            let n: usize = shape.iter().product();
            arr(&(0..n).map(|i| ((i * k) % 11) as f32 / 5.0 - 1.0).collect::<Vec<_>>(), shape)
        };
        let grads = |attach_data: bool| {
            let (x, w, b) = (fill(&xs, 3), fill(&ws, 7), fill(&[ws[0]], 5));
            for v in [&w, &b] {
                v.attach_grad().unwrap();
            }
            if attach_data {
                x.attach_grad().unwrap();
            }
            let y = {
                let _r = autograd::record(true);
                run(op, &[x.clone(), w.clone(), b.clone()], &attrs).remove(0)
            };
            autograd::backward(&[y], &[]).unwrap();
            (f32s(&w.grad().unwrap()), f32s(&b.grad().unwrap()), x.grad().is_some())
        };
        let (w_all, b_all, has) = grads(true);
        let (w_only, b_only, has_none) = grads(false);
        assert!(has && !has_none, "{op}");
        close(&w_only, &w_all, 1e-6);
        close(&b_only, &b_all, 1e-6);
    }
}

/// Mistakes with the normalization, sequence, embedding and upsampling layers come back
/// as errors naming the operator and what was wrong.
#[test]
fn normalization_sequence_embedding_errors() {
    let x = arr(&[0.5f32; 24], &[2, 3, 4]);
    let e = err("LayerNorm", &[x.clone(), arr(&[1f32; 3], &[3]), arr(&[0f32; 3], &[3])], &[]);
    assert!(e.contains("LayerNorm") && e.contains("gamma") && e.contains("(4,)"), "{e}");
    let e =
        err("GroupNorm", &[x.clone(), arr(&[1f32; 2], &[2]), arr(&[0f32; 2], &[2])], &[("num_groups", "2")]);
    assert!(e.contains("GroupNorm") && e.contains("divisible"), "{e}");
    let e = err("LRN", &[arr(&[1f32; 8], &[1, 2, 2, 2])], &[("nsize", "2")]);
    assert!(e.contains("LRN") && e.contains("odd"), "{e}");
    let e = err("L2Normalization", &[arr(&[1f32; 4], &[4])], &[("mode", "channel")]);
    assert!(e.contains("L2Normalization") && e.contains("3 dimensions"), "{e}");
    let e = err(
        "Embedding",
        &[arr(&[1f32, 2.0], &[2]), arr(&[0f32; 6], &[2, 3])],
        &[("input_dim", "3"), ("output_dim", "3")],
    );
    assert!(e.contains("Embedding") && e.contains("(3, 3)"), "{e}");
    let e = err("UpSampling", &[x.clone()], &[("scale", "2"), ("num_args", "1"), ("sample_type", "nearest")]);
    assert!(e.contains("UpSampling") && e.contains("4-D"), "{e}");
    let e = err("SequenceReverse", &[x.clone()], &[("axis", "1")]);
    assert!(e.contains("SequenceReverse") && e.contains("axis"), "{e}");
    // A length outside the sequence axis fails when the op runs, not with a panic.
    let y = run(
        "SequenceLast",
        &[x.clone(), arr(&[0f32, 1.0], &[2])],
        &[("use_sequence_length", "True"), ("axis", "1")],
    );
    let e = y[0].wait_to_read().unwrap_err().to_string();
    assert!(e.contains("SequenceLast") && e.contains("sequence_length 0"), "{e}");
}

/// Embedding clips indices into the vocabulary as MXNet does, and its gradient sums the
/// rows per index.
#[test]
fn embedding_clips_and_sums() {
    let w = arr(&[0f32, 1.0, 10.0, 11.0, 20.0, 21.0], &[3, 2]);
    w.attach_grad().unwrap();
    let idx = arr(&[-5f32, 1.0, 9.0, 1.0], &[4]);
    let y = {
        let _r = autograd::record(true);
        run("Embedding", &[idx, w.clone()], &[("input_dim", "3"), ("output_dim", "2")]).remove(0)
    };
    assert_eq!(f32s(&y), [0.0, 1.0, 10.0, 11.0, 20.0, 21.0, 10.0, 11.0]);
    autograd::backward(&[y], &[]).unwrap();
    assert_eq!(f32s(&w.grad().unwrap()), [1.0, 1.0, 2.0, 2.0, 1.0, 1.0]);
}

/// Values in [-1, 1) from a seed, deterministic.
fn wave(len: usize, seed: usize) -> Vec<f64> {
    (0..len).map(|i| ((i * 7919 + seed * 104_729) % 2000) as f64 / 1000.0 - 1.0).collect()
}

/// `_sg_conv` (what a hybridized network runs for Convolution → BatchNorm → ReLU when
/// predicting) gives what the three operators give one after another: with and without a
/// bias and the ReLU, with gamma fixed and learned, grouped and strided, f32 and f64, on
/// the gathering, pointwise and im2col paths of the convolution.
#[test]
fn fused_conv_batch_norm_matches_the_layers() {
    /// (batch, in, filters, spatial, kernel, stride, pad, groups)
    type Case = (usize, usize, usize, [usize; 2], &'static str, &'static str, &'static str, usize);
    let cases: [Case; 5] = [
        (1, 8, 16, [16, 20], "(3,3)", "(1,1)", "(1,1)", 1),
        (2, 6, 12, [9, 15], "(3,3)", "(2,2)", "(1,1)", 3),
        (1, 32, 40, [7, 7], "(1,1)", "(1,1)", "(0,0)", 1),
        (1, 4, 8, [5, 5], "(3,3)", "(1,1)", "(1,1)", 1),
        (3, 5, 7, [20, 36], "(7,7)", "(2,2)", "(3,3)", 1),
    ];
    for (batch, c, f, [h, w], kernel, stride, pad, groups) in cases {
        let ks: usize = if kernel == "(1,1)" {
            1
        } else if kernel == "(3,3)" {
            9
        } else {
            49
        };
        for dtype in [DType::F32, DType::F64] {
            let nd = |v: Vec<f64>, shape: &[usize]| arr(&v, shape).astype(dtype).unwrap();
            let x = nd(wave(batch * c * h * w, 1), &[batch, c, h, w]);
            let wt = nd(
                wave(f * (c / groups) * ks, 2).iter().map(|v| v * 0.3).collect(),
                &[f, c / groups, ks.isqrt(), ks.isqrt()],
            );
            let bias = nd(wave(f, 3), &[f]);
            let gamma = nd(wave(f, 4).iter().map(|v| v + 1.5).collect(), &[f]);
            let beta = nd(wave(f, 5), &[f]);
            let mean = nd(wave(f, 6).iter().map(|v| v * 0.5).collect(), &[f]);
            let var = nd(wave(f, 7).iter().map(|v| v + 1.2).collect(), &[f]);
            let (nf, ng) = (f.to_string(), groups.to_string());
            for (no_bias, fix_gamma, relu) in
                [("True", "False", "True"), ("False", "True", "False"), ("False", "False", "True")]
            {
                let conv_attrs = [
                    ("kernel", kernel),
                    ("stride", stride),
                    ("pad", pad),
                    ("num_filter", nf.as_str()),
                    ("num_group", ng.as_str()),
                    ("no_bias", no_bias),
                ];
                let mut ins = vec![x.clone(), wt.clone()];
                if no_bias == "False" {
                    ins.push(bias.clone());
                }
                let y = run("Convolution", &ins, &conv_attrs).remove(0);
                let bn_attrs = [("eps", "0.001"), ("fix_gamma", fix_gamma)];
                let bn_ins = [y, gamma.clone(), beta.clone(), mean.clone(), var.clone()];
                let mut want = run("BatchNorm", &bn_ins, &bn_attrs).remove(0);
                if relu == "True" {
                    want = run("Activation", &[want], &[("act_type", "relu")]).remove(0);
                }
                ins.extend([gamma.clone(), beta.clone(), mean.clone(), var.clone()]);
                let mut attrs = conv_attrs.to_vec();
                attrs.extend([("eps", "0.001"), ("fix_gamma", fix_gamma), ("with_act", relu)]);
                let got = run("_sg_conv", &ins, &attrs).remove(0);
                assert_eq!(got.shape(), want.shape());
                assert_eq!(got.dtype(), dtype);
                let f64s = |a: &NDArray| a.astype(DType::F64).unwrap().to_vec::<f64>().unwrap();
                let (g, wv) = (f64s(&got), f64s(&want));
                let tol = if dtype == DType::F32 { 1e-4 } else { 1e-10 };
                for (i, (a, b)) in g.iter().zip(&wv).enumerate() {
                    assert!((a - b).abs() <= tol * (1.0 + b.abs()), "{dtype} {kernel} groups={groups} no_bias={no_bias} fix_gamma={fix_gamma} relu={relu} at {i}: {a} vs {b}");
                }
                if relu == "True" {
                    assert!(g.contains(&0.0) && g.iter().any(|&v| v > 0.0));
                }
            }
        }
    }
    // A BatchNorm parameter of the wrong length is an error naming the operator and shapes.
    let x = arr(&[0.5f32; 2 * 4 * 4], &[1, 2, 4, 4]);
    let wt = arr(&[0.1f32; 3 * 2 * 9], &[3, 2, 3, 3]);
    let s = arr(&[1.0f32; 2], &[2]);
    let attrs = [("kernel", "(3,3)"), ("num_filter", "3"), ("no_bias", "True")];
    let e = err("_sg_conv", &[x, wt, s.clone(), s.clone(), s.clone(), s], &attrs);
    assert!(e.contains("_sg_conv") && e.contains("gamma") && e.contains("(2,)") && e.contains("(3,)"), "{e}");
}

/// `_sg_conv` with its weight transformed ahead of time by `_winograd_filters` gives the
/// same output as with the weight alone (both take Winograd's path), and close to the
/// layers run one by one; filters that do not fit are errors naming the operator.
#[test]
fn sg_conv_takes_winograd_filters() {
    let (c, f, h) = (32, 64, 12);
    let x = arr(&wave(2 * c * h * h, 1).iter().map(|&v| v as f32).collect::<Vec<_>>(), &[2, c, h, h]);
    let wt = arr(&wave(f * c * 9, 2).iter().map(|&v| v as f32 * 0.1).collect::<Vec<_>>(), &[f, c, 3, 3]);
    let stat = |seed: usize, add: f64| {
        arr(&wave(f, seed).iter().map(|&v| (v + add) as f32).collect::<Vec<_>>(), &[f])
    };
    let stats = [stat(4, 1.5), stat(5, 0.0), stat(6, 0.0), stat(7, 1.2)];
    let nf = f.to_string();
    let attrs = [
        ("kernel", "(3,3)"),
        ("pad", "(1,1)"),
        ("num_filter", nf.as_str()),
        ("no_bias", "True"),
        ("fix_gamma", "False"),
        ("with_act", "True"),
    ];
    let mut ins = vec![x.clone(), wt.clone()];
    ins.extend(stats.iter().cloned());
    let plain = run("_sg_conv", &ins, &attrs).remove(0).to_vec::<f32>().unwrap();
    let filters = run("_winograd_filters", std::slice::from_ref(&wt), &[]).remove(0);
    assert_eq!(filters.ndim(), 1);
    let mut with = ins.clone();
    with.push(filters.clone());
    let mut wattrs = attrs.to_vec();
    wattrs.push(("winograd", "True"));
    let got = run("_sg_conv", &with, &wattrs).remove(0).to_vec::<f32>().unwrap();
    assert_eq!(got, plain);
    // The layers one by one (im2col), within Winograd's rounding.
    let y = run("Convolution", &[x, wt.clone()], &attrs[..4]).remove(0);
    let mut bn_ins = vec![y];
    bn_ins.extend(stats.iter().cloned());
    let y = run("BatchNorm", &bn_ins, &[("eps", "0.001"), ("fix_gamma", "False")]).remove(0);
    let want = run("Activation", &[y], &[("act_type", "relu")]).remove(0).to_vec::<f32>().unwrap();
    let top = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
        assert!((a - b).abs() <= 1e-4 * top, "at {i}: {a} vs {b}");
    }
    assert!(got.contains(&0.0) && got.iter().any(|&v| v > 0.0));
    // Filters of the wrong length, and weights with no Winograd path.
    let mut bad = ins.clone();
    bad.push(arr(&[0.0f32; 7], &[7]));
    let e = err("_sg_conv", &bad, &wattrs);
    assert!(e.contains("_sg_conv") && e.contains("winograd_filters") && e.contains("(7,)"), "{e}");
    let e = err("_winograd_filters", &[wt.astype(DType::F64).unwrap()], &[]);
    assert!(e.contains("_winograd_filters") && e.contains("(64, 32, 3, 3)") && e.contains("float64"), "{e}");
    let e = err("_winograd_filters", &[arr(&[0.1f32; 64 * 32], &[64, 32, 1, 1])], &[]);
    assert!(e.contains("_winograd_filters") && e.contains("(64, 32, 1, 1)"), "{e}");
}

/// `_sg_conv` with `with_sum` adds its `sum` input after the BatchNorm and, with
/// `with_postsum_act`, applies the ReLU after that: a residual block's join, as MXNet's
/// `_sg_mkldnn_conv`. Checked against the operators one by one, for a pointwise and a
/// 3×3 convolution (Winograd's path, with and without its filters), in f32 and f64.
#[test]
fn sg_conv_adds_a_residual() {
    let (n, c, f, h) = (2, 32, 64, 9);
    for (kernel, pad, ks) in [("(1,1)", "(0,0)", 1), ("(3,3)", "(1,1)", 3)] {
        for dtype in [DType::F32, DType::F64] {
            let nd = |v: Vec<f64>, shape: &[usize]| arr(&v, shape).astype(dtype).unwrap();
            let x = nd(wave(n * c * h * h, 1), &[n, c, h, h]);
            let wt = nd(wave(f * c * ks * ks, 2).iter().map(|v| v * 0.1).collect(), &[f, c, ks, ks]);
            let stat = |seed: usize, add: f64| nd(wave(f, seed).iter().map(|v| v + add).collect(), &[f]);
            let stats = [stat(4, 1.5), stat(5, 0.0), stat(6, 0.0), stat(7, 1.2)];
            let sum = nd(wave(n * f * h * h, 8), &[n, f, h, h]);
            let nf = f.to_string();
            let conv_attrs =
                [("kernel", kernel), ("pad", pad), ("num_filter", nf.as_str()), ("no_bias", "True")];
            let y = run("Convolution", &[x.clone(), wt.clone()], &conv_attrs).remove(0);
            let mut bn_ins = vec![y];
            bn_ins.extend(stats.iter().cloned());
            let y = run("BatchNorm", &bn_ins, &[("eps", "0.001"), ("fix_gamma", "False")]).remove(0);
            let y = run("elemwise_add", &[y, sum.clone()], &[]).remove(0);
            let want = run("Activation", &[y], &[("act_type", "relu")]).remove(0);
            let mut ins = vec![x.clone(), wt.clone()];
            ins.extend(stats.iter().cloned());
            ins.push(sum.clone());
            let mut attrs = conv_attrs.to_vec();
            attrs.extend([
                ("eps", "0.001"),
                ("fix_gamma", "False"),
                ("with_sum", "True"),
                ("with_postsum_act", "True"),
            ]);
            let mut runs = vec![run("_sg_conv", &ins, &attrs).remove(0)];
            if dtype == DType::F32 && ks == 3 {
                let mut with = ins.clone();
                with.push(run("_winograd_filters", std::slice::from_ref(&wt), &[]).remove(0));
                let mut wattrs = attrs.clone();
                wattrs.push(("winograd", "True"));
                runs.push(run("_sg_conv", &with, &wattrs).remove(0));
            }
            let f64s = |a: &NDArray| a.astype(DType::F64).unwrap().to_vec::<f64>().unwrap();
            let w = f64s(&want);
            let top = w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let tol = if dtype == DType::F32 { 1e-4 * top } else { 1e-10 * top };
            for got in &runs {
                assert_eq!(got.shape(), want.shape());
                for (i, (a, b)) in f64s(got).iter().zip(&w).enumerate() {
                    assert!((a - b).abs() <= tol, "{dtype} {kernel} at {i}: {a} vs {b}");
                }
            }
            assert!(w.contains(&0.0) && w.iter().any(|&v| v > 0.0));
            // Errors: a sum of the wrong shape, and unsupported attribute combinations.
            let mut bad = ins.clone();
            bad[6] = nd(vec![0.0; 4], &[4]);
            let e = err("_sg_conv", &bad, &attrs);
            assert!(e.contains("_sg_conv") && e.contains("sum") && e.contains("(4,)"), "{e}");
            let mut both = conv_attrs.to_vec();
            both.extend([("with_act", "True"), ("with_sum", "True")]);
            let e = err("_sg_conv", &ins, &both);
            assert!(e.contains("_sg_conv") && e.contains("with_act") && e.contains("with_sum"), "{e}");
            let mut post = conv_attrs.to_vec();
            post.push(("with_postsum_act", "True"));
            let e = err("_sg_conv", &ins[..6], &post);
            assert!(e.contains("with_postsum_act"), "{e}");
        }
    }
}
