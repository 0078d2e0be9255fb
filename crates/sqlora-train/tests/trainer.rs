//! The training loop on a tiny random Llama: the loss goes down, the files appear, and a run
//! interrupted and resumed from a checkpoint ends with the same adapter as an uninterrupted one.

mod common;

use common::{assert_resumed_equals, metric_steps, values};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlora_model::llama::Model;
use sqlora_model::lora::LoraAdapter;
use sqlora_model::peft;
use sqlora_train::batch::TokenizedExample;
use sqlora_train::trainer::{
    latest_checkpoint, train, train_with, Meta, RunInfo, TrainData, TrainHooks, TrainOptions,
};
use sqlora_train::{TrainConfig, TrainError};

/// Prompts of random words; the answer is a fixed function of the prompt's first word, so
/// there is something to learn.
fn data(n: usize, seed: u64) -> TrainData {
    let mut rng = StdRng::seed_from_u64(seed);
    let examples = (0..n)
        .map(|_| {
            let len = rng.gen_range(3..9);
            let mut ids: Vec<u32> = (0..len).map(|_| rng.gen_range(3..30)).collect();
            let key = ids[0];
            ids.push(2); // "<|im_start|>" as the turn separator
            let answer_start = ids.len();
            ids.extend([30 + key % 7, 40 + key % 5, 50, 1]);
            TokenizedExample { ids, answer_start }
        })
        .collect();
    TrainData {
        examples,
        dataset_hash: format!("synthetic-{n}-{seed}"),
        groups: Vec::new(),
    }
}

fn config() -> TrainConfig {
    TrainConfig {
        rank: 4,
        alpha: 8.0,
        dropout: 0.0,
        lr: 1e-2,
        warmup_steps: 2,
        micro_batch: 4,
        grad_accum: 2,
        max_seq_len: 32,
        max_steps: Some(20),
        eval_interval: 10,
        save_interval: 0,
        ..TrainConfig::default()
    }
}

fn info() -> RunInfo {
    RunInfo {
        domain: "toy".into(),
        base_model: Some("tiny-random".into()),
        base_model_sha256: Some("ab".repeat(32)),
    }
}

#[test]
fn loss_goes_down_and_the_adapter_is_saved() {
    let model: Model = common::tiny_model(5);
    let embed_before = model
        .embed_tokens()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let train_data = data(16, 1);
    let eval = data(6, 2).examples;
    let dir = tempfile::tempdir().unwrap();
    let opts = TrainOptions::new(dir.path());
    let (adapter, report) =
        train(&model, &config(), &train_data, Some(&eval), &info(), &opts).unwrap();
    assert_eq!(report.steps, 20);
    assert_eq!(report.losses.len(), 20);
    let first = report.losses[0];
    let last = *report.losses.last().unwrap();
    assert!(
        last < 0.5 * first,
        "loss {first} -> {last}: {:?}",
        report.losses
    );
    // Held-out loss at steps 10 and 20.
    assert_eq!(
        report.eval_losses.iter().map(|e| e.0).collect::<Vec<_>>(),
        vec![10, 20]
    );

    // The base model is untouched.
    let embed_after = model
        .embed_tokens()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(embed_before, embed_after);

    // metrics.jsonl: one record per step with the documented fields.
    assert_eq!(metric_steps(dir.path()), (1..=20).collect::<Vec<_>>());
    let line = std::fs::read_to_string(dir.path().join("metrics.jsonl")).unwrap();
    let rec: serde_json::Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    for k in [
        "step",
        "epoch",
        "loss",
        "lr",
        "grad_norm",
        "tokens",
        "answer_tokens",
        "tokens_per_s",
    ] {
        assert!(rec.get(k).is_some(), "metrics lack {k}");
    }
    // Warm-up: the first step runs at lr 0.
    assert_eq!(rec["lr"].as_f64().unwrap(), 0.0);

    // The PEFT folder loads back with the trained values, and the metadata is there.
    let adapter_dir = report.adapter_dir.unwrap();
    let loaded = peft::load_adapter(&adapter_dir, &model).unwrap();
    for (key, m) in adapter.modules() {
        let l = loaded.module(key).unwrap();
        let d = (&m.b - &l.b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d < 1e-7, "{key}");
    }
    assert_eq!(loaded.base_model.as_deref(), Some("tiny-random"));
    let meta: Meta = serde_json::from_str(
        &std::fs::read_to_string(adapter_dir.join("sqlora_meta.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(meta.domain, "toy");
    assert_eq!(meta.steps, 20);
    assert_eq!(meta.dataset_sha256, "synthetic-16-1");
    assert_eq!(meta.config, config());
    assert_eq!(meta.base_model_sha256, Some("ab".repeat(32)));
}

#[test]
fn resume_after_interruption_equals_an_uninterrupted_run() {
    let model = common::tiny_model(6);
    // Epoch mode: 10 examples, micro-batch 4 → 3 micro-batches per epoch, 3 epochs, 2 per step
    // → 5 steps, the last one with a single micro-batch; steps cross epoch boundaries.
    let cfg = TrainConfig {
        max_steps: None,
        epochs: 3,
        save_interval: 2,
        weight_decay: 0.01,
        ..config()
    };
    let train_data = data(10, 3);

    let full_dir = tempfile::tempdir().unwrap();
    let full = train(
        &model,
        &cfg,
        &train_data,
        None,
        &info(),
        &TrainOptions::new(full_dir.path()),
    )
    .unwrap();
    assert_eq!(full.1.total_steps, 5);

    let dir = tempfile::tempdir().unwrap();
    let mut opts = TrainOptions::new(dir.path());
    opts.stop_after = Some(3);
    let (_, stopped) = train(&model, &cfg, &train_data, None, &info(), &opts).unwrap();
    assert_eq!(stopped.steps, 3);
    assert!(stopped.adapter_dir.is_none());
    assert!(!dir.path().join("adapter").exists());
    let ckpt = latest_checkpoint(dir.path()).unwrap();
    assert!(ckpt.ends_with("step-000002"), "{}", ckpt.display());
    // Only complete checkpoints count: no temporary folder is left, and a half-written one (a
    // crash before the rename, or a folder without its state) is never picked.
    let names: Vec<String> = std::fs::read_dir(dir.path().join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(names, vec!["step-000002".to_string()]);
    std::fs::create_dir_all(dir.path().join("checkpoints/.step-000009.tmp")).unwrap();
    std::fs::create_dir_all(dir.path().join("checkpoints/step-000010")).unwrap();
    assert_eq!(latest_checkpoint(dir.path()).unwrap(), ckpt);

    // A checkpoint of other data or another config is refused.
    let mut bad = TrainOptions::new(dir.path());
    bad.resume = Some(ckpt.clone());
    let other_cfg = TrainConfig {
        lr: 5e-3,
        ..cfg.clone()
    };
    assert!(matches!(
        train(&model, &other_cfg, &train_data, None, &info(), &bad),
        Err(TrainError::Checkpoint(_))
    ));
    assert!(matches!(
        train(&model, &cfg, &data(10, 4), None, &info(), &bad),
        Err(TrainError::Checkpoint(_))
    ));

    let mut resume = TrainOptions::new(dir.path());
    resume.resume = Some(ckpt);
    let resumed = train(&model, &cfg, &train_data, None, &info(), &resume).unwrap();
    assert_eq!(resumed.1.steps, 5);
    assert_eq!(
        resumed.1.losses.len(),
        3,
        "steps 3, 4, 5 after resuming at 2"
    );
    // The redone step 3 and the steps after it have the same losses as in the uninterrupted
    // run, and the adapter ends the same.
    assert_resumed_equals(&full, &resumed, 2, 1e-6);
    // The interrupted step 3 is not counted twice in the metrics.
    assert_eq!(metric_steps(dir.path()), vec![1, 2, 3, 4, 5]);
    assert!(resumed.1.adapter_dir.is_some());
}

#[test]
fn unusable_data_is_refused() {
    let model = common::tiny_model(7);
    let dir = tempfile::tempdir().unwrap();
    let opts = TrainOptions::new(dir.path());
    let empty = TrainData {
        examples: vec![],
        dataset_hash: "e".into(),
        groups: vec![],
    };
    assert!(matches!(
        train(&model, &config(), &empty, None, &info(), &opts),
        Err(TrainError::Data(_))
    ));
    let long = TrainData {
        examples: vec![TokenizedExample {
            ids: vec![3; 40],
            answer_start: 30,
        }],
        dataset_hash: "l".into(),
        groups: vec![],
    };
    assert!(matches!(
        train(&model, &config(), &long, None, &info(), &opts),
        Err(TrainError::Data(_))
    ));
}

/// Scores that peak at the second evaluation, remembering the adapter seen at each.
struct Peaked {
    seen: Vec<(usize, Vec<Vec<f32>>)>,
}

impl TrainHooks for Peaked {
    fn dev_score(
        &mut self,
        adapter: &LoraAdapter,
        step: usize,
    ) -> sqlora_train::Result<Option<f64>> {
        self.seen.push((step, values(adapter)));
        Ok(Some([0.5, 0.9, 0.2, 0.1][self.seen.len() - 1]))
    }
}

#[test]
fn the_adapter_with_the_best_dev_score_is_kept() {
    let model = common::tiny_model(11);
    let cfg = TrainConfig {
        eval_interval: 5,
        ..config()
    };
    let dir = tempfile::tempdir().unwrap();
    let opts = TrainOptions::new(dir.path());
    let mut hooks = Peaked { seen: Vec::new() };
    let (adapter, report) =
        train_with(&model, &cfg, &data(16, 3), None, &info(), &opts, &mut hooks).unwrap();
    let steps: Vec<usize> = hooks.seen.iter().map(|s| s.0).collect();
    assert_eq!(steps, vec![5, 10, 15, 20]);
    assert_eq!(report.kept_step, 10);
    assert_eq!(
        values(&adapter),
        hooks.seen[1].1,
        "the returned adapter is the best one"
    );
    assert_ne!(
        hooks.seen[1].1, hooks.seen[3].1,
        "training went on after the best step"
    );
    let saved = peft::load_adapter(&dir.path().join("adapter"), &model).unwrap();
    for (k, m) in adapter.modules() {
        let s = saved.module(k).unwrap();
        let d = (&m.b - &s.b).unwrap().abs().unwrap().max_all().unwrap();
        assert!(d.to_scalar::<f32>().unwrap() < 1e-6);
    }
    let meta: Meta = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("adapter/sqlora_meta.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(meta.kept_step, 10);
    assert_eq!(meta.dev_ex.len(), 4);
    assert!(dir.path().join("adapter/loss.svg").is_file());
    assert!(dir.path().join("adapter/dev_ex.svg").is_file());
}

/// The same score at every evaluation.
struct Flat;

impl TrainHooks for Flat {
    fn dev_score(&mut self, _: &LoraAdapter, _: usize) -> sqlora_train::Result<Option<f64>> {
        Ok(Some(0.25))
    }
}

#[test]
fn ties_keep_the_later_adapter() {
    let model = common::tiny_model(12);
    let cfg = TrainConfig {
        eval_interval: 5,
        ..config()
    };
    let dir = tempfile::tempdir().unwrap();
    let opts = TrainOptions::new(dir.path());
    let (_, report) =
        train_with(&model, &cfg, &data(16, 4), None, &info(), &opts, &mut Flat).unwrap();
    assert_eq!(report.kept_step, 20);
}

/// Every module's A and B of `a`, in module order.
fn module_values(a: &LoraAdapter) -> Vec<Vec<f32>> {
    a.modules()
        .values()
        .flat_map(|m| [&m.a, &m.b])
        .map(|t| t.flatten_all().unwrap().to_vec1().unwrap())
        .collect()
}

#[test]
fn a_run_can_start_from_a_saved_adapter() {
    let model: Model = common::tiny_model(5);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.max_steps = Some(4);
    let (_, first) = train(
        &model,
        &cfg,
        &data(16, 1),
        None,
        &info(),
        &TrainOptions::new(dir.path().join("first")),
    )
    .unwrap();
    let saved_dir = first.adapter_dir.unwrap();
    let saved = module_values(&peft::load_adapter(&saved_dir, &model).unwrap());
    assert!(
        saved
            .iter()
            .skip(1)
            .step_by(2)
            .any(|b| b.iter().any(|&x| x != 0.0)),
        "the first run trained B away from zero"
    );

    // One step at a vanishing learning rate from the saved adapter: still the saved adapter
    // (a fresh start would have B = 0).
    let mut still = cfg.clone();
    still.lr = 1e-20;
    still.warmup_steps = 0;
    still.max_steps = Some(1);
    let mut opts = TrainOptions::new(dir.path().join("second"));
    opts.init = Some(saved_dir.clone());
    let (second, _) = train(&model, &still, &data(8, 3), None, &info(), &opts).unwrap();
    let got = module_values(&second);
    assert_eq!(got.len(), saved.len());
    for (g, s) in got.iter().zip(&saved) {
        for (x, y) in g.iter().zip(s) {
            assert!((x - y).abs() <= 1e-6, "{x} vs {y}");
        }
    }

    // Another rank (so other shapes and scale) is refused, naming the adapter.
    let mut other = still.clone();
    other.rank = 2;
    let mut opts = TrainOptions::new(dir.path().join("third"));
    opts.init = Some(saved_dir.clone());
    match train(&model, &other, &data(8, 3), None, &info(), &opts) {
        Err(TrainError::Config(msg)) => {
            assert!(
                msg.contains("rank 4") && msg.contains(&saved_dir.display().to_string()),
                "{msg}"
            )
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a rank-4 adapter continued at rank 2"),
    }
}

#[test]
fn a_run_that_would_not_fit_is_checkpointed_or_refused() {
    use sqlora_train::memory::{dequantized_bytes, run_memory, Resident, USABLE_SHARE};
    use sqlora_train::trainer::FROZEN_CACHE_BYTES;
    let model = common::tiny_model(8);
    let plain_cfg = TrainConfig {
        checkpointing: false,
        max_steps: Some(4),
        ..config()
    };
    let train_data = data(12, 5);
    // The tiny model's 2 layers, all adapted (rank 4, all seven projections).
    let adapter = LoraAdapter::init("x", &model, plain_cfg.lora_config().unwrap(), 0).unwrap();
    let params: usize = adapter.vars().iter().map(|v| v.elem_count()).sum();
    let run = run_memory(
        model.config(),
        &plain_cfg,
        &train_data.examples,
        &train_data.groups,
        Resident {
            lowest: 0,
            dropout: false,
            adapter_params: params,
            frozen_cache: FROZEN_CACHE_BYTES as u64,
            dequantized: dequantized_bytes(&model, 0),
        },
    );
    assert!(run.checkpointed.total < run.plain.total, "{run:?}");
    let budget_for = |bytes: u64| (bytes as f64 / USABLE_SHARE) as u64 + 1;

    // Room for the checkpointed step only: checkpointing is switched on, and the run computes
    // exactly what a run configured with it does.
    let dir = tempfile::tempdir().unwrap();
    let mut opts = TrainOptions::new(dir.path());
    opts.memory_budget = Some(budget_for(run.checkpointed.total));
    let (_, switched) = train(&model, &plain_cfg, &train_data, None, &info(), &opts).unwrap();
    assert!(switched.checkpointing);
    assert_eq!(switched.memory, Some(run));
    let ckpt_cfg = TrainConfig {
        checkpointing: true,
        ..plain_cfg.clone()
    };
    let other = tempfile::tempdir().unwrap();
    let (_, configured) = train(
        &model,
        &ckpt_cfg,
        &train_data,
        None,
        &info(),
        &TrainOptions::new(other.path()),
    )
    .unwrap();
    // Checkpointing recomputes the same products: the same losses, up to rounding.
    let same = |a: &[f64], b: &[f64]| {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| (x - y).abs() <= 1e-5 * y.abs().max(1.0))
    };
    assert!(same(&switched.losses, &configured.losses));

    // Room for the plain step: as configured.
    let dir = tempfile::tempdir().unwrap();
    let mut opts = TrainOptions::new(dir.path());
    opts.memory_budget = Some(budget_for(run.plain.total));
    let (_, plain) = train(&model, &plain_cfg, &train_data, None, &info(), &opts).unwrap();
    assert!(!plain.checkpointing);
    assert!(same(&plain.losses, &configured.losses));

    // Not even that: it still trains, checkpointed (the estimate errs high).
    let dir = tempfile::tempdir().unwrap();
    let mut opts = TrainOptions::new(dir.path());
    opts.memory_budget = Some(run.checkpointed.total / 2);
    let (_, tight) = train(&model, &plain_cfg, &train_data, None, &info(), &opts).unwrap();
    assert!(tight.checkpointing);
    assert!(same(&tight.losses, &configured.losses));

    // A checkpoint made without checkpointing resumes with it (and the other way round).
    let dir = tempfile::tempdir().unwrap();
    let mut opts = TrainOptions::new(dir.path());
    opts.stop_after = Some(2);
    let saving = TrainConfig {
        save_interval: 2,
        ..plain_cfg.clone()
    };
    train(&model, &saving, &train_data, None, &info(), &opts).unwrap();
    let mut resume = TrainOptions::new(dir.path());
    resume.resume = latest_checkpoint(dir.path());
    let resumed_cfg = TrainConfig {
        checkpointing: true,
        ..saving
    };
    let (_, resumed) = train(&model, &resumed_cfg, &train_data, None, &info(), &resume).unwrap();
    assert!(same(&resumed.losses, &configured.losses[2..]));
}
