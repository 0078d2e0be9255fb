//! The dataset linter: checks a domain's schema, data and example splits
//! against the project's dataset rules and reports every violation.
//!
//! Rules (defaults in [`Thresholds`]): at least 5 tables, every table with a
//! primary key, at least 4 foreign keys, at least 2 tables with 100+ rows;
//! train ≥ 300, dev ≥ 60, test ≥ 100 examples; unique ids; `db_id` equal to
//! the domain name; every gold query passes the guard (which parses it) and
//! executes; ≥ 90 % of gold queries return rows on the base database; the
//! difficulty label equals `hardness(sql)`; no test question or normalised
//! test query appears in train or dev; ≥ 40 % of test examples have a
//! skeleton that appears nowhere in train; no hand-written training example
//! (`human_train.jsonl`) is a near-duplicate of a held-out hand-written
//! question ([`crate::near`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::Path;

use serde::Serialize;

use crate::dataset::{list_domains, read_jsonl, write_jsonl, Domain, Example, SPLITS};
use crate::deps::{hardness, normalize_sql, skeleton, ExecLimits, Guard, ReadOnlyDb, Schema};
use crate::error::DataError;
use crate::fixtures::db_path;
use crate::near;

/// One rule violation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckIssue {
    /// The domain.
    pub domain: String,
    /// The example, when the issue is about one.
    pub id: Option<String>,
    /// A short machine-readable kind (`schema`, `split-size`, `exec`, …).
    pub kind: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for CheckIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.id {
            Some(id) => write!(
                f,
                "[{}] {} {}: {}",
                self.kind, self.domain, id, self.message
            ),
            None => write!(f, "[{}] {}: {}", self.kind, self.domain, self.message),
        }
    }
}

/// Numbers about one domain.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DomainStats {
    /// Tables (views excluded).
    pub tables: usize,
    /// Foreign keys over all tables.
    pub foreign_keys: usize,
    /// Rows of the largest table.
    pub max_rows: u64,
    /// Tables with at least [`Thresholds::big_table_rows`] rows.
    pub big_tables: usize,
    /// Examples per split (`train`, `dev`, `test`).
    pub split_sizes: BTreeMap<String, usize>,
    /// Examples per difficulty label (after fixing, when fixing).
    pub difficulties: BTreeMap<String, usize>,
    /// Gold queries executed.
    pub gold_queries: usize,
    /// Gold queries that returned at least one row on the base database.
    pub non_empty: usize,
    /// `non_empty / gold_queries`.
    pub non_empty_fraction: f64,
    /// Test examples whose skeleton appears nowhere in train.
    pub novel_test_skeletons: usize,
    /// `novel_test_skeletons / test examples`.
    pub novel_skeleton_fraction: f64,
    /// Difficulty labels rewritten (only with `fix_difficulty`).
    pub difficulty_fixed: usize,
}

/// The result of checking one or more domains.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CheckReport {
    /// Every violation found.
    pub issues: Vec<CheckIssue>,
    /// Per-domain numbers.
    pub stats: BTreeMap<String, DomainStats>,
}

impl CheckReport {
    /// True when no rule is violated.
    pub fn is_ok(&self) -> bool {
        self.issues.is_empty()
    }

    /// Adds another report's issues and stats.
    pub fn merge(&mut self, other: CheckReport) {
        self.issues.extend(other.issues);
        self.stats.extend(other.stats);
    }

    /// A readable summary: one line of numbers per domain, then every issue.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, s) in &self.stats {
            let splits: Vec<String> = s
                .split_sizes
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            out.push_str(&format!(
                "{name}: {} tables, {} FKs, largest {} rows; {}; non-empty {}/{} ({:.1}%); \
                 novel test skeletons {:.1}%{}\n",
                s.tables,
                s.foreign_keys,
                s.max_rows,
                splits.join(" "),
                s.non_empty,
                s.gold_queries,
                100.0 * s.non_empty_fraction,
                100.0 * s.novel_skeleton_fraction,
                if s.difficulty_fixed > 0 {
                    format!("; {} difficulty labels fixed", s.difficulty_fixed)
                } else {
                    String::new()
                }
            ));
        }
        if self.issues.is_empty() {
            out.push_str("no issues\n");
        } else {
            out.push_str(&format!("{} issues:\n", self.issues.len()));
            for i in &self.issues {
                out.push_str(&format!("  {i}\n"));
            }
        }
        out
    }
}

/// The limits the checks enforce.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// Fewest tables.
    pub min_tables: usize,
    /// Fewest foreign keys.
    pub min_foreign_keys: usize,
    /// A table this large counts as big.
    pub big_table_rows: u64,
    /// Fewest big tables.
    pub min_big_tables: usize,
    /// Fewest examples per split: train, dev, test.
    pub min_split: [usize; 3],
    /// Smallest fraction of gold queries returning rows.
    pub min_non_empty: f64,
    /// Smallest fraction of test examples with a skeleton unseen in train.
    pub min_novel_skeletons: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            min_tables: 5,
            min_foreign_keys: 4,
            big_table_rows: 100,
            min_big_tables: 2,
            min_split: [300, 60, 100],
            min_non_empty: 0.9,
            min_novel_skeletons: 0.4,
        }
    }
}

/// Checks `domain` against the default [`Thresholds`], using `built_db` (its
/// base fixture database). With `fix_difficulty`, wrong difficulty labels are
/// rewritten in the split files (atomically) instead of being reported.
pub fn check_domain(
    domain: &Domain,
    built_db: &Path,
    fix_difficulty: bool,
) -> Result<CheckReport, DataError> {
    check_domain_with(domain, built_db, fix_difficulty, &Thresholds::default())
}

/// Builds nothing: checks every domain of `datasets_dir` against its base
/// database in `built_dir` (as laid out by [`crate::fixtures::build_all`]),
/// and that there are at least `min_domains` domains.
pub fn check_all(
    datasets_dir: &Path,
    built_dir: &Path,
    min_domains: usize,
    fix_difficulty: bool,
) -> Result<CheckReport, DataError> {
    let domains = list_domains(datasets_dir)?;
    let mut report = CheckReport::default();
    if domains.len() < min_domains {
        report.issues.push(CheckIssue {
            domain: "*".into(),
            id: None,
            kind: "domains".into(),
            message: format!(
                "{} domains in {}, need at least {min_domains}",
                domains.len(),
                datasets_dir.display()
            ),
        });
    }
    for d in &domains {
        let db = db_path(built_dir, &d.name, 0);
        report.merge(check_domain(d, &db, fix_difficulty)?);
    }
    Ok(report)
}

/// [`check_domain`] with explicit thresholds.
pub fn check_domain_with(
    domain: &Domain,
    built_db: &Path,
    fix_difficulty: bool,
    limits: &Thresholds,
) -> Result<CheckReport, DataError> {
    let name = domain.name.clone();
    let mut issues = Vec::new();
    let mut stats = DomainStats::default();
    let mut issue = |id: Option<&str>, kind: &str, message: String| {
        issues.push(CheckIssue {
            domain: name.clone(),
            id: id.map(str::to_string),
            kind: kind.to_string(),
            message,
        })
    };

    // Schema and data.
    let sql_err = |e: &dyn fmt::Display| DataError::Sql {
        context: format!("reading {}", built_db.display()),
        message: e.to_string(),
    };
    let schema = Schema::introspect(built_db).map_err(|e| sql_err(&e))?;
    let tables: Vec<_> = schema
        .tables
        .iter()
        .filter(|t| !t.columns.is_empty() && !is_view(built_db, &t.name))
        .collect();
    stats.tables = tables.len();
    stats.foreign_keys = tables.iter().map(|t| t.foreign_keys.len()).sum();
    stats.max_rows = tables.iter().map(|t| t.row_count).max().unwrap_or(0);
    stats.big_tables = tables
        .iter()
        .filter(|t| t.row_count >= limits.big_table_rows)
        .count();
    if stats.tables < limits.min_tables {
        issue(
            None,
            "schema",
            format!(
                "{} tables, need at least {}",
                stats.tables, limits.min_tables
            ),
        );
    }
    for t in &tables {
        if t.primary_key.is_empty() {
            issue(
                None,
                "schema",
                format!("table {} has no primary key", t.name),
            );
        }
    }
    if stats.foreign_keys < limits.min_foreign_keys {
        issue(
            None,
            "schema",
            format!(
                "{} foreign keys, need at least {}",
                stats.foreign_keys, limits.min_foreign_keys
            ),
        );
    }
    if stats.big_tables < limits.min_big_tables {
        issue(
            None,
            "data",
            format!(
                "{} tables with {}+ rows, need at least {}",
                stats.big_tables, limits.big_table_rows, limits.min_big_tables
            ),
        );
    }

    // Splits.
    let mut splits: Vec<(&str, Vec<Example>)> = Vec::new();
    for (i, split) in SPLITS.iter().enumerate() {
        let path = domain.split_path(split)?;
        if !path.is_file() {
            issue(None, "split", format!("{} is missing", path.display()));
            continue;
        }
        match read_jsonl(&path) {
            Ok(exs) => {
                stats.split_sizes.insert(split.to_string(), exs.len());
                if exs.len() < limits.min_split[i] {
                    issue(
                        None,
                        "split-size",
                        format!(
                            "{split} has {} examples, need at least {}",
                            exs.len(),
                            limits.min_split[i]
                        ),
                    );
                }
                splits.push((split, exs));
            }
            Err(e) => issue(None, "split", e.to_string()),
        }
    }

    // Per-example checks.
    let guard = Guard::new(schema.clone());
    let db = ReadOnlyDb::open(built_db).map_err(|e| sql_err(&e))?;
    let exec_limits = ExecLimits::default();
    let mut seen_ids: HashSet<String> = HashSet::new();
    let mut empty_ids = Vec::new();
    let mut changed_splits = Vec::new();
    for (split, exs) in splits.iter_mut() {
        let mut changed = false;
        for ex in exs.iter_mut() {
            let id = Some(ex.id.as_str());
            if !seen_ids.insert(ex.id.clone()) {
                issue(
                    id,
                    "duplicate-id",
                    format!("id appears more than once ({split})"),
                );
            }
            if ex.db_id != domain.name {
                issue(
                    id,
                    "db-id",
                    format!("db_id {:?} is not the domain name", ex.db_id),
                );
            }
            if ex.question.trim().is_empty() {
                issue(id, "question", "empty question".into());
            }
            match guard.check(&ex.sql) {
                Err(e) => issue(id, "guard", format!("{e} (SQL: {})", ex.sql)),
                Ok(()) => {
                    stats.gold_queries += 1;
                    match db.execute(&ex.sql, &exec_limits) {
                        Ok(r) if !r.rows.is_empty() => stats.non_empty += 1,
                        Ok(_) => empty_ids.push(ex.id.clone()),
                        Err(e) => issue(id, "exec", format!("{e} (SQL: {})", ex.sql)),
                    }
                }
            }
            match hardness(&ex.sql) {
                Err(e) => issue(id, "hardness", e.to_string()),
                Ok(d) if d != ex.difficulty => {
                    if fix_difficulty {
                        ex.difficulty = d;
                        changed = true;
                        stats.difficulty_fixed += 1;
                    } else {
                        issue(
                            id,
                            "difficulty",
                            format!(
                                "labelled {} but hardness(sql) is {}",
                                label(&ex.difficulty),
                                label(&d)
                            ),
                        );
                    }
                }
                Ok(_) => {}
            }
            *stats.difficulties.entry(label(&ex.difficulty)).or_default() += 1;
        }
        if changed {
            changed_splits.push(split.to_string());
        }
    }
    if stats.gold_queries > 0 {
        stats.non_empty_fraction = stats.non_empty as f64 / stats.gold_queries as f64;
    }
    if stats.gold_queries > 0 && stats.non_empty_fraction < limits.min_non_empty {
        let shown: Vec<&str> = empty_ids.iter().take(15).map(String::as_str).collect();
        issue(
            None,
            "empty-results",
            format!(
                "only {}/{} ({:.1}%) gold queries return rows, need {:.0}%; empty: {}{}",
                stats.non_empty,
                stats.gold_queries,
                100.0 * stats.non_empty_fraction,
                100.0 * limits.min_non_empty,
                shown.join(", "),
                if empty_ids.len() > shown.len() {
                    ", …"
                } else {
                    ""
                }
            ),
        );
    }

    // Leakage and skeleton novelty.
    let get = |name: &str| -> &[Example] {
        splits
            .iter()
            .find(|(s, _)| *s == name)
            .map(|(_, e)| e.as_slice())
            .unwrap_or(&[])
    };
    let (train, dev, test) = (get("train"), get("dev"), get("test"));
    let mut seen_q: HashMap<String, &str> = HashMap::new();
    let mut seen_sql: HashMap<String, &str> = HashMap::new();
    for ex in train.iter().chain(dev) {
        seen_q.entry(norm_question(&ex.question)).or_insert(&ex.id);
        seen_sql.entry(normalize_sql(&ex.sql)).or_insert(&ex.id);
    }
    let train_skeletons: HashSet<String> = train.iter().map(|e| skeleton(&e.sql)).collect();
    for ex in test {
        if let Some(other) = seen_q.get(&norm_question(&ex.question)) {
            issue(
                Some(&ex.id),
                "leak-question",
                format!("question also in {other}"),
            );
        }
        if let Some(other) = seen_sql.get(&normalize_sql(&ex.sql)) {
            issue(Some(&ex.id), "leak-sql", format!("query also in {other}"));
        }
        if !train_skeletons.contains(&skeleton(&ex.sql)) {
            stats.novel_test_skeletons += 1;
        }
    }
    if !test.is_empty() {
        stats.novel_skeleton_fraction = stats.novel_test_skeletons as f64 / test.len() as f64;
        if stats.novel_skeleton_fraction < limits.min_novel_skeletons {
            issue(
                None,
                "skeleton-novelty",
                format!(
                    "{}/{} ({:.1}%) test skeletons are unseen in train, need {:.0}%",
                    stats.novel_test_skeletons,
                    test.len(),
                    100.0 * stats.novel_skeleton_fraction,
                    100.0 * limits.min_novel_skeletons
                ),
            );
        }
    }

    // Hand-written training examples against the held-out hand-written questions.
    let hand = domain.dir.join(format!("{}.jsonl", near::HAND_TRAIN));
    if hand.is_file() {
        let train = read_jsonl(&hand)?;
        let mut held = Vec::new();
        for stem in near::HELD_OUT {
            let p = domain.dir.join(format!("{stem}.jsonl"));
            if p.is_file() {
                held.extend(read_jsonl(&p)?);
            }
        }
        for n in near::near_duplicates(&train, &held, &db) {
            issue(
                Some(&n.train_id),
                "near-duplicate",
                format!(
                    "too close to the held-out {} ({}; query similarity {:.2}, question {:.2})",
                    n.held_id,
                    if n.same_rows {
                        "same rows"
                    } else {
                        "paraphrase"
                    },
                    n.query,
                    n.question
                ),
            );
        }
    }

    // Rewrite fixed labels.
    for split in &changed_splits {
        if let Some((_, exs)) = splits.iter().find(|(s, _)| s == split) {
            write_jsonl(&domain.split_path(split)?, exs)?;
        }
    }

    let mut stats_map = BTreeMap::new();
    stats_map.insert(domain.name.clone(), stats);
    Ok(CheckReport {
        issues,
        stats: stats_map,
    })
}

fn label<T: Serialize>(d: &T) -> String {
    serde_json::to_value(d)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// A question made comparable: lower-case, single spaces, no trailing
/// punctuation.
fn norm_question(q: &str) -> String {
    q.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
        .trim_end_matches(['?', '.', '!'])
        .trim()
        .to_string()
}

/// Whether `name` is a view in the database (views have no primary key and
/// are not counted as tables).
fn is_view(db: &Path, name: &str) -> bool {
    rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| {
            c.query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'view' AND name = ?1",
                [name],
                |r| r.get::<_, i64>(0),
            )
        })
        .map(|n| n > 0)
        .unwrap_or(false)
}
