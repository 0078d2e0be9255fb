//! The error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while fetching, loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("chat template: {0}")]
    Template(String),
    #[error("model format: {0}")]
    Format(String),
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("fetching the default model: {0}")]
    Fetch(String),
    #[error("generation: {0}")]
    Generation(String),
    #[error("fetching {name}: {message}")]
    FetchModel { name: String, message: String },
    #[error("the model {name} is not downloaded yet (expected at {}); run `sqlora model fetch {name}` first", path.display())]
    NotFetched { name: String, path: PathBuf },
    #[error("no model {spec:?}: it is neither an existing .gguf file or Hugging Face folder nor a known model name (known: {known}; see `sqlora model list`)")]
    UnknownModel { spec: String, known: String },
    #[error("the adapter {adapter} was made for another base model ({adapter_base}); the loaded model is {loaded}")]
    BaseModelMismatch {
        adapter: String,
        adapter_base: String,
        loaded: String,
    },
}

pub type Result<T> = std::result::Result<T, ModelError>;

impl ModelError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ModelError::Io {
            path: path.into(),
            source,
        }
    }
}
