//! The Llama / Qwen2 decoder, written like candle-transformers' `llama.rs`: a [`Config`], plain
//! modules, weights through a [`VarBuilder`] with Hugging Face tensor names.
//!
//! * Rotary embeddings use the Hugging Face "rotate half" layout with per-row position ids, so
//!   left-padded batches put every row's first real token at position 0.
//! * Attention is grouped-query: the query heads sharing a key/value head are folded into the
//!   row dimension of one matmul instead of copying the keys (`repeat_kv`).
//! * Padding and causality come in as one additive mask `[b, 1, t, past + t]`
//!   ([`attention_mask`]); without a mask the forward pass is plainly causal.
//! * The forward pass is differentiable: when an input carries a gradient (e.g. LoRA `Var`s
//!   feeding a projection), the norm, rope and softmax switch from candle's fused inference
//!   kernels (which have no backward pass) to plain tensor ops.
//! * [`Model::forward`] returns hidden states after the final norm; [`Model::logits`] applies
//!   the vocabulary projection only to the positions it is given.

use candle_core::{DType, Device, IndexOp, Module, Tensor, D};
use candle_nn::VarBuilder;

use crate::config::{Config, RopeScaling};
use crate::error::{ModelError, Result};
use crate::lora::AdapterBatch;

/// The additive value of a masked attention position (finite, so fully masked padding rows
/// stay finite instead of turning into NaN).
pub const MASKED: f32 = f32::MIN;

/// A projection `y = x·Wᵀ (+ b)` with a frozen base weight `[out, in]` and its module path
/// (`"model.layers.0.self_attn.q_proj"`), so adapters can be attached by name.
///
/// The weight is either a dense tensor or only quantized blocks ([`Linear::with_quant`]): then
/// no f32 copy is kept. Products run on the blocks: with 8-bit activations for any number of
/// rows (the inference default), or with f32 activations for few rows while larger ones
/// dequantize the blocks a tile of output rows at a time ([`Linear::activation_precision`]);
/// [`Linear::weight`] dequantizes the whole weight on first use (for training or merging) and
/// keeps it from then on.
#[derive(Debug, Clone)]
pub struct Linear {
    /// The dense weight, set at construction or dequantized from `quant` on demand (shared by
    /// clones, so a model cloned before the first use does not dequantize twice).
    weight: std::sync::Arc<std::sync::OnceLock<Tensor>>,
    bias: Option<Tensor>,
    name: String,
    /// The weight as GGUF blocks, used for inference (see [`crate::quant`]).
    quant: Option<std::sync::Arc<crate::quant::QWeight>>,
    /// How activations enter products with `quant` (products tracking a gradient are f32).
    precision: crate::quant::ActivationPrecision,
}

/// f32 values of one dequantized tile of output rows in a multi-row product with blocks.
const DEQUANT_TILE_VALUES: usize = 1 << 21;

impl Linear {
    /// Wraps a weight `[out, in]` and an optional bias `[out]`.
    pub fn new(weight: Tensor, bias: Option<Tensor>, name: impl Into<String>) -> Linear {
        Linear {
            weight: std::sync::Arc::new(std::sync::OnceLock::from(weight)),
            bias,
            name: name.into(),
            quant: None,
            precision: crate::quant::ActivationPrecision::inference_default(),
        }
    }

    /// How activations enter the products with quantized blocks (default
    /// [`crate::quant::ActivationPrecision::inference_default`]); products that track a
    /// gradient always use f32.
    pub fn activation_precision(&self) -> crate::quant::ActivationPrecision {
        self.precision
    }

    /// Sets [`Linear::activation_precision`].
    pub fn set_activation_precision(&mut self, precision: crate::quant::ActivationPrecision) {
        self.precision = precision;
    }

    /// Replaces the weight by `quant`, the same weight as quantized blocks (CPU only), and
    /// drops the f32 copy: products of at most [`crate::quant::MAX_ROWS`] rows run on the
    /// blocks, larger ones dequantize them a tile at a time, and [`Linear::weight`] dequantizes
    /// on demand. A linear built anew (e.g. a merged weight) has no blocks.
    pub fn with_quant(mut self, quant: crate::quant::QWeight) -> Result<Linear> {
        if [quant.rows(), quant.cols()] != [self.out_features(), self.in_features()] {
            return Err(ModelError::Format(format!(
                "{}: quantized weight [{}, {}] for a weight [{}, {}]",
                self.name,
                quant.rows(),
                quant.cols(),
                self.out_features(),
                self.in_features()
            )));
        }
        if let Some(w) = self.weight.get() {
            if !w.device().is_cpu() {
                return Err(ModelError::Format(format!(
                    "{}: quantized blocks are for CPU weights only",
                    self.name
                )));
            }
        }
        self.quant = Some(std::sync::Arc::new(quant));
        self.weight = std::sync::Arc::new(std::sync::OnceLock::new());
        Ok(self)
    }

    /// The quantized blocks of the weight, if any.
    pub fn quant(&self) -> Option<&crate::quant::QWeight> {
        self.quant.as_deref()
    }

    /// Whether an f32 copy of the weight is held in memory (always without blocks; with
    /// blocks only once [`Linear::weight`] was called).
    pub fn has_dense_weight(&self) -> bool {
        self.weight.get().is_some()
    }

    /// Loads `<prefix>.weight` (and `<prefix>.bias` when `bias`) from `vb`.
    pub fn load(vb: VarBuilder, in_dim: usize, out_dim: usize, bias: bool) -> Result<Linear> {
        let weight = vb.get((out_dim, in_dim), "weight")?;
        let bias = if bias {
            Some(vb.get(out_dim, "bias")?)
        } else {
            None
        };
        Ok(Linear::new(weight, bias, vb.prefix()))
    }

    /// The base weight `[out, in]`; with blocks only, dequantized on the first call (on the
    /// CPU) and kept from then on.
    pub fn weight(&self) -> &Tensor {
        self.weight.get_or_init(|| {
            let q = self
                .quant
                .as_deref()
                .expect("a Linear holds a dense weight or blocks");
            Tensor::from_vec(q.dequantize(), (q.rows(), q.cols()), &Device::Cpu)
                .expect("blocks dequantize to rows · cols values")
        })
    }

    /// The bias `[out]`, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// Replaces the bias (used by tests and adapter merging).
    pub fn set_bias(&mut self, bias: Option<Tensor>) {
        self.bias = bias;
    }

    /// The module path, e.g. `model.layers.3.mlp.down_proj`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The same weight (shared, not copied) under another module path.
    pub fn renamed(&self, name: impl Into<String>) -> Linear {
        Linear {
            name: name.into(),
            ..self.clone()
        }
    }

    /// Input features.
    pub fn in_features(&self) -> usize {
        match (self.weight.get(), &self.quant) {
            (Some(w), _) => w.dims().get(1).copied().unwrap_or(0),
            (None, Some(q)) => q.cols(),
            (None, None) => 0,
        }
    }

    /// Output features.
    pub fn out_features(&self) -> usize {
        match (self.weight.get(), &self.quant) {
            (Some(w), _) => w.dims().first().copied().unwrap_or(0),
            (None, Some(q)) => q.rows(),
            (None, None) => 0,
        }
    }

    /// `x·Wᵀ (+ b)` for `x` of shape `[.., in]`; the leading dimensions are flattened into one
    /// matmul. Products with quantized blocks use [`Linear::activation_precision`].
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.forward_as(x, self.precision)
    }

    /// [`Linear::forward`] with activations of `precision` in products with quantized blocks
    /// (the trainer's frozen products use [`crate::quant::ActivationPrecision::F32`]).
    pub fn forward_as(
        &self,
        x: &Tensor,
        precision: crate::quant::ActivationPrecision,
    ) -> candle_core::Result<Tensor> {
        let dims = x.dims().to_vec();
        let in_dim = match dims.last() {
            Some(&d) => d,
            None => candle_core::bail!("linear {}: scalar input", self.name),
        };
        let rows: usize = dims[..dims.len() - 1].iter().product();
        let x2 = x.reshape((rows, in_dim))?;
        let quantized = match &self.quant {
            Some(q) => crate::quant::forward_2d(q, &x2, precision)?,
            None => None,
        };
        let mut y = if let Some(y) = quantized {
            y
        } else if let Some(w) = self.weight.get() {
            // For a few rows (batched decoding) `(W·xᵀ)ᵀ` streams the weight rows contiguously
            // and measured faster with candle's gemm than `x·Wᵀ`; both are the same product.
            if (2..=12).contains(&rows) {
                w.matmul(&x2.t()?)?.t()?.contiguous()?
            } else {
                x2.matmul(&w.t()?)?
            }
        } else if let Some(q) = &self.quant {
            Self::tiled_matmul(q, &x2)?
        } else {
            candle_core::bail!("linear {}: no weight", self.name)
        };
        if let Some(b) = &self.bias {
            y = y.broadcast_add(b)?;
        }
        let mut out_dims = dims;
        let last = out_dims.len() - 1;
        out_dims[last] = self.out_features();
        y.reshape(out_dims)
    }

    /// `x·Wᵀ` for any number of rows from blocks alone: a tile of output rows is dequantized
    /// (in parallel), multiplied with candle's gemm and dropped, so at most one tile of f32
    /// weights exists at a time.
    fn tiled_matmul(q: &crate::quant::QWeight, x: &Tensor) -> candle_core::Result<Tensor> {
        use rayon::prelude::*;
        let (rows, cols) = (q.rows(), q.cols());
        let x = x.contiguous()?;
        let tile = (DEQUANT_TILE_VALUES / cols).clamp(1, rows);
        let mut parts = Vec::with_capacity(rows.div_ceil(tile));
        let mut start = 0;
        while start < rows {
            let end = (start + tile).min(rows);
            let mut w = vec![0f32; (end - start) * cols];
            // Chunks of whole rows, a few per thread.
            let per = (end - start)
                .div_ceil(4 * rayon::current_num_threads().max(1))
                .max(1);
            w.par_chunks_mut(per * cols)
                .enumerate()
                .for_each(|(i, chunk)| {
                    let a = start + i * per;
                    q.dequantize_rows_into(a, a + chunk.len() / cols, chunk)
                });
            let w = Tensor::from_vec(w, (end - start, cols), x.device())?;
            parts.push(x.matmul(&w.t()?)?);
            start = end;
        }
        if parts.len() == 1 {
            Ok(parts.remove(0))
        } else {
            Tensor::cat(&parts, 1)
        }
    }
}

impl Linear {
    /// [`Linear::forward`] plus the LoRA term of this module for each row of `adapters`.
    pub fn forward_with(
        &self,
        x: &Tensor,
        adapters: Option<&AdapterBatch>,
    ) -> candle_core::Result<Tensor> {
        let y = self.forward(x)?;
        match adapters
            .map(|a| a.delta(&self.name, x))
            .transpose()?
            .flatten()
        {
            Some(delta) => y + delta,
            None => Ok(y),
        }
    }
}

impl Module for Linear {
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        Linear::forward(self, xs)
    }
}

/// Root-mean-square layer norm with a learned scale.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    /// Loads `<prefix>.weight` of size `dim`.
    pub fn load(vb: VarBuilder, dim: usize, eps: f64) -> Result<RmsNorm> {
        Ok(RmsNorm {
            weight: vb.get(dim, "weight")?,
            eps,
        })
    }

    /// The scale vector.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// Normalises the last dimension.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if x.track_op() || self.weight.track_op() {
            let dim = x.dim(D::Minus1)? as f64;
            let ms = (x.sqr()?.sum_keepdim(D::Minus1)? / dim)?;
            let normed = x.broadcast_div(&(ms + self.eps)?.sqrt()?)?;
            normed.broadcast_mul(&self.weight)
        } else {
            candle_nn::ops::rms_norm(&x.contiguous()?, &self.weight, self.eps as f32)
        }
    }
}

/// Softmax over the last dimension; differentiable when the input tracks gradients.
pub fn softmax_last(x: &Tensor) -> candle_core::Result<Tensor> {
    if x.track_op() {
        let max = x.max_keepdim(D::Minus1)?.detach();
        let e = x.broadcast_sub(&max)?.exp()?;
        let s = e.sum_keepdim(D::Minus1)?;
        e.broadcast_div(&s)
    } else {
        candle_nn::ops::softmax_last_dim(&x.contiguous()?)
    }
}

/// Applies rotate-half rope to `x: [b, h, t, d]` with `cos`/`sin: [b, t, d/2]`.
pub fn apply_rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> candle_core::Result<Tensor> {
    if x.track_op() {
        let d = x.dim(D::Minus1)?;
        let cos = Tensor::cat(&[cos, cos], D::Minus1)?.unsqueeze(1)?;
        let sin = Tensor::cat(&[sin, sin], D::Minus1)?.unsqueeze(1)?;
        let x1 = x.narrow(D::Minus1, 0, d / 2)?;
        let x2 = x.narrow(D::Minus1, d / 2, d / 2)?;
        let rot = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
        x.broadcast_mul(&cos)? + rot.broadcast_mul(&sin)?
    } else {
        candle_nn::rotary_emb::rope(&x.contiguous()?, cos, sin)
    }
}

/// Precomputed rotary tables `[max_positions, head_dim / 2]`.
#[derive(Debug, Clone)]
struct Rotary {
    cos: Tensor,
    sin: Tensor,
}

impl Rotary {
    fn new(cfg: &Config, device: &Device) -> Result<Rotary> {
        let half = cfg.head_dim / 2;
        let mut inv_freq: Vec<f64> = (0..half)
            .map(|i| 1.0 / cfg.rope_theta.powf((2 * i) as f64 / cfg.head_dim as f64))
            .collect();
        match &cfg.rope_scaling {
            None => {}
            Some(RopeScaling::Linear { factor }) => {
                for f in inv_freq.iter_mut() {
                    *f /= factor;
                }
            }
            Some(RopeScaling::Factors(factors)) => {
                if factors.len() != inv_freq.len() {
                    return Err(ModelError::Format(format!(
                        "{} rope frequency factors for {} frequencies",
                        factors.len(),
                        inv_freq.len()
                    )));
                }
                for (f, d) in inv_freq.iter_mut().zip(factors) {
                    *f /= d;
                }
            }
            Some(RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            }) => {
                let old = *original_max_position_embeddings as f64;
                let low_wavelen = old / low_freq_factor;
                let high_wavelen = old / high_freq_factor;
                for f in inv_freq.iter_mut() {
                    let wavelen = 2.0 * std::f64::consts::PI / *f;
                    if wavelen > low_wavelen {
                        *f /= factor;
                    } else if wavelen >= high_wavelen {
                        let smooth = (old / wavelen - low_freq_factor)
                            / (high_freq_factor - low_freq_factor);
                        *f = (1.0 - smooth) * *f / factor + smooth * *f;
                    }
                }
            }
        }
        let n = cfg.max_position_embeddings;
        let mut cos = Vec::with_capacity(n * half);
        let mut sin = Vec::with_capacity(n * half);
        for p in 0..n {
            for f in &inv_freq {
                let a = p as f64 * f;
                cos.push(a.cos() as f32);
                sin.push(a.sin() as f32);
            }
        }
        Ok(Rotary {
            cos: Tensor::from_vec(cos, (n, half), device)?,
            sin: Tensor::from_vec(sin, (n, half), device)?,
        })
    }

    /// `cos`, `sin` of shape `[b, t, d/2]` for positions `[b, t]`.
    fn gather(&self, positions: &Tensor) -> Result<(Tensor, Tensor)> {
        let (b, t) = positions.dims2()?;
        let flat = positions.flatten_all()?.to_dtype(DType::U32)?;
        let max_pos = self.cos.dim(0)?;
        let too_far = flat.max(0)?.to_scalar::<u32>()? as usize;
        if too_far >= max_pos {
            return Err(ModelError::Generation(format!(
                "position {too_far} is beyond the model's {max_pos} positions"
            )));
        }
        let cos = self.cos.index_select(&flat, 0)?.reshape((b, t, ()))?;
        let sin = self.sin.index_select(&flat, 0)?.reshape((b, t, ()))?;
        Ok((cos, sin))
    }
}

/// One layer's keys and values, preallocated along the sequence axis.
#[derive(Debug, Clone)]
struct LayerKv {
    k: Tensor,
    v: Tensor,
}

/// Per-layer keys and values of a batch, for incremental decoding.
///
/// Buffers are preallocated `[b, kv_heads, capacity, head_dim]` and written in place; they
/// grow (doubling) when a step would overflow them.
#[derive(Debug, Clone)]
pub struct Cache {
    layers: Vec<Option<LayerKv>>,
    len: usize,
    capacity_hint: usize,
}

impl Cache {
    /// An empty cache for `cfg`'s layers.
    pub fn new(cfg: &Config) -> Cache {
        Cache::with_capacity(cfg, 0)
    }

    /// An empty cache that reserves room for `capacity` positions on the first append.
    pub fn with_capacity(cfg: &Config, capacity: usize) -> Cache {
        Cache {
            layers: vec![None; cfg.num_hidden_layers],
            len: 0,
            capacity_hint: capacity,
        }
    }

    /// Positions cached so far (including left padding).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True before the first forward pass.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The batch size of the cached rows, once known.
    pub fn batch_size(&self) -> Option<usize> {
        self.layers
            .iter()
            .flatten()
            .next()
            .and_then(|l| l.k.dims().first().copied())
    }

    /// Keeps (and reorders/duplicates) the batch rows listed in `rows`, e.g. to drop finished
    /// rows or to follow beams.
    pub fn select_rows(&mut self, rows: &[u32]) -> Result<()> {
        for kv in self.layers.iter_mut().flatten() {
            let idx = Tensor::new(rows, kv.k.device())?;
            kv.k = kv.k.index_select(&idx, 0)?;
            kv.v = kv.v.index_select(&idx, 0)?;
        }
        Ok(())
    }

    /// Writes `k`, `v` (`[b, kv_heads, t, d]`) for `layer` at the current length and returns
    /// views over everything cached for that layer, including them.
    fn append(&mut self, layer: usize, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let (b, h, t, d) = k.dims4()?;
        let need = self.len + t;
        let slot = self
            .layers
            .get_mut(layer)
            .ok_or_else(|| ModelError::Generation(format!("cache has no layer {layer}")))?;
        let k = k.contiguous()?;
        let v = v.contiguous()?;
        let grow = match slot {
            None => Some(need.max(self.capacity_hint)),
            Some(kv) => {
                let (cb, _, cap, _) = kv.k.dims4()?;
                if cb != b {
                    return Err(ModelError::Generation(format!(
                        "cache holds {cb} rows, step has {b}"
                    )));
                }
                if need > cap {
                    Some(need.max(cap * 2))
                } else {
                    None
                }
            }
        };
        if let Some(cap) = grow {
            let nk = Tensor::zeros((b, h, cap, d), k.dtype(), k.device())?;
            let nv = Tensor::zeros((b, h, cap, d), v.dtype(), v.device())?;
            if let Some(old) = slot.as_ref() {
                if self.len > 0 {
                    nk.slice_set(&old.k.narrow(2, 0, self.len)?.contiguous()?, 2, 0)?;
                    nv.slice_set(&old.v.narrow(2, 0, self.len)?.contiguous()?, 2, 0)?;
                }
            }
            *slot = Some(LayerKv { k: nk, v: nv });
        }
        let kv = slot
            .as_ref()
            .ok_or_else(|| ModelError::Generation("cache slot vanished".to_string()))?;
        kv.k.slice_set(&k, 2, self.len)?;
        kv.v.slice_set(&v, 2, self.len)?;
        Ok((kv.k.narrow(2, 0, need)?, kv.v.narrow(2, 0, need)?))
    }
}

/// Which projection of a decoder layer a [`Projector`] computes. The discriminant is the
/// projection's index in the layer (the trainer salts its dropout masks with it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proj {
    Q = 0,
    K = 1,
    V = 2,
    O = 3,
    Gate = 4,
    Up = 5,
    Down = 6,
}

impl Proj {
    /// Every projection in layer order.
    pub const ALL: [Proj; 7] = [
        Proj::Q,
        Proj::K,
        Proj::V,
        Proj::O,
        Proj::Gate,
        Proj::Up,
        Proj::Down,
    ];

    /// The projection's index in its layer (0 for q … 6 for down).
    pub fn index(self) -> u64 {
        self as u64
    }
}

/// The hook through which a [`DecoderLayer`] computes its projections: the frozen base weight
/// plus whatever adapter term the caller adds. Inference and serving use [`WithAdapters`]
/// (each batch row's adapter through the multi-adapter gather); the trainer adds LoRA terms
/// that carry gradients and dropout, and keeps the base weight out of the backward pass.
pub trait Projector {
    /// `y = x·Wᵀ (+ b)` (+ the caller's adapter term) for projection `which` of layer `layer`.
    fn project(&self, layer: usize, which: Proj, lin: &Linear, x: &Tensor) -> Result<Tensor>;
}

/// The projector of inference and serving: each row's adapter from the batch, if any.
#[derive(Debug, Clone, Copy, Default)]
pub struct WithAdapters<'a, 'b>(pub Option<&'a AdapterBatch<'b>>);

impl Projector for WithAdapters<'_, '_> {
    fn project(&self, _layer: usize, _which: Proj, lin: &Linear, x: &Tensor) -> Result<Tensor> {
        Ok(lin.forward_with(x, self.0)?)
    }
}

/// The hook through which a [`DecoderLayer`] attends: given the rotated queries `[b, heads, t,
/// d]` and the new keys and values `[b, kv_heads, t, d]` of layer `layer`, return the attention
/// output `[b, t, heads · d]`. Where the keys and values go is the caller's business: the
/// model's batch [`Cache`], the server's per-row caches ([`crate::rows`]), or the trainer's
/// shared prompt prefix. [`attention`] is the tensor formulation every caller falls back to.
pub trait Attend {
    /// Attention of layer `layer` for the new positions.
    fn attend(&mut self, layer: usize, q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor>;
}

impl<F> Attend for F
where
    F: FnMut(usize, &Tensor, &Tensor, &Tensor) -> Result<Tensor>,
{
    fn attend(&mut self, layer: usize, q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
        self(layer, q, k, v)
    }
}

/// Grouped-query attention as tensor ops: `softmax(q·kᵀ / √d + mask)·v` for `q` `[b, heads, t,
/// d]` over `k`, `v` `[b, kv_heads, n, d]` with an additive `mask` `[b or 1, 1, t, n]`. The
/// query heads sharing a key/value head become extra rows of one matmul (no `repeat_kv` copy).
/// Differentiable (see [`softmax_last`]). Returns `[b, t, heads · d]`.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    let (b, nh, t, hd) = q.dims4()?;
    let nkv = k.dim(1)?;
    let kv_len = k.dim(2)?;
    if nkv == 0 || nh % nkv != 0 {
        return Err(ModelError::Generation(format!(
            "{nh} query heads cannot share {nkv} key/value heads"
        )));
    }
    let rep = nh / nkv;
    let q = (q.reshape((b, nkv, rep * t, hd))? * (1.0 / (hd as f64).sqrt()))?;
    let scores = q.matmul(&k.t()?)?.reshape((b, nkv, rep, t, kv_len))?;
    let scores = match mask {
        Some(m) => scores.broadcast_add(&m.unsqueeze(2)?)?,
        None => scores,
    };
    let probs = softmax_last(&scores)?.reshape((b, nkv, rep * t, kv_len))?;
    let out = probs.matmul(v)?; // [b, nkv, rep * t, hd]
    Ok(out
        .reshape((b, nh, t, hd))?
        .transpose(1, 2)?
        .reshape((b, t, nh * hd))?)
}

/// `[b, t, heads · d]` → `[b, heads, t, d]`, contiguous.
fn split_heads(x: &Tensor, heads: usize, hd: usize) -> Result<Tensor> {
    let (b, t, _) = x.dims3()?;
    Ok(x.reshape((b, t, heads, hd))?
        .transpose(1, 2)?
        .contiguous()?)
}

/// Grouped-query self-attention's projections (the attention itself is an [`Attend`]).
#[derive(Debug, Clone)]
struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    fn load(vb: VarBuilder, cfg: &Config) -> Result<Attention> {
        let h = cfg.hidden_size;
        let q_out = cfg.num_attention_heads * cfg.head_dim;
        let kv_out = cfg.num_key_value_heads * cfg.head_dim;
        let o_bias = cfg.attention_bias && cfg.arch == crate::config::Arch::Llama;
        Ok(Attention {
            q_proj: Linear::load(vb.pp("q_proj"), h, q_out, cfg.attention_bias)?,
            k_proj: Linear::load(vb.pp("k_proj"), h, kv_out, cfg.attention_bias)?,
            v_proj: Linear::load(vb.pp("v_proj"), h, kv_out, cfg.attention_bias)?,
            o_proj: Linear::load(vb.pp("o_proj"), q_out, h, o_bias)?,
            num_heads: cfg.num_attention_heads,
            num_kv_heads: cfg.num_key_value_heads,
            head_dim: cfg.head_dim,
        })
    }
}

/// The SwiGLU feed-forward block's projections.
#[derive(Debug, Clone)]
struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

impl Mlp {
    fn load(vb: VarBuilder, cfg: &Config) -> Result<Mlp> {
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(Mlp {
            gate_proj: Linear::load(vb.pp("gate_proj"), h, i, false)?,
            up_proj: Linear::load(vb.pp("up_proj"), h, i, false)?,
            down_proj: Linear::load(vb.pp("down_proj"), i, h, false)?,
        })
    }
}

/// One pre-norm decoder block: `x + attn(norm(x))`, then `+ mlp(norm(·))`.
///
/// This is the only implementation of the layer: [`Model::forward_with`] (batch cache),
/// [`crate::rows::step`] (the server's per-row caches) and the trainer's shared-prefix pass all
/// call [`DecoderLayer::forward`] (or its two halves, [`DecoderLayer::qkv`] and
/// [`DecoderLayer::finish`]) with their own [`Projector`] and [`Attend`].
#[derive(Debug, Clone)]
pub struct DecoderLayer {
    index: usize,
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: Mlp,
}

impl DecoderLayer {
    fn load(vb: VarBuilder, cfg: &Config, index: usize) -> Result<DecoderLayer> {
        Ok(DecoderLayer {
            index,
            input_layernorm: RmsNorm::load(
                vb.pp("input_layernorm"),
                cfg.hidden_size,
                cfg.rms_norm_eps,
            )?,
            self_attn: Attention::load(vb.pp("self_attn"), cfg)?,
            post_attention_layernorm: RmsNorm::load(
                vb.pp("post_attention_layernorm"),
                cfg.hidden_size,
                cfg.rms_norm_eps,
            )?,
            mlp: Mlp::load(vb.pp("mlp"), cfg)?,
        })
    }

    /// The layer's position in the model.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The projection `which`.
    pub fn linear(&self, which: Proj) -> &Linear {
        match which {
            Proj::Q => &self.self_attn.q_proj,
            Proj::K => &self.self_attn.k_proj,
            Proj::V => &self.self_attn.v_proj,
            Proj::O => &self.self_attn.o_proj,
            Proj::Gate => &self.mlp.gate_proj,
            Proj::Up => &self.mlp.up_proj,
            Proj::Down => &self.mlp.down_proj,
        }
    }

    /// Mutable access to the projection `which` (merging adapters, tests).
    pub fn linear_mut(&mut self, which: Proj) -> &mut Linear {
        match which {
            Proj::Q => &mut self.self_attn.q_proj,
            Proj::K => &mut self.self_attn.k_proj,
            Proj::V => &mut self.self_attn.v_proj,
            Proj::O => &mut self.self_attn.o_proj,
            Proj::Gate => &mut self.mlp.gate_proj,
            Proj::Up => &mut self.mlp.up_proj,
            Proj::Down => &mut self.mlp.down_proj,
        }
    }

    /// The norm before attention.
    pub fn input_layernorm(&self) -> &RmsNorm {
        &self.input_layernorm
    }

    /// The norm before the feed-forward block.
    pub fn post_attention_layernorm(&self) -> &RmsNorm {
        &self.post_attention_layernorm
    }

    /// The whole layer on `x` `[b, t, hidden]` with rotary tables `cos`, `sin` `[b, t, d/2]`.
    pub fn forward(
        &self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        proj: &dyn Projector,
        attn: &mut dyn Attend,
    ) -> Result<Tensor> {
        let (q, k, v) = self.qkv(x, cos, sin, proj)?;
        let a = attn.attend(self.index, &q, &k, &v)?;
        self.finish(x, &a, proj)
    }

    /// The first half: rotated queries `[b, heads, t, d]` and keys, values `[b, kv_heads, t, d]`
    /// of `norm(x)`.
    pub fn qkv(
        &self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        proj: &dyn Projector,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let h = self.input_layernorm.forward(x)?;
        let q = self.heads(&h, Proj::Q, proj)?;
        let (k, v) = self.kv_of_normed(&h, cos, sin, proj)?;
        Ok((apply_rope(&q, cos, sin)?, k, v))
    }

    /// Only the rotated keys and values of `norm(x)` (what a prefix needs in the last layer).
    pub fn kv(
        &self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        proj: &dyn Projector,
    ) -> Result<(Tensor, Tensor)> {
        let h = self.input_layernorm.forward(x)?;
        self.kv_of_normed(&h, cos, sin, proj)
    }

    fn kv_of_normed(
        &self,
        h: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        proj: &dyn Projector,
    ) -> Result<(Tensor, Tensor)> {
        let k = self.heads(h, Proj::K, proj)?;
        let v = self.heads(h, Proj::V, proj)?;
        Ok((apply_rope(&k, cos, sin)?, v))
    }

    fn heads(&self, h: &Tensor, which: Proj, proj: &dyn Projector) -> Result<Tensor> {
        let a = &self.self_attn;
        let n = if which == Proj::Q {
            a.num_heads
        } else {
            a.num_kv_heads
        };
        let y = proj.project(self.index, which, self.linear(which), h)?;
        split_heads(&y, n, a.head_dim)
    }

    /// The second half: `x + o(a)`, then the feed-forward block with its residual, for the
    /// attention output `a` `[b, t, heads · d]`.
    pub fn finish(&self, x: &Tensor, a: &Tensor, proj: &dyn Projector) -> Result<Tensor> {
        let l = self.index;
        let x = (x + proj.project(l, Proj::O, &self.self_attn.o_proj, a)?)?;
        let h = self.post_attention_layernorm.forward(&x)?;
        let g = proj
            .project(l, Proj::Gate, &self.mlp.gate_proj, &h)?
            .silu()?;
        let u = proj.project(l, Proj::Up, &self.mlp.up_proj, &h)?;
        let m = proj.project(l, Proj::Down, &self.mlp.down_proj, &(g * u)?)?;
        Ok((x + m)?)
    }
}

/// The [`Attend`] of [`Model::forward_with`]: append to the batch [`Cache`] (if any), then the
/// fused CPU pass ([`crate::cpu_attn::attend`]) where it applies, else [`attention`].
struct CacheAttend<'a> {
    cache: Option<&'a mut Cache>,
    mask: Option<&'a Tensor>,
}

impl Attend for CacheAttend<'_> {
    fn attend(&mut self, layer: usize, q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
        let (k, v) = match self.cache.as_deref_mut() {
            Some(c) => c.append(layer, k, v)?,
            None => (k.clone(), v.clone()),
        };
        // Decoding on the CPU: one fused pass instead of tiny batched matmuls (see cpu_attn).
        if let Some(out) = crate::cpu_attn::attend(q, &k, &v, self.mask)? {
            return Ok(out);
        }
        attention(q, &k, &v, self.mask)
    }
}

/// A causal language model of the Llama/Qwen2 family.
#[derive(Debug, Clone)]
pub struct Model {
    /// `model.embed_tokens`, `[vocab, hidden]`: a dense tensor or, from a GGUF file, only its
    /// quantized blocks (rows are dequantized as they are looked up).
    embed_tokens: Linear,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    /// `lm_head` (the embedding matrix itself when tied).
    lm_head: Linear,
    rotary: Rotary,
    cfg: Config,
    device: Device,
    /// Prompt positions per pass when a prompt is prefilled into a cache without a mask
    /// ([`PREFILL_CHUNK`] by default; 0: one pass).
    prefill_chunk: usize,
}

/// Positions per pass of a long prompt prefilled into a KV cache (see
/// [`Model::forward_with`]): the activations of one pass (the MLP's intermediate rows, the
/// attention scores of `chunk × keys`) grow with the rows, so a 750-token prompt in one pass
/// holds tens of MB that a chunk of 256 does not, while each chunk is still long enough for
/// the prompt kernels' tiles (llama.cpp's `n_ubatch` plays the same role).
pub const PREFILL_CHUNK: usize = 256;

impl Model {
    /// Builds the model from Hugging Face tensor names (`model.embed_tokens.weight`,
    /// `model.layers.N.self_attn.q_proj.weight`, ..., `lm_head.weight` unless tied).
    pub fn load(vb: VarBuilder, cfg: &Config) -> Result<Model> {
        cfg.validate()?;
        let device = vb.device().clone();
        let embed_tokens = Linear::new(
            vb.pp("model.embed_tokens")
                .get((cfg.vocab_size, cfg.hidden_size), "weight")?,
            None,
            "model.embed_tokens",
        );
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| DecoderLayer::load(vb.pp(format!("model.layers.{i}")), cfg, i))
            .collect::<Result<Vec<_>>>()?;
        let norm = RmsNorm::load(vb.pp("model.norm"), cfg.hidden_size, cfg.rms_norm_eps)?;
        let lm_head = if cfg.tie_word_embeddings {
            embed_tokens.renamed("lm_head")
        } else {
            Linear::load(vb.pp("lm_head"), cfg.hidden_size, cfg.vocab_size, false)?
        };
        Ok(Model {
            embed_tokens,
            layers,
            norm,
            lm_head,
            rotary: Rotary::new(cfg, &device)?,
            cfg: cfg.clone(),
            device,
            prefill_chunk: PREFILL_CHUNK,
        })
    }

    /// Sets the positions per pass of a prompt prefilled into a cache (0: one pass); see
    /// [`PREFILL_CHUNK`]. Any chunk size gives the results of one pass up to the order of
    /// attention's sums, as the prefix cache does.
    pub fn set_prefill_chunk(&mut self, chunk: usize) {
        self.prefill_chunk = chunk;
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The decoder layers, bottom first.
    pub fn layers(&self) -> &[DecoderLayer] {
        &self.layers
    }

    /// Mutable decoder layers (their projections: merging adapters, tests).
    pub fn layers_mut(&mut self) -> &mut [DecoderLayer] {
        &mut self.layers
    }

    /// The embedding matrix `[vocab, hidden]` (dequantized on first use when only blocks are
    /// held; [`Model::embed`] does not need it).
    pub fn embed_tokens(&self) -> &Tensor {
        self.embed_tokens.weight()
    }

    /// Keeps the embedding as quantized blocks only (see [`Linear::with_quant`]); a tied
    /// vocabulary head shares them.
    pub fn quantize_embeddings(&mut self, blocks: crate::quant::QWeight) -> Result<()> {
        self.embed_tokens = self.embed_tokens.clone().with_quant(blocks)?;
        if self.cfg.tie_word_embeddings {
            self.lm_head = self.embed_tokens.renamed("lm_head");
        }
        Ok(())
    }

    /// The final norm.
    pub fn final_norm(&self) -> &RmsNorm {
        &self.norm
    }

    /// The vocabulary projection.
    pub fn lm_head(&self) -> &Linear {
        &self.lm_head
    }

    /// Mutable vocabulary projection (attaching quantized blocks, tests).
    pub fn lm_head_mut(&mut self) -> &mut Linear {
        &mut self.lm_head
    }

    /// The embeddings `[b, t, hidden]` of token ids `[b, t]`.
    pub fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let hidden = self.cfg.hidden_size;
        let flat = ids.flatten_all()?.to_dtype(DType::U32)?;
        let e = &self.embed_tokens;
        match e.quant() {
            Some(q) if !e.has_dense_weight() => {
                let ids = flat.to_vec1::<u32>()?;
                let mut out = vec![0f32; ids.len() * hidden];
                for (&id, row) in ids.iter().zip(out.chunks_exact_mut(hidden)) {
                    let id = id as usize;
                    if id >= q.rows() {
                        return Err(ModelError::Generation(format!(
                            "token id {id} is outside the vocabulary of {}",
                            q.rows()
                        )));
                    }
                    q.dequantize_rows_into(id, id + 1, row);
                }
                Ok(Tensor::from_vec(out, (b, t, hidden), &self.device)?)
            }
            _ => Ok(e.weight().index_select(&flat, 0)?.reshape((b, t, hidden))?),
        }
    }

    /// Every projection of the decoder (q, k, v, o, gate, up, down per layer), in order.
    pub fn linears(&self) -> Vec<&Linear> {
        self.layers
            .iter()
            .flat_map(|l| Proj::ALL.map(|p| l.linear(p)))
            .collect()
    }

    /// Sets how activations enter the products with quantized blocks in every projection and
    /// the vocabulary head ([`Linear::set_activation_precision`]).
    pub fn set_activation_precision(&mut self, precision: crate::quant::ActivationPrecision) {
        for l in self.linears_mut() {
            l.set_activation_precision(precision);
        }
        self.lm_head.set_activation_precision(precision);
    }

    /// Mutable access to every projection of the decoder, in the order of [`Model::linears`].
    pub fn linears_mut(&mut self) -> Vec<&mut Linear> {
        self.layers
            .iter_mut()
            .flat_map(|l| {
                let Attention {
                    q_proj,
                    k_proj,
                    v_proj,
                    o_proj,
                    ..
                } = &mut l.self_attn;
                let Mlp {
                    gate_proj,
                    up_proj,
                    down_proj,
                } = &mut l.mlp;
                [
                    q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj,
                ]
            })
            .collect()
    }

    /// Runs the decoder on `input_ids` `[b, t]` (u32) at `positions` `[b, t]` (u32 or i64).
    ///
    /// `attn_mask` is additive, `[b, 1, t, past + t]` (see [`attention_mask`]); `None` means
    /// plain causal attention over the cache and the new tokens. With a `cache`, the new keys and
    /// values are appended to it. Returns hidden states `[b, t, hidden]` after the final norm.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        positions: &Tensor,
        attn_mask: Option<&Tensor>,
        cache: Option<&mut Cache>,
    ) -> Result<Tensor> {
        self.forward_with(input_ids, positions, attn_mask, cache, None)
    }

    /// [`Model::forward`] with LoRA adapters: each projection adds the LoRA term of the adapter
    /// its batch row names in `adapters` (see [`crate::lora::AdapterSet::batch`]).
    ///
    /// A prompt longer than the prefill chunk ([`PREFILL_CHUNK`]) going into a cache with plain
    /// causal attention is run chunk by chunk, each attending to the cache the previous ones
    /// filled, exactly as a prompt continues a cached prefix: the keys, values and hidden
    /// states of one pass up to the order of attention's sums, with the activations of one
    /// chunk alive at a time.
    pub fn forward_with(
        &self,
        input_ids: &Tensor,
        positions: &Tensor,
        attn_mask: Option<&Tensor>,
        mut cache: Option<&mut Cache>,
        adapters: Option<&AdapterBatch>,
    ) -> Result<Tensor> {
        let (b, t) = input_ids.dims2()?;
        if positions.dims2()? != (b, t) {
            return Err(ModelError::Generation(format!(
                "positions {:?} do not match input ids {:?}",
                positions.dims(),
                input_ids.dims()
            )));
        }
        let chunk = self.prefill_chunk;
        if let (Some(c), None, true) = (cache.as_deref_mut(), attn_mask, chunk > 0 && t > chunk) {
            let mut outs = Vec::with_capacity(t.div_ceil(chunk));
            for start in (0..t).step_by(chunk) {
                let n = chunk.min(t - start);
                outs.push(self.forward_with(
                    &input_ids.narrow(1, start, n)?,
                    &positions.narrow(1, start, n)?,
                    None,
                    Some(&mut *c),
                    adapters,
                )?);
            }
            return Ok(Tensor::cat(&outs, 1)?);
        }
        let past = cache.as_ref().map(|c| c.len()).unwrap_or(0);
        let own_mask;
        let mask = match attn_mask {
            Some(m) => {
                let want = [b, 1, t, past + t];
                let dims = m.dims();
                if dims.len() != 4
                    || (dims[0] != b && dims[0] != 1)
                    || dims[1] != 1
                    || dims[2] != t
                    || dims[3] != past + t
                {
                    return Err(ModelError::Generation(format!(
                        "attention mask {dims:?} does not fit {want:?}"
                    )));
                }
                Some(m)
            }
            None if t > 1 => {
                own_mask = causal_mask(t, past, &self.device)?;
                Some(&own_mask)
            }
            None => None,
        };
        let (cos, sin) = self.rotary.gather(positions)?;
        let mut x = self.embed(input_ids)?;
        let proj = WithAdapters(adapters);
        let mut attend = CacheAttend {
            cache: cache.as_deref_mut(),
            mask,
        };
        for layer in &self.layers {
            x = layer.forward(&x, &cos, &sin, &proj, &mut attend)?;
        }
        if let Some(c) = cache {
            c.len += t;
        }
        Ok(self.norm.forward(&x)?)
    }

    /// The rotary tables `cos`, `sin` `[b, t, head_dim / 2]` for `positions` `[b, t]`
    /// (for [`apply_rope`]); an error when a position is beyond the model's range.
    pub fn rope(&self, positions: &Tensor) -> Result<(Tensor, Tensor)> {
        self.rotary.gather(positions)
    }

    /// The vocabulary projection of `hidden` `[.., hidden]` → `[.., vocab]`.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        Ok(self.lm_head.forward(hidden)?)
    }

    /// Logits of the token following `ids` (one sequence, no cache).
    pub fn last_logits(&self, ids: &[u32]) -> Result<Vec<f32>> {
        if ids.is_empty() {
            return Err(ModelError::Generation("empty input".to_string()));
        }
        let t = ids.len();
        let input = Tensor::new(ids, &self.device)?.unsqueeze(0)?;
        let pos: Vec<u32> = (0..t as u32).collect();
        let pos = Tensor::new(pos.as_slice(), &self.device)?.unsqueeze(0)?;
        let hidden = self.forward(&input, &pos, None, None)?;
        let last = hidden.i((0, t - 1))?;
        Ok(self.logits(&last)?.to_dtype(DType::F32)?.to_vec1()?)
    }
}

/// A plain causal mask `[1, 1, t, past + t]`: query `i` sees keys `0..=past + i`.
pub fn causal_mask(t: usize, past: usize, device: &Device) -> Result<Tensor> {
    let total = past + t;
    let data: Vec<f32> = (0..t)
        .flat_map(|i| (0..total).map(move |j| if j <= past + i { 0.0 } else { MASKED }))
        .collect();
    Ok(Tensor::from_vec(data, (1, 1, t, total), device)?)
}

/// The additive mask `[b, 1, t, past + t]` for a batch whose key slots are real or padding.
///
/// `key_is_real[r]` has `past + t` entries (cached keys then the `t` new ones); query `i` of row
/// `r` sees key `j` when `j <= past + i` and the key is real.
pub fn attention_mask(key_is_real: &[Vec<bool>], t: usize, device: &Device) -> Result<Tensor> {
    let b = key_is_real.len();
    let total = key_is_real.first().map(|r| r.len()).unwrap_or(0);
    if total < t || key_is_real.iter().any(|r| r.len() != total) {
        return Err(ModelError::Generation(
            "attention mask rows differ in length or are shorter than the step".to_string(),
        ));
    }
    let past = total - t;
    let mut data = Vec::with_capacity(b * t * total);
    for row in key_is_real {
        for i in 0..t {
            for (j, &real) in row.iter().enumerate() {
                data.push(if real && j <= past + i { 0.0 } else { MASKED });
            }
        }
    }
    Ok(Tensor::from_vec(data, (b, 1, t, total), device)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Arch;

    fn cfg(rope_scaling: Option<RopeScaling>) -> Config {
        Config {
            arch: Arch::Llama,
            vocab_size: 8,
            hidden_size: 8,
            intermediate_size: 8,
            num_hidden_layers: 1,
            num_attention_heads: 2,
            num_key_value_heads: 1,
            head_dim: 4,
            rope_theta: 10_000.0,
            rms_norm_eps: 1e-6,
            max_position_embeddings: 16,
            tie_word_embeddings: true,
            attention_bias: false,
            rope_scaling,
        }
    }

    fn table(c: &Config) -> Vec<Vec<f32>> {
        Rotary::new(c, &Device::Cpu).unwrap().cos.to_vec2().unwrap()
    }

    #[test]
    fn rope_factors_divide_frequencies() {
        let plain = table(&cfg(None));
        assert_eq!(
            plain,
            table(&cfg(Some(RopeScaling::Factors(vec![1.0, 1.0]))))
        );
        assert_eq!(
            table(&cfg(Some(RopeScaling::Linear { factor: 2.0 }))),
            table(&cfg(Some(RopeScaling::Factors(vec![2.0, 2.0]))))
        );
        assert_ne!(
            plain,
            table(&cfg(Some(RopeScaling::Factors(vec![1.0, 4.0]))))
        );
        assert!(Rotary::new(&cfg(Some(RopeScaling::Factors(vec![1.0]))), &Device::Cpu).is_err());
    }

    #[test]
    fn masks_hide_padding_and_the_future() {
        let m = attention_mask(
            &[vec![false, true, true], vec![true, true, true]],
            2,
            &Device::Cpu,
        )
        .unwrap();
        assert_eq!(m.dims(), &[2, 1, 2, 3]);
        let flat: Vec<f32> = m.flatten_all().unwrap().to_vec1().unwrap();
        let at = |b: usize, q: usize| flat[b * 6 + q * 3..b * 6 + q * 3 + 3].to_vec();
        // Row 0: key 0 is padding; query 0 (position past+0 = 1) sees key 1 only.
        assert_eq!(at(0, 0), vec![MASKED, 0.0, MASKED]);
        assert_eq!(at(0, 1), vec![MASKED, 0.0, 0.0]);
        assert_eq!(at(1, 0), vec![0.0, 0.0, MASKED]);
        let c = causal_mask(2, 1, &Device::Cpu).unwrap();
        let c: Vec<f32> = c.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(c, vec![0.0, 0.0, MASKED, 0.0, 0.0, 0.0]);
    }
}
