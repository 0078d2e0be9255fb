//! Near-duplicates between a domain's hand-written training examples (`human_train.jsonl`) and
//! its held-out hand-written questions (`human.jsonl`, `human_dev.jsonl`).
//!
//! The leakage rules of [`crate::check`] catch a repeated question or normalised query. A
//! training example can leak a held-out question without repeating it: the same question
//! paraphrased, answered by nearly the same query (one selected column more or less, another
//! threshold), or a different query that returns the same rows. Retrieved into a prompt, such an
//! example hands the model the answer. A pair is a near-duplicate when
//!
//! * their queries are nearly the same (token-sequence similarity ≥ [`QUERY_NEAR`]) and their
//!   questions alike (word-sequence similarity ≥ [`QUESTION_ALIKE`]), or
//! * their queries return the same rows on the base database and are alike (similarity ≥
//!   [`QUERY_ALIKE`]).
//!
//! Similarity is 2·LCS / (|a| + |b|) over tokens (the longest common subsequence; the
//! Ratcliff–Obershelp ratio of Python's `difflib` is never above it).

use crate::dataset::Example;
use crate::deps::{ExecLimits, ReadOnlyDb};

/// The hand-written training file of a domain (its file stem).
pub const HAND_TRAIN: &str = "human_train";
/// The held-out hand-written files of a domain (file stems).
pub const HELD_OUT: [&str; 2] = ["human", "human_dev"];
/// Query similarity above which two queries are nearly the same.
pub const QUERY_NEAR: f64 = 0.85;
/// Question similarity above which two questions are alike.
pub const QUESTION_ALIKE: f64 = 0.45;
/// Query similarity above which two queries with the same rows are alike.
pub const QUERY_ALIKE: f64 = 0.6;

/// A training example too close to a held-out question.
#[derive(Debug, Clone, PartialEq)]
pub struct NearDuplicate {
    pub train_id: String,
    pub held_id: String,
    /// Token-sequence similarity of the two queries.
    pub query: f64,
    /// Word-sequence similarity of the two questions.
    pub question: f64,
    /// Whether the two queries return the same rows.
    pub same_rows: bool,
}

/// Every near-duplicate pair of `train` × `held`, rows compared on `db`.
pub fn near_duplicates(train: &[Example], held: &[Example], db: &ReadOnlyDb) -> Vec<NearDuplicate> {
    let limits = ExecLimits::default();
    let rows = |sql: &str| {
        db.execute(sql, &limits).ok().map(|r| {
            let mut rows: Vec<String> = r.rows.iter().map(|row| format!("{row:?}")).collect();
            rows.sort_unstable();
            rows
        })
    };
    let held: Vec<_> = held
        .iter()
        .map(|h| (h, sql_tokens(&h.sql), words(&h.question), rows(&h.sql)))
        .collect();
    let mut out = Vec::new();
    for t in train {
        let (t_sql, t_words, t_rows) = (sql_tokens(&t.sql), words(&t.question), rows(&t.sql));
        for (h, h_sql, h_words, h_rows) in &held {
            let query = similarity(&t_sql, h_sql);
            let question = similarity(&t_words, h_words);
            let same_rows = t_rows.is_some() && t_rows == *h_rows;
            if (query >= QUERY_NEAR && question >= QUESTION_ALIKE)
                || (same_rows && query >= QUERY_ALIKE)
            {
                out.push(NearDuplicate {
                    train_id: t.id.clone(),
                    held_id: h.id.clone(),
                    query,
                    question,
                    same_rows,
                });
            }
        }
    }
    out
}

/// A query's tokens, lower-cased: quoted strings whole, words, and single symbols.
pub fn sql_tokens(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            let mut s = String::from(c);
            for d in chars.by_ref() {
                s.push(d);
                if d == '\'' {
                    break;
                }
            }
            out.push(s.to_lowercase());
        } else if c.is_alphanumeric() || c == '_' {
            let mut s = String::from(c);
            while let Some(&d) = chars.peek() {
                if !(d.is_alphanumeric() || d == '_') {
                    break;
                }
                s.push(d);
                chars.next();
            }
            out.push(s.to_lowercase());
        } else if !c.is_whitespace() {
            out.push(c.to_string());
        }
    }
    out
}

/// A question's words, lower-cased.
pub fn words(question: &str) -> Vec<String> {
    question
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// 2·LCS(a, b) / (|a| + |b|): 1 for equal sequences, 0 for nothing in common.
pub fn similarity<T: PartialEq>(a: &[T], b: &[T]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    let mut prev = vec![0usize; b.len() + 1];
    for x in a {
        let mut cur = vec![0usize; b.len() + 1];
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = if x == y {
                prev[j] + 1
            } else {
                prev[j + 1].max(cur[j])
            };
        }
        prev = cur;
    }
    2.0 * prev[b.len()] as f64 / (a.len() + b.len()) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deps::Difficulty;

    fn ex(id: &str, question: &str, sql: &str) -> Example {
        Example {
            id: id.into(),
            db_id: "d".into(),
            question: question.into(),
            sql: sql.into(),
            difficulty: Difficulty::Easy,
        }
    }

    #[test]
    fn tokens_keep_strings_whole_and_similarity_is_the_lcs_ratio() {
        assert_eq!(
            sql_tokens("SELECT name FROM t WHERE city = 'New York' AND n>=2"),
            [
                "select",
                "name",
                "from",
                "t",
                "where",
                "city",
                "=",
                "'new york'",
                "and",
                "n",
                ">",
                "=",
                "2"
            ]
        );
        assert_eq!(words("Whats the avg, pls?"), ["whats", "the", "avg", "pls"]);
        assert_eq!(similarity(&[1, 2, 3, 4], &[1, 2, 3, 4]), 1.0);
        assert_eq!(similarity(&[1, 2], &[3, 4]), 0.0);
        // LCS [1, 3] of lengths 3 and 3.
        assert!((similarity(&[1, 2, 3], &[1, 3, 5]) - 4.0 / 6.0).abs() < 1e-12);
    }

    #[test]
    fn a_paraphrase_with_one_column_less_or_the_same_rows_is_flagged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.sqlite");
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE doctors (id INTEGER PRIMARY KEY, name TEXT, fee REAL, floor INTEGER);
             INSERT INTO doctors VALUES (1, 'Ann', 100, 1), (2, 'Bo', 200, 2), (3, 'Cy', 300, 2);",
        )
        .unwrap();
        drop(c);
        let db = ReadOnlyDb::open(&path).unwrap();
        let held = [
            ex(
                "h1",
                "Which doctors charge more than 150? Name and fee.",
                "SELECT name, fee FROM doctors WHERE fee > 150",
            ),
            ex(
                "h2",
                "How many doctors work on each floor?",
                "SELECT floor, COUNT(*) FROM doctors GROUP BY floor",
            ),
        ];
        let train = [
            // h1 paraphrased, one column less.
            ex(
                "t1",
                "Which doctors charge more than 150?",
                "SELECT name FROM doctors WHERE fee > 150",
            ),
            // h2's rows by another query.
            ex(
                "t2",
                "Doctors per floor, pls",
                "SELECT T1.floor, COUNT(*) FROM doctors AS T1 GROUP BY T1.floor",
            ),
            // Same table, another question and answer.
            ex(
                "t3",
                "Who is the cheapest doctor?",
                "SELECT name FROM doctors ORDER BY fee LIMIT 1",
            ),
        ];
        let found = near_duplicates(&train, &held, &db);
        let pairs: Vec<(&str, &str, bool)> = found
            .iter()
            .map(|n| (n.train_id.as_str(), n.held_id.as_str(), n.same_rows))
            .collect();
        assert_eq!(
            pairs,
            [("t1", "h1", false), ("t2", "h2", true)],
            "{found:?}"
        );
    }
}
