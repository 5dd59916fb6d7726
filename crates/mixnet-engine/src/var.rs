//! Engine variables: the unit of dependency tracking.
//!
//! A `Var` stands for one piece of mutable state (an array's memory, an RNG, a temp
//! buffer). Each var keeps the operations waiting on it in push order; reads that are not
//! behind a write run together, a write waits for everything pushed before it.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::EngineError;
use crate::opr::{OprBlock, ReadyList};

/// Handle on an engine variable. Cheap to clone; all clones are the same variable.
#[derive(Clone)]
pub struct Var(pub(crate) Arc<VarInner>);

pub(crate) struct VarInner {
    /// Completed writes so far. Read without a lock: caches compare versions.
    version: AtomicU64,
    /// Writes pushed so far (completed or not): a clock that moves at push time, so a
    /// reader can tell "written since I looked" without waiting for the engine.
    pushed_writes: AtomicU64,
    /// Fast check before taking the lock: most vars are never poisoned.
    poisoned: AtomicBool,
    /// Set when `delete_var` is pushed: later pushes naming this var fail.
    delete_requested: AtomicBool,
    state: Mutex<VarState>,
}

#[derive(Default)]
struct VarState {
    /// Operations waiting on this var, in push order, with whether each writes it.
    /// Invariant: when no write runs, the queue is empty or starts with a write.
    queue: VecDeque<(Arc<OprBlock>, bool)>,
    running_reads: usize,
    writing: bool,
    /// The error of the last write if it failed; cleared by a later successful write.
    poison: Option<EngineError>,
}

impl Var {
    /// A fresh variable with version 0 and nothing pending.
    pub fn new() -> Var {
        Var(Arc::new(VarInner {
            version: AtomicU64::new(0),
            pushed_writes: AtomicU64::new(0),
            poisoned: AtomicBool::new(false),
            delete_requested: AtomicBool::new(false),
            state: Mutex::new(VarState::default()),
        }))
    }

    /// Unique among live vars (its address), for debugging and profiling.
    pub fn id(&self) -> u64 {
        Arc::as_ptr(&self.0) as usize as u64
    }

    /// Number of writes that have completed on this var (successful or not).
    pub fn version(&self) -> u64 {
        self.0.version.load(Ordering::Acquire)
    }

    /// Number of writes pushed on this var so far, run or not. Autograd compares it to
    /// detect in-place mutation of saved arrays.
    pub fn pushed_writes(&self) -> u64 {
        self.0.pushed_writes.load(Ordering::Acquire)
    }

    pub(crate) fn note_pushed_write(&self) {
        self.0.pushed_writes.fetch_add(1, Ordering::AcqRel);
    }

    /// Whether two handles name the same variable.
    pub fn same(&self, other: &Var) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The error carried by this var, if its last write failed.
    pub fn poison(&self) -> Option<EngineError> {
        if !self.0.poisoned.load(Ordering::Acquire) {
            return None;
        }
        self.0.state.lock().poison.clone()
    }

    /// Whether the last write failed (lock-free check).
    pub(crate) fn poison_flag(&self) -> bool {
        self.0.poisoned.load(Ordering::Acquire)
    }

    /// `Err` with the poison, marked as surfaced to the user (so `wait_all` skips it).
    pub(crate) fn report_poison(&self) -> Result<(), EngineError> {
        match self.poison() {
            Some(e) => {
                e.mark_reported();
                Err(e)
            }
            None => Ok(()),
        }
    }

    /// Whether `delete_var` has been pushed for this var.
    pub fn is_deleted(&self) -> bool {
        self.0.delete_requested.load(Ordering::Acquire)
    }

    pub(crate) fn mark_delete_requested(&self) {
        self.0.delete_requested.store(true, Ordering::Release);
    }

    /// True when no write is running or queued: a waiter need not wait.
    pub(crate) fn writes_settled(&self) -> bool {
        let s = self.0.state.lock();
        !s.writing && s.queue.is_empty()
    }

    /// Register `opr` as a reader. Returns true if it may read now.
    pub(crate) fn append_read(&self, opr: &Arc<OprBlock>) -> bool {
        let mut s = self.0.state.lock();
        if !s.writing && s.queue.is_empty() {
            s.running_reads += 1;
            true
        } else {
            s.queue.push_back((opr.clone(), false));
            false
        }
    }

    /// Register `opr` as a writer. Returns true if it may write now.
    pub(crate) fn append_write(&self, opr: &Arc<OprBlock>) -> bool {
        let mut s = self.0.state.lock();
        if !s.writing && s.running_reads == 0 && s.queue.is_empty() {
            s.writing = true;
            true
        } else {
            s.queue.push_back((opr.clone(), true));
            false
        }
    }

    /// Take read access now if nothing is running or queued that it must wait for.
    /// Used under the push lock by the inline fast path (no op block is queued).
    pub(crate) fn try_acquire_read(&self) -> bool {
        let mut s = self.0.state.lock();
        let free = !s.writing && s.queue.is_empty();
        if free {
            s.running_reads += 1;
        }
        free
    }

    /// Take write access now if the var is idle (see [`Var::try_acquire_read`]).
    pub(crate) fn try_acquire_write(&self) -> bool {
        let mut s = self.0.state.lock();
        let free = !s.writing && s.running_reads == 0 && s.queue.is_empty();
        if free {
            s.writing = true;
        }
        free
    }

    /// Give back access taken by `try_acquire_*` without running (another var was busy).
    /// Under the push lock the queue is still empty, so nobody needs to be released.
    pub(crate) fn undo_acquire(&self, write: bool) {
        let mut s = self.0.state.lock();
        if write {
            s.writing = false;
        } else {
            s.running_reads -= 1;
        }
    }

    /// A reader finished; the write queued behind it may start.
    pub(crate) fn complete_read(&self, ready: &mut ReadyList) {
        let mut s = self.0.state.lock();
        debug_assert!(s.running_reads > 0);
        s.running_reads -= 1;
        if s.running_reads == 0 {
            if let Some((_, true)) = s.queue.front() {
                s.writing = true;
                if let Some((opr, _)) = s.queue.pop_front() {
                    opr.grant(ready);
                }
            }
        }
    }

    /// A writer finished with `outcome`: bump the version, set or clear the poison, and
    /// release the reads queued behind it (or the next write).
    pub(crate) fn complete_write(&self, outcome: &Result<(), EngineError>, ready: &mut ReadyList) {
        let mut s = self.0.state.lock();
        debug_assert!(s.writing);
        s.writing = false;
        self.record_write(&mut s, outcome);
        while let Some((_, false)) = s.queue.front() {
            s.running_reads += 1;
            if let Some((opr, _)) = s.queue.pop_front() {
                opr.grant(ready);
            }
        }
        if s.running_reads == 0 {
            if let Some((_, true)) = s.queue.front() {
                s.writing = true;
                if let Some((opr, _)) = s.queue.pop_front() {
                    opr.grant(ready);
                }
            }
        }
    }

    /// A write finished on a var created for it, which nothing else can name (see
    /// [`crate::Engine::try_run_now_creating`]): it was never marked as being written
    /// and nothing can be queued on it, so only the version (and a failure's poison)
    /// change, without the state lock when it succeeded.
    pub(crate) fn complete_created_write(&self, outcome: &Result<(), EngineError>) {
        match outcome {
            Ok(()) => {
                self.0.version.fetch_add(1, Ordering::AcqRel);
            }
            Err(_) => self.record_write(&mut self.0.state.lock(), outcome),
        }
    }

    /// Naive engine: a synchronous write finished.
    pub(crate) fn complete_write_sync(&self, outcome: &Result<(), EngineError>) {
        let mut s = self.0.state.lock();
        self.record_write(&mut s, outcome);
    }

    /// Every completed write bumps the version; a failed one poisons, a successful one heals.
    fn record_write(&self, s: &mut VarState, outcome: &Result<(), EngineError>) {
        match outcome {
            Ok(()) => {
                s.poison = None;
                self.0.poisoned.store(false, Ordering::Release);
            }
            Err(e) => {
                s.poison = Some(e.clone());
                self.0.poisoned.store(true, Ordering::Release);
            }
        }
        self.0.version.fetch_add(1, Ordering::AcqRel);
    }
}

impl Default for Var {
    fn default() -> Self {
        Var::new()
    }
}

impl fmt::Debug for Var {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Var#{}(v{})", self.id(), self.version())
    }
}
