//! Element types, with MXNet's type codes (mshadow `TypeFlag`) and numpy's names.

use std::fmt;

/// Element type of an array. Codes are MXNet's, as stored in `.params` files and symbol JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    F32,
    F64,
    F16,
    U8,
    I32,
    I8,
    I64,
    Bool,
    BF16,
}

impl DType {
    /// Every dtype mixnet supports, in code order.
    pub const ALL: [DType; 9] = [
        DType::F32,
        DType::F64,
        DType::F16,
        DType::U8,
        DType::I32,
        DType::I8,
        DType::I64,
        DType::Bool,
        DType::BF16,
    ];

    /// MXNet's type flag (0 float32, 1 float64, 2 float16, 3 uint8, 4 int32, 5 int8, 6 int64, 7 bool, 12 bfloat16).
    pub const fn code(self) -> i32 {
        match self {
            DType::F32 => 0,
            DType::F64 => 1,
            DType::F16 => 2,
            DType::U8 => 3,
            DType::I32 => 4,
            DType::I8 => 5,
            DType::I64 => 6,
            DType::Bool => 7,
            DType::BF16 => 12,
        }
    }

    /// The dtype for an MXNet type flag; `None` for codes mixnet does not support (int16, uint16, ...).
    pub const fn from_code(code: i32) -> Option<DType> {
        Some(match code {
            0 => DType::F32,
            1 => DType::F64,
            2 => DType::F16,
            3 => DType::U8,
            4 => DType::I32,
            5 => DType::I8,
            6 => DType::I64,
            7 => DType::Bool,
            12 => DType::BF16,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub const fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::U8 | DType::I8 | DType::Bool => 1,
        }
    }

    /// numpy's name, as MXNet's Python API prints it and as `dtype=` attributes spell it.
    pub const fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::F64 => "float64",
            DType::F16 => "float16",
            DType::U8 => "uint8",
            DType::I32 => "int32",
            DType::I8 => "int8",
            DType::I64 => "int64",
            DType::Bool => "bool",
            DType::BF16 => "bfloat16",
        }
    }

    /// Parse a numpy dtype name (also accepts MXNet's numeric code as a string).
    pub fn from_name(name: &str) -> Option<DType> {
        let name = name.trim().trim_matches(|c| c == '\'' || c == '"');
        let name = name.strip_prefix("np.").or_else(|| name.strip_prefix("numpy.")).unwrap_or(name);
        if let Ok(code) = name.parse::<i32>() {
            return DType::from_code(code);
        }
        DType::ALL.into_iter().find(|d| d.name() == name).or(match name {
            "float" => Some(DType::F64),
            "int" => Some(DType::I64),
            "bool_" => Some(DType::Bool),
            "half" => Some(DType::F16),
            "double" => Some(DType::F64),
            _ => None,
        })
    }

    /// Whether the type is a floating-point type.
    pub const fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64 | DType::F16 | DType::BF16)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for d in DType::ALL {
            assert_eq!(DType::from_code(d.code()), Some(d));
            assert_eq!(DType::from_name(d.name()), Some(d));
        }
        assert_eq!(DType::from_code(8), None);
        assert_eq!(DType::from_name("float32"), Some(DType::F32));
        assert_eq!(DType::F16.size(), 2);
        assert_eq!(DType::I64.to_string(), "int64");
    }
}

/// Rust element types that can view array memory of a given [`DType`]. `bool` arrays are
/// viewed as `u8` (0 or 1), as MXNet stores them.
pub trait NativeType: mixnet_kernels::Element {
    /// The dtype of arrays built from values of this type.
    const DTYPE: DType;
    /// Whether memory of dtype `d` can be viewed as `Self`.
    fn views(d: DType) -> bool {
        d == Self::DTYPE
    }
}

macro_rules! native {
    ($($t:ty => $d:ident),*) => {$( impl NativeType for $t { const DTYPE: DType = DType::$d; } )*};
}
native!(f32 => F32, f64 => F64, half::f16 => F16, half::bf16 => BF16, i8 => I8, i32 => I32, i64 => I64);

impl NativeType for u8 {
    const DTYPE: DType = DType::U8;
    fn views(d: DType) -> bool {
        matches!(d, DType::U8 | DType::Bool)
    }
}

/// Run `$body` with `$T` bound to the Rust type of `$dtype` (bool as `u8`).
#[macro_export]
macro_rules! with_dtype {
    ($dtype:expr, $T:ident => $body:expr) => {{
        use $crate::DType as __D;
        match $dtype {
            __D::F32 => {
                type $T = f32;
                $body
            }
            __D::F64 => {
                type $T = f64;
                $body
            }
            __D::F16 => {
                type $T = $crate::f16;
                $body
            }
            __D::BF16 => {
                type $T = $crate::bf16;
                $body
            }
            __D::U8 | __D::Bool => {
                type $T = u8;
                $body
            }
            __D::I8 => {
                type $T = i8;
                $body
            }
            __D::I32 => {
                type $T = i32;
                $body
            }
            __D::I64 => {
                type $T = i64;
                $body
            }
        }
    }};
}

/// Like [`with_dtype!`] for floating-point dtypes only; other dtypes make the enclosing
/// function return an operator error naming `$op`.
#[macro_export]
macro_rules! with_float_dtype {
    ($dtype:expr, $op:expr, $T:ident => $body:expr) => {{
        use $crate::DType as __D;
        match $dtype {
            __D::F32 => {
                type $T = f32;
                $body
            }
            __D::F64 => {
                type $T = f64;
                $body
            }
            __D::F16 => {
                type $T = $crate::f16;
                $body
            }
            __D::BF16 => {
                type $T = $crate::bf16;
                $body
            }
            other => {
                return Err($crate::Error::op(
                    $op,
                    format!("dtype {other} is not supported (floating-point only)"),
                ))
            }
        }
    }};
}
