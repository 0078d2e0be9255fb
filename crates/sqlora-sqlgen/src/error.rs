//! The error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong between a question and its SQL.
#[derive(Debug, thiserror::Error)]
pub enum SqlgenError {
    /// A prompt template folder or file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A required prompt template is missing.
    #[error("missing file {}", .0.display())]
    Missing(PathBuf),
    /// A prompt template failed to load or render.
    #[error("prompt template {name}: {source}")]
    Template {
        /// The template name (`system.jinja`, `user.jinja`).
        name: String,
        /// The template engine's error.
        #[source]
        source: minijinja::Error,
    },
    /// A constraint could not be started (the answer prime is not a valid SQL beginning).
    #[error(transparent)]
    Constrain(#[from] sqlora_constrain::ConstrainError),
    /// The model runtime (chat template, tokenizer, generation) failed.
    #[error(transparent)]
    Model(#[from] sqlora_model::ModelError),
    /// An adapter could not be prepared for inference.
    #[error(transparent)]
    Adapter(#[from] sqlora_model::lora::AdapterError),
    /// A database's schema could not be read.
    #[error("reading the schema of {}: {source}", path.display())]
    Schema {
        /// The SQLite file.
        path: PathBuf,
        /// The introspection error.
        #[source]
        source: sqlora_sql::schema::SchemaError,
    },
    /// A database could not be opened to run candidates on.
    #[error("opening {} to run candidates: {source}", path.display())]
    Exec {
        /// The SQLite file.
        path: PathBuf,
        /// The executor's error.
        #[source]
        source: sqlora_sql::exec::ExecError,
    },
    /// Something went wrong for one question of a batch (the id names it).
    #[error("{what} of {id}: {source}")]
    Question {
        /// What was being done, e.g. `building the prompt`.
        what: &'static str,
        /// The question's id.
        id: String,
        /// The underlying error.
        #[source]
        source: Box<SqlgenError>,
    },
    /// The shared schema prompt of a database could not be prefilled.
    #[error("prefilling the schema prompt of {}: {source}", path.display())]
    Prefill {
        /// The SQLite file whose prompt it is.
        path: PathBuf,
        /// The model's error.
        #[source]
        source: sqlora_model::ModelError,
    },
    /// A question's prompt has no tokens.
    #[error("the prompt of {0} is empty")]
    EmptyPrompt(String),
    /// A line of an examples file (few-shot retrieval) is not a `{question, sql}` object.
    #[error("{}, line {line}: not an example (a JSON object with \"question\" and \"sql\"): {source}", path.display())]
    ExamplesLine {
        /// The JSONL file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// Options that cannot work (e.g. a batch size of 0).
    #[error("{0}")]
    Invalid(String),
}

impl SqlgenError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        SqlgenError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn question(what: &'static str, id: &str, source: impl Into<SqlgenError>) -> Self {
        SqlgenError::Question {
            what,
            id: id.to_string(),
            source: Box::new(source.into()),
        }
    }
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, SqlgenError>;
