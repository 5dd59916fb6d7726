//! The unary family beyond the goldens: aliases, attribute parsing and its errors, every
//! dtype MXNet accepts (and the ones it refuses), MXNet's rounding and conversion quirks,
//! and that large float32 maps use both cores.

use std::sync::Mutex;

use mixnet::imperative::invoke;
use mixnet::{bf16, f16, Context, DType, NDArray, NativeType};

/// The cores check counts busy threads, so no other test of this file may run beside it.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn arr<T: NativeType>(v: &[T]) -> NDArray {
    NDArray::from_slice(v, [v.len()]).unwrap()
}

fn run(op: &str, x: &NDArray, attrs: &[(&str, &str)]) -> NDArray {
    invoke(op, std::slice::from_ref(x), attrs).unwrap_or_else(|e| panic!("{op}: {e}")).remove(0)
}

fn vals<T: NativeType>(op: &str, x: &NDArray, attrs: &[(&str, &str)]) -> Vec<T> {
    run(op, x, attrs).to_vec::<T>().unwrap()
}

fn err(op: &str, x: &NDArray, attrs: &[(&str, &str)]) -> String {
    match invoke(op, std::slice::from_ref(x), attrs) {
        Ok(_) => panic!("{op} accepted {attrs:?} on {} {}", x.shape(), x.dtype()),
        Err(e) => e.to_string(),
    }
}

fn bool_arr(v: &[u8]) -> NDArray {
    NDArray::from_bytes(v, [v.len()], DType::Bool, Context::cpu(0)).unwrap()
}

#[test]
fn aliases_resolve_to_canonical_ops() {
    let _g = serial();
    let x = arr(&[1.5f32, -2.0]);
    for op in ["_copy", "identity", "BlockGrad", "stop_gradient", "make_loss"] {
        assert_eq!(vals::<f32>(op, &x, &[]), [1.5, -2.0], "{op}");
    }
    assert_eq!(vals::<i32>("cast", &x, &[("dtype", "int32")]), [1, -2]);
    let e = err("stop_gradient", &x, &[("foo", "1")]);
    assert!(e.contains("BlockGrad") && e.contains("foo"), "{e}");
}

#[test]
fn hard_sigmoid_attributes() {
    let _g = serial();
    let x = arr(&[-5.0f32, 0.0, 1.0, 5.0, f32::NAN]);
    let y = vals::<f32>("hard_sigmoid", &x, &[]);
    assert_eq!(&y[..4], [0.0, 0.5, 0.2f32 * 1.0 + 0.5, 1.0]);
    assert!(y[4].is_nan());
    let y = vals::<f32>("hard_sigmoid", &x, &[("alpha", "1"), ("beta", "0.25")]);
    assert_eq!(&y[..4], [0.0, 0.25, 1.0, 1.0]);
    // float64 computes with float attributes, as MXNet's real_t fields.
    let y = vals::<f64>("hard_sigmoid", &arr(&[1.0f64]), &[]);
    assert_eq!(y, [0.2f32 as f64 + 0.5]);
    let e = err("hard_sigmoid", &x, &[("alpha", "abc")]);
    assert!(e.contains("hard_sigmoid") && e.contains("alpha"), "{e}");
    for d in [arr(&[1i32]), arr(&[bf16::ONE])] {
        let e = err("hard_sigmoid", &d, &[]);
        assert!(e.contains("hard_sigmoid") && e.contains(d.dtype().name()) && e.contains("(1,)"), "{e}");
    }
    assert_eq!(vals::<f16>("hard_sigmoid", &arr(&[f16::from_f32(1.0)]), &[]), [f16::from_f32(0.7)]);
}

#[test]
fn unknown_attributes_and_bool_inputs_are_refused() {
    let _g = serial();
    let e = err("exp", &arr(&[1.0f32]), &[("alpha", "1")]);
    assert!(e.contains("exp") && e.contains("alpha"), "{e}");
    let b = bool_arr(&[0, 1, 1]);
    for op in ["exp", "relu", "abs", "logical_not"] {
        let e = err(op, &b, &[]);
        assert!(e.contains(op) && e.contains("bool") && e.contains("(3,)"), "{e}");
    }
    let e = err("clip", &b, &[("a_min", "0"), ("a_max", "1")]);
    assert!(e.contains("clip") && e.contains("bool"), "{e}");
    // Identity ops copy bool arrays.
    let y = run("_copy", &b, &[]);
    assert_eq!((y.dtype(), y.to_vec::<u8>().unwrap()), (DType::Bool, vec![0, 1, 1]));
    let e = invoke("relu", &[], &[]).unwrap_err().to_string();
    assert!(e.contains("relu") && e.contains("1 input"), "{e}");
}

#[test]
fn rounding_modes() {
    let _g = serial();
    let x = arr(&[2.5f32, -2.5, 3.5, -0.5, 0.5, 1.2, -1.7]);
    assert_eq!(vals::<f32>("round", &x, &[]), [3.0, -3.0, 4.0, -1.0, 1.0, 1.0, -2.0]);
    // MXNet's rint takes the floor on ties (documented: rint(n.5) = n, rint(-n.5) = -n-1).
    assert_eq!(vals::<f32>("rint", &x, &[]), [2.0, -3.0, 3.0, -1.0, 0.0, 1.0, -2.0]);
    assert_eq!(vals::<f32>("fix", &x, &[]), [2.0, -2.0, 3.0, -0.0, 0.0, 1.0, -1.0]);
    assert_eq!(vals::<f32>("trunc", &x, &[]), [2.0, -2.0, 3.0, -0.0, 0.0, 1.0, -1.0]);
    assert_eq!(vals::<f32>("floor", &x, &[]), [2.0, -3.0, 3.0, -1.0, 0.0, 1.0, -2.0]);
    assert_eq!(vals::<f32>("ceil", &x, &[]), [3.0, -2.0, 4.0, -0.0, 1.0, 2.0, -1.0]);
}

#[test]
fn integer_inputs_keep_their_dtype() {
    let _g = serial();
    let x = arr(&[-3i32, 0, 4, 17]);
    assert_eq!(vals::<i32>("abs", &x, &[]), [3, 0, 4, 17]);
    assert_eq!(vals::<i32>("negative", &x, &[]), [3, 0, -4, -17]);
    assert_eq!(vals::<i32>("sign", &x, &[]), [-1, 0, 1, 1]);
    assert_eq!(vals::<i32>("square", &x, &[]), [9, 0, 16, 289]);
    assert_eq!(vals::<i32>("relu", &x, &[]), [0, 0, 4, 17]);
    assert_eq!(vals::<i32>("logical_not", &x, &[]), [0, 1, 0, 0]);
    assert_eq!(vals::<i32>("sqrt", &arr(&[16i32, 17, 24]), &[]), [4, 4, 4]);
    assert_eq!(vals::<i32>("exp", &arr(&[0i32, 1, 2]), &[]), [1, 2, 7]);
    assert_eq!(vals::<i32>("reciprocal", &arr(&[1i32, 2, -1]), &[]), [1, 0, -1]);
    assert_eq!(vals::<i32>("sigmoid", &arr(&[0i32, 10]), &[]), [0, 0]);
    // uint8 negation wraps; int64 stays exact beyond 2^53 where MXNet is exact.
    assert_eq!(vals::<u8>("negative", &arr(&[3u8, 0]), &[]), [253, 0]);
    let big = (1i64 << 60) + 1;
    assert_eq!(vals::<i64>("negative", &arr(&[big]), &[]), [-big]);
    assert_eq!(vals::<i64>("relu", &arr(&[big, -big]), &[]), [big, 0]);
    assert_eq!(vals::<i8>("sign", &arr(&[-100i8, 0, 100]), &[]), [-1, 0, 1]);
    assert_eq!(vals::<i8>("degrees", &arr(&[1i8]), &[]), [57]);
}

#[test]
fn half_types_compute_in_float() {
    let _g = serial();
    let h: Vec<f16> = [0.5f32, 1.0, 2.0].iter().map(|&v| f16::from_f32(v)).collect();
    let want: Vec<f16> = h.iter().map(|v| f16::from_f32(v.to_f32().exp())).collect();
    assert_eq!(vals::<f16>("exp", &arr(&h), &[]), want);
    // bfloat16 results are truncated to 16 bits, as mshadow's bf16_t(float) does.
    let b = arr(&[bf16::from_f32(1.0)]);
    let e = std::f32::consts::E;
    assert_eq!(vals::<bf16>("exp", &b, &[]), [bf16::from_bits((e.to_bits() >> 16) as u16)]);
    assert_eq!(vals::<bf16>("negative", &b, &[]), [bf16::from_f32(-1.0)]);
}

#[test]
fn float64_and_specials() {
    let _g = serial();
    let x = arr(&[0.5f64, 2.0]);
    assert_eq!(vals::<f64>("exp", &x, &[]), [0.5f64.exp(), 2.0f64.exp()]);
    assert_eq!(vals::<f64>("degrees", &arr(&[1.0f64]), &[]), [(180.0f32 / std::f32::consts::PI) as f64]);
    let y = vals::<f32>("erfinv", &arr(&[0.0f32, 1.0, -1.0, 2.0, 0.5]), &[]);
    assert_eq!(&y[..3], [0.0, f32::INFINITY, f32::NEG_INFINITY]);
    assert!(y[3].is_nan() && (y[4] - 0.476_936_28).abs() < 1e-6);
    let y = vals::<f32>("gamma", &arr(&[5.0f32, 0.5]), &[]);
    assert!((y[0] - 24.0).abs() < 1e-4 && (y[1] - std::f32::consts::PI.sqrt()).abs() < 1e-6, "{y:?}");
    let y = vals::<f64>("gammaln", &arr(&[10.0f64]), &[]);
    assert!((y[0] - 362880f64.ln()).abs() < 1e-12);
    let y = vals::<f32>("relu", &arr(&[f32::NAN, -1.0]), &[]);
    assert!(y[0].is_nan() && y[1] == 0.0);
    assert_eq!(vals::<f32>("sign", &arr(&[f32::NAN, -0.0]), &[]), [0.0, 0.0]);
    assert_eq!(vals::<f32>("logical_not", &arr(&[f32::NAN, 0.0]), &[]), [0.0, 1.0]);
}

#[test]
fn clip_bounds() {
    let _g = serial();
    let x = arr(&[-3.0f32, 0.5, 9.0, f32::NAN]);
    let y = vals::<f32>("clip", &x, &[("a_min", "-1"), ("a_max", "1")]);
    assert_eq!(&y[..3], [-1.0, 0.5, 1.0]);
    assert!(y[3].is_nan());
    // Crossed bounds are not refused: above a_max -> a_max, else below a_min -> a_min.
    assert_eq!(vals::<f32>("clip", &x, &[("a_min", "2"), ("a_max", "1")])[..3], [2.0, 2.0, 1.0]);
    // Integer data: bounds compared as float, stored truncated.
    let y = vals::<i32>("clip", &arr(&[-3i32, 0, 7]), &[("a_min", "-2.5"), ("a_max", "4.9")]);
    assert_eq!(y, [-2, 0, 4]);
    let y = vals::<u8>("clip", &arr(&[0u8, 100, 250]), &[("a_min", "10"), ("a_max", "200")]);
    assert_eq!(y, [10, 100, 200]);
    for attrs in [&[("a_min", "0")][..], &[("a_max", "0")][..]] {
        let e = err("clip", &x, attrs);
        assert!(e.contains("clip") && e.contains("required"), "{e}");
    }
    let e = err("clip", &x, &[("a_min", "x"), ("a_max", "1")]);
    assert!(e.contains("a_min='x'"), "{e}");
}

#[test]
fn cast_every_dtype_pair() {
    let _g = serial();
    let src: Vec<NDArray> = vec![
        arr(&[1.0f32, 0.0, 2.75]),
        arr(&[1.0f64, 0.0, 2.75]),
        arr(&[f16::from_f32(1.0), f16::ZERO, f16::from_f32(2.75)]),
        arr(&[bf16::from_f32(1.0), bf16::ZERO, bf16::from_f32(2.75)]),
        arr(&[1u8, 0, 2]),
        arr(&[1i8, 0, 2]),
        arr(&[1i32, 0, 2]),
        arr(&[1i64, 0, 2]),
        bool_arr(&[1, 0, 1]),
    ];
    for x in &src {
        let v = x.to_f64_vec().unwrap();
        for to in DType::ALL {
            let y = run("Cast", x, &[("dtype", to.name())]);
            assert_eq!((y.dtype(), y.shape()), (to, x.shape()));
            let want: Vec<f64> = v
                .iter()
                .map(|&a| match to {
                    DType::Bool => f64::from(a != 0.0),
                    d if d.is_float() => a,
                    _ => a.trunc(),
                })
                .collect();
            assert_eq!(y.to_f64_vec().unwrap(), want, "{} -> {to}", x.dtype());
        }
    }
}

#[test]
fn cast_conversions_follow_cpp() {
    let _g = serial();
    let x = arr(&[300.0f32, 11.1, 10.9, -1.0, -3.0]);
    assert_eq!(vals::<u8>("Cast", &x, &[("dtype", "uint8")]), [44, 11, 10, 255, 253]);
    // float16 rounds to nearest even (MXNet's docstring shows 11.09375, from an older
    // truncating build; 1.9.1's goldens round).
    let x = arr(&[1e20f32, 11.1]);
    let y = run("Cast", &x, &[("dtype", "float16")]).to_f64_vec().unwrap();
    assert_eq!(y, [f64::INFINITY, 11.1015625]);
    let x = arr(&[f32::NAN, 3e9, -2.9, 0.9]);
    assert_eq!(vals::<i32>("Cast", &x, &[("dtype", "int32")]), [i32::MIN, i32::MIN, -2, 0]);
    assert_eq!(vals::<u8>("Cast", &x, &[("dtype", "bool")]), [1, 1, 1, 1]);
    let big = (1i64 << 62) + 3;
    assert_eq!(vals::<i64>("Cast", &arr(&[big]), &[("dtype", "int64")]), [big]);
    assert_eq!(vals::<i32>("Cast", &arr(&[(1i64 << 32) + 5]), &[("dtype", "int32")]), [5]);
    // bfloat16 keeps the high 16 bits of the float.
    let y = vals::<bf16>("Cast", &arr(&[1.0f32 + 255.0 / 256.0]), &[("dtype", "bfloat16")]);
    assert_eq!(y, [bf16::from_f32(1.9921875)]);
    let e = err("Cast", &x, &[]);
    assert!(e.contains("Cast") && e.contains("dtype"), "{e}");
    let e = err("Cast", &x, &[("dtype", "complex64")]);
    assert!(e.contains("Cast") && e.contains("complex64"), "{e}");
}

#[test]
fn zero_size_and_scalar_arrays() {
    let _g = serial();
    let empty = NDArray::from_slice::<f32>(&[], [0, 3]).unwrap();
    let y = run("exp", &empty, &[]);
    assert_eq!((y.shape().to_vec(), y.size()), (vec![0, 3], 0));
    assert_eq!(run("Cast", &empty, &[("dtype", "int8")]).dtype(), DType::I8);
    let s = NDArray::scalar(4.0f32).unwrap();
    assert_eq!(run("sqrt", &s, &[]).to_vec::<f32>().unwrap(), [2.0]);
}

/// CPU ticks (user + system) of each thread of this process.
#[cfg(target_os = "linux")]
fn thread_ticks() -> std::collections::HashMap<String, u64> {
    let mut out = std::collections::HashMap::new();
    for entry in std::fs::read_dir("/proc/self/task").into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // Fields after the parenthesized name: state is field 3, utime 14, stime 15.
        let Some((_, rest)) = stat.rsplit_once(')') else { continue };
        let f: Vec<u64> = rest.split_whitespace().map(|s| s.parse().unwrap_or(0)).collect();
        if f.len() > 12 {
            out.insert(entry.file_name().to_string_lossy().into_owned(), f[11] + f[12]);
        }
    }
    out
}

/// Large float32 maps run on every core: over a few hundred milliseconds of repeated
/// `exp`/`tanh`/`sigmoid`/`relu` on 1M elements, at least two threads accumulate CPU time.
#[cfg(target_os = "linux")]
#[test]
fn large_float32_maps_use_both_cores() {
    let _g = serial();
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        eprintln!("single core: nothing to check");
        return;
    }
    let n = 1 << 20;
    let x = NDArray::from_vec((0..n).map(|i| (i % 1000) as f32 * 0.01 - 5.0).collect(), [n]).unwrap();
    for op in ["exp", "tanh", "sigmoid", "relu"] {
        let before = thread_ticks();
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_millis(400) {
            run(op, &x, &[]).wait_to_read().unwrap();
        }
        let after = thread_ticks();
        let busy = after.iter().filter(|(t, &v)| v >= before.get(*t).copied().unwrap_or(0) + 3).count();
        assert!(busy >= 2, "{op}: only {busy} thread(s) did the work");
    }
}
