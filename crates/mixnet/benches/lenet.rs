//! LeNet training step through eager `invoke` and autograd, the workload of
//! `shared/peers/cnn_train.py` (conv5x5(20) relu maxpool2, conv5x5(50) relu maxpool2,
//! dense500 relu, dense10; batch 64 of 1×28×28; softmax cross-entropy; SGD lr 0.1).
//! Prints one JSON line with the median (and min) milliseconds per step, synced with
//! `waitall` after every step as the peer script does. `benches/peers/lenet.sh` runs it
//! beside PyTorch.
//!
//! `cargo bench -p mixnet --bench lenet [-- --iters N --warmup N]`

#[path = "common/args.rs"]
mod args;
use args::arg;

use mixnet::optimizer::{Optimizer, SGD};
use mixnet::{autograd, imperative, NDArray};

fn op(name: &str, inputs: &[NDArray], attrs: &[(&str, &str)]) -> NDArray {
    imperative::invoke(name, inputs, attrs).unwrap().remove(0)
}

fn param(shape: &[usize], fan_in: usize, seed: u64) -> NDArray {
    let n: usize = shape.iter().product();
    let scale = (3.0 / fan_in as f64).sqrt();
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let v: Vec<f32> = (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (((s >> 33) as f64 / (1u64 << 31) as f64) * 2.0 - 1.0) as f32 * scale as f32
        })
        .collect();
    let x = NDArray::from_vec(v, shape.to_vec()).unwrap();
    x.attach_grad().unwrap();
    x
}

fn main() {
    let (warmup, iters, batch) = (arg("--warmup", 20), arg("--iters", 200), arg("--batch", 64));
    let x: Vec<f32> = (0..batch * 784).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
    let x = NDArray::from_vec(x, vec![batch, 1, 28, 28]).unwrap();
    let y: Vec<f32> = (0..batch).map(|i| ((i * 7) % 10) as f32).collect();
    let y = NDArray::from_vec(y, vec![batch]).unwrap();
    let params = [
        param(&[20, 1, 5, 5], 25, 1),
        param(&[20], 25, 2),
        param(&[50, 20, 5, 5], 500, 3),
        param(&[50], 500, 4),
        param(&[500, 800], 800, 5),
        param(&[500], 800, 6),
        param(&[10, 500], 500, 7),
        param(&[10], 500, 8),
    ];
    let mut sgd = SGD::new(0.1);
    let ones = NDArray::from_vec(vec![1f32; batch * 10], vec![batch, 10]).unwrap();
    let relu = [("act_type", "relu")];
    let pool = [("kernel", "(2, 2)"), ("stride", "(2, 2)"), ("pool_type", "max")];
    let mut step = || {
        let p = &params;
        let out = {
            let _rec = autograd::record(true);
            let h = op(
                "Convolution",
                &[x.clone(), p[0].clone(), p[1].clone()],
                &[("kernel", "(5, 5)"), ("num_filter", "20")],
            );
            let h = op("Pooling", &[op("Activation", &[h], &relu)], &pool);
            let h = op(
                "Convolution",
                &[h, p[2].clone(), p[3].clone()],
                &[("kernel", "(5, 5)"), ("num_filter", "50")],
            );
            let h = op("Pooling", &[op("Activation", &[h], &relu)], &pool);
            let h = op("FullyConnected", &[h, p[4].clone(), p[5].clone()], &[("num_hidden", "500")]);
            let h = op("Activation", &[h], &relu);
            let h = op("FullyConnected", &[h, p[6].clone(), p[7].clone()], &[("num_hidden", "10")]);
            op("SoftmaxOutput", &[h, y.clone()], &[("normalization", "batch")])
        };
        autograd::backward(&[out], &[ones.clone()]).unwrap();
        for (i, w) in p.iter().enumerate() {
            sgd.update(i, w, &w.grad().unwrap(), &[]).unwrap();
        }
        mixnet::waitall().unwrap();
    };
    for _ in 0..warmup {
        step();
    }
    let mut times: Vec<f64> = (0..iters)
        .map(|_| {
            let t = std::time::Instant::now();
            step();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "{{\"workload\": \"cnn_train\", \"framework\": \"mixnet\", \"mode\": \"eager\", \"batch\": {batch}, \"iters\": {iters}, \"median_ms\": {:.3}, \"min_ms\": {:.3}}}",
        times[times.len() / 2],
        times[0]
    );
}
