//! Loading a GGUF file (llama.cpp's format): every tensor is dequantized to f32 at load, renamed
//! to its Hugging Face name, and the llama.cpp row permutation of `q_proj`/`k_proj` is undone so
//! the Hugging Face rotate-half rope (and PEFT adapters) apply unchanged.
//!
//! On the CPU the projections and the vocabulary head also keep their Q4_1/Q8_0 blocks
//! ([`crate::quant::QWeight`]) for fast few-row inference, unless `SQLORA_NO_QUANT=1`.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::Path;

use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use crate::config::{Arch, Config, RopeScaling};
use crate::error::{ModelError, Result};
use crate::llama::Model;
use crate::quant::{QFormat, QWeight};

/// Reads the GGUF header and metadata (no tensor data).
pub fn read_content(path: &Path) -> Result<Content> {
    let file = File::open(path).map_err(|e| ModelError::io(path, e))?;
    let mut reader = BufReader::new(file);
    Content::read(&mut reader).map_err(|e| {
        ModelError::malformed(format!("{}: not a readable GGUF file", path.display()), e)
    })
}

/// Maps a llama.cpp tensor name to its Hugging Face name (`None` for tensors the model does
/// not use, e.g. `rope_freqs.weight`).
pub fn hf_name(gguf_name: &str) -> Option<String> {
    let fixed = match gguf_name {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some(f.to_string());
    }
    let rest = gguf_name.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (module, kind) = rest.rsplit_once('.')?;
    let hf = match module {
        "attn_norm" => "input_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}.{kind}"))
}

/// Undoes llama.cpp's `permute(w, n_head)` on the rows of a q/k projection weight `[out, in]`
/// (or bias `[out]`): `w.reshape(n_head, out/n_head/2, 2, in).swapaxes(1, 2).reshape(out, in)`.
pub fn reverse_permute(w: &Tensor, n_head: usize) -> Result<Tensor> {
    let dims = w.dims().to_vec();
    let out = dims.first().copied().unwrap_or(0);
    let inner: usize = dims.iter().skip(1).product();
    if out.checked_rem(2 * n_head) != Some(0) {
        return Err(ModelError::Format(format!(
            "cannot un-permute a tensor of shape {dims:?} over {n_head} heads"
        )));
    }
    let half = out / n_head / 2;
    Ok(w.reshape((n_head, half, 2, inner))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape(dims)?)
}

/// Reads every tensor of a GGUF file as f32 under its Hugging Face name.
pub fn load_tensors(
    path: &Path,
    content: &Content,
    cfg: &Config,
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    Ok(load_tensors_and_blocks(path, content, cfg, device, false)?.0)
}

/// Whether the user turned the quantized kernels off (`SQLORA_NO_QUANT=1`, for comparisons).
pub fn quant_disabled() -> bool {
    std::env::var("SQLORA_NO_QUANT").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// [`load_tensors`], plus (when `keep_blocks`, on the CPU) the 2-D Q4_1/Q8_0/Q5_0/Q4_K/Q6_K/F32
/// weights as [`QWeight`]s under the same names, rows un-permuted; a weight kept as blocks is
/// returned in the f32 map only as a zero-stride placeholder of its shape (no f32 copy).
pub fn load_tensors_and_blocks(
    path: &Path,
    content: &Content,
    cfg: &Config,
    device: &Device,
    keep_blocks: bool,
) -> Result<(HashMap<String, Tensor>, HashMap<String, QWeight>)> {
    let mut blocks = HashMap::new();
    let file = File::open(path).map_err(|e| ModelError::io(path, e))?;
    let mut reader = BufReader::new(file);
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    let mut out = HashMap::with_capacity(names.len());
    for name in names {
        let Some(hf) = hf_name(name) else { continue };
        let info = &content.tensor_infos[name];
        let format = match info.ggml_dtype {
            GgmlDType::Q4_1 => Some(QFormat::Q4_1),
            GgmlDType::Q8_0 => Some(QFormat::Q8_0),
            GgmlDType::Q5_0 => Some(QFormat::Q5_0),
            GgmlDType::Q4K => Some(QFormat::Q4_K),
            GgmlDType::Q6K => Some(QFormat::Q6_K),
            GgmlDType::F32 => Some(QFormat::F32),
            _ => None,
        };
        let malformed = |e: Box<dyn std::error::Error + Send + Sync>| {
            ModelError::malformed(format!("{}: tensor {name}", path.display()), e)
        };
        // Blocks stream from the file straight into their `QWeight` (no raw copy beside them).
        let mut block = match (format, info.shape.dims()) {
            (Some(f), &[rows, cols])
                if keep_blocks && device.is_cpu() && cols.is_multiple_of(f.block_len()) =>
            {
                let start = content.tensor_data_offset.saturating_add(info.offset);
                reader
                    .seek(SeekFrom::Start(start))
                    .map_err(|e| malformed(e.into()))?;
                let b = QWeight::read_from(f, rows, cols, &mut reader)
                    .map_err(|e| malformed(e.into()))?;
                Some(b)
            }
            _ => None,
        };
        // A weight kept as blocks gets a zero-stride placeholder of its shape instead of an f32
        // copy (the loader swaps the blocks in: `load_model`), so loading never holds the
        // whole model in f32.
        let mut t = match &block {
            Some(b) => Tensor::zeros((), DType::F32, device)?.broadcast_as((b.rows(), b.cols()))?,
            None => content
                .tensor(&mut reader, name, device)
                .map_err(|e| malformed(e.into()))?
                .dequantize(device)?
                .to_dtype(DType::F32)?,
        };
        if cfg.arch == Arch::Llama {
            let heads = if hf.contains(".self_attn.q_proj.") {
                Some(cfg.num_attention_heads)
            } else if hf.contains(".self_attn.k_proj.") {
                Some(cfg.num_key_value_heads)
            } else {
                None
            };
            if let Some(n_head) = heads {
                match block {
                    Some(b) => block = Some(b.reverse_permute(n_head)?),
                    None => t = reverse_permute(&t, n_head)?,
                }
            }
        }
        if let Some(b) = block {
            blocks.insert(hf.clone(), b);
        }
        out.insert(hf, t);
    }
    Ok((out, blocks))
}

/// Loads the architecture and weights of a GGUF file (tokenizer handled by [`crate::load`]).
pub fn load_model(path: &Path, content: &Content, device: &Device) -> Result<(Config, Model)> {
    let mut cfg = Config::from_gguf(content)?;
    if content.tensor_infos.contains_key("rope_freqs.weight") {
        // Llama 3.x files carry their rope scaling as per-frequency divisors.
        let file = File::open(path).map_err(|e| ModelError::io(path, e))?;
        let mut reader = BufReader::new(file);
        let factors: Vec<f32> = content
            .tensor(&mut reader, "rope_freqs.weight", device)?
            .dequantize(device)?
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1()?;
        cfg.rope_scaling = Some(RopeScaling::Factors(
            factors.into_iter().map(f64::from).collect(),
        ));
    }
    let (tensors, mut blocks) =
        load_tensors_and_blocks(path, content, &cfg, device, !quant_disabled())?;
    let vb = VarBuilder::from_tensors(tensors, DType::F32, device);
    let mut model = Model::load(vb, &cfg)?;
    for lin in model.linears_mut() {
        if let Some(b) = blocks.remove(&format!("{}.weight", lin.name())) {
            *lin = lin.clone().with_quant(b)?;
        }
    }
    // The embedding keeps only its blocks too (a tied head shares them).
    if let Some(b) = blocks.remove("model.embed_tokens.weight") {
        model.quantize_embeddings(b)?;
    }
    if let Some(b) = blocks.remove("lm_head.weight") {
        *model.lm_head_mut() = model.lm_head().clone().with_quant(b)?;
    }
    // Every weight loaded as a placeholder must have got its blocks.
    if let Some(name) = blocks.keys().next() {
        return Err(ModelError::Format(format!(
            "{}: quantized weight {name} has no place in the model",
            path.display()
        )));
    }
    Ok((cfg, model))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_hf() {
        assert_eq!(
            hf_name("blk.12.attn_q.weight").as_deref(),
            Some("model.layers.12.self_attn.q_proj.weight")
        );
        assert_eq!(
            hf_name("blk.0.ffn_down.weight").as_deref(),
            Some("model.layers.0.mlp.down_proj.weight")
        );
        assert_eq!(
            hf_name("blk.3.attn_k.bias").as_deref(),
            Some("model.layers.3.self_attn.k_proj.bias")
        );
        assert_eq!(hf_name("rope_freqs.weight"), None);
        assert_eq!(hf_name("blk.x.attn_q.weight"), None);
    }

    /// llama.cpp's forward permutation, written independently: row `r` of head `h` in the HF
    /// layout (`r < half` first halves, then second halves) goes to interleaved slot.
    fn permute(w: &[f32], n_head: usize, out: usize, inner: usize) -> Vec<f32> {
        let hd = out / n_head;
        let half = hd / 2;
        let mut res = vec![0.0; w.len()];
        for h in 0..n_head {
            for two in 0..2 {
                for i in 0..half {
                    let src = h * hd + two * half + i;
                    let dst = h * hd + i * 2 + two;
                    res[dst * inner..(dst + 1) * inner]
                        .copy_from_slice(&w[src * inner..(src + 1) * inner]);
                }
            }
        }
        res
    }

    #[test]
    fn reverse_permute_inverts_llama_cpp_permute() {
        let (n_head, out, inner) = (3, 12, 5);
        let hf: Vec<f32> = (0..out * inner).map(|x| x as f32).collect();
        let permuted = permute(&hf, n_head, out, inner);
        assert_ne!(permuted, hf);
        let t = Tensor::from_vec(permuted, (out, inner), &Device::Cpu).unwrap();
        let back = reverse_permute(&t, n_head).unwrap();
        assert_eq!(back.flatten_all().unwrap().to_vec1::<f32>().unwrap(), hf);
        assert!(reverse_permute(&t, 5).is_err());
    }
}
