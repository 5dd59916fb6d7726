//! Neural-network operators, one module per MXNet operator family (`src/operator/nn` and
//! the legacy layers beside it).

pub mod activation;
pub mod adaptive_pooling;
pub mod attention;
pub mod batch_norm;
pub mod bilinear_resize;
pub mod convolution;
pub mod correlation;
pub mod crop;
pub mod ctc_loss;
pub mod deconvolution;
pub mod dropout;
pub mod embedding;
pub mod fully_connected;
pub mod fused_conv;
pub mod im2col;
pub(crate) mod kernel;
pub mod leaky_relu;
pub mod loss_output;
pub mod lrn;
pub mod normalization;
pub mod pooling;
pub mod pooling_v1;
pub mod rnn;
pub mod roi_align;
pub mod roi_pooling;
pub mod sequence;
pub mod softmax;
pub mod spatial_transformer;
pub mod upsampling;

use crate::op::Registry;

/// Register every nn operator.
pub(crate) fn register(r: &mut Registry) {
    activation::register(r);
    leaky_relu::register(r);
    fully_connected::register(r);
    convolution::register(r);
    correlation::register(r);
    deconvolution::register(r);
    fused_conv::register(r);
    pooling::register(r);
    pooling_v1::register(r);
    softmax::register(r);
    loss_output::register(r);
    dropout::register(r);
    batch_norm::register(r);
    normalization::register(r);
    lrn::register(r);
    sequence::register(r);
    embedding::register(r);
    upsampling::register(r);
    rnn::register(r);
    ctc_loss::register(r);
    attention::register(r);
    im2col::register(r);
    adaptive_pooling::register(r);
    bilinear_resize::register(r);
    crop::register(r);
    spatial_transformer::register(r);
    roi_pooling::register(r);
    roi_align::register(r);
}
