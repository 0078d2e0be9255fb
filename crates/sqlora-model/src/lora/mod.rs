//! LoRA adapters on the decoder's projections: `W = W0 + scale·B·A`, with A `[r, in]` and
//! B `[out, r]`, scale `alpha / r` (or `alpha / √r` with rsLoRA).
//!
//! * [`LoraConfig`] chooses the target modules by name exactly like Hugging Face PEFT (a list
//!   matches a module path by equality or by suffix after a dot, a string is a full-match regex,
//!   `"all-linear"` means every projection), with per-module rank and alpha overrides
//!   (`rank_pattern` / `alpha_pattern`) and optional `layers_to_transform`.
//! * [`LoraAdapter`] holds one adapter's A and B per module. [`LoraAdapter::init`] makes a
//!   trainable one (A Kaiming-uniform, B zero, both candle [`Var`](candle_core::Var)s; the base weights stay plain
//!   tensors, so backprop yields gradients for A and B only).
//! * [`AdapterSet`] keeps several adapters resident. Per target module it stacks their A as
//!   `[slots, in, r_max]` and `scale·B` as `[slots, r_max, out]` (zero padded, slot 0 = no
//!   adapter); an [`AdapterBatch`] names each row's slot and computes the LoRA term of a whole
//!   mixed batch with one `index_select` and two batched matmuls (the BGMV idea of
//!   Punica / S-LoRA), never by looping over adapters or swapping weights.
//! * [`merge_adapter`] / [`unmerge_adapter`] fold an adapter into the base weights and back.
//! * [`AdapterSummary`]: what `sqlora adapter inspect` prints.
//!
//! The code is split by job: `config` holds [`LoraConfig`] and PEFT-style targeting,
//! `adapter` one adapter ([`LoraAdapter`], [`LoraModule`], [`AdapterSummary`], DyLoRA's
//! [`LoraAdapter::truncate_rank`]), `set` the multi-adapter gather ([`AdapterSet`],
//! [`AdapterBatch`]) and `merge` folding an adapter into the base weights.

use std::path::PathBuf;

use crate::error::ModelError;

mod adapter;
mod config;
mod merge;
mod set;

pub use adapter::{targeted_linears, AdapterSummary, LoraAdapter, LoraModule};
pub use config::{LoraConfig, TargetModules};
pub use merge::{merge_adapter, merged_weight, unmerge_adapter, unmerged_weight};
pub use set::{AdapterBatch, AdapterId, AdapterSet};

/// The projection names of a Llama/Qwen2 decoder layer that can carry an adapter.
pub const PROJECTIONS: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

/// Everything that can go wrong with an adapter.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    /// The adapter uses a feature sqlora cannot apply (DoRA, `modules_to_save`, ...).
    #[error("unsupported adapter: {0}")]
    Unsupported(String),
    /// The adapter does not fit the base model (unknown module, shape, nothing matched).
    #[error("adapter does not fit the base model: {0}")]
    Mismatch(String),
    /// The adapter files or values are malformed.
    #[error("invalid adapter: {0}")]
    Invalid(String),
    /// Reading or writing a file failed.
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A tensor operation failed.
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
}

impl AdapterError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        AdapterError::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<AdapterError> for ModelError {
    fn from(e: AdapterError) -> Self {
        match e {
            AdapterError::Candle(c) => ModelError::Candle(c),
            AdapterError::Io { path, source } => ModelError::Io { path, source },
            AdapterError::Unsupported(m) => ModelError::Unsupported(format!("adapter: {m}")),
            other => ModelError::Format(other.to_string()),
        }
    }
}

/// Results of this module.
pub type Result<T> = std::result::Result<T, AdapterError>;
