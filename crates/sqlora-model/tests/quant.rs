//! The quantized inference path on the real default model (SmolLM2-135M-Instruct, Q4_1 GGUF):
//! the kept blocks are the loaded f32 weights, few-row products through them with f32
//! activations equal the f32 products, whole generations are unchanged, and rebuilt (merged)
//! weights drop the blocks. (The int8-activation path, the inference default, is compared
//! with this one in `parity.rs` and `qwen.rs`.)
//!
//! The model is found through `SQLORA_MODEL` or `sqlora_model::fetch::default_model_path()`;
//! absent, these tests skip, unless `SQLORA_REQUIRE_MODEL=1` (CI), where they fail.

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use sqlora_model::generate::{generate_with, TokenInfo};
use sqlora_model::llama::{Linear, Model, Proj};
use sqlora_model::lora::{merge_adapter, LoraAdapter, LoraConfig};
use sqlora_model::quant::{ActivationPrecision, QFormat, MAX_ROWS};
use sqlora_model::testing::real_model_f32 as model;
use sqlora_model::GenerateParams;

/// The same linear without its blocks (forward then always multiplies the f32 weight).
fn plain(l: &Linear) -> Linear {
    Linear::new(l.weight().clone(), l.bias().cloned(), l.name())
}

/// `model` with every projection and the head rebuilt from their f32 weights only.
fn unquantized(model: &Model) -> Model {
    let mut m = model.clone();
    for lin in m.linears_mut() {
        *lin = plain(lin);
    }
    *m.lm_head_mut() = plain(m.lm_head());
    m
}

fn max_rel(a: &Tensor, b: &Tensor) -> f32 {
    let a: Vec<f32> = a.flatten_all().unwrap().to_vec1().unwrap();
    let b: Vec<f32> = b.flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, x| m.max(x.abs()));
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
        / scale
}

/// The f32 weights of the real model as the GGUF loader dequantizes them (no blocks).
fn f32_weights() -> Option<std::collections::HashMap<String, Tensor>> {
    let path = sqlora_model::testing::real_model_path()?;
    if path.extension().is_none_or(|e| e != "gguf") {
        return None;
    }
    let content = sqlora_model::gguf::read_content(&path).unwrap();
    let cfg = &model()?.config;
    Some(sqlora_model::gguf::load_tensors(&path, &content, cfg, &Device::Cpu).unwrap())
}

#[test]
fn kept_blocks_are_the_loaded_weights() {
    let Some(m) = model() else { return };
    let Some(weights) = f32_weights() else { return };
    for lin in m.model.linears() {
        let q = lin
            .quant()
            .unwrap_or_else(|| panic!("{} has no blocks", lin.name()));
        assert_eq!(q.format(), QFormat::Q4_1, "{}", lin.name());
        let w: Vec<f32> = weights[&format!("{}.weight", lin.name())]
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        // Bit-identical, q/k rows un-permuted the same way as the f32 copy.
        assert!(
            q.dequantize() == w,
            "{}: blocks differ from weight",
            lin.name()
        );
    }
    let head = m
        .model
        .lm_head()
        .quant()
        .expect("tied head keeps the embedding blocks");
    assert_eq!(head.format(), QFormat::Q8_0);
    assert_eq!(
        [head.rows(), head.cols()],
        [m.config.vocab_size, m.config.hidden_size]
    );
    let w: Vec<f32> = weights["model.embed_tokens.weight"]
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert!(head.dequantize() == w);
}

#[test]
fn quantized_linears_keep_no_f32_copy() {
    let Some(path) = sqlora_model::testing::real_model_path() else {
        return;
    };
    // A fresh load: the shared test model may have been asked for its f32 weights already.
    let mut m = sqlora_model::load(&path, &Device::Cpu).unwrap();
    m.model.set_activation_precision(ActivationPrecision::F32);
    let mut int8 = m.model.layers()[0].linear(Proj::Down).clone();
    int8.set_activation_precision(ActivationPrecision::Int8);
    let lin = m.model.layers()[0].linear(Proj::Down);
    for l in m.model.linears() {
        assert!(l.quant().is_some() && !l.has_dense_weight(), "{}", l.name());
    }
    assert!(!m.model.lm_head().has_dense_weight());
    // A prefill-sized product dequantizes tile by tile and keeps nothing.
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let n = 40;
    let x: Vec<f32> = (0..n * lin.in_features())
        .map(|_| rng.gen_range(-3f32..3.0))
        .collect();
    let x = Tensor::from_vec(x, (n, lin.in_features()), &Device::Cpu).unwrap();
    let got = lin.forward(&x).unwrap();
    assert!(!lin.has_dense_weight());
    let w = Tensor::from_vec(
        lin.quant().unwrap().dequantize(),
        (lin.out_features(), lin.in_features()),
        &Device::Cpu,
    )
    .unwrap();
    let want = x.matmul(&w.t().unwrap()).unwrap();
    assert!(max_rel(&got, &want) < 1e-5);
    // With 8-bit activations too (within their rounding, see `quant::q8`'s tests).
    let got = int8.forward(&x).unwrap();
    assert!(!int8.has_dense_weight() && !lin.has_dense_weight());
    let e = max_rel(&got, &want);
    assert!(e < 2e-2, "int8 path: relative error {e}");
    // The f32 weight on demand equals the blocks, and is kept from then on.
    assert_eq!(max_rel(lin.weight(), &w), 0.0);
    assert!(lin.has_dense_weight());
}

#[test]
fn few_row_products_match_the_f32_weight() {
    let Some(m) = model() else { return };
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let l0 = &m.model.layers()[0];
    let l29 = m.model.layers().last().unwrap();
    for lin in [
        l0.linear(Proj::Q),
        l0.linear(Proj::K),
        l0.linear(Proj::Down),
        l29.linear(Proj::Gate),
        m.model.lm_head(),
    ] {
        let reference = plain(lin);
        for n in [1, 2, 3, 8, MAX_ROWS, MAX_ROWS + 1] {
            let x: Vec<f32> = (0..n * lin.in_features())
                .map(|_| rng.gen_range(-3f32..3.0))
                .collect();
            let x = Tensor::from_vec(x, (1, n, lin.in_features()), &Device::Cpu).unwrap();
            let got = lin.forward(&x).unwrap();
            assert_eq!(got.dims(), &[1, n, lin.out_features()]);
            let want = reference.forward(&x).unwrap();
            let e = max_rel(&got, &want);
            assert!(e < 1e-5, "{} n={n}: relative error {e}", lin.name());
        }
    }
}

#[test]
fn greedy_generations_are_unchanged_by_the_blocks() {
    let Some(m) = model() else { return };
    let f32_model = unquantized(&m.model);
    assert!(f32_model.linears().iter().all(|l| l.quant().is_none()));
    let tok = &m.tokenizer;
    let decode = |ids: &[u32]| tok.decode(ids, true);
    let info = TokenInfo {
        eos_ids: tok.eos_token_ids(),
        pad_id: tok.pad_token_id(),
        decode: &decode,
    };
    let prompts: Vec<Vec<u32>> = [
        "SELECT name FROM employees WHERE",
        "The capital of France is",
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer",
    ]
    .iter()
    .map(|t| tok.encode(t, false).unwrap())
    .collect();
    let params = GenerateParams {
        max_new_tokens: 24,
        stop_on_eos: false,
        ..Default::default()
    };
    let fast = generate_with(&m.model, &info, &prompts, &params).unwrap();
    let slow = generate_with(&f32_model, &info, &prompts, &params).unwrap();
    for (f, s) in fast.iter().zip(&slow) {
        assert_eq!(f.tokens, s.tokens, "{:?} vs {:?}", f.text, s.text);
        assert!(
            (f.logprob - s.logprob).abs() < 1e-3,
            "{} vs {}",
            f.logprob,
            s.logprob
        );
    }
}

#[test]
fn rebuilt_weights_drop_the_blocks() {
    let Some(m) = model() else { return };
    let mut merged = m.model.clone();
    let adapter = LoraAdapter::init("t", &merged, LoraConfig::new(4, 8.0, &["q_proj"]), 1)
        .unwrap()
        .frozen()
        .unwrap();
    merge_adapter(&mut merged, &adapter).unwrap();
    for lin in merged.linears() {
        let is_q = lin.name().ends_with("q_proj");
        assert_eq!(lin.quant().is_none(), is_q, "{}", lin.name());
    }
    // A wrongly shaped block set is refused.
    let q = m.model.layers()[0].linear(Proj::Q).quant().unwrap().clone();
    let down = plain(m.model.layers()[0].linear(Proj::Down));
    assert!(down.with_quant(q).is_err());
}
