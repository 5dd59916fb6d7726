//! Array memory: 64-byte aligned buffers from a per-context pool, and the chunk that ties
//! a buffer to the engine variable guarding it.
//!
//! Freed buffers go back to the pool by size class and are handed out again, so a
//! training loop that allocates the same shapes every step stops touching the system
//! allocator (and the page-fault cost of fresh memory) after its first step.

use std::alloc::{alloc, alloc_zeroed, dealloc, Layout};
use std::any::Any;
use std::cell::UnsafeCell;
use std::collections::HashMap;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::OnceLock;

use mixnet_engine::Var;
use parking_lot::Mutex;

use crate::context::Context;
use crate::{Error, Result};

/// Alignment of every buffer: a cache line, and enough for any SIMD load.
const ALIGN: usize = 64;

/// The alignment unit; its dangling pointer is a valid, aligned base for empty views.
#[repr(C, align(64))]
struct AlignUnit([u8; ALIGN]);

/// An owned, zero-initialized (when fresh), 64-byte aligned byte buffer.
pub(crate) struct AlignedBuf {
    ptr: NonNull<u8>,
    capacity: usize,
}

// SAFETY: AlignedBuf owns its allocation exclusively (like Vec<u8>); moving it between
// threads or sharing `&AlignedBuf` is as safe as for Vec<u8>.
unsafe impl Send for AlignedBuf {}
// SAFETY: see Send; `&AlignedBuf` only gives out shared views (mutation goes through Chunk,
// whose accessors carry the engine's exclusivity contract).
unsafe impl Sync for AlignedBuf {}

/// Buffers of at least this size are aligned to 2 MiB and asked to live in transparent huge
/// pages: memory-bound kernels over several MiB spend much of their time on TLB misses with
/// 4 KiB pages (1M-element `a + b`: see NOTES).
const HUGE_MIN: usize = 4 << 20;
const HUGE_ALIGN: usize = 2 << 20;

/// The alignment of a buffer of `capacity` bytes (a function of the size, so `Drop` finds
/// the layout again).
fn align_for(capacity: usize) -> usize {
    if capacity >= HUGE_MIN {
        HUGE_ALIGN
    } else {
        ALIGN
    }
}

impl AlignedBuf {
    fn zeroed(capacity: usize) -> Result<Self> {
        if capacity == 0 {
            // A dangling, aligned pointer is a valid base for empty slices.
            return Ok(AlignedBuf { ptr: NonNull::<AlignUnit>::dangling().cast(), capacity: 0 });
        }
        let layout = Layout::from_size_align(capacity, align_for(capacity))
            .map_err(|_| Error::Invalid(format!("cannot allocate {capacity} bytes: size too large")))?;
        let huge = capacity >= HUGE_MIN;
        // SAFETY: layout has non-zero size (checked above).
        let ptr = unsafe {
            if huge {
                alloc(layout)
            } else {
                alloc_zeroed(layout)
            }
        };
        let ptr = NonNull::new(ptr)
            .ok_or_else(|| Error::Invalid(format!("out of memory allocating {capacity} bytes")))?;
        if huge {
            advise_huge_pages(ptr.as_ptr(), capacity);
            // SAFETY: `ptr` is a fresh allocation of `capacity` bytes; zeroing it after the
            // advice lets the first touch fault in huge pages.
            unsafe { std::ptr::write_bytes(ptr.as_ptr(), 0, capacity) };
        }
        Ok(AlignedBuf { ptr, capacity })
    }
}

/// Ask the kernel to back `[ptr, ptr + len)` with transparent huge pages. Advisory: where
/// THP is off or not Linux nothing changes.
#[cfg(target_os = "linux")]
fn advise_huge_pages(ptr: *mut u8, len: usize) {
    // SAFETY: madvise only changes the paging policy of a range this process owns (a live
    // allocation); it does not read or write the memory. Its result is advisory.
    unsafe {
        libc::madvise(ptr.cast(), len, libc::MADV_HUGEPAGE);
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_ptr: *mut u8, _len: usize) {}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        if self.capacity > 0 {
            // SAFETY: ptr came from alloc_zeroed with exactly this layout (size/align checked
            // when allocating).
            unsafe {
                dealloc(
                    self.ptr.as_ptr(),
                    Layout::from_size_align_unchecked(self.capacity, align_for(self.capacity)),
                )
            }
        }
    }
}

/// Memory statistics of one context's pool, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StorageStats {
    /// Held by live arrays (size-class rounded).
    pub bytes_in_use: usize,
    /// Freed by arrays and kept for reuse.
    pub bytes_pooled: usize,
    /// Highest `bytes_in_use` seen.
    pub peak_bytes_in_use: usize,
}

/// A per-context pool of freed buffers keyed by size class.
pub(crate) struct StoragePool {
    /// Free lists and statistics under one lock: the hot path takes it once per alloc/free.
    free: Mutex<FreeLists>,
}

/// Freed buffers by size class: power-of-two classes in a small array (the hot path of
/// small ops: no hashing), the 64 KiB-step classes above 1 MiB in a map.
#[derive(Default)]
struct FreeLists {
    small: [Vec<AlignedBuf>; 21],
    big: HashMap<usize, Vec<AlignedBuf>>,
    stats: StorageStats,
}

impl FreeLists {
    fn list(&mut self, class: usize) -> &mut Vec<AlignedBuf> {
        if class <= 1 << 20 {
            // class is a power of two in 64..=1 MiB: log2 in 6..=20.
            &mut self.small[class.trailing_zeros() as usize]
        } else {
            self.big.entry(class).or_default()
        }
    }

    fn drain(&mut self) -> Vec<AlignedBuf> {
        let mut all: Vec<AlignedBuf> = self.small.iter_mut().flat_map(std::mem::take).collect();
        all.extend(self.big.drain().flat_map(|(_, v)| v));
        all
    }
}

/// Round a request up to its size class: powers of two up to 1 MiB, then 64 KiB steps,
/// so big buffers waste little and small ones are shared widely.
fn size_class(bytes: usize) -> usize {
    const BIG: usize = 1 << 20;
    const STEP: usize = 1 << 16;
    if bytes == 0 {
        0
    } else if bytes <= BIG {
        bytes.next_power_of_two().max(ALIGN)
    } else {
        bytes.div_ceil(STEP).saturating_mul(STEP)
    }
}

impl StoragePool {
    fn new() -> Self {
        StoragePool { free: Mutex::new(FreeLists::default()) }
    }

    fn alloc(&self, bytes: usize) -> Result<AlignedBuf> {
        let class = size_class(bytes);
        let mut lists = self.free.lock();
        let buf = match if class == 0 { None } else { lists.list(class).pop() } {
            Some(b) => {
                lists.stats.bytes_pooled -= class;
                b
            }
            None => {
                // Zeroing fresh memory may fault in pages: do it outside the lock.
                drop(lists);
                let b = AlignedBuf::zeroed(class)?;
                lists = self.free.lock();
                b
            }
        };
        let st = &mut lists.stats;
        st.bytes_in_use += class;
        st.peak_bytes_in_use = st.peak_bytes_in_use.max(st.bytes_in_use);
        Ok(buf)
    }

    fn free(&self, buf: AlignedBuf) {
        let class = buf.capacity;
        let mut lists = self.free.lock();
        lists.stats.bytes_in_use -= class;
        if class > 0 {
            lists.stats.bytes_pooled += class;
            lists.list(class).push(buf);
        }
    }

    fn stats(&self) -> StorageStats {
        self.free.lock().stats
    }

    fn release(&self) {
        let drained = {
            let mut lists = self.free.lock();
            lists.stats.bytes_pooled = 0;
            lists.drain()
        };
        drop(drained);
    }
}

fn cpu_pool() -> &'static StoragePool {
    static POOL: OnceLock<StoragePool> = OnceLock::new();
    POOL.get_or_init(StoragePool::new)
}

fn pool(ctx: Context) -> Result<&'static StoragePool> {
    ctx.check_available()?;
    Ok(cpu_pool())
}

/// Memory statistics of `ctx`'s pool (all CPU contexts share one pool).
pub fn stats(ctx: Context) -> StorageStats {
    pool(ctx).map(StoragePool::stats).unwrap_or_default()
}

/// Return the pooled (unused) buffers of `ctx` to the system.
pub fn release_pooled(ctx: Context) {
    if let Ok(p) = pool(ctx) {
        p.release();
    }
}

/// The memory of one array (and of the views on it), guarded by one engine variable.
/// Every operation that touches the bytes is pushed to the engine with `var` as a read
/// or a write; that is what makes the accessors below sound.
pub(crate) struct Chunk {
    var: Var,
    /// Autograd's mark when this memory is a variable (opaque here: storage sits below
    /// autograd). Shared by every handle on the chunk, so `attach_grad(&self)` is seen by
    /// all clones of the array.
    pub(crate) ag_slot: Mutex<Option<Arc<dyn Any + Send + Sync>>>,
    /// In a cell only so that [`Chunk::swap_buffers`] can exchange two chunks' buffers
    /// inside an engine operation that writes both (every other access reads it, under the
    /// same engine discipline as the bytes themselves).
    buf: UnsafeCell<Option<AlignedBuf>>,
    bytes: usize,
    ctx: Context,
}

// SAFETY: the only field that is not Sync is `buf`, and it is written only by
// `swap_buffers`, whose contract (an engine operation holding both chunks' vars for writing)
// excludes every concurrent access to either buffer, like the bytes' own contract.
unsafe impl Sync for Chunk {}

impl Chunk {
    /// A chunk of `bytes` bytes on `ctx`; contents are unspecified (reused memory).
    pub(crate) fn alloc(bytes: usize, ctx: Context) -> Result<Chunk> {
        let buf = pool(ctx)?.alloc(bytes)?;
        Ok(Chunk { var: Var::new(), ag_slot: Mutex::new(None), buf: UnsafeCell::new(Some(buf)), bytes, ctx })
    }

    /// A chunk holding a copy of `data`, written before anyone else can see the chunk.
    pub(crate) fn from_bytes(data: &[u8], ctx: Context) -> Result<Chunk> {
        let mut chunk = Chunk::alloc(data.len(), ctx)?;
        chunk.bytes_exclusive().copy_from_slice(data);
        Ok(chunk)
    }

    pub(crate) fn var(&self) -> &Var {
        &self.var
    }
    pub(crate) fn ctx(&self) -> Context {
        self.ctx
    }

    fn base(&self) -> *mut u8 {
        // SAFETY: reading the buffer handle; it changes only in `swap_buffers`, which never
        // runs while a view or another engine operation on this chunk is alive.
        let buf = unsafe { &*self.buf.get() };
        buf.as_ref().map_or(NonNull::<AlignUnit>::dangling().cast().as_ptr(), |b| b.ptr.as_ptr())
    }

    /// Writable bytes of a chunk nobody else can reach yet (`&mut self`).
    pub(crate) fn bytes_exclusive(&mut self) -> &mut [u8] {
        // SAFETY: `&mut self` proves exclusive access; the buffer holds at least
        // `self.bytes` initialized bytes (zeroed at allocation, written since).
        unsafe { std::slice::from_raw_parts_mut(self.base(), self.bytes) }
    }

    /// Shared view of the bytes.
    ///
    /// # Safety
    /// The caller must be inside an engine operation that lists this chunk's var as a
    /// read (or write), so no write to these bytes runs concurrently.
    pub(crate) unsafe fn bytes(&self) -> &[u8] {
        std::slice::from_raw_parts(self.base(), self.bytes)
    }

    /// Exchange the buffers (and so the contents) of two chunks of the same size and
    /// device: moving a result into an array without copying it.
    ///
    /// # Safety
    /// The caller must be inside an engine operation that lists both chunks' vars as
    /// writes, with no view of either chunk's bytes alive.
    pub(crate) unsafe fn swap_buffers(&self, other: &Chunk) {
        debug_assert!(self.bytes == other.bytes && self.ctx == other.ctx);
        std::ptr::swap(self.buf.get(), other.buf.get());
    }

    /// Size in bytes.
    pub(crate) fn len(&self) -> usize {
        self.bytes
    }

    /// Mutable view of the bytes.
    ///
    /// # Safety
    /// The caller must be inside an engine operation that lists this chunk's var as a
    /// write, and must not create any other view of the same bytes while this one lives.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn bytes_mut(&self) -> &mut [u8] {
        std::slice::from_raw_parts_mut(self.base(), self.bytes)
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        if let (Some(buf), Ok(p)) = (self.buf.get_mut().take(), pool(self.ctx)) {
            p.free(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes() {
        assert_eq!(size_class(0), 0);
        assert_eq!(size_class(1), 64);
        assert_eq!(size_class(65), 128);
        assert_eq!(size_class(1 << 20), 1 << 20);
        assert_eq!(size_class((1 << 20) + 1), (1 << 20) + (1 << 16));
    }

    #[test]
    fn pool_reuses_freed_buffers() {
        let p = StoragePool::new();
        let a = p.alloc(1000).unwrap();
        let addr = a.ptr.as_ptr() as usize;
        assert_eq!(p.stats().bytes_in_use, 1024);
        p.free(a);
        assert_eq!(p.stats(), StorageStats { bytes_in_use: 0, bytes_pooled: 1024, peak_bytes_in_use: 1024 });
        let b = p.alloc(700).unwrap();
        assert_eq!(b.ptr.as_ptr() as usize, addr, "same size class is reused");
        assert_eq!(b.ptr.as_ptr() as usize % ALIGN, 0);
        p.free(b);
        p.release();
        assert_eq!(p.stats().bytes_pooled, 0);
    }

    #[test]
    fn gpu_allocation_is_a_clear_error() {
        let err = Chunk::alloc(16, Context::gpu(0)).err().unwrap().to_string();
        assert!(err.contains("gpu(0)") && err.contains("no GPU backend"), "{err}");
    }
}
