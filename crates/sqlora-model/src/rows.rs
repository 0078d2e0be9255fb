//! A forward pass over rows that each own their key/value cache (the serving engine's step).
//!
//! [`crate::llama::Cache`] keeps one rectangular cache per batch, which suits a batch that
//! starts and ends together. A continuous-batching scheduler (Orca, vLLM) needs more: rows join
//! and leave between decode steps, a joining row starts from a cached prompt prefix, and rows
//! feed different numbers of tokens. So here every row has its own [`RowKv`], and [`step`] runs
//! the model's one decoder layer ([`crate::llama::DecoderLayer::forward`]) with the projections
//! batched over all rows and attention per row over that row's cache alone ([`RowsAttend`]). No
//! padding slot is ever stored, so a row's result does not depend on the other rows, and a
//! prefix is reused by copying its keys and values ([`RowKv::fork`]).

use candle_core::{DType, Device, IndexOp, Tensor};

use crate::config::Config;
use crate::error::{ModelError, Result};
use crate::llama::{attention, causal_mask, Attend, Model, WithAdapters};
use crate::lora::AdapterBatch;

fn gen_err(msg: impl Into<String>) -> ModelError {
    ModelError::Generation(msg.into())
}

/// One row's keys and values for every layer, `[1, kv_heads, capacity, head_dim]` each,
/// filled up to [`RowKv::len`].
#[derive(Debug, Clone)]
pub struct RowKv {
    layers: Vec<(Tensor, Tensor)>,
    len: usize,
    kv_heads: usize,
    head_dim: usize,
}

impl RowKv {
    /// An empty cache with room for `capacity` positions (it grows when needed).
    pub fn new(cfg: &Config, capacity: usize, device: &Device) -> Result<RowKv> {
        let shape = (1, cfg.num_key_value_heads, capacity.max(1), cfg.head_dim);
        let layers = (0..cfg.num_hidden_layers)
            .map(|_| {
                Ok((
                    Tensor::zeros(shape, DType::F32, device)?,
                    Tensor::zeros(shape, DType::F32, device)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RowKv {
            layers,
            len: 0,
            kv_heads: cfg.num_key_value_heads,
            head_dim: cfg.head_dim,
        })
    }

    /// Positions cached.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of the cached positions (keys and values of every layer, f32).
    pub fn bytes(&self) -> usize {
        self.len * self.layers.len() * 2 * self.kv_heads * self.head_dim * 4
    }

    fn capacity(&self) -> usize {
        self.layers
            .first()
            .and_then(|(k, _)| k.dims().get(2).copied())
            .unwrap_or(0)
    }

    /// A copy holding the same positions with room for `capacity` (at least [`RowKv::len`]).
    pub fn fork(&self, capacity: usize) -> Result<RowKv> {
        let cap = capacity.max(self.len).max(1);
        let mut layers = Vec::with_capacity(self.layers.len());
        for (k, v) in &self.layers {
            let (_, h, _, d) = k.dims4()?;
            let nk = Tensor::zeros((1, h, cap, d), DType::F32, k.device())?;
            let nv = Tensor::zeros((1, h, cap, d), DType::F32, v.device())?;
            if self.len > 0 {
                nk.slice_set(&k.narrow(2, 0, self.len)?.contiguous()?, 2, 0)?;
                nv.slice_set(&v.narrow(2, 0, self.len)?.contiguous()?, 2, 0)?;
            }
            layers.push((nk, nv));
        }
        Ok(RowKv {
            layers,
            len: self.len,
            kv_heads: self.kv_heads,
            head_dim: self.head_dim,
        })
    }

    /// A copy trimmed to exactly its cached positions (what a prefix cache stores).
    pub fn compact(&self) -> Result<RowKv> {
        self.fork(self.len)
    }

    /// Writes `k`, `v` `[1, kv_heads, t, d]` for `layer` after the cached positions and returns
    /// views over everything cached for that layer including them ([`RowKv::commit`] advances).
    fn append(&mut self, layer: usize, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let t = k.dim(2)?;
        let need = self.len + t;
        if need > self.capacity() {
            let grown = self.fork(need.max(self.capacity() * 2))?;
            self.layers = grown.layers;
        }
        let (kb, vb) = self
            .layers
            .get(layer)
            .ok_or_else(|| gen_err(format!("row cache has no layer {layer}")))?;
        kb.slice_set(&k.contiguous()?, 2, self.len)?;
        vb.slice_set(&v.contiguous()?, 2, self.len)?;
        Ok((kb.narrow(2, 0, need)?, vb.narrow(2, 0, need)?))
    }

    fn commit(&mut self, t: usize) {
        self.len += t;
    }
}

/// One row of a [`step`]: its cache and the tokens it feeds (at positions `kv.len()..`).
pub struct Feed<'a> {
    /// The row's cache; the new tokens' keys and values are appended to it.
    pub kv: &'a mut RowKv,
    /// The new tokens (at least one).
    pub tokens: &'a [u32],
}

/// The [`Attend`] of [`step`]: each row's new keys and values go to its own cache, and each
/// row attends over that cache alone (rows feeding fewer tokens than the step's widest row
/// were padded; their padding never reaches a cache and their outputs there are zeros).
struct RowsAttend<'a, 'b> {
    feeds: &'a mut [Feed<'b>],
    t_max: usize,
    device: Device,
}

impl Attend for RowsAttend<'_, '_> {
    fn attend(&mut self, layer: usize, q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
        let (b, nh, _, hd) = q.dims4()?;
        // Decode on the CPU: one token per row, every row in one parallel pass.
        if self.t_max == 1 && self.device.is_cpu() && b > 1 {
            let mut kvs = Vec::with_capacity(b);
            for (i, f) in self.feeds.iter_mut().enumerate() {
                kvs.push(f.kv.append(layer, &k.narrow(0, i, 1)?, &v.narrow(0, i, 1)?)?);
            }
            if let Some(out) = crate::cpu_attn::attend_rows(q, &kvs)? {
                return Ok(out);
            }
            // Not CPU f32 after all: undo nothing (the writes stand, as in the path below),
            // and attend row by row over the views just made.
            let outs = kvs
                .iter()
                .enumerate()
                .map(|(i, (ka, va))| attention(&q.narrow(0, i, 1)?.contiguous()?, ka, va, None))
                .collect::<Result<Vec<_>>>()?;
            return Ok(Tensor::cat(&outs, 0)?);
        }
        let mut outs = Vec::with_capacity(b);
        for (i, f) in self.feeds.iter_mut().enumerate() {
            let t = f.tokens.len();
            let past = f.kv.len();
            let qi = q.narrow(0, i, 1)?.narrow(2, 0, t)?.contiguous()?;
            let ki = k.narrow(0, i, 1)?.narrow(2, 0, t)?;
            let vi = v.narrow(0, i, 1)?.narrow(2, 0, t)?;
            let (ka, va) = f.kv.append(layer, &ki, &vi)?;
            let mask = if t > 1 {
                Some(causal_mask(t, past, &self.device)?)
            } else {
                None
            };
            let out = match crate::cpu_attn::attend(&qi, &ka, &va, mask.as_ref())? {
                Some(o) => o,
                None => attention(&qi, &ka, &va, mask.as_ref())?,
            };
            let out = if t < self.t_max {
                let pad = Tensor::zeros((1, self.t_max - t, nh * hd), out.dtype(), &self.device)?;
                Tensor::cat(&[&out, &pad], 1)?
            } else {
                out
            };
            outs.push(out);
        }
        Ok(Tensor::cat(&outs, 0)?)
    }
}

/// Runs the model over each row's new tokens (row `i` uses adapter row `i` of `adapters`) and
/// returns each row's logits after its last new token.
///
/// Projections run batched over all rows (rows feeding fewer tokens are padded, and padding
/// never reaches a cache); attention runs per row over that row's own cache. An error leaves
/// the rows' committed lengths unchanged.
pub fn step(
    model: &Model,
    feeds: &mut [Feed<'_>],
    adapters: Option<&AdapterBatch>,
) -> Result<Vec<Vec<f32>>> {
    let b = feeds.len();
    if b == 0 {
        return Ok(Vec::new());
    }
    if let Some(rows) = adapters.and_then(|a| a.rows()) {
        if rows != b {
            return Err(gen_err(format!("{b} rows but adapters for {rows}")));
        }
    }
    let cfg = model.config();
    let vocab = cfg.vocab_size as u32;
    let t_max = feeds.iter().map(|f| f.tokens.len()).max().unwrap_or(0);
    if feeds.iter().any(|f| f.tokens.is_empty()) {
        return Err(gen_err("a row feeds no tokens"));
    }
    let mut ids = Vec::with_capacity(b * t_max);
    let mut pos = Vec::with_capacity(b * t_max);
    for f in feeds.iter() {
        if let Some(bad) = f.tokens.iter().find(|&&t| t >= vocab) {
            return Err(gen_err(format!(
                "token id {bad} is outside the vocabulary of {vocab}"
            )));
        }
        let start = f.kv.len() as u32;
        let n = f.tokens.len();
        ids.extend_from_slice(f.tokens);
        pos.extend((0..n as u32).map(|i| start + i));
        // Padding repeats the last token at its own position; its outputs are discarded.
        let last = f.tokens[n - 1];
        ids.extend(std::iter::repeat_n(last, t_max - n));
        pos.extend(std::iter::repeat_n(start + n as u32 - 1, t_max - n));
    }
    let device = model.device().clone();
    let (cos, sin) = model.rope(&Tensor::from_vec(pos, (b, t_max), &device)?)?;
    let mut x = model.embed(&Tensor::from_vec(ids, (b, t_max), &device)?)?;
    let proj = WithAdapters(adapters);
    {
        let mut attend = RowsAttend {
            feeds: &mut *feeds,
            t_max,
            device: device.clone(),
        };
        for layer in model.layers() {
            x = layer.forward(&x, &cos, &sin, &proj, &mut attend)?;
        }
    }
    for f in feeds.iter_mut() {
        let t = f.tokens.len();
        f.kv.commit(t);
    }
    let x = model.final_norm().forward(&x)?;
    let lasts = feeds
        .iter()
        .enumerate()
        .map(|(i, f)| x.i((i, f.tokens.len() - 1)))
        .collect::<candle_core::Result<Vec<_>>>()?;
    let last = Tensor::stack(&lasts, 0)?.contiguous()?;
    Ok(model
        .logits(&last)?
        .to_dtype(DType::F32)?
        .to_vec2::<f32>()?)
}
