//! Fixtures for tests and benchmarks: tiny random Llama/Qwen2 models built straight from
//! tensors, written as Hugging Face folders, LoRA adapters with random non-zero A and B, and
//! toy [`Constraint`]s ([`AllowedSet`], [`ForcedSequence`], [`AllowNothing`]).
//!
//! Every test of the workspace that needs "a model" without a model file builds it here, so
//! a change to the weight layout or the config format is made once. Values come from a seeded
//! RNG in a fixed order (embeddings, then per layer the two norms and the seven projections,
//! then the final norm and an untied head), so a seed names the same model everywhere.
//!
//! The shapes are constants of the caller, never user input: the functions panic (with a
//! message) on an internal inconsistency rather than returning errors to every test.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::Config;
use crate::constraint::Constraint;
use crate::llama::Model;
use crate::lora::{LoraAdapter, LoraConfig};
use crate::quant::ActivationPrecision;
use crate::LoadedModel;

/// A tensor of `shape` with values uniform in `center ± scale`.
pub fn rand_tensor(rng: &mut StdRng, shape: &[usize], center: f32, scale: f32) -> Tensor {
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n)
        .map(|_| center + scale * (rng.gen::<f32>() * 2.0 - 1.0))
        .collect();
    Tensor::from_vec(data, shape, &Device::Cpu).expect("rand_tensor: shape and data agree")
}

/// The shape of a tiny model. `Default` is the 2-layer Llama most tests use: vocabulary 64,
/// hidden 32, MLP 48, 4 heads of 8 with 2 KV heads, tied embeddings, 256 positions.
#[derive(Debug, Clone, PartialEq)]
pub struct TinyLlama {
    /// `llama` or `qwen2` (biases on q, k and v).
    pub arch: &'static str,
    pub vocab: usize,
    pub hidden: usize,
    pub ffn: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub max_positions: usize,
    pub tie_embeddings: bool,
}

impl Default for TinyLlama {
    fn default() -> Self {
        Self {
            arch: "llama",
            vocab: 64,
            hidden: 32,
            ffn: 48,
            layers: 2,
            heads: 4,
            kv_heads: 2,
            max_positions: 256,
            tie_embeddings: true,
        }
    }
}

impl TinyLlama {
    /// `config.json` of this shape, as transformers writes it.
    pub fn config_json(&self) -> serde_json::Value {
        let architecture = if self.arch == "qwen2" {
            "Qwen2ForCausalLM"
        } else {
            "LlamaForCausalLM"
        };
        serde_json::json!({
            "model_type": self.arch,
            "architectures": [architecture],
            "vocab_size": self.vocab,
            "hidden_size": self.hidden,
            "intermediate_size": self.ffn,
            "num_hidden_layers": self.layers,
            "num_attention_heads": self.heads,
            "num_key_value_heads": self.kv_heads,
            "rope_theta": 10000.0,
            "rms_norm_eps": 1e-6,
            "max_position_embeddings": self.max_positions,
            "tie_word_embeddings": self.tie_embeddings,
            "torch_dtype": "float32"
        })
    }

    /// The parsed [`Config`].
    pub fn config(&self) -> Config {
        Config::from_hf_json_str(&self.config_json().to_string())
            .expect("TinyLlama: a valid config.json")
    }

    /// Random weights under their Hugging Face names. Projections are uniform in
    /// ±1.5/sqrt(fan_in), norms in 1 ± 0.2, embeddings (and an untied head) in ±1.
    pub fn weights(&self, seed: u64) -> HashMap<String, Tensor> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut w = HashMap::new();
        let (h, v) = (self.hidden, self.vocab);
        w.insert(
            "model.embed_tokens.weight".to_string(),
            rand_tensor(&mut rng, &[v, h], 0.0, 1.0),
        );
        let head_dim = h / self.heads;
        let q_out = self.heads * head_dim;
        let kv_out = self.kv_heads * head_dim;
        for l in 0..self.layers {
            let p = format!("model.layers.{l}");
            for n in ["input_layernorm", "post_attention_layernorm"] {
                w.insert(
                    format!("{p}.{n}.weight"),
                    rand_tensor(&mut rng, &[h], 1.0, 0.2),
                );
            }
            for (name, out, inp) in [
                ("self_attn.q_proj", q_out, h),
                ("self_attn.k_proj", kv_out, h),
                ("self_attn.v_proj", kv_out, h),
                ("self_attn.o_proj", h, q_out),
                ("mlp.gate_proj", self.ffn, h),
                ("mlp.up_proj", self.ffn, h),
                ("mlp.down_proj", h, self.ffn),
            ] {
                let scale = 1.5 / (inp as f32).sqrt();
                w.insert(
                    format!("{p}.{name}.weight"),
                    rand_tensor(&mut rng, &[out, inp], 0.0, scale),
                );
                let qkv = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"];
                if self.arch == "qwen2" && qkv.contains(&name) {
                    w.insert(
                        format!("{p}.{name}.bias"),
                        rand_tensor(&mut rng, &[out], 0.0, 0.5),
                    );
                }
            }
        }
        w.insert(
            "model.norm.weight".to_string(),
            rand_tensor(&mut rng, &[h], 1.0, 0.2),
        );
        if !self.tie_embeddings {
            w.insert(
                "lm_head.weight".to_string(),
                rand_tensor(&mut rng, &[v, h], 0.0, 1.0),
            );
        }
        w
    }

    /// The model of [`TinyLlama::weights`]`(seed)`, on the CPU in f32.
    pub fn model(&self, seed: u64) -> Model {
        self.model_from(self.weights(seed))
    }

    /// A model of this shape from the given weights (e.g. [`TinyLlama::weights`] edited).
    pub fn model_from(&self, weights: HashMap<String, Tensor>) -> Model {
        let vb = VarBuilder::from_tensors(weights, DType::F32, &Device::Cpu);
        Model::load(vb, &self.config()).expect("TinyLlama: weights match the config")
    }

    /// Writes `config.json` and `model.safetensors` into `dir` (a tokenizer is the caller's:
    /// see [`word_level_tokenizer_json`]).
    pub fn write_folder(&self, dir: &Path, weights: &HashMap<String, Tensor>) {
        std::fs::write(dir.join("config.json"), self.config_json().to_string())
            .expect("write config.json");
        candle_core::safetensors::save(weights, dir.join("model.safetensors"))
            .expect("write model.safetensors");
    }
}

/// A tiny Hugging Face `tokenizer.json`: a WordLevel model over `specials` (ids 0..) and then
/// the words `w{i}` up to `vocab`, split on whitespace. `specials[0]` is the unknown token.
pub fn word_level_tokenizer_json(specials: &[&str], vocab: usize) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for (i, s) in specials.iter().enumerate() {
        map.insert(s.to_string(), i.into());
    }
    for i in specials.len()..vocab {
        map.insert(format!("w{i}"), i.into());
    }
    let added: Vec<serde_json::Value> = specials
        .iter()
        .enumerate()
        .map(|(id, content)| {
            serde_json::json!({"id": id, "content": content, "single_word": false,
                "lstrip": false, "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": map, "unk_token": specials[0]}
    })
}

/// An adapter for `model` with the modules of `config` and A, B uniform in ±`scale` (drawn from
/// `seed ^ 0x5eed`, after [`LoraAdapter::init`] with `seed` fixed the shapes).
pub fn random_adapter(
    name: &str,
    model: &Model,
    config: LoraConfig,
    seed: u64,
    scale: f32,
) -> LoraAdapter {
    let fresh = LoraAdapter::init(name, model, config.clone(), seed)
        .expect("random_adapter: the config fits the model");
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let mut modules = BTreeMap::new();
    for (key, m) in fresh.modules() {
        let a = rand_tensor(&mut rng, m.a.dims(), 0.0, scale);
        let b = rand_tensor(&mut rng, m.b.dims(), 0.0, scale);
        modules.insert(key.clone(), (a, b));
    }
    LoraAdapter::new(name, config, modules).expect("random_adapter: shapes from init")
}

/// Final-position logits of each row of `rows` (all of one length, no padding) run together in
/// one forward pass with `adapters` unmerged (e.g. [`crate::lora::AdapterBatch::single`], or a
/// gathered batch of [`crate::lora::AdapterSet::batch`] with one entry per row).
pub fn adapted_last_logits(
    model: &Model,
    rows: &[Vec<u32>],
    adapters: Option<&crate::lora::AdapterBatch>,
) -> Vec<Vec<f32>> {
    use candle_core::IndexOp;
    let (b, t) = (rows.len(), rows.first().map_or(0, Vec::len));
    assert!(
        b > 0 && t > 0 && rows.iter().all(|r| r.len() == t),
        "adapted_last_logits: rows of one non-zero length"
    );
    let ids = Tensor::from_vec(rows.concat(), (b, t), model.device()).expect("ids");
    let pos: Vec<u32> = (0..b).flat_map(|_| 0..t as u32).collect();
    let pos = Tensor::from_vec(pos, (b, t), model.device()).expect("positions");
    let h = model
        .forward_with(&ids, &pos, None, None, adapters)
        .expect("forward with adapters");
    let last = h.i((.., t - 1)).expect("last position");
    model
        .logits(&last)
        .and_then(|l| Ok(l.to_dtype(DType::F32)?.to_vec2()?))
        .expect("logits")
}

/// Final-position logits of `ids` with `adapter` merged into a copy of `model` (the weights
/// it adapts are dequantized and replaced by `W0 + scale·B·A`; `model` is untouched).
pub fn merged_last_logits(model: &Model, adapter: &LoraAdapter, ids: &[u32]) -> Vec<f32> {
    let mut m = model.clone();
    crate::lora::merge_adapter(&mut m, adapter).expect("merging the adapter");
    m.last_logits(ids).expect("logits of the merged model")
}

/// The real model for tests that need it: `SQLORA_MODEL` (a `.gguf` file, a Hugging Face
/// folder, or a model name of [`crate::fetch::MODELS`] that is fetched), else the fetched test
/// model ([`crate::fetch::TEST_MODEL_NAME`], SmolLM2). Absent: `None` after a skip line on
/// stderr, or a panic when `SQLORA_REQUIRE_MODEL=1` (CI, where a skipped test would hide a
/// regression).
pub fn real_model_path() -> Option<PathBuf> {
    let path = match std::env::var("SQLORA_MODEL").ok().filter(|p| !p.is_empty()) {
        Some(spec) => match crate::fetch::named_model(&spec) {
            Some(m) if !Path::new(&spec).exists() => m.path(),
            _ => PathBuf::from(spec),
        },
        None => crate::fetch::named_model(crate::fetch::TEST_MODEL_NAME)
            .map(|m| m.path())
            .unwrap_or_else(crate::fetch::default_model_path),
    };
    if path.exists() {
        return Some(path);
    }
    if std::env::var("SQLORA_REQUIRE_MODEL").as_deref() == Ok("1") {
        panic!(
            "SQLORA_REQUIRE_MODEL=1 but the model is missing at {} (set SQLORA_MODEL or run `sqlora model fetch`)",
            path.display()
        );
    }
    eprintln!(
        "skipped: no model at {} (set SQLORA_MODEL, or SQLORA_REQUIRE_MODEL=1 to fail instead)",
        path.display()
    );
    None
}

/// [`real_model_path`] loaded on the CPU, once per test binary.
pub fn real_model() -> Option<&'static LoadedModel> {
    static MODEL: OnceLock<Option<LoadedModel>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let path = real_model_path()?;
            Some(crate::load(&path, &Device::Cpu).expect("loading the real model"))
        })
        .as_ref()
}

/// The cached file of a named model (e.g. [`crate::fetch::QWEN_CODER_0_5B`]) for the tests that
/// need that model: `None` after a skip line on stderr when it is not fetched, or a panic when
/// `SQLORA_REQUIRE_QWEN=1` and the name is a Qwen model (`SQLORA_REQUIRE_MODEL` is about the
/// test model only, so CI does not fail before it fetches the larger models).
pub fn named_model_path(name: &str) -> Option<PathBuf> {
    let entry = crate::fetch::named_model(name)
        .unwrap_or_else(|| panic!("{name:?} is not a model of the registry"));
    if entry.is_cached() {
        return Some(entry.path());
    }
    let required = std::env::var("SQLORA_REQUIRE_QWEN").as_deref() == Ok("1")
        && entry.name.starts_with("qwen");
    if required {
        panic!(
            "SQLORA_REQUIRE_QWEN=1 but {name} is not fetched at {} (run `sqlora model fetch {name}`)",
            entry.path().display()
        );
    }
    eprintln!(
        "skipped: {name} is not fetched at {} (run `sqlora model fetch {name}`; SQLORA_REQUIRE_QWEN=1 fails instead)",
        entry.path().display()
    );
    None
}

/// [`real_model`] on the f32 reference path ([`ActivationPrecision::F32`]), for the tests that
/// compare logits with another implementation's f32 arithmetic.
pub fn real_model_f32() -> Option<&'static LoadedModel> {
    static MODEL: OnceLock<Option<&'static LoadedModel>> = OnceLock::new();
    *MODEL.get_or_init(|| {
        let m = real_model()?.with_activation_precision(ActivationPrecision::F32);
        Some(&*Box::leak(Box::new(m)))
    })
}

/// [`named_real_model`] on the f32 reference path ([`ActivationPrecision::F32`]), sharing its
/// weights.
pub fn named_real_model_f32(name: &str) -> Option<&'static LoadedModel> {
    static MODELS: OnceLock<Mutex<HashMap<String, Option<&'static LoadedModel>>>> = OnceLock::new();
    let base = named_real_model(name)?;
    let mut cache = MODELS
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    *cache.entry(name.to_string()).or_insert_with(|| {
        let m = base.with_activation_precision(ActivationPrecision::F32);
        Some(&*Box::leak(Box::new(m)))
    })
}

/// [`named_model_path`] loaded on the CPU, once per test binary and name (activations of
/// [`ActivationPrecision::inference_default`]).
pub fn named_real_model(name: &str) -> Option<&'static LoadedModel> {
    static MODELS: OnceLock<Mutex<HashMap<String, Option<&'static LoadedModel>>>> = OnceLock::new();
    let mut cache = MODELS
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    *cache.entry(name.to_string()).or_insert_with(|| {
        let path = named_model_path(name)?;
        let m = crate::load(&path, &Device::Cpu)
            .unwrap_or_else(|e| panic!("loading {name} from {}: {e}", path.display()));
        Some(&*Box::leak(Box::new(m)))
    })
}

/// A fixture's array of token ids.
fn fixture_ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .expect("an array of token ids")
        .iter()
        .map(|x| x.as_u64().expect("a token id") as u32)
        .collect()
}

/// The parameters that generate a greedy fixture's `new_tokens` (greedy, no stop at
/// end-of-sequence).
fn fixture_params(fx: &serde_json::Value) -> crate::GenerateParams {
    crate::GenerateParams {
        max_new_tokens: fx["new_tokens"].as_u64().expect("new_tokens") as usize,
        temperature: 0.0,
        stop_on_eos: false,
        ..crate::GenerateParams::default()
    }
}

/// Checks `m` against a greedy-generation fixture made by a reference implementation
/// (`tools/reference/make_fixtures.py`, `make_qwen_fixtures.py`: `new_tokens` and `cases` of
/// chat `messages`, `prompt_ids`, `generated_ids`): our chat rendering and tokenization give the
/// fixture's prompt ids, and greedy decoding gives its tokens exactly, one row at a time and
/// all rows in one left-padded batch. Panics on a mismatch (a test helper).
pub fn assert_greedy_fixture(m: &LoadedModel, fx: &serde_json::Value) {
    let ids = fixture_ids;
    let params = fixture_params(fx);
    let cases = fx["cases"].as_array().expect("cases");
    assert!(cases.len() >= 3);
    let template = m.chat_template.as_ref().expect("chat template");
    let mut prompts = Vec::new();
    let mut expected = Vec::new();
    for case in cases {
        // The prompt ids are our own rendering + tokenization of the messages.
        let messages: Vec<crate::chat::Message> =
            serde_json::from_value(case["messages"].clone()).expect("chat messages");
        let text = template.render(&messages, true).expect("rendering");
        let prompt = m.tokenizer.encode(&text, false).expect("tokenizing");
        assert_eq!(prompt, ids(&case["prompt_ids"]), "prompt ids of {text:?}");
        prompts.push(prompt);
        expected.push(ids(&case["generated_ids"]));
    }
    for (i, prompt) in prompts.iter().enumerate() {
        let out = crate::generate(m, std::slice::from_ref(prompt), &params).expect("generate");
        assert_eq!(out[0].tokens, expected[i], "case {i}: {:?}", out[0].text);
    }
    let batched = crate::generate(m, &prompts, &params).expect("generate");
    for (i, g) in batched.iter().enumerate() {
        assert_eq!(g.tokens, expected[i], "batched case {i}: {:?}", g.text);
    }
}

/// How one greedy continuation of `other` compares with a greedy fixture case that the
/// reference model reproduces (see [`compare_greedy_fixture`]).
#[derive(Debug, Clone, PartialEq)]
pub struct GreedyAgreement {
    /// Leading tokens equal to the fixture's, of `of`.
    pub agreeing: usize,
    /// Tokens generated.
    pub of: usize,
    /// At the first difference: the reference's top-1 minus top-2 logit there.
    pub reference_gap: Option<f32>,
    /// At the first difference: the largest |other − reference| over the logits there.
    pub max_logit_diff: Option<f32>,
    /// Whether the row generated in one left-padded batch of all cases equals the one alone.
    pub batch_equals_alone: bool,
}

/// Runs the greedy fixture's prompts (see [`assert_greedy_fixture`]) on `other`, alone and in
/// one batch, and compares its tokens with the fixture's, which `reference` generates (checked
/// elsewhere); at the first difference it measures `reference`'s top-1/top-2 gap and the logit
/// difference between the two models, to tell a near-tie from an error.
pub fn compare_greedy_fixture(
    reference: &LoadedModel,
    other: &LoadedModel,
    fx: &serde_json::Value,
) -> Vec<GreedyAgreement> {
    let ids = fixture_ids;
    let params = fixture_params(fx);
    let cases = fx["cases"].as_array().expect("cases");
    let prompts: Vec<Vec<u32>> = cases.iter().map(|c| ids(&c["prompt_ids"])).collect();
    let batched = crate::generate(other, &prompts, &params).expect("generate");
    let mut out = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let want = ids(&case["generated_ids"]);
        let alone = crate::generate(other, std::slice::from_ref(&prompts[i]), &params)
            .expect("generate")
            .remove(0)
            .tokens;
        let agreeing = alone.iter().zip(&want).take_while(|(a, b)| a == b).count();
        let (mut reference_gap, mut max_logit_diff) = (None, None);
        if agreeing < want.len().min(alone.len()) {
            let mut context = prompts[i].clone();
            context.extend_from_slice(&want[..agreeing]);
            let r = reference.model.last_logits(&context).expect("logits");
            let o = other.model.last_logits(&context).expect("logits");
            let mut sorted = r.clone();
            sorted.sort_by(|a, b| b.total_cmp(a));
            reference_gap = Some(sorted[0] - sorted[1]);
            max_logit_diff = Some(
                r.iter()
                    .zip(&o)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max),
            );
        }
        out.push(GreedyAgreement {
            agreeing,
            of: want.len(),
            reference_gap,
            max_logit_diff,
            batch_equals_alone: batched[i].tokens == alone,
        });
    }
    out
}

/// A toy [`Constraint`]: only the tokens of the set (and any of them at any step).
#[derive(Debug, Clone, PartialEq)]
pub struct AllowedSet(pub std::collections::BTreeSet<u32>);

impl Constraint for AllowedSet {
    fn allows(&self, token: u32) -> bool {
        self.0.contains(&token)
    }
    /// Panics when `token` is not in the set (a decoder accepted a disallowed token).
    fn accept(&mut self, token: u32) {
        assert!(self.allows(token), "accepted the disallowed token {token}");
    }
    fn boxed_clone(&self) -> Box<dyn Constraint> {
        Box::new(self.clone())
    }
}

/// A toy [`Constraint`]: exactly the tokens of `seq` in order, then only `end` (an EOS id;
/// one outside the vocabulary allows nothing after the sequence).
#[derive(Debug, Clone, PartialEq)]
pub struct ForcedSequence {
    /// The tokens to force.
    pub seq: Vec<u32>,
    /// The one token allowed once `seq` is through.
    pub end: u32,
    /// How many tokens of `seq` were accepted.
    pub at: usize,
}

impl ForcedSequence {
    /// Forces `seq`, then `end`.
    pub fn new(seq: &[u32], end: u32) -> ForcedSequence {
        ForcedSequence {
            seq: seq.to_vec(),
            end,
            at: 0,
        }
    }
}

impl Constraint for ForcedSequence {
    fn allows(&self, token: u32) -> bool {
        match self.seq.get(self.at) {
            Some(&t) => token == t,
            None => token == self.end,
        }
    }
    /// Panics when `token` is not the one allowed.
    fn accept(&mut self, token: u32) {
        assert!(self.allows(token), "accepted the disallowed token {token}");
        self.at += 1;
    }
    fn boxed_clone(&self) -> Box<dyn Constraint> {
        Box::new(self.clone())
    }
}

/// A toy [`Constraint`] that allows no token: a row under it ends before its first token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AllowNothing;

impl Constraint for AllowNothing {
    fn allows(&self, _: u32) -> bool {
        false
    }
    /// Panics: nothing may be accepted.
    fn accept(&mut self, token: u32) {
        panic!("accepted {token} although nothing is allowed");
    }
    fn boxed_clone(&self) -> Box<dyn Constraint> {
        Box::new(AllowNothing)
    }
}

/// The largest absolute difference between two equally long slices (test comparisons).
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "compared slices differ in length");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Nanoseconds this process's threads have run (Linux `schedstat`; 0 elsewhere): the CPU time
/// the benchmark examples report beside wall time.
pub fn process_cpu_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}
