//! JSON outputs next to the event files: `metrics.jsonl` (one line per
//! logged step, appended), and the files the original writes after every
//! evaluation (SPEC §8.6): `result.json`, `result_<step>.json` and
//! `flags.json`, each replaced atomically.
//!
//! In a bucket (`gs://…`, `s3://…`) every file is replaced as a whole
//! object: `metrics.jsonl` is re-uploaded with all its lines every
//! [`super::event::OBJECT_FLUSH_SECS`] seconds, on [`MetricsLog::sync`] and
//! when the log is dropped, so it stays readable during the run.
//!
//! JSON has no NaN or infinity: such a value is written as `null`, so that a
//! diverged run still leaves readable files.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use super::error::{Error, Result};

/// File name of the per-step metrics log.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// File name of the latest evaluation result.
pub const RESULT_FILE: &str = "result.json";
/// File name of the flags of the run.
pub const FLAGS_FILE: &str = "flags.json";

/// A JSON number, or `null` for NaN and infinities.
fn number(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}

/// Writes `bytes` to `path` atomically: a temporary file in the same
/// directory is written, synced and renamed over `path`, then the directory
/// is synced, so readers see the old or the new contents, never a mix.
///
/// # Errors
/// [`Error::Io`] naming the file that could not be written or renamed.
pub fn write_file_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    let path = path.as_ref();
    let loc = crate::storage::Location::from_path(path)?;
    if !loc.is_local() {
        crate::storage::put(&loc, bytes.to_vec())?;
        return Ok(());
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io("write", &tmp, e));
    }
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io("rename a temporary file onto", path, e));
    }
    // Makes the rename itself durable; not every platform can open a
    // directory, and the data is already in place, so failure is ignored.
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Appends one JSON object per logged step to `metrics.jsonl`:
/// `{"step": N, "<name>": value, ...}` with the names in the order given.
#[derive(Debug)]
pub struct MetricsLog {
    path: PathBuf,
    sink: MetricsSink,
}

#[derive(Debug)]
enum MetricsSink {
    File(File),
    /// The whole log, re-uploaded on flush.
    Object {
        loc: crate::storage::Location,
        text: String,
        dirty: bool,
        last: std::time::Instant,
    },
}

impl MetricsLog {
    /// Opens (creating `dir` and the file if needed) `dir/metrics.jsonl`
    /// for appending; lines of an earlier run are kept.
    ///
    /// # Errors
    /// [`Error::Io`] naming the directory or file.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let path = dir.join(METRICS_FILE);
        let loc = crate::storage::Location::from_path(&path)?;
        if !loc.is_local() {
            let text = match crate::storage::read_to_string(&loc) {
                Ok(t) => t,
                Err(e) if e.is_not_found() => String::new(),
                Err(e) => return Err(e.into()),
            };
            return Ok(MetricsLog {
                path,
                sink: MetricsSink::Object {
                    loc,
                    text,
                    dirty: false,
                    last: std::time::Instant::now(),
                },
            });
        }
        fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| Error::io("open for appending", &path, e))?;
        Ok(MetricsLog {
            path,
            sink: MetricsSink::File(file),
        })
    }

    /// Uploads the log now when it is in a bucket (a local log is always
    /// up to date).
    ///
    /// # Errors
    /// [`Error::Storage`] naming the object.
    pub fn sync(&mut self) -> Result<()> {
        if let MetricsSink::Object {
            loc,
            text,
            dirty,
            last,
        } = &mut self.sink
        {
            if *dirty {
                crate::storage::put(loc, text.clone().into_bytes())?;
                *dirty = false;
                *last = std::time::Instant::now();
            }
        }
        Ok(())
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `{"step": step, name: value, ...}` as one line and hands it
    /// to the operating system. Include `images_per_sec` (from
    /// [`super::Throughput`]) among `values` to log throughput.
    ///
    /// # Errors
    /// [`Error::Invalid`] when a name is `step` or repeated; [`Error::Io`]
    /// naming the file.
    pub fn log(&mut self, step: i64, values: &[(&str, f64)]) -> Result<()> {
        let mut line = format!("{{\"step\":{step}");
        for (i, &(name, x)) in values.iter().enumerate() {
            if name == "step" || values[..i].iter().any(|&(n, _)| n == name) {
                return Err(Error::Invalid {
                    path: self.path.clone(),
                    what: format!("metric name {name:?} at step {step} is reserved or repeated"),
                });
            }
            line.push(',');
            line.push_str(&Value::String(name.to_string()).to_string());
            line.push(':');
            line.push_str(&number(x).to_string());
        }
        line.push_str("}\n");
        match &mut self.sink {
            MetricsSink::File(file) => file
                .write_all(line.as_bytes())
                .and_then(|()| file.flush())
                .map_err(|e| Error::io("append to", &self.path, e)),
            MetricsSink::Object {
                text, dirty, last, ..
            } => {
                text.push_str(&line);
                *dirty = true;
                if last.elapsed().as_secs() >= super::event::OBJECT_FLUSH_SECS {
                    self.sync()?;
                }
                Ok(())
            }
        }
    }
}

impl Drop for MetricsLog {
    fn drop(&mut self) {
        if let Err(e) = self.sync() {
            eprintln!("warning: metrics not uploaded: {e}");
        }
    }
}

/// Drops the lines of `model_dir/metrics.jsonl` whose step is after
/// `step` (a run resumed from the checkpoint of `step` logs those steps
/// again), rewriting the file atomically. Returns how many were dropped.
///
/// # Errors
/// [`Error::Io`] naming the file.
pub fn truncate_metrics_after(model_dir: impl AsRef<Path>, step: i64) -> Result<usize> {
    let path = model_dir.as_ref().join(METRICS_FILE);
    let loc = crate::storage::Location::from_path(&path)?;
    let text = if loc.is_local() {
        match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(Error::io("read", &path, e)),
        }
    } else {
        match crate::storage::read_to_string(&loc) {
            Ok(t) => t,
            Err(e) if e.is_not_found() => return Ok(0),
            Err(e) => return Err(e.into()),
        }
    };
    let mut kept = String::with_capacity(text.len());
    let mut dropped = 0;
    for line in text.lines() {
        let later = serde_json::from_str::<Value>(line)
            .ok()
            .and_then(|v| v["step"].as_i64())
            .is_some_and(|s| s > step);
        if later {
            dropped += 1;
        } else {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    if dropped > 0 {
        write_file_atomic(&path, kept.as_bytes())?;
    }
    Ok(dropped)
}

/// Writes `model_dir/result.json` and `model_dir/result_<global_step>.json`
/// after an evaluation (SPEC §8.6): every metric as a float plus
/// `global_step`, which the original also writes as a float (`1000.0`).
/// Returns the two paths.
///
/// # Errors
/// [`Error::Invalid`] when a metric is named `global_step` or repeated;
/// [`Error::Io`] naming the file.
pub fn write_result(
    model_dir: impl AsRef<Path>,
    global_step: i64,
    metrics: &[(&str, f64)],
) -> Result<[PathBuf; 2]> {
    let model_dir = model_dir.as_ref();
    let latest = model_dir.join(RESULT_FILE);
    let mut object = serde_json::Map::new();
    for &(name, x) in metrics {
        if name == "global_step" || object.insert(name.to_string(), number(x)).is_some() {
            return Err(Error::Invalid {
                path: latest,
                what: format!("metric name {name:?} is reserved or repeated"),
            });
        }
    }
    object.insert("global_step".into(), number(global_step as f64));
    let bytes = Value::Object(object).to_string().into_bytes();
    if crate::storage::Location::from_path(model_dir)?.is_local() {
        fs::create_dir_all(model_dir).map_err(|e| Error::io("create directory", model_dir, e))?;
    }
    let numbered = model_dir.join(format!("result_{global_step}.json"));
    write_file_atomic(&latest, &bytes)?;
    write_file_atomic(&numbered, &bytes)?;
    Ok([latest, numbered])
}

/// Writes `model_dir/flags.json`: `flags` (for instance the parsed command
/// line, or a `serde_json::Map`) serialized as one JSON object. Returns the
/// path.
///
/// # Errors
/// [`Error::Json`] if `flags` cannot be serialized, [`Error::Invalid`] if it
/// is not a JSON object, [`Error::Io`] naming the file.
pub fn write_flags(model_dir: impl AsRef<Path>, flags: &impl Serialize) -> Result<PathBuf> {
    let model_dir = model_dir.as_ref();
    let path = model_dir.join(FLAGS_FILE);
    let value = serde_json::to_value(flags).map_err(|source| Error::Json {
        path: path.clone(),
        source,
    })?;
    if !value.is_object() {
        return Err(Error::Invalid {
            path,
            what: "flags must serialize to a JSON object".into(),
        });
    }
    if crate::storage::Location::from_path(model_dir)?.is_local() {
        fs::create_dir_all(model_dir).map_err(|e| Error::io("create directory", model_dir, e))?;
    }
    write_file_atomic(&path, value.to_string().as_bytes())?;
    Ok(path)
}
