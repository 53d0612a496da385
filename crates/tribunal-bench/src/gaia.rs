//! GAIA: a submission is JSON Lines `{"task_id", "model_answer", "reasoning_trace"?}`; the
//! answers file is GAIA's metadata (`{"task_id", "Final answer", "Level", ...}` per line).
//!
//! [`question_scorer`] is the official scorer's rule, with Python `float()` semantics
//! ([`crate::py::parse_float`]):
//! - a ground truth `float()` accepts is a number: remove every `$`, `%` and `,` from the
//!   answer, `float()` it (a failure is +inf) and compare with exact float equality (so `nan`
//!   equals nothing);
//! - else a ground truth containing `,` or `;` is a list: split both on `[,;]`, the lengths
//!   must match, numeric elements compare as numbers, the others after removing all
//!   whitespace and lowercasing (punctuation kept);
//! - else both strings lose all whitespace and ASCII punctuation and are lowercased.
//!
//! Answers that end with `FINAL ANSWER: ...` are scored on that tail. Accuracy is the share
//! of the answer file's tasks answered correctly (a task without a submission is wrong),
//! overall and per level, as the leaderboard computes it.

use crate::error::{LoadError, ScoreError};
use crate::load::{self, At};
use crate::py;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use tribunal_core::terminal::escape;

/// The marker GAIA's prompt asks answers to end with.
pub const FINAL_ANSWER: &str = "final answer:";

/// The text after the last `FINAL ANSWER:` (any case), stripped; the whole text otherwise.
pub fn extract_final_answer(text: &str) -> (&str, bool) {
    let lower = text.to_ascii_lowercase();
    match lower.rfind(FINAL_ANSWER) {
        Some(i) => (py::strip(&text[i + FINAL_ANSWER.len()..]), true),
        None => (text, false),
    }
}

/// `normalize_number_str`: drop `$`, `%` and `,`, then `float()`; +inf when that fails.
pub fn normalize_number_str(s: &str) -> f64 {
    let cleaned: String = s
        .chars()
        .filter(|c| !matches!(c, '$' | '%' | ','))
        .collect();
    py::parse_float(&cleaned).unwrap_or(f64::INFINITY)
}

/// `normalize_str`: remove all whitespace, lowercase, and (optionally) ASCII punctuation.
pub fn normalize_str(s: &str, remove_punct: bool) -> String {
    let no_spaces: String = s.chars().filter(|c| !py::is_space(*c)).collect();
    let lower = no_spaces.to_lowercase();
    if remove_punct {
        lower
            .chars()
            .filter(|c| !c.is_ascii_punctuation())
            .collect()
    } else {
        lower
    }
}

/// `re.split("[,;]", s)`.
pub fn split_string(s: &str) -> Vec<&str> {
    s.split([',', ';']).collect()
}

/// The official `question_scorer(model_answer, ground_truth)`.
pub fn question_scorer(model_answer: &str, ground_truth: &str) -> bool {
    if let Some(truth) = py::parse_float(ground_truth) {
        return normalize_number_str(model_answer) == truth;
    }
    if ground_truth.contains([',', ';']) {
        let truth = split_string(ground_truth);
        let answer = split_string(model_answer);
        if truth.len() != answer.len() {
            return false;
        }
        return answer
            .iter()
            .zip(&truth)
            .all(|(a, t)| match py::parse_float(t) {
                Some(t) => normalize_number_str(a) == t,
                None => normalize_str(a, false) == normalize_str(t, false),
            });
    }
    normalize_str(model_answer, true) == normalize_str(ground_truth, true)
}

/// One task of the answers file.
#[derive(Debug, Clone, PartialEq)]
pub struct GaiaTask {
    pub task_id: String,
    pub final_answer: String,
    pub level: Option<String>,
    pub line: Option<u64>,
}

/// One line of a submission.
#[derive(Debug, Clone, PartialEq)]
pub struct GaiaSubmission {
    pub task_id: String,
    /// `None` for `null`, which the official scorer scores as the text "None".
    pub model_answer: Option<String>,
    pub file: String,
    pub line: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GaiaReport {
    pub benchmark: &'static str,
    /// Tasks in the answers file.
    pub tasks: usize,
    pub answered: usize,
    pub missing: usize,
    pub correct: usize,
    pub accuracy: f64,
    pub per_level: Vec<LevelScore>,
    pub per_task: Vec<GaiaTaskResult>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LevelScore {
    pub level: String,
    pub tasks: usize,
    pub correct: usize,
    pub accuracy: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GaiaTaskResult {
    pub task_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    pub correct: bool,
    /// No line of the submission is for this task.
    pub missing: bool,
    /// The text that was scored (after `FINAL ANSWER:` extraction).
    pub scored_answer: Option<String>,
    /// The answer ended with `FINAL ANSWER: ...` and only the tail was scored.
    pub extracted: bool,
}

/// Scores a submission against the answers.
pub fn score(tasks: &[GaiaTask], submissions: &[GaiaSubmission]) -> Result<GaiaReport, ScoreError> {
    if tasks.is_empty() {
        return Err(ScoreError::Empty);
    }
    let known: HashMap<&str, &GaiaTask> = tasks.iter().map(|t| (t.task_id.as_str(), t)).collect();
    for s in submissions {
        if !known.contains_key(s.task_id.as_str()) {
            return Err(ScoreError::UnknownTask {
                task_id: s.task_id.clone(),
                at: match s.line {
                    Some(l) => format!("{}:{l}", s.file),
                    None => s.file.clone(),
                },
                reference: "the answers file".into(),
            });
        }
    }
    let by_id: HashMap<&str, &GaiaSubmission> = submissions
        .iter()
        .map(|s| (s.task_id.as_str(), s))
        .collect();
    let mut per_task = Vec::with_capacity(tasks.len());
    for t in tasks {
        let result = match by_id.get(t.task_id.as_str()) {
            None => GaiaTaskResult {
                task_id: t.task_id.clone(),
                level: t.level.clone(),
                correct: false,
                missing: true,
                scored_answer: None,
                extracted: false,
            },
            Some(s) => {
                let raw = s.model_answer.as_deref().unwrap_or("None");
                let (answer, extracted) = extract_final_answer(raw);
                GaiaTaskResult {
                    task_id: t.task_id.clone(),
                    level: t.level.clone(),
                    correct: question_scorer(answer, &t.final_answer),
                    missing: false,
                    scored_answer: Some(answer.to_owned()),
                    extracted,
                }
            }
        };
        per_task.push(result);
    }
    let correct = per_task.iter().filter(|r| r.correct).count();
    let mut levels: BTreeMap<(u64, String), (usize, usize)> = BTreeMap::new();
    for r in &per_task {
        if let Some(level) = &r.level {
            let key = (level.parse::<u64>().unwrap_or(u64::MAX), level.clone());
            let e = levels.entry(key).or_default();
            e.0 += 1;
            e.1 += usize::from(r.correct);
        }
    }
    Ok(GaiaReport {
        benchmark: "gaia",
        tasks: tasks.len(),
        answered: per_task.iter().filter(|r| !r.missing).count(),
        missing: per_task.iter().filter(|r| r.missing).count(),
        correct,
        accuracy: correct as f64 / tasks.len() as f64,
        per_level: levels
            .into_iter()
            .map(|((_, level), (n, c))| LevelScore {
                level,
                tasks: n,
                correct: c,
                accuracy: c as f64 / n as f64,
            })
            .collect(),
        per_task,
    })
}

impl GaiaReport {
    /// The report as text, task ids escaped for the terminal.
    pub fn table(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "GAIA: {} tasks, {} answered",
            self.tasks, self.answered
        ));
        if self.missing > 0 {
            out.push_str(&format!(
                " ({} without an answer, scored as wrong)",
                self.missing
            ));
        }
        out.push('\n');
        out.push_str(&format!(
            "accuracy: {} ({}/{})\n",
            py::repr(self.accuracy),
            self.correct,
            self.tasks
        ));
        for l in &self.per_level {
            out.push_str(&format!(
                "  level {}: {} ({}/{})\n",
                l.level,
                py::repr(l.accuracy),
                l.correct,
                l.tasks
            ));
        }
        let wrong: Vec<_> = self
            .per_task
            .iter()
            .filter(|r| !r.correct)
            .map(|r| escape(&r.task_id))
            .collect();
        if !wrong.is_empty() {
            out.push_str(&format!(
                "incorrect ({}): {}\n",
                wrong.len(),
                wrong.join(", ")
            ));
        }
        let extracted = self.per_task.iter().filter(|r| r.extracted).count();
        if extracted > 0 {
            out.push_str(&format!(
                "{extracted} answers were scored on their FINAL ANSWER: tail\n"
            ));
        }
        out
    }
}

/// Reads a submission (JSON Lines or a JSON array). Duplicate task ids are an error.
pub fn load_submission(path: &Path) -> Result<Vec<GaiaSubmission>, LoadError> {
    let file = path.display().to_string();
    let text = load::read_text(path)?;
    let items = load::parse_collection(&file, &text)?;
    let mut seen: HashMap<String, Option<u64>> = HashMap::new();
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = At::new(&file, item.line, item_path(item.line, i));
        let o = at.object(&item.value)?;
        let task_id = at.req_id(o, "task_id")?;
        let model_answer = match o.get("model_answer") {
            None => {
                return Err(at.error(
                    "model_answer",
                    "the answer (a string; null is scored as \"None\")",
                    None,
                ))
            }
            Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => Some(v.to_string()),
            Some(other) => return Err(at.error("model_answer", "a string", Some(other))),
        };
        if let Some(first) = seen.insert(task_id.clone(), item.line) {
            return Err(LoadError::invalid(
                &file,
                item.line,
                format!(
                    "task {task_id:?} is answered twice (first{})",
                    first.map(|l| format!(" on line {l}")).unwrap_or_default()
                ),
            ));
        }
        out.push(GaiaSubmission {
            task_id,
            model_answer,
            file: file.clone(),
            line: item.line,
        });
    }
    Ok(out)
}

/// Reads the answers (GAIA's `metadata.jsonl` layout: `task_id`, `Final answer`, `Level`).
pub fn load_answers(path: &Path) -> Result<Vec<GaiaTask>, LoadError> {
    let file = path.display().to_string();
    let text = load::read_text(path)?;
    let items = load::parse_collection(&file, &text)?;
    let mut seen: HashMap<String, Option<u64>> = HashMap::new();
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = At::new(&file, item.line, item_path(item.line, i));
        let o = at.object(&item.value)?;
        let task_id = at.req_id(o, "task_id")?;
        let key = ["Final answer", "final_answer", "true_answer", "answer"]
            .into_iter()
            .find(|k| o.get(*k).is_some_and(|v| !v.is_null()))
            .ok_or_else(|| {
                at.error(
                    "Final answer",
                    "the ground truth (\"Final answer\", \"final_answer\", \"true_answer\" or \"answer\")",
                    None,
                )
            })?;
        let final_answer = match o.get(key) {
            Some(Value::String(s)) => s.clone(),
            Some(v @ Value::Number(_)) => v.to_string(),
            other => return Err(at.error(key, "a string", other)),
        };
        let level = match o.get("Level").or_else(|| o.get("level")) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(other) => return Err(at.error("Level", "a level (1, 2 or 3)", Some(other))),
        };
        if let Some(first) = seen.insert(task_id.clone(), item.line) {
            return Err(LoadError::invalid(
                &file,
                item.line,
                format!(
                    "task {task_id:?} appears twice (first{})",
                    first.map(|l| format!(" on line {l}")).unwrap_or_default()
                ),
            ));
        }
        out.push(GaiaTask {
            task_id,
            final_answer,
            level,
            line: item.line,
        });
    }
    Ok(out)
}

fn item_path(line: Option<u64>, i: usize) -> String {
    // JSON Lines items are named by their line already; array items by their index.
    if line.is_some() {
        String::new()
    } else {
        format!("[{i}]")
    }
}
