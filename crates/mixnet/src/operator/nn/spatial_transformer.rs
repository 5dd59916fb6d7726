//! Spatial transformer operators (MXNet's `grid_generator.cc`, `bilinear_sampler.cc`,
//! `spatial_transformer.cc`): `GridGenerator` (affine `(N, 6)` → `(N, 2, H, W)` grids, or
//! `warp` from a pixel flow), `BilinearSampler` (sample `(N, C, H, W)` data at a grid of
//! normalized coordinates, zero outside), and `SpatialTransformer` (both in one: affine
//! grid from `loc`, then bilinear sampling). Kernels in `mixnet_kernels::spatial`.

use std::sync::Arc;

use mixnet_kernels::spatial::{affine_grid, affine_grid_backward, warp_grid, warp_grid_backward, Sampling};

use super::kernel::{check_float, info, load, run_kernel, store, with_real};
use crate::op::{Attrs, Blob, GradContext, OpContext, Operator, Registry, TensorInfo};
use crate::{Error, NDArray, Result, Shape};

fn target_shape(op: &str, attrs: &mut Attrs<'_>) -> Result<(usize, usize)> {
    match attrs.tuple("target_shape")?.as_deref() {
        None => Ok((0, 0)),
        Some(&[h, w]) if h >= 0 && w >= 0 => Ok((h as usize, w as usize)),
        Some(other) => Err(Error::op(op, format!("target_shape must be two sizes, got {other:?}"))),
    }
}

/// `GridGenerator(data, transform_type, target_shape)`.
pub struct GridGenerator {
    affine: bool,
    target: (usize, usize),
}

fn build_grid(name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    let affine = match attrs.get("transform_type") {
        Some("affine") => true,
        Some("warp") => false,
        Some(other) => {
            return Err(Error::op(name, format!("transform_type must be affine or warp, got {other}")))
        }
        None => return Err(Error::op(name, "required attribute transform_type is missing")),
    };
    Ok(Arc::new(GridGenerator { affine, target: target_shape(name, attrs)? }))
}

impl GridGenerator {
    /// `(n, (h, w))` of the grid for `data`.
    fn geometry(&self, data: &Shape) -> Result<(usize, (usize, usize))> {
        match (self.affine, data.dims()) {
            (true, &[n, 6]) => {
                if self.target.0 < 2 || self.target.1 < 2 {
                    return Err(Error::op(
                        "GridGenerator",
                        format!("target_shape must be at least (2, 2), got {:?}", self.target),
                    ));
                }
                Ok((n, self.target))
            }
            (false, &[n, 2, h, w]) if h >= 2 && w >= 2 => Ok((n, (h, w))),
            _ => Err(Error::op(
                "GridGenerator",
                format!("data must be (N, 6) for affine or (N, 2, H, W) with H, W >= 2 for warp, got {data}"),
            )),
        }
    }
}

impl Operator for GridGenerator {
    fn name(&self) -> &'static str {
        "GridGenerator"
    }
    fn num_inputs(&self) -> usize {
        1
    }
    fn input_names(&self) -> Vec<String> {
        vec!["data".into()]
    }
    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        check_float("GridGenerator", "data", &inputs[0])?;
        let (n, (h, w)) = self.geometry(&inputs[0].shape)?;
        Ok(vec![TensorInfo::new(Shape::new(&[n, 2, h, w]), inputs[0].dtype)])
    }
    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let (n, hw) = self.geometry(inputs[0].shape())?;
        let affine = self.affine;
        with_real!(inputs[0].dtype(), "GridGenerator", R => {
            let x = load::<R>(&inputs[0])?;
            store::<R>(&mut outputs[0], |g| {
                if affine { affine_grid(&x, g, n, hw) } else { warp_grid(&x, g, n, hw) }
                Ok(())
            })
        })
    }
    fn has_gradient(&self) -> bool {
        true
    }
    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let (n, hw) = self.geometry(ctx.inputs[0].shape())?;
        let affine = self.affine;
        let d = run_kernel("_backward_GridGenerator", &[ctx.out_grads[0].clone()], vec![info(&ctx.inputs[0])], move |_, ins, outs| {
            with_real!(ins[0].dtype(), "GridGenerator", R => {
                let g = load::<R>(&ins[0])?;
                store::<R>(&mut outs[0], |d| {
                    if affine { affine_grid_backward(&g, d, n, hw) } else { warp_grid_backward(&g, d, n, hw) }
                    Ok(())
                })
            })
        })?
        .remove(0);
        Ok(vec![Some(d)])
    }
}

/// The sampling geometry of `(N, C, H, W)` data and an `(N, 2, oh, ow)` grid.
fn sampling(op: &str, data: &Shape, grid: &Shape) -> Result<Sampling> {
    match (data.dims(), grid.dims()) {
        (&[n, c, h, w], &[gn, 2, oh, ow]) if gn == n => Ok(Sampling { n, c, hw: (h, w), out: (oh, ow) }),
        _ => Err(Error::op(
            op,
            format!("data must be (N, C, H, W) and grid (N, 2, H', W'), got {data} and {grid}"),
        )),
    }
}

/// `BilinearSampler(data, grid)`.
pub struct BilinearSampler;

fn build_sampler(_name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    attrs.bool("cudnn_off", false)?;
    Ok(Arc::new(BilinearSampler))
}

/// Gradients `(ddata, dgrid)` of a bilinear sampling, as one kernel.
fn sampler_backward(dy: &NDArray, data: &NDArray, grid: &NDArray, s: Sampling) -> Result<Vec<NDArray>> {
    run_kernel(
        "_backward_BilinearSampler",
        &[dy.clone(), data.clone(), grid.clone()],
        vec![info(data), info(grid)],
        move |_, ins, outs| {
            with_real!(ins[0].dtype(), "BilinearSampler", R => {
                let (dy, x, g) = (load::<R>(&ins[0])?, load::<R>(&ins[1])?, load::<R>(&ins[2])?);
                let mut dgrid = vec![<R as mixnet_kernels::Element>::ZERO; g.len()];
                store::<R>(&mut outs[0], |dx| {
                    s.backward(&dy, &x, &g, dx, &mut dgrid);
                    Ok(())
                })?;
                store::<R>(&mut outs[1], |d| {
                    d.copy_from_slice(&dgrid);
                    Ok(())
                })
            })
        },
    )
}

impl Operator for BilinearSampler {
    fn name(&self) -> &'static str {
        "BilinearSampler"
    }
    fn num_inputs(&self) -> usize {
        2
    }
    fn input_names(&self) -> Vec<String> {
        vec!["data".into(), "grid".into()]
    }
    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        check_float("BilinearSampler", "data", &inputs[0])?;
        if inputs[1].dtype != inputs[0].dtype {
            return Err(Error::op(
                "BilinearSampler",
                format!("grid must be {}, got {}", inputs[0].dtype, inputs[1].dtype),
            ));
        }
        let s = sampling("BilinearSampler", &inputs[0].shape, &inputs[1].shape)?;
        Ok(vec![TensorInfo::new(Shape::new(&[s.n, s.c, s.out.0, s.out.1]), inputs[0].dtype)])
    }
    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let s = sampling("BilinearSampler", inputs[0].shape(), inputs[1].shape())?;
        with_real!(inputs[0].dtype(), "BilinearSampler", R => {
            let (x, g) = (load::<R>(&inputs[0])?, load::<R>(&inputs[1])?);
            store::<R>(&mut outputs[0], |y| {
                s.forward(&x, &g, y);
                Ok(())
            })
        })
    }
    fn has_gradient(&self) -> bool {
        true
    }
    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let s = sampling("BilinearSampler", ctx.inputs[0].shape(), ctx.inputs[1].shape())?;
        let g = sampler_backward(&ctx.out_grads[0], &ctx.inputs[0], &ctx.inputs[1], s)?;
        Ok(g.into_iter().map(Some).collect())
    }
}

/// `SpatialTransformer(data, loc, target_shape, transform_type='affine',
/// sampler_type='bilinear')`.
pub struct SpatialTransformer {
    grid: GridGenerator,
}

fn build_st(name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    for (key, only) in [("transform_type", "affine"), ("sampler_type", "bilinear")] {
        match attrs.get(key) {
            Some(v) if v == only => {}
            Some(v) => return Err(Error::op(name, format!("{key} must be {only}, got {v}"))),
            None => return Err(Error::op(name, format!("required attribute {key} is missing"))),
        }
    }
    attrs.bool("cudnn_off", false)?;
    Ok(Arc::new(SpatialTransformer {
        grid: GridGenerator { affine: true, target: target_shape(name, attrs)? },
    }))
}

impl SpatialTransformer {
    /// The sampling grid of `loc`, recomputed for the gradient (an engine op).
    fn grid_of(&self, loc: &NDArray) -> Result<NDArray> {
        let op: Arc<dyn Operator> = Arc::new(GridGenerator { affine: true, target: self.grid.target });
        let mut g = crate::imperative::invoke_operator_small(&op, std::slice::from_ref(loc))?;
        Ok(g.swap_remove(0))
    }
}

impl Operator for SpatialTransformer {
    fn name(&self) -> &'static str {
        "SpatialTransformer"
    }
    fn num_inputs(&self) -> usize {
        2
    }
    fn input_names(&self) -> Vec<String> {
        vec!["data".into(), "loc".into()]
    }
    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        check_float("SpatialTransformer", "data", &inputs[0])?;
        let (n, (h, w)) = self.grid.geometry(&inputs[1].shape)?;
        match inputs[0].shape.dims() {
            &[dn, c, _, _] if dn == n => {
                Ok(vec![TensorInfo::new(Shape::new(&[n, c, h, w]), inputs[0].dtype)])
            }
            _ => Err(Error::op(
                "SpatialTransformer",
                format!(
                    "data must be (N, C, H, W) with loc's N, got {} and loc {}",
                    inputs[0].shape, inputs[1].shape
                ),
            )),
        }
    }
    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let (n, hw) = self.grid.geometry(inputs[1].shape())?;
        let d = inputs[0].shape().dims().to_vec();
        let s = Sampling { n, c: d[1], hw: (d[2], d[3]), out: hw };
        with_real!(inputs[0].dtype(), "SpatialTransformer", R => {
            let (x, loc) = (load::<R>(&inputs[0])?, load::<R>(&inputs[1])?);
            let mut grid = vec![<R as mixnet_kernels::Element>::ZERO; n * 2 * hw.0 * hw.1];
            affine_grid(&loc, &mut grid, n, hw);
            store::<R>(&mut outputs[0], |y| {
                s.forward(&x, &grid, y);
                Ok(())
            })
        })
    }
    fn has_gradient(&self) -> bool {
        true
    }
    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let (data, loc) = (&ctx.inputs[0], &ctx.inputs[1]);
        let grid = self.grid_of(loc)?;
        let s = sampling("SpatialTransformer", data.shape(), grid.shape())?;
        let mut g = sampler_backward(&ctx.out_grads[0], data, &grid, s)?;
        let (n, hw) = self.grid.geometry(loc.shape())?;
        let dloc = run_kernel(
            "_backward_SpatialTransformer",
            &[g.remove(1)],
            vec![info(loc)],
            move |_, ins, outs| {
                with_real!(ins[0].dtype(), "SpatialTransformer", R => {
                    let dg = load::<R>(&ins[0])?;
                    store::<R>(&mut outs[0], |d| {
                        affine_grid_backward(&dg, d, n, hw);
                        Ok(())
                    })
                })
            },
        )?
        .remove(0);
        Ok(vec![Some(g.remove(0)), Some(dloc)])
    }
}

pub(crate) fn register(r: &mut Registry) {
    r.register_family(build_grid, &[("GridGenerator", &[])]);
    r.register_family(build_sampler, &[("BilinearSampler", &[])]);
    r.register_family(build_st, &[("SpatialTransformer", &[])]);
}
