//! `Display` like MXNet's `print(x)`: numpy's text of the values, then
//! `<NDArray 2x3 @cpu(0)>`.

use std::fmt;

use super::NDArray;

/// One value as numpy prints it: floats keep a trailing `.` when integral (`1.`).
fn format_value(v: f64, is_float: bool) -> String {
    if !is_float {
        return format!("{}", v as i64);
    }
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if v == v.trunc() && v.abs() < 1e16 {
        return format!("{}.", v as i64);
    }
    let a = v.abs();
    if !(1e-4..1e16).contains(&a) {
        return format!("{v:e}");
    }
    let s = format!("{v:.8}");
    s.trim_end_matches('0').to_string()
}

fn write_nested(f: &mut fmt::Formatter<'_>, vals: &[String], dims: &[usize], depth: usize) -> fmt::Result {
    if dims.is_empty() {
        return write!(f, "{}", vals.first().map(String::as_str).unwrap_or(""));
    }
    write!(f, "[")?;
    let stride: usize = dims[1..].iter().product();
    for i in 0..dims[0] {
        if i > 0 {
            if dims.len() > 1 {
                write!(f, "{}", "\n".repeat(dims.len() - 1))?;
                write!(f, "{}", " ".repeat(depth + 1))?;
            } else {
                write!(f, " ")?;
            }
        }
        write_nested(f, &vals[i * stride..(i + 1) * stride], &dims[1..], depth + 1)?;
    }
    write!(f, "]")
}

impl fmt::Display for NDArray {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_f64_vec() {
            Ok(values) => {
                let is_float = self.dtype().is_float();
                let text: Vec<String> = values.iter().map(|&v| format_value(v, is_float)).collect();
                let width = text.iter().map(String::len).max().unwrap_or(0);
                let padded: Vec<String> = text.iter().map(|t| format!("{t:>width$}")).collect();
                write_nested(f, &padded, self.shape(), 0)?;
            }
            Err(e) => write!(f, "<error: {e}>")?,
        }
        write!(f, "\n<NDArray {} @{}>", self.shape().to_x_string(), self.context())
    }
}

impl fmt::Debug for NDArray {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NDArray({} {} @{})", self.shape(), self.dtype(), self.context())
    }
}

#[cfg(test)]
mod tests {
    use crate::NDArray;

    #[test]
    fn prints_like_mxnet() {
        let x = NDArray::from_vec(vec![1.0f32, 2.0], [1, 2]).unwrap();
        assert_eq!(x.to_string(), "[[1. 2.]]\n<NDArray 1x2 @cpu(0)>");
        let z = NDArray::from_vec(vec![1i32, 20, 3], [3]).unwrap();
        assert_eq!(z.to_string(), "[ 1 20  3]\n<NDArray 3 @cpu(0)>");
    }
}
