//! Sending the load: one `POST /v1/query` ([`send_query`]), client threads running their
//! queues back to back ([`run_queues`]), and the measurements built on them ([`timed_mode`],
//! [`prefix_mode`]).
//!
//! A request's latency runs from before the connection is opened to the last byte of the
//! answer. A 429 is counted as shed (never retried), any other status or failure as an error.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::client::Client;
use crate::error::chain;
use crate::metrics::{prefix_misses, Counters};
use crate::plan::{prefix_plan, QueryReq, Questions, Queue, Target};
use crate::stats::{summarise, ModeStats, PrefixStats};

/// What goes into every query besides the question.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryOptions {
    /// `execute` in the request (false: the SQL only).
    pub execute: bool,
    /// `candidates` in the request; `None` leaves the server's default.
    pub candidates: Option<u32>,
    /// Bounds the connect and every socket read or write of one request.
    pub timeout: Duration,
}

/// A 200 answer's fields that the results use.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The answer's `valid`.
    pub valid: bool,
    /// The server's `timings.queue_ms` (0 when absent).
    pub queue_ms: f64,
    /// The server's `timings.generate_ms` (0 when absent).
    pub generate_ms: f64,
    /// The server's `timings.execute_ms` (0 when absent).
    pub execute_ms: f64,
    /// `usage.completion_tokens`.
    pub completion_tokens: Option<f64>,
    /// `usage.cached_prompt_tokens`.
    pub cached_tokens: Option<f64>,
}

impl Answer {
    /// Reads an answer body of `POST /v1/query`.
    pub fn from_json(v: &Value) -> Answer {
        let t = v.get("timings").cloned().unwrap_or(Value::Null);
        let ms = |k: &str| t.get(k).and_then(Value::as_f64).unwrap_or(0.0);
        let usage = |k: &str| {
            v.get("usage")
                .and_then(|u| u.get(k))
                .and_then(Value::as_f64)
        };
        Answer {
            valid: v.get("valid").and_then(Value::as_bool).unwrap_or(false),
            queue_ms: ms("queue_ms"),
            generate_ms: ms("generate_ms"),
            execute_ms: ms("execute_ms"),
            completion_tokens: usage("completion_tokens"),
            cached_tokens: usage("cached_prompt_tokens"),
        }
    }
}

/// What happened to one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// 200, with the answer.
    Ok(Answer),
    /// 429: the server shed it; whether it said when to retry (`Retry-After`).
    Shed {
        /// A `Retry-After` header was present.
        retry_after: bool,
    },
    /// Anything else, as a message.
    Error(String),
}

/// One request's latency and outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// From before connecting to the end of the answer (ms).
    pub latency_ms: f64,
    /// What came back.
    pub outcome: Outcome,
}

/// The JSON body of a query.
pub fn query_body(r: &QueryReq, opts: &QueryOptions) -> Vec<u8> {
    let mut body = json!({
        "database": r.database,
        "question": r.question,
        "execute": opts.execute,
    });
    if let Some(a) = &r.adapter {
        body["adapter"] = json!(a);
    }
    if let Some(c) = opts.candidates {
        body["candidates"] = json!(c);
    }
    body.to_string().into_bytes()
}

/// Sends one query and times it.
pub fn send_query(client: &Client, r: &QueryReq, opts: &QueryOptions) -> Sample {
    let body = query_body(r, opts);
    let t = Instant::now();
    let result = client.post_json("/v1/query", &body, opts.timeout);
    let latency_ms = t.elapsed().as_secs_f64() * 1e3;
    let outcome = match result {
        Err(e) => Outcome::Error(chain(&e)),
        Ok(resp) if resp.status == 429 => Outcome::Shed {
            retry_after: resp.header("retry-after").is_some(),
        },
        Ok(resp) if resp.status != 200 => Outcome::Error(resp.error_message()),
        Ok(resp) => match resp.json() {
            Err(e) => Outcome::Error(chain(&e)),
            Ok(v) => Outcome::Ok(Answer::from_json(&v)),
        },
    };
    Sample {
        latency_ms,
        outcome,
    }
}

/// Runs every queue on its own thread at once, each back to back; returns the samples and
/// the wall time (s) from the first send to the last answer.
pub fn run_queues(client: &Client, queues: &[Queue], opts: &QueryOptions) -> (Vec<Sample>, f64) {
    let start = Instant::now();
    let samples = std::thread::scope(|s| {
        let handles: Vec<_> = queues
            .iter()
            .map(|q| {
                s.spawn(move || {
                    q.iter()
                        .map(|r| send_query(client, r, opts))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join().unwrap_or_else(|_| {
                    vec![Sample {
                        latency_ms: 0.0,
                        outcome: Outcome::Error("client thread panicked".into()),
                    }]
                })
            })
            .collect::<Vec<_>>()
    });
    (samples, start.elapsed().as_secs_f64())
}

/// One untimed request per distinct (database, adapter) pair of the queues, one at a time.
pub fn warm_up(client: &Client, queues: &[Queue], opts: &QueryOptions) {
    let mut seen = BTreeSet::new();
    for r in queues.iter().flatten() {
        if seen.insert((r.database.clone(), r.adapter.clone())) {
            send_query(client, r, opts);
        }
    }
}

/// One timed mode: the warm-up (unless `warmup` is false), then the queues at once, with
/// `/metrics` read before and after for generated tokens and the mean batch.
pub fn timed_mode(
    client: &Client,
    mode: &'static str,
    queues: &[Queue],
    opts: &QueryOptions,
    warmup: bool,
    tokens_metric: &str,
) -> ModeStats {
    if warmup {
        warm_up(client, queues, opts);
    }
    let before = Counters::read(client, tokens_metric);
    let (samples, wall) = run_queues(client, queues, opts);
    let after = Counters::read(client, tokens_metric);
    let (tokens, mean_batch) = Counters::delta(before, after);
    let mut stats = summarise(mode, queues.len(), &samples, wall, tokens);
    stats.mean_batch = mean_batch;
    stats
}

/// The prefix mode: per target, one request and then `repeats` more, one at a time, with
/// the prefix-cache misses read from `/metrics` before, after the first and after the last.
pub fn prefix_mode(
    client: &Client,
    targets: &[Target],
    questions: &Questions,
    repeats: usize,
    opts: &QueryOptions,
) -> Vec<PrefixStats> {
    // A server without /metrics, or without the prefix-cache metric, gives `None`.
    let misses = || client.metrics_text().and_then(|m| prefix_misses(&m));
    targets
        .iter()
        .map(|t| {
            let plan = prefix_plan(t, questions, repeats);
            let mut marks = [misses(), None, None];
            let mut samples = Vec::with_capacity(plan.len());
            for (i, r) in plan.iter().enumerate() {
                samples.push(send_query(client, r, opts));
                if i == 0 {
                    marks[1] = misses();
                }
                if i > 0 && i == repeats {
                    marks[2] = misses();
                }
            }
            PrefixStats::from_samples(&t.database, t.adapter.as_deref(), &samples, marks)
        })
        .collect()
}
