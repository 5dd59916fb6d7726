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

/// Fit `y = w x + b` to `points` by gradient descent on the mean squared error, with the
/// autograd contract calls only: `attach_grad`, `autograd::record`, `autograd::backward`,
/// `NDArray::grad`. Returns (w, b, final loss).
pub fn fit_line(points: &[(f32, f32)], steps: usize, lr: f32) -> mixnet::Result<(f32, f32, f32)> {
    use mixnet::autograd;
    let n = points.len();
    let x = NDArray::from_vec(points.iter().map(|p| p.0).collect::<Vec<_>>(), [n])?;
    let y = NDArray::from_vec(points.iter().map(|p| p.1).collect::<Vec<_>>(), [n])?;
    let (mut w, mut b) = (0.0f32, 0.0f32);
    let mut loss = f32::NAN;
    for _ in 0..steps {
        let wa = NDArray::from_vec(vec![w], [1])?;
        let ba = NDArray::from_vec(vec![b], [1])?;
        wa.attach_grad()?;
        ba.attach_grad()?;
        let l = {
            let _recording = autograd::record(true);
            let pred = imperative::invoke("broadcast_mul", &[x.clone(), wa.clone()], &[])?.remove(0);
            let pred = imperative::invoke("broadcast_add", &[pred, ba.clone()], &[])?.remove(0);
            let err = imperative::invoke("elemwise_sub", &[pred, y.clone()], &[])?.remove(0);
            let sq = imperative::invoke("square", &[err], &[])?.remove(0);
            imperative::invoke("mean", &[sq], &[])?.remove(0)
        };
        autograd::backward(std::slice::from_ref(&l), &[])?;
        let missing = || mixnet::Error::Invalid("attach_grad left no gradient buffer".into());
        let gw = wa.grad().ok_or_else(missing)?.to_f64_vec()?[0] as f32;
        let gb = ba.grad().ok_or_else(missing)?.to_f64_vec()?[0] as f32;
        w -= lr * gw;
        b -= lr * gb;
        loss = l.to_f64_vec()?[0] as f32;
    }
    Ok((w, b, loss))
}
