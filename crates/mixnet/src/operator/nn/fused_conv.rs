//! `_sg_conv`: a `Convolution` followed by an inference `BatchNorm` (moving statistics)
//! and, with `with_act`, a ReLU, as one operator. It is what a hybridized Gluon network
//! runs for such a run of layers when no gradient is recorded (MXNet's oneDNN subgraph
//! pass makes `_sg_mkldnn_conv` of the same pattern). The normalization becomes a scale
//! and shift per output channel, applied as the convolution stores its output, so the two
//! passes over the output that BatchNorm and the activation would make are gone.
//!
//! Inputs: data, weight, [bias], gamma, beta, moving_mean, moving_var, [sum],
//! [winograd_filters]. Attributes: those of `Convolution`, BatchNorm's `eps` and
//! `fix_gamma` (same defaults), and as MXNet's: `with_act` (a ReLU after the BatchNorm),
//! `with_sum` (the `sum` input, shaped as the output, added after the BatchNorm: a
//! residual connection) and `with_postsum_act` (a ReLU after that sum); `with_act`
//! together with `with_sum` (a ReLU on each side of the sum) is not supported. Also
//! `winograd`: the last input is the weight already carried to Winograd's transform domain
//! by `_winograd_filters`, which an inference graph keeps per weight version, as oneDNN
//! keeps its reordered weights. No gradient: training runs the layers one by one.

use std::sync::Arc;

use mixnet_kernels::conv::{self, Conv};
use mixnet_kernels::gemm::RowAffine;

use super::batch_norm::invstd;
use super::convolution::{check_dtype, expect_shape, ConvParam, Convolution};
use super::kernel::Compute;
use crate::op::{Attrs, Blob, OpContext, Operator, Registry, TensorInfo};
use crate::{DType, Error, Result, Shape};

const NAME: &str = "_sg_conv";
const FILTERS: &str = "_winograd_filters";

/// A configured `_sg_conv`.
pub struct ConvBatchNorm {
    conv: Convolution,
    eps: f64,
    fix_gamma: bool,
    /// The ReLU, after the sum when there is one.
    relu: bool,
    sum: bool,
    winograd: bool,
}

fn build(_name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    let conv = Convolution::from_param(ConvParam::parse(attrs, false)?, NAME);
    let (act, sum, postsum_act) = (
        attrs.bool("with_act", false)?,
        attrs.bool("with_sum", false)?,
        attrs.bool("with_postsum_act", false)?,
    );
    if sum && act {
        return Err(Error::op(
            NAME,
            "with_act together with with_sum (a ReLU before the sum) is not supported",
        ));
    }
    if postsum_act && !sum {
        return Err(Error::op(NAME, "with_postsum_act needs with_sum"));
    }
    Ok(Arc::new(ConvBatchNorm {
        conv,
        eps: attrs.float("eps", 1e-3f32 as f64)?,
        fix_gamma: attrs.bool("fix_gamma", true)?,
        relu: act || postsum_act,
        sum,
        winograd: attrs.bool("winograd", false)?,
    }))
}

/// `_winograd_filters`: a 3×3 convolution's weight (F, C, 3, 3), f32, carried to
/// Winograd's transform domain (a flat array laid out for the kernel), for `_sg_conv`'s
/// `winograd` input. Only for weights whose convolutions take that path
/// (`conv::winograd_filters_len`); no gradient (inference only).
pub struct WinogradFilters;

/// The transformed length of `weight`'s filters, or the error naming why there is none.
fn winograd_len(what: &str, weight: &TensorInfo) -> Result<usize> {
    let s = weight.shape.dims();
    let len = match s {
        &[f, c, 3, 3] if weight.dtype == DType::F32 => conv::winograd_filters_len(f, c, [1, 3, 3], 1),
        _ => None,
    };
    len.ok_or_else(|| {
        Error::op(
            what,
            format!(
                "weight {} ({}) has no Winograd filters: that needs f32 3x3 filters, at least 32 \
                 of them over at least 32 channels, both multiples of 16, at most 256x256",
                weight.shape, weight.dtype
            ),
        )
    })
}

impl Operator for WinogradFilters {
    fn name(&self) -> &'static str {
        FILTERS
    }
    fn num_inputs(&self) -> usize {
        1
    }
    fn input_names(&self) -> Vec<String> {
        vec!["weight".into()]
    }
    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        let len = winograd_len(FILTERS, &inputs[0])?;
        Ok(vec![TensorInfo { shape: Shape::from(vec![len]), dtype: DType::F32 }])
    }
    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let s = inputs[0].shape().dims();
        conv::winograd_filters(s[0], s[1], inputs[0].slice::<f32>()?, outputs[0].slice_mut::<f32>()?);
        Ok(())
    }
}

fn build_filters(_name: &'static str, _attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    Ok(Arc::new(WinogradFilters))
}

impl ConvBatchNorm {
    /// Index of gamma among the inputs (after data, weight and a bias).
    fn stats(&self) -> usize {
        if self.conv.param().no_bias {
            2
        } else {
            3
        }
    }

    /// The BatchNorm as a per-channel `x * scale + shift`.
    fn channel_map<T: Compute>(&self, inputs: &[Blob<'_>]) -> Result<(Vec<T>, Vec<T>)> {
        let s = self.stats();
        let (gamma, beta) = (inputs[s].slice::<T>()?, inputs[s + 1].slice::<T>()?);
        let (mean, var) = (inputs[s + 2].slice::<T>()?, inputs[s + 3].slice::<T>()?);
        let scale: Vec<T> = (0..gamma.len())
            .map(|c| {
                let is = invstd(var[c], self.eps);
                if self.fix_gamma {
                    is
                } else {
                    is * gamma[c]
                }
            })
            .collect();
        let shift = (0..gamma.len()).map(|c| beta[c] - mean[c] * scale[c]).collect();
        Ok((scale, shift))
    }
}

impl Operator for ConvBatchNorm {
    fn name(&self) -> &'static str {
        NAME
    }

    fn num_inputs(&self) -> usize {
        self.stats() + 4 + usize::from(self.sum) + usize::from(self.winograd)
    }

    fn input_names(&self) -> Vec<String> {
        let mut names = self.conv.param().input_names();
        names.extend(["gamma", "beta", "moving_mean", "moving_var"].map(String::from));
        if self.sum {
            names.push("sum".into());
        }
        if self.winograd {
            names.push("winograd_filters".into());
        }
        names
    }

    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        let dtype = check_dtype(NAME, inputs)?;
        let s = self.stats();
        let out = self.conv.infer(&inputs[..s])?;
        let f = self.conv.param().num_filter;
        for (name, p) in ["gamma", "beta", "moving_mean", "moving_var"].iter().zip(&inputs[s..]) {
            expect_shape(NAME, name, &p.shape, &[f])?;
        }
        if self.sum {
            expect_shape(NAME, "sum", &inputs[s + 4].shape, out[0].shape.dims())?;
        }
        if self.winograd {
            let len = winograd_len(NAME, &inputs[1])?;
            expect_shape(NAME, "winograd_filters", &inputs[self.num_inputs() - 1].shape, &[len])?;
        }
        Ok(vec![TensorInfo { shape: out[0].shape.clone(), dtype }])
    }

    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let (g, _) = self.conv.plan(NAME, inputs[0].shape())?;
        macro_rules! run {
            ($T:ty) => {{
                let (scale, shift) = self.channel_map::<$T>(inputs)?;
                let sum = if self.sum { Some(inputs[self.stats() + 4].slice::<$T>()?) } else { None };
                let post = RowAffine { scale: &scale, shift: &shift, sum, relu: self.relu };
                let bias = if self.conv.param().no_bias { None } else { Some(inputs[2].slice::<$T>()?) };
                let (x, w) = (inputs[0].slice::<$T>()?, inputs[1].slice::<$T>()?);
                let filters =
                    if self.winograd { Some(inputs[self.num_inputs() - 1].slice::<$T>()?) } else { None };
                <$T>::conv_forward_mapped(&g, x, w, filters, bias, &post, outputs[0].slice_mut::<$T>()?)
            }};
        }
        match outputs[0].dtype() {
            DType::F32 => run!(f32),
            DType::F64 => run!(f64),
            other => return Err(Error::op(NAME, format!("dtype {other} is not supported"))),
        }
        Ok(())
    }
}

pub(crate) fn register(r: &mut Registry) {
    r.register_family(build, &[(NAME, &[])]);
    r.register_family(build_filters, &[(FILTERS, &[])]);
}
