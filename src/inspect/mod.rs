//! Inspection of the step programs: export of the HLO text and proto, of
//! XLA's optimized module, analytic costs per layer, memory statistics and
//! estimates and the parameter table ([`export`]); and a static HTML report
//! of an export with a search index ([`report`], [`search`]); whether a
//! step fits a device's memory ([`fit`]).
//!
//! Owns files and analyses of finished modules only. Not here: tracing the
//! programs (`simclr::step`), the printer (`ir::print`), compiling
//! (`pjrt`), and flag handling (`cli::export_hlo`, `cli::inspect`).

pub mod charts;
pub mod cost;
pub mod export;
pub mod fit;
pub mod memory;
pub mod params;
pub mod report;
pub mod search;

use std::path::PathBuf;
use thiserror::Error;

pub use export::{export_program, read_index, write_index, ExportIndex, ProgramEntry, Target};

/// Errors of exporting and reporting.
#[derive(Debug, Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A JSON file could not be written or read.
    #[error("{}: {message}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A setting (such as `--device_memory`) is not understood.
    #[error("{0}")]
    Config(String),
    /// A module could not be printed or decoded.
    #[error(transparent)]
    Ir(#[from] crate::ir::Error),
}
