//! `Pooling_v1` (MXNet's legacy `pooling_v1-inl.h`): 2-D max/avg/sum pooling on a
//! zero-padded image. It differs from `Pooling` where windows meet the padding: padding
//! counts as 0 in max, avg always divides by the kernel area, and the max gradient goes to
//! every element equal to its window's maximum.

use std::sync::Arc;

use mixnet_kernels::pool::{PoolV1, PoolV1Kind};

use super::kernel::{check_float, info, load, run_kernel, store, with_real};
use crate::op::{Attrs, Blob, GradContext, OpContext, OpDef, Operator, Registry, TensorInfo};
use crate::{Error, NDArray, Result, Shape};

const NAME: &str = "Pooling_v1";

/// A configured `Pooling_v1`.
pub struct PoolingV1 {
    kind: PoolV1Kind,
    kernel: Vec<usize>,
    stride: Vec<usize>,
    pad: Vec<usize>,
    global: bool,
    full: bool,
}

fn pair(attrs: &mut Attrs<'_>, key: &str, n: usize, default: usize) -> Result<Vec<usize>> {
    match attrs.tuple(key)? {
        None => Ok(vec![default; n]),
        Some(v) if v.is_empty() => Ok(vec![default; n]),
        Some(v) if v.len() == n && v.iter().all(|&x| x >= 0) => Ok(v.iter().map(|&x| x as usize).collect()),
        Some(v) => Err(Error::op(NAME, format!("{key} {v:?} must hold {n} non-negative sizes, as kernel"))),
    }
}

fn build(_name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    let kind = match attrs.choice("pool_type", &["max", "avg", "sum"], "max")? {
        "max" => PoolV1Kind::Max,
        "avg" => PoolV1Kind::Avg,
        _ => PoolV1Kind::Sum,
    };
    let global = attrs.bool("global_pool", false)?;
    let full = attrs.choice("pooling_convention", &["valid", "full"], "valid")? == "full";
    let kernel: Vec<usize> = match attrs.tuple("kernel")? {
        Some(k) if k.iter().all(|&x| x > 0) => k.iter().map(|&x| x as usize).collect(),
        Some(k) => return Err(Error::op(NAME, format!("kernel {k:?} must hold positive sizes"))),
        None => Vec::new(),
    };
    if !global && kernel.len() != 2 {
        return Err(Error::op(
            NAME,
            format!("kernel {kernel:?}: only 2-D kernels are implemented (MXNet's v1 has no 1-D, and no 3-D forward)"),
        ));
    }
    let n = kernel.len().max(2);
    let stride = pair(attrs, "stride", n, 1)?;
    if stride.contains(&0) {
        return Err(Error::op(NAME, format!("stride {stride:?} must be positive")));
    }
    let pad = pair(attrs, "pad", n, 0)?;
    Ok(Arc::new(PoolingV1 { kind, kernel, stride, pad, global, full }))
}

impl PoolingV1 {
    fn geometry(&self, data: &Shape) -> Result<PoolV1> {
        let &[n, c, h, w] = data.dims() else {
            return Err(Error::op(NAME, format!("data {data} must be 4-D (batch, channel, y, x)")));
        };
        if self.global {
            return Ok(PoolV1 {
                kind: self.kind,
                planes: n * c,
                hw: (h, w),
                out: (1, 1),
                kernel: (h, w),
                stride: (1, 1),
                pad: (0, 0),
            });
        }
        let mut out = [0; 2];
        for (i, len) in [h, w].into_iter().enumerate() {
            let padded = len + 2 * self.pad[i];
            if self.kernel[i] > padded {
                return Err(Error::op(
                    NAME,
                    format!(
                        "kernel size ({}) exceeds input ({len} padded to {padded}) of data {data}",
                        self.kernel[i]
                    ),
                ));
            }
            let span = padded - self.kernel[i];
            out[i] = 1 + if self.full { span.div_ceil(self.stride[i]) } else { span / self.stride[i] };
        }
        Ok(PoolV1 {
            kind: self.kind,
            planes: n * c,
            hw: (h, w),
            out: (out[0], out[1]),
            kernel: (self.kernel[0], self.kernel[1]),
            stride: (self.stride[0], self.stride[1]),
            pad: (self.pad[0], self.pad[1]),
        })
    }
}

impl Operator for PoolingV1 {
    fn name(&self) -> &'static str {
        NAME
    }
    fn num_inputs(&self) -> usize {
        1
    }
    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        check_float(NAME, "data", &inputs[0])?;
        let g = self.geometry(&inputs[0].shape)?;
        let d = inputs[0].shape.dims();
        Ok(vec![TensorInfo::new(Shape::new(&[d[0], d[1], g.out.0, g.out.1]), inputs[0].dtype)])
    }
    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let g = self.geometry(inputs[0].shape())?;
        with_real!(inputs[0].dtype(), NAME, R => {
            let x = load::<R>(&inputs[0])?;
            store::<R>(&mut outputs[0], |y| {
                g.forward(&x, y);
                Ok(())
            })
        })
    }
    fn has_gradient(&self) -> bool {
        true
    }
    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let x = &ctx.inputs[0];
        let g = self.geometry(x.shape())?;
        let ins = [ctx.out_grads[0].clone(), x.clone(), ctx.outputs[0].clone()];
        let dx = run_kernel("_backward_Pooling_v1", &ins, vec![info(x)], move |_, ins, outs| {
            with_real!(ins[0].dtype(), NAME, R => {
                let (dy, x, y) = (load::<R>(&ins[0])?, load::<R>(&ins[1])?, load::<R>(&ins[2])?);
                store::<R>(&mut outs[0], |dx| {
                    g.backward(&x, &y, &dy, dx);
                    Ok(())
                })
            })
        })?;
        Ok(dx.into_iter().map(Some).collect())
    }
}

pub(crate) fn register(r: &mut Registry) {
    r.register(OpDef { name: NAME, aliases: &[], build });
}
