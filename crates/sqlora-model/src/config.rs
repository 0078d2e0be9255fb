//! The architecture hyper-parameters shared by the Llama and Qwen2 families, read from a
//! Hugging Face `config.json` or from GGUF metadata.

use std::path::Path;

use candle_core::quantized::gguf_file;
use serde::Deserialize;

use crate::error::{ModelError, Result};

/// Which family of decoder-only transformer the weights belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// Llama (and SmolLM2, Mistral-like without sliding window): no projection biases.
    Llama,
    /// Qwen2: biases on the q/k/v projections.
    Qwen2,
}

impl Arch {
    /// The name used by `config.json`'s `model_type` and GGUF's `general.architecture`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
        }
    }

    /// Parses `model_type` / `general.architecture`.
    pub fn parse(name: &str) -> Result<Arch> {
        match name {
            "llama" => Ok(Arch::Llama),
            "qwen2" => Ok(Arch::Qwen2),
            other => Err(ModelError::Unsupported(format!(
                "model type {other:?} (supported: llama, qwen2)"
            ))),
        }
    }
}

/// Rotary-embedding frequency scaling (`rope_scaling` in `config.json`).
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// Positions divided by `factor`.
    Linear { factor: f64 },
    /// Per-frequency divisors (llama.cpp's `rope_freqs.weight`, one per rotated pair).
    Factors(Vec<f64>),
    /// Llama 3.x frequency-dependent scaling.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: usize,
    },
}

/// Hyper-parameters of a Llama/Qwen2 decoder.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub arch: Arch,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub rope_theta: f64,
    pub rms_norm_eps: f64,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    /// Biases on q/k/v (Qwen2 always; Llama when `attention_bias` is set, then also on o).
    pub attention_bias: bool,
    /// Optional rotary scaling; `None` for SmolLM2 and Qwen2.
    pub rope_scaling: Option<RopeScaling>,
}

#[derive(Deserialize)]
struct HfConfig {
    model_type: Option<String>,
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    rope_theta: Option<f64>,
    rms_norm_eps: Option<f64>,
    max_position_embeddings: Option<usize>,
    tie_word_embeddings: Option<bool>,
    attention_bias: Option<bool>,
    rope_scaling: Option<serde_json::Value>,
    /// transformers >= 5 writes `rope_theta` and the scaling here instead of at the top level.
    rope_parameters: Option<serde_json::Value>,
}

fn parse_rope_scaling(v: &serde_json::Value) -> Result<Option<RopeScaling>> {
    if v.is_null() {
        return Ok(None);
    }
    let kind = v
        .get("rope_type")
        .or_else(|| v.get("type"))
        .and_then(|t| t.as_str())
        .unwrap_or("default");
    let num = |k: &str| v.get(k).and_then(|x| x.as_f64());
    let missing = |k: &str| ModelError::Format(format!("rope_scaling ({kind}) lacks {k}"));
    match kind {
        "default" => Ok(None),
        "linear" => Ok(Some(RopeScaling::Linear {
            factor: num("factor").ok_or_else(|| missing("factor"))?,
        })),
        "llama3" => Ok(Some(RopeScaling::Llama3 {
            factor: num("factor").ok_or_else(|| missing("factor"))?,
            low_freq_factor: num("low_freq_factor").ok_or_else(|| missing("low_freq_factor"))?,
            high_freq_factor: num("high_freq_factor").ok_or_else(|| missing("high_freq_factor"))?,
            original_max_position_embeddings: num("original_max_position_embeddings")
                .ok_or_else(|| missing("original_max_position_embeddings"))?
                as usize,
        })),
        other => Err(ModelError::Unsupported(format!(
            "rope_scaling type {other:?} (supported: linear, llama3)"
        ))),
    }
}

impl Config {
    /// Reads a Hugging Face `config.json` (`model_type` llama or qwen2).
    pub fn from_hf_json(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
        Self::from_hf_json_str(&text).map_err(|e| match e {
            ModelError::Unsupported(m) => {
                ModelError::Unsupported(format!("{}: {m}", path.display()))
            }
            ModelError::Format(m) => ModelError::Format(format!("{}: {m}", path.display())),
            ModelError::Malformed { context, source } => ModelError::Malformed {
                context: format!("{}: {context}", path.display()),
                source,
            },
            other => other,
        })
    }

    /// Parses the text of a Hugging Face `config.json`.
    pub fn from_hf_json_str(text: &str) -> Result<Config> {
        let raw: HfConfig =
            serde_json::from_str(text).map_err(|e| ModelError::malformed("config.json", e))?;
        let arch = match raw.model_type.as_deref() {
            Some(t) => Arch::parse(t)?,
            None => {
                return Err(ModelError::Format(
                    "config.json has no model_type".to_string(),
                ))
            }
        };
        if raw.num_attention_heads == 0 {
            return Err(ModelError::Format("num_attention_heads is 0".to_string()));
        }
        let cfg = Config {
            arch,
            vocab_size: raw.vocab_size,
            hidden_size: raw.hidden_size,
            intermediate_size: raw.intermediate_size,
            num_hidden_layers: raw.num_hidden_layers,
            num_attention_heads: raw.num_attention_heads,
            num_key_value_heads: raw.num_key_value_heads.unwrap_or(raw.num_attention_heads),
            head_dim: raw
                .head_dim
                .unwrap_or(raw.hidden_size / raw.num_attention_heads),
            rope_theta: raw
                .rope_theta
                .or_else(|| {
                    raw.rope_parameters
                        .as_ref()
                        .and_then(|p| p.get("rope_theta"))
                        .and_then(|t| t.as_f64())
                })
                .unwrap_or(10_000.0),
            rms_norm_eps: raw.rms_norm_eps.unwrap_or(1e-6),
            max_position_embeddings: raw.max_position_embeddings.unwrap_or(4096),
            tie_word_embeddings: raw.tie_word_embeddings.unwrap_or(false),
            attention_bias: arch == Arch::Qwen2 || raw.attention_bias.unwrap_or(false),
            rope_scaling: match raw.rope_scaling.as_ref().or(raw.rope_parameters.as_ref()) {
                Some(v) => parse_rope_scaling(v)?,
                None => None,
            },
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads the hyper-parameters from GGUF metadata (`general.architecture` llama or qwen2).
    pub fn from_gguf(content: &gguf_file::Content) -> Result<Config> {
        let md = &content.metadata;
        let arch_name = md
            .get("general.architecture")
            .ok_or_else(|| ModelError::Format("GGUF lacks general.architecture".to_string()))?
            .to_string()?
            .clone();
        let arch = Arch::parse(&arch_name)?;
        let get = |key: &str| {
            md.get(&format!("{arch_name}.{key}"))
                .ok_or_else(|| ModelError::Format(format!("GGUF lacks {arch_name}.{key}")))
        };
        let opt = |key: &str| md.get(&format!("{arch_name}.{key}"));
        let hidden_size = get("embedding_length")?.to_u32()? as usize;
        let num_attention_heads = get("attention.head_count")?.to_u32()? as usize;
        if num_attention_heads == 0 {
            return Err(ModelError::Format("attention.head_count is 0".to_string()));
        }
        let num_key_value_heads = match opt("attention.head_count_kv") {
            Some(v) => v.to_u32()? as usize,
            None => num_attention_heads,
        };
        let head_dim = match opt("attention.key_length") {
            Some(v) => v.to_u32()? as usize,
            None => hidden_size / num_attention_heads,
        };
        let vocab_size = match opt("vocab_size") {
            Some(v) => v.to_u32()? as usize,
            None => md
                .get("tokenizer.ggml.tokens")
                .ok_or_else(|| ModelError::Format("GGUF lacks vocab size".to_string()))?
                .to_vec()?
                .len(),
        };
        let rope_theta = match opt("rope.freq_base") {
            Some(v) => v.to_f32()? as f64,
            None => 10_000.0,
        };
        let rms_norm_eps = match opt("attention.layer_norm_rms_epsilon") {
            Some(v) => v.to_f32()? as f64,
            None => 1e-5,
        };
        let max_position_embeddings = match opt("context_length") {
            Some(v) => v.to_u32()? as usize,
            None => 4096,
        };
        let tie_word_embeddings = !content.tensor_infos.contains_key("output.weight");
        let attention_bias =
            arch == Arch::Qwen2 || content.tensor_infos.contains_key("blk.0.attn_q.bias");
        let cfg = Config {
            arch,
            vocab_size,
            hidden_size,
            intermediate_size: get("feed_forward_length")?.to_u32()? as usize,
            num_hidden_layers: get("block_count")?.to_u32()? as usize,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            rope_theta,
            rms_norm_eps,
            max_position_embeddings,
            tie_word_embeddings,
            attention_bias,
            rope_scaling: None,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the numbers fit together (heads divide evenly, head_dim even, ...).
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(ModelError::Format(m));
        if self
            .num_attention_heads
            .checked_rem(self.num_key_value_heads)
            != Some(0)
        {
            return bad(format!(
                "{} attention heads are not a multiple of {} key/value heads",
                self.num_attention_heads, self.num_key_value_heads
            ));
        }
        if self.head_dim == 0 || self.head_dim & 1 == 1 {
            return bad(format!("head_dim {} must be even and > 0", self.head_dim));
        }
        if self.vocab_size == 0 || self.hidden_size == 0 || self.num_hidden_layers == 0 {
            return bad("vocab_size, hidden_size and num_hidden_layers must be > 0".to_string());
        }
        if self.max_position_embeddings == 0 {
            return bad("max_position_embeddings must be > 0".to_string());
        }
        Ok(())
    }

    /// Attention heads sharing one key/value head.
    pub fn num_kv_groups(&self) -> usize {
        self.num_attention_heads / self.num_key_value_heads
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hf_json_defaults_and_errors() {
        let base = r#"{"model_type":"llama","vocab_size":10,"hidden_size":8,"intermediate_size":16,
            "num_hidden_layers":2,"num_attention_heads":2}"#;
        let c = Config::from_hf_json_str(base).unwrap();
        assert_eq!(c.head_dim, 4);
        assert_eq!(c.num_key_value_heads, 2);
        assert!(!c.tie_word_embeddings);
        assert!(!c.attention_bias);
        let q = base.replace("llama", "qwen2");
        assert!(Config::from_hf_json_str(&q).unwrap().attention_bias);
        let g = base.replace("llama", "gpt2");
        assert!(matches!(
            Config::from_hf_json_str(&g),
            Err(ModelError::Unsupported(_))
        ));
        let kv = base.replace(
            "\"num_attention_heads\":2",
            "\"num_attention_heads\":2,\"num_key_value_heads\":3",
        );
        assert!(Config::from_hf_json_str(&kv).is_err());
        let scaled = base.replace(
            "\"num_attention_heads\":2",
            "\"num_attention_heads\":2,\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":2.0}",
        );
        assert!(matches!(
            Config::from_hf_json_str(&scaled),
            Err(ModelError::Unsupported(_))
        ));
    }

    /// transformers >= 5 nests rope_theta (and the scaling) under `rope_parameters`.
    #[test]
    fn rope_parameters_of_transformers_5() {
        let base = r#"{"model_type":"qwen2","vocab_size":10,"hidden_size":8,"intermediate_size":16,
            "num_hidden_layers":2,"num_attention_heads":2,
            "rope_parameters":{"rope_type":"default","rope_theta":1000000.0}}"#;
        let c = Config::from_hf_json_str(base).unwrap();
        assert_eq!(c.rope_theta, 1_000_000.0);
        assert!(c.rope_scaling.is_none());
        let lin = base.replace(
            r#"{"rope_type":"default","rope_theta":1000000.0}"#,
            r#"{"rope_type":"linear","factor":2.0,"rope_theta":500000.0}"#,
        );
        let c = Config::from_hf_json_str(&lin).unwrap();
        assert_eq!(c.rope_theta, 500_000.0);
        assert_eq!(c.rope_scaling, Some(RopeScaling::Linear { factor: 2.0 }));
        // The top-level key wins when both are present.
        let both = base.replace(
            r#""rope_parameters""#,
            r#""rope_theta":7.0,"rope_parameters""#,
        );
        assert_eq!(Config::from_hf_json_str(&both).unwrap().rope_theta, 7.0);
    }
}
