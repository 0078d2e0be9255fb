//! Cutting an unfinished answer back to its last complete statement.
//!
//! A constrained answer that runs out of tokens is a valid prefix of a statement, not a
//! statement: `… WHERE a = 'x' AND b = 'y' AND c = '`. [`complete_prefix`] finds where it could
//! have ended, with the recognizer that constrained it ([`SqlState`]), at the last boundary of
//! a condition or clause.

use sqlora_sql::schema::Schema;

use crate::{SchemaIndex, SqlState};

/// When `sql` is a valid but unfinished statement over `schema` (what the schema constraint
/// leaves when an answer runs out of tokens: `… WHERE a = 'x' AND b = 'y' AND c = '`, a
/// `NOT IN (SELECT …` never closed), its longest prefix that is one complete statement and
/// stops where a clause or a condition ended: before whitespace and a keyword that starts the
/// next one ([`CUT_BEFORE`]: `… WHERE a = 'x' AND b = 'y'`, never the dangling
/// `… AND c`, which SQLite would read as a truth value). `None` when `sql` is complete
/// already, when it is not a valid prefix at all (the guard reports what is wrong), or when no
/// such prefix is complete. Judged by the constraint's own recognizer
/// ([`SqlState`]), so it cuts only where a constrained answer could have
/// ended.
pub fn complete_prefix(sql: &str, schema: &Schema) -> Option<String> {
    let mut state = SqlState::new(SchemaIndex::new(schema));
    let mut last = None;
    for (i, &b) in sql.as_bytes().iter().enumerate() {
        if b.is_ascii_whitespace()
            && i > 0
            && starts_next_clause(&sql[i..])
            && !state.in_string()
            && state.can_end()
        {
            last = Some(i);
        }
        if !state.feed_bytes(&[b]) {
            return None;
        }
    }
    if state.can_end() {
        return None;
    }
    last.map(|i| sql[..i].trim_end().to_string())
}

/// The keywords before which [`complete_prefix`] may cut: each starts another condition
/// (`AND`, `OR`), clause (`WHERE`, `GROUP`, `HAVING`, `ORDER`, `LIMIT`), join or compound
/// part, so what comes before them is a finished piece of the statement.
pub const CUT_BEFORE: [&str; 14] = [
    "and",
    "or",
    "where",
    "group",
    "having",
    "order",
    "limit",
    "join",
    "left",
    "inner",
    "cross",
    "union",
    "except",
    "intersect",
];

/// Whether `rest` is whitespace and then one of [`CUT_BEFORE`] as a whole word.
fn starts_next_clause(rest: &str) -> bool {
    let rest = rest.trim_start();
    let word: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    let after = rest[word.len()..].chars().next();
    !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
        && CUT_BEFORE.iter().any(|k| word.eq_ignore_ascii_case(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schema of a real SQLite database: orders and customers.
    fn shop() -> (rusqlite::Connection, Schema) {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, name TEXT, city TEXT);
             CREATE TABLE orders (order_id INTEGER PRIMARY KEY, customer_id INTEGER, \
             shipping_city TEXT, total REAL);",
        )
        .unwrap();
        let schema = Schema::from_connection(&conn, 0).unwrap();
        (conn, schema)
    }

    #[test]
    fn an_answer_cut_by_its_budget_ends_at_its_last_complete_statement() {
        let (conn, s) = shop();
        let cases = [
            // A chain of conditions cut inside a string literal.
            (
                "SELECT order_id FROM orders WHERE shipping_city != 'NA' AND shipping_city != 'N/",
                Some("SELECT order_id FROM orders WHERE shipping_city != 'NA'"),
            ),
            // Cut after an operator: back to the last finished condition.
            (
                "SELECT order_id FROM orders WHERE total > 10 AND total <",
                Some("SELECT order_id FROM orders WHERE total > 10"),
            ),
            // A subquery never closed: back to before it.
            (
                "SELECT name FROM customers WHERE city = 'Berlin' AND customer_id NOT IN \
                 (SELECT customer_id FROM orders WHERE total > 5",
                Some("SELECT name FROM customers WHERE city = 'Berlin'"),
            ),
            // A cut is only ever at whitespace: never inside a number being written.
            (
                "SELECT order_id FROM orders WHERE total > 1234 AND total < 99",
                None,
            ),
            // Complete, not a valid prefix (unknown column), or nothing complete: untouched.
            ("SELECT name FROM customers WHERE city = 'Berlin'", None),
            ("SELECT nickname FROM customers WHERE", None),
            ("SELECT name FROM", None),
        ];
        for (sql, want) in cases {
            let cut = complete_prefix(sql, &s);
            assert_eq!(cut.as_deref(), want, "{sql}");
            // Every cut is a statement SQLite prepares.
            if let Some(cut) = cut {
                conn.prepare(&cut).unwrap();
            }
        }
    }
}
