//! `tribunal check`: one trace and (optionally) the step the agent wants to take next,
//! judged as the runtime gate would; the verdict is printed as JSON.

use super::{build_evaluator, load_config_near};
use anyhow::{bail, Context as _, Result};
use clap::Args;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use tribunal_core::Decision;
use tribunal_engine::{Ask, Session};
use tribunal_formats::{import_pending, InputFormat, RawItem, SourceRef};
use tribunal_policy::Context;

#[derive(Args)]
pub struct CheckArgs {
    /// The trace so far (any supported format; - for standard input).
    pub trace: PathBuf,
    /// The proposed tool call or reply (a JSON file).
    #[arg(long)]
    pub pending: Option<PathBuf>,
    /// Context as a JSON file: {"agent", "user", "environment", ...}.
    #[arg(long)]
    pub context: Option<PathBuf>,
    /// The agent's id (overrides the context's).
    #[arg(long)]
    pub agent: Option<String>,
    /// Extra policy folders.
    #[arg(long = "policies", short = 'p')]
    pub policies: Vec<PathBuf>,
    /// Input format of the trace.
    #[arg(long, default_value = "auto")]
    pub input_format: String,
    /// Exit 1 on `block` (default) or already on `escalate`.
    #[arg(long, default_value = "block")]
    pub fail_on: String,
}

fn read_json(path: &Path) -> Result<(String, String)> {
    let name = path.display().to_string();
    let text = if name == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading standard input")?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {name}"))?
    };
    // A byte-order mark may start the file.
    let text = match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_owned(),
        None => text,
    };
    Ok((name, text))
}

fn parse(name: &str, text: &str) -> Result<Value> {
    tribunal_core::json::from_str(text)
        .map_err(|e| anyhow::anyhow!("{name}:{}:{}: invalid JSON: {e}", e.line(), e.column()))
}

pub fn run(config: Option<&Path>, args: CheckArgs) -> Result<u8> {
    let cfg = load_config_near(config, std::slice::from_ref(&args.trace))?;
    let format = InputFormat::parse(&args.input_format).with_context(|| {
        format!(
            "--input-format: expected one of {}",
            InputFormat::NAMES.join(", ")
        )
    })?;
    if !matches!(args.fail_on.as_str(), "block" | "escalate") {
        bail!(
            "--fail-on: expected block or escalate, found {:?}",
            args.fail_on
        );
    }
    let evaluator = build_evaluator(&cfg, &args.policies)?;
    let (name, text) = read_json(&args.trace)?;
    let item = RawItem {
        source: SourceRef {
            file: name.clone(),
            line: 1,
        },
        text,
    };
    let mut traces = item.import(format).map_err(|e| {
        // A file of several traces (JSONL) reads as JSON with characters after its first
        // value: say what it is and which command reads it.
        let mut values = serde_json::Deserializer::from_str(&item.text).into_iter::<Value>();
        match (values.next(), values.next()) {
            (Some(Ok(_)), Some(Ok(_))) => anyhow::anyhow!(
                "{name}: holds more than one JSON document (a file of traces, one a line?); \
                 `tribunal check` judges one trace, `tribunal eval {name}` judges each"
            ),
            _ => anyhow::anyhow!("{e}"),
        }
    })?;
    if traces.len() != 1 {
        bail!("{name}: expected exactly one trace, found {}", traces.len());
    }
    let trace = traces.remove(0);
    let pending = match &args.pending {
        None => None,
        Some(p) => {
            let (pname, ptext) = read_json(p)?;
            let v = parse(&pname, &ptext)?;
            Some(import_pending(&v).map_err(|e| anyhow::anyhow!("{pname}: {e}"))?)
        }
    };
    let mut context: Context = match &args.context {
        None => evaluator
            .context_for(&trace)
            .unwrap_or_else(|| cfg.context.clone()),
        Some(p) => {
            let (cname, ctext) = read_json(p)?;
            serde_json::from_value(parse(&cname, &ctext)?)
                .with_context(|| format!("{cname}: expected an object"))?
        }
    };
    if let Some(a) = args.agent {
        context.agent = Some(a);
    }
    let started = Instant::now();
    let trace_id = trace.id.clone();
    let ask = Ask {
        pending: pending.map(Arc::new),
        context: Some(context),
        budget: None,
    };
    let verdict = Session::new(trace).decide_once(&evaluator, ask).verdict;
    let elapsed = started.elapsed();
    let out = json!({
        "config": cfg.describe(),
        "trace_id": trace_id,
        "decision": verdict.decision,
        "reasons": verdict.reasons,
        "violations": verdict.violations,
        "feedback": verdict.feedback,
        "policy_version": evaluator.policies().version(),
        "elapsed_us": elapsed.as_micros() as u64,
    });
    // A verdict that cannot be written is an error, never a silent exit 0.
    {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{}", serde_json::to_string_pretty(&out)?)
            .and_then(|()| stdout.flush())
            .context("writing the verdict")?;
    }
    Ok(match verdict.decision {
        Decision::Block => 1,
        Decision::Escalate if args.fail_on == "escalate" => 1,
        _ => 0,
    })
}
