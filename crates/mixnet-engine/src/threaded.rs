//! `ThreadedEngine`: ready operations run on a pool of workers that park when idle.
//!
//! Two shortcuts keep dispatch cheap on a small machine, where waking a thread costs tens
//! of microseconds: a *light* op whose dependencies are met at push time runs on the
//! pushing thread, and a worker that finishes an op runs one op it made ready itself
//! instead of queueing it and waking a peer.

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};

use crate::error::{EngineError, ErrorKind, ErrorLog};
use crate::opr::{
    fast_path_set, in_operation, release_set, run_guarded, try_acquire_set, OpFn, OpProps, OpResult,
    OprBlock, ReadyList,
};
use crate::var::Var;
use crate::{Engine, EngineKind};

/// Settings of a [`ThreadedEngine`].
#[derive(Clone, Debug)]
pub struct ThreadedConfig {
    /// Worker threads (MXNet's `MXNET_CPU_WORKER_NTHREADS`; kernels parallelize inside ops).
    pub workers: usize,
    /// Allow ready ops to run on the pushing thread (`try_run_now`, and light ops at push).
    pub inline: bool,
}

impl Default for ThreadedConfig {
    fn default() -> Self {
        ThreadedConfig { workers: 1, inline: true }
    }
}

/// The default engine: dependency-ordered execution on a worker pool.
pub struct ThreadedEngine {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

struct Shared {
    /// Serializes dependency registration so multi-var pushes are atomic (see `register`);
    /// holds the push sequence number.
    push_lock: Mutex<u64>,
    queue: Mutex<ReadyQueue>,
    work_cv: Condvar,
    /// Ops pushed and not yet completed, for `wait_all`.
    pending: AtomicUsize,
    /// Threads inside `wait_all`: only then does the last op to finish take `done_lock`
    /// to wake them (otherwise every inline op would, as `pending` returns to 0 each time).
    waiters: AtomicUsize,
    done_lock: Mutex<()>,
    done_cv: Condvar,
    errors: ErrorLog,
    inline: bool,
}

#[derive(Default)]
struct ReadyQueue {
    heap: BinaryHeap<Ready>,
    idle: usize,
    shutdown: bool,
}

/// Heap entry: higher priority first, then push order.
struct Ready(Arc<OprBlock>);

impl Ord for Ready {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        self.0.props.priority.cmp(&other.0.props.priority).then_with(|| other.0.seq.cmp(&self.0.seq))
    }
}
impl PartialOrd for Ready {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Ready {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == CmpOrdering::Equal
    }
}
impl Eq for Ready {}

impl ThreadedEngine {
    pub fn new(config: ThreadedConfig) -> Self {
        let shared = Arc::new(Shared {
            push_lock: Mutex::new(0),
            queue: Mutex::new(ReadyQueue::default()),
            work_cv: Condvar::new(),
            pending: AtomicUsize::new(0),
            waiters: AtomicUsize::new(0),
            done_lock: Mutex::new(()),
            done_cv: Condvar::new(),
            errors: ErrorLog::default(),
            inline: config.inline,
        });
        let workers = (0..config.workers.max(1))
            .map(|i| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("mixnet-engine-{i}"))
                    .spawn(move || shared.worker_loop())
                    .unwrap_or_else(|e| panic!("mixnet engine: cannot spawn worker thread: {e}"))
            })
            .collect();
        ThreadedEngine { shared, workers }
    }

    /// Number the op under the push lock, then run it here when light and idle, or
    /// register it on its vars.
    fn push_block(&self, make: impl FnOnce(u64) -> OprBlock) {
        let mut seq = self.shared.push_lock.lock();
        *seq += 1;
        let block = make(*seq);
        let inline = self.shared.inline && block.props.light;
        if inline && block.try_acquire_all() {
            // Fast path: every var was idle, so run here without queueing the op at all.
            drop(seq);
            self.shared.run_acquired(block);
            return;
        }
        let ready = self.shared.register(block);
        drop(seq);
        if let Some(block) = ready {
            self.shared.dispatch(block);
        }
    }

    /// Number of worker threads.
    pub fn num_workers(&self) -> usize {
        self.workers.len()
    }
}

impl Shared {
    fn register(&self, block: OprBlock) -> Option<Arc<OprBlock>> {
        self.pending.fetch_add(1, Ordering::AcqRel);
        let block = Arc::new(block);
        block.register().then_some(block)
    }

    /// Run an op holding its vars, release them and log a new failure; returns the ops
    /// its completion made ready.
    fn run_and_release(&self, block: &OprBlock) -> ReadyList {
        let (outcome, new) = block.run();
        let mut ready = ReadyList::new();
        block.complete(&outcome, &mut ready);
        if let (Err(e), true) = (outcome, new) {
            self.errors.record(e);
        }
        ready
    }

    fn execute(&self, block: Arc<OprBlock>) -> ReadyList {
        let ready = self.run_and_release(&block);
        drop(block);
        self.finish_one();
        ready
    }

    /// Run an op that already holds all its vars (the inline fast path).
    fn run_acquired(&self, block: OprBlock) {
        self.pending.fetch_add(1, Ordering::AcqRel);
        let ready = self.run_and_release(&block);
        drop(block);
        self.finish_one();
        if !ready.is_empty() {
            self.enqueue(ready);
        }
    }

    /// One pushed op completed: wake `wait_all` when none is left.
    fn finish_one(&self) {
        // SeqCst pairs with `wait_all`: it raises `waiters` then reads `pending`, this
        // lowers `pending` then reads `waiters`, so one of them sees the other's write.
        if self.pending.fetch_sub(1, Ordering::SeqCst) == 1 && self.waiters.load(Ordering::SeqCst) > 0 {
            let _g = self.done_lock.lock();
            self.done_cv.notify_all();
        }
    }

    fn enqueue(&self, ready: impl IntoIterator<Item = Arc<OprBlock>>) {
        let mut q = self.queue.lock();
        let mut added = 0;
        for b in ready {
            q.heap.push(Ready(b));
            added += 1;
        }
        let wake = added.min(q.idle);
        drop(q);
        for _ in 0..wake {
            self.work_cv.notify_one();
        }
    }

    fn pop_blocking(&self) -> Option<Arc<OprBlock>> {
        let mut q = self.queue.lock();
        loop {
            if let Some(Ready(b)) = q.heap.pop() {
                return Some(b);
            }
            if q.shutdown {
                return None;
            }
            q.idle += 1;
            self.work_cv.wait(&mut q);
            q.idle -= 1;
        }
    }

    fn worker_loop(&self) {
        let mut next = None;
        loop {
            let block = match next.take() {
                Some(b) => b,
                None => match self.pop_blocking() {
                    Some(b) => b,
                    None => return,
                },
            };
            let mut ready = self.execute(block);
            next = ready.pop();
            if !ready.is_empty() {
                self.enqueue(ready);
            }
        }
    }

    fn dispatch(&self, block: Arc<OprBlock>) {
        if self.inline && block.props.light {
            let ready = self.execute(block);
            if !ready.is_empty() {
                self.enqueue(ready);
            }
        } else {
            self.enqueue([block]);
        }
    }
}

fn deadlock_error(what: &str) -> EngineError {
    EngineError::new(
        what,
        ErrorKind::Failed,
        "called from inside an engine operation, where waiting would deadlock",
    )
}

impl Engine for ThreadedEngine {
    fn push(&self, func: OpFn, reads: &[Var], writes: &[Var], props: OpProps) {
        self.push_block(|seq| OprBlock::new(func, reads, writes, props, seq));
    }

    fn try_run_now(
        &self,
        func: &mut dyn FnMut() -> OpResult,
        reads: &[&Var],
        writes: &[&Var],
        name: &'static str,
    ) -> bool {
        self.try_run_now_creating(func, reads, writes, &[], name)
    }

    fn try_run_now_creating(
        &self,
        func: &mut dyn FnMut() -> OpResult,
        reads: &[&Var],
        writes: &[&Var],
        created: &[&Var],
        name: &'static str,
    ) -> bool {
        if !self.shared.inline {
            return false;
        }
        let Some(set) = fast_path_set(reads, writes) else { return false };
        {
            // Acquire under the push lock, like a push, so multi-var acquisition is atomic.
            let _seq = self.shared.push_lock.lock();
            if !try_acquire_set(&set) {
                return false;
            }
        }
        created.iter().for_each(|v| v.note_pushed_write());
        self.shared.pending.fetch_add(1, Ordering::AcqRel);
        let (outcome, new) = run_guarded(|| name.into(), func);
        created.iter().for_each(|v| v.complete_created_write(&outcome));
        let mut ready = ReadyList::new();
        release_set(&set, &outcome, &mut ready);
        if let (Err(e), true) = (outcome, new) {
            self.shared.errors.record(e);
        }
        self.shared.finish_one();
        if !ready.is_empty() {
            self.shared.enqueue(ready);
        }
        true
    }

    fn wait_for_var(&self, var: &Var) -> Result<(), EngineError> {
        if in_operation() {
            return Err(deadlock_error("wait_for_var"));
        }
        if !var.writes_settled() {
            let signal = Arc::new((Mutex::new(false), Condvar::new()));
            let s = signal.clone();
            let notify = move || {
                *s.0.lock() = true;
                s.1.notify_all();
            };
            let props = OpProps::new("WaitForVar").light(true).no_skip(true);
            self.push_block(|seq| {
                OprBlock::new(Box::new(|| Ok(())), std::slice::from_ref(var), &[], props, seq)
                    .with_after_release(notify)
            });
            let mut done = signal.0.lock();
            while !*done {
                signal.1.wait(&mut done);
            }
        }
        var.report_poison()
    }

    fn wait_all(&self) -> Result<(), EngineError> {
        if in_operation() {
            return Err(deadlock_error("wait_all"));
        }
        self.shared.waiters.fetch_add(1, Ordering::SeqCst);
        let mut g = self.shared.done_lock.lock();
        while self.shared.pending.load(Ordering::SeqCst) != 0 {
            self.shared.done_cv.wait(&mut g);
        }
        drop(g);
        self.shared.waiters.fetch_sub(1, Ordering::SeqCst);
        self.shared.errors.take_first_unreported()
    }

    fn delete_var(&self, var: &Var, on_delete: Box<dyn FnOnce() + Send>) {
        let func: OpFn = Box::new(move || {
            on_delete();
            Ok(())
        });
        let props = OpProps::new("DeleteVariable").light(true).no_skip(true).priority(i32::MAX);
        let ready = {
            let mut seq = self.shared.push_lock.lock();
            *seq += 1;
            let block = OprBlock::new(func, &[], std::slice::from_ref(var), props, *seq);
            var.mark_delete_requested();
            self.shared.register(block)
        };
        if let Some(block) = ready {
            self.shared.dispatch(block);
        }
    }

    fn kind(&self) -> EngineKind {
        EngineKind::Threaded
    }
}

impl Drop for ThreadedEngine {
    /// Finish pending work, then stop the workers.
    fn drop(&mut self) {
        let _ = self.wait_all();
        self.shared.queue.lock().shutdown = true;
        self.shared.work_cv.notify_all();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}
