//! LoRA on a tiny random Llama: batched gathering of mixed adapters equals each adapter alone,
//! merge/unmerge round trips, fresh adapters change nothing, gradients reach A and B only.

use std::collections::BTreeMap;

use candle_core::{DType, Device, IndexOp, Tensor};
use rand::rngs::StdRng;
use rand::SeedableRng;
use sqlora_model::llama::Model;
use sqlora_model::lora::{
    merge_adapter, unmerge_adapter, AdapterBatch, AdapterError, AdapterSet, LoraAdapter,
    LoraConfig, TargetModules,
};
use sqlora_model::testing::{self, rand_tensor, TinyLlama};

const HIDDEN: usize = 32;
const FFN: usize = 48;

/// The default tiny Llama (2 layers, hidden 32, MLP 48) with random weights.
pub fn tiny_model(seed: u64) -> Model {
    TinyLlama::default().model(seed)
}

/// An adapter for `model` with random, non-zero A and B.
pub fn random_adapter(name: &str, model: &Model, config: LoraConfig, seed: u64) -> LoraAdapter {
    testing::random_adapter(name, model, config, seed, 0.5)
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
            Tensor::zeros((HIDDEN, 2), DType::F32, &Device::Cpu).unwrap(),
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

// ---------------------------------------------------------------- through the model

fn ids_tensor(rows: &[Vec<u32>]) -> (Tensor, Tensor) {
    let b = rows.len();
    let t = rows[0].len();
    let flat: Vec<u32> = rows.iter().flatten().copied().collect();
    let pos: Vec<u32> = (0..b).flat_map(|_| 0..t as u32).collect();
    (
        Tensor::from_vec(flat, (b, t), &Device::Cpu).unwrap(),
        Tensor::from_vec(pos, (b, t), &Device::Cpu).unwrap(),
    )
}

/// All-position logits `[b, t, vocab]` of `rows` (equal lengths) with `adapters`.
fn logits_with(model: &Model, rows: &[Vec<u32>], adapters: Option<&AdapterBatch>) -> Tensor {
    let (ids, pos) = ids_tensor(rows);
    let h = model
        .forward_with(&ids, &pos, None, None, adapters)
        .unwrap();
    model.logits(&h).unwrap()
}

#[test]
fn a_fresh_adapter_changes_nothing_and_only_a_and_b_get_gradients() {
    let model = tiny_model(6);
    let mut cfg = LoraConfig::new(4, 8.0, &all_targets());
    cfg.rank_pattern = vec![("mlp.down_proj".into(), 2)];
    let adapter = LoraAdapter::init("train", &model, cfg, 3).unwrap();
    let rows = vec![vec![5u32, 9, 17, 33, 2, 40], vec![7, 7, 8, 61, 3, 12]];
    let base = logits_with(&model, &rows, None);
    let fresh = logits_with(&model, &rows, Some(&AdapterBatch::training(&adapter)));
    // The tracked (training) path uses plain ops instead of fused kernels: equal up to rounding.
    let d = max_abs_diff(&base, &fresh);
    assert!(d < 1e-4, "B = 0 must be a no-op, logits moved by {d}");
    let frozen_fresh = adapter.frozen().unwrap();
    let same = logits_with(&model, &rows, Some(&AdapterBatch::single(&frozen_fresh)));
    assert_eq!(max_abs_diff(&base, &same), 0.0, "B = 0 must be a no-op");

    // Next-token cross-entropy.
    let loss_of = |logits: &Tensor| {
        let (b, t, v) = logits.dims3().unwrap();
        let x = logits
            .narrow(1, 0, t - 1)
            .unwrap()
            .reshape((b * (t - 1), v))
            .unwrap();
        let targets: Vec<u32> = rows.iter().flat_map(|r| r[1..].to_vec()).collect();
        let y = Tensor::new(targets.as_slice(), &Device::Cpu).unwrap();
        candle_nn::loss::cross_entropy(&x, &y).unwrap()
    };
    let loss = loss_of(&fresh);
    let grads = loss.backward().unwrap();
    for lin in model.linears() {
        // candle's matmul backward also computes a gradient for a plain-tensor operand, but
        // only `Var`s are ever updated: the base weights are not variables.
        assert!(!lin.weight().is_variable(), "{} is trainable", lin.name());
    }
    assert!(!model.embed_tokens().is_variable());
    assert_eq!(adapter.vars().len(), 2 * adapter.modules().len());
    for (i, (key, m)) in adapter.modules().iter().enumerate() {
        let ga = grads
            .get(&m.a)
            .unwrap_or_else(|| panic!("{key}: no grad for A"));
        let gb = grads
            .get(&m.b)
            .unwrap_or_else(|| panic!("{key}: no grad for B"));
        assert_eq!(ga.dims(), m.a.dims());
        assert_eq!(gb.dims(), m.b.dims());
        // With B = 0 the gradient of A vanishes and that of B does not.
        let na = ga
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let nb = gb
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(na, 0.0, "{key}");
        assert!(nb > 0.0, "{key}");
        assert_eq!(adapter.vars()[2 * i].as_tensor().id(), m.a.id());
    }

    // A few SGD steps: the loss falls, W0 stays put, A and B move.
    let w0: Vec<Tensor> = model
        .linears()
        .iter()
        .map(|l| l.weight().copy().unwrap())
        .collect();
    let mut opt = candle_nn::SGD::new(adapter.vars().to_vec(), 0.5).unwrap();
    use candle_nn::Optimizer;
    let first = loss.to_scalar::<f32>().unwrap();
    let mut last = first;
    for _ in 0..5 {
        let l = loss_of(&logits_with(
            &model,
            &rows,
            Some(&AdapterBatch::training(&adapter)),
        ));
        last = l.to_scalar::<f32>().unwrap();
        opt.backward_step(&l).unwrap();
    }
    assert!(last < first, "loss {first} -> {last}");
    for (l, w) in model.linears().iter().zip(&w0) {
        assert_eq!(max_abs_diff(l.weight(), w), 0.0, "{} moved", l.name());
    }
    let trained = logits_with(&model, &rows, Some(&AdapterBatch::single(&adapter)));
    assert!(max_abs_diff(&base, &trained) > 1e-3);
    // The frozen copy computes the same thing without tracking gradients.
    let frozen = adapter.frozen().unwrap();
    assert!(frozen.vars().is_empty());
    let again = logits_with(&model, &rows, Some(&AdapterBatch::single(&frozen)));
    assert!(max_abs_diff(&again, &trained) < 1e-5);
}

#[test]
fn a_mixed_adapter_batch_gives_each_row_its_own_logits() {
    let model = tiny_model(7);
    let mut c1 = LoraConfig::new(2, 4.0, &["q_proj", "v_proj"]);
    c1.layers_to_transform = Some(vec![1]);
    let a1 = random_adapter("one", &model, c1, 21);
    let a2 = random_adapter("two", &model, LoraConfig::new(8, 16.0, &all_targets()), 22);
    let mut c3 = LoraConfig::new(5, 5.0, &["o_proj", "up_proj", "down_proj"]);
    c3.use_rslora = true;
    let a3 = random_adapter("three", &model, c3, 23);
    let mut set = AdapterSet::new(&Device::Cpu);
    let ids: Vec<_> = [a1, a2, a3]
        .into_iter()
        .map(|a| set.insert(a).unwrap())
        .collect();
    let rows = vec![
        vec![3u32, 14, 15, 9, 26, 5],
        vec![2, 7, 18, 28, 18, 28],
        vec![1, 41, 42, 13, 56, 2],
        vec![3, 14, 15, 9, 26, 5],
        vec![60, 1, 2, 3, 4, 5],
    ];
    let per_row = [Some(ids[1]), None, Some(ids[0]), Some(ids[2]), Some(ids[1])];
    let batch = set.batch(&per_row).unwrap();
    assert!(batch.is_gathered());
    let mixed = logits_with(&model, &rows, Some(&batch));
    let mut distinct = 0.0f32;
    for (r, id) in per_row.iter().enumerate() {
        let alone = match id {
            Some(id) => {
                let single = set.batch(&[Some(*id)]).unwrap();
                assert!(!single.is_gathered());
                logits_with(&model, &rows[r..r + 1], Some(&single))
            }
            None => logits_with(&model, &rows[r..r + 1], None),
        };
        let d = max_abs_diff(&mixed.i(r..r + 1).unwrap(), &alone);
        assert!(d < 1e-4, "row {r}: {d}");
        let base = logits_with(&model, &rows[r..r + 1], None);
        distinct = distinct.max(max_abs_diff(&alone, &base));
    }
    assert!(distinct > 1e-2, "the adapters must change the logits");
    // Rows 0 and 3 share a prompt but not an adapter.
    assert!(max_abs_diff(&mixed.i(0).unwrap(), &mixed.i(3).unwrap()) > 1e-3);
}

#[test]
fn merged_and_unmerged_forward_agree() {
    let mut model = tiny_model(8);
    let adapter = random_adapter("m", &model, LoraConfig::new(3, 6.0, &all_targets()), 31);
    let rows = vec![vec![4u32, 8, 15, 16, 23, 42]];
    let base = logits_with(&model, &rows, None);
    let unmerged = logits_with(&model, &rows, Some(&AdapterBatch::single(&adapter)));
    merge_adapter(&mut model, &adapter).unwrap();
    let merged = logits_with(&model, &rows, None);
    assert!(max_abs_diff(&merged, &unmerged) < 1e-3);
    assert!(max_abs_diff(&merged, &base) > 1e-2);
    unmerge_adapter(&mut model, &adapter).unwrap();
    assert!(max_abs_diff(&logits_with(&model, &rows, None), &base) < 1e-3);
}

#[test]
fn batched_generation_with_mixed_adapters_matches_row_by_row() {
    use sqlora_model::generate::{generate_with, generate_with_adapters, TokenInfo};
    use sqlora_model::GenerateParams;
    let model = tiny_model(9);
    let mut set = AdapterSet::new(&Device::Cpu);
    let a = set
        .insert(random_adapter(
            "a",
            &model,
            LoraConfig::new(4, 8.0, &all_targets()),
            41,
        ))
        .unwrap();
    let b = set
        .insert(random_adapter(
            "b",
            &model,
            LoraConfig::new(2, 8.0, &["q_proj", "up_proj"]),
            42,
        ))
        .unwrap();
    let decode = |ids: &[u32]| -> sqlora_model::Result<String> { Ok(format!("{ids:?}")) };
    let info = TokenInfo {
        eos_ids: vec![1],
        pad_id: 0,
        decode: &decode,
    };
    let params = GenerateParams {
        max_new_tokens: 8,
        ..GenerateParams::default()
    };
    let prompts = vec![
        vec![5u32, 6, 7, 8, 9],
        vec![10, 11],
        vec![12, 13, 14],
        vec![5, 6, 7, 8, 9],
    ];
    let per_row = [Some(a), Some(b), None, Some(b)];
    let batch = set.batch(&per_row).unwrap();
    let together = generate_with_adapters(&model, &info, &prompts, &params, Some(&batch)).unwrap();
    for (r, p) in prompts.iter().enumerate() {
        let alone = match per_row[r] {
            Some(id) => {
                let one = set.batch(&[Some(id)]).unwrap();
                generate_with_adapters(&model, &info, &prompts[r..r + 1], &params, Some(&one))
                    .unwrap()
            }
            None => generate_with(&model, &info, &prompts[r..r + 1], &params).unwrap(),
        };
        assert_eq!(together[r].tokens, alone[0].tokens, "row {r} ({p:?})");
        assert_eq!(together[r].finish_reason, alone[0].finish_reason, "row {r}");
        assert!(
            (together[r].logprob - alone[0].logprob).abs() < 1e-4,
            "row {r}"
        );
    }
    assert_ne!(
        together[0].tokens, together[3].tokens,
        "same prompt, other adapter"
    );
    let wrong = set.batch(&per_row[..2]).unwrap();
    assert!(generate_with_adapters(&model, &info, &prompts, &params, Some(&wrong)).is_err());
}

#[test]
fn dropout_is_applied_only_while_training() {
    let model = tiny_model(10);
    let mut cfg = LoraConfig::new(4, 8.0, &["q_proj", "up_proj"]);
    cfg.dropout = 0.5;
    let adapter = random_adapter("d", &model, cfg, 51);
    let rows = vec![vec![3u32, 1, 4, 1, 5, 9, 2, 6]];
    let infer1 = logits_with(&model, &rows, Some(&AdapterBatch::single(&adapter)));
    let infer2 = logits_with(&model, &rows, Some(&AdapterBatch::single(&adapter)));
    assert_eq!(max_abs_diff(&infer1, &infer2), 0.0);
    let train1 = logits_with(&model, &rows, Some(&AdapterBatch::training(&adapter)));
    let train2 = logits_with(&model, &rows, Some(&AdapterBatch::training(&adapter)));
    assert!(
        max_abs_diff(&train1, &train2) > 1e-4,
        "dropout masks differ per call"
    );
    assert!(max_abs_diff(&train1, &infer1) > 1e-4);
}

#[test]
fn beam_search_with_an_adapter_equals_beam_search_on_the_merged_model() {
    use sqlora_model::generate::{n_best_with, n_best_with_adapters, TokenInfo};
    use sqlora_model::GenerateParams;
    let model = tiny_model(11);
    let adapter = random_adapter("nb", &model, LoraConfig::new(4, 8.0, &all_targets()), 61);
    let decode = |ids: &[u32]| -> sqlora_model::Result<String> { Ok(format!("{ids:?}")) };
    let info = TokenInfo {
        eos_ids: vec![1],
        pad_id: 0,
        decode: &decode,
    };
    let params = GenerateParams {
        max_new_tokens: 6,
        ..GenerateParams::default()
    };
    let prompt = [7u32, 21, 33, 2];
    let single = AdapterBatch::single(&adapter);
    let unmerged = n_best_with_adapters(&model, &info, &prompt, 3, &params, Some(&single)).unwrap();
    let base = n_best_with(&model, &info, &prompt, 3, &params).unwrap();
    let mut merged_model = model.clone();
    merge_adapter(&mut merged_model, &adapter).unwrap();
    let merged = n_best_with(&merged_model, &info, &prompt, 3, &params).unwrap();
    assert_eq!(unmerged.len(), merged.len());
    for (u, m) in unmerged.iter().zip(&merged) {
        assert_eq!(u.tokens, m.tokens);
        assert!((u.score - m.score).abs() < 1e-3);
    }
    assert_ne!(
        unmerged.iter().map(|c| &c.tokens).collect::<Vec<_>>(),
        base.iter().map(|c| &c.tokens).collect::<Vec<_>>(),
        "the adapter changes the beams"
    );
    // A per-row batch makes no sense for beams.
    let mut set = AdapterSet::new(&Device::Cpu);
    let id = set.insert(adapter.clone()).unwrap();
    let gathered = set.gather(&[Some(id), None]).unwrap();
    assert!(n_best_with_adapters(&model, &info, &prompt, 3, &params, Some(&gathered)).is_err());
}
