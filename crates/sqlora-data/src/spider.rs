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
    /// `(db_id, what)` for what was noticed about a database and worked around (a table
    /// tables.json lists that the file lacks, a table this SQLite cannot read); the database
    /// is still imported.
    pub notes: Vec<(String, String)>,
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
/// is not in `tables.json` or has no readable sqlite file, whose SQL does not
/// prepare on the database (a table or column it lacks) or is not read-only,
/// or has no Spider hardness are skipped with a reason, each on its own.
/// Databases are taken as they are: a table tables.json lists that the file
/// lacks (or spells in another case), tables without a primary key, `WITHOUT
/// ROWID` tables, views, odd or non-ASCII names; what cannot be read (a
/// virtual table of a module this SQLite lacks) is left out with a note in
/// [`ImportSummary::notes`], never the whole database.
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
        notes: Vec::new(),
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
        let conn = match Connection::open_with_flags(&sqlite, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|c| c.pragma_update(None, "query_only", true).map(|()| c))
        {
            Ok(c) => c,
            Err(e) => {
                skip_all(
                    &mut summary,
                    format!("cannot open {} read-only: {e}", sqlite.display()),
                );
                continue;
            }
        };
        let objects = match schema_objects(&conn) {
            Ok(o) => o,
            Err(e) => {
                skip_all(
                    &mut summary,
                    format!("cannot read the schema of {}: {e}", sqlite.display()),
                );
                continue;
            }
        };
        // What tables.json says and the file disagrees on is noted, never a reason to drop the
        // database: names compare case-insensitively (as SQLite does), SQLite's own tables
        // (`sqlite_sequence`, `sqlite_stat1`) are in the file whether or not the dump shows
        // them, and an example whose query needs a table the file lacks is skipped on its
        // own (its query does not prepare).
        let in_file: HashSet<String> = all_table_names(&conn)
            .unwrap_or_default()
            .into_iter()
            .map(|t| t.to_lowercase())
            .collect();
        for missing in meta
            .table_names_original
            .iter()
            .filter(|t| !in_file.contains(&t.to_lowercase()))
        {
            summary.notes.push((
                db_id.clone(),
                format!(
                    "tables.json lists table {missing:?}, which {db_id}.sqlite lacks: ignored \
                     (examples that use it are skipped)"
                ),
            ));
        }
        let Dump {
            schema: schema_sql,
            data: data_sql,
            unreadable,
        } = dump(&conn, &objects, &sqlite)?;
        for (table, why) in unreadable {
            summary.notes.push((
                db_id.clone(),
                format!("table {table:?} cannot be read here ({why}): left out of the import"),
            ));
        }

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
            if let Err(why) = gold_runs(&conn, &sql) {
                summary.skipped.push((id(n), why));
                continue;
            }
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

/// Whether the gold query `sql` prepares on `conn` as one read-only statement; the reason
/// when not.
fn gold_runs(conn: &Connection, sql: &str) -> Result<(), String> {
    match conn.prepare(sql) {
        Ok(st) if st.readonly() => Ok(()),
        Ok(_) => Err("the query is not read-only".into()),
        Err(e) => Err(format!("the query does not run on the database: {e}")),
    }
}

/// One schema object: its type (`table`, `index`, `view`, `trigger`), name and CREATE text.
type Object = (String, String, String);

/// The schema objects with CREATE text, SQLite's own excluded: tables, indexes, views,
/// triggers, in creation order within each kind.
fn schema_objects(conn: &Connection) -> rusqlite::Result<Vec<Object>> {
    let mut st = conn.prepare(
        "SELECT type, name, sql FROM sqlite_master \
         WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' \
         ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 \
         WHEN 'view' THEN 2 ELSE 3 END, rowid",
    )?;
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    rows.collect()
}

/// Every table and view name in the file, SQLite's own tables included.
fn all_table_names(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut st = conn.prepare("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")?;
    let rows = st.query_map([], |r| r.get(0))?;
    rows.collect()
}

/// A database as [`dump`] writes it.
struct Dump {
    /// `schema.sql`.
    schema: String,
    /// `data.sql`.
    data: String,
    /// `(table, reason)` for the tables left out because they cannot be read here.
    unreadable: Vec<(String, String)>,
}

/// `schema.sql` and `data.sql` of a database (see the module docs), and the tables left out
/// because they cannot be read here, with the reason (their CREATE statements, and the
/// indexes and triggers on them, are left out too).
fn dump(conn: &Connection, objects: &[Object], path: &Path) -> Result<Dump, DataError> {
    let mut data = String::new();
    let mut unreadable: Vec<(String, String)> = Vec::new();
    for (ty, name, _) in objects {
        if ty != "table" {
            continue;
        }
        let mut rows = String::new();
        match dump_table(conn, name, &mut rows) {
            Ok(()) => data.push_str(&rows),
            Err(e) => unreadable.push((name.clone(), e.to_string())),
        }
    }
    let dropped: HashSet<String> = unreadable.iter().map(|(t, _)| t.to_lowercase()).collect();
    let mut schema = String::new();
    for (ty, name, text) in objects {
        let on_dropped = match ty.as_str() {
            "table" => dropped.contains(&name.to_lowercase()),
            "index" | "trigger" => table_of(conn, name)
                .map(|t| dropped.contains(&t.to_lowercase()))
                .map_err(|e| {
                    DataError::sqlite(format!("reading schema of {}", path.display()), e)
                })?,
            _ => false,
        };
        if on_dropped {
            continue;
        }
        schema.push_str(text.trim().trim_end_matches(';'));
        schema.push_str(";\n");
    }
    Ok(Dump {
        schema,
        data,
        unreadable,
    })
}

/// The table an index or trigger belongs to.
fn table_of(conn: &Connection, name: &str) -> rusqlite::Result<String> {
    conn.query_row(
        "SELECT tbl_name FROM sqlite_master WHERE name = ?1",
        [name],
        |r| r.get(0),
    )
}

/// One `INSERT` per row of table `t` into `out`, rows in rowid order (`WITHOUT ROWID`
/// tables: ordered by every column).
fn dump_table(conn: &Connection, t: &str, out: &mut String) -> rusqlite::Result<()> {
    let q = quote_ident(t);
    let mut st = match conn.prepare(&format!("SELECT * FROM {q} ORDER BY rowid")) {
        Ok(st) => st,
        Err(_) => {
            // WITHOUT ROWID table: order by every column.
            let n = conn.prepare(&format!("SELECT * FROM {q}"))?.column_count();
            let order: Vec<String> = (1..=n.max(1)).map(|i| i.to_string()).collect();
            conn.prepare(&format!("SELECT * FROM {q} ORDER BY {}", order.join(",")))?
        }
    };
    let n = st.column_count();
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        let _ = write!(out, "INSERT INTO {q} VALUES (");
        for i in 0..n {
            if i > 0 {
                out.push_str(", ");
            }
            push_literal(out, r.get_ref(i)?);
        }
        out.push_str(");\n");
    }
    Ok(())
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
