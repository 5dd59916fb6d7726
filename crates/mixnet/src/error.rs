//! The one error type of the framework. Every message names the operator, layer or file
//! involved, with the shapes and dtypes that made it fail (users asked for this: MXNet's
//! bare "shape inference failed" cost them hours).

use std::sync::Arc;

/// Result alias used throughout mixnet.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Anything a user can get wrong, or that failed inside an asynchronous operation.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// An operator refused its inputs or attributes (shape, dtype, attribute value).
    #[error("operator '{op}': {msg}")]
    Operator { op: String, msg: String },
    /// A file (params, symbol JSON, RecordIO, ...) is malformed, truncated or unsupported.
    #[error("{path}: {msg}")]
    Format { path: String, msg: String },
    /// An asynchronous operation failed; surfaced at a wait point.
    #[error(transparent)]
    Engine(#[from] mixnet_engine::EngineError),
    /// Operating-system I/O failure.
    #[error("{context}: {source}")]
    Io { context: String, source: Arc<std::io::Error> },
    /// A request the framework cannot serve here (e.g. a GPU context without a GPU backend).
    #[error("{0}")]
    Unsupported(String),
    /// Invalid argument to a non-operator API.
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// Error raised by operator `op`.
    pub fn op(op: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Operator { op: op.into(), msg: msg.into() }
    }
    /// Error about a malformed or unsupported file.
    pub fn format(path: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Format { path: path.into(), msg: msg.into() }
    }
    /// I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { context: context.into(), source: Arc::new(source) }
    }
}

/// Return early with an operator error: `bail_op!("dot", "shapes {:?} and {:?}", a, b)`.
#[macro_export]
macro_rules! bail_op {
    ($op:expr, $($arg:tt)*) => {
        return Err($crate::Error::op($op, format!($($arg)*)))
    };
}
