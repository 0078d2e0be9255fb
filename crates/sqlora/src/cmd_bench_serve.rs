//! `sqlora bench serve`: a load generator for a running `sqlora serve`.
//!
//! N client threads send `POST /v1/query` over plain HTTP/1.1 (one connection per request,
//! `std::net::TcpStream`, no client library), each running its own queue of requests back to
//! back. One run measures, side by side:
//! - `prefix`: the prefix cache: for each (database, adapter) target, the latency of the first
//!   request against the median of the next few (run first, while the server's cache is cold
//!   for this run's targets — if the server already answered them, the "cold" is warm);
//! - `mixed`: N concurrent clients, client `c` on adapter `c mod M` (rows of one batch use
//!   different adapters);
//! - `single`: the same requests, every one on the first adapter;
//! - `serial`: the same requests as `mixed`, one at a time (concurrency 1).
//!
//! Each concurrent mode starts with one untimed warm-up request per distinct (database,
//! adapter) pair, so it measures serving, not first prefills. A 429 answer is counted as shed
//! (never retried); any other failure as an error. Tokens/s comes from the generated-tokens
//! counter in `GET /metrics`, read before and after each mode.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// One measurement of `sqlora bench serve`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    /// First request to each (database, adapter) against later ones.
    Prefix,
    /// N concurrent clients spread over M adapters.
    Mixed,
    /// The same load, every request on one adapter.
    Single,
    /// The same requests one at a time.
    Serial,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Prefix => "prefix",
            Mode::Mixed => "mixed",
            Mode::Single => "single",
            Mode::Serial => "serial",
        }
    }
}

/// Arguments of `sqlora bench serve`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchServeArgs {
    /// The server's base address.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Concurrent clients (N) in the mixed and single modes.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Timed requests per mode, spread over the clients.
    #[arg(long, default_value_t = 32)]
    pub requests: usize,
    /// Adapters to spread the clients over (comma-separated); default: every adapter the
    /// server lists. With none, clients spread over databases on the base model.
    #[arg(long, value_delimiter = ',')]
    pub adapters: Vec<String>,
    /// Use at most this many adapters (M).
    #[arg(long)]
    pub max_adapters: Option<usize>,
    /// Questions as JSONL with `question` and `db_id` (or `database`); default: each
    /// database's bundled test split, else questions made from its table names.
    #[arg(long)]
    pub questions: Option<PathBuf>,
    /// Which measurements to run (they always run in the order prefix, mixed, single, serial).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "prefix,mixed,single,serial"
    )]
    pub modes: Vec<Mode>,
    /// `candidates` sent with every request (default: the server's).
    #[arg(long)]
    pub candidates: Option<u32>,
    /// Ask for the SQL only (`execute: false`).
    #[arg(long)]
    pub no_execute: bool,
    /// Later requests per target in the prefix mode.
    #[arg(long, default_value_t = 3)]
    pub prefix_repeats: usize,
    /// Skip the untimed warm-up requests of the concurrent modes.
    #[arg(long)]
    pub no_warmup: bool,
    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout_s: u64,
    /// The counter of generated tokens in `GET /metrics` (tokens/s).
    #[arg(long, default_value = "sqlora_generated_tokens_total")]
    pub tokens_metric: String,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 over TcpStream
// ---------------------------------------------------------------------------------------------

/// Where the server listens.
#[derive(Debug, Clone)]
struct Endpoint {
    host: String,
    addr: SocketAddr,
}

fn parse_url(url: &str) -> Result<Endpoint> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("--url must start with http:// (got '{url}')"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        bail!("--url has no host: '{url}'");
    }
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .with_context(|| format!("resolving {with_port}"))?
        .next()
        .with_context(|| format!("{with_port} resolves to no address"))?;
    Ok(Endpoint {
        host: authority.to_string(),
        addr,
    })
}

/// A parsed HTTP response.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    /// The first value of a header (names are kept lower-case).
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Result<Value> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "HTTP {}: the body is not JSON: {}",
                self.status,
                String::from_utf8_lossy(&self.body[..self.body.len().min(200)])
            )
        })
    }

    /// The server's `{"error":{"message"}}`, else the start of the body.
    fn error_message(&self) -> String {
        let from_json = serde_json::from_slice::<Value>(&self.body)
            .ok()
            .and_then(|v| {
                let e = v.get("error")?;
                let code = e.get("code").and_then(Value::as_str).unwrap_or("");
                let msg = e.get("message").and_then(Value::as_str).unwrap_or("");
                Some(format!("{code}: {msg}"))
            });
        let text = from_json.unwrap_or_else(|| {
            String::from_utf8_lossy(&self.body[..self.body.len().min(200)]).into_owned()
        });
        format!("HTTP {}: {}", self.status, text.trim())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Decodes a `Transfer-Encoding: chunked` body.
fn decode_chunked(mut data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = find(data, b"\r\n").context("chunked body: no chunk-size line")?;
        let size_text = std::str::from_utf8(&data[..line_end]).context("chunked body: size")?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .with_context(|| format!("chunked body: bad chunk size '{size_text}'"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size {
            bail!("chunked body: truncated chunk");
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size..];
        data = data.strip_prefix(b"\r\n").unwrap_or(data);
    }
}

/// Parses a complete response (the connection was closed by the server after it).
fn parse_response(raw: &[u8]) -> Result<Response> {
    let head_end = find(raw, b"\r\n\r\n").context("no end of HTTP headers in the response")?;
    let head = std::str::from_utf8(&raw[..head_end]).context("HTTP headers are not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .with_context(|| format!("bad HTTP status line '{status_line}'"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let rest = &raw[head_end + 4..];
    let body = if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        decode_chunked(rest)?
    } else if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        if rest.len() < len {
            bail!("response body truncated: {} of {len} bytes", rest.len());
        }
        rest[..len].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// One request on a fresh connection (`Connection: close`), read to the end.
fn http(
    ep: &Endpoint,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    timeout: Duration,
) -> Result<Response> {
    let mut stream = TcpStream::connect_timeout(&ep.addr, timeout)
        .with_context(|| format!("connecting to {}", ep.addr))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.set_nodelay(true)?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAccept: application/json\r\n",
        ep.host
    );
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    if let Some(b) = body {
        bytes.extend_from_slice(b);
    }
    stream.write_all(&bytes)?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .with_context(|| format!("reading the answer to {method} {path}"))?;
    parse_response(&raw)
}

fn get_json(ep: &Endpoint, path: &str, timeout: Duration) -> Result<Value> {
    let r = http(ep, "GET", path, None, timeout)?;
    if r.status != 200 {
        bail!("GET {path}: {}", r.error_message());
    }
    r.json()
}

/// The samples of a Prometheus text exposition: (metric name, label text, value).
fn samples(text: &str) -> Vec<(&str, &str, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            // Labels may hold spaces inside quotes; the value is the first token after '}'.
            let (series, rest) = match (l.find('{'), l.rfind('}')) {
                (Some(open), Some(close)) if open < close => {
                    (&l[..open], (&l[open + 1..close], &l[close + 1..]))
                }
                _ => {
                    let (name, rest) = l.split_once(char::is_whitespace)?;
                    (name, ("", rest))
                }
            };
            let value = rest.1.split_whitespace().next()?.parse::<f64>().ok()?;
            Some((series.trim(), rest.0, value))
        })
        .collect()
}

/// The sum over the label sets of `name` whose labels contain `label` (e.g. `result="miss"`);
/// `None` when no sample matches.
fn metric_sum(text: &str, name: &str, label: Option<&str>) -> Option<f64> {
    let v: Vec<f64> = samples(text)
        .into_iter()
        .filter(|(m, l, _)| *m == name && label.is_none_or(|want| l.contains(want)))
        .map(|(_, _, v)| v)
        .collect();
    (!v.is_empty()).then(|| v.iter().sum())
}

/// The generated-tokens counter: `name`, else the sum over non-histogram samples whose name
/// contains `generated_tokens`. `None` when neither exists.
fn tokens_counter(text: &str, name: &str) -> Option<f64> {
    metric_sum(text, name, None).or_else(|| {
        let loose: Vec<f64> = samples(text)
            .into_iter()
            .filter(|(m, _, _)| {
                m.contains("generated_tokens")
                    && !m.ends_with("_bucket")
                    && !m.ends_with("_sum")
                    && !m.ends_with("_count")
            })
            .map(|(_, _, v)| v)
            .collect();
        (!loose.is_empty()).then(|| loose.iter().sum())
    })
}

/// `GET /metrics` as text; `None` when the server has none.
fn metrics_text(ep: &Endpoint) -> Option<String> {
    let r = http(ep, "GET", "/metrics", None, Duration::from_secs(10)).ok()?;
    (r.status == 200).then(|| String::from_utf8_lossy(&r.body).into_owned())
}

/// What a mode reads from `/metrics` before and after it runs.
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    tokens: Option<f64>,
    batch_rows: Option<f64>,
    batch_steps: Option<f64>,
}

impl Counters {
    fn read(ep: &Endpoint, tokens_metric: &str) -> Counters {
        match metrics_text(ep) {
            Some(text) => Counters::parse(&text, tokens_metric),
            None => Counters::default(),
        }
    }

    fn parse(text: &str, tokens_metric: &str) -> Counters {
        // A declared family (its `# TYPE` line) without samples yet counts as zero.
        let declared = |family: &str, v: Option<f64>| {
            v.or_else(|| text.contains(&format!("# TYPE {family} ")).then_some(0.0))
        };
        Counters {
            tokens: declared(tokens_metric, tokens_counter(text, tokens_metric)),
            batch_rows: declared(
                "sqlora_batch_size",
                metric_sum(text, "sqlora_batch_size_sum", None),
            ),
            batch_steps: declared(
                "sqlora_batch_size",
                metric_sum(text, "sqlora_batch_size_count", None),
            ),
        }
    }

    /// Generated tokens and mean rows per decode step between two readings.
    fn delta(before: Counters, after: Counters) -> (Option<f64>, Option<f64>) {
        let d = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| (a - b).max(0.0));
        let tokens = d(after.tokens, before.tokens);
        let rows = d(after.batch_rows, before.batch_rows);
        let steps = d(after.batch_steps, before.batch_steps);
        let mean_batch = rows.zip(steps).and_then(|(r, s)| (s > 0.0).then(|| r / s));
        (tokens, mean_batch)
    }
}

// ---------------------------------------------------------------------------------------------
// The plan: which requests each client sends
// ---------------------------------------------------------------------------------------------

/// One `POST /v1/query`.
#[derive(Debug, Clone, PartialEq)]
struct QueryReq {
    database: String,
    question: String,
    adapter: Option<String>,
}

/// A (database, adapter) pair the clients are spread over.
#[derive(Debug, Clone)]
struct Target {
    database: String,
    adapter: Option<String>,
}

/// Pairs each adapter with a database: the one that names it as its adapter, else the one of
/// the same name, else the databases in turn. With no adapters, every database on the base.
fn targets(databases: &[(String, Option<String>)], adapters: &[String]) -> Vec<Target> {
    if adapters.is_empty() {
        return databases
            .iter()
            .map(|(d, _)| Target {
                database: d.clone(),
                adapter: None,
            })
            .collect();
    }
    adapters
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let db = databases
                .iter()
                .find(|(_, own)| own.as_deref() == Some(a.as_str()))
                .or_else(|| databases.iter().find(|(d, _)| d == a))
                .unwrap_or(&databases[i % databases.len()]);
            Target {
                database: db.0.clone(),
                adapter: Some(a.clone()),
            }
        })
        .collect()
}

/// The timed requests of the mixed mode, one queue per client: client `c` asks target
/// `c mod T`, questions of its database in turn; request `j` goes to client `j mod N`.
fn mixed_plan(
    targets: &[Target],
    questions: &BTreeMap<String, Vec<String>>,
    clients: usize,
    requests: usize,
) -> Vec<Vec<QueryReq>> {
    let mut queues = vec![Vec::new(); clients];
    let mut next_q: BTreeMap<&str, usize> = BTreeMap::new();
    for j in 0..requests {
        let c = j % clients;
        let t = &targets[c % targets.len()];
        let qs = &questions[&t.database];
        let k = next_q.entry(t.database.as_str()).or_insert(0);
        let question = qs[*k % qs.len()].clone();
        *k += 1;
        queues[c].push(QueryReq {
            database: t.database.clone(),
            question,
            adapter: t.adapter.clone(),
        });
    }
    queues
}

/// The same queues on one target: with adapters, every request keeps its database and
/// question but uses the first adapter; without, every client asks the first database.
fn single_plan(
    mixed: &[Vec<QueryReq>],
    first: &Target,
    questions: &BTreeMap<String, Vec<String>>,
) -> Vec<Vec<QueryReq>> {
    let mut k = 0usize;
    mixed
        .iter()
        .map(|q| {
            q.iter()
                .map(|r| {
                    if first.adapter.is_some() {
                        QueryReq {
                            adapter: first.adapter.clone(),
                            ..r.clone()
                        }
                    } else {
                        let qs = &questions[&first.database];
                        k += 1;
                        QueryReq {
                            database: first.database.clone(),
                            question: qs[(k - 1) % qs.len()].clone(),
                            adapter: None,
                        }
                    }
                })
                .collect()
        })
        .collect()
}

/// The mixed mode's requests in the order they were issued, for one client.
fn serial_plan(mixed: &[Vec<QueryReq>]) -> Vec<Vec<QueryReq>> {
    let longest = mixed.iter().map(Vec::len).max().unwrap_or(0);
    let mut all = Vec::new();
    for i in 0..longest {
        for q in mixed {
            if let Some(r) = q.get(i) {
                all.push(r.clone());
            }
        }
    }
    vec![all]
}

/// Questions per database: from `--questions`, else `datasets/<db>/test.jsonl` (dev, train),
/// else made from the table names the server lists.
fn load_questions(
    args: &BenchServeArgs,
    dbs: &[Value],
    wanted: &BTreeSet<String>,
) -> Result<BTreeMap<String, Vec<String>>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let parse_jsonl = |text: &str, out: &mut BTreeMap<String, Vec<String>>, default_db: &str| {
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let db = v
                .get("db_id")
                .or_else(|| v.get("database"))
                .and_then(Value::as_str)
                .unwrap_or(default_db);
            if let Some(q) = v.get("question").and_then(Value::as_str) {
                if wanted.contains(db) && !q.trim().is_empty() {
                    out.entry(db.to_string()).or_default().push(q.to_string());
                }
            }
        }
    };
    if let Some(path) = &args.questions {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading questions from {}", path.display()))?;
        parse_jsonl(&text, &mut out, "");
    } else {
        for db in wanted {
            for split in ["test", "dev", "train"] {
                let file = crate::paths::datasets_dir()
                    .join(db)
                    .join(format!("{split}.jsonl"));
                if let Ok(text) = std::fs::read_to_string(&file) {
                    parse_jsonl(&text, &mut out, db);
                    if out.contains_key(db) {
                        break;
                    }
                }
            }
        }
    }
    for db in wanted {
        if out.get(db).is_some_and(|q| !q.is_empty()) {
            continue;
        }
        let tables: Vec<String> = dbs
            .iter()
            .find(|d| d.get("name").and_then(Value::as_str) == Some(db.as_str()))
            .and_then(|d| d.get("tables"))
            .and_then(Value::as_array)
            .map(|ts| {
                ts.iter()
                    .filter_map(|t| t.get("name").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let made: Vec<String> = tables
            .iter()
            .flat_map(|t| {
                [
                    format!("How many rows are in the {t} table?"),
                    format!("List the first five rows of {t}."),
                ]
            })
            .collect();
        if made.is_empty() {
            bail!("no questions for database '{db}': give --questions FILE.jsonl");
        }
        out.insert(db.clone(), made);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Running requests and summarising
// ---------------------------------------------------------------------------------------------

/// What happened to one request.
#[derive(Debug, Clone)]
enum Outcome {
    /// 200, with the answer's `valid`, server timings (ms) and token counts (`usage`).
    Ok {
        valid: bool,
        queue_ms: f64,
        generate_ms: f64,
        execute_ms: f64,
        completion_tokens: Option<f64>,
        cached_tokens: Option<f64>,
    },
    /// 429: the server shed it; whether it said when to retry (`Retry-After`).
    Shed { retry_after: bool },
    /// Anything else.
    Error(String),
}

#[derive(Debug, Clone)]
struct Sample {
    latency_ms: f64,
    outcome: Outcome,
}

fn query_body(r: &QueryReq, args: &BenchServeArgs) -> Vec<u8> {
    let mut body = json!({
        "database": r.database,
        "question": r.question,
        "execute": !args.no_execute,
    });
    if let Some(a) = &r.adapter {
        body["adapter"] = json!(a);
    }
    if let Some(c) = args.candidates {
        body["candidates"] = json!(c);
    }
    body.to_string().into_bytes()
}

fn send_query(ep: &Endpoint, r: &QueryReq, args: &BenchServeArgs) -> Sample {
    let timeout = Duration::from_secs(args.timeout_s.max(1));
    let body = query_body(r, args);
    let t = Instant::now();
    let result = http(ep, "POST", "/v1/query", Some(&body), timeout);
    let latency_ms = t.elapsed().as_secs_f64() * 1e3;
    let outcome = match result {
        Err(e) => Outcome::Error(format!("{e:#}")),
        Ok(resp) if resp.status == 429 => Outcome::Shed {
            retry_after: resp.header("retry-after").is_some(),
        },
        Ok(resp) if resp.status != 200 => Outcome::Error(resp.error_message()),
        Ok(resp) => match resp.json() {
            Err(e) => Outcome::Error(format!("{e:#}")),
            Ok(v) => {
                let t = v.get("timings").cloned().unwrap_or(Value::Null);
                let ms = |k: &str| t.get(k).and_then(Value::as_f64).unwrap_or(0.0);
                let usage = |k: &str| {
                    v.get("usage")
                        .and_then(|u| u.get(k))
                        .and_then(Value::as_f64)
                };
                Outcome::Ok {
                    valid: v.get("valid").and_then(Value::as_bool).unwrap_or(false),
                    queue_ms: ms("queue_ms"),
                    generate_ms: ms("generate_ms"),
                    execute_ms: ms("execute_ms"),
                    completion_tokens: usage("completion_tokens"),
                    cached_tokens: usage("cached_prompt_tokens"),
                }
            }
        },
    };
    Sample {
        latency_ms,
        outcome,
    }
}

/// Runs every queue on its own thread at once, each back to back; returns the samples and
/// the wall time from the first send to the last answer.
fn run_queues(
    ep: &Endpoint,
    queues: &[Vec<QueryReq>],
    args: &BenchServeArgs,
) -> (Vec<Sample>, f64) {
    let start = Instant::now();
    let samples = std::thread::scope(|s| {
        let handles: Vec<_> = queues
            .iter()
            .map(|q| {
                s.spawn(move || {
                    q.iter()
                        .map(|r| send_query(ep, r, args))
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

/// The `p`-th percentile (nearest rank) of sorted values; 0 for none.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// One row of the results table.
#[derive(Debug, Clone)]
struct ModeStats {
    mode: &'static str,
    clients: usize,
    requests: usize,
    ok: usize,
    invalid: usize,
    shed: usize,
    errors: usize,
    first_error: Option<String>,
    wall_s: f64,
    req_per_s: f64,
    tokens: Option<f64>,
    /// Where `tokens` came from: the answers' `usage` or the `/metrics` counter.
    tokens_source: &'static str,
    p50_ms: f64,
    p99_ms: f64,
    mean_queue_ms: f64,
    mean_generate_ms: f64,
    mean_execute_ms: f64,
    /// Mean rows per decode step on the server (its `sqlora_batch_size` histogram).
    mean_batch: Option<f64>,
}

impl ModeStats {
    fn tokens_per_s(&self) -> Option<f64> {
        self.tokens.map(|t| {
            if self.wall_s > 0.0 {
                t / self.wall_s
            } else {
                0.0
            }
        })
    }

    fn to_json(&self) -> Value {
        json!({
            "mode": self.mode, "clients": self.clients, "requests": self.requests,
            "ok": self.ok, "invalid": self.invalid, "shed_429": self.shed, "errors": self.errors,
            "first_error": self.first_error, "wall_s": self.wall_s, "req_per_s": self.req_per_s,
            "generated_tokens": self.tokens, "tokens_source": self.tokens_source,
            "tokens_per_s": self.tokens_per_s(),
            "p50_ms": self.p50_ms, "p99_ms": self.p99_ms, "mean_queue_ms": self.mean_queue_ms,
            "mean_generate_ms": self.mean_generate_ms, "mean_execute_ms": self.mean_execute_ms,
            "mean_batch_rows": self.mean_batch,
        })
    }
}

fn summarise(
    mode: &'static str,
    clients: usize,
    samples: &[Sample],
    wall_s: f64,
    metrics_tokens: Option<f64>,
) -> ModeStats {
    let mut lat = Vec::new();
    let mut answered_tokens = Some(0.0);
    let (mut ok, mut invalid, mut shed, mut errors) = (0, 0, 0, 0);
    let (mut q, mut g, mut x) = (0.0, 0.0, 0.0);
    let mut first_error = None;
    for s in samples {
        match &s.outcome {
            Outcome::Ok {
                valid,
                queue_ms,
                generate_ms,
                execute_ms,
                completion_tokens,
                ..
            } => {
                ok += 1;
                answered_tokens = answered_tokens.zip(*completion_tokens).map(|(a, b)| a + b);
                invalid += usize::from(!valid);
                lat.push(s.latency_ms);
                q += queue_ms;
                g += generate_ms;
                x += execute_ms;
            }
            Outcome::Shed { retry_after } => {
                shed += 1;
                if !retry_after {
                    first_error.get_or_insert_with(|| "a 429 without Retry-After".to_string());
                }
            }
            Outcome::Error(e) => {
                errors += 1;
                first_error.get_or_insert_with(|| e.clone());
            }
        }
    }
    lat.sort_by(f64::total_cmp);
    let mean = |v: f64| if ok > 0 { v / ok as f64 } else { 0.0 };
    // Generated tokens: the answers' own `usage` when every answer has it, else /metrics.
    let (tokens, tokens_source) = match answered_tokens.filter(|_| ok > 0) {
        Some(t) => (Some(t), "answers"),
        None => (metrics_tokens, "metrics"),
    };
    ModeStats {
        mode,
        clients,
        requests: samples.len(),
        ok,
        invalid,
        shed,
        errors,
        first_error,
        wall_s,
        req_per_s: if wall_s > 0.0 {
            ok as f64 / wall_s
        } else {
            0.0
        },
        tokens,
        tokens_source,
        p50_ms: percentile(&lat, 50.0),
        p99_ms: percentile(&lat, 99.0),
        mean_queue_ms: mean(q),
        mean_generate_ms: mean(g),
        mean_execute_ms: mean(x),
        mean_batch: None,
    }
}

/// The first request to a target against the later ones.
#[derive(Debug, Clone)]
struct PrefixStats {
    database: String,
    adapter: Option<String>,
    cold_ms: Option<f64>,
    cold_generate_ms: Option<f64>,
    warm_ms: Option<f64>,
    warm_generate_ms: Option<f64>,
    /// Prompt tokens the server took from its prefix cache (`usage.cached_prompt_tokens`):
    /// the first request's, and the median of the later ones'.
    cold_cached_tokens: Option<f64>,
    warm_cached_tokens: Option<f64>,
    /// Prefix-cache misses (`sqlora_prefix_cache_total{result="miss"}`) during the first
    /// request and during the later ones; `None` without that metric.
    first_misses: Option<f64>,
    later_misses: Option<f64>,
    errors: usize,
}

fn prefix_mode(
    ep: &Endpoint,
    targets: &[Target],
    questions: &BTreeMap<String, Vec<String>>,
    args: &BenchServeArgs,
) -> Vec<PrefixStats> {
    targets
        .iter()
        .map(|t| {
            let qs = &questions[&t.database];
            // A counter the server has not touched yet is absent from /metrics: zero. A
            // server without /metrics, or without the prefix-cache metric, gives `None`.
            let misses = || {
                metrics_text(ep).and_then(|m| {
                    m.contains("sqlora_prefix_cache_total").then(|| {
                        metric_sum(&m, "sqlora_prefix_cache_total", Some("\"miss\"")).unwrap_or(0.0)
                    })
                })
            };
            let mut samples = Vec::new();
            let mut miss_marks = vec![misses()];
            for i in 0..=args.prefix_repeats {
                let r = QueryReq {
                    database: t.database.clone(),
                    question: qs[i % qs.len()].clone(),
                    adapter: t.adapter.clone(),
                };
                samples.push(send_query(ep, &r, args));
                if i == 0 || i == args.prefix_repeats {
                    miss_marks.push(misses());
                }
            }
            let diff = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| b - a);
            let first_misses = diff(miss_marks[0], miss_marks[1]);
            let later_misses = if args.prefix_repeats > 0 {
                diff(miss_marks[1], miss_marks[2])
            } else {
                None
            };
            let ok = |s: &Sample| match s.outcome {
                Outcome::Ok {
                    generate_ms,
                    cached_tokens,
                    ..
                } => Some((s.latency_ms, generate_ms, cached_tokens)),
                _ => None,
            };
            let cold = samples.first().and_then(ok);
            let warm: Vec<(f64, f64, Option<f64>)> =
                samples.iter().skip(1).filter_map(ok).collect();
            let median = |mut v: Vec<f64>| {
                v.sort_by(f64::total_cmp);
                (!v.is_empty()).then(|| percentile(&v, 50.0))
            };
            let warm_lat = median(warm.iter().map(|w| w.0).collect());
            let warm_gen = median(warm.iter().map(|w| w.1).collect());
            let warm_cached = median(warm.iter().filter_map(|w| w.2).collect());
            PrefixStats {
                database: t.database.clone(),
                adapter: t.adapter.clone(),
                cold_ms: cold.map(|c| c.0),
                cold_generate_ms: cold.map(|c| c.1),
                warm_ms: warm_lat,
                warm_generate_ms: warm_gen,
                cold_cached_tokens: cold.and_then(|c| c.2),
                warm_cached_tokens: warm_cached,
                first_misses,
                later_misses,
                errors: samples
                    .iter()
                    .filter(|s| !matches!(s.outcome, Outcome::Ok { .. }))
                    .count(),
            }
        })
        .collect()
}

/// One untimed request per distinct (database, adapter) pair of the queues.
fn warm_up(ep: &Endpoint, queues: &[Vec<QueryReq>], args: &BenchServeArgs) {
    let mut seen = BTreeSet::new();
    for r in queues.iter().flatten() {
        if seen.insert((r.database.clone(), r.adapter.clone())) {
            send_query(ep, r, args);
        }
    }
}

fn timed_mode(
    ep: &Endpoint,
    mode: Mode,
    queues: &[Vec<QueryReq>],
    args: &BenchServeArgs,
) -> ModeStats {
    if !args.no_warmup {
        warm_up(ep, queues, args);
    }
    let before = Counters::read(ep, &args.tokens_metric);
    let (samples, wall) = run_queues(ep, queues, args);
    let after = Counters::read(ep, &args.tokens_metric);
    let (tokens, mean_batch) = Counters::delta(before, after);
    let mut stats = summarise(mode.name(), queues.len(), &samples, wall, tokens);
    stats.mean_batch = mean_batch;
    stats
}

fn fmt_opt(v: Option<f64>, prec: usize) -> String {
    v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.prec$}"))
}

fn print_tables(stats: &[ModeStats], prefix: &[PrefixStats], adapters: usize) {
    if !stats.is_empty() {
        println!(
            "{:<7} {:>7} {:>8} {:>5} {:>7} {:>5} {:>6} {:>8} {:>8} {:>9} {:>9} {:>9} {:>10} {:>6}",
            "mode",
            "clients",
            "requests",
            "ok",
            "invalid",
            "429",
            "errors",
            "wall s",
            "req/s",
            "tokens/s",
            "p50 ms",
            "p99 ms",
            "gen ms avg",
            "batch"
        );
        for s in stats {
            println!(
                "{:<7} {:>7} {:>8} {:>5} {:>7} {:>5} {:>6} {:>8.2} {:>8.2} {:>9} {:>9.1} {:>9.1} {:>10.1} {:>6}",
                s.mode,
                s.clients,
                s.requests,
                s.ok,
                s.invalid,
                s.shed,
                s.errors,
                s.wall_s,
                s.req_per_s,
                fmt_opt(s.tokens_per_s(), 1),
                s.p50_ms,
                s.p99_ms,
                s.mean_generate_ms,
                fmt_opt(s.mean_batch, 2)
            );
        }
        for s in stats.iter().filter(|s| s.first_error.is_some()) {
            println!(
                "{}: first error: {}",
                s.mode,
                s.first_error.as_deref().unwrap_or_default()
            );
        }
        let get = |m: &str| stats.iter().find(|s| s.mode == m && s.ok > 0);
        println!("adapters (M): {adapters}");
        if let (Some(m), Some(s)) = (get("mixed"), get("single")) {
            println!(
                "mixed / single throughput: {:.2}x (req/s)",
                m.req_per_s / s.req_per_s
            );
        }
        if let (Some(m), Some(s)) = (get("mixed"), get("serial")) {
            println!(
                "mixed ({} clients) / serial throughput: {:.2}x (req/s)",
                m.clients,
                m.req_per_s / s.req_per_s
            );
        }
    }
    if !prefix.is_empty() {
        println!();
        println!(
            "{:<12} {:<12} {:>9} {:>9} {:>9} {:>9} {:>12} {:>12} {:>10} {:>10} {:>6}",
            "database",
            "adapter",
            "first ms",
            "later ms",
            "first gen",
            "later gen",
            "first cached",
            "later cached",
            "first miss",
            "later miss",
            "errors"
        );
        for p in prefix {
            println!(
                "{:<12} {:<12} {:>9} {:>9} {:>9} {:>9} {:>12} {:>12} {:>10} {:>10} {:>6}",
                p.database,
                p.adapter.as_deref().unwrap_or("(base)"),
                fmt_opt(p.cold_ms, 1),
                fmt_opt(p.warm_ms, 1),
                fmt_opt(p.cold_generate_ms, 1),
                fmt_opt(p.warm_generate_ms, 1),
                fmt_opt(p.cold_cached_tokens, 0),
                fmt_opt(p.warm_cached_tokens, 0),
                fmt_opt(p.first_misses, 0),
                fmt_opt(p.later_misses, 0),
                p.errors
            );
        }
        println!(
            "(first = the first request to that database and adapter in this run; later = median \
             of the next ones; gen = the server's generate_ms; cached = prompt tokens taken from the \
             prefix cache; miss = prefix-cache misses seen in /metrics)"
        );
    }
}

/// Runs `sqlora bench serve`.
pub fn run(args: &BenchServeArgs) -> Result<()> {
    if args.clients == 0 || args.requests == 0 {
        bail!("--clients and --requests must be at least 1");
    }
    let ep = parse_url(&args.url)?;
    let timeout = Duration::from_secs(30);
    let dbs_json = get_json(&ep, "/v1/databases", timeout)
        .with_context(|| format!("is `sqlora serve` running at {}?", args.url))?;
    let dbs: Vec<Value> = dbs_json
        .get("data")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let databases: Vec<(String, Option<String>)> = dbs
        .iter()
        .filter_map(|d| {
            Some((
                d.get("name")?.as_str()?.to_string(),
                d.get("adapter").and_then(Value::as_str).map(str::to_string),
            ))
        })
        .collect();
    if databases.is_empty() {
        bail!("the server lists no databases");
    }
    let mut adapters = args.adapters.clone();
    if adapters.is_empty() {
        let list = get_json(&ep, "/v1/adapters", timeout)?;
        adapters = list
            .get("data")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.get("name").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
    }
    if let Some(m) = args.max_adapters {
        adapters.truncate(m);
    }
    let targets = targets(&databases, &adapters);
    let wanted: BTreeSet<String> = targets.iter().map(|t| t.database.clone()).collect();
    let questions = load_questions(args, &dbs, &wanted)?;

    let mixed = mixed_plan(&targets, &questions, args.clients, args.requests);
    let modes: BTreeSet<Mode> = args.modes.iter().copied().collect();
    let mut prefix = Vec::new();
    let mut stats = Vec::new();
    for mode in &modes {
        if !args.json {
            eprintln!("bench serve: {} ...", mode.name());
        }
        match mode {
            Mode::Prefix => {
                let used = targets.len().min(args.clients);
                prefix = prefix_mode(&ep, &targets[..used], &questions, args);
            }
            Mode::Mixed => stats.push(timed_mode(&ep, *mode, &mixed, args)),
            Mode::Single => {
                let single = single_plan(&mixed, &targets[0], &questions);
                stats.push(timed_mode(&ep, *mode, &single, args));
            }
            Mode::Serial => stats.push(timed_mode(&ep, *mode, &serial_plan(&mixed), args)),
        }
    }

    if args.json {
        let ratio = |a: &str, b: &str| {
            let f = |m: &str| stats.iter().find(|s| s.mode == m && s.ok > 0);
            f(a).zip(f(b)).map(|(x, y)| x.req_per_s / y.req_per_s)
        };
        let out = json!({
            "url": args.url,
            "clients": args.clients,
            "requests": args.requests,
            "adapters": adapters,
            "targets": targets.iter().map(|t| json!({"database": t.database, "adapter": t.adapter})).collect::<Vec<_>>(),
            "modes": stats.iter().map(ModeStats::to_json).collect::<Vec<_>>(),
            "mixed_over_single": ratio("mixed", "single"),
            "mixed_over_serial": ratio("mixed", "serial"),
            "prefix": prefix.iter().map(|p| json!({
                "database": p.database, "adapter": p.adapter, "first_ms": p.cold_ms,
                "later_ms": p.warm_ms, "first_generate_ms": p.cold_generate_ms,
                "later_generate_ms": p.warm_generate_ms, "first_cached_tokens": p.cold_cached_tokens,
                "later_cached_tokens": p.warm_cached_tokens, "first_misses": p.first_misses,
                "later_misses": p.later_misses, "errors": p.errors,
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_tables(&stats, &prefix, adapters.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0], 50.0), 2.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn parses_content_length_and_chunked_responses() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}trailing").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, b"{}".as_slice()));
        let r = parse_response(
            b"HTTP/1.1 429 Too Many Requests\r\nTransfer-Encoding: chunked\r\nRetry-After: 1\r\n\r\n4\r\n{\"a\"\r\n3;x=1\r\n:1}\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.status, 429);
        assert_eq!(r.body, b"{\"a\":1}");
        assert!(r.headers.contains(&("retry-after".into(), "1".into())));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort").is_err());
        assert!(parse_response(b"garbage").is_err());
    }

    #[test]
    fn reads_the_generated_tokens_counter() {
        let text = "# TYPE sqlora_generated_tokens_total counter\n\
                    sqlora_generated_tokens_total{adapter=\"a b\"} 10\n\
                    sqlora_generated_tokens_total{adapter=\"c\"} 5.5\n\
                    other_total 3\n";
        assert_eq!(
            tokens_counter(text, "sqlora_generated_tokens_total"),
            Some(15.5)
        );
        let loose = "x_generated_tokens 4\nx_generated_tokens_bucket{le=\"1\"} 100\n";
        assert_eq!(tokens_counter(loose, "missing"), Some(4.0));
        assert_eq!(tokens_counter("other 1\n", "missing"), None);
        let cache = "sqlora_prefix_cache_total{result=\"hit\"} 3\n\
                     sqlora_prefix_cache_total{result=\"miss\"} 2\n\
                     sqlora_batch_size_sum 12\nsqlora_batch_size_count 4\n";
        assert_eq!(
            metric_sum(cache, "sqlora_prefix_cache_total", Some("result=\"miss\"")),
            Some(2.0)
        );
        assert_eq!(
            metric_sum(cache, "sqlora_prefix_cache_total", None),
            Some(5.0)
        );
        assert_eq!(
            metric_sum(cache, "sqlora_batch_size_count", None),
            Some(4.0)
        );
        assert_eq!(metric_sum(cache, "sqlora_batch_size", None), None);
        // Declared families without samples yet read as zero; undeclared ones as unknown.
        let fresh =
            "# TYPE sqlora_batch_size histogram\n# TYPE sqlora_generated_tokens_total counter\n";
        let c = Counters::parse(fresh, "sqlora_generated_tokens_total");
        assert_eq!(
            (c.tokens, c.batch_rows, c.batch_steps),
            (Some(0.0), Some(0.0), Some(0.0))
        );
        let c = Counters::parse("other 1\n", "sqlora_generated_tokens_total");
        assert_eq!((c.tokens, c.batch_rows), (None, None));
        let later = Counters::parse(cache, "sqlora_generated_tokens_total");
        let (_, mean_batch) = Counters::delta(Counters::parse(fresh, "x"), later);
        assert_eq!(mean_batch, Some(3.0));
    }

    #[test]
    fn plans_spread_clients_over_adapters_and_keep_the_requests() {
        let dbs = vec![
            ("retail".to_string(), Some("retail".to_string())),
            ("hr".to_string(), None),
        ];
        let t = targets(&dbs, &["retail".into(), "general".into()]);
        assert_eq!(t[0].database, "retail");
        assert_eq!(t[1].database, "hr"); // no owner, no namesake: the databases in turn
        let mut qs = BTreeMap::new();
        qs.insert(
            "retail".to_string(),
            vec!["r1".to_string(), "r2".to_string()],
        );
        qs.insert("hr".to_string(), vec!["h1".to_string()]);
        let mixed = mixed_plan(&t, &qs, 4, 10);
        assert_eq!(mixed.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 2, 2]);
        for (c, q) in mixed.iter().enumerate() {
            for r in q {
                assert_eq!(r.adapter.as_deref(), t[c % 2].adapter.as_deref());
            }
        }
        assert_eq!(mixed[0][0].question, "r1");
        assert_eq!(mixed[2][0].question, "r2");
        let single = single_plan(&mixed, &t[0], &qs);
        assert!(single
            .iter()
            .flatten()
            .all(|r| r.adapter.as_deref() == Some("retail")));
        let serial = serial_plan(&mixed);
        assert_eq!(serial.len(), 1);
        assert_eq!(serial[0].len(), 10);
        assert_eq!(serial[0][1], mixed[1][0]);
        // Without adapters, clients spread over the databases on the base model.
        let base = targets(&dbs, &[]);
        assert!(base.iter().all(|t| t.adapter.is_none()));
        assert_eq!(base.len(), 2);
    }

    /// A loopback HTTP server that answers every 3rd query with 429 and one with 500.
    fn fake_server() -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Read the head, then the body by Content-Length.
                loop {
                    let n = s.read(&mut chunk).unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(end) = find(&buf, b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                let req = String::from_utf8_lossy(&buf).to_string();
                let (status, body) = if req.starts_with("GET /metrics") {
                    let n = h.load(Ordering::SeqCst);
                    (
                        "200 OK",
                        format!(
                            "sqlora_generated_tokens_total {}\nsqlora_batch_size_sum {}\nsqlora_batch_size_count {n}\n",
                            n * 7,
                            n * 2
                        ),
                    )
                } else if req.starts_with("POST /v1/query") {
                    let n = h.fetch_add(1, Ordering::SeqCst) + 1;
                    assert!(req.contains("\"database\":\"retail\""), "{req}");
                    if n.is_multiple_of(3) {
                        (
                            "429 Too Many Requests",
                            r#"{"error":{"code":"overloaded","message":"queue full"}}"#.to_string(),
                        )
                    } else if n == 5 {
                        (
                            "500 Internal Server Error",
                            r#"{"error":{"code":"internal","message":"boom"}}"#.to_string(),
                        )
                    } else {
                        (
                            "200 OK",
                            format!(
                                r#"{{"sql":"SELECT 1","valid":{},"columns":["1"],"rows":[[1]],"timings":{{"queue_ms":1,"generate_ms":20.5,"execute_ms":0.5}},"usage":{{"prompt_tokens":40,"cached_prompt_tokens":30,"completion_tokens":{n}}}}}"#,
                                n != 1
                            ),
                        )
                    }
                } else {
                    ("404 Not Found", "{}".to_string())
                };
                let retry = if status.starts_with("429") {
                    "Retry-After: 1\r\n"
                } else {
                    ""
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\n{retry}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes());
            }
        });
        (format!("http://{addr}"), hits)
    }

    fn args_for(url: &str) -> BenchServeArgs {
        BenchServeArgs {
            url: url.to_string(),
            clients: 2,
            requests: 6,
            adapters: vec![],
            max_adapters: None,
            questions: None,
            modes: vec![Mode::Mixed],
            candidates: Some(2),
            no_execute: false,
            prefix_repeats: 2,
            no_warmup: true,
            timeout_s: 10,
            tokens_metric: "sqlora_generated_tokens_total".into(),
            json: false,
        }
    }

    #[test]
    fn counts_ok_shed_and_errors_against_a_loopback_server() {
        let (url, hits) = fake_server();
        let args = args_for(&url);
        let ep = parse_url(&url).unwrap();
        let req = QueryReq {
            database: "retail".into(),
            question: "How many customers are there?".into(),
            adapter: Some("retail".into()),
        };
        let queues = vec![vec![req.clone(); 3], vec![req; 3]];
        let stats = timed_mode(&ep, Mode::Mixed, &queues, &args);
        assert_eq!(hits.load(Ordering::SeqCst), 6);
        assert_eq!(stats.requests, 6);
        assert_eq!(stats.shed, 2); // the 3rd and 6th
        assert_eq!(stats.errors, 1); // the 5th
        assert_eq!(stats.ok, 3);
        assert_eq!(stats.invalid, 1); // the 1st said valid: false
        assert!(stats.first_error.as_deref().unwrap().contains("boom"));
        assert_eq!(stats.tokens, Some(1.0 + 2.0 + 4.0)); // usage of the three answers
        assert_eq!(stats.tokens_source, "answers");
        assert_eq!(stats.mean_batch, Some(2.0)); // 12 rows over 6 steps
        assert!((stats.mean_generate_ms - 20.5).abs() < 1e-9);
        assert!(stats.p50_ms > 0.0 && stats.p99_ms >= stats.p50_ms);
        assert!(stats.req_per_s > 0.0);
    }

    #[test]
    fn tokens_come_from_metrics_when_answers_lack_usage() {
        let ok = |usage: Option<f64>| Sample {
            latency_ms: 10.0,
            outcome: Outcome::Ok {
                valid: true,
                queue_ms: 0.0,
                generate_ms: 5.0,
                execute_ms: 1.0,
                completion_tokens: usage,
                cached_tokens: None,
            },
        };
        let with = summarise("mixed", 1, &[ok(Some(3.0)), ok(Some(4.0))], 2.0, Some(99.0));
        assert_eq!((with.tokens, with.tokens_source), (Some(7.0), "answers"));
        assert_eq!(with.tokens_per_s(), Some(3.5));
        let without = summarise("mixed", 1, &[ok(Some(3.0)), ok(None)], 2.0, Some(99.0));
        assert_eq!(
            (without.tokens, without.tokens_source),
            (Some(99.0), "metrics")
        );
        let none = summarise("mixed", 1, &[], 2.0, None);
        assert_eq!((none.tokens, none.ok, none.req_per_s), (None, 0, 0.0));
    }

    #[test]
    fn prefix_mode_compares_the_first_request_with_later_ones() {
        let (url, hits) = fake_server();
        let mut args = args_for(&url);
        args.prefix_repeats = 2;
        let ep = parse_url(&url).unwrap();
        let t = Target {
            database: "retail".into(),
            adapter: None,
        };
        let mut qs = BTreeMap::new();
        qs.insert(
            "retail".to_string(),
            vec!["q1".to_string(), "q2".to_string()],
        );
        let p = prefix_mode(&ep, &[t], &qs, &args);
        assert_eq!(hits.load(Ordering::SeqCst), 3);
        assert_eq!(p.len(), 1);
        assert!(p[0].cold_ms.is_some() && p[0].warm_ms.is_some());
        assert_eq!(p[0].cold_generate_ms, Some(20.5));
        assert_eq!(p[0].warm_cached_tokens, Some(30.0));
        assert_eq!(p[0].errors, 1); // the third request was shed
        assert_eq!(p[0].first_misses, None); // no prefix-cache metric on this server
    }

    #[test]
    fn a_server_that_is_not_there_is_an_error_not_a_panic() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let err = run(&args_for(&url)).unwrap_err();
        assert!(
            format!("{err:#}").contains("is `sqlora serve` running"),
            "{err:#}"
        );
        assert!(parse_url("https://x").is_err());
        assert_eq!(parse_url("http://127.0.0.1:9/").unwrap().addr.port(), 9);
    }
}
