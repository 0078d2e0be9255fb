//! `sqlora-serve`: answers plain-English questions about SQLite databases over HTTP.
//!
//! * [`engine`] — one thread owns the model; continuous batching over rows with different
//!   LoRA adapters, a prefix cache per (database, adapter), resident-adapter cap with LRU
//!   eviction, deadlines, cancellation when a client goes away, a bounded queue.
//! * [`forward`] — the model's layers run over rows that each own their key/value cache, so
//!   rows join, leave and reuse cached prefixes freely.
//! * [`database`] — the served databases: a read-only connection each and the token prefix
//!   every prompt about it shares. Prompts and execution-guided answers (candidates through
//!   the guard, run read-only, the first that executes wins) come from `sqlora-sqlgen`,
//!   exactly as `sqlora ask` uses them.
//! * [`http`] — the axum routes: `/v1/query`, OpenAI-style `/v1/completions` and
//!   `/v1/chat/completions` (with SSE streaming), `/v1/models`, `/v1/adapters`,
//!   `/v1/databases`, `/v1/feedback`, `/v1/sql`, `/healthz`, `/metrics` and the page at `/`.
//! * [`feedback`] — the feedback store: every answer under a `query_id`, users' verdicts and
//!   corrected SQL, durably in a SQLite file; the training pairs `sqlora feedback export`
//!   writes.
//! * [`registry`] — the served databases ([`registry::Registry`]), and adding and removing
//!   them at runtime (`POST /v1/databases`, `DELETE /v1/databases/{name}`) under the
//!   database root ([`ServeConfig::db_root`]).
//!
//! [`App::new`] wires them together; [`App::serve`] runs the server on a listener.

pub mod database;
pub mod engine;
pub mod error;
pub mod feedback;
pub mod forward;
pub mod http;
mod http_feedback;
pub mod metrics;
pub mod registry;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sqlora_model::LoadedModel;
use sqlora_sqlgen::{ExampleIndex, PromptBuilder};

pub use engine::{EngineConfig, EngineHandle};
pub use error::{Result, ServeError};
pub use http::Limits;
pub use metrics::Metrics;

use crate::database::Database;
use crate::http::AppState;

/// Everything [`App::new`] needs besides the model.
#[derive(Debug, Clone, Default)]
pub struct ServeConfig {
    /// Batching, queue, adapter and prefix-cache settings.
    pub engine: EngineConfig,
    /// Request limits and the per-request deadline.
    pub limits: Limits,
    /// The base model's name in `/v1/models` (default: the model file's or folder's name).
    pub model_id: Option<String>,
    /// Indexed training examples (one pool) by database name, for few-shot prompts in
    /// `/v1/query` (e.g. [`ExampleIndex::from_jsonl_files`]; built once by the caller, which
    /// can then report a bad file before the model loads).
    pub examples: BTreeMap<String, Arc<ExampleIndex>>,
    /// Retrieved examples per `/v1/query` prompt when a request does not say (default 0).
    pub examples_k: usize,
    /// The feedback store's SQLite file (created if missing); `None` (the default): no
    /// feedback, answers carry no `query_id`.
    pub feedback_db: Option<PathBuf>,
    /// The folder under which `POST /v1/databases` may serve SQLite files (`None`: adding
    /// and removing databases is off).
    pub db_root: Option<PathBuf>,
}

/// A database to serve: its name in requests and its SQLite file.
#[derive(Debug, Clone)]
pub struct DatabaseSpec {
    /// The name clients use (`database` in `/v1/query`).
    pub name: String,
    /// The SQLite file (opened read-only).
    pub path: PathBuf,
}

/// An adapter to register at start-up: its name and PEFT folder.
#[derive(Debug, Clone)]
pub struct AdapterSpec {
    /// The name clients use (`adapter`, or `model` in OpenAI-style requests).
    pub name: String,
    /// The folder with `adapter_config.json` and `adapter_model.safetensors`.
    pub path: PathBuf,
}

/// Every adapter folder directly under `dir` (a folder with an `adapter_config.json`), named
/// after the folder, sorted by name. A missing `dir` means none.
pub fn discover_adapters(dir: &Path) -> Result<Vec<AdapterSpec>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let entries = std::fs::read_dir(dir)
        .map_err(|e| ServeError::Internal(format!("cannot list {}: {e}", dir.display())))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry
            .map_err(|e| ServeError::Internal(format!("cannot list {}: {e}", dir.display())))?;
        let p = entry.path();
        if p.join("adapter_config.json").is_file() {
            out.push(AdapterSpec {
                name: entry.file_name().to_string_lossy().into_owned(),
                path: p,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// A ready service: engine thread running, databases open.
pub struct App {
    state: Arc<AppState>,
    engine_thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("model_id", &self.state.model_id)
            .field("databases", &self.state.databases.names())
            .finish_non_exhaustive()
    }
}

impl App {
    /// Opens the databases, registers the adapters (refusing a broken one) and starts the
    /// engine thread.
    pub fn new(
        model: LoadedModel,
        databases: Vec<DatabaseSpec>,
        adapters: Vec<AdapterSpec>,
        cfg: ServeConfig,
    ) -> Result<App> {
        let model = Arc::new(model);
        let builder = PromptBuilder::builtin();
        // The vocabulary as bytes, for `/v1/query`'s schema-constrained decoding.
        let constrainer = sqlora_sqlgen::Constrainer::new(&model);
        let mut dbs = BTreeMap::new();
        for d in &databases {
            if dbs.contains_key(&d.name) {
                return Err(ServeError::Internal(format!(
                    "two databases are called '{}'",
                    d.name
                )));
            }
            let mut db = Database::open(&d.name, &d.path, &model, &builder, &constrainer)?;
            if let Some(index) = cfg.examples.get(&d.name) {
                db.examples = Some(index.clone());
            }
            dbs.insert(d.name.clone(), Arc::new(db));
        }
        if let Some(name) = cfg.examples.keys().find(|n| !dbs.contains_key(*n)) {
            return Err(ServeError::Internal(format!(
                "examples for '{name}', which is not a served database (known: {})",
                dbs.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        let databases = registry::Registry::new(dbs, cfg.db_root.as_deref(), constrainer)?;
        let model_id = cfg.model_id.clone().unwrap_or_else(|| {
            model
                .source
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "base".to_string())
        });
        let feedback = match &cfg.feedback_db {
            Some(path) => Some(Arc::new(feedback::FeedbackStore::open(path)?)),
            None => None,
        };
        let metrics = Arc::new(Metrics::new());
        let (engine, thread) = engine::start(
            model,
            adapters.into_iter().map(|a| (a.name, a.path)).collect(),
            cfg.engine.clone(),
            metrics.clone(),
        )?;
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Ok(App {
            state: Arc::new(AppState {
                engine,
                databases,
                builder,
                examples_k: cfg.examples_k,
                limits: cfg.limits,
                model_id,
                metrics,
                created,
                feedback,
            }),
            engine_thread: Some(thread),
        })
    }

    /// The router (for tests or embedding in another server).
    pub fn router(&self) -> axum::Router {
        http::router(self.state.clone())
    }

    /// The engine handle.
    pub fn engine(&self) -> &EngineHandle {
        &self.state.engine
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.state.metrics
    }

    /// The base model's id.
    pub fn model_id(&self) -> &str {
        &self.state.model_id
    }

    /// Serves on `listener` until `shutdown` completes, then stops the engine.
    pub async fn serve(
        mut self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let router = self.router();
        let r = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await;
        self.state.engine.shutdown();
        if let Some(t) = self.engine_thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        r
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.state.engine.shutdown();
    }
}
