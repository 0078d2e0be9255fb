//! The error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while reading, building, importing or checking datasets.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A JSONL line (or a JSON file when `line` is 0) is malformed.
    #[error("{}{}: {source}", path.display(), if *line > 0 { format!(":{line}") } else { String::new() })]
    Json {
        /// The file.
        path: PathBuf,
        /// 1-based line number, 0 for a whole-file JSON document.
        line: usize,
        /// The parse error.
        source: serde_json::Error,
    },
    /// SQLite failed on a database or SQL script.
    #[error("{context}: {source}")]
    Sqlite {
        /// What was being done (usually names the file).
        context: String,
        /// The underlying error.
        source: rusqlite::Error,
    },
    /// A required file is missing.
    #[error("missing file {}", .0.display())]
    Missing(PathBuf),
    /// An unknown split name was asked for.
    #[error("unknown split {0:?} (expected train, dev or test)")]
    UnknownSplit(String),
    /// Input that is well-formed but not what this crate can use.
    #[error("{}: {message}", path.display())]
    Invalid {
        /// The file or directory involved.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// An error from the SQL layer (schema introspection, guard, execution).
    #[error("{context}: {message}")]
    Sql {
        /// What was being done.
        context: String,
        /// The SQL layer's message.
        message: String,
    },
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn sqlite(context: impl Into<String>, source: rusqlite::Error) -> Self {
        DataError::Sqlite {
            context: context.into(),
            source,
        }
    }
}
