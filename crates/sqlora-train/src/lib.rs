//! sqlora-train: fits a LoRA adapter on a frozen base model.
//!
//! * [`config`]: [`TrainConfig`], the hyper-parameters, from TOML.
//! * [`batch`]: examples → token ids with a loss mask on the answer only, length-bucketed
//!   right-padded micro-batches.
//! * [`loss`]: answer-token cross-entropy through the adapter.
//! * [`optim`]: AdamW over the LoRA variables, gradient clipping, the learning-rate schedule.
//! * [`trainer`]: the loop, metrics, checkpoints, resume, the final PEFT adapter.

pub mod alloc;
pub mod batch;
pub mod config;
pub mod error;
pub mod forward;
pub mod loss;
pub mod memory;
pub mod optim;
pub mod plot;
pub mod trainer;

pub use config::{Schedule, TrainConfig};
pub use error::{Result, TrainError};
