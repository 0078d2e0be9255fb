//! Budgeted read-only execution on real SQLite files.

mod common;

use std::time::{Duration, Instant};

use common::{sha256_file, shop_db};
use rusqlite::Connection;
use sqlora_sql::{open_read_only, run_query, ExecError, ExecLimits, GuardCode, ReadOnlyDb, Value};

#[test]
fn typed_values_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("types.sqlite");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, n TEXT);
         INSERT INTO t VALUES (42, 2.5, 'héllo', x'00ff10', NULL);
         INSERT INTO t VALUES (-1, 0.0, CAST(x'41ff42' AS TEXT), x'', NULL);",
    )
    .unwrap();
    drop(conn);
    let db = ReadOnlyDb::open(&path).unwrap();
    let r = db
        .execute(
            "SELECT i, r, s, b, n FROM t ORDER BY i DESC",
            &ExecLimits::default(),
        )
        .unwrap();
    assert_eq!(r.columns, ["i", "r", "s", "b", "n"]);
    assert_eq!(
        r.rows[0],
        vec![
            Value::Integer(42),
            Value::Real(2.5),
            Value::Text("héllo".into()),
            Value::Blob(vec![0, 255, 16]),
            Value::Null
        ]
    );
    // invalid UTF-8 decodes lossily
    assert_eq!(r.rows[1][2], Value::Text("A\u{fffd}B".into()));
    assert!(!r.truncated);
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["rows"][0][3]["blob_hex"], "00ff10");
    assert_eq!(json["rows"][0][4], serde_json::Value::Null);
}

#[test]
fn row_cap_truncates() {
    let fx = shop_db();
    let db = ReadOnlyDb::open(&fx.path).unwrap();
    let limits = ExecLimits {
        max_rows: 7,
        ..ExecLimits::default()
    };
    let r = db
        .execute("SELECT order_id FROM orders ORDER BY order_id", &limits)
        .unwrap();
    assert_eq!(r.rows.len(), 7);
    assert!(r.truncated);
    assert_eq!(r.rows[6], vec![Value::Integer(7)]);
    // exactly at the cap is not truncation
    let r = db
        .execute(
            "SELECT order_id FROM orders ORDER BY order_id LIMIT 7",
            &limits,
        )
        .unwrap();
    assert_eq!(r.rows.len(), 7);
    assert!(!r.truncated);
}

#[test]
fn byte_cap_truncates() {
    let fx = shop_db();
    let db = ReadOnlyDb::open(&fx.path).unwrap();
    let limits = ExecLimits {
        max_bytes: 500,
        ..ExecLimits::default()
    };
    let r = db.execute("SELECT email FROM customers", &limits).unwrap();
    assert!(r.truncated);
    assert!(!r.rows.is_empty() && r.rows.len() < 50);
    let bytes: usize = r.rows.iter().flatten().map(|v| v.approx_bytes()).sum();
    assert!(bytes <= 500);
}

#[test]
fn runaway_queries_stop_within_budget() {
    let fx = shop_db();
    let db = ReadOnlyDb::open(&fx.path).unwrap();
    let limits = ExecLimits {
        timeout: Duration::from_millis(200),
        ..ExecLimits::default()
    };
    for sql in [
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c",
        "SELECT count(*) FROM customers a, customers b, customers c, customers d, customers e",
    ] {
        let t = Instant::now();
        let err = db.execute(sql, &limits).unwrap_err();
        assert!(
            matches!(err, ExecError::Timeout { limit_ms: 200 }),
            "{err:?}"
        );
        assert_eq!(err.code(), "timeout");
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "took {:?}",
            t.elapsed()
        );
    }
    // the connection is usable afterwards
    let r = db.execute("SELECT count(*) FROM orders", &limits).unwrap();
    assert_eq!(r.rows, vec![vec![Value::Integer(200)]]);
}

#[test]
fn refused_queries_never_run() {
    let fx = shop_db();
    let before = sha256_file(&fx.path);
    let db = ReadOnlyDb::open(&fx.path).unwrap();
    let err = db
        .execute("SELECT * FROM ordrs", &ExecLimits::default())
        .unwrap_err();
    match &err {
        ExecError::Guard(g) => {
            assert_eq!(g.code, GuardCode::UnknownTable);
            assert_eq!(g.suggestion.as_deref(), Some("orders"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.code(), "guard");
    assert_eq!(db.guard().schema().tables.len(), 4);
    drop(db);
    assert_eq!(sha256_file(&fx.path), before);
}

#[test]
fn open_errors_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.sqlite");
    let err = ReadOnlyDb::open(&missing).unwrap_err();
    assert_eq!(err.code(), "open");
    assert!(!missing.exists(), "opening must not create the file");
    let junk = dir.path().join("junk.sqlite");
    std::fs::write(
        &junk,
        b"this is not a database file, just text padding it out",
    )
    .unwrap();
    assert_eq!(ReadOnlyDb::open(&junk).unwrap_err().code(), "open");
}

#[test]
fn open_read_only_connection_refuses_writes_and_attach() {
    let fx = shop_db();
    let conn = open_read_only(&fx.path).unwrap();
    assert!(conn.execute_batch("DELETE FROM orders").is_err());
    assert!(conn.execute_batch("ATTACH ':memory:' AS m").is_err());
    let qo: i64 = conn
        .query_row("SELECT count(*) FROM orders", [], |r| r.get(0))
        .unwrap();
    assert_eq!(qo, 200);
    // the evaluator's path: raw query with a bigger row cap
    let limits = ExecLimits {
        max_rows: 100_000,
        ..ExecLimits::default()
    };
    let r = run_query(&conn, "SELECT * FROM order_items", &limits).unwrap();
    assert!(!r.truncated);
    assert!(r.rows.len() > 150);
    // a SQLite error (not a guard refusal) is reported as such
    let err = run_query(&conn, "SELECT nope FROM orders", &limits).unwrap_err();
    assert_eq!(err.code(), "sqlite");
}

#[test]
fn views_are_in_the_schema_and_queryable() {
    let fx = shop_db();
    let conn = Connection::open(&fx.path).unwrap();
    conn.execute_batch(
        "CREATE VIEW customer_spend AS
         SELECT c.customer_id, c.name, sum(o.total) AS spend
         FROM customers c JOIN orders o ON o.customer_id = c.customer_id
         GROUP BY c.customer_id;",
    )
    .unwrap();
    drop(conn);
    let db = ReadOnlyDb::open(&fx.path).unwrap();
    let view = db.guard().schema().table("customer_spend").unwrap();
    let cols: Vec<&str> = view.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(cols, ["customer_id", "name", "spend"]);
    let r = db
        .execute(
            "SELECT name, spend FROM customer_spend ORDER BY spend DESC LIMIT 1",
            &ExecLimits::default(),
        )
        .unwrap();
    assert_eq!(r.rows.len(), 1);
    assert!(matches!(r.rows[0][1], Value::Real(x) if x > 0.0));
    let e = db
        .execute("SELECT spnd FROM customer_spend", &ExecLimits::default())
        .unwrap_err();
    match e {
        ExecError::Guard(g) => assert_eq!(g.suggestion.as_deref(), Some("spend")),
        other => panic!("{other:?}"),
    }
}
