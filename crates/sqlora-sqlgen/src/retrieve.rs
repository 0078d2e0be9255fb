//! Example retrieval for few-shot prompts: the `k` (question, SQL) pairs of a training split
//! whose questions are most similar to the asked one (BM25 over the questions' words), shown in
//! the prompt after the schema and before the question (DAIL-SQL's question + SQL
//! organisation).
//!
//! Only the questions are compared: the SQL of the asked question is what the model is to
//! write, so nothing about it is known when the examples are chosen. Words are lower-cased
//! runs of letters and digits; a number is one token class (`2023` and `17` match), and a
//! plural `s` is dropped (`orders` matches `order`). Ties keep the examples' order in the
//! file, so a retrieval is deterministic.
//!
//! **One example per SQL skeleton.** The `k` examples shown are the most similar ones whose
//! queries have different skeletons ([`sqlora_eval::skeleton`]: the query with its values
//! masked); an example whose skeleton an already chosen one has is passed over, and such
//! examples fill the remaining places only when the pool has fewer than `k` skeletons. A
//! generated split holds paraphrases of one template with other values ("How many current
//! employees in Finance / Operations / Research have no phone number on file?"), and BM25
//! ranks them side by side: three of them teach one query three times, and the model copies
//! its predicates into a question that did not ask for them (EVALUATION.md, session 15).
//!
//! [`ExampleIndex::retrieve`] excludes the asked question itself (the same id or the same
//! words), so an evaluation never shows the model the answer it is scored on.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use sqlora_eval::skeleton;

use crate::error::SqlgenError;
use crate::prompt::PromptBuilder;
use crate::sql::{one_line_sql, string_literals};

/// BM25's term-frequency saturation.
const K1: f64 = 1.2;
/// BM25's length normalisation.
const B: f64 = 0.75;
/// The token every number stands for.
const NUMBER: &str = "<num>";

/// One (question, SQL) pair that can be shown in a prompt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shot {
    /// Its id (e.g. the dataset example's); empty when the source has none.
    #[serde(default)]
    pub id: String,
    /// The question, in plain English.
    pub question: String,
    /// Its gold SQL.
    pub sql: String,
}

impl Shot {
    /// The pair `question` / `sql` with id `id`.
    pub fn new(id: impl Into<String>, question: impl Into<String>, sql: impl Into<String>) -> Self {
        Shot {
            id: id.into(),
            question: question.into(),
            sql: sql.into(),
        }
    }
}

/// The words of `text` as retrieval compares them: lower-cased runs of letters and digits,
/// numbers as one token class, a plural `s` dropped from words longer than three letters.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            if w.chars().all(|c| c.is_ascii_digit()) {
                return NUMBER.to_string();
            }
            let w = w.to_lowercase();
            match w.strip_suffix('s') {
                Some(stem) if w.chars().count() > 3 && !stem.ends_with('s') => stem.to_string(),
                _ => w,
            }
        })
        .collect()
}

/// A BM25 index (k1 = 1.2, b = 0.75) over the questions of a set of [`Shot`]s.
#[derive(Debug, Clone, Default)]
pub struct ExampleIndex {
    shots: Vec<Shot>,
    /// Each shot's term frequencies (term id, count), by term id.
    docs: Vec<Vec<(usize, u32)>>,
    /// Each shot's length in words.
    lens: Vec<usize>,
    /// Word → term id.
    terms: HashMap<String, usize>,
    /// Documents containing each term.
    df: Vec<usize>,
    avg_len: f64,
    /// Each shot's question as compared for exclusion (its words joined).
    keys: Vec<String>,
    /// Each shot's SQL skeleton, by which retrieval keeps one example per query shape.
    skeletons: Vec<String>,
}

impl ExampleIndex {
    /// Indexes `shots` (in this order: ties go to the earlier one).
    pub fn new(shots: Vec<Shot>) -> Self {
        let mut terms: HashMap<String, usize> = HashMap::new();
        let mut df: Vec<usize> = Vec::new();
        let mut docs = Vec::with_capacity(shots.len());
        let mut lens = Vec::with_capacity(shots.len());
        let mut keys = Vec::with_capacity(shots.len());
        for s in &shots {
            let ws = words(&s.question);
            let mut tf: Vec<(usize, u32)> = Vec::new();
            for w in &ws {
                let next = terms.len();
                let t = *terms.entry(w.clone()).or_insert(next);
                if t == df.len() {
                    df.push(0);
                }
                match tf.iter_mut().find(|(id, _)| *id == t) {
                    Some((_, n)) => *n += 1,
                    None => {
                        tf.push((t, 1));
                        df[t] += 1;
                    }
                }
            }
            tf.sort_unstable();
            lens.push(ws.len());
            keys.push(ws.join(" "));
            docs.push(tf);
        }
        let skeletons = shots.iter().map(|s| skeleton(&s.sql)).collect();
        let avg_len = if lens.is_empty() {
            0.0
        } else {
            lens.iter().sum::<usize>() as f64 / lens.len() as f64
        };
        ExampleIndex {
            shots,
            docs,
            lens,
            terms,
            df,
            avg_len,
            keys,
            skeletons,
        }
    }

    /// Reads a JSONL file of examples (each line an object with at least `question` and
    /// `sql`; `id` is kept when present, other fields such as `db_id` are ignored). Blank
    /// lines are skipped; a missing file or a malformed line is an error naming the file (and
    /// the 1-based line).
    pub fn from_jsonl(path: &Path) -> Result<Self, SqlgenError> {
        Self::from_jsonl_files(&[path])
    }

    /// [`ExampleIndex::from_jsonl`] over several files, one pool: their examples in the order
    /// of the files (ties in retrieval go to the earlier file).
    pub fn from_jsonl_files<P: AsRef<Path>>(paths: &[P]) -> Result<Self, SqlgenError> {
        let mut shots = Vec::new();
        for path in paths {
            read_shots(path.as_ref(), &mut shots)?;
        }
        Ok(ExampleIndex::new(shots))
    }

    /// The indexed examples, in their original order.
    pub fn shots(&self) -> &[Shot] {
        &self.shots
    }

    /// How many examples are indexed.
    pub fn len(&self) -> usize {
        self.shots.len()
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.shots.is_empty()
    }

    /// The BM25 score of every indexed question against `question`, in index order.
    pub fn scores(&self, question: &str) -> Vec<f64> {
        let mut query: Vec<usize> = words(question)
            .iter()
            .filter_map(|w| self.terms.get(w).copied())
            .collect();
        query.sort_unstable();
        query.dedup();
        let n = self.shots.len() as f64;
        let idf: Vec<(usize, f64)> = query
            .iter()
            .map(|&t| {
                let df = self.df[t] as f64;
                (t, (1.0 + (n - df + 0.5) / (df + 0.5)).ln())
            })
            .collect();
        self.docs
            .iter()
            .zip(&self.lens)
            .map(|(doc, &len)| {
                let norm = K1 * (1.0 - B + B * len as f64 / self.avg_len.max(1e-9));
                idf.iter()
                    .filter_map(|&(t, idf)| {
                        doc.binary_search_by_key(&t, |&(id, _)| id).ok().map(|i| {
                            let tf = doc[i].1 as f64;
                            idf * tf * (K1 + 1.0) / (tf + norm)
                        })
                    })
                    .sum()
            })
            .collect()
    }

    /// The indices of the `k` examples most similar to `question` with different SQL
    /// skeletons, most similar first (ties: the earlier example first), leaving out those
    /// `exclude` picks. An example whose skeleton a better one has comes after every example
    /// with a new skeleton (module docs). Fewer than `k` when fewer are left.
    pub fn top_k(&self, question: &str, k: usize, exclude: impl Fn(usize) -> bool) -> Vec<usize> {
        if k == 0 {
            return Vec::new();
        }
        let scores = self.scores(question);
        let mut order: Vec<usize> = (0..self.shots.len()).filter(|&i| !exclude(i)).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        let mut chosen: Vec<usize> = Vec::with_capacity(k);
        let mut repeats: Vec<usize> = Vec::new();
        for i in order {
            if chosen.len() == k {
                break;
            }
            if chosen
                .iter()
                .any(|&c| self.skeletons[c] == self.skeletons[i])
            {
                repeats.push(i);
            } else {
                chosen.push(i);
            }
        }
        let room = k - chosen.len();
        chosen.extend(repeats.into_iter().take(room));
        chosen
    }

    /// The `k` examples most similar to `question`, most similar first, never the question
    /// itself: examples with the id `id` (when given and not empty) or with the same words as
    /// `question` are left out.
    pub fn retrieve(&self, question: &str, k: usize, id: Option<&str>) -> Vec<&Shot> {
        self.retrieve_unless(question, k, id, |_| false)
    }

    /// The `k` examples to show in the training prompt of the pair (`question`, `sql`) with id
    /// `id`: as [`retrieve`](Self::retrieve), and never an example with the same SQL (up to
    /// layout, [`one_line_sql`]). A generated training split holds several paraphrases of one
    /// query; showing one of them would teach the adapter to copy an example's answer, where
    /// the service's examples are only ever alike.
    pub fn retrieve_for_training(
        &self,
        question: &str,
        sql: &str,
        k: usize,
        id: Option<&str>,
    ) -> Vec<&Shot> {
        let answer = one_line_sql(sql);
        self.retrieve_unless(question, k, id, |s| one_line_sql(&s.sql) == answer)
    }

    /// [`retrieve`](Self::retrieve), also leaving out the examples `skip` picks.
    fn retrieve_unless(
        &self,
        question: &str,
        k: usize,
        id: Option<&str>,
        skip: impl Fn(&Shot) -> bool,
    ) -> Vec<&Shot> {
        let key = words(question).join(" ");
        let id = id.filter(|i| !i.is_empty());
        self.top_k(question, k, |i| {
            let shot = &self.shots[i];
            self.keys[i] == key || id.is_some_and(|id| shot.id == id) || skip(shot)
        })
        .into_iter()
        .map(|i| &self.shots[i])
        .collect()
    }
}

/// Appends the examples of one JSONL file to `shots`.
fn read_shots(path: &Path, shots: &mut Vec<Shot>) -> Result<(), SqlgenError> {
    let file = fs::File::open(path).map_err(|e| SqlgenError::io(path, e))?;
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| SqlgenError::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let shot: Shot =
            serde_json::from_str(&line).map_err(|source| SqlgenError::ExamplesLine {
                path: path.to_path_buf(),
                line: i + 1,
                source,
            })?;
        shots.push(shot);
    }
    Ok(())
}

/// Entity values a retrieved example names that the asked question does not: string literals
/// of an example's SQL written with a capital letter (a product, a person, a department, a
/// title; not a lower-case code such as `'shipped'`, which is a convention worth copying) that
/// the example's own question mentions and `question` does not. An answer holding one has most
/// likely copied it: `'Stand Mixer'` from "…reviews of the Stand Mixer" into "Silver-tier
/// shoppers in Germany" (EVALUATION.md, session 14). Returned as [`value_words`]; [`copied_value`]
/// finds them in a candidate, and [`crate::answer`] prefers a candidate without one.
///
/// A value counts as mentioned when one of its words is in the question, a word of four
/// letters or more by its first four (so a typo, a plural or a possessive still counts).
pub fn foreign_values(question: &str, shots: &[Shot]) -> Vec<String> {
    let asked = value_words(question);
    let mut out: Vec<String> = Vec::new();
    for shot in shots {
        let own = value_words(&shot.question);
        for lit in string_literals(&shot.sql) {
            if !lit.chars().any(char::is_uppercase) {
                continue;
            }
            let value = value_words(&lit);
            if value.is_empty()
                || !mentions(&own, &value)
                || mentions(&asked, &value)
                || out.contains(&value)
            {
                continue;
            }
            out.push(value);
        }
    }
    out
}

/// The first string literal of `sql` that is one of `foreign` ([`foreign_values`]), as written.
pub fn copied_value(sql: &str, foreign: &[String]) -> Option<String> {
    if foreign.is_empty() {
        return None;
    }
    string_literals(sql)
        .into_iter()
        .find(|lit| foreign.contains(&value_words(lit)))
}

/// `text`'s lower-cased runs of letters and digits, joined by single spaces.
pub fn value_words(text: &str) -> String {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether `text` (as [`value_words`]) mentions one of `value`'s words: the same word, or for
/// a word of four letters or more, a word with the same first four.
fn mentions(text: &str, value: &str) -> bool {
    let stem = |w: &str| w.chars().take(4).collect::<String>();
    value.split(' ').any(|v| {
        text.split(' ').any(|t| {
            if v.chars().count() >= 4 {
                t.chars().count() >= 4 && stem(t) == stem(v)
            } else {
                t == v
            }
        })
    })
}

/// Few-shot prompting: `k` retrieved examples from `index` per question (none when `k` is 0).
#[derive(Debug, Clone)]
pub struct FewShot {
    /// The examples to choose from (a training split).
    pub index: Arc<ExampleIndex>,
    /// Examples per prompt.
    pub k: usize,
    /// Where the examples came from (files, in pool order), for reports.
    pub sources: Vec<PathBuf>,
}

impl FewShot {
    /// `k` examples per prompt from `index`.
    pub fn new(index: Arc<ExampleIndex>, k: usize) -> Self {
        FewShot {
            index,
            k,
            sources: Vec::new(),
        }
    }

    /// Checks that `prompts` show retrieved examples at all (a `--prompts` folder whose
    /// `user.jinja` never uses `examples` would silently drop them).
    pub fn check_templates(&self, prompts: &PromptBuilder) -> Result<(), SqlgenError> {
        if self.k > 0 && !prompts.shows_examples()? {
            return Err(SqlgenError::Invalid(
                "the prompt templates do not show retrieved examples: use `examples` in user.jinja (see prompts/README.md), or ask for 0 examples".to_string(),
            ));
        }
        Ok(())
    }

    /// The examples for `question` (its id `id`, when it has one), ready for the prompt:
    /// most similar first, SQL on one line.
    pub fn for_question(&self, question: &str, id: Option<&str>) -> Vec<Shot> {
        self.index
            .retrieve(question, self.k, id)
            .into_iter()
            .map(|s| Shot::new(s.id.clone(), s.question.clone(), one_line_sql(&s.sql)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> ExampleIndex {
        ExampleIndex::new(vec![
            Shot::new("a", "How many customers live in Paris?", "SELECT 1"),
            Shot::new("b", "List the names of all products.", "SELECT 2"),
            Shot::new("c", "How many orders were placed in 2023?", "SELECT 3"),
            Shot::new(
                "d",
                "What is the total amount of orders per customer?",
                "SELECT 4",
            ),
            Shot::new("e", "Which products are out of stock?", "SELECT 5"),
        ])
    }

    #[test]
    fn words_are_lowercased_numbers_are_one_class_and_plurals_merge() {
        assert_eq!(
            words("How many Orders in 2023, e.g. order #17's?"),
            ["how", "many", "order", "in", "<num>", "e", "g", "order", "<num>", "s"]
        );
        assert_eq!(words("class is"), ["class", "is"]);
    }

    #[test]
    fn the_most_similar_question_comes_first() {
        let ix = index();
        let top = ix.top_k("How many orders were placed in 2021?", 3, |_| false);
        assert_eq!(
            top[0],
            2,
            "{:?}",
            ix.scores("How many orders were placed in 2021?")
        );
        assert_eq!(top.len(), 3);
        let top = ix.top_k("names of the products", 2, |_| false);
        assert_eq!(top, [1, 4]);
        // k larger than the index: everything, best first; k = 0: nothing
        assert_eq!(ix.top_k("products", 10, |_| false).len(), 5);
        assert!(ix.top_k("products", 0, |_| false).is_empty());
    }

    #[test]
    fn ties_keep_the_file_order() {
        let ix = ExampleIndex::new(vec![
            Shot::new("x", "alpha beta", "SELECT 1"),
            Shot::new("y", "gamma delta", "SELECT 2"),
            Shot::new("z", "alpha beta", "SELECT 3"),
        ]);
        assert_eq!(ix.top_k("alpha", 3, |_| false), [0, 2, 1]);
        assert_eq!(ix.top_k("nothing in common", 3, |_| false), [0, 1, 2]);
    }

    #[test]
    fn paraphrases_of_one_query_shape_do_not_crowd_the_prompt() {
        let ix = ExampleIndex::new(vec![
            Shot::new(
                "fin",
                "How many current employees in Finance have no phone?",
                "SELECT COUNT(*) FROM employees WHERE dept = 'Finance' AND phone IS NULL",
            ),
            Shot::new(
                "ops",
                "How many current employees in Operations have no phone?",
                "SELECT COUNT(*) FROM employees WHERE dept = 'Operations' AND phone IS NULL",
            ),
            Shot::new(
                "res",
                "How many current employees in Research have no phone?",
                "select count(*) from employees where dept = \"Research\" and phone is null",
            ),
            Shot::new(
                "cnt",
                "How many employees does each department have?",
                "SELECT dept, COUNT(*) FROM employees GROUP BY dept",
            ),
            Shot::new("far", "List every project.", "SELECT name FROM projects"),
        ]);
        let q = "How many current employees in Sales have no phone number?";
        // By score alone the three paraphrases fill the first three places…
        let scores = ix.scores(q);
        assert!(scores[..3].iter().all(|&s| s > scores[3]), "{scores:?}");
        // …but one of them stands for its shape, and the next shapes follow, however far.
        let ids = |v: Vec<&Shot>| v.iter().map(|s| s.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(ix.retrieve(q, 3, None)), ["fin", "cnt", "far"]);
        // With more places than shapes, the paraphrases fill them in their order.
        assert_eq!(ids(ix.retrieve(q, 4, None)), ["fin", "cnt", "far", "ops"]);
        assert_eq!(ix.top_k(q, 5, |_| false), [0, 3, 4, 1, 2]);
    }

    #[test]
    fn the_asked_question_itself_is_never_retrieved() {
        let ix = index();
        let q = "How many orders were placed in 2023?";
        // by its words, whatever the id, the case and the punctuation
        let got = ix.retrieve(&q.to_uppercase().replace('?', ""), 2, Some("other"));
        assert!(got.iter().all(|s| s.id != "c"), "{got:?}");
        // by its id, whatever the words
        let got = ix.retrieve("how many customers live in paris today", 1, Some("a"));
        assert_ne!(got[0].id, "a");
        let got = ix.retrieve("how many customers live in paris today", 1, None);
        assert_eq!(got[0].id, "a");
    }

    #[test]
    fn a_training_prompt_never_shows_its_own_answer() {
        let ix = ExampleIndex::new(vec![
            Shot::new(
                "p1",
                "How many orders are there?",
                "SELECT count(*) FROM orders",
            ),
            Shot::new("p2", "Count the orders.", "SELECT count(*)\n  FROM orders;"),
            Shot::new(
                "c",
                "How many customers are there?",
                "SELECT count(*) FROM customers",
            ),
        ]);
        // A paraphrase with the same query (up to layout) is left out; a similar one is not.
        let got = ix.retrieve_for_training(
            "Number of orders?",
            "SELECT count(*) FROM orders",
            3,
            Some("p3"),
        );
        let ids: Vec<&str> = got.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["c"]);
        // Plain retrieval shows them.
        assert_eq!(ix.retrieve("Number of orders?", 3, Some("p3")).len(), 3);
        // Itself, by id, is left out as well.
        let got = ix.retrieve_for_training("How many orders?", "SELECT 9", 3, Some("p1"));
        assert!(got.iter().all(|s| s.id != "p1"), "{got:?}");
    }

    #[test]
    fn a_malformed_examples_file_names_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("train.jsonl");
        fs::write(
            &p,
            "{\"id\":\"1\",\"question\":\"q one\",\"sql\":\"SELECT 1\",\"db_id\":\"x\"}\n\n{\"question\":\"q two\"}\n",
        )
        .unwrap();
        let err = ExampleIndex::from_jsonl(&p).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("train.jsonl") && msg.contains("line 3"),
            "{msg}"
        );
        assert!(msg.contains("sql"), "{msg}");
        let missing = ExampleIndex::from_jsonl(&dir.path().join("none.jsonl")).unwrap_err();
        assert!(missing.to_string().contains("none.jsonl"), "{missing}");
        fs::write(&p, "{\"question\":\"q one\",\"sql\":\"SELECT 1\"}\n").unwrap();
        let ix = ExampleIndex::from_jsonl(&p).unwrap();
        assert_eq!(ix.shots(), [Shot::new("", "q one", "SELECT 1")]);
    }

    #[test]
    fn templates_that_drop_the_examples_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("system.jinja"), "sys").unwrap();
        fs::write(dir.path().join("user.jinja"), "{{ question }}").unwrap();
        let blind = PromptBuilder::from_dir(dir.path()).unwrap();
        let few = FewShot::new(Arc::new(index()), 2);
        let err = few.check_templates(&blind).unwrap_err().to_string();
        assert!(err.contains("examples"), "{err}");
        assert!(FewShot::new(Arc::new(index()), 0)
            .check_templates(&blind)
            .is_ok());
        assert!(few.check_templates(&PromptBuilder::builtin()).is_ok());
    }

    #[test]
    fn few_shot_puts_the_sql_on_one_line() {
        let ix = ExampleIndex::new(vec![Shot::new(
            "a",
            "count rows",
            "SELECT\n  count(*)\nFROM t;",
        )]);
        let fs = FewShot::new(Arc::new(ix), 2);
        assert_eq!(
            fs.for_question("count the rows", None),
            [Shot::new("a", "count rows", "SELECT count(*) FROM t")]
        );
    }

    #[test]
    fn an_entity_only_an_example_names_is_foreign_to_the_question() {
        let shots = [
            Shot::new(
                "r1",
                "Which customers reviewed the Stand Mixer badly?",
                "SELECT c.name FROM customers c JOIN reviews r ON r.customer_id = c.id \
                 JOIN products p ON p.id = r.product_id WHERE p.name = 'Stand Mixer' \
                 AND r.rating <= 2 AND c.status = 'active'",
            ),
            Shot::new(
                "r2",
                "Orders George Vaughn placed in the UK",
                "SELECT * FROM orders WHERE first_name = 'George' AND last_name = 'Vaughn' \
                 AND country = 'UK' AND note = 'Gift'",
            ),
        ];
        let foreign = foreign_values("Silver-tier shoppers living in Germany", &shots);
        // Capitalised and in the example's question: foreign. 'active' is a lower-case code
        // (a convention), and 'Gift' is not in the example's question.
        assert_eq!(foreign, ["stand mixer", "george", "vaughn", "uk"]);
        // Mentioned by the asked question, even with a typo or in another case: not foreign.
        let foreign = foreign_values("who bought a stand mixr from the uk?", &shots);
        assert_eq!(foreign, ["george", "vaughn"]);
        assert_eq!(
            copied_value(
                "SELECT name FROM customers WHERE tier = 'Silver' AND name LIKE '%George%'",
                &foreign
            ),
            Some("%George%".to_string())
        );
        assert_eq!(
            copied_value("SELECT name FROM customers WHERE tier = 'Silver'", &foreign),
            None
        );
        assert_eq!(copied_value("SELECT 'George'", &[]), None);
    }
}
