//! Ops that keep the elements in order and only give them a new shape: `Reshape` (with
//! MXNet's special codes), `reshape_like`, `Flatten`, `expand_dims`, `squeeze`. Their
//! whole work is shape inference; the kernel is a copy.

use std::sync::Arc;

use super::{copy_blob, norm_axis, required};
use crate::op::{Attrs, Blob, GradContext, OpContext, OpDef, Operator, Registry, TensorInfo};
use crate::operator::grad::{reshape_like, zeros_like};
use crate::shape::Shape;
use crate::{Error, NDArray, Result};

enum Kind {
    /// `shape` with special codes 0, -1, -2, -3, -4, matched right to left when `reverse`.
    Reshape {
        spec: Vec<i64>,
        reverse: bool,
    },
    /// The deprecated `target_shape` (one 0 is inferred) and `keep_highest`.
    TargetShape {
        target: Vec<i64>,
        keep_highest: bool,
    },
    /// lhs dimensions `lhs` replaced by rhs dimensions `rhs` (begin, end; `None` = default).
    Like {
        lhs: (Option<i64>, Option<i64>),
        rhs: (Option<i64>, Option<i64>),
    },
    Flatten,
    ExpandDims(i64),
    /// Axes to drop; `None` drops every size-1 axis.
    Squeeze(Option<Vec<i64>>),
}

struct ReshapeOp {
    name: &'static str,
    kind: Kind,
}

fn build(name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    let kind = match name {
        "Reshape" => {
            let spec = attrs.tuple("shape")?.unwrap_or_default();
            let reverse = attrs.bool("reverse", false)?;
            let target = attrs.tuple("target_shape")?.unwrap_or_default();
            let keep_highest = attrs.bool("keep_highest", false)?;
            if !spec.is_empty() {
                Kind::Reshape { spec, reverse }
            } else if !target.is_empty() {
                Kind::TargetShape { target, keep_highest }
            } else {
                return Err(Error::op(name, "required attribute shape is missing (or empty)"));
            }
        }
        "reshape_like" => Kind::Like {
            lhs: (attrs.opt_int("lhs_begin")?, attrs.opt_int("lhs_end")?),
            rhs: (attrs.opt_int("rhs_begin")?, attrs.opt_int("rhs_end")?),
        },
        "Flatten" => Kind::Flatten,
        "expand_dims" => {
            let axis = attrs.opt_int("axis")?;
            Kind::ExpandDims(required(attrs, "axis", axis)?)
        }
        "squeeze" => Kind::Squeeze(attrs.tuple("axis")?),
        _ => return Err(Error::op(name, "not a reshape operator")),
    };
    Ok(Arc::new(ReshapeOp { name, kind }))
}

/// Product of user-given dimensions; `None` on overflow.
fn product(dims: &[i64]) -> Option<i64> {
    dims.iter().try_fold(1i64, |acc, &d| acc.checked_mul(d))
}

/// MXNet's `InferReshapeShape`: apply the special codes of `spec` to `input`.
fn reshape_codes(op: &str, spec: &[i64], input: &[usize], reverse: bool) -> Result<Vec<usize>> {
    let bad = |why: String| {
        Error::op(
            op,
            format!(
                "cannot reshape {} with shape={spec:?}{}: {why}",
                Shape::new(input),
                if reverse { ", reverse=True" } else { "" }
            ),
        )
    };
    let mut src: Vec<i64> = input.iter().map(|&d| d as i64).collect();
    let mut codes = spec.to_vec();
    if reverse {
        src.reverse();
        codes.reverse();
    }
    let mut out: Vec<i64> = Vec::with_capacity(codes.len() + src.len());
    let mut next = 0; // next input dimension
    let mut inferred = None;
    let mut i = 0;
    while i < codes.len() {
        match codes[i] {
            0 => {
                let d = *src.get(next).ok_or_else(|| {
                    bad(format!("0 copies input dimension {next}, but the input has {}", src.len()))
                })?;
                out.push(d);
                next += 1;
            }
            -1 => {
                if inferred.is_some() {
                    return Err(bad("only one dimension can be -1 (inferred)".into()));
                }
                inferred = Some(out.len());
                out.push(1);
                next += 1;
            }
            -2 => {
                out.extend(src.iter().skip(next));
                next = next.max(src.len());
            }
            -3 => {
                if next + 2 > src.len() {
                    return Err(bad(format!("-3 merges input dimensions {next} and {}", next + 1)));
                }
                out.push(src[next] * src[next + 1]);
                next += 2;
            }
            -4 => {
                if i + 2 >= codes.len() {
                    return Err(bad("-4 must be followed by the two dimensions to split into".into()));
                }
                let d0 = *src
                    .get(next)
                    .ok_or_else(|| bad(format!("-4 splits input dimension {next}, which does not exist")))?;
                next += 1;
                let (mut d1, mut d2) = (codes[i + 1], codes[i + 2]);
                i += 2;
                if d1 == -1 && d2 == -1 {
                    return Err(bad("split dimensions cannot both be -1".into()));
                }
                if d1 == -1 && d2 > 0 {
                    d1 = d0 / d2;
                }
                if d2 == -1 && d1 > 0 {
                    d2 = d0 / d1;
                }
                if d1 < 0 || d2 < 0 || d1.checked_mul(d2) != Some(d0) {
                    return Err(bad(format!("split dimensions {d1}, {d2} do not make input dimension {d0}")));
                }
                out.push(d1);
                out.push(d2);
            }
            d if d > 0 => {
                out.push(d);
                next += 1;
            }
            d => return Err(bad(format!("{d} is not a dimension or a special code (0, -1, -2, -3, -4)"))),
        }
        i += 1;
    }
    let total: i64 = src.iter().product();
    let too_large = || bad("the result is too large".into());
    if let Some(k) = inferred {
        let known = product(&out).ok_or_else(too_large)?;
        if known == 0 {
            return Err(bad("-1 cannot be inferred next to a zero-size dimension".into()));
        }
        out[k] = total / known;
    }
    if reverse {
        out.reverse();
    }
    let dims: Vec<usize> = out.iter().map(|&d| d as usize).collect();
    if product(&out).ok_or_else(too_large)? != total {
        return Err(bad(format!("the result {} has a different size", Shape::new(&dims))));
    }
    Ok(dims)
}

/// The deprecated `target_shape`: a single 0 is inferred; `keep_highest` keeps dimension 0.
fn target_shape(op: &str, target: &[i64], keep_highest: bool, input: &[usize]) -> Result<Vec<usize>> {
    let bad = |why: &str| {
        Error::op(op, format!("cannot reshape {} with target_shape={target:?}: {why}", Shape::new(input)))
    };
    let mut out = target.to_vec();
    let start = usize::from(keep_highest);
    if keep_highest {
        out[0] = *input.first().ok_or_else(|| bad("keep_highest needs an input dimension"))? as i64;
    }
    if out.iter().any(|&d| d < 0) {
        return Err(bad("dimensions must be non-negative"));
    }
    let zeros: Vec<usize> = (start..out.len()).filter(|&i| out[i] == 0).collect();
    let total = input.iter().product::<usize>() as i64;
    match zeros[..] {
        [] => {}
        [k] => {
            out[k] = 1;
            out[k] = total / product(&out).ok_or_else(|| bad("the result is too large"))?.max(1);
        }
        _ => return Err(bad("only one dimension can be 0 (inferred)")),
    }
    if product(&out) != Some(total) {
        return Err(bad("the result has a different size"));
    }
    Ok(out.iter().map(|&d| d as usize).collect())
}

/// MXNet's `ReshapeLikeRangeCanonicalize`.
fn like_range(
    op: &str,
    side: &str,
    ndim: usize,
    (begin, end): (Option<i64>, Option<i64>),
) -> Result<(usize, usize)> {
    let n = ndim as i64;
    let b = begin.map_or(0, |b| if b < 0 { b + n } else { b });
    let e = end.map_or(n, |e| if e < 0 { e + n } else { e });
    let show = |v: Option<i64>| v.map_or("None".to_string(), |v| v.to_string());
    if e > n || b >= e || b < 0 {
        return Err(Error::op(
            op,
            format!(
                "invalid range {side}_begin={}, {side}_end={} for {side} of dimension {ndim}",
                show(begin),
                show(end)
            ),
        ));
    }
    Ok((b as usize, e as usize))
}

impl ReshapeOp {
    fn out_shape(&self, inputs: &[TensorInfo]) -> Result<Shape> {
        let op = self.name;
        let shape = &inputs[0].shape;
        Ok(match &self.kind {
            Kind::Reshape { spec, reverse } => reshape_codes(op, spec, shape, *reverse)?.into(),
            Kind::TargetShape { target, keep_highest } => {
                target_shape(op, target, *keep_highest, shape)?.into()
            }
            Kind::Like { lhs, rhs } => {
                let rshape = &inputs[1].shape;
                let (lb, le) = like_range(op, "lhs", shape.ndim(), *lhs)?;
                let (rb, re) = like_range(op, "rhs", rshape.ndim(), *rhs)?;
                let out: Shape =
                    shape[..lb].iter().chain(&rshape[rb..re]).chain(&shape[le..]).copied().collect();
                if out.numel() != shape.numel() {
                    return Err(Error::op(
                        op,
                        format!("cannot reshape lhs with shape {shape} to new shape {out}: different size"),
                    ));
                }
                out
            }
            Kind::Flatten => match shape.split_first() {
                Some((&d0, rest)) => Shape::new(&[d0, rest.iter().product()]),
                None => return Err(Error::op(op, "cannot flatten a 0-d array")),
            },
            Kind::ExpandDims(axis) => {
                let n = shape.ndim() as i64;
                let a = if *axis < 0 { axis + n + 1 } else { *axis };
                if !(0..=n).contains(&a) {
                    return Err(Error::op(
                        op,
                        format!("axis {axis} is out of range [{}, {n}] for shape {shape}", -n - 1),
                    ));
                }
                let mut dims = shape.to_vec();
                dims.insert(a as usize, 1);
                dims.into()
            }
            Kind::Squeeze(axes) => {
                let mut drop = vec![false; shape.ndim()];
                match axes {
                    None => drop.iter_mut().zip(shape.iter()).for_each(|(x, &d)| *x = d == 1),
                    Some(axes) => {
                        for &a in axes {
                            let k = norm_axis(op, a, shape.ndim())?;
                            if shape[k] != 1 {
                                return Err(Error::op(
                                    op,
                                    format!("cannot squeeze axis {a} of shape {shape}: its size is not 1"),
                                ));
                            }
                            if drop[k] {
                                return Err(Error::op(op, format!("duplicate value {a} in axis {axes:?}")));
                            }
                            drop[k] = true;
                        }
                    }
                }
                let out: Shape = shape.iter().zip(&drop).filter(|(_, &x)| !x).map(|(&d, _)| d).collect();
                // MXNet keeps at least one dimension: squeeze of (1, 1) is (1,).
                if out.ndim() == 0 {
                    Shape::new(&[1])
                } else {
                    out
                }
            }
        })
    }
}

impl Operator for ReshapeOp {
    fn name(&self) -> &'static str {
        self.name
    }

    fn num_inputs(&self) -> usize {
        match self.kind {
            Kind::Like { .. } => 2,
            _ => 1,
        }
    }

    fn input_names(&self) -> Vec<String> {
        match self.kind {
            Kind::Like { .. } => vec!["lhs".into(), "rhs".into()],
            _ => vec!["data".into()],
        }
    }

    fn inplace(&self) -> &[(usize, usize)] {
        match self.kind {
            Kind::Squeeze(_) => &[],
            _ => &[(0, 0)],
        }
    }

    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        Ok(vec![TensorInfo { shape: self.out_shape(inputs)?, dtype: inputs[0].dtype }])
    }

    fn has_gradient(&self) -> bool {
        true
    }

    /// The gradient takes the input's shape back; `reshape_like`'s rhs gets zeros.
    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let x = &ctx.inputs[0];
        let mut grads = vec![Some(reshape_like(&ctx.out_grads[0], x)?)];
        if let Some(rhs) = ctx.inputs.get(1) {
            grads.push(Some(zeros_like(rhs)?));
        }
        Ok(grads)
    }

    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        copy_blob(&inputs[0], &mut outputs[0])
    }
}

pub(super) fn register(r: &mut Registry) {
    for (name, aliases) in [
        ("Reshape", &["reshape"][..]),
        ("reshape_like", &[]),
        ("Flatten", &["flatten"]),
        ("expand_dims", &[]),
        ("squeeze", &[]),
    ] {
        r.register(OpDef { name, aliases, build });
    }
}
