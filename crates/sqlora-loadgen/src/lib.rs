//! sqlora-loadgen: a load generator for a running `sqlora serve` (behind `sqlora bench serve`).
//!
//! N client threads send `POST /v1/query` over plain HTTP/1.1 ([`client`], one connection
//! per request), each running its own queue of requests back to back. One [`run`] measures,
//! side by side ([`Mode`]):
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
//! (never retried); any other failure as an error. Tokens/s comes from the answers' `usage`,
//! else from the generated-tokens counter in `GET /metrics` ([`metrics`]), read before and
//! after each mode.
//!
//! Modules: [`client`] (HTTP), [`plan`] (targets, questions, each mode's queues), [`load`]
//! (sending and timing), [`metrics`] (Prometheus text), [`stats`] (summaries), [`report`]
//! (JSON and tables).

pub mod client;
mod error;
pub mod load;
pub mod metrics;
pub mod plan;
pub mod report;
pub mod stats;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

pub use client::{Client, Endpoint};
pub use error::{chain, LoadgenError, Result};
pub use load::QueryOptions;
pub use report::Report;

/// One measurement of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
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
    /// The name in the results (`prefix`, `mixed`, `single`, `serial`).
    pub fn name(self) -> &'static str {
        match self {
            Mode::Prefix => "prefix",
            Mode::Mixed => "mixed",
            Mode::Single => "single",
            Mode::Serial => "serial",
        }
    }
}

/// What to run against which server.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The server's base address (`http://host[:port]`).
    pub url: String,
    /// Concurrent clients (N) in the mixed and single modes.
    pub clients: usize,
    /// Timed requests per mode, spread over the clients.
    pub requests: usize,
    /// Adapters to spread the clients over; empty: every adapter the server lists (and with
    /// none, the clients spread over databases on the base model).
    pub adapters: Vec<String>,
    /// Use at most this many adapters (M).
    pub max_adapters: Option<usize>,
    /// Questions as JSONL with `question` and `db_id` (or `database`); `None`: each
    /// database's split under `datasets_dir`, else questions made from its table names.
    pub questions: Option<PathBuf>,
    /// Where the bundled datasets live (`<dir>/<db>/test.jsonl`, ...).
    pub datasets_dir: PathBuf,
    /// Which measurements to run (always in the order prefix, mixed, single, serial).
    pub modes: Vec<Mode>,
    /// `candidates` sent with every request (`None`: the server's).
    pub candidates: Option<u32>,
    /// Ask for execution (`execute: true`) or the SQL only.
    pub execute: bool,
    /// Later requests per target in the prefix mode.
    pub prefix_repeats: usize,
    /// Send the untimed warm-up requests of the concurrent modes.
    pub warmup: bool,
    /// Per-request timeout (connect and every socket read or write).
    pub timeout: Duration,
    /// The counter of generated tokens in `GET /metrics`.
    pub tokens_metric: String,
}

impl Config {
    /// The query options every request of the run uses.
    pub fn query_options(&self) -> QueryOptions {
        QueryOptions {
            execute: self.execute,
            candidates: self.candidates,
            timeout: self.timeout,
        }
    }
}

/// The `data` array of a listing (`/v1/databases`, `/v1/adapters`); empty without one.
fn data(list: &Value) -> &[Value] {
    list.get("data")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// Runs the configured modes against the server and returns what they measured.
/// `on_mode` is called as each mode starts (for progress output).
pub fn run(config: &Config, mut on_mode: impl FnMut(Mode)) -> Result<Report> {
    if config.clients == 0 || config.requests == 0 {
        return Err(LoadgenError::NoLoad);
    }
    let client = Client::connect(&config.url)?;
    let timeout = Duration::from_secs(30);
    let dbs = client
        .get_json("/v1/databases", timeout)
        .map_err(|e| LoadgenError::Unreachable {
            url: config.url.clone(),
            source: Box::new(e),
        })?;
    let dbs = data(&dbs);
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
        return Err(LoadgenError::NoDatabases);
    }
    let mut adapters = config.adapters.clone();
    if adapters.is_empty() {
        let list = client.get_json("/v1/adapters", timeout)?;
        adapters = data(&list)
            .iter()
            .filter_map(|x| x.get("name").and_then(Value::as_str))
            .map(str::to_string)
            .collect();
    }
    if let Some(m) = config.max_adapters {
        adapters.truncate(m);
    }
    let targets = plan::targets(&databases, &adapters);
    let wanted: BTreeSet<String> = targets.iter().map(|t| t.database.clone()).collect();
    let questions = plan::load_questions(
        config.questions.as_deref(),
        &config.datasets_dir,
        dbs,
        &wanted,
    )?;

    let opts = config.query_options();
    let mixed = plan::mixed_plan(&targets, &questions, config.clients, config.requests);
    let modes: BTreeSet<Mode> = config.modes.iter().copied().collect();
    let mut prefix = Vec::new();
    let mut stats = Vec::new();
    let timed = |mode: Mode, queues: &[plan::Queue]| {
        load::timed_mode(
            &client,
            mode.name(),
            queues,
            &opts,
            config.warmup,
            &config.tokens_metric,
        )
    };
    for &mode in &modes {
        on_mode(mode);
        match mode {
            Mode::Prefix => {
                let used = targets.len().min(config.clients);
                prefix = load::prefix_mode(
                    &client,
                    &targets[..used],
                    &questions,
                    config.prefix_repeats,
                    &opts,
                );
            }
            Mode::Mixed => stats.push(timed(mode, &mixed)),
            Mode::Single => {
                let single = plan::single_plan(&mixed, &targets[0], &questions);
                stats.push(timed(mode, &single));
            }
            Mode::Serial => stats.push(timed(mode, &plan::serial_plan(&mixed))),
        }
    }
    Ok(Report {
        url: config.url.clone(),
        clients: config.clients,
        requests: config.requests,
        adapters,
        targets,
        modes: stats,
        prefix,
    })
}
