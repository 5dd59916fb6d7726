//! `Pad`: MXNet's legacy image padding. It keeps MXNet's limits (4-D or 5-D input, no
//! padding on the batch and channel axes, floating-point dtypes) so that a model that
//! runs here runs on MXNet too; the kernel itself pads any rank.

use std::sync::Arc;

use mixnet_kernels::shape::{pad, PadMode};
use mixnet_kernels::Element;

use super::{required, with_word, words, words_mut};
use crate::op::{Attrs, Blob, GradContext, OpContext, OpDef, Operator, Registry, TensorInfo};
use crate::operator::grad::{run, PadGrad};
use crate::shape::Shape;
use crate::NDArray;
use crate::{with_dtype, DType, Error, Result};

struct PadOp {
    mode: PadMode,
    /// (before, after) per axis.
    widths: Vec<(usize, usize)>,
    constant: f64,
}

const NAME: &str = "Pad";

fn build(_name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    let mode = attrs.get("mode").map(|_| attrs.choice("mode", &["constant", "edge", "reflect"], "constant"));
    let mode = match required(attrs, "mode", mode)?? {
        "edge" => PadMode::Edge,
        "reflect" => PadMode::Reflect,
        _ => PadMode::Constant,
    };
    let widths = attrs.tuple("pad_width")?;
    let widths = required(attrs, "pad_width", widths)?;
    if !widths.len().is_multiple_of(2) || widths.iter().any(|&w| w < 0) {
        return Err(Error::op(NAME, format!("pad_width {widths:?} must be pairs of non-negative widths")));
    }
    let widths = widths.chunks(2).map(|p| (p[0] as usize, p[1] as usize)).collect();
    Ok(Arc::new(PadOp { mode, widths, constant: attrs.float("constant_value", 0.0)? }))
}

impl PadOp {
    fn out_shape(&self, info: &TensorInfo) -> Result<Shape> {
        let shape = &info.shape;
        if !info.dtype.is_float() {
            return Err(Error::op(
                NAME,
                format!("dtype {} is not supported (floating-point only)", info.dtype),
            ));
        }
        if !matches!(shape.ndim(), 4 | 5) {
            return Err(Error::op(NAME, format!("only 4-D and 5-D inputs are supported, got shape {shape}")));
        }
        if self.widths.len() != shape.ndim() {
            return Err(Error::op(
                NAME,
                format!("pad_width has {} pairs for input shape {shape}", self.widths.len()),
            ));
        }
        if self.widths[..2].iter().any(|&w| w != (0, 0)) {
            return Err(Error::op(NAME, "padding of the first two axes (batch, channel) must be zero"));
        }
        for (d, (&n, &(b, a))) in shape.iter().zip(&self.widths).enumerate().skip(2) {
            let fits = match self.mode {
                PadMode::Constant => true,
                PadMode::Edge => n > 0 || b + a == 0,
                PadMode::Reflect => b < n && a < n,
            };
            if !fits {
                return Err(Error::op(
                    NAME,
                    format!(
                        "{:?} padding ({b}, {a}) of axis {d} does not fit its size {n} in {shape}",
                        self.mode
                    ),
                ));
            }
        }
        shape
            .iter()
            .zip(&self.widths)
            .map(|(&n, &(b, a))| n.checked_add(b).and_then(|x| x.checked_add(a)))
            .collect::<Option<Shape>>()
            .ok_or_else(|| Error::op(NAME, "padded shape is too large"))
    }
}

/// `v` converted to `dtype`, as the bits of a word of its size.
fn fill_word<W: bytemuck::Pod>(dtype: DType, v: f64) -> Result<W> {
    with_dtype!(dtype, T => bytemuck::try_cast::<T, W>(T::from_f64(v)))
        .map_err(|e| Error::Invalid(format!("{dtype} fill value as a word: {e}")))
}

impl Operator for PadOp {
    fn name(&self) -> &'static str {
        NAME
    }

    fn num_inputs(&self) -> usize {
        1
    }

    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        Ok(vec![TensorInfo { shape: self.out_shape(&inputs[0])?, dtype: inputs[0].dtype }])
    }

    fn has_gradient(&self) -> bool {
        true
    }

    /// `_backward_Pad`: each padded position adds into the element it copied.
    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let x = &ctx.inputs[0];
        let op = PadGrad {
            in_shape: x.shape().clone(),
            before: self.widths.iter().map(|w| w.0).collect(),
            after: self.widths.iter().map(|w| w.1).collect(),
            mode: self.mode,
        };
        Ok(vec![Some(run(op, std::slice::from_ref(&ctx.out_grads[0]))?)])
    }

    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let (x, out) = (&inputs[0], &mut outputs[0]);
        let before: Vec<usize> = self.widths.iter().map(|w| w.0).collect();
        let after: Vec<usize> = self.widths.iter().map(|w| w.1).collect();
        with_word!(x.dtype(), W => {
            let fill = fill_word::<W>(x.dtype(), self.constant)?;
            pad(words::<W>(x)?, x.shape(), &before, &after, self.mode, fill, words_mut::<W>(out)?)
        });
        Ok(())
    }
}

pub(super) fn register(r: &mut Registry) {
    r.register(OpDef { name: NAME, aliases: &["pad"], build });
}
