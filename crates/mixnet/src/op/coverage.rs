//! The operator coverage table: every registered operator with its aliases, whether it has
//! a gradient and which input dtypes it accepts — read from the registry itself, so it
//! cannot drift — and MXNet 1.9.1's legacy operators (`mxnet_legacy_ops.txt`) with which of
//! them are registered, exempt (and why), or still missing. `mixnet ops` prints it.
//!
//! Gradient and dtypes are probed: the operator is built from no attributes and its
//! `infer` is asked about `(2, 2)` inputs of each dtype. Operators that need attributes
//! or other shapes to be built or inferred report `None` ("needs attributes to probe").

use std::collections::HashSet;

use super::{registry, Attrs, TensorInfo};
use crate::{DType, Shape};

/// One registered operator.
#[derive(Clone, Debug)]
pub struct OpCoverage {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    /// `None` when the operator cannot be built without attributes.
    pub has_gradient: Option<bool>,
    /// Input dtypes `infer` accepts for `(2, 2)` inputs; `None` when none could be probed.
    pub dtypes: Option<Vec<DType>>,
}

/// One of MXNet's legacy operators.
#[derive(Clone, Debug)]
pub struct LegacyOp {
    pub category: &'static str,
    pub name: &'static str,
    /// Why it is not planned (OpenCV image ops, `Custom`, control flow, sparse-only).
    pub exempt: Option<&'static str>,
    /// The canonical name it is registered under, if it is.
    pub registered_as: Option<&'static str>,
}

const ALL_DTYPES: [DType; 9] = [
    DType::F32,
    DType::F64,
    DType::F16,
    DType::BF16,
    DType::U8,
    DType::I8,
    DType::I32,
    DType::I64,
    DType::Bool,
];

fn probe(name: &'static str) -> (Option<bool>, Option<Vec<DType>>) {
    let mut attrs = Attrs::new(name, &[]);
    let Some(def) = registry().get(name) else { return (None, None) };
    let Ok(op) = (def.build)(name, &mut attrs) else { return (None, None) };
    let accepted: Vec<DType> = ALL_DTYPES
        .into_iter()
        .filter(|&d| {
            let ins = vec![TensorInfo::new(Shape::new(&[2, 2]), d); op.num_inputs()];
            op.infer(&ins).is_ok()
        })
        .collect();
    (Some(op.has_gradient()), (!accepted.is_empty()).then_some(accepted))
}

/// Every registered operator, in registration order.
pub fn registered() -> Vec<OpCoverage> {
    registry()
        .ops()
        .iter()
        .map(|d| {
            let (has_gradient, dtypes) = probe(d.name);
            OpCoverage { name: d.name, aliases: d.aliases, has_gradient, dtypes }
        })
        .collect()
}

/// MXNet 1.9.1's 336 legacy forward operators with their status here.
pub fn legacy() -> Vec<LegacyOp> {
    include_str!("mxnet_legacy_ops.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let mut f = l.split('\t');
            let (category, name) = (f.next()?, f.next()?);
            // The inventory lists linalg ops by their `mx.nd.linalg` names; `syevd` has no
            // `linalg_` alias in MXNet, only its canonical `_linalg_syevd`.
            let registered_as = registry()
                .get(name)
                .or_else(|| {
                    name.starts_with("linalg_").then(|| registry().get(&format!("_{name}"))).flatten()
                })
                .map(|d| d.name);
            Some(LegacyOp { category, name, exempt: f.next(), registered_as })
        })
        .collect()
}

/// Legacy operators neither registered nor exempt.
pub fn missing() -> Vec<LegacyOp> {
    legacy().into_iter().filter(|o| o.registered_as.is_none() && o.exempt.is_none()).collect()
}

/// Registered operators that are not MXNet legacy operators (contrib, mixnet's own, and the
/// `_backward_*` helpers), by canonical name.
pub fn extras() -> Vec<&'static str> {
    let legacy: HashSet<&str> = legacy().iter().filter_map(|o| o.registered_as).collect();
    registry().ops().iter().map(|d| d.name).filter(|n| !legacy.contains(n)).collect()
}

/// The table as text: one line per registered operator, then the legacy summary and
/// what is missing.
pub fn report(missing_only: bool) -> String {
    let mut s = String::new();
    if !missing_only {
        s.push_str(
            "operator                                  gradient  dtypes                         aliases\n",
        );
        for o in registered() {
            let grad = match o.has_gradient {
                Some(true) => "yes",
                Some(false) => "no",
                None => "?",
            };
            let dtypes = match &o.dtypes {
                Some(d) => d.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(","),
                None => "? (needs attributes to probe)".into(),
            };
            s.push_str(&format!("{:<41} {:<9} {:<30} {}\n", o.name, grad, dtypes, o.aliases.join(" ")));
        }
    }
    let all = legacy();
    let registered = all.iter().filter(|o| o.registered_as.is_some()).count();
    let exempt: Vec<String> = all
        .iter()
        .filter(|o| o.registered_as.is_none() && o.exempt.is_some())
        .map(|o| o.name.to_string())
        .collect();
    let missing = missing();
    s.push_str(&format!(
        "\nMXNet 1.9.1 legacy operators: {} in all, {registered} registered, {} exempt, {} missing\n",
        all.len(),
        exempt.len(),
        missing.len()
    ));
    s.push_str(&format!(
        "exempt (OpenCV image, Custom/runtime-internal, control flow, sparse-only): {}\n",
        exempt.join(" ")
    ));
    s.push_str("missing:\n");
    for o in &missing {
        s.push_str(&format!("  {:<40} {}\n", o.name, o.category));
    }
    s
}
