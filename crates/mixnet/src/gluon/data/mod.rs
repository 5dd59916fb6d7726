//! Datasets, samplers and the `DataLoader` (MXNet's `gluon.data`).
//!
//! A sample is a `Vec<NDArray>` (MXNet's tuple: image, label, ...). The default batchify
//! stacks field `k` of every sample into one array with a new leading batch axis. Shuffling
//! is seeded: each pass over a `DataLoader` draws the next permutation of one fixed-seed
//! stream, so two runs with the same seed see the same batches. Worker threads build
//! batches ahead of time (`prefetch`); batches come out in sampler order whatever the
//! number of workers.

pub mod vision;

use std::collections::BTreeMap;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::Mutex;

use crate::{Error, NDArray, Result, Shape};

/// One sample: its fields (data, label, ...).
pub type Sample = Vec<NDArray>;

/// Indexable collection of samples (MXNet's `Dataset`).
pub trait Dataset: Send + Sync {
    fn len(&self) -> usize;
    fn get(&self, idx: usize) -> Result<Sample>;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

type SampleFn = Arc<dyn Fn(Sample) -> Result<Sample> + Send + Sync>;

/// A dataset whose samples pass through a function (MXNet's `Dataset.transform`).
pub struct Transformed {
    inner: Arc<dyn Dataset>,
    f: SampleFn,
}

impl Dataset for Transformed {
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn get(&self, idx: usize) -> Result<Sample> {
        (self.f)(self.inner.get(idx)?)
    }
}

/// Apply `f` to whole samples (MXNet's `dataset.transform(fn)`, lazy).
pub fn transform(
    dataset: Arc<dyn Dataset>,
    f: impl Fn(Sample) -> Result<Sample> + Send + Sync + 'static,
) -> Arc<dyn Dataset> {
    Arc::new(Transformed { inner: dataset, f: Arc::new(f) })
}

/// Apply `f` to the first field only (MXNet's `dataset.transform_first(fn)`), the usual
/// way to attach image transforms.
pub fn transform_first(
    dataset: Arc<dyn Dataset>,
    f: impl Fn(&NDArray) -> Result<NDArray> + Send + Sync + 'static,
) -> Arc<dyn Dataset> {
    transform(dataset, move |mut s| {
        if let Some(first) = s.first_mut() {
            *first = f(first)?;
        }
        Ok(s)
    })
}

/// Samples given as a list (MXNet's `SimpleDataset`).
pub struct SimpleDataset {
    items: Vec<Sample>,
}
impl SimpleDataset {
    pub fn new(items: Vec<Sample>) -> Self {
        SimpleDataset { items }
    }
}
impl Dataset for SimpleDataset {
    fn len(&self) -> usize {
        self.items.len()
    }
    fn get(&self, idx: usize) -> Result<Sample> {
        self.items.get(idx).cloned().ok_or_else(|| {
            Error::Invalid(format!(
                "SimpleDataset: index {idx} out of range for {} samples",
                self.items.len()
            ))
        })
    }
}

/// Row `i` of each array is sample `i` (MXNet's `ArrayDataset(*arrays)`).
pub struct ArrayDataset {
    arrays: Vec<NDArray>,
    len: usize,
}
impl ArrayDataset {
    pub fn new(arrays: Vec<NDArray>) -> Result<Self> {
        let first =
            arrays.first().ok_or_else(|| Error::Invalid("ArrayDataset needs at least one array".into()))?;
        let len = *first.shape().first().ok_or_else(|| Error::Invalid("ArrayDataset: 0-d array".into()))?;
        for (i, a) in arrays.iter().enumerate() {
            if a.shape().first() != Some(&len) {
                return Err(Error::Invalid(format!(
                    "ArrayDataset: all arrays must have the same length; array 0 has {len} rows, array {i} has shape {}",
                    a.shape()
                )));
            }
        }
        Ok(ArrayDataset { arrays, len })
    }
}
impl Dataset for ArrayDataset {
    fn len(&self) -> usize {
        self.len
    }
    fn get(&self, idx: usize) -> Result<Sample> {
        if idx >= self.len {
            return Err(Error::Invalid(format!(
                "ArrayDataset: index {idx} out of range for {} samples",
                self.len
            )));
        }
        self.arrays.iter().map(|a| a.at(idx)).collect()
    }
}

/// SplitMix64: a tiny, fixed, portable generator (the shuffle must not change with a
/// dependency's version).
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0), without modulo bias.
    pub fn below(&mut self, n: u64) -> u64 {
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let v = self.next_u64();
            if v < zone {
                return v % n;
            }
        }
    }
    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

/// Yields sample indices for one pass (MXNet's `Sampler`).
pub trait Sampler: Send {
    /// The indices of the next pass.
    fn next_pass(&mut self) -> Vec<usize>;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `0..len` in order (MXNet's `SequentialSampler`).
pub struct SequentialSampler {
    len: usize,
}
impl SequentialSampler {
    pub fn new(len: usize) -> Self {
        SequentialSampler { len }
    }
}
impl Sampler for SequentialSampler {
    fn next_pass(&mut self) -> Vec<usize> {
        (0..self.len).collect()
    }
    fn len(&self) -> usize {
        self.len
    }
}

/// A fresh permutation of `0..len` each pass, from a seeded stream (MXNet's
/// `RandomSampler`, which draws from numpy's global generator).
pub struct RandomSampler {
    len: usize,
    rng: SplitMix64,
}
impl RandomSampler {
    pub fn new(len: usize, seed: u64) -> Self {
        RandomSampler { len, rng: SplitMix64::new(seed) }
    }
}
impl Sampler for RandomSampler {
    fn next_pass(&mut self) -> Vec<usize> {
        let mut v: Vec<usize> = (0..self.len).collect();
        self.rng.shuffle(&mut v);
        v
    }
    fn len(&self) -> usize {
        self.len
    }
}

/// What to do with a last batch smaller than `batch_size` (MXNet's `last_batch`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LastBatch {
    /// Yield it as a smaller batch.
    Keep,
    /// Drop it.
    Discard,
    /// Carry its samples over to the start of the next pass.
    Rollover,
}

impl LastBatch {
    pub fn parse(s: &str) -> Result<LastBatch> {
        match s {
            "keep" => Ok(LastBatch::Keep),
            "discard" => Ok(LastBatch::Discard),
            "rollover" => Ok(LastBatch::Rollover),
            _ => Err(Error::Invalid(format!(
                "last_batch must be one of 'keep', 'discard', or 'rollover', but got {s}"
            ))),
        }
    }
}

/// Groups a sampler's indices into batches (MXNet's `BatchSampler`).
pub struct BatchSampler {
    sampler: Box<dyn Sampler>,
    batch_size: usize,
    last_batch: LastBatch,
    prev: Vec<usize>,
}

impl BatchSampler {
    pub fn new(sampler: Box<dyn Sampler>, batch_size: usize, last_batch: LastBatch) -> Result<Self> {
        if batch_size == 0 {
            return Err(Error::Invalid("BatchSampler: batch_size must be positive".into()));
        }
        Ok(BatchSampler { sampler, batch_size, last_batch, prev: Vec::new() })
    }

    /// The batches of the next pass.
    pub fn next_pass(&mut self) -> Vec<Vec<usize>> {
        let mut all = std::mem::take(&mut self.prev);
        all.extend(self.sampler.next_pass());
        let mut batches: Vec<Vec<usize>> = all.chunks(self.batch_size).map(<[usize]>::to_vec).collect();
        if batches.last().is_some_and(|b| b.len() < self.batch_size) {
            match self.last_batch {
                LastBatch::Keep => {}
                LastBatch::Discard => {
                    batches.pop();
                }
                LastBatch::Rollover => self.prev = batches.pop().unwrap_or_default(),
            }
        }
        batches
    }

    /// Batches in a pass (for `rollover`, the count without carried samples, as MXNet).
    pub fn len(&self) -> usize {
        let n = self.sampler.len();
        match self.last_batch {
            LastBatch::Keep => n.div_ceil(self.batch_size),
            LastBatch::Discard => n / self.batch_size,
            LastBatch::Rollover => (self.prev.len() + n) / self.batch_size,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Turns a list of samples into a batch.
pub type BatchifyFn = Arc<dyn Fn(Vec<Sample>) -> Result<Vec<NDArray>> + Send + Sync>;

/// Stack field `k` of every sample along a new axis 0 (MXNet's `default_batchify_fn`).
pub fn default_batchify(samples: Vec<Sample>) -> Result<Vec<NDArray>> {
    let first = samples.first().ok_or_else(|| Error::Invalid("batchify: empty batch".into()))?;
    let fields = first.len();
    let mut out = Vec::with_capacity(fields);
    for (k, f0) in first.iter().enumerate() {
        let mut bytes = Vec::with_capacity(samples.len() * f0.size() * f0.dtype().size());
        for (i, s) in samples.iter().enumerate() {
            let x = s.get(k).ok_or_else(|| {
                Error::Invalid(format!("batchify: sample {i} has {} fields, sample 0 has {fields}", s.len()))
            })?;
            if x.shape() != f0.shape() || x.dtype() != f0.dtype() {
                return Err(Error::Invalid(format!(
                    "batchify: field {k} of sample {i} is {} {}, of sample 0 {} {}; samples must match to be stacked",
                    x.shape(),
                    x.dtype(),
                    f0.shape(),
                    f0.dtype()
                )));
            }
            bytes.extend_from_slice(&x.to_bytes()?);
        }
        let mut dims = vec![samples.len()];
        dims.extend(f0.shape().iter());
        out.push(NDArray::from_bytes(&bytes, Shape::from(dims), f0.dtype(), f0.context())?);
    }
    Ok(out)
}

/// Loads batches from a dataset (MXNet's `DataLoader(dataset, batch_size, shuffle,
/// sampler, last_batch, batch_sampler, batchify_fn, num_workers, prefetch)`).
pub struct DataLoader {
    dataset: Arc<dyn Dataset>,
    batch_sampler: BatchSampler,
    batchify: BatchifyFn,
    num_workers: usize,
    prefetch: Option<usize>,
}

/// Options of [`DataLoader::new`]; `Default` is MXNet's defaults (no shuffle, `keep`, no
/// workers) plus seed 0 for shuffling.
#[derive(Clone, Copy, Debug)]
pub struct LoaderOptions {
    pub shuffle: bool,
    pub seed: u64,
    pub last_batch: LastBatch,
    pub num_workers: usize,
    /// Batches prepared ahead (default `2 * num_workers`).
    pub prefetch: Option<usize>,
}

impl Default for LoaderOptions {
    fn default() -> Self {
        LoaderOptions { shuffle: false, seed: 0, last_batch: LastBatch::Keep, num_workers: 0, prefetch: None }
    }
}

impl DataLoader {
    pub fn new(dataset: Arc<dyn Dataset>, batch_size: usize, opts: LoaderOptions) -> Result<Self> {
        let n = dataset.len();
        let sampler: Box<dyn Sampler> = if opts.shuffle {
            Box::new(RandomSampler::new(n, opts.seed))
        } else {
            Box::new(SequentialSampler::new(n))
        };
        let batch_sampler = BatchSampler::new(sampler, batch_size, opts.last_batch)?;
        Ok(DataLoader {
            dataset,
            batch_sampler,
            batchify: Arc::new(default_batchify),
            num_workers: opts.num_workers,
            prefetch: opts.prefetch,
        })
    }

    /// A loader driven by a custom batch sampler (MXNet's `batch_sampler=`).
    pub fn with_batch_sampler(
        dataset: Arc<dyn Dataset>,
        batch_sampler: BatchSampler,
        num_workers: usize,
    ) -> Self {
        DataLoader {
            dataset,
            batch_sampler,
            batchify: Arc::new(default_batchify),
            num_workers,
            prefetch: None,
        }
    }

    /// Replace the batchify function.
    pub fn batchify_fn(mut self, f: BatchifyFn) -> Self {
        self.batchify = f;
        self
    }

    /// Batches per pass.
    pub fn len(&self) -> usize {
        self.batch_sampler.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn dataset(&self) -> &Arc<dyn Dataset> {
        &self.dataset
    }

    /// One pass over the data.
    pub fn iter(&mut self) -> DataLoaderIter {
        let batches = self.batch_sampler.next_pass();
        if self.num_workers == 0 {
            return DataLoaderIter {
                inner: Inner::Inline {
                    dataset: self.dataset.clone(),
                    batchify: self.batchify.clone(),
                    batches: batches.into_iter(),
                },
            };
        }
        let (job_tx, job_rx) = channel::<(usize, Vec<usize>)>();
        let (res_tx, res_rx) = channel::<(usize, Result<Vec<NDArray>>)>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let workers = (0..self.num_workers)
            .map(|w| {
                let (job_rx, res_tx) = (job_rx.clone(), res_tx.clone());
                let (dataset, batchify) = (self.dataset.clone(), self.batchify.clone());
                std::thread::Builder::new()
                    .name(format!("dataloader-{w}"))
                    .spawn(move || loop {
                        let job = job_rx.lock().recv();
                        let Ok((i, idx)) = job else { break };
                        let batch = make_batch(dataset.as_ref(), &batchify, &idx);
                        if res_tx.send((i, batch)).is_err() {
                            break;
                        }
                    })
                    .expect("spawn a data loader thread")
            })
            .collect();
        let prefetch = self.prefetch.unwrap_or(2 * self.num_workers).max(1);
        let mut it = Threaded {
            job_tx: Some(job_tx),
            res_rx,
            workers,
            pending: BTreeMap::new(),
            batches,
            next: 0,
            sent: 0,
        };
        while it.sent < it.batches.len().min(prefetch) {
            it.send_one();
        }
        DataLoaderIter { inner: Inner::Threaded(it) }
    }
}

fn make_batch(dataset: &dyn Dataset, batchify: &BatchifyFn, idx: &[usize]) -> Result<Vec<NDArray>> {
    let samples = idx.iter().map(|&i| dataset.get(i)).collect::<Result<Vec<_>>>()?;
    batchify(samples)
}

/// Iterator over one pass of a [`DataLoader`].
pub struct DataLoaderIter {
    inner: Inner,
}

enum Inner {
    Inline { dataset: Arc<dyn Dataset>, batchify: BatchifyFn, batches: std::vec::IntoIter<Vec<usize>> },
    Threaded(Threaded),
}

struct Threaded {
    job_tx: Option<Sender<(usize, Vec<usize>)>>,
    res_rx: Receiver<(usize, Result<Vec<NDArray>>)>,
    workers: Vec<JoinHandle<()>>,
    pending: BTreeMap<usize, Result<Vec<NDArray>>>,
    batches: Vec<Vec<usize>>,
    next: usize,
    sent: usize,
}

impl Threaded {
    fn send_one(&mut self) {
        if let Some(tx) = &self.job_tx {
            let idx = std::mem::take(&mut self.batches[self.sent]);
            let _ = tx.send((self.sent, idx));
            self.sent += 1;
        }
    }
}

impl Iterator for DataLoaderIter {
    type Item = Result<Vec<NDArray>>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.inner {
            Inner::Inline { dataset, batchify, batches } => {
                let idx = batches.next()?;
                Some(make_batch(dataset.as_ref(), batchify, &idx))
            }
            Inner::Threaded(t) => {
                if t.next >= t.batches.len() {
                    return None;
                }
                loop {
                    if let Some(b) = t.pending.remove(&t.next) {
                        t.next += 1;
                        if t.sent < t.batches.len() {
                            t.send_one();
                        }
                        return Some(b);
                    }
                    match t.res_rx.recv() {
                        Ok((i, b)) => {
                            t.pending.insert(i, b);
                        }
                        Err(_) => {
                            t.next = t.batches.len();
                            return Some(Err(Error::Invalid("data loader worker threads stopped".into())));
                        }
                    }
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = match &self.inner {
            Inner::Inline { batches, .. } => batches.len(),
            Inner::Threaded(t) => t.batches.len() - t.next,
        };
        (n, Some(n))
    }
}

impl Drop for Threaded {
    fn drop(&mut self) {
        self.job_tx = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}
