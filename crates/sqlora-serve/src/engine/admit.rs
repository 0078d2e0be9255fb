//! Admission: a waiting request is checked (what a client can get wrong is a 4xx here, before
//! any step runs), its adapter made resident, its prompt prefix taken from the prefix cache
//! (computed and cached on a miss), and it becomes a running row; a request for several
//! candidates runs beam search instead.

use std::time::Instant;

use sqlora_model::generate::{n_best_constrained, GenerateParams, TokenInfo};
use sqlora_model::lora::{AdapterBatch, AdapterId};

use super::scheduler::{ms_since, Engine, Row};
use super::{Finish, GenOutput, GenRequest};
use crate::error::{Result, ServeError};
use crate::forward::{step, Feed, RowKv};

impl Engine {
    /// Refuses what the request itself gets wrong: an empty prompt, token ids outside the
    /// model's vocabulary, more tokens than the model's context.
    fn check_request(&self, req: &GenRequest) -> Result<()> {
        if req.prompt.is_empty() {
            return Err(ServeError::bad("empty_prompt", "the prompt is empty"));
        }
        let vocab = self.model.config.vocab_size;
        if let Some(bad) = req.prompt.iter().find(|&&t| t as usize >= vocab) {
            return Err(ServeError::bad(
                "token_out_of_range",
                format!("token id {bad} is outside the model's vocabulary of {vocab}"),
            ));
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
    pub(super) fn prepare(
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
                Err(e) => return Err(Box::new((req, e.into()))),
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
        let rng = req
            .sampling
            .map(|sp| <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(sp.seed));
        Ok(Row {
            prompt_tokens: req.prompt.len(),
            rng,
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
        if let Some(kv) = self.prefixes.get(&key, tokens) {
            let kv = kv.fork(capacity);
            self.shared
                .metrics
                .inc("sqlora_prefix_cache_total", &[("result", "hit")]);
            return Ok((kv?, true));
        }
        self.shared
            .metrics
            .inc("sqlora_prefix_cache_total", &[("result", "miss")]);
        let mut kv = RowKv::new(&self.model.config, capacity, &self.model.device)?;
        self.prefill(&mut kv, tokens, adapter_id)
            .map_err(ServeError::step)?;
        let stored = kv.compact()?;
        self.prefixes.insert(key, tokens.to_vec(), stored);
        self.metrics().set(
            "sqlora_prefix_cache_bytes",
            &[],
            self.prefixes.bytes() as f64,
        );
        Ok((kv, false))
    }

    /// One forward step of a single row: `tokens` into `kv` with adapter `adapter_id`.
    fn prefill(&self, kv: &mut RowKv, tokens: &[u32], adapter_id: Option<AdapterId>) -> Result<()> {
        self.injected_fault()?;
        let batch = self.adapters.set().batch(&[adapter_id])?;
        let mut feeds = [Feed { kv, tokens }];
        step(&self.model.model, &self.rope, &mut feeds, Some(&batch))?;
        Ok(())
    }

    /// Beam search for a request that wants several candidates (under a copy of its
    /// constraint, if any).
    pub(super) fn beam(&mut self, req: &GenRequest, queue_ms: f64) -> Result<GenOutput> {
        let t0 = Instant::now();
        self.check_request(req)?;
        let id = match &req.adapter {
            Some(name) => Some(self.resident(name)?),
            None => None,
        };
        let batch = id
            .and_then(|id| self.adapters.set().get(id))
            .map(AdapterBatch::single);
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
        let cands = n_best_constrained(
            &self.model.model,
            &info,
            &req.prompt,
            req.candidates,
            &params,
            batch.as_ref(),
            req.constraint.as_ref().map(|c| c.boxed_clone()),
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
}
