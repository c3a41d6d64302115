//! Every path a user gives, as one [`Location`]: a local path (plain or
//! `file:///abs/path`), `gs://bucket/prefix` or `s3://bucket/prefix`.
//!
//! The rest of the crate reads and writes through this module's synchronous
//! functions; cloud objects go through the `object_store` crate on an
//! internal tokio runtime (see `cloud`). What holds on both kinds of storage:
//! - [`put`] is atomic per object: a reader sees the old bytes or the new
//!   ones, never a part (local: temp file, fsync, rename; object stores: one
//!   upload that becomes visible when complete).
//! - Nothing is appended or renamed: a growing file (TensorBoard events,
//!   `metrics.jsonl`) is written as whole objects.
//! - Requests are retried a bounded number of times with exponential
//!   backoff; errors name the URL and say what to do.
//!
//! This module does not know any file format; callers verify their own
//! checksums (safetensors CRCs, TFRecord CRCs, tensor-bundle CRCs).

mod cloud;
mod reader;

pub use reader::{open_reader, ReadAhead};

use std::fmt;
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Errors of the storage layer; each names the URL and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A string that is not a path or a supported URL.
    #[error("'{url}' is not a valid location: {detail}")]
    InvalidUrl {
        /// What was given.
        url: String,
        /// Why it is invalid and what would be valid.
        detail: String,
    },
    /// The object or file does not exist.
    #[error("{url} does not exist{hint}")]
    NotFound {
        /// The location.
        url: String,
        /// Extra advice (may be empty).
        hint: String,
    },
    /// The bucket itself does not exist.
    #[error("bucket '{bucket}' of {url} does not exist (or is not visible with the credentials used: {credentials}); check the bucket name")]
    NoBucket {
        /// The location.
        url: String,
        /// Bucket name.
        bucket: String,
        /// The credentials used and where they came from.
        credentials: String,
    },
    /// No usable credentials.
    #[error("no usable credentials for {url}: {detail}")]
    NoCredentials {
        /// The location.
        url: String,
        /// What was looked at and how to provide credentials.
        detail: String,
    },
    /// The server refused the request.
    #[error("access to {url} was denied ({detail}); credentials used: {credentials}. Grant the account access to the bucket or use other credentials")]
    AccessDenied {
        /// The location.
        url: String,
        /// The server's message.
        detail: String,
        /// The credentials used and where they came from.
        credentials: String,
    },
    /// An object whose length or content is not what it should be.
    #[error("{url} is truncated or corrupt: {detail}")]
    Corrupt {
        /// The location.
        url: String,
        /// What was found.
        detail: String,
    },
    /// The server could not be reached or kept failing.
    #[error("network failure on {url} after {attempts} attempts: {detail}. Check the connection (and the endpoint, if one is set) and try again")]
    Network {
        /// The location.
        url: String,
        /// How many attempts were made.
        attempts: usize,
        /// The last failure.
        detail: String,
    },
    /// A local file system error.
    #[error("{url}: {source}")]
    Io {
        /// The location.
        url: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Anything else the object store reported.
    #[error("{url}: {detail}")]
    Other {
        /// The location.
        url: String,
        /// The message.
        detail: String,
    },
}

impl Error {
    /// True when the file or object (not the bucket) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }
}

/// Result of this module.
pub type Result<T> = std::result::Result<T, Error>;

/// Which object store a cloud location is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Google Cloud Storage, `gs://`.
    Gcs,
    /// Amazon S3 or an S3-compatible server, `s3://`.
    S3,
}

impl Scheme {
    /// `"gs"` or `"s3"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Gcs => "gs",
            Scheme::S3 => "s3",
        }
    }
}

/// A parsed path: a local file or directory, or an object (or prefix) in a
/// bucket. Cloud keys never start or end with `/`; the empty key is the
/// bucket's root.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Location {
    /// A local path.
    Local(PathBuf),
    /// `gs://bucket/key` or `s3://bucket/key`.
    Cloud {
        /// Which store.
        scheme: Scheme,
        /// Bucket name.
        bucket: String,
        /// Object key or prefix, without leading or trailing `/`.
        key: String,
    },
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::Cloud {
                scheme,
                bucket,
                key,
            } if key.is_empty() => write!(f, "{}://{bucket}", scheme.as_str()),
            Location::Cloud {
                scheme,
                bucket,
                key,
            } => write!(f, "{}://{bucket}/{key}", scheme.as_str()),
        }
    }
}

fn invalid(url: &str, detail: impl Into<String>) -> Error {
    Error::InvalidUrl {
        url: url.to_string(),
        detail: detail.into(),
    }
}

impl Location {
    /// Parses `gs://bucket/prefix`, `s3://bucket/prefix`, `file:///abs/path`
    /// or a plain local path.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] for another scheme (`http://`, `az://`, …), a
    /// missing or malformed bucket name, a `file://` URL that is not
    /// absolute, or `.`/`..` segments in a key.
    pub fn parse(s: &str) -> Result<Location> {
        if let Some(rest) = s.strip_prefix("file://") {
            if !rest.starts_with('/') {
                return Err(invalid(
                    s,
                    "a file:// URL takes an absolute path (file:///home/me/data); \
                     write a relative path without file://",
                ));
            }
            return Ok(Location::Local(PathBuf::from(rest)));
        }
        let (scheme, rest) = if let Some(r) = s.strip_prefix("gs://") {
            (Scheme::Gcs, r)
        } else if let Some(r) = s.strip_prefix("s3://") {
            (Scheme::S3, r)
        } else {
            if let Some(i) = s.find("://") {
                let scheme = &s[..i];
                if !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric()) {
                    return Err(invalid(
                        s,
                        format!(
                            "the scheme '{scheme}://' is not supported; use gs://bucket/path, \
                             s3://bucket/path, file:///abs/path or a local path"
                        ),
                    ));
                }
            }
            if s.is_empty() {
                return Err(invalid(s, "the path is empty"));
            }
            return Ok(Location::Local(PathBuf::from(s)));
        };
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        check_bucket(s, scheme, bucket)?;
        let key = key.trim_matches('/');
        let mut parts = vec![];
        for seg in key.split('/') {
            match seg {
                "" => {}
                "." | ".." => {
                    return Err(invalid(
                        s,
                        "'.' and '..' are not allowed in an object key; write the full key",
                    ))
                }
                p => parts.push(p),
            }
        }
        Ok(Location::Cloud {
            scheme,
            bucket: bucket.to_string(),
            key: parts.join("/"),
        })
    }

    /// The location a `Path` stands for: paths given on the command line are
    /// kept as `PathBuf`s, and a `gs://…`/`s3://…` string survives that
    /// unchanged.
    ///
    /// # Errors
    /// As [`Location::parse`]; a non-UTF-8 path is always local.
    pub fn from_path(p: &Path) -> Result<Location> {
        match p.to_str() {
            Some(s) => Location::parse(s),
            None => Ok(Location::Local(p.to_path_buf())),
        }
    }

    /// True for a local path.
    pub fn is_local(&self) -> bool {
        matches!(self, Location::Local(_))
    }

    /// The local path, when this is one.
    pub fn as_local(&self) -> Option<&Path> {
        match self {
            Location::Local(p) => Some(p),
            Location::Cloud { .. } => None,
        }
    }

    /// A `PathBuf` that [`Location::from_path`] turns back into `self` (for
    /// the crate's APIs that carry paths).
    pub fn to_path_buf(&self) -> PathBuf {
        match self {
            Location::Local(p) => p.clone(),
            c => PathBuf::from(c.to_string()),
        }
    }

    /// `self/name`; `name` may contain `/`.
    pub fn join(&self, name: &str) -> Location {
        match self {
            Location::Local(p) => Location::Local(p.join(name)),
            Location::Cloud {
                scheme,
                bucket,
                key,
            } => {
                let name = name.trim_matches('/');
                let key = if key.is_empty() {
                    name.to_string()
                } else if name.is_empty() {
                    key.clone()
                } else {
                    format!("{key}/{name}")
                };
                Location::Cloud {
                    scheme: *scheme,
                    bucket: bucket.clone(),
                    key,
                }
            }
        }
    }

    /// The last component (file or object name); `None` at a bucket root.
    pub fn file_name(&self) -> Option<String> {
        match self {
            Location::Local(p) => p.file_name().map(|n| n.to_string_lossy().into_owned()),
            Location::Cloud { key, .. } if key.is_empty() => None,
            Location::Cloud { key, .. } => key.rsplit('/').next().map(str::to_string),
        }
    }

    /// The enclosing directory or prefix; `None` at a bucket root.
    pub fn parent(&self) -> Option<Location> {
        match self {
            Location::Local(p) => p.parent().map(|q| Location::Local(q.to_path_buf())),
            Location::Cloud { key, .. } if key.is_empty() => None,
            Location::Cloud {
                scheme,
                bucket,
                key,
            } => Some(Location::Cloud {
                scheme: *scheme,
                bucket: bucket.clone(),
                key: key.rsplit_once('/').map_or("", |(a, _)| a).to_string(),
            }),
        }
    }
}

fn check_bucket(url: &str, scheme: Scheme, bucket: &str) -> Result<()> {
    if bucket.is_empty() {
        return Err(invalid(
            url,
            format!("no bucket name; write {}://BUCKET/path", scheme.as_str()),
        ));
    }
    let ok_chars = bucket
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'));
    let ends_ok = bucket
        .chars()
        .next()
        .zip(bucket.chars().last())
        .is_some_and(|(a, b)| a.is_ascii_alphanumeric() && b.is_ascii_alphanumeric());
    if !ok_chars || !ends_ok || bucket.len() < 3 || bucket.len() > 222 {
        return Err(invalid(
            url,
            format!(
                "'{bucket}' is not a valid bucket name (3 to 63 lowercase letters, digits, \
                 '-', '_' or '.', starting and ending with a letter or digit)"
            ),
        ));
    }
    Ok(())
}

/// One file or object found by [`list`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its name relative to the listed directory or prefix (may contain `/`
    /// for recursive listings).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
}

fn io_error(loc: &Location, source: std::io::Error) -> Error {
    if source.kind() == std::io::ErrorKind::NotFound {
        Error::NotFound {
            url: loc.to_string(),
            hint: String::new(),
        }
    } else {
        Error::Io {
            url: loc.to_string(),
            source,
        }
    }
}

/// The whole content of a file or object.
///
/// # Errors
/// [`Error::NotFound`], [`Error::NoBucket`], credential, network and
/// [`Error::Corrupt`] (fewer bytes than the object's size) errors.
pub fn read(loc: &Location) -> Result<Vec<u8>> {
    match loc {
        Location::Local(p) => std::fs::read(p).map_err(|e| io_error(loc, e)),
        Location::Cloud { .. } => cloud::read(loc, None),
    }
}

/// The UTF-8 text of a file or object.
///
/// # Errors
/// As [`read`], and [`Error::Corrupt`] for bytes that are not UTF-8.
pub fn read_to_string(loc: &Location) -> Result<String> {
    String::from_utf8(read(loc)?).map_err(|e| Error::Corrupt {
        url: loc.to_string(),
        detail: format!("not UTF-8 text ({e})"),
    })
}

/// Bytes `range` of a file or object (one ranged GET on object stores).
///
/// # Errors
/// As [`read`]; [`Error::Corrupt`] when the range lies beyond the end.
pub fn read_range(loc: &Location, range: Range<u64>) -> Result<Vec<u8>> {
    match loc {
        Location::Local(p) => {
            use std::io::{Read, Seek, SeekFrom};
            let mut f = std::fs::File::open(p).map_err(|e| io_error(loc, e))?;
            f.seek(SeekFrom::Start(range.start))
                .map_err(|e| io_error(loc, e))?;
            let len = usize::try_from(range.end.saturating_sub(range.start)).unwrap_or(usize::MAX);
            let mut buf = vec![0u8; len];
            let mut got = 0;
            while got < len {
                let n = f.read(&mut buf[got..]).map_err(|e| io_error(loc, e))?;
                if n == 0 {
                    return Err(Error::Corrupt {
                        url: loc.to_string(),
                        detail: format!(
                            "bytes {}..{} were asked for but the file ends at {}",
                            range.start,
                            range.end,
                            range.start + got as u64
                        ),
                    });
                }
                got += n;
            }
            Ok(buf)
        }
        Location::Cloud { .. } => cloud::read(loc, Some(range)),
    }
}

/// The size of a file or object.
///
/// # Errors
/// As [`read`].
pub fn size(loc: &Location) -> Result<u64> {
    match loc {
        Location::Local(p) => std::fs::metadata(p)
            .map(|m| m.len())
            .map_err(|e| io_error(loc, e)),
        Location::Cloud { .. } => cloud::size(loc),
    }
}

/// Whether a file or object exists at `loc` (a local directory counts).
///
/// # Errors
/// Credential, bucket and network errors; never [`Error::NotFound`].
pub fn exists(loc: &Location) -> Result<bool> {
    match loc {
        Location::Local(p) => Ok(p.exists()),
        Location::Cloud { .. } => match cloud::size(loc) {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        },
    }
}

/// Whether `loc` is a directory: a local directory, or a prefix with at
/// least one object under it.
///
/// # Errors
/// Credential, bucket and network errors.
pub fn is_dir(loc: &Location) -> Result<bool> {
    match loc {
        Location::Local(p) => Ok(p.is_dir()),
        Location::Cloud { .. } => cloud::has_children(loc),
    }
}

/// Writes `bytes` to `loc` atomically, creating local parent directories.
/// A reader sees either the previous content or all of `bytes`.
///
/// # Errors
/// Local I/O errors; object-store credential, access and network errors.
pub fn put(loc: &Location, bytes: Vec<u8>) -> Result<()> {
    match loc {
        Location::Local(p) => write_local_atomic(loc, p, |f| f.write_all(&bytes)),
        Location::Cloud { .. } => cloud::put(loc, bytes),
    }
}

/// Like [`put`] with the content produced by `fill` writing into a local
/// temp file (or into memory for an object store).
///
/// # Errors
/// As [`put`], and what `fill` returns.
pub fn put_with(
    loc: &Location,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    match loc {
        Location::Local(p) => write_local_atomic(loc, p, |f| fill(f)),
        Location::Cloud { .. } => {
            let mut buf = vec![];
            fill(&mut buf).map_err(|e| Error::Io {
                url: loc.to_string(),
                source: e,
            })?;
            cloud::put(loc, buf)
        }
    }
}

fn write_local_atomic(
    loc: &Location,
    path: &Path,
    fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| invalid(&loc.to_string(), "a file name is needed"))?
        .to_string_lossy()
        .into_owned();
    std::fs::create_dir_all(&dir).map_err(|e| io_error(loc, e))?;
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let res = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        fill(&mut f)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::Io {
            url: loc.to_string(),
            source: e,
        });
    }
    Ok(())
}

/// The files or objects directly in the directory or prefix `loc`
/// (`recursive`: everything below it, names relative to `loc` with `/`),
/// sorted by name. A missing local directory or an empty prefix gives an
/// empty list.
///
/// # Errors
/// Local I/O errors other than not-found; object-store bucket, credential
/// and network errors.
pub fn list(loc: &Location, recursive: bool) -> Result<Vec<Entry>> {
    let mut out = match loc {
        Location::Local(p) => {
            let mut out = vec![];
            list_local(loc, p, "", recursive, &mut out)?;
            out
        }
        Location::Cloud { .. } => cloud::list(loc, recursive)?,
    };
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn list_local(
    loc: &Location,
    dir: &Path,
    rel: &str,
    recursive: bool,
    out: &mut Vec<Entry>,
) -> Result<()> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error(loc, e)),
    };
    for e in rd {
        let e = e.map_err(|e| io_error(loc, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let rel_name = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let md = e.metadata().map_err(|e| io_error(loc, e))?;
        if md.is_dir() {
            if recursive {
                list_local(loc, &e.path(), &rel_name, true, out)?;
            }
        } else {
            out.push(Entry {
                name: rel_name,
                size: md.len(),
            });
        }
    }
    Ok(())
}

/// The sub-directories directly in the directory or prefix `loc` (on an
/// object store: the prefixes with objects below them), sorted by name. A
/// missing local directory or an empty prefix gives an empty list.
///
/// # Errors
/// As [`list`].
pub fn list_dirs(loc: &Location) -> Result<Vec<String>> {
    let mut out = match loc {
        Location::Local(p) => {
            let rd = match std::fs::read_dir(p) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
                Err(e) => return Err(io_error(loc, e)),
            };
            let mut out = vec![];
            for e in rd {
                let e = e.map_err(|e| io_error(loc, e))?;
                if e.path().is_dir() {
                    out.push(e.file_name().to_string_lossy().into_owned());
                }
            }
            out
        }
        Location::Cloud { .. } => cloud::list_dirs(loc)?,
    };
    out.sort();
    Ok(out)
}

/// Deletes a file or object; one that does not exist is not an error.
///
/// # Errors
/// Local I/O errors; object-store access and network errors.
pub fn delete(loc: &Location) -> Result<()> {
    match loc {
        Location::Local(p) => match std::fs::remove_file(p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error(loc, e)),
        },
        Location::Cloud { .. } => cloud::delete(loc),
    }
}

/// Deletes a local directory tree, or every object below a prefix; a
/// missing one is not an error.
///
/// # Errors
/// Local I/O errors; object-store access and network errors.
pub fn delete_prefix(loc: &Location) -> Result<()> {
    match loc {
        Location::Local(p) => match std::fs::remove_dir_all(p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error(loc, e)),
        },
        Location::Cloud { .. } => {
            for e in list(loc, true)? {
                delete(&loc.join(&e.name))?;
            }
            Ok(())
        }
    }
}

/// Creates the local directory `loc` (and its parents); nothing to do on an
/// object store, where prefixes exist through their objects.
///
/// # Errors
/// Local I/O errors.
pub fn create_dir_all(loc: &Location) -> Result<()> {
    match loc {
        Location::Local(p) => std::fs::create_dir_all(p).map_err(|e| io_error(loc, e)),
        Location::Cloud { .. } => Ok(()),
    }
}

/// Copies every file below the local directory `from` to `to` (a local
/// directory or a bucket prefix), keeping relative names; returns how many
/// files were copied.
///
/// # Errors
/// As [`read`] and [`put`].
pub fn upload_dir(from: &Path, to: &Location) -> Result<usize> {
    let src = Location::Local(from.to_path_buf());
    let entries = list(&src, true)?;
    for e in &entries {
        put(&to.join(&e.name), read(&src.join(&e.name))?)?;
    }
    Ok(entries.len())
}

/// Copies every file or object below `from` into the local directory `to`,
/// keeping relative names; returns how many were copied.
///
/// # Errors
/// As [`read`] and [`put`].
pub fn download_dir(from: &Location, to: &Path) -> Result<usize> {
    let dest = Location::Local(to.to_path_buf());
    let entries = list(from, true)?;
    for e in &entries {
        put(&dest.join(&e.name), read(&from.join(&e.name))?)?;
    }
    Ok(entries.len())
}

/// A fresh local directory under the system's temporary directory,
/// removed with its contents when the returned value is dropped (staging
/// for writers that need a local folder before an upload).
///
/// # Errors
/// Local I/O errors.
pub fn staging_dir(label: &str) -> Result<StagingDir> {
    let path = std::env::temp_dir().join(format!(
        "simclr-{label}-{}-{}",
        std::process::id(),
        COPY_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&path).map_err(|e| Error::Io {
        url: path.display().to_string(),
        source: e,
    })?;
    Ok(StagingDir(path))
}

/// See [`staging_dir`].
#[derive(Debug)]
pub struct StagingDir(PathBuf);

impl StagingDir {
    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for StagingDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A local copy of `loc` for readers that need a file (memory maps,
/// third-party decoders): the path itself when local, otherwise the object
/// downloaded into a temporary file that lives as long as the returned
/// value.
///
/// # Errors
/// As [`read`]; local I/O errors writing the copy.
pub fn local_copy(loc: &Location) -> Result<LocalCopy> {
    match loc {
        Location::Local(p) => Ok(LocalCopy {
            path: p.clone(),
            _temp: None,
        }),
        Location::Cloud { .. } => {
            let bytes = read(loc)?;
            let dir = std::env::temp_dir();
            let name = format!(
                "simclr-{}-{}-{}",
                std::process::id(),
                COPY_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                loc.file_name().unwrap_or_default()
            );
            let path = dir.join(name);
            std::fs::write(&path, bytes).map_err(|e| Error::Io {
                url: path.display().to_string(),
                source: e,
            })?;
            Ok(LocalCopy {
                path: path.clone(),
                _temp: Some(TempFile(path)),
            })
        }
    }
}

static COPY_COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[derive(Debug)]
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A local file standing for a [`Location`] (see [`local_copy`]).
#[derive(Debug)]
pub struct LocalCopy {
    /// The local file.
    pub path: PathBuf,
    _temp: Option<TempFile>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cloud_urls_local_paths_and_file_urls() {
        let l = Location::parse("gs://my-bucket/a/b/").unwrap();
        assert_eq!(
            l,
            Location::Cloud {
                scheme: Scheme::Gcs,
                bucket: "my-bucket".into(),
                key: "a/b".into()
            }
        );
        assert_eq!(l.to_string(), "gs://my-bucket/a/b");
        assert_eq!(
            l.join("ckpt-1.safetensors").to_string(),
            "gs://my-bucket/a/b/ckpt-1.safetensors"
        );
        assert_eq!(l.parent().unwrap().to_string(), "gs://my-bucket/a");
        assert_eq!(l.file_name().as_deref(), Some("b"));
        let root = Location::parse("s3://bkt").unwrap();
        assert_eq!(root.to_string(), "s3://bkt");
        assert_eq!(root.join("x").to_string(), "s3://bkt/x");
        assert!(root.parent().is_none());
        assert_eq!(
            Location::parse("file:///tmp/x").unwrap(),
            Location::Local("/tmp/x".into())
        );
        assert_eq!(
            Location::parse("rel/dir").unwrap(),
            Location::Local("rel/dir".into())
        );
        let p = l.to_path_buf();
        assert_eq!(Location::from_path(&p).unwrap(), l);
        assert_eq!(Location::from_path(&p.join("x")).unwrap(), l.join("x"));
    }

    #[test]
    fn rejects_bad_urls_with_what_to_write() {
        for (url, want) in [
            ("http://host/x", "not supported"),
            ("az://c/x", "not supported"),
            ("gs:///x", "no bucket name"),
            ("s3://Bad_Bucket/x", "not a valid bucket name"),
            ("gs://bkt/../x", "'..'"),
            ("file://rel", "absolute path"),
            ("", "empty"),
        ] {
            let e = Location::parse(url).unwrap_err().to_string();
            assert!(e.contains(want), "{url}: {e}");
            assert!(e.contains(url), "{url}: {e}");
        }
    }

    #[test]
    fn local_put_is_atomic_and_list_read_range_delete_work() {
        let d = tempfile::tempdir().unwrap();
        let dir = Location::Local(d.path().join("sub"));
        let f = dir.join("a.bin");
        put(&f, b"hello world".to_vec()).unwrap();
        put_with(&dir.join("deep/b.txt"), |w| w.write_all(b"x")).unwrap();
        assert_eq!(read(&f).unwrap(), b"hello world");
        assert_eq!(read_range(&f, 6..11).unwrap(), b"world");
        assert!(read_range(&f, 6..20)
            .unwrap_err()
            .to_string()
            .contains("truncated"));
        assert_eq!(size(&f).unwrap(), 11);
        let names: Vec<_> = list(&dir, false)
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["a.bin"]);
        let names: Vec<_> = list(&dir, true)
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["a.bin", "deep/b.txt"]);
        assert!(exists(&f).unwrap());
        assert!(is_dir(&dir).unwrap());
        delete(&f).unwrap();
        delete(&f).unwrap();
        assert!(!exists(&f).unwrap());
        let e = read(&f).unwrap_err();
        assert!(e.is_not_found() && e.to_string().contains("a.bin"), "{e}");
        assert!(list(&dir.join("missing"), false).unwrap().is_empty());
    }
}
