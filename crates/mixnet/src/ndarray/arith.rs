//! Rust operators on arrays, with MXNet NDArray semantics: `&a + &b` broadcasts
//! (`broadcast_add`), `&a + 2.0` is `_plus_scalar`, `2.0 - &a` is `_rminus_scalar`.
//! They return `Result` because shapes may not broadcast: `let c = (&a + &b)?;`.

use std::ops::{Add, Div, Mul, Neg, Sub};
use std::sync::{Arc, OnceLock};

use super::NDArray;
use crate::imperative::{invoke_operator_small, Outputs};
use crate::op::Operator;
use crate::operator::binary::{BinaryFn, BinaryOp};
use crate::Result;

/// The four broadcasting operators, configured once (they have no attributes).
fn broadcast_op(f: BinaryFn) -> &'static Arc<dyn Operator> {
    static OPS: [OnceLock<Arc<dyn Operator>>; 4] =
        [OnceLock::new(), OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let i = match f {
        BinaryFn::Add => 0,
        BinaryFn::Sub => 1,
        BinaryFn::Mul => 2,
        _ => 3,
    };
    OPS[i].get_or_init(|| Arc::new(BinaryOp::broadcast(f)))
}

fn single(mut v: Outputs) -> NDArray {
    // Binary ops have exactly one output; invoke allocated it.
    v.swap_remove(0)
}

fn binary(f: BinaryFn, a: &NDArray, b: &NDArray) -> Result<NDArray> {
    invoke_operator_small(broadcast_op(f), &[a, b]).map(single)
}

fn scalar(f: BinaryFn, a: &NDArray, s: f64, reverse: bool) -> Result<NDArray> {
    let op: Arc<dyn Operator> = Arc::new(BinaryOp::scalar(f, s, reverse));
    invoke_operator_small(&op, std::slice::from_ref(a)).map(single)
}

macro_rules! arith {
    ($trait:ident, $method:ident, $f:expr) => {
        impl $trait<&NDArray> for &NDArray {
            type Output = Result<NDArray>;
            fn $method(self, rhs: &NDArray) -> Result<NDArray> {
                binary($f, self, rhs)
            }
        }
        impl $trait<NDArray> for NDArray {
            type Output = Result<NDArray>;
            fn $method(self, rhs: NDArray) -> Result<NDArray> {
                binary($f, &self, &rhs)
            }
        }
        impl $trait<f64> for &NDArray {
            type Output = Result<NDArray>;
            fn $method(self, rhs: f64) -> Result<NDArray> {
                scalar($f, self, rhs, false)
            }
        }
        impl $trait<f64> for NDArray {
            type Output = Result<NDArray>;
            fn $method(self, rhs: f64) -> Result<NDArray> {
                scalar($f, &self, rhs, false)
            }
        }
        impl $trait<&NDArray> for f64 {
            type Output = Result<NDArray>;
            fn $method(self, rhs: &NDArray) -> Result<NDArray> {
                scalar($f, rhs, self, true)
            }
        }
    };
}

arith!(Add, add, BinaryFn::Add);
arith!(Sub, sub, BinaryFn::Sub);
arith!(Mul, mul, BinaryFn::Mul);
arith!(Div, div, BinaryFn::Div);

impl Neg for &NDArray {
    type Output = Result<NDArray>;
    fn neg(self) -> Result<NDArray> {
        scalar(BinaryFn::Mul, self, -1.0, false)
    }
}

#[cfg(test)]
mod tests {
    use crate::NDArray;

    #[test]
    fn operators_broadcast_like_mxnet_ndarray() {
        let a = NDArray::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]).unwrap();
        let b = NDArray::from_vec(vec![10.0f32, 20.0, 30.0], [3]).unwrap();
        assert_eq!((&a + &b).unwrap().to_vec::<f32>().unwrap(), [11., 22., 33., 14., 25., 36.]);
        assert_eq!((&a - &b).unwrap().to_vec::<f32>().unwrap(), [-9., -18., -27., -6., -15., -24.]);
        assert_eq!((&a * 2.0).unwrap().to_vec::<f32>().unwrap(), [2., 4., 6., 8., 10., 12.]);
        assert_eq!((12.0 / &a).unwrap().to_vec::<f32>().unwrap(), [12., 6., 4., 3., 2.4, 2.]);
        assert_eq!((-&b).unwrap().to_vec::<f32>().unwrap(), [-10., -20., -30.]);
        let c = NDArray::from_vec(vec![1.0f32, 2.0], [2]).unwrap();
        let err = (&a + &c).unwrap_err().to_string();
        assert!(err.contains("broadcast_add") && err.contains("(2, 3)") && err.contains("(2,)"), "{err}");
    }
}
