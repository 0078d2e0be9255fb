//! sqlora-data: datasets, their databases and their quality checks. Prompts and everything
//! else between a question and its SQL live in `sqlora-sqlgen`.
//!
//! * [`dataset`] — [`Example`] JSONL files (atomic writes) and the
//!   `datasets/<domain>/` layout ([`Domain`], [`list_domains`]).
//! * [`fixtures`] — deterministic SQLite builds of a domain plus seeded
//!   test-suite variants ([`build_domain`], [`build_all`], [`content_checksum`]).
//! * [`spider`] — Spider / BIRD import into the domain layout ([`import_spider`]).
//! * [`check`] — the dataset linter ([`check_domain`], [`check_all`]).
//! * [`near`] — near-duplicates between hand-written training examples and held-out
//!   questions ([`near::near_duplicates`]), one of the linter's rules.

pub mod check;
pub mod dataset;
mod deps;
pub mod error;
pub mod fixtures;
pub mod near;
pub mod spider;

pub use check::{
    check_all, check_domain, check_domain_with, CheckIssue, CheckReport, DomainStats, Thresholds,
};
pub use dataset::{list_domains, read_jsonl, write_jsonl, Domain, Example};
pub use deps::Difficulty;
pub use error::DataError;
pub use fixtures::{build_all, build_domain, content_checksum, BuiltDb};
pub use spider::{import_spider, ImportSummary};
