//! Back-pressure for asynchronous pushes: the bytes of outputs whose operations have not
//! run yet are capped. Without it, a loop pushing large ops faster than they run takes a
//! fresh, cache-cold buffer for every queued op and grows memory without bound (MXNet
//! behaves that way); with it, buffers recycle through the pool while still in cache.

use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::{Condvar, Mutex};

/// Output bytes allowed in flight before the pushing thread waits (a quarter of a typical
/// L3 cache). A single larger op is always admitted.
const LIMIT: usize = 8 << 20;

static INFLIGHT: AtomicUsize = AtomicUsize::new(0);
static WAITERS: AtomicUsize = AtomicUsize::new(0);
static LOCK: Mutex<()> = Mutex::new(());
static DRAINED: Condvar = Condvar::new();

/// Held by a pushed operation's closure; releases its bytes when the closure is dropped,
/// whether it ran or was skipped because an input was poisoned.
pub(crate) struct InflightGuard(usize);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        INFLIGHT.fetch_sub(self.0, Ordering::AcqRel);
        if WAITERS.load(Ordering::Acquire) > 0 {
            let _g = LOCK.lock();
            DRAINED.notify_all();
        }
    }
}

/// Account `bytes` of outputs about to be pushed, waiting first while too much is queued.
/// Never waits inside an engine operation (the queued work may be behind it).
pub(crate) fn admit(bytes: usize) -> InflightGuard {
    if INFLIGHT.load(Ordering::Acquire) + bytes > LIMIT && !mixnet_engine::in_operation() {
        WAITERS.fetch_add(1, Ordering::AcqRel);
        let mut g = LOCK.lock();
        loop {
            let now = INFLIGHT.load(Ordering::Acquire);
            if now == 0 || now + bytes <= LIMIT {
                break;
            }
            DRAINED.wait(&mut g);
        }
        drop(g);
        WAITERS.fetch_sub(1, Ordering::AcqRel);
    }
    INFLIGHT.fetch_add(bytes, Ordering::AcqRel);
    InflightGuard(bytes)
}
