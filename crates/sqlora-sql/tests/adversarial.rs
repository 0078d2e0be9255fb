//! The adversarial corpus (tests/adversarial.sql): every hostile statement is
//! refused by the guard with the expected code or stopped by the budgets, the
//! raw read-only connection also holds without the guard, and the database
//! file is byte-identical afterwards.

mod common;

use std::time::{Duration, Instant};

use common::{dir_listing, read_corpus, sha256_file, shop_db, Entry};
use rusqlite::Connection;
use sqlora_sql::{open_read_only_with, ExecError, ExecLimits, ReadOnlyDb};

const BUDGET: Duration = Duration::from_millis(300);
/// Generous wall-clock allowance for stopping after the budget (CI machines are slow).
const STOP_WITHIN: Duration = Duration::from_secs(3);

fn limits() -> ExecLimits {
    ExecLimits {
        timeout: BUDGET,
        ..ExecLimits::default()
    }
}

/// Runs every statement in `sql` on `conn` without any guard, under a deadline.
fn raw_batch(conn: &Connection, sql: &str) -> Result<(), String> {
    let deadline = Instant::now() + BUDGET;
    conn.progress_handler(1000, Some(move || Instant::now() >= deadline));
    let r = conn.execute_batch(sql).map_err(|e| e.to_string());
    conn.progress_handler(0, None::<fn() -> bool>);
    r
}

fn corpus(dir: &std::path::Path) -> Vec<Entry> {
    let entries = read_corpus("adversarial.sql", dir);
    assert!(
        entries.len() >= 60,
        "corpus has only {} entries",
        entries.len()
    );
    entries
}

#[test]
fn guard_refuses_or_budget_stops_every_entry() {
    let fx = shop_db();
    let before = sha256_file(&fx.path);
    let listing = dir_listing(fx.dir.path());
    let db = ReadOnlyDb::open(&fx.path).unwrap();
    let mut failures = Vec::new();
    for e in corpus(fx.dir.path()) {
        let started = Instant::now();
        let result = db.execute(&e.sql, &limits());
        let took = started.elapsed();
        let outcome = match &result {
            Ok(_) => "accepted".to_string(),
            Err(ExecError::Guard(g)) => g.code.as_str().to_string(),
            Err(ExecError::Timeout { .. }) => "timeout".to_string(),
            Err(ExecError::Sqlite(_)) => "exec_error".to_string(),
            Err(ExecError::Open(m)) => format!("open error {m}"),
        };
        if !e.expect.contains(&outcome) {
            failures.push(format!(
                "line {}: expected {:?}, got {outcome} ({result:?}) for {:?}",
                e.line, e.expect, e.sql
            ));
        }
        if outcome == "timeout" && took > STOP_WITHIN {
            failures.push(format!("line {}: took {took:?} to stop", e.line));
        }
        // Refusals come back as structured, serialisable errors.
        if let Err(ExecError::Guard(g)) = &result {
            let json = serde_json::to_value(g).unwrap();
            assert_eq!(json["code"], outcome);
            assert!(!g.message.is_empty());
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    drop(db);
    assert_eq!(sha256_file(&fx.path), before, "database file changed");
    assert_eq!(
        dir_listing(fx.dir.path()),
        listing,
        "files appeared or vanished"
    );
    assert_no_side_files(&fx);
}

/// Defence in depth: the statements run WITHOUT the guard on the read-only
/// connection. With the authorizer every non-harmless entry fails; without it
/// (read-only flags + query_only + limits only) every writing entry still fails.
#[test]
fn raw_connection_holds_without_the_guard() {
    let fx = shop_db();
    let before = sha256_file(&fx.path);
    let listing = dir_listing(fx.dir.path());
    let mut failures = Vec::new();
    for authorizer in [true, false] {
        for e in corpus(fx.dir.path()) {
            // A fresh connection per entry: no state carries over between entries.
            let conn = open_read_only_with(&fx.path, authorizer).unwrap();
            let result = raw_batch(&conn, &e.sql);
            let must_fail = if authorizer {
                !e.flags.iter().any(|f| f == "harmless")
            } else {
                e.flags.iter().any(|f| f == "writes")
            };
            if must_fail && result.is_ok() {
                failures.push(format!(
                    "authorizer={authorizer} line {}: raw execution succeeded: {:?}",
                    e.line, e.sql
                ));
            }
            drop(conn);
            assert_eq!(
                sha256_file(&fx.path),
                before,
                "authorizer={authorizer}: database changed by {:?}",
                e.sql
            );
            assert_eq!(
                dir_listing(fx.dir.path()),
                listing,
                "authorizer={authorizer}: files changed by {:?}",
                e.sql
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_no_side_files(&fx);
}

/// No -wal/-journal/-shm next to the database, and nothing else in its folder.
fn assert_no_side_files(fx: &common::Fixture) {
    for suffix in ["-wal", "-journal", "-shm"] {
        let mut side = fx.path.clone().into_os_string();
        side.push(suffix);
        assert!(
            !std::path::Path::new(&side).exists(),
            "{suffix} file exists"
        );
    }
    assert_eq!(dir_listing(fx.dir.path()), ["shop.sqlite"]);
}

#[test]
fn corpus_covers_the_required_categories() {
    let fx = shop_db();
    let entries = corpus(fx.dir.path());
    for code in [
        "multiple_statements",
        "not_read_only",
        "ddl",
        "attach",
        "pragma",
        "vacuum",
        "transaction",
        "dangerous_function",
        "timeout",
        "exec_error",
        "empty",
    ] {
        let n = entries
            .iter()
            .filter(|e| e.expect.iter().any(|x| x == code))
            .count();
        assert!(n > 0, "no corpus entry expects {code}");
    }
}
