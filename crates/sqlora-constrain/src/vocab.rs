//! The tokenizer's vocabulary as the constraint needs it: each id's raw bytes, which ids end
//! a sequence, and a little precomputed per token.

use sqlora_model::tokenizer::Tokenizer;

/// What one token id stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenText {
    /// Text: the token's raw bytes (a piece of a multi-byte character is not valid UTF-8 on
    /// its own).
    Bytes(Box<[u8]>),
    /// An end-of-sequence token (`<|im_end|>`, `<|endoftext|>`): allowed once the statement
    /// is complete.
    End,
    /// Any other special token, or an empty one: never allowed.
    Never,
}

fn bytes_of(tokens: &[TokenText], id: u32) -> &[u8] {
    match tokens.get(id as usize) {
        Some(TokenText::Bytes(b)) => b,
        _ => &[],
    }
}

/// Per token: what is cheap to know before any state is asked about it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TokenInfo {
    /// The token holds a `'` (inside a string literal, a token without one is always fine).
    pub quote: bool,
    /// The token is all whitespace.
    pub space: bool,
}

/// Every token id's [`TokenText`], shared by every constrained row of a model.
#[derive(Clone, Debug)]
pub struct Vocab {
    tokens: Vec<TokenText>,
    info: Vec<TokenInfo>,
    /// The ids of the text tokens sorted by their bytes: a trie without nodes (the tokens
    /// under a prefix are a range), walked by [`crate::SqlConstraint`] to decide the whole
    /// vocabulary at once, one state per live prefix instead of one per token.
    sorted: Vec<u32>,
}

impl Vocab {
    /// A vocabulary from each id's bytes (`None`: a special token) and the end-of-sequence ids.
    pub fn from_parts(bytes: Vec<Option<Vec<u8>>>, end_ids: &[u32]) -> Vocab {
        let tokens: Vec<TokenText> = bytes
            .into_iter()
            .enumerate()
            .map(|(id, b)| {
                if end_ids.contains(&(id as u32)) {
                    TokenText::End
                } else {
                    match b {
                        Some(b) if !b.is_empty() => TokenText::Bytes(b.into_boxed_slice()),
                        _ => TokenText::Never,
                    }
                }
            })
            .collect();
        let info = tokens
            .iter()
            .map(|t| match t {
                TokenText::Bytes(b) => TokenInfo {
                    quote: b.contains(&b'\''),
                    space: b.iter().all(u8::is_ascii_whitespace),
                },
                _ => TokenInfo::default(),
            })
            .collect();
        let mut sorted: Vec<u32> = (0..tokens.len() as u32)
            .filter(|&id| matches!(tokens[id as usize], TokenText::Bytes(_)))
            .collect();
        sorted.sort_by(|&a, &b| bytes_of(&tokens, a).cmp(bytes_of(&tokens, b)));
        Vocab {
            tokens,
            info,
            sorted,
        }
    }

    /// The vocabulary of a byte-level BPE tokenizer (Qwen2, SmolLM2): every token's raw bytes
    /// ([`Tokenizer::vocab_bytes`]), its end-of-sequence ids ([`Tokenizer::eos_token_ids`]).
    pub fn from_tokenizer(tokenizer: &Tokenizer) -> Vocab {
        Vocab::from_parts(tokenizer.vocab_bytes(), &tokenizer.eos_token_ids())
    }

    /// The number of ids.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether there are no ids.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// What `id` stands for; `None` outside the vocabulary.
    pub fn get(&self, id: u32) -> Option<&TokenText> {
        self.tokens.get(id as usize)
    }

    /// The text tokens' ids, sorted by their bytes.
    pub(crate) fn sorted(&self) -> &[u32] {
        &self.sorted
    }

    /// The bytes of `id` (empty for a special token).
    pub(crate) fn bytes(&self, id: u32) -> &[u8] {
        bytes_of(&self.tokens, id)
    }

    pub(crate) fn info(&self, id: u32) -> TokenInfo {
        self.info.get(id as usize).copied().unwrap_or_default()
    }
}
