//! Image folders: one sub-folder per class holding JPEG or PNG files
//! (SIMCLR.md §13.7, custom datasets; preprocessing as §2).
//!
//! Layout: `root/train/<class>/*.jpg` and `root/val/<class>/*` (also
//! `validation/` or `test/` for the eval split). If `root` has no split
//! sub-folders, `root/<class>/*` is used for whichever split is asked for.
//! Classes are the sub-folder names in byte order, labelled 0, 1, …; files
//! within a class are in byte order too. Images are decoded on demand with
//! the `image` crate (JPEG and PNG only) and converted to 8-bit RGB.
//! `root` may be a `gs://`/`s3://` prefix: the folder is listed once on
//! open and each image is one GET when it is read.
//! Does not own augmentation or caching.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Dataset, Error, Example, ImageU8, Split};
use crate::storage::{self, Location};

/// What to do with a file that cannot be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadImages {
    /// Return [`Error::Decode`] naming the file (default).
    Fail,
    /// Count it and use the next decodable image of the dataset instead
    /// (deterministic, so batches keep their size). See
    /// [`ImageFolder::skipped`].
    Skip,
}

/// A folder-of-class-folders dataset split.
#[derive(Debug)]
pub struct ImageFolder {
    root: PathBuf,
    classes: Vec<String>,
    files: Vec<(PathBuf, i32)>,
    bad: BadImages,
    skipped: AtomicU64,
}

fn is_image(p: &Path) -> bool {
    matches!(
        p.extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .as_deref(),
        Some("jpg" | "jpeg" | "png")
    )
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut v = Vec::new();
    for e in rd {
        let e = e.map_err(|e| Error::io(dir, e))?;
        v.push(e.path());
    }
    v.sort();
    Ok(v)
}

impl ImageFolder {
    /// Lists the files of one split of `root` (a local folder or a bucket
    /// prefix).
    ///
    /// # Errors
    /// [`Error::NotFound`] when the split folder has no class folders with
    /// images; [`Error::Io`] when listing fails; storage errors.
    pub fn open(root: &Path, split: Split, bad: BadImages) -> Result<Self, Error> {
        let names: &[&str] = match split {
            Split::Train => &["train"],
            Split::Eval => &["val", "validation", "test"],
        };
        let not_found = || Error::NotFound {
            what: format!(
                "{} split folder",
                if split == Split::Train {
                    "training"
                } else {
                    "evaluation"
                }
            ),
            path: root.display().to_string(),
            hint: format!(
                "create {} with one sub-folder per class",
                names.join(" or ")
            ),
        };
        let loc = Location::from_path(root)?;
        if !loc.is_local() {
            return Self::open_cloud(&loc, names, bad, not_found);
        }
        let split_dir = names
            .iter()
            .map(|n| root.join(n))
            .find(|p| p.is_dir())
            .or_else(|| {
                let any_split = ["train", "val", "validation", "test"]
                    .iter()
                    .any(|n| root.join(n).is_dir());
                (!any_split).then(|| root.to_path_buf())
            })
            .ok_or_else(not_found)?;
        let mut classes = Vec::new();
        let mut files = Vec::new();
        for class_dir in sorted_entries(&split_dir)?
            .into_iter()
            .filter(|p| p.is_dir())
        {
            let label = classes.len() as i32;
            let name = class_dir
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let imgs: Vec<PathBuf> = sorted_entries(&class_dir)?
                .into_iter()
                .filter(|p| p.is_file() && is_image(p))
                .collect();
            classes.push(name);
            files.extend(imgs.into_iter().map(|p| (p, label)));
        }
        Self::finish(split_dir, classes, files, bad)
    }

    /// A folder in a bucket, from one recursive listing: the same layout
    /// and order as a local folder (classes and files in byte order).
    fn open_cloud(
        root: &Location,
        names: &[&str],
        bad: BadImages,
        not_found: impl Fn() -> Error,
    ) -> Result<Self, Error> {
        let entries = storage::list(root, true)?;
        let has_dir = |d: &str| {
            let p = format!("{d}/");
            entries.iter().any(|e| e.name.starts_with(&p))
        };
        let split = match names.iter().find(|n| has_dir(n)) {
            Some(n) => Some(*n),
            None if ["train", "val", "validation", "test"]
                .iter()
                .any(|n| has_dir(n)) =>
            {
                return Err(not_found())
            }
            None => None,
        };
        let mut by_class: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
        for e in &entries {
            let rest = match split {
                Some(sp) => match e.name.strip_prefix(sp).and_then(|r| r.strip_prefix('/')) {
                    Some(r) => r,
                    None => continue,
                },
                None => e.name.as_str(),
            };
            let Some((class, file)) = rest.split_once('/') else {
                continue;
            };
            let class_entry = by_class.entry(class).or_default();
            if !file.contains('/') && is_image(Path::new(file)) {
                class_entry.push(file);
            }
        }
        let split_loc = match split {
            Some(sp) => root.join(sp),
            None => root.clone(),
        };
        let mut classes = Vec::new();
        let mut files = Vec::new();
        for (label, (class, mut imgs)) in by_class.into_iter().enumerate() {
            imgs.sort_unstable();
            let class_loc = split_loc.join(class);
            files.extend(
                imgs.into_iter()
                    .map(|f| (class_loc.join(f).to_path_buf(), label as i32)),
            );
            classes.push(class.to_string());
        }
        Self::finish(split_loc.to_path_buf(), classes, files, bad)
    }

    fn finish(
        root: PathBuf,
        classes: Vec<String>,
        files: Vec<(PathBuf, i32)>,
        bad: BadImages,
    ) -> Result<Self, Error> {
        if files.is_empty() {
            return Err(Error::NotFound {
                what: "JPEG/PNG images in class sub-folders".into(),
                path: root.display().to_string(),
                hint: "put images in <split>/<class>/*.jpg|*.png".into(),
            });
        }
        Ok(ImageFolder {
            root,
            classes,
            files,
            bad,
            skipped: AtomicU64::new(0),
        })
    }

    /// Class names, index = label.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// Files and labels, in dataset order.
    pub fn files(&self) -> &[(PathBuf, i32)] {
        &self.files
    }

    /// Number of undecodable files skipped so far (with [`BadImages::Skip`]).
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }
}

/// Decodes a JPEG or PNG file to 8-bit RGB. `name` is used in errors.
/// JPEGs are decoded by libjpeg-turbo as TensorFlow decodes them by default
/// ([`super::jpeg`]); PNGs, and the CMYK JPEGs libjpeg does not turn into
/// RGB, by the `image` crate.
///
/// # Errors
/// [`Error::Decode`] naming the file.
pub fn decode_image(bytes: &[u8], name: &str) -> Result<ImageU8, Error> {
    if bytes.starts_with(&[0xFF, 0xD8]) {
        match super::jpeg::decode(bytes) {
            Ok(Some(img)) => return Ok(img),
            Ok(None) => {}
            Err(reason) => {
                return Err(Error::Decode {
                    path: name.to_string(),
                    reason,
                })
            }
        }
    }
    let img = image::load_from_memory(bytes).map_err(|e| Error::Decode {
        path: name.to_string(),
        reason: e.to_string(),
    })?;
    let rgb = img.into_rgb8();
    let (w, h) = rgb.dimensions();
    if w == 0 || h == 0 {
        return Err(Error::Decode {
            path: name.to_string(),
            reason: "image has zero size".into(),
        });
    }
    Ok(ImageU8 {
        height: h as usize,
        width: w as usize,
        data: rgb.into_raw(),
    })
}

fn load(path: &Path) -> Result<ImageU8, Error> {
    let bytes = match Location::from_path(path)? {
        Location::Local(_) => std::fs::read(path).map_err(|e| Error::io(path, e))?,
        cloud => storage::read(&cloud)?,
    };
    decode_image(&bytes, &path.display().to_string())
}

impl Dataset for ImageFolder {
    fn len(&self) -> usize {
        self.files.len()
    }

    fn num_classes(&self) -> usize {
        self.classes.len()
    }

    fn get(&self, index: usize) -> Result<Example, Error> {
        let n = self.files.len();
        if index >= n {
            return Err(Error::Config(format!(
                "example index {index} out of range ({n} images)"
            )));
        }
        let mut first_err = None;
        for k in 0..n {
            let (path, label) = &self.files[(index + k) % n];
            match load(path) {
                Ok(image) => {
                    return Ok(Example {
                        image,
                        label: *label,
                    })
                }
                Err(e @ Error::Decode { .. }) if self.bad == BadImages::Skip => {
                    self.skipped.fetch_add(1, Ordering::Relaxed);
                    first_err.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(first_err.unwrap_or_else(|| Error::NotFound {
            what: "a decodable image".into(),
            path: self.root.display().to_string(),
            hint: "no file of the folder could be decoded".into(),
        }))
    }

    fn describe(&self) -> String {
        format!("image folder {}", self.root.display())
    }
}
