//! Gradients of every operator that defines one, against MXNet 1.9.1's own gradients
//! (`grad*` arrays of `tests/fixtures/mxnet-1.9.1/ops`): attach_grad on the case's
//! `grad_inputs`, record the forward in the case's mode, back-propagate `head*`, compare.
//! Prints a table per operator and lists cases whose operator has no gradient yet.

use std::collections::BTreeMap;
use std::path::PathBuf;

use mixnet::op::registry;
use mixnet::{autograd, imperative, NDArray};
use serde_json::Value;

fn fixtures() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/mxnet-1.9.1/ops"))
}

fn tolerance(dtype: &str) -> Option<(f64, f64)> {
    match dtype {
        "float16" | "bfloat16" => Some((1e-2, 1e-3)),
        "float64" => Some((1e-10, 1e-12)),
        "float32" => Some((1e-4, 1e-5)),
        _ => None,
    }
}

fn run_case(case: &Value) -> Result<(), String> {
    let id = case["id"].as_str().unwrap_or_default();
    let (arrays, names) =
        mixnet::ndarray::load(fixtures().join(format!("{id}.params"))).map_err(|e| e.to_string())?;
    let get = |n: &str| names.iter().position(|x| x == n).map(|i| arrays[i].clone());
    let input_names: Vec<&str> =
        case["inputs"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let inputs: Vec<NDArray> = (0..input_names.len())
        .map(|i| get(&format!("in{i}")).ok_or(format!("fixture lacks in{i}")))
        .collect::<Result<_, _>>()?;
    let grad_inputs: Vec<usize> = case["grad_inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| input_names.iter().position(|n| *n == v.as_str().unwrap()).unwrap())
        .collect();
    for &i in &grad_inputs {
        inputs[i].attach_grad().map_err(|e| e.to_string())?;
    }
    let attrs: Vec<(String, String)> = case["attrs"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
        .unwrap_or_default();
    let attr_refs: Vec<(&str, &str)> = attrs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let outputs = {
        let _rec = autograd::record(case["mode"].as_str() == Some("train"));
        imperative::invoke(case["op"].as_str().unwrap(), &inputs, &attr_refs).map_err(|e| e.to_string())?
    };
    let heads: Vec<NDArray> = (0..outputs.len())
        .map(|k| get(&format!("head{k}")).ok_or(format!("fixture lacks head{k}")))
        .collect::<Result<_, _>>()?;
    autograd::backward(&outputs, &heads).map_err(|e| e.to_string())?;
    for (k, &i) in grad_inputs.iter().enumerate() {
        let want = get(&format!("grad{k}")).ok_or(format!("fixture lacks grad{k}"))?;
        let got = inputs[i].grad().ok_or("no gradient buffer")?;
        let (g, w) =
            (got.to_f64_vec().map_err(|e| e.to_string())?, want.to_f64_vec().map_err(|e| e.to_string())?);
        let tol = tolerance(want.dtype().name());
        for (j, (&g, &w)) in g.iter().zip(&w).enumerate() {
            let ok = match tol {
                None => g == w,
                Some((r, a)) => (g - w).abs() <= a + r * w.abs() || (g.is_nan() && w.is_nan()),
            };
            if !ok {
                return Err(format!("grad of {}: element {j}: got {g}, expected {w}", input_names[i]));
            }
        }
    }
    Ok(())
}

#[test]
fn gradients_match_mxnet() {
    let manifest: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("manifest.json")).unwrap()).unwrap();
    let mut table: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut without: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for case in manifest.iter().filter(|c| c["has_grad"].as_bool() == Some(true)) {
        let op = case["op"].as_str().unwrap_or_default().to_string();
        let attrs: Vec<(String, String)> = case["attrs"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
            .unwrap_or_default();
        let attr_refs: Vec<(&str, &str)> = attrs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let defined = registry().get(&op).is_some()
            && imperative::create(&op, &attr_refs).map(|o| o.has_gradient()).unwrap_or(false);
        if !defined {
            *without.entry(op).or_default() += 1;
            continue;
        }
        let row = table.entry(op.clone()).or_default();
        match run_case(case) {
            Ok(()) => row.0 += 1,
            Err(e) => {
                row.1 += 1;
                failures.push(format!("{} ({op}): {e}", case["id"].as_str().unwrap_or_default()));
            }
        }
    }
    println!("{:<28} {:>6} {:>6}", "operator", "pass", "fail");
    for (op, (p, f)) in &table {
        println!("{op:<28} {p:>6} {f:>6}");
    }
    let (p, f) = table.values().fold((0, 0), |a, r| (a.0 + r.0, a.1 + r.1));
    println!("{:<28} {p:>6} {f:>6}", "TOTAL");
    println!(
        "no gradient defined yet ({} ops, {} cases): {}",
        without.len(),
        without.values().sum::<usize>(),
        without.keys().cloned().collect::<Vec<_>>().join(" ")
    );
    for f in &failures {
        println!("FAIL {f}");
    }
    assert!(failures.is_empty(), "{} gradient case(s) failed", failures.len());
    assert!(p > 0, "no gradient case ran");
}
