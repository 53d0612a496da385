//! `tribunal judges align|calibrate|report|rollback`: a stored `llm` judge fitted to expert
//! labels (a new version with its lineage), its trust threshold chosen on labels, the figures
//! of every version, and a return to an earlier version. The flows live in
//! `tribunal_server::tuning` (the Judge Builder runs the same); this module reads arguments
//! and label files and prints.

use anyhow::{bail, Context as _, Result};
use clap::Args;
use serde_json::Value;
use std::path::{Path, PathBuf};
use tribunal_align::data::{parse_jsonl, LabelRecord};
use tribunal_align::model::Usage;
use tribunal_align::report::Scores;
use tribunal_core::terminal::escape as for_terminal;
use tribunal_server::tuning::{self, AlignOptions, CalibrateOptions, GivenLabels};
use tribunal_store::{clock, Appended, NewJudgeVersion, Store};

#[derive(Args)]
pub struct AlignArgs {
    /// The stored judge (an `llm` judge; `tribunal judges import` stores one).
    pub name: String,
    /// memory (expert examples and guidelines in the prompt), instructions (rewrites) or
    /// isotonic (a monotone map of numeric answers to the experts' scale).
    #[arg(long, default_value = "memory")]
    pub optimizer: String,
    /// JSONL labels: {"id", "inputs", "outputs", "label", "rationale"?, "type"?, "judge"?}.
    /// Without it, the settled labels of the store's queues whose schema is tied to the
    /// judge (final labels after review, or unanimous ones) on their stored traces.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Share of the labels held out to score before and after.
    #[arg(long, default_value_t = 0.3)]
    pub holdout: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The reflection model (`provider:/model`); default: the judge's model.
    #[arg(long)]
    pub reflection_model: Option<String>,
    /// Find the remembered examples most like a judged item by this embeddings model
    /// (`openai:/text-embedding-3-small`, `ollama:/nomic-embed-text`) instead of BM25.
    #[arg(long)]
    pub embeddings: Option<String>,
    /// Prices per million input and output tokens, to print the cost of aligning.
    #[arg(long, num_args = 2, value_names = ["IN", "OUT"])]
    pub price: Option<Vec<f64>>,
    #[arg(long)]
    pub db: Option<PathBuf>,
    #[arg(long, default_value = "default")]
    pub project: String,
}

#[derive(Args)]
pub struct CalibrateArgs {
    pub name: String,
    /// Agreement with people wanted on the trusted answers.
    #[arg(long, default_value_t = 0.9)]
    pub target_agreement: f64,
    /// Probability that the target holds.
    #[arg(long, default_value_t = 0.9)]
    pub confidence: f64,
    /// Where a confidence comes from: auto (the provider's token log-probabilities where it
    /// gives them, else samples), logprobs, or samples.
    #[arg(long, default_value = "auto")]
    pub confidence_from: String,
    /// Answers sampled per item when the confidence comes from samples: the share that agree.
    #[arg(long, default_value_t = 5)]
    pub samples: u32,
    /// JSONL labels (as for align); use labels the judge was not aligned on. Without it,
    /// the settled labels of the queues tied to the judge, as for align.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    #[arg(long)]
    pub db: Option<PathBuf>,
    #[arg(long, default_value = "default")]
    pub project: String,
}

#[derive(Args)]
pub struct ReportArgs {
    pub name: String,
    /// What an hour of a person's labeling costs, to put a cost on people's labels.
    #[arg(long)]
    pub hourly_rate: Option<f64>,
    /// Prices per million input and output tokens, to put a cost on the judge's answers
    /// (from the token counts in the stored results of the queues' traces).
    #[arg(long, num_args = 2, value_names = ["IN", "OUT"])]
    pub price: Option<Vec<f64>>,
    #[arg(long)]
    pub db: Option<PathBuf>,
    #[arg(long, default_value = "default")]
    pub project: String,
}

#[derive(Args)]
pub struct RollbackArgs {
    pub name: String,
    /// The version whose definition becomes the latest again.
    #[arg(long)]
    pub to: i64,
    #[arg(long)]
    pub db: Option<PathBuf>,
    #[arg(long, default_value = "default")]
    pub project: String,
}

/// The labels of `--labels FILE`; without it the flows read the store's.
fn labels_for(file: Option<&Path>) -> Result<Option<GivenLabels>> {
    file.map(|path| {
        Ok(GivenLabels {
            records: read_labels(path)?,
            source: path.display().to_string(),
        })
    })
    .transpose()
}

fn read_labels(path: &Path) -> Result<Vec<LabelRecord>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_jsonl(&text).map_err(|(line, e)| anyhow::anyhow!("{}:{line}: {e}", path.display()))
}

/// The text of `scores`, its class names (labels people gave) escaped for the terminal.
fn scores_text(scores: &Scores) -> String {
    let mut shown = scores.clone();
    for c in &mut shown.confusion.classes {
        *c = for_terminal(c).into_owned();
    }
    tribunal_align::report::text(&shown)
}

pub fn usage_line(what: &str, u: &Usage, price: Option<&[f64]>) -> String {
    let cost = match price {
        Some([i, o]) => format!(", cost {:.4}", u.cost(*i, *o)),
        _ => String::new(),
    };
    format!(
        "{what}: {} model calls, {} input and {} output tokens{cost}",
        u.calls, u.input_tokens, u.output_tokens
    )
}

pub fn run_align(store_at: &str, a: AlignArgs) -> Result<u8> {
    let rt = super::runtime()?;
    let store = rt.block_on(super::open_existing(store_at))?;
    let labels = labels_for(a.labels.as_deref())?;
    let run = rt.block_on(tuning::align_judge(
        &store,
        AlignOptions {
            project: a.project.clone(),
            name: a.name.clone(),
            optimizer: a.optimizer.clone(),
            labels,
            holdout: a.holdout,
            seed: a.seed,
            reflection_model: a.reflection_model.clone(),
            embeddings: a.embeddings.clone(),
            created_by: "cli".into(),
        },
    ))?;
    let r = match run {
        Ok(r) => r,
        Err(refusal) => {
            eprintln!("{}", for_terminal(&refusal.to_string()));
            return Ok(1);
        }
    };
    if let Some(found) = &r.found {
        eprintln!("{}: labels from the store: {found}", for_terminal(&r.name));
    }
    let out = &r.aligned;
    let name = for_terminal(&r.name);
    println!(
        "{}: {} labels read, {} usable ({} train, {} held out, seed {})",
        name,
        r.read,
        r.usable,
        out.train_ids.len(),
        out.held_out_ids.len(),
        r.seed
    );
    for (why, n) in &r.skipped {
        println!("  skipped {n}: {}", for_terminal(why));
    }
    println!("optimizer {}:", for_terminal(&out.optimizer));
    for n in &out.notes {
        println!("  {}", for_terminal(n));
    }
    println!("held-out, version {} (before):", r.from_version);
    print!("{}", scores_text(&out.before));
    println!("held-out, aligned (after):");
    print!("{}", scores_text(&out.after));
    match &out.difference {
        Some(d) => println!(
            "agreement difference (after - before): {:+.3}, bootstrap 95% interval [{:+.3}, {:+.3}]",
            d.value, d.low, d.high
        ),
        None => println!("agreement difference: not computable"),
    }
    let price = a.price.as_deref();
    println!(
        "{}",
        usage_line("aligning (train)", &out.usage_optimizing, price)
    );
    println!(
        "{}",
        usage_line("scoring (held-out)", &out.usage_scoring, price)
    );
    if r.unchanged {
        println!("{name}: unchanged, same as version {}", r.version);
    } else {
        println!(
            "{name}: stored as version {} (roll back with `tribunal judges rollback {name} --to {}`)",
            r.version, r.from_version
        );
    }
    Ok(0)
}

pub fn run_calibrate(store_at: &str, a: CalibrateArgs) -> Result<u8> {
    let rt = super::runtime()?;
    let store = rt.block_on(super::open_existing(store_at))?;
    let labels = labels_for(a.labels.as_deref())?;
    let run = rt.block_on(tuning::calibrate_judge(
        &store,
        CalibrateOptions {
            project: a.project.clone(),
            name: a.name.clone(),
            target_agreement: a.target_agreement,
            confidence: a.confidence,
            confidence_from: a.confidence_from.clone(),
            samples: a.samples,
            labels,
            created_by: "cli".into(),
        },
    ))?;
    let r = match run {
        Ok(r) => r,
        Err(refusal) => {
            eprintln!("{}", for_terminal(&refusal.to_string()));
            return Ok(1);
        }
    };
    if let Some(found) = &r.found {
        eprintln!("{}: labels from the store: {found}", for_terminal(&r.name));
    }
    let how = if r.confidence_from == "samples" {
        format!(
            "{} samples each (confidence: the share that agree)",
            r.samples
        )
    } else {
        "one answer each (confidence: the probability of the answer's tokens)".to_owned()
    };
    let name = for_terminal(&r.name);
    println!(
        "{name}: {} labelled items judged with {how} ({} without a confidence, left out)",
        r.items, r.unanswered
    );
    println!("{}", usage_line("calibrating", &r.usage, None));
    let t = &r.threshold;
    println!(
        "threshold {}: {} of {} calibration items trusted (coverage {:.3}), agreement {:.3} on them (p = {:.4}, {} thresholds tested)",
        t.threshold, t.trusted, t.items, t.coverage, t.agreement, t.p_value, t.tested
    );
    println!(
        "answers below {} are not trusted: tribunal.judge_untrusted sends them to people (on_untrusted = \"block\" or \"warn\" to change that), and queues with untrusted_from collect them",
        t.threshold
    );
    if r.unchanged {
        println!("{name}: unchanged, same as version {}", r.version);
    } else {
        println!("{name}: stored as version {}", r.version);
    }
    Ok(0)
}

pub fn run_report(store_at: &str, a: ReportArgs) -> Result<u8> {
    let rt = super::runtime()?;
    let store = rt.block_on(super::open_existing(store_at))?;
    let versions = rt.block_on(store.judge_versions(&a.project, &a.name))?;
    if versions.is_empty() {
        bail!("no stored judge {:?} in project {:?}", a.name, a.project);
    }
    let lineage = rt.block_on(store.judge_lineage(&a.project, &a.name))?;
    // Notes, dates and hashes are stored text that the API and imports write.
    println!("{} ({} versions)", for_terminal(&a.name), versions.len());
    for v in &versions {
        println!(
            "version {} ({}, {}): {}",
            v.version,
            for_terminal(&v.created_at),
            for_terminal(&v.hash),
            for_terminal(&v.note)
        );
        let Some((_, body)) = lineage.iter().find(|(n, _)| *n == v.version) else {
            continue;
        };
        let l: Value = serde_json::from_str(body)
            .with_context(|| format!("lineage of version {}", v.version))?;
        let fig = |s: &Value| {
            format!(
                "agreement {:.3}, kappa {}",
                s["agreement"].as_f64().unwrap_or(f64::NAN),
                s["kappa"]
                    .as_f64()
                    .map_or("-".into(), |k| format!("{k:.3}"))
            )
        };
        match l["command"].as_str() {
            Some("align") => {
                println!(
                    "  aligned from version {} with {} on {} train labels; held-out ({} items): before {}; after {}",
                    l["from_version"],
                    for_terminal(l["optimizer"].as_str().unwrap_or("?")),
                    l["labels"]["train"].as_array().map_or(0, Vec::len),
                    l["after"]["items"],
                    fig(&l["before"]),
                    fig(&l["after"])
                );
                if let Some(d) = l["difference"].as_object() {
                    println!(
                        "  difference {:+.3} [{:+.3}, {:+.3}]",
                        d["value"].as_f64().unwrap_or(f64::NAN),
                        d["low"].as_f64().unwrap_or(f64::NAN),
                        d["high"].as_f64().unwrap_or(f64::NAN)
                    );
                }
                for (what, u) in l["usage"].as_object().into_iter().flatten() {
                    println!(
                        "  {}: {} calls, {} input and {} output tokens",
                        for_terminal(what),
                        u["calls"],
                        u["input_tokens"],
                        u["output_tokens"]
                    );
                }
            }
            Some("calibrate") => {
                let c = &l["calibration"];
                println!(
                    "  calibrated from version {}: threshold {}, coverage {:.3}, agreement {:.3} on trusted (target {} with probability {})",
                    l["from_version"],
                    c["threshold"],
                    c["coverage"].as_f64().unwrap_or(f64::NAN),
                    c["agreement"].as_f64().unwrap_or(f64::NAN),
                    c["target"],
                    c["confidence"]
                );
            }
            _ => {}
        }
    }
    hybrid_report(&rt, &store, &a)?;
    Ok(0)
}

/// People and the judge side by side, from the store's queues tied to the judge.
fn hybrid_report(rt: &tokio::runtime::Runtime, store: &Store, a: &ReportArgs) -> Result<()> {
    let queues = rt.block_on(tuning::queues(store, &a.project))?;
    let h = tribunal_labels::figures::hybrid(&a.name, &queues);
    if h["items"] == 0 {
        println!(
            "people and the judge: no labeling queue is tied to {}",
            for_terminal(&a.name)
        );
        return Ok(());
    }
    let share = |v: &Value| match v["value"].as_f64() {
        Some(x) => format!(
            "{x:.3} [{:.3}, {:.3}]",
            v["low"].as_f64().unwrap_or(f64::NAN),
            v["high"].as_f64().unwrap_or(f64::NAN)
        ),
        None => format!(
            "not computable ({})",
            v["not_computable"].as_str().unwrap_or("?")
        ),
    };
    let adj = &h["adjudicated"];
    println!(
        "people and the judge (queues {}): {} items; the judge answered {}, people labelled {} ({} sent to people as untrusted)",
        h["queues"].as_array().map(|q| q.iter().filter_map(Value::as_str).map(for_terminal).collect::<Vec<_>>().join(", ")).unwrap_or_default(),
        h["items"], h["judge_answered"], h["people_labelled"], h["sent_to_people_as_untrusted"]
    );
    println!(
        "  against {} adjudicated labels: judge agreement {} on {} items, people agreement {} on {} labels",
        adj["items"],
        share(&adj["judge_agreement"]),
        adj["judge_items"],
        share(&adj["people_agreement"]),
        adj["people_labels"]
    );
    if let Some(ms) = h["people_time_per_item_ms"].as_i64() {
        let cost = a
            .hourly_rate
            .map(|r| {
                format!(
                    ", {:.4} per item at {r} an hour",
                    r * ms as f64 / 3_600_000.0
                )
            })
            .unwrap_or_default();
        println!(
            "  people: median {:.1} s per item{cost}",
            ms as f64 / 1000.0
        );
    }
    // The judge's tokens per item, from the stored results of the queues' traces.
    let mut per_item: Vec<(u64, u64)> = Vec::new();
    let mut runs: std::collections::HashMap<String, std::collections::HashMap<String, String>> =
        std::collections::HashMap::new();
    for q in queues.iter().filter(|q| {
        q.schema.judge.as_deref() == Some(a.name.as_str())
            || q.def.untrusted_from.as_deref() == Some(a.name.as_str())
    }) {
        for item in q.items.values() {
            let Some(trace) = &item.trace else { continue };
            // An eval run's item: that run's result, not a stored trace of the same id.
            let stored = match &item.run {
                Some(run) => {
                    if !runs.contains_key(run) {
                        let mut first = std::collections::HashMap::new();
                        for r in rt.block_on(store.run_results(run))? {
                            first.entry(r.trace_id).or_insert(r.result);
                        }
                        runs.insert(run.clone(), first);
                    }
                    runs[run].get(trace).cloned()
                }
                None => rt
                    .block_on(store.get_trace(&a.project, trace))?
                    .and_then(|row| row.result),
            };
            let Some(result) = stored.and_then(|r| serde_json::from_str::<Value>(&r).ok()) else {
                continue;
            };
            if let Some(f) = tribunal_labels::items::judge_feedback(&result, &a.name) {
                let u = &f["usage"];
                if u.is_object() {
                    per_item.push((
                        u["input_tokens"].as_u64().unwrap_or(0),
                        u["output_tokens"].as_u64().unwrap_or(0),
                    ));
                }
            }
        }
    }
    if !per_item.is_empty() {
        let n = per_item.len() as f64;
        let (i, o) = per_item
            .iter()
            .fold((0u64, 0u64), |(a, b), (x, y)| (a + x, b + y));
        let cost = match a.price.as_deref() {
            Some([pi, po]) => format!(
                ", {:.6} per item",
                (i as f64 * pi + o as f64 * po) / 1e6 / n
            ),
            _ => String::new(),
        };
        println!(
            "  judge: {:.0} input and {:.0} output tokens per item over {} stored answers{cost}",
            i as f64 / n,
            o as f64 / n,
            per_item.len()
        );
    }
    Ok(())
}

pub fn run_rollback(store_at: &str, a: RollbackArgs) -> Result<u8> {
    let rt = super::runtime()?;
    let store = rt.block_on(super::open_existing(store_at))?;
    let Some(old) = rt.block_on(store.judge_version(&a.project, &a.name, a.to))? else {
        bail!("--to: judge {} has no version {}", a.name, a.to);
    };
    let row = NewJudgeVersion {
        project: a.project.clone(),
        name: a.name.clone(),
        kind: old.kind.clone(),
        settings: old.settings.clone(),
        hash: old.hash.clone(),
        note: format!("rollback to version {}", a.to),
        created_at: clock::now_rfc3339(),
        created_by: "cli".into(),
    };
    match rt.block_on(store.append_judge_version(&row))? {
        Appended::Added(v) => println!(
            "{}: version {v} is version {} again",
            for_terminal(&a.name),
            a.to
        ),
        Appended::Unchanged(v) => println!(
            "{}: the latest (version {v}) is already that definition",
            for_terminal(&a.name)
        ),
    }
    Ok(0)
}
