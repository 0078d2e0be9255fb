//! The engine thread: its loop over commands and steps, continuous batching (rows that
//! finished, ran past their deadline or lost their client leave between two steps; waiting
//! requests join up to `max_batch`), the forward steps themselves, and each row's next token.
//!
//! A failed step fails the rows of that step with [`ServeError::Step`] (a 5xx, the cause kept
//! as its source) and the engine goes on; a panic inside a step fails the rows in flight.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::Instant;

use rand::rngs::StdRng;
use sqlora_model::generate::{choose_token, sample_token};
use sqlora_model::lora::{AdapterId, LoraAdapter};
use sqlora_model::LoadedModel;

use super::handle::Command;
use super::prefix_cache::PrefixCache;
use super::residency::Residency;
use super::stream::{find_stop, send_rest, send_safe};
use super::{AdapterInfo, EngineConfig, Finish, GenOutput, GenRequest, Shared};
use crate::error::{Result, ServeError};
use crate::forward::{step, Feed, Rope, RowKv};
use crate::metrics::{Metrics, BATCH_BUCKETS};

/// A running row.
pub(super) struct Row {
    pub(super) req: GenRequest,
    pub(super) adapter_id: Option<AdapterId>,
    pub(super) kv: RowKv,
    /// Tokens to feed at the next step (the prompt suffix on joining, then the last token).
    pub(super) feed: Vec<u32>,
    pub(super) tokens: Vec<u32>,
    /// Bytes of the text already streamed.
    pub(super) sent_chars: usize,
    pub(super) prompt_tokens: usize,
    pub(super) cached_tokens: usize,
    pub(super) queue_ms: f64,
    pub(super) admitted: Instant,
    /// The random stream of a sampled request (seeded from its [`Sampling::seed`]).
    pub(super) rng: Option<StdRng>,
}

/// The engine thread's state.
pub(super) struct Engine {
    pub(super) model: Arc<LoadedModel>,
    pub(super) rope: Rope,
    pub(super) cfg: EngineConfig,
    pub(super) shared: Arc<Shared>,
    pub(super) adapters: Residency,
    pub(super) prefixes: PrefixCache,
    pending: VecDeque<(GenRequest, Instant)>,
    pub(super) rows: Vec<Row>,
    pub(super) eos: Vec<u32>,
}

pub(super) fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// Whether a running row uses an adapter (those cannot be evicted, replaced or removed).
fn used_by(rows: &[Row]) -> impl Fn(AdapterId) -> bool + '_ {
    move |id| rows.iter().any(|r| r.adapter_id == Some(id))
}

impl Engine {
    /// An engine for `model` with no adapters and nothing to do yet.
    pub(super) fn new(
        model: Arc<LoadedModel>,
        cfg: EngineConfig,
        shared: Arc<Shared>,
    ) -> Result<Engine> {
        let rope = Rope::new(&model.config, &model.device)?;
        Ok(Engine {
            adapters: Residency::new(&model.device, cfg.max_adapters, shared.clone()),
            prefixes: PrefixCache::new(cfg.prefix_cache_bytes),
            eos: model.tokenizer.eos_token_ids(),
            model,
            rope,
            cfg,
            shared,
            pending: VecDeque::new(),
            rows: Vec::new(),
        })
    }

    pub(super) fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// Clears the prefix caches computed with the `stale` adapters.
    fn drop_prefixes(&mut self, stale: &[String]) {
        if stale.is_empty() {
            return;
        }
        for name in stale {
            self.prefixes.drop_adapter(name);
        }
        self.metrics().set(
            "sqlora_prefix_cache_bytes",
            &[],
            self.prefixes.bytes() as f64,
        );
    }

    /// Registers (or replaces) an adapter; see [`Residency::add`].
    pub(super) fn add_adapter(
        &mut self,
        name: String,
        path: Option<std::path::PathBuf>,
        adapter: LoraAdapter,
    ) -> Result<AdapterInfo> {
        let mut stale = Vec::new();
        let r = self
            .adapters
            .add(name, path, adapter, &used_by(&self.rows), &mut stale);
        self.drop_prefixes(&stale);
        r
    }

    fn remove_adapter(&mut self, name: &str) -> Result<()> {
        let mut stale = Vec::new();
        let r = self.adapters.remove(name, &used_by(&self.rows), &mut stale);
        self.drop_prefixes(&stale);
        r
    }

    /// The slot of adapter `name`, loading it from disk when it was evicted.
    pub(super) fn resident(&mut self, name: &str) -> Result<AdapterId> {
        let mut stale = Vec::new();
        let r = self
            .adapters
            .resident(name, &self.model.model, &used_by(&self.rows), &mut stale);
        self.drop_prefixes(&stale);
        r
    }

    /// Fails when a test asked the next step to fail ([`super::EngineHandle::fail_next_steps`]).
    pub(super) fn injected_fault(&self) -> Result<()> {
        if self.shared.take_injected_fault() {
            return Err(ServeError::Candle(candle_core::Error::Msg(
                "injected fault (EngineHandle::fail_next_steps)".to_string(),
            )));
        }
        Ok(())
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

    /// The engine thread's loop: until shut down (or every handle is gone), take commands,
    /// then drop abandoned rows, admit waiting requests and run one step.
    pub(super) fn run(mut self, rx: mpsc::Receiver<Command>) {
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

    /// Moves waiting requests into the batch while it has room (beam-search requests run to
    /// the end right here).
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
        let mut failed: Vec<(usize, Arc<ServeError>)> = Vec::new();
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
                    let e = Arc::new(e);
                    for &i in &group {
                        failed.push((i, e.clone()));
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
        for (i, e) in failed {
            done.push((i, Err(ServeError::Step(e))));
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

    /// Runs the rows `group` (indices into `rows`, ascending) through one forward step.
    fn run_group(&mut self, group: &[usize]) -> Result<Vec<Vec<f32>>> {
        self.injected_fault()?;
        let ids: Vec<Option<AdapterId>> = group.iter().map(|&i| self.rows[i].adapter_id).collect();
        let batch = self.adapters.set().batch(&ids)?;
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

    /// Takes row `i`'s next token (the best its constraint allows, [`choose_token`]); returns
    /// its result when it finished.
    fn advance(&mut self, i: usize, logits: &[f32]) -> Option<Result<GenOutput>> {
        let tokenizer = &self.model.tokenizer;
        let row = &mut self.rows[i];
        let picked = match (row.req.sampling, row.rng.as_mut()) {
            (Some(sp), Some(rng)) => sample_token(
                logits,
                &mut row.req.constraint,
                sp.temperature,
                sp.top_p,
                rng,
            ),
            _ => choose_token(logits, &mut row.req.constraint),
        };
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
        // An end-of-sequence token ends the text; so does a constraint that allows nothing.
        let tok = match picked {
            Some(tok) if !self.eos.contains(&tok) => tok,
            other => {
                let why = if other.is_some() {
                    Finish::Stop
                } else {
                    Finish::Constrained
                };
                return match decode(&row.tokens) {
                    Ok(text) => {
                        send_rest(row.req.stream.as_ref(), &mut row.sent_chars, &text);
                        finish(row, text, why)
                    }
                    Err(e) => Some(Err(e)),
                };
            }
        };
        row.tokens.push(tok);
        let text = match decode(&row.tokens) {
            Ok(t) => t,
            Err(e) => return Some(Err(e)),
        };
        if let Some(cut) = find_stop(&text, &row.req.stop) {
            let text = text[..cut].to_string();
            send_rest(row.req.stream.as_ref(), &mut row.sent_chars, &text);
            return finish(row, text, Finish::Stop);
        }
        if row.tokens.len() >= row.req.max_new_tokens {
            send_rest(row.req.stream.as_ref(), &mut row.sent_chars, &text);
            return finish(row, text, Finish::Length);
        }
        send_safe(
            row.req.stream.as_ref(),
            &mut row.sent_chars,
            &text,
            &row.req.stop,
        );
        row.feed = vec![tok];
        None
    }
}
