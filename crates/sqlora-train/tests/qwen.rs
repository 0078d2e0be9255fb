//! The trainer on Qwen2.5-Coder-0.5B-Instruct (qwen2: q/k/v biases, untied head, GGUF
//! K-quant blocks): on eight real retail examples the loss goes down over a few steps on that
//! fixed batch, a run stopped at a checkpoint and resumed ends bit for bit where an
//! uninterrupted run ends, and the trainer's pass with the trained adapter gives the loss of
//! the inference forward (the biases of the adapted projections added the same way).
//!
//! To stay within a few minutes on two cores the adapter covers the top four layers (all seven
//! projections): the layers below run once per run and come from the frozen-layer cache after
//! (saved in the checkpoint, so the resumed run uses it too). Every layer's gradient path is
//! the same code; `tests/shared_prefix.rs` checks it on a tiny Qwen2 against the plain
//! computation.
//!
//! The model comes from the cache (`sqlora model fetch qwen2.5-coder-0.5b-instruct`); without it
//! the test skips, or fails under `SQLORA_REQUIRE_QWEN=1`.

mod common;

use std::path::Path;

use common::assert_resumed_equals;
use sqlora_data::{build_domain, Domain};
use sqlora_model::fetch::QWEN_CODER_0_5B;
use sqlora_model::testing::named_real_model_f32;
use sqlora_model::LoadedModel;
use sqlora_sql::Schema;
use sqlora_sqlgen::PromptBuilder;
use sqlora_train::batch::{dataset_hash, make_batch, render, tokenize, TokenizedExample};
use sqlora_train::forward::{loss_and_grads, make_prefix_batch, AdapterMode};
use sqlora_train::loss::answer_loss_mean;
use sqlora_train::trainer::{latest_checkpoint, train, RunInfo, TrainData, TrainOptions};
use sqlora_train::TrainConfig;

/// The longest example allowed (prompt and answer), so a step stays short.
const MAX_LEN: usize = 256;

/// The first eight retail training examples about products alone, prompted with the schema cut
/// to the `products` table (the real prompt builder and chat template, so the rows share the
/// system + schema prefix as in a real run).
fn retail_products(m: &LoadedModel) -> TrainData {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets");
    let domain = Domain::open(&root.join("retail")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let built = build_domain(&domain, dir.path(), 0).unwrap();
    let mut schema = Schema::introspect(&built[0].path).unwrap();
    let tables: Vec<String> = schema.tables.iter().map(|t| t.name.clone()).collect();
    schema.tables.retain(|t| t.name == "products");
    let uses_only_products = |sql: &str| {
        let words: Vec<String> = sql
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map(str::to_ascii_lowercase)
            .collect();
        tables
            .iter()
            .filter(|t| words.contains(t))
            .all(|t| t == "products")
    };
    let builder = PromptBuilder::builtin();
    let chat = m.chat_template.as_ref().expect("chat template");
    let rendered: Vec<_> = domain
        .split("train")
        .unwrap()
        .into_iter()
        .filter(|e| uses_only_products(&e.sql))
        .take(8)
        .map(|e| {
            let t = builder
                .training_example(&e.question, &schema, &e.sql)
                .unwrap();
            render(&t, chat, "<|im_end|>").unwrap()
        })
        .collect();
    assert_eq!(rendered.len(), 8);
    let examples: Vec<TokenizedExample> = rendered
        .iter()
        .map(|r| tokenize(r, &m.tokenizer, usize::MAX).unwrap())
        .collect();
    for e in &examples {
        assert!(e.len() <= MAX_LEN, "an example of {} tokens", e.len());
    }
    TrainData {
        dataset_hash: dataset_hash(&rendered),
        examples,
        groups: Vec::new(),
    }
}

/// Rank 4 on all seven projections of the top four of the 24 layers; one micro-batch of all
/// eight rows per step, so every step sees the same batch; a checkpoint every two steps.
fn config() -> TrainConfig {
    TrainConfig {
        rank: 4,
        alpha: 8.0,
        dropout: 0.05,
        lr: 2e-3,
        warmup_steps: 0,
        micro_batch: 8,
        grad_accum: 1,
        max_seq_len: MAX_LEN,
        max_steps: Some(4),
        eval_interval: 100,
        save_interval: 2,
        layers_to_transform: Some((20..24).collect()),
        ..TrainConfig::default()
    }
}

fn info() -> RunInfo {
    RunInfo {
        domain: "retail".into(),
        base_model: Some("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf".into()),
        base_model_sha256: None,
    }
}

#[test]
fn training_on_the_0_5b_lowers_the_loss_and_resumes_exactly() {
    // The f32 activation path: the trainer always computes in f32, and the check below
    // compares its pass with the inference forward.
    let Some(m) = named_real_model_f32(QWEN_CODER_0_5B) else {
        return;
    };
    let data = retail_products(m);
    let cfg = config();
    let mean_len =
        data.examples.iter().map(|e| e.len()).sum::<usize>() as f64 / data.examples.len() as f64;
    eprintln!(
        "{} examples, mean {mean_len:.0} tokens",
        data.examples.len()
    );

    let full_dir = tempfile::tempdir().unwrap();
    let mut opts = TrainOptions::new(full_dir.path());
    opts.pad_id = m.tokenizer.pad_token_id();
    let t0 = std::time::Instant::now();
    let full = train(&m.model, &cfg, &data, None, &info(), &opts).unwrap();
    let losses = &full.1.losses;
    eprintln!(
        "training losses {losses:?} ({:.1}s per step)",
        t0.elapsed().as_secs_f64() / losses.len() as f64
    );
    assert_eq!(losses.len(), 4);
    // Each update lowers the loss on this fixed batch.
    for w in losses.windows(2) {
        assert!(w[1] < w[0], "the loss went up: {losses:?}");
    }
    assert!(
        losses[3] < 0.8 * losses[0],
        "the loss went down too little: {losses:?}"
    );

    // The trained adapter (non-zero B on biased q/k/v) on two rows: the trainer's shared-prefix
    // pass with gradients (dense dequantized weights in the adapted layers, the biases added by
    // its frozen product) gives the loss of the plain full-sequence inference forward (GGUF
    // blocks, `Model::forward_with`).
    let trained = &full.0;
    let two: Vec<&TokenizedExample> = data.examples.iter().take(2).collect();
    let pad = m.tokenizer.pad_token_id();
    let plain = make_batch(&two, pad, m.model.device()).unwrap();
    let want = answer_loss_mean(&m.model, trained, &plain, false).unwrap();
    let pb = make_prefix_batch(&two, pad, m.model.device()).unwrap();
    assert!(
        pb.prefix_len > 0,
        "the rows share the system + schema prefix"
    );
    let mut grads: Vec<_> = trained
        .vars()
        .iter()
        .map(|v| v.as_tensor().zeros_like().unwrap())
        .collect();
    let got = loss_and_grads(&m.model, trained, &pb, AdapterMode::eval(), 1.0, &mut grads).unwrap()
        / pb.answer_tokens as f64;
    eprintln!("two rows: trainer pass {got:.6}, inference forward {want:.6}");
    assert!(
        (got - want).abs() <= 1e-3 * want.abs().max(0.1),
        "trainer pass {got} vs inference {want}"
    );

    // Stopped after step 2 (its checkpoint), then resumed: the uninterrupted run, bit for bit.
    let dir = tempfile::tempdir().unwrap();
    let mut stop = TrainOptions::new(dir.path());
    stop.pad_id = opts.pad_id;
    stop.stop_after = Some(2);
    let (_, stopped) = train(&m.model, &cfg, &data, None, &info(), &stop).unwrap();
    assert_eq!(stopped.steps, 2);
    let ckpt = latest_checkpoint(dir.path()).unwrap();
    assert!(ckpt.ends_with("step-000002"), "{}", ckpt.display());
    let mut resume = TrainOptions::new(dir.path());
    resume.pad_id = opts.pad_id;
    resume.resume = Some(ckpt);
    let resumed = train(&m.model, &cfg, &data, None, &info(), &resume).unwrap();
    assert_resumed_equals(&full, &resumed, 2, 0.0);
    assert_eq!(common::metric_steps(dir.path()), vec![1, 2, 3, 4]);
}
