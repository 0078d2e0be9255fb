//! Training throughput on a real model: a few optimizer steps on one domain's training split.
//!
//! `cargo run --release -p sqlora-train --example train_speed -- MODEL [DOMAIN] [STEPS] [MICRO_BATCH]
//! [MAX_SEQ_LEN]` (defaults: library, 3, 1, 1024; one micro-batch per step).
//! (MODEL: a .gguf file or a Hugging Face folder; DOMAIN under `datasets/`, default `library`).

use std::path::Path;
use std::time::Instant;

use candle_core::Device;
use sqlora_data::{build_domain, Domain};
use sqlora_sql::Schema;
use sqlora_sqlgen::PromptBuilder;
use sqlora_train::batch::{dataset_hash, render, tokenize};
use sqlora_train::trainer::{train, RunInfo, TrainData, TrainOptions};
use sqlora_train::TrainConfig;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    sqlora_model::quiet_candle_pool();
    if std::env::var_os("SQLORA_GLIBC_DEFAULTS").is_none() {
        sqlora_train::alloc::keep_freed_memory();
    }
    let args: Vec<String> = std::env::args().collect();
    let model_path = args
        .get(1)
        .ok_or("usage: train_speed MODEL [DOMAIN] [STEPS] [MICRO_BATCH] [MAX_SEQ_LEN]")?;
    let domain_name = args.get(2).map(String::as_str).unwrap_or("library");
    let steps: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(3);
    let micro_batch: usize = args.get(4).map(|s| s.parse()).transpose()?.unwrap_or(1);
    let max_seq_len: usize = args.get(5).map(|s| s.parse()).transpose()?.unwrap_or(1024);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let domain = Domain::open(&root.join("datasets").join(domain_name))?;
    let tmp = std::env::temp_dir().join(format!("sqlora-train-speed-{}", std::process::id()));
    let built = build_domain(&domain, &tmp, 0)?;
    let db = built.first().ok_or("no database built")?;
    let schema = Schema::introspect(&db.path)?;
    let builder = PromptBuilder::builtin();
    let m = sqlora_model::load(Path::new(model_path), &Device::Cpu)?;
    let chat = m
        .chat_template
        .as_ref()
        .ok_or("the model has no chat template")?;
    let cfg = TrainConfig {
        max_steps: Some(steps),
        warmup_steps: 1,
        micro_batch,
        grad_accum: 1,
        max_seq_len,
        save_interval: 0,
        ..TrainConfig::default()
    };
    let mut rendered = Vec::new();
    for ex in domain.split("train")? {
        let t = builder.training_example(&ex.question, &schema, &ex.sql)?;
        rendered.push(render(&t, chat, "<|im_end|>")?);
    }
    let examples = rendered
        .iter()
        .map(|r| tokenize(r, &m.tokenizer, cfg.max_seq_len))
        .collect::<Result<Vec<_>, _>>()?;
    let full: Vec<usize> = rendered
        .iter()
        .map(|r| tokenize(r, &m.tokenizer, usize::MAX).map(|t| t.len()))
        .collect::<Result<_, _>>()?;
    println!(
        "untruncated lengths: min {} max {}; {} of {} prompts cut to fit max_seq_len {}",
        full.iter().min().copied().unwrap_or(0),
        full.iter().max().copied().unwrap_or(0),
        full.iter().filter(|&&l| l > cfg.max_seq_len).count(),
        full.len(),
        cfg.max_seq_len
    );
    let mean_len = examples.iter().map(|e| e.len()).sum::<usize>() as f64 / examples.len() as f64;
    println!(
        "{} examples, mean {mean_len:.0} tokens, micro-batch {} x accumulation {}",
        examples.len(),
        cfg.micro_batch,
        cfg.grad_accum
    );
    let data = TrainData {
        dataset_hash: dataset_hash(&rendered),
        examples,
        groups: Vec::new(),
    };
    let mut opts = TrainOptions::new(tmp.join("run"));
    opts.pad_id = m.tokenizer.pad_token_id();
    let t0 = Instant::now();
    let (_, report) = train(&m.model, &cfg, &data, None, &RunInfo::default(), &opts)?;
    let secs = t0.elapsed().as_secs_f64();
    let metrics = std::fs::read_to_string(tmp.join("run/metrics.jsonl"))?;
    for line in metrics.lines() {
        println!("{line}");
    }
    println!(
        "{} steps in {secs:.1} s, losses {:?}, peak RSS {} MB",
        report.steps,
        report.losses,
        peak_rss_mb()
    );
    std::fs::remove_dir_all(&tmp)?;
    Ok(())
}

fn peak_rss_mb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
            })
        })
        .map(|kb| kb / 1024)
        .unwrap_or(0)
}
