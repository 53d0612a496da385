//! `tribunal prefs`: preference data files. `convert` reads one format and writes another
//! through `tribunal-prefs`; rejected rows are listed with their line and field. `import`
//! and `export` move records into and out of the store, one per content id.

use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use tribunal_prefs::{Format, Imported, PreferenceRecord, ProvenanceKind};
use tribunal_store::{PreferenceRow, Store};

#[derive(Subcommand)]
pub enum PrefsCommand {
    /// Convert a preference file between formats: trl (explicit prompt), trl-implicit,
    /// hh-rlhf, ultrafeedback, jsonl (the record with labels and provenance). Rows that do
    /// not fit are listed on stderr (line and field) and left out; the exit code is then 1.
    Convert(ConvertArgs),
    /// Import a preference file into the store: one record per content id (prompt and
    /// replies); a pair stored already is counted as a duplicate and not added again. Rows
    /// that do not fit are listed on stderr (line and field) and left out; the exit code is
    /// then 1.
    Import(ImportArgs),
    /// Export the store's preference records in a format, optionally only one source (the
    /// format a record was imported from, or `constitution`) or subset.
    Export(ExportArgs),
    /// Preference records from a pairwise labeling queue: each pair people settled on (a
    /// reviewer's final label, or everyone's same answer) becomes a record with the people as
    /// its provenance; a tie is kept as a tie. Stored as source `human`.
    FromQueue(FromQueueArgs),
}

#[derive(Args)]
pub struct FromQueueArgs {
    /// The queue's id (its schema must be pairwise).
    pub queue: String,
    #[arg(long)]
    pub db: Option<PathBuf>,
    #[arg(long, default_value = "default")]
    pub project: String,
}

/// The question and reply of a side of a pair that is a stored trace: as the labels record
/// it was shown (`shown`, see `tribunal_server::tuning::settled_shown`), else as the store
/// holds it now.
async fn side_texts(
    store: &Store,
    project: &str,
    (side, name): (&tribunal_labels::items::Side, &str),
    shown: Option<&str>,
) -> Result<Option<(serde_json::Value, serde_json::Value)>> {
    let Some(trace) = &side.trace else {
        return Ok(None);
    };
    if let Some(texts) = shown.and_then(|s| tribunal_server::labels::items::shown_side(s, name)) {
        return Ok(Some(texts));
    }
    super::labels::trace_text(store, project, trace, None).await
}

/// The reply of one side of a pair: its text, or its trace's last reply (`texts`, from
/// [`side_texts`]); none for a trace without a reply (no answer, or an empty one).
fn side_reply(
    side: &tribunal_labels::items::Side,
    texts: &Option<(serde_json::Value, serde_json::Value)>,
) -> Option<String> {
    if let Some(t) = &side.text {
        return Some(t.clone());
    }
    match texts.as_ref().map(|(_, out)| out)? {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) if s.trim().is_empty() => None,
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// The records a pairwise queue's settled labels make; how many pairs gave none (not
/// settled, or a side whose trace is not stored or has no reply); and how many pairs of two
/// traces without a prompt of their own answer different questions (left out: no prompt
/// both replies answer).
async fn from_queue(
    store: &Store,
    project: &str,
    queue: &str,
) -> Result<(Vec<PreferenceRecord>, usize, usize)> {
    let Some(q) = store.queue_state(project, queue).await? else {
        anyhow::bail!("no queue {queue:?} in project {project:?}");
    };
    if !matches!(q.schema.kind, tribunal_labels::schema::Kind::Pairwise) {
        anyhow::bail!(
            "queue {queue:?} labels with schema {:?}, which is not pairwise",
            q.schema.name
        );
    }
    let (mut out, mut left, mut apart) = (Vec::new(), 0usize, 0usize);
    let mut ids: Vec<&String> = q.items.keys().collect();
    ids.sort();
    for id in ids {
        let item = &q.items[id];
        let (Some(pair), Some(settled)) = (&item.pair, q.settled(id)) else {
            left += 1;
            continue;
        };
        // Each side as the people who settled it were shown it, read once.
        let shown = tribunal_server::tuning::settled_shown(&q, id, &settled.by);
        let texts_a = side_texts(store, project, (&pair.a, "a"), shown).await?;
        let texts_b = side_texts(store, project, (&pair.b, "b"), shown).await?;
        let (Some(a), Some(b)) = (side_reply(&pair.a, &texts_a), side_reply(&pair.b, &texts_b))
        else {
            left += 1;
            continue;
        };
        let question = |texts: &Option<(serde_json::Value, serde_json::Value)>| {
            texts
                .as_ref()
                .and_then(|(i, _)| i.as_str().map(str::to_owned))
                .unwrap_or_default()
        };
        let prompt = match (&pair.prompt, &pair.a.trace, &pair.b.trace) {
            (Some(p), _, _) => p.clone(),
            // Two conversations that answer different questions are no preference between
            // two replies to one prompt.
            (None, Some(_), Some(_)) if question(&texts_a) != question(&texts_b) => {
                apart += 1;
                continue;
            }
            (None, Some(_), _) => question(&texts_a),
            (None, None, Some(_)) => question(&texts_b),
            (None, None, None) => String::new(),
        };
        let b_won = settled.value == "b";
        let tie = settled.value == "tie";
        let (chosen, rejected) = if b_won { (b, a) } else { (a, b) };
        out.push(PreferenceRecord {
            prompt: tribunal_prefs::Turns::Text(prompt),
            chosen: tribunal_prefs::Turns::Text(chosen),
            rejected: tribunal_prefs::Turns::Text(rejected),
            margin: None,
            soft_label: tie.then_some(0.5),
            tie,
            score_chosen: None,
            score_rejected: None,
            prompt_id: None,
            subset: Some(queue.to_owned()),
            provenance: tribunal_prefs::Provenance {
                kind: ProvenanceKind::Human,
                annotator: Some(settled.by.join(",")),
                version: Some(format!("{} ({})", q.schema.name, settled.how)),
                // The page shows side a first.
                order_shown: Some(if b_won {
                    tribunal_prefs::record::OrderShown::RejectedFirst
                } else {
                    tribunal_prefs::record::OrderShown::ChosenFirst
                }),
                source_trace_ids: [&pair.a.trace, &pair.b.trace]
                    .into_iter()
                    .flatten()
                    .cloned()
                    .collect(),
                ..Default::default()
            },
        });
    }
    Ok((out, left, apart))
}

#[derive(Args)]
pub struct ImportArgs {
    /// The input file (JSON Lines).
    pub input: PathBuf,
    #[arg(long, value_parser = parse_format)]
    pub format: Format,
    /// The store (default: `[store] path` in tribunal.toml, else .tribunal/tribunal.db).
    #[arg(long)]
    pub db: Option<PathBuf>,
}

#[derive(Args)]
pub struct ExportArgs {
    #[arg(long, value_parser = parse_format)]
    pub format: Format,
    #[arg(short = 'o', long)]
    pub output: PathBuf,
    /// Only records from this source.
    #[arg(long)]
    pub source: Option<String>,
    /// Only records of this subset.
    #[arg(long)]
    pub subset: Option<String>,
    /// Leave out records made by an older version of this constitution (a file).
    #[arg(long)]
    pub drop_stale: Option<PathBuf>,
    #[arg(long)]
    pub db: Option<PathBuf>,
}

#[derive(Args)]
pub struct ConvertArgs {
    /// The input file (JSON Lines).
    pub input: PathBuf,
    /// The input's format.
    #[arg(long, value_parser = parse_format)]
    pub from: Format,
    /// The output's format.
    #[arg(long, value_parser = parse_format)]
    pub to: Format,
    /// The output file.
    #[arg(short = 'o', long)]
    pub output: PathBuf,
}

pub fn parse_format(s: &str) -> Result<Format, String> {
    s.parse()
}

/// Reads `path` as `format`, reporting rejected rows on stderr.
pub fn read(path: &Path, format: Format) -> Result<Imported> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let imported = tribunal_prefs::import(BufReader::new(file), format)
        .with_context(|| format!("reading {}", path.display()))?;
    for r in &imported.rejected {
        eprintln!(
            "{}:{}: field `{}`: {}",
            path.display(),
            r.line,
            r.field,
            r.reason
        );
    }
    if !imported.rejected.is_empty() {
        eprintln!(
            "{}: {} rows rejected, {} read",
            path.display(),
            imported.rejected.len(),
            imported.records.len()
        );
    }
    Ok(imported)
}

/// The source a record is stored under: its provenance kind when a model, a constitution
/// or a person made it, else the format it was read from.
fn source_of(r: &PreferenceRecord, format: Format) -> String {
    match r.provenance.kind {
        ProvenanceKind::Import => format.to_string(),
        ProvenanceKind::Human => "human".into(),
        ProvenanceKind::Model => "model".into(),
        ProvenanceKind::Constitution => "constitution".into(),
    }
}

pub fn run(config: Option<&Path>, cmd: PrefsCommand) -> Result<u8> {
    match cmd {
        PrefsCommand::Import(a) => {
            let imported = read(&a.input, a.format)?;
            let mut rows = Vec::with_capacity(imported.records.len());
            for r in &imported.records {
                rows.push(PreferenceRow {
                    content_id: r.content_id(),
                    source: source_of(r, a.format),
                    subset: r.subset.clone(),
                    record: serde_json::to_string(r)?,
                });
            }
            let cfg = super::load_config(config)?;
            let rt = super::runtime()?;
            let location = super::store_location(&cfg, a.db.as_deref());
            let done = rt.block_on(async {
                let store = Store::open(&location).await?;
                let done = store
                    .insert_preferences(&rows, &tribunal_store::clock::now_rfc3339())
                    .await;
                store.close().await;
                done
            })?;
            eprintln!(
                "{}: {} records added, {} already stored, {} rejected",
                a.input.display(),
                done.added,
                done.duplicates,
                imported.rejected.len()
            );
            Ok(u8::from(!imported.rejected.is_empty()))
        }
        PrefsCommand::Export(a) => {
            let cfg = super::load_config(config)?;
            let rt = super::runtime()?;
            let location = super::store_location(&cfg, a.db.as_deref());
            let rows = rt.block_on(async {
                let store = super::open_existing(&location).await?;
                let rows = store
                    .preferences(a.source.as_deref(), a.subset.as_deref())
                    .await;
                store.close().await;
                anyhow::Ok(rows?)
            })?;
            let mut records = Vec::with_capacity(rows.len());
            for row in &rows {
                let r: PreferenceRecord = serde_json::from_str(&row.record).with_context(|| {
                    format!(
                        "the stored record {} is not a preference record",
                        row.content_id
                    )
                })?;
                records.push(r);
            }
            if let Some(path) = &a.drop_stale {
                let c = super::constitution::load(path)?;
                let before = records.len();
                records.retain(|r| !c.is_stale(r));
                eprintln!(
                    "{} records made by an older version of {} left out",
                    before - records.len(),
                    c.name
                );
            }
            let done = export_to(&records, a.format, &a.output)?;
            say_exported(&done, &a.output, a.format);
            Ok(0)
        }
        PrefsCommand::FromQueue(a) => {
            let cfg = super::load_config(config)?;
            let rt = super::runtime()?;
            let location = super::store_location(&cfg, a.db.as_deref());
            let (records, left, apart, done) = rt.block_on(async {
                let store = super::open_existing(&location).await?;
                let (records, left, apart) = from_queue(&store, &a.project, &a.queue).await?;
                let mut rows = Vec::with_capacity(records.len());
                for r in &records {
                    rows.push(PreferenceRow {
                        content_id: r.content_id(),
                        source: "human".into(),
                        subset: r.subset.clone(),
                        record: serde_json::to_string(r)?,
                    });
                }
                let done = store
                    .insert_preferences(&rows, &tribunal_store::clock::now_rfc3339())
                    .await?;
                store.close().await;
                anyhow::Ok((records, left, apart, done))
            })?;
            eprintln!(
                "queue {}: {} preference records ({} added, {} already stored); {left} pairs not settled, or with a side whose trace is not stored or has no reply{}",
                a.queue,
                records.len(),
                done.added,
                done.duplicates,
                if apart > 0 {
                    format!("; {apart} pairs of two traces answering different questions (give the pair a prompt)")
                } else {
                    String::new()
                }
            );
            Ok(0)
        }
        PrefsCommand::Convert(a) => {
            let imported = read(&a.input, a.from)?;
            let done = export_to(&imported.records, a.to, &a.output)?;
            say_exported(&done, &a.output, a.to);
            Ok(u8::from(!imported.rejected.is_empty()))
        }
    }
}

/// Writes `records` as `format` to `to`, which is written only once the whole export is
/// made: a record the format cannot hold leaves a file already there as it was.
fn export_to(
    records: &[PreferenceRecord],
    format: Format,
    to: &std::path::Path,
) -> Result<tribunal_prefs::Exported> {
    let mut text = Vec::new();
    let done = tribunal_prefs::export(records, format, &mut text)
        .with_context(|| format!("writing {}", to.display()))?;
    if to.as_os_str() == "-" {
        // `-o -`: standard output, as the other commands read `-`.
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        out.write_all(&text)
            .and_then(|()| out.flush())
            .context("writing to standard output")?;
        return Ok(done);
    }
    std::fs::write(to, text).with_context(|| format!("writing {}", to.display()))?;
    Ok(done)
}

/// Says what an export wrote, and what the format could not hold as it was.
fn say_exported(done: &tribunal_prefs::Exported, to: &std::path::Path, format: Format) {
    let to = if to.as_os_str() == "-" {
        "standard output".to_owned()
    } else {
        to.display().to_string()
    };
    eprintln!("{} records written to {to} as {format}", done.written);
    if done.turned > 0 {
        eprintln!(
            "{} records whose soft label favours the rejected reply written with the replies swapped ({format} holds which reply is better, not by how much)",
            done.turned
        );
    }
    if done.not_readable_back > 0 {
        eprintln!(
            "{} records left out: their text would not read back as the same prompt and replies ({format} joins them; trl keeps the prompt apart)",
            done.not_readable_back
        );
    }
    if done.ties_left_out > 0 {
        eprintln!(
            "{} ties left out ({format} cannot hold a tie; jsonl can)",
            done.ties_left_out
        );
    }
}
