//! MXNet's dependency engine, knowing nothing of tensors.
//!
//! Work is pushed as a closure with the variables it reads and the variables it writes.
//! The engine runs it once every earlier write to its reads, and every earlier read and
//! write of its writes, has completed: per-variable program order is kept, and reads
//! between two writes run together. Each completed write bumps the variable's version.
//!
//! An operation that fails (returns `Err` or panics) poisons the variables it writes.
//! Operations that read a poisoned variable are skipped and pass the error on; the error
//! surfaces, naming the failing operation, at [`Engine::wait_for_var`] or
//! [`Engine::wait_all`]. A later successful write of the variable clears the poison.
//! (MXNet clears a variable's error once it has been thrown; here a variable stays
//! poisoned until it is overwritten, so a failed result never reads as valid data.)
//!
//! `MIXNET_ENGINE_TYPE` selects the process-wide engine returned by [`get`]:
//! `ThreadedEngine` (default; `ThreadedEnginePerDevice` is accepted as a synonym) or
//! `NaiveEngine` (synchronous, for debugging). `MIXNET_CPU_WORKER_NTHREADS` sets the pool
//! size. The `MXNET_` spellings of both are honoured when the `MIXNET_` ones are unset.

mod error;
mod naive;
mod opr;
mod threaded;
mod var;

use std::sync::OnceLock;

pub use error::{EngineError, ErrorKind};
pub use naive::NaiveEngine;
pub use opr::{in_operation, OpFn, OpProps, OpResult};
pub use threaded::{ThreadedConfig, ThreadedEngine};
pub use var::Var;

/// Which engine implementation is running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineKind {
    Naive,
    Threaded,
}

/// The scheduler interface shared by both engines.
pub trait Engine: Send + Sync {
    /// Schedule `func` after the operations it depends on through `reads` and `writes`.
    /// A var listed in both is a write (and inherits poison, since the op reads it).
    fn push(&self, func: OpFn, reads: &[Var], writes: &[Var], props: OpProps);

    /// Block until every write pushed so far to `var` has completed; `Err` if the var is
    /// poisoned. Refused (with `Err`) from inside an operation, where it would deadlock.
    fn wait_for_var(&self, var: &Var) -> Result<(), EngineError>;

    /// Block until every pushed operation has completed; returns the first failure not
    /// already surfaced by a wait, and forgets the rest.
    fn wait_all(&self) -> Result<(), EngineError>;

    /// Run `on_delete` (typically: free the memory the var guards) after every operation
    /// pushed so far on `var`. Operations pushed on it afterwards fail.
    fn delete_var(&self, var: &Var, on_delete: Box<dyn FnOnce() + Send>);

    /// The ready-op fast path. If every var is idle (nothing running or queued on it, none
    /// poisoned or deleted), run `func` now on this thread as an operation reading `reads`
    /// and writing `writes`, and return true. Otherwise do nothing and return false; the
    /// caller then [`push`](Engine::push)es it. This spares the boxed closure and the
    /// operation block of a push (as much as a small kernel costs) and, for large ops, the
    /// wakes of a worker and of the waiting caller.
    fn try_run_now(
        &self,
        _func: &mut dyn FnMut() -> OpResult,
        _reads: &[&Var],
        _writes: &[&Var],
        _name: &'static str,
    ) -> bool {
        false
    }

    /// [`try_run_now`](Engine::try_run_now) for an op that also writes `created`: vars
    /// made for its outputs during this call, which no other thread can name yet. They
    /// cannot be busy, so an engine may skip their locks and only count the write
    /// (pushed-write clock, version, poison on failure), which is most of the fast
    /// path's cost for a small op. The default treats them as ordinary writes.
    fn try_run_now_creating(
        &self,
        func: &mut dyn FnMut() -> OpResult,
        reads: &[&Var],
        writes: &[&Var],
        created: &[&Var],
        name: &'static str,
    ) -> bool {
        let all: smallvec::SmallVec<[&Var; 8]> = writes.iter().chain(created).copied().collect();
        self.try_run_now(func, reads, &all, name)
    }

    /// Which implementation this is.
    fn kind(&self) -> EngineKind;

    /// A new variable.
    fn new_var(&self) -> Var {
        Var::new()
    }
}

impl dyn Engine + '_ {
    /// `push` for any closure returning an error type that converts to a boxed error.
    pub fn push_fn<F, E>(&self, func: F, reads: &[Var], writes: &[Var], props: OpProps)
    where
        F: FnOnce() -> Result<(), E> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.push(Box::new(move || func().map_err(Into::into)), reads, writes, props)
    }
}

/// Engine choice and pool size as read from the environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineSettings {
    pub kind: EngineKind,
    pub workers: usize,
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(format!("MIXNET_{name}")).or_else(|_| std::env::var(format!("MXNET_{name}"))).ok()
}

impl EngineSettings {
    /// Parse the settings; unknown values fall back to the defaults with a warning,
    /// because a typo in an environment variable should not abort a training job.
    pub fn from_env() -> Self {
        let kind = match env_var("ENGINE_TYPE").as_deref().map(str::trim) {
            None
            | Some("")
            | Some("ThreadedEngine")
            | Some("ThreadedEnginePerDevice")
            | Some("ThreadedEnginePooled") => EngineKind::Threaded,
            Some("NaiveEngine") => EngineKind::Naive,
            Some(other) => {
                eprintln!(
                    "mixnet: unknown MIXNET_ENGINE_TYPE '{other}'; using ThreadedEngine (or NaiveEngine)"
                );
                EngineKind::Threaded
            }
        };
        let workers = match env_var("CPU_WORKER_NTHREADS") {
            None => 1,
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) if n >= 1 => n,
                _ => {
                    eprintln!("mixnet: MIXNET_CPU_WORKER_NTHREADS='{v}' is not a positive integer; using 1");
                    1
                }
            },
        };
        EngineSettings { kind, workers }
    }

    /// Build an engine with these settings.
    pub fn build(&self) -> Box<dyn Engine> {
        match self.kind {
            EngineKind::Naive => Box::new(NaiveEngine::new()),
            EngineKind::Threaded => {
                Box::new(ThreadedEngine::new(ThreadedConfig { workers: self.workers, ..Default::default() }))
            }
        }
    }
}

static ENGINE: OnceLock<Box<dyn Engine>> = OnceLock::new();

/// The process-wide engine, created on first use from the environment.
pub fn get() -> &'static dyn Engine {
    ENGINE.get_or_init(|| EngineSettings::from_env().build()).as_ref()
}
