//! The error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while fetching, loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A tensor operation failed.
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    /// Reading or writing a file failed.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The tokenizer could not be built or failed on a text.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The chat template could not be read or rendered.
    #[error("chat template: {0}")]
    Template(String),
    /// A model file or value is malformed (found by sqlora's own checks).
    #[error("model format: {0}")]
    Format(String),
    /// A model file is malformed and another error found it (a JSON parser, the safetensors
    /// or GGUF reader, a weight that did not load), kept as the source.
    #[error("model format: {context}: {source}")]
    Malformed {
        /// What was being read, e.g. `config.json` or `model.gguf: tensor token_embd.weight`.
        context: String,
        /// The error that found it.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The model uses something sqlora does not implement.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The default model could not be fetched.
    #[error("fetching the default model: {0}")]
    Fetch(String),
    /// Generation could not proceed (an empty prompt, ...).
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

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, ModelError>;

impl ModelError {
    /// A [`ModelError::Io`] on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ModelError::Io {
            path: path.into(),
            source,
        }
    }

    /// A [`ModelError::Malformed`]: `context` names what was read, `source` what went wrong.
    pub fn malformed(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        ModelError::Malformed {
            context: context.into(),
            source: source.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ModelError;

    #[test]
    fn a_malformed_file_keeps_the_error_that_found_it() {
        let e = crate::config::Config::from_hf_json_str("{\"model_type\": ").unwrap_err();
        assert!(
            e.to_string().starts_with("model format: config.json: "),
            "{e}"
        );
        let source = std::error::Error::source(&e).expect("the parser's error is kept");
        assert!(source.downcast_ref::<serde_json::Error>().is_some());
        assert!(matches!(e, ModelError::Malformed { .. }));
    }
}
