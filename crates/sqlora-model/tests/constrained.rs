//! Every decoding loop honours a per-row [`Constraint`]: batched greedy and sampled generation,
//! beam search and the shared-prefix path. Toy constraints (an allowed set, a forced
//! sequence, end-of-sequence only after k tokens, no token twice, nothing at all) on tiny
//! random Llamas with two adapters, and on the real default model when it is present
//! (`SQLORA_MODEL` or the default model path; `SQLORA_REQUIRE_MODEL=1` makes its absence fail).
//!
//! What is checked: a constrained row generates only allowed tokens, a forced sequence comes
//! out exactly, a row in a batch mixing constraints and adapters generates what it generates
//! alone, an unconstrained row generates the tokens it generates without the hook (and a call
//! without constraints is bit-identical to the decoders without the hook), and a constraint
//! that allows nothing ends its row cleanly.

use std::collections::BTreeSet;

use candle_core::Device;
use sqlora_model::chat::Message;
use sqlora_model::constraint::Constraint;
use sqlora_model::generate::{
    generate_constrained, generate_with_adapters, n_best_constrained, n_best_with_adapters,
    RowConstraints, TokenInfo,
};
use sqlora_model::llama::Model;
use sqlora_model::lora::{AdapterId, AdapterSet, LoraConfig};
use sqlora_model::prefix::{
    generate_from_prefix_constrained, generate_from_prefix_until, prefill_prefix,
};
use sqlora_model::testing::{
    self, real_model_f32, AllowNothing, AllowedSet, ForcedSequence, TinyLlama,
};
use sqlora_model::{FinishReason, GenerateParams, Generation, LoadedModel};

const VOCAB: u32 = 64;
const EOS: u32 = 1;

/// Allows everything but `eos` before `k` tokens were accepted.
#[derive(Clone)]
struct EosAfter {
    eos: u32,
    k: usize,
    seen: usize,
}

impl Constraint for EosAfter {
    fn allows(&self, token: u32) -> bool {
        token != self.eos || self.seen >= self.k
    }
    fn accept(&mut self, _: u32) {
        self.seen += 1;
    }
    fn boxed_clone(&self) -> Box<dyn Constraint> {
        Box::new(self.clone())
    }
}

/// Allows no token twice (its state is what this row accepted: beams must not share it).
#[derive(Clone, Default)]
struct NoRepeat(BTreeSet<u32>);

impl Constraint for NoRepeat {
    fn allows(&self, token: u32) -> bool {
        !self.0.contains(&token)
    }
    fn accept(&mut self, token: u32) {
        assert!(self.0.insert(token), "accepted {token} twice");
    }
    fn boxed_clone(&self) -> Box<dyn Constraint> {
        Box::new(self.clone())
    }
}

fn tiny_model(seed: u64) -> Model {
    TinyLlama {
        max_positions: 128,
        ..TinyLlama::default()
    }
    .model(seed)
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

/// Two adapters (different ranks and targets) in one set.
fn two_adapters(model: &Model) -> (AdapterSet, AdapterId, AdapterId) {
    let mut set = AdapterSet::new(&Device::Cpu);
    let a = set
        .insert(testing::random_adapter(
            "a",
            model,
            LoraConfig::new(4, 8.0, &sqlora_model::lora::PROJECTIONS),
            41,
            0.3,
        ))
        .unwrap();
    let b = set
        .insert(testing::random_adapter(
            "b",
            model,
            LoraConfig::new(2, 4.0, &["q_proj", "v_proj", "down_proj"]),
            42,
            0.3,
        ))
        .unwrap();
    (set, a, b)
}

/// The even ids 2..40 and EOS.
fn even_set() -> BTreeSet<u32> {
    (2..40).step_by(2).chain([EOS]).collect()
}

const FORCED: [u32; 6] = [17, 3, 3, 60, 9, 22];

/// Row `i`'s constraint of the mixed batches (a fresh one on every call).
fn constraint_of(i: usize) -> Option<Box<dyn Constraint>> {
    match i % 6 {
        0 => Some(Box::new(AllowedSet(even_set()))),
        1 => None,
        2 => Some(Box::new(ForcedSequence::new(&FORCED, EOS))),
        3 => Some(Box::new(NoRepeat::default())),
        4 => Some(Box::new(AllowNothing)),
        _ => None,
    }
}

fn constraints(rows: usize) -> RowConstraints {
    (0..rows).map(constraint_of).collect()
}

fn prompts() -> Vec<Vec<u32>> {
    vec![
        vec![5, 6, 7, 8, 9],
        vec![10, 11],
        vec![12, 13, 14],
        vec![5, 6, 7, 8, 9, 30, 31],
        vec![44, 45, 46],
        vec![20, 2, 50, 3],
    ]
}

/// What every row of the mixed batch must show, whatever the batch around it.
fn check_rows(gens: &[Generation], max_new: usize) {
    let even = even_set();
    assert!(gens[0].tokens.iter().all(|t| even.contains(t)), "{gens:?}");
    assert_eq!(gens[2].tokens, FORCED, "the forced sequence, exactly");
    assert_eq!(gens[2].finish_reason, FinishReason::Eos);
    assert_eq!(gens[2].text, tiny_decode(&FORCED).unwrap());
    let distinct: BTreeSet<u32> = gens[3].tokens.iter().copied().collect();
    assert_eq!(distinct.len(), gens[3].tokens.len(), "{:?}", gens[3]);
    assert!(gens[3].tokens.len() == max_new || gens[3].finish_reason == FinishReason::Eos);
    assert_eq!(gens[4].finish_reason, FinishReason::Constrained);
    assert!(gens[4].tokens.is_empty() && gens[4].text.is_empty());
    assert_eq!(gens[4].logprob, 0.0);
    for g in gens {
        assert!(g.logprob.is_finite() && g.logprob <= 0.0, "{g:?}");
    }
}

fn assert_same(a: &Generation, b: &Generation, what: &str) {
    assert_eq!(a.tokens, b.tokens, "{what}");
    assert_eq!(a.text, b.text, "{what}");
    assert_eq!(a.finish_reason, b.finish_reason, "{what}");
    assert!(
        (a.logprob - b.logprob).abs() < 1e-4,
        "{what}: {a:?} vs {b:?}"
    );
}

/// Runs the mixed batch (rows with and without constraints, two adapters) and checks it;
/// returns its rows.
fn mixed_batch_case(params: &GenerateParams) -> Vec<Generation> {
    let model = tiny_model(9);
    let (set, a, b) = two_adapters(&model);
    let info = tiny_info(vec![EOS]);
    let prompts = prompts();
    let per_row = [Some(a), Some(b), None, Some(a), Some(b), None];
    let batch = set.batch(&per_row).unwrap();
    let together = generate_constrained(
        &model,
        &info,
        &prompts,
        params,
        Some(&batch),
        constraints(prompts.len()),
    )
    .unwrap();
    check_rows(&together, params.max_new_tokens);

    // Each row alone (its adapter, a fresh constraint) generates the same.
    for (r, p) in prompts.iter().enumerate() {
        let one = set.batch(&[per_row[r]]).unwrap();
        let alone = generate_constrained(
            &model,
            &info,
            std::slice::from_ref(p),
            params,
            Some(&one),
            vec![constraint_of(r)],
        )
        .unwrap();
        assert_same(&together[r], &alone[0], &format!("row {r} alone"));
    }

    // Unconstrained rows generate what the decoder without constraints gives them (the same
    // tokens; the log-probs to rounding, as the batch around them shrinks at other steps);
    // the constraints changed the other rows.
    let free = generate_with_adapters(&model, &info, &prompts, params, Some(&batch)).unwrap();
    for r in [1, 5] {
        assert_same(&together[r], &free[r], &format!("unconstrained row {r}"));
    }
    for r in [0, 2, 4] {
        assert_ne!(
            together[r].tokens, free[r].tokens,
            "row {r} was constrained"
        );
    }
    // No constraints at all (an empty list, or None for every row) is the decoder without
    // constraints, bit for bit.
    let all_none = (0..prompts.len()).map(|_| None).collect();
    let nones =
        generate_constrained(&model, &info, &prompts, params, Some(&batch), all_none).unwrap();
    assert_eq!(nones, free);
    let none =
        generate_constrained(&model, &info, &prompts, params, Some(&batch), Vec::new()).unwrap();
    assert_eq!(none, free);
    together
}

#[test]
fn greedy_rows_obey_their_constraints_and_equal_alone() {
    mixed_batch_case(&GenerateParams {
        max_new_tokens: 12,
        ..GenerateParams::default()
    });
}

#[test]
fn sampled_rows_obey_their_constraints_and_equal_alone() {
    let greedy = mixed_batch_case(&GenerateParams {
        max_new_tokens: 12,
        ..GenerateParams::default()
    });
    let sampled = mixed_batch_case(&GenerateParams {
        max_new_tokens: 12,
        temperature: 1.5,
        top_p: 0.95,
        seed: 5,
        ..GenerateParams::default()
    });
    // Sampling really drew something else than the greedy token, in a constrained row.
    assert!(
        [0, 3]
            .iter()
            .any(|&r| sampled[r].tokens != greedy[r].tokens),
        "{sampled:?}"
    );
}

#[test]
fn a_wrong_number_of_constraints_is_refused() {
    let model = tiny_model(3);
    let info = tiny_info(vec![EOS]);
    let prompts = prompts();
    let params = GenerateParams::default();
    let e = generate_constrained(&model, &info, &prompts, &params, None, constraints(2));
    assert!(e.is_err());
    let cache = prefill_prefix(&model, &[4, 5, 6], None).unwrap();
    let e = generate_from_prefix_constrained(
        &model,
        &info,
        &cache,
        &prompts,
        &params,
        None,
        &|_| false,
        constraints(3),
    );
    assert!(e.is_err());
}

#[test]
fn eos_only_after_k_tokens_delays_the_end() {
    let model = tiny_model(4);
    let params = GenerateParams {
        max_new_tokens: 12,
        ..GenerateParams::default()
    };
    // A prompt whose greedy continuation changes token at some step j: call that token "EOS",
    // and unconstrained the row ends after j tokens.
    let (prompt, free, j) = (2..40u32)
        .find_map(|x| {
            let prompt = vec![vec![x, 21, 33, x + 1]];
            let free =
                generate_with_adapters(&model, &tiny_info(vec![EOS]), &prompt, &params, None)
                    .unwrap()
                    .remove(0);
            let j = free.tokens.iter().position(|&t| t != free.tokens[0])?;
            (j + 4 < params.max_new_tokens).then_some((prompt, free, j))
        })
        .expect("a prompt whose greedy tokens change");
    let eos = free.tokens[j];
    let info = tiny_info(vec![eos]);
    let short = generate_with_adapters(&model, &info, &prompt, &params, None)
        .unwrap()
        .remove(0);
    assert_eq!(short.tokens, free.tokens[..j]);
    assert_eq!(short.finish_reason, FinishReason::Eos);
    let k = j + 3;
    let late = generate_constrained(
        &model,
        &info,
        &prompt,
        &params,
        None,
        vec![Some(Box::new(EosAfter { eos, k, seen: 0 }))],
    )
    .unwrap()
    .remove(0);
    assert!(late.tokens.len() >= k, "{late:?}");
    assert_eq!(late.tokens[..j], free.tokens[..j]);
    assert!(!late.tokens.contains(&eos), "{late:?}");
}

#[test]
fn beam_search_obeys_the_constraint_per_beam() {
    let model = tiny_model(11);
    let (set, a, _) = two_adapters(&model);
    let single = sqlora_model::lora::AdapterBatch::single(set.get(a).unwrap());
    let info = tiny_info(vec![EOS]);
    let params = GenerateParams {
        max_new_tokens: 8,
        ..GenerateParams::default()
    };
    let prompt = [7u32, 21, 33, 2];
    for adapter in [None, Some(&single)] {
        let free = n_best_with_adapters(&model, &info, &prompt, 4, &params, adapter).unwrap();
        let none = n_best_constrained(&model, &info, &prompt, 4, &params, adapter, None).unwrap();
        assert_eq!(
            none, free,
            "no constraint: the beam search without the hook"
        );

        let even = even_set();
        let c = n_best_constrained(
            &model,
            &info,
            &prompt,
            4,
            &params,
            adapter,
            Some(Box::new(AllowedSet(even.clone()))),
        )
        .unwrap();
        assert_eq!(c.len(), 4);
        for cand in &c {
            assert!(cand.tokens.iter().all(|t| even.contains(t)), "{cand:?}");
            assert!(cand.score.is_finite() && cand.score <= 0.0);
        }
        assert_ne!(c, free);

        // Each beam has its own state: within a candidate no token repeats, while different
        // candidates share tokens (one state for all beams would forbid that, and its
        // `accept` would panic on the second beam taking a token).
        let nr = n_best_constrained(
            &model,
            &info,
            &prompt,
            4,
            &params,
            adapter,
            Some(Box::new(NoRepeat::default())),
        )
        .unwrap();
        assert_eq!(nr.len(), 4);
        for cand in &nr {
            let d: BTreeSet<u32> = cand.tokens.iter().copied().collect();
            assert_eq!(d.len(), cand.tokens.len(), "{cand:?}");
        }
        let union: BTreeSet<u32> = nr.iter().flat_map(|c| c.tokens.clone()).collect();
        let total: usize = nr.iter().map(|c| c.tokens.len()).sum();
        assert!(union.len() < total, "the candidates share tokens: {nr:?}");

        // A forced sequence is the only candidate.
        let forced = n_best_constrained(
            &model,
            &info,
            &prompt,
            3,
            &params,
            adapter,
            Some(Box::new(ForcedSequence::new(&FORCED, EOS))),
        )
        .unwrap();
        assert_eq!(forced.len(), 1, "{forced:?}");
        assert_eq!(forced[0].tokens, FORCED);
        assert_eq!(forced[0].text, tiny_decode(&FORCED).unwrap());

        // Nothing allowed: the one dead end, empty.
        let dead = n_best_constrained(
            &model,
            &info,
            &prompt,
            3,
            &params,
            adapter,
            Some(Box::new(AllowNothing)),
        )
        .unwrap();
        assert_eq!(dead.len(), 1, "{dead:?}");
        assert!(dead[0].tokens.is_empty() && dead[0].text.is_empty());
    }
}

#[test]
fn beam_dead_ends_are_dropped_while_other_beams_go_on() {
    // Forced sequence whose end is not EOS: after it nothing is allowed. With max_new_tokens
    // beyond its length the only beam dies there and is returned as a dead end.
    let model = tiny_model(12);
    let info = tiny_info(vec![EOS]);
    let params = GenerateParams {
        max_new_tokens: 10,
        ..GenerateParams::default()
    };
    let prompt = [9u32, 8, 7];
    let dead = n_best_constrained(
        &model,
        &info,
        &prompt,
        2,
        &params,
        None,
        Some(Box::new(ForcedSequence::new(&[4, 5], VOCAB + 1))),
    )
    .unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].tokens, [4, 5]);
    // Greedy: the same row ends with FinishReason::Constrained and keeps its tokens.
    let g = generate_constrained(
        &model,
        &info,
        &[prompt.to_vec()],
        &params,
        None,
        vec![Some(Box::new(ForcedSequence::new(&[4, 5], VOCAB + 1)))],
    )
    .unwrap()
    .remove(0);
    assert_eq!(g.tokens, [4, 5]);
    assert_eq!(g.finish_reason, FinishReason::Constrained);
    assert_eq!(g.text, "<4><5>");
}

#[test]
fn prefix_path_rows_obey_their_constraints_and_equal_plain_generation() {
    let model = tiny_model(21);
    let (set, a, b) = two_adapters(&model);
    let info = tiny_info(vec![EOS]);
    let params = GenerateParams {
        max_new_tokens: 10,
        ..GenerateParams::default()
    };
    let prefix: Vec<u32> = (0..20).map(|i| 2 + (i * 7 % 60) as u32).collect();
    let suffixes = prompts();
    let full: Vec<Vec<u32>> = suffixes
        .iter()
        .map(|s| prefix.iter().chain(s).copied().collect())
        .collect();
    // The prefix cache is the adapter's: one adapter for every row.
    for adapter in [None, Some(a), Some(b)] {
        let ids = vec![adapter; suffixes.len()];
        let batch = set.batch(&ids).unwrap();
        let one = set.batch(&[adapter]).unwrap();
        let cache = prefill_prefix(&model, &prefix, Some(&one)).unwrap();
        let n = suffixes.len();
        let fp = generate_from_prefix_constrained(
            &model,
            &info,
            &cache,
            &suffixes,
            &params,
            Some(&batch),
            &|_| false,
            constraints(n),
        )
        .unwrap();
        check_rows(&fp, params.max_new_tokens);
        let plain =
            generate_constrained(&model, &info, &full, &params, Some(&batch), constraints(n))
                .unwrap();
        for (r, (x, y)) in fp.iter().zip(&plain).enumerate() {
            assert_same(x, y, &format!("row {r}: prefix path vs plain"));
        }
        for r in 0..n {
            let alone = generate_from_prefix_constrained(
                &model,
                &info,
                &cache,
                &suffixes[r..r + 1],
                &params,
                Some(&one),
                &|_| false,
                vec![constraint_of(r)],
            )
            .unwrap();
            assert_same(&fp[r], &alone[0], &format!("row {r} alone"));
        }
        let free = generate_from_prefix_until(
            &model,
            &info,
            &cache,
            &suffixes,
            &params,
            Some(&batch),
            &|_| false,
        )
        .unwrap();
        for r in [1, 5] {
            assert_same(&fp[r], &free[r], &format!("unconstrained row {r}"));
        }
        for r in [0, 2, 4] {
            assert_ne!(fp[r].tokens, free[r].tokens, "row {r} was constrained");
        }
    }
}

/// The real model's chat prompts (a shared schema, different questions), ending in `SELECT`.
fn real_prompts(m: &LoadedModel) -> Vec<Vec<u32>> {
    let system = "You translate questions into SQLite queries. Reply with one SELECT query.\n\
        CREATE TABLE employees (id INTEGER PRIMARY KEY, name TEXT, salary REAL, dept_id INTEGER);";
    let template = m.chat_template.as_ref().expect("a chat template");
    [
        "How many employees are there?",
        "List the names of the employees who earn more than 50000.",
        "What is the highest salary?",
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

#[test]
fn real_model_forced_and_mixed_rows() {
    // On the f32 path: rows must agree alone and batched to 1e-4 in log-probability, which
    // 8-bit activations do not keep (a padded batch's attention sums in another order, and an
    // activation whose rounding flips moves logits by hundredths).
    let Some(m) = real_model_f32() else { return };
    let tok = &m.tokenizer;
    let decode = |ids: &[u32]| tok.decode(ids, true);
    let eos = tok.eos_token_ids();
    let info = TokenInfo {
        eos_ids: eos.clone(),
        pad_id: tok.pad_token_id(),
        decode: &decode,
    };
    let params = GenerateParams {
        max_new_tokens: 24,
        ..GenerateParams::default()
    };
    let prompts = real_prompts(m);
    let forced = tok
        .encode(" name FROM employees ORDER BY id", false)
        .unwrap();
    // Only tokens whose text is upper-case letters, spaces or `*()`, and EOS.
    let upper: BTreeSet<u32> = (0..m.config.vocab_size as u32)
        .filter(|&t| {
            let s = tok.decode(&[t], true).unwrap_or_default();
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_uppercase() || c == ' ' || "*()".contains(c))
        })
        .chain(eos.iter().copied())
        .collect();
    let make = |i: usize| -> Option<Box<dyn Constraint>> {
        match i {
            0 => Some(Box::new(ForcedSequence::new(&forced, eos[0]))),
            1 => None,
            _ => Some(Box::new(AllowedSet(upper.clone()))),
        }
    };
    let together = generate_constrained(
        &m.model,
        &info,
        &prompts,
        &params,
        None,
        (0..3).map(make).collect(),
    )
    .unwrap();
    assert_eq!(together[0].tokens, forced);
    assert_eq!(together[0].text, " name FROM employees ORDER BY id");
    assert!(together[2].tokens.iter().all(|t| upper.contains(t)));
    assert!(!together[2].tokens.is_empty());
    let free = generate_with_adapters(&m.model, &info, &prompts, &params, None).unwrap();
    assert_eq!(together[1], free[1]);
    for (r, p) in prompts.iter().enumerate() {
        let alone = generate_constrained(
            &m.model,
            &info,
            std::slice::from_ref(p),
            &params,
            None,
            vec![make(r)],
        )
        .unwrap();
        assert_same(&together[r], &alone[0], &format!("real row {r} alone"));
    }
    // The shared-prefix path gives the same rows.
    let p = sqlora_model::prefix::common_prefix_len(&prompts);
    let suffixes: Vec<Vec<u32>> = prompts.iter().map(|x| x[p..].to_vec()).collect();
    let cache = prefill_prefix(&m.model, &prompts[0][..p], None).unwrap();
    let fp = generate_from_prefix_constrained(
        &m.model,
        &info,
        &cache,
        &suffixes,
        &params,
        None,
        &|_| false,
        (0..3).map(make).collect(),
    )
    .unwrap();
    for (r, (x, y)) in fp.iter().zip(&together).enumerate() {
        assert_eq!(x.tokens, y.tokens, "real row {r}: prefix path");
        assert_eq!(x.finish_reason, y.finish_reason, "real row {r}");
    }
}
