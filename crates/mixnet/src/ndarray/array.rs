//! The NDArray handle.

use std::sync::mpsc::sync_channel;
use std::sync::Arc;

use mixnet_engine::{OpProps, Var};

use crate::autograd::{Entry, GradReq, Node};
use crate::context::Context;
use crate::dtype::NativeType;
use crate::op::Blob;
use crate::shape::Shape;
use crate::storage::Chunk;
use crate::{engine_error, DType, Error, Result};

/// An n-dimensional array. Cloning copies the handle, not the data.
#[derive(Clone)]
pub struct NDArray {
    chunk: Arc<Chunk>,
    /// Offset of the first element, in elements of `dtype`.
    offset: usize,
    shape: Shape,
    dtype: DType,
    /// Place in the autograd tape.
    tape: Tape,
}

/// How an array relates to the autograd tape.
#[derive(Clone, Default)]
enum Tape {
    /// Look at the chunk: a marked variable, or nothing.
    #[default]
    Inherit,
    /// Output of a recorded operation.
    Recorded(Entry),
    /// Cut off from the tape (`detach`).
    Detached,
}

/// What autograd keeps on a variable's chunk: which view is the variable, and its node.
struct VariableMark {
    offset: usize,
    shape: Shape,
    node: Arc<Node>,
}

/// Lets calls take arrays owned or borrowed (`&[a, b]` or `&[&a, &b]`).
impl AsRef<NDArray> for NDArray {
    fn as_ref(&self) -> &NDArray {
        self
    }
}

impl NDArray {
    /// An array whose contents are unspecified, for an operator to fill.
    pub(crate) fn empty(shape: Shape, dtype: DType, ctx: Context) -> Result<NDArray> {
        let bytes = shape
            .iter()
            .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| Error::Invalid(format!("array of shape {shape} {dtype} is too large")))?;
        Ok(NDArray {
            chunk: Arc::new(Chunk::alloc(bytes, ctx)?),
            offset: 0,
            shape,
            dtype,
            tape: Tape::Inherit,
        })
    }

    /// An array holding a copy of `data` (little-endian element bytes) on `ctx`.
    pub fn from_bytes(data: &[u8], shape: impl Into<Shape>, dtype: DType, ctx: Context) -> Result<NDArray> {
        let shape = shape.into();
        if shape.numel().checked_mul(dtype.size()) != Some(data.len()) {
            return Err(Error::Invalid(format!(
                "{} bytes do not make an array of shape {shape} {dtype}",
                data.len()
            )));
        }
        Ok(NDArray {
            chunk: Arc::new(Chunk::from_bytes(data, ctx)?),
            offset: 0,
            shape,
            dtype,
            tape: Tape::Inherit,
        })
    }

    /// An array holding `data` with `shape` on `cpu(0)`.
    pub fn from_vec<T: NativeType>(data: Vec<T>, shape: impl Into<Shape>) -> Result<NDArray> {
        Self::from_slice(&data, shape)
    }

    /// An array holding a copy of `data` with `shape` on `cpu(0)`.
    pub fn from_slice<T: NativeType>(data: &[T], shape: impl Into<Shape>) -> Result<NDArray> {
        let shape = shape.into();
        if shape.numel() != data.len() {
            return Err(Error::Invalid(format!(
                "{} values do not fill an array of shape {shape} ({} elements)",
                data.len(),
                shape.numel()
            )));
        }
        Self::from_bytes(bytemuck::cast_slice(data), shape, T::DTYPE, Context::cpu(0))
    }

    /// A 0-d array holding one value.
    pub fn scalar<T: NativeType>(value: T) -> Result<NDArray> {
        Self::from_slice(&[value], Shape::scalar())
    }

    /// Zeros of `shape` and `dtype` on `ctx`.
    pub fn zeros(shape: impl Into<Shape>, dtype: DType, ctx: Context) -> Result<NDArray> {
        let shape = shape.into();
        let mut chunk = Chunk::alloc(shape.numel() * dtype.size(), ctx)?;
        chunk.bytes_exclusive().fill(0);
        Ok(NDArray { chunk: Arc::new(chunk), offset: 0, shape, dtype, tape: Tape::Inherit })
    }

    pub fn shape(&self) -> &Shape {
        &self.shape
    }
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    pub fn context(&self) -> Context {
        self.chunk.ctx()
    }
    /// Number of elements.
    pub fn size(&self) -> usize {
        self.shape.numel()
    }
    pub fn ndim(&self) -> usize {
        self.shape.ndim()
    }

    /// The engine variable guarding this array's memory (shared with its views).
    pub fn var(&self) -> &Var {
        self.chunk.var()
    }

    /// Completed writes to this array's memory; moves whenever the data is mutated.
    pub fn version(&self) -> u64 {
        self.var().version()
    }

    /// Writes pushed to this array's memory so far (run or not): moves at the moment an
    /// in-place operation is issued.
    pub fn write_count(&self) -> u64 {
        self.var().pushed_writes()
    }

    /// Whether two arrays share memory.
    pub fn shares_memory_with(&self, other: &NDArray) -> bool {
        Arc::ptr_eq(&self.chunk, &other.chunk)
    }

    fn byte_range(&self) -> std::ops::Range<usize> {
        let start = self.offset * self.dtype.size();
        start..start + self.size() * self.dtype.size()
    }

    /// Whether the element ranges of two arrays overlap in memory.
    /// Whether both handles view the same elements of the same memory, as the same shape
    /// and dtype.
    pub(crate) fn same_view(&self, other: &NDArray) -> bool {
        Arc::ptr_eq(&self.chunk, &other.chunk)
            && self.offset == other.offset
            && self.shape == other.shape
            && self.dtype == other.dtype
    }

    pub(crate) fn overlaps(&self, other: &NDArray) -> bool {
        let (a, b) = (self.byte_range(), other.byte_range());
        self.shares_memory_with(other) && a.start < b.end && b.start < a.end && !a.is_empty() && !b.is_empty()
    }

    /// A kernel's view of this array.
    ///
    /// # Safety
    /// Only inside an engine operation pushed with this array's var as a read (or a
    /// write when `writable`); see [`Blob::new`].
    pub(crate) unsafe fn blob(&self, writable: bool) -> Blob<'_> {
        Blob::new(&self.chunk, self.offset * self.dtype.size(), &self.shape, self.dtype, writable)
    }

    /// Block until pending writes to this array finish; `Err` if one of them failed.
    pub fn wait_to_read(&self) -> Result<()> {
        mixnet_engine::get().wait_for_var(self.var()).map_err(engine_error)
    }

    /// Run `f` on the array's bytes inside an engine read, on the calling thread's behalf.
    fn read_bytes<R: Send + 'static>(&self, f: impl FnOnce(&[u8]) -> R + Send + 'static) -> Result<R> {
        let (tx, rx) = sync_channel(1);
        let chunk = self.chunk.clone();
        let range = self.byte_range();
        let read = move || {
            // SAFETY: pushed with the chunk's var as a read, so no write runs meanwhile.
            let bytes = unsafe { &chunk.bytes()[range] };
            let _ = tx.send(f(bytes));
            Ok::<(), Error>(())
        };
        mixnet_engine::get().push_fn(
            read,
            std::slice::from_ref(self.var()),
            &[],
            OpProps::new("asnumpy").light(true),
        );
        match rx.recv() {
            Ok(r) => Ok(r),
            // The read was skipped: a write it waited on failed. Surface that failure.
            Err(_) => Err(self
                .wait_to_read()
                .err()
                .unwrap_or_else(|| Error::Invalid("array read was dropped".into()))),
        }
    }

    /// The elements as `T` (which must match the dtype; `u8` also reads `bool`).
    pub fn to_vec<T: NativeType>(&self) -> Result<Vec<T>> {
        if !T::views(self.dtype) {
            return Err(Error::Invalid(format!(
                "to_vec::<{}>() on an array of dtype {}; use to_f64_vec() or astype",
                T::DTYPE,
                self.dtype
            )));
        }
        self.read_bytes(|b| bytemuck::pod_collect_to_vec::<u8, T>(b))
    }

    /// The elements converted to f64, whatever the dtype (waits for pending writes).
    pub fn to_f64_vec(&self) -> Result<Vec<f64>> {
        let dtype = self.dtype;
        self.read_bytes(move |b| {
            crate::with_dtype!(dtype, T => bytemuck::pod_collect_to_vec::<u8, T>(b).into_iter().map(mixnet_kernels::Element::to_f64).collect())
        })
    }

    /// The single value of a one-element array (MXNet's `asscalar`).
    pub fn as_scalar<T: NativeType>(&self) -> Result<T> {
        if self.size() != 1 {
            return Err(Error::Invalid(format!(
                "as_scalar on an array of shape {} (needs exactly 1 element)",
                self.shape
            )));
        }
        Ok(self.to_vec::<T>()?[0])
    }

    /// The little-endian element bytes (waits for pending writes).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        self.read_bytes(|b| b.to_vec())
    }

    /// Rows `begin..end` along axis 0, sharing memory (MXNet's `NDArray.slice`, `x[a:b]`).
    pub fn slice(&self, begin: usize, end: usize) -> Result<NDArray> {
        let rows = *self.shape.first().ok_or_else(|| Error::Invalid("slice of a 0-d array".into()))?;
        if begin > end || end > rows {
            return Err(Error::Invalid(format!(
                "slice [{begin}, {end}) out of range for shape {}",
                self.shape
            )));
        }
        if self.records_views() {
            let (b, e) = (begin.to_string(), end.to_string());
            return self.recorded("slice_axis", &[("axis", "0"), ("begin", &b), ("end", &e)]);
        }
        let row = self.shape[1..].iter().product::<usize>();
        let mut dims = self.shape.to_vec();
        dims[0] = end - begin;
        Ok(NDArray {
            offset: self.offset + begin * row,
            shape: dims.into(),
            tape: Tape::Inherit,
            ..self.clone()
        })
    }

    /// Row `i` along axis 0 with that axis dropped, sharing memory (MXNet's `x[i]`).
    pub fn at(&self, i: usize) -> Result<NDArray> {
        let v = self.slice(i, i + 1)?;
        if self.records_views() {
            return v.recorded("Reshape", &[("shape", &tuple(&self.shape[1..]))]);
        }
        Ok(NDArray { shape: self.shape[1..].into(), ..v })
    }

    /// The same memory with another shape of equal size; one dimension may be -1.
    pub fn reshape(&self, shape: &[i64]) -> Result<NDArray> {
        let known: i64 = shape.iter().filter(|&&d| d >= 0).product();
        let infer = shape.iter().filter(|&&d| d == -1).count();
        let bad = || Error::Invalid(format!("cannot reshape array of shape {} into {shape:?}", self.shape));
        if infer > 1 || shape.iter().any(|&d| d < -1) {
            return Err(bad());
        }
        let dims: Vec<usize> = shape
            .iter()
            .map(|&d| if d == -1 { if known == 0 { 0 } else { self.size() as i64 / known } } else { d } as usize)
            .collect();
        if dims.iter().product::<usize>() != self.size() {
            return Err(bad());
        }
        let recorded = self.records_views().then(|| tuple(&dims));
        let view = NDArray { shape: dims.into(), tape: Tape::Inherit, ..self.clone() };
        match recorded {
            // MXNet's `ReshapeWithRecord`: still a view of the same memory; only the tape
            // sees a `Reshape` call, so gradients flow back through it (a copy here cost
            // the language model two passes over its 700×10000 logits per step).
            Some(shape) => {
                let op = crate::imperative::create("Reshape", &[("shape", &shape)])?;
                let mut out = crate::autograd::record_op(&op, &[self], smallvec::smallvec![view]);
                Ok(out.swap_remove(0))
            }
            None => Ok(view),
        }
    }

    /// While autograd records and this array is on the tape, views must be recorded
    /// operations so gradients flow through them (MXNet's `ReshapeWithRecord`,
    /// `SliceWithRecord`); otherwise they share memory.
    fn records_views(&self) -> bool {
        crate::autograd::is_recording() && self.ag_entry().is_some()
    }

    fn recorded(&self, op: &str, attrs: &[(&str, &str)]) -> Result<NDArray> {
        Ok(crate::imperative::invoke(op, std::slice::from_ref(self), attrs)?.swap_remove(0))
    }

    /// An array of `shape` filled with `value` (converted to `dtype`).
    pub fn full(shape: impl Into<Shape>, value: f64, dtype: DType, ctx: Context) -> Result<NDArray> {
        let shape = shape.into();
        let n = shape.numel();
        crate::with_dtype!(dtype, T => {
            let v = vec![<T as mixnet_kernels::Element>::from_f64(value); n];
            let v: Vec<T> = if dtype == DType::Bool { v.into_iter().map(|x| if x != <T as mixnet_kernels::Element>::ZERO { <T as mixnet_kernels::Element>::ONE } else { x }).collect() } else { v };
            NDArray::from_bytes(bytemuck::cast_slice(&v), shape, dtype, ctx)
        })
    }

    /// Copy `src`'s values into this array's memory (same shape and dtype), through the
    /// engine like any write.
    pub fn assign(&self, src: &NDArray) -> Result<()> {
        let op: Arc<dyn crate::op::Operator> = Arc::new(crate::operator::copy::Assign);
        crate::imperative::invoke_operator(&op, &[self.clone(), src.clone()]).map(drop)
    }

    /// `self ← src`, taking `src`'s memory instead of copying it when that is invisible:
    /// `src` is the last handle on its memory and both arrays span whole buffers of the
    /// same size, dtype and device. Then the two buffers are exchanged inside one engine
    /// operation that writes both, and `self`'s old buffer leaves with `src` (back to the
    /// pool); otherwise this is [`NDArray::assign`]. Used where a fresh result replaces a
    /// value (optimizer updates, written gradients): one pass over memory instead of two.
    pub(crate) fn assign_from(&self, src: NDArray) -> Result<()> {
        let whole = |x: &NDArray| x.offset == 0 && x.size() * x.dtype.size() == x.chunk.len();
        let movable = Arc::strong_count(&src.chunk) == 1
            && !self.shares_memory_with(&src)
            && self.dtype == src.dtype
            && self.shape == src.shape
            && self.context() == src.context()
            && whole(self)
            && whole(&src);
        if !movable {
            return self.assign(&src);
        }
        let (dst, from) = (self.chunk.clone(), src.chunk.clone());
        drop(src);
        let writes = [dst.var().clone(), from.var().clone()];
        let swap = move || {
            // SAFETY: this runs as the engine operation writing both chunks' vars, and no
            // view of either is alive: `from` has no other handle, and views of `dst` exist
            // only inside engine operations, which this one excludes.
            unsafe { dst.swap_buffers(&from) };
            Ok::<(), Error>(())
        };
        mixnet_engine::get().push_fn(swap, &[], &writes, OpProps::new("_copyto").light(true));
        Ok(())
    }

    /// Mark this array as a variable with a zeroed gradient buffer (`grad_req` write).
    pub fn attach_grad(&self) -> Result<()> {
        self.attach_grad_with(GradReq::Write)
    }

    /// Mark this array as a variable with the given `grad_req` (MXNet's `attach_grad`).
    pub fn attach_grad_with(&self, req: GradReq) -> Result<()> {
        crate::autograd::attach_grad(self, req)
    }

    /// The gradient buffer of a variable (None if `attach_grad` was not called).
    pub fn grad(&self) -> Option<NDArray> {
        match self.ag_entry()?.node.as_ref() {
            Node::Variable { grad, .. } => Some(grad.clone()),
            Node::Op(_) => None,
        }
    }

    /// The same array cut off from the autograd tape (MXNet's `detach`).
    pub fn detach(&self) -> NDArray {
        self.without_entry()
    }

    pub(crate) fn set_variable(&self, node: Arc<Node>) {
        let mark = VariableMark { offset: self.offset, shape: self.shape.clone(), node };
        *self.chunk.ag_slot.lock() = Some(Arc::new(mark));
    }

    /// This array's place on the tape, if any.
    pub(crate) fn ag_entry(&self) -> Option<Entry> {
        match &self.tape {
            Tape::Recorded(e) => Some(e.clone()),
            Tape::Detached => None,
            Tape::Inherit => {
                let slot = self.chunk.ag_slot.lock();
                let mark = slot.as_ref()?.clone().downcast::<VariableMark>().ok()?;
                (mark.offset == self.offset && mark.shape == self.shape)
                    .then(|| Entry { node: mark.node.clone(), index: 0 })
            }
        }
    }

    pub(crate) fn without_entry(&self) -> NDArray {
        NDArray { tape: Tape::Detached, ..self.clone() }
    }

    pub(crate) fn with_entry(self, entry: Entry) -> NDArray {
        NDArray { tape: Tape::Recorded(entry), ..self }
    }
}

/// MXNet's tuple attribute spelling, `(2, 3)` / `(4,)` / `()`.
fn tuple(dims: &[usize]) -> String {
    match dims {
        [one] => format!("({one},)"),
        _ => format!("({})", dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    }
}

#[cfg(test)]
mod assign_from_tests {
    use super::*;

    fn vals(x: &NDArray) -> Vec<f64> {
        x.to_f64_vec().unwrap()
    }

    #[test]
    fn moves_a_last_handle_and_copies_a_shared_one() {
        let dst = NDArray::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], [2, 2]).unwrap();
        let view = dst.slice(1, 2).unwrap();
        let alias = dst.clone();
        // A fresh result with no other handle: its buffer is taken.
        let fresh = (&dst * 10.0).unwrap();
        dst.assign_from(fresh).unwrap();
        assert_eq!(vals(&dst), [10.0, 20.0, 30.0, 40.0]);
        assert_eq!(vals(&alias), [10.0, 20.0, 30.0, 40.0]);
        assert_eq!(vals(&view), [30.0, 40.0]);
        // A source somebody else still holds is copied, and keeps its values.
        let kept = NDArray::from_vec(vec![5.0f32, 6.0, 7.0, 8.0], [2, 2]).unwrap();
        dst.assign_from(kept.clone()).unwrap();
        assert_eq!(vals(&dst), [5.0, 6.0, 7.0, 8.0]);
        assert_eq!(vals(&kept), [5.0, 6.0, 7.0, 8.0]);
        // Writing `dst` afterwards leaves `kept` alone (no buffer was shared).
        dst.assign_from((&dst + 1.0).unwrap()).unwrap();
        assert_eq!(vals(&kept), [5.0, 6.0, 7.0, 8.0]);
        assert_eq!(vals(&dst), [6.0, 7.0, 8.0, 9.0]);
        // A view source (not a whole buffer) is copied.
        let src = NDArray::from_vec(vec![0.5f32; 8], [4, 2]).unwrap();
        dst.assign_from(src.slice(0, 2).unwrap()).unwrap();
        assert_eq!(vals(&dst), [0.5; 4]);
    }
}
