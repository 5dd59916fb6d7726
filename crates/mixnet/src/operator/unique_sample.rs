//! `_sample_unique_zipfian` (MXNet's `random/unique_sample_op`): per batch row, draw
//! classes from the approximately log-uniform (Zipfian) distribution
//! `value = round(exp(u · ln(range_max))) − 1`, `u ~ U[0, 1)`, keeping only values not yet
//! drawn in that row until `shape[1]` distinct ones are collected. Outputs the samples and
//! the number of draws per row (for sampled-softmax corrections), both int64. Draws come
//! from the context's generator, as every random op's.

use std::collections::HashSet;
use std::sync::Arc;

use rand::Rng;

use crate::op::{Attrs, Blob, OpContext, OpDef, Operator, Registry, Resource, TensorInfo};
use crate::{DType, Error, Result, Shape};

const NAME: &str = "_sample_unique_zipfian";

/// A configured `_sample_unique_zipfian`.
pub struct UniqueZipfian {
    range_max: usize,
    batch: usize,
    num_sampled: usize,
}

fn build(_name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    let range_max = attrs
        .opt_int("range_max")?
        .ok_or_else(|| Error::op(NAME, "required attribute range_max is missing"))?;
    if range_max < 1 {
        return Err(Error::op(NAME, format!("range_max={range_max} must be at least 1")));
    }
    let (batch, num_sampled) = match attrs.tuple("shape")?.as_deref() {
        Some(&[b, n]) if b >= 0 && n >= 0 => (b as usize, n as usize),
        other => {
            return Err(Error::op(
                NAME,
                format!("shape must be 2-D (batch_size, num_sampled), got {other:?}"),
            ))
        }
    };
    if num_sampled > range_max as usize {
        return Err(Error::op(
            NAME,
            format!(
                "number of samples {num_sampled} cannot exceed the number of possible classes {range_max}"
            ),
        ));
    }
    Ok(Arc::new(UniqueZipfian { range_max: range_max as usize, batch, num_sampled }))
}

impl Operator for UniqueZipfian {
    fn name(&self) -> &'static str {
        NAME
    }
    fn num_inputs(&self) -> usize {
        0
    }
    fn num_outputs(&self) -> usize {
        2
    }
    fn resources(&self) -> &[Resource] {
        &[Resource::Random]
    }
    fn infer(&self, _inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        Ok(vec![
            TensorInfo::new(Shape::new(&[self.batch, self.num_sampled]), DType::I64),
            TensorInfo::new(Shape::new(&[self.batch]), DType::I64),
        ])
    }
    fn compute(&self, ctx: &OpContext, _inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let log_range = (self.range_max as f64).ln();
        let (samples, tries) = outputs.split_at_mut(1);
        let (samples, tries) = (samples[0].slice_mut::<i64>()?, tries[0].slice_mut::<i64>()?);
        tries.fill(0);
        crate::resource::random(ctx.ctx).with_rng(|rng| {
            let mut seen = HashSet::with_capacity(self.num_sampled);
            for (row, t) in samples.chunks_mut(self.num_sampled.max(1)).zip(tries.iter_mut()) {
                seen.clear();
                let mut n = 0;
                while seen.len() < self.num_sampled {
                    let u: f64 = rng.gen();
                    let v = (u * log_range).exp().round() as i64 - 1;
                    if seen.insert(v) {
                        row[seen.len() - 1] = v;
                    }
                    n += 1;
                }
                *t = n;
            }
        });
        Ok(())
    }
}

pub(crate) fn register(r: &mut Registry) {
    r.register(OpDef { name: NAME, aliases: &[], build });
}
