//! `tribunal runs list|show`: past evaluation runs from the store.

use super::{load_config, runtime, store_location};
use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use tribunal_core::terminal::escape as for_terminal;

#[derive(Subcommand)]
pub enum RunsCommand {
    /// The most recent runs.
    List(ListArgs),
    /// One run and its per-trace results (the id or a unique prefix).
    Show(ShowArgs),
}

#[derive(Args)]
pub struct ListArgs {
    #[arg(long, default_value_t = 20)]
    pub limit: i64,
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Output: table or json.
    #[arg(long, short = 'f', default_value = "table")]
    pub format: String,
}

#[derive(Args)]
pub struct ShowArgs {
    pub id: String,
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Output: table or json.
    #[arg(long, short = 'f', default_value = "table")]
    pub format: String,
}

pub fn run(config: Option<&Path>, cmd: RunsCommand) -> Result<u8> {
    let cfg = load_config(config)?;
    let rt = runtime()?;
    match cmd {
        RunsCommand::List(a) => {
            check_format(&a.format)?;
            let store =
                rt.block_on(super::open_existing(&store_location(&cfg, a.db.as_deref())))?;
            let runs = rt.block_on(store.list_runs(a.limit))?;
            if a.format == "json" {
                println!("{}", serde_json::to_string_pretty(&runs)?);
            } else {
                println!(
                    "{:<22}  {:<20}  {:>7}  {:>7}  {:>9}  {:>7}  {:>8}  STATUS",
                    "RUN", "STARTED", "TRACES", "ALLOWED", "ESCALATED", "BLOCKED", "REJECTED"
                );
                for r in &runs {
                    println!(
                        "{:<22}  {:<20}  {:>7}  {:>7}  {:>9}  {:>7}  {:>8}  {}",
                        r.id,
                        r.started_at,
                        r.total,
                        r.allowed,
                        r.escalated,
                        r.blocked,
                        r.rejected,
                        r.status
                    );
                }
                if runs.is_empty() {
                    println!("(no runs yet: `tribunal eval` saves one)");
                }
            }
        }
        RunsCommand::Show(a) => {
            check_format(&a.format)?;
            let store =
                rt.block_on(super::open_existing(&store_location(&cfg, a.db.as_deref())))?;
            let run = rt.block_on(store.find_run(&a.id))?;
            let results = rt.block_on(store.run_results(&run.id))?;
            let errors = rt.block_on(store.run_input_errors(&run.id))?;
            if a.format == "json" {
                let results: Vec<serde_json::Value> = results
                    .iter()
                    .map(|r| serde_json::from_str(&r.result).unwrap_or(serde_json::Value::Null))
                    .collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "run": run, "results": results, "errors": errors,
                    }))?
                );
            } else {
                println!("run {}  ({})", run.id, run.status);
                println!("  started   {}", run.started_at);
                println!("  finished  {}", run.finished_at.as_deref().unwrap_or("-"));
                println!("  command   {}", for_terminal(&run.command));
                println!(
                    "  configuration  {}",
                    if run.config.is_empty() {
                        "(not recorded)".into()
                    } else {
                        for_terminal(&run.config)
                    }
                );
                println!(
                    "  policies  {}   config {}",
                    run.policy_version, run.config_hash
                );
                println!(
                    "  {} traces: {} allowed, {} escalated, {} blocked; {} inputs rejected\n",
                    run.total, run.allowed, run.escalated, run.blocked, run.rejected
                );
                println!("{:<8}  {:<32}  {:<28}  RULES", "VERDICT", "TRACE", "SOURCE");
                for r in &results {
                    let rules = serde_json::from_str::<serde_json::Value>(&r.result)
                        .ok()
                        .and_then(|v| v.get("violations").cloned())
                        .and_then(|v| v.as_array().cloned())
                        .unwrap_or_default()
                        .iter()
                        .filter(|v| v.get("severity").and_then(|s| s.as_str()) != Some("warn"))
                        .filter_map(|v| v.get("rule").and_then(|r| r.as_str()).map(str::to_owned))
                        .collect::<Vec<_>>();
                    let mut uniq = rules.clone();
                    uniq.dedup();
                    println!(
                        "{:<8}  {:<32}  {:<28}  {}",
                        for_terminal(&r.decision),
                        for_terminal(&r.trace_id),
                        for_terminal(&format!("{}:{}", r.source_file, r.source_line)),
                        for_terminal(&uniq.join(", "))
                    );
                }
                for e in &errors {
                    println!("REJECTED  {}", for_terminal(&e.message));
                }
            }
        }
    }
    Ok(0)
}

fn check_format(f: &str) -> Result<()> {
    if !matches!(f, "table" | "json") {
        bail!("--format: expected table or json, found {f:?}");
    }
    Ok(())
}
