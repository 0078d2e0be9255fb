//! Qwen2.5-Coder-0.5B-Instruct (GGUF, qwen2) against transformers (PyTorch, float32 on the
//! dequantized GGUF): tokenizer ids on tricky strings, the chat template, final-position logits
//! and greedy continuations, alone and batched. The fixtures in
//! tests/fixtures/reference/qwen2.5-coder-0.5b were made by tools/reference/make_qwen_fixtures.py.
//!
//! A LoRA adapter made by PEFT on this model (tests/fixtures/reference/qwen2.5-coder-0.5b/
//! peft_lora, made by tools/reference/make_peft_fixture.py --base qwen2.5-coder-0.5b) loads
//! through the base check and the PEFT reader and gives PEFT's logits and greedy tokens,
//! unmerged (alone, and gathered in a batch beside a row without it) and merged.
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
use sqlora_model::fetch::{named_model, QWEN_CODER_0_5B, QWEN_CODER_1_5B};
use sqlora_model::generate::generate_adapted;
use sqlora_model::identity::{check_adapter_base, BaseMatch, ModelIdentity};
use sqlora_model::lora::{AdapterBatch, AdapterSet, LoraAdapter};
use sqlora_model::quant::ActivationPrecision;
use sqlora_model::testing::{
    adapted_last_logits, compare_greedy_fixture, merged_last_logits, named_model_path,
    named_real_model, named_real_model_f32,
};
use sqlora_model::tokenizer::Tokenizer;
use sqlora_model::{generate, peft, FinishReason, GenerateParams, LoadedModel};

const MAX_ABS: f32 = 5e-4;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/reference/qwen2.5-coder-0.5b")
}

/// The PEFT-made adapter and PEFT's outputs with it.
fn peft_dir() -> PathBuf {
    fixtures().join("peft_lora")
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

/// The 0.5B on the f32 reference path (the parity tests compare with f32 arithmetic).
fn model() -> Option<&'static LoadedModel> {
    named_real_model_f32(QWEN_CODER_0_5B)
}

/// The largest |ours - reference| over a fixture record's top logits and spot checks (see
/// make_qwen_fixtures.py `logits_record`), after checking the vocabulary size.
fn max_logit_diff(ours: &[f32], rec: &Value) -> f32 {
    assert_eq!(ours.len() as u64, rec["vocab_size"].as_u64().unwrap());
    let mut max = 0f32;
    for t in rec["top"].as_array().unwrap() {
        let id = t["id"].as_u64().unwrap() as usize;
        let want = t["logit"].as_f64().unwrap() as f32;
        max = max.max((ours[id] - want).abs());
    }
    let stride = rec["spot_stride"].as_u64().unwrap() as usize;
    for (k, v) in rec["spot"].as_array().unwrap().iter().enumerate() {
        let want = v.as_f64().unwrap() as f32;
        max = max.max((ours[k * stride] - want).abs());
    }
    max
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i)
        .unwrap()
}

fn read_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
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
        let max = max_logit_diff(&ours, p);
        eprintln!("{name}: {} ids, max |diff| {max:.2e}", input.len());
        assert!(max <= MAX_ABS, "{name}: logits differ by {max}");
        assert_eq!(
            argmax(&ours) as u64,
            p["argmax"].as_u64().unwrap(),
            "{name}"
        );
    }
}

#[test]
fn greedy_generations_match_transformers_alone_and_batched() {
    let Some(m) = model() else { return };
    sqlora_model::testing::assert_greedy_fixture(m, &read_json("generations.json"));
}

/// The inference default, 8-bit activations (like llama.cpp), against the f32 path: logits
/// on the fixture prompts, and greedy continuations.
///
/// Measured here (x86-64, AVX-512): int8 vs f32 max |diff| 0.26-0.35 on the four prompts (vs
/// transformers 0.18-0.28), the same argmax, and all three 32-token greedy continuations equal
/// alone and batched. We require the same argmax, max <= 0.7 (twice that) and the fixture's
/// tokens.
#[test]
fn int8_activations_stay_close_to_the_f32_path() {
    let (Some(base), Some(f32m)) = (named_real_model(QWEN_CODER_0_5B), model()) else {
        return;
    };
    let q8 = base.with_activation_precision(ActivationPrecision::Int8);
    let fx = read_json("logits.json");
    for (name, p) in fx["prompts"].as_object().unwrap() {
        let input = ids(&p["input_ids"]);
        let a = q8.model.last_logits(&input).unwrap();
        let b = f32m.model.last_logits(&input).unwrap();
        let max = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        eprintln!(
            "{name}: int8 vs f32 max |diff| {max:.3}, vs transformers {:.3}, argmax {} / {}",
            max_logit_diff(&a, p),
            argmax(&a),
            argmax(&b)
        );
        assert_eq!(argmax(&a), argmax(&b), "{name}");
        assert!(max <= 0.7, "{name}: int8 logits differ by {max}");
    }
    for (i, g) in compare_greedy_fixture(f32m, &q8, &read_json("generations.json"))
        .iter()
        .enumerate()
    {
        eprintln!("case {i}: {g:?}");
        assert_eq!(g.agreeing, g.of, "case {i}: {g:?}");
        assert!(g.batch_equals_alone, "case {i}: {g:?}");
    }
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

/// The PEFT-made adapter loaded as `sqlora ask --adapter` and the server load one: the base
/// check first (PEFT recorded `Qwen/Qwen2.5-Coder-0.5B-Instruct`, which names the cached GGUF
/// through the registry's aliases), then the PEFT reader.
fn peft_adapter(m: &LoadedModel) -> LoraAdapter {
    let dir = peft_dir();
    assert_eq!(
        check_adapter_base(&dir, &ModelIdentity::of(m)).unwrap(),
        BaseMatch::Registry
    );
    peft::load_adapter(&dir, &m.model).unwrap()
}

#[test]
fn a_peft_made_adapter_is_accepted_on_the_0_5b_and_refused_on_the_1_5b() {
    let dir = peft_dir();
    let cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("adapter_config.json")).unwrap())
            .unwrap();
    assert_eq!(
        cfg["base_model_name_or_path"],
        "Qwen/Qwen2.5-Coder-0.5B-Instruct"
    );
    // The identity of the cached registry files, as `ModelIdentity::of` gives it for them
    // (no file is read: this runs without the models).
    let registry = |name: &str| {
        let m = named_model(name).unwrap();
        ModelIdentity {
            source: m.path(),
            named: Some(m),
            sha256: Some(m.sha256.to_string()),
        }
    };
    assert_eq!(
        check_adapter_base(&dir, &registry(QWEN_CODER_0_5B)).unwrap(),
        BaseMatch::Registry
    );
    let err = check_adapter_base(&dir, &registry(QWEN_CODER_1_5B)).unwrap_err();
    assert!(
        err.to_string().contains("Qwen/Qwen2.5-Coder-0.5B-Instruct"),
        "{err}"
    );
    let s = peft::inspect(&dir).unwrap();
    assert_eq!((s.rank, s.modules, s.layers.len()), (8, 24 * 7, 24));
    // hidden 896, kv 128, ffn 4864: q,o 8*(896+896); k,v 8*(896+128); gate,up,down 8*(896+4864).
    let per_layer = 2 * 8 * (896 + 896) + 2 * 8 * (896 + 128) + 3 * 8 * (896 + 4864);
    assert_eq!(s.parameters, 24 * per_layer);
}

#[test]
fn a_peft_made_adapter_gives_peft_logits_unmerged_batched_and_merged() {
    let Some(m) = model() else { return };
    let adapter = peft_adapter(m);
    assert_eq!(adapter.modules().len(), 24 * 7);
    let q = adapter.module("model.layers.23.self_attn.q_proj").unwrap();
    assert_eq!((q.rank(), q.scale), (8, 2.0));
    let fx: Value =
        serde_json::from_str(&std::fs::read_to_string(peft_dir().join("logits.json")).unwrap())
            .unwrap();
    let base_fx = read_json("logits.json");
    let prompts = fx["prompts"].as_object().unwrap();
    assert!(prompts.len() >= 4);
    let mut set = AdapterSet::new(m.model.device());
    let id = set.insert(adapter.clone()).unwrap();
    let mut full_rows = 0;
    for (name, p) in prompts {
        let input = ids(&p["input_ids"]);
        assert_eq!(input, ids(&base_fx["prompts"][name]["input_ids"]), "{name}");
        let effect = p["max_abs_change_vs_base"].as_f64().unwrap();
        assert!(effect > 1.0, "{name}: the adapter must matter ({effect})");
        let want_argmax = p["argmax"].as_u64().unwrap();
        // Unmerged, alone.
        let alone = &adapted_last_logits(
            &m.model,
            std::slice::from_ref(&input),
            Some(&AdapterBatch::single(&adapter)),
        )[0];
        // Unmerged, gathered in one batch with a row of the bare model.
        let batch = set.batch(&[None, Some(id)]).unwrap();
        assert!(batch.is_gathered());
        let mixed = adapted_last_logits(&m.model, &[input.clone(), input.clone()], Some(&batch));
        // Merged into the (dequantized) weights.
        let merged = merged_last_logits(&m.model, &adapter, &input);
        for (how, ours) in [
            ("alone", alone),
            ("batched", &mixed[1]),
            ("merged", &merged),
        ] {
            let d = max_logit_diff(ours, p);
            eprintln!(
                "{name} {how}: adapter moves logits by up to {effect:.3}; max |ours - PEFT| {d:.2e}"
            );
            assert!(
                d <= MAX_ABS,
                "{name} {how}: logits differ from PEFT's by {d}"
            );
            assert_eq!(argmax(ours) as u64, want_argmax, "{name} {how}");
        }
        let full = peft_dir().join(format!("{name}.bin"));
        if full.is_file() {
            let theirs = read_f32(&full);
            assert_eq!(theirs.len(), alone.len());
            let d = theirs
                .iter()
                .zip(alone)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            eprintln!("{name}: every logit, max |ours - PEFT| {d:.2e}");
            assert!(
                d <= MAX_ABS,
                "{name}: full logits differ from PEFT's by {d}"
            );
            full_rows += 1;
        }
        // The row without the adapter is the base model's, as transformers computes it.
        let d = max_logit_diff(&mixed[0], &base_fx["prompts"][name]);
        assert!(d <= MAX_ABS, "{name}: the bare row differs by {d}");
    }
    assert!(full_rows >= 2, "the fixture has full rows");
}

#[test]
fn a_peft_made_adapter_gives_peft_greedy_tokens_alone_and_batched() {
    let Some(m) = model() else { return };
    let mut set = AdapterSet::new(m.model.device());
    let id = set.insert(peft_adapter(m)).unwrap();
    let fx: Value = serde_json::from_str(
        &std::fs::read_to_string(peft_dir().join("generations.json")).unwrap(),
    )
    .unwrap();
    let n = fx["new_tokens"].as_u64().unwrap() as usize;
    let params = GenerateParams {
        max_new_tokens: n,
        temperature: 0.0,
        stop_on_eos: false,
        ..GenerateParams::default()
    };
    let cases = fx["cases"].as_array().unwrap();
    assert!(cases.len() >= 3);
    let mut prompts = Vec::new();
    let mut rows = Vec::new();
    let mut want = Vec::new();
    for case in cases {
        let prompt = ids(&case["prompt_ids"]);
        let adapted = ids(&case["generated_ids"]);
        let base = ids(&case["base_generated_ids"]);
        assert_ne!(adapted, base, "the adapter changes the continuation");
        let alone =
            generate_adapted(m, std::slice::from_ref(&prompt), &set, &[Some(id)], &params).unwrap();
        assert_eq!(alone[0].tokens, adapted, "alone: {:?}", alone[0].text);
        // In the batch: each prompt with the adapter and, in the next row, without it.
        prompts.extend([prompt.clone(), prompt]);
        rows.extend([Some(id), None]);
        want.extend([adapted, base]);
    }
    let batched = generate_adapted(m, &prompts, &set, &rows, &params).unwrap();
    for (r, g) in batched.iter().enumerate() {
        assert_eq!(
            g.tokens, want[r],
            "batched row {r} ({:?}): {:?}",
            rows[r], g.text
        );
    }
}
