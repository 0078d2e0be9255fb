//! How much memory a run's training steps need, estimated before the first step, so a run that
//! would not fit without activation checkpointing gets it switched on instead of being killed by
//! the kernel's OOM killer at step 1 (session 13: the 1.5B with retrieved examples in its prompts
//! passed 22 GB without checkpointing), and a run that may not fit even so is warned with the
//! numbers and what to change.
//!
//! The estimate counts the f32 tensors that candle's autograd keeps for one decoder layer of
//! [`crate::forward`]'s shared-prefix pass (the norms, the seven projections with their LoRA
//! terms and dropout masks, the rotary embedding, the attention scores of every row over prefix
//! and suffix, the MLP), per computed token, plus the answer positions' logits, the layer
//! inputs kept for the backward pass and the frozen-layer cache. Without checkpointing every
//! adapted layer's graph is alive at the backward pass; with it, one at a time. The counts
//! follow the code (`sqlora_model::llama::DecoderLayer`, `attention`, `apply_rope`,
//! `RmsNorm` with gradients); [`BACKWARD_FACTOR`] covers the gradients alive while a graph is
//! back-propagated. The estimate is checked against the measured peak in BENCHMARKS.md
//! (`train_bench` prints both).
//!
//! It covers what the steps add to the loaded model. [`available_bytes`] is read after the
//! model is loaded, so the model itself is already out of it.

use std::path::Path;

use sqlora_model::config::Config;
use sqlora_model::llama::{Linear, Model, Proj};

use crate::batch::{grouped_epoch_plan, TokenizedExample};
use crate::config::TrainConfig;
use crate::forward::shared_prefix_len;

/// A layer graph while it is back-propagated: the graph plus the gradients alive at once,
/// fitted to the measured peaks (BENCHMARKS.md, session 14: about 3 graphs of gradients).
pub const BACKWARD_FACTOR: f64 = 4.0;
/// The counted tensors against a layer graph's measured size: candle keeps a little more than
/// the operations above name (up to 1.4× on SmolLM2 with 16 rows, 1.02× on the 0.5B).
pub const GRAPH_SLACK: f64 = 1.4;
/// The share of the available memory a run may plan to use (the rest: the allocator's slack,
/// the evaluation hooks, other processes' growth).
pub const USABLE_SHARE: f64 = 0.85;

/// The shape of a micro-batch that decides its memory (see [`crate::forward::PrefixBatch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchShape {
    /// Rows B.
    pub rows: usize,
    /// The shared prefix P, computed once.
    pub prefix_len: usize,
    /// The padded suffix S of every row.
    pub suffix_len: usize,
    /// Answer tokens: the positions that go through the vocabulary projection.
    pub answer_tokens: usize,
}

impl BatchShape {
    /// The shape `make_prefix_batch` gives `examples` (a micro-batch of one group).
    pub fn of(examples: &[&TokenizedExample]) -> BatchShape {
        let p = shared_prefix_len(examples);
        BatchShape {
            rows: examples.len(),
            prefix_len: p,
            suffix_len: examples
                .iter()
                .map(|e| e.len().saturating_sub(p))
                .max()
                .unwrap_or(0),
            answer_tokens: examples
                .iter()
                .map(|e| e.len().saturating_sub(e.answer_start))
                .sum(),
        }
    }

    /// Tokens the layers run: the prefix once and every row's padded suffix.
    pub fn computed_tokens(&self) -> usize {
        self.prefix_len + self.rows * self.suffix_len
    }
}

/// What a training step holds at its peak beyond the loaded model, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StepMemory {
    /// One adapted layer's autograd graph for the micro-batch.
    pub layer_graph: u64,
    /// Graphs alive at once: every adapted layer's without checkpointing, else one.
    pub graphs: u64,
    /// Layer inputs kept for the backward pass (checkpointing).
    pub saved_inputs: u64,
    /// The answer positions' logits, log-softmax and gradients.
    pub head: u64,
    /// The frozen-layer cache at its fullest.
    pub frozen_cache: u64,
    /// f32 copies of quantized weights the first step makes and keeps.
    pub dequantized: u64,
    /// Adapter values, gradients, AdamW moments and the best step's copy.
    pub adapter: u64,
    /// The peak: kept state plus the larger of the head and the layers' backward.
    pub total: u64,
}

/// Floats a decoder layer's graph keeps per computed token, and per row for attention.
fn layer_floats(cfg: &Config, shape: &BatchShape, dropout: bool) -> f64 {
    let h = cfg.hidden_size as f64;
    let kv = (cfg.num_key_value_heads * cfg.head_dim) as f64;
    let inter = cfg.intermediate_size as f64;
    let d = if dropout { 2.0 } else { 0.0 };
    // Per token: two norms (3h each); q (projection, LoRA terms, head split, rope: 9.5h), k
    // (9.5kv), v (5kv); attention's scaled q, output and its transpose (3h); o with the
    // residual (5h); gate, silu, up, product, down and the residual (10·inter + 5h); each
    // adapted projection's dropout mask and masked input (2 × its input).
    let per_token = 28.5 * h + 14.5 * kv + 10.0 * inter + d * (6.0 * h + inter);
    let (b, p, s) = (
        shape.rows as f64,
        shape.prefix_len as f64,
        shape.suffix_len as f64,
    );
    let heads = cfg.num_attention_heads as f64;
    // Scores, masked, shifted, exponentiated, normalised: 5 copies of [B, heads, S, P + S]
    // for the suffixes and of [1, heads, P, P] for the prefix; the prefix keys and values
    // concatenated into every row (2 × [B, P + S, kv]).
    let attention = 5.0 * heads * (b * s * (p + s) + p * p) + 2.0 * b * (p + s) * kv;
    per_token * shape.computed_tokens() as f64 + attention
}

/// What a run holds besides a step's activations, and what decides their size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Resident {
    /// The lowest adapted layer: the backward pass runs from the top down to it.
    pub lowest: usize,
    /// Dropout on the adapter input (a mask and a masked copy per adapted projection).
    pub dropout: bool,
    /// Trainable values.
    pub adapter_params: usize,
    /// Bytes of the frozen-layer cache at its fullest (below `lowest` only).
    pub frozen_cache: u64,
    /// Bytes of f32 weights the first step dequantizes and keeps: a model loaded with
    /// quantized blocks multiplies the adapted layers and the head in f32 for the gradients.
    pub dequantized: u64,
}

/// The peak memory of a step on a micro-batch of `shape` for a model `cfg`, with `resident`.
pub fn step_memory(
    cfg: &Config,
    shape: &BatchShape,
    resident: &Resident,
    checkpointing: bool,
) -> StepMemory {
    let f = 4.0; // bytes per f32
    let layers = cfg.num_hidden_layers.saturating_sub(resident.lowest) as f64;
    let layer_graph = layer_floats(cfg, shape, resident.dropout) * f * GRAPH_SLACK;
    let backward = layer_graph * BACKWARD_FACTOR;
    let graphs = if checkpointing {
        backward
    } else {
        layer_graph * (layers - 1.0).max(0.0) + backward
    };
    let saved_inputs = if checkpointing {
        layers * (shape.computed_tokens() * cfg.hidden_size) as f64 * f
    } else {
        0.0
    };
    // Logits, shifted, exp, log-softmax, and two gradients of [A, vocab]; the final norm.
    let head = 6.0 * (shape.answer_tokens * cfg.vocab_size) as f64 * f
        + 3.0 * (shape.rows * shape.suffix_len * cfg.hidden_size) as f64 * f;
    let frozen = if resident.lowest > 0 {
        resident.frozen_cache as f64
    } else {
        0.0
    };
    let adapter = 6.0 * resident.adapter_params as f64 * f;
    let kept = saved_inputs + frozen + adapter + resident.dequantized as f64;
    // The peak is the head or the top layer's backward pass, whichever holds more; without
    // checkpointing every adapted layer's graph is alive during both.
    let alive_at_head = if checkpointing {
        0.0
    } else {
        layer_graph * layers
    };
    let peak = kept + graphs.max(alive_at_head + head);
    StepMemory {
        layer_graph: layer_graph as u64,
        graphs: graphs as u64,
        saved_inputs: saved_inputs as u64,
        head: head as u64,
        frozen_cache: frozen as u64,
        dequantized: resident.dequantized,
        adapter: adapter as u64,
        total: peak as u64,
    }
}

/// Bytes of f32 weight copies the first step makes and keeps: a projection held as quantized
/// blocks is dequantized once a product through it tracks gradients (`Linear::weight`), which
/// is every projection of the layers from `lowest` up, and the head.
pub fn dequantized_bytes(model: &Model, lowest: usize) -> u64 {
    let pending = |lin: &Linear| {
        if lin.has_dense_weight() {
            0
        } else {
            (lin.out_features() * lin.in_features() * 4) as u64
        }
    };
    let layers = model.layers();
    layers[lowest.min(layers.len())..]
        .iter()
        .flat_map(|l| Proj::ALL.map(|p| l.linear(p)))
        .chain([model.lm_head()])
        .map(pending)
        .sum()
}

/// The largest step of a run, both ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunMemory {
    /// The micro-batch with the largest estimate.
    pub largest: BatchShape,
    /// Its peak without activation checkpointing.
    pub plain: StepMemory,
    /// Its peak with checkpointing.
    pub checkpointed: StepMemory,
}

/// The estimate for `config`'s run over `examples` (`groups` as in
/// [`crate::trainer::TrainData`]): the largest micro-batch of the first two epochs' plans.
/// `resident.frozen_cache` is the cache's cap; the estimate holds what the data fills of it.
pub fn run_memory(
    cfg: &Config,
    config: &TrainConfig,
    examples: &[TokenizedExample],
    groups: &[usize],
    resident: Resident,
) -> RunMemory {
    let lengths: Vec<usize> = examples.iter().map(|e| e.len()).collect();
    // The cache holds every row's hidden states below the lowest adapted layer, up to its cap.
    let cached: u64 = (lengths.iter().sum::<usize>() * cfg.hidden_size * 4) as u64;
    let resident = Resident {
        frozen_cache: cached.min(resident.frozen_cache),
        ..resident
    };
    let mut best: Option<RunMemory> = None;
    for epoch in 0..config.epochs.clamp(1, 2) as u64 {
        for idx in grouped_epoch_plan(&lengths, groups, config.micro_batch, config.seed, epoch) {
            let rows: Vec<&TokenizedExample> = idx.iter().map(|&i| &examples[i]).collect();
            let shape = BatchShape::of(&rows);
            let plain = step_memory(cfg, &shape, &resident, false);
            if best.is_none_or(|b| plain.total > b.plain.total) {
                best = Some(RunMemory {
                    largest: shape,
                    plain,
                    checkpointed: step_memory(cfg, &shape, &resident, true),
                });
            }
        }
    }
    best.unwrap_or(RunMemory {
        largest: BatchShape::default(),
        plain: StepMemory::default(),
        checkpointed: StepMemory::default(),
    })
}

/// What to do about a run's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryPlan {
    /// Run with activation checkpointing.
    pub checkpointing: bool,
    /// Checkpointing was off in the config and is switched on: the run would not fit without
    /// it (the same numbers, about a quarter more compute).
    pub switched: bool,
    /// Even with checkpointing the estimate is above what can be planned for. The estimate is
    /// an upper bound (above the measured peak by up to ~40%), so the run goes ahead, warned.
    pub over_budget: bool,
}

/// Whether `run` fits in `available` bytes (of which [`USABLE_SHARE`] is planned for) with
/// `checkpointing` as configured: checkpointing is switched on when the run would not fit
/// without it, and a run that may not fit even so is flagged rather than refused, because the
/// estimate errs high.
pub fn choose(run: &RunMemory, checkpointing: bool, available: u64) -> MemoryPlan {
    let usable = (available as f64 * USABLE_SHARE) as u64;
    let plain_fits = run.plain.total <= usable;
    let on = checkpointing || !plain_fits;
    MemoryPlan {
        checkpointing: on,
        switched: on && !checkpointing,
        over_budget: on && run.checkpointed.total > usable,
    }
}

/// A warning for a run whose estimate is above `available` even with checkpointing: the
/// largest micro-batch and what to change if the run is killed.
pub fn over_budget_warning(run: &RunMemory, available: u64) -> String {
    let s = run.largest;
    format!(
        "warning: the largest micro-batch ({} rows, a shared prefix of {} tokens, {} tokens a row \
         after it, {} answer tokens) may need up to {} with activation checkpointing, above the \
         {} of the {} available that can be planned for. If the run is killed for memory, lower \
         micro_batch (raise grad_accum to keep the step) or max_seq_len, or adapt fewer layers \
         (layers_to_transform).",
        s.rows,
        s.prefix_len,
        s.suffix_len,
        s.answer_tokens,
        gb(run.checkpointed.total),
        gb((available as f64 * USABLE_SHARE) as u64),
        gb(available)
    )
}

/// `bytes` as gigabytes for messages, e.g. `3.2 GB`.
pub fn gb(bytes: u64) -> String {
    format!("{:.1} GB", bytes as f64 / 1e9)
}

/// The memory this process can still use: the kernel's `MemAvailable`, or what the cgroup's
/// `memory.max` leaves, whichever is smaller. `None` where neither can be read.
pub fn available_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
    let system = meminfo.as_deref().and_then(mem_available);
    let cgroup = cgroup_left(Path::new("/sys/fs/cgroup"));
    match (system, cgroup) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// `MemAvailable` of a `/proc/meminfo` text, in bytes.
fn mem_available(meminfo: &str) -> Option<u64> {
    meminfo.lines().find_map(|l| {
        let rest = l.strip_prefix("MemAvailable:")?;
        let kb: u64 = rest.trim().strip_suffix("kB")?.trim().parse().ok()?;
        Some(kb * 1024)
    })
}

/// `memory.max − memory.current` of the cgroup (v2) mounted at `root`; `None` when unlimited
/// or unreadable.
fn cgroup_left(root: &Path) -> Option<u64> {
    let read = |f: &str| std::fs::read_to_string(root.join(f)).ok();
    let max: u64 = read("memory.max")?.trim().parse().ok()?;
    let current: u64 = read("memory.current")?.trim().parse().ok()?;
    Some(max.saturating_sub(current))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlora_model::config::Arch;

    /// Qwen2.5-Coder-1.5B's shapes.
    fn qwen15() -> Config {
        Config {
            arch: Arch::Qwen2,
            vocab_size: 151_936,
            hidden_size: 1536,
            intermediate_size: 8960,
            num_hidden_layers: 28,
            num_attention_heads: 12,
            num_key_value_heads: 2,
            head_dim: 128,
            rope_theta: 1e6,
            rms_norm_eps: 1e-6,
            max_position_embeddings: 32_768,
            tie_word_embeddings: true,
            attention_bias: true,
            rope_scaling: None,
        }
    }

    fn example(prefix: &[u32], own: usize, answer: usize) -> TokenizedExample {
        let mut ids = prefix.to_vec();
        ids.extend((0..own + answer).map(|i| 1000 + i as u32));
        TokenizedExample {
            answer_start: prefix.len() + own,
            ids,
        }
    }

    #[test]
    fn a_batch_shape_is_the_one_the_pass_builds() {
        let prefix: Vec<u32> = (0..50).collect();
        let a = example(&prefix, 10, 5);
        let mut b = example(&prefix, 20, 7);
        b.ids[60] = 7; // differs after the prefix anyway
        let shape = BatchShape::of(&[&a, &b]);
        assert_eq!(shape.rows, 2);
        // The two rows agree on the prefix and on the first ten tokens after it, but the
        // shared part stops before the first answer position.
        assert_eq!(shape.prefix_len, 59);
        assert_eq!(shape.suffix_len, 77 - 59);
        assert_eq!(shape.answer_tokens, 5 + 7);
        assert_eq!(shape.computed_tokens(), 59 + 2 * 18);
    }

    #[test]
    fn checkpointing_needs_less_and_more_rows_need_more() {
        let cfg = qwen15();
        let shape = |rows| BatchShape {
            rows,
            prefix_len: 690,
            suffix_len: 230,
            answer_tokens: rows * 40,
        };
        let top8 = Resident {
            lowest: 20,
            dropout: true,
            adapter_params: 4_000_000,
            ..Resident::default()
        };
        let est = |rows, ckpt| step_memory(&cfg, &shape(rows), &top8, ckpt);
        assert!(est(8, true).total < est(8, false).total / 2);
        assert!(est(4, false).total < est(8, false).total);
        assert!(est(4, true).total < est(8, true).total);
        // Adapting every layer keeps more graphs alive than adapting the top eight.
        let all = step_memory(&cfg, &shape(8), &Resident { lowest: 0, ..top8 }, false);
        assert!(all.total > 2 * est(8, false).total);
    }

    #[test]
    fn the_run_that_was_oom_killed_would_have_been_switched_to_checkpointing() {
        // Session 13's hr run: 8 rows a micro-batch of prompts with 3 retrieved examples
        // (~690 shared schema tokens, ~230 of each row's own), layers 20–27 adapted, the
        // 1.5B's weights dequantized for them (~2.5 GB with the head): it passed 22 GB without
        // checkpointing and was killed at step 2; checkpointed, it trained.
        let cfg = qwen15();
        let shape = BatchShape {
            rows: 8,
            prefix_len: 690,
            suffix_len: 230,
            answer_tokens: 320,
        };
        let resident = Resident {
            lowest: 20,
            dropout: true,
            adapter_params: 4_400_000,
            frozen_cache: 2 << 30,
            dequantized: 2_500_000_000,
        };
        let run = RunMemory {
            largest: shape,
            plain: step_memory(&cfg, &shape, &resident, false),
            checkpointed: step_memory(&cfg, &shape, &resident, true),
        };
        // What this machine's 24 GB leave with the model loaded (the `train` run said 21.3 GB).
        let available = 21_300_000_000;
        assert!(run.plain.total > available, "{run:?}");
        assert!(
            run.checkpointed.total < (available as f64 * USABLE_SHARE) as u64,
            "{run:?}"
        );
        let plan = choose(&run, false, available);
        assert!(
            plan.checkpointing && plan.switched && !plan.over_budget,
            "{plan:?}"
        );
        let plan = choose(&run, true, available);
        assert!(
            plan.checkpointing && !plan.switched && !plan.over_budget,
            "{plan:?}"
        );
        // Far too little: flagged, with the numbers and what to change, but not refused.
        let plan = choose(&run, true, 1_000_000_000);
        assert!(plan.checkpointing && plan.over_budget, "{plan:?}");
        let warning = over_budget_warning(&run, 1_000_000_000);
        assert!(
            warning.contains("8 rows") && warning.contains("micro_batch"),
            "{warning}"
        );
        // Plenty: as configured.
        let plan = choose(&run, false, 200_000_000_000);
        assert!(
            !plan.checkpointing && !plan.switched && !plan.over_budget,
            "{plan:?}"
        );
    }

    #[test]
    fn available_memory_is_read_from_meminfo_and_the_cgroup() {
        let text = "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   20000000 kB\n";
        assert_eq!(mem_available(text), Some(20_000_000 * 1024));
        assert_eq!(mem_available("MemTotal: 1 kB\n"), None);
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(cgroup_left(dir.path()), None);
        std::fs::write(dir.path().join("memory.max"), "max\n").unwrap();
        std::fs::write(dir.path().join("memory.current"), "100\n").unwrap();
        assert_eq!(cgroup_left(dir.path()), None, "unlimited");
        std::fs::write(dir.path().join("memory.max"), "1000\n").unwrap();
        assert_eq!(cgroup_left(dir.path()), Some(900));
        assert!(available_bytes().is_some_and(|b| b > 0));
    }
}
