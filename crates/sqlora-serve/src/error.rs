//! The error type of the service.

use std::path::PathBuf;

/// What can go wrong while serving; each maps to an HTTP status (see [`ServeError::status`]).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The model runtime failed.
    #[error("model: {0}")]
    Model(#[from] sqlora_model::ModelError),
    /// An adapter operation failed (e.g. it does not stack with the resident ones).
    #[error("adapter: {0}")]
    Adapter(#[from] sqlora_model::lora::AdapterError),
    /// A tensor operation failed.
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    /// Generation could not proceed (bad tokens, context overflow, ...).
    #[error("generation: {0}")]
    Generation(String),
    /// The request itself is invalid.
    #[error("{message}")]
    BadRequest {
        /// Machine-readable code, e.g. `empty_question`.
        code: &'static str,
        /// What is wrong, for humans.
        message: String,
    },
    /// An unknown database, adapter or model was named.
    #[error("{message}")]
    NotFound {
        /// Machine-readable code, e.g. `unknown_database`.
        code: &'static str,
        /// What was not found.
        message: String,
    },
    /// An adapter could not be loaded (corrupt, incompatible, missing files).
    #[error("adapter refused: {0}")]
    AdapterRefused(String),
    /// The adapter is in use by running requests.
    #[error("{0}")]
    Conflict(String),
    /// The request body is larger than the server accepts.
    #[error("{0}")]
    TooLarge(String),
    /// The queue is full; retry later.
    #[error("the request queue is full ({0} waiting); retry later")]
    QueueFull(usize),
    /// The request ran past its deadline.
    #[error("the request ran past its deadline of {0} ms")]
    Deadline(u64),
    /// The engine is gone (shutting down).
    #[error("the generation engine is not running")]
    EngineGone,
    /// A database could not be opened at start-up.
    #[error("database {path}: {message}")]
    Database {
        /// The SQLite file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// Building a prompt failed (templates, chat template rendering).
    #[error("prompt: {0}")]
    Prompt(#[source] sqlora_sqlgen::SqlgenError),
    /// Other start-up or internal failures.
    #[error("{0}")]
    Internal(String),
}

impl ServeError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            ServeError::BadRequest { .. } => 400,
            ServeError::NotFound { .. } => 404,
            ServeError::AdapterRefused(_) | ServeError::Adapter(_) => 422,
            ServeError::Conflict(_) => 409,
            ServeError::QueueFull(_) => 429,
            ServeError::TooLarge(_) => 413,
            ServeError::Deadline(_) => 504,
            ServeError::EngineGone => 503,
            ServeError::Generation(_) => 400,
            _ => 500,
        }
    }

    /// The machine-readable code of the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            ServeError::BadRequest { code, .. } | ServeError::NotFound { code, .. } => code,
            ServeError::AdapterRefused(_) | ServeError::Adapter(_) => "adapter_refused",
            ServeError::Conflict(_) => "conflict",
            ServeError::QueueFull(_) => "queue_full",
            ServeError::TooLarge(_) => "body_too_large",
            ServeError::Deadline(_) => "deadline_exceeded",
            ServeError::EngineGone => "unavailable",
            ServeError::Generation(_) => "generation_error",
            _ => "internal",
        }
    }

    /// A [`ServeError::BadRequest`].
    pub fn bad(code: &'static str, message: impl Into<String>) -> ServeError {
        ServeError::BadRequest {
            code,
            message: message.into(),
        }
    }

    /// A [`ServeError::NotFound`].
    pub fn not_found(code: &'static str, message: impl Into<String>) -> ServeError {
        ServeError::NotFound {
            code,
            message: message.into(),
        }
    }
}

impl From<sqlora_sqlgen::SqlgenError> for ServeError {
    /// The model runtime's own errors stay [`ServeError::Model`]; the rest is
    /// [`ServeError::Prompt`].
    fn from(e: sqlora_sqlgen::SqlgenError) -> Self {
        match e {
            sqlora_sqlgen::SqlgenError::Model(m) => ServeError::Model(m),
            other => ServeError::Prompt(other),
        }
    }
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, ServeError>;
