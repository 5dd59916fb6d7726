//! Splitting one kernel across the cores.
//!
//! The thread that calls a kernel (the engine's caller, or an engine worker) always
//! computes one part itself, so the rayon pool needs only the *other* cores: it is built
//! with one worker fewer than the machine has cores. A split then never has more runnable
//! threads than cores, and no idle worker spins (`sched_yield`) on a core the caller
//! needs. Kernels split through this module, never through rayon's parallel iterators:
//! those hand the whole job to the pool from an outside thread and leave it asleep.

use std::any::Any;
use std::cell::UnsafeCell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once, OnceLock};

/// Cores this process may use, asked once: `available_parallelism` reads cgroup files.
fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Build the global pool with `cores - 1` workers (at least one), unless something built
/// it first; `RAYON_NUM_THREADS` still wins, as rayon documents.
fn init_pool() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        if std::env::var_os("RAYON_NUM_THREADS").is_none() {
            let _ =
                rayon::ThreadPoolBuilder::new().num_threads(cores().saturating_sub(1).max(1)).build_global();
        }
    });
}

/// How many parts a kernel called here should split into: the pool's workers, plus this
/// thread when it is not one of them, at most one per core.
pub fn threads() -> usize {
    init_pool();
    let pool = rayon::current_num_threads();
    if rayon::current_thread_index().is_some() {
        pool
    } else {
        (pool + 1).min(cores().max(pool))
    }
}

/// `f(item)` for every item, each taken once by whichever of this thread and the pool
/// workers is free (see [`claim`]); returns when all are done. Callers pass one item per
/// part of their split ([`threads`] items).
pub fn each<T: Send>(items: impl IntoIterator<Item = T>, f: &(dyn Fn(T) + Sync)) {
    let slots: Vec<Slot<T>> = items.into_iter().map(|t| Slot(UnsafeCell::new(Some(t)))).collect();
    claim(slots.len(), &|i| {
        // SAFETY: `claim` hands out each index once, so this is the only access to slot i.
        if let Some(t) = unsafe { (*slots[i].0.get()).take() } {
            f(t);
        }
    });
}

/// One item of [`each`], taken by exactly one thread.
struct Slot<T>(UnsafeCell<Option<T>>);
// SAFETY: a slot is only touched by the one thread that claimed its index.
unsafe impl<T: Send> Sync for Slot<T> {}

/// `f(i)` for every `i` in `0..units`, each claimed once, in order, by whichever of this
/// thread and up to `threads() - 1` pool workers is free. Unlike a fixed split, a worker
/// that wakes late or a core that a neighbour slows takes fewer units instead of holding
/// up the end: this thread starts claiming at once, and it never waits for a helper that
/// has not started by the time the units run out (see [`with_helpers`]).
pub fn claim(units: usize, f: &(dyn Fn(usize) + Sync)) {
    let helpers = threads().min(units).saturating_sub(1);
    let next = AtomicUsize::new(0);
    let work = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= units {
            break;
        }
        f(i);
    };
    if helpers == 0 {
        return work();
    }
    with_helpers(helpers, &work);
}

/// A helper's progress: the caller may cancel it only while it is still `OPEN`.
const OPEN: u8 = 0;
const RUNNING: u8 = 1;
const DONE: u8 = 2;
const CANCELLED: u8 = 3;

/// One pool job lent to a [`with_helpers`] call.
struct Helper {
    state: AtomicU8,
    /// The caller's `work`, its lifetime erased: it is only called between a successful
    /// `OPEN -> RUNNING` and the store of `DONE`, and the caller does not return before it
    /// has either cancelled the helper (`OPEN -> CANCELLED`) or seen `DONE`.
    work: *const (dyn Fn() + Sync + 'static),
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

// SAFETY: `work` points to a `Sync` closure and is dereferenced only under the protocol
// above; the other fields are thread-safe.
unsafe impl Send for Helper {}
// SAFETY: as for Send.
unsafe impl Sync for Helper {}

/// Run `work` on this thread and on `helpers` pool jobs at once; `work` must share its
/// work out itself (as [`claim`]'s loop does). Returns when this thread's `work` has
/// returned and every helper has either finished or been cancelled before starting.
///
/// `rayon::in_place_scope` would also wait for a spawned job that has not started: on a
/// VM a parked worker can take tens of microseconds to wake, and a small GEMM would wait
/// for that after doing all its units itself (the MLP step ran 1.1-1.2x faster on two
/// cores than on one because of it). A panic in any copy of `work` resumes here once all
/// helpers are accounted for.
fn with_helpers(helpers: usize, work: &(dyn Fn() + Sync)) {
    // SAFETY: only the lifetime changes (same fat-pointer layout); `Helper::work` says
    // why the pointee outlives every use.
    let erased: *const (dyn Fn() + Sync + 'static) =
        unsafe { std::mem::transmute(work as *const (dyn Fn() + Sync)) };
    let mut lent = Vec::with_capacity(helpers);
    for _ in 0..helpers {
        let h = Arc::new(Helper { state: AtomicU8::new(OPEN), work: erased, panic: Mutex::new(None) });
        lent.push(h.clone());
        rayon::spawn(move || {
            if h.state.compare_exchange(OPEN, RUNNING, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                // SAFETY: RUNNING was taken from OPEN, so the caller is waiting for DONE
                // and `work` is alive (see `Helper::work`).
                let r = catch_unwind(AssertUnwindSafe(|| unsafe { (*h.work)() }));
                if let Err(p) = r {
                    *h.panic.lock().unwrap_or_else(|e| e.into_inner()) = Some(p);
                }
                h.state.store(DONE, Ordering::Release);
            }
        });
    }
    let mine = catch_unwind(AssertUnwindSafe(work));
    let mut panic = mine.err();
    for h in &lent {
        if h.state.compare_exchange(OPEN, CANCELLED, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            continue;
        }
        // Running: it is working on units now, so it finishes soon.
        let mut spins = 0u32;
        while h.state.load(Ordering::Acquire) != DONE {
            if spins < 100 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
            spins += 1;
        }
        if let Some(p) = h.panic.lock().unwrap_or_else(|e| e.into_inner()).take() {
            panic.get_or_insert(p);
        }
    }
    if let Some(p) = panic {
        resume_unwind(p);
    }
}

/// `f(offset, part)` over one contiguous part of `out` per [`threads`], the first part on
/// this thread. Parts are whole multiples of `unit` elements (rows); `offset` is in
/// elements. Working here instead of handing the job to the pool and sleeping saves a
/// context switch each way (1M-element `a + b`: 119-149 -> 90-120 µs).
pub fn split<O: Send>(out: &mut [O], unit: usize, f: &(dyn Fn(usize, &mut [O]) + Sync)) {
    let unit = unit.max(1);
    let size = out.len().div_ceil(unit).div_ceil(threads()).max(1) * unit;
    each(out.chunks_mut(size).enumerate(), &|(i, part)| f(i * size, part));
}

/// `f(index, chunk)` for every `chunk`-element chunk of `out` (the last may be short),
/// consecutive chunks grouped into one part per [`threads`].
pub fn chunks<O: Send>(out: &mut [O], chunk: usize, f: &(dyn Fn(usize, &mut [O]) + Sync)) {
    let chunk = chunk.max(1);
    split(out, chunk, &|off, part| {
        for (j, c) in part.chunks_mut(chunk).enumerate() {
            f(off / chunk + j, c);
        }
    });
}

/// Parts for splitting `units` units of work: `(start, end)` ranges, one per [`threads`]
/// (fewer when there are fewer units).
pub fn ranges(units: usize) -> impl Iterator<Item = (usize, usize)> {
    let per = units.div_ceil(threads()).max(1);
    (0..units).step_by(per).map(move |s| (s, (s + per).min(units)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_covers_every_element_once() {
        for len in [0usize, 1, 7, 64, 1000] {
            for unit in [1usize, 3, 16] {
                let mut out = vec![0usize; len];
                split(&mut out, unit, &|off, part| {
                    assert_eq!(off % unit, 0);
                    for (i, o) in part.iter_mut().enumerate() {
                        *o += off + i + 1;
                    }
                });
                assert!(out.iter().enumerate().all(|(i, &o)| o == i + 1), "len {len} unit {unit}");
            }
        }
    }

    #[test]
    fn claim_runs_every_unit_once() {
        for units in [0usize, 1, 2, 3, 100] {
            let hits: Vec<AtomicUsize> = (0..units).map(|_| AtomicUsize::new(0)).collect();
            claim(units, &|i| {
                hits[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1), "{units}");
        }
    }

    #[test]
    fn a_panic_in_any_part_reaches_the_caller() {
        for units in [2usize, 64] {
            let r = std::panic::catch_unwind(|| {
                claim(units, &|i| {
                    if i == units - 1 {
                        panic!("unit {i}");
                    }
                })
            });
            assert!(r.is_err(), "{units}");
        }
        // The pool still works afterwards.
        let hits = AtomicUsize::new(0);
        claim(100, &|_| {
            hits.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(hits.load(Ordering::Relaxed), 100);
    }

    #[test]
    fn each_takes_every_item_once() {
        let seen = Mutex::new(Vec::new());
        each((0..37).map(|i| i * 2), &|x| seen.lock().unwrap().push(x));
        let mut seen = seen.into_inner().unwrap();
        seen.sort();
        assert_eq!(seen, (0..37).map(|i| i * 2).collect::<Vec<_>>());
    }

    #[test]
    fn chunks_are_numbered_in_order() {
        let mut out = vec![0usize; 103];
        chunks(&mut out, 10, &|i, c| c.iter_mut().for_each(|o| *o = i));
        assert!(out.iter().enumerate().all(|(j, &o)| o == j / 10));
    }

    #[test]
    fn ranges_partition_the_units() {
        for units in [0usize, 1, 5, 64] {
            let r: Vec<_> = ranges(units).collect();
            assert_eq!(r.iter().map(|(s, e)| e - s).sum::<usize>(), units);
            assert!(r.windows(2).all(|w| w[0].1 == w[1].0));
            assert!(r.len() <= threads().max(1));
        }
    }
}
