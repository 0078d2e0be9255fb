//! The recognizer on hand-written prefixes and statements over the retail schema.

mod common;

use common::*;

fn retail() -> std::sync::Arc<sqlora_constrain::SchemaIndex> {
    domain_index("retail")
}

/// Accepted by the recognizer, and (the independent check) prepared by SQLite.
#[track_caller]
fn accepted(sql: &str) {
    let idx = retail();
    assert!(
        complete(&idx, sql),
        "refused (dies at {:?}): {sql}",
        dies_at(&idx, sql)
    );
    let sql = sql.trim_end().trim_end_matches(';');
    if let Err(e) = domain_db("retail").prepare(sql) {
        panic!("accepted, but SQLite says {e}: {sql}");
    }
}

#[track_caller]
fn refused(sql: &str) {
    assert!(!complete(&retail(), sql), "accepted: {sql}");
}

#[test]
fn plain_selects_joins_and_clauses() {
    for sql in [
        "SELECT name FROM products",
        "select NAME from PRODUCTS",
        "SELECT * FROM customers",
        "SELECT DISTINCT city FROM customers ORDER BY city",
        "SELECT count(*) FROM orders",
        "SELECT COUNT(DISTINCT customer_id) FROM orders WHERE status = 'shipped'",
        "SELECT T1.first_name, T2.total_amount FROM customers AS T1 JOIN orders AS T2 ON T1.customer_id = T2.customer_id",
        "SELECT c.email FROM customers c LEFT OUTER JOIN orders o ON o.customer_id = c.customer_id WHERE o.order_id IS NULL",
        "SELECT p.name FROM products p, categories c WHERE p.category_id = c.category_id",
        "SELECT status, count(*) AS n FROM orders GROUP BY status HAVING count(*) > 2 ORDER BY n DESC LIMIT 3",
        "SELECT name FROM products ORDER BY unit_price DESC LIMIT 5 OFFSET 10",
        "SELECT name FROM products LIMIT 2, 3",
        "SELECT name FROM products WHERE unit_price BETWEEN 10 AND 20 AND discontinued = 0",
        "SELECT name FROM products WHERE name LIKE '%lamp%' OR name NOT LIKE 'x%'",
        "SELECT name FROM products WHERE category_id IN (1, 2, 3)",
        "SELECT name FROM products WHERE category_id NOT IN (SELECT category_id FROM categories WHERE parent_category_id IS NOT NULL)",
        "SELECT CASE WHEN unit_price > 10 THEN 'high' ELSE 'low' END FROM products",
        "SELECT CAST(unit_price AS INTEGER), round(unit_price, 1), abs(-1), -unit_price FROM products",
        "SELECT strftime('%Y', order_date), julianday(shipped_date) - julianday(order_date) FROM orders",
        "SELECT coalesce(loyalty_tier, 'none'), ifnull(loyalty_tier, 'x') FROM customers",
        "SELECT 1",
        "SELECT 1 + 2 * 3",
        "SELECT name FROM products;",
        "SELECT name FROM products ;  \n ",
        "SELECT\n  name\nFROM\n  products\nWHERE\n  unit_price > 1.5e2",
        "SELECT name FROM products\n\n",
        "SELECT p.* FROM products AS p",
        "SELECT * FROM products, products AS p2",
        "SELECT name FROM products WHERE unit_price = (SELECT max(unit_price) FROM products)",
        "SELECT email FROM customers AS c WHERE EXISTS (SELECT 1 FROM orders AS o WHERE o.customer_id = c.customer_id)",
        "SELECT email FROM customers WHERE NOT EXISTS (SELECT * FROM orders WHERE orders.customer_id = customers.customer_id)",
        "SELECT first_name || ' ' || last_name AS fullname FROM customers ORDER BY fullname",
        "SELECT name FROM products WHERE name = 'it''s; SELECT FROM \"x\"'",
        "SELECT x.name FROM (SELECT name FROM products) AS x",
        "SELECT name FROM products AS p WHERE product_id IN (SELECT product_id FROM order_items GROUP BY product_id HAVING count(*) > p.unit_price)",
        "SELECT * FROM (SELECT name AS n FROM products) WHERE n LIKE 'a%' ORDER BY n",
        "SELECT unit_price FROM products UNION SELECT unit_price FROM order_items",
        "SELECT city FROM customers INTERSECT SELECT city FROM suppliers EXCEPT SELECT shipping_city FROM orders ORDER BY 1",
        "SELECT city FROM customers UNION ALL SELECT city FROM suppliers ORDER BY city",
        "WITH big AS (SELECT customer_id, total_amount FROM orders WHERE total_amount > 100) SELECT c.email, big.total_amount FROM big JOIN customers AS c ON c.customer_id = big.customer_id",
        "WITH t(a, b) AS (SELECT name, unit_price FROM products) SELECT a FROM t WHERE b > 1",
        "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 5) SELECT n FROM t",
        "SELECT \"name\" FROM \"products\" WHERE [unit_price] > 2 AND `discontinued` = 0",
        "SELECT name FROM products WHERE added_date >= date('now', '-30 days')",
        "SELECT name FROM products ORDER BY name COLLATE NOCASE ASC NULLS LAST",
        "SELECT category_id FROM products GROUP BY category_id ORDER BY count(*) DESC",
        "SELECT max(unit_price) FROM products ORDER BY min(unit_price)",
        "SELECT name FROM products WHERE discontinued IS NOT 1 AND stock_quantity NOT BETWEEN 1 AND 5",
        "SELECT name FROM products WHERE name ISNULL OR name NOTNULL OR name NOT NULL",
        "SELECT o.order_id FROM orders o JOIN order_items oi USING (order_id)",
        "SELECT avg(unit_price) FROM (SELECT unit_price FROM products ORDER BY unit_price LIMIT 5) AS t",
    ] {
        accepted(sql);
    }
}

#[test]
fn unknown_tables_and_columns_are_refused() {
    for sql in [
        "SELECT name FROM product",
        "SELECT nme FROM products",
        "SELECT name FROM products WHERE price > 1",
        "SELECT T1.email FROM products AS T1",
        "SELECT T1.name FROM customers AS T1", // customers has first_name, not name
        "SELECT p.name FROM products AS q",
        "SELECT email FROM products",
        "SELECT products.name FROM products AS p", // an aliased table is known by its alias
        "SELECT name FROM products WHERE order_id = 1",
        "SELECT x.name FROM (SELECT unit_price FROM products) AS x",
        "WITH t(a) AS (SELECT name FROM products) SELECT name FROM t",
        "SELECT name FROM products WHERE product_id IN (SELECT email FROM orders)",
        "SELECT name FROM products UNION SELECT name FROM orders",
        "SELECT big.total_amount FROM orders",
        // The subquery's alias is not visible outside it.
        "SELECT o.total_amount FROM customers WHERE customer_id IN (SELECT customer_id FROM orders AS o)",
        // ORDER BY and GROUP BY of a subquery see only its own tables.
        "SELECT name FROM products AS p WHERE EXISTS (SELECT 1 FROM order_items ORDER BY p.name)",
        "SELECT name FROM products AS p WHERE product_id IN (SELECT product_id FROM order_items GROUP BY p.name)",
        // CTEs are scoped to their statement.
        "SELECT name FROM products WHERE product_id IN (WITH t AS (SELECT 1 AS x) SELECT x FROM t) AND product_id IN (SELECT x FROM t)",
    ] {
        refused(sql);
    }
}

#[test]
fn wrong_shapes_are_refused() {
    for sql in [
        "",
        "SELECT",
        "SELECT name FROM",
        "SELECT name FROM products WHERE",
        "SELECT name FROM products; SELECT 1",
        "SELECT name FROM products;;",
        "SELECT (name FROM products",
        "SELECT name) FROM products",
        "SELECT name FROM products WHERE name = 'open",
        "SELECT name FROM products -- comment",
        "SELECT name FROM products /* c */",
        "DELETE FROM products",
        "SELECT name FROM products; DROP TABLE products",
        "SELECT name, unit_price FROM products UNION SELECT name FROM products",
        "SELECT name FROM products WHERE unit_price = (SELECT name, unit_price FROM products)",
        "SELECT name FROM products WHERE count(*) > 1",
        "SELECT name FROM products GROUP BY sum(unit_price)",
        "SELECT sum(count(*)) FROM products",
        "SELECT name FROM products ORDER BY 2",
        "SELECT name FROM products ORDER BY 0",
        "SELECT lower(name, 1) FROM products",
        "SELECT substr(name) FROM products",
        "SELECT load_extension('x') FROM products",
        "SELECT name FROM products WHERE name = \"Lamp\"",
        "SELECT product_id FROM products JOIN order_items ON products.product_id = order_items.product_id",
        "SELECT name FROM products AS select",
        "SELECT name FROM products WHERE unit_price BETWEEN 1",
        "SELECT * ",
        "SELECT name FROM products\n\nWHERE 1",
        "SELECT 1a",
        "SELECT 1e",
        "SELECT name FROM products ORDER BY name NULLS",
        "SELECT city FROM customers UNION SELECT city FROM suppliers ORDER BY country",
        "SELECT city FROM customers UNION SELECT city FROM suppliers ORDER BY customers.city",
        "SELECT city FROM customers UNION SELECT city FROM suppliers ORDER BY 2",
        "SELECT name FROM products ORDER BY max(unit_price)",
        "SELECT * FROM products, products",
        // SQLite reads these as positions (out of range).
        "SELECT name FROM products ORDER BY -1",
        "SELECT name FROM products ORDER BY (2)",
        "SELECT name FROM products ORDER BY 0 AND name",
        "SELECT name FROM products GROUP BY name AND 0",
    ] {
        refused(sql);
    }
}

#[test]
fn identifier_and_keyword_prefixes_stay_alive() {
    let idx = retail();
    for p in [
        "SELECT na",
        "SELECT name FROM cust",
        "SELECT name FROM products WH",
        "SELECT name FROM products ORD",
        "SELECT T1.",
        "SELECT T1.first_",
        "SELECT first_name FROM customers AS T1 JOIN ord",
        "SELECT \"first",
        "SELECT first_name FROM [custom",
        "SELECT name FROM products WHERE name = 'a",
        "SELECT name FROM products WHERE name = 'it''",
        "SELECT name FROM products WHERE unit_price > 1.",
        "SELECT name FROM products WHERE unit_price > 1e+",
        "SELECT name FROM products WHERE unit_price <",
        "SELECT name FROM products WHERE unit_price !",
        "  SELECT",
        "SEL",
        "WITH x AS (SELECT 1 AS a) SELECT a FROM x",
    ] {
        assert!(prefix(&idx, p), "dead: {p:?}");
    }
    for p in [
        "SELECT nx FROM",
        "SELECT customer_name",
        "SELECT nx ",
        "SELECT name FROM custx",
        "SELECT name FROM products AS p WHX",
        "SELECT T1.first_x",
        "SELECT \"firstx",
        "SELECT name FROM products WHERE unit_price !<",
        "SELECT name FROM products WHERE unit_price --",
        "SELECT name FROM products WHERE unit_price > 1.5.",
        "UPDATE",
        "SELECT name FROM products WHERE unit_price > $1",
        "SELECT name FROM products WHERE unit_price > ?",
        "SELECT name FROM products WHERE name = 'é' AND é",
    ] {
        assert!(!prefix(&idx, p), "alive: {p:?}");
    }
}

#[test]
fn before_from_the_select_list_checks_names_against_the_whole_schema() {
    let idx = retail();
    // `email` is a column of customers only: FROM products cannot end the statement, but a
    // join that brings customers in can.
    assert!(prefix(&idx, "SELECT email FROM products"));
    assert!(!complete(&idx, "SELECT email FROM products"));
    assert!(!prefix(&idx, "SELECT email FROM products WHERE "));
    assert!(complete(
        &idx,
        "SELECT email FROM products JOIN customers ON 1 = 1"
    ));
    // An alias that must have both columns: no table has email and unit_price.
    assert!(prefix(&idx, "SELECT T1.email, T1.c"));
    assert!(prefix(&idx, "SELECT T1.email, T1."));
    assert!(!prefix(&idx, "SELECT T1.email, T1.unit"));
    assert!(!prefix(&idx, "SELECT T1.email, T1.unit_price"));
    // A table takes a name under which the select list read a column it lacks only when
    // another table of the FROM clause provides the column (requalification, the default):
    // the FROM clause cannot close before one does.
    assert!(prefix(&idx, "SELECT T1.email FROM products AS T1 "));
    assert!(!complete(&idx, "SELECT T1.email FROM products AS T1"));
    assert!(!prefix(&idx, "SELECT T1.email FROM products AS T1 WHERE"));
    assert!(complete(
        &idx,
        "SELECT T1.email FROM products AS T1 JOIN customers AS T2 ON 1"
    ));
    assert!(complete(
        &idx,
        "SELECT T1.email FROM products AS T2 JOIN customers AS T1 ON 1"
    ));
    // Without requalification the name is refused at once.
    let strict = sqlora_constrain::Options {
        requalify: false,
        ..Default::default()
    };
    assert!(!prefix_with(
        &idx,
        "SELECT T1.email FROM products AS T1 ",
        strict
    ));
    assert!(!prefix_with(
        &idx,
        "SELECT products.email FROM products,",
        strict
    ));
    assert!(complete_with(
        &idx,
        "SELECT T1.email FROM products AS T2 JOIN customers AS T1 ON 1",
        strict
    ));
    // A qualifier not declared yet is a table name or a short alias, and `.` follows it.
    assert!(prefix(&idx, "SELECT emp."));
    assert!(prefix(&idx, "SELECT customers.email"));
    assert!(!prefix(&idx, "SELECT custname"));
    assert!(!prefix(&idx, "SELECT T1 .email"));
}

#[test]
fn an_alias_without_as_does_not_grow_out_of_a_clause_keyword() {
    let idx = retail();
    // What a model wrote when `GROUP BY`/`WHERE` were refused (the select list reads a column
    // products lacks): an alias glued to the keyword, then nothing useful until its budget.
    for p in [
        "SELECT email, count(*) FROM products GROUPBYemail",
        "SELECT email FROM products WHEREemail",
        "SELECT email FROM products ORDERBY",
        "SELECT email FROM products wherex",
        "SELECT name FROM products LIMIT10",
        "SELECT name FROMproducts",
        "SELECT name FROM products JOINx",
    ] {
        assert!(!prefix(&idx, p), "alive: {p:?}");
    }
    // A letter after a digit: the alias T1 cannot take loans (the select list read a title
    // under it) and INNER was glued on instead.
    for p in [
        "SELECT T1.title FROM orders AS T1INNER",
        "SELECT T1.email FROM orders AS T1 JOIN customers AS T2ON",
        "SELECT name FROM products p1x",
    ] {
        assert!(!prefix(&idx, p), "alive: {p:?}");
    }
    accepted("SELECT T1.name FROM products AS T1 JOIN categories AS t_2 ON T1.category_id = t_2.category_id");
    accepted("SELECT p2.name FROM products p2");
    // ... and the keyword itself is refused there at once, not after the last letter.
    assert!(!prefix(&idx, "SELECT email FROM products WHERE"));
    assert!(!prefix(&idx, "SELECT email FROM products GROUP"));
    assert!(prefix(&idx, "SELECT email FROM products JOIN"));
    // Aliases with AS, quoted ones, and aliases that merely contain a keyword stay free.
    for sql in [
        "SELECT name AS order_total FROM products",
        "SELECT name AS \"WHERE\" FROM products",
        "SELECT p.name FROM products AS whereabouts_p JOIN products p ON 1",
        "SELECT name FROM products p_where",
        "SELECT name FROM products ord",
        "SELECT count(*) total FROM orders o WHERE o.status = 'shipped'",
        "SELECT name FROM products p ORDER BY p.name LIMIT 3",
        "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 5) SELECT n FROM t",
    ] {
        accepted(sql);
    }
}

#[test]
fn a_table_that_would_make_a_select_list_name_ambiguous_is_refused() {
    let idx = retail();
    // customer_id is in customers and orders: read unqualified, one of them may join.
    assert!(!prefix(
        &idx,
        "SELECT customer_id FROM customers JOIN orders"
    ));
    assert!(prefix(&idx, "SELECT customer_id FROM customers JOIN "));
    assert!(complete(&idx, "SELECT customer_id FROM customers"));
    // Qualified, or not read at all: joins as before.
    accepted("SELECT customers.customer_id FROM customers JOIN orders ON orders.customer_id = customers.customer_id");
    accepted(
        "SELECT email FROM customers JOIN orders ON orders.customer_id = customers.customer_id",
    );
}

#[test]
fn a_keyword_the_parser_would_refuse_is_not_a_live_prefix() {
    // Before: `SELECT ver WHERE` stayed alive (WHERE is among the words the popped states
    // expect) although no byte could follow it.
    let idx = ddl_index("CREATE TABLE rubix (id, miver, ver, mi);");
    assert!(!prefix(&idx, "SELECT ver WHERE"));
    assert!(!prefix(&idx, "SELECT ver INTERSECT"));
    assert!(prefix(&idx, "SELECT ver FROM rubix WHERE"));
    assert!(prefix(&idx, "SELECT 1 INTERSECT"));
}

#[test]
fn forward_names_let_a_select_list_name_a_subquery_column() {
    let idx = retail();
    let forward = sqlora_constrain::Options {
        forward_names: true,
        ..Default::default()
    };
    for sql in [
        "SELECT x.n FROM (SELECT name AS n FROM products) AS x",
        "SELECT avg(n) FROM (SELECT count(*) AS n FROM orders GROUP BY customer_id)",
    ] {
        assert!(
            !complete(&idx, sql),
            "accepted without forward names: {sql}"
        );
        assert!(complete_with(&idx, sql, forward), "refused: {sql}");
    }
    // Still checked once the FROM clause is there.
    assert!(!complete_with(
        &idx,
        "SELECT x.m FROM (SELECT name AS n FROM products) AS x",
        forward
    ));
    assert!(!complete_with(&idx, "SELECT nope FROM products", forward));
}

#[test]
fn the_end_is_reported_only_for_complete_statements() {
    let idx = retail();
    let mut s = sqlora_constrain::SqlState::new(idx);
    assert!(!s.can_end());
    assert!(s.feed_str("SELECT name FROM products"));
    assert!(s.can_end());
    assert!(s.feed_str(" WHERE"));
    assert!(!s.can_end());
    assert!(s.feed_str(" name = 'a;b'"));
    assert!(s.can_end());
    assert!(!s.is_ended());
    assert!(s.feed_str(";"));
    assert!(s.is_ended());
    assert!(s.feed_str("  \n"));
    assert!(!s.clone().feed_str("x"));
    // A blank line ends the statement too, and only when it is complete.
    let mut t = sqlora_constrain::SqlState::new(retail());
    assert!(t.feed_str("SELECT name\n"));
    assert!(!t.clone().feed_str("\n"));
    assert!(t.feed_str("FROM products\n  \n"));
    assert!(t.is_ended());
}
