//! From training examples to micro-batches.
//!
//! An example is rendered with the model's chat template (`add_generation_prompt = true`),
//! followed by the gold SQL and the end-of-turn marker. The prompt and the answer are
//! tokenized separately and concatenated, so the loss covers exactly the answer tokens and the
//! end marker, never a prompt token. A prompt too long for `max_seq_len` loses tokens from its
//! start; the answer is never cut.
//!
//! Micro-batches group sequences of similar length: the example order is shuffled with a seeded
//! RNG, then sorted by length within windows of [`WINDOW_BATCHES`] micro-batches, and rows are
//! padded on the right.

use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use sha2::{Digest, Sha256};
use sqlora_model::chat::ChatTemplate;
use sqlora_model::llama::attention_mask;
use sqlora_model::tokenizer::Tokenizer;
use sqlora_sqlgen::{RenderedExample, TrainingExample};

use crate::error::{Result, TrainError};

/// How many micro-batches' worth of shuffled examples are sorted by length together.
pub const WINDOW_BATCHES: usize = 8;

/// One tokenized training sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizedExample {
    /// Prompt tokens then answer tokens (answer + end marker).
    pub ids: Vec<u32>,
    /// Index in `ids` of the first answer token; the loss covers `ids[answer_start..]`.
    pub answer_start: usize,
}

impl TokenizedExample {
    /// Sequence length in tokens.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when there are no tokens.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Number of tokens the loss is computed on.
    pub fn answer_tokens(&self) -> usize {
        self.ids.len() - self.answer_start
    }
}

/// Renders `example` with the model's chat template and appends the answer and `end_marker`
/// (for SmolLM2 `<|im_end|>`).
pub fn render(
    example: &TrainingExample,
    chat: &ChatTemplate,
    end_marker: &str,
) -> Result<RenderedExample> {
    example
        .render(|msgs, gen| chat.render(msgs, gen), end_marker)
        .map_err(TrainError::from)
}

/// Tokenizes a rendered example: prompt (`text[..answer_span.start]`) and answer
/// (`text[answer_span]`) separately, the prompt cut from its start to fit `max_seq_len`.
pub fn tokenize(
    rendered: &RenderedExample,
    tokenizer: &Tokenizer,
    max_seq_len: usize,
) -> Result<TokenizedExample> {
    let span = rendered.answer_span.clone();
    let (Some(prompt), Some(answer)) = (rendered.text.get(..span.start), rendered.text.get(span))
    else {
        return Err(TrainError::Data(
            "the answer span does not lie on character boundaries of the text".into(),
        ));
    };
    let answer_ids = tokenizer.encode(answer, false)?;
    if answer_ids.is_empty() {
        return Err(TrainError::Data("an example has an empty answer".into()));
    }
    // One token of context at least: the first answer token is predicted from the previous one.
    if answer_ids.len() + 1 > max_seq_len {
        return Err(TrainError::Data(format!(
            "an answer of {} tokens does not fit max_seq_len {max_seq_len} with its prompt",
            answer_ids.len()
        )));
    }
    let prompt_ids = tokenizer.encode(prompt, false)?;
    if prompt_ids.is_empty() {
        return Err(TrainError::Data("an example has an empty prompt".into()));
    }
    let keep = (max_seq_len - answer_ids.len()).min(prompt_ids.len());
    let mut ids = prompt_ids[prompt_ids.len() - keep..].to_vec();
    let answer_start = ids.len();
    ids.extend_from_slice(&answer_ids);
    Ok(TokenizedExample { ids, answer_start })
}

/// The sha256 of the rendered texts and answer spans, in order (the dataset's identity in
/// `sqlora_meta.json`).
pub fn dataset_hash(rendered: &[RenderedExample]) -> String {
    let mut h = Sha256::new();
    for r in rendered {
        h.update((r.text.len() as u64).to_le_bytes());
        h.update(r.text.as_bytes());
        h.update((r.answer_span.start as u64).to_le_bytes());
        h.update((r.answer_span.end as u64).to_le_bytes());
    }
    hex::encode(h.finalize())
}

/// The micro-batches of one epoch as lists of example indices: shuffled with
/// `seed` and `epoch`, sorted by length within windows of [`WINDOW_BATCHES`] micro-batches,
/// then chunked (the last micro-batch may be smaller). The same inputs give the same plan.
pub fn epoch_plan(lengths: &[usize], micro_batch: usize, seed: u64, epoch: u64) -> Vec<Vec<usize>> {
    let micro_batch = micro_batch.max(1);
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    let mut rng = StdRng::seed_from_u64(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    order.shuffle(&mut rng);
    let mut out = Vec::new();
    for window in order.chunks_mut(micro_batch * WINDOW_BATCHES) {
        // Stable sort: ties keep their shuffled order.
        window.sort_by_key(|&i| lengths[i]);
        out.extend(window.chunks(micro_batch).map(|c| c.to_vec()));
    }
    out
}

/// [`epoch_plan`] that never mixes groups (e.g. databases) in one micro-batch: each group is
/// planned on its own, then the micro-batches of all groups are shuffled together. Rows of one
/// group share their schema prompt, which the trainer computes once per micro-batch. With a
/// single group this is exactly [`epoch_plan`].
pub fn grouped_epoch_plan(
    lengths: &[usize],
    groups: &[usize],
    micro_batch: usize,
    seed: u64,
    epoch: u64,
) -> Vec<Vec<usize>> {
    let mut ids: Vec<usize> = groups.to_vec();
    ids.sort_unstable();
    ids.dedup();
    if ids.len() <= 1 || groups.len() != lengths.len() {
        return epoch_plan(lengths, micro_batch, seed, epoch);
    }
    let mut out = Vec::new();
    for (k, g) in ids.iter().enumerate() {
        let members: Vec<usize> = (0..lengths.len()).filter(|&i| groups[i] == *g).collect();
        let sub: Vec<usize> = members.iter().map(|&i| lengths[i]).collect();
        let plan = epoch_plan(&sub, micro_batch, seed.wrapping_add(k as u64 + 1), epoch);
        out.extend(
            plan.into_iter()
                .map(|b| b.into_iter().map(|j| members[j]).collect::<Vec<_>>()),
        );
    }
    let mut rng = StdRng::seed_from_u64(seed ^ epoch.wrapping_mul(0xD1B5_4A32_D192_ED03));
    out.shuffle(&mut rng);
    out
}

/// A right-padded micro-batch ready for the model.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Token ids `[rows, len]` (u32), padding included.
    pub input_ids: Tensor,
    /// Positions `[rows, len]` (u32): `0..len` on every row.
    pub positions: Tensor,
    /// Additive attention mask `[rows, 1, len, len]`: causal, padding keys hidden.
    pub attn_mask: Tensor,
    /// Flat indices `row * len + i` of the positions whose next token is an answer token.
    pub predict_at: Tensor,
    /// The answer tokens predicted there (u32), same order as `predict_at`.
    pub targets: Tensor,
    /// Rows.
    pub rows: usize,
    /// Padded length.
    pub len: usize,
    /// Real (non-padding) tokens.
    pub tokens: usize,
    /// Tokens the loss is computed on.
    pub answer_tokens: usize,
}

/// Builds the micro-batch of `examples`, padding with `pad_id`.
pub fn make_batch(examples: &[&TokenizedExample], pad_id: u32, device: &Device) -> Result<Batch> {
    if examples.is_empty() {
        return Err(TrainError::Data(
            "a micro-batch needs at least one example".into(),
        ));
    }
    let rows = examples.len();
    let len = examples.iter().map(|e| e.len()).max().unwrap_or(0);
    let mut ids = Vec::with_capacity(rows * len);
    let mut real = Vec::with_capacity(rows);
    let mut predict_at = Vec::new();
    let mut targets = Vec::new();
    let mut tokens = 0;
    for (r, e) in examples.iter().enumerate() {
        if e.answer_start == 0 || e.answer_start >= e.ids.len() {
            return Err(TrainError::Data(
                "an example needs at least one prompt token and one answer token".into(),
            ));
        }
        ids.extend_from_slice(&e.ids);
        ids.extend(std::iter::repeat_n(pad_id, len - e.len()));
        real.push((0..len).map(|i| i < e.len()).collect::<Vec<bool>>());
        tokens += e.len();
        for i in e.answer_start..e.len() {
            predict_at.push((r * len + i - 1) as u32);
            targets.push(e.ids[i]);
        }
    }
    let pos: Vec<u32> = (0..rows).flat_map(|_| 0..len as u32).collect();
    let answer_tokens = targets.len();
    Ok(Batch {
        input_ids: Tensor::from_vec(ids, (rows, len), device)?,
        positions: Tensor::from_vec(pos, (rows, len), device)?,
        attn_mask: attention_mask(&real, len, device)?,
        predict_at: Tensor::from_vec(predict_at, answer_tokens, device)?,
        targets: Tensor::from_vec(targets, answer_tokens, device)?,
        rows,
        len,
        tokens,
        answer_tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(ids: &[u32], answer_start: usize) -> TokenizedExample {
        TokenizedExample {
            ids: ids.to_vec(),
            answer_start,
        }
    }

    #[test]
    fn batch_pads_right_and_targets_only_answers() {
        let a = ex(&[5, 6, 7, 8], 2);
        let b = ex(&[9, 10, 11], 1);
        let batch = make_batch(&[&a, &b], 0, &Device::Cpu).unwrap();
        assert_eq!((batch.rows, batch.len, batch.tokens), (2, 4, 7));
        let ids: Vec<Vec<u32>> = batch.input_ids.to_vec2().unwrap();
        assert_eq!(ids, vec![vec![5, 6, 7, 8], vec![9, 10, 11, 0]]);
        // Row 0: positions 1, 2 predict 7, 8. Row 1: positions 0, 1 predict 10, 11.
        assert_eq!(batch.predict_at.to_vec1::<u32>().unwrap(), vec![1, 2, 4, 5]);
        assert_eq!(batch.targets.to_vec1::<u32>().unwrap(), vec![7, 8, 10, 11]);
        let mask: Vec<Vec<Vec<f32>>> = batch.attn_mask.squeeze(1).unwrap().to_vec3().unwrap();
        // Row 1, last query sees keys 0..=2 but not the padding key 3.
        assert!(mask[1][3][2] == 0.0 && mask[1][3][3] < -1e3);
        assert!(mask[0][1][2] < -1e3, "not causal");
    }

    #[test]
    fn plans_are_seeded_bucketed_and_complete() {
        let lengths: Vec<usize> = (0..100).map(|i| (i * 37) % 91 + 3).collect();
        let p1 = epoch_plan(&lengths, 4, 7, 0);
        assert_eq!(p1, epoch_plan(&lengths, 4, 7, 0));
        assert_ne!(p1, epoch_plan(&lengths, 4, 7, 1));
        assert_ne!(p1, epoch_plan(&lengths, 4, 8, 0));
        let mut all: Vec<usize> = p1.iter().flatten().copied().collect();
        all.sort();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert_eq!(p1.len(), 25);
        // Within each window the lengths are sorted.
        for w in p1.chunks(WINDOW_BATCHES) {
            let l: Vec<usize> = w.iter().flatten().map(|&i| lengths[i]).collect();
            assert!(l.windows(2).all(|p| p[0] <= p[1]), "{l:?}");
        }
    }

    #[test]
    fn grouped_plans_never_mix_groups() {
        let lengths: Vec<usize> = (0..60).map(|i| (i * 13) % 17 + 2).collect();
        let groups: Vec<usize> = (0..60).map(|i| i % 3).collect();
        let plan = grouped_epoch_plan(&lengths, &groups, 4, 1, 0);
        assert_eq!(plan, grouped_epoch_plan(&lengths, &groups, 4, 1, 0));
        for b in &plan {
            assert!(b.iter().all(|&i| groups[i] == groups[b[0]]), "{b:?}");
        }
        let mut all: Vec<usize> = plan.iter().flatten().copied().collect();
        all.sort();
        assert_eq!(all, (0..60).collect::<Vec<_>>());
        let one = vec![0; 60];
        assert_eq!(
            grouped_epoch_plan(&lengths, &one, 4, 1, 0),
            epoch_plan(&lengths, 4, 1, 0)
        );
    }

    #[test]
    fn bad_examples_are_refused() {
        let no_prompt = ex(&[1, 2], 0);
        let no_answer = ex(&[1, 2], 2);
        assert!(make_batch(&[&no_prompt], 0, &Device::Cpu).is_err());
        assert!(make_batch(&[&no_answer], 0, &Device::Cpu).is_err());
        assert!(make_batch(&[], 0, &Device::Cpu).is_err());
    }
}
