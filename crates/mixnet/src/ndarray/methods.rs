//! Methods for common operators, so Rust code reads like MXNet's NDArray API
//! (`x.exp()`, `x.sum(Some(&[1]), false)`, `x.transpose(None)`). Each is one `invoke`.

use super::NDArray;
use crate::imperative::invoke;
use crate::{DType, Result};

fn one(op: &str, inputs: &[NDArray], attrs: &[(&str, &str)]) -> Result<NDArray> {
    let mut out = invoke(op, inputs, attrs)?;
    Ok(out.swap_remove(0))
}

fn tuple(axes: &[i64]) -> String {
    format!("({})", axes.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", "))
}

macro_rules! unary_methods {
    ($($name:ident => $op:literal),* $(,)?) => {
        impl NDArray {
            $(
                #[doc = concat!("`", $op, "` elementwise.")]
                pub fn $name(&self) -> Result<NDArray> {
                    one($op, std::slice::from_ref(self), &[])
                }
            )*
        }
    };
}

unary_methods!(
    exp => "exp", log => "log", sqrt => "sqrt", square => "square", abs => "abs",
    relu => "relu", sigmoid => "sigmoid", tanh => "tanh", negative => "negative",
    flatten => "Flatten", copy => "_copy", sign => "sign",
);

impl NDArray {
    fn reduce(&self, op: &str, axis: Option<&[i64]>, keepdims: bool) -> Result<NDArray> {
        let axis = axis.map(tuple);
        let keep = if keepdims { "True" } else { "False" };
        let mut attrs = vec![("keepdims", keep)];
        if let Some(a) = axis.as_deref() {
            attrs.push(("axis", a));
        }
        one(op, std::slice::from_ref(self), &attrs)
    }

    /// Sum over `axis` (all axes when `None`).
    pub fn sum(&self, axis: Option<&[i64]>, keepdims: bool) -> Result<NDArray> {
        self.reduce("sum", axis, keepdims)
    }
    /// Mean over `axis` (all axes when `None`).
    pub fn mean(&self, axis: Option<&[i64]>, keepdims: bool) -> Result<NDArray> {
        self.reduce("mean", axis, keepdims)
    }
    /// Maximum over `axis` (all axes when `None`).
    pub fn max(&self, axis: Option<&[i64]>, keepdims: bool) -> Result<NDArray> {
        self.reduce("max", axis, keepdims)
    }
    /// Minimum over `axis` (all axes when `None`).
    pub fn min(&self, axis: Option<&[i64]>, keepdims: bool) -> Result<NDArray> {
        self.reduce("min", axis, keepdims)
    }

    /// Index of the maximum along `axis` (flattened when `None`), as MXNet returns it.
    pub fn argmax(&self, axis: Option<i64>) -> Result<NDArray> {
        let axis = axis.map(|a| a.to_string());
        let attrs: Vec<(&str, &str)> = axis.as_deref().map(|a| vec![("axis", a)]).unwrap_or_default();
        one("argmax", std::slice::from_ref(self), &attrs)
    }

    /// Permute axes (reverse them when `None`).
    pub fn transpose(&self, axes: Option<&[i64]>) -> Result<NDArray> {
        let axes = axes.map(tuple);
        let attrs: Vec<(&str, &str)> = axes.as_deref().map(|a| vec![("axes", a)]).unwrap_or_default();
        one("transpose", std::slice::from_ref(self), &attrs)
    }

    /// Matrix product (MXNet's `dot`).
    pub fn dot(&self, rhs: &NDArray) -> Result<NDArray> {
        one("dot", &[self.clone(), rhs.clone()], &[])
    }

    /// A copy converted to `dtype` (MXNet's `astype` / `Cast`).
    pub fn astype(&self, dtype: DType) -> Result<NDArray> {
        one("Cast", std::slice::from_ref(self), &[("dtype", dtype.name())])
    }

    /// The L2 norm of all elements, shape `(1,)` (MXNet's `x.norm()`).
    pub fn norm(&self) -> Result<NDArray> {
        one("norm", std::slice::from_ref(self), &[])
    }

    /// Elementwise maximum with broadcasting (`broadcast_maximum`).
    pub fn maximum(&self, rhs: &NDArray) -> Result<NDArray> {
        one("broadcast_maximum", &[self.clone(), rhs.clone()], &[])
    }

    /// Values limited to `[a_min, a_max]`.
    pub fn clip(&self, a_min: f64, a_max: f64) -> Result<NDArray> {
        let (lo, hi) = (a_min.to_string(), a_max.to_string());
        one("clip", std::slice::from_ref(self), &[("a_min", &lo), ("a_max", &hi)])
    }
}
