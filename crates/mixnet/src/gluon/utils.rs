//! Helpers from MXNet's `gluon.utils`.

use crate::{Error, NDArray, Result};

/// Rescale `arrays` in place so that their joint L2 norm is at most `max_norm`, and
/// return that norm before scaling (MXNet's `clip_global_norm`). Arrays are scaled by
/// `min(1, max_norm / (norm + 1e-8))`; as in MXNet a NaN or infinite norm still scales
/// them (to NaN), so check the returned norm with `is_finite` before trusting them.
pub fn clip_global_norm(arrays: &[NDArray], max_norm: f64) -> Result<f64> {
    if arrays.is_empty() {
        return Err(Error::Invalid("clip_global_norm: no arrays given".into()));
    }
    let _pause = crate::autograd::pause(false);
    let mut sum_sq = 0.0f64;
    for a in arrays {
        // Norms in f32 (of a copy only when `a` is another dtype).
        let n =
            if a.dtype() == crate::DType::F32 { a.norm()? } else { a.astype(crate::DType::F32)?.norm()? };
        let n = n.as_scalar::<f32>()? as f64;
        sum_sq += n * n;
    }
    let total = sum_sq.sqrt();
    let scale = (max_norm / (total + 1e-8)).min(1.0);
    let scale = if total.is_finite() { scale } else { f64::NAN };
    if scale != 1.0 {
        for a in arrays {
            a.assign_from((a * scale)?)?;
        }
    }
    Ok(total)
}
