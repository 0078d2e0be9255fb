//! [`SqlConstraint`]: the recognizer as a per-row [`Constraint`] of the decoder.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use sqlora_model::constraint::Constraint;
use sqlora_sql::schema::Schema;

use crate::parser::{Expect, Options};
use crate::state::{is_word_byte, SqlState};
use crate::vocab::{TokenText, Vocab};
use crate::words::SchemaIndex;
use crate::ConstrainError;

/// The text SQL answers are primed with (the answer starts with it, the model goes on).
pub const DEFAULT_PRIME: &str = "SELECT";

/// After this many `allows` calls at one position the whole vocabulary is decided at once
/// (sampling asks about every token; a greedy step usually about one or two). One call costs
/// 1–4 µs and the whole-vocabulary walk 0.5–110 ms on a 151,936-token vocabulary, so a greedy
/// step whose favourite few hundred tokens are refused still asks one by one.
pub const MASK_AFTER: u32 = 512;

/// A token is allowed when the text so far plus the token's bytes is still a valid prefix of
/// one read-only statement over the schema; an end-of-sequence token when the text is a
/// complete statement (after `;` or a blank line, only whitespace tokens and the end).
///
/// `allows` clones the recognizer's state and feeds it the token's bytes (a token inside a
/// string literal without a `'` needs nothing); after [`MASK_AFTER`] calls at one position
/// (sampling asks about every token) it decides the whole vocabulary at once
/// ([`allowed_mask`](Self::allowed_mask)) and answers from that. If a token that was not
/// allowed is accepted anyway, only the end-of-sequence tokens are allowed from then on.
#[derive(Debug)]
pub struct SqlConstraint {
    state: SqlState,
    vocab: Arc<Vocab>,
    /// A token that was not allowed was accepted: nothing but the end is allowed now.
    broken: bool,
    /// `allows` calls since the last `accept`.
    asked: AtomicU32,
    /// Every token's answer at this position, once asked about many.
    mask: OnceLock<Box<[u64]>>,
}

impl Clone for SqlConstraint {
    fn clone(&self) -> SqlConstraint {
        SqlConstraint {
            state: self.state.clone(),
            vocab: self.vocab.clone(),
            broken: self.broken,
            asked: AtomicU32::new(self.asked.load(Ordering::Relaxed)),
            mask: self.mask.clone(),
        }
    }
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
            asked: AtomicU32::new(0),
            mask: OnceLock::new(),
        })
    }

    /// Whether each token of the vocabulary is allowed here (bit `id % 64` of word
    /// `id / 64`), decided by walking the vocabulary's tokens in byte order: the state after
    /// a common prefix is computed once for every token under it, and a dead prefix rules
    /// them all out at once.
    pub fn allowed_mask(&self) -> Box<[u64]> {
        let n = self.vocab.len();
        let mut mask = vec![0u64; n.div_ceil(64)].into_boxed_slice();
        let mut set = |id: u32| mask[id as usize / 64] |= 1 << (id % 64);
        if self.broken || self.state.is_ended() || self.state.in_string() {
            for id in 0..n as u32 {
                if self.allows_one(id) {
                    set(id);
                }
            }
            return mask;
        }
        for id in 0..n as u32 {
            if !matches!(self.vocab.get(id), Some(TokenText::Bytes(_))) && self.allows_one(id) {
                set(id);
            }
        }
        let sorted = self.vocab.sorted();
        walk(&self.vocab, sorted, 0, &self.state, &mut set);
        mask
    }

    /// The recognizer's state after the text so far.
    pub fn state(&self) -> &SqlState {
        &self.state
    }

    /// `allows` for one token, without the mask.
    fn allows_one(&self, token: u32) -> bool {
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
}

/// [`walk`] inside a word: the letters of a word only change the word, so `base` (the state
/// where the word began) is not copied until the word ends.
fn walk_word(
    vocab: &Vocab,
    ids: &[u32],
    depth: usize,
    base: &SqlState,
    word: &mut Vec<u8>,
    e: &Arc<Expect>,
    set: &mut impl FnMut(u32),
) {
    let mut i = 0;
    while i < ids.len() && vocab.bytes(ids[i]).len() == depth {
        set(ids[i]);
        i += 1;
    }
    while i < ids.len() {
        let b = vocab.bytes(ids[i])[depth];
        let end = i + ids[i..].partition_point(|&id| vocab.bytes(id)[depth] <= b);
        if is_word_byte(b) {
            word.push(b.to_ascii_lowercase());
            if base.word_ok(e, word) {
                walk_word(vocab, &ids[i..end], depth + 1, base, word, e, set);
            }
            word.pop();
        } else {
            let mut s = base.with_word(word.clone(), e.clone());
            if s.feed_bytes(&[b]) {
                walk(vocab, &ids[i..end], depth + 1, &s, set);
            }
        }
        i = end;
    }
}

/// Marks the tokens of `ids` (sorted by bytes, all sharing their first `depth` bytes, which
/// `state` has read) that keep `state` alive.
fn walk(vocab: &Vocab, ids: &[u32], depth: usize, state: &SqlState, set: &mut impl FnMut(u32)) {
    if let Some((word, e)) = state.word() {
        let (mut word, e) = (word.to_vec(), e.clone());
        return walk_word(vocab, ids, depth, state, &mut word, &e, set);
    }
    let mut i = 0;
    // Tokens that end here: the state read them whole.
    while i < ids.len() && vocab.bytes(ids[i]).len() == depth {
        set(ids[i]);
        i += 1;
    }
    while i < ids.len() {
        let b = vocab.bytes(ids[i])[depth];
        let end = i + ids[i..].partition_point(|&id| vocab.bytes(id)[depth] <= b);
        let mut s = state.clone();
        if s.feed_bytes(&[b]) {
            walk(vocab, &ids[i..end], depth + 1, &s, set);
        }
        i = end;
    }
}

impl Constraint for SqlConstraint {
    fn allows(&self, token: u32) -> bool {
        if let Some(mask) = self.mask.get() {
            return mask
                .get(token as usize / 64)
                .is_some_and(|w| w & (1 << (token % 64)) != 0);
        }
        if self.asked.fetch_add(1, Ordering::Relaxed) < MASK_AFTER {
            return self.allows_one(token);
        }
        let mask = self.mask.get_or_init(|| self.allowed_mask());
        mask.get(token as usize / 64)
            .is_some_and(|w| w & (1 << (token % 64)) != 0)
    }

    fn accept(&mut self, token: u32) {
        self.asked = AtomicU32::new(0);
        self.mask = OnceLock::new();
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
