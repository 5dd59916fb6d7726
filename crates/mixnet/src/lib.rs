//! mixnet: Apache MXNet's design in Rust.
//!
//! Layers, bottom up: the dependency engine (`mixnet-engine`), kernels on slices
//! (`mixnet-kernels`), then here: arrays, the operator registry, eager invoke, autograd,
//! symbol, Gluon. See `DESIGN.md` in the shared reference for the whole picture.

pub mod dtype;
pub mod error;

pub use dtype::DType;
pub use error::{Error, Result};
