//! `softmax`, `log_softmax`, `softmin` (MXNet's `nn/softmax-inl.h`) and the legacy
//! `SoftmaxActivation`.
//!
//! `softmax` alone takes `use_length=True` with a second input `length` (int32/int64,
//! the data's shape without `axis`): entries past a row's length are 0 and get no
//! gradient. `dtype` sets a float output type; the computation runs in the input's type.

use std::sync::Arc;

use mixnet_kernels::nn::{softmax, softmax_backward, softmax_with, SoftmaxKind};
use mixnet_kernels::Element;

use super::kernel::{
    check_float, info, load, load_i64, norm_axis, run_kernel, split_at_axis, store, with_real,
};
use crate::op::{Attrs, Blob, GradContext, OpContext, OpDef, Operator, Registry, TensorInfo};
use crate::{DType, Error, NDArray, Result};

/// A configured `softmax`, `log_softmax` or `softmin`.
pub struct Softmax {
    name: &'static str,
    kind: SoftmaxKind,
    negate: bool,
    axis: i64,
    temperature: f64,
    dtype: Option<DType>,
    use_length: bool,
}

fn build(name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    let (kind, negate) = match name {
        "softmax" => (SoftmaxKind::Softmax, false),
        "log_softmax" => (SoftmaxKind::LogSoftmax, false),
        "softmin" => (SoftmaxKind::Softmax, true),
        _ => return Err(Error::op(name, "not a softmax operator")),
    };
    let axis = attrs.int("axis", -1)?;
    let temperature = attrs.opt_float("temperature")?.unwrap_or(1.0);
    let dtype = attrs.dtype("dtype")?;
    if let Some(d) = dtype {
        if !matches!(d, DType::F16 | DType::F32 | DType::F64) {
            return Err(Error::op(name, format!("dtype must be float16, float32 or float64, got {d}")));
        }
    }
    let use_length = match attrs.get("use_length") {
        None => false,
        Some(v) if v.trim() == "None" => false,
        Some(_) => attrs.bool("use_length", false)?,
    };
    if use_length && name != "softmax" {
        return Err(Error::op(name, "use_length is supported by softmax only"));
    }
    Ok(Arc::new(Softmax { name, kind, negate, axis, temperature, dtype, use_length }))
}

impl Softmax {
    fn dims(&self, shape: &[usize]) -> Result<(usize, usize, usize)> {
        Ok(split_at_axis(shape, norm_axis(self.name, self.axis, shape.len())?))
    }
}

impl Operator for Softmax {
    fn name(&self) -> &'static str {
        self.name
    }
    fn num_inputs(&self) -> usize {
        1 + self.use_length as usize
    }
    fn input_names(&self) -> Vec<String> {
        if self.use_length {
            vec!["data".into(), "length".into()]
        } else {
            vec!["data".into()]
        }
    }
    fn inplace(&self) -> &[(usize, usize)] {
        &[(0, 0)]
    }
    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        let data = &inputs[0];
        check_float(self.name, "data", data)?;
        let axis = norm_axis(self.name, self.axis, data.shape.ndim())?;
        if self.use_length {
            let len = &inputs[1];
            if !matches!(len.dtype, DType::I32 | DType::I64) {
                return Err(Error::op(
                    self.name,
                    format!("length must be int32 or int64, got {}", len.dtype),
                ));
            }
            let d = data.shape.dims();
            let mut want: Vec<usize> =
                d.iter().enumerate().filter(|&(i, _)| i != axis).map(|(_, &n)| n).collect();
            if want.is_empty() {
                want.push(1);
            }
            if len.shape.dims() != want.as_slice() {
                return Err(Error::op(
                    self.name,
                    format!(
                        "length has shape {}, expected {want:?} (data's shape without axis {axis})",
                        len.shape
                    ),
                ));
            }
        }
        Ok(vec![TensorInfo { shape: data.shape.clone(), dtype: self.dtype.unwrap_or(data.dtype) }])
    }
    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let dims = self.dims(inputs[0].shape().dims())?;
        let length = if self.use_length { Some(load_i64(&inputs[1])?) } else { None };
        let (kind, negate, t) = (self.kind, self.negate, self.temperature);
        // A wider output than the input (`dtype`) shows the exponentials' last bits.
        let rounded = outputs[0].dtype() != inputs[0].dtype();
        with_real!(inputs[0].dtype(), self.name, R => {
            let x = load::<R>(&inputs[0])?;
            store::<R>(&mut outputs[0], |o| {
                softmax_with(&x, o, dims, kind, negate, R::from_f64(t), length.as_deref(), rounded);
                Ok(())
            })
        })
    }
    fn has_gradient(&self) -> bool {
        true
    }
    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let (x, y, dy) = (&ctx.inputs[0], &ctx.outputs[0], &ctx.out_grads[0]);
        let dims = self.dims(x.shape().dims())?;
        let (kind, negate, t, name, use_length) =
            (self.kind, self.negate, self.temperature, self.name, self.use_length);
        let mut ins = vec![dy.clone(), y.clone()];
        if use_length {
            ins.push(ctx.inputs[1].clone());
        }
        let bwd = match name {
            "softmax" => "_backward_softmax",
            "log_softmax" => "_backward_log_softmax",
            _ => "_backward_softmin",
        };
        let mut r = run_kernel(bwd, &ins, vec![info(x)], move |_, ins, outs| {
            let length = if use_length { Some(load_i64(&ins[2])?) } else { None };
            // In the output's type, as MXNet; the result converts to the data's dtype.
            with_real!(ins[1].dtype(), name, R => {
                let (dy, y) = (load::<R>(&ins[0])?, load::<R>(&ins[1])?);
                store::<R>(&mut outs[0], |dx| {
                    softmax_backward(&y, &dy, dx, dims, kind, negate, R::from_f64(t), length.as_deref());
                    Ok(())
                })
            })
        })?;
        let mut grads = vec![Some(r.remove(0))];
        if use_length {
            let l = &ctx.inputs[1];
            grads.push(Some(NDArray::zeros(l.shape().clone(), l.dtype(), l.context())?));
        }
        Ok(grads)
    }
}

/// `SoftmaxActivation` (deprecated in MXNet): softmax over all but the first axis
/// (`mode='instance'`) or over axis 1 (`mode='channel'`), float32 only.
pub struct SoftmaxActivation {
    channel: bool,
}

fn build_activation(_name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    let channel = attrs.choice("mode", &["instance", "channel"], "instance")? == "channel";
    Ok(Arc::new(SoftmaxActivation { channel }))
}

const SA: &str = "SoftmaxActivation";

/// `(n, k, rest)` of a shape (a 1-D shape is one row).
fn nkr(shape: &[usize]) -> (usize, usize, usize) {
    let n = shape.first().copied().unwrap_or(1);
    let k = shape.get(1).copied().unwrap_or(1);
    let total: usize = shape.iter().product();
    (n, k, if n * k == 0 { 0 } else { total / n / k })
}

impl Operator for SoftmaxActivation {
    fn name(&self) -> &'static str {
        SA
    }
    fn num_inputs(&self) -> usize {
        1
    }
    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        let x = &inputs[0];
        if x.dtype != DType::F32 {
            return Err(Error::op(SA, format!("supports float32 only, got {}", x.dtype)));
        }
        if self.channel && x.shape.ndim() < 3 {
            return Err(Error::op(SA, "mode=channel needs at least 3 dimensions"));
        }
        if x.shape.ndim() == 0 {
            return Err(Error::op(SA, "data must have at least one dimension"));
        }
        Ok(vec![x.clone()])
    }
    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let shape = inputs[0].shape().dims();
        let dims = if self.channel {
            nkr(shape)
        } else {
            let n = shape[0];
            (n, shape.iter().product::<usize>().checked_div(n).unwrap_or(0), 1)
        };
        let x = inputs[0].slice::<f32>()?;
        softmax(x, outputs[0].slice_mut::<f32>()?, dims, SoftmaxKind::Softmax, false, 1.0, None);
        Ok(())
    }
    fn has_gradient(&self) -> bool {
        true
    }
    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let (y, dy) = (&ctx.outputs[0], &ctx.out_grads[0]);
        // MXNet's backward reduces over axis 1 of (N, C, rest) in both modes (for
        // instance mode on more than 2 dimensions that is not softmax's derivative; kept).
        let dims = nkr(y.shape().dims());
        let mut r = run_kernel(
            "_backward_SoftmaxActivation",
            &[dy.clone(), y.clone()],
            vec![info(y)],
            move |_, ins, outs| {
                let (dy, y) = (ins[0].slice::<f32>()?, ins[1].slice::<f32>()?);
                softmax_backward(
                    y,
                    dy,
                    outs[0].slice_mut::<f32>()?,
                    dims,
                    SoftmaxKind::Softmax,
                    false,
                    1.0,
                    None,
                );
                Ok(())
            },
        )?;
        Ok(vec![Some(r.remove(0))])
    }
}

pub(crate) fn register(r: &mut Registry) {
    r.register_family(build, &[("softmax", &[]), ("log_softmax", &[]), ("softmin", &[])]);
    r.register(OpDef { name: SA, aliases: &[], build: build_activation });
}
