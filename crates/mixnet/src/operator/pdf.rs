//! `_random_pdf_*` (MXNet's `src/operator/random/pdf_op.cc`): the density, or with
//! `is_log=True` the log density, of samples under distributions whose parameters have
//! the leading shape of `sample`. Differentiable in the sample and every parameter.

use std::sync::Arc;

use mixnet_kernels::pdf::{self, Pdf};

use super::nn::kernel::{check_float, info, load, run_kernel, store, with_real, write, Compute};
use crate::op::{Attrs, Blob, GradContext, OpContext, OpDef, Operator, Registry, TensorInfo};
use crate::{Error, NDArray, Result, Shape};

/// A configured `_random_pdf_<distribution>`.
pub struct PdfOp {
    name: &'static str,
    backward: &'static str,
    dist: Pdf,
    is_log: bool,
}

fn build(name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    let &(_, _, backward, dist) =
        DISTRIBUTIONS.iter().find(|d| d.0 == name).ok_or_else(|| Error::op(name, "not a pdf operator"))?;
    Ok(Arc::new(PdfOp { name, backward, dist, is_log: attrs.bool("is_log", false)? }))
}

impl PdfOp {
    /// Values per sample vector (Dirichlet's `k`; 1 for the scalar distributions).
    fn k(&self, sample: &Shape) -> usize {
        match self.dist {
            Pdf::Dirichlet => sample.dims().last().copied().unwrap_or(1),
            _ => 1,
        }
    }

    fn run<R: Compute>(&self, inputs: &[Blob<'_>], out: &mut Blob<'_>) -> Result<()> {
        let k = self.k(inputs[0].shape());
        let vals = inputs.iter().map(load::<R>).collect::<Result<Vec<_>>>()?;
        let params: Vec<&[R]> = vals[1..].iter().map(|v| &**v).collect();
        store::<R>(out, |o| {
            pdf::forward(self.dist, self.is_log, &vals[0], &params, k, o);
            Ok(())
        })
    }
}

impl Operator for PdfOp {
    fn name(&self) -> &'static str {
        self.name
    }
    fn num_inputs(&self) -> usize {
        1 + self.dist.params().len()
    }
    fn input_names(&self) -> Vec<String> {
        std::iter::once("sample").chain(self.dist.params().iter().copied()).map(String::from).collect()
    }
    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        let names = self.input_names();
        let sample = &inputs[0];
        check_float(self.name, "sample", sample)?;
        for (n, x) in names.iter().zip(inputs).skip(1) {
            if x.dtype != sample.dtype {
                return Err(Error::op(
                    self.name,
                    format!("{n} has dtype {}, but sample has {}", x.dtype, sample.dtype),
                ));
            }
        }
        let (s, p) = (sample.shape.dims(), inputs[1].shape.dims());
        // The parameters' shape: the leading subshape of sample (Dirichlet: with its last
        // dimension replaced by the vector length k).
        let want: Option<Vec<usize>> = (p.len() <= s.len() && !p.is_empty()).then(|| {
            let mut t = s[..p.len()].to_vec();
            if self.dist == Pdf::Dirichlet {
                *t.last_mut().expect("non-empty") = s[s.len() - 1];
            }
            t
        });
        for (n, x) in names.iter().zip(inputs).skip(1) {
            if want.as_deref() != Some(x.shape.dims()) {
                return Err(Error::op(
                    self.name,
                    format!(
                        "{n} has shape {}; the parameters must match the leading dimensions of sample {}",
                        x.shape, sample.shape
                    ),
                ));
            }
        }
        let out: Vec<usize> = match self.dist {
            Pdf::Dirichlet if s.len() == 1 => vec![1],
            Pdf::Dirichlet => s[..s.len() - 1].to_vec(),
            _ => s.to_vec(),
        };
        Ok(vec![TensorInfo::new(Shape::new(&out), sample.dtype)])
    }
    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        with_real!(inputs[0].dtype(), self.name, R => self.run::<R>(inputs, &mut outputs[0]))
    }
    fn has_gradient(&self) -> bool {
        true
    }
    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let (dist, is_log, name) = (self.dist, self.is_log, self.name);
        let k = self.k(ctx.inputs[0].shape());
        let mut ins = vec![ctx.out_grads[0].clone(), ctx.outputs[0].clone()];
        ins.extend(ctx.inputs.iter().cloned());
        let outs = ctx.inputs.iter().map(info).collect();
        let grads = run_kernel(self.backward, &ins, outs, move |_, ins, outs| {
            with_real!(ins[0].dtype(), name, R => {
                let vals = ins.iter().map(load::<R>).collect::<Result<Vec<_>>>()?;
                let params: Vec<&[R]> = vals[3..].iter().map(|v| &**v).collect();
                let mut bufs: Vec<Vec<R>> = outs.iter().map(|o| vec![<R as mixnet_kernels::Element>::ZERO; o.numel()]).collect();
                {
                    let (ds, dps) = bufs.split_at_mut(1);
                    let mut dps: Vec<&mut [R]> = dps.iter_mut().map(|v| v.as_mut_slice()).collect();
                    pdf::backward(dist, is_log, &vals[2], &params, k, &vals[1], &vals[0], &mut ds[0], &mut dps);
                }
                for (o, b) in outs.iter_mut().zip(&bufs) {
                    write::<R>(o, b)?;
                }
                Ok(())
            })
        })?;
        Ok(grads.into_iter().map(Some).collect())
    }
}

/// Each distribution's registered name, alias and backward operator.
const DISTRIBUTIONS: [(&str, &[&str], &str, Pdf); 8] = [
    ("_random_pdf_uniform", &["random_pdf_uniform"], "_backward_pdf_uniform", Pdf::Uniform),
    ("_random_pdf_normal", &["random_pdf_normal"], "_backward_pdf_normal", Pdf::Normal),
    ("_random_pdf_gamma", &["random_pdf_gamma"], "_backward_pdf_gamma", Pdf::Gamma),
    ("_random_pdf_exponential", &["random_pdf_exponential"], "_backward_pdf_exponential", Pdf::Exponential),
    ("_random_pdf_poisson", &["random_pdf_poisson"], "_backward_pdf_poisson", Pdf::Poisson),
    (
        "_random_pdf_negative_binomial",
        &["random_pdf_negative_binomial"],
        "_backward_pdf_negative_binomial",
        Pdf::NegativeBinomial,
    ),
    (
        "_random_pdf_generalized_negative_binomial",
        &["random_pdf_generalized_negative_binomial"],
        "_backward_pdf_generalized_negative_binomial",
        Pdf::GeneralizedNegativeBinomial,
    ),
    ("_random_pdf_dirichlet", &["random_pdf_dirichlet"], "_backward_pdf_dirichlet", Pdf::Dirichlet),
];

pub(crate) fn register(r: &mut Registry) {
    for (name, aliases, _, _) in DISTRIBUTIONS {
        r.register(OpDef { name, aliases, build });
    }
}
