//! `tribunal eval`: evaluate datasets of traces, write a report, save the run.

use super::{load_config_near, store_location};
use anyhow::{bail, Context as _, Result};
use clap::Args;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tribunal_core::terminal::escape as for_terminal;
use tribunal_engine::config::share_response_cache;
use tribunal_engine::report::{summary_line, usage_line, ReportFormat, Reporter, RunInfo};
use tribunal_engine::{run_eval, Evaluator, Event, RunOptions};
use tribunal_formats::InputFormat;
use tribunal_llm::ResponseCache;
use tribunal_store::clock;
use tribunal_store::{InputErrorRecord, ResultRecord, RunRecord, Store, StoreCache};

#[derive(Args)]
pub struct EvalArgs {
    /// Trace files (.json, .jsonl, .ndjson), directories of them, or - for JSONL on stdin.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Report format: table, json, jsonl, junit or html (one self-contained page).
    #[arg(long, short = 'f', default_value = "table")]
    pub format: String,
    /// Write the report here instead of standard output.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// Input format: auto, openai, anthropic, mlflow, otlp, responses, tau, tau2, gaia or
    /// webarena (default: detected per item).
    #[arg(long)]
    pub input_format: Option<String>,
    /// Extra policy folders, loaded after the configured ones.
    #[arg(long = "policies", short = 'p')]
    pub policies: Vec<PathBuf>,
    /// Exit 1 on `block` (default) or already on `escalate`.
    #[arg(long)]
    pub fail_on: Option<String>,
    /// Worker threads (default: one per core).
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
    /// Store database (SQLite path or URL); default .tribunal/tribunal.db.
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Do not save this run in the store (model judges' answers are not cached either).
    #[arg(long)]
    pub no_store: bool,
    /// Also save each trace as judged, so a labeling queue made from the run shows people
    /// the conversation (`[eval] keep_traces`; the store then holds every trace in full).
    #[arg(long)]
    pub keep_traces: bool,
    /// Ask model judges' providers again instead of answering repeated requests from the
    /// store's response cache (and do not add to it).
    #[arg(long)]
    pub no_cache: bool,
    /// Never show a progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

const BATCH: usize = 1000;

pub fn run(config: Option<&Path>, args: EvalArgs) -> Result<u8> {
    let cfg = load_config_near(config, &args.paths)?;
    let format = ReportFormat::parse(&args.format).with_context(|| {
        format!(
            "--format: expected one of {}, found {:?}",
            ReportFormat::NAMES.join(", "),
            args.format
        )
    })?;
    let input_name = args
        .input_format
        .clone()
        .unwrap_or_else(|| cfg.eval.input_format.clone());
    let input_format = InputFormat::parse(&input_name).with_context(|| {
        format!(
            "--input-format: expected one of {}, found {:?}",
            InputFormat::NAMES.join(", "),
            input_name
        )
    })?;
    let fail_on = args
        .fail_on
        .clone()
        .unwrap_or_else(|| cfg.eval.fail_on.clone());
    if !matches!(fail_on.as_str(), "block" | "escalate") {
        bail!("--fail-on: expected block or escalate, found {fail_on:?}");
    }
    let mut judges = cfg.build_judges().context("configuring judges")?;
    let policies = cfg
        .build_policies(&args.policies)
        .context("loading policies")?;
    let prices = cfg.price_table().context("configuring judges")?;
    let policy_version = policies.version().to_owned();

    // The store is opened before any work so that a bad location fails fast. Its runtime
    // has a thread of its own: model judges reach the response cache from their threads
    // while this one is busy with the run.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("tribunal-store")
        .enable_all()
        .build()?;
    let store = if args.no_store || !cfg.store.enabled {
        None
    } else {
        let loc = store_location(&cfg, args.db.as_deref());
        Some(rt.block_on(Store::open(&loc)).with_context(|| {
            format!(
                "opening the store at {}",
                tribunal_core::redact::secrets(&loc)
            )
        })?)
    };
    if let Some(s) = store.as_ref().filter(|_| cfg.eval.cache && !args.no_cache) {
        let cache: Arc<dyn ResponseCache> =
            Arc::new(StoreCache::new(s.clone(), rt.handle().clone()));
        share_response_cache(&mut judges, &cache).context("configuring judges")?;
    }
    let evaluator = Evaluator::new(judges, policies, cfg.context.clone());
    let mut record = RunRecord {
        id: clock::new_run_id(),
        started_at: clock::now_rfc3339(),
        finished_at: None,
        command: tribunal_core::redact::secrets(&std::env::args().collect::<Vec<_>>().join(" "))
            .into_owned(),
        inputs: args
            .paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(","),
        policy_version: policy_version.clone(),
        config_hash: cfg.hash.clone(),
        config: cfg.describe(),
        status: "running".into(),
        total: 0,
        allowed: 0,
        escalated: 0,
        blocked: 0,
        rejected: 0,
    };
    if let Some(p) = &args.output {
        output_apart(p, &args.paths)?;
    }
    // The report's file is opened before the run is recorded, so that a run is never left
    // running by an output that cannot be written.
    let out: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    if let Some(s) = &store {
        rt.block_on(s.create_new_run(&mut record))?;
    }

    let mut reporter = Reporter::new(format, out)
        .with_prices(prices)
        .with_config(cfg.describe());
    let show_progress =
        !args.no_progress && std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
    let bar = show_progress.then(|| {
        let b = indicatif::ProgressBar::new_spinner();
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {pos} traces  {per_sec}  {elapsed}  {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        b.enable_steady_tick(std::time::Duration::from_millis(120));
        b
    });

    let mut results: Vec<ResultRecord> = Vec::new();
    let mut errors: Vec<InputErrorRecord> = Vec::new();
    let mut seq: i64 = 0;
    let mut failure: Option<anyhow::Error> = None;
    let options = RunOptions {
        format: input_format,
        jobs: args.jobs.unwrap_or(cfg.eval.jobs),
        keep_traces: store.is_some() && (args.keep_traces || cfg.eval.keep_traces),
    };
    let summary = run_eval(&args.paths, evaluator, &options, |mut event| {
        if failure.is_some() {
            return;
        }
        match &mut event {
            Event::Result(r) => {
                if let Some(b) = &bar {
                    b.inc(1);
                }
                if store.is_some() {
                    results.push(ResultRecord {
                        seq,
                        trace_id: r.trace_id.clone(),
                        source_file: r.source.file.clone(),
                        source_line: r.source.line as i64,
                        decision: r.verdict.as_str().to_owned(),
                        result: serde_json::to_string(r.as_ref()).unwrap_or_default(),
                        trace: r.trace.take(),
                    });
                }
            }
            Event::Rejected(e) => {
                if let Some(b) = &bar {
                    b.println(format!("rejected: {}", for_terminal(&e.to_string())));
                } else if args.output.is_some() || format != ReportFormat::Table {
                    eprintln!("rejected: {}", for_terminal(&e.to_string()));
                }
                if store.is_some() {
                    errors.push(InputErrorRecord {
                        seq,
                        source_file: e.file.clone(),
                        source_line: e.line as i64,
                        message: e.to_string(),
                    });
                }
            }
        }
        seq += 1;
        if let Err(e) = reporter.event(event) {
            failure = Some(anyhow::Error::from(e).context("writing the report"));
            return;
        }
        if let Some(s) = &store {
            if results.len() >= BATCH || errors.len() >= BATCH {
                if let Err(e) = flush(&rt, s, &record.id, &mut results, &mut errors) {
                    failure = Some(e);
                }
            }
        }
    });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let summary = match summary {
        Ok(s) => s,
        Err(e) => {
            if let Some(s) = &store {
                record.status = "failed".into();
                record.finished_at = Some(clock::now_rfc3339());
                let _ = rt.block_on(s.finish_run(&record));
            }
            bail!("{e}");
        }
    };
    if let Some(e) = failure {
        if let Some(s) = &store {
            record.status = "failed".into();
            record.finished_at = Some(clock::now_rfc3339());
            let _ = rt.block_on(s.finish_run(&record));
        }
        return Err(e);
    }
    // No trace and no rejected input: the inputs hold nothing to judge, which is an error
    // (a gate pointed at the wrong folder must not pass).
    let empty = summary.total == 0 && summary.rejected == 0;
    if let Some(s) = &store {
        flush(&rt, s, &record.id, &mut results, &mut errors)?;
        record.status = if empty { "failed" } else { "done" }.into();
        record.finished_at = Some(clock::now_rfc3339());
        record.total = summary.total as i64;
        record.allowed = summary.allowed as i64;
        record.escalated = summary.escalated as i64;
        record.blocked = summary.blocked as i64;
        record.rejected = summary.rejected as i64;
        rt.block_on(s.finish_run(&record))?;
        rt.block_on(s.close());
    }
    let info = RunInfo {
        run_id: store.as_ref().map(|_| record.id.clone()),
        policy_version,
        config: cfg.describe(),
        fail_on: Some(if fail_on == "escalate" {
            tribunal_core::Decision::Escalate
        } else {
            tribunal_core::Decision::Block
        }),
    };
    let usage = usage_line(reporter.usage());
    reporter
        .finish(&summary, &info)
        .context("writing the report")?;
    if format != ReportFormat::Table || args.output.is_some() {
        eprintln!("configuration: {}", for_terminal(&info.config));
        eprintln!("{}", summary_line(&summary, &info));
        if let Some(line) = usage {
            eprintln!("{line}");
        }
    }
    if empty {
        bail!("no traces found in {}", record.inputs.replace(',', ", "));
    }
    Ok(if summary.rejected > 0 {
        2
    } else if summary.blocked > 0
        || summary.judge_errors > 0
        || (fail_on == "escalate" && summary.escalated > 0)
    {
        1
    } else {
        0
    })
}

fn flush(
    rt: &tokio::runtime::Runtime,
    store: &Store,
    run_id: &str,
    results: &mut Vec<ResultRecord>,
    errors: &mut Vec<InputErrorRecord>,
) -> Result<()> {
    if !results.is_empty() {
        rt.block_on(store.insert_results(run_id, results))?;
        results.clear();
    }
    if !errors.is_empty() {
        rt.block_on(store.insert_input_errors(run_id, errors))?;
        errors.clear();
    }
    Ok(())
}

/// Refuses a report path that is one of the inputs (creating it would empty the file before
/// it is read) or inside an input folder (the run would read its own half-written report).
fn output_apart(out: &Path, inputs: &[PathBuf]) -> Result<()> {
    let absolute = |p: &Path| -> Option<PathBuf> {
        if let Ok(c) = p.canonicalize() {
            return Some(c);
        }
        // Not there yet: its folder's real place and its name.
        let parent = match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.canonicalize().ok()?,
            _ => std::env::current_dir().ok()?,
        };
        Some(parent.join(p.file_name()?))
    };
    let Some(out_at) = absolute(out) else {
        return Ok(());
    };
    for input in inputs.iter().filter(|p| p.as_os_str() != "-") {
        let Ok(input_at) = input.canonicalize() else {
            continue;
        };
        if input_at == out_at {
            bail!(
                "--output {}: that is an input of this run; write the report elsewhere",
                out.display()
            );
        }
        if input_at.is_dir() && out_at.starts_with(&input_at) {
            bail!(
                "--output {}: that is inside {}, an input folder of this run, whose files are read as traces; write the report elsewhere",
                out.display(),
                input.display()
            );
        }
    }
    Ok(())
}
