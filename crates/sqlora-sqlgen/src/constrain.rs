//! Schema-constrained decoding in the pipeline: `ask`, `eval`, `/v1/query` and the trainer's
//! dev EX give every generated row a [`SqlConstraint`] over its database's schema, so an
//! answer can only be (a prefix of) one read-only SQLite statement whose tables and columns
//! exist (see `sqlora_constrain` for the grammar and what it guarantees).
//!
//! [`Constrainer`] holds what depends on the model only (the tokenizer's vocabulary, decoded
//! once); [`SchemaConstraints`] what depends on the database too (the schema index, built once
//! per database); [`SchemaConstraints::row`] makes one row's constraint. The answer prime
//! (`SELECT`, when the prompt is primed) is fed to the constraint first, so the constraint
//! continues where the prompt left off.

use std::sync::Arc;

use sqlora_constrain::{SchemaIndex, SqlConstraint, Vocab};
use sqlora_model::constraint::Constraint;
use sqlora_model::LoadedModel;
use sqlora_sql::schema::Schema;

use crate::error::Result;
use crate::prompt::prime;

/// Constrained decoding for one model: its vocabulary as bytes, decoded once.
#[derive(Debug, Clone)]
pub struct Constrainer {
    vocab: Arc<Vocab>,
}

impl Constrainer {
    /// The constrainer of `model` (decodes every token of its vocabulary).
    pub fn new(model: &LoadedModel) -> Constrainer {
        Constrainer {
            vocab: Arc::new(Vocab::from_tokenizer(&model.tokenizer)),
        }
    }

    /// Constraints over `schema` for answers that start with [`prime`]`(primed)`.
    pub fn for_schema(&self, schema: &Schema, primed: bool) -> SchemaConstraints {
        SchemaConstraints {
            index: SchemaIndex::new(schema),
            vocab: self.vocab.clone(),
            prime: prime(primed),
        }
    }
}

/// Constraints over one database's schema (its index built once).
#[derive(Debug, Clone)]
pub struct SchemaConstraints {
    index: Arc<SchemaIndex>,
    vocab: Arc<Vocab>,
    prime: &'static str,
}

impl SchemaConstraints {
    /// A fresh constraint for one generated row: valid SQL over the schema
    /// ([`SqlConstraint`]) that does not loop ([`NoLoop`]).
    pub fn row(&self) -> Result<Box<dyn Constraint>> {
        let c = SqlConstraint::with_index(
            self.index.clone(),
            self.vocab.clone(),
            self.prime,
            sqlora_constrain::Options::default(),
        )?;
        Ok(Box::new(NoLoop::new(c)))
    }

    /// `n` fresh constraints, one per row.
    pub fn rows(&self, n: usize) -> Result<Vec<Option<Box<dyn Constraint>>>> {
        (0..n).map(|_| self.row().map(Some)).collect()
    }
}

/// Token runs [`NoLoop`] looks at: a run of this many tokens may occur at most
/// [`LOOP_MAX_SEEN`] times in one answer.
pub const LOOP_NGRAM: usize = 16;

/// How often one [`LOOP_NGRAM`]-token run may occur in an answer; the token that would make
/// it occur once more is refused.
pub const LOOP_MAX_SEEN: u32 = 2;

/// A row's constraint that also refuses the token that would repeat a 16-token run of the
/// answer a third time: a model caught in a loop (the same `AND` conditions over and over, a
/// number literal of 90 digits, a subquery that copies its parent again and again) is made to
/// leave it while the statement can still end, instead of running to its token budget with
/// an unfinished statement. Long runs repeated once are common in real SQL (a subquery that
/// repeats its parent's joins) and stay allowed; a third copy of 16 tokens is not. Like
/// `no_repeat_ngram_size` in Hugging Face's generation, with a count. End-of-sequence tokens
/// are the inner constraint's alone to judge.
#[derive(Debug, Clone)]
pub struct NoLoop<C> {
    inner: C,
    /// The tokens accepted so far.
    tokens: Vec<u32>,
    /// How often each [`LOOP_NGRAM`]-token run occurred.
    seen: std::collections::HashMap<Vec<u32>, u32>,
}

impl<C: Constraint> NoLoop<C> {
    /// `inner` with the loop check.
    pub fn new(inner: C) -> NoLoop<C> {
        NoLoop {
            inner,
            tokens: Vec::new(),
            seen: std::collections::HashMap::new(),
        }
    }

    /// Whether `token` would make the last run occur more than [`LOOP_MAX_SEEN`] times.
    fn loops(&self, token: u32) -> bool {
        let n = self.tokens.len();
        if n + 1 < LOOP_NGRAM || self.seen.is_empty() {
            return false;
        }
        let mut run = self.tokens[n + 1 - LOOP_NGRAM..].to_vec();
        run.push(token);
        self.seen.get(&run).is_some_and(|&k| k >= LOOP_MAX_SEEN)
    }
}

impl<C: Constraint + Clone + 'static> Constraint for NoLoop<C> {
    fn allows(&self, token: u32) -> bool {
        self.inner.allows(token) && !self.loops(token)
    }

    fn accept(&mut self, token: u32) {
        self.inner.accept(token);
        self.tokens.push(token);
        let n = self.tokens.len();
        if n >= LOOP_NGRAM {
            *self
                .seen
                .entry(self.tokens[n - LOOP_NGRAM..].to_vec())
                .or_insert(0) += 1;
        }
    }

    fn boxed_clone(&self) -> Box<dyn Constraint> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Allows every token (the grammar is not the point here).
    #[derive(Debug, Clone)]
    struct Any;

    impl Constraint for Any {
        fn allows(&self, _: u32) -> bool {
            true
        }
        fn accept(&mut self, _: u32) {}
        fn boxed_clone(&self) -> Box<dyn Constraint> {
            Box::new(Any)
        }
    }

    #[test]
    fn a_run_may_occur_twice_and_the_token_of_a_third_copy_is_refused() {
        let cycle: Vec<u32> = (100..100 + LOOP_NGRAM as u32).collect();
        let mut c = NoLoop::new(Any);
        // Twice through the cycle, then the third copy up to its last token.
        let walk: Vec<u32> = cycle
            .iter()
            .chain(&cycle)
            .chain(&cycle[..LOOP_NGRAM - 1])
            .copied()
            .collect();
        for &t in &walk {
            assert!(c.allows(t), "refused {t} too early");
            c.accept(t);
        }
        let last = cycle[LOOP_NGRAM - 1];
        assert!(!c.allows(last), "the third copy of a 16-token run");
        assert!(c.allows(7), "anything else goes");
        // Its clone (beam search) remembers the runs.
        assert!(!c.boxed_clone().allows(last));
    }

    #[test]
    fn a_short_loop_is_caught_once_a_16_token_window_recurs_twice() {
        let mut c = NoLoop::new(Any);
        for _ in 0..200 {
            // A 3-token pattern repeated: a 16-token window of it recurs every 3 tokens, so
            // the token that would complete its third copy is the (16 + 2 * 3)th.
            for t in [1, 2, 3] {
                if !c.allows(t) {
                    assert_eq!(c.tokens.len() + 1, LOOP_NGRAM + 2 * 3);
                    return;
                }
                c.accept(t);
            }
        }
        panic!("a 3-token loop ran 600 tokens");
    }
}
