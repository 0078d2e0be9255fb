//! Real-world schema quirks (tests/fixtures/quirks/quirks.sql): mixed-case names, names with
//! spaces, quotes and non-ASCII letters, a table without a primary key, a `WITHOUT ROWID`
//! table, a view, a 120-column table. Introspection lists all of them (the view marked as one),
//! the guard accepts SELECTs over them and still refuses writes, and the rows come back.

use std::path::{Path, PathBuf};

use rusqlite::Connection;
use sqlora_sql::{quote_ident, ExecError, ExecLimits, GuardCode, ReadOnlyDb, Schema, Value};

fn quirks_db(dir: &Path) -> PathBuf {
    let sql = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/quirks/quirks.sql"),
    )
    .unwrap();
    let path = dir.join("quirks.sqlite");
    Connection::open(&path)
        .unwrap()
        .execute_batch(&sql)
        .unwrap();
    path
}

#[test]
fn introspection_lists_tables_views_and_odd_names() {
    let dir = tempfile::tempdir().unwrap();
    let schema = Schema::introspect(&quirks_db(dir.path())).unwrap();
    let names: Vec<(&str, bool)> = schema
        .tables
        .iter()
        .map(|t| (t.name.as_str(), t.view))
        .collect();
    assert_eq!(
        names,
        [
            ("Customers", false),
            ("Orders", false),
            ("Order Items", false),
            ("event_log", false),
            ("Big Orders", true),
            ("wide_readings", false),
        ]
    );
    let c = schema.table("customers").unwrap();
    let cols: Vec<&str> = c.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(cols, ["CustomerID", "first name", "Last\"Name", "Città"]);
    assert_eq!(c.primary_key, ["CustomerID"]);
    assert_eq!(
        c.column("città").unwrap().samples,
        ["München", "東京", "Oslo"]
    );
    assert_eq!(
        schema.table("order items").unwrap().primary_key,
        ["order_id", "line"]
    );
    assert_eq!(schema.table("Order Items").unwrap().row_count, 4);
    assert!(schema.table("event_log").unwrap().primary_key.is_empty());
    let view = schema.table("big orders").unwrap();
    assert_eq!(view.columns.len(), 3);
    assert!(view.primary_key.is_empty());
    assert_eq!(schema.table("wide_readings").unwrap().columns.len(), 120);
    // Mixed-case foreign key target.
    let o = schema.table("orders").unwrap();
    assert_eq!(o.foreign_keys[0].ref_table, "Customers");
    // DDL quotes what needs quoting and nothing else.
    let ddl = schema.to_ddl();
    assert!(ddl.contains("CREATE TABLE \"Order Items\" ("), "{ddl}");
    assert!(ddl.contains("  \"first name\" TEXT NOT NULL,"), "{ddl}");
    assert!(ddl.contains("  \"Last\"\"Name\" TEXT,"), "{ddl}");
    assert!(ddl.contains("  \"Città\" TEXT"), "{ddl}");
    assert!(ddl.contains("CREATE TABLE Orders ("), "{ddl}");
    let compact = schema.to_compact();
    assert!(
        compact.contains("\n\"Order Items\"(order_id PK, line PK, sku, qty)\n"),
        "{compact}"
    );
    assert!(
        compact.contains("Customers(CustomerID PK, \"first name\", \"Last\"\"Name\", \"Città\")"),
        "{compact}"
    );
    assert_eq!(quote_ident("Last\"Name"), "\"Last\"\"Name\"");
    assert_eq!(quote_ident("CustomerID"), "CustomerID");
    assert_eq!(quote_ident("left"), "\"left\"");
}

#[test]
fn the_guard_accepts_selects_over_quirks_and_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = quirks_db(dir.path());
    let before = std::fs::read(&path).unwrap();
    let db = ReadOnlyDb::open(&path).unwrap();
    let limits = ExecLimits::default();
    let ok = [
        ("SELECT \"first name\" FROM customers ORDER BY 1", 4),
        ("SELECT \"Last\"\"Name\" FROM Customers WHERE \"Città\" = 'München'", 2),
        ("SELECT T1.\"first name\", T1.\"Last\"\"Name\" FROM \"Customers\" AS T1 WHERE T1.\"CITTà\" IS NOT NULL", 4),
        ("SELECT [first name] FROM CUSTOMERS WHERE `Città` = '東京'", 1),
        ("SELECT count(*) FROM \"Big Orders\"", 1),
        ("SELECT b.Total FROM \"Big Orders\" AS b JOIN customers AS c ON b.CustomerID = c.customerid WHERE c.\"first name\" = 'Zoë'", 1),
        ("SELECT sku, sum(qty) FROM \"Order Items\" GROUP BY sku", 3),
        ("SELECT DISTINCT message FROM event_log WHERE level > 2", 1),
        ("SELECT station_name, avg(humidity), max(aux_116) FROM wide_readings GROUP BY station_name", 4),
    ];
    for (sql, rows) in ok {
        let r = db
            .execute(sql, &limits)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        if rows > 0 {
            assert_eq!(r.rows.len(), rows, "{sql}");
        }
    }
    let r = db
        .execute(
            "SELECT \"first name\" FROM Customers WHERE \"Città\" = '東京'",
            &limits,
        )
        .unwrap();
    assert_eq!(r.rows, vec![vec![Value::Text("Ana".into())]]);
    // Unknown quoted names are still refused with a suggestion.
    match db.execute("SELECT T1.\"first nam\" FROM Customers AS T1", &limits) {
        Err(ExecError::Guard(g)) => {
            assert_eq!(g.code, GuardCode::UnknownColumn, "{g}");
            assert!(g.message.contains("first name"), "{g}");
        }
        other => panic!("{other:?}"),
    }
    for sql in [
        "DELETE FROM \"Order Items\"",
        "INSERT INTO \"Big Orders\" VALUES (9, 1, 500)",
        "UPDATE \"Customers\" SET \"first name\" = 'x'",
        "DROP VIEW \"Big Orders\"",
        "CREATE TABLE \"new one\" (x)",
    ] {
        assert!(
            matches!(db.execute(sql, &limits), Err(ExecError::Guard(_))),
            "{sql}"
        );
    }
    drop(db);
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn non_ascii_names_compare_like_sqlite_ascii_case_only() {
    let dir = tempfile::tempdir().unwrap();
    let db = ReadOnlyDb::open(&quirks_db(dir.path())).unwrap();
    // SQLite folds only ASCII letters in names: `CITTÀ` is not `Città`, and the guard agrees.
    match db.execute(
        "SELECT T1.\"CITTÀ\" FROM Customers AS T1",
        &ExecLimits::default(),
    ) {
        Err(ExecError::Guard(g)) => assert_eq!(g.code, GuardCode::UnknownColumn, "{g}"),
        other => panic!("{other:?}"),
    }
}
