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
    let (mut caught, mut missed) = (0usize, Vec::<String>::new());
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
                // Hallucinate one column name: the guard must never refuse what
                // SQLite runs, and should catch (nearly) everything SQLite refuses.
                if let Some(bad) = misspell_a_column(sql, guard.schema(), checked) {
                    let sqlite_refuses = ro.prepare(&bad).is_err();
                    match (guard.check(&bad), sqlite_refuses) {
                        (Err(e), false) => failures.push(format!("false positive {e} :: {bad}")),
                        (Ok(()), true) => missed.push(bad),
                        (Err(_), true) => caught += 1,
                        (Ok(()), false) => {}
                    }
                }
            }
        }
    }
    eprintln!(
        "{checked} gold queries; misspelt columns caught {caught}, missed {}",
        missed.len()
    );
    for m in &missed {
        eprintln!("missed: {m}");
    }
    assert!(checked >= 100, "only {checked} gold queries found");
    assert!(
        missed.len() * 50 <= caught,
        "guard missed {} hallucinated columns SQLite refuses (caught {caught}):\n{}",
        missed.len(),
        missed.join("\n")
    );
    assert!(
        failures.is_empty(),
        "{} of {checked} refused:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Re-spells the `n`-th (cyclically) unquoted word that names a schema column.
fn misspell_a_column(sql: &str, schema: &Schema, n: usize) -> Option<String> {
    use sqlparser::dialect::SQLiteDialect;
    use sqlparser::tokenizer::{Token, Tokenizer};
    let tokens = Tokenizer::new(&SQLiteDialect {}, sql).tokenize().ok()?;
    let is_column = |w: &str| {
        schema
            .tables
            .iter()
            .any(|t| t.column(w).is_some() && schema.table(w).is_none())
    };
    let positions: Vec<usize> = tokens
        .iter()
        .enumerate()
        .filter(
            |(_, t)| matches!(t, Token::Word(w) if w.quote_style.is_none() && is_column(&w.value)),
        )
        .map(|(i, _)| i)
        .collect();
    if positions.is_empty() {
        return None;
    }
    let target = positions[n % positions.len()];
    Some(
        tokens
            .iter()
            .enumerate()
            .map(|(i, t)| match t {
                Token::Word(w) if i == target => format!("{}_x", w.value),
                other => other.to_string(),
            })
            .collect(),
    )
}
