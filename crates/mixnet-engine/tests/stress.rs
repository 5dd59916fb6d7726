//! Randomized DAGs: every engine must end in the state a sequential replay gives, and must
//! never let a write overlap another access of the same var.

mod common;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use mixnet_engine::{Engine, OpProps, Var};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DAGS: u64 = 100;
const OPS: usize = 2000;
const VARS: usize = 32;

/// One shared buffer guarded by an engine var, with an access counter that detects
/// overlaps: readers add 1, a writer swaps 0 for -1.
struct Slot {
    value: AtomicU64,
    access: AtomicI64,
}

#[derive(Clone)]
struct OpSpec {
    reads: Vec<usize>,
    writes: Vec<usize>,
    light: bool,
}

fn mix(a: u64, b: u64) -> u64 {
    // splitmix64 step over a ^ b: order-sensitive, so any reordering shows in the result.
    let mut z = (a ^ b.rotate_left(17)).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn random_dag(seed: u64) -> Vec<OpSpec> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..OPS)
        .map(|_| {
            let nr = rng.gen_range(0..=3);
            let nw = rng.gen_range(0..=2);
            let reads: Vec<usize> = (0..nr).map(|_| rng.gen_range(0..VARS)).collect();
            let mut writes: Vec<usize> = (0..nw).map(|_| rng.gen_range(0..VARS)).collect();
            if rng.gen_bool(0.2) && !reads.is_empty() {
                writes.push(reads[0]); // read-modify-write listed in both
            }
            OpSpec { reads, writes, light: rng.gen_bool(0.5) }
        })
        .collect()
}

/// The value each op computes from its inputs, identical in the engine run and the replay.
fn apply(index: usize, spec: &OpSpec, read: impl Fn(usize) -> u64, mut write: impl FnMut(usize, u64)) {
    let mut h = index as u64;
    for &r in &spec.reads {
        h = mix(h, read(r));
    }
    let mut written: Vec<usize> = Vec::new();
    for &w in &spec.writes {
        if !written.contains(&w) {
            written.push(w);
            let old = read(w);
            write(w, mix(old, h));
        }
    }
}

fn replay(dag: &[OpSpec]) -> (Vec<u64>, Vec<u64>) {
    let mut values: Vec<u64> = (0..VARS as u64).collect();
    let mut versions = vec![0u64; VARS];
    for (i, spec) in dag.iter().enumerate() {
        let snapshot = values.clone();
        apply(i, spec, |v| snapshot[v], |w, x| values[w] = x);
        let mut seen = Vec::new();
        for &w in &spec.writes {
            if !seen.contains(&w) {
                seen.push(w);
                versions[w] += 1;
            }
        }
    }
    (values, versions)
}

fn run_on(engine: &dyn Engine, dag: &[OpSpec]) -> (Vec<u64>, Vec<u64>, bool) {
    let vars: Vec<Var> = (0..VARS).map(|_| engine.new_var()).collect();
    let slots: Arc<Vec<Slot>> = Arc::new(
        (0..VARS as u64).map(|i| Slot { value: AtomicU64::new(i), access: AtomicI64::new(0) }).collect(),
    );
    let overlap = Arc::new(AtomicBool::new(false));
    for (i, spec) in dag.iter().enumerate() {
        let reads: Vec<Var> = spec.reads.iter().map(|&r| vars[r].clone()).collect();
        let writes: Vec<Var> = spec.writes.iter().map(|&w| vars[w].clone()).collect();
        let (slots, overlap, spec2) = (slots.clone(), overlap.clone(), spec.clone());
        let op = move || {
            let is_write = |v: &usize| spec2.writes.contains(v);
            let mut entered = Vec::new();
            for v in spec2.reads.iter().chain(&spec2.writes) {
                if entered.contains(v) {
                    continue;
                }
                entered.push(*v);
                let a = &slots[*v].access;
                if is_write(v) {
                    if a.compare_exchange(0, -1, Ordering::SeqCst, Ordering::SeqCst).is_err() {
                        overlap.store(true, Ordering::SeqCst);
                    }
                } else if a.fetch_add(1, Ordering::SeqCst) < 0 {
                    overlap.store(true, Ordering::SeqCst);
                }
            }
            let snapshot: Vec<u64> = slots.iter().map(|s| s.value.load(Ordering::SeqCst)).collect();
            apply(i, &spec2, |v| snapshot[v], |w, x| slots[w].value.store(x, Ordering::SeqCst));
            for v in &entered {
                let a = &slots[*v].access;
                if is_write(v) {
                    a.store(0, Ordering::SeqCst);
                } else {
                    a.fetch_sub(1, Ordering::SeqCst);
                }
            }
            Ok::<(), String>(())
        };
        engine.push_fn(op, &reads, &writes, OpProps::new("rmw").light(spec.light));
    }
    engine.wait_all().unwrap();
    let values = slots.iter().map(|s| s.value.load(Ordering::SeqCst)).collect();
    let versions = vars.iter().map(Var::version).collect();
    (values, versions, overlap.load(Ordering::SeqCst))
}

#[test]
fn random_dags_match_sequential_replay() {
    let engines = common::engines();
    for seed in 0..DAGS {
        let dag = random_dag(seed);
        let (want_values, want_versions) = replay(&dag);
        for (label, engine) in &engines {
            let (values, versions, overlap) = run_on(engine.as_ref(), &dag);
            assert!(!overlap, "{label}, dag {seed}: a write overlapped another access");
            assert_eq!(values, want_values, "{label}, dag {seed}: final state differs from replay");
            assert_eq!(versions, want_versions, "{label}, dag {seed}: versions differ");
        }
    }
}
