//! The engine's view of the model's per-row forward pass ([`sqlora_model::rows`]): rows that
//! each own their key/value cache, so rows join, leave and fork a cached prefix without
//! padding. The decoder itself is the model crate's; this module adds the positional range the
//! scheduler checks prompts against and maps errors into [`ServeError`].

use candle_core::Device;
use sqlora_model::config::Config;
use sqlora_model::llama::Model;
use sqlora_model::lora::AdapterBatch;
pub use sqlora_model::rows::{Feed, RowKv};

use crate::error::Result;

/// The model's positional range. The rotary tables themselves are the model's own
/// ([`Model::rope`]), gathered per step for the rows' positions.
#[derive(Debug, Clone)]
pub struct Rope {
    max_positions: usize,
}

impl Rope {
    /// The range of `cfg` (the device is where the model lives; kept for the signature).
    pub fn new(cfg: &Config, _device: &Device) -> Result<Rope> {
        Ok(Rope {
            max_positions: cfg.max_position_embeddings,
        })
    }

    /// Positions the model can address.
    pub fn max_positions(&self) -> usize {
        self.max_positions
    }
}

/// Runs the model over each row's new tokens (see [`sqlora_model::rows::step`]) and returns
/// each row's logits after its last new token.
pub fn step(
    model: &Model,
    _rope: &Rope,
    feeds: &mut [Feed<'_>],
    adapters: Option<&AdapterBatch>,
) -> Result<Vec<Vec<f32>>> {
    Ok(sqlora_model::rows::step(model, feeds, adapters)?)
}
