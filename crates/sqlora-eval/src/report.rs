//! Whole-dataset evaluation: execution accuracy overall, by Spider
//! difficulty, by domain (database) and by seen/unseen SQL skeleton, plus the
//! valid-SQL rate and the execution-error rate.
//!
//! A prediction is *valid* when it is non-empty and passes the
//! [`Guard`] built from the schema of the first database of its suite
//! (parses, one read-only statement, known tables and columns). Invalid
//! predictions are never executed and count wrong. Valid predictions go
//! through [`exec_match`]; those that then fail or time out count wrong and
//! are counted in `exec_error_rate`. As in the official `evaluate`, a
//! placeholder ` value ` in a prediction is replaced by ` 1 ` first.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlora_sql::{Guard, Schema};

use crate::exec_match::{
    exec_match, postprocess, suite_paths, MatchOptions, MatchOutcome, DEFAULT_MAX_ROWS,
    OFFICIAL_TIMEOUT,
};
use crate::hardness::{hardness, Difficulty};
use crate::skeleton::skeleton;
use crate::EvalError;

/// One example to evaluate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvalItem {
    /// Example id (matched against `id` in JSONL predictions).
    pub id: String,
    /// Database id: the suite is every `*.sqlite` file in `db_dir/<db_id>/`.
    pub db_id: String,
    /// Gold SQL.
    pub gold: String,
    /// Difficulty; computed from the gold SQL with [`hardness`] when `None`.
    pub difficulty: Option<Difficulty>,
}

/// Options of [`evaluate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalOptions {
    /// Keep DISTINCT (the official `--keep_distinct`).
    pub keep_distinct: bool,
    /// Time budget per query execution.
    pub timeout: Duration,
    /// Skeletons ([`skeleton`]) of the training queries; when given, the
    /// report splits EX by whether an example's gold skeleton was seen.
    pub train_skeletons: Option<HashSet<String>>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            keep_distinct: false,
            timeout: OFFICIAL_TIMEOUT,
            train_skeletons: None,
        }
    }
}

/// Counts for one slice of the dataset.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    /// Examples in the slice.
    pub total: usize,
    /// Correct predictions.
    pub correct: usize,
    /// `correct / total` (0 for an empty slice).
    pub ex: f64,
}

impl Bucket {
    fn add(&mut self, correct: bool) {
        self.total += 1;
        self.correct += usize::from(correct);
        self.ex = ratio(self.correct, self.total);
    }
}

fn ratio(n: usize, d: usize) -> f64 {
    if d == 0 {
        0.0
    } else {
        n as f64 / d as f64
    }
}

/// The verdict on one example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detail {
    /// Example id.
    pub id: String,
    /// Database id.
    pub db_id: String,
    /// Whether the prediction is correct.
    pub correct: bool,
    /// Whether the prediction passed the guard (and was therefore executed).
    pub valid: bool,
    /// Why the prediction was refused or failed, when it was.
    pub error: Option<String>,
    /// The example's difficulty.
    pub difficulty: Option<Difficulty>,
    /// Whether the gold skeleton occurs in the training skeletons (when given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen_skeleton: Option<bool>,
    /// Gold SQL.
    pub gold: String,
    /// Predicted SQL.
    pub pred: String,
}

/// The result of [`evaluate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Execution accuracy over all examples.
    pub ex: f64,
    /// Number of examples.
    pub total: usize,
    /// Number of correct predictions.
    pub correct: usize,
    /// Fraction of predictions that passed the guard.
    pub valid_sql_rate: f64,
    /// Fraction of predictions that passed the guard but failed or timed out when executed.
    pub exec_error_rate: f64,
    /// By difficulty (`easy`, `medium`, `hard`, `extra`, or `unknown` when the
    /// gold could not be classified); only levels that occur.
    pub by_difficulty: BTreeMap<String, Bucket>,
    /// By database id.
    pub by_domain: BTreeMap<String, Bucket>,
    /// Examples whose gold skeleton occurs in the training skeletons.
    pub seen_skeleton: Option<Bucket>,
    /// Examples whose gold skeleton does not.
    pub unseen_skeleton: Option<Bucket>,
    /// One entry per example, in dataset order.
    pub details: Vec<Detail>,
}

struct Suite {
    paths: Vec<PathBuf>,
    guard: Guard,
}

fn load_suite(db_dir: &Path, db_id: &str) -> Result<Suite, EvalError> {
    let paths = suite_paths(db_dir, db_id)?;
    let first = &paths[0];
    let schema = Schema::introspect(first).map_err(|e| EvalError::Schema {
        path: first.clone(),
        message: e.to_string(),
    })?;
    Ok(Suite {
        paths,
        guard: Guard::new(schema),
    })
}

/// Evaluates `predictions[i]` against `items[i]` on the databases under
/// `db_dir` (see the module docs). Errors concern the dataset (a gold query
/// that fails, a missing database), never a prediction.
pub fn evaluate(
    items: &[EvalItem],
    predictions: &[String],
    db_dir: &Path,
    opts: &EvalOptions,
) -> Result<Report, EvalError> {
    evaluate_with_progress(items, predictions, db_dir, opts, &mut |_| {})
}

/// [`evaluate`], calling `progress` with each example's [`Detail`] as soon as
/// it is scored (for progress bars).
pub fn evaluate_with_progress(
    items: &[EvalItem],
    predictions: &[String],
    db_dir: &Path,
    opts: &EvalOptions,
    progress: &mut dyn FnMut(&Detail),
) -> Result<Report, EvalError> {
    if items.len() != predictions.len() {
        return Err(EvalError::PredictionCount {
            expected: items.len(),
            got: predictions.len(),
        });
    }
    let mopts = MatchOptions {
        keep_distinct: opts.keep_distinct,
        timeout: opts.timeout,
        max_rows: DEFAULT_MAX_ROWS,
    };
    let mut suites: HashMap<String, Suite> = HashMap::new();
    let mut details = Vec::with_capacity(items.len());
    let (mut correct, mut valid_count, mut exec_errors) = (0usize, 0usize, 0usize);
    let mut by_difficulty: BTreeMap<String, Bucket> = BTreeMap::new();
    let mut by_domain: BTreeMap<String, Bucket> = BTreeMap::new();
    let (mut seen, mut unseen) = (Bucket::default(), Bucket::default());

    for (item, pred) in items.iter().zip(predictions) {
        let wrap = |e: EvalError| EvalError::Example {
            id: item.id.clone(),
            db_id: item.db_id.clone(),
            source: Box::new(e),
        };
        let suite: &Suite = match suites.entry(item.db_id.clone()) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(v) => v.insert(load_suite(db_dir, &item.db_id).map_err(wrap)?),
        };
        let difficulty = item.difficulty.or_else(|| hardness(&item.gold).ok());
        // The official `evaluate` turns a placeholder ` value ` into ` 1 `.
        let pred_sql = pred.replace(" value ", " 1 ");
        let checked = postprocess(&pred_sql);

        let refusal = if checked.trim().is_empty() {
            Some("empty prediction".to_string())
        } else {
            suite
                .guard
                .check(&checked)
                .err()
                .map(|e| format!("guard: {e}"))
        };
        let (valid, is_correct, error) = match refusal {
            Some(reason) => {
                // Never executed; still make sure the gold runs, so that a
                // broken dataset is reported whatever the predictions are.
                exec_match(&suite.paths[..1], &item.gold, &item.gold, &mopts).map_err(wrap)?;
                (false, false, Some(reason))
            }
            None => match exec_match(&suite.paths, &item.gold, &pred_sql, &mopts).map_err(wrap)? {
                MatchOutcome::Correct => (true, true, None),
                MatchOutcome::Wrong => (true, false, None),
                MatchOutcome::PredError { code, message } => {
                    exec_errors += 1;
                    (true, false, Some(format!("{code}: {message}")))
                }
            },
        };
        valid_count += usize::from(valid);
        correct += usize::from(is_correct);
        let level = difficulty.map_or("unknown", |d| d.as_str()).to_string();
        by_difficulty.entry(level).or_default().add(is_correct);
        by_domain
            .entry(item.db_id.clone())
            .or_default()
            .add(is_correct);
        let seen_skeleton = opts
            .train_skeletons
            .as_ref()
            .map(|set| set.contains(&skeleton(&item.gold)));
        match seen_skeleton {
            Some(true) => seen.add(is_correct),
            Some(false) => unseen.add(is_correct),
            None => {}
        }
        details.push(Detail {
            id: item.id.clone(),
            db_id: item.db_id.clone(),
            correct: is_correct,
            valid,
            error,
            difficulty,
            seen_skeleton,
            gold: item.gold.clone(),
            pred: pred.clone(),
        });
        if let Some(d) = details.last() {
            progress(d);
        }
    }
    let total = items.len();
    let split = opts.train_skeletons.is_some();
    Ok(Report {
        ex: ratio(correct, total),
        total,
        correct,
        valid_sql_rate: ratio(valid_count, total),
        exec_error_rate: ratio(exec_errors, total),
        by_difficulty,
        by_domain,
        seen_skeleton: split.then_some(seen),
        unseen_skeleton: split.then_some(unseen),
        details,
    })
}

/// The set of [`skeleton`]s of `sqls` (e.g. the training queries), for
/// [`EvalOptions::train_skeletons`].
pub fn skeleton_set<I, S>(sqls: I) -> HashSet<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    sqls.into_iter().map(|s| skeleton(s.as_ref())).collect()
}

impl Report {
    /// A human-readable table: overall, by difficulty, by domain, seen/unseen
    /// skeletons, valid-SQL rate and execution-error rate.
    pub fn to_table(&self) -> String {
        let mut rows: Vec<(String, &Bucket)> = Vec::new();
        let all = Bucket {
            total: self.total,
            correct: self.correct,
            ex: self.ex,
        };
        let mut out = String::new();
        let width = self
            .by_domain
            .keys()
            .map(|k| k.chars().count())
            .chain([16])
            .max()
            .unwrap_or(16);
        let section = |out: &mut String, title: &str, rows: &[(String, &Bucket)]| {
            let _ = writeln!(
                out,
                "{title:<width$}  {:>7}  {:>7}  {:>6}",
                "count", "correct", "EX"
            );
            for (name, b) in rows {
                let _ = writeln!(
                    out,
                    "{name:<width$}  {:>7}  {:>7}  {:>6.3}",
                    b.total, b.correct, b.ex
                );
            }
            out.push('\n');
        };
        for level in Difficulty::ALL
            .iter()
            .map(|d| d.as_str())
            .chain(["unknown"])
        {
            if let Some(b) = self.by_difficulty.get(level) {
                rows.push((level.to_string(), b));
            }
        }
        rows.push(("all".to_string(), &all));
        section(&mut out, "difficulty", &rows);
        let domains: Vec<(String, &Bucket)> =
            self.by_domain.iter().map(|(k, b)| (k.clone(), b)).collect();
        section(&mut out, "domain", &domains);
        if let (Some(s), Some(u)) = (&self.seen_skeleton, &self.unseen_skeleton) {
            section(
                &mut out,
                "skeleton",
                &[("seen".to_string(), s), ("unseen".to_string(), u)],
            );
        }
        let _ = writeln!(
            out,
            "execution accuracy  {:.3}  ({}/{})",
            self.ex, self.correct, self.total
        );
        let _ = writeln!(out, "valid SQL rate      {:.3}", self.valid_sql_rate);
        let _ = writeln!(out, "execution errors    {:.3}", self.exec_error_rate);
        out
    }
}

#[derive(Deserialize)]
struct JsonPrediction {
    id: serde_json::Value,
    #[serde(default)]
    sql: Option<String>,
}

/// Reads predictions for `items`, in the same order.
///
/// Two formats, told apart by the first non-empty line:
/// * JSON Lines (`{"id": ..., "sql": ...}` per line; the first line starts
///   with `{`): matched to items by id; an item without a prediction gets an
///   empty one (scored wrong); predictions for unknown ids are ignored; a
///   repeated id is an error;
/// * plain text, one query per non-empty line in dataset order (the Spider
///   convention; anything after a tab is dropped); the count must match.
pub fn read_predictions(path: &Path, items: &[EvalItem]) -> Result<Vec<String>, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |line: usize, message: String| EvalError::BadPrediction {
        path: path.to_path_buf(),
        line,
        message,
    };
    let first = text.lines().find(|l| !l.trim().is_empty());
    if first.is_some_and(|l| l.trim_start().starts_with('{')) {
        let mut by_id: HashMap<String, String> = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let p: JsonPrediction =
                serde_json::from_str(line).map_err(|e| bad(n + 1, e.to_string()))?;
            let id = match p.id {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(num) => num.to_string(),
                other => {
                    return Err(bad(
                        n + 1,
                        format!("`id` must be a string or number, got {other}"),
                    ))
                }
            };
            let sql = p.sql.unwrap_or_default();
            if by_id.insert(id.clone(), sql).is_some() {
                return Err(bad(n + 1, format!("duplicate prediction for id `{id}`")));
            }
        }
        Ok(items
            .iter()
            .map(|it| by_id.get(&it.id).cloned().unwrap_or_default())
            .collect())
    } else {
        let preds: Vec<String> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.split('\t').next().unwrap_or("").trim().to_string())
            .collect();
        if preds.len() != items.len() {
            return Err(EvalError::PredictionCount {
                expected: items.len(),
                got: preds.len(),
            });
        }
        Ok(preds)
    }
}
