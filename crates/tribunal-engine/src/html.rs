//! The HTML report: one self-contained page (styles inline, charts as inline SVG, no script
//! and no link to anything outside the file) with the run's summary, decisions and top rules
//! as charts, model judges' usage, and every trace's verdict, violations with their evidence,
//! judge errors and judge values. Everything from the input is escaped.

use crate::evaluator::TraceResult;
use crate::report::{RunInfo, UsageTotals};
use crate::run::{Event, Summary};
use std::collections::BTreeMap;
use std::io::{self, Write};
use tribunal_core::Decision;

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:1.5rem auto;max-width:1100px;\
padding:0 1rem;color:#1b1f24}table{border-collapse:collapse;width:100%}th,td{text-align:left;\
padding:.3rem .5rem;border-bottom:1px solid #d9dde3;vertical-align:top}code,pre{font:13px \
ui-monospace,monospace}pre{white-space:pre-wrap;word-break:break-word;margin:0}.block{color:#a1111b;\
font-weight:700}.escalate{color:#8a5a00;font-weight:700}.allow{color:#1d6b35}details{margin:.2rem 0}\
.error{color:#a1111b}svg text{font:12px system-ui,sans-serif}.dim{color:#5b6472}";

/// `&`, `<`, `>`, `"` and `'` as entities; control characters but tab and line feed dropped,
/// and U+FFFE and U+FFFF, which XML 1.0 does not allow, so JUnit reports parse; the marks
/// that reorder the text around them (bidirectional overrides, embeddings, isolates) shown
/// as a visible `\u{..}`, as the terminal reports show them, so a trace's text cannot
/// reverse a cell of the page.
pub(crate) fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\u{200e}'
            | '\u{200f}'
            | '\u{061c}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}' => o.push_str(&format!("\\u{{{:x}}}", c as u32)),
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => {}
            '\u{fffe}' | '\u{ffff}' => {}
            c => o.push(c),
        }
    }
    o
}

/// A horizontal bar chart: each bar labelled with its name and count, so it reads without
/// colour.
fn bars(out: &mut impl Write, title: &str, rows: &[(String, u64)]) -> io::Result<()> {
    let max = rows.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    let h = 22 * rows.len().max(1) + 8;
    writeln!(
        out,
        r#"<figure><figcaption>{}</figcaption><svg role="img" aria-label="{}" width="640" height="{h}" viewBox="0 0 640 {h}">"#,
        escape(title),
        escape(title)
    )?;
    for (i, (name, n)) in rows.iter().enumerate() {
        let y = 4 + 22 * i;
        let w = (*n as f64 / max as f64 * 380.0).round() as u64;
        writeln!(
            out,
            r##"<text x="0" y="{}">{}</text><rect x="200" y="{y}" width="{w}" height="16" fill="#5b6472"/><text x="{}" y="{}">{n}</text>"##,
            y + 13,
            escape(name),
            206 + w,
            y + 13
        )?;
    }
    writeln!(out, "</svg></figure>")
}

pub(crate) fn write_html(
    out: &mut impl Write,
    events: &[Event],
    summary: &Summary,
    info: &RunInfo,
    usage: &UsageTotals,
) -> io::Result<()> {
    writeln!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>Tribunal evaluation</title><style>{STYLE}</style></head><body>"
    )?;
    writeln!(out, "<h1>Tribunal evaluation</h1>")?;
    writeln!(
        out,
        "<p class=\"dim\">configuration: <code>{}</code> · policies <code>{}</code>{}</p>",
        escape(&info.config),
        escape(&info.policy_version),
        info.run_id
            .as_ref()
            .map(|id| format!(" · run <code>{}</code>", escape(id)))
            .unwrap_or_default()
    )?;
    writeln!(
        out,
        "<p id=\"summary\">{} traces: {} allowed, {} escalated, {} blocked; {} inputs rejected; {} with judge errors.</p>",
        summary.total, summary.allowed, summary.escalated, summary.blocked, summary.rejected, summary.judge_errors
    )?;
    bars(
        out,
        "Decisions",
        &[
            ("allow".into(), summary.allowed),
            ("escalate".into(), summary.escalated),
            ("block".into(), summary.blocked),
            ("rejected input".into(), summary.rejected),
        ],
    )?;
    let mut rules: BTreeMap<&str, u64> = BTreeMap::new();
    for e in events {
        if let Event::Result(r) = e {
            let mut seen: Vec<&str> = Vec::new();
            for v in &r.violations {
                if !seen.contains(&v.rule.as_str()) {
                    seen.push(&v.rule);
                    *rules.entry(&v.rule).or_default() += 1;
                }
            }
        }
    }
    let mut top: Vec<(String, u64)> = rules.into_iter().map(|(r, n)| (r.to_owned(), n)).collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    top.truncate(10);
    if !top.is_empty() {
        bars(out, "Top rules (traces)", &top)?;
    }
    if !usage.is_empty() {
        writeln!(
            out,
            "<h2>Model judges</h2><table><tr><th>Judge</th><th>Model</th><th>Calls</th><th>Cached</th><th>Input tokens</th><th>Output tokens</th><th>Cost USD</th></tr>"
        )?;
        for (name, j) in &usage.judges {
            writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.6}</td></tr>",
                escape(name),
                escape(&j.model),
                j.usage.calls,
                j.usage.cached_calls,
                j.usage.input_tokens,
                j.usage.output_tokens,
                j.usage.cost_usd
            )?;
        }
        writeln!(out, "</table>")?;
    }
    writeln!(
        out,
        "<h2>Traces</h2><table id=\"traces\"><tr><th>Verdict</th><th>Trace</th><th>Source</th><th>Why</th></tr>"
    )?;
    for e in events {
        match e {
            Event::Result(r) => trace_row(out, r)?,
            Event::Rejected(err) => writeln!(
                out,
                "<tr><td class=\"error\">rejected</td><td></td><td><code>{}:{}</code></td><td>{}</td></tr>",
                escape(&err.file),
                err.line,
                escape(&err.to_string())
            )?,
        }
    }
    writeln!(out, "</table></body></html>")
}

fn trace_row(out: &mut impl Write, r: &TraceResult) -> io::Result<()> {
    let class = match r.verdict {
        Decision::Allow => "allow",
        Decision::Escalate => "escalate",
        Decision::Block => "block",
    };
    write!(
        out,
        "<tr><td class=\"{class}\">{}</td><td><code>{}</code></td><td><code>{}:{}</code></td><td>",
        r.verdict.as_str(),
        escape(&r.trace_id),
        escape(&r.source.file),
        r.source.line
    )?;
    if !r.violations.is_empty() {
        writeln!(out, "<ul>")?;
        for v in &r.violations {
            writeln!(
                out,
                "<li><code>{}</code> <b>{:?}</b> {}{}</li>",
                escape(&v.rule),
                v.severity,
                escape(&v.message),
                if v.evidence.is_empty() {
                    String::new()
                } else {
                    format!(
                        " <span class=\"dim\">evidence: {}</span>",
                        escape(&v.evidence.join(", "))
                    )
                }
            )?;
        }
        writeln!(out, "</ul>")?;
    }
    writeln!(
        out,
        "<details><summary>{} judges</summary><table>",
        r.feedback.len()
    )?;
    for f in &r.feedback {
        let value = match &f.error {
            Some(e) => format!("<span class=\"error\">error: {}</span>", escape(e)),
            None => format!("<code>{}</code>", escape(&f.value.to_string())),
        };
        writeln!(
            out,
            "<tr><td>{}</td><td>{value}</td><td>{}</td></tr>",
            escape(&f.name),
            escape(f.rationale.as_deref().unwrap_or(""))
        )?;
    }
    writeln!(out, "</table></details></td></tr>")
}

#[cfg(test)]
mod tests {
    /// A right-to-left override in a trace id shows as text, not as a reversed cell.
    #[test]
    fn reordering_marks_are_shown_not_obeyed() {
        assert_eq!(
            super::escape("evil\u{202e}gnp.exe<b>"),
            "evil\\u{202e}gnp.exe&lt;b&gt;"
        );
    }
}
