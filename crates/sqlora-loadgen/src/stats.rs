//! Summaries of the samples: percentiles, one row per timed mode ([`ModeStats`]) and the
//! prefix cache's first-against-later comparison ([`PrefixStats`]).

use serde_json::{json, Value};

use crate::load::{Outcome, Sample};

/// The `p`-th percentile (nearest rank) of sorted values; 0 for none.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The median of unsorted values; `None` for none.
pub fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    (!v.is_empty()).then(|| percentile(&v, 50.0))
}

/// One row of the results table: one timed mode.
#[derive(Debug, Clone, PartialEq)]
pub struct ModeStats {
    /// `mixed`, `single` or `serial`.
    pub mode: &'static str,
    /// Concurrent clients.
    pub clients: usize,
    /// Requests sent (timed).
    pub requests: usize,
    /// Answered with 200.
    pub ok: usize,
    /// Answered, but the answer says `valid: false`.
    pub invalid: usize,
    /// Shed by the server with 429.
    pub shed: usize,
    /// Any other failure.
    pub errors: usize,
    /// The first failure's message (or a 429 without `Retry-After`).
    pub first_error: Option<String>,
    /// From the first send to the last answer.
    pub wall_s: f64,
    /// Answered requests per second of wall time.
    pub req_per_s: f64,
    /// Generated tokens.
    pub tokens: Option<f64>,
    /// Where `tokens` came from: the answers' `usage` or the `/metrics` counter.
    pub tokens_source: &'static str,
    /// Median latency of the answered requests (client side, ms).
    pub p50_ms: f64,
    /// 99th percentile latency of the answered requests (ms).
    pub p99_ms: f64,
    /// Mean of the server's `timings.queue_ms`.
    pub mean_queue_ms: f64,
    /// Mean of the server's `timings.generate_ms`.
    pub mean_generate_ms: f64,
    /// Mean of the server's `timings.execute_ms`.
    pub mean_execute_ms: f64,
    /// Mean rows per decode step on the server (its `sqlora_batch_size` histogram).
    pub mean_batch: Option<f64>,
}

impl ModeStats {
    /// Generated tokens per second of wall time.
    pub fn tokens_per_s(&self) -> Option<f64> {
        self.tokens.map(|t| {
            if self.wall_s > 0.0 {
                t / self.wall_s
            } else {
                0.0
            }
        })
    }

    /// The row as the JSON object of `--json`.
    pub fn to_json(&self) -> Value {
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

/// Summarises the samples of one timed mode. Generated tokens come from the answers' own
/// `usage` when every answer has it, else from `metrics_tokens`; `mean_batch` is left for
/// the caller (it comes from `/metrics`).
pub fn summarise(
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
            Outcome::Ok(a) => {
                ok += 1;
                answered_tokens = answered_tokens.zip(a.completion_tokens).map(|(t, n)| t + n);
                invalid += usize::from(!a.valid);
                lat.push(s.latency_ms);
                q += a.queue_ms;
                g += a.generate_ms;
                x += a.execute_ms;
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

/// The first request to a (database, adapter) against the later ones.
#[derive(Debug, Clone, PartialEq)]
pub struct PrefixStats {
    /// The database.
    pub database: String,
    /// The adapter; `None` for the base model.
    pub adapter: Option<String>,
    /// The first request's latency (ms), if it was answered.
    pub cold_ms: Option<f64>,
    /// The first request's `generate_ms`.
    pub cold_generate_ms: Option<f64>,
    /// The median latency of the later answered requests.
    pub warm_ms: Option<f64>,
    /// The median `generate_ms` of the later answered requests.
    pub warm_generate_ms: Option<f64>,
    /// Prompt tokens the server took from its prefix cache (`usage.cached_prompt_tokens`):
    /// the first request's, and the median of the later ones'.
    pub cold_cached_tokens: Option<f64>,
    /// See `cold_cached_tokens`.
    pub warm_cached_tokens: Option<f64>,
    /// Prefix-cache misses (`sqlora_prefix_cache_total{result="miss"}`) during the first
    /// request and during the later ones; `None` without that metric.
    pub first_misses: Option<f64>,
    /// See `first_misses`.
    pub later_misses: Option<f64>,
    /// Requests not answered with 200.
    pub errors: usize,
}

impl PrefixStats {
    /// Summarises one target's samples (the first, then the later ones) and the prefix-cache
    /// miss counter read before the first, after the first and after the last request.
    pub fn from_samples(
        database: &str,
        adapter: Option<&str>,
        samples: &[Sample],
        miss_marks: [Option<f64>; 3],
    ) -> PrefixStats {
        let diff = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| b - a);
        let answered = |s: &Sample| match &s.outcome {
            Outcome::Ok(a) => Some((s.latency_ms, a.generate_ms, a.cached_tokens)),
            _ => None,
        };
        let cold = samples.first().and_then(answered);
        let warm: Vec<(f64, f64, Option<f64>)> =
            samples.iter().skip(1).filter_map(answered).collect();
        PrefixStats {
            database: database.to_string(),
            adapter: adapter.map(str::to_string),
            cold_ms: cold.map(|c| c.0),
            cold_generate_ms: cold.map(|c| c.1),
            warm_ms: median(warm.iter().map(|w| w.0).collect()),
            warm_generate_ms: median(warm.iter().map(|w| w.1).collect()),
            cold_cached_tokens: cold.and_then(|c| c.2),
            warm_cached_tokens: median(warm.iter().filter_map(|w| w.2).collect()),
            first_misses: diff(miss_marks[0], miss_marks[1]),
            later_misses: if samples.len() > 1 {
                diff(miss_marks[1], miss_marks[2])
            } else {
                None
            },
            errors: samples
                .iter()
                .filter(|s| !matches!(s.outcome, Outcome::Ok(_)))
                .count(),
        }
    }

    /// The row as the JSON object of `--json`.
    pub fn to_json(&self) -> Value {
        json!({
            "database": self.database, "adapter": self.adapter, "first_ms": self.cold_ms,
            "later_ms": self.warm_ms, "first_generate_ms": self.cold_generate_ms,
            "later_generate_ms": self.warm_generate_ms, "first_cached_tokens": self.cold_cached_tokens,
            "later_cached_tokens": self.warm_cached_tokens, "first_misses": self.first_misses,
            "later_misses": self.later_misses, "errors": self.errors,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::Answer;

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0], 50.0), 2.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![]), None);
    }

    fn ok(usage: Option<f64>) -> Sample {
        Sample {
            latency_ms: 10.0,
            outcome: Outcome::Ok(Answer {
                valid: true,
                queue_ms: 0.0,
                generate_ms: 5.0,
                execute_ms: 1.0,
                completion_tokens: usage,
                cached_tokens: None,
            }),
        }
    }

    #[test]
    fn tokens_come_from_metrics_when_answers_lack_usage() {
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
    fn a_429_without_retry_after_is_reported() {
        let shed = |retry_after| Sample {
            latency_ms: 1.0,
            outcome: Outcome::Shed { retry_after },
        };
        let s = summarise("mixed", 2, &[shed(true), ok(None)], 1.0, None);
        assert_eq!((s.shed, s.first_error), (1, None));
        let s = summarise("mixed", 2, &[shed(false), ok(None)], 1.0, None);
        assert_eq!(s.first_error.as_deref(), Some("a 429 without Retry-After"));
        assert_eq!((s.ok, s.errors, s.p50_ms), (1, 0, 10.0));
    }

    #[test]
    fn prefix_stats_without_later_requests() {
        let p =
            PrefixStats::from_samples("retail", None, &[ok(None)], [Some(1.0), Some(2.0), None]);
        assert_eq!((p.first_misses, p.later_misses), (Some(1.0), None));
        assert_eq!((p.cold_ms, p.warm_ms, p.errors), (Some(10.0), None, 0));
    }
}
