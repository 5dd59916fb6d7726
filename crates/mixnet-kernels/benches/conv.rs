//! Convolution forward on the distinct convolution shapes of ResNet-50 v1 (224×224 input),
//! batch 1 and 8, as a hybridized network runs them (`_sg_conv`): f32, each with a
//! BatchNorm's scale and shift and a ReLU applied as it is stored
//! (`conv::conv_forward_mapped`), and 3×3s with their Winograd filters made once
//! (`conv::winograd_filters`), as the network keeps them. Throughput is reported in elements/s where one
//! element is one flop (2 per multiply-add), so criterion's "Gelem/s" reads as GFLOP/s.
//! `total_b{1,8}` runs every convolution of the network once, weighted by how often each
//! shape occurs (53 convolutions).
//!
//! `cargo bench -p mixnet-kernels --bench conv`

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mixnet_kernels::conv::{conv_forward_mapped, winograd_filters, winograd_filters_len, ConvGeom};
use mixnet_kernels::gemm::RowAffine;

/// (in channels, in size, out channels, kernel, stride, pad, occurrences in the network)
const RESNET50: &[(usize, usize, usize, usize, usize, usize, usize)] = &[
    (3, 224, 64, 7, 2, 3, 1),
    (64, 56, 64, 1, 1, 0, 1),
    (64, 56, 64, 3, 1, 1, 3),
    (64, 56, 256, 1, 1, 0, 4),
    (256, 56, 64, 1, 1, 0, 2),
    (256, 56, 128, 1, 2, 0, 1),
    (128, 28, 128, 3, 1, 1, 4),
    (128, 28, 512, 1, 1, 0, 4),
    (256, 56, 512, 1, 2, 0, 1),
    (512, 28, 128, 1, 1, 0, 3),
    (512, 28, 256, 1, 2, 0, 1),
    (256, 14, 256, 3, 1, 1, 6),
    (256, 14, 1024, 1, 1, 0, 6),
    (512, 28, 1024, 1, 2, 0, 1),
    (1024, 14, 256, 1, 1, 0, 5),
    (1024, 14, 512, 1, 2, 0, 1),
    (512, 7, 512, 3, 1, 1, 3),
    (512, 7, 2048, 1, 1, 0, 3),
    (1024, 14, 2048, 1, 2, 0, 1),
    (2048, 7, 512, 1, 1, 0, 2),
];

struct Case {
    geom: ConvGeom,
    x: Vec<f32>,
    w: Vec<f32>,
    /// The filters from a 64-byte boundary, as the network's arrays start.
    filters: Option<(Vec<f32>, std::ops::Range<usize>)>,
    scale: Vec<f32>,
    shift: Vec<f32>,
    y: Vec<f32>,
}

fn case(batch: usize, &(c, size, f, k, s, p, _): &(usize, usize, usize, usize, usize, usize, usize)) -> Case {
    let out = (size + 2 * p - k) / s + 1;
    let geom = ConvGeom {
        batch,
        groups: 1,
        in_channels: c,
        out_channels: f,
        input: [1, size, size],
        output: [1, out, out],
        kernel: [1, k, k],
        stride: [1, s, s],
        pad: [0, p, p],
        dilate: [1; 3],
    };
    let x = (0..geom.input_len()).map(|i| (i % 13) as f32 * 0.1 - 0.6).collect();
    let w: Vec<f32> = (0..geom.weight_len()).map(|i| (i % 7) as f32 * 0.01 - 0.03).collect();
    let filters = winograd_filters_len(f, c, geom.kernel, 1).map(|len| {
        let mut u = vec![0.0; len + 16];
        let at = u.as_ptr().align_offset(64);
        winograd_filters(f, c, &w, &mut u[at..at + len]);
        (u, at..at + len)
    });
    let (scale, shift) = (vec![0.9; f], vec![0.1; f]);
    Case { geom, x, w, filters, scale, shift, y: vec![0.0; geom.output_len()] }
}

fn run(c: &mut Case) {
    let post = RowAffine { scale: &c.scale, shift: &c.shift, sum: None, relu: true };
    let filters = c.filters.as_ref().map(|(u, at)| &u[at.clone()]);
    conv_forward_mapped(&c.geom, &c.x, &c.w, filters, None, &post, &mut c.y);
}

fn resnet50(cr: &mut Criterion) {
    for batch in [1usize, 8] {
        let mut g = cr.benchmark_group(format!("resnet50_conv_b{batch}"));
        g.sample_size(10).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1));
        let mut cases: Vec<(Case, usize)> = RESNET50.iter().map(|s| (case(batch, s), s.6)).collect();
        for (i, (c, _)) in cases.iter_mut().enumerate() {
            let (ch, size, f, k, s, ..) = RESNET50[i];
            g.throughput(Throughput::Elements(2 * c.geom.macs() as u64));
            g.bench_function(BenchmarkId::from_parameter(format!("{ch}x{size}-{f}-k{k}s{s}")), |b| {
                b.iter(|| run(c))
            });
        }
        let flops: usize = cases.iter().map(|(c, n)| 2 * c.geom.macs() * n).sum();
        g.throughput(Throughput::Elements(flops as u64));
        g.bench_function(BenchmarkId::from_parameter("total"), |b| {
            b.iter(|| {
                for (c, n) in cases.iter_mut() {
                    for _ in 0..*n {
                        run(c);
                    }
                }
            })
        });
        g.finish();
    }
}

criterion_group!(benches, resnet50);
criterion_main!(benches);
