//! `tribunal prefs`: preference data files. `convert` reads one format and writes another
//! through `tribunal-prefs`; rejected rows are listed with their line and field. `import`
//! and `export` move records into and out of the store, one per content id.

use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use std::fs::File;
use std::io::{BufReader, BufWriter};
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
                let store = Store::open(&location).await?;
                let rows = store
                    .preferences(a.source.as_deref(), a.subset.as_deref())
                    .await;
                store.close().await;
                rows
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
            let file = File::create(&a.output)
                .with_context(|| format!("creating {}", a.output.display()))?;
            tribunal_prefs::export(&records, a.format, BufWriter::new(file))
                .with_context(|| format!("writing {}", a.output.display()))?;
            eprintln!(
                "{} records written to {} as {}",
                records.len(),
                a.output.display(),
                a.format
            );
            Ok(0)
        }
        PrefsCommand::Convert(a) => {
            let imported = read(&a.input, a.from)?;
            let file = File::create(&a.output)
                .with_context(|| format!("creating {}", a.output.display()))?;
            tribunal_prefs::export(&imported.records, a.to, BufWriter::new(file))
                .with_context(|| format!("writing {}", a.output.display()))?;
            eprintln!(
                "{} records written to {} as {}",
                imported.records.len(),
                a.output.display(),
                a.to
            );
            Ok(u8::from(!imported.rejected.is_empty()))
        }
    }
}
