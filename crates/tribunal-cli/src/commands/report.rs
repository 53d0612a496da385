//! `tribunal report value`: the value report of a project (what the gate did over a window)
//! from the store, as `GET /api/v1/report/value` answers it.

use super::{load_config, runtime, store_location};
use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use tribunal_store::clock;

#[derive(Subcommand)]
pub enum ReportCommand {
    /// Decisions over time, top rules, blocked actions by kind, escalations and time to
    /// decide, gate latency, model judges' cost and adoption figures.
    Value(ValueArgs),
}

#[derive(Args)]
pub struct ValueArgs {
    /// The window: 30d, 12h, 45m or an RFC 3339 time.
    #[arg(long, default_value = "30d")]
    pub since: String,
    #[arg(long, default_value = "default")]
    pub project: String,
    /// Output: table, json or html.
    #[arg(long, short = 'f', default_value = "table")]
    pub format: String,
    #[arg(long)]
    pub db: Option<PathBuf>,
}

pub fn run(config: Option<&Path>, cmd: ReportCommand) -> Result<u8> {
    let ReportCommand::Value(a) = cmd;
    if !matches!(a.format.as_str(), "table" | "json" | "html") {
        bail!(
            "--format: expected table, json or html, found {:?}",
            a.format
        );
    }
    let now = clock::now_ms();
    let since =
        tribunal_server::value::since(&a.since, now).map_err(|e| anyhow::anyhow!("--{e}"))?;
    let cfg = load_config(config)?;
    let rt = runtime()?;
    let store = rt.block_on(super::open_existing(&store_location(&cfg, a.db.as_deref())))?;
    let r = rt.block_on(tribunal_server::value::value_report(
        &store, &a.project, &since, now,
    ))?;
    match a.format.as_str() {
        "json" => println!("{}", serde_json::to_string_pretty(&r)?),
        "html" => print!("{}", tribunal_server::value::html(&r)),
        _ => print!("{}", tribunal_server::value::text(&r)),
    }
    Ok(0)
}
