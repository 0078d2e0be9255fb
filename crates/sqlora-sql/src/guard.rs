//! The SQL guard: a read-only policy check ([`check_policy`]) and a schema
//! check ([`Guard::check`]) that every model-generated query passes before it
//! is executed.
//!
//! Policy decisions (documented here because they are choices):
//! - Exactly one statement, which must be a query (`SELECT`, `WITH … SELECT`,
//!   `UNION`/`INTERSECT`/`EXCEPT`, `VALUES`). A trailing `;` is fine.
//! - Refused functions ([`GuardCode::DangerousFunction`]): `load_extension`,
//!   the CLI file helpers `readfile`, `writefile`, `edit`, `fsdir`, `zipfile`,
//!   `sqlar_compress`, `sqlar_uncompress`, `fts3_tokenizer`, raw-page tables
//!   `sqlite_dbpage`, `sqlite_dbdata`, `sqlite_dbptr`, and `randomblob`/`zeroblob`
//!   whose literal size exceeds [`MAX_BLOB_ARG`] (non-literal sizes are capped at
//!   execution time by `SQLITE_LIMIT_LENGTH`). `sqlite_version()` and
//!   `sqlite_compileoption_*` are allowed: they only disclose build information.
//! - `pragma_*` table-valued functions are refused as [`GuardCode::Pragma`].
//! - Reading `sqlite_master`/`sqlite_schema`/`sqlite_temp_master` is allowed: on
//!   a read-only, `query_only` connection it cannot change anything, and the
//!   schema is shown to the model anyway.
//! - Unknown *unqualified* identifiers written in double quotes are accepted,
//!   because SQLite treats `"text"` that names no column as a string literal
//!   (Spider's gold SQL relies on it).

use std::fmt;
use std::ops::ControlFlow;

use serde::Serialize;
use sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, ObjectName, Query, Select,
    SelectItem, SelectItemQualifiedWildcardKind, SetExpr, Spanned, Statement, TableFactor, Value,
    Visit, Visitor,
};
use sqlparser::dialect::SQLiteDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

use crate::schema::Schema;

/// Longest SQL text (in bytes) the guard accepts.
pub const MAX_SQL_BYTES: usize = 20_000;

/// Largest literal size accepted for `randomblob(n)` / `zeroblob(n)`.
pub const MAX_BLOB_ARG: f64 = 1_000_000.0;

/// Why the guard refused a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardCode {
    /// Nothing but whitespace, comments or semicolons.
    Empty,
    /// The text does not parse as SQLite SQL.
    Parse,
    /// More than one statement.
    MultipleStatements,
    /// A write of any kind (INSERT/UPDATE/DELETE/REPLACE/UPSERT/…) or another non-query statement.
    NotReadOnly,
    /// Schema changes: CREATE, DROP, ALTER, REINDEX, ANALYZE, …
    Ddl,
    /// ATTACH or DETACH.
    Attach,
    /// PRAGMA statements and `pragma_*` table-valued functions.
    Pragma,
    /// VACUUM (including `VACUUM INTO`).
    Vacuum,
    /// BEGIN/COMMIT/ROLLBACK/SAVEPOINT/RELEASE.
    Transaction,
    /// A refused function (see the module docs).
    DangerousFunction,
    /// A table that is not in the schema.
    UnknownTable,
    /// A column that is not in any table in scope.
    UnknownColumn,
    /// An unqualified column found in two or more tables of the same FROM clause
    /// (not reported when USING/NATURAL joins merge columns).
    AmbiguousColumn,
    /// The SQL text is longer than [`MAX_SQL_BYTES`].
    TooLong,
}

impl GuardCode {
    /// The snake_case name used in JSON.
    pub fn as_str(&self) -> &'static str {
        match self {
            GuardCode::Empty => "empty",
            GuardCode::Parse => "parse",
            GuardCode::MultipleStatements => "multiple_statements",
            GuardCode::NotReadOnly => "not_read_only",
            GuardCode::Ddl => "ddl",
            GuardCode::Attach => "attach",
            GuardCode::Pragma => "pragma",
            GuardCode::Vacuum => "vacuum",
            GuardCode::Transaction => "transaction",
            GuardCode::DangerousFunction => "dangerous_function",
            GuardCode::UnknownTable => "unknown_table",
            GuardCode::UnknownColumn => "unknown_column",
            GuardCode::AmbiguousColumn => "ambiguous_column",
            GuardCode::TooLong => "too_long",
        }
    }
}

impl fmt::Display for GuardCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A 1-based line/column position in the SQL text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Position {
    /// Line, starting at 1.
    pub line: u64,
    /// Column, starting at 1.
    pub column: u64,
}

impl Position {
    fn from_location(loc: Location) -> Option<Position> {
        (loc.line > 0 && loc.column > 0).then_some(Position {
            line: loc.line,
            column: loc.column,
        })
    }
}

/// A structured refusal.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct GuardError {
    /// Machine-readable reason.
    pub code: GuardCode,
    /// Human-readable explanation.
    pub message: String,
    /// Where in the SQL text, when known.
    pub position: Option<Position>,
    /// A near-miss name the author probably meant, when there is one.
    pub suggestion: Option<String>,
}

impl GuardError {
    fn new(code: GuardCode, message: impl Into<String>) -> GuardError {
        GuardError {
            code,
            message: message.into(),
            position: None,
            suggestion: None,
        }
    }

    fn at(mut self, loc: Location) -> GuardError {
        self.position = Position::from_location(loc);
        self
    }
}

const DENIED_FUNCTIONS: &[&str] = &[
    "load_extension",
    "readfile",
    "writefile",
    "edit",
    "fsdir",
    "zipfile",
    "sqlar_compress",
    "sqlar_uncompress",
    "fts3_tokenizer",
    "sqlite_dbpage",
    "sqlite_dbdata",
    "sqlite_dbptr",
];

/// True for a function or table-valued function the policy refuses.
pub fn is_denied_function(name: &str) -> bool {
    DENIED_FUNCTIONS
        .iter()
        .any(|d| d.eq_ignore_ascii_case(name))
}

fn significant(tokens: &[TokenWithSpan]) -> impl Iterator<Item = (usize, &TokenWithSpan)> {
    tokens
        .iter()
        .enumerate()
        .filter(|(_, t)| !matches!(t.token, Token::Whitespace(_) | Token::EOF))
}

/// Classifies a statement by its leading keyword (used when the parser cannot
/// produce an AST, and to give CREATE TRIGGER … the code `ddl`).
fn classify_keyword(word: &str) -> Option<GuardCode> {
    let w = word.to_ascii_uppercase();
    Some(match w.as_str() {
        "INSERT" | "UPDATE" | "DELETE" | "REPLACE" | "UPSERT" | "MERGE" | "TRUNCATE" => {
            GuardCode::NotReadOnly
        }
        "CREATE" | "DROP" | "ALTER" | "REINDEX" | "ANALYZE" | "RENAME" | "COMMENT" => {
            GuardCode::Ddl
        }
        "ATTACH" | "DETACH" => GuardCode::Attach,
        "PRAGMA" => GuardCode::Pragma,
        "VACUUM" => GuardCode::Vacuum,
        "BEGIN" | "COMMIT" | "END" | "ROLLBACK" | "SAVEPOINT" | "RELEASE" | "START" => {
            GuardCode::Transaction
        }
        _ => return None,
    })
}

fn classify_statement(stmt: &Statement) -> GuardCode {
    let debug = format!("{stmt:?}");
    let variant: String = debug.chars().take_while(|c| c.is_alphanumeric()).collect();
    let v = variant.as_str();
    if v.starts_with("Create")
        || v.starts_with("Drop")
        || v.starts_with("Alter")
        || v.starts_with("Rename")
        || v == "Analyze"
        || v == "Comment"
    {
        GuardCode::Ddl
    } else if v.starts_with("Attach") || v.starts_with("Detach") {
        GuardCode::Attach
    } else if v == "Pragma" {
        GuardCode::Pragma
    } else if v == "Vacuum" {
        GuardCode::Vacuum
    } else if matches!(
        v,
        "StartTransaction" | "Commit" | "Rollback" | "Savepoint" | "ReleaseSavepoint"
    ) {
        GuardCode::Transaction
    } else {
        GuardCode::NotReadOnly
    }
}

fn describe(code: GuardCode) -> &'static str {
    match code {
        GuardCode::NotReadOnly => {
            "only read-only queries are allowed; this statement writes or is not a query"
        }
        GuardCode::Ddl => "schema changes (CREATE/DROP/ALTER/REINDEX/ANALYZE) are not allowed",
        GuardCode::Attach => "ATTACH/DETACH is not allowed",
        GuardCode::Pragma => "PRAGMA is not allowed",
        GuardCode::Vacuum => "VACUUM is not allowed",
        GuardCode::Transaction => "transaction control is not allowed",
        _ => "statement not allowed",
    }
}

fn parse_error_position(msg: &str) -> Option<Position> {
    let line_at = msg.rfind("Line: ")?;
    let rest = &msg[line_at + 6..];
    let line: u64 = rest.split(',').next()?.trim().parse().ok()?;
    let col_at = rest.find("Column: ")?;
    let col: u64 = rest[col_at + 8..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .ok()?;
    Position::from_location(Location::new(line, col))
}

/// When the parser fails on a `WITH …` statement, look for a write keyword at
/// parenthesis depth 0 (a CTE hiding a write).
fn with_hides_write(tokens: &[TokenWithSpan]) -> bool {
    let sig: Vec<&TokenWithSpan> = significant(tokens).map(|(_, t)| t).collect();
    let mut depth = 0i32;
    for (i, t) in sig.iter().enumerate() {
        match &t.token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            Token::Word(w) if depth == 0 && w.quote_style.is_none() => match w.keyword {
                Keyword::INSERT | Keyword::UPDATE | Keyword::DELETE => return true,
                Keyword::REPLACE => {
                    if let Some(Token::Word(n)) = sig.get(i + 1).map(|t| &t.token) {
                        if n.keyword == Keyword::INTO {
                            return true;
                        }
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }
    false
}

/// Parses `sql` (SQLite dialect) and applies the read-only policy without
/// looking at any schema. Returns the single accepted statement.
pub fn check_policy(sql: &str) -> Result<Statement, GuardError> {
    if sql.len() > MAX_SQL_BYTES {
        return Err(GuardError::new(
            GuardCode::TooLong,
            format!(
                "query is {} bytes long; the limit is {MAX_SQL_BYTES}",
                sql.len()
            ),
        ));
    }
    if let Some(at) = sql.find('\0') {
        // SQLite stops reading SQL text at a NUL; refuse rather than check
        // something other than what SQLite would run.
        let line = sql[..at].matches('\n').count() as u64 + 1;
        let column = sql[..at]
            .rsplit('\n')
            .next()
            .map_or(0, |l| l.chars().count()) as u64
            + 1;
        return Err(
            GuardError::new(GuardCode::Parse, "the query contains a NUL character")
                .at(Location::new(line, column)),
        );
    }
    let dialect = SQLiteDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| {
            GuardError::new(GuardCode::Parse, format!("cannot tokenize: {}", e.message))
                .at(e.location)
        })?;

    // Statement boundaries, on tokens so that comments and strings cannot fool us.
    let sig: Vec<(usize, &TokenWithSpan)> = significant(&tokens).collect();
    let first = sig
        .iter()
        .find(|(_, t)| t.token != Token::SemiColon)
        .map(|(_, t)| *t);
    let Some(first) = first else {
        return Err(GuardError::new(
            GuardCode::Empty,
            "the query is empty (only whitespace, comments or semicolons)",
        ));
    };
    let leading_code = match &first.token {
        Token::Word(w) if w.quote_style.is_none() => classify_keyword(&w.value),
        _ => None,
    };
    let mut seen_statement = false;
    let mut after_semicolon = false;
    for (_, t) in &sig {
        if t.token == Token::SemiColon {
            if seen_statement {
                after_semicolon = true;
            }
            continue;
        }
        if after_semicolon {
            if let Some(code) = leading_code {
                return Err(GuardError::new(code, describe(code)).at(first.span.start));
            }
            return Err(GuardError::new(
                GuardCode::MultipleStatements,
                "only one statement is allowed",
            )
            .at(t.span.start));
        }
        seen_statement = true;
    }
    if let Some(code) = leading_code {
        return Err(GuardError::new(code, describe(code)).at(first.span.start));
    }

    let statements = match Parser::new(&dialect)
        .with_tokens_with_locations(tokens.clone())
        .parse_statements()
    {
        Ok(s) => s,
        Err(e) => {
            let is_with = matches!(&first.token, Token::Word(w) if w.keyword == Keyword::WITH);
            if is_with && with_hides_write(&tokens) {
                return Err(GuardError::new(
                    GuardCode::NotReadOnly,
                    "a WITH clause followed by a write is not allowed",
                )
                .at(first.span.start));
            }
            let msg = match &e {
                ParserError::TokenizerError(m) | ParserError::ParserError(m) => m.clone(),
                ParserError::RecursionLimitExceeded => "query nests too deeply".to_string(),
            };
            let mut err = GuardError::new(GuardCode::Parse, format!("cannot parse: {msg}"));
            err.position = parse_error_position(&msg);
            if err.position.is_none() && msg.contains("EOF") {
                // The parser ran out of input: point just past the last token.
                err.position = significant(&tokens)
                    .last()
                    .and_then(|(_, t)| Position::from_location(t.span.end));
            }
            return Err(err);
        }
    };
    let mut statements = statements.into_iter();
    let (Some(stmt), None) = (statements.next(), statements.next()) else {
        return Err(GuardError::new(
            GuardCode::MultipleStatements,
            "exactly one statement is required",
        ));
    };
    let Statement::Query(query) = &stmt else {
        let code = classify_statement(&stmt);
        return Err(GuardError::new(code, describe(code)).at(stmt.span().start));
    };
    let mut visitor = PolicyVisitor;
    if let ControlFlow::Break(err) = query.visit(&mut visitor) {
        return Err(*err);
    }
    Ok(stmt)
}

struct PolicyVisitor;

impl PolicyVisitor {
    fn check_function_name(name: &ObjectName) -> ControlFlow<Box<GuardError>> {
        let Some(last) = name.0.last().and_then(|p| p.as_ident()) else {
            return ControlFlow::Continue(());
        };
        let lower = last.value.to_ascii_lowercase();
        if lower.starts_with("pragma_") {
            return ControlFlow::Break(Box::new(
                GuardError::new(
                    GuardCode::Pragma,
                    format!("PRAGMA functions such as '{}' are not allowed", last.value),
                )
                .at(last.span.start),
            ));
        }
        if is_denied_function(&lower) {
            return ControlFlow::Break(Box::new(
                GuardError::new(
                    GuardCode::DangerousFunction,
                    format!("function '{}' is not allowed", last.value),
                )
                .at(last.span.start),
            ));
        }
        ControlFlow::Continue(())
    }
}

fn literal_number(arg: &FunctionArg) -> Option<f64> {
    let expr = match arg {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => e,
        _ => return None,
    };
    match expr {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse().ok(),
            Value::SingleQuotedString(s) => s.trim().parse().ok(),
            _ => None,
        },
        Expr::UnaryOp { expr, .. } => literal_number(&FunctionArg::Unnamed(FunctionArgExpr::Expr(
            (**expr).clone(),
        ))),
        Expr::Nested(e) => {
            literal_number(&FunctionArg::Unnamed(FunctionArgExpr::Expr((**e).clone())))
        }
        _ => None,
    }
}

impl Visitor for PolicyVisitor {
    type Break = Box<GuardError>;

    fn pre_visit_statement(&mut self, stmt: &Statement) -> ControlFlow<Self::Break> {
        // The top-level query is visited as a Query, so any statement met here is
        // nested (e.g. `WITH x AS (...) DELETE ...`).
        if matches!(stmt, Statement::Query(_)) {
            return ControlFlow::Continue(());
        }
        let code = classify_statement(stmt);
        ControlFlow::Break(Box::new(
            GuardError::new(code, describe(code)).at(stmt.span().start),
        ))
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<Self::Break> {
        if select.into.is_some() {
            return ControlFlow::Break(Box::new(
                GuardError::new(GuardCode::NotReadOnly, "SELECT … INTO is not allowed").at(select
                    .select_token
                    .0
                    .span
                    .start),
            ));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<Self::Break> {
        if !query.locks.is_empty() {
            return ControlFlow::Break(Box::new(GuardError::new(
                GuardCode::NotReadOnly,
                "locking clauses (FOR UPDATE/SHARE) are not allowed",
            )));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<Self::Break> {
        Self::check_function_name(relation)
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<Self::Break> {
        if let Expr::Function(f) = expr {
            Self::check_function_name(&f.name)?;
            let name = f
                .name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .map(|i| i.value.to_ascii_lowercase())
                .unwrap_or_default();
            if name == "randomblob" || name == "zeroblob" {
                if let FunctionArguments::List(list) = &f.args {
                    if let Some(n) = list.args.first().and_then(literal_number) {
                        if n > MAX_BLOB_ARG {
                            return ControlFlow::Break(Box::new(
                                GuardError::new(
                                    GuardCode::DangerousFunction,
                                    format!(
                                        "{name}({n}) is too large; at most {MAX_BLOB_ARG} bytes"
                                    ),
                                )
                                .at(expr.span().start),
                            ));
                        }
                    }
                }
            }
        }
        ControlFlow::Continue(())
    }
}

// ---------------------------------------------------------------------------
// Schema check
// ---------------------------------------------------------------------------

/// Checks queries against a database's read-only policy and schema.
#[derive(Debug, Clone)]
pub struct Guard {
    schema: Schema,
}

impl Guard {
    /// A guard for `schema`.
    pub fn new(schema: Schema) -> Guard {
        Guard { schema }
    }

    /// The schema this guard checks against.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Applies [`check_policy`], then checks that every table and column the
    /// query names exists (respecting CTEs, aliases and subqueries).
    pub fn check(&self, sql: &str) -> Result<(), GuardError> {
        let stmt = check_policy(sql)?;
        if let Statement::Query(q) = &stmt {
            let checker = Checker {
                schema: &self.schema,
            };
            checker.check_query(q, None)?;
        }
        Ok(())
    }
}

/// Columns of the built-in schema table.
const MASTER_COLUMNS: &[&str] = &["type", "name", "tbl_name", "rootpage", "sql"];

/// Column names that exist in every rowid table, and bare words that parse as identifiers.
fn is_special_ident(name: &str) -> bool {
    [
        "rowid",
        "oid",
        "_rowid_",
        "true",
        "false",
        "current_date",
        "current_time",
        "current_timestamp",
    ]
    .iter()
    .any(|s| s.eq_ignore_ascii_case(name))
}

/// A named source of columns in a FROM clause or WITH clause.
#[derive(Debug, Clone)]
struct Rel {
    name: String,
    /// `None` when the columns cannot be known (table-valued functions, …): accept anything.
    columns: Option<Vec<String>>,
}

impl Rel {
    fn has_column(&self, col: &str) -> bool {
        match &self.columns {
            None => true,
            Some(cols) => cols.iter().any(|c| c.eq_ignore_ascii_case(col)),
        }
    }
}

struct Scope<'p> {
    parent: Option<&'p Scope<'p>>,
    ctes: Vec<Rel>,
    rels: Vec<Rel>,
    aliases: Vec<String>,
    /// Set when USING/NATURAL joins (or nested joins) merge same-named columns:
    /// ambiguity is then not reported.
    merged_joins: bool,
}

impl<'p> Scope<'p> {
    fn child(parent: Option<&'p Scope<'p>>) -> Scope<'p> {
        Scope {
            parent,
            ctes: Vec::new(),
            rels: Vec::new(),
            aliases: Vec::new(),
            merged_joins: false,
        }
    }

    fn chain(&self) -> impl Iterator<Item = &Scope<'_>> {
        let mut next: Option<&Scope<'_>> = Some(self);
        std::iter::from_fn(move || {
            let cur = next?;
            next = cur.parent;
            Some(cur)
        })
    }

    fn find_cte(&self, name: &str) -> Option<&Rel> {
        self.chain()
            .flat_map(|s| s.ctes.iter().rev())
            .find(|r| r.name.eq_ignore_ascii_case(name))
    }
}

fn best_match<'a>(target: &str, candidates: impl Iterator<Item = &'a str>) -> Option<String> {
    let t = target.to_ascii_lowercase();
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        let score = strsim::normalized_damerau_levenshtein(&t, &c.to_ascii_lowercase());
        if score >= 0.6 && best.is_none_or(|(b, _)| score > b) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| c.to_string())
}

fn did_you_mean(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(s) => format!(" — did you mean '{s}'?"),
        None => String::new(),
    }
}

fn ident_of(part: &sqlparser::ast::ObjectNamePart) -> Option<&Ident> {
    part.as_ident()
}

struct Checker<'s> {
    schema: &'s Schema,
}

impl Checker<'_> {
    fn check_query(
        &self,
        q: &Query,
        parent: Option<&Scope<'_>>,
    ) -> Result<Option<Vec<String>>, GuardError> {
        let mut scope = Scope::child(parent);
        if let Some(with) = &q.with {
            for cte in &with.cte_tables {
                let declared: Vec<String> = cte
                    .alias
                    .columns
                    .iter()
                    .map(|c| c.name.value.clone())
                    .collect();
                let declared = (!declared.is_empty()).then_some(declared);
                let derived = {
                    let mut inner = Scope::child(Some(&scope));
                    // A (recursive) CTE may refer to itself.
                    inner.ctes.push(Rel {
                        name: cte.alias.name.value.clone(),
                        columns: declared.clone(),
                    });
                    self.check_query(&cte.query, Some(&inner))?
                };
                scope.ctes.push(Rel {
                    name: cte.alias.name.value.clone(),
                    columns: declared.or(derived),
                });
            }
        }
        self.check_set_expr(&q.body, &scope, Some(q))
    }

    /// `outer` is the query owning ORDER BY / LIMIT that apply to this body.
    fn check_set_expr(
        &self,
        body: &SetExpr,
        scope: &Scope<'_>,
        outer: Option<&Query>,
    ) -> Result<Option<Vec<String>>, GuardError> {
        match body {
            SetExpr::Select(select) => self.check_select(select, scope, outer),
            SetExpr::Query(q) => {
                let cols = self.check_query(q, Some(scope))?;
                self.check_compound_tail(outer, std::slice::from_ref(&cols), scope)?;
                Ok(cols)
            }
            SetExpr::SetOperation { left, right, .. } => {
                let l = self.check_set_expr(left, scope, None)?;
                let r = self.check_set_expr(right, scope, None)?;
                self.check_compound_tail(outer, &[l.clone(), r], scope)?;
                Ok(l)
            }
            SetExpr::Values(values) => {
                let inner = Scope::child(Some(scope));
                let mut v = ExprChecker::new(self, &inner, Vec::new());
                if let ControlFlow::Break(e) = values.visit(&mut v) {
                    return Err(*e);
                }
                let width = values.rows.first().map(|r| r.len()).unwrap_or(0);
                self.check_compound_tail(outer, &[None], scope)?;
                Ok(Some((1..=width).map(|i| format!("column{i}")).collect()))
            }
            // Writes are refused by the policy; nothing to resolve here.
            _ => Ok(None),
        }
    }

    /// ORDER BY / LIMIT of a compound query: ORDER BY terms name result columns.
    fn check_compound_tail(
        &self,
        outer: Option<&Query>,
        outputs: &[Option<Vec<String>>],
        scope: &Scope<'_>,
    ) -> Result<(), GuardError> {
        let Some(q) = outer else { return Ok(()) };
        let names: Option<Vec<String>> = outputs.iter().try_fold(Vec::new(), |mut acc, o| {
            acc.extend(o.as_ref()?.iter().cloned());
            Some(acc)
        });
        let mut inner = Scope::child(Some(scope));
        let lenient = names.is_none();
        inner.aliases = names.unwrap_or_default();
        let mut v = ExprChecker::new(self, &inner, Vec::new());
        v.compound = true;
        v.lenient = lenient;
        if let Some(order_by) = &q.order_by {
            if let ControlFlow::Break(e) = order_by.visit(&mut v) {
                return Err(*e);
            }
        }
        if let Some(limit) = &q.limit_clause {
            if let ControlFlow::Break(e) = limit.visit(&mut v) {
                return Err(*e);
            }
        }
        Ok(())
    }

    fn check_select(
        &self,
        s: &Select,
        parent: &Scope<'_>,
        outer: Option<&Query>,
    ) -> Result<Option<Vec<String>>, GuardError> {
        let mut scope = Scope::child(Some(parent));
        let mut skip: Vec<*const Query> = Vec::new();
        for twj in &s.from {
            self.add_factor(&twj.relation, parent, &mut scope.rels, &mut skip)?;
            for join in &twj.joins {
                self.add_factor(&join.relation, parent, &mut scope.rels, &mut skip)?;
            }
        }
        // USING (col, ...) names must exist on the joined sides.
        for twj in &s.from {
            if matches!(twj.relation, TableFactor::NestedJoin { .. }) {
                scope.merged_joins = true;
            }
            for join in &twj.joins {
                if matches!(join.relation, TableFactor::NestedJoin { .. })
                    || matches!(
                        join_constraint(&join.join_operator),
                        Some(
                            sqlparser::ast::JoinConstraint::Using(_)
                                | sqlparser::ast::JoinConstraint::UsingAlias(..)
                                | sqlparser::ast::JoinConstraint::Natural
                        )
                    )
                {
                    scope.merged_joins = true;
                }
                if let Some(sqlparser::ast::JoinConstraint::Using(names)) =
                    join_constraint(&join.join_operator)
                {
                    for name in names {
                        if let Some(id) = name.0.last().and_then(ident_of) {
                            if !scope.rels.iter().any(|r| r.has_column(&id.value)) {
                                return Err(unknown_column(id, &scope));
                            }
                        }
                    }
                }
            }
        }

        let mut outputs: Option<Vec<String>> = Some(Vec::new());
        for item in &s.projection {
            match item {
                SelectItem::UnnamedExpr(expr) => {
                    let name = match expr {
                        Expr::Identifier(id) => id.value.clone(),
                        Expr::CompoundIdentifier(parts) => {
                            parts.last().map(|p| p.value.clone()).unwrap_or_default()
                        }
                        other => other.to_string(),
                    };
                    if let Some(o) = outputs.as_mut() {
                        o.push(name);
                    }
                }
                SelectItem::ExprWithAlias { alias, .. } => {
                    scope.aliases.push(alias.value.clone());
                    if let Some(o) = outputs.as_mut() {
                        o.push(alias.value.clone());
                    }
                }
                SelectItem::ExprWithAliases { aliases, .. } => {
                    for a in aliases {
                        scope.aliases.push(a.value.clone());
                        if let Some(o) = outputs.as_mut() {
                            o.push(a.value.clone());
                        }
                    }
                }
                SelectItem::Wildcard(_) => {
                    for rel in &scope.rels {
                        match (&rel.columns, outputs.as_mut()) {
                            (Some(cols), Some(o)) => o.extend(cols.iter().cloned()),
                            _ => outputs = None,
                        }
                    }
                }
                SelectItem::QualifiedWildcard(kind, _) => {
                    let SelectItemQualifiedWildcardKind::ObjectName(name) = kind else {
                        outputs = None;
                        continue;
                    };
                    let Some(id) = name.0.last().and_then(ident_of) else {
                        outputs = None;
                        continue;
                    };
                    match scope
                        .rels
                        .iter()
                        .find(|r| r.name.eq_ignore_ascii_case(&id.value))
                    {
                        Some(rel) => match (&rel.columns, outputs.as_mut()) {
                            (Some(cols), Some(o)) => o.extend(cols.iter().cloned()),
                            _ => outputs = None,
                        },
                        None => {
                            let suggestion =
                                best_match(&id.value, scope.rels.iter().map(|r| r.name.as_str()));
                            return Err(GuardError {
                                code: GuardCode::UnknownTable,
                                message: format!(
                                    "unknown table or alias '{}' in '{}.*'{}",
                                    id.value,
                                    id.value,
                                    did_you_mean(&suggestion)
                                ),
                                position: Position::from_location(id.span.start),
                                suggestion,
                            });
                        }
                    }
                }
            }
        }

        let mut v = ExprChecker::new(self, &scope, skip);
        if let ControlFlow::Break(e) = s.visit(&mut v) {
            return Err(*e);
        }
        if let Some(q) = outer {
            let mut v = ExprChecker::new(self, &scope, Vec::new());
            if let Some(order_by) = &q.order_by {
                check_visit(order_by, &mut v)?;
            }
            if let Some(limit) = &q.limit_clause {
                if let ControlFlow::Break(e) = limit.visit(&mut v) {
                    return Err(*e);
                }
            }
        }
        Ok(outputs)
    }

    fn add_factor(
        &self,
        factor: &TableFactor,
        outer: &Scope<'_>,
        rels: &mut Vec<Rel>,
        skip: &mut Vec<*const Query>,
    ) -> Result<(), GuardError> {
        match factor {
            TableFactor::Table {
                name, alias, args, ..
            } => {
                let parts: Vec<&Ident> = name.0.iter().filter_map(ident_of).collect();
                let Some(table_ident) = parts.last() else {
                    return Ok(());
                };
                let tname = &table_ident.value;
                let schema_name = (parts.len() >= 2).then(|| parts[parts.len() - 2].value.clone());
                let alias_name = alias.as_ref().map(|a| a.name.value.clone());
                let alias_cols: Vec<String> = alias
                    .as_ref()
                    .map(|a| a.columns.iter().map(|c| c.name.value.clone()).collect())
                    .unwrap_or_default();
                let rel_name = alias_name.unwrap_or_else(|| tname.clone());

                let columns: Option<Vec<String>> = if args.is_some() {
                    // table-valued function (json_each, json_tree, …)
                    None
                } else if let Some(cte) = schema_name
                    .is_none()
                    .then(|| outer.find_cte(tname))
                    .flatten()
                {
                    cte.columns.clone()
                } else if let Some(t) = self.schema.table(tname).filter(|_| {
                    schema_name.as_deref().is_none_or(|s| {
                        s.eq_ignore_ascii_case("main") || s.eq_ignore_ascii_case("temp")
                    })
                }) {
                    Some(t.columns.iter().map(|c| c.name.clone()).collect())
                } else if [
                    "sqlite_master",
                    "sqlite_schema",
                    "sqlite_temp_master",
                    "sqlite_temp_schema",
                ]
                .iter()
                .any(|m| m.eq_ignore_ascii_case(tname))
                {
                    Some(MASTER_COLUMNS.iter().map(|c| c.to_string()).collect())
                } else if ["json_each", "json_tree", "dbstat"]
                    .iter()
                    .any(|m| m.eq_ignore_ascii_case(tname))
                {
                    None
                } else {
                    let mut names: Vec<&str> =
                        self.schema.tables.iter().map(|t| t.name.as_str()).collect();
                    names.extend(
                        outer
                            .chain()
                            .flat_map(|s| s.ctes.iter().map(|c| c.name.as_str())),
                    );
                    let suggestion = best_match(tname, names.into_iter());
                    return Err(GuardError {
                        code: GuardCode::UnknownTable,
                        message: format!("unknown table '{}'{}", name, did_you_mean(&suggestion)),
                        position: Position::from_location(table_ident.span.start),
                        suggestion,
                    });
                };
                let columns = if alias_cols.is_empty() {
                    columns
                } else {
                    Some(alias_cols)
                };
                rels.push(Rel {
                    name: rel_name,
                    columns,
                });
            }
            TableFactor::Derived {
                subquery, alias, ..
            } => {
                skip.push(&**subquery as *const Query);
                let cols = self.check_query(subquery, Some(outer))?;
                let alias_cols: Vec<String> = alias
                    .as_ref()
                    .map(|a| a.columns.iter().map(|c| c.name.value.clone()).collect())
                    .unwrap_or_default();
                rels.push(Rel {
                    name: alias
                        .as_ref()
                        .map(|a| a.name.value.clone())
                        .unwrap_or_default(),
                    columns: if alias_cols.is_empty() {
                        cols
                    } else {
                        Some(alias_cols)
                    },
                });
            }
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => {
                self.add_factor(&table_with_joins.relation, outer, rels, skip)?;
                for join in &table_with_joins.joins {
                    self.add_factor(&join.relation, outer, rels, skip)?;
                }
            }
            _ => {
                // Other table factors (functions, UNNEST, …): columns unknown.
                rels.push(Rel {
                    name: String::new(),
                    columns: None,
                });
            }
        }
        Ok(())
    }
}

fn check_visit<V: Visit>(node: &V, v: &mut ExprChecker<'_, '_>) -> Result<(), GuardError> {
    match node.visit(v) {
        ControlFlow::Break(e) => Err(*e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

fn join_constraint(op: &sqlparser::ast::JoinOperator) -> Option<&sqlparser::ast::JoinConstraint> {
    use sqlparser::ast::JoinOperator as J;
    match op {
        J::Join(c)
        | J::Inner(c)
        | J::Left(c)
        | J::LeftOuter(c)
        | J::Right(c)
        | J::RightOuter(c)
        | J::FullOuter(c)
        | J::CrossJoin(c)
        | J::Semi(c)
        | J::LeftSemi(c)
        | J::RightSemi(c)
        | J::Anti(c)
        | J::LeftAnti(c)
        | J::RightAnti(c) => Some(c),
        _ => None,
    }
}

fn unknown_column(id: &Ident, scope: &Scope<'_>) -> GuardError {
    let mut candidates: Vec<&str> = Vec::new();
    for s in scope.chain() {
        for r in &s.rels {
            if let Some(cols) = &r.columns {
                candidates.extend(cols.iter().map(|c| c.as_str()));
            }
        }
        candidates.extend(s.aliases.iter().map(|a| a.as_str()));
    }
    let suggestion = best_match(&id.value, candidates.into_iter());
    GuardError {
        code: GuardCode::UnknownColumn,
        message: format!("unknown column '{}'{}", id.value, did_you_mean(&suggestion)),
        position: Position::from_location(id.span.start),
        suggestion,
    }
}

/// Resolves the column references of one SELECT (or ORDER BY / VALUES) at
/// nesting depth 0 and checks nested subqueries with this scope as parent.
struct ExprChecker<'c, 's> {
    checker: &'c Checker<'c>,
    scope: &'s Scope<'s>,
    skip: Vec<*const Query>,
    depth: usize,
    /// ORDER BY of a compound query: unqualified names must be result columns.
    compound: bool,
    /// Accept every identifier (result columns unknown).
    lenient: bool,
}

impl<'c, 's> ExprChecker<'c, 's> {
    fn new(
        checker: &'c Checker<'c>,
        scope: &'s Scope<'s>,
        skip: Vec<*const Query>,
    ) -> ExprChecker<'c, 's> {
        ExprChecker {
            checker,
            scope,
            skip,
            depth: 0,
            compound: false,
            lenient: false,
        }
    }

    fn resolve_unqualified(&self, id: &Ident) -> Result<(), GuardError> {
        if self.lenient || is_special_ident(&id.value) || id.quote_style == Some('"') {
            return Ok(());
        }
        for s in self.scope.chain() {
            if s.aliases.iter().any(|a| a.eq_ignore_ascii_case(&id.value)) {
                return Ok(());
            }
            if self.compound {
                continue;
            }
            let hits: Vec<&Rel> = s.rels.iter().filter(|r| r.has_column(&id.value)).collect();
            if hits.len() >= 2 && !s.merged_joins && s.rels.iter().all(|r| r.columns.is_some()) {
                let names: Vec<&str> = hits
                    .iter()
                    .map(|r| {
                        if r.name.is_empty() {
                            "(subquery)"
                        } else {
                            r.name.as_str()
                        }
                    })
                    .collect();
                let suggestion = hits
                    .iter()
                    .find(|r| !r.name.is_empty())
                    .map(|r| format!("{}.{}", r.name, id.value));
                return Err(GuardError {
                    code: GuardCode::AmbiguousColumn,
                    message: format!(
                        "ambiguous column '{}': it is in {}{}",
                        id.value,
                        names.join(", "),
                        match &suggestion {
                            Some(s) => format!(" — qualify it, e.g. '{s}'"),
                            None => String::new(),
                        }
                    ),
                    position: Position::from_location(id.span.start),
                    suggestion,
                });
            }
            if !hits.is_empty() {
                return Ok(());
            }
        }
        Err(unknown_column(id, self.scope))
    }

    fn resolve_qualified(&self, parts: &[Ident]) -> Result<(), GuardError> {
        if self.lenient || self.compound {
            return Ok(());
        }
        let (table, col) = match parts {
            [t, c] | [_, t, c] => (t, c),
            _ => return Ok(()),
        };
        let rel = self
            .scope
            .chain()
            .flat_map(|s| s.rels.iter())
            .find(|r| r.name.eq_ignore_ascii_case(&table.value));
        match rel {
            Some(rel) => {
                if rel.has_column(&col.value) || is_special_ident(&col.value) {
                    return Ok(());
                }
                let cols = rel.columns.as_deref().unwrap_or_default();
                let suggestion = best_match(&col.value, cols.iter().map(|c| c.as_str()));
                Err(GuardError {
                    code: GuardCode::UnknownColumn,
                    message: format!(
                        "unknown column '{}.{}'{}",
                        table.value,
                        col.value,
                        did_you_mean(&suggestion)
                    ),
                    position: Position::from_location(col.span.start),
                    suggestion,
                })
            }
            None => {
                let names: Vec<&str> = self
                    .scope
                    .chain()
                    .flat_map(|s| s.rels.iter().map(|r| r.name.as_str()))
                    .filter(|n| !n.is_empty())
                    .collect();
                let suggestion = best_match(&table.value, names.into_iter());
                Err(GuardError {
                    code: GuardCode::UnknownTable,
                    message: format!(
                        "unknown table or alias '{}' in '{}.{}'{}",
                        table.value,
                        table.value,
                        col.value,
                        did_you_mean(&suggestion)
                    ),
                    position: Position::from_location(table.span.start),
                    suggestion,
                })
            }
        }
    }
}

impl Visitor for ExprChecker<'_, '_> {
    type Break = Box<GuardError>;

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<Self::Break> {
        let skipped = self.skip.iter().any(|p| std::ptr::eq(*p, query));
        if self.depth == 0 && !skipped {
            if let Err(e) = self.checker.check_query(query, Some(self.scope)) {
                return ControlFlow::Break(Box::new(e));
            }
        }
        self.depth += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &Query) -> ControlFlow<Self::Break> {
        self.depth = self.depth.saturating_sub(1);
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<Self::Break> {
        if self.depth > 0 {
            return ControlFlow::Continue(());
        }
        let result = match expr {
            Expr::Identifier(id) => self.resolve_unqualified(id),
            Expr::CompoundIdentifier(parts) => self.resolve_qualified(parts),
            _ => Ok(()),
        };
        match result {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => ControlFlow::Break(Box::new(e)),
        }
    }
}
