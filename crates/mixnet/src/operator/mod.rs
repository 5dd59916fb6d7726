//! Operator implementations, grouped as MXNet's `src/operator/tensor` groups them. Each
//! module registers its operators in [`register_all`].

pub mod binary;
pub mod bounding_box;
pub mod contrib;
pub(crate) mod copy;
pub mod dot;
pub(crate) mod grad;
pub mod indexing;
pub mod init;
pub mod krprod;
pub mod linalg;
pub mod matrix;
pub mod misc;
pub mod moments;
pub mod ndarray_fun;
pub mod nn;
pub mod optimizer;
pub mod ordering;
pub mod pdf;
pub mod random;
pub mod ravel;
pub mod reduce;
pub mod unary;
pub mod unique_sample;

use crate::op::Registry;

/// Register every operator family.
pub fn register_all(r: &mut Registry) {
    binary::register(r);
    unary::register(r);
    dot::register(r);
    init::register(r);
    matrix::register(r);
    reduce::register(r);
    nn::register(r);
    optimizer::register(r);
    random::register(r);
    pdf::register(r);
    unique_sample::register(r);
    indexing::register(r);
    ordering::register(r);
    linalg::register(r);
    moments::register(r);
    ravel::register(r);
    krprod::register(r);
    contrib::register(r);
    ndarray_fun::register(r);
    bounding_box::register(r);
    misc::register(r);
}
