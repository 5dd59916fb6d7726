//! The contract calls work from outside the workspace's library crates, on a real MXNet file.

use std::path::PathBuf;

#[test]
fn load_invoke_read_save() {
    let fixture = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/mxnet-1.9.1/ops/binary_add.params"
    ));
    let out = std::env::temp_dir().join(format!("external-contract-{}.params", std::process::id()));
    let (shape, dtype, values) = external_contract::add_first_two(&fixture, &out).unwrap();
    // binary_add.params holds in0, in1 (the operands) then out0 (MXNet's sum).
    let (arrays, names) = mixnet::ndarray::load(&fixture).unwrap();
    let want = arrays[names.iter().position(|n| n == "out0").unwrap()].to_f64_vec().unwrap();
    assert_eq!(shape, arrays[0].shape().to_vec());
    assert_eq!(dtype, "float32");
    assert_eq!(values, want);
    let (saved, saved_names) = mixnet::ndarray::load(&out).unwrap();
    assert_eq!(saved_names, ["sum"]);
    assert_eq!(saved[0].to_f64_vec().unwrap(), want);
    std::fs::remove_file(out).unwrap();
}
