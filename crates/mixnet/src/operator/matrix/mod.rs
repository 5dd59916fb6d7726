//! Shape and layout operators, MXNet's "matrix ops" (`src/operator/tensor/matrix_op*`,
//! plus `Concat`, `SliceChannel`, `SwapAxis` and `Pad`, which MXNet keeps elsewhere).
//!
//! They only move elements, so kernels run on unsigned words of the element's size
//! ([`with_word!`], [`words`]) and one instance serves every dtype of that size. Every op
//! returns a new array, as MXNet's do; none of them aliases its input.

mod join;
mod layout;
mod pad;
mod reshape;

use crate::op::{Attrs, Blob, Registry};
use crate::{with_dtype, DType, Error, Result};

/// Run `$body` with `$W` bound to the unsigned integer as wide as one element of `$dtype`.
macro_rules! with_word {
    ($dtype:expr, $W:ident => $body:expr) => {
        match $dtype.size() {
            1 => {
                type $W = u8;
                $body
            }
            2 => {
                type $W = u16;
                $body
            }
            4 => {
                type $W = u32;
                $body
            }
            _ => {
                type $W = u64;
                $body
            }
        }
    };
}
use with_word;

/// A blob's elements as words of their size (see [`with_word!`]).
fn words<'a, W: bytemuck::Pod>(b: &'a Blob<'_>) -> Result<&'a [W]> {
    with_dtype!(b.dtype(), T => bytemuck::try_cast_slice::<T, W>(b.slice::<T>()?)).map_err(|e| {
        Error::Invalid(format!("{} array viewed as {}-byte words: {e}", b.dtype(), size_of::<W>()))
    })
}

/// A writable blob's elements as words of their size.
fn words_mut<'a, W: bytemuck::Pod>(b: &'a mut Blob<'_>) -> Result<&'a mut [W]> {
    let dtype = b.dtype();
    with_dtype!(dtype, T => bytemuck::try_cast_slice_mut::<T, W>(b.slice_mut::<T>()?))
        .map_err(|e| Error::Invalid(format!("{dtype} array viewed as {}-byte words: {e}", size_of::<W>())))
}

/// Copy input 0 to output 0 unchanged (the kernel of every op that only renames the shape).
fn copy_blob(input: &Blob<'_>, out: &mut Blob<'_>) -> Result<()> {
    with_word!(out.dtype(), W => mixnet_kernels::shape::copy(words::<W>(input)?, words_mut::<W>(out)?));
    Ok(())
}

/// `axis` counted from the end when negative, checked against `ndim` (MXNet's `CheckAxis`).
fn norm_axis(op: &str, axis: i64, ndim: usize) -> Result<usize> {
    let n = ndim as i64;
    let a = if axis < 0 { axis + n } else { axis };
    if (0..n).contains(&a) {
        Ok(a as usize)
    } else {
        Err(Error::op(op, format!("axis {axis} is out of bounds for array of dimension {ndim}")))
    }
}

/// An attribute MXNet declares without a default.
fn required<T>(attrs: &Attrs<'_>, key: &str, value: Option<T>) -> Result<T> {
    value.ok_or_else(|| Error::op(attrs.op(), format!("required attribute {key} is missing")))
}

/// A count attribute (`num_args`, `num_outputs`) that must be at least 1.
fn count(attrs: &mut Attrs<'_>, key: &str) -> Result<usize> {
    let v = attrs.opt_int(key)?;
    match required(attrs, key, v)? {
        n if n >= 1 => Ok(n as usize),
        n => Err(Error::op(attrs.op(), format!("attribute {key}={n} must be at least 1"))),
    }
}

/// Every input must have the same dtype (Concat, stack).
fn same_dtype(op: &str, inputs: &[crate::op::TensorInfo]) -> Result<DType> {
    let dtype = inputs[0].dtype;
    match inputs.iter().position(|i| i.dtype != dtype) {
        None => Ok(dtype),
        Some(i) => Err(Error::op(
            op,
            format!("non-uniform data type: expected {dtype}, got {} for input {i}", inputs[i].dtype),
        )),
    }
}

pub(crate) fn register(r: &mut Registry) {
    reshape::register(r);
    layout::register(r);
    join::register(r);
    pad::register(r);
}
