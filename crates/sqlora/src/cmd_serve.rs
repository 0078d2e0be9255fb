//! `serve`: the HTTP service (see the `sqlora-serve` crate).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use sqlora_serve::{App, DatabaseSpec, EngineConfig, Limits, ServeConfig};
use sqlora_sqlgen::ExampleIndex;

use crate::cmd_model::{load_model, ModelArg};
use crate::paths;

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: String,
    #[command(flatten)]
    pub model: ModelArg,
    /// Serve every `*.sqlite` file of this folder (and `NAME/NAME.sqlite` fixture folders),
    /// named after the file. Default: the bundled domains.
    #[arg(long)]
    pub db_dir: Option<PathBuf>,
    /// Register every adapter folder found here, named after the folder (missing or empty:
    /// base model only). Default: adapters/<base model name> (e.g.
    /// adapters/smollm2-135m-instruct). An adapter made for another base model is refused.
    #[arg(long)]
    pub adapters_dir: Option<PathBuf>,
    /// Most requests decoded together.
    #[arg(long, default_value_t = 8)]
    pub max_batch: usize,
    /// Most requests waiting for a slot; beyond, 429 with Retry-After.
    #[arg(long, default_value_t = 64)]
    pub queue: usize,
    /// Most adapters resident in memory (least recently used are evicted and reloaded on
    /// demand).
    #[arg(long, default_value_t = 16)]
    pub max_adapters: usize,
    /// Deadline of one request, in seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout_s: u64,
    /// Memory for cached prompt prefixes (per database and adapter), in MiB.
    #[arg(long, default_value_t = 512)]
    pub prefix_cache_mib: usize,
    /// Training examples of a database for few-shot prompts: NAME=FILE.jsonl (question and
    /// sql on every line); repeatable, and files given for one name make one pool. A database
    /// named after a bundled domain gets the domain's pool (human_train.jsonl and train.jsonl)
    /// unless given here.
    #[arg(long, value_name = "NAME=FILE")]
    pub examples: Vec<String>,
    /// Retrieved examples per `/v1/query` prompt when a request does not say (`examples`);
    /// 0: none.
    #[arg(long, value_name = "K", default_value_t = crate::examples::DEFAULT_EXAMPLES_K)]
    pub examples_k: usize,
    /// The feedback store (SQLite, created if missing): every `/v1/query` answer is kept under
    /// its `query_id`, with the verdicts and corrections of `POST /v1/feedback`. Default:
    /// $SQLORA_HOME/feedback.sqlite3.
    #[arg(long, value_name = "FILE", conflicts_with = "no_feedback")]
    pub feedback_db: Option<PathBuf>,
    /// Keep no feedback: answers carry no `query_id` and `/v1/feedback` answers 404.
    #[arg(long)]
    pub no_feedback: bool,
    /// Let clients serve SQLite files under this folder on the fly (`POST /v1/databases
    /// {name, path}`, `DELETE /v1/databases/NAME`); paths leading outside it, by `..` or
    /// links, are refused. Without it those routes are off.
    #[arg(long, value_name = "DIR")]
    pub db_root: Option<PathBuf>,
}

/// The default feedback store: `$SQLORA_HOME/feedback.sqlite3`.
pub fn default_feedback_db() -> PathBuf {
    sqlora_model::fetch::sqlora_home().join("feedback.sqlite3")
}

/// The example pool of each served database, indexed: `--examples NAME=FILE` (repeatable: one
/// pool), else the bundled domain's pool. Every file is read once, here, so a bad one fails
/// before the model loads, naming the file and line.
fn example_pools(
    args: &[String],
    dbs: &[DatabaseSpec],
) -> Result<std::collections::BTreeMap<String, Arc<ExampleIndex>>> {
    let mut out = std::collections::BTreeMap::new();
    for spec in args {
        let Some((name, file)) = spec.split_once('=') else {
            bail!("--examples {spec}: expected NAME=FILE.jsonl");
        };
        if !dbs.iter().any(|d| d.name == name) {
            bail!(
                "--examples {spec}: no served database is called '{name}' (served: {})",
                dbs.iter()
                    .map(|d| d.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        out.entry(name.to_string())
            .or_insert_with(Vec::new)
            .push(PathBuf::from(file));
    }
    for d in dbs {
        if !out.contains_key(&d.name) {
            let pool = crate::examples::domain_examples(&d.name);
            if !pool.is_empty() {
                out.insert(d.name.clone(), pool);
            }
        }
    }
    out.into_iter()
        .map(|(name, files)| Ok((name, crate::examples::load_index(&files)?)))
        .collect()
}

/// The databases of `--db-dir`, or the bundled domains (built on first use).
fn databases(db_dir: Option<&Path>) -> Result<Vec<DatabaseSpec>> {
    let mut out = Vec::new();
    match db_dir {
        Some(dir) => {
            let entries =
                std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))?;
            for entry in entries {
                let p = entry?.path();
                let name = p
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if p.is_file() && p.extension().is_some_and(|e| e == "sqlite") {
                    out.push(DatabaseSpec { name, path: p });
                } else if p.is_dir() {
                    let f = p.join(format!("{name}.sqlite"));
                    if f.is_file() {
                        out.push(DatabaseSpec { name, path: f });
                    }
                }
            }
            if out.is_empty() {
                bail!("no *.sqlite files in {}", dir.display());
            }
        }
        None => {
            let datasets = paths::datasets_dir();
            let domains = sqlora_data::dataset::list_domains(&datasets).with_context(|| {
                format!(
                    "listing the bundled domains in {} (or pass --db-dir)",
                    datasets.display()
                )
            })?;
            for d in domains {
                let path = paths::resolve_db(&d.name)?;
                out.push(DatabaseSpec { name: d.name, path });
            }
            if out.is_empty() {
                bail!(
                    "no bundled domains in {} (pass --db-dir)",
                    datasets.display()
                );
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

pub fn run(args: &ServeArgs) -> Result<ExitCode> {
    // Bind first: a busy port fails at once, before the model loads.
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(&args.addr))
        .with_context(|| format!("binding {}", args.addr))?;
    let local = listener.local_addr()?;
    let dbs = databases(args.db_dir.as_deref())?;
    let examples = if args.examples_k == 0 && args.examples.is_empty() {
        Default::default()
    } else {
        example_pools(&args.examples, &dbs)?
    };
    let model = load_model(&ModelArg {
        model: args.model.model.clone(),
    })?;
    let adapters_dir = args
        .adapters_dir
        .clone()
        .unwrap_or_else(|| crate::paths::adapters_root(&model));
    let adapters = sqlora_serve::discover_adapters(&adapters_dir)?;
    let cfg = ServeConfig {
        engine: EngineConfig {
            max_batch: args.max_batch.max(1),
            queue: args.queue,
            max_adapters: args.max_adapters.max(1),
            prefix_cache_bytes: args.prefix_cache_mib << 20,
        },
        limits: Limits {
            timeout: Duration::from_secs(args.timeout_s.max(1)),
            ..Limits::default()
        },
        model_id: None,
        examples,
        examples_k: args.examples_k,
        feedback_db: (!args.no_feedback)
            .then(|| args.feedback_db.clone().unwrap_or_else(default_feedback_db)),
        db_root: args.db_root.clone(),
    };
    let n_dbs = dbs.len();
    if let Some(f) = &cfg.feedback_db {
        eprintln!("feedback store: {}", f.display());
    }
    let names: Vec<String> = adapters.iter().map(|a| a.name.clone()).collect();
    let app = App::new(model, dbs, adapters, cfg).context("starting the service")?;
    eprintln!(
        "sqlora serve: model {}, {n_dbs} databases, adapters [{}]",
        app.model_id(),
        names.join(", ")
    );
    if let Some(root) = &args.db_root {
        eprintln!(
            "sqlora serve: POST /v1/databases serves SQLite files under {}",
            root.display()
        );
    }
    // Scripts may read this line for the address.
    println!("listening on http://{local}");
    let _ = std::io::Write::flush(&mut std::io::stdout());
    runtime
        .block_on(app.serve(listener, shutdown_signal()))
        .context("serving")?;
    Ok(ExitCode::SUCCESS)
}

/// Completes on Ctrl-C or SIGTERM: the server stops accepting, finishes the requests it holds,
/// then the engine stops.
async fn shutdown_signal() {
    let term = async {
        #[cfg(unix)]
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
            return;
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
