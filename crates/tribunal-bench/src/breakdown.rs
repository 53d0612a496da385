//! Per-task breakdowns shared by the multi-trial benchmarks: which tasks pass every trial,
//! which fail every trial, which are flaky, and what each task cost.

use serde::Serialize;
use tribunal_core::terminal::escape;

/// How a task behaved across its trials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Consistency {
    /// Every trial succeeded.
    AlwaysPass,
    /// No trial succeeded.
    AlwaysFail,
    /// Some trials succeeded and some did not.
    Flaky,
}

impl Consistency {
    pub fn of(successes: usize, trials: usize) -> Consistency {
        if successes == 0 {
            Consistency::AlwaysFail
        } else if successes >= trials {
            Consistency::AlwaysPass
        } else {
            Consistency::Flaky
        }
    }
}

/// One task across its trials.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskBreakdown {
    pub task_id: String,
    /// Runs of this task that count (for τ²-bench, infrastructure errors excluded).
    pub trials: usize,
    pub successes: usize,
    pub consistency: Consistency,
    /// Rewards in file order (`null` where the run has none).
    pub rewards: Vec<Option<f64>>,
    /// Summed over the task's runs, when the file records it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_cost: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_cost: Option<f64>,
}

impl TaskBreakdown {
    /// Agent plus user cost, when either is known.
    pub fn total_cost(&self) -> Option<f64> {
        match (self.agent_cost, self.user_cost) {
            (None, None) => None,
            (a, u) => Some(a.unwrap_or(0.0) + u.unwrap_or(0.0)),
        }
    }
}

/// Task ids grouped by consistency, in the order the tasks are listed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ConsistencySummary {
    pub always_pass: Vec<String>,
    pub always_fail: Vec<String>,
    pub flaky: Vec<String>,
}

impl ConsistencySummary {
    pub fn of(tasks: &[TaskBreakdown]) -> ConsistencySummary {
        let mut s = ConsistencySummary::default();
        for t in tasks {
            let list = match t.consistency {
                Consistency::AlwaysPass => &mut s.always_pass,
                Consistency::AlwaysFail => &mut s.always_fail,
                Consistency::Flaky => &mut s.flaky,
            };
            list.push(t.task_id.clone());
        }
        s
    }
}

/// Adds an optional cost to an optional running total.
pub(crate) fn add_cost(total: &mut Option<f64>, cost: Option<f64>) {
    if let Some(c) = cost {
        *total = Some(total.unwrap_or(0.0) + c);
    }
}

/// The per-task lines every multi-trial report prints after the official numbers; task ids
/// come from the results file and are escaped for the terminal.
pub(crate) fn render(tasks: &[TaskBreakdown], out: &mut String) {
    let s = ConsistencySummary::of(tasks);
    let list = |ids: &[String]| {
        if ids.is_empty() {
            "-".to_owned()
        } else {
            ids.iter()
                .map(|id| escape(id))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    out.push_str(&format!(
        "consistently failing ({}): {}\n",
        s.always_fail.len(),
        list(&s.always_fail)
    ));
    out.push_str(&format!("flaky ({}): {}\n", s.flaky.len(), list(&s.flaky)));
    out.push_str(&format!(
        "consistently passing ({}): {}\n",
        s.always_pass.len(),
        list(&s.always_pass)
    ));
    if tasks.iter().any(|t| t.total_cost().is_some()) {
        out.push_str("\ntask          trials  passed  cost (agent + user)\n");
        for t in tasks {
            let cost = match t.total_cost() {
                Some(c) => format!("{c:.4}"),
                None => "-".to_owned(),
            };
            out.push_str(&format!(
                "{:<12}  {:>6}  {:>6}  {cost}\n",
                escape(&t.task_id),
                t.trials,
                t.successes
            ));
        }
    }
}
