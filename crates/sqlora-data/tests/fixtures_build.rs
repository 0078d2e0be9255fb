//! Fixture builds: determinism, variants, gold queries on variants.

use std::path::{Path, PathBuf};

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use sqlora_data::{build_domain, content_checksum, list_domains, Domain};

fn datasets_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets")
}

/// A small domain written here, with FKs, dates, text, numbers and a
/// composite-key junction table.
fn small_domain(root: &Path) -> Domain {
    let dir = root.join("shop");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("schema.sql"),
        "CREATE TABLE customer (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, city TEXT, joined TEXT);\n\
         CREATE TABLE product (id INTEGER PRIMARY KEY, title TEXT, price REAL CHECK (price >= 0), stock INTEGER);\n\
         CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customer(id), placed TEXT, total REAL);\n\
         CREATE TABLE order_item (order_id INTEGER REFERENCES orders(id), product_id INTEGER REFERENCES product(id), qty INTEGER, PRIMARY KEY (order_id, product_id));\n",
    )
    .unwrap();
    let mut data = String::new();
    let cities = ["Lyon", "Oslo", "Quito", "Perth", "Cork"];
    for i in 1..=60 {
        data.push_str(&format!(
            "INSERT INTO customer VALUES ({i}, 'Customer {i}', '{}', '2021-{:02}-{:02}');\n",
            cities[i % 5],
            i % 12 + 1,
            i % 28 + 1
        ));
        data.push_str(&format!(
            "INSERT INTO product VALUES ({i}, 'Product {i}', {}.{:02}, {});\n",
            i * 3,
            i % 100,
            i * 7 % 50
        ));
    }
    for i in 1..=120 {
        data.push_str(&format!(
            "INSERT INTO orders VALUES ({i}, {}, '2022-{:02}-{:02} 10:00:00', {}.5);\n",
            i % 60 + 1,
            i % 12 + 1,
            i % 27 + 1,
            i * 11
        ));
        data.push_str(&format!(
            "INSERT INTO order_item VALUES ({i}, {}, {});\n",
            i % 60 + 1,
            i % 4 + 1
        ));
    }
    std::fs::write(dir.join("data.sql"), data).unwrap();
    let gold = [
        "SELECT name FROM customer WHERE city = 'Quito'",
        "SELECT count(*) FROM orders AS o JOIN customer AS c ON o.customer_id = c.id WHERE c.name = 'Customer 7'",
        "SELECT title FROM product WHERE title LIKE '%Product 4%' ORDER BY price DESC LIMIT 3",
        "SELECT c.city, sum(oi.qty) FROM order_item AS oi JOIN orders AS o ON oi.order_id = o.id JOIN customer AS c ON o.customer_id = c.id GROUP BY c.city",
        "SELECT count(*) FROM orders WHERE placed >= '2022-06-01'",
    ];
    let lines: Vec<String> = gold
        .iter()
        .enumerate()
        .map(|(i, q)| {
            serde_json::json!({"id": format!("shop_dev_{i}"), "db_id": "shop", "question": "q", "sql": q, "difficulty": "easy"})
                .to_string()
        })
        .collect();
    std::fs::write(dir.join("dev.jsonl"), lines.join("\n")).unwrap();
    Domain::open(&dir).unwrap()
}

fn rows(db: &Path, sql: &str) -> Result<Vec<String>, rusqlite::Error> {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut st = conn.prepare(sql)?;
    let n = st.column_count();
    let mut out = Vec::new();
    let mut r = st.query([])?;
    while let Some(row) = r.next()? {
        let vals: Vec<String> = (0..n)
            .map(|i| match row.get_ref(i).unwrap() {
                ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                v => format!("{v:?}"),
            })
            .collect();
        out.push(vals.join("|"));
    }
    Ok(out)
}

fn count(db: &Path, table: &str) -> i64 {
    let conn = Connection::open(db).unwrap();
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

#[test]
fn builds_are_deterministic_and_variants_differ() {
    let root = tempfile::tempdir().unwrap();
    let domain = small_domain(root.path());
    let out1 = root.path().join("out1");
    let out2 = root.path().join("out2");
    let a = build_domain(&domain, &out1, 4).unwrap();
    let b = build_domain(&domain, &out2, 4).unwrap();
    assert_eq!(a.len(), 4);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.variant, y.variant);
        assert_eq!(x.checksum, y.checksum, "variant {}", x.variant);
        assert_eq!(
            std::fs::read(&x.path).unwrap(),
            std::fs::read(&y.path).unwrap(),
            "files of variant {} are not byte-identical",
            x.variant
        );
        assert_eq!(content_checksum(&x.path).unwrap(), x.checksum);
    }
    assert_eq!(a[0].path, out1.join("shop/shop.sqlite"));
    assert_eq!(a[2].path, out1.join("shop/shop_v2.sqlite"));
    // rebuilding in place gives the same content again
    let again = build_domain(&domain, &out1, 4).unwrap();
    assert_eq!(again, a);

    let base = &a[0].path;
    assert_eq!(count(base, "customer"), 60);
    for v in &a[1..] {
        assert_ne!(v.checksum, a[0].checksum);
        // 25–40 % of unprotected rows dropped
        let n = count(&v.path, "orders");
        assert!(
            (60..=100).contains(&n),
            "orders in variant {}: {n}",
            v.variant
        );
        // foreign keys still point at existing rows
        let dangling: i64 = Connection::open(&v.path)
            .unwrap()
            .query_row(
                "SELECT count(*) FROM orders WHERE customer_id NOT IN (SELECT id FROM customer)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(dangling, 0);
        // the literal rows survive
        assert!(
            !rows(&v.path, "SELECT 1 FROM customer WHERE city = 'Quito'")
                .unwrap()
                .is_empty()
        );
        assert!(
            !rows(&v.path, "SELECT 1 FROM customer WHERE name = 'Customer 7'")
                .unwrap()
                .is_empty()
        );
        // values were perturbed: the join result differs from the base
        let q = "SELECT c.city, sum(oi.qty) FROM order_item AS oi JOIN orders AS o ON oi.order_id = o.id JOIN customer AS c ON o.customer_id = c.id GROUP BY c.city";
        assert_ne!(rows(base, q).unwrap(), rows(&v.path, q).unwrap());
        // dates keep their format
        for d in rows(&v.path, "SELECT placed FROM orders").unwrap() {
            assert!(d.contains(" 10:00:00"), "{d}");
        }
    }
    // variants differ from each other
    assert_ne!(a[1].checksum, a[2].checksum);
}

/// The point of variants: a wrong query that matches the gold result on the
/// base database is told apart on some variant.
#[test]
fn variants_tell_apart_queries_that_agree_on_the_base() {
    let root = tempfile::tempdir().unwrap();
    let domain = small_domain(root.path());
    let built = build_domain(&domain, &root.path().join("o"), 4).unwrap();
    let pairs = [
        // price grows with id in the base data
        (
            "SELECT title FROM product ORDER BY price DESC LIMIT 1",
            "SELECT title FROM product ORDER BY id DESC LIMIT 1",
        ),
        // every customer has orders in the base data
        (
            "SELECT count(*) FROM customer",
            "SELECT count(DISTINCT customer_id) FROM orders",
        ),
        // names and cities move independently
        (
            "SELECT name FROM customer WHERE city = 'Oslo' ORDER BY name",
            "SELECT name FROM customer WHERE id % 5 = 1 ORDER BY name",
        ),
    ];
    for (gold, wrong) in pairs {
        assert_eq!(
            rows(&built[0].path, gold).unwrap(),
            rows(&built[0].path, wrong).unwrap()
        );
        let told_apart = built[1..]
            .iter()
            .any(|v| rows(&v.path, gold).unwrap() != rows(&v.path, wrong).unwrap());
        assert!(told_apart, "no variant separates {gold:?} from {wrong:?}");
    }
}

#[test]
fn variants_zero_or_one_build_only_the_base() {
    let root = tempfile::tempdir().unwrap();
    let domain = small_domain(root.path());
    let built = build_domain(&domain, &root.path().join("o"), 1).unwrap();
    assert_eq!(built.len(), 1);
    assert!(!root.path().join("o/shop/shop_v1.sqlite").exists());
    assert_eq!(
        build_domain(&domain, &root.path().join("p"), 0)
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn broken_data_is_a_clear_error_and_leaves_no_file() {
    let root = tempfile::tempdir().unwrap();
    let domain = small_domain(root.path());
    std::fs::write(
        domain.dir.join("data.sql"),
        "INSERT INTO nowhere VALUES (1);",
    )
    .unwrap();
    let out = root.path().join("o");
    let err = build_domain(&domain, &out, 2).unwrap_err().to_string();
    assert!(err.contains("data.sql") && err.contains("nowhere"), "{err}");
    let left: Vec<_> = std::fs::read_dir(out.join("shop")).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Every gold query of every bundled domain executes on every variant.
#[test]
fn bundled_gold_queries_execute_on_every_variant() {
    let domains = list_domains(&datasets_dir()).unwrap();
    assert!(!domains.is_empty());
    let out = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for d in &domains {
        let built = build_domain(d, out.path(), 3).unwrap();
        let examples = d.all_examples().unwrap();
        for db in &built {
            let mut non_empty = 0;
            for ex in &examples {
                match rows(&db.path, &ex.sql) {
                    Ok(r) => non_empty += usize::from(!r.is_empty()),
                    Err(e) => failures.push(format!("{} on variant {}: {e}", ex.id, db.variant)),
                }
            }
            eprintln!(
                "{} variant {}: {}/{} gold queries return rows",
                d.name,
                db.variant,
                non_empty,
                examples.len()
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
