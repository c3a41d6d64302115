//! One way to read any checkpoint: [`Source::open`] picks the format from
//! the path (a native `.safetensors` file or `model_dir`, or a TensorFlow
//! prefix / `.index` / directory) and lists or reads tensors by name.

use super::{native, tf, DType, Error, Result, Tensor};
use std::path::{Path, PathBuf};

/// A tensor listed by a [`Source`].
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Name in the checkpoint.
    pub name: String,
    /// Host dtype, when representable.
    pub dtype: Option<DType>,
    /// Printable dtype (also for TF-only types such as `resource`).
    pub dtype_name: String,
    /// Dimensions.
    pub dims: Vec<u64>,
}

/// An opened checkpoint of either format.
#[derive(Debug)]
pub enum Source {
    /// A TensorFlow tensor bundle.
    Tf(tf::Reader),
    /// A native safetensors checkpoint.
    Native(native::Reader),
}

impl Source {
    /// Opens `path`: a `.safetensors` file; a directory holding
    /// `checkpoint.json` or `ckpt-*.safetensors` (its newest readable
    /// checkpoint, see [`native::latest`]); otherwise a TensorFlow checkpoint
    /// (see [`tf::resolve_prefix`]).
    pub fn open(path: &Path) -> Result<Source> {
        if path.extension().is_some_and(|e| e == "safetensors") {
            return Ok(Source::Native(native::Reader::open(path)?));
        }
        let loc = crate::storage::Location::from_path(path)?;
        let is_dir = match &loc {
            crate::storage::Location::Local(p) => p.is_dir(),
            _ => crate::storage::is_dir(&loc)?,
        };
        if is_dir && !native::try_list(path)?.is_empty() {
            return match native::latest(path)? {
                Some(l) => Ok(Source::Native(l.into_reader()?)),
                None => Err(Error::NotFound {
                    path: path.to_path_buf(),
                    detail: "no readable ckpt-*.safetensors".into(),
                }),
            };
        }
        Ok(Source::Tf(tf::Reader::open(path)?))
    }

    /// The file or prefix read.
    pub fn path(&self) -> PathBuf {
        match self {
            Source::Tf(r) => r.prefix().to_path_buf(),
            Source::Native(r) => r.path().to_path_buf(),
        }
    }

    /// `"tensorflow"` or `"native"`.
    pub fn format(&self) -> &'static str {
        match self {
            Source::Tf(_) => "tensorflow",
            Source::Native(_) => "native",
        }
    }

    /// Every tensor, sorted by name.
    pub fn entries(&self) -> Vec<Entry> {
        match self {
            Source::Tf(r) => r
                .entries()
                .iter()
                .map(|e| Entry {
                    name: e.name.clone(),
                    dtype: e.dtype(),
                    dtype_name: tf::tf_dtype_name(e.tf_dtype),
                    dims: e.dims.clone(),
                })
                .collect(),
            Source::Native(r) => r
                .entries()
                .iter()
                .map(|e| Entry {
                    name: e.name.clone(),
                    dtype: Some(e.dtype),
                    dtype_name: e.dtype.name().to_string(),
                    dims: e.dims.clone(),
                })
                .collect(),
        }
    }

    /// Reads one tensor (checksum verified).
    pub fn read(&self, name: &str) -> Result<Tensor> {
        match self {
            Source::Tf(r) => r.read(name),
            Source::Native(r) => r.read(name),
        }
    }
}
