//! The Judge Builder's API: the built-in kinds to start from, judge definitions stored per
//! project as numbered versions (list, add, compare, roll back), and trying a definition on
//! stored traces before it is saved. A definition is built with the registry exactly as a
//! `tribunal.toml` table is, so what is stored always builds and its hash is the version its
//! feedback carries.

use crate::auth::{Caller, Permission};
use crate::error::{ApiError, Code};
use crate::{api, body, AppState};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use tribunal_core::{Feedback, Pending, Trace};
use tribunal_engine::judge_toml;
use tribunal_judges::llm::ClientTrust;
use tribunal_judges::metrics::usage::PriceTable;
use tribunal_judges::{Judge, JudgeInput, JudgeSpec, BUILTINS};
use tribunal_store::{clock, Appended, JudgeVersionRow, NewJudgeVersion};

/// Traces one try may run on.
pub const MAX_TRY_TRACES: usize = 50;
/// Largest accepted request body on these routes.
const MAX_BODY: usize = 1 << 20;

/// Kinds whose judges ask a model, besides the presets.
const MODEL_KINDS: &[&str] = &["llm", "agent", "requirements", "failure_attribution"];

/// `GET /api/v1/judges/builtins`: every built-in kind; model judges with their instructions
/// and output type, to start a new judge from.
pub async fn builtins(Extension(caller): Extension<Caller>) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let list: Vec<Value> = BUILTINS
        .iter()
        .map(|b| {
            let preset = tribunal_judges::llm::presets::for_kind(b.kind);
            json!({
                "kind": b.kind,
                "description": b.description,
                "model_judge": preset.is_some() || MODEL_KINDS.contains(&b.kind),
                "instructions": preset.map(|p| p.instructions),
                "output": preset.map(|p| p.output),
            })
        })
        .collect();
    Ok(Json(json!({ "builtins": list })))
}

pub(crate) fn check_name(name: &str) -> Result<(), ApiError> {
    judge_toml::check_name(name).map_err(|e| ApiError::request(e.to_string()))
}

fn invalid_judge(what: impl std::fmt::Display) -> ApiError {
    ApiError::new(Code::InvalidJudge, what.to_string())
}

/// Settings of a judge definition that choose where its model requests go, which credential
/// they carry or what the server reads, with what they do: in a definition sent to the
/// server, only an admin may give them (anyone else could send the server's API key, or any
/// environment variable, to a server of their own, or read the server's files).
pub(crate) const ADMIN_SETTINGS: &[(&str, &str)] = &[
    (
        "base_url",
        "it chooses the server the judge's model requests go to",
    ),
    (
        "api_key_env",
        "it chooses the environment variable whose value is sent as the API key",
    ),
    (
        "path",
        "it names a file on the server for the judge to read",
    ),
];

/// Refuses a definition from a caller who is not an admin when it gives one of
/// [`ADMIN_SETTINGS`]: `403 forbidden` naming the setting.
pub(crate) fn check_admin_settings(caller: &Caller, settings: &Value) -> Result<(), ApiError> {
    if caller.may(Permission::Admin) {
        return Ok(());
    }
    let Value::Object(o) = settings else {
        return Ok(());
    };
    match ADMIN_SETTINGS.iter().find(|(k, _)| o.contains_key(*k)) {
        None => Ok(()),
        Some((key, why)) => Err(ApiError::new(
            Code::Forbidden,
            format!(
                "settings.{key}: only an admin token may set {key} in a judge definition sent to the server ({why}); a token with role {:?} may not",
                caller.role
            ),
        )),
    }
}

/// What the model clients of a definition that did not come from the operator's own
/// configuration may do: one sent in a request, and every stored version (the store holds
/// what admin tokens saved through this API, and versions derived from them), wherever it
/// runs (tries, monitors, alignment). Such a definition's `base_url` never gets the
/// environment's provider key, whether found by the provider's variable or by an
/// `api_key_env` naming it, unless it is the provider's default endpoint or the one the
/// environment names (`OPENAI_BASE_URL`, …). `quote_answers`: whether errors may quote
/// what a model server answered.
pub(crate) fn stored_trust(quote_answers: bool) -> ClientTrust {
    ClientTrust {
        origin: tribunal_llm::Origin::Request,
        quote_answers,
    }
}

/// [`stored_trust`] for a judge built for `caller`: only an admin reads what a model
/// server answered in errors.
fn trust_for(caller: &Caller) -> ClientTrust {
    stored_trust(caller.may(Permission::Admin))
}

/// Builds a stored version (off the async threads) with [`stored_trust`]: its errors quote
/// what a model server answered only when `quote_answers` (when they go to an admin alone).
pub(crate) async fn build_stored(
    row: &JudgeVersionRow,
    quote_answers: bool,
) -> Result<(JudgeSpec, Box<dyn Judge>), ApiError> {
    build_as(
        &row.name,
        &row.kind,
        &settings_of(row)?,
        stored_trust(quote_answers),
    )
    .await
}

/// Checks a definition and builds it (off the async threads: a model judge starts its
/// client) with its model clients set up by `trust`; the spec (canonical settings) and the
/// judge.
async fn build_as(
    name: &str,
    kind: &str,
    settings: &Value,
    trust: ClientTrust,
) -> Result<(JudgeSpec, Box<dyn Judge>), ApiError> {
    let settings = judge_toml::check_settings(settings).map_err(invalid_judge)?;
    let spec = judge_toml::spec(name, kind, &settings);
    let s = spec.clone();
    let judge = tokio::task::spawn_blocking(move || tribunal_judges::build_versioned_as(&s, trust))
        .await
        .map_err(|e| ApiError::new(Code::Internal, format!("building the judge failed: {e}")))?
        .map_err(invalid_judge)?;
    Ok((spec, judge))
}

/// Reads a JSON body of type `T`; `shape` is shown when it does not fit.
pub(crate) async fn json_body<T: serde::de::DeserializeOwned>(
    state: &AppState,
    headers: &HeaderMap,
    body: axum::body::Body,
    shape: &str,
) -> Result<T, ApiError> {
    body::json(state, headers, body, MAX_BODY, shape).await
}

pub(crate) fn settings_of(row: &JudgeVersionRow) -> Result<Value, ApiError> {
    serde_json::from_str(&row.settings).map_err(|e| {
        ApiError::new(
            Code::Internal,
            format!(
                "stored settings of {} version {} do not read: {e}",
                row.name, row.version
            ),
        )
    })
}

fn version_json(row: &JudgeVersionRow) -> Result<Value, ApiError> {
    Ok(json!({
        "version": row.version,
        "kind": row.kind,
        "settings": settings_of(row)?,
        "hash": row.hash,
        "note": row.note,
        "created_at": row.created_at,
        "created_by": row.created_by,
    }))
}

/// The latest stored version of every judge of a project, as `GET /api/v1/judges` lists it.
pub async fn stored_summary(state: &AppState, project: &str) -> Result<Vec<Value>, ApiError> {
    Ok(state
        .store
        .latest_judge_versions(project)
        .await?
        .iter()
        .map(|r| {
            json!({
                "name": r.name,
                "kind": r.kind,
                "latest_version": r.version,
                "hash": r.hash,
                "updated_at": r.created_at,
            })
        })
        .collect())
}

/// `GET /api/v1/judges/{name}/versions`: every version, oldest first.
pub async fn versions(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    check_name(&name)?;
    let rows = state.store.judge_versions(&caller.project, &name).await?;
    if rows.is_empty() {
        return Err(ApiError::not_found(format!(
            "no stored judge {name:?} in this project"
        )));
    }
    let versions = rows
        .iter()
        .map(version_json)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!({ "name": name, "versions": versions })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewVersionBody {
    kind: String,
    settings: Value,
    note: Option<String>,
}

/// Stores a version unless it equals the latest: 201 with its number, or 409.
async fn append(
    state: &AppState,
    caller: &Caller,
    spec: &JudgeSpec,
    note: String,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let hash = spec.version();
    let row = NewJudgeVersion {
        project: caller.project.clone(),
        name: spec.name.clone(),
        kind: spec.kind.clone(),
        settings: spec.params.to_string(),
        hash: hash.clone(),
        note,
        created_at: clock::now_rfc3339(),
        created_by: caller.token_id.clone(),
    };
    match state.store.append_judge_version(&row).await? {
        Appended::Added(version) => Ok((
            StatusCode::CREATED,
            Json(json!({"name": spec.name, "version": version, "hash": hash})),
        )),
        Appended::Unchanged(version) => Err(ApiError::new(
            Code::Conflict,
            format!(
                "judge {:?}: the definition is the same as its latest version {version} (hash {hash}); nothing was stored",
                spec.name
            ),
        )),
    }
}

/// `POST /api/v1/judges/{name}/versions`: a new version, built first so a bad setting is
/// refused, never stored.
pub async fn add_version(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(Permission::Admin)?;
    check_name(&name)?;
    let b: NewVersionBody = json_body(
        &state,
        &headers,
        body,
        "{\"kind\": string, \"settings\": object, \"note\"?: string}",
    )
    .await?;
    check_admin_settings(&caller, &b.settings)?;
    let (spec, judge) = build_as(&name, &b.kind, &b.settings, trust_for(&caller)).await?;
    drop(judge);
    append(&state, &caller, &spec, b.note.unwrap_or_default()).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffQuery {
    from: i64,
    to: i64,
}

async fn version_row(
    state: &AppState,
    project: &str,
    name: &str,
    version: i64,
) -> Result<JudgeVersionRow, ApiError> {
    state
        .store
        .judge_version(project, name, version)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "judge {name:?} has no version {version} in this project"
            ))
        })
}

/// `GET /api/v1/judges/{name}/diff?from=A&to=B`: what changed between two versions, as
/// paths and as a unified diff of their `tribunal.toml` tables.
pub async fn diff(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    q: Result<Query<DiffQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    check_name(&name)?;
    let Query(q) = q.map_err(|e| {
        ApiError::request(format!("{e}; expected from and to, two version numbers"))
    })?;
    let a = version_row(&state, &caller.project, &name, q.from).await?;
    let b = version_row(&state, &caller.project, &name, q.to).await?;
    let (sa, sb) = (settings_of(&a)?, settings_of(&b)?);
    let changes = judge_toml::changes(&a.kind, &sa, &b.kind, &sb);
    let table = |kind: &str, s: &Value| {
        judge_toml::table_text(&name, kind, s).map_err(|e| {
            ApiError::new(Code::Internal, format!("a stored version reads badly: {e}"))
        })
    };
    let text = judge_toml::unified_diff(
        &table(&a.kind, &sa)?,
        &table(&b.kind, &sb)?,
        &format!("{name} version {}", a.version),
        &format!("{name} version {}", b.version),
    );
    Ok(Json(json!({
        "name": name,
        "from": a.version,
        "to": b.version,
        "changes": changes,
        "text": text,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    version: i64,
}

/// `POST /api/v1/judges/{name}/rollback`: a new version equal to an earlier one.
pub async fn rollback(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(Permission::Admin)?;
    check_name(&name)?;
    let b: RollbackBody = json_body(&state, &headers, body, "{\"version\": integer}").await?;
    let row = version_row(&state, &caller.project, &name, b.version).await?;
    let spec = judge_toml::spec(&name, &row.kind, &settings_of(&row)?);
    append(
        &state,
        &caller,
        &spec,
        format!("rollback to {}", row.version),
    )
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TryBody {
    kind: String,
    settings: Value,
    trace_ids: Vec<String>,
    compare: Option<CompareTo>,
    /// The name the tried judge's feedback carries (`draft` by default).
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CompareTo {
    name: String,
    version: i64,
}

/// What model calls cost on one trace or over a try.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Usage {
    calls: u64,
    cached_calls: u64,
    input_tokens: u64,
    output_tokens: u64,
    /// `None` once a model without a price used tokens.
    cost_usd: Option<f64>,
}

impl Usage {
    fn of(feedback: &[Feedback], prices: &PriceTable) -> Usage {
        let mut u = Usage {
            cost_usd: Some(0.0),
            ..Usage::default()
        };
        for m in feedback.iter().filter_map(|f| f.usage.as_ref()) {
            u.calls += u64::from(m.calls);
            u.cached_calls += u64::from(m.cached_calls);
            u.input_tokens += m.input_tokens;
            u.output_tokens += m.output_tokens;
            let cost = if m.input_tokens + m.output_tokens == 0 {
                Some(0.0)
            } else {
                prices.usd(&m.model, m.input_tokens, m.output_tokens)
            };
            u.cost_usd = u.cost_usd.zip(cost).map(|(a, b)| a + b);
        }
        u
    }

    fn add(&mut self, o: &Usage) {
        self.calls += o.calls;
        self.cached_calls += o.cached_calls;
        self.input_tokens += o.input_tokens;
        self.output_tokens += o.output_tokens;
        self.cost_usd = self.cost_usd.zip(o.cost_usd).map(|(a, b)| a + b);
    }

    fn json(&self) -> Value {
        json!({
            "calls": self.calls,
            "cached_calls": self.cached_calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": self.cost_usd,
        })
    }
}

pub(crate) type Loaded = Arc<(Trace, Option<Pending>)>;

/// Runs `judge` on every trace through `Judge::judge` on the blocking pool, as many at once
/// as the judge takes (`max_in_flight`, at least one); feedback in trace order.
pub(crate) async fn run_on(
    judge: Arc<dyn Judge>,
    traces: &[Loaded],
) -> Result<Vec<Vec<Feedback>>, ApiError> {
    let permits = Arc::new(tokio::sync::Semaphore::new(judge.max_in_flight().max(1)));
    let mut tasks = Vec::with_capacity(traces.len());
    for t in traces {
        let (judge, t, permits) = (judge.clone(), t.clone(), permits.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await;
            tokio::task::spawn_blocking(move || {
                judge.judge(&JudgeInput {
                    trace: &t.0,
                    pending: t.1.as_ref(),
                })
            })
            .await
        }));
    }
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        let feedback = t.await.ok().and_then(Result::ok).ok_or_else(|| {
            ApiError::new(Code::Internal, "a judge failed to run; see the server log")
        })?;
        out.push(feedback);
    }
    Ok(out)
}

/// Gives a model judge the server's response cache of `project`, as the project's judges
/// have it.
pub(crate) fn with_cache(
    mut judge: Box<dyn Judge>,
    state: &AppState,
    project: &str,
) -> Result<Arc<dyn Judge>, ApiError> {
    let cache: Arc<dyn tribunal_llm::ResponseCache> =
        Arc::new(tribunal_store::StoreCache::for_project(
            state.store.clone(),
            tokio::runtime::Handle::current(),
            project,
        ));
    judge.set_response_cache(cache).map_err(invalid_judge)?;
    Ok(Arc::from(judge))
}

/// `POST /api/v1/judges/try`: runs a definition (and, to compare, a stored version) on
/// stored traces of the caller's project and answers the feedback, tokens and cost.
pub async fn try_judge(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Annotate)?;
    let b: TryBody = json_body(
        &state,
        &headers,
        body,
        "{\"kind\": string, \"settings\": object, \"trace_ids\": [string], \"compare\"?: {\"name\": string, \"version\": integer}, \"name\"?: string}",
    )
    .await?;
    let name = b.name.unwrap_or_else(|| "draft".to_owned());
    check_name(&name)?;
    if b.trace_ids.is_empty() || b.trace_ids.len() > MAX_TRY_TRACES {
        return Err(ApiError::request(format!(
            "trace_ids: expected 1 to {MAX_TRY_TRACES} trace ids, found {}",
            b.trace_ids.len()
        )));
    }
    check_admin_settings(&caller, &b.settings)?;
    let (spec, judge) = build_as(&name, &b.kind, &b.settings, trust_for(&caller)).await?;
    let judge = with_cache(judge, &state, &caller.project)?;
    let compare = match &b.compare {
        None => None,
        Some(c) => {
            check_name(&c.name).map_err(|e| ApiError::request(format!("compare.{}", e.message)))?;
            let row = version_row(&state, &caller.project, &c.name, c.version).await?;
            let (_, j) = build_as(&c.name, &row.kind, &settings_of(&row)?, trust_for(&caller))
                .await
                .map_err(|e| {
                    invalid_judge(format!(
                        "compare: {} version {} no longer builds: {}",
                        c.name, c.version, e.message
                    ))
                })?;
            Some(with_cache(j, &state, &caller.project)?)
        }
    };
    let mut traces: Vec<Loaded> = Vec::with_capacity(b.trace_ids.len());
    let mut unknown = Vec::new();
    for id in &b.trace_ids {
        match state.store.get_trace(&caller.project, id).await? {
            None => unknown.push(id.as_str()),
            Some(row) => match api::stored_trace(&state.store, &row).await? {
                Some(t) => traces.push(Arc::new(t)),
                None => {
                    return Err(ApiError::new(
                        Code::InvalidTrace,
                        format!(
                            "trace_ids: what is stored of trace {id:?} no longer reads as a trace"
                        ),
                    ))
                }
            },
        }
    }
    if !unknown.is_empty() {
        return Err(ApiError::not_found(format!(
            "trace_ids: no trace {} in this project",
            unknown
                .iter()
                .map(|i| format!("{i:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let feedback = run_on(judge, &traces).await?;
    let compared = match compare {
        Some(j) => Some(run_on(j, &traces).await?),
        None => None,
    };
    let prices = PriceTable::builtin();
    let mut totals = Usage {
        cost_usd: Some(0.0),
        ..Usage::default()
    };
    let mut compare_totals = totals;
    // Traces a judge gave no answer for: the usage alone would hide them.
    let failed = |f: &[Feedback]| u64::from(f.iter().any(|f| f.error.is_some()));
    let (mut errors, mut compare_errors) = (0u64, 0u64);
    let mut results = Vec::with_capacity(traces.len());
    for (i, id) in b.trace_ids.iter().enumerate() {
        let usage = Usage::of(&feedback[i], &prices);
        totals.add(&usage);
        errors += failed(&feedback[i]);
        let compare = compared.as_ref().map(|c| {
            let u = Usage::of(&c[i], &prices);
            compare_totals.add(&u);
            compare_errors += failed(&c[i]);
            json!({"feedback": c[i], "usage": u.json()})
        });
        results.push(json!({
            "trace_id": id,
            "feedback": feedback[i],
            "usage": usage.json(),
            "compare": compare,
        }));
    }
    let with_errors = |mut t: Value, errors: u64| {
        t["traces"] = json!(results.len());
        t["errors"] = json!(errors);
        t
    };
    let totals = with_errors(totals.json(), errors);
    let compare_totals = compared
        .as_ref()
        .map(|_| with_errors(compare_totals.json(), compare_errors));
    Ok(Json(json!({
        "results": results,
        "totals": totals,
        "compare_totals": compare_totals,
        "version_hash": spec.version(),
    })))
}

/// The latest version of a stored `llm` judge whose output can be compared with labels.
async fn alignable(
    state: &AppState,
    project: &str,
    name: &str,
) -> Result<JudgeVersionRow, ApiError> {
    check_name(name)?;
    let Some(row) = state.store.judge_versions(project, name).await?.pop() else {
        return Err(ApiError::not_found(format!(
            "no stored judge {name:?} in this project"
        )));
    };
    if row.kind != "llm" {
        return Err(ApiError::request(format!(
            "judge {name} is of kind {}; only llm judges can be aligned or calibrated",
            row.kind
        )));
    }
    let settings =
        crate::tuning::settings_of(&row).map_err(|e| ApiError::request(e.to_string()))?;
    crate::tuning::label_type(name, &settings).map_err(|e| ApiError::request(e.to_string()))?;
    Ok(row)
}

/// `GET /api/v1/judges/{name}/align`: how many settled labels the store holds for the judge
/// (from the queues whose schema is tied to it), to align with.
pub async fn align_status(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let row = alignable(&state, &caller.project, &name).await?;
    let (labels, found, reason) =
        match crate::tuning::label_count(&state.store, &caller.project, &name).await {
            Ok((n, found)) => (n, found, None),
            Err(e) => (0, Value::Null, Some(e.to_string())),
        };
    Ok(Json(json!({
        "name": name,
        "latest_version": row.version,
        "labels": labels,
        "found": found,
        "reason": reason,
        "optimizers": tribunal_align::OPTIMIZERS.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlignBody {
    optimizer: Option<String>,
    holdout: Option<f64>,
    seed: Option<u64>,
    reflection_model: Option<String>,
    embeddings: Option<String>,
}

/// `POST /api/v1/judges/{name}/align`: aligns the judge's latest version with the store's
/// labels and stores the result as a new version with its lineage; answers the before and
/// after figures on the held-out labels.
pub async fn align(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(Permission::Admin)?;
    let b: AlignBody = json_body(
        &state,
        &headers,
        body,
        "{\"optimizer\"?: string, \"holdout\"?: number, \"seed\"?: integer, \"reflection_model\"?: string, \"embeddings\"?: string}",
    )
    .await?;
    let row = alignable(&state, &caller.project, &name).await?;
    let optimizer = b.optimizer.unwrap_or_else(|| "memory".into());
    let settings =
        crate::tuning::settings_of(&row).map_err(|e| ApiError::request(e.to_string()))?;
    let ty = crate::tuning::label_type(&name, &settings)
        .map_err(|e| ApiError::request(e.to_string()))?;
    crate::tuning::check_optimizer(&optimizer, &ty).map_err(ApiError::request)?;
    let holdout = b.holdout.unwrap_or(0.3);
    if !(holdout > 0.0 && holdout < 1.0) {
        return Err(ApiError::request(format!(
            "holdout: expected a share between 0 and 1, found {holdout}"
        )));
    }
    for (field, uri) in [
        ("reflection_model", &b.reflection_model),
        ("embeddings", &b.embeddings),
    ] {
        if let Some(u) = uri {
            tribunal_llm::ModelUri::parse(u)
                .map_err(|e| ApiError::request(format!("{field}: {e}")))?;
        }
    }
    if let Err(e) = crate::tuning::label_count(&state.store, &caller.project, &name).await {
        return Err(ApiError::new(Code::NotEnoughLabels, e.to_string()));
    }
    let run = crate::tuning::align_judge(
        &state.store,
        crate::tuning::AlignOptions {
            project: caller.project.clone(),
            name: name.clone(),
            optimizer,
            labels: None,
            holdout,
            seed: b.seed.unwrap_or(0),
            reflection_model: b.reflection_model,
            embeddings: b.embeddings,
            created_by: caller.token_id.clone(),
        },
    )
    .await;
    match run {
        Ok(Ok(r)) => Ok((
            if r.unchanged {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            },
            Json(
                serde_json::to_value(&r)
                    .map_err(|e| ApiError::new(Code::Internal, e.to_string()))?,
            ),
        )),
        Ok(Err(refusal)) => Err(ApiError::new(Code::NotEnoughLabels, refusal.0)),
        Err(e) => Err(ApiError::new(Code::AlignmentFailed, format!("{e:#}"))),
    }
}
