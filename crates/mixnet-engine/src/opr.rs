//! A pushed operation: its function, the vars it depends on, and its run/complete steps,
//! shared by both engines.

use std::borrow::Cow;
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use smallvec::SmallVec;

use crate::error::{EngineError, ErrorKind};
use crate::var::Var;

/// What an operation returns: any error type, turned into an [`EngineError`] naming the op.
pub type OpResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// The work of one operation.
pub type OpFn = Box<dyn FnOnce() -> OpResult + Send + 'static>;

/// Operations made ready by a completion, to be dispatched by the caller.
pub(crate) type ReadyList = SmallVec<[Arc<OprBlock>; 4]>;

/// How an operation is described to the engine (MXNet's `FnProperty` + name + priority).
#[derive(Clone, Debug)]
pub struct OpProps {
    /// Shown in errors ("operator 'dot' failed: ...") and profiles.
    pub name: Cow<'static, str>,
    /// Higher runs first among ready operations (kvstore pushes early layers first).
    pub priority: i32,
    /// The op is cheap: when its dependencies are already met at push time, run it on the
    /// pushing thread, because waking a worker costs more than the op itself.
    pub light: bool,
    /// Run even when an input is poisoned (MXNet's `kNoSkip`): waits and deletions.
    pub no_skip: bool,
}

impl OpProps {
    pub fn new(name: impl Into<Cow<'static, str>>) -> Self {
        OpProps { name: name.into(), priority: 0, light: false, no_skip: false }
    }
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }
    pub fn light(mut self, light: bool) -> Self {
        self.light = light;
        self
    }
    pub fn no_skip(mut self, no_skip: bool) -> Self {
        self.no_skip = no_skip;
        self
    }
}

thread_local! {
    /// Set while this thread executes an operation: waiting from inside one would deadlock.
    static IN_OP: Cell<bool> = const { Cell::new(false) };
}

/// Whether the current thread is running an engine operation.
pub fn in_operation() -> bool {
    IN_OP.with(|f| f.get())
}

/// Run an operation's function on this thread, marked as inside an operation, turning a
/// returned error or a panic into an [`EngineError`] naming the op. The flag says the error
/// is new (not inherited from an input).
/// `name` is asked for only when the op fails.
pub(crate) fn run_guarded(
    name: impl Fn() -> Cow<'static, str>,
    func: impl FnOnce() -> OpResult,
) -> (Result<(), EngineError>, bool) {
    let was_in_op = IN_OP.with(|f| f.replace(true));
    let result = catch_unwind(AssertUnwindSafe(func));
    IN_OP.with(|f| f.set(was_in_op));
    match result {
        Ok(Ok(())) => (Ok(()), false),
        Ok(Err(e)) => (Err(EngineError::new(name(), ErrorKind::Failed, e.to_string())), true),
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".to_string());
            (Err(EngineError::new(name(), ErrorKind::Panicked, msg)), true)
        }
    }
}

/// The distinct vars of an operation run without a block (the inline fast path), each with
/// whether it is written: a var both read and written counts as a write, duplicates collapse.
pub(crate) type VarSet<'a> = SmallVec<[(&'a Var, bool); 6]>;

fn var_set<'a>(reads: &[&'a Var], writes: &[&'a Var]) -> VarSet<'a> {
    let mut set = VarSet::new();
    for &v in writes {
        if !set.iter().any(|(x, _)| x.same(v)) {
            set.push((v, true));
        }
    }
    for &v in reads {
        if !set.iter().any(|(x, _)| x.same(v)) {
            set.push((v, false));
        }
    }
    set
}

/// The var set of a fast-path op, or `None` when a var is poisoned or deleted: such ops
/// take the queued path, which knows how to skip them and pass the error on.
pub(crate) fn fast_path_set<'a>(reads: &[&'a Var], writes: &[&'a Var]) -> Option<VarSet<'a>> {
    let set = var_set(reads, writes);
    (!set.iter().any(|(v, _)| v.is_deleted() || v.poison_flag())).then_some(set)
}

/// Take every var of `set` at once if all are idle; otherwise take none. Called under the
/// push lock (see [`OprBlock::try_acquire_all`]).
pub(crate) fn try_acquire_set(set: &VarSet<'_>) -> bool {
    for (i, &(v, write)) in set.iter().enumerate() {
        let ok = if write { v.try_acquire_write() } else { v.try_acquire_read() };
        if !ok {
            for &(u, w) in &set[..i] {
                u.undo_acquire(w);
            }
            return false;
        }
    }
    for &(v, write) in set {
        if write {
            v.note_pushed_write();
        }
    }
    true
}

/// Release the vars of a finished fast-path op, collecting the ops that became ready.
pub(crate) fn release_set(set: &VarSet<'_>, outcome: &Result<(), EngineError>, ready: &mut ReadyList) {
    for &(v, write) in set {
        if write {
            v.complete_write(outcome, ready);
        } else {
            v.complete_read(ready);
        }
    }
}

pub(crate) struct OprBlock {
    /// Dependencies not yet granted, plus one held by the pusher until registration ends.
    wait: AtomicUsize,
    func: Mutex<Option<OpFn>>,
    /// Vars only read.
    pub(crate) reads: SmallVec<[Var; 4]>,
    /// Vars written, each with whether the op also reads it (then it inherits its poison).
    pub(crate) writes: SmallVec<[(Var, bool); 2]>,
    pub(crate) props: OpProps,
    /// Push order, to keep FIFO among equal priorities.
    pub(crate) seq: u64,
    /// Failure known at push time (a deleted var): the op is skipped with this error.
    pre_error: Option<EngineError>,
    /// Called once the op's vars are released: a waiter woken from inside the function
    /// would find its var still held and send its next op down the queued path.
    after_release: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl OprBlock {
    /// Build the block: a var both read and written counts as a write; duplicates collapse.
    pub(crate) fn new(func: OpFn, reads: &[Var], writes: &[Var], props: OpProps, seq: u64) -> Self {
        let mut w: SmallVec<[(Var, bool); 2]> = SmallVec::new();
        for v in writes {
            if !w.iter().any(|(x, _)| x.same(v)) {
                w.push((v.clone(), reads.iter().any(|r| r.same(v))));
            }
        }
        let mut r: SmallVec<[Var; 4]> = SmallVec::new();
        for v in reads {
            if !w.iter().any(|(x, _)| x.same(v)) && !r.iter().any(|x| x.same(v)) {
                r.push(v.clone());
            }
        }
        for (v, _) in &w {
            v.note_pushed_write();
        }
        let pre_error = r.iter().chain(w.iter().map(|(v, _)| v)).find(|v| v.is_deleted()).map(|v| {
            EngineError::new(
                props.name.clone(),
                ErrorKind::DeletedVar,
                format!("pushed on variable #{} after delete_var", v.id()),
            )
        });
        OprBlock {
            wait: AtomicUsize::new(r.len() + w.len() + 1),
            func: Mutex::new(Some(func)),
            reads: r,
            writes: w,
            props,
            seq,
            pre_error,
            after_release: Mutex::new(None),
        }
    }

    pub(crate) fn with_after_release(self, f: impl FnOnce() + Send + 'static) -> Self {
        *self.after_release.lock() = Some(Box::new(f));
        self
    }

    /// Register on every var; returns true when the op is ready to run at once.
    /// The caller serializes registrations (the push lock) so that two ops pushed from
    /// different threads cannot each hold one var the other waits on.
    pub(crate) fn register(self: &Arc<Self>) -> bool {
        let mut granted = 1;
        for v in &self.reads {
            granted += v.append_read(self) as usize;
        }
        for (v, _) in &self.writes {
            granted += v.append_write(self) as usize;
        }
        self.wait.fetch_sub(granted, Ordering::AcqRel) == granted
    }

    /// Take every var at once if all are idle (the inline fast path); otherwise take none.
    /// The caller holds the push lock, so no var can become busy meanwhile except through
    /// completions, which only grant queued ops (and every queue checked here is empty).
    pub(crate) fn try_acquire_all(&self) -> bool {
        let vars = self.reads.iter().map(|v| (v, false)).chain(self.writes.iter().map(|(v, _)| (v, true)));
        for (i, (v, write)) in vars.clone().enumerate() {
            let ok = if write { v.try_acquire_write() } else { v.try_acquire_read() };
            if !ok {
                for (u, w) in vars.take(i) {
                    u.undo_acquire(w);
                }
                return false;
            }
        }
        true
    }

    /// One dependency was satisfied; queue the op if it was the last.
    pub(crate) fn grant(self: Arc<Self>, ready: &mut ReadyList) {
        if self.wait.fetch_sub(1, Ordering::AcqRel) == 1 {
            ready.push(self);
        }
    }

    /// Run the function unless an input is poisoned. Returns the outcome and whether the
    /// error (if any) is new here rather than inherited.
    pub(crate) fn run(&self) -> (Result<(), EngineError>, bool) {
        if let Some(e) = &self.pre_error {
            return (Err(e.clone()), true);
        }
        let inherited = self
            .reads
            .iter()
            .chain(self.writes.iter().filter(|(_, r)| *r).map(|(v, _)| v))
            .find_map(|v| v.poison());
        if let Some(e) = inherited {
            if !self.props.no_skip {
                return (Err(e), false);
            }
        }
        let Some(func) = self.func.lock().take() else {
            return (Err(EngineError::new(self.props.name.clone(), ErrorKind::Failed, "ran twice")), true);
        };
        run_guarded(|| self.props.name.clone(), func)
    }

    /// Release every var this op held, collecting the ops that became ready.
    pub(crate) fn complete(&self, outcome: &Result<(), EngineError>, ready: &mut ReadyList) {
        for v in &self.reads {
            v.complete_read(ready);
        }
        for (v, _) in &self.writes {
            v.complete_write(outcome, ready);
        }
        if let Some(f) = self.after_release.lock().take() {
            f();
        }
    }

    /// Naive engine: run and record the outcome synchronously.
    pub(crate) fn run_sync(&self) -> (Result<(), EngineError>, bool) {
        let (outcome, new) = self.run();
        for (v, _) in &self.writes {
            v.complete_write_sync(&outcome);
        }
        if let Some(f) = self.after_release.lock().take() {
            f();
        }
        (outcome, new)
    }
}
