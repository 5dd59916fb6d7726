//! Failure propagation, recovery and deletion, on every engine configuration.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mixnet_engine::{ErrorKind, OpProps, Var};

fn ok() -> Result<(), String> {
    Ok(())
}

#[test]
fn failure_poisons_writes_and_skips_readers() {
    for (label, e) in common::engines() {
        let (a, b, c) = (Var::new(), Var::new(), Var::new());
        e.push_fn(|| Err("bad shape (2, 3)".to_string()), &[], &[a.clone()], OpProps::new("dot"));
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        e.push_fn(
            move || {
                r.store(true, Ordering::SeqCst);
                ok()
            },
            &[a.clone()],
            &[b.clone()],
            OpProps::new("relu").light(true),
        );
        // An op that only reads the clean var c runs normally.
        e.push_fn(ok, &[c.clone()], &[Var::new()], OpProps::new("unrelated"));
        let err = e.wait_for_var(&b).unwrap_err();
        assert!(!ran.load(Ordering::SeqCst), "{label}: the dependant ran on poisoned input");
        assert_eq!(err.op(), "dot", "{label}");
        assert_eq!(err.kind(), ErrorKind::Failed);
        assert!(err.to_string().contains("operator 'dot' failed: bad shape (2, 3)"), "{label}: {err}");
        assert!(e.wait_for_var(&a).unwrap_err().same_as(&err), "{label}");
        assert!(e.wait_for_var(&c).is_ok(), "{label}");
        // Both poisoned vars were surfaced already: wait_all has nothing new to say.
        assert!(e.wait_all().is_ok(), "{label}");
        // The poison stays until the var is overwritten.
        assert!(e.wait_for_var(&b).is_err(), "{label}");
        assert_eq!((a.version(), b.version()), (1, 1), "{label}: skipped writes still complete");
    }
}

#[test]
fn wait_all_surfaces_an_unwaited_failure_once() {
    for (label, e) in common::engines() {
        let a = Var::new();
        e.push_fn(|| Err("boom"), &[], &[a.clone()], OpProps::new("Convolution"));
        e.push_fn(ok, &[a.clone()], &[Var::new()], OpProps::new("after"));
        let err = e.wait_all().unwrap_err();
        assert_eq!(err.op(), "Convolution", "{label}");
        assert!(e.wait_all().is_ok(), "{label}: reported twice");
    }
}

#[test]
fn panics_are_caught_and_workers_survive() {
    for (label, e) in common::engines() {
        let a = Var::new();
        e.push_fn(
            || -> Result<(), String> { panic!("index out of range") },
            &[],
            &[a.clone()],
            OpProps::new("take"),
        );
        let err = e.wait_for_var(&a).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Panicked, "{label}");
        assert!(err.to_string().contains("operator 'take' panicked: index out of range"), "{label}: {err}");
        // The engine keeps working afterwards, on every worker.
        let count = Arc::new(AtomicUsize::new(0));
        for _ in 0..100 {
            let c = count.clone();
            e.push_fn(
                move || {
                    c.fetch_add(1, Ordering::SeqCst);
                    ok()
                },
                &[],
                &[Var::new()],
                OpProps::new("inc"),
            );
        }
        e.wait_all().unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 100, "{label}");
    }
}

#[test]
fn successful_write_clears_poison() {
    for (label, e) in common::engines() {
        let (a, b) = (Var::new(), Var::new());
        e.push_fn(|| Err("nan"), &[], &[a.clone()], OpProps::new("fail"));
        // A read-modify-write of the poisoned var inherits the poison ...
        e.push_fn(ok, &[a.clone()], &[a.clone()], OpProps::new("inplace"));
        assert_eq!(e.wait_for_var(&a).unwrap_err().op(), "fail", "{label}");
        // ... a pure overwrite heals it, and its readers run again.
        e.push_fn(ok, &[], &[a.clone()], OpProps::new("fill"));
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        e.push_fn(
            move || {
                r.store(true, Ordering::SeqCst);
                ok()
            },
            &[a.clone()],
            &[b.clone()],
            OpProps::new("reader"),
        );
        e.wait_for_var(&b).unwrap();
        assert!(ran.load(Ordering::SeqCst), "{label}");
        assert!(e.wait_for_var(&a).is_ok(), "{label}");
        assert!(e.wait_all().is_ok(), "{label}");
        assert_eq!(a.version(), 3, "{label}");
    }
}

#[test]
fn delete_var_runs_after_pending_ops() {
    for (label, e) in common::engines() {
        let v = Var::new();
        let log = Arc::new(Mutex::new(Vec::new()));
        for i in 0..3 {
            let log = log.clone();
            e.push_fn(
                move || {
                    std::thread::sleep(Duration::from_millis(10));
                    log.lock().unwrap().push(format!("op{i}"));
                    ok()
                },
                &[v.clone()],
                &[Var::new()],
                OpProps::new("reader"),
            );
        }
        let l = log.clone();
        e.delete_var(&v, Box::new(move || l.lock().unwrap().push("deleted".to_string())));
        assert!(v.is_deleted());
        // Using the var afterwards is an error that names the op, not a crash.
        let w = Var::new();
        e.push_fn(ok, &[v.clone()], &[w.clone()], OpProps::new("late-reader"));
        let err = e.wait_for_var(&w).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::DeletedVar, "{label}");
        assert!(err.to_string().contains("late-reader"), "{label}: {err}");
        e.wait_all().unwrap();
        // The three reads may run in any order (concurrently), but all before the deletion.
        let mut log = log.lock().unwrap().clone();
        assert_eq!(log.pop().as_deref(), Some("deleted"), "{label}");
        log.sort();
        assert_eq!(log, ["op0", "op1", "op2"], "{label}");
    }
}
