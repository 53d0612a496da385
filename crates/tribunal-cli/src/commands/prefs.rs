//! `tribunal prefs`: preference data files. `convert` reads one format and writes another
//! through `tribunal-prefs`; rejected rows are listed with their line and field.

use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use tribunal_prefs::{Format, Imported};

#[derive(Subcommand)]
pub enum PrefsCommand {
    /// Convert a preference file between formats: trl (explicit prompt), trl-implicit,
    /// hh-rlhf, ultrafeedback, jsonl (the record with labels and provenance). Rows that do
    /// not fit are listed on stderr (line and field) and left out; the exit code is then 1.
    /// Importing into and exporting from the store (`prefs import`, `prefs export`) is not
    /// there yet.
    Convert(ConvertArgs),
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

pub fn run(cmd: PrefsCommand) -> Result<u8> {
    match cmd {
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
