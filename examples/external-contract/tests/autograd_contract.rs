//! The autograd contract calls (attach_grad, autograd::record, autograd::backward, grad)
//! from outside the workspace's library crates.

use mixnet::{autograd, imperative, NDArray};

#[test]
fn gradient_of_a_known_function() {
    // f(x) = sum(x^2 * 3): df/dx = 6x.
    let x = NDArray::from_vec(vec![1.0f32, -2.0, 0.5], [3]).unwrap();
    x.attach_grad().unwrap();
    let f = {
        let _r = autograd::record(true);
        let sq = imperative::invoke("square", std::slice::from_ref(&x), &[]).unwrap().remove(0);
        let s = imperative::invoke("_mul_scalar", &[sq], &[("scalar", "3")]).unwrap().remove(0);
        imperative::invoke("sum", &[s], &[]).unwrap().remove(0)
    };
    assert_eq!(f.to_f64_vec().unwrap(), [15.75]);
    autograd::backward(&[f], &[]).unwrap();
    let g = x.grad().unwrap();
    assert_eq!(g.shape().to_vec(), [3]);
    assert_eq!(g.dtype().to_string(), "float32");
    assert_eq!(g.to_f64_vec().unwrap(), [6.0, -12.0, 3.0]);
}

#[test]
fn gradient_descent_fits_a_line() {
    let points: Vec<(f32, f32)> = (0..8).map(|i| i as f32 * 0.25).map(|x| (x, 2.0 * x + 1.0)).collect();
    let (w, b, loss) = external_contract::fit_line(&points, 400, 0.2).unwrap();
    assert!((w - 2.0).abs() < 1e-2 && (b - 1.0).abs() < 1e-2, "w {w} b {b}");
    assert!(loss < 1e-4, "loss {loss}");
}
