//! TFRecord framing, the container of TensorBoard event files: each record is
//! `u64 length (LE) | u32 masked CRC-32C of those 8 bytes | data |
//! u32 masked CRC-32C of data`. Writing appends one framed record; reading
//! checks both CRCs of every record.

use std::path::Path;

use super::error::{Error, Result};
use crate::crc32c::masked as masked_crc32c;

/// Bytes of framing around each record's data (8 + 4 before, 4 after).
pub const RECORD_OVERHEAD: usize = 16;

/// `data` framed as one TFRecord.
pub fn encode_record(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + RECORD_OVERHEAD);
    crate::data::tfrecord::write_record(&mut out, data);
    out
}

/// One record found by [`decode_records`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Byte offset of the record's length field in the file.
    pub offset: u64,
    /// The record's data.
    pub data: &'a [u8],
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

/// Splits the contents of a TFRecord file into records, checking both CRCs
/// of each. `path` only names the file in errors.
///
/// # Errors
/// [`Error::Corrupt`] on a CRC mismatch or when the bytes end inside a record.
pub fn decode_records<'a>(bytes: &'a [u8], path: &Path) -> Result<Vec<Record<'a>>> {
    let corrupt = |offset: usize, what: String| Error::Corrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        what,
    };
    let mut records = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let rest = bytes.len() - at;
        if rest < 12 {
            return Err(corrupt(
                at,
                format!("file ends {rest} bytes into a record header"),
            ));
        }
        let len_bytes = &bytes[at..at + 8];
        if masked_crc32c(len_bytes) != u32_at(bytes, at + 8) {
            return Err(corrupt(at, "length CRC mismatch".into()));
        }
        let mut lb = [0u8; 8];
        lb.copy_from_slice(len_bytes);
        let len = u64::from_le_bytes(lb);
        let available = (rest - 12) as u64;
        if len > available || available - len < 4 {
            return Err(corrupt(
                at,
                format!("length {len} runs past the end of the file ({available} bytes left)"),
            ));
        }
        let len = len as usize;
        let data = &bytes[at + 12..at + 12 + len];
        if masked_crc32c(data) != u32_at(bytes, at + 12 + len) {
            return Err(corrupt(at, format!("data CRC mismatch ({len} bytes)")));
        }
        records.push(Record {
            offset: at as u64,
            data,
        });
        at += 12 + len + 4;
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_record_round_trips() {
        let framed = encode_record(b"");
        assert_eq!(framed.len(), RECORD_OVERHEAD);
        let recs = decode_records(&framed, Path::new("x")).unwrap();
        assert_eq!(recs.len(), 1);
        assert!(recs[0].data.is_empty());
    }

    #[test]
    fn every_single_byte_flip_is_detected() {
        let mut file = encode_record(b"hello");
        file.extend(encode_record(b"world!"));
        for i in 0..file.len() {
            let mut bad = file.clone();
            bad[i] ^= 0x10;
            assert!(
                decode_records(&bad, Path::new("x")).is_err(),
                "flip at byte {i} went unnoticed"
            );
        }
    }

    #[test]
    fn truncation_is_detected() {
        let file = encode_record(b"hello");
        for cut in 1..file.len() {
            assert!(
                decode_records(&file[..cut], Path::new("x")).is_err(),
                "cut at {cut}"
            );
        }
    }
}
