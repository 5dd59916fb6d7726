//! `try_run_now`, the light-op fast path: it runs only when every var is idle and clean,
//! and then behaves exactly like a pushed op (versions, pushed-write clock, errors, panics,
//! ops queued meanwhile).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use mixnet_engine::{Engine, ErrorKind, OpProps, OpResult, Var};

fn run_now(e: &dyn Engine, reads: &[&Var], writes: &[&Var], f: impl FnMut() -> OpResult) -> bool {
    let mut f = f;
    e.try_run_now(&mut f, reads, writes, "fast")
}

#[test]
fn runs_on_idle_vars_and_bumps_versions() {
    for (label, e) in common::engines() {
        let (a, b) = (Var::new(), Var::new());
        let hits = AtomicUsize::new(0);
        let ran = run_now(&*e, &[&a], &[&b], || {
            hits.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
        // The threaded engine without inline execution declines; the others run.
        let expect = label != "threaded-2-noinline";
        assert_eq!(ran, expect, "{label}");
        assert_eq!(hits.load(Ordering::SeqCst), expect as usize, "{label}");
        if ran {
            assert_eq!((a.version(), b.version()), (0, 1), "{label}");
            assert_eq!((a.pushed_writes(), b.pushed_writes()), (0, 1), "{label}");
        }
        assert!(e.wait_all().is_ok(), "{label}");
    }
}

#[test]
fn a_var_read_and_written_counts_once_as_a_write() {
    for (label, e) in common::engines() {
        if label == "threaded-2-noinline" {
            continue;
        }
        let a = Var::new();
        assert!(run_now(&*e, &[&a, &a], &[&a, &a], || Ok(())), "{label}");
        assert_eq!((a.version(), a.pushed_writes()), (1, 1), "{label}");
        // Nothing is left held: a queued write runs.
        let order = Arc::new(Mutex::new(Vec::new()));
        let o = order.clone();
        e.push_fn(
            move || {
                o.lock().unwrap().push(1);
                Ok::<(), String>(())
            },
            &[],
            &[a.clone()],
            OpProps::new("after"),
        );
        e.wait_for_var(&a).unwrap();
        assert_eq!(*order.lock().unwrap(), vec![1], "{label}");
    }
}

#[test]
fn declines_when_a_var_is_busy_and_keeps_order() {
    let e = common::threaded(1, true);
    let a = Var::new();
    let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
    let g = gate.clone();
    // A queued (non-light) write holds `a` until the gate opens.
    e.push(
        Box::new(move || {
            let mut open = g.0.lock().unwrap();
            while !*open {
                open = g.1.wait(open).unwrap();
            }
            Ok(())
        }),
        &[],
        &[a.clone()],
        OpProps::new("slow"),
    );
    let ran = run_now(&e, &[&a], &[&Var::new()], || Ok(()));
    assert!(!ran, "ran while a write on its input was pending");
    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
    e.wait_all().unwrap();
    assert!(run_now(&e, &[&a], &[&Var::new()], || Ok(())));
}

#[test]
fn declines_on_poisoned_input_then_push_skips() {
    for (label, e) in common::engines() {
        let (a, b) = (Var::new(), Var::new());
        e.push_fn(|| Err("bad"), &[], &[a.clone()], OpProps::new("first"));
        let _ = e.wait_for_var(&a);
        let hits = AtomicUsize::new(0);
        let ran = run_now(&*e, &[&a], &[&b], || {
            hits.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
        assert!(!ran, "{label}: ran on a poisoned input");
        assert_eq!(hits.load(Ordering::SeqCst), 0, "{label}");
    }
}

#[test]
fn failures_and_panics_poison_outputs() {
    for (label, e) in common::engines() {
        if label == "threaded-2-noinline" {
            continue;
        }
        let (a, b) = (Var::new(), Var::new());
        assert!(run_now(&*e, &[], &[&a], || Err("shape mismatch".into())), "{label}");
        let err = e.wait_for_var(&a).unwrap_err();
        assert_eq!(err.op(), "fast", "{label}");
        assert_eq!(err.kind(), ErrorKind::Failed, "{label}");
        assert!(run_now(&*e, &[], &[&b], || panic!("kernel bug")), "{label}");
        let err = e.wait_for_var(&b).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Panicked, "{label}");
        assert!(err.to_string().contains("kernel bug"), "{label}: {err}");
        assert!(e.wait_all().is_ok(), "{label}: both failures were surfaced already");
        // A poisoned var takes the queued path; a later successful write heals it.
        assert!(!run_now(&*e, &[], &[&a], || Ok(())), "{label}");
        e.push_fn(|| Ok::<(), String>(()), &[], &[a.clone()], OpProps::new("heal"));
        assert!(e.wait_for_var(&a).is_ok(), "{label}");
        assert!(run_now(&*e, &[], &[&a], || Ok(())), "{label}");
    }
}

#[test]
fn declines_on_deleted_var() {
    for (label, e) in common::engines() {
        let a = Var::new();
        e.delete_var(&a, Box::new(|| ()));
        assert!(!run_now(&*e, &[&a], &[&Var::new()], || Ok(())), "{label}");
    }
}

#[test]
fn created_outputs_count_writes_and_take_poison() {
    for (label, e) in common::engines() {
        let (input, written, made) = (Var::new(), Var::new(), Var::new());
        let mut ok = || Ok(());
        let ran = e.try_run_now_creating(&mut ok, &[&input], &[&written], &[&made], "fast");
        assert_eq!(ran, label != "threaded-2-noinline", "{label}");
        if !ran {
            continue;
        }
        assert_eq!((written.version(), made.version()), (1, 1), "{label}");
        assert_eq!((written.pushed_writes(), made.pushed_writes()), (1, 1), "{label}");
        // The created var is an ordinary var afterwards: it queues and orders like any.
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        e.push_fn(
            move || {
                s.lock().unwrap().push(1);
                Ok::<(), String>(())
            },
            &[],
            &[made.clone()],
            OpProps::new("next"),
        );
        assert!(e.wait_for_var(&made).is_ok(), "{label}");
        assert_eq!((made.version(), seen.lock().unwrap().clone()), (2, vec![1]), "{label}");
        // A failing kernel poisons its created outputs.
        let bad_out = Var::new();
        let mut bad = || Err("shape mismatch".into());
        assert!(e.try_run_now_creating(&mut bad, &[], &[], &[&bad_out], "fast"), "{label}");
        let err = e.wait_for_var(&bad_out).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Failed, "{label}");
        assert_eq!(bad_out.version(), 1, "{label}");
        assert!(e.wait_all().is_ok(), "{label}");
    }
}

/// Holders of one var as seen from inside the ops: readers count up, a writer sets -1.
/// Any overlap of a write with another access is a violation.
#[derive(Default)]
struct Exclusion {
    holders: std::sync::atomic::AtomicIsize,
    violations: AtomicUsize,
    writes: AtomicUsize,
}

impl Exclusion {
    fn enter(&self, write: bool) {
        let ok = if write {
            self.holders.compare_exchange(0, -1, Ordering::SeqCst, Ordering::SeqCst).is_ok()
        } else {
            self.holders.fetch_add(1, Ordering::SeqCst) >= 0
        };
        if !ok {
            self.violations.fetch_add(1, Ordering::SeqCst);
        }
        std::hint::spin_loop();
    }
    fn leave(&self, write: bool) {
        if write {
            self.writes.fetch_add(1, Ordering::SeqCst);
            let _ = self.holders.compare_exchange(-1, 0, Ordering::SeqCst, Ordering::SeqCst);
        } else {
            self.holders.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

#[test]
fn inline_runs_and_pushes_from_several_threads_keep_reads_and_writes_apart() {
    for (workers, label) in [(1, "threaded-1"), (4, "threaded-4")] {
        let e: Arc<dyn Engine> = Arc::new(common::threaded(workers, true));
        let vars: Arc<Vec<Var>> = Arc::new((0..3).map(|_| Var::new()).collect());
        let guards: Arc<Vec<Exclusion>> = Arc::new((0..3).map(|_| Exclusion::default()).collect());
        let threads: Vec<_> = (0..3u64)
            .map(|t| {
                let (e, vars, guards) = (e.clone(), vars.clone(), guards.clone());
                std::thread::spawn(move || {
                    let mut seed = 0x9E37_79B9_7F4A_7C15u64.wrapping_mul(t + 1);
                    let mut pushed_writes = [0usize; 3];
                    for _ in 0..3000 {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        // Each op reads one var and writes another (or only reads).
                        let r = (seed % 3) as usize;
                        let w = ((seed >> 8) % 4) as usize;
                        let w = (w < 3 && w != r).then_some(w);
                        let light = (seed >> 16).is_multiple_of(2);
                        let inline_first = !(seed >> 17).is_multiple_of(4);
                        if let Some(w) = w {
                            pushed_writes[w] += 1;
                        }
                        let body = {
                            let guards = guards.clone();
                            move || {
                                guards[r].enter(false);
                                if let Some(w) = w {
                                    guards[w].enter(true);
                                    guards[w].leave(true);
                                }
                                guards[r].leave(false);
                            }
                        };
                        let reads = [vars[r].clone()];
                        let writes: Vec<Var> = w.map(|w| vars[w].clone()).into_iter().collect();
                        let ran = inline_first && {
                            let mut f = || {
                                body();
                                Ok(())
                            };
                            let write_refs: Vec<&Var> = writes.iter().collect();
                            e.try_run_now(&mut f, &[&reads[0]], &write_refs, "inline")
                        };
                        if !ran {
                            e.push_fn(
                                move || {
                                    body();
                                    Ok::<(), String>(())
                                },
                                &reads,
                                &writes,
                                OpProps::new("pushed").light(light),
                            );
                        }
                    }
                    pushed_writes
                })
            })
            .collect();
        let mut expected = [0usize; 3];
        for t in threads {
            let w = t.join().unwrap();
            for i in 0..3 {
                expected[i] += w[i];
            }
        }
        e.wait_all().unwrap();
        for i in 0..3 {
            assert_eq!(guards[i].violations.load(Ordering::SeqCst), 0, "{label}: var {i}");
            assert_eq!(guards[i].writes.load(Ordering::SeqCst), expected[i], "{label}: var {i}");
            assert_eq!(vars[i].version(), expected[i] as u64, "{label}: var {i}");
            assert_eq!(vars[i].pushed_writes(), expected[i] as u64, "{label}: var {i}");
        }
    }
}
