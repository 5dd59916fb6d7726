//! Connectionist temporal classification loss (MXNet's `CTCLoss`, warp-ctc's algorithm) in
//! log space, f64: the loss of one sequence is `-log p(label | x)` under a softmax over the
//! alphabet at each step, and its gradient with respect to the (pre-softmax) activations is
//! `softmax(x_t) - posterior_t` from the forward-backward recursions.

fn logsumexp(a: f64, b: f64) -> f64 {
    if a == f64::NEG_INFINITY {
        return b;
    }
    if b == f64::NEG_INFINITY {
        return a;
    }
    let m = a.max(b);
    m + ((a - m).exp() + (b - m).exp()).ln()
}

/// Loss and gradient of one sequence: `x` is `steps × alphabet` activations (row `t` at
/// `x[t * stride..][..alphabet]`), `label` the target without blanks. Writes the gradient
/// rows of the first `steps` steps into `grad` (same layout) when given. Returns the loss
/// (`inf` when no alignment fits, with a zero gradient).
pub fn ctc_sequence(
    x: &[f64],
    stride: usize,
    steps: usize,
    alphabet: usize,
    label: &[usize],
    blank: usize,
    grad: Option<&mut [f64]>,
) -> f64 {
    // Log-softmax of every step.
    let mut y = vec![0.0; steps * alphabet];
    for t in 0..steps {
        let row = &x[t * stride..t * stride + alphabet];
        let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        for k in 0..alphabet {
            y[t * alphabet + k] = row[k] - lse;
        }
    }
    let s_len = 2 * label.len() + 1;
    let sym = |s: usize| if s.is_multiple_of(2) { blank } else { label[s / 2] };
    let skip = |s: usize| s >= 2 && sym(s) != blank && sym(s) != sym(s - 2);
    let ninf = f64::NEG_INFINITY;
    let mut alpha = vec![ninf; steps * s_len];
    let mut beta = vec![ninf; steps * s_len];
    if steps > 0 {
        alpha[0] = y[blank];
        if s_len > 1 {
            alpha[1] = y[sym(1)];
        }
        for t in 1..steps {
            for s in 0..s_len {
                let mut a = alpha[(t - 1) * s_len + s];
                if s >= 1 {
                    a = logsumexp(a, alpha[(t - 1) * s_len + s - 1]);
                }
                if skip(s) {
                    a = logsumexp(a, alpha[(t - 1) * s_len + s - 2]);
                }
                alpha[t * s_len + s] = a + y[t * alphabet + sym(s)];
            }
        }
        let last = steps - 1;
        beta[last * s_len + s_len - 1] = y[last * alphabet + blank];
        if s_len > 1 {
            beta[last * s_len + s_len - 2] = y[last * alphabet + sym(s_len - 2)];
        }
        for t in (0..last).rev() {
            for s in 0..s_len {
                let mut b = beta[(t + 1) * s_len + s];
                if s + 1 < s_len {
                    b = logsumexp(b, beta[(t + 1) * s_len + s + 1]);
                }
                if s + 2 < s_len && skip(s + 2) {
                    b = logsumexp(b, beta[(t + 1) * s_len + s + 2]);
                }
                beta[t * s_len + s] = b + y[t * alphabet + sym(s)];
            }
        }
    }
    let log_p = if steps == 0 {
        if label.is_empty() {
            0.0
        } else {
            ninf
        }
    } else {
        let end = (steps - 1) * s_len;
        let p = alpha[end + s_len - 1];
        if s_len > 1 {
            logsumexp(p, alpha[end + s_len - 2])
        } else {
            p
        }
    };
    if let Some(grad) = grad {
        for t in 0..steps {
            let row = &mut grad[t * stride..t * stride + alphabet];
            if log_p == ninf {
                row.fill(0.0);
                continue;
            }
            let mut post = vec![ninf; alphabet];
            for s in 0..s_len {
                let k = sym(s);
                // α and β both include y_t(k): remove one.
                let g = alpha[t * s_len + s] + beta[t * s_len + s] - y[t * alphabet + k];
                post[k] = logsumexp(post[k], g);
            }
            for k in 0..alphabet {
                row[k] = y[t * alphabet + k].exp() - (post[k] - log_p).exp();
            }
        }
    }
    -log_p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_step_single_label() {
        // One step, label [1]: p = softmax(x)[1].
        let x = [0.5, 1.5, -0.5];
        let mut g = [0.0; 3];
        let loss = ctc_sequence(&x, 3, 1, 3, &[1], 0, Some(&mut g));
        let z: f64 = x.iter().map(|v| v.exp()).sum();
        assert!((loss + (x[1].exp() / z).ln()).abs() < 1e-12);
        assert!((g[1] - (x[1].exp() / z - 1.0)).abs() < 1e-12);
    }
}
