//! Gluon (MXNet's `mx.gluon`): blocks with parameters, layers, losses, the `Trainer`, and
//! data loading. Everything computes through [`crate::imperative::invoke`] with MXNet's
//! operator names and attribute strings, and through [`crate::autograd`].

pub mod block;
pub mod data;
pub mod loss;
pub mod nn;
pub mod parameter;
pub mod rnn;
pub mod trainer;
pub mod utils;

pub use block::{
    Block, BlockBase, HybridBlock, HybridLambda, HybridSequential, Lambda, LoadOptions, NameScope, Sequential,
};
pub use parameter::{Parameter, ParameterDict};
pub use trainer::Trainer;
pub use utils::clip_global_norm;

use crate::{imperative, NDArray, Result};

/// Call one operator and return its first output.
pub(crate) fn op(name: &str, inputs: &[NDArray], attrs: &[(&str, &str)]) -> Result<NDArray> {
    Ok(imperative::invoke(name, inputs, attrs)?.swap_remove(0))
}

/// MXNet's tuple attribute spelling: `(5, 5)`, `(3,)`.
pub(crate) fn tuple_attr(v: &[usize]) -> String {
    match v {
        [one] => format!("({one},)"),
        _ => format!("({})", v.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    }
}

/// MXNet's boolean attribute spelling.
pub(crate) fn bool_attr(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}
