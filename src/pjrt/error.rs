//! Errors of the PJRT runtime: plugin errors (with the plugin's message and
//! absl code), missing functions, discovery failures, and the checks simclr
//! makes on the Rust side before a call that could crash the plugin.

use std::path::PathBuf;

/// Result of the PJRT runtime.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The absl status code a PJRT error carries (`PJRT_Error_Code`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 1.
    Cancelled,
    /// 2.
    Unknown,
    /// 3.
    InvalidArgument,
    /// 4.
    DeadlineExceeded,
    /// 5.
    NotFound,
    /// 6.
    AlreadyExists,
    /// 7.
    PermissionDenied,
    /// 8.
    ResourceExhausted,
    /// 9.
    FailedPrecondition,
    /// 10.
    Aborted,
    /// 11.
    OutOfRange,
    /// 12.
    Unimplemented,
    /// 13.
    Internal,
    /// 14.
    Unavailable,
    /// 15.
    DataLoss,
    /// 16.
    Unauthenticated,
    /// A code outside 1..=16 (0 would be OK and never reaches here).
    Other(i32),
}

impl ErrorCode {
    /// The code from its C value.
    pub fn from_raw(code: i32) -> Self {
        match code {
            1 => Self::Cancelled,
            2 => Self::Unknown,
            3 => Self::InvalidArgument,
            4 => Self::DeadlineExceeded,
            5 => Self::NotFound,
            6 => Self::AlreadyExists,
            7 => Self::PermissionDenied,
            8 => Self::ResourceExhausted,
            9 => Self::FailedPrecondition,
            10 => Self::Aborted,
            11 => Self::OutOfRange,
            12 => Self::Unimplemented,
            13 => Self::Internal,
            14 => Self::Unavailable,
            15 => Self::DataLoss,
            16 => Self::Unauthenticated,
            other => Self::Other(other),
        }
    }

    /// The absl name, e.g. `INVALID_ARGUMENT`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cancelled => "CANCELLED",
            Self::Unknown => "UNKNOWN",
            Self::InvalidArgument => "INVALID_ARGUMENT",
            Self::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Self::NotFound => "NOT_FOUND",
            Self::AlreadyExists => "ALREADY_EXISTS",
            Self::PermissionDenied => "PERMISSION_DENIED",
            Self::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Self::FailedPrecondition => "FAILED_PRECONDITION",
            Self::Aborted => "ABORTED",
            Self::OutOfRange => "OUT_OF_RANGE",
            Self::Unimplemented => "UNIMPLEMENTED",
            Self::Internal => "INTERNAL",
            Self::Unavailable => "UNAVAILABLE",
            Self::DataLoss => "DATA_LOSS",
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Other(_) => "UNKNOWN_CODE",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Other(c) => write!(f, "UNKNOWN_CODE({c})"),
            _ => f.write_str(self.name()),
        }
    }
}

/// Everything the PJRT runtime can report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A PJRT function returned an error.
    #[error("{function} failed ({code}): {message}")]
    Pjrt {
        /// The C function, e.g. `PJRT_Client_Compile`.
        function: &'static str,
        /// The absl code.
        code: ErrorCode,
        /// The plugin's message, verbatim.
        message: String,
    },

    /// The plugin does not offer a function: the slot is beyond its table,
    /// NULL, or the call returned `UNIMPLEMENTED`/`UNAVAILABLE`.
    #[error("{function} is not available from this PJRT plugin: {reason}")]
    Unimplemented {
        /// The C function.
        function: &'static str,
        /// Why: a missing slot, or the plugin's message.
        reason: String,
    },

    /// No plugin was found; `tried` lists every place looked at.
    #[error(
        "no PJRT plugin found; tried:\n{}\nrun tools/setup to install the CPU plugin, or pass --pjrt_plugin=PATH",
        tried.iter().map(|t| format!("  - {t}")).collect::<Vec<_>>().join("\n")
    )]
    PluginNotFound {
        /// One line per place tried, with what was wrong there.
        tried: Vec<String>,
    },

    /// `dlopen`/`dlsym` failed or the plugin's API table is unusable.
    #[error("cannot load PJRT plugin {}: {message}", path.display())]
    Load {
        /// The shared library.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },

    /// The plugin speaks an incompatible PJRT API major version.
    #[error(
        "PJRT plugin {} implements PJRT C API {major}.{minor}, but simclr speaks {}.{}; a different major version is ABI-incompatible",
        path.display(), super::ffi::API_MAJOR, super::ffi::API_MINOR
    )]
    IncompatibleVersion {
        /// The shared library.
        path: PathBuf,
        /// The plugin's major version.
        major: i32,
        /// The plugin's minor version.
        minor: i32,
    },

    /// A request rejected on the Rust side before reaching the plugin
    /// (missing replica count, a bad option, a malformed host array ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// An execute argument does not match the compiled module's parameter.
    #[error("replica {replica}, argument {index}: expected {expected}, got {got}")]
    ArgumentMismatch {
        /// Replica (index into the executable's addressable devices).
        replica: usize,
        /// Parameter number.
        index: usize,
        /// What the module's parameter needs.
        expected: String,
        /// What was passed.
        got: String,
    },

    /// Bytes from the plugin did not decode as the expected protobuf.
    #[error("cannot decode {what}: {source}")]
    Decode {
        /// Which message.
        what: &'static str,
        /// The prost error.
        source: prost::DecodeError,
    },
}

impl Error {
    /// The absl code of a plugin error, if this is one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Pjrt { code, .. } => Some(*code),
            _ => None,
        }
    }
}
