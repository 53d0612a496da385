//! `tribunal judges export|import` (and `align|calibrate|report|rollback`, in `align.rs`): judge versions stored by the server's Judge Builder to
//! and from `[judges.NAME]` tables of a `tribunal.toml`.

use super::{load_config, runtime, store_location};
use anyhow::{bail, Context as _, Result};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use tribunal_core::terminal::escape as for_terminal;
use tribunal_engine::{judge_toml, Config};
use tribunal_store::{clock, Appended, NewJudgeVersion, Store};

#[derive(Subcommand)]
pub enum JudgesCommand {
    /// Write the latest stored version of each judge as [judges.NAME] tables.
    Export(ExportArgs),
    /// Store a new version of each [judges.NAME] table of FILE that differs from the latest.
    Import(ImportArgs),
    /// Fit an llm judge to expert labels; report before/after on held-out labels and store
    /// the aligned judge as a new version with its lineage.
    Align(super::align::AlignArgs),
    /// Choose the confidence threshold above which the judge's answers are trusted.
    Calibrate(super::align::CalibrateArgs),
    /// Every version of a judge with its alignment and calibration figures.
    Report(super::align::ReportArgs),
    /// Make an earlier version the latest again (as a new version).
    Rollback(super::align::RollbackArgs),
}

#[derive(Args)]
pub struct ExportArgs {
    /// Only this judge.
    #[arg(long)]
    pub name: Option<String>,
    /// Write here instead of standard output.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    #[arg(long)]
    pub db: Option<PathBuf>,
    #[arg(long, default_value = "default")]
    pub project: String,
}

#[derive(Args)]
pub struct ImportArgs {
    /// A tribunal.toml (or any file of [judges.NAME] tables).
    pub file: PathBuf,
    #[arg(long)]
    pub db: Option<PathBuf>,
    #[arg(long, default_value = "default")]
    pub project: String,
}

pub fn run(config: Option<&Path>, cmd: JudgesCommand) -> Result<u8> {
    let cfg = load_config(config)?;
    let rt = runtime()?;
    match cmd {
        JudgesCommand::Align(a) => {
            let at = store_location(&cfg, a.db.as_deref());
            drop(rt);
            return super::align::run_align(&at, a);
        }
        JudgesCommand::Calibrate(a) => {
            let at = store_location(&cfg, a.db.as_deref());
            drop(rt);
            return super::align::run_calibrate(&at, a);
        }
        JudgesCommand::Report(a) => {
            let at = store_location(&cfg, a.db.as_deref());
            drop(rt);
            return super::align::run_report(&at, a);
        }
        JudgesCommand::Rollback(a) => {
            let at = store_location(&cfg, a.db.as_deref());
            drop(rt);
            return super::align::run_rollback(&at, a);
        }
        JudgesCommand::Export(a) => {
            let store =
                rt.block_on(super::open_existing(&store_location(&cfg, a.db.as_deref())))?;
            let mut rows = rt.block_on(store.latest_judge_versions(&a.project))?;
            if let Some(n) = &a.name {
                rows.retain(|r| &r.name == n);
                if rows.is_empty() {
                    bail!("--name: no stored judge {n:?} in project {:?}", a.project);
                }
            }
            let mut text = format!(
                "# Judges stored for project {:?}, latest versions.\n",
                a.project
            );
            for r in &rows {
                let settings: serde_json::Value =
                    serde_json::from_str(&r.settings).with_context(|| {
                        format!("stored settings of {} version {}", r.name, r.version)
                    })?;
                let table = judge_toml::table_text(&r.name, &r.kind, &settings)
                    .with_context(|| format!("{} version {}", r.name, r.version))?;
                text.push_str(&format!(
                    "\n# version {}, hash {}\n{table}",
                    r.version, r.hash
                ));
            }
            match &a.output {
                Some(p) => {
                    std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))?;
                    eprintln!("wrote {} judge(s) to {}", rows.len(), p.display());
                }
                None => print!("{text}"),
            }
        }
        JudgesCommand::Import(a) => {
            let file = Config::load(&a.file)?;
            // Table keys are names the store and the server's API take only when valid.
            for name in file.judges.keys() {
                judge_toml::check_name(name).with_context(|| {
                    format!(
                        "{}: [judges.{}]",
                        for_terminal(&a.file.display().to_string()),
                        for_terminal(&format!("{name:?}"))
                    )
                })?;
            }
            let (specs, disabled) = judge_toml::declared(&file)?;
            // Every table must build before anything is stored (the provider's key is needed
            // where the judge runs, not here).
            for s in &specs {
                judge_toml::check_settings(&s.params)
                    .with_context(|| format!("judges.{}", s.name))?;
                tribunal_judges::check_definition(s)?;
            }
            let store = rt.block_on(Store::open(&store_location(&cfg, a.db.as_deref())))?;
            for name in &disabled {
                println!("{}: enabled = false, skipped", for_terminal(name));
            }
            for s in &specs {
                let hash = s.version();
                let row = NewJudgeVersion {
                    project: a.project.clone(),
                    name: s.name.clone(),
                    kind: s.kind.clone(),
                    settings: s.params.to_string(),
                    hash: hash.clone(),
                    note: format!("imported from {}", a.file.display()),
                    created_at: clock::now_rfc3339(),
                    created_by: "cli".into(),
                };
                let name = for_terminal(&s.name);
                match rt.block_on(store.append_judge_version(&row))? {
                    Appended::Added(v) => println!("{name}: added version {v} ({hash})"),
                    Appended::Unchanged(v) => {
                        println!("{name}: unchanged, same as version {v} ({hash})")
                    }
                }
            }
            if specs.is_empty() {
                println!("no [judges.NAME] tables in {}", a.file.display());
            }
        }
    }
    Ok(0)
}
