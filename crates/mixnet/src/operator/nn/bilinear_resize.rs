//! `_contrib_BilinearResize2D` (MXNet's `contrib/bilinear_resize.cc`): bilinear resize of
//! `(N, C, H, W)`. The output size comes from `mode`: `size` (`height`/`width`, or the
//! input size times `scale_height`/`scale_width`), `odd_scale`, `like` (a second input's
//! `H, W`), `to_even_down`, `to_even_up`, `to_odd_down`, `to_odd_up`; `align_corners`
//! (default true) maps corner pixel centers onto each other.

use std::sync::Arc;

use mixnet_kernels::image::{bilinear_resize_planes, bilinear_resize_planes_backward};

use super::kernel::{check_float, info, load, run_kernel, store, with_real};
use crate::op::{Attrs, Blob, GradContext, OpContext, Operator, Registry, TensorInfo};
use crate::{Error, NDArray, Result, Shape};

const NAME: &str = "_contrib_BilinearResize2D";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Size,
    OddScale,
    Like,
    ToEvenDown,
    ToEvenUp,
    ToOddDown,
    ToOddUp,
}

/// A configured bilinear resize.
pub struct BilinearResize {
    height: usize,
    width: usize,
    scale: (Option<f64>, Option<f64>),
    mode: Mode,
    align_corners: bool,
}

fn build(_name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    let height = attrs.int("height", 1)?;
    let width = attrs.int("width", 1)?;
    if height < 1 || width < 1 {
        return Err(Error::op(
            NAME,
            format!("height and width must be at least 1, got {height} and {width}"),
        ));
    }
    let mode = match attrs.str_or("mode", "size") {
        "size" => Mode::Size,
        "odd_scale" => Mode::OddScale,
        "like" => Mode::Like,
        "to_even_down" => Mode::ToEvenDown,
        "to_even_up" => Mode::ToEvenUp,
        "to_odd_down" => Mode::ToOddDown,
        "to_odd_up" => Mode::ToOddUp,
        other => return Err(Error::op(NAME, format!("unknown mode '{other}'"))),
    };
    let scale = (attrs.opt_float("scale_height")?, attrs.opt_float("scale_width")?);
    let align_corners = attrs.bool("align_corners", true)?;
    Ok(Arc::new(BilinearResize {
        height: height as usize,
        width: width as usize,
        scale,
        mode,
        align_corners,
    }))
}

impl BilinearResize {
    fn out_size(&self, inputs: &[TensorInfo]) -> Result<(usize, usize)> {
        let d = inputs[0].shape.dims();
        let (h, w) = (d[2], d[3]);
        let need = |s: Option<f64>, what: &str| {
            s.ok_or_else(|| Error::op(NAME, format!("mode needs {what}, which is not given")))
        };
        let scaled = |n: usize, s: f64| (s * n as f64) as f32 as usize;
        Ok(match self.mode {
            Mode::Size => match self.scale.0 {
                // MXNet checks scale_height for the width too.
                Some(sh) => (scaled(h, sh), scaled(w, need(self.scale.1, "scale_width")?)),
                None => (self.height, self.width),
            },
            Mode::OddScale => {
                let (sh, sw) = (need(self.scale.0, "scale_height")?, need(self.scale.1, "scale_width")?);
                let odd =
                    |n: usize, s: f64| if n.is_multiple_of(2) { scaled(n, s) } else { scaled(n - 1, s) + 1 };
                (odd(h, sh), odd(w, sw))
            }
            Mode::Like => {
                let l = inputs[1].shape.dims();
                if l.len() != 4 {
                    return Err(Error::op(NAME, format!("like must be 4-D, got {}", inputs[1].shape)));
                }
                (l[2], l[3])
            }
            Mode::ToEvenDown => (h - h % 2, w - w % 2),
            Mode::ToEvenUp => (h + h % 2, w + w % 2),
            Mode::ToOddDown => (h - (1 - h % 2), w - (1 - w % 2)),
            Mode::ToOddUp => (h + (1 - h % 2), w + (1 - w % 2)),
        })
    }
}

impl Operator for BilinearResize {
    fn name(&self) -> &'static str {
        NAME
    }
    fn num_inputs(&self) -> usize {
        1 + usize::from(self.mode == Mode::Like)
    }
    fn input_names(&self) -> Vec<String> {
        let mut v = vec!["data".to_string()];
        if self.mode == Mode::Like {
            v.push("like".into());
        }
        v
    }
    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        let x = &inputs[0];
        check_float(NAME, "data", x)?;
        if x.shape.ndim() != 4 {
            return Err(Error::op(NAME, format!("data must be 4-D (N, C, H, W), got {}", x.shape)));
        }
        let (oh, ow) = self.out_size(inputs)?;
        if oh == 0 || ow == 0 {
            return Err(Error::op(NAME, format!("output size {oh}x{ow} for data {}", x.shape)));
        }
        let d = x.shape.dims();
        Ok(vec![TensorInfo::new(Shape::new(&[d[0], d[1], oh, ow]), x.dtype)])
    }
    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let (d, o) = (inputs[0].shape().dims().to_vec(), outputs[0].shape().dims().to_vec());
        let align = self.align_corners;
        with_real!(inputs[0].dtype(), NAME, R => {
            let x = load::<R>(&inputs[0])?;
            store::<R>(&mut outputs[0], |y| {
                bilinear_resize_planes(&x, y, d[0] * d[1], (d[2], d[3]), (o[2], o[3]), align);
                Ok(())
            })
        })
    }
    fn has_gradient(&self) -> bool {
        true
    }
    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let (x, dy) = (&ctx.inputs[0], &ctx.out_grads[0]);
        let (d, o) = (x.shape().dims().to_vec(), dy.shape().dims().to_vec());
        let align = self.align_corners;
        let dx = run_kernel("_backward_contrib_BilinearResize2D", &[dy.clone()], vec![info(x)], move |_, ins, outs| {
            with_real!(ins[0].dtype(), NAME, R => {
                let g = load::<R>(&ins[0])?;
                store::<R>(&mut outs[0], |dx| {
                    bilinear_resize_planes_backward(&g, dx, d[0] * d[1], (d[2], d[3]), (o[2], o[3]), align);
                    Ok(())
                })
            })
        })?
        .remove(0);
        let mut grads = vec![Some(dx)];
        if let Some(like) = ctx.inputs.get(1) {
            grads.push(Some(NDArray::zeros(like.shape().clone(), like.dtype(), like.context())?));
        }
        Ok(grads)
    }
}

pub(crate) fn register(r: &mut Registry) {
    r.register_family(build, &[(NAME, &[])]);
}
