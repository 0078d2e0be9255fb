//! sqlora-data: datasets (JSONL), prompt templates, fixture databases (with
//! test-suite variants), Spider import and the dataset linter.

pub mod check;
pub mod dataset;
mod deps;
pub mod error;
pub mod fixtures;
pub mod prompt;
pub mod spider;

pub use check::{
    check_all, check_domain, check_domain_with, CheckIssue, CheckReport, DomainStats, Thresholds,
};
pub use dataset::{list_domains, read_jsonl, write_jsonl, Domain, Example};
pub use deps::Difficulty;
pub use error::DataError;
pub use fixtures::{build_all, build_domain, content_checksum, BuiltDb};
pub use prompt::{
    extract_sql, one_line_sql, ChatMessage, PromptBuilder, RenderedExample, TrainingExample,
};
pub use spider::{import_spider, ImportSummary};
