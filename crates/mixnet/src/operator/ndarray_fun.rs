//! MXNet's legacy NDArray functions (`MXNET_REGISTER_NDARRAY_FUN` in `ndarray.cc`) that are
//! reachable as operators: `_onehot_encode(indices, like)` and
//! `fill_element_0index(lhs, values, indices)`, and `_set_value`. They have no gradient in
//! MXNet.
//!
//! `_set_value(src=v, out=x)` writes the scalar into an existing array; here that array is
//! its one input, which it mutates (MXNet's mutate var), and it returns no output.

use std::sync::Arc;

use super::nn::kernel::{load, load_i64, write};
use crate::op::{Attrs, Blob, OpContext, Operator, Registry, TensorInfo};
use crate::{Error, Result};

/// A configured NDArray function.
pub struct NdarrayFun {
    name: &'static str,
}

fn build(name: &'static str, _attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    Ok(Arc::new(NdarrayFun { name }))
}

/// `_set_value`: fill its input with `src`.
pub struct SetValue {
    src: f64,
}

fn build_set_value(_name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    let src = attrs
        .opt_float("src")?
        .ok_or_else(|| Error::op("_set_value", "required attribute src is missing"))?;
    // MXNet passes the scalar as a float.
    Ok(Arc::new(SetValue { src: src as f32 as f64 }))
}

impl Operator for SetValue {
    fn name(&self) -> &'static str {
        "_set_value"
    }
    fn num_inputs(&self) -> usize {
        1
    }
    fn num_outputs(&self) -> usize {
        0
    }
    fn input_names(&self) -> Vec<String> {
        vec!["out".into()]
    }
    fn mutate_inputs(&self) -> &[usize] {
        &[0]
    }
    fn infer(&self, _inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        Ok(Vec::new())
    }
    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], _outputs: &mut [Blob<'_>]) -> Result<()> {
        let v = self.src;
        crate::with_dtype!(inputs[0].dtype(), T => inputs[0].slice_mut::<T>()?.fill(<T as mixnet_kernels::Element>::from_f64(v)));
        Ok(())
    }
}

impl NdarrayFun {
    fn fill(&self) -> bool {
        self.name == "fill_element_0index"
    }
}

impl Operator for NdarrayFun {
    fn name(&self) -> &'static str {
        self.name
    }
    fn num_inputs(&self) -> usize {
        if self.fill() {
            3
        } else {
            2
        }
    }
    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        // The matrix is the last input of _onehot_encode and the first of fill_element_0index.
        let m = if self.fill() { &inputs[0] } else { &inputs[1] };
        let [rows, _] = *m.shape.dims() else {
            return Err(Error::op(self.name, format!("the matrix must be 2-D, got {}", m.shape)));
        };
        let vectors = if self.fill() { &inputs[1..] } else { &inputs[..1] };
        if let Some(v) = vectors.iter().find(|v| v.shape.dims() != [rows]) {
            return Err(Error::op(
                self.name,
                format!("vectors must have shape ({rows},) for a matrix {}, got {}", m.shape, v.shape),
            ));
        }
        Ok(vec![m.clone()])
    }
    fn compute(&self, _ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        let (m, idx) = if self.fill() { (&inputs[0], &inputs[2]) } else { (&inputs[1], &inputs[0]) };
        let cols = m.shape().dims()[1];
        let idx = load_i64(idx)?;
        if let Some(&bad) = idx.iter().find(|&&i| i < 0 || i as usize >= cols) {
            return Err(Error::op(self.name, format!("index {bad} is outside 0..{cols}")));
        }
        let mut out: Vec<f64> =
            if self.fill() { load::<f64>(&inputs[0])?.into_owned() } else { vec![0.0; m.numel()] };
        let values = if self.fill() { Some(load::<f64>(&inputs[1])?) } else { None };
        for (r, &i) in idx.iter().enumerate() {
            out[r * cols + i as usize] = values.as_ref().map_or(1.0, |v| v[r]);
        }
        write::<f64>(&mut outputs[0], &out)
    }
}

pub(crate) fn register(r: &mut Registry) {
    r.register_family(build, &[("_onehot_encode", &[]), ("fill_element_0index", &[])]);
    r.register_family(build_set_value, &[("_set_value", &[])]);
}
