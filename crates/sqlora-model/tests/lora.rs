//! LoRA on a tiny random Llama: batched gathering of mixed adapters equals each adapter alone,
//! merge/unmerge round trips, fresh adapters change nothing, gradients reach A and B only.

use std::collections::{BTreeMap, HashMap};

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::VarBuilder;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlora_model::config::Config;
use sqlora_model::llama::Model;
use sqlora_model::lora::{
    merge_adapter, unmerge_adapter, AdapterBatch, AdapterError, AdapterSet, LoraAdapter,
    LoraConfig, TargetModules,
};

const VOCAB: usize = 64;
const HIDDEN: usize = 32;
const FFN: usize = 48;
const LAYERS: usize = 2;
const HEADS: usize = 4;
const KV_HEADS: usize = 2;
const HEAD_DIM: usize = 8;

fn rand_tensor(rng: &mut StdRng, shape: &[usize], center: f32, scale: f32) -> Tensor {
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n)
        .map(|_| center + scale * (rng.gen::<f32>() * 2.0 - 1.0))
        .collect();
    Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
}

/// A random 2-layer Llama built straight from tensors (no files needed).
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
            "max_position_embeddings": 128,
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

/// An adapter for `model` with random, non-zero A and B.
pub fn random_adapter(name: &str, model: &Model, config: LoraConfig, seed: u64) -> LoraAdapter {
    let fresh = LoraAdapter::init(name, model, config.clone(), seed).unwrap();
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let mut modules = BTreeMap::new();
    for (key, m) in fresh.modules() {
        let a = rand_tensor(&mut rng, m.a.dims(), 0.0, 0.5);
        let b = rand_tensor(&mut rng, m.b.dims(), 0.0, 0.5);
        modules.insert(key.clone(), (a, b));
    }
    LoraAdapter::new(name, config, modules).unwrap()
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

fn all_targets() -> Vec<&'static str> {
    sqlora_model::lora::PROJECTIONS.to_vec()
}

#[test]
fn init_targets_by_name_with_rank_overrides_and_zero_b() {
    let model = tiny_model(1);
    let mut cfg = LoraConfig::new(4, 8.0, &["q_proj", "v_proj", "down_proj"]);
    cfg.rank_pattern = vec![("down_proj".into(), 3)];
    cfg.alpha_pattern = vec![(r"layers\.1\.self_attn\.v_proj".into(), 2.0)];
    let a = LoraAdapter::init("x", &model, cfg, 7).unwrap();
    let keys: Vec<&str> = a.modules().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        vec![
            "model.layers.0.mlp.down_proj",
            "model.layers.0.self_attn.q_proj",
            "model.layers.0.self_attn.v_proj",
            "model.layers.1.mlp.down_proj",
            "model.layers.1.self_attn.q_proj",
            "model.layers.1.self_attn.v_proj",
        ]
    );
    let down = a.module("model.layers.0.mlp.down_proj").unwrap();
    assert_eq!(down.a.dims(), &[3, FFN]);
    assert_eq!(down.b.dims(), &[HIDDEN, 3]);
    assert!((down.scale - 8.0 / 3.0).abs() < 1e-12);
    assert_eq!(
        a.module("model.layers.1.self_attn.v_proj").unwrap().scale,
        0.5
    );
    assert_eq!(
        a.module("model.layers.0.self_attn.v_proj").unwrap().scale,
        2.0
    );
    // A is Kaiming-uniform U(±1/√in) and not constant; B is zero; both are trainable vars.
    let q = a.module("model.layers.0.self_attn.q_proj").unwrap();
    let av: Vec<f32> = q.a.flatten_all().unwrap().to_vec1().unwrap();
    let bound = 1.0 / (HIDDEN as f32).sqrt();
    assert!(av.iter().all(|x| x.abs() <= bound));
    assert!(av.iter().any(|x| x.abs() > bound / 2.0));
    assert_eq!(
        q.b.abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap(),
        0.0
    );
    assert_eq!(a.vars().len(), 12);
    // Same seed, same A; another seed, another A.
    let cfg = a.config.clone();
    let same = LoraAdapter::init("y", &model, cfg.clone(), 7).unwrap();
    let other = LoraAdapter::init("z", &model, cfg, 8).unwrap();
    let key = "model.layers.0.self_attn.q_proj";
    assert_eq!(max_abs_diff(&same.module(key).unwrap().a, &q.a), 0.0);
    assert!(max_abs_diff(&other.module(key).unwrap().a, &q.a) > 0.0);
}

#[test]
fn targets_that_match_nothing_or_the_head_are_refused() {
    let model = tiny_model(1);
    let err = LoraAdapter::init("x", &model, LoraConfig::new(4, 8.0, &["c_attn"]), 0).unwrap_err();
    assert!(
        matches!(err, AdapterError::Mismatch(ref m) if m.contains("match no projection")),
        "{err}"
    );
    let err = LoraAdapter::init(
        "x",
        &model,
        LoraConfig::new(4, 8.0, &["lm_head", "q_proj"]),
        0,
    )
    .unwrap_err();
    assert!(
        matches!(err, AdapterError::Unsupported(ref m) if m.contains("lm_head")),
        "{err}"
    );
    let mut cfg = LoraConfig::new(2, 4.0, &[]);
    cfg.target_modules = TargetModules::Regex(r"model\.layers\.1\.mlp\.(up|down)_proj".into());
    let a = LoraAdapter::init("x", &model, cfg, 0).unwrap();
    assert_eq!(a.modules().len(), 2);
}

#[test]
fn gathered_mixed_batch_equals_each_adapter_alone_per_module() {
    let model = tiny_model(2);
    let mut cfg1 = LoraConfig::new(4, 8.0, &["q_proj", "v_proj"]);
    cfg1.rank_pattern = vec![("v_proj".into(), 2)];
    let a1 = random_adapter("one", &model, cfg1, 11);
    let a2 = random_adapter("two", &model, LoraConfig::new(7, 3.0, &all_targets()), 12);
    let mut set = AdapterSet::new(&Device::Cpu);
    let id1 = set.insert(a1.clone()).unwrap();
    let id2 = set.insert(a2.clone()).unwrap();
    assert_eq!(set.len(), 2);
    let rows = [Some(id2), None, Some(id1), Some(id2)];
    let batch = set.batch(&rows).unwrap();
    assert!(batch.is_gathered());
    let mut rng = StdRng::seed_from_u64(3);
    for key in [
        "model.layers.0.self_attn.q_proj",
        "model.layers.1.self_attn.v_proj",
        "model.layers.1.mlp.down_proj",
    ] {
        let inp = if key.ends_with("down_proj") {
            FFN
        } else {
            HIDDEN
        };
        let x = rand_tensor(&mut rng, &[4, 5, inp], 0.0, 1.0);
        let got = batch.delta(key, &x).unwrap().unwrap();
        for (r, id) in rows.iter().enumerate() {
            let xr = x.i(r..r + 1).unwrap();
            let alone = match id.and_then(|id| set.get(id)) {
                Some(a) => AdapterBatch::single(a).delta(key, &xr).unwrap(),
                None => None,
            };
            let gr = got.i(r..r + 1).unwrap();
            match alone {
                Some(want) => assert!(max_abs_diff(&gr, &want) < 1e-5, "{key} row {r}"),
                None => {
                    let z = gr
                        .abs()
                        .unwrap()
                        .sum_all()
                        .unwrap()
                        .to_scalar::<f32>()
                        .unwrap();
                    assert_eq!(z, 0.0, "{key} row {r} has no adapter for it")
                }
            }
        }
    }
    // A module only adapter 2 touches: adapter-1 rows get exactly zero.
    let x = rand_tensor(&mut rng, &[4, 3, HIDDEN], 0.0, 1.0);
    let got = batch
        .delta("model.layers.0.mlp.up_proj", &x)
        .unwrap()
        .unwrap();
    let row2 = got.i(2).unwrap().abs().unwrap().sum_all().unwrap();
    assert_eq!(row2.to_scalar::<f32>().unwrap(), 0.0);
    // select_rows follows finished rows.
    let sub = batch.select_rows(&[2, 0]).unwrap();
    let x = rand_tensor(&mut rng, &[2, 1, HIDDEN], 0.0, 1.0);
    let got = sub
        .delta("model.layers.0.self_attn.q_proj", &x)
        .unwrap()
        .unwrap();
    let want = AdapterBatch::single(&a1)
        .delta("model.layers.0.self_attn.q_proj", &x.i(0..1).unwrap())
        .unwrap()
        .unwrap();
    assert!(max_abs_diff(&got.i(0..1).unwrap(), &want) < 1e-5);
    // Slots are stable across eviction; unknown slots are refused.
    set.remove("one").unwrap();
    assert_eq!(set.id("two"), Some(id2));
    assert!(set.batch(&[Some(id1)]).is_err());
    let id3 = set.insert(a1).unwrap();
    assert_eq!(id3, id1);
}

#[test]
fn merged_weights_reproduce_the_adapter_and_unmerge_restores_them() {
    let mut model = tiny_model(4);
    let adapter = random_adapter("m", &model, LoraConfig::new(3, 6.0, &all_targets()), 5);
    let key = "model.layers.1.mlp.gate_proj";
    let w0: Vec<Tensor> = model.linears().iter().map(|l| l.weight().clone()).collect();
    let lin = model
        .linears()
        .into_iter()
        .find(|l| l.name() == key)
        .unwrap()
        .clone();
    let x = rand_tensor(&mut StdRng::seed_from_u64(9), &[2, 3, HIDDEN], 0.0, 1.0);
    let unmerged = (lin.forward(&x).unwrap()
        + AdapterBatch::single(&adapter)
            .delta(key, &x)
            .unwrap()
            .unwrap())
    .unwrap();
    let before = model.last_logits(&[3, 9, 27, 4]).unwrap();

    merge_adapter(&mut model, &adapter).unwrap();
    let merged_lin = model
        .linears()
        .into_iter()
        .find(|l| l.name() == key)
        .unwrap()
        .clone();
    assert!(max_abs_diff(&merged_lin.forward(&x).unwrap(), &unmerged) < 1e-4);
    let merged_logits = model.last_logits(&[3, 9, 27, 4]).unwrap();
    let changed = before
        .iter()
        .zip(&merged_logits)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        changed > 1e-2,
        "merging a non-zero adapter must change the logits"
    );

    unmerge_adapter(&mut model, &adapter).unwrap();
    for (l, w) in model.linears().iter().zip(&w0) {
        assert!(max_abs_diff(l.weight(), w) < 1e-5, "{}", l.name());
    }
    let after = model.last_logits(&[3, 9, 27, 4]).unwrap();
    for (a, b) in before.iter().zip(&after) {
        assert!((a - b).abs() < 1e-3);
    }
}

#[test]
fn adapters_for_another_shape_are_refused() {
    let model = tiny_model(1);
    let mut modules = BTreeMap::new();
    modules.insert(
        "model.layers.0.self_attn.q_proj".to_string(),
        (
            Tensor::zeros((2, HIDDEN + 1), DType::F32, &Device::Cpu).unwrap(),
            Tensor::zeros((HEADS * HEAD_DIM, 2), DType::F32, &Device::Cpu).unwrap(),
        ),
    );
    let mut cfg = LoraConfig::new(2, 2.0, &["q_proj"]);
    cfg.layers_to_transform = Some(vec![0]);
    let a = LoraAdapter::new("bad", cfg, modules).unwrap();
    let err = a.check_fits(&model).unwrap_err();
    assert!(
        matches!(err, AdapterError::Mismatch(ref m) if m.contains("features")),
        "{err}"
    );
    let mut model2 = model.clone();
    assert!(merge_adapter(&mut model2, &a).is_err());
}
