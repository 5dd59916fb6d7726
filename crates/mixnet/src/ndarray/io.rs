//! `load`/`save` of NDArrays in MXNet's file format (the byte layout lives in `file`).

use std::path::Path;

use super::file::{self, StoredArray};
use super::NDArray;
use crate::context::Context;
use crate::{Error, Result};

/// Load an NDArray file (`mx.nd.load`): arrays in file order, and their names (empty for
/// files saved from a list). Arrays land on `cpu(0)`.
pub fn load(path: impl AsRef<Path>) -> Result<(Vec<NDArray>, Vec<String>)> {
    let (stored, names) = file::read_file(path.as_ref())?;
    let arrays = stored
        .into_iter()
        .map(|s| NDArray::from_bytes(&s.data, s.shape, s.dtype, Context::cpu(0)))
        .collect::<Result<Vec<_>>>()?;
    Ok((arrays, names))
}

/// Save arrays (`mx.nd.save`): with `names` a dict file, without a list file. The bytes
/// are identical to MXNet 1.9.1's for the same arrays.
pub fn save(path: impl AsRef<Path>, arrays: &[NDArray], names: &[&str]) -> Result<()> {
    if !names.is_empty() && names.len() != arrays.len() {
        return Err(Error::Invalid(format!("save: {} names for {} arrays", names.len(), arrays.len())));
    }
    let stored = arrays
        .iter()
        .map(|a| Ok(StoredArray { dtype: a.dtype(), shape: a.shape().to_vec(), data: a.to_bytes()? }))
        .collect::<Result<Vec<_>>>()?;
    let refs: Vec<&StoredArray> = stored.iter().collect();
    file::write_file(path.as_ref(), &refs, names)
}
