//! sqlora-eval: execution accuracy (EX) with the semantics of the official
//! Spider test-suite evaluator, Spider hardness, SQL skeletons and reports.
//!
//! * [`hardness`] — Spider's difficulty classifier.
//! * [`skeleton`] / [`normalize_sql`] — canonical text and literal-free skeletons.
//! * [`compare::result_eq`] — result comparison exactly as `exec_eval.py` does it.
//! * [`exec_match`] — run gold and prediction on every database of a test suite.
//! * [`evaluate`] — a whole dataset, with buckets by difficulty, domain and
//!   seen/unseen skeleton.

use std::path::PathBuf;

pub mod compare;
pub mod exec_match;
pub mod hardness;
mod pyvalue;
pub mod report;
pub mod skeleton;

pub use compare::result_eq;
pub use exec_match::{
    exec_match, postprocess, remove_distinct, suite_paths, MatchOptions, MatchOutcome,
};
pub use hardness::{hardness, hardness_counts, Difficulty, HardnessCounts};
pub use report::{
    evaluate, evaluate_with_progress, read_predictions, skeleton_set, Bucket, Detail, EvalItem,
    EvalOptions, Report,
};
pub use skeleton::{normalize_sql, skeleton};
pub use sqlora_sql::exec::Value;

/// Errors of the evaluator. A failing *prediction* is never an error (it is
/// scored wrong); these are problems with the dataset, the databases or the
/// input files.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The SQL text does not parse (SQLite dialect).
    #[error("cannot parse SQL `{sql}`: {message}")]
    Parse {
        /// The SQL text.
        sql: String,
        /// The parser's message.
        message: String,
    },
    /// The SQL parses but is not something this operation handles.
    #[error("unsupported SQL: {0}")]
    Unsupported(String),
    /// A difficulty name other than easy/medium/hard/extra.
    #[error("unknown difficulty `{0}` (expected easy, medium, hard or extra)")]
    BadDifficulty(String),
    /// A gold query failed on a database: the dataset is broken.
    #[error("gold query failed on {}: {message} (SQL: {sql})", db.display())]
    GoldFailed {
        /// The database file.
        db: PathBuf,
        /// The gold SQL as executed.
        sql: String,
        /// What went wrong.
        message: String,
    },
    /// An error concerning one dataset example.
    #[error("example `{id}` (db `{db_id}`): {source}")]
    Example {
        /// The example's id.
        id: String,
        /// The example's database id.
        db_id: String,
        /// The underlying error.
        #[source]
        source: Box<EvalError>,
    },
    /// No `*.sqlite` files where a test suite was expected.
    #[error("no database files (names containing `.sqlite`) in {}", .0.display())]
    NoDatabases(PathBuf),
    /// The schema of a database could not be read.
    #[error("cannot read the schema of {}: {message}", path.display())]
    Schema {
        /// The database file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The number of predictions does not match the number of examples.
    #[error("{got} predictions for {expected} examples")]
    PredictionCount {
        /// Number of examples.
        expected: usize,
        /// Number of predictions.
        got: usize,
    },
    /// A line of a predictions file is malformed.
    #[error("{}:{line}: {message}", path.display())]
    BadPrediction {
        /// The predictions file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
}
