//! Batched text generation with a KV cache.
//!
//! Prompts are left-padded into one prefill; padding keys are masked and every row's positions
//! start at 0 at its first real token, so a row generates exactly what it would generate alone.
//! Decode steps then feed one token per unfinished row; finished rows are dropped from the batch
//! (and from the cache) as they finish.
//!
//! * Greedy: argmax, ties broken towards the lowest token id.
//! * Sampling: temperature and top-p with a seeded [`StdRng`] per row, seeded from
//!   `params.seed` and the row's own prompt, so a row's samples do not depend on the batch.
//! * [`n_best`]: beam search returning distinct texts ranked by length-normalised log-prob.
//! * LoRA: [`generate_adapted`] gives each row its own resident adapter (or none) in one batch;
//!   [`generate_with_adapters`] / [`n_best_with_adapters`] take an [`AdapterBatch`] directly.
//! * Constraints: [`generate_constrained`] / [`n_best_constrained`] (and
//!   [`crate::prefix::generate_from_prefix_constrained`]) take one optional [`Constraint`] per
//!   row. Every greedy or sampled loop chooses a row's token in one place (`pick_token`, whose
//!   greedy form is the public [`choose_token`] the server's engine uses; greedy:
//!   [`best_allowed`]; sampling: [`mask_disallowed`], then sample); beam search expands each
//!   beam into its best allowed tokens ([`ranked_allowed`]). So a constrained row
//!   generates what it generates alone, an unconstrained row what it generated before the
//!   hook existed, and a call without constraints is bit-identical to one before the hook.
//!   Reported log-probs stay the model's own (unconstrained, temperature 1).

use candle_core::{DType, IndexOp, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use crate::constraint::{best_allowed, mask_disallowed, ranked_allowed, Constraint};
use crate::error::{ModelError, Result};
use crate::llama::{attention_mask, Cache, Model};
use crate::lora::{AdapterBatch, AdapterId, AdapterSet};
use crate::LoadedModel;

/// How to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateParams {
    /// Most tokens generated per row (EOS not counted in the output).
    pub max_new_tokens: usize,
    /// 0 = greedy; otherwise logits are divided by it before sampling.
    pub temperature: f64,
    /// Nucleus sampling mass (1.0 = off). Only used when sampling.
    pub top_p: f64,
    /// Seed of the per-row random streams (sampling only).
    pub seed: u64,
    /// A row stops when its decoded text contains one of these; the text is cut before it.
    pub stop_strings: Vec<String>,
    /// Stop at the tokenizer's end-of-sequence ids.
    pub stop_on_eos: bool,
}

impl Default for GenerateParams {
    fn default() -> Self {
        GenerateParams {
            max_new_tokens: 128,
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
            stop_strings: Vec::new(),
            stop_on_eos: true,
        }
    }
}

/// Why a row stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-sequence token (not included in `tokens`/`text`).
    Eos,
    /// A stop string appeared (the text is cut before it).
    Stop,
    /// `max_new_tokens` reached.
    Length,
    /// The row's [`Constraint`] allowed no next token: the row ends with what it generated
    /// so far (a complete text would have ended on an end-of-sequence token the constraint
    /// allows, so this is a dead end of the constraint, not a finished answer).
    Constrained,
}

/// One row's output.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// Generated ids, without the prompt and without a final EOS (with [`FinishReason::Stop`]
    /// they end with the token that completed the stop string).
    pub tokens: Vec<u32>,
    /// Decoded `tokens` (special tokens skipped), cut before a stop string.
    pub text: String,
    pub finish_reason: FinishReason,
    /// Sum of the model's (temperature 1) log-probs of the generated tokens, including the EOS
    /// token when the row ended on one. With a [`Constraint`] these are still the model's
    /// unconstrained log-probs (not renormalised over the allowed tokens).
    pub logprob: f64,
}

/// One beam-search result.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Generated ids, without the prompt and without a final EOS.
    pub tokens: Vec<u32>,
    /// Decoded tokens (special tokens skipped), cut before a stop string.
    pub text: String,
    /// Sum of token log-probs (EOS included when it ended on one) divided by that token count;
    /// the model's unconstrained log-probs, also under a [`Constraint`].
    pub score: f64,
}

/// What the generation loop needs besides the model: end ids, the padding id, and a decoder.
pub struct TokenInfo<'a> {
    /// Ids that end a row when `stop_on_eos`.
    pub eos_ids: Vec<u32>,
    /// The id used for left padding (never attended to).
    pub pad_id: u32,
    /// Turns ids into text (special tokens skipped).
    pub decode: &'a dyn Fn(&[u32]) -> Result<String>,
}

/// Batched generation for a loaded model; rows are independent of each other.
pub fn generate(
    m: &LoadedModel,
    prompts: &[Vec<u32>],
    params: &GenerateParams,
) -> Result<Vec<Generation>> {
    m.with_token_info(|info| generate_with(&m.model, info, prompts, params))
}

/// Beam search (width `n`) for one prompt: up to `n` distinct texts, best first.
pub fn n_best(
    m: &LoadedModel,
    prompt: &[u32],
    n: usize,
    params: &GenerateParams,
) -> Result<Vec<Candidate>> {
    m.with_token_info(|info| n_best_with(&m.model, info, prompt, n, params))
}

fn check_params(params: &GenerateParams) -> Result<()> {
    if !(params.temperature >= 0.0 && params.temperature.is_finite()) {
        return Err(ModelError::Generation(format!(
            "temperature must be finite and >= 0, got {}",
            params.temperature
        )));
    }
    if !(params.top_p > 0.0 && params.top_p <= 1.0) {
        return Err(ModelError::Generation(format!(
            "top_p must be in (0, 1], got {}",
            params.top_p
        )));
    }
    Ok(())
}

fn check_room(model: &Model, longest: usize, max_new: usize) -> Result<()> {
    let max_pos = model.config().max_position_embeddings;
    if longest + max_new > max_pos {
        return Err(ModelError::Generation(format!(
            "prompt of {longest} tokens plus {max_new} new tokens exceeds the model's context of {max_pos}"
        )));
    }
    Ok(())
}

/// Index of the largest value; ties go to the lowest index.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    let mut best_v = f32::NEG_INFINITY;
    for (i, &v) in logits.iter().enumerate() {
        if v > best_v {
            best_v = v;
            best = i;
        }
    }
    best as u32
}

/// `ln Σ exp(logits)`: each exponential in f32 (relative to the maximum, so in (0, 1], which
/// f32 holds to 1e-7 relative), summed and logged in f64. Half the time of f64 exponentials;
/// over a 49152-token vocabulary this is the costliest per-row step of decoding after the model.
fn log_sum_exp(logits: &[f32]) -> f64 {
    let max = logits.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let sum: f64 = logits.iter().map(|&x| (x - max).exp() as f64).sum();
    max as f64 + sum.ln()
}

/// `log_softmax(logits)[id]` given `lse = log_sum_exp(logits)`.
fn log_prob(logits: &[f32], lse: f64, id: u32) -> f64 {
    logits
        .get(id as usize)
        .map(|&x| x as f64)
        .unwrap_or(f64::NEG_INFINITY)
        - lse
}

/// Full log-softmax in f64.
fn log_softmax(logits: &[f32]) -> Vec<f64> {
    let lse = log_sum_exp(logits);
    logits.iter().map(|&x| x as f64 - lse).collect()
}

/// Samples with temperature and top-p.
fn sample(logits: &[f32], temperature: f64, top_p: f64, rng: &mut StdRng) -> u32 {
    let max = logits.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    let mut probs: Vec<(u32, f64)> = logits
        .iter()
        .enumerate()
        .map(|(i, &x)| (i as u32, ((x as f64 - max) / temperature).exp()))
        .collect();
    let total: f64 = probs.iter().map(|p| p.1).sum();
    let mut kept = probs.len();
    if top_p < 1.0 {
        probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut acc = 0.0;
        for (i, p) in probs.iter().enumerate() {
            acc += p.1 / total;
            if acc >= top_p {
                kept = i + 1;
                break;
            }
        }
    }
    let probs = &probs[..kept];
    let mass: f64 = probs.iter().map(|p| p.1).sum();
    let mut r = rng.gen::<f64>() * mass;
    for p in probs {
        if r < p.1 {
            return p.0;
        }
        r -= p.1;
    }
    probs.last().map(|p| p.0).unwrap_or(0)
}

/// How a sampled row draws its tokens: [`GenerateParams::temperature`] (> 0) and
/// [`GenerateParams::top_p`], from the row's own random stream.
pub(crate) struct Sampler<'a> {
    pub(crate) temperature: f64,
    pub(crate) top_p: f64,
    pub(crate) rng: &'a mut StdRng,
}

/// The one place where a decoding loop chooses a row's next token from its `logits`; then the
/// row's constraint (if any) [accepts](Constraint::accept) it.
///
/// Greedy (`sampler` `None`): [`best_allowed`], i.e. [`argmax`] without a constraint.
/// Sampling: without a constraint exactly [`sample`] as before; with one, the disallowed
/// tokens are masked out ([`mask_disallowed`]) and the rest sampled with the same single draw
/// from the row's stream. `None` when the constraint allows no token (the row ends with
/// [`FinishReason::Constrained`]); never `None` without a constraint.
pub(crate) fn pick_token(
    logits: &[f32],
    constraint: &mut Option<Box<dyn Constraint>>,
    sampler: Option<Sampler<'_>>,
) -> Option<u32> {
    let tok = match (sampler, constraint.as_deref()) {
        (None, c) => best_allowed(logits, c)?,
        (Some(s), None) => sample(logits, s.temperature, s.top_p, s.rng),
        (Some(s), Some(c)) => {
            let mut masked = logits.to_vec();
            mask_disallowed(&mut masked, c);
            if !masked.iter().any(|v| v.is_finite()) {
                return None;
            }
            sample(&masked, s.temperature, s.top_p, s.rng)
        }
    };
    if let Some(c) = constraint.as_mut() {
        c.accept(tok);
    }
    Some(tok)
}

/// A greedy row's next token: the best token its `constraint` allows ([`best_allowed`]; the
/// [`argmax`] without one), which the constraint then [accepts](Constraint::accept). `None`
/// when the constraint allows nothing. What the batched decoders do for a greedy row, for
/// decoders outside this crate (the server's engine).
pub fn choose_token(logits: &[f32], constraint: &mut Option<Box<dyn Constraint>>) -> Option<u32> {
    pick_token(logits, constraint, None)
}

/// A sampled row's next token: drawn from `logits` at `temperature` (> 0) with nucleus mass
/// `top_p`, from `rng`, among the tokens `constraint` allows (which then accepts it). What the
/// batched decoders do for a sampled row, for decoders outside this crate (the server's
/// engine). `None` when the constraint allows nothing.
pub fn sample_token(
    logits: &[f32],
    constraint: &mut Option<Box<dyn Constraint>>,
    temperature: f64,
    top_p: f64,
    rng: &mut StdRng,
) -> Option<u32> {
    pick_token(
        logits,
        constraint,
        Some(Sampler {
            temperature,
            top_p,
            rng,
        }),
    )
}

/// A stream seed that depends on the user's seed and the row's prompt only.
fn row_seed(seed: u64, prompt: &[u32]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for &t in prompt {
        h ^= t as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // splitmix64 finaliser
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Byte offset of the earliest occurrence of any (non-empty) stop string in `text`: where a
/// row's text is cut when it stops on a stop string. Every decoder (batched generation, the
/// shared-prefix path and the server's engine) stops through it.
pub fn find_stop(text: &str, stops: &[String]) -> Option<usize> {
    stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()))
        .min()
}

struct Row {
    prompt_len: usize,
    tokens: Vec<u32>,
    logprob: f64,
    rng: Option<StdRng>,
    constraint: Option<Box<dyn Constraint>>,
    done: Option<(FinishReason, String)>,
}

/// One optional [`Constraint`] per row, as the `*_constrained` decoders take them: either one
/// entry per row or none at all (no row constrained).
pub type RowConstraints = Vec<Option<Box<dyn Constraint>>>;

/// `constraints` spread over `rows` rows (empty: none for every row); an error when the count
/// is neither 0 nor `rows`.
pub(crate) fn per_row(
    constraints: RowConstraints,
    rows: usize,
    what: &str,
) -> Result<RowConstraints> {
    match constraints.len() {
        0 => Ok((0..rows).map(|_| None).collect()),
        n if n == rows => Ok(constraints),
        n => Err(ModelError::Generation(format!(
            "{rows} {what} but {n} constraints"
        ))),
    }
}

/// Batched generation where row `i` uses the resident adapter `adapter_per_row[i]` (or none);
/// rows with different adapters share one forward pass (see [`crate::lora`]).
pub fn generate_adapted(
    m: &LoadedModel,
    prompts: &[Vec<u32>],
    adapters: &AdapterSet,
    adapter_per_row: &[Option<AdapterId>],
    params: &GenerateParams,
) -> Result<Vec<Generation>> {
    let batch = adapters.batch(adapter_per_row)?;
    m.with_token_info(|info| generate_with_adapters(&m.model, info, prompts, params, Some(&batch)))
}

/// Batched generation on a bare [`Model`]; see [`generate`].
pub fn generate_with(
    model: &Model,
    info: &TokenInfo<'_>,
    prompts: &[Vec<u32>],
    params: &GenerateParams,
) -> Result<Vec<Generation>> {
    generate_with_adapters(model, info, prompts, params, None)
}

/// [`generate_with`] with LoRA adapters: `adapters` names one adapter (or none) per prompt.
pub fn generate_with_adapters(
    model: &Model,
    info: &TokenInfo<'_>,
    prompts: &[Vec<u32>],
    params: &GenerateParams,
    adapters: Option<&AdapterBatch>,
) -> Result<Vec<Generation>> {
    generate_constrained(model, info, prompts, params, adapters, Vec::new())
}

/// [`generate_with_adapters`] where row `i` generates only what `constraints[i]` allows (none:
/// unconstrained). `constraints` holds one entry per prompt, or none at all.
///
/// A constrained row's greedy token is the best one its constraint allows; a sampled row
/// samples among the allowed tokens only (same temperature, top-p and random stream). The
/// chosen token is then [accepted](Constraint::accept), the end-of-sequence token included.
/// When the constraint allows nothing the row ends with [`FinishReason::Constrained`].
/// Log-probs are the model's unconstrained ones. Each row generates exactly what it generates
/// alone; an unconstrained row gets the tokens [`generate_with_adapters`] gives it (its
/// log-prob to rounding, as other rows may leave the batch at other steps), and with no row
/// constrained (`constraints` empty or all `None`) the result is bit-identical to it.
pub fn generate_constrained(
    model: &Model,
    info: &TokenInfo<'_>,
    prompts: &[Vec<u32>],
    params: &GenerateParams,
    adapters: Option<&AdapterBatch>,
    constraints: RowConstraints,
) -> Result<Vec<Generation>> {
    check_params(params)?;
    let constraints = per_row(constraints, prompts.len(), "prompts")?;
    if let Some(rows) = adapters.and_then(|a| a.rows()) {
        if rows != prompts.len() {
            return Err(ModelError::Generation(format!(
                "{} prompts but adapters for {rows} rows",
                prompts.len()
            )));
        }
    }
    let adapters = adapters.cloned();
    if prompts.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(i) = prompts.iter().position(|p| p.is_empty()) {
        return Err(ModelError::Generation(format!("prompt {i} is empty")));
    }
    let vocab = model.config().vocab_size as u32;
    if let Some(bad) = prompts.iter().flatten().find(|&&t| t >= vocab) {
        return Err(ModelError::Generation(format!(
            "token id {bad} is outside the vocabulary of {vocab}"
        )));
    }
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    check_room(model, longest, params.max_new_tokens)?;
    let sampling = params.temperature > 0.0;
    let mut rows: Vec<Row> = prompts
        .iter()
        .zip(constraints)
        .map(|(p, constraint)| Row {
            prompt_len: p.len(),
            tokens: Vec::new(),
            logprob: 0.0,
            rng: sampling.then(|| StdRng::seed_from_u64(row_seed(params.seed, p))),
            constraint,
            done: None,
        })
        .collect();
    if params.max_new_tokens == 0 {
        return Ok(rows
            .into_iter()
            .map(|_| Generation {
                tokens: Vec::new(),
                text: String::new(),
                finish_reason: FinishReason::Length,
                logprob: 0.0,
            })
            .collect());
    }

    // Left-padded prefill.
    let cache = Cache::with_capacity(model.config(), longest + params.max_new_tokens);
    let (mut state, mut logits) =
        DecodeRows::prefill(model, cache, adapters, prompts, info.pad_id)?;

    loop {
        let active = &state.active;
        let mut next_tokens = Vec::with_capacity(active.len());
        let mut keep = Vec::with_capacity(active.len());
        // The rows' normalisers in parallel (the rest of a row's step is cheap).
        let lses: Vec<f64> = if logits.len() > 1 {
            logits.par_iter().map(|l| log_sum_exp(l)).collect()
        } else {
            logits.iter().map(|l| log_sum_exp(l)).collect()
        };
        for (k, &r) in active.iter().enumerate() {
            let row = &mut rows[r];
            let lg = &logits[k];
            let sampler = row.rng.as_mut().map(|rng| Sampler {
                temperature: params.temperature,
                top_p: params.top_p,
                rng,
            });
            let Some(tok) = pick_token(lg, &mut row.constraint, sampler) else {
                let text = (info.decode)(&row.tokens)?;
                row.done = Some((FinishReason::Constrained, text));
                continue;
            };
            row.logprob += log_prob(lg, lses[k], tok);
            if params.stop_on_eos && info.eos_ids.contains(&tok) {
                let text = (info.decode)(&row.tokens)?;
                row.done = Some((FinishReason::Eos, text));
                continue;
            }
            row.tokens.push(tok);
            if !params.stop_strings.is_empty() {
                let text = (info.decode)(&row.tokens)?;
                if let Some(cut) = find_stop(&text, &params.stop_strings) {
                    row.done = Some((FinishReason::Stop, text[..cut].to_string()));
                    continue;
                }
            }
            if row.tokens.len() >= params.max_new_tokens {
                let text = (info.decode)(&row.tokens)?;
                row.done = Some((FinishReason::Length, text));
                continue;
            }
            keep.push(k);
            next_tokens.push(tok);
        }
        if keep.is_empty() {
            break;
        }
        logits = state.step(model, &keep, next_tokens, |r| {
            rows[r].prompt_len + rows[r].tokens.len() - 1
        })?;
    }

    rows.into_iter()
        .map(|row| finished(row.tokens, row.done, row.logprob))
        .collect()
}

/// A row's generation once it has finished (an error if it never did).
pub(crate) fn finished(
    tokens: Vec<u32>,
    done: Option<(FinishReason, String)>,
    logprob: f64,
) -> Result<Generation> {
    let (finish_reason, text) =
        done.ok_or_else(|| ModelError::Generation("a row never finished".to_string()))?;
    Ok(Generation {
        tokens,
        text,
        finish_reason,
        logprob,
    })
}

/// The rows of a batched greedy/sampled decode between steps: their KV cache, adapters, which
/// cached keys are real (not padding), and `active[k]`, the caller's index of batch row k.
pub(crate) struct DecodeRows<'a> {
    pub(crate) cache: Cache,
    pub(crate) adapters: Option<AdapterBatch<'a>>,
    pub(crate) key_real: Vec<Vec<bool>>,
    pub(crate) active: Vec<usize>,
}

impl<'a> DecodeRows<'a> {
    /// Prefills `seqs` as one batch after the `start` keys already in `cache` (a batch-`seqs.len()`
    /// cache, or an empty one): each row is left-padded to the longest inside the new segment,
    /// its tokens at positions `start..`, its padding masked out. Returns the rows and the
    /// logits of each row's next token.
    pub(crate) fn prefill(
        model: &Model,
        mut cache: Cache,
        adapters: Option<AdapterBatch<'a>>,
        seqs: &[Vec<u32>],
        pad_id: u32,
    ) -> Result<(Self, Vec<Vec<f32>>)> {
        let device = model.device();
        let start = cache.len();
        let b = seqs.len();
        let longest = seqs.iter().map(Vec::len).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(b * longest);
        let mut pos = Vec::with_capacity(b * longest);
        let mut key_real: Vec<Vec<bool>> = Vec::with_capacity(b);
        for sq in seqs {
            let pad = longest - sq.len();
            ids.extend(std::iter::repeat_n(pad_id, pad));
            ids.extend_from_slice(sq);
            pos.extend(std::iter::repeat_n(start as u32, pad));
            pos.extend((start..start + sq.len()).map(|x| x as u32));
            let mut real = vec![true; start];
            real.extend(std::iter::repeat_n(false, pad));
            real.resize(start + longest, true);
            key_real.push(real);
        }
        let input = Tensor::from_vec(ids, (b, longest), device)?;
        let positions = Tensor::from_vec(pos, (b, longest), device)?;
        // Without padding the default causal mask over cache + new tokens is the right one.
        let mask = if seqs.iter().any(|sq| sq.len() != longest) {
            Some(attention_mask(&key_real, longest, device)?)
        } else {
            None
        };
        let hidden = model.forward_with(
            &input,
            &positions,
            mask.as_ref(),
            Some(&mut cache),
            adapters.as_ref(),
        )?;
        let last = hidden.i((.., longest - 1, ..))?.contiguous()?;
        let logits = model.logits(&last)?.to_dtype(DType::F32)?.to_vec2()?;
        let rows = DecodeRows {
            cache,
            adapters,
            key_real,
            active: (0..b).collect(),
        };
        Ok((rows, logits))
    }

    /// One decode step: keeps the batch rows `keep` (indices into `active`; the others have
    /// finished), feeds each its next token at `position(row)`, and returns the logits of the
    /// following token, one per kept row.
    pub(crate) fn step(
        &mut self,
        model: &Model,
        keep: &[usize],
        next_tokens: Vec<u32>,
        position: impl Fn(usize) -> usize,
    ) -> Result<Vec<Vec<f32>>> {
        let device = model.device();
        if keep.len() != self.active.len() {
            let idx: Vec<u32> = keep.iter().map(|&k| k as u32).collect();
            self.cache.select_rows(&idx)?;
            if let Some(a) = self.adapters.as_mut() {
                *a = a.select_rows(&idx)?;
            }
            self.key_real = keep.iter().map(|&k| self.key_real[k].clone()).collect();
            self.active = keep.iter().map(|&k| self.active[k]).collect();
        }
        let nb = self.active.len();
        let step_pos: Vec<u32> = self.active.iter().map(|&r| position(r) as u32).collect();
        for real in self.key_real.iter_mut() {
            real.push(true);
        }
        // Without padding the default causal mask over cache + new token is the right one.
        let mask = if self.key_real.iter().any(|r| r.contains(&false)) {
            Some(attention_mask(&self.key_real, 1, device)?)
        } else {
            None
        };
        let input = Tensor::from_vec(next_tokens, (nb, 1), device)?;
        let positions = Tensor::from_vec(step_pos, (nb, 1), device)?;
        let hidden = model.forward_with(
            &input,
            &positions,
            mask.as_ref(),
            Some(&mut self.cache),
            self.adapters.as_ref(),
        )?;
        let last = hidden.i((.., 0, ..))?.contiguous()?;
        Ok(model.logits(&last)?.to_dtype(DType::F32)?.to_vec2()?)
    }
}

struct Beam {
    tokens: Vec<u32>,
    logprob: f64,
    constraint: Option<Box<dyn Constraint>>,
}

fn normalised(logprob: f64, len: usize) -> f64 {
    logprob / len.max(1) as f64
}

/// Beam search on a bare [`Model`]; see [`n_best`].
pub fn n_best_with(
    model: &Model,
    info: &TokenInfo<'_>,
    prompt: &[u32],
    n: usize,
    params: &GenerateParams,
) -> Result<Vec<Candidate>> {
    n_best_with_adapters(model, info, prompt, n, params, None)
}

/// [`n_best_with`] with one LoRA adapter applied to every beam (e.g. [`AdapterBatch::single`]).
pub fn n_best_with_adapters(
    model: &Model,
    info: &TokenInfo<'_>,
    prompt: &[u32],
    n: usize,
    params: &GenerateParams,
    adapter: Option<&AdapterBatch>,
) -> Result<Vec<Candidate>> {
    n_best_constrained(model, info, prompt, n, params, adapter, None)
}

/// [`n_best_with_adapters`] where every beam generates only what `constraint` allows (`None`:
/// exactly [`n_best_with_adapters`]).
///
/// Each beam carries its own copy of the constraint's state ([`Constraint::boxed_clone`] when
/// a beam forks) and expands into its best `2n` allowed tokens ([`ranked_allowed`]); the
/// scores stay the model's unconstrained log-probs. A beam whose constraint allows nothing is
/// dropped; when no beam finished at all, those dead ends are returned instead (best first,
/// with what they generated so far), as greedy decoding returns a row that ended with
/// [`FinishReason::Constrained`].
pub fn n_best_constrained(
    model: &Model,
    info: &TokenInfo<'_>,
    prompt: &[u32],
    n: usize,
    params: &GenerateParams,
    adapter: Option<&AdapterBatch>,
    constraint: Option<Box<dyn Constraint>>,
) -> Result<Vec<Candidate>> {
    if !beam_wanted(adapter, n)? {
        return Ok(Vec::new());
    }
    if prompt.is_empty() {
        return Err(ModelError::Generation("prompt is empty".to_string()));
    }
    let vocab = model.config().vocab_size as u32;
    if let Some(bad) = prompt.iter().find(|&&t| t >= vocab) {
        return Err(ModelError::Generation(format!(
            "token id {bad} is outside the vocabulary of {vocab}"
        )));
    }
    check_room(model, prompt.len(), params.max_new_tokens)?;
    let cache = Cache::with_capacity(model.config(), prompt.len() + params.max_new_tokens);
    beam_search(model, info, cache, prompt, n, params, adapter, constraint)
}

/// The checks every beam search starts with: one adapter for all beams (not a per-row batch);
/// false when no candidate is wanted (`n` = 0: nothing to do).
pub(crate) fn beam_wanted(adapter: Option<&AdapterBatch>, n: usize) -> Result<bool> {
    if adapter.is_some_and(|a| a.is_gathered()) {
        return Err(ModelError::Generation(
            "beam search takes one adapter for all beams, not a per-row batch".to_string(),
        ));
    }
    Ok(n > 0)
}

/// Beam search continuing `cache` (empty, or batch 1 holding the positions before `tail`)
/// with `tail`; the body of [`n_best_constrained`] and of
/// [`crate::prefix::n_best_from_prefix_constrained`]. `n` ≥ 1, `tail` non-empty and in the
/// vocabulary, room checked by the caller.
#[allow(clippy::too_many_arguments)]
pub(crate) fn beam_search(
    model: &Model,
    info: &TokenInfo<'_>,
    mut cache: Cache,
    tail: &[u32],
    n: usize,
    params: &GenerateParams,
    adapter: Option<&AdapterBatch>,
    constraint: Option<Box<dyn Constraint>>,
) -> Result<Vec<Candidate>> {
    let device = model.device();
    let mut finished: Vec<Candidate> = Vec::new();
    if params.max_new_tokens == 0 {
        return Ok(vec![Candidate {
            tokens: Vec::new(),
            text: String::new(),
            score: 0.0,
        }]);
    }
    let add_finished = |finished: &mut Vec<Candidate>, cand: Candidate| match finished
        .iter_mut()
        .find(|c| c.text == cand.text)
    {
        Some(c) if c.score >= cand.score => {}
        Some(c) => *c = cand,
        None => finished.push(cand),
    };
    let start = cache.len();
    let t = start + tail.len();
    let input = Tensor::new(tail, device)?.unsqueeze(0)?;
    let pos: Vec<u32> = (start as u32..t as u32).collect();
    let positions = Tensor::new(pos.as_slice(), device)?.unsqueeze(0)?;
    let hidden = model.forward_with(&input, &positions, None, Some(&mut cache), adapter)?;
    let last = hidden.i((.., tail.len() - 1, ..))?.contiguous()?;
    let mut logits: Vec<Vec<f32>> = model.logits(&last)?.to_dtype(DType::F32)?.to_vec2()?;
    let mut beams = vec![Beam {
        tokens: Vec::new(),
        logprob: 0.0,
        constraint,
    }];
    // Beams whose constraint allowed nothing (returned only when nothing else finished).
    let mut dead_ends: Vec<Candidate> = Vec::new();
    loop {
        // All expansions, best first (ties: lower beam, then lower id).
        let mut cands: Vec<(usize, u32, f64)> = Vec::new();
        for (bi, beam) in beams.iter().enumerate() {
            let lp = log_softmax(&logits[bi]);
            let take = (2 * n).min(lp.len());
            let idx: Vec<u32> = match beam.constraint.as_deref() {
                None => {
                    let mut idx: Vec<u32> = (0..lp.len() as u32).collect();
                    idx.select_nth_unstable_by(take.saturating_sub(1), |&a, &b| {
                        lp[b as usize].total_cmp(&lp[a as usize]).then(a.cmp(&b))
                    });
                    idx.truncate(take);
                    idx
                }
                Some(c) => ranked_allowed(&logits[bi], c, take),
            };
            if idx.is_empty() {
                let text = (info.decode)(&beam.tokens)?;
                let score = normalised(beam.logprob, beam.tokens.len());
                add_finished(
                    &mut dead_ends,
                    Candidate {
                        tokens: beam.tokens.clone(),
                        text,
                        score,
                    },
                );
            }
            for id in idx {
                cands.push((bi, id, beam.logprob + lp[id as usize]));
            }
        }
        cands.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)).then(a.1.cmp(&b.1)));
        let mut next: Vec<(usize, Beam)> = Vec::new();
        for (bi, id, lp) in cands {
            if next.len() >= n {
                break;
            }
            let parent = &beams[bi];
            if params.stop_on_eos && info.eos_ids.contains(&id) {
                let text = (info.decode)(&parent.tokens)?;
                let score = normalised(lp, parent.tokens.len() + 1);
                add_finished(
                    &mut finished,
                    Candidate {
                        tokens: parent.tokens.clone(),
                        text,
                        score,
                    },
                );
                continue;
            }
            let mut tokens = parent.tokens.clone();
            tokens.push(id);
            if !params.stop_strings.is_empty() {
                let text = (info.decode)(&tokens)?;
                if let Some(cut) = find_stop(&text, &params.stop_strings) {
                    let score = normalised(lp, tokens.len());
                    add_finished(
                        &mut finished,
                        Candidate {
                            tokens,
                            text: text[..cut].to_string(),
                            score,
                        },
                    );
                    continue;
                }
            }
            if tokens.len() >= params.max_new_tokens {
                let text = (info.decode)(&tokens)?;
                let score = normalised(lp, tokens.len());
                add_finished(
                    &mut finished,
                    Candidate {
                        tokens,
                        text,
                        score,
                    },
                );
                continue;
            }
            let constraint = parent.constraint.as_deref().map(|c| {
                let mut c = c.boxed_clone();
                c.accept(id);
                c
            });
            next.push((
                bi,
                Beam {
                    tokens,
                    logprob: lp,
                    constraint,
                },
            ));
        }
        if next.is_empty() {
            break;
        }
        // Stop once n distinct results exist and no running beam currently scores better
        // than the worst of them (the heuristic transformers uses without early stopping).
        if finished.len() >= n {
            let mut scores: Vec<f64> = finished.iter().map(|c| c.score).collect();
            scores.sort_by(|a, b| b.total_cmp(a));
            let worst_kept = scores[n - 1];
            let best_running = next
                .iter()
                .map(|(_, b)| normalised(b.logprob, b.tokens.len()))
                .fold(f64::NEG_INFINITY, f64::max);
            if best_running <= worst_kept {
                break;
            }
        }
        let parents: Vec<u32> = next.iter().map(|(bi, _)| *bi as u32).collect();
        cache.select_rows(&parents)?;
        beams = next.into_iter().map(|(_, b)| b).collect();
        let toks: Vec<u32> = beams
            .iter()
            .filter_map(|b| b.tokens.last().copied())
            .collect();
        let nb = beams.len();
        let step = (t + beams[0].tokens.len() - 1) as u32;
        let input = Tensor::from_vec(toks, (nb, 1), device)?;
        let positions = Tensor::from_vec(vec![step; nb], (nb, 1), device)?;
        let hidden = model.forward_with(&input, &positions, None, Some(&mut cache), adapter)?;
        let last = hidden.i((.., 0, ..))?.contiguous()?;
        logits = model.logits(&last)?.to_dtype(DType::F32)?.to_vec2()?;
    }
    if finished.is_empty() {
        finished = dead_ends;
    }
    finished.sort_by(|a, b| b.score.total_cmp(&a.score));
    finished.truncate(n);
    Ok(finished)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_ties_go_to_lowest_id() {
        assert_eq!(argmax(&[0.0, 2.0, 2.0, 1.0]), 1);
        assert_eq!(argmax(&[-1.0, -3.0]), 0);
    }

    #[test]
    fn top_p_keeps_only_the_nucleus() {
        // Token 2 holds > 90% of the mass; with top_p 0.5 only it can be drawn.
        let logits = [0.0f32, 0.0, 6.0, 0.0];
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..200 {
            assert_eq!(sample(&logits, 1.0, 0.5, &mut rng), 2);
        }
        // Without top-p, the others are drawn sometimes.
        let mut rng = StdRng::seed_from_u64(7);
        let others = (0..2000)
            .filter(|_| sample(&logits, 1.0, 1.0, &mut rng) != 2)
            .count();
        assert!(others > 0);
    }

    #[test]
    fn row_seed_depends_on_seed_and_prompt() {
        assert_eq!(row_seed(1, &[1, 2]), row_seed(1, &[1, 2]));
        assert_ne!(row_seed(1, &[1, 2]), row_seed(2, &[1, 2]));
        assert_ne!(row_seed(1, &[1, 2]), row_seed(1, &[2, 1]));
    }

    #[test]
    fn stop_strings_find_the_earliest() {
        let stops = vec![";".to_string(), "\n\n".to_string(), String::new()];
        assert_eq!(find_stop("SELECT 1\n\nx;", &stops), Some(8));
        assert_eq!(find_stop("SELECT 1", &stops), None);
    }
}
