//! A forward pass over rows that each own their key/value cache.
//!
//! [`sqlora_model::llama::Cache`] keeps one rectangular cache per batch, which suits a batch
//! that starts and ends together. The scheduler needs more: rows join and leave between decode
//! steps, a joining row starts from a cached prompt prefix, and rows feed different numbers of
//! tokens. So here every row has its own [`RowKv`], and [`step`] runs the model's own layers
//! (its public projections, norms, rope and fused CPU attention) with the projections batched
//! over all rows and attention per row over that row's cache alone. No padding slot is ever
//! stored, so a row's result does not depend on the other rows, and a prefix is reused by
//! copying its keys and values ([`RowKv::fork`]).

use candle_core::{DType, Device, IndexOp, Tensor};
use sqlora_model::config::Config;
use sqlora_model::llama::{causal_mask, Model};
use sqlora_model::lora::AdapterBatch;

use crate::error::{Result, ServeError};

fn gen_err(msg: impl Into<String>) -> ServeError {
    ServeError::Generation(msg.into())
}

/// The model's positional range. The rotary tables themselves are the model's own
/// ([`Model::rope`]), gathered per step for the rows' positions.
#[derive(Debug, Clone)]
pub struct Rope {
    max_positions: usize,
}

impl Rope {
    /// The range of `cfg` (the device is where the model lives; kept for the signature).
    pub fn new(cfg: &Config, _device: &Device) -> Result<Rope> {
        Ok(Rope {
            max_positions: cfg.max_position_embeddings,
        })
    }

    /// Positions the model can address.
    pub fn max_positions(&self) -> usize {
        self.max_positions
    }
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

    /// A copy trimmed to exactly its cached positions (what the prefix cache stores).
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

    /// Writes `k`, `v` `[1, kv_heads, t, d]` for `layer` after the cached positions.
    fn write(&mut self, layer: usize, k: &Tensor, v: &Tensor) -> Result<()> {
        self.append(layer, k, v).map(|_| ())
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

/// Runs the model over each row's new tokens (row `i` uses adapter row `i` of `adapters`) and
/// returns each row's logits after its last new token.
///
/// Projections run batched over all rows (rows feeding fewer tokens are padded, and padding
/// never reaches a cache); attention runs per row over that row's own cache.
pub fn step(
    model: &Model,
    rope: &Rope,
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
    let device = model.device();
    if let Some(&p) = pos.iter().max() {
        if p as usize >= rope.max_positions() {
            return Err(gen_err(format!(
                "position {p} is beyond the model's {} positions",
                rope.max_positions()
            )));
        }
    }
    let (cos, sin) = model.rope(&Tensor::from_vec(pos, (b, t_max), device)?)?;
    let ids = Tensor::from_vec(ids, b * t_max, device)?;
    let (nh, nkv, hd) = (
        cfg.num_attention_heads,
        cfg.num_key_value_heads,
        cfg.head_dim,
    );
    let mut x = model
        .embed_tokens
        .index_select(&ids, 0)?
        .reshape((b, t_max, cfg.hidden_size))?;
    for (li, layer) in model.layers.iter().enumerate() {
        let h = layer.input_layernorm.forward(&x)?;
        let att = &layer.self_attn;
        let q = att
            .q_proj
            .forward_with(&h, adapters)?
            .reshape((b, t_max, nh, hd))?
            .transpose(1, 2)?
            .contiguous()?;
        let k = att
            .k_proj
            .forward_with(&h, adapters)?
            .reshape((b, t_max, nkv, hd))?
            .transpose(1, 2)?
            .contiguous()?;
        let v = att
            .v_proj
            .forward_with(&h, adapters)?
            .reshape((b, t_max, nkv, hd))?
            .transpose(1, 2)?
            .contiguous()?;
        let q = candle_nn::rotary_emb::rope(&q, &cos, &sin)?;
        let k = candle_nn::rotary_emb::rope(&k, &cos, &sin)?;
        let decode_only = t_max == 1 && device.is_cpu() && b > 1;
        let attn = if decode_only {
            for (i, f) in feeds.iter_mut().enumerate() {
                f.kv.write(li, &k.narrow(0, i, 1)?, &v.narrow(0, i, 1)?)?;
            }
            let qs = (q * (1.0 / (hd as f64).sqrt()))?;
            decode_attention(&qs, feeds, li, nh, nkv, hd)?
        } else {
            per_row_attention(&q, &k, &v, feeds, li, t_max, device)?
        };
        let a = att.o_proj.forward_with(&attn, adapters)?;
        x = (x + a)?;
        let h = layer.post_attention_layernorm.forward(&x)?;
        let g = layer.mlp.gate_proj.forward_with(&h, adapters)?.silu()?;
        let u = layer.mlp.up_proj.forward_with(&h, adapters)?;
        let m = layer.mlp.down_proj.forward_with(&(g * u)?, adapters)?;
        x = (x + m)?;
    }
    for f in feeds.iter_mut() {
        let t = f.tokens.len();
        f.kv.commit(t);
    }
    let x = model.norm.forward(&x)?;
    let lasts = feeds
        .iter()
        .enumerate()
        .map(|(i, f)| x.i((i, f.tokens.len() - 1)))
        .collect::<candle_core::Result<Vec<_>>>()?;
    let last = Tensor::stack(&lasts, 0)?.contiguous()?;
    let logits = model
        .logits(&last)?
        .to_dtype(DType::F32)?
        .to_vec2::<f32>()?;
    Ok(logits)
}

/// Attention row by row (any number of new tokens): append the row's keys and values, then
/// the model's fused CPU attention ([`sqlora_model::cpu_attn::attend`]) or, for long prefills,
/// the model's tensor formulation, over that row's cache. Returns `[b, t_max, heads · d]`.
fn per_row_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    feeds: &mut [Feed<'_>],
    li: usize,
    t_max: usize,
    device: &Device,
) -> Result<Tensor> {
    let (b, nh, _, hd) = q.dims4()?;
    let nkv = k.dim(1)?;
    let rep = nh / nkv;
    let mut outs = Vec::with_capacity(b);
    for (i, f) in feeds.iter_mut().enumerate() {
        let t = f.tokens.len();
        let past = f.kv.len();
        let qi = q.narrow(0, i, 1)?.narrow(2, 0, t)?.contiguous()?;
        let ki = k.narrow(0, i, 1)?.narrow(2, 0, t)?;
        let vi = v.narrow(0, i, 1)?.narrow(2, 0, t)?;
        let (ka, va) = f.kv.append(li, &ki, &vi)?;
        let mask = if t > 1 {
            Some(causal_mask(t, past, device)?)
        } else {
            None
        };
        let out =
            match sqlora_model::cpu_attn::attend(&qi, &ka, &va, mask.as_ref())? {
                Some(o) => o,
                None => {
                    let kv_len = past + t;
                    let qs = (qi.reshape((1, nkv, rep * t, hd))? * (1.0 / (hd as f64).sqrt()))?;
                    let scores = qs.matmul(&ka.t()?)?;
                    let scores = match &mask {
                        Some(m) => scores
                            .reshape((1, nkv, rep, t, kv_len))?
                            .broadcast_add(&m.unsqueeze(2)?)?,
                        None => scores.reshape((1, nkv, rep, t, kv_len))?,
                    };
                    let probs = candle_nn::ops::softmax_last_dim(&scores.contiguous()?)?
                        .reshape((1, nkv, rep * t, kv_len))?;
                    probs
                        .matmul(&va)?
                        .reshape((1, nh, t, hd))?
                        .transpose(1, 2)?
                        .reshape((1, t, nh * hd))?
                }
            };
        let out = if t < t_max {
            let pad = Tensor::zeros((1, t_max - t, nh * hd), out.dtype(), device)?;
            Tensor::cat(&[&out, &pad], 1)?
        } else {
            out
        };
        outs.push(out);
    }
    let attn = if b == 1 {
        outs.pop().ok_or_else(|| gen_err("no attention output"))?
    } else {
        Tensor::cat(&outs, 0)?
    };
    Ok(attn)
}

/// One row's key and value buffers of one layer, read in place.
#[derive(Clone, Copy)]
struct CacheView<'a> {
    k: &'a [f32],
    k_start: usize,
    v: &'a [f32],
    v_start: usize,
    /// Positions the buffers hold room for.
    cap: usize,
    /// Positions filled.
    len: usize,
}

/// Attention for decode steps (one new token per row), all rows in one parallel pass over
/// (row, kv head) pairs reading each row's own cache in place. The arithmetic is that of
/// [`sqlora_model::cpu_attn::attend`] (same dot products, softmax and accumulation order), so
/// the result is the same as attending row by row.
fn decode_attention(
    q_scaled: &Tensor,
    feeds: &[Feed<'_>],
    li: usize,
    nh: usize,
    nkv: usize,
    hd: usize,
) -> Result<Tensor> {
    use candle_core::Storage;
    use rayon::prelude::*;
    let b = feeds.len();
    let rep = nh / nkv;
    let q: Vec<f32> = q_scaled.flatten_all()?.to_vec1::<f32>()?;
    let guards: Vec<_> = feeds
        .iter()
        .map(|f| {
            let (k, v) = &f.kv.layers[li];
            // The new token was written at `len` and is not committed yet.
            (
                k.storage_and_layout(),
                v.storage_and_layout(),
                f.kv.len() + 1,
            )
        })
        .collect();
    let mut views: Vec<CacheView> = Vec::with_capacity(b);
    for ((ks, kl), (vs, vl), n) in &guards {
        let (Storage::Cpu(kc), Storage::Cpu(vc)) = (&**ks, &**vs) else {
            return Err(gen_err("decode attention needs CPU tensors"));
        };
        let cap = kl.dims()[2];
        views.push(CacheView {
            k: kc.as_slice::<f32>()?,
            k_start: kl.start_offset(),
            v: vc.as_slice::<f32>()?,
            v_start: vl.start_offset(),
            cap,
            len: *n,
        });
    }
    let pairs: Vec<(usize, usize)> = (0..b).flat_map(|r| (0..nkv).map(move |g| (r, g))).collect();
    let work = |&(r, g): &(usize, usize)| -> Vec<f32> {
        let CacheView {
            k: kd,
            k_start: ko,
            v: vd,
            v_start: vo,
            cap,
            len: n,
        } = views[r];
        let kbase = ko + g * cap * hd;
        let vbase = vo + g * cap * hd;
        let mut out = vec![0f32; rep * hd];
        let mut scores = vec![0f32; n];
        for hr in 0..rep {
            let h = g * rep + hr;
            let qrow = &q[(r * nh + h) * hd..][..hd];
            for (j, s) in scores.iter_mut().enumerate() {
                *s = dot(qrow, &kd[kbase + j * hd..][..hd]);
            }
            let max = scores.iter().fold(f32::NEG_INFINITY, |a, &x| a.max(x));
            let mut sum = 0f32;
            for s in scores.iter_mut() {
                *s = (*s - max).exp();
                sum += *s;
            }
            let o = &mut out[hr * hd..][..hd];
            for (j, p) in scores.iter().enumerate() {
                let p = p / sum;
                let vrow = &vd[vbase + j * hd..][..hd];
                for (x, y) in o.iter_mut().zip(vrow) {
                    *x += p * y;
                }
            }
        }
        out
    };
    let parts: Vec<Vec<f32>> = pairs.par_iter().map(work).collect();
    let mut y = vec![0f32; b * nh * hd];
    for ((r, g), part) in pairs.iter().zip(parts) {
        for hr in 0..rep {
            let h = g * rep + hr;
            y[(r * nh + h) * hd..][..hd].copy_from_slice(&part[hr * hd..][..hd]);
        }
    }
    Ok(Tensor::from_vec(y, (b, 1, nh * hd), &Device::Cpu)?)
}

/// The dot product of `sqlora_model::cpu_attn` (eight lanes, then the remainder, then the
/// lanes in order), so results match it bit for bit.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for v in acc {
        s += v;
    }
    s
}
