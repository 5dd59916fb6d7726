//! MXNet's dependency engine (work in progress).
mod error;
pub use error::{EngineError, ErrorKind};
