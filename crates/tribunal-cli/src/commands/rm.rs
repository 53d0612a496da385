//! `tribunal rm`: train a Bradley–Terry reward model on preference pairs and evaluate it
//! beside a length-only baseline and chance. The model, its training and its evaluation
//! are `tribunal-prefs`'s; this module reads files, times, and prints.

use super::prefs::{parse_format, read};
use anyhow::{bail, Context as _, Result};
use clap::{Args, Subcommand};
use serde::Serialize;
use std::fs::File;
use std::io::{BufReader, BufWriter, Write as _};
use std::path::PathBuf;
use std::time::Instant;
use tribunal_prefs::eval::Accuracy;
use tribunal_prefs::model::Optimizer;
use tribunal_prefs::{evaluate, holdout_split, Evaluation, Format, RewardModel, TrainSettings};

#[derive(Subcommand)]
pub enum RmCommand {
    /// Train a reward model on preference pairs and save it as one JSON file. With
    /// --holdout, a seeded share of the pairs is kept out of training and the model is
    /// evaluated on it.
    Train(TrainArgs),
    /// Evaluate a saved reward model on labelled pairs: pairwise accuracy (equal scores count
    /// as misses) beside the length-only baseline and chance, with bootstrap 95 % intervals.
    Eval(EvalArgs),
}

#[derive(Args)]
pub struct TrainArgs {
    /// Preference pairs (JSON Lines).
    pub data: PathBuf,
    /// Where to write the model.
    #[arg(short = 'o', long)]
    pub output: PathBuf,
    /// Seed for the shuffles and the holdout split.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The data's format: hh-rlhf, trl, trl-implicit, ultrafeedback or jsonl.
    #[arg(long, default_value = "jsonl", value_parser = parse_format)]
    pub format: Format,
    /// Share of the pairs held out for evaluation (0 to 1).
    #[arg(long)]
    pub holdout: Option<f64>,
    #[arg(long, default_value_t = 5)]
    pub epochs: usize,
    /// The feature space has 2^bits weights.
    #[arg(long, default_value_t = 18)]
    pub bits: u32,
    /// L2 regularisation strength.
    #[arg(long, default_value_t = 1e-6)]
    pub l2: f64,
    /// adam or sgd.
    #[arg(long, default_value = "adam")]
    pub optimizer: String,
    #[arg(long, default_value_t = 0.01)]
    pub learning_rate: f64,
    /// Output: table or json.
    #[arg(long, short = 'f', default_value = "table")]
    pub report: String,
}

#[derive(Args)]
pub struct EvalArgs {
    /// The model file written by `tribunal rm train`.
    pub model: PathBuf,
    /// Labelled pairs (JSON Lines).
    pub data: PathBuf,
    /// The data's format: hh-rlhf, trl, trl-implicit, ultrafeedback or jsonl.
    #[arg(long, default_value = "jsonl", value_parser = parse_format)]
    pub format: Format,
    /// Output: table or json.
    #[arg(long, short = 'f', default_value = "table")]
    pub report: String,
    /// Bootstrap resamples for the intervals.
    #[arg(long, default_value_t = 1000)]
    pub bootstrap: usize,
    /// Seed for the bootstrap.
    #[arg(long, default_value_t = 0)]
    pub bootstrap_seed: u64,
}

pub fn run(cmd: RmCommand) -> Result<u8> {
    match cmd {
        RmCommand::Train(a) => train(a),
        RmCommand::Eval(a) => eval(a),
    }
}

fn check_report(report: &str) -> Result<()> {
    if !matches!(report, "table" | "json") {
        bail!("-f/--report: expected table or json, found {report:?}");
    }
    Ok(())
}

#[derive(Serialize)]
struct TrainReport<'a> {
    model: String,
    pairs: usize,
    held_out: usize,
    epoch_loss: &'a [f64],
    final_loss: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    evaluation: Option<Evaluation>,
}

fn train(a: TrainArgs) -> Result<u8> {
    check_report(&a.report)?;
    let optimizer = match a.optimizer.as_str() {
        "adam" => Optimizer::Adam {
            learning_rate: a.learning_rate,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
        },
        "sgd" => Optimizer::Sgd {
            learning_rate: a.learning_rate,
        },
        other => bail!("--optimizer: expected adam or sgd, found {other:?}"),
    };
    let imported = read_pairs(&a.data, a.format)?;
    let rejected = imported.rejected.len();
    let (train, held) = match a.holdout {
        Some(f) if !(0.0..1.0).contains(&f) => bail!("--holdout: expected 0 to 1, found {f}"),
        Some(f) => holdout_split(&imported.records, f, a.seed),
        None => (imported.records, Vec::new()),
    };
    let settings = TrainSettings {
        features: tribunal_prefs::FeatureSettings {
            bits: a.bits,
            ..Default::default()
        },
        epochs: a.epochs,
        seed: a.seed,
        l2: a.l2,
        optimizer,
        ..Default::default()
    };
    let started = Instant::now();
    let model = RewardModel::train(&train, &settings)?;
    let took = started.elapsed();
    let file =
        File::create(&a.output).with_context(|| format!("creating {}", a.output.display()))?;
    let mut w = BufWriter::new(file);
    model.save(&mut w)?;
    w.flush()
        .with_context(|| format!("writing {}", a.output.display()))?;
    eprintln!(
        "trained on {} pairs in {:.2} s",
        train.len(),
        took.as_secs_f64()
    );
    let evaluation = if held.is_empty() {
        None
    } else {
        Some(timed_evaluate(&model, &held, 1000, a.seed))
    };
    let Some(summary) = &model.training else {
        bail!("training left no summary");
    };
    let report = TrainReport {
        model: a.output.display().to_string(),
        pairs: summary.pairs,
        held_out: held.len(),
        epoch_loss: &summary.epoch_loss,
        final_loss: summary.final_loss,
        evaluation,
    };
    if a.report == "json" {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("model          {}", report.model);
        println!(
            "pairs          {} (held out: {})",
            report.pairs, report.held_out
        );
        for (i, l) in report.epoch_loss.iter().enumerate() {
            println!("epoch {:<3}      loss {l:.4}", i + 1);
        }
        println!("training loss  {:.4} (mean loss + L2)", report.final_loss);
        if let Some(e) = &report.evaluation {
            println!("held-out evaluation (seed {}):", a.seed);
            print!("{}", table(e));
        }
    }
    Ok(exit_code(rejected))
}

/// Reads preference pairs as `prefs` does (rejected rows named on stderr); no pair at all is
/// an error.
fn read_pairs(path: &std::path::Path, format: Format) -> Result<tribunal_prefs::Imported> {
    let imported = read(path, format)?;
    if imported.records.is_empty() {
        bail!(
            "{}: no preference pairs read ({} rows rejected)",
            path.display(),
            imported.rejected.len()
        );
    }
    Ok(imported)
}

/// 1 when rows were rejected (named on stderr and left out), as `prefs import` and
/// `prefs convert` do; else 0.
fn exit_code(rejected: usize) -> u8 {
    u8::from(rejected > 0)
}

fn timed_evaluate(
    model: &RewardModel,
    records: &[tribunal_prefs::PreferenceRecord],
    samples: usize,
    seed: u64,
) -> Evaluation {
    // Scoring speed is measured on a pass of its own, without the bootstrap.
    let started = Instant::now();
    let mut checksum = 0.0;
    for r in records {
        let (c, s) = model.score_pair(r);
        checksum += c - s;
    }
    let secs = started.elapsed().as_secs_f64();
    let replies = 2 * records.len();
    eprintln!(
        "scored {replies} replies in {secs:.2} s ({:.0} replies/s; sum of differences {checksum:.3})",
        replies as f64 / secs.max(1e-9)
    );
    evaluate(model, records, samples, seed)
}

fn eval(a: EvalArgs) -> Result<u8> {
    check_report(&a.report)?;
    let file = File::open(&a.model).with_context(|| format!("opening {}", a.model.display()))?;
    let model = RewardModel::load(BufReader::new(file))
        .with_context(|| format!("reading {}", a.model.display()))?;
    let imported = read_pairs(&a.data, a.format)?;
    let e = timed_evaluate(&model, &imported.records, a.bootstrap, a.bootstrap_seed);
    if a.report == "json" {
        println!("{}", serde_json::to_string_pretty(&e)?);
    } else {
        print!("{}", table(&e));
    }
    Ok(exit_code(imported.rejected.len()))
}

fn line(name: &str, a: &Accuracy) -> String {
    format!(
        "{name:<16} {:.3}  (95% CI {:.3}–{:.3}; {}/{})\n",
        a.accuracy, a.ci_low, a.ci_high, a.correct, a.n
    )
}

fn table(e: &Evaluation) -> String {
    let mut s = format!("pairs            {}\n", e.n);
    s += &line("accuracy", &e.model);
    s += &line("length baseline", &e.length_baseline);
    s += &line("shorter baseline", &e.shorter_baseline);
    s += &format!("chance           {:.3}\n", e.chance);
    if e.score_ties > 0 {
        s += &format!("equal scores     {} (counted as misses)\n", e.score_ties);
    }
    if e.ties_skipped > 0 {
        s += &format!("tie labels       {} (not scored)\n", e.ties_skipped);
    }
    for (name, a) in &e.subsets {
        s += &line(&format!("  {name}"), a);
    }
    s
}
