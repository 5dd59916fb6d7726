//! Special functions the kernels share (Cephes' definitions, as MXNet uses them).

/// The digamma function ψ (Cephes' `psi`): reflection below 0, recurrence up to 10, then
/// the asymptotic series.
pub fn digamma(mut x: f64) -> f64 {
    if x.is_nan() || x == f64::NEG_INFINITY {
        return f64::NAN;
    }
    let mut acc = 0.0;
    if x <= 0.0 {
        if x == x.floor() {
            return f64::NAN; // a pole
        }
        acc = -std::f64::consts::PI / (std::f64::consts::PI * x).tan();
        x = 1.0 - x;
    }
    while x < 10.0 {
        acc -= 1.0 / x;
        x += 1.0;
    }
    let f = 1.0 / (x * x);
    let series = f * (1.0 / 12.0 - f * (1.0 / 120.0 - f * (1.0 / 252.0 - f * (1.0 / 240.0 - f / 132.0))));
    acc + x.ln() - 0.5 / x - series
}

#[cfg(test)]
mod tests {
    use super::digamma;

    #[test]
    fn digamma_known_values() {
        let euler = 0.577_215_664_901_532_9;
        assert!((digamma(1.0) + euler).abs() < 1e-13);
        assert!((digamma(0.5) - (-euler - 2.0 * 2f64.ln())).abs() < 1e-13);
        assert!((digamma(10.0) - 2.251_752_589_066_721).abs() < 1e-13);
        // reflection: psi(1 - x) - psi(x) = pi cot(pi x)
        let x = -1.3f64;
        let lhs = digamma(1.0 - x) - digamma(x);
        assert!((lhs - std::f64::consts::PI / (std::f64::consts::PI * x).tan()).abs() < 1e-11);
        assert!(digamma(-2.0).is_nan());
    }
}
