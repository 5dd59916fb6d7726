//! Per-context resources that operators request (MXNet's `ResourceManager`). Each has an
//! engine variable that requesting ops list as written, so ops sharing a resource
//! serialize on it. CPU scratch space needs no var: kernels allocate their own.

use std::sync::OnceLock;

use mixnet_engine::Var;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::Context;

/// Seed of every generator until `mixnet::random::seed` is called, so a fresh process
/// draws the same numbers each run.
pub const DEFAULT_SEED: u64 = 0;

/// A context's random generator and the engine variable that orders its users.
pub struct RandomResource {
    var: Var,
    rng: Mutex<StdRng>,
}

impl RandomResource {
    fn new() -> Self {
        RandomResource { var: Var::new(), rng: Mutex::new(StdRng::seed_from_u64(DEFAULT_SEED)) }
    }

    /// The variable an op drawing from this generator must list as written.
    pub fn var(&self) -> &Var {
        &self.var
    }

    /// Draw from the generator. Called from kernels of ops that request
    /// [`crate::op::Resource::Random`]: the engine runs those one at a time in push order,
    /// so the lock is uncontended and the stream is the same on every engine.
    pub fn with_rng<R>(&self, f: impl FnOnce(&mut StdRng) -> R) -> R {
        f(&mut self.rng.lock())
    }

    /// Restart the stream (called from an engine op that writes [`RandomResource::var`]).
    pub(crate) fn reseed(&self, seed: u64) {
        *self.rng.lock() = StdRng::seed_from_u64(seed);
    }
}

/// The random resource of `ctx` (one for all CPU contexts, one for all GPUs).
pub fn random(ctx: Context) -> &'static RandomResource {
    static CPU: OnceLock<RandomResource> = OnceLock::new();
    static GPU: OnceLock<RandomResource> = OnceLock::new();
    match ctx.device_type {
        crate::context::DeviceType::Cpu => CPU.get_or_init(RandomResource::new),
        crate::context::DeviceType::Gpu => GPU.get_or_init(RandomResource::new),
    }
}

/// The variable guarding `ctx`'s random generator.
pub fn random_var(ctx: Context) -> &'static Var {
    random(ctx).var()
}
