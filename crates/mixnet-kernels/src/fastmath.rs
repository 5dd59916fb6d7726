//! Branch-free `exp` for f32 that the compiler vectorizes inside plain loops (libm's `expf`
//! is a call per element). The reduction and polynomial run in f64, so the result rounded
//! to f32 is the correctly rounded `e^x` in practice; glibc's `expf` (what MXNet calls) is
//! within one ulp of it and equal for all but about 0.05% of inputs.

/// `e^x` for f32, vectorizable: `2^n · e^r` with `n = round(x / ln 2)`, `|r| ≤ ln 2 / 2`,
/// `e^r` by its Taylor series to degree 10 (truncation error below 1e-12).
#[inline(always)]
pub fn expf(x: f32) -> f32 {
    const LOG2E: f64 = std::f64::consts::LOG2_E;
    const LN2: f64 = std::f64::consts::LN_2;
    // Rounds to nearest when added and subtracted (|v| < 2^51).
    const ROUND: f64 = 6_755_399_441_055_744.0;
    // e^-104 and e^89 are already 0 and +inf in f32; the clamp keeps 2^n a normal f64.
    let xd = (x as f64).clamp(-104.0, 89.0);
    let n = (xd * LOG2E + ROUND) - ROUND;
    let r = xd - n * LN2;
    let mut p = 1.0 / 3_628_800.0;
    for c in [362_880.0, 40_320.0, 5_040.0, 720.0, 120.0, 24.0, 6.0, 2.0, 1.0, 1.0] {
        p = p * r + 1.0 / c;
    }
    let y = (p * f64::from_bits(((n as i64 + 1023) as u64) << 52)) as f32;
    if x.is_nan() {
        x
    } else {
        y
    }
}

#[cfg(test)]
mod tests {
    use super::expf;

    #[test]
    fn correctly_rounded_and_within_an_ulp_of_libm() {
        let (mut x, mut differ, mut total) = (-104.0f32, 0usize, 0usize);
        while x < 89.0 {
            let (got, libm) = (expf(x), x.exp());
            // The f64 exponential rounded to f32 is the correctly rounded value here.
            assert_eq!(got, (x as f64).exp() as f32, "expf({x})");
            if got != libm {
                differ += 1;
                assert!(
                    (got.to_bits() as i64 - libm.to_bits() as i64).abs() <= 1,
                    "expf({x}) vs libm {libm}"
                );
            }
            total += 1;
            x += 0.000_731;
        }
        assert!(differ * 1000 < total, "{differ} of {total} differ from libm");
        assert_eq!(expf(0.0), 1.0);
        assert_eq!(expf(-200.0), 0.0);
        assert_eq!(expf(f32::NEG_INFINITY), 0.0);
        assert_eq!(expf(100.0), f32::INFINITY);
        assert!(expf(f32::NAN).is_nan());
    }
}
