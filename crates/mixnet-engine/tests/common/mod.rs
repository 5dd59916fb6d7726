//! Engines under test: every rule is checked on each of these.

#![allow(dead_code)]

use mixnet_engine::{Engine, NaiveEngine, ThreadedConfig, ThreadedEngine};

/// (label, engine) for each configuration: naive, threaded with and without inline
/// execution, and a wider pool.
pub fn engines() -> Vec<(&'static str, Box<dyn Engine>)> {
    vec![
        ("naive", Box::new(NaiveEngine::new())),
        ("threaded-1", Box::new(ThreadedEngine::new(ThreadedConfig { workers: 1, inline: true }))),
        ("threaded-2-noinline", Box::new(ThreadedEngine::new(ThreadedConfig { workers: 2, inline: false }))),
        ("threaded-4", Box::new(ThreadedEngine::new(ThreadedConfig { workers: 4, inline: true }))),
    ]
}

/// Only the threaded configurations (for rules about concurrency).
pub fn threaded(workers: usize, inline: bool) -> ThreadedEngine {
    ThreadedEngine::new(ThreadedConfig { workers, inline })
}
