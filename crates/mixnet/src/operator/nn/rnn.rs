//! The fused `RNN` operator (MXNet's `rnn.cc`): modes `rnn_relu`, `rnn_tanh`, `lstm`,
//! `gru`; `num_layers`, `bidirectional`, initial states and `state_outputs`; MXNet's flat
//! `parameters` layout (see `mixnet_kernels::rnn`), so weights exported by MXNet's
//! `gluon.rnn` layers load unchanged. Layout `(T, N, C)`.
//!
//! `use_sequence_length` adds a `sequence_length` input `(batch,)`: with cuDNN's semantics
//! (MXNet 1.9 has it on GPU only), steps past a row's length keep its state and output 0,
//! and the reverse direction starts at the row's last step.
//!
//! Not supported yet (an error says so): `projection_size`, the `lstm_state_clip_*`
//! options, and dropout between layers (`p > 0`) in training mode.

use std::sync::Arc;

use mixnet_kernels::rnn::{Mode, Rnn, Saved};
use parking_lot::Mutex;

use super::kernel::{check_float, info, load, run_kernel, with_real, write};
use crate::op::{Attrs, Blob, GradContext, OpContext, Operator, Registry, TensorInfo};
use crate::{Error, NDArray, Result, Shape};

const NAME: &str = "RNN";

/// What a training forward saved for backward, in its compute type.
enum SavedTrace {
    F32(Saved<f32>),
    F64(Saved<f64>),
}

/// Moving a [`Saved`] in and out of [`SavedTrace`] for the compute type `with_real!` binds.
trait Traced: Sized {
    fn wrap(s: Saved<Self>) -> SavedTrace;
    fn unwrap(s: SavedTrace) -> Option<Saved<Self>>;
}
impl Traced for f32 {
    fn wrap(s: Saved<f32>) -> SavedTrace {
        SavedTrace::F32(s)
    }
    fn unwrap(s: SavedTrace) -> Option<Saved<f32>> {
        match s {
            SavedTrace::F32(s) => Some(s),
            SavedTrace::F64(_) => None,
        }
    }
}
impl Traced for f64 {
    fn wrap(s: Saved<f64>) -> SavedTrace {
        SavedTrace::F64(s)
    }
    fn unwrap(s: SavedTrace) -> Option<Saved<f64>> {
        match s {
            SavedTrace::F64(s) => Some(s),
            SavedTrace::F32(_) => None,
        }
    }
}

/// A configured `RNN`. In training mode the forward keeps its gates and states in `saved`
/// (MXNet's reserve space) and the gradient uses them instead of running the forward again.
#[derive(Clone)]
pub struct RnnOp {
    mode: Mode,
    layers: usize,
    directions: usize,
    hidden: usize,
    state_outputs: bool,
    p: f64,
    /// A `sequence_length` input `(batch,)` follows the states.
    use_sequence_length: bool,
    saved: Arc<Mutex<Option<SavedTrace>>>,
}

fn build(_name: &'static str, attrs: &mut Attrs<'_>) -> Result<Arc<dyn Operator>> {
    let required = |attrs: &mut Attrs<'_>, key: &str| -> Result<usize> {
        match attrs.opt_int(key)? {
            Some(v) if v >= 1 => Ok(v as usize),
            Some(v) => Err(Error::op(NAME, format!("{key} must be at least 1, got {v}"))),
            None => Err(Error::op(NAME, format!("required attribute {key} is missing"))),
        }
    };
    let hidden = required(attrs, "state_size")?;
    let layers = required(attrs, "num_layers")?;
    let mode = match attrs.get("mode").map(str::trim) {
        Some("rnn_relu") => Mode::RnnRelu,
        Some("rnn_tanh") => Mode::RnnTanh,
        Some("lstm") => Mode::Lstm,
        Some("gru") => Mode::Gru,
        Some(other) => {
            return Err(Error::op(NAME, format!("mode must be rnn_relu, rnn_tanh, lstm or gru, got {other}")))
        }
        None => return Err(Error::op(NAME, "required attribute mode is missing")),
    };
    let directions = if attrs.bool("bidirectional", false)? { 2 } else { 1 };
    let state_outputs = attrs.bool("state_outputs", false)?;
    let p = attrs.float("p", 0.0)?;
    if !(0.0..=1.0).contains(&p) {
        return Err(Error::op(NAME, format!("p must be in [0, 1], got {p}")));
    }
    let use_sequence_length = attrs.bool("use_sequence_length", false)?;
    if attrs.opt_int("projection_size")?.is_some() {
        return Err(Error::op(NAME, "projection_size is not supported yet"));
    }
    if attrs.opt_float("lstm_state_clip_min")?.is_some() || attrs.opt_float("lstm_state_clip_max")?.is_some()
    {
        return Err(Error::op(NAME, "lstm_state_clip_min/max are not supported yet"));
    }
    attrs.bool("lstm_state_clip_nan", false)?;
    Ok(Arc::new(RnnOp {
        mode,
        layers,
        directions,
        hidden,
        state_outputs,
        p,
        use_sequence_length,
        saved: Arc::default(),
    }))
}

impl RnnOp {
    fn lstm(&self) -> bool {
        self.mode == Mode::Lstm
    }

    fn geometry(&self, data: &Shape) -> Result<Rnn> {
        match *data.dims() {
            [seq, batch, input] => Ok(Rnn {
                mode: self.mode,
                layers: self.layers,
                directions: self.directions,
                hidden: self.hidden,
                input,
                seq,
                batch,
            }),
            _ => Err(Error::op(NAME, format!("data must be 3-D (sequence, batch, input), got {data}"))),
        }
    }

    /// The `sequence_length` input as step counts (negative and NaN count as 0), when used.
    fn lengths(&self, inputs: &[Blob<'_>]) -> Result<Option<Vec<usize>>> {
        if !self.use_sequence_length {
            return Ok(None);
        }
        let idx = 3 + usize::from(self.lstm());
        let v = load::<f64>(&inputs[idx])?;
        Ok(Some(v.iter().map(|&x| if x > 0.0 { x as usize } else { 0 }).collect()))
    }

    fn state_shape(&self, batch: usize) -> Shape {
        Shape::new(&[self.layers * self.directions, batch, self.hidden])
    }
}

impl Operator for RnnOp {
    fn name(&self) -> &'static str {
        NAME
    }
    fn num_inputs(&self) -> usize {
        3 + usize::from(self.lstm()) + usize::from(self.use_sequence_length)
    }
    fn num_outputs(&self) -> usize {
        if self.state_outputs {
            2 + usize::from(self.lstm())
        } else {
            1
        }
    }
    fn input_names(&self) -> Vec<String> {
        let mut v: Vec<String> = ["data", "parameters", "state"].iter().map(|s| s.to_string()).collect();
        if self.lstm() {
            v.push("state_cell".into());
        }
        if self.use_sequence_length {
            v.push("sequence_length".into());
        }
        v
    }
    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        let data = &inputs[0];
        check_float(NAME, "data", data)?;
        let g = self.geometry(&data.shape)?;
        let want_params = g.param_count();
        if inputs[1].shape.dims() != [want_params] {
            return Err(Error::op(
                NAME,
                format!(
                    "parameters must have shape ({want_params},) for data {} and these attributes, got {}",
                    data.shape, inputs[1].shape
                ),
            ));
        }
        let state = self.state_shape(g.batch);
        let n_states = 1 + usize::from(self.lstm());
        if self.use_sequence_length {
            let lens = &inputs[2 + n_states];
            if lens.shape.dims() != [g.batch] {
                return Err(Error::op(
                    NAME,
                    format!("sequence_length must have shape ({},), got {}", g.batch, lens.shape),
                ));
            }
        }
        for (i, x) in inputs.iter().enumerate().skip(2).take(n_states) {
            if x.shape != state {
                return Err(Error::op(
                    NAME,
                    format!("{} must have shape {state}, got {}", self.input_names()[i], x.shape),
                ));
            }
        }
        if let Some(x) = inputs[..2 + n_states].iter().find(|x| x.dtype != data.dtype) {
            return Err(Error::op(NAME, format!("all inputs must be {}, got {}", data.dtype, x.dtype)));
        }
        let out = Shape::new(&[g.seq, g.batch, self.directions * self.hidden]);
        let mut outs = vec![TensorInfo::new(out, data.dtype)];
        for _ in 1..self.num_outputs() {
            outs.push(TensorInfo::new(state.clone(), data.dtype));
        }
        Ok(outs)
    }
    fn compute(&self, ctx: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        if ctx.is_train && self.p > 0.0 && self.layers > 1 {
            return Err(Error::op(NAME, "dropout between layers (p > 0 in training) is not supported yet"));
        }
        let g = self.geometry(inputs[0].shape())?;
        let (lstm, state_outputs) = (self.lstm(), self.state_outputs);
        let lens = self.lengths(inputs)?;
        with_real!(inputs[0].dtype(), NAME, R => {
            let v: Vec<_> = inputs.iter().map(load::<R>).collect::<Result<_>>()?;
            let zeros = vec![<R as mixnet_kernels::Element>::ZERO; v[2].len()];
            let c0: &[R] = if lstm { &v[3] } else { &zeros };
            let (out, hy, cy) = if ctx.is_train {
                let (out, hy, cy, saved) = g.forward_saved::<R>(&v[0], &v[1], &v[2], c0, lens.as_deref());
                *self.saved.lock() = Some(<R as Traced>::wrap(saved));
                (out, hy, cy)
            } else {
                g.forward::<R>(&v[0], &v[1], &v[2], c0, lens.as_deref())
            };
            write::<R>(&mut outputs[0], &out)?;
            if state_outputs {
                write::<R>(&mut outputs[1], &hy)?;
                if lstm {
                    write::<R>(&mut outputs[2], &cy)?;
                }
            }
            Ok(())
        })
    }
    fn has_gradient(&self) -> bool {
        true
    }
    fn gradient(&self, ctx: &GradContext<'_>) -> Result<Vec<Option<NDArray>>> {
        let g = self.geometry(ctx.inputs[0].shape())?;
        let (lstm, n_out) = (self.lstm(), ctx.out_grads.len());
        let n_diff = 3 + usize::from(lstm);
        let mut args: Vec<NDArray> = ctx.out_grads.to_vec();
        args.extend(ctx.inputs.iter().cloned());
        let infos = ctx.inputs[..n_diff].iter().map(info).collect();
        let this = self.clone();
        let saved = Mutex::new(self.saved.lock().take());
        let grads = run_kernel("_backward_RNN", &args, infos, move |_, ins, outs| {
            let lens = this.lengths(&ins[n_out..])?;
            with_real!(ins[0].dtype(), "_backward_RNN", R => {
                let v: Vec<_> = ins[..n_out + n_diff].iter().map(load::<R>).collect::<Result<_>>()?;
                let (dys, xs) = v.split_at(n_out);
                let zeros = vec![<R as mixnet_kernels::Element>::ZERO; xs[2].len()];
                let dhy: &[R] = dys.get(1).map_or(&zeros, |c| c);
                let dcy: &[R] = if lstm { dys.get(2).map_or(&zeros, |c| c) } else { &zeros };
                let c0: &[R] = if lstm { &xs[3] } else { &zeros };
                let (dx, dp, dh0, dc0) = match saved.lock().take().and_then(<R as Traced>::unwrap) {
                    Some(s) => g.backward_saved::<R>(s, &xs[1], xs[2].len(), &dys[0], dhy, dcy),
                    None => g.backward::<R>(&xs[0], &xs[1], &xs[2], c0, &dys[0], dhy, dcy, lens.as_deref()),
                };
                write::<R>(&mut outs[0], &dx)?;
                write::<R>(&mut outs[1], &dp)?;
                write::<R>(&mut outs[2], &dh0)?;
                if lstm {
                    write::<R>(&mut outs[3], &dc0)?;
                }
                Ok(())
            })
        })?;
        let mut grads: Vec<Option<NDArray>> = grads.into_iter().map(Some).collect();
        if self.use_sequence_length {
            grads.push(None);
        }
        Ok(grads)
    }
}

pub(crate) fn register(r: &mut Registry) {
    r.register_family(build, &[(NAME, &[])]);
}
