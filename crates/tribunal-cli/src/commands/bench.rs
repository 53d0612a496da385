//! `tribunal bench`: benchmark results scored with their official metrics (τ-bench pass^k,
//! τ²-bench, GAIA accuracy, WebArena success rate) and broken down per task. The scoring is
//! `tribunal-bench`'s; this module picks the loader, the scorer and the output.

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use serde::Serialize;
use std::path::{Path, PathBuf};
use tribunal_bench::{gaia, tau, tau2, webarena, ScoreError};

#[derive(Subcommand)]
pub enum BenchCommand {
    /// τ-bench results (a JSON array of runs): pass^1..pass^n and the average reward, as the
    /// reference prints them, then which tasks fail consistently and which are flaky.
    Tau(TauArgs),
    /// τ²-bench results: a results.json, or a directory with results.json and simulations/.
    Tau2(TauArgs),
    /// A GAIA submission (JSON Lines of task_id, model_answer) against the answers: overall
    /// and per-level accuracy.
    Gaia(GaiaArgs),
    /// WebArena results against the task configs: success rate, per evaluator type.
    Webarena(WebArenaArgs),
}

#[derive(Args)]
pub struct TauArgs {
    /// The results file (or, for tau2, directory).
    pub results: PathBuf,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args)]
pub struct GaiaArgs {
    /// The submission: one {"task_id", "model_answer", "reasoning_trace"?} per line.
    pub submission: PathBuf,
    /// The ground truth: GAIA's metadata.jsonl ({"task_id", "Final answer", "Level"} per line).
    #[arg(long)]
    pub answers: PathBuf,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args)]
pub struct WebArenaArgs {
    /// Results: JSON Lines, a JSON array or a directory of JSON files, one
    /// {"task_id", "answer", "url", "score"?, "cost"?} per task.
    pub results: PathBuf,
    /// The task configs: the config_files/ directory or one JSON array of configs.
    #[arg(long)]
    pub tasks: PathBuf,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args)]
pub struct OutputArgs {
    /// Output: table (the reference's own lines, then the breakdown) or json.
    #[arg(long, short = 'f', default_value = "table")]
    pub format: String,
}

pub fn run(cmd: BenchCommand) -> Result<u8> {
    match cmd {
        BenchCommand::Tau(a) => {
            check_format(&a.output)?;
            let runs = tau::load(&a.results)?;
            let report = tau::score(&runs).map_err(|e| score_error(&a.results, e))?;
            print(&a.output, &report, || report.table())
        }
        BenchCommand::Tau2(a) => {
            check_format(&a.output)?;
            let results = tau2::load(&a.results)?;
            let report = tau2::score(&results);
            print(&a.output, &report, || report.table())
        }
        BenchCommand::Gaia(a) => {
            check_format(&a.output)?;
            let answers = gaia::load_answers(&a.answers)?;
            let submission = gaia::load_submission(&a.submission)?;
            let report =
                gaia::score(&answers, &submission).map_err(|e| score_error(&a.answers, e))?;
            print(&a.output, &report, || report.table())
        }
        BenchCommand::Webarena(a) => {
            check_format(&a.output)?;
            let tasks = webarena::load_tasks(&a.tasks)?;
            let results = webarena::load_results(&a.results)?;
            // No LLM judges exist yet: fuzzy_match tasks are reported as not scored.
            let report =
                webarena::score(&tasks, &results, None).map_err(|e| score_error(&a.results, e))?;
            print(&a.output, &report, || report.table())
        }
    }
}

/// Score errors name their own place, except "nothing to score", which names the file.
fn score_error(path: &Path, e: ScoreError) -> anyhow::Error {
    match e {
        ScoreError::Empty => anyhow::anyhow!("{}: {e}", path.display()),
        other => anyhow::anyhow!("{other}"),
    }
}

fn check_format(o: &OutputArgs) -> Result<()> {
    if !matches!(o.format.as_str(), "table" | "json") {
        bail!("--format: expected table or json, found {:?}", o.format);
    }
    Ok(())
}

fn print(o: &OutputArgs, report: &impl Serialize, table: impl FnOnce() -> String) -> Result<u8> {
    if o.format == "json" {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", table());
    }
    Ok(0)
}
