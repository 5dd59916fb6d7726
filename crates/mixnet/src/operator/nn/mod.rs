//! Neural-network operators, one module per MXNet operator family (`src/operator/nn` and
//! the legacy layers beside it).

pub mod activation;
pub mod batch_norm;
pub mod dropout;
pub(crate) mod kernel;
pub mod leaky_relu;
pub mod loss_output;
pub mod softmax;

use crate::op::Registry;

/// Register every nn operator.
pub(crate) fn register(r: &mut Registry) {
    activation::register(r);
    leaky_relu::register(r);
    softmax::register(r);
    loss_output::register(r);
    dropout::register(r);
    batch_norm::register(r);
}
