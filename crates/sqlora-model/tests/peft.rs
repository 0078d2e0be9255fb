//! The PEFT adapter format: write/read round trips and loud refusals on real files in temp dirs
//! (tiny random model), and parity with Python's PEFT on the real SmolLM2 model through the
//! committed fixture tests/fixtures/reference/peft/ (made by tools/reference/make_peft_fixture.py):
//! a PEFT-made adapter gives PEFT's logits here, and a sqlora-written adapter gives here the
//! logits PEFT computed with it.
//!
//! The real model is found through `SQLORA_MODEL` or `sqlora_model::fetch::default_model_path()`;
//! when absent the parity tests print a skip line, unless `SQLORA_REQUIRE_MODEL=1`, where they
//! fail. `SQLORA_UPDATE_FIXTURES=1` rewrites the sqlora-made adapter of the fixture (then rerun
//! the Python script).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use rand::rngs::StdRng;
use rand::SeedableRng;
use sqlora_model::config::Config;
use sqlora_model::llama::Model;
use sqlora_model::lora::{AdapterError, LoraAdapter, LoraConfig, TargetModules};
use sqlora_model::peft::{
    inspect, load_adapter, read_adapter, save_adapter, CONFIG_FILE, WEIGHTS_FILE,
};
use sqlora_model::testing::{self, adapted_last_logits, merged_last_logits, real_model_f32};

// ---------------------------------------------------------------- tiny model

fn rand_tensor(rng: &mut StdRng, shape: &[usize], scale: f32) -> Tensor {
    sqlora_model::testing::rand_tensor(rng, shape, 0.0, scale)
}

/// A random 2-layer Llama (hidden 32, 4 heads, 2 kv heads, ffn `ffn`).
fn tiny_model(ffn: usize) -> Model {
    let (vocab, hidden, layers, heads, kv, hd) = (64usize, 32usize, 2usize, 4usize, 2usize, 8usize);
    let cfg = Config::from_hf_json_str(
        &serde_json::json!({
            "model_type": "llama", "architectures": ["LlamaForCausalLM"],
            "vocab_size": vocab, "hidden_size": hidden, "intermediate_size": ffn,
            "num_hidden_layers": layers, "num_attention_heads": heads,
            "num_key_value_heads": kv, "rope_theta": 10000.0, "rms_norm_eps": 1e-6,
            "max_position_embeddings": 64, "tie_word_embeddings": true,
        })
        .to_string(),
    )
    .unwrap();
    let mut rng = StdRng::seed_from_u64(ffn as u64);
    let mut w = HashMap::new();
    w.insert(
        "model.embed_tokens.weight".into(),
        rand_tensor(&mut rng, &[vocab, hidden], 1.0),
    );
    for l in 0..layers {
        let p = format!("model.layers.{l}");
        for n in ["input_layernorm", "post_attention_layernorm"] {
            w.insert(
                format!("{p}.{n}.weight"),
                Tensor::ones(hidden, DType::F32, &Device::Cpu).unwrap(),
            );
        }
        for (name, out, inp) in [
            ("self_attn.q_proj", heads * hd, hidden),
            ("self_attn.k_proj", kv * hd, hidden),
            ("self_attn.v_proj", kv * hd, hidden),
            ("self_attn.o_proj", hidden, heads * hd),
            ("mlp.gate_proj", ffn, hidden),
            ("mlp.up_proj", ffn, hidden),
            ("mlp.down_proj", hidden, ffn),
        ] {
            w.insert(
                format!("{p}.{name}.weight"),
                rand_tensor(&mut rng, &[out, inp], 0.3),
            );
        }
    }
    w.insert(
        "model.norm.weight".into(),
        Tensor::ones(hidden, DType::F32, &Device::Cpu).unwrap(),
    );
    Model::load(VarBuilder::from_tensors(w, DType::F32, &Device::Cpu), &cfg).unwrap()
}

/// An adapter with random non-zero A and B for `model`, drawn from `seed` (the PEFT
/// round-trip fixtures were made with these values).
fn random_adapter(
    name: &str,
    model: &Model,
    config: LoraConfig,
    seed: u64,
    scale: f32,
) -> LoraAdapter {
    // `testing::random_adapter` draws from `seed ^ 0x5eed`; the seed it gives `init` only
    // fixes the shapes.
    sqlora_model::testing::random_adapter(name, model, config, seed ^ 0x5eed, scale)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn assert_same_adapter(a: &LoraAdapter, b: &LoraAdapter) {
    assert_eq!(a.config, b.config);
    assert_eq!(
        a.modules().keys().collect::<Vec<_>>(),
        b.modules().keys().collect::<Vec<_>>()
    );
    for (k, m) in a.modules() {
        let n = b.module(k).unwrap();
        assert_eq!(max_abs_diff(&m.a, &n.a), 0.0, "{k} A");
        assert_eq!(max_abs_diff(&m.b, &n.b), 0.0, "{k} B");
        assert_eq!(m.scale, n.scale, "{k} scale");
    }
}

fn edit_config(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join(CONFIG_FILE);
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&p, v.to_string()).unwrap();
}

fn rewrite_weights(dir: &Path, f: impl FnOnce(&mut HashMap<String, Tensor>)) {
    let p = dir.join(WEIGHTS_FILE);
    let mut t = candle_core::safetensors::load(&p, &Device::Cpu).unwrap();
    f(&mut t);
    candle_core::safetensors::save(&t, &p).unwrap();
}

// ---------------------------------------------------------------- format tests

#[test]
fn written_adapters_read_back_identically_with_peft_names() {
    let model = tiny_model(48);
    let mut cfg = LoraConfig::new(
        4,
        8.0,
        &["q_proj", "k_proj", "v_proj", "o_proj", "down_proj"],
    );
    cfg.rank_pattern = vec![("down_proj".into(), 2)];
    cfg.alpha_pattern = vec![("o_proj".into(), 32.0)];
    cfg.layers_to_transform = Some(vec![1]);
    cfg.use_rslora = true;
    let adapter = random_adapter("sql-retail", &model, cfg, 1, 0.3);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("retail");
    save_adapter(&adapter, &dir).unwrap();

    // PEFT's key names and shapes.
    let raw = candle_core::safetensors::load(dir.join(WEIGHTS_FILE), &Device::Cpu).unwrap();
    let mut keys: Vec<&String> = raw.keys().collect();
    keys.sort();
    assert_eq!(keys.len(), 10);
    assert_eq!(
        keys[0],
        "base_model.model.model.layers.1.mlp.down_proj.lora_A.weight"
    );
    let q_a = &raw["base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight"];
    let q_b = &raw["base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight"];
    assert_eq!(q_a.dims(), &[4, 32]);
    assert_eq!(q_b.dims(), &[32, 4]);
    assert_eq!(
        raw["base_model.model.model.layers.1.mlp.down_proj.lora_A.weight"].dims(),
        &[2, 48]
    );
    let cfg_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(CONFIG_FILE)).unwrap()).unwrap();
    assert_eq!(cfg_json["peft_type"], "LORA");
    assert_eq!(cfg_json["r"], 4);
    assert_eq!(cfg_json["lora_alpha"], 8.0);
    assert_eq!(cfg_json["rank_pattern"]["down_proj"], 2);
    assert_eq!(cfg_json["use_rslora"], true);
    assert_eq!(cfg_json["layers_to_transform"], serde_json::json!([1]));

    let back = load_adapter(&dir, &model).unwrap();
    assert_eq!(back.name, "retail");
    assert_same_adapter(&adapter, &back);
    let o = back.module("model.layers.1.self_attn.o_proj").unwrap();
    assert!(
        (o.scale - 32.0 / 2.0).abs() < 1e-12,
        "rsLoRA: alpha / sqrt(r)"
    );

    let s = inspect(&dir).unwrap();
    assert_eq!(s.rank, 4);
    assert_eq!(s.ranks, vec![2, 4]);
    assert_eq!(s.alphas.len(), 2);
    assert_eq!(
        s.targets,
        vec!["down_proj", "k_proj", "o_proj", "q_proj", "v_proj"]
    );
    assert_eq!(s.layers, vec![1]);
    assert_eq!(s.modules, 5);
    let params = 4 * 32 + 32 * 4 // q
        + 2 * (4 * 32 + 16 * 4) // k, v
        + 4 * 32 + 32 * 4 // o
        + 2 * 48 + 32 * 2; // down
    assert_eq!(s.parameters, params);
    assert_eq!(s.tensor_bytes, 4 * params as u64);
    let file = std::fs::metadata(dir.join(WEIGHTS_FILE)).unwrap().len();
    assert_eq!(s.file_bytes, Some(file));
    assert!(file > s.tensor_bytes);
    assert!(s.to_string().contains("rank:        4 (in use: 2, 4)"));
}

#[test]
fn what_cannot_be_applied_is_refused_with_the_reason() {
    let model = tiny_model(48);
    let adapter = random_adapter(
        "a",
        &model,
        LoraConfig::new(2, 4.0, &["q_proj", "v_proj"]),
        2,
        0.3,
    );
    let tmp = tempfile::tempdir().unwrap();
    let fresh = |name: &str| {
        let d = tmp.path().join(name);
        save_adapter(&adapter, &d).unwrap();
        d
    };
    let unsupported = |dir: &Path, needle: &str| match read_adapter(dir, &Device::Cpu) {
        Err(AdapterError::Unsupported(m)) => assert!(m.contains(needle), "{needle}: {m}"),
        other => panic!("{needle}: expected Unsupported, got {other:?}"),
    };

    let d = fresh("dora");
    edit_config(&d, |v| v["use_dora"] = true.into());
    unsupported(&d, "DoRA");

    let d = fresh("dora-weights");
    rewrite_weights(&d, |t| {
        t.insert(
            "base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector".into(),
            Tensor::ones(32, DType::F32, &Device::Cpu).unwrap(),
        );
    });
    unsupported(&d, "DoRA");

    let d = fresh("save");
    edit_config(&d, |v| {
        v["modules_to_save"] = serde_json::json!(["lm_head"])
    });
    unsupported(&d, "modules_to_save");

    let d = fresh("embedding");
    rewrite_weights(&d, |t| {
        t.insert(
            "base_model.model.model.embed_tokens.lora_embedding_A".into(),
            Tensor::ones((2, 64), DType::F32, &Device::Cpu).unwrap(),
        );
    });
    unsupported(&d, "embedding");

    let d = fresh("fan");
    edit_config(&d, |v| v["fan_in_fan_out"] = true.into());
    unsupported(&d, "fan_in_fan_out");

    let d = fresh("bias");
    edit_config(&d, |v| v["bias"] = "all".into());
    unsupported(&d, "bias");

    let d = fresh("ia3");
    edit_config(&d, |v| v["peft_type"] = "IA3".into());
    unsupported(&d, "IA3");

    let d = fresh("pickle");
    std::fs::rename(d.join(WEIGHTS_FILE), d.join("adapter_model.bin")).unwrap();
    unsupported(&d, "adapter_model.bin");

    // Targets that match nothing in the base model.
    let d = fresh("nothing");
    edit_config(&d, |v| {
        v["target_modules"] = serde_json::json!(["query_key_value"])
    });
    match load_adapter(&d, &model) {
        Err(AdapterError::Mismatch(m)) => assert!(m.contains("do not select"), "{m}"),
        other => panic!("expected Mismatch, got {other:?}"),
    }
    let d = fresh("nothing-at-all");
    edit_config(&d, |v| {
        v["target_modules"] = serde_json::json!(["query_key_value"])
    });
    rewrite_weights(&d, |t| t.clear());
    assert!(matches!(
        read_adapter(&d, &Device::Cpu),
        Err(AdapterError::Invalid(_))
    ));

    // Targets a module the weights lack.
    let d = fresh("missing");
    edit_config(&d, |v| {
        v["target_modules"] = serde_json::json!(["q_proj", "v_proj", "up_proj"])
    });
    match load_adapter(&d, &model) {
        Err(AdapterError::Mismatch(m)) => assert!(m.contains("up_proj"), "{m}"),
        other => panic!("expected Mismatch, got {other:?}"),
    }

    // A lora_B without its lora_A.
    let d = fresh("half");
    rewrite_weights(&d, |t| {
        t.remove("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight");
    });
    assert!(
        matches!(read_adapter(&d, &Device::Cpu), Err(AdapterError::Invalid(m)) if m.contains("lora_A"))
    );

    // A rank that disagrees with the config.
    let d = fresh("rank");
    edit_config(&d, |v| v["r"] = 3.into());
    assert!(
        matches!(read_adapter(&d, &Device::Cpu), Err(AdapterError::Invalid(m)) if m.contains("rank"))
    );

    // A base model whose shapes differ (same names, another intermediate size).
    let other = tiny_model(40);
    let up = random_adapter("up", &model, LoraConfig::new(2, 4.0, &["up_proj"]), 3, 0.3);
    let d = tmp.path().join("shape");
    save_adapter(&up, &d).unwrap();
    assert!(load_adapter(&d, &model).is_ok());
    match load_adapter(&d, &other) {
        Err(AdapterError::Mismatch(m)) => assert!(m.contains("features"), "{m}"),
        other => panic!("expected Mismatch, got {other:?}"),
    }
}

#[test]
fn regex_and_all_linear_targets_round_trip() {
    let model = tiny_model(48);
    let mut cfg = LoraConfig::new(3, 6.0, &[]);
    cfg.target_modules =
        TargetModules::Regex(r"model\.layers\.0\.(self_attn\.q_proj|mlp\.up_proj)".into());
    let a = random_adapter("re", &model, cfg, 4, 0.3);
    assert_eq!(a.modules().len(), 2);
    let mut all = LoraConfig::new(2, 2.0, &[]);
    all.target_modules = TargetModules::AllLinear;
    let b = random_adapter("all", &model, all, 5, 0.3);
    assert_eq!(b.modules().len(), 14);
    let tmp = tempfile::tempdir().unwrap();
    for x in [&a, &b] {
        let d = tmp.path().join(&x.name);
        save_adapter(x, &d).unwrap();
        assert_same_adapter(x, &load_adapter(&d, &model).unwrap());
    }
}

// ---------------------------------------------------------------- parity with PEFT

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/reference/peft")
}

fn read_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn prompts() -> Vec<(String, Vec<u32>)> {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture_dir().join("prompts.json")).unwrap())
            .unwrap();
    let mut out: Vec<(String, Vec<u32>)> = v["input_ids"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, ids)| {
            let ids = ids
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect();
            (k.clone(), ids)
        })
        .collect();
    out.sort();
    out
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &x)| {
            if x > bv {
                (i, x)
            } else {
                (bi, bv)
            }
        })
        .0
}

/// Logits agree with the reference, and so does the adapter's change of the logits.
fn check_parity(label: &str, ours: &[f32], ours_base: &[f32], theirs: &[f32], theirs_base: &[f32]) {
    let ours_delta: Vec<f32> = ours.iter().zip(ours_base).map(|(a, b)| a - b).collect();
    let theirs_delta: Vec<f32> = theirs.iter().zip(theirs_base).map(|(a, b)| a - b).collect();
    let effect = theirs_delta.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let d = testing::max_abs_diff(ours, theirs);
    let dd = testing::max_abs_diff(&ours_delta, &theirs_delta);
    eprintln!(
        "{label}: adapter moves logits by up to {effect:.4}; |ours - PEFT| <= {d:.5}; |our change - PEFT's change| <= {dd:.5}"
    );
    assert!(effect > 0.2, "{label}: the reference adapter must matter");
    assert!(d < 2e-3, "{label}: logits differ from PEFT by {d}");
    assert!(
        dd < 2e-3,
        "{label}: adapter effect differs from PEFT's by {dd}"
    );
    assert_eq!(argmax(ours), argmax(theirs), "{label}: argmax");
}

#[test]
fn a_peft_made_adapter_gives_peft_logits() {
    let Some(lm) = real_model_f32() else { return };
    let dir = fixture_dir();
    let adapter = load_adapter(&dir.join("peft_made"), &lm.model).unwrap();
    // r=8 on 7 projections of layers 0, 14, 29, down_proj at rank 4, o_proj at alpha 32.
    assert_eq!(adapter.modules().len(), 21);
    let down = adapter.module("model.layers.14.mlp.down_proj").unwrap();
    assert_eq!(down.rank(), 4);
    assert_eq!(down.scale, 4.0);
    assert_eq!(
        adapter
            .module("model.layers.0.self_attn.o_proj")
            .unwrap()
            .scale,
        4.0
    );
    assert_eq!(
        adapter
            .module("model.layers.29.self_attn.q_proj")
            .unwrap()
            .scale,
        2.0
    );
    for (name, ids) in prompts() {
        let base = lm.model.last_logits(&ids).unwrap();
        let theirs_base = read_f32(&dir.join(format!("{name}.base.bin")));
        let theirs = read_f32(&dir.join(format!("{name}.peft_made.bin")));
        let merged = merged_last_logits(&lm.model, &adapter, &ids);
        check_parity(
            &format!("{name} (merged)"),
            &merged,
            &base,
            &theirs,
            &theirs_base,
        );
    }
}

/// The sqlora-written adapter of the fixture: deterministic, so the committed folder can be
/// checked against what the writer produces today.
fn sqlora_made(model: &Model) -> LoraAdapter {
    let mut cfg = LoraConfig::new(4, 8.0, &[]);
    cfg.target_modules =
        TargetModules::Regex(r"model\.layers\.(1|28)\.self_attn\.(q_proj|v_proj)".into());
    cfg.use_rslora = true;
    let mut a = random_adapter("sqlora_made", model, cfg, 2024, 0.08);
    a.base_model = Some("SmolLM2-135M-Instruct.Q4_1.gguf".into());
    a
}

#[test]
fn a_sqlora_written_adapter_gives_in_peft_the_logits_it_gives_here() {
    let Some(lm) = real_model_f32() else { return };
    let dir = fixture_dir();
    let ours = sqlora_made(&lm.model);
    let committed = dir.join("sqlora_made");
    if std::env::var("SQLORA_UPDATE_FIXTURES").as_deref() == Ok("1") {
        save_adapter(&ours, &committed).unwrap();
        eprintln!(
            "wrote {}; now rerun tools/reference/make_peft_fixture.py",
            committed.display()
        );
        return;
    }
    // The committed folder is exactly what the writer produces today.
    let tmp = tempfile::tempdir().unwrap();
    let fresh = tmp.path().join("sqlora_made");
    save_adapter(&ours, &fresh).unwrap();
    for f in [CONFIG_FILE, WEIGHTS_FILE] {
        assert_eq!(
            std::fs::read(fresh.join(f)).unwrap(),
            std::fs::read(committed.join(f)).unwrap(),
            "{f} changed since PEFT checked it: rerun with SQLORA_UPDATE_FIXTURES=1 and the script"
        );
    }
    let check: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("sqlora_made_check.json")).unwrap())
            .unwrap();
    assert_eq!(check["missing_in_peft_model"], serde_json::json!([]));
    assert_eq!(check["extra_in_peft_model"], serde_json::json!([]));
    assert_eq!(check["tensors_in_file"], 8);
    assert_eq!(check["max_abs_diff_file_vs_loaded"], 0.0);
    let adapter = load_adapter(&committed, &lm.model).unwrap();
    for (name, ids) in prompts() {
        let base = lm.model.last_logits(&ids).unwrap();
        let theirs_base = read_f32(&dir.join(format!("{name}.base.bin")));
        let theirs = read_f32(&dir.join(format!("{name}.sqlora_made.bin")));
        let merged = merged_last_logits(&lm.model, &adapter, &ids);
        check_parity(
            &format!("{name} (merged)"),
            &merged,
            &base,
            &theirs,
            &theirs_base,
        );
    }
}

#[test]
fn both_adapters_in_one_mixed_batch_give_peft_logits_row_by_row() {
    use sqlora_model::lora::{AdapterBatch, AdapterSet};
    let Some(lm) = real_model_f32() else { return };
    let dir = fixture_dir();
    let peft_made = load_adapter(&dir.join("peft_made"), &lm.model).unwrap();
    let sqlora = load_adapter(&dir.join("sqlora_made"), &lm.model).unwrap();
    for (name, ids) in prompts() {
        let theirs_base = read_f32(&dir.join(format!("{name}.base.bin")));
        let theirs_peft = read_f32(&dir.join(format!("{name}.peft_made.bin")));
        let theirs_sq = read_f32(&dir.join(format!("{name}.sqlora_made.bin")));
        let base = lm.model.last_logits(&ids).unwrap();
        // Each adapter alone, unmerged.
        let one = adapted_last_logits(
            &lm.model,
            std::slice::from_ref(&ids),
            Some(&AdapterBatch::single(&peft_made)),
        );
        check_parity(
            &format!("{name} (unmerged)"),
            &one[0],
            &base,
            &theirs_peft,
            &theirs_base,
        );
        // Both adapters and the bare model in one gathered batch.
        let mut set = AdapterSet::new(&Device::Cpu);
        let p = set.insert(peft_made.clone()).unwrap();
        let s = set.insert(sqlora.clone()).unwrap();
        let batch = set.batch(&[Some(s), None, Some(p)]).unwrap();
        assert!(batch.is_gathered());
        let rows = vec![ids.clone(), ids.clone(), ids.clone()];
        let mixed = adapted_last_logits(&lm.model, &rows, Some(&batch));
        check_parity(
            &format!("{name} (batch row 0)"),
            &mixed[0],
            &base,
            &theirs_sq,
            &theirs_base,
        );
        assert!(
            testing::max_abs_diff(&mixed[1], &base) < 1e-3,
            "{name}: the row without adapter"
        );
        check_parity(
            &format!("{name} (batch row 2)"),
            &mixed[2],
            &base,
            &theirs_peft,
            &theirs_base,
        );
    }
}

#[test]
fn generation_with_per_row_adapters_matches_each_row_alone_on_the_real_model() {
    use sqlora_model::generate::generate_adapted;
    use sqlora_model::lora::AdapterSet;
    use sqlora_model::GenerateParams;
    // f32 activations: rows alone and batched agree to 1e-2 in log-probability (see
    // `generate.rs` for why 8-bit activations do not).
    let Some(lm) = real_model_f32() else { return };
    let dir = fixture_dir();
    let mut set = AdapterSet::new(&Device::Cpu);
    let p = set
        .insert(load_adapter(&dir.join("peft_made"), &lm.model).unwrap())
        .unwrap();
    let s = set
        .insert(load_adapter(&dir.join("sqlora_made"), &lm.model).unwrap())
        .unwrap();
    let ids: Vec<Vec<u32>> = prompts().into_iter().map(|(_, ids)| ids).collect();
    // Different prompt lengths (left padding), different adapters, one row without.
    let prompts = vec![
        ids[0].clone(),
        ids[1].clone(),
        ids[1].clone(),
        ids[0].clone(),
    ];
    let per_row = [Some(p), Some(s), None, Some(s)];
    let params = GenerateParams {
        max_new_tokens: 12,
        stop_on_eos: false,
        ..GenerateParams::default()
    };
    let together = generate_adapted(lm, &prompts, &set, &per_row, &params).unwrap();
    for (r, prompt) in prompts.iter().enumerate() {
        let alone = generate_adapted(
            lm,
            std::slice::from_ref(prompt),
            &set,
            &per_row[r..r + 1],
            &params,
        )
        .unwrap();
        assert_eq!(together[r].tokens, alone[0].tokens, "row {r}");
        assert!(
            (together[r].logprob - alone[0].logprob).abs() < 1e-2,
            "row {r}"
        );
    }
    let wrong = generate_adapted(lm, &prompts, &set, &per_row[..3], &params);
    assert!(wrong.is_err(), "one adapter entry per prompt");
}

#[test]
fn half_precision_adapters_load_as_f32() {
    let model = tiny_model(48);
    let adapter = random_adapter("h", &model, LoraConfig::new(2, 4.0, &["k_proj"]), 8, 0.3);
    let tmp = tempfile::tempdir().unwrap();
    for dtype in [DType::F16, DType::BF16] {
        let d = tmp.path().join(format!("{dtype:?}"));
        save_adapter(&adapter, &d).unwrap();
        rewrite_weights(&d, |t| {
            for v in t.values_mut() {
                *v = v.to_dtype(dtype).unwrap();
            }
        });
        let back = load_adapter(&d, &model).unwrap();
        for (k, m) in adapter.modules() {
            let n = back.module(k).unwrap();
            assert_eq!(n.a.dtype(), DType::F32);
            let d = max_abs_diff(&m.a, &n.a).max(max_abs_diff(&m.b, &n.b));
            assert!(d > 0.0 && d < 1e-2, "{dtype:?} {k}: {d}");
        }
    }
}

#[test]
fn the_peft_made_fixture_inspects_without_a_model() {
    let s = inspect(&fixture_dir().join("peft_made")).unwrap();
    assert_eq!(s.rank, 8);
    assert_eq!(s.ranks, vec![4, 8]);
    assert_eq!(s.layers, vec![0, 14, 29]);
    assert_eq!(s.modules, 21);
    assert_eq!(s.targets.len(), 7);
    // SmolLM2: hidden 576, kv 192, ffn 1536; per layer q,o: 8*576*2 each, k,v: 8*(576+192),
    // gate,up: 8*(576+1536), down (r=4): 4*(1536+576).
    let per_layer = 2 * 8 * 576 * 2 + 2 * 8 * (576 + 192) + 2 * 8 * (576 + 1536) + 4 * (1536 + 576);
    assert_eq!(s.parameters, 3 * per_layer);
    eprintln!("{s}");
}
