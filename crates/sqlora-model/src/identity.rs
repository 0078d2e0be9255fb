//! Which base model is loaded, which base model an adapter was made for, and the refusal of an
//! adapter made for another base.
//!
//! An adapter folder says what it was trained on in two places: sqlora's own
//! `sqlora_meta.json` (`base_model`, the file name, and `base_model_sha256`) and PEFT's
//! `adapter_config.json` (`base_model_name_or_path`, e.g. `Qwen/Qwen2.5-Coder-0.5B-Instruct`).
//! A loaded model is known by its source file or folder, and, when that file is a model of the
//! registry ([`crate::fetch::MODELS`]), by its registry name, aliases and pinned sha256.
//!
//! [`check_adapter_base`] compares the two: equal checksums, or names that resolve to the same
//! registry model, or an adapter base name equal to the loaded file's name, are a match; two
//! different checksums, or names of two different registry models, are a
//! [`ModelError::BaseModelMismatch`]; anything else cannot be decided and is let through (the
//! shape checks of [`crate::peft::load_adapter`] still apply).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{ModelError, Result};
use crate::fetch::{self, NamedModel};
use crate::LoadedModel;

/// sqlora's metadata file in an adapter folder (written by the trainer).
pub const META_FILE: &str = "sqlora_meta.json";
/// PEFT's configuration file in an adapter folder.
pub const PEFT_CONFIG_FILE: &str = "adapter_config.json";

/// What is known about a loaded base model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelIdentity {
    /// The file or folder it was loaded from.
    pub source: PathBuf,
    /// The registry model it is, when its source is a cached registry file.
    pub named: Option<&'static NamedModel>,
    /// Lowercase hex sha256 of the source file, when known.
    pub sha256: Option<String>,
}

impl ModelIdentity {
    /// The identity of a loaded model, cheaply: a cached registry file (same name and size)
    /// brings its registry name and pinned sha256; nothing is hashed.
    pub fn of(m: &LoadedModel) -> ModelIdentity {
        ModelIdentity::of_source(&m.source)
    }

    /// [`ModelIdentity::of`] for a model file or folder.
    pub fn of_source(source: &Path) -> ModelIdentity {
        let named = fetch::named_model_for_file(source);
        ModelIdentity {
            source: source.to_path_buf(),
            named,
            sha256: named.map(|m| m.sha256.to_string()),
        }
    }

    /// Hashes the source file when its sha256 is not known yet (a file of about 1 GB takes a
    /// few seconds); a folder stays without one. A registry model is then recognised by its
    /// checksum even under another file name.
    pub fn with_sha256(mut self) -> Result<ModelIdentity> {
        if self.sha256.is_none() && self.source.is_file() {
            let sha = fetch::sha256_file(&self.source)?;
            if self.named.is_none() {
                self.named = fetch::named_model_for_sha256(&sha);
            }
            self.sha256 = Some(sha);
        }
        Ok(self)
    }

    /// The file or folder name of the source.
    pub fn source_name(&self) -> String {
        self.source
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.source.display().to_string())
    }

    /// A human-readable description: the registry name, else the source name.
    pub fn describe(&self) -> String {
        match self.named {
            Some(m) => format!("{} ({})", m.name, self.source_name()),
            None => self.source_name(),
        }
    }
}

/// What an adapter folder says about its base model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdapterBase {
    /// `sqlora_meta.json`'s `base_model` (the file name the trainer loaded).
    pub meta_name: Option<String>,
    /// `sqlora_meta.json`'s `base_model_sha256`.
    pub sha256: Option<String>,
    /// `adapter_config.json`'s `base_model_name_or_path`.
    pub peft_name: Option<String>,
}

impl AdapterBase {
    /// Whether the folder says nothing about its base.
    pub fn is_unknown(&self) -> bool {
        self.meta_name.is_none() && self.sha256.is_none() && self.peft_name.is_none()
    }

    /// The registry model the adapter names (checksum first, then the names).
    pub fn named(&self) -> Option<&'static NamedModel> {
        self.sha256
            .as_deref()
            .and_then(fetch::named_model_for_sha256)
            .or_else(|| {
                [&self.meta_name, &self.peft_name]
                    .into_iter()
                    .flatten()
                    .find_map(|n| fetch::named_model_for_name(n))
            })
    }

    /// A human-readable description for error messages.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(m) = self.named() {
            parts.push(m.name.to_string());
        }
        for n in [&self.meta_name, &self.peft_name].into_iter().flatten() {
            if !parts.iter().any(|p| p == n) {
                parts.push(n.clone());
            }
        }
        if let Some(s) = &self.sha256 {
            parts.push(format!("sha256 {}…", &s[..s.len().min(12)]));
        }
        if parts.is_empty() {
            "an unknown base model".to_string()
        } else {
            parts.join(", ")
        }
    }
}

fn non_empty(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn read_json(path: &Path) -> Result<Option<Value>> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| ModelError::Format(format!("{} is not valid JSON: {e}", path.display())))
}

/// Reads what the adapter folder `dir` says about its base model (either file may be absent).
pub fn adapter_base(dir: &Path) -> Result<AdapterBase> {
    let mut base = AdapterBase::default();
    if let Some(meta) = read_json(&dir.join(META_FILE))? {
        base.meta_name = non_empty(meta.get("base_model"));
        base.sha256 = non_empty(meta.get("base_model_sha256")).map(|s| s.to_ascii_lowercase());
    }
    if let Some(cfg) = read_json(&dir.join(PEFT_CONFIG_FILE))? {
        base.peft_name = non_empty(cfg.get("base_model_name_or_path"));
    }
    Ok(base)
}

/// How [`check_base`] decided that an adapter fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseMatch {
    /// The adapter's recorded sha256 is the loaded file's.
    Checksum,
    /// The adapter's base names the same registry model as the loaded file.
    Registry,
    /// The adapter's base name is the loaded file's or folder's name.
    SourceName,
    /// Nothing to compare (no base recorded, or names sqlora does not know): let through.
    Unknown,
}

/// Compares what an adapter says about its base with the loaded model's identity; a different
/// base is [`ModelError::BaseModelMismatch`] naming both (`adapter` is only used in the
/// message).
pub fn check_base(adapter: &str, base: &AdapterBase, model: &ModelIdentity) -> Result<BaseMatch> {
    let mismatch = || ModelError::BaseModelMismatch {
        adapter: adapter.to_string(),
        adapter_base: base.describe(),
        loaded: model.describe(),
    };
    if let (Some(a), Some(m)) = (&base.sha256, &model.sha256) {
        return if a.eq_ignore_ascii_case(m) {
            Ok(BaseMatch::Checksum)
        } else {
            Err(mismatch())
        };
    }
    if let (Some(a), Some(m)) = (base.named(), model.named) {
        return if a.name == m.name {
            Ok(BaseMatch::Registry)
        } else {
            Err(mismatch())
        };
    }
    let source = model.source_name();
    let same_name = |n: &String| {
        let last = n.trim_end_matches(['/', '\\']);
        let last = last.rsplit(['/', '\\']).next().unwrap_or(last);
        last.eq_ignore_ascii_case(&source)
    };
    if [&base.meta_name, &base.peft_name]
        .into_iter()
        .flatten()
        .any(same_name)
    {
        return Ok(BaseMatch::SourceName);
    }
    Ok(BaseMatch::Unknown)
}

/// Reads the adapter folder `dir` and checks its base against the loaded model (see
/// [`check_base`]). Refuses an adapter made for another base model with
/// [`ModelError::BaseModelMismatch`].
pub fn check_adapter_base(dir: &Path, model: &ModelIdentity) -> Result<BaseMatch> {
    let base = adapter_base(dir)?;
    check_base(&dir.display().to_string(), &base, model)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fetch::{named_model, QWEN_CODER_0_5B, QWEN_CODER_1_5B, SMOLLM2_135M};

    /// An identity as if the registry file were loaded from the cache.
    fn registry(name: &str) -> ModelIdentity {
        let m = named_model(name).unwrap();
        ModelIdentity {
            source: PathBuf::from("/cache/models").join(m.file),
            named: Some(m),
            sha256: Some(m.sha256.to_string()),
        }
    }

    fn write_adapter(dir: &Path, meta: Option<Value>, peft_base: Option<&str>) {
        std::fs::create_dir_all(dir).unwrap();
        if let Some(meta) = meta {
            std::fs::write(dir.join(META_FILE), meta.to_string()).unwrap();
        }
        let cfg =
            serde_json::json!({"peft_type": "LORA", "r": 8, "base_model_name_or_path": peft_base});
        std::fs::write(dir.join(PEFT_CONFIG_FILE), cfg.to_string()).unwrap();
    }

    #[test]
    fn a_smollm2_adapter_is_refused_on_qwen_and_accepted_on_smollm2() {
        let dir = tempfile::tempdir().unwrap();
        let smol = named_model(SMOLLM2_135M).unwrap();
        // What the trainer writes (see adapters/retail).
        write_adapter(
            dir.path(),
            Some(
                serde_json::json!({"domain": "retail", "base_model": smol.file, "base_model_sha256": smol.sha256}),
            ),
            Some(smol.file),
        );
        let err = check_adapter_base(dir.path(), &registry(QWEN_CODER_0_5B)).unwrap_err();
        assert!(
            matches!(err, ModelError::BaseModelMismatch { .. }),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains(SMOLLM2_135M), "{msg}");
        assert!(msg.contains(QWEN_CODER_0_5B), "{msg}");
        assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
        assert_eq!(
            check_adapter_base(dir.path(), &registry(SMOLLM2_135M)).unwrap(),
            BaseMatch::Checksum
        );
    }

    #[test]
    fn peft_names_resolve_through_the_registry() {
        let dir = tempfile::tempdir().unwrap();
        // A PEFT-made adapter: no sqlora_meta.json, the publisher's repository id.
        write_adapter(dir.path(), None, Some("Qwen/Qwen2.5-Coder-0.5B-Instruct"));
        let base = adapter_base(dir.path()).unwrap();
        assert_eq!(base.named().map(|m| m.name), Some(QWEN_CODER_0_5B));
        assert_eq!(
            check_adapter_base(dir.path(), &registry(QWEN_CODER_0_5B)).unwrap(),
            BaseMatch::Registry
        );
        let err = check_adapter_base(dir.path(), &registry(QWEN_CODER_1_5B)).unwrap_err();
        assert!(
            err.to_string().contains("Qwen/Qwen2.5-Coder-0.5B-Instruct"),
            "{err}"
        );
        // On a model sqlora cannot name (a user's own folder) it cannot decide: let through.
        let own = ModelIdentity::of_source(Path::new("/models/my-qwen"));
        assert_eq!(own.named, None);
        assert_eq!(
            check_adapter_base(dir.path(), &own).unwrap(),
            BaseMatch::Unknown
        );
    }

    #[test]
    fn checksums_decide_before_names_and_source_names_match() {
        let own_file = ModelIdentity {
            source: PathBuf::from("/m/custom.gguf"),
            named: None,
            sha256: Some("ab".repeat(32)),
        };
        let same_sha = AdapterBase {
            meta_name: Some("renamed.gguf".into()),
            sha256: Some("AB".repeat(32)),
            peft_name: None,
        };
        assert_eq!(
            check_base("a", &same_sha, &own_file).unwrap(),
            BaseMatch::Checksum
        );
        let other_sha = AdapterBase {
            meta_name: Some("custom.gguf".into()),
            sha256: Some("cd".repeat(32)),
            peft_name: None,
        };
        assert!(check_base("a", &other_sha, &own_file).is_err());
        // Without checksums on one side, the file name decides.
        let by_name = AdapterBase {
            meta_name: None,
            sha256: None,
            peft_name: Some("/somewhere/else/CUSTOM.gguf".into()),
        };
        let unhashed = ModelIdentity::of_source(Path::new("/m/custom.gguf"));
        assert_eq!(
            check_base("a", &by_name, &unhashed).unwrap(),
            BaseMatch::SourceName
        );
        let nothing = AdapterBase::default();
        assert!(nothing.is_unknown());
        assert_eq!(
            check_base("a", &nothing, &registry(QWEN_CODER_1_5B)).unwrap(),
            BaseMatch::Unknown
        );
    }

    #[test]
    fn hashing_recognises_a_registry_model_under_another_name() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("renamed.gguf");
        std::fs::write(&f, b"GGUF not a real model").unwrap();
        let id = ModelIdentity::of_source(&f);
        assert_eq!(id.sha256, None);
        let id = id.with_sha256().unwrap();
        assert_eq!(id.sha256.as_deref().map(str::len), Some(64));
        assert_eq!(id.named, None);
        assert_eq!(id.describe(), "renamed.gguf");
        // A broken metadata file is an error, not a silent pass.
        std::fs::write(dir.path().join(META_FILE), "{not json").unwrap();
        assert!(matches!(
            adapter_base(dir.path()),
            Err(ModelError::Format(_))
        ));
    }
}
