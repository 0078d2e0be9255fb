//! Training hyper-parameters ([`TrainConfig`]), read from a TOML file (see `train.toml`).

use std::path::Path;

use serde::{Deserialize, Serialize};
use sqlora_model::lora::{LoraConfig, TargetModules};

use crate::error::{Result, TrainError};

/// How the learning rate decays after the warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// Half a cosine from the peak down to 0 at the last step.
    Cosine,
    /// A straight line from the peak down to 0 at the last step.
    Linear,
}

/// Every knob of a LoRA training run. Each field has a default (shown in brackets), so a TOML
/// file only names what it changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// LoRA rank r [8].
    pub rank: usize,
    /// LoRA alpha; the scale is alpha / r [16].
    pub alpha: f64,
    /// Scale alpha / sqrt(r) instead (rsLoRA) [false].
    pub use_rslora: bool,
    /// Dropout on the adapter input while training [0.05].
    pub dropout: f64,
    /// Projections that get an adapter: `q k v o gate up down` or full names like `q_proj`
    /// [all seven].
    pub target_modules: Vec<String>,
    /// Peak learning rate [2e-4].
    pub lr: f64,
    /// Optimizer steps of linear warm-up from 0 to `lr` [20].
    pub warmup_steps: usize,
    /// Decay after the warm-up [cosine].
    pub schedule: Schedule,
    /// Passes over the training set [2]; ignored when `max_steps` is set.
    pub epochs: usize,
    /// Stop after this many optimizer steps instead of counting epochs [unset].
    pub max_steps: Option<usize>,
    /// Sequences per forward pass [4].
    pub micro_batch: usize,
    /// Micro-batches per optimizer step [2].
    pub grad_accum: usize,
    /// Longest sequence in tokens; longer prompts lose tokens from their start [1024].
    pub max_seq_len: usize,
    /// Decoupled (AdamW) weight decay [0.0].
    pub weight_decay: f64,
    /// Clip the global gradient norm to this; 0 turns clipping off [1.0].
    pub grad_clip: f64,
    /// Seed of the adapter initialisation and of the data order [0].
    pub seed: u64,
    /// Optimizer steps between evaluations of the held-out loss [50].
    pub eval_interval: usize,
    /// Optimizer steps between checkpoints; 0 turns them off [100].
    pub save_interval: usize,
    /// Only these decoder layers get adapters (PEFT's `layers_to_transform`); the backward
    /// pass stops at the lowest of them, so adapting only the upper layers trains faster
    /// [unset: every layer].
    pub layers_to_transform: Option<Vec<usize>>,
    /// DyLoRA: each optimizer step trains a random rank b in `dylora_min_rank..=rank` (the
    /// first b rows of A and columns of B, scale alpha / b), so the adapter works truncated to
    /// any rank [false].
    pub dylora: bool,
    /// The smallest rank DyLoRA samples [1].
    pub dylora_min_rank: usize,
    /// Activation checkpointing: keep only each layer's input and recompute the adapted
    /// layers during the backward pass. Off keeps every adapted layer's activations instead:
    /// about a quarter less compute for several times the memory [true].
    pub checkpointing: bool,
    /// AdamW beta1 [0.9].
    pub beta1: f64,
    /// AdamW beta2 [0.999].
    pub beta2: f64,
    /// AdamW epsilon [1e-8].
    pub eps: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            rank: 8,
            alpha: 16.0,
            use_rslora: false,
            dropout: 0.05,
            target_modules: ["q", "k", "v", "o", "gate", "up", "down"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            lr: 2e-4,
            warmup_steps: 20,
            schedule: Schedule::Cosine,
            epochs: 2,
            max_steps: None,
            micro_batch: 4,
            grad_accum: 2,
            max_seq_len: 1024,
            weight_decay: 0.0,
            grad_clip: 1.0,
            seed: 0,
            eval_interval: 50,
            save_interval: 100,
            layers_to_transform: None,
            dylora: false,
            dylora_min_rank: 1,
            checkpointing: true,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

/// The short projection names and their module names.
const SHORT: [(&str, &str); 7] = [
    ("q", "q_proj"),
    ("k", "k_proj"),
    ("v", "v_proj"),
    ("o", "o_proj"),
    ("gate", "gate_proj"),
    ("up", "up_proj"),
    ("down", "down_proj"),
];

impl TrainConfig {
    /// Reads a TOML file; unknown keys and bad values are errors naming the file.
    pub fn from_toml_file(path: &Path) -> Result<TrainConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
        let cfg = TrainConfig::from_toml_str(&text)
            .map_err(|e| TrainError::Config(format!("{}: {e}", path.display())))?;
        Ok(cfg)
    }

    /// Parses TOML text and validates it.
    pub fn from_toml_str(text: &str) -> Result<TrainConfig> {
        let cfg: TrainConfig =
            toml::from_str(text).map_err(|e| TrainError::Config(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks that the values make sense together.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(TrainError::Config(m));
        if self.rank == 0 {
            return bad("rank must be at least 1".into());
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!("dropout must be in [0, 1), got {}", self.dropout));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("lr must be positive, got {}", self.lr));
        }
        if self.micro_batch == 0 || self.grad_accum == 0 {
            return bad("micro_batch and grad_accum must be at least 1".into());
        }
        if self.max_steps.is_none() && self.epochs == 0 {
            return bad("epochs must be at least 1 (or set max_steps)".into());
        }
        if self.max_steps == Some(0) {
            return bad("max_steps must be at least 1".into());
        }
        if self.max_seq_len < 2 {
            return bad("max_seq_len must be at least 2".into());
        }
        if !(self.weight_decay >= 0.0 && self.grad_clip >= 0.0) {
            return bad("weight_decay and grad_clip must not be negative".into());
        }
        if !((0.0..1.0).contains(&self.beta1) && (0.0..1.0).contains(&self.beta2) && self.eps > 0.0)
        {
            return bad("betas must be in [0, 1) and eps positive".into());
        }
        if self.dylora && !(1..=self.rank).contains(&self.dylora_min_rank) {
            return bad(format!(
                "dylora_min_rank must be in 1..={}, got {}",
                self.rank, self.dylora_min_rank
            ));
        }
        if self.target_modules.is_empty() {
            return bad("target_modules must name at least one projection".into());
        }
        self.module_names()?;
        Ok(())
    }

    /// `target_modules` as module names (`q` → `q_proj`).
    pub fn module_names(&self) -> Result<Vec<String>> {
        self.target_modules
            .iter()
            .map(|t| {
                SHORT
                    .iter()
                    .find(|(s, full)| t == s || t == full)
                    .map(|(_, full)| full.to_string())
                    .ok_or_else(|| {
                        TrainError::Config(format!(
                            "unknown target module {t:?} (use q, k, v, o, gate, up, down)"
                        ))
                    })
            })
            .collect()
    }

    /// The adapter's LoRA configuration.
    pub fn lora_config(&self) -> Result<LoraConfig> {
        let mut c = LoraConfig::new(self.rank, self.alpha, &[]);
        c.target_modules = TargetModules::Names(self.module_names()?);
        c.use_rslora = self.use_rslora;
        c.dropout = self.dropout;
        c.layers_to_transform = self.layers_to_transform.clone();
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_file_parses_and_equals_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("train.toml");
        let cfg = TrainConfig::from_toml_file(&path).unwrap();
        assert_eq!(cfg, TrainConfig::default());
    }

    #[test]
    fn partial_file_overrides_only_what_it_names() {
        let cfg =
            TrainConfig::from_toml_str("rank = 4\nschedule = \"linear\"\nmax_steps = 7\n").unwrap();
        assert_eq!(cfg.rank, 4);
        assert_eq!(cfg.schedule, Schedule::Linear);
        assert_eq!(cfg.max_steps, Some(7));
        assert_eq!(cfg.alpha, 16.0);
        let lora = cfg.lora_config().unwrap();
        assert_eq!(lora.r, 4);
        assert!(lora.targets("model.layers.0.mlp.down_proj").unwrap());
    }

    #[test]
    fn bad_values_are_refused() {
        for text in [
            "rank = 0",
            "dropout = 1.5",
            "schedule = \"step\"",
            "target_modules = [\"lm_head\"]",
            "unknown_key = 1",
            "micro_batch = 0",
        ] {
            assert!(
                matches!(TrainConfig::from_toml_str(text), Err(TrainError::Config(_))),
                "{text} was accepted"
            );
        }
    }
}
