//! Checkpoints: saving and resuming training runs, reading and writing
//! TensorFlow tensor bundles, restoring model variables by name with a
//! `variable_schema`, and inferring the architecture of a checkpoint
//! (SPEC §8.5, §8.6, §9).
//!
//! * [`native`]: `model_dir/ckpt-<step>.safetensors` + `checkpoint.json`,
//!   written atomically, keep-N, fall back to the previous good checkpoint.
//! * [`tf`]: TensorFlow tensor bundles (`<prefix>.index` SSTable +
//!   `<prefix>.data-0000k-of-0000n`), read with per-tensor CRC32C checks and
//!   written so that TensorFlow reads them.
//! * [`import`]: restore [`crate::nn::Variable`]s from either kind by exact
//!   TF1 name, filtered by an anchored regex (Python `re.match`).
//! * [`tf2`]: TF2 object-path keys mapped to TF1 names (heads and backbone).
//! * [`infer`]: depth, width, SK, heads and classes from names and shapes.
//! * [`torch`]: PyTorch state dicts (torchvision or simclr_resnet.py layout) both ways.
//!
//! Host arrays are [`Tensor`]s: a dtype, dims and little-endian row-major
//! bytes — nothing more, so every format converts to and from it losslessly.

pub mod import;
pub mod infer;
pub mod native;
pub mod source;
pub mod tf;
pub mod tf2;
pub mod torch;

pub use source::{Entry, Source};

use std::path::PathBuf;
use thiserror::Error;

/// Everything that can go wrong reading, writing or restoring checkpoints.
/// Each message names the file or tensor and says how to fix it.
#[derive(Debug, Error)]
pub enum Error {
    /// An operating-system error on a file.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file is truncated, corrupted or not of the expected format.
    #[error("{path}: corrupted or truncated checkpoint file: {detail}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong, as precisely as known.
        detail: String,
    },
    /// A tensor's checksum does not match its bytes.
    #[error("{path}: checksum mismatch for tensor '{tensor}' (stored {stored:#010x}, computed {computed:#010x}); the file is corrupted, restore it from a backup or use an older checkpoint")]
    Checksum {
        /// The file holding the bytes.
        path: PathBuf,
        /// The tensor name.
        tensor: String,
        /// The (unmasked) checksum stored in the checkpoint.
        stored: u32,
        /// The checksum of the bytes read.
        computed: u32,
    },
    /// No checkpoint at the given path.
    #[error("{path}: no checkpoint found: {detail}")]
    NotFound {
        /// What was looked at.
        path: PathBuf,
        /// What was expected there.
        detail: String,
    },
    /// A tensor name that the checkpoint does not hold.
    #[error("{path}: no tensor named '{name}' in the checkpoint")]
    MissingTensor {
        /// The checkpoint.
        path: PathBuf,
        /// The requested name.
        name: String,
    },
    /// A feature of the format that is not supported.
    #[error("{path}: unsupported: {detail}")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What is unsupported and what to do instead.
        detail: String,
    },
    /// Invalid arguments (bad tensor sizes, bad regex, bad names).
    #[error("{0}")]
    Invalid(String),
    /// A checkpoint tensor does not fit the model variable of the same name.
    #[error("shape mismatch for '{name}': the checkpoint has {checkpoint:?}, the model expects {model:?}; {hint}")]
    ShapeMismatch {
        /// The TF1 variable name.
        name: String,
        /// Dims in the checkpoint.
        checkpoint: Vec<u64>,
        /// Dims of the model variable.
        model: Vec<u64>,
        /// Which flag is probably wrong.
        hint: String,
    },
    /// Variables selected by `variable_schema` that the checkpoint lacks.
    #[error("{path}: {count} variable(s) selected by --variable_schema are not in the checkpoint, e.g. {examples}; {hint}")]
    MissingVariables {
        /// The checkpoint.
        path: PathBuf,
        /// How many.
        count: usize,
        /// A few of their names.
        examples: String,
        /// How to fix it.
        hint: String,
    },
    /// Reading or writing a bucket (or a local path through the storage
    /// layer) failed.
    #[error(transparent)]
    Storage(#[from] crate::storage::Error),
}

/// Result with [`enum@Error`].
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}

/// Element type of a host [`Tensor`]. `String` exists only in TensorFlow
/// bundles (e.g. TF2's object graph) and is stored as TF's on-disk string
/// encoding in [`Tensor::bytes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum DType {
    /// `bool`, one byte 0/1.
    Bool,
    /// `u8`.
    U8,
    /// `i8`.
    I8,
    /// `u16`.
    U16,
    /// `i16`.
    I16,
    /// `u32`.
    U32,
    /// `i32`.
    I32,
    /// `u64`.
    U64,
    /// `i64` (TF's `global_step`).
    I64,
    /// IEEE half.
    F16,
    /// bfloat16.
    BF16,
    /// `f32` (every model variable).
    F32,
    /// `f64`.
    F64,
    /// TF `DT_STRING`: variable-length byte strings.
    String,
}

impl DType {
    /// Bytes per element; `None` for [`DType::String`].
    pub fn size(self) -> Option<usize> {
        Some(match self {
            DType::Bool | DType::U8 | DType::I8 => 1,
            DType::U16 | DType::I16 | DType::F16 | DType::BF16 => 2,
            DType::U32 | DType::I32 | DType::F32 => 4,
            DType::U64 | DType::I64 | DType::F64 => 8,
            DType::String => return None,
        })
    }

    /// Lower-case name as NumPy/TF print it (`float32`, `int64`, …).
    pub fn name(self) -> &'static str {
        match self {
            DType::Bool => "bool",
            DType::U8 => "uint8",
            DType::I8 => "int8",
            DType::U16 => "uint16",
            DType::I16 => "int16",
            DType::U32 => "uint32",
            DType::I32 => "int32",
            DType::U64 => "uint64",
            DType::I64 => "int64",
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::F32 => "float32",
            DType::F64 => "float64",
            DType::String => "string",
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A host array: dtype, dims and the elements as little-endian, row-major
/// (C order) bytes. For fixed-size dtypes `bytes.len()` is always
/// `numel · dtype.size()`; for [`DType::String`] the bytes are TF's
/// encoding (varint lengths, masked CRC of the lengths, the strings).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tensor {
    /// Element type.
    pub dtype: DType,
    /// Dimensions; empty for a scalar.
    pub dims: Vec<u64>,
    /// Little-endian element bytes in row-major order.
    pub bytes: Vec<u8>,
}

impl Tensor {
    /// A tensor from raw bytes, checking that their length fits dtype and dims.
    pub fn new(dtype: DType, dims: Vec<u64>, bytes: Vec<u8>) -> Result<Tensor> {
        let t = Tensor { dtype, dims, bytes };
        t.check()?;
        Ok(t)
    }

    /// Checks that `bytes` has the length dtype and dims need (always true
    /// for string tensors, whose layout is checked when written).
    pub fn check(&self) -> Result<()> {
        if let Some(sz) = self.dtype.size() {
            let want = self.numel().checked_mul(sz as u64);
            if want != Some(self.bytes.len() as u64) {
                return Err(Error::Invalid(format!(
                    "a {} tensor of dims {:?} needs {} bytes, got {}",
                    self.dtype,
                    self.dims,
                    want.map_or("too many".to_string(), |w| w.to_string()),
                    self.bytes.len()
                )));
            }
        }
        Ok(())
    }

    /// An `f32` tensor from values (panics never; checks the count).
    pub fn from_f32(dims: &[u64], values: &[f32]) -> Result<Tensor> {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Tensor::new(DType::F32, dims.to_vec(), bytes)
    }

    /// An `i64` scalar (e.g. `global_step`).
    pub fn scalar_i64(v: i64) -> Tensor {
        Tensor {
            dtype: DType::I64,
            dims: vec![],
            bytes: v.to_le_bytes().to_vec(),
        }
    }

    /// All-zero tensor of a fixed-size dtype.
    pub fn zeros(dtype: DType, dims: &[u64]) -> Result<Tensor> {
        let sz = dtype
            .size()
            .ok_or_else(|| Error::Invalid("string tensors have no zero value".into()))?;
        let n = usize::try_from(numel(dims))
            .ok()
            .and_then(|n| n.checked_mul(sz))
            .ok_or_else(|| Error::Invalid(format!("dims {dims:?} are too large")))?;
        Ok(Tensor {
            dtype,
            dims: dims.to_vec(),
            bytes: vec![0; n],
        })
    }

    /// Number of elements (1 for a scalar).
    pub fn numel(&self) -> u64 {
        numel(&self.dims)
    }

    /// The values as `f32`, converting from f16, bf16 and f64 (rounding);
    /// integers and strings are refused.
    pub fn to_f32(&self) -> Result<Vec<f32>> {
        let b = &self.bytes;
        Ok(match self.dtype {
            DType::F32 => b
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            DType::F64 => b
                .chunks_exact(8)
                .map(|c| {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(c);
                    f64::from_le_bytes(a) as f32
                })
                .collect(),
            DType::BF16 => b
                .chunks_exact(2)
                .map(|c| f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16))
                .collect(),
            DType::F16 => b
                .chunks_exact(2)
                .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
            other => {
                return Err(Error::Invalid(format!(
                    "cannot use a {other} tensor as float32"
                )))
            }
        })
    }

    /// This tensor converted to `f32` (a copy when the dtype differs).
    pub fn into_f32(self) -> Result<Tensor> {
        if self.dtype == DType::F32 {
            return Ok(self);
        }
        let v = self.to_f32()?;
        Tensor::from_f32(&self.dims, &v)
    }

    /// The value of an integer scalar (or one-element tensor) as `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        if self.numel() != 1 {
            return None;
        }
        let b = &self.bytes;
        Some(match self.dtype {
            DType::I64 => i64::from_le_bytes(b.get(..8)?.try_into().ok()?),
            DType::U64 => i64::try_from(u64::from_le_bytes(b.get(..8)?.try_into().ok()?)).ok()?,
            DType::I32 => i64::from(i32::from_le_bytes(b.get(..4)?.try_into().ok()?)),
            DType::U32 => i64::from(u32::from_le_bytes(b.get(..4)?.try_into().ok()?)),
            _ => return None,
        })
    }
}

/// Product of dims (1 for a scalar), saturating.
pub fn numel(dims: &[u64]) -> u64 {
    dims.iter().fold(1u64, |a, &d| a.saturating_mul(d))
}

fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    let bits = if exp == 0 {
        if man == 0 {
            sign
        } else {
            // subnormal: value = man · 2^-24
            let v = man as f32 * f32::from_bits(0x3380_0000);
            return if sign != 0 { -v } else { v };
        }
    } else if exp == 31 {
        sign | 0x7f80_0000 | (man << 13)
    } else {
        sign | ((exp + 127 - 15) << 23) | (man << 13)
    };
    f32::from_bits(bits)
}
