//! A real server on a loopback port with tiny models: answers with a table, every bad input
//! gets its 4xx, OpenAI-style endpoints and SSE, adapters loaded and evicted under traffic,
//! 429 when the queue is full, deadlines, disconnected clients, a failed engine step (a 5xx,
//! and the service goes on), and parseable metrics.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;
use sqlora_serve::{
    AdapterSpec, App, DatabaseSpec, EngineConfig, EngineHandle, Limits, ServeConfig,
};

use common::{get, post, request, Kind};

struct Server {
    /// Dropped first: the server stops before its folders go.
    _run: common::Running,
    addr: SocketAddr,
    engine: EngineHandle,
    _dirs: Vec<tempfile::TempDir>,
    adapters_dir: PathBuf,
}

/// Starts a server with a tiny model, the `shop` database and adapters made by `adapters`
/// (given the model and a folder to write them in).
fn start(
    kind: Kind,
    cfg: ServeConfig,
    adapters: impl FnOnce(&sqlora_model::LoadedModel, &std::path::Path) -> Vec<AdapterSpec>,
) -> Server {
    let (mdir, m) = common::tiny_model(kind, 3);
    let ddir = tempfile::tempdir().unwrap();
    let db = ddir.path().join("shop.sqlite");
    common::write_db(&db);
    let adir = tempfile::tempdir().unwrap();
    let specs = adapters(&m, adir.path());
    let app = App::new(
        m,
        vec![DatabaseSpec {
            name: "shop".to_string(),
            path: db,
        }],
        specs,
        ServeConfig {
            model_id: Some("tiny".to_string()),
            ..cfg
        },
    )
    .unwrap();
    let engine = app.engine().clone();
    let run = common::Running::spawn(app);
    let addr = run.addr;
    let adapters_dir = adir.path().to_path_buf();
    Server {
        _run: run,
        addr,
        engine,
        _dirs: vec![mdir, ddir, adir],
        adapters_dir,
    }
}

fn cfg(max_batch: usize, queue: usize, max_adapters: usize) -> ServeConfig {
    ServeConfig {
        engine: EngineConfig {
            max_batch,
            queue,
            max_adapters,
            prefix_cache_bytes: 16 << 20,
        },
        limits: Limits::default(),
        model_id: None,
        ..ServeConfig::default()
    }
}

fn no_adapters(_: &sqlora_model::LoadedModel, _: &std::path::Path) -> Vec<AdapterSpec> {
    Vec::new()
}

/// Parses the Prometheus text format strictly enough to catch malformed lines; returns the
/// samples as (name with labels, value).
fn parse_metrics(text: &str) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            assert!(
                rest.starts_with("HELP ") || rest.starts_with("TYPE "),
                "bad comment: {line}"
            );
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample line");
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "bad labels in {line}");
        }
        let v: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        out.push((series.to_string(), v));
    }
    out
}

fn metric(addr: SocketAddr, series: &str) -> f64 {
    let r = get(addr, "/metrics");
    assert_eq!(r.status, 200);
    parse_metrics(&r.body)
        .into_iter()
        .find(|(s, _)| s == series)
        .map(|(_, v)| v)
        .unwrap_or(0.0)
}

fn query(addr: SocketAddr, body: serde_json::Value) -> common::Resp {
    post(addr, "/v1/query", &body)
}

#[test]
fn a_question_gets_checked_sql_and_a_table() {
    let s = start(Kind::Scripted, cfg(4, 16, 4), no_adapters);
    let r = query(
        s.addr,
        json!({"database": "shop", "question": "How many customers are there?"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["sql"], "SELECT COUNT ( * ) FROM customers");
    assert_eq!(v["valid"], true);
    assert_eq!(v["rows"], json!([[3]]));
    assert_eq!(v["adapter"], json!(null));
    assert_eq!(v["truncated"], false);
    assert_eq!(v["attempts"], json!([]));
    // No training examples here: the zero-shot prompt.
    assert_eq!(v["examples"], json!([]));
    // Answers are constrained to the schema unless the request says otherwise; the scripted
    // answer is valid SQL over `shop`, so both ways give it.
    assert_eq!(v["constrained"], true);
    let free = query(
        s.addr,
        json!({"database": "shop", "question": "How many customers are there?", "constrain": false}),
    );
    assert_eq!(free.status, 200, "{}", free.body);
    assert_eq!(free.json()["constrained"], false);
    assert_eq!(free.json()["sql"], v["sql"]);
    let bad = query(
        s.addr,
        json!({"database": "shop", "question": "How many?", "constrain": "yes"}),
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
    for k in ["queue_ms", "generate_ms", "execute_ms"] {
        assert!(v["timings"][k].as_f64().unwrap() >= 0.0, "{k}");
    }
    // The second question about the same database reuses the cached prefix.
    assert_eq!(v["usage"]["cached_prompt_tokens"], 0);
    let r2 = query(
        s.addr,
        json!({"database": "shop", "question": "What is the total of orders?"}),
    );
    let v2 = r2.json();
    let cached = v2["usage"]["cached_prompt_tokens"].as_u64().unwrap();
    let prompt = v2["usage"]["prompt_tokens"].as_u64().unwrap();
    assert!(cached > 50 && cached < prompt, "{cached} of {prompt}");
    assert_eq!(v2["rows"], json!([[3]]));
    // Without execution the query is only checked.
    let r3 = query(
        s.addr,
        json!({"database": "shop", "question": "How many?", "execute": false}),
    );
    let v3 = r3.json();
    assert_eq!(v3["valid"], true);
    assert_eq!(v3["rows"], json!([]));
    // Several candidates (beam search) still answer.
    let r4 = query(
        s.addr,
        json!({"database": "shop", "question": "How many customers?", "candidates": 3}),
    );
    assert_eq!(r4.status, 200, "{}", r4.body);
    let v4 = r4.json();
    assert_eq!(v4["valid"], true);
    assert_eq!(v4["rows"], json!([[3]]));
    // Every candidate is reported with its votes; the chosen one is the answer and no
    // candidate has more votes.
    let ballots = v4["candidates"].as_array().unwrap();
    assert!(!ballots.is_empty() && ballots.len() <= 3, "{v4}");
    let chosen: Vec<&serde_json::Value> = ballots.iter().filter(|b| b["chosen"] == true).collect();
    assert_eq!(chosen.len(), 1, "{v4}");
    assert_eq!(chosen[0]["sql"], v4["sql"]);
    let most = ballots
        .iter()
        .filter_map(|b| b["votes"].as_u64())
        .max()
        .unwrap();
    assert_eq!(chosen[0]["votes"].as_u64(), Some(most));
    // First-valid selection instead of the vote.
    let r5 = query(
        s.addr,
        json!({"database": "shop", "question": "How many customers?", "candidates": 3,
               "vote": false}),
    );
    assert_eq!(r5.status, 200, "{}", r5.body);
    let v5 = r5.json();
    let first = v5["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .position(|b| b["valid"] == true);
    assert_eq!(
        v5["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .position(|b| b["chosen"] == true),
        first
    );
    // The page, the database list and health.
    let page = get(s.addr, "/");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("/v1/query"));
    let dbs = get(s.addr, "/v1/databases").json();
    assert_eq!(dbs["data"][0]["name"], "shop");
    assert!(dbs["data"][0]["schema"]
        .as_str()
        .unwrap()
        .contains("customers"));
    assert_eq!(get(s.addr, "/healthz").json()["status"], "ok");
    assert!(metric(s.addr, "sqlora_prefix_cache_total{result=\"hit\"}") >= 1.0);
}

#[test]
fn retrieved_examples_go_after_the_cached_schema_and_come_back_listed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("train.jsonl");
    let lines = [
        json!({"id": "t1", "question": "How many customers are there?",
               "sql": "SELECT COUNT(*) FROM customers"}),
        json!({"id": "t2", "question": "How many customers live in Paris?",
               "sql": "SELECT COUNT(*) FROM customers WHERE city = 'Paris'"}),
        json!({"id": "t3", "question": "What is the total of all orders?",
               "sql": "SELECT SUM(total) FROM orders"}),
    ];
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&file, text).unwrap();
    let mut c = cfg(4, 16, 4);
    let index = sqlora_sqlgen::ExampleIndex::from_jsonl(&file).unwrap();
    c.examples
        .insert("shop".to_string(), std::sync::Arc::new(index));
    c.examples_k = 1;
    let s = start(Kind::Scripted, c, no_adapters);
    let dbs = get(s.addr, "/v1/databases").json();
    assert_eq!(dbs["data"][0]["examples"], 3);

    // The server's default k: the most similar training question.
    let q = "How many customers live in Oslo?";
    let r = query(s.addr, json!({"database": "shop", "question": q}));
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(
        v["examples"],
        json!([{"id": "t2", "question": "How many customers live in Paris?"}])
    );
    assert_eq!(v["rows"], json!([[3]]));
    // The request's k; the asked question itself is never among them.
    let r = query(
        s.addr,
        json!({"database": "shop", "question": "How many customers are there?", "examples": 3}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v3 = r.json();
    let ids: Vec<&str> = v3["examples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["t2", "t3"]);
    // Examples come after the schema: the cached prefix still serves them, and 0 means the
    // zero-shot prompt (shorter, same cached prefix).
    let cached = v3["usage"]["cached_prompt_tokens"].as_u64().unwrap();
    assert!(cached > 50, "{v3}");
    let r = query(
        s.addr,
        json!({"database": "shop", "question": "How many customers are there?", "examples": 0}),
    );
    let v0 = r.json();
    assert_eq!(v0["examples"], json!([]));
    assert_eq!(
        v0["usage"]["cached_prompt_tokens"].as_u64().unwrap(),
        cached
    );
    assert!(
        v0["usage"]["prompt_tokens"].as_u64().unwrap()
            < v3["usage"]["prompt_tokens"].as_u64().unwrap()
    );
}

#[test]
fn every_bad_input_gets_a_clear_4xx() {
    let s = start(Kind::Scripted, cfg(2, 8, 2), no_adapters);
    let long = "word ".repeat(400);
    let cases: Vec<(&str, &str, String, u16, &str)> = vec![
        ("POST", "/v1/query", "{not json".into(), 400, "bad_json"),
        ("POST", "/v1/query", "".into(), 400, "bad_json"),
        (
            "POST",
            "/v1/query",
            json!({"question": "x"}).to_string(),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/v1/query",
            json!({"database": 3, "question": "x"}).to_string(),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/v1/query",
            json!({"database": "nope", "question": "x"}).to_string(),
            404,
            "unknown_database",
        ),
        (
            "POST",
            "/v1/query",
            json!({"database": "shop", "question": "x", "adapter": "nope"}).to_string(),
            404,
            "unknown_adapter",
        ),
        (
            "POST",
            "/v1/query",
            json!({"database": "shop", "question": "   "}).to_string(),
            400,
            "empty_question",
        ),
        (
            "POST",
            "/v1/query",
            json!({"database": "shop", "question": long}).to_string(),
            400,
            "question_too_long",
        ),
        (
            "POST",
            "/v1/query",
            json!({"database": "shop", "question": "x", "max_rows": 0}).to_string(),
            400,
            "bad_max_rows",
        ),
        (
            "POST",
            "/v1/query",
            json!({"database": "shop", "question": "x", "max_rows": 1_000_000_000_000i64})
                .to_string(),
            400,
            "bad_max_rows",
        ),
        (
            "POST",
            "/v1/query",
            json!({"database": "shop", "question": "x", "max_rows": -5}).to_string(),
            400,
            "bad_max_rows",
        ),
        (
            "POST",
            "/v1/query",
            json!({"database": "shop", "question": "x", "candidates": 1000}).to_string(),
            400,
            "bad_candidates",
        ),
        (
            "POST",
            "/v1/query",
            json!({"database": "shop", "question": "x", "fallback": -1}).to_string(),
            400,
            "bad_fallback",
        ),
        (
            "POST",
            "/v1/query",
            json!({"database": "shop", "question": "x", "fallback": 1000}).to_string(),
            400,
            "bad_fallback",
        ),
        (
            "POST",
            "/v1/query",
            json!({"database": "shop", "question": "x", "examples": -1}).to_string(),
            400,
            "bad_examples",
        ),
        (
            "POST",
            "/v1/query",
            json!({"database": "shop", "question": "x", "examples": 1000}).to_string(),
            400,
            "bad_examples",
        ),
        (
            "POST",
            "/v1/query",
            json!({"database": "shop", "question": "x", "examples": "3"}).to_string(),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/v1/query",
            // this server has no training examples for `shop`
            json!({"database": "shop", "question": "x", "examples": 2}).to_string(),
            400,
            "no_examples",
        ),
        (
            "POST",
            "/v1/query",
            json!({"database": "shop", "question": "x", "surprise": 1}).to_string(),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/v1/query",
            format!(
                "{{\"database\": \"shop\", \"question\": \"{}\"}}",
                "a".repeat(300_000)
            ),
            413,
            "body_too_large",
        ),
        (
            "POST",
            "/v1/completions",
            json!({"model": "nope", "prompt": "a"}).to_string(),
            404,
            "model_not_found",
        ),
        (
            "POST",
            "/v1/completions",
            json!({"model": "tiny", "prompt": ""}).to_string(),
            400,
            "empty_prompt",
        ),
        (
            "POST",
            "/v1/completions",
            json!({"model": "tiny", "prompt": "a", "max_tokens": 0}).to_string(),
            400,
            "bad_max_tokens",
        ),
        (
            "POST",
            "/v1/completions",
            json!({"model": "tiny", "prompt": "a", "max_tokens": 100000}).to_string(),
            400,
            "bad_max_tokens",
        ),
        (
            "POST",
            "/v1/chat/completions",
            json!({"model": "tiny", "messages": []}).to_string(),
            400,
            "empty_messages",
        ),
        (
            "POST",
            "/v1/chat/completions",
            json!({"model": "tiny", "messages": [{"role": "robot", "content": "x"}]}).to_string(),
            400,
            "bad_role",
        ),
        (
            "POST",
            "/v1/adapters",
            json!({"name": "x"}).to_string(),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/v1/adapters",
            json!({"name": "../x", "path": "/tmp"}).to_string(),
            400,
            "bad_name",
        ),
        (
            "POST",
            "/v1/adapters",
            json!({"name": "x", "path": "/definitely/not/here"}).to_string(),
            400,
            "bad_path",
        ),
        (
            "DELETE",
            "/v1/adapters/nope",
            String::new(),
            404,
            "unknown_adapter",
        ),
        ("GET", "/v1/nothing", String::new(), 404, "not_found"),
    ];
    for (method, path, body, status, code) in cases {
        let r = request(s.addr, method, path, Some(&body));
        assert_eq!(
            r.status,
            status,
            "{method} {path} {}: {}",
            &body[..body.len().min(80)],
            r.body
        );
        let v = r.json();
        assert_eq!(v["error"]["code"], code, "{method} {path}: {}", r.body);
        assert!(!v["error"]["message"].as_str().unwrap().is_empty());
    }
    // Still serving.
    let r = query(
        s.addr,
        json!({"database": "shop", "question": "How many customers?"}),
    );
    assert_eq!(r.status, 200);
}

#[test]
fn openai_endpoints_and_streaming() {
    let s = start(Kind::Random, cfg(4, 16, 4), |m, dir| {
        vec![AdapterSpec {
            name: "shop".to_string(),
            path: common::write_adapter(dir, "shop", m, &["q_proj", "v_proj", "down_proj"], 9),
        }]
    });
    let models = get(s.addr, "/v1/models").json();
    let data = models["data"].as_array().unwrap();
    assert_eq!(data[0]["id"], "tiny");
    assert_eq!(data[0]["parent"], json!(null));
    assert_eq!(data[1]["id"], "shop");
    assert_eq!(data[1]["parent"], "tiny");

    for model in ["tiny", "shop"] {
        let body =
            json!({"model": model, "prompt": "How many customers are there ?", "max_tokens": 20});
        let plain = post(s.addr, "/v1/completions", &body);
        assert_eq!(plain.status, 200, "{}", plain.body);
        let v = plain.json();
        let text = v["choices"][0]["text"].as_str().unwrap().to_string();
        assert_eq!(v["object"], "text_completion");
        assert!(v["usage"]["completion_tokens"].as_u64().unwrap() >= 1);

        let mut sb = body.clone();
        sb["stream"] = json!(true);
        let streamed = post(s.addr, "/v1/completions", &sb);
        assert_eq!(streamed.status, 200);
        assert!(streamed
            .header("content-type")
            .unwrap()
            .starts_with("text/event-stream"));
        let events: Vec<&str> = streamed
            .body
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .collect();
        assert_eq!(events.last(), Some(&"[DONE]"), "{}", streamed.body);
        let mut joined = String::new();
        let mut finish = None;
        for e in &events[..events.len() - 1] {
            let c: serde_json::Value = serde_json::from_str(e).unwrap();
            joined.push_str(c["choices"][0]["text"].as_str().unwrap());
            if !c["choices"][0]["finish_reason"].is_null() {
                finish = Some(c["choices"][0]["finish_reason"].clone());
            }
        }
        assert_eq!(
            joined, text,
            "streamed text equals the plain completion ({model})"
        );
        assert_eq!(finish, Some(v["choices"][0]["finish_reason"].clone()));
    }
    // The adapter changes the output (it is really applied).
    let a = post(
        s.addr,
        "/v1/completions",
        &json!({"model": "tiny", "prompt": "How many", "max_tokens": 12}),
    )
    .json();
    let b = post(
        s.addr,
        "/v1/completions",
        &json!({"model": "shop", "prompt": "How many", "max_tokens": 12}),
    )
    .json();
    assert_ne!(a["choices"][0]["text"], b["choices"][0]["text"]);

    let chat = json!({"model": "shop", "messages": [{"role": "user", "content": "How many customers ?"}], "max_tokens": 10});
    let r = post(s.addr, "/v1/chat/completions", &chat);
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    let content = v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    let mut cs = chat.clone();
    cs["stream"] = json!(true);
    let r = post(s.addr, "/v1/chat/completions", &cs);
    let events: Vec<&str> = r
        .body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"));
    let first: serde_json::Value = serde_json::from_str(events[0]).unwrap();
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
    let joined: String = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str::<serde_json::Value>(e).unwrap())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(joined, content);

    // Metrics parse and count what happened.
    let r = get(s.addr, "/metrics");
    let samples = parse_metrics(&r.body);
    let count = |k: &str| samples.iter().find(|(s, _)| s == k).map(|(_, v)| *v);
    assert!(
        count("sqlora_http_requests_total{route=\"/v1/completions\",status=\"200\"}").unwrap()
            >= 6.0
    );
    assert!(count("sqlora_requests_by_adapter_total{adapter=\"shop\"}").unwrap() >= 3.0);
    assert!(count("sqlora_generated_tokens_total").unwrap() >= 6.0);
    assert!(
        count("sqlora_http_request_duration_seconds_count{route=\"/v1/completions\"}").unwrap()
            >= 6.0
    );
}

#[test]
fn openai_sampling_is_seeded_and_unsupported_fields_are_refused_by_name() {
    let s = start(Kind::Random, cfg(4, 16, 4), no_adapters);
    let text = |body: &serde_json::Value, path: &str| -> String {
        let r = post(s.addr, path, body);
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        match v["choices"][0]["text"].as_str() {
            Some(t) => t.to_string(),
            None => v["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .to_string(),
        }
    };
    let base =
        json!({"model": "tiny", "prompt": "How many customers are there ?", "max_tokens": 24});
    let greedy = text(&base, "/v1/completions");
    // temperature 0 is greedy, seed or not.
    let mut t0 = base.clone();
    t0["temperature"] = json!(0);
    t0["seed"] = json!(5);
    assert_eq!(text(&t0, "/v1/completions"), greedy);
    // The same seed gives the same sample; other seeds give other samples (a random model at
    // temperature 1.5 over 24 tokens: equal samples would mean the seed is ignored).
    let sampled = |seed: i64| {
        let mut b = base.clone();
        b["temperature"] = json!(1.5);
        b["top_p"] = json!(0.95);
        b["seed"] = json!(seed);
        text(&b, "/v1/completions")
    };
    let a = sampled(1);
    assert_eq!(sampled(1), a);
    let others: Vec<String> = (2..6).map(sampled).collect();
    assert!(others.iter().any(|o| *o != a), "{a:?} {others:?}");
    assert!(others.iter().chain([&a]).any(|o| *o != greedy));
    // Streaming honours the seed too.
    let mut sb = base.clone();
    sb["temperature"] = json!(1.5);
    sb["seed"] = json!(3);
    let plain = text(&sb, "/v1/completions");
    sb["stream"] = json!(true);
    let streamed = post(s.addr, "/v1/completions", &sb);
    let joined: String = streamed
        .body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|e| *e != "[DONE]")
        .filter_map(|e| {
            serde_json::from_str::<serde_json::Value>(e).unwrap()["choices"][0]["text"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(joined, plain);
    // Chat too.
    let chat = json!({"model": "tiny", "messages": [{"role": "user", "content": "Hi"}],
                      "max_tokens": 16, "temperature": 1.2, "seed": 42});
    assert_eq!(
        text(&chat, "/v1/chat/completions"),
        text(&chat, "/v1/chat/completions")
    );

    // What is not implemented is a 400 that names the field.
    for (path, extra, field) in [
        ("/v1/completions", json!({"temperature": 3}), "temperature"),
        ("/v1/completions", json!({"top_p": 0}), "top_p"),
        ("/v1/completions", json!({"logprobs": 2}), "logprobs"),
        (
            "/v1/completions",
            json!({"presence_penalty": 0.5}),
            "presence_penalty",
        ),
        ("/v1/completions", json!({"echo": true}), "echo"),
        ("/v1/completions", json!({"best_of": 2}), "best_of"),
        (
            "/v1/chat/completions",
            json!({"logprobs": true}),
            "logprobs",
        ),
        (
            "/v1/chat/completions",
            json!({"frequency_penalty": 1}),
            "frequency_penalty",
        ),
        ("/v1/chat/completions", json!({"tools": []}), "tools"),
        (
            "/v1/chat/completions",
            json!({"response_format": {"type": "json_object"}}),
            "response_format",
        ),
    ] {
        let mut body = if path == "/v1/completions" {
            base.clone()
        } else {
            json!({"model": "tiny", "messages": [{"role": "user", "content": "Hi"}]})
        };
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = post(s.addr, path, &body);
        assert_eq!(r.status, 400, "{path} {extra}: {}", r.body);
        let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(msg.contains(field), "{path} {extra}: {msg}");
    }
    // Zero penalties, null logprobs and a user id are accepted.
    let mut ok = base.clone();
    ok["presence_penalty"] = json!(0);
    ok["frequency_penalty"] = json!(0.0);
    ok["logprobs"] = json!(null);
    ok["user"] = json!("someone");
    assert_eq!(text(&ok, "/v1/completions"), greedy);
}

/// The python with the official `openai` client: `$SQLORA_OPENAI_PYTHON`, else the one
/// `tools/openai/install.sh` makes, else `python3` if it can import `openai`.
fn openai_python() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let candidates = [
        std::env::var_os("SQLORA_OPENAI_PYTHON").map(PathBuf::from),
        Some(root.join("target/openai-venv/bin/python")),
        Some(PathBuf::from("python3")),
    ];
    candidates.into_iter().flatten().find(|py| {
        std::process::Command::new(py)
            .args(["-c", "import openai"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

#[test]
fn the_official_openai_client_works() {
    let Some(py) = openai_python() else {
        assert!(
            std::env::var("SQLORA_REQUIRE_OPENAI").is_err(),
            "SQLORA_REQUIRE_OPENAI is set but no python can import openai (tools/openai/install.sh)"
        );
        eprintln!("skipped: no python with the openai client (tools/openai/install.sh)");
        return;
    };
    let s = start(Kind::Random, cfg(4, 16, 4), no_adapters);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tools/openai/check.py");
    let out = std::process::Command::new(&py)
        .arg(&script)
        .args([
            "--base-url",
            &format!("http://{}/v1", s.addr),
            "--model",
            "tiny",
        ])
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{log}");
    assert!(log.contains("all checks passed"), "{log}");
}

/// A PEFT folder that cannot be loaded: the config is fine, the weights file is garbage.
fn corrupt_adapter(dir: &std::path::Path, good: &std::path::Path) -> PathBuf {
    let p = dir.join("corrupt");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::copy(
        good.join("adapter_config.json"),
        p.join("adapter_config.json"),
    )
    .unwrap();
    std::fs::write(
        p.join("adapter_model.safetensors"),
        b"this is not safetensors",
    )
    .unwrap();
    p
}

/// A PEFT folder for a different model shape (hidden size 16 instead of 32).
fn incompatible_adapter(dir: &std::path::Path, good: &std::path::Path) -> PathBuf {
    let p = dir.join("incompatible");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::copy(
        good.join("adapter_config.json"),
        p.join("adapter_config.json"),
    )
    .unwrap();
    let tensors = candle_core::safetensors::load(
        good.join("adapter_model.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let narrowed: std::collections::HashMap<String, candle_core::Tensor> = tensors
        .into_iter()
        .map(|(k, t)| {
            let t = if k.contains("lora_A") {
                t.narrow(1, 0, 16).unwrap()
            } else {
                t
            };
            (k, t.contiguous().unwrap())
        })
        .collect();
    candle_core::safetensors::save(&narrowed, p.join("adapter_model.safetensors")).unwrap();
    p
}

#[test]
fn adapters_load_under_traffic_and_evict_least_recently_used() {
    let s = start(Kind::Scripted, cfg(4, 64, 1), |m, dir| {
        vec![AdapterSpec {
            name: "shop".to_string(),
            path: common::write_adapter(dir, "shop", m, &["q_proj", "v_proj"], 4),
        }]
    });
    let addr = s.addr;
    // The database's own adapter is the default.
    let v = query(
        addr,
        json!({"database": "shop", "question": "How many customers?"}),
    )
    .json();
    assert_eq!(v["adapter"], "shop");

    let (extra, corrupt, incompatible) = {
        let (_d, m) = common::tiny_model(Kind::Scripted, 3);
        let extra = common::write_adapter(&s.adapters_dir, "extra", &m, &["q_proj", "k_proj"], 5);
        let corrupt = corrupt_adapter(&s.adapters_dir, &extra);
        let incompatible = incompatible_adapter(&s.adapters_dir, &extra);
        (extra, corrupt, incompatible)
    };
    // Traffic while adapters come and go.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..3)
        .map(|i| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut statuses = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::SeqCst) || statuses.len() < 3 {
                    let q = format!("How many customers are there {i}?");
                    let r = query(
                        addr,
                        json!({"database": "shop", "question": q, "adapter": "shop"}),
                    );
                    statuses.push((r.status, r.json()["valid"] == json!(true)));
                }
                statuses
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    let r = post(
        addr,
        "/v1/adapters",
        &json!({"name": "bad", "path": corrupt}),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], "adapter_refused");
    let r = post(
        addr,
        "/v1/adapters",
        &json!({"name": "bad2", "path": incompatible}),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    // With one resident slot busy, it is registered on disk and loaded on first use.
    let r = post(
        addr,
        "/v1/adapters",
        &json!({"name": "extra", "path": extra}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["rank"], 4);
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for w in workers {
        for (status, valid) in w.join().unwrap() {
            assert!(status == 200 || status == 409, "status {status}");
            if status == 200 {
                assert!(valid);
            }
        }
    }
    // One slot: the least recently used adapter was evicted, and comes back on demand.
    let list = get(addr, "/v1/adapters").json();
    let resident: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["resident"] == true)
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(resident.len(), 1, "{list}");
    assert_eq!(list["max_resident"], 1);
    let r = query(
        addr,
        json!({"database": "shop", "question": "How many?", "adapter": "extra"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = query(
        addr,
        json!({"database": "shop", "question": "How many?", "adapter": "shop"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let list = get(addr, "/v1/adapters").json();
    let by_name = |n: &str| {
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == n)
            .cloned()
            .unwrap()
    };
    assert_eq!(by_name("shop")["resident"], true);
    assert!(by_name("shop")["resident_bytes"].as_u64().unwrap() > 0);
    assert_eq!(by_name("extra")["resident"], false);
    assert_eq!(by_name("extra")["resident_bytes"], 0);
    assert!(metric(addr, "sqlora_adapter_evictions_total") >= 2.0);
    // Unload.
    let r = request(addr, "DELETE", "/v1/adapters/extra", None);
    assert_eq!(r.status, 200, "{}", r.body);
    let r = query(
        addr,
        json!({"database": "shop", "question": "How many?", "adapter": "extra"}),
    );
    assert_eq!(r.status, 404);
    let models = get(addr, "/v1/models").json();
    assert_eq!(models["data"].as_array().unwrap().len(), 2);
}

#[test]
fn a_full_queue_sheds_with_429_and_serves_the_rest() {
    let s = start(Kind::Random, cfg(1, 2, 1), no_adapters);
    let addr = s.addr;
    let clients: Vec<_> = (0..16)
        .map(|_| {
            std::thread::spawn(move || {
                post(
                    addr,
                    "/v1/completions",
                    &json!({"model": "tiny", "prompt": "How many rows", "max_tokens": 400}),
                )
            })
        })
        .collect();
    let resps: Vec<common::Resp> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let ok = resps.iter().filter(|r| r.status == 200).count();
    let shed: Vec<&common::Resp> = resps.iter().filter(|r| r.status == 429).collect();
    assert_eq!(ok + shed.len(), resps.len(), "only 200 or 429");
    assert!(
        ok >= 1 && !shed.is_empty(),
        "{ok} served, {} shed",
        shed.len()
    );
    for r in shed {
        assert_eq!(r.header("retry-after"), Some("1"));
        assert_eq!(r.json()["error"]["code"], "queue_full");
    }
    assert!(
        metric(
            addr,
            "sqlora_http_requests_total{route=\"/v1/completions\",status=\"429\"}"
        ) >= 1.0
    );
    // Serving normally afterwards.
    let r = post(
        addr,
        "/v1/completions",
        &json!({"model": "tiny", "prompt": "a", "max_tokens": 2}),
    );
    assert_eq!(r.status, 200);
}

#[test]
fn a_request_past_its_deadline_gets_504() {
    let mut c = cfg(1, 8, 1);
    c.limits.timeout = Duration::from_millis(50);
    c.limits.max_completion_tokens = 4000;
    let s = start(Kind::Random, c, no_adapters);
    let addr = s.addr;
    // A generation far longer than the deadline ends with 504.
    let t0 = Instant::now();
    let r = post(
        addr,
        "/v1/completions",
        &json!({"model": "tiny", "prompt": "w", "max_tokens": 3900, "stop": ["never seen"]}),
    );
    assert_eq!(r.status, 504, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], "deadline_exceeded");
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert!(metric(addr, "sqlora_rejected_total{reason=\"deadline\"}") >= 1.0);
}

#[test]
fn a_failed_engine_step_is_a_5xx_and_the_service_goes_on() {
    let s = start(Kind::Scripted, cfg(4, 16, 4), no_adapters);
    let addr = s.addr;
    let completion = json!({"model": "tiny", "prompt": "SELECT", "max_tokens": 10});
    let ok = post(addr, "/v1/completions", &completion);
    assert_eq!(ok.status, 200, "{}", ok.body);
    let want = ok.json()["choices"][0]["text"].clone();
    assert_eq!(want, " COUNT ( * ) FROM customers");
    let expect_5xx = |r: &common::Resp| {
        assert_eq!(r.status, 500, "{}", r.body);
        let v = r.json();
        assert_eq!(v["error"]["code"], "generation_failed", "{v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("injected fault"),
            "the cause is in the message: {msg}"
        );
    };

    // A decode step fails: the request gets a 500 JSON error, the next one its answer.
    s.engine.fail_next_steps(1);
    expect_5xx(&post(addr, "/v1/completions", &completion));
    let again = post(addr, "/v1/completions", &completion);
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json()["choices"][0]["text"], want);

    // The step computing a database's prefix fails: nothing broken is cached, and the same
    // question is answered next time.
    let question = json!({"database": "shop", "question": "How many customers are there?"});
    s.engine.fail_next_steps(1);
    expect_5xx(&query(addr, question.clone()));
    let r = query(addr, question);
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["sql"], "SELECT COUNT ( * ) FROM customers");
    assert_eq!(v["rows"], json!([[3]]));
    assert_eq!(v["usage"]["cached_prompt_tokens"], 0);
    assert_eq!(get(addr, "/healthz").json()["status"], "ok");
}

#[test]
fn a_client_that_disconnects_frees_its_slot() {
    let mut c = cfg(1, 8, 1);
    c.limits.max_completion_tokens = 4000;
    let s = start(Kind::Random, c, no_adapters);
    let addr = s.addr;
    use std::io::Write;
    let before = metric(addr, "sqlora_rejected_total{reason=\"disconnected\"}");
    let body = json!({"model": "tiny", "prompt": "How many", "max_tokens": 3900}).to_string();
    {
        let mut sock = std::net::TcpStream::connect(addr).unwrap();
        write!(
            sock,
            "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(30));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut after = before;
    while Instant::now() < deadline {
        after = metric(addr, "sqlora_rejected_total{reason=\"disconnected\"}");
        if after > before {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(after > before, "the abandoned request was never dropped");
    let r = post(
        addr,
        "/v1/completions",
        &json!({"model": "tiny", "prompt": "a", "max_tokens": 2}),
    );
    assert_eq!(r.status, 200);
}

#[test]
fn adapter_folders_are_discovered_by_name() {
    let (_d, m) = common::tiny_model(Kind::Random, 1);
    let dir = tempfile::tempdir().unwrap();
    common::write_adapter(dir.path(), "zeta", &m, &["q_proj"], 1);
    common::write_adapter(dir.path(), "alpha", &m, &["v_proj"], 2);
    std::fs::create_dir(dir.path().join("notes")).unwrap();
    std::fs::write(dir.path().join("README.md"), "not an adapter").unwrap();
    let found = sqlora_serve::discover_adapters(dir.path()).unwrap();
    let names: Vec<&str> = found.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["alpha", "zeta"]);
    assert_eq!(found[0].path, dir.path().join("alpha"));
    assert!(sqlora_serve::discover_adapters(&dir.path().join("missing"))
        .unwrap()
        .is_empty());
}
