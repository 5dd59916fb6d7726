//! Small contrib and internal operators: `_contrib_div_sqrt_dim` (transformer scaling),
//! `_contrib_arange_like`, `_contrib_index_array`, `reset_arrays` (zeroes its inputs in
//! place) and `_identity_with_attr_like_rhs` — names, defaults and gradients as MXNet 1.9.1.

use std::sync::Arc;

use super::nn::kernel::{check_float, load, run_kernel, write};
use crate::op::{Attrs, Blob, GradContext, OpContext, Operator, Registry, TensorInfo};
use mixnet_kernels::Element;

use crate::{with_dtype, DType, Error, NDArray, Result, Shape};

#[derive(Clone, Debug, PartialEq)]
enum Kind {
    DivSqrtDim,
    ArangeLike { start: f64, step: f64, repeat: usize, axis: Option<i64> },
    IndexArray { axes: Option<Vec<i64>> },
    ResetArrays { n: usize },
    IdentityLikeRhs,
}

/// A configured small operator.
pub struct Contrib {
    name: &'static str,
    kind: Kind,
    /// Inputs written in place (all of them for `reset_arrays`).
    mutate: Vec<usize>,
}

fn build(name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    let kind = match name {
        "_contrib_div_sqrt_dim" => Kind::DivSqrtDim,
        "_contrib_arange_like" => {
            let (start, step) = (attrs.float("start", 0.0)?, attrs.float("step", 1.0)?);
            let repeat = attrs.usize("repeat", 1)?.max(1);
            attrs.get("ctx");
            Kind::ArangeLike { start, step, repeat, axis: attrs.opt_int("axis")? }
        }
        "_contrib_index_array" => Kind::IndexArray { axes: attrs.tuple("axes")? },
        "reset_arrays" => match attrs.opt_int("num_arrays")? {
            Some(n) if n >= 1 => Kind::ResetArrays { n: n as usize },
            _ => return Err(Error::op(name, "num_arrays must be at least 1")),
        },
        "_identity_with_attr_like_rhs" => Kind::IdentityLikeRhs,
        _ => return Err(Error::op(name, "not a contrib operator")),
    };
    let mutate = match kind {
        Kind::ResetArrays { n } => (0..n).collect(),
        _ => Vec::new(),
    };
    Ok(Arc::new(Contrib { name, kind, mutate }))
}

fn axis(op: &str, a: i64, nd: usize) -> Result<usize> {
    let i = if a < 0 { a + nd as i64 } else { a };
    if i < 0 || i >= nd as i64 {
        return Err(Error::op(op, format!("axis {a} is out of range for {nd} dimensions")));
    }
    Ok(i as usize)
}

impl Operator for Contrib {
    fn name(&self) -> &'static str {
        self.name
    }
    fn num_inputs(&self) -> usize {
        match self.kind {
            Kind::ResetArrays { n } => n,
            Kind::IdentityLikeRhs => 2,
            _ => 1,
        }
    }
    fn num_outputs(&self) -> usize {
        usize::from(!matches!(self.kind, Kind::ResetArrays { .. }))
    }
    fn mutate_inputs(&self) -> &[usize] {
        &self.mutate
    }
    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        let x = &inputs[0];
        let nd = x.shape.ndim();
        Ok(match &self.kind {
            Kind::DivSqrtDim => {
                check_float(self.name, "data", x)?;
                if nd == 0 {
                    return Err(Error::op(self.name, "data needs at least one dimension"));
                }
                vec![x.clone()]
            }
            Kind::ArangeLike { axis: Some(a), .. } => {
                vec![TensorInfo::new(Shape::new(&[x.shape.dims()[axis(self.name, *a, nd)?]]), x.dtype)]
            }
            Kind::ArangeLike { .. } => vec![x.clone()],
            Kind::IndexArray { axes } => {
                let k = match axes {
                    Some(a) => {
                        for &i in a {
                            axis(self.name, i, nd)?;
                        }
                        a.len()
                    }
                    None => nd,
                };
                let mut d = x.shape.dims().to_vec();
                d.push(k);
                vec![TensorInfo::new(Shape::new(&d), DType::I64)]
            }
            Kind::ResetArrays { .. } => vec![],
            Kind::IdentityLikeRhs => {
                if inputs[1] != *x {
                    return Err(Error::op(
                        self.name,
                        format!("lhs {x} must have rhs's shape and dtype ({})", inputs[1]),
                    ));
                }
                vec![x.clone()]
            }
        })
    }
    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        match &self.kind {
            Kind::DivSqrtDim => {
                let d = *inputs[0].shape().dims().last().unwrap_or(&1) as f64;
                let x = load::<f64>(&inputs[0])?;
                let y: Vec<f64> = x.iter().map(|v| v / d.sqrt()).collect();
                write::<f64>(&mut outputs[0], &y)
            }
            Kind::ArangeLike { start, step, repeat, .. } => {
                let n = outputs[0].numel();
                let y: Vec<f64> = (0..n).map(|i| start + (i / repeat) as f64 * step).collect();
                write::<f64>(&mut outputs[0], &y)
            }
            Kind::IndexArray { axes } => {
                let dims = inputs[0].shape().dims().to_vec();
                let nd = dims.len();
                let picked: Vec<usize> = match axes {
                    Some(a) => a.iter().map(|&i| axis(self.name, i, nd)).collect::<Result<_>>()?,
                    None => (0..nd).collect(),
                };
                let total: usize = dims.iter().product();
                let out = outputs[0].slice_mut::<i64>()?;
                let mut coord = vec![0usize; nd];
                for e in 0..total {
                    for (k, &a) in picked.iter().enumerate() {
                        out[e * picked.len() + k] = coord[a] as i64;
                    }
                    for k in (0..nd).rev() {
                        coord[k] += 1;
                        if coord[k] < dims[k] {
                            break;
                        }
                        coord[k] = 0;
                    }
                }
                Ok(())
            }
            Kind::ResetArrays { .. } => {
                for b in inputs.iter_mut() {
                    with_dtype!(b.dtype(), T => b.slice_mut::<T>()?.fill(<T as Element>::ZERO));
                }
                Ok(())
            }
            Kind::IdentityLikeRhs => {
                mixnet_kernels::elementwise::copy(inputs[0].bytes()?, outputs[0].bytes_mut()?);
                Ok(())
            }
        }
    }
    fn has_gradient(&self) -> bool {
        !matches!(self.kind, Kind::ResetArrays { .. })
    }
    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let zeros = |x: &NDArray| NDArray::zeros(x.shape().clone(), x.dtype(), x.context()).map(Some);
        match self.kind {
            Kind::DivSqrtDim => {
                let dy = &ctx.out_grads[0];
                let dx = run_kernel(
                    "_backward_contrib_div_sqrt_dim",
                    std::slice::from_ref(dy),
                    vec![super::nn::kernel::info(dy)],
                    |_, ins, outs| {
                        let d = *ins[0].shape().dims().last().unwrap_or(&1) as f64;
                        let g = load::<f64>(&ins[0])?;
                        let y: Vec<f64> = g.iter().map(|v| v / d.sqrt()).collect();
                        write::<f64>(&mut outs[0], &y)
                    },
                )?;
                Ok(dx.into_iter().map(Some).collect())
            }
            Kind::IdentityLikeRhs => Ok(vec![Some(ctx.out_grads[0].clone()), zeros(&ctx.inputs[1])?]),
            // MXNet's MakeZeroGradNodes.
            _ => ctx.inputs.iter().map(zeros).collect(),
        }
    }
}

pub(crate) fn register(r: &mut Registry) {
    r.register_family(
        build,
        &[
            ("_contrib_div_sqrt_dim", &[]),
            ("_contrib_arange_like", &["_npx_arange_like"]),
            ("_contrib_index_array", &[]),
            ("reset_arrays", &[]),
            ("_identity_with_attr_like_rhs", &[]),
        ],
    );
}
