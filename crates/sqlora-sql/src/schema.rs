//! Schema introspection of a SQLite database: tables (and views), columns,
//! primary and foreign keys, row counts and a few sample values per column.

use std::path::Path;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};

/// Number of sample values per column collected by [`Schema::introspect`].
pub const DEFAULT_SAMPLES: usize = 3;

/// Longest sample value kept (in characters); longer text is cut and marked with `…`.
const SAMPLE_MAX_CHARS: usize = 48;

/// How many leading rows are scanned when looking for distinct samples (bounds
/// the cost on large tables).
const SAMPLE_SCAN_ROWS: usize = 10_000;

/// Errors raised while reading a database's schema.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The database file does not exist.
    #[error("database file not found: {0}")]
    NotFound(String),
    /// SQLite could not open or read the database.
    #[error("sqlite error while reading the schema: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// The schema of one SQLite database.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Schema {
    /// User tables and views in creation order (internal `sqlite_*` tables, views that no
    /// longer compile and tables this SQLite cannot read, e.g. a virtual table whose module
    /// it lacks, are excluded: they cannot be queried either).
    pub tables: Vec<Table>,
}

/// One table (or view).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Table {
    /// Table name as declared.
    pub name: String,
    /// Columns in declaration order.
    pub columns: Vec<Column>,
    /// Primary-key columns in key order (empty when the table has none or is a view).
    pub primary_key: Vec<String>,
    /// Foreign keys declared on this table.
    pub foreign_keys: Vec<ForeignKey>,
    /// Number of rows (0 for views, which are not counted).
    pub row_count: u64,
    /// Whether this is a view (queryable, read-only, no keys, rows not counted).
    #[serde(default)]
    pub view: bool,
}

/// One column.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Column {
    /// Column name as declared.
    pub name: String,
    /// Declared type (may be empty: SQLite columns need not declare one).
    pub decl_type: String,
    /// Whether the column is declared NOT NULL.
    pub not_null: bool,
    /// A few distinct non-null values, in the order they are first met in a scan
    /// of the table's first 10,000 rows (long text is cut).
    pub samples: Vec<String>,
}

/// A foreign key: `columns` of this table reference `ref_columns` of `ref_table`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ForeignKey {
    /// Referencing columns of this table.
    pub columns: Vec<String>,
    /// Referenced table.
    pub ref_table: String,
    /// Referenced columns (the referenced table's primary key when the DDL omits them).
    pub ref_columns: Vec<String>,
}

impl Table {
    /// The column named `name` (ASCII case-insensitive).
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }
}

impl Schema {
    /// Opens the database at `path` read-only and introspects it with
    /// [`DEFAULT_SAMPLES`] sample values per column.
    pub fn introspect(path: &Path) -> Result<Schema, SchemaError> {
        if !path.is_file() {
            return Err(SchemaError::NotFound(path.display().to_string()));
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.pragma_update(None, "query_only", true)?;
        Schema::from_connection(&conn, DEFAULT_SAMPLES)
    }

    /// Introspects the `main` database of an open connection, collecting up to
    /// `samples` distinct sample values per column.
    pub fn from_connection(conn: &Connection, samples: usize) -> Result<Schema, SchemaError> {
        let mut stmt = conn.prepare(
            "SELECT name, type FROM main.sqlite_master \
             WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
             ORDER BY rowid",
        )?;
        let objects = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;

        let mut tables = Vec::with_capacity(objects.len());
        for (name, kind) in objects {
            // A broken view (e.g. over a dropped table) or a table this SQLite cannot read (a
            // virtual table of a module it lacks) cannot be queried anyway: leave it out
            // instead of failing the whole database.
            if let Ok(t) = read_table(conn, &name, kind == "view", samples) {
                tables.push(t);
            }
        }
        // Foreign keys that omit the referenced columns point at the primary key.
        let pks: Vec<(String, Vec<String>)> = tables
            .iter()
            .map(|t| (t.name.to_ascii_lowercase(), t.primary_key.clone()))
            .collect();
        for table in &mut tables {
            for fk in &mut table.foreign_keys {
                if fk.ref_columns.iter().all(|c| c.is_empty()) {
                    let target = fk.ref_table.to_ascii_lowercase();
                    if let Some((_, pk)) = pks.iter().find(|(n, _)| *n == target) {
                        fk.ref_columns = pk.clone();
                    }
                }
            }
        }
        Ok(Schema { tables })
    }

    /// The table named `name` (ASCII case-insensitive).
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(name))
    }

    /// The schema as `CREATE TABLE` statements with primary and foreign keys,
    /// the way a text-to-SQL prompt shows it.
    pub fn to_ddl(&self) -> String {
        let mut out = String::new();
        for (i, table) in self.tables.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            out.push_str("CREATE TABLE ");
            out.push_str(&quote_ident(&table.name));
            out.push_str(" (\n");
            let mut lines: Vec<String> = table
                .columns
                .iter()
                .map(|c| {
                    let mut line = format!("  {}", quote_ident(&c.name));
                    if !c.decl_type.is_empty() {
                        line.push(' ');
                        line.push_str(&c.decl_type);
                    }
                    if c.not_null {
                        line.push_str(" NOT NULL");
                    }
                    line
                })
                .collect();
            if !table.primary_key.is_empty() {
                lines.push(format!(
                    "  PRIMARY KEY ({})",
                    join_idents(&table.primary_key)
                ));
            }
            for fk in &table.foreign_keys {
                lines.push(format!(
                    "  FOREIGN KEY ({}) REFERENCES {}({})",
                    join_idents(&fk.columns),
                    quote_ident(&fk.ref_table),
                    join_idents(&fk.ref_columns)
                ));
            }
            out.push_str(&lines.join(",\n"));
            out.push_str("\n);\n");
        }
        out
    }

    /// One line per table, e.g.
    /// `orders(order_id PK, customer_id -> customers.customer_id, order_date, total)`; names
    /// that are not plain words are quoted ([`quote_ident`]).
    pub fn to_compact(&self) -> String {
        let mut out = Vec::with_capacity(self.tables.len());
        for table in &self.tables {
            let cols: Vec<String> = table
                .columns
                .iter()
                .map(|c| {
                    let mut s = quote_ident(&c.name);
                    if table
                        .primary_key
                        .iter()
                        .any(|p| p.eq_ignore_ascii_case(&c.name))
                    {
                        s.push_str(" PK");
                    }
                    for fk in &table.foreign_keys {
                        if let Some(pos) = fk
                            .columns
                            .iter()
                            .position(|f| f.eq_ignore_ascii_case(&c.name))
                        {
                            let target = fk.ref_columns.get(pos).cloned().unwrap_or_default();
                            s.push_str(&format!(
                                " -> {}.{}",
                                quote_ident(&fk.ref_table),
                                quote_ident(&target)
                            ));
                        }
                    }
                    s
                })
                .collect();
            out.push(format!("{}({})", quote_ident(&table.name), cols.join(", ")));
        }
        out.join("\n")
    }
}

/// The identifier `name` as SQL: as it is when it is a plain ASCII word that is not a
/// keyword, else between double quotes with inner `"` doubled (`first name` →
/// `"first name"`, `Last"Name` → `"Last""Name"`, `Città` → `"Città"`).
pub fn quote_ident(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !is_reserved(name);
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

fn is_reserved(name: &str) -> bool {
    const RESERVED: &[&str] = &[
        "select",
        "from",
        "where",
        "group",
        "order",
        "by",
        "table",
        "index",
        "create",
        "drop",
        "insert",
        "update",
        "delete",
        "join",
        "on",
        "as",
        "and",
        "or",
        "not",
        "null",
        "limit",
        "values",
        "default",
        "check",
        "references",
        "primary",
        "key",
        "foreign",
        "unique",
        "case",
        "when",
        "then",
        "else",
        "end",
        "in",
        "is",
        "to",
        "transaction",
        "union",
        "all",
        "distinct",
        "having",
        "into",
        "set",
        "exists",
        "between",
        "like",
        "order",
        "offset",
        "left",
        "right",
        "full",
        "inner",
        "outer",
        "cross",
        "natural",
        "using",
        "collate",
        "cast",
        "glob",
        "intersect",
        "except",
        "with",
        "recursive",
        "isnull",
        "notnull",
        "current_date",
        "current_time",
        "current_timestamp",
        "true",
        "false",
        "if",
        "escape",
    ];
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name))
}

fn join_idents(names: &[String]) -> String {
    names
        .iter()
        .map(|n| quote_ident(n))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Always double-quotes (for SQL we build ourselves).
fn dq(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn read_table(
    conn: &Connection,
    name: &str,
    is_view: bool,
    samples: usize,
) -> Result<Table, SchemaError> {
    let mut stmt = conn.prepare(
        "SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1, 'main') ORDER BY cid",
    )?;
    let rows = stmt
        .query_map([name], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                r.get::<_, i64>(2)? != 0,
                r.get::<_, i64>(3)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;

    let mut pk: Vec<(i64, String)> = rows
        .iter()
        .filter(|(_, _, _, p)| *p > 0)
        .map(|(n, _, _, p)| (*p, n.clone()))
        .collect();
    pk.sort();
    let primary_key = pk.into_iter().map(|(_, n)| n).collect();

    let mut columns = Vec::with_capacity(rows.len());
    for (col, decl_type, not_null, _) in rows {
        let samples = if samples == 0 {
            Vec::new()
        } else {
            sample_values(conn, name, &col, samples)?
        };
        columns.push(Column {
            name: col,
            decl_type,
            not_null,
            samples,
        });
    }

    let mut fks: Vec<ForeignKey> = Vec::new();
    let mut fk_stmt = conn.prepare(
        "SELECT id, \"table\", \"from\", \"to\" FROM pragma_foreign_key_list(?1, 'main') \
         ORDER BY id, seq",
    )?;
    let mut last_id = None;
    let fk_rows = fk_stmt
        .query_map([name], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?.unwrap_or_default(),
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    for (id, ref_table, from, to) in fk_rows {
        if last_id != Some(id) {
            fks.push(ForeignKey {
                columns: Vec::new(),
                ref_table,
                ref_columns: Vec::new(),
            });
            last_id = Some(id);
        }
        if let Some(fk) = fks.last_mut() {
            fk.columns.push(from);
            fk.ref_columns.push(to);
        }
    }

    let row_count = if is_view {
        0
    } else {
        let n: i64 = conn.query_row(
            &format!("SELECT count(*) FROM main.{}", dq(name)),
            [],
            |r| r.get(0),
        )?;
        u64::try_from(n).unwrap_or(0)
    };

    Ok(Table {
        name: name.to_string(),
        columns,
        primary_key,
        foreign_keys: fks,
        row_count,
        view: is_view,
    })
}

fn sample_values(
    conn: &Connection,
    table: &str,
    column: &str,
    n: usize,
) -> Result<Vec<String>, SchemaError> {
    let sql = format!(
        "SELECT {c} FROM main.{t} LIMIT {SAMPLE_SCAN_ROWS}",
        c = dq(column),
        t = dq(table)
    );
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query([])?;
    let mut out: Vec<String> = Vec::with_capacity(n);
    while let Some(row) = rows.next()? {
        let value = row.get_ref(0)?;
        if value == ValueRef::Null {
            continue;
        }
        let text = render_sample(value);
        if !out.contains(&text) {
            out.push(text);
            if out.len() >= n {
                break;
            }
        }
    }
    Ok(out)
}

fn render_sample(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Null => "NULL".to_string(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Text(t) => {
            let s = String::from_utf8_lossy(t);
            if s.chars().count() > SAMPLE_MAX_CHARS {
                let mut cut: String = s.chars().take(SAMPLE_MAX_CHARS).collect();
                cut.push('…');
                cut
            } else {
                s.into_owned()
            }
        }
        ValueRef::Blob(b) => format!("<blob {} bytes>", b.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT);
             CREATE TABLE orders (order_id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers, order_date TEXT, total REAL);
             CREATE TABLE \"order items\" (order_id INTEGER, line INTEGER, sku TEXT, PRIMARY KEY (order_id, line), FOREIGN KEY (order_id) REFERENCES orders(order_id));
             CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 100;
             CREATE TABLE gone (x);
             CREATE VIEW broken AS SELECT x FROM gone;
             DROP TABLE gone;
             INSERT INTO customers VALUES (1, 'Ann', 'Oslo'), (2, 'Bob', 'Oslo'), (3, 'Cy', NULL), (4, 'Di', 'Rome'), (5, 'Ed', 'Lima');
             INSERT INTO orders VALUES (10, 1, '2024-01-01', 50.0), (11, 2, '2024-02-01', 150.5);",
        )
        .unwrap();
        conn
    }

    #[test]
    fn introspects_tables_keys_counts_samples() {
        let s = Schema::from_connection(&db(), 3).unwrap();
        let names: Vec<&str> = s.tables.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["customers", "orders", "order items", "big_orders"]);
        let c = s.table("CUSTOMERS").unwrap();
        assert_eq!(c.row_count, 5);
        assert_eq!(c.primary_key, ["customer_id"]);
        assert!(c.column("name").unwrap().not_null);
        // distinct, non-null, first-seen order, capped at 3
        assert_eq!(c.column("city").unwrap().samples, ["Oslo", "Rome", "Lima"]);
        let o = s.table("orders").unwrap();
        assert_eq!(o.foreign_keys.len(), 1);
        assert_eq!(o.foreign_keys[0].ref_table, "customers");
        // omitted referenced column resolves to the target's primary key
        assert_eq!(o.foreign_keys[0].ref_columns, ["customer_id"]);
        let oi = s.table("order items").unwrap();
        assert_eq!(oi.primary_key, ["order_id", "line"]);
        assert_eq!(s.table("big_orders").unwrap().columns.len(), 4);
    }

    #[test]
    fn ddl_and_compact_render() {
        let s = Schema::from_connection(&db(), 0).unwrap();
        let ddl = s.to_ddl();
        assert!(
            ddl.contains("CREATE TABLE customers (\n  customer_id INTEGER,\n  name TEXT NOT NULL,")
        );
        assert!(ddl.contains("  FOREIGN KEY (customer_id) REFERENCES customers(customer_id)\n);"));
        assert!(ddl.contains("CREATE TABLE \"order items\" ("));
        assert!(ddl.contains("PRIMARY KEY (order_id, line)"));
        let compact = s.to_compact();
        let lines: Vec<&str> = compact.lines().collect();
        assert_eq!(lines[0], "customers(customer_id PK, name, city)");
        assert_eq!(
            lines[2], "\"order items\"(order_id PK -> orders.order_id, line PK, sku)",
            "names that are not plain words are quoted"
        );
        assert_eq!(
            lines[1],
            "orders(order_id PK, customer_id -> customers.customer_id, order_date, total)"
        );
        assert!(s.tables[0].columns[0].samples.is_empty());
    }

    #[test]
    fn missing_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let err = Schema::introspect(&dir.path().join("nope.sqlite")).unwrap_err();
        assert!(matches!(err, SchemaError::NotFound(_)));
    }
}
