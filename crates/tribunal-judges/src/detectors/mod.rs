//! Detectors: rule-driven scanners that find secrets, PII, injection markers and dangerous
//! commands in a trace's text. Their rules and thresholds are data (`rules/*.toml`, embedded
//! at build time and extendable from configuration), not code.
//!
//! Each detector has two faces:
//! - a scanner (`SecretScanner`, `PiiScanner`, `InjectionScanner`, `CommandScanner`) built
//!   once from typed settings, whose `scan(text, &mut hits)` works on any string without a
//!   trace — the gate server and the benchmarks call it directly;
//! - a [`Judge`] (`build(name, params)`) that walks the pieces of a trace its scope selects
//!   (in the order of [`crate::text::for_each_text`]), and returns exactly one [`Feedback`]: the value is the highest
//!   finding score (for `prompt_injection`, the highest per-text combined score), the
//!   rationale counts findings per kind, the evidence lists the location ids in order and the
//!   findings carry their [`Location`] and a safe excerpt. Given a trace that grows between
//!   calls ([`Judge::judge_grown`]), it keeps what it found in the messages seen so far and
//!   scans only the new ones and the pending step.
//!
//! The shared machinery — rule specs, compilation, prefilters, overlap handling — lives in
//! [`rules`].

pub mod commands;
pub mod injection;
mod memo;
mod pass;
pub mod pii;
pub mod rules;
pub mod secrets;
mod view;

use crate::error::JudgeConfigError;
use crate::text::string_leaves;
use crate::{state_bytes, take_state, GrowState, Judge, JudgeInput};
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use serde::Deserialize;
use std::sync::Arc;
use tribunal_core::{
    Feedback, Finding, Location, Message, Pending, Provenance, ToolCall, ToolDef, Trace,
};

pub use rules::{On, RuleSpec};

/// One detection in a piece of text.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// The rule that fired (its id).
    pub kind: Arc<str>,
    /// 0..1, from the rule.
    pub score: f64,
    /// Byte range within the scanned text.
    pub start: usize,
    pub end: usize,
}

/// Combines independent pieces of evidence into one score: `1 - Π(1 - s)`.
pub fn combined_score(hits: &[Hit]) -> f64 {
    let miss = hits
        .iter()
        .fold(1.0, |acc, h| acc * (1.0 - h.score.clamp(0.0, 1.0)));
    round4(1.0 - miss)
}

fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

/// The provenance labels content can carry (see `Provenance::label`).
pub const PROVENANCES: &[&str] = &["system", "user", "assistant", "tool", "retrieval", "agent"];
/// The fields text comes from: message contents, the strings of tool-call arguments, and
/// the tools' definitions the trace carries (their descriptions and their parameters'),
/// which the servers offering the tools wrote (provenance `tool`; a finding's id there is
/// `tools.<name>`).
pub const FIELDS: &[&str] = &["content", "arguments", "tools"];

/// The `[settings]` table every rule file starts with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileSettings {
    /// Findings scoring below this are not reported.
    pub threshold: f64,
    #[serde(default)]
    pub provenances: Vec<String>,
    #[serde(default)]
    pub fields: Vec<String>,
}

/// Parses an embedded rule file; the message names the file.
pub(crate) fn parse_rule_file<T: serde::de::DeserializeOwned>(
    file: &str,
    text: &str,
) -> Result<T, String> {
    toml::from_str(text).map_err(|e| format!("built-in rules/{file}: {e}"))
}

/// Every prefilter literal of some rules.
pub(crate) fn literals_of(rules: &[RuleSpec]) -> Vec<Vec<u8>> {
    rules
        .iter()
        .flat_map(|r| {
            r.prefilter
                .iter()
                .chain(r.prefilter_and.iter().flatten())
                .map(|l| rules::literal_key(l, r.prefilter_words))
        })
        .collect()
}

/// The span of `text` as written that bytes `s..e` of another reading of it come from
/// (`origin`: the place in `text` of each byte read, never decreasing; `s < e`): from the
/// character of the first byte to the end of the character of the last.
pub(crate) fn as_written(text: &str, origin: &[usize], s: usize, e: usize) -> (usize, usize) {
    let start = text.floor_char_boundary(origin[s]);
    let end = text.ceil_char_boundary(origin[e - 1] + 1);
    (start, end.max(start))
}

pub(crate) fn check_threshold(name: &str, setting: &str, v: f64) -> Result<f64, JudgeConfigError> {
    if v.is_finite() && (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(JudgeConfigError::invalid(
            name,
            format!("{setting}: {v} is outside 0..1"),
        ))
    }
}

/// Which pieces of a trace a detector reads.
#[derive(Debug, Clone)]
pub(crate) struct Scope {
    provenances: Vec<String>,
    fields: Vec<String>,
    tools: Option<Vec<String>>,
}

impl Scope {
    pub(crate) fn new(
        name: &str,
        provenances: &[String],
        fields: &[String],
        tools: Option<Vec<String>>,
    ) -> Result<Scope, JudgeConfigError> {
        for p in provenances {
            if !PROVENANCES.contains(&p.as_str()) {
                return Err(JudgeConfigError::invalid(
                    name,
                    format!(
                        "provenances: unknown provenance {p:?}; valid: {}",
                        PROVENANCES.join(", ")
                    ),
                ));
            }
        }
        for f in fields {
            if !FIELDS.contains(&f.as_str()) {
                return Err(JudgeConfigError::invalid(
                    name,
                    format!("fields: unknown field {f:?}; valid: {}", FIELDS.join(", ")),
                ));
            }
        }
        Ok(Scope {
            provenances: provenances.to_vec(),
            fields: fields.to_vec(),
            tools,
        })
    }

    fn accepts(&self, provenance: &str, field: &str, tool: Option<&str>) -> bool {
        self.provenances.iter().any(|p| p == provenance)
            && self.fields.iter().any(|f| f == field)
            && match (&self.tools, tool) {
                (None, _) => true,
                (Some(tools), Some(t)) => tools.iter().any(|x| x == t),
                (Some(_), None) => false,
            }
    }
}

/// One piece of text in scope, borrowed from the trace: the [`Location`] of a finding is
/// only built when there is a finding.
pub(crate) struct Piece<'a> {
    pub text: &'a str,
    id: &'a str,
    field: &'static str,
    call: Option<&'a ToolCall>,
    provenance: &'static str,
}

impl Piece<'_> {
    pub(crate) fn location(&self, start: usize, end: usize) -> Location {
        Location {
            id: self.id.to_owned(),
            field: self.field.to_owned(),
            tool_call_id: self.call.map(|c| c.id.clone()),
            tool: self.call.map(|c| c.name.clone()),
            provenance: self.provenance.to_owned(),
            start,
            end,
        }
    }
}

/// Calls `f` for every text of the trace and the pending step that `scope` reads, in the
/// order of [`crate::text::for_each_text`]: message contents and the strings inside
/// tool-call arguments.
pub(crate) fn for_each_scoped_text<'a>(
    trace: &'a Trace,
    pending: Option<&'a Pending>,
    scope: &Scope,
    mut f: impl FnMut(&Piece<'_>),
) {
    for_each_tool_text(&trace.tools, scope, &mut f);
    for_each_message_text(&trace.messages, scope, &mut f);
    for_each_pending_text(pending, scope, &mut f);
}

/// [`for_each_scoped_text`] over the tools' definitions only: each tool's description and
/// every `description` string inside its parameters' schema.
fn for_each_tool_text(tools: &[ToolDef], scope: &Scope, f: &mut impl FnMut(&Piece<'_>)) {
    let provenance = "tool";
    if tools.is_empty() || !scope.accepts(provenance, "tools", None) {
        return;
    }
    for tool in tools {
        let id = format!("tools.{}", tool.name);
        let mut piece = |text: &str| {
            if !text.is_empty() {
                f(&Piece {
                    text,
                    id: &id,
                    field: "tools",
                    call: None,
                    provenance,
                })
            }
        };
        piece(&tool.description);
        descriptions_in(&tool.parameters, &mut piece);
    }
}

/// Every string under a `description` key in a JSON schema.
fn descriptions_in(schema: &serde_json::Value, f: &mut impl FnMut(&str)) {
    match schema {
        serde_json::Value::Object(o) => {
            for (k, v) in o {
                match v {
                    serde_json::Value::String(text) if k == "description" => f(text),
                    other => descriptions_in(other, f),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| descriptions_in(v, f)),
        _ => {}
    }
}

/// Whether [`for_each_tool_text`] reads `kept` from `tools`, in order: a held trace's tools
/// have not changed for this detector.
fn same_tool_texts(tools: &[ToolDef], scope: &Scope, kept: &[String]) -> bool {
    let (mut k, mut same) = (0, true);
    for_each_tool_text(tools, scope, &mut |p| {
        same = same && kept.get(k).is_some_and(|t| t == p.text);
        k += 1;
    });
    same && k == kept.len()
}

/// [`for_each_scoped_text`] over some messages only.
fn for_each_message_text(messages: &[Message], scope: &Scope, f: &mut impl FnMut(&Piece<'_>)) {
    for m in messages {
        let provenance = m.provenance.label();
        pieces(&m.id, provenance, &m.content, &m.tool_calls, scope, f);
    }
}

/// [`for_each_scoped_text`] over the pending step only.
fn for_each_pending_text(pending: Option<&Pending>, scope: &Scope, f: &mut impl FnMut(&Piece<'_>)) {
    if let Some(p) = pending {
        // The pending step reads as the agent's next turn.
        let provenance = Provenance::Assistant.label();
        pieces(Pending::ID, provenance, &p.content, &p.tool_calls, scope, f);
    }
}

fn pieces<'a>(
    id: &'a str,
    provenance: &'static str,
    content: &'a str,
    calls: &'a [ToolCall],
    scope: &Scope,
    f: &mut impl FnMut(&Piece<'_>),
) {
    if !content.is_empty() && scope.accepts(provenance, "content", None) {
        f(&Piece {
            text: content,
            id,
            field: "content",
            call: None,
            provenance,
        });
    }
    for c in calls {
        if scope.accepts(provenance, "arguments", Some(&c.name)) {
            string_leaves(&c.arguments, &mut |t| {
                f(&Piece {
                    text: t,
                    id,
                    field: "arguments",
                    call: Some(c),
                    provenance,
                })
            });
        }
    }
}

/// What the generic detector judge needs from a scanner.
pub(crate) trait Scanner: Send + Sync {
    fn scan_text(&self, text: &str, out: &mut Vec<Hit>);
}

/// How the hits of one text make its score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Combine {
    /// The strongest hit.
    Max,
    /// `1 - Π(1 - s)` over the hits.
    NoisyOr,
}

/// A detector judge whose scope comes from its settings, else from its rule file's defaults.
pub(crate) fn scoped_judge<S: Scanner + 'static>(
    name: &str,
    scanner: S,
    provenances: &[String],
    fields: &[String],
    combine: Combine,
    excerpt: fn(&str, usize, usize) -> String,
) -> Result<Box<dyn Judge>, JudgeConfigError> {
    let scope = Scope::new(name, provenances, fields, None)?;
    Ok(Box::new(DetectorJudge::new(
        name, scanner, scope, combine, excerpt,
    )))
}

/// The judge every detector uses: scan the texts in scope, collect findings, one feedback.
pub(crate) struct DetectorJudge<S> {
    pub name: String,
    pub scanner: S,
    pub scope: Scope,
    pub combine: Combine,
    pub excerpt: fn(&str, usize, usize) -> String,
    /// Hits per text for [`Judge::judge_memo`].
    memo: memo::ScanMemo,
}

impl<S: Scanner> Judge for DetectorJudge<S> {
    fn name(&self) -> &str {
        &self.name
    }

    fn judge(&self, input: &JudgeInput<'_>) -> Vec<Feedback> {
        self.run(input, false)
    }

    fn judge_memo(&self, input: &JudgeInput<'_>) -> Vec<Feedback> {
        self.run(input, true)
    }

    fn judge_grown(&self, input: &JudgeInput<'_>, state: &mut GrowState) -> Vec<Feedback> {
        let messages = &input.trace.messages;
        let mut grown = take_state::<Grown>(state, messages.len(), |g| g.messages);
        let mut hits = Vec::new();
        // A trace judged from its start goes through the memo (its texts may have been seen
        // in other traces: system prompts, a trace sent whole again); the new messages of a
        // continued one are scanned once here and kept in the state, so keeping them in the
        // memo too would only churn memory.
        let memo = grown.messages == 0;
        // The tools' definitions, read again only when they change.
        let tools = &input.trace.tools;
        if !grown
            .tools
            .as_ref()
            .is_some_and(|(kept, _)| same_tool_texts(tools, &self.scope, kept))
        {
            let (mut texts, mut found) = (Vec::new(), Found::default());
            for_each_tool_text(tools, &self.scope, &mut |t| {
                texts.push(t.text.to_owned());
                self.scan_piece(t, true, &mut hits, &mut found)
            });
            grown.tools = Some((texts, found));
        }
        for_each_message_text(&messages[grown.messages..], &self.scope, &mut |t| {
            self.scan_piece(t, memo, &mut hits, &mut grown.found)
        });
        grown.messages = messages.len();
        // The same pending step as on the last call (a retry, the trace sent again) finds
        // what it found then.
        let now = match (&grown.pending, input.pending) {
            (Some((last, found)), Some(p)) if last == p => found.clone(),
            _ => {
                let mut now = Found::default();
                for_each_pending_text(input.pending, &self.scope, &mut |t| {
                    self.scan_piece(t, true, &mut hits, &mut now)
                });
                grown.pending = input.pending.map(|p| (p.clone(), now.clone()));
                now
            }
        };
        let tools = grown.tools.as_ref().map(|(_, f)| f);
        let findings = tools
            .into_iter()
            .flat_map(|f| f.findings.iter().cloned())
            .chain(grown.found.findings.iter().cloned())
            .chain(now.findings)
            .collect();
        let out = self.feedback(
            findings,
            tools.map_or(0, |f| f.scanned) + grown.found.scanned + now.scanned,
            tools
                .map_or(0.0, |f| f.best)
                .max(grown.found.best)
                .max(now.best),
        );
        *state = Some(grown);
        vec![out]
    }

    fn state_bytes(&self, state: &GrowState) -> usize {
        state_bytes::<Grown>(state)
    }
}

/// What a detector found in some texts.
#[derive(Default, Clone)]
struct Found {
    findings: Vec<Finding>,
    /// The highest per-text value.
    best: f64,
    /// Texts scanned.
    scanned: usize,
}

/// What a detector keeps of a growing trace: what it found in its first `messages` messages.
#[derive(Default)]
struct Grown {
    messages: usize,
    found: Found,
    /// The texts of the tools' definitions this detector read, and what they gave.
    tools: Option<(Vec<String>, Found)>,
    /// The last pending step and what it found.
    pending: Option<(Pending, Found)>,
}

impl tribunal_core::Heap for Found {
    fn heap(&self) -> usize {
        self.findings.heap()
    }
}

impl tribunal_core::Heap for Grown {
    fn heap(&self) -> usize {
        self.found.heap() + self.pending.heap() + self.tools.heap()
    }
}

impl<S: Scanner> DetectorJudge<S> {
    pub(crate) fn new(
        name: &str,
        scanner: S,
        scope: Scope,
        combine: Combine,
        excerpt: fn(&str, usize, usize) -> String,
    ) -> DetectorJudge<S> {
        DetectorJudge {
            name: name.to_owned(),
            scanner,
            scope,
            combine,
            excerpt,
            memo: memo::ScanMemo::new(memo::BUDGET),
        }
    }

    fn run(&self, input: &JudgeInput<'_>, memo: bool) -> Vec<Feedback> {
        let mut found = Found::default();
        let mut hits = Vec::new();
        for_each_scoped_text(input.trace, input.pending, &self.scope, |t| {
            self.scan_piece(t, memo, &mut hits, &mut found)
        });
        vec![self.feedback(found.findings, found.scanned, found.best)]
    }

    /// Scans one text (through the memo when `memo`) into `found`; `hits` is scratch space.
    fn scan_piece(&self, t: &Piece<'_>, memo: bool, hits: &mut Vec<Hit>, found: &mut Found) {
        found.scanned += 1;
        hits.clear();
        if memo {
            self.memo
                .scan(t.text, hits, |text, out| self.scanner.scan_text(text, out));
        } else {
            self.scanner.scan_text(t.text, hits);
        }
        if hits.is_empty() {
            return;
        }
        let value = match self.combine {
            Combine::Max => hits.iter().map(|h| h.score).fold(0.0, f64::max),
            Combine::NoisyOr => combined_score(hits),
        };
        found.best = found.best.max(value);
        for h in hits.drain(..) {
            found.findings.push(Finding {
                kind: h.kind.to_string(),
                score: h.score,
                location: t.location(h.start, h.end),
                excerpt: (self.excerpt)(t.text, h.start, h.end),
            });
        }
    }

    /// The one feedback of the detector.
    fn feedback(&self, findings: Vec<Finding>, scanned: usize, best: f64) -> Feedback {
        let mut evidence: Vec<String> = Vec::new();
        let mut counts: Vec<(&str, usize)> = Vec::new();
        for f in &findings {
            if !evidence.contains(&f.location.id) {
                evidence.push(f.location.id.clone());
            }
            match counts.iter_mut().find(|(k, _)| *k == f.kind) {
                Some((_, n)) => *n += 1,
                None => counts.push((&f.kind, 1)),
            }
        }
        let texts = if scanned == 1 { "text" } else { "texts" };
        let rationale = if findings.is_empty() {
            format!("no findings in {scanned} {texts}")
        } else {
            let per_kind: Vec<String> = counts.iter().map(|(k, n)| format!("{k}: {n}")).collect();
            let s = if findings.len() == 1 { "" } else { "s" };
            format!(
                "{} finding{s} in {scanned} {texts} ({})",
                findings.len(),
                per_kind.join(", ")
            )
        };
        let mut fb = Feedback::code(&self.name, self.name.clone(), round4(best))
            .with_rationale(rationale)
            .with_evidence(evidence);
        fb.findings = findings;
        fb
    }
}

const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_allow_trailing_bits(true)
    .with_decode_padding_mode(DecodePaddingMode::Indifferent);
/// Standard base64, padding optional, trailing bits tolerated.
pub(crate) const B64_STD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
/// URL-safe base64, padding optional, trailing bits tolerated.
pub(crate) const B64_URL: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

/// Bytes of base64 (both alphabets) and hex runs: letters, digits, `+ / - _`. The runs of
/// these a text holds are found once per text ([`pass::Pass::long_runs`]); the secrets'
/// token runs (without `-` and `_`) lie within them.
pub(crate) static RUN_BYTES: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        if b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'-' || b == b'_' {
            t[c] = u32::MAX;
        }
        c += 1;
    }
    t
};

/// The shortest run of [`RUN_BYTES`] found once per text: a scanner that wants shorter runs
/// looks for them itself.
pub(crate) const LONG_RUN: usize = 15;

/// The maximal run of `table` bytes around `b[at]` (one of them), not reaching back before
/// `from`.
fn run_around(b: &[u8], from: usize, at: usize, table: &[u32; 256]) -> (usize, usize) {
    let member = |c: u8| table[c as usize] != 0;
    let mut start = at;
    while start > from && member(b[start - 1]) {
        start -= 1;
    }
    let mut end = at + 1;
    while end < b.len() && member(b[end]) {
        end += 1;
    }
    (start, end)
}

/// [`for_each_run`] for `min` of 15 or more.
fn for_each_long_run(b: &[u8], min: usize, table: &[u32; 256], mut f: impl FnMut(usize, usize)) {
    // Where the next run may start: nothing before it is part of a run not yet reported.
    let mut from = 0;
    let mut block = 0;
    while let Some(w) = b.get(block..block + 8) {
        let all = w.iter().fold(u32::MAX, |acc, &c| acc & table[c as usize]);
        if all == 0 {
            block += 8;
            continue;
        }
        let (start, end) = run_around(b, from, block, table);
        if end - start >= min {
            f(start, end);
        }
        // `b[end]` is not in the table (or the text ends there): the next run starts after
        // it and holds the first whole block from there.
        from = end + 1;
        block = from.div_ceil(8) * 8;
    }
}

/// Calls `f(start, end)` for each maximal run of `min` bytes or more whose `table` entries
/// are not zero, in order.
///
/// A run of 15 bytes or more holds a whole block of eight bytes at a multiple of eight, so
/// for such lengths only those blocks are looked at, eight bytes at once without a branch
/// per byte, until one is all in the table; the run around it is then found by walking both
/// ways. Shorter runs hold one of the bytes at `min - 1`, `2 min - 1`, … counted from where
/// the last run ended, so only those are looked at. Prose, whose words are shorter than
/// `min`, costs about one look per byte, or per `min` bytes.
pub(crate) fn for_each_run(
    b: &[u8],
    min: usize,
    table: &[u32; 256],
    mut f: impl FnMut(usize, usize),
) {
    if min >= 15 {
        return for_each_long_run(b, min, table, f);
    }
    let min = min.max(1);
    let member = |c: u8| table[c as usize] != 0;
    // Where the next run may start: nothing before it is part of a run not yet reported.
    let mut from = 0;
    let mut probe = min - 1;
    while probe < b.len() {
        if !member(b[probe]) {
            from = probe + 1;
            probe += min;
            continue;
        }
        let (start, end) = run_around(b, from, probe, table);
        if end - start >= min {
            f(start, end);
        }
        // `b[end]` is not in the table (or the text ends there).
        from = end + 1;
        probe = end + min;
    }
}

/// Generated texts for the tests that compare a fast scan with a byte-by-byte one.
#[cfg(test)]
pub(crate) mod generated {
    /// `count` texts of up to `max_len` bytes drawn from `alphabet`, from `seed`: each text
    /// takes its bytes from the first `dense` of the alphabet in a share of its own (none to
    /// nine tenths) and from the rest otherwise, so runs of every length occur.
    pub(crate) fn texts(
        seed: u64,
        count: usize,
        max_len: usize,
        alphabet: &[u8],
        dense: usize,
    ) -> impl Iterator<Item = Vec<u8>> + '_ {
        let mut seed = seed;
        let mut next = move |n: usize| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize % n
        };
        (0..count).map(move |_| {
            let len = next(max_len);
            let share = next(10);
            (0..len)
                .map(|_| {
                    if next(10) < share {
                        alphabet[next(dense)]
                    } else {
                        alphabet[dense + next(alphabet.len() - dense)]
                    }
                })
                .collect()
        })
    }
}
