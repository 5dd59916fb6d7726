//! MXNet's contrib detection operators on boxes: `_contrib_box_iou` (pairwise IoU; zero
//! gradients, as MXNet) and `_contrib_box_nms` (alias `_contrib_box_non_maximum_suppression`;
//! a hidden second output records where each output row came from, and the gradient moves
//! the head gradient back along it). Kernels in `mixnet_kernels::bbox`.

use std::sync::Arc;

use mixnet_kernels::bbox::{self, BoxFormat, NmsParams};
use mixnet_kernels::Element;

use super::nn::kernel::{check_float, info, load, run_kernel, store, store2, with_real};
use crate::op::{Attrs, Blob, GradContext, OpContext, Operator, Registry, TensorInfo};
use crate::{Error, NDArray, Result, Shape};

fn format(attrs: &mut Attrs<'_>, key: &str) -> Result<BoxFormat> {
    Ok(match attrs.choice(key, &["corner", "center"], "corner")? {
        "center" => BoxFormat::Center,
        _ => BoxFormat::Corner,
    })
}

/// `_contrib_box_iou`: IoU of every box of `lhs` (..., 4) with every box of `rhs` (..., 4).
pub struct BoxIou {
    format: BoxFormat,
}

impl Operator for BoxIou {
    fn name(&self) -> &'static str {
        "_contrib_box_iou"
    }
    fn num_inputs(&self) -> usize {
        2
    }
    fn input_names(&self) -> Vec<String> {
        vec!["lhs".into(), "rhs".into()]
    }
    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        let (l, r) = (&inputs[0], &inputs[1]);
        for (what, x) in [("lhs", l), ("rhs", r)] {
            check_float(self.name(), what, x)?;
            if x.shape.ndim() < 2 || x.shape.dims().last() != Some(&4) {
                return Err(Error::op(
                    self.name(),
                    format!("{what} {} must have at least 2 dimensions, the last of size 4", x.shape),
                ));
            }
        }
        if l.dtype != r.dtype {
            return Err(Error::op(self.name(), format!("lhs {l} and rhs {r} must have one dtype")));
        }
        let (ld, rd) = (l.shape.dims(), r.shape.dims());
        let dims: Vec<usize> = ld[..ld.len() - 1].iter().chain(&rd[..rd.len() - 1]).copied().collect();
        Ok(vec![TensorInfo::new(Shape::new(&dims), l.dtype)])
    }
    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        with_real!(outputs[0].dtype(), self.name(), R => {
            let (l, r) = (load::<R>(&inputs[0])?, load::<R>(&inputs[1])?);
            store::<R>(&mut outputs[0], |o| {
                bbox::box_iou(&l, &r, self.format, o);
                Ok(())
            })
        })
    }
    fn has_gradient(&self) -> bool {
        true
    }
    /// MXNet's `_backward_contrib_box_iou` writes zeros ("allow backprop?" is a TODO there).
    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        ctx.inputs.iter().map(|x| super::grad::zeros_like(x).map(Some)).collect()
    }
}

/// `_contrib_box_nms`: outputs (boxes, hidden record of source rows).
pub struct BoxNms {
    overlap_thresh: f64,
    valid_thresh: f64,
    topk: i64,
    coord_start: i64,
    score_index: i64,
    id_index: i64,
    background_id: i64,
    force_suppress: bool,
    in_format: BoxFormat,
    out_format: BoxFormat,
}

impl BoxNms {
    /// (batch, boxes, width) of a data shape.
    fn dims(shape: &Shape) -> (usize, usize, usize) {
        let d = shape.dims();
        let nd = d.len();
        (d[..nd - 2].iter().product(), d[nd - 2], d[nd - 1])
    }

    fn params<R: Element>(&self) -> NmsParams<R> {
        // MXNet's thresholds are `float` fields compared in the data type.
        let f = |v: f64| R::from_f64(v as f32 as f64);
        NmsParams {
            overlap_thresh: f(self.overlap_thresh),
            valid_thresh: f(self.valid_thresh),
            topk: usize::try_from(self.topk).ok(),
            coord_start: self.coord_start as usize,
            score_index: self.score_index as usize,
            id_index: usize::try_from(self.id_index).ok(),
            background_id: R::from_f64(self.background_id as f64),
            force_suppress: self.force_suppress,
            in_format: self.in_format,
            out_format: self.out_format,
        }
    }
}

impl Operator for BoxNms {
    fn name(&self) -> &'static str {
        "_contrib_box_nms"
    }
    fn num_inputs(&self) -> usize {
        1
    }
    fn num_outputs(&self) -> usize {
        2
    }
    fn num_visible_outputs(&self) -> usize {
        1
    }
    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        let x = &inputs[0];
        let name = self.name();
        check_float(name, "data", x)?;
        let nd = x.shape.ndim();
        if nd < 2 {
            return Err(Error::op(
                name,
                format!("data {} must have at least 2 dimensions (..., num_box, box_width)", x.shape),
            ));
        }
        let width = x.shape.dims()[nd - 1] as i64;
        let expected = if self.id_index >= 0 { 6 } else { 5 };
        if width < expected {
            return Err(Error::op(
                name,
                format!(
                    "the last dimension of data {} must be at least {expected} (id, score, 4 coordinates)",
                    x.shape
                ),
            ));
        }
        let (cs, ce, si) = (self.coord_start, self.coord_start + 3, self.score_index);
        if !(0..width).contains(&si) || (cs..=ce).contains(&si) {
            return Err(Error::op(
                name,
                format!("score_index {si} is out of range 0..{width} or overlaps coordinates {cs}..={ce}"),
            ));
        }
        if cs < 0 || ce >= width {
            return Err(Error::op(name, format!("coordinates {cs}..={ce} are out of range 0..{width}")));
        }
        let id = self.id_index;
        if id >= 0 && (id >= width || (cs..=ce).contains(&id) || id == si) {
            return Err(Error::op(
                name,
                format!("id_index {id} is out of range 0..{width} or overlaps score_index/coordinates"),
            ));
        }
        let mut rec = x.shape.dims().to_vec();
        rec[nd - 1] = 1;
        Ok(vec![x.clone(), TensorInfo::new(Shape::new(&rec), x.dtype)])
    }
    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let dims = Self::dims(inputs[0].shape());
        let (a, b) = outputs.split_at_mut(1);
        with_real!(a[0].dtype(), self.name(), R => {
            let x = load::<R>(&inputs[0])?;
            let p = self.params::<R>();
            store2::<R>(&mut a[0], &mut b[0], |o, rec| {
                bbox::box_nms(&x, dims, &p, o, rec);
                Ok(())
            })
        })
    }
    fn has_gradient(&self) -> bool {
        true
    }
    /// MXNet's `_backward_contrib_box_nms`: each output row's gradient goes back to the
    /// input row it was copied from; suppressed rows get zero.
    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let x = &ctx.inputs[0];
        let (_, _, width) = Self::dims(x.shape());
        let ins = [ctx.out_grads[0].clone(), ctx.outputs[1].clone()];
        let dx = run_kernel("_backward_contrib_box_nms", &ins, vec![info(x)], move |_, ins, outs| {
            with_real!(outs[0].dtype(), "_backward_contrib_box_nms", R => {
                let (dy, rec) = (load::<R>(&ins[0])?, load::<R>(&ins[1])?);
                store::<R>(&mut outs[0], |dx| {
                    bbox::box_nms_backward(&dy, &rec, width, dx);
                    Ok(())
                })
            })
        })?;
        Ok(dx.into_iter().map(Some).collect())
    }
}

fn build(name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    Ok(match name {
        "_contrib_box_iou" => Arc::new(BoxIou { format: format(attrs, "format")? }),
        "_contrib_box_nms" => Arc::new(BoxNms {
            overlap_thresh: attrs.float("overlap_thresh", 0.5)?,
            valid_thresh: attrs.float("valid_thresh", 0.0)?,
            topk: attrs.int("topk", -1)?,
            coord_start: attrs.int("coord_start", 2)?,
            score_index: attrs.int("score_index", 1)?,
            id_index: attrs.int("id_index", -1)?,
            background_id: attrs.int("background_id", -1)?,
            force_suppress: attrs.bool("force_suppress", false)?,
            in_format: format(attrs, "in_format")?,
            out_format: format(attrs, "out_format")?,
        }),
        _ => return Err(Error::op(name, "not a bounding-box operator")),
    })
}

pub(crate) fn register(r: &mut Registry) {
    r.register_family(
        build,
        &[("_contrib_box_iou", &[]), ("_contrib_box_nms", &["_contrib_box_non_maximum_suppression"])],
    );
}
