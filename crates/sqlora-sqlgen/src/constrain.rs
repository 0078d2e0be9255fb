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
    /// A fresh constraint for one generated row.
    pub fn row(&self) -> Result<Box<dyn Constraint>> {
        let c = SqlConstraint::with_index(
            self.index.clone(),
            self.vocab.clone(),
            self.prime,
            sqlora_constrain::Options::default(),
        )?;
        Ok(Box::new(c))
    }

    /// `n` fresh constraints, one per row.
    pub fn rows(&self, n: usize) -> Result<Vec<Option<Box<dyn Constraint>>>> {
        (0..n).map(|_| self.row().map(Some)).collect()
    }
}
