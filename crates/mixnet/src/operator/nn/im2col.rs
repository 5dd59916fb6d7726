//! `im2col` and `col2im` (MXNet's `nn/im2col-inl.h`): sliding blocks of a `(N, C, spatial)`
//! image as columns `(N, C·prod(kernel), prod(out_spatial))`, and back (summing overlaps).
//! 1-D, 2-D and 3-D kernels; each is the other's gradient. The kernels are the ones the
//! convolution uses (`mixnet_kernels::conv`).

use std::sync::Arc;

use mixnet_kernels::conv::{col2im, im2col, ConvGeom};

use super::kernel::{check_float, info, load, run_kernel, store, with_real, Compute};
use crate::op::{Attrs, Blob, GradContext, OpContext, Operator, Registry, TensorInfo};
use crate::{Error, NDArray, Result, Shape};

/// Block geometry from the attributes (spatial dims only).
#[derive(Clone, Debug)]
struct Blocks {
    kernel: Vec<usize>,
    stride: Vec<usize>,
    dilate: Vec<usize>,
    pad: Vec<usize>,
}

/// A configured `im2col` or `col2im`.
pub struct Im2Col {
    name: &'static str,
    blocks: Blocks,
    /// col2im's `output_size`.
    output_size: Option<Vec<usize>>,
}

fn tuple(attrs: &mut Attrs<'_>, name: &str, key: &str, n: usize, default: usize) -> Result<Vec<usize>> {
    match attrs.tuple(key)? {
        None => Ok(vec![default; n]),
        Some(v) if v.is_empty() => Ok(vec![default; n]),
        Some(v) if v.len() == n && v.iter().all(|&d| d >= 0) => {
            Ok(v.into_iter().map(|d| d as usize).collect())
        }
        Some(v) => {
            Err(Error::op(name, format!("{key} {v:?} must have {n} non-negative entries like kernel")))
        }
    }
}

fn build(name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    let kernel =
        attrs.tuple("kernel")?.ok_or_else(|| Error::op(name, "required attribute kernel is missing"))?;
    if kernel.is_empty() || kernel.len() > 3 || kernel.iter().any(|&k| k < 1) {
        return Err(Error::op(name, format!("kernel {kernel:?} must have 1 to 3 positive sizes")));
    }
    let n = kernel.len();
    let kernel: Vec<usize> = kernel.into_iter().map(|k| k as usize).collect();
    let blocks = Blocks {
        stride: tuple(attrs, name, "stride", n, 1)?.into_iter().map(|s| s.max(1)).collect(),
        dilate: tuple(attrs, name, "dilate", n, 1)?.into_iter().map(|s| s.max(1)).collect(),
        pad: tuple(attrs, name, "pad", n, 0)?,
        kernel,
    };
    let output_size = if name == "col2im" {
        let v = attrs
            .tuple("output_size")?
            .ok_or_else(|| Error::op(name, "required attribute output_size is missing"))?;
        if v.len() != n || v.iter().any(|&d| d < 1) {
            return Err(Error::op(
                name,
                format!("output_size {v:?} must have {n} positive sizes like kernel"),
            ));
        }
        Some(v.into_iter().map(|d| d as usize).collect())
    } else {
        None
    };
    Ok(Arc::new(Im2Col { name, blocks, output_size }))
}

impl Im2Col {
    /// The convolution geometry of one image with `channels` and input spatial `sp`.
    fn geom(&self, channels: usize, sp: &[usize]) -> Result<ConvGeom> {
        let b = &self.blocks;
        let n = b.kernel.len();
        let lead = 3 - n;
        let pad3 = |v: &[usize], fill: usize| -> [usize; 3] {
            let mut a = [fill; 3];
            a[lead..].copy_from_slice(v);
            a
        };
        let mut output = [1; 3];
        for i in 0..n {
            let span = b.dilate[i] * (b.kernel[i] - 1) + 1;
            let padded = sp[i] + 2 * b.pad[i];
            if padded < span {
                return Err(Error::op(
                    self.name,
                    format!("kernel {:?} (dilated) exceeds the padded input {:?}", b.kernel, sp),
                ));
            }
            output[lead + i] = (padded - span) / b.stride[i] + 1;
        }
        Ok(ConvGeom {
            batch: 1,
            groups: 1,
            in_channels: channels,
            out_channels: 1,
            input: pad3(sp, 1),
            output,
            kernel: pad3(&b.kernel, 1),
            stride: pad3(&b.stride, 1),
            pad: pad3(&b.pad, 0),
            dilate: pad3(&b.dilate, 1),
        })
    }

    /// (batch, channels, image spatial dims) of the image side of the op for an input shape.
    fn image_side(&self, input: &Shape) -> Result<(usize, usize, Vec<usize>)> {
        let d = input.dims();
        let n = self.blocks.kernel.len();
        if d.len() != n + 2 && self.output_size.is_none() || self.output_size.is_some() && d.len() != 3 {
            return Err(Error::op(self.name, format!("input {input} does not fit a {n}-D kernel")));
        }
        match &self.output_size {
            None => Ok((d[0], d[1], d[2..].to_vec())),
            Some(os) => {
                let kv: usize = self.blocks.kernel.iter().product();
                if !d[1].is_multiple_of(kv) {
                    return Err(Error::op(
                        self.name,
                        format!("input channels {} are not a multiple of the kernel volume {kv}", d[1]),
                    ));
                }
                Ok((d[0], d[1] / kv, os.clone()))
            }
        }
    }
}

/// Run im2col (`to_cols`) or col2im over a batch.
fn transform<R: Compute>(g: &ConvGeom, batch: usize, src: &[R], dst: &mut [R], to_cols: bool) {
    let (img, cols) = (g.in_channels * g.in_spatial(), g.in_channels * g.kernel_volume() * g.out_spatial());
    if !to_cols {
        dst.fill(<R as mixnet_kernels::Element>::ZERO);
    }
    for b in 0..batch {
        if to_cols {
            im2col(g, &src[b * img..(b + 1) * img], &mut dst[b * cols..(b + 1) * cols]);
        } else {
            col2im(g, &src[b * cols..(b + 1) * cols], &mut dst[b * img..(b + 1) * img]);
        }
    }
}

impl Operator for Im2Col {
    fn name(&self) -> &'static str {
        self.name
    }
    fn num_inputs(&self) -> usize {
        1
    }
    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        check_float(self.name, "data", &inputs[0])?;
        let (n, c, sp) = self.image_side(&inputs[0].shape)?;
        let g = self.geom(c, &sp)?;
        let shape = if self.output_size.is_none() {
            Shape::new(&[n, c * g.kernel_volume(), g.out_spatial()])
        } else {
            if inputs[0].shape.dims()[2] != g.out_spatial() {
                return Err(Error::op(
                    self.name,
                    format!(
                        "input {} has {} blocks, output_size {:?} gives {}",
                        inputs[0].shape,
                        inputs[0].shape.dims()[2],
                        sp,
                        g.out_spatial()
                    ),
                ));
            }
            Shape::new(&[&[n, c][..], &sp[..]].concat())
        };
        Ok(vec![TensorInfo::new(shape, inputs[0].dtype)])
    }
    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let (n, c, sp) = self.image_side(inputs[0].shape())?;
        let g = self.geom(c, &sp)?;
        let to_cols = self.output_size.is_none();
        with_real!(inputs[0].dtype(), self.name, R => {
            let x = load::<R>(&inputs[0])?;
            store::<R>(&mut outputs[0], |o| {
                transform(&g, n, &x, o, to_cols);
                Ok(())
            })
        })
    }
    fn has_gradient(&self) -> bool {
        true
    }
    /// Each is the other's adjoint.
    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let x = &ctx.inputs[0];
        let (n, c, sp) = self.image_side(x.shape())?;
        let g = self.geom(c, &sp)?;
        let to_cols = self.output_size.is_some();
        let name = self.name;
        let backward = if to_cols { "_backward_col2im" } else { "_backward_im2col" };
        let dx = run_kernel(
            backward,
            std::slice::from_ref(&ctx.out_grads[0]),
            vec![info(x)],
            move |_, ins, outs| {
                with_real!(ins[0].dtype(), name, R => {
                    let dy = load::<R>(&ins[0])?;
                    store::<R>(&mut outs[0], |dx| {
                        transform(&g, n, &dy, dx, to_cols);
                        Ok(())
                    })
                })
            },
        )?;
        Ok(dx.into_iter().map(Some).collect())
    }
}

pub(crate) fn register(r: &mut Registry) {
    r.register_family(build, &[("im2col", &[]), ("col2im", &[])]);
}
