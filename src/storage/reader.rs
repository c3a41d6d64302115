//! A streaming reader with read-ahead: an object is fetched as ranged GETs
//! of `chunk` bytes, `depth` of them in flight ahead of the reader, so that
//! a data shard streams at the link's rate while the pipeline decodes.

use super::cloud::{self, client, map_err, obj_path, runtime};
use super::{Error, Location, Result};
use object_store::ObjectStoreExt;
use std::collections::VecDeque;
use std::io::Read;
use std::time::Duration;

/// How far ahead [`open_reader`] fetches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadAhead {
    /// Bytes per ranged request.
    pub chunk: u64,
    /// Requests in flight ahead of the reader.
    pub depth: usize,
}

impl Default for ReadAhead {
    /// 8 MiB chunks, 4 in flight.
    fn default() -> Self {
        ReadAhead {
            chunk: 8 << 20,
            depth: 4,
        }
    }
}

type Pending = tokio::task::JoinHandle<std::result::Result<bytes::Bytes, object_store::Error>>;

/// A `Read` over an object, fetched ahead in chunks.
struct ObjectReader {
    loc: Location,
    client: cloud::Client,
    size: u64,
    ahead: ReadAhead,
    next_start: u64,
    pending: VecDeque<(u64, Pending)>,
    current: bytes::Bytes,
    pos: usize,
}

impl ObjectReader {
    fn spawn_more(&mut self) {
        while self.pending.len() < self.ahead.depth.max(1) && self.next_start < self.size {
            let start = self.next_start;
            let end = (start + self.ahead.chunk.max(1)).min(self.size);
            self.next_start = end;
            self.pending.push_back((start, self.fetch(start..end)));
        }
    }

    fn fetch(&self, range: std::ops::Range<u64>) -> Pending {
        let store = self.client.store.clone();
        let path = obj_path(&self.loc);
        runtime().spawn(async move { store.get_range(&path, range).await })
    }

    fn next_chunk(&mut self) -> Result<bool> {
        self.spawn_more();
        let Some((start, handle)) = self.pending.pop_front() else {
            return Ok(false);
        };
        let end = (start + self.ahead.chunk.max(1)).min(self.size);
        let mut result = runtime().block_on(handle).map_err(|e| Error::Other {
            url: self.loc.to_string(),
            detail: format!("read task failed: {e}"),
        })?;
        // A body cut off mid-transfer is retried here (the client retries
        // only until the response headers arrive).
        let attempts = cloud::retries() + 1;
        let mut attempt = 1;
        loop {
            match result {
                Ok(b) if b.len() as u64 == end - start => {
                    self.current = b;
                    self.pos = 0;
                    self.spawn_more();
                    return Ok(true);
                }
                Ok(b) => {
                    return Err(Error::Corrupt {
                        url: self.loc.to_string(),
                        detail: format!(
                            "{} bytes received for bytes {start}..{end}; the object changed or is truncated",
                            b.len()
                        ),
                    })
                }
                Err(e) => {
                    let mapped = map_err(&self.loc, &self.client, e);
                    let retriable = matches!(mapped, Error::Network { .. } | Error::Other { .. });
                    if !retriable || attempt >= attempts {
                        return Err(mapped);
                    }
                    std::thread::sleep(Duration::from_millis(100u64 << attempt.min(5)));
                    attempt += 1;
                    result = runtime()
                        .block_on(self.fetch(start..end))
                        .map_err(|e| Error::Other {
                            url: self.loc.to_string(),
                            detail: format!("read task failed: {e}"),
                        })?;
                }
            }
        }
    }
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.current.len() {
            match self.next_chunk() {
                Ok(true) => {}
                Ok(false) => return Ok(0),
                Err(e) => return Err(std::io::Error::other(e)),
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Drop for ObjectReader {
    fn drop(&mut self) {
        for (_, h) in self.pending.drain(..) {
            h.abort();
        }
    }
}

/// A sequential reader of a file or object. Local files are buffered; an
/// object is fetched ahead as described by `ahead` (the first requests are
/// sent before this returns). I/O errors carry a storage [`Error`] (see
/// `std::io::Error::get_ref`).
///
/// # Errors
/// [`Error::NotFound`], bucket, credential and network errors.
pub fn open_reader(loc: &Location, ahead: ReadAhead) -> Result<Box<dyn Read + Send>> {
    match loc {
        Location::Local(p) => {
            let f = std::fs::File::open(p).map_err(|e| super::io_error(loc, e))?;
            Ok(Box::new(std::io::BufReader::with_capacity(1 << 20, f)))
        }
        Location::Cloud { .. } => {
            let c = client(loc)?;
            let size = cloud::size(loc)?;
            let mut r = ObjectReader {
                loc: loc.clone(),
                client: c,
                size,
                ahead,
                next_start: 0,
                pending: VecDeque::new(),
                current: bytes::Bytes::new(),
                pos: 0,
            };
            r.spawn_more();
            Ok(Box::new(r))
        }
    }
}
