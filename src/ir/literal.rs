//! Constant values (`constant` instructions) and their proto encoding.

use super::types::{ElementType, Shape};
use crate::proto;

/// The elements of a literal, row-major, stored in their own Rust type.
/// `bf16` and `f16` are kept as raw 16-bit patterns.
#[derive(Clone, Debug, PartialEq)]
pub enum LiteralData {
    /// `pred` elements.
    Pred(Vec<bool>),
    /// `u8` elements.
    U8(Vec<u8>),
    /// `s32` elements.
    S32(Vec<i32>),
    /// `s64` elements.
    S64(Vec<i64>),
    /// `u32` elements.
    U32(Vec<u32>),
    /// `u64` elements.
    U64(Vec<u64>),
    /// `bf16` bit patterns.
    Bf16(Vec<u16>),
    /// `f16` bit patterns.
    F16(Vec<u16>),
    /// `f32` elements.
    F32(Vec<f32>),
    /// `f64` elements.
    F64(Vec<f64>),
}

impl LiteralData {
    /// The element type of the payload.
    pub fn element_type(&self) -> ElementType {
        match self {
            LiteralData::Pred(_) => ElementType::Pred,
            LiteralData::U8(_) => ElementType::U8,
            LiteralData::S32(_) => ElementType::S32,
            LiteralData::S64(_) => ElementType::S64,
            LiteralData::U32(_) => ElementType::U32,
            LiteralData::U64(_) => ElementType::U64,
            LiteralData::Bf16(_) => ElementType::Bf16,
            LiteralData::F16(_) => ElementType::F16,
            LiteralData::F32(_) => ElementType::F32,
            LiteralData::F64(_) => ElementType::F64,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            LiteralData::Pred(v) => v.len(),
            LiteralData::U8(v) => v.len(),
            LiteralData::S32(v) => v.len(),
            LiteralData::S64(v) => v.len(),
            LiteralData::U32(v) => v.len(),
            LiteralData::U64(v) => v.len(),
            LiteralData::Bf16(v) | LiteralData::F16(v) => v.len(),
            LiteralData::F32(v) => v.len(),
            LiteralData::F64(v) => v.len(),
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` as f64 (bf16/f16 decoded; integers converted).
    pub fn get_f64(&self, i: usize) -> f64 {
        match self {
            LiteralData::Pred(v) => f64::from(u8::from(v[i])),
            LiteralData::U8(v) => f64::from(v[i]),
            LiteralData::S32(v) => f64::from(v[i]),
            LiteralData::S64(v) => v[i] as f64,
            LiteralData::U32(v) => f64::from(v[i]),
            LiteralData::U64(v) => v[i] as f64,
            LiteralData::Bf16(v) => f64::from(bf16_to_f32(v[i])),
            LiteralData::F16(v) => f64::from(f16_to_f32(v[i])),
            LiteralData::F32(v) => f64::from(v[i]),
            LiteralData::F64(v) => v[i],
        }
    }
}

/// A constant array: shape plus row-major elements.
#[derive(Clone, Debug, PartialEq)]
pub struct Literal {
    /// Dimensions (the element type is that of `data`).
    pub dims: Vec<i64>,
    /// Elements, row-major.
    pub data: LiteralData,
}

impl Literal {
    /// A literal; `None` when the element count does not match the dims.
    pub fn new(dims: impl Into<Vec<i64>>, data: LiteralData) -> Option<Literal> {
        let dims = dims.into();
        let n: i64 = dims.iter().product();
        if dims.iter().any(|&d| d < 0) || n as usize != data.len() {
            return None;
        }
        Some(Literal { dims, data })
    }

    /// A scalar of type `ty` holding `value` (rounded/truncated as a cast would).
    pub fn scalar(ty: ElementType, value: f64) -> Literal {
        Literal {
            dims: vec![],
            data: LiteralData::splat(ty, value, 1),
        }
    }

    /// The literal's shape.
    pub fn shape(&self) -> Shape {
        Shape::new(self.data.element_type(), self.dims.clone())
    }

    /// The `LiteralProto` (shape with layout, payload in its typed field).
    pub fn to_proto(&self) -> proto::LiteralProto {
        let mut p = proto::LiteralProto {
            shape: Some(self.shape().to_proto()),
            ..Default::default()
        };
        match &self.data {
            LiteralData::Pred(v) => p.preds = v.clone(),
            LiteralData::U8(v) => p.u8s = v.clone(),
            LiteralData::S32(v) => p.s32s = v.clone(),
            LiteralData::S64(v) => p.s64s = v.clone(),
            LiteralData::U32(v) => p.u32s = v.clone(),
            LiteralData::U64(v) => p.u64s = v.clone(),
            LiteralData::Bf16(v) => p.bf16s = v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            LiteralData::F16(v) => p.f16s = v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            LiteralData::F32(v) => p.f32s = v.clone(),
            LiteralData::F64(v) => p.f64s = v.clone(),
        }
        p
    }

    /// Decodes a `LiteralProto` of an array shape, if its type is supported.
    pub fn from_proto(p: &proto::LiteralProto) -> Option<Literal> {
        let shape = p.shape.as_ref()?;
        let ty =
            ElementType::from_primitive(proto::PrimitiveType::try_from(shape.element_type).ok()?)?;
        let halves = |b: &[u8]| -> Vec<u16> {
            b.chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect()
        };
        let data = match ty {
            ElementType::Pred => LiteralData::Pred(p.preds.clone()),
            ElementType::U8 => LiteralData::U8(p.u8s.clone()),
            ElementType::S32 => LiteralData::S32(p.s32s.clone()),
            ElementType::S64 => LiteralData::S64(p.s64s.clone()),
            ElementType::U32 => LiteralData::U32(p.u32s.clone()),
            ElementType::U64 => LiteralData::U64(p.u64s.clone()),
            ElementType::Bf16 => LiteralData::Bf16(halves(&p.bf16s)),
            ElementType::F16 => LiteralData::F16(halves(&p.f16s)),
            ElementType::F32 => LiteralData::F32(p.f32s.clone()),
            ElementType::F64 => LiteralData::F64(p.f64s.clone()),
        };
        Literal::new(shape.dimensions.clone(), data)
    }
}

impl LiteralData {
    /// `n` copies of `value` converted to `ty` (floats round, integers
    /// truncate toward zero and saturate, pred is `value != 0`).
    pub fn splat(ty: ElementType, value: f64, n: usize) -> LiteralData {
        match ty {
            ElementType::Pred => LiteralData::Pred(vec![value != 0.0; n]),
            ElementType::U8 => LiteralData::U8(vec![value as u8; n]),
            ElementType::S32 => LiteralData::S32(vec![value as i32; n]),
            ElementType::S64 => LiteralData::S64(vec![value as i64; n]),
            ElementType::U32 => LiteralData::U32(vec![value as u32; n]),
            ElementType::U64 => LiteralData::U64(vec![value as u64; n]),
            ElementType::Bf16 => LiteralData::Bf16(vec![f32_to_bf16(value as f32); n]),
            ElementType::F16 => LiteralData::F16(vec![f32_to_f16(value as f32); n]),
            ElementType::F32 => LiteralData::F32(vec![value as f32; n]),
            ElementType::F64 => LiteralData::F64(vec![value; n]),
        }
    }
}

/// bf16 bits → f32 (exact).
pub fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

/// f32 → bf16 bits, rounding to nearest even (NaN stays NaN).
pub fn f32_to_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) as u16) | 0x0040;
    }
    let lsb = (b >> 16) & 1;
    ((b.wrapping_add(0x7fff + lsb)) >> 16) as u16
}

/// IEEE half bits → f32 (exact).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    let bits = if exp == 0 {
        if man == 0 {
            sign
        } else {
            // Subnormal: value = man * 2^-24.
            let v = man as f32 * f32::powi(2.0, -24);
            return if sign != 0 { -v } else { v };
        }
    } else if exp == 0x1f {
        sign | 0x7f80_0000 | (man << 13)
    } else {
        sign | ((exp + 127 - 15) << 23) | (man << 13)
    };
    f32::from_bits(bits)
}

/// f32 → IEEE half bits, rounding to nearest even, overflowing to infinity.
pub fn f32_to_f16(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    if x.is_nan() {
        return sign | 0x7e00;
    }
    let a = x.abs();
    if a >= 65520.0 {
        return sign | 0x7c00;
    }
    if a < f32::powi(2.0, -14) {
        // Subnormal or zero: round a / 2^-24 to nearest even.
        let q = a * f32::powi(2.0, 24);
        let r = q.round();
        let r = if (q - q.floor() - 0.5).abs() < f32::EPSILON && (r as u32) % 2 == 1 {
            r - 1.0
        } else {
            r
        };
        return sign | (r as u16);
    }
    let exp = ((b >> 23) & 0xff) as i32 - 127 + 15;
    let man = b & 0x7f_ffff;
    let mut h = ((exp as u32) << 10) | (man >> 13);
    let rest = man & 0x1fff;
    if rest > 0x1000 || (rest == 0x1000 && (h & 1) == 1) {
        h += 1;
    }
    sign | (h as u16)
}
