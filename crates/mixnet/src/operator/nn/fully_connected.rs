//! `FullyConnected`: `out = data · weightᵀ + bias`, one gemm with a transposed operand read
//! through strides. With `flatten` (the default) data is (batch, everything else); without,
//! the product runs over the last axis and the leading axes are kept.
//!
//! The gradient is the registered `_backward_FullyConnected` (inputs: output gradient, data,
//! weight; outputs: the gradients of data, weight and, with a bias, bias), one engine
//! operation for all three.

use std::sync::Arc;

use mixnet_kernels::gemm::MatMul;
use mixnet_kernels::reduce::{Reduce, Reduction};

use crate::op::{Attrs, Blob, GradContext, OpContext, Operator, Registry, TensorInfo};
use crate::shape::Shape;
use crate::{DType, Error, NDArray, Result};

const NAME: &str = "FullyConnected";
const BACKWARD: &str = "_backward_FullyConnected";

/// Parsed attributes of `FullyConnected`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FcParam {
    pub num_hidden: usize,
    pub no_bias: bool,
    pub flatten: bool,
}

impl FcParam {
    fn parse(attrs: &mut Attrs<'_>) -> Result<Self> {
        let op = attrs.op();
        let num_hidden =
            attrs.opt_int("num_hidden")?.ok_or_else(|| Error::op(op, "attribute num_hidden is required"))?;
        if num_hidden < 1 {
            return Err(Error::op(op, format!("num_hidden={num_hidden} must be >= 1")));
        }
        Ok(FcParam {
            num_hidden: num_hidden as usize,
            no_bias: attrs.bool("no_bias", false)?,
            flatten: attrs.bool("flatten", true)?,
        })
    }

    /// (rows, input features) of data as a matrix, and the output shape.
    fn plan(&self, data: &Shape) -> Result<(usize, usize, Shape)> {
        if data.ndim() == 0 {
            return Err(Error::op(NAME, "data must have at least one dimension"));
        }
        let h = self.num_hidden;
        if self.flatten {
            let k = data[1..].iter().product();
            Ok((data[0], k, Shape::new(&[data[0], h])))
        } else {
            let nd = data.ndim();
            let out: Shape = data[..nd - 1].iter().copied().chain([h]).collect();
            Ok((data[..nd - 1].iter().product(), data[nd - 1], out))
        }
    }
}

fn check_dtype(op: &str, inputs: &[TensorInfo]) -> Result<DType> {
    let dtype = inputs[0].dtype;
    if let Some(x) = inputs.iter().find(|x| x.dtype != dtype) {
        return Err(Error::op(op, format!("inputs have different dtypes {dtype} and {}", x.dtype)));
    }
    match dtype {
        DType::F32 | DType::F64 => Ok(dtype),
        // MXNet 1.9.1's CPU build refuses float16 the same way.
        DType::F16 => Err(Error::op(
            op,
            "float16 fully connected layer is only supported on GPU (CPU: float32, float64)",
        )),
        other => Err(Error::op(op, format!("dtype {other} is not supported (float32, float64)"))),
    }
}

/// A configured `FullyConnected`.
pub struct FullyConnected {
    param: FcParam,
}

fn build(_name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    Ok(Arc::new(FullyConnected { param: FcParam::parse(attrs)? }))
}

impl Operator for FullyConnected {
    fn name(&self) -> &'static str {
        NAME
    }

    fn num_inputs(&self) -> usize {
        if self.param.no_bias {
            2
        } else {
            3
        }
    }

    fn input_names(&self) -> Vec<String> {
        let names: &[&str] =
            if self.param.no_bias { &["data", "weight"] } else { &["data", "weight", "bias"] };
        names.iter().map(|s| s.to_string()).collect()
    }

    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        let dtype = check_dtype(NAME, inputs)?;
        let (_, k, out) = self.param.plan(&inputs[0].shape)?;
        let h = self.param.num_hidden;
        let w = &inputs[1].shape;
        if w.dims() != [h, k] {
            return Err(Error::op(
                NAME,
                format!("weight has shape {w}, expected ({h}, {k}) for data {}", inputs[0].shape),
            ));
        }
        if !self.param.no_bias {
            let b = &inputs[2].shape;
            if b.dims() != [h] && b.dims() != [h, 1] {
                return Err(Error::op(NAME, format!("bias has shape {b}, expected ({h},)")));
            }
        }
        Ok(vec![TensorInfo { shape: out, dtype }])
    }

    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let (rows, k, _) = self.param.plan(inputs[0].shape())?;
        let p = MatMul { m: rows, n: self.param.num_hidden, k, trans_a: false, trans_b: true };
        macro_rules! run {
            ($T:ty) => {{
                let bias = if self.param.no_bias { None } else { Some(inputs[2].slice::<$T>()?) };
                let out = outputs[0].slice_mut::<$T>()?;
                forward(&p, inputs[0].slice::<$T>()?, inputs[1].slice::<$T>()?, bias, out)
            }};
        }
        match outputs[0].dtype() {
            DType::F32 => run!(f32),
            DType::F64 => run!(f64),
            other => return Err(Error::op(NAME, format!("dtype {other} is not supported"))),
        }
        Ok(())
    }

    fn has_gradient(&self) -> bool {
        true
    }

    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let data_grad = ctx.needs_grad.first().copied().unwrap_or(true);
        let op: Arc<dyn Operator> = Arc::new(BackwardFullyConnected { param: self.param, data_grad });
        let ins = [ctx.out_grads[0].clone(), ctx.inputs[0].clone(), ctx.inputs[1].clone()];
        let mut g = crate::imperative::invoke_operator(&op, &ins)?.into_iter();
        let dx = if data_grad { g.next() } else { None };
        let dw = g.next();
        let mut out = vec![dx, dw];
        if !self.param.no_bias {
            let db = g.next().ok_or_else(|| Error::op(BACKWARD, "missing bias gradient"))?;
            let bias = &ctx.inputs[2];
            let dims: Vec<i64> = bias.shape().iter().map(|&d| d as i64).collect();
            out.push(Some(if db.shape() == bias.shape() { db } else { db.reshape(&dims)? }));
        }
        Ok(out)
    }
}

fn forward<T: mixnet_kernels::gemm::GemmElement>(
    p: &MatMul,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    out: &mut [T],
) {
    match bias {
        Some(b) => p.run_with_bias(x, w, out, b, true),
        None => p.run_with(x, w, out, false, true),
    }
}

/// `_backward_FullyConnected`: (output gradient, data, weight) -> gradients of data
/// (unless `data_grad` is false: nothing needs it), weight and (unless `no_bias`) bias.
pub struct BackwardFullyConnected {
    param: FcParam,
    data_grad: bool,
}

fn build_backward(_name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    Ok(Arc::new(BackwardFullyConnected { param: FcParam::parse(attrs)?, data_grad: true }))
}

impl Operator for BackwardFullyConnected {
    fn name(&self) -> &'static str {
        BACKWARD
    }

    fn num_inputs(&self) -> usize {
        3
    }

    fn num_outputs(&self) -> usize {
        1 + usize::from(self.data_grad) + usize::from(!self.param.no_bias)
    }

    fn input_names(&self) -> Vec<String> {
        vec!["ograd".into(), "data".into(), "weight".into()]
    }

    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        let dtype = check_dtype(BACKWARD, inputs)?;
        let (_, k, out) = self.param.plan(&inputs[1].shape)?;
        let h = self.param.num_hidden;
        if inputs[0].shape != out || inputs[2].shape.dims() != [h, k] {
            return Err(Error::op(
                BACKWARD,
                format!(
                    "output gradient {} and weight {} do not fit data {} (expected {out} and ({h}, {k}))",
                    inputs[0].shape, inputs[2].shape, inputs[1].shape
                ),
            ));
        }
        let mut outs = vec![inputs[1].clone(), inputs[2].clone()];
        if !self.param.no_bias {
            outs.push(TensorInfo::new(Shape::new(&[h]), dtype));
        }
        if !self.data_grad {
            outs.remove(0);
        }
        Ok(outs)
    }

    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let (rows, k, _) = self.param.plan(inputs[1].shape())?;
        let h = self.param.num_hidden;
        let data_grad = MatMul { m: rows, n: k, k: h, trans_a: false, trans_b: false };
        let weight_grad = MatMul { m: h, n: k, k: rows, trans_a: true, trans_b: false };
        macro_rules! run {
            ($T:ty) => {{
                let (dy, x, w) =
                    (inputs[0].slice::<$T>()?, inputs[1].slice::<$T>()?, inputs[2].slice::<$T>()?);
                let (dx, rest) = outputs.split_at_mut(usize::from(self.data_grad));
                if let Some(dx) = dx.first_mut() {
                    data_grad.run_with(dy, w, dx.slice_mut::<$T>()?, false, true);
                }
                weight_grad.run_with(dy, x, rest[0].slice_mut::<$T>()?, false, true);
                if !self.param.no_bias {
                    let db = rest[1].slice_mut::<$T>()?;
                    <$T>::reduce_axes(dy, &[rows, h], &[true, false], db, Reduction::Sum);
                }
            }};
        }
        match inputs[0].dtype() {
            DType::F32 => run!(f32),
            DType::F64 => run!(f64),
            other => return Err(Error::op(BACKWARD, format!("dtype {other} is not supported"))),
        }
        Ok(())
    }
}

pub(crate) fn register(r: &mut Registry) {
    r.register_family(build, &[(NAME, &["_npx_fully_connected"])]);
    r.register_family(build_backward, &[(BACKWARD, &[])]);
}
