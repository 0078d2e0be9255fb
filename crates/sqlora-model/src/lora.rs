//! LoRA adapters on the decoder's projections: `W = W0 + scale·B·A`, with A `[r, in]` and
//! B `[out, r]`, scale `alpha / r` (or `alpha / √r` with rsLoRA).
//!
//! * [`LoraConfig`] chooses the target modules by name exactly like Hugging Face PEFT (a list
//!   matches a module path by equality or by suffix after a dot, a string is a full-match regex,
//!   `"all-linear"` means every projection), with per-module rank and alpha overrides
//!   (`rank_pattern` / `alpha_pattern`) and optional `layers_to_transform`.
//! * [`LoraAdapter`] holds one adapter's A and B per module. [`LoraAdapter::init`] makes a
//!   trainable one (A Kaiming-uniform, B zero, both candle [`Var`]s; the base weights stay plain
//!   tensors, so backprop yields gradients for A and B only).
//! * [`AdapterSet`] keeps several adapters resident. Per target module it stacks their A as
//!   `[slots, in, r_max]` and `scale·B` as `[slots, r_max, out]` (zero padded, slot 0 = no
//!   adapter); an [`AdapterBatch`] names each row's slot and computes the LoRA term of a whole
//!   mixed batch with one `index_select` and two batched matmuls (the BGMV idea of
//!   Punica / S-LoRA), never by looping over adapters or swapping weights.
//! * [`merge_adapter`] / [`unmerge_adapter`] fold an adapter into the base weights and back.
//! * [`AdapterSummary`]: what `sqlora adapter inspect` prints.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor, Var};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use regex::Regex;

use crate::error::ModelError;
use crate::llama::{Linear, Model};

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
fn layer_index(key: &str, layers_pattern: &[String]) -> Result<Option<usize>> {
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

/// One module's adapter: `delta(x) = scale · (x·Aᵀ)·Bᵀ`.
#[derive(Debug, Clone)]
pub struct LoraModule {
    /// `[r, in]`.
    pub a: Tensor,
    /// `[out, r]`.
    pub b: Tensor,
    /// `alpha / r` (or `alpha / √r`).
    pub scale: f64,
    /// The module's own alpha (after `alpha_pattern`).
    pub alpha: f64,
}

impl LoraModule {
    /// The rank.
    pub fn rank(&self) -> usize {
        self.a.dims().first().copied().unwrap_or(0)
    }

    /// Input features.
    pub fn in_features(&self) -> usize {
        self.a.dims().get(1).copied().unwrap_or(0)
    }

    /// Output features.
    pub fn out_features(&self) -> usize {
        self.b.dims().first().copied().unwrap_or(0)
    }

    /// `scale · B·A`, `[out, in]`.
    pub fn delta_weight(&self) -> candle_core::Result<Tensor> {
        self.b.matmul(&self.a)? * self.scale
    }

    /// The adapter term for `x` `[.., in]` → `[.., out]`, with input dropout `p` when > 0.
    pub fn forward(&self, x: &Tensor, dropout: f32) -> candle_core::Result<Tensor> {
        let dims = x.dims().to_vec();
        let in_dim = dims.last().copied().unwrap_or(0);
        let rows: usize = dims[..dims.len().saturating_sub(1)].iter().product();
        let mut x2 = x.reshape((rows, in_dim))?;
        if dropout > 0.0 {
            x2 = candle_nn::ops::dropout(&x2, dropout)?;
        }
        let a = self.a.to_dtype(x.dtype())?;
        let b = self.b.to_dtype(x.dtype())?;
        let y = (x2.matmul(&a.t()?)?.matmul(&b.t()?)? * self.scale)?;
        let mut out = dims;
        if let Some(last) = out.last_mut() {
            *last = self.out_features();
        }
        y.reshape(out)
    }
}

/// One adapter: a config and A/B per adapted module (keyed by module path).
#[derive(Debug, Clone)]
pub struct LoraAdapter {
    /// A name for humans and for [`AdapterSet`] look-ups.
    pub name: String,
    /// The hyper-parameters it was made with.
    pub config: LoraConfig,
    /// PEFT's `base_model_name_or_path`, if known.
    pub base_model: Option<String>,
    modules: BTreeMap<String, LoraModule>,
    vars: Vec<Var>,
}

impl LoraAdapter {
    /// An adapter from given tensors: `modules` maps a module path to `(A [r, in], B [out, r])`;
    /// rank, alpha and scale come from `config` and must agree with the shapes.
    pub fn new(
        name: impl Into<String>,
        config: LoraConfig,
        modules: BTreeMap<String, (Tensor, Tensor)>,
    ) -> Result<LoraAdapter> {
        config.validate()?;
        let mut out = BTreeMap::new();
        for (key, (a, b)) in modules {
            let (r, alpha) = config.rank_alpha(&key)?;
            let (ar, _) = a.dims2().map_err(|_| {
                AdapterError::Invalid(format!("{key}: lora_A is {:?}, not 2-D", a.dims()))
            })?;
            let (_, br) = b.dims2().map_err(|_| {
                AdapterError::Invalid(format!("{key}: lora_B is {:?}, not 2-D", b.dims()))
            })?;
            if ar != r || br != r {
                return Err(AdapterError::Invalid(format!(
                    "{key}: lora_A {:?} and lora_B {:?} do not have the configured rank {r}",
                    a.dims(),
                    b.dims()
                )));
            }
            let scale = config.scale(r, alpha);
            out.insert(key, LoraModule { a, b, scale, alpha });
        }
        if out.is_empty() {
            return Err(AdapterError::Invalid("the adapter has no modules".into()));
        }
        Ok(LoraAdapter {
            name: name.into(),
            config,
            base_model: None,
            modules: out,
            vars: Vec::new(),
        })
    }

    /// A fresh trainable adapter for `model`: every projection `config` targets gets A
    /// (Kaiming-uniform, PEFT's `kaiming_uniform_(a=√5)`, i.e. U(±1/√in)) and B = 0 as [`Var`]s,
    /// so it leaves the model's output unchanged until trained.
    pub fn init(
        name: impl Into<String>,
        model: &Model,
        config: LoraConfig,
        seed: u64,
    ) -> Result<LoraAdapter> {
        config.validate()?;
        let device = model.device();
        let mut rng = StdRng::seed_from_u64(seed);
        let mut tensors = BTreeMap::new();
        let mut var_map = BTreeMap::new();
        for lin in targeted_linears(model, &config)? {
            let (r, _) = config.rank_alpha(lin.name())?;
            let (inp, out) = (lin.in_features(), lin.out_features());
            let bound = 1.0 / (inp as f32).sqrt();
            let data: Vec<f32> = (0..r * inp).map(|_| rng.gen_range(-bound..bound)).collect();
            let a = Var::from_tensor(&Tensor::from_vec(data, (r, inp), device)?)?;
            let b = Var::from_tensor(&Tensor::zeros((out, r), DType::F32, device)?)?;
            tensors.insert(
                lin.name().to_string(),
                (a.as_tensor().clone(), b.as_tensor().clone()),
            );
            var_map.insert(lin.name().to_string(), [a, b]);
        }
        let mut adapter = LoraAdapter::new(name, config, tensors)?;
        adapter.vars = var_map.into_values().flatten().collect();
        Ok(adapter)
    }

    /// The adapted modules, keyed by module path.
    pub fn modules(&self) -> &BTreeMap<String, LoraModule> {
        &self.modules
    }

    /// One module's adapter.
    pub fn module(&self, key: &str) -> Option<&LoraModule> {
        self.modules.get(key)
    }

    /// The trainable variables (A then B of each module, in the order of
    /// [`LoraAdapter::modules`]), empty for an
    /// adapter that was loaded or frozen.
    pub fn vars(&self) -> &[Var] {
        &self.vars
    }

    /// A copy for inference: same values, no gradient tracking (so the model keeps its fused
    /// inference kernels).
    pub fn frozen(&self) -> Result<LoraAdapter> {
        let mut modules = BTreeMap::new();
        for (k, m) in &self.modules {
            modules.insert(
                k.clone(),
                LoraModule {
                    a: m.a.detach().copy()?,
                    b: m.b.detach().copy()?,
                    scale: m.scale,
                    alpha: m.alpha,
                },
            );
        }
        Ok(LoraAdapter {
            name: self.name.clone(),
            config: self.config.clone(),
            base_model: self.base_model.clone(),
            modules,
            vars: Vec::new(),
        })
    }

    /// Moves the tensors to `device` as f32 (inference copy, like [`LoraAdapter::frozen`]).
    pub fn to_device(&self, device: &Device) -> Result<LoraAdapter> {
        let mut out = self.frozen()?;
        for m in out.modules.values_mut() {
            m.a = m.a.to_device(device)?.to_dtype(DType::F32)?;
            m.b = m.b.to_device(device)?.to_dtype(DType::F32)?;
        }
        Ok(out)
    }

    /// Checks that the adapter applies to `model`: every adapted module exists with the same
    /// shapes, every module the config targets has weights, and something is targeted.
    pub fn check_fits(&self, model: &Model) -> Result<()> {
        let linears: BTreeMap<&str, &Linear> =
            model.linears().into_iter().map(|l| (l.name(), l)).collect();
        for (key, m) in &self.modules {
            let lin = linears.get(key.as_str()).ok_or_else(|| {
                if key == "lm_head" || key.ends_with("embed_tokens") {
                    AdapterError::Unsupported(format!(
                        "an adapter on {key} (only the decoder projections can be adapted)"
                    ))
                } else {
                    AdapterError::Mismatch(format!("the base model has no projection named {key}"))
                }
            })?;
            if m.in_features() != lin.in_features() || m.out_features() != lin.out_features() {
                return Err(AdapterError::Mismatch(format!(
                    "{key}: the adapter is {} -> {} features, the base model's projection is {} -> {}",
                    m.in_features(),
                    m.out_features(),
                    lin.in_features(),
                    lin.out_features()
                )));
            }
        }
        let targeted = targeted_linears(model, &self.config)?;
        for lin in targeted {
            if !self.modules.contains_key(lin.name()) {
                return Err(AdapterError::Mismatch(format!(
                    "the config targets {} but the adapter has no weights for it",
                    lin.name()
                )));
            }
        }
        Ok(())
    }

    /// Counts and sizes for `adapter inspect`.
    pub fn summary(&self) -> AdapterSummary {
        let mut ranks = BTreeSet::new();
        let mut alphas = Vec::new();
        let mut targets = BTreeSet::new();
        let mut layers = BTreeSet::new();
        let mut parameters = 0usize;
        let mut bytes = 0u64;
        for (key, m) in &self.modules {
            ranks.insert(m.rank());
            if !alphas.contains(&m.alpha) {
                alphas.push(m.alpha);
            }
            targets.insert(key.rsplit('.').next().unwrap_or(key).to_string());
            if let Ok(Some(i)) = layer_index(key, &self.config.layers_pattern) {
                layers.insert(i);
            }
            for t in [&m.a, &m.b] {
                parameters += t.elem_count();
                bytes += (t.elem_count() * t.dtype().size_in_bytes()) as u64;
            }
        }
        AdapterSummary {
            name: self.name.clone(),
            rank: self.config.r,
            ranks: ranks.into_iter().collect(),
            alpha: self.config.alpha,
            alphas,
            use_rslora: self.config.use_rslora,
            targets: targets.into_iter().collect(),
            modules: self.modules.len(),
            layers: layers.into_iter().collect(),
            parameters,
            tensor_bytes: bytes,
            file_bytes: None,
            base_model: self.base_model.clone(),
        }
    }
}

/// The decoder projections of `model` that `config` targets; an error when it targets
/// nothing, or targets a module sqlora cannot adapt (the output head, the embeddings).
pub fn targeted_linears<'m>(model: &'m Model, config: &LoraConfig) -> Result<Vec<&'m Linear>> {
    for other in ["lm_head", "model.embed_tokens"] {
        if config.targets(other)? && config.target_modules != TargetModules::AllLinear {
            return Err(AdapterError::Unsupported(format!(
                "the target modules include {other}; only the decoder projections ({}) can be adapted",
                PROJECTIONS.join(", ")
            )));
        }
    }
    let mut out = Vec::new();
    for lin in model.linears() {
        if config.targets(lin.name())? {
            out.push(lin);
        }
    }
    if out.is_empty() {
        return Err(AdapterError::Mismatch(format!(
            "target modules {:?} match no projection of the base model (e.g. {})",
            config.target_modules,
            model
                .linears()
                .first()
                .map(|l| l.name().to_string())
                .unwrap_or_default()
        )));
    }
    Ok(out)
}

/// A human-readable account of an adapter (`sqlora adapter inspect`).
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterSummary {
    /// The adapter's name (its folder name when read from disk).
    pub name: String,
    /// The configured default rank `r`.
    pub rank: usize,
    /// Every rank in use (several with `rank_pattern`).
    pub ranks: Vec<usize>,
    /// The configured default `lora_alpha`.
    pub alpha: f64,
    /// Every alpha in use.
    pub alphas: Vec<f64>,
    /// rsLoRA scaling.
    pub use_rslora: bool,
    /// Adapted projection kinds (`q_proj`, `v_proj`, ...).
    pub targets: Vec<String>,
    /// Number of adapted modules.
    pub modules: usize,
    /// Adapted layer indices.
    pub layers: Vec<usize>,
    /// Number of trainable parameters (elements of all A and B).
    pub parameters: usize,
    /// Bytes of all A and B tensors.
    pub tensor_bytes: u64,
    /// Size of `adapter_model.safetensors` when read from disk.
    pub file_bytes: Option<u64>,
    /// PEFT's `base_model_name_or_path`.
    pub base_model: Option<String>,
}

impl std::fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let join = |v: &[usize]| {
            v.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(f, "adapter:     {}", self.name)?;
        if let Some(b) = &self.base_model {
            writeln!(f, "base model:  {b}")?;
        }
        writeln!(
            f,
            "rank:        {} (in use: {})",
            self.rank,
            join(&self.ranks)
        )?;
        let alphas: Vec<String> = self.alphas.iter().map(|a| a.to_string()).collect();
        writeln!(
            f,
            "alpha:       {} (in use: {}){}",
            self.alpha,
            alphas.join(", "),
            if self.use_rslora { ", rsLoRA" } else { "" }
        )?;
        writeln!(f, "targets:     {}", self.targets.join(", "))?;
        writeln!(
            f,
            "modules:     {} in {} layers ({})",
            self.modules,
            self.layers.len(),
            join(&self.layers)
        )?;
        writeln!(f, "parameters:  {}", self.parameters)?;
        write!(f, "tensor size: {} bytes", self.tensor_bytes)?;
        if let Some(n) = self.file_bytes {
            write!(f, "\nfile size:   {n} bytes")?;
        }
        Ok(())
    }
}

/// A slot of an [`AdapterSet`] (stable while the adapter stays resident).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AdapterId(pub usize);

/// One target module's stacked adapters: A as `[slots, in, r_max]`, `scale·B` as
/// `[slots, r_max, out]`, row 0 and absent adapters all zeros.
#[derive(Debug, Clone)]
struct ModuleStack {
    a_t: Tensor,
    b_t: Tensor,
}

/// Several adapters resident at once, stacked per module for batched gathering.
#[derive(Debug, Clone)]
pub struct AdapterSet {
    device: Device,
    /// Slot `i + 1` holds `slots[i]`; slot 0 is "no adapter".
    slots: Vec<Option<LoraAdapter>>,
    stacks: BTreeMap<String, ModuleStack>,
}

impl AdapterSet {
    /// An empty set whose stacks live on `device`.
    pub fn new(device: &Device) -> AdapterSet {
        AdapterSet {
            device: device.clone(),
            slots: Vec::new(),
            stacks: BTreeMap::new(),
        }
    }

    /// Makes `adapter` resident (replacing one of the same name) and returns its slot.
    pub fn insert(&mut self, adapter: LoraAdapter) -> Result<AdapterId> {
        let adapter = adapter.to_device(&self.device)?;
        let idx = match self.position(&adapter.name) {
            Some(i) => i,
            None => match self.slots.iter().position(|s| s.is_none()) {
                Some(i) => i,
                None => {
                    self.slots.push(None);
                    self.slots.len() - 1
                }
            },
        };
        let previous = self.slots[idx].replace(adapter);
        if let Err(e) = self.rebuild() {
            self.slots[idx] = previous;
            self.rebuild()?;
            return Err(e);
        }
        Ok(AdapterId(idx + 1))
    }

    /// Evicts the adapter called `name`; other slots keep their ids.
    pub fn remove(&mut self, name: &str) -> Result<Option<LoraAdapter>> {
        let Some(i) = self.position(name) else {
            return Ok(None);
        };
        let out = self.slots[i].take();
        self.rebuild()?;
        Ok(out)
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.as_ref().is_some_and(|a| a.name == name))
    }

    /// The slot of the adapter called `name`.
    pub fn id(&self, name: &str) -> Option<AdapterId> {
        self.position(name).map(|i| AdapterId(i + 1))
    }

    /// The adapter in slot `id`.
    pub fn get(&self, id: AdapterId) -> Option<&LoraAdapter> {
        id.0.checked_sub(1)
            .and_then(|i| self.slots.get(i))
            .and_then(|s| s.as_ref())
    }

    /// Names of the resident adapters.
    pub fn names(&self) -> Vec<&str> {
        self.slots
            .iter()
            .flatten()
            .map(|a| a.name.as_str())
            .collect()
    }

    /// Number of resident adapters.
    pub fn len(&self) -> usize {
        self.slots.iter().flatten().count()
    }

    /// True when no adapter is resident.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn rebuild(&mut self) -> Result<()> {
        let n = self.slots.len() + 1;
        let mut keys: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
        for a in self.slots.iter().flatten() {
            for (k, m) in &a.modules {
                let e = keys
                    .entry(k.clone())
                    .or_insert((m.in_features(), m.out_features(), 0));
                if (e.0, e.1) != (m.in_features(), m.out_features()) {
                    return Err(AdapterError::Mismatch(format!(
                        "{k}: adapter {} is {} -> {}, another resident adapter is {} -> {}",
                        a.name,
                        m.in_features(),
                        m.out_features(),
                        e.0,
                        e.1
                    )));
                }
                e.2 = e.2.max(m.rank());
            }
        }
        let mut stacks = BTreeMap::new();
        for (k, (inp, out, r_max)) in keys {
            let mut a_rows = Vec::with_capacity(n);
            let mut b_rows = Vec::with_capacity(n);
            a_rows.push(Tensor::zeros((inp, r_max), DType::F32, &self.device)?);
            b_rows.push(Tensor::zeros((r_max, out), DType::F32, &self.device)?);
            for slot in &self.slots {
                match slot.as_ref().and_then(|a| a.modules.get(&k)) {
                    Some(m) => {
                        let r = m.rank();
                        let mut a_t = m.a.t()?;
                        let mut b_t = (m.b.t()? * m.scale)?;
                        if r < r_max {
                            a_t = Tensor::cat(
                                &[
                                    a_t,
                                    Tensor::zeros((inp, r_max - r), DType::F32, &self.device)?,
                                ],
                                1,
                            )?;
                            b_t = Tensor::cat(
                                &[
                                    b_t,
                                    Tensor::zeros((r_max - r, out), DType::F32, &self.device)?,
                                ],
                                0,
                            )?;
                        }
                        a_rows.push(a_t.contiguous()?);
                        b_rows.push(b_t.contiguous()?);
                    }
                    None => {
                        a_rows.push(Tensor::zeros((inp, r_max), DType::F32, &self.device)?);
                        b_rows.push(Tensor::zeros((r_max, out), DType::F32, &self.device)?);
                    }
                }
            }
            stacks.insert(
                k,
                ModuleStack {
                    a_t: Tensor::stack(&a_rows, 0)?,
                    b_t: Tensor::stack(&b_rows, 0)?,
                },
            );
        }
        self.stacks = stacks;
        Ok(())
    }

    /// A batch whose row `i` uses adapter `rows[i]` (or none). Mixed rows are gathered; when
    /// every row uses the same adapter its own A and B are used directly.
    pub fn batch(&self, rows: &[Option<AdapterId>]) -> Result<AdapterBatch<'_>> {
        self.check_rows(rows)?;
        if let Some(first) = rows.first() {
            if rows.iter().all(|r| r == first) {
                return Ok(match first.and_then(|id| self.get(id)) {
                    Some(a) => AdapterBatch::single(a),
                    None => AdapterBatch {
                        kind: BatchKind::None,
                    },
                });
            }
        }
        self.gather(rows)
    }

    /// A batch that always takes the gathered (BGMV) path, even when rows agree.
    pub fn gather(&self, rows: &[Option<AdapterId>]) -> Result<AdapterBatch<'_>> {
        self.check_rows(rows)?;
        let slots: Vec<u32> = rows
            .iter()
            .map(|r| r.map(|id| id.0).unwrap_or(0) as u32)
            .collect();
        Ok(AdapterBatch {
            kind: BatchKind::Gather {
                set: self,
                gathered: self.gather_rows(&slots)?,
                slots,
            },
        })
    }

    /// Every module's stacked `A`ᵀ and `B`ᵀ gathered for `slots` (one `index_select` each).
    fn gather_rows(&self, slots: &[u32]) -> Result<std::sync::Arc<BTreeMap<String, Gathered>>> {
        let mut out = BTreeMap::new();
        if slots.iter().any(|&s| s != 0) {
            let index = Tensor::new(slots, &self.device)?;
            let host = self.device.is_cpu();
            for (k, st) in &self.stacks {
                let a = st.a_t.index_select(&index, 0)?;
                let b = st.b_t.index_select(&index, 0)?;
                let (_, inp, r) = a.dims3()?;
                let out_dim = b.dim(2)?;
                let (a_host, b_host) = if host {
                    (
                        a.flatten_all()?.to_vec1::<f32>()?,
                        b.flatten_all()?.to_vec1::<f32>()?,
                    )
                } else {
                    (Vec::new(), Vec::new())
                };
                out.insert(
                    k.clone(),
                    Gathered {
                        a,
                        b,
                        a_host,
                        b_host,
                        dims: (inp, r, out_dim),
                    },
                );
            }
        }
        Ok(std::sync::Arc::new(out))
    }

    fn check_rows(&self, rows: &[Option<AdapterId>]) -> Result<()> {
        for id in rows.iter().flatten() {
            if self.get(*id).is_none() {
                return Err(AdapterError::Invalid(format!(
                    "no adapter is resident in slot {}",
                    id.0
                )));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
enum BatchKind<'a> {
    None,
    Single {
        adapter: &'a LoraAdapter,
        dropout: f32,
    },
    Gather {
        set: &'a AdapterSet,
        slots: Vec<u32>,
        /// Per module: the rows' `A`ᵀ `[b, in, r]` and scaled `B`ᵀ `[b, r, out]`, gathered
        /// once when the batch is formed (not at every decode step).
        gathered: std::sync::Arc<BTreeMap<String, Gathered>>,
    },
}

/// One module's adapters gathered for the rows of a batch, as tensors (for the differentiable
/// path) and as host copies (for the small-batch CPU kernel, [`bgmv_cpu`]).
#[derive(Debug)]
struct Gathered {
    /// `[b, in, r]`
    a: Tensor,
    /// `[b, r, out]`, scale included.
    b: Tensor,
    a_host: Vec<f32>,
    b_host: Vec<f32>,
    dims: (usize, usize, usize),
}

/// Rows (batch × positions) up to which the gathered LoRA term runs in [`bgmv_cpu`].
const BGMV_MAX_ROWS: usize = 64;

/// The BGMV kernel for few rows on the CPU: row `i` of `x` `[b, n, in]` (batch row `i / n`)
/// times its own `A`ᵀ `[in, r]` then `B`ᵀ `[r, out]`, in plain loops over host copies. A decode
/// step has one position per row, so the candle formulation (`b` tiny batched matmuls per
/// module) is mostly dispatch overhead; this is a few microseconds per module.
fn bgmv_cpu(x: &[f32], b: usize, n: usize, g: &Gathered) -> Vec<f32> {
    use rayon::prelude::*;
    let (inp, r, out) = g.dims;
    let mut y = vec![0f32; b * n * out];
    let one_row = |(row, yr): (usize, &mut [f32])| {
        let bi = row / n;
        let xr = &x[row * inp..(row + 1) * inp];
        let a = &g.a_host[bi * inp * r..(bi + 1) * inp * r];
        let bm = &g.b_host[bi * r * out..(bi + 1) * r * out];
        let mut t = vec![0f32; r];
        for (i, &xi) in xr.iter().enumerate() {
            for (tk, &ak) in t.iter_mut().zip(&a[i * r..(i + 1) * r]) {
                *tk += xi * ak;
            }
        }
        for (k, &tk) in t.iter().enumerate() {
            for (yo, &bo) in yr.iter_mut().zip(&bm[k * out..(k + 1) * out]) {
                *yo += tk * bo;
            }
        }
    };
    // Rows in parallel: even at 8 rows this measured faster than one thread (142 vs 188
    // tokens/s for 8 mixed-adapter rows on 2 threads).
    y.par_chunks_mut(out).enumerate().for_each(one_row);
    y
}

/// Which adapter each row of a forward pass uses.
#[derive(Debug, Clone)]
pub struct AdapterBatch<'a> {
    kind: BatchKind<'a>,
}

impl<'a> AdapterBatch<'a> {
    /// Every row uses `adapter` (inference: no dropout).
    pub fn single(adapter: &'a LoraAdapter) -> AdapterBatch<'a> {
        AdapterBatch {
            kind: BatchKind::Single {
                adapter,
                dropout: 0.0,
            },
        }
    }

    /// Every row uses `adapter`, with its config's dropout on the adapter input (training).
    pub fn training(adapter: &'a LoraAdapter) -> AdapterBatch<'a> {
        AdapterBatch {
            kind: BatchKind::Single {
                adapter,
                dropout: adapter.config.dropout as f32,
            },
        }
    }

    /// True when the batch goes through the gathered path.
    pub fn is_gathered(&self) -> bool {
        matches!(self.kind, BatchKind::Gather { .. })
    }

    /// The number of rows a gathered batch expects (`None`: any number, every row alike).
    pub fn rows(&self) -> Option<usize> {
        match &self.kind {
            BatchKind::Gather { slots, .. } => Some(slots.len()),
            _ => None,
        }
    }

    /// The same assignment for the rows listed in `rows` (to follow
    /// [`crate::llama::Cache::select_rows`] when rows finish or beams reorder).
    pub fn select_rows(&self, rows: &[u32]) -> Result<AdapterBatch<'a>> {
        Ok(match &self.kind {
            BatchKind::Gather { set, slots, .. } => {
                let picked = rows
                    .iter()
                    .map(|&r| {
                        slots.get(r as usize).copied().ok_or_else(|| {
                            AdapterError::Invalid(format!("row {r} is not in the batch"))
                        })
                    })
                    .collect::<Result<Vec<u32>>>()?;
                AdapterBatch {
                    kind: BatchKind::Gather {
                        set,
                        gathered: set.gather_rows(&picked)?,
                        slots: picked,
                    },
                }
            }
            other => AdapterBatch {
                kind: other.clone(),
            },
        })
    }

    /// The LoRA term of module `key` for its input `x` `[b, .., in]`, or `None` when no row
    /// adapts that module.
    pub fn delta(&self, key: &str, x: &Tensor) -> candle_core::Result<Option<Tensor>> {
        match &self.kind {
            BatchKind::None => Ok(None),
            BatchKind::Single { adapter, dropout } => match adapter.modules.get(key) {
                Some(m) => Ok(Some(m.forward(x, *dropout)?)),
                None => Ok(None),
            },
            BatchKind::Gather {
                slots, gathered, ..
            } => {
                // Empty when no row has an adapter.
                let Some(g) = gathered.get(key) else {
                    return Ok(None);
                };
                let dims = x.dims().to_vec();
                let b = dims.first().copied().unwrap_or(0);
                if b != slots.len() || dims.len() < 2 {
                    candle_core::bail!(
                        "adapter batch has {} rows, the input of {key} is {dims:?}",
                        slots.len()
                    );
                }
                let inp = dims[dims.len() - 1];
                let n: usize = dims[1..dims.len() - 1].iter().product();
                let out = g.dims.2;
                let fast = x.device().is_cpu()
                    && x.dtype() == DType::F32
                    && !x.track_op()
                    && !g.a_host.is_empty()
                    && inp == g.dims.0
                    && b * n <= BGMV_MAX_ROWS;
                let y = if fast {
                    let xs = x.flatten_all()?.to_vec1::<f32>()?;
                    Tensor::from_vec(bgmv_cpu(&xs, b, n, g), (b, n, out), x.device())?
                } else {
                    let a = g.a.to_dtype(x.dtype())?; // [b, in, r]
                    let bm = g.b.to_dtype(x.dtype())?; // [b, r, out]
                    x.reshape((b, n, inp))?.matmul(&a)?.matmul(&bm)? // [b, n, out]
                };
                let mut od = dims;
                if let Some(last) = od.last_mut() {
                    *last = out;
                }
                Ok(Some(y.reshape(od)?))
            }
        }
    }
}

/// `W0 + scale·B·A` for a base weight `[out, in]`.
pub fn merged_weight(w0: &Tensor, m: &LoraModule) -> candle_core::Result<Tensor> {
    w0 + m.delta_weight()?.to_dtype(w0.dtype())?
}

/// `W - scale·B·A`: undoes [`merged_weight`].
pub fn unmerged_weight(w: &Tensor, m: &LoraModule) -> candle_core::Result<Tensor> {
    w - m.delta_weight()?.to_dtype(w.dtype())?
}

fn apply_to_weights(
    model: &mut Model,
    adapter: &LoraAdapter,
    f: fn(&Tensor, &LoraModule) -> candle_core::Result<Tensor>,
) -> Result<()> {
    adapter.check_fits(model)?;
    let device = model.device().clone();
    for lin in model.linears_mut() {
        if let Some(m) = adapter.modules.get(lin.name()) {
            let m = LoraModule {
                a: m.a.to_device(&device)?,
                b: m.b.to_device(&device)?,
                scale: m.scale,
                alpha: m.alpha,
            };
            let w = f(lin.weight(), &m)?;
            *lin = Linear::new(w, lin.bias().cloned(), lin.name());
        }
    }
    Ok(())
}

/// Folds `adapter` into the base weights (`W = W0 + scale·B·A`) for single-adapter serving.
/// The model then runs at base speed with the adapter's behaviour; [`unmerge_adapter`] undoes it.
pub fn merge_adapter(model: &mut Model, adapter: &LoraAdapter) -> Result<()> {
    apply_to_weights(model, adapter, merged_weight)
}

/// Subtracts a previously merged `adapter` from the base weights (`W0 = W - scale·B·A`).
pub fn unmerge_adapter(model: &mut Model, adapter: &LoraAdapter) -> Result<()> {
    apply_to_weights(model, adapter, unmerged_weight)
}

impl LoraAdapter {
    /// DyLoRA-style truncation to rank `rank`: every module keeps `A[:rank, :]` and
    /// `B[:, :rank]`, with its alpha unchanged and its scale recomputed for the new rank
    /// (`alpha / rank`, or `alpha / √rank` with rsLoRA). The config's rank becomes `rank` (and
    /// `rank_pattern` is dropped, every module now has that rank). Truncating to the current
    /// rank gives the same adapter. Errors when `rank` is 0 or above some module's rank.
    /// The result is an inference copy (no trainable variables).
    pub fn truncate_rank(&self, rank: usize) -> Result<LoraAdapter> {
        if rank == 0 {
            return Err(AdapterError::Invalid(
                "cannot truncate an adapter to rank 0".into(),
            ));
        }
        let mut config = self.config.clone();
        config.r = rank;
        config.rank_pattern.clear();
        let mut modules = BTreeMap::new();
        for (key, m) in &self.modules {
            if rank > m.rank() {
                return Err(AdapterError::Invalid(format!(
                    "cannot truncate {key} of rank {} to rank {rank}",
                    m.rank()
                )));
            }
            let a = m.a.detach().narrow(0, 0, rank)?.contiguous()?;
            let b = m.b.detach().narrow(1, 0, rank)?.contiguous()?;
            modules.insert(key.clone(), (a, b));
        }
        let mut out = LoraAdapter::new(self.name.clone(), config, modules)?;
        // `new` takes alphas from the config; keep each module's own (after alpha_pattern).
        for (key, m) in out.modules.iter_mut() {
            if let Some(orig) = self.modules.get(key) {
                m.alpha = orig.alpha;
                m.scale = out.config.scale(rank, orig.alpha);
            }
        }
        out.base_model = self.base_model.clone();
        Ok(out)
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

#[cfg(test)]
mod bgmv_tests {
    use super::*;

    fn adapter(name: &str, r: usize, seed: u64, dev: &Device) -> LoraAdapter {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut rand =
            |n: usize| -> Vec<f32> { (0..n).map(|_| rng.gen_range(-0.5..0.5)).collect() };
        let (inp, out) = (40, 24);
        let mut modules = BTreeMap::new();
        modules.insert(
            "model.layers.0.self_attn.q_proj".to_string(),
            (
                Tensor::from_vec(rand(r * inp), (r, inp), dev).unwrap(),
                Tensor::from_vec(rand(out * r), (out, r), dev).unwrap(),
            ),
        );
        let config = LoraConfig::new(r, 2.0 * r as f64, &["q_proj"]);
        LoraAdapter::new(name, config, modules).unwrap()
    }

    /// The small-batch CPU kernel and the batched-matmul formulation agree, for rows with
    /// different adapters, different ranks and no adapter at all.
    #[test]
    fn the_cpu_kernel_equals_the_batched_matmul_path() {
        let dev = Device::Cpu;
        let mut set = AdapterSet::new(&dev);
        let a = set.insert(adapter("a", 4, 1, &dev)).unwrap();
        let b = set.insert(adapter("b", 2, 2, &dev)).unwrap();
        let rows = [Some(b), None, Some(a)];
        let batch = set.gather(&rows).unwrap();
        let key = "model.layers.0.self_attn.q_proj";
        let mut rng = StdRng::seed_from_u64(7);
        let t = 30; // 3 × 30 rows: above BGMV_MAX_ROWS, so the whole input takes the matmul path
        let data: Vec<f32> = (0..3 * t * 40).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let x = Tensor::from_vec(data, (3, t, 40), &dev).unwrap();
        assert!(3 * t > BGMV_MAX_ROWS);
        let slow = batch.delta(key, &x).unwrap().unwrap();
        for j in 0..t {
            let xj = x.narrow(1, j, 1).unwrap().contiguous().unwrap();
            let fast = batch.delta(key, &xj).unwrap().unwrap();
            let want = slow.narrow(1, j, 1).unwrap();
            let diff = (fast - want)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(diff < 1e-5, "position {j}: {diff}");
        }
        // The row without an adapter gets exactly zero.
        let x1 = x.narrow(1, 0, 1).unwrap().contiguous().unwrap();
        let d = batch.delta(key, &x1).unwrap().unwrap();
        let row1: Vec<f32> = d.get(1).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert!(row1.iter().all(|v| *v == 0.0));
    }
}
