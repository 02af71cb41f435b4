//! The crate's error type. Every variant that comes from input data names the file and, where
//! known, the line (jsonl, 1-based), the row (parquet, 0-based) and the byte offset.

use std::fmt;
use std::path::PathBuf;

/// Where in an input file a record sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Location {
    /// 1-based line of a jsonl file.
    Line(u64),
    /// 0-based row of a Parquet file.
    Row(u64),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Line(n) => write!(f, "line {n}"),
            Location::Row(n) => write!(f, "row {n}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: no such file or directory")]
    NotFound { path: PathBuf },
    #[error("{what}: no input files match (expected .jsonl, .jsonl.gz, .jsonl.zst or .parquet)")]
    NoInputFiles { what: String },
    #[error("{path}: unsupported file type (expected .jsonl, .jsonl.gz, .jsonl.zst or .parquet)")]
    UnsupportedFormat { path: PathBuf },
    #[error("{file}:{location}{}: {reason}", offset.map(|o| format!(" (byte {o})")).unwrap_or_default())]
    BadRecord { file: PathBuf, location: Location, offset: Option<u64>, reason: String },
    #[error("{file}: compressed stream is truncated or corrupt after line {line}: {source}")]
    Truncated {
        file: PathBuf,
        line: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Schema { file: PathBuf, message: String },
    #[error("{file}: {source}")]
    Parquet {
        file: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("{context}: {source}")]
    Arrow {
        context: String,
        #[source]
        source: arrow::error::ArrowError,
    },
    #[error("{path}: {message}")]
    Model { path: PathBuf, message: String },
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    InvalidArgument(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    pub fn arrow(context: impl Into<String>, source: arrow::error::ArrowError) -> Self {
        Error::Arrow { context: context.into(), source }
    }
}

/// Sections that turn a panic of a dependency into an error (the parquet decoder asserts on
/// some damaged files; DataFusion panics on others). While one runs, the panic hook that
/// `cli::main` installs stays quiet: the error that follows says what happened.
static GUARDED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Whether a panic now would be caught by [`catch_panic`] (or another guarded section).
pub fn panics_are_caught() -> bool {
    GUARDED.load(std::sync::atomic::Ordering::SeqCst) > 0
}

/// Counts a guarded section while it lives.
pub struct PanicGuard(());

impl PanicGuard {
    pub fn new() -> Self {
        GUARDED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        PanicGuard(())
    }
}

impl Default for PanicGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for PanicGuard {
    fn drop(&mut self) {
        GUARDED.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The message of a caught panic.
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown cause".into())
}

/// Run `f`, with a panic inside it turned into `Err(its message)`.
pub fn catch_panic<T>(f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    let _guard = PanicGuard::new();
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| panic_message(p.as_ref()))
}
