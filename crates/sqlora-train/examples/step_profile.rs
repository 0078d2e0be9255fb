//! Where a training step's time goes on a real model: the no-gradient pass, and the full
//! checkpointed forward + backward, for one micro-batch of a domain; then, with adapters on the
//! upper 16 layers (configs/domain.toml), the step checkpointed, without checkpointing, and
//! without checkpointing starting from the frozen-layer cache (what every epoch after the
//! first does).
//!
//! `cargo run --release -p sqlora-train --example step_profile -- MODEL [DOMAIN] [ROWS]`

use std::path::Path;
use std::time::Instant;

use candle_core::Device;
use sqlora_data::{build_domain, Domain};
use sqlora_model::lora::{LoraAdapter, PROJECTIONS};
use sqlora_sql::Schema;
use sqlora_sqlgen::PromptBuilder;
use sqlora_train::batch::{render, tokenize, TokenizedExample};
use sqlora_train::forward::{
    loss_and_grads, loss_and_grads_with, loss_sum, make_prefix_batch, AdapterMode, FrozenCache,
    PassOptions,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    sqlora_model::quiet_candle_pool();
    if std::env::var_os("SQLORA_GLIBC_DEFAULTS").is_none() {
        sqlora_train::alloc::keep_freed_memory();
    }
    let args: Vec<String> = std::env::args().collect();
    let model_path = args
        .get(1)
        .ok_or("usage: step_profile MODEL [DOMAIN] [ROWS]")?;
    let domain_name = args.get(2).map(String::as_str).unwrap_or("retail");
    let rows: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(8);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let domain = Domain::open(&root.join("datasets").join(domain_name))?;
    let tmp = std::env::temp_dir().join(format!("sqlora-step-profile-{}", std::process::id()));
    let built = build_domain(&domain, &tmp, 0)?;
    let db = built.first().ok_or("no database built")?;
    let schema = Schema::introspect(&db.path)?;
    let m = sqlora_model::load(Path::new(model_path), &Device::Cpu)?;
    let chat = m.chat_template.as_ref().ok_or("no chat template")?;
    let builder = PromptBuilder::builtin();
    let mut examples: Vec<TokenizedExample> = Vec::new();
    for ex in domain.split("train")?.iter().take(rows) {
        let t = builder.training_example(&ex.question, &schema, &ex.sql)?;
        examples.push(tokenize(
            &render(&t, chat, "<|im_end|>")?,
            &m.tokenizer,
            2048,
        )?);
    }
    let refs: Vec<&TokenizedExample> = examples.iter().collect();
    let batch = make_prefix_batch(&refs, 0, &Device::Cpu)?;
    println!(
        "{} rows: prefix {} tokens, suffix {} (padded), {} computed / {} counted tokens",
        batch.rows, batch.prefix_len, batch.suffix_len, batch.computed_tokens, batch.tokens
    );
    let adapter = LoraAdapter::init(
        "probe",
        &m.model,
        sqlora_model::lora::LoraConfig::new(8, 16.0, &PROJECTIONS),
        0,
    )?;
    if let Some(prefix) = &batch.prefix {
        let p = batch.prefix_len;
        let pos: Vec<u32> = (0..p as u32).collect();
        let pos = candle_core::Tensor::new(pos.as_slice(), &Device::Cpu)?.unsqueeze(0)?;
        let t = Instant::now();
        m.model.forward(prefix, &pos, None, None)?;
        println!(
            "inference forward of the prefix alone: {:.2} s",
            t.elapsed().as_secs_f64()
        );
    }
    if std::env::var_os("PROFILE_FORWARD_ONLY").is_some() {
        let t = Instant::now();
        let l = loss_sum(&m.model, &adapter, &batch, AdapterMode::eval())?;
        println!(
            "no-gradient pass: {:.2} s (loss {l:.3})",
            t.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    let t = Instant::now();
    let l = loss_sum(&m.model, &adapter, &batch, AdapterMode::eval())?;
    let fwd = t.elapsed().as_secs_f64();
    println!("no-gradient pass: {fwd:.2} s (loss {l:.3})");
    let mut grads: Vec<_> = adapter
        .vars()
        .iter()
        .map(|v| v.as_tensor().zeros_like())
        .collect::<candle_core::Result<_>>()?;
    let t = Instant::now();
    loss_and_grads(
        &m.model,
        &adapter,
        &batch,
        AdapterMode::eval(),
        1.0,
        &mut grads,
    )?;
    let full = t.elapsed().as_secs_f64();
    println!(
        "forward + backward: {full:.2} s = {:.1} counted tokens/s ({:.1} computed tokens/s)",
        batch.tokens as f64 / full,
        batch.computed_tokens as f64 / full
    );
    let mut drop_mode = AdapterMode::eval();
    drop_mode.dropout = 0.05;
    let t = Instant::now();
    loss_and_grads(&m.model, &adapter, &batch, drop_mode, 1.0, &mut grads)?;
    println!("with dropout 0.05: {:.2} s", t.elapsed().as_secs_f64());

    // The bundled adapters' configuration: the upper 16 of 30 layers.
    let mut cfg = sqlora_model::lora::LoraConfig::new(8, 16.0, &PROJECTIONS);
    cfg.layers_to_transform = Some((14..30).collect());
    let upper = LoraAdapter::init("upper", &m.model, cfg, 0)?;
    let mut g: Vec<_> = upper
        .vars()
        .iter()
        .map(|v| v.as_tensor().zeros_like())
        .collect::<candle_core::Result<_>>()?;
    let mut cache = FrozenCache::new(1 << 30);
    for (label, checkpointing, use_cache) in [
        ("upper 16 layers, checkpointed", true, false),
        ("upper 16 layers, no checkpointing", false, false),
        (
            "upper 16 layers, no checkpointing, filling the cache",
            false,
            true,
        ),
        (
            "upper 16 layers, no checkpointing, from the cache",
            false,
            true,
        ),
    ] {
        let mut opts = PassOptions {
            checkpointing,
            cache: use_cache.then_some(&mut cache),
        };
        let t = Instant::now();
        loss_and_grads_with(
            &m.model,
            &upper,
            &batch,
            AdapterMode::eval(),
            1.0,
            &mut g,
            &mut opts,
        )?;
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{label}: {secs:.2} s = {:.1} computed tokens/s",
            batch.computed_tokens as f64 / secs
        );
    }
    std::fs::remove_dir_all(&tmp)?;
    Ok(())
}
