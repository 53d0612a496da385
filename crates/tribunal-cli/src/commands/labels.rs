//! `tribunal labels`: the labeling queues in the store, without a server. `list` shows each
//! queue's progress; `export` writes a queue's labels as JSONL or MLflow assessments (the
//! same lines as the server's export). The settled labels of queues also feed `tribunal
//! judges align` (labels of the schemas tied to a judge) and `tribunal prefs import --queue`
//! (pairwise labels as preference records); both read them here.

use anyhow::{bail, Context as _, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use tribunal_labels::state::QueueState;
use tribunal_store::Store;

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

/// Every queue of the project, rebuilt from the store.
pub async fn queues(store: &Store, project: &str) -> Result<Vec<QueueState>> {
    let mut out = Vec::new();
    for (id, _) in store.label_queues(project).await? {
        if let Some(q) = store.queue_state(project, &id).await? {
            out.push(q);
        }
    }
    Ok(out)
}

/// A stored trace's first user message and last reply (its own inputs and outputs when it
/// carries them); `None` when the store does not hold the trace.
pub async fn trace_text(
    store: &Store,
    project: &str,
    trace: &str,
) -> Result<Option<(Value, Value)>> {
    let t = tribunal_server::labels::items::stored_trace(store, project, trace)
        .await
        .map_err(|e| anyhow::anyhow!("reading trace {trace}: {}", e.message))?;
    if t.is_null() {
        return Ok(None);
    }
    let messages = t["messages"].as_array().cloned().unwrap_or_default();
    let of = |role: &str, last: bool| {
        let mut it = messages.iter().filter(|m| m["role"] == role);
        let m = if last { it.next_back() } else { it.next() };
        m.map(|m| m["content"].clone()).unwrap_or(Value::Null)
    };
    let inputs = match &t["inputs"] {
        Value::Null => of("user", false),
        v => v.clone(),
    };
    let outputs = match &t["outputs"] {
        Value::Null => of("assistant", true),
        v => v.clone(),
    };
    Ok(Some((inputs, outputs)))
}

pub fn run(config: Option<&Path>, cmd: LabelsCommand) -> Result<u8> {
    let cfg = super::load_config(config)?;
    let rt = super::runtime()?;
    match cmd {
        LabelsCommand::List(a) => {
            let location = super::store_location(&cfg, a.db.as_deref());
            let all = rt.block_on(async {
                let store = Store::open(&location).await?;
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
                    q.def.id,
                    q.schema.name,
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
                let store = Store::open(&location).await?;
                let q = store.queue_state(&a.project, &a.queue).await;
                store.close().await;
                q
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

/// The settled labels of every queue whose schema is tied to `judge`, as alignment labels:
/// the item's stored trace gives the inputs and outputs; items without one are counted.
pub async fn judge_labels(
    store: &Store,
    project: &str,
    judge: &str,
) -> Result<(Vec<tribunal_align::data::LabelRecord>, String)> {
    let mut out = Vec::new();
    let (mut queues_used, mut without_trace, mut unsettled) = (Vec::new(), 0usize, 0usize);
    for q in queues(store, project).await? {
        if q.schema.judge.as_deref() != Some(judge) {
            continue;
        }
        queues_used.push(q.def.id.clone());
        for (item, _) in q.queue.all_labels() {
            let Some(s) = q.settled(item) else {
                unsettled += 1;
                continue;
            };
            let Some(trace) = q.items.get(item).and_then(|i| i.trace.clone()) else {
                without_trace += 1;
                continue;
            };
            let Some((inputs, outputs)) = trace_text(store, project, &trace).await? else {
                without_trace += 1;
                continue;
            };
            let comment = s.by.iter().find_map(|p| {
                q.notes
                    .get(&(item.to_owned(), p.clone(), "label".to_owned()))
                    .and_then(|n| n.comment.clone())
            });
            out.push(tribunal_align::data::LabelRecord {
                id: item.to_owned(),
                inputs,
                outputs,
                label: s.value,
                rationale: comment,
                label_type: None,
                judge: Some(judge.to_owned()),
            });
        }
    }
    if queues_used.is_empty() {
        bail!("no labeling queue of project {project:?} has a schema tied to judge {judge:?}; tie a schema to it (\"judge\": {judge:?}) and label, or give --labels FILE");
    }
    let about = json!({"queues": queues_used, "settled": out.len(), "not_settled": unsettled, "without_stored_trace": without_trace});
    Ok((out, about.to_string()))
}
