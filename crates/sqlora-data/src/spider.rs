//! Import of Spider / BIRD format data into this project's domain layout.
//!
//! Input: `tables.json` (a list of `{db_id, table_names_original, …}`), an
//! examples file (a list of `{db_id, question, query}` — Spider — or
//! `{db_id, question, SQL}` — BIRD) and `db_dir/<db_id>/<db_id>.sqlite`.
//!
//! Output, per database: `OUT/<db_id>/schema.sql` (the CREATE statements
//! stored in the sqlite file: tables, then indexes, views, triggers),
//! `OUT/<db_id>/data.sql` (one `INSERT` per row, tables in creation order,
//! rows in rowid order, values written so they read back with the same
//! storage class), and `OUT/<db_id>/<stem>.jsonl` where `<stem>` is the
//! examples file's stem (`dev.json` → `dev.jsonl`), with ids
//! `<db_id>_<stem>_<n>` (`n` = position of the example among that
//! database's examples in the file, from 0) and Spider hardness as the
//! difficulty. [`crate::fixtures::build_domain`] rebuilds the database from
//! the output.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use serde::Deserialize;

use crate::dataset::{write_atomic, write_jsonl, Example};
use crate::deps::hardness;
use crate::error::DataError;
use crate::fixtures::quote_ident;

/// What [`import_spider`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    /// Databases written.
    pub databases: usize,
    /// Examples written.
    pub examples: usize,
    /// `(example id or db_id, reason)` for everything left out.
    pub skipped: Vec<(String, String)>,
    /// The output directory.
    pub out_dir: PathBuf,
}

#[derive(Debug, Deserialize)]
struct SpiderDb {
    db_id: String,
    #[serde(default)]
    table_names_original: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct SpiderExample {
    #[serde(default)]
    db_id: Option<String>,
    #[serde(default)]
    question: Option<String>,
    #[serde(default)]
    query: Option<String>,
    #[serde(default, rename = "SQL")]
    sql: Option<String>,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, DataError> {
    if !path.is_file() {
        return Err(DataError::Missing(path.to_path_buf()));
    }
    let text = fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    serde_json::from_str(&text).map_err(|source| DataError::Json {
        path: path.to_path_buf(),
        line: 0,
        source,
    })
}

/// Imports the examples of `examples_json` (and their databases) into
/// `out_dir` (see the module docs for the layout). Examples whose database
/// is not in `tables.json`, has no sqlite file, or whose SQL has no Spider
/// hardness are skipped with a reason.
pub fn import_spider(
    tables_json: &Path,
    examples_json: &Path,
    db_dir: &Path,
    out_dir: &Path,
) -> Result<ImportSummary, DataError> {
    let dbs: Vec<SpiderDb> = read_json(tables_json)?;
    let raw: Vec<SpiderExample> = read_json(examples_json)?;
    let stem = examples_json
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| DataError::Invalid {
            path: examples_json.to_path_buf(),
            message: "examples file has no name".into(),
        })?;
    let known: BTreeMap<&str, &SpiderDb> = dbs.iter().map(|d| (d.db_id.as_str(), d)).collect();

    let mut summary = ImportSummary {
        databases: 0,
        examples: 0,
        skipped: Vec::new(),
        out_dir: out_dir.to_path_buf(),
    };
    // Examples grouped by database, in file order within each database.
    let mut by_db: BTreeMap<String, Vec<(usize, SpiderExample)>> = BTreeMap::new();
    for (i, ex) in raw.into_iter().enumerate() {
        match ex.db_id.clone() {
            Some(db) if is_safe_name(&db) => by_db.entry(db).or_default().push((i, ex)),
            Some(db) => summary
                .skipped
                .push((format!("#{i}"), format!("unusable db_id {db:?}"))),
            None => summary
                .skipped
                .push((format!("#{i}"), "example has no db_id".into())),
        }
    }

    for (db_id, examples) in by_db {
        let id = |n: usize| format!("{db_id}_{stem}_{n}");
        let skip_all = |summary: &mut ImportSummary, why: String| {
            for n in 0..examples.len() {
                summary.skipped.push((id(n), why.clone()));
            }
        };
        let Some(meta) = known.get(db_id.as_str()) else {
            skip_all(
                &mut summary,
                format!("database {db_id} is not in tables.json"),
            );
            continue;
        };
        let sqlite = db_dir.join(&db_id).join(format!("{db_id}.sqlite"));
        if !sqlite.is_file() {
            skip_all(
                &mut summary,
                format!("database file {} is missing", sqlite.display()),
            );
            continue;
        }
        let conn = Connection::open_with_flags(&sqlite, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| DataError::sqlite(format!("opening {}", sqlite.display()), e))?;
        let (schema_sql, tables) = dump_schema(&conn, &sqlite)?;
        let lower: HashSet<String> = tables.iter().map(|t| t.to_lowercase()).collect();
        if let Some(missing) = meta
            .table_names_original
            .iter()
            .find(|t| !lower.contains(&t.to_lowercase()))
        {
            skip_all(
                &mut summary,
                format!("tables.json lists table {missing} which {db_id}.sqlite lacks"),
            );
            continue;
        }
        let data_sql = dump_data(&conn, &tables, &sqlite)?;

        let mut out = Vec::new();
        for (n, (_, ex)) in examples.into_iter().enumerate() {
            let Some(question) = ex.question.filter(|q| !q.trim().is_empty()) else {
                summary.skipped.push((id(n), "no question".into()));
                continue;
            };
            let Some(sql) = ex.query.or(ex.sql).filter(|q| !q.trim().is_empty()) else {
                summary.skipped.push((id(n), "no query / SQL".into()));
                continue;
            };
            let sql = sql.trim().to_string();
            match hardness(&sql) {
                Ok(difficulty) => out.push(Example {
                    id: id(n),
                    db_id: db_id.clone(),
                    question: question.trim().to_string(),
                    sql,
                    difficulty,
                }),
                Err(e) => summary
                    .skipped
                    .push((id(n), format!("no Spider hardness for the query: {e}"))),
            }
        }
        let dir = out_dir.join(&db_id);
        write_atomic(&dir.join("schema.sql"), schema_sql.as_bytes())?;
        write_atomic(&dir.join("data.sql"), data_sql.as_bytes())?;
        write_jsonl(&dir.join(format!("{stem}.jsonl")), &out)?;
        summary.databases += 1;
        summary.examples += out.len();
    }
    Ok(summary)
}

/// A db_id usable as a directory name.
fn is_safe_name(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\\', '\0'])
}

/// The CREATE statements of a database (tables, indexes, views, triggers in
/// creation order within each kind) and its table names.
fn dump_schema(conn: &Connection, path: &Path) -> Result<(String, Vec<String>), DataError> {
    let ctx = || format!("reading schema of {}", path.display());
    let mut st = conn
        .prepare(
            "SELECT type, name, sql FROM sqlite_master \
             WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' \
             ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 \
             WHEN 'view' THEN 2 ELSE 3 END, rowid",
        )
        .map_err(|e| DataError::sqlite(ctx(), e))?;
    let rows = st
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .map_err(|e| DataError::sqlite(ctx(), e))?;
    let mut sql = String::new();
    let mut tables = Vec::new();
    for row in rows {
        let (ty, name, text) = row.map_err(|e| DataError::sqlite(ctx(), e))?;
        sql.push_str(text.trim().trim_end_matches(';'));
        sql.push_str(";\n");
        if ty == "table" {
            tables.push(name);
        }
    }
    Ok((sql, tables))
}

/// One `INSERT` per row of every table, rows in rowid order.
fn dump_data(conn: &Connection, tables: &[String], path: &Path) -> Result<String, DataError> {
    let ctx = || format!("reading rows of {}", path.display());
    let mut out = String::new();
    for t in tables {
        let q = quote_ident(t);
        let mut st = match conn.prepare(&format!("SELECT * FROM {q} ORDER BY rowid")) {
            Ok(st) => st,
            Err(_) => {
                // WITHOUT ROWID table: order by every column.
                let n = conn
                    .prepare(&format!("SELECT * FROM {q}"))
                    .map_err(|e| DataError::sqlite(ctx(), e))?
                    .column_count();
                let order: Vec<String> = (1..=n.max(1)).map(|i| i.to_string()).collect();
                conn.prepare(&format!("SELECT * FROM {q} ORDER BY {}", order.join(",")))
                    .map_err(|e| DataError::sqlite(ctx(), e))?
            }
        };
        let n = st.column_count();
        let mut rows = st.query([]).map_err(|e| DataError::sqlite(ctx(), e))?;
        while let Some(r) = rows.next().map_err(|e| DataError::sqlite(ctx(), e))? {
            let _ = write!(out, "INSERT INTO {q} VALUES (");
            for i in 0..n {
                if i > 0 {
                    out.push_str(", ");
                }
                let v = r.get_ref(i).map_err(|e| DataError::sqlite(ctx(), e))?;
                push_literal(&mut out, v);
            }
            out.push_str(");\n");
        }
    }
    Ok(out)
}

/// Writes `v` as a SQL literal that reads back with the same storage class.
fn push_literal(out: &mut String, v: ValueRef<'_>) {
    match v {
        ValueRef::Null => out.push_str("NULL"),
        ValueRef::Integer(i) => {
            let _ = write!(out, "{i}");
        }
        ValueRef::Real(f) => {
            if f.is_nan() {
                out.push_str("NULL");
            } else if f.is_infinite() {
                out.push_str(if f > 0.0 { "9e999" } else { "-9e999" });
            } else {
                // `{:?}` is the shortest text that parses back to the same
                // f64 and always marks a real ("5.0", "1e-7").
                let _ = write!(out, "{f:?}");
            }
        }
        ValueRef::Text(t) => match std::str::from_utf8(t) {
            Ok(s) if !s.contains('\0') => {
                out.push('\'');
                out.push_str(&s.replace('\'', "''"));
                out.push('\'');
            }
            _ => {
                let _ = write!(out, "CAST(X'{}' AS TEXT)", hex::encode(t));
            }
        },
        ValueRef::Blob(b) => {
            let _ = write!(out, "X'{}'", hex::encode(b));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_read_back_with_the_same_value_and_type() {
        let conn = Connection::open_in_memory().unwrap();
        let cases: Vec<rusqlite::types::Value> = vec![
            rusqlite::types::Value::Null,
            rusqlite::types::Value::Integer(-42),
            rusqlite::types::Value::Integer(i64::MIN),
            rusqlite::types::Value::Real(5.0),
            rusqlite::types::Value::Real(1e-7),
            rusqlite::types::Value::Real(0.1 + 0.2),
            rusqlite::types::Value::Real(f64::INFINITY),
            rusqlite::types::Value::Text("O'Hara; \"x\" ñ".into()),
            rusqlite::types::Value::Text("a\0b".into()),
            rusqlite::types::Value::Blob(vec![0, 255, 7]),
        ];
        for v in cases {
            let mut lit = String::new();
            push_literal(&mut lit, (&v).into());
            let back: rusqlite::types::Value = conn
                .query_row(&format!("SELECT {lit}"), [], |r| r.get(0))
                .unwrap();
            assert_eq!(back, v, "literal {lit}");
        }
    }
}
