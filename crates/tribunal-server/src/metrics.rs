//! Prometheus metrics in the text exposition format: decisions by project and outcome,
//! policy violations by project and rule, judge errors by project and judge, and every other
//! count of a project's requests by project; gate and ingest latency, HTTP responses by
//! status class and the writer queues for the whole server; and the build. A project's
//! token sees the series of its project and the build only: the server-wide series add up
//! every project's traffic, so only the separate token-free metrics address
//! (`--metrics-listen`), the operator's, shows them.

use crate::error::{ApiError, Code};
use crate::AppState;
use axum::routing::get;
use axum::Router;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A label value as the exposition format quotes it: `\`, `"` and line feeds escaped.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A counter with labels: one count per distinct set of label values. The label sets are
/// bounded by configuration (projects, judges, policy rules), never by request data alone.
#[derive(Default)]
pub struct Family {
    counts: Mutex<BTreeMap<Vec<(&'static str, String)>, u64>>,
}

impl Family {
    /// Adds `n` to the count of the label set `labels` (name, value).
    pub fn add(&self, labels: &[(&'static str, &str)], n: u64) {
        let key: Vec<(&'static str, String)> =
            labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        *counts.entry(key).or_insert(0) += n;
    }

    /// The count of one label set (0 when never counted).
    pub fn get(&self, labels: &[(&'static str, &str)]) -> u64 {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts
            .iter()
            .find(|(k, _)| {
                k.len() == labels.len()
                    && k.iter()
                        .zip(labels)
                        .all(|((a, b), (c, d))| a == c && b == d)
            })
            .map_or(0, |(_, n)| *n)
    }

    /// The counter's series; with `project`, only those of that project (label sets with a
    /// `project` label of another value are left out).
    fn render(&self, out: &mut String, name: &str, help: &str, project: Option<&str>) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let shown = |labels: &[(&'static str, String)]| {
            project.is_none_or(|p| labels.iter().all(|(k, v)| *k != "project" || v == p))
        };
        for (labels, n) in counts.iter().filter(|(l, _)| shown(l)) {
            let labels: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            let _ = writeln!(out, "{name}{{{}}} {n}", labels.join(","));
        }
    }
}

/// Upper bounds of the latency histogram buckets, in seconds.
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// A cumulative histogram of durations.
pub struct Histogram {
    counts: Vec<AtomicU64>,
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: BUCKETS.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_us: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| s <= *b) {
            self.counts[i].fetch_add(1, Relaxed);
        }
        self.sum_us.fetch_add(d.as_micros() as u64, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        let sep = if labels.is_empty() { "" } else { "," };
        for (b, c) in BUCKETS.iter().zip(&self.counts) {
            cumulative += c.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let brace = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("{{{s}}}")
            }
        };
        let _ = writeln!(
            out,
            "{name}_sum{} {}",
            brace(labels),
            self.sum_us.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count{} {count}", brace(labels));
    }
}

/// How a gate request's trace came, the `read` label of `tribunal_gate_reads_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateRead {
    /// Sent whole.
    InFull,
    /// Appended to a held trace.
    Appended,
    /// Put together from spans received over OTLP.
    FromSpans,
}

impl GateRead {
    fn label(self) -> &'static str {
        match self {
            GateRead::InFull => "in_full",
            GateRead::Appended => "appended",
            GateRead::FromSpans => "from_spans",
        }
    }
}

/// Every counter the server keeps. Counts of a project's requests are families labelled by
/// `project`; the plain atomics and histograms are the whole server's.
#[derive(Default)]
pub struct Metrics {
    /// Gate decisions by `project` and `decision`.
    pub decisions: Family,
    /// Policy violations in the gate's decisions by `project` and `rule`.
    pub violations: Family,
    /// Gate decisions the shadow policies would have changed, by `project`.
    pub shadow_changed: Family,
    /// Gate decisions whose model judges ran out of budget, by `project`.
    pub budget_exceeded: Family,
    /// Gate requests by `project` and how their trace was read (`read`).
    pub gate_reads: Family,
    /// Judge feedback that carried an error, by `project` and `judge`.
    pub judge_errors: Family,
    /// Spans accepted over OTLP, by `project`.
    pub spans_ingested: Family,
    /// GenAI events accepted from OTLP log records, by `project`.
    pub log_events_ingested: Family,
    /// OTLP export requests accepted, by `project`.
    pub otlp_requests: Family,
    /// Ingested traces judged, by `project`.
    pub traces_scored: Family,
    /// Escalations by `project` and `outcome`: `queued`, or `rate_limited` (not queued).
    pub escalations: Family,
    pub http_2xx: AtomicU64,
    pub http_4xx: AtomicU64,
    pub http_5xx: AtomicU64,
    pub gate_latency: Histogram,
    pub ingest_latency: Histogram,
}

impl Metrics {
    pub fn decision(&self, project: &str, d: tribunal_core::Decision) {
        let decision = match d {
            tribunal_core::Decision::Allow => "allow",
            tribunal_core::Decision::Escalate => "escalate",
            tribunal_core::Decision::Block => "block",
        };
        self.decisions
            .add(&[("project", project), ("decision", decision)], 1);
    }

    /// One gate decision's violations, each counted under its rule.
    pub fn violations(&self, project: &str, violations: &[tribunal_core::Violation]) {
        for v in violations {
            self.violations
                .add(&[("project", project), ("rule", &v.rule)], 1);
        }
    }

    /// The judges whose feedback carried an error.
    pub fn judge_errors(&self, project: &str, feedback: &[tribunal_core::Feedback]) {
        for f in feedback.iter().filter(|f| f.error.is_some()) {
            self.judge_errors
                .add(&[("project", project), ("judge", &f.name)], 1);
        }
    }

    /// A gate request of `project` whose trace was read as `how`.
    pub fn gate_read(&self, project: &str, how: GateRead) {
        self.gate_reads
            .add(&[("project", project), ("read", how.label())], 1);
    }

    pub fn status(&self, status: u16) {
        match status {
            200..=299 => &self.http_2xx,
            400..=499 => &self.http_4xx,
            500..=599 => &self.http_5xx,
            _ => return,
        }
        .fetch_add(1, Relaxed);
    }

    /// Every counter and histogram, then the writer queues' gauges: `queues` holds each
    /// queue's name and the records waiting in it, `capacity` what each may hold. With
    /// `project` (a token's view), that project's series and the build only: the series of
    /// the whole server (HTTP responses, latency histograms, writer queues) count other
    /// projects' traffic too and are left out. Without (the operator's metrics address),
    /// every project's series and the server's.
    pub fn render(
        &self,
        queues: &[(&str, usize)],
        capacity: usize,
        project: Option<&str>,
    ) -> String {
        let mut o = String::with_capacity(4096);
        let counter = |o: &mut String, name: &str, help: &str, rows: &[(&str, &AtomicU64)]| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter");
            for (labels, v) in rows {
                let l = if labels.is_empty() {
                    String::new()
                } else {
                    format!("{{{labels}}}")
                };
                let _ = writeln!(o, "{name}{l} {}", v.load(Relaxed));
            }
        };
        let _ = writeln!(
            o,
            "# HELP tribunal_build_info The running build: version of tribunal.\n# TYPE tribunal_build_info gauge\ntribunal_build_info{{version=\"{}\"}} 1",
            escape(env!("CARGO_PKG_VERSION"))
        );
        self.decisions.render(
            &mut o,
            "tribunal_decisions_total",
            "Gate decisions by project and outcome.",
            project,
        );
        self.violations.render(
            &mut o,
            "tribunal_violations_total",
            "Policy violations in gate decisions, by project and rule.",
            project,
        );
        self.shadow_changed.render(
            &mut o,
            "tribunal_shadow_changes_total",
            "Gate decisions the shadow policies would have decided differently, by project.",
            project,
        );
        self.budget_exceeded.render(
            &mut o,
            "tribunal_budget_exceeded_total",
            "Gate decisions where model judges ran out of their latency budget, by project.",
            project,
        );
        self.gate_reads.render(
            &mut o,
            "tribunal_gate_reads_total",
            "Gate requests by project and how their trace came: sent whole, appended to a held trace, or put together from spans received over OTLP.",
            project,
        );
        self.judge_errors.render(
            &mut o,
            "tribunal_judge_errors_total",
            "Judge feedback that carried an error, by project and judge.",
            project,
        );
        self.spans_ingested.render(
            &mut o,
            "tribunal_ingested_spans_total",
            "Spans accepted by the OTLP receiver, by project.",
            project,
        );
        self.log_events_ingested.render(
            &mut o,
            "tribunal_ingested_log_events_total",
            "GenAI events accepted by the OTLP logs receiver, by project.",
            project,
        );
        self.otlp_requests.render(
            &mut o,
            "tribunal_otlp_requests_total",
            "OTLP export requests accepted, by project.",
            project,
        );
        self.traces_scored.render(
            &mut o,
            "tribunal_traces_scored_total",
            "Ingested traces judged, by project.",
            project,
        );
        self.escalations.render(
            &mut o,
            "tribunal_escalations_total",
            "Review items created, and escalations refused by the queue's rate limit, by project.",
            project,
        );
        if project.is_some() {
            return o;
        }
        counter(
            &mut o,
            "tribunal_http_responses_total",
            "HTTP responses by status class.",
            &[
                ("class=\"2xx\"", &self.http_2xx),
                ("class=\"4xx\"", &self.http_4xx),
                ("class=\"5xx\"", &self.http_5xx),
            ],
        );
        let _ = writeln!(
            o,
            "# HELP tribunal_gate_latency_seconds Time to decide a gate request.\n# TYPE tribunal_gate_latency_seconds histogram"
        );
        self.gate_latency
            .render(&mut o, "tribunal_gate_latency_seconds", "");
        let _ = writeln!(
            o,
            "# HELP tribunal_ingest_latency_seconds Time to store an OTLP request.\n# TYPE tribunal_ingest_latency_seconds histogram"
        );
        self.ingest_latency
            .render(&mut o, "tribunal_ingest_latency_seconds", "");
        let _ = writeln!(
            o,
            "# HELP tribunal_write_queue_records Records accepted and waiting for the store, by queue.\n# TYPE tribunal_write_queue_records gauge"
        );
        for (name, n) in queues {
            let _ = writeln!(o, "tribunal_write_queue_records{{queue=\"{name}\"}} {n}");
        }
        let _ = writeln!(
            o,
            "# HELP tribunal_write_queue_capacity Records each writer queue holds before requests wait.\n# TYPE tribunal_write_queue_capacity gauge\ntribunal_write_queue_capacity {capacity}"
        );
        o
    }
}

/// The routes of the separate metrics address: `GET /metrics` without a token, for a
/// scraper on a private network; everything else is `404`.
pub fn metrics_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/metrics", get(crate::api::metrics_open))
        .fallback(|| async {
            ApiError::not_found("only /metrics is served on the metrics address")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(Code::MethodNotAllowed, "/metrics takes GET")
        })
        .with_state(state)
}

/// Serves [`metrics_router`] on `listener` until `shutdown` resolves.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, metrics_router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_micros(700));
        h.observe(Duration::from_secs(60));
        let mut o = String::new();
        h.render(&mut o, "x", "");
        assert!(o.contains("x_bucket{le=\"0.0001\"} 1\n"));
        assert!(o.contains("x_bucket{le=\"0.001\"} 2\n"));
        assert!(o.contains("x_bucket{le=\"10\"} 2\n"));
        assert!(o.contains("x_bucket{le=\"+Inf\"} 3\n"));
        assert!(o.contains("x_count 3\n"));
    }

    #[test]
    fn families_count_each_label_set_and_escape_values() {
        let f = Family::default();
        f.add(&[("project", "a"), ("rule", "r.one")], 1);
        f.add(&[("project", "a"), ("rule", "r.one")], 2);
        f.add(&[("project", "b"), ("rule", "say \"hi\"\\\n")], 1);
        assert_eq!(f.get(&[("project", "a"), ("rule", "r.one")]), 3);
        assert_eq!(f.get(&[("project", "c"), ("rule", "r.one")]), 0);
        let mut o = String::new();
        f.render(&mut o, "x_total", "help", None);
        assert!(
            o.contains("x_total{project=\"a\",rule=\"r.one\"} 3\n"),
            "{o}"
        );
        assert!(
            o.contains("x_total{project=\"b\",rule=\"say \\\"hi\\\"\\\\\\n\"} 1\n"),
            "{o}"
        );
    }
}
