//! Indexing beyond the goldens: slice assignment, index modes and their errors, gradients
//! of the scatter ops through autograd.

use mixnet::imperative::invoke;
use mixnet::{autograd, NDArray};

fn arr(v: &[f32], shape: &[usize]) -> NDArray {
    NDArray::from_slice(v, shape).unwrap()
}

fn run(op: &str, ins: &[NDArray], attrs: &[(&str, &str)]) -> Vec<f64> {
    invoke(op, ins, attrs).unwrap_or_else(|e| panic!("{op}: {e}")).remove(0).to_f64_vec().unwrap()
}

#[test]
fn slice_assign_and_scalar() {
    let x = arr(&[0.0; 6], &[2, 3]);
    let r = arr(&[1.0, 2.0], &[2, 1]);
    assert_eq!(
        run("_slice_assign", &[x.clone(), r], &[("begin", "(None, 2)"), ("end", "(None, None)")]),
        [0., 0., 1., 0., 0., 2.]
    );
    assert_eq!(
        run(
            "_slice_assign_scalar",
            &[x],
            &[("scalar", "7"), ("begin", "(1, None)"), ("end", "(None, None)"), ("step", "(1, -2)")]
        ),
        [0., 0., 0., 7., 0., 7.]
    );
}

#[test]
fn index_modes_and_errors() {
    let a = arr(&[1.0, 2.0, 3.0], &[3]);
    assert_eq!(run("take", &[a.clone(), arr(&[-1.0, 4.0], &[2])], &[("mode", "wrap")]), [3.0, 2.0]);
    assert_eq!(run("take", &[a.clone(), arr(&[-1.0, 4.0], &[2])], &[]), [1.0, 3.0]);
    let e =
        invoke("take", &[a.clone(), arr(&[3.0], &[1])], &[("mode", "raise")]).and_then(|o| o[0].to_f64_vec());
    assert!(e.unwrap_err().to_string().contains("take"));
    assert_eq!(
        run("one_hot", &[arr(&[1.0, 5.0, -1.0], &[3])], &[("depth", "3")]),
        [0., 1., 0., 0., 0., 0., 0., 0., 0.]
    );
    let e = invoke("pick", &[arr(&[1.0; 6], &[2, 3]), arr(&[0.0; 3], &[3])], &[]).unwrap_err().to_string();
    assert!(e.contains("pick") && e.contains("index"), "{e}");
    let e = invoke("slice", &[a.clone()], &[("begin", "(2,)"), ("end", "(1,)")]).unwrap_err().to_string();
    assert!(e.contains("slice") && e.contains("empty"), "{e}");
    let e = invoke("slice", &[a], &[("begin", "(0,)"), ("end", "(2,)"), ("step", "(0,)")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("step"), "{e}");
}

#[test]
fn repeated_indices_accumulate_gradients() {
    let a = arr(&[1.0, 2.0, 3.0], &[3]);
    a.attach_grad().unwrap();
    let out = {
        let _r = autograd::record(true);
        invoke("take", &[a.clone(), arr(&[0.0, 0.0, 2.0], &[3])], &[]).unwrap()
    };
    autograd::backward(&out, &[arr(&[1.0, 2.0, 3.0], &[3])]).unwrap();
    assert_eq!(a.grad().unwrap().to_f64_vec().unwrap(), [3.0, 0.0, 3.0]);
}
