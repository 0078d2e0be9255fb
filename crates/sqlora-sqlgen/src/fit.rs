//! Wide schemas: when a database's whole schema would not fit the prompt budget, the prompt
//! shows the columns most relevant to the question.
//!
//! [`ColumnRanking`] scores every column against the question: the question's words
//! ([`crate::retrieve::words`]: lower-cased, plural `s` dropped) that appear in the column's
//! name count twice, in its table's name once, in its sample values once, each weighted by
//! the word's inverse document frequency over the columns (BM25's idf), so a word every column
//! shares (`id`) counts little. Key columns (primary keys and foreign-key columns) are always
//! shown, as is the first column of a table none of whose columns would otherwise be; the
//! rest are shown best first. [`crate::PromptBuilder::prompt_with_examples`] shows as many as
//! fit the budget (a binary search over how many), so a prompt whose whole schema fits is
//! unchanged, byte for byte.
//!
//! Only the prompt is cut: the guard and the schema constraint keep the whole schema, so a
//! query may still name a column the prompt left out (the model may know it from the
//! question or the retrieved examples).

use std::collections::{HashMap, HashSet};

use sqlora_sql::schema::{Schema, Table};

use crate::retrieve::words;

/// The words of an identifier: `CustomerID` → `customer id`, `station_name` → `station name`.
fn name_words(name: &str) -> Vec<String> {
    let mut spaced = String::with_capacity(name.len() + 4);
    let mut prev: Option<char> = None;
    for c in name.chars() {
        if let Some(p) = prev {
            if c.is_uppercase() && p.is_lowercase() {
                spaced.push(' ');
            }
        }
        spaced.push(c);
        prev = Some(c);
    }
    words(&spaced)
}

/// Whether column `col` of `t` is a key: in its primary key or in one of its foreign keys.
fn is_key(t: &Table, col: &str) -> bool {
    t.primary_key.iter().any(|p| p.eq_ignore_ascii_case(col))
        || t.foreign_keys
            .iter()
            .any(|fk| fk.columns.iter().any(|f| f.eq_ignore_ascii_case(col)))
}

/// The columns of a schema ranked by relevance to one question (see the module docs).
#[derive(Debug, Clone)]
pub struct ColumnRanking {
    /// `(table index, column index)` always shown (keys, a table's first column when it
    /// would show none), in schema order.
    always: Vec<(usize, usize)>,
    /// The other columns, most relevant first (ties in schema order).
    ranked: Vec<(usize, usize)>,
}

impl ColumnRanking {
    /// Ranks `schema`'s columns for `question`.
    pub fn new(schema: &Schema, question: &str) -> ColumnRanking {
        let q: HashSet<String> = words(question).into_iter().collect();
        // Document frequency of each question word over the columns' names.
        let mut col_words: Vec<Vec<HashSet<String>>> = Vec::with_capacity(schema.tables.len());
        let mut df: HashMap<&str, usize> = HashMap::new();
        let mut n_cols = 0usize;
        for t in &schema.tables {
            let mut per_table = Vec::with_capacity(t.columns.len());
            for c in &t.columns {
                let ws: HashSet<String> = name_words(&c.name).into_iter().collect();
                for w in q.iter().filter(|w| ws.contains(*w)) {
                    *df.entry(w.as_str()).or_default() += 1;
                }
                per_table.push(ws);
                n_cols += 1;
            }
            col_words.push(per_table);
        }
        let idf = |w: &str| {
            let d = df.get(w).copied().unwrap_or(0) as f64;
            (1.0 + (n_cols as f64 - d + 0.5) / (d + 0.5)).ln()
        };
        let mut always = Vec::new();
        let mut scored: Vec<(f64, usize, usize)> = Vec::new();
        for (ti, t) in schema.tables.iter().enumerate() {
            let table_words: HashSet<String> = name_words(&t.name).into_iter().collect();
            let table_score: f64 = q
                .iter()
                .filter(|w| table_words.contains(*w))
                .map(|w| idf(w))
                .sum();
            let mut any_key = false;
            for (ci, c) in t.columns.iter().enumerate() {
                if is_key(t, &c.name) {
                    always.push((ti, ci));
                    any_key = true;
                    continue;
                }
                let name_score: f64 = q
                    .iter()
                    .filter(|w| col_words[ti][ci].contains(*w))
                    .map(|w| 2.0 * idf(w))
                    .sum();
                let sample_words: HashSet<String> =
                    c.samples.iter().flat_map(|s| words(s)).collect();
                let sample_score: f64 = q
                    .iter()
                    .filter(|w| sample_words.contains(*w))
                    .map(|w| idf(w))
                    .sum();
                let score = name_score
                    + sample_score
                    + if name_score > 0.0 || sample_score > 0.0 {
                        table_score
                    } else {
                        // A table the question names brings its columns up a little even when
                        // none of them is named.
                        table_score / 2.0
                    };
                scored.push((score, ti, ci));
            }
            if !any_key && !t.columns.is_empty() {
                // The table's first column stands in for it, so it is never an empty line.
                if let Some(pos) = scored.iter().position(|&(_, a, b)| (a, b) == (ti, 0)) {
                    scored.remove(pos);
                    always.push((ti, 0));
                }
            }
        }
        always.sort_unstable();
        // Stable: ties keep schema order.
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        ColumnRanking {
            always,
            ranked: scored.into_iter().map(|(_, t, c)| (t, c)).collect(),
        }
    }

    /// How many columns may be left out (those not always shown).
    pub fn optional(&self) -> usize {
        self.ranked.len()
    }

    /// The optional columns, most relevant first, as `(table index, column index)`.
    pub fn ranked(&self) -> &[(usize, usize)] {
        &self.ranked
    }

    /// `schema` showing the always-shown columns and the `k` most relevant others, each table's
    /// columns in declaration order, and how many columns each table leaves out.
    pub fn keep(&self, schema: &Schema, k: usize) -> (Schema, Vec<usize>) {
        let kept: HashSet<(usize, usize)> = self
            .always
            .iter()
            .chain(self.ranked.iter().take(k))
            .copied()
            .collect();
        let mut omitted = Vec::with_capacity(schema.tables.len());
        let tables = schema
            .tables
            .iter()
            .enumerate()
            .map(|(ti, t)| {
                let mut t2 = t.clone();
                t2.columns = t
                    .columns
                    .iter()
                    .enumerate()
                    .filter(|(ci, _)| kept.contains(&(ti, *ci)))
                    .map(|(_, c)| c.clone())
                    .collect();
                omitted.push(t.columns.len() - t2.columns.len());
                t2
            })
            .collect();
        (Schema { tables }, omitted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_split_into_words() {
        assert_eq!(name_words("CustomerID"), ["customer", "id"]);
        assert_eq!(name_words("station_name"), ["station", "name"]);
        assert_eq!(name_words("first name"), ["first", "name"]);
        assert_eq!(name_words("Orders"), ["order"]);
    }
}
