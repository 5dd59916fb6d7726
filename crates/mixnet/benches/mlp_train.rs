//! MLP training step through Gluon, the workload of `shared/peers/mlp_train.py`: Dense 784-256
//! relu, 256-256 relu, 256-10; batch 64; softmax cross-entropy; plain SGD lr 0.1; one
//! `waitall` per step as the peer script syncs. Prints one JSON line with the median (and min)
//! milliseconds per step. `benches/peers/mlp.sh` runs it beside PyTorch and MXNet.
//!
//! `cargo bench -p mixnet --bench mlp_train [-- --iters N --warmup N]`

#[path = "common/args.rs"]
mod args;
use args::arg;

use std::sync::Arc;

use mixnet::gluon::loss::{Loss, SoftmaxCrossEntropyLoss};
use mixnet::gluon::nn::Dense;
use mixnet::gluon::{Block, HybridSequential, Trainer};
use mixnet::initializer::Xavier;
use mixnet::{autograd, NDArray};

fn main() -> mixnet::Result<()> {
    let (warmup, iters, batch) = (arg("--warmup", 50), arg("--iters", 500), arg("--batch", 64));
    mixnet::random::seed(0)?;
    let x: Vec<f32> = (0..batch * 784).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
    let x = NDArray::from_vec(x, vec![batch, 784])?;
    let y: Vec<f32> = (0..batch).map(|i| ((i * 7) % 10) as f32).collect();
    let y = NDArray::from_vec(y, vec![batch])?;
    let mut net = HybridSequential::new();
    net.add(Dense::new(256).activation("relu"));
    net.add(Dense::new(256).activation("relu"));
    net.add(Dense::new(10));
    net.initialize(Some(Arc::new(Xavier::default())), mixnet::cpu(0), false)?;
    net.call(&x)?;
    let mut trainer = Trainer::with_optimizer(&net.collect_params()?, "sgd", &[("learning_rate", 0.1)])?;
    let loss_fn = SoftmaxCrossEntropyLoss::new();
    let mut step = || -> mixnet::Result<f64> {
        let loss = {
            let _rec = autograd::record(true);
            loss_fn.call(&net.call(&x)?, &y)?
        };
        autograd::backward(&[loss.clone()], &[])?;
        trainer.step(batch, false)?;
        mixnet::waitall()?;
        Ok(0.0)
    };
    for _ in 0..warmup {
        step()?;
    }
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = std::time::Instant::now();
        step()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{{\"workload\": \"mlp_train\", \"framework\": \"mixnet\", \"mode\": \"eager\", \"batch\": {batch}, \"iters\": {iters}, \"median_ms\": {:.4}, \"min_ms\": {:.4}}}",
        times[times.len() / 2],
        times[0]
    );
    Ok(())
}
