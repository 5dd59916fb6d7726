//! `khatri_rao` (MXNet's `contrib/krprod.cc`): the column-wise Kronecker product of
//! matrices `A_i` (`M_i × N`) into `(M_1···M_n) × N`. MXNet registers no gradient for it.

use std::sync::Arc;

use super::nn::kernel::{load, write};
use crate::op::{Attrs, Blob, OpContext, Operator, Registry, TensorInfo};
use crate::{Error, Result, Shape};

const NAME: &str = "khatri_rao";

/// A configured `khatri_rao`.
pub struct KhatriRao {
    num_args: usize,
}

fn build(_name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    match attrs.opt_int("num_args")? {
        Some(n) if n >= 1 => Ok(Arc::new(KhatriRao { num_args: n as usize })),
        Some(n) => Err(Error::op(NAME, format!("num_args must be at least 1, got {n}"))),
        None => Err(Error::op(NAME, "required attribute num_args is missing")),
    }
}

impl Operator for KhatriRao {
    fn name(&self) -> &'static str {
        NAME
    }
    fn num_inputs(&self) -> usize {
        self.num_args
    }
    fn input_names(&self) -> Vec<String> {
        (0..self.num_args).map(|i| format!("arg{i}")).collect()
    }
    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        let dtype = inputs[0].dtype;
        let mut rows = 1;
        let mut cols = None;
        for x in inputs {
            let [m, n] = *x.shape.dims() else {
                return Err(Error::op(NAME, format!("inputs must be matrices, got {}", x.shape)));
            };
            if *cols.get_or_insert(n) != n || x.dtype != dtype || !dtype.is_float() {
                return Err(Error::op(
                    NAME,
                    format!("inputs must be float matrices with the same columns and dtype, got {x}"),
                ));
            }
            rows *= m;
        }
        Ok(vec![TensorInfo::new(Shape::new(&[rows, cols.unwrap_or(0)]), dtype)])
    }
    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let n = inputs[0].shape().dims()[1];
        let mut acc: Vec<f64> = vec![1.0; n];
        let mut rows = 1;
        for b in inputs.iter() {
            let (m, a) = (b.shape().dims()[0], load::<f64>(b)?);
            let mut next = vec![0.0; rows * m * n];
            for r in 0..rows {
                for i in 0..m {
                    for j in 0..n {
                        next[(r * m + i) * n + j] = acc[r * n + j] * a[i * n + j];
                    }
                }
            }
            acc = next;
            rows *= m;
        }
        write::<f64>(&mut outputs[0], &acc)
    }
}

pub(crate) fn register(r: &mut Registry) {
    r.register_family(build, &[(NAME, &[])]);
}
