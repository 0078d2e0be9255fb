//! Generation from a shared prefix equals plain generation of the concatenated prompts:
//! on a tiny random Llama always, and on the real default model when it is present
//! (`SQLORA_MODEL` or the default model path; `SQLORA_REQUIRE_MODEL=1` makes its absence fail).

use candle_core::Device;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlora_model::chat::Message;
use sqlora_model::generate::n_best_constrained;
use sqlora_model::generate::{generate_with_adapters, TokenInfo};
use sqlora_model::llama::Model;
use sqlora_model::lora::{AdapterBatch, AdapterSet, LoraAdapter, LoraConfig};
use sqlora_model::prefix::{
    common_prefix_len, generate_from_prefix, generate_from_prefix_until,
    n_best_from_prefix_constrained, prefill_prefix,
};
use sqlora_model::testing::AllowedSet;
use sqlora_model::testing::{self, real_model_f32, TinyLlama};
use sqlora_model::{FinishReason, GenerateParams, Generation, LoadedModel};

const VOCAB: usize = 64;

/// A random 2-layer Llama (the default tiny shape) with 128 positions.
fn tiny_model(seed: u64) -> Model {
    TinyLlama {
        max_positions: 128,
        ..TinyLlama::default()
    }
    .model(seed)
}

/// An adapter on every projection with random, non-zero A and B of magnitude `scale`.
fn random_adapter(model: &Model, r: usize, seed: u64, scale: f32) -> LoraAdapter {
    let config = LoraConfig::new(r, 2.0 * r as f64, &sqlora_model::lora::PROJECTIONS);
    testing::random_adapter("rand", model, config, seed, scale)
}

fn tiny_decode(ids: &[u32]) -> sqlora_model::Result<String> {
    Ok(ids.iter().map(|i| format!("<{i}>")).collect())
}

fn tiny_info(eos: Vec<u32>) -> TokenInfo<'static> {
    TokenInfo {
        eos_ids: eos,
        pad_id: 0,
        decode: &tiny_decode,
    }
}

fn random_tokens(rng: &mut StdRng, n: usize) -> Vec<u32> {
    (0..n).map(|_| rng.gen_range(1..VOCAB as u32)).collect()
}

/// Plain batched generation of `prefix + suffix` and generation from the prefix cache.
fn both_ways(
    model: &Model,
    info: &TokenInfo<'_>,
    prefix: &[u32],
    suffixes: &[Vec<u32>],
    params: &GenerateParams,
    adapter: Option<&AdapterBatch>,
    prefix_adapter: Option<&AdapterBatch>,
) -> (Vec<Generation>, Vec<Generation>) {
    let full: Vec<Vec<u32>> = suffixes
        .iter()
        .map(|s| prefix.iter().chain(s).copied().collect())
        .collect();
    let plain = generate_with_adapters(model, info, &full, params, adapter).unwrap();
    let cache = prefill_prefix(model, prefix, prefix_adapter).unwrap();
    let from_prefix = generate_from_prefix(model, info, &cache, suffixes, params, adapter).unwrap();
    (plain, from_prefix)
}

fn tokens(g: &[Generation]) -> Vec<Vec<u32>> {
    g.iter().map(|g| g.tokens.clone()).collect()
}

#[test]
fn tiny_model_prefix_path_equals_plain_generation() {
    let model = tiny_model(3);
    let mut rng = StdRng::seed_from_u64(11);
    let prefix = random_tokens(&mut rng, 24);
    let suffixes = vec![
        random_tokens(&mut rng, 3),
        random_tokens(&mut rng, 9),
        random_tokens(&mut rng, 6),
    ];
    let params = GenerateParams {
        max_new_tokens: 12,
        ..GenerateParams::default()
    };
    // First without EOS: every row runs to the length limit.
    let info = tiny_info(Vec::new());
    let (plain, fp) = both_ways(&model, &info, &prefix, &suffixes, &params, None, None);
    assert_eq!(tokens(&plain), tokens(&fp));
    assert!(fp.iter().all(|g| g.tokens.len() == 12));
    assert!(fp.iter().all(|g| g.finish_reason == FinishReason::Length));
    for (a, b) in plain.iter().zip(&fp) {
        assert_eq!(a.text, b.text);
        assert!((a.logprob - b.logprob).abs() < 1e-3, "{a:?} vs {b:?}");
    }
    // The rows differ (the test would be weak otherwise).
    assert_ne!(fp[0].tokens, fp[1].tokens);

    // Now with an EOS id that ends row 1 early, so rows leave the batch at different steps.
    let eos = fp[1].tokens[4];
    let info = tiny_info(vec![eos]);
    let (plain, fp) = both_ways(&model, &info, &prefix, &suffixes, &params, None, None);
    assert_eq!(tokens(&plain), tokens(&fp));
    assert_eq!(fp[1].finish_reason, FinishReason::Eos);
    assert!(fp[1].tokens.len() <= 4);
    assert!(fp.iter().any(|g| g.finish_reason != FinishReason::Eos));
}

#[test]
fn a_stop_predicate_ends_rows_where_it_first_holds() {
    let model = tiny_model(3);
    let mut rng = StdRng::seed_from_u64(11);
    let prefix = random_tokens(&mut rng, 24);
    let suffixes = vec![
        random_tokens(&mut rng, 3),
        random_tokens(&mut rng, 9),
        random_tokens(&mut rng, 6),
    ];
    let params = GenerateParams {
        max_new_tokens: 12,
        ..GenerateParams::default()
    };
    let info = tiny_info(Vec::new());
    let cache = prefill_prefix(&model, &prefix, None).unwrap();
    let full = generate_from_prefix(&model, &info, &cache, &suffixes, &params, None).unwrap();
    // Stop at the first occurrence of the token row 0 generates fifth.
    let mark = format!("<{}>", full[0].tokens[4]);
    let done = |text: &str| text.contains(&mark);
    let cut =
        generate_from_prefix_until(&model, &info, &cache, &suffixes, &params, None, &done).unwrap();
    for (f, c) in full.iter().zip(&cut) {
        match f.tokens.iter().position(|&t| format!("<{t}>") == mark) {
            Some(i) => {
                assert_eq!(c.tokens, f.tokens[..=i].to_vec());
                assert_eq!(c.finish_reason, FinishReason::Stop);
                assert!(c.text.ends_with(&mark));
            }
            None => assert_eq!(c.tokens, f.tokens),
        }
    }
    assert!(cut[0].tokens.len() <= 5);
}

#[test]
fn tiny_model_prefix_path_with_an_adapter() {
    let model = tiny_model(5);
    let adapter = random_adapter(&model, 4, 9, 0.4);
    let single = AdapterBatch::single(&adapter);
    let mut rng = StdRng::seed_from_u64(21);
    let prefix = random_tokens(&mut rng, 30);
    let suffixes = vec![
        random_tokens(&mut rng, 5),
        random_tokens(&mut rng, 2),
        random_tokens(&mut rng, 8),
    ];
    let params = GenerateParams {
        max_new_tokens: 10,
        ..GenerateParams::default()
    };
    let info = tiny_info(Vec::new());
    let (plain, fp) = both_ways(
        &model,
        &info,
        &prefix,
        &suffixes,
        &params,
        Some(&single),
        Some(&single),
    );
    assert_eq!(tokens(&plain), tokens(&fp));
    // The adapter matters: without it the generations differ.
    let (bare, _) = both_ways(&model, &info, &prefix, &suffixes, &params, None, None);
    assert_ne!(tokens(&bare), tokens(&fp));
    // A prefix prefilled without the adapter gives other results (the cache depends on it).
    let (_, wrong) = both_ways(
        &model,
        &info,
        &prefix,
        &suffixes,
        &params,
        Some(&single),
        None,
    );
    assert_ne!(tokens(&wrong), tokens(&fp));

    // The same adapter through the gathered (multi-adapter) path, one slot per row.
    let mut set = AdapterSet::new(&Device::Cpu);
    let id = set.insert(adapter.clone()).unwrap();
    let rows = set.batch(&[Some(id); 3]).unwrap();
    let one = set.batch(&[Some(id)]).unwrap();
    let (_, gathered) = both_ways(
        &model,
        &info,
        &prefix,
        &suffixes,
        &params,
        Some(&rows),
        Some(&one),
    );
    assert_eq!(tokens(&gathered), tokens(&fp));
}

#[test]
fn beam_search_from_a_prefix_equals_beam_search_on_the_whole_prompt() {
    let model = tiny_model(11);
    let adapter = random_adapter(&model, 4, 3, 0.3);
    let single = AdapterBatch::single(&adapter);
    let mut rng = StdRng::seed_from_u64(5);
    let prefix = random_tokens(&mut rng, 24);
    let params = GenerateParams {
        max_new_tokens: 9,
        ..GenerateParams::default()
    };
    // Token 3 ends a beam, so some finish early and the n-best mixes lengths.
    let info = tiny_info(vec![3]);
    for (k, adapter) in [None, Some(&single)].into_iter().enumerate() {
        let cache = prefill_prefix(&model, &prefix, adapter).unwrap();
        for len in [1usize, 4, 7] {
            let suffix = random_tokens(&mut rng, len);
            let whole: Vec<u32> = prefix.iter().chain(&suffix).copied().collect();
            for n in [1usize, 3] {
                let plain =
                    n_best_constrained(&model, &info, &whole, n, &params, adapter, None).unwrap();
                let fp = n_best_from_prefix_constrained(
                    &model, &info, &cache, &suffix, n, &params, adapter, None,
                )
                .unwrap();
                let toks = |c: &[sqlora_model::generate::Candidate]| -> Vec<Vec<u32>> {
                    c.iter().map(|c| c.tokens.clone()).collect()
                };
                assert_eq!(toks(&plain), toks(&fp), "adapter {k}, suffix {len}, n {n}");
                assert_eq!(plain.len(), n);
                for (a, b) in plain.iter().zip(&fp) {
                    assert!(
                        (a.score - b.score).abs() < 1e-4,
                        "{} vs {}",
                        a.score,
                        b.score
                    );
                }
            }
        }
        // With a constraint, every beam follows it, from the prefix as on the whole prompt.
        let suffix = random_tokens(&mut rng, 3);
        let whole: Vec<u32> = prefix.iter().chain(&suffix).copied().collect();
        let allowed = || Some(Box::new(AllowedSet([3u32, 10, 20, 30].into_iter().collect())) as _);
        let plain =
            n_best_constrained(&model, &info, &whole, 3, &params, adapter, allowed()).unwrap();
        let fp = n_best_from_prefix_constrained(
            &model,
            &info,
            &cache,
            &suffix,
            3,
            &params,
            adapter,
            allowed(),
        )
        .unwrap();
        let toks = |c: &[sqlora_model::generate::Candidate]| -> Vec<Vec<u32>> {
            c.iter().map(|c| c.tokens.clone()).collect()
        };
        assert_eq!(toks(&plain), toks(&fp));
        assert!(fp
            .iter()
            .all(|c| c.tokens.iter().all(|t| [10, 20, 30].contains(t))));
        // The prefix cache is untouched: generation from it still equals the plain path.
        let again = n_best_from_prefix_constrained(
            &model,
            &info,
            &cache,
            &suffix,
            3,
            &params,
            adapter,
            allowed(),
        )
        .unwrap();
        assert_eq!(again, fp);
    }
    // Bad input is refused, not panicked on.
    let cache = prefill_prefix(&model, &prefix, None).unwrap();
    assert!(
        n_best_from_prefix_constrained(&model, &info, &cache, &[], 2, &params, None, None).is_err()
    );
    assert!(n_best_from_prefix_constrained(
        &model,
        &info,
        &cache,
        &[VOCAB as u32 + 5],
        2,
        &params,
        None,
        None
    )
    .is_err());
}

#[test]
fn the_prefix_cache_is_reused_unchanged_and_bad_input_is_refused() {
    let model = tiny_model(7);
    let mut rng = StdRng::seed_from_u64(1);
    let prefix = random_tokens(&mut rng, 10);
    let info = tiny_info(Vec::new());
    let params = GenerateParams {
        max_new_tokens: 6,
        ..GenerateParams::default()
    };
    let cache = prefill_prefix(&model, &prefix, None).unwrap();
    assert_eq!(cache.len(), 10);
    let a = vec![random_tokens(&mut rng, 4), random_tokens(&mut rng, 2)];
    let b = vec![random_tokens(&mut rng, 3)];
    let first = generate_from_prefix(&model, &info, &cache, &a, &params, None).unwrap();
    let _ = generate_from_prefix(&model, &info, &cache, &b, &params, None).unwrap();
    let again = generate_from_prefix(&model, &info, &cache, &a, &params, None).unwrap();
    assert_eq!(cache.len(), 10);
    assert_eq!(cache.batch_size(), Some(1));
    assert_eq!(tokens(&first), tokens(&again));
    // A row alone equals the row in a batch.
    let alone = generate_from_prefix(&model, &info, &cache, &a[1..], &params, None).unwrap();
    assert_eq!(alone[0].tokens, first[1].tokens);

    assert!(generate_from_prefix(&model, &info, &cache, &[vec![]], &params, None).is_err());
    assert!(
        generate_from_prefix(&model, &info, &cache, &[vec![VOCAB as u32]], &params, None).is_err()
    );
    let sampling = GenerateParams {
        temperature: 0.7,
        ..params.clone()
    };
    assert!(generate_from_prefix(&model, &info, &cache, &a, &sampling, None).is_err());
    let too_long = GenerateParams {
        max_new_tokens: 200,
        ..params.clone()
    };
    assert!(generate_from_prefix(&model, &info, &cache, &a, &too_long, None).is_err());
    assert!(prefill_prefix(&model, &[], None).is_err());
    let empty = sqlora_model::llama::Cache::new(model.config());
    assert!(generate_from_prefix(&model, &info, &empty, &a, &params, None).is_err());
    let mut two = cache.clone();
    two.select_rows(&[0, 0]).unwrap();
    assert!(generate_from_prefix(&model, &info, &two, &a, &params, None).is_err());
    assert!(
        generate_from_prefix(&model, &info, &cache, &[], &params, None)
            .unwrap()
            .is_empty()
    );
}

/// Chat prompts that share a schema system message and differ in the question.
fn real_prompts(m: &LoadedModel) -> Vec<Vec<u32>> {
    let system = "You translate questions into SQLite queries. Reply with one SELECT query.\n\
        CREATE TABLE employees (id INTEGER PRIMARY KEY, name TEXT, salary REAL, dept_id INTEGER REFERENCES departments(id));\n\
        CREATE TABLE departments (id INTEGER PRIMARY KEY, name TEXT, city TEXT);";
    let template = m.chat_template.as_ref().expect("a chat template");
    [
        "How many employees are there?",
        "List the names of the employees who earn more than 50000, highest salary first, together with the city of their department.",
        "Which departments are in Paris?",
    ]
    .iter()
    .map(|q| {
        let text = template
            .render(
                &[Message::new("system", system), Message::new("user", *q)],
                true,
            )
            .unwrap()
            + "SELECT";
        m.tokenizer.encode(&text, false).unwrap()
    })
    .collect()
}

fn real_case(m: &LoadedModel, adapter: Option<&LoraAdapter>) {
    let prompts = real_prompts(m);
    let p = common_prefix_len(&prompts);
    assert!(p > 40, "the prompts share a system message ({p} tokens)");
    let prefix = &prompts[0][..p];
    let suffixes: Vec<Vec<u32>> = prompts.iter().map(|x| x[p..].to_vec()).collect();
    let lens: Vec<usize> = suffixes.iter().map(Vec::len).collect();
    assert!(lens[0] != lens[1] && lens[1] != lens[2], "{lens:?}");
    let tok = &m.tokenizer;
    let decode = |ids: &[u32]| tok.decode(ids, true);
    let info = TokenInfo {
        eos_ids: tok.eos_token_ids(),
        pad_id: tok.pad_token_id(),
        decode: &decode,
    };
    let params = GenerateParams {
        max_new_tokens: 40,
        ..GenerateParams::default()
    };
    let batch = adapter.map(AdapterBatch::single);
    let (plain, fp) = both_ways(
        &m.model,
        &info,
        prefix,
        &suffixes,
        &params,
        batch.as_ref(),
        batch.as_ref(),
    );
    assert_eq!(tokens(&plain), tokens(&fp));
    for (a, b) in plain.iter().zip(&fp) {
        assert_eq!(a.text, b.text);
        assert_eq!(a.finish_reason, b.finish_reason);
    }
    assert!(fp.iter().all(|g| !g.tokens.is_empty()));
}

// The real-model cases run with f32 activations: the prefix path's rows must equal the plain
// batch's token for token, which 8-bit activations do not keep (the attention over a cached
// prefix sums in another order, and an activation whose rounding flips changes the rest of the
// pass by the rounding noise; see `generate.rs`).
#[test]
fn real_model_prefix_path_equals_plain_generation() {
    let Some(m) = real_model_f32() else { return };
    real_case(m, None);
}

#[test]
fn real_model_prefix_path_with_an_adapter() {
    let Some(m) = real_model_f32() else { return };
    let adapter = random_adapter(&m.model, 4, 3, 0.05);
    real_case(m, Some(&adapter));
}

/// Hidden states and cached keys/values of `ids` prefilled into a fresh cache by `model` with
/// prompt chunks of `chunk` positions (0: one pass).
fn prefilled(model: &Model, ids: &[u32], chunk: usize) -> (Vec<f32>, Vec<f32>) {
    let mut model = model.clone();
    model.set_prefill_chunk(chunk);
    let dev = Device::Cpu;
    let input = candle_core::Tensor::new(ids, &dev)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let pos: Vec<u32> = (0..ids.len() as u32).collect();
    let pos = candle_core::Tensor::new(pos.as_slice(), &dev)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let mut cache = sqlora_model::llama::Cache::new(model.config());
    let h = model.forward(&input, &pos, None, Some(&mut cache)).unwrap();
    assert_eq!(cache.len(), ids.len());
    // The cache, through what it feeds: the next token's hidden state.
    let next = candle_core::Tensor::new(&[ids[0]], &dev)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let at = candle_core::Tensor::new(&[ids.len() as u32], &dev)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let after = model.forward(&next, &at, None, Some(&mut cache)).unwrap();
    let flat = |t: candle_core::Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    (flat(h), flat(after))
}

#[test]
fn a_prompt_prefilled_in_chunks_equals_one_pass() {
    let model = tiny_model(5);
    let mut rng = StdRng::seed_from_u64(3);
    let ids = random_tokens(&mut rng, 61);
    let (h, after) = prefilled(&model, &ids, 0);
    for chunk in [1, 7, 16, 60, 61, 200] {
        let (hc, ac) = prefilled(&model, &ids, chunk);
        assert!(
            testing::max_abs_diff(&h, &hc) < 1e-5,
            "chunk {chunk}: {}",
            testing::max_abs_diff(&h, &hc)
        );
        assert!(testing::max_abs_diff(&after, &ac) < 1e-5, "chunk {chunk}");
    }
}

#[test]
fn real_model_prompt_chunks_give_the_next_token_of_one_pass() {
    // Chunks attend over the cache as the prefix path does (attention's products and sums
    // run in another order), so hidden states agree to rounding, not bit for bit, and the
    // next token is the same.
    let Some(m) = testing::real_model() else {
        return;
    };
    let text =
        "CREATE TABLE orders (order_id INTEGER PRIMARY KEY, customer_id INTEGER, total REAL);\n"
            .repeat(4);
    let ids = m.tokenizer.encode(&text, false).unwrap();
    let (h, after) = prefilled(&m.model, &ids, 0);
    let scale = h.iter().fold(0f32, |a, x| a.max(x.abs()));
    let hidden = m.config.hidden_size;
    let next = |h: &[f32]| {
        let last = candle_core::Tensor::new(&h[h.len() - hidden..], &Device::Cpu).unwrap();
        let logits = m.model.logits(&last.unsqueeze(0).unwrap()).unwrap();
        sqlora_model::generate::argmax(&logits.squeeze(0).unwrap().to_vec1::<f32>().unwrap())
    };
    for chunk in [16, 37, 64] {
        let (hc, ac) = prefilled(&m.model, &ids, chunk);
        assert!(
            testing::max_abs_diff(&h, &hc) < 0.05 * scale
                && testing::max_abs_diff(&after, &ac) < 0.05 * scale,
            "chunk {chunk} of {} tokens: {} / {} of {scale}",
            ids.len(),
            testing::max_abs_diff(&h, &hc),
            testing::max_abs_diff(&after, &ac)
        );
        assert_eq!(next(&h), next(&hc), "chunk {chunk}");
        assert_eq!(next(&after), next(&ac), "chunk {chunk}");
    }
}
