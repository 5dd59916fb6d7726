//! Activation layers (MXNet's `gluon.nn.activations`).
#![allow(clippy::upper_case_acronyms)]

use std::sync::Arc;

use crate::gluon::block::{Block, BlockBase, HybridBlock};
use crate::gluon::{op, Parameter};
use crate::initializer::{Constant, Initializer};
use crate::{NDArray, Result};

/// Elementwise activation by name: `relu`, `sigmoid`, `tanh`, `softrelu`, `softsign`
/// (MXNet's `nn.Activation`; its prefix is the activation's name, `relu0_`).
pub struct Activation {
    base: BlockBase,
    act_type: String,
}

impl Activation {
    pub fn new(act_type: &str) -> Self {
        Activation { base: BlockBase::new(None, act_type), act_type: act_type.to_string() }
    }
}

impl Block for Activation {
    fn base(&self) -> &BlockBase {
        &self.base
    }
    fn forward(&self, x: &NDArray) -> Result<NDArray> {
        op("Activation", &[x.clone()], &[("act_type", &self.act_type)])
    }
    fn describe(&self) -> String {
        format!("Activation({})", self.act_type)
    }
    fn fusion_part(&self) -> Option<crate::gluon::block::FusionPart<'_>> {
        (self.act_type == "relu").then_some(crate::gluon::block::FusionPart::Relu)
    }
    crate::impl_as_dyn!();
}
impl HybridBlock for Activation {}

macro_rules! leaky_variant {
    ($(#[$doc:meta])* $name:ident, $hint:literal, $act:literal, $field:ident : $default:expr) => {
        $(#[$doc])*
        pub struct $name {
            base: BlockBase,
            $field: f64,
        }
        impl $name {
            pub fn new($field: f64) -> Self {
                $name { base: BlockBase::new(None, $hint), $field }
            }
        }
        impl Default for $name {
            fn default() -> Self {
                Self::new($default)
            }
        }
        impl Block for $name {
            fn base(&self) -> &BlockBase {
                &self.base
            }
            fn forward(&self, x: &NDArray) -> Result<NDArray> {
                let slope = self.$field.to_string();
                op("LeakyReLU", &[x.clone()], &[("act_type", $act), ("slope", &slope)])
            }
            crate::impl_as_dyn!();
        }
        impl HybridBlock for $name {}
    };
}

leaky_variant!(
    /// `max(x, alpha·x)` (MXNet's `nn.LeakyReLU(alpha)`).
    LeakyReLU, "leakyrelu", "leaky", alpha: 0.01
);
leaky_variant!(
    /// Exponential linear unit (MXNet's `nn.ELU(alpha=1.0)`).
    ELU, "elu", "elu", alpha: 1.0
);

/// Scaled ELU (MXNet's `nn.SELU`).
pub struct SELU {
    base: BlockBase,
}
impl SELU {
    pub fn new() -> Self {
        SELU { base: BlockBase::new(None, "selu") }
    }
}
impl Default for SELU {
    fn default() -> Self {
        Self::new()
    }
}
impl Block for SELU {
    fn base(&self) -> &BlockBase {
        &self.base
    }
    fn forward(&self, x: &NDArray) -> Result<NDArray> {
        op("LeakyReLU", &[x.clone()], &[("act_type", "selu")])
    }
    crate::impl_as_dyn!();
}
impl HybridBlock for SELU {}

/// Gaussian error linear unit (MXNet's `nn.GELU`, erf form).
pub struct GELU {
    base: BlockBase,
}
impl GELU {
    pub fn new() -> Self {
        GELU { base: BlockBase::new(None, "gelu") }
    }
}
impl Default for GELU {
    fn default() -> Self {
        Self::new()
    }
}
impl Block for GELU {
    fn base(&self) -> &BlockBase {
        &self.base
    }
    fn forward(&self, x: &NDArray) -> Result<NDArray> {
        op("LeakyReLU", &[x.clone()], &[("act_type", "gelu")])
    }
    crate::impl_as_dyn!();
}
impl HybridBlock for GELU {}

/// Leaky ReLU with a learned slope per channel (MXNet's `nn.PReLU(alpha_initializer=
/// Constant(0.25), in_channels=1)`).
pub struct PReLU {
    base: BlockBase,
    alpha: Parameter,
}
impl PReLU {
    pub fn new() -> Self {
        Self::with_channels(1)
    }
    pub fn with_channels(in_channels: usize) -> Self {
        let base = BlockBase::new(None, "prelu");
        let alpha = base.param("alpha", &[in_channels]).with_init(Some(Arc::new(Constant::new(0.25))));
        PReLU { base, alpha }
    }
    pub fn alpha_initializer(mut self, init: Arc<dyn Initializer>) -> Self {
        self.alpha = self.alpha.with_init(Some(init));
        self
    }
}
impl Default for PReLU {
    fn default() -> Self {
        Self::new()
    }
}
impl Block for PReLU {
    fn base(&self) -> &BlockBase {
        &self.base
    }
    fn forward(&self, x: &NDArray) -> Result<NDArray> {
        op("LeakyReLU", &[x.clone(), self.alpha.data()?], &[("act_type", "prelu")])
    }
    fn params(&self) -> Vec<(String, Parameter)> {
        vec![("alpha".into(), self.alpha.clone())]
    }
    crate::impl_as_dyn!();
}
impl HybridBlock for PReLU {}

/// `x · sigmoid(beta·x)` (MXNet's `nn.Swish(beta=1.0)`).
pub struct Swish {
    base: BlockBase,
    beta: f64,
}
impl Swish {
    pub fn new(beta: f64) -> Self {
        Swish { base: BlockBase::new(None, "swish"), beta }
    }
}
impl Default for Swish {
    fn default() -> Self {
        Self::new(1.0)
    }
}
impl Block for Swish {
    fn base(&self) -> &BlockBase {
        &self.base
    }
    fn forward(&self, x: &NDArray) -> Result<NDArray> {
        let beta = self.beta.to_string();
        let bx = op("_mul_scalar", &[x.clone()], &[("scalar", &beta)])?;
        let s = op("sigmoid", &[bx], &[])?;
        op("elemwise_mul", &[x.clone(), s], &[])
    }
    crate::impl_as_dyn!();
}
impl HybridBlock for Swish {}
