//! Host arrays: dense row-major bytes plus an [`ArrayShape`], with typed
//! constructors and accessors. This is what goes into and comes out of
//! device buffers. No `unsafe`: bytes are converted with `to_le_bytes` /
//! `from_le_bytes` (PJRT host buffers are native-endian; simclr targets
//! little-endian hosts).

use super::element_type::{ArrayShape, ElementType};
use super::error::{Error, Result};

/// A dense, row-major host array.
#[derive(Clone, Debug, PartialEq)]
pub struct HostArray {
    /// Element type.
    pub element_type: ElementType,
    /// Dimensions, major to minor.
    pub dims: Vec<i64>,
    /// `element_count * element_type.byte_size()` bytes, little-endian.
    pub bytes: Vec<u8>,
}

macro_rules! typed {
    ($from:ident, $to:ident, $scalar:ident, $t:ty, $et:expr, $n:literal) => {
        #[doc = concat!("An array of `", stringify!($t), "` with `dims` (row-major). Errors when the element count does not match `dims`.")]
        pub fn $from(dims: &[i64], values: &[$t]) -> Result<Self> {
            let mut bytes = Vec::with_capacity(values.len() * $n);
            for v in values {
                bytes.extend_from_slice(&v.to_le_bytes());
            }
            Self::from_bytes($et, dims, bytes)
        }

        #[doc = concat!("A scalar `", stringify!($t), "`.")]
        pub fn $scalar(value: $t) -> Self {
            Self { element_type: $et, dims: Vec::new(), bytes: value.to_le_bytes().to_vec() }
        }

        #[doc = concat!("The elements as `", stringify!($t), "`. Errors when the array holds another element type.")]
        pub fn $to(&self) -> Result<Vec<$t>> {
            self.expect_type($et)?;
            Ok(self
                .bytes
                .chunks_exact($n)
                .map(|c| {
                    let mut a = [0u8; $n];
                    a.copy_from_slice(c);
                    <$t>::from_le_bytes(a)
                })
                .collect())
        }
    };
}

impl HostArray {
    /// An array from raw little-endian bytes. Errors when `bytes.len()` is
    /// not `element_count(dims) * element_type.byte_size()` or a dim is negative.
    pub fn from_bytes(element_type: ElementType, dims: &[i64], bytes: Vec<u8>) -> Result<Self> {
        let shape = ArrayShape::new(element_type, dims.to_vec());
        let Some(expected) = shape.byte_size() else {
            return Err(Error::InvalidArgument(format!(
                "invalid host array shape {shape}"
            )));
        };
        if bytes.len() != expected {
            return Err(Error::InvalidArgument(format!(
                "host array {shape} needs {} elements ({expected} bytes), got {} bytes",
                expected / element_type.byte_size(),
                bytes.len()
            )));
        }
        Ok(Self {
            element_type,
            dims: dims.to_vec(),
            bytes,
        })
    }

    /// An array of zeros.
    pub fn zeros(element_type: ElementType, dims: &[i64]) -> Result<Self> {
        let shape = ArrayShape::new(element_type, dims.to_vec());
        let n = shape
            .byte_size()
            .ok_or_else(|| Error::InvalidArgument(format!("invalid host array shape {shape}")))?;
        Self::from_bytes(element_type, dims, vec![0; n])
    }

    typed!(from_f32, to_f32, scalar_f32, f32, ElementType::F32, 4);
    typed!(from_f64, to_f64, scalar_f64, f64, ElementType::F64, 8);
    typed!(from_s32, to_s32, scalar_s32, i32, ElementType::S32, 4);
    typed!(from_s64, to_s64, scalar_s64, i64, ElementType::S64, 8);
    typed!(from_u32, to_u32, scalar_u32, u32, ElementType::U32, 4);
    typed!(from_u64, to_u64, scalar_u64, u64, ElementType::U64, 8);
    typed!(from_u8, to_u8, scalar_u8, u8, ElementType::U8, 1);
    typed!(
        from_bf16_bits,
        to_bf16_bits,
        scalar_bf16_bits,
        u16,
        ElementType::Bf16,
        2
    );

    /// [`HostArray::from_f32`] writing into `bytes` (cleared first), so that
    /// the buffer of an array no longer needed is reused instead of a fresh
    /// allocation (megabytes for a batch of images).
    pub fn from_f32_reusing(dims: &[i64], values: &[f32], mut bytes: Vec<u8>) -> Result<Self> {
        bytes.clear();
        bytes.reserve(values.len() * 4);
        for v in values {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        Self::from_bytes(ElementType::F32, dims, bytes)
    }

    /// [`HostArray::from_u8`] reusing `bytes` like
    /// [`HostArray::from_f32_reusing`].
    pub fn from_u8_reusing(dims: &[i64], values: &[u8], mut bytes: Vec<u8>) -> Result<Self> {
        bytes.clear();
        bytes.extend_from_slice(values);
        Self::from_bytes(ElementType::U8, dims, bytes)
    }

    /// A `pred` array (one byte per element, 0 or 1).
    pub fn from_pred(dims: &[i64], values: &[bool]) -> Result<Self> {
        Self::from_bytes(
            ElementType::Pred,
            dims,
            values.iter().map(|&b| u8::from(b)).collect(),
        )
    }

    /// The elements of a `pred` array (any non-zero byte is true).
    pub fn to_pred(&self) -> Result<Vec<bool>> {
        self.expect_type(ElementType::Pred)?;
        Ok(self.bytes.iter().map(|&b| b != 0).collect())
    }

    /// A `bf16` array from f32 values, rounded to nearest even (NaN stays NaN).
    pub fn from_f32_as_bf16(dims: &[i64], values: &[f32]) -> Result<Self> {
        let bits: Vec<u16> = values.iter().map(|&v| f32_to_bf16_bits(v)).collect();
        Self::from_bf16_bits(dims, &bits)
    }

    /// The elements of a `bf16` array widened to f32 (exact).
    pub fn bf16_to_f32(&self) -> Result<Vec<f32>> {
        Ok(self
            .to_bf16_bits()?
            .into_iter()
            .map(|b| f32::from_bits(u32::from(b) << 16))
            .collect())
    }

    /// Shape of the array.
    pub fn shape(&self) -> ArrayShape {
        ArrayShape::new(self.element_type, self.dims.clone())
    }

    /// Number of elements.
    pub fn element_count(&self) -> usize {
        self.bytes.len() / self.element_type.byte_size()
    }

    fn expect_type(&self, t: ElementType) -> Result<()> {
        if self.element_type == t {
            Ok(())
        } else {
            Err(Error::InvalidArgument(format!(
                "host array is {}, not {t}",
                self.shape()
            )))
        }
    }
}

/// f32 to bf16 bits, rounding to nearest even; NaNs stay quiet NaNs.
pub fn f32_to_bf16_bits(v: f32) -> u16 {
    let bits = v.to_bits();
    if v.is_nan() {
        return ((bits >> 16) as u16) | 0x0040;
    }
    let rounding = 0x7fff + ((bits >> 16) & 1);
    (bits.wrapping_add(rounding) >> 16) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_round_trip_keeps_bits() {
        let v = [1.5f32, -0.0, f32::INFINITY, f32::from_bits(0x7fc0_1234)];
        let a = HostArray::from_f32(&[2, 2], &v).unwrap();
        let back = a.to_f32().unwrap();
        assert_eq!(
            back.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
        assert!(a.to_s32().is_err());
    }

    #[test]
    fn wrong_element_count_is_an_error() {
        let e = HostArray::from_f32(&[2, 3], &[1.0; 5])
            .unwrap_err()
            .to_string();
        assert!(e.contains("f32[2,3] needs 6 elements"), "{e}");
    }

    #[test]
    fn bf16_rounds_to_nearest_even() {
        assert_eq!(f32_to_bf16_bits(1.0), 0x3f80);
        assert_eq!(f32_to_bf16_bits(-2.5), 0xc020);
        // 1 + 2^-8 is halfway between two bf16 values: ties to even (1.0).
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x3f80_8000)), 0x3f80);
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x3f81_8000)), 0x3f82);
        assert!(f32::from_bits(u32::from(f32_to_bf16_bits(f32::NAN)) << 16).is_nan());
    }
}
