//! τ-bench (v1): a results file is a JSON array of runs
//! `{task_id, reward, info: {task: {user_id, actions, instruction, outputs}, source, user_cost,
//! reward_info}, traj, trial}`; a run that raised has `info = {error, traceback}` and
//! `traj = []`.
//!
//! [`score`] reproduces the reference `display_metrics`: success is `|reward - 1| <= 1e-6`,
//! n is the number of distinct `trial` values in the file (global, not per task), and pass^k
//! is the mean over tasks of C(c, k) / C(n, k) for k = 1..=n, summed in order of first
//! appearance. The average reward is Python's `sum(rewards) / len(rewards)` with CPython
//! 3.12+'s compensated `sum()`; with fractional rewards, a run under Python 3.11 or older can
//! differ in the last digit (for rewards of 0 and 1, which is what τ-bench produces, every
//! version agrees).
//!
//! [`required_outputs`] re-derives the required-outputs part of the reward from the
//! trajectory: each `task.outputs` string must satisfy
//! `output.lower() in content.lower().replace(",", "")` for some reply the agent sent.

use crate::breakdown::{add_cost, Consistency, ConsistencySummary, TaskBreakdown};
use crate::error::{LoadError, ScoreError};
use crate::load::{self, content_text, At};
use crate::{py, PassHatK};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use tribunal_core::terminal::escape;

/// One run of one task, as the scorer needs it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TauRun {
    pub task_id: i64,
    pub trial: i64,
    pub reward: f64,
    /// `info.task.outputs`: strings the agent had to say.
    pub outputs: Vec<String>,
    /// What the agent said to the user (the `respond` actions), from the trajectory.
    pub replies: Vec<String>,
    /// `info.reward_info.info.r_outputs`, when the file recorded an outputs check.
    pub recorded_outputs: Option<f64>,
    /// `info.error` of a run that raised.
    pub error: Option<String>,
    /// `info.user_cost` (the user simulator).
    pub user_cost: Option<f64>,
    /// The agent's cost, when a fork recorded it (`total_cost` or `info.total_cost`).
    pub agent_cost: Option<f64>,
    /// Line of the run in its file.
    pub line: Option<u64>,
}

/// The official numbers and the breakdown behind them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TauReport {
    pub benchmark: &'static str,
    pub tasks: usize,
    /// Distinct `trial` values: the n of pass^k.
    pub trials: usize,
    pub runs: usize,
    pub pass_hat_k: PassHatK,
    pub avg_reward: f64,
    /// Runs that ended in an exception (`info.error`); they count as failures.
    pub errors: usize,
    pub consistency: ConsistencySummary,
    pub required_outputs: OutputsSummary,
    pub per_task: Vec<TaskBreakdown>,
}

/// The required-outputs check over all runs of tasks that have outputs.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OutputsSummary {
    /// Runs whose task lists required outputs.
    pub checked: usize,
    /// Runs where every required output was found in a reply.
    pub passed: usize,
    /// Runs where the re-derived result differs from the recorded `r_outputs`.
    pub mismatches: Vec<OutputsMismatch>,
    /// Runs with required outputs that were not found (task, trial, missing strings).
    pub missing: Vec<MissingOutputs>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutputsMismatch {
    pub task_id: i64,
    pub trial: i64,
    pub recorded: f64,
    pub rederived: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MissingOutputs {
    pub task_id: i64,
    pub trial: i64,
    pub outputs: Vec<String>,
}

/// `|reward - 1| <= 1e-6`, written as the reference writes it.
pub fn is_success(reward: f64) -> bool {
    py::is_success(reward)
}

/// For each required output, whether some reply contains it (case-insensitively, with the
/// reply's commas removed). An output is never found when the agent sent no reply.
pub fn required_outputs(outputs: &[String], replies: &[String]) -> Vec<(String, bool)> {
    let normalized: Vec<String> = replies
        .iter()
        .map(|r| r.to_lowercase().replace(',', ""))
        .collect();
    outputs
        .iter()
        .map(|o| {
            let needle = o.to_lowercase();
            (
                o.clone(),
                normalized.iter().any(|r| r.contains(needle.as_str())),
            )
        })
        .collect()
}

/// The `respond` actions of a trajectory: assistant messages without tool calls
/// (tool-calling agents), or the `respond` action of a ReAct `Action:` block.
pub fn replies(traj: &[Value]) -> Vec<String> {
    let assistant = |m: &&Value| m.get("role").and_then(Value::as_str) == Some("assistant");
    let has_calls = |m: &Value| {
        let calls = matches!(m.get("tool_calls"), Some(Value::Array(a)) if !a.is_empty());
        let legacy = m.get("function_call").is_some_and(|f| !f.is_null());
        calls || legacy
    };
    let tool_calling = traj.iter().filter(assistant).any(has_calls);
    let mut out = Vec::new();
    for m in traj.iter().filter(assistant) {
        if has_calls(m) {
            continue;
        }
        let Some(text) = m.get("content").and_then(content_text) else {
            continue;
        };
        if tool_calling {
            out.push(text);
            continue;
        }
        match text.rfind("Action:") {
            None => out.push(text),
            Some(i) => {
                let action = text[i + "Action:".len()..].trim();
                match serde_json::from_str::<Value>(action) {
                    Ok(v) => {
                        if v.get("name").and_then(Value::as_str) == Some("respond") {
                            if let Some(c) = v
                                .get("arguments")
                                .and_then(|a| a.get("content"))
                                .and_then(Value::as_str)
                            {
                                out.push(c.to_owned());
                            }
                        }
                    }
                    // The reference agent treats an unparsable action as a reply.
                    Err(_) => out.push(action.to_owned()),
                }
            }
        }
    }
    out
}

/// Scores runs exactly as the reference `display_metrics` does, plus the breakdown.
pub fn score(runs: &[TauRun]) -> Result<TauReport, ScoreError> {
    if runs.is_empty() {
        return Err(ScoreError::Empty);
    }
    let n = runs.iter().map(|r| r.trial).collect::<BTreeSet<_>>().len();
    let avg_reward = py::sum(runs.iter().map(|r| r.reward)) / runs.len() as f64;

    // Tasks in order of first appearance, as the reference's dict keeps them.
    let mut order: Vec<i64> = Vec::new();
    let mut by_task: HashMap<i64, TaskBreakdown> = HashMap::new();
    for r in runs {
        let t = by_task.entry(r.task_id).or_insert_with(|| {
            order.push(r.task_id);
            TaskBreakdown {
                task_id: r.task_id.to_string(),
                trials: 0,
                successes: 0,
                consistency: Consistency::AlwaysFail,
                rewards: Vec::new(),
                agent_cost: None,
                user_cost: None,
            }
        });
        t.trials += 1;
        t.successes += usize::from(is_success(r.reward));
        t.rewards.push(Some(r.reward));
        add_cost(&mut t.agent_cost, r.agent_cost);
        add_cost(&mut t.user_cost, r.user_cost);
    }
    let per_task: Vec<TaskBreakdown> = order
        .iter()
        .filter_map(|id| by_task.remove(id))
        .map(|mut t| {
            t.consistency = Consistency::of(t.successes, t.trials);
            t
        })
        .collect();

    let mut pass_hat_k = Vec::with_capacity(n);
    for k in 1..=n {
        let mut total = 0.0f64;
        for t in &per_task {
            total += py::comb_ratio(t.successes as u64, n as u64, k as u64).unwrap_or(f64::NAN);
        }
        pass_hat_k.push((k, total / per_task.len() as f64));
    }

    let mut outputs = OutputsSummary::default();
    for r in runs.iter().filter(|r| !r.outputs.is_empty()) {
        let found = required_outputs(&r.outputs, &r.replies);
        let ok = found.iter().all(|(_, f)| *f);
        outputs.checked += 1;
        outputs.passed += usize::from(ok);
        if !ok {
            outputs.missing.push(MissingOutputs {
                task_id: r.task_id,
                trial: r.trial,
                outputs: found
                    .into_iter()
                    .filter(|(_, f)| !f)
                    .map(|(o, _)| o)
                    .collect(),
            });
        }
        if let Some(recorded) = r.recorded_outputs {
            if (recorded == 1.0) != ok {
                outputs.mismatches.push(OutputsMismatch {
                    task_id: r.task_id,
                    trial: r.trial,
                    recorded,
                    rederived: ok,
                });
            }
        }
    }

    Ok(TauReport {
        benchmark: "tau",
        tasks: per_task.len(),
        trials: n,
        runs: runs.len(),
        pass_hat_k: PassHatK(pass_hat_k),
        avg_reward,
        errors: runs.iter().filter(|r| r.error.is_some()).count(),
        consistency: ConsistencySummary::of(&per_task),
        required_outputs: outputs,
        per_task,
    })
}

impl TauReport {
    /// The reference's own lines, then the breakdown.
    pub fn table(&self) -> String {
        let mut out = self.pass_hat_k.reference_lines(self.avg_reward);
        out.push_str(&format!(
            "\nτ-bench: {} tasks, {} trials, {} runs",
            self.tasks, self.trials, self.runs
        ));
        if self.errors > 0 {
            out.push_str(&format!(
                " ({} ended in an error and count as failures)",
                self.errors
            ));
        }
        out.push('\n');
        crate::breakdown::render(&self.per_task, &mut out);
        let o = &self.required_outputs;
        if o.checked > 0 {
            out.push_str(&format!(
                "\nrequired outputs (re-derived from the trajectories): {} of {} runs pass\n",
                o.passed, o.checked
            ));
            for m in &o.missing {
                out.push_str(&format!(
                    "  task {} trial {}: not said: {}\n",
                    m.task_id,
                    m.trial,
                    m.outputs
                        .iter()
                        .map(|o| escape(o))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            for m in &o.mismatches {
                out.push_str(&format!(
                    "  task {} trial {}: recorded r_outputs {} but the trajectory gives {}\n",
                    m.task_id,
                    m.trial,
                    py::repr(m.recorded),
                    if m.rederived { "1.0" } else { "0.0" }
                ));
            }
        }
        out
    }
}

/// Reads a τ-bench results file (a JSON array of runs).
pub fn load(path: &Path) -> Result<Vec<TauRun>, LoadError> {
    let file = path.display().to_string();
    let text = load::read_text(path)?;
    let doc = load::parse_json(&file, &text)?;
    let Value::Array(items) = doc else {
        let hint = if doc.get("simulations").is_some() {
            " (this looks like τ²-bench results: use `bench tau2`)"
        } else {
            ""
        };
        return Err(At::new(&file, Some(1), "").error(
            "",
            &format!("a JSON array of τ-bench runs ({{task_id, reward, info, traj, trial}}){hint}"),
            Some(&doc),
        ));
    };
    let lines = load::element_lines(&text).top;
    items
        .iter()
        .enumerate()
        .map(|(i, v)| run_from_value(v, At::new(&file, lines.get(i).copied(), format!("[{i}]"))))
        .collect()
}

/// One element of a results array.
pub fn run_from_value(v: &Value, at: At<'_>) -> Result<TauRun, LoadError> {
    let o = at.object(v)?;
    let mut run = TauRun {
        task_id: at.req_i64(o, "task_id")?,
        trial: at.req_i64(o, "trial")?,
        reward: at.req_f64(o, "reward")?,
        agent_cost: at.opt_f64(o, "total_cost")?,
        line: at.line,
        ..TauRun::default()
    };
    if let Some(info) = o.get("info").filter(|v| !v.is_null()) {
        let at_info = at.child("info");
        let info = at_info.object(info)?;
        run.error = match info.get("error") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => Some(other.to_string()),
        };
        run.user_cost = at_info.opt_f64(info, "user_cost")?;
        if run.agent_cost.is_none() {
            run.agent_cost = at_info.opt_f64(info, "total_cost")?;
        }
        if let Some(task) = info.get("task").filter(|v| !v.is_null()) {
            let at_task = at_info.child("task");
            let task = at_task.object(task)?;
            if let Some(outputs) = task.get("outputs").filter(|v| !v.is_null()) {
                let at_out = at_task.child("outputs");
                for (j, s) in at_out.array(outputs)?.iter().enumerate() {
                    match s {
                        Value::String(s) => run.outputs.push(s.clone()),
                        other => {
                            return Err(at_out.error(&format!("[{j}]"), "a string", Some(other)))
                        }
                    }
                }
            }
        }
        if let Some(Value::Object(ri)) = info.get("reward_info") {
            if let Some(Value::Object(ri_info)) = ri.get("info") {
                if ri_info.contains_key("outputs") {
                    run.recorded_outputs = ri_info.get("r_outputs").and_then(Value::as_f64);
                }
            }
        }
    }
    if let Some(traj) = o.get("traj").filter(|v| !v.is_null()) {
        run.replies = replies(at.child("traj").array(traj)?);
    }
    Ok(run)
}
