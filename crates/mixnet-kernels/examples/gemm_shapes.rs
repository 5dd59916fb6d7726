//! GFLOP/s of single f32 products of the shapes a training step runs (default: the dense
//! layers of the 784-256-256-10 MLP at batch 64), median of many calls on both cores.
//!
//! `cargo run --release -p mixnet-kernels --example gemm_shapes [-- m,n,k,ta,tb ...]`

use mixnet_kernels::gemm::MatMul;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let shapes: Vec<String> = if args.is_empty() {
        [
            "64,256,784,0,1",
            "64,256,256,0,1",
            "256,784,64,1,0",
            "256,256,64,1,0",
            "64,256,256,0,0",
            "64,10,256,0,1",
        ]
        .map(String::from)
        .to_vec()
    } else {
        args
    };
    for s in shapes {
        let v: Vec<usize> = s.split(',').map(|x| x.parse().expect("m,n,k,ta,tb")).collect();
        let p = MatMul { m: v[0], n: v[1], k: v[2], trans_a: v[3] == 1, trans_b: v[4] == 1 };
        let a: Vec<f32> = (0..p.m * p.k).map(|i| (i % 13) as f32 * 0.1).collect();
        let b: Vec<f32> = (0..p.k * p.n).map(|i| (i % 7) as f32 * 0.1).collect();
        let mut c = vec![0.0f32; p.m * p.n];
        let reps = (2e8 / (p.macs() as f64)).clamp(10.0, 20000.0) as usize;
        let mut times = Vec::with_capacity(reps);
        for _ in 0..reps {
            let t = std::time::Instant::now();
            p.run(&a, &b, &mut c);
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        let med = times[reps / 2];
        println!(
            "{s:>18}: {:8.2} us  {:6.1} GFLOP/s (best {:6.1})",
            med * 1e6,
            2.0 * p.macs() as f64 / med / 1e9,
            2.0 * p.macs() as f64 / times[0] / 1e9
        );
    }
}
