//! `_contrib_ROIAlign` (MXNet's `contrib/roi_align.cc`): each bin of a region of interest
//! is the mean of bilinear samples (`sample_ratio` per side, or adaptive when -1), with
//! `spatial_scale`, `position_sensitive` and `aligned` (half-pixel offset) as MXNet has
//! them. Boxes are `(R, 5)` `[batch, x1, y1, x2, y2]`. The data gradient
//! spreads each bin's gradient over its samples; the boxes get zeros.

use std::sync::Arc;

use mixnet_kernels::roi::RoiAlign;

use super::kernel::{check_float, info, load, run_kernel, store, with_real};
use crate::op::{Attrs, Blob, GradContext, OpContext, Operator, Registry, TensorInfo};
use crate::{Error, NDArray, Result, Shape};

const NAME: &str = "_contrib_ROIAlign";

/// A configured ROI align.
pub struct RoiAlignOp {
    pooled: (usize, usize),
    spatial_scale: f64,
    sample_ratio: i64,
    position_sensitive: bool,
    aligned: bool,
}

fn build(_name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    let (pooled, scale) = super::roi_pooling::roi_attrs(NAME, attrs)?;
    let spatial_scale = f64::from(scale);
    Ok(Arc::new(RoiAlignOp {
        pooled,
        spatial_scale,
        sample_ratio: attrs.int("sample_ratio", -1)?,
        position_sensitive: attrs.bool("position_sensitive", false)?,
        aligned: attrs.bool("aligned", false)?,
    }))
}

impl RoiAlignOp {
    fn geometry(&self, data: &Shape, rois: &Shape) -> Result<(RoiAlign, usize)> {
        let (d, r) = (data.dims(), rois.dims());
        let (&[n, c, h, w], &[_, cols @ 5]) = (d, r) else {
            return Err(Error::op(
                NAME,
                format!("data must be (N, C, H, W) and rois (R, 5), got {data} and {rois}"),
            ));
        };
        let bins = self.pooled.0 * self.pooled.1;
        if self.position_sensitive && c % bins != 0 {
            return Err(Error::op(
                NAME,
                format!(
                    "position_sensitive needs channels divisible by {bins} (pooled_size), data is {data}"
                ),
            ));
        }
        let g = RoiAlign {
            batch: n,
            channels: c,
            hw: (h, w),
            pooled: self.pooled,
            spatial_scale: self.spatial_scale,
            sample_ratio: self.sample_ratio,
            position_sensitive: self.position_sensitive,
            aligned: self.aligned,
        };
        Ok((g, cols))
    }
}

impl Operator for RoiAlignOp {
    fn name(&self) -> &'static str {
        NAME
    }
    fn num_inputs(&self) -> usize {
        2
    }
    fn input_names(&self) -> Vec<String> {
        vec!["data".into(), "rois".into()]
    }
    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        check_float(NAME, "data", &inputs[0])?;
        if inputs[1].dtype != inputs[0].dtype {
            return Err(Error::op(
                NAME,
                format!("rois must be {}, got {}", inputs[0].dtype, inputs[1].dtype),
            ));
        }
        let (g, _) = self.geometry(&inputs[0].shape, &inputs[1].shape)?;
        let r = inputs[1].shape.dims()[0];
        Ok(vec![TensorInfo::new(Shape::new(&[r, g.out_channels(), g.pooled.0, g.pooled.1]), inputs[0].dtype)])
    }
    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let (g, cols) = self.geometry(inputs[0].shape(), inputs[1].shape())?;
        with_real!(inputs[0].dtype(), NAME, R => {
            let (x, rois) = (load::<R>(&inputs[0])?, load::<R>(&inputs[1])?);
            store::<R>(&mut outputs[0], |y| {
                g.forward(&x, &rois, cols, y);
                Ok(())
            })
        })
    }
    fn has_gradient(&self) -> bool {
        true
    }
    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let (data, rois) = (&ctx.inputs[0], &ctx.inputs[1]);
        let (g, cols) = self.geometry(data.shape(), rois.shape())?;
        let dx = run_kernel(
            "_backward_contrib_ROIAlign",
            &[ctx.out_grads[0].clone(), rois.clone()],
            vec![info(data)],
            move |_, ins, outs| {
                with_real!(ins[0].dtype(), NAME, R => {
                    let (dy, r) = (load::<R>(&ins[0])?, load::<R>(&ins[1])?);
                    store::<R>(&mut outs[0], |dx| {
                        g.backward(&dy, &r, cols, dx);
                        Ok(())
                    })
                })
            },
        )?
        .remove(0);
        let drois = NDArray::zeros(rois.shape().clone(), rois.dtype(), rois.context())?;
        Ok(vec![Some(dx), Some(drois)])
    }
}

pub(crate) fn register(r: &mut Registry) {
    r.register_family(build, &[(NAME, &[])]);
}
