//! Neural-network operators, one module per MXNet operator family (`src/operator/nn` and
//! the legacy layers beside it).

pub mod activation;
pub mod convolution;
pub mod fully_connected;
pub(crate) mod kernel;
pub mod leaky_relu;

use crate::op::Registry;

/// Register every nn operator.
pub(crate) fn register(r: &mut Registry) {
    activation::register(r);
    leaky_relu::register(r);
    fully_connected::register(r);
    convolution::register(r);
}
