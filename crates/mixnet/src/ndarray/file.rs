//! MXNet's NDArray file format (`mx.nd.save`, `mx.nd.load`, Gluon's `.params`), as bytes <-> records.
//!
//! Layout (little-endian): u64 `0x112`, u64 reserved, u64 n, n array records, u64 m (0 for a
//! list, n for a dict), m × (u64 len, UTF-8 bytes). An array record is u32 magic, i32 storage
//! type (V2/V3 only), shape (i32 ndim, i64 dims), context (i32, i32), i32 type flag, data.
//! `tests/fixtures/mxnet-1.9.1/SOURCE-README.md` has the full description.
//!
//! The reader accepts every array version MXNet ever wrote: V3 (numpy shape semantics), V2,
//! V1 (no storage type) and the magic-less v0 (u32 dims). The writer produces exactly what
//! MXNet 1.9.1 writes, so saving what was loaded gives the same bytes.
//!
//! Files are untrusted: every length is checked against the bytes actually left before
//! anything is allocated, so a corrupt file gives an error, never a panic or a huge allocation.

use std::path::Path;

use crate::{DType, Error, Result};

const LIST_MAGIC: u64 = 0x112;
const MAGIC_V1: u32 = 0xF993_FAC8;
const MAGIC_V2: u32 = 0xF993_FAC9;
const MAGIC_V3: u32 = 0xF993_FACA;
/// MXNet's own limit is higher, but no real array has more than a handful of axes; a cap
/// makes a corrupt ndim fail at once instead of after reading garbage dims.
const MAX_NDIM: usize = 32;
/// Context written for every array: MXNet copies to the CPU before saving, and 1.9.1 records cpu(0).
const CPU_CONTEXT: (i32, i32) = (1, 0);
/// Name of the "file" in errors from [`decode`] and [`encode`], which have no path.
const IN_MEMORY: &str = "<in-memory NDArray file>";

/// One dense array as stored in an NDArray file: element bytes little-endian, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredArray {
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl StoredArray {
    /// Number of elements: 1 for a 0-d array, 0 when any dimension is 0
    /// (saturates at `usize::MAX` for a hand-built shape whose product overflows).
    pub fn numel(&self) -> usize {
        numel(&self.shape).unwrap_or(usize::MAX)
    }

    /// The values as f64, for tests and printing (int64 beyond 2^53 rounds; bool is 0 or 1).
    pub fn to_f64_vec(&self) -> Vec<f64> {
        let d = &self.data;
        match self.dtype {
            DType::F32 => convert(d, |b| f64::from(f32::from_le_bytes(b))),
            DType::F64 => convert(d, f64::from_le_bytes),
            DType::F16 => convert(d, |b| half::f16::from_le_bytes(b).to_f64()),
            DType::BF16 => convert(d, |b| half::bf16::from_le_bytes(b).to_f64()),
            DType::I32 => convert(d, |b| f64::from(i32::from_le_bytes(b))),
            DType::I64 => convert(d, |b| i64::from_le_bytes(b) as f64),
            DType::U8 => d.iter().map(|&b| f64::from(b)).collect(),
            DType::I8 => d.iter().map(|&b| f64::from(b as i8)).collect(),
            DType::Bool => d.iter().map(|&b| f64::from(u8::from(b != 0))).collect(),
        }
    }
}

fn convert<const N: usize>(data: &[u8], f: impl Fn([u8; N]) -> f64) -> Vec<f64> {
    data.chunks_exact(N).map(|c| f(c.try_into().unwrap_or([0; N]))).collect()
}

fn numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

/// Parse an NDArray file. Names are empty for a file saved from a list.
pub fn decode(bytes: &[u8]) -> Result<(Vec<StoredArray>, Vec<String>)> {
    decode_inner(bytes).map_err(|msg| Error::format(IN_MEMORY, msg))
}

/// Serialize arrays as MXNet 1.9.1 would. `names` empty writes a list file; otherwise there
/// must be one name per array.
pub fn encode(arrays: &[&StoredArray], names: &[&str]) -> Result<Vec<u8>> {
    encode_inner(arrays, names).map_err(|msg| Error::format(IN_MEMORY, msg))
}

/// Read and parse an NDArray file; errors name the file.
pub fn read_file(path: &Path) -> Result<(Vec<StoredArray>, Vec<String>)> {
    let bytes =
        std::fs::read(path).map_err(|e| Error::io(format!("reading NDArray file {}", path.display()), e))?;
    decode_inner(&bytes).map_err(|msg| Error::format(path.display().to_string(), msg))
}

/// Write an NDArray file (see [`encode`]).
pub fn write_file(path: &Path, arrays: &[&StoredArray], names: &[&str]) -> Result<()> {
    let bytes = encode_inner(arrays, names).map_err(|msg| Error::format(path.display().to_string(), msg))?;
    std::fs::write(path, bytes).map_err(|e| Error::io(format!("writing NDArray file {}", path.display()), e))
}

/// Reads little-endian fields; every read fails cleanly when the input is too short.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn bytes(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let out = self.pos.checked_add(n).and_then(|end| self.buf.get(self.pos..end));
        let out = out.ok_or_else(|| {
            format!(
                "truncated: {what} needs {n} bytes at offset {}, only {} left",
                self.pos,
                self.remaining()
            )
        })?;
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        let b = self.bytes(N, what)?;
        b.try_into().map_err(|_| format!("internal: short read of {what}"))
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        self.array(what).map(u32::from_le_bytes)
    }
    fn i32(&mut self, what: &str) -> Result<i32, String> {
        self.array(what).map(i32::from_le_bytes)
    }
    fn u64(&mut self, what: &str) -> Result<u64, String> {
        self.array(what).map(u64::from_le_bytes)
    }
    fn i64(&mut self, what: &str) -> Result<i64, String> {
        self.array(what).map(i64::from_le_bytes)
    }

    /// A u64 count of items that each take at least `min_item_bytes`: a count the rest of
    /// the input cannot hold is rejected here, before anything is sized by it.
    fn count(&mut self, what: &str, min_item_bytes: usize) -> Result<usize, String> {
        let n = self.u64(what)?;
        let fits = self.remaining() / min_item_bytes;
        match usize::try_from(n) {
            Ok(n) if n <= fits => Ok(n),
            _ => Err(format!("{what} is {n}, but only {} bytes are left after it", self.remaining())),
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Version {
    /// No magic: the first u32 is ndim, dims are u32.
    V0,
    V1,
    V2,
    V3,
}

/// The outcome of one array record. Sparse records are parsed (to reach the names, which
/// make a better error message) but not kept.
enum Record {
    Dense(StoredArray),
    Sparse(&'static str),
}

fn decode_inner(bytes: &[u8]) -> Result<(Vec<StoredArray>, Vec<String>), String> {
    let mut c = Cursor { buf: bytes, pos: 0 };
    let magic = c.u64("the list magic")?;
    if magic != LIST_MAGIC {
        return Err(format!("not an NDArray file: magic {magic:#x}, expected {LIST_MAGIC:#x}"));
    }
    c.u64("the reserved field")?; // MXNet ignores it too
    let n = c.count("the array count", 4)?;
    let mut arrays = Vec::with_capacity(n.min(1024));
    let mut sparse = None;
    for i in 0..n {
        match read_record(&mut c, i)? {
            Record::Dense(a) => arrays.push(a),
            Record::Sparse(kind) => {
                sparse.get_or_insert((i, kind));
            }
        }
    }
    let m = c.count("the name count", 8)?;
    if m != 0 && m != n {
        return Err(format!("the file has {n} arrays but {m} names"));
    }
    let mut names = Vec::with_capacity(m);
    for j in 0..m {
        let len = c.count("a name length", 1)?;
        let name = c.bytes(len, "a name")?;
        let name = String::from_utf8(name.to_vec()).map_err(|_| format!("name #{j} is not valid UTF-8"))?;
        names.push(name);
    }
    if let Some((i, kind)) = sparse {
        let name = names.get(i).map(|s| format!(" ('{s}')")).unwrap_or_default();
        return Err(format!(
            "array #{i}{name} has unsupported storage type {kind}; mixnet loads dense arrays only"
        ));
    }
    if c.remaining() != 0 {
        return Err(format!("{} unexpected bytes after the names, at offset {}", c.remaining(), c.pos));
    }
    Ok((arrays, names))
}

fn read_record(c: &mut Cursor, i: usize) -> Result<Record, String> {
    let first = c.u32("an array magic")?;
    let version = match first {
        MAGIC_V1 => Version::V1,
        MAGIC_V2 => Version::V2,
        MAGIC_V3 => Version::V3,
        ndim if ndim as usize <= MAX_NDIM => Version::V0,
        other => {
            return Err(format!("array #{i}: unknown array magic {other:#010x} at offset {}", c.pos - 4))
        }
    };
    let stype = match version {
        Version::V2 | Version::V3 => c.i32("the storage type")?,
        Version::V0 | Version::V1 => 0,
    };
    let kind = match stype {
        0 => None,
        1 => Some("row_sparse"),
        2 => Some("csr"),
        s => return Err(format!("array #{i} has unknown storage type {s}")),
    };
    if let Some(kind) = kind {
        return match skip_sparse(c, version, stype) {
            Ok(()) => Ok(Record::Sparse(kind)),
            // The record cannot be skipped, so the names are out of reach.
            Err(e) => {
                Err(format!("array #{i} has unsupported storage type {kind} (and a malformed record: {e})"))
            }
        };
    }
    let Some(shape) = read_shape(c, version, first)? else {
        return Err(none_error(i));
    };
    let dtype = read_context_and_dtype(c)?;
    let len = byte_len(&shape, dtype)?;
    let data = c.bytes(len, "the array data")?.to_vec();
    Ok(Record::Dense(StoredArray { dtype, shape, data }))
}

fn none_error(i: usize) -> String {
    format!("array #{i} is a none NDArray (no shape, no data), which mixnet does not load")
}

/// Reads a shape. `None` is MXNet's "none" array, whose record ends after the shape: ndim 0
/// before V3 (V3 made that a 0-d scalar), and ndim or a dim of -1 (unknown) in any version.
fn read_shape(c: &mut Cursor, version: Version, first: u32) -> Result<Option<Vec<usize>>, String> {
    let ndim = match version {
        Version::V0 => i64::from(first),
        _ => i64::from(c.i32("the number of dimensions")?),
    };
    if ndim == -1 || (ndim == 0 && version != Version::V3) {
        return Ok(None);
    }
    let ndim = usize::try_from(ndim)
        .ok()
        .filter(|&d| d <= MAX_NDIM)
        .ok_or_else(|| format!("ndim {ndim} is out of range (0 to {MAX_NDIM})"))?;
    let mut shape = Vec::with_capacity(ndim);
    for _ in 0..ndim {
        let dim = match version {
            Version::V0 => i64::from(c.u32("a dimension")?),
            _ => c.i64("a dimension")?,
        };
        if dim == -1 {
            return Ok(None);
        }
        let dim = usize::try_from(dim).map_err(|_| format!("dimension {dim} is negative"))?;
        shape.push(dim);
    }
    Ok(Some(shape))
}

fn read_context_and_dtype(c: &mut Cursor) -> Result<DType, String> {
    c.i32("the device type")?;
    c.i32("the device id")?;
    read_dtype(c)
}

fn read_dtype(c: &mut Cursor) -> Result<DType, String> {
    let code = c.i32("the type flag")?;
    DType::from_code(code).ok_or_else(|| {
        let name = match code {
            8 => " (int16)",
            9 => " (uint16)",
            10 => " (uint32)",
            11 => " (uint64)",
            _ => "",
        };
        format!("unsupported dtype code {code}{name}")
    })
}

/// Size of the data of an array, refusing products that overflow.
fn byte_len(shape: &[usize], dtype: DType) -> Result<usize, String> {
    numel(shape)
        .and_then(|n| n.checked_mul(dtype.size()))
        .ok_or_else(|| format!("shape {shape:?} of {dtype} is too large"))
}

/// Steps over a sparse record: storage shape, shape, context, dtype, aux headers
/// (type flag + shape each: csr has indptr and indices, row_sparse has indices), values, aux data.
fn skip_sparse(c: &mut Cursor, version: Version, stype: i32) -> Result<(), String> {
    let storage_shape = read_shape(c, version, 0)?.ok_or("its storage shape is none")?;
    read_shape(c, version, 0)?.ok_or("it is a none NDArray")?;
    let dtype = read_context_and_dtype(c)?;
    let naux = if stype == 2 { 2 } else { 1 };
    let mut aux = Vec::with_capacity(naux);
    for _ in 0..naux {
        let aux_dtype = read_dtype(c)?;
        let aux_shape = read_shape(c, version, 0)?.ok_or("an aux shape is none")?;
        aux.push(byte_len(&aux_shape, aux_dtype)?);
    }
    c.bytes(byte_len(&storage_shape, dtype)?, "the sparse values")?;
    for len in aux {
        c.bytes(len, "the sparse aux data")?;
    }
    Ok(())
}

fn encode_inner(arrays: &[&StoredArray], names: &[&str]) -> Result<Vec<u8>, String> {
    if !names.is_empty() && names.len() != arrays.len() {
        return Err(format!(
            "{} names for {} arrays (give none, or one per array)",
            names.len(),
            arrays.len()
        ));
    }
    // MXNet 1.9.1 writes V3 only in numpy-shape mode, which is the only mode that can hold
    // a 0-d or zero-size array; the whole file is then V3.
    let v3 = arrays.iter().any(|a| a.shape.is_empty() || a.shape.contains(&0));
    let magic = if v3 { MAGIC_V3 } else { MAGIC_V2 };

    let data_bytes: usize = arrays.iter().map(|a| a.data.len().saturating_add(96)).sum();
    let mut out = Vec::with_capacity(data_bytes.saturating_add(32));
    let put_u64 = |out: &mut Vec<u8>, v: usize| out.extend_from_slice(&(v as u64).to_le_bytes());
    put_u64(&mut out, LIST_MAGIC as usize);
    put_u64(&mut out, 0);
    put_u64(&mut out, arrays.len());
    for (i, a) in arrays.iter().enumerate() {
        if a.shape.len() > MAX_NDIM {
            return Err(format!(
                "array #{i} has {} dimensions; at most {MAX_NDIM} are supported",
                a.shape.len()
            ));
        }
        let expected = byte_len(&a.shape, a.dtype).map_err(|e| format!("array #{i}: {e}"))?;
        if a.data.len() != expected {
            return Err(format!(
                "array #{i} of shape {:?} and dtype {} needs {expected} data bytes, has {}",
                a.shape,
                a.dtype,
                a.data.len()
            ));
        }
        out.extend_from_slice(&magic.to_le_bytes());
        out.extend_from_slice(&0i32.to_le_bytes()); // dense storage
        out.extend_from_slice(&(a.shape.len() as i32).to_le_bytes());
        for &d in &a.shape {
            let d = i64::try_from(d).map_err(|_| format!("array #{i}: dimension {d} too large"))?;
            out.extend_from_slice(&d.to_le_bytes());
        }
        out.extend_from_slice(&CPU_CONTEXT.0.to_le_bytes());
        out.extend_from_slice(&CPU_CONTEXT.1.to_le_bytes());
        out.extend_from_slice(&a.dtype.code().to_le_bytes());
        out.extend_from_slice(&a.data);
    }
    put_u64(&mut out, names.len());
    for name in names {
        put_u64(&mut out, name.len());
        out.extend_from_slice(name.as_bytes());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn arr(dtype: DType, shape: &[usize], data: Vec<u8>) -> StoredArray {
        StoredArray { dtype, shape: shape.to_vec(), data }
    }

    /// List header with `n` arrays.
    fn header(n: u64) -> Vec<u8> {
        [LIST_MAGIC, 0, n].iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    fn err_text(bytes: &[u8]) -> String {
        match decode(bytes) {
            Ok(r) => panic!("expected an error, got {r:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn sample() -> (Vec<StoredArray>, Vec<&'static str>) {
        let a = arr(DType::F32, &[2, 3], f32_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
        let b = arr(DType::I64, &[1], 7i64.to_le_bytes().to_vec());
        let c = arr(DType::F16, &[2], vec![0x00, 0x3c, 0x00, 0xc0]);
        (vec![a, b, c], vec!["arg:w", "aux:b", "naïve"])
    }

    #[test]
    fn v2_round_trip_matches_inventory_dump() {
        let (arrays, names) = sample();
        let refs: Vec<&StoredArray> = arrays.iter().collect();
        let bytes = encode(&refs, &names).unwrap();
        // First record: magic, stype 0, ndim 2, dims 2 and 3, context (1, 0), type flag 0.
        let mut rec = MAGIC_V2.to_le_bytes().to_vec();
        rec.extend(0i32.to_le_bytes());
        rec.extend(2i32.to_le_bytes());
        rec.extend(2i64.to_le_bytes());
        rec.extend(3i64.to_le_bytes());
        rec.extend([1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&bytes[..24], header(3).as_slice());
        assert_eq!(&bytes[24..24 + rec.len()], rec.as_slice());
        let (back, back_names) = decode(&bytes).unwrap();
        assert_eq!(back, arrays);
        assert_eq!(back_names, names);
        assert_eq!(back[2].to_f64_vec(), vec![1.0, -2.0]);
        assert_eq!(back[1].to_f64_vec(), vec![7.0]);
    }

    #[test]
    fn list_file_has_no_names() {
        let (arrays, _) = sample();
        let bytes = encode(&[&arrays[0]], &[]).unwrap();
        let (back, names) = decode(&bytes).unwrap();
        assert!(names.is_empty());
        assert_eq!(back, vec![arrays[0].clone()]);
        assert_eq!(&bytes[bytes.len() - 8..], &0u64.to_le_bytes());
    }

    #[test]
    fn scalar_or_zero_size_makes_the_whole_file_v3() {
        let scalar = arr(DType::F32, &[], f32_bytes(&[3.5]));
        let empty = arr(DType::F32, &[0, 3], vec![]);
        let vec = arr(DType::F32, &[2], f32_bytes(&[1.0, 2.0]));
        for extra in [&scalar, &empty] {
            let bytes = encode(&[&vec, extra], &["v", "x"]).unwrap();
            assert_eq!(&bytes[24..28], &MAGIC_V3.to_le_bytes());
            let (back, _) = decode(&bytes).unwrap();
            assert_eq!(back, vec![vec.clone(), extra.clone()]);
        }
        assert_eq!(scalar.numel(), 1);
        assert_eq!(empty.numel(), 0);
        let bytes = encode(&[&vec], &[]).unwrap();
        assert_eq!(&bytes[24..28], &MAGIC_V2.to_le_bytes());
    }

    #[test]
    fn v1_record_has_no_storage_type() {
        let mut b = header(1);
        b.extend(MAGIC_V1.to_le_bytes());
        b.extend(2i32.to_le_bytes());
        b.extend(1i64.to_le_bytes());
        b.extend(2i64.to_le_bytes());
        b.extend(1i32.to_le_bytes());
        b.extend(0i32.to_le_bytes());
        b.extend(0i32.to_le_bytes());
        b.extend(f32_bytes(&[1.5, -2.0]));
        b.extend(1u64.to_le_bytes());
        b.extend(1u64.to_le_bytes());
        b.extend(b"w");
        let (arrays, names) = decode(&b).unwrap();
        assert_eq!(names, vec!["w"]);
        assert_eq!(arrays, vec![arr(DType::F32, &[1, 2], f32_bytes(&[1.5, -2.0]))]);
    }

    #[test]
    fn v0_record_starts_with_ndim_and_u32_dims() {
        // Like MXNet's legacy_ndarray.v0 fixture: arange arrays with no magic.
        let mut b = header(2);
        for k in 0..2u32 {
            b.extend(2u32.to_le_bytes()); // ndim, in place of a magic
            b.extend(2u32.to_le_bytes());
            b.extend(3u32.to_le_bytes());
            b.extend(1i32.to_le_bytes());
            b.extend(0i32.to_le_bytes());
            b.extend(1i32.to_le_bytes()); // float64
            for x in 0..6 {
                b.extend(f64::from(x + 10 * k).to_le_bytes());
            }
        }
        b.extend(0u64.to_le_bytes());
        let (arrays, names) = decode(&b).unwrap();
        assert!(names.is_empty());
        assert_eq!(arrays.len(), 2);
        assert_eq!(arrays[1].shape, vec![2, 3]);
        assert_eq!(arrays[1].dtype, DType::F64);
        assert_eq!(arrays[1].to_f64_vec(), vec![10.0, 11.0, 12.0, 13.0, 14.0, 15.0]);
    }

    #[test]
    fn truncation_at_every_offset_is_an_error() {
        let (arrays, names) = sample();
        let scalar = arr(DType::F32, &[], f32_bytes(&[3.5]));
        let refs: Vec<&StoredArray> = arrays.iter().chain([&scalar]).collect();
        let bytes = encode(&refs, &[names.as_slice(), &["s"]].concat()).unwrap();
        assert!(decode(&bytes).is_ok());
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "prefix of {cut} bytes decoded");
        }
    }

    #[test]
    fn lying_counts_and_shapes_fail_fast() {
        // Array count 2^60.
        let msg = err_text(&header(1 << 60));
        assert!(msg.contains("array count"), "{msg}");
        // ndim 2^31 - 1, and ndim -2.
        for ndim in [i32::MAX, -2] {
            let mut b = header(1);
            b.extend(MAGIC_V2.to_le_bytes());
            b.extend(0i32.to_le_bytes());
            b.extend(ndim.to_le_bytes());
            b.extend([0u8; 64]);
            assert!(err_text(&b).contains("ndim"));
        }
        // Dims whose product overflows, and a huge but non-overflowing one.
        for dims in [[1i64 << 40, 1 << 40], [1 << 40, 1]] {
            let mut b = header(1);
            b.extend(MAGIC_V2.to_le_bytes());
            b.extend(0i32.to_le_bytes());
            b.extend(2i32.to_le_bytes());
            dims.iter().for_each(|d| b.extend(d.to_le_bytes()));
            b.extend([1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            b.extend(0u64.to_le_bytes());
            let msg = err_text(&b);
            assert!(msg.contains("too large") || msg.contains("truncated"), "{msg}");
        }
        // Name count and name length 2^63.
        let mut b = header(0);
        b.extend((1u64 << 63).to_le_bytes());
        assert!(err_text(&b).contains("name count"));
        let one = arr(DType::U8, &[1], vec![9]);
        let mut b = encode(&[&one], &["a"]).unwrap();
        let len_at = b.len() - 9;
        b[len_at..len_at + 8].copy_from_slice(&(1u64 << 63).to_le_bytes());
        assert!(err_text(&b).contains("name length"));
    }

    #[test]
    fn clear_errors_for_what_mixnet_refuses() {
        let one = arr(DType::F32, &[1], f32_bytes(&[1.0]));
        let good = encode(&[&one], &["a"]).unwrap();
        let patch = |at: usize, v: i32| {
            let mut b = good.clone();
            b[at..at + 4].copy_from_slice(&v.to_le_bytes());
            err_text(&b)
        };
        // Offsets in the record: magic 24, stype 28, ndim 32, dim 36, context 44, type flag 52.
        assert!(patch(28, 7).contains("unknown storage type 7"));
        assert!(patch(52, 9).contains("unsupported dtype code 9 (uint16)"));
        assert!(patch(24, 0x1234_5678).contains("unknown array magic 0x12345678"));
        assert!(patch(32, 0).contains("array #0 is a none NDArray"));
        assert!(patch(32, -1).contains("none NDArray"));
        // Names count that is neither 0 nor n.
        let mut b = good.clone();
        let at = good.len() - 17;
        b[at..at + 8].copy_from_slice(&2u64.to_le_bytes());
        b.extend(1u64.to_le_bytes());
        b.extend(b"b");
        assert!(err_text(&b).contains("1 arrays but 2 names"));
        // Trailing garbage, bad list magic, invalid UTF-8 name.
        assert!(err_text(&[good.as_slice(), &[0]].concat()).contains("unexpected bytes"));
        assert!(err_text(&[0u8; 32]).contains("not an NDArray file"));
        let mut b = good.clone();
        let last = b.len() - 1;
        b[last] = 0xff;
        assert!(err_text(&b).contains("UTF-8"));
    }

    #[test]
    fn sparse_is_refused_with_the_array_name() {
        // A 3x4 csr matrix with 3 values, as MXNet writes it.
        let shape = |dims: &[i64]| -> Vec<u8> {
            let mut v = (dims.len() as i32).to_le_bytes().to_vec();
            dims.iter().for_each(|d| v.extend(d.to_le_bytes()));
            v
        };
        let mut b = header(1);
        b.extend(MAGIC_V2.to_le_bytes());
        b.extend(2i32.to_le_bytes());
        b.extend(shape(&[3]));
        b.extend(shape(&[3, 4]));
        b.extend([1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        b.extend(6i32.to_le_bytes());
        b.extend(shape(&[4]));
        b.extend(6i32.to_le_bytes());
        b.extend(shape(&[3]));
        b.extend(f32_bytes(&[1.5, 2.0, -3.0]));
        [0i64, 1, 1, 3, 1, 0, 2].iter().for_each(|x| b.extend(x.to_le_bytes()));
        b.extend(1u64.to_le_bytes());
        b.extend(1u64.to_le_bytes());
        b.extend(b"m");
        let msg = err_text(&b);
        assert!(msg.contains("array #0 ('m') has unsupported storage type csr"), "{msg}");
        let msg = err_text(&b[..b.len() - 30]);
        assert!(msg.contains("array #0 has unsupported storage type csr"), "{msg}");
    }

    #[test]
    fn encode_checks_its_input() {
        let a = arr(DType::F32, &[2], vec![0; 7]);
        assert!(encode(&[&a], &[]).unwrap_err().to_string().contains("needs 8 data bytes"));
        let b = arr(DType::F32, &[2], vec![0; 8]);
        assert!(encode(&[&b], &["x", "y"]).is_err());
        let deep = arr(DType::U8, &[1; 33], vec![0]);
        assert!(encode(&[&deep], &[]).is_err());
    }

    #[test]
    fn to_f64_covers_every_dtype() {
        let cases = [
            (DType::F64, (-0.25f64).to_le_bytes().to_vec(), -0.25),
            (DType::BF16, vec![0x49, 0x40], 3.140625),
            (DType::I32, (-5i32).to_le_bytes().to_vec(), -5.0),
            (DType::U8, vec![200], 200.0),
            (DType::I8, vec![0x80], -128.0),
            (DType::Bool, vec![1], 1.0),
        ];
        for (dtype, data, want) in cases {
            assert_eq!(arr(dtype, &[1], data).to_f64_vec(), vec![want], "{dtype}");
        }
    }
}
