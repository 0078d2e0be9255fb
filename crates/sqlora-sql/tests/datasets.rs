//! False-positive sweep over the bundled datasets: every gold query that SQLite
//! accepts must pass the guard (policy + schema check) unchanged.

use std::path::Path;

use rusqlite::Connection;
use sqlora_sql::{Guard, Schema};

#[test]
fn bundled_gold_queries_pass_the_guard() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets");
    let Ok(domains) = std::fs::read_dir(&root) else {
        return; // crate used outside the workspace: nothing to sweep
    };
    let mut checked = 0;
    let mut failures = Vec::new();
    for domain in domains {
        let dir = domain.unwrap().path();
        let (schema_sql, data_sql) = (dir.join("schema.sql"), dir.join("data.sql"));
        if !schema_sql.is_file() || !data_sql.is_file() {
            continue;
        }
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("db.sqlite");
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(&std::fs::read_to_string(&schema_sql).unwrap())
            .unwrap();
        // One transaction: one fsync instead of one per INSERT.
        conn.execute_batch("PRAGMA journal_mode = MEMORY; PRAGMA synchronous = OFF; BEGIN")
            .unwrap();
        conn.execute_batch(&std::fs::read_to_string(&data_sql).unwrap())
            .unwrap();
        conn.execute_batch("COMMIT").unwrap();
        drop(conn);
        let guard = Guard::new(Schema::introspect(&db).unwrap());
        let ro = sqlora_sql::open_read_only(&db).unwrap();
        for split in ["train.jsonl", "dev.jsonl", "test.jsonl"] {
            let Ok(text) = std::fs::read_to_string(dir.join(split)) else {
                continue;
            };
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                let Some(sql) = v["sql"].as_str() else {
                    continue;
                };
                if ro.prepare(sql).is_err() {
                    continue; // not the guard's business
                }
                checked += 1;
                if let Err(e) = guard.check(sql) {
                    failures.push(format!("{}: {e} :: {sql}", dir.display()));
                }
            }
        }
    }
    assert!(checked >= 100, "only {checked} gold queries found");
    assert!(
        failures.is_empty(),
        "{} of {checked} refused:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
