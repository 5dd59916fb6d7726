//! `RNN` with `use_sequence_length`: each batch row must behave exactly as if it were run
//! alone on its first `length` steps (outputs past the length 0, final state from the last
//! valid step, the reverse direction starting there), forward and backward. MXNet 1.9.1
//! has this on cuDNN only, so the reference is the op itself on each row's slice.

use mixnet::autograd;
use mixnet::imperative::invoke;
use mixnet::NDArray;

const T: usize = 5;
const N: usize = 3;
const I: usize = 4;
const H: usize = 3;
const L: usize = 2;
const D: usize = 2;

fn gates(mode: &str) -> usize {
    match mode {
        "lstm" => 4,
        "gru" => 3,
        _ => 1,
    }
}

fn param_count(mode: &str) -> usize {
    let gh = gates(mode) * H;
    (0..L).map(|l| D * (gh * if l == 0 { I } else { D * H } + gh * H + 2 * gh)).sum()
}

fn values(n: usize, k: usize) -> Vec<f64> {
    (0..n).map(|i| ((i * k + 3) % 17) as f64 / 8.5 - 1.0).collect()
}

fn arr(v: Vec<f64>, shape: &[usize]) -> NDArray {
    NDArray::from_vec(v, shape.to_vec()).unwrap()
}

/// Run the op with autograd; returns (out, hy, [cy]) and the gradients of
/// `sum(out·wo) + sum(hy·wh)` for (x, params, h0, [c0]).
fn run(
    mode: &str,
    x: &NDArray,
    p: &NDArray,
    states: &[NDArray],
    lens: Option<&NDArray>,
    wo: &NDArray,
    wh: &NDArray,
) -> (Vec<NDArray>, Vec<NDArray>) {
    let mut inputs = vec![x.clone(), p.clone()];
    inputs.extend(states.iter().cloned());
    for a in &inputs {
        a.attach_grad().unwrap();
    }
    inputs.extend(lens.cloned());
    let attrs = [
        ("mode", mode),
        ("state_size", "3"),
        ("num_layers", "2"),
        ("bidirectional", "True"),
        ("state_outputs", "True"),
        ("use_sequence_length", if lens.is_some() { "True" } else { "False" }),
    ];
    let outs = {
        let _rec = autograd::record(true);
        invoke("RNN", &inputs, &attrs).unwrap()
    };
    let heads = vec![outs[0].clone(), outs[1].clone()];
    autograd::backward(&heads, &[wo.clone(), wh.clone()]).unwrap();
    let grads = inputs[..2 + states.len()].iter().map(|a| a.grad().unwrap()).collect();
    (outs, grads)
}

fn close(a: &[f64], b: &[f64], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() < 1e-10, "{what}[{i}]: {x} vs {y}");
    }
}

#[test]
fn each_row_matches_running_it_alone() {
    let lens = [5usize, 2, 3];
    for mode in ["lstm", "gru", "rnn_tanh", "rnn_relu"] {
        let np = param_count(mode);
        let x = values(T * N * I, 7);
        let p = values(np, 5).iter().map(|v| v * 0.6).collect::<Vec<_>>();
        let n_states = if mode == "lstm" { 2 } else { 1 };
        let s: Vec<Vec<f64>> = (0..n_states).map(|k| values(L * D * N * H, 3 + k)).collect();
        let wo = values(T * N * D * H, 11);
        let wh = values(L * D * N * H, 13);
        let lens_arr = arr(lens.iter().map(|&v| v as f64).collect(), &[N]);
        let states: Vec<NDArray> = s.iter().map(|v| arr(v.clone(), &[L * D, N, H])).collect();
        let (outs, grads) = run(
            mode,
            &arr(x.clone(), &[T, N, I]),
            &arr(p.clone(), &[np]),
            &states,
            Some(&lens_arr),
            &arr(wo.clone(), &[T, N, D * H]),
            &arr(wh.clone(), &[L * D, N, H]),
        );
        let out = outs[0].to_f64_vec().unwrap();
        let hy = outs[1].to_f64_vec().unwrap();
        let dx = grads[0].to_f64_vec().unwrap();
        let dp = grads[1].to_f64_vec().unwrap();
        let dh0 = grads[2].to_f64_vec().unwrap();
        let mut dp_sum = vec![0.0; np];
        for (b, &len) in lens.iter().enumerate() {
            // Row b alone: its first `len` steps, batch 1.
            let xb: Vec<f64> = (0..len).flat_map(|t| x[(t * N + b) * I..][..I].to_vec()).collect();
            let pick = |v: &[f64], rows: usize, w: usize| -> Vec<f64> {
                (0..rows).flat_map(|k| v[(k * N + b) * w..][..w].to_vec()).collect()
            };
            let sb: Vec<NDArray> = s.iter().map(|v| arr(pick(v, L * D, H), &[L * D, 1, H])).collect();
            let (ob, gb) = run(
                mode,
                &arr(xb, &[len, 1, I]),
                &arr(p.clone(), &[np]),
                &sb,
                None,
                &arr(pick(&wo, len, D * H), &[len, 1, D * H]),
                &arr(pick(&wh, L * D, H), &[L * D, 1, H]),
            );
            let what = |s: &str| format!("{mode} row {b} {s}");
            close(&pick(&out, len, D * H), &ob[0].to_f64_vec().unwrap(), &what("out"));
            let past: Vec<f64> =
                (len..T).flat_map(|t| out[(t * N + b) * D * H..][..D * H].to_vec()).collect();
            assert!(past.iter().all(|&v| v == 0.0), "{}", what("padding output"));
            close(&pick(&hy, L * D, H), &ob[1].to_f64_vec().unwrap(), &what("hy"));
            close(&pick(&dx, len, I), &gb[0].to_f64_vec().unwrap(), &what("dx"));
            let dx_past: Vec<f64> = (len..T).flat_map(|t| dx[(t * N + b) * I..][..I].to_vec()).collect();
            assert!(dx_past.iter().all(|&v| v == 0.0), "{}", what("padding dx"));
            close(&pick(&dh0, L * D, H), &gb[2].to_f64_vec().unwrap(), &what("dh0"));
            if mode == "lstm" {
                let cy = outs[2].to_f64_vec().unwrap();
                close(&pick(&cy, L * D, H), &ob[2].to_f64_vec().unwrap(), &what("cy"));
                let dc0 = grads[3].to_f64_vec().unwrap();
                close(&pick(&dc0, L * D, H), &gb[3].to_f64_vec().unwrap(), &what("dc0"));
            }
            for (a, v) in dp_sum.iter_mut().zip(gb[1].to_f64_vec().unwrap()) {
                *a += v;
            }
        }
        close(&dp, &dp_sum, &format!("{mode} dparams"));
    }
}

#[test]
fn full_lengths_equal_no_lengths_and_bad_shapes_are_errors() {
    let np = param_count("gru");
    let x = arr(values(T * N * I, 7), &[T, N, I]);
    let p = arr(values(np, 5), &[np]);
    let h0 = arr(values(L * D * N * H, 3), &[L * D, N, H]);
    let attrs = |use_len: &'static str| {
        [
            ("mode", "gru"),
            ("state_size", "3"),
            ("num_layers", "2"),
            ("bidirectional", "True"),
            ("use_sequence_length", use_len),
        ]
    };
    let full = arr(vec![T as f64; N], &[N]);
    let a = invoke("RNN", &[x.clone(), p.clone(), h0.clone(), full], &attrs("True")).unwrap();
    let b = invoke("RNN", &[x.clone(), p.clone(), h0.clone()], &attrs("False")).unwrap();
    assert_eq!(a[0].to_f64_vec().unwrap(), b[0].to_f64_vec().unwrap());
    let bad = arr(vec![1.0; N + 1], &[N + 1]);
    let e = invoke("RNN", &[x, p, h0, bad], &attrs("True")).unwrap_err().to_string();
    assert!(e.contains("RNN") && e.contains("sequence_length"), "{e}");
}
