//! Datasets and SimCLR's augmentations (SIMCLR.md §2).
//!
//! Owns everything between files on disk and the per-replica host batches a
//! training or evaluation step consumes:
//! * readers: [`cifar`] (CIFAR-10 binary), [`folder`] (class sub-folders of
//!   JPEG/PNG), [`tfrecord`] (TFDS `tf.train.Example` shards), [`idx`]
//!   (Fashion-MNIST IDX files), all behind the [`Dataset`] trait;
//! * [`augment`]: SimCLR's exact preprocessing (crop sampler, bicubic resize,
//!   flip, colour distortion, blur, eval centre crop) and [`rng`], the
//!   counter-based random numbers that make it reproducible, with its inner
//!   loops in [`pixels`] (SIMD-friendly, bit-identical, AVX2 when present);
//! * [`pipeline`]: shuffle buffer, repeat, sharding across replicas, worker
//!   threads with bounded prefetch, padded evaluation batches.
//!
//! It does not own the model, the device transfer or the step itself.

pub mod augment;
pub mod cifar;
pub mod folder;
pub mod idx;
pub mod jpeg;
pub mod pipeline;
pub mod pixels;
pub mod rng;
pub mod tfrecord;

use std::path::{Path, PathBuf};

/// Errors of the data module. Every variant names the file (or flag) involved
/// and says how to fix the problem.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or folder could not be opened or read.
    #[error("{path}: {source} (check --data_dir and the file permissions)")]
    Io {
        /// File concerned.
        path: String,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// A file ends in the middle of a record.
    #[error("{path}: truncated at record {record} (byte offset {offset}): {reason}; the file is incomplete, download or copy it again")]
    Truncated {
        /// File concerned.
        path: String,
        /// Index of the record that is cut short.
        record: u64,
        /// Byte offset of that record's start.
        offset: u64,
        /// What was expected.
        reason: String,
    },
    /// A record is present but its content is invalid (bad label, checksum
    /// mismatch, malformed header, ...).
    #[error("{path}: corrupt record {record} (byte offset {offset}): {reason}")]
    Corrupt {
        /// File concerned.
        path: String,
        /// Index of the bad record.
        record: u64,
        /// Byte offset of that record's start.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// An image could not be decoded.
    #[error("{path}: cannot decode image: {reason} (remove or replace the file, or pass --skip_bad_images to count and skip such files)")]
    Decode {
        /// File (or record) concerned.
        path: String,
        /// The decoder's message.
        reason: String,
    },
    /// Expected files or folders are missing.
    #[error("{what} not found at {path}: {hint}")]
    NotFound {
        /// What was looked for.
        what: String,
        /// Where it was looked for.
        path: String,
        /// How to fix it.
        hint: String,
    },
    /// Invalid configuration (flag values, sizes, split names).
    #[error("invalid data configuration: {0}")]
    Config(String),
    /// A worker thread failed or the pipeline was shut down.
    #[error("data pipeline: {0}")]
    Pipeline(String),
    /// Reading a bucket failed.
    #[error(transparent)]
    Storage(#[from] crate::storage::Error),
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// A decoded 8-bit RGB image, HWC (row-major, channels last, 3 channels).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageU8 {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// `height * width * 3` bytes, R G B interleaved.
    pub data: Vec<u8>,
}

impl ImageU8 {
    /// Converts to float in [0, 1] by dividing by 255 (TF's
    /// `convert_image_dtype`, SIMCLR.md §2.1).
    pub fn to_f32(&self) -> ImageF32 {
        ImageF32 {
            height: self.height,
            width: self.width,
            data: self.data.iter().map(|&v| v as f32 / 255.0).collect(),
        }
    }
}

/// A float RGB image, HWC with 3 channels. Values are nominally in [0, 1]
/// but may overshoot between augmentation steps (e.g. after bicubic resize).
#[derive(Debug, Clone, PartialEq)]
pub struct ImageF32 {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// `height * width * 3` values.
    pub data: Vec<f32>,
}

/// One labelled example as read from a dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// The image.
    pub image: ImageU8,
    /// Class index in `0..num_classes`.
    pub label: i32,
}

/// A random-access, read-only collection of labelled images (one split).
///
/// Implementations are shared by the pipeline's worker threads, so `get` must
/// be callable concurrently.
pub trait Dataset: Send + Sync {
    /// Number of examples in the split.
    fn len(&self) -> usize;
    /// True when the split is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Number of classes (labels are in `0..num_classes`).
    fn num_classes(&self) -> usize;
    /// Reads and decodes example `index` (`index < len()`).
    ///
    /// # Errors
    /// I/O and decoding errors, naming the file.
    fn get(&self, index: usize) -> Result<Example, Error>;
    /// The label of example `index` (readers that hold labels apart from
    /// the images answer without decoding).
    ///
    /// # Errors
    /// As [`Dataset::get`].
    fn label(&self, index: usize) -> Result<i32, Error> {
        Ok(self.get(index)?.label)
    }
    /// A short description for logs (`cifar10/train`, a folder path, ...).
    fn describe(&self) -> String;
}

/// Which split of a dataset to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// The training split (`train`).
    Train,
    /// The evaluation split (`test` for CIFAR-10 and Fashion-MNIST,
    /// `validation` for ImageNet).
    Eval,
}

impl Split {
    /// Parses a TFDS split name (`train`, `test`, `validation`, `val`).
    ///
    /// # Errors
    /// [`Error::Config`] for other names.
    pub fn parse(name: &str) -> Result<Split, Error> {
        match name {
            "train" => Ok(Split::Train),
            "test" | "validation" | "val" | "eval" => Ok(Split::Eval),
            other => Err(Error::Config(format!(
                "unknown split '{other}': use train, test or validation"
            ))),
        }
    }
}

/// Opens the dataset named by `--dataset` under `--data_dir`:
/// * `cifar10`: [`cifar::Cifar10`] (`data_dir` holds `cifar-10-batches-bin/`
///   or the `.bin` files themselves), else TFDS shards `cifar10/<version>/`;
/// * `fashion_mnist`: [`idx::FashionMnist`], else TFDS shards;
/// * `imagenet2012`, `imagenet2012_subset/1pct`, `imagenet2012_subset/10pct`:
///   TFDS TFRecord shards, [`tfrecord::TfdsImages`];
/// * anything else that is an existing folder (a local path or a `gs://`,
///   `s3://` prefix), or a folder of that name under `data_dir`:
///   [`folder::ImageFolder`].
///
/// `data_dir` may be a bucket prefix (`gs://bucket/tensorflow_datasets`).
///
/// `split_name` is the TFDS split (`train`, `test`, `validation`);
/// `bad_images` says what an image folder does with undecodable files
/// (`--skip_bad_images` → [`folder::BadImages::Skip`]).
///
/// # Errors
/// [`Error::NotFound`] when the files are missing, [`Error::Config`] for an
/// unknown dataset name, plus the readers' own errors.
pub fn open_dataset(
    name: &str,
    data_dir: Option<&Path>,
    split_name: &str,
    bad_images: folder::BadImages,
) -> Result<Box<dyn Dataset>, Error> {
    let split = Split::parse(split_name)?;
    let dir = |default: &str| -> PathBuf {
        data_dir
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(default))
    };
    match name {
        "cifar10" => match cifar::Cifar10::open(&dir("."), split) {
            Ok(d) => Ok(Box::new(d)),
            Err(e @ Error::NotFound { .. }) => tfds_fallback(&dir("."), "cifar10", split, 10, e),
            Err(e) => Err(e),
        },
        "fashion_mnist" => match idx::FashionMnist::open(&dir("."), split) {
            Ok(d) => Ok(Box::new(d)),
            Err(e @ Error::NotFound { .. }) => {
                tfds_fallback(&dir("."), "fashion_mnist", split, 10, e)
            }
            Err(e) => Err(e),
        },
        "imagenet2012" | "imagenet2012_subset/1pct" | "imagenet2012_subset/10pct" => {
            let subset = match name {
                "imagenet2012_subset/1pct" => tfrecord::Subset::OnePercent,
                "imagenet2012_subset/10pct" => tfrecord::Subset::TenPercent,
                _ => tfrecord::Subset::Full,
            };
            Ok(Box::new(tfrecord::TfdsImages::open(
                &dir("."),
                split_name,
                subset,
            )?))
        }
        other => {
            let p = Path::new(other);
            let in_bucket = crate::storage::Location::from_path(p).is_ok_and(|l| !l.is_local());
            // A folder named by --dataset (local or gs://, s3://), else the
            // folder of that name under --data_dir.
            let under_data_dir = data_dir
                .filter(|_| !in_bucket && !p.is_absolute() && !p.is_dir())
                .map(|d| d.join(other))
                .filter(|d| {
                    crate::storage::Location::from_path(d)
                        .and_then(|l| crate::storage::is_dir(&l))
                        .unwrap_or(false)
                });
            if let Some(d) = under_data_dir {
                Ok(Box::new(folder::ImageFolder::open(&d, split, bad_images)?))
            } else if in_bucket || p.is_dir() {
                Ok(Box::new(folder::ImageFolder::open(p, split, bad_images)?))
            } else {
                Err(Error::Config(format!(
                    "unknown --dataset '{other}': use cifar10, fashion_mnist, imagenet2012, \
                     imagenet2012_subset/1pct, imagenet2012_subset/10pct or the path of an image folder"
                )))
            }
        }
    }
}

/// Tries TFDS TFRecord shards of `name` after the native files were not
/// found; reports the native error when the shards are missing too.
fn tfds_fallback(
    dir: &Path,
    name: &str,
    split: Split,
    num_classes: usize,
    native: Error,
) -> Result<Box<dyn Dataset>, Error> {
    let split_name = if split == Split::Train {
        "train"
    } else {
        "test"
    };
    match tfrecord::TfdsImages::open_tfds(dir, name, split_name, num_classes) {
        Ok(d) => Ok(Box::new(d)),
        Err(Error::NotFound { .. }) => Err(native),
        Err(e) => Err(e),
    }
}

/// A dataset held in memory: decoded images and labels (for tests, small
/// custom datasets and cached splits).
#[derive(Debug, Clone)]
pub struct InMemory {
    examples: Vec<Example>,
    num_classes: usize,
    name: String,
}

impl InMemory {
    /// Wraps `examples`; labels must lie in `0..num_classes`.
    ///
    /// # Errors
    /// [`Error::Config`] for a label outside the range.
    pub fn new(examples: Vec<Example>, num_classes: usize, name: &str) -> Result<Self, Error> {
        if let Some((i, e)) = examples
            .iter()
            .enumerate()
            .find(|(_, e)| e.label < 0 || e.label as usize >= num_classes)
        {
            return Err(Error::Config(format!(
                "{name}: example {i} has label {} outside 0..{num_classes}",
                e.label
            )));
        }
        Ok(InMemory {
            examples,
            num_classes,
            name: name.to_string(),
        })
    }

    /// Reads every example of `ds` into memory (`--cache_dataset`).
    ///
    /// # Errors
    /// The first reader error.
    pub fn cache(ds: &dyn Dataset) -> Result<Self, Error> {
        let examples = (0..ds.len())
            .map(|i| ds.get(i))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(InMemory {
            examples,
            num_classes: ds.num_classes(),
            name: format!("cached {}", ds.describe()),
        })
    }
}

impl Dataset for InMemory {
    fn len(&self) -> usize {
        self.examples.len()
    }

    fn num_classes(&self) -> usize {
        self.num_classes
    }

    fn get(&self, index: usize) -> Result<Example, Error> {
        self.examples.get(index).cloned().ok_or_else(|| {
            Error::Config(format!(
                "example index {index} out of range ({} examples in {})",
                self.examples.len(),
                self.name
            ))
        })
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}

/// The fixed per-class labelled subset of `--labeled_percent`: for every
/// class c with n_c examples, the first ⌈p·n_c/100⌉ of them in dataset
/// order (CIFAR-10 at 10 %: 500 of each class, 5,000 in all). Returns the
/// dataset indices in increasing order.
///
/// # Errors
/// [`Error::Config`] for a percentage outside (0, 100], and the reader's
/// errors.
pub fn labelled_subset(ds: &dyn Dataset, percent: f64) -> Result<Vec<usize>, Error> {
    if !(percent > 0.0 && percent <= 100.0) {
        return Err(Error::Config(format!(
            "--labeled_percent={percent} must lie in (0, 100]"
        )));
    }
    let labels = (0..ds.len())
        .map(|i| ds.label(i))
        .collect::<Result<Vec<_>, _>>()?;
    let mut per_class = vec![0usize; ds.num_classes()];
    for &l in &labels {
        if let Some(c) = usize::try_from(l).ok().and_then(|l| per_class.get_mut(l)) {
            *c += 1;
        }
    }
    let quota: Vec<usize> = per_class
        .iter()
        .map(|&n| ((n as f64) * percent / 100.0 - 1e-9).ceil().max(0.0) as usize)
        .collect();
    let mut taken = vec![0usize; quota.len()];
    let mut out = Vec::new();
    for (i, &l) in labels.iter().enumerate() {
        if let Some(c) = usize::try_from(l).ok().filter(|&c| c < quota.len()) {
            if taken[c] < quota[c] {
                taken[c] += 1;
                out.push(i);
            }
        }
    }
    Ok(out)
}

/// The examples of another dataset at the given indices, in that order
/// (the labelled subset a fine-tuning run trains on).
pub struct Subset {
    inner: std::sync::Arc<dyn Dataset>,
    indices: Vec<usize>,
    name: String,
}

impl Subset {
    /// The examples `indices` of `inner`, described as `name`.
    pub fn new(inner: std::sync::Arc<dyn Dataset>, indices: Vec<usize>, name: &str) -> Subset {
        Subset {
            inner,
            indices,
            name: name.to_string(),
        }
    }

    fn inner_index(&self, index: usize) -> Result<usize, Error> {
        self.indices.get(index).copied().ok_or_else(|| {
            Error::Config(format!(
                "example index {index} out of range ({} examples in {})",
                self.indices.len(),
                self.name
            ))
        })
    }
}

impl Dataset for Subset {
    fn len(&self) -> usize {
        self.indices.len()
    }

    fn num_classes(&self) -> usize {
        self.inner.num_classes()
    }

    fn get(&self, index: usize) -> Result<Example, Error> {
        self.inner.get(self.inner_index(index)?)
    }

    fn label(&self, index: usize) -> Result<i32, Error> {
        self.inner.label(self.inner_index(index)?)
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}

#[cfg(test)]
mod subset_tests {
    use super::*;

    fn tiny(labels: &[i32]) -> InMemory {
        let ex = labels
            .iter()
            .map(|&label| Example {
                image: ImageU8 {
                    height: 1,
                    width: 1,
                    data: vec![0, 0, 0],
                },
                label,
            })
            .collect();
        InMemory::new(ex, 3, "tiny").expect("valid")
    }

    #[test]
    fn labelled_subset_takes_the_first_examples_of_each_class() {
        // Class 0: 4 examples, class 1: 3, class 2: 1.
        let ds = tiny(&[0, 1, 0, 2, 1, 0, 0, 1]);
        assert_eq!(
            labelled_subset(&ds, 50.0).expect("subset"),
            vec![0, 1, 2, 3, 4]
        );
        assert_eq!(labelled_subset(&ds, 25.0).expect("subset"), vec![0, 1, 3]);
        assert_eq!(labelled_subset(&ds, 100.0).expect("subset").len(), 8);
        assert!(labelled_subset(&ds, 0.0).is_err());
        let sub = Subset::new(std::sync::Arc::new(ds), vec![1, 3], "sub");
        assert_eq!(sub.len(), 2);
        assert_eq!(sub.label(1).expect("label"), 2);
        assert!(sub.get(2).is_err());
    }
}
