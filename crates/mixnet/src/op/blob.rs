//! What a kernel sees of an array inside an engine operation: a typed, contiguous window.

use crate::dtype::NativeType;
use crate::shape::Shape;
use crate::storage::Chunk;
use crate::{DType, Error, Result};

/// One input or output of a running operation. Only `invoke` builds blobs, inside the
/// engine operation that holds the right access to each chunk's var.
pub struct Blob<'a> {
    chunk: &'a Chunk,
    offset_bytes: usize,
    shape: &'a Shape,
    dtype: DType,
    writable: bool,
}

impl<'a> Blob<'a> {
    /// # Safety
    /// Must be created inside an engine operation that lists `chunk`'s var as a read
    /// (or as a write when `writable`), and no two blobs alive at once may give a writable
    /// view of overlapping bytes together with any other view of them.
    pub(crate) unsafe fn new(
        chunk: &'a Chunk,
        offset_bytes: usize,
        shape: &'a Shape,
        dtype: DType,
        writable: bool,
    ) -> Self {
        Blob { chunk, offset_bytes, shape, dtype, writable }
    }

    pub fn shape(&self) -> &'a Shape {
        self.shape
    }
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    pub fn numel(&self) -> usize {
        self.shape.numel()
    }

    fn range(&self) -> std::ops::Range<usize> {
        self.offset_bytes..self.offset_bytes + self.numel() * self.dtype.size()
    }

    fn check<T: NativeType>(&self) -> Result<()> {
        if T::views(self.dtype) {
            Ok(())
        } else {
            Err(Error::Invalid(format!(
                "kernel type mismatch: array of dtype {} viewed as {}",
                self.dtype,
                T::DTYPE
            )))
        }
    }

    /// The raw little-endian bytes, read-only (kernels that only move data).
    pub fn bytes(&self) -> Result<&[u8]> {
        // SAFETY: as in `slice`: read access is held; the range lies inside the chunk.
        Ok(unsafe { &self.chunk.bytes()[self.range()] })
    }

    /// The raw bytes, writable (outputs and mutated inputs only).
    pub fn bytes_mut(&mut self) -> Result<&mut [u8]> {
        if !self.writable {
            return Err(Error::Invalid("kernel tried to write a read-only input".into()));
        }
        let range = self.range();
        // SAFETY: as in `slice_mut`: write access is held and this view is unique.
        Ok(unsafe { &mut self.chunk.bytes_mut()[range] })
    }

    /// The elements, read-only.
    pub fn slice<T: NativeType>(&self) -> Result<&[T]> {
        self.check::<T>()?;
        // SAFETY: the constructor's contract gives this operation read access to the
        // chunk; the range lies inside it (checked when the NDArray view was made).
        let bytes = unsafe { &self.chunk.bytes()[self.range()] };
        bytemuck::try_cast_slice(bytes).map_err(|e| Error::Invalid(format!("misaligned array view: {e}")))
    }

    /// The elements, writable (outputs and mutated inputs only).
    pub fn slice_mut<T: NativeType>(&mut self) -> Result<&mut [T]> {
        self.check::<T>()?;
        if !self.writable {
            return Err(Error::Invalid("kernel tried to write a read-only input".into()));
        }
        let range = self.range();
        // SAFETY: writable blobs are made only for vars the operation writes, and invoke
        // refuses calls where a written array overlaps another argument; `&mut self` keeps
        // this view unique among views made through this blob.
        let bytes = unsafe { &mut self.chunk.bytes_mut()[range] };
        bytemuck::try_cast_slice_mut(bytes).map_err(|e| Error::Invalid(format!("misaligned array view: {e}")))
    }
}
