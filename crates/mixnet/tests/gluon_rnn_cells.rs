//! Gluon recurrent cells against MXNet 1.9.1: `tests/fixtures/generated/rnn_cells.params`
//! (from `gen_rnn_cells.py`) holds each case's parameters under `save_parameters` names,
//! inputs, outputs, final states, and the gradients of `sum(out·r) + sum(state0·r0)`.

use std::collections::HashMap;
use std::path::PathBuf;

use mixnet::autograd;
use mixnet::gluon::rnn::{
    BidirectionalCell, DropoutCell, GRUCell, LSTMCell, RNNCell, RecurrentCell, ResidualCell,
    SequentialRNNCell,
};
use mixnet::gluon::{Block, LoadOptions};
use mixnet::NDArray;

fn golden() -> HashMap<String, NDArray> {
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/generated/rnn_cells.params"
    ));
    let (arrays, names) = mixnet::ndarray::load(&path).expect("rnn cell goldens load");
    names.into_iter().zip(arrays).collect()
}

fn load(cell: &dyn Block, g: &HashMap<String, NDArray>, case: &str) {
    let head = format!("{case}/param/");
    let (names, arrays): (Vec<String>, Vec<NDArray>) =
        g.iter().filter_map(|(k, v)| k.strip_prefix(&head).map(|n| (n.to_string(), v.clone()))).unzip();
    let path = std::env::temp_dir().join(format!("mixnet-rnn-cells-{}-{case}.params", std::process::id()));
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    mixnet::ndarray::save(&path, &arrays, &refs).unwrap();
    cell.load_parameters(&path, LoadOptions::default()).unwrap();
    let _ = std::fs::remove_file(&path);
}

fn max_rel(a: &NDArray, b: &NDArray, what: &str) -> f64 {
    assert_eq!(a.shape(), b.shape(), "{what}");
    let (a, b) = (a.to_f64_vec().unwrap(), b.to_f64_vec().unwrap());
    a.iter().zip(&b).map(|(x, y)| (x - y).abs() / (1.0 + y.abs())).fold(0.0, f64::max)
}

fn cell_for(case: &str) -> Box<dyn RecurrentCell> {
    match case {
        "rnn" => Box::new(RNNCell::new(5, "tanh")),
        "relu_step" => Box::new(RNNCell::new(5, "relu")),
        "lstm_valid" => Box::new(LSTMCell::new(5)),
        "gru" => Box::new(GRUCell::new(4)),
        "seq" => {
            let mut s = SequentialRNNCell::new();
            {
                let _scope = s.name_scope();
                let (a, b, c) = (LSTMCell::new(5), DropoutCell::new(0.0), GRUCell::new(4));
                s.add(a).add(b).add(c);
            }
            Box::new(s)
        }
        "residual" => Box::new(ResidualCell::new(GRUCell::new(3))),
        "bi" => Box::new(BidirectionalCell::new(LSTMCell::new(4), GRUCell::new(4))),
        other => panic!("no case {other}"),
    }
}

#[test]
fn cells_match_mxnet_outputs_states_and_gradients() {
    let g = golden();
    let get = |k: String| g.get(&k).unwrap_or_else(|| panic!("golden {k} missing")).clone();
    let cases = [
        ("rnn", Some("NTC")),
        ("lstm_valid", Some("TNC")),
        ("gru", Some("NTC")),
        ("seq", Some("NTC")),
        ("residual", Some("NTC")),
        ("bi", Some("NTC")),
        ("relu_step", None),
    ];
    for (case, layout) in cases {
        let cell = cell_for(case);
        let x = get(format!("{case}/x")).copy().unwrap();
        let begin: Vec<NDArray> = (0..).map_while(|k| g.get(&format!("{case}/begin/{k}")).cloned()).collect();
        let valid = g.get(&format!("{case}/valid_length")).cloned();
        let length = match layout {
            Some("TNC") => x.shape()[0],
            _ => x.shape().get(1).copied().unwrap_or(0),
        };
        let run = |x: &NDArray| match layout {
            Some(l) => cell.unroll(length, x, Some(&begin), l, valid.as_ref()).unwrap(),
            None => cell.step(x, &begin).unwrap(),
        };
        cell.initialize(None, mixnet::cpu(0), false).unwrap();
        run(&x); // finish deferred shapes
        load(cell.as_dyn(), &g, case);
        x.attach_grad().unwrap();
        let (out, states) = {
            let _rec = autograd::record(true);
            run(&x)
        };
        autograd::backward(
            &[out.clone(), states[0].clone()],
            &[get(format!("{case}/r")), get(format!("{case}/r0"))],
        )
        .unwrap();
        let mut worst = max_rel(&out, &get(format!("{case}/out")), case);
        for (k, s) in states.iter().enumerate() {
            worst = worst.max(max_rel(s, &get(format!("{case}/state/{k}")), case));
        }
        worst = worst.max(max_rel(&x.grad().unwrap(), &get(format!("{case}/grad/x")), case));
        let params = cell.collect_params().unwrap();
        for (name, p) in cell.collect_params_with_prefix() {
            let want = get(format!("{case}/pgrad/{name}"));
            worst = worst.max(max_rel(&p.grad().unwrap(), &want, &name));
        }
        assert!(!params.is_empty());
        println!("{case:<12} max rel err {worst:.2e}");
        assert!(worst < 1e-5, "{case}: max rel err {worst}");
    }
}

#[test]
fn cell_errors_name_the_cell() {
    let cell = LSTMCell::new(3);
    let x = NDArray::from_slice(&[0.0f32; 6], [2, 3]).unwrap();
    let e = cell.step(&x, &[]).unwrap_err().to_string();
    assert!(e.contains("lstm") && e.contains("2 state"), "{e}");
    let seq3 = NDArray::from_slice(&[0.0f32; 24], [2, 4, 3]).unwrap();
    let e = cell.unroll(5, &seq3, None, "NTC", None).unwrap_err().to_string();
    assert!(e.contains("5 steps") && e.contains("(2, 4, 3)"), "{e}");
    assert!(cell.unroll(4, &seq3, None, "CTN", None).is_err());
    let bi = BidirectionalCell::new(LSTMCell::new(2), LSTMCell::new(2));
    assert!(bi.step(&x, &[]).unwrap_err().to_string().contains("unroll"));
}
