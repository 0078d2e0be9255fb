//! The training forward and backward pass: a shared prefix computed once per micro-batch,
//! per-layer activation checkpointing, and frozen base weights that never get a gradient.
//!
//! Every example of a domain starts with the same system + schema prompt (~900 tokens of
//! ~1,000). A [`PrefixBatch`] splits a micro-batch into that common prefix, one row `[1, P]`,
//! and the rows' suffixes `[B, S]` (question, answer, end marker). Each layer runs the prefix
//! once; every suffix row attends to the prefix's keys and values (broadcast over the rows)
//! and to its own. The prefix's keys and values are functions of the adapter too, so their
//! gradient is the sum over all rows, which autograd gives through the broadcast.
//!
//! Memory: the backward pass recomputes one layer at a time from its saved input
//! (`checkpointing`): the first pass keeps only each layer's input, then for the layers from
//! last to first the layer is rerun with gradients and back-propagated with the vector-Jacobian
//! product of the layer above. Peak memory is one layer's graph instead of thirty. With
//! `checkpointing = false` the first pass keeps the graph of every adapted layer instead and
//! nothing is recomputed (about a quarter less compute; fine for short prompts).
//!
//! Frozen weights: candle's matmul backward computes the gradient of both operands, so a plain
//! `x·Wᵀ` would spend as much again computing (and storing) a gradient for every frozen `W`.
//! [`frozen_linear`] is a custom op whose backward only returns `dy·W`.
//!
//! Dropout masks come from a counter-based hash of (seed, micro-batch, layer, module), so the
//! recomputation sees the same masks as the first pass, and a resumed run the same masks as an
//! uninterrupted one.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Shape, Tensor, TensorId, Var, D};
use sqlora_model::llama::{attention, Linear, Model, Proj, Projector, MASKED};
use sqlora_model::lora::{LoraAdapter, LoraModule};

use crate::batch::TokenizedExample;
use crate::error::{Result, TrainError};

/// A micro-batch split into a shared prefix and per-row suffixes.
#[derive(Debug, Clone)]
pub struct PrefixBatch {
    /// The shared prefix `[1, P]` (u32), `None` when the rows share no usable prefix.
    pub prefix: Option<Tensor>,
    /// Suffix ids `[B, S]` (u32), right-padded.
    pub suffix: Tensor,
    /// Positions of the prefix `[1, P]`.
    prefix_pos: Option<Tensor>,
    /// Positions of the suffixes `[B, S]`: `P..P + S`.
    suffix_pos: Tensor,
    /// Causal mask of the prefix `[1, 1, P, P]`.
    prefix_mask: Option<Tensor>,
    /// Mask of the suffixes over prefix + suffix keys `[B, 1, S, P + S]`.
    suffix_mask: Tensor,
    /// Flat indices `row * S + i` into the suffix of the positions that predict an answer token.
    pub predict_at: Tensor,
    /// The answer tokens predicted there.
    pub targets: Tensor,
    /// Rows B.
    pub rows: usize,
    /// Shared prefix length P.
    pub prefix_len: usize,
    /// Padded suffix length S.
    pub suffix_len: usize,
    /// Real tokens of the micro-batch counted as full sequences (what a plain batch processes).
    pub tokens: usize,
    /// Tokens the model actually runs: P + the real suffix tokens.
    pub computed_tokens: usize,
    /// Tokens the loss is computed on.
    pub answer_tokens: usize,
    /// Every row's token ids (unpadded): with `prefix_len`, the key of a row's frozen-layer
    /// hidden states in a [`FrozenCache`].
    row_ids: Vec<Vec<u32>>,
}

/// The prefix `examples` share in a [`PrefixBatch`]: their longest common prefix, kept shorter
/// than every answer start (so each position that predicts an answer token lies in the suffix).
pub fn shared_prefix_len(examples: &[&TokenizedExample]) -> usize {
    let Some(first) = examples.first() else {
        return 0;
    };
    let mut p = examples
        .iter()
        .map(|e| e.answer_start.saturating_sub(1))
        .min()
        .unwrap_or(0);
    for e in &examples[1..] {
        p = p.min(
            first
                .ids
                .iter()
                .zip(&e.ids)
                .take_while(|(a, b)| a == b)
                .count(),
        );
    }
    p
}

/// Splits `examples` into their longest common prefix (kept shorter than every answer start, so
/// each position that predicts an answer token lies in the suffix) and right-padded suffixes.
pub fn make_prefix_batch(
    examples: &[&TokenizedExample],
    pad_id: u32,
    device: &Device,
) -> Result<PrefixBatch> {
    let Some(first) = examples.first() else {
        return Err(TrainError::Data(
            "a micro-batch needs at least one example".into(),
        ));
    };
    for e in examples {
        if e.answer_start == 0 || e.answer_start >= e.ids.len() {
            return Err(TrainError::Data(
                "an example needs at least one prompt token and one answer token".into(),
            ));
        }
    }
    let p = shared_prefix_len(examples);
    let rows = examples.len();
    let s = examples.iter().map(|e| e.len() - p).max().unwrap_or(0);
    let mut ids = Vec::with_capacity(rows * s);
    let mut pos = Vec::with_capacity(rows * s);
    let mut mask = Vec::with_capacity(rows * s * (p + s));
    let mut predict_at = Vec::new();
    let mut targets = Vec::new();
    let mut tokens = 0;
    let mut computed = p;
    for (r, e) in examples.iter().enumerate() {
        let len = e.len() - p;
        ids.extend_from_slice(&e.ids[p..]);
        ids.extend(std::iter::repeat_n(pad_id, s - len));
        pos.extend((0..s).map(|i| (p + i) as u32));
        for i in 0..s {
            mask.extend(std::iter::repeat_n(0f32, p));
            mask.extend((0..s).map(|j| if j <= i && j < len { 0.0 } else { MASKED }));
        }
        tokens += e.len();
        computed += len;
        for i in e.answer_start..e.len() {
            predict_at.push((r * s + i - 1 - p) as u32);
            targets.push(e.ids[i]);
        }
    }
    let answer_tokens = targets.len();
    let (prefix, prefix_pos, prefix_mask) = if p > 0 {
        let causal: Vec<f32> = (0..p)
            .flat_map(|i| (0..p).map(move |j| if j <= i { 0.0 } else { MASKED }))
            .collect();
        let ppos: Vec<u32> = (0..p as u32).collect();
        (
            Some(Tensor::new(&first.ids[..p], device)?.unsqueeze(0)?),
            Some(Tensor::from_vec(ppos, (1, p), device)?),
            Some(Tensor::from_vec(causal, (1, 1, p, p), device)?),
        )
    } else {
        (None, None, None)
    };
    Ok(PrefixBatch {
        prefix,
        suffix: Tensor::from_vec(ids, (rows, s), device)?,
        prefix_pos,
        suffix_pos: Tensor::from_vec(pos, (rows, s), device)?,
        prefix_mask,
        suffix_mask: Tensor::from_vec(mask, (rows, 1, s, p + s), device)?,
        predict_at: Tensor::from_vec(predict_at, answer_tokens, device)?,
        targets: Tensor::from_vec(targets, answer_tokens, device)?,
        rows,
        prefix_len: p,
        suffix_len: s,
        tokens,
        computed_tokens: computed,
        answer_tokens,
        row_ids: examples.iter().map(|e| e.ids.clone()).collect(),
    })
}

/// `y = x·Wᵀ` whose backward gives `dy·W` and nothing for the frozen `W`.
struct FrozenMatmul {
    /// `[out, in]`.
    w: Tensor,
}

impl CustomOp1 for FrozenMatmul {
    fn name(&self) -> &'static str {
        "frozen-matmul"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let data = s.as_slice::<f32>()?;
        let Some((a, b)) = l.contiguous_offsets() else {
            candle_core::bail!("frozen-matmul: non-contiguous input");
        };
        let x = Tensor::from_slice(&data[a..b], l.shape(), &Device::Cpu)?;
        let y = x.matmul(&self.w.t()?)?;
        let shape = y.shape().clone();
        let out = y.flatten_all()?.to_vec1::<f32>()?;
        Ok((CpuStorage::F32(out), shape))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad.matmul(&self.w)?))
    }
}

/// `x·Wᵀ (+ b)` of a frozen [`Linear`] for `x` `[.., in]`, always with f32 activations (the
/// exact product, whatever the model's inference default); when `x` tracks gradients, only the
/// gradient with respect to `x` is ever computed (on the CPU; other devices fall back to a
/// plain matmul).
pub fn frozen_linear(lin: &Linear, x: &Tensor) -> candle_core::Result<Tensor> {
    if !x.track_op() {
        return lin.forward_as(x, sqlora_model::quant::ActivationPrecision::F32);
    }
    let dims = x.dims().to_vec();
    let in_dim = dims.last().copied().unwrap_or(0);
    let rows: usize = dims[..dims.len().saturating_sub(1)].iter().product();
    let x2 = x.reshape((rows, in_dim))?.contiguous()?;
    let w = lin.weight();
    let mut y = if x2.device().is_cpu() && x2.dtype() == DType::F32 && w.dtype() == DType::F32 {
        x2.apply_op1_arc(std::sync::Arc::new(Box::new(FrozenMatmul {
            w: w.detach(),
        })))?
    } else {
        x2.matmul(&w.detach().t()?)?
    };
    if let Some(b) = lin.bias() {
        y = y.broadcast_add(&b.detach())?;
    }
    let mut out = dims;
    if let Some(last) = out.last_mut() {
        *last = w.dim(0)?;
    }
    y.reshape(out)
}

/// How the adapter is applied while training.
#[derive(Debug, Clone, Copy)]
pub struct AdapterMode {
    /// Input dropout of the adapter (0 = none).
    pub dropout: f32,
    /// Train only the first `rank` components (DyLoRA); `None` = the full rank.
    pub rank: Option<usize>,
    /// Seed of this micro-batch's dropout masks.
    pub seed: u64,
}

impl AdapterMode {
    /// No dropout, full rank.
    pub fn eval() -> AdapterMode {
        AdapterMode {
            dropout: 0.0,
            rank: None,
            seed: 0,
        }
    }
}

/// A 64-bit mixing function (splitmix64's finaliser); the trainer's counter-based RNG.
pub fn mix(z: u64) -> u64 {
    splitmix(z)
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// An inverted-dropout mask (0 or 1/(1-p)) of `shape`, a pure function of `seed`.
fn dropout_mask(
    shape: &[usize],
    p: f32,
    seed: u64,
    device: &Device,
) -> candle_core::Result<Tensor> {
    let n: usize = shape.iter().product();
    let keep = 1.0 / (1.0 - p);
    let threshold = (p as f64 * u32::MAX as f64) as u32;
    let base = splitmix(seed);
    let data: Vec<f32> = (0..n as u64)
        .map(|i| {
            if (splitmix(base ^ i) >> 32) as u32 >= threshold {
                keep
            } else {
                0.0
            }
        })
        .collect();
    Tensor::from_vec(data, shape, device)
}

/// The pieces of one run of the decoder over a [`PrefixBatch`].
struct Pass<'a> {
    model: &'a Model,
    adapter: &'a LoraAdapter,
    mode: AdapterMode,
    batch: &'a PrefixBatch,
    rope_p: Option<(Tensor, Tensor)>,
    rope_s: (Tensor, Tensor),
}

/// The trainer's [`Projector`]: the frozen base product ([`frozen_linear`]: no gradient for the
/// base weight) plus the adapter's (rank-truncated, dropped-out) LoRA term, whose variables
/// carry gradients when `track`. `part` tells the prefix (0) from the suffixes (1) in the
/// dropout salt.
struct TrainProj<'p, 'a> {
    pass: &'p Pass<'a>,
    track: bool,
    part: u64,
}

impl Projector for TrainProj<'_, '_> {
    fn project(
        &self,
        layer: usize,
        which: Proj,
        lin: &Linear,
        x: &Tensor,
    ) -> sqlora_model::Result<Tensor> {
        let y = frozen_linear(lin, x)?;
        let Some(m) = self.pass.adapter.module(lin.name()) else {
            return Ok(y);
        };
        let salt = (layer as u64) << 16 | which.index() << 4 | self.part;
        Ok((y + self.pass.lora(m, x, self.track, salt)?)?)
    }
}

impl Pass<'_> {
    fn lora(
        &self,
        m: &LoraModule,
        x: &Tensor,
        track: bool,
        salt: u64,
    ) -> candle_core::Result<Tensor> {
        let r = m.rank();
        let b_rank = self.mode.rank.map_or(r, |b| b.clamp(1, r));
        let (mut a, mut b) = if track {
            (m.a.clone(), m.b.clone())
        } else {
            (m.a.detach(), m.b.detach())
        };
        let mut scale = m.scale;
        if b_rank < r {
            a = a.narrow(0, 0, b_rank)?;
            b = b.narrow(1, 0, b_rank)?;
            scale = if self.adapter.config.use_rslora {
                m.alpha / (b_rank as f64).sqrt()
            } else {
                m.alpha / b_rank as f64
            };
        }
        let dims = x.dims().to_vec();
        let in_dim = dims.last().copied().unwrap_or(0);
        let rows: usize = dims[..dims.len().saturating_sub(1)].iter().product();
        let mut x2 = x.reshape((rows, in_dim))?;
        if self.mode.dropout > 0.0 {
            let mask = dropout_mask(
                x2.dims(),
                self.mode.dropout,
                splitmix(self.mode.seed ^ splitmix(salt)),
                x2.device(),
            )?;
            x2 = (x2 * mask)?;
        }
        let y = (x2.matmul(&a.t()?)?.matmul(&b.t()?)? * scale)?;
        let mut out = dims;
        if let Some(last) = out.last_mut() {
            *last = m.out_features();
        }
        y.reshape(out)
    }

    /// Layer `l` on the prefix hidden states `xp` `[1, P, H]` and the suffix ones `xs`
    /// `[B, S, H]`, through the model's own [`sqlora_model::llama::DecoderLayer`]. With
    /// `need_prefix_out` false (the last layer) only the prefix's keys and values are computed,
    /// not its output.
    fn layer(
        &self,
        l: usize,
        xp: Option<&Tensor>,
        xs: &Tensor,
        track: bool,
        need_prefix_out: bool,
    ) -> Result<(Option<Tensor>, Tensor)> {
        let layer = &self.model.layers()[l];
        let rows = xs.dim(0)?;

        // The prefix: keys and values always, output unless this is the last layer.
        let mut prefix_kv = None;
        let mut xp_out = None;
        if let (Some(xp), Some((cos, sin)), Some(pmask)) =
            (xp, &self.rope_p, &self.batch.prefix_mask)
        {
            let proj = TrainProj {
                pass: self,
                track,
                part: 0,
            };
            if need_prefix_out {
                let mut attend = |_: usize, q: &Tensor, k: &Tensor, v: &Tensor| {
                    prefix_kv = Some((k.clone(), v.clone()));
                    attention(q, k, v, Some(pmask))
                };
                xp_out = Some(layer.forward(xp, cos, sin, &proj, &mut attend)?);
            } else {
                prefix_kv = Some(layer.kv(xp, cos, sin, &proj)?);
            }
        }

        // The suffixes attend to the prefix (broadcast over the rows) and to themselves.
        let (cos, sin) = &self.rope_s;
        let proj = TrainProj {
            pass: self,
            track,
            part: 1,
        };
        let mut attend = |_: usize, q: &Tensor, k: &Tensor, v: &Tensor| {
            let (k, v) = match &prefix_kv {
                Some((kp, vp)) => {
                    let (_, nkv, p, hd) = kp.dims4()?;
                    let kp = kp.broadcast_as((rows, nkv, p, hd))?;
                    let vp = vp.broadcast_as((rows, nkv, p, hd))?;
                    (
                        Tensor::cat(&[&kp, k], 2)?.contiguous()?,
                        Tensor::cat(&[&vp, v], 2)?.contiguous()?,
                    )
                }
                None => (k.clone(), v.clone()),
            };
            attention(q, &k, &v, Some(&self.batch.suffix_mask))
        };
        let xs_out = layer.forward(xs, cos, sin, &proj, &mut attend)?;
        Ok((xp_out, xs_out))
    }

    /// The summed answer-token cross-entropy from the final hidden states of the suffixes.
    fn head_loss(&self, xs: &Tensor) -> Result<Tensor> {
        let h = self.model.final_norm().forward(xs)?;
        let hidden = h.dim(D::Minus1)?;
        let rows = h
            .reshape((self.batch.rows * self.batch.suffix_len, hidden))?
            .index_select(&self.batch.predict_at, 0)?;
        let logits = frozen_linear(self.model.lm_head(), &rows)?.to_dtype(DType::F32)?;
        let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
        let picked = logp.gather(&self.batch.targets.unsqueeze(1)?, 1)?;
        Ok(picked.sum_all()?.neg()?)
    }
}

fn embed(model: &Model, ids: &Tensor) -> Result<Tensor> {
    Ok(model.embed(ids)?.detach())
}

fn new_pass<'a>(
    model: &'a Model,
    adapter: &'a LoraAdapter,
    batch: &'a PrefixBatch,
    mode: AdapterMode,
) -> Result<Pass<'a>> {
    let rope_p = match &batch.prefix_pos {
        Some(p) => Some(model.rope(p)?),
        None => None,
    };
    Ok(Pass {
        model,
        adapter,
        mode,
        batch,
        rope_p,
        rope_s: model.rope(&batch.suffix_pos)?,
    })
}

/// The summed answer-token loss of `batch` without gradients (for evaluation).
pub fn loss_sum(
    model: &Model,
    adapter: &LoraAdapter,
    batch: &PrefixBatch,
    mode: AdapterMode,
) -> Result<f64> {
    let pass = new_pass(model, adapter, batch, mode)?;
    let mut xp = batch.prefix.as_ref().map(|p| embed(model, p)).transpose()?;
    let mut xs = embed(model, &batch.suffix)?;
    let n = model.layers().len();
    for l in 0..n {
        let (p, s) = pass.layer(l, xp.as_ref(), &xs, false, l + 1 < n)?;
        xp = p;
        xs = s;
    }
    Ok(pass.head_loss(&xs)?.to_scalar::<f32>()? as f64)
}

/// Runs `batch` forward and backward with checkpointing. The loss is the summed answer-token
/// cross-entropy times `scale`; its gradients with respect to the adapter's variables are added
/// to `grads` (indexed like [`LoraAdapter::vars`]). Returns the unscaled loss sum.
pub fn loss_and_grads(
    model: &Model,
    adapter: &LoraAdapter,
    batch: &PrefixBatch,
    mode: AdapterMode,
    scale: f64,
    grads: &mut [Tensor],
) -> Result<f64> {
    let mut opts = PassOptions {
        checkpointing: true,
        cache: None,
    };
    loss_and_grads_with(model, adapter, batch, mode, scale, grads, &mut opts)
}

/// How [`loss_and_grads_with`] trades memory for compute.
#[derive(Debug, Default)]
pub struct PassOptions<'a> {
    /// Recompute each adapted layer in the backward pass from its saved input (true), or keep
    /// the graph of every adapted layer from the first pass (false: nothing is rerun).
    pub checkpointing: bool,
    /// Hidden states at the lowest adapted layer from earlier passes over the same rows.
    pub cache: Option<&'a mut FrozenCache>,
}

/// [`loss_and_grads`], with activation checkpointing on or off and an optional
/// [`FrozenCache`]. The result is the same either way.
pub fn loss_and_grads_with(
    model: &Model,
    adapter: &LoraAdapter,
    batch: &PrefixBatch,
    mode: AdapterMode,
    scale: f64,
    grads: &mut [Tensor],
    opts: &mut PassOptions<'_>,
) -> Result<f64> {
    let checkpointing = opts.checkpointing;
    let vars = adapter.vars();
    if grads.len() != vars.len() {
        return Err(TrainError::Data(format!(
            "{} gradient buffers for {} variables",
            grads.len(),
            vars.len()
        )));
    }
    let index: HashMap<TensorId, usize> = vars
        .iter()
        .enumerate()
        .map(|(i, v)| (v.as_tensor().id(), i))
        .collect();
    let pass = new_pass(model, adapter, batch, mode)?;
    let n = model.layers().len();
    // Below the lowest adapted layer nothing trains: the backward pass stops there.
    let lowest = lowest_adapted_layer(adapter);
    let hidden = model.config().hidden_size;

    // Below `lowest` the hidden states depend on the tokens only: start from the cache's.
    let cached = match opts.cache.as_deref() {
        Some(c) if lowest > 0 => c.get(batch, lowest, hidden)?,
        _ => None,
    };
    let (mut xp, mut xs, start) = match cached {
        Some((p, s)) => (p, s, lowest),
        None => (
            batch.prefix.as_ref().map(|p| embed(model, p)).transpose()?,
            embed(model, &batch.suffix)?,
            0,
        ),
    };

    // Pass 1: keep each layer's input; without checkpointing, also the graph of each adapted
    // layer (its inputs as variables, so the graph ends at the layer boundary).
    let mut saved: Vec<Option<(Option<Tensor>, Tensor)>> = vec![None; n];
    let mut graphs: Vec<Option<LayerGraph>> = (0..n).map(|_| None).collect();
    for l in start..n {
        if l == lowest && start < lowest {
            if let Some(c) = opts.cache.as_deref_mut() {
                c.put(batch, lowest, xp.as_ref(), &xs)?;
            }
        }
        if !checkpointing && l >= lowest {
            // The graph holds the layer's inputs; nothing needs to be saved besides it.
            let g = run_layer_graph(&pass, l, xp.as_ref(), &xs, l + 1 < n)?;
            xp = g.p_out.as_ref().map(|t| t.detach());
            xs = g.s_out.detach();
            graphs[l] = Some(g);
        } else {
            let (p, s) = pass.layer(l, xp.as_ref(), &xs, false, l + 1 < n)?;
            if l >= lowest {
                saved[l] = Some((xp.take(), xs));
            }
            xp = p;
            xs = s;
        }
    }

    // The head: loss and its gradient with respect to the last hidden states.
    let xs_var = Var::from_tensor(&xs)?;
    let loss = pass.head_loss(xs_var.as_tensor())?;
    let loss_value = loss.to_scalar::<f32>()? as f64;
    let store = (loss * scale)?.backward()?;
    let mut gs = grad_of(&store, xs_var.as_tensor())?;
    let mut gp: Option<Tensor> = None;

    // Pass 2: from the last layer down, (re)build each layer's graph and back-propagate the
    // vector-Jacobian product of the layer above.
    for l in (lowest..n).rev() {
        let g = match graphs[l].take() {
            Some(g) => g,
            None => {
                let Some((xp_in, xs_in)) = &saved[l] else {
                    return Err(TrainError::Data(format!("layer {l}'s input was not kept")));
                };
                run_layer_graph(&pass, l, xp_in.as_ref(), xs_in, l + 1 < n)?
            }
        };
        let mut surrogate = (&g.s_out * &gs)?.sum_all()?;
        if let (Some(p_out), Some(gpv)) = (&g.p_out, &gp) {
            surrogate = (surrogate + (p_out * gpv)?.sum_all()?)?;
        }
        let store = surrogate.backward()?;
        for (id, &i) in &index {
            if let Some(gr) = store.get_id(*id) {
                grads[i] = (&grads[i] + gr)?;
            }
        }
        if l > lowest {
            gs = grad_of(&store, g.xs.as_tensor())?;
            gp = match &g.xp {
                Some(v) => Some(grad_of(&store, v.as_tensor())?),
                None => None,
            };
        }
    }
    Ok(loss_value)
}

/// Hidden states at the input of the lowest adapted layer, per shared prefix and per row.
///
/// Nothing below the lowest adapted layer trains and no dropout applies there, so those hidden
/// states are a function of the tokens alone and the same at every epoch: the trainer computes
/// them once and later passes over the same rows start at the lowest adapted layer. A row's
/// entry holds its positions after the micro-batch's shared prefix, keyed by the prefix length
/// and the row's tokens; padding is filled with zeros, which no real position attends to. The
/// cache is saved with each checkpoint, so a resumed run computes exactly what an
/// uninterrupted one does.
#[derive(Debug, Default)]
pub struct FrozenCache {
    layer: usize,
    prefixes: HashMap<Vec<u32>, Tensor>,
    rows: HashMap<usize, HashMap<Vec<u32>, Tensor>>,
    bytes: usize,
    cap_bytes: usize,
}

impl FrozenCache {
    /// An empty cache that stops growing at `cap_bytes` of hidden states.
    pub fn new(cap_bytes: usize) -> Self {
        FrozenCache {
            cap_bytes,
            ..Default::default()
        }
    }

    /// Bytes of hidden states held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Rows held (over every prefix length).
    pub fn rows(&self) -> usize {
        self.rows.values().map(HashMap::len).sum()
    }

    fn get(
        &self,
        batch: &PrefixBatch,
        layer: usize,
        hidden: usize,
    ) -> Result<Option<(Option<Tensor>, Tensor)>> {
        let p = batch.prefix_len;
        if layer != self.layer || batch.row_ids.is_empty() {
            return Ok(None);
        }
        let xp = match &batch.prefix {
            Some(_) => match self.prefixes.get(&batch.row_ids[0][..p]) {
                Some(t) => Some(t.clone()),
                None => return Ok(None),
            },
            None => None,
        };
        let Some(by_ids) = self.rows.get(&p) else {
            return Ok(None);
        };
        let s = batch.suffix_len;
        let mut rows = Vec::with_capacity(batch.rows);
        for ids in &batch.row_ids {
            let Some(t) = by_ids.get(ids.as_slice()) else {
                return Ok(None);
            };
            let len = ids.len() - p;
            rows.push(if len < s {
                Tensor::cat(
                    &[t, &Tensor::zeros((s - len, hidden), t.dtype(), t.device())?],
                    0,
                )?
            } else {
                t.clone()
            });
        }
        Ok(Some((xp, Tensor::stack(&rows, 0)?)))
    }

    fn put(
        &mut self,
        batch: &PrefixBatch,
        layer: usize,
        xp: Option<&Tensor>,
        xs: &Tensor,
    ) -> Result<()> {
        if layer != self.layer {
            *self = FrozenCache::new(self.cap_bytes);
            self.layer = layer;
        }
        let p = batch.prefix_len;
        if let (Some(xp), Some(first)) = (xp, batch.row_ids.first()) {
            let size = xp.elem_count() * xp.dtype().size_in_bytes();
            if !self.prefixes.contains_key(&first[..p]) && self.bytes + size <= self.cap_bytes {
                self.prefixes.insert(first[..p].to_vec(), xp.copy()?);
                self.bytes += size;
            }
        }
        for (r, ids) in batch.row_ids.iter().enumerate() {
            let len = ids.len() - p;
            let size = len * xs.dim(D::Minus1)? * xs.dtype().size_in_bytes();
            let by_ids = self.rows.entry(p).or_default();
            if by_ids.contains_key(ids.as_slice()) || self.bytes + size > self.cap_bytes {
                continue;
            }
            by_ids.insert(ids.clone(), xs.get(r)?.narrow(0, 0, len)?.copy()?);
            self.bytes += size;
        }
        Ok(())
    }

    /// Writes the cache as safetensors (ids as u32 tensors beside the hidden states).
    pub fn save(&self, path: &std::path::Path) -> Result<()> {
        let dev = Device::Cpu;
        let mut map: HashMap<String, Tensor> = HashMap::new();
        map.insert("layer".into(), Tensor::new(&[self.layer as u32], &dev)?);
        for (i, (ids, h)) in self.prefixes.iter().enumerate() {
            map.insert(
                format!("prefix.{i}.ids"),
                Tensor::new(ids.as_slice(), &dev)?,
            );
            map.insert(format!("prefix.{i}.h"), h.to_device(&dev)?);
        }
        let mut i = 0;
        for (p, by_ids) in &self.rows {
            for (ids, h) in by_ids {
                map.insert(format!("row.{i}.p"), Tensor::new(&[*p as u32], &dev)?);
                map.insert(format!("row.{i}.ids"), Tensor::new(ids.as_slice(), &dev)?);
                map.insert(format!("row.{i}.h"), h.to_device(&dev)?);
                i += 1;
            }
        }
        candle_core::safetensors::save(&map, path)
            .map_err(|e| TrainError::Checkpoint(format!("{}: {e}", path.display())))
    }

    /// Reads a cache written by [`FrozenCache::save`] onto `device`.
    pub fn load(path: &std::path::Path, cap_bytes: usize, device: &Device) -> Result<Self> {
        let bad = |what: &str| TrainError::Checkpoint(format!("{}: {what}", path.display()));
        let map = candle_core::safetensors::load(path, device)
            .map_err(|e| TrainError::Checkpoint(format!("{}: {e}", path.display())))?;
        let ids_of = |name: &str| -> Result<Vec<u32>> {
            Ok(map.get(name).ok_or_else(|| bad(name))?.to_vec1::<u32>()?)
        };
        let mut cache = FrozenCache::new(cap_bytes);
        cache.layer = ids_of("layer")?
            .first()
            .copied()
            .ok_or_else(|| bad("layer"))? as usize;
        for i in 0.. {
            let Some(h) = map.get(&format!("prefix.{i}.h")) else {
                break;
            };
            cache.bytes += h.elem_count() * h.dtype().size_in_bytes();
            cache
                .prefixes
                .insert(ids_of(&format!("prefix.{i}.ids"))?, h.clone());
        }
        for i in 0.. {
            let Some(h) = map.get(&format!("row.{i}.h")) else {
                break;
            };
            let p = ids_of(&format!("row.{i}.p"))?
                .first()
                .copied()
                .ok_or_else(|| bad("p"))?;
            cache.bytes += h.elem_count() * h.dtype().size_in_bytes();
            cache
                .rows
                .entry(p as usize)
                .or_default()
                .insert(ids_of(&format!("row.{i}.ids"))?, h.clone());
        }
        Ok(cache)
    }
}

/// One layer run with a graph: its inputs as variables and its outputs.
struct LayerGraph {
    xp: Option<Var>,
    xs: Var,
    p_out: Option<Tensor>,
    s_out: Tensor,
}

fn run_layer_graph(
    pass: &Pass<'_>,
    l: usize,
    xp: Option<&Tensor>,
    xs: &Tensor,
    keep_prefix: bool,
) -> Result<LayerGraph> {
    let xp = xp.map(Var::from_tensor).transpose()?;
    let xs = Var::from_tensor(xs)?;
    let (p_out, s_out) = pass.layer(
        l,
        xp.as_ref().map(|v| v.as_tensor()),
        xs.as_tensor(),
        true,
        keep_prefix,
    )?;
    Ok(LayerGraph {
        xp,
        xs,
        p_out,
        s_out,
    })
}

/// The layer index of a module path like `model.layers.12.mlp.up_proj`.
/// The lowest layer `adapter` adapts (0 when its modules name none): below it nothing trains,
/// so the backward pass stops there and the hidden states depend on the tokens only.
pub fn lowest_adapted_layer(adapter: &LoraAdapter) -> usize {
    adapter
        .modules()
        .keys()
        .filter_map(|k| layer_of(k))
        .min()
        .unwrap_or(0)
}

/// The layer index in a module key such as `model.layers.7.self_attn.q_proj`.
fn layer_of(key: &str) -> Option<usize> {
    let rest = &key[key.find("layers.")? + "layers.".len()..];
    rest.split('.').next()?.parse().ok()
}

fn grad_of(store: &GradStore, t: &Tensor) -> Result<Tensor> {
    match store.get(t) {
        Some(g) => Ok(g.clone()),
        None => Ok(t.zeros_like()?),
    }
}
