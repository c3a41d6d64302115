//! Elementwise ops: unary and binary functions per element type (with XLA's
//! integer division, remainder and shift rules), compare, select, clamp,
//! convert, bitcast-convert and iota.

use super::value::{map_same, round_bf16, round_f16, zip_same, Value};
use super::Error;
use crate::ir::{BinaryOp, ComparisonDirection, ElementType, Shape, UnaryOp};
use ndarray::{ArrayD, IxDyn, Zip};

/// Scalar arithmetic of one element type. `None` means the op does not
/// apply to the type (decided by the type alone, never by the values).
pub(crate) trait Scalar: Copy + PartialOrd + Default + std::fmt::Debug + 'static {
    /// `op(x)`.
    fn unary(op: UnaryOp, x: Self) -> Option<Self>;
    /// `op(a, b)`.
    fn binary(op: BinaryOp, a: Self, b: Self) -> Option<Self>;
}

macro_rules! float_scalar {
    ($t:ty) => {
        impl Scalar for $t {
            fn unary(op: UnaryOp, x: $t) -> Option<$t> {
                Some(match op {
                    UnaryOp::Negate => -x,
                    UnaryOp::Exp => x.exp(),
                    UnaryOp::Log => x.ln(),
                    UnaryOp::Log1p => x.ln_1p(),
                    UnaryOp::Expm1 => x.exp_m1(),
                    UnaryOp::Sqrt => x.sqrt(),
                    UnaryOp::Rsqrt => 1.0 / x.sqrt(),
                    UnaryOp::Tanh => x.tanh(),
                    UnaryOp::Logistic => 1.0 / (1.0 + (-x).exp()),
                    UnaryOp::Abs => x.abs(),
                    UnaryOp::Sign => {
                        if x > 0.0 {
                            1.0
                        } else if x < 0.0 {
                            -1.0
                        } else {
                            x
                        }
                    }
                    UnaryOp::Floor => x.floor(),
                    UnaryOp::Ceil => x.ceil(),
                    UnaryOp::RoundNearestEven => x.round_ties_even(),
                    UnaryOp::Cos => x.cos(),
                    UnaryOp::Sin => x.sin(),
                    UnaryOp::Copy => x,
                    UnaryOp::Not => return None,
                })
            }

            fn binary(op: BinaryOp, a: $t, b: $t) -> Option<$t> {
                Some(match op {
                    BinaryOp::Add => a + b,
                    BinaryOp::Subtract => a - b,
                    BinaryOp::Multiply => a * b,
                    BinaryOp::Divide => a / b,
                    BinaryOp::Maximum => {
                        if a.is_nan() || b.is_nan() {
                            <$t>::NAN
                        } else if a >= b {
                            a
                        } else {
                            b
                        }
                    }
                    BinaryOp::Minimum => {
                        if a.is_nan() || b.is_nan() {
                            <$t>::NAN
                        } else if a <= b {
                            a
                        } else {
                            b
                        }
                    }
                    BinaryOp::Power => a.powf(b),
                    BinaryOp::Remainder => a % b,
                    BinaryOp::Atan2 => a.atan2(b),
                    _ => return None,
                })
            }
        }
    };
}

float_scalar!(f32);
float_scalar!(f64);

macro_rules! int_scalar {
    ($t:ty, $signed:ty, $unsigned:ty) => {
        impl Scalar for $t {
            #[allow(unused_comparisons, clippy::cast_possible_wrap)]
            fn unary(op: UnaryOp, x: $t) -> Option<$t> {
                Some(match op {
                    UnaryOp::Negate => x.wrapping_neg(),
                    UnaryOp::Abs => {
                        if <$t>::MIN == 0 {
                            x
                        } else {
                            (x as $signed).wrapping_abs() as $t
                        }
                    }
                    UnaryOp::Sign => {
                        if x == 0 {
                            0
                        } else if x > 0 {
                            1
                        } else {
                            (0 as $t).wrapping_sub(1)
                        }
                    }
                    UnaryOp::Not => !x,
                    UnaryOp::Copy => x,
                    _ => return None,
                })
            }

            #[allow(unused_comparisons)]
            fn binary(op: BinaryOp, a: $t, b: $t) -> Option<$t> {
                const BITS: u32 = <$t>::BITS;
                let all_ones = !(0 as $t);
                let shift = (b as $unsigned) as u64;
                Some(match op {
                    BinaryOp::Add => a.wrapping_add(b),
                    BinaryOp::Subtract => a.wrapping_sub(b),
                    BinaryOp::Multiply => a.wrapping_mul(b),
                    // x / 0 = -1 (all bits set); MIN / -1 = MIN (wrapping).
                    BinaryOp::Divide => {
                        if b == 0 {
                            all_ones
                        } else {
                            a.wrapping_div(b)
                        }
                    }
                    // x % 0 = x; MIN % -1 = 0 (wrapping).
                    BinaryOp::Remainder => {
                        if b == 0 {
                            a
                        } else {
                            a.wrapping_rem(b)
                        }
                    }
                    BinaryOp::Maximum => {
                        if a >= b {
                            a
                        } else {
                            b
                        }
                    }
                    BinaryOp::Minimum => {
                        if a <= b {
                            a
                        } else {
                            b
                        }
                    }
                    BinaryOp::And => a & b,
                    BinaryOp::Or => a | b,
                    BinaryOp::Xor => a ^ b,
                    BinaryOp::ShiftLeft => {
                        if shift >= u64::from(BITS) {
                            0
                        } else {
                            a << shift
                        }
                    }
                    BinaryOp::ShiftRightLogical => {
                        if shift >= u64::from(BITS) {
                            0
                        } else {
                            ((a as $unsigned) >> shift) as $t
                        }
                    }
                    BinaryOp::ShiftRightArithmetic => {
                        let s = shift.min(u64::from(BITS - 1));
                        ((a as $signed) >> s) as $t
                    }
                    BinaryOp::Power | BinaryOp::Atan2 => return None,
                })
            }
        }
    };
}

int_scalar!(u8, i8, u8);
int_scalar!(i32, i32, u32);
int_scalar!(i64, i64, u64);
int_scalar!(u32, i32, u32);
int_scalar!(u64, i64, u64);

impl Scalar for bool {
    fn unary(op: UnaryOp, x: bool) -> Option<bool> {
        match op {
            UnaryOp::Not => Some(!x),
            UnaryOp::Copy => Some(x),
            _ => None,
        }
    }

    fn binary(op: BinaryOp, a: bool, b: bool) -> Option<bool> {
        match op {
            BinaryOp::And => Some(a & b),
            BinaryOp::Or => Some(a | b),
            BinaryOp::Xor => Some(a ^ b),
            BinaryOp::Maximum => Some(a | b),
            BinaryOp::Minimum => Some(a & b),
            _ => None,
        }
    }
}

fn same_shape<A, B>(a: &ArrayD<A>, b: &ArrayD<B>, what: &str) -> Result<(), Error> {
    if a.shape() != b.shape() {
        return Err(Error::Invalid(format!(
            "{what}: operand shapes {:?} and {:?} differ",
            a.shape(),
            b.shape()
        )));
    }
    Ok(())
}

/// `op` on every element of `a`.
pub(crate) fn unary_array<T: Scalar>(op: UnaryOp, a: &ArrayD<T>) -> Result<ArrayD<T>, Error> {
    if T::unary(op, T::default()).is_none() {
        return Err(Error::UnsupportedType {
            opcode: op.opcode().into(),
            ty: std::any::type_name::<T>().into(),
        });
    }
    Ok(a.mapv(|x| T::unary(op, x).unwrap_or_default()))
}

/// `op` on corresponding elements of `a` and `b`.
pub(crate) fn binary_array<T: Scalar>(
    op: BinaryOp,
    a: &ArrayD<T>,
    b: &ArrayD<T>,
) -> Result<ArrayD<T>, Error> {
    if T::binary(op, T::default(), T::default()).is_none() {
        return Err(Error::UnsupportedType {
            opcode: op.opcode().into(),
            ty: std::any::type_name::<T>().into(),
        });
    }
    same_shape(a, b, op.opcode())?;
    Ok(Zip::from(a)
        .and(b)
        .map_collect(|&x, &y| T::binary(op, x, y).unwrap_or_default()))
}

/// Rounds bf16/f16 arrays to their type; other values pass through.
pub(crate) fn renarrow(v: Value) -> Value {
    match v {
        Value::Bf16(a) => Value::Bf16(a.mapv(round_bf16)),
        Value::F16(a) => Value::F16(a.mapv(round_f16)),
        v => v,
    }
}

fn type_err(opcode: &str, v: &Value) -> Error {
    Error::UnsupportedType {
        opcode: opcode.into(),
        ty: v.type_string(),
    }
}

/// Elementwise unary op.
pub(crate) fn unary(op: UnaryOp, x: &Value) -> Result<Value, Error> {
    let r: Result<Value, Error> = (|| Ok(map_same!(x, op.opcode(), |a| unary_array(op, a)?)))();
    r.map(renarrow).map_err(|e| match e {
        Error::UnsupportedType { .. } => type_err(op.opcode(), x),
        e => e,
    })
}

/// Elementwise binary op.
pub(crate) fn binary(op: BinaryOp, x: &Value, y: &Value) -> Result<Value, Error> {
    let r: Result<Value, Error> =
        (|| Ok(zip_same!(x, y, op.opcode(), |a, b| binary_array(op, a, b)?)))();
    r.map(renarrow).map_err(|e| match e {
        Error::UnsupportedType { .. } => type_err(op.opcode(), x),
        e => e,
    })
}

/// `a dir b` on scalars (IEEE semantics for floats).
pub(crate) fn compare_scalar<T: PartialOrd>(dir: ComparisonDirection, x: &T, y: &T) -> bool {
    match dir {
        ComparisonDirection::Eq => x == y,
        ComparisonDirection::Ne => x != y,
        ComparisonDirection::Lt => x < y,
        ComparisonDirection::Le => x <= y,
        ComparisonDirection::Gt => x > y,
        ComparisonDirection::Ge => x >= y,
    }
}

fn compare_array<T: PartialOrd + Copy>(
    dir: ComparisonDirection,
    a: &ArrayD<T>,
    b: &ArrayD<T>,
) -> Result<ArrayD<bool>, Error> {
    same_shape(a, b, "compare")?;
    Ok(Zip::from(a)
        .and(b)
        .map_collect(|x, y| compare_scalar(dir, x, y)))
}

/// Elementwise comparison (IEEE semantics for floats: NaN compares unequal).
pub(crate) fn compare(dir: ComparisonDirection, x: &Value, y: &Value) -> Result<Value, Error> {
    let out = match (x, y) {
        (Value::Pred(a), Value::Pred(b)) => compare_array(dir, a, b)?,
        (Value::U8(a), Value::U8(b)) => compare_array(dir, a, b)?,
        (Value::S32(a), Value::S32(b)) => compare_array(dir, a, b)?,
        (Value::S64(a), Value::S64(b)) => compare_array(dir, a, b)?,
        (Value::U32(a), Value::U32(b)) => compare_array(dir, a, b)?,
        (Value::U64(a), Value::U64(b)) => compare_array(dir, a, b)?,
        (Value::Bf16(a), Value::Bf16(b))
        | (Value::F16(a), Value::F16(b))
        | (Value::F32(a), Value::F32(b)) => compare_array(dir, a, b)?,
        (Value::F64(a), Value::F64(b)) => compare_array(dir, a, b)?,
        _ => {
            return Err(Error::Invalid(format!(
                "compare of {} and {}",
                x.type_string(),
                y.type_string()
            )))
        }
    };
    Ok(Value::Pred(out))
}

fn select_array<T: Copy>(
    p: &ArrayD<bool>,
    t: &ArrayD<T>,
    f: &ArrayD<T>,
) -> Result<ArrayD<T>, Error> {
    same_shape(t, f, "select")?;
    if p.ndim() == 0 {
        let take = p.iter().next().copied().unwrap_or(false);
        return Ok(if take { t.clone() } else { f.clone() });
    }
    same_shape(p, t, "select")?;
    Ok(Zip::from(p)
        .and(t)
        .and(f)
        .map_collect(|&p, &t, &f| if p { t } else { f }))
}

/// `select(pred, on_true, on_false)`; the predicate may be a scalar.
pub(crate) fn select(p: &Value, t: &Value, f: &Value) -> Result<Value, Error> {
    let Value::Pred(p) = p else {
        return Err(Error::Invalid(format!(
            "select predicate must be pred, got {}",
            p.type_string()
        )));
    };
    Ok(zip_same!(t, f, "select", |a, b| select_array(p, a, b)?))
}

/// `clamp(lo, x, hi)` = `min(max(x, lo), hi)`.
pub(crate) fn clamp(lo: &Value, x: &Value, hi: &Value) -> Result<Value, Error> {
    let m = binary(BinaryOp::Maximum, x, lo)?;
    binary(BinaryOp::Minimum, &m, hi)
}

/// An element in a type-neutral form, for `convert`.
#[derive(Clone, Copy)]
enum Neutral {
    B(bool),
    I(i128),
    F(f64),
}

impl Neutral {
    fn to_bool(self) -> bool {
        match self {
            Neutral::B(b) => b,
            Neutral::I(i) => i != 0,
            Neutral::F(f) => f != 0.0,
        }
    }

    /// Integers wrap (two's complement truncation); floats truncate toward
    /// zero and saturate, NaN → 0.
    fn to_int(self, from_float: fn(f64) -> i128) -> i128 {
        match self {
            Neutral::B(b) => i128::from(b),
            Neutral::I(i) => i,
            Neutral::F(f) => from_float(f),
        }
    }

    fn to_f64(self) -> f64 {
        match self {
            Neutral::B(b) => f64::from(u8::from(b)),
            Neutral::I(i) => i as f64,
            Neutral::F(f) => f,
        }
    }

    fn to_f32(self) -> f32 {
        match self {
            Neutral::B(b) => f32::from(u8::from(b)),
            Neutral::I(i) => i as f32,
            Neutral::F(f) => f as f32,
        }
    }
}

fn neutral(v: &Value) -> Result<ArrayD<Neutral>, Error> {
    Ok(match v {
        Value::Pred(a) => a.mapv(Neutral::B),
        Value::U8(a) => a.mapv(|x| Neutral::I(i128::from(x))),
        Value::S32(a) => a.mapv(|x| Neutral::I(i128::from(x))),
        Value::S64(a) => a.mapv(|x| Neutral::I(i128::from(x))),
        Value::U32(a) => a.mapv(|x| Neutral::I(i128::from(x))),
        Value::U64(a) => a.mapv(|x| Neutral::I(i128::from(x))),
        Value::Bf16(a) | Value::F16(a) | Value::F32(a) => a.mapv(|x| Neutral::F(f64::from(x))),
        Value::F64(a) => a.mapv(Neutral::F),
        Value::Tuple(_) => return Err(Error::Invalid("convert of a tuple".into())),
    })
}

/// `convert` to `to`: float→int truncates toward zero and saturates (NaN
/// → 0), int→int wraps, anything→pred is `x != 0`, pred→number is 0/1,
/// to floats rounds to nearest even (f64→bf16/f16 goes through f32).
pub(crate) fn convert(v: &Value, to: ElementType) -> Result<Value, Error> {
    let n = neutral(v)?;
    Ok(match to {
        ElementType::Pred => Value::Pred(n.mapv(Neutral::to_bool)),
        ElementType::U8 => Value::U8(n.mapv(|x| x.to_int(|f| i128::from(f as u8)) as u8)),
        ElementType::S32 => Value::S32(n.mapv(|x| x.to_int(|f| i128::from(f as i32)) as i32)),
        ElementType::S64 => Value::S64(n.mapv(|x| x.to_int(|f| i128::from(f as i64)) as i64)),
        ElementType::U32 => Value::U32(n.mapv(|x| x.to_int(|f| i128::from(f as u32)) as u32)),
        ElementType::U64 => Value::U64(n.mapv(|x| x.to_int(|f| i128::from(f as u64)) as u64)),
        ElementType::Bf16 => Value::Bf16(n.mapv(|x| round_bf16(x.to_f32()))),
        ElementType::F16 => Value::F16(n.mapv(|x| round_f16(x.to_f32()))),
        ElementType::F32 => Value::F32(n.mapv(Neutral::to_f32)),
        ElementType::F64 => Value::F64(n.mapv(Neutral::to_f64)),
    })
}

/// `bitcast-convert`: reinterprets each element's bits as `to` (same width).
pub(crate) fn bitcast_convert(v: &Value, to: ElementType) -> Result<Value, Error> {
    let from = v
        .element_type()
        .ok_or_else(|| Error::Invalid("bitcast-convert of a tuple".into()))?;
    if from.byte_size() != to.byte_size() {
        return Err(Error::Invalid(format!(
            "bitcast-convert from {from} to {to} changes the bit width"
        )));
    }
    let bits: ArrayD<u64> = match v {
        Value::Pred(a) => a.mapv(u64::from),
        Value::U8(a) => a.mapv(u64::from),
        Value::S32(a) => a.mapv(|x| u64::from(x as u32)),
        Value::S64(a) => a.mapv(|x| x as u64),
        Value::U32(a) => a.mapv(u64::from),
        Value::U64(a) => a.clone(),
        Value::Bf16(a) => a.mapv(|x| u64::from(crate::ir::f32_to_bf16(x))),
        Value::F16(a) => a.mapv(|x| u64::from(crate::ir::f32_to_f16(x))),
        Value::F32(a) => a.mapv(|x| u64::from(x.to_bits())),
        Value::F64(a) => a.mapv(f64::to_bits),
        Value::Tuple(_) => return Err(Error::Invalid("bitcast-convert of a tuple".into())),
    };
    Ok(match to {
        ElementType::Pred => Value::Pred(bits.mapv(|b| b != 0)),
        ElementType::U8 => Value::U8(bits.mapv(|b| b as u8)),
        ElementType::S32 => Value::S32(bits.mapv(|b| b as u32 as i32)),
        ElementType::S64 => Value::S64(bits.mapv(|b| b as i64)),
        ElementType::U32 => Value::U32(bits.mapv(|b| b as u32)),
        ElementType::U64 => Value::U64(bits),
        ElementType::Bf16 => Value::Bf16(bits.mapv(|b| crate::ir::bf16_to_f32(b as u16))),
        ElementType::F16 => Value::F16(bits.mapv(|b| crate::ir::f16_to_f32(b as u16))),
        ElementType::F32 => Value::F32(bits.mapv(|b| f32::from_bits(b as u32))),
        ElementType::F64 => Value::F64(bits.mapv(f64::from_bits)),
    })
}

/// `iota`: element value = its index along `dim`.
pub(crate) fn iota(shape: &Shape, dim: i64) -> Result<Value, Error> {
    let dims: Vec<usize> = shape.dims.iter().map(|&d| d.max(0) as usize).collect();
    let d = usize::try_from(dim)
        .ok()
        .filter(|&d| d < dims.len())
        .ok_or_else(|| Error::Invalid(format!("iota dimension {dim} out of range")))?;
    let counts = ArrayD::from_shape_fn(IxDyn(&dims), |ix| ix[d] as i64);
    convert(&Value::S64(counts), shape.ty)
}
