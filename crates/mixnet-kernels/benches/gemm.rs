//! Throughput of the gemm wrapper behind `dot`/`batch_dot`, in FLOP/s (criterion's
//! "elem/s" here counts 2·m·n·k floating-point operations), and the single- vs two-thread
//! crossover that sets `PARALLEL_MIN_MACS`.
//!
//! `cargo bench -p mixnet-kernels --bench gemm`

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mixnet_kernels::gemm::MatMul;

fn data(len: usize) -> Vec<f32> {
    (0..len).map(|i| (i % 97) as f32 / 97.0 - 0.5).collect()
}

fn square(c: &mut Criterion) {
    let mut g = c.benchmark_group("matmul_f32");
    g.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    for n in [256, 512, 1024, 2048] {
        for (name, trans_b) in [("nn", false), ("nt", true)] {
            let p = MatMul { m: n, n, k: n, trans_a: false, trans_b };
            let (a, b, mut out) = (data(n * n), data(n * n), vec![0.0f32; n * n]);
            g.throughput(Throughput::Elements(2 * p.macs() as u64));
            g.bench_with_input(BenchmarkId::new(name, n), &n, |bench, _| {
                bench.iter(|| p.run(&a, &b, &mut out))
            });
        }
    }
    g.finish();

    let mut g = c.benchmark_group("matmul_f64");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    let n = 1024;
    let p = MatMul { m: n, n, k: n, trans_a: false, trans_b: false };
    let (a, b, mut out) = (vec![0.5f64; n * n], vec![0.25f64; n * n], vec![0.0f64; n * n]);
    g.throughput(Throughput::Elements(2 * p.macs() as u64));
    g.bench_function(BenchmarkId::new("nn", n), |bench| bench.iter(|| p.run(&a, &b, &mut out)));
    g.finish();
}

/// One n×n×n product straight on the gemm crate with a forced parallelism.
fn raw(n: usize, a: &[f32], b: &[f32], out: &mut [f32], par: ::gemm::Parallelism) {
    assert!(a.len() == n * n && b.len() == n * n && out.len() == n * n);
    // SAFETY: a, b and out each hold n*n elements (asserted), read and written row-major
    // with row stride n; out is a unique borrow distinct from a and b.
    unsafe {
        ::gemm::gemm(
            n,
            n,
            n,
            out.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            n as isize,
            b.as_ptr(),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            par,
        )
    }
}

/// Small products on one thread and on both cores, to place `PARALLEL_MIN_MACS`; then
/// batches of small products (the wrapper splits the batch, not each product).
fn crossover(c: &mut Criterion) {
    let mut g = c.benchmark_group("crossover_f32");
    g.sample_size(30).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1));
    for n in [32, 64, 96, 112, 128, 160, 192, 256] {
        let (a, b, mut out) = (data(n * n), data(n * n), vec![0.0f32; n * n]);
        g.throughput(Throughput::Elements(2 * (n * n * n) as u64));
        for (name, par) in
            [("1thread", ::gemm::Parallelism::None), ("2threads", ::gemm::Parallelism::Rayon(2))]
        {
            g.bench_with_input(BenchmarkId::new(name, n), &n, |bench, &n| {
                bench.iter(|| raw(n, &a, &b, &mut out, par))
            });
        }
    }
    g.finish();

    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("thread pool");
    // Many small products (batch_dot of attention-sized blocks).
    let mut g = c.benchmark_group("batch_f32");
    g.sample_size(20).measurement_time(Duration::from_secs(2));
    let (batch, n) = (256, 32);
    let p = MatMul { m: n, n, k: n, trans_a: false, trans_b: true };
    let (a, b, mut out) = (data(batch * n * n), data(batch * n * n), vec![0.0f32; batch * n * n]);
    g.throughput(Throughput::Elements(2 * (batch * p.macs()) as u64));
    g.bench_function(BenchmarkId::new("256x32", "wrapper"), |bench| {
        bench.iter(|| p.run_batch(batch, &a, &b, &mut out))
    });
    g.bench_function(BenchmarkId::new("256x32", "1thread"), |bench| {
        bench.iter(|| one.install(|| p.run_batch(batch, &a, &b, &mut out)))
    });
    g.finish();
}

criterion_group!(benches, square, crossover);
criterion_main!(benches);
