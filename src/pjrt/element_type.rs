//! Element types as PJRT numbers them (`PJRT_Buffer_Type`) and array shapes
//! (element type + dims) used to check execute arguments.
//!
//! `PJRT_Buffer_Type` and `xla.PrimitiveType` agree up to F64 and differ from
//! BF16 on (BF16 is 13 here, 16 in XLA), so the conversions both ways are
//! explicit matches, never casts.

use crate::proto::PrimitiveType;

use super::error::{Error, Result};

/// A `PJRT_Buffer_Type` simclr can move between host and device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ElementType {
    /// `pred`, one byte per element (0 or 1).
    Pred,
    /// `s8`.
    S8,
    /// `s16`.
    S16,
    /// `s32`.
    S32,
    /// `s64`.
    S64,
    /// `u8`.
    U8,
    /// `u16`.
    U16,
    /// `u32`.
    U32,
    /// `u64`.
    U64,
    /// `f16` (IEEE half, raw bits on the host).
    F16,
    /// `f32`.
    F32,
    /// `f64`.
    F64,
    /// `bf16` (raw u16 bits on the host).
    Bf16,
    /// `c64` (interleaved f32 re, im).
    C64,
    /// `c128` (interleaved f64 re, im).
    C128,
}

impl ElementType {
    /// The `PJRT_Buffer_Type` value.
    pub fn to_pjrt(self) -> i32 {
        match self {
            Self::Pred => 1,
            Self::S8 => 2,
            Self::S16 => 3,
            Self::S32 => 4,
            Self::S64 => 5,
            Self::U8 => 6,
            Self::U16 => 7,
            Self::U32 => 8,
            Self::U64 => 9,
            Self::F16 => 10,
            Self::F32 => 11,
            Self::F64 => 12,
            Self::Bf16 => 13,
            Self::C64 => 14,
            Self::C128 => 15,
        }
    }

    /// From a `PJRT_Buffer_Type` value; `None` for types simclr does not
    /// handle (INVALID, fp8 variants, s4 ...).
    pub fn from_pjrt(value: i32) -> Option<Self> {
        Some(match value {
            1 => Self::Pred,
            2 => Self::S8,
            3 => Self::S16,
            4 => Self::S32,
            5 => Self::S64,
            6 => Self::U8,
            7 => Self::U16,
            8 => Self::U32,
            9 => Self::U64,
            10 => Self::F16,
            11 => Self::F32,
            12 => Self::F64,
            13 => Self::Bf16,
            14 => Self::C64,
            15 => Self::C128,
            _ => return None,
        })
    }

    /// The XLA `PrimitiveType`.
    pub fn to_primitive(self) -> PrimitiveType {
        match self {
            Self::Pred => PrimitiveType::Pred,
            Self::S8 => PrimitiveType::S8,
            Self::S16 => PrimitiveType::S16,
            Self::S32 => PrimitiveType::S32,
            Self::S64 => PrimitiveType::S64,
            Self::U8 => PrimitiveType::U8,
            Self::U16 => PrimitiveType::U16,
            Self::U32 => PrimitiveType::U32,
            Self::U64 => PrimitiveType::U64,
            Self::F16 => PrimitiveType::F16,
            Self::F32 => PrimitiveType::F32,
            Self::F64 => PrimitiveType::F64,
            Self::Bf16 => PrimitiveType::Bf16,
            Self::C64 => PrimitiveType::C64,
            Self::C128 => PrimitiveType::C128,
        }
    }

    /// From an XLA `PrimitiveType`; `None` for TUPLE, TOKEN and the like.
    pub fn from_primitive(ty: PrimitiveType) -> Option<Self> {
        Some(match ty {
            PrimitiveType::Pred => Self::Pred,
            PrimitiveType::S8 => Self::S8,
            PrimitiveType::S16 => Self::S16,
            PrimitiveType::S32 => Self::S32,
            PrimitiveType::S64 => Self::S64,
            PrimitiveType::U8 => Self::U8,
            PrimitiveType::U16 => Self::U16,
            PrimitiveType::U32 => Self::U32,
            PrimitiveType::U64 => Self::U64,
            PrimitiveType::F16 => Self::F16,
            PrimitiveType::F32 => Self::F32,
            PrimitiveType::F64 => Self::F64,
            PrimitiveType::Bf16 => Self::Bf16,
            PrimitiveType::C64 => Self::C64,
            PrimitiveType::C128 => Self::C128,
            _ => return None,
        })
    }

    /// Bytes per element in a dense host array.
    pub fn byte_size(self) -> usize {
        match self {
            Self::Pred | Self::S8 | Self::U8 => 1,
            Self::S16 | Self::U16 | Self::F16 | Self::Bf16 => 2,
            Self::S32 | Self::U32 | Self::F32 => 4,
            Self::S64 | Self::U64 | Self::F64 | Self::C64 => 8,
            Self::C128 => 16,
        }
    }

    /// HLO spelling: `f32`, `bf16`, `pred` ...
    pub fn name(self) -> &'static str {
        match self {
            Self::Pred => "pred",
            Self::S8 => "s8",
            Self::S16 => "s16",
            Self::S32 => "s32",
            Self::S64 => "s64",
            Self::U8 => "u8",
            Self::U16 => "u16",
            Self::U32 => "u32",
            Self::U64 => "u64",
            Self::F16 => "f16",
            Self::F32 => "f32",
            Self::F64 => "f64",
            Self::Bf16 => "bf16",
            Self::C64 => "c64",
            Self::C128 => "c128",
        }
    }
}

impl std::fmt::Display for ElementType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A dense array shape: element type and dimensions, printed as HLO does
/// (`f32[2,3]`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct ArrayShape {
    /// Element type.
    pub element_type: ElementType,
    /// Dimensions, major to minor.
    pub dims: Vec<i64>,
}

impl ArrayShape {
    /// A shape.
    pub fn new(element_type: ElementType, dims: impl Into<Vec<i64>>) -> Self {
        Self {
            element_type,
            dims: dims.into(),
        }
    }

    /// Number of elements (1 for a scalar); `None` on a negative dim or overflow.
    pub fn element_count(&self) -> Option<usize> {
        self.dims
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(usize::try_from(d).ok()?))
    }

    /// Bytes of the dense row-major host array; `None` on a negative dim or overflow.
    pub fn byte_size(&self) -> Option<usize> {
        self.element_count()?
            .checked_mul(self.element_type.byte_size())
    }

    /// The shape of an XLA array `ShapeProto` (tuples and tokens are errors).
    pub fn from_proto(shape: &crate::proto::ShapeProto) -> Result<Self> {
        let ty = PrimitiveType::try_from(shape.element_type)
            .ok()
            .and_then(ElementType::from_primitive);
        let Some(element_type) = ty else {
            let name = PrimitiveType::try_from(shape.element_type)
                .map(|t| t.as_str_name().to_string())
                .unwrap_or_else(|_| format!("element type {}", shape.element_type));
            return Err(Error::InvalidArgument(format!(
                "{name} is not an array element type simclr supports"
            )));
        };
        Ok(Self {
            element_type,
            dims: shape.dimensions.clone(),
        })
    }
}

impl std::fmt::Display for ArrayShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dims: Vec<String> = self.dims.iter().map(|d| d.to_string()).collect();
        write!(f, "{}[{}]", self.element_type, dims.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [ElementType; 15] = [
        ElementType::Pred,
        ElementType::S8,
        ElementType::S16,
        ElementType::S32,
        ElementType::S64,
        ElementType::U8,
        ElementType::U16,
        ElementType::U32,
        ElementType::U64,
        ElementType::F16,
        ElementType::F32,
        ElementType::F64,
        ElementType::Bf16,
        ElementType::C64,
        ElementType::C128,
    ];

    #[test]
    fn pjrt_and_xla_numbering_round_trip_and_differ_from_bf16_on() {
        for t in ALL {
            assert_eq!(ElementType::from_pjrt(t.to_pjrt()), Some(t));
            assert_eq!(ElementType::from_primitive(t.to_primitive()), Some(t));
        }
        assert_eq!(ElementType::Bf16.to_pjrt(), 13);
        assert_eq!(ElementType::Bf16.to_primitive() as i32, 16);
        assert_eq!(ElementType::C64.to_pjrt(), 14);
        assert_eq!(ElementType::C64.to_primitive() as i32, 15);
        assert_eq!(ElementType::from_pjrt(0), None);
        assert_eq!(ElementType::from_primitive(PrimitiveType::Tuple), None);
    }

    #[test]
    fn shape_prints_like_hlo() {
        assert_eq!(
            ArrayShape::new(ElementType::F32, vec![2, 3]).to_string(),
            "f32[2,3]"
        );
        assert_eq!(
            ArrayShape::new(ElementType::Pred, vec![]).to_string(),
            "pred[]"
        );
        assert_eq!(
            ArrayShape::new(ElementType::F32, vec![2, 3]).byte_size(),
            Some(24)
        );
        assert_eq!(
            ArrayShape::new(ElementType::F32, vec![-1]).byte_size(),
            None
        );
    }
}
