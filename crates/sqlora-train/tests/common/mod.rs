//! The tiny random Llama of `sqlora_model::testing` (2 layers, vocabulary 64) and a word-level
//! tokenizer for it, so the trainer's tests run in seconds without a model file.
#![allow(dead_code)]

use std::path::Path;

use sqlora_model::llama::Model;
use sqlora_model::testing::{word_level_tokenizer_json, TinyLlama};
use sqlora_model::tokenizer::Tokenizer;

#[allow(unused_imports)]
pub use sqlora_model::testing::rand_tensor;

pub const VOCAB: usize = 64;

/// A random 2-layer Llama with tied embeddings.
pub fn tiny_model(seed: u64) -> Model {
    TinyLlama::default().model(seed)
}

/// A word-level tokenizer written to `dir/tokenizer.json`: `<unk>` 0, `<|im_end|>` 1,
/// `<|im_start|>` 2, then the words `w3` .. `w63`, split on whitespace.
pub fn tiny_tokenizer(dir: &Path) -> Tokenizer {
    let json = word_level_tokenizer_json(&["<unk>", "<|im_end|>", "<|im_start|>"], VOCAB);
    let path = dir.join("tokenizer.json");
    std::fs::write(&path, json.to_string()).unwrap();
    Tokenizer::from_file(&path).unwrap()
}
