//! NDArray: a cheap-clone handle on a chunk of memory guarded by an engine variable, and
//! MXNet's NDArray file format (`mx.nd.save` / `.params`).
//!
//! View semantics follow MXNet: `slice`/`at` along axis 0 and `reshape` share memory (and
//! the engine variable) with the source; every operator produces new arrays.

mod arith;
mod array;
mod display;
pub mod file;
mod io;
mod methods;

pub use array::NDArray;
pub use io::{load, save};
