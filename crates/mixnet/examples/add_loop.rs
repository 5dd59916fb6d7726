//! Profiling aid: many small `a + b` ops (run under perf or callgrind).
fn main() {
    let a = mixnet::NDArray::from_vec(vec![1.0f32; 10], [10]).unwrap();
    let b = mixnet::NDArray::from_vec(vec![2.0f32; 10], [10]).unwrap();
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(2_000_000);
    let t = std::time::Instant::now();
    for _ in 0..n {
        let _c = (&a + &b).unwrap();
    }
    mixnet::waitall().unwrap();
    println!("{:.1} ns/op", t.elapsed().as_nanos() as f64 / n as f64);
}
