//! Grouped-query attention for a few new positions on the CPU, in one pass per (row, kv head).
//!
//! Decoding feeds one (or a few) query positions per row against hundreds of cached keys. As
//! tensor ops that is two batched matmuls of `b · kv_heads` tiny products plus a mask add and a
//! softmax, each op dispatched (and parallelised) separately; at batch 8 over a 400-token cache
//! it cost more than all the projections. [`attend`] computes the same thing directly: for each
//! (row, kv head) pair, in parallel, the scores of its query heads, the mask, an f32 softmax and
//! the weighted sum of values, written straight into the `[b, t, heads · head_dim]` layout the
//! output projection reads. It only differs from the tensor ops in summation order.

use candle_core::{DType, Device, Storage, Tensor};
use rayon::prelude::*;

/// Most new positions per row [`attend`] takes (beyond, the batched matmuls are efficient).
pub const MAX_NEW: usize = 16;

/// A read-only f32 view of a CPU tensor: its data and its layout.
struct View<'a> {
    data: &'a [f32],
    start: usize,
    stride: Vec<usize>,
}

/// Runs `f` on f32 views of `k` and `v` (any strides, unit innermost stride); `None` when a
/// tensor is not such a CPU f32 tensor.
fn with_views<R>(k: &Tensor, v: &Tensor, f: impl FnOnce(View, View) -> R) -> Option<R> {
    let (ks, kl) = k.storage_and_layout();
    let (vs, vl) = v.storage_and_layout();
    let (Storage::Cpu(kc), Storage::Cpu(vc)) = (&*ks, &*vs) else {
        return None;
    };
    let kd = kc.as_slice::<f32>().ok()?;
    let vd = vc.as_slice::<f32>().ok()?;
    if kl.stride().last() != Some(&1) || vl.stride().last() != Some(&1) {
        return None;
    }
    Some(f(
        View {
            data: kd,
            start: kl.start_offset(),
            stride: kl.stride().to_vec(),
        },
        View {
            data: vd,
            start: vl.start_offset(),
            stride: vl.stride().to_vec(),
        },
    ))
}

/// A contiguous f32 CPU copy of `t` as a `Vec` (small tensors only: queries and masks).
fn to_vec(t: &Tensor) -> candle_core::Result<Vec<f32>> {
    t.flatten_all()?.to_vec1::<f32>()
}

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

/// `softmax(q·kᵀ / √d + mask)·v` for `q` `[b, heads, t, d]` and `k`, `v` `[b, kv_heads, n, d]`
/// (views into a cache are fine), `mask` additive `[b or 1, 1, t, n]` or none; query head `h`
/// reads kv head `h / (heads / kv_heads)`. Returns `[b, t, heads · d]`, or `None` when the
/// inputs are not f32 CPU tensors without gradients or `t > MAX_NEW` (the caller then uses
/// tensor ops).
pub fn attend(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
) -> candle_core::Result<Option<Tensor>> {
    let (b, nh, t, d) = q.dims4()?;
    let (kb, nkv, n, kd) = k.dims4()?;
    let tensors = [Some(q), Some(k), Some(v), mask];
    if t == 0
        || t > MAX_NEW
        || kb != b
        || kd != d
        || v.dims() != k.dims()
        || nkv == 0
        || nh % nkv != 0
        || tensors
            .iter()
            .flatten()
            .any(|x| x.dtype() != DType::F32 || !x.device().is_cpu() || x.track_op())
    {
        return Ok(None);
    }
    let mask = match mask {
        Some(m) => {
            let md = m.dims();
            if md.len() != 4 || (md[0] != b && md[0] != 1) || md[1] != 1 || md[2] != t || md[3] != n
            {
                return Ok(None);
            }
            Some((to_vec(m)?, md[0] == b))
        }
        None => None,
    };
    let rep = nh / nkv;
    let scale = 1.0 / (d as f64).sqrt();
    // Scaled like the tensor path: (q · scale) then the products.
    let q = to_vec(&(q * scale)?)?;
    let pairs: Vec<(usize, usize)> = (0..b).flat_map(|r| (0..nkv).map(move |h| (r, h))).collect();
    let run = |kv: View, vv: View| -> Vec<Vec<f32>> {
        let work = |&(r, g): &(usize, usize)| -> Vec<f32> {
            let kbase = kv.start + r * kv.stride[0] + g * kv.stride[1];
            let vbase = vv.start + r * vv.stride[0] + g * vv.stride[1];
            let mut out = vec![0f32; rep * t * d];
            let mut scores = vec![0f32; n];
            for hr in 0..rep {
                let h = g * rep + hr;
                for i in 0..t {
                    let qrow = &q[((r * nh + h) * t + i) * d..][..d];
                    for (j, s) in scores.iter_mut().enumerate() {
                        let krow = &kv.data[kbase + j * kv.stride[2]..][..d];
                        *s = dot(qrow, krow);
                    }
                    if let Some((m, per_row)) = &mask {
                        let mrow = if *per_row { r } else { 0 };
                        let mrow = &m[(mrow * t + i) * n..][..n];
                        for (s, a) in scores.iter_mut().zip(mrow) {
                            *s += a;
                        }
                    }
                    let max = scores.iter().fold(f32::NEG_INFINITY, |a, &x| a.max(x));
                    let mut sum = 0f32;
                    for s in scores.iter_mut() {
                        *s = (*s - max).exp();
                        sum += *s;
                    }
                    let o = &mut out[(hr * t + i) * d..][..d];
                    for (j, p) in scores.iter().enumerate() {
                        let p = p / sum;
                        let vrow = &vv.data[vbase + j * vv.stride[2]..][..d];
                        for (x, y) in o.iter_mut().zip(vrow) {
                            *x += p * y;
                        }
                    }
                }
            }
            out
        };
        if pairs.len() > 1 {
            pairs.par_iter().map(work).collect()
        } else {
            pairs.iter().map(work).collect()
        }
    };
    let Some(parts) = with_views(k, v, run) else {
        return Ok(None);
    };
    // Scatter [b, kv head][rep, t, d] into [b, t, heads, d].
    let mut y = vec![0f32; b * t * nh * d];
    for ((r, g), part) in pairs.iter().zip(parts) {
        for hr in 0..rep {
            let h = g * rep + hr;
            for i in 0..t {
                let src = &part[(hr * t + i) * d..][..d];
                y[((r * t + i) * nh + h) * d..][..d].copy_from_slice(src);
            }
        }
    }
    Ok(Some(Tensor::from_vec(y, (b, t, nh * d), &Device::Cpu)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::D;
    use rand::{Rng, SeedableRng};

    /// The tensor-op formulation of `crate::llama::Attention` (q·kᵀ, mask, softmax, ·v).
    fn reference(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Tensor {
        let (b, nh, t, d) = q.dims4().unwrap();
        let (_, nkv, n, _) = k.dims4().unwrap();
        let rep = nh / nkv;
        let q = (q.reshape((b, nkv, rep * t, d)).unwrap() * (1.0 / (d as f64).sqrt())).unwrap();
        let s = q
            .matmul(&k.t().unwrap())
            .unwrap()
            .reshape((b, nkv, rep, t, n))
            .unwrap();
        let s = match mask {
            Some(m) => s.broadcast_add(&m.unsqueeze(2).unwrap()).unwrap(),
            None => s,
        };
        let p = candle_nn::ops::softmax(&s, D::Minus1)
            .unwrap()
            .reshape((b, nkv, rep * t, n))
            .unwrap();
        p.matmul(&v.contiguous().unwrap())
            .unwrap()
            .reshape((b, nh, t, d))
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .reshape((b, t, nh * d))
            .unwrap()
    }

    fn rand_t(rng: &mut rand::rngs::StdRng, shape: &[usize]) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| rng.gen_range(-2f32..2.0)).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn matches_tensor_ops_on_cache_views_with_masks() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for (b, nh, nkv, t, n, d) in [
            (1, 9, 3, 1, 40, 64),
            (3, 6, 2, 3, 17, 20),
            (2, 4, 4, 1, 5, 8),
        ] {
            let q = rand_t(&mut rng, &[b, nh, t, d]);
            // Keys and values as views into a larger cache buffer, like `Cache::append` returns.
            let kc = rand_t(&mut rng, &[b, nkv, n + 7, d]);
            let vc = rand_t(&mut rng, &[b, nkv, n + 7, d]);
            let k = kc.narrow(2, 0, n).unwrap();
            let v = vc.narrow(2, 0, n).unwrap();
            assert!(!k.is_contiguous());
            let mut mask = vec![0f32; b * t * n];
            for (i, m) in mask.iter_mut().enumerate() {
                if i % n != n - 1 && rng.gen_bool(0.3) {
                    *m = crate::llama::MASKED;
                }
            }
            let mask = Tensor::from_vec(mask, (b, 1, t, n), &Device::Cpu).unwrap();
            for m in [None, Some(&mask)] {
                let got = attend(&q, &k, &v, m).unwrap().expect("fast path taken");
                let want = reference(&q, &k, &v, m);
                let diff = (got - want)
                    .unwrap()
                    .abs()
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .max(0)
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap();
                assert!(diff < 1e-5, "b={b} nh={nh} t={t}: {diff}");
            }
        }
    }

    #[test]
    fn declines_what_it_does_not_handle() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let q = rand_t(&mut rng, &[1, 2, MAX_NEW + 1, 8]);
        let k = rand_t(&mut rng, &[1, 2, 20, 8]);
        assert!(attend(&q, &k, &k, None).unwrap().is_none());
        let q = rand_t(&mut rng, &[1, 2, 1, 8])
            .to_dtype(DType::F64)
            .unwrap();
        let k64 = k.to_dtype(DType::F64).unwrap();
        assert!(attend(&q, &k64, &k64, None).unwrap().is_none());
        let var = candle_core::Var::from_tensor(&rand_t(&mut rng, &[1, 2, 1, 8])).unwrap();
        assert!(attend(var.as_tensor(), &k, &k, None).unwrap().is_none());
    }
}
