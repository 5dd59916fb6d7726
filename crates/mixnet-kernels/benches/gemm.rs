//! Throughput of the gemm wrapper behind `dot`/`batch_dot`, in FLOP/s (criterion's
//! "elem/s" here counts 2·m·n·k floating-point operations), against the gemm crate's own
//! threading, the single- vs two-thread crossover that sets `PARALLEL_MIN_MACS`, and a
//! dense layer at batch 1.
//!
//! `cargo bench -p mixnet-kernels --bench gemm`

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mixnet_kernels::gemm::MatMul;
use rayon::prelude::*;

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
    // The gemm crate's own threading on the same product, for the ratio.
    let n = 1024;
    let (a, b, mut out) = (data(n * n), data(n * n), vec![0.0f32; n * n]);
    g.throughput(Throughput::Elements(2 * (n * n * n) as u64));
    g.bench_with_input(BenchmarkId::new("nn_gemm_rayon", n), &n, |bench, &n| {
        bench.iter(|| raw(n, &a, &b, &mut out, ::gemm::Parallelism::Rayon(2)))
    });
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

/// Rows of an n×n×n product straight on the gemm crate: `out` (m×n) = `a` (m×n) · `b` (n×n).
fn raw(n: usize, a: &[f32], b: &[f32], out: &mut [f32], par: ::gemm::Parallelism) {
    let m = out.len() / n;
    assert!(a.len() == m * n && b.len() == n * n && out.len() == m * n);
    // SAFETY: a and out hold m*n elements and b n*n (asserted), read and written row-major
    // with row stride n; out is a unique borrow distinct from a and b.
    unsafe {
        ::gemm::gemm(
            m,
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

/// Small products on one thread, split in two row blocks as the wrapper splits large ones,
/// and on the gemm crate's own threading: where two threads start to win places
/// `PARALLEL_MIN_MACS`. Then batches of small products (the wrapper splits the batch).
fn crossover(c: &mut Criterion) {
    let mut g = c.benchmark_group("crossover_f32");
    g.sample_size(30).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1));
    for n in [64, 96, 128, 160, 192, 256] {
        let (a, b, mut out) = (data(n * n), data(n * n), vec![0.0f32; n * n]);
        g.throughput(Throughput::Elements(2 * (n * n * n) as u64));
        g.bench_with_input(BenchmarkId::new("1thread", n), &n, |bench, &n| {
            bench.iter(|| raw(n, &a, &b, &mut out, ::gemm::Parallelism::None))
        });
        g.bench_with_input(BenchmarkId::new("2row_blocks", n), &n, |bench, &n| {
            let half = n.div_ceil(2) * n;
            bench.iter(|| {
                out.par_chunks_mut(half)
                    .zip(a.par_chunks(half))
                    .for_each(|(out, a)| raw(n, a, &b, out, ::gemm::Parallelism::None))
            })
        });
        g.bench_with_input(BenchmarkId::new("gemm_rayon", n), &n, |bench, &n| {
            bench.iter(|| raw(n, &a, &b, &mut out, ::gemm::Parallelism::Rayon(2)))
        });
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

/// A dense layer at batch 1 (ResNet-50's classifier, 2048 -> 1000: `x · Wᵀ + b`), where
/// the weight is read once: dot products down its rows rather than a packed product.
fn dense_b1(c: &mut Criterion) {
    let mut g = c.benchmark_group("dense_b1");
    g.sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    let (k, n) = (2048, 1000);
    let p = MatMul { m: 1, n, k, trans_a: false, trans_b: true };
    let (x, w, bias, mut out) = (data(k), data(n * k), data(n), vec![0.0f32; n]);
    g.throughput(Throughput::Elements(2 * p.macs() as u64));
    g.bench_function(BenchmarkId::new("nt", format!("{k}x{n}")), |bench| {
        bench.iter(|| p.run_with_bias(&x, &w, &mut out, &bias, true))
    });
    g.finish();
}

criterion_group!(benches, square, crossover, dense_b1);
criterion_main!(benches);
