//! Schema-constrained decoding of SQL, in the manner of PICARD (Scholak, Schucher and
//! Bahdanau, *PICARD: Parsing Incrementally for Constrained Auto-Regressive Decoding from
//! Language Models*, EMNLP 2021): while a model writes a query, a token is allowed only if the
//! text so far stays a valid prefix of one read-only SQLite statement over this database's
//! schema.
//!
//! - [`SqlState`] is an incremental, byte-level recognizer: a small lexer (words, numbers,
//!   string literals, quoted names, operators) in front of a pushdown automaton over SQL
//!   tokens that keeps the name scope of every SELECT being parsed. It is cheap to clone (a
//!   vector of small states; scopes and the schema are shared behind `Arc`s), so asking about
//!   a token is: clone, feed the token's bytes, see whether it is still alive. Nothing is
//!   re-parsed.
//! - [`SqlConstraint`] is the recognizer as a [`sqlora_model::constraint::Constraint`] over a
//!   tokenizer's [`Vocab`]: end-of-sequence tokens are allowed only when the text is a
//!   complete statement, other special tokens never.
//!
//! # The grammar
//!
//! `[WITH [RECURSIVE] name [(cols)] AS (select), …] core [UNION [ALL] | INTERSECT | EXCEPT
//! core]… [ORDER BY term [ASC|DESC] [NULLS FIRST|LAST], …] [LIMIT n [OFFSET n | , n]] [;]`,
//! where a core is `SELECT [DISTINCT|ALL] items [FROM tables] [WHERE expr] [GROUP BY exprs
//! [HAVING expr]]`.
//!
//! - Items: `*`, `t.*`, or expressions with an optional `[AS] alias` (usable in WHERE, GROUP
//!   BY, HAVING and ORDER BY of the same SELECT).
//! - Tables: schema tables (and views), CTEs in scope, `(subquery)`, each with an optional
//!   `[AS] alias`, joined by `,` or `[LEFT|RIGHT|FULL [OUTER]|INNER|CROSS] JOIN` with
//!   `ON expr` or `USING (col, …)`. An ON clause reads only qualified column names: SQLite
//!   resolves its names against the whole FROM clause, tables joined later included.
//! - Expressions: literals (strings, numbers, `NULL`, `TRUE`, `FALSE`, `CURRENT_DATE`,
//!   `CURRENT_TIME`, `CURRENT_TIMESTAMP`), columns (`col`, `t.col`, names quoted with `"…"`,
//!   `` `…` `` or `[…]`, a doubled `""` or ``` `` ``` standing for one quote inside the name;
//!   names compare ASCII-case-insensitively, as SQLite's do), unary (`-`, `+`, `~`, `NOT`) and binary operators, `[NOT] LIKE`,
//!   `[NOT] GLOB`, `IS [NOT] [DISTINCT FROM]`, `ISNULL`, `NOTNULL`, `NOT NULL`, `[NOT] BETWEEN
//!   … AND …`, `[NOT] IN (list | subquery)`, `[NOT] EXISTS (subquery)`, scalar subqueries,
//!   `CASE`, `CAST(x AS type)`, `COLLATE binary|nocase|rtrim`, and calls of a fixed list of
//!   SQLite core, date and aggregate functions with their arities (`count(*)`,
//!   `count(DISTINCT x)`; aggregates only where SQLite takes them: not in WHERE, GROUP BY, ON,
//!   nor inside another aggregate).
//! - ORDER BY and GROUP BY terms that SQLite reads as positions (`2`, `(2)`, `-1`, `0 AND x`)
//!   must be in range; a compound's ORDER BY terms are result-column numbers or names.
//! - Keywords are case-insensitive; whitespace and newlines may stand between any two tokens;
//!   string literals (`'…'`, `''` inside) and numbers are free. The statement ends at the end
//!   of the text, at `;` (then only whitespace) or at a blank line, the places where
//!   `sqlora_sqlgen::sql::statement_complete` says a statement is over.
//!
//! Not covered (refused): other statements, `VALUES`, `NATURAL` joins, window functions
//! (`OVER`), `FILTER`, row values, comments, bound parameters, blob literals, `ESCAPE`,
//! `REGEXP`/`MATCH`, table-valued functions, `INDEXED BY`, schema-qualified names (`main.t`),
//! expressions in LIMIT/OFFSET, `COLLATE` in a compound's
//! ORDER BY, and double-quoted text used as a string (SQLite's legacy fallback).
//!
//! # What is guaranteed
//!
//! A statement the recognizer lets end ([`SqlState::can_end`]; the end-of-sequence token of
//! [`SqlConstraint`]) names only tables of the schema and CTEs in scope, and every column it
//! reads is a column of a table in scope: a qualified `t.col` a column of the table or alias
//! `t`, an unqualified one a column of exactly one table of the nearest SELECT that has it (or
//! one of that SELECT's select-list aliases). Subqueries, CTE bodies and the members of a
//! compound have their own scopes; a correlated subquery reaches the SELECTs around it, a FROM
//! subquery or CTE body does not. CTEs and FROM subqueries expose the columns their select
//! lists name (a column, an alias, `*` expanded); where that cannot be followed (a recursive
//! CTE without a column list) every name is taken as a column of it.
//!
//! A select list comes before its FROM clause, so its names are checked twice: while it is
//! written, a column must be a column of some schema table or CTE (a name no table has is
//! refused at its first impossible byte), `t.a, t.b` only while some table has both, and a
//! qualifier not declared yet must be a table's name or a short alias (at most
//! [`FORWARD_ALIAS_MAX`] bytes, so that a misspelt column is not taken for an alias); when the
//! FROM clause ends they are resolved against it, and the clauses after FROM and the end of
//! the statement are refused until they resolve, so a model can still join the table it
//! needs. [`Options::forward_names`] also lets a select list name columns that only a FROM
//! subquery will provide (`SELECT avg(n) FROM (SELECT count(*) AS n …)`, 2 of the 3,060 bundled
//! gold queries).
//!
//! The recognizer also refuses what SQLite refuses at prepare time that a model is likely to
//! write: ambiguous columns, compound members and scalar or IN subqueries with the wrong
//! number of columns, wrong function arities, misplaced aggregates, positions out of range.
//! The property test (`tests/property.rs`) prepares every statement that random token walks
//! over random schemas bring to an end on SQLite itself and finds none refused; but only the
//! names are the promise (known gap: an aggregate whose arguments read only an enclosing
//! SELECT's columns belongs to that SELECT, and SQLite refuses it where that one may not
//! aggregate). Values are not checked.
//!
//! Nothing alive is a dead end: a text the recognizer accepts can be completed into a
//! statement it lets end, byte by byte (the property test walks random vocabularies, every
//! printable byte included, and never finds a place where nothing is allowed). A table may
//! not take a name (its own or an alias) under which the select list read a column it lacks,
//! so `SELECT T1.email FROM products` must go on `AS` another alias and join the table `T1`
//! stands for. With [`Options::forward_names`], a select-list name that no table has can only
//! be provided by a FROM subquery.

mod constraint;
mod cut;
mod parser;
mod state;
mod vocab;
mod words;

pub use constraint::{SqlConstraint, DEFAULT_PRIME, MASK_AFTER};
pub use cut::{complete_prefix, CUT_BEFORE};
pub use parser::{Options, FORWARD_ALIAS_MAX};
pub use state::SqlState;
pub use vocab::{TokenText, Vocab};
pub use words::SchemaIndex;

/// Errors of the constraint.
#[derive(Debug, thiserror::Error)]
pub enum ConstrainError {
    /// The text the answer starts with is not a valid beginning of a statement.
    #[error("the answer prefix {0:?} is not the beginning of a valid SQL statement")]
    InvalidPrefix(String),
}
