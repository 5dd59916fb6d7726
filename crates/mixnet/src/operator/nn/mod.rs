//! Neural-network layers (MXNet's `src/operator/nn`): one module per operator.

pub mod convolution;
pub mod deconvolution;
pub mod fully_connected;
pub mod pooling;

use crate::op::Registry;

/// Register every layer of this directory.
pub(crate) fn register(r: &mut Registry) {
    fully_connected::register(r);
    convolution::register(r);
    deconvolution::register(r);
    pooling::register(r);
}
