//! Errors of the summary writers and readers. Every I/O error names the file
//! or directory it concerns, so a user can fix a bad `model_dir` from the
//! message alone.

use std::path::PathBuf;

/// Result of the summary module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong while writing or reading summaries and result files.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system call on `path` failed; `action` says which
    /// (e.g. "create directory", "write", "rename").
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What simclr tried to do.
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A record of an event file is damaged: a CRC mismatch, or the file ends
    /// inside a record.
    #[error("{}: record at byte {offset}: {what}", path.display())]
    Corrupt {
        /// The event file.
        path: PathBuf,
        /// Byte offset of the record's start.
        offset: u64,
        /// What is wrong with it.
        what: String,
    },

    /// A record's payload passed its CRC but is not an `Event` message.
    #[error("{}: record at byte {offset} is not a TensorBoard Event: {source}", path.display())]
    Decode {
        /// The event file.
        path: PathBuf,
        /// Byte offset of the record's start.
        offset: u64,
        /// The protobuf decoder's message.
        #[source]
        source: prost::DecodeError,
    },

    /// An image for an image summary is malformed (its pixel buffer does
    /// not match its shape, or it has no pixels or too many channels).
    #[error("invalid image for an image summary: {what}")]
    Image {
        /// What is wrong with the image.
        what: String,
    },

    /// A metric or flag set cannot be written as asked (a reserved or
    /// repeated name, flags that are not a JSON object).
    #[error("{}: {what}", path.display())]
    Invalid {
        /// The file that was to be written.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },

    /// Serializing a value to JSON failed.
    #[error("cannot serialize JSON for {}: {source}", path.display())]
    Json {
        /// The file that was to be written.
        path: PathBuf,
        /// serde_json's message.
        #[source]
        source: serde_json::Error,
    },

    /// Writing to or reading from a bucket failed.
    #[error(transparent)]
    Storage(#[from] crate::storage::Error),
}

impl Error {
    /// An [`Error::Io`] for `action` on `path`.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
