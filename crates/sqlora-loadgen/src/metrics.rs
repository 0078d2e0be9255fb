//! Reading the server's Prometheus text exposition (`GET /metrics`).
//!
//! A small parser of its own rather than a crate: the load generator needs only sample
//! values summed by name and label text, plus whether a family is declared (`# TYPE`) before
//! it has any sample, which the parser crates do not expose (prometheus-parse, for one, keeps
//! no `# TYPE` lines and splits label values at every `,` and `=`).

use crate::client::Client;

/// One sample line: metric name, the text between the braces (empty without labels), value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PromSample<'a> {
    /// The metric name (`sqlora_batch_size_sum`, ...).
    pub name: &'a str,
    /// The label text as written, e.g. `result="miss",adapter="a b"`.
    pub labels: &'a str,
    /// The value.
    pub value: f64,
}

/// The samples of a Prometheus text exposition; comments, blank lines and lines whose value
/// does not parse are skipped.
pub fn samples(text: &str) -> Vec<PromSample<'_>> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            // Labels may hold spaces inside quotes; the value is the first token after '}'.
            let (name, labels, rest) = match (l.find('{'), l.rfind('}')) {
                (Some(open), Some(close)) if open < close => {
                    (&l[..open], &l[open + 1..close], &l[close + 1..])
                }
                _ => {
                    let (name, rest) = l.split_once(char::is_whitespace)?;
                    (name, "", rest)
                }
            };
            let value = rest.split_whitespace().next()?.parse::<f64>().ok()?;
            Some(PromSample {
                name: name.trim(),
                labels,
                value,
            })
        })
        .collect()
}

/// The sum of the values that pass `keep`; `None` when none does.
fn sum_where(text: &str, keep: impl Fn(&PromSample<'_>) -> bool) -> Option<f64> {
    let v: Vec<f64> = samples(text)
        .into_iter()
        .filter(|s| keep(s))
        .map(|s| s.value)
        .collect();
    (!v.is_empty()).then(|| v.iter().sum())
}

/// The sum over the label sets of `name` whose label text contains `label` (e.g.
/// `result="miss"`); `None` when no sample matches.
pub fn metric_sum(text: &str, name: &str, label: Option<&str>) -> Option<f64> {
    sum_where(text, |s| {
        s.name == name && label.is_none_or(|want| s.labels.contains(want))
    })
}

/// The generated-tokens counter: `name`, else the sum over non-histogram samples whose name
/// contains `generated_tokens`. `None` when neither exists.
pub fn tokens_counter(text: &str, name: &str) -> Option<f64> {
    metric_sum(text, name, None).or_else(|| {
        sum_where(text, |s| {
            s.name.contains("generated_tokens")
                && !s.name.ends_with("_bucket")
                && !s.name.ends_with("_sum")
                && !s.name.ends_with("_count")
        })
    })
}

/// Whether the exposition declares the family `name` (a `# TYPE name ...` line).
pub fn declares(text: &str, family: &str) -> bool {
    text.contains(&format!("# TYPE {family} "))
}

/// Prefix-cache misses so far (`sqlora_prefix_cache_total{result="miss"}`): zero while the
/// server has the metric but has not counted a miss yet, `None` without the metric.
pub fn prefix_misses(text: &str) -> Option<f64> {
    text.contains("sqlora_prefix_cache_total")
        .then(|| metric_sum(text, "sqlora_prefix_cache_total", Some("\"miss\"")).unwrap_or(0.0))
}

/// What a timed mode reads from `/metrics` before and after it runs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counters {
    /// Generated tokens so far.
    pub tokens: Option<f64>,
    /// Rows over all decode steps (`sqlora_batch_size_sum`).
    pub batch_rows: Option<f64>,
    /// Decode steps (`sqlora_batch_size_count`).
    pub batch_steps: Option<f64>,
}

impl Counters {
    /// Reads the counters now; all `None` when the server has no `/metrics`.
    pub fn read(client: &Client, tokens_metric: &str) -> Counters {
        match client.metrics_text() {
            Some(text) => Counters::parse(&text, tokens_metric),
            None => Counters::default(),
        }
    }

    /// The counters in an exposition. A declared family without samples yet counts as zero.
    pub fn parse(text: &str, tokens_metric: &str) -> Counters {
        let declared =
            |family: &str, v: Option<f64>| v.or_else(|| declares(text, family).then_some(0.0));
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
    pub fn delta(before: Counters, after: Counters) -> (Option<f64>, Option<f64>) {
        let d = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| (a - b).max(0.0));
        let tokens = d(after.tokens, before.tokens);
        let rows = d(after.batch_rows, before.batch_rows);
        let steps = d(after.batch_steps, before.batch_steps);
        let mean_batch = rows.zip(steps).and_then(|(r, s)| (s > 0.0).then(|| r / s));
        (tokens, mean_batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(prefix_misses(cache), Some(2.0));
        assert_eq!(
            prefix_misses("sqlora_prefix_cache_total{result=\"hit\"} 1\n"),
            Some(0.0)
        );
        assert_eq!(prefix_misses("other 1\n"), None);
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
    fn labels_with_spaces_braces_and_timestamps() {
        let text = "# HELP m a metric\n\
                    m{a=\"x y\",b=\"1,2=3\"} 2 1700000000000\n\
                    m 0.5\n\
                    bad_value{a=\"1\"} NaNx\n\
                    \n";
        let s = samples(text);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].labels, "a=\"x y\",b=\"1,2=3\"");
        assert_eq!(s[0].value, 2.0);
        assert_eq!((s[1].name, s[1].labels, s[1].value), ("m", "", 0.5));
        assert_eq!(metric_sum(text, "m", Some("b=\"1,2=3\"")), Some(2.0));
        assert_eq!(metric_sum(text, "m", None), Some(2.5));
    }
}
