//! Operator attributes as MXNet passes them: a string map (`"kernel": "(3, 3)"`,
//! `"no_bias": "True"`, `"axis": "None"`), parsed with each op's defaults. The same
//! parser serves eager `invoke` and the symbol-JSON loader, so saved graphs load unchanged.

use crate::{DType, Error, Result};

/// The attribute map of one operator call, tracking which keys the op consumed so that a
/// misspelled attribute is an error instead of being silently ignored.
pub struct Attrs<'a> {
    op: &'static str,
    items: Vec<(&'a str, &'a str)>,
    used: Vec<bool>,
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim() {
        "True" | "true" | "1" => Some(true),
        "False" | "false" | "0" => Some(false),
        _ => None,
    }
}

fn is_none(v: &str) -> bool {
    matches!(v.trim(), "None" | "none" | "")
}

/// Parse `"(2, 2)"`, `"[2,2]"`, `"2"`, `"(None, 4)"`, `"()"` into optional integers.
pub fn parse_tuple(v: &str) -> Option<Vec<Option<i64>>> {
    let t = v.trim();
    let inner = t
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .or_else(|| t.strip_prefix('[').and_then(|s| s.strip_suffix(']')))
        .unwrap_or(t);
    let mut out = Vec::new();
    for part in inner.split(',') {
        let p = part.trim();
        if p.is_empty() {
            continue;
        }
        if is_none(p) {
            out.push(None);
        } else {
            let p = p.strip_suffix('L').unwrap_or(p);
            out.push(Some(p.parse::<i64>().ok().or_else(|| {
                let f = p.parse::<f64>().ok()?;
                (f.fract() == 0.0).then_some(f as i64)
            })?));
        }
    }
    Some(out)
}

impl<'a> Attrs<'a> {
    pub fn new(op: &'static str, items: &[(&'a str, &'a str)]) -> Self {
        Attrs { op, items: items.to_vec(), used: vec![false; items.len()] }
    }

    /// Name of the operator being configured.
    pub fn op(&self) -> &'static str {
        self.op
    }

    fn err(&self, key: &str, v: &str, want: &str) -> Error {
        Error::op(self.op, format!("attribute {key}='{v}' is not {want}"))
    }

    /// The raw string, if given.
    pub fn get(&mut self, key: &str) -> Option<&'a str> {
        let i = self.items.iter().position(|(k, _)| *k == key)?;
        self.used[i] = true;
        Some(self.items[i].1)
    }

    pub fn str_or(&mut self, key: &str, default: &'a str) -> &'a str {
        self.get(key).unwrap_or(default)
    }

    pub fn int(&mut self, key: &str, default: i64) -> Result<i64> {
        Ok(self.opt_int(key)?.unwrap_or(default))
    }

    /// An integer that may be `None`.
    pub fn opt_int(&mut self, key: &str) -> Result<Option<i64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) if is_none(v) => Ok(None),
            Some(v) => match parse_tuple(v).as_deref() {
                Some([Some(x)]) => Ok(Some(*x)),
                _ => Err(self.err(key, v, "an integer")),
            },
        }
    }

    pub fn usize(&mut self, key: &str, default: usize) -> Result<usize> {
        let v = self.int(key, default as i64)?;
        usize::try_from(v)
            .map_err(|_| Error::op(self.op, format!("attribute {key}={v} must be non-negative")))
    }

    pub fn float(&mut self, key: &str, default: f64) -> Result<f64> {
        Ok(self.opt_float(key)?.unwrap_or(default))
    }

    pub fn opt_float(&mut self, key: &str) -> Result<Option<f64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) if is_none(v) => Ok(None),
            Some(v) => {
                let t = v.trim();
                let parsed = match t {
                    "inf" | "Infinity" => Some(f64::INFINITY),
                    "-inf" | "-Infinity" => Some(f64::NEG_INFINITY),
                    "nan" | "NaN" => Some(f64::NAN),
                    _ => t.parse::<f64>().ok(),
                };
                parsed.map(Some).ok_or_else(|| self.err(key, v, "a number"))
            }
        }
    }

    pub fn bool(&mut self, key: &str, default: bool) -> Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => parse_bool(v).ok_or_else(|| self.err(key, v, "a boolean (True/False/1/0)")),
        }
    }

    /// A tuple of integers (no `None` entries); `None` when absent or `"None"`.
    pub fn tuple(&mut self, key: &str) -> Result<Option<Vec<i64>>> {
        match self.opt_tuple(key)? {
            None => Ok(None),
            Some(t) => match t.iter().copied().collect::<Option<Vec<i64>>>() {
                Some(v) => Ok(Some(v)),
                None => Err(Error::op(self.op, format!("attribute {key} may not contain None"))),
            },
        }
    }

    /// A tuple of numbers (`"(0.1, 0.2)"`, `"[0.1]"`, `"0.1"`); `None` when absent, empty or
    /// `"None"`.
    pub fn float_tuple(&mut self, key: &str) -> Result<Option<Vec<f64>>> {
        let Some(v) = self.get(key) else { return Ok(None) };
        let t = v.trim();
        if t.is_empty() || t == "None" {
            return Ok(None);
        }
        let inner = t
            .strip_prefix('(')
            .and_then(|s| s.strip_suffix(')'))
            .or_else(|| t.strip_prefix('[').and_then(|s| s.strip_suffix(']')))
            .unwrap_or(t);
        inner
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| p.parse::<f64>().map_err(|_| self.err(key, v, "a tuple of numbers")))
            .collect::<Result<Vec<f64>>>()
            .map(Some)
    }

    /// A tuple whose entries may be `None` (slice begin/end).
    pub fn opt_tuple(&mut self, key: &str) -> Result<Option<Vec<Option<i64>>>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) if v.trim() == "None" => Ok(None),
            Some(v) => parse_tuple(v).map(Some).ok_or_else(|| self.err(key, v, "a tuple of integers")),
        }
    }

    /// A dtype given by numpy name (`"float32"`); `None` when absent or `"None"`.
    pub fn dtype(&mut self, key: &str) -> Result<Option<DType>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) if is_none(v) => Ok(None),
            Some(v) => DType::from_name(v).map(Some).ok_or_else(|| self.err(key, v, "a known dtype")),
        }
    }

    /// One of a fixed set of strings.
    pub fn choice(
        &mut self,
        key: &str,
        options: &[&'static str],
        default: &'static str,
    ) -> Result<&'static str> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => {
                let t = v.trim().trim_matches('\'');
                options.iter().find(|o| **o == t).copied().ok_or_else(|| {
                    Error::op(self.op, format!("attribute {key}='{v}' must be one of {options:?}"))
                })
            }
        }
    }

    /// Refuse attributes the op does not know. Hidden keys (`__shape__`, `__lr_mult__`,
    /// ...) and front-end bookkeeping (`name`, `ctx`) pass, as in MXNet.
    pub fn finish(self) -> Result<()> {
        let unknown: Vec<&str> = self
            .items
            .iter()
            .zip(&self.used)
            .filter(|((k, _), used)| !(**used || k.starts_with("__") || *k == "name" || *k == "ctx"))
            .map(|((k, _), _)| *k)
            .collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(Error::op(self.op, format!("unknown attribute(s) {unknown:?}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mxnet_syntax() {
        let items = [
            ("kernel", "(3, 3)"),
            ("no_bias", "True"),
            ("axis", "None"),
            ("eps", "1e-05"),
            ("b", "(None, 4)"),
        ];
        let mut a = Attrs::new("Convolution", &items);
        assert_eq!(a.tuple("kernel").unwrap(), Some(vec![3, 3]));
        assert!(a.bool("no_bias", false).unwrap());
        assert_eq!(a.opt_int("axis").unwrap(), None);
        assert_eq!(a.float("eps", 0.0).unwrap(), 1e-5);
        assert_eq!(a.opt_tuple("b").unwrap(), Some(vec![None, Some(4)]));
        a.finish().unwrap();
        assert_eq!(parse_tuple("2"), Some(vec![Some(2)]));
        assert_eq!(parse_tuple("()"), Some(vec![]));
        assert_eq!(parse_tuple("[1,2]"), Some(vec![Some(1), Some(2)]));
        let items = [("stride", "2"), ("strid", "2")];
        let mut a = Attrs::new("Pooling", &items);
        a.int("stride", 1).unwrap();
        let err = a.finish().unwrap_err().to_string();
        assert!(err.contains("Pooling") && err.contains("strid"), "{err}");
        let items = [("axis", "x")];
        let err = Attrs::new("sum", &items).int("axis", 0).unwrap_err().to_string();
        assert!(err.contains("sum") && err.contains("axis='x'"), "{err}");
    }
}
