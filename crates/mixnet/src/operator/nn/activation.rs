//! `Activation` (relu, sigmoid, tanh, softrelu, softsign), MXNet's `nn/activation`.

use std::sync::Arc;

use mixnet_kernels::nn::{act_backward, act_forward, Act};

use super::kernel::{check_float, info, load, run_kernel, store, with_real};
use crate::op::{Attrs, Blob, GradContext, OpContext, OpDef, Operator, Registry, TensorInfo};
use crate::{Error, NDArray, Result};

/// A configured `Activation`.
pub struct Activation {
    act: Act,
}

fn build(name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    let act_type =
        attrs.get("act_type").ok_or_else(|| Error::op(name, "required attribute act_type is missing"))?;
    let act = match act_type.trim().trim_matches('\'') {
        "relu" => Act::Relu,
        "sigmoid" => Act::Sigmoid,
        "tanh" => Act::Tanh,
        "softrelu" => Act::SoftRelu,
        "softsign" => Act::SoftSign,
        other => {
            return Err(Error::op(
                name,
                format!("act_type '{other}' must be one of relu, sigmoid, tanh, softrelu, softsign"),
            ))
        }
    };
    Ok(Arc::new(Activation { act }))
}

/// `out = act(x)` on the engine's blobs.
pub(crate) fn forward_blobs(op: &str, act: Act, x: &Blob<'_>, out: &mut Blob<'_>) -> Result<()> {
    with_real!(x.dtype(), op, R => {
        let xs = load::<R>(x)?;
        store::<R>(out, |o| {
            act_forward(act, &xs, o);
            Ok(())
        })
    })
}

/// `dx = dy * act'(x, y)` as one engine operation (MXNet's `_backward_Activation`).
pub(crate) fn backward(
    name: &'static str,
    act: Act,
    dy: &NDArray,
    x: &NDArray,
    y: &NDArray,
) -> Result<NDArray> {
    let out = vec![info(x)];
    let mut r = run_kernel(name, &[dy.clone(), x.clone(), y.clone()], out, move |_, ins, outs| {
        with_real!(ins[0].dtype(), name, R => {
            let (dy, x, y) = (load::<R>(&ins[0])?, load::<R>(&ins[1])?, load::<R>(&ins[2])?);
            store::<R>(&mut outs[0], |dx| {
                act_backward(act, &dy, &x, &y, dx);
                Ok(())
            })
        })
    })?;
    Ok(r.remove(0))
}

impl Operator for Activation {
    fn name(&self) -> &'static str {
        "Activation"
    }
    fn num_inputs(&self) -> usize {
        1
    }
    fn inplace(&self) -> &[(usize, usize)] {
        &[(0, 0)]
    }
    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        check_float("Activation", "data", &inputs[0])?;
        Ok(vec![inputs[0].clone()])
    }
    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        forward_blobs("Activation", self.act, &inputs[0], &mut outputs[0])
    }
    fn has_gradient(&self) -> bool {
        true
    }
    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let g =
            backward("_backward_Activation", self.act, &ctx.out_grads[0], &ctx.inputs[0], &ctx.outputs[0])?;
        Ok(vec![Some(g)])
    }
}

pub(crate) fn register(r: &mut Registry) {
    r.register(OpDef { name: "Activation", aliases: &[], build });
}
