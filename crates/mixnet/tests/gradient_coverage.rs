//! Every registered operator either defines a gradient or is on an explicit list of ops
//! MXNet also leaves undifferentiable, with the reason; and every operator that defines a
//! gradient is checked against central finite differences in float64 (MXNet's
//! `check_numeric_gradient`) on random inputs in its valid domain.
//!
//! Adding an operator: give it a gradient and a row in [`cases`] (input shapes,
//! attributes, domain), or put it in [`NO_GRADIENT`] with the reason. Either test fails
//! until one of the two is done.

use std::collections::BTreeSet;

use mixnet::op::registry;
use mixnet::test_utils::{check_numeric_gradient, NumericGradient, Rng};
use mixnet::{imperative, NDArray};

/// Registered operators without a gradient, each with the reason (as in MXNet 1.9.1).
const NO_GRADIENT: &[(&str, &str)] = &[
    ("_zeros", "creation op: no inputs (MXNet registers no FGradient)"),
    ("_zeros_without_dtype", "creation op: no inputs"),
    ("_ones", "creation op: no inputs"),
    ("_full", "creation op: no inputs"),
    ("_arange", "creation op: no inputs"),
    ("_linspace", "creation op: no inputs"),
    ("_eye", "creation op: no inputs"),
    ("argmax_channel", "MXNet registers no FGradient ('argmax_channel is non-differentiable')"),
    ("_shuffle", "MXNet registers no FGradient for _shuffle"),
    ("all_finite", "optimizer helper: a flag, MXNet registers no FGradient"),
    ("multi_all_finite", "optimizer helper: a flag, MXNet registers no FGradient"),
    ("multi_sum_sq", "optimizer helper (LARS), MXNet registers no FGradient"),
    ("multi_lars", "optimizer helper (LARS), MXNet registers no FGradient"),
    ("_random_randint", "creation op: no inputs"),
    ("batch_take", "MXNet registers no FGradient for batch_take"),
    ("khatri_rao", "MXNet registers no FGradient for khatri_rao"),
    ("reset_arrays", "writes its inputs in place; MXNet registers no FGradient"),
    ("_onehot_encode", "legacy NDArray function, not a graph operator: MXNet has no gradient"),
    ("fill_element_0index", "legacy NDArray function, not a graph operator: MXNet has no gradient"),
    ("_histogram", "MXNet registers no FGradient for _histogram"),
    ("_scatter_set_nd", "internal (NDArray.__setitem__ with out=lhs); MXNet registers no FGradient"),
    ("_NoGradient", "placeholder node of gradient graphs, no inputs; MXNet registers no FGradient"),
    ("_sample_unique_zipfian", "sampling op without inputs; MXNet registers no FGradient"),
    ("_set_value", "legacy NDArray function writing its input in place: MXNet has no gradient"),
    ("_sg_conv", "inference fusion of Convolution, BatchNorm on moving statistics and ReLU, made only when no gradient is recorded (as MXNet's _sg_mkldnn_conv); training runs the three operators"),
    ("_winograd_filters", "inference only: a weight transformed for _sg_conv, remade whenever the weight is written"),
];

/// Families of operators without a gradient, by name pattern, with the reason.
type NamePattern = fn(&str) -> bool;

const NO_GRADIENT_FAMILIES: &[(NamePattern, &str)] = &[
    (
        |n| n.ends_with("_update") || n.contains("lamb_update_phase"),
        "optimizer update: writes its weight and states in place; MXNet registers no FGradient",
    ),
    (
        |n| n.starts_with("_backward_"),
        "backward op, run by another op's gradient; MXNet registers no FGradient for it",
    ),
    (
        |n| n.starts_with("_random_") && !n.ends_with("_like") && !n.starts_with("_random_pdf_"),
        "creation op: no inputs (samples from attributes only)",
    ),
];

fn allowed_without_gradient(name: &str) -> bool {
    NO_GRADIENT.iter().any(|e| e.0 == name) || NO_GRADIENT_FAMILIES.iter().any(|(f, _)| f(name))
}

/// Where random input values are drawn.
#[derive(Clone, Copy, Debug)]
enum Dom {
    /// Uniform in `[lo, hi)`.
    Range(f64, f64),
    /// `|x|` uniform in `[lo, hi)`, random sign: away from a kink or pole at 0.
    Away(f64, f64),
    /// An integer in [-3, 3] plus a fraction in [0.2, 0.4): away from the steps of
    /// round/floor/ceil.
    Offgrid,
    /// Integers in `[lo, hi)` (class labels).
    Int(i64, i64),
}

/// How a case is checked.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Check {
    /// Finite differences with random head gradients.
    Numeric,
    /// Finite differences with head gradients of ones (the op's gradient ignores the head).
    OnesHeads,
    /// The gradient is zero by definition although the forward is not constant
    /// (`BlockGrad`, the samplers): check it is exactly zero.
    Zero,
    /// A loss-output layer (`SoftmaxOutput`, `*RegressionOutput`, `SVMOutput`): the
    /// gradient is the loss's, not the forward's derivative, and ignores the head (as in
    /// MXNet); or a float32-only op (`SoftmaxActivation`). Checked against MXNet's golden
    /// gradients in `grads_golden`; here only that backward runs in float32 and gives
    /// finite values.
    Loss,
}

struct Case {
    op: &'static str,
    attrs: Vec<(&'static str, &'static str)>,
    shapes: Vec<Vec<usize>>,
    dom: Dom,
    /// Per-input domains, overriding `dom` (empty: `dom` for all).
    doms: Vec<Dom>,
    /// Inputs checked numerically (None: every input; labels and indices are left out).
    inputs: Option<Vec<usize>>,
    check: Check,
}

fn case(op: &'static str, shapes: &[&[usize]], dom: Dom) -> Case {
    Case {
        op,
        attrs: vec![],
        shapes: shapes.iter().map(|s| s.to_vec()).collect(),
        dom,
        doms: vec![],
        inputs: None,
        check: Check::Numeric,
    }
}

fn with(op: &'static str, attrs: &[(&'static str, &'static str)], shapes: &[&[usize]], dom: Dom) -> Case {
    Case { attrs: attrs.to_vec(), ..case(op, shapes, dom) }
}

const ANY: Dom = Dom::Range(-2.0, 2.0);
const POS: Dom = Dom::Range(0.5, 3.0);
const AWAY: Dom = Dom::Away(0.5, 2.0);
const UNIT: Dom = Dom::Range(-0.9, 0.9);

/// The per-operator table: input shapes, attributes and domain of each checked call.
fn cases() -> Vec<Case> {
    let m: &[usize] = &[3, 4];
    let mut v = vec![];
    // Same-shape binary ops.
    for (op, dom) in [
        ("elemwise_add", ANY),
        ("_grad_add", ANY),
        ("elemwise_sub", ANY),
        ("elemwise_mul", ANY),
        ("elemwise_div", AWAY),
        ("_mod", AWAY),
        ("_power", POS),
        ("_maximum", ANY),
        ("_minimum", ANY),
        ("_hypot", AWAY),
        ("_equal", ANY),
        ("_not_equal", ANY),
        ("_greater", ANY),
        ("_greater_equal", ANY),
        ("_lesser", ANY),
        ("_lesser_equal", ANY),
        ("_logical_and", ANY),
        ("_logical_or", ANY),
        ("_logical_xor", ANY),
    ] {
        v.push(case(op, &[m, m], dom));
    }
    // Broadcasting binary ops: both operands broadcast.
    for (op, dom) in [
        ("broadcast_add", ANY),
        ("broadcast_sub", ANY),
        ("broadcast_mul", ANY),
        ("broadcast_div", AWAY),
        ("broadcast_mod", AWAY),
        ("broadcast_power", POS),
        ("broadcast_maximum", ANY),
        ("broadcast_minimum", ANY),
        ("broadcast_hypot", AWAY),
        ("broadcast_equal", ANY),
        ("broadcast_not_equal", ANY),
        ("broadcast_greater", ANY),
        ("broadcast_greater_equal", ANY),
        ("broadcast_lesser", ANY),
        ("broadcast_lesser_equal", ANY),
        ("broadcast_logical_and", ANY),
        ("broadcast_logical_or", ANY),
        ("broadcast_logical_xor", ANY),
    ] {
        v.push(case(op, &[&[2, 3, 1], &[3, 4]], dom));
    }
    // Tensor-scalar ops.
    for (op, scalar, dom) in [
        ("_plus_scalar", "1.5", ANY),
        ("_minus_scalar", "1.5", ANY),
        ("_rminus_scalar", "1.5", ANY),
        ("_mul_scalar", "-2.5", ANY),
        ("_div_scalar", "-2.5", ANY),
        ("_rdiv_scalar", "2.5", AWAY),
        ("_mod_scalar", "1.3", ANY),
        ("_rmod_scalar", "2.7", AWAY),
        ("_power_scalar", "2.5", POS),
        ("_rpower_scalar", "1.7", ANY),
        ("_maximum_scalar", "0.3", ANY),
        ("_minimum_scalar", "0.3", ANY),
        ("_hypot_scalar", "1.5", ANY),
        ("_equal_scalar", "0.3", ANY),
        ("_not_equal_scalar", "0.3", ANY),
        ("_greater_scalar", "0.3", ANY),
        ("_greater_equal_scalar", "0.3", ANY),
        ("_lesser_scalar", "0.3", ANY),
        ("_lesser_equal_scalar", "0.3", ANY),
        ("_logical_and_scalar", "0.3", ANY),
        ("_logical_or_scalar", "0.3", ANY),
        ("_logical_xor_scalar", "0.3", ANY),
    ] {
        v.push(Case { attrs: vec![("scalar", scalar)], ..case(op, &[m], dom) });
    }
    // Unary math and activations.
    for (op, dom) in [
        ("abs", AWAY),
        ("arccos", UNIT),
        ("arccosh", Dom::Range(1.2, 3.0)),
        ("arcsin", UNIT),
        ("arcsinh", ANY),
        ("arctan", ANY),
        ("arctanh", UNIT),
        ("cbrt", POS),
        ("ceil", Dom::Offgrid),
        ("cos", ANY),
        ("cosh", ANY),
        ("degrees", ANY),
        ("erf", ANY),
        ("erfinv", UNIT),
        ("exp", ANY),
        ("expm1", ANY),
        ("fix", Dom::Offgrid),
        ("floor", Dom::Offgrid),
        ("gamma", POS),
        ("gammaln", POS),
        ("log", POS),
        ("log10", POS),
        ("log1p", POS),
        ("log2", POS),
        ("negative", ANY),
        ("radians", ANY),
        ("rcbrt", POS),
        ("reciprocal", AWAY),
        ("rint", Dom::Offgrid),
        ("round", Dom::Offgrid),
        ("rsqrt", POS),
        ("sign", AWAY),
        ("sin", ANY),
        ("sinh", ANY),
        ("sqrt", POS),
        ("square", ANY),
        ("tan", Dom::Range(-1.2, 1.2)),
        ("tanh", ANY),
        ("trunc", Dom::Offgrid),
        ("logical_not", ANY),
        ("relu", AWAY),
        ("sigmoid", ANY),
        ("hard_sigmoid", Dom::Range(-4.0, 4.0)),
        ("softsign", AWAY),
        ("_copy", ANY),
    ] {
        v.push(case(op, &[m], dom));
    }
    v.push(with("hard_sigmoid", &[("alpha", "0.5"), ("beta", "0.3")], &[m], ANY));
    v.push(with("clip", &[("a_min", "-0.5"), ("a_max", "0.8")], &[m], ANY));
    v.push(with("Cast", &[("dtype", "float64")], &[m], ANY));
    v.push(Case { check: Check::Zero, ..case("BlockGrad", &[m], ANY) });
    v.push(Case { check: Check::OnesHeads, ..case("make_loss", &[m], ANY) });
    v.push(Case { check: Check::OnesHeads, ..case("MakeLoss", &[m], ANY) });
    // Reductions.
    let t: &[usize] = &[2, 3, 4];
    for op in ["sum", "mean", "prod", "nansum", "nanprod", "max", "min"] {
        v.push(with(op, &[("axis", "(0, 2)")], &[t], AWAY));
        v.push(with(op, &[("axis", "1"), ("keepdims", "True")], &[t], AWAY));
        v.push(case(op, &[t], AWAY));
    }
    v.push(with("sum", &[("axis", "1"), ("exclude", "True")], &[t], ANY));
    v.push(case("norm", &[t], ANY));
    v.push(with("norm", &[("ord", "1"), ("axis", "1")], &[t], AWAY));
    v.push(with("norm", &[("axis", "(1, 2)"), ("keepdims", "True")], &[t], ANY));
    v.push(with("argmax", &[("axis", "1")], &[t], ANY));
    v.push(with("argmin", &[("axis", "-1")], &[t], ANY));
    v.push(with("broadcast_to", &[("shape", "(3, 0, 4)")], &[&[1, 2, 1]], ANY));
    v.push(with("broadcast_axis", &[("axis", "(0, 2)"), ("size", "(3, 4)")], &[&[1, 2, 1]], ANY));
    v.push(case("broadcast_like", &[&[1, 4], m], ANY));
    v.push(with("broadcast_like", &[("lhs_axes", "(0,)"), ("rhs_axes", "(1,)")], &[&[1, 4], &[2, 3]], ANY));
    v.push(with("add_n", &[("num_args", "3")], &[m, m, m], ANY));
    // Creation ops that read an input: zero gradient.
    for op in ["zeros_like", "ones_like", "_contrib_arange_like", "shape_array", "size_array"] {
        v.push(case(op, &[m], ANY));
    }
    // Shape and layout.
    v.push(with("Reshape", &[("shape", "(-1, 0)"), ("reverse", "True")], &[&[2, 3, 2]], ANY));
    v.push(case("reshape_like", &[&[2, 6], &[3, 4]], ANY));
    v.push(case("Flatten", &[&[2, 3, 2]], ANY));
    v.push(with("expand_dims", &[("axis", "-1")], &[m], ANY));
    v.push(case("squeeze", &[&[3, 1, 4]], ANY));
    v.push(with("transpose", &[("axes", "(1, 2, 0)")], &[t], ANY));
    v.push(case("transpose", &[t], ANY));
    v.push(with("SwapAxis", &[("dim1", "0"), ("dim2", "2")], &[t], ANY));
    v.push(with("depth_to_space", &[("block_size", "2")], &[&[1, 8, 2, 3]], ANY));
    v.push(with("space_to_depth", &[("block_size", "2")], &[&[1, 2, 4, 6]], ANY));
    v.push(with("tile", &[("reps", "(2, 1, 3)")], &[m], ANY));
    v.push(with("repeat", &[("repeats", "3"), ("axis", "1")], &[m], ANY));
    v.push(with("repeat", &[("repeats", "2")], &[m], ANY));
    v.push(with("reverse", &[("axis", "(0, 2)")], &[t], ANY));
    v.push(with("Concat", &[("num_args", "3"), ("dim", "1")], &[&[2, 1, 4], &[2, 3, 4], &[2, 2, 4]], ANY));
    v.push(with("stack", &[("num_args", "2"), ("axis", "-1")], &[m, m], ANY));
    v.push(with("_rnn_param_concat", &[("num_args", "2"), ("dim", "0")], &[&[3], &[5]], ANY));
    v.push(with(
        "SliceChannel",
        &[("num_outputs", "3"), ("axis", "0"), ("squeeze_axis", "True")],
        &[&[3, 4]],
        ANY,
    ));
    v.push(with("SliceChannel", &[("num_outputs", "2"), ("axis", "-1")], &[t], ANY));
    v.push(with("_split_v2", &[("indices", "(1, 3)"), ("axis", "2")], &[t], ANY));
    v.push(with("_split_v2", &[("indices", "(0,)"), ("sections", "2"), ("axis", "0")], &[t], ANY));
    for mode in ["constant", "edge", "reflect"] {
        v.push(with(
            "Pad",
            &[("mode", mode), ("pad_width", "(0, 0, 0, 0, 2, 1, 1, 2)")],
            &[&[1, 2, 3, 4]],
            ANY,
        ));
    }
    // dot and batch_dot, every transpose combination.
    v.push(case("dot", &[&[3, 4], &[4, 5]], ANY));
    v.push(with("dot", &[("transpose_a", "True")], &[&[4, 3], &[4, 5]], ANY));
    v.push(with("dot", &[("transpose_b", "True")], &[&[3, 4], &[5, 4]], ANY));
    v.push(with("dot", &[("transpose_a", "True"), ("transpose_b", "True")], &[&[4, 3], &[5, 4]], ANY));
    v.push(case("dot", &[&[2, 3, 4], &[4, 2, 2]], ANY));
    v.push(case("dot", &[&[4], &[4]], ANY));
    v.push(case("dot", &[&[4], &[4, 3]], ANY));
    v.push(case("batch_dot", &[&[2, 3, 4], &[2, 4, 5]], ANY));
    v.push(with("batch_dot", &[("transpose_a", "True")], &[&[2, 4, 3], &[2, 4, 5]], ANY));
    v.push(with("batch_dot", &[("transpose_b", "True")], &[&[2, 3, 4], &[2, 5, 4]], ANY));
    v.push(with(
        "batch_dot",
        &[("transpose_a", "True"), ("transpose_b", "True")],
        &[&[2, 4, 3], &[2, 5, 4]],
        ANY,
    ));
    // Neural-network layers.
    let img: &[usize] = &[1, 2, 4, 4];
    for act in ["relu", "sigmoid", "tanh", "softrelu", "softsign"] {
        v.push(with("Activation", &[("act_type", act)], &[m], AWAY));
    }
    v.push(case("LeakyReLU", &[m], AWAY));
    v.push(with("LeakyReLU", &[("act_type", "elu")], &[m], AWAY));
    v.push(with("FullyConnected", &[("num_hidden", "3")], &[&[2, 4], &[3, 4], &[3]], ANY));
    v.push(with(
        "Convolution",
        &[("kernel", "(2, 2)"), ("num_filter", "2")],
        &[img, &[2, 2, 2, 2], &[2]],
        ANY,
    ));
    v.push(with(
        "Deconvolution",
        &[("kernel", "(2, 2)"), ("num_filter", "2")],
        &[&[1, 2, 3, 3], &[2, 2, 2, 2]],
        ANY,
    ));
    v.push(with(
        "Convolution_v1",
        &[("kernel", "(2, 2)"), ("num_filter", "2")],
        &[img, &[2, 2, 2, 2], &[2]],
        ANY,
    ));
    v.push(with("Pooling", &[("kernel", "(2, 2)"), ("pool_type", "max")], &[img], ANY));
    v.push(with("Pooling_v1", &[("kernel", "(2, 2)")], &[img], ANY));
    v.push(with("Pooling_v1", &[("kernel", "(2, 2)"), ("pool_type", "avg"), ("pad", "(1, 1)")], &[img], ANY));
    v.push(with(
        "Correlation",
        &[("max_displacement", "1"), ("pad_size", "1")],
        &[&[1, 2, 3, 3], &[1, 2, 3, 3]],
        ANY,
    ));
    v.push(with("Pooling", &[("kernel", "(2, 2)"), ("pool_type", "avg"), ("stride", "(1, 1)")], &[img], ANY));
    // float32 only (as in MXNet): its gradient is checked against MXNet's golden cases.
    v.push(Case { check: Check::Loss, ..case("SoftmaxActivation", &[m], ANY) });
    for op in ["softmax", "log_softmax", "softmin"] {
        v.push(case(op, &[m], ANY));
    }
    v.push(with("smooth_l1", &[("scalar", "1.0")], &[m], ANY));
    v.push(with("Dropout", &[("p", "0")], &[m], ANY));
    v.push(Case {
        doms: vec![ANY, Dom::Int(0, 4)],
        inputs: Some(vec![0]),
        ..case("softmax_cross_entropy", &[m, &[3]], ANY)
    });
    for (op, label) in [
        ("SoftmaxOutput", &[3usize][..]),
        ("SVMOutput", &[3]),
        ("LinearRegressionOutput", m),
        ("LogisticRegressionOutput", m),
        ("MAERegressionOutput", m),
    ] {
        let doms = vec![ANY, if label.len() == 1 { Dom::Int(0, 4) } else { Dom::Range(0.0, 1.0) }];
        v.push(Case { doms, check: Check::Loss, ..case(op, &[m, label], ANY) });
    }
    // Samplers: MXNet's zero gradient for their parameter arrays.
    let pos = Dom::Range(0.3, 0.6);
    for op in [
        "_random_uniform_like",
        "_random_normal_like",
        "_random_gamma_like",
        "_random_exponential_like",
        "_random_poisson_like",
        "_random_negative_binomial_like",
        "_random_generalized_negative_binomial_like",
    ] {
        v.push(Case { check: Check::Zero, ..case(op, &[m], ANY) });
    }
    v.push(Case {
        doms: vec![Dom::Range(0.0, 0.2), Dom::Range(0.5, 1.0)],
        check: Check::Zero,
        ..case("_sample_uniform", &[&[3], &[3]], ANY)
    });
    for op in [
        "_sample_normal",
        "_sample_gamma",
        "_sample_negative_binomial",
        "_sample_generalized_negative_binomial",
    ] {
        v.push(Case { check: Check::Zero, ..case(op, &[&[3], &[3]], pos) });
    }
    for op in ["_sample_exponential", "_sample_poisson"] {
        v.push(Case { check: Check::Zero, ..case(op, &[&[3]], pos) });
    }
    v.push(Case { check: Check::Zero, ..case("_sample_multinomial", &[&[2, 4]], Dom::Range(0.25, 0.25)) });
    // Indexing and ordering: integer index inputs are not differentiated.
    let idx = |op, attrs: &[(&'static str, &'static str)], shapes: &[&[usize]], doms: Vec<Dom>, inputs| {
        Case { doms, inputs: Some(inputs), ..with(op, attrs, shapes, ANY) }
    };
    v.push(idx("pick", &[], &[m, &[3]], vec![ANY, Dom::Int(0, 4)], vec![0]));
    v.push(idx("take", &[], &[m, &[2]], vec![ANY, Dom::Int(0, 3)], vec![0]));
    v.push(idx("gather_nd", &[], &[m, &[2, 2]], vec![ANY, Dom::Int(0, 3)], vec![0]));
    v.push(idx("scatter_nd", &[("shape", "(3, 4)")], &[&[1], &[2, 1]], vec![ANY, Dom::Int(0, 3)], vec![0]));
    v.push(idx("where", &[], &[m, m, m], vec![Dom::Int(0, 2), ANY, ANY], vec![1, 2]));
    v.push(Case { check: Check::Zero, ..with("one_hot", &[("depth", "4")], &[&[3]], Dom::Int(0, 4)) });
    v.push(case("diag", &[m], ANY));
    v.push(with("slice", &[("begin", "(0, 1)"), ("end", "(2, 3)")], &[m], ANY));
    v.push(with("slice_axis", &[("axis", "1"), ("begin", "1"), ("end", "3")], &[m], ANY));
    v.push(case("slice_like", &[m, &[2, 3]], ANY));
    v.push(with("_slice_assign", &[("begin", "(0, 1)"), ("end", "(2, 3)")], &[m, &[2, 2]], ANY));
    v.push(with(
        "_slice_assign_scalar",
        &[("begin", "(0, 1)"), ("end", "(2, 3)"), ("scalar", "1.5")],
        &[m],
        ANY,
    ));
    v.push(with("topk", &[("ret_typ", "value"), ("k", "2")], &[m], ANY));
    v.push(case("sort", &[m], ANY));
    v.push(Case { check: Check::Zero, ..case("argsort", &[m], ANY) });
    // Normalization layers.
    v.push(case("LayerNorm", &[&[2, 3, 4], &[4], &[4]], ANY));
    v.push(with("LayerNorm", &[("axis", "1")], &[&[2, 3, 4], &[3], &[3]], ANY));
    v.push(with("GroupNorm", &[("num_groups", "2")], &[&[2, 4, 3], &[2], &[2]], ANY));
    v.push(case("InstanceNorm", &[&[2, 3, 4], &[3], &[3]], ANY));
    for mode in ["instance", "channel", "spatial"] {
        v.push(with("L2Normalization", &[("mode", mode)], &[&[2, 3, 4]], ANY));
    }
    v.push(with("LRN", &[("nsize", "3"), ("alpha", "0.1")], &[&[1, 4, 2, 2]], ANY));
    v.push(idx(
        "Embedding",
        &[("input_dim", "5"), ("output_dim", "3"), ("dtype", "float64")],
        &[&[2, 3], &[5, 3]],
        vec![Dom::Int(0, 5), ANY],
        vec![1],
    ));
    v.push(with(
        "UpSampling",
        &[("scale", "2"), ("num_args", "1"), ("sample_type", "nearest")],
        &[&[1, 2, 2, 3]],
        ANY,
    ));
    v.push(with(
        "UpSampling",
        &[("scale", "2"), ("num_args", "2"), ("sample_type", "nearest"), ("multi_input_mode", "sum")],
        &[&[1, 2, 2, 2], &[1, 2, 4, 4]],
        ANY,
    ));
    v.push(with(
        "UpSampling",
        &[("scale", "2"), ("num_args", "2"), ("sample_type", "bilinear"), ("num_filter", "2")],
        &[&[1, 2, 3, 3], &[2, 1, 4, 4]],
        ANY,
    ));
    // Sequences (time, batch, 2) with lengths 1..=4 (not differentiated).
    let seq = [("use_sequence_length", "True")];
    for op in ["SequenceMask", "SequenceLast", "SequenceReverse"] {
        v.push(idx(op, &seq, &[&[4, 3, 2], &[3]], vec![ANY, Dom::Int(1, 5)], vec![0]));
    }
    // Linear algebra (float64 here). Triangular operands read one triangle, so the other
    // gets a zero gradient and the finite differences agree.
    let sq: &[usize] = &[2, 3, 3];
    v.push(with(
        "_linalg_gemm",
        &[("alpha", "2.0"), ("beta", "0.5"), ("transpose_a", "True")],
        &[&[2, 4, 3], &[2, 4, 5], &[2, 3, 5]],
        ANY,
    ));
    v.push(with("_linalg_gemm2", &[("transpose_b", "True")], &[&[3, 4], &[5, 4]], ANY));
    v.push(case("_linalg_potri", &[sq], POS));
    for (op, side) in [
        ("_linalg_trmm", "False"),
        ("_linalg_trmm", "True"),
        ("_linalg_trsm", "False"),
        ("_linalg_trsm", "True"),
    ] {
        v.push(with(
            op,
            &[("rightside", side), ("transpose", side), ("alpha", "1.5")],
            &[sq, &[2, 3, 3]],
            POS,
        ));
    }
    v.push(with("_linalg_trsm", &[("lower", "False")], &[&[3, 3], &[3, 2]], POS));
    v.push(with("_linalg_syrk", &[("transpose", "True")], &[&[3, 4]], ANY));
    v.push(case("_linalg_sumlogdiag", &[sq], POS));
    v.push(with("_linalg_extractdiag", &[("offset", "-1")], &[sq], ANY));
    v.push(with("_linalg_makediag", &[("offset", "1")], &[&[2, 3]], ANY));
    v.push(with("_linalg_extracttrian", &[("offset", "1")], &[sq], ANY));
    v.push(with("_linalg_maketrian", &[("lower", "False")], &[&[2, 6]], ANY));
    v.push(case("_linalg_gelqf", &[&[2, 3]], ANY));
    v.push(case("_linalg_inverse", &[sq], POS));
    v.push(case("_linalg_det", &[sq], ANY));
    v.push(case("_linalg_slogdet", &[sq], ANY));
    // potrf and syevd read one triangle of a symmetric input but return MXNet's symmetric
    // gradient (both triangles share it), which one-sided finite differences cannot
    // reproduce: their gradients are checked against MXNet's goldens (grads_golden).
    v.push(Case { check: Check::Loss, ..case("_linalg_potrf", &[&[1, 1]], POS) });
    v.push(Case { check: Check::Loss, ..case("_linalg_syevd", &[&[3, 3]], ANY) });
    // Fused RNN: (seq 2, batch 2, input 3), state size 2, MXNet's flat parameters.
    let rnn = |mode: &'static str, layers: usize, bi: &'static str, params: usize| {
        let mut shapes: Vec<Vec<usize>> =
            vec![vec![2, 2, 3], vec![params], vec![layers * if bi == "True" { 2 } else { 1 }, 2, 2]];
        if mode == "lstm" {
            shapes.push(shapes[2].clone());
        }
        let attrs = vec![
            ("mode", mode),
            ("num_layers", if layers == 1 { "1" } else { "2" }),
            ("bidirectional", bi),
            ("state_size", "2"),
            ("state_outputs", "True"),
        ];
        Case { attrs, shapes, ..case("RNN", &[], UNIT) }
    };
    v.push(rnn("lstm", 1, "True", 112));
    v.push(rnn("gru", 2, "False", 78));
    v.push(rnn("rnn_tanh", 1, "False", 14));
    v.push(rnn("rnn_relu", 1, "True", 28));
    // CTC: (time 4, batch 2, alphabet 3), labels in 1..3 (0 is the blank and the padding).
    v.push(idx("CTCLoss", &[], &[&[4, 2, 3], &[2, 2]], vec![ANY, Dom::Int(1, 3)], vec![0]));
    // Attention (flash-style kernel): plain, causal with grouped heads and padding; RoPE.
    let sdpa = "_contrib_scaled_dot_product_attention";
    v.push(case(sdpa, &[&[1, 2, 3, 4], &[1, 2, 5, 4], &[1, 2, 5, 3]], ANY));
    v.push(idx(
        sdpa,
        &[("causal", "True"), ("use_valid_length", "True")],
        &[&[2, 4, 4, 2], &[2, 2, 4, 2], &[2, 2, 4, 3], &[2]],
        vec![ANY, ANY, ANY, Dom::Int(1, 5)],
        vec![0, 1, 2],
    ));
    v.push(with("_contrib_rope", &[("offset", "3")], &[&[2, 3, 4]], ANY));
    v.push(with("_contrib_AdaptiveAvgPooling2D", &[("output_size", "(2, 3)")], &[&[1, 2, 5, 7]], ANY));
    v.push(with("_contrib_BilinearResize2D", &[("height", "5"), ("width", "3")], &[&[1, 2, 3, 4]], ANY));
    v.push(with(
        "Crop",
        &[("num_args", "1"), ("h_w", "(2, 3)"), ("offset", "(1, 0)")],
        &[&[1, 2, 4, 4]],
        ANY,
    ));
    v.push(with(
        "GridGenerator",
        &[("transform_type", "affine"), ("target_shape", "(3, 4)")],
        &[&[2, 6]],
        ANY,
    ));
    v.push(with("GridGenerator", &[("transform_type", "warp")], &[&[1, 2, 3, 4]], ANY));
    // Sampling is piecewise bilinear in the grid (kinks at pixel crossings): the data
    // gradient is checked numerically here, the grid/loc gradients by the MXNet goldens
    // of tests/spatial_transformer.rs.
    v.push(Case { inputs: Some(vec![0]), ..case("BilinearSampler", &[&[1, 2, 3, 4], &[1, 2, 2, 3]], UNIT) });
    // ROI boxes are integers in pixel units; only the data gradient exists.
    v.push(Case {
        doms: vec![ANY, Dom::Int(0, 1)],
        inputs: Some(vec![0]),
        ..with(
            "ROIPooling",
            &[("pooled_size", "(2, 2)"), ("spatial_scale", "1")],
            &[&[1, 2, 4, 4], &[2, 5]],
            ANY,
        )
    });
    v.push(Case {
        doms: vec![ANY, Dom::Int(0, 1)],
        inputs: Some(vec![0]),
        ..with(
            "_contrib_ROIAlign",
            &[("pooled_size", "(2, 2)"), ("spatial_scale", "1")],
            &[&[1, 2, 4, 4], &[2, 5]],
            ANY,
        )
    });
    v.push(Case {
        inputs: Some(vec![0]),
        ..with(
            "SpatialTransformer",
            &[("target_shape", "(2, 3)"), ("transform_type", "affine"), ("sampler_type", "bilinear")],
            &[&[1, 2, 3, 4], &[1, 6]],
            UNIT,
        )
    });
    // Moments and square sums; copies and amp_cast (float64 passes amp_cast unchanged).
    v.push(with("moments", &[("axes", "(0, 2)")], &[&[2, 3, 4]], ANY));
    v.push(with("moments", &[("keepdims", "True")], &[&[2, 3]], ANY));
    v.push(with("_square_sum", &[("axis", "1"), ("exclude", "True")], &[&[2, 3, 4]], ANY));
    v.push(with("amp_cast", &[("dtype", "float16")], &[m], ANY));
    v.push(case("_copyto", &[m], ANY));
    v.push(case("_CrossDeviceCopy", &[m], ANY));
    // Index conversions: zero gradients (MXNet's MakeZeroGradNodes).
    v.push(Case {
        check: Check::Zero,
        ..with("_ravel_multi_index", &[("shape", "(3, 4)")], &[&[2, 5]], Dom::Int(0, 3))
    });
    v.push(Case {
        check: Check::Zero,
        ..with("_unravel_index", &[("shape", "(3, 4)")], &[&[5]], Dom::Int(0, 12))
    });
    // Small contrib/internal ops.
    v.push(case("_contrib_div_sqrt_dim", &[&[2, 4]], ANY));
    v.push(Case {
        check: Check::Zero,
        ..with("_contrib_arange_like", &[("start", "1"), ("repeat", "2")], &[m], ANY)
    });
    v.push(Case { check: Check::Zero, ..case("_contrib_index_array", &[m], ANY) });
    v.push(idx("_identity_with_attr_like_rhs", &[], &[m, m], vec![ANY, ANY], vec![0]));
    v.push(with(
        "im2col",
        &[("kernel", "(2, 2)"), ("stride", "(1, 2)"), ("pad", "(1, 0)")],
        &[&[1, 2, 3, 4]],
        ANY,
    ));
    v.push(with("col2im", &[("kernel", "(2, 2)"), ("output_size", "(3, 3)")], &[&[1, 8, 4]], ANY));
    v.push(with("amp_multicast", &[("num_outputs", "2")], &[m, &[2]], ANY));
    // BatchNorm with global statistics: forward and gradient use the moving statistics
    // (inputs 3 and 4, aux states, not differentiated).
    v.push(Case {
        doms: vec![ANY, ANY, ANY, ANY, POS],
        inputs: Some(vec![0, 1, 2]),
        ..with(
            "BatchNorm",
            &[("fix_gamma", "False"), ("use_global_stats", "True")],
            &[&[2, 3, 2, 2], &[3], &[3], &[3], &[3]],
            ANY,
        )
    });
    v.push(Case {
        doms: vec![ANY, ANY, ANY, ANY, POS],
        inputs: Some(vec![0, 1, 2]),
        ..with(
            "BatchNorm_v1",
            &[("fix_gamma", "False"), ("use_global_stats", "True")],
            &[&[2, 3, 2, 2], &[3], &[3], &[3], &[3]],
            ANY,
        )
    });
    // Densities: samples inside each support; the discrete ones (and the uniform) have a
    // zero sample gradient in MXNet, so only their parameters are checked there.
    let (s23, p2): (&[usize], &[usize]) = (&[2, 3], &[2]);
    let prob = Dom::Range(0.2, 0.8);
    v.push(idx(
        "_random_pdf_uniform",
        &[],
        &[s23, p2, p2],
        vec![Dom::Range(0.3, 0.6), Dom::Range(-1.0, 0.0), Dom::Range(1.0, 2.0)],
        vec![0, 1, 2],
    ));
    v.push(idx("_random_pdf_normal", &[], &[s23, p2, p2], vec![ANY, ANY, POS], vec![0, 1, 2]));
    v.push(idx(
        "_random_pdf_gamma",
        &[("is_log", "True")],
        &[s23, p2, p2],
        vec![POS, POS, POS],
        vec![0, 1, 2],
    ));
    v.push(idx("_random_pdf_exponential", &[], &[s23, p2], vec![POS, POS], vec![0, 1]));
    v.push(idx("_random_pdf_poisson", &[], &[s23, p2], vec![Dom::Int(0, 5), POS], vec![1]));
    v.push(idx(
        "_random_pdf_negative_binomial",
        &[],
        &[s23, p2, p2],
        vec![Dom::Int(0, 5), POS, prob],
        vec![1, 2],
    ));
    v.push(idx(
        "_random_pdf_generalized_negative_binomial",
        &[],
        &[s23, p2, p2],
        vec![Dom::Int(0, 5), POS, POS],
        vec![1, 2],
    ));
    v.push(idx(
        "_random_pdf_dirichlet",
        &[],
        &[&[2, 3, 3], &[2, 3]],
        vec![Dom::Range(0.1, 0.5), POS],
        vec![0, 1],
    ));
    // Detection and indexing contrib ops.
    v.push(idx("_contrib_index_copy", &[], &[m, &[1], &[1, 4]], vec![ANY, Dom::Int(0, 3), ANY], vec![0, 2]));
    v.push(idx("_contrib_boolean_mask", &[], &[m, &[3]], vec![ANY, Dom::Int(0, 2)], vec![0]));
    // MXNet's box_iou gradient is zero by definition (a TODO in its source).
    v.push(Case { check: Check::Zero, ..case("_contrib_box_iou", &[&[2, 4], &[3, 4]], ANY) });
    v.push(with("_contrib_box_nms", &[("overlap_thresh", "0.3")], &[&[2, 5, 6]], Dom::Range(0.0, 1.0)));
    // The gradient adds the KL sparseness penalty and updates moving_avg: not the forward's
    // derivative; checked against MXNet in misc_ops_golden.
    v.push(Case {
        check: Check::Loss,
        doms: vec![Dom::Range(0.1, 0.9), Dom::Range(0.2, 0.8)],
        ..case("IdentityAttachKLSparseReg", &[&[4, 3], &[3]], ANY)
    });
    v
}

fn draw(rng: &mut Rng, dom: Dom, n: usize) -> Vec<f64> {
    (0..n)
        .map(|_| match dom {
            Dom::Range(lo, hi) => rng.range(lo, hi),
            Dom::Away(lo, hi) => {
                let m = rng.range(lo, hi);
                if rng.uniform() < 0.5 {
                    -m
                } else {
                    m
                }
            }
            Dom::Offgrid => (rng.range(-3.0, 4.0).floor()) + rng.range(0.2, 0.4),
            Dom::Int(lo, hi) => rng.range(lo as f64, hi as f64).floor(),
        })
        .collect()
}

fn build(op: &str, attrs: &[(&str, &str)]) -> Result<bool, String> {
    imperative::create(op, attrs).map(|o| o.has_gradient()).map_err(|e| e.to_string())
}

#[test]
fn every_registered_op_has_a_gradient_or_a_reason() {
    let table = cases();
    let mut problems = Vec::new();
    let mut with_grad = 0;
    for def in registry().ops() {
        let name = def.name;
        // Build with the table's attributes (required ones), else with none.
        let attrs = table.iter().find(|c| c.op == name).map(|c| c.attrs.clone()).unwrap_or_default();
        let built = build(name, &attrs);
        match (built, allowed_without_gradient(name)) {
            (Ok(true), false) => with_grad += 1,
            (Ok(true), true) => problems.push(format!("{name}: defines a gradient but is on NO_GRADIENT")),
            (Ok(false), true) => {}
            (Ok(false), false) => problems.push(format!(
                "{name}: has no gradient; define one or add it to NO_GRADIENT with the reason"
            )),
            (Err(_), true) => {}
            (Err(e), false) => problems.push(format!(
                "{name}: cannot be built without attributes ({e}); add a row to cases() with them"
            )),
        }
    }
    for (name, _) in NO_GRADIENT.iter().filter(|e| !e.0.is_empty()) {
        if registry().get(name).is_none() {
            problems.push(format!("{name}: on NO_GRADIENT but not registered"));
        }
    }
    println!(
        "{} registered ops: {with_grad} with a gradient, {} without (allowed: {})",
        registry().ops().len(),
        NO_GRADIENT.len(),
        NO_GRADIENT.iter().map(|e| e.0).collect::<Vec<_>>().join(" ")
    );
    assert!(problems.is_empty(), "gradient coverage:\n{}", problems.join("\n"));
}

#[test]
fn numeric_gradient_of_every_differentiable_op() {
    let table = cases();
    let mut rng = Rng::new(20261122);
    let mut failures = Vec::new();
    let mut checked: BTreeSet<&str> = BTreeSet::new();
    let mut elements = 0;
    let (mut zero_ops, mut loss_ops, mut numeric_ops) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for c in &table {
        let inputs: Vec<NDArray> = c
            .shapes
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let n = s.iter().product();
                let dom = c.doms.get(i).copied().unwrap_or(c.dom);
                NDArray::from_vec(draw(&mut rng, dom, n), s.clone()).unwrap()
            })
            .collect();
        let opts = NumericGradient { ones_heads: c.check == Check::OnesHeads, ..Default::default() };
        let result = match c.check {
            Check::Zero => zero_gradient(c.op, &c.attrs, &inputs, true),
            // Loss layers and float32-only ops run in float32 here.
            Check::Loss => {
                let f32s: Vec<NDArray> =
                    inputs.iter().map(|x| x.astype(mixnet::DType::F32).unwrap()).collect();
                zero_gradient(c.op, &c.attrs, &f32s, false)
            }
            _ => check_numeric_gradient(c.op, &c.attrs, &inputs, c.inputs.as_deref(), &opts)
                .map_err(|e| e.to_string()),
        };
        match result {
            Ok(n) => {
                elements += n;
                checked.insert(c.op);
                match c.check {
                    Check::Zero => zero_ops.insert(c.op),
                    Check::Loss => loss_ops.insert(c.op),
                    _ => numeric_ops.insert(c.op),
                };
            }
            Err(e) => failures.push(format!("{} {:?} {:?}: {e}", c.op, c.attrs, c.shapes)),
        }
    }
    // Every registered op with a gradient must have been checked.
    let mut differentiable_ops = BTreeSet::new();
    let mut missing = Vec::new();
    for def in registry().ops() {
        let attrs = table.iter().find(|c| c.op == def.name).map(|c| c.attrs.clone()).unwrap_or_default();
        if let Ok(true) = build(def.name, &attrs) {
            differentiable_ops.insert(def.name);
            if !table.iter().any(|c| c.op == def.name) {
                missing.push(def.name);
            }
        }
    }
    let differentiable = differentiable_ops.len();
    let ok = table.iter().map(|c| c.op).filter(|op| checked.contains(op)).collect::<BTreeSet<_>>().len();
    println!(
        "numeric gradient: {} of {differentiable} differentiable ops checked ({} cases, {elements} gradient elements): \
         {} by finite differences, {} zero by definition (exact zero checked), {} golden only (loss layers, float32-only ops, potrf/syevd; backward runs)",
        ok.min(differentiable),
        table.len(),
        numeric_ops.len(),
        zero_ops.difference(&numeric_ops).count(),
        loss_ops.len()
    );
    for f in &failures {
        println!("FAIL {f}");
    }
    assert!(missing.is_empty(), "ops with a gradient but no row in cases(): {}", missing.join(" "));
    assert!(failures.is_empty(), "{} numeric gradient case(s) failed", failures.len());
}

/// `BlockGrad`, samplers: the gradient must be exactly zero (`zero`); loss layers: it must
/// be finite.
fn zero_gradient(op: &str, attrs: &[(&str, &str)], inputs: &[NDArray], zero: bool) -> Result<usize, String> {
    let e = |e: mixnet::Error| e.to_string();
    for x in inputs {
        x.attach_grad().map_err(e)?;
    }
    let out = {
        let _r = mixnet::autograd::record(true);
        imperative::invoke(op, inputs, attrs).map_err(e)?
    };
    mixnet::autograd::backward(&out, &[]).map_err(e)?;
    let mut n = 0;
    for x in inputs {
        let g = x.grad().unwrap().to_f64_vec().map_err(e)?;
        if zero && g.iter().any(|&v| v != 0.0) {
            return Err(format!("{op}: gradient is not zero: {g:?}"));
        }
        if g.iter().any(|v| !v.is_finite()) {
            return Err(format!("{op}: gradient is not finite: {g:?}"));
        }
        n += g.len();
    }
    Ok(n)
}

#[test]
fn the_checker_catches_a_wrong_gradient() {
    // make_loss's gradient is ones whatever the head: against random heads it must fail,
    // and with ones it must pass.
    let mut rng = Rng::new(7);
    let x = NDArray::from_vec(draw(&mut rng, ANY, 6), [2, 3]).unwrap();
    let err = check_numeric_gradient("make_loss", &[], &[x.clone()], None, &NumericGradient::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("make_loss") && err.contains("mismatch"), "{err}");
    let ones = NumericGradient { ones_heads: true, ..Default::default() };
    assert_eq!(check_numeric_gradient("make_loss", &[], &[x], None, &ones).unwrap(), 6);
    // A float32 input cannot be checked in float64.
    let f = NDArray::from_vec(vec![1.0f32; 3], [3]).unwrap();
    assert!(check_numeric_gradient("exp", &[], &[f], Some(&[0]), &NumericGradient::default()).is_err());
}
