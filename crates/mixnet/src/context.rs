//! Device contexts, as MXNet names them: `cpu(0)`, `gpu(1)`.

use std::fmt;

use crate::{Error, Result};

/// Kind of device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceType {
    Cpu,
    Gpu,
}

/// Where an array lives. `gpu(i)` is a valid value; allocating on it is an error until a
/// GPU backend exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Context {
    pub device_type: DeviceType,
    pub device_id: usize,
}

impl Context {
    pub const fn cpu(device_id: usize) -> Self {
        Context { device_type: DeviceType::Cpu, device_id }
    }
    pub const fn gpu(device_id: usize) -> Self {
        Context { device_type: DeviceType::Gpu, device_id }
    }
    /// MXNet's device type code in files (1 cpu, 2 gpu).
    pub const fn dev_type_code(self) -> i32 {
        match self.device_type {
            DeviceType::Cpu => 1,
            DeviceType::Gpu => 2,
        }
    }
    /// Fails for contexts mixnet cannot allocate on.
    pub fn check_available(self) -> Result<()> {
        match self.device_type {
            DeviceType::Cpu => Ok(()),
            DeviceType::Gpu => Err(Error::Unsupported(format!(
                "cannot allocate on {self}: this build of mixnet has no GPU backend (CPU only)"
            ))),
        }
    }
}

impl Default for Context {
    fn default() -> Self {
        Context::cpu(0)
    }
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.device_type {
            DeviceType::Cpu => write!(f, "cpu({})", self.device_id),
            DeviceType::Gpu => write!(f, "gpu({})", self.device_id),
        }
    }
}

/// `cpu(0)` etc., as in MXNet's `mx.cpu()`.
pub const fn cpu(device_id: usize) -> Context {
    Context::cpu(device_id)
}

/// `gpu(0)` etc.; a value only until a GPU backend exists.
pub const fn gpu(device_id: usize) -> Context {
    Context::gpu(device_id)
}
