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
//!
//! The parts, one job each:
//! * this module — the public types: settings, requests, results, the shared state;
//! * `handle` — [`start`], [`EngineHandle`] (the channel into the engine thread) and [`wait`];
//! * `scheduler` — the engine thread: its loop, continuous batching, deadlines and
//!   disconnects, the forward steps, and a row's next token;
//! * `admit` — a waiting request becomes a running row (checks, adapter, cached prefix), or
//!   runs beam search;
//! * `residency` — the adapters the engine knows: which are resident, least-recently-used
//!   eviction, reloading from disk;
//! * `prefix_cache` — the key/value caches of shared prompt prefixes, bounded by bytes, LRU;
//! * `stream` — stop strings and the text deltas streamed to clients.

mod admit;
mod handle;
mod prefix_cache;
mod residency;
mod scheduler;
mod stream;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;
use sqlora_model::constraint::Constraint;
use tokio::sync::oneshot;

use crate::error::Result;
use crate::metrics::Metrics;

pub use handle::{start, wait, EngineHandle};

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
    /// The request's [`Constraint`] allowed no next token (the text is what was generated
    /// before).
    Constrained,
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
    /// Sampling instead of greedy decoding (`None`: greedy). Continuous-batch rows only.
    pub sampling: Option<Sampling>,
    /// What the generated tokens must obey (`None`: anything the model likes). Greedy rows take
    /// the best token it allows at every step, in the continuous batch with rows of any other
    /// constraint or adapter; beam search gives each beam its own copy.
    pub constraint: Option<Box<dyn Constraint>>,
    /// When the request gives up.
    pub deadline: Instant,
    /// Receives text deltas as they are generated (greedy requests only).
    pub stream: Option<tokio::sync::mpsc::UnboundedSender<String>>,
    /// Receives the result.
    pub reply: oneshot::Sender<Result<GenOutput>>,
}

/// How a sampled request draws its tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// Logits are divided by it (> 0).
    pub temperature: f64,
    /// Nucleus mass (0, 1]; 1 = off.
    pub top_p: f64,
    /// Seed of the request's own random stream: the same seed, prompt and parameters give the
    /// same text, whatever else is in the batch.
    pub seed: u64,
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
    /// Forward steps still to fail on purpose (see [`EngineHandle::fail_next_steps`]).
    fail_steps: AtomicUsize,
}

impl Shared {
    fn new(metrics: Arc<Metrics>) -> Shared {
        Shared {
            queued: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            adapters: Mutex::new(BTreeMap::new()),
            metrics,
            fail_steps: AtomicUsize::new(0),
        }
    }

    /// True when the next forward step is to fail on purpose (and counts it).
    fn take_injected_fault(&self) -> bool {
        self.fail_steps
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

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
