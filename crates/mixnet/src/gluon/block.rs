//! `Block`, `HybridBlock`, the containers `Sequential`/`HybridSequential`, and `Lambda`
//! (MXNet's `gluon.block` and `gluon.nn.basic_layers` containers).
//!
//! Naming follows MXNet 1.x: a block made outside any name scope takes a global counter
//! per kind (`dense0_`, `dense1_`); a block made inside `parent.name_scope()` gets the
//! parent's prefix and the parent's own counter (`hybridsequential0_dense0_`). Parameter
//! names are the prefix plus the attribute (`dense0_weight`). `save_parameters` writes
//! the structured names MXNet writes (`0.weight`, `features.1.gamma`).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;

use super::parameter::{load_into, Parameter, ParameterDict};
use crate::initializer::Initializer;
use crate::{Context, Error, NDArray, Result};

type Counters = Arc<Mutex<HashMap<String, usize>>>;

thread_local! {
    static SCOPES: RefCell<Vec<(String, Counters)>> = const { RefCell::new(Vec::new()) };
}

fn global_counters() -> &'static Counters {
    static GLOBAL: std::sync::OnceLock<Counters> = std::sync::OnceLock::new();
    GLOBAL.get_or_init(Default::default)
}

fn next_name(counters: &Counters, hint: &str) -> String {
    let mut c = counters.lock();
    let n = c.entry(hint.to_string()).or_insert(0);
    let name = format!("{hint}{n}");
    *n += 1;
    name
}

/// Name and scope of one block: what every layer embeds.
#[derive(Debug, Clone)]
pub struct BlockBase {
    prefix: String,
    counters: Counters,
}

impl BlockBase {
    /// A fresh prefix from the current name scope: `hint` plus a counter, after the
    /// enclosing block's prefix (MXNet's `_BlockScope.create`). `prefix` overrides it.
    pub fn new(prefix: Option<&str>, hint: &str) -> BlockBase {
        let prefix = match prefix {
            Some(p) => SCOPES.with(|s| match s.borrow().last() {
                Some((parent, _)) => format!("{parent}{p}"),
                None => p.to_string(),
            }),
            None => SCOPES.with(|s| match s.borrow().last() {
                Some((parent, counters)) => format!("{parent}{}_", next_name(counters, hint)),
                None => format!("{}_", next_name(global_counters(), hint)),
            }),
        };
        BlockBase { prefix, counters: Default::default() }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A parameter of this block: its name is the prefix plus `attr`.
    pub fn param(&self, attr: &str, shape: &[usize]) -> Parameter {
        Parameter::new(format!("{}{attr}", self.prefix), shape)
    }

    /// Enter this block's name scope until the guard drops (MXNet's `with
    /// self.name_scope()`): blocks made meanwhile are named under this block.
    pub fn name_scope(&self) -> NameScope {
        SCOPES.with(|s| s.borrow_mut().push((self.prefix.clone(), self.counters.clone())));
        NameScope { _private: () }
    }
}

/// Active name scope; leaves it when dropped.
#[must_use = "the name scope ends when the guard is dropped"]
pub struct NameScope {
    _private: (),
}

impl Drop for NameScope {
    fn drop(&mut self) {
        SCOPES.with(|s| s.borrow_mut().pop());
    }
}

/// Options of `load_parameters` (MXNet's keyword arguments).
#[derive(Clone, Copy, Debug)]
pub struct LoadOptions {
    pub ctx: Context,
    pub allow_missing: bool,
    pub ignore_extra: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { ctx: Context::cpu(0), allow_missing: false, ignore_extra: false }
    }
}

/// A neural-network building block (MXNet's `gluon.Block`).
///
/// Implementors provide `base`, `forward`, their own parameters (`params`, named by
/// attribute) and their child blocks (`children`, named by attribute); everything else
/// (collect_params, initialize, save/load) comes from here.
pub trait Block: Send + Sync {
    fn base(&self) -> &BlockBase;

    /// The computation, on NDArrays.
    fn forward(&self, x: &NDArray) -> Result<NDArray>;

    /// Parameters registered on this block itself, by attribute name (`weight`, `bias`).
    fn params(&self) -> Vec<(String, Parameter)> {
        Vec::new()
    }

    /// Child blocks by attribute name (`0`, `1` in containers; `features`, ...).
    fn children(&self) -> Vec<(String, &dyn Block)> {
        Vec::new()
    }

    /// A one-line description (MXNet's `__repr__` of leaf layers).
    fn describe(&self) -> String {
        self.name().to_string()
    }

    /// What this layer is to the fusion a hybridized container makes of
    /// Convolution → BatchNorm → ReLU when no gradient is recorded (see
    /// [`HybridSequential`]); `None` for every other block.
    #[doc(hidden)]
    fn fusion_part(&self) -> Option<FusionPart<'_>> {
        None
    }

    /// Turn the graph mode on or off for hybrid blocks and their children. Eager for
    /// now: the call is accepted and recorded, execution stays imperative, except that a
    /// hybridized [`HybridSequential`] fuses convolutions with the inference BatchNorm and
    /// ReLU after them.
    fn hybridize(&self, active: bool) {
        for (_, c) in self.children() {
            c.hybridize(active);
        }
    }

    // ---- provided ----

    fn prefix(&self) -> &str {
        self.base().prefix()
    }

    /// The prefix without its trailing `_` (MXNet's `name`).
    fn name(&self) -> &str {
        let p = self.prefix();
        p.strip_suffix('_').unwrap_or(p)
    }

    fn name_scope(&self) -> NameScope {
        self.base().name_scope()
    }

    /// Run the block (MXNet's `__call__`).
    fn call(&self, x: &NDArray) -> Result<NDArray> {
        self.forward(x)
    }

    /// This block's and all descendants' parameters by full name (MXNet's
    /// `collect_params()`).
    fn collect_params(&self) -> Result<ParameterDict> {
        let mut dict = ParameterDict::new();
        collect(self.as_dyn(), &mut dict)?;
        Ok(dict)
    }

    /// Parameters whose full name matches the regular expression `select` from its start
    /// (MXNet's `collect_params('.*weight|.*bias')`, `re.match`).
    fn collect_params_select(&self, select: &str) -> Result<ParameterDict> {
        let re = regex::Regex::new(&format!("^(?:{select})"))
            .map_err(|e| Error::Invalid(format!("collect_params: bad regular expression '{select}': {e}")))?;
        let mut out = ParameterDict::new();
        for (name, p) in self.collect_params()?.iter() {
            if re.is_match(name) {
                out.insert(p.clone())?;
            }
        }
        Ok(out)
    }

    /// Parameters by structured name: `0.weight`, `features.2.bias` (MXNet's
    /// `_collect_params_with_prefix`), in registration order.
    fn collect_params_with_prefix(&self) -> Vec<(String, Parameter)> {
        let mut out = Vec::new();
        structured(self.as_dyn(), "", &mut out);
        out
    }

    /// Initialize all parameters with `init` (own initializers win) on `ctx`
    /// (MXNet's `initialize(init=Uniform(), ctx=cpu(), force_reinit=False)`).
    fn initialize(&self, init: Option<Arc<dyn Initializer>>, ctx: Context, force_reinit: bool) -> Result<()> {
        self.collect_params()?.initialize(init, ctx, force_reinit)
    }

    /// Save parameters with structured names (MXNet's `save_parameters`).
    fn save_parameters(&self, path: &Path) -> Result<()> {
        let params = self.collect_params_with_prefix();
        let mut arrays = Vec::with_capacity(params.len());
        let mut seen: Vec<&Parameter> = Vec::new();
        let mut names = Vec::new();
        for (name, p) in &params {
            if seen.iter().any(|s| s.ptr_eq(p)) {
                continue; // shared parameters are saved once, under their first name
            }
            seen.push(p);
            arrays.push(p.data()?);
            names.push(name.as_str());
        }
        crate::ndarray::save(path, &arrays, &names)
    }

    /// Load parameters saved by `save_parameters` (structured names) — or, as MXNet does
    /// for files without any dotted name, by full parameter names with this block's prefix
    /// stripped (`save_params`, `export`'s `arg:`/`aux:` files after the prefix).
    fn load_parameters(&self, path: &Path, opts: LoadOptions) -> Result<()> {
        let (arrays, names) = crate::ndarray::load(path)?;
        let file = path.display().to_string();
        if names.is_empty() && !arrays.is_empty() {
            return Err(Error::format(file, "holds an unnamed array list, not parameters"));
        }
        if !names.iter().any(|n| n.contains('.')) {
            // Legacy: names are full names without this block's prefix.
            return self.collect_params()?.load(
                path,
                opts.ctx,
                opts.allow_missing,
                opts.ignore_extra,
                self.prefix(),
            );
        }
        let loaded: BTreeMap<String, NDArray> = names.into_iter().zip(arrays).collect();
        let params = self.collect_params_with_prefix();
        load_into(
            params.iter().map(|(n, p)| (n.as_str(), p)),
            loaded,
            opts.ctx,
            opts.allow_missing,
            opts.ignore_extra,
            &file,
        )
    }

    /// Convert all parameters to `dtype` (MXNet's `cast`).
    fn cast(&self, dtype: crate::DType) -> Result<()> {
        self.collect_params()?.values().try_for_each(|p| p.cast(dtype))
    }

    /// Upcast helper for the provided methods.
    fn as_dyn(&self) -> &dyn Block;
}

/// Implement the `as_dyn` plumbing of [`Block`] for a concrete type.
#[macro_export]
macro_rules! impl_as_dyn {
    () => {
        fn as_dyn(&self) -> &dyn $crate::gluon::Block {
            self
        }
    };
}

fn collect(b: &dyn Block, dict: &mut ParameterDict) -> Result<()> {
    for (_, p) in b.params() {
        dict.insert(p)?;
    }
    for (_, c) in b.children() {
        collect(c, dict)?;
    }
    Ok(())
}

fn structured(b: &dyn Block, prefix: &str, out: &mut Vec<(String, Parameter)>) {
    for (attr, p) in b.params() {
        out.push((format!("{prefix}{attr}"), p));
    }
    for (attr, c) in b.children() {
        structured(c, &format!("{prefix}{attr}."), out);
    }
}

/// A block whose computation can become a graph (MXNet's `HybridBlock`). Graph
/// execution comes with the Symbol API; until then hybrid blocks run eagerly.
pub trait HybridBlock: Block {}

/// Blocks run one after another (MXNet's `nn.Sequential`).
pub struct Sequential {
    base: BlockBase,
    layers: Vec<Box<dyn Block>>,
}

impl Sequential {
    pub fn new() -> Self {
        Sequential { base: BlockBase::new(None, "sequential"), layers: Vec::new() }
    }
    pub fn with_prefix(prefix: &str) -> Self {
        Sequential { base: BlockBase::new(Some(prefix), "sequential"), layers: Vec::new() }
    }
    /// Append a block (named `len()` for `save_parameters`).
    pub fn add(&mut self, block: impl Block + 'static) -> &mut Self {
        self.layers.push(Box::new(block));
        self
    }
    pub fn add_boxed(&mut self, block: Box<dyn Block>) -> &mut Self {
        self.layers.push(block);
        self
    }
    pub fn len(&self) -> usize {
        self.layers.len()
    }
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }
    pub fn get(&self, i: usize) -> Option<&dyn Block> {
        self.layers.get(i).map(|b| b.as_ref())
    }
}

impl Default for Sequential {
    fn default() -> Self {
        Self::new()
    }
}

fn run_all(layers: &[Box<dyn Block>], x: &NDArray) -> Result<NDArray> {
    let mut x = x.clone();
    for l in layers {
        x = l.call(&x)?;
    }
    Ok(x)
}

fn children_of(layers: &[Box<dyn Block>]) -> Vec<(String, &dyn Block)> {
    layers.iter().enumerate().map(|(i, b)| (i.to_string(), b.as_ref())).collect()
}

fn describe_all(name: &str, layers: &[Box<dyn Block>]) -> String {
    let mut s = format!("{name}(\n");
    for (i, l) in layers.iter().enumerate() {
        for (k, line) in l.describe().lines().enumerate() {
            if k == 0 {
                s.push_str(&format!("  ({i}): {line}\n"));
            } else {
                s.push_str(&format!("  {line}\n"));
            }
        }
    }
    s.push(')');
    s
}

impl Block for Sequential {
    fn base(&self) -> &BlockBase {
        &self.base
    }
    fn forward(&self, x: &NDArray) -> Result<NDArray> {
        run_all(&self.layers, x)
    }
    fn children(&self) -> Vec<(String, &dyn Block)> {
        children_of(&self.layers)
    }
    fn describe(&self) -> String {
        describe_all("Sequential", &self.layers)
    }
    crate::impl_as_dyn!();
}

/// A layer's part in a fused Convolution → BatchNorm (→ ReLU), as MXNet's oneDNN subgraph
/// pass fuses them when a network is hybridized.
#[doc(hidden)]
pub enum FusionPart<'a> {
    /// A convolution that can take a BatchNorm into its output (channel-first, no
    /// activation of its own).
    Conv(&'a crate::gluon::nn::Conv),
    BatchNorm(&'a crate::gluon::nn::BatchNorm),
    Relu,
}

/// `layers` in order, each run of Convolution → BatchNorm (→ ReLU) as one `_sg_conv` when
/// the BatchNorm normalizes with its moving statistics (predict mode, or
/// `use_global_stats`) and no gradient is recorded: what a hybridized network runs.
fn run_fused(layers: &[Box<dyn Block>], x: &NDArray) -> Result<NDArray> {
    let part = |i: usize| layers.get(i).and_then(|l| l.fusion_part());
    let mut x = x.clone();
    let mut i = 0;
    while i < layers.len() {
        if let Some((conv, bn)) = conv_batch_norm(layers, i) {
            let relu = matches!(part(i + 2), Some(FusionPart::Relu));
            x = conv.forward_with_batch_norm(&x, bn, relu, None)?;
            i += 2 + usize::from(relu);
            continue;
        }
        x = layers[i].call(&x)?;
        i += 1;
    }
    Ok(x)
}

/// Layers `i` and `i + 1` as a Convolution and a BatchNorm that fuse: the BatchNorm
/// normalizes with its moving statistics (predict mode, or `use_global_stats`).
fn conv_batch_norm(
    layers: &[Box<dyn Block>],
    i: usize,
) -> Option<(&crate::gluon::nn::Conv, &crate::gluon::nn::BatchNorm)> {
    let part = |i: usize| layers.get(i).and_then(|l| l.fusion_part());
    match (part(i), part(i + 1)) {
        (Some(FusionPart::Conv(conv)), Some(FusionPart::BatchNorm(bn)))
            if bn.normalizes_channels() && (!crate::autograd::is_training() || bn.uses_global_stats()) =>
        {
            Some((conv, bn))
        }
        _ => None,
    }
}

/// Hybrid blocks run one after another (MXNet's `nn.HybridSequential`).
pub struct HybridSequential {
    base: BlockBase,
    layers: Vec<Box<dyn Block>>,
    active: std::sync::atomic::AtomicBool,
}

impl HybridSequential {
    pub fn new() -> Self {
        Self::from_base(BlockBase::new(None, "hybridsequential"))
    }
    pub fn with_prefix(prefix: &str) -> Self {
        Self::from_base(BlockBase::new(Some(prefix), "hybridsequential"))
    }
    fn from_base(base: BlockBase) -> Self {
        HybridSequential { base, layers: Vec::new(), active: false.into() }
    }
    pub fn add(&mut self, block: impl HybridBlock + 'static) -> &mut Self {
        self.layers.push(Box::new(block));
        self
    }
    pub fn len(&self) -> usize {
        self.layers.len()
    }
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }
    pub fn get(&self, i: usize) -> Option<&dyn Block> {
        self.layers.get(i).map(|b| b.as_ref())
    }
    /// Whether `hybridize(true)` was called.
    pub fn is_hybridized(&self) -> bool {
        self.active.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// `relu(self(x) + residual)`, or the sum alone without `relu`: the join of a
    /// residual block (ResNet's `F.Activation(x + residual, act_type='relu')`).
    /// Hybridized and with no gradient recorded, a sequence ending in a Convolution and a
    /// BatchNorm that fuse runs them as one `_sg_conv` that takes the residual in (MXNet's
    /// fused mode: `with_sum`, `with_postsum_act`), so the sum and the ReLU make no passes
    /// of their own. Until Symbol/CachedOp exists this is how a block says where its join
    /// is; the result is the same either way, up to rounding.
    pub fn forward_residual(&self, x: &NDArray, residual: &NDArray, relu: bool) -> Result<NDArray> {
        let n = self.layers.len();
        if self.is_hybridized() && !crate::autograd::is_recording() && n >= 2 {
            if let Some((conv, bn)) = conv_batch_norm(&self.layers, n - 2) {
                let y = run_fused(&self.layers[..n - 2], x)?;
                return conv.forward_with_batch_norm(&y, bn, relu, Some(residual));
            }
        }
        let y = (&self.call(x)? + residual)?;
        if relu {
            y.relu()
        } else {
            Ok(y)
        }
    }
}

impl Default for HybridSequential {
    fn default() -> Self {
        Self::new()
    }
}

impl Block for HybridSequential {
    fn base(&self) -> &BlockBase {
        &self.base
    }
    fn forward(&self, x: &NDArray) -> Result<NDArray> {
        if self.is_hybridized() && !crate::autograd::is_recording() {
            return run_fused(&self.layers, x);
        }
        run_all(&self.layers, x)
    }
    fn children(&self) -> Vec<(String, &dyn Block)> {
        children_of(&self.layers)
    }
    fn describe(&self) -> String {
        describe_all("HybridSequential", &self.layers)
    }
    fn hybridize(&self, active: bool) {
        self.active.store(active, std::sync::atomic::Ordering::Relaxed);
        for (_, c) in self.children() {
            c.hybridize(active);
        }
    }
    crate::impl_as_dyn!();
}
impl HybridBlock for HybridSequential {}

type LambdaFn = Box<dyn Fn(&NDArray) -> Result<NDArray> + Send + Sync>;

/// A block from a function (MXNet's `nn.Lambda` / `nn.HybridLambda`).
pub struct Lambda {
    base: BlockBase,
    f: LambdaFn,
}

impl Lambda {
    pub fn new(f: impl Fn(&NDArray) -> Result<NDArray> + Send + Sync + 'static) -> Self {
        Lambda { base: BlockBase::new(None, "lambda"), f: Box::new(f) }
    }
    /// A lambda that calls one operator on its input (MXNet's `Lambda('tanh')`).
    pub fn op(name: &str) -> Self {
        let name = name.to_string();
        Lambda::new(move |x| Ok(crate::imperative::invoke(&name, &[x.clone()], &[])?.remove(0)))
    }
}

impl Block for Lambda {
    fn base(&self) -> &BlockBase {
        &self.base
    }
    fn forward(&self, x: &NDArray) -> Result<NDArray> {
        (self.f)(x)
    }
    fn describe(&self) -> String {
        "Lambda(<fn>)".into()
    }
    crate::impl_as_dyn!();
}
impl HybridBlock for Lambda {}

/// `HybridLambda` is `Lambda` here: both run eagerly.
pub type HybridLambda = Lambda;
