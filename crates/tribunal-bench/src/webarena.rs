//! WebArena: task configs (`config_files/<id>.json`, or one JSON array of them) and the
//! agent's results.
//!
//! A task config has `eval: {eval_types, reference_answers: {exact_match | must_include |
//! fuzzy_match}, reference_url, url_note, program_html, string_note}`. The task's score is
//! the product of its evaluators' scores; the success rate is the mean of the 0/1 scores.
//! Re-scored here as the reference evaluators do it:
//! - `string_match` on the final answer, cleaned (strip, one pair of surrounding quotes,
//!   lowercase): `exact_match` compares cleaned strings; `must_include` needs every cleaned
//!   reference inside the cleaned answer, except that a one-character reference that is the
//!   only entry is matched against the answer's tokens (so "0" does not match "10");
//!   `fuzzy_match` asks an LLM (only "correct" scores 1); `"N/A"` marks an unachievable task:
//!   an answer of exactly "N/A" scores 1, anything else is graded by an LLM against
//!   `string_note`.
//! - `url_match` on the final URL (trailing `/` stripped): some reference's host and path
//!   (any of `A |OR| B`) must be contained in the prediction's, and every query key of the
//!   references must have one of its values in the prediction's query.
//! - `program_html` needs the live site: reported as not re-scorable offline.
//!
//! Without an [`LlmGrader`], tasks that need one are counted separately and left out of the
//! success rate, which is then given over the tasks that could be scored, with bounds over
//! all tasks.
//!
//! The results format (there is no standard one): JSON Lines, a JSON array or a folder of
//! JSON files, one record per task `{task_id, answer, url, score?, cost?}` (`answer` is the
//! stop action's answer; also read from `final_answer`, `prediction` or `response`; `url`
//! also from `final_url`, `last_url` or `page_url`).

use crate::error::{GraderError, LoadError, ScoreError};
use crate::load::{self, At};
use crate::py;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use tribunal_core::terminal::escape;

// ---------------------------------------------------------------------------------------
// The LLM grader interface

/// What an LLM grader says about a prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Grade {
    Correct,
    PartiallyCorrect,
    Incorrect,
}

/// A judge for `fuzzy_match`. Only [`Grade::Correct`] scores 1, as in the reference.
pub trait LlmGrader {
    /// Is `prediction` a correct answer to `question`, given the `reference` answer?
    fn grade(
        &self,
        question: &str,
        reference: &str,
        prediction: &str,
    ) -> Result<Grade, GraderError>;

    /// For an unachievable task: does `prediction` give the same reason as `reference` (the
    /// task's `string_note`)? Defaults to [`LlmGrader::grade`].
    fn grade_unachievable(
        &self,
        question: &str,
        reference: &str,
        prediction: &str,
    ) -> Result<Grade, GraderError> {
        self.grade(question, reference, prediction)
    }
}

// ---------------------------------------------------------------------------------------
// Task configs and results

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EvalType {
    StringMatch,
    UrlMatch,
    ProgramHtml,
}

impl EvalType {
    pub fn as_str(self) -> &'static str {
        match self {
            EvalType::StringMatch => "string_match",
            EvalType::UrlMatch => "url_match",
            EvalType::ProgramHtml => "program_html",
        }
    }

    fn parse(s: &str) -> Option<EvalType> {
        Some(match s {
            "string_match" => EvalType::StringMatch,
            "url_match" => EvalType::UrlMatch,
            "program_html" => EvalType::ProgramHtml,
            _ => return None,
        })
    }
}

/// One entry of `reference_answers`, in file order.
#[derive(Debug, Clone, PartialEq)]
pub enum Reference {
    ExactMatch(String),
    MustInclude(Vec<String>),
    FuzzyMatch(Vec<String>),
    /// `fuzzy_match: "N/A"`: the task cannot be done.
    Unachievable,
    /// A key the reference evaluator ignores.
    Ignored(String),
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct TaskConfig {
    pub task_id: String,
    pub intent: String,
    pub eval_types: Vec<EvalType>,
    pub references: Vec<Reference>,
    pub reference_url: Option<String>,
    pub url_note: Option<String>,
    pub string_note: Option<String>,
    pub file: String,
    pub line: Option<u64>,
}

/// What the agent ended with on one task.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AgentResult {
    pub task_id: String,
    /// The stop action's answer ("" when the agent did not stop with an answer).
    pub answer: String,
    /// The page URL at the end.
    pub url: Option<String>,
    /// The score the run recorded, if any.
    pub recorded_score: Option<f64>,
    pub cost: Option<f64>,
    pub file: String,
    pub line: Option<u64>,
}

// ---------------------------------------------------------------------------------------
// The matchers

/// `clean_answer`: strip, drop one pair of surrounding quotes, lowercase.
pub fn clean_answer(answer: &str) -> String {
    let a = py::strip(answer);
    let inner = |a: &str| {
        if a.len() >= 2 {
            a[1..a.len() - 1].to_owned()
        } else {
            String::new()
        }
    };
    let unquoted =
        if (a.starts_with('\'') && a.ends_with('\'')) || (a.starts_with('"') && a.ends_with('"')) {
            inner(a)
        } else {
            a.to_owned()
        };
    unquoted.to_lowercase()
}

/// `exact_match`: the cleaned strings are equal.
pub fn exact_match(reference: &str, prediction: &str) -> bool {
    clean_answer(prediction) == clean_answer(reference)
}

/// `must_include`: the cleaned reference is inside the cleaned prediction; with `tokenize`
/// (the reference is the only entry) a one-character reference must be a whole token.
pub fn must_include(reference: &str, prediction: &str, tokenize: bool) -> bool {
    let r = clean_answer(reference);
    let p = clean_answer(prediction);
    if tokenize && r.chars().count() == 1 && word_tokenize(&r).len() == 1 {
        word_tokenize(&p).contains(&r)
    } else {
        p.contains(r.as_str())
    }
}

/// The words of a text as NLTK's `word_tokenize` splits them, closely enough for the one
/// place WebArena uses it (is a one-character reference a whole token?): sentences end at
/// `.`, `!` or `?` followed by white space; punctuation, brackets, quotes and symbols become
/// tokens; a comma or colon is split off unless a digit follows (`1,000` stays one token); a
/// sentence's final period is split off; `'s`, `n't`, `'ll`, ... are split from their word.
pub fn word_tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    for sentence in split_sentences(text) {
        tokenize_sentence(sentence, &mut tokens);
    }
    tokens
}

fn split_sentences(text: &str) -> Vec<&str> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < chars.len() {
        let (_, c) = chars[i];
        if matches!(c, '.' | '!' | '?') {
            // Closing quotes and brackets belong to the sentence.
            let mut j = i + 1;
            while j < chars.len() && matches!(chars[j].1, '"' | '\'' | ')' | ']' | '}' | '”' | '’')
            {
                j += 1;
            }
            if j < chars.len() && py::is_space(chars[j].1) {
                let end = chars[j].0;
                out.push(&text[start..end]);
                while j < chars.len() && py::is_space(chars[j].1) {
                    j += 1;
                }
                start = chars.get(j).map_or(text.len(), |c| c.0);
                i = j;
                continue;
            }
        }
        i += 1;
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

fn tokenize_sentence(sentence: &str, tokens: &mut Vec<String>) {
    let chars: Vec<char> = sentence.chars().collect();
    // The sentence-final period (not part of "..."), before trailing quotes and brackets.
    let mut final_period = None;
    let mut k = chars.len();
    while k > 0 && py::is_space(chars[k - 1]) {
        k -= 1;
    }
    while k > 0 && matches!(chars[k - 1], ']' | ')' | '}' | '>' | '"' | '\'') {
        k -= 1;
    }
    if k >= 2 && chars[k - 1] == '.' && chars[k - 2] != '.' {
        final_period = Some(k - 1);
    }
    let mut spaced = String::with_capacity(sentence.len() * 2);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if Some(i) == final_period {
            spaced.push_str(" . ");
        } else if c == '.' && next == Some('.') {
            let mut j = i;
            while j < chars.len() && chars[j] == '.' {
                j += 1;
            }
            spaced.push(' ');
            spaced.extend(&chars[i..j]);
            spaced.push(' ');
            i = j;
            continue;
        } else if matches!(c, ',' | ':') {
            if next.is_some_and(|n| n.is_ascii_digit()) {
                spaced.push(c);
            } else {
                spaced.push(' ');
                spaced.push(c);
                spaced.push(' ');
            }
        } else if c == '-' && next == Some('-') {
            spaced.push_str(" -- ");
            i += 2;
            continue;
        } else if matches!(
            c,
            ';' | '@'
                | '#'
                | '$'
                | '%'
                | '&'
                | '?'
                | '!'
                | '*'
                | '('
                | ')'
                | '['
                | ']'
                | '{'
                | '}'
                | '<'
                | '>'
                | '"'
                | '`'
                | '«'
                | '»'
                | '“'
                | '”'
                | '‘'
                | '’'
                | '„'
        ) {
            spaced.push(' ');
            spaced.push(c);
            spaced.push(' ');
        } else if c == '\'' {
            // Contractions and possessives start a token: it's -> it 's, don't -> do n't.
            let in_nt =
                i > 0 && matches!(chars[i - 1], 'n' | 'N') && matches!(next, Some('t' | 'T'));
            if !in_nt {
                spaced.push(' ');
            }
            spaced.push(c);
        } else if (c == 'n' || c == 'N')
            && matches!(next, Some('\''))
            && matches!(chars.get(i + 2), Some('t' | 'T'))
            && i > 0
        {
            spaced.push(' ');
            spaced.push(c);
        } else {
            spaced.push(c);
        }
        i += 1;
    }
    tokens.extend(
        spaced
            .split(py::is_space)
            .filter(|t| !t.is_empty())
            .map(str::to_owned),
    );
}

/// The parts of a URL the reference compares: `netloc + path`, and the query as
/// `parse_qs` reads it (blank values dropped, `+` and `%XX` decoded).
pub fn parse_url(url: &str) -> (String, BTreeMap<String, Vec<String>>) {
    let url: String = url
        .trim_start_matches(|c: char| c <= ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\r' | '\n'))
        .collect();
    let mut rest = url.as_str();
    let mut scheme = String::new();
    if let Some(i) = rest.find(':') {
        let candidate = &rest[..i];
        let first_ok = candidate
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic());
        if i > 0
            && first_ok
            && candidate
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        {
            scheme = candidate.to_ascii_lowercase();
            rest = &rest[i + 1..];
        }
    }
    let mut netloc = "";
    if let Some(after) = rest.strip_prefix("//") {
        let delim = after.find(['/', '?', '#']).unwrap_or(after.len());
        netloc = &after[..delim];
        rest = &after[delim..];
    }
    if let Some(i) = rest.find('#') {
        rest = &rest[..i];
    }
    let (mut path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, q),
        None => (rest, ""),
    };
    const USES_PARAMS: &[&str] = &[
        "", "ftp", "hdl", "prospero", "http", "imap", "https", "shttp", "rtsp", "rtspu", "sip",
        "sips", "mms", "sftp", "tel",
    ];
    if USES_PARAMS.contains(&scheme.as_str()) && path.contains(';') {
        let from = path.rfind('/').unwrap_or(0);
        if let Some(j) = path[from..].find(';') {
            path = &path[..from + j];
        }
    }
    let mut params: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for part in query.split('&') {
        let Some((k, v)) = part.split_once('=') else {
            continue;
        };
        if v.is_empty() {
            continue;
        }
        params
            .entry(unquote(&k.replace('+', " ")))
            .or_default()
            .push(unquote(&v.replace('+', " ")));
    }
    (format!("{netloc}{path}"), params)
}

/// `urllib.parse.unquote`: `%XX` escapes decoded as UTF-8, invalid bytes replaced.
fn unquote(s: &str) -> String {
    if !s.contains('%') {
        return s.to_owned();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `url_match` with the rule "GOLD in PRED". `reference_url` may list alternatives joined
/// by ` |OR| `.
pub fn url_match(reference_url: &str, prediction: &str) -> bool {
    let clean = |u: &str| u.trim_end_matches('/').to_owned();
    let pred = clean(prediction);
    let mut ref_bases = Vec::new();
    let mut ref_queries: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in reference_url.split(" |OR| ") {
        let (base, query) = parse_url(&clean(r));
        ref_bases.push(base);
        for (k, vs) in query {
            let e = ref_queries.entry(k).or_default();
            for v in vs {
                if !e.contains(&v) {
                    e.push(v);
                }
            }
        }
    }
    let (pred_base, pred_query) = parse_url(&pred);
    let base_ok = ref_bases.iter().any(|b| pred_base.contains(b.as_str()));
    let query_ok = ref_queries.iter().all(|(k, values)| {
        let got = pred_query.get(k);
        values
            .iter()
            .any(|v| got.is_some_and(|g| g.iter().any(|x| x == v)))
    });
    base_ok && query_ok
}

// ---------------------------------------------------------------------------------------
// Evaluation

/// Why a task (or one evaluator of it) could not be scored.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case", tag = "reason", content = "detail")]
pub enum Unscored {
    /// `fuzzy_match`, or an unachievable task answered with more than "N/A".
    NeedsLlmJudge,
    /// `program_html`.
    NeedsLiveSite,
    /// `url_match` but the result has no final URL.
    MissingUrl,
    /// `url_match` with a `url_note` other than "GOLD in PRED".
    UnknownUrlRule(String),
    GraderFailed(String),
}

impl Unscored {
    pub fn describe(&self) -> String {
        match self {
            Unscored::NeedsLlmJudge => "needs an LLM judge (fuzzy_match), not scored".into(),
            Unscored::NeedsLiveSite => {
                "needs the live site (program_html), not re-scorable offline".into()
            }
            Unscored::MissingUrl => {
                "needs the final URL (url_match), which the result lacks".into()
            }
            Unscored::UnknownUrlRule(r) => format!("unknown url_note {r:?}, not scored"),
            Unscored::GraderFailed(e) => format!("the LLM grader failed: {e}"),
        }
    }
}

/// A score that may depend on something unavailable offline.
#[derive(Debug, Clone, PartialEq)]
enum Partial {
    Known(f64),
    Unknown(Unscored),
}

impl Partial {
    fn times(self, other: Partial) -> Partial {
        match (self, other) {
            (Partial::Known(a), Partial::Known(b)) => Partial::Known(a * b),
            // The unknown factor is 0 or 1: a known 0 decides the product.
            (Partial::Known(z), Partial::Unknown(_)) | (Partial::Unknown(_), Partial::Known(z))
                if z == 0.0 =>
            {
                Partial::Known(0.0)
            }
            (Partial::Unknown(u), _) | (_, Partial::Unknown(u)) => Partial::Unknown(u),
        }
    }

    fn from_bool(b: bool) -> Partial {
        Partial::Known(if b { 1.0 } else { 0.0 })
    }

    fn outcome(self) -> Outcome {
        match self {
            Partial::Known(1.0) => Outcome::Pass,
            Partial::Known(_) => Outcome::Fail,
            Partial::Unknown(u) => Outcome::NotScored(u),
        }
    }
}

fn graded(g: Result<Grade, GraderError>) -> Partial {
    match g {
        Ok(Grade::Correct) => Partial::Known(1.0),
        Ok(_) => Partial::Known(0.0),
        Err(e) => Partial::Unknown(Unscored::GraderFailed(e.0)),
    }
}

/// The result of one evaluator or one task.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Fail,
    NotScored(Unscored),
}

/// `string_match` on an answer.
fn string_match(task: &TaskConfig, answer: &str, grader: Option<&dyn LlmGrader>) -> Partial {
    let pred = clean_answer(answer);
    let mut score = Partial::Known(1.0);
    for r in &task.references {
        match r {
            Reference::ExactMatch(v) => {
                score = score.times(Partial::from_bool(exact_match(v, &pred)));
            }
            Reference::MustInclude(values) => {
                let tokenize = values.len() == 1;
                for v in values {
                    score = score.times(Partial::from_bool(must_include(v, &pred, tokenize)));
                }
            }
            Reference::FuzzyMatch(values) => {
                for v in values {
                    if score == Partial::Known(0.0) {
                        break;
                    }
                    let s = match grader {
                        None => Partial::Unknown(Unscored::NeedsLlmJudge),
                        Some(g) => graded(g.grade(&task.intent, v, &pred)),
                    };
                    score = score.times(s);
                }
            }
            Reference::Unachievable => {
                score = score.times(Partial::from_bool(exact_match("N/A", &pred)));
                if score != Partial::Known(1.0) {
                    score = match (&score, grader) {
                        // Already unknown: it stays unknown whichever way it would go.
                        (Partial::Unknown(_), _) => score,
                        (_, None) => Partial::Unknown(Unscored::NeedsLlmJudge),
                        (_, Some(g)) => graded(g.grade_unachievable(
                            &task.intent,
                            task.string_note.as_deref().unwrap_or(""),
                            &pred,
                        )),
                    };
                }
            }
            Reference::Ignored(_) => {}
        }
    }
    score
}

fn evaluator(
    t: EvalType,
    task: &TaskConfig,
    result: &AgentResult,
    grader: Option<&dyn LlmGrader>,
) -> Partial {
    match t {
        EvalType::StringMatch => string_match(task, &result.answer, grader),
        EvalType::UrlMatch => {
            let rule = task.url_note.as_deref().unwrap_or("GOLD in PRED");
            if rule != "GOLD in PRED" {
                return Partial::Unknown(Unscored::UnknownUrlRule(rule.to_owned()));
            }
            match &result.url {
                None => Partial::Unknown(Unscored::MissingUrl),
                Some(url) => {
                    Partial::from_bool(url_match(task.reference_url.as_deref().unwrap_or(""), url))
                }
            }
        }
        EvalType::ProgramHtml => Partial::Unknown(Unscored::NeedsLiveSite),
    }
}

/// One task re-scored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskEval {
    pub task_id: String,
    pub outcome: Outcome,
    /// Each evaluator on its own.
    pub evaluators: Vec<(EvalType, Outcome)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded_score: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
}

/// Re-scores one task: the product of its evaluators (a known 0 decides the task even when
/// another evaluator cannot be run offline).
pub fn evaluate(
    task: &TaskConfig,
    result: &AgentResult,
    grader: Option<&dyn LlmGrader>,
) -> TaskEval {
    let mut total = Partial::Known(1.0);
    let mut evaluators = Vec::new();
    for &t in &task.eval_types {
        let s = evaluator(t, task, result, grader);
        evaluators.push((t, s.clone().outcome()));
        total = total.times(s);
    }
    TaskEval {
        task_id: task.task_id.clone(),
        outcome: total.outcome(),
        evaluators,
        recorded_score: result.recorded_score,
        cost: result.cost,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebArenaReport {
    pub benchmark: &'static str,
    /// Tasks with a result.
    pub tasks: usize,
    pub scored: usize,
    pub passed: usize,
    /// Passed / scored (null when nothing could be scored).
    pub success_rate: f64,
    /// The success rate over all tasks if every unscored task failed / passed.
    pub success_rate_bounds: (f64, f64),
    /// Unscored tasks by reason.
    pub not_scored: BTreeMap<String, usize>,
    pub by_evaluator: Vec<EvaluatorSummary>,
    /// Tasks whose recorded score differs from the re-scored one.
    pub recorded_mismatches: Vec<ScoreMismatch>,
    /// Task configs with no result.
    pub configs_without_results: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_cost: Option<f64>,
    pub per_task: Vec<TaskEval>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvaluatorSummary {
    pub eval_type: EvalType,
    /// Tasks that use this evaluator.
    pub tasks: usize,
    pub passed: usize,
    pub failed: usize,
    pub not_scored: usize,
    /// Task-level success over the scored tasks that use this evaluator.
    pub task_success_rate: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoreMismatch {
    pub task_id: String,
    pub recorded: f64,
    pub rescored: f64,
}

fn reason_key(u: &Unscored) -> String {
    match u {
        Unscored::NeedsLlmJudge => "needs_llm_judge",
        Unscored::NeedsLiveSite => "needs_live_site",
        Unscored::MissingUrl => "missing_url",
        Unscored::UnknownUrlRule(_) => "unknown_url_rule",
        Unscored::GraderFailed(_) => "grader_failed",
    }
    .to_owned()
}

/// Re-scores every result. A result for a task without a config is an error.
pub fn score(
    configs: &[TaskConfig],
    results: &[AgentResult],
    grader: Option<&dyn LlmGrader>,
) -> Result<WebArenaReport, ScoreError> {
    if results.is_empty() {
        return Err(ScoreError::Empty);
    }
    let by_id: HashMap<&str, &TaskConfig> =
        configs.iter().map(|c| (c.task_id.as_str(), c)).collect();
    let mut per_task = Vec::with_capacity(results.len());
    for r in results {
        let Some(task) = by_id.get(r.task_id.as_str()) else {
            return Err(ScoreError::UnknownTask {
                task_id: r.task_id.clone(),
                at: match r.line {
                    Some(l) => format!("{}:{l}", r.file),
                    None => r.file.clone(),
                },
                reference: "the task configs".into(),
            });
        };
        per_task.push(evaluate(task, r, grader));
    }
    let n = per_task.len();
    let passed = per_task
        .iter()
        .filter(|t| t.outcome == Outcome::Pass)
        .count();
    let failed = per_task
        .iter()
        .filter(|t| t.outcome == Outcome::Fail)
        .count();
    let scored = passed + failed;
    let mut not_scored = BTreeMap::new();
    for t in &per_task {
        if let Outcome::NotScored(u) = &t.outcome {
            *not_scored.entry(reason_key(u)).or_insert(0) += 1;
        }
    }
    let mut by_evaluator = Vec::new();
    for et in [
        EvalType::StringMatch,
        EvalType::UrlMatch,
        EvalType::ProgramHtml,
    ] {
        let using: Vec<&TaskEval> = per_task
            .iter()
            .filter(|t| t.evaluators.iter().any(|(e, _)| *e == et))
            .collect();
        if using.is_empty() {
            continue;
        }
        let count = |want: fn(&Outcome) -> bool| {
            using
                .iter()
                .filter(|t| t.evaluators.iter().any(|(e, o)| *e == et && want(o)))
                .count()
        };
        let task_pass = using.iter().filter(|t| t.outcome == Outcome::Pass).count();
        let task_scored = using
            .iter()
            .filter(|t| !matches!(t.outcome, Outcome::NotScored(_)))
            .count();
        by_evaluator.push(EvaluatorSummary {
            eval_type: et,
            tasks: using.len(),
            passed: count(|o| *o == Outcome::Pass),
            failed: count(|o| *o == Outcome::Fail),
            not_scored: count(|o| matches!(o, Outcome::NotScored(_))),
            task_success_rate: ratio(task_pass, task_scored),
        });
    }
    let recorded_mismatches = per_task
        .iter()
        .filter_map(|t| {
            let recorded = t.recorded_score?;
            let rescored = match t.outcome {
                Outcome::Pass => 1.0,
                Outcome::Fail => 0.0,
                Outcome::NotScored(_) => return None,
            };
            (recorded != rescored).then(|| ScoreMismatch {
                task_id: t.task_id.clone(),
                recorded,
                rescored,
            })
        })
        .collect();
    let with_results: std::collections::HashSet<&str> =
        results.iter().map(|r| r.task_id.as_str()).collect();
    let mut total_cost = None;
    for r in results {
        crate::breakdown::add_cost(&mut total_cost, r.cost);
    }
    Ok(WebArenaReport {
        benchmark: "webarena",
        tasks: n,
        scored,
        passed,
        success_rate: ratio(passed, scored),
        success_rate_bounds: (ratio(passed, n), ratio(n - failed, n)),
        not_scored,
        by_evaluator,
        recorded_mismatches,
        configs_without_results: configs
            .iter()
            .filter(|c| !with_results.contains(c.task_id.as_str()))
            .count(),
        total_cost,
        per_task,
    })
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        f64::NAN
    } else {
        a as f64 / b as f64
    }
}

impl WebArenaReport {
    pub fn table(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "WebArena: {} tasks with results, {} scored offline\n",
            self.tasks, self.scored
        ));
        out.push_str(&format!(
            "success rate: {} ({}/{} scored tasks)\n",
            py::repr(self.success_rate),
            self.passed,
            self.scored
        ));
        if self.scored < self.tasks {
            out.push_str(&format!(
                "over all {} tasks: between {} and {} depending on the unscored ones\n",
                self.tasks,
                py::repr(self.success_rate_bounds.0),
                py::repr(self.success_rate_bounds.1)
            ));
        }
        out.push_str("\nevaluator      tasks  pass  fail  not scored  task success (scored)\n");
        for e in &self.by_evaluator {
            out.push_str(&format!(
                "{:<13}  {:>5}  {:>4}  {:>4}  {:>10}  {}\n",
                e.eval_type.as_str(),
                e.tasks,
                e.passed,
                e.failed,
                e.not_scored,
                if e.task_success_rate.is_nan() {
                    "-".to_owned()
                } else {
                    py::repr(e.task_success_rate)
                }
            ));
        }
        let mut reasons: BTreeMap<Unscored, Vec<Cow<'_, str>>> = BTreeMap::new();
        for t in &self.per_task {
            if let Outcome::NotScored(u) = &t.outcome {
                reasons
                    .entry(u.clone())
                    .or_default()
                    .push(escape(&t.task_id));
            }
        }
        if !reasons.is_empty() {
            out.push_str("\nnot scored:\n");
            for (u, ids) in &reasons {
                out.push_str(&format!(
                    "  {} ({}): {}\n",
                    escape(&u.describe()),
                    ids.len(),
                    ids.join(", ")
                ));
            }
        }
        let failed: Vec<Cow<'_, str>> = self
            .per_task
            .iter()
            .filter(|t| t.outcome == Outcome::Fail)
            .map(|t| escape(&t.task_id))
            .collect();
        if !failed.is_empty() {
            out.push_str(&format!(
                "\nfailed ({}): {}\n",
                failed.len(),
                failed.join(", ")
            ));
        }
        for m in &self.recorded_mismatches {
            out.push_str(&format!(
                "task {}: recorded score {} but re-scored {}\n",
                escape(&m.task_id),
                py::repr(m.recorded),
                py::repr(m.rescored)
            ));
        }
        if self.configs_without_results > 0 {
            out.push_str(&format!(
                "{} task configs have no result\n",
                self.configs_without_results
            ));
        }
        if let Some(c) = self.total_cost {
            out.push_str(&format!(
                "cost: {c:.4} in total, {:.4} per task\n",
                c / self.tasks as f64
            ));
        }
        out
    }
}

// ---------------------------------------------------------------------------------------
// Loading

/// The configs of one file, the lines they start on, and their `reference_answers` key orders.
type ConfigItems<'a> = (Vec<&'a Value>, Vec<u64>, Vec<Option<Vec<String>>>);

/// Reads task configs: a folder of `<id>.json` files (each one config or an array of them),
/// or one such file.
pub fn load_tasks(path: &Path) -> Result<Vec<TaskConfig>, LoadError> {
    let files = if path.is_dir() {
        load::json_files(path)?
    } else {
        vec![path.to_path_buf()]
    };
    let mut out = Vec::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    for p in files {
        let file = p.display().to_string();
        let text = load::read_text(&p)?;
        let doc = load::parse_json(&file, &text)?;
        let (items, lines, orders): ConfigItems<'_> = match &doc {
            Value::Array(a) => {
                let orders = serde_json::from_str::<Vec<ConfigProbe>>(&text)
                    .map(|v| v.into_iter().map(ConfigProbe::order).collect())
                    .unwrap_or_default();
                (a.iter().collect(), load::element_lines(&text).top, orders)
            }
            other => {
                let order = serde_json::from_str::<ConfigProbe>(&text)
                    .ok()
                    .and_then(ConfigProbe::order);
                (vec![other], vec![1], vec![order])
            }
        };
        for (i, v) in items.into_iter().enumerate() {
            let path = if matches!(doc, Value::Array(_)) {
                format!("[{i}]")
            } else {
                String::new()
            };
            let at = At::new(&file, lines.get(i).copied(), path);
            let order = orders.get(i).cloned().flatten();
            let task = config_from_value(v, &at, order.as_deref())?;
            if let Some(first) = seen.insert(task.task_id.clone(), file.clone()) {
                return Err(LoadError::invalid(
                    &file,
                    at.line,
                    format!(
                        "task {:?} is configured twice (also in {first})",
                        task.task_id
                    ),
                ));
            }
            out.push(task);
        }
    }
    Ok(out)
}

/// One task config. `key_order` is the order of `reference_answers`' keys in the file.
pub fn config_from_value(
    v: &Value,
    at: &At<'_>,
    key_order: Option<&[String]>,
) -> Result<TaskConfig, LoadError> {
    let o = at.object(v)?;
    let task_id = at.req_id(o, "task_id")?;
    let intent = at.opt_str(o, "intent")?.unwrap_or_default().to_owned();
    let at_eval = at.child("eval");
    let eval = at_eval.object(at.req(o, "eval")?)?;
    let mut eval_types = Vec::new();
    let at_types = at_eval.child("eval_types");
    for (i, t) in at_types
        .array(at_eval.req(eval, "eval_types")?)?
        .iter()
        .enumerate()
    {
        let parsed = t.as_str().and_then(EvalType::parse).ok_or_else(|| {
            at_types.error(
                &format!("[{i}]"),
                "string_match, url_match or program_html",
                Some(t),
            )
        })?;
        eval_types.push(parsed);
    }
    let mut references = Vec::new();
    if let Some(ra) = eval.get("reference_answers").filter(|v| !v.is_null()) {
        let at_ra = at_eval.child("reference_answers");
        let map = at_ra.object(ra)?;
        for key in ordered_keys(map, key_order) {
            let Some(value) = map.get(&key) else {
                continue;
            };
            references.push(reference(&at_ra, &key, value)?);
        }
    } else if eval_types.contains(&EvalType::StringMatch) {
        return Err(at_eval.error(
            "reference_answers",
            "reference answers for string_match",
            None,
        ));
    }
    let reference_url = at_eval.opt_str(eval, "reference_url")?.map(str::to_owned);
    if eval_types.contains(&EvalType::UrlMatch) && reference_url.is_none() {
        return Err(at_eval.error("reference_url", "the reference URL for url_match", None));
    }
    Ok(TaskConfig {
        task_id,
        intent,
        eval_types,
        references,
        reference_url,
        url_note: at_eval.opt_str(eval, "url_note")?.map(str::to_owned),
        string_note: at_eval.opt_str(eval, "string_note")?.map(str::to_owned),
        file: at.file.to_owned(),
        line: at.line,
    })
}

fn ordered_keys(map: &Map<String, Value>, order: Option<&[String]>) -> Vec<String> {
    match order {
        Some(keys) if keys.len() == map.len() && keys.iter().all(|k| map.contains_key(k)) => {
            keys.to_vec()
        }
        _ => map.keys().cloned().collect(),
    }
}

fn reference(at: &At<'_>, key: &str, value: &Value) -> Result<Reference, LoadError> {
    let strings = |v: &Value| -> Result<Vec<String>, LoadError> {
        let list = at.child(key).array(v)?;
        list.iter()
            .enumerate()
            .map(|(i, s)| match s {
                Value::String(s) => Ok(s.clone()),
                other => Err(at
                    .child(key)
                    .error(&format!("[{i}]"), "a string", Some(other))),
            })
            .collect()
    };
    Ok(match key {
        "exact_match" => match value {
            Value::String(s) => Reference::ExactMatch(s.clone()),
            other => return Err(at.error(key, "a string", Some(other))),
        },
        "must_include" => Reference::MustInclude(strings(value)?),
        "fuzzy_match" => match value {
            Value::String(s) if s == "N/A" => Reference::Unachievable,
            Value::Array(_) => Reference::FuzzyMatch(strings(value)?),
            other => return Err(at.error(key, "a list of strings or \"N/A\"", Some(other))),
        },
        other => Reference::Ignored(other.to_owned()),
    })
}

/// Reads results: JSON Lines, a JSON array or object, or a folder of such files. A file
/// holding one record without `task_id` takes its id from the file name (`12.json`).
pub fn load_results(path: &Path) -> Result<Vec<AgentResult>, LoadError> {
    let files = if path.is_dir() {
        load::json_files(path)?
    } else {
        vec![path.to_path_buf()]
    };
    let mut out = Vec::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    for p in files {
        let file = p.display().to_string();
        let text = load::read_text(&p)?;
        let items = load::parse_collection(&file, &text)?;
        let single = items.len() == 1;
        let stem = p.file_stem().and_then(|s| s.to_str()).map(str::to_owned);
        for (i, item) in items.iter().enumerate() {
            let at = At::new(&file, item.line, "");
            let fallback = if single { stem.as_deref() } else { None };
            let r = result_from_value(&item.value, &at, fallback).map_err(|e| match e {
                LoadError::Field {
                    field, expected, ..
                } if item.line.is_none() => LoadError::Field {
                    file: file.clone(),
                    line: None,
                    field: format!("[{i}].{field}"),
                    expected,
                },
                other => other,
            })?;
            let here = match item.line {
                Some(l) => format!("{file}:{l}"),
                None => file.clone(),
            };
            if let Some(first) = seen.insert(r.task_id.clone(), here) {
                return Err(LoadError::invalid(
                    &file,
                    item.line,
                    format!("task {:?} has two results (first at {first})", r.task_id),
                ));
            }
            out.push(r);
        }
    }
    Ok(out)
}

/// One result record.
pub fn result_from_value(
    v: &Value,
    at: &At<'_>,
    fallback_id: Option<&str>,
) -> Result<AgentResult, LoadError> {
    let o = at.object(v)?;
    let task_id = match (o.get("task_id"), fallback_id) {
        (None | Some(Value::Null), Some(stem)) => stem.to_owned(),
        _ => at.req_id(o, "task_id")?,
    };
    let first = |keys: &[&'static str]| keys.iter().copied().find(|k| o.contains_key(*k));
    let answer = match first(&["answer", "final_answer", "prediction", "response"]) {
        None => String::new(),
        Some(k) => at.opt_str(o, k)?.unwrap_or_default().to_owned(),
    };
    let url = match first(&["url", "final_url", "last_url", "page_url"]) {
        None => None,
        Some(k) => at.opt_str(o, k)?.map(str::to_owned),
    };
    let recorded_score = match first(&["score", "reward", "success"]) {
        None => None,
        Some(k) => match o.get(k) {
            Some(Value::Bool(b)) => Some(if *b { 1.0 } else { 0.0 }),
            _ => at.opt_f64(o, k)?,
        },
    };
    let cost = match first(&["cost", "total_cost"]) {
        None => None,
        Some(k) => at.opt_f64(o, k)?,
    };
    Ok(AgentResult {
        task_id,
        answer,
        url,
        recorded_score,
        cost,
        file: at.file.to_owned(),
        line: at.line,
    })
}

/// Reads only the order of `eval.reference_answers` keys, which a JSON map forgets.
#[derive(Deserialize)]
struct ConfigProbe {
    #[serde(default)]
    eval: Option<EvalProbe>,
}

#[derive(Deserialize)]
struct EvalProbe {
    #[serde(default)]
    reference_answers: Option<KeyOrder>,
}

impl ConfigProbe {
    fn order(self) -> Option<Vec<String>> {
        self.eval?.reference_answers.map(|k| k.0)
    }
}

struct KeyOrder(Vec<String>);

impl<'de> Deserialize<'de> for KeyOrder {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<KeyOrder, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = KeyOrder;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KeyOrder, A::Error> {
                let mut keys = Vec::new();
                while let Some(k) = map.next_key::<String>()? {
                    map.next_value::<IgnoredAny>()?;
                    keys.push(k);
                }
                Ok(KeyOrder(keys))
            }
        }
        d.deserialize_map(V)
    }
}
