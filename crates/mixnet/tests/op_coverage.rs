//! The coverage table against MXNet 1.9.1's legacy operators: prints what is registered,
//! exempt and missing, and fails if a non-exempt legacy operator is missing, or if a
//! registered operator is neither a legacy operator, a `_backward_*` helper, a
//! contrib/`_npx_`-style extension, nor on the list of mixnet's own operators below — so
//! the table cannot silently drift.

use mixnet::op::coverage;

/// Registered operators that are not in MXNet's legacy list, with why they exist.
const OWN: &[(&str, &str)] = &[
    ("_copy", "MXNet's `identity`; listed under its canonical name"),
    (
        "_sg_conv",
        "the Convolution + BatchNorm (+ ReLU) fusion of hybridized networks, as MXNet's `_sg_mkldnn_conv`",
    ),
    (
        "_winograd_filters",
        "a 3x3 weight carried to Winograd's transform domain once, for `_sg_conv` (oneDNN keeps reordered weights)",
    ),
];

#[test]
fn legacy_coverage_table() {
    let report = coverage::report(true);
    println!("{report}");
    let legacy = coverage::legacy();
    assert_eq!(legacy.len(), 336, "the §1.3 list has 336 operators");
    // Every exempt operator says why.
    assert!(legacy.iter().all(|o| o.exempt.is_none_or(|w| !w.is_empty())));
    // Every legacy operator that is not exempt is registered (by name or alias).
    let missing: Vec<&str> = coverage::missing().iter().map(|o| o.name).collect();
    assert!(missing.is_empty(), "legacy operators not registered: {missing:?}");
    let unexplained: Vec<&str> = coverage::extras()
        .into_iter()
        .filter(|n| {
            !(n.starts_with("_backward_") || n.starts_with("_contrib_") || OWN.iter().any(|(o, _)| o == n))
        })
        .collect();
    assert!(
        unexplained.is_empty(),
        "registered but not MXNet legacy ops (add to OWN with a reason): {unexplained:?}"
    );
}

#[test]
fn table_rows_come_from_the_registry() {
    let rows = coverage::registered();
    let add = rows.iter().find(|r| r.name == "elemwise_add").expect("elemwise_add is registered");
    assert_eq!(add.has_gradient, Some(true));
    assert!(add.aliases.contains(&"_plus"));
    assert!(add.dtypes.as_ref().is_some_and(|d| d.contains(&mixnet::DType::F32)));
    // An op that needs attributes reports that it could not be probed.
    let fc = rows.iter().find(|r| r.name == "FullyConnected").unwrap();
    assert_eq!(fc.has_gradient, None);
}
