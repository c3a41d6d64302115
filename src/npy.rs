//! Reading and writing NumPy `.npy` files.
//!
//! Owns the `.npy` container format (format versions 1, 2 and 3 headers,
//! little-endian `f32`, `f64`, `u8`, `i32`, `i64` and `bool`, C order). It is
//! used for the TensorFlow reference fixtures (`shared/fixtures/tf-reference`,
//! see SIMCLR.md §2 and §12) and for feature exports. It does not own any
//! tensor maths: arrays are a shape plus a flat, row-major buffer.

use std::path::Path;

/// Errors from reading or writing `.npy` files.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// File concerned.
        path: String,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// The bytes are not a valid `.npy` file.
    #[error("{name}: not a valid .npy file: {reason}")]
    Format {
        /// File (or buffer) name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The file is valid but uses a feature this reader does not support.
    #[error("{name}: unsupported .npy content: {reason} (save it with numpy as a little-endian, C-order array of f32/f64/u8/i32/i64/bool)")]
    Unsupported {
        /// File (or buffer) name.
        name: String,
        /// What is unsupported.
        reason: String,
    },
    /// The array has a different element type than the caller asked for.
    #[error("{name}: expected element type {expected}, found {found}")]
    WrongType {
        /// File (or buffer) name.
        name: String,
        /// Requested type.
        expected: &'static str,
        /// Type stored in the file.
        found: &'static str,
    },
}

/// The element type of an `.npy` array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    /// `<f4`
    F32,
    /// `<f8`
    F64,
    /// `|u1`
    U8,
    /// `<i4`
    I32,
    /// `<i8`
    I64,
    /// `|b1`
    Bool,
}

impl DType {
    /// NumPy's type string (`descr`) for this type.
    pub fn descr(self) -> &'static str {
        match self {
            DType::F32 => "<f4",
            DType::F64 => "<f8",
            DType::U8 => "|u1",
            DType::I32 => "<i4",
            DType::I64 => "<i8",
            DType::Bool => "|b1",
        }
    }

    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F64 | DType::I64 => 8,
            DType::U8 | DType::Bool => 1,
        }
    }

    /// Short human-readable name (`f32`, `u8`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::U8 => "u8",
            DType::I32 => "i32",
            DType::I64 => "i64",
            DType::Bool => "bool",
        }
    }

    fn from_descr(d: &str) -> Option<DType> {
        Some(match d {
            "<f4" => DType::F32,
            "<f8" => DType::F64,
            "|u1" | "<u1" | "u1" => DType::U8,
            "<i4" => DType::I32,
            "<i8" => DType::I64,
            "|b1" | "<b1" | "b1" | "?" | "|?" => DType::Bool,
            _ => return None,
        })
    }
}

/// The flat, row-major element buffer of an array.
#[derive(Debug, Clone, PartialEq)]
pub enum NpyData {
    /// 32-bit floats.
    F32(Vec<f32>),
    /// 64-bit floats.
    F64(Vec<f64>),
    /// Bytes.
    U8(Vec<u8>),
    /// 32-bit signed integers.
    I32(Vec<i32>),
    /// 64-bit signed integers.
    I64(Vec<i64>),
    /// Booleans.
    Bool(Vec<bool>),
}

impl NpyData {
    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            NpyData::F32(_) => DType::F32,
            NpyData::F64(_) => DType::F64,
            NpyData::U8(_) => DType::U8,
            NpyData::I32(_) => DType::I32,
            NpyData::I64(_) => DType::I64,
            NpyData::Bool(_) => DType::Bool,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            NpyData::F32(v) => v.len(),
            NpyData::F64(v) => v.len(),
            NpyData::U8(v) => v.len(),
            NpyData::I32(v) => v.len(),
            NpyData::I64(v) => v.len(),
            NpyData::Bool(v) => v.len(),
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An n-dimensional array read from or written to an `.npy` file.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// Dimensions, outermost first (C order). Empty for a scalar.
    pub shape: Vec<usize>,
    /// Elements in row-major order; `data.len()` equals the product of `shape`.
    pub data: NpyData,
}

impl NpyArray {
    /// Builds an array, checking that `shape` matches the element count.
    ///
    /// # Errors
    /// [`Error::Format`] when the product of `shape` differs from `data.len()`.
    pub fn new(shape: Vec<usize>, data: NpyData) -> Result<Self, Error> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(Error::Format {
                name: "<array>".into(),
                reason: format!(
                    "shape {shape:?} holds {n} elements but {} were given",
                    data.len()
                ),
            });
        }
        Ok(NpyArray { shape, data })
    }

    /// The `f32` elements, or [`Error::WrongType`].
    pub fn as_f32(&self) -> Result<&[f32], Error> {
        match &self.data {
            NpyData::F32(v) => Ok(v),
            d => Err(wrong("f32", d.dtype())),
        }
    }

    /// The `u8` elements, or [`Error::WrongType`].
    pub fn as_u8(&self) -> Result<&[u8], Error> {
        match &self.data {
            NpyData::U8(v) => Ok(v),
            d => Err(wrong("u8", d.dtype())),
        }
    }

    /// All elements converted to `f64` (bools become 0/1).
    pub fn to_f64(&self) -> Vec<f64> {
        match &self.data {
            NpyData::F32(v) => v.iter().map(|&x| x as f64).collect(),
            NpyData::F64(v) => v.clone(),
            NpyData::U8(v) => v.iter().map(|&x| x as f64).collect(),
            NpyData::I32(v) => v.iter().map(|&x| x as f64).collect(),
            NpyData::I64(v) => v.iter().map(|&x| x as f64).collect(),
            NpyData::Bool(v) => v.iter().map(|&x| if x { 1.0 } else { 0.0 }).collect(),
        }
    }
}

fn wrong(expected: &'static str, found: DType) -> Error {
    Error::WrongType {
        name: "<array>".into(),
        expected,
        found: found.name(),
    }
}

const MAGIC: &[u8] = b"\x93NUMPY";

/// Reads an `.npy` file.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read, [`Error::Format`] for a
/// malformed or truncated file, [`Error::Unsupported`] for big-endian,
/// Fortran-order or other element types.
pub fn read(path: impl AsRef<Path>) -> Result<NpyArray, Error> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse(&bytes, &path.display().to_string())
}

/// Parses the bytes of an `.npy` file; `name` is used in error messages.
///
/// # Errors
/// As [`read`], without the I/O case.
pub fn parse(bytes: &[u8], name: &str) -> Result<NpyArray, Error> {
    let fmt = |reason: String| Error::Format {
        name: name.to_string(),
        reason,
    };
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(fmt("missing the \\x93NUMPY magic string".into()));
    }
    let major = bytes[6];
    let (header_len, header_start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(fmt("truncated header length".into()));
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12usize,
            )
        }
        v => {
            return Err(Error::Unsupported {
                name: name.into(),
                reason: format!("format version {v}"),
            })
        }
    };
    let data_start = header_start
        .checked_add(header_len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| {
            fmt(format!(
                "header of {header_len} bytes runs past the end of the file"
            ))
        })?;
    let header = std::str::from_utf8(&bytes[header_start..data_start])
        .map_err(|_| fmt("header is not text".into()))?;
    let descr = dict_value(header, "descr").ok_or_else(|| fmt("header has no 'descr'".into()))?;
    let descr = descr.trim().trim_matches(|c| c == '\'' || c == '"');
    let dtype = DType::from_descr(descr).ok_or_else(|| Error::Unsupported {
        name: name.into(),
        reason: format!("element type '{descr}'"),
    })?;
    let fortran = dict_value(header, "fortran_order")
        .ok_or_else(|| fmt("header has no 'fortran_order'".into()))?;
    if fortran.trim() == "True" {
        return Err(Error::Unsupported {
            name: name.into(),
            reason: "Fortran order".into(),
        });
    }
    let shape_txt =
        dict_value(header, "shape").ok_or_else(|| fmt("header has no 'shape'".into()))?;
    let shape_txt = shape_txt.trim();
    let inner = shape_txt
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| fmt(format!("shape '{shape_txt}' is not a tuple")))?;
    let mut shape = Vec::new();
    for part in inner.split(',') {
        let p = part.trim();
        if p.is_empty() {
            continue;
        }
        let d: usize = p
            .trim_end_matches('L')
            .parse()
            .map_err(|_| fmt(format!("bad dimension '{p}' in shape")))?;
        shape.push(d);
    }
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| fmt("shape overflows".into()))?;
    let body = &bytes[data_start..];
    let need = count
        .checked_mul(dtype.size())
        .ok_or_else(|| fmt("shape overflows".into()))?;
    if body.len() < need {
        return Err(fmt(format!(
            "data truncated: shape {shape:?} of {} needs {need} bytes, file has {}",
            dtype.name(),
            body.len()
        )));
    }
    let body = &body[..need];
    let data = match dtype {
        DType::F32 => NpyData::F32(
            body.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        DType::F64 => NpyData::F64(
            body.chunks_exact(8)
                .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
        ),
        DType::U8 => NpyData::U8(body.to_vec()),
        DType::I32 => NpyData::I32(
            body.chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        DType::I64 => NpyData::I64(
            body.chunks_exact(8)
                .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
        ),
        DType::Bool => NpyData::Bool(body.iter().map(|&b| b != 0).collect()),
    };
    Ok(NpyArray { shape, data })
}

/// Finds the text of `key`'s value in a Python dict literal.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let pos = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = &header[pos + key.len() + 2..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')')? + 1
    } else if let Some(q) = rest.strip_prefix('\'') {
        q.find('\'')? + 2
    } else {
        rest.find([',', '}']).unwrap_or(rest.len())
    };
    Some(&rest[..end])
}

/// Serialises an array to `.npy` bytes (version 1 header, or version 2 when
/// the header does not fit in 65,535 bytes).
pub fn to_bytes(arr: &NpyArray) -> Vec<u8> {
    let shape = match arr.shape.len() {
        0 => "()".to_string(),
        1 => format!("({},)", arr.shape[0]),
        _ => format!(
            "({})",
            arr.shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}",
        arr.data.dtype().descr(),
        shape
    );
    let (version, prefix) = if header.len() + 11 < 65_536 {
        (1u8, 10usize)
    } else {
        (2u8, 12usize)
    };
    let total = (prefix + header.len() + 1).div_ceil(64) * 64;
    while prefix + header.len() + 1 < total {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(total + arr.data.len() * arr.data.dtype().size());
    out.extend_from_slice(MAGIC);
    out.push(version);
    out.push(0);
    if version == 1 {
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(header.as_bytes());
    match &arr.data {
        NpyData::F32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        NpyData::F64(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        NpyData::U8(v) => out.extend_from_slice(v),
        NpyData::I32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        NpyData::I64(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        NpyData::Bool(v) => v.iter().for_each(|&x| out.push(x as u8)),
    }
    out
}

/// Writes an array to an `.npy` file.
///
/// # Errors
/// [`Error::Io`] when the file cannot be written.
pub fn write(path: impl AsRef<Path>, arr: &NpyArray) -> Result<(), Error> {
    let path = path.as_ref();
    std::fs::write(path, to_bytes(arr)).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })
}
