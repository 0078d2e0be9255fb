//! Execution-guided answers on a real SQLite file: candidates in order, the first that passes
//! the guard and executes wins, every failure is reported, and nothing the guard refuses runs.

use std::path::PathBuf;

use sqlora_sql::exec::{ExecError, ExecLimits, ReadOnlyDb};
use sqlora_sqlgen::{answer, AnswerOptions};

fn shop(dir: &std::path::Path) -> PathBuf {
    let path = dir.join("shop.sqlite");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT);
         INSERT INTO customers VALUES (1, 'Ada', 'Paris'), (2, 'Bob', 'Oslo'), (3, 'Cy', NULL);",
    )
    .unwrap();
    path
}

fn texts(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn the_first_candidate_that_executes_wins_and_failures_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let path = shop(tmp.path());
    let db = ReadOnlyDb::open(&path).unwrap();
    let mut failures = Vec::new();
    // Continuations of the prime "SELECT".
    let cands = texts(&[
        " nme FROM customers;",
        " name FROM customers ORDER BY id; DROP TABLE customers",
        " 1",
    ]);
    let a = answer(&db, &cands, &AnswerOptions::default(), |e| {
        failures.push(e.code())
    });
    assert!(a.valid);
    assert_eq!(a.sql, "SELECT name FROM customers ORDER BY id");
    assert_eq!(a.columns, vec!["name".to_string()]);
    assert_eq!(a.rows.len(), 3);
    assert!(!a.truncated);
    assert!(a.error.is_none());
    assert_eq!(a.attempts.len(), 1);
    assert_eq!(a.attempts[0].sql, "SELECT nme FROM customers");
    assert_eq!(a.attempts[0].error["code"], "unknown_column");
    assert_eq!(failures, vec!["guard"]);
    // The JSON the CLI and the server print.
    let v = serde_json::to_value(&a).unwrap();
    assert_eq!(v["attempts"][0]["sql"], "SELECT nme FROM customers");
}

#[test]
fn nothing_valid_gives_the_first_sql_and_the_last_error() {
    let tmp = tempfile::tempdir().unwrap();
    let path = shop(tmp.path());
    let db = ReadOnlyDb::open(&path).unwrap();
    let opts = AnswerOptions {
        primed: false,
        ..AnswerOptions::default()
    };
    let cands = texts(&["DELETE FROM customers", "SELECT x FROM nowhere"]);
    let mut seen = 0;
    let a = answer(&db, &cands, &opts, |e| {
        assert!(matches!(e, ExecError::Guard(_)));
        seen += 1;
    });
    assert!(!a.valid);
    assert_eq!(seen, 2);
    assert_eq!(a.sql, "DELETE FROM customers");
    assert_eq!(a.attempts.len(), 2);
    assert_eq!(a.error.as_ref(), Some(&a.attempts[1].error));
    assert!(a.rows.is_empty() && a.columns.is_empty());
    // The refused write never ran.
    let n: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT count(*) FROM customers", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 3);
    // No candidates: nothing valid, no SQL.
    let a = answer(&db, &[], &opts, |_| {});
    assert!(!a.valid && a.sql.is_empty() && a.error.is_none());
}

#[test]
fn without_execution_the_sql_is_only_checked_and_budgets_cut_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let path = shop(tmp.path());
    let db = ReadOnlyDb::open(&path).unwrap();
    let checked = answer(
        &db,
        &texts(&[" city FROM customers"]),
        &AnswerOptions {
            execute: false,
            ..AnswerOptions::default()
        },
        |_| {},
    );
    assert!(checked.valid);
    assert_eq!(checked.sql, "SELECT city FROM customers");
    assert!(checked.columns.is_empty() && checked.rows.is_empty());
    let cut = answer(
        &db,
        &texts(&[" id FROM customers"]),
        &AnswerOptions {
            limits: ExecLimits {
                max_rows: 2,
                ..ExecLimits::default()
            },
            ..AnswerOptions::default()
        },
        |_| {},
    );
    assert!(cut.valid && cut.truncated);
    assert_eq!(cut.rows.len(), 2);
}
