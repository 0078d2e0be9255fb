//! The constraint over real-world schema quirks (tests/fixtures/quirks/quirks.sql): quoted
//! names with spaces, doubled quotes and non-ASCII letters, mixed case, a view used as a
//! table, a `WITHOUT ROWID` table, a table without a primary key, a 120-column table. Every
//! statement accepted here is also prepared by SQLite.

mod common;

use std::sync::Arc;

use common::*;
use rusqlite::Connection;
use sqlora_constrain::{SchemaIndex, SqlState};
use sqlora_sql::schema::Schema;

fn quirks_db() -> Connection {
    let sql = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/quirks/quirks.sql"),
    )
    .unwrap();
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(&sql).unwrap();
    conn
}

fn quirks_index() -> Arc<SchemaIndex> {
    SchemaIndex::new(&Schema::from_connection(&quirks_db(), 0).unwrap())
}

#[test]
fn gold_queries_over_odd_identifiers_and_views_are_accepted() {
    let idx = quirks_index();
    let db = quirks_db();
    for sql in [
        "SELECT \"first name\" FROM customers",
        "SELECT \"Last\"\"Name\" FROM Customers WHERE \"Città\" = 'München'",
        "SELECT T1.\"Last\"\"Name\", T1.\"first name\" FROM \"Customers\" AS T1",
        "SELECT [Last\"Name] FROM Customers",
        "SELECT [first name] FROM CUSTOMERS WHERE `Città` = '東京'",
        "SELECT \"FIRST NAME\", \"città\" FROM \"customers\"",
        "SELECT count(*) FROM \"Big Orders\"",
        "SELECT b.Total, c.\"first name\" FROM \"Big Orders\" AS b JOIN Customers AS c ON b.CustomerID = c.CustomerID",
        "SELECT sku, sum(qty) FROM \"Order Items\" GROUP BY sku",
        "SELECT T2.sku FROM Orders AS T1 JOIN \"Order Items\" AS T2 ON T1.OrderID = T2.order_id WHERE T1.Total > 100",
        "SELECT DISTINCT message FROM event_log WHERE level > 2",
        "SELECT orderid, customerid FROM orders",
        "SELECT station_name, avg(humidity) FROM wide_readings GROUP BY station_name",
        "SELECT aux_116, \"aux_001\" FROM wide_readings",
    ] {
        assert!(
            complete(&idx, sql),
            "refused (dies at {:?}): {sql}",
            dies_at(&idx, sql)
        );
        if let Err(e) = db.prepare(sql) {
            panic!("accepted, but SQLite says {e}: {sql}");
        }
    }
}

#[test]
fn misspelt_or_half_quoted_names_are_refused() {
    let idx = quirks_index();
    for sql in [
        // the quote inside the name must be doubled
        "SELECT \"Last\"Name\" FROM Customers",
        // no such names
        "SELECT \"first nam\" FROM Customers",
        "SELECT \"Last\"\"Nam\" FROM Customers",
        "SELECT first name FROM Customers",
        "SELECT * FROM \"Big Order\"",
        "SELECT * FROM Big Orders",
        // SQLite folds only ASCII letters: `CITTÀ` is not `Città`
        "SELECT \"CITTÀ\" FROM Customers",
        // a name unquoted that needs quotes
        "SELECT Città FROM Customers",
        // a column of another table
        "SELECT humidity FROM event_log",
        // an empty quoted name
        "SELECT \"\" FROM Customers",
        // a doubled backtick is a backtick: `Last`Name` is no column here
        "SELECT `Last``Name` FROM Customers",
    ] {
        assert!(!complete(&idx, sql), "accepted: {sql}");
    }
    // A doubled quote right after the opening one is a name starting with a quote: no table
    // has one.
    assert!(!prefix(&idx, "SELECT * FROM \"\"\""));
    assert!(prefix(&idx, "SELECT * FROM \"Big"));
    // Prefixes stay alive while a quoted name can still grow into one.
    assert!(prefix(&idx, "SELECT \"Last\""));
    assert!(prefix(&idx, "SELECT \"Last\"\"N"));
    assert!(prefix(&idx, "SELECT \"first n"));
    assert!(!prefix(&idx, "SELECT \"first x"));
    // A state that closed a name can end there.
    let mut s = SqlState::new(idx.clone());
    assert!(s.feed_str("SELECT \"first name\" FROM \"Customers\""));
    assert!(s.can_end());
}
