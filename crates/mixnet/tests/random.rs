//! Sampling operators: moments and chi-square goodness of fit on fixed seeds (as MXNet's
//! `test_random.py` checks them), attributes and their errors, and one stream per seed
//! whichever engine runs the ops.

use std::sync::Mutex;

use mixnet::imperative::invoke;
use mixnet::{DType, NDArray};

/// Tests reseed the one process-wide generator: run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn draw(op: &str, attrs: &[(&str, &str)]) -> NDArray {
    invoke(op, &[], attrs).unwrap_or_else(|e| panic!("{op}: {e}")).remove(0)
}

fn moments(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    (mean, var)
}

fn check_moments(name: &str, v: &[f64], mean: f64, var: f64) {
    let (m, s2) = moments(v);
    let n = v.len() as f64;
    // Five standard errors of the mean; 10% on the variance.
    assert!((m - mean).abs() < 5.0 * (var / n).sqrt() + 1e-9, "{name}: mean {m}, expected {mean}");
    assert!((s2 - var).abs() < 0.1 * var + 1e-9, "{name}: variance {s2}, expected {var}");
}

const N: &str = "(20000,)";

#[test]
fn scalar_distributions_have_their_moments() {
    let _s = serial();
    mixnet::random::seed(42).unwrap();
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], f64, f64);
    let cases: &[Case] = &[
        ("_random_uniform", &[("low", "-2"), ("high", "3")], 0.5, 25.0 / 12.0),
        ("uniform", &[], 0.5, 1.0 / 12.0),
        ("_random_normal", &[("loc", "1.5"), ("scale", "2")], 1.5, 4.0),
        ("_random_gamma", &[("alpha", "2.5"), ("beta", "0.5")], 1.25, 0.625),
        ("_random_gamma", &[("alpha", "0.5"), ("beta", "2")], 1.0, 2.0),
        ("_random_exponential", &[("lam", "4")], 0.25, 1.0 / 16.0),
        ("_random_poisson", &[("lam", "3.5")], 3.5, 3.5),
        ("_random_poisson", &[("lam", "40")], 40.0, 40.0),
        ("_random_negative_binomial", &[("k", "3"), ("p", "0.4")], 4.5, 11.25),
        ("_random_generalized_negative_binomial", &[("mu", "2"), ("alpha", "0.5")], 2.0, 4.0),
        ("_random_randint", &[("low", "-3"), ("high", "7")], 1.5, 8.25),
    ];
    for (op, attrs, mean, var) in cases {
        let mut a = attrs.to_vec();
        a.push(("shape", N));
        let x = draw(op, &a);
        let want = if *op == "_random_randint" { DType::I32 } else { DType::F32 };
        assert_eq!((x.shape().dims(), x.dtype()), (&[20000][..], want), "{op}");
        check_moments(&format!("{op} {attrs:?}"), &x.to_f64_vec().unwrap(), *mean, *var);
    }
}

/// Pearson's chi-square statistic of `counts` against `probs`.
fn chi_square(counts: &[usize], probs: &[f64]) -> f64 {
    let n: usize = counts.iter().sum();
    counts.iter().zip(probs).map(|(&c, &p)| (c as f64 - n as f64 * p).powi(2) / (n as f64 * p)).sum()
}

#[test]
fn chi_square_fits() {
    let _s = serial();
    mixnet::random::seed(7).unwrap();
    // Uniform in 10 buckets (9 degrees of freedom: the 99.9% point is 27.9).
    let u = draw("_random_uniform", &[("shape", N)]).to_f64_vec().unwrap();
    let mut c = vec![0; 10];
    for x in &u {
        assert!((0.0..1.0).contains(x));
        c[(x * 10.0) as usize] += 1;
    }
    assert!(chi_square(&c, &[0.1; 10]) < 27.9, "{c:?}");
    // Normal over the buckets cut at the standard quantiles of 1/8 steps.
    let cuts = [-1.1503, -0.6745, -0.3186, 0.0, 0.3186, 0.6745, 1.1503];
    let z = draw("_random_normal", &[("shape", N), ("dtype", "float64")]);
    assert_eq!(z.dtype(), DType::F64);
    let mut c = vec![0; 8];
    for x in z.to_f64_vec().unwrap() {
        c[cuts.iter().filter(|&&q| x > q).count()] += 1;
    }
    assert!(chi_square(&c, &[0.125; 8]) < 24.3, "{c:?}"); // 7 d.o.f.
                                                          // Multinomial with given probabilities.
    let p = [0.1f32, 0.2, 0.3, 0.4];
    let probs = NDArray::from_slice(&p, [4]).unwrap();
    let s = invoke("_sample_multinomial", &[probs], &[("shape", N)]).unwrap().remove(0);
    assert_eq!((s.shape().dims(), s.dtype()), (&[20000][..], DType::I32));
    let mut c = vec![0; 4];
    for x in s.to_f64_vec().unwrap() {
        c[x as usize] += 1;
    }
    assert!(chi_square(&c, &p.map(f64::from)) < 16.3, "{c:?}"); // 3 d.o.f.
}

#[test]
fn per_element_parameters() {
    let _s = serial();
    mixnet::random::seed(3).unwrap();
    let mu = NDArray::from_slice(&[0.0f32, 10.0], [2]).unwrap();
    let sigma = NDArray::from_slice(&[1.0f32, 0.5], [2]).unwrap();
    let x = invoke("_sample_normal", &[mu, sigma], &[("shape", "(100, 100)")]).unwrap().remove(0);
    assert_eq!(x.shape().dims(), &[2, 100, 100]);
    let v = x.to_f64_vec().unwrap();
    check_moments("normal row 0", &v[..10000], 0.0, 1.0);
    check_moments("normal row 1", &v[10000..], 10.0, 0.25);
    let lam = NDArray::from_slice(&[1.0f64, 20.0], [2]).unwrap();
    let p = invoke("sample_poisson", &[lam], &[("shape", "(10000,)")]).unwrap().remove(0);
    assert_eq!(p.dtype(), DType::F32, "dtype defaults to float32 whatever the parameters");
    let v = p.to_f64_vec().unwrap();
    check_moments("poisson 1", &v[..10000], 1.0, 1.0);
    check_moments("poisson 20", &v[10000..], 20.0, 20.0);
    // No shape: one draw per parameter.
    let lo = NDArray::from_slice(&[0.0f32, 5.0, 9.0], [3]).unwrap();
    let hi = NDArray::from_slice(&[1.0f32, 6.0, 10.0], [3]).unwrap();
    let u = invoke("_sample_uniform", &[lo, hi], &[]).unwrap().remove(0).to_f64_vec().unwrap();
    assert!(
        u.len() == 3
            && (0.0..1.0).contains(&u[0])
            && (5.0..6.0).contains(&u[1])
            && (9.0..10.0).contains(&u[2])
    );
}

#[test]
fn like_shuffle_and_multinomial_prob() {
    let _s = serial();
    mixnet::random::seed(5).unwrap();
    let data = NDArray::from_slice(&[0.0f64; 6], [2, 3]).unwrap();
    let x = invoke("_random_normal_like", &[data.clone()], &[("loc", "3")]).unwrap().remove(0);
    assert_eq!((x.shape().dims(), x.dtype()), (&[2, 3][..], DType::F64));
    let rows: Vec<f32> = (0..50).flat_map(|i| [i as f32, i as f32 + 0.5]).collect();
    let a = NDArray::from_slice(&rows, [50, 2]).unwrap();
    let s = invoke("shuffle", &[a], &[]).unwrap().remove(0).to_vec::<f32>().unwrap();
    let mut firsts: Vec<f32> = s
        .chunks(2)
        .map(|r| {
            assert_eq!(r[1], r[0] + 0.5, "rows move whole");
            r[0]
        })
        .collect();
    assert_ne!(firsts, (0..50).map(|i| i as f32).collect::<Vec<_>>());
    firsts.sort_by(f32::total_cmp);
    assert_eq!(firsts, (0..50).map(|i| i as f32).collect::<Vec<_>>());
    let probs = NDArray::from_slice(&[0.5f32, 0.5, 0.0, 1.0], [2, 2]).unwrap();
    let out = invoke("_sample_multinomial", &[probs], &[("shape", "3"), ("get_prob", "True")]).unwrap();
    assert_eq!(out[0].shape().dims(), &[2, 3]);
    let idx = out[0].to_f64_vec().unwrap();
    assert_eq!(&idx[3..], &[1.0; 3]);
    let lp = out[1].to_f64_vec().unwrap();
    assert!(lp[..3].iter().all(|&l| (l - 0.5f64.ln()).abs() < 1e-6) && lp[3..].iter().all(|&l| l == 0.0));
}

#[test]
fn attribute_errors() {
    for (op, attrs, want) in [
        ("_random_uniform", vec![("low", "2"), ("high", "1"), ("shape", "(2,)")], "low"),
        ("_random_normal", vec![("scale", "0"), ("shape", "(2,)")], "scale"),
        ("_random_uniform", vec![], "shape"),
        ("_random_uniform", vec![("shape", "(2,)"), ("dtype", "int32")], "dtype"),
        ("_random_randint", vec![("shape", "(2,)"), ("high", "3")], "low"),
        ("_random_randint", vec![("low", "3"), ("high", "3"), ("shape", "(2,)")], "high"),
        ("_random_gamma", vec![("alpha", "-1"), ("shape", "(2,)")], "alpha"),
    ] {
        let e = invoke(op, &[], &attrs).unwrap_err().to_string();
        assert!(e.contains(op) && e.contains(want), "{op} {attrs:?}: {e}");
    }
    let a = NDArray::from_slice(&[1.0f32], [1]).unwrap();
    let b = NDArray::from_slice(&[1.0f32, 2.0], [2]).unwrap();
    let e = invoke("_sample_uniform", &[a, b], &[]).unwrap_err().to_string();
    assert!(e.contains("_sample_uniform"), "{e}");
}

/// Draw a fixed sequence after seeding; printed by the child processes of the next test.
fn stream() -> Vec<f64> {
    mixnet::random::seed(1234).unwrap();
    let mut v = draw("_random_uniform", &[("shape", "(5,)")]).to_f64_vec().unwrap();
    // A large op (queued on the pool with the threaded engine) between small ones.
    let big = draw("_random_normal", &[("shape", "(100000,)")]);
    v.extend(draw("_random_poisson", &[("lam", "3"), ("shape", "(5,)")]).to_f64_vec().unwrap());
    v.extend(&big.to_f64_vec().unwrap()[99995..]);
    v.extend(
        draw("_random_randint", &[("low", "0"), ("high", "1000"), ("shape", "(5,)")]).to_f64_vec().unwrap(),
    );
    v
}

#[test]
fn emit_stream_for_parent() {
    if std::env::var_os("MIXNET_TEST_EMIT_STREAM").is_none() {
        return;
    }
    let _s = serial();
    println!("STREAM {:?}", stream());
}

#[test]
fn same_seed_same_stream_on_both_engines() {
    let run = |engine: &str| {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "emit_stream_for_parent", "--nocapture", "--test-threads=1"])
            .env("MIXNET_TEST_EMIT_STREAM", "1")
            .env("MIXNET_ENGINE_TYPE", engine)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let at = text.find("STREAM").unwrap_or_else(|| panic!("{engine}: {text}"));
        text[at..].lines().next().unwrap_or_default().to_string()
    };
    let naive = run("NaiveEngine");
    let threaded = run("ThreadedEngine");
    assert_eq!(naive, threaded);
    // And in this process, twice.
    let _s = serial();
    assert_eq!(stream(), stream());
    assert_eq!(format!("STREAM {:?}", stream()), naive);
}

#[test]
fn unique_zipfian_rows_are_distinct_and_log_uniform() {
    let _s = serial();
    mixnet::random::seed(11).unwrap();
    let out = invoke("_sample_unique_zipfian", &[], &[("range_max", "50"), ("shape", "(200, 20)")]).unwrap();
    let (s, tries) = (out[0].to_vec::<i64>().unwrap(), out[1].to_vec::<i64>().unwrap());
    assert_eq!((out[0].shape().dims(), out[1].shape().dims()), (&[200, 20][..], &[200][..]));
    assert_eq!((out[0].dtype(), out[1].dtype()), (DType::I64, DType::I64));
    for (row, &t) in s.chunks(20).zip(&tries) {
        let set: std::collections::HashSet<_> = row.iter().collect();
        assert_eq!(set.len(), 20, "{row:?}");
        assert!(row.iter().all(|&v| (0..50).contains(&v)), "{row:?}");
        assert!(t >= 20, "{t}");
    }
    // The first draw of each row follows P(k) = (ln(k + 1.5) − ln(k + 0.5)) / ln(R) (k = 0:
    // ln 1.5 / ln R; the last class takes the rest), here in 6 buckets.
    let r = 1000f64;
    let first =
        invoke("_sample_unique_zipfian", &[], &[("range_max", "1000"), ("shape", "(20000, 1)")]).unwrap();
    let v = first[0].to_vec::<i64>().unwrap();
    assert!(first[1].to_vec::<i64>().unwrap().iter().all(|&t| t == 1));
    let cdf = |k: f64| ((k + 1.5).ln() / r.ln()).min(1.0); // P(value <= k)
    let edges = [0.0, 1.0, 3.0, 10.0, 50.0];
    let mut probs = Vec::new();
    let mut prev = 0.0;
    for &e in &edges {
        probs.push(cdf(e) - prev);
        prev = cdf(e);
    }
    probs.push(1.0 - prev);
    let mut c = vec![0; probs.len()];
    for x in v {
        c[edges.iter().filter(|&&e| (x as f64) > e).count()] += 1;
    }
    assert!(chi_square(&c, &probs) < 20.5, "{c:?} vs {probs:?}"); // 5 d.o.f., 99.9%
    let e = invoke("_sample_unique_zipfian", &[], &[("range_max", "5"), ("shape", "(2, 6)")]).unwrap_err();
    assert!(e.to_string().contains("cannot exceed"), "{e}");
}
