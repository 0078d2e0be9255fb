//! Loading a Hugging Face model folder: `config.json`, one or many `*.safetensors` (with or
//! without `model.safetensors.index.json`); bf16/f16 weights are converted to f32.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use crate::config::Config;
use crate::error::{ModelError, Result};
use crate::llama::Model;

/// The safetensors files of a folder: those named by `model.safetensors.index.json` when it
/// exists, otherwise every `*.safetensors` (sorted).
pub fn safetensors_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let text = std::fs::read_to_string(&index).map_err(|e| ModelError::io(&index, e))?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| ModelError::malformed(index.display().to_string(), e))?;
        let map = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| ModelError::Format(format!("{}: no weight_map", index.display())))?;
        let files: BTreeSet<String> = map
            .values()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        let mut out = Vec::new();
        for f in files {
            let p = dir.join(&f);
            if !p.is_file() {
                return Err(ModelError::Format(format!(
                    "{} names {f}, which is missing",
                    index.display()
                )));
            }
            out.push(p);
        }
        return Ok(out);
    }
    let entries = std::fs::read_dir(dir).map_err(|e| ModelError::io(dir, e))?;
    let mut out = Vec::new();
    for e in entries {
        let e = e.map_err(|err| ModelError::io(dir, err))?;
        let p = e.path();
        if p.extension().and_then(|x| x.to_str()) == Some("safetensors") {
            out.push(p);
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(ModelError::Format(format!(
            "{}: no *.safetensors weights in the folder",
            dir.display()
        )));
    }
    Ok(out)
}

/// Reads all weights of a folder as f32.
pub fn load_tensors(dir: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    let mut all = HashMap::new();
    for file in safetensors_files(dir)? {
        let tensors = candle_core::safetensors::load(&file, device)
            .map_err(|e| ModelError::malformed(file.display().to_string(), e))?;
        for (name, t) in tensors {
            let t = if t.dtype() == DType::F32 {
                t
            } else {
                t.to_dtype(DType::F32)?
            };
            all.insert(name, t);
        }
    }
    Ok(all)
}

/// Loads `config.json` and the weights of a Hugging Face folder (tokenizer handled by
/// [`crate::load`]).
pub fn load_model(dir: &Path, device: &Device) -> Result<(Config, Model)> {
    let config_path = dir.join("config.json");
    if !config_path.is_file() {
        return Err(ModelError::Format(format!(
            "{}: no config.json (expected a Hugging Face model folder or a .gguf file)",
            dir.display()
        )));
    }
    let cfg = Config::from_hf_json(&config_path)?;
    let tensors = load_tensors(dir, device)?;
    let vb = VarBuilder::from_tensors(tensors, DType::F32, device);
    let model =
        Model::load(vb, &cfg).map_err(|e| ModelError::malformed(dir.display().to_string(), e))?;
    Ok((cfg, model))
}
