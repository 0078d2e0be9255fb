//! [`SqlConstraint`]: the recognizer as a per-row [`Constraint`] of the decoder.

use std::sync::Arc;

use sqlora_model::constraint::Constraint;
use sqlora_sql::schema::Schema;

use crate::parser::Options;
use crate::state::SqlState;
use crate::vocab::{TokenText, Vocab};
use crate::words::SchemaIndex;
use crate::ConstrainError;

/// The text SQL answers are primed with (the answer starts with it, the model goes on).
pub const DEFAULT_PRIME: &str = "SELECT";

/// A token is allowed when the text so far plus the token's bytes is still a valid prefix of
/// one read-only statement over the schema; an end-of-sequence token when the text is a
/// complete statement.
#[derive(Clone, Debug)]
pub struct SqlConstraint {
    state: SqlState,
    vocab: Arc<Vocab>,
    /// A token that was not allowed was accepted: nothing but the end is allowed now.
    broken: bool,
}

impl SqlConstraint {
    /// A constraint over `schema` for an answer whose text so far is `generated` (usually
    /// [`DEFAULT_PRIME`]).
    pub fn new(
        schema: &Schema,
        vocab: Arc<Vocab>,
        generated: &str,
    ) -> Result<SqlConstraint, ConstrainError> {
        SqlConstraint::with_index(
            SchemaIndex::new(schema),
            vocab,
            generated,
            Options::default(),
        )
    }

    /// [`new`](Self::new) with a schema index built once for many rows, and options.
    pub fn with_index(
        index: Arc<SchemaIndex>,
        vocab: Arc<Vocab>,
        generated: &str,
        opts: Options,
    ) -> Result<SqlConstraint, ConstrainError> {
        let mut state = SqlState::with_options(index, opts);
        if !state.feed_str(generated) {
            return Err(ConstrainError::InvalidPrefix(generated.to_string()));
        }
        Ok(SqlConstraint {
            state,
            vocab,
            broken: false,
        })
    }

    /// The recognizer's state after the text so far.
    pub fn state(&self) -> &SqlState {
        &self.state
    }
}

impl Constraint for SqlConstraint {
    fn allows(&self, token: u32) -> bool {
        if self.broken {
            return matches!(self.vocab.get(token), Some(TokenText::End));
        }
        match self.vocab.get(token) {
            Some(TokenText::End) => self.state.can_end(),
            Some(TokenText::Bytes(bytes)) => {
                let info = self.vocab.info(token);
                if self.state.in_string() && !info.quote {
                    return true;
                }
                if self.state.is_ended() {
                    return info.space;
                }
                let mut s = self.state.clone();
                s.feed_bytes(bytes)
            }
            Some(TokenText::Never) | None => false,
        }
    }

    fn accept(&mut self, token: u32) {
        if self.broken {
            return;
        }
        let alive = match self.vocab.get(token) {
            Some(TokenText::End) => self.state.can_end(),
            Some(TokenText::Bytes(bytes)) => self.state.feed_bytes(bytes),
            Some(TokenText::Never) | None => false,
        };
        if !alive {
            self.broken = true;
        }
    }

    fn boxed_clone(&self) -> Box<dyn Constraint> {
        Box::new(self.clone())
    }
}
