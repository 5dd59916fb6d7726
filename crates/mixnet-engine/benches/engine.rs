//! Engine dispatch cost: push->complete latency of an empty op on the inline path and
//! across threads, and throughput of 10^6 small ops as a dependent chain and a fan-out.
//!
//! `cargo bench -p mixnet-engine`

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mixnet_engine::{Engine, NaiveEngine, OpProps, ThreadedConfig, ThreadedEngine, Var};

fn empty() -> Result<(), String> {
    Ok(())
}

fn threaded(inline: bool) -> ThreadedEngine {
    ThreadedEngine::new(ThreadedConfig { workers: 1, inline })
}

fn latency(c: &mut Criterion) {
    let mut g = c.benchmark_group("push_to_complete");
    for (label, engine) in [("inline", threaded(true)), ("cross_thread", threaded(false))] {
        let e: &dyn Engine = &engine;
        let v = Var::new();
        g.bench_function(label, |b| {
            b.iter(|| {
                e.push_fn(empty, &[], &[v.clone()], OpProps::new("empty").light(true));
                e.wait_for_var(&v).unwrap();
            })
        });
    }
    let naive = NaiveEngine::new();
    let e: &dyn Engine = &naive;
    let v = Var::new();
    g.bench_function("naive", |b| {
        b.iter(|| {
            e.push_fn(empty, &[], &[v.clone()], OpProps::new("empty").light(true));
            e.wait_for_var(&v).unwrap();
        })
    });
    g.finish();
}

const N: u64 = 1_000_000;

/// Push `N` ops and wait for all of them; returns the elapsed time for `iters` rounds.
fn run_many(e: &dyn Engine, iters: u64, fan_out: bool) -> Duration {
    let src = Var::new();
    let lanes: Vec<Var> = (0..1024).map(|_| Var::new()).collect();
    let start = Instant::now();
    for _ in 0..iters {
        for i in 0..N as usize {
            if fan_out {
                // Every op reads one var and writes its own lane: 1024 independent chains.
                e.push_fn(
                    empty,
                    std::slice::from_ref(&src),
                    &lanes[i % 1024..i % 1024 + 1],
                    OpProps::new("f").light(true),
                );
            } else {
                // Every op reads and writes the same var: one long dependent chain.
                e.push_fn(
                    empty,
                    std::slice::from_ref(&src),
                    std::slice::from_ref(&src),
                    OpProps::new("c").light(true),
                );
            }
        }
        e.wait_all().unwrap();
    }
    start.elapsed()
}

fn throughput(c: &mut Criterion) {
    let mut g = c.benchmark_group("million_ops");
    g.sample_size(10).throughput(Throughput::Elements(N)).measurement_time(Duration::from_secs(8));
    for (path, inline) in [("inline", true), ("pool", false)] {
        for (shape, fan_out) in [("chain", false), ("fan_out", true)] {
            let engine = threaded(inline);
            g.bench_function(format!("{shape}/{path}"), |b| {
                b.iter_custom(|iters| run_many(&engine, iters, fan_out))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, latency, throughput);
criterion_main!(benches);
