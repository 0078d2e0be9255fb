//! Shared helpers: the bundled domains' schemas and quick questions to the recognizer.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use rusqlite::Connection;
use sqlora_constrain::{Options, SchemaIndex, SqlState};
use sqlora_sql::schema::Schema;

pub fn datasets_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../datasets")
}

/// The domains under `datasets/` (folders with a schema.sql).
pub fn domains() -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(datasets_dir())
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            e.path()
                .join("schema.sql")
                .is_file()
                .then(|| e.file_name().to_string_lossy().into_owned())
        })
        .collect();
    out.sort();
    out
}

/// An in-memory database with a domain's schema (no rows).
pub fn domain_db(domain: &str) -> Connection {
    let ddl = std::fs::read_to_string(datasets_dir().join(domain).join("schema.sql")).unwrap();
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(&ddl).unwrap();
    conn
}

pub fn domain_schema(domain: &str) -> Schema {
    Schema::from_connection(&domain_db(domain), 0).unwrap()
}

pub fn domain_index(domain: &str) -> Arc<SchemaIndex> {
    SchemaIndex::new(&domain_schema(domain))
}

/// An index over a schema given as DDL.
pub fn ddl_index(ddl: &str) -> Arc<SchemaIndex> {
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(ddl).unwrap();
    SchemaIndex::new(&Schema::from_connection(&conn, 0).unwrap())
}

/// Whether `sql` is a complete statement.
pub fn complete(index: &Arc<SchemaIndex>, sql: &str) -> bool {
    complete_with(index, sql, Options::default())
}

pub fn complete_with(index: &Arc<SchemaIndex>, sql: &str, opts: Options) -> bool {
    let mut s = SqlState::with_options(index.clone(), opts);
    s.feed_str(sql) && s.can_end()
}

/// Whether `text` is a valid prefix (alive).
pub fn prefix(index: &Arc<SchemaIndex>, text: &str) -> bool {
    prefix_with(index, text, Options::default())
}

pub fn prefix_with(index: &Arc<SchemaIndex>, text: &str, opts: Options) -> bool {
    let mut s = SqlState::with_options(index.clone(), opts);
    s.feed_str(text)
}

/// How far `sql` gets: the byte offset where the recognizer died, if it did.
pub fn dies_at(index: &Arc<SchemaIndex>, sql: &str) -> Option<usize> {
    let mut s = SqlState::new(index.clone());
    for (i, b) in sql.bytes().enumerate() {
        if !s.feed_bytes(&[b]) {
            return Some(i);
        }
    }
    None
}
