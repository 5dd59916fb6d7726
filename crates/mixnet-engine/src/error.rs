//! Errors raised by asynchronous operations, carried on the variables they poison.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Why an operation failed. Cheap to clone: it is stored on every variable it poisons.
#[derive(Clone)]
pub struct EngineError {
    inner: Arc<Inner>,
}

struct Inner {
    op: String,
    kind: ErrorKind,
    message: String,
    /// Surfaced to the user already (by a wait on a var it poisons), so `wait_all` skips it.
    reported: AtomicBool,
}

/// How the failing operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The operation returned `Err`.
    Failed,
    /// The operation panicked; the worker caught it and survived.
    Panicked,
    /// The operation was pushed on a variable that had been deleted.
    DeletedVar,
}

impl EngineError {
    pub fn new(op: impl Into<String>, kind: ErrorKind, message: impl Into<String>) -> Self {
        EngineError {
            inner: Arc::new(Inner {
                op: op.into(),
                kind,
                message: message.into(),
                reported: AtomicBool::new(false),
            }),
        }
    }
    /// Name of the operation that failed first (dependants that were skipped keep this name).
    pub fn op(&self) -> &str {
        &self.inner.op
    }
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }
    pub fn message(&self) -> &str {
        &self.inner.message
    }
    pub(crate) fn mark_reported(&self) {
        self.inner.reported.store(true, Ordering::Release);
    }
    pub(crate) fn is_reported(&self) -> bool {
        self.inner.reported.load(Ordering::Acquire)
    }
    /// Whether two errors are the same failure (not merely equal text).
    pub fn same_as(&self, other: &EngineError) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.inner.kind {
            ErrorKind::Failed => write!(f, "operator '{}' failed: {}", self.inner.op, self.inner.message),
            ErrorKind::Panicked => write!(f, "operator '{}' panicked: {}", self.inner.op, self.inner.message),
            ErrorKind::DeletedVar => write!(f, "operator '{}': {}", self.inner.op, self.inner.message),
        }
    }
}

impl fmt::Debug for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EngineError({self})")
    }
}

impl std::error::Error for EngineError {}

/// Errors of failed operations not yet surfaced by a wait, in failure order.
#[derive(Default)]
pub(crate) struct ErrorLog {
    errors: parking_lot::Mutex<Vec<EngineError>>,
}

/// Bound on remembered failures when nobody waits: the first ones matter most.
const MAX_LOGGED: usize = 1024;

impl ErrorLog {
    pub(crate) fn record(&self, e: EngineError) {
        let mut errors = self.errors.lock();
        if errors.len() < MAX_LOGGED {
            errors.push(e);
        }
    }

    /// The first failure that no wait has surfaced yet; forgets all logged failures.
    pub(crate) fn take_first_unreported(&self) -> Result<(), EngineError> {
        let errors = std::mem::take(&mut *self.errors.lock());
        match errors.into_iter().find(|e| !e.is_reported()) {
            Some(e) => {
                e.mark_reported();
                Err(e)
            }
            None => Ok(()),
        }
    }
}
