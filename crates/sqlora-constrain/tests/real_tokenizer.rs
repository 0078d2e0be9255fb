//! The constraint over the real SmolLM2 (and, when fetched, Qwen2.5-Coder) vocabulary: gold
//! queries tokenized and forced through it are allowed token by token and may end; a wrong
//! column is refused; and how long one `allows` takes.

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::*;
use sqlora_constrain::{SchemaIndex, SqlConstraint, Vocab, DEFAULT_PRIME};
use sqlora_model::constraint::{best_allowed, Constraint};
use sqlora_model::tokenizer::Tokenizer;

/// Up to `per_domain` gold queries of every domain (test split first) that the strict
/// recognizer accepts, with their domain.
fn gold(per_domain: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for domain in domains() {
        let index = domain_index(&domain);
        let mut n = 0;
        for split in ["test", "dev", "train"] {
            let Ok(text) = std::fs::read_to_string(
                datasets_dir().join(&domain).join(format!("{split}.jsonl")),
            ) else {
                continue;
            };
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                let sql = v["sql"].as_str().unwrap().to_string();
                if n < per_domain && complete(&index, &sql) {
                    out.push((domain.clone(), sql));
                    n += 1;
                }
            }
        }
    }
    out
}

/// Forces `sql`'s continuation after the prime through a fresh constraint, token by token;
/// returns the token where it was refused, if any, and the constraint after the text.
fn force(
    index: &Arc<SchemaIndex>,
    vocab: &Arc<Vocab>,
    tok: &Tokenizer,
    sql: &str,
) -> (Option<String>, SqlConstraint) {
    let rest = &sql[DEFAULT_PRIME.len()..];
    let mut c = SqlConstraint::with_index(
        index.clone(),
        vocab.clone(),
        DEFAULT_PRIME,
        Default::default(),
    )
    .unwrap();
    for id in tok.encode(rest, false).unwrap() {
        if !c.allows(id) {
            return (Some(format!("{:?}", tok.id_to_token(id))), c);
        }
        c.accept(id);
    }
    (None, c)
}

fn check_tokenizer(label: &str, tok: &Tokenizer) {
    let vocab = Arc::new(Vocab::from_tokenizer(tok));
    assert_eq!(vocab.len(), tok.vocab_size());
    let eos = tok.eos_token_ids();
    assert!(!eos.is_empty());
    let semi = tok.encode(";", false).unwrap();
    let blank = tok.encode("\n\n", false).unwrap();

    let queries = gold(40);
    assert!(queries.len() >= 200, "{} gold queries", queries.len());
    let mut tokens = 0usize;
    for (domain, sql) in &queries {
        assert!(sql.starts_with(DEFAULT_PRIME), "{sql}");
        let index = domain_index(domain);
        let (refused, c) = force(&index, &vocab, tok, sql);
        assert!(
            refused.is_none(),
            "{label}: token {refused:?} refused in {sql}"
        );
        tokens += tok.encode(&sql[6..], false).unwrap().len();
        for &e in &eos {
            assert!(c.allows(e), "{label}: end refused after {sql}");
        }
        // `;` then the end, or a blank line then the end.
        for tail in [&semi, &blank] {
            let mut d = c.clone();
            for &t in tail.iter() {
                assert!(d.allows(t), "{label}: {tail:?} refused after {sql}");
                d.accept(t);
            }
            assert!(d.allows(eos[0]));
            assert!(!d.allows(tok.encode(" SELECT", false).unwrap()[0]));
        }
        // Special tokens other than the end are never allowed.
        if let Some(start) = tok.token_to_id("<|im_start|>") {
            assert!(!c.allows(start));
        }
    }
    eprintln!(
        "{label}: {} gold queries, {tokens} tokens forced through",
        queries.len()
    );

    // A column no table has is refused before its text is complete.
    let index = domain_index("retail");
    let (refused, _) = force(&index, &vocab, tok, "SELECT product_nam FROM products");
    assert!(refused.is_some(), "{label}: a wrong column went through");
    let (refused, c) = force(&index, &vocab, tok, "SELECT name FROM products WHERE");
    assert!(refused.is_none());
    assert!(
        !eos.iter().any(|&e| c.allows(e)),
        "{label}: WHERE may not end"
    );

    // Speed: every token of the vocabulary asked at a few places of a statement.
    let places = [
        "SELECT",
        "SELECT T1.name, count(*) FROM products AS T1 JOIN order_items AS T2 ON T1.product_id = T2.product_id WHERE T1.unit_price > ",
        "SELECT name FROM products WHERE name = 'Desk lamp",
        "SELECT c.email FROM customers AS c WHERE c.cust",
    ];
    let mut calls = 0u64;
    let start = Instant::now();
    for place in places {
        let c = SqlConstraint::with_index(index.clone(), vocab.clone(), place, Default::default())
            .unwrap();
        for id in 0..vocab.len() as u32 {
            std::hint::black_box(c.allows(id));
            calls += 1;
        }
    }
    let all = start.elapsed().as_secs_f64() * 1e6 / calls as f64;
    // The whole-vocabulary mask (what sampling asks for) is the per-token answer, faster.
    let mut mask_s = 0f64;
    for place in places.iter().copied().chain([
        "SELECT name FROM products ",
        "SELECT name FROM products;",
        "SELECT 'it''",
    ]) {
        let c = SqlConstraint::with_index(index.clone(), vocab.clone(), place, Default::default())
            .unwrap();
        let t = Instant::now();
        let mask = c.allowed_mask();
        mask_s += t.elapsed().as_secs_f64();
        eprintln!(
            "{label}: mask after {place:?}: {:.2} ms, {} allowed",
            t.elapsed().as_secs_f64() * 1e3,
            mask.iter().map(|w| w.count_ones()).sum::<u32>()
        );
        let fresh = |c: &SqlConstraint| c.clone();
        for id in 0..vocab.len() as u32 {
            // A fresh clone answers one token at a time (below the mask threshold).
            let one = fresh(&c).allows(id);
            assert_eq!(
                mask[id as usize / 64] & (1 << (id % 64)) != 0,
                one,
                "{label}: mask and allows disagree on {:?} after {place:?}",
                tok.id_to_token(id)
            );
        }
    }
    let mask_ms = mask_s * 1e3 / (places.len() + 3) as f64;
    // A greedy step asks in logit order: with a model that wants a valid token, about one
    // call. Time that call and the accept along gold queries (the ranking of the logits is the
    // decoder's, timed apart).
    let mut steps = 0u64;
    let mut constraint_s = 0f64;
    let mut ranking_s = 0f64;
    for (domain, sql) in queries.iter().take(50) {
        let index = domain_index(domain);
        let mut c =
            SqlConstraint::with_index(index, vocab.clone(), DEFAULT_PRIME, Default::default())
                .unwrap();
        for id in tok.encode(&sql[6..], false).unwrap() {
            let mut logits = vec![0f32; vocab.len()];
            logits[id as usize] = 1.0;
            let t = Instant::now();
            assert_eq!(best_allowed(&logits, Some(&c)), Some(id));
            ranking_s += t.elapsed().as_secs_f64();
            let t = Instant::now();
            assert!(std::hint::black_box(c.allows(id)));
            c.accept(id);
            constraint_s += t.elapsed().as_secs_f64();
            steps += 1;
        }
    }
    let per_step = constraint_s * 1e6 / steps as f64;
    let ranking = ranking_s * 1e6 / steps as f64;
    eprintln!(
        "{label}: {all:.2} µs per allows() over the whole vocabulary ({calls} calls); \
         {per_step:.1} µs per greedy step (allows + accept of the chosen token); \
         best_allowed over {} logits: {ranking:.0} µs per step; \
         whole-vocabulary mask: {mask_ms:.2} ms",
        vocab.len()
    );
}

#[test]
fn smollm2_vocabulary_forces_gold_queries_through() {
    let Some(model) = sqlora_model::testing::real_model() else {
        return;
    };
    check_tokenizer("SmolLM2", &model.tokenizer);
}

#[test]
fn qwen_vocabulary_forces_gold_queries_through() {
    let Some(model) = sqlora_model::testing::named_real_model(sqlora_model::fetch::QWEN_CODER_0_5B)
    else {
        return;
    };
    check_tokenizer("Qwen2.5-Coder-0.5B", &model.tokenizer);
}
