//! Autograd behaviour beyond per-op gradients: scopes, grad_req, retained graphs,
//! detach, `grad`, and mutation safety through engine-var versions.

use mixnet::autograd::{self, GradReq};
use mixnet::{imperative, NDArray};

fn arr(v: &[f32]) -> NDArray {
    NDArray::from_slice(v, [v.len()]).unwrap()
}

fn mul(a: &NDArray, b: &NDArray) -> NDArray {
    imperative::invoke("elemwise_mul", &[a.clone(), b.clone()], &[]).unwrap().remove(0)
}

#[test]
fn scopes_set_and_restore_flags() {
    assert!(!autograd::is_recording() && !autograd::is_training());
    {
        let _r = autograd::record(true);
        assert!(autograd::is_recording() && autograd::is_training());
        {
            let _p = autograd::pause(false);
            assert!(!autograd::is_recording() && !autograd::is_training());
        }
        assert!(autograd::is_recording());
        let _m = autograd::predict_mode();
        assert!(autograd::is_recording() && !autograd::is_training());
    }
    assert!(!autograd::is_recording() && !autograd::is_training());
    let _t = autograd::train_mode();
    assert!(autograd::is_training() && !autograd::is_recording());
}

#[test]
fn chain_rule_through_several_ops() {
    // y = (x * x + 3x) * 2  =>  dy/dx = 4x + 6
    let x = arr(&[1.0, 2.0, -3.0]);
    x.attach_grad().unwrap();
    let y = {
        let _r = autograd::record(true);
        let xx = mul(&x, &x);
        let t = (&xx + &(&x * 3.0).unwrap()).unwrap();
        (&t * 2.0).unwrap()
    };
    autograd::backward(&[y], &[]).unwrap();
    assert_eq!(x.grad().unwrap().to_vec::<f32>().unwrap(), [10.0, 14.0, -6.0]);
}

#[test]
fn grad_req_add_accumulates_and_write_overwrites() {
    let x = arr(&[1.0, 2.0]);
    x.attach_grad_with(GradReq::Add).unwrap();
    for _ in 0..3 {
        let y = {
            let _r = autograd::record(true);
            mul(&x, &x)
        };
        autograd::backward(&[y], &[]).unwrap();
    }
    assert_eq!(x.grad().unwrap().to_vec::<f32>().unwrap(), [6.0, 12.0]);
    let z = arr(&[1.0, 2.0]);
    z.attach_grad().unwrap();
    for _ in 0..3 {
        let y = {
            let _r = autograd::record(true);
            mul(&z, &z)
        };
        autograd::backward(&[y], &[arr(&[1.0, 10.0])]).unwrap();
    }
    assert_eq!(z.grad().unwrap().to_vec::<f32>().unwrap(), [2.0, 40.0]);
    let n = arr(&[5.0]);
    n.attach_grad_with(GradReq::Null).unwrap();
    let y = {
        let _r = autograd::record(true);
        mul(&n, &n)
    };
    autograd::backward(&[y], &[]).unwrap();
    assert_eq!(n.grad().unwrap().to_vec::<f32>().unwrap(), [0.0]);
}

#[test]
fn second_backward_needs_retain_graph() {
    let x = arr(&[3.0]);
    x.attach_grad().unwrap();
    let y = {
        let _r = autograd::record(true);
        mul(&x, &x)
    };
    autograd::backward_with(std::slice::from_ref(&y), &[], true, true).unwrap();
    autograd::backward(std::slice::from_ref(&y), &[]).unwrap();
    assert_eq!(x.grad().unwrap().to_vec::<f32>().unwrap(), [6.0]);
    let err = autograd::backward(&[y], &[]).unwrap_err().to_string();
    assert!(err.contains("elemwise_mul") && err.contains("retain_graph"), "{err}");
}

#[test]
fn in_place_mutation_after_recording_is_an_error_not_a_wrong_gradient() {
    let x = arr(&[1.0, 2.0]);
    let w = arr(&[3.0, 4.0]);
    x.attach_grad().unwrap();
    let y = {
        let _r = autograd::record(true);
        mul(&x, &w)
    };
    w.assign(&arr(&[0.0, 0.0])).unwrap(); // the saved input w changes under the tape
    let err = autograd::backward(&[y], &[]).unwrap_err().to_string();
    assert!(
        err.contains("elemwise_mul")
            && err.contains("input 1 of shape (2,) float32")
            && err.contains("modified in place"),
        "{err}"
    );
}

#[test]
fn detach_pause_and_constants_stop_gradients() {
    let x = arr(&[2.0]);
    x.attach_grad().unwrap();
    let y = {
        let _r = autograd::record(true);
        let d = x.detach();
        let c = {
            let _p = autograd::pause(false);
            mul(&x, &x) // not recorded: a constant
        };
        (&mul(&x, &d) + &c).unwrap()
    };
    autograd::backward(&[y], &[]).unwrap();
    assert_eq!(x.grad().unwrap().to_vec::<f32>().unwrap(), [2.0], "only the x factor of x*detach(x)");
    let plain = arr(&[1.0]);
    let err = autograd::backward(&[plain], &[]).unwrap_err().to_string();
    assert!(err.contains("attach_grad"), "{err}");
}

#[test]
fn grad_returns_gradients_without_writing_buffers() {
    let x = arr(&[1.0, -2.0]);
    x.attach_grad().unwrap();
    let y = {
        let _r = autograd::record(true);
        (&mul(&x, &x) * 0.5).unwrap()
    };
    let g = autograd::grad(&[y], std::slice::from_ref(&x), &[], false, false).unwrap();
    assert_eq!(g[0].to_vec::<f32>().unwrap(), [1.0, -2.0]);
    assert_eq!(x.grad().unwrap().to_vec::<f32>().unwrap(), [0.0, 0.0]);
}

#[test]
fn queued_ops_are_not_mistaken_for_mutation() {
    // Large enough to be queued on the engine's worker instead of running inline.
    let n = 1 << 17;
    let x = NDArray::from_vec(vec![1.5f32; n], [n]).unwrap();
    x.attach_grad().unwrap();
    let y = {
        let _r = autograd::record(true);
        let t = mul(&x, &x);
        (&t * 2.0).unwrap()
    };
    autograd::backward(&[y], &[]).unwrap();
    assert!(x.grad().unwrap().to_vec::<f32>().unwrap().iter().all(|&g| g == 6.0));
}

fn f64s(v: &[f64]) -> NDArray {
    NDArray::from_slice(v, [v.len()]).unwrap()
}

fn close(got: &NDArray, want: &[f64]) {
    let g = got.to_f64_vec().unwrap();
    assert_eq!(g.len(), want.len());
    for (a, b) in g.iter().zip(want) {
        assert!((a - b).abs() <= 1e-9 * (1.0 + b.abs()), "got {g:?}, want {want:?}");
    }
}

#[test]
fn second_derivative_of_cube() {
    // y = x^3: dy/dx = 3x^2, d2y/dx2 = 6x, through elemwise_mul (recorded backward).
    let xs = [1.5, -2.0, 0.5];
    let x = f64s(&xs);
    x.attach_grad().unwrap();
    let y = {
        let _r = autograd::record(true);
        mul(&mul(&x, &x), &x)
    };
    let dx = {
        let _r = autograd::record(true);
        autograd::grad(&[y], std::slice::from_ref(&x), &[], true, true).unwrap().remove(0)
    };
    close(&dx, &xs.map(|v| 3.0 * v * v));
    autograd::backward(&[dx], &[]).unwrap();
    close(&x.grad().unwrap(), &xs.map(|v| 6.0 * v));
    // The same through the scalar power op: x^3 via _power_scalar.
    let z = f64s(&xs);
    z.attach_grad().unwrap();
    let y = {
        let _r = autograd::record(true);
        imperative::invoke("_power_scalar", std::slice::from_ref(&z), &[("scalar", "3")]).unwrap().remove(0)
    };
    let dz = autograd::grad(&[y], std::slice::from_ref(&z), &[], true, true).unwrap().remove(0);
    let d2 = autograd::grad(&[dz], std::slice::from_ref(&z), &[], false, false).unwrap().remove(0);
    close(&d2, &xs.map(|v| 6.0 * v));
}

#[test]
fn second_derivative_of_sin_and_third_of_a_product() {
    let xs = [0.3, 1.2, -2.5];
    let x = f64s(&xs);
    x.attach_grad().unwrap();
    let y = {
        let _r = autograd::record(true);
        imperative::invoke("sin", std::slice::from_ref(&x), &[]).unwrap().remove(0)
    };
    let d1 = autograd::grad(&[y], std::slice::from_ref(&x), &[], true, true).unwrap().remove(0);
    close(&d1, &xs.map(f64::cos));
    let d2 = autograd::grad(&[d1], std::slice::from_ref(&x), &[], true, true).unwrap().remove(0);
    close(&d2, &xs.map(|v| -v.sin()));
    let d3 = autograd::grad(&[d2], std::slice::from_ref(&x), &[], false, false).unwrap().remove(0);
    close(&d3, &xs.map(|v| -v.cos()));

    // f(x, w) = x^2 w: d/dx = 2xw, d2/dxdw = 2x, d2/dx2 = 2w.
    let (x, w) = (f64s(&[1.0, 2.0]), f64s(&[3.0, -4.0]));
    x.attach_grad().unwrap();
    w.attach_grad().unwrap();
    let f = {
        let _r = autograd::record(true);
        mul(&mul(&x, &x), &w)
    };
    let dfdx = autograd::grad(&[f], std::slice::from_ref(&x), &[], true, true).unwrap().remove(0);
    close(&dfdx, &[6.0, -16.0]);
    let g = autograd::grad(&[dfdx], &[x.clone(), w.clone()], &[], false, false).unwrap();
    close(&g[0], &[6.0, -8.0]);
    close(&g[1], &[2.0, 4.0]);
}

#[test]
fn mark_variables_uses_the_given_buffers_and_requests() {
    let (a, b) = (arr(&[1.0, 2.0]), arr(&[3.0, 4.0]));
    let (ga, gb) = (arr(&[10.0, 10.0]), arr(&[0.0, 0.0]));
    autograd::mark_variables(
        &[a.clone(), b.clone()],
        &[ga.clone(), gb.clone()],
        &[GradReq::Add, GradReq::Write],
    )
    .unwrap();
    let y = {
        let _r = autograd::record(true);
        mul(&a, &b)
    };
    autograd::backward(&[y], &[]).unwrap();
    assert_eq!(ga.to_vec::<f32>().unwrap(), [13.0, 14.0], "add accumulates into the given buffer");
    assert_eq!(gb.to_vec::<f32>().unwrap(), [1.0, 2.0]);
    assert!(a.grad().unwrap().shares_memory_with(&ga));
    let err = autograd::mark_variables(&[a], &[arr(&[0.0])], &[GradReq::Write]).unwrap_err().to_string();
    assert!(err.contains("(2,)") && err.contains("(1,)"), "{err}");
}

#[test]
fn backward_with_train_mode_sets_the_mode_of_the_gradients() {
    // A Function whose backward reports the training flag it sees.
    struct Probe;
    impl autograd::Function for Probe {
        fn forward(&self, inputs: &[NDArray], _: &mut Vec<NDArray>) -> mixnet::Result<Vec<NDArray>> {
            Ok(vec![inputs[0].copy()?])
        }
        fn backward(&self, _: &[NDArray], g: &[NDArray]) -> mixnet::Result<Vec<NDArray>> {
            let t = if autograd::is_training() { 1.0 } else { 0.0 };
            Ok(vec![(&g[0] * t)?])
        }
    }
    for (mode, want) in [(true, 1.0), (false, 0.0)] {
        let x = arr(&[2.0]);
        x.attach_grad().unwrap();
        let y = {
            let _r = autograd::record(!mode);
            autograd::apply(std::sync::Arc::new(Probe), std::slice::from_ref(&x)).unwrap().remove(0)
        };
        autograd::backward_with(&[y], &[], false, mode).unwrap();
        assert_eq!(x.grad().unwrap().to_vec::<f32>().unwrap(), [want]);
    }
}

/// sigmoid written by the user: forward saves its output, backward is y (1 - y) g.
struct MySigmoid;

impl autograd::Function for MySigmoid {
    fn forward(&self, inputs: &[NDArray], saved: &mut Vec<NDArray>) -> mixnet::Result<Vec<NDArray>> {
        let y = (1.0 / &(&(-&inputs[0])?.exp()? + 1.0)?)?;
        saved.push(y.clone());
        Ok(vec![y])
    }
    fn backward(&self, saved: &[NDArray], g: &[NDArray]) -> mixnet::Result<Vec<NDArray>> {
        let y = &saved[0];
        Ok(vec![(&g[0] * &(y * &(1.0 - y)?)?)?])
    }
}

#[test]
fn custom_function_matches_the_builtin_sigmoid() {
    let xs = [-2.0, -0.5, 0.0, 0.7, 3.0];
    let heads = f64s(&[1.0, 2.0, -1.0, 0.5, 3.0]);
    let x = f64s(&xs);
    x.attach_grad().unwrap();
    let y = {
        let _r = autograd::record(true);
        let s = autograd::apply(std::sync::Arc::new(MySigmoid), std::slice::from_ref(&x)).unwrap().remove(0);
        (&s * 2.0).unwrap() // a built-in op after the custom one
    };
    autograd::backward(&[y.clone()], std::slice::from_ref(&heads)).unwrap();
    let custom = x.grad().unwrap().to_f64_vec().unwrap();

    let z = f64s(&xs);
    z.attach_grad().unwrap();
    let y2 = {
        let _r = autograd::record(true);
        (&z.sigmoid().unwrap() * 2.0).unwrap()
    };
    close(&y, &y2.to_f64_vec().unwrap());
    autograd::backward(&[y2], &[heads]).unwrap();
    close(&z.grad().unwrap(), &custom);
    assert!(custom.iter().any(|&g| g != 0.0));

    // Outside record the function is just its forward.
    let plain = autograd::apply(std::sync::Arc::new(MySigmoid), std::slice::from_ref(&x)).unwrap().remove(0);
    assert!(autograd::backward(&[plain], &[]).is_err());
}

#[test]
fn views_taken_while_recording_carry_gradients() {
    // MXNet records reshape/slice/at of a recorded array (ReshapeWithRecord, SliceWithRecord).
    let x = NDArray::from_slice(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [3, 2]).unwrap();
    x.attach_grad().unwrap();
    let y = {
        let _rec = autograd::record(true);
        let r = x.reshape(&[2, 3]).unwrap();
        // A recorded reshape is still a view (MXNet's ReshapeWithRecord), of a recorded
        // result too.
        assert!(r.shares_memory_with(&x));
        let r = r.reshape(&[3, 2]).unwrap().reshape(&[2, 3]).unwrap();
        assert!(r.shares_memory_with(&x));
        let s = x.slice(1, 3).unwrap();
        let a = x.at(2).unwrap();
        let total = |v: NDArray| v.sum(None, false).unwrap();
        let parts = [total((&r * 2.0).unwrap()), total((&s * 3.0).unwrap()), total((&a * 5.0).unwrap())];
        (&(&parts[0] + &parts[1]).unwrap() + &parts[2]).unwrap()
    };
    autograd::backward(&[y], &[]).unwrap();
    assert_eq!(x.grad().unwrap().to_vec::<f32>().unwrap(), vec![2.0, 2.0, 5.0, 5.0, 10.0, 10.0]);
    // Outside recording the same calls are views sharing memory.
    let v = x.reshape(&[6]).unwrap();
    assert!(v.shares_memory_with(&x));
}
