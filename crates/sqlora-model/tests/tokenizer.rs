//! The tokenizer against transformers' ids (tests/fixtures/reference, made by
//! tools/reference/make_fixtures.py) — for the real SmolLM2 GGUF (only its metadata is read) and
//! for the tiny tokenizer.json fixtures.

use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::Content;
use serde_json::Value;
use sqlora_model::testing::real_model_path as model_path;
use sqlora_model::tokenizer::Tokenizer;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/reference")
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn smollm2_gguf_tokenizer_matches_transformers() {
    let Some(path) = model_path() else { return };
    let mut f = std::io::BufReader::new(std::fs::File::open(&path).unwrap());
    let content = Content::read(&mut f).unwrap();
    let tok = Tokenizer::from_gguf(&content).unwrap();
    let fx = read_json(&fixtures().join("tokenizer_cases.json"));
    assert_eq!(tok.vocab_size() as u64, fx["vocab_size"].as_u64().unwrap());
    assert_eq!(tok.bos_token().as_deref(), fx["bos_token"].as_str());
    assert_eq!(tok.eos_token().as_deref(), fx["eos_token"].as_str());
    assert_eq!(
        Some(tok.pad_token_id()),
        fx["pad_token"].as_str().and_then(|p| tok.token_to_id(p))
    );
    let cases = fx["cases"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let expected = ids(&case["ids"]);
        let got = tok.encode(text, false).unwrap();
        assert_eq!(got, expected, "token ids of {text:?}");
        // SmolLM2 adds no bos, so add_special_tokens changes nothing.
        assert_eq!(tok.encode(text, true).unwrap(), expected, "{text:?}");
        assert_eq!(
            tok.decode(&got, false).unwrap(),
            case["decoded"].as_str().unwrap(),
            "decoding {text:?}"
        );
        assert_eq!(
            tok.decode(&got, true).unwrap(),
            case["decoded_skip_special"].as_str().unwrap(),
            "decoding {text:?} without special tokens"
        );
    }
    // <|im_end|> (eos) and <|endoftext|> both end generation.
    let eos = tok.eos_token_ids();
    assert_eq!(eos[0], tok.token_to_id("<|im_end|>").unwrap());
    assert!(eos.contains(&tok.token_to_id("<|endoftext|>").unwrap()));
}

#[test]
fn tiny_tokenizer_json_round_trips_and_reads_its_config() {
    for name in ["tiny-llama", "tiny-qwen2"] {
        let dir = fixtures().join(name);
        let tok = Tokenizer::from_file(&dir.join("tokenizer.json")).unwrap();
        assert_eq!(tok.eos_token().as_deref(), Some("<|im_end|>"));
        assert_eq!(
            tok.pad_token_id(),
            tok.token_to_id("<|endoftext|>").unwrap()
        );
        let text = "<|im_start|>user\nSELECT name FROM users WHERE id = 3;<|im_end|>\n";
        let got = tok.encode(text, false).unwrap();
        assert_eq!(got[0], tok.token_to_id("<|im_start|>").unwrap());
        assert!(got.len() < text.len(), "merges applied: {got:?}");
        assert_eq!(tok.decode(&got, false).unwrap(), text);
        assert_eq!(
            tok.decode(&got, true).unwrap(),
            "user\nSELECT name FROM users WHERE id = 3;\n"
        );
        let vocab = read_json(&dir.join("config.json"))["vocab_size"]
            .as_u64()
            .unwrap();
        assert!(got.iter().all(|&i| u64::from(i) < vocab));
    }
}
