//! Pooling forward on ResNet-50 v1's two pooling layers (224×224 input): the 3×3 stride-2
//! max pooling after the stem and the global average pooling before the classifier, at
//! batch 1 and 8, f32. Throughput is in input elements per second.
//!
//! `cargo bench -p mixnet-kernels --bench pool`

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mixnet_kernels::pool::{pool, PoolGeom, PoolKind};

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("resnet50_pool");
    group.measurement_time(Duration::from_secs(2)).sample_size(20);
    for batch in [1usize, 8] {
        let layers = [
            ("max3x3s2", PoolKind::Max, 64, [1, 112, 112], [1, 56, 56], [1, 3, 3], [1, 2, 2], [0, 1, 1]),
            (
                "global_avg",
                PoolKind::Avg { count_include_pad: true },
                2048,
                [1, 7, 7],
                [1, 1, 1],
                [1, 7, 7],
                [1, 1, 1],
                [0; 3],
            ),
        ];
        for (name, kind, channels, input, output, kernel, stride, pad) in layers {
            let g = PoolGeom { planes: batch * channels, input, output, kernel, stride, pad };
            let n_in = g.planes * input.iter().product::<usize>();
            let x: Vec<f32> = (0..n_in).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
            let mut y = vec![0.0f32; g.planes * output.iter().product::<usize>()];
            group.throughput(Throughput::Elements(n_in as u64));
            group.bench_with_input(BenchmarkId::new(name, format!("b{batch}")), &g, |b, g| {
                b.iter(|| pool(g, kind, &x, &mut y))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
