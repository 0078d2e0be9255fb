//! The engine on a tiny random Llama: a request decoded inside a continuous batch (rows joining
//! and leaving mid-way, different adapters, prefixes from the prefix cache) yields exactly the
//! tokens it yields alone, and exactly what the model runtime's own batched generation yields.
//! What a request gets wrong is a 4xx with a specific code; a failed step is a 5xx that keeps
//! its cause, and the engine goes on.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlora_model::constraint::Constraint;
use sqlora_model::generate::{
    generate_constrained, generate_with_adapters, GenerateParams, TokenInfo,
};
use sqlora_model::lora::AdapterSet;
use sqlora_model::testing::{AllowNothing, AllowedSet, ForcedSequence};
use sqlora_serve::engine::{self, Finish, GenOutput, GenRequest, PrefixSpec};
use sqlora_serve::forward::{step, Feed, Rope, RowKv};
use sqlora_serve::{EngineConfig, Metrics, ServeError};
use tokio::sync::{mpsc, oneshot};

use common::Kind;

#[derive(Clone)]
struct Spec {
    prompt: Vec<u32>,
    adapter: Option<&'static str>,
    prefix: Option<(&'static str, usize)>,
    max_new: usize,
}

fn specs() -> Vec<Spec> {
    // Prompts 0-2 share a 40-token prefix (a "database"); 3 shares another one.
    let shared: Vec<u32> = (0..40).map(|i| 2 + (i * 7 % 60) as u32).collect();
    let other: Vec<u32> = (0..25).map(|i| 2 + (i * 11 % 60) as u32).collect();
    let with =
        |base: &[u32], tail: &[u32]| -> Vec<u32> { base.iter().chain(tail).copied().collect() };
    vec![
        Spec {
            prompt: with(&shared, &[5, 9, 17]),
            adapter: Some("a"),
            prefix: Some(("db1", 40)),
            max_new: 40,
        },
        Spec {
            prompt: with(&shared, &[3, 4, 5, 6, 7, 8]),
            adapter: Some("b"),
            prefix: Some(("db1", 40)),
            max_new: 12,
        },
        Spec {
            prompt: with(&shared, &[40, 2]),
            adapter: Some("a"),
            prefix: Some(("db1", 40)),
            max_new: 30,
        },
        Spec {
            prompt: with(&other, &[12, 13, 14, 15]),
            adapter: None,
            prefix: Some(("db2", 25)),
            max_new: 25,
        },
        Spec {
            prompt: vec![8, 8, 9, 10, 11],
            adapter: Some("b"),
            prefix: None,
            max_new: 50,
        },
        Spec {
            prompt: (2..60).collect(),
            adapter: None,
            prefix: None,
            max_new: 8,
        },
    ]
}

fn request(
    s: &Spec,
    stream: Option<mpsc::UnboundedSender<String>>,
) -> (
    GenRequest,
    oneshot::Receiver<sqlora_serve::Result<GenOutput>>,
) {
    let (reply, rx) = oneshot::channel();
    (
        GenRequest {
            prompt: s.prompt.clone(),
            prefix: s.prefix.map(|(n, l)| PrefixSpec {
                name: n.to_string(),
                len: l,
            }),
            adapter: s.adapter.map(str::to_string),
            max_new_tokens: s.max_new,
            candidates: 1,
            stop: Vec::new(),
            sampling: None,
            constraint: None,
            deadline: Instant::now() + Duration::from_secs(60),
            stream,
            reply,
        },
        rx,
    )
}

fn recv(rx: oneshot::Receiver<sqlora_serve::Result<GenOutput>>) -> GenOutput {
    rx.blocking_recv().unwrap().unwrap()
}

#[test]
fn continuous_batch_equals_alone_and_the_runtime() {
    let (dir, m) = common::tiny_model(Kind::Random, 11);
    let adir = tempfile::tempdir().unwrap();
    let targets = [
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    ];
    let pa = common::write_adapter(adir.path(), "a", &m, &targets, 1);
    let pb = common::write_adapter(adir.path(), "b", &m, &["q_proj", "v_proj", "down_proj"], 2);
    let specs = specs();

    // The model runtime's own generation, one row at a time (the reference).
    let reference: Vec<String> = {
        let mut set = AdapterSet::new(&m.device);
        set.insert(sqlora_model::peft::load_adapter(&pa, &m.model).unwrap())
            .unwrap();
        set.insert(sqlora_model::peft::load_adapter(&pb, &m.model).unwrap())
            .unwrap();
        let tok = &m.tokenizer;
        let decode = |ids: &[u32]| tok.decode(ids, true);
        let info = TokenInfo {
            eos_ids: tok.eos_token_ids(),
            pad_id: tok.pad_token_id(),
            decode: &decode,
        };
        specs
            .iter()
            .map(|s| {
                let id = s.adapter.map(|n| set.id(n).unwrap());
                let batch = set.batch(&[id]).unwrap();
                let params = GenerateParams {
                    max_new_tokens: s.max_new,
                    ..GenerateParams::default()
                };
                generate_with_adapters(
                    &m.model,
                    &info,
                    std::slice::from_ref(&s.prompt),
                    &params,
                    Some(&batch),
                )
                .unwrap()
                .remove(0)
                .text
            })
            .collect()
    };
    assert!(
        reference.iter().any(|t| t.split_whitespace().count() >= 8),
        "{reference:?}"
    );

    let model = Arc::new(sqlora_model::load(dir.path(), &candle_core::Device::Cpu).unwrap());
    let metrics = Arc::new(Metrics::new());
    let cfg = EngineConfig {
        max_batch: 4,
        queue: 16,
        max_adapters: 4,
        prefix_cache_bytes: 64 << 20,
    };
    let (handle, _thread) = engine::start(
        model,
        vec![("a".to_string(), pa.clone()), ("b".to_string(), pb.clone())],
        cfg,
        metrics.clone(),
    )
    .unwrap();

    // Alone: one request at a time.
    let alone: Vec<GenOutput> = specs
        .iter()
        .map(|s| {
            let (req, rx) = request(s, None);
            handle.submit(req).unwrap();
            recv(rx)
        })
        .collect();
    for (i, (a, r)) in alone.iter().zip(&reference).enumerate() {
        assert_eq!(
            &a.texts[0], r,
            "request {i} alone differs from the runtime's generation"
        );
    }
    // The second and later prompts of db1 took the prefix from the cache.
    assert_eq!(alone[1].cached_tokens, 0, "adapter b had no db1 prefix yet");
    assert_eq!(
        alone[2].cached_tokens, 40,
        "adapter a's db1 prefix was cached by request 0"
    );

    // Mixed: request 0 starts alone; the others join while it decodes (after its first
    // tokens), in two waves, with more rows than the batch holds, so rows join and leave.
    let (dtx, mut drx) = mpsc::unbounded_channel();
    let (req0, rx0) = request(&specs[0], Some(dtx));
    handle.submit(req0).unwrap();
    drx.blocking_recv()
        .expect("request 0 streams its first token");
    let mut rxs = vec![rx0];
    for s in &specs[1..4] {
        let (req, rx) = request(s, None);
        handle.submit(req).unwrap();
        rxs.push(rx);
    }
    drx.blocking_recv().expect("request 0 is still decoding");
    for s in &specs[4..] {
        let (req, rx) = request(s, None);
        handle.submit(req).unwrap();
        rxs.push(rx);
    }
    let mixed: Vec<GenOutput> = rxs.into_iter().map(recv).collect();
    for (i, (mx, al)) in mixed.iter().zip(&alone).enumerate() {
        assert_eq!(
            mx.texts, al.texts,
            "request {i}: batched differs from alone"
        );
        assert_eq!(mx.completion_tokens, al.completion_tokens);
    }
    // Every db1 request with a known adapter now hit the prefix cache.
    assert_eq!(mixed[1].cached_tokens, 40);
    assert!(metrics.value("sqlora_prefix_cache_total", &[("result", "hit")]) >= 4.0);
    // Batches of more than one row really ran.
    assert!(metrics
        .render()
        .contains("sqlora_batch_size_bucket{le=\"1\"}"));
    let text = metrics.render();
    let le1 = count_of(&text, "sqlora_batch_size_bucket{le=\"1\"}");
    let all = count_of(&text, "sqlora_batch_size_count");
    assert!(all > le1, "no step decoded more than one row: {text}");
    handle.shutdown();
}

#[test]
fn request_mistakes_are_4xx_and_a_failed_step_is_a_5xx_with_its_cause() {
    let (_dir, m) = common::tiny_model(Kind::Random, 7);
    let vocab = m.config.vocab_size as u32;
    let (handle, _thread) = engine::start(
        Arc::new(m),
        Vec::new(),
        EngineConfig::default(),
        Arc::new(Metrics::new()),
    )
    .unwrap();
    let run = |prompt: Vec<u32>, max_new: usize| {
        let spec = Spec {
            prompt,
            adapter: None,
            prefix: None,
            max_new,
        };
        let (req, rx) = request(&spec, None);
        handle.submit(req).unwrap();
        rx.blocking_recv().unwrap()
    };
    let refused = |r: sqlora_serve::Result<GenOutput>| {
        let e = r.expect_err("refused");
        (e.status(), e.code())
    };
    assert_eq!(refused(run(Vec::new(), 4)), (400, "empty_prompt"));
    assert_eq!(
        refused(run(vec![2, vocab, 3], 4)),
        (400, "token_out_of_range")
    );
    assert_eq!(refused(run(vec![2, 3], 5000)), (400, "context_overflow"));

    let want = run(vec![5, 6, 7], 6).unwrap();
    assert_eq!(want.completion_tokens, 6);
    handle.fail_next_steps(1);
    let e = run(vec![5, 6, 7], 6).expect_err("the step fails");
    assert_eq!((e.status(), e.code()), (500, "generation_failed"));
    let cause = std::error::Error::source(&e).expect("the step's error is the source");
    let cause = cause
        .downcast_ref::<Arc<ServeError>>()
        .expect("the step's own error");
    assert!(
        matches!(**cause, ServeError::Candle(_)),
        "{cause:?} is the tensor error"
    );
    assert!(e.to_string().contains("injected fault"), "{e}");
    // Only that step failed: the same request now gets the same answer.
    let again = run(vec![5, 6, 7], 6).unwrap();
    assert_eq!(again.texts, want.texts);
    handle.shutdown();
}

const FORCED: [u32; 5] = [5, 9, 70, 3, 3];

/// The constraint of request `i` of [`specs`] in the constrained test (a fresh one each call):
/// rows with and without constraints, of both adapters and the base model.
fn constraint_of(i: usize) -> Option<Box<dyn Constraint>> {
    match i {
        0 => Some(Box::new(AllowedSet(
            (2..40).step_by(2).chain([1]).collect(),
        ))),
        1 => None,
        2 => Some(Box::new(ForcedSequence::new(&FORCED, 1))),
        3 => Some(Box::new(AllowNothing)),
        4 => Some(Box::new(AllowedSet((60..90).chain([1]).collect()))),
        _ => None,
    }
}

#[test]
fn constrained_rows_mix_with_others_in_the_continuous_batch() {
    let (dir, m) = common::tiny_model(Kind::Random, 13);
    let adir = tempfile::tempdir().unwrap();
    let pa = common::write_adapter(adir.path(), "a", &m, &["q_proj", "v_proj", "up_proj"], 3);
    let pb = common::write_adapter(adir.path(), "b", &m, &["k_proj", "o_proj"], 4);
    let specs = specs();
    let tok = &m.tokenizer;
    let decode = |ids: &[u32]| tok.decode(ids, true);

    // The model runtime's constrained generation, one row at a time (the reference).
    let reference: Vec<sqlora_model::Generation> = {
        let mut set = AdapterSet::new(&m.device);
        set.insert(sqlora_model::peft::load_adapter(&pa, &m.model).unwrap())
            .unwrap();
        set.insert(sqlora_model::peft::load_adapter(&pb, &m.model).unwrap())
            .unwrap();
        let info = TokenInfo {
            eos_ids: tok.eos_token_ids(),
            pad_id: tok.pad_token_id(),
            decode: &decode,
        };
        specs
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let id = s.adapter.map(|n| set.id(n).unwrap());
                let batch = set.batch(&[id]).unwrap();
                let params = GenerateParams {
                    max_new_tokens: s.max_new,
                    ..GenerateParams::default()
                };
                let one = std::slice::from_ref(&s.prompt);
                let c = constraint_of(i);
                let constrained = c.is_some();
                let g = generate_constrained(&m.model, &info, one, &params, Some(&batch), vec![c])
                    .unwrap()
                    .remove(0);
                let free = generate_with_adapters(&m.model, &info, one, &params, Some(&batch))
                    .unwrap()
                    .remove(0);
                // The constraint changes constrained rows, and only those.
                assert_eq!(g.tokens != free.tokens, constrained, "row {i}");
                g
            })
            .collect()
    };
    let allowed_0: Vec<u32> = (2..40).step_by(2).collect();
    assert!(reference[0].tokens.iter().all(|t| allowed_0.contains(t)));
    assert!(reference[4].tokens.iter().all(|t| (60..90).contains(t)));
    assert_eq!(reference[2].tokens, FORCED);
    assert!(reference[3].tokens.is_empty());

    let model = Arc::new(sqlora_model::load(dir.path(), &candle_core::Device::Cpu).unwrap());
    let cfg = EngineConfig {
        max_batch: 4,
        queue: 16,
        max_adapters: 4,
        prefix_cache_bytes: 64 << 20,
    };
    let (handle, _thread) = engine::start(
        model,
        vec![("a".to_string(), pa.clone()), ("b".to_string(), pb.clone())],
        cfg,
        Arc::new(Metrics::new()),
    )
    .unwrap();
    let submit = |i: usize| {
        let (mut req, rx) = request(&specs[i], None);
        req.constraint = constraint_of(i);
        handle.submit(req).unwrap();
        rx
    };

    // Alone: one request at a time, exactly the runtime's constrained generation.
    let alone: Vec<GenOutput> = (0..specs.len()).map(|i| recv(submit(i))).collect();
    for (i, (a, r)) in alone.iter().zip(&reference).enumerate() {
        assert_eq!(a.texts, std::slice::from_ref(&r.text), "request {i} alone");
        assert_eq!(a.completion_tokens, r.tokens.len(), "request {i} alone");
    }
    assert_eq!(alone[2].texts[0], decode(&FORCED).unwrap());
    assert_eq!(alone[2].finish, Finish::Stop);
    assert_eq!(alone[3].finish, Finish::Constrained);
    assert_eq!(
        (alone[3].texts[0].as_str(), alone[3].completion_tokens),
        ("", 0)
    );
    assert_eq!(alone[5].finish, Finish::Length);

    // All at once (more rows than the batch holds, so rows join and leave): the same.
    let rxs: Vec<_> = (0..specs.len()).map(submit).collect();
    let mixed: Vec<GenOutput> = rxs.into_iter().map(recv).collect();
    for (i, (mx, al)) in mixed.iter().zip(&alone).enumerate() {
        assert_eq!(
            mx.texts, al.texts,
            "request {i}: batched differs from alone"
        );
        assert_eq!(mx.finish, al.finish, "request {i}");
        assert_eq!(mx.completion_tokens, al.completion_tokens, "request {i}");
    }

    // Beam search under a constraint: each beam its own copy.
    let beam = |i: usize, c: Box<dyn Constraint>| {
        let (mut req, rx) = request(&specs[i], None);
        req.candidates = 3;
        req.constraint = Some(c);
        handle.submit(req).unwrap();
        recv(rx)
    };
    let forced = beam(1, Box::new(ForcedSequence::new(&FORCED, 1)));
    assert_eq!(forced.texts, [decode(&FORCED).unwrap()]);
    let nothing = beam(4, Box::new(AllowNothing));
    assert_eq!(nothing.texts, [String::new()]);
    handle.shutdown();
}

fn count_of(text: &str, key: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
fn row_forward_equals_the_model_forward() {
    let (_dir, m) = common::tiny_model(Kind::Random, 5);
    let rope = Rope::new(&m.config, &m.device).unwrap();
    let prompt: Vec<u32> = (0..30).map(|i| 2 + (i * 5 % 60) as u32).collect();
    // Whole prompt at once vs prefix then suffix then one token: same last logits as the
    // model's own forward pass.
    let want = m.model.last_logits(&prompt).unwrap();
    let mut kv = RowKv::new(&m.config, 8, &m.device).unwrap();
    let got = step(
        &m.model,
        &rope,
        &mut [Feed {
            kv: &mut kv,
            tokens: &prompt,
        }],
        None,
    )
    .unwrap();
    let diff = got[0]
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(diff < 1e-4, "max |diff| {diff}");
    assert_eq!(kv.len(), 30);

    let mut kv2 = RowKv::new(&m.config, 4, &m.device).unwrap();
    step(
        &m.model,
        &rope,
        &mut [Feed {
            kv: &mut kv2,
            tokens: &prompt[..20],
        }],
        None,
    )
    .unwrap();
    let mut forked = kv2.compact().unwrap().fork(64).unwrap();
    let mut other = RowKv::new(&m.config, 4, &m.device).unwrap();
    // Two rows of different lengths in one step.
    let got2 = step(
        &m.model,
        &rope,
        &mut [
            Feed {
                kv: &mut forked,
                tokens: &prompt[20..],
            },
            Feed {
                kv: &mut other,
                tokens: &prompt[..3],
            },
        ],
        None,
    )
    .unwrap();
    let diff = got2[0]
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(diff < 1e-4, "prefix + suffix: max |diff| {diff}");
    let want3 = m.model.last_logits(&prompt[..3]).unwrap();
    let diff = got2[1]
        .iter()
        .zip(&want3)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(diff < 1e-4, "short row: max |diff| {diff}");
    assert_eq!(forked.len(), 30);
    // A decode step (one token per row, rows of different lengths: the all-rows attention
    // pass) equals the model's forward over each full sequence.
    let got3 = step(
        &m.model,
        &rope,
        &mut [
            Feed {
                kv: &mut forked,
                tokens: &[7],
            },
            Feed {
                kv: &mut other,
                tokens: &[9],
            },
        ],
        None,
    )
    .unwrap();
    let mut long = prompt.clone();
    long.push(7);
    let short = [prompt[0], prompt[1], prompt[2], 9];
    for (got, want) in [
        (&got3[0], m.model.last_logits(&long).unwrap()),
        (&got3[1], m.model.last_logits(&short).unwrap()),
    ] {
        let diff = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(diff < 1e-4, "decode step: max |diff| {diff}");
    }
    assert_eq!(
        kv2.bytes(),
        20 * common::LAYERS * 2 * common::KV_HEADS * common::HEAD_DIM * 4
    );
}
