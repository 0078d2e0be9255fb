//! Grouped-query attention for a few new positions on the CPU, in one pass per (row, kv head).
//!
//! Decoding feeds one (or a few) query positions per row against hundreds of cached keys. As
//! tensor ops that is two batched matmuls of `b · kv_heads` tiny products plus a mask add and a
//! softmax, each op dispatched (and parallelised) separately; at batch 8 over a 400-token cache
//! it cost more than all the projections. [`attend`] computes the same thing directly: for each
//! (row, kv head) pair, in parallel, the scores of its query heads, the mask, an f32 softmax and
//! the weighted sum of values, written straight into the `[b, t, heads · head_dim]` layout the
//! output projection reads. It only differs from the tensor ops in summation order.

use candle_core::{DType, Device, Layout, Storage, Tensor};
use rayon::prelude::*;

/// Most new positions per row [`attend`] takes (beyond, the batched matmuls are efficient).
pub const MAX_NEW: usize = 16;

/// A read-only f32 view of a CPU tensor: its data and its layout.
struct View<'a> {
    data: &'a [f32],
    start: usize,
    stride: Vec<usize>,
}

impl<'a> View<'a> {
    /// The view of a locked CPU f32 storage with unit innermost stride; `None` otherwise.
    fn of(storage: &'a Storage, layout: &Layout) -> Option<View<'a>> {
        let Storage::Cpu(c) = storage else {
            return None;
        };
        if layout.stride().last() != Some(&1) {
            return None;
        }
        Some(View {
            data: c.as_slice::<f32>().ok()?,
            start: layout.start_offset(),
            stride: layout.stride().to_vec(),
        })
    }
}

/// One row's keys and values `[.., kv_heads, n, d]`: the views and where the row starts.
struct RowView<'a> {
    k: &'a View<'a>,
    v: &'a View<'a>,
    /// Offset of the row's first key (value) within `k.data` (`v.data`).
    k_row: usize,
    v_row: usize,
    /// Keys the row attends to.
    n: usize,
}

/// Whether [`attend`] takes these inputs: f32 CPU tensors without gradients.
fn fast_path_applies(tensors: &[Option<&Tensor>]) -> bool {
    !tensors
        .iter()
        .flatten()
        .any(|x| x.dtype() != DType::F32 || !x.device().is_cpu() || x.track_op())
}

/// The shared loop: for each (row, kv head) pair, in parallel, the scores of its `rep` query
/// heads at `t` positions over the row's keys, the mask, an f32 softmax and the weighted sum of
/// values, scattered into `[b, t, heads · d]`. `q` is scaled, `[b, heads, t, d]` flattened;
/// `mask` is `[b or 1, t, n]` flattened, with `true` when it has a row per batch row.
fn attend_views(
    q: &[f32],
    (nh, nkv, t, d): (usize, usize, usize, usize),
    rows: &[RowView],
    mask: Option<(&[f32], bool)>,
) -> Vec<f32> {
    let b = rows.len();
    let rep = nh / nkv;
    let pairs: Vec<(usize, usize)> = (0..b).flat_map(|r| (0..nkv).map(move |h| (r, h))).collect();
    let work = |&(r, g): &(usize, usize)| -> Vec<f32> {
        let row = &rows[r];
        let n = row.n;
        let kbase = row.k_row + g * row.k.stride[1];
        let vbase = row.v_row + g * row.v.stride[1];
        let (ks, vs) = (row.k.stride[2], row.v.stride[2]);
        let mut out = vec![0f32; rep * t * d];
        let mut scores = vec![0f32; n];
        for hr in 0..rep {
            let h = g * rep + hr;
            for i in 0..t {
                let qrow = &q[((r * nh + h) * t + i) * d..][..d];
                for (j, s) in scores.iter_mut().enumerate() {
                    *s = dot(qrow, &row.k.data[kbase + j * ks..][..d]);
                }
                if let Some((m, per_row)) = mask {
                    let mrow = if per_row { r } else { 0 };
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
                    let vrow = &row.v.data[vbase + j * vs..][..d];
                    for (x, y) in o.iter_mut().zip(vrow) {
                        *x += p * y;
                    }
                }
            }
        }
        out
    };
    let parts: Vec<Vec<f32>> = if pairs.len() > 1 {
        pairs.par_iter().map(work).collect()
    } else {
        pairs.iter().map(work).collect()
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
    y
}

/// A contiguous f32 CPU copy of `t` as a `Vec` (small tensors only: queries and masks).
fn to_vec(t: &Tensor) -> candle_core::Result<Vec<f32>> {
    t.flatten_all()?.to_vec1::<f32>()
}

/// The dot product of every attention score here: eight lanes, then the remainder, then the
/// lanes in order.
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
    if t == 0
        || t > MAX_NEW
        || kb != b
        || kd != d
        || v.dims() != k.dims()
        || nkv == 0
        || nh % nkv != 0
        || !fast_path_applies(&[Some(q), Some(k), Some(v), mask])
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
    // Scaled like the tensor path: (q · scale) then the products.
    let q = to_vec(&(q * (1.0 / (d as f64).sqrt()))?)?;
    let (ks, kl) = k.storage_and_layout();
    let (vs, vl) = v.storage_and_layout();
    let (Some(kv), Some(vv)) = (View::of(&ks, kl), View::of(&vs, vl)) else {
        return Ok(None);
    };
    let rows: Vec<RowView> = (0..b)
        .map(|r| RowView {
            k: &kv,
            v: &vv,
            k_row: kv.start + r * kv.stride[0],
            v_row: vv.start + r * vv.stride[0],
            n,
        })
        .collect();
    let y = attend_views(
        &q,
        (nh, nkv, t, d),
        &rows,
        mask.as_ref().map(|(m, per_row)| (m.as_slice(), *per_row)),
    );
    Ok(Some(Tensor::from_vec(y, (b, t, nh * d), &Device::Cpu)?))
}

/// [`attend`] for one new position per row where every row has its own keys and values:
/// `q` `[b, heads, 1, d]`, `kvs[r]` = row `r`'s `(k, v)` `[1, kv_heads, n_r, d]` (views into
/// its cache; the lengths differ). The arithmetic is [`attend`]'s, so a row's result is the
/// same as attending alone. `None` when the inputs are not f32 CPU tensors.
pub fn attend_rows(q: &Tensor, kvs: &[(Tensor, Tensor)]) -> candle_core::Result<Option<Tensor>> {
    let (b, nh, t, d) = q.dims4()?;
    if t != 1 || b != kvs.len() || b == 0 {
        return Ok(None);
    }
    let mut nkv = 0;
    for (k, v) in kvs {
        let (kb, h, _, kd) = k.dims4()?;
        if kb != 1 || kd != d || v.dims() != k.dims() || h == 0 || nh % h != 0 {
            return Ok(None);
        }
        if nkv != 0 && h != nkv {
            return Ok(None);
        }
        nkv = h;
        if !fast_path_applies(&[Some(k), Some(v)]) {
            return Ok(None);
        }
    }
    if !fast_path_applies(&[Some(q)]) {
        return Ok(None);
    }
    let q = to_vec(&(q * (1.0 / (d as f64).sqrt()))?)?;
    let ns = kvs
        .iter()
        .map(|(k, _)| k.dim(2))
        .collect::<candle_core::Result<Vec<_>>>()?;
    let guards: Vec<_> = kvs
        .iter()
        .zip(ns)
        .map(|((k, v), n)| (k.storage_and_layout(), v.storage_and_layout(), n))
        .collect();
    let mut views = Vec::with_capacity(b);
    for ((ks, kl), (vs, vl), n) in &guards {
        let (Some(kv), Some(vv)) = (View::of(ks, kl), View::of(vs, vl)) else {
            return Ok(None);
        };
        views.push((kv, vv, *n));
    }
    let rows: Vec<RowView> = views
        .iter()
        .map(|(kv, vv, n)| RowView {
            k: kv,
            v: vv,
            k_row: kv.start,
            v_row: vv.start,
            n: *n,
        })
        .collect();
    let y = attend_views(&q, (nh, nkv, 1, d), &rows, None);
    Ok(Some(Tensor::from_vec(y, (b, 1, nh * d), &Device::Cpu)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The tensor-op formulation every caller falls back to.
    fn reference(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Tensor {
        crate::llama::attention(q, &k.contiguous().unwrap(), &v.contiguous().unwrap(), mask)
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
    fn rows_with_their_own_caches_match_attending_alone() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let (nh, nkv, d) = (6, 2, 16);
        let lens = [3usize, 11, 1, 7];
        let q = rand_t(&mut rng, &[lens.len(), nh, 1, d]);
        let kvs: Vec<(Tensor, Tensor)> = lens
            .iter()
            .map(|&n| {
                // Views into buffers with spare room, like a row's cache.
                let k = rand_t(&mut rng, &[1, nkv, n + 5, d])
                    .narrow(2, 0, n)
                    .unwrap();
                let v = rand_t(&mut rng, &[1, nkv, n + 5, d])
                    .narrow(2, 0, n)
                    .unwrap();
                (k, v)
            })
            .collect();
        let got = attend_rows(&q, &kvs).unwrap().expect("fast path taken");
        for (r, (k, v)) in kvs.iter().enumerate() {
            let qr = q.narrow(0, r, 1).unwrap();
            let alone = attend(&qr, k, v, None).unwrap().unwrap();
            let row = got.narrow(0, r, 1).unwrap();
            let same = (row - alone)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert_eq!(same, 0.0, "row {r} differs from attending alone");
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
