//! Execution match on a test suite of databases, ported from
//! `eval_exec_match` in the official evaluator (`exec_eval.py`), without the
//! `plug_value` mode.
//!
//! Both queries are post-processed (`> =` → `>=` …), DISTINCT is removed from
//! both unless `keep_distinct`, `YEAR(CURDATE())` is replaced by `2020` (as the
//! official `exec_on_db` does), and both run on every database of the suite.
//! The prediction is correct only if its result equals the gold result on all
//! of them. The gold query failing is a dataset error; the prediction failing,
//! timing out or being refused by the read-only policy makes it wrong.
//!
//! Queries run on connections from [`sqlora_sql::open_read_only`]; the
//! prediction is first checked against [`sqlora_sql::check_policy`] (one
//! read-only statement, no ATTACH/PRAGMA/…), so nothing a model writes can
//! change a database.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use sqlora_sql::{
    check_policy, open_read_only, run_query, ExecError, ExecLimits, QueryResult, Value,
};
use sqlparser::dialect::SQLiteDialect;
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, Tokenizer};

use crate::compare::result_eq;
use crate::EvalError;

/// Per-query time limit of the official evaluator.
pub const OFFICIAL_TIMEOUT: Duration = Duration::from_secs(60);

/// Default row budget: far above any Spider result.
pub const DEFAULT_MAX_ROWS: usize = 1_000_000;

/// Options of [`exec_match`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchOptions {
    /// Keep DISTINCT (the official `--keep_distinct`); removed by default.
    pub keep_distinct: bool,
    /// Time budget per query execution.
    pub timeout: Duration,
    /// Row budget per query. A gold result with more rows is an error; a
    /// prediction with more rows than the gold is wrong anyway.
    pub max_rows: usize,
}

impl Default for MatchOptions {
    fn default() -> Self {
        MatchOptions {
            keep_distinct: false,
            timeout: OFFICIAL_TIMEOUT,
            max_rows: DEFAULT_MAX_ROWS,
        }
    }
}

/// Verdict on one prediction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum MatchOutcome {
    /// Same result as the gold on every database of the suite.
    Correct,
    /// Ran everywhere it was tried but gave a different result somewhere.
    Wrong,
    /// Refused by the read-only policy, failed or timed out (scored wrong).
    PredError {
        /// `guard`, `timeout` or `sqlite`, or a guard code.
        code: String,
        /// The message.
        message: String,
    },
}

impl MatchOutcome {
    /// Whether the prediction counts as correct.
    pub fn is_correct(&self) -> bool {
        matches!(self, MatchOutcome::Correct)
    }
}

/// `postprocess` of the official evaluator: joins `> =`, `< =` and `! =`.
pub fn postprocess(sql: &str) -> String {
    sql.replace("> =", ">=")
        .replace("< =", "<=")
        .replace("! =", "!=")
}

/// `remove_distinct` of the official evaluator: tokenises the query and drops
/// every `DISTINCT` keyword token (so `COUNT(DISTINCT x)` becomes `COUNT( x)`),
/// leaving all other text, whitespace included, exactly as written. Text the
/// tokenizer rejects is returned as is (it will fail at execution anyway).
pub fn remove_distinct(sql: &str) -> String {
    let Ok(tokens) = Tokenizer::new(&SQLiteDialect {}, sql).tokenize_with_location() else {
        return sql.to_string();
    };
    // Byte ranges of the DISTINCT keywords, located by (line, column) in chars.
    let starts: Vec<(u64, u64)> = tokens
        .iter()
        .filter(|t| {
            matches!(&t.token, Token::Word(w) if w.quote_style.is_none() && w.keyword == Keyword::DISTINCT)
        })
        .map(|t| (t.span.start.line, t.span.start.column))
        .collect();
    if starts.is_empty() {
        return sql.to_string();
    }
    let mut out = String::with_capacity(sql.len());
    let (mut line, mut col) = (1u64, 1u64);
    let mut skip_until = 0usize;
    for (i, c) in sql.char_indices() {
        if starts.contains(&(line, col)) && sql[i..].len() >= 8 {
            skip_until = i + "distinct".len();
        }
        if i >= skip_until {
            out.push(c);
        }
        if c == '\n' {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    out
}

/// `replace_cur_year`: `YEAR ( CURDATE ( ) )` plus trailing whitespace → `2020`
/// (case-insensitive), as the official evaluator does before executing.
fn replace_cur_year(sql: &str) -> String {
    fn matches_at(s: &[u8], mut i: usize) -> Option<usize> {
        let skip_ws = |s: &[u8], mut i: usize| {
            while i < s.len() && s[i].is_ascii_whitespace() {
                i += 1;
            }
            i
        };
        let word = |s: &[u8], i: usize, w: &str| {
            s.len() >= i + w.len() && s[i..i + w.len()].eq_ignore_ascii_case(w.as_bytes())
        };
        if !word(s, i, "year") {
            return None;
        }
        i = skip_ws(s, i + 4);
        if s.get(i) != Some(&b'(') {
            return None;
        }
        i = skip_ws(s, i + 1);
        if !word(s, i, "curdate") {
            return None;
        }
        i = skip_ws(s, i + 7);
        for c in [b'(', b')', b')'] {
            if s.get(i) != Some(&c) {
                return None;
            }
            i = skip_ws(s, i + 1);
        }
        Some(i)
    }
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        if let Some(end) = matches_at(bytes, i) {
            out.push_str(&sql[copied..i]);
            out.push_str("2020");
            i = end;
            copied = end;
        } else {
            i += 1;
        }
    }
    out.push_str(&sql[copied..]);
    out
}

/// The test suite of database `db_id`: every file in `db_dir/db_id/` whose
/// name contains `.sqlite`, sorted by path.
pub fn suite_paths(db_dir: &Path, db_id: &str) -> Result<Vec<PathBuf>, EvalError> {
    let dir = db_dir.join(db_id);
    let entries = std::fs::read_dir(&dir).map_err(|source| EvalError::Io {
        path: dir.clone(),
        source,
    })?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| EvalError::Io {
            path: dir.clone(),
            source,
        })?;
        let name = entry.file_name();
        if name.to_string_lossy().contains(".sqlite") && entry.path().is_file() {
            paths.push(entry.path());
        }
    }
    if paths.is_empty() {
        return Err(EvalError::NoDatabases(dir));
    }
    paths.sort();
    Ok(paths)
}

/// Runs `sql` on a fresh read-only connection to `path`.
///
/// Text is decoded like the official evaluator's
/// `text_factory = lambda b: b.decode(errors="ignore")`: invalid UTF-8 is
/// dropped. sqlora-sql decodes lossily (each invalid sequence becomes
/// U+FFFD), so U+FFFD is removed here; the only divergence is a *genuine*
/// U+FFFD stored in the database, which is removed as well.
fn run(path: &Path, sql: &str, limits: &ExecLimits) -> Result<QueryResult, ExecError> {
    let conn = open_read_only(path)?;
    let mut res = run_query(&conn, sql, limits)?;
    for v in res.rows.iter_mut().flatten() {
        if let Value::Text(t) = v {
            if t.contains('\u{FFFD}') {
                t.retain(|c| c != '\u{FFFD}');
            }
        }
    }
    Ok(res)
}

/// Whether `pred` has the same denotation as `gold` on every database in
/// `db_paths` (see the module docs). `Err` only when the gold query fails.
pub fn exec_match(
    db_paths: &[PathBuf],
    gold: &str,
    pred: &str,
    opts: &MatchOptions,
) -> Result<MatchOutcome, EvalError> {
    let Some(first) = db_paths.first() else {
        return Err(EvalError::NoDatabases(PathBuf::new()));
    };
    let (mut g, mut p) = (postprocess(gold), postprocess(pred));
    if !opts.keep_distinct {
        g = remove_distinct(&g);
        p = remove_distinct(&p);
    }
    let order_matters = g.to_lowercase().contains("order by");
    let (g, p) = (replace_cur_year(&g), replace_cur_year(&p));
    let limits = ExecLimits {
        timeout: opts.timeout,
        max_rows: opts.max_rows,
        max_bytes: usize::MAX,
    };
    let gold_err = |db: &Path, message: String| EvalError::GoldFailed {
        db: db.to_path_buf(),
        sql: g.clone(),
        message,
    };
    if let Err(e) = check_policy(&p) {
        // Make sure the gold itself runs, so dataset errors are never hidden.
        run(first, &g, &limits).map_err(|e| gold_err(first, e.to_string()))?;
        return Ok(MatchOutcome::PredError {
            code: e.code.as_str().to_string(),
            message: e.message,
        });
    }
    for path in db_paths {
        let gold_res = run(path, &g, &limits).map_err(|e| gold_err(path, e.to_string()))?;
        if gold_res.truncated {
            return Err(gold_err(
                path,
                format!("result has more than {} rows", opts.max_rows),
            ));
        }
        let pred_res = match run(path, &p, &limits) {
            Ok(r) => r,
            Err(e) => {
                return Ok(MatchOutcome::PredError {
                    code: e.code().to_string(),
                    message: e.to_string(),
                })
            }
        };
        // A truncated prediction has more rows than the (complete) gold result.
        if pred_res.truncated || !result_eq(&gold_res.rows, &pred_res.rows, order_matters) {
            return Ok(MatchOutcome::Wrong);
        }
    }
    Ok(MatchOutcome::Correct)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postprocess_joins_split_operators() {
        assert_eq!(
            postprocess("SELECT a FROM t WHERE b > = 1 AND c < = 2 AND d ! = 3"),
            "SELECT a FROM t WHERE b >= 1 AND c <= 2 AND d != 3"
        );
    }

    #[test]
    fn remove_distinct_drops_keyword_tokens_only() {
        assert_eq!(
            remove_distinct("SELECT DISTINCT name FROM t"),
            "SELECT  name FROM t"
        );
        assert_eq!(
            remove_distinct("select count(distinct name) from t where x = 'distinct'"),
            "select count( name) from t where x = 'distinct'"
        );
        assert_eq!(
            remove_distinct("SELECT \"distinct\" FROM t"),
            "SELECT \"distinct\" FROM t"
        );
    }

    #[test]
    fn cur_year_is_replaced() {
        assert_eq!(
            replace_cur_year("SELECT year(CURDATE( )) - age FROM t"),
            "SELECT 2020- age FROM t"
        );
        assert_eq!(
            replace_cur_year("SELECT years FROM t"),
            "SELECT years FROM t"
        );
    }
}
#[cfg(test)]
mod roundtrip_tests {
    use super::*;

    #[test]
    fn remove_distinct_leaves_other_text_unchanged() {
        for sql in [
            "SELECT name, 'it''s' FROM singer -- comment\nWHERE a <> 1 AND b != 2 /* block */",
            "SELECT `weird col`, [other col], \"quoted\" FROM t WHERE x = 1e5 OR y = .5",
            "SELECT x'AB', a || b, -3, ? FROM t\tWHERE c >= 2 AND d <= 3 AND e == 4",
            "select count(*) from (select * from t) as s;  ",
        ] {
            assert_eq!(remove_distinct(sql), sql);
        }
    }

    #[test]
    fn remove_distinct_locates_keywords_after_multibyte_text_and_newlines() {
        assert_eq!(
            remove_distinct(
                "SELECT 'café', 'it''s'\n, count(distinct x) FROM t WHERE y = 'naïve' AND z IN (SELECT DISTINCT w FROM u)"
            ),
            "SELECT 'café', 'it''s'\n, count( x) FROM t WHERE y = 'naïve' AND z IN (SELECT  w FROM u)"
        );
    }
}
