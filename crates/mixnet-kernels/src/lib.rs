//! CPU compute kernels on plain slices: no NDArray, no engine. Generic over the element
//! type here, at the kernel boundary, and nowhere above.

pub mod element;

pub use element::Element;
pub use half::{bf16, f16};
pub mod attention;
pub mod bbox;
pub mod conv;
pub mod correlation;
pub mod ctc;
pub mod elementwise;
pub mod fastmath;
pub mod fill;
pub mod gemm;
pub mod image;
pub mod linalg;
pub mod nn;
pub mod norm;
pub mod optimizer;
pub mod parallel;
pub mod pdf;
pub mod pool;
pub mod reduce;
pub mod rnn;
pub mod roi;
pub mod scratch;
pub mod shape;
pub mod spatial;
pub mod special;
pub mod unary;
