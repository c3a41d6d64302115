//! Element types and shapes: the static types of every value in a program.
//!
//! Shapes are static (SimCLR fixes the per-replica batch at trace time) and
//! row-major; the layout is always `{rank-1,…,1,0}` when lowered.

use crate::proto;
use std::fmt;

/// The element type of an array, spelled as in XLA's text (`f32`, `pred`, …).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ElementType {
    /// Boolean (`pred`).
    Pred,
    /// Unsigned 8-bit integer.
    U8,
    /// Signed 32-bit integer.
    S32,
    /// Signed 64-bit integer.
    S64,
    /// Unsigned 32-bit integer (e.g. `replica-id`, random bits).
    U32,
    /// Unsigned 64-bit integer (e.g. the `rng-bit-generator` state).
    U64,
    /// bfloat16.
    Bf16,
    /// IEEE half precision.
    F16,
    /// IEEE single precision, the default.
    F32,
    /// IEEE double precision (reference checks).
    F64,
}

impl ElementType {
    /// Every element type the IR knows, in a fixed order.
    pub const ALL: [ElementType; 10] = [
        ElementType::Pred,
        ElementType::U8,
        ElementType::S32,
        ElementType::S64,
        ElementType::U32,
        ElementType::U64,
        ElementType::Bf16,
        ElementType::F16,
        ElementType::F32,
        ElementType::F64,
    ];

    /// XLA's lower-case spelling (`f32`, `pred`, `bf16`, …).
    pub fn name(self) -> &'static str {
        match self {
            ElementType::Pred => "pred",
            ElementType::U8 => "u8",
            ElementType::S32 => "s32",
            ElementType::S64 => "s64",
            ElementType::U32 => "u32",
            ElementType::U64 => "u64",
            ElementType::Bf16 => "bf16",
            ElementType::F16 => "f16",
            ElementType::F32 => "f32",
            ElementType::F64 => "f64",
        }
    }

    /// Parses XLA's spelling.
    pub fn from_name(name: &str) -> Option<ElementType> {
        ElementType::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Size of one element in bytes (`pred` takes one byte).
    pub fn byte_size(self) -> usize {
        match self {
            ElementType::Pred | ElementType::U8 => 1,
            ElementType::Bf16 | ElementType::F16 => 2,
            ElementType::S32 | ElementType::U32 | ElementType::F32 => 4,
            ElementType::S64 | ElementType::U64 | ElementType::F64 => 8,
        }
    }

    /// True for the floating-point types (the differentiable ones).
    pub fn is_float(self) -> bool {
        matches!(
            self,
            ElementType::Bf16 | ElementType::F16 | ElementType::F32 | ElementType::F64
        )
    }

    /// True for the integer types (signed or unsigned).
    pub fn is_integer(self) -> bool {
        matches!(
            self,
            ElementType::U8
                | ElementType::S32
                | ElementType::S64
                | ElementType::U32
                | ElementType::U64
        )
    }

    /// True for signed integers.
    pub fn is_signed_integer(self) -> bool {
        matches!(self, ElementType::S32 | ElementType::S64)
    }

    /// The matching `xla.PrimitiveType`.
    pub fn to_primitive(self) -> proto::PrimitiveType {
        match self {
            ElementType::Pred => proto::PrimitiveType::Pred,
            ElementType::U8 => proto::PrimitiveType::U8,
            ElementType::S32 => proto::PrimitiveType::S32,
            ElementType::S64 => proto::PrimitiveType::S64,
            ElementType::U32 => proto::PrimitiveType::U32,
            ElementType::U64 => proto::PrimitiveType::U64,
            ElementType::Bf16 => proto::PrimitiveType::Bf16,
            ElementType::F16 => proto::PrimitiveType::F16,
            ElementType::F32 => proto::PrimitiveType::F32,
            ElementType::F64 => proto::PrimitiveType::F64,
        }
    }

    /// The element type of an `xla.PrimitiveType`, if the IR supports it.
    pub fn from_primitive(p: proto::PrimitiveType) -> Option<ElementType> {
        ElementType::ALL.into_iter().find(|t| t.to_primitive() == p)
    }
}

impl fmt::Display for ElementType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The static shape of an array: element type and dimension sizes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Shape {
    /// Element type.
    pub ty: ElementType,
    /// Dimension sizes, major to minor.
    pub dims: Vec<i64>,
}

impl Shape {
    /// An array shape.
    pub fn new(ty: ElementType, dims: impl Into<Vec<i64>>) -> Shape {
        Shape {
            ty,
            dims: dims.into(),
        }
    }

    /// A scalar (rank 0) shape.
    pub fn scalar(ty: ElementType) -> Shape {
        Shape { ty, dims: vec![] }
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.dims.len()
    }

    /// Number of elements (1 for a scalar).
    pub fn numel(&self) -> usize {
        self.dims.iter().map(|&d| d.max(0) as usize).product()
    }

    /// Size in bytes of a dense row-major array of this shape.
    pub fn byte_size(&self) -> usize {
        self.numel() * self.ty.byte_size()
    }

    /// The same dimensions with another element type.
    pub fn with_type(&self, ty: ElementType) -> Shape {
        Shape {
            ty,
            dims: self.dims.clone(),
        }
    }

    /// Row-major strides in elements.
    pub fn strides(&self) -> Vec<usize> {
        let mut strides = vec![1usize; self.dims.len()];
        for i in (0..self.dims.len().saturating_sub(1)).rev() {
            strides[i] = strides[i + 1] * self.dims[i + 1].max(0) as usize;
        }
        strides
    }

    /// XLA text with layout: `f32[2,3]{1,0}`; scalars print `f32[]`.
    pub fn to_text_with_layout(&self) -> String {
        if self.dims.is_empty() {
            return format!("{}[]", self.ty);
        }
        let layout: Vec<String> = (0..self.dims.len()).rev().map(|d| d.to_string()).collect();
        format!("{}{{{}}}", self, layout.join(","))
    }

    /// The `ShapeProto` with its row-major layout (present but empty for scalars).
    pub fn to_proto(&self) -> proto::ShapeProto {
        proto::ShapeProto {
            element_type: self.ty.to_primitive() as i32,
            dimensions: self.dims.clone(),
            tuple_shapes: vec![],
            layout: Some(proto::LayoutProto {
                minor_to_major: (0..self.dims.len() as i64).rev().collect(),
            }),
            is_dynamic_dimension: vec![],
        }
    }
}

impl fmt::Display for Shape {
    /// XLA text without layout: `f32[2,3]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dims: Vec<String> = self.dims.iter().map(|d| d.to_string()).collect();
        write!(f, "{}[{}]", self.ty, dims.join(","))
    }
}

/// The type of a node's result: one array, or a flat tuple of arrays.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Type {
    /// An array value.
    Array(Shape),
    /// A tuple of arrays (results of `tuple`, variadic `reduce`, `rng-bit-generator`).
    Tuple(Vec<Shape>),
}

impl Type {
    /// The array shape, or `None` for a tuple.
    pub fn array(&self) -> Option<&Shape> {
        match self {
            Type::Array(s) => Some(s),
            Type::Tuple(_) => None,
        }
    }

    /// The array shapes that make up this value (one for an array).
    pub fn leaves(&self) -> Vec<Shape> {
        match self {
            Type::Array(s) => vec![s.clone()],
            Type::Tuple(v) => v.clone(),
        }
    }

    /// XLA text with layouts: `f32[2]{0}` or `(f32[2]{0}, s32[])`.
    pub fn to_text_with_layout(&self) -> String {
        match self {
            Type::Array(s) => s.to_text_with_layout(),
            Type::Tuple(v) => {
                let parts: Vec<String> = v.iter().map(|s| s.to_text_with_layout()).collect();
                format!("({})", parts.join(", "))
            }
        }
    }

    /// The `ShapeProto` (tuples carry no layout).
    pub fn to_proto(&self) -> proto::ShapeProto {
        match self {
            Type::Array(s) => s.to_proto(),
            Type::Tuple(v) => proto::ShapeProto {
                element_type: proto::PrimitiveType::Tuple as i32,
                dimensions: vec![],
                tuple_shapes: v.iter().map(|s| s.to_proto()).collect(),
                layout: None,
                is_dynamic_dimension: vec![],
            },
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Array(s) => write!(f, "{s}"),
            Type::Tuple(v) => {
                let parts: Vec<String> = v.iter().map(|s| s.to_string()).collect();
                write!(f, "({})", parts.join(", "))
            }
        }
    }
}
