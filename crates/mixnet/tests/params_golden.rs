//! Every NDArray file written by real MXNet 1.9.1 (`tests/fixtures/mxnet-1.9.1/params`) decodes
//! to what its manifest says, and encodes back to the same bytes.

use std::path::{Path, PathBuf};

use mixnet::ndarray::file::{decode, encode, read_file, StoredArray};
use serde_json::Value;

fn params_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/mxnet-1.9.1/params"))
}

fn manifest() -> Value {
    let path = params_dir().join("manifest.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn field<'a>(v: &'a Value, key: &str) -> Result<&'a Value, String> {
    v.get(key).ok_or_else(|| format!("manifest entry has no '{key}'"))
}

/// A manifest float: a JSON number, or "NaN" / "Infinity" / "-Infinity".
fn json_f64(v: &Value) -> Result<f64, String> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| format!("bad number {n}")),
        Value::String(s) if s == "NaN" => Ok(f64::NAN),
        Value::String(s) if s == "Infinity" => Ok(f64::INFINITY),
        Value::String(s) if s == "-Infinity" => Ok(f64::NEG_INFINITY),
        other => Err(format!("bad value {other}")),
    }
}

/// Exact comparison: the manifest prints the exact double of every stored value, so even
/// the sign of zero must match; NaN matches NaN.
fn same(got: f64, want: f64) -> bool {
    if want.is_nan() {
        got.is_nan()
    } else {
        got.to_bits() == want.to_bits()
    }
}

fn check_values(a: &StoredArray, want: &[Value]) -> Result<(), String> {
    if want.len() != a.numel() {
        return Err(format!("manifest lists {} values for {} elements", want.len(), a.numel()));
    }
    if a.dtype == mixnet::DType::I64 {
        // Beyond 2^53 only an integer comparison is exact.
        for (k, (chunk, w)) in a.data.chunks_exact(8).zip(want).enumerate() {
            let got = i64::from_le_bytes(chunk.try_into().map_err(|_| "short chunk")?);
            let w = w.as_i64().ok_or_else(|| format!("value {k}: {w} is not an int64"))?;
            if got != w {
                return Err(format!("value {k}: got {got}, want {w}"));
            }
        }
        return Ok(());
    }
    for (k, (got, w)) in a.to_f64_vec().into_iter().zip(want).enumerate() {
        let w = json_f64(w)?;
        if !same(got, w) {
            return Err(format!("value {k}: got {got:e}, want {w:e}"));
        }
    }
    Ok(())
}

fn check_array(a: &StoredArray, m: &Value) -> Result<(), String> {
    let dtype = field(m, "dtype")?.as_str().ok_or("dtype is not a string")?;
    if a.dtype.name() != dtype {
        return Err(format!("dtype {} but manifest says {dtype}", a.dtype));
    }
    let shape: Vec<usize> = field(m, "shape")?
        .as_array()
        .ok_or("shape is not a list")?
        .iter()
        .map(|d| d.as_u64().map(|d| d as usize).ok_or("bad dim"))
        .collect::<Result<_, _>>()?;
    if a.shape != shape {
        return Err(format!("shape {:?} but manifest says {shape:?}", a.shape));
    }
    if let Some(values) = m.get("values").and_then(Value::as_array) {
        check_values(a, values)?;
    }
    if let Some(bits) = m.get("bits_u16").and_then(Value::as_array) {
        let got: Vec<u64> =
            a.data.chunks_exact(2).map(|c| u64::from(u16::from_le_bytes([c[0], c[1]]))).collect();
        let want: Vec<u64> = bits.iter().filter_map(Value::as_u64).collect();
        if got != want {
            return Err(format!("bits {got:?}, want {want:?}"));
        }
    }
    if let Some(sum) = m.get("sum") {
        let want = json_f64(sum)?;
        let got: f64 = a.to_f64_vec().iter().sum();
        if (got - want).abs() > 1e-9 * want.abs() {
            return Err(format!("sum {got}, want {want}"));
        }
    }
    if m.get("values_formula").is_some() {
        // large_1d: (i % 251) / 7 as float32.
        for (i, got) in a.to_f64_vec().into_iter().enumerate() {
            let want = f64::from(((i % 251) as f64 / 7.0) as f32);
            if got != want {
                return Err(format!("value {i}: got {got}, want {want}"));
            }
        }
    }
    Ok(())
}

/// Checks one manifest entry; `Ok` carries a short description for the table.
fn check_file(entry: &Value) -> Result<String, String> {
    let file = field(entry, "file")?.as_str().ok_or("file is not a string")?;
    let bytes = std::fs::read(params_dir().join(file)).map_err(|e| e.to_string())?;
    if Some(bytes.len() as u64) != field(entry, "size_bytes")?.as_u64() {
        return Err(format!("file has {} bytes, manifest says otherwise", bytes.len()));
    }
    let kind = field(entry, "kind")?.as_str().ok_or("kind is not a string")?;
    let count = field(entry, "count")?.as_u64().ok_or("count is not a number")? as usize;
    let marrays = field(entry, "arrays")?.as_array().ok_or("arrays is not a list")?;

    let sparse = marrays.iter().enumerate().find_map(|(i, a)| {
        let storage = a.get("storage").and_then(Value::as_str).unwrap_or("default");
        (storage != "default").then(|| (i, storage.to_string()))
    });
    if let Some((i, storage)) = sparse {
        return match decode(&bytes) {
            Ok(_) => Err(format!("sparse file decoded without error (array #{i} is {storage})")),
            Err(e) => {
                let msg = e.to_string();
                let wanted = ["unsupported storage type", &storage, &format!("array #{i}")];
                match wanted.iter().find(|w| !msg.contains(*w)) {
                    Some(w) => Err(format!("error does not mention {w:?}: {msg}")),
                    None => Ok(format!("refused: {msg}")),
                }
            }
        };
    }

    let (arrays, names) = decode(&bytes).map_err(|e| format!("decode failed: {e}"))?;
    if arrays.len() != count || marrays.len() != count {
        return Err(format!("{} arrays, manifest count {count}", arrays.len()));
    }
    match kind {
        "list" if !names.is_empty() => return Err(format!("list file has names {names:?}")),
        "list" => {}
        "dict" => {
            let want: Vec<&str> = marrays.iter().map(|a| a["name"].as_str().unwrap_or("?")).collect();
            if names != want {
                return Err(format!("names {names:?}, want {want:?}"));
            }
        }
        other => return Err(format!("unknown kind {other}")),
    }
    for (i, (a, m)) in arrays.iter().zip(marrays).enumerate() {
        check_array(a, m).map_err(|e| format!("array #{i}: {e}"))?;
    }

    let refs: Vec<&StoredArray> = arrays.iter().collect();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let again = encode(&refs, &name_refs).map_err(|e| format!("encode failed: {e}"))?;
    if again != bytes {
        let at = again.iter().zip(&bytes).position(|(x, y)| x != y).unwrap_or(again.len().min(bytes.len()));
        return Err(format!(
            "re-encoded bytes differ at offset {at} ({} vs {} bytes)",
            again.len(),
            bytes.len()
        ));
    }
    Ok(format!("{kind}, {count} arrays, byte-identical re-encode"))
}

#[test]
fn every_fixture_file_decodes_and_round_trips() {
    let manifest = manifest();
    let files = manifest["files"].as_array().expect("manifest has a 'files' list");
    assert!(files.len() >= 20, "only {} manifest entries: wrong fixture directory?", files.len());

    let mut failures = 0;
    let mut listed = Vec::new();
    for entry in files {
        let file = entry["file"].as_str().unwrap_or("?");
        listed.push(file.to_string());
        match check_file(entry) {
            Ok(what) => println!("PASS  {file:<30} {what}"),
            Err(why) => {
                failures += 1;
                println!("FAIL  {file:<30} {why}");
            }
        }
    }

    // Every .params file on disk must be covered by the manifest.
    for e in std::fs::read_dir(params_dir()).expect("fixture dir") {
        let name = e.expect("dir entry").file_name().to_string_lossy().into_owned();
        if name.ends_with(".params") && !listed.contains(&name) {
            failures += 1;
            println!("FAIL  {name:<30} not in manifest.json");
        }
    }
    assert_eq!(failures, 0, "{failures} of {} fixture files failed (see the table above)", files.len());
}

#[test]
fn read_file_errors_name_the_path() {
    let sparse = params_dir().join("sparse_mixed.params");
    let msg = read_file(&sparse).unwrap_err().to_string();
    assert!(msg.contains("sparse_mixed.params"), "{msg}");
    assert!(msg.contains("array #1 ('sparse') has unsupported storage type csr"), "{msg}");

    let missing = Path::new("/nonexistent/dir/x.params");
    let msg = read_file(missing).unwrap_err().to_string();
    assert!(msg.contains("/nonexistent/dir/x.params"), "{msg}");

    let (arrays, names) = read_file(&params_dir().join("np_shapes.params")).expect("np_shapes");
    assert_eq!(names, ["scalar", "empty", "vec"]);
    assert_eq!(arrays[0].shape, Vec::<usize>::new());
    assert_eq!(arrays[0].to_f64_vec(), vec![3.5]);
    assert_eq!(arrays[1].shape, vec![0, 3]);
}

#[test]
fn write_file_then_read_file() {
    let src = params_dir().join("dict_named.params");
    let (arrays, names) = read_file(&src).expect("dict_named");
    let dir = std::env::temp_dir().join(format!("mixnet-params-golden-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let out = dir.join("copy.params");
    let refs: Vec<&StoredArray> = arrays.iter().collect();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    mixnet::ndarray::file::write_file(&out, &refs, &name_refs).expect("write");
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&src).unwrap());
    std::fs::remove_dir_all(&dir).ok();
}
