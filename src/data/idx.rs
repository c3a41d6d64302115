//! Fashion-MNIST in the IDX format (`--dataset=fashion_mnist`; SIMCLR.md §2.1
//! value range and §2.6 eval path apply unchanged).
//!
//! Owns parsing of IDX files (`train-images-idx3-ubyte[.gz]`,
//! `train-labels-idx1-ubyte[.gz]`, `t10k-images-idx3-ubyte[.gz]`,
//! `t10k-labels-idx1-ubyte[.gz]`), gzip-compressed or raw. The 28×28
//! grayscale images are replicated to 3 channels. Debian's
//! `dataset-fashion-mnist` package installs these files under
//! `/usr/share/datasets/fashion-mnist/`, which is searched when no
//! `--data_dir` holds them.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{Dataset, Error, Example, ImageU8, Split};

/// An IDX array of unsigned bytes: dimensions and row-major data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// Dimensions (first = number of items).
    pub dims: Vec<usize>,
    /// Row-major bytes.
    pub data: Vec<u8>,
}

/// Parses the bytes of an IDX file of unsigned bytes (type code 0x08),
/// gunzipping first when the data starts with the gzip magic.
///
/// # Errors
/// [`Error::Corrupt`] for a bad magic number, type code or gzip stream;
/// [`Error::Truncated`] when the data is shorter than the header says.
pub fn parse(bytes: &[u8], name: &str) -> Result<IdxArray, Error> {
    let raw;
    let bytes = if bytes.len() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut out)
            .map_err(|e| Error::Corrupt {
                path: name.into(),
                record: 0,
                offset: 0,
                reason: format!("gzip stream is damaged: {e}"),
            })?;
        raw = out;
        &raw[..]
    } else {
        bytes
    };
    let corrupt = |reason: String| Error::Corrupt {
        path: name.into(),
        record: 0,
        offset: 0,
        reason,
    };
    if bytes.len() < 4 {
        return Err(Error::Truncated {
            path: name.into(),
            record: 0,
            offset: 0,
            reason: "file shorter than the 4-byte IDX magic".into(),
        });
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(corrupt(format!(
            "magic starts {:02x} {:02x}, expected 00 00: not an IDX file",
            bytes[0], bytes[1]
        )));
    }
    if bytes[2] != 0x08 {
        return Err(corrupt(format!(
            "element type code 0x{:02x}; only unsigned bytes (0x08) are supported",
            bytes[2]
        )));
    }
    let ndim = bytes[3] as usize;
    if ndim == 0 {
        return Err(corrupt("zero dimensions".into()));
    }
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(Error::Truncated {
            path: name.into(),
            record: 0,
            offset: 4,
            reason: format!("header declares {ndim} dimensions but the file ends first"),
        });
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|i| {
            u32::from_be_bytes([
                bytes[4 + 4 * i],
                bytes[5 + 4 * i],
                bytes[6 + 4 * i],
                bytes[7 + 4 * i],
            ]) as usize
        })
        .collect();
    let item: usize = dims[1..]
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| corrupt("dimensions overflow".into()))?;
    let total = dims[0]
        .checked_mul(item)
        .ok_or_else(|| corrupt("dimensions overflow".into()))?;
    let body = &bytes[header..];
    if body.len() < total {
        let complete = body.len() / item.max(1);
        return Err(Error::Truncated {
            path: name.into(),
            record: complete as u64,
            offset: (header + complete * item) as u64,
            reason: format!(
                "header declares {} items of {item} bytes, the file holds {} bytes of data",
                dims[0],
                body.len()
            ),
        });
    }
    Ok(IdxArray {
        dims,
        data: body[..total].to_vec(),
    })
}

/// Reads an IDX file (raw or gzip). See [`parse`].
///
/// # Errors
/// [`Error::Io`] plus those of [`parse`].
pub fn read_file(path: &Path) -> Result<IdxArray, Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse(&bytes, &path.display().to_string())
}

/// Fashion-MNIST (or MNIST) split in memory: 28×28 grayscale as RGB.
#[derive(Debug, Clone)]
pub struct FashionMnist {
    images: IdxArray,
    labels: Vec<u8>,
    describe: String,
}

/// Where Debian's `dataset-fashion-mnist` package puts the files.
pub const DEBIAN_DIR: &str = "/usr/share/datasets/fashion-mnist";

fn find(dirs: &[PathBuf], stem: &str) -> Option<PathBuf> {
    for d in dirs {
        for cand in [d.join(format!("{stem}.gz")), d.join(stem)] {
            if cand.is_file() {
                return Some(cand);
            }
        }
    }
    None
}

impl FashionMnist {
    /// Opens a split from `dir` (or `dir/fashion_mnist`, or the Debian
    /// package folder).
    ///
    /// # Errors
    /// [`Error::NotFound`] when the files are absent; [`Error::Corrupt`] when
    /// image and label counts differ or a label exceeds 9; reader errors.
    pub fn open(dir: &Path, split: Split) -> Result<Self, Error> {
        let prefix = if split == Split::Train {
            "train"
        } else {
            "t10k"
        };
        let dirs = vec![
            dir.to_path_buf(),
            dir.join("fashion_mnist"),
            dir.join("fashion-mnist"),
            PathBuf::from(DEBIAN_DIR),
        ];
        let not_found = |stem: &str| Error::NotFound {
            what: format!("Fashion-MNIST file {stem}[.gz]"),
            path: dir.display().to_string(),
            hint:
                "pass --data_dir holding the IDX files, or install Debian's dataset-fashion-mnist"
                    .into(),
        };
        let img_stem = format!("{prefix}-images-idx3-ubyte");
        let lbl_stem = format!("{prefix}-labels-idx1-ubyte");
        let ip = find(&dirs, &img_stem).ok_or_else(|| not_found(&img_stem))?;
        let lp = find(&dirs, &lbl_stem).ok_or_else(|| not_found(&lbl_stem))?;
        Self::from_files(&ip, &lp)
    }

    /// Reads an images file and a labels file.
    ///
    /// # Errors
    /// As [`FashionMnist::open`].
    pub fn from_files(images: &Path, labels: &Path) -> Result<Self, Error> {
        let im = read_file(images)?;
        let lb = read_file(labels)?;
        if im.dims.len() != 3 {
            return Err(Error::Corrupt {
                path: images.display().to_string(),
                record: 0,
                offset: 0,
                reason: format!(
                    "images must have 3 dimensions (N, H, W), found {:?}",
                    im.dims
                ),
            });
        }
        if lb.dims.len() != 1 || lb.dims[0] != im.dims[0] {
            return Err(Error::Corrupt {
                path: labels.display().to_string(),
                record: 0,
                offset: 0,
                reason: format!(
                    "labels have dimensions {:?} but there are {} images",
                    lb.dims, im.dims[0]
                ),
            });
        }
        if let Some(i) = lb.data.iter().position(|&l| l > 9) {
            return Err(Error::Corrupt {
                path: labels.display().to_string(),
                record: i as u64,
                offset: 8 + i as u64,
                reason: format!("label {} is not in 0..=9", lb.data[i]),
            });
        }
        Ok(FashionMnist {
            images: im,
            labels: lb.data,
            describe: format!("fashion_mnist ({})", images.display()),
        })
    }
}

impl Dataset for FashionMnist {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn num_classes(&self) -> usize {
        10
    }

    fn get(&self, index: usize) -> Result<Example, Error> {
        if index >= self.labels.len() {
            return Err(Error::Config(format!(
                "example index {index} out of range ({} images)",
                self.labels.len()
            )));
        }
        let (h, w) = (self.images.dims[1], self.images.dims[2]);
        let src = &self.images.data[index * h * w..(index + 1) * h * w];
        let data = src.iter().flat_map(|&g| [g, g, g]).collect();
        Ok(Example {
            image: ImageU8 {
                height: h,
                width: w,
                data,
            },
            label: self.labels[index] as i32,
        })
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}
