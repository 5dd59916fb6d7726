//! Forward outputs of every registered operator against MXNet 1.9.1's own outputs
//! (`tests/fixtures/mxnet-1.9.1/ops`). Prints a pass table per operator, lists the cases
//! of operators not registered yet, honours `tests/golden_skips.txt` (one `case_id reason`
//! per line, printed), and fails on any failing case.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use mixnet::op::registry;
use mixnet::{autograd, imperative, NDArray};
use serde_json::Value;

fn fixtures() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/mxnet-1.9.1/ops"))
}

fn skips() -> HashMap<String, String> {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/golden_skips.txt"));
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            l.split_once(char::is_whitespace).map(|(id, why)| (id.to_string(), why.trim().to_string()))
        })
        .collect()
}

/// (rtol, atol) for an output of `dtype` in `category`, as the fixtures' README suggests.
fn tolerance(dtype: &str, category: &str) -> Option<(f64, f64)> {
    match dtype {
        "float16" | "bfloat16" => Some((1e-2, 1e-3)),
        "float64" => Some((1e-10, 1e-12)),
        "float32" if matches!(category, "nn" | "linalg") => Some((1e-4, 1e-5)),
        "float32" => Some((1e-5, 1e-6)),
        _ => None, // integers and bool: exact
    }
}

fn compare(got: &[f64], want: &[f64], tol: Option<(f64, f64)>) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{} values, expected {}", got.len(), want.len()));
    }
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = match tol {
            _ if g.is_nan() || w.is_nan() => g.is_nan() && w.is_nan(),
            _ if g.is_infinite() || w.is_infinite() => g == w,
            None => g == w,
            Some((rtol, atol)) => (g - w).abs() <= atol + rtol * w.abs(),
        };
        if !ok {
            return Err(format!("element {i}: got {g}, expected {w}"));
        }
    }
    Ok(())
}

fn run_case(case: &Value) -> Result<(), String> {
    let id = case["id"].as_str().unwrap_or_default();
    let (arrays, names) =
        mixnet::ndarray::load(fixtures().join(format!("{id}.params"))).map_err(|e| e.to_string())?;
    let get = |n: &str| names.iter().position(|x| x == n).map(|i| arrays[i].clone());
    let n_in = case["inputs"].as_array().map_or(0, Vec::len);
    let inputs: Vec<NDArray> = (0..n_in)
        .map(|i| get(&format!("in{i}")).ok_or(format!("fixture lacks in{i}")))
        .collect::<Result<_, _>>()?;
    let attrs: Vec<(String, String)> = case["attrs"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
        .unwrap_or_default();
    let attr_refs: Vec<(&str, &str)> = attrs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let op = case["op"].as_str().unwrap_or_default();
    let prev = autograd::set_training(case["mode"].as_str() == Some("train"));
    let result = imperative::invoke(op, &inputs, &attr_refs);
    autograd::set_training(prev);
    let outputs = result.map_err(|e| e.to_string())?;
    let n_vis = case["num_visible_outputs"].as_u64().unwrap_or(1) as usize;
    let category = case["category"].as_str().unwrap_or_default();
    for k in 0..n_vis {
        let want = get(&format!("out{k}")).ok_or(format!("fixture lacks out{k}"))?;
        let got = outputs.get(k).ok_or(format!("op returned {} outputs, expected {n_vis}", outputs.len()))?;
        if got.shape() != want.shape() {
            return Err(format!("out{k}: shape {} expected {}", got.shape(), want.shape()));
        }
        if got.dtype() != want.dtype() {
            return Err(format!("out{k}: dtype {} expected {}", got.dtype(), want.dtype()));
        }
        let tol = tolerance(want.dtype().name(), category);
        compare(
            &got.to_f64_vec().map_err(|e| e.to_string())?,
            &want.to_f64_vec().map_err(|e| e.to_string())?,
            tol,
        )
        .map_err(|e| format!("out{k}: {e}"))?;
    }
    // Optimizer updates write their states in place: `out<n_vis + k>` holds the value of
    // input `mutated_inputs[k]` after the call.
    let input_names: Vec<&str> =
        case["inputs"].as_array().map(|v| v.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    for (k, m) in case["mutated_inputs"].as_array().into_iter().flatten().enumerate() {
        let m = m.as_str().unwrap_or_default();
        let i =
            input_names.iter().position(|n| *n == m).ok_or(format!("mutated input {m} is not an input"))?;
        let want = get(&format!("out{}", n_vis + k)).ok_or(format!("fixture lacks out{}", n_vis + k))?;
        let got = &inputs[i];
        if got.dtype() != want.dtype() || got.shape() != want.shape() {
            return Err(format!(
                "{m} after the update: {} {} expected {} {}",
                got.shape(),
                got.dtype(),
                want.shape(),
                want.dtype()
            ));
        }
        let tol = tolerance(want.dtype().name(), category);
        compare(
            &got.to_f64_vec().map_err(|e| e.to_string())?,
            &want.to_f64_vec().map_err(|e| e.to_string())?,
            tol,
        )
        .map_err(|e| format!("{m} after the update: {e}"))?;
    }
    Ok(())
}

#[test]
fn forward_outputs_match_mxnet() {
    let manifest: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("manifest.json")).unwrap()).unwrap();
    let skips = skips();
    // op -> (passed, failed, skipped); failures and skips listed after the table.
    let mut table: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut skipped = Vec::new();
    let mut not_registered: BTreeMap<String, usize> = BTreeMap::new();
    for case in &manifest {
        let op = case["op"].as_str().unwrap_or_default().to_string();
        let id = case["id"].as_str().unwrap_or_default().to_string();
        if registry().get(&op).is_none() {
            *not_registered.entry(op).or_default() += 1;
            continue;
        }
        let row = table.entry(op.clone()).or_default();
        if let Some(why) = skips.get(&id) {
            row.2 += 1;
            skipped.push(format!("{id}: {why}"));
            continue;
        }
        match run_case(case) {
            Ok(()) => row.0 += 1,
            Err(e) => {
                row.1 += 1;
                failures.push(format!("{id} ({op}): {e}"));
            }
        }
    }
    println!("{:<28} {:>6} {:>6} {:>7}", "operator", "pass", "fail", "skip");
    for (op, (p, f, s)) in &table {
        println!("{op:<28} {p:>6} {f:>6} {s:>7}");
    }
    let (p, f, s) = table.values().fold((0, 0, 0), |a, r| (a.0 + r.0, a.1 + r.1, a.2 + r.2));
    println!("{:<28} {p:>6} {f:>6} {s:>7}", "TOTAL");
    for s in &skipped {
        println!("skipped {s}");
    }
    println!(
        "not registered yet ({} ops, {} cases): {}",
        not_registered.len(),
        not_registered.values().sum::<usize>(),
        not_registered.keys().cloned().collect::<Vec<_>>().join(" ")
    );
    for f in &failures {
        println!("FAIL {f}");
    }
    assert!(failures.is_empty(), "{} golden case(s) failed", failures.len());
    assert!(p > 0, "no golden case ran");
}
