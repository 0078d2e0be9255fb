//! The error type of the service.
//!
//! Each variant maps to an HTTP status and a machine-readable code ([`ServeError::status`],
//! [`ServeError::code`]): mistakes in a request are 4xx with a specific code; failures of the
//! engine or the model are 5xx (500, or 503 when the engine is not running), and keep the
//! error that caused them as their [`std::error::Error::source`].

use std::path::PathBuf;
use std::sync::Arc;

/// What can go wrong while serving; each maps to an HTTP status (see [`ServeError::status`]).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The model runtime failed (500).
    #[error("model: {0}")]
    Model(#[from] sqlora_model::ModelError),
    /// An adapter operation failed (e.g. it does not stack with the resident ones).
    #[error("adapter: {0}")]
    Adapter(#[from] sqlora_model::lora::AdapterError),
    /// A tensor operation failed (500).
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    /// A forward step found an inconsistency inside the engine (rows and adapters out of
    /// step, a cache on the wrong device, ...): a server fault, not the request's (500).
    /// What a request can get wrong (an empty prompt, a prompt longer than the context,
    /// token ids outside the vocabulary) is checked before any step, as a
    /// [`ServeError::BadRequest`].
    #[error("generation: {0}")]
    Generation(String),
    /// A forward step of the batch failed; every row of that step gets this error, with the
    /// step's error as its source (500).
    #[error("the generation step failed: {0}")]
    Step(#[source] Arc<ServeError>),
    /// An adapter was made for another base model than the one being served, or what it says
    /// about its base cannot be read (422, `adapter_wrong_base`).
    #[error("adapter refused: {context}: {source}")]
    AdapterBase {
        /// The adapter folder.
        context: String,
        /// Why (usually [`sqlora_model::ModelError::BaseModelMismatch`], naming both bases).
        #[source]
        source: sqlora_model::ModelError,
    },
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
    /// The request is not allowed here (e.g. adding databases on a server without
    /// `--db-root`, a path outside it).
    #[error("{message}")]
    Forbidden {
        /// Machine-readable code.
        code: &'static str,
        /// What is wrong and what to do.
        message: String,
    },
    /// The request is well-formed but names something unusable (e.g. a file that is not a
    /// SQLite database, a corrected SQL the guard refused or that did not run).
    #[error("{message}")]
    Unprocessable {
        /// Machine-readable code.
        code: &'static str,
        /// What is wrong.
        message: String,
    },
    /// An adapter could not be loaded (corrupt, incompatible, missing files).
    #[error("adapter refused: {context}: {source}")]
    AdapterRefused {
        /// Which adapter (its folder, or what was being done with it).
        context: String,
        /// Why the model runtime refused it.
        #[source]
        source: sqlora_model::lora::AdapterError,
    },
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
    /// Building a prompt failed (templates, chat template rendering): the server's own
    /// templates, so a server fault (500).
    #[error("prompt: {0}")]
    Prompt(#[source] Box<sqlora_sqlgen::SqlgenError>),
    /// The feedback store failed (500, `feedback_store`).
    #[error("{0}")]
    Feedback(#[from] crate::feedback::FeedbackError),
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
            ServeError::Forbidden { .. } => 403,
            ServeError::Unprocessable { .. } => 422,
            ServeError::AdapterRefused { .. }
            | ServeError::AdapterBase { .. }
            | ServeError::Adapter(_) => 422,
            ServeError::Conflict(_) => 409,
            ServeError::QueueFull(_) => 429,
            ServeError::TooLarge(_) => 413,
            ServeError::Deadline(_) => 504,
            ServeError::EngineGone => 503,
            ServeError::Step(_)
            | ServeError::Generation(_)
            | ServeError::Model(_)
            | ServeError::Candle(_)
            | ServeError::Prompt(_)
            | ServeError::Database { .. }
            | ServeError::Feedback(_)
            | ServeError::Internal(_) => 500,
        }
    }

    /// The machine-readable code of the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            ServeError::BadRequest { code, .. }
            | ServeError::NotFound { code, .. }
            | ServeError::Forbidden { code, .. }
            | ServeError::Unprocessable { code, .. } => code,
            ServeError::AdapterRefused { .. } | ServeError::Adapter(_) => "adapter_refused",
            ServeError::AdapterBase { .. } => "adapter_wrong_base",
            ServeError::Conflict(_) => "conflict",
            ServeError::QueueFull(_) => "queue_full",
            ServeError::TooLarge(_) => "body_too_large",
            ServeError::Deadline(_) => "deadline_exceeded",
            ServeError::EngineGone => "unavailable",
            ServeError::Step(_) | ServeError::Generation(_) => "generation_failed",
            ServeError::Model(_) | ServeError::Candle(_) => "model_error",
            ServeError::Prompt(_) => "prompt_error",
            ServeError::Feedback(_) => "feedback_store",
            ServeError::Database { .. } | ServeError::Internal(_) => "internal",
        }
    }

    /// A [`ServeError::BadRequest`].
    pub fn bad(code: &'static str, message: impl Into<String>) -> ServeError {
        ServeError::BadRequest {
            code,
            message: message.into(),
        }
    }

    /// A [`ServeError::AdapterRefused`]: `context` names the adapter or what was done with it.
    pub fn adapter_refused(
        context: impl Into<String>,
        source: sqlora_model::lora::AdapterError,
    ) -> ServeError {
        ServeError::AdapterRefused {
            context: context.into(),
            source,
        }
    }

    /// A [`ServeError::Step`] wrapping the failed step's error.
    pub fn step(source: ServeError) -> ServeError {
        ServeError::Step(Arc::new(source))
    }

    /// A [`ServeError::Unprocessable`].
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> ServeError {
        ServeError::Unprocessable {
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
            other => ServeError::Prompt(Box::new(other)),
        }
    }
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, ServeError>;
