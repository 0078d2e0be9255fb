//! The answer-only loss on a tiny random Llama equals a plain full-logits computation, and its
//! gradients reach the LoRA variables only.

mod common;

use candle_core::{DType, Device, Tensor};
use rand::rngs::StdRng;
use rand::SeedableRng;
use sqlora_model::lora::{AdapterBatch, LoraAdapter, LoraConfig, PROJECTIONS};
use sqlora_train::batch::{make_batch, TokenizedExample};
use sqlora_train::loss::{answer_loss_mean, answer_loss_sum};

fn trained_looking_adapter(model: &sqlora_model::llama::Model) -> LoraAdapter {
    let adapter = LoraAdapter::init("t", model, LoraConfig::new(4, 8.0, &PROJECTIONS), 3).unwrap();
    let mut rng = StdRng::seed_from_u64(11);
    for v in adapter.vars() {
        v.set(&common::rand_tensor(&mut rng, v.dims(), 0.0, 0.3))
            .unwrap();
    }
    adapter
}

fn examples() -> Vec<TokenizedExample> {
    vec![
        TokenizedExample {
            ids: vec![3, 9, 14, 22, 40, 41, 1],
            answer_start: 4,
        },
        TokenizedExample {
            ids: vec![5, 6, 50, 1],
            answer_start: 2,
        },
        TokenizedExample {
            ids: vec![7, 8, 9, 10, 11, 12, 13, 60, 61, 62, 1],
            answer_start: 7,
        },
    ]
}

/// The mean cross-entropy of the answer tokens, each sequence run alone with every position's
/// logits computed, log-softmax in f64.
fn reference_loss(
    model: &sqlora_model::llama::Model,
    adapter: &LoraAdapter,
    exs: &[TokenizedExample],
) -> f64 {
    let ab = AdapterBatch::single(adapter);
    let (mut sum, mut n) = (0f64, 0usize);
    for e in exs {
        let t = e.ids.len();
        let ids = Tensor::new(e.ids.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let pos: Vec<u32> = (0..t as u32).collect();
        let pos = Tensor::new(pos.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let hidden = model
            .forward_with(&ids, &pos, None, None, Some(&ab))
            .unwrap();
        let logits: Vec<Vec<f32>> = model
            .logits(&hidden)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
            .to_vec2()
            .unwrap();
        for i in e.answer_start..t {
            let row = &logits[i - 1];
            let max = row.iter().fold(f64::MIN, |m, &x| m.max(x as f64));
            let lse = max
                + row
                    .iter()
                    .map(|&x| (x as f64 - max).exp())
                    .sum::<f64>()
                    .ln();
            sum += lse - row[e.ids[i] as usize] as f64;
            n += 1;
        }
    }
    sum / n as f64
}

#[test]
fn loss_equals_full_logits_cross_entropy() {
    let model = common::tiny_model(1);
    let adapter = trained_looking_adapter(&model);
    let exs = examples();
    let rows: Vec<&TokenizedExample> = exs.iter().collect();
    let batch = make_batch(&rows, 0, &Device::Cpu).unwrap();
    assert_eq!(batch.answer_tokens, 3 + 2 + 4);
    let got = answer_loss_mean(&model, &adapter, &batch, false).unwrap();
    let want = reference_loss(&model, &adapter, &exs);
    assert!(
        (got - want).abs() < 1e-5,
        "batched {got} vs reference {want}"
    );
    // The adapter matters: without it the loss differs.
    let fresh = LoraAdapter::init("f", &model, LoraConfig::new(4, 8.0, &PROJECTIONS), 3).unwrap();
    let base = answer_loss_mean(&model, &fresh, &batch, false).unwrap();
    assert!((base - got).abs() > 1e-3);
    // Padding id does not matter.
    let batch9 = make_batch(&rows, 9, &Device::Cpu).unwrap();
    let got9 = answer_loss_mean(&model, &adapter, &batch9, false).unwrap();
    assert!((got9 - got).abs() < 1e-5);
}

#[test]
fn gradients_reach_every_lora_variable_and_only_they_train() {
    let model = common::tiny_model(2);
    let adapter = trained_looking_adapter(&model);
    let exs = examples();
    let rows: Vec<&TokenizedExample> = exs.iter().collect();
    let batch = make_batch(&rows, 0, &Device::Cpu).unwrap();
    let loss = answer_loss_sum(&model, &adapter, &batch, true).unwrap();
    let grads = loss.backward().unwrap();
    assert_eq!(adapter.vars().len(), 2 * 7 * 2);
    for v in adapter.vars() {
        let g = grads
            .get(v.as_tensor())
            .expect("a LoRA variable has no gradient");
        let norm = g
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(norm > 0.0, "zero gradient");
    }
    // candle's backward also fills in gradients of plain-tensor operands (the base weights);
    // what matters is that only `Var`s are trainable, and the base weights are not `Var`s.
    assert!(!model.embed_tokens().is_variable());
    assert!(!model.final_norm().weight().is_variable());
    for lin in model.linears() {
        assert!(!lin.weight().is_variable(), "{} is trainable", lin.name());
    }
    for m in adapter.modules().values() {
        assert!(m.a.is_variable() && m.b.is_variable());
    }
}
