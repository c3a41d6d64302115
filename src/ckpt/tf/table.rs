//! The immutable sorted string table (LevelDB "SSTable" layout) that a
//! tensor bundle's `.index` file is.
//!
//! Layout: data blocks, an (empty) meta-index block, an index block, and a
//! 48-byte footer (`metaindex` and `index` block handles as varint64 pairs,
//! zero-padded to 40 bytes, then the magic number as two little-endian
//! fixed32). A block is a run of entries — varint32 `shared`,
//! varint32 `non_shared`, varint32 `value_len`, the key suffix, the value —
//! whose keys share prefixes with the previous key except at restart points,
//! followed by the restart offsets (fixed32 each) and their count. Every
//! block on disk is followed by a 5-byte trailer: compression type (0 =
//! none) and the masked CRC-32C of block + type byte. Index-block values are
//! block handles of data blocks; its keys are ≥ every key of their block.

use crate::crc32c;

/// The table's magic number (footer's last 8 bytes, little-endian).
pub const MAGIC: u64 = 0xdb47_7524_8b80_fb57;
/// Footer length in bytes.
pub const FOOTER_LEN: usize = 48;
const TRAILER_LEN: usize = 5;
const BLOCK_SIZE: usize = 256 * 1024;
const RESTART_INTERVAL: usize = 16;

/// A parse failure with a description (the caller adds the file name).
pub type ParseError = String;

/// Table entries: `(key, value)` pairs in key order.
pub type KeyValues = Vec<(Vec<u8>, Vec<u8>)>;

/// Appends `v` as a varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Decodes a varint at `*pos` (at most `max_bytes` long), advancing `pos`.
pub fn get_varint(buf: &[u8], pos: &mut usize, max_bytes: usize) -> Result<u64, ParseError> {
    let mut v: u64 = 0;
    for i in 0..max_bytes {
        let b = *buf
            .get(*pos)
            .ok_or_else(|| format!("varint runs past the end at byte {}", *pos))?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(format!(
        "varint longer than {max_bytes} bytes at byte {}",
        *pos
    ))
}

fn u32_at(buf: &[u8], pos: usize) -> Result<u32, ParseError> {
    buf.get(pos..pos + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| format!("fixed32 past the end at byte {pos}"))
}

/// A block's position in the file (without its trailer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockHandle {
    /// Byte offset.
    pub offset: u64,
    /// Byte length of the block contents.
    pub size: u64,
}

impl BlockHandle {
    fn encode(&self, out: &mut Vec<u8>) {
        put_varint(out, self.offset);
        put_varint(out, self.size);
    }

    fn decode(buf: &[u8], pos: &mut usize) -> Result<BlockHandle, ParseError> {
        let offset = get_varint(buf, pos, 10)?;
        let size = get_varint(buf, pos, 10)?;
        Ok(BlockHandle { offset, size })
    }
}

/// Reads every `(key, value)` of a table held in `file`, in key order,
/// checking the footer, block checksums and key order.
pub fn read_all(file: &[u8]) -> Result<KeyValues, ParseError> {
    if file.len() < FOOTER_LEN {
        return Err(format!(
            "{} bytes is shorter than the {FOOTER_LEN}-byte table footer",
            file.len()
        ));
    }
    let footer = &file[file.len() - FOOTER_LEN..];
    let lo = u64::from(u32_at(footer, 40)?);
    let hi = u64::from(u32_at(footer, 44)?);
    if (hi << 32) | lo != MAGIC {
        return Err("bad table magic number (not a checkpoint .index file, or truncated)".into());
    }
    let mut pos = 0;
    let _meta = BlockHandle::decode(footer, &mut pos)?;
    let index = BlockHandle::decode(footer, &mut pos)?;
    let body = &file[..file.len() - FOOTER_LEN];
    let index_block = read_block(body, index, "index")?;
    let mut out: KeyValues = vec![];
    for (i, (_, handle_bytes)) in parse_block(index_block)?.into_iter().enumerate() {
        let mut p = 0;
        let h = BlockHandle::decode(&handle_bytes, &mut p)?;
        let block = read_block(body, h, &format!("data block {i}"))?;
        for (k, v) in parse_block(block)? {
            if let Some((last, _)) = out.last() {
                if k <= *last {
                    return Err(format!(
                        "keys out of order: {:?} after {:?}",
                        String::from_utf8_lossy(&k),
                        String::from_utf8_lossy(last)
                    ));
                }
            }
            out.push((k, v));
        }
    }
    Ok(out)
}

fn read_block<'a>(body: &'a [u8], h: BlockHandle, what: &str) -> Result<&'a [u8], ParseError> {
    let start = usize::try_from(h.offset).map_err(|_| format!("{what}: offset too large"))?;
    let size = usize::try_from(h.size).map_err(|_| format!("{what}: size too large"))?;
    let end = start
        .checked_add(size)
        .and_then(|e| e.checked_add(TRAILER_LEN))
        .filter(|&e| e <= body.len())
        .ok_or_else(|| {
            format!(
                "{what} at bytes {start}..+{size} lies beyond the end of the table ({} bytes)",
                body.len()
            )
        })?;
    let contents = &body[start..start + size];
    let trailer = &body[start + size..end];
    let ty = trailer[0];
    let stored = crc32c::unmask(u32_at(trailer, 1)?);
    let computed = crc32c::extend(crc32c::value(contents), &[ty]);
    if stored != computed {
        return Err(format!(
            "{what}: block checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
        ));
    }
    match ty {
        0 => Ok(contents),
        1 => Err(format!(
            "{what} is snappy-compressed; re-save the checkpoint with TensorFlow (bundles are written uncompressed)"
        )),
        t => Err(format!("{what}: unknown compression type {t}")),
    }
}

/// Decodes one uncompressed block into its entries.
pub fn parse_block(block: &[u8]) -> Result<KeyValues, ParseError> {
    if block.len() < 4 {
        return Err(format!("block of {} bytes is too short", block.len()));
    }
    let n_restarts = u32_at(block, block.len() - 4)? as usize;
    let restarts_start = n_restarts
        .checked_mul(4)
        .and_then(|r| block.len().checked_sub(4 + r))
        .ok_or_else(|| {
            format!(
                "block claims {n_restarts} restart points, too many for {} bytes",
                block.len()
            )
        })?;
    let entries = &block[..restarts_start];
    let mut out = vec![];
    let mut key: Vec<u8> = vec![];
    let mut pos = 0;
    while pos < entries.len() {
        let shared = get_varint(entries, &mut pos, 5)? as usize;
        let non_shared = get_varint(entries, &mut pos, 5)? as usize;
        let value_len = get_varint(entries, &mut pos, 5)? as usize;
        if shared > key.len() {
            return Err(format!(
                "entry shares {shared} key bytes but the previous key has {}",
                key.len()
            ));
        }
        let kend = pos
            .checked_add(non_shared)
            .filter(|&e| e <= entries.len())
            .ok_or("entry key runs past the end of the block")?;
        key.truncate(shared);
        key.extend_from_slice(&entries[pos..kend]);
        let vend = kend
            .checked_add(value_len)
            .filter(|&e| e <= entries.len())
            .ok_or("entry value runs past the end of the block")?;
        out.push((key.clone(), entries[kend..vend].to_vec()));
        pos = vend;
    }
    Ok(out)
}

struct BlockBuilder {
    buf: Vec<u8>,
    restarts: Vec<u32>,
    counter: usize,
    last_key: Vec<u8>,
    interval: usize,
}

impl BlockBuilder {
    fn new(interval: usize) -> BlockBuilder {
        BlockBuilder {
            buf: vec![],
            restarts: vec![0],
            counter: 0,
            last_key: vec![],
            interval,
        }
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn size_estimate(&self) -> usize {
        self.buf.len() + 4 * self.restarts.len() + 4
    }

    fn add(&mut self, key: &[u8], value: &[u8]) {
        let mut shared = 0;
        if self.counter < self.interval {
            shared = self
                .last_key
                .iter()
                .zip(key)
                .take_while(|(a, b)| a == b)
                .count();
        } else {
            self.restarts.push(self.buf.len() as u32);
            self.counter = 0;
        }
        put_varint(&mut self.buf, shared as u64);
        put_varint(&mut self.buf, (key.len() - shared) as u64);
        put_varint(&mut self.buf, value.len() as u64);
        self.buf.extend_from_slice(&key[shared..]);
        self.buf.extend_from_slice(value);
        self.last_key = key.to_vec();
        self.counter += 1;
    }

    fn finish(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.buf);
        for r in &self.restarts {
            out.extend_from_slice(&r.to_le_bytes());
        }
        out.extend_from_slice(&(self.restarts.len() as u32).to_le_bytes());
        self.restarts = vec![0];
        self.counter = 0;
        self.last_key.clear();
        out
    }
}

/// Builds a table in memory; keys must be added in strictly increasing
/// byte order.
pub struct TableBuilder {
    out: Vec<u8>,
    data: BlockBuilder,
    index: BlockBuilder,
    last_key: Vec<u8>,
    entries: usize,
}

impl Default for TableBuilder {
    fn default() -> Self {
        TableBuilder::new()
    }
}

impl TableBuilder {
    /// An empty table.
    pub fn new() -> TableBuilder {
        TableBuilder {
            out: vec![],
            data: BlockBuilder::new(RESTART_INTERVAL),
            index: BlockBuilder::new(1),
            last_key: vec![],
            entries: 0,
        }
    }

    /// Adds an entry; `Err` when `key` is not greater than the previous key.
    pub fn add(&mut self, key: &[u8], value: &[u8]) -> Result<(), ParseError> {
        if self.entries > 0 && key <= self.last_key.as_slice() {
            return Err(format!(
                "table keys must increase: {:?} after {:?}",
                String::from_utf8_lossy(key),
                String::from_utf8_lossy(&self.last_key)
            ));
        }
        self.data.add(key, value);
        self.last_key = key.to_vec();
        self.entries += 1;
        if self.data.size_estimate() >= BLOCK_SIZE {
            self.flush();
        }
        Ok(())
    }

    fn write_block(&mut self, contents: &[u8]) -> BlockHandle {
        let h = BlockHandle {
            offset: self.out.len() as u64,
            size: contents.len() as u64,
        };
        self.out.extend_from_slice(contents);
        let crc = crc32c::extend(crc32c::value(contents), &[0]);
        self.out.push(0);
        self.out.extend_from_slice(&crc32c::mask(crc).to_le_bytes());
        h
    }

    fn flush(&mut self) {
        if self.data.is_empty() {
            return;
        }
        let block = self.data.finish();
        let h = self.write_block(&block);
        let mut hv = vec![];
        h.encode(&mut hv);
        // The block's last key is a valid separator (≥ its keys, < the next).
        let key = self.last_key.clone();
        self.index.add(&key, &hv);
    }

    /// Writes the remaining blocks and the footer; returns the file bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.flush();
        let meta_block = BlockBuilder::new(RESTART_INTERVAL).finish();
        let meta = self.write_block(&meta_block);
        let index_block = self.index.finish();
        let index = self.write_block(&index_block);
        let mut footer = vec![];
        meta.encode(&mut footer);
        index.encode(&mut footer);
        footer.resize(40, 0);
        footer.extend_from_slice(&((MAGIC & 0xffff_ffff) as u32).to_le_bytes());
        footer.extend_from_slice(&((MAGIC >> 32) as u32).to_le_bytes());
        self.out.extend_from_slice(&footer);
        self.out
    }
}
