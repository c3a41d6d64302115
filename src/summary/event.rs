//! TensorBoard event files: [`EventWriter`] writes
//! `events.out.tfevents.<unix seconds>.<hostname>` in a directory, in the
//! format `tf.summary` writes (TFRecord framing, first record
//! `Event{file_version: "brain.Event:2"}`); [`read_events`] reads one back,
//! checking every CRC.
//!
//! Each event goes to the operating system as one `write` as soon as it is
//! logged, so a killed run loses nothing already logged (a partly written
//! last record is what TensorBoard expects from a live writer and skips).
//! A writer never appends to an existing file: a resumed run starts a new
//! file, as TensorFlow does, and TensorBoard reads a directory's files in
//! name order.
//!
//! In a bucket (`gs://…`, `s3://…`), where nothing can be appended, events
//! are buffered and each flush (every [`OBJECT_FLUSH_SECS`] seconds, on
//! [`EventWriter::sync`] and when the writer is dropped) uploads them as a
//! new complete event file named
//! `events.out.tfevents.<unix seconds>.<hostname>.<pid>.<counter>` (ten-digit
//! seconds, six-digit counter), so that name order is write order and
//! TensorBoard reads the objects one after the other.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;

use super::error::{Error, Result};
use super::image::Image;
use super::proto::{event, summary, Event, Summary};
use super::record::{decode_records, encode_record};

/// The `file_version` of the first event of every file.
pub const FILE_VERSION: &str = "brain.Event:2";

/// The part of a file name that marks it as an event file for TensorBoard.
pub const FILE_MARKER: &str = "tfevents";

/// Seconds since the Unix epoch, as `Event.wall_time` holds them.
fn wall_time() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// This machine's host name (as TensorFlow puts it in event file names), or
/// `localhost` when it cannot be found. Characters that cannot be part of a
/// file name are replaced by `_`.
pub fn hostname() -> String {
    let from_file = |p: &str| fs::read_to_string(p).ok().map(|s| s.trim().to_string());
    let name = from_file("/proc/sys/kernel/hostname")
        .filter(|s| !s.is_empty())
        .or_else(|| from_file("/etc/hostname").filter(|s| !s.is_empty()))
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "localhost".to_string());
    name.chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// Seconds between uploads of buffered events to a bucket.
pub const OBJECT_FLUSH_SECS: u64 = 30;

/// Writes one TensorBoard event file. Create one per run directory
/// (`model_dir` for training, `model_dir/eval` for evaluation, as the
/// original does).
#[derive(Debug)]
pub struct EventWriter {
    path: PathBuf,
    sink: Sink,
}

#[derive(Debug)]
enum Sink {
    File(File),
    Objects(ObjectSink),
}

/// Events buffered for the next object of a bucket.
#[derive(Debug)]
struct ObjectSink {
    dir: crate::storage::Location,
    base: String,
    counter: u32,
    pending: Vec<u8>,
    events: usize,
    last: std::time::Instant,
}

impl ObjectSink {
    fn flush(&mut self) -> Result<()> {
        if self.events == 0 {
            return Ok(());
        }
        let mut bytes = encode_record(
            &Event {
                wall_time: wall_time(),
                step: 0,
                what: Some(event::What::FileVersion(FILE_VERSION.to_string())),
            }
            .encode_to_vec(),
        );
        bytes.extend_from_slice(&self.pending);
        let name = format!("{}.{:06}", self.base, self.counter);
        crate::storage::put(&self.dir.join(&name), bytes)?;
        self.counter += 1;
        self.pending.clear();
        self.events = 0;
        self.last = std::time::Instant::now();
        Ok(())
    }
}

impl EventWriter {
    /// Creates `dir` if needed and a new event file in it named
    /// `events.out.tfevents.<unix seconds>.<hostname>`, then writes the
    /// file-version event. If that name is taken (two writers started in the
    /// same second), `.1`, `.2`, … is appended; an existing file is never
    /// opened.
    ///
    /// # Errors
    /// [`Error::Io`] naming the directory or file that could not be created
    /// or written.
    pub fn create(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let loc = crate::storage::Location::from_path(dir)?;
        if !loc.is_local() {
            let base = format!(
                "events.out.{FILE_MARKER}.{:010}.{}.{}",
                wall_time() as u64,
                hostname(),
                std::process::id()
            );
            return Ok(EventWriter {
                path: loc.join(&base).to_path_buf(),
                sink: Sink::Objects(ObjectSink {
                    dir: loc,
                    base,
                    counter: 0,
                    pending: vec![],
                    events: 0,
                    last: std::time::Instant::now(),
                }),
            });
        }
        fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
        let now = wall_time();
        let base = format!("events.out.{FILE_MARKER}.{}.{}", now as u64, hostname());
        let mut n = 0u32;
        let (path, file) = loop {
            let name = if n == 0 {
                base.clone()
            } else {
                format!("{base}.{n}")
            };
            let path = dir.join(name);
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => break (path, file),
                Err(e) if e.kind() == ErrorKind::AlreadyExists && n < 1000 => n += 1,
                Err(e) => return Err(Error::io("create event file", path, e)),
            }
        };
        let mut writer = EventWriter {
            path,
            sink: Sink::File(file),
        };
        writer.write_event(&Event {
            wall_time: now,
            step: 0,
            what: Some(event::What::FileVersion(FILE_VERSION.to_string())),
        })?;
        Ok(writer)
    }

    /// The event file's path (in a bucket: the objects' common name
    /// prefix).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one event as a TFRecord and hands it to the operating system.
    ///
    /// # Errors
    /// [`Error::Io`] naming the file.
    pub fn write_event(&mut self, event: &Event) -> Result<()> {
        let record = encode_record(&event.encode_to_vec());
        match &mut self.sink {
            Sink::File(file) => file
                .write_all(&record)
                .and_then(|()| file.flush())
                .map_err(|e| Error::io("write", &self.path, e)),
            Sink::Objects(o) => {
                o.pending.extend_from_slice(&record);
                o.events += 1;
                if o.last.elapsed().as_secs() >= OBJECT_FLUSH_SECS {
                    o.flush()?;
                }
                Ok(())
            }
        }
    }

    /// Writes a summary of several values as one event at `step`.
    ///
    /// # Errors
    /// As [`EventWriter::write_event`].
    pub fn write_summary(&mut self, values: Vec<summary::Value>, step: i64) -> Result<()> {
        self.write_event(&Event {
            wall_time: wall_time(),
            step,
            what: Some(event::What::Summary(Summary { value: values })),
        })
    }

    /// Marks a restart (`SessionLog.START`) at `step`: TensorBoard then
    /// discards this directory's earlier events whose step is `step` or
    /// larger (its reader keeps `x.step < step`). A run resumed from the
    /// checkpoint of step s passes s + 1, so that s's own events stay and
    /// those an interrupted run logged after its checkpoint, which the
    /// resumed run logs again, go.
    ///
    /// # Errors
    /// As [`EventWriter::write_event`].
    pub fn session_start(&mut self, step: i64) -> Result<()> {
        self.write_event(&Event {
            wall_time: wall_time(),
            step,
            what: Some(event::What::SessionLog(crate::summary::proto::SessionLog {
                status: crate::summary::proto::session_log::SessionStatus::Start as i32,
                ..Default::default()
            })),
        })
    }

    /// Logs one scalar (`tf.summary.scalar(tag, value, step)`).
    ///
    /// # Errors
    /// As [`EventWriter::write_event`].
    pub fn scalar(&mut self, tag: &str, value: f32, step: i64) -> Result<()> {
        self.scalars(&[(tag, value)], step)
    }

    /// Logs several scalars of one step in a single event, e.g.
    /// `&[("train/contrast_loss", 4.1), ("learning_rate", 0.3)]`.
    ///
    /// # Errors
    /// As [`EventWriter::write_event`].
    pub fn scalars(&mut self, values: &[(&str, f32)], step: i64) -> Result<()> {
        let values = values
            .iter()
            .map(|&(tag, v)| summary::Value {
                tag: tag.to_string(),
                value: Some(summary::value::Value::SimpleValue(v)),
            })
            .collect();
        self.write_summary(values, step)
    }

    /// Logs an image as a PNG image summary (TensorBoard's Images tab).
    ///
    /// # Errors
    /// As [`EventWriter::write_event`].
    pub fn image(&mut self, tag: &str, image: &Image, step: i64) -> Result<()> {
        let value = summary::Value {
            tag: tag.to_string(),
            value: Some(summary::value::Value::Image(summary::Image {
                height: image.height() as i32,
                width: image.width() as i32,
                colorspace: image.channels() as i32,
                encoded_image_string: image.to_png(),
            })),
        };
        self.write_summary(vec![value], step)
    }

    /// Forces what was written onto the disk (`fsync`), e.g. before a
    /// checkpoint; logging alone already survives a killed process.
    ///
    /// # Errors
    /// [`Error::Io`] naming the file.
    pub fn sync(&mut self) -> Result<()> {
        match &mut self.sink {
            Sink::File(file) => file
                .sync_data()
                .map_err(|e| Error::io("sync", &self.path, e)),
            Sink::Objects(o) => o.flush(),
        }
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        if let Sink::Objects(o) = &mut self.sink {
            if let Err(e) = o.flush() {
                eprintln!("warning: events not uploaded: {e}");
            }
        }
    }
}

/// Reads every event of one event file, checking the framing and CRCs.
///
/// # Errors
/// [`Error::Io`] if the file cannot be read, [`Error::Corrupt`] for a bad
/// CRC or a truncated record, [`Error::Decode`] for a record that is not an
/// `Event`.
pub fn read_events(path: impl AsRef<Path>) -> Result<Vec<Event>> {
    let path = path.as_ref();
    let loc = crate::storage::Location::from_path(path)?;
    let bytes = if loc.is_local() {
        fs::read(path).map_err(|e| Error::io("read", path, e))?
    } else {
        crate::storage::read(&loc)?
    };
    decode_records(&bytes, path)?
        .into_iter()
        .map(|r| {
            Event::decode(r.data).map_err(|source| Error::Decode {
                path: path.to_path_buf(),
                offset: r.offset,
                source,
            })
        })
        .collect()
}

/// The event files directly in `dir` (names containing `tfevents`), in the
/// name order TensorBoard reads them in.
///
/// # Errors
/// [`Error::Io`] naming `dir`.
pub fn event_files(dir: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
    let dir = dir.as_ref();
    let loc = crate::storage::Location::from_path(dir)?;
    if !loc.is_local() {
        return Ok(crate::storage::list(&loc, false)?
            .into_iter()
            .filter(|e| e.name.contains(FILE_MARKER))
            .map(|e| loc.join(&e.name).to_path_buf())
            .collect());
    }
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io("list directory", dir, e))? {
        let entry = entry.map_err(|e| Error::io("list directory", dir, e))?;
        if entry.file_name().to_string_lossy().contains(FILE_MARKER) && entry.path().is_file() {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// The scalar values of `events` by tag, each as `(step, value)` in file
/// order.
pub fn scalars_by_tag(events: &[Event]) -> BTreeMap<String, Vec<(i64, f32)>> {
    let mut out: BTreeMap<String, Vec<(i64, f32)>> = BTreeMap::new();
    for e in events {
        if let Some(event::What::Summary(s)) = &e.what {
            for v in &s.value {
                if let Some(summary::value::Value::SimpleValue(x)) = v.value {
                    out.entry(v.tag.clone()).or_default().push((e.step, x));
                }
            }
        }
    }
    out
}
