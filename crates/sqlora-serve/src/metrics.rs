//! Prometheus text-format metrics: counters, gauges and histograms with labels.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Upper bounds (seconds) of the latency histograms.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Upper bounds of the batch-size histogram.
pub const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

#[derive(Debug, Clone)]
enum Series {
    Value(f64),
    Histogram {
        bounds: &'static [f64],
        counts: Vec<u64>,
        sum: f64,
        count: u64,
    },
}

#[derive(Debug, Default)]
struct Inner {
    /// name -> (kind, help)
    families: BTreeMap<&'static str, (Kind, &'static str)>,
    /// (name, rendered labels) -> series
    series: BTreeMap<(&'static str, String), Series>,
}

/// A registry of metrics, safe to share between threads.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn render_labels(labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{{{}}}", parts.join(","))
}

fn fmt_f64(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

impl Metrics {
    /// The service's metric families, declared with their help texts.
    pub fn new() -> Metrics {
        let m = Metrics::default();
        {
            let mut g = m.lock();
            for (name, kind, help) in [
                ("sqlora_http_requests_total", Kind::Counter, "HTTP requests by route and status."),
                ("sqlora_http_request_duration_seconds", Kind::Histogram, "HTTP request latency by route."),
                ("sqlora_queue_depth", Kind::Gauge, "Generation requests waiting for a batch slot."),
                ("sqlora_running_requests", Kind::Gauge, "Generation requests in the running batch."),
                ("sqlora_batch_size", Kind::Histogram, "Rows per decode step."),
                ("sqlora_generated_tokens_total", Kind::Counter, "Tokens generated."),
                ("sqlora_prompt_tokens_total", Kind::Counter, "Prompt tokens, by whether they came from the prefix cache (cached) or were computed (computed)."),
                ("sqlora_tokens_per_second", Kind::Gauge, "Generated tokens per second over the last decode step."),
                ("sqlora_requests_by_adapter_total", Kind::Counter, "Generation requests by adapter (base = no adapter)."),
                ("sqlora_guard_rejections_total", Kind::Counter, "Generated queries refused by the SQL guard, by reason."),
                ("sqlora_execution_errors_total", Kind::Counter, "Guard-accepted queries that failed in SQLite, by kind."),
                ("sqlora_prefix_cache_total", Kind::Counter, "Prefix cache look-ups by result (hit, miss)."),
                ("sqlora_prefix_cache_bytes", Kind::Gauge, "Bytes of key/value cache held by the prefix cache."),
                ("sqlora_resident_adapters", Kind::Gauge, "Adapters resident in memory."),
                ("sqlora_adapter_evictions_total", Kind::Counter, "Adapters evicted to respect the resident cap."),
                ("sqlora_feedback_total", Kind::Counter, "Feedback stored, by verdict (correct, wrong, corrected)."),
                ("sqlora_feedback_store_errors_total", Kind::Counter, "Answers whose record could not be written to the feedback store."),
                ("sqlora_rejected_total", Kind::Counter, "Requests shed or abandoned, by reason (queue_full, deadline, disconnected)."),
            ] {
                g.families.insert(name, (kind, help));
            }
        }
        m
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain numbers behind: keep using them.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `v` to a counter.
    pub fn add(&self, name: &'static str, labels: &[(&str, &str)], v: f64) {
        let mut g = self.lock();
        let e = g
            .series
            .entry((name, render_labels(labels)))
            .or_insert(Series::Value(0.0));
        if let Series::Value(x) = e {
            *x += v;
        }
    }

    /// Adds one to a counter.
    pub fn inc(&self, name: &'static str, labels: &[(&str, &str)]) {
        self.add(name, labels, 1.0);
    }

    /// Sets a gauge.
    pub fn set(&self, name: &'static str, labels: &[(&str, &str)], v: f64) {
        self.lock()
            .series
            .insert((name, render_labels(labels)), Series::Value(v));
    }

    /// Records one observation in a histogram with the given bucket bounds.
    pub fn observe(
        &self,
        name: &'static str,
        labels: &[(&str, &str)],
        bounds: &'static [f64],
        v: f64,
    ) {
        let mut g = self.lock();
        let e = g
            .series
            .entry((name, render_labels(labels)))
            .or_insert_with(|| Series::Histogram {
                bounds,
                counts: vec![0; bounds.len()],
                sum: 0.0,
                count: 0,
            });
        if let Series::Histogram {
            bounds,
            counts,
            sum,
            count,
        } = e
        {
            for (c, &b) in counts.iter_mut().zip(bounds.iter()) {
                if v <= b {
                    *c += 1;
                }
            }
            *sum += v;
            *count += 1;
        }
    }

    /// The current value of a counter or gauge (0 when never set).
    pub fn value(&self, name: &'static str, labels: &[(&str, &str)]) -> f64 {
        match self.lock().series.get(&(name, render_labels(labels))) {
            Some(Series::Value(v)) => *v,
            _ => 0.0,
        }
    }

    /// Everything in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let g = self.lock();
        let mut out = String::new();
        for (name, (kind, help)) in &g.families {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {}", kind.as_str());
            for ((n, labels), s) in g.series.range((*name, String::new())..) {
                if n != name {
                    break;
                }
                match s {
                    Series::Value(v) => {
                        let _ = writeln!(out, "{name}{labels} {}", fmt_f64(*v));
                    }
                    Series::Histogram {
                        bounds,
                        counts,
                        sum,
                        count,
                    } => {
                        let inner = labels.trim_start_matches('{').trim_end_matches('}');
                        let sep = if inner.is_empty() { "" } else { "," };
                        for (b, c) in bounds.iter().zip(counts) {
                            let _ = writeln!(
                                out,
                                "{name}_bucket{{{inner}{sep}le=\"{}\"}} {c}",
                                fmt_f64(*b)
                            );
                        }
                        let _ = writeln!(out, "{name}_bucket{{{inner}{sep}le=\"+Inf\"}} {count}");
                        let _ = writeln!(out, "{name}_sum{labels} {}", fmt_f64(*sum));
                        let _ = writeln!(out, "{name}_count{labels} {count}");
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::new();
        m.inc(
            "sqlora_http_requests_total",
            &[("route", "/x"), ("status", "200")],
        );
        m.inc(
            "sqlora_http_requests_total",
            &[("route", "/x"), ("status", "200")],
        );
        m.observe("sqlora_batch_size", &[], BATCH_BUCKETS, 3.0);
        let text = m.render();
        assert!(text.contains("sqlora_http_requests_total{route=\"/x\",status=\"200\"} 2\n"));
        assert!(text.contains("sqlora_batch_size_bucket{le=\"2\"} 0\n"));
        assert!(text.contains("sqlora_batch_size_bucket{le=\"4\"} 1\n"));
        assert!(text.contains("sqlora_batch_size_bucket{le=\"+Inf\"} 1\n"));
        assert!(text.contains("sqlora_batch_size_count 1\n"));
        assert_eq!(
            m.value(
                "sqlora_http_requests_total",
                &[("route", "/x"), ("status", "200")]
            ),
            2.0
        );
    }
}
