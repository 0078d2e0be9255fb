//! The channel into the engine thread: [`start`] spawns the thread, an [`EngineHandle`]
//! submits requests and adapter changes to it, [`wait`] awaits a request's result.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use sqlora_model::lora::LoraAdapter;
use sqlora_model::LoadedModel;
use tokio::sync::oneshot;

use super::scheduler::Engine;
use super::{AdapterInfo, EngineConfig, GenOutput, GenRequest, Shared};
use crate::error::{Result, ServeError};
use crate::metrics::Metrics;

/// What the engine thread is asked to do.
pub(super) enum Command {
    /// Run a generation.
    Generate(GenRequest),
    /// Register (or replace) an adapter already checked against the model.
    AddAdapter {
        name: String,
        path: PathBuf,
        adapter: Box<LoraAdapter>,
        reply: oneshot::Sender<Result<AdapterInfo>>,
    },
    /// Unload an adapter.
    RemoveAdapter {
        name: String,
        reply: oneshot::Sender<Result<()>>,
    },
    /// Finish after the current step.
    Shutdown,
}

/// The sending side of the engine; cheap to clone.
#[derive(Clone)]
pub struct EngineHandle {
    tx: mpsc::Sender<Command>,
    /// State shared with the engine.
    pub shared: Arc<Shared>,
    queue: usize,
    max_adapters: usize,
    model: Arc<LoadedModel>,
}

impl std::fmt::Debug for EngineHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineHandle")
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

impl EngineHandle {
    /// Queues a request, or refuses with [`ServeError::QueueFull`] when `queue` requests are
    /// already waiting.
    pub fn submit(&self, req: GenRequest) -> Result<()> {
        let before = self.shared.queued.fetch_add(1, Ordering::SeqCst);
        if before >= self.queue {
            self.shared.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(ServeError::QueueFull(before));
        }
        self.shared
            .metrics
            .set("sqlora_queue_depth", &[], (before + 1) as f64);
        self.tx.send(Command::Generate(req)).map_err(|_| {
            self.shared.queued.fetch_sub(1, Ordering::SeqCst);
            ServeError::EngineGone
        })
    }

    /// The cap on resident adapters.
    pub fn max_adapters(&self) -> usize {
        self.max_adapters
    }

    /// The model the engine runs.
    pub fn model(&self) -> &Arc<LoadedModel> {
        &self.model
    }

    /// Loads the PEFT adapter folder `path` under `name` (checked against the model on the
    /// caller's thread, so the batch keeps running), then makes it resident.
    pub async fn add_adapter(&self, name: String, path: PathBuf) -> Result<AdapterInfo> {
        let model = self.model.clone();
        let p = path.clone();
        let adapter = tokio::task::spawn_blocking(move || load_adapter_for(&model, &p))
            .await
            .map_err(|e| ServeError::Internal(format!("adapter loader failed: {e}")))??;
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::AddAdapter {
                name,
                path,
                adapter: Box::new(adapter),
                reply,
            })
            .map_err(|_| ServeError::EngineGone)?;
        rx.await.map_err(|_| ServeError::EngineGone)?
    }

    /// Unloads the adapter `name` (refused while running requests use it).
    pub async fn remove_adapter(&self, name: String) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::RemoveAdapter { name, reply })
            .map_err(|_| ServeError::EngineGone)?;
        rx.await.map_err(|_| ServeError::EngineGone)?
    }

    /// Asks the engine thread to finish (after the current step).
    pub fn shutdown(&self) {
        let _ = self.tx.send(Command::Shutdown);
    }

    /// Test hook: the next `n` forward steps of the batch (prefix prefills included; beam
    /// search is not affected) fail as a tensor operation would, so tests can watch a failed
    /// step reach clients as a 5xx and the engine go on serving.
    #[doc(hidden)]
    pub fn fail_next_steps(&self, n: usize) {
        self.shared.fail_steps.store(n, Ordering::SeqCst);
    }
}

/// Loads the PEFT adapter folder `path` for `model`: refused (422) when its `sqlora_meta.json`
/// or PEFT config names another base model than the one served, or when it does not fit.
fn load_adapter_for(model: &LoadedModel, path: &std::path::Path) -> Result<LoraAdapter> {
    let context = || path.display().to_string();
    let id = sqlora_model::identity::ModelIdentity::of(model);
    sqlora_model::identity::check_adapter_base(path, &id).map_err(|source| {
        ServeError::AdapterBase {
            context: context(),
            source,
        }
    })?;
    sqlora_model::peft::load_adapter(path, &model.model)
        .map_err(|e| ServeError::adapter_refused(context(), e))
}

/// Starts the engine thread for `model` with the given adapters (name, folder) registered;
/// as many as `cfg.max_adapters` are made resident at once.
pub fn start(
    model: Arc<LoadedModel>,
    adapters: Vec<(String, PathBuf)>,
    cfg: EngineConfig,
    metrics: Arc<Metrics>,
) -> Result<(EngineHandle, std::thread::JoinHandle<()>)> {
    let shared = Arc::new(Shared::new(metrics));
    let mut engine = Engine::new(model.clone(), cfg.clone(), shared.clone())?;
    for (name, path) in adapters {
        let adapter = load_adapter_for(&model, &path)?;
        engine.add_adapter(name, Some(path), adapter)?;
    }
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("sqlora-engine".to_string())
        .spawn(move || engine.run(rx))
        .map_err(|e| ServeError::Internal(format!("cannot start the engine thread: {e}")))?;
    Ok((
        EngineHandle {
            tx,
            shared,
            queue: cfg.queue,
            max_adapters: cfg.max_adapters,
            model,
        },
        thread,
    ))
}

/// Waits for a submitted request's result.
pub async fn wait(
    rx: oneshot::Receiver<Result<GenOutput>>,
    timeout: Duration,
) -> Result<GenOutput> {
    match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Err(ServeError::EngineGone),
        Err(_) => Err(ServeError::Deadline(timeout.as_millis() as u64)),
    }
}
