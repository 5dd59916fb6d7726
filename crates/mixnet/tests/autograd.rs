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
    autograd::backward(&[y], &[], false).unwrap();
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
        autograd::backward(&[y], &[], false).unwrap();
    }
    assert_eq!(x.grad().unwrap().to_vec::<f32>().unwrap(), [6.0, 12.0]);
    let z = arr(&[1.0, 2.0]);
    z.attach_grad().unwrap();
    for _ in 0..3 {
        let y = {
            let _r = autograd::record(true);
            mul(&z, &z)
        };
        autograd::backward(&[y], &[arr(&[1.0, 10.0])], false).unwrap();
    }
    assert_eq!(z.grad().unwrap().to_vec::<f32>().unwrap(), [2.0, 40.0]);
    let n = arr(&[5.0]);
    n.attach_grad_with(GradReq::Null).unwrap();
    let y = {
        let _r = autograd::record(true);
        mul(&n, &n)
    };
    autograd::backward(&[y], &[], false).unwrap();
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
    autograd::backward(std::slice::from_ref(&y), &[], true).unwrap();
    autograd::backward(std::slice::from_ref(&y), &[], false).unwrap();
    assert_eq!(x.grad().unwrap().to_vec::<f32>().unwrap(), [6.0]);
    let err = autograd::backward(&[y], &[], false).unwrap_err().to_string();
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
    let err = autograd::backward(&[y], &[], false).unwrap_err().to_string();
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
    autograd::backward(&[y], &[], false).unwrap();
    assert_eq!(x.grad().unwrap().to_vec::<f32>().unwrap(), [2.0], "only the x factor of x*detach(x)");
    let plain = arr(&[1.0]);
    let err = autograd::backward(&[plain], &[], false).unwrap_err().to_string();
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
    let g = autograd::grad(&[y], std::slice::from_ref(&x), &[], false).unwrap();
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
    autograd::backward(&[y], &[], false).unwrap();
    assert!(x.grad().unwrap().to_vec::<f32>().unwrap().iter().all(|&g| g == 6.0));
}
