//! Fitting a stored `llm` judge to expert labels and choosing its trust threshold: the
//! flows behind `tribunal judges align|calibrate` and the Judge Builder's "Align with N
//! labels". Labels come from the settled labels of the labeling queues whose schema is tied
//! to the judge (or are given); the statistics live in `tribunal-align`; this module
//! supplies the store, the real judge and the reflection model, and stores the result as a
//! new version with its lineage.

use anyhow::{bail, Context as _, Result};
use serde::Serialize;
use serde_json::{json, Value};
use tribunal_align::calibrate::{calibrate, Scored, Threshold};
use tribunal_align::data::{Dataset, LabelRecord, LabelType, Minimums};
use tribunal_align::model::{Answer, Candidate, JudgeModel, ModelError, Reflector, Usage};
use tribunal_align::{align, optimizer, Aligned, Alignment, Example, OPTIMIZERS};
use tribunal_core::{Message, Role, Trace};
use tribunal_judges::llm::OutputType;
use tribunal_judges::{JudgeInput, JudgeSpec};
use tribunal_labels::state::QueueState;
use tribunal_store::{clock, Appended, JudgeVersionRow, NewJudgeVersion, Store};

/// Why a run makes no claim: too few labels, one class, labels of another type. Not a
/// failure of the tool: the user needs more or other labels.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

/// Labels given with the request, and a name for them in messages and the lineage.
pub struct GivenLabels {
    pub records: Vec<LabelRecord>,
    pub source: String,
}

pub struct AlignOptions {
    pub project: String,
    pub name: String,
    /// `memory`, `instructions` or `isotonic`.
    pub optimizer: String,
    /// Without them, the store's labels of the queues tied to the judge.
    pub labels: Option<GivenLabels>,
    pub holdout: f64,
    pub seed: u64,
    pub reflection_model: Option<String>,
    /// Find similar remembered examples by this embeddings model instead of BM25.
    pub embeddings: Option<String>,
    /// Who asked (`cli`, or the signed-in token's name).
    pub created_by: String,
}

/// What an alignment run did.
#[derive(Debug, Clone, Serialize)]
pub struct AlignRun {
    pub name: String,
    pub from_version: i64,
    /// Where the labels came from.
    pub source: String,
    /// How the store's labels were found (queues, settled, not settled); `None` for given ones.
    pub found: Option<Value>,
    pub read: usize,
    pub usable: usize,
    pub skipped: std::collections::BTreeMap<String, usize>,
    pub seed: u64,
    pub aligned: Aligned,
    /// The new version, or the version it is the same as.
    pub version: i64,
    pub unchanged: bool,
}

pub struct CalibrateOptions {
    pub project: String,
    pub name: String,
    pub target_agreement: f64,
    pub confidence: f64,
    /// `auto` (token probabilities where the provider gives them, else samples),
    /// `logprobs` or `samples`.
    pub confidence_from: String,
    pub samples: u32,
    pub labels: Option<GivenLabels>,
    pub created_by: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CalibrateRun {
    pub name: String,
    pub from_version: i64,
    pub source: String,
    pub found: Option<Value>,
    pub items: usize,
    /// Items whose answer had no confidence (left out).
    pub unanswered: usize,
    /// `logprobs` or `samples`.
    pub confidence_from: String,
    pub samples: u32,
    pub usage: Usage,
    pub threshold: Threshold,
    pub version: i64,
    pub unchanged: bool,
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

/// The first user message and last reply (its own inputs and outputs when it carries
/// them) of the trace an item of `trace` (of eval run `run`, when it came from one) shows
/// now; `None` when the store does not hold it.
pub async fn trace_text(
    store: &Store,
    project: &str,
    trace: &str,
    run: Option<&str>,
) -> Result<Option<(Value, Value)>> {
    let t = crate::labels::items::item_trace(store, project, trace, run)
        .await
        .map_err(|e| anyhow::anyhow!("reading trace {trace}: {}", e.message))?;
    if t.is_null() {
        return Ok(None);
    }
    Ok(Some(crate::labels::items::inputs_outputs(&t)))
}

/// What was shown of `item` when it was settled by `by`: a reviewer's final label, what the
/// reviewer was shown; else what the first who labelled it was shown (see
/// [`crate::labels::items::shown`]). `None` for labels that kept no record.
pub fn settled_shown<'a>(q: &'a QueueState, item: &str, by: &[String]) -> Option<&'a str> {
    by.iter().find_map(|p| {
        ["final", "label"].iter().find_map(|kind| {
            q.notes
                .get(&(item.to_owned(), p.clone(), (*kind).to_owned()))
                .and_then(|n| n.shown.as_deref())
        })
    })
}

/// The settled labels of every queue whose schema is tied to `judge`, as alignment labels:
/// the item's stored trace gives the inputs and outputs; items without one are counted.
pub async fn judge_labels(
    store: &Store,
    project: &str,
    judge: &str,
) -> Result<(Vec<LabelRecord>, Value)> {
    let mut out: Vec<LabelRecord> = Vec::new();
    let (mut queues_used, mut without_trace, mut unsettled) = (Vec::new(), 0usize, 0usize);
    // One label per trace: a trace labelled in several queues would otherwise count twice,
    // and could fall in both the train and the held-out part.
    let mut by_trace: std::collections::HashMap<String, usize> = Default::default();
    let (mut again, mut conflicting) = (0usize, std::collections::BTreeSet::new());
    let mut as_shown = 0usize;
    let mut missing: std::collections::HashSet<String> = Default::default();
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
            let Some(shown) = q.items.get(item).filter(|i| i.trace.is_some()) else {
                without_trace += 1;
                continue;
            };
            let run = shown.run.clone();
            // A run's trace and a stored trace of the same id may be two conversations.
            let trace = match &run {
                Some(run) => format!("{run}\n{}", shown.trace.as_deref().unwrap_or_default()),
                None => shown.trace.clone().unwrap_or_default(),
            };
            if let Some(&at) = by_trace.get(&trace) {
                if same_label(&out[at].label, &s.value) {
                    again += 1;
                } else {
                    conflicting.insert(at);
                }
                continue;
            }
            if missing.contains(&trace) {
                continue;
            }
            let id = shown.trace.as_deref().unwrap_or_default();
            // A label given before labels kept what was shown (or imported without it)
            // reads the trace as it is now.
            let seen = settled_shown(&q, item, &s.by).and_then(crate::labels::items::shown_texts);
            let (inputs, outputs) = match seen {
                Some(texts) => {
                    as_shown += 1;
                    texts
                }
                None => match trace_text(store, project, id, run.as_deref()).await? {
                    Some(texts) => texts,
                    None => {
                        without_trace += 1;
                        missing.insert(trace);
                        continue;
                    }
                },
            };
            by_trace.insert(trace.clone(), out.len());
            let comment = s.by.iter().find_map(|p| {
                q.notes
                    .get(&(item.to_owned(), p.clone(), "label".to_owned()))
                    .and_then(|n| n.comment.clone())
            });
            out.push(LabelRecord {
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
    // A trace people labelled one way in one queue and another way in another is left out.
    let out: Vec<LabelRecord> = out
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !conflicting.contains(i))
        .map(|(_, r)| r)
        .collect();
    let mut about = json!({"queues": queues_used, "settled": out.len(), "not_settled": unsettled, "without_stored_trace": without_trace});
    if as_shown > 0 {
        about["read_as_labelled"] = json!(as_shown);
    }
    if again > 0 || !conflicting.is_empty() {
        about["same_trace_again"] = json!(again);
        about["conflicting_traces_left_out"] = json!(conflicting.len());
    }
    Ok((out, about))
}

/// Whether two labels of one trace, given in queues whose schemas may differ, say the same
/// to the judge: a pass/fail schema's `true` and a categorical schema's `"pass"` or `"yes"`
/// are one answer, as are the numbers 4 and 4.0.
fn same_label(a: &Value, b: &Value) -> bool {
    if a == b {
        return true;
    }
    let pass_fail = LabelType::PassFail;
    if let (Ok(x), Ok(y)) = (pass_fail.normalize(a), pass_fail.normalize(b)) {
        return x == y;
    }
    matches!((a.as_f64(), b.as_f64()), (Some(x), Some(y)) if x == y)
}

pub async fn latest(store: &Store, project: &str, name: &str) -> Result<JudgeVersionRow> {
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

pub fn settings_of(row: &JudgeVersionRow) -> Result<serde_json::Map<String, Value>> {
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
pub fn label_type(name: &str, settings: &serde_json::Map<String, Value>) -> Result<LabelType> {
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

/// The trace a label's example stands for: its inputs as the user's message and the
/// reply as the agent's.
pub fn trace_of(e: &Example) -> Trace {
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
pub fn with_candidate(
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
pub struct StoredJudge {
    pub name: String,
    pub base: serde_json::Map<String, Value>,
}

impl StoredJudge {
    pub fn run(
        &self,
        settings: serde_json::Map<String, Value>,
        e: &Example,
    ) -> Result<Answer, ModelError> {
        let judge = tribunal_judges::build_versioned_as(
            &JudgeSpec {
                name: self.name.clone(),
                kind: "llm".into(),
                params: Value::Object(settings),
            },
            crate::judges::stored_trust(true),
        )
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
        // A model that gave no answer (after the judge's own retries) would give none on
        // the next items either: the run stops here rather than wait out every item.
        if f.is_unanswered() {
            return Err(ModelError(f.error.unwrap_or_default()));
        }
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
pub struct Reflection {
    client: tribunal_llm::LlmClient,
    rt: tokio::runtime::Runtime,
}

impl Reflection {
    pub fn new(
        settings: &serde_json::Map<String, Value>,
        model: Option<&str>,
    ) -> Result<Reflection> {
        let uri = match model.or(settings.get("model").and_then(Value::as_str)) {
            Some(m) => tribunal_llm::ModelUri::parse(m)?,
            None => tribunal_llm::default_model()?,
        };
        // Stored settings: their base URL gets the environment's key only where the
        // operator sends requests (see `crate::judges::stored_trust`).
        let mut config =
            tribunal_llm::ClientConfig::new(uri).with_origin(tribunal_llm::Origin::Request);
        if let Some(url) = settings.get("base_url").and_then(Value::as_str) {
            config = config.with_base_url(url);
        }
        if let Some(var) = settings.get("api_key_env").and_then(Value::as_str) {
            config = config.with_api_key_env(var);
        }
        Ok(Reflection {
            client: tribunal_llm::LlmClient::new(config)?,
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
        })
    }
}

impl Reflector for Reflection {
    fn reflect(&mut self, prompt: &str) -> Result<(String, Usage), ModelError> {
        let request = tribunal_llm::ChatRequest::new(prompt)
            .with_system("You improve the instructions of an evaluator so that it agrees with expert reviewers. Answer only with the JSON object requested.")
            .with_temperature(0.7);
        let call = || self.rt.block_on(self.client.chat(&request));
        // Blocking is not allowed on a thread inside another runtime: there, a thread of
        // its own waits.
        let r = if tokio::runtime::Handle::try_current().is_ok() {
            std::thread::scope(|s| s.spawn(call).join())
                .map_err(|_| ModelError("reflection model: the call panicked".into()))?
        } else {
            call()
        }
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

/// Stores a new version with its lineage: its number, and whether it equals the latest
/// (then nothing is stored).
pub async fn store_version(
    store: &Store,
    project: &str,
    name: &str,
    settings: &serde_json::Map<String, Value>,
    note: String,
    lineage: &Value,
    created_by: &str,
) -> Result<(i64, bool)> {
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
        created_by: created_by.to_owned(),
    };
    match store.append_judge_version(&row).await? {
        Appended::Added(v) => {
            store
                .insert_judge_lineage(project, name, v, &lineage.to_string())
                .await?;
            Ok((v, false))
        }
        Appended::Unchanged(v) => Ok((v, true)),
    }
}

/// The labels to use: the given ones, or the store's for `judge`.
async fn labels_of(
    store: &Store,
    project: &str,
    judge: &str,
    given: Option<GivenLabels>,
) -> Result<(Vec<LabelRecord>, String, Option<Value>)> {
    match given {
        Some(g) => Ok((g.records, g.source, None)),
        None => {
            let (records, found) = judge_labels(store, project, judge).await?;
            Ok((records, format!("store labels of {judge}"), Some(found)))
        }
    }
}

/// How many settled labels the store holds for `judge`, and how they were found.
pub async fn label_count(store: &Store, project: &str, judge: &str) -> Result<(usize, Value)> {
    let (records, found) = judge_labels(store, project, judge).await?;
    Ok((records.len(), found))
}

/// Whether `optimizer` exists and fits a judge whose labels are of type `ty`.
pub fn check_optimizer(name: &str, ty: &LabelType) -> Result<(), String> {
    if optimizer(name).is_none() {
        return Err(format!(
            "optimizer: unknown {name:?}; expected one of {}",
            OPTIMIZERS
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if name == "isotonic" && !matches!(ty, LabelType::Numeric { .. }) {
        return Err("optimizer: isotonic maps numeric answers to the experts' scale; this judge's output is not a number (use memory or instructions)".into());
    }
    Ok(())
}

/// Aligns the latest version of a stored `llm` judge and stores the result as a new version
/// with its lineage. `Ok(Err(refusal))` when the labels do not allow a claim.
pub async fn align_judge(store: &Store, o: AlignOptions) -> Result<Result<AlignRun, Refusal>> {
    if !(o.holdout > 0.0 && o.holdout < 1.0) {
        bail!(
            "holdout: expected a share between 0 and 1, found {}",
            o.holdout
        );
    }
    if let Some(uri) = &o.embeddings {
        tribunal_llm::ModelUri::parse(uri).map_err(|e| anyhow::anyhow!("embeddings: {e}"))?;
    }
    let row = latest(store, &o.project, &o.name).await?;
    let base = settings_of(&row)?;
    let ty = label_type(&o.name, &base)?;
    check_optimizer(&o.optimizer, &ty).map_err(|e| anyhow::anyhow!(e))?;
    let (records, source, found) = labels_of(store, &o.project, &o.name, o.labels).await?;
    let data = match Dataset::build(records, &o.name, &ty, Minimums::default()) {
        Ok(d) => d,
        Err(refusal) => return Ok(Err(Refusal(format!("{source}: {refusal}")))),
    };
    let split = data.split(o.holdout, o.seed);
    let mut start = Candidate {
        instructions: base
            .get("instructions")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        alignment: match base.get("alignment") {
            Some(v) => serde_json::from_value::<Alignment>(v.clone()).with_context(|| {
                format!("stored alignment of {} version {}", o.name, row.version)
            })?,
            None => Alignment::default(),
        },
    };
    if o.embeddings.is_some() {
        start.alignment.embeddings = o.embeddings.clone();
    }
    let judge = StoredJudge {
        name: o.name.clone(),
        base: base.clone(),
    };
    let reflector = Reflection::new(&base, o.reflection_model.as_deref())?;
    let seed = o.seed;
    let optimizer_name = o.optimizer.clone();
    let (out, split) = tokio::task::spawn_blocking(move || {
        let (mut judge, mut reflector) = (judge, reflector);
        let Some(opt) = optimizer(&optimizer_name) else {
            return (Err(format!("unknown optimizer {optimizer_name:?}")), split);
        };
        let out = align(
            opt.as_ref(),
            &start,
            &split,
            &mut judge,
            &mut reflector,
            &ty,
            seed,
        )
        .map_err(|e| e.to_string());
        (out, split)
    })
    .await?;
    let out = out.map_err(|e| anyhow::anyhow!("aligning {}: {e}", o.name))?;
    let settings = with_candidate(&base, &out.candidate)?;
    let lineage = json!({
        "command": "align",
        "from_version": row.version,
        "optimizer": out.optimizer,
        "settings": {"holdout": o.holdout, "seed": o.seed, "reflection_model": o.reflection_model, "embeddings": out.candidate.alignment.embeddings},
        "labels": {
            "file": source,
            "found": found,
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
    let note = format!(
        "aligned with {} on {} labels of {}",
        out.optimizer,
        split.train.len(),
        source
    );
    let (version, unchanged) = store_version(
        store,
        &o.project,
        &o.name,
        &settings,
        note,
        &lineage,
        &o.created_by,
    )
    .await?;
    Ok(Ok(AlignRun {
        name: o.name,
        from_version: row.version,
        source,
        found,
        read: data.read,
        usable: data.examples.len(),
        skipped: data.skipped.clone(),
        seed: o.seed,
        aligned: out,
        version,
        unchanged,
    }))
}

/// Chooses the trust threshold of the latest version of a stored `llm` judge on labelled
/// items and stores it as a new version. `Ok(Err(refusal))` when the labels do not allow
/// a threshold.
pub async fn calibrate_judge(
    store: &Store,
    o: CalibrateOptions,
) -> Result<Result<CalibrateRun, Refusal>> {
    let forced = match o.confidence_from.as_str() {
        "auto" => None,
        "logprobs" => Some(true),
        "samples" => Some(false),
        other => bail!("confidence-from: expected auto, logprobs or samples, found {other:?}"),
    };
    if forced != Some(true) && o.samples < 2 {
        bail!("samples: at least 2 (the confidence is the share of sampled answers that agree)");
    }
    let row = latest(store, &o.project, &o.name).await?;
    let base = settings_of(&row)?;
    let ty = label_type(&o.name, &base)?;
    let (records, source, found) = labels_of(store, &o.project, &o.name, o.labels).await?;
    let data = match Dataset::build(
        records,
        &o.name,
        &ty,
        Minimums {
            total: 1,
            per_class: 0,
        },
    ) {
        Ok(d) => d,
        Err(refusal) => return Ok(Err(Refusal(format!("{source}: {refusal}")))),
    };
    let mut plain = base.clone();
    plain.remove("trust_threshold");
    plain.remove("samples");
    plain.remove("confidence");
    let by_logprobs = {
        let mut s = plain.clone();
        s.insert("confidence".into(), Value::from("logprobs"));
        s
    };
    let by_samples = {
        let mut s = plain.clone();
        s.insert("confidence".into(), Value::from("samples"));
        s.insert("samples".into(), Value::from(o.samples));
        s
    };
    let judge = StoredJudge {
        name: o.name.clone(),
        base: base.clone(),
    };
    let examples = data.examples.clone();
    let name = o.name.clone();
    let ty2 = ty.clone();
    // Token probabilities where the provider gives them (tried on the first item), else
    // agreement among samples.
    let run = tokio::task::spawn_blocking(move || -> Result<_> {
        let mut usage = Usage::default();
        // The first item's answer when it was asked with log-probabilities to find out
        // whether the provider gives them: kept as that item's answer.
        let mut first: Option<Answer> = None;
        let mut settings = match forced {
            Some(true) => by_logprobs.clone(),
            Some(false) => by_samples.clone(),
            None => match examples.first().map(|e| judge.run(by_logprobs.clone(), e)) {
                // A model that failed says nothing about log-probabilities.
                Some(Ok(a)) if a.error.is_some() && a.value.is_none() => {
                    bail!("judging {name}: {}", a.error.unwrap_or_default())
                }
                Some(Err(e)) if e.0.starts_with(tribunal_core::feedback::UNANSWERED) => {
                    bail!("judging {name}: {}", e.0)
                }
                Some(Ok(a)) if tribunal_judges::llm::sampled_confidence(&a.rationale).is_some() => {
                    first = Some(a);
                    by_logprobs.clone()
                }
                // The provider answered without them.
                Some(Ok(a)) => {
                    usage.add(&a.usage);
                    by_samples.clone()
                }
                // The judge cannot ask for them (its provider gives none).
                _ => by_samples.clone(),
            },
        };
        let mut items = Vec::new();
        let mut unanswered = 0;
        for e in &examples {
            let answer = match first.take() {
                Some(a) => a,
                None => judge
                    .run(settings.clone(), e)
                    .map_err(|e| anyhow::anyhow!("judging {name}: {e}"))?,
            };
            usage.add(&answer.usage);
            let Some(confidence) = tribunal_judges::llm::sampled_confidence(&answer.rationale)
            else {
                unanswered += 1;
                continue;
            };
            let agrees = answer
                .value
                .as_ref()
                .and_then(|v| ty2.normalize(v).ok())
                .is_some_and(|v| v == e.label);
            items.push(Scored { confidence, agrees });
        }
        settings.remove("trust_threshold");
        Ok((settings, items, unanswered, usage))
    })
    .await??;
    let (mut settings, items, unanswered, usage) = run;
    let from = settings
        .get("confidence")
        .and_then(Value::as_str)
        .unwrap_or("samples")
        .to_owned();
    if items.is_empty() && unanswered > 0 {
        // Not too few labels: none of the judge's answers came with a confidence.
        return Ok(Err(Refusal(format!(
            "{}: none of the judge's {unanswered} answers came with a confidence ({}); use --confidence-from samples, or a provider that gives log-probabilities",
            o.name,
            if from == "logprobs" {
                "the model server gave no log-probabilities"
            } else {
                "the sampled answers gave none"
            }
        ))));
    }
    let t = match calibrate(&items, o.target_agreement, o.confidence) {
        Ok(t) => t,
        Err(e) => return Ok(Err(Refusal(format!("{}: {e}", o.name)))),
    };
    settings.insert("trust_threshold".into(), Value::from(t.threshold));
    let samples = if from == "samples" { o.samples } else { 1 };
    let lineage = json!({
        "command": "calibrate",
        "from_version": row.version,
        "settings": {"target_agreement": o.target_agreement, "confidence": o.confidence, "confidence_from": from, "samples": samples},
        "labels": {"file": source, "found": found, "read": data.read, "skipped": data.skipped, "used": items.len()},
        "calibration": t,
        "usage": {"calibrating": usage},
    });
    let note = format!(
        "calibrated: trust answers with confidence >= {} (agreement >= {} with probability {}; confidence from {from})",
        t.threshold, o.target_agreement, o.confidence
    );
    let (version, unchanged) = store_version(
        store,
        &o.project,
        &o.name,
        &settings,
        note,
        &lineage,
        &o.created_by,
    )
    .await?;
    Ok(Ok(CalibrateRun {
        name: o.name,
        from_version: row.version,
        source,
        found,
        items: data.examples.len(),
        unanswered,
        confidence_from: from,
        samples,
        usage,
        threshold: t,
        version,
        unchanged,
    }))
}
