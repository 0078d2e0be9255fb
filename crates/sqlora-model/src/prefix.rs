//! Batched greedy generation of many prompts that share one token prefix.
//!
//! Every question to a database starts with the same system + schema prompt (hundreds of
//! tokens) and differs only in its last few dozen tokens. [`prefill_prefix`] runs the shared
//! prefix once into a batch-1 KV [`Cache`]; [`generate_from_prefix`] copies that cache to every
//! row of a batch, prefills only the rows' suffixes and decodes greedily.
//!
//! Suffixes of different lengths are padded on the left *inside the suffix segment*: a row's
//! keys are `prefix | padding | suffix | generated`, the padding keys are masked out and every
//! real token keeps the position it has in the concatenated prompt (the suffix starts at
//! `prefix_len`), so RoPE sees exactly what a plain [`crate::generate`] of `prefix + suffix`
//! sees and the greedy tokens are the same (tests compare them).
//!
//! The prefix cache depends on the adapter: LoRA changes the keys and values. Prefill it with
//! the same adapter the rows then use (one adapter for every row, or none).
//!
//! [`generate_from_prefix_constrained`] gives each row an optional [`Constraint`], chosen
//! through the same token choice as [`crate::generate::generate_constrained`].
//! [`n_best_from_prefix_constrained`] is beam search ([`crate::generate::n_best_constrained`])
//! for one suffix, starting from the same prefix cache.

use candle_core::Tensor;

use crate::constraint::Constraint;
use crate::error::{ModelError, Result};
use crate::generate::{
    beam_search, beam_wanted, choose_token, find_stop, finished, per_row, Candidate, DecodeRows,
    FinishReason, GenerateParams, Generation, RowConstraints, TokenInfo,
};
use crate::llama::{Cache, Model};
use crate::lora::AdapterBatch;

fn check_tokens(model: &Model, what: &str, ids: &[u32]) -> Result<()> {
    let vocab = model.config().vocab_size as u32;
    if let Some(bad) = ids.iter().find(|&&t| t >= vocab) {
        return Err(ModelError::Generation(format!(
            "{what}: token id {bad} is outside the vocabulary of {vocab}"
        )));
    }
    Ok(())
}

/// The batch-1 KV cache of `prefix` (positions `0..prefix.len()`), computed with `adapter`
/// (one adapter for the row, or none). See [`prefill_prefix_with_room`].
pub fn prefill_prefix(
    model: &Model,
    prefix: &[u32],
    adapter: Option<&AdapterBatch>,
) -> Result<Cache> {
    prefill_prefix_with_room(model, prefix, adapter, 0)
}

/// [`prefill_prefix`] whose cache buffers already hold `room` more positions, so that the
/// suffixes and generated tokens of [`generate_from_prefix`] fit without regrowing them
/// (e.g. `room` = longest suffix + `max_new_tokens`).
pub fn prefill_prefix_with_room(
    model: &Model,
    prefix: &[u32],
    adapter: Option<&AdapterBatch>,
    room: usize,
) -> Result<Cache> {
    if prefix.is_empty() {
        return Err(ModelError::Generation("the prefix is empty".to_string()));
    }
    if let Some(rows) = adapter.and_then(|a| a.rows()) {
        if rows != 1 {
            return Err(ModelError::Generation(format!(
                "the prefix is one row but the adapter batch has {rows}"
            )));
        }
    }
    check_tokens(model, "prefix", prefix)?;
    let max_pos = model.config().max_position_embeddings;
    if prefix.len() > max_pos {
        return Err(ModelError::Generation(format!(
            "prefix of {} tokens exceeds the model's context of {max_pos}",
            prefix.len()
        )));
    }
    let device = model.device();
    let t = prefix.len();
    let mut cache = Cache::with_capacity(model.config(), t + room);
    let input = Tensor::new(prefix, device)?.unsqueeze(0)?;
    let pos: Vec<u32> = (0..t as u32).collect();
    let positions = Tensor::new(pos.as_slice(), device)?.unsqueeze(0)?;
    model.forward_with(&input, &positions, None, Some(&mut cache), adapter)?;
    Ok(cache)
}

/// `ln Σ exp(logits)` (f32 exponentials relative to the maximum, f64 sum).
fn log_sum_exp(logits: &[f32]) -> f64 {
    let max = logits.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let sum: f64 = logits.iter().map(|&x| (x - max).exp() as f64).sum();
    max as f64 + sum.ln()
}

struct Row {
    suffix_len: usize,
    tokens: Vec<u32>,
    logprob: f64,
    constraint: Option<Box<dyn Constraint>>,
    done: Option<(FinishReason, String)>,
}

/// Greedy generation for `prefix + suffixes[i]`, every row starting from `prefix_cache`
/// (a batch-1 cache from [`prefill_prefix`]; it is copied, not modified).
///
/// `adapters` applies to the suffixes and the generated tokens: one adapter for every row
/// ([`AdapterBatch::single`]) or a gathered batch naming one per row; it must be the adapter
/// the prefix was prefilled with, which this function cannot check. Stopping follows
/// `params` (EOS, stop strings, `max_new_tokens`) exactly as in
/// [`crate::generate::generate_with_adapters`]. Only greedy decoding is supported
/// (`params.temperature` must be 0). Rows are independent of each other.
pub fn generate_from_prefix(
    model: &Model,
    info: &TokenInfo<'_>,
    prefix_cache: &Cache,
    suffixes: &[Vec<u32>],
    params: &GenerateParams,
    adapters: Option<&AdapterBatch>,
) -> Result<Vec<Generation>> {
    generate_from_prefix_until(
        model,
        info,
        prefix_cache,
        suffixes,
        params,
        adapters,
        &|_: &str| false,
    )
}

/// [`generate_from_prefix`] with one more way for a row to stop: `done(text)`, asked with a
/// row's decoded text after each generated token, ends the row when true (with
/// [`FinishReason::Stop`], the text kept whole). E.g. stop once the answer's SQL statement
/// is complete instead of letting a base model ramble on to `max_new_tokens`.
pub fn generate_from_prefix_until(
    model: &Model,
    info: &TokenInfo<'_>,
    prefix_cache: &Cache,
    suffixes: &[Vec<u32>],
    params: &GenerateParams,
    adapters: Option<&AdapterBatch>,
    done: &dyn Fn(&str) -> bool,
) -> Result<Vec<Generation>> {
    generate_from_prefix_constrained(
        model,
        info,
        prefix_cache,
        suffixes,
        params,
        adapters,
        done,
        Vec::new(),
    )
}

/// [`generate_from_prefix_until`] where row `i` generates only what `constraints[i]` allows
/// (none: unconstrained); `constraints` holds one entry per suffix, or none at all.
///
/// As in [`crate::generate::generate_constrained`]: a row's token is the best one its
/// constraint allows, which the constraint then accepts; a row whose constraint allows nothing
/// ends with [`FinishReason::Constrained`]; log-probs stay the model's unconstrained ones; each
/// row generates exactly what it generates alone (and what `generate_constrained` gives
/// `prefix + suffix` with the same constraint).
#[allow(clippy::too_many_arguments)]
pub fn generate_from_prefix_constrained(
    model: &Model,
    info: &TokenInfo<'_>,
    prefix_cache: &Cache,
    suffixes: &[Vec<u32>],
    params: &GenerateParams,
    adapters: Option<&AdapterBatch>,
    done: &dyn Fn(&str) -> bool,
    constraints: RowConstraints,
) -> Result<Vec<Generation>> {
    if params.temperature != 0.0 {
        return Err(ModelError::Generation(format!(
            "generation from a shared prefix is greedy only (temperature 0), got {}",
            params.temperature
        )));
    }
    if let Some(rows) = adapters.and_then(|a| a.rows()) {
        if rows != suffixes.len() {
            return Err(ModelError::Generation(format!(
                "{} suffixes but adapters for {rows} rows",
                suffixes.len()
            )));
        }
    }
    let constraints = per_row(constraints, suffixes.len(), "suffixes")?;
    if suffixes.is_empty() {
        return Ok(Vec::new());
    }
    match prefix_cache.batch_size() {
        Some(1) => {}
        Some(b) => {
            return Err(ModelError::Generation(format!(
                "the prefix cache holds {b} rows, not 1"
            )))
        }
        None => {
            return Err(ModelError::Generation(
                "the prefix cache is empty (run prefill_prefix first)".to_string(),
            ))
        }
    }
    if let Some(i) = suffixes.iter().position(|s| s.is_empty()) {
        return Err(ModelError::Generation(format!("suffix {i} is empty")));
    }
    for (i, s) in suffixes.iter().enumerate() {
        check_tokens(model, &format!("suffix {i}"), s)?;
    }
    let p = prefix_cache.len();
    let longest = suffixes.iter().map(Vec::len).max().unwrap_or(0);
    let max_pos = model.config().max_position_embeddings;
    if p + longest + params.max_new_tokens > max_pos {
        return Err(ModelError::Generation(format!(
            "prefix of {p} tokens, suffix of {longest} and {} new tokens exceed the model's context of {max_pos}",
            params.max_new_tokens
        )));
    }
    let mut rows: Vec<Row> = suffixes
        .iter()
        .zip(constraints)
        .map(|(s, constraint)| Row {
            suffix_len: s.len(),
            tokens: Vec::new(),
            logprob: 0.0,
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

    let b = suffixes.len();
    let adapters = adapters.cloned();
    let mut cache = prefix_cache.clone();
    cache.select_rows(&vec![0u32; b])?;
    // Suffix prefill, padded on the left inside the suffix segment.
    let (mut state, mut logits) =
        DecodeRows::prefill(model, cache, adapters, suffixes, info.pad_id)?;

    loop {
        let active = &state.active;
        let mut next_tokens = Vec::with_capacity(active.len());
        let mut keep = Vec::with_capacity(active.len());
        for (k, &r) in active.iter().enumerate() {
            let row = &mut rows[r];
            let lg = &logits[k];
            let Some(tok) = choose_token(lg, &mut row.constraint) else {
                let text = (info.decode)(&row.tokens)?;
                row.done = Some((FinishReason::Constrained, text));
                continue;
            };
            row.logprob += lg
                .get(tok as usize)
                .map(|&x| x as f64)
                .unwrap_or(f64::NEG_INFINITY)
                - log_sum_exp(lg);
            if params.stop_on_eos && info.eos_ids.contains(&tok) {
                let text = (info.decode)(&row.tokens)?;
                row.done = Some((FinishReason::Eos, text));
                continue;
            }
            row.tokens.push(tok);
            let text = (info.decode)(&row.tokens)?;
            if let Some(cut) = find_stop(&text, &params.stop_strings) {
                row.done = Some((FinishReason::Stop, text[..cut].to_string()));
                continue;
            }
            if done(&text) {
                row.done = Some((FinishReason::Stop, text));
                continue;
            }
            if row.tokens.len() >= params.max_new_tokens {
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
            p + rows[r].suffix_len + rows[r].tokens.len() - 1
        })?;
    }

    rows.into_iter()
        .map(|row| finished(row.tokens, row.done, row.logprob))
        .collect()
}

/// Beam search's `n` best continuations of `prefix + suffix` ([`n_best_constrained`]), the
/// prefix taken from `prefix_cache` (batch 1, from [`prefill_prefix`] with the same adapter;
/// copied, not modified): the same candidates as `n_best_constrained` on the whole prompt,
/// without prefilling the prefix again.
///
/// [`n_best_constrained`]: crate::generate::n_best_constrained
#[allow(clippy::too_many_arguments)]
pub fn n_best_from_prefix_constrained(
    model: &Model,
    info: &TokenInfo<'_>,
    prefix_cache: &Cache,
    suffix: &[u32],
    n: usize,
    params: &GenerateParams,
    adapter: Option<&AdapterBatch>,
    constraint: Option<Box<dyn Constraint>>,
) -> Result<Vec<Candidate>> {
    let wanted = beam_wanted(adapter, n)?;
    if prefix_cache.batch_size() != Some(1) {
        return Err(ModelError::Generation(
            "the prefix cache must hold exactly one row (run prefill_prefix first)".to_string(),
        ));
    }
    if !wanted {
        return Ok(Vec::new());
    }
    if suffix.is_empty() {
        return Err(ModelError::Generation("the suffix is empty".to_string()));
    }
    check_tokens(model, "suffix", suffix)?;
    let p = prefix_cache.len();
    let max_pos = model.config().max_position_embeddings;
    if p + suffix.len() + params.max_new_tokens > max_pos {
        return Err(ModelError::Generation(format!(
            "prefix of {p} tokens, suffix of {} and {} new tokens exceed the model's context of {max_pos}",
            suffix.len(),
            params.max_new_tokens
        )));
    }
    // A copy of its own: appending must never write into the shared prefix's buffers.
    let mut cache = prefix_cache.clone();
    cache.select_rows(&[0])?;
    beam_search(model, info, cache, suffix, n, params, adapter, constraint)
}

/// Length of the longest common prefix of `prompts` (0 for none).
pub fn common_prefix_len(prompts: &[Vec<u32>]) -> usize {
    let Some(first) = prompts.first() else {
        return 0;
    };
    let mut n = first.len();
    for p in &prompts[1..] {
        n = n.min(first.iter().zip(p).take_while(|(a, b)| a == b).count());
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_prefix_of_token_lists() {
        assert_eq!(common_prefix_len(&[]), 0);
        assert_eq!(common_prefix_len(&[vec![1, 2, 3]]), 3);
        assert_eq!(
            common_prefix_len(&[vec![1, 2, 3, 4], vec![1, 2, 5], vec![1, 2, 3]]),
            2
        );
        assert_eq!(common_prefix_len(&[vec![1, 2], vec![3]]), 0);
    }
}
