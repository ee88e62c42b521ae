//! Process metrics in Prometheus' text format (`GET /metrics`).
//!
//! A small hand-rolled registry rather than poem's `PrometheusExporter`:
//! that one needs poem's `prometheus` feature, which pulls OpenTelemetry's
//! SDK and the `prometheus` crate (with protobuf) into every build of a
//! 2-core builder, for a dozen counters. These are atomics and short
//! mutex-held maps, rendered on scrape.
//!
//! One registry per process ([`METRICS`]): counters only grow, so tests
//! compare before and after.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

/// A counter without labels.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A counter per combination of label values.
#[derive(Debug, Default)]
pub struct Counters(Mutex<BTreeMap<Vec<String>, u64>>);

impl Counters {
    pub fn inc(&self, labels: &[&str]) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(labels.iter().map(|l| l.to_string()).collect())
            .or_default() += 1;
    }

    fn snapshot(&self) -> Vec<(Vec<String>, u64)> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}

/// Upper bounds (seconds) of the latency buckets.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Default, Clone)]
struct Series {
    /// Observations at or below each bucket's bound (not cumulative).
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

/// A latency histogram per label combination.
#[derive(Debug, Default)]
pub struct Histogram(Mutex<BTreeMap<Vec<String>, Series>>);

impl Histogram {
    pub fn observe(&self, labels: &[&str], d: Duration) {
        let secs = d.as_secs_f64();
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let series = map
            .entry(labels.iter().map(|l| l.to_string()).collect())
            .or_insert_with(|| Series {
                buckets: vec![0; BUCKETS.len()],
                ..Series::default()
            });
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            series.buckets[i] += 1;
        }
        series.sum += secs;
        series.count += 1;
    }

    fn snapshot(&self) -> Vec<(Vec<String>, Series)> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

/// Every metric tokend exports.
#[derive(Debug, Default)]
pub struct Metrics {
    /// `tokend_http_requests_total{operation,status}`
    pub requests: Counters,
    /// `tokend_http_request_duration_seconds{operation}`
    pub latency: Histogram,
    /// `tokend_tokens_minted_total{kind}`: login, personal, api_token, session.
    pub tokens_minted: Counters,
    /// `tokend_logins_total{outcome}`: succeeded, failed, blocked.
    pub logins: Counters,
    /// `tokend_store_errors_total{kind}`: unavailable (incl. timeouts), internal.
    pub store_errors: Counters,
    /// `tokend_throttle_blocks_total{scope}`: user, ip (failed-login
    /// blocking), rate_limit (the REST rate limiter).
    pub throttle_blocks: Counters,
    /// `tokend_audit_write_failures_total`
    pub audit_write_failures: Counter,
}

/// The process's metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::default);

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(names: &[&str], values: &[String], extra: Option<(&str, &str)>) -> String {
    let mut parts: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(n, v)| format!("{n}=\"{}\"", escape(v)))
        .collect();
    if let Some((n, v)) = extra {
        parts.push(format!("{n}=\"{v}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn counters(out: &mut String, name: &str, help: &str, names: &[&str], c: &Counters) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (values, n) in c.snapshot() {
        let _ = writeln!(out, "{name}{} {n}", labels(names, &values, None));
    }
}

impl Metrics {
    /// The text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        counters(
            &mut out,
            "tokend_http_requests_total",
            "HTTP requests by OpenAPI operation and status.",
            &["operation", "status"],
            &self.requests,
        );
        let name = "tokend_http_request_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} HTTP request latency by OpenAPI operation.\n# TYPE {name} histogram"
        );
        for (values, series) in self.latency.snapshot() {
            let mut cumulative = 0;
            for (bound, n) in BUCKETS.iter().zip(&series.buckets) {
                cumulative += n;
                let le = bound.to_string();
                let l = labels(&["operation"], &values, Some(("le", &le)));
                let _ = writeln!(out, "{name}_bucket{l} {cumulative}");
            }
            let l = labels(&["operation"], &values, Some(("le", "+Inf")));
            let _ = writeln!(out, "{name}_bucket{l} {}", series.count);
            let l = labels(&["operation"], &values, None);
            let _ = writeln!(out, "{name}_sum{l} {}", series.sum);
            let _ = writeln!(out, "{name}_count{l} {}", series.count);
        }
        counters(
            &mut out,
            "tokend_tokens_minted_total",
            "Credentials issued, by kind.",
            &["kind"],
            &self.tokens_minted,
        );
        counters(
            &mut out,
            "tokend_logins_total",
            "Password and resume logins, by outcome.",
            &["outcome"],
            &self.logins,
        );
        counters(
            &mut out,
            "tokend_store_errors_total",
            "Store failures reaching the core (unavailable includes timeouts).",
            &["kind"],
            &self.store_errors,
        );
        counters(
            &mut out,
            "tokend_throttle_blocks_total",
            "Requests refused by failed-login blocking or the rate limiter.",
            &["scope"],
            &self.throttle_blocks,
        );
        let name = "tokend_audit_write_failures_total";
        let _ = writeln!(
            out,
            "# HELP {name} Audit events the store could not record.\n# TYPE {name} counter\n{name} {}",
            self.audit_write_failures.get()
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_labels_escaped_and_buckets_cumulative() {
        let m = Metrics::default();
        m.requests.inc(&["a\"b", "200"]);
        m.latency.observe(&["me"], Duration::from_millis(3));
        m.latency.observe(&["me"], Duration::from_secs(60));
        let text = m.render();
        assert!(text.contains("tokend_http_requests_total{operation=\"a\\\"b\",status=\"200\"} 1"));
        assert!(text.contains(
            "tokend_http_request_duration_seconds_bucket{operation=\"me\",le=\"0.005\"} 1"
        ));
        assert!(text
            .contains("tokend_http_request_duration_seconds_bucket{operation=\"me\",le=\"10\"} 1"));
        assert!(text.contains(
            "tokend_http_request_duration_seconds_bucket{operation=\"me\",le=\"+Inf\"} 2"
        ));
        assert!(text.contains("tokend_http_request_duration_seconds_count{operation=\"me\"} 2"));
    }
}
