//! Loss output layers whose backward ignores the head gradient, as MXNet's do:
//! `SoftmaxOutput` (alias `Softmax`), `LinearRegressionOutput`, `LogisticRegressionOutput`,
//! `MAERegressionOutput`, `SVMOutput`, `MakeLoss`; and the losses `softmax_cross_entropy`
//! and `smooth_l1`, whose gradients do use it.
//!
//! The forward of an output layer is its prediction (softmax, identity, sigmoid); its
//! gradient is the loss's derivative with respect to the data, from the label, scaled by
//! `grad_scale` and the layer's normalization (SoftmaxOutput multiplies by the head only
//! with `out_grad=True`). Labels get no gradient.

use std::sync::Arc;

use mixnet_kernels::nn::{act_forward, softmax, Act, SoftmaxKind};
use mixnet_kernels::Element;

use super::kernel::{check_float, info, load, run_kernel, store, with_real, Compute};
use crate::op::{Attrs, Blob, GradContext, OpContext, Operator, Registry, TensorInfo};
use crate::{Error, NDArray, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Norm {
    Null,
    Batch,
    Valid,
}

fn norm(attrs: &mut Attrs<'_>) -> Result<Norm> {
    Ok(match attrs.choice("normalization", &["null", "batch", "valid"], "null")? {
        "batch" => Norm::Batch,
        "valid" => Norm::Valid,
        _ => Norm::Null,
    })
}

#[derive(Clone, Copy, Debug)]
struct SoftmaxOutputParam {
    grad_scale: f32,
    ignore_label: f32,
    multi_output: bool,
    use_ignore: bool,
    preserve_shape: bool,
    normalization: Norm,
    out_grad: bool,
    smooth_alpha: f32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Regression {
    Linear,
    Logistic,
    Mae,
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    SoftmaxOutput(SoftmaxOutputParam),
    Regression(Regression, f32),
    Svm { margin: f32, reg: f32, linear: bool },
    MakeLoss { grad_scale: f32, normalization: Norm, valid_thresh: f32 },
    SoftmaxCrossEntropy,
    SmoothL1(f64),
}

/// A configured loss operator.
pub struct LossOutput {
    name: &'static str,
    kind: Kind,
}

fn build(name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    let kind = match name {
        "SoftmaxOutput" => {
            let smooth_alpha = attrs.float("smooth_alpha", 0.0)? as f32;
            if !(0.0..=1.0).contains(&smooth_alpha) {
                return Err(Error::op(name, format!("smooth_alpha={smooth_alpha} must lie in [0, 1]")));
            }
            Kind::SoftmaxOutput(SoftmaxOutputParam {
                grad_scale: attrs.float("grad_scale", 1.0)? as f32,
                ignore_label: attrs.float("ignore_label", -1.0)? as f32,
                multi_output: attrs.bool("multi_output", false)?,
                use_ignore: attrs.bool("use_ignore", false)?,
                preserve_shape: attrs.bool("preserve_shape", false)?,
                normalization: norm(attrs)?,
                out_grad: attrs.bool("out_grad", false)?,
                smooth_alpha,
            })
        }
        "LinearRegressionOutput" => {
            Kind::Regression(Regression::Linear, attrs.float("grad_scale", 1.0)? as f32)
        }
        "LogisticRegressionOutput" => {
            Kind::Regression(Regression::Logistic, attrs.float("grad_scale", 1.0)? as f32)
        }
        "MAERegressionOutput" => Kind::Regression(Regression::Mae, attrs.float("grad_scale", 1.0)? as f32),
        "SVMOutput" => Kind::Svm {
            margin: attrs.float("margin", 1.0)? as f32,
            reg: attrs.float("regularization_coefficient", 1.0)? as f32,
            linear: attrs.bool("use_linear", false)?,
        },
        "MakeLoss" => Kind::MakeLoss {
            grad_scale: attrs.float("grad_scale", 1.0)? as f32,
            normalization: norm(attrs)?,
            valid_thresh: attrs.float("valid_thresh", 0.0)? as f32,
        },
        "softmax_cross_entropy" => Kind::SoftmaxCrossEntropy,
        "smooth_l1" => {
            attrs.get("is_int");
            Kind::SmoothL1(attrs.float("scalar", 1.0)?)
        }
        _ => return Err(Error::op(name, "not a loss operator")),
    };
    Ok(Arc::new(LossOutput { name, kind }))
}

/// SoftmaxOutput's softmax view of the data: `(outer, classes, inner)`.
fn softmax_dims(p: &SoftmaxOutputParam, shape: &[usize]) -> (usize, usize, usize) {
    let total: usize = shape.iter().product();
    let n = shape.first().copied().unwrap_or(1);
    if p.multi_output {
        let k = shape.get(1).copied().unwrap_or(1);
        (n, k, total.checked_div(n * k).unwrap_or(0))
    } else if p.preserve_shape {
        let last = shape.last().copied().unwrap_or(1);
        (total.checked_div(last).unwrap_or(0), last, 1)
    } else {
        (n, total.checked_div(n).unwrap_or(0), 1)
    }
}

fn shape_err(op: &str, label: &TensorInfo, data: &TensorInfo, want: &str) -> Error {
    Error::op(
        op,
        format!("label shape {} does not fit data shape {} (expected {want})", label.shape, data.shape),
    )
}

/// The label as an integer class, as C++'s `static_cast<int>`.
#[inline]
fn class<R: Compute>(v: R) -> i64 {
    v.to_f64() as i64
}

impl LossOutput {
    fn check_label(&self, data: &TensorInfo, label: &TensorInfo) -> Result<()> {
        let name = self.name;
        if label.dtype != data.dtype {
            return Err(Error::op(
                name,
                format!("label dtype {} differs from data dtype {}", label.dtype, data.dtype),
            ));
        }
        let (d, l) = (data.shape.dims(), label.shape.dims());
        if d.is_empty() {
            return Err(Error::op(name, "data must have at least one dimension"));
        }
        match self.kind {
            Kind::SoftmaxOutput(p) => {
                if d == l {
                    return Ok(());
                }
                if p.multi_output {
                    let rest = d.iter().skip(2).product::<usize>();
                    let l1 = [d[0], rest];
                    let mut l2 = vec![d[0]];
                    l2.extend_from_slice(d.get(2..).unwrap_or(&[]));
                    let mut l3 = d.to_vec();
                    if l3.len() > 1 {
                        l3[1] = 1;
                    }
                    if l != l1 && l != l2.as_slice() && l != l3.as_slice() {
                        return Err(shape_err(name, label, data, &format!("{l1:?} or {l2:?}")));
                    }
                } else if l != &d[..d.len() - 1] {
                    return Err(shape_err(name, label, data, &format!("{:?}", &d[..d.len() - 1])));
                }
            }
            Kind::Regression(..) => {
                if l.first() != d.first() || label.shape.numel() != data.shape.numel() {
                    return Err(shape_err(name, label, data, "the same first dimension and size"));
                }
            }
            Kind::Svm { .. } => {
                if label.shape.numel() != d[0] {
                    return Err(shape_err(name, label, data, &format!("{} labels", d[0])));
                }
            }
            Kind::SoftmaxCrossEntropy => {
                if d.len() != 2 || l.len() != 1 || l[0] != d[0] {
                    return Err(Error::op(
                        name,
                        format!(
                            "needs 2-D data and 1-D label of the same length, got {} and {}",
                            data.shape, label.shape
                        ),
                    ));
                }
            }
            Kind::MakeLoss { .. } | Kind::SmoothL1(_) => {}
        }
        Ok(())
    }
}

impl Operator for LossOutput {
    fn name(&self) -> &'static str {
        self.name
    }
    fn num_inputs(&self) -> usize {
        match self.kind {
            Kind::MakeLoss { .. } | Kind::SmoothL1(_) => 1,
            _ => 2,
        }
    }
    fn input_names(&self) -> Vec<String> {
        match self.num_inputs() {
            1 => vec!["data".into()],
            _ => vec!["data".into(), "label".into()],
        }
    }
    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        let data = &inputs[0];
        check_float(self.name, "data", data)?;
        if inputs.len() > 1 {
            self.check_label(data, &inputs[1])?;
        }
        let shape = match self.kind {
            Kind::SoftmaxCrossEntropy => crate::Shape::new(&[1]),
            _ => data.shape.clone(),
        };
        Ok(vec![TensorInfo { shape, dtype: data.dtype }])
    }
    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let shape = inputs[0].shape().dims().to_vec();
        let kind = self.kind;
        with_real!(inputs[0].dtype(), self.name, R => {
            let x = load::<R>(&inputs[0])?;
            match kind {
                Kind::SoftmaxOutput(p) => store::<R>(&mut outputs[0], |o| {
                    softmax(&x, o, softmax_dims(&p, &shape), SoftmaxKind::Softmax, false, R::ONE, None);
                    Ok(())
                }),
                Kind::Regression(Regression::Logistic, _) => store::<R>(&mut outputs[0], |o| {
                    act_forward(Act::Sigmoid, &x, o);
                    Ok(())
                }),
                Kind::Regression(..) | Kind::Svm { .. } | Kind::MakeLoss { .. } => {
                    super::kernel::write::<R>(&mut outputs[0], &x)
                }
                Kind::SmoothL1(sigma) => store::<R>(&mut outputs[0], |o| {
                    let s = R::from_f64(sigma);
                    let (bsq, ibsq) = (s * s, R::ONE / (s * s));
                    let half = R::from_f64(0.5);
                    for (o, &a) in o.iter_mut().zip(x.iter()) {
                        *o = if a > ibsq {
                            a - half * ibsq
                        } else if a < -ibsq {
                            -a - half * ibsq
                        } else {
                            half * a * a * bsq
                        };
                    }
                    Ok(())
                }),
                Kind::SoftmaxCrossEntropy => {
                    let label = load::<R>(&inputs[1])?;
                    let (n, k) = (shape[0], shape[1]);
                    let mut p = vec![R::ZERO; x.len()];
                    softmax(&x, &mut p, (n, k, 1), SoftmaxKind::Softmax, false, R::ONE, None);
                    let floor = R::from_f64(1e-8f32 as f64);
                    let mut total = R::ZERO;
                    for (r, &l) in label.iter().enumerate() {
                        // mshadow's mat_choose_row_element: the label indexes the row.
                        let c = class(l);
                        let v = if c >= 0 && (c as usize) < k { p[r * k + c as usize] } else { R::ZERO };
                        let v = if v > floor { v } else { floor };
                        total -= v.ln();
                    }
                    super::kernel::write::<R>(&mut outputs[0], &[total])
                }
            }
        })
    }
    fn has_gradient(&self) -> bool {
        true
    }
    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let (x, y, dy) = (&ctx.inputs[0], &ctx.outputs[0], &ctx.out_grads[0]);
        let kind = self.kind;
        let name = self.name;
        let bwd = match kind {
            Kind::SoftmaxOutput(_) => "_backward_SoftmaxOutput",
            Kind::Regression(Regression::Linear, _) => "_backward_linear_reg_out",
            Kind::Regression(Regression::Logistic, _) => "_backward_logistic_reg_out",
            Kind::Regression(Regression::Mae, _) => "_backward_mae_reg_out",
            Kind::Svm { .. } => "_backward_SVMOutput",
            Kind::MakeLoss { .. } => "_backward_MakeLoss",
            Kind::SoftmaxCrossEntropy => "_backward_softmax_cross_entropy",
            Kind::SmoothL1(_) => "_backward_smooth_l1",
        };
        // Inputs of the backward kernel: data, output, head, and the label if any.
        let mut ins = vec![x.clone(), y.clone(), dy.clone()];
        if ctx.inputs.len() > 1 {
            ins.push(ctx.inputs[1].clone());
        }
        let shape = x.shape().dims().to_vec();
        let label_shape = ctx.inputs.get(1).map(|l| l.shape().dims().to_vec()).unwrap_or_default();
        let mut r = run_kernel(bwd, &ins, vec![info(x)], move |_, ins, outs| {
            with_real!(ins[0].dtype(), name, R => {
                let (x, y, dy) = (load::<R>(&ins[0])?, load::<R>(&ins[1])?, load::<R>(&ins[2])?);
                let label = if ins.len() > 3 { Some(load::<R>(&ins[3])?) } else { None };
                store::<R>(&mut outs[0], |dx| {
                    backward_kernel::<R>(kind, &shape, &label_shape, &x, &y, &dy, label.as_deref(), dx);
                    Ok(())
                })
            })
        })?;
        let mut grads = vec![Some(r.remove(0))];
        if ctx.inputs.len() > 1 {
            grads.push(None);
        }
        Ok(grads)
    }
}

#[allow(clippy::too_many_arguments)]
fn backward_kernel<R: Compute>(
    kind: Kind,
    shape: &[usize],
    label_shape: &[usize],
    x: &[R],
    y: &[R],
    dy: &[R],
    label: Option<&[R]>,
    dx: &mut [R],
) {
    let f = |v: f64| R::from_f64(v);
    match kind {
        Kind::SoftmaxOutput(p) => {
            softmax_output_grad(&p, shape, label_shape, y, dy, label.unwrap_or(&[]), dx)
        }
        Kind::Regression(reg, grad_scale) => {
            let label = label.unwrap_or(&[]);
            let rows = label_shape.first().copied().unwrap_or(1).max(1);
            let num_output = (label.len() / rows) as f32;
            let scale = f((grad_scale / num_output) as f64);
            for i in 0..dx.len() {
                let d = match reg {
                    Regression::Mae => {
                        if y[i] - label[i] > R::ZERO {
                            R::ONE
                        } else {
                            -R::ONE
                        }
                    }
                    _ => y[i] - label[i],
                };
                dx[i] = d * scale;
            }
        }
        Kind::Svm { margin, reg, linear } => {
            let label = label.unwrap_or(&[]);
            let rows = shape[0];
            let cols = dx.len().checked_div(rows).unwrap_or(0);
            let (m, c) = (f(margin as f64), f(reg as f64));
            for r in 0..rows {
                let k = class(label[r]);
                for col in 0..cols {
                    let s = y[r * cols + col];
                    let is_k = col as i64 == k;
                    dx[r * cols + col] = match (linear, is_k) {
                        (true, true) => -(if m > s { R::ONE } else { R::ZERO }) * c,
                        (true, false) => (if m > -s { R::ONE } else { R::ZERO }) * c,
                        (false, true) => (if m > s { f(2.0) * (m - s) } else { R::ZERO }) * -c,
                        (false, false) => (if m > -s { f(-2.0) * (m + s) } else { R::ZERO }) * -c,
                    };
                }
            }
        }
        Kind::MakeLoss { grad_scale, normalization, valid_thresh } => {
            let v = match normalization {
                Norm::Null => grad_scale as f64,
                Norm::Batch => (grad_scale / shape[0] as f32) as f64,
                Norm::Valid => {
                    let t = f(valid_thresh as f64);
                    let count = x.iter().filter(|&&v| v > t).count().max(1);
                    (grad_scale / count as f32) as f64
                }
            };
            dx.fill(f(v));
        }
        Kind::SoftmaxCrossEntropy => {
            let label = label.unwrap_or(&[]);
            let (n, k) = (shape[0], shape[1]);
            softmax(x, dx, (n, k, 1), SoftmaxKind::Softmax, false, R::ONE, None);
            let scale = dy[0];
            for r in 0..n {
                let c = class(label[r]);
                for col in 0..k {
                    let v = dx[r * k + col];
                    dx[r * k + col] = scale * if col as i64 == c { v - R::ONE } else { v };
                }
            }
        }
        Kind::SmoothL1(sigma) => {
            let s = f(sigma);
            let (bsq, ibsq) = (s * s, R::ONE / (s * s));
            for i in 0..dx.len() {
                let a = x[i];
                let d = if a > ibsq {
                    R::ONE
                } else if a < -ibsq {
                    -R::ONE
                } else {
                    bsq * a
                };
                dx[i] = dy[i] * d;
            }
        }
    }
}

/// MXNet's SoftmaxOutput backward (`softmax_output-inl.h` with mshadow's `SoftmaxGrad`).
fn softmax_output_grad<R: Compute>(
    p: &SoftmaxOutputParam,
    shape: &[usize],
    label_shape: &[usize],
    y: &[R],
    dy: &[R],
    label: &[R],
    dx: &mut [R],
) {
    let f = |v: f64| R::from_f64(v);
    let ignore = p.ignore_label as i64;
    if shape == label_shape {
        let s = f(p.grad_scale as f64);
        for i in 0..dx.len() {
            dx[i] = (y[i] - label[i]) * s;
            if p.out_grad {
                dx[i] = dx[i] * dy[i];
            }
        }
        return;
    }
    let (n, k, inner) = softmax_dims(p, shape);
    // Smoothing applies to the single-output form only, as in MXNet.
    let alpha = if p.multi_output { 0.0 } else { p.smooth_alpha };
    let smooth = f((alpha / (k as f32 - 1.0)) as f64);
    for o in 0..n {
        for j in 0..inner {
            let c = class(label[o * inner + j]);
            let ignored = p.use_ignore && c == ignore;
            for x in 0..k {
                let at = (o * k + x) * inner + j;
                dx[at] = if ignored {
                    R::ZERO
                } else if x as i64 == c {
                    y[at] - R::ONE + f(alpha as f64)
                } else if alpha != 0.0 {
                    y[at] - smooth
                } else {
                    y[at]
                };
            }
        }
    }
    let count = label.len();
    let valid = || label.iter().filter(|&&l| class(l) != ignore).count().max(1);
    let scale = if p.multi_output {
        let valid_cnt = match p.normalization {
            Norm::Batch => n,
            Norm::Valid => valid(),
            Norm::Null => 1,
        };
        let spatial = if p.normalization == Norm::Valid { 1.0 } else { inner as f32 };
        p.grad_scale / spatial / valid_cnt as f32
    } else {
        let valid_cnt = match p.normalization {
            Norm::Batch => count,
            Norm::Valid => valid(),
            Norm::Null => 1,
        };
        p.grad_scale / valid_cnt as f32
    };
    let s = f(scale as f64);
    for i in 0..dx.len() {
        dx[i] = dx[i] * s;
        if p.out_grad {
            dx[i] = dx[i] * dy[i];
        }
    }
}

pub(crate) fn register(r: &mut Registry) {
    r.register_family(
        build,
        &[
            ("SoftmaxOutput", &["Softmax"]),
            ("LinearRegressionOutput", &[]),
            ("LogisticRegressionOutput", &[]),
            ("MAERegressionOutput", &[]),
            ("SVMOutput", &[]),
            ("MakeLoss", &[]),
            ("softmax_cross_entropy", &[]),
            ("smooth_l1", &[]),
        ],
    );
}
