//! What an external tool does with mixnet through the stable contract: load an MXNet
//! `.params` file, run an operator by MXNet name, read the result, save it back.

use std::path::Path;

use mixnet::{imperative, ndarray, NDArray};

/// Load `path` (an MXNet NDArray file), add the first two arrays with `broadcast_add`,
/// save the sum as a dict file at `out`, and return (shape, dtype, values) of the sum.
pub fn add_first_two(path: &Path, out: &Path) -> mixnet::Result<(Vec<usize>, String, Vec<f64>)> {
    let (arrays, names) = ndarray::load(path)?;
    if arrays.len() < 2 {
        return Err(mixnet::Error::Invalid(format!(
            "{} holds {} arrays ({names:?})",
            path.display(),
            arrays.len()
        )));
    }
    let sum: NDArray = imperative::invoke("broadcast_add", &arrays[..2], &[])?.remove(0);
    sum.wait_to_read()?;
    mixnet::waitall()?;
    ndarray::save(out, std::slice::from_ref(&sum), &["sum"])?;
    let shape: Vec<usize> = sum.shape().to_vec();
    Ok((shape, sum.dtype().to_string(), sum.to_f64_vec()?))
}
