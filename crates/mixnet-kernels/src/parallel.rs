//! Splitting one kernel across the cores.
//!
//! The thread that calls a kernel (the engine's caller, or an engine worker) always
//! computes a share itself, and one helper thread per other core takes the rest: a split
//! never has more runnable threads than cores. Work is handed out unit by unit
//! ([`claim`]), so a helper that starts late or a core that a neighbour slows takes less
//! of it, and the caller never waits for a helper that has not started. Kernels split
//! only through this module (rayon's parallel iterators, from an outside thread, hand the
//! whole job to the pool and put the caller to sleep).

use std::any::Any;
use std::cell::Cell;
use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Cores this process may use, asked once: `available_parallelism` reads cgroup files.
fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The helper threads: one per core beyond the first, started on first use. A helper
/// spins for [`SPIN`] after its last job before it parks, so the next split of a
/// training step (microseconds later) finds it awake: waking a parked thread on a VM
/// can take tens of microseconds, longer than a small GEMM.
fn team() -> &'static [Arc<Member>] {
    static TEAM: OnceLock<Vec<Arc<Member>>> = OnceLock::new();
    TEAM.get_or_init(|| {
        (1..cores())
            .filter_map(|i| {
                let member = Arc::new(Member {
                    inbox: Mutex::new(VecDeque::new()),
                    parked: AtomicBool::new(false),
                    thread: OnceLock::new(),
                });
                let me = member.clone();
                let handle = std::thread::Builder::new()
                    .name(format!("mixnet-kernel-{i}"))
                    .spawn(move || {
                        IN_TEAM.with(|t| t.set(true));
                        member_loop(&me);
                    })
                    .ok()?;
                let _ = member.thread.set(handle.thread().clone());
                Some(member)
            })
            .collect()
    })
}

/// One helper thread's mailbox.
struct Member {
    inbox: Mutex<VecDeque<Arc<Helper>>>,
    /// Set while the member parks or is about to (see `member_loop`).
    parked: AtomicBool,
    thread: OnceLock<std::thread::Thread>,
}

impl Member {
    fn lend(&self, job: Arc<Helper>) {
        self.inbox.lock().unwrap_or_else(|e| e.into_inner()).push_back(job);
        // SeqCst pairs with `member_loop`: it raises `parked` then looks at the inbox, this
        // fills the inbox then looks at `parked`; one of them sees the other.
        if self.parked.load(Ordering::SeqCst) {
            if let Some(t) = self.thread.get() {
                t.unpark();
            }
        }
    }

    fn take(&self) -> Option<Arc<Helper>> {
        self.inbox.lock().unwrap_or_else(|e| e.into_inner()).pop_front()
    }
}

/// How long an idle helper keeps looking for work before it parks.
const SPIN: Duration = Duration::from_micros(200);

fn member_loop(me: &Member) {
    let mut idle_since = Instant::now();
    let mut polls = 0u32;
    loop {
        if let Some(job) = me.take() {
            job.run();
            idle_since = Instant::now();
            polls = 0;
            continue;
        }
        polls += 1;
        if !polls.is_multiple_of(64) || idle_since.elapsed() < SPIN {
            std::hint::spin_loop();
            continue;
        }
        me.parked.store(true, Ordering::SeqCst);
        if me.inbox.lock().unwrap_or_else(|e| e.into_inner()).is_empty() {
            // An `unpark` between the check and here makes `park` return at once.
            std::thread::park();
        }
        me.parked.store(false, Ordering::SeqCst);
        idle_since = Instant::now();
    }
}

thread_local! {
    /// Whether this thread is a helper: splits it makes run on it alone (no nesting).
    static IN_TEAM: Cell<bool> = const { Cell::new(false) };
}

/// How many parts a kernel called here should split into: one per core, or one on a
/// helper thread (the split it belongs to already uses every core).
pub fn threads() -> usize {
    if IN_TEAM.with(Cell::get) {
        1
    } else {
        team().len() + 1
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

/// `f(i)` for every `i` in `0..units`, each claimed once by whichever of this thread and
/// up to `threads() - 1` pool workers is free: this thread from the front, in order, the
/// workers from the back. Unlike a fixed split, a worker that wakes late or a core that a
/// neighbour slows takes fewer units instead of holding up the end: this thread starts
/// claiming at once, and it never waits for a helper that has not started by the time the
/// units run out (see [`with_helpers`]). Claiming from opposite ends keeps each core on
/// the same end of every split, so the next operator finds more of its input in its own
/// cache (ResNet-50 b1 46.3 -> 45.3 ms, every one of 6 alternating rounds; the first
/// unit claimed by any thread in turn had each part land on either core).
pub fn claim(units: usize, f: &(dyn Fn(usize) + Sync)) {
    claim_slots_among(units, usize::MAX, &|_, i| f(i));
}

/// `f(range)` over `0..len` cut by [`tapered`] into ranges of whole `grain`s (the last
/// may be short), claimed as [`claim`]'s units: large ranges first at both ends, small
/// ones where the runners meet, so that the last to finish waits for little.
pub fn claim_ranges(len: usize, grain: usize, smallest: usize, f: &(dyn Fn(std::ops::Range<usize>) + Sync)) {
    let ranges = tapered(len, threads(), grain, smallest);
    claim(ranges.len(), &|u| f(ranges[u].clone()));
}

/// `0..len` cut for [`claim`] among `runners` (this thread from the front, the others
/// from the back): each end's share (1/runners at the front, the rest at the back) in
/// ranges that halve toward the middle, `runners - 1` of each size at the back, none
/// under `smallest` (rounded up to whole `grain`s) unless the share is. A fixed cut into
/// equal ranges left the last runner finishing a whole range while the others had none
/// (ResNet-50 b1: 2-7 ms per pass of the caller waiting, 5-8% of each product).
pub fn tapered(len: usize, runners: usize, grain: usize, smallest: usize) -> Vec<std::ops::Range<usize>> {
    let grain = grain.max(1);
    let grains = len.div_ceil(grain);
    let smallest = smallest.div_ceil(grain).max(1);
    let runners = runners.max(1);
    if runners == 1 || grains <= smallest {
        // (One range, the whole; none when empty.)
        return std::iter::once(0..len).filter(|r| !r.is_empty()).collect();
    }
    // Sizes in grains, outermost first, of a share split `ways` at a time.
    let sizes = |share: usize, ways: usize| -> Vec<usize> {
        let mut out = Vec::new();
        let mut left = share;
        while left > 0 {
            let each = (left / (2 * ways)).max(smallest);
            for _ in 0..ways {
                let s = each.min(left);
                if s > 0 {
                    out.push(s);
                    left -= s;
                }
            }
        }
        // A remainder under `smallest` joins the range before it.
        if out.len() > 1 && out[out.len() - 1] < smallest {
            let last = out.pop().unwrap_or(0);
            if let Some(prev) = out.last_mut() {
                *prev += last;
            }
        }
        out
    };
    let front_share = grains.div_ceil(runners);
    let front = sizes(front_share, 1);
    let back = sizes(grains - front_share, runners - 1);
    let mut cuts = Vec::with_capacity(front.len() + back.len());
    let mut at = 0;
    for s in front.iter().chain(back.iter().rev()) {
        cuts.push(at * grain..((at + s) * grain).min(len));
        at += s;
    }
    cuts
}

/// [`claim`] on at most `runners` threads, telling `f` which runner it is on as
/// `f(slot, unit)` (this thread is slot 0): units of one slot never run at once.
fn claim_slots_among(units: usize, runners: usize, f: &(dyn Fn(usize, usize) + Sync)) {
    let helpers = threads().min(units).min(runners).saturating_sub(1);
    // The unclaimed units `front..back`, packed as `front << 32 | back`.
    assert!(units < 1 << 32, "parallel: {units} units");
    let ends = AtomicU64::new(units as u64);
    let work = |slot: usize| {
        let from_back = slot > 0;
        loop {
            let cur = ends.load(Ordering::Relaxed);
            let (front, back) = (cur >> 32, cur & 0xffff_ffff);
            if front >= back {
                break;
            }
            let (next, i) = if from_back {
                (front << 32 | (back - 1), back - 1)
            } else {
                ((front + 1) << 32 | back, front)
            };
            if ends.compare_exchange(cur, next, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
                f(slot, i as usize);
            }
        }
    };
    if helpers == 0 {
        return work(0);
    }
    with_helpers(helpers, &work);
}

/// [`claim`] with a state per runner: `f(&mut state[slot], unit)`, at most
/// `state.len()` runners at once, so each can keep a scratch buffer (and what it holds)
/// from one unit to the next.
pub fn claim_with<S: Send>(units: usize, state: &mut [S], f: &(dyn Fn(&mut S, usize) + Sync)) {
    assert!(!state.is_empty(), "parallel: claim_with needs a state per runner");
    let slots: Vec<Slot<&mut S>> = state.iter_mut().map(|s| Slot(UnsafeCell::new(Some(s)))).collect();
    let runners = slots.len().min(units).max(1);
    claim_slots_among(units, runners, &|slot, i| {
        // SAFETY: units of one slot run one at a time on one thread (`claim_slots_among`),
        // so this is the only reference to slot `slot`'s state while `f` runs.
        if let Some(s) = unsafe { (*slots[slot].0.get()).as_deref_mut() } {
            f(s, i);
        }
    });
}

/// A helper's progress: the caller may cancel it only while it is still `OPEN`.
const OPEN: u8 = 0;
const RUNNING: u8 = 1;
const DONE: u8 = 2;
const CANCELLED: u8 = 3;

/// One helper's share of a [`with_helpers`] call.
struct Helper {
    state: AtomicU8,
    /// Passed to `work`: this helper's runner number, 1 and up.
    slot: usize,
    /// The caller's `work`, its lifetime erased: it is only called between a successful
    /// `OPEN -> RUNNING` and the store of `DONE`, and the caller does not return before it
    /// has either cancelled the helper (`OPEN -> CANCELLED`) or seen `DONE`.
    work: *const (dyn Fn(usize) + Sync + 'static),
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

// SAFETY: `work` points to a `Sync` closure and is dereferenced only under the protocol
// above; the other fields are thread-safe.
unsafe impl Send for Helper {}
// SAFETY: as for Send.
unsafe impl Sync for Helper {}

impl Helper {
    /// Run the caller's work unless the caller has already given up on this helper.
    fn run(&self) {
        if self.state.compare_exchange(OPEN, RUNNING, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            // SAFETY: RUNNING was taken from OPEN, so the caller is waiting for DONE and
            // `work` is alive (see `Helper::work`).
            let r = catch_unwind(AssertUnwindSafe(|| unsafe { (*self.work)(self.slot) }));
            if let Err(p) = r {
                *self.panic.lock().unwrap_or_else(|e| e.into_inner()) = Some(p);
            }
            self.state.store(DONE, Ordering::Release);
        }
    }
}

/// Run `work(slot)` on this thread (slot 0) and on `helpers` pool jobs at once (slots 1
/// and up, one helper each); `work` must share its work out itself (as [`claim`]'s loop
/// does). Returns when this thread's `work` has
/// returned and every helper has either finished or been cancelled before starting.
///
/// A scoped spawn (`rayon::in_place_scope`) would also wait for a job that has not
/// started: on a VM a parked thread can take tens of microseconds to wake, and a small
/// GEMM would wait for that after doing all its units itself (the MLP step ran only
/// 1.1-1.2x faster on two cores than on one because of it). A panic in any copy of `work` resumes here once all
/// helpers are accounted for.
fn with_helpers(helpers: usize, work: &(dyn Fn(usize) + Sync)) {
    // SAFETY: only the lifetime changes (same fat-pointer layout); `Helper::work` says
    // why the pointee outlives every use.
    let erased: *const (dyn Fn(usize) + Sync + 'static) =
        unsafe { std::mem::transmute(work as *const (dyn Fn(usize) + Sync)) };
    let mut lent = Vec::with_capacity(helpers);
    for (i, member) in team().iter().take(helpers).enumerate() {
        let h = Arc::new(Helper {
            state: AtomicU8::new(OPEN),
            slot: i + 1,
            work: erased,
            panic: Mutex::new(None),
        });
        lent.push(h.clone());
        member.lend(h);
    }
    let mine = catch_unwind(AssertUnwindSafe(|| work(0)));
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

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

    /// This thread's units are a prefix of the split and the helpers' the rest.
    #[test]
    fn claim_takes_this_threads_units_from_the_front() {
        let units = 2000;
        let by_helper: Vec<AtomicUsize> = (0..units).map(|_| AtomicUsize::new(2)).collect();
        claim(units, &|i| {
            by_helper[i].store(usize::from(IN_TEAM.with(Cell::get)), Ordering::Relaxed);
            std::hint::black_box((0..200).sum::<usize>());
        });
        let owner: Vec<usize> = by_helper.iter().map(|h| h.load(Ordering::Relaxed)).collect();
        assert!(owner.iter().all(|&o| o < 2), "every unit ran once");
        let mine = owner.iter().take_while(|&&o| o == 0).count();
        assert!(owner[mine..].iter().all(|&o| o == 1), "helpers' units follow this thread's");
    }

    /// Each runner's state is used by one unit at a time, and every unit runs once.
    #[test]
    fn claim_with_gives_each_runner_its_own_state() {
        let units = 500;
        let hits: Vec<AtomicUsize> = (0..units).map(|_| AtomicUsize::new(0)).collect();
        let mut state: Vec<(AtomicBool, usize)> =
            (0..threads()).map(|_| (AtomicBool::new(false), 0)).collect();
        claim_with(units, &mut state, &|(busy, count), i| {
            assert!(!busy.swap(true, Ordering::AcqRel), "a runner's state used by two units at once");
            hits[i].fetch_add(1, Ordering::Relaxed);
            *count += 1;
            std::hint::black_box((0..100).sum::<usize>());
            busy.store(false, Ordering::Release);
        });
        assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
        assert_eq!(state.iter().map(|s| s.1).sum::<usize>(), units);
        // One state: everything runs on this thread.
        let mut one = [0usize];
        claim_with(10, &mut one, &|n, _| *n += 1);
        assert_eq!(one[0], 10);
    }

    /// Tapered ranges cover `0..len` once, in order, in whole grains (but the last), none
    /// under `smallest` (unless all of it is), the middle ones the smallest.
    #[test]
    fn tapered_ranges_cover_and_shrink_inward() {
        for len in [0usize, 1, 5, 64, 100, 1000, 4096, 12345] {
            for runners in [1usize, 2, 3, 8] {
                for (grain, smallest) in [(1usize, 1usize), (6, 12), (16, 32)] {
                    let r = tapered(len, runners, grain, smallest);
                    let mut at = 0;
                    for x in &r {
                        assert_eq!(x.start, at, "{len} {runners} {grain}");
                        assert!(x.end > x.start && (x.start % grain == 0));
                        at = x.end;
                    }
                    assert_eq!(at, len);
                    if runners == 2 && len >= 1000 && grain == 6 {
                        let sizes: Vec<usize> = r.iter().map(|x| x.len()).collect();
                        assert!(sizes[0] >= 4 * sizes[sizes.len() / 2], "{sizes:?}");
                        assert!(sizes.iter().all(|&s| s >= 12), "{sizes:?}");
                    }
                }
            }
        }
        let one = tapered(100, 1, 1, 1);
        assert!(one.len() == 1 && one[0] == (0..100));
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
}
