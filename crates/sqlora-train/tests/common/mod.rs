//! A tiny random Llama (2 layers, vocabulary 64) built from tensors, and a word-level tokenizer
//! for it, so the trainer's tests run in seconds without a model file.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlora_model::config::Config;
use sqlora_model::llama::Model;
use sqlora_model::tokenizer::Tokenizer;

pub const VOCAB: usize = 64;
const HIDDEN: usize = 32;
const FFN: usize = 48;
const LAYERS: usize = 2;
const HEADS: usize = 4;
const KV_HEADS: usize = 2;
const HEAD_DIM: usize = 8;

pub fn rand_tensor(rng: &mut StdRng, shape: &[usize], center: f32, scale: f32) -> Tensor {
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n)
        .map(|_| center + scale * (rng.gen::<f32>() * 2.0 - 1.0))
        .collect();
    Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
}

/// A random 2-layer Llama with tied embeddings.
pub fn tiny_model(seed: u64) -> Model {
    let cfg = Config::from_hf_json_str(
        &serde_json::json!({
            "model_type": "llama",
            "architectures": ["LlamaForCausalLM"],
            "vocab_size": VOCAB,
            "hidden_size": HIDDEN,
            "intermediate_size": FFN,
            "num_hidden_layers": LAYERS,
            "num_attention_heads": HEADS,
            "num_key_value_heads": KV_HEADS,
            "rope_theta": 10000.0,
            "rms_norm_eps": 1e-6,
            "max_position_embeddings": 256,
            "tie_word_embeddings": true,
        })
        .to_string(),
    )
    .unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut w = HashMap::new();
    w.insert(
        "model.embed_tokens.weight".to_string(),
        rand_tensor(&mut rng, &[VOCAB, HIDDEN], 0.0, 1.0),
    );
    let q_out = HEADS * HEAD_DIM;
    let kv_out = KV_HEADS * HEAD_DIM;
    for l in 0..LAYERS {
        let p = format!("model.layers.{l}");
        for n in ["input_layernorm", "post_attention_layernorm"] {
            w.insert(
                format!("{p}.{n}.weight"),
                rand_tensor(&mut rng, &[HIDDEN], 1.0, 0.2),
            );
        }
        for (name, out, inp) in [
            ("self_attn.q_proj", q_out, HIDDEN),
            ("self_attn.k_proj", kv_out, HIDDEN),
            ("self_attn.v_proj", kv_out, HIDDEN),
            ("self_attn.o_proj", HIDDEN, q_out),
            ("mlp.gate_proj", FFN, HIDDEN),
            ("mlp.up_proj", FFN, HIDDEN),
            ("mlp.down_proj", HIDDEN, FFN),
        ] {
            let scale = 1.5 / (inp as f32).sqrt();
            w.insert(
                format!("{p}.{name}.weight"),
                rand_tensor(&mut rng, &[out, inp], 0.0, scale),
            );
        }
    }
    w.insert(
        "model.norm.weight".to_string(),
        rand_tensor(&mut rng, &[HIDDEN], 1.0, 0.2),
    );
    let vb = VarBuilder::from_tensors(w, DType::F32, &Device::Cpu);
    Model::load(vb, &cfg).unwrap()
}

/// A word-level tokenizer written to `dir/tokenizer.json`: `<unk>` 0, `<|im_end|>` 1,
/// `<|im_start|>` 2, then the words `w3` .. `w63`, split on whitespace.
pub fn tiny_tokenizer(dir: &Path) -> Tokenizer {
    let mut vocab = serde_json::Map::new();
    vocab.insert("<unk>".into(), 0.into());
    vocab.insert("<|im_end|>".into(), 1.into());
    vocab.insert("<|im_start|>".into(), 2.into());
    for i in 3..VOCAB {
        vocab.insert(format!("w{i}"), i.into());
    }
    let added = |id: u32, content: &str| {
        serde_json::json!({"id": id, "content": content, "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": true})
    };
    let json = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [added(0, "<unk>"), added(1, "<|im_end|>"), added(2, "<|im_start|>")],
        "normalizer": null,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}
    });
    let path = dir.join("tokenizer.json");
    std::fs::write(&path, json.to_string()).unwrap();
    Tokenizer::from_file(&path).unwrap()
}
