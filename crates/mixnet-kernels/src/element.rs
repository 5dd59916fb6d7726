//! Element types the kernels are generic over. Arithmetic on half types goes through f32,
//! as MXNet does on CPU.

use half::{bf16, f16};

/// A plain-data element stored in array memory.
pub trait Element: bytemuck::Pod + PartialOrd + Send + Sync + std::fmt::Debug + 'static {
    const ZERO: Self;
    const ONE: Self;
    /// Whether values are floating point (NaN-aware comparisons, true division).
    const IS_FLOAT: bool;
    fn to_f64(self) -> f64;
    /// Conversion as C/MXNet casts do: floats to ints truncate toward zero, saturating.
    fn from_f64(v: f64) -> Self;
    fn to_f32(self) -> f32 {
        self.to_f64() as f32
    }
    fn from_f32(v: f32) -> Self {
        Self::from_f64(v as f64)
    }
    /// Arithmetic as MXNet's kernels do it: integers wrap, integer division by zero gives 0
    /// (C++ would trap), half types compute in f32.
    fn add(self, o: Self) -> Self;
    fn sub(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    fn div(self, o: Self) -> Self;
    /// NaN test that is always false for integers.
    fn is_nan(self) -> bool {
        Self::IS_FLOAT && self.to_f64().is_nan()
    }
}

macro_rules! int_element {
    ($($t:ty),*) => {$(
        impl Element for $t {
            const ZERO: Self = 0;
            const ONE: Self = 1;
            const IS_FLOAT: bool = false;
            #[inline(always)]
            fn to_f64(self) -> f64 { self as f64 }
            #[inline(always)]
            fn from_f64(v: f64) -> Self { v as $t }
            #[inline(always)]
            fn add(self, o: Self) -> Self { self.wrapping_add(o) }
            #[inline(always)]
            fn sub(self, o: Self) -> Self { self.wrapping_sub(o) }
            #[inline(always)]
            fn mul(self, o: Self) -> Self { self.wrapping_mul(o) }
            #[inline(always)]
            fn div(self, o: Self) -> Self { if o == 0 { 0 } else { self.wrapping_div(o) } }
        }
    )*};
}
int_element!(u8, i8, i32, i64);

impl Element for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const IS_FLOAT: bool = true;
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        v
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        self + o
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        self - o
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        self * o
    }
    #[inline(always)]
    fn div(self, o: Self) -> Self {
        self / o
    }
}

impl Element for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const IS_FLOAT: bool = true;
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        self + o
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        self - o
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        self * o
    }
    #[inline(always)]
    fn div(self, o: Self) -> Self {
        self / o
    }
}

macro_rules! half_element {
    ($($t:ty),*) => {$(
        impl Element for $t {
            const ZERO: Self = <$t>::ZERO;
            const ONE: Self = <$t>::ONE;
            const IS_FLOAT: bool = true;
            #[inline(always)]
            fn to_f64(self) -> f64 { self.to_f64() }
            #[inline(always)]
            fn from_f64(v: f64) -> Self { <$t>::from_f64(v) }
            #[inline(always)]
            fn to_f32(self) -> f32 { self.to_f32() }
            #[inline(always)]
            fn from_f32(v: f32) -> Self { <$t>::from_f32(v) }
            #[inline(always)]
            fn add(self, o: Self) -> Self { <$t>::from_f32(self.to_f32() + o.to_f32()) }
            #[inline(always)]
            fn sub(self, o: Self) -> Self { <$t>::from_f32(self.to_f32() - o.to_f32()) }
            #[inline(always)]
            fn mul(self, o: Self) -> Self { <$t>::from_f32(self.to_f32() * o.to_f32()) }
            #[inline(always)]
            fn div(self, o: Self) -> Self { <$t>::from_f32(self.to_f32() / o.to_f32()) }
        }
    )*};
}
half_element!(f16, bf16);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_truncate_like_c() {
        assert_eq!(i32::from_f64(-2.7), -2);
        assert_eq!(u8::from_f64(300.0), 255);
        assert_eq!(f16::from_f64(1.5).to_f64(), 1.5);
        assert!(Element::is_nan(f32::NAN) && !Element::is_nan(1.0f32));
        assert!(!Element::is_nan(i64::MAX));
    }
}
