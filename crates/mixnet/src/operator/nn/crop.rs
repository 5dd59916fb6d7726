//! `Crop` (MXNet's legacy `crop-inl.h`): a `(h, w)` window of `(N, C, H, W)` data, the size
//! given by `h_w` (`num_args=1`) or by a second input's `H, W` (`num_args=2`, crop like),
//! placed at `offset` `(y, x)` or centered (`center_crop`). The gradient pads the window's
//! gradient back with zeros; the shape input gets zeros.

use std::sync::Arc;

use super::kernel::{info, run_kernel};
use crate::op::{Attrs, Blob, GradContext, OpContext, Operator, Registry, TensorInfo};
use crate::{with_dtype, Error, NDArray, Result, Shape};

const NAME: &str = "Crop";

/// A configured `Crop`.
pub struct Crop {
    num_args: usize,
    offset: (usize, usize),
    h_w: (usize, usize),
    center: bool,
}

fn pair(attrs: &mut Attrs<'_>, key: &str) -> Result<(usize, usize)> {
    match attrs.tuple(key)?.as_deref() {
        None => Ok((0, 0)),
        Some(&[a, b]) if a >= 0 && b >= 0 => Ok((a as usize, b as usize)),
        Some(other) => Err(Error::op(NAME, format!("{key} must be two non-negative values, got {other:?}"))),
    }
}

fn build(_name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    let num_args = match attrs.opt_int("num_args")? {
        Some(n @ 1..=2) => n as usize,
        Some(n) => return Err(Error::op(NAME, format!("num_args must be 1 or 2, got {n}"))),
        None => return Err(Error::op(NAME, "required attribute num_args is missing")),
    };
    let offset = pair(attrs, "offset")?;
    let h_w = pair(attrs, "h_w")?;
    let center = attrs.bool("center_crop", false)?;
    Ok(Arc::new(Crop { num_args, offset, h_w, center }))
}

impl Crop {
    /// The window's `(y, x)` offset for data `(h, w)` cropped to `(oh, ow)`.
    fn origin(&self, (h, w): (usize, usize), (oh, ow): (usize, usize)) -> Result<(usize, usize)> {
        if self.center {
            return Ok(((h - oh) / 2, (w - ow) / 2));
        }
        let (y, x) = self.offset;
        if y > h - oh || x > w - ow {
            return Err(Error::op(
                NAME,
                format!("offset ({y}, {x}) leaves no room for a {oh}x{ow} window in {h}x{w} data"),
            ));
        }
        Ok((y, x))
    }
}

/// Geometry of a crop: planes, data `(h, w)`, window `(oh, ow)` at `(y, x)`.
#[derive(Clone, Copy)]
struct Window {
    planes: usize,
    hw: (usize, usize),
    out: (usize, usize),
    at: (usize, usize),
}

impl Window {
    /// Row `r` of plane `p`: its offset in the data and in the window.
    fn rows(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let ((h, w), (oh, ow), (y, x)) = (self.hw, self.out, self.at);
        (0..self.planes)
            .flat_map(move |p| (0..oh).map(move |r| (((p * h + y + r) * w + x), (p * oh + r) * ow)))
    }
    fn read<T: Copy>(&self, full: &[T], win: &mut [T]) {
        let ow = self.out.1;
        for (f, o) in self.rows() {
            win[o..o + ow].copy_from_slice(&full[f..f + ow]);
        }
    }
    fn write<T: Copy + Default>(&self, win: &[T], full: &mut [T]) {
        full.fill(T::default());
        let ow = self.out.1;
        for (f, o) in self.rows() {
            full[f..f + ow].copy_from_slice(&win[o..o + ow]);
        }
    }
}

impl Operator for Crop {
    fn name(&self) -> &'static str {
        NAME
    }
    fn num_inputs(&self) -> usize {
        self.num_args
    }
    fn input_names(&self) -> Vec<String> {
        (0..self.num_args).map(|i| format!("arg{i}")).collect()
    }
    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        let d = inputs[0].shape.dims();
        if d.len() != 4 {
            return Err(Error::op(NAME, format!("data must be 4-D (N, C, H, W), got {}", inputs[0].shape)));
        }
        let (oh, ow) = if self.num_args == 2 {
            match inputs[1].shape.dims() {
                [_, _, oh, ow] => (*oh, *ow),
                _ => {
                    return Err(Error::op(
                        NAME,
                        format!("the shape input must be 4-D, got {}", inputs[1].shape),
                    ))
                }
            }
        } else {
            self.h_w
        };
        if oh < 1 || ow < 1 || oh > d[2] || ow > d[3] {
            return Err(Error::op(NAME, format!("cannot crop {oh}x{ow} out of data {}", inputs[0].shape)));
        }
        self.origin((d[2], d[3]), (oh, ow))?;
        Ok(vec![TensorInfo::new(Shape::new(&[d[0], d[1], oh, ow]), inputs[0].dtype)])
    }
    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let (d, o) = (inputs[0].shape().dims().to_vec(), outputs[0].shape().dims().to_vec());
        let at = self.origin((d[2], d[3]), (o[2], o[3]))?;
        let win = Window { planes: d[0] * d[1], hw: (d[2], d[3]), out: (o[2], o[3]), at };
        with_dtype!(inputs[0].dtype(), T => {
            win.read(inputs[0].slice::<T>()?, outputs[0].slice_mut::<T>()?);
        });
        Ok(())
    }
    fn has_gradient(&self) -> bool {
        true
    }
    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let (x, dy) = (&ctx.inputs[0], &ctx.out_grads[0]);
        let (d, o) = (x.shape().dims().to_vec(), dy.shape().dims().to_vec());
        let at = self.origin((d[2], d[3]), (o[2], o[3]))?;
        let win = Window { planes: d[0] * d[1], hw: (d[2], d[3]), out: (o[2], o[3]), at };
        let dx = run_kernel("_backward_Crop", &[dy.clone()], vec![info(x)], move |_, ins, outs| {
            with_dtype!(ins[0].dtype(), T => {
                win.write(ins[0].slice::<T>()?, outs[0].slice_mut::<T>()?);
            });
            Ok(())
        })?
        .remove(0);
        let mut grads = vec![Some(dx)];
        if let Some(s) = ctx.inputs.get(1) {
            grads.push(Some(NDArray::zeros(s.shape().clone(), s.dtype(), s.context())?));
        }
        Ok(grads)
    }
}

pub(crate) fn register(r: &mut Registry) {
    r.register_family(build, &[(NAME, &[])]);
}
