//! mixnet: Apache MXNet's design in Rust.
//!
//! Layers, bottom up: the dependency engine (`mixnet-engine`), kernels on slices
//! (`mixnet-kernels`), then here: arrays ([`NDArray`], pooled [`storage`]), the operator
//! registry ([`op`]) with its implementations ([`operator`]), eager [`imperative::invoke`],
//! autograd, Gluon ([`gluon`], [`optimizer`], [`lr_scheduler`], [`initializer`], [`metric`]),
//! and later symbol.

pub mod autograd;
pub mod context;
pub mod dtype;
pub mod error;
pub mod gluon;
pub mod imperative;
pub mod initializer;
pub mod lr_scheduler;
pub mod metric;
pub mod ndarray;
pub mod op;
pub mod operator;
pub mod optimizer;
pub mod random;
pub mod resource;
pub mod shape;
pub mod storage;
mod throttle;

pub use context::{cpu, gpu, Context};
pub use dtype::{DType, NativeType};
pub use error::{Error, Result};
pub use mixnet_kernels::{bf16, f16};
pub use ndarray::NDArray;
pub use shape::Shape;

/// Block until every pushed operation has finished; the first failure not yet reported
/// by a wait comes back as `Err` (MXNet's `mx.nd.waitall`).
pub fn waitall() -> Result<()> {
    mixnet_engine::get().wait_all().map_err(engine_error)
}

/// An engine failure as a mixnet error.
pub(crate) fn engine_error(e: mixnet_engine::EngineError) -> Error {
    Error::Engine(e)
}
