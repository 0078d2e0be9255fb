//! Execution-guided answers on a real SQLite file: with first-valid selection the first
//! candidate that passes the guard and executes wins; with voting the result most candidates
//! agree on; every failure is reported, and nothing the guard refuses runs.

use std::path::PathBuf;

use sqlora_sql::exec::{ExecError, ExecLimits, ReadOnlyDb};
use sqlora_sql::exec::{QueryResult, Value};
use sqlora_sqlgen::{answer, needs_fallback, result_key, with_fallback, AnswerOptions, Selection};

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
    let first_valid = AnswerOptions {
        select: Selection::FirstValid,
        ..AnswerOptions::default()
    };
    let a = answer(&db, &cands, &first_valid, |e| failures.push(e.code()));
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
    // First-valid stops at the answer: the third candidate is never looked at.
    assert_eq!(a.candidates.len(), 2);
    assert!(!a.candidates[0].valid && a.candidates[1].chosen);
}

#[test]
fn voting_answers_with_the_result_most_candidates_agree_on() {
    let tmp = tempfile::tempdir().unwrap();
    let path = shop(tmp.path());
    let db = ReadOnlyDb::open(&path).unwrap();
    let cands = texts(&[
        // Best-ranked, but alone with its result.
        " name FROM customers WHERE city = 'Paris'",
        // Refused: no votes, never run.
        " nme FROM customers",
        // These two agree (other SQL, other column name, other row order).
        " name FROM customers WHERE city IS NOT NULL ORDER BY name DESC",
        " name AS who FROM customers WHERE id < 3",
    ]);
    let mut failures = 0;
    let a = answer(&db, &cands, &AnswerOptions::default(), |_| failures += 1);
    assert!(a.valid);
    assert_eq!(
        a.sql,
        "SELECT name FROM customers WHERE city IS NOT NULL ORDER BY name DESC"
    );
    assert_eq!(a.rows.len(), 2);
    assert_eq!(failures, 1);
    let votes: Vec<usize> = a.candidates.iter().map(|b| b.votes).collect();
    assert_eq!(votes, vec![1, 0, 2, 2]);
    let chosen: Vec<bool> = a.candidates.iter().map(|b| b.chosen).collect();
    assert_eq!(chosen, vec![false, false, true, false]);
    assert_eq!(a.candidates[0].rows, Some(1));
    assert_eq!(
        a.candidates[1].error.as_ref().unwrap()["code"],
        "unknown_column"
    );
    assert_eq!(a.attempts.len(), 1);
    // Every candidate is reported in the JSON the CLI and the server print.
    let v = serde_json::to_value(&a).unwrap();
    assert_eq!(v["candidates"][2]["votes"], 2);
    assert_eq!(v["candidates"][2]["chosen"], true);

    // A tie goes to the best-ranked candidate.
    let tie = answer(
        &db,
        &texts(&[
            " id FROM customers WHERE id = 2",
            " id FROM customers WHERE id = 1",
            " 2",
            " id FROM customers WHERE name = 'Ada'",
        ]),
        &AnswerOptions::default(),
        |_| {},
    );
    assert_eq!(tie.sql, "SELECT id FROM customers WHERE id = 2");
    assert_eq!(
        tie.candidates.iter().map(|b| b.votes).collect::<Vec<_>>(),
        vec![2, 2, 2, 2]
    );

    // Without execution, candidates agree when their SQL is the same.
    let checked = answer(
        &db,
        &texts(&[
            " id FROM customers",
            " name FROM customers",
            " name FROM customers;",
        ]),
        &AnswerOptions {
            execute: false,
            ..AnswerOptions::default()
        },
        |_| {},
    );
    assert_eq!(checked.sql, "SELECT name FROM customers");
    assert_eq!(checked.candidates[1].votes, 2);
    assert!(checked.candidates[1].chosen);
}

#[test]
fn result_keys_ignore_row_order_and_names_but_not_values_or_widths() {
    let r = |columns: &[&str], rows: Vec<Vec<Value>>| QueryResult {
        columns: columns.iter().map(|c| c.to_string()).collect(),
        rows,
        truncated: false,
        elapsed_ms: 0.0,
    };
    use Value::*;
    let a = r(&["n"], vec![vec![Integer(1)], vec![Text("x".into())]]);
    let b = r(&["m"], vec![vec![Text("x".into())], vec![Integer(1)]]);
    assert_eq!(result_key(&a), result_key(&b));
    // 1 and 1.0 are the same number; 1.5 is not.
    let c = r(&["m"], vec![vec![Text("x".into())], vec![Real(1.0)]]);
    assert_eq!(result_key(&a), result_key(&c));
    let d = r(&["m"], vec![vec![Text("x".into())], vec![Real(1.5)]]);
    assert_ne!(result_key(&a), result_key(&d));
    // Multisets: a duplicated row matters, and so does the number of columns.
    let e = r(
        &["n"],
        vec![vec![Integer(1)], vec![Integer(1)], vec![Text("x".into())]],
    );
    assert_ne!(result_key(&a), result_key(&e));
    let f = r(
        &["n", "o"],
        vec![vec![Integer(1), Null], vec![Text("x".into()), Null]],
    );
    assert_ne!(result_key(&a), result_key(&f));
    // Text that looks like a number is not the number.
    let g = r(&["n"], vec![vec![Text("1".into())], vec![Text("x".into())]]);
    assert_ne!(result_key(&a), result_key(&g));
    // A result cut by a budget is not the whole result.
    let mut h = a.clone();
    h.truncated = true;
    assert_ne!(result_key(&a), result_key(&h));
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

#[test]
fn a_failed_greedy_answer_falls_back_to_the_first_passing_beam_and_keeps_every_attempt() {
    let tmp = tempfile::tempdir().unwrap();
    let db = ReadOnlyDb::open(&shop(tmp.path())).unwrap();
    let greedy = AnswerOptions::default();
    let first_valid = AnswerOptions {
        select: Selection::FirstValid,
        ..AnswerOptions::default()
    };
    let first = answer(&db, &texts(&[" nme FROM customers"]), &greedy, |_| {});
    assert!(!first.valid);
    // Only one failed greedy candidate, and only with more than one beam, falls back.
    assert!(needs_fallback(&first, 1, 4));
    assert!(!needs_fallback(&first, 1, 1) && !needs_fallback(&first, 1, 0));
    assert!(!needs_fallback(&first, 3, 4));
    let ok = answer(&db, &texts(&[" name FROM customers"]), &greedy, |_| {});
    assert!(!needs_fallback(&ok, 1, 4));

    // The beams: the greedy text again, then a valid one, then one never looked at.
    let beams = texts(&[
        " nme FROM customers",
        " city FROM customers",
        " id FROM customers",
    ]);
    let retry = answer(&db, &beams, &first_valid, |_| {});
    let both = with_fallback(first.clone(), retry);
    assert!(both.valid);
    assert_eq!(both.sql, "SELECT city FROM customers");
    assert_eq!(both.rows.len(), 3);
    let sqls: Vec<&str> = both.candidates.iter().map(|b| b.sql.as_str()).collect();
    assert_eq!(
        sqls,
        [
            "SELECT nme FROM customers",
            "SELECT nme FROM customers",
            "SELECT city FROM customers"
        ]
    );
    let chosen: Vec<bool> = both.candidates.iter().map(|b| b.chosen).collect();
    assert_eq!(chosen, [false, false, true]);
    assert_eq!(both.attempts.len(), 2);
    assert!(both.error.is_none());

    // No beam passes either: the greedy answer and its error stay, every attempt is listed.
    let retry = answer(&db, &texts(&[" nmae FROM customers"]), &first_valid, |_| {});
    let both = with_fallback(first.clone(), retry);
    assert!(!both.valid);
    assert_eq!(both.sql, first.sql);
    assert_eq!(both.error, first.error);
    assert_eq!(both.attempts.len(), 2);
    assert_eq!(both.attempts[1].sql, "SELECT nmae FROM customers");
    let chosen: Vec<bool> = both.candidates.iter().map(|b| b.chosen).collect();
    assert_eq!(chosen, [true, false]);
}

#[test]
fn a_value_copied_from_an_example_is_passed_over_for_a_candidate_without_one() {
    use sqlora_sqlgen::{foreign_values, Shot};
    let tmp = tempfile::tempdir().unwrap();
    let path = shop(tmp.path());
    let db = ReadOnlyDb::open(&path).unwrap();
    // The retrieved example names Ada; the question does not.
    let shots = [Shot::new(
        "e1",
        "Which city does Ada live in?",
        "SELECT city FROM customers WHERE name = 'Ada'",
    )];
    let foreign = foreign_values("Who lives in Oslo?", &shots);
    assert_eq!(foreign, ["ada"]);
    let opts = AnswerOptions {
        select: Selection::FirstValid,
        foreign_values: foreign.clone(),
        ..AnswerOptions::default()
    };
    let copied = " name FROM customers WHERE city = 'Oslo' OR name = 'Ada'";
    let clean = " name FROM customers WHERE city = 'Oslo'";
    // First-valid: the copying candidate runs but the next, clean one is the answer.
    let a = answer(&db, &texts(&[copied, clean]), &opts, |_| {});
    assert!(a.valid && a.copied.is_none());
    assert_eq!(a.sql, "SELECT name FROM customers WHERE city = 'Oslo'");
    assert_eq!(a.candidates[0].copied.as_deref(), Some("Ada"));
    assert!(a.candidates[1].chosen);
    // Voting: the copying candidate's result is not the answer while a clean one runs, even
    // with more votes.
    let vote = AnswerOptions {
        select: Selection::Vote,
        ..opts.clone()
    };
    let a = answer(&db, &texts(&[copied, copied, clean]), &vote, |_| {});
    assert_eq!(a.sql, "SELECT name FROM customers WHERE city = 'Oslo'");
    // Only copying candidates: the answer stands (valid), flagged, and a greedy one falls back.
    let a = answer(&db, &texts(&[copied]), &opts, |_| {});
    assert!(a.valid);
    assert_eq!(a.copied.as_deref(), Some("Ada"));
    assert_eq!(a.rows.len(), 2);
    assert!(needs_fallback(&a, 1, 4));
    // The fallback's clean beam replaces it; a retry that copies as well does not.
    let retry = answer(&db, &texts(&[copied, clean]), &opts, |_| {});
    let both = with_fallback(a.clone(), retry);
    assert_eq!(both.sql, "SELECT name FROM customers WHERE city = 'Oslo'");
    assert!(both.copied.is_none());
    let retry = answer(&db, &texts(&[copied]), &opts, |_| {});
    let both = with_fallback(a.clone(), retry);
    assert_eq!(both.sql, a.sql);
    assert!(both.valid);
    // Without foreign values nothing changes: the first valid candidate wins.
    let plain = AnswerOptions {
        foreign_values: Vec::new(),
        ..opts
    };
    let a = answer(&db, &texts(&[copied, clean]), &plain, |_| {});
    assert!(a.copied.is_none());
    assert!(a.sql.contains("'Ada'"));
    assert!(!needs_fallback(&a, 1, 4));
}
