//! Hugging Face folders with random small Llama and Qwen2 weights, written to a temp dir and
//! loaded through `sqlora_model::load`: batched generation equals row-by-row generation,
//! biases are applied, tied and untied heads load, shards load, bad folders fail clearly.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, IndexOp, Tensor};
use rand::rngs::StdRng;
use rand::SeedableRng;
use sqlora_model::llama::{attention_mask, Proj};
use sqlora_model::testing::{max_abs_diff, rand_tensor, word_level_tokenizer_json, TinyLlama};
use sqlora_model::{generate, load, n_best, FinishReason, GenerateParams, LoadedModel, ModelError};

const VOCAB: usize = 64;
const HIDDEN: usize = 32;
const FFN: usize = 64;

fn shape(arch: &'static str, tie: bool) -> TinyLlama {
    TinyLlama {
        arch,
        ffn: FFN,
        tie_embeddings: tie,
        ..TinyLlama::default()
    }
}

fn random_weights(arch: &'static str, tie: bool, seed: u64) -> HashMap<String, Tensor> {
    shape(arch, tie).weights(seed)
}

fn config_json(arch: &'static str, tie: bool) -> String {
    shape(arch, tie).config_json().to_string()
}

/// A WordLevel tokenizer: `<unk>` 0, `</s>` 1 (eos), `w2` .. `w63`, split on whitespace.
fn tokenizer_json() -> String {
    word_level_tokenizer_json(&["<unk>", "</s>"], VOCAB).to_string()
}

fn write_folder(dir: &Path, arch: &'static str, tie: bool, weights: &HashMap<String, Tensor>) {
    std::fs::write(dir.join("config.json"), config_json(arch, tie)).unwrap();
    std::fs::write(dir.join("tokenizer.json"), tokenizer_json()).unwrap();
    std::fs::write(
        dir.join("tokenizer_config.json"),
        r#"{"eos_token": "</s>", "pad_token": "<unk>"}"#,
    )
    .unwrap();
    candle_core::safetensors::save(weights, dir.join("model.safetensors")).unwrap();
}

fn folder(arch: &'static str, tie: bool, seed: u64) -> (tempfile::TempDir, LoadedModel) {
    let dir = tempfile::tempdir().unwrap();
    write_folder(dir.path(), arch, tie, &random_weights(arch, tie, seed));
    let m = load(dir.path(), &Device::Cpu).unwrap();
    (dir, m)
}

fn prompts() -> Vec<Vec<u32>> {
    vec![
        vec![5, 9, 17],
        vec![3, 4, 5, 6, 7, 8, 9],
        vec![40, 2, 33, 18, 61, 12, 7, 7, 9, 30, 11, 50],
    ]
}

/// Last-position logits of a left-padded batch, computed with one forward pass.
fn batched_last_logits(m: &LoadedModel, prompts: &[Vec<u32>]) -> Vec<Vec<f32>> {
    let longest = prompts.iter().map(Vec::len).max().unwrap();
    let pad = m.tokenizer.pad_token_id();
    let (mut ids, mut pos, mut real) = (Vec::new(), Vec::new(), Vec::new());
    for p in prompts {
        let n_pad = longest - p.len();
        ids.extend(std::iter::repeat_n(pad, n_pad).chain(p.iter().copied()));
        pos.extend(std::iter::repeat_n(0u32, n_pad).chain(0..p.len() as u32));
        real.push((0..longest).map(|j| j >= n_pad).collect::<Vec<bool>>());
    }
    let b = prompts.len();
    let ids = Tensor::from_vec(ids, (b, longest), &Device::Cpu).unwrap();
    let pos = Tensor::from_vec(pos, (b, longest), &Device::Cpu).unwrap();
    let mask = attention_mask(&real, longest, &Device::Cpu).unwrap();
    let h = m.model.forward(&ids, &pos, Some(&mask), None).unwrap();
    let last = h.i((.., longest - 1, ..)).unwrap().contiguous().unwrap();
    m.model.logits(&last).unwrap().to_vec2().unwrap()
}

fn assert_batch_equals_alone(m: &LoadedModel, params: &GenerateParams) {
    let ps = prompts();
    let batched = generate(m, &ps, params).unwrap();
    assert_eq!(batched.len(), ps.len());
    for (p, g) in ps.iter().zip(&batched) {
        let alone = generate(m, std::slice::from_ref(p), params).unwrap();
        assert_eq!(alone[0].tokens, g.tokens, "prompt {p:?}");
        assert_eq!(alone[0].text, g.text);
        assert_eq!(alone[0].finish_reason, g.finish_reason);
        assert!((alone[0].logprob - g.logprob).abs() < 1e-3);
    }
    let logits = batched_last_logits(m, &ps);
    for (p, row) in ps.iter().zip(&logits) {
        let alone = m.model.last_logits(p).unwrap();
        let d = max_abs_diff(&alone, row);
        assert!(d < 1e-4, "batched vs alone logits differ by {d}");
    }
}

#[test]
fn llama_tied_batched_generation_equals_alone() {
    let (_dir, m) = folder("llama", true, 1);
    assert!(m.config.tie_word_embeddings);
    assert!(!m.config.attention_bias);
    let params = GenerateParams {
        max_new_tokens: 12,
        stop_on_eos: false,
        ..GenerateParams::default()
    };
    assert_batch_equals_alone(&m, &params);
    let out = generate(&m, &prompts(), &params).unwrap();
    for g in &out {
        assert_eq!(g.tokens.len(), 12);
        assert_eq!(g.finish_reason, FinishReason::Length);
        assert!(g.logprob < 0.0);
        // The WordLevel decoder joins tokens with spaces.
        assert_eq!(g.text.split_whitespace().count(), 12);
    }
    // Greedy is what the logits say: the first token is the argmax of the prompt's logits.
    for (p, g) in prompts().iter().zip(&out) {
        let lg = m.model.last_logits(p).unwrap();
        assert_eq!(g.tokens[0], sqlora_model::generate::argmax(&lg));
    }
}

#[test]
fn sampling_is_seeded_and_batch_independent() {
    let (_dir, m) = folder("llama", true, 2);
    let params = GenerateParams {
        max_new_tokens: 16,
        temperature: 1.5,
        top_p: 0.95,
        seed: 11,
        stop_on_eos: false,
        ..GenerateParams::default()
    };
    assert_batch_equals_alone(&m, &params);
    let a = generate(&m, &prompts(), &params).unwrap();
    let b = generate(&m, &prompts(), &params).unwrap();
    assert_eq!(a, b);
    let greedy = generate(
        &m,
        &prompts(),
        &GenerateParams {
            temperature: 0.0,
            ..params.clone()
        },
    )
    .unwrap();
    let other_seed = generate(&m, &prompts(), &GenerateParams { seed: 12, ..params }).unwrap();
    assert!(
        a != greedy || a != other_seed,
        "sampling looks deterministic"
    );
}

#[test]
fn eos_and_stop_strings_end_rows_independently() {
    let (_dir, m) = folder("llama", true, 3);
    let ps = prompts();
    let free = GenerateParams {
        max_new_tokens: 10,
        stop_on_eos: false,
        ..GenerateParams::default()
    };
    let base = generate(&m, &ps, &free).unwrap();
    // Stop row 1 at the text of its third token; the other rows must be unaffected.
    let third = m.tokenizer.decode(&base[1].tokens[2..3], true).unwrap();
    let stopped = generate(
        &m,
        &ps,
        &GenerateParams {
            stop_strings: vec![third.clone()],
            ..free.clone()
        },
    )
    .unwrap();
    assert_eq!(stopped[1].finish_reason, FinishReason::Stop);
    assert!(!stopped[1].text.contains(&third));
    assert!(stopped[1].tokens.len() <= 3);
    for r in [0, 2] {
        let alone_text = &base[r].text;
        if !alone_text.contains(&third) {
            assert_eq!(stopped[r], base[r]);
        }
    }
    // Declare row 0's 4th greedy token as EOS by writing a folder whose eos token is it.
    let eos_id = base[0].tokens[3];
    assert!(eos_id > 1);
    let dir = tempfile::tempdir().unwrap();
    write_folder(dir.path(), "llama", true, &random_weights("llama", true, 3));
    std::fs::write(
        dir.path().join("tokenizer_config.json"),
        format!(r#"{{"eos_token": "w{eos_id}", "pad_token": "<unk>"}}"#),
    )
    .unwrap();
    let m2 = load(dir.path(), &Device::Cpu).unwrap();
    assert!(m2.tokenizer.eos_token_ids().contains(&eos_id));
    let with_eos = generate(
        &m2,
        &ps,
        &GenerateParams {
            stop_on_eos: true,
            ..free
        },
    )
    .unwrap();
    let first = base[0].tokens.iter().position(|&t| t == eos_id).unwrap();
    assert_eq!(with_eos[0].finish_reason, FinishReason::Eos);
    assert_eq!(with_eos[0].tokens, base[0].tokens[..first].to_vec());
    for r in 0..ps.len() {
        match base[r].tokens.iter().position(|&t| t == eos_id) {
            Some(k) => assert_eq!(with_eos[r].tokens, base[r].tokens[..k].to_vec()),
            None => assert_eq!(with_eos[r].tokens, base[r].tokens),
        }
    }
}

#[test]
fn qwen2_biases_are_applied() {
    let weights = random_weights("qwen2", false, 4);
    let dir = tempfile::tempdir().unwrap();
    write_folder(dir.path(), "qwen2", false, &weights);
    let m = load(dir.path(), &Device::Cpu).unwrap();
    assert!(m.config.attention_bias);
    assert!(!m.config.tie_word_embeddings);
    let params = GenerateParams {
        max_new_tokens: 10,
        stop_on_eos: false,
        ..GenerateParams::default()
    };
    assert_batch_equals_alone(&m, &params);

    let p = &prompts()[2];
    let base = m.model.last_logits(p).unwrap();
    for name in [
        "model.layers.0.self_attn.q_proj.bias",
        "model.layers.1.self_attn.v_proj.bias",
    ] {
        let mut changed = weights.clone();
        let b = changed[name].clone();
        changed.insert(name.to_string(), (b + 0.7).unwrap());
        let dir2 = tempfile::tempdir().unwrap();
        write_folder(dir2.path(), "qwen2", false, &changed);
        let m2 = load(dir2.path(), &Device::Cpu).unwrap();
        let d = max_abs_diff(&base, &m2.model.last_logits(p).unwrap());
        assert!(d > 1e-3, "changing {name} changed logits by only {d}");
    }
    // A qwen2 folder without the biases is rejected.
    let mut no_bias = weights.clone();
    no_bias.remove("model.layers.0.self_attn.k_proj.bias");
    let dir3 = tempfile::tempdir().unwrap();
    write_folder(dir3.path(), "qwen2", false, &no_bias);
    let err = load(dir3.path(), &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("k_proj"), "{err}");
}

#[test]
fn tied_and_untied_heads_load() {
    let tied = random_weights("llama", true, 5);
    let (_d1, m_tied) = {
        let dir = tempfile::tempdir().unwrap();
        write_folder(dir.path(), "llama", true, &tied);
        let m = load(dir.path(), &Device::Cpu).unwrap();
        (dir, m)
    };
    // Untied with lm_head = the embedding: same logits.
    let mut same = tied.clone();
    same.insert(
        "lm_head.weight".to_string(),
        tied["model.embed_tokens.weight"].copy().unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    write_folder(dir.path(), "llama", false, &same);
    let m_same = load(dir.path(), &Device::Cpu).unwrap();
    assert!(!m_same.config.tie_word_embeddings);
    let p = &prompts()[1];
    let a = m_tied.model.last_logits(p).unwrap();
    let b = m_same.model.last_logits(p).unwrap();
    assert!(max_abs_diff(&a, &b) < 1e-5);
    // Untied with its own head: different logits.
    let mut own = tied.clone();
    own.insert(
        "lm_head.weight".to_string(),
        rand_tensor(&mut StdRng::seed_from_u64(99), &[VOCAB, HIDDEN], 0.0, 1.0),
    );
    let dir = tempfile::tempdir().unwrap();
    write_folder(dir.path(), "llama", false, &own);
    let m_own = load(dir.path(), &Device::Cpu).unwrap();
    assert!(max_abs_diff(&a, &m_own.model.last_logits(p).unwrap()) > 1e-2);
    // Untied config without lm_head.weight: a clear error naming it.
    let dir = tempfile::tempdir().unwrap();
    write_folder(dir.path(), "llama", false, &tied);
    let err = load(dir.path(), &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("lm_head"), "{err}");
}

#[test]
fn sharded_bf16_folder_matches_single_file() {
    let weights = random_weights("llama", true, 6);
    // Round the weights through bf16 so both folders hold the same values.
    let rounded: HashMap<String, Tensor> = weights
        .iter()
        .map(|(k, v)| {
            let r = v.to_dtype(DType::BF16).unwrap();
            (k.clone(), r)
        })
        .collect();
    let single = tempfile::tempdir().unwrap();
    let as_f32: HashMap<String, Tensor> = rounded
        .iter()
        .map(|(k, v)| (k.clone(), v.to_dtype(DType::F32).unwrap()))
        .collect();
    write_folder(single.path(), "llama", true, &as_f32);
    let sharded = tempfile::tempdir().unwrap();
    write_folder(sharded.path(), "llama", true, &HashMap::new());
    std::fs::remove_file(sharded.path().join("model.safetensors")).unwrap();
    let mut names: Vec<&String> = rounded.keys().collect();
    names.sort();
    let (first, second) = names.split_at(names.len() / 2);
    let mut weight_map = serde_json::Map::new();
    for (file, part) in [
        ("model-00001-of-00002.safetensors", first),
        ("model-00002-of-00002.safetensors", second),
    ] {
        let shard: HashMap<String, Tensor> = part
            .iter()
            .map(|&n| (n.clone(), rounded[n].clone()))
            .collect();
        candle_core::safetensors::save(&shard, sharded.path().join(file)).unwrap();
        for n in part {
            weight_map.insert((*n).clone(), file.into());
        }
    }
    std::fs::write(
        sharded.path().join("model.safetensors.index.json"),
        serde_json::json!({"metadata": {}, "weight_map": weight_map}).to_string(),
    )
    .unwrap();
    let a = load(single.path(), &Device::Cpu).unwrap();
    let b = load(sharded.path(), &Device::Cpu).unwrap();
    let p = &prompts()[2];
    let la = a.model.last_logits(p).unwrap();
    let lb = b.model.last_logits(p).unwrap();
    assert_eq!(la, lb);
    // A shard named by the index but missing is a clear error.
    std::fs::remove_file(sharded.path().join("model-00002-of-00002.safetensors")).unwrap();
    let err = load(sharded.path(), &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("model-00002-of-00002.safetensors"), "{err}");
}

#[test]
fn bad_folders_fail_clearly() {
    let weights = random_weights("llama", true, 7);
    let dir = tempfile::tempdir().unwrap();
    write_folder(dir.path(), "llama", true, &weights);
    std::fs::remove_file(dir.path().join("config.json")).unwrap();
    let err = load(dir.path(), &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("config.json"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    write_folder(dir.path(), "llama", true, &weights);
    std::fs::write(
        dir.path().join("config.json"),
        config_json("gpt_neox", true),
    )
    .unwrap();
    let err = load(dir.path(), &Device::Cpu).unwrap_err();
    assert!(matches!(err, ModelError::Unsupported(_)), "{err}");
    assert!(err.to_string().contains("gpt_neox"));

    let dir = tempfile::tempdir().unwrap();
    write_folder(dir.path(), "llama", true, &weights);
    std::fs::remove_file(dir.path().join("tokenizer.json")).unwrap();
    let err = load(dir.path(), &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("tokenizer.json"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    write_folder(dir.path(), "llama", true, &weights);
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    let err = load(dir.path(), &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("safetensors"), "{err}");

    let missing = dir.path().join("nope");
    assert!(matches!(
        load(&missing, &Device::Cpu),
        Err(ModelError::Io { .. })
    ));
}

#[test]
fn n_best_is_beam_search() {
    let (_dir, m) = folder("llama", true, 8);
    let p = &prompts()[0];
    let params = GenerateParams {
        max_new_tokens: 6,
        stop_on_eos: false,
        ..GenerateParams::default()
    };
    // Width 1 is greedy search.
    let greedy = generate(&m, std::slice::from_ref(p), &params).unwrap();
    let one = n_best(&m, p, 1, &params).unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].tokens, greedy[0].tokens);
    assert!((one[0].score - greedy[0].logprob / 6.0).abs() < 1e-6);
    // Width 4: distinct texts, best first, each score the mean log-prob of its tokens.
    let four = n_best(&m, p, 4, &params).unwrap();
    assert_eq!(four.len(), 4);
    for w in four.windows(2) {
        assert!(w[0].score >= w[1].score);
    }
    let texts: std::collections::HashSet<&String> = four.iter().map(|c| &c.text).collect();
    assert_eq!(texts.len(), 4);
    assert!(four[0].score >= one[0].score - 1e-9);
    for c in &four {
        let mut ids = p.clone();
        let mut lp = 0.0;
        for &t in &c.tokens {
            let lg = m.model.last_logits(&ids).unwrap();
            let max = lg.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
            let lse = max + lg.iter().map(|&x| (x as f64 - max).exp()).sum::<f64>().ln();
            lp += lg[t as usize] as f64 - lse;
            ids.push(t);
        }
        assert!((c.score - lp / c.tokens.len() as f64).abs() < 1e-4);
    }
}

/// The forward pass is differentiable: with a `Var` in layer 0's q_proj (as LoRA will have),
/// the values equal the inference path, and the gradient matches a finite difference.
#[test]
fn forward_is_differentiable_through_every_layer() {
    use candle_core::Var;
    use sqlora_model::llama::Linear;
    let (_dir, m) = folder("llama", true, 9);
    let p = &prompts()[2];
    let t = p.len();
    let ids = Tensor::new(p.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let pos: Vec<u32> = (0..t as u32).collect();
    let pos = Tensor::new(pos.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let plain = m.model.forward(&ids, &pos, None, None).unwrap();

    let mut model = m.model.clone();
    let q = model.layers()[0].linear(Proj::Q).clone();
    let var = Var::from_tensor(q.weight()).unwrap();
    *model.layers_mut()[0].linear_mut(Proj::Q) =
        Linear::new(var.as_tensor().clone(), q.bias().cloned(), q.name());
    let loss_of = |model: &sqlora_model::llama::Model| {
        let h = model.forward(&ids, &pos, None, None).unwrap();
        let logits = model.logits(&h).unwrap();
        (h, logits.sqr().unwrap().mean_all().unwrap())
    };
    let (tracked, loss) = loss_of(&model);
    let diff = (tracked - &plain)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(diff < 1e-4, "differentiable path differs by {diff}");
    let grads = loss.backward().unwrap();
    let g = grads.get(var.as_tensor()).expect("gradient for the var");
    let g: Vec<Vec<f32>> = g.to_vec2().unwrap();
    let (r, c) = (3, 5);
    assert!(g[r][c].abs() > 1e-6, "gradient vanished: {}", g[r][c]);
    // Central finite difference on one weight (f32, so a loose tolerance).
    let eps = 1e-2f32;
    let w: Vec<Vec<f32>> = q.weight().to_vec2().unwrap();
    let shifted = |d: f32| {
        let mut w2 = w.clone();
        w2[r][c] += d;
        let flat: Vec<f32> = w2.into_iter().flatten().collect();
        let wt = Tensor::from_vec(flat, q.weight().dims(), &Device::Cpu).unwrap();
        let mut m2 = m.model.clone();
        *m2.layers_mut()[0].linear_mut(Proj::Q) = Linear::new(wt, q.bias().cloned(), q.name());
        loss_of(&m2).1.to_scalar::<f32>().unwrap()
    };
    let fd = (shifted(eps) - shifted(-eps)) / (2.0 * eps);
    let rel = (fd - g[r][c]).abs() / fd.abs().max(1e-4);
    assert!(rel < 0.05, "finite difference {fd} vs gradient {}", g[r][c]);
}
