//! `ROIPooling` (MXNet's `roi_pooling.cc`): max pooling of each region of interest
//! `[batch_index, x1, y1, x2, y2]` of `(N, C, H, W)` data into `pooled_size` bins, with
//! coordinates scaled by `spatial_scale` and rounded. The data gradient goes to each
//! bin's maximum; the boxes get zeros.

use std::sync::Arc;

use mixnet_kernels::roi::RoiPool;

use super::kernel::{check_float, info, load, run_kernel, store, with_real};
use crate::op::{Attrs, Blob, GradContext, OpContext, Operator, Registry, TensorInfo};
use crate::{Error, NDArray, Result, Shape};

const NAME: &str = "ROIPooling";

/// A configured `ROIPooling`.
pub struct RoiPooling {
    pooled: (usize, usize),
    spatial_scale: f32,
}

/// The `pooled_size` and `spatial_scale` (an f32 field in MXNet) every ROI op requires.
pub(crate) fn roi_attrs(op: &str, attrs: &mut Attrs<'_>) -> Result<((usize, usize), f32)> {
    let pooled = match attrs.tuple("pooled_size")?.as_deref() {
        Some(&[h, w]) if h > 0 && w > 0 => (h as usize, w as usize),
        Some(other) => {
            return Err(Error::op(op, format!("pooled_size must be two positive sizes, got {other:?}")))
        }
        None => return Err(Error::op(op, "required attribute pooled_size is missing")),
    };
    let scale = attrs
        .opt_float("spatial_scale")?
        .ok_or_else(|| Error::op(op, "required attribute spatial_scale is missing"))?;
    Ok((pooled, scale as f32))
}

fn build(_name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    let (pooled, spatial_scale) = roi_attrs(NAME, attrs)?;
    Ok(Arc::new(RoiPooling { pooled, spatial_scale }))
}

impl RoiPooling {
    fn geometry(&self, data: &Shape, rois: &Shape) -> Result<RoiPool> {
        match (data.dims(), rois.dims()) {
            (&[n, c, h, w], &[_, 5]) => Ok(RoiPool {
                batch: n,
                channels: c,
                hw: (h, w),
                pooled: self.pooled,
                spatial_scale: self.spatial_scale,
            }),
            _ => Err(Error::op(
                NAME,
                format!("data must be (N, C, H, W) and rois (R, 5), got {data} and {rois}"),
            )),
        }
    }
}

impl Operator for RoiPooling {
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
        let g = self.geometry(&inputs[0].shape, &inputs[1].shape)?;
        let r = inputs[1].shape.dims()[0];
        Ok(vec![TensorInfo::new(Shape::new(&[r, g.channels, g.pooled.0, g.pooled.1]), inputs[0].dtype)])
    }
    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let g = self.geometry(inputs[0].shape(), inputs[1].shape())?;
        with_real!(inputs[0].dtype(), NAME, R => {
            let (x, rois) = (load::<R>(&inputs[0])?, load::<R>(&inputs[1])?);
            store::<R>(&mut outputs[0], |y| {
                g.forward(&x, &rois, y);
                Ok(())
            })
        })
    }
    fn has_gradient(&self) -> bool {
        true
    }
    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let (data, rois) = (&ctx.inputs[0], &ctx.inputs[1]);
        let g = self.geometry(data.shape(), rois.shape())?;
        let dx = run_kernel(
            "_backward_ROIPooling",
            &[ctx.out_grads[0].clone(), data.clone(), rois.clone()],
            vec![info(data)],
            move |_, ins, outs| {
                with_real!(ins[0].dtype(), NAME, R => {
                    let (dy, x, r) = (load::<R>(&ins[0])?, load::<R>(&ins[1])?, load::<R>(&ins[2])?);
                    // The argmax of the forward, recomputed (the output itself is discarded).
                    let mut scratch = vec![<R as mixnet_kernels::Element>::ZERO; dy.len()];
                    let arg = g.forward(&x, &r, &mut scratch);
                    store::<R>(&mut outs[0], |dx| {
                        g.backward(&dy, &arg, dx);
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
