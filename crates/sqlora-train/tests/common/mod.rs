//! The tiny random Llama of `sqlora_model::testing` (2 layers, vocabulary 64) and a word-level
//! tokenizer for it, so the trainer's tests run in seconds without a model file; and the
//! checks of a training run that every model's tests share (a resumed run equals an
//! uninterrupted one).
#![allow(dead_code)]

use std::path::Path;

use sqlora_model::llama::Model;
use sqlora_model::lora::LoraAdapter;
use sqlora_model::testing::{word_level_tokenizer_json, TinyLlama};
use sqlora_model::tokenizer::Tokenizer;
use sqlora_train::trainer::TrainReport;

#[allow(unused_imports)]
pub use sqlora_model::testing::rand_tensor;

pub const VOCAB: usize = 64;

/// A random 2-layer Llama with tied embeddings.
pub fn tiny_model(seed: u64) -> Model {
    TinyLlama::default().model(seed)
}

/// A random 2-layer Qwen2 (q/k/v biases, untied head) of the same shape.
pub fn tiny_qwen2(seed: u64) -> Model {
    TinyLlama {
        arch: "qwen2",
        tie_embeddings: false,
        ..TinyLlama::default()
    }
    .model(seed)
}

/// A word-level tokenizer written to `dir/tokenizer.json`: `<unk>` 0, `<|im_end|>` 1,
/// `<|im_start|>` 2, then the words `w3` .. `w63`, split on whitespace.
pub fn tiny_tokenizer(dir: &Path) -> Tokenizer {
    let json = word_level_tokenizer_json(&["<unk>", "<|im_end|>", "<|im_start|>"], VOCAB);
    let path = dir.join("tokenizer.json");
    std::fs::write(&path, json.to_string()).unwrap();
    Tokenizer::from_file(&path).unwrap()
}

/// Every variable of the adapter, flattened, in the adapter's order.
pub fn values(a: &LoraAdapter) -> Vec<Vec<f32>> {
    a.vars()
        .iter()
        .map(|v| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap())
        .collect()
}

/// The steps of the loss records of `out/metrics.jsonl`, in file order.
pub fn metric_steps(out: &Path) -> Vec<u64> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v.get("loss").is_some())
        .map(|v| v["step"].as_u64().unwrap())
        .collect()
}

/// A run resumed from the checkpoint of step `from` is the uninterrupted run: it ends at the
/// same step, its losses are the uninterrupted run's from step `from + 1` on (the redone step
/// included) and its adapter has the same values, all within `tol` (0: bit for bit).
pub fn assert_resumed_equals(
    full: &(LoraAdapter, TrainReport),
    resumed: &(LoraAdapter, TrainReport),
    from: usize,
    tol: f64,
) {
    let ((full_adapter, full_report), (adapter, report)) = (full, resumed);
    assert_eq!(report.steps, full_report.steps);
    assert_eq!(
        report.losses.len(),
        full_report.steps - from,
        "the steps after {from}"
    );
    for (i, (a, b)) in report
        .losses
        .iter()
        .zip(&full_report.losses[from..])
        .enumerate()
    {
        assert!(
            (a - b).abs() <= tol,
            "step {}: loss {a} resumed, {b} uninterrupted",
            from + i + 1
        );
    }
    let (want, got) = (values(full_adapter), values(adapter));
    assert_eq!(want.len(), got.len());
    for (a, b) in want.iter().zip(&got) {
        for (x, y) in a.iter().zip(b) {
            assert!(
                ((x - y).abs() as f64) <= tol,
                "{x} uninterrupted vs {y} resumed"
            );
        }
    }
}
