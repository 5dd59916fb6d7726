//! `moments` (mean and variance over axes, MXNet's `nn/moments-inl.h`) and `_square_sum`
//! (sum of squares, MXNet's `tensor/square_sum-inl.h`, dense storage), computed in f64.

use std::sync::Arc;

use super::nn::kernel::{check_float, info, load, run_kernel, write};
use crate::op::{Attrs, Blob, GradContext, OpContext, Operator, Registry, TensorInfo};
use crate::{Error, NDArray, Result, Shape};

/// Which axes are reduced, and where each input element lands in the output.
#[derive(Clone, Debug)]
struct Reduction {
    reduced: Vec<bool>,
    in_dims: Vec<usize>,
    out_shape: Shape,
}

impl Reduction {
    fn new(
        op: &str,
        shape: &Shape,
        axes: Option<&[i64]>,
        keepdims: bool,
        exclude: bool,
    ) -> Result<Reduction> {
        let nd = shape.ndim();
        let mut reduced = vec![axes.is_none(); nd];
        for &a in axes.unwrap_or(&[]) {
            let i = if a < 0 { a + nd as i64 } else { a };
            if i < 0 || i >= nd as i64 {
                return Err(Error::op(op, format!("axis {a} is out of range for {shape}")));
            }
            reduced[i as usize] = true;
        }
        if exclude && axes.is_some() {
            reduced.iter_mut().for_each(|r| *r = !*r);
        }
        let d = shape.dims();
        let mut out: Vec<usize> = Vec::new();
        for (i, &n) in d.iter().enumerate() {
            if !reduced[i] {
                out.push(n);
            } else if keepdims {
                out.push(1);
            }
        }
        if out.is_empty() {
            out.push(1);
        }
        Ok(Reduction { reduced, in_dims: d.to_vec(), out_shape: Shape::new(&out) })
    }

    /// Output index of every input element, and the number of elements per output.
    fn map(&self) -> (Vec<usize>, usize) {
        let n: usize = self.in_dims.iter().product();
        let kept: Vec<usize> =
            self.in_dims.iter().zip(&self.reduced).map(|(&d, &r)| if r { 1 } else { d }).collect();
        let mut idx = vec![0; n];
        let mut coord = vec![0usize; self.in_dims.len()];
        for slot in idx.iter_mut() {
            let mut o = 0;
            for (k, &c) in coord.iter().enumerate() {
                o = o * kept[k] + if self.reduced[k] { 0 } else { c };
            }
            *slot = o;
            for k in (0..coord.len()).rev() {
                coord[k] += 1;
                if coord[k] < self.in_dims[k] {
                    break;
                }
                coord[k] = 0;
            }
        }
        let per = self.in_dims.iter().zip(&self.reduced).filter(|(_, &r)| r).map(|(&d, _)| d).product();
        (idx, per)
    }
}

/// A configured `moments` or `_square_sum`.
pub struct Moments {
    name: &'static str,
    axes: Option<Vec<i64>>,
    keepdims: bool,
    exclude: bool,
}

fn build(name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    let key = if name == "moments" { "axes" } else { "axis" };
    let axes = attrs.tuple(key)?;
    let keepdims = attrs.bool("keepdims", false)?;
    let exclude = if name == "_square_sum" { attrs.bool("exclude", false)? } else { false };
    Ok(Arc::new(Moments { name, axes, keepdims, exclude }))
}

impl Moments {
    fn reduction(&self, shape: &Shape) -> Result<Reduction> {
        Reduction::new(self.name, shape, self.axes.as_deref(), self.keepdims, self.exclude)
    }

    fn mean_var(&self, x: &[f64], r: &Reduction) -> (Vec<f64>, Vec<f64>) {
        let (idx, per) = r.map();
        let n_out = r.out_shape.numel();
        let mut mean = vec![0.0; n_out];
        for (v, &o) in x.iter().zip(&idx) {
            mean[o] += v;
        }
        mean.iter_mut().for_each(|m| *m /= per as f64);
        let mut var = vec![0.0; n_out];
        for (v, &o) in x.iter().zip(&idx) {
            var[o] += (v - mean[o]).powi(2);
        }
        var.iter_mut().for_each(|m| *m /= per as f64);
        (mean, var)
    }
}

impl Operator for Moments {
    fn name(&self) -> &'static str {
        self.name
    }
    fn num_inputs(&self) -> usize {
        1
    }
    fn num_outputs(&self) -> usize {
        if self.name == "moments" {
            2
        } else {
            1
        }
    }
    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        check_float(self.name, "data", &inputs[0])?;
        let r = self.reduction(&inputs[0].shape)?;
        Ok(vec![TensorInfo::new(r.out_shape, inputs[0].dtype); self.num_outputs()])
    }
    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let r = self.reduction(inputs[0].shape())?;
        let x = load::<f64>(&inputs[0])?;
        if self.name == "moments" {
            let (mean, var) = self.mean_var(&x, &r);
            write::<f64>(&mut outputs[0], &mean)?;
            return write::<f64>(&mut outputs[1], &var);
        }
        let (idx, _) = r.map();
        let mut s = vec![0.0; r.out_shape.numel()];
        for (v, &o) in x.iter().zip(&idx) {
            s[o] += v * v;
        }
        write::<f64>(&mut outputs[0], &s)
    }
    fn has_gradient(&self) -> bool {
        true
    }
    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let x = &ctx.inputs[0];
        let r = self.reduction(x.shape())?;
        let moments = self.name == "moments";
        let this = Moments {
            name: self.name,
            axes: self.axes.clone(),
            keepdims: self.keepdims,
            exclude: self.exclude,
        };
        let mut args = vec![x.clone()];
        args.extend(ctx.out_grads.iter().cloned());
        let backward = if moments { "_backward_moments" } else { "_backward_square_sum" };
        let dx = run_kernel(backward, &args, vec![info(x)], move |_, ins, outs| {
            let x = load::<f64>(&ins[0])?;
            let (idx, per) = r.map();
            let g0 = load::<f64>(&ins[1])?;
            let dx: Vec<f64> = if moments {
                // d mean = 1/N; d var = 2 (x - mean) / N.
                let gv = load::<f64>(&ins[2])?;
                let (mean, _) = this.mean_var(&x, &r);
                let n = per as f64;
                x.iter().zip(&idx).map(|(v, &o)| g0[o] / n + gv[o] * 2.0 * (v - mean[o]) / n).collect()
            } else {
                x.iter().zip(&idx).map(|(v, &o)| 2.0 * v * g0[o]).collect()
            };
            write::<f64>(&mut outs[0], &dx)
        })?;
        Ok(dx.into_iter().map(Some).collect())
    }
}

pub(crate) fn register(r: &mut Registry) {
    r.register_family(build, &[("moments", &[]), ("_square_sum", &[])]);
}
