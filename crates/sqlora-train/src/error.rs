//! Errors of the trainer.

use std::path::{Path, PathBuf};

/// Everything that can go wrong while training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The training configuration is invalid.
    #[error("training config: {0}")]
    Config(String),
    /// The training data cannot be used (empty, an answer longer than max_seq_len, ...).
    #[error("training data: {0}")]
    Data(String),
    /// A checkpoint is missing, malformed or does not fit this run.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// Reading or writing a file failed.
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The model, tokenizer or chat template failed.
    #[error(transparent)]
    Model(#[from] sqlora_model::ModelError),
    /// The adapter failed.
    #[error(transparent)]
    Adapter(#[from] sqlora_model::lora::AdapterError),
    /// A tensor operation failed.
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    /// A training hook (e.g. the dev-set evaluation) failed.
    #[error("evaluation during training: {0}")]
    Hook(String),
    /// A JSON value could not be written or read.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

impl TrainError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        TrainError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, TrainError>;
