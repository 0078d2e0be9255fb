//! The shared-prefix training pass (checkpointed or not, with or without the frozen-layer
//! cache) gives the same loss and the same gradients as
//! the plain computation (every row run in full through `Model::forward_with`, one backward).

mod common;

use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlora_model::lora::{LoraAdapter, LoraConfig};
use sqlora_train::batch::{make_batch, TokenizedExample};
use sqlora_train::forward::{
    loss_and_grads, loss_and_grads_with, loss_sum, make_prefix_batch, AdapterMode, FrozenCache,
    PassOptions,
};
use sqlora_train::loss::answer_loss_sum;

/// An adapter whose B is random too, so every A and B has a non-zero gradient.
fn adapter(model: &sqlora_model::llama::Model, rank: usize) -> LoraAdapter {
    let cfg = LoraConfig::new(
        rank,
        2.0 * rank as f64,
        &[
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        ],
    );
    let a = LoraAdapter::init("t", model, cfg, 3).unwrap();
    let mut rng = StdRng::seed_from_u64(9);
    for v in a.vars() {
        let n = v.elem_count();
        let data: Vec<f32> = (0..n).map(|_| rng.gen_range(-0.3..0.3)).collect();
        v.set(&Tensor::from_vec(data, v.dims(), &Device::Cpu).unwrap())
            .unwrap();
    }
    a
}

/// Rows that share a 12-token prefix, then differ (different lengths, answers of 2..5 tokens).
fn rows() -> Vec<TokenizedExample> {
    let prefix: Vec<u32> = (0..12).map(|i| 3 + (i * 7) % 60).collect();
    let tails: [(&[u32], usize); 4] = [
        (&[10, 11, 12, 40, 41, 1], 3),
        (&[13, 14, 42, 43, 44, 45, 1], 2),
        (&[15, 50, 1], 1),
        (&[16, 17, 18, 19, 51, 52, 53, 1], 4),
    ];
    tails
        .iter()
        .map(|(tail, q)| {
            let mut ids = prefix.clone();
            ids.extend_from_slice(tail);
            TokenizedExample {
                answer_start: prefix.len() + q,
                ids,
            }
        })
        .collect()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    max_abs(&(a - b).unwrap())
}

/// The largest absolute entry.
fn max_abs(t: &Tensor) -> f32 {
    t.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn zero_grads(a: &LoraAdapter) -> Vec<Tensor> {
    a.vars()
        .iter()
        .map(|v| v.as_tensor().zeros_like().unwrap())
        .collect()
}

#[test]
fn shared_prefix_loss_and_gradients_equal_the_plain_computation() {
    shared_prefix_matches_the_plain_computation(&common::tiny_model(1));
}

/// Qwen2's q/k/v biases sit inside the adapted projections: the trainer's frozen product adds
/// them as inference does, and they shift the keys and values the suffix rows attend to.
#[test]
fn shared_prefix_loss_and_gradients_equal_the_plain_computation_on_qwen2() {
    let model = common::tiny_qwen2(1);
    let biased: Vec<&str> = model
        .linears()
        .into_iter()
        .filter(|l| l.bias().is_some())
        .map(|l| l.name())
        .collect();
    assert_eq!(
        biased.len(),
        2 * 3,
        "q, k and v of both layers have biases: {biased:?}"
    );
    shared_prefix_matches_the_plain_computation(&model);
}

fn shared_prefix_matches_the_plain_computation(model: &sqlora_model::llama::Model) {
    let model = model.clone();
    let adapter = adapter(&model, 4);
    let examples = rows();
    let refs: Vec<&TokenizedExample> = examples.iter().collect();

    let plain = make_batch(&refs, 0, &Device::Cpu).unwrap();
    let plain_loss = answer_loss_sum(&model, &adapter, &plain, false).unwrap();
    let store = (&plain_loss * 0.5).unwrap().backward().unwrap();
    let plain_loss = plain_loss.to_scalar::<f32>().unwrap() as f64;

    let pb = make_prefix_batch(&refs, 0, &Device::Cpu).unwrap();
    assert_eq!(pb.prefix_len, 12, "the common prefix is found");
    assert_eq!(pb.tokens, plain.tokens);
    assert_eq!(pb.answer_tokens, plain.answer_tokens);
    assert!(pb.computed_tokens < pb.tokens);
    let no_grad = loss_sum(&model, &adapter, &pb, AdapterMode::eval()).unwrap();
    assert!((no_grad - plain_loss).abs() < 1e-4 * plain_loss.abs().max(1.0));

    // With activation checkpointing (layers recomputed in the backward pass) and without
    // (every adapted layer's graph kept from the first pass): the same loss and gradients.
    let mut checked = 0;
    for checkpointing in [true, false] {
        let mut grads = zero_grads(&adapter);
        let loss = loss_and_grads_with(
            &model,
            &adapter,
            &pb,
            AdapterMode::eval(),
            0.5,
            &mut grads,
            &mut PassOptions {
                checkpointing,
                cache: None,
            },
        )
        .unwrap();
        assert!(
            (loss - plain_loss).abs() < 1e-4 * plain_loss.abs().max(1.0),
            "{loss} vs {plain_loss} (checkpointing {checkpointing})"
        );
        for (v, g) in adapter.vars().iter().zip(&grads) {
            let want = store.get(v.as_tensor()).expect("plain gradient");
            let scale = max_abs(want);
            assert!(
                scale > 0.0,
                "a gradient is all zero: the test would prove nothing"
            );
            let d = max_abs_diff(g, want);
            assert!(
                d <= 1e-4 * scale.max(1.0),
                "gradient differs by {d} (scale {scale}, checkpointing {checkpointing})"
            );
            checked += 1;
        }
    }
    assert_eq!(
        checked,
        2 * 2 * 7 * 2,
        "A and B of 7 modules in 2 layers, twice"
    );
}

#[test]
fn rows_without_a_common_prefix_still_match() {
    let model = common::tiny_model(2);
    let adapter = adapter(&model, 2);
    let a = TokenizedExample {
        ids: vec![5, 6, 7, 8, 9, 1],
        answer_start: 3,
    };
    let b = TokenizedExample {
        ids: vec![20, 21, 22, 23, 1],
        answer_start: 2,
    };
    let refs = [&a, &b];
    let plain = make_batch(&refs, 0, &Device::Cpu).unwrap();
    let want = answer_loss_sum(&model, &adapter, &plain, false)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap() as f64;
    let pb = make_prefix_batch(&refs, 0, &Device::Cpu).unwrap();
    assert_eq!(pb.prefix_len, 0);
    let mut grads = zero_grads(&adapter);
    let got = loss_and_grads(&model, &adapter, &pb, AdapterMode::eval(), 1.0, &mut grads).unwrap();
    assert!(
        (got - want).abs() < 1e-4 * want.abs().max(1.0),
        "{got} vs {want}"
    );
}

#[test]
fn dylora_rank_truncation_trains_only_the_first_components() {
    let model = common::tiny_model(3);
    let adapter = adapter(&model, 4);
    let examples = rows();
    let refs: Vec<&TokenizedExample> = examples.iter().collect();
    let pb = make_prefix_batch(&refs, 0, &Device::Cpu).unwrap();
    let mut grads = zero_grads(&adapter);
    let mode = AdapterMode {
        dropout: 0.0,
        rank: Some(2),
        seed: 0,
    };
    loss_and_grads(&model, &adapter, &pb, mode, 1.0, &mut grads).unwrap();
    for (v, g) in adapter.vars().iter().zip(&grads) {
        // A is [r, in]: rows 2.. get nothing. B is [out, r]: columns 2.. get nothing.
        let (rest, kept) = if v.dims()[0] == 4 {
            (g.narrow(0, 2, 2).unwrap(), g.narrow(0, 0, 2).unwrap())
        } else {
            (g.narrow(1, 2, 2).unwrap(), g.narrow(1, 0, 2).unwrap())
        };
        let zero = max_abs(&rest);
        let some = max_abs(&kept);
        assert_eq!(zero, 0.0);
        assert!(some > 0.0);
    }
}

#[test]
fn dropout_masks_are_reproducible() {
    let model = common::tiny_model(4);
    let adapter = adapter(&model, 2);
    let examples = rows();
    let refs: Vec<&TokenizedExample> = examples.iter().collect();
    let pb = make_prefix_batch(&refs, 0, &Device::Cpu).unwrap();
    let mode = |seed| AdapterMode {
        dropout: 0.3,
        rank: None,
        seed,
    };
    let run = |seed| {
        let mut g = zero_grads(&adapter);
        let l = loss_and_grads(&model, &adapter, &pb, mode(seed), 1.0, &mut g).unwrap();
        (l, g)
    };
    let (l1, g1) = run(7);
    let (l2, g2) = run(7);
    let (l3, _) = run(8);
    assert_eq!(l1, l2);
    for (a, b) in g1.iter().zip(&g2) {
        assert_eq!(max_abs_diff(a, b), 0.0);
    }
    assert_ne!(l1, l3, "another seed draws other masks");
    // The checkpointed recomputation saw the first pass's masks: the loss with dropout equals
    // the no-gradient pass with the same seed.
    let again = loss_sum(&model, &adapter, &pb, mode(7)).unwrap();
    assert!(
        (again - l1).abs() < 1e-5 * l1.abs().max(1.0),
        "{again} vs {l1}"
    );
}

#[test]
fn adapting_only_upper_layers_stops_the_backward_early_with_the_same_gradients() {
    let model = common::tiny_model(5);
    let mut cfg = LoraConfig::new(2, 4.0, &["q_proj", "v_proj", "down_proj"]);
    cfg.layers_to_transform = Some(vec![1]);
    let adapter = LoraAdapter::init("upper", &model, cfg, 1).unwrap();
    let mut rng = StdRng::seed_from_u64(2);
    for v in adapter.vars() {
        let data: Vec<f32> = (0..v.elem_count())
            .map(|_| rng.gen_range(-0.3..0.3))
            .collect();
        v.set(&Tensor::from_vec(data, v.dims(), &Device::Cpu).unwrap())
            .unwrap();
    }
    assert!(adapter.modules().keys().all(|k| k.contains("layers.1.")));
    let examples = rows();
    let refs: Vec<&TokenizedExample> = examples.iter().collect();
    let plain = make_batch(&refs, 0, &Device::Cpu).unwrap();
    let store = answer_loss_sum(&model, &adapter, &plain, false)
        .unwrap()
        .backward()
        .unwrap();
    let pb = make_prefix_batch(&refs, 0, &Device::Cpu).unwrap();
    // Checkpointed or not, and with the frozen-layer cache cold (filled by this pass), warm
    // (the pass starts at layer 1 from the cached hidden states) and reloaded from disk.
    let mut cache = FrozenCache::new(1 << 20);
    for (checkpointing, use_cache) in [(true, false), (false, false), (true, true), (false, true)] {
        let mut grads = zero_grads(&adapter);
        let mut opts = PassOptions {
            checkpointing,
            cache: use_cache.then_some(&mut cache),
        };
        let mode = AdapterMode::eval();
        loss_and_grads_with(&model, &adapter, &pb, mode, 1.0, &mut grads, &mut opts).unwrap();
        check_upper(&adapter, &store, &grads);
    }
    assert_eq!(
        cache.rows(),
        refs.len(),
        "every row's hidden states are cached"
    );
    assert!(cache.bytes() > 0);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("frozen.safetensors");
    cache.save(&path).unwrap();
    let mut loaded = FrozenCache::load(&path, 1 << 20, &Device::Cpu).unwrap();
    assert_eq!(loaded.rows(), cache.rows());
    assert_eq!(loaded.bytes(), cache.bytes());
    let mut warm = zero_grads(&adapter);
    let mut cold = zero_grads(&adapter);
    let mode = AdapterMode::eval();
    let mut opts = PassOptions {
        checkpointing: true,
        cache: Some(&mut loaded),
    };
    let lw = loss_and_grads_with(&model, &adapter, &pb, mode, 1.0, &mut warm, &mut opts).unwrap();
    let lc = loss_and_grads(&model, &adapter, &pb, mode, 1.0, &mut cold).unwrap();
    assert!((lw - lc).abs() <= 1e-5 * lc.abs().max(1.0), "{lw} vs {lc}");
    check_upper(&adapter, &store, &warm);

    // Two of the rows in a batch of their own (another padded length): assembled from the
    // cache, the same as computed in full.
    let mut others = rows();
    others.truncate(2);
    let other_refs: Vec<&TokenizedExample> = others.iter().collect();
    let pb2 = make_prefix_batch(&other_refs, 0, &Device::Cpu).unwrap();
    let mut g2 = zero_grads(&adapter);
    let mut opts = PassOptions {
        checkpointing: false,
        cache: Some(&mut cache),
    };
    let l2 = loss_and_grads_with(&model, &adapter, &pb2, mode, 1.0, &mut g2, &mut opts).unwrap();
    let mut g3 = zero_grads(&adapter);
    let l3 = loss_and_grads(&model, &adapter, &pb2, mode, 1.0, &mut g3).unwrap();
    assert!((l2 - l3).abs() <= 1e-5 * l3.abs().max(1.0), "{l2} vs {l3}");
}

fn check_upper(adapter: &LoraAdapter, store: &candle_core::backprop::GradStore, grads: &[Tensor]) {
    for (v, g) in adapter.vars().iter().zip(grads) {
        let want = store.get(v.as_tensor()).unwrap();
        let scale = max_abs(want);
        assert!(scale > 0.0);
        assert!(max_abs_diff(g, want) <= 1e-4 * scale.max(1.0));
    }
}
