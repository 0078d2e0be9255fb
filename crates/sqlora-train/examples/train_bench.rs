//! Training throughput of sqlora's trainer on real micro-batches, written so a Python peer
//! (`tools/bench/peft_train_bench.py`) can train on the very same tokens.
//!
//! `cargo run --release -p sqlora-train --example train_bench -- MODEL DOMAIN ROWS STEPS OUT_JSON
//! [MAX_SEQ_LEN]` (MAX_SEQ_LEN default 1024, as `sqlora train`).
//!
//! Builds the first ROWS training examples of DOMAIN exactly like `sqlora train` (the builtin
//! prompt builder, the model's chat template and end marker, prompt cut from its start to fit
//! MAX_SEQ_LEN), writes their token ids and answer starts to OUT_JSON, then runs STEPS optimizer
//! steps, each one micro-batch of all ROWS rows, the way the trainer does a step: shared-prefix
//! batch, checkpointed forward + backward ([`loss_and_grads`], loss = mean over answer tokens),
//! gradient clipping at 1.0, AdamW at lr 1e-4. LoRA: rank 8, alpha 16, all seven projections of
//! all layers, no dropout. The first step is an untimed warm-up. Prints one JSON object; tokens
//! are counted as full sequences (every real token of every row, prompt included) per second
//! of step wall time. `CHECKPOINTING=0` in the environment runs the step without activation
//! checkpointing (every layer's graph kept, nothing recomputed), as configs/domain.toml does.
//! Freed memory stays in the heap as in `sqlora train` ([`sqlora_train::alloc`]);
//! `SQLORA_GLIBC_DEFAULTS=1` keeps glibc's defaults instead, for an A/B.

use std::path::Path;
use std::time::Instant;

use candle_core::{Device, Tensor};
use sqlora_data::{build_domain, Domain};
use sqlora_model::lora::{LoraAdapter, LoraConfig, PROJECTIONS};
use sqlora_sql::Schema;
use sqlora_sqlgen::PromptBuilder;
use sqlora_train::batch::{render, tokenize, TokenizedExample};
use sqlora_train::forward::{loss_and_grads_with, make_prefix_batch, AdapterMode, PassOptions};
use sqlora_train::memory::{dequantized_bytes, step_memory, BatchShape, Resident};
use sqlora_train::optim::{clip_grad_norm, AdamW, AdamWParams};

const USAGE: &str = "usage: train_bench MODEL DOMAIN ROWS STEPS OUT_JSON [MAX_SEQ_LEN]";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    sqlora_model::quiet_candle_pool();
    if std::env::var_os("SQLORA_GLIBC_DEFAULTS").is_none() {
        sqlora_train::alloc::keep_freed_memory();
    }
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 6 {
        return Err(USAGE.into());
    }
    let model_path = Path::new(&args[1]);
    let domain_name = &args[2];
    let rows: usize = args[3].parse()?;
    let steps: usize = args[4].parse()?;
    let out_json = Path::new(&args[5]);
    let max_seq_len: usize = args.get(6).map(|s| s.parse()).transpose()?.unwrap_or(1024);
    if rows == 0 || steps < 2 {
        return Err("ROWS must be at least 1 and STEPS at least 2 (the first is a warm-up)".into());
    }

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let domain = Domain::open(&root.join("datasets").join(domain_name))?;
    let tmp = std::env::temp_dir().join(format!("sqlora-train-bench-{}", std::process::id()));
    let built = build_domain(&domain, &tmp, 0)?;
    let db = built.first().ok_or("no database built")?;
    let schema = Schema::introspect(&db.path)?;
    let m = sqlora_model::load(model_path, &Device::Cpu)?;
    let chat = m
        .chat_template
        .as_ref()
        .ok_or("the model has no chat template")?;
    // The end marker as `sqlora train` picks it: the first EOS token's text.
    let end_marker = m
        .tokenizer
        .eos_token_ids()
        .first()
        .map(|&id| m.tokenizer.decode(&[id], false))
        .transpose()?
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "<|im_end|>".to_string());
    let builder = PromptBuilder::builtin();
    let mut examples: Vec<TokenizedExample> = Vec::with_capacity(rows);
    for ex in domain.split("train")?.iter().take(rows) {
        let t = builder.training_example(&ex.question, &schema, &ex.sql)?;
        examples.push(tokenize(
            &render(&t, chat, &end_marker)?,
            &m.tokenizer,
            max_seq_len,
        )?);
    }
    if examples.len() < rows {
        return Err(format!("the domain has only {} training examples", examples.len()).into());
    }
    let pad_id = m.tokenizer.pad_token_id();
    let dump = serde_json::json!({
        "domain": domain_name,
        "max_seq_len": max_seq_len,
        "pad_id": pad_id,
        "rows": examples
            .iter()
            .map(|e| serde_json::json!({"ids": e.ids, "answer_start": e.answer_start}))
            .collect::<Vec<_>>(),
    });
    std::fs::write(out_json, serde_json::to_string(&dump)?)?;

    let refs: Vec<&TokenizedExample> = examples.iter().collect();
    let adapter = LoraAdapter::init("bench", &m.model, LoraConfig::new(8, 16.0, &PROJECTIONS), 0)?;
    let vars = adapter.vars().to_vec();
    let mut opt = AdamW::new(
        &vars,
        AdamWParams {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        },
    )?;
    let mut times = Vec::with_capacity(steps);
    let mut losses = Vec::with_capacity(steps);
    let (mut tokens, mut computed, mut answer, mut prefix_len) = (0, 0, 0, 0);
    let checkpointing = std::env::var("CHECKPOINTING").as_deref() != Ok("0");
    // What the trainer's memory check would estimate for this step, against what it takes:
    // the peak resident set is reset here (after loading), so it measures the steps alone.
    let params: usize = vars.iter().map(|v| v.as_tensor().elem_count()).sum();
    // All layers adapted, no dropout, no frozen-layer cache; the weights dequantized by the
    // first step are counted, as the trainer counts them.
    let dequantized = dequantized_bytes(&m.model, 0);
    let resident = Resident {
        adapter_params: params,
        dequantized,
        ..Resident::default()
    };
    let estimate = step_memory(
        m.model.config(),
        &BatchShape::of(&refs),
        &resident,
        checkpointing,
    );
    let rss_before = rss_mb("VmRSS:");
    let load_peak = rss_mb("VmHWM:");
    // Writing 5 to clear_refs resets VmHWM to the current resident set.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    for _ in 0..steps {
        let t0 = Instant::now();
        // Built inside the step, as the trainer builds its micro-batches.
        let batch = make_prefix_batch(&refs, pad_id, &Device::Cpu)?;
        let mut grads: Vec<Tensor> = vars
            .iter()
            .map(|v| v.as_tensor().zeros_like())
            .collect::<candle_core::Result<_>>()?;
        let loss = loss_and_grads_with(
            &m.model,
            &adapter,
            &batch,
            AdapterMode::eval(),
            1.0 / batch.answer_tokens as f64,
            &mut grads,
            &mut PassOptions {
                checkpointing,
                cache: None,
            },
        )?;
        clip_grad_norm(&mut grads, 1.0)?;
        opt.step(&vars, &grads, 1e-4)?;
        times.push(t0.elapsed().as_secs_f64());
        losses.push(loss / batch.answer_tokens as f64);
        tokens = batch.tokens;
        computed = batch.computed_tokens;
        answer = batch.answer_tokens;
        prefix_len = batch.prefix_len;
    }
    let mut timed = times[1..].to_vec();
    timed.sort_by(f64::total_cmp);
    // The median as Python's `statistics.median` takes it (mean of the middle two when even).
    let mid = timed.len() / 2;
    let median = if timed.len() % 2 == 0 {
        (timed[mid - 1] + timed[mid]) / 2.0
    } else {
        timed[mid]
    };
    let report = serde_json::json!({
        "engine": "sqlora",
        "checkpointing": checkpointing,
        "rows": rows,
        "tokens_per_step": tokens,
        "computed_tokens_per_step": computed,
        "answer_tokens_per_step": answer,
        "shared_prefix_len": prefix_len,
        "trainable_params": params,
        "step_seconds": median,
        "step_seconds_all": times,
        "losses": losses,
        "tokens_per_s": tokens as f64 / median,
        "peak_rss_mb": load_peak.max(rss_mb("VmHWM:")),
        "rss_before_steps_mb": rss_before,
        "step_peak_rss_mb": rss_mb("VmHWM:"),
        "estimated_step_mb": estimate.total / (1 << 20),
        "threads": std::env::var("RAYON_NUM_THREADS").ok(),
        "loadavg_1m": loadavg_1m(),
    });
    println!("{report}");
    std::fs::remove_dir_all(&tmp)?;
    Ok(())
}

/// A `/proc/self/status` size (`VmHWM:` the peak resident set, `VmRSS:` the current one) in MB,
/// 0 where /proc is unavailable.
fn rss_mb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with(field)).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
            })
        })
        .map(|kb| kb / 1024)
        .unwrap_or(0)
}

/// The 1-minute load average, where /proc has it.
fn loadavg_1m() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
}
