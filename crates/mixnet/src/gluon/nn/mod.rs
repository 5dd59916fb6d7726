//! Layers (MXNet's `gluon.nn`).

mod activations;
mod basic_layers;
mod conv_layers;
mod transformer;

pub use super::block::{HybridLambda, HybridSequential, Lambda, Sequential};
pub use activations::{Activation, LeakyReLU, PReLU, Swish, ELU, GELU, SELU};
pub use basic_layers::{
    BatchNorm, Dense, Dropout, Embedding, Flatten, GroupNorm, Identity, InstanceNorm, LayerNorm,
};
pub use conv_layers::{
    AvgPool1D, AvgPool2D, AvgPool3D, Conv, Conv1D, Conv1DTranspose, Conv2D, Conv2DTranspose, Conv3D,
    Conv3DTranspose, Dims, GlobalAvgPool1D, GlobalAvgPool2D, GlobalAvgPool3D, GlobalMaxPool1D,
    GlobalMaxPool2D, GlobalMaxPool3D, MaxPool1D, MaxPool2D, MaxPool3D, Pool,
};
pub use transformer::{MultiHeadAttention, TransformerEncoder, TransformerEncoderLayer};
