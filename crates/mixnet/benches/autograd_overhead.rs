//! The cost of recording: ns per 10-element `elemwise_mul` through `invoke`, without
//! `record`, under `record` with constant inputs (nothing to tape), and under `record`
//! with a variable input (one tape node per call); and one recorded op plus its backward.
//!
//! `cargo bench -p mixnet --bench autograd_overhead`

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use mixnet::{autograd, imperative, NDArray};

fn overhead(c: &mut Criterion) {
    let n = 10;
    let a = NDArray::from_vec((0..n).map(|i| i as f32 * 0.1).collect::<Vec<_>>(), [n]).unwrap();
    let b = NDArray::from_vec((0..n).map(|i| 1.0 + i as f32).collect::<Vec<_>>(), [n]).unwrap();
    let v = NDArray::from_vec((0..n).map(|i| i as f32 * 0.3).collect::<Vec<_>>(), [n]).unwrap();
    v.attach_grad().unwrap();
    let op = imperative::create("elemwise_mul", &[]).unwrap();
    let mut g = c.benchmark_group("autograd_overhead_10");
    g.bench_function("invoke", |bench| {
        bench.iter(|| imperative::invoke_operator(&op, &[a.clone(), b.clone()]).unwrap())
    });
    g.bench_function("invoke_recording_constants", |bench| {
        let _r = autograd::record(true);
        bench.iter(|| imperative::invoke_operator(&op, &[a.clone(), b.clone()]).unwrap())
    });
    g.bench_function("invoke_recording_variable", |bench| {
        let _r = autograd::record(true);
        bench.iter(|| imperative::invoke_operator(&op, &[v.clone(), b.clone()]).unwrap())
    });
    g.bench_function("record_and_backward", |bench| {
        bench.iter(|| {
            let y = {
                let _r = autograd::record(true);
                imperative::invoke_operator(&op, &[v.clone(), b.clone()]).unwrap()
            };
            autograd::backward(&y, &[]).unwrap();
        })
    });
    g.finish();
    mixnet::waitall().unwrap();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = overhead
}
criterion_main!(benches);
