//! Large kernel temporaries, recycled through one process-wide bin.
//!
//! glibc hands a freed block of a few megabytes back to the system, and the next call's
//! allocation of the same size faults every page in again, zeroed by the kernel. The LSTM
//! training step's RNN kernel took about 6,000 page faults per step that way. A
//! [`Buffer`] takes its memory from the bin and gives it back when dropped, so repeated
//! calls reuse the pages. Small buffers go to the allocator, which reuses those itself.

use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

use bytemuck::Pod;

/// Blocks below this size are left to the allocator.
const MIN_BYTES: usize = 256 << 10;
/// Most bytes the bin keeps; a block given back past it is freed.
const MAX_KEPT_BYTES: usize = 512 << 20;

/// Blocks not in use, as 8-byte words (the widest element alignment).
struct Bin {
    blocks: Vec<Vec<u64>>,
    bytes: usize,
}

static BIN: Mutex<Bin> = Mutex::new(Bin { blocks: Vec::new(), bytes: 0 });

fn bin() -> std::sync::MutexGuard<'static, Bin> {
    // A panic while holding the lock leaves the bin consistent (push and swap_remove).
    BIN.lock().unwrap_or_else(|e| e.into_inner())
}

/// The smallest kept block of at least `words` words and at most twice that, if any.
fn take_block(words: usize) -> Option<Vec<u64>> {
    let mut bin = bin();
    let (i, _) = bin
        .blocks
        .iter()
        .enumerate()
        .filter(|(_, b)| b.len() >= words && b.len() <= 2 * words)
        .min_by_key(|(_, b)| b.len())?;
    let block = bin.blocks.swap_remove(i);
    bin.bytes -= block.len() * 8;
    Some(block)
}

/// An owned run of `len` elements whose memory returns to the bin when dropped.
pub struct Buffer<T> {
    words: Vec<u64>,
    len: usize,
    _elements: PhantomData<T>,
}

impl<T: Pod> Buffer<T> {
    /// `len` zeros.
    ///
    /// # Panics
    /// If `len` elements exceed the address space (as `vec!` would).
    pub fn zeroed(len: usize) -> Self {
        let mut b = Self::take(len);
        b.fill(T::zeroed());
        b
    }

    /// `len` elements of unspecified (but initialized) values: for a buffer written whole
    /// before it is read, which then skips [`Buffer::zeroed`]'s pass over it.
    ///
    /// # Panics
    /// As [`Buffer::zeroed`].
    pub fn unset(len: usize) -> Self {
        Self::take(len)
    }

    /// A copy of `values`.
    pub fn from_slice(values: &[T]) -> Self {
        let mut b = Self::take(values.len());
        b.copy_from_slice(values);
        b
    }

    fn take(len: usize) -> Self {
        const { assert!(std::mem::align_of::<T>() <= 8 && std::mem::size_of::<T>() > 0) };
        // Unreachable from user input: callers size buffers from arrays already allocated
        // (the storage pool refuses sizes past memory with an `Err` first).
        let bytes = len.checked_mul(std::mem::size_of::<T>()).expect("scratch buffer size overflows usize");
        let words = bytes.div_ceil(8);
        let words = match (bytes >= MIN_BYTES).then(|| take_block(words)).flatten() {
            Some(block) => block,
            None => vec![0u64; words],
        };
        Buffer { words, len, _elements: PhantomData }
    }

    /// The elements as a `Vec` (a copy).
    pub fn to_vec(&self) -> Vec<T> {
        self.deref().to_vec()
    }
}

impl<T: Pod> Deref for Buffer<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // Whole words hold a whole number of elements: the size divides 8 (align ≤ 8).
        &bytemuck::cast_slice(&self.words)[..self.len]
    }
}

impl<T: Pod> DerefMut for Buffer<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut bytemuck::cast_slice_mut(&mut self.words)[..self.len]
    }
}

impl<T> Drop for Buffer<T> {
    fn drop(&mut self) {
        let bytes = self.words.len() * 8;
        if bytes < MIN_BYTES {
            return;
        }
        let mut bin = bin();
        if bin.bytes + bytes <= MAX_KEPT_BYTES {
            bin.bytes += bytes;
            bin.blocks.push(std::mem::take(&mut self.words));
        }
    }
}

impl<T: Pod + std::fmt::Debug> std::fmt::Debug for Buffer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_reused_and_rezeroed() {
        // No other test of this crate's binary uses the bin (the RNN kernel's tests are
        // in `mixnet`), so the block given back is the one taken next.
        let n = MIN_BYTES; // f32: 4x the minimum, so it goes through the bin
        let mut a = Buffer::<f32>::zeroed(n);
        a.fill(7.0);
        let at = a.as_ptr() as usize;
        drop(a);
        let b = Buffer::<f32>::zeroed(n - 3);
        assert_eq!(b.as_ptr() as usize, at, "the kept block is reused");
        assert!(b.iter().all(|&v| v == 0.0) && b.len() == n - 3);
        // Too small a request for that block (under half its size) gets a fresh one.
        drop(b);
        let small = Buffer::<f32>::unset(n / 3);
        assert_ne!(small.as_ptr() as usize, at);
        let c = Buffer::<f64>::from_slice(&[1.0, 2.0]);
        assert_eq!(&*c, &[1.0, 2.0]);
        assert!(Buffer::<u8>::zeroed(0).is_empty());
    }
}
