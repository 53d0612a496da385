//! `tribunal judges align|calibrate|report|rollback`: a stored `llm` judge fitted to expert
//! labels (a new version with its lineage), its trust threshold chosen on labels, the figures
//! of every version, and a return to an earlier version. The statistics live in
//! `tribunal-align`; this module supplies the real judge and reflection model.

use anyhow::{bail, Context as _, Result};
use clap::Args;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use tribunal_align::calibrate::{calibrate, Scored};
use tribunal_align::data::{parse_jsonl, Dataset, LabelRecord, LabelType, Minimums};
use tribunal_align::model::{Answer, Candidate, JudgeModel, ModelError, Reflector, Usage};
use tribunal_align::{align, optimizer, Alignment, Example, OPTIMIZERS};
use tribunal_core::{Message, Role, Trace};
use tribunal_judges::llm::OutputType;
use tribunal_judges::{JudgeInput, JudgeSpec};
use tribunal_store::{clock, Appended, JudgeVersionRow, NewJudgeVersion, Store};

#[derive(Args)]
pub struct AlignArgs {
    /// The stored judge (an `llm` judge; `tribunal judges import` stores one).
    pub name: String,
    /// memory (expert examples and guidelines in the prompt) or instructions (rewrites).
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
    /// Answers sampled per item; the confidence is the share that agree.
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

async fn latest(store: &Store, project: &str, name: &str) -> Result<JudgeVersionRow> {
    let rows = store.judge_versions(project, name).await?;
    let Some(row) = rows.into_iter().last() else {
        bail!("no stored judge {name:?} in project {project:?}; store it first with `tribunal judges import tribunal.toml`");
    };
    if row.kind != "llm" {
        bail!(
            "judge {name} is of kind {}; only llm judges can be aligned or calibrated",
            row.kind
        );
    }
    Ok(row)
}

fn settings_of(row: &JudgeVersionRow) -> Result<serde_json::Map<String, Value>> {
    match serde_json::from_str(&row.settings)
        .with_context(|| format!("stored settings of {} version {}", row.name, row.version))?
    {
        Value::Object(m) => Ok(m),
        _ => bail!(
            "stored settings of {} version {}: expected an object",
            row.name,
            row.version
        ),
    }
}

/// What labels must look like for the judge's declared output.
fn label_type(name: &str, settings: &serde_json::Map<String, Value>) -> Result<LabelType> {
    let output = settings
        .get("output")
        .and_then(Value::as_str)
        .unwrap_or("yes_no");
    Ok(
        match OutputType::parse(output).map_err(|e| anyhow::anyhow!("judges.{name}.output: {e}"))? {
            OutputType::YesNo | OutputType::Bool => LabelType::PassFail,
            OutputType::OneOf(options) => LabelType::Categorical { options },
            OutputType::Int { min, max } => LabelType::Numeric {
                min: min as f64,
                max: max as f64,
            },
            OutputType::Float { min, max } => LabelType::Numeric { min, max },
            OutputType::Text => bail!(
                "judge {name} answers free text: there is no agreement to measure; give it an output type (yes_no, `one of a, b`, int MIN..MAX)"
            ),
        },
    )
}

/// The labels from `--labels FILE`, or from the store's queues tied to the judge; with a
/// name for them in messages.
fn labels_for(
    rt: &tokio::runtime::Runtime,
    store: &Store,
    project: &str,
    judge: &str,
    file: Option<&Path>,
) -> Result<(Vec<LabelRecord>, String)> {
    match file {
        Some(path) => Ok((read_labels(path)?, path.display().to_string())),
        None => {
            let (records, about) =
                rt.block_on(super::labels::judge_labels(store, project, judge))?;
            eprintln!("{judge}: labels from the store: {about}");
            Ok((records, format!("store labels of {judge}")))
        }
    }
}

fn read_labels(path: &Path) -> Result<Vec<LabelRecord>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_jsonl(&text).map_err(|(line, e)| anyhow::anyhow!("{}:{line}: {e}", path.display()))
}

/// The trace a label's example stands for: its inputs as the user's message and the
/// reply as the agent's.
fn trace_of(e: &Example) -> Trace {
    let inputs = tribunal_align::memory::text_of(&e.inputs);
    let outputs = tribunal_align::memory::text_of(&e.outputs);
    Trace {
        id: e.id.clone(),
        inputs: (!e.inputs.is_null()).then(|| e.inputs.clone()),
        outputs: (!e.outputs.is_null()).then(|| e.outputs.clone()),
        messages: vec![
            Message::new("m0", Role::User, inputs),
            Message::new("m1", Role::Assistant, outputs),
        ],
        ..Trace::default()
    }
}

/// The judge's settings with a candidate's instructions and alignment.
fn with_candidate(
    base: &serde_json::Map<String, Value>,
    c: &Candidate,
) -> Result<serde_json::Map<String, Value>> {
    let mut s = base.clone();
    s.insert("instructions".into(), Value::from(c.instructions.clone()));
    if c.alignment.is_empty() {
        s.remove("alignment");
    } else {
        s.insert("alignment".into(), serde_json::to_value(&c.alignment)?);
    }
    Ok(s)
}

/// The stored judge, built with a candidate's definition and run on one example.
struct StoredJudge {
    name: String,
    base: serde_json::Map<String, Value>,
}

impl StoredJudge {
    fn run(
        &self,
        settings: serde_json::Map<String, Value>,
        e: &Example,
    ) -> Result<Answer, ModelError> {
        let judge = tribunal_judges::build_judge(&JudgeSpec {
            name: self.name.clone(),
            kind: "llm".into(),
            params: Value::Object(settings),
        })
        .map_err(|e| ModelError(e.to_string()))?;
        let trace = trace_of(e);
        let f = judge
            .judge(&JudgeInput {
                trace: &trace,
                pending: None,
            })
            .into_iter()
            .next()
            .ok_or_else(|| ModelError("the judge gave no feedback".into()))?;
        let usage = f
            .usage
            .as_ref()
            .map(|u| Usage {
                calls: u64::from(u.calls),
                input_tokens: u.input_tokens,
                output_tokens: u.output_tokens,
                cached_calls: u64::from(u.cached_calls),
            })
            .unwrap_or_default();
        Ok(Answer {
            value: (f.error.is_none() && !f.value.is_null()).then_some(f.value),
            rationale: f.rationale.unwrap_or_default(),
            error: f.error,
            usage,
        })
    }
}

impl JudgeModel for StoredJudge {
    fn judge(&mut self, c: &Candidate, e: &Example) -> Result<Answer, ModelError> {
        let settings = with_candidate(&self.base, c).map_err(|e| ModelError(e.to_string()))?;
        self.run(settings, e)
    }
}

/// The reflection model, reached like the judge's own (same base URL and key).
struct Reflection {
    client: tribunal_llm::LlmClient,
    rt: tokio::runtime::Runtime,
}

impl Reflection {
    fn new(settings: &serde_json::Map<String, Value>, model: Option<&str>) -> Result<Reflection> {
        let uri = match model.or(settings.get("model").and_then(Value::as_str)) {
            Some(m) => tribunal_llm::ModelUri::parse(m)?,
            None => tribunal_llm::default_model()?,
        };
        let mut config = tribunal_llm::ClientConfig::new(uri);
        if let Some(url) = settings.get("base_url").and_then(Value::as_str) {
            config = config.with_base_url(url);
        }
        if let Some(var) = settings.get("api_key_env").and_then(Value::as_str) {
            if let Ok(key) = std::env::var(var) {
                config = config.with_api_key(key);
            }
        }
        Ok(Reflection {
            client: tribunal_llm::LlmClient::new(config)?,
            rt: super::runtime()?,
        })
    }
}

impl Reflector for Reflection {
    fn reflect(&mut self, prompt: &str) -> Result<(String, Usage), ModelError> {
        let request = tribunal_llm::ChatRequest::new(prompt)
            .with_system("You improve the instructions of an evaluator so that it agrees with expert reviewers. Answer only with the JSON object requested.")
            .with_temperature(0.7);
        let r = self
            .rt
            .block_on(self.client.chat(&request))
            .map_err(|e| ModelError(format!("reflection model: {e}")))?;
        Ok((
            r.text,
            Usage {
                calls: 1,
                input_tokens: r.usage.input_tokens,
                output_tokens: r.usage.output_tokens,
                cached_calls: u64::from(r.cached),
            },
        ))
    }
}

fn usage_line(what: &str, u: &Usage, price: Option<&[f64]>) -> String {
    let cost = match price {
        Some([i, o]) => format!(", cost {:.4}", u.cost(*i, *o)),
        _ => String::new(),
    };
    format!(
        "{what}: {} model calls, {} input and {} output tokens{cost}",
        u.calls, u.input_tokens, u.output_tokens
    )
}

async fn store_version(
    store: &Store,
    project: &str,
    name: &str,
    settings: &serde_json::Map<String, Value>,
    note: String,
    lineage: &Value,
) -> Result<Appended> {
    let spec = JudgeSpec {
        name: name.to_owned(),
        kind: "llm".into(),
        params: Value::Object(settings.clone()),
    };
    // The new definition must build before it is stored.
    tribunal_judges::build_versioned(&spec)?;
    let row = NewJudgeVersion {
        project: project.to_owned(),
        name: name.to_owned(),
        kind: "llm".into(),
        settings: Value::Object(settings.clone()).to_string(),
        hash: spec.version(),
        note,
        created_at: clock::now_rfc3339(),
        created_by: "cli".into(),
    };
    let appended = store.append_judge_version(&row).await?;
    if let Appended::Added(v) = appended {
        store
            .insert_judge_lineage(project, name, v, &lineage.to_string())
            .await?;
    }
    Ok(appended)
}

pub fn run_align(store_at: &str, a: AlignArgs) -> Result<u8> {
    let Some(opt) = optimizer(&a.optimizer) else {
        bail!(
            "--optimizer: unknown {:?}; expected one of {}",
            a.optimizer,
            OPTIMIZERS
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    if !(a.holdout > 0.0 && a.holdout < 1.0) {
        bail!(
            "--holdout: expected a share between 0 and 1, found {}",
            a.holdout
        );
    }
    let rt = super::runtime()?;
    let store = rt.block_on(Store::open(store_at))?;
    let row = rt.block_on(latest(&store, &a.project, &a.name))?;
    let base = settings_of(&row)?;
    let ty = label_type(&a.name, &base)?;
    let (records, source) = labels_for(&rt, &store, &a.project, &a.name, a.labels.as_deref())?;
    let data = match Dataset::build(records, &a.name, &ty, Minimums::default()) {
        Ok(d) => d,
        Err(refusal) => {
            eprintln!("{source}: {refusal}");
            return Ok(1);
        }
    };
    let split = data.split(a.holdout, a.seed);
    println!(
        "{}: {} labels read, {} usable ({} train, {} held out, seed {})",
        a.name,
        data.read,
        data.examples.len(),
        split.train.len(),
        split.held_out.len(),
        a.seed
    );
    for (why, n) in &data.skipped {
        println!("  skipped {n}: {why}");
    }
    let start = Candidate {
        instructions: base
            .get("instructions")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        alignment: match base.get("alignment") {
            Some(v) => serde_json::from_value::<Alignment>(v.clone()).with_context(|| {
                format!("stored alignment of {} version {}", a.name, row.version)
            })?,
            None => Alignment::default(),
        },
    };
    let mut judge = StoredJudge {
        name: a.name.clone(),
        base: base.clone(),
    };
    let mut reflector = Reflection::new(&base, a.reflection_model.as_deref())?;
    drop(rt);
    let out = match align(
        opt.as_ref(),
        &start,
        &split,
        &mut judge,
        &mut reflector,
        &ty,
        a.seed,
    ) {
        Ok(o) => o,
        Err(e) => bail!("aligning {}: {e}", a.name),
    };
    println!("optimizer {}:", out.optimizer);
    for n in &out.notes {
        println!("  {n}");
    }
    println!("held-out, version {} (before):", row.version);
    print!("{}", tribunal_align::report::text(&out.before));
    println!("held-out, aligned (after):");
    print!("{}", tribunal_align::report::text(&out.after));
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

    let settings = with_candidate(&base, &out.candidate)?;
    let lineage = json!({
        "command": "align",
        "from_version": row.version,
        "optimizer": out.optimizer,
        "settings": {"holdout": a.holdout, "seed": a.seed, "reflection_model": a.reflection_model},
        "labels": {
            "file": source,
            "read": data.read,
            "skipped": data.skipped,
            "train": out.train_ids,
            "held_out": out.held_out_ids,
        },
        "notes": out.notes,
        "before": out.before,
        "after": out.after,
        "difference": out.difference,
        "usage": {"aligning": out.usage_optimizing, "scoring": out.usage_scoring},
    });
    let rt = super::runtime()?;
    let note = format!(
        "aligned with {} on {} labels of {}",
        out.optimizer,
        out.train_ids.len(),
        source
    );
    match rt.block_on(store_version(
        &store, &a.project, &a.name, &settings, note, &lineage,
    ))? {
        Appended::Added(v) => println!(
            "{}: stored as version {v} (roll back with `tribunal judges rollback {} --to {}`)",
            a.name, a.name, row.version
        ),
        Appended::Unchanged(v) => println!("{}: unchanged, same as version {v}", a.name),
    }
    Ok(0)
}

pub fn run_calibrate(store_at: &str, a: CalibrateArgs) -> Result<u8> {
    if a.samples < 2 {
        bail!("--samples: at least 2 (the confidence is the share of sampled answers that agree)");
    }
    let rt = super::runtime()?;
    let store = rt.block_on(Store::open(store_at))?;
    let row = rt.block_on(latest(&store, &a.project, &a.name))?;
    let base = settings_of(&row)?;
    let ty = label_type(&a.name, &base)?;
    let (records, source) = labels_for(&rt, &store, &a.project, &a.name, a.labels.as_deref())?;
    let data = match Dataset::build(
        records,
        &a.name,
        &ty,
        Minimums {
            total: 1,
            per_class: 0,
        },
    ) {
        Ok(d) => d,
        Err(refusal) => {
            eprintln!("{source}: {refusal}");
            return Ok(1);
        }
    };
    let mut settings = base.clone();
    settings.insert("samples".into(), Value::from(a.samples));
    settings.remove("trust_threshold");
    let judge = StoredJudge {
        name: a.name.clone(),
        base: base.clone(),
    };
    let mut items = Vec::new();
    let mut usage = Usage::default();
    let mut unanswered = 0;
    for e in &data.examples {
        let answer = judge
            .run(settings.clone(), e)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        usage.add(&answer.usage);
        let Some(confidence) = tribunal_judges::llm::sampled_confidence(&answer.rationale) else {
            unanswered += 1;
            continue;
        };
        let agrees = answer
            .value
            .as_ref()
            .and_then(|v| ty.normalize(v).ok())
            .is_some_and(|v| v == e.label);
        items.push(Scored { confidence, agrees });
    }
    println!(
        "{}: {} labelled items judged with {} samples each ({unanswered} without an answer, left out)",
        a.name,
        data.examples.len(),
        a.samples
    );
    println!("{}", usage_line("calibrating", &usage, None));
    let t = match calibrate(&items, a.target_agreement, a.confidence) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{}: {e}", a.name);
            return Ok(1);
        }
    };
    println!(
        "threshold {}: {} of {} calibration items trusted (coverage {:.3}), agreement {:.3} on them (p = {:.4}, {} thresholds tested)",
        t.threshold, t.trusted, t.items, t.coverage, t.agreement, t.p_value, t.tested
    );
    println!(
        "answers below {} are not trusted: tribunal.judge_untrusted sends them to people (on_untrusted = \"block\" or \"warn\" to change that), and queues with untrusted_from collect them",
        t.threshold
    );
    settings.insert("trust_threshold".into(), Value::from(t.threshold));
    let lineage = json!({
        "command": "calibrate",
        "from_version": row.version,
        "settings": {"target_agreement": a.target_agreement, "confidence": a.confidence, "samples": a.samples},
        "labels": {"file": source, "read": data.read, "skipped": data.skipped, "used": items.len()},
        "calibration": t,
        "usage": {"calibrating": usage},
    });
    let note = format!(
        "calibrated: trust answers with confidence >= {} (agreement >= {} with probability {})",
        t.threshold, a.target_agreement, a.confidence
    );
    match rt.block_on(store_version(
        &store, &a.project, &a.name, &settings, note, &lineage,
    ))? {
        Appended::Added(v) => println!("{}: stored as version {v}", a.name),
        Appended::Unchanged(v) => println!("{}: unchanged, same as version {v}", a.name),
    }
    Ok(0)
}

pub fn run_report(store_at: &str, a: ReportArgs) -> Result<u8> {
    let rt = super::runtime()?;
    let store = rt.block_on(Store::open(store_at))?;
    let versions = rt.block_on(store.judge_versions(&a.project, &a.name))?;
    if versions.is_empty() {
        bail!("no stored judge {:?} in project {:?}", a.name, a.project);
    }
    let lineage = rt.block_on(store.judge_lineage(&a.project, &a.name))?;
    println!("{} ({} versions)", a.name, versions.len());
    for v in &versions {
        println!(
            "version {} ({}, {}): {}",
            v.version, v.created_at, v.hash, v.note
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
                    l["optimizer"].as_str().unwrap_or("?"),
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
                        "  {what}: {} calls, {} input and {} output tokens",
                        u["calls"], u["input_tokens"], u["output_tokens"]
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
    let queues = rt.block_on(super::labels::queues(store, &a.project))?;
    let h = tribunal_labels::figures::hybrid(&a.name, &queues);
    if h["items"] == 0 {
        println!(
            "people and the judge: no labeling queue is tied to {}",
            a.name
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
        h["queues"].as_array().map(|q| q.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")).unwrap_or_default(),
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
    for q in queues.iter().filter(|q| {
        q.schema.judge.as_deref() == Some(a.name.as_str())
            || q.def.untrusted_from.as_deref() == Some(a.name.as_str())
    }) {
        for item in q.items.values() {
            let Some(trace) = &item.trace else { continue };
            let Some(row) = rt.block_on(store.get_trace(&a.project, trace))? else {
                continue;
            };
            let Some(result) = row
                .result
                .and_then(|r| serde_json::from_str::<Value>(&r).ok())
            else {
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
    let store = rt.block_on(Store::open(store_at))?;
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
        Appended::Added(v) => println!("{}: version {v} is version {} again", a.name, a.to),
        Appended::Unchanged(v) => println!(
            "{}: the latest (version {v}) is already that definition",
            a.name
        ),
    }
    Ok(0)
}
