//! The results of a run ([`Report`]) as the JSON object of `--json` or as text tables.

use std::fmt::Write;

use serde_json::{json, Value};

use crate::plan::Target;
use crate::stats::{ModeStats, PrefixStats};

/// Everything one run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The server's base URL as given.
    pub url: String,
    /// Concurrent clients (N).
    pub clients: usize,
    /// Timed requests per mode.
    pub requests: usize,
    /// The adapters used (M of them).
    pub adapters: Vec<String>,
    /// The (database, adapter) pairs the clients were spread over.
    pub targets: Vec<Target>,
    /// The timed modes that ran, in order.
    pub modes: Vec<ModeStats>,
    /// The prefix mode's rows (empty when it did not run).
    pub prefix: Vec<PrefixStats>,
}

fn fmt_opt(v: Option<f64>, prec: usize) -> String {
    v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.prec$}"))
}

impl Report {
    /// The mode called `name`, if it ran and answered something.
    fn answered(&self, name: &str) -> Option<&ModeStats> {
        self.modes.iter().find(|s| s.mode == name && s.ok > 0)
    }

    /// Throughput (req/s) of mode `a` over mode `b`, when both answered something.
    pub fn ratio(&self, a: &str, b: &str) -> Option<f64> {
        self.answered(a)
            .zip(self.answered(b))
            .map(|(x, y)| x.req_per_s / y.req_per_s)
    }

    /// The JSON object `--json` prints.
    pub fn to_json(&self) -> Value {
        json!({
            "url": self.url,
            "clients": self.clients,
            "requests": self.requests,
            "adapters": self.adapters,
            "targets": self.targets.iter().map(|t| json!({"database": t.database, "adapter": t.adapter})).collect::<Vec<_>>(),
            "modes": self.modes.iter().map(ModeStats::to_json).collect::<Vec<_>>(),
            "mixed_over_single": self.ratio("mixed", "single"),
            "mixed_over_serial": self.ratio("mixed", "serial"),
            "prefix": self.prefix.iter().map(PrefixStats::to_json).collect::<Vec<_>>(),
        })
    }

    /// The text tables (one line per `\n`; empty when nothing ran).
    pub fn tables(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_tables(&mut out);
        out
    }

    fn write_tables(&self, out: &mut String) -> std::fmt::Result {
        let stats = &self.modes;
        if !stats.is_empty() {
            writeln!(
                out,
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
            )?;
            for s in stats {
                writeln!(
                    out,
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
                )?;
            }
            for s in stats {
                if let Some(e) = &s.first_error {
                    writeln!(out, "{}: first error: {e}", s.mode)?;
                }
            }
            writeln!(out, "adapters (M): {}", self.adapters.len())?;
            if let Some(r) = self.ratio("mixed", "single") {
                writeln!(out, "mixed / single throughput: {r:.2}x (req/s)")?;
            }
            if let (Some(m), Some(r)) = (self.answered("mixed"), self.ratio("mixed", "serial")) {
                writeln!(
                    out,
                    "mixed ({} clients) / serial throughput: {r:.2}x (req/s)",
                    m.clients
                )?;
            }
        }
        if !self.prefix.is_empty() {
            writeln!(out)?;
            writeln!(
                out,
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
            )?;
            for p in &self.prefix {
                writeln!(
                    out,
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
                )?;
            }
            writeln!(
                out,
                "(first = the first request to that database and adapter in this run; later = median \
                 of the next ones; gen = the server's generate_ms; cached = prompt tokens taken from the \
                 prefix cache; miss = prefix-cache misses seen in /metrics)"
            )?;
        }
        Ok(())
    }
}
