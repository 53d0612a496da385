//! `tribunal labels`: the labeling queues in the store, without a server. `list` shows each
//! queue's progress; `export` writes a queue's labels as JSONL or MLflow assessments (the
//! same lines as the server's export). The settled labels of queues also feed `tribunal
//! judges align` (labels of the schemas tied to a judge) and `tribunal prefs import --queue`
//! (pairwise labels as preference records); both read them here.

use anyhow::{bail, Context as _, Result};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use tribunal_core::terminal::escape as for_terminal;

#[derive(Subcommand)]
pub enum LabelsCommand {
    /// The project's queues with their schema and progress.
    List(ListArgs),
    /// A queue's labels as JSON lines: per item with its labels and settled label
    /// (`jsonl`), or as MLflow assessments with a HUMAN source (`mlflow`).
    Export(ExportArgs),
}

#[derive(Args)]
pub struct ListArgs {
    #[arg(long)]
    pub db: Option<PathBuf>,
    #[arg(long, default_value = "default")]
    pub project: String,
}

#[derive(Args)]
pub struct ExportArgs {
    pub queue: String,
    /// jsonl or mlflow.
    #[arg(long, default_value = "jsonl")]
    pub format: String,
    /// The output file (default: standard output).
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    #[arg(long)]
    pub db: Option<PathBuf>,
    #[arg(long, default_value = "default")]
    pub project: String,
}

pub use tribunal_server::tuning::{queues, trace_text};

pub fn run(config: Option<&Path>, cmd: LabelsCommand) -> Result<u8> {
    let cfg = super::load_config(config)?;
    let rt = super::runtime()?;
    match cmd {
        LabelsCommand::List(a) => {
            let location = super::store_location(&cfg, a.db.as_deref());
            let all = rt.block_on(async {
                let store = super::open_existing(&location).await?;
                let q = queues(&store, &a.project).await;
                store.close().await;
                q
            })?;
            if all.is_empty() {
                println!("no labeling queues in project {:?}", a.project);
            }
            for q in all {
                let overlap = q.def.overlap;
                let labels: usize = q.queue.all_labels().map(|(_, l)| l.len()).sum();
                let settled = q
                    .queue
                    .all_labels()
                    .filter(|(i, _)| q.settled(i).is_some())
                    .count();
                println!(
                    "{}  schema {}  {} items × {overlap}  {labels} labels  {settled} settled",
                    for_terminal(&q.def.id),
                    for_terminal(&q.schema.name),
                    q.items.len()
                );
            }
            Ok(0)
        }
        LabelsCommand::Export(a) => {
            if !matches!(a.format.as_str(), "jsonl" | "mlflow") {
                bail!("--format: expected jsonl or mlflow, found {:?}", a.format);
            }
            let location = super::store_location(&cfg, a.db.as_deref());
            let q = rt.block_on(async {
                let store = super::open_existing(&location).await?;
                let q = store.queue_state(&a.project, &a.queue).await;
                store.close().await;
                anyhow::Ok(q?)
            })?;
            let Some(q) = q else {
                bail!("no queue {:?} in project {:?}", a.queue, a.project);
            };
            let text = q.export(a.format == "mlflow");
            match &a.output {
                Some(path) => std::fs::write(path, &text)
                    .with_context(|| format!("writing {}", path.display()))?,
                None => print!("{text}"),
            }
            Ok(0)
        }
    }
}
