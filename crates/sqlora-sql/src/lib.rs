//! sqlora-sql: the safety layer every model-generated query passes through.
//!
//! - [`schema`]: introspect a SQLite database into a [`Schema`] (DDL and compact renderings for prompts);
//! - [`guard`]: parse with sqlparser (SQLite dialect), enforce the read-only policy and check names against the schema;
//! - [`repair`]: requalify a select-list column read under the wrong alias (the one repair made to generated SQL);
//! - [`exec`]: run accepted queries on a read-only connection under time, row and byte budgets.

pub mod exec;
pub mod guard;
pub mod repair;
pub mod schema;

pub use exec::{
    open_read_only, open_read_only_with, run_query, ExecError, ExecLimits, QueryResult, ReadOnlyDb,
    Value,
};
pub use guard::{check_policy, Guard, GuardCode, GuardError, Position};
pub use repair::requalify;
pub use schema::{quote_ident, Column, ForeignKey, Schema, SchemaError, Table};
