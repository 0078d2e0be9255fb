//! Fixture databases: a domain's `schema.sql` + `data.sql` built into a
//! SQLite file, plus seeded *variants* for test-suite evaluation.
//!
//! # Layout
//! `build_domain(domain, OUT, n)` writes `OUT/<domain>/<domain>.sqlite` (the
//! base, variant 0) and `OUT/<domain>/<domain>_v<k>.sqlite` for `k = 1..n`.
//!
//! # Determinism
//! Every file is built into a temporary file beside its target and renamed
//! into place. The build uses a fixed `page_size` (4096), no WAL (journal
//! off while building) and inserts rows in a fixed order, so the same inputs
//! give byte-identical files with the same SQLite library. [`content_checksum`]
//! hashes the *logical* content (schema objects and each table's rows sorted
//! by all columns), which is what tests and the manifest compare.
//!
//! # Variant strategy
//! A variant has the base schema and different data, so that a wrong query
//! which happens to return the gold result on the base database is likely to
//! differ on some variant (the test-suite idea of Zhong et al., 2020). Each
//! variant `k` draws from a ChaCha8 RNG seeded with
//! `sha256("sqlora-variant:<domain>:<k>")`. Tables are processed parents
//! first (topological order of foreign keys), and for each table:
//! 1. **Drop rows**: a random 25–40 % of the rows are removed — except rows
//!    holding a text value that a gold query of the domain uses as a literal
//!    (`= 'x'`, `LIKE '%x%'`), so gold queries still return rows often.
//! 2. **Re-point foreign keys**: a reference to a parent row that was dropped
//!    is re-pointed at a random surviving parent row (joins keep working but
//!    pair rows differently).
//! 3. **Perturb non-key columns** (key = primary-key, foreign-key or
//!    referenced columns, which are left alone):
//!    * text columns: values are shuffled within the column;
//!    * date-like text (`YYYY-MM-DD…`): shifted by a per-column offset of
//!      30–120 days either way, then shuffled;
//!    * numeric columns with few distinct values (≤ 12, flags, ratings):
//!      shuffled; other numeric columns: each value moves by up to ±25 % of
//!      the column's range, clamped to the column's [min, max], keeping
//!      integer-ness and the observed number of decimals.
//!
//!    Values equal to a gold-query literal are never shifted or perturbed.
//! 4. Rows are inserted with `INSERT OR IGNORE`; a row rejected by a
//!    constraint (UNIQUE, CHECK) is retried with its original values.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, OpenFlags};
use sha2::{Digest, Sha256};

use crate::dataset::{list_domains, tmp_path, Domain};
use crate::error::DataError;

/// One built fixture database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltDb {
    /// The domain name.
    pub domain: String,
    /// The `.sqlite` file.
    pub path: PathBuf,
    /// 0 for the base database, `k >= 1` for variants.
    pub variant: usize,
    /// [`content_checksum`] of the file (sha256, hex).
    pub checksum: String,
}

/// The path of a domain's base database (variant 0) or variant `k`.
pub fn db_path(out_dir: &Path, domain: &str, variant: usize) -> PathBuf {
    let file = if variant == 0 {
        format!("{domain}.sqlite")
    } else {
        format!("{domain}_v{variant}.sqlite")
    };
    out_dir.join(domain).join(file)
}

/// Builds the base database and `variants - 1` variants of `domain` under
/// `out_dir/<domain>/` (`variants` = 0 or 1 builds only the base). Returns
/// base first, then variants in order.
pub fn build_domain(
    domain: &Domain,
    out_dir: &Path,
    variants: usize,
) -> Result<Vec<BuiltDb>, DataError> {
    let schema_sql = domain.schema_sql()?;
    let data_sql = domain.data_sql()?;
    let dir = out_dir.join(&domain.name);
    fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, e))?;

    let base_path = db_path(out_dir, &domain.name, 0);
    build_file(&base_path, |conn| {
        exec_script(conn, &schema_sql, &domain.dir.join("schema.sql"))?;
        exec_script(conn, &data_sql, &domain.dir.join("data.sql"))
    })?;
    let mut built = vec![BuiltDb {
        domain: domain.name.clone(),
        checksum: content_checksum(&base_path)?,
        path: base_path.clone(),
        variant: 0,
    }];
    if variants <= 1 {
        return Ok(built);
    }

    let literals = Literals::from_sql(domain.all_examples()?.iter().map(|e| e.sql.as_str()));
    let base = load_tables(&base_path)?;
    for k in 1..variants {
        let path = db_path(out_dir, &domain.name, k);
        let mut rng = variant_rng(&domain.name, k);
        let tables = make_variant(&base, &literals, &mut rng);
        build_file(&path, |conn| {
            exec_script(conn, &schema_sql, &domain.dir.join("schema.sql"))?;
            insert_tables(conn, &base, &tables, &path)
        })?;
        built.push(BuiltDb {
            domain: domain.name.clone(),
            checksum: content_checksum(&path)?,
            path,
            variant: k,
        });
    }
    Ok(built)
}

/// Builds every domain of `datasets_dir` (see [`build_domain`]).
pub fn build_all(
    datasets_dir: &Path,
    out_dir: &Path,
    variants: usize,
) -> Result<Vec<BuiltDb>, DataError> {
    let mut out = Vec::new();
    for d in list_domains(datasets_dir)? {
        out.extend(build_domain(&d, out_dir, variants)?);
    }
    Ok(out)
}

/// sha256 (hex) of a database's logical content: every schema object's
/// type, name and SQL, then for each table (by name) its column names and its
/// rows sorted by all columns, values tagged by storage class. Independent of
/// page layout and insertion order.
pub fn content_checksum(path: &Path) -> Result<String, DataError> {
    let ctx = || format!("checksum of {}", path.display());
    if !path.is_file() {
        return Err(DataError::Missing(path.to_path_buf()));
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| DataError::sqlite(ctx(), e))?;
    let mut h = Sha256::new();
    let mut tables = Vec::new();
    {
        let mut st = conn
            .prepare(
                "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master \
                 WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name",
            )
            .map_err(|e| DataError::sqlite(ctx(), e))?;
        let mut rows = st.query([]).map_err(|e| DataError::sqlite(ctx(), e))?;
        while let Some(r) = rows.next().map_err(|e| DataError::sqlite(ctx(), e))? {
            let ty: String = r.get(0).map_err(|e| DataError::sqlite(ctx(), e))?;
            for i in 0..4 {
                let s: String = r.get(i).map_err(|e| DataError::sqlite(ctx(), e))?;
                hash_bytes(&mut h, b'S', s.as_bytes());
            }
            if ty == "table" {
                tables.push(
                    r.get::<_, String>(1)
                        .map_err(|e| DataError::sqlite(ctx(), e))?,
                );
            }
        }
    }
    for t in &tables {
        let st = conn
            .prepare(&format!("SELECT * FROM {}", quote_ident(t)))
            .map_err(|e| DataError::sqlite(ctx(), e))?;
        let n = st.column_count();
        for name in st.column_names() {
            hash_bytes(&mut h, b'C', name.as_bytes());
        }
        drop(st);
        let order: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
        let sql = if n == 0 {
            format!("SELECT * FROM {}", quote_ident(t))
        } else {
            format!(
                "SELECT * FROM {} ORDER BY {}",
                quote_ident(t),
                order.join(",")
            )
        };
        let mut st = conn
            .prepare(&sql)
            .map_err(|e| DataError::sqlite(ctx(), e))?;
        let mut rows = st.query([]).map_err(|e| DataError::sqlite(ctx(), e))?;
        while let Some(r) = rows.next().map_err(|e| DataError::sqlite(ctx(), e))? {
            h.update(b"R");
            for i in 0..n {
                match r.get_ref(i).map_err(|e| DataError::sqlite(ctx(), e))? {
                    ValueRef::Null => h.update(b"N"),
                    ValueRef::Integer(v) => {
                        h.update(b"I");
                        h.update(v.to_le_bytes());
                    }
                    ValueRef::Real(v) => {
                        h.update(b"F");
                        h.update(v.to_bits().to_le_bytes());
                    }
                    ValueRef::Text(b) => hash_bytes(&mut h, b'T', b),
                    ValueRef::Blob(b) => hash_bytes(&mut h, b'B', b),
                }
            }
        }
    }
    Ok(hex::encode(h.finalize()))
}

fn hash_bytes(h: &mut Sha256, tag: u8, b: &[u8]) {
    h.update([tag]);
    h.update((b.len() as u64).to_le_bytes());
    h.update(b);
}

/// `"name"` with embedded quotes doubled.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Builds a database at `path` through a temporary file: fixed page size, no
/// journal while building, then an atomic rename.
fn build_file(
    path: &Path,
    fill: impl FnOnce(&Connection) -> Result<(), DataError>,
) -> Result<(), DataError> {
    let tmp = tmp_path(path);
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let conn = Connection::open(&tmp)
            .map_err(|e| DataError::sqlite(format!("creating {}", path.display()), e))?;
        conn.execute_batch(
            "PRAGMA page_size = 4096; PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; \
             PRAGMA foreign_keys = OFF;",
        )
        .map_err(|e| DataError::sqlite(format!("creating {}", path.display()), e))?;
        fill(&conn)?;
        conn.close()
            .map_err(|(_, e)| DataError::sqlite(format!("closing {}", path.display()), e))?;
        fs::rename(&tmp, path).map_err(|e| DataError::io(path, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Runs a SQL script, inside one transaction unless the script manages its
/// own (`BEGIN`/`COMMIT` lines, as in `sqlite3 .dump` output).
pub(crate) fn exec_script(conn: &Connection, sql: &str, file: &Path) -> Result<(), DataError> {
    let ctx = || format!("running {}", file.display());
    let own_tx = sql.lines().any(|l| {
        let u = l.trim_start().to_ascii_uppercase();
        u.starts_with("BEGIN") || u.starts_with("COMMIT") || u.starts_with("END TRANSACTION")
    });
    if own_tx {
        return conn
            .execute_batch(sql)
            .map_err(|e| DataError::sqlite(ctx(), e));
    }
    conn.execute_batch("BEGIN")
        .map_err(|e| DataError::sqlite(ctx(), e))?;
    if let Err(e) = conn.execute_batch(sql) {
        let _ = conn.execute_batch("ROLLBACK");
        return Err(DataError::sqlite(ctx(), e));
    }
    conn.execute_batch("COMMIT")
        .map_err(|e| DataError::sqlite(ctx(), e))
}

/// A hashable SQLite value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Val {
    Null,
    Int(i64),
    Real(u64),
    Text(String),
    Blob(Vec<u8>),
}

impl Val {
    fn from_ref(v: ValueRef<'_>) -> Val {
        match v {
            ValueRef::Null => Val::Null,
            ValueRef::Integer(i) => Val::Int(i),
            ValueRef::Real(f) => Val::Real(f.to_bits()),
            ValueRef::Text(t) => Val::Text(String::from_utf8_lossy(t).into_owned()),
            ValueRef::Blob(b) => Val::Blob(b.to_vec()),
        }
    }
    fn to_value(&self) -> Value {
        match self {
            Val::Null => Value::Null,
            Val::Int(i) => Value::Integer(*i),
            Val::Real(b) => Value::Real(f64::from_bits(*b)),
            Val::Text(t) => Value::Text(t.clone()),
            Val::Blob(b) => Value::Blob(b.clone()),
        }
    }
    fn as_f64(&self) -> Option<f64> {
        match self {
            Val::Int(i) => Some(*i as f64),
            Val::Real(b) => Some(f64::from_bits(*b)),
            _ => None,
        }
    }
}

/// A foreign key as SQLite reports it.
#[derive(Debug, Clone)]
struct Fk {
    from: Vec<String>,
    table: String,
    to: Vec<String>,
}

/// A table's definition and rows, as loaded from the base database.
#[derive(Debug, Clone)]
struct TableData {
    name: String,
    columns: Vec<String>,
    pk: Vec<String>,
    fks: Vec<Fk>,
    rows: Vec<Vec<Val>>,
}

fn load_tables(path: &Path) -> Result<Vec<TableData>, DataError> {
    let ctx = || format!("reading {}", path.display());
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| DataError::sqlite(ctx(), e))?;
    let names: Vec<String> = {
        let mut st = conn
            .prepare(
                "SELECT name FROM sqlite_master WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite_%' ORDER BY name",
            )
            .map_err(|e| DataError::sqlite(ctx(), e))?;
        let rows = st
            .query_map([], |r| r.get(0))
            .map_err(|e| DataError::sqlite(ctx(), e))?;
        rows.collect::<Result<_, _>>()
            .map_err(|e| DataError::sqlite(ctx(), e))?
    };
    let mut out = Vec::new();
    for name in names {
        let q = quote_ident(&name);
        let mut columns = Vec::new();
        let mut pk: Vec<(i64, String)> = Vec::new();
        {
            let mut st = conn
                .prepare(&format!("PRAGMA table_info({q})"))
                .map_err(|e| DataError::sqlite(ctx(), e))?;
            let mut rows = st.query([]).map_err(|e| DataError::sqlite(ctx(), e))?;
            while let Some(r) = rows.next().map_err(|e| DataError::sqlite(ctx(), e))? {
                let c: String = r.get(1).map_err(|e| DataError::sqlite(ctx(), e))?;
                let k: i64 = r.get(5).map_err(|e| DataError::sqlite(ctx(), e))?;
                if k > 0 {
                    pk.push((k, c.clone()));
                }
                columns.push(c);
            }
        }
        pk.sort();
        let mut fk_map: BTreeMap<i64, Fk> = BTreeMap::new();
        {
            let mut st = conn
                .prepare(&format!("PRAGMA foreign_key_list({q})"))
                .map_err(|e| DataError::sqlite(ctx(), e))?;
            let mut rows = st.query([]).map_err(|e| DataError::sqlite(ctx(), e))?;
            while let Some(r) = rows.next().map_err(|e| DataError::sqlite(ctx(), e))? {
                let id: i64 = r.get(0).map_err(|e| DataError::sqlite(ctx(), e))?;
                let table: String = r.get(2).map_err(|e| DataError::sqlite(ctx(), e))?;
                let from: String = r.get(3).map_err(|e| DataError::sqlite(ctx(), e))?;
                let to: Option<String> = r.get(4).map_err(|e| DataError::sqlite(ctx(), e))?;
                let fk = fk_map.entry(id).or_insert_with(|| Fk {
                    from: vec![],
                    table,
                    to: vec![],
                });
                fk.from.push(from);
                fk.to.push(to.unwrap_or_default());
            }
        }
        let rows = {
            let sql_rowid = format!("SELECT * FROM {q} ORDER BY rowid");
            let order: Vec<String> = (1..=columns.len()).map(|i| i.to_string()).collect();
            let sql_all = format!("SELECT * FROM {q} ORDER BY {}", order.join(","));
            let mut st = match conn.prepare(&sql_rowid) {
                Ok(st) => st,
                Err(_) => conn
                    .prepare(&sql_all)
                    .map_err(|e| DataError::sqlite(ctx(), e))?,
            };
            let n = columns.len();
            let mut rows = st.query([]).map_err(|e| DataError::sqlite(ctx(), e))?;
            let mut out_rows = Vec::new();
            while let Some(r) = rows.next().map_err(|e| DataError::sqlite(ctx(), e))? {
                let mut row = Vec::with_capacity(n);
                for i in 0..n {
                    row.push(Val::from_ref(
                        r.get_ref(i).map_err(|e| DataError::sqlite(ctx(), e))?,
                    ));
                }
                out_rows.push(row);
            }
            out_rows
        };
        out.push(TableData {
            name,
            columns,
            pk: pk.into_iter().map(|(_, c)| c).collect(),
            fks: fk_map.into_values().collect(),
            rows,
        });
    }
    // A foreign key without target columns refers to the parent's primary key.
    let pks: HashMap<String, Vec<String>> = out
        .iter()
        .map(|t| (t.name.to_ascii_lowercase(), t.pk.clone()))
        .collect();
    for t in &mut out {
        for fk in &mut t.fks {
            if fk.to.iter().any(|c| c.is_empty()) {
                if let Some(pk) = pks.get(&fk.table.to_ascii_lowercase()) {
                    if pk.len() == fk.from.len() {
                        fk.to = pk.clone();
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Literals used by a domain's gold queries.
#[derive(Debug, Default)]
pub(crate) struct Literals {
    /// Quoted string literals (case-folded), without LIKE wildcards.
    exact: HashSet<String>,
    /// LIKE patterns reduced to the text between `%` signs (case-folded).
    contains: Vec<String>,
    /// Numeric literals.
    numbers: Vec<f64>,
}

impl Literals {
    /// Collects the literals of `queries`.
    pub(crate) fn from_sql<'a>(queries: impl Iterator<Item = &'a str>) -> Literals {
        let mut lits = Literals::default();
        for q in queries {
            for tok in lex_literals(q) {
                match tok {
                    Lit::Str(s) => {
                        if s.contains('%') {
                            for part in s.split('%').filter(|p| !p.is_empty()) {
                                lits.contains.push(part.to_lowercase());
                            }
                        } else {
                            lits.exact.insert(s.to_lowercase());
                        }
                    }
                    Lit::Num(n) => lits.numbers.push(n),
                }
            }
        }
        lits.contains.sort();
        lits.contains.dedup();
        lits
    }

    fn protects_text(&self, s: &str) -> bool {
        let l = s.to_lowercase();
        self.exact.contains(&l) || self.contains.iter().any(|p| l.contains(p.as_str()))
    }

    fn protects(&self, v: &Val) -> bool {
        match v {
            Val::Text(s) => self.exact.contains(&s.to_lowercase()),
            Val::Int(_) | Val::Real(_) => {
                let x = v.as_f64().unwrap_or(f64::NAN);
                self.numbers.iter().any(|n| (n - x).abs() < 1e-9)
            }
            _ => false,
        }
    }
}

enum Lit {
    Str(String),
    Num(f64),
}

/// String ('…' and "…") and numeric literals of a SQL text.
fn lex_literals(sql: &str) -> Vec<Lit> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' || c == '"' {
            let mut s = String::new();
            i += 1;
            while i < chars.len() {
                if chars[i] == c {
                    if i + 1 < chars.len() && chars[i + 1] == c {
                        s.push(c);
                        i += 2;
                        continue;
                    }
                    break;
                }
                s.push(chars[i]);
                i += 1;
            }
            out.push(Lit::Str(s));
            i += 1;
        } else if c.is_ascii_digit() && (i == 0 || !is_ident_char(chars[i - 1])) {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            if i < chars.len() && is_ident_char(chars[i]) {
                continue;
            }
            let s: String = chars[start..i].iter().collect();
            if let Ok(n) = s.parse::<f64>() {
                out.push(Lit::Num(n));
            }
        } else if is_ident_char(c) {
            while i < chars.len() && is_ident_char(chars[i]) {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    out
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

fn variant_rng(domain: &str, k: usize) -> ChaCha8Rng {
    let seed: [u8; 32] = Sha256::digest(format!("sqlora-variant:{domain}:{k}")).into();
    ChaCha8Rng::from_seed(seed)
}

/// Parents-first order of table indices (ties and cycles broken by name).
fn topo_order(tables: &[TableData]) -> Vec<usize> {
    let idx: HashMap<String, usize> = tables
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.to_ascii_lowercase(), i))
        .collect();
    let mut parents: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); tables.len()];
    for (i, t) in tables.iter().enumerate() {
        for fk in &t.fks {
            if let Some(&p) = idx.get(&fk.table.to_ascii_lowercase()) {
                if p != i {
                    parents[i].insert(p);
                }
            }
        }
    }
    let mut done = vec![false; tables.len()];
    let mut order = Vec::new();
    while order.len() < tables.len() {
        let ready = (0..tables.len()).find(|&i| !done[i] && parents[i].iter().all(|&p| done[p]));
        // On a cycle, take the first remaining table (tables are sorted by name).
        let next = ready.or_else(|| (0..tables.len()).find(|&i| !done[i]));
        let Some(i) = next else { break };
        done[i] = true;
        order.push(i);
    }
    order
}

/// The rows of every table of one variant (same table order as `base`).
fn make_variant(base: &[TableData], lits: &Literals, rng: &mut ChaCha8Rng) -> Vec<Vec<Vec<Val>>> {
    let idx: HashMap<String, usize> = base
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.to_ascii_lowercase(), i))
        .collect();
    // Key columns per table: primary key, foreign-key columns and columns
    // referenced by a foreign key.
    let mut keys: Vec<HashSet<String>> = base
        .iter()
        .map(|t| {
            let mut s: HashSet<String> = t.pk.iter().map(|c| c.to_ascii_lowercase()).collect();
            for fk in &t.fks {
                s.extend(fk.from.iter().map(|c| c.to_ascii_lowercase()));
            }
            s
        })
        .collect();
    for t in base {
        for fk in &t.fks {
            if let Some(&p) = idx.get(&fk.table.to_ascii_lowercase()) {
                keys[p].extend(fk.to.iter().map(|c| c.to_ascii_lowercase()));
            }
        }
    }

    let mut result: Vec<Option<Vec<Vec<Val>>>> = vec![None; base.len()];
    for ti in topo_order(base) {
        let t = &base[ti];
        // 1. drop rows
        let drop_p: f64 = rng.gen_range(0.25..=0.40);
        let mut rows: Vec<Vec<Val>> = Vec::with_capacity(t.rows.len());
        for row in &t.rows {
            let protected = row
                .iter()
                .any(|v| matches!(v, Val::Text(s) if lits.protects_text(s)));
            let keep = !rng.gen_bool(drop_p);
            if protected || keep {
                rows.push(row.clone());
            }
        }
        if rows.is_empty() {
            if let Some(first) = t.rows.first() {
                rows.push(first.clone());
            }
        }
        let col_idx = |c: &str| t.columns.iter().position(|x| x.eq_ignore_ascii_case(c));

        // 2. re-point foreign keys at surviving parent rows
        for fk in &t.fks {
            let Some(&pi) = idx.get(&fk.table.to_ascii_lowercase()) else {
                continue;
            };
            let from: Option<Vec<usize>> = fk.from.iter().map(|c| col_idx(c)).collect();
            let parent = &base[pi];
            let to: Option<Vec<usize>> = fk
                .to
                .iter()
                .map(|c| {
                    parent
                        .columns
                        .iter()
                        .position(|x| x.eq_ignore_ascii_case(c))
                })
                .collect();
            let (Some(from), Some(to)) = (from, to) else {
                continue;
            };
            let parent_rows: &[Vec<Val>] = if pi == ti {
                &rows
            } else {
                match &result[pi] {
                    Some(r) => r,
                    None => continue, // cycle: parent not built yet
                }
            };
            let mut surviving: Vec<Vec<Val>> = parent_rows
                .iter()
                .map(|r| to.iter().map(|&i| r[i].clone()).collect())
                .collect();
            surviving.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
            surviving.dedup();
            if surviving.is_empty() {
                continue;
            }
            let set: HashSet<Vec<Val>> = surviving.iter().cloned().collect();
            for row in rows.iter_mut() {
                let key: Vec<Val> = from.iter().map(|&i| row[i].clone()).collect();
                if key.contains(&Val::Null) || set.contains(&key) {
                    continue;
                }
                if let Some(new) = surviving.choose(rng) {
                    for (j, &i) in from.iter().enumerate() {
                        row[i] = new[j].clone();
                    }
                }
            }
        }

        // 3. perturb non-key columns
        for (ci, cname) in t.columns.iter().enumerate() {
            if keys[ti].contains(&cname.to_ascii_lowercase()) {
                continue;
            }
            perturb_column(&mut rows, ci, lits, rng);
        }
        result[ti] = Some(rows);
    }
    result.into_iter().map(|r| r.unwrap_or_default()).collect()
}

fn perturb_column(rows: &mut [Vec<Val>], ci: usize, lits: &Literals, rng: &mut ChaCha8Rng) {
    let values: Vec<&Val> = rows.iter().map(|r| &r[ci]).collect();
    let non_null: Vec<&Val> = values
        .iter()
        .copied()
        .filter(|v| **v != Val::Null)
        .collect();
    if non_null.is_empty() {
        return;
    }
    let all_text = non_null.iter().all(|v| matches!(v, Val::Text(_)));
    let all_num = non_null
        .iter()
        .all(|v| matches!(v, Val::Int(_) | Val::Real(_)));
    if all_text {
        let dates = non_null
            .iter()
            .filter(|v| matches!(v, Val::Text(s) if parse_date(s).is_some()))
            .count();
        if dates * 10 >= non_null.len() * 9 {
            let mag: i64 = rng.gen_range(30..=120);
            let offset = if rng.gen_bool(0.5) { mag } else { -mag };
            for r in rows.iter_mut() {
                if let Val::Text(s) = &r[ci] {
                    if !lits.protects(&r[ci]) {
                        if let Some(shifted) = shift_date(s, offset) {
                            r[ci] = Val::Text(shifted);
                        }
                    }
                }
            }
        }
        shuffle_column(rows, ci, rng);
    } else if all_num {
        let distinct: HashSet<&Val> = non_null.iter().copied().collect();
        if distinct.len() <= 12 {
            shuffle_column(rows, ci, rng);
            return;
        }
        let nums: Vec<f64> = non_null.iter().filter_map(|v| v.as_f64()).collect();
        let min = nums.iter().copied().fold(f64::INFINITY, f64::min);
        let max = nums.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let range = max - min;
        let decimals = nums.iter().map(|&x| decimals_of(x)).max().unwrap_or(0);
        let scale = 10f64.powi(decimals as i32);
        for r in rows.iter_mut() {
            if lits.protects(&r[ci]) {
                continue;
            }
            let u: f64 = rng.gen_range(-0.25..=0.25);
            match r[ci] {
                Val::Int(x) => {
                    let y = (x as f64 + u * range).round().clamp(min, max);
                    r[ci] = Val::Int(y as i64);
                }
                Val::Real(b) => {
                    let x = f64::from_bits(b);
                    let y = ((x + u * range).clamp(min, max) * scale).round() / scale;
                    r[ci] = Val::Real(y.to_bits());
                }
                _ => {}
            }
        }
    }
}

/// The number of decimals (0..=4) needed to write `x`.
fn decimals_of(x: f64) -> u32 {
    for d in 0..4u32 {
        let s = x * 10f64.powi(d as i32);
        if (s - s.round()).abs() <= 1e-6 * s.abs().max(1.0) {
            return d;
        }
    }
    4
}

fn shuffle_column(rows: &mut [Vec<Val>], ci: usize, rng: &mut ChaCha8Rng) {
    let mut col: Vec<Val> = rows.iter().map(|r| r[ci].clone()).collect();
    col.shuffle(rng);
    for (r, v) in rows.iter_mut().zip(col) {
        r[ci] = v;
    }
}

/// `(year, month, day)` of a text starting with `YYYY-MM-DD`.
fn parse_date(s: &str) -> Option<(i64, u32, u32)> {
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    if b.len() > 10 && !(b[10] == b' ' || b[10] == b'T') {
        return None;
    }
    let y: i64 = s.get(0..4)?.parse().ok()?;
    let m: u32 = s.get(5..7)?.parse().ok()?;
    let d: u32 = s.get(8..10)?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    Some((y, m, d))
}

/// Shifts the date at the start of `s` by `days`, keeping the rest of `s`.
fn shift_date(s: &str, days: i64) -> Option<String> {
    let (y, m, d) = parse_date(s)?;
    let (y2, m2, d2) = civil_from_days(days_from_civil(y, m, d) + days);
    Some(format!(
        "{y2:04}-{m2:02}-{d2:02}{}",
        s.get(10..).unwrap_or("")
    ))
}

// Howard Hinnant's civil-date algorithms.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn insert_tables(
    conn: &Connection,
    base: &[TableData],
    tables: &[Vec<Vec<Val>>],
    path: &Path,
) -> Result<(), DataError> {
    let ctx = || format!("filling {}", path.display());
    conn.execute_batch("BEGIN")
        .map_err(|e| DataError::sqlite(ctx(), e))?;
    for (t, rows) in base.iter().zip(tables) {
        if t.columns.is_empty() {
            continue;
        }
        let cols: Vec<String> = t.columns.iter().map(|c| quote_ident(c)).collect();
        let marks = vec!["?"; cols.len()].join(",");
        let sql = format!(
            "INSERT OR IGNORE INTO {} ({}) VALUES ({marks})",
            quote_ident(&t.name),
            cols.join(",")
        );
        let mut st = conn
            .prepare(&sql)
            .map_err(|e| DataError::sqlite(ctx(), e))?;
        // Original rows by primary key (or whole row), for the retry.
        for row in rows {
            let vals: Vec<Value> = row.iter().map(Val::to_value).collect();
            let n = st
                .execute(rusqlite::params_from_iter(vals.iter()))
                .map_err(|e| DataError::sqlite(ctx(), e))?;
            if n == 0 {
                if let Some(orig) = original_row(t, row) {
                    let vals: Vec<Value> = orig.iter().map(Val::to_value).collect();
                    st.execute(rusqlite::params_from_iter(vals.iter()))
                        .map_err(|e| DataError::sqlite(ctx(), e))?;
                }
            }
        }
    }
    conn.execute_batch("COMMIT")
        .map_err(|e| DataError::sqlite(ctx(), e))
}

/// The base row with the same primary key as `row` (perturbation never
/// touches key columns).
fn original_row<'a>(t: &'a TableData, row: &[Val]) -> Option<&'a Vec<Val>> {
    let pk: Vec<usize> =
        t.pk.iter()
            .filter_map(|c| t.columns.iter().position(|x| x.eq_ignore_ascii_case(c)))
            .collect();
    if pk.is_empty() {
        return None;
    }
    t.rows.iter().find(|r| pk.iter().all(|&i| r[i] == row[i]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_arithmetic_round_trips() {
        for (y, m, d) in [(2024, 2, 29), (1999, 12, 31), (2000, 1, 1), (1970, 1, 1)] {
            let z = days_from_civil(y, m, d);
            assert_eq!(civil_from_days(z), (y, m, d));
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(shift_date("2024-02-28", 2).as_deref(), Some("2024-03-01"));
        assert_eq!(
            shift_date("2023-12-31 10:00:00", 1).as_deref(),
            Some("2024-01-01 10:00:00")
        );
        assert_eq!(shift_date("hello world", 1), None);
    }

    #[test]
    fn literals_are_lexed() {
        let l = Literals::from_sql(
            [
                "SELECT name FROM t WHERE city = 'O''Brien' AND age > 30 AND x2 = 1",
                "SELECT * FROM t WHERE title LIKE '%Ring%' AND c = \"Paris\"",
            ]
            .into_iter(),
        );
        assert!(l.exact.contains("o'brien") && l.exact.contains("paris"));
        assert_eq!(l.contains, vec!["ring".to_string()]);
        assert_eq!(l.numbers, vec![30.0, 1.0]);
        assert!(l.protects_text("The Lord of the Rings"));
        assert!(!l.protects_text("Dune"));
        assert!(l.protects(&Val::Int(30)));
    }
}
