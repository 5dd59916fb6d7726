//! `Embedding` (MXNet's `tensor/indexing_op.h`): rows of `weight` (input_dim, output_dim)
//! picked by the integer values of `data`, which are clipped into `0..input_dim` as MXNet
//! does. The gradient reaches `weight` only (dense, rows summed per index; `sparse_grad`
//! is accepted and gives the same dense result); `data` gets zeros.

use std::sync::Arc;

use super::kernel::{info, load, load_i64, run_kernel, store, with_real};
use crate::op::{Attrs, Blob, GradContext, OpContext, Operator, Registry, TensorInfo};
use crate::{with_dtype, DType, Error, NDArray, Result, Shape};

const NAME: &str = "Embedding";

/// A configured `Embedding`.
pub struct Embedding {
    input_dim: usize,
    output_dim: usize,
    dtype: DType,
}

fn build(_name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    let dim = |attrs: &mut Attrs<'_>, key: &str| -> Result<usize> {
        match attrs.opt_int(key)? {
            Some(v) if v >= 1 => Ok(v as usize),
            Some(v) => Err(Error::op(NAME, format!("{key} must be at least 1, got {v}"))),
            None => Err(Error::op(NAME, format!("required attribute {key} is missing"))),
        }
    };
    let input_dim = dim(attrs, "input_dim")?;
    let output_dim = dim(attrs, "output_dim")?;
    let dtype = attrs.dtype("dtype")?.unwrap_or(DType::F32);
    attrs.bool("sparse_grad", false)?;
    Ok(Arc::new(Embedding { input_dim, output_dim, dtype }))
}

/// Clip index values into `0..n`.
fn rows(idx: &Blob<'_>, n: usize) -> Result<Vec<usize>> {
    Ok(load_i64(idx)?.into_iter().map(|i| i.clamp(0, n as i64 - 1) as usize).collect())
}

impl Operator for Embedding {
    fn name(&self) -> &'static str {
        NAME
    }
    fn num_inputs(&self) -> usize {
        2
    }
    fn input_names(&self) -> Vec<String> {
        vec!["data".into(), "weight".into()]
    }
    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        let (data, w) = (&inputs[0], &inputs[1]);
        let want = [self.input_dim, self.output_dim];
        if w.shape.dims() != want || w.dtype != self.dtype {
            return Err(Error::op(
                NAME,
                format!(
                    "weight must be ({}, {}) {} (input_dim, output_dim; dtype), got {w}",
                    want[0], want[1], self.dtype
                ),
            ));
        }
        let mut d = data.shape.dims().to_vec();
        d.push(self.output_dim);
        Ok(vec![TensorInfo::new(Shape::new(&d), w.dtype)])
    }
    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let rows = rows(&inputs[0], self.input_dim)?;
        let k = self.output_dim;
        with_dtype!(inputs[1].dtype(), T => {
            let w = inputs[1].slice::<T>()?;
            let out = outputs[0].slice_mut::<T>()?;
            for (o, &r) in out.chunks_exact_mut(k).zip(&rows) {
                o.copy_from_slice(&w[r * k..(r + 1) * k]);
            }
        });
        Ok(())
    }
    fn has_gradient(&self) -> bool {
        true
    }
    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let (data, w, dy) = (&ctx.inputs[0], &ctx.inputs[1], &ctx.out_grads[0]);
        let (n, k) = (self.input_dim, self.output_dim);
        let dw = run_kernel(
            "_backward_Embedding",
            &[dy.clone(), data.clone()],
            vec![info(w)],
            move |_, ins, outs| {
                let rows = rows(&ins[1], n)?;
                with_real!(ins[0].dtype(), NAME, R => {
                    let dy = load::<R>(&ins[0])?;
                    store::<R>(&mut outs[0], |dw| {
                        dw.fill(<R as mixnet_kernels::Element>::ZERO);
                        for (g, &r) in dy.chunks_exact(k).zip(&rows) {
                            for (d, &v) in dw[r * k..(r + 1) * k].iter_mut().zip(g) {
                                *d = mixnet_kernels::Element::add(*d, v);
                            }
                        }
                        Ok(())
                    })
                })
            },
        )?
        .remove(0);
        let dx = NDArray::zeros(data.shape().clone(), data.dtype(), data.context())?;
        Ok(vec![Some(dx), Some(dw)])
    }
}

pub(crate) fn register(r: &mut Registry) {
    r.register_family(build, &[(NAME, &["_npx_embedding"])]);
}
