//! Optimizer updates beyond the goldens: the multi-tensor forms against the single ones,
//! multi-precision weights, float16/float64 weights, in-place states, AdamW's skipped
//! update, the helper ops, and the errors a user can provoke.

use mixnet::imperative::invoke;
use mixnet::{f16, DType, NDArray};

fn arr(v: &[f32]) -> NDArray {
    NDArray::from_slice(v, [v.len()]).unwrap()
}

fn copy(x: &NDArray) -> NDArray {
    invoke("_copy", std::slice::from_ref(x), &[]).unwrap().remove(0)
}

fn zeros_like(x: &NDArray) -> NDArray {
    NDArray::zeros(x.shape().clone(), x.dtype(), x.context()).unwrap()
}

fn vals(x: &NDArray) -> Vec<f64> {
    x.to_f64_vec().unwrap()
}

fn close(a: &[f64], b: &[f64], tol: f64) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{a:?} vs {b:?}");
    }
}

#[test]
fn sgd_mom_writes_mom_in_place() {
    let (w, g, mom) = (arr(&[1.0, 2.0]), arr(&[0.5, -1.0]), arr(&[0.1, 0.2]));
    let out = invoke("sgd_mom_update", &[w.clone(), g, mom.clone()], &[("lr", "0.1"), ("momentum", "0.9")])
        .unwrap()
        .remove(0);
    close(&vals(&mom), &[0.9 * 0.1 - 0.05, 0.9 * 0.2 + 0.1], 1e-6);
    close(&vals(&out), &[1.0 + 0.09 - 0.05, 2.0 + 0.18 + 0.1], 1e-6);
    assert_eq!(vals(&w), [1.0, 2.0], "weight itself is not an output");
}

#[test]
fn clip_gradient_zero_clips_everything() {
    // clip_gradient >= 0 turns clipping on, so 0 zeroes the gradient.
    let out = invoke("sgd_update", &[arr(&[1.0]), arr(&[5.0])], &[("lr", "1"), ("clip_gradient", "0")])
        .unwrap()
        .remove(0);
    assert_eq!(vals(&out), [1.0]);
}

#[test]
fn multi_sgd_matches_single() {
    let w = [arr(&[1.0, 2.0, 3.0]), arr(&[-1.0])];
    let g = [arr(&[0.5, 0.25, -1.0]), arr(&[2.0])];
    let m = [arr(&[0.1, 0.0, -0.1]), arr(&[0.3])];
    let mom_single: Vec<NDArray> = m.iter().map(copy).collect();
    let inputs = vec![w[0].clone(), g[0].clone(), m[0].clone(), w[1].clone(), g[1].clone(), m[1].clone()];
    let outs = invoke(
        "multi_sgd_mom_update",
        &inputs,
        &[("lrs", "(0.1, 0.2)"), ("wds", "(0.0, 0.01)"), ("momentum", "0.9"), ("num_weights", "2")],
    )
    .unwrap();
    assert_eq!(outs.len(), 2);
    for (i, (lr, wd)) in [("0.1", "0.0"), ("0.2", "0.01")].into_iter().enumerate() {
        let single = invoke(
            "sgd_mom_update",
            &[w[i].clone(), g[i].clone(), mom_single[i].clone()],
            &[("lr", lr), ("wd", wd), ("momentum", "0.9")],
        )
        .unwrap()
        .remove(0);
        close(&vals(&outs[i]), &vals(&single), 1e-6);
        close(&vals(&m[i]), &vals(&mom_single[i]), 1e-6);
    }
    let e = invoke(
        "multi_sgd_update",
        &inputs[..4],
        &[("lrs", "(0.1,)"), ("wds", "(0.0, 0.0)"), ("num_weights", "2")],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("multi_sgd_update") && e.contains("lrs"), "{e}");
}

#[test]
fn multi_precision_keeps_master_weights() {
    let w16 = NDArray::from_slice(&[f16::from_f32(1.0), f16::from_f32(-2.0)], [2]).unwrap();
    let g16 = NDArray::from_slice(&[f16::from_f32(0.5), f16::from_f32(1.0)], [2]).unwrap();
    let w32 = arr(&[1.0, -2.0]);
    let out =
        invoke("mp_sgd_update", &[w16, g16.clone(), w32.clone()], &[("lr", "0.001")]).unwrap().remove(0);
    assert_eq!(out.dtype(), DType::F16);
    close(&vals(&w32), &[1.0 - 0.0005, -2.0 - 0.001], 1e-7);
    // float16 weight with an fp32 master copy through multi_mp_sgd_update.
    let w16 = out.clone();
    let out2 =
        invoke("multi_mp_sgd_update", &[w16, g16, w32.clone()], &[("lrs", "(0.001,)"), ("wds", "(0,)")])
            .unwrap();
    close(&vals(&w32), &[1.0 - 0.001, -2.0 - 0.002], 1e-7);
    assert_eq!(out2[0].dtype(), DType::F16);
    // Master weights must be float32.
    let e = invoke("mp_sgd_update", &[arr(&[1.0]), arr(&[1.0]), out.slice(0, 1).unwrap()], &[("lr", "0.1")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("mp_sgd_update") && e.contains("weight32"), "{e}");
}

#[test]
fn half_and_double_weights() {
    let w = NDArray::from_slice(&[f16::from_f32(1.0)], [1]).unwrap();
    let g = NDArray::from_slice(&[f16::from_f32(1.0)], [1]).unwrap();
    let (m, v) = (zeros_like(&w), zeros_like(&w));
    let out = invoke("adam_update", &[w, g, m.clone(), v.clone()], &[("lr", "0.1")]).unwrap().remove(0);
    assert_eq!(out.dtype(), DType::F16);
    close(&vals(&m), &[0.1], 1e-3);
    close(&vals(&v), &[0.001], 1e-3);
    close(&vals(&out), &[1.0 - 0.1 * 0.1 / (0.001f64.sqrt() + 1e-8)], 1e-3);
    let w = NDArray::from_slice(&[1.0f64], [1]).unwrap();
    let out = invoke("sgd_update", &[w.clone(), w.clone()], &[("lr", "0.5")]).unwrap().remove(0);
    assert_eq!((out.dtype(), vals(&out)), (DType::F64, vec![0.5]));
}

#[test]
fn adamw_skips_on_bad_rescale() {
    for scale in [0.0f32, f32::NAN, f32::INFINITY] {
        let (w, g, m, v) = (arr(&[1.0, 2.0]), arr(&[1.0, 1.0]), arr(&[0.0, 0.0]), arr(&[0.0, 0.0]));
        let out =
            invoke("_adamw_update", &[w, g, m.clone(), v, arr(&[scale])], &[("lr", "0.1"), ("eta", "1")])
                .unwrap()
                .remove(0);
        assert_eq!(vals(&out), [1.0, 2.0]);
        assert_eq!(vals(&m), [0.0, 0.0]);
    }
}

#[test]
fn helpers() {
    let a = arr(&[1.0, 2.0]);
    let b = arr(&[3.0]);
    let s = invoke("multi_sum_sq", &[a.clone(), b.clone()], &[("num_arrays", "2")]).unwrap().remove(0);
    assert_eq!(vals(&s), [5.0, 9.0]);
    let f = invoke("multi_all_finite", &[a.clone(), b], &[("num_arrays", "2")]).unwrap().remove(0);
    assert_eq!((f.shape().dims().to_vec(), vals(&f)), (vec![1], vec![1.0]));
    let f = invoke("all_finite", &[arr(&[1.0, f32::INFINITY])], &[]).unwrap().remove(0);
    assert_eq!(vals(&f), [0.0]);
    let lrs = invoke(
        "multi_lars",
        &[arr(&[0.1, 0.1]), arr(&[4.0, 0.0]), arr(&[1.0, 1.0]), arr(&[0.0, 0.0])],
        &[("eta", "0.5"), ("eps", "0")],
    )
    .unwrap()
    .remove(0);
    close(&vals(&lrs), &[0.1 * 0.5 * 2.0 / 1.0, 0.1], 1e-6);
}

#[test]
fn user_errors_name_the_op() {
    let e =
        invoke("adam_update", &[arr(&[1.0]), arr(&[1.0]), arr(&[0.0]), arr(&[0.0, 1.0])], &[("lr", "0.1")])
            .unwrap_err()
            .to_string();
    assert!(e.contains("adam_update") && e.contains("var"), "{e}");
    let e = invoke("sgd_update", &[arr(&[1.0]), arr(&[1.0])], &[]).unwrap_err().to_string();
    assert!(e.contains("sgd_update") && e.contains("lr"), "{e}");
    let i = NDArray::from_slice(&[1i32], [1]).unwrap();
    let e = invoke("sgd_update", &[i.clone(), i], &[("lr", "0.1")]).unwrap_err().to_string();
    assert!(e.contains("int32"), "{e}");
    // A state may not alias the weight.
    let w = arr(&[1.0]);
    let e = invoke("sgd_mom_update", &[w.clone(), arr(&[1.0]), w], &[("lr", "0.1")]).unwrap_err().to_string();
    assert!(e.contains("sgd_mom_update"), "{e}");
}
