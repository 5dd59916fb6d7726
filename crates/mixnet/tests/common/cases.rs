//! The runner of the generated operator goldens (`tests/fixtures/generated/<stem>.json` and
//! `<stem>.params`, written by `gen_<stem>.py` with MXNet 1.9.1): for each case, invoke the
//! op on the stored inputs (recording when the case has gradients), compare outputs, input
//! gradients for the stored head gradient, and inputs the op mutated (`c/state/<i>`).

use std::collections::HashMap;
use std::path::PathBuf;

use mixnet::imperative::invoke;
use mixnet::{DType, NDArray};

fn generated() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/generated"))
}

/// `got` matches `want` in shape, dtype and values: 1e-5 relative / 1e-6 absolute, and one
/// float16 rounding step for half-precision results.
pub fn close(what: &str, got: &NDArray, want: &NDArray) -> Result<(), String> {
    if got.shape() != want.shape() || got.dtype() != want.dtype() {
        return Err(format!(
            "{what}: got {} {}, want {} {}",
            got.shape(),
            got.dtype(),
            want.shape(),
            want.dtype()
        ));
    }
    let (rel, abs) = if want.dtype() == DType::F16 { (1e-3, 1e-4) } else { (1e-5, 1e-6) };
    let (g, w) = (got.to_f64_vec().map_err(|e| format!("{what}: {e}"))?, want.to_f64_vec().unwrap());
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        if (a - b).abs() > abs + rel * b.abs() {
            return Err(format!("{what}: element {i}: got {a}, want {b}"));
        }
    }
    Ok(())
}

fn indices(c: &serde_json::Value, key: &str) -> Vec<usize> {
    c[key].as_array().map_or(Vec::new(), |a| a.iter().map(|v| v.as_u64().unwrap() as usize).collect())
}

/// Run every case of `<stem>`; print the pass counts per op and each failure; fail if any.
pub fn run(stem: &str) {
    let (arrays, names) = mixnet::ndarray::load(generated().join(format!("{stem}.params"))).unwrap();
    let g: HashMap<String, NDArray> = names.into_iter().zip(arrays).collect();
    let cases: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(generated().join(format!("{stem}.json"))).unwrap())
            .unwrap();
    let mut failures = Vec::new();
    let mut per_op: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
    for c in &cases {
        let name = c["name"].as_str().unwrap();
        let op = c["op"].as_str().unwrap();
        let attrs: Vec<(String, String)> = c["attrs"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        let attrs: Vec<(&str, &str)> = attrs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let n_in = c["inputs"].as_u64().unwrap() as usize;
        // Each stored input serves one case (mutated ones are compared with `state/<i>`).
        let inputs: Vec<NDArray> = (0..n_in).map(|i| g[&format!("{name}/in/{i}")].clone()).collect();
        let (grad, state) = (indices(c, "grad"), indices(c, "state"));
        for &i in &grad {
            inputs[i].attach_grad().unwrap();
        }
        let outs = if grad.is_empty() {
            invoke(op, &inputs, &attrs)
        } else {
            let _r = mixnet::autograd::record(true);
            invoke(op, &inputs, &attrs)
        };
        let entry = per_op.entry(op.to_string()).or_default();
        entry.1 += 1;
        let outs = match outs {
            Ok(o) => o,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        let n_out = c["outputs"].as_u64().unwrap() as usize;
        let mut result = (outs.len() == n_out)
            .then_some(())
            .ok_or_else(|| format!("{name}: {} outputs, want {n_out}", outs.len()));
        for (j, o) in outs.iter().enumerate() {
            result =
                result.and_then(|()| close(&format!("{name} output {j}"), o, &g[&format!("{name}/out/{j}")]));
        }
        if !grad.is_empty() {
            result = result.and_then(|()| {
                mixnet::autograd::backward(&outs[..1], &[g[&format!("{name}/head")].clone()])
                    .map_err(|e| format!("{name}: backward: {e}"))
            });
            for &i in &grad {
                result = result.and_then(|()| {
                    close(
                        &format!("{name} grad {i}"),
                        &inputs[i].grad().unwrap(),
                        &g[&format!("{name}/grad/{i}")],
                    )
                });
            }
        }
        for &i in &state {
            result = result.and_then(|()| {
                close(&format!("{name} state {i}"), &inputs[i], &g[&format!("{name}/state/{i}")])
            });
        }
        // `IdentityAttachKLSparseReg` (misc_ops) stores its updated auxiliary state so.
        if let Some(aux) = g.get(&format!("{name}/aux/0")) {
            result = result.and_then(|()| close(&format!("{name} moving_avg"), &inputs[1], aux));
        }
        match result {
            Ok(()) => entry.0 += 1,
            Err(e) => failures.push(e),
        }
    }
    println!("{stem} vs MXNet 1.9.1 (outputs, gradients and mutated inputs per case):");
    for (op, (pass, all)) in &per_op {
        println!("  {op:<45} {pass}/{all}");
    }
    for f in &failures {
        println!("FAIL {f}");
    }
    assert!(failures.is_empty(), "{} failure(s)", failures.len());
}
