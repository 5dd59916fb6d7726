//! `_contrib_scaled_dot_product_attention` and `_contrib_rope` against naive references
//! written here: full softmax(q·kᵀ·scale + mask)·v, and the rotation's closed form.

use mixnet::imperative::invoke;
use mixnet::test_utils::Rng;
use mixnet::{autograd, NDArray};

fn rand(rng: &mut Rng, shape: &[usize]) -> (Vec<f64>, NDArray) {
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| rng.range(-1.0, 1.0)).collect();
    let a = NDArray::from_vec(v.clone(), shape.to_vec()).unwrap();
    (v, a)
}

/// Naive attention: (batch, hq, lq, d) x (batch, hk, lk, d) -> (batch, hq, lq, dv).
#[allow(clippy::too_many_arguments)]
fn naive(
    q: &[f64],
    k: &[f64],
    v: &[f64],
    [b, hq, hk, lq, lk, d, dv]: [usize; 7],
    causal: bool,
    valid: Option<&[usize]>,
) -> Vec<f64> {
    let scale = 1.0 / (d as f64).sqrt();
    let mut out = vec![0.0; b * hq * lq * dv];
    for bi in 0..b {
        for h in 0..hq {
            let kh = bi * hk + h / (hq / hk);
            for i in 0..lq {
                let qi = &q[((bi * hq + h) * lq + i) * d..][..d];
                let visible = |j: usize| !(causal && j > i) && valid.is_none_or(|v| j < v[bi]);
                let s: Vec<f64> = (0..lk)
                    .map(|j| {
                        if visible(j) {
                            qi.iter().zip(&k[(kh * lk + j) * d..][..d]).map(|(a, b)| a * b).sum::<f64>()
                                * scale
                        } else {
                            f64::NEG_INFINITY
                        }
                    })
                    .collect();
                let m = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                if m == f64::NEG_INFINITY {
                    continue;
                }
                let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for j in 0..lk {
                    for c in 0..dv {
                        out[((bi * hq + h) * lq + i) * dv + c] += e[j] / z * v[(kh * lk + j) * dv + c];
                    }
                }
            }
        }
    }
    out
}

fn close(a: &[f64], b: &[f64], tol: f64) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol, "element {i}: {x} vs {y}");
    }
}

#[test]
fn matches_naive_attention_with_masks_and_grouped_heads() {
    let mut rng = Rng::new(7);
    // (batch, q heads, kv heads, q len, k len, dim, v dim): 70 keys cross a 64-key tile.
    for (dims, causal, padded) in [
        ([2, 2, 2, 5, 70, 8, 6], false, false),
        ([1, 2, 2, 70, 70, 4, 4], true, false),
        ([2, 8, 2, 6, 9, 4, 3], false, true),
        ([2, 4, 1, 9, 9, 4, 4], true, true),
    ] {
        let [b, hq, hk, lq, lk, d, dv] = dims;
        let (qv, q) = rand(&mut rng, &[b, hq, lq, d]);
        let (kv, k) = rand(&mut rng, &[b, hk, lk, d]);
        let (vv, v) = rand(&mut rng, &[b, hk, lk, dv]);
        let valid: Vec<usize> = (0..b).map(|i| lk - i * 3).collect();
        let causal_s = if causal { "True" } else { "False" };
        let mut inputs = vec![q, k, v];
        let mut attrs = vec![("causal", causal_s)];
        if padded {
            inputs.push(NDArray::from_vec(valid.iter().map(|&x| x as f64).collect::<Vec<_>>(), [b]).unwrap());
            attrs.push(("use_valid_length", "True"));
        }
        let out = invoke("_contrib_scaled_dot_product_attention", &inputs, &attrs).unwrap().remove(0);
        let want = naive(&qv, &kv, &vv, dims, causal, padded.then_some(&valid[..]));
        close(&out.to_f64_vec().unwrap(), &want, 1e-12);
    }
}

#[test]
fn grouped_query_attention_equals_repeated_heads() {
    let mut rng = Rng::new(11);
    let (_, q) = rand(&mut rng, &[1, 8, 5, 4]);
    let (kv, k) = rand(&mut rng, &[1, 2, 7, 4]);
    let (vv, v) = rand(&mut rng, &[1, 2, 7, 4]);
    let repeat = |x: &[f64]| -> NDArray {
        let mut r = Vec::new();
        for h in 0..8 {
            r.extend_from_slice(&x[(h / 4) * 28..(h / 4 + 1) * 28]);
        }
        NDArray::from_vec(r, [1, 8, 7, 4]).unwrap()
    };
    let op = "_contrib_scaled_dot_product_attention";
    let gqa = invoke(op, &[q.clone(), k, v], &[]).unwrap().remove(0);
    let mha = invoke(op, &[q, repeat(&kv), repeat(&vv)], &[]).unwrap().remove(0);
    close(&gqa.to_f64_vec().unwrap(), &mha.to_f64_vec().unwrap(), 1e-12);
}

#[test]
fn rope_rotates_pairs_by_position() {
    let mut rng = Rng::new(3);
    let (xv, x) = rand(&mut rng, &[2, 3, 6]);
    let y = invoke("_contrib_rope", &[x], &[("base", "100"), ("offset", "2")])
        .unwrap()
        .remove(0)
        .to_f64_vec()
        .unwrap();
    for r in 0..6 {
        let pos = (2 + r % 3) as f64;
        for i in 0..3 {
            let th = pos * 100f64.powf(-2.0 * i as f64 / 6.0);
            let (a, b) = (xv[r * 6 + i], xv[r * 6 + i + 3]);
            assert!((y[r * 6 + i] - (a * th.cos() - b * th.sin())).abs() < 1e-12);
            assert!((y[r * 6 + i + 3] - (b * th.cos() + a * th.sin())).abs() < 1e-12);
        }
    }
}

#[test]
fn errors_and_fully_masked_rows() {
    let z = |s: &[usize]| NDArray::zeros(s.to_vec(), mixnet::DType::F32, mixnet::cpu(0)).unwrap();
    let op = "_contrib_scaled_dot_product_attention";
    let e = invoke(op, &[z(&[1, 3, 2, 4]), z(&[1, 2, 2, 4]), z(&[1, 2, 2, 4])], &[]).unwrap_err().to_string();
    assert!(e.contains(op) && e.contains("divide"), "{e}");
    let e = invoke("_contrib_rope", &[z(&[2, 3])], &[]).unwrap_err().to_string();
    assert!(e.contains("_contrib_rope") && e.contains("even"), "{e}");
    // A sequence with no valid keys gives zeros (and zero gradients), not NaN.
    let q = z(&[1, 1, 2, 4]);
    q.attach_grad().unwrap();
    let y = {
        let _r = autograd::record(true);
        let len = NDArray::from_vec(vec![0f32], [1]).unwrap();
        invoke(op, &[q.clone(), z(&[1, 1, 3, 4]), z(&[1, 1, 3, 4]), len], &[("use_valid_length", "True")])
            .unwrap()
            .remove(0)
    };
    assert!(y.to_f64_vec().unwrap().iter().all(|&v| v == 0.0));
    autograd::backward(&[y], &[]).unwrap();
    assert!(q.grad().unwrap().to_f64_vec().unwrap().iter().all(|&v| v == 0.0));
}
