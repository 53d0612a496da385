//! The value report: what the gate did for a project over a window, from the decision log,
//! the review queue and the stored results. Decisions over time by outcome, top rules,
//! blocked actions by kind of threat, escalations and how long people took to decide them,
//! gate latency percentiles, model judges' calls, tokens and cost, and the adoption figures a
//! pilot asks for. [`ValueBuilder`] is pure (fed rows, no I/O); [`value_report`] reads them
//! from the store.

use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use tribunal_store::{clock, AuditRow, EscalationRow, Store, StoreError, TraceFilter};

/// The kind of threat a rule guards against, by its family.
pub fn threat_kind(rule: &str) -> &'static str {
    match rule.split('.').next().unwrap_or("") {
        "c1" => "direct prompt injection",
        "c2" => "indirect prompt injection",
        "c3" => "goal hijack",
        "c4" => "data exfiltration",
        "c5" => "tool misuse",
        "c6" => "dangerous command",
        "c8" => "budget",
        "c9" => "model judge",
        "tribunal" => "judge or policy failure",
        _ => "project policy",
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Outcomes {
    pub allow: u64,
    pub escalate: u64,
    pub block: u64,
}

impl Outcomes {
    fn add(&mut self, decision: &str) {
        match decision {
            "allow" => self.allow += 1,
            "escalate" => self.escalate += 1,
            "block" => self.block += 1,
            _ => {}
        }
    }
    pub fn total(&self) -> u64 {
        self.allow + self.escalate + self.block
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Bucket {
    /// `YYYY-MM-DD` or `YYYY-MM-DDTHH`.
    pub at: String,
    #[serde(flatten)]
    pub outcomes: Outcomes,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Escalations {
    pub raised: u64,
    pub approved: u64,
    pub denied: u64,
    pub expired: u64,
    pub pending: u64,
    /// Seconds from the escalation to a person's decision (expired ones excluded).
    pub decide_seconds_p50: Option<f64>,
    pub decide_seconds_p90: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Latency {
    pub decisions: u64,
    pub p50_us: Option<u64>,
    pub p95_us: Option<u64>,
    pub p99_us: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct JudgeCost {
    pub judge: String,
    pub model: String,
    pub calls: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Adoption {
    /// The first time the server started for this project (its first configuration entry).
    pub first_start: Option<String>,
    pub first_gate_decision: Option<String>,
    pub seconds_from_start_to_first_decision: Option<i64>,
    /// Gate decisions and judged OTLP traces in the window.
    pub traces_judged: u64,
    /// Gate decisions that blocked an action in the window.
    pub incidents_blocked: u64,
    /// Model judges' cost per thousand gate decisions in the window.
    pub cost_per_thousand_decisions_usd: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ValueReport {
    pub project: String,
    pub since: String,
    pub decisions: Outcomes,
    pub over_time: Vec<Bucket>,
    pub top_rules: Vec<(String, u64)>,
    pub blocked_by_kind: Vec<(String, u64)>,
    pub escalations: Escalations,
    pub gate_latency: Latency,
    pub judges: Vec<JudgeCost>,
    pub adoption: Adoption,
}

/// Builds a [`ValueReport`] from rows of one project; pure.
#[derive(Debug, Default)]
pub struct ValueBuilder {
    report: ValueReport,
    by_day: bool,
    buckets: BTreeMap<String, Outcomes>,
    rules: BTreeMap<String, u64>,
    blocked: BTreeMap<&'static str, u64>,
    latencies: Vec<u64>,
    decide_secs: Vec<f64>,
    judges: BTreeMap<String, JudgeCost>,
    otlp_judged: u64,
}

fn percentile<T: Copy + PartialOrd>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

impl ValueBuilder {
    /// A report over entries at or after `since` (RFC 3339); days as buckets when
    /// `by_day`, else hours.
    pub fn new(project: &str, since: &str, by_day: bool) -> ValueBuilder {
        ValueBuilder {
            report: ValueReport {
                project: project.to_owned(),
                since: since.to_owned(),
                ..ValueReport::default()
            },
            by_day,
            ..ValueBuilder::default()
        }
    }

    /// One decision-log entry of the project (any time: the first start counts even when it
    /// is before the window).
    pub fn audit(&mut self, row: &AuditRow) {
        let Ok(body) = serde_json::from_str::<Value>(&row.body) else {
            return;
        };
        match row.kind.as_str() {
            "config" if self.report.adoption.first_start.is_none() => {
                self.report.adoption.first_start = Some(row.at.clone());
            }
            "gate" => {
                if self.report.adoption.first_gate_decision.is_none() {
                    self.report.adoption.first_gate_decision = Some(row.at.clone());
                }
                if row.at.as_str() < self.report.since.as_str() {
                    return;
                }
                let decision = body["decision"].as_str().unwrap_or_default();
                self.report.decisions.add(decision);
                let key_len = if self.by_day { 10 } else { 13 };
                let key = row.at.get(..key_len).unwrap_or(&row.at).to_owned();
                self.buckets.entry(key).or_default().add(decision);
                // A rule counts once per decision, however many times it fired.
                let mut rules: Vec<&str> = body["rules"]
                    .as_array()
                    .map(|r| r.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                rules.sort_unstable();
                rules.dedup();
                for r in &rules {
                    *self.rules.entry((*r).to_owned()).or_default() += 1;
                }
                if decision == "block" {
                    let mut kinds: Vec<&'static str> =
                        rules.iter().map(|r| threat_kind(r)).collect();
                    kinds.sort_unstable();
                    kinds.dedup();
                    for k in kinds {
                        *self.blocked.entry(k).or_default() += 1;
                    }
                }
                if let Some(us) = body["elapsed_us"].as_u64() {
                    self.latencies.push(us);
                }
            }
            _ => {}
        }
    }

    /// One escalation of the project.
    pub fn escalation(&mut self, row: &EscalationRow) {
        if row.created_at.as_str() < self.report.since.as_str() {
            return;
        }
        let e = &mut self.report.escalations;
        e.raised += 1;
        match row.status.as_str() {
            "approved" => e.approved += 1,
            "denied" => e.denied += 1,
            "expired" => e.expired += 1,
            _ => e.pending += 1,
        }
        if matches!(row.status.as_str(), "approved" | "denied") {
            if let (Some(a), Some(b)) = (
                clock::parse_rfc3339_secs(&row.created_at),
                row.decided_at
                    .as_deref()
                    .and_then(clock::parse_rfc3339_secs),
            ) {
                self.decide_secs.push((b - a).max(0) as f64);
            }
        }
    }

    /// One stored result (a gate decision's or a judged OTLP trace's), for model judges'
    /// usage; `otlp` counts it as a judged trace.
    pub fn result(
        &mut self,
        result: &str,
        otlp: bool,
        prices: &tribunal_judges::metrics::usage::PriceTable,
    ) {
        let Ok(v) = serde_json::from_str::<Value>(result) else {
            return;
        };
        if otlp {
            self.otlp_judged += 1;
        }
        for f in v["feedback"].as_array().into_iter().flatten() {
            let Some(u) = f.get("usage").filter(|u| u.is_object()) else {
                continue;
            };
            let name = f["name"].as_str().unwrap_or("?").to_owned();
            let model = u["model"].as_str().unwrap_or_default().to_owned();
            let (input, output) = (
                u["input_tokens"].as_u64().unwrap_or(0),
                u["output_tokens"].as_u64().unwrap_or(0),
            );
            let j = self
                .judges
                .entry(name.clone())
                .or_insert_with(|| JudgeCost {
                    judge: name,
                    model: model.clone(),
                    ..JudgeCost::default()
                });
            j.calls += u["calls"].as_u64().unwrap_or(0);
            j.input_tokens += input;
            j.output_tokens += output;
            j.cost_usd += prices.usd(&model, input, output).unwrap_or(0.0);
        }
    }

    pub fn finish(mut self) -> ValueReport {
        let r = &mut self.report;
        r.over_time = self
            .buckets
            .into_iter()
            .map(|(at, outcomes)| Bucket { at, outcomes })
            .collect();
        let mut rules: Vec<(String, u64)> = self.rules.into_iter().collect();
        rules.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        rules.truncate(20);
        r.top_rules = rules;
        let mut blocked: Vec<(String, u64)> = self
            .blocked
            .into_iter()
            .map(|(k, n)| (k.to_owned(), n))
            .collect();
        blocked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        r.blocked_by_kind = blocked;
        self.latencies.sort_unstable();
        r.gate_latency = Latency {
            decisions: self.latencies.len() as u64,
            p50_us: percentile(&self.latencies, 0.50),
            p95_us: percentile(&self.latencies, 0.95),
            p99_us: percentile(&self.latencies, 0.99),
        };
        self.decide_secs.sort_by(f64::total_cmp);
        r.escalations.decide_seconds_p50 = percentile(&self.decide_secs, 0.50);
        r.escalations.decide_seconds_p90 = percentile(&self.decide_secs, 0.90);
        r.judges = self.judges.into_values().collect();
        // Summed from +0.0: an empty `sum` of floats is -0.0, which prints as `-0.0000`.
        let cost: f64 = r.judges.iter().fold(0.0, |sum, j| sum + j.cost_usd);
        let decisions = r.decisions.total();
        let a = &mut r.adoption;
        a.seconds_from_start_to_first_decision = match (&a.first_start, &a.first_gate_decision) {
            (Some(s), Some(d)) => Some(
                clock::parse_rfc3339_secs(d).unwrap_or(0)
                    - clock::parse_rfc3339_secs(s).unwrap_or(0),
            ),
            _ => None,
        };
        a.traces_judged = decisions + self.otlp_judged;
        a.incidents_blocked = r.decisions.block;
        a.cost_per_thousand_decisions_usd =
            (decisions > 0).then(|| cost / decisions as f64 * 1000.0);
        self.report
    }
}

/// The report as text, for a terminal: the names it quotes from the store (rules, kinds,
/// judges, models, the project) escaped with [`tribunal_core::terminal::escape`].
pub fn text(r: &ValueReport) -> String {
    let shown = tribunal_core::terminal::escape;
    let mut o = String::new();
    let opt = |v: Option<u64>| v.map_or("-".to_owned(), |x| x.to_string());
    let optf = |v: Option<f64>| v.map_or("-".to_owned(), |x| format!("{x:.1}"));
    o.push_str(&format!(
        "project {} since {}\n\n",
        shown(&r.project),
        shown(&r.since)
    ));
    let d = &r.decisions;
    o.push_str(&format!(
        "decisions      {} ({} allowed, {} escalated, {} blocked)\n",
        d.total(),
        d.allow,
        d.escalate,
        d.block
    ));
    let l = &r.gate_latency;
    o.push_str(&format!(
        "gate latency   p50 {} µs, p95 {} µs, p99 {} µs\n",
        opt(l.p50_us),
        opt(l.p95_us),
        opt(l.p99_us)
    ));
    let e = &r.escalations;
    o.push_str(&format!(
        "escalations    {} raised: {} approved, {} denied, {} expired, {} pending; decided in p50 {} s, p90 {} s\n",
        e.raised, e.approved, e.denied, e.expired, e.pending,
        optf(e.decide_seconds_p50),
        optf(e.decide_seconds_p90)
    ));
    let a = &r.adoption;
    o.push_str(&format!(
        "adoption       first start {}, first decision {} ({} s later); {} traces judged, {} incidents blocked; ${} per 1,000 decisions\n",
        a.first_start.as_deref().unwrap_or("-"),
        a.first_gate_decision.as_deref().unwrap_or("-"),
        a.seconds_from_start_to_first_decision.map_or("-".to_owned(), |s| s.to_string()),
        a.traces_judged,
        a.incidents_blocked,
        a.cost_per_thousand_decisions_usd
            .map_or("-".to_owned(), |c| format!("{:.4}", c + 0.0))
    ));
    if !r.blocked_by_kind.is_empty() {
        o.push_str("\nblocked by kind\n");
        for (k, n) in &r.blocked_by_kind {
            o.push_str(&format!("  {n:>7}  {}\n", shown(k)));
        }
    }
    if !r.top_rules.is_empty() {
        o.push_str("\ntop rules\n");
        for (k, n) in &r.top_rules {
            o.push_str(&format!("  {n:>7}  {}\n", shown(k)));
        }
    }
    if !r.judges.is_empty() {
        o.push_str("\nmodel judges\n");
        for j in &r.judges {
            o.push_str(&format!(
                "  {:<24} {:<28} {:>6} calls {:>9} in {:>8} out  ${:.6}\n",
                shown(&j.judge),
                shown(&j.model),
                j.calls,
                j.input_tokens,
                j.output_tokens,
                j.cost_usd
            ));
        }
    }
    if !r.over_time.is_empty() {
        o.push_str("\nover time (allow / escalate / block)\n");
        for b in &r.over_time {
            o.push_str(&format!(
                "  {:<13} {:>7} {:>7} {:>7}\n",
                b.at, b.outcomes.allow, b.outcomes.escalate, b.outcomes.block
            ));
        }
    }
    o
}

/// The report as one self-contained HTML page (no script, nothing outside the file).
pub fn html(r: &ValueReport) -> String {
    let esc = tribunal_engine::report::escape;
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Tribunal value report</title>\
<style>body{{font:15px/1.45 system-ui,sans-serif;max-width:960px;margin:1.5rem auto;padding:0 1rem}}\
pre{{font:13px ui-monospace,monospace;white-space:pre-wrap}}</style></head><body>\
<h1>Value report</h1><pre>{}</pre></body></html>\n",
        esc(&text(r))
    )
}

/// `30d`, `12h`, `45m` or an RFC 3339 time, as the RFC 3339 lower bound of the window.
pub fn since(spec: &str, now_ms: i64) -> Result<String, String> {
    since_as(spec, now_ms, "since")
}

/// [`since`] of a value given in `field` (named by the error), as the store writes times
/// (`YYYY-MM-DDTHH:MM:SSZ`, UTC, so that stored times compare with it as text).
pub fn since_as(spec: &str, now_ms: i64, field: &str) -> Result<String, String> {
    let spec = spec.trim();
    if let Some(secs) = rfc3339_secs(spec) {
        return Ok(clock::rfc3339_from_ms(secs.saturating_mul(1000)));
    }
    let unit_at = spec.char_indices().last().map_or(0, |(i, _)| i);
    let (n, unit) = spec.split_at(unit_at);
    let n: i64 = n
        .parse()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| format!("{field}: expected a number of days, hours or minutes (30d, 12h, 45m) or an RFC 3339 time, found {spec:?}"))?;
    let per = match unit {
        "d" => 86_400_000,
        "h" => 3_600_000,
        "m" => 60_000,
        _ => {
            return Err(format!(
                "{field}: expected a unit d, h or m, found {spec:?}"
            ))
        }
    };
    // A window longer than the clock reaches back starts at the epoch.
    let ms = n.saturating_mul(per);
    Ok(clock::rfc3339_from_ms(now_ms.saturating_sub(ms)))
}

/// Seconds since the Unix epoch of an RFC 3339 time (`YYYY-MM-DDTHH:MM:SS`, an optional
/// fraction, then `Z` or an offset `±HH:MM`) or date (`YYYY-MM-DD`, its midnight in UTC);
/// `None` for anything else.
fn rfc3339_secs(s: &str) -> Option<i64> {
    if s.len() == 10 {
        return clock::parse_rfc3339_secs(&format!("{s}T00:00:00"));
    }
    let secs = clock::parse_rfc3339_secs(s.get(..19)?)?;
    let mut rest = &s[19..];
    if let Some(r) = rest.strip_prefix('.') {
        let digits = r.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &r[digits..];
    }
    let offset = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let num = |a: u8, b: u8| -> Option<i64> {
                (a.is_ascii_digit() && b.is_ascii_digit())
                    .then(|| i64::from(a - b'0') * 10 + i64::from(b - b'0'))
            };
            let (h, m) = (num(*h1, *h2)?, num(*m1, *m2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let off = h * 3600 + m * 60;
            if *sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    Some(secs - offset)
}

/// The report for `project` since `since` (RFC 3339), read from the store.
pub async fn value_report(
    store: &Store,
    project: &str,
    since: &str,
    now_ms: i64,
) -> Result<ValueReport, StoreError> {
    let window_secs = clock::parse_rfc3339_secs(since)
        .map(|s| now_ms / 1000 - s)
        .unwrap_or(0);
    let mut b = ValueBuilder::new(project, since, window_secs > 2 * 86_400);
    let mut after = 0;
    loop {
        let rows = store.audit_entries(after, 1000).await?;
        let Some(last) = rows.last() else { break };
        after = last.seq;
        for r in rows.iter().filter(|r| r.project == project) {
            b.audit(r);
        }
    }
    for e in store.list_escalations(project, None, 100_000).await? {
        b.escalation(&e);
    }
    let prices = tribunal_judges::metrics::usage::PriceTable::builtin();
    let mut offset = 0;
    loop {
        let page = store
            .list_traces(
                project,
                &TraceFilter {
                    since: Some(since.to_owned()),
                    limit: 1000,
                    offset,
                    ..TraceFilter::default()
                },
            )
            .await?;
        if page.is_empty() {
            break;
        }
        offset += page.len() as i64;
        for t in &page {
            if let Some(result) = &t.result {
                b.result(result, t.source == "otlp", &prices);
            }
        }
    }
    Ok(b.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(seq: i64, at: &str, kind: &str, body: Value) -> AuditRow {
        AuditRow {
            seq,
            at: at.into(),
            project: "p".into(),
            kind: kind.into(),
            body: body.to_string(),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    #[test]
    fn the_report_counts_what_the_log_and_the_queue_hold() {
        let mut b = ValueBuilder::new("p", "2026-01-02T00:00:00Z", true);
        b.audit(&entry(
            1,
            "2026-01-01T09:00:00Z",
            "config",
            json!({"by": "start"}),
        ));
        b.audit(&entry(
            2,
            "2026-01-01T09:05:00Z",
            "gate",
            json!({"decision": "allow", "rules": [], "elapsed_us": 900}),
        ));
        b.audit(&entry(3, "2026-01-02T10:00:00Z", "gate", json!({"decision": "block", "rules": ["c6.dangerous_command", "c4.secret_in_arguments"], "elapsed_us": 300})));
        b.audit(&entry(
            4,
            "2026-01-02T11:00:00Z",
            "gate",
            json!({"decision": "block", "rules": ["c6.dangerous_command"], "elapsed_us": 200}),
        ));
        b.audit(&entry(
            5,
            "2026-01-03T11:00:00Z",
            "gate",
            json!({"decision": "escalate", "rules": ["c5.argument_limit"], "elapsed_us": 100}),
        ));
        let esc = |status: &str, created: &str, decided: Option<&str>| EscalationRow {
            id: "e".into(),
            project: "p".into(),
            created_at: created.into(),
            deadline_ms: 0,
            status: status.into(),
            decision_seq: 5,
            summary: "{}".into(),
            reviewer: None,
            note: None,
            decided_at: decided.map(str::to_owned),
        };
        b.escalation(&esc(
            "approved",
            "2026-01-03T11:00:00Z",
            Some("2026-01-03T11:02:00Z"),
        ));
        b.escalation(&esc(
            "denied",
            "2026-01-03T12:00:00Z",
            Some("2026-01-03T12:00:30Z"),
        ));
        b.escalation(&esc(
            "expired",
            "2026-01-03T13:00:00Z",
            Some("2026-01-03T14:00:00Z"),
        ));
        b.escalation(&esc(
            "approved",
            "2025-12-30T13:00:00Z",
            Some("2025-12-30T14:00:00Z"),
        ));
        let prices = tribunal_judges::metrics::usage::PriceTable::builtin();
        b.result(
            &json!({"feedback": [{"name": "safety", "usage": {"model": "openai:/gpt-4o-mini", "calls": 2, "input_tokens": 1000, "output_tokens": 100}}]}).to_string(),
            false,
            &prices,
        );
        let r = b.finish();
        // The allow before the window is out; the start before it still counts for adoption.
        assert_eq!(
            r.decisions,
            Outcomes {
                allow: 0,
                escalate: 1,
                block: 2
            }
        );
        assert_eq!(r.over_time.len(), 2);
        assert_eq!(r.over_time[0].at, "2026-01-02");
        assert_eq!(r.top_rules[0], ("c6.dangerous_command".to_owned(), 2));
        assert_eq!(r.blocked_by_kind[0], ("dangerous command".to_owned(), 2));
        assert_eq!(r.blocked_by_kind[1], ("data exfiltration".to_owned(), 1));
        assert_eq!(r.gate_latency.p50_us, Some(200));
        assert_eq!(r.gate_latency.p99_us, Some(300));
        assert_eq!(
            (
                r.escalations.raised,
                r.escalations.approved,
                r.escalations.denied,
                r.escalations.expired
            ),
            (3, 1, 1, 1)
        );
        assert_eq!(r.escalations.decide_seconds_p50, Some(30.0));
        assert_eq!(r.escalations.decide_seconds_p90, Some(120.0));
        assert_eq!(r.adoption.seconds_from_start_to_first_decision, Some(300));
        assert_eq!(r.adoption.incidents_blocked, 2);
        assert_eq!(r.judges[0].calls, 2);
        assert!(r.judges[0].cost_usd > 0.0);
        let per_thousand = r.adoption.cost_per_thousand_decisions_usd.unwrap();
        assert!((per_thousand - r.judges[0].cost_usd / 3.0 * 1000.0).abs() < 1e-12);
    }

    #[test]
    fn no_model_calls_cost_nothing_not_minus_nothing() {
        let mut b = ValueBuilder::new("p", "2026-01-02T00:00:00Z", true);
        b.audit(&entry(
            1,
            "2026-01-02T09:05:00Z",
            "gate",
            json!({"decision": "allow", "rules": [], "elapsed_us": 900}),
        ));
        let r = b.finish();
        let text = text(&r);
        assert!(text.contains("; $0.0000 per 1,000 decisions"), "{text}");
        let c = r.adoption.cost_per_thousand_decisions_usd.unwrap();
        assert!(c == 0.0 && c.is_sign_positive(), "{c}");
    }

    #[test]
    fn names_from_the_log_are_escaped_for_the_terminal() {
        let mut b = ValueBuilder::new("p", "2026-01-02T00:00:00Z", true);
        b.audit(&entry(
            1,
            "2026-01-02T09:05:00Z",
            "gate",
            json!({"decision": "block", "rules": ["shop.x\u{1b}[2K\rallow"], "elapsed_us": 900}),
        ));
        let text = text(&b.finish());
        assert!(!text.contains(['\u{1b}', '\r']), "{text:?}");
        assert!(text.contains("  shop.x\\u{1b}[2K\\u{d}allow\n"), "{text}");
    }

    #[test]
    fn windows_are_read_from_units_or_times() {
        let now = 1_795_538_766_955;
        assert_eq!(since("1d", now).unwrap(), "2026-11-23T16:46:06Z");
        assert_eq!(since("2h", now).unwrap(), "2026-11-24T14:46:06Z");
        assert_eq!(
            since("2026-01-01T00:00:00Z", now).unwrap(),
            "2026-01-01T00:00:00Z"
        );
        assert!(since("soon", now).unwrap_err().contains("since"));
        assert_eq!(
            since("2026-01-01T02:30:00.25+02:00", now).unwrap(),
            "2026-01-01T00:30:00Z"
        );
        assert_eq!(
            since("2026-01-01T00:00:00-01:00", now).unwrap(),
            "2026-01-01T01:00:00Z"
        );
        assert_eq!(since("2026-01-02", now).unwrap(), "2026-01-02T00:00:00Z");
        for bad in [
            "2026-01-01T00:00:00",
            "2026-1-01",
            "2026-01-01T00:00:00garbage",
            "2026-01-01T00:00:00.Z",
            "2026-01-01T00:00:00+2:00",
            "2026-13-01T00:00:00Z",
        ] {
            assert!(since(bad, now).is_err(), "{bad}");
        }
        assert!(since_as("x", now, "from.filter.since")
            .unwrap_err()
            .starts_with("from.filter.since: "));
        assert!(since("3w", now).is_err());
        // Whatever the text, an answer rather than a panic.
        assert!(since("-5d", now).is_err());
        assert!(since("5é", now).unwrap_err().contains("unit"));
        assert!(since("é", now).is_err());
        assert!(since("", now).is_err());
        assert_eq!(
            since("9223372036854775807d", now).unwrap(),
            "1970-01-01T00:00:00Z"
        );
    }
}
