//! Native training checkpoints: `model_dir/ckpt-<step>.safetensors` plus
//! the index `model_dir/checkpoint.json` (newest last).
//!
//! A checkpoint is a named set of [`Tensor`]s (parameters, optimizer slots,
//! BN statistics, `global_step`, …) and a JSON blob (data-pipeline position,
//! run metadata). The file is plain safetensors, so Python's `safetensors`
//! reads it; its `__metadata__` holds `simclr.step`, `simclr.meta` (the JSON
//! blob), `simclr.header_crc32c` (CRC-32C of step and blob) and
//! `simclr.crc32c` (a JSON object name → CRC-32C of the tensor's bytes) so
//! that flipped bytes are detected, not only truncation.
//!
//! Writes are atomic: a temp file in the same directory is written, fsynced
//! and renamed, then the directory is fsynced; the index is replaced the same
//! way. [`latest`] skips an unreadable newest checkpoint and says which.
//!
//! `model_dir` may be a bucket (`gs://…`, `s3://…`, see [`crate::storage`]),
//! where nothing is renamed: the checkpoint object is uploaded first (an
//! object appears only once complete) and the index object last, so the
//! index never names a checkpoint whose data is missing. A save killed
//! between the two leaves a `ckpt-*.safetensors` object the index does not
//! name; readers ignore it and the next save deletes it.
//!
//! For tests of that claim, `SIMCLR_HANG_AFTER_CHECKPOINT_DATA=<step>` holds
//! the process between the two writes of that step's save (it says so on
//! stderr and waits to be killed), so that a kill lands inside the save
//! every time instead of by chance.

use super::{io_err, DType, Error, Result, Tensor};
use crate::crc32c;
use crate::storage::{self, Location};
use safetensors::tensor::{Dtype as StDtype, SafeTensors, View};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

/// Name of the index file in `model_dir`.
pub const INDEX_FILE: &str = "checkpoint.json";
const FORMAT: &str = "simclr-ckpt-1";

/// File name of the checkpoint of `step`: `ckpt-<step>.safetensors`.
pub fn file_name(step: u64) -> String {
    format!("ckpt-{step}.safetensors")
}

/// A loaded native checkpoint.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// The file it came from.
    pub path: PathBuf,
    /// Global step it was saved at.
    pub step: u64,
    /// The arrays, by name.
    pub tensors: BTreeMap<String, Tensor>,
    /// The JSON blob given to [`save`].
    pub meta: serde_json::Value,
}

/// What [`save`] did.
#[derive(Clone, Debug)]
pub struct Saved {
    /// The new checkpoint file.
    pub path: PathBuf,
    /// Older checkpoint files removed to keep `keep_checkpoint_max`.
    pub pruned: Vec<PathBuf>,
}

/// A checkpoint [`latest`] found unreadable and skipped.
#[derive(Clone, Debug)]
pub struct Skipped {
    /// The file.
    pub path: PathBuf,
    /// Why it was skipped.
    pub reason: String,
}

/// The newest readable checkpoint of a `model_dir`.
#[derive(Clone, Debug)]
pub struct Latest {
    /// Its file (checksums verified).
    pub path: PathBuf,
    /// Its step.
    pub step: u64,
    /// Newer checkpoints that were unreadable, newest first.
    pub skipped: Vec<Skipped>,
    /// The reader that verified it (holding its bytes when it lies in a
    /// bucket), so that [`Latest::load`] does not fetch it again.
    opened: Option<std::sync::Arc<Reader>>,
}

impl Latest {
    /// Loads the checkpoint from the bytes [`latest`] already read and
    /// verified (one download in all when it lies in a bucket).
    ///
    /// # Errors
    /// As [`load`].
    pub fn load(&self) -> Result<Checkpoint> {
        match &self.opened {
            Some(r) => load_from(r),
            None => load(&self.path),
        }
    }

    /// The reader that verified it (opened again only if it is shared).
    ///
    /// # Errors
    /// As [`Reader::open`].
    pub fn into_reader(self) -> Result<Reader> {
        match self.opened.map(std::sync::Arc::try_unwrap) {
            Some(Ok(r)) => Ok(r),
            _ => Reader::open(&self.path),
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct IndexFile {
    format: String,
    checkpoints: Vec<IndexEntry>,
}

#[derive(serde::Serialize, serde::Deserialize, Clone)]
struct IndexEntry {
    step: u64,
    file: String,
}

pub(crate) fn st_dtype(d: DType) -> Option<StDtype> {
    Some(match d {
        DType::Bool => StDtype::BOOL,
        DType::U8 => StDtype::U8,
        DType::I8 => StDtype::I8,
        DType::U16 => StDtype::U16,
        DType::I16 => StDtype::I16,
        DType::U32 => StDtype::U32,
        DType::I32 => StDtype::I32,
        DType::U64 => StDtype::U64,
        DType::I64 => StDtype::I64,
        DType::F16 => StDtype::F16,
        DType::BF16 => StDtype::BF16,
        DType::F32 => StDtype::F32,
        DType::F64 => StDtype::F64,
        DType::String => return None,
    })
}

pub(crate) fn from_st_dtype(d: StDtype) -> Option<DType> {
    Some(match d {
        StDtype::BOOL => DType::Bool,
        StDtype::U8 => DType::U8,
        StDtype::I8 => DType::I8,
        StDtype::U16 => DType::U16,
        StDtype::I16 => DType::I16,
        StDtype::U32 => DType::U32,
        StDtype::I32 => DType::I32,
        StDtype::U64 => DType::U64,
        StDtype::I64 => DType::I64,
        StDtype::F16 => DType::F16,
        StDtype::BF16 => DType::BF16,
        StDtype::F32 => DType::F32,
        StDtype::F64 => DType::F64,
        _ => return None,
    })
}

struct StView<'a> {
    dtype: StDtype,
    shape: Vec<usize>,
    bytes: &'a [u8],
}

impl View for StView<'_> {
    fn dtype(&self) -> StDtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

fn header_crc(step: &str, meta: &str) -> u32 {
    crc32c::extend(
        crc32c::extend(crc32c::value(step.as_bytes()), b"\n"),
        meta.as_bytes(),
    )
}

/// Writes a file atomically: `write` fills a temp file in the same
/// directory, which is then fsynced and renamed to `dir/name`; finally the
/// directory is fsynced.
pub(crate) fn write_atomic(
    dir: &Path,
    name: &str,
    write: impl FnOnce(&Path) -> Result<()>,
) -> Result<PathBuf> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = dir.join(format!(".{name}.tmp-{}-{nanos}", std::process::id()));
    let dest = dir.join(name);
    let result = (|| {
        write(&tmp)?;
        File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, &dest).map_err(io_err(&dest))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map(|()| dest)
}

fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|f| f.sync_all())
            .map_err(io_err(dir))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Saves `tensors` and `meta` as `model_dir/ckpt-<step>.safetensors`,
/// appends it to `checkpoint.json` (replacing an entry of the same step) and
/// removes the oldest checkpoints beyond `keep_checkpoint_max` (0 keeps all).
/// Creates `model_dir` when missing. String tensors are refused.
pub fn save(
    model_dir: &Path,
    step: u64,
    tensors: &BTreeMap<String, Tensor>,
    meta: &serde_json::Value,
    keep_checkpoint_max: usize,
) -> Result<Saved> {
    let dir = Location::from_path(model_dir)?;
    let mut views = Vec::with_capacity(tensors.len());
    let mut crcs = BTreeMap::new();
    for (name, t) in tensors {
        let dtype = st_dtype(t.dtype).ok_or_else(|| {
            Error::Invalid(format!(
                "tensor '{name}' is a {} tensor; native checkpoints hold numeric tensors only",
                t.dtype
            ))
        })?;
        t.check()
            .map_err(|e| Error::Invalid(format!("tensor '{name}': {e}")))?;
        let shape = t
            .dims
            .iter()
            .map(|&d| usize::try_from(d))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|_| Error::Invalid(format!("tensor '{name}' has dims too large")))?;
        crcs.insert(name.clone(), crc32c::value(&t.bytes));
        views.push((
            name.clone(),
            StView {
                dtype,
                shape,
                bytes: &t.bytes,
            },
        ));
    }
    let mut info = HashMap::new();
    info.insert("format".to_string(), FORMAT.to_string());
    info.insert("simclr.step".to_string(), step.to_string());
    info.insert("simclr.meta".to_string(), meta.to_string());
    info.insert(
        "simclr.header_crc32c".to_string(),
        header_crc(&step.to_string(), &meta.to_string()).to_string(),
    );
    info.insert(
        "simclr.crc32c".to_string(),
        serde_json::to_string(&crcs).map_err(|e| Error::Invalid(e.to_string()))?,
    );
    let name = file_name(step);
    if !dir.is_local() {
        let bytes = safetensors::serialize(views, Some(info))
            .map_err(|e| Error::Invalid(format!("cannot serialize checkpoint {name}: {e}")))?;
        return save_to_store(&dir, step, &name, bytes, keep_checkpoint_max);
    }
    std::fs::create_dir_all(model_dir).map_err(io_err(model_dir))?;
    remove_stale_temp_files(model_dir);
    let path = write_atomic(model_dir, &name, |tmp| {
        safetensors::serialize_to_file(views, Some(info), tmp).map_err(|e| Error::Io {
            path: tmp.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        })
    })?;
    hang_if_asked(step);

    let mut entries = read_index(model_dir).unwrap_or_else(|_| scan_dir(model_dir));
    entries.retain(|e| e.step != step);
    entries.push(IndexEntry { step, file: name });
    entries.sort_by_key(|e| e.step);
    let mut pruned = vec![];
    if keep_checkpoint_max > 0 && entries.len() > keep_checkpoint_max {
        let drop = entries.len() - keep_checkpoint_max;
        pruned = entries
            .drain(..drop)
            .map(|e| model_dir.join(e.file))
            .collect();
    }
    write_index(model_dir, &entries)?;
    for p in &pruned {
        if let Err(e) = std::fs::remove_file(p) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(Error::Io {
                    path: p.clone(),
                    source: e,
                });
            }
        }
    }
    if !pruned.is_empty() {
        sync_dir(model_dir)?;
    }
    Ok(Saved { path, pruned })
}

/// The test hook of the module docs: with
/// `SIMCLR_HANG_AFTER_CHECKPOINT_DATA=<step>`, the save of `step` stops
/// after its data is written and before the index names it, until the
/// process is killed.
fn hang_if_asked(step: u64) {
    let asked = std::env::var("SIMCLR_HANG_AFTER_CHECKPOINT_DATA")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    if asked == Some(step) {
        eprintln!(
            "SIMCLR_HANG_AFTER_CHECKPOINT_DATA: the data of checkpoint {step} is written, \
             its index entry is not; waiting to be killed"
        );
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

/// [`save`] into a bucket: the checkpoint object, then the index object,
/// then deletions (pruned checkpoints and orphans of killed saves).
fn save_to_store(
    dir: &Location,
    step: u64,
    name: &str,
    bytes: Vec<u8>,
    keep_checkpoint_max: usize,
) -> Result<Saved> {
    let indexed = read_index_at(dir);
    let present = scan_at(dir)?;
    let ckpt = dir.join(name);
    storage::put(&ckpt, bytes)?;
    hang_if_asked(step);
    let mut entries = match &indexed {
        Ok(e) => e.clone(),
        Err(_) => present.clone(),
    };
    entries.retain(|e| e.step != step);
    entries.push(IndexEntry {
        step,
        file: name.to_string(),
    });
    entries.sort_by_key(|e| e.step);
    let mut drop_names = vec![];
    if keep_checkpoint_max > 0 && entries.len() > keep_checkpoint_max {
        let n = entries.len() - keep_checkpoint_max;
        drop_names = entries.drain(..n).map(|e| e.file).collect::<Vec<_>>();
    }
    write_index_at(dir, &entries)?;
    // Orphans: checkpoint objects that no index named (a save killed after
    // its data and before its index). Only when the old index was readable,
    // so that an index lost by other means never costs checkpoints.
    if indexed.is_ok() {
        for e in &present {
            if !entries.iter().any(|k| k.file == e.file) && !drop_names.contains(&e.file) {
                drop_names.push(e.file.clone());
            }
        }
    }
    let mut pruned = vec![];
    for f in drop_names {
        let loc = dir.join(&f);
        storage::delete(&loc)?;
        pruned.push(loc.to_path_buf());
    }
    Ok(Saved {
        path: ckpt.to_path_buf(),
        pruned,
    })
}

fn write_index_at(dir: &Location, entries: &[IndexEntry]) -> Result<()> {
    let idx = IndexFile {
        format: "simclr-ckpt-index-1".into(),
        checkpoints: entries.to_vec(),
    };
    let text =
        serde_json::to_string_pretty(&idx).map_err(|e| Error::Invalid(e.to_string()))? + "\n";
    storage::put(&dir.join(INDEX_FILE), text.into_bytes())?;
    Ok(())
}

fn read_index_at(dir: &Location) -> Result<Vec<IndexEntry>> {
    if let Some(p) = dir.as_local() {
        return read_index(p);
    }
    let loc = dir.join(INDEX_FILE);
    let text = storage::read_to_string(&loc)?;
    let idx: IndexFile = serde_json::from_str(&text).map_err(|e| Error::Corrupt {
        path: loc.to_path_buf(),
        detail: format!(
            "not a valid index ({e}); delete it to rebuild it from the ckpt-*.safetensors objects"
        ),
    })?;
    Ok(idx.checkpoints)
}

fn scan_at(dir: &Location) -> Result<Vec<IndexEntry>> {
    if let Some(p) = dir.as_local() {
        return Ok(scan_dir(p));
    }
    let mut out = vec![];
    for e in storage::list(dir, false)? {
        if let Some(step) = step_of(&e.name) {
            out.push(IndexEntry { step, file: e.name });
        }
    }
    out.sort_by_key(|e| e.step);
    Ok(out)
}

fn step_of(name: &str) -> Option<u64> {
    name.strip_prefix("ckpt-")
        .and_then(|s| s.strip_suffix(".safetensors"))
        .and_then(|s| s.parse::<u64>().ok())
}

fn remove_stale_temp_files(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let n = e.file_name();
        let n = n.to_string_lossy();
        let ours = n.starts_with(".ckpt-") || n.starts_with(&format!(".{INDEX_FILE}"));
        if ours && n.contains(".tmp-") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

fn write_index(model_dir: &Path, entries: &[IndexEntry]) -> Result<()> {
    let idx = IndexFile {
        format: "simclr-ckpt-index-1".into(),
        checkpoints: entries.to_vec(),
    };
    let text =
        serde_json::to_string_pretty(&idx).map_err(|e| Error::Invalid(e.to_string()))? + "\n";
    write_atomic(model_dir, INDEX_FILE, |tmp| {
        std::fs::write(tmp, text.as_bytes()).map_err(io_err(tmp))
    })?;
    Ok(())
}

fn read_index(model_dir: &Path) -> Result<Vec<IndexEntry>> {
    let p = model_dir.join(INDEX_FILE);
    let text = std::fs::read_to_string(&p).map_err(io_err(&p))?;
    let idx: IndexFile = serde_json::from_str(&text).map_err(|e| Error::Corrupt {
        path: p.clone(),
        detail: format!(
            "not a valid index ({e}); delete it to rebuild it from the ckpt-*.safetensors files"
        ),
    })?;
    Ok(idx.checkpoints)
}

fn scan_dir(model_dir: &Path) -> Vec<IndexEntry> {
    let mut out = vec![];
    if let Ok(rd) = std::fs::read_dir(model_dir) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if let Some(step) = step_of(&n) {
                out.push(IndexEntry { step, file: n });
            }
        }
    }
    out.sort_by_key(|e| e.step);
    out
}

/// The checkpoints of `model_dir`, oldest first, as `(step, path)`: from
/// `checkpoint.json`, or from the `ckpt-*.safetensors` files when the index
/// is missing or unreadable.
///
/// In a bucket, an unreachable bucket (or missing credentials) gives an
/// empty list here; [`latest`] and [`try_list`] report it.
pub fn list(model_dir: &Path) -> Vec<(u64, PathBuf)> {
    try_list(model_dir).unwrap_or_default()
}

/// [`list`] that reports storage errors (a missing bucket, no credentials,
/// the network) instead of returning an empty list.
///
/// # Errors
/// [`Error::Storage`] for an invalid URL or an unreachable bucket.
pub fn try_list(model_dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let dir = Location::from_path(model_dir)?;
    let entries = match read_index_at(&dir) {
        Ok(e) => e,
        Err(Error::Storage(e)) if !e.is_not_found() && !dir.is_local() => return Err(e.into()),
        Err(_) => scan_at(&dir)?,
    };
    Ok(entries
        .into_iter()
        .map(|e| (e.step, dir.join(&e.file).to_path_buf()))
        .collect())
}

/// The newest checkpoint of `model_dir` whose file is complete and whose
/// checksums verify; `None` when there is none. Unreadable newer ones are
/// listed in [`Latest::skipped`] (and should be reported to the user).
pub fn latest(model_dir: &Path) -> Result<Option<Latest>> {
    let dir = Location::from_path(model_dir)?;
    if dir.is_local() && !model_dir.is_dir() {
        return Ok(None);
    }
    let mut skipped = vec![];
    for (step, path) in try_list(model_dir)?.into_iter().rev() {
        match Reader::open(&path).and_then(|r| r.verify().map(|()| r)) {
            Ok(r) => {
                return Ok(Some(Latest {
                    path,
                    step,
                    skipped,
                    opened: Some(std::sync::Arc::new(r)),
                }))
            }
            Err(e) => skipped.push(Skipped {
                path,
                reason: e.to_string(),
            }),
        }
    }
    if skipped.is_empty() {
        Ok(None)
    } else {
        Err(Error::NotFound {
            path: model_dir.to_path_buf(),
            detail: format!(
                "every checkpoint is unreadable: {}",
                skipped
                    .iter()
                    .map(|s| s.reason.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        })
    }
}

/// Loads a native checkpoint file (all tensors, checksums verified).
pub fn load(path: &Path) -> Result<Checkpoint> {
    load_from(&Reader::open(path)?)
}

fn load_from(r: &Reader) -> Result<Checkpoint> {
    let mut tensors = BTreeMap::new();
    for e in &r.entries {
        tensors.insert(e.name.clone(), r.read(&e.name)?);
    }
    Ok(Checkpoint {
        path: r.path.clone(),
        step: r.step,
        tensors,
        meta: r.meta.clone(),
    })
}

/// One tensor listed by a [`Reader`].
#[derive(Clone, Debug)]
pub struct ReaderEntry {
    /// Name.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Dimensions.
    pub dims: Vec<u64>,
    start: usize,
    end: usize,
}

/// The bytes of a checkpoint file: mapped when local, downloaded when in a
/// bucket.
enum Bytes {
    Map(memmap2::Mmap),
    Mem(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Map(m) => m,
            Bytes::Mem(v) => v,
        }
    }
}

/// A native checkpoint (memory-mapped when local, read whole from a
/// bucket) that reads tensors one at a time.
pub struct Reader {
    path: PathBuf,
    map: Bytes,
    data_start: usize,
    entries: Vec<ReaderEntry>,
    crcs: BTreeMap<String, u32>,
    /// Step from the metadata.
    pub step: u64,
    /// The JSON blob given to [`save`].
    pub meta: serde_json::Value,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("path", &self.path)
            .field("step", &self.step)
            .field("tensors", &self.entries.len())
            .finish()
    }
}

impl Reader {
    /// Opens and maps `path`, parsing the safetensors header.
    pub fn open(path: &Path) -> Result<Reader> {
        let corrupt = |detail: String| Error::Corrupt {
            path: path.to_path_buf(),
            detail,
        };
        let loc = Location::from_path(path)?;
        let map = if loc.is_local() {
            let file = File::open(path).map_err(io_err(path))?;
            let len = file.metadata().map_err(io_err(path))?.len();
            if len < 8 {
                return Err(corrupt(format!(
                    "{len} bytes is too short for a safetensors file"
                )));
            }
            // SAFETY: the map is read-only; checkpoint files are replaced by
            // rename, never modified in place, so the mapped bytes do not
            // change.
            Bytes::Map(unsafe { memmap2::Mmap::map(&file) }.map_err(io_err(path))?)
        } else {
            let bytes = storage::read(&loc)?;
            if bytes.len() < 8 {
                return Err(corrupt(format!(
                    "{} bytes is too short for a safetensors file",
                    bytes.len()
                )));
            }
            Bytes::Mem(bytes)
        };
        let (n, md) = SafeTensors::read_metadata(&map)
            .map_err(|e| corrupt(format!("bad safetensors header: {e:?}")))?;
        let data_start = 8 + n;
        let extra = md
            .metadata()
            .as_ref()
            .ok_or_else(|| corrupt("no __metadata__; not written by simclr".into()))?;
        let step = extra
            .get("simclr.step")
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| corrupt("no valid simclr.step in __metadata__".into()))?;
        let meta_text = extra.get("simclr.meta").map_or("null", String::as_str);
        let step_text = extra.get("simclr.step").map_or("", String::as_str);
        let want = header_crc(step_text, meta_text);
        if extra.get("simclr.header_crc32c") != Some(&want.to_string()) {
            return Err(corrupt(
                "the checksum of simclr.step/simclr.meta does not match; the header is corrupted"
                    .into(),
            ));
        }
        let meta = match extra.get("simclr.meta") {
            Some(s) => serde_json::from_str(s)
                .map_err(|e| corrupt(format!("simclr.meta is not JSON: {e}")))?,
            None => serde_json::Value::Null,
        };
        let crcs: BTreeMap<String, u32> = match extra.get("simclr.crc32c") {
            Some(s) => serde_json::from_str(s)
                .map_err(|e| corrupt(format!("simclr.crc32c is not valid: {e}")))?,
            None => BTreeMap::new(),
        };
        let mut entries = vec![];
        for (name, info) in md.tensors() {
            let dtype = from_st_dtype(info.dtype).ok_or_else(|| Error::Unsupported {
                path: path.to_path_buf(),
                detail: format!("tensor '{name}' has dtype {:?}", info.dtype),
            })?;
            let (s, e) = info.data_offsets;
            entries.push(ReaderEntry {
                name,
                dtype,
                dims: info.shape.iter().map(|&d| d as u64).collect(),
                start: data_start + s,
                end: data_start + e,
            });
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Reader {
            path: path.to_path_buf(),
            map,
            data_start,
            entries,
            crcs,
            step,
            meta,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The tensors, sorted by name.
    pub fn entries(&self) -> &[ReaderEntry] {
        &self.entries
    }

    fn bytes_of(&self, e: &ReaderEntry) -> Result<&[u8]> {
        let b = self
            .map
            .get(e.start..e.end)
            .filter(|_| e.start >= self.data_start)
            .ok_or_else(|| Error::Corrupt {
                path: self.path.clone(),
                detail: format!(
                    "tensor '{}' lies beyond the end of the file ({} bytes); the file is truncated",
                    e.name,
                    self.map.len()
                ),
            })?;
        let computed = crc32c::value(b);
        match self.crcs.get(&e.name) {
            Some(&stored) if stored != computed => Err(Error::Checksum {
                path: self.path.clone(),
                tensor: e.name.clone(),
                stored,
                computed,
            }),
            Some(_) => Ok(b),
            None => Err(Error::Corrupt {
                path: self.path.clone(),
                detail: format!("no checksum recorded for tensor '{}'", e.name),
            }),
        }
    }

    /// Reads one tensor, verifying its checksum.
    pub fn read(&self, name: &str) -> Result<Tensor> {
        let e = self
            .entries
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| Error::MissingTensor {
                path: self.path.clone(),
                name: name.to_string(),
            })?;
        let b = self.bytes_of(e)?;
        Tensor::new(e.dtype, e.dims.clone(), b.to_vec()).map_err(|err| Error::Corrupt {
            path: self.path.clone(),
            detail: format!("tensor '{}': {err}", e.name),
        })
    }

    /// Checks every tensor's bytes against its checksum without copying.
    pub fn verify(&self) -> Result<()> {
        for e in &self.entries {
            self.bytes_of(e)?;
        }
        Ok(())
    }
}
