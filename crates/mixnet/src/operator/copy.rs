//! Internal in-place copy (`dst[:] = src`): how gradient buffers and `NDArray::assign`
//! are written. Not registered: MXNet exposes this as slice assignment, not an operator.

use crate::op::{Blob, OpContext, Operator, TensorInfo};
use crate::{Error, Result};

/// Writes input 1's values into input 0.
pub(crate) struct Assign;

impl Operator for Assign {
    fn name(&self) -> &'static str {
        "_assign"
    }
    fn num_inputs(&self) -> usize {
        2
    }
    fn num_outputs(&self) -> usize {
        0
    }
    fn mutate_inputs(&self) -> &[usize] {
        &[0]
    }
    fn input_names(&self) -> Vec<String> {
        vec!["dst".into(), "src".into()]
    }
    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        if inputs[0] != inputs[1] {
            return Err(Error::op("_assign", format!("cannot copy {} into {}", inputs[1], inputs[0])));
        }
        Ok(Vec::new())
    }
    fn compute(&self, _: &OpContext, inputs: &mut [Blob<'_>], _: &mut [Blob<'_>]) -> Result<()> {
        // `invoke` refused overlapping arguments for a mutated input, so the two views are
        // distinct.
        let (dst, src) = inputs.split_at_mut(1);
        mixnet_kernels::elementwise::copy(src[0].bytes()?, dst[0].bytes_mut()?);
        Ok(())
    }
}
