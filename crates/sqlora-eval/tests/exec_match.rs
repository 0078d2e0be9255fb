//! `exec_match` on real SQLite files: every official rule that needs a database.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;
use sqlora_eval::{exec_match, suite_paths, EvalError, MatchOptions, MatchOutcome};

/// Creates `dir/<name>` with a `singer` table holding `rows` (id, name, country, age).
fn make_db(dir: &Path, name: &str, rows: &[(i64, &str, &str, Option<i64>)]) -> PathBuf {
    let path = dir.join(name);
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INTEGER);",
    )
    .unwrap();
    for (id, n, c, a) in rows {
        conn.execute(
            "INSERT INTO singer VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![id, n, c, a],
        )
        .unwrap();
    }
    path
}

const BASE: &[(i64, &str, &str, Option<i64>)] = &[
    (1, "Joe", "Netherlands", Some(52)),
    (2, "Tim", "United States", Some(32)),
    (3, "Justin", "France", Some(29)),
    (4, "Rose", "France", Some(41)),
    (5, "Nina", "France", None),
];

/// Same people, but Tim is 28 (so "age > 30" selects a different set).
const VARIANT: &[(i64, &str, &str, Option<i64>)] = &[
    (1, "Joe", "Netherlands", Some(52)),
    (2, "Tim", "United States", Some(28)),
    (3, "Justin", "France", Some(29)),
    (4, "Rose", "France", Some(41)),
    (5, "Nina", "France", None),
];

fn one_db() -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let p = make_db(dir.path(), "singer.sqlite", BASE);
    (dir, vec![p])
}

fn opts() -> MatchOptions {
    MatchOptions {
        timeout: Duration::from_secs(10),
        ..MatchOptions::default()
    }
}

fn verdict(paths: &[PathBuf], gold: &str, pred: &str) -> MatchOutcome {
    exec_match(paths, gold, pred, &opts()).unwrap()
}

#[test]
fn identical_and_equivalent_queries_match() {
    let (_d, p) = one_db();
    let gold = "SELECT name FROM singer WHERE age > 30";
    assert_eq!(verdict(&p, gold, gold), MatchOutcome::Correct);
    assert_eq!(
        verdict(&p, gold, "select NAME from singer where not age <= 30"),
        MatchOutcome::Correct
    );
    assert_eq!(
        verdict(&p, gold, "SELECT name FROM singer WHERE age > 40"),
        MatchOutcome::Wrong
    );
}

#[test]
fn distinct_is_removed_unless_kept() {
    let (_d, p) = one_db();
    let gold = "SELECT country FROM singer";
    let pred = "SELECT DISTINCT country FROM singer";
    assert_eq!(verdict(&p, gold, pred), MatchOutcome::Correct);
    let keep = MatchOptions {
        keep_distinct: true,
        ..opts()
    };
    assert_eq!(
        exec_match(&p, gold, pred, &keep).unwrap(),
        MatchOutcome::Wrong
    );
    // COUNT(DISTINCT x) becomes COUNT(x) on both sides as well.
    assert_eq!(
        verdict(
            &p,
            "SELECT count(country) FROM singer",
            "SELECT count(DISTINCT country) FROM singer"
        ),
        MatchOutcome::Correct
    );
    assert_eq!(
        exec_match(
            &p,
            "SELECT count(country) FROM singer",
            "SELECT count(DISTINCT country) FROM singer",
            &keep
        )
        .unwrap(),
        MatchOutcome::Wrong
    );
}

#[test]
fn split_comparison_operators_are_joined() {
    let (_d, p) = one_db();
    assert_eq!(
        verdict(
            &p,
            "SELECT name FROM singer WHERE age >= 41",
            "SELECT name FROM singer WHERE age > = 41"
        ),
        MatchOutcome::Correct
    );
    assert_eq!(
        verdict(
            &p,
            "SELECT name FROM singer WHERE age != 41",
            "SELECT name FROM singer WHERE age ! = 41"
        ),
        MatchOutcome::Correct
    );
}

#[test]
fn order_matters_only_with_order_by_in_gold() {
    let (_d, p) = one_db();
    let asc = "SELECT name FROM singer WHERE age IS NOT NULL ORDER BY age";
    let desc = "SELECT name FROM singer WHERE age IS NOT NULL ORDER BY age DESC";
    assert_eq!(verdict(&p, asc, desc), MatchOutcome::Wrong);
    assert_eq!(verdict(&p, asc, asc), MatchOutcome::Correct);
    // Gold without ORDER BY: any order of the same rows is fine.
    assert_eq!(
        verdict(&p, "SELECT name FROM singer WHERE age IS NOT NULL", desc),
        MatchOutcome::Correct
    );
}

#[test]
fn columns_may_be_permuted() {
    let (_d, p) = one_db();
    assert_eq!(
        verdict(
            &p,
            "SELECT name, country, age FROM singer",
            "SELECT age, name, country FROM singer"
        ),
        MatchOutcome::Correct
    );
    assert_eq!(
        verdict(
            &p,
            "SELECT singer_id, name, country, age, age + 1 FROM singer",
            "SELECT age + 1, country, age, singer_id, name FROM singer"
        ),
        MatchOutcome::Correct
    );
    assert_eq!(
        verdict(
            &p,
            "SELECT name, country FROM singer",
            "SELECT name FROM singer"
        ),
        MatchOutcome::Wrong
    );
}

#[test]
fn integer_and_real_results_compare_by_value() {
    let (_d, p) = one_db();
    assert_eq!(
        verdict(
            &p,
            "SELECT count(*) FROM singer",
            "SELECT count(*) * 1.0 FROM singer"
        ),
        MatchOutcome::Correct
    );
    assert_eq!(
        verdict(
            &p,
            "SELECT count(*) FROM singer",
            "SELECT count(*) + 0.5 FROM singer"
        ),
        MatchOutcome::Wrong
    );
}

#[test]
fn null_results_compare_equal_to_null() {
    let (_d, p) = one_db();
    assert_eq!(
        verdict(
            &p,
            "SELECT age FROM singer WHERE name = 'Nina'",
            "SELECT age FROM singer WHERE singer_id = 5"
        ),
        MatchOutcome::Correct
    );
    assert_eq!(
        verdict(
            &p,
            "SELECT age FROM singer WHERE name = 'Nina'",
            "SELECT 0 FROM singer WHERE singer_id = 5"
        ),
        MatchOutcome::Wrong
    );
}

#[test]
fn duplicates_count() {
    let (_d, p) = one_db();
    // Gold: France, France, Netherlands.
    let gold = "SELECT country FROM singer WHERE singer_id IN (1, 3, 4)";
    // Same set and row count, different bag: France, Netherlands, Netherlands.
    let bag = "SELECT country FROM singer WHERE singer_id IN (1, 3) UNION ALL SELECT 'Netherlands'";
    assert_eq!(verdict(&p, gold, bag), MatchOutcome::Wrong);
    // Same bag in another order.
    let same = "SELECT 'France' UNION ALL SELECT country FROM singer WHERE singer_id IN (4, 1)";
    assert_eq!(verdict(&p, gold, same), MatchOutcome::Correct);
}

#[test]
fn prediction_must_match_on_every_database_of_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("singer");
    std::fs::create_dir(&suite).unwrap();
    make_db(&suite, "singer.sqlite", BASE);
    make_db(&suite, "singer_variant.sqlite", VARIANT);
    std::fs::write(suite.join("notes.txt"), "not a database").unwrap();
    let paths = suite_paths(dir.path(), "singer").unwrap();
    assert_eq!(paths.len(), 2);
    assert!(paths[0] < paths[1]);

    let gold = "SELECT name FROM singer WHERE age > 30";
    // Hard-codes the base database's answer: right on it, wrong on the variant.
    let overfit = "SELECT name FROM singer WHERE singer_id IN (1, 2, 4)";
    assert_eq!(verdict(&paths[..1], gold, overfit), MatchOutcome::Correct);
    assert_eq!(verdict(&paths, gold, overfit), MatchOutcome::Wrong);
    assert_eq!(
        verdict(&paths, gold, "SELECT name FROM singer WHERE age >= 31"),
        MatchOutcome::Correct
    );
}

#[test]
fn suite_paths_errors() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        suite_paths(dir.path(), "missing"),
        Err(EvalError::Io { .. })
    ));
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    assert!(matches!(
        suite_paths(dir.path(), "empty"),
        Err(EvalError::NoDatabases(_))
    ));
}

#[test]
fn failing_prediction_is_wrong_not_an_error() {
    let (_d, p) = one_db();
    let gold = "SELECT name FROM singer";
    match verdict(&p, gold, "SELECT nme FROM singer") {
        MatchOutcome::PredError { code, message } => {
            assert_eq!(code, "sqlite");
            assert!(message.contains("nme"), "{message}");
        }
        other => panic!("expected an execution error, got {other:?}"),
    }
    match verdict(&p, gold, "SELECT name FROM") {
        MatchOutcome::PredError { code, .. } => assert_eq!(code, "parse"),
        other => panic!("expected a parse refusal, got {other:?}"),
    }
}

#[test]
fn writes_are_refused_and_never_run() {
    let (_d, p) = one_db();
    match verdict(&p, "SELECT name FROM singer", "DELETE FROM singer") {
        MatchOutcome::PredError { code, .. } => assert_eq!(code, "not_read_only"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let conn = Connection::open(&p[0]).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM singer", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 5);
}

#[test]
fn slow_prediction_times_out_and_is_wrong() {
    let (_d, p) = one_db();
    let fast = MatchOptions {
        timeout: Duration::from_millis(300),
        ..MatchOptions::default()
    };
    let forever = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) \
                   SELECT count(*) FROM c";
    match exec_match(&p, "SELECT count(*) FROM singer", forever, &fast).unwrap() {
        MatchOutcome::PredError { code, .. } => assert_eq!(code, "timeout"),
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[test]
fn failing_gold_is_an_error() {
    let (_d, p) = one_db();
    let err = exec_match(
        &p,
        "SELECT nope FROM singer",
        "SELECT name FROM singer",
        &opts(),
    )
    .unwrap_err();
    match err {
        EvalError::GoldFailed { db, message, .. } => {
            assert_eq!(db, p[0]);
            assert!(message.contains("nope"), "{message}");
        }
        other => panic!("expected GoldFailed, got {other:?}"),
    }
    // Even when the prediction is refused before running.
    assert!(matches!(
        exec_match(&p, "SELECT nope FROM singer", "DROP TABLE singer", &opts()),
        Err(EvalError::GoldFailed { .. })
    ));
}

#[test]
fn gold_larger_than_the_row_budget_is_an_error_and_larger_pred_is_wrong() {
    let (_d, p) = one_db();
    let small = MatchOptions {
        max_rows: 3,
        ..opts()
    };
    assert!(matches!(
        exec_match(
            &p,
            "SELECT name FROM singer",
            "SELECT name FROM singer",
            &small
        ),
        Err(EvalError::GoldFailed { .. })
    ));
    assert_eq!(
        exec_match(
            &p,
            "SELECT name FROM singer WHERE singer_id < 3",
            "SELECT name FROM singer",
            &small
        )
        .unwrap(),
        MatchOutcome::Wrong
    );
}

#[test]
fn invalid_utf8_text_is_decoded_with_errors_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bytes.sqlite");
    let conn = Connection::open(&path).unwrap();
    // 'f', 0xFF (invalid UTF-8), 'o' stored as TEXT.
    conn.execute_batch(
        "CREATE TABLE t (id INTEGER, name TEXT); INSERT INTO t VALUES (1, CAST(x'66ff6f' AS TEXT));",
    )
    .unwrap();
    drop(conn);
    let p = vec![path];
    let gold = "SELECT name FROM t WHERE id = 1";
    // Python decodes b"f\xffo" with errors="ignore" to "fo".
    assert_eq!(verdict(&p, gold, "SELECT 'fo'"), MatchOutcome::Correct);
    assert_eq!(verdict(&p, gold, "SELECT 'f?o'"), MatchOutcome::Wrong);
}
