//! τ²-bench: `{timestamp, info: {num_trials, ...}, tasks: [Task], simulations: [SimulationRun]}`
//! in one file, or a directory with `results.json` (no simulations) and
//! `simulations/<id>.json` (one run each).
//!
//! [`score`] reproduces the reference `compute_metrics`:
//! - runs whose `termination_reason` is `infrastructure_error` are dropped;
//! - the termination rule: a run that did not end with `agent_stop` or `user_stop` has
//!   reward 0 whatever was recorded;
//! - success is `|reward - 1| <= 1e-6`; pass^k per task is C(c, k) / C(n_task, k) with the
//!   task's own number of runs, for k up to the smallest number of runs of any task (and at
//!   most `info.num_trials`), averaged over tasks;
//! - means are pandas means (NumPy pairwise sums, missing values skipped), tasks ordered by
//!   their number of reference actions as the reference orders them. The reference sorts that
//!   column with an unstable sort; ties are ordered by task id here, which only matters in
//!   the last bit of a mean of fractional per-task values.

use crate::breakdown::{add_cost, Consistency, ConsistencySummary, TaskBreakdown};
use crate::error::LoadError;
use crate::load::{self, At};
use crate::{py, PassHatK};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tribunal_core::terminal::escape;

/// The termination reason of runs excluded from every metric.
pub const INFRASTRUCTURE_ERROR: &str = "infrastructure_error";

/// One simulation run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Simulation {
    pub id: String,
    pub task_id: String,
    pub trial: Option<i64>,
    pub termination_reason: String,
    /// `reward_info.reward` as recorded (`None` without `reward_info`).
    pub reward: Option<f64>,
    pub agent_cost: Option<f64>,
    pub user_cost: Option<f64>,
    /// File and line the run came from.
    pub file: String,
    pub line: Option<u64>,
}

impl Simulation {
    /// The reward after the termination rule.
    pub fn effective_reward(&self) -> Option<f64> {
        if ended_normally(&self.termination_reason) {
            self.reward
        } else {
            Some(0.0)
        }
    }
}

/// `agent_stop` and `user_stop` are the only normal endings.
pub fn ended_normally(termination_reason: &str) -> bool {
    matches!(termination_reason, "agent_stop" | "user_stop")
}

/// What the scorer needs from a task definition.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TaskInfo {
    pub id: String,
    /// Reference actions (agent and user), or -1 when the only action is a transfer; the
    /// reference orders tasks by it before averaging.
    pub num_actions: i64,
}

/// A whole results file or directory.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tau2Results {
    /// `info.num_trials`.
    pub num_trials: Option<i64>,
    pub tasks: Vec<TaskInfo>,
    pub simulations: Vec<Simulation>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tau2Report {
    pub benchmark: &'static str,
    /// Tasks with at least one evaluated run.
    pub tasks: usize,
    /// `info.num_trials`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trials: Option<i64>,
    /// Evaluated runs (infrastructure errors excluded).
    pub simulations: usize,
    pub infrastructure_errors: usize,
    /// The largest k reported: the smallest number of runs of any task.
    pub max_k: usize,
    pub pass_hat_k: PassHatK,
    pub avg_reward: f64,
    pub avg_agent_cost: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avg_user_cost: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avg_total_cost: Option<f64>,
    /// Runs whose recorded reward was not 0 although they did not end normally.
    pub zeroed_by_termination: Vec<ZeroedRun>,
    /// Evaluated runs by termination reason.
    pub terminations: BTreeMap<String, usize>,
    pub consistency: ConsistencySummary,
    pub per_task: Vec<TaskBreakdown>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ZeroedRun {
    pub simulation_id: String,
    pub task_id: String,
    pub termination_reason: String,
    pub recorded_reward: Option<f64>,
}

/// Scores the runs as the reference does.
pub fn score(results: &Tau2Results) -> Tau2Report {
    let infra = results
        .simulations
        .iter()
        .filter(|s| s.termination_reason == INFRASTRUCTURE_ERROR)
        .count();
    let evaluated: Vec<&Simulation> = results
        .simulations
        .iter()
        .filter(|s| s.termination_reason != INFRASTRUCTURE_ERROR)
        .collect();
    let mut report = Tau2Report {
        benchmark: "tau2",
        tasks: 0,
        trials: results.num_trials,
        simulations: evaluated.len(),
        infrastructure_errors: infra,
        max_k: 0,
        pass_hat_k: PassHatK::default(),
        avg_reward: 0.0,
        avg_agent_cost: 0.0,
        avg_user_cost: None,
        avg_total_cost: None,
        zeroed_by_termination: Vec::new(),
        terminations: BTreeMap::new(),
        consistency: ConsistencySummary::default(),
        per_task: Vec::new(),
    };
    if evaluated.is_empty() {
        return report;
    }
    for s in &evaluated {
        *report
            .terminations
            .entry(s.termination_reason.clone())
            .or_default() += 1;
        if !ended_normally(&s.termination_reason) && s.reward != Some(0.0) {
            report.zeroed_by_termination.push(ZeroedRun {
                simulation_id: s.id.clone(),
                task_id: s.task_id.clone(),
                termination_reason: s.termination_reason.clone(),
                recorded_reward: s.reward,
            });
        }
    }
    let rewards: Vec<Option<f64>> = evaluated.iter().map(|s| s.effective_reward()).collect();
    report.avg_reward = py::pandas_mean(&rewards);
    let agent_costs: Vec<Option<f64>> = evaluated.iter().map(|s| s.agent_cost).collect();
    report.avg_agent_cost = py::pandas_mean(&agent_costs);
    report.avg_user_cost = python_mean(evaluated.iter().map(|s| s.user_cost));
    report.avg_total_cost =
        python_mean(evaluated.iter().map(|s| match (s.agent_cost, s.user_cost) {
            (Some(a), Some(u)) => Some(a + u),
            _ => None,
        }));

    // groupby("task_id"): sorted by id.
    let mut groups: BTreeMap<&str, TaskBreakdown> = BTreeMap::new();
    for s in &evaluated {
        let t = groups
            .entry(s.task_id.as_str())
            .or_insert_with(|| TaskBreakdown {
                task_id: s.task_id.clone(),
                trials: 0,
                successes: 0,
                consistency: Consistency::AlwaysFail,
                rewards: Vec::new(),
                agent_cost: None,
                user_cost: None,
            });
        let r = s.effective_reward();
        t.trials += 1;
        t.successes += usize::from(r.is_some_and(py::is_success));
        t.rewards.push(r);
        add_cost(&mut t.agent_cost, s.agent_cost);
        add_cost(&mut t.user_cost, s.user_cost);
    }
    let mut per_task: Vec<TaskBreakdown> = groups
        .into_values()
        .map(|mut t| {
            t.consistency = Consistency::of(t.successes, t.trials);
            t
        })
        .collect();

    let min_runs = per_task.iter().map(|t| t.trials).min().unwrap_or(0);
    let mut max_k = min_runs;
    if let Some(n) = results.num_trials {
        if n >= 0 && (n as usize) < max_k {
            max_k = n as usize;
        }
    }
    // The reference sorts the per-task table by number of actions before averaging.
    let actions: BTreeMap<&str, i64> = results
        .tasks
        .iter()
        .map(|t| (t.id.as_str(), t.num_actions))
        .collect();
    let mut ordered: Vec<&TaskBreakdown> = per_task.iter().collect();
    ordered.sort_by_key(|t| actions.get(t.task_id.as_str()).copied().unwrap_or(0));
    let mut pass = Vec::with_capacity(max_k);
    for k in 1..=max_k {
        let values: Vec<Option<f64>> = ordered
            .iter()
            .map(|t| py::comb_ratio(t.successes as u64, t.trials as u64, k as u64))
            .collect();
        pass.push((k, py::pandas_mean(&values)));
    }

    per_task.sort_by(|a, b| a.task_id.cmp(&b.task_id));
    report.tasks = per_task.len();
    report.max_k = max_k;
    report.pass_hat_k = PassHatK(pass);
    report.consistency = ConsistencySummary::of(&per_task);
    report.per_task = per_task;
    report
}

/// `sum(vals) / len(vals)` over the values present and not NaN; `None` when there are none.
fn python_mean(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let vals: Vec<f64> = values.flatten().filter(|v| !v.is_nan()).collect();
    (!vals.is_empty()).then(|| py::sum(vals.iter().copied()) / vals.len() as f64)
}

impl Tau2Report {
    /// The reference's own lines, then the breakdown.
    pub fn table(&self) -> String {
        let mut out = self.pass_hat_k.reference_lines(self.avg_reward);
        out.push_str(&format!(
            "💰 Average agent cost: {}\n",
            py::repr(self.avg_agent_cost)
        ));
        if let Some(c) = self.avg_user_cost {
            out.push_str(&format!("💰 Average user cost: {}\n", py::repr(c)));
        }
        if let Some(c) = self.avg_total_cost {
            out.push_str(&format!("💰 Average total cost: {}\n", py::repr(c)));
        }
        out.push_str(&format!(
            "\nτ²-bench: {} tasks, {} simulations evaluated",
            self.tasks, self.simulations
        ));
        if self.infrastructure_errors > 0 {
            out.push_str(&format!(
                ", {} infrastructure errors excluded",
                self.infrastructure_errors
            ));
        }
        out.push('\n');
        if let Some(n) = self.trials {
            if (self.max_k as i64) < n && self.tasks > 0 {
                out.push_str(&format!(
                    "pass^k stops at k={} (the fewest runs of any task), not at num_trials={n}\n",
                    self.max_k
                ));
            }
        }
        let ends: Vec<String> = self
            .terminations
            .iter()
            .map(|(k, v)| format!("{} {v}", escape(k)))
            .collect();
        if !ends.is_empty() {
            out.push_str(&format!("terminations: {}\n", ends.join(", ")));
        }
        for z in &self.zeroed_by_termination {
            out.push_str(&format!(
                "  {} (task {}): ended with {}, reward counted as 0 (recorded {})\n",
                escape(&z.simulation_id),
                escape(&z.task_id),
                escape(&z.termination_reason),
                z.recorded_reward
                    .map(py::repr)
                    .unwrap_or_else(|| "none".into())
            ));
        }
        crate::breakdown::render(&self.per_task, &mut out);
        out
    }
}

/// Reads results from a file, a file with a sibling `simulations/` folder, or a directory
/// holding `results.json` and `simulations/`.
pub fn load(path: &Path) -> Result<Tau2Results, LoadError> {
    let (meta_path, sims_dir): (PathBuf, Option<PathBuf>) = if path.is_dir() {
        (path.join("results.json"), Some(path.join("simulations")))
    } else {
        let sibling = path
            .parent()
            .map(|p| p.join("simulations"))
            .filter(|p| p.is_dir());
        (path.to_path_buf(), sibling)
    };
    let file = meta_path.display().to_string();
    let text = load::read_text(&meta_path)?;
    let doc = load::parse_json(&file, &text)?;
    let lines = load::element_lines(&text);
    let root = At::new(&file, Some(1), "");
    let o = doc.as_object().ok_or_else(|| {
        root.error(
            "",
            "a τ²-bench results object ({info, tasks, simulations})",
            Some(&doc),
        )
    })?;
    let mut results = Tau2Results::default();
    if let Some(info) = o.get("info").filter(|v| !v.is_null()) {
        let at = root.child("info");
        results.num_trials = at.opt_i64(at.object(info)?, "num_trials")?;
    }
    if let Some(tasks) = o.get("tasks").filter(|v| !v.is_null()) {
        let task_lines = lines.by_key.get("tasks");
        for (i, t) in root.child("tasks").array(tasks)?.iter().enumerate() {
            let line = task_lines.and_then(|l| l.get(i).copied());
            results.tasks.push(task_from_value(
                t,
                At::new(&file, line, format!("tasks[{i}]")),
            )?);
        }
    }
    match sims_dir {
        Some(dir) => {
            for p in load::json_files(&dir)? {
                let f = p.display().to_string();
                let t = load::read_text(&p)?;
                let v = load::parse_json(&f, &t)?;
                results
                    .simulations
                    .push(simulation_from_value(&v, At::new(&f, Some(1), ""))?);
            }
        }
        None => {
            let sims = o
                .get("simulations")
                .ok_or_else(|| root.error("simulations", "the list of simulation runs", None))?;
            let sim_lines = lines.by_key.get("simulations");
            for (i, s) in root.child("simulations").array(sims)?.iter().enumerate() {
                let line = sim_lines.and_then(|l| l.get(i).copied());
                results.simulations.push(simulation_from_value(
                    s,
                    At::new(&file, line, format!("simulations[{i}]")),
                )?);
            }
        }
    }
    Ok(results)
}

/// One `SimulationRun`.
pub fn simulation_from_value(v: &Value, at: At<'_>) -> Result<Simulation, LoadError> {
    let o = at.object(v)?;
    let termination_reason = at
        .opt_str(o, "termination_reason")?
        .ok_or_else(|| at.error("termination_reason", "a string", None))?
        .to_owned();
    let reward = match o.get("reward_info").filter(|v| !v.is_null()) {
        None => None,
        Some(ri) => {
            let at_ri = at.child("reward_info");
            Some(at_ri.req_f64(at_ri.object(ri)?, "reward")?)
        }
    };
    Ok(Simulation {
        id: at.req_id(o, "id")?,
        task_id: at.req_id(o, "task_id")?,
        trial: at.opt_i64(o, "trial")?,
        termination_reason,
        reward,
        agent_cost: at.opt_f64(o, "agent_cost")?,
        user_cost: at.opt_f64(o, "user_cost")?,
        file: at.file.to_owned(),
        line: at.line,
    })
}

/// One `Task`: its id and how many reference actions it has.
pub fn task_from_value(v: &Value, at: At<'_>) -> Result<TaskInfo, LoadError> {
    let o = at.object(v)?;
    let id = at.req_id(o, "id")?;
    let actions: &[Value] = match o
        .get("evaluation_criteria")
        .and_then(Value::as_object)
        .and_then(|c| c.get("actions"))
    {
        Some(Value::Array(a)) => a,
        _ => &[],
    };
    Ok(TaskInfo {
        id,
        num_actions: num_actions(actions),
    })
}

/// Agent plus user actions; -1 when the single action is a transfer.
fn num_actions(actions: &[Value]) -> i64 {
    let requestor = |a: &Value| {
        a.get("requestor")
            .and_then(Value::as_str)
            .unwrap_or("assistant")
            .to_owned()
    };
    let n = actions
        .iter()
        .filter(|a| matches!(requestor(a).as_str(), "assistant" | "user"))
        .count() as i64;
    let transfer_only = actions.len() == 1
        && actions[0]
            .get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| n.to_lowercase().contains("transfer"));
    if transfer_only {
        -1
    } else {
        n
    }
}
