//! Creation operators: constants (`_zeros`, `_ones`, `_full`, `zeros_like`, ...), ranges
//! (`_arange`, `_linspace`, `_contrib_arange_like`), `_eye`, and the shape queries
//! `shape_array`/`size_array`. They read no input values, only attributes (and an input's
//! shape or dtype), so each one is a shape rule plus a fill by position. The arithmetic
//! follows MXNet's kernels type by type, because `arange` values are visible in models.

use std::sync::Arc;

use mixnet_kernels::fill::{fill, fill_with};
use mixnet_kernels::Element;

use crate::op::{Attrs, Blob, GradContext, OpContext, Operator, Registry, TensorInfo};
use crate::shape::Shape;
use crate::{with_dtype, with_float_dtype, DType, Error, NativeType, Result};

const NAMES: &[(&str, &[&str])] = &[
    ("_zeros", &[]),
    ("_zeros_without_dtype", &[]),
    ("_ones", &[]),
    ("_full", &["_npi_full"]),
    ("_arange", &[]),
    ("_linspace", &["_npi_linspace"]),
    ("_eye", &[]),
    ("zeros_like", &["_sparse_zeros_like"]),
    ("ones_like", &[]),
    ("_contrib_arange_like", &["_npx_arange_like"]),
    ("shape_array", &["_npx_shape_array"]),
    ("size_array", &[]),
];

/// MXNet's `range_fwd`: element `i` is `start + (i / repeat) * step`.
#[derive(Clone, Copy, Debug)]
struct Range {
    start: f64,
    step: f64,
    repeat: usize,
}

#[derive(Clone, Debug)]
enum Kind {
    /// `_zeros`, `_ones`, `_full`, `_zeros_without_dtype`.
    Full {
        shape: Shape,
        value: f64,
    },
    /// `zeros_like`, `ones_like`: the input's shape and dtype.
    FullLike {
        value: f64,
    },
    Arange {
        range: Range,
        len: usize,
    },
    /// Shaped like the input, or like one of its axes.
    ArangeLike {
        range: Range,
        axis: Option<i64>,
    },
    Linspace {
        start: f64,
        step: f64,
        num: usize,
    },
    Eye {
        rows: usize,
        cols: usize,
        k: i64,
    },
    ShapeArray,
    SizeArray,
}

/// A configured creation operator.
pub struct InitOp {
    name: &'static str,
    kind: Kind,
    /// Output dtype of the zero-input ops (the others take the input's, or int64).
    dtype: DType,
}

/// dtype sets of MXNet's parameter enums.
fn all_types(d: DType) -> bool {
    d != DType::Bool
}
fn all_types_with_bool(_: DType) -> bool {
    true
}
fn eye_types(d: DType) -> bool {
    !matches!(d, DType::Bool | DType::BF16)
}

fn dtype_attr(attrs: &mut Attrs<'_>, allowed: fn(DType) -> bool) -> Result<DType> {
    let d = attrs.dtype("dtype")?.unwrap_or(DType::F32);
    if allowed(d) {
        Ok(d)
    } else {
        Err(Error::op(attrs.op(), format!("dtype {d} is not supported by this operator")))
    }
}

fn required<T>(op: &str, key: &str, v: Option<T>) -> Result<T> {
    v.ok_or_else(|| Error::op(op, format!("attribute {key} is required")))
}

/// The `shape` attribute of a legacy creation op. MXNet 1.x (outside numpy mode) reads an
/// empty shape or a 0 dimension as "unknown", so such shapes fail there and here.
fn shape_attr(attrs: &mut Attrs<'_>) -> Result<Shape> {
    let op = attrs.op();
    let dims = required(op, "shape", attrs.tuple("shape")?)?;
    if dims.is_empty() || dims.iter().any(|&d| d <= 0) {
        return Err(Error::op(
            op,
            format!(
                "shape {dims:?} is not a known shape: legacy MXNet operators read an empty shape or \
                 a dimension <= 0 as unknown"
            ),
        ));
    }
    Ok(dims.iter().map(|&d| d as usize).collect())
}

fn range_attrs(attrs: &mut Attrs<'_>, start: f64) -> Result<Range> {
    let step = attrs.float("step", 1.0)?;
    let repeat = attrs.int("repeat", 1)?;
    if repeat <= 0 {
        return Err(Error::op(attrs.op(), format!("repeat must be > 0, got {repeat}")));
    }
    Ok(Range { start, step, repeat: repeat as usize })
}

/// MXNet's `RangeParamParser` + `RangeShape`: a lone `start` is the stop; the length is
/// `ceil((stop - start) / step) * repeat`.
fn arange(attrs: &mut Attrs<'_>) -> Result<Kind> {
    let op = attrs.op();
    let start = attrs.opt_float("start")?;
    let mut range = range_attrs(attrs, required(op, "start", start)?)?;
    let stop = attrs.opt_float("stop")?;
    let infer_range = attrs.bool("infer_range", false)?;
    let stop = match stop {
        Some(stop) => stop,
        None if infer_range => {
            return Err(Error::op(
                op,
                "infer_range without stop takes its length from a consumer in a graph; an eager call \
                 needs stop",
            ))
        }
        None => std::mem::replace(&mut range.start, 0.0),
    };
    let Range { start, step, repeat } = range;
    let ordered = if step > 0.0 { start < stop } else { start > stop };
    if step == 0.0 || !ordered {
        return Err(Error::op(op, format!("invalid range (start, stop, step) = ({start}, {stop}, {step})")));
    }
    let len = ((stop - start) / step).ceil() * repeat as f64;
    if len.is_nan() || len >= (1u64 << 53) as f64 {
        return Err(Error::op(op, format!("range ({start}, {stop}, {step}) x {repeat} is too long")));
    }
    Ok(Kind::Arange { range, len: len as usize })
}

/// MXNet's `LinspaceParam`/`LinspaceCompute`: values `start + step * i` computed in f64.
fn linspace(attrs: &mut Attrs<'_>) -> Result<Kind> {
    let op = attrs.op();
    let start = required(op, "start", attrs.opt_float("start")?)?;
    let stop = required(op, "stop", attrs.opt_float("stop")?)?;
    let num = required(op, "num", attrs.opt_int("num")?)?;
    let endpoint = attrs.bool("endpoint", true)?;
    if num < 0 {
        return Err(Error::op(op, format!("num must be non-negative, got {num}")));
    }
    let intervals = if endpoint { num - 1 } else { num };
    let step = if intervals > 0 { (stop - start) / intervals as f64 } else { 0.0 };
    Ok(Kind::Linspace { start, step, num: num as usize })
}

fn eye(attrs: &mut Attrs<'_>) -> Result<Kind> {
    let op = attrs.op();
    let n = required(op, "N", attrs.opt_int("N")?)?;
    let m = attrs.int("M", 0)?;
    let k = attrs.int("k", 0)?;
    if n < 0 {
        return Err(Error::op(op, format!("N must be non-negative, got {n}")));
    }
    // As MXNet: M <= 0 means "same as N".
    let cols = if m > 0 { m } else { n };
    Ok(Kind::Eye { rows: n as usize, cols: cols as usize, k })
}

fn build(name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    let mut dtype = DType::F32;
    let kind = match name {
        "_zeros" | "_ones" | "_full" => {
            let shape = shape_attr(attrs)?;
            dtype = dtype_attr(attrs, all_types_with_bool)?;
            let value = match name {
                "_zeros" => 0.0,
                "_ones" => 1.0,
                _ => required(name, "value", attrs.opt_float("value")?)?,
            };
            Kind::Full { shape, value }
        }
        "_zeros_without_dtype" => {
            let shape = shape_attr(attrs)?;
            // An integer type code; -1 (unset) is left for graph inference in MXNet and
            // is float32 in an eager call.
            if attrs.get("dtype").map(str::trim) != Some("-1") {
                dtype = dtype_attr(attrs, all_types_with_bool)?;
            }
            Kind::Full { shape, value: 0.0 }
        }
        "_arange" => {
            dtype = dtype_attr(attrs, all_types)?;
            arange(attrs)?
        }
        "_linspace" => {
            dtype = dtype_attr(attrs, all_types)?;
            linspace(attrs)?
        }
        "_eye" => {
            dtype = dtype_attr(attrs, eye_types)?;
            eye(attrs)?
        }
        "zeros_like" => Kind::FullLike { value: 0.0 },
        "ones_like" => Kind::FullLike { value: 1.0 },
        "_contrib_arange_like" => {
            let start = attrs.float("start", 0.0)?;
            Kind::ArangeLike { range: range_attrs(attrs, start)?, axis: attrs.opt_int("axis")? }
        }
        "shape_array" => Kind::ShapeArray,
        "size_array" => Kind::SizeArray,
        _ => return Err(Error::op(name, "not a creation operator")),
    };
    Ok(Arc::new(InitOp { name, kind, dtype }))
}

impl Operator for InitOp {
    fn name(&self) -> &'static str {
        self.name
    }

    fn num_inputs(&self) -> usize {
        match self.kind {
            Kind::Full { .. } | Kind::Arange { .. } | Kind::Linspace { .. } | Kind::Eye { .. } => 0,
            _ => 1,
        }
    }

    /// The ops reading an input (`zeros_like`, `ones_like`, `_contrib_arange_like`,
    /// `shape_array`, `size_array`) have MXNet's zero gradient; the others have no input
    /// to differentiate and, as in MXNet, no gradient.
    fn has_gradient(&self) -> bool {
        self.num_inputs() > 0
    }

    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<crate::NDArray>>> {
        if !self.has_gradient() {
            return Err(Error::op(self.name, "has no inputs and no gradient"));
        }
        Ok(vec![Some(super::grad::zeros_like(&ctx.inputs[0])?)])
    }

    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        let dtype = self.dtype;
        let out = match &self.kind {
            Kind::Full { shape, .. } => TensorInfo::new(shape.clone(), dtype),
            Kind::Arange { len, .. } => TensorInfo::new([*len], dtype),
            Kind::Linspace { num, .. } => TensorInfo::new([*num], dtype),
            Kind::Eye { rows, cols, .. } => TensorInfo::new([*rows, *cols], dtype),
            Kind::FullLike { .. } => inputs[0].clone(),
            Kind::ShapeArray => TensorInfo::new([inputs[0].shape.ndim()], DType::I64),
            Kind::SizeArray => TensorInfo::new([1], DType::I64),
            Kind::ArangeLike { axis, .. } => {
                let x = &inputs[0];
                if x.dtype == DType::Bool {
                    return Err(Error::op(self.name, "bool input is not supported"));
                }
                match axis {
                    None => x.clone(),
                    Some(a) => {
                        let nd = x.shape.ndim() as i64;
                        let real = if *a < 0 { a + nd } else { *a };
                        if !(0..nd).contains(&real) {
                            return Err(Error::op(
                                self.name,
                                format!("axis {a} is out of range for shape {}", x.shape),
                            ));
                        }
                        TensorInfo::new([x.shape[real as usize]], x.dtype)
                    }
                }
            }
        };
        Ok(vec![out])
    }

    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let out = &mut outputs[0];
        // Nothing to write; and a typed view of an empty chunk fails today (its dangling
        // base pointer is only byte-aligned).
        if out.numel() == 0 {
            return Ok(());
        }
        match &self.kind {
            Kind::Full { value, .. } | Kind::FullLike { value } => {
                // A bool output holds value != 0, as C++'s static_cast<bool>.
                let v = if out.dtype() == DType::Bool { f64::from(u8::from(*value != 0.0)) } else { *value };
                with_dtype!(out.dtype(), T => fill(out.slice_mut::<T>()?, T::from_f64(v)));
            }
            Kind::Arange { range, .. } | Kind::ArangeLike { range, .. } => {
                range_fill(self.name, out, *range)?
            }
            Kind::Linspace { start, step, .. } => {
                let (start, step) = (*start, *step);
                with_dtype!(out.dtype(), T => fill_with(out.slice_mut::<T>()?, |i| T::from_f64(start + step * i as f64)));
            }
            Kind::Eye { cols, k, .. } => {
                with_dtype!(out.dtype(), T => eye_fill(out.slice_mut::<T>()?, *cols, *k))
            }
            Kind::ShapeArray => {
                let dims = inputs[0].shape().dims().iter().map(|&d| d as i64);
                out.slice_mut::<i64>()?.iter_mut().zip(dims).for_each(|(o, d)| *o = d);
            }
            Kind::SizeArray => {
                let n = inputs[0].numel() as i64;
                fill(out.slice_mut::<i64>()?, n);
            }
        }
        Ok(())
    }
}

/// MXNet's `EyeFillImpl`: zeros, then ones on diagonal `k` of a row-major (rows x cols).
fn eye_fill<T: Element>(out: &mut [T], cols: usize, k: i64) {
    fill(out, T::ZERO);
    if cols == 0 {
        return;
    }
    let (rows, cols_i) = ((out.len() / cols) as i64, cols as i64);
    let nnz = if k > 0 { (cols_i - k).max(0).min(rows) } else { (rows + k).max(0).min(cols_i) };
    let first_col = k.max(0);
    for i in 0..nnz {
        let (r, c) = (i + first_col - k, i + first_col);
        out[(r * cols_i + c) as usize] = T::ONE;
    }
}

/// Integer outputs of `range_fwd`: C++ adds in int64 and truncates to the output type.
trait WrapInt: NativeType {
    fn wrap(v: i64) -> Self;
    fn widen(self) -> i64;
}
macro_rules! wrap_int {
    ($($t:ty),*) => {$(
        impl WrapInt for $t {
            fn wrap(v: i64) -> Self { v as $t }
            fn widen(self) -> i64 { self as i64 }
        }
    )*};
}
wrap_int!(u8, i8, i32, i64);

fn int_range<T: WrapInt>(out: &mut [T], start: T, step: T, repeat: usize) {
    let (start, step) = (start.widen(), step.widen());
    fill_with(out, |i| T::wrap(start.wrapping_add(((i / repeat) as i64).wrapping_mul(step))));
}

/// `start + (i / repeat) * step` in the arithmetic MXNet's `RangeCompute` uses for the
/// output type. It casts `start` and `step` through int64 first for every type that
/// `std::is_signed` rejects: uint8, and also float16 and bfloat16 (mshadow class types),
/// whose ranges therefore lose fractional starts and steps. Float types then compute in
/// their own precision (half types round each operation to half, as mshadow's half_t).
fn range_fill(op: &str, out: &mut Blob<'_>, r: Range) -> Result<()> {
    let Range { start, step, repeat } = r;
    let trunc = |v: f64| (v as i64) as f64;
    match out.dtype() {
        DType::F64 => fill_with(out.slice_mut::<f64>()?, |i| start + (i / repeat) as f64 * step),
        DType::U8 => int_range(out.slice_mut::<u8>()?, u8::wrap(start as i64), u8::wrap(step as i64), repeat),
        DType::I8 => int_range(out.slice_mut::<i8>()?, i8::from_f64(start), i8::from_f64(step), repeat),
        DType::I32 => int_range(out.slice_mut::<i32>()?, i32::from_f64(start), i32::from_f64(step), repeat),
        DType::I64 => int_range(out.slice_mut::<i64>()?, i64::from_f64(start), i64::from_f64(step), repeat),
        DType::Bool => return Err(Error::op(op, "bool output is not supported")),
        d => {
            let (start, step) = if d == DType::F32 { (start, step) } else { (trunc(start), trunc(step)) };
            with_float_dtype!(d, op, T => {
                let (s, st) = (T::from_f64(start), T::from_f64(step));
                fill_with(out.slice_mut::<T>()?, |i| s.add(T::from_f32((i / repeat) as f32 * st.to_f32())));
            })
        }
    }
    Ok(())
}

pub(crate) fn register(r: &mut Registry) {
    r.register_family(build, NAMES);
}
