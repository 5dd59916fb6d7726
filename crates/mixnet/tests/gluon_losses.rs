//! Gluon losses against values computed by hand from MXNet's formulas.

use mixnet::gluon::loss::{HuberLoss, Loss, PoissonNLLLoss};
use mixnet::NDArray;

fn arr(v: &[f32], shape: &[usize]) -> NDArray {
    NDArray::from_vec(v.to_vec(), shape.to_vec()).unwrap()
}

fn close(a: &[f32], b: &[f64]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((*x as f64 - y).abs() < 1e-5, "{a:?} vs {b:?}");
    }
}

#[test]
fn huber_is_quadratic_inside_rho_and_linear_outside() {
    let pred = arr(&[0.0, 0.0, 0.0, 0.0], &[2, 2]);
    let label = arr(&[0.5, -3.0, 2.0, 0.1], &[2, 2]);
    let l = HuberLoss::new().call(&pred, &label).unwrap().to_vec::<f32>().unwrap();
    // rho = 1: 0.5·0.25 = 0.125 and 3 - 0.5 = 2.5 -> mean 1.3125; 2 - 0.5 = 1.5 and 0.005.
    close(&l, &[1.3125, 0.7525]);
    let l = HuberLoss::new().rho(4.0).call(&pred, &label).unwrap().to_vec::<f32>().unwrap();
    close(&l, &[(0.25 / 8.0 + 9.0 / 8.0) / 2.0, (4.0 / 8.0 + 0.01 / 8.0) / 2.0]);
}

#[test]
fn poisson_nll_means_over_everything() {
    let pred = arr(&[0.0, 1.0, 2.0, -1.0], &[2, 2]);
    let target = arr(&[1.0, 0.0, 3.0, 2.0], &[2, 2]);
    let l = PoissonNLLLoss::new().call(&pred, &target).unwrap();
    assert_eq!(l.shape().dims(), [1]);
    let want: f64 = [(0.0f64, 1.0f64), (1.0, 0.0), (2.0, 3.0), (-1.0, 2.0)]
        .iter()
        .map(|(p, t)| p.exp() - t * p)
        .sum::<f64>()
        / 4.0;
    close(&l.to_vec::<f32>().unwrap(), &[want]);
    // Rates instead of log-rates, with Stirling's term where target > 1; zero targets stay finite.
    let rates = arr(&[1.0, 0.5, 2.0, 3.0], &[2, 2]);
    let l = PoissonNLLLoss::new().from_logits(false).compute_full(true).call(&rates, &target).unwrap();
    let stirling =
        |t: f64| if t > 1.0 { t * t.ln() - t + 0.5 * (2.0 * std::f64::consts::PI * t).ln() } else { 0.0 };
    let want: f64 = [(1.0f64, 1.0f64), (0.5, 0.0), (2.0, 3.0), (3.0, 2.0)]
        .iter()
        .map(|&(p, t)| p - t * (p + 1e-8).ln() + stirling(t))
        .sum::<f64>()
        / 4.0;
    close(&l.to_vec::<f32>().unwrap(), &[want]);
}
