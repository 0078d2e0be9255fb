//! Qwen2.5-Coder-0.5B-Instruct (GGUF, qwen2) against transformers (PyTorch, float32 on the
//! dequantized GGUF): tokenizer ids on tricky strings, the chat template, final-position logits
//! and greedy continuations, alone and batched. The fixtures in
//! tests/fixtures/reference/qwen2.5-coder-0.5b were made by tools/reference/make_qwen_fixtures.py.
//!
//! The model comes from the cache (`sqlora model fetch qwen2.5-coder-0.5b-instruct`); without it
//! the tests skip, or fail under `SQLORA_REQUIRE_QWEN=1`.
//!
//! Logit tolerance: both sides dequantize Q4_K/Q5_0/Q6_K/Q8_0 to the same f32 weights and differ
//! only in summation order; measured here (x86-64, AVX-512) max |diff| 1.5e-5 on logits up to ~23
//! after 24 layers (see the test's stderr). We allow 5e-4, thirty times that, to leave room for
//! kernels that keep the blocks and sum in another order; it is far below the smallest top-1/top-2
//! gap of the greedy fixtures (0.26) and what a layout error (a missing bias, a wrong rope base,
//! an un-needed q/k permutation) does to logits (tenths to whole units).

use std::path::{Path, PathBuf};

use serde_json::Value;
use sqlora_model::chat::ChatTemplate;
use sqlora_model::chat::Message;
use sqlora_model::config::Arch;
use sqlora_model::config::Config;
use sqlora_model::fetch::{QWEN_CODER_0_5B, QWEN_CODER_1_5B};
use sqlora_model::testing::{named_model_path, named_real_model};
use sqlora_model::tokenizer::Tokenizer;
use sqlora_model::{generate, FinishReason, GenerateParams, LoadedModel};

const MAX_ABS: f32 = 5e-4;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/reference/qwen2.5-coder-0.5b")
}

fn read_json(name: &str) -> Value {
    let path = fixtures().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn messages(v: &Value) -> Vec<Message> {
    serde_json::from_value(v.clone()).unwrap()
}

fn model() -> Option<&'static LoadedModel> {
    named_real_model(QWEN_CODER_0_5B)
}

#[test]
fn config_comes_from_the_qwen2_metadata() {
    let Some(m) = model() else { return };
    let c = &m.config;
    assert_eq!(c.arch, Arch::Qwen2);
    assert_eq!(
        (c.num_hidden_layers, c.hidden_size, c.intermediate_size),
        (24, 896, 4864)
    );
    assert_eq!(
        (c.num_attention_heads, c.num_key_value_heads, c.head_dim),
        (14, 2, 64)
    );
    assert_eq!(c.rope_theta, 1_000_000.0);
    assert!((c.rms_norm_eps - 1e-6).abs() < 1e-9, "{}", c.rms_norm_eps);
    assert_eq!(c.vocab_size, 151_936);
    assert!(c.attention_bias);
    // The file has its own output.weight: used, not tied to the embeddings.
    assert!(!c.tie_word_embeddings);
    assert!(c.rope_scaling.is_none());
}

#[test]
fn tokenizer_ids_match_transformers_on_tricky_strings() {
    let Some(m) = model() else { return };
    let fx = read_json("tokenizer_cases.json");
    let cases = fx["cases"].as_array().unwrap();
    assert!(cases.len() >= 20);
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let got = m.tokenizer.encode(text, false).unwrap();
        assert_eq!(got, ids(&case["ids"]), "ids of {text:?}");
        // add_bos_token is false: nothing is prepended.
        assert_eq!(m.tokenizer.encode(text, true).unwrap(), got, "{text:?}");
        assert_eq!(
            m.tokenizer.decode(&got, false).unwrap(),
            case["decoded"].as_str().unwrap(),
            "decoding {text:?}"
        );
        assert_eq!(
            m.tokenizer.decode(&got, true).unwrap(),
            case["decoded_skip_special"].as_str().unwrap(),
            "decoding {text:?} without special tokens"
        );
    }
    assert_eq!(
        m.tokenizer.vocab_size() as u64,
        fx["vocab_size"].as_u64().unwrap()
    );
    assert_eq!(m.tokenizer.eos_token().as_deref(), Some("<|im_end|>"));
    assert_eq!(m.tokenizer.token_to_id("<|im_start|>"), Some(151_644));
}

#[test]
fn both_end_tokens_stop_generation() {
    let Some(m) = model() else { return };
    let eos = m.tokenizer.eos_token_ids();
    assert!(eos.contains(&151_645), "{eos:?}"); // <|im_end|>
    assert!(eos.contains(&151_643), "{eos:?}"); // <|endoftext|>
    assert_eq!(m.tokenizer.pad_token_id(), 151_643);
    // A chat turn ends with <|im_end|>: generation stops there, not at max_new_tokens.
    let t = m.chat_template.as_ref().expect("chat template");
    let text = t
        .render(
            &[Message::new("user", "Reply with the single word: yes")],
            true,
        )
        .unwrap();
    let prompt = m.tokenizer.encode(&text, false).unwrap();
    let params = GenerateParams {
        max_new_tokens: 24,
        ..GenerateParams::default()
    };
    let g = &generate(m, &[prompt], &params).unwrap()[0];
    assert_eq!(g.finish_reason, FinishReason::Eos, "{g:?}");
    assert!(g.tokens.len() < 24, "{g:?}");
    assert!(!g.text.contains("<|im_end|>"), "{:?}", g.text);
}

#[test]
fn chat_template_from_the_file_renders_like_transformers() {
    let Some(m) = model() else { return };
    let t = m
        .chat_template
        .as_ref()
        .expect("the GGUF has a chat template");
    let fx = read_json("chat_template.json");
    let cases = fx["cases"].as_array().unwrap();
    assert!(cases.len() >= 4);
    for case in cases {
        let msgs = messages(&case["messages"]);
        let add = case["add_generation_prompt"].as_bool().unwrap();
        let text = t.render(&msgs, add).unwrap();
        assert_eq!(text, case["rendered"].as_str().unwrap(), "{msgs:?}");
        assert_eq!(m.tokenizer.encode(&text, false).unwrap(), ids(&case["ids"]));
    }
    // Without a system message the template brings its own.
    let first = t.render(&[Message::new("user", "hi")], true).unwrap();
    assert!(
        first.starts_with("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud."),
        "{first:?}"
    );
}

#[test]
fn last_position_logits_match_transformers() {
    let Some(m) = model() else { return };
    let fx = read_json("logits.json");
    let prompts = fx["prompts"].as_object().unwrap();
    assert!(prompts.len() >= 4);
    for (name, p) in prompts {
        let input = ids(&p["input_ids"]);
        let ours = m.model.last_logits(&input).unwrap();
        assert_eq!(ours.len() as u64, p["vocab_size"].as_u64().unwrap());
        let mut max = 0f32;
        for t in p["top"].as_array().unwrap() {
            let id = t["id"].as_u64().unwrap() as usize;
            let want = t["logit"].as_f64().unwrap() as f32;
            max = max.max((ours[id] - want).abs());
        }
        let stride = p["spot_stride"].as_u64().unwrap() as usize;
        for (k, v) in p["spot"].as_array().unwrap().iter().enumerate() {
            let want = v.as_f64().unwrap() as f32;
            max = max.max((ours[k * stride] - want).abs());
        }
        eprintln!("{name}: {} ids, max |diff| {max:.2e}", input.len());
        assert!(max <= MAX_ABS, "{name}: logits differ by {max}");
        let argmax = ours
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i)
            .unwrap();
        assert_eq!(argmax as u64, p["argmax"].as_u64().unwrap(), "{name}");
    }
}

#[test]
fn greedy_generations_match_transformers_alone_and_batched() {
    let Some(m) = model() else { return };
    sqlora_model::testing::assert_greedy_fixture(m, &read_json("generations.json"));
}

/// The 1.5B from its metadata alone (no weights are loaded): the qwen2 config, the same
/// tokenizer and chat template as the 0.5B.
#[test]
fn the_1_5b_metadata_reads_as_qwen2_with_the_same_tokenizer() {
    let Some(path) = named_model_path(QWEN_CODER_1_5B) else {
        return;
    };
    let content = sqlora_model::gguf::read_content(&path).unwrap();
    let c = Config::from_gguf(&content).unwrap();
    assert_eq!(c.arch, Arch::Qwen2);
    assert_eq!(
        (c.num_hidden_layers, c.hidden_size, c.intermediate_size),
        (28, 1536, 8960)
    );
    assert_eq!(
        (c.num_attention_heads, c.num_key_value_heads, c.head_dim),
        (12, 2, 128)
    );
    assert_eq!(c.rope_theta, 1_000_000.0);
    assert!(c.attention_bias && !c.tie_word_embeddings);
    let tok = Tokenizer::from_gguf(&content).unwrap();
    let fx = read_json("tokenizer_cases.json");
    for case in fx["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        assert_eq!(
            tok.encode(text, false).unwrap(),
            ids(&case["ids"]),
            "{text:?}"
        );
    }
    let t = ChatTemplate::from_gguf(&content)
        .unwrap()
        .expect("chat template");
    let chat = read_json("chat_template.json");
    for case in chat["cases"].as_array().unwrap() {
        let msgs = messages(&case["messages"]);
        let add = case["add_generation_prompt"].as_bool().unwrap();
        assert_eq!(
            t.render(&msgs, add).unwrap(),
            case["rendered"].as_str().unwrap()
        );
    }
}
