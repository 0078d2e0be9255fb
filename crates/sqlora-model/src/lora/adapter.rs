//! One adapter: [`LoraModule`] (A and B of one projection), [`LoraAdapter`] (every adapted
//! module, trainable or frozen, DyLoRA truncation), [`targeted_linears`] and the
//! [`AdapterSummary`] that `sqlora adapter inspect` prints.

use std::collections::{BTreeMap, BTreeSet};

use candle_core::{DType, Device, Tensor, Var};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::config::layer_index;
use super::{AdapterError, LoraConfig, Result, TargetModules, PROJECTIONS};
use crate::llama::{Linear, Model};

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
