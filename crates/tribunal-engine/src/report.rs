//! Reports: a readable table, JSON, JSONL (one object per trace) and JUnit XML.
//! JSONL and the table stream; JSON and JUnit hold the run's results until the end.
//!
//! Model judges' calls are summed per judge and over the run (calls, cached calls, tokens,
//! cost in USD from the `cost` judge's price table); the table, JSON and JUnit reports show
//! the totals, JSONL rows carry each feedback's own usage.

use crate::evaluator::TraceResult;
use crate::run::{Event, Summary};
use serde::Serialize;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};
use tribunal_core::terminal::escape as for_terminal;
use tribunal_core::{Decision, ModelUsage};
use tribunal_judges::metrics::usage::PriceTable;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Table,
    Json,
    Jsonl,
    Junit,
    /// One self-contained HTML page.
    Html,
}

impl ReportFormat {
    pub const NAMES: &'static [&'static str] = &["table", "json", "jsonl", "junit", "html"];

    pub fn parse(s: &str) -> Option<ReportFormat> {
        Some(match s {
            "table" => ReportFormat::Table,
            "json" => ReportFormat::Json,
            "jsonl" => ReportFormat::Jsonl,
            "junit" => ReportFormat::Junit,
            "html" => ReportFormat::Html,
            _ => return None,
        })
    }
}

/// Facts about the run printed in the reports.
#[derive(Debug, Clone, Default)]
pub struct RunInfo {
    pub run_id: Option<String>,
    pub policy_version: String,
    /// The configuration in force: its path, or `built-in defaults`.
    pub config: String,
    /// The lowest decision that fails the run (`block` or `escalate`).
    pub fail_on: Option<Decision>,
}

impl RunInfo {
    /// Whether a result with this decision fails the run.
    pub fn fails(&self, d: Decision) -> bool {
        d != Decision::Allow && d >= self.fail_on.unwrap_or(Decision::Block)
    }
}

/// Model calls summed over some feedback. Tokens and cost count the calls the provider
/// answered; cached answers cost nothing.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UsageTotal {
    /// Model calls, cached answers included.
    pub calls: u64,
    /// Of those, the calls answered from the response cache.
    pub cached_calls: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// USD for the calls whose model has a price.
    pub cost_usd: f64,
    /// Models whose calls used tokens but have no price (not in `cost_usd`).
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    pub unpriced_models: BTreeSet<String>,
}

impl UsageTotal {
    fn add(&mut self, u: &ModelUsage, prices: &PriceTable) {
        self.calls = self.calls.saturating_add(u64::from(u.calls));
        self.cached_calls = self.cached_calls.saturating_add(u64::from(u.cached_calls));
        self.input_tokens = self.input_tokens.saturating_add(u.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(u.output_tokens);
        if u.input_tokens > 0 || u.output_tokens > 0 {
            match prices.usd(&u.model, u.input_tokens, u.output_tokens) {
                Some(usd) => self.cost_usd += usd,
                None => {
                    self.unpriced_models.insert(u.model.clone());
                }
            }
        }
    }

    /// `$0.001234`, with `+ unpriced` when some calls have no price.
    fn cost_text(&self) -> String {
        let mut t = format!("${:.6}", self.cost_usd);
        if !self.unpriced_models.is_empty() {
            t.push_str(" + unpriced");
        }
        t
    }
}

/// Model judges' usage per judge (by feedback name) and over the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UsageTotals {
    pub judges: BTreeMap<String, JudgeUsage>,
    pub total: UsageTotal,
}

/// One judge's usage: its model and its totals.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct JudgeUsage {
    pub model: String,
    #[serde(flatten)]
    pub usage: UsageTotal,
}

impl UsageTotals {
    /// Adds the usage on every feedback of one trace's result.
    pub fn add(&mut self, result: &TraceResult, prices: &PriceTable) {
        for f in &result.feedback {
            let Some(u) = &f.usage else { continue };
            let judge = self.judges.entry(f.name.clone()).or_default();
            if judge.model.is_empty() {
                judge.model = u.model.clone();
            }
            judge.usage.add(u, prices);
            self.total.add(u, prices);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.judges.is_empty()
    }
}

/// `model judges: C calls (K cached), I input + O output tokens, $X`, or `None` when no
/// model judge ran.
pub fn usage_line(usage: &UsageTotals) -> Option<String> {
    if usage.is_empty() {
        return None;
    }
    let t = &usage.total;
    let mut line = format!(
        "model judges: {} calls ({} cached), {} input + {} output tokens, {}",
        t.calls,
        t.cached_calls,
        t.input_tokens,
        t.output_tokens,
        t.cost_text()
    );
    if !t.unpriced_models.is_empty() {
        line.push_str(&format!(
            " (no price for {}; add it to [judges.cost.prices])",
            t.unpriced_models
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Some(for_terminal(&line).into_owned())
}

/// Writes one report as events arrive.
pub struct Reporter<W: Write> {
    format: ReportFormat,
    out: W,
    held: Vec<Event>,
    header_written: bool,
    prices: PriceTable,
    usage: UsageTotals,
    /// The configuration in force, named at the top of the table.
    config: Option<String>,
}

impl<W: Write> Reporter<W> {
    /// A reporter that prices model calls with the built-in price table.
    pub fn new(format: ReportFormat, out: W) -> Reporter<W> {
        Reporter {
            format,
            out,
            held: Vec::new(),
            header_written: false,
            prices: PriceTable::builtin(),
            usage: UsageTotals::default(),
            config: None,
        }
    }

    /// Names the configuration in force at the top of the table.
    pub fn with_config(mut self, config: impl Into<String>) -> Reporter<W> {
        self.config = Some(config.into());
        self
    }

    /// Prices model calls with `prices` (see [`crate::Config::price_table`]).
    pub fn with_prices(mut self, prices: PriceTable) -> Reporter<W> {
        self.prices = prices;
        self
    }

    /// Model judges' usage over the events seen so far.
    pub fn usage(&self) -> &UsageTotals {
        &self.usage
    }

    pub fn event(&mut self, e: Event) -> io::Result<()> {
        if let Event::Result(r) = &e {
            self.usage.add(r, &self.prices);
        }
        match self.format {
            ReportFormat::Jsonl => {
                let v = match &e {
                    Event::Result(r) => serde_json::to_value(r.as_ref())?,
                    Event::Rejected(err) => {
                        json!({"error": err.to_string(), "source": {"file": err.file, "line": err.line, "column": err.column}})
                    }
                };
                serde_json::to_writer(&mut self.out, &v)?;
                self.out.write_all(b"\n")
            }
            ReportFormat::Table => {
                self.write_table_header()?;
                match &e {
                    Event::Result(r) => {
                        let rules: Vec<&str> = r
                            .violations
                            .iter()
                            .filter(|v| v.severity != tribunal_core::Severity::Warn)
                            .map(|v| v.rule.as_str())
                            .collect();
                        writeln!(
                            self.out,
                            "{:<8}  {:<32}  {:<28}  {}",
                            r.verdict.as_str(),
                            truncate(&r.trace_id, 32),
                            truncate(
                                &format!("{}:{}", short_path(&r.source.file), r.source.line),
                                28
                            ),
                            for_terminal(&dedup(rules).join(", "))
                        )?;
                        for v in r.judge_errors() {
                            writeln!(self.out, "{:<8}  {}", "", for_terminal(&v.message))?;
                        }
                        Ok(())
                    }
                    Event::Rejected(err) => writeln!(
                        self.out,
                        "{:<8}  {}",
                        "REJECTED",
                        for_terminal(&err.to_string())
                    ),
                }
            }
            ReportFormat::Json | ReportFormat::Junit | ReportFormat::Html => {
                self.held.push(e);
                Ok(())
            }
        }
    }

    /// The table's header (the configuration, then the column names), once.
    fn write_table_header(&mut self) -> io::Result<()> {
        if self.header_written {
            return Ok(());
        }
        if let Some(c) = &self.config {
            writeln!(self.out, "configuration: {}", for_terminal(c))?;
        }
        writeln!(
            self.out,
            "{:<8}  {:<32}  {:<28}  RULES",
            "VERDICT", "TRACE", "SOURCE"
        )?;
        self.header_written = true;
        Ok(())
    }

    pub fn finish(mut self, summary: &Summary, info: &RunInfo) -> io::Result<W> {
        match self.format {
            ReportFormat::Jsonl => {}
            ReportFormat::Table => {
                self.write_table_header()?;
                writeln!(self.out, "\n{}", summary_line(summary, info))?;
                write_usage_table(&mut self.out, &self.usage)?;
            }
            ReportFormat::Json => {
                let mut results = Vec::new();
                let mut errors = Vec::new();
                for e in &self.held {
                    match e {
                        Event::Result(r) => results.push(serde_json::to_value(r.as_ref())?),
                        Event::Rejected(err) => errors.push(json!({"error": err.to_string(), "source": {"file": err.file, "line": err.line, "column": err.column}})),
                    }
                }
                let doc = json!({
                    "run_id": info.run_id,
                    "config": info.config,
                    "policy_version": info.policy_version,
                    "summary": summary,
                    "usage": self.usage,
                    "results": results,
                    "errors": errors,
                });
                serde_json::to_writer_pretty(&mut self.out, &doc)?;
                self.out.write_all(b"\n")?;
            }
            ReportFormat::Junit => {
                write_junit(&mut self.out, &self.held, summary, info, &self.usage)?
            }
            ReportFormat::Html => {
                crate::html::write_html(&mut self.out, &self.held, summary, info, &self.usage)?
            }
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

/// `N traces: A allowed, E escalated, B blocked; R inputs rejected[; J with judge errors] (run ID)`.
pub fn summary_line(summary: &Summary, info: &RunInfo) -> String {
    format!(
        "{} traces: {} allowed, {} escalated, {} blocked; {} inputs rejected{}{}",
        summary.total,
        summary.allowed,
        summary.escalated,
        summary.blocked,
        summary.rejected,
        if summary.judge_errors > 0 {
            format!("; {} with judge errors", summary.judge_errors)
        } else {
            String::new()
        },
        info.run_id
            .as_ref()
            .map(|id| format!(" (run {id})"))
            .unwrap_or_default()
    )
}

/// Per-judge lines and a total, under the table report; nothing when no model judge ran.
fn write_usage_table(out: &mut impl Write, usage: &UsageTotals) -> io::Result<()> {
    if usage.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "\n{:<24}  {:<32}  {:>7}  {:>7}  {:>10}  {:>10}  COST USD",
        "MODEL JUDGE", "MODEL", "CALLS", "CACHED", "INPUT", "OUTPUT"
    )?;
    let line = |out: &mut dyn Write, name: &str, model: &str, t: &UsageTotal| {
        writeln!(
            out,
            "{:<24}  {:<32}  {:>7}  {:>7}  {:>10}  {:>10}  {}",
            truncate(name, 24),
            truncate(model, 32),
            t.calls,
            t.cached_calls,
            t.input_tokens,
            t.output_tokens,
            t.cost_text()
        )
    };
    for (name, j) in &usage.judges {
        line(out, name, &j.model, &j.usage)?;
    }
    line(out, "total", "", &usage.total)?;
    if let Some(l) = usage_line(usage).filter(|_| !usage.total.unpriced_models.is_empty()) {
        writeln!(out, "{l}")?;
    }
    Ok(())
}

/// JUnit suite properties: `tribunal.config` and `tribunal.policy_version`, and model usage
/// as `tribunal.usage.<judge>.<field>` and `tribunal.usage.total.<field>`.
fn write_properties(out: &mut impl Write, info: &RunInfo, usage: &UsageTotals) -> io::Result<()> {
    writeln!(out, "    <properties>")?;
    writeln!(
        out,
        r#"      <property name="tribunal.config" value="{}"/>"#,
        xml(&info.config)
    )?;
    writeln!(
        out,
        r#"      <property name="tribunal.policy_version" value="{}"/>"#,
        xml(&info.policy_version)
    )?;
    if usage.is_empty() {
        return writeln!(out, "    </properties>");
    }
    let entries = usage
        .judges
        .iter()
        .map(|(name, j)| (name.as_str(), Some(j.model.as_str()), &j.usage))
        .chain(std::iter::once(("total", None, &usage.total)));
    for (name, model, t) in entries {
        let prefix = format!("tribunal.usage.{name}");
        let mut props = vec![
            ("calls", t.calls.to_string()),
            ("cached_calls", t.cached_calls.to_string()),
            ("input_tokens", t.input_tokens.to_string()),
            ("output_tokens", t.output_tokens.to_string()),
            ("cost_usd", format!("{:.6}", t.cost_usd)),
        ];
        if let Some(m) = model {
            props.insert(0, ("model", m.to_owned()));
        }
        for (field, value) in props {
            writeln!(
                out,
                r#"      <property name="{}.{field}" value="{}"/>"#,
                xml(&prefix),
                xml(&value)
            )?;
        }
    }
    writeln!(out, "    </properties>")
}

fn write_junit(
    out: &mut impl Write,
    events: &[Event],
    s: &Summary,
    info: &RunInfo,
    usage: &UsageTotals,
) -> io::Result<()> {
    // A case fails when its decision fails the run; it errs when a judge that is not
    // optional gave no usable answer, or its input could not be read.
    let mut failures = 0u64;
    let mut errors = 0u64;
    let mut time = 0f64;
    for e in events {
        match e {
            Event::Result(r) => {
                failures += u64::from(info.fails(r.verdict));
                errors += u64::from(r.judge_failed());
                time += r.elapsed.as_secs_f64();
            }
            Event::Rejected(_) => errors += 1,
        }
    }
    let tests = s.total + s.rejected;
    writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(
        out,
        r#"<testsuites name="tribunal" tests="{tests}" failures="{failures}" errors="{errors}" time="{time:.3}">"#,
    )?;
    writeln!(
        out,
        r#"  <testsuite name="tribunal.eval" tests="{tests}" failures="{failures}" errors="{errors}" skipped="0" time="{time:.3}">"#,
    )?;
    write_properties(out, info, usage)?;
    for e in events {
        match e {
            Event::Result(r) => write_case(out, r, info)?,
            Event::Rejected(err) => {
                writeln!(
                    out,
                    r#"    <testcase classname="{}" name="line {}" time="0">"#,
                    xml(&class_name(&err.file)),
                    err.line
                )?;
                writeln!(
                    out,
                    r#"      <error message="{}" type="input"/>"#,
                    xml(&err.to_string())
                )?;
                writeln!(out, "    </testcase>")?;
            }
        }
    }
    writeln!(out, "  </testsuite>\n</testsuites>")
}

/// A test case's class: the input file, relative to the working directory when it is
/// inside it, with `/` as separator.
fn class_name(file: &str) -> String {
    let path = std::path::Path::new(file);
    let relative = std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(&cwd).ok().map(|p| p.to_path_buf()))
        .unwrap_or_else(|| path.to_path_buf());
    let mut name = relative
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            std::path::Component::ParentDir => Some("..".to_owned()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/");
    if name.is_empty() {
        name = file.to_owned();
    }
    name
}

fn write_case(out: &mut impl Write, r: &TraceResult, info: &RunInfo) -> io::Result<()> {
    writeln!(
        out,
        r#"    <testcase classname="{}" name="{}" time="{:.3}">"#,
        xml(&class_name(&r.source.file)),
        xml(&r.trace_id),
        r.elapsed.as_secs_f64()
    )?;
    for v in r
        .judge_errors()
        .filter(|v| v.severity != tribunal_core::Severity::Warn)
    {
        writeln!(
            out,
            r#"      <error message="{}" type="judge_error"/>"#,
            xml(&v.message)
        )?;
    }
    let body: String = r
        .violations
        .iter()
        .map(|v| {
            format!(
                "[{:?}] {}: {} (evidence: {})\n",
                v.severity,
                v.rule,
                v.message,
                v.evidence.join(", ")
            )
        })
        .collect();
    if info.fails(r.verdict) {
        writeln!(
            out,
            r#"      <failure message="{}" type="{}">{}</failure>"#,
            xml(&r.reasons.first().cloned().unwrap_or_default()),
            r.verdict.as_str(),
            xml(&body)
        )?;
    } else if r.verdict == Decision::Escalate {
        writeln!(
            out,
            "      <system-out>escalate\n{}</system-out>",
            xml(&body)
        )?;
    }
    writeln!(out, "    </testcase>")
}

fn xml(s: &str) -> String {
    escape(s)
}

/// Text for HTML or XML: `&`, `<`, `>`, `"` and `'` as entities, control characters dropped.
pub fn escape(s: &str) -> String {
    crate::html::escape(s)
}

/// `s` for a table cell of `n` characters: control characters visible, cut with `…`.
fn truncate(s: &str, n: usize) -> String {
    let s = for_terminal(s);
    if s.chars().count() <= n {
        s.into_owned()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

fn short_path(p: &str) -> &str {
    std::path::Path::new(p)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(p)
}

fn dedup(mut v: Vec<&str>) -> Vec<&str> {
    let mut seen = std::collections::HashSet::new();
    v.retain(|x| seen.insert(*x));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use tribunal_core::{Feedback, SourceType};
    use tribunal_formats::SourceRef;

    fn model_feedback(name: &str, model: &str, calls: u32, cached: u32, tokens: u64) -> Feedback {
        let mut f = Feedback::code(name, name, "yes");
        f.source.source_type = SourceType::LlmJudge;
        f.usage = Some(ModelUsage {
            model: model.into(),
            calls,
            cached_calls: cached,
            input_tokens: tokens,
            output_tokens: tokens / 10,
        });
        f
    }

    fn result(id: &str, feedback: Vec<Feedback>) -> Event {
        Event::Result(Box::new(TraceResult {
            trace_id: id.into(),
            source: SourceRef {
                file: "t.jsonl".into(),
                line: 1,
            },
            verdict: Decision::Allow,
            reasons: Vec::new(),
            feedback,
            violations: Vec::new(),
            elapsed: std::time::Duration::ZERO,
            trace: None,
        }))
    }

    /// Two traces: `grounded` asked the provider twice then answered from the cache once,
    /// `local` used a model without a price; a code metric carries no usage.
    fn report(format: ReportFormat) -> (String, UsageTotals) {
        let mut r = Reporter::new(format, Vec::new());
        r.event(result(
            "a",
            vec![
                model_feedback("grounded", "openai:/gpt-4o-mini", 2, 0, 1_000_000),
                model_feedback("local", "ollama:/llama3.1", 1, 0, 500),
                Feedback::code("step_count", "step_count", 3),
            ],
        ))
        .unwrap();
        r.event(result(
            "b",
            vec![model_feedback("grounded", "openai:/gpt-4o-mini", 1, 1, 0)],
        ))
        .unwrap();
        let usage = r.usage().clone();
        let summary = Summary {
            total: 2,
            allowed: 2,
            ..Summary::default()
        };
        let out = r.finish(&summary, &RunInfo::default()).unwrap();
        (String::from_utf8(out).unwrap(), usage)
    }

    #[test]
    fn model_usage_is_summed_per_judge_and_priced_from_the_cost_table() {
        let (_, usage) = report(ReportFormat::Jsonl);
        let grounded = &usage.judges["grounded"];
        assert_eq!(grounded.model, "openai:/gpt-4o-mini");
        assert_eq!((grounded.usage.calls, grounded.usage.cached_calls), (3, 1));
        assert_eq!(grounded.usage.input_tokens, 1_000_000);
        // gpt-4o-mini: $0.15 per million input tokens, $0.60 per million output tokens.
        assert!((grounded.usage.cost_usd - 0.21).abs() < 1e-12, "{usage:?}");
        let local = &usage.judges["local"];
        assert_eq!(local.usage.cost_usd, 0.0);
        assert!(local.usage.unpriced_models.contains("ollama:/llama3.1"));
        assert_eq!(usage.total.calls, 4);
        assert_eq!(usage.total.cached_calls, 1);
        assert_eq!(usage.total.input_tokens, 1_000_500);
        assert!(!usage.judges.contains_key("step_count"));
        let line = usage_line(&usage).unwrap();
        assert!(
            line.starts_with("model judges: 4 calls (1 cached), 1000500 input + 100050 output tokens, $0.210000 + unpriced"),
            "{line}"
        );
        assert!(line.contains("no price for ollama:/llama3.1"), "{line}");
        assert_eq!(usage_line(&UsageTotals::default()), None);
    }

    #[test]
    fn table_json_and_junit_show_the_totals() {
        let (table, _) = report(ReportFormat::Table);
        let row = |name: &str| {
            table
                .lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("no {name} row in\n{table}"))
                .split_whitespace()
                .collect::<Vec<_>>()
        };
        assert!(table.contains("MODEL JUDGE"), "{table}");
        assert_eq!(
            row("grounded"),
            [
                "grounded",
                "openai:/gpt-4o-mini",
                "3",
                "1",
                "1000000",
                "100000",
                "$0.210000"
            ]
        );
        assert_eq!(
            row("total"),
            [
                "total",
                "4",
                "1",
                "1000500",
                "100050",
                "$0.210000",
                "+",
                "unpriced"
            ]
        );

        let (json, _) = report(ReportFormat::Json);
        let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(doc["usage"]["judges"]["grounded"]["calls"], 3);
        assert_eq!(doc["usage"]["judges"]["grounded"]["cached_calls"], 1);
        assert_eq!(
            doc["usage"]["judges"]["grounded"]["model"],
            "openai:/gpt-4o-mini"
        );
        assert_eq!(
            doc["usage"]["total"]["unpriced_models"],
            json!(["ollama:/llama3.1"])
        );
        assert_eq!(
            doc["results"][0]["feedback"][0]["usage"]["input_tokens"],
            1_000_000
        );

        let (junit, _) = report(ReportFormat::Junit);
        let properties = junit.find("<properties>").unwrap();
        assert!(properties < junit.find("<testcase").unwrap(), "{junit}");
        assert!(
            junit.contains(
                r#"<property name="tribunal.usage.grounded.cost_usd" value="0.210000"/>"#
            ),
            "{junit}"
        );
        assert!(
            junit.contains(r#"<property name="tribunal.usage.total.calls" value="4"/>"#),
            "{junit}"
        );
    }

    #[test]
    fn reports_without_model_judges_have_no_usage_section() {
        let mut r = Reporter::new(ReportFormat::Table, Vec::new());
        r.event(result("a", vec![Feedback::code("x", "x", 1)]))
            .unwrap();
        let out =
            String::from_utf8(r.finish(&Summary::default(), &RunInfo::default()).unwrap()).unwrap();
        assert!(!out.contains("MODEL JUDGE"), "{out}");
        let mut r = Reporter::new(ReportFormat::Junit, Vec::new());
        r.event(result("a", Vec::new())).unwrap();
        let out =
            String::from_utf8(r.finish(&Summary::default(), &RunInfo::default()).unwrap()).unwrap();
        assert!(!out.contains("tribunal.usage"), "{out}");
        assert!(out.contains(r#"<property name="tribunal.config""#), "{out}");
    }
}
