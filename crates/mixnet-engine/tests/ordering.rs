//! The ordering rules, versions, priorities and waits, on every engine configuration.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mixnet_engine::{Engine, OpProps, Var};

type Log = Arc<Mutex<Vec<&'static str>>>;

fn logger(log: &Log, entry: &'static str, sleep_ms: u64) -> impl FnOnce() -> Result<(), String> + Send {
    let log = log.clone();
    move || {
        if sleep_ms > 0 {
            std::thread::sleep(Duration::from_millis(sleep_ms));
        }
        log.lock().unwrap().push(entry);
        Ok(())
    }
}

fn props(name: &'static str) -> OpProps {
    OpProps::new(name)
}

#[test]
fn read_after_write_waits_for_the_write() {
    for (label, e) in common::engines() {
        let v = Var::new();
        let log: Log = Default::default();
        e.push_fn(logger(&log, "write", 30), &[], &[v.clone()], props("w"));
        e.push_fn(logger(&log, "read", 0), &[v.clone()], &[], props("r").light(true));
        e.wait_all().unwrap();
        assert_eq!(*log.lock().unwrap(), ["write", "read"], "{label}");
    }
}

#[test]
fn write_waits_for_earlier_reads_and_writes() {
    for (label, e) in common::engines() {
        let v = Var::new();
        let log: Log = Default::default();
        e.push_fn(logger(&log, "w1", 20), &[], &[v.clone()], props("w1"));
        e.push_fn(logger(&log, "r1", 30), &[v.clone()], &[], props("r1"));
        e.push_fn(logger(&log, "r2", 10), &[v.clone()], &[], props("r2"));
        e.push_fn(logger(&log, "w2", 0), &[], &[v.clone()], props("w2").light(true));
        e.push_fn(logger(&log, "r3", 0), &[v.clone()], &[], props("r3").light(true));
        e.wait_all().unwrap();
        let log = log.lock().unwrap().clone();
        assert_eq!(log[0], "w1", "{label}: {log:?}");
        let pos = |s| log.iter().position(|x| *x == s).unwrap();
        assert!(pos("w2") > pos("r1") && pos("w2") > pos("r2"), "{label}: {log:?}");
        assert!(pos("r3") > pos("w2"), "{label}: {log:?}");
        assert_eq!(v.version(), 2, "{label}");
    }
}

#[test]
fn concurrent_readers_run_together() {
    // Two reads of one var must be able to run at the same time: each waits for the other.
    let e = common::threaded(2, false);
    let v = Var::new();
    let (tx_a, rx_a) = mpsc::channel::<()>();
    let (tx_b, rx_b) = mpsc::channel::<()>();
    let met = Arc::new(AtomicUsize::new(0));
    let (m1, m2) = (met.clone(), met.clone());
    let e: &dyn Engine = &e;
    e.push_fn(
        move || {
            tx_a.send(()).unwrap();
            rx_b.recv_timeout(Duration::from_secs(5))
                .map_err(|_| "reader B never ran alongside".to_string())?;
            m1.fetch_add(1, Ordering::SeqCst);
            Ok::<(), String>(())
        },
        &[v.clone()],
        &[],
        props("reader-a"),
    );
    e.push_fn(
        move || {
            tx_b.send(()).unwrap();
            rx_a.recv_timeout(Duration::from_secs(5))
                .map_err(|_| "reader A never ran alongside".to_string())?;
            m2.fetch_add(1, Ordering::SeqCst);
            Ok::<(), String>(())
        },
        &[v.clone()],
        &[],
        props("reader-b"),
    );
    let after = Arc::new(AtomicUsize::new(0));
    let (a2, met2) = (after.clone(), met.clone());
    e.push_fn(
        move || {
            a2.store(met2.load(Ordering::SeqCst), Ordering::SeqCst);
            Ok::<(), String>(())
        },
        &[],
        &[v.clone()],
        props("writer"),
    );
    e.wait_all().unwrap();
    assert_eq!(met.load(Ordering::SeqCst), 2);
    assert_eq!(after.load(Ordering::SeqCst), 2, "the write ran before both reads finished");
}

#[test]
fn var_listed_as_read_and_write_is_a_write() {
    for (label, e) in common::engines() {
        let v = Var::new();
        let log: Log = Default::default();
        e.push_fn(logger(&log, "r1", 30), &[v.clone()], &[], props("r1"));
        e.push_fn(logger(&log, "rw", 10), &[v.clone()], &[v.clone(), v.clone()], props("rw"));
        e.push_fn(logger(&log, "r2", 0), &[v.clone()], &[], props("r2").light(true));
        e.wait_all().unwrap();
        assert_eq!(*log.lock().unwrap(), ["r1", "rw", "r2"], "{label}");
        assert_eq!(v.version(), 1, "{label}: one write, counted once");
    }
}

#[test]
fn versions_count_completed_writes_only() {
    for (label, e) in common::engines() {
        let (a, b) = (Var::new(), Var::new());
        for _ in 0..10 {
            e.push_fn(|| Ok::<(), String>(()), &[a.clone()], &[b.clone()], props("copy").light(true));
        }
        for _ in 0..3 {
            e.push_fn(|| Ok::<(), String>(()), &[], &[a.clone()], props("fill"));
        }
        e.wait_for_var(&a).unwrap();
        e.wait_for_var(&b).unwrap();
        assert_eq!((a.version(), b.version()), (3, 10), "{label}");
    }
}

#[test]
fn wait_for_var_waits_only_for_that_var() {
    let e = common::threaded(2, true);
    let e: &dyn Engine = &e;
    let (slow, fast) = (Var::new(), Var::new());
    let gate = Arc::new(Mutex::new(()));
    let held = gate.lock().unwrap();
    let g = gate.clone();
    e.push_fn(
        move || {
            let _g = g.lock().unwrap();
            Ok::<(), String>(())
        },
        &[],
        &[slow.clone()],
        props("blocked"),
    );
    e.push_fn(|| Ok::<(), String>(()), &[], &[fast.clone()], props("quick"));
    e.wait_for_var(&fast).unwrap();
    assert_eq!(fast.version(), 1);
    assert_eq!(slow.version(), 0, "the blocked op cannot have finished");
    drop(held);
    e.wait_for_var(&slow).unwrap();
    assert_eq!(slow.version(), 1);
}

#[test]
fn higher_priority_runs_first_among_ready_ops() {
    let e = common::threaded(1, false);
    let e: &dyn Engine = &e;
    let gate = Arc::new(Mutex::new(()));
    let held = gate.lock().unwrap();
    let g = gate.clone();
    let block = Var::new();
    e.push_fn(
        move || {
            let _g = g.lock().unwrap();
            Ok::<(), String>(())
        },
        &[],
        &[block],
        props("gate"),
    );
    // Give the single worker time to pick up the gate op.
    std::thread::sleep(Duration::from_millis(20));
    let log: Log = Default::default();
    e.push_fn(logger(&log, "low", 0), &[], &[Var::new()], props("low").priority(-5));
    e.push_fn(logger(&log, "mid", 0), &[], &[Var::new()], props("mid"));
    e.push_fn(logger(&log, "high", 0), &[], &[Var::new()], props("high").priority(10));
    drop(held);
    e.wait_all().unwrap();
    assert_eq!(*log.lock().unwrap(), ["high", "mid", "low"]);
}

#[test]
fn waiting_inside_an_operation_is_refused() {
    let e = Arc::new(common::threaded(1, false));
    let v = Var::new();
    let got = Arc::new(Mutex::new(None));
    let (e2, v2, got2) = (e.clone(), v.clone(), got.clone());
    let e_dyn: &dyn Engine = e.as_ref();
    e_dyn.push_fn(
        move || {
            let engine: &dyn Engine = e2.as_ref();
            *got2.lock().unwrap() = Some(engine.wait_for_var(&v2).is_err());
            Ok::<(), String>(())
        },
        &[],
        &[Var::new()],
        props("waits-inside"),
    );
    e_dyn.wait_all().unwrap();
    assert_eq!(*got.lock().unwrap(), Some(true));
}

#[test]
fn pushes_from_many_threads_keep_per_thread_order() {
    for (label, e) in common::engines() {
        let e: Arc<dyn Engine> = Arc::from(e);
        let shared = Var::new();
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let e = e.clone();
                let shared = shared.clone();
                std::thread::spawn(move || {
                    let mine = Var::new();
                    let seen = Arc::new(Mutex::new(Vec::new()));
                    for i in 0..500usize {
                        let seen = seen.clone();
                        e.push_fn(
                            move || {
                                seen.lock().unwrap().push(i);
                                Ok::<(), String>(())
                            },
                            &[shared.clone()],
                            &[mine.clone()],
                            OpProps::new("step").light(i % 2 == 0),
                        );
                    }
                    e.wait_for_var(&mine).unwrap();
                    let seen = seen.lock().unwrap().clone();
                    assert_eq!(seen, (0..500).collect::<Vec<_>>(), "thread {t}");
                    mine.version()
                })
            })
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap(), 500, "{label}");
        }
        e.wait_all().unwrap();
    }
}
