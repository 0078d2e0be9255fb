//! The HTTP API (axum): natural-language queries, OpenAI-compatible completions, adapter
//! management, health, metrics and the web page.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path as UrlPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value as Json_};
use sqlora_sql::exec::{ExecError, ExecLimits};
use sqlora_sqlgen::{
    answer, foreign_values, needs_fallback, render_chat, with_fallback, AnswerOptions, ChatMessage,
    FewShot, PromptBuilder, Selection, DEFAULT_FALLBACK,
};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;

use crate::engine::{wait, EngineHandle, Finish, GenOutput, GenRequest, PrefixSpec, Sampling};
use crate::error::{Result, ServeError};
use crate::metrics::{Metrics, LATENCY_BUCKETS};

const INDEX_HTML: &str = include_str!("../assets/index.html");

/// Limits on what a request may ask for.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest question, in characters.
    pub max_question_chars: usize,
    /// Largest `max_rows`.
    pub max_rows: usize,
    /// Most candidates per question.
    pub max_candidates: usize,
    /// Tokens generated for a SQL answer.
    pub query_max_tokens: usize,
    /// Most retrieved examples (`examples`) in a `/v1/query` prompt.
    pub max_examples: usize,
    /// Largest `max_tokens` of the completion endpoints.
    pub max_completion_tokens: usize,
    /// Deadline of one request.
    pub timeout: Duration,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_question_chars: 1000,
            max_rows: 10_000,
            max_candidates: 8,
            query_max_tokens: 128,
            max_examples: 16,
            max_completion_tokens: 512,
            timeout: Duration::from_secs(60),
            max_body_bytes: 256 * 1024,
        }
    }
}

impl Limits {
    /// A request's `max_rows` (default 100), checked against [`Limits::max_rows`]: a 400
    /// (`bad_max_rows`) outside `1..=max_rows`.
    pub(crate) fn rows_of(&self, requested: Option<i64>) -> std::result::Result<usize, ServeError> {
        let max_rows = requested.unwrap_or(100);
        if max_rows < 1 || max_rows as u64 > self.max_rows as u64 {
            return Err(ServeError::bad(
                "bad_max_rows",
                format!(
                    "max_rows must be between 1 and {}, got {max_rows}",
                    self.max_rows
                ),
            ));
        }
        Ok(max_rows as usize)
    }
}

/// Everything the handlers share.
pub struct AppState {
    /// The generation engine.
    pub engine: EngineHandle,
    /// Databases by name (added and removed at runtime under `--db-root`).
    pub databases: crate::registry::Registry,
    /// The prompt templates.
    pub builder: PromptBuilder,
    /// Retrieved examples in a `/v1/query` prompt when the request does not say (databases
    /// with training examples only).
    pub examples_k: usize,
    /// Request limits.
    pub limits: Limits,
    /// The base model's id in `/v1/models` and the `model` field.
    pub model_id: String,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// When the server started (seconds since the epoch).
    pub created: u64,
    /// The feedback store (`None`: feedback is off; answers carry no `query_id`).
    pub feedback: Option<Arc<crate::feedback::FeedbackStore>>,
}

pub(crate) type AppResult<T> = std::result::Result<T, ApiError>;

/// A [`ServeError`] answered as `{error: {code, message}}` with its status.
#[derive(Debug)]
pub struct ApiError(pub ServeError);

impl From<ServeError> for ApiError {
    fn from(e: ServeError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = Json(json!({"error": {"code": self.0.code(), "message": self.0.to_string()}}));
        let mut resp = (status, body).into_response();
        if status == StatusCode::TOO_MANY_REQUESTS {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

/// Parses a JSON body with clear 4xx errors (malformed JSON, wrong types, oversized bodies).
pub(crate) fn parse_body<T: DeserializeOwned>(
    body: std::result::Result<Bytes, BytesRejection>,
) -> AppResult<T> {
    let bytes = body.map_err(|e| {
        let status = e.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ServeError::TooLarge(format!("the request body is too large: {e}"))
        } else {
            ServeError::bad("bad_body", format!("cannot read the request body: {e}"))
        }
    })?;
    if bytes.is_empty() {
        return Err(
            ServeError::bad("bad_json", "the request body is empty; send a JSON object").into(),
        );
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        let code = if e.is_data() {
            "bad_request"
        } else {
            "bad_json"
        };
        ApiError(ServeError::bad(code, format!("invalid request body: {e}")))
    })
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The router with every route, the metrics middleware and the body limit.
pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.limits.max_body_bytes;
    Router::new()
        .route("/", get(index))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route(
            "/v1/databases",
            get(databases).post(crate::registry::add_database),
        )
        .route(
            "/v1/databases/{name}",
            delete(crate::registry::remove_database),
        )
        .route("/v1/query", post(query))
        .route("/v1/feedback", post(crate::http_feedback::feedback))
        .route("/v1/sql", post(crate::http_feedback::run_sql))
        .route("/v1/models", get(models))
        .route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/adapters", get(list_adapters).post(add_adapter))
        .route("/v1/adapters/{name}", delete(remove_adapter))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

/// Counts requests by route and status and times them.
async fn track(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let t0 = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    state.metrics.inc(
        "sqlora_http_requests_total",
        &[("route", &route), ("status", &status)],
    );
    state.metrics.observe(
        "sqlora_http_request_duration_seconds",
        &[("route", &route)],
        LATENCY_BUCKETS,
        t0.elapsed().as_secs_f64(),
    );
    resp
}

async fn not_found() -> ApiError {
    ApiError(ServeError::not_found("not_found", "no such route"))
}

async fn index() -> Html<&'static str> {
    Html(INDEX_HTML)
}

async fn healthz(State(s): State<Arc<AppState>>) -> Json<Json_> {
    use std::sync::atomic::Ordering;
    Json(json!({
        "status": "ok",
        "model": s.model_id,
        "databases": s.databases.len(),
        "adapters": s.engine.shared.adapter_list().len(),
        "queued": s.engine.shared.queued.load(Ordering::SeqCst),
        "running": s.engine.shared.running.load(Ordering::SeqCst),
    }))
}

async fn metrics(State(s): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        s.metrics.render(),
    )
        .into_response()
}

async fn databases(State(s): State<Arc<AppState>>) -> Json<Json_> {
    let data: Vec<Json_> = s
        .databases
        .list()
        .iter()
        .map(|d| crate::registry::describe(&s, d))
        .collect();
    Json(json!({"object": "list", "data": data}))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryBody {
    database: String,
    question: String,
    #[serde(default)]
    adapter: Option<String>,
    #[serde(default)]
    execute: Option<bool>,
    #[serde(default)]
    max_rows: Option<i64>,
    #[serde(default)]
    candidates: Option<i64>,
    /// Beams to try when the one greedy answer fails the guard or SQLite (default
    /// [`DEFAULT_FALLBACK`]; 0: none); the first that passes is the answer.
    #[serde(default)]
    fallback: Option<i64>,
    /// Constrain the answer to SQL over the database's schema (default true).
    #[serde(default)]
    constrain: Option<bool>,
    /// With several candidates, answer with the result most of them agree on (default true);
    /// false: the first candidate that passes the guard.
    #[serde(default)]
    vote: Option<bool>,
    /// Retrieved (question, SQL) examples in the prompt (default: the server's
    /// `--examples-k`; 0: none).
    #[serde(default)]
    examples: Option<i64>,
}

/// The adapter a request names (`None` = the base model). The base model's id, `base` and the
/// empty string all mean no adapter.
fn resolve_adapter(s: &AppState, name: &str) -> Result<Option<String>> {
    if name.is_empty() || name == "base" || name == s.model_id {
        return Ok(None);
    }
    if s.engine.shared.has_adapter(name) {
        Ok(Some(name.to_string()))
    } else {
        Err(ServeError::not_found(
            "unknown_adapter",
            format!("no adapter named '{name}' (see GET /v1/adapters)"),
        ))
    }
}

/// Submits a request and waits for it; the request is dropped (its slot freed) if this future
/// is dropped, e.g. when the client disconnects.
async fn generate(s: &AppState, mut req: GenRequest) -> Result<GenOutput> {
    let (tx, rx) = oneshot::channel();
    req.reply = tx;
    s.engine.submit(req)?;
    wait(rx, s.limits.timeout + Duration::from_secs(2)).await
}

fn new_request(
    s: &AppState,
    prompt: Vec<u32>,
    prefix: Option<PrefixSpec>,
    adapter: Option<String>,
    max_new_tokens: usize,
) -> GenRequest {
    let (reply, _) = oneshot::channel();
    GenRequest {
        prompt,
        prefix,
        adapter,
        max_new_tokens,
        candidates: 1,
        stop: Vec::new(),
        sampling: None,
        constraint: None,
        deadline: Instant::now() + s.limits.timeout,
        stream: None,
        reply,
    }
}

async fn query(
    State(s): State<Arc<AppState>>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> AppResult<Json<Json_>> {
    let b: QueryBody = parse_body(body)?;
    let db = s.databases.lookup(&b.database)?;
    let question = b.question.trim();
    if question.is_empty() {
        return Err(ServeError::bad("empty_question", "the question is empty").into());
    }
    let chars = question.chars().count();
    if chars > s.limits.max_question_chars {
        return Err(ServeError::bad(
            "question_too_long",
            format!(
                "the question has {chars} characters; at most {} are accepted",
                s.limits.max_question_chars
            ),
        )
        .into());
    }
    if question.contains('\0') {
        return Err(
            ServeError::bad("bad_question", "the question contains a NUL character").into(),
        );
    }
    let max_rows = s.limits.rows_of(b.max_rows)?;
    let candidates = bounded(
        ("candidates", "bad_candidates"),
        b.candidates,
        1,
        1,
        s.limits.max_candidates,
    )?;
    let fallback = bounded(
        ("fallback", "bad_fallback"),
        b.fallback,
        DEFAULT_FALLBACK,
        0,
        s.limits.max_candidates,
    )?;
    let adapter = match &b.adapter {
        Some(name) => resolve_adapter(&s, name)?,
        None => s
            .engine
            .shared
            .has_adapter(&db.name)
            .then(|| db.name.clone()),
    };
    let k = bounded(
        ("examples", "bad_examples"),
        b.examples,
        s.examples_k,
        0,
        s.limits.max_examples,
    )?;
    let shots = match (&db.examples, k) {
        (_, 0) => Vec::new(),
        (Some(index), k) => FewShot::new(index.clone(), k).for_question(question, None),
        (None, _) if b.examples.is_some() => {
            return Err(ServeError::bad(
                "no_examples",
                format!(
                    "the database '{}' has no training examples to retrieve from (start the server with --examples {}=FILE.jsonl)",
                    db.name, db.name
                ),
            )
            .into())
        }
        (None, _) => Vec::new(),
    };
    let model = s.engine.model().clone();
    let text = s
        .builder
        .prompt_with_examples(&model, &db.schema, question, &shots, true)
        .map_err(ServeError::from)?;
    let ids = model
        .tokenizer
        .encode(&text, false)
        .map_err(ServeError::from)?;
    // A database whose whole schema does not fit the prompt has no shared prefix.
    let prefix =
        (!db.prefix_tokens.is_empty() && ids.starts_with(&db.prefix_tokens)).then(|| PrefixSpec {
            name: db.prefix_key(),
            len: db.prefix_tokens.len(),
        });
    let constrain = b.constrain.unwrap_or(true);
    let request = |n: usize| -> Result<GenRequest> {
        let mut req = new_request(
            &s,
            ids.clone(),
            prefix.clone(),
            adapter.clone(),
            s.limits.query_max_tokens,
        );
        req.candidates = n;
        if constrain {
            req.constraint = Some(db.constraints.row().map_err(ServeError::from)?);
        }
        Ok(req)
    };
    let req = request(candidates)?;
    let deadline = req.deadline;
    let out = generate(&s, req).await?;
    let opts = AnswerOptions {
        primed: true,
        execute: b.execute.unwrap_or(true),
        limits: ExecLimits {
            max_rows,
            ..ExecLimits::default()
        },
        select: if b.vote.unwrap_or(true) {
            Selection::Vote
        } else {
            Selection::FirstValid
        },
        foreign_values: foreign_values(question, &shots),
    };
    // The guard and SQLite off the async threads.
    let judge = |texts: Vec<String>, opts: AnswerOptions| {
        let (db, metrics) = (db.clone(), s.metrics.clone());
        async move {
            tokio::task::spawn_blocking(move || {
                db.with_db(|conn| answer(conn, &texts, &opts, |e| count_failure(&metrics, e)))
            })
            .await
            .map_err(|e| ServeError::Internal(format!("query execution failed: {e}")))
        }
    };
    let mut ans = judge(out.texts.clone(), opts.clone()).await?;
    let (mut generate_ms, mut completion_tokens) = (out.generate_ms, out.completion_tokens);
    // A failed greedy answer: beam search, best effort within the request's deadline (an
    // overloaded or late retry leaves the first answer as it is).
    if needs_fallback(&ans, candidates, fallback) && Instant::now() < deadline {
        let mut req = request(fallback)?;
        req.deadline = deadline;
        if let Ok(retry) = generate(&s, req).await {
            generate_ms += retry.generate_ms;
            completion_tokens += retry.completion_tokens;
            let first_valid = AnswerOptions {
                select: Selection::FirstValid,
                ..opts
            };
            ans = with_fallback(ans, judge(retry.texts, first_valid).await?);
        }
    }
    let (store, asked, by, db2) = (
        s.feedback.clone(),
        question.to_string(),
        adapter.clone(),
        db.clone(),
    );
    let metrics = s.metrics.clone();
    let (ans, query_id) = tokio::task::spawn_blocking(move || {
        // On disk before the answer goes out, so feedback on it always finds it.
        let id = crate::http_feedback::record_answer(
            store.as_deref(),
            &metrics,
            &db2.name,
            by.as_deref(),
            &asked,
            &ans,
        );
        (ans, id)
    })
    .await
    .map_err(|e| ServeError::Internal(format!("query execution failed: {e}")))?;
    Ok(Json(json!({
        "query_id": query_id,
        "sql": ans.sql,
        "adapter": adapter,
        "database": db.name,
        "valid": ans.valid,
        "constrained": constrain,
        "error": ans.error,
        "columns": ans.columns,
        "rows": ans.rows,
        "truncated": ans.truncated,
        "copied": ans.copied,
        "attempts": ans.attempts,
        "candidates": ans.candidates,
        "examples": shots
            .iter()
            .map(|e| json!({"id": e.id, "question": e.question}))
            .collect::<Vec<_>>(),
        "timings": {
            "queue_ms": out.queue_ms,
            "generate_ms": generate_ms,
            "execute_ms": ans.execute_ms,
        },
        "usage": {
            "prompt_tokens": out.prompt_tokens,
            "cached_prompt_tokens": out.cached_tokens,
            "completion_tokens": completion_tokens,
        },
    })))
}

/// The integer request field `name`: `default` when absent, else it must lie in
/// `min..=max` (a 400 with `code`, `bad_<name>`, otherwise).
fn bounded(
    (name, code): (&str, &'static str),
    v: Option<i64>,
    default: usize,
    min: i64,
    max: usize,
) -> Result<usize> {
    match v {
        None => Ok(default),
        Some(k) if k < min || k as u64 > max as u64 => Err(ServeError::bad(
            code,
            format!("{name} must be between {min} and {max}, got {k}"),
        )),
        Some(k) => Ok(k as usize),
    }
}

/// Counts a refused or failed candidate of `/v1/query`.
fn count_failure(m: &Metrics, e: &ExecError) {
    match e {
        ExecError::Guard(g) => m.inc(
            "sqlora_guard_rejections_total",
            &[("reason", g.code.as_str())],
        ),
        other => m.inc("sqlora_execution_errors_total", &[("kind", other.code())]),
    }
}

async fn models(State(s): State<Arc<AppState>>) -> Json<Json_> {
    let mut data = vec![json!({
        "id": s.model_id, "object": "model", "created": s.created, "owned_by": "sqlora",
        "parent": null, "root": s.model_id,
    })];
    for a in s.engine.shared.adapter_list() {
        data.push(json!({
            "id": a.name, "object": "model", "created": s.created, "owned_by": "sqlora",
            "parent": s.model_id, "root": s.model_id, "resident": a.resident,
        }));
    }
    Json(json!({"object": "list", "data": data}))
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum StopField {
    One(String),
    Many(Vec<String>),
}

/// `POST /v1/completions`. Fields the service does not implement are refused by name (400),
/// never silently dropped.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompletionBody {
    model: String,
    prompt: String,
    #[serde(default)]
    max_tokens: Option<i64>,
    #[serde(default)]
    stop: Option<StopField>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    n: Option<i64>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    seed: Option<i64>,
    #[serde(default)]
    frequency_penalty: Option<f64>,
    #[serde(default)]
    presence_penalty: Option<f64>,
    /// Not implemented: any value but null is refused.
    #[serde(default)]
    logprobs: Option<serde_json::Value>,
    /// An end-user id for the caller's own bookkeeping; accepted, not used.
    #[serde(default)]
    #[allow(dead_code)]
    user: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ChatMessageBody {
    role: String,
    content: String,
}

/// `POST /v1/chat/completions`. Fields the service does not implement are refused by name
/// (400), never silently dropped.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChatBody {
    model: String,
    messages: Vec<ChatMessageBody>,
    #[serde(default)]
    max_tokens: Option<i64>,
    #[serde(default)]
    max_completion_tokens: Option<i64>,
    #[serde(default)]
    stop: Option<StopField>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    n: Option<i64>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    seed: Option<i64>,
    #[serde(default)]
    frequency_penalty: Option<f64>,
    #[serde(default)]
    presence_penalty: Option<f64>,
    /// Not implemented: only `false` (or null) is accepted.
    #[serde(default)]
    logprobs: Option<serde_json::Value>,
    #[serde(default)]
    top_logprobs: Option<serde_json::Value>,
    /// An end-user id for the caller's own bookkeeping; accepted, not used.
    #[serde(default)]
    #[allow(dead_code)]
    user: Option<String>,
}

/// The decoding fields both OpenAI endpoints take.
struct DecodingFields {
    temperature: Option<f64>,
    top_p: Option<f64>,
    seed: Option<i64>,
    frequency_penalty: Option<f64>,
    presence_penalty: Option<f64>,
    logprobs: Option<serde_json::Value>,
    top_logprobs: Option<serde_json::Value>,
}

/// Greedy, or the request's sampling: `temperature` in [0, 2] (0 or absent: greedy), `top_p`
/// in (0, 1], `seed` any integer (absent: a fresh seed per request). Penalties are accepted
/// only at 0 and logprobs not at all, each refused by its name.
fn sampling(f: DecodingFields) -> Result<Option<Sampling>> {
    let bad = |code: &'static str, msg: String| Err(ServeError::bad(code, msg));
    for (name, code, v) in [
        (
            "frequency_penalty",
            "bad_frequency_penalty",
            f.frequency_penalty,
        ),
        (
            "presence_penalty",
            "bad_presence_penalty",
            f.presence_penalty,
        ),
    ] {
        if v.is_some_and(|v| v != 0.0) {
            return bad(code, format!("{name} is not supported (only 0)"));
        }
    }
    for (name, code, v) in [
        ("logprobs", "bad_logprobs", &f.logprobs),
        ("top_logprobs", "bad_top_logprobs", &f.top_logprobs),
    ] {
        if !matches!(
            v,
            None | Some(serde_json::Value::Null | serde_json::Value::Bool(false))
        ) {
            return bad(code, format!("{name} is not supported"));
        }
    }
    let temperature = f.temperature.unwrap_or(0.0);
    if !(0.0..=2.0).contains(&temperature) {
        return bad(
            "bad_temperature",
            format!("temperature must be between 0 and 2, got {temperature}"),
        );
    }
    let top_p = f.top_p.unwrap_or(1.0);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return bad("bad_top_p", format!("top_p must be in (0, 1], got {top_p}"));
    }
    if temperature == 0.0 {
        return Ok(None);
    }
    let seed = match f.seed {
        Some(s) => s as u64,
        None => {
            let t = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            t ^ NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        }
    };
    Ok(Some(Sampling {
        temperature,
        top_p,
        seed,
    }))
}

fn completion_params(
    s: &AppState,
    model: &str,
    max_tokens: Option<i64>,
    default_tokens: usize,
    stop: Option<StopField>,
    n: Option<i64>,
) -> Result<(Option<String>, usize, Vec<String>)> {
    let adapter = if model == s.model_id {
        None
    } else if s.engine.shared.has_adapter(model) {
        Some(model.to_string())
    } else {
        return Err(ServeError::not_found(
            "model_not_found",
            format!(
                "no model named '{model}': use '{}' or an adapter from GET /v1/models",
                s.model_id
            ),
        ));
    };
    let max = max_tokens.unwrap_or(default_tokens as i64);
    if max < 1 || max as u64 > s.limits.max_completion_tokens as u64 {
        return Err(ServeError::bad(
            "bad_max_tokens",
            format!(
                "max_tokens must be between 1 and {}, got {max}",
                s.limits.max_completion_tokens
            ),
        ));
    }
    if n.is_some_and(|n| n != 1) {
        return Err(ServeError::bad("bad_n", "only n = 1 is supported"));
    }
    let stop = match stop {
        None => Vec::new(),
        Some(StopField::One(x)) => vec![x],
        Some(StopField::Many(v)) => v,
    };
    if stop.len() > 4 {
        return Err(ServeError::bad("bad_stop", "at most 4 stop strings"));
    }
    Ok((adapter, max as usize, stop))
}

fn finish_str(f: Finish) -> &'static str {
    match f {
        Finish::Stop => "stop",
        Finish::Length => "length",
        // The OpenAI endpoints are not constrained; were they, a dead end is where it stopped.
        Finish::Constrained => "stop",
    }
}

/// A completion to run (from either endpoint).
struct Completion {
    model_name: String,
    prompt_text: String,
    adapter: Option<String>,
    max_tokens: usize,
    stop: Vec<String>,
    stream: bool,
    chat: bool,
    sampling: Option<Sampling>,
}

/// Shared by both completion endpoints: plain JSON or an SSE stream.
async fn complete(s: Arc<AppState>, c: Completion) -> AppResult<Response> {
    let Completion {
        model_name,
        prompt_text,
        adapter,
        max_tokens,
        stop,
        stream,
        chat,
        sampling,
    } = c;
    let model = s.engine.model().clone();
    let ids = model
        .tokenizer
        .encode(&prompt_text, false)
        .map_err(ServeError::from)?;
    if ids.is_empty() {
        return Err(ServeError::bad("empty_prompt", "the prompt is empty").into());
    }
    let mut req = new_request(&s, ids, None, adapter, max_tokens);
    req.stop = stop;
    req.sampling = sampling;
    let id = format!(
        "{}-{}-{}",
        if chat { "chatcmpl" } else { "cmpl" },
        now_secs(),
        NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let created = now_secs();
    if !stream {
        let out = generate(&s, req).await?;
        let text = out.texts.first().cloned().unwrap_or_default();
        let usage = json!({
            "prompt_tokens": out.prompt_tokens,
            "completion_tokens": out.completion_tokens,
            "total_tokens": out.prompt_tokens + out.completion_tokens,
        });
        let body = if chat {
            json!({"id": id, "object": "chat.completion", "created": created, "model": model_name,
                   "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                "finish_reason": finish_str(out.finish)}],
                   "usage": usage})
        } else {
            json!({"id": id, "object": "text_completion", "created": created, "model": model_name,
                   "choices": [{"index": 0, "text": text, "logprobs": null,
                                "finish_reason": finish_str(out.finish)}],
                   "usage": usage})
        };
        return Ok(Json(body).into_response());
    }
    let (delta_tx, mut delta_rx) = mpsc::unbounded_channel::<String>();
    let (reply_tx, reply_rx) = oneshot::channel();
    req.stream = Some(delta_tx);
    req.reply = reply_tx;
    s.engine.submit(req)?;
    let (out_tx, out_rx) = mpsc::channel::<std::result::Result<Event, Infallible>>(64);
    let object = if chat {
        "chat.completion.chunk"
    } else {
        "text_completion"
    };
    let chunk = move |delta: Option<&str>, finish: Option<&str>, first: bool| -> Json_ {
        if chat {
            let mut d = serde_json::Map::new();
            if first {
                d.insert("role".into(), json!("assistant"));
            }
            if let Some(t) = delta {
                d.insert("content".into(), json!(t));
            }
            json!({"id": id, "object": object, "created": created, "model": model_name,
                   "choices": [{"index": 0, "delta": d, "finish_reason": finish}]})
        } else {
            json!({"id": id, "object": object, "created": created, "model": model_name,
                   "choices": [{"index": 0, "text": delta.unwrap_or(""), "logprobs": null,
                                "finish_reason": finish}]})
        }
    };
    let timeout = s.limits.timeout + Duration::from_secs(2);
    tokio::spawn(async move {
        let send = |v: Json_| Event::default().data(v.to_string());
        if chat
            && out_tx
                .send(Ok(send(chunk(None, None, true))))
                .await
                .is_err()
        {
            return;
        }
        loop {
            tokio::select! {
                d = delta_rx.recv() => match d {
                    Some(text) => {
                        if out_tx.send(Ok(send(chunk(Some(&text), None, false)))).await.is_err() {
                            return; // the client went away: dropping reply_rx frees the slot
                        }
                    }
                    None => break,
                },
                _ = out_tx.closed() => return,
            }
        }
        let last = match wait(reply_rx, timeout).await {
            Ok(out) => chunk(None, Some(finish_str(out.finish)), false),
            Err(e) => json!({"error": {"code": e.code(), "message": e.to_string()}}),
        };
        let _ = out_tx.send(Ok(send(last))).await;
        let _ = out_tx.send(Ok(Event::default().data("[DONE]"))).await;
    });
    Ok(Sse::new(ReceiverStream::new(out_rx))
        .keep_alive(KeepAlive::default())
        .into_response())
}

static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

async fn completions(
    State(s): State<Arc<AppState>>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> AppResult<Response> {
    let b: CompletionBody = parse_body(body)?;
    let (adapter, max, stop) = completion_params(&s, &b.model, b.max_tokens, 16, b.stop, b.n)?;
    let sampling = sampling(DecodingFields {
        temperature: b.temperature,
        top_p: b.top_p,
        seed: b.seed,
        frequency_penalty: b.frequency_penalty,
        presence_penalty: b.presence_penalty,
        logprobs: b.logprobs,
        top_logprobs: None,
    })?;
    if b.prompt.is_empty() {
        return Err(ServeError::bad("empty_prompt", "the prompt is empty").into());
    }
    let c = Completion {
        model_name: b.model,
        prompt_text: b.prompt,
        adapter,
        max_tokens: max,
        stop,
        stream: b.stream,
        chat: false,
        sampling,
    };
    complete(s.clone(), c).await
}

async fn chat_completions(
    State(s): State<Arc<AppState>>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> AppResult<Response> {
    let b: ChatBody = parse_body(body)?;
    let (adapter, max, stop) = completion_params(
        &s,
        &b.model,
        b.max_completion_tokens.or(b.max_tokens),
        256,
        b.stop,
        b.n,
    )?;
    let sampling = sampling(DecodingFields {
        temperature: b.temperature,
        top_p: b.top_p,
        seed: b.seed,
        frequency_penalty: b.frequency_penalty,
        presence_penalty: b.presence_penalty,
        logprobs: b.logprobs,
        top_logprobs: b.top_logprobs,
    })?;
    if b.messages.is_empty() {
        return Err(ServeError::bad("empty_messages", "messages is empty").into());
    }
    if let Some(m) = b
        .messages
        .iter()
        .find(|m| !["system", "user", "assistant"].contains(&m.role.as_str()))
    {
        return Err(ServeError::bad(
            "bad_role",
            format!("unknown role '{}' (system, user or assistant)", m.role),
        )
        .into());
    }
    let msgs: Vec<ChatMessage> = b
        .messages
        .iter()
        .map(|m| ChatMessage::new(&m.role, m.content.clone()))
        .collect();
    let text = render_chat(s.engine.model(), &msgs).map_err(ServeError::from)?;
    let c = Completion {
        model_name: b.model,
        prompt_text: text,
        adapter,
        max_tokens: max,
        stop,
        stream: b.stream,
        chat: true,
        sampling,
    };
    complete(s.clone(), c).await
}

async fn list_adapters(State(s): State<Arc<AppState>>) -> Json<Json_> {
    let list = s.engine.shared.adapter_list();
    let resident = list.iter().filter(|a| a.resident).count();
    Json(json!({
        "object": "list",
        "data": list,
        "resident": resident,
        "max_resident": s.engine.max_adapters(),
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddAdapterBody {
    name: String,
    path: PathBuf,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

async fn add_adapter(
    State(s): State<Arc<AppState>>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> AppResult<Response> {
    let b: AddAdapterBody = parse_body(body)?;
    if !valid_name(&b.name) || b.name == s.model_id || b.name == "base" {
        return Err(ServeError::bad(
            "bad_name",
            format!(
                "adapter names are 1-64 characters of letters, digits, '-', '_' or '.', and not \
                 'base' or the base model's id; got '{}'",
                b.name
            ),
        )
        .into());
    }
    if !b.path.is_dir() {
        return Err(
            ServeError::bad("bad_path", format!("{} is not a folder", b.path.display())).into(),
        );
    }
    let info = s.engine.add_adapter(b.name, b.path).await?;
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

async fn remove_adapter(
    State(s): State<Arc<AppState>>,
    UrlPath(name): UrlPath<String>,
) -> AppResult<Json<Json_>> {
    s.engine.remove_adapter(name.clone()).await?;
    Ok(Json(json!({"deleted": name})))
}
