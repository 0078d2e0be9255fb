//! The tokenizer: a byte-level BPE [`tokenizers::Tokenizer`] built from a GGUF file's
//! `tokenizer.ggml.*` metadata, or loaded from a Hugging Face `tokenizer.json`.
//!
//! For GGUF files with `tokenizer.ggml.model = gpt2` the tokenizer is rebuilt the way the
//! original Hugging Face `tokenizer.json` describes it: the vocabulary and merges from the
//! file, every *control* token (`token_type == 3`, e.g. `<|im_start|>`) as a special added
//! token (so the literal string in a prompt maps to its id), the pre-tokenizer named by
//! `tokenizer.ggml.pre` (for `qwen2`: NFC normalisation and Qwen2's split regex, in which every
//! digit is a piece of its own), and a byte-level decoder.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{Merges, Vocab, BPE};
use tokenizers::normalizers::{NormalizerWrapper, NFC};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{AddedToken, SplitDelimiterBehavior};

use crate::error::{ModelError, Result};

/// GGUF `token_type` of a control token (llama.cpp's `LLAMA_TOKEN_TYPE_CONTROL`).
const TOKEN_TYPE_CONTROL: i64 = 3;
/// GGUF `token_type` of a user-defined token (`LLAMA_TOKEN_TYPE_USER_DEFINED`).
const TOKEN_TYPE_USER_DEFINED: i64 = 4;

/// Token strings that end a turn or a document in the chat models we support; when present in
/// the vocabulary they are treated as end-of-sequence in addition to the declared eos token.
const END_TOKENS: &[&str] = &[
    "<|im_end|>",
    "<|endoftext|>",
    "<|eot_id|>",
    "<|end_of_text|>",
];

/// A text tokenizer together with the model's special-token conventions.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    bos_token: Option<String>,
    eos_token: Option<String>,
    pad_token_id: u32,
    eos_ids: Vec<u32>,
    /// Prepend `bos_token` when encoding with `add_special_tokens = true` (GGUF
    /// `tokenizer.ggml.add_bos_token`; a `tokenizer.json` handles this in its post-processor).
    add_bos: Option<u32>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .field("pad_token_id", &self.pad_token_id)
            .field("eos_ids", &self.eos_ids)
            .finish()
    }
}

fn tok_err(e: impl std::fmt::Display) -> ModelError {
    ModelError::Tokenizer(e.to_string())
}

fn meta<'a>(content: &'a Content, key: &str) -> Option<&'a Value> {
    content.metadata.get(key)
}

fn meta_u32(content: &Content, key: &str) -> Result<Option<u32>> {
    match meta(content, key) {
        None => Ok(None),
        Some(v) => value_to_i64(v)
            .and_then(|x| u32::try_from(x).ok())
            .map(Some)
            .ok_or_else(|| ModelError::Format(format!("gguf metadata {key} is not a token id"))),
    }
}

fn meta_bool(content: &Content, key: &str) -> Option<bool> {
    match meta(content, key) {
        Some(Value::Bool(b)) => Some(*b),
        Some(v) => value_to_i64(v).map(|x| x != 0),
        None => None,
    }
}

fn meta_string<'a>(content: &'a Content, key: &str) -> Result<Option<&'a str>> {
    match meta(content, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(ModelError::Format(format!(
            "gguf metadata {key} is not a string"
        ))),
    }
}

fn meta_string_array(content: &Content, key: &str) -> Result<Vec<String>> {
    let v = meta(content, key)
        .ok_or_else(|| ModelError::Format(format!("gguf metadata {key} is missing")))?;
    let Value::Array(items) = v else {
        return Err(ModelError::Format(format!(
            "gguf metadata {key} is not an array"
        )));
    };
    items
        .iter()
        .map(|item| match item {
            Value::String(s) => Ok(s.clone()),
            _ => Err(ModelError::Format(format!(
                "gguf metadata {key} holds a non-string"
            ))),
        })
        .collect()
}

fn value_to_i64(v: &Value) -> Option<i64> {
    Some(match v {
        Value::U8(x) => i64::from(*x),
        Value::I8(x) => i64::from(*x),
        Value::U16(x) => i64::from(*x),
        Value::I16(x) => i64::from(*x),
        Value::U32(x) => i64::from(*x),
        Value::I32(x) => i64::from(*x),
        Value::U64(x) => i64::try_from(*x).ok()?,
        Value::I64(x) => *x,
        _ => return None,
    })
}

/// Qwen2's split regex (its `tokenizer.json`, and llama.cpp's `qwen2` pre-tokenizer):
/// contractions, letters with at most one leading non-letter/non-digit, single digits, runs of
/// punctuation with trailing newlines, newline runs, whitespace.
pub const QWEN2_SPLIT_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The normalizer and pre-tokenizer for a GGUF `tokenizer.ggml.pre` name (llama.cpp's names).
///
/// `smollm` (and the other StarCoder-family names) split every digit on its own before the
/// GPT-2 byte-level regex, exactly like SmolLM2's `tokenizer.json`:
/// `Sequence[Digits(individual_digits=true), ByteLevel(add_prefix_space=false)]`.
///
/// `qwen2` is Qwen2's `tokenizer.json`: NFC, then
/// `Sequence[Split(QWEN2_SPLIT_REGEX, isolated), ByteLevel(add_prefix_space=false, use_regex=false)]`.
fn pre_tokenizer_for(pre: &str) -> Result<(Option<NormalizerWrapper>, PreTokenizerWrapper)> {
    let byte_level = ByteLevel::new(false, true, true);
    match pre {
        "smollm" | "starcoder" | "refact" | "codeshell" => Ok((
            None,
            Sequence::new(vec![
                PreTokenizerWrapper::Digits(Digits::new(true)),
                PreTokenizerWrapper::ByteLevel(byte_level),
            ])
            .into(),
        )),
        "qwen2" | "deepseek-r1-qwen" => {
            let split = Split::new(
                SplitPattern::Regex(QWEN2_SPLIT_REGEX.to_string()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .map_err(tok_err)?;
            Ok((
                Some(NFC.into()),
                Sequence::new(vec![
                    PreTokenizerWrapper::Split(split),
                    PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, false, false)),
                ])
                .into(),
            ))
        }
        "gpt-2" | "gpt2" | "default" => Ok((None, byte_level.into())),
        other => Err(ModelError::Unsupported(format!(
            "GGUF tokenizer pre-tokenizer {other:?} (supported: qwen2, deepseek-r1-qwen, smollm, starcoder, refact, codeshell, gpt-2, default)"
        ))),
    }
}

impl Tokenizer {
    /// Builds the tokenizer from a GGUF file's metadata (`tokenizer.ggml.model = gpt2` only).
    pub fn from_gguf(content: &Content) -> Result<Tokenizer> {
        let model = meta_string(content, "tokenizer.ggml.model")?.unwrap_or("");
        if model != "gpt2" {
            return Err(ModelError::Unsupported(format!(
                "GGUF tokenizer model {model:?} (only byte-level BPE \"gpt2\" is supported)"
            )));
        }
        let tokens = meta_string_array(content, "tokenizer.ggml.tokens")?;
        let merges_raw = meta_string_array(content, "tokenizer.ggml.merges")?;
        let token_types: Vec<i64> = match meta(content, "tokenizer.ggml.token_type") {
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    value_to_i64(v).ok_or_else(|| {
                        ModelError::Format(
                            "gguf tokenizer.ggml.token_type holds a non-integer".into(),
                        )
                    })
                })
                .collect::<Result<_>>()?,
            Some(_) => {
                return Err(ModelError::Format(
                    "gguf tokenizer.ggml.token_type is not an array".into(),
                ))
            }
            None => vec![1; tokens.len()],
        };
        if token_types.len() != tokens.len() {
            return Err(ModelError::Format(format!(
                "gguf tokenizer has {} tokens but {} token types",
                tokens.len(),
                token_types.len()
            )));
        }
        let n = u32::try_from(tokens.len())
            .map_err(|_| ModelError::Format("gguf vocabulary is too large".into()))?;

        let vocab: Vocab = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let mut merges: Merges = Vec::with_capacity(merges_raw.len());
        for m in &merges_raw {
            let (a, b) = m.split_once(' ').ok_or_else(|| {
                ModelError::Format(format!(
                    "gguf merge {m:?} is not two space-separated tokens"
                ))
            })?;
            merges.push((a.to_string(), b.to_string()));
        }
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(tok_err)?;

        let pre = meta_string(content, "tokenizer.ggml.pre")?.unwrap_or("default");
        let (normalizer, pre_tokenizer) = pre_tokenizer_for(pre)?;
        let mut inner = tokenizers::Tokenizer::new(bpe);
        inner.with_normalizer(normalizer);
        inner.with_pre_tokenizer(Some(pre_tokenizer));
        inner.with_post_processor(Some(ByteLevel::new(true, false, true)));
        inner.with_decoder(Some(ByteLevelDecoder::new(true, true, true)));

        let mut specials = Vec::new();
        let mut user_defined = Vec::new();
        for (tok, ty) in tokens.iter().zip(&token_types) {
            match *ty {
                TOKEN_TYPE_CONTROL => specials.push(AddedToken::from(tok.clone(), true)),
                TOKEN_TYPE_USER_DEFINED => {
                    user_defined.push(AddedToken::from(tok.clone(), false).normalized(false))
                }
                _ => {}
            }
        }
        inner.add_special_tokens(&specials);
        inner.add_tokens(&user_defined);

        let id_str = |key: &str| -> Result<Option<(u32, String)>> {
            match meta_u32(content, key)? {
                None => Ok(None),
                Some(id) if id < n => Ok(Some((id, tokens[id as usize].clone()))),
                Some(id) => Err(ModelError::Format(format!(
                    "gguf {key} = {id} is outside the vocabulary of {n} tokens"
                ))),
            }
        };
        let bos = id_str("tokenizer.ggml.bos_token_id")?;
        let eos = id_str("tokenizer.ggml.eos_token_id")?;
        let pad = id_str("tokenizer.ggml.padding_token_id")?;
        let add_bos = if meta_bool(content, "tokenizer.ggml.add_bos_token").unwrap_or(false) {
            bos.as_ref().map(|(id, _)| *id)
        } else {
            None
        };
        Ok(Tokenizer::assemble(
            inner,
            bos.map(|(_, s)| s),
            eos.map(|(_, s)| s),
            pad.map(|(id, _)| id),
            add_bos,
        ))
    }

    /// Loads a Hugging Face `tokenizer.json`. When a `tokenizer_config.json` lies next to it,
    /// its `bos_token`, `eos_token` and `pad_token` are used.
    pub fn from_file(tokenizer_json: &Path) -> Result<Tokenizer> {
        let inner = tokenizers::Tokenizer::from_file(tokenizer_json).map_err(|e| {
            ModelError::Tokenizer(format!("reading {}: {e}", tokenizer_json.display()))
        })?;
        let config_path = tokenizer_json.with_file_name("tokenizer_config.json");
        let config: serde_json::Value = if config_path.is_file() {
            let text = std::fs::read_to_string(&config_path)
                .map_err(|e| ModelError::io(&config_path, e))?;
            serde_json::from_str(&text).map_err(|e| {
                ModelError::malformed(format!("{} is not valid JSON", config_path.display()), e)
            })?
        } else {
            serde_json::Value::Null
        };
        let bos = special_token_from_config(&config, "bos_token");
        let eos = special_token_from_config(&config, "eos_token");
        let pad =
            special_token_from_config(&config, "pad_token").and_then(|p| inner.token_to_id(&p));
        Ok(Tokenizer::assemble(inner, bos, eos, pad, None))
    }

    fn assemble(
        inner: tokenizers::Tokenizer,
        bos_token: Option<String>,
        eos_token: Option<String>,
        pad_id: Option<u32>,
        add_bos: Option<u32>,
    ) -> Tokenizer {
        let mut eos_ids = Vec::new();
        if let Some(id) = eos_token.as_deref().and_then(|t| inner.token_to_id(t)) {
            eos_ids.push(id);
        }
        for t in END_TOKENS {
            if let Some(id) = inner.token_to_id(t) {
                if !eos_ids.contains(&id) {
                    eos_ids.push(id);
                }
            }
        }
        let pad_token_id = pad_id.or_else(|| eos_ids.first().copied()).unwrap_or(0);
        Tokenizer {
            inner,
            bos_token,
            eos_token,
            pad_token_id,
            eos_ids,
            add_bos,
        }
    }

    /// Token ids of `text`. Special-token strings in the text (`<|im_start|>`) map to their
    /// ids. With `add_special_tokens` the model's bos token is prepended where the model asks
    /// for it (SmolLM2 does not).
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode_fast(text, add_special_tokens)
            .map_err(tok_err)?;
        let ids = enc.get_ids();
        match self.add_bos {
            Some(bos) if add_special_tokens && ids.first() != Some(&bos) => {
                let mut out = Vec::with_capacity(ids.len() + 1);
                out.push(bos);
                out.extend_from_slice(ids);
                Ok(out)
            }
            _ => Ok(ids.to_vec()),
        }
    }

    /// The text of `ids`; with `skip_special_tokens` the special tokens are left out.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        self.inner.decode(ids, skip_special_tokens).map_err(tok_err)
    }

    /// The id of a token string (vocabulary or added token).
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The token string of an id.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Ids that end generation: the eos token plus `<|im_end|>` / `<|endoftext|>` (and
    /// similar end-of-turn tokens) where the vocabulary has them.
    pub fn eos_token_ids(&self) -> Vec<u32> {
        self.eos_ids.clone()
    }

    /// The bos token string, if the model declares one.
    pub fn bos_token(&self) -> Option<String> {
        self.bos_token.clone()
    }

    /// The eos token string, if the model declares one.
    pub fn eos_token(&self) -> Option<String> {
        self.eos_token.clone()
    }

    /// The id used to pad batches (the declared pad token, else eos, else 0).
    pub fn pad_token_id(&self) -> u32 {
        self.pad_token_id
    }

    /// Number of ids, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The wrapped `tokenizers` tokenizer.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// The raw bytes of every id's token, indexed by id (length [`vocab_size`](Self::vocab_size)):
    /// a byte-level BPE token's text is spelled in GPT-2's byte alphabet ([`byte_to_unicode`]),
    /// so `"Ġcust"` is the bytes `b" cust"`, and a piece of a multi-byte character is the bytes it
    /// stands for (not valid UTF-8 on its own). Added tokens (special or user-defined, such as
    /// `<|im_end|>`), ids without a token and tokens spelled outside the byte alphabet are
    /// `None`.
    pub fn vocab_bytes(&self) -> Vec<Option<Vec<u8>>> {
        let table: HashMap<char, u8> = byte_to_unicode().into_iter().map(|(b, c)| (c, b)).collect();
        let added = self.inner.get_added_tokens_decoder();
        (0..self.vocab_size() as u32)
            .map(|id| {
                if added.contains_key(&id) {
                    return None;
                }
                let text = self.inner.id_to_token(id)?;
                text.chars().map(|c| table.get(&c).copied()).collect()
            })
            .collect()
    }
}

/// `bos_token` etc. in a `tokenizer_config.json`: a string or an `AddedToken` object.
fn special_token_from_config(config: &serde_json::Value, key: &str) -> Option<String> {
    match config.get(key)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o.get("content")?.as_str().map(str::to_string),
        _ => None,
    }
}

/// GPT-2's byte → printable character table (used by byte-level BPE vocabularies).
pub fn byte_to_unicode() -> HashMap<u8, char> {
    let mut bs: Vec<u32> = (b'!' as u32..=b'~' as u32)
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut cs = bs.clone();
    let mut extra = 0;
    for b in 0..=255u32 {
        if !bs.contains(&b) {
            bs.push(b);
            cs.push(256 + extra);
            extra += 1;
        }
    }
    bs.into_iter()
        .zip(cs)
        .filter_map(|(b, c)| Some((u8::try_from(b).ok()?, char::from_u32(c)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A GGUF (metadata only) with a toy byte-level BPE vocabulary: 3 control tokens, the 256
    /// byte symbols, and merges for "Ġs", "el", "ect", "sel", "select".
    fn toy_gguf(pre: &str, add_bos: bool) -> Content {
        let table = byte_to_unicode();
        let mut tokens: Vec<String> = vec![
            "<|endoftext|>".into(),
            "<|im_start|>".into(),
            "<|im_end|>".into(),
        ];
        let mut types: Vec<Value> = vec![Value::I32(3); 3];
        for b in 0..=255u8 {
            tokens.push(table[&b].to_string());
            types.push(Value::I32(1));
        }
        let merges = ["e l", "s el", "e c", "ec t", "sel ect", "Ġ s", "1 2"];
        for m in merges {
            tokens.push(m.replace(' ', ""));
            types.push(Value::I32(1));
        }
        let strs = |v: Vec<String>| Value::Array(v.into_iter().map(Value::String).collect());
        let md: Vec<(&str, Value)> = vec![
            ("tokenizer.ggml.model", Value::String("gpt2".into())),
            ("tokenizer.ggml.pre", Value::String(pre.into())),
            ("tokenizer.ggml.tokens", strs(tokens)),
            ("tokenizer.ggml.token_type", Value::Array(types)),
            (
                "tokenizer.ggml.merges",
                strs(merges.iter().map(|s| s.to_string()).collect()),
            ),
            ("tokenizer.ggml.bos_token_id", Value::U32(1)),
            ("tokenizer.ggml.eos_token_id", Value::U32(2)),
            ("tokenizer.ggml.padding_token_id", Value::U32(0)),
            ("tokenizer.ggml.add_bos_token", Value::Bool(add_bos)),
        ];
        let refs: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (*k, v)).collect();
        let mut buf = Cursor::new(Vec::new());
        candle_core::quantized::gguf_file::write(&mut buf, &refs, &[]).unwrap();
        buf.set_position(0);
        Content::read(&mut buf).unwrap()
    }

    #[test]
    fn gguf_bpe_merges_specials_and_digits() {
        let tok = Tokenizer::from_gguf(&toy_gguf("smollm", false)).unwrap();
        assert_eq!(tok.vocab_size(), 3 + 256 + 7);
        let select = tok.token_to_id("select").unwrap();
        let gs = tok.token_to_id("Ġs").unwrap();
        let ids = tok
            .encode("<|im_start|>select select<|im_end|>", true)
            .unwrap();
        // " select" is "Ġ s e l e c t": "sel ect" (rank 4) wins over "Ġ s" (rank 5), so the
        // space stays a token of its own; the special tokens are matched whole.
        let space = tok.token_to_id("Ġ").unwrap();
        assert_ne!(gs, space);
        assert_eq!(ids, vec![1, select, space, select, 2]);
        assert_eq!(
            tok.encode("sx", false).unwrap()[0],
            tok.token_to_id("s").unwrap()
        );
        assert_eq!(tok.encode(" s", false).unwrap(), vec![gs]);
        assert_eq!(
            tok.decode(&ids, false).unwrap(),
            "<|im_start|>select select<|im_end|>"
        );
        assert_eq!(tok.decode(&ids, true).unwrap(), "select select");
        // smollm splits digits one by one, so the "12" merge never applies.
        let one = tok.token_to_id("1").unwrap();
        let two = tok.token_to_id("2").unwrap();
        assert_eq!(tok.encode("12", false).unwrap(), vec![one, two]);
        // a plain gpt-2 pre-tokenizer keeps "12" together and merges it.
        let gpt2 = Tokenizer::from_gguf(&toy_gguf("gpt-2", false)).unwrap();
        assert_eq!(
            gpt2.encode("12", false).unwrap(),
            vec![gpt2.token_to_id("12").unwrap()]
        );
        assert_eq!(tok.eos_token_ids(), vec![2, 0]);
        assert_eq!(tok.pad_token_id(), 0);
        assert_eq!(tok.bos_token().as_deref(), Some("<|im_start|>"));
        assert_eq!(tok.eos_token().as_deref(), Some("<|im_end|>"));
    }

    /// The split pieces (byte-level spelled) of `text` under the tokenizer's normalizer and
    /// pre-tokenizer.
    fn pieces(tok: &Tokenizer, text: &str) -> Vec<String> {
        use tokenizers::{
            NormalizedString, Normalizer, OffsetReferential, OffsetType, PreTokenizedString,
            PreTokenizer,
        };
        let mut normalized = NormalizedString::from(text);
        if let Some(n) = tok.inner().get_normalizer() {
            n.normalize(&mut normalized).unwrap();
        }
        let mut pts = PreTokenizedString::from(normalized);
        tok.inner()
            .get_pre_tokenizer()
            .unwrap()
            .pre_tokenize(&mut pts)
            .unwrap();
        pts.get_splits(OffsetReferential::Original, OffsetType::Char)
            .into_iter()
            .map(|(s, _, _)| s.to_string())
            .collect()
    }

    #[test]
    fn qwen2_pre_tokenizer_splits_digits_contractions_and_whitespace() {
        let tok = Tokenizer::from_gguf(&toy_gguf("qwen2", false)).unwrap();
        assert_eq!(
            pieces(&tok, "WE'LL pay $1,299.99\n\n  x don't"),
            [
                "WE", "'LL", "Ġpay", "Ġ$", "1", ",", "2", "9", "9", ".", "9", "9", "ĊĊ", "Ġ", "Ġx",
                "Ġdon", "'t"
            ]
        );
        // Digits are single pieces, so the "12" merge never applies (as with smollm).
        let one = tok.token_to_id("1").unwrap();
        let two = tok.token_to_id("2").unwrap();
        assert_eq!(tok.encode("12", false).unwrap(), vec![one, two]);
        // NFC: a decomposed "é" encodes like the composed one.
        assert_eq!(
            tok.encode("e\u{301}t\u{e9}", false).unwrap(),
            tok.encode("\u{e9}t\u{e9}", false).unwrap()
        );
        // Special tokens stay whole, merges still apply inside pieces.
        let select = tok.token_to_id("select").unwrap();
        assert_eq!(
            tok.encode("<|im_start|>select<|im_end|>", false).unwrap(),
            vec![1, select, 2]
        );
        for text in [
            "héllo  wörld\n\n\tÜ 北京 🙂",
            "  leading",
            "trailing  \n",
            "'a''b'",
        ] {
            let ids = tok.encode(text, false).unwrap();
            assert_eq!(tok.decode(&ids, false).unwrap(), text);
        }
    }

    #[test]
    fn unicode_and_whitespace_round_trip() {
        let tok = Tokenizer::from_gguf(&toy_gguf("smollm", false)).unwrap();
        for text in [
            "héllo  wörld\n\n\tÜ 北京 🙂",
            "  leading",
            "trailing  \n",
            "'a''b'",
        ] {
            let ids = tok.encode(text, false).unwrap();
            assert_eq!(tok.decode(&ids, false).unwrap(), text);
        }
    }

    #[test]
    fn vocab_bytes_are_the_raw_bytes_and_added_tokens_are_none() {
        let tok = Tokenizer::from_gguf(&toy_gguf("smollm", false)).unwrap();
        let bytes = tok.vocab_bytes();
        assert_eq!(bytes.len(), tok.vocab_size());
        // The three control tokens are added tokens.
        assert_eq!(&bytes[..3], &[None, None, None]);
        // Every single byte, in the byte alphabet, comes back as itself.
        for b in 0..=255u8 {
            assert_eq!(bytes[3 + b as usize].as_deref(), Some(&[b][..]), "byte {b}");
        }
        assert_eq!(
            bytes[tok.token_to_id("Ġs").unwrap() as usize].as_deref(),
            Some(&b" s"[..])
        );
        assert_eq!(
            bytes[tok.token_to_id("select").unwrap() as usize].as_deref(),
            Some(&b"select"[..])
        );
        // The concatenated bytes of an encoding are the text, even for multi-byte characters.
        let text = "SELECT 'é北' FROM t\n";
        let ids = tok.encode(text, false).unwrap();
        let joined: Vec<u8> = ids
            .iter()
            .flat_map(|&id| bytes[id as usize].clone().unwrap())
            .collect();
        assert_eq!(joined, text.as_bytes());
    }

    #[test]
    fn add_bos_token_is_honoured() {
        let tok = Tokenizer::from_gguf(&toy_gguf("smollm", true)).unwrap();
        assert_eq!(tok.encode("a", true).unwrap()[0], 1);
        assert_ne!(tok.encode("a", false).unwrap()[0], 1);
        let no = Tokenizer::from_gguf(&toy_gguf("smollm", false)).unwrap();
        assert_eq!(
            no.encode("a", true).unwrap(),
            no.encode("a", false).unwrap()
        );
    }

    #[test]
    fn unknown_pre_tokenizer_is_an_error() {
        let err = Tokenizer::from_gguf(&toy_gguf("no-such-pre", false)).unwrap_err();
        assert!(err.to_string().contains("no-such-pre"), "{err}");
    }

    #[test]
    fn from_file_reads_config_tokens() {
        let tok = Tokenizer::from_gguf(&toy_gguf("smollm", false)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        tok.inner().save(&path, false).unwrap();
        std::fs::write(
            dir.path().join("tokenizer_config.json"),
            r#"{"bos_token": {"content": "<|im_start|>"}, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}"#,
        )
        .unwrap();
        let loaded = Tokenizer::from_file(&path).unwrap();
        let text = "<|im_start|>select 2024-03-17 'x'<|im_end|>";
        assert_eq!(
            loaded.encode(text, false).unwrap(),
            tok.encode(text, false).unwrap()
        );
        assert_eq!(loaded.eos_token().as_deref(), Some("<|im_end|>"));
        assert_eq!(loaded.bos_token().as_deref(), Some("<|im_start|>"));
        assert_eq!(loaded.eos_token_ids(), vec![2, 0]);
        assert_eq!(loaded.pad_token_id(), 0);
        let missing = Tokenizer::from_file(&dir.path().join("nope.json")).unwrap_err();
        assert!(missing.to_string().contains("nope.json"), "{missing}");
    }
}
