//! The generation engine: one thread owns the model, the resident adapters and the prefix
//! cache; requests arrive over a channel.
//!
//! Continuous batching: between two decode steps the engine drops rows that finished, ran past
//! their deadline or whose client went away, and admits waiting requests up to `max_batch`.
//! A joining row first takes its prompt prefix from the prefix cache (keyed by prefix name and
//! adapter; computed once on a miss), then prefills only the rest of its prompt together with
//! the other joining rows, and from then on decodes one token per step with everyone else.
//! Rows of one step use different adapters through the model runtime's gathered multi-adapter
//! forward; the base weights exist once. A request for several candidates runs beam search
//! ([`sqlora_model::generate::n_best_with_adapters`]) between two steps.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use sqlora_model::generate::{argmax, find_stop, n_best_with_adapters, GenerateParams, TokenInfo};
use sqlora_model::lora::{AdapterBatch, AdapterId, AdapterSet, LoraAdapter};
use sqlora_model::LoadedModel;
use tokio::sync::oneshot;

use crate::error::{Result, ServeError};
use crate::forward::{step, Feed, Rope, RowKv};
use crate::metrics::{Metrics, BATCH_BUCKETS};

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Most rows decoded together.
    pub max_batch: usize,
    /// Most requests waiting for a slot; beyond, [`EngineHandle::submit`] refuses.
    pub queue: usize,
    /// Most adapters resident at once (least recently used ones are evicted, and reloaded
    /// from disk on demand).
    pub max_adapters: usize,
    /// Bytes of key/value cache the prefix cache may hold.
    pub prefix_cache_bytes: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_batch: 8,
            queue: 64,
            max_adapters: 16,
            prefix_cache_bytes: 512 << 20,
        }
    }
}

/// A prompt prefix shared by many requests (e.g. the system message and schema of one
/// database): its key/value cache is computed once per adapter and reused.
#[derive(Debug, Clone)]
pub struct PrefixSpec {
    /// A name for the prefix (the database name).
    pub name: String,
    /// How many leading prompt tokens it covers.
    pub len: usize,
}

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Finish {
    /// An end-of-sequence token.
    Stop,
    /// `max_new_tokens` reached.
    Length,
}

/// One generation request.
pub struct GenRequest {
    /// Prompt token ids.
    pub prompt: Vec<u32>,
    /// The shared prefix of `prompt`, when it has one worth caching.
    pub prefix: Option<PrefixSpec>,
    /// Adapter name, or `None` for the base model.
    pub adapter: Option<String>,
    /// Most tokens generated.
    pub max_new_tokens: usize,
    /// Candidates wanted: 1 = greedy in the continuous batch; more = beam search.
    pub candidates: usize,
    /// Stop strings (the text is cut before the first).
    pub stop: Vec<String>,
    /// When the request gives up.
    pub deadline: Instant,
    /// Receives text deltas as they are generated (greedy requests only).
    pub stream: Option<tokio::sync::mpsc::UnboundedSender<String>>,
    /// Receives the result.
    pub reply: oneshot::Sender<Result<GenOutput>>,
}

/// The result of a generation.
#[derive(Debug, Clone, Serialize)]
pub struct GenOutput {
    /// Generated texts, best first (one unless candidates were asked for).
    pub texts: Vec<String>,
    /// Why the (first) text ended.
    pub finish: Finish,
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Tokens generated for the first text.
    pub completion_tokens: usize,
    /// Prompt tokens taken from the prefix cache.
    pub cached_tokens: usize,
    /// Time spent waiting for a batch slot.
    pub queue_ms: f64,
    /// Time from admission to the result.
    pub generate_ms: f64,
}

/// An adapter known to the engine, as listed by `GET /v1/adapters`.
#[derive(Debug, Clone, Serialize)]
pub struct AdapterInfo {
    /// Its name (the `model` of OpenAI-style requests).
    pub name: String,
    /// The folder it was loaded from.
    pub path: Option<String>,
    /// Default rank.
    pub rank: usize,
    /// Default alpha.
    pub alpha: f64,
    /// Adapted projection kinds.
    pub targets: Vec<String>,
    /// Trainable parameters.
    pub parameters: usize,
    /// Bytes held in memory while resident (0 when only on disk).
    pub resident_bytes: u64,
    /// True when in memory.
    pub resident: bool,
}

/// State shared between the engine thread and request handlers.
#[derive(Debug)]
pub struct Shared {
    /// Requests waiting for a batch slot.
    pub queued: AtomicUsize,
    /// Rows in the running batch.
    pub running: AtomicUsize,
    /// A snapshot of the known adapters.
    pub adapters: Mutex<BTreeMap<String, AdapterInfo>>,
    /// The metrics registry.
    pub metrics: Arc<Metrics>,
}

impl Shared {
    /// The adapters known now.
    pub fn adapter_list(&self) -> Vec<AdapterInfo> {
        self.adapters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// True when an adapter of that name is known.
    pub fn has_adapter(&self, name: &str) -> bool {
        self.adapters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(name)
    }
}

enum Command {
    Generate(GenRequest),
    AddAdapter {
        name: String,
        path: PathBuf,
        adapter: Box<LoraAdapter>,
        reply: oneshot::Sender<Result<AdapterInfo>>,
    },
    RemoveAdapter {
        name: String,
        reply: oneshot::Sender<Result<()>>,
    },
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
        let adapter =
            tokio::task::spawn_blocking(move || sqlora_model::peft::load_adapter(&p, &model.model))
                .await
                .map_err(|e| ServeError::Internal(format!("adapter loader failed: {e}")))?
                .map_err(|e| ServeError::AdapterRefused(e.to_string()))?;
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
}

/// An adapter the engine can use: on disk, maybe resident.
struct AdapterSlot {
    path: Option<PathBuf>,
    id: Option<AdapterId>,
    last_used: u64,
    info: AdapterInfo,
}

struct PrefixEntry {
    tokens: Vec<u32>,
    kv: RowKv,
    last_used: u64,
}

/// A running row.
struct Row {
    req: GenRequest,
    adapter_id: Option<AdapterId>,
    kv: RowKv,
    /// Tokens to feed at the next step (the prompt suffix on joining, then the last token).
    feed: Vec<u32>,
    tokens: Vec<u32>,
    sent_chars: usize,
    prompt_tokens: usize,
    cached_tokens: usize,
    queue_ms: f64,
    admitted: Instant,
}

/// The engine thread's state.
struct Engine {
    model: Arc<LoadedModel>,
    rope: Rope,
    cfg: EngineConfig,
    shared: Arc<Shared>,
    set: AdapterSet,
    adapters: HashMap<String, AdapterSlot>,
    prefixes: HashMap<(String, String), PrefixEntry>,
    prefix_bytes: usize,
    pending: VecDeque<(GenRequest, Instant)>,
    rows: Vec<Row>,
    clock: u64,
    eos: Vec<u32>,
}

/// Starts the engine thread for `model` with the given adapters (name, folder) registered;
/// as many as `cfg.max_adapters` are made resident at once.
pub fn start(
    model: Arc<LoadedModel>,
    adapters: Vec<(String, PathBuf)>,
    cfg: EngineConfig,
    metrics: Arc<Metrics>,
) -> Result<(EngineHandle, std::thread::JoinHandle<()>)> {
    let shared = Arc::new(Shared {
        queued: AtomicUsize::new(0),
        running: AtomicUsize::new(0),
        adapters: Mutex::new(BTreeMap::new()),
        metrics,
    });
    let rope = Rope::new(&model.config, &model.device)?;
    let mut engine = Engine {
        set: AdapterSet::new(&model.device),
        eos: model.tokenizer.eos_token_ids(),
        model: model.clone(),
        rope,
        cfg: cfg.clone(),
        shared: shared.clone(),
        adapters: HashMap::new(),
        prefixes: HashMap::new(),
        prefix_bytes: 0,
        pending: VecDeque::new(),
        rows: Vec::new(),
        clock: 0,
    };
    for (name, path) in adapters {
        let adapter = sqlora_model::peft::load_adapter(&path, &model.model)
            .map_err(|e| ServeError::AdapterRefused(format!("{}: {e}", path.display())))?;
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

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// The longest prefix of `text` that cannot be the start of a stop string still being
/// written (so a streamed delta never shows part of a stop string).
fn safe_len(text: &str, stops: &[String]) -> usize {
    let mut cut = text.len();
    for s in stops.iter().filter(|s| !s.is_empty()) {
        for (i, _) in text.char_indices() {
            if i >= cut {
                break;
            }
            if s.starts_with(&text[i..]) {
                cut = i;
                break;
            }
        }
    }
    // A trailing replacement character may be half of a multi-byte character.
    while text[..cut].ends_with('\u{FFFD}') {
        cut -= '\u{FFFD}'.len_utf8();
    }
    cut
}

impl Engine {
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    fn publish_adapters(&self) {
        let snapshot: BTreeMap<String, AdapterInfo> = self
            .adapters
            .iter()
            .map(|(k, s)| (k.clone(), s.info.clone()))
            .collect();
        *self
            .shared
            .adapters
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = snapshot;
        self.metrics()
            .set("sqlora_resident_adapters", &[], self.set.len() as f64);
    }

    fn in_use(&self, id: AdapterId) -> bool {
        self.rows.iter().any(|r| r.adapter_id == Some(id))
    }

    /// Evicts least-recently-used resident adapters not used by a running row until there is
    /// room for one more.
    fn make_room(&mut self) -> Result<()> {
        while self.set.len() >= self.cfg.max_adapters.max(1) {
            let victim = self
                .adapters
                .iter()
                .filter(|(_, s)| s.id.is_some_and(|id| !self.in_use(id)) && s.path.is_some())
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| k.clone());
            let Some(name) = victim else {
                return Err(ServeError::Conflict(format!(
                    "all {} adapter slots are used by running requests; retry later",
                    self.cfg.max_adapters
                )));
            };
            self.evict(&name)?;
            self.metrics().inc("sqlora_adapter_evictions_total", &[]);
        }
        Ok(())
    }

    fn evict(&mut self, name: &str) -> Result<()> {
        self.set.remove(name)?;
        if let Some(s) = self.adapters.get_mut(name) {
            s.id = None;
            s.info.resident = false;
            s.info.resident_bytes = 0;
        }
        self.drop_prefixes(name);
        Ok(())
    }

    fn drop_prefixes(&mut self, adapter: &str) {
        let stale: Vec<(String, String)> = self
            .prefixes
            .keys()
            .filter(|(_, a)| a == adapter)
            .cloned()
            .collect();
        for k in stale {
            if let Some(e) = self.prefixes.remove(&k) {
                self.prefix_bytes -= e.kv.bytes();
            }
        }
        self.metrics()
            .set("sqlora_prefix_cache_bytes", &[], self.prefix_bytes as f64);
    }

    fn add_adapter(
        &mut self,
        name: String,
        path: Option<PathBuf>,
        mut adapter: LoraAdapter,
    ) -> Result<AdapterInfo> {
        adapter.name = name.clone();
        let summary = adapter.summary();
        let replacing = self.set.id(&name);
        if let Some(id) = replacing {
            if self.in_use(id) {
                return Err(ServeError::Conflict(format!(
                    "adapter '{name}' is in use by running requests; retry later"
                )));
            }
        } else if let Err(e) = self.make_room() {
            // Every slot is busy: register it on disk; it is loaded on first use.
            if path.is_none() {
                return Err(e);
            }
        }
        let id = if replacing.is_some() || self.set.len() < self.cfg.max_adapters.max(1) {
            Some(self.set.insert(adapter)?)
        } else {
            None
        };
        self.drop_prefixes(&name);
        let info = AdapterInfo {
            name: name.clone(),
            path: path.as_ref().map(|p| p.display().to_string()),
            rank: summary.rank,
            alpha: summary.alpha,
            targets: summary.targets.clone(),
            parameters: summary.parameters,
            resident_bytes: if id.is_some() {
                summary.tensor_bytes
            } else {
                0
            },
            resident: id.is_some(),
        };
        let t = self.tick();
        self.adapters.insert(
            name,
            AdapterSlot {
                path,
                id,
                last_used: t,
                info: info.clone(),
            },
        );
        self.publish_adapters();
        Ok(info)
    }

    fn remove_adapter(&mut self, name: &str) -> Result<()> {
        let Some(slot) = self.adapters.get(name) else {
            return Err(ServeError::not_found(
                "unknown_adapter",
                format!("no adapter named '{name}'"),
            ));
        };
        if slot.id.is_some_and(|id| self.in_use(id)) {
            return Err(ServeError::Conflict(format!(
                "adapter '{name}' is in use by running requests; retry later"
            )));
        }
        if slot.id.is_some() {
            self.set.remove(name)?;
        }
        self.adapters.remove(name);
        self.drop_prefixes(name);
        self.publish_adapters();
        Ok(())
    }

    /// The slot of adapter `name`, loading it from disk when it was evicted.
    fn resident(&mut self, name: &str) -> Result<AdapterId> {
        let t = self.tick();
        let Some(slot) = self.adapters.get_mut(name) else {
            return Err(ServeError::not_found(
                "unknown_adapter",
                format!("no adapter named '{name}'"),
            ));
        };
        slot.last_used = t;
        if let Some(id) = slot.id {
            return Ok(id);
        }
        let path = slot.path.clone().ok_or_else(|| {
            ServeError::Internal(format!("adapter '{name}' was evicted and has no folder"))
        })?;
        let adapter = sqlora_model::peft::load_adapter(&path, &self.model.model)
            .map_err(|e| ServeError::AdapterRefused(format!("reloading '{name}': {e}")))?;
        self.add_adapter(name.to_string(), Some(path), adapter)?;
        self.adapters
            .get(name)
            .and_then(|s| s.id)
            .ok_or_else(|| ServeError::Internal(format!("adapter '{name}' did not load")))
    }

    fn handle(&mut self, cmd: Command) -> bool {
        match cmd {
            Command::Generate(req) => self.pending.push_back((req, Instant::now())),
            Command::AddAdapter {
                name,
                path,
                adapter,
                reply,
            } => {
                let r = self.add_adapter(name, Some(path), *adapter);
                let _ = reply.send(r);
            }
            Command::RemoveAdapter { name, reply } => {
                let r = self.remove_adapter(&name);
                let _ = reply.send(r);
            }
            Command::Shutdown => return false,
        }
        true
    }

    fn run(mut self, rx: mpsc::Receiver<Command>) {
        loop {
            if self.rows.is_empty() && self.pending.is_empty() {
                match rx.recv() {
                    Ok(c) => {
                        if !self.handle(c) {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
            let mut stop = false;
            while let Ok(c) = rx.try_recv() {
                if !self.handle(c) {
                    stop = true;
                }
            }
            if stop {
                break;
            }
            // A bug in one step must not leave every later request hanging: fail the rows in
            // flight and keep serving.
            let stepped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.drop_abandoned();
                self.admit();
                self.decode();
            }));
            if stepped.is_err() {
                for row in self.rows.drain(..) {
                    let _ = row.req.reply.send(Err(ServeError::Internal(
                        "the engine failed while running this request".to_string(),
                    )));
                }
            }
            self.shared.running.store(self.rows.len(), Ordering::SeqCst);
            let m = self.metrics();
            m.set(
                "sqlora_queue_depth",
                &[],
                self.shared.queued.load(Ordering::SeqCst) as f64,
            );
            m.set("sqlora_running_requests", &[], self.rows.len() as f64);
        }
        for (req, _) in self.pending.drain(..) {
            let _ = req.reply.send(Err(ServeError::EngineGone));
        }
        for row in self.rows.drain(..) {
            let _ = row.req.reply.send(Err(ServeError::EngineGone));
        }
    }

    /// Drops waiting and running requests whose client went away or whose deadline passed.
    fn drop_abandoned(&mut self) {
        let now = Instant::now();
        let mut kept = VecDeque::with_capacity(self.pending.len());
        for (req, at) in self.pending.drain(..) {
            if req.reply.is_closed() {
                self.shared.queued.fetch_sub(1, Ordering::SeqCst);
                self.shared
                    .metrics
                    .inc("sqlora_rejected_total", &[("reason", "disconnected")]);
            } else if now >= req.deadline {
                self.shared.queued.fetch_sub(1, Ordering::SeqCst);
                self.shared
                    .metrics
                    .inc("sqlora_rejected_total", &[("reason", "deadline")]);
                let ms = req.deadline.saturating_duration_since(at).as_millis() as u64;
                let _ = req.reply.send(Err(ServeError::Deadline(ms)));
            } else {
                kept.push_back((req, at));
            }
        }
        self.pending = kept;
        let mut i = 0;
        while i < self.rows.len() {
            let r = &self.rows[i];
            if r.req.reply.is_closed() {
                self.rows.swap_remove(i);
                self.shared
                    .metrics
                    .inc("sqlora_rejected_total", &[("reason", "disconnected")]);
            } else if now >= r.req.deadline {
                let row = self.rows.swap_remove(i);
                self.shared
                    .metrics
                    .inc("sqlora_rejected_total", &[("reason", "deadline")]);
                let ms = row
                    .req
                    .deadline
                    .saturating_duration_since(row.admitted)
                    .as_millis() as u64;
                let _ = row.req.reply.send(Err(ServeError::Deadline(ms)));
            } else {
                i += 1;
            }
        }
    }

    fn admit(&mut self) {
        while self.rows.len() < self.cfg.max_batch.max(1) {
            let Some((req, at)) = self.pending.pop_front() else {
                break;
            };
            self.shared.queued.fetch_sub(1, Ordering::SeqCst);
            let queue_ms = ms_since(at);
            let label = req.adapter.clone().unwrap_or_else(|| "base".to_string());
            self.shared
                .metrics
                .inc("sqlora_requests_by_adapter_total", &[("adapter", &label)]);
            if req.candidates > 1 {
                let out = self.beam(&req, queue_ms);
                let _ = req.reply.send(out);
                continue;
            }
            match self.prepare(req, queue_ms) {
                Ok(row) => self.rows.push(row),
                Err(failed) => {
                    let (req, e) = *failed;
                    let _ = req.reply.send(Err(e));
                }
            }
        }
    }

    fn check_request(&self, req: &GenRequest) -> Result<()> {
        if req.prompt.is_empty() {
            return Err(ServeError::bad("empty_prompt", "the prompt is empty"));
        }
        let max = self.rope.max_positions();
        if req.prompt.len() + req.max_new_tokens > max {
            return Err(ServeError::bad(
                "context_overflow",
                format!(
                    "a prompt of {} tokens plus {} new tokens exceeds the model's context of {max}",
                    req.prompt.len(),
                    req.max_new_tokens
                ),
            ));
        }
        Ok(())
    }

    /// Builds a row: adapter resident, prefix from the cache (computed on a miss), the rest of
    /// the prompt left to feed.
    fn prepare(
        &mut self,
        req: GenRequest,
        queue_ms: f64,
    ) -> std::result::Result<Row, Box<(GenRequest, ServeError)>> {
        let admitted = Instant::now();
        if let Err(e) = self.check_request(&req) {
            return Err(Box::new((req, e)));
        }
        let adapter_id = match &req.adapter {
            Some(name) => match self.resident(name) {
                Ok(id) => Some(id),
                Err(e) => return Err(Box::new((req, e))),
            },
            None => None,
        };
        let capacity = req.prompt.len() + req.max_new_tokens;
        // At least one prompt token is fed at join (it yields the first logits).
        let plen = req
            .prefix
            .as_ref()
            .map(|p| p.len.min(req.prompt.len() - 1))
            .unwrap_or(0);
        let mut cached_tokens = 0;
        let kv = if plen > 0 {
            match self.prefix_kv(&req, adapter_id, plen, capacity) {
                Ok((kv, hit)) => {
                    if hit {
                        cached_tokens = plen;
                    }
                    kv
                }
                Err(e) => return Err(Box::new((req, e))),
            }
        } else {
            match RowKv::new(&self.model.config, capacity, &self.model.device) {
                Ok(kv) => kv,
                Err(e) => return Err(Box::new((req, e))),
            }
        };
        let feed = req.prompt[kv.len()..].to_vec();
        let m = self.metrics();
        m.add(
            "sqlora_prompt_tokens_total",
            &[("source", "cached")],
            cached_tokens as f64,
        );
        m.add(
            "sqlora_prompt_tokens_total",
            &[("source", "computed")],
            (req.prompt.len() - cached_tokens) as f64,
        );
        Ok(Row {
            prompt_tokens: req.prompt.len(),
            req,
            adapter_id,
            kv,
            feed,
            tokens: Vec::new(),
            sent_chars: 0,
            cached_tokens,
            queue_ms,
            admitted,
        })
    }

    /// The row cache holding the first `plen` prompt tokens: a copy of the cached prefix, or
    /// computed now (and cached). The flag says whether it was a hit.
    fn prefix_kv(
        &mut self,
        req: &GenRequest,
        adapter_id: Option<AdapterId>,
        plen: usize,
        capacity: usize,
    ) -> Result<(RowKv, bool)> {
        let name = req
            .prefix
            .as_ref()
            .map(|p| p.name.clone())
            .unwrap_or_default();
        let key = (name, req.adapter.clone().unwrap_or_default());
        let tokens = &req.prompt[..plen];
        let t = self.tick();
        if let Some(e) = self.prefixes.get_mut(&key) {
            if e.tokens == tokens {
                e.last_used = t;
                self.shared
                    .metrics
                    .inc("sqlora_prefix_cache_total", &[("result", "hit")]);
                return Ok((e.kv.fork(capacity)?, true));
            }
        }
        self.shared
            .metrics
            .inc("sqlora_prefix_cache_total", &[("result", "miss")]);
        let mut kv = RowKv::new(&self.model.config, capacity, &self.model.device)?;
        {
            let batch = self.set.batch(&[adapter_id])?;
            let mut feeds = [Feed {
                kv: &mut kv,
                tokens,
            }];
            step(&self.model.model, &self.rope, &mut feeds, Some(&batch))?;
        }
        let stored = kv.compact()?;
        let bytes = stored.bytes();
        if bytes <= self.cfg.prefix_cache_bytes {
            if let Some(old) = self.prefixes.remove(&key) {
                self.prefix_bytes -= old.kv.bytes();
            }
            while self.prefix_bytes + bytes > self.cfg.prefix_cache_bytes {
                let Some(victim) = self
                    .prefixes
                    .iter()
                    .min_by_key(|(_, e)| e.last_used)
                    .map(|(k, _)| k.clone())
                else {
                    break;
                };
                if let Some(e) = self.prefixes.remove(&victim) {
                    self.prefix_bytes -= e.kv.bytes();
                }
            }
            self.prefix_bytes += bytes;
            self.prefixes.insert(
                key,
                PrefixEntry {
                    tokens: tokens.to_vec(),
                    kv: stored,
                    last_used: t,
                },
            );
        }
        self.metrics()
            .set("sqlora_prefix_cache_bytes", &[], self.prefix_bytes as f64);
        Ok((kv, false))
    }

    /// Beam search for a request that wants several candidates.
    fn beam(&mut self, req: &GenRequest, queue_ms: f64) -> Result<GenOutput> {
        let t0 = Instant::now();
        self.check_request(req)?;
        let id = match &req.adapter {
            Some(name) => Some(self.resident(name)?),
            None => None,
        };
        let batch = id.and_then(|id| self.set.get(id)).map(AdapterBatch::single);
        let tok = &self.model.tokenizer;
        let decode = |ids: &[u32]| tok.decode(ids, true);
        let info = TokenInfo {
            eos_ids: self.eos.clone(),
            pad_id: tok.pad_token_id(),
            decode: &decode,
        };
        let params = GenerateParams {
            max_new_tokens: req.max_new_tokens,
            stop_strings: req.stop.clone(),
            ..GenerateParams::default()
        };
        let cands = n_best_with_adapters(
            &self.model.model,
            &info,
            &req.prompt,
            req.candidates,
            &params,
            batch.as_ref(),
        )?;
        let completion_tokens = cands.first().map(|c| c.tokens.len()).unwrap_or(0);
        self.metrics().add(
            "sqlora_generated_tokens_total",
            &[],
            cands.iter().map(|c| c.tokens.len()).sum::<usize>() as f64,
        );
        Ok(GenOutput {
            finish: if completion_tokens >= req.max_new_tokens {
                Finish::Length
            } else {
                Finish::Stop
            },
            texts: cands.into_iter().map(|c| c.text).collect(),
            prompt_tokens: req.prompt.len(),
            completion_tokens,
            cached_tokens: 0,
            queue_ms,
            generate_ms: ms_since(t0),
        })
    }

    /// One step: rows that just joined prefill the rest of their prompts together, the others
    /// decode one token each; then every row takes its next token and finished rows leave.
    fn decode(&mut self) {
        if self.rows.is_empty() {
            return;
        }
        let t0 = Instant::now();
        let (joining, decoding): (Vec<usize>, Vec<usize>) =
            (0..self.rows.len()).partition(|&i| self.rows[i].tokens.is_empty());
        let mut logits: Vec<Option<Vec<f32>>> = vec![None; self.rows.len()];
        let mut failed: Vec<(usize, String)> = Vec::new();
        for group in [joining, decoding] {
            if group.is_empty() {
                continue;
            }
            match self.run_group(&group) {
                Ok(ls) => {
                    for (i, l) in group.iter().zip(ls) {
                        logits[*i] = Some(l);
                    }
                }
                Err(e) => {
                    for &i in &group {
                        failed.push((i, e.to_string()));
                    }
                }
            }
        }
        let decoded = logits.iter().flatten().count();
        let m = &self.shared.metrics;
        m.observe("sqlora_batch_size", &[], BATCH_BUCKETS, decoded as f64);
        m.add("sqlora_generated_tokens_total", &[], decoded as f64);
        let secs = t0.elapsed().as_secs_f64();
        if secs > 0.0 {
            m.set("sqlora_tokens_per_second", &[], decoded as f64 / secs);
        }
        let mut done: Vec<(usize, Result<GenOutput>)> = Vec::new();
        for (i, msg) in failed {
            done.push((i, Err(ServeError::Generation(msg))));
        }
        for (i, l) in logits.into_iter().enumerate() {
            let Some(l) = l else { continue };
            if let Some(out) = self.advance(i, &l) {
                done.push((i, out));
            }
        }
        done.sort_by_key(|d| std::cmp::Reverse(d.0));
        for (i, out) in done {
            let row = self.rows.remove(i);
            let _ = row.req.reply.send(out);
        }
    }

    fn run_group(&mut self, group: &[usize]) -> Result<Vec<Vec<f32>>> {
        let ids: Vec<Option<AdapterId>> = group.iter().map(|&i| self.rows[i].adapter_id).collect();
        let batch = self.set.batch(&ids)?;
        let mut picked: Vec<&mut Row> = Vec::with_capacity(group.len());
        // Disjoint mutable borrows of the chosen rows, in group order.
        let mut rest: &mut [Row] = &mut self.rows;
        let mut offset = 0;
        for &i in group {
            let (_, tail) = rest.split_at_mut(i - offset);
            let (row, tail) = tail
                .split_first_mut()
                .ok_or_else(|| ServeError::Internal("row index out of range".to_string()))?;
            picked.push(row);
            rest = tail;
            offset = i + 1;
        }
        let mut feeds: Vec<Feed<'_>> = picked
            .into_iter()
            .map(|r| Feed {
                kv: &mut r.kv,
                tokens: &r.feed,
            })
            .collect();
        step(&self.model.model, &self.rope, &mut feeds, Some(&batch))
    }

    /// Takes row `i`'s next token; returns its result when it finished.
    fn advance(&mut self, i: usize, logits: &[f32]) -> Option<Result<GenOutput>> {
        let tok = argmax(logits);
        let eos = self.eos.contains(&tok);
        let tokenizer = &self.model.tokenizer;
        let row = &mut self.rows[i];
        let finish = |row: &Row, text: String, finish: Finish| {
            Some(Ok(GenOutput {
                texts: vec![text],
                finish,
                prompt_tokens: row.prompt_tokens,
                completion_tokens: row.tokens.len(),
                cached_tokens: row.cached_tokens,
                queue_ms: row.queue_ms,
                generate_ms: ms_since(row.admitted),
            }))
        };
        let decode = |ids: &[u32]| tokenizer.decode(ids, true).map_err(ServeError::from);
        if eos {
            return match decode(&row.tokens) {
                Ok(text) => {
                    stream_rest(row, &text);
                    finish(row, text, Finish::Stop)
                }
                Err(e) => Some(Err(e)),
            };
        }
        row.tokens.push(tok);
        let text = match decode(&row.tokens) {
            Ok(t) => t,
            Err(e) => return Some(Err(e)),
        };
        if let Some(cut) = find_stop(&text, &row.req.stop) {
            let text = text[..cut].to_string();
            stream_rest(row, &text);
            return finish(row, text, Finish::Stop);
        }
        if row.tokens.len() >= row.req.max_new_tokens {
            stream_rest(row, &text);
            return finish(row, text, Finish::Length);
        }
        if let Some(tx) = &row.req.stream {
            let upto = safe_len(&text, &row.req.stop);
            if upto > row.sent_chars && text.is_char_boundary(row.sent_chars) {
                let _ = tx.send(text[row.sent_chars..upto].to_string());
                row.sent_chars = upto;
            }
        }
        row.feed = vec![tok];
        None
    }
}

/// Sends whatever of the final `text` was not streamed yet.
fn stream_rest(row: &mut Row, text: &str) {
    if let Some(tx) = &row.req.stream {
        if text.len() > row.sent_chars && text.is_char_boundary(row.sent_chars) {
            let _ = tx.send(text[row.sent_chars..].to_string());
            row.sent_chars = text.len();
        }
    }
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
