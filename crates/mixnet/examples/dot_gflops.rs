//! mixnet's side of `shared/peers/gemm.py`: `C = dot(A, B)` on n x n float32 through
//! `imperative::invoke` (engine included), median of `--repeats` blocks, one JSON line.
//!
//! `cargo run --release -p mixnet --example dot_gflops -- --size 1024`

#[path = "../benches/common/args.rs"]
mod args;

use std::time::Instant;

use args::arg;

use mixnet::{imperative, NDArray};

fn main() -> mixnet::Result<()> {
    let n: usize = arg("--size", 1024);
    let repeats: usize = arg("--repeats", 7);
    let flop = 2.0 * (n as f64).powi(3);
    // About 20 GFLOP per block (gemm.py moves ~40 GFLOP per run).
    let iters = ((2e10 / flop) as usize).clamp(3, 2000);
    let a = NDArray::from_vec((0..n * n).map(|i| (i % 101) as f32 * 0.01).collect::<Vec<_>>(), [n, n])?;
    let b = NDArray::from_vec((0..n * n).map(|i| (i % 89) as f32 * 0.02).collect::<Vec<_>>(), [n, n])?;
    let block = |count: usize| -> mixnet::Result<NDArray> {
        let mut c = imperative::invoke("dot", &[a.clone(), b.clone()], &[])?.remove(0);
        for _ in 1..count {
            c = imperative::invoke("dot", &[a.clone(), b.clone()], &[])?.remove(0);
        }
        c.wait_to_read()?;
        Ok(c)
    };
    block(2)?;
    let mut ms = Vec::new();
    for _ in 0..repeats {
        let t = Instant::now();
        block(iters)?;
        ms.push(t.elapsed().as_secs_f64() * 1e3 / iters as f64);
    }
    ms.sort_by(f64::total_cmp);
    let median = ms[ms.len() / 2];
    println!(
        "{{\"workload\": \"gemm\", \"framework\": \"mixnet\", \"size\": {n}, \"iters\": {iters}, \"median_ms\": {median:.4}, \"min_ms\": {:.4}, \"gflops\": {:.2}, \"gflops_best\": {:.2}}}",
        ms[0],
        flop / (median * 1e-3) / 1e9,
        flop / (ms[0] * 1e-3) / 1e9
    );
    Ok(())
}
