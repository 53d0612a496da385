//! Reports: a readable table, JSON, JSONL (one object per trace) and JUnit XML.
//! JSONL and the table stream; JSON and JUnit hold the run's results until the end.

use crate::evaluator::TraceResult;
use crate::run::{Event, Summary};
use serde_json::json;
use std::io::{self, Write};
use tribunal_core::Decision;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Table,
    Json,
    Jsonl,
    Junit,
}

impl ReportFormat {
    pub const NAMES: &'static [&'static str] = &["table", "json", "jsonl", "junit"];

    pub fn parse(s: &str) -> Option<ReportFormat> {
        Some(match s {
            "table" => ReportFormat::Table,
            "json" => ReportFormat::Json,
            "jsonl" => ReportFormat::Jsonl,
            "junit" => ReportFormat::Junit,
            _ => return None,
        })
    }
}

/// Facts about the run printed in the reports.
#[derive(Debug, Clone, Default)]
pub struct RunInfo {
    pub run_id: Option<String>,
    pub policy_version: String,
}

/// Writes one report as events arrive.
pub struct Reporter<W: Write> {
    format: ReportFormat,
    out: W,
    held: Vec<Event>,
    header_written: bool,
}

impl<W: Write> Reporter<W> {
    pub fn new(format: ReportFormat, out: W) -> Reporter<W> {
        Reporter {
            format,
            out,
            held: Vec::new(),
            header_written: false,
        }
    }

    pub fn event(&mut self, e: Event) -> io::Result<()> {
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
                if !self.header_written {
                    writeln!(
                        self.out,
                        "{:<8}  {:<32}  {:<28}  RULES",
                        "VERDICT", "TRACE", "SOURCE"
                    )?;
                    self.header_written = true;
                }
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
                            dedup(rules).join(", ")
                        )
                    }
                    Event::Rejected(err) => writeln!(self.out, "{:<8}  {}", "REJECTED", err),
                }
            }
            ReportFormat::Json | ReportFormat::Junit => {
                self.held.push(e);
                Ok(())
            }
        }
    }

    pub fn finish(mut self, summary: &Summary, info: &RunInfo) -> io::Result<W> {
        match self.format {
            ReportFormat::Jsonl => {}
            ReportFormat::Table => {
                writeln!(self.out, "\n{}", summary_line(summary, info))?;
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
                    "policy_version": info.policy_version,
                    "summary": summary,
                    "results": results,
                    "errors": errors,
                });
                serde_json::to_writer_pretty(&mut self.out, &doc)?;
                self.out.write_all(b"\n")?;
            }
            ReportFormat::Junit => write_junit(&mut self.out, &self.held, summary)?,
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

/// `N traces: A allowed, E escalated, B blocked; R inputs rejected (run ID)`.
pub fn summary_line(summary: &Summary, info: &RunInfo) -> String {
    format!(
        "{} traces: {} allowed, {} escalated, {} blocked; {} inputs rejected{}",
        summary.total,
        summary.allowed,
        summary.escalated,
        summary.blocked,
        summary.rejected,
        info.run_id
            .as_ref()
            .map(|id| format!(" (run {id})"))
            .unwrap_or_default()
    )
}

fn write_junit(out: &mut impl Write, events: &[Event], s: &Summary) -> io::Result<()> {
    writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(
        out,
        r#"<testsuites name="tribunal" tests="{}" failures="{}" errors="{}">"#,
        s.total + s.rejected,
        s.blocked,
        s.rejected
    )?;
    writeln!(
        out,
        r#"  <testsuite name="tribunal.eval" tests="{}" failures="{}" errors="{}" skipped="0">"#,
        s.total + s.rejected,
        s.blocked,
        s.rejected
    )?;
    for e in events {
        match e {
            Event::Result(r) => write_case(out, r)?,
            Event::Rejected(err) => {
                writeln!(
                    out,
                    r#"    <testcase classname="{}" name="line {}">"#,
                    xml(&err.file),
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

fn write_case(out: &mut impl Write, r: &TraceResult) -> io::Result<()> {
    writeln!(
        out,
        r#"    <testcase classname="{}" name="{}">"#,
        xml(&r.source.file),
        xml(&r.trace_id)
    )?;
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
    match r.verdict {
        Decision::Block => writeln!(
            out,
            r#"      <failure message="{}" type="block">{}</failure>"#,
            xml(&r.reasons.first().cloned().unwrap_or_default()),
            xml(&body)
        )?,
        Decision::Escalate => writeln!(
            out,
            "      <system-out>escalate\n{}</system-out>",
            xml(&body)
        )?,
        Decision::Allow => {}
    }
    writeln!(out, "    </testcase>")
}

fn xml(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => {}
            c => o.push(c),
        }
    }
    o
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
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
