//! The load generator against real HTTP servers on a loopback port: an axum server that
//! stands in for `sqlora serve` (same routes and JSON shapes), answering some queries with
//! 429 and 500, streaming some bodies in chunks, and a port where nothing listens.

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use sqlora_loadgen::load::{prefix_mode, send_query, timed_mode, Outcome};
use sqlora_loadgen::metrics::Counters;
use sqlora_loadgen::plan::{QueryReq, Target};
use sqlora_loadgen::{Client, Config, LoadgenError, Mode, QueryOptions};

struct Fake {
    /// Queries answered so far (the n-th decides the answer).
    hits: AtomicUsize,
    /// Every 3rd query gets 429 (with Retry-After) and the 5th a 500.
    flaky: bool,
    /// The answer's body comes in two chunks this far apart.
    chunk_gap: Duration,
    /// The handler waits this long before answering.
    delay: Duration,
}

/// A body in two chunks `gap` apart (chunked transfer encoding).
fn chunked(text: String, gap: Duration) -> Body {
    let mid = text.len() / 2;
    let (a, b) = (text[..mid].to_string(), text[mid..].to_string());
    let parts = futures_util::stream::unfold(0, move |i| {
        let (a, b) = (a.clone(), b.clone());
        async move {
            match i {
                0 => Some((Ok::<_, std::io::Error>(a), 1)),
                1 => {
                    tokio::time::sleep(gap).await;
                    Some((Ok(b), 2))
                }
                _ => None,
            }
        }
    });
    Body::from_stream(parts)
}

async fn query(State(f): State<Arc<Fake>>, Json(req): Json<Value>) -> Response {
    tokio::time::sleep(f.delay).await;
    let n = f.hits.fetch_add(1, Ordering::SeqCst) + 1;
    assert_eq!(req["database"], "retail", "{req}");
    if f.flaky && n.is_multiple_of(3) {
        let body = json!({"error": {"code": "overloaded", "message": "queue full"}});
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "1")],
            Json(body),
        )
            .into_response();
    }
    if f.flaky && n == 5 {
        let body = json!({"error": {"code": "internal", "message": "boom"}});
        return (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response();
    }
    let answer = json!({
        "sql": "SELECT 1", "valid": n != 1, "columns": ["1"], "rows": [[1]],
        "timings": {"queue_ms": 1, "generate_ms": 20.5, "execute_ms": 0.5},
        "usage": {"prompt_tokens": 40, "cached_prompt_tokens": 30, "completion_tokens": n},
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(chunked(answer.to_string(), f.chunk_gap))
        .unwrap()
}

async fn metrics(State(f): State<Arc<Fake>>) -> Response {
    let n = f.hits.load(Ordering::SeqCst);
    let text = format!(
        "# TYPE sqlora_generated_tokens_total counter\nsqlora_generated_tokens_total {}\n\
         # TYPE sqlora_batch_size histogram\nsqlora_batch_size_sum {}\nsqlora_batch_size_count {n}\n",
        n * 7,
        n * 2
    );
    Response::new(chunked(text, Duration::ZERO))
}

/// Serves `fake` on a loopback port from its own thread; returns the base URL.
fn serve(fake: Fake) -> (String, Arc<Fake>) {
    let fake = Arc::new(fake);
    let app = Router::new()
        .route("/v1/query", post(query))
        .route("/metrics", get(metrics))
        .route(
            "/v1/databases",
            get(|| async {
                Json(json!({"data": [
                    {"name": "retail", "adapter": "retail", "tables": [{"name": "customers"}]},
                ]}))
            }),
        )
        .route(
            "/v1/adapters",
            get(|| async { Json(json!({"data": [{"name": "retail"}, {"name": "general"}]})) }),
        )
        .with_state(fake.clone());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    (url, fake)
}

fn flaky() -> Fake {
    Fake {
        hits: AtomicUsize::new(0),
        flaky: true,
        chunk_gap: Duration::ZERO,
        delay: Duration::ZERO,
    }
}

fn opts(timeout: Duration) -> QueryOptions {
    QueryOptions {
        execute: true,
        candidates: Some(2),
        timeout,
    }
}

fn retail(adapter: Option<&str>) -> QueryReq {
    QueryReq {
        database: "retail".into(),
        question: "How many customers are there?".into(),
        adapter: adapter.map(str::to_string),
    }
}

#[test]
fn counts_ok_shed_and_errors_against_a_loopback_server() {
    let (url, fake) = serve(flaky());
    let client = Client::connect(&url).unwrap();
    let req = retail(Some("retail"));
    let queues = vec![vec![req.clone(); 3], vec![req; 3]];
    let o = opts(Duration::from_secs(10));
    let stats = timed_mode(
        &client,
        "mixed",
        &queues,
        &o,
        false,
        "sqlora_generated_tokens_total",
    );
    assert_eq!(fake.hits.load(Ordering::SeqCst), 6);
    assert_eq!(stats.requests, 6);
    assert_eq!(stats.shed, 2); // the 3rd and 6th
    assert_eq!(stats.errors, 1); // the 5th
    assert_eq!(stats.ok, 3);
    assert_eq!(stats.invalid, 1); // the 1st said valid: false
    let first_error = stats.first_error.as_deref().unwrap();
    assert_eq!(first_error, "HTTP 500: internal: boom");
    assert_eq!(stats.tokens, Some(1.0 + 2.0 + 4.0)); // usage of the three answers
    assert_eq!(stats.tokens_source, "answers");
    assert_eq!(stats.mean_batch, Some(2.0)); // 12 rows over 6 steps
    assert!((stats.mean_generate_ms - 20.5).abs() < 1e-9);
    assert!(stats.p50_ms > 0.0 && stats.p99_ms >= stats.p50_ms);
    assert!(stats.req_per_s > 0.0);
}

#[test]
fn latency_covers_the_whole_chunked_answer_and_timeouts_are_errors() {
    let (url, _) = serve(Fake {
        hits: AtomicUsize::new(0),
        flaky: false,
        chunk_gap: Duration::from_millis(150),
        delay: Duration::ZERO,
    });
    let client = Client::connect(&url).unwrap();
    let s = send_query(&client, &retail(None), &opts(Duration::from_secs(10)));
    let Outcome::Ok(answer) = &s.outcome else {
        panic!("{s:?}")
    };
    assert_eq!(answer.completion_tokens, Some(1.0));
    assert_eq!(answer.cached_tokens, Some(30.0));
    assert!(s.latency_ms >= 150.0, "{}", s.latency_ms);
    // The chunked /metrics body decodes.
    let c = Counters::read(&client, "sqlora_generated_tokens_total");
    assert_eq!((c.tokens, c.batch_steps), (Some(7.0), Some(1.0)));

    let (url, _) = serve(Fake {
        hits: AtomicUsize::new(0),
        flaky: false,
        chunk_gap: Duration::ZERO,
        delay: Duration::from_secs(5),
    });
    let client = Client::connect(&url).unwrap();
    let s = send_query(&client, &retail(None), &opts(Duration::from_millis(300)));
    let Outcome::Error(e) = &s.outcome else {
        panic!("{s:?}")
    };
    assert!(e.starts_with("POST /v1/query: "), "{e}");
    assert!(s.latency_ms < 4000.0, "{}", s.latency_ms);
}

#[test]
fn prefix_mode_compares_the_first_request_with_later_ones() {
    let (url, fake) = serve(flaky());
    let client = Client::connect(&url).unwrap();
    let t = Target {
        database: "retail".into(),
        adapter: None,
    };
    let mut qs = std::collections::BTreeMap::new();
    qs.insert(
        "retail".to_string(),
        vec!["q1".to_string(), "q2".to_string()],
    );
    let p = prefix_mode(&client, &[t], &qs, 2, &opts(Duration::from_secs(10)));
    assert_eq!(fake.hits.load(Ordering::SeqCst), 3);
    assert_eq!(p.len(), 1);
    assert!(p[0].cold_ms.is_some() && p[0].warm_ms.is_some());
    assert_eq!(p[0].cold_generate_ms, Some(20.5));
    assert_eq!(p[0].warm_cached_tokens, Some(30.0));
    assert_eq!(p[0].errors, 1); // the third request was shed
    assert_eq!(p[0].first_misses, None); // no prefix-cache metric on this server
}

fn config(url: &str) -> Config {
    Config {
        url: url.to_string(),
        clients: 2,
        requests: 4,
        adapters: vec![],
        max_adapters: None,
        questions: None,
        datasets_dir: "/nonexistent".into(),
        modes: vec![Mode::Serial, Mode::Mixed, Mode::Prefix, Mode::Single],
        candidates: None,
        execute: false,
        prefix_repeats: 1,
        warmup: true,
        timeout: Duration::from_secs(10),
        tokens_metric: "sqlora_generated_tokens_total".into(),
    }
}

#[test]
fn a_whole_run_reports_every_mode_in_order() {
    let (url, fake) = serve(Fake {
        hits: AtomicUsize::new(0),
        flaky: false,
        chunk_gap: Duration::ZERO,
        delay: Duration::ZERO,
    });
    let mut started = Vec::new();
    let report = sqlora_loadgen::run(&config(&url), |m| started.push(m)).unwrap();
    assert_eq!(
        started,
        [Mode::Prefix, Mode::Mixed, Mode::Single, Mode::Serial]
    );
    // prefix: 2 targets × 2; each timed mode: 4 plus its warm-up (2 pairs, 1 on single).
    assert_eq!(
        fake.hits.load(Ordering::SeqCst),
        4 + (2 + 4) + (1 + 4) + (2 + 4)
    );
    assert_eq!(report.adapters, ["retail", "general"]);
    // Both adapters fall back on the only database.
    assert!(report.targets.iter().all(|t| t.database == "retail"));
    let modes: Vec<&str> = report.modes.iter().map(|s| s.mode).collect();
    assert_eq!(modes, ["mixed", "single", "serial"]);
    assert!(report.modes.iter().all(|s| s.ok == 4 && s.errors == 0));
    assert_eq!(report.modes[2].clients, 1);
    assert_eq!(report.prefix.len(), 2);
    let j = report.to_json();
    assert_eq!(j["modes"][0]["shed_429"], 0);
    assert!(j["mixed_over_serial"].as_f64().unwrap() > 0.0);
    assert_eq!(j["prefix"][1]["adapter"], "general");
    let tables = report.tables();
    assert!(tables.starts_with("mode    clients requests"), "{tables}");
    assert!(tables.contains("adapters (M): 2\n"), "{tables}");
    assert!(
        tables.contains("mixed (2 clients) / serial throughput: "),
        "{tables}"
    );
    assert!(tables.contains("\nretail       general "), "{tables}");
}

#[test]
fn a_server_that_is_not_there_is_an_error_not_a_panic() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let err = sqlora_loadgen::run(&config(&url), |_| {}).unwrap_err();
    assert!(matches!(err, LoadgenError::Unreachable { .. }), "{err:?}");
    let text = sqlora_loadgen::chain(&err);
    assert!(text.contains("is `sqlora serve` running"), "{text}");
    assert!(text.contains("GET /v1/databases"), "{text}");
    let mut bad = config(&url);
    bad.requests = 0;
    assert!(matches!(
        sqlora_loadgen::run(&bad, |_| {}),
        Err(LoadgenError::NoLoad)
    ));
}
