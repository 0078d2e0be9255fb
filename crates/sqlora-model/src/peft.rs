//! The Hugging Face PEFT adapter format, both ways: a folder with `adapter_config.json` and
//! `adapter_model.safetensors`, tensors named `base_model.model.<module path>.lora_A.weight`
//! (`[r, in]`) and `.lora_B.weight` (`[out, r]`).
//!
//! What sqlora cannot apply is refused with [`AdapterError::Unsupported`] naming the reason, never
//! ignored: DoRA, `modules_to_save`, embedding LoRA, `fan_in_fan_out`, biases, `lora_bias`,
//! initialisations that rewrite the base weights (PiSSA, OLoRA, CorDA, LoftQ,
//! LoRA-GA), `target_parameters`, trainable tokens, layer replication, aLoRA, QALoRA, other PEFT
//! types, pickled `.bin` weights.
//! An adapter that targets nothing in the base model, or whose shapes differ from it, is a
//! [`AdapterError::Mismatch`].
//!
//! Note: `rank_pattern` / `alpha_pattern` keys are tried in sorted order (PEFT tries them in the
//! order of the JSON object); this only matters when two patterns match the same module.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde_json::{json, Map, Value};

use crate::llama::Model;
use crate::lora::{AdapterError, AdapterSummary, LoraAdapter, LoraConfig, Result, TargetModules};

/// The config file of a PEFT adapter folder.
pub const CONFIG_FILE: &str = "adapter_config.json";
/// The weights file of a PEFT adapter folder.
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";
/// The prefix PEFT puts before module paths in tensor names.
pub const KEY_PREFIX: &str = "base_model.model.";

fn unsupported(msg: impl Into<String>) -> AdapterError {
    AdapterError::Unsupported(msg.into())
}

fn invalid(msg: impl Into<String>) -> AdapterError {
    AdapterError::Invalid(msg.into())
}

fn is_set(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    }
}

fn string_list(v: &Value, field: &str) -> Result<Vec<String>> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| invalid(format!("{field}: {x} is not a string")))
            })
            .collect(),
        other => Err(invalid(format!(
            "{field}: expected a string or a list, got {other}"
        ))),
    }
}

fn targets_from(v: &Value, field: &str) -> Result<TargetModules> {
    match v {
        Value::String(s) if s == "all-linear" => Ok(TargetModules::AllLinear),
        Value::String(s) => Ok(TargetModules::Regex(s.clone())),
        Value::Array(_) => Ok(TargetModules::Names(string_list(v, field)?)),
        other => Err(invalid(format!(
            "{field}: expected a string or a list, got {other}"
        ))),
    }
}

fn targets_to(t: &TargetModules) -> Value {
    match t {
        TargetModules::Names(n) => json!(n),
        TargetModules::Regex(r) => json!(r),
        TargetModules::AllLinear => json!("all-linear"),
    }
}

/// Reads a PEFT `LoraConfig` JSON object, refusing every option sqlora cannot apply.
pub fn config_from_json(v: &Value) -> Result<LoraConfig> {
    let obj = v
        .as_object()
        .ok_or_else(|| invalid("adapter_config.json is not a JSON object"))?;
    let get = |k: &str| obj.get(k);
    match get("peft_type").and_then(Value::as_str) {
        Some("LORA") => {}
        Some(other) => {
            return Err(unsupported(format!(
                "peft_type {other:?} (only LORA adapters can be applied)"
            )))
        }
        None => return Err(invalid("adapter_config.json has no peft_type")),
    }
    if is_set(get("use_dora")) {
        return Err(unsupported(
            "use_dora: DoRA adapters (weight-decomposed LoRA) cannot be applied",
        ));
    }
    if is_set(get("modules_to_save")) {
        return Err(unsupported(format!(
            "modules_to_save {}: the adapter carries full copies of base modules, which sqlora does not apply",
            get("modules_to_save").cloned().unwrap_or(Value::Null)
        )));
    }
    if is_set(get("fan_in_fan_out")) {
        return Err(unsupported(
            "fan_in_fan_out: weights stored transposed (GPT-2 Conv1D style) are not supported",
        ));
    }
    match get("bias") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s == "none" => {}
        Some(b) => {
            return Err(unsupported(format!(
                "bias {b}: adapters that train biases are not supported (only \"none\")"
            )))
        }
    }
    if is_set(get("lora_bias")) {
        return Err(unsupported("lora_bias: a bias on lora_B is not supported"));
    }
    if let Some(Value::String(init)) = get("init_lora_weights") {
        let lower = init.to_ascii_lowercase();
        if ["pissa", "olora", "corda", "loftq", "lora_ga"]
            .iter()
            .any(|p| lower.starts_with(p))
        {
            return Err(unsupported(format!(
                "init_lora_weights {init:?} rewrites the base weights; convert the adapter to a plain LoRA before loading it"
            )));
        }
    }
    for (field, what) in [
        ("target_parameters", "LoRA on raw parameters"),
        ("trainable_token_indices", "trainable token embeddings"),
        ("layer_replication", "layer replication"),
        ("alora_invocation_tokens", "activated LoRA (aLoRA)"),
        ("use_qalora", "QALoRA"),
        ("use_bdlora", "block-diagonal LoRA"),
        ("arrow_config", "Arrow routing"),
        ("megatron_config", "Megatron parallel layers"),
    ] {
        if is_set(get(field)) {
            return Err(unsupported(format!("{field}: {what} is not supported")));
        }
    }
    // Newer PEFT variants come as `<name>_config` objects; only the ones that merely shape the
    // initialisation or the runtime leave the saved A/B a plain LoRA.
    const HARMLESS: [&str; 5] = [
        "loftq_config",
        "eva_config",
        "corda_config",
        "runtime_config",
        "lora_ga_config",
    ];
    for (k, v) in obj {
        if k.ends_with("_config") && !HARMLESS.contains(&k.as_str()) && is_set(Some(v)) {
            return Err(unsupported(format!(
                "{k}: this LoRA variant is not supported (only plain LoRA)"
            )));
        }
    }
    let r = match get("r") {
        None | Some(Value::Null) => 8,
        Some(v) => v
            .as_u64()
            .ok_or_else(|| invalid(format!("r must be a positive integer, got {v}")))?
            as usize,
    };
    let alpha = match get("lora_alpha") {
        None | Some(Value::Null) => 8.0,
        Some(v) => v
            .as_f64()
            .ok_or_else(|| invalid(format!("lora_alpha must be a number, got {v}")))?,
    };
    let target_modules = match get("target_modules") {
        // PEFT's default for llama/qwen2 models when none is given.
        None | Some(Value::Null) => TargetModules::names(&["q_proj", "v_proj"]),
        Some(v) => targets_from(v, "target_modules")?,
    };
    let exclude_modules = match get("exclude_modules") {
        None | Some(Value::Null) => None,
        Some(v) => Some(targets_from(v, "exclude_modules")?),
    };
    let layers_to_transform = match get("layers_to_transform") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(vec![n
            .as_u64()
            .ok_or_else(|| invalid(format!("layers_to_transform: bad index {n}")))?
            as usize]),
        Some(Value::Array(a)) => Some(
            a.iter()
                .map(|x| {
                    x.as_u64()
                        .map(|i| i as usize)
                        .ok_or_else(|| invalid(format!("layers_to_transform: bad index {x}")))
                })
                .collect::<Result<Vec<_>>>()?,
        ),
        Some(other) => return Err(invalid(format!("layers_to_transform: {other}"))),
    };
    let layers_pattern = match get("layers_pattern") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => string_list(v, "layers_pattern")?,
    };
    let mut rank_pattern = Vec::new();
    if let Some(Value::Object(m)) = get("rank_pattern") {
        for (k, v) in m {
            let r = v
                .as_u64()
                .ok_or_else(|| invalid(format!("rank_pattern[{k}] = {v} is not an integer")))?;
            rank_pattern.push((k.clone(), r as usize));
        }
    }
    let mut alpha_pattern = Vec::new();
    if let Some(Value::Object(m)) = get("alpha_pattern") {
        for (k, v) in m {
            let a = v
                .as_f64()
                .ok_or_else(|| invalid(format!("alpha_pattern[{k}] = {v} is not a number")))?;
            alpha_pattern.push((k.clone(), a));
        }
    }
    let config = LoraConfig {
        r,
        alpha,
        target_modules,
        exclude_modules,
        layers_to_transform,
        layers_pattern,
        use_rslora: is_set(get("use_rslora")),
        dropout: get("lora_dropout").and_then(Value::as_f64).unwrap_or(0.0),
        rank_pattern,
        alpha_pattern,
    };
    config.validate()?;
    Ok(config)
}

/// The `adapter_config.json` PEFT writes for `config` (PEFT loads it with
/// `PeftModel.from_pretrained`).
pub fn config_to_json(config: &LoraConfig, base_model: Option<&str>) -> Value {
    let rank_pattern: Map<String, Value> = config
        .rank_pattern
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let alpha_pattern: Map<String, Value> = config
        .alpha_pattern
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model,
        "r": config.r,
        "lora_alpha": config.alpha,
        "lora_dropout": config.dropout,
        "target_modules": targets_to(&config.target_modules),
        "exclude_modules": config.exclude_modules.as_ref().map(targets_to),
        "layers_to_transform": config.layers_to_transform,
        "layers_pattern": if config.layers_pattern.is_empty() {
            Value::Null
        } else {
            json!(config.layers_pattern)
        },
        "rank_pattern": rank_pattern,
        "alpha_pattern": alpha_pattern,
        "use_rslora": config.use_rslora,
        "use_dora": false,
        "fan_in_fan_out": false,
        "bias": "none",
        "modules_to_save": null,
        "init_lora_weights": true,
        "inference_mode": true,
        "revision": null,
    })
}

/// Reads `dir/adapter_config.json`.
pub fn read_config(dir: &Path) -> Result<LoraConfig> {
    Ok(read_config_json(dir)?.0)
}

fn read_config_json(dir: &Path) -> Result<(LoraConfig, Value)> {
    let path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| AdapterError::io(&path, e))?;
    let v: Value =
        serde_json::from_str(&text).map_err(|e| invalid(format!("{}: {e}", path.display())))?;
    Ok((config_from_json(&v)?, v))
}

/// Splits a PEFT tensor name into (module path, `'A'` or `'B'`), refusing what sqlora cannot
/// apply.
fn parse_key(key: &str) -> Result<(String, char)> {
    let rest = key.strip_prefix(KEY_PREFIX).unwrap_or(key);
    if rest.contains("lora_embedding_A") || rest.contains("lora_embedding_B") {
        return Err(unsupported(format!(
            "{key}: LoRA on an embedding layer is not supported"
        )));
    }
    if rest.contains("lora_magnitude_vector") {
        return Err(unsupported(format!(
            "{key}: DoRA magnitude vectors are not supported"
        )));
    }
    for (suffix, which) in [(".lora_A.weight", 'A'), (".lora_B.weight", 'B')] {
        if let Some(module) = rest.strip_suffix(suffix) {
            return Ok((module.to_string(), which));
        }
    }
    if rest.ends_with(".lora_B.bias") || rest.ends_with(".lora_A.bias") {
        return Err(unsupported(format!("{key}: lora_bias is not supported")));
    }
    Err(unsupported(format!(
        "{key}: not a LoRA A/B weight (full module copies such as modules_to_save, or biases, are not applied)"
    )))
}

/// Reads an adapter folder without a base model (see [`load_adapter`] to also check it
/// against one). Tensors become f32 on `device`; the adapter is named after the folder.
pub fn read_adapter(dir: &Path, device: &Device) -> Result<LoraAdapter> {
    let (config, raw) = read_config_json(dir)?;
    let weights = dir.join(WEIGHTS_FILE);
    if !weights.is_file() {
        if dir.join("adapter_model.bin").is_file() {
            return Err(unsupported(format!(
                "{}: only pickled adapter_model.bin weights; re-save the adapter with safe_serialization=True",
                dir.display()
            )));
        }
        return Err(AdapterError::io(
            &weights,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no adapter weights"),
        ));
    }
    let tensors = candle_core::safetensors::load(&weights, device)
        .map_err(|e| invalid(format!("{}: {e}", weights.display())))?;
    let mut parts: BTreeMap<String, (Option<Tensor>, Option<Tensor>)> = BTreeMap::new();
    for (key, t) in tensors {
        let (module, which) = parse_key(&key)?;
        let t = t.to_dtype(DType::F32)?;
        let e = parts.entry(module).or_default();
        if which == 'A' {
            e.0 = Some(t);
        } else {
            e.1 = Some(t);
        }
    }
    let mut modules = BTreeMap::new();
    for (module, (a, b)) in parts {
        match (a, b) {
            (Some(a), Some(b)) => {
                if !config.targets(&module)? {
                    return Err(AdapterError::Mismatch(format!(
                        "weights for {module}, which the config's target modules do not select"
                    )));
                }
                modules.insert(module, (a, b));
            }
            (a, _) => {
                return Err(invalid(format!(
                    "{module}: lora_{} is missing",
                    if a.is_none() { 'A' } else { 'B' }
                )))
            }
        }
    }
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "adapter".to_string());
    let mut adapter = LoraAdapter::new(name, config, modules)?;
    adapter.base_model = raw
        .get("base_model_name_or_path")
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(adapter)
}

/// Reads an adapter folder and checks it against `model` (modules exist, shapes agree, every
/// targeted module has weights); tensors go to the model's device.
pub fn load_adapter(dir: &Path, model: &Model) -> Result<LoraAdapter> {
    let adapter = read_adapter(dir, model.device())?;
    adapter.check_fits(model)?;
    Ok(adapter)
}

/// Writes `adapter` as a PEFT folder (created if needed): `adapter_config.json` and
/// `adapter_model.safetensors` (f32, metadata `format: pt`).
pub fn save_adapter(adapter: &LoraAdapter, dir: &Path) -> Result<()> {
    for (key, m) in adapter.modules() {
        if !adapter.config.targets(key)? {
            return Err(invalid(format!(
                "{key} has weights but the config's target modules do not select it; PEFT would not load it"
            )));
        }
        let (r, alpha) = adapter.config.rank_alpha(key)?;
        if m.rank() != r || m.alpha != alpha {
            return Err(invalid(format!(
                "{key}: rank {} / alpha {} differ from the config's {r} / {alpha}",
                m.rank(),
                m.alpha
            )));
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| AdapterError::io(dir, e))?;
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for (key, m) in adapter.modules() {
        let cpu = Device::Cpu;
        tensors.insert(
            format!("{KEY_PREFIX}{key}.lora_A.weight"),
            m.a.detach()
                .to_device(&cpu)?
                .to_dtype(DType::F32)?
                .contiguous()?,
        );
        tensors.insert(
            format!("{KEY_PREFIX}{key}.lora_B.weight"),
            m.b.detach()
                .to_device(&cpu)?
                .to_dtype(DType::F32)?
                .contiguous()?,
        );
    }
    let weights = dir.join(WEIGHTS_FILE);
    let tmp = dir.join(format!("{WEIGHTS_FILE}.tmp"));
    let metadata: HashMap<String, String> = [("format".to_string(), "pt".to_string())].into();
    let mut sorted: Vec<(&String, &Tensor)> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    safetensors::serialize_to_file(sorted, Some(metadata), &tmp)
        .map_err(|e| invalid(format!("{}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, &weights).map_err(|e| AdapterError::io(&weights, e))?;
    let config = config_to_json(&adapter.config, adapter.base_model.as_deref());
    let text = serde_json::to_string_pretty(&config)
        .map_err(|e| invalid(format!("serialising the config: {e}")))?;
    let path = dir.join(CONFIG_FILE);
    std::fs::write(&path, text + "\n").map_err(|e| AdapterError::io(&path, e))?;
    Ok(())
}

/// The summary `sqlora adapter inspect PATH` shows, read from a PEFT folder on the CPU.
pub fn inspect(dir: &Path) -> Result<AdapterSummary> {
    let adapter = read_adapter(dir, &Device::Cpu)?;
    let mut s = adapter.summary();
    let weights = dir.join(WEIGHTS_FILE);
    s.file_bytes = Some(
        std::fs::metadata(&weights)
            .map_err(|e| AdapterError::io(&weights, e))?
            .len(),
    );
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Value {
        json!({"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"],
               "bias": "none", "use_dora": false, "modules_to_save": null,
               "fan_in_fan_out": false, "init_lora_weights": true})
    }

    #[test]
    fn a_plain_config_parses() {
        let c = config_from_json(&base()).unwrap();
        assert_eq!(c.r, 4);
        assert_eq!(c.alpha, 8.0);
        assert_eq!(c.target_modules, TargetModules::names(&["q_proj"]));
        let round = config_from_json(&config_to_json(&c, Some("m"))).unwrap();
        assert_eq!(round, c);
    }

    #[test]
    fn unsupported_options_name_the_reason() {
        for (field, value, needle) in [
            ("use_dora", json!(true), "DoRA"),
            ("modules_to_save", json!(["lm_head"]), "modules_to_save"),
            ("fan_in_fan_out", json!(true), "fan_in_fan_out"),
            ("bias", json!("lora_only"), "bias"),
            ("peft_type", json!("IA3"), "IA3"),
            ("init_lora_weights", json!("pissa"), "pissa"),
            ("init_lora_weights", json!("lora_ga"), "lora_ga"),
            ("velora_config", json!({"rank": 2}), "velora_config"),
            ("lora_bias", json!(true), "lora_bias"),
            (
                "trainable_token_indices",
                json!([1, 2]),
                "trainable_token_indices",
            ),
        ] {
            let mut v = base();
            v[field] = value;
            match config_from_json(&v) {
                Err(AdapterError::Unsupported(m)) => {
                    assert!(m.contains(needle), "{field}: {m}")
                }
                other => panic!("{field}: expected Unsupported, got {other:?}"),
            }
        }
    }

    #[test]
    fn tensor_keys_are_parsed_or_refused() {
        assert_eq!(
            parse_key("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight").unwrap(),
            ("model.layers.0.self_attn.q_proj".to_string(), 'A')
        );
        assert!(matches!(
            parse_key("base_model.model.model.embed_tokens.lora_embedding_A"),
            Err(AdapterError::Unsupported(m)) if m.contains("embedding")
        ));
        assert!(matches!(
            parse_key("base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector"),
            Err(AdapterError::Unsupported(m)) if m.contains("DoRA")
        ));
        assert!(matches!(
            parse_key("base_model.model.lm_head.weight"),
            Err(AdapterError::Unsupported(_))
        ));
    }
}
