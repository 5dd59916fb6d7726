//! 10,000 record/backward iterations leave the pooled storage where it was. Alone in its
//! test binary: the pool is process-wide, so other tests would disturb the figures.

use mixnet::autograd;
use mixnet::{imperative, NDArray};

fn mul(a: &NDArray, b: &NDArray) -> NDArray {
    imperative::invoke("elemwise_mul", &[a.clone(), b.clone()], &[]).unwrap().remove(0)
}

#[test]
fn memory_stays_flat_over_many_iterations() {
    let x = NDArray::from_slice(&[0.5f32; 64], [64]).unwrap();
    x.attach_grad().unwrap();
    let step = || {
        let y = {
            let _r = autograd::record(true);
            (&mul(&x, &x) + &x).unwrap()
        };
        autograd::backward(&[y], &[]).unwrap();
    };
    for _ in 0..10 {
        step();
    }
    mixnet::waitall().unwrap();
    let before = mixnet::storage::stats(mixnet::Context::cpu(0));
    for _ in 0..10_000 {
        step();
    }
    mixnet::waitall().unwrap();
    let after = mixnet::storage::stats(mixnet::Context::cpu(0));
    assert!(
        after.bytes_in_use + after.bytes_pooled <= before.bytes_in_use + before.bytes_pooled + (64 << 10),
        "{before:?} -> {after:?}"
    );
    assert_eq!(x.grad().unwrap().to_vec::<f32>().unwrap()[0], 2.0);
}
