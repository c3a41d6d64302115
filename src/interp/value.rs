//! Run-time values of the evaluator: typed `ndarray` arrays and tuples, and
//! their conversions from and to [`Literal`]s and plain vectors.
//!
//! `bf16` and `f16` arrays are stored as `f32` values that are exactly
//! representable in the narrow type: every op computes in `f32` and rounds
//! its result back to the narrow type (nearest even), the way XLA's CPU
//! backend upcasts those types for elementwise work.

use super::Error;
use crate::ir::{
    bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_f16, ElementType, Literal, LiteralData, Shape,
    Type,
};
use ndarray::{ArrayD, IxDyn};

/// A run-time value: an array of one element type, or a flat tuple.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `pred` array.
    Pred(ArrayD<bool>),
    /// `u8` array.
    U8(ArrayD<u8>),
    /// `s32` array.
    S32(ArrayD<i32>),
    /// `s64` array.
    S64(ArrayD<i64>),
    /// `u32` array.
    U32(ArrayD<u32>),
    /// `u64` array.
    U64(ArrayD<u64>),
    /// `bf16` array, stored as `f32` values exactly representable in bf16.
    Bf16(ArrayD<f32>),
    /// `f16` array, stored as `f32` values exactly representable in f16.
    F16(ArrayD<f32>),
    /// `f32` array.
    F32(ArrayD<f32>),
    /// `f64` array.
    F64(ArrayD<f64>),
    /// A tuple of values (arrays in practice).
    Tuple(Vec<Value>),
}

/// Applies `$body` to the array inside `$v`, binding it to `$a`, and wraps the
/// result in the same variant. Tuples make the enclosing function return an
/// `Error::Invalid` with `$what`.
macro_rules! map_same {
    ($v:expr, $what:expr, |$a:ident| $body:expr) => {
        match $v {
            Value::Pred($a) => Value::Pred($body),
            Value::U8($a) => Value::U8($body),
            Value::S32($a) => Value::S32($body),
            Value::S64($a) => Value::S64($body),
            Value::U32($a) => Value::U32($body),
            Value::U64($a) => Value::U64($body),
            Value::Bf16($a) => Value::Bf16($body),
            Value::F16($a) => Value::F16($body),
            Value::F32($a) => Value::F32($body),
            Value::F64($a) => Value::F64($body),
            Value::Tuple(_) => {
                return Err($crate::interp::Error::Invalid(format!(
                    "{}: expected an array, got a tuple",
                    $what
                )))
            }
        }
    };
}
pub(crate) use map_same;

/// Like [`map_same`] for two values that must have the same element type.
macro_rules! zip_same {
    ($x:expr, $y:expr, $what:expr, |$a:ident, $b:ident| $body:expr) => {
        match ($x, $y) {
            (Value::Pred($a), Value::Pred($b)) => Value::Pred($body),
            (Value::U8($a), Value::U8($b)) => Value::U8($body),
            (Value::S32($a), Value::S32($b)) => Value::S32($body),
            (Value::S64($a), Value::S64($b)) => Value::S64($body),
            (Value::U32($a), Value::U32($b)) => Value::U32($body),
            (Value::U64($a), Value::U64($b)) => Value::U64($body),
            (Value::Bf16($a), Value::Bf16($b)) => Value::Bf16($body),
            (Value::F16($a), Value::F16($b)) => Value::F16($body),
            (Value::F32($a), Value::F32($b)) => Value::F32($body),
            (Value::F64($a), Value::F64($b)) => Value::F64($body),
            (x, y) => {
                return Err($crate::interp::Error::Invalid(format!(
                    "{}: operands {} and {} differ in type",
                    $what,
                    x.type_string(),
                    y.type_string()
                )))
            }
        }
    };
}
pub(crate) use zip_same;

fn dims_of(shape: &[usize]) -> Vec<i64> {
    shape.iter().map(|&d| d as i64).collect()
}

fn to_ix(dims: &[i64]) -> Result<IxDyn, Error> {
    let mut out = Vec::with_capacity(dims.len());
    for &d in dims {
        out.push(
            usize::try_from(d)
                .map_err(|_| Error::Conversion(format!("negative dimension {d} in {dims:?}")))?,
        );
    }
    Ok(IxDyn(&out))
}

fn build<T>(dims: &[i64], data: Vec<T>) -> Result<ArrayD<T>, Error> {
    let n = data.len();
    ArrayD::from_shape_vec(to_ix(dims)?, data)
        .map_err(|_| Error::Conversion(format!("{n} elements do not fill dimensions {dims:?}")))
}

/// Rounds an `f32` to the nearest bf16 value (kept as `f32`).
pub fn round_bf16(x: f32) -> f32 {
    bf16_to_f32(f32_to_bf16(x))
}

/// Rounds an `f32` to the nearest f16 value (kept as `f32`).
pub fn round_f16(x: f32) -> f32 {
    f16_to_f32(f32_to_f16(x))
}

impl Value {
    /// An `f32` array of `dims` from row-major `data`.
    pub fn from_f32(dims: &[i64], data: Vec<f32>) -> Result<Value, Error> {
        Ok(Value::F32(build(dims, data)?))
    }

    /// An `f64` array of `dims` from row-major `data`.
    pub fn from_f64(dims: &[i64], data: Vec<f64>) -> Result<Value, Error> {
        Ok(Value::F64(build(dims, data)?))
    }

    /// An `s32` array of `dims` from row-major `data`.
    pub fn from_i32(dims: &[i64], data: Vec<i32>) -> Result<Value, Error> {
        Ok(Value::S32(build(dims, data)?))
    }

    /// A `u32` array of `dims` from row-major `data`.
    pub fn from_u32(dims: &[i64], data: Vec<u32>) -> Result<Value, Error> {
        Ok(Value::U32(build(dims, data)?))
    }

    /// A `u64` array of `dims` from row-major `data`.
    pub fn from_u64(dims: &[i64], data: Vec<u64>) -> Result<Value, Error> {
        Ok(Value::U64(build(dims, data)?))
    }

    /// A `pred` array of `dims` from row-major `data`.
    pub fn from_bool(dims: &[i64], data: Vec<bool>) -> Result<Value, Error> {
        Ok(Value::Pred(build(dims, data)?))
    }

    /// An `f32` scalar.
    pub fn scalar_f32(x: f32) -> Value {
        Value::F32(ArrayD::from_elem(IxDyn(&[]), x))
    }

    /// An array of `shape` whose elements are all `value` converted to the
    /// element type (floats round, integers truncate and saturate, pred is
    /// `value != 0`).
    pub fn splat(shape: &Shape, value: f64) -> Result<Value, Error> {
        let n = shape.numel();
        let lit = Literal::new(shape.dims.clone(), LiteralData::splat(shape.ty, value, n))
            .ok_or_else(|| Error::Conversion(format!("invalid shape {shape}")))?;
        Value::from_literal(&lit)
    }

    /// The value of a literal (bf16/f16 decoded to `f32`).
    pub fn from_literal(lit: &Literal) -> Result<Value, Error> {
        let d = &lit.dims;
        Ok(match &lit.data {
            LiteralData::Pred(v) => Value::Pred(build(d, v.clone())?),
            LiteralData::U8(v) => Value::U8(build(d, v.clone())?),
            LiteralData::S32(v) => Value::S32(build(d, v.clone())?),
            LiteralData::S64(v) => Value::S64(build(d, v.clone())?),
            LiteralData::U32(v) => Value::U32(build(d, v.clone())?),
            LiteralData::U64(v) => Value::U64(build(d, v.clone())?),
            LiteralData::Bf16(v) => {
                Value::Bf16(build(d, v.iter().map(|&b| bf16_to_f32(b)).collect())?)
            }
            LiteralData::F16(v) => {
                Value::F16(build(d, v.iter().map(|&b| f16_to_f32(b)).collect())?)
            }
            LiteralData::F32(v) => Value::F32(build(d, v.clone())?),
            LiteralData::F64(v) => Value::F64(build(d, v.clone())?),
        })
    }

    /// The literal of an array value (row-major; bf16/f16 re-encoded).
    pub fn to_literal(&self) -> Result<Literal, Error> {
        fn flat<T: Clone>(a: &ArrayD<T>) -> Vec<T> {
            a.iter().cloned().collect()
        }
        let dims = self.dims();
        let data = match self {
            Value::Pred(a) => LiteralData::Pred(flat(a)),
            Value::U8(a) => LiteralData::U8(flat(a)),
            Value::S32(a) => LiteralData::S32(flat(a)),
            Value::S64(a) => LiteralData::S64(flat(a)),
            Value::U32(a) => LiteralData::U32(flat(a)),
            Value::U64(a) => LiteralData::U64(flat(a)),
            Value::Bf16(a) => LiteralData::Bf16(a.iter().map(|&x| f32_to_bf16(x)).collect()),
            Value::F16(a) => LiteralData::F16(a.iter().map(|&x| f32_to_f16(x)).collect()),
            Value::F32(a) => LiteralData::F32(flat(a)),
            Value::F64(a) => LiteralData::F64(flat(a)),
            Value::Tuple(_) => {
                return Err(Error::Conversion(
                    "a tuple has no literal; convert its elements".into(),
                ))
            }
        };
        Literal::new(dims, data)
            .ok_or_else(|| Error::Conversion("element count does not match the dimensions".into()))
    }

    /// The element type of an array (`None` for a tuple).
    pub fn element_type(&self) -> Option<ElementType> {
        Some(match self {
            Value::Pred(_) => ElementType::Pred,
            Value::U8(_) => ElementType::U8,
            Value::S32(_) => ElementType::S32,
            Value::S64(_) => ElementType::S64,
            Value::U32(_) => ElementType::U32,
            Value::U64(_) => ElementType::U64,
            Value::Bf16(_) => ElementType::Bf16,
            Value::F16(_) => ElementType::F16,
            Value::F32(_) => ElementType::F32,
            Value::F64(_) => ElementType::F64,
            Value::Tuple(_) => return None,
        })
    }

    /// The dimensions of an array (empty for a tuple).
    pub fn dims(&self) -> Vec<i64> {
        match self {
            Value::Pred(a) => dims_of(a.shape()),
            Value::U8(a) => dims_of(a.shape()),
            Value::S32(a) => dims_of(a.shape()),
            Value::S64(a) => dims_of(a.shape()),
            Value::U32(a) => dims_of(a.shape()),
            Value::U64(a) => dims_of(a.shape()),
            Value::Bf16(a) | Value::F16(a) | Value::F32(a) => dims_of(a.shape()),
            Value::F64(a) => dims_of(a.shape()),
            Value::Tuple(_) => vec![],
        }
    }

    /// The array shape (`None` for a tuple).
    pub fn shape(&self) -> Option<Shape> {
        self.element_type().map(|t| Shape::new(t, self.dims()))
    }

    /// The value's type (array or tuple of arrays).
    pub fn ty(&self) -> Type {
        match self {
            Value::Tuple(v) => Type::Tuple(
                v.iter()
                    .map(|e| e.shape().unwrap_or_else(|| Shape::scalar(ElementType::F32)))
                    .collect(),
            ),
            _ => Type::Array(Shape::new(
                self.element_type().unwrap_or(ElementType::F32),
                self.dims(),
            )),
        }
    }

    /// The type as XLA text, e.g. `f32[2,3]` or `(u64[2], u32[4])`.
    pub fn type_string(&self) -> String {
        self.ty().to_string()
    }

    /// Number of elements of an array (0 for a tuple).
    pub fn len(&self) -> usize {
        match self {
            Value::Tuple(_) => 0,
            _ => self.dims().iter().map(|&d| d as usize).product(),
        }
    }

    /// True when the array has no elements (or the value is a tuple).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements of a floating-point array as `f32`, row-major.
    pub fn to_f32_vec(&self) -> Result<Vec<f32>, Error> {
        match self {
            Value::Bf16(a) | Value::F16(a) | Value::F32(a) => Ok(a.iter().copied().collect()),
            Value::F64(a) => Ok(a.iter().map(|&x| x as f32).collect()),
            v => Err(Error::Conversion(format!(
                "{} is not a floating-point array",
                v.type_string()
            ))),
        }
    }

    /// The elements of any numeric or pred array as `f64`, row-major.
    pub fn to_f64_vec(&self) -> Result<Vec<f64>, Error> {
        Ok(match self {
            Value::Pred(a) => a.iter().map(|&x| f64::from(u8::from(x))).collect(),
            Value::U8(a) => a.iter().map(|&x| f64::from(x)).collect(),
            Value::S32(a) => a.iter().map(|&x| f64::from(x)).collect(),
            Value::S64(a) => a.iter().map(|&x| x as f64).collect(),
            Value::U32(a) => a.iter().map(|&x| f64::from(x)).collect(),
            Value::U64(a) => a.iter().map(|&x| x as f64).collect(),
            Value::Bf16(a) | Value::F16(a) | Value::F32(a) => {
                a.iter().map(|&x| f64::from(x)).collect()
            }
            Value::F64(a) => a.iter().copied().collect(),
            Value::Tuple(_) => {
                return Err(Error::Conversion("a tuple has no elements".into()));
            }
        })
    }

    /// The elements of an `s32` array, row-major.
    pub fn to_i32_vec(&self) -> Result<Vec<i32>, Error> {
        match self {
            Value::S32(a) => Ok(a.iter().copied().collect()),
            v => Err(Error::Conversion(format!(
                "{} is not an s32 array",
                v.type_string()
            ))),
        }
    }

    /// The elements of a `u32` array, row-major.
    pub fn to_u32_vec(&self) -> Result<Vec<u32>, Error> {
        match self {
            Value::U32(a) => Ok(a.iter().copied().collect()),
            v => Err(Error::Conversion(format!(
                "{} is not a u32 array",
                v.type_string()
            ))),
        }
    }

    /// The elements of a `u64` array, row-major.
    pub fn to_u64_vec(&self) -> Result<Vec<u64>, Error> {
        match self {
            Value::U64(a) => Ok(a.iter().copied().collect()),
            v => Err(Error::Conversion(format!(
                "{} is not a u64 array",
                v.type_string()
            ))),
        }
    }

    /// The elements of a `pred` array, row-major.
    pub fn to_bool_vec(&self) -> Result<Vec<bool>, Error> {
        match self {
            Value::Pred(a) => Ok(a.iter().copied().collect()),
            v => Err(Error::Conversion(format!(
                "{} is not a pred array",
                v.type_string()
            ))),
        }
    }

    /// Element `index` (row-major) of an array as a scalar value.
    pub(crate) fn element(&self, index: usize) -> Result<Value, Error> {
        fn pick<T: Clone>(a: &ArrayD<T>, i: usize) -> Result<ArrayD<T>, Error> {
            let x = a
                .iter()
                .nth(i)
                .cloned()
                .ok_or_else(|| Error::Invalid(format!("element {i} out of range")))?;
            Ok(ArrayD::from_elem(IxDyn(&[]), x))
        }
        fn pick_std<T: Clone>(a: &ArrayD<T>, i: usize) -> Result<ArrayD<T>, Error> {
            match a.as_slice() {
                Some(s) => s
                    .get(i)
                    .cloned()
                    .map(|x| ArrayD::from_elem(IxDyn(&[]), x))
                    .ok_or_else(|| Error::Invalid(format!("element {i} out of range"))),
                None => pick(a, i),
            }
        }
        Ok(map_same!(self, "element", |a| pick_std(a, index)?))
    }

    /// A scalar integer of any integer type as `i64` (u64 saturates).
    pub(crate) fn index_scalar(&self) -> Result<i64, Error> {
        let first = |v: Vec<f64>| v.first().copied();
        let x = match self {
            Value::U8(a) => a.iter().next().map(|&x| i64::from(x)),
            Value::S32(a) => a.iter().next().map(|&x| i64::from(x)),
            Value::S64(a) => a.iter().next().copied(),
            Value::U32(a) => a.iter().next().map(|&x| i64::from(x)),
            Value::U64(a) => a
                .iter()
                .next()
                .map(|&x| i64::try_from(x).unwrap_or(i64::MAX)),
            v => first(v.to_f64_vec()?).map(|x| x as i64),
        };
        x.ok_or_else(|| Error::Invalid("empty index operand".into()))
    }

    /// Makes the array row-major contiguous (a no-op when it already is).
    pub(crate) fn standard(self) -> Result<Value, Error> {
        fn s<T: Clone>(a: ArrayD<T>) -> ArrayD<T> {
            if a.is_standard_layout() {
                a
            } else {
                a.as_standard_layout().into_owned()
            }
        }
        Ok(map_same!(self, "layout", |a| s(a)))
    }
}
