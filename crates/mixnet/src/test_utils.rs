//! Helpers for testing operators (MXNet's `mx.test_utils`): a numeric gradient check by
//! central finite differences in float64, as `check_numeric_gradient` does, and a small
//! seeded generator so tests stay deterministic.

use crate::{autograd, imperative, DType, Error, NDArray, Result};

/// SplitMix64: a tiny deterministic generator for test data.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }
}

/// Settings of [`check_numeric_gradient`].
#[derive(Clone, Debug)]
pub struct NumericGradient {
    /// Finite-difference step.
    pub eps: f64,
    pub rtol: f64,
    pub atol: f64,
    /// Seed of the random head gradients.
    pub seed: u64,
    /// Head gradients of ones instead of random ones (for ops whose gradient ignores the
    /// head by definition, such as `make_loss`).
    pub ones_heads: bool,
}

impl Default for NumericGradient {
    fn default() -> Self {
        NumericGradient { eps: 1e-6, rtol: 1e-5, atol: 1e-7, seed: 0x5EED, ones_heads: false }
    }
}

fn fresh(x: &NDArray) -> Result<NDArray> {
    NDArray::from_bytes(&x.to_bytes()?, x.shape().clone(), x.dtype(), x.context())
}

/// `Σ_k sum(out_k * head_k)` of `op` on `inputs`, in f64 on the host.
fn projected(op: &str, attrs: &[(&str, &str)], inputs: &[NDArray], heads: &[Vec<f64>]) -> Result<f64> {
    let outs = imperative::invoke(op, inputs, attrs)?;
    let mut total = 0.0;
    for (o, h) in outs.iter().zip(heads) {
        total += o.to_f64_vec()?.iter().zip(h).map(|(a, b)| a * b).sum::<f64>();
    }
    Ok(total)
}

/// Compare the gradient `op` defines with central finite differences of
/// `L = Σ_k sum(out_k * head_k)` (random heads), for every float64 input in `check` (all
/// float64 inputs when `None`). Inputs should be float64 and away from the op's kinks.
/// Returns the number of gradient elements compared; an `Err` names the op, input and
/// element that disagree.
pub fn check_numeric_gradient(
    op: &str,
    attrs: &[(&str, &str)],
    inputs: &[NDArray],
    check: Option<&[usize]>,
    opts: &NumericGradient,
) -> Result<usize> {
    let check: Vec<usize> = match check {
        Some(c) => c.to_vec(),
        None => (0..inputs.len()).filter(|&i| inputs[i].dtype() == DType::F64).collect(),
    };
    if let Some(&i) = check.iter().find(|&&i| i >= inputs.len() || inputs[i].dtype() != DType::F64) {
        return Err(Error::op(op, format!("numeric gradient: input {i} is not a float64 input")));
    }
    // Heads: random for floating outputs, zero for integer ones (as MXNet's tests do).
    let outs = imperative::invoke(op, inputs, attrs)?;
    let mut rng = Rng::new(opts.seed);
    let heads: Vec<Vec<f64>> = outs
        .iter()
        .map(|o| {
            (0..o.size())
                .map(|_| match (o.dtype().is_float(), opts.ones_heads) {
                    (false, _) => 0.0,
                    (true, true) => 1.0,
                    (true, false) => rng.range(-1.0, 1.0),
                })
                .collect()
        })
        .collect();
    let head_arrays = outs
        .iter()
        .zip(&heads)
        .map(|(o, h)| {
            let a = NDArray::from_slice(h, o.shape().clone())?;
            if o.dtype() == DType::F64 {
                Ok(a)
            } else {
                imperative::invoke("Cast", &[a], &[("dtype", o.dtype().name())]).map(|mut v| v.remove(0))
            }
        })
        .collect::<Result<Vec<_>>>()?;

    // Analytic: attach_grad on fresh copies, record, backward with the heads.
    let vars = inputs.iter().map(fresh).collect::<Result<Vec<_>>>()?;
    for &i in &check {
        vars[i].attach_grad()?;
    }
    let recorded = {
        let _r = autograd::record(true);
        imperative::invoke(op, &vars, attrs)?
    };
    autograd::backward(&recorded, &head_arrays)?;

    let mut compared = 0;
    for &i in &check {
        let analytic = vars[i].grad().ok_or_else(|| Error::op(op, "no gradient buffer"))?.to_f64_vec()?;
        let base = inputs[i].to_f64_vec()?;
        for j in 0..base.len() {
            let at = |delta: f64| -> Result<f64> {
                let mut v = base.clone();
                v[j] += delta;
                let mut args = inputs.to_vec();
                args[i] = NDArray::from_slice(&v, inputs[i].shape().clone())?;
                projected(op, attrs, &args, &heads)
            };
            let numeric = (at(opts.eps)? - at(-opts.eps)?) / (2.0 * opts.eps);
            let a = analytic[j];
            let tol = opts.atol + opts.rtol * a.abs().max(numeric.abs());
            if (a - numeric).abs() > tol || a.is_nan() != numeric.is_nan() {
                return Err(Error::op(
                    op,
                    format!(
                        "numeric gradient mismatch at input {i} element {j} (value {}): analytic {a}, numeric {numeric}",
                        base[j]
                    ),
                ));
            }
            compared += 1;
        }
    }
    Ok(compared)
}
