//! `_ravel_multi_index` / `_unravel_index` (aliases without the underscore; MXNet's
//! `tensor/ravel.h`): between `(ndim, N)` coordinates and `(N,)` flat indices for a row-major
//! `shape`. As MXNet: no bounds checks (the first coordinate of unravel keeps any
//! overflow), results in the input's dtype, zero gradients.

use std::sync::Arc;

use super::nn::kernel::{info, load_i64, write};
use crate::op::{Attrs, Blob, GradContext, OpContext, Operator, Registry, TensorInfo};
use crate::{Error, NDArray, Result, Shape};

/// A configured ravel or unravel.
pub struct Ravel {
    name: &'static str,
    shape: Vec<usize>,
    unravel: bool,
}

fn build(name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    let shape =
        attrs.tuple("shape")?.ok_or_else(|| Error::op(name, "required attribute shape is missing"))?;
    let shape = shape
        .into_iter()
        .map(|d| usize::try_from(d).ok().filter(|&d| d > 0))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| Error::op(name, "shape must hold positive sizes"))?;
    if shape.is_empty() {
        return Err(Error::op(name, "shape must have at least one dimension"));
    }
    Ok(Arc::new(Ravel { name, shape, unravel: name == "_unravel_index" }))
}

impl Operator for Ravel {
    fn name(&self) -> &'static str {
        self.name
    }
    fn num_inputs(&self) -> usize {
        1
    }
    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        let (x, nd) = (&inputs[0], self.shape.len());
        let out = match (self.unravel, x.shape.dims()) {
            (true, [n]) => Shape::new(&[nd, *n]),
            (false, [d, n]) if *d == nd => Shape::new(&[*n]),
            _ => {
                let want = if self.unravel { "(N,)".to_string() } else { format!("({nd}, N)") };
                return Err(Error::op(
                    self.name,
                    format!("data must be {want} for shape {:?}, got {}", self.shape, x.shape),
                ));
            }
        };
        Ok(vec![TensorInfo::new(out, x.dtype)])
    }
    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let v = load_i64(&inputs[0])?;
        let nd = self.shape.len();
        let out: Vec<f64> = if self.unravel {
            let n = v.len();
            let mut out = vec![0.0; nd * n];
            for (i, &flat) in v.iter().enumerate() {
                let mut idx = flat;
                for j in (1..nd).rev() {
                    let s = self.shape[j] as i64;
                    out[j * n + i] = (idx - idx.div_euclid(s) * s) as f64;
                    idx = idx.div_euclid(s);
                }
                out[i] = idx as f64;
            }
            out
        } else {
            let n = v.len() / nd;
            (0..n)
                .map(|i| (0..nd).fold(0i64, |acc, j| acc * self.shape[j] as i64 + v[j * n + i]) as f64)
                .collect()
        };
        write::<f64>(&mut outputs[0], &out)
    }
    fn has_gradient(&self) -> bool {
        true
    }
    /// MXNet's `MakeZeroGradNodes`.
    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let x = info(&ctx.inputs[0]);
        Ok(vec![Some(NDArray::zeros(x.shape, x.dtype, ctx.inputs[0].context())?)])
    }
}

pub(crate) fn register(r: &mut Registry) {
    r.register_family(
        build,
        &[("_ravel_multi_index", &["ravel_multi_index"]), ("_unravel_index", &["unravel_index"])],
    );
}
