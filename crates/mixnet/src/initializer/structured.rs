//! Initializers with structure beyond i.i.d. draws: `Orthogonal`, `Bilinear` (upsampling
//! kernels), `LSTMBias` (forget-gate bias), and `Mixed` (by parameter-name pattern).

use std::sync::Arc;

use super::{check_float, random_normal, random_uniform, Initializer};
use crate::{Context, DType, Error, NDArray, Result, Shape};

/// How `Orthogonal` draws its starting matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RandType {
    Uniform,
    Normal,
}

/// A random matrix with orthonormal rows or columns (whichever fit the shape `(out,
/// prod(rest))`), times `scale` (MXNet's `Orthogonal(scale=1.414, rand_type="uniform")`).
/// MXNet takes a factor of the SVD of a random matrix; this orthonormalizes the random
/// matrix by Gram-Schmidt, which gives the same family of matrices.
#[derive(Clone, Copy, Debug)]
pub struct Orthogonal {
    pub scale: f64,
    pub rand_type: RandType,
}

impl Default for Orthogonal {
    fn default() -> Self {
        Orthogonal { scale: 1.414, rand_type: RandType::Uniform }
    }
}

/// Orthonormalize the rows of `m` (`rows × cols`, rows ≤ cols) in place (modified
/// Gram-Schmidt in f64); a row that degenerates is replaced by a unit vector.
fn orthonormal_rows(m: &mut [f64], rows: usize, cols: usize) {
    for i in 0..rows {
        for j in 0..i {
            let dot: f64 = (0..cols).map(|k| m[i * cols + k] * m[j * cols + k]).sum();
            for k in 0..cols {
                m[i * cols + k] -= dot * m[j * cols + k];
            }
        }
        let norm = (0..cols).map(|k| m[i * cols + k].powi(2)).sum::<f64>().sqrt();
        if norm > 1e-12 {
            m[i * cols..(i + 1) * cols].iter_mut().for_each(|v| *v /= norm);
        } else {
            m[i * cols..(i + 1) * cols].iter_mut().enumerate().for_each(|(k, v)| *v = f64::from(k == i));
        }
    }
}

impl Initializer for Orthogonal {
    fn init_weight(&self, name: &str, shape: &Shape, dtype: DType, ctx: Context) -> Result<NDArray> {
        check_float(name, "Orthogonal", dtype)?;
        if shape.ndim() < 2 {
            return Err(Error::Invalid(format!(
                "Orthogonal initializer needs a parameter of at least 2 dimensions, '{name}' has shape {shape}"
            )));
        }
        let (nout, nin) = (shape[0], shape.iter().skip(1).product::<usize>());
        let flat = Shape::new(&[nout, nin]);
        let draw = match self.rand_type {
            RandType::Uniform => random_uniform(-1.0, 1.0, &flat, DType::F64, ctx)?,
            RandType::Normal => random_normal(0.0, 1.0, &flat, DType::F64, ctx)?,
        };
        let mut m = draw.to_f64_vec()?;
        if nout <= nin {
            orthonormal_rows(&mut m, nout, nin);
        } else {
            // Orthonormal columns: orthonormalize the rows of the transpose.
            let mut t: Vec<f64> = (0..nin * nout).map(|i| m[(i % nout) * nin + i / nout]).collect();
            orthonormal_rows(&mut t, nin, nout);
            m = (0..nout * nin).map(|i| t[(i % nin) * nout + i / nin]).collect();
        }
        let v: Vec<f64> = m.iter().map(|x| x * self.scale).collect();
        NDArray::from_vec(v, shape.to_vec())?.astype(dtype)
    }
    fn dumps(&self) -> String {
        let r = if self.rand_type == RandType::Uniform { "uniform" } else { "normal" };
        format!(r#"["orthogonal", {{"scale": {}, "rand_type": "{r}"}}]"#, self.scale)
    }
}

/// Bilinear-interpolation kernels for upsampling deconvolutions, shape `(.., .., h, w)`
/// (MXNet's `Bilinear()`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Bilinear;

impl Initializer for Bilinear {
    fn init_weight(&self, name: &str, shape: &Shape, dtype: DType, ctx: Context) -> Result<NDArray> {
        check_float(name, "Bilinear", dtype)?;
        if shape.ndim() != 4 {
            return Err(Error::Invalid(format!(
                "Bilinear initializer needs a 4-D parameter, '{name}' has shape {shape}"
            )));
        }
        let (h, w) = (shape[2], shape[3]);
        let f = (w as f64 / 2.0).ceil();
        let c = (2.0 * f - 1.0 - f % 2.0) / (2.0 * f);
        let v: Vec<f32> = (0..shape.numel())
            .map(|i| {
                let (x, y) = ((i % w) as f64, ((i / w) % h) as f64);
                ((1.0 - (x / f - c).abs()) * (1.0 - (y / f - c).abs())) as f32
            })
            .collect();
        let _ = ctx;
        NDArray::from_vec(v, shape.to_vec())?.astype(dtype)
    }
    fn dumps(&self) -> String {
        r#"["bilinear", {}]"#.into()
    }
}

/// Zero LSTM biases except the forget gate's quarter (MXNet's `LSTMBias(forget_bias=1.0)`,
/// gates i, f, g, o).
#[derive(Clone, Copy, Debug)]
pub struct LSTMBias {
    pub forget_bias: f64,
}

impl Default for LSTMBias {
    fn default() -> Self {
        LSTMBias { forget_bias: 1.0 }
    }
}

impl Initializer for LSTMBias {
    fn init_weight(&self, name: &str, shape: &Shape, dtype: DType, ctx: Context) -> Result<NDArray> {
        check_float(name, "LSTMBias", dtype)?;
        if shape.ndim() != 1 || !shape[0].is_multiple_of(4) {
            return Err(Error::Invalid(format!(
                "LSTMBias initializer needs a 1-D parameter of 4·hidden values, '{name}' has shape {shape}"
            )));
        }
        let h = shape[0] / 4;
        let v: Vec<f64> =
            (0..shape[0]).map(|i| if (h..2 * h).contains(&i) { self.forget_bias } else { 0.0 }).collect();
        let _ = ctx;
        NDArray::from_vec(v, shape.to_vec())?.astype(dtype)
    }
    fn dumps(&self) -> String {
        format!(r#"["lstmbias", {{"forget_bias": {}}}]"#, self.forget_bias)
    }
}

/// The first initializer whose pattern matches the start of the parameter's name (MXNet's
/// `Mixed(patterns, initializers)`, `re.match` semantics); no match is an error.
#[derive(Clone, Debug)]
pub struct Mixed {
    map: Vec<(regex::Regex, Arc<dyn Initializer>)>,
}

impl Mixed {
    pub fn new(patterns: &[&str], initializers: Vec<Arc<dyn Initializer>>) -> Result<Self> {
        if patterns.len() != initializers.len() {
            return Err(Error::Invalid(format!(
                "Mixed initializer: {} patterns for {} initializers",
                patterns.len(),
                initializers.len()
            )));
        }
        let map = patterns
            .iter()
            .zip(initializers)
            .map(|(p, init)| {
                let re = regex::Regex::new(&format!("^(?:{p})"))
                    .map_err(|e| Error::Invalid(format!("Mixed initializer: bad pattern '{p}': {e}")))?;
                Ok((re, init))
            })
            .collect::<Result<_>>()?;
        Ok(Mixed { map })
    }

    fn pick(&self, name: &str) -> Result<&Arc<dyn Initializer>> {
        self.map.iter().find(|(re, _)| re.is_match(name)).map(|(_, i)| i).ok_or_else(|| {
            Error::Invalid(format!(
                "parameter name {name} did not match any pattern of the Mixed initializer; consider adding a \
                 \".*\" pattern at the end with a default initializer"
            ))
        })
    }
}

impl Initializer for Mixed {
    fn init_weight(&self, name: &str, shape: &Shape, dtype: DType, ctx: Context) -> Result<NDArray> {
        self.pick(name)?.init_weight(name, shape, dtype, ctx)
    }
    fn init_by_name(&self, name: &str, shape: &Shape, dtype: DType, ctx: Context) -> Result<NDArray> {
        self.pick(name)?.init_by_name(name, shape, dtype, ctx)
    }
    fn dumps(&self) -> String {
        let inits: Vec<String> = self.map.iter().map(|(_, i)| i.dumps()).collect();
        format!(r#"["mixed", [{}]]"#, inits.join(", "))
    }
}
