//! The one table from operator names (and aliases) to their definitions.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use super::{Attrs, Operator};
use crate::Result;

/// Builds a configured operator from its attributes. `name` is the canonical name, so one
/// builder can serve a family of ops (`_plus_scalar`, `_minus_scalar`, ...).
pub type BuildFn = fn(name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>>;

/// One registered operator.
#[derive(Clone, Copy)]
pub struct OpDef {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    pub build: BuildFn,
}

/// Name -> definition, for canonical names and aliases alike.
pub struct Registry {
    defs: Vec<OpDef>,
    by_name: HashMap<&'static str, usize>,
    /// Names registered twice (a programming error the registry test reports).
    conflicts: Vec<&'static str>,
}

impl Registry {
    fn new() -> Self {
        Registry { defs: Vec::new(), by_name: HashMap::new(), conflicts: Vec::new() }
    }

    /// Add an operator under its name and aliases.
    pub fn register(&mut self, def: OpDef) {
        let idx = self.defs.len();
        for n in std::iter::once(def.name).chain(def.aliases.iter().copied()) {
            if self.by_name.insert(n, idx).is_some() {
                self.conflicts.push(n);
            }
        }
        self.defs.push(def);
    }

    /// Register `names` (canonical, aliases) all built by `build`.
    pub fn register_family(&mut self, build: BuildFn, names: &[(&'static str, &'static [&'static str])]) {
        for &(name, aliases) in names {
            self.register(OpDef { name, aliases, build });
        }
    }

    /// Look up by canonical name or alias.
    pub fn get(&self, name: &str) -> Option<&OpDef> {
        self.by_name.get(name).map(|&i| &self.defs[i])
    }

    /// Every operator, in registration order.
    pub fn ops(&self) -> &[OpDef] {
        &self.defs
    }

    /// Names registered more than once.
    pub fn conflicts(&self) -> &[&'static str] {
        &self.conflicts
    }
}

/// The process-wide registry, built on first use from every operator module.
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut r = Registry::new();
        crate::operator::register_all(&mut r);
        r
    })
}
