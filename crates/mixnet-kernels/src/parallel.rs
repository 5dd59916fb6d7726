//! Splitting one kernel across the cores.
//!
//! The thread that calls a kernel (the engine's caller, or an engine worker) always
//! computes one part itself, so the rayon pool needs only the *other* cores: it is built
//! with one worker fewer than the machine has cores. A split then never has more runnable
//! threads than cores, and no idle worker spins (`sched_yield`) on a core the caller
//! needs. Kernels split through this module, never through rayon's parallel iterators:
//! those hand the whole job to the pool from an outside thread and leave it asleep.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Once, OnceLock};

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

/// `f(item)` for every item, the first on this thread and the rest on the pool; returns
/// when all are done. Callers pass one item per part of their split ([`threads`] items).
pub fn each<T: Send>(items: impl IntoIterator<Item = T>, f: &(dyn Fn(T) + Sync)) {
    let mut items = items.into_iter();
    let Some(first) = items.next() else { return };
    rayon::in_place_scope(|s| {
        for item in items {
            s.spawn(move |_| f(item));
        }
        f(first);
    });
}

/// `f(i)` for every `i` in `0..units`, each claimed once, in order, by whichever of this
/// thread and up to `threads() - 1` pool workers is free. Unlike a fixed split, a worker
/// that wakes late or a core that a neighbour slows takes fewer units instead of holding
/// up the end: this thread starts claiming at once.
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
    rayon::in_place_scope(|s| {
        for _ in 0..helpers {
            s.spawn(|_| work());
        }
        work();
    });
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
