//! DyLoRA rank truncation: `truncate_rank(r)` is the identity, `truncate_rank(b)` equals an
//! adapter built by hand from the sliced tensors, with the scale of rank `b`.

use std::collections::BTreeMap;

use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlora_model::lora::{LoraAdapter, LoraConfig};

const KEYS: [(&str, usize, usize); 2] = [
    ("model.layers.0.self_attn.q_proj", 12, 16),
    ("model.layers.0.mlp.down_proj", 16, 20),
];

fn rand_tensor(rng: &mut StdRng, shape: (usize, usize)) -> Tensor {
    let data: Vec<f32> = (0..shape.0 * shape.1)
        .map(|_| rng.gen_range(-1.0f32..1.0))
        .collect();
    Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
}

fn tensors(r: usize, seed: u64) -> BTreeMap<String, (Tensor, Tensor)> {
    let mut rng = StdRng::seed_from_u64(seed);
    KEYS.iter()
        .map(|&(k, out, inp)| {
            (
                k.to_string(),
                (
                    rand_tensor(&mut rng, (r, inp)),
                    rand_tensor(&mut rng, (out, r)),
                ),
            )
        })
        .collect()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

fn config(r: usize, rslora: bool) -> LoraConfig {
    let mut c = LoraConfig::new(r, 16.0, &["q_proj", "down_proj"]);
    c.use_rslora = rslora;
    c
}

fn assert_same(a: &LoraAdapter, b: &LoraAdapter) {
    assert_eq!(a.config, b.config);
    assert_eq!(
        a.modules().keys().collect::<Vec<_>>(),
        b.modules().keys().collect::<Vec<_>>()
    );
    for (key, m) in a.modules() {
        let n = b.module(key).unwrap();
        assert_eq!(m.a.dims(), n.a.dims(), "{key}");
        assert_eq!(m.b.dims(), n.b.dims(), "{key}");
        assert_eq!(values(&m.a), values(&n.a), "{key}");
        assert_eq!(values(&m.b), values(&n.b), "{key}");
        assert_eq!(m.scale, n.scale, "{key}");
        assert_eq!(m.alpha, n.alpha, "{key}");
    }
}

#[test]
fn truncating_to_the_full_rank_is_the_identity() {
    for rslora in [false, true] {
        let mut full = LoraAdapter::new("x", config(8, rslora), tensors(8, 1)).unwrap();
        full.base_model = Some("base".into());
        let same = full.truncate_rank(8).unwrap();
        assert_same(&full, &same);
        assert_eq!(same.base_model.as_deref(), Some("base"));
        assert_eq!(same.name, "x");
    }
}

#[test]
fn truncating_slices_a_and_b_and_rescales() {
    for rslora in [false, true] {
        let full_t = tensors(8, 2);
        let full = LoraAdapter::new("x", config(8, rslora), full_t.clone()).unwrap();
        for b in [1, 2, 4, 7] {
            let cut = full.truncate_rank(b).unwrap();
            let sliced: BTreeMap<String, (Tensor, Tensor)> = full_t
                .iter()
                .map(|(k, (a, bm))| {
                    (
                        k.clone(),
                        (
                            a.narrow(0, 0, b).unwrap().contiguous().unwrap(),
                            bm.narrow(1, 0, b).unwrap().contiguous().unwrap(),
                        ),
                    )
                })
                .collect();
            let by_hand = LoraAdapter::new("x", config(b, rslora), sliced).unwrap();
            assert_same(&cut, &by_hand);
            let want_scale = if rslora {
                16.0 / (b as f64).sqrt()
            } else {
                16.0 / b as f64
            };
            for m in cut.modules().values() {
                assert_eq!(m.rank(), b);
                assert!((m.scale - want_scale).abs() < 1e-12);
            }
            // The truncated adapter's term is scale·x·A[:b]ᵀ·B[:, :b]ᵀ, computed here directly.
            let (key, (a, bm)) = full_t.iter().next().unwrap();
            let mut rng = StdRng::seed_from_u64(b as u64);
            let x = rand_tensor(&mut rng, (3, a.dims()[1]));
            let mut want = vec![0f32; 3 * bm.dims()[0]];
            let (av, bv) = (a.to_vec2::<f32>().unwrap(), bm.to_vec2::<f32>().unwrap());
            let xv = x.to_vec2::<f32>().unwrap();
            for (row, xr) in xv.iter().enumerate() {
                let h: Vec<f32> = (0..b)
                    .map(|k| xr.iter().zip(&av[k]).map(|(p, q)| p * q).sum())
                    .collect();
                for (o, br) in bv.iter().enumerate() {
                    let s: f32 = (0..b).map(|k| h[k] * br[k]).sum();
                    want[row * bv.len() + o] = s * want_scale as f32;
                }
            }
            let got = values(&cut.module(key).unwrap().forward(&x, 0.0).unwrap());
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-4, "rank {b}: {g} vs {w}");
            }
        }
    }
}

#[test]
fn truncation_refuses_rank_zero_and_ranks_above_the_adapter() {
    let full = LoraAdapter::new("x", config(4, false), tensors(4, 3)).unwrap();
    assert!(full.truncate_rank(0).is_err());
    assert!(full.truncate_rank(5).is_err());
    // With a per-module rank override, the smallest module rank bounds the truncation.
    let mut c = config(4, false);
    c.rank_pattern = vec![("down_proj".into(), 2)];
    let mut t = tensors(4, 4);
    let (a, b) = t.get("model.layers.0.mlp.down_proj").unwrap().clone();
    t.insert(
        "model.layers.0.mlp.down_proj".into(),
        (
            a.narrow(0, 0, 2).unwrap().contiguous().unwrap(),
            b.narrow(1, 0, 2).unwrap().contiguous().unwrap(),
        ),
    );
    let mixed = LoraAdapter::new("x", c, t).unwrap();
    let err = mixed.truncate_rank(3).unwrap_err().to_string();
    assert!(err.contains("down_proj"), "{err}");
    let two = mixed.truncate_rank(2).unwrap();
    assert!(two.modules().values().all(|m| m.rank() == 2));
    assert!(two.config.rank_pattern.is_empty());
    assert_eq!(two.config.r, 2);
}
