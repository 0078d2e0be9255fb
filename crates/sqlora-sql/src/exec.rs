//! Budgeted read-only execution.
//!
//! Layers, each enough on its own to stop a write:
//! 1. the [`Guard`](crate::Guard) refuses anything but one read-only query;
//! 2. the connection is opened with `SQLITE_OPEN_READ_ONLY`, `PRAGMA query_only=ON`,
//!    `trusted_schema=OFF`, defensive mode, `SQLITE_LIMIT_ATTACHED=0` (so neither
//!    `ATTACH` nor `VACUUM INTO` can open another file), extension loading off;
//! 3. an authorizer allows only reads, `SELECT`, recursive CTEs and functions
//!    that are not on the deny list.
//!
//! The time budget is enforced inside SQLite by a progress handler, the row
//! and byte budgets by stopping stepping.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::config::DbConfig;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::guard::{is_denied_function, Guard, GuardCode, GuardError};
use crate::schema::{Schema, SchemaError};

/// Longest string or blob SQLite may build while running a query (bytes).
pub const MAX_VALUE_BYTES: i32 = 16 * 1024 * 1024;

/// Longest SQL text SQLite accepts on our connections (bytes).
pub const MAX_SQL_LENGTH: i32 = 100_000;

/// Virtual-machine steps between two deadline checks.
const PROGRESS_STEPS: i32 = 1_000;

/// A typed SQLite value. Serialises to JSON as `null`, a number, a string, or
/// `{"blob_hex": "…"}` for blobs.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// 64-bit integer.
    Integer(i64),
    /// 64-bit float.
    Real(f64),
    /// Text (invalid UTF-8 is decoded lossily).
    Text(String),
    /// Raw bytes.
    Blob(Vec<u8>),
}

impl Value {
    fn from_ref(v: ValueRef<'_>) -> Value {
        match v {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(i) => Value::Integer(i),
            ValueRef::Real(f) => Value::Real(f),
            ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
            ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        }
    }

    /// Approximate size in bytes, used for the byte budget.
    pub fn approx_bytes(&self) -> usize {
        match self {
            Value::Null => 4,
            Value::Integer(_) | Value::Real(_) => 8,
            Value::Text(s) => s.len() + 2,
            Value::Blob(b) => b.len() * 2 + 16,
        }
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Integer(i) => s.serialize_i64(*i),
            Value::Real(f) => s.serialize_f64(*f),
            Value::Text(t) => s.serialize_str(t),
            Value::Blob(b) => {
                let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("blob_hex", &hex)?;
                m.end()
            }
        }
    }
}

/// Budgets for one query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecLimits {
    /// Wall-clock budget, enforced inside SQLite (default 2 s).
    pub timeout: Duration,
    /// Most rows returned (default 1000).
    pub max_rows: usize,
    /// Most result bytes, approximately (default 8 MiB).
    pub max_bytes: usize,
}

impl Default for ExecLimits {
    fn default() -> Self {
        ExecLimits {
            timeout: Duration::from_secs(2),
            max_rows: 1000,
            max_bytes: 8 * 1024 * 1024,
        }
    }
}

/// The rows of one query.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueryResult {
    /// Result column names.
    pub columns: Vec<String>,
    /// Rows, each as wide as `columns`.
    pub rows: Vec<Vec<Value>>,
    /// True when more rows existed than the row or byte budget allowed.
    pub truncated: bool,
    /// Wall-clock time spent preparing and stepping.
    pub elapsed_ms: f64,
}

/// Why a query could not be executed.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The guard refused the query; it was never run.
    #[error("refused by the guard: {0}")]
    Guard(GuardError),
    /// The time budget ran out.
    #[error("query exceeded its time budget of {limit_ms} ms")]
    Timeout {
        /// The budget, in milliseconds.
        limit_ms: u64,
    },
    /// SQLite reported an error while preparing or running the query.
    #[error("sqlite error: {0}")]
    Sqlite(String),
    /// The database could not be opened or introspected.
    #[error("cannot open database: {0}")]
    Open(String),
}

impl ExecError {
    /// A short machine-readable code for JSON (`guard`, `timeout`, `sqlite`, `open`).
    pub fn code(&self) -> &'static str {
        match self {
            ExecError::Guard(_) => "guard",
            ExecError::Timeout { .. } => "timeout",
            ExecError::Sqlite(_) => "sqlite",
            ExecError::Open(_) => "open",
        }
    }
}

impl From<GuardError> for ExecError {
    fn from(e: GuardError) -> Self {
        ExecError::Guard(e)
    }
}

impl From<SchemaError> for ExecError {
    fn from(e: SchemaError) -> Self {
        ExecError::Open(e.to_string())
    }
}

fn open_err(e: rusqlite::Error) -> ExecError {
    ExecError::Open(e.to_string())
}

fn open_configured(path: &Path) -> Result<Connection, ExecError> {
    if !path.is_file() {
        return Err(ExecError::Open(format!(
            "database file not found: {}",
            path.display()
        )));
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(open_err)?;
    conn.pragma_update(None, "query_only", true)
        .map_err(open_err)?;
    conn.pragma_update(None, "trusted_schema", false)
        .map_err(open_err)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)
        .map_err(open_err)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_FTS3_TOKENIZER, false)
        .map_err(open_err)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_WRITABLE_SCHEMA, false)
        .map_err(open_err)?;
    conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0)
        .map_err(open_err)?;
    conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
        .map_err(open_err)?;
    conn.set_limit(Limit::SQLITE_LIMIT_SQL_LENGTH, MAX_SQL_LENGTH)
        .map_err(open_err)?;
    // Extension loading is off by default in SQLite and rusqlite's
    // `load_extension` feature is not enabled, so the C API cannot turn it on.
    Ok(conn)
}

fn install_authorizer(conn: &Connection) {
    conn.authorizer(Some(|ctx: AuthContext<'_>| match ctx.action {
        AuthAction::Select | AuthAction::Read { .. } | AuthAction::Recursive => {
            Authorization::Allow
        }
        AuthAction::Function { function_name } => {
            if is_denied_function(function_name) {
                Authorization::Deny
            } else {
                Authorization::Allow
            }
        }
        _ => Authorization::Deny,
    }));
}

/// Opens `path` read-only with every protection described in the module docs
/// (read-only flags, `query_only`, limits, authorizer). Queries on it still
/// need [`run_query`] (or a progress handler of your own) for a time budget.
pub fn open_read_only(path: &Path) -> Result<Connection, ExecError> {
    open_read_only_with(path, true)
}

/// Like [`open_read_only`], with the authorizer layer optional. `authorizer:
/// false` leaves only the read-only flags, `query_only` and limits; it exists
/// to test that those lower layers hold on their own.
pub fn open_read_only_with(path: &Path, authorizer: bool) -> Result<Connection, ExecError> {
    let conn = open_configured(path)?;
    if authorizer {
        install_authorizer(&conn);
    }
    Ok(conn)
}

/// Runs one statement on `conn` WITHOUT the guard, under `limits`: a
/// progress-handler deadline, a row cap and a byte cap. Meant for connections
/// from [`open_read_only`] (e.g. running gold queries in evaluation).
pub fn run_query(
    conn: &Connection,
    sql: &str,
    limits: &ExecLimits,
) -> Result<QueryResult, ExecError> {
    let start = Instant::now();
    let deadline = start + limits.timeout;
    let fired = Arc::new(AtomicBool::new(false));
    let fired_in_handler = Arc::clone(&fired);
    conn.progress_handler(
        PROGRESS_STEPS,
        Some(move || {
            if Instant::now() >= deadline {
                fired_in_handler.store(true, Ordering::Relaxed);
                true
            } else {
                false
            }
        }),
    );
    let result = step_all(conn, sql, limits, deadline);
    conn.progress_handler(0, None::<fn() -> bool>);
    let limit_ms = u64::try_from(limits.timeout.as_millis()).unwrap_or(u64::MAX);
    match result {
        Ok((columns, rows, truncated)) => Ok(QueryResult {
            columns,
            rows,
            truncated,
            elapsed_ms: start.elapsed().as_secs_f64() * 1000.0,
        }),
        Err(StepError::Deadline) => Err(ExecError::Timeout { limit_ms }),
        Err(StepError::Sqlite(e)) => {
            let interrupted = matches!(
                &e,
                rusqlite::Error::SqliteFailure(f, _)
                    if f.code == rusqlite::ErrorCode::OperationInterrupted
            );
            if interrupted && fired.load(Ordering::Relaxed) {
                Err(ExecError::Timeout { limit_ms })
            } else {
                Err(ExecError::Sqlite(e.to_string()))
            }
        }
    }
}

enum StepError {
    Deadline,
    Sqlite(rusqlite::Error),
}

impl From<rusqlite::Error> for StepError {
    fn from(e: rusqlite::Error) -> Self {
        StepError::Sqlite(e)
    }
}

type Rows = (Vec<String>, Vec<Vec<Value>>, bool);

fn step_all(
    conn: &Connection,
    sql: &str,
    limits: &ExecLimits,
    deadline: Instant,
) -> Result<Rows, StepError> {
    let mut stmt = conn.prepare(sql)?;
    if !stmt.readonly() {
        return Err(StepError::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_READONLY),
            Some("statement is not read-only".to_string()),
        )));
    }
    let columns: Vec<String> = stmt.column_names().into_iter().map(String::from).collect();
    let width = columns.len();
    let mut rows_out: Vec<Vec<Value>> = Vec::new();
    let mut bytes = 0usize;
    let mut truncated = false;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        if Instant::now() >= deadline {
            return Err(StepError::Deadline);
        }
        if rows_out.len() >= limits.max_rows {
            truncated = true;
            break;
        }
        let mut out = Vec::with_capacity(width);
        let mut row_bytes = 0usize;
        for i in 0..width {
            let v = Value::from_ref(row.get_ref(i)?);
            row_bytes += v.approx_bytes();
            out.push(v);
        }
        if bytes.saturating_add(row_bytes) > limits.max_bytes {
            truncated = true;
            break;
        }
        bytes += row_bytes;
        rows_out.push(out);
    }
    Ok((columns, rows_out, truncated))
}

/// A read-only database with its guard: the one way the service runs model SQL.
pub struct ReadOnlyDb {
    conn: Connection,
    guard: Guard,
}

impl std::fmt::Debug for ReadOnlyDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadOnlyDb")
            .field("path", &self.conn.path())
            .field("tables", &self.guard.schema().tables.len())
            .finish()
    }
}

impl ReadOnlyDb {
    /// Opens `path` read-only, introspects its schema and builds a [`Guard`].
    pub fn open(path: &Path) -> Result<ReadOnlyDb, ExecError> {
        let conn = open_configured(path)?;
        let schema = Schema::from_connection(&conn, crate::schema::DEFAULT_SAMPLES)?;
        install_authorizer(&conn);
        Ok(ReadOnlyDb {
            conn,
            guard: Guard::new(schema),
        })
    }

    /// The guard (and through it the schema).
    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    /// The guard's verdict on `sql`, with SQLite as the referee for name
    /// errors: the policy is always enforced, but when the schema check
    /// reports an unknown or ambiguous name and SQLite itself compiles the
    /// statement (prepare only, nothing runs), the query is accepted. This
    /// keeps parser quirks (e.g. a column named `interval`) from becoming
    /// false refusals.
    pub fn check(&self, sql: &str) -> Result<(), GuardError> {
        match self.guard.check(sql) {
            Err(e)
                if matches!(
                    e.code,
                    GuardCode::UnknownColumn | GuardCode::UnknownTable | GuardCode::AmbiguousColumn
                ) =>
            {
                match self.conn.prepare(sql) {
                    Ok(stmt) if stmt.readonly() => Ok(()),
                    _ => Err(e),
                }
            }
            other => other,
        }
    }

    /// Checks `sql` with [`ReadOnlyDb::check`] and, only if accepted, runs it under `limits`.
    pub fn execute(&self, sql: &str, limits: &ExecLimits) -> Result<QueryResult, ExecError> {
        self.check(sql)?;
        run_query(&self.conn, sql, limits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>() {}

    #[test]
    fn read_only_db_is_send() {
        assert_send::<ReadOnlyDb>();
    }

    #[test]
    fn values_serialise_as_plain_json() {
        let row = vec![
            Value::Null,
            Value::Integer(7),
            Value::Real(1.5),
            Value::Text("hé".into()),
            Value::Blob(vec![0, 255]),
        ];
        let json = serde_json::to_string(&row).unwrap();
        assert_eq!(json, r#"[null,7,1.5,"hé",{"blob_hex":"00ff"}]"#);
    }
}
