//! The feedback store: every `/v1/query` answer and what users said about it, in one SQLite
//! file, for training the next adapter.
//!
//! [`FeedbackStore`] is a `rusqlite` connection behind a mutex over a file in WAL mode with
//! `synchronous = FULL`: a write returns only once it is in the write-ahead log on disk, so
//! what the server acknowledged (a `query_id` in an answer, a 200 for a feedback) survives a
//! crash or `kill -9`. Callers on an async runtime call it from a blocking thread
//! (`spawn_blocking`); each call is one short transaction.
//!
//! The schema (version [`SCHEMA_VERSION`], kept in `PRAGMA user_version`):
//!
//! * `queries` — one row per answered question: `query_id` (128-bit random, hex), time,
//!   database, adapter (null: the base model), question, the answer's SQL, whether it passed
//!   the guard (and ran), and a digest of its result ([`result_digest`]).
//! * `feedback` — one row per verdict on a query (`correct` or `wrong`), with the corrected
//!   SQL and its result digest when the user gave one. A query may get several; the latest
//!   counts.
//!
//! [`FeedbackStore::training_examples`] turns the latest verdict of each query of a database
//! into gold (question, SQL) pairs: the corrected SQL when there is one, else the answer's SQL
//! when the verdict was `correct`; `wrong` without a correction gives nothing.
//! The store knows nothing of HTTP; the binary's `sqlora feedback export` opens the same file.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};
use sqlora_sql::exec::Value;

/// The schema version this code writes and reads (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS queries (
    query_id      TEXT PRIMARY KEY NOT NULL,
    created_ms    INTEGER NOT NULL,
    database      TEXT NOT NULL,
    adapter       TEXT,
    question      TEXT NOT NULL,
    sql           TEXT NOT NULL,
    valid         INTEGER NOT NULL,
    result_digest TEXT
);
CREATE INDEX IF NOT EXISTS queries_database ON queries (database, created_ms);
CREATE TABLE IF NOT EXISTS feedback (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    query_id         TEXT NOT NULL REFERENCES queries (query_id),
    created_ms       INTEGER NOT NULL,
    verdict          TEXT NOT NULL CHECK (verdict IN ('correct', 'wrong')),
    corrected_sql    TEXT,
    corrected_digest TEXT
);
CREATE INDEX IF NOT EXISTS feedback_query ON feedback (query_id, id);
";

/// What can go wrong with the feedback store.
#[derive(Debug, thiserror::Error)]
pub enum FeedbackError {
    /// SQLite failed on the store's file.
    #[error("feedback store {}: {context}: {source}", path.display())]
    Sqlite {
        /// The store's file.
        path: PathBuf,
        /// What was being done.
        context: &'static str,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The store's folder could not be created.
    #[error("feedback store {}: {source}", path.display())]
    Io {
        /// The folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file was written by a newer sqlora (a schema this code does not know).
    #[error(
        "feedback store {}: schema version {found}, this sqlora knows version {SCHEMA_VERSION} \
         and older",
        path.display()
    )]
    NewerSchema {
        /// The store's file.
        path: PathBuf,
        /// The version in the file.
        found: i64,
    },
    /// No store at the given path (export opens existing files only).
    #[error("no feedback store at {}", .0.display())]
    Missing(PathBuf),
    /// Feedback named a query the store has no record of.
    #[error("no query with id '{0}'")]
    UnknownQuery(String),
}

/// The result type of the store.
pub type Result<T> = std::result::Result<T, FeedbackError>;

/// A user's verdict on an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The answer's SQL is right.
    Correct,
    /// The answer's SQL is wrong (a corrected SQL may come with it).
    Wrong,
}

impl Verdict {
    /// `correct` or `wrong`; anything else is `None`.
    pub fn parse(s: &str) -> Option<Verdict> {
        match s {
            "correct" => Some(Verdict::Correct),
            "wrong" => Some(Verdict::Wrong),
            _ => None,
        }
    }

    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Correct => "correct",
            Verdict::Wrong => "wrong",
        }
    }
}

/// One answered question, as `/v1/query` gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryRecord {
    /// Its id ([`new_query_id`]).
    pub query_id: String,
    /// When it was answered, milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// The database's name.
    pub database: String,
    /// The adapter that answered (`None`: the base model).
    pub adapter: Option<String>,
    /// The question.
    pub question: String,
    /// The answer's SQL.
    pub sql: String,
    /// True when the SQL passed the guard (and ran, when it was run).
    pub valid: bool,
    /// [`result_digest`] of its rows, when it ran.
    pub result_digest: Option<String>,
}

/// A verdict to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFeedback {
    /// The query it is about.
    pub query_id: String,
    /// The verdict.
    pub verdict: Verdict,
    /// The SQL the user says is right (already checked by the guard and run).
    pub corrected_sql: Option<String>,
    /// [`result_digest`] of the corrected SQL's rows.
    pub corrected_digest: Option<String>,
}

/// A stored verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedbackRecord {
    /// Its row id (increasing: a later verdict has a larger id).
    pub id: i64,
    /// The query it is about.
    pub query_id: String,
    /// When it was given, milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// The verdict.
    pub verdict: Verdict,
    /// The corrected SQL, if any.
    pub corrected_sql: Option<String>,
    /// Its result digest, if any.
    pub corrected_digest: Option<String>,
}

/// Where a gold SQL came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoldSource {
    /// The answer's SQL, confirmed `correct`.
    Confirmed,
    /// The user's corrected SQL.
    Corrected,
}

/// A (question, gold SQL) pair from feedback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoldExample {
    /// The query it came from.
    pub query_id: String,
    /// The database's name.
    pub database: String,
    /// The question.
    pub question: String,
    /// The gold SQL.
    pub sql: String,
    /// Confirmed or corrected.
    pub source: GoldSource,
}

/// What [`FeedbackStore::training_examples`] found for one database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Export {
    /// The gold pairs, oldest query first, each (question, SQL) once.
    pub examples: Vec<GoldExample>,
    /// Queries whose latest verdict is `wrong` without a corrected SQL.
    pub skipped_wrong: usize,
    /// Queries confirmed `correct` whose SQL had not passed the guard.
    pub skipped_invalid: usize,
    /// Pairs left out because the same (question, SQL) was already exported.
    pub duplicates: usize,
}

/// A fresh query id: 128 random bits as 32 lowercase hex digits.
pub fn new_query_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The SHA-256 (hex) of a result: its column names and its rows in order, each value typed,
/// so equal digests mean the same table.
pub fn result_digest(columns: &[String], rows: &[Vec<Value>]) -> String {
    let mut h = Sha256::new();
    for c in columns {
        h.update(b"c");
        h.update((c.len() as u64).to_le_bytes());
        h.update(c.as_bytes());
    }
    for row in rows {
        h.update(b"r");
        for v in row {
            match v {
                Value::Null => h.update(b"N"),
                Value::Integer(i) => {
                    h.update(b"I");
                    h.update(i.to_le_bytes());
                }
                Value::Real(f) => {
                    h.update(b"R");
                    h.update(f.to_bits().to_le_bytes());
                }
                Value::Text(t) => {
                    h.update(b"T");
                    h.update((t.len() as u64).to_le_bytes());
                    h.update(t.as_bytes());
                }
                Value::Blob(b) => {
                    h.update(b"B");
                    h.update((b.len() as u64).to_le_bytes());
                    h.update(b);
                }
            }
        }
    }
    hex::encode(h.finalize())
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The feedback store: one SQLite file (see the module docs).
#[derive(Debug)]
pub struct FeedbackStore {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl FeedbackStore {
    /// Opens `path`, creating the file (and its folder) and the schema when missing.
    pub fn open(path: &Path) -> Result<FeedbackStore> {
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| FeedbackError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let conn = Connection::open(path).map_err(sqlite(path, "opening"))?;
        Self::init(path, conn)
    }

    /// Opens an existing store (`Missing` when there is no file at `path`).
    pub fn open_existing(path: &Path) -> Result<FeedbackStore> {
        if !path.is_file() {
            return Err(FeedbackError::Missing(path.to_path_buf()));
        }
        Self::open(path)
    }

    fn init(path: &Path, conn: Connection) -> Result<FeedbackStore> {
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sqlite(path, "setting the busy timeout"))?;
        // WAL: readers do not block the writer; FULL: a commit is on disk before it returns.
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(sqlite(path, "turning on WAL"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(FeedbackError::Sqlite {
                path: path.to_path_buf(),
                context: "turning on WAL",
                source: rusqlite::Error::InvalidParameterName(format!("journal_mode is {mode}")),
            });
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sqlite(path, "setting synchronous = FULL"))?;
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(sqlite(path, "turning on foreign keys"))?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(sqlite(path, "reading the schema version"))?;
        if version > SCHEMA_VERSION {
            return Err(FeedbackError::NewerSchema {
                path: path.to_path_buf(),
                found: version,
            });
        }
        if version < SCHEMA_VERSION {
            conn.execute_batch(&format!(
                "BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            ))
            .map_err(sqlite(path, "creating the schema"))?;
        }
        Ok(FeedbackStore {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        })
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores an answered question; on disk when this returns.
    pub fn record_query(&self, q: &QueryRecord) -> Result<()> {
        self.conn()
            .execute(
                "INSERT INTO queries (query_id, created_ms, database, adapter, question, sql, \
                 valid, result_digest) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    q.query_id,
                    q.created_ms,
                    q.database,
                    q.adapter,
                    q.question,
                    q.sql,
                    q.valid,
                    q.result_digest
                ],
            )
            .map_err(sqlite(&self.path, "storing a query"))?;
        Ok(())
    }

    /// The query with id `query_id`, if stored.
    pub fn query(&self, query_id: &str) -> Result<Option<QueryRecord>> {
        self.conn()
            .query_row(
                "SELECT query_id, created_ms, database, adapter, question, sql, valid, \
                 result_digest FROM queries WHERE query_id = ?1",
                [query_id],
                query_row,
            )
            .optional()
            .map_err(sqlite(&self.path, "reading a query"))
    }

    /// Stores a verdict on a stored query and returns its id; on disk when this returns.
    /// [`FeedbackError::UnknownQuery`] when the query is not stored.
    pub fn add_feedback(&self, f: &NewFeedback) -> Result<i64> {
        let mut conn = self.conn();
        let tx = conn
            .transaction()
            .map_err(sqlite(&self.path, "starting a transaction"))?;
        let known: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM queries WHERE query_id = ?1)",
                [&f.query_id],
                |r| r.get(0),
            )
            .map_err(sqlite(&self.path, "looking up a query"))?;
        if !known {
            return Err(FeedbackError::UnknownQuery(f.query_id.clone()));
        }
        tx.execute(
            "INSERT INTO feedback (query_id, created_ms, verdict, corrected_sql, \
             corrected_digest) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                f.query_id,
                now_ms(),
                f.verdict.as_str(),
                f.corrected_sql,
                f.corrected_digest
            ],
        )
        .map_err(sqlite(&self.path, "storing feedback"))?;
        let id = tx.last_insert_rowid();
        tx.commit()
            .map_err(sqlite(&self.path, "committing feedback"))?;
        Ok(id)
    }

    /// Every verdict on `query_id`, oldest first.
    pub fn feedback_for(&self, query_id: &str) -> Result<Vec<FeedbackRecord>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT id, query_id, created_ms, verdict, corrected_sql, corrected_digest \
                 FROM feedback WHERE query_id = ?1 ORDER BY id",
            )
            .map_err(sqlite(&self.path, "reading feedback"))?;
        let rows = stmt
            .query_map([query_id], feedback_row)
            .map_err(sqlite(&self.path, "reading feedback"))?;
        rows.collect::<std::result::Result<Vec<_>, _>>()
            .map_err(sqlite(&self.path, "reading feedback"))
    }

    /// The gold (question, SQL) pairs of `database` from each query's latest verdict (see the
    /// module docs), with what was left out.
    pub fn training_examples(&self, database: &str) -> Result<Export> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT q.query_id, q.question, q.sql, q.valid, f.verdict, f.corrected_sql \
                 FROM queries q JOIN feedback f ON f.query_id = q.query_id \
                 WHERE q.database = ?1 \
                   AND f.id = (SELECT MAX(id) FROM feedback WHERE query_id = q.query_id) \
                 ORDER BY q.created_ms, f.id",
            )
            .map_err(sqlite(&self.path, "reading feedback"))?;
        let rows = stmt
            .query_map([database], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, bool>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, Option<String>>(5)?,
                ))
            })
            .map_err(sqlite(&self.path, "reading feedback"))?;
        let mut out = Export::default();
        let mut seen = std::collections::HashSet::new();
        for row in rows {
            let (query_id, question, sql, valid, verdict, corrected) =
                row.map_err(sqlite(&self.path, "reading feedback"))?;
            let (gold, source) = match (verdict.as_str(), corrected) {
                (_, Some(c)) => (c, GoldSource::Corrected),
                ("correct", None) if valid => (sql, GoldSource::Confirmed),
                ("correct", None) => {
                    out.skipped_invalid += 1;
                    continue;
                }
                _ => {
                    out.skipped_wrong += 1;
                    continue;
                }
            };
            if !seen.insert((question.clone(), gold.clone())) {
                out.duplicates += 1;
                continue;
            }
            out.examples.push(GoldExample {
                query_id,
                database: database.to_string(),
                question,
                sql: gold,
                source,
            });
        }
        Ok(out)
    }
}

fn sqlite<'a>(
    path: &'a Path,
    context: &'static str,
) -> impl Fn(rusqlite::Error) -> FeedbackError + 'a {
    move |source| FeedbackError::Sqlite {
        path: path.to_path_buf(),
        context,
        source,
    }
}

fn query_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<QueryRecord> {
    Ok(QueryRecord {
        query_id: r.get(0)?,
        created_ms: r.get(1)?,
        database: r.get(2)?,
        adapter: r.get(3)?,
        question: r.get(4)?,
        sql: r.get(5)?,
        valid: r.get(6)?,
        result_digest: r.get(7)?,
    })
}

fn feedback_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<FeedbackRecord> {
    let verdict: String = r.get(3)?;
    let verdict = Verdict::parse(&verdict).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            3,
            rusqlite::types::Type::Text,
            format!("unknown verdict '{verdict}'").into(),
        )
    })?;
    Ok(FeedbackRecord {
        id: r.get(0)?,
        query_id: r.get(1)?,
        created_ms: r.get(2)?,
        verdict,
        corrected_sql: r.get(4)?,
        corrected_digest: r.get(5)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, db: &str, question: &str, sql: &str, valid: bool) -> QueryRecord {
        QueryRecord {
            query_id: id.to_string(),
            created_ms: now_ms(),
            database: db.to_string(),
            adapter: None,
            question: question.to_string(),
            sql: sql.to_string(),
            valid,
            result_digest: None,
        }
    }

    fn verdict(id: &str, v: Verdict, corrected: Option<&str>) -> NewFeedback {
        NewFeedback {
            query_id: id.to_string(),
            verdict: v,
            corrected_sql: corrected.map(str::to_string),
            corrected_digest: None,
        }
    }

    #[test]
    fn the_latest_verdict_decides_the_gold_sql() {
        let dir = tempfile::tempdir().unwrap();
        let store = FeedbackStore::open(&dir.path().join("sub/fb.sqlite3")).unwrap();
        store
            .record_query(&record("a", "shop", "how many?", "SELECT 1", true))
            .unwrap();
        store
            .record_query(&record("b", "shop", "names?", "SELECT 2", true))
            .unwrap();
        store
            .record_query(&record("c", "shop", "cities?", "SELECT 3", true))
            .unwrap();
        store
            .record_query(&record("d", "shop", "bad?", "SELEC", false))
            .unwrap();
        store
            .record_query(&record("e", "other", "x?", "SELECT 5", true))
            .unwrap();
        store
            .add_feedback(&verdict("a", Verdict::Correct, None))
            .unwrap();
        store
            .add_feedback(&verdict("b", Verdict::Correct, None))
            .unwrap();
        store
            .add_feedback(&verdict("b", Verdict::Wrong, Some("SELECT 22")))
            .unwrap();
        store
            .add_feedback(&verdict("c", Verdict::Wrong, None))
            .unwrap();
        store
            .add_feedback(&verdict("d", Verdict::Correct, None))
            .unwrap();
        store
            .add_feedback(&verdict("e", Verdict::Correct, None))
            .unwrap();
        let x = store.training_examples("shop").unwrap();
        let pairs: Vec<(&str, &str, GoldSource)> = x
            .examples
            .iter()
            .map(|e| (e.question.as_str(), e.sql.as_str(), e.source))
            .collect();
        assert_eq!(
            pairs,
            [
                ("how many?", "SELECT 1", GoldSource::Confirmed),
                ("names?", "SELECT 22", GoldSource::Corrected)
            ]
        );
        assert_eq!((x.skipped_wrong, x.skipped_invalid), (1, 1));
        assert_eq!(store.feedback_for("b").unwrap().len(), 2);
        assert!(matches!(
            store.add_feedback(&verdict("zz", Verdict::Correct, None)),
            Err(FeedbackError::UnknownQuery(id)) if id == "zz"
        ));
    }

    #[test]
    fn a_reopened_store_keeps_its_rows_and_refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fb.sqlite3");
        {
            let store = FeedbackStore::open(&path).unwrap();
            store
                .record_query(&record("a", "shop", "q", "SELECT 1", true))
                .unwrap();
        }
        let store = FeedbackStore::open_existing(&path).unwrap();
        assert_eq!(store.query("a").unwrap().unwrap().sql, "SELECT 1");
        assert!(store.query("b").unwrap().is_none());
        drop(store);
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        assert!(matches!(
            FeedbackStore::open(&path),
            Err(FeedbackError::NewerSchema { .. })
        ));
        assert!(matches!(
            FeedbackStore::open_existing(&dir.path().join("none.sqlite3")),
            Err(FeedbackError::Missing(_))
        ));
    }

    #[test]
    fn digests_tell_results_apart() {
        let cols = vec!["a".to_string()];
        let one = result_digest(&cols, &[vec![Value::Integer(1)]]);
        assert_eq!(one, result_digest(&cols, &[vec![Value::Integer(1)]]));
        assert_ne!(one, result_digest(&cols, &[vec![Value::Real(1.0)]]));
        assert_ne!(one, result_digest(&cols, &[vec![Value::Text("1".into())]]));
        assert_ne!(
            one,
            result_digest(&["b".to_string()], &[vec![Value::Integer(1)]])
        );
        assert_eq!(new_query_id().len(), 32);
        assert_ne!(new_query_id(), new_query_id());
    }
}
