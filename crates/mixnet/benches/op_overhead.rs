//! Eager dispatch cost of `c = a + b` on float32 vectors, the workload of
//! `shared/peers/op_overhead.py` (compare with PyTorch and numpy measured in the same run):
//! per op, through `invoke` by name and through the `+` operator, waiting once per block
//! of ops (throughput) and after every op (latency).
//!
//! `cargo bench -p mixnet --bench op_overhead`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use mixnet::{imperative, NDArray};

fn inputs(n: usize) -> (NDArray, NDArray) {
    let a: Vec<f32> = (0..n).map(|i| (i % 97) as f32 * 0.01).collect();
    let b: Vec<f32> = (0..n).map(|i| (i % 89) as f32 * 0.02).collect();
    (NDArray::from_vec(a, [n]).unwrap(), NDArray::from_vec(b, [n]).unwrap())
}

fn add(c: &mut Criterion) {
    let mut g = c.benchmark_group("a_plus_b");
    for n in [10usize, 1_000_000] {
        let (a, b) = inputs(n);
        g.bench_function(BenchmarkId::new("operator_async", n), |bench| {
            bench.iter_custom(|iters| {
                let start = std::time::Instant::now();
                let mut last = None;
                for _ in 0..iters {
                    last = Some((&a + &b).unwrap());
                }
                mixnet::waitall().unwrap();
                drop(last);
                start.elapsed()
            })
        });
        g.bench_function(BenchmarkId::new("invoke_by_name_async", n), |bench| {
            bench.iter_custom(|iters| {
                let start = std::time::Instant::now();
                for _ in 0..iters {
                    imperative::invoke("broadcast_add", &[a.clone(), b.clone()], &[]).unwrap();
                }
                mixnet::waitall().unwrap();
                start.elapsed()
            })
        });
        g.bench_function(BenchmarkId::new("operator_sync", n), |bench| {
            bench.iter(|| {
                let c = (&a + &b).unwrap();
                c.wait_to_read().unwrap();
                c
            })
        });
    }
    g.finish();
}

criterion_group!(benches, add);
criterion_main!(benches);
