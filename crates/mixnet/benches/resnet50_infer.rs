//! ResNet-50 v1 inference through Gluon layers (random weights, eval mode, 3×224×224), the
//! workload of `shared/peers/resnet_infer.py --model resnet50_v1`: MXNet's model-zoo
//! structure (BottleneckV1 with the stride on the first 1×1 convolution). Prints one JSON
//! line with the median (and min) milliseconds per forward pass.
//! `benches/peers/resnet.sh` runs it beside MXNet 1.9.1 and PyTorch.
//!
//! `--mode hybrid` (the default) hybridizes the network, as the peer script's MXNet modes
//! do: each Convolution → BatchNorm (→ ReLU) runs as one fused `_sg_conv`, the last of a
//! bottleneck taking in the residual and the ReLU after it, as MXNet's `--mode fused` does
//! with oneDNN. `--mode imperative` runs every layer on its own.
//!
//! `cargo bench -p mixnet --bench resnet50_infer [-- --batch N --iters N --warmup N --mode M --each 1]`
//! (warm-up 10 and 30 timed passes by default, as the peer script)

#[path = "common/args.rs"]
mod args;
use args::arg;

use mixnet::gluon::nn::{Activation, BatchNorm, Conv2D, Dense, GlobalAvgPool2D, MaxPool2D};
use mixnet::gluon::{Block, BlockBase, HybridSequential};
use mixnet::{NDArray, Result};

/// MXNet's `BottleneckV1`: 1×1 (stride) → 3×3 → 1×1 ×4, each with BatchNorm, plus a
/// projected shortcut when the shape changes.
struct Bottleneck {
    base: BlockBase,
    body: HybridSequential,
    downsample: Option<HybridSequential>,
}

impl Bottleneck {
    fn new(channels: usize, stride: usize, downsample: bool) -> Self {
        let base = BlockBase::new(None, "bottleneckv1");
        let _scope = base.name_scope();
        let mut body = HybridSequential::new();
        body.add(Conv2D::new(channels / 4, 1).strides(stride).use_bias(false));
        body.add(BatchNorm::new());
        body.add(Activation::new("relu"));
        body.add(Conv2D::new(channels / 4, 3).padding(1).use_bias(false));
        body.add(BatchNorm::new());
        body.add(Activation::new("relu"));
        body.add(Conv2D::new(channels, 1).use_bias(false));
        body.add(BatchNorm::new());
        let downsample = downsample.then(|| {
            let mut d = HybridSequential::new();
            d.add(Conv2D::new(channels, 1).strides(stride).use_bias(false));
            d.add(BatchNorm::new());
            d
        });
        drop(_scope);
        Bottleneck { base, body, downsample }
    }
}

impl Block for Bottleneck {
    fn base(&self) -> &BlockBase {
        &self.base
    }
    fn forward(&self, x: &NDArray) -> Result<NDArray> {
        let residual = match &self.downsample {
            Some(d) => d.call(x)?,
            None => x.clone(),
        };
        // relu(body(x) + residual), fused into the body's last convolution when hybridized.
        self.body.forward_residual(x, &residual, true)
    }
    fn children(&self) -> Vec<(String, &dyn Block)> {
        let mut v: Vec<(String, &dyn Block)> = vec![("body".into(), &self.body)];
        if let Some(d) = &self.downsample {
            v.push(("downsample".into(), d));
        }
        v
    }
    mixnet::impl_as_dyn!();
}

impl mixnet::gluon::HybridBlock for Bottleneck {}

fn resnet50() -> HybridSequential {
    let mut net = HybridSequential::new();
    net.add(Conv2D::new(64, 7).strides(2).padding(3).use_bias(false));
    net.add(BatchNorm::new());
    net.add(Activation::new("relu"));
    net.add(MaxPool2D::new(3).strides(2).padding(1));
    for (stage, (blocks, channels)) in [(3, 256), (4, 512), (6, 1024), (3, 2048)].into_iter().enumerate() {
        let stride = if stage == 0 { 1 } else { 2 };
        for i in 0..blocks {
            let (s, down) = if i == 0 { (stride, true) } else { (1, false) };
            net.add(Bottleneck::new(channels, s, down));
        }
    }
    net.add(GlobalAvgPool2D::new());
    net.add(Dense::new(1000));
    net
}

fn main() -> Result<()> {
    let (batch, warmup, iters) = (arg("--batch", 1), arg("--warmup", 10), arg("--iters", 30));
    let mode = arg("--mode", "hybrid".to_string());
    // `--each 1` prints every timed pass to stderr: how the VM's speed moves within a run.
    let each = arg("--each", 0) != 0;
    mixnet::random::seed(0)?;
    let net = resnet50();
    net.initialize(None, mixnet::cpu(0), false)?;
    net.hybridize(mode == "hybrid");
    let x: Vec<f32> = (0..batch * 3 * 224 * 224).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
    let x = NDArray::from_vec(x, vec![batch, 3, 224, 224])?;
    let mut times = Vec::with_capacity(iters);
    for i in 0..warmup + iters {
        let t = std::time::Instant::now();
        let y = net.call(&x)?;
        y.wait_to_read()?;
        if i >= warmup {
            times.push(t.elapsed().as_secs_f64() * 1e3);
            if each {
                eprint!("{:.1} ", times[times.len() - 1]);
            }
        }
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{{\"workload\": \"resnet_infer\", \"model\": \"resnet50_v1\", \"framework\": \"mixnet\", \"mode\": \"{mode}\", \"batch\": {batch}, \"iters\": {iters}, \"median_ms\": {:.2}, \"min_ms\": {:.2}}}",
        times[times.len() / 2],
        times[0]
    );
    Ok(())
}
