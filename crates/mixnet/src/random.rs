//! Seeding the generators behind the random operators (MXNet's `mx.random.seed`).

use crate::context::DeviceType;
use crate::{Context, Result};

/// Reseed every context's generator. The reseed is an engine op ordered after every
/// random op already pushed, so `seed(s)` followed by the same calls gives the same
/// numbers on every engine.
pub fn seed(seed: u64) -> Result<()> {
    seed_context(seed, Context { device_type: DeviceType::Cpu, device_id: 0 })?;
    seed_context(seed, Context { device_type: DeviceType::Gpu, device_id: 0 })
}

/// Reseed the generator of one context (MXNet's `mx.random.seed(s, ctx)`).
pub fn seed_context(seed: u64, ctx: Context) -> Result<()> {
    let res = crate::resource::random(ctx);
    let props = mixnet_engine::OpProps::new("_random_seed").light(true);
    let reseed = move || {
        res.reseed(seed);
        Ok::<(), crate::Error>(())
    };
    mixnet_engine::get().push_fn(reseed, &[], &[res.var().clone()], props);
    Ok(())
}
