//! CIFAR-10 in the official binary layout (SIMCLR.md §2.1: `cifar10`, train
//! 50,000 / test 10,000 images, 10 classes).
//!
//! Owns parsing of `data_batch_1.bin` … `data_batch_5.bin` (train) and
//! `test_batch.bin` (test): plain runs of 3,073-byte records, one label byte
//! (0–9) then the 1,024 red, 1,024 green and 1,024 blue bytes of a 32×32
//! image, each plane row-major. Records are converted to HWC RGB. The whole
//! split is held in memory (150 MB for train). Does not own augmentation.

use std::path::{Path, PathBuf};

use super::{Dataset, Error, Example, ImageU8, Split};

/// Image side length.
pub const SIZE: usize = 32;
/// Bytes of one image (3 planes of 32×32).
pub const IMAGE_BYTES: usize = SIZE * SIZE * 3;
/// Bytes of one record: the label byte plus the image.
pub const RECORD_BYTES: usize = IMAGE_BYTES + 1;
/// Number of classes.
pub const NUM_CLASSES: usize = 10;
/// File names of the training split, in order.
pub const TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
/// File name of the test split.
pub const TEST_FILE: &str = "test_batch.bin";

/// Parses the bytes of one CIFAR-10 `.bin` file into HWC images and labels.
///
/// Returns `(images, labels)` with `images.len() == 3072 * labels.len()`.
/// `name` is used in error messages.
///
/// # Errors
/// [`Error::Truncated`] when the length is not a multiple of 3,073 (naming the
/// incomplete record and its offset); [`Error::Corrupt`] for a label byte
/// above 9.
pub fn parse(bytes: &[u8], name: &str) -> Result<(Vec<u8>, Vec<u8>), Error> {
    let full = bytes.len() / RECORD_BYTES;
    let rest = bytes.len() % RECORD_BYTES;
    if rest != 0 {
        return Err(Error::Truncated {
            path: name.to_string(),
            record: full as u64,
            offset: (full * RECORD_BYTES) as u64,
            reason: format!(
                "file has {} bytes, not a multiple of the {RECORD_BYTES}-byte record; the last record has only {rest} bytes",
                bytes.len()
            ),
        });
    }
    let mut images = vec![0u8; full * IMAGE_BYTES];
    let mut labels = Vec::with_capacity(full);
    for (r, rec) in bytes.chunks_exact(RECORD_BYTES).enumerate() {
        let label = rec[0];
        if label as usize >= NUM_CLASSES {
            return Err(Error::Corrupt {
                path: name.to_string(),
                record: r as u64,
                offset: (r * RECORD_BYTES) as u64,
                reason: format!(
                    "label byte {label} is not in 0..=9; this is not a CIFAR-10 binary file"
                ),
            });
        }
        labels.push(label);
        let planes = &rec[1..];
        let out = &mut images[r * IMAGE_BYTES..(r + 1) * IMAGE_BYTES];
        for p in 0..SIZE * SIZE {
            out[3 * p] = planes[p];
            out[3 * p + 1] = planes[SIZE * SIZE + p];
            out[3 * p + 2] = planes[2 * SIZE * SIZE + p];
        }
    }
    Ok((images, labels))
}

/// Reads and parses one CIFAR-10 `.bin` file. See [`parse`].
///
/// # Errors
/// [`Error::Io`] plus those of [`parse`].
pub fn read_file(path: &Path) -> Result<(Vec<u8>, Vec<u8>), Error> {
    let loc = crate::storage::Location::from_path(path)?;
    let bytes = if loc.is_local() {
        std::fs::read(path).map_err(|e| Error::io(path, e))?
    } else {
        crate::storage::read(&loc)?
    };
    parse(&bytes, &path.display().to_string())
}

/// One split of CIFAR-10, fully decoded in memory.
#[derive(Debug, Clone)]
pub struct Cifar10 {
    images: Vec<u8>,
    labels: Vec<u8>,
    describe: String,
}

impl Cifar10 {
    /// Opens a split. `dir` is either the folder holding the `.bin` files or
    /// a folder containing `cifar-10-batches-bin/`.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the files are absent; reader errors otherwise.
    pub fn open(dir: &Path, split: Split) -> Result<Self, Error> {
        let base = locate(dir)?;
        let files: Vec<PathBuf> = match split {
            Split::Train => TRAIN_FILES.iter().map(|f| base.join(f)).collect(),
            Split::Eval => vec![base.join(TEST_FILE)],
        };
        let mut me = Self::from_files(&files)?;
        me.describe = format!(
            "cifar10/{} ({})",
            if split == Split::Train {
                "train"
            } else {
                "test"
            },
            base.display()
        );
        Ok(me)
    }

    /// Reads the given `.bin` files, concatenated in order.
    ///
    /// # Errors
    /// [`Error::NotFound`] for a missing file; reader errors otherwise.
    pub fn from_files(files: &[PathBuf]) -> Result<Self, Error> {
        let mut images = Vec::new();
        let mut labels = Vec::new();
        for f in files {
            if !is_file(f)? {
                return Err(Error::NotFound {
                    what: "CIFAR-10 binary file".into(),
                    path: f.display().to_string(),
                    hint: "point --data_dir at the folder holding data_batch_1.bin … test_batch.bin (cifar-10-batches-bin)".into(),
                });
            }
            let (im, lb) = read_file(f)?;
            images.extend_from_slice(&im);
            labels.extend_from_slice(&lb);
        }
        Ok(Cifar10 {
            images,
            labels,
            describe: format!("cifar10 ({} files)", files.len()),
        })
    }

    /// All labels in file order.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// The HWC bytes of image `index` (3,072 bytes), or `None` when out of range.
    pub fn image_bytes(&self, index: usize) -> Option<&[u8]> {
        self.images
            .get(index * IMAGE_BYTES..(index + 1) * IMAGE_BYTES)
    }
}

/// A local file, or an object in a bucket (bucket and network errors are
/// reported, not taken for a missing file).
fn is_file(p: &Path) -> Result<bool, Error> {
    let loc = crate::storage::Location::from_path(p)?;
    if loc.is_local() {
        return Ok(p.is_file());
    }
    Ok(crate::storage::exists(&loc)?)
}

fn locate(dir: &Path) -> Result<PathBuf, Error> {
    for cand in [
        dir.join("cifar-10-batches-bin"),
        dir.to_path_buf(),
        dir.join("cifar10").join("cifar-10-batches-bin"),
    ] {
        if is_file(&cand.join(TEST_FILE))? || is_file(&cand.join(TRAIN_FILES[0]))? {
            return Ok(cand);
        }
    }
    Err(Error::NotFound {
        what: "CIFAR-10 binary files (data_batch_1.bin … test_batch.bin)".into(),
        path: dir.display().to_string(),
        hint: "pass --data_dir pointing at the folder that holds cifar-10-batches-bin/".into(),
    })
}

impl Dataset for Cifar10 {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn num_classes(&self) -> usize {
        NUM_CLASSES
    }

    fn label(&self, index: usize) -> Result<i32, Error> {
        match self.labels.get(index) {
            Some(&l) => Ok(i32::from(l)),
            None => self.get(index).map(|e| e.label),
        }
    }

    fn get(&self, index: usize) -> Result<Example, Error> {
        match (self.image_bytes(index), self.labels.get(index)) {
            (Some(bytes), Some(&label)) => Ok(Example {
                image: ImageU8 {
                    height: SIZE,
                    width: SIZE,
                    data: bytes.to_vec(),
                },
                label: label as i32,
            }),
            _ => Err(Error::Config(format!(
                "example index {index} out of range for {} with {} examples",
                self.describe,
                self.labels.len()
            ))),
        }
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}
