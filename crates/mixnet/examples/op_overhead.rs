//! mixnet's side of `shared/peers/op_overhead.py`: `c = a + b` on float32 vectors, blocks of
//! `--iters` ops (default 10,000), median over `--repeats` blocks, one JSON line.
//! `--mode async` waits once per block (throughput), `--mode sync` after every op.
//!
//! `cargo run --release -p mixnet --example op_overhead -- --size 10 --mode async`

#[path = "../benches/common/args.rs"]
mod args;

use std::time::Instant;

use args::arg;

use mixnet::NDArray;

fn main() -> mixnet::Result<()> {
    let n: usize = arg("--size", 10);
    let iters: usize = arg("--iters", 10000);
    let repeats: usize = arg("--repeats", 5);
    let mode: String = arg("--mode", "async".to_string());
    let a = NDArray::from_vec((0..n).map(|i| (i % 97) as f32 * 0.01).collect::<Vec<_>>(), [n])?;
    let b = NDArray::from_vec((0..n).map(|i| (i % 89) as f32 * 0.02).collect::<Vec<_>>(), [n])?;
    let block = |count: usize| -> mixnet::Result<NDArray> {
        let mut c = (&a + &b)?;
        for _ in 1..count {
            c = (&a + &b)?;
            if mode == "sync" {
                c.wait_to_read()?;
            }
        }
        mixnet::waitall()?;
        Ok(c)
    };
    block(1000)?;
    let mut us = Vec::new();
    let mut last = None;
    for _ in 0..repeats {
        let t = Instant::now();
        last = Some(block(iters)?);
        us.push(t.elapsed().as_secs_f64() * 1e6 / iters as f64);
    }
    let check: f64 = last.map(|c| c.to_f64_vec()).transpose()?.unwrap_or_default().iter().sum();
    us.sort_by(f64::total_cmp);
    let median = us[us.len() / 2];
    println!(
        "{{\"workload\": \"op_overhead\", \"framework\": \"mixnet\", \"mode\": \"{mode}\", \"size\": {n}, \"iters\": {iters}, \"median_us\": {median:.3}, \"min_us\": {:.3}, \"max_us\": {:.3}, \"gbytes_per_s\": {:.2}, \"check\": {check:.3}}}",
        us[0],
        us[us.len() - 1],
        12.0 * n as f64 / (median * 1e-6) / 1e9
    );
    Ok(())
}
