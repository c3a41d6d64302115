//! Typed `PJRT_NamedValue`s: client create options, plugin attributes and
//! cost-analysis properties. Owns the conversion to and from the C struct;
//! the type tag always comes from the Rust variant, so a value can never be
//! passed with the wrong type (which aborts some plugins).

use std::ffi::c_char;

use super::ffi::{self, named_value_type, NamedValueUnion, RawNamedValue};

/// One value of a `PJRT_NamedValue`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum Value {
    /// `kString`.
    String(String),
    /// `kInt64`.
    Int64(i64),
    /// `kInt64List`.
    Int64List(Vec<i64>),
    /// `kFloat` (an f32 in the C API).
    Float(f32),
    /// `kBool`.
    Bool(bool),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::String(s) => f.write_str(s),
            Value::Int64(v) => write!(f, "{v}"),
            Value::Int64List(v) => write!(f, "{v:?}"),
            Value::Float(v) => write!(f, "{v}"),
            Value::Bool(v) => write!(f, "{v}"),
        }
    }
}

/// A name and a typed value.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct NamedValue {
    /// The option or property name.
    pub name: String,
    /// Its value.
    pub value: Value,
}

impl NamedValue {
    /// A named value.
    pub fn new(name: impl Into<String>, value: Value) -> Self {
        Self {
            name: name.into(),
            value,
        }
    }

    /// The numeric value as f64 (ints, floats, bools), if it is a scalar number.
    pub fn as_f64(&self) -> Option<f64> {
        match self.value {
            Value::Int64(v) => Some(v as f64),
            Value::Float(v) => Some(f64::from(v)),
            Value::Bool(v) => Some(if v { 1.0 } else { 0.0 }),
            _ => None,
        }
    }

    /// The C struct pointing into `self`; valid while `self` lives and is
    /// not mutated.
    pub(crate) fn to_raw(&self) -> RawNamedValue {
        let (kind, value, value_size) = match &self.value {
            Value::String(s) => (
                named_value_type::STRING,
                NamedValueUnion {
                    string_value: s.as_ptr().cast::<c_char>(),
                },
                s.len(),
            ),
            Value::Int64(v) => (
                named_value_type::INT64,
                NamedValueUnion { int64_value: *v },
                1,
            ),
            Value::Int64List(v) => (
                named_value_type::INT64_LIST,
                NamedValueUnion {
                    int64_array_value: v.as_ptr(),
                },
                v.len(),
            ),
            Value::Float(v) => (
                named_value_type::FLOAT,
                NamedValueUnion { float_value: *v },
                1,
            ),
            Value::Bool(v) => (
                named_value_type::BOOL,
                NamedValueUnion { bool_value: *v },
                1,
            ),
        };
        RawNamedValue {
            struct_size: ffi::NAMED_VALUE_SIZE,
            extension_start: std::ptr::null_mut(),
            name: self.name.as_ptr().cast::<c_char>(),
            name_size: self.name.len(),
            kind,
            value,
            value_size,
        }
    }

    /// Copies a C named value.
    ///
    /// # Safety
    /// `raw` must be a valid `PJRT_NamedValue` whose pointers are live for
    /// the duration of the call.
    pub(crate) unsafe fn from_raw(raw: &RawNamedValue) -> Option<Self> {
        // SAFETY: the caller guarantees `name`/`name_size` describe live bytes.
        let name = unsafe { super::plugin::copy_str(raw.name, raw.name_size) };
        // SAFETY: the union member read matches the type tag, and the
        // pointed-to data (strings, lists) is live per the caller.
        let value = unsafe {
            match raw.kind {
                named_value_type::STRING => Value::String(super::plugin::copy_str(
                    raw.value.string_value,
                    raw.value_size,
                )),
                named_value_type::INT64 => Value::Int64(raw.value.int64_value),
                named_value_type::INT64_LIST => {
                    let p = raw.value.int64_array_value;
                    if p.is_null() || raw.value_size == 0 {
                        Value::Int64List(Vec::new())
                    } else {
                        Value::Int64List(std::slice::from_raw_parts(p, raw.value_size).to_vec())
                    }
                }
                named_value_type::FLOAT => Value::Float(raw.value.float_value),
                named_value_type::BOOL => Value::Bool(raw.value.bool_value),
                _ => return None,
            }
        };
        Some(Self { name, value })
    }
}

/// Copies `count` C named values starting at `ptr` (unknown types skipped).
///
/// # Safety
/// `ptr` must point to `count` valid `PJRT_NamedValue`s (or be NULL).
pub(crate) unsafe fn copy_list(ptr: *const RawNamedValue, count: usize) -> Vec<NamedValue> {
    if ptr.is_null() || count == 0 {
        return Vec::new();
    }
    // SAFETY: the caller guarantees `count` valid structs at `ptr`.
    let raws = unsafe { std::slice::from_raw_parts(ptr, count) };
    raws.iter()
        // SAFETY: each element is a valid named value (caller's guarantee).
        .filter_map(|r| unsafe { NamedValue::from_raw(r) })
        .collect()
}
