//! [`LoraConfig`]: an adapter's hyper-parameters and which modules it targets, matched by
//! name exactly like Hugging Face PEFT (`target_modules`, `exclude_modules`, `rank_pattern`,
//! `alpha_pattern`, `layers_to_transform`).

use regex::Regex;

use super::{AdapterError, Result, PROJECTIONS};

/// Which modules an adapter targets (PEFT's `target_modules` / `exclude_modules`).
#[derive(Debug, Clone, PartialEq)]
pub enum TargetModules {
    /// Module names: a module matches when its path equals a name or ends with `.name`.
    Names(Vec<String>),
    /// A regular expression that must match the whole module path.
    Regex(String),
    /// PEFT's `"all-linear"`: every projection of the decoder (not the output head).
    AllLinear,
}

impl TargetModules {
    /// Names from string slices.
    pub fn names(names: &[&str]) -> TargetModules {
        TargetModules::Names(names.iter().map(|s| s.to_string()).collect())
    }

    /// Whether the module path `key` matches.
    pub fn matches(&self, key: &str) -> Result<bool> {
        Ok(match self {
            TargetModules::Names(names) => names
                .iter()
                .any(|n| key == n || key.ends_with(&format!(".{n}"))),
            TargetModules::Regex(re) => full_match(re, key)?,
            TargetModules::AllLinear => PROJECTIONS.iter().any(|p| key.ends_with(&format!(".{p}"))),
        })
    }
}

fn compile(pattern: &str) -> Result<Regex> {
    Regex::new(pattern)
        .map_err(|e| AdapterError::Invalid(format!("bad module pattern {pattern:?}: {e}")))
}

/// Python's `re.fullmatch(pattern, key)`.
fn full_match(pattern: &str, key: &str) -> Result<bool> {
    Ok(compile(&format!("^(?:{pattern})$"))?.is_match(key))
}

/// PEFT's `get_pattern_key`: the first pattern `p` with `re.match(rf"(.*\.)?({p})$", key)`.
fn pattern_value<T: Copy>(patterns: &[(String, T)], key: &str) -> Result<Option<T>> {
    for (p, v) in patterns {
        if compile(&format!("^(?:.*\\.)?(?:{p})$"))?.is_match(key) {
            return Ok(Some(*v));
        }
    }
    Ok(None)
}

/// The layer index PEFT reads from a module path for `layers_to_transform`.
pub(super) fn layer_index(key: &str, layers_pattern: &[String]) -> Result<Option<usize>> {
    let caps = if layers_pattern.is_empty() {
        compile(r"^.*?\.[^.]*\.(\d+)\.")?
            .captures(key)
            .and_then(|c| c.get(1).map(|m| m.as_str().to_string()))
    } else {
        let mut found = None;
        for p in layers_pattern {
            if let Some(c) = compile(&format!(r"^(?:|.*?\.)(?:{p})\.(\d+)\."))?.captures(key) {
                found = c.get(1).map(|m| m.as_str().to_string());
                break;
            }
        }
        found
    };
    Ok(caps.and_then(|s| s.parse().ok()))
}

/// The hyper-parameters of a LoRA adapter (the parts of PEFT's `LoraConfig` sqlora applies).
#[derive(Debug, Clone, PartialEq)]
pub struct LoraConfig {
    /// Default rank.
    pub r: usize,
    /// Default `lora_alpha`.
    pub alpha: f64,
    /// Which modules get an adapter.
    pub target_modules: TargetModules,
    /// Modules never adapted even when targeted.
    pub exclude_modules: Option<TargetModules>,
    /// Only these layer indices (PEFT `layers_to_transform`; list-form targets only).
    pub layers_to_transform: Option<Vec<usize>>,
    /// Names of the layer container used to find the layer index (PEFT `layers_pattern`).
    pub layers_pattern: Vec<String>,
    /// Scale `alpha / √r` instead of `alpha / r`.
    pub use_rslora: bool,
    /// Dropout on the adapter's input while training.
    pub dropout: f64,
    /// Per-module rank overrides, first match wins (PEFT `rank_pattern`).
    pub rank_pattern: Vec<(String, usize)>,
    /// Per-module alpha overrides, first match wins (PEFT `alpha_pattern`).
    pub alpha_pattern: Vec<(String, f64)>,
}

impl LoraConfig {
    /// Rank `r`, `alpha`, the given target names; no dropout, no overrides.
    pub fn new(r: usize, alpha: f64, targets: &[&str]) -> LoraConfig {
        LoraConfig {
            r,
            alpha,
            target_modules: TargetModules::names(targets),
            exclude_modules: None,
            layers_to_transform: None,
            layers_pattern: Vec::new(),
            use_rslora: false,
            dropout: 0.0,
            rank_pattern: Vec::new(),
            alpha_pattern: Vec::new(),
        }
    }

    /// Checks the values themselves (ranks positive, alphas and dropout sensible).
    pub fn validate(&self) -> Result<()> {
        if self.r == 0 || self.rank_pattern.iter().any(|(_, r)| *r == 0) {
            return Err(AdapterError::Invalid("rank must be at least 1".into()));
        }
        if !self.alpha.is_finite() || self.alpha_pattern.iter().any(|(_, a)| !a.is_finite()) {
            return Err(AdapterError::Invalid("lora_alpha must be finite".into()));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(AdapterError::Invalid(format!(
                "lora_dropout must be in [0, 1), got {}",
                self.dropout
            )));
        }
        if let TargetModules::Regex(re) = &self.target_modules {
            compile(re)?;
        }
        for (p, _) in &self.rank_pattern {
            compile(p)?;
        }
        for (p, _) in &self.alpha_pattern {
            compile(p)?;
        }
        Ok(())
    }

    /// Whether the module at path `key` (e.g. `model.layers.0.self_attn.q_proj`) is adapted,
    /// following PEFT's `check_target_module_exists`.
    pub fn targets(&self, key: &str) -> Result<bool> {
        if let Some(ex) = &self.exclude_modules {
            if ex.matches(key)? {
                return Ok(false);
            }
        }
        let found = self.target_modules.matches(key)?;
        // PEFT applies layers_to_transform only to list-form targets.
        if found && matches!(self.target_modules, TargetModules::Names(_)) {
            if let Some(layers) = &self.layers_to_transform {
                if !layers.is_empty() {
                    return Ok(match layer_index(key, &self.layers_pattern)? {
                        Some(i) => layers.contains(&i),
                        None => false,
                    });
                }
            }
        }
        Ok(found)
    }

    /// The rank and alpha of the module at `key` after `rank_pattern` / `alpha_pattern`.
    pub fn rank_alpha(&self, key: &str) -> Result<(usize, f64)> {
        let r = pattern_value(&self.rank_pattern, key)?.unwrap_or(self.r);
        let a = pattern_value(&self.alpha_pattern, key)?.unwrap_or(self.alpha);
        Ok((r, a))
    }

    /// The scale of a module with rank `r` and `alpha`.
    pub fn scale(&self, r: usize, alpha: f64) -> f64 {
        if self.use_rslora {
            alpha / (r as f64).sqrt()
        } else {
            alpha / r as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_targets_match_by_suffix_after_a_dot() {
        let t = TargetModules::names(&["q_proj", "mlp.up_proj"]);
        assert!(t.matches("model.layers.0.self_attn.q_proj").unwrap());
        assert!(t.matches("q_proj").unwrap());
        assert!(t.matches("model.layers.3.mlp.up_proj").unwrap());
        assert!(!t.matches("model.layers.0.self_attn.xq_proj").unwrap());
        assert!(!t.matches("model.layers.0.self_attn.k_proj").unwrap());
    }

    #[test]
    fn regex_targets_must_match_the_whole_path() {
        let t = TargetModules::Regex(r".*\.(1|3)\.self_attn\.(q|v)_proj".into());
        assert!(t.matches("model.layers.1.self_attn.q_proj").unwrap());
        assert!(t.matches("model.layers.3.self_attn.v_proj").unwrap());
        assert!(!t.matches("model.layers.2.self_attn.q_proj").unwrap());
        assert!(!t.matches("model.layers.1.self_attn.q_proj.extra").unwrap());
        let bad = TargetModules::Regex("(".into());
        assert!(matches!(bad.matches("x"), Err(AdapterError::Invalid(_))));
    }

    #[test]
    fn rank_and_alpha_patterns_override_by_suffix_regex() {
        let mut c = LoraConfig::new(8, 16.0, &["q_proj", "down_proj"]);
        c.rank_pattern = vec![
            ("down_proj".into(), 4),
            (r"layers\.2\.self_attn\.q_proj".into(), 2),
        ];
        c.alpha_pattern = vec![("q_proj".into(), 3.0)];
        assert_eq!(
            c.rank_alpha("model.layers.0.mlp.down_proj").unwrap(),
            (4, 16.0)
        );
        assert_eq!(
            c.rank_alpha("model.layers.2.self_attn.q_proj").unwrap(),
            (2, 3.0)
        );
        assert_eq!(
            c.rank_alpha("model.layers.1.self_attn.q_proj").unwrap(),
            (8, 3.0)
        );
        // A pattern must end at a dot boundary: "proj" alone does not match "q_proj".
        c.rank_pattern = vec![("proj".into(), 1)];
        assert_eq!(
            c.rank_alpha("model.layers.1.self_attn.q_proj").unwrap().0,
            8
        );
        assert_eq!(c.scale(4, 16.0), 4.0);
        c.use_rslora = true;
        assert_eq!(c.scale(4, 16.0), 8.0);
    }

    #[test]
    fn layers_to_transform_and_exclusions() {
        let mut c = LoraConfig::new(4, 8.0, &["q_proj", "v_proj"]);
        c.layers_to_transform = Some(vec![1, 12]);
        assert!(c.targets("model.layers.1.self_attn.q_proj").unwrap());
        assert!(c.targets("model.layers.12.self_attn.v_proj").unwrap());
        assert!(!c.targets("model.layers.2.self_attn.q_proj").unwrap());
        assert!(!c.targets("model.layers.1.self_attn.k_proj").unwrap());
        c.layers_pattern = vec!["layers".into()];
        assert!(c.targets("model.layers.12.self_attn.v_proj").unwrap());
        c.layers_pattern = vec!["blocks".into()];
        assert!(!c.targets("model.layers.12.self_attn.v_proj").unwrap());
        let mut c = LoraConfig::new(4, 8.0, &[]);
        c.target_modules = TargetModules::AllLinear;
        c.exclude_modules = Some(TargetModules::names(&["down_proj"]));
        assert!(c.targets("model.layers.0.mlp.up_proj").unwrap());
        assert!(!c.targets("model.layers.0.mlp.down_proj").unwrap());
        assert!(!c.targets("lm_head").unwrap());
    }

    #[test]
    fn invalid_values_are_refused() {
        assert!(LoraConfig::new(0, 8.0, &["q_proj"]).validate().is_err());
        let mut c = LoraConfig::new(4, 8.0, &["q_proj"]);
        c.dropout = 1.0;
        assert!(c.validate().is_err());
        c.dropout = 0.1;
        assert!(c.validate().is_ok());
    }
}
