//! Per-context resources that operators request (MXNet's `ResourceManager`). Each has an
//! engine variable that requesting ops list as written, so ops sharing a resource
//! serialize on it. CPU scratch space needs no var: kernels allocate their own.

use std::sync::OnceLock;

use mixnet_engine::Var;

use crate::Context;

/// The variable guarding `ctx`'s random generator (one for all CPU contexts).
pub fn random_var(ctx: Context) -> &'static Var {
    static CPU: OnceLock<Var> = OnceLock::new();
    static GPU: OnceLock<Var> = OnceLock::new();
    match ctx.device_type {
        crate::context::DeviceType::Cpu => CPU.get_or_init(Var::new),
        crate::context::DeviceType::Gpu => GPU.get_or_init(Var::new),
    }
}
