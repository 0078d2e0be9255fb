//! Shared test fixture: a small shop database in a temp dir, and a corpus reader.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use rusqlite::Connection;
use sha2::{Digest, Sha256};

/// A temp dir holding `shop.sqlite`.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

pub fn shop_db() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shop.sqlite");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE customers (
             customer_id INTEGER PRIMARY KEY,
             name TEXT NOT NULL,
             email TEXT,
             city TEXT,
             signup_date TEXT
         );
         CREATE TABLE products (
             product_id INTEGER PRIMARY KEY,
             name TEXT NOT NULL,
             category TEXT,
             price REAL NOT NULL
         );
         CREATE TABLE orders (
             order_id INTEGER PRIMARY KEY,
             customer_id INTEGER NOT NULL REFERENCES customers(customer_id),
             order_date TEXT NOT NULL,
             status TEXT,
             total REAL
         );
         CREATE TABLE order_items (
             order_id INTEGER NOT NULL REFERENCES orders(order_id),
             product_id INTEGER NOT NULL REFERENCES products(product_id),
             quantity INTEGER NOT NULL,
             unit_price REAL NOT NULL,
             PRIMARY KEY (order_id, product_id)
         );
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50)
         INSERT INTO customers
         SELECT i, 'Customer ' || i, 'c' || i || '@example.test',
                CASE i % 4 WHEN 0 THEN 'Oslo' WHEN 1 THEN 'Lima' WHEN 2 THEN 'Rome' ELSE NULL END,
                date('2023-01-01', '+' || (i * 7) || ' day')
         FROM n;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 30)
         INSERT INTO products
         SELECT i, 'Product ' || i, CASE i % 3 WHEN 0 THEN 'tools' WHEN 1 THEN 'toys' ELSE 'food' END,
                round(1.5 * i + 0.25, 2)
         FROM n;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
         INSERT INTO orders
         SELECT i, 1 + (i * 7) % 50, date('2024-01-01', '+' || (i % 300) || ' day'),
                CASE i % 5 WHEN 0 THEN 'cancelled' ELSE 'shipped' END, NULL
         FROM n;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 600)
         INSERT OR IGNORE INTO order_items
         SELECT 1 + i % 200, 1 + (i * 13) % 30, 1 + i % 4, round(1.5 * (1 + (i * 13) % 30) + 0.25, 2)
         FROM n;
         UPDATE orders SET total = (SELECT sum(quantity * unit_price) FROM order_items oi WHERE oi.order_id = orders.order_id);",
    )
    .unwrap();
    drop(conn);
    Fixture { dir, path }
}

pub fn sha256_file(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// Names of every entry in `dir`, sorted.
pub fn dir_listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// One corpus entry: header tags (`-- key: value` or `-- flag`) and the SQL text.
#[derive(Debug, Clone)]
pub struct Entry {
    pub expect: Vec<String>,
    pub flags: Vec<String>,
    pub sql: String,
    pub line: usize,
}

/// Reads a corpus file whose entries are separated by lines `-- ---`.
/// Leading `-- expect: a|b` and `-- flag` lines are tags; the rest is SQL.
pub fn read_corpus(name: &str, dir: &Path) -> Vec<Entry> {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(name);
    let text = std::fs::read_to_string(file).unwrap();
    let mut entries = Vec::new();
    let mut line_no = 1;
    for chunk in text.split("\n-- ---\n") {
        let start_line = line_no;
        line_no += chunk.lines().count() + 1;
        let mut expect = Vec::new();
        let mut flags = Vec::new();
        let mut sql_lines = Vec::new();
        let mut in_header = true;
        for line in chunk.lines() {
            if in_header {
                if let Some(rest) = line.strip_prefix("-- expect:") {
                    expect = rest
                        .trim()
                        .split('|')
                        .map(|s| s.trim().to_string())
                        .collect();
                    continue;
                }
                if let Some(rest) = line.strip_prefix("-- flag:") {
                    flags.extend(rest.split_whitespace().map(String::from));
                    continue;
                }
                if line.starts_with("-- #") {
                    continue; // commentary
                }
                in_header = false;
            }
            sql_lines.push(line);
        }
        let sql = sql_lines
            .join("\n")
            .replace("{dir}", &dir.display().to_string());
        if expect.is_empty() && sql.trim().is_empty() {
            continue;
        }
        entries.push(Entry {
            expect,
            flags,
            sql,
            line: start_line,
        });
    }
    entries
}
