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
//! `[WITH [RECURSIVE] name [(cols)] AS (select), …] select-core [UNION [ALL] | INTERSECT |
//! EXCEPT select-core]… [ORDER BY expr [COLLATE c] [ASC|DESC] [NULLS FIRST|LAST], …] [LIMIT
//! expr [OFFSET expr | , expr]] [;]`, where a core is `SELECT [DISTINCT|ALL] items [FROM
//! tables-and-joins] [WHERE expr] [GROUP BY exprs [HAVING expr]]`: items are `*`, `t.*` or
//! expressions with an optional `[AS] alias`; tables are schema tables, CTEs or `(subquery)`,
//! with an optional `[AS] alias`, joined by `,` or `[LEFT|RIGHT|FULL [OUTER]|INNER|CROSS]
//! JOIN` with `ON expr` (its columns qualified: SQLite reads an ON clause's names against the
//! whole FROM clause, tables joined later included) or `USING (cols)`. Expressions: literals (strings, numbers,
//! `NULL`, `TRUE`, `FALSE`, `CURRENT_DATE`…), columns (`col`, `t.col`, quoted with `"…"`,
//! `` `…` `` or `[…]`), unary and binary operators, `[NOT] LIKE/GLOB`, `IS [NOT] [DISTINCT
//! FROM]`, `ISNULL`, `NOTNULL`, `NOT NULL`, `[NOT] BETWEEN … AND …`, `[NOT] IN (list |
//! subquery)`, `[NOT] EXISTS (subquery)`, scalar subqueries, `CASE`, `CAST(x AS type)`,
//! `COLLATE`, and calls of a fixed list of SQLite functions with their arities (aggregates
//! only where SQLite allows them: not in WHERE, GROUP BY, ON, LIMIT, nor inside another
//! aggregate; `count(*)`, `count(DISTINCT x)`). Keywords are case-insensitive; whitespace and
//! newlines may stand between any two tokens; string literals (`'…'` with `''`) and numbers
//! are free. The statement ends at end of text, at `;` (then only whitespace) or at a blank
//! line (as `sqlora_sqlgen::sql::statement_complete` reads it).
//!
//! Not covered (refused): other statements, `NATURAL` joins, `VALUES`, window functions (`OVER`), `FILTER`,
//! row values, comments, bound parameters, blob literals, `ESCAPE`, `REGEXP`/`MATCH`,
//! table-valued functions, `INDEXED BY`, schema-qualified names (`main.t`), and double-quoted
//! text used as a string.
//!
//! # What is guaranteed
//!
//! A statement the recognizer lets end ([`SqlState::can_end`]) names only tables of the
//! schema or CTEs in scope, and every column reference is a column of a table in scope:
//! a qualified `t.col` a column of the table or alias `t`, an unqualified one a column of
//! exactly one table of the nearest enclosing SELECT that has it (or a select-list alias of
//! the same SELECT). A select list comes before its FROM clause: its names are checked against
//! every table of the schema while it is written (a column no table has is refused at once,
//! and `t.a, t.b` only while some table has both) and resolved when the FROM clause ends; the
//! clauses after FROM and the end of the statement are refused until they resolve, so a model
//! can still join the table it needs. Subqueries, CTE bodies and compound members have their
//! own scopes; a correlated reference reaches the enclosing SELECTs. CTEs and FROM subqueries
//! expose the columns their select lists name (a column, an alias, `*` expanded); when they
//! cannot be followed every column of them is allowed.
//!
//! It also refuses most of what SQLite would refuse at prepare time (ambiguous columns,
//! compound members or scalar subqueries with the wrong number of columns, positional
//! `ORDER BY`/`GROUP BY` terms out of range, wrong function arities, misplaced aggregates), but
//! only the names are the promise: an `ON` clause referring to a table joined later, or a
//! `USING` column, may still be refused by SQLite. Values are not checked.
//!
//! Every state that is alive has a continuation that completes (nothing is allowed that can
//! only lead to a dead end), except where a select list names columns that no set of joined
//! tables can provide together under one alias.

mod constraint;
mod parser;
mod state;
mod vocab;
mod words;

pub use constraint::{SqlConstraint, DEFAULT_PRIME};
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
