//! `add_n` (`ElementWiseSum`): the sum of `num_args` same-shape arrays in one pass, as
//! gradient accumulation uses it. It is a reduction across arrays rather than axes.

use std::sync::Arc;

use mixnet_kernels::reduce::add_n;

use crate::op::{Attrs, Blob, GradContext, OpContext, Operator, Registry, TensorInfo};
use crate::{with_dtype, DType, Error, NDArray, Result};

/// A configured `add_n` over `n` inputs.
pub struct AddN {
    n: usize,
}

impl Operator for AddN {
    fn name(&self) -> &'static str {
        "add_n"
    }

    fn num_inputs(&self) -> usize {
        self.n
    }

    fn input_names(&self) -> Vec<String> {
        (0..self.n).map(|i| format!("arg{i}")).collect()
    }

    fn inplace(&self) -> &[(usize, usize)] {
        &[(0, 0)]
    }

    fn has_gradient(&self) -> bool {
        true
    }

    /// Each input receives the output's gradient.
    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        Ok(vec![Some(ctx.out_grads[0].clone()); self.n])
    }

    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        let first = &inputs[0];
        if first.dtype == DType::Bool {
            return Err(Error::op("add_n", "bool arrays are not supported; Cast first"));
        }
        if let Some((i, x)) = inputs.iter().enumerate().find(|(_, x)| *x != first) {
            return Err(Error::op(
                "add_n",
                format!("arg{i} is {x} but arg0 is {first}; all inputs must have one shape and dtype"),
            ));
        }
        Ok(vec![first.clone()])
    }

    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob], outputs: &mut [Blob]) -> Result<()> {
        if outputs[0].numel() == 0 {
            return Ok(());
        }
        with_dtype!(outputs[0].dtype(), T => {
            let xs = inputs.iter().map(|b| b.slice::<T>()).collect::<Result<Vec<_>>>()?;
            add_n(&xs, outputs[0].slice_mut::<T>()?);
        });
        Ok(())
    }
}

fn build(name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    let n = attrs
        .opt_int("num_args")?
        .ok_or_else(|| Error::op(name, "attribute num_args (the number of inputs) is required"))?;
    if n < 1 {
        return Err(Error::op(name, format!("num_args={n} must be at least 1")));
    }
    Ok(Arc::new(AddN { n: n as usize }))
}

pub(super) fn register(r: &mut Registry) {
    r.register_family(build, &[("add_n", &["ElementWiseSum"])]);
}
