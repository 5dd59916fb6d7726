//! Recurrent cells stepped one time step at a time (MXNet's `gluon.rnn` `RNNCell`,
//! `LSTMCell`, `GRUCell`, `SequentialRNNCell`, `DropoutCell`, `ResidualCell`,
//! `BidirectionalCell`), each computed with registered operators so autograd runs through
//! them. `unroll` takes and returns whole sequences (MXNet's `merge_outputs=True`) in the
//! `NTC` or `TNC` layout; with `valid_length` the outputs past each sample's length are 0
//! and the states are the ones of its last valid step, as MXNet does.
//!
//! Parameters carry MXNet's names (`i2h_weight`, `h2h_weight`, `i2h_bias`, `h2h_bias`)
//! under prefixes `rnn0_`, `lstm0_`, `gru0_`; containers name children `0`, `1`, ...,
//! `l_cell`/`r_cell` and `base_cell` as MXNet's `save_parameters` does.

use std::sync::Arc;

use crate::gluon::block::{Block, BlockBase, HybridBlock};
use crate::gluon::{op, Parameter};
use crate::initializer::{Initializer, Zero};
use crate::{Error, NDArray, Result};

/// A recurrent cell (MXNet's `RecurrentCell`).
pub trait RecurrentCell: Block {
    /// Shapes of the states for `batch` samples, `(batch, hidden)` each.
    fn state_info(&self, batch: usize) -> Vec<Vec<usize>>;

    /// One time step on `(batch, features)`: the output and the new states.
    fn step(&self, input: &NDArray, states: &[NDArray]) -> Result<(NDArray, Vec<NDArray>)>;

    /// Zero states for `batch` samples (MXNet's `begin_state(batch_size)`).
    fn begin_state(&self, batch: usize) -> Result<Vec<NDArray>> {
        self.state_info(batch)
            .into_iter()
            .map(|s| NDArray::zeros(s, crate::DType::F32, crate::cpu(0)))
            .collect()
    }

    /// Run over `length` steps of `inputs` (`layout` `NTC` or `TNC`) from `begin_state`
    /// (zeros when `None`): the outputs in the same layout and the final states.
    fn unroll(
        &self,
        length: usize,
        inputs: &NDArray,
        begin_state: Option<&[NDArray]>,
        layout: &str,
        valid_length: Option<&NDArray>,
    ) -> Result<(NDArray, Vec<NDArray>)> {
        unroll_steps(self, length, inputs, begin_state, layout, valid_length)
    }
}

/// The time axis of `layout` and the batch size of `inputs`.
fn time_axis(cell: &str, layout: &str, inputs: &NDArray, length: usize) -> Result<(usize, usize)> {
    let t = match layout {
        "NTC" => 1,
        "TNC" => 0,
        other => return Err(Error::Invalid(format!("{cell}: layout must be NTC or TNC, got '{other}'"))),
    };
    if inputs.ndim() != 3 || inputs.shape()[t] != length {
        return Err(Error::Invalid(format!(
            "{cell}: inputs must be 3-D ({layout}) with {length} steps, got {}",
            inputs.shape()
        )));
    }
    Ok((t, inputs.shape()[1 - t]))
}

fn stack(items: &[NDArray], axis: usize) -> Result<NDArray> {
    let n = items.len().to_string();
    op("stack", items, &[("num_args", &n), ("axis", &axis.to_string())])
}

fn seq_op(name: &str, data: &NDArray, valid_length: &NDArray, axis: usize) -> Result<NDArray> {
    op(
        name,
        &[data.clone(), valid_length.clone()],
        &[("use_sequence_length", "True"), ("axis", &axis.to_string())],
    )
}

/// MXNet's `RecurrentCell.unroll`: step through time, then mask by `valid_length`.
fn unroll_steps<C: RecurrentCell + ?Sized>(
    cell: &C,
    length: usize,
    inputs: &NDArray,
    begin_state: Option<&[NDArray]>,
    layout: &str,
    valid_length: Option<&NDArray>,
) -> Result<(NDArray, Vec<NDArray>)> {
    let (axis, batch) = time_axis(cell.name(), layout, inputs, length)?;
    let steps = crate::imperative::invoke(
        "SliceChannel",
        std::slice::from_ref(inputs),
        &[("num_outputs", &length.to_string()), ("axis", &axis.to_string()), ("squeeze_axis", "True")],
    )?;
    let mut states = match begin_state {
        Some(s) => s.to_vec(),
        None => cell.begin_state(batch)?,
    };
    let (mut outputs, mut all_states) = (Vec::with_capacity(length), Vec::new());
    for x in &steps {
        let (out, next) = cell.step(x, &states)?;
        outputs.push(out);
        if valid_length.is_some() {
            all_states.push(next.clone());
        }
        states = next;
    }
    let outputs = stack(&outputs, axis)?;
    match valid_length {
        None => Ok((outputs, states)),
        Some(len) => {
            let last = (0..states.len())
                .map(|k| {
                    let per_step: Vec<NDArray> = all_states.iter().map(|s| s[k].clone()).collect();
                    seq_op("SequenceLast", &stack(&per_step, 0)?, len, 0)
                })
                .collect::<Result<_>>()?;
            Ok((seq_op("SequenceMask", &outputs, len, axis)?, last))
        }
    }
}

/// The four parameters of a gated cell: `i2h_weight (gates·H, input)` (input inferred
/// at the first step), `h2h_weight (gates·H, H)`, zero-initialized biases.
struct CellParams {
    i2h_weight: Parameter,
    h2h_weight: Parameter,
    i2h_bias: Parameter,
    h2h_bias: Parameter,
}

impl CellParams {
    fn new(base: &BlockBase, rows: usize, hidden: usize, input: usize) -> Self {
        let zero: Option<Arc<dyn Initializer>> = Some(Arc::new(Zero));
        CellParams {
            i2h_weight: base.param("i2h_weight", &[rows, input]),
            h2h_weight: base.param("h2h_weight", &[rows, hidden]),
            i2h_bias: base.param("i2h_bias", &[rows]).with_init(zero.clone()),
            h2h_bias: base.param("h2h_bias", &[rows]).with_init(zero),
        }
    }

    fn list(&self) -> Vec<(String, Parameter)> {
        vec![
            ("i2h_weight".into(), self.i2h_weight.clone()),
            ("h2h_weight".into(), self.h2h_weight.clone()),
            ("i2h_bias".into(), self.i2h_bias.clone()),
            ("h2h_bias".into(), self.h2h_bias.clone()),
        ]
    }

    /// `(i2h, h2h)`: both FullyConnected projections of a step.
    fn project(&self, cell: &str, x: &NDArray, h: &NDArray, rows: usize) -> Result<(NDArray, NDArray)> {
        if x.ndim() != 2 || h.ndim() != 2 || x.shape()[0] != h.shape()[0] {
            return Err(Error::Invalid(format!(
                "{cell}: a step takes (batch, features) inputs and (batch, hidden) states, got {} and {}",
                x.shape(),
                h.shape()
            )));
        }
        self.i2h_weight.infer_shape(cell, &[rows, x.shape()[1]])?;
        let n = rows.to_string();
        let fc = |x: &NDArray, w: &Parameter, b: &Parameter| {
            op("FullyConnected", &[x.clone(), w.data()?, b.data()?], &[("num_hidden", &n)])
        };
        Ok((fc(x, &self.i2h_weight, &self.i2h_bias)?, fc(h, &self.h2h_weight, &self.h2h_bias)?))
    }
}

fn check_states(cell: &str, states: &[NDArray], want: usize) -> Result<()> {
    if states.len() != want {
        return Err(Error::Invalid(format!("{cell}: expected {want} state arrays, got {}", states.len())));
    }
    Ok(())
}

fn add(a: &NDArray, b: &NDArray) -> Result<NDArray> {
    op("elemwise_add", &[a.clone(), b.clone()], &[])
}
fn mul(a: &NDArray, b: &NDArray) -> Result<NDArray> {
    op("elemwise_mul", &[a.clone(), b.clone()], &[])
}
fn act(x: &NDArray, act: &str) -> Result<NDArray> {
    op("Activation", &[x.clone()], &[("act_type", act)])
}
fn split(x: &NDArray, parts: usize) -> Result<Vec<NDArray>> {
    crate::imperative::invoke("SliceChannel", std::slice::from_ref(x), &[("num_outputs", &parts.to_string())])
}

macro_rules! cell_block {
    ($ty:ident) => {
        impl Block for $ty {
            fn base(&self) -> &BlockBase {
                &self.base
            }
            /// One step from zero states (use `step` or `unroll` to carry state).
            fn forward(&self, x: &NDArray) -> Result<NDArray> {
                let batch = x.shape().first().copied().unwrap_or(0);
                Ok(self.step(x, &self.begin_state(batch)?)?.0)
            }
            fn params(&self) -> Vec<(String, Parameter)> {
                self.p.list()
            }
            crate::impl_as_dyn!();
        }
        impl HybridBlock for $ty {}
    };
}

/// Elman cell `h' = act(W_i x + b_i + W_h h + b_h)` (MXNet's `RNNCell(hidden_size,
/// activation='tanh')`).
pub struct RNNCell {
    base: BlockBase,
    hidden: usize,
    activation: String,
    p: CellParams,
}

impl RNNCell {
    /// `activation`: `tanh`, `relu`, `sigmoid`, `softsign` or another `Activation` type.
    pub fn new(hidden: usize, activation: &str) -> Self {
        let base = BlockBase::new(None, "rnn");
        let p = CellParams::new(&base, hidden, hidden, 0);
        RNNCell { base, hidden, activation: activation.into(), p }
    }
}

impl RecurrentCell for RNNCell {
    fn state_info(&self, batch: usize) -> Vec<Vec<usize>> {
        vec![vec![batch, self.hidden]]
    }
    fn step(&self, x: &NDArray, states: &[NDArray]) -> Result<(NDArray, Vec<NDArray>)> {
        check_states(self.name(), states, 1)?;
        let (i2h, h2h) = self.p.project(self.name(), x, &states[0], self.hidden)?;
        let out = act(&add(&i2h, &h2h)?, &self.activation)?;
        Ok((out.clone(), vec![out]))
    }
}
cell_block!(RNNCell);

/// Long short-term memory cell, gates in MXNet's order i, f, g, o (MXNet's
/// `LSTMCell(hidden_size)`); states `[h, c]`.
pub struct LSTMCell {
    base: BlockBase,
    hidden: usize,
    p: CellParams,
}

impl LSTMCell {
    pub fn new(hidden: usize) -> Self {
        let base = BlockBase::new(None, "lstm");
        let p = CellParams::new(&base, 4 * hidden, hidden, 0);
        LSTMCell { base, hidden, p }
    }
}

impl RecurrentCell for LSTMCell {
    fn state_info(&self, batch: usize) -> Vec<Vec<usize>> {
        vec![vec![batch, self.hidden]; 2]
    }
    fn step(&self, x: &NDArray, states: &[NDArray]) -> Result<(NDArray, Vec<NDArray>)> {
        check_states(self.name(), states, 2)?;
        let (i2h, h2h) = self.p.project(self.name(), x, &states[0], 4 * self.hidden)?;
        let g = split(&add(&i2h, &h2h)?, 4)?;
        let (i, f, c, o) =
            (act(&g[0], "sigmoid")?, act(&g[1], "sigmoid")?, act(&g[2], "tanh")?, act(&g[3], "sigmoid")?);
        let next_c = add(&mul(&f, &states[1])?, &mul(&i, &c)?)?;
        let next_h = mul(&o, &act(&next_c, "tanh")?)?;
        Ok((next_h.clone(), vec![next_h, next_c]))
    }
}
cell_block!(LSTMCell);

/// Gated recurrent unit, gates r, z, n with `n = tanh(W_n x + b_n + r ⊙ (U_n h + b_hn))`
/// (MXNet's `GRUCell(hidden_size)`).
pub struct GRUCell {
    base: BlockBase,
    hidden: usize,
    p: CellParams,
}

impl GRUCell {
    pub fn new(hidden: usize) -> Self {
        let base = BlockBase::new(None, "gru");
        let p = CellParams::new(&base, 3 * hidden, hidden, 0);
        GRUCell { base, hidden, p }
    }
}

impl RecurrentCell for GRUCell {
    fn state_info(&self, batch: usize) -> Vec<Vec<usize>> {
        vec![vec![batch, self.hidden]]
    }
    fn step(&self, x: &NDArray, states: &[NDArray]) -> Result<(NDArray, Vec<NDArray>)> {
        check_states(self.name(), states, 1)?;
        let h = &states[0];
        let (i2h, h2h) = self.p.project(self.name(), x, h, 3 * self.hidden)?;
        let (gi, gh) = (split(&i2h, 3)?, split(&h2h, 3)?);
        let r = act(&add(&gi[0], &gh[0])?, "sigmoid")?;
        let z = act(&add(&gi[1], &gh[1])?, "sigmoid")?;
        let n = act(&add(&gi[2], &mul(&r, &gh[2])?)?, "tanh")?;
        let keep = op("_rminus_scalar", &[z.clone()], &[("scalar", "1")])?;
        let next = add(&mul(&keep, &n)?, &mul(&z, h)?)?;
        Ok((next.clone(), vec![next]))
    }
}
cell_block!(GRUCell);

/// Cells stacked: each step feeds one cell's output to the next (MXNet's
/// `SequentialRNNCell`); the states are all cells' states in order.
pub struct SequentialRNNCell {
    base: BlockBase,
    cells: Vec<Box<dyn RecurrentCell>>,
}

impl SequentialRNNCell {
    pub fn new() -> Self {
        SequentialRNNCell { base: BlockBase::new(None, "sequentialrnncell"), cells: Vec::new() }
    }
    pub fn add(&mut self, cell: impl RecurrentCell + 'static) -> &mut Self {
        self.cells.push(Box::new(cell));
        self
    }
    /// Enter this container's name scope while building its cells.
    pub fn name_scope(&self) -> crate::gluon::NameScope {
        self.base.name_scope()
    }
    fn split_states<'a>(&self, batch: usize, states: &'a [NDArray]) -> Result<Vec<&'a [NDArray]>> {
        let want: usize = self.cells.iter().map(|c| c.state_info(batch).len()).sum();
        check_states(self.name(), states, want)?;
        let mut at = 0;
        Ok(self
            .cells
            .iter()
            .map(|c| {
                let n = c.state_info(batch).len();
                at += n;
                &states[at - n..at]
            })
            .collect())
    }
}

impl Default for SequentialRNNCell {
    fn default() -> Self {
        Self::new()
    }
}

impl RecurrentCell for SequentialRNNCell {
    fn state_info(&self, batch: usize) -> Vec<Vec<usize>> {
        self.cells.iter().flat_map(|c| c.state_info(batch)).collect()
    }
    fn begin_state(&self, batch: usize) -> Result<Vec<NDArray>> {
        let mut v = Vec::new();
        for c in &self.cells {
            v.extend(c.begin_state(batch)?);
        }
        Ok(v)
    }
    fn step(&self, x: &NDArray, states: &[NDArray]) -> Result<(NDArray, Vec<NDArray>)> {
        let batch = x.shape().first().copied().unwrap_or(0);
        let parts = self.split_states(batch, states)?;
        let (mut x, mut next) = (x.clone(), Vec::new());
        for (c, s) in self.cells.iter().zip(parts) {
            let (out, st) = c.step(&x, s)?;
            x = out;
            next.extend(st);
        }
        Ok((x, next))
    }
    fn unroll(
        &self,
        length: usize,
        inputs: &NDArray,
        begin_state: Option<&[NDArray]>,
        layout: &str,
        valid_length: Option<&NDArray>,
    ) -> Result<(NDArray, Vec<NDArray>)> {
        let (_, batch) = time_axis(self.name(), layout, inputs, length)?;
        let begin = match begin_state {
            Some(s) => s.to_vec(),
            None => self.begin_state(batch)?,
        };
        let parts = self.split_states(batch, &begin)?;
        let (mut x, mut next) = (inputs.clone(), Vec::new());
        for (c, s) in self.cells.iter().zip(parts) {
            let (out, st) = c.unroll(length, &x, Some(s), layout, valid_length)?;
            x = out;
            next.extend(st);
        }
        Ok((x, next))
    }
}

impl Block for SequentialRNNCell {
    fn base(&self) -> &BlockBase {
        &self.base
    }
    fn forward(&self, x: &NDArray) -> Result<NDArray> {
        let batch = x.shape().first().copied().unwrap_or(0);
        Ok(self.step(x, &self.begin_state(batch)?)?.0)
    }
    fn children(&self) -> Vec<(String, &dyn Block)> {
        self.cells.iter().enumerate().map(|(i, c)| (i.to_string(), c.as_dyn())).collect()
    }
    crate::impl_as_dyn!();
}

/// Dropout on the inputs of each step (MXNet's `DropoutCell(rate, axes=())`); no states.
pub struct DropoutCell {
    base: BlockBase,
    rate: f64,
}

impl DropoutCell {
    pub fn new(rate: f64) -> Self {
        DropoutCell { base: BlockBase::new(None, "dropout"), rate }
    }
    fn apply(&self, x: &NDArray) -> Result<NDArray> {
        if self.rate > 0.0 {
            op("Dropout", &[x.clone()], &[("p", &self.rate.to_string())])
        } else {
            Ok(x.clone())
        }
    }
}

impl RecurrentCell for DropoutCell {
    fn state_info(&self, _: usize) -> Vec<Vec<usize>> {
        Vec::new()
    }
    fn step(&self, x: &NDArray, states: &[NDArray]) -> Result<(NDArray, Vec<NDArray>)> {
        Ok((self.apply(x)?, states.to_vec()))
    }
    /// The whole sequence at once, as MXNet does for merged inputs.
    fn unroll(
        &self,
        length: usize,
        inputs: &NDArray,
        begin_state: Option<&[NDArray]>,
        layout: &str,
        _: Option<&NDArray>,
    ) -> Result<(NDArray, Vec<NDArray>)> {
        time_axis(self.name(), layout, inputs, length)?;
        Ok((self.apply(inputs)?, begin_state.map(<[NDArray]>::to_vec).unwrap_or_default()))
    }
}

impl Block for DropoutCell {
    fn base(&self) -> &BlockBase {
        &self.base
    }
    fn forward(&self, x: &NDArray) -> Result<NDArray> {
        self.apply(x)
    }
    crate::impl_as_dyn!();
}

/// Adds each step's input to the wrapped cell's output (MXNet's `ResidualCell(base_cell)`);
/// input and output widths must match.
pub struct ResidualCell {
    base: BlockBase,
    cell: Box<dyn RecurrentCell>,
}

impl ResidualCell {
    pub fn new(cell: impl RecurrentCell + 'static) -> Self {
        let base = BlockBase::new(Some(&format!("{}residualcell", cell.prefix())), "residualcell");
        ResidualCell { base, cell: Box::new(cell) }
    }
}

impl RecurrentCell for ResidualCell {
    fn state_info(&self, batch: usize) -> Vec<Vec<usize>> {
        self.cell.state_info(batch)
    }
    fn begin_state(&self, batch: usize) -> Result<Vec<NDArray>> {
        self.cell.begin_state(batch)
    }
    fn step(&self, x: &NDArray, states: &[NDArray]) -> Result<(NDArray, Vec<NDArray>)> {
        let (out, st) = self.cell.step(x, states)?;
        Ok((add(&out, x)?, st))
    }
    fn unroll(
        &self,
        length: usize,
        inputs: &NDArray,
        begin_state: Option<&[NDArray]>,
        layout: &str,
        valid_length: Option<&NDArray>,
    ) -> Result<(NDArray, Vec<NDArray>)> {
        let (out, st) = self.cell.unroll(length, inputs, begin_state, layout, valid_length)?;
        let inputs = match valid_length {
            Some(len) => {
                seq_op("SequenceMask", inputs, len, time_axis(self.name(), layout, inputs, length)?.0)?
            }
            None => inputs.clone(),
        };
        Ok((add(&out, &inputs)?, st))
    }
}

impl Block for ResidualCell {
    fn base(&self) -> &BlockBase {
        &self.base
    }
    fn forward(&self, x: &NDArray) -> Result<NDArray> {
        let batch = x.shape().first().copied().unwrap_or(0);
        Ok(self.step(x, &self.begin_state(batch)?)?.0)
    }
    fn children(&self) -> Vec<(String, &dyn Block)> {
        vec![("base_cell".into(), self.cell.as_dyn())]
    }
    crate::impl_as_dyn!();
}

/// One cell forward in time and one backward, outputs concatenated on the feature axis
/// (MXNet's `BidirectionalCell(l_cell, r_cell)`); it can only be unrolled.
pub struct BidirectionalCell {
    base: BlockBase,
    l_cell: Box<dyn RecurrentCell>,
    r_cell: Box<dyn RecurrentCell>,
}

impl BidirectionalCell {
    pub fn new(l_cell: impl RecurrentCell + 'static, r_cell: impl RecurrentCell + 'static) -> Self {
        BidirectionalCell {
            base: BlockBase::new(Some(""), "bidirectional"),
            l_cell: Box::new(l_cell),
            r_cell: Box::new(r_cell),
        }
    }
}

impl RecurrentCell for BidirectionalCell {
    fn state_info(&self, batch: usize) -> Vec<Vec<usize>> {
        let mut v = self.l_cell.state_info(batch);
        v.extend(self.r_cell.state_info(batch));
        v
    }
    fn begin_state(&self, batch: usize) -> Result<Vec<NDArray>> {
        let mut v = self.l_cell.begin_state(batch)?;
        v.extend(self.r_cell.begin_state(batch)?);
        Ok(v)
    }
    fn step(&self, _: &NDArray, _: &[NDArray]) -> Result<(NDArray, Vec<NDArray>)> {
        Err(Error::Invalid(format!("{}: a bidirectional cell cannot be stepped; use unroll", self.name())))
    }
    fn unroll(
        &self,
        length: usize,
        inputs: &NDArray,
        begin_state: Option<&[NDArray]>,
        layout: &str,
        valid_length: Option<&NDArray>,
    ) -> Result<(NDArray, Vec<NDArray>)> {
        let (axis, batch) = time_axis("bidirectional cell", layout, inputs, length)?;
        let begin = match begin_state {
            Some(s) => s.to_vec(),
            None => self.begin_state(batch)?,
        };
        let nl = self.l_cell.state_info(batch).len();
        check_states("bidirectional cell", &begin, nl + self.r_cell.state_info(batch).len())?;
        // Reverse in time (each sample within its length) in the time-major layout.
        let reverse = |x: &NDArray| -> Result<NDArray> {
            let swap = |x: NDArray| op("SwapAxis", &[x], &[("dim1", "0"), ("dim2", "1")]);
            let tnc = if axis == 1 { swap(x.clone())? } else { x.clone() };
            let mut ins = vec![tnc];
            ins.extend(valid_length.cloned());
            let flag = if valid_length.is_some() { "True" } else { "False" };
            let r = op("SequenceReverse", &ins, &[("use_sequence_length", flag)])?;
            if axis == 1 {
                swap(r)
            } else {
                Ok(r)
            }
        };
        let (l_out, l_states) =
            self.l_cell.unroll(length, inputs, Some(&begin[..nl]), layout, valid_length)?;
        let (r_out, r_states) =
            self.r_cell.unroll(length, &reverse(inputs)?, Some(&begin[nl..]), layout, valid_length)?;
        let out = op("Concat", &[l_out, reverse(&r_out)?], &[("num_args", "2"), ("dim", "2")])?;
        let out = match valid_length {
            Some(len) => seq_op("SequenceMask", &out, len, axis)?,
            None => out,
        };
        Ok((out, l_states.into_iter().chain(r_states).collect()))
    }
}

impl Block for BidirectionalCell {
    fn base(&self) -> &BlockBase {
        &self.base
    }
    fn forward(&self, x: &NDArray) -> Result<NDArray> {
        self.step(x, &[]).map(|r| r.0)
    }
    fn children(&self) -> Vec<(String, &dyn Block)> {
        vec![("l_cell".into(), self.l_cell.as_dyn()), ("r_cell".into(), self.r_cell.as_dyn())]
    }
    crate::impl_as_dyn!();
}
