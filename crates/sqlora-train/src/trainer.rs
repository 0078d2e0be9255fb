//! The training loop.
//!
//! Each optimizer step takes `grad_accum` micro-batches; the loss is the mean over all answer
//! tokens of those micro-batches (each micro-batch's summed loss is divided by the step's total
//! answer tokens before `backward`, and the gradients add up). Gradients are clipped to
//! `grad_clip`, then AdamW updates the adapter at the scheduled learning rate.
//!
//! The micro-batch stream is a pure function of the seed: epoch `e` uses
//! [`epoch_plan`]`(lengths, micro_batch, seed, e)`, so a checkpoint only needs the step count
//! to know where the data order stands.
//!
//! Resuming reproduces an uninterrupted run exactly when `dropout` is 0; with dropout the masks
//! come from candle's unseeded generator (inside `sqlora-model`), so a resumed run is
//! statistically, not bitwise, the same.
//!
//! Files under `out_dir`:
//! * `metrics.jsonl`: one JSON object per optimizer step (`step`, `epoch`, `loss`, `lr`,
//!   `grad_norm`, `tokens`, `answer_tokens`, `tokens_per_s`, `elapsed_s`), plus `eval_loss`
//!   records every `eval_interval` steps when an evaluation set is given.
//! * `checkpoints/step-NNNNNN/`: `adapter.safetensors` (the variables), `frozen.safetensors`
//!   (the hidden states below the lowest adapted layer, see [`FrozenCache`]),
//!   `optimizer.safetensors`
//!   and `state.json`; written to a temporary folder first and renamed, so a checkpoint is
//!   either complete or absent.
//! * `adapter/`: the final adapter in PEFT format plus `sqlora_meta.json`.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Tensor, Var};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use sqlora_model::llama::Model;
use sqlora_model::lora::LoraAdapter;
use sqlora_model::peft;

use crate::batch::{grouped_epoch_plan, TokenizedExample};
use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::forward::{
    loss_and_grads_with, loss_sum, make_prefix_batch, AdapterMode, FrozenCache, PassOptions,
    PrefixBatch,
};

use crate::memory::{self, RunMemory};
use crate::optim::{clip_grad_norm, lr_at, AdamW, AdamWParams};

/// At most this many bytes of frozen-layer hidden states are kept between epochs.
pub const FROZEN_CACHE_BYTES: usize = 2 << 30;

/// File name of the run's metadata inside the adapter folder.
pub const META_FILE: &str = "sqlora_meta.json";

/// Tokenized training data and its identity.
#[derive(Debug, Clone)]
pub struct TrainData {
    /// The training sequences.
    pub examples: Vec<TokenizedExample>,
    /// The dataset hash recorded in checkpoints and `sqlora_meta.json`
    /// (see [`crate::batch::dataset_hash`]).
    pub dataset_hash: String,
    /// A group (database) per example; micro-batches never mix groups, so their rows share the
    /// schema prompt. Empty = one group.
    pub groups: Vec<usize>,
}

/// Called by the trainer at every evaluation interval and after the last step.
pub trait TrainHooks {
    /// The dev-set score of `adapter` after optimizer step `step` (execution accuracy in
    /// [0, 1]); `None` when not measured. The best-scoring adapter is the one saved.
    fn dev_score(&mut self, adapter: &LoraAdapter, step: usize) -> Result<Option<f64>>;
}

/// No hooks: the final adapter is the last one.
pub struct NoHooks;

impl TrainHooks for NoHooks {
    fn dev_score(&mut self, _adapter: &LoraAdapter, _step: usize) -> Result<Option<f64>> {
        Ok(None)
    }
}

/// What the run is, for `sqlora_meta.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RunInfo {
    /// The database domain the adapter is for.
    pub domain: String,
    /// The base model's name or path (PEFT's `base_model_name_or_path`).
    pub base_model: Option<String>,
    /// The sha256 of the base model file, if known.
    pub base_model_sha256: Option<String>,
}

/// How to run (not part of the hyper-parameters).
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Where metrics, checkpoints and the final adapter go (created if needed).
    pub out_dir: PathBuf,
    /// Continue from this checkpoint folder (`checkpoints/step-NNNNNN`).
    pub resume: Option<PathBuf>,
    /// Start from this adapter (a PEFT folder) instead of a fresh one: its A and B are the
    /// initial values (a fresh optimizer and schedule). Its modules, ranks and scales must be
    /// the ones the config makes. Ignored when resuming (the checkpoint has the values).
    pub init: Option<PathBuf>,
    /// Stop after this optimizer step without saving the final adapter (an interruption).
    pub stop_after: Option<usize>,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// The padding token id.
    pub pad_id: u32,
    /// Memory the run may use, in bytes (e.g. [`crate::memory::available_bytes`] after the
    /// model is loaded): before the first step the trainer estimates its steps' peak
    /// ([`crate::memory`]), switches activation checkpointing on when they would not fit
    /// without it, and warns (with `progress`) when they may not fit even with it. `None`: no
    /// check.
    pub memory_budget: Option<u64>,
}

impl TrainOptions {
    /// Defaults: no resume, no early stop, no progress bar, padding id 0.
    pub fn new(out_dir: impl Into<PathBuf>) -> TrainOptions {
        TrainOptions {
            out_dir: out_dir.into(),
            resume: None,
            init: None,
            stop_after: None,
            progress: false,
            pad_id: 0,
            memory_budget: None,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct TrainReport {
    /// Optimizer steps completed (counting those before a resume).
    pub steps: usize,
    /// Planned optimizer steps.
    pub total_steps: usize,
    /// The training loss of each step this call ran.
    pub losses: Vec<f64>,
    /// Held-out losses as `(step, loss)`.
    pub eval_losses: Vec<(usize, f64)>,
    /// Dev-set scores as `(step, score)`.
    pub dev_scores: Vec<(usize, f64)>,
    /// The step whose adapter was kept (best dev score; the last step without scores).
    pub kept_step: usize,
    /// Wall-clock seconds of this call's steps.
    pub train_seconds: f64,
    /// Tokens trained this call, counted as full sequences (prompt included).
    pub tokens: usize,
    /// The PEFT folder of the final adapter (`None` when stopped early).
    pub adapter_dir: Option<PathBuf>,
    /// The memory estimate of the largest step, when a budget was given.
    pub memory: Option<RunMemory>,
    /// Whether the steps ran with activation checkpointing (the config's choice, or switched on
    /// because the run would not fit without it).
    pub checkpointing: bool,
}

/// The run's metadata written next to the final adapter.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Meta {
    /// The database domain.
    pub domain: String,
    /// The base model's name or path.
    pub base_model: Option<String>,
    /// The base model file's sha256.
    pub base_model_sha256: Option<String>,
    /// The training data's hash.
    pub dataset_sha256: String,
    /// Training examples.
    pub examples: usize,
    /// Optimizer steps.
    pub steps: usize,
    /// The last step's training loss.
    pub final_loss: Option<f64>,
    /// The hyper-parameters.
    pub config: TrainConfig,
    /// Dev-set execution accuracy by step.
    #[serde(default)]
    pub dev_ex: Vec<(usize, f64)>,
    /// The step of the saved adapter (the best dev EX).
    #[serde(default)]
    pub kept_step: usize,
    /// Training wall-clock seconds (of the last call, when resumed).
    #[serde(default)]
    pub train_seconds: f64,
    /// Trained tokens per second, prompt tokens included.
    #[serde(default)]
    pub tokens_per_s: f64,
    /// Test-split execution accuracy, filled in by `sqlora train` after training.
    #[serde(default)]
    pub test_ex: Option<f64>,
    /// How many test questions `test_ex` is over.
    #[serde(default)]
    pub test_questions: Option<usize>,
    /// `test_ex` of each database when the adapter was trained on several (`--domain all`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub test_ex_by_database: BTreeMap<String, f64>,
}

/// The `state.json` of a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct CheckpointState {
    step: usize,
    total_steps: usize,
    seed: u64,
    /// Micro-batches consumed so far (the data-order position).
    micro_batches_done: usize,
    micro_batches_per_epoch: usize,
    dataset_sha256: String,
    variables: usize,
    config: TrainConfig,
    last_loss: Option<f64>,
    #[serde(default)]
    dev_scores: Vec<(usize, f64)>,
    #[serde(default)]
    best: Option<(usize, f64)>,
}

/// The newest complete checkpoint under `out_dir`, if any.
pub fn latest_checkpoint(out_dir: &Path) -> Option<PathBuf> {
    let dir = out_dir.join("checkpoints");
    let mut best: Option<(usize, PathBuf)> = None;
    for entry in std::fs::read_dir(&dir).ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(step) = name
            .strip_prefix("step-")
            .and_then(|s| s.parse::<usize>().ok())
        else {
            continue;
        };
        if !entry.path().join("state.json").is_file() {
            continue;
        }
        if best.as_ref().is_none_or(|(s, _)| step > *s) {
            best = Some((step, entry.path()));
        }
    }
    best.map(|(_, p)| p)
}

/// The micro-batch schedule of a run.
struct Plan<'a> {
    lengths: Vec<usize>,
    groups: &'a [usize],
    micro_batch: usize,
    seed: u64,
    per_epoch: usize,
    total_micro: Option<usize>,
    cache: HashMap<u64, Vec<Vec<usize>>>,
    examples: &'a [TokenizedExample],
}

impl Plan<'_> {
    /// Example indices of micro-batch `k` of the stream, with its epoch.
    fn micro_batch(&mut self, k: usize) -> (u64, Vec<usize>) {
        let epoch = (k / self.per_epoch) as u64;
        let plan = self.cache.entry(epoch).or_insert_with(|| {
            grouped_epoch_plan(
                &self.lengths,
                self.groups,
                self.micro_batch,
                self.seed,
                epoch,
            )
        });
        (epoch, plan[k % self.per_epoch].clone())
    }
}

/// The memory estimate of `data`'s largest step and whether to checkpoint: as the config says
/// when it fits `opts.memory_budget` (or there is none), else on; said on stderr when
/// `opts.progress`.
fn check_memory(
    model: &Model,
    config: &TrainConfig,
    data: &TrainData,
    adapter: &LoraAdapter,
    opts: &TrainOptions,
) -> (Option<RunMemory>, bool) {
    let Some(budget) = opts.memory_budget else {
        return (None, config.checkpointing);
    };
    let lowest = crate::forward::lowest_adapted_layer(adapter);
    let params: usize = adapter.vars().iter().map(|v| v.elem_count()).sum();
    let dequantized = memory::dequantized_bytes(model, lowest);
    let run = memory::run_memory(
        model.config(),
        config,
        &data.examples,
        &data.groups,
        memory::Resident {
            lowest,
            dropout: config.dropout > 0.0,
            adapter_params: params,
            frozen_cache: FROZEN_CACHE_BYTES as u64,
            dequantized,
        },
    );
    let plan = memory::choose(&run, config.checkpointing, budget);
    if opts.progress {
        let need = if plan.checkpointing {
            run.checkpointed.total
        } else {
            run.plain.total
        };
        if plan.switched {
            eprintln!(
                "memory: the largest step may need up to {} without activation checkpointing and \
                 {} can be planned for: checkpointing switched on (up to {} a step; the same \
                 numbers, about a quarter more compute)",
                memory::gb(run.plain.total),
                memory::gb((budget as f64 * memory::USABLE_SHARE) as u64),
                memory::gb(need),
            );
        } else {
            eprintln!(
                "memory: the largest step may need up to {} (activation checkpointing {}); {} \
                 available",
                memory::gb(need),
                if plan.checkpointing { "on" } else { "off" },
                memory::gb(budget),
            );
        }
        if plan.over_budget {
            eprintln!("{}", memory::over_budget_warning(&run, budget));
        }
    }
    (Some(run), plan.checkpointing)
}

/// Trains a fresh adapter for `model` on `data` (evaluating on `eval` when given) and saves it
/// under `opts.out_dir/adapter`. Returns the trained adapter (with its variables) and a report.
pub fn train(
    model: &Model,
    config: &TrainConfig,
    data: &TrainData,
    eval: Option<&[TokenizedExample]>,
    info: &RunInfo,
    opts: &TrainOptions,
) -> Result<(LoraAdapter, TrainReport)> {
    train_with(model, config, data, eval, info, opts, &mut NoHooks)
}

/// The DyLoRA rank of optimizer step `step` (`None`: the full rank).
pub fn dylora_rank(config: &TrainConfig, step: usize) -> Option<usize> {
    if !config.dylora || config.rank <= 1 {
        return None;
    }
    let lo = config.dylora_min_rank.clamp(1, config.rank);
    let span = (config.rank - lo + 1) as u64;
    let h = crate::forward::mix(config.seed ^ 0xD1_0A ^ (step as u64).wrapping_mul(0x9E37));
    Some(lo + (h % span) as usize)
}

/// Sets the trainable `adapter`'s A and B to those of the adapter folder `dir`, which must
/// adapt the same modules with the same shapes and scales.
fn init_from(adapter: &LoraAdapter, dir: &Path, model: &Model) -> Result<()> {
    let from = sqlora_model::peft::load_adapter(dir, model)?;
    let mismatch = |what: String| {
        TrainError::Config(format!(
            "cannot continue from {}: {what}; train with the adapter's own rank, alpha, target \
             modules and layers",
            dir.display()
        ))
    };
    let want: Vec<&String> = adapter.modules().keys().collect();
    let have: Vec<&String> = from.modules().keys().collect();
    if want != have {
        return Err(mismatch(format!(
            "it adapts {} modules, this run's config {}",
            have.len(),
            want.len()
        )));
    }
    let vars = adapter.vars();
    for (i, (key, m)) in adapter.modules().iter().enumerate() {
        let f = &from.modules()[key];
        if f.a.dims() != m.a.dims() || f.b.dims() != m.b.dims() {
            return Err(mismatch(format!(
                "{key} has rank {}, this run's config {}",
                f.rank(),
                m.rank()
            )));
        }
        if (f.scale - m.scale).abs() > 1e-9 * m.scale.abs().max(1.0) {
            return Err(mismatch(format!(
                "{key} has scale {}, this run's config {}",
                f.scale, m.scale
            )));
        }
        let (a, b) = (&vars[2 * i], &vars[2 * i + 1]);
        a.set(&f.a.to_device(a.device())?.to_dtype(a.dtype())?)?;
        b.set(&f.b.to_device(b.device())?.to_dtype(b.dtype())?)?;
    }
    Ok(())
}

/// [`train`] with hooks: `hooks.dev_score` runs every `eval_interval` steps and after the last
/// one; the adapter with the best score is the one saved (ties keep the later).
pub fn train_with(
    model: &Model,
    config: &TrainConfig,
    data: &TrainData,
    eval: Option<&[TokenizedExample]>,
    info: &RunInfo,
    opts: &TrainOptions,
    hooks: &mut dyn TrainHooks,
) -> Result<(LoraAdapter, TrainReport)> {
    config.validate()?;
    if data.examples.is_empty() {
        return Err(TrainError::Data("no training examples".into()));
    }
    for e in data.examples.iter().chain(eval.unwrap_or(&[])) {
        if e.len() > config.max_seq_len {
            return Err(TrainError::Data(format!(
                "an example of {} tokens is longer than max_seq_len {}",
                e.len(),
                config.max_seq_len
            )));
        }
    }
    let device = model.device().clone();
    let name = if info.domain.is_empty() {
        "sqlora".to_string()
    } else {
        info.domain.clone()
    };
    let mut adapter = LoraAdapter::init(name.clone(), model, config.lora_config()?, config.seed)?;
    adapter.base_model = info.base_model.clone();
    let vars: Vec<Var> = adapter.vars().to_vec();
    if let (Some(dir), None) = (&opts.init, &opts.resume) {
        init_from(&adapter, dir, model)?;
    }
    let (memory, checkpointing) = check_memory(model, config, data, &adapter, opts);
    let params = AdamWParams {
        beta1: config.beta1,
        beta2: config.beta2,
        eps: config.eps,
        weight_decay: config.weight_decay,
    };

    let lengths: Vec<usize> = data.examples.iter().map(|e| e.len()).collect();
    let per_epoch = data.examples.len().div_ceil(config.micro_batch);
    let (total_steps, total_micro) = match config.max_steps {
        Some(s) => (s, None),
        None => {
            let m = per_epoch * config.epochs;
            (m.div_ceil(config.grad_accum), Some(m))
        }
    };
    let mut plan = Plan {
        lengths,
        groups: &data.groups,
        micro_batch: config.micro_batch,
        seed: config.seed,
        per_epoch,
        total_micro,
        cache: HashMap::new(),
        examples: &data.examples,
    };

    std::fs::create_dir_all(&opts.out_dir).map_err(|e| TrainError::io(&opts.out_dir, e))?;
    let metrics_path = opts.out_dir.join("metrics.jsonl");

    let mut dev_scores: Vec<(usize, f64)> = Vec::new();
    let mut best: Option<(usize, f64)> = None;
    let mut best_values: Option<Vec<Tensor>> = None;
    let mut frozen = FrozenCache::new(FROZEN_CACHE_BYTES);
    let (mut opt, start_step, mut last_loss) = match &opts.resume {
        Some(dir) => {
            let state = read_state(dir)?;
            if state.dataset_sha256 != data.dataset_hash {
                return Err(TrainError::Checkpoint(format!(
                    "{} was made on other training data",
                    dir.display()
                )));
            }
            // Checkpointing changes how a step is computed, not its numbers: a run switched
            // to it (or off it) for memory resumes all the same.
            let saved = TrainConfig {
                checkpointing: config.checkpointing,
                ..state.config.clone()
            };
            if saved != *config {
                return Err(TrainError::Checkpoint(format!(
                    "{} was made with another training config",
                    dir.display()
                )));
            }
            if state.variables != vars.len() || state.micro_batches_per_epoch != per_epoch {
                return Err(TrainError::Checkpoint(format!(
                    "{} does not fit this model and data",
                    dir.display()
                )));
            }
            load_vars(&dir.join("adapter.safetensors"), &vars)?;
            let opt = AdamW::load(&dir.join("optimizer.safetensors"), &vars, params)?;
            if opt.steps() != state.step {
                return Err(TrainError::Checkpoint(format!(
                    "{}: optimizer state is at step {}, the checkpoint at {}",
                    dir.display(),
                    opt.steps(),
                    state.step
                )));
            }
            truncate_metrics(&metrics_path, state.step)?;
            let cache_path = dir.join("frozen.safetensors");
            if cache_path.is_file() {
                frozen = FrozenCache::load(&cache_path, FROZEN_CACHE_BYTES, &device)?;
            }
            dev_scores = state.dev_scores.clone();
            best = state.best;
            let best_path = dir.join("best.safetensors");
            if best.is_some() && best_path.is_file() {
                let values: Vec<Tensor> = vars
                    .iter()
                    .map(|v| v.as_tensor().zeros_like())
                    .collect::<candle_core::Result<_>>()?;
                let holders: Vec<Var> = values
                    .iter()
                    .map(Var::from_tensor)
                    .collect::<candle_core::Result<_>>()?;
                load_vars(&best_path, &holders)?;
                best_values = Some(holders.iter().map(|v| v.as_tensor().detach()).collect());
            }
            (opt, state.step, state.last_loss)
        }
        None => {
            if metrics_path.exists() {
                std::fs::remove_file(&metrics_path)
                    .map_err(|e| TrainError::io(&metrics_path, e))?;
            }
            (AdamW::new(&vars, params)?, 0, None)
        }
    };

    let bar = if opts.progress {
        let bar = ProgressBar::new(total_steps as u64);
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} steps  {msg}  eta {eta}",
        ) {
            bar.set_style(style);
        }
        bar.set_position(start_step as u64);
        bar
    } else {
        ProgressBar::hidden()
    };

    let mut report = TrainReport {
        steps: start_step,
        total_steps,
        losses: Vec::new(),
        eval_losses: Vec::new(),
        dev_scores: Vec::new(),
        kept_step: 0,
        train_seconds: 0.0,
        tokens: 0,
        adapter_dir: None,
        memory,
        checkpointing,
    };
    let run_start = Instant::now();
    for step in start_step..total_steps {
        let t0 = Instant::now();
        let first = step * config.grad_accum;
        let mut last = first + config.grad_accum;
        if let Some(m) = plan.total_micro {
            last = last.min(m);
        }
        let mut batches: Vec<(usize, PrefixBatch)> = Vec::with_capacity(last - first);
        let mut epoch = 0;
        for k in first..last {
            let (e, idx) = plan.micro_batch(k);
            epoch = e;
            let rows: Vec<&TokenizedExample> = idx.iter().map(|&i| &plan.examples[i]).collect();
            batches.push((k, make_prefix_batch(&rows, opts.pad_id, &device)?));
        }
        let answer_total: usize = batches.iter().map(|(_, b)| b.answer_tokens).sum();
        let tokens: usize = batches.iter().map(|(_, b)| b.tokens).sum();
        let computed: usize = batches.iter().map(|(_, b)| b.computed_tokens).sum();
        let mut grads: Vec<Tensor> = vars
            .iter()
            .map(|v| v.as_tensor().zeros_like())
            .collect::<candle_core::Result<_>>()?;
        let rank = dylora_rank(config, step);
        let mut loss_sum = 0f64;
        for (k, b) in &batches {
            let mode = AdapterMode {
                dropout: config.dropout as f32,
                rank,
                seed: crate::forward::mix(config.seed.wrapping_add(*k as u64)),
            };
            loss_sum += loss_and_grads_with(
                model,
                &adapter,
                b,
                mode,
                1.0 / answer_total as f64,
                &mut grads,
                &mut PassOptions {
                    checkpointing,
                    cache: Some(&mut frozen),
                },
            )?;
        }
        let loss = loss_sum / answer_total as f64;
        if !loss.is_finite() {
            return Err(TrainError::Data(format!(
                "the loss became {loss} at step {}",
                step + 1
            )));
        }
        let grad_norm = clip_grad_norm(&mut grads, config.grad_clip)?;
        let lr = lr_at(
            step,
            total_steps,
            config.warmup_steps,
            config.lr,
            config.schedule,
        );
        opt.step(&vars, &grads, lr)?;
        let done = step + 1;
        let secs = t0.elapsed().as_secs_f64();
        let tps = tokens as f64 / secs.max(1e-9);
        append_json(
            &metrics_path,
            &serde_json::json!({
                "step": done, "epoch": epoch, "loss": loss, "lr": lr, "grad_norm": grad_norm,
                "tokens": tokens, "computed_tokens": computed, "answer_tokens": answer_total,
                "tokens_per_s": tps, "rank": rank,
                "elapsed_s": run_start.elapsed().as_secs_f64(),
            }),
        )?;
        report.losses.push(loss);
        report.steps = done;
        report.tokens += tokens;
        last_loss = Some(loss);
        bar.set_message(format!("loss {loss:.4}  {tps:.0} tok/s"));
        bar.inc(1);

        if let Some(ev) = eval.filter(|e| !e.is_empty()) {
            if config.eval_interval > 0 && (done % config.eval_interval == 0 || done == total_steps)
            {
                let l = eval_loss(model, &adapter, ev, config.micro_batch, opts.pad_id)?;
                append_json(
                    &metrics_path,
                    &serde_json::json!({"step": done, "eval_loss": l}),
                )?;
                report.eval_losses.push((done, l));
            }
        }
        let eval_now = config.eval_interval > 0 && done % config.eval_interval == 0;
        if eval_now || done == total_steps {
            if let Some(score) = hooks.dev_score(&adapter, done)? {
                append_json(
                    &metrics_path,
                    &serde_json::json!({"step": done, "dev_ex": score}),
                )?;
                dev_scores.push((done, score));
                // Ties go to the later adapter: it has trained longer (the held-out loss
                // usually agrees), and with a coarse dev set ties are common.
                if best.is_none_or(|(_, b)| score >= b) {
                    best = Some((done, score));
                    best_values = Some(
                        vars.iter()
                            .map(|v| v.as_tensor().copy())
                            .collect::<candle_core::Result<_>>()?,
                    );
                }
                bar.println(format!("step {done}: dev EX {:.1}%", 100.0 * score));
            }
        }
        if config.save_interval > 0 && done % config.save_interval == 0 && done < total_steps {
            let state = CheckpointState {
                step: done,
                total_steps,
                seed: config.seed,
                micro_batches_done: last,
                micro_batches_per_epoch: per_epoch,
                dataset_sha256: data.dataset_hash.clone(),
                variables: vars.len(),
                config: config.clone(),
                last_loss,
                dev_scores: dev_scores.clone(),
                best,
            };
            write_checkpoint(
                &opts.out_dir,
                &state,
                &vars,
                &opt,
                best_values.as_deref(),
                &frozen,
            )?;
        }
        if opts.stop_after == Some(done) && done < total_steps {
            bar.abandon_with_message(format!("stopped after step {done}"));
            return Ok((adapter, report));
        }
    }
    bar.finish();
    report.train_seconds = run_start.elapsed().as_secs_f64();
    report.dev_scores = dev_scores.clone();
    report.kept_step = report.steps;
    if let (Some((step, _)), Some(values)) = (best, &best_values) {
        for (v, t) in vars.iter().zip(values) {
            v.set(t)?;
        }
        report.kept_step = step;
    }

    let adapter_dir = opts.out_dir.join("adapter");
    peft::save_adapter(&adapter.frozen()?, &adapter_dir)?;
    let meta = Meta {
        domain: info.domain.clone(),
        base_model: info.base_model.clone(),
        base_model_sha256: info.base_model_sha256.clone(),
        dataset_sha256: data.dataset_hash.clone(),
        examples: data.examples.len(),
        steps: report.steps,
        final_loss: last_loss,
        config: config.clone(),
        dev_ex: dev_scores,
        kept_step: report.kept_step,
        train_seconds: report.train_seconds,
        tokens_per_s: report.tokens as f64 / report.train_seconds.max(1e-9),
        test_ex: None,
        test_questions: None,
        test_ex_by_database: BTreeMap::new(),
    };
    write_atomic(
        &adapter_dir.join(META_FILE),
        serde_json::to_string_pretty(&meta)?.as_bytes(),
    )?;
    let curves = crate::plot::read_curves(&metrics_path)?;
    crate::plot::write_curves(&curves, &adapter_dir, &name)?;
    report.adapter_dir = Some(adapter_dir);
    Ok((adapter, report))
}

/// The mean answer-token loss of `examples` (no dropout, no gradients). Consecutive examples
/// are batched together, so keep those of one database next to each other.
pub fn eval_loss(
    model: &Model,
    adapter: &LoraAdapter,
    examples: &[TokenizedExample],
    micro_batch: usize,
    pad_id: u32,
) -> Result<f64> {
    let mut sum = 0f64;
    let mut n = 0usize;
    for chunk in examples.chunks(micro_batch.max(1)) {
        let rows: Vec<&TokenizedExample> = chunk.iter().collect();
        let b = make_prefix_batch(&rows, pad_id, model.device())?;
        sum += loss_sum(model, adapter, &b, AdapterMode::eval())?;
        n += b.answer_tokens;
    }
    if n == 0 {
        return Err(TrainError::Data("no evaluation examples".into()));
    }
    Ok(sum / n as f64)
}

fn append_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| TrainError::io(path, e))?;
    writeln!(f, "{value}").map_err(|e| TrainError::io(path, e))
}

/// Drops metric records of steps after `step` (left by an interrupted run being resumed).
fn truncate_metrics(path: &Path, step: usize) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: String = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
                .is_some_and(|s| s as usize <= step)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    write_atomic(path, kept.as_bytes())
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| TrainError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| TrainError::io(path, e))
}

fn write_checkpoint(
    out_dir: &Path,
    state: &CheckpointState,
    vars: &[Var],
    opt: &AdamW,
    best: Option<&[Tensor]>,
    frozen: &FrozenCache,
) -> Result<()> {
    let root = out_dir.join("checkpoints");
    let name = format!("step-{:06}", state.step);
    let tmp = root.join(format!(".{name}.tmp"));
    let dest = root.join(&name);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    let map: HashMap<String, Tensor> = vars
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("var.{i}"), v.as_tensor().detach()))
        .collect();
    candle_core::safetensors::save(&map, tmp.join("adapter.safetensors"))?;
    if let Some(best) = best {
        let map: HashMap<String, Tensor> = best
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("var.{i}"), t.clone()))
            .collect();
        candle_core::safetensors::save(&map, tmp.join("best.safetensors"))?;
    }
    opt.save(&tmp.join("optimizer.safetensors"))?;
    frozen.save(&tmp.join("frozen.safetensors"))?;
    let state_path = tmp.join("state.json");
    std::fs::write(&state_path, serde_json::to_string_pretty(state)?)
        .map_err(|e| TrainError::io(&state_path, e))?;
    if dest.exists() {
        std::fs::remove_dir_all(&dest).map_err(|e| TrainError::io(&dest, e))?;
    }
    std::fs::rename(&tmp, &dest).map_err(|e| TrainError::io(&dest, e))
}

fn read_state(dir: &Path) -> Result<CheckpointState> {
    let path = dir.join("state.json");
    let text = std::fs::read_to_string(&path).map_err(|e| TrainError::io(&path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| TrainError::Checkpoint(format!("{}: {e}", path.display())))
}

fn load_vars(path: &Path, vars: &[Var]) -> Result<()> {
    let bad = |m: String| TrainError::Checkpoint(format!("{}: {m}", path.display()));
    let device = vars
        .first()
        .map(|v| v.device().clone())
        .unwrap_or(candle_core::Device::Cpu);
    let map = candle_core::safetensors::load(path, &device)
        .map_err(|e| bad(format!("unreadable adapter weights: {e}")))?;
    for (i, v) in vars.iter().enumerate() {
        let t = map
            .get(&format!("var.{i}"))
            .ok_or_else(|| bad(format!("var.{i} is missing")))?;
        if t.dims() != v.dims() {
            return Err(bad(format!(
                "var.{i} is {:?}, expected {:?}",
                t.dims(),
                v.dims()
            )));
        }
        v.set(t)?;
    }
    Ok(())
}
