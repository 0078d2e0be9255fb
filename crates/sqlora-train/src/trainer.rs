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
//! * `checkpoints/step-NNNNNN/`: `adapter.safetensors` (the variables), `optimizer.safetensors`
//!   and `state.json`; written to a temporary folder first and renamed, so a checkpoint is
//!   either complete or absent.
//! * `adapter/`: the final adapter in PEFT format plus `sqlora_meta.json`.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Tensor, Var};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use sqlora_model::llama::Model;
use sqlora_model::lora::LoraAdapter;
use sqlora_model::peft;

use crate::batch::{epoch_plan, make_batch, TokenizedExample};
use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::loss::answer_loss_sum;
use crate::optim::{clip_grad_norm, lr_at, AdamW, AdamWParams};

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
    /// Stop after this optimizer step without saving the final adapter (an interruption).
    pub stop_after: Option<usize>,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// The padding token id.
    pub pad_id: u32,
}

impl TrainOptions {
    /// Defaults: no resume, no early stop, no progress bar, padding id 0.
    pub fn new(out_dir: impl Into<PathBuf>) -> TrainOptions {
        TrainOptions {
            out_dir: out_dir.into(),
            resume: None,
            stop_after: None,
            progress: false,
            pad_id: 0,
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
    /// The PEFT folder of the final adapter (`None` when stopped early).
    pub adapter_dir: Option<PathBuf>,
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
        let plan = self
            .cache
            .entry(epoch)
            .or_insert_with(|| epoch_plan(&self.lengths, self.micro_batch, self.seed, epoch));
        (epoch, plan[k % self.per_epoch].clone())
    }
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
    let mut adapter = LoraAdapter::init(name, model, config.lora_config()?, config.seed)?;
    adapter.base_model = info.base_model.clone();
    let vars: Vec<Var> = adapter.vars().to_vec();
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
        micro_batch: config.micro_batch,
        seed: config.seed,
        per_epoch,
        total_micro,
        cache: HashMap::new(),
        examples: &data.examples,
    };

    std::fs::create_dir_all(&opts.out_dir).map_err(|e| TrainError::io(&opts.out_dir, e))?;
    let metrics_path = opts.out_dir.join("metrics.jsonl");

    let (mut opt, start_step, mut last_loss) = match &opts.resume {
        Some(dir) => {
            let state = read_state(dir)?;
            if state.dataset_sha256 != data.dataset_hash {
                return Err(TrainError::Checkpoint(format!(
                    "{} was made on other training data",
                    dir.display()
                )));
            }
            if state.config != *config {
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
        if let Ok(style) =
            ProgressStyle::with_template("{bar:30} {pos}/{len} steps  {msg}  eta {eta}")
        {
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
        adapter_dir: None,
    };
    let run_start = Instant::now();
    for step in start_step..total_steps {
        let t0 = Instant::now();
        let first = step * config.grad_accum;
        let mut last = first + config.grad_accum;
        if let Some(m) = plan.total_micro {
            last = last.min(m);
        }
        let mut batches = Vec::with_capacity(last - first);
        let mut epoch = 0;
        for k in first..last {
            let (e, idx) = plan.micro_batch(k);
            epoch = e;
            let rows: Vec<&TokenizedExample> = idx.iter().map(|&i| &plan.examples[i]).collect();
            batches.push(make_batch(&rows, opts.pad_id, &device)?);
        }
        let answer_total: usize = batches.iter().map(|b| b.answer_tokens).sum();
        let tokens: usize = batches.iter().map(|b| b.tokens).sum();
        let mut grads: Vec<Tensor> = vars
            .iter()
            .map(|v| v.as_tensor().zeros_like())
            .collect::<candle_core::Result<_>>()?;
        let mut loss_sum = 0f64;
        for b in &batches {
            let sum = answer_loss_sum(model, &adapter, b, true)?;
            let scaled = (&sum / answer_total as f64)?;
            let store = scaled.backward()?;
            for (g, v) in grads.iter_mut().zip(&vars) {
                if let Some(d) = store.get(v.as_tensor()) {
                    *g = (&*g + d)?;
                }
            }
            loss_sum += sum.to_scalar::<f32>()? as f64;
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
                "tokens": tokens, "answer_tokens": answer_total, "tokens_per_s": tps,
                "elapsed_s": run_start.elapsed().as_secs_f64(),
            }),
        )?;
        report.losses.push(loss);
        report.steps = done;
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
            };
            write_checkpoint(&opts.out_dir, &state, &vars, &opt)?;
        }
        if opts.stop_after == Some(done) && done < total_steps {
            bar.abandon_with_message(format!("stopped after step {done}"));
            return Ok((adapter, report));
        }
    }
    bar.finish();

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
    };
    write_atomic(
        &adapter_dir.join(META_FILE),
        serde_json::to_string_pretty(&meta)?.as_bytes(),
    )?;
    report.adapter_dir = Some(adapter_dir);
    Ok((adapter, report))
}

/// The mean answer-token loss of `examples` (no dropout, no gradients).
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
        let b = make_batch(&rows, pad_id, model.device())?;
        sum += answer_loss_sum(model, adapter, &b, false)?
            .detach()
            .to_scalar::<f32>()? as f64;
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
    opt.save(&tmp.join("optimizer.safetensors"))?;
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
