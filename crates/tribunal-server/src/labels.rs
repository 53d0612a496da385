//! Labeling: label schemas, queues and the people working in them, over the REST API. The
//! rules (overlap, locks, skips, gold items, blind mode, review) are `tribunal-labels`'s;
//! this module keeps each queue's state in memory, read again from the store's record of
//! what people did when a queue is first used, and writes every label, skip and final label
//! to the store before answering. A person is a token: one token per person.

use crate::auth::{Caller, Permission};
use crate::error::{ApiError, Code};
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use tribunal_labels::agreement;
use tribunal_labels::queue::{self, Next, Queue, QueueError, Settings};
use tribunal_labels::schema::Schema;
use tribunal_store::{clock, LabelEvent};

/// Queues in use, by (project, queue id), with their schema.
#[derive(Default)]
pub struct Queues(pub Mutex<HashMap<(String, String), (Queue, Schema)>>);

type Body<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

fn body<T>(b: Body<T>, expected: &str) -> Result<T, ApiError> {
    b.map(|Json(x)| x)
        .map_err(|e| ApiError::request(format!("{e}; expected {expected}")))
}

/// `POST /api/v1/label-schemas` (admin).
pub async fn create_schema(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    b: Body<Schema>,
) -> Result<Response, ApiError> {
    caller.require(Permission::Admin)?;
    let schema = body(b, "a label schema {name, type, …}")?;
    schema
        .check()
        .map_err(|e| ApiError::request(e.to_string()))?;
    let text = serde_json::to_string(&schema).map_err(|e| ApiError::request(e.to_string()))?;
    if !state
        .store
        .insert_label_schema(&caller.project, &schema.name, &text, &clock::now_rfc3339())
        .await?
    {
        return Err(ApiError::new(
            Code::Conflict,
            format!(
                "the project has a label schema named {:?} already",
                schema.name
            ),
        ));
    }
    Ok((StatusCode::CREATED, Json(json!(schema))).into_response())
}

/// `GET /api/v1/label-schemas`.
pub async fn list_schemas(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let schemas: Vec<Value> = state
        .store
        .label_schemas(&caller.project)
        .await?
        .into_iter()
        .filter_map(|(_, b)| serde_json::from_str(&b).ok())
        .collect();
    Ok(Json(json!({ "schemas": schemas })))
}

#[derive(Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewQueue {
    id: String,
    schema: String,
    items: Vec<String>,
    #[serde(default)]
    gold: BTreeMap<String, Value>,
    #[serde(default = "one")]
    overlap: usize,
    #[serde(default = "ten_minutes")]
    lock_s: u64,
    #[serde(default)]
    gold_rate: f64,
    #[serde(default)]
    blind: bool,
    /// Token ids of the people who may work on it (all annotators when absent).
    #[serde(default)]
    people: Option<Vec<String>>,
}

fn one() -> usize {
    1
}
fn ten_minutes() -> u64 {
    600
}

/// `POST /api/v1/queues` (admin).
pub async fn create_queue(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    b: Body<NewQueue>,
) -> Result<Response, ApiError> {
    caller.require(Permission::Admin)?;
    let q = body(
        b,
        "{id, schema, items, overlap?, lock_s?, gold?, gold_rate?, blind?, people?}",
    )?;
    if q.id.is_empty()
        || !q
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
    {
        return Err(ApiError::request("id: letters, digits, _ or -"));
    }
    if q.items.is_empty() {
        return Err(ApiError::request("items: at least one item"));
    }
    if q.overlap == 0 || q.overlap > 50 {
        return Err(ApiError::request("overlap: 1..50 people per item"));
    }
    if !(0.0..=0.5).contains(&q.gold_rate) || (q.gold_rate > 0.0 && q.gold.is_empty()) {
        return Err(ApiError::request(
            "gold_rate: 0 to 0.5, with gold items when above 0",
        ));
    }
    let schema = schema_of(&state, &caller.project, &q.schema).await?;
    for (item, answer) in &q.gold {
        schema
            .value(answer)
            .map_err(|e| ApiError::request(format!("gold.{item}: {e}")))?;
    }
    let text = serde_json::to_string(&q).map_err(|e| ApiError::request(e.to_string()))?;
    if !state
        .store
        .insert_label_queue(
            &caller.project,
            &q.id,
            &text,
            &clock::now_rfc3339(),
            &caller.token_id,
        )
        .await?
    {
        return Err(ApiError::new(
            Code::Conflict,
            format!("the project has a queue {:?} already", q.id),
        ));
    }
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": q.id, "items": q.items.len()})),
    )
        .into_response())
}

async fn schema_of(state: &AppState, project: &str, name: &str) -> Result<Schema, ApiError> {
    state
        .store
        .label_schemas(project)
        .await?
        .into_iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, b)| serde_json::from_str(&b).ok())
        .ok_or_else(|| ApiError::not_found(format!("no label schema {name:?} in this project")))
}

/// `GET /api/v1/queues`: the queues the caller may work on (all, for reviewers and admins).
pub async fn list_queues(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let everyone = crate::auth::allows(&caller.role, Permission::Review);
    let mut out = Vec::new();
    for (id, b) in state.store.label_queues(&caller.project).await? {
        let Ok(q) = serde_json::from_str::<NewQueue>(&b) else {
            continue;
        };
        let mine = q
            .people
            .as_ref()
            .is_none_or(|p| p.contains(&caller.token_id));
        if everyone || mine {
            out.push(
                json!({"id": id, "schema": q.schema, "items": q.items.len(), "overlap": q.overlap,
                "blind": q.blind, "gold_rate": q.gold_rate}),
            );
        }
    }
    Ok(Json(json!({ "queues": out })))
}

/// Runs `f` on the queue, reading it from the store on first use.
async fn with_queue<T>(
    state: &AppState,
    project: &str,
    id: &str,
    f: impl FnOnce(&mut Queue, &Schema) -> T,
) -> Result<T, ApiError> {
    let key = (project.to_owned(), id.to_owned());
    {
        let mut all = state
            .label_queues
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some((q, s)) = all.get_mut(&key) {
            return Ok(f(q, s));
        }
    }
    let body = state
        .store
        .label_queues(project)
        .await?
        .into_iter()
        .find(|(i, _)| i == id)
        .map(|(_, b)| b)
        .ok_or_else(|| ApiError::not_found(format!("no queue {id:?} in this project")))?;
    let def: NewQueue = serde_json::from_str(&body)
        .map_err(|e| ApiError::new(Code::Internal, format!("stored queue {id}: {e}")))?;
    let schema = schema_of(state, project, &def.schema).await?;
    let mut q = Queue::new(
        Settings {
            overlap: def.overlap,
            lock_ms: (def.lock_s * 1000) as i64,
            gold_rate: def.gold_rate,
            blind: def.blind,
            people: def.people,
        },
        def.items,
        def.gold,
    );
    for e in state.store.label_events(project, id).await? {
        let value = e
            .value
            .as_deref()
            .and_then(|v| serde_json::from_str(v).ok());
        match (e.kind.as_str(), value) {
            ("label", Some(v)) => q.restore_label(&e.person, &e.item, v),
            ("skip", _) => q.restore_skip(&e.person, &e.item),
            ("final", Some(v)) => q.restore_final(&e.item, v, &e.person),
            _ => {}
        }
    }
    let mut all = state
        .label_queues
        .0
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let (q, s) = all.entry(key).or_insert((q, schema));
    Ok(f(q, s))
}

/// Writes what `caller` did to `item` of queue `id` to the store.
#[allow(clippy::too_many_arguments)]
async fn record(
    state: &AppState,
    caller: &Caller,
    id: &str,
    item: &str,
    kind: &str,
    value: Option<String>,
    comment: Option<String>,
    now: i64,
) -> Result<(), ApiError> {
    let event = LabelEvent {
        queue_id: id.to_owned(),
        item: item.to_owned(),
        person: caller.token_id.clone(),
        kind: kind.to_owned(),
        value,
        comment,
        at: clock::rfc3339_from_ms(now),
        at_ms: now,
    };
    state
        .store
        .insert_label_event(&caller.project, &event)
        .await?;
    Ok(())
}

fn refused(e: QueueError) -> ApiError {
    match e {
        QueueError::NotAllowed(_) => ApiError::new(Code::Forbidden, e.to_string()),
        QueueError::NoSuchItem(_) => ApiError::not_found(e.to_string()),
        _ => ApiError::new(Code::Conflict, e.to_string()),
    }
}

/// `POST /api/v1/queues/{id}/next` (annotators): the caller's next item, locked for them,
/// with its trace.
pub async fn next(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Annotate)?;
    let now = clock::now_ms();
    let (next, schema) = with_queue(&state, &caller.project, &id, |q, s| {
        (q.next(&caller.token_id, now), s.clone())
    })
    .await?;
    match next.map_err(refused)? {
        Next::Done => Ok(Json(json!({"done": true}))),
        Next::Wait { until_ms } => Ok(Json(json!({"done": false, "wait_until_ms": until_ms}))),
        Next::Item {
            item,
            gold,
            until_ms,
        } => {
            let trace = match state.store.get_trace(&caller.project, &item).await? {
                Some(row) => match row.source.as_str() {
                    "otlp" => crate::scorer::assemble(&state.store, &caller.project, &item)
                        .await?
                        .map(|t| json!(t))
                        .unwrap_or(Value::Null),
                    _ => row
                        .body
                        .as_deref()
                        .and_then(crate::gate::stored_request)
                        .map(|(t, _)| json!(t))
                        .unwrap_or(Value::Null),
                },
                None => Value::Null,
            };
            // A gold item is not marked as one: people label it like any other.
            let _ = gold;
            Ok(Json(
                json!({"done": false, "item": item, "until_ms": until_ms, "schema": schema, "trace": trace}),
            ))
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelBody {
    value: Value,
    #[serde(default)]
    comment: Option<String>,
}

/// `POST /api/v1/queues/{id}/items/{item}/label` (annotators).
pub async fn label(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path((id, item)): Path<(String, String)>,
    b: Body<LabelBody>,
) -> Result<Response, ApiError> {
    caller.require(Permission::Annotate)?;
    let b = body(b, "{value, comment?}")?;
    let now = clock::now_ms();
    let value = with_queue(&state, &caller.project, &id, |_, s| s.value(&b.value))
        .await?
        .map_err(|e| ApiError::request(e.to_string()))?;
    with_queue(&state, &caller.project, &id, |q, _| {
        q.submit(&caller.token_id, &item, value.clone(), now)
    })
    .await?
    .map_err(refused)?;
    // A label the store did not take is taken back: nothing is answered that is not kept.
    let label = Some(value.to_string());
    if let Err(e) = record(&state, &caller, &id, &item, "label", label, b.comment, now).await {
        with_queue(&state, &caller.project, &id, |q, _| {
            q.withdraw(&caller.token_id, &item)
        })
        .await?;
        return Err(e);
    }
    Ok((
        StatusCode::CREATED,
        Json(json!({"item": item, "value": value})),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkipBody {
    reason: String,
}

/// `POST /api/v1/queues/{id}/items/{item}/skip` (annotators): passes on the item, with a
/// reason; it goes to someone else.
pub async fn skip(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path((id, item)): Path<(String, String)>,
    b: Body<SkipBody>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Annotate)?;
    let b = body(b, "{reason}")?;
    if b.reason.trim().is_empty() {
        return Err(ApiError::request("reason: say why the item is skipped"));
    }
    with_queue(&state, &caller.project, &id, |q, _| {
        q.skip(&caller.token_id, &item)
    })
    .await?
    .map_err(refused)?;
    record(
        &state,
        &caller,
        &id,
        &item,
        "skip",
        Some(b.reason),
        None,
        clock::now_ms(),
    )
    .await?;
    Ok(Json(json!({"item": item, "skipped": true})))
}

/// `GET /api/v1/queues/{id}/labels`: in a blind queue, an annotator gets only their own
/// labels; reviewers and admins get every label and the final ones.
pub async fn labels(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let all = crate::auth::allows(&caller.role, Permission::Review);
    let out = with_queue(&state, &caller.project, &id, |q, _| {
        let items: Vec<String> = q.all_labels().map(|(i, _)| i.to_owned()).collect();
        items
            .iter()
            .map(|item| {
                let labels: Vec<Value> = q
                    .labels_for(&caller.token_id, item, all)
                    .into_iter()
                    .map(|(who, v)| json!({"person": who, "value": v}))
                    .collect();
                let fin = if all || !q.settings.blind {
                    q.final_label(item)
                        .map(|(v, by)| json!({"value": v, "by": by}))
                } else {
                    None
                };
                json!({"item": item, "labels": labels, "final": fin})
            })
            .collect::<Vec<_>>()
    })
    .await?;
    Ok(Json(json!({ "items": out })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewQuery {
    spread: Option<f64>,
}

/// `GET /api/v1/queues/{id}/review?spread=1` (reviewers): items whose labels disagree
/// (categorical labels not unanimous, numbers further apart than `spread`) and that no one
/// has adjudicated.
pub async fn review(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    q: Result<Query<ReviewQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Review)?;
    let Query(rq) = q.map_err(|e| ApiError::request(format!("{e}; the filter is spread")))?;
    let spread = rq.spread.unwrap_or(0.0);
    let out = with_queue(&state, &caller.project, &id, |q, _| {
        q.review(|l| queue::disagree(l, spread))
            .into_iter()
            .map(|item| {
                let labels: Vec<Value> = q
                    .labels_for("", item, true)
                    .into_iter()
                    .map(|(who, v)| json!({"person": who, "value": v}))
                    .collect();
                json!({"item": item, "labels": labels})
            })
            .collect::<Vec<_>>()
    })
    .await?;
    Ok(Json(json!({ "items": out })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdjudicateBody {
    value: Value,
    #[serde(default)]
    note: Option<String>,
}

/// `POST /api/v1/queues/{id}/items/{item}/adjudicate` (reviewers): the final label; the
/// item never comes back.
pub async fn adjudicate(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path((id, item)): Path<(String, String)>,
    b: Body<AdjudicateBody>,
) -> Result<Response, ApiError> {
    caller.require(Permission::Review)?;
    let b = body(b, "{value, note?}")?;
    let value = with_queue(&state, &caller.project, &id, |_, s| s.value(&b.value))
        .await?
        .map_err(|e| ApiError::request(e.to_string()))?;
    with_queue(&state, &caller.project, &id, |q, _| {
        q.adjudicate(&item, value.clone(), &caller.token_id)
    })
    .await?
    .map_err(refused)?;
    let final_value = Some(value.to_string());
    record(
        &state,
        &caller,
        &id,
        &item,
        "final",
        final_value,
        b.note,
        clock::now_ms(),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"item": item, "final": value, "by": caller.token_id})),
    )
        .into_response())
}

/// `GET /api/v1/queues/{id}/agreement` (reviewers): agreement over the items with all their
/// labels (Krippendorff's α at the schema's level, Fleiss' κ for categorical labels with full
/// overlap, percent agreement), labels per person and gold accuracy.
pub async fn agreement(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Review)?;
    let out = with_queue(&state, &caller.project, &id, |q, s| {
        let level = match s.kind {
            tribunal_labels::schema::Kind::Numeric { .. } => agreement::Level::Interval,
            _ => agreement::Level::Nominal,
        };
        let as_label = |v: &Value| match v {
            Value::Number(n) => agreement::Label::Number(n.as_f64().unwrap_or(0.0)),
            Value::String(s) => agreement::Label::Category(s.clone()),
            other => agreement::Label::Category(other.to_string()),
        };
        let complete: Vec<(&str, &[(String, Value)])> = q
            .all_labels()
            .filter(|(_, l)| l.len() >= q.settings.overlap && l.len() >= 2)
            .collect();
        let mut people: Vec<&str> = complete.iter().flat_map(|(_, l)| l.iter().map(|(p, _)| p.as_str())).collect();
        people.sort_unstable();
        people.dedup();
        let data: Vec<Vec<Option<agreement::Label>>> = people
            .iter()
            .map(|p| {
                complete
                    .iter()
                    .map(|(_, l)| l.iter().find(|(who, _)| who == p).map(|(_, v)| as_label(v)))
                    .collect()
            })
            .collect();
        let figure = |r: Result<f64, agreement::NotComputable>| match r {
            Ok(v) => json!(v),
            Err(e) => json!({"not_computable": e.0}),
        };
        let alpha = figure(agreement::krippendorff_alpha(&data, level));
        let per_item: Vec<Vec<agreement::Label>> = complete
            .iter()
            .map(|(_, l)| l.iter().map(|(_, v)| as_label(v)).collect())
            .collect();
        let fleiss = if level == agreement::Level::Nominal {
            figure(agreement::fleiss_kappa(&agreement::category_counts(&per_item)))
        } else {
            json!({"not_computable": "Fleiss' kappa is for categorical labels"})
        };
        let unanimous = complete.iter().filter(|(_, l)| !queue::disagree(l, 0.0)).count();
        let per_person: Vec<Value> = people
            .iter()
            .map(|p| {
                let n = complete.iter().filter(|(_, l)| l.iter().any(|(w, _)| w == p)).count();
                let gold = q.gold_accuracy(p).map(|(right, of)| json!({"right": right, "of": of}));
                json!({"person": p, "labels": n, "gold": gold})
            })
            .collect();
        json!({
            "items_complete": complete.len(),
            "percent_unanimous": if complete.is_empty() { Value::Null } else { json!(unanimous as f64 / complete.len() as f64) },
            "krippendorff_alpha": alpha,
            "fleiss_kappa": fleiss,
            "people": per_person,
        })
    })
    .await?;
    Ok(Json(out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    format: Option<String>,
}

/// The final label of an item and how it was decided: adjudicated by a reviewer, or the
/// unanimous label of everyone who labelled it once all labels are in.
fn final_of(q: &Queue, item: &str, labels: &[(String, Value)]) -> Option<Value> {
    if let Some((v, by)) = q.final_label(item) {
        return Some(json!({"value": v, "by": by, "how": "adjudicated"}));
    }
    (labels.len() >= q.settings.overlap && !labels.is_empty() && !queue::disagree(labels, 0.0))
        .then(|| json!({"value": labels[0].1, "by": labels.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(), "how": "unanimous"}))
}

/// `GET /api/v1/queues/{id}/export?format=jsonl|mlflow` (reviewers): one JSON line per
/// item (`jsonl`: its labels and final label) or per label (`mlflow`: MLflow assessments
/// with a HUMAN source, the schema's name as the assessment name; final labels carry
/// `metadata.final`).
pub async fn export(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    q: Result<Query<ExportQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Permission::Review)?;
    let Query(eq) = q.map_err(|e| ApiError::request(format!("{e}; the parameter is format")))?;
    let format = eq.format.unwrap_or_else(|| "jsonl".into());
    if !matches!(format.as_str(), "jsonl" | "mlflow") {
        return Err(ApiError::request(format!(
            "format: expected jsonl or mlflow, found {format:?}"
        )));
    }
    let events = state.store.label_events(&caller.project, &id).await?;
    let lines = with_queue(&state, &caller.project, &id, |q, schema| {
        let mut out = Vec::new();
        for (item, labels) in q.all_labels() {
            let fin = final_of(q, item, labels);
            if format == "jsonl" {
                let labels: Vec<Value> = labels
                    .iter()
                    .map(|(p, v)| json!({"person": p, "value": v}))
                    .collect();
                out.push(json!({"queue": id, "schema": schema.name, "item": item, "labels": labels, "final": fin}));
                continue;
            }
            let comment = |person: &str, kind: &str| {
                events
                    .iter()
                    .find(|e| e.item == item && e.person == person && e.kind == kind)
                    .and_then(|e| e.comment.clone())
            };
            let time = |person: &str, kind: &str| {
                events
                    .iter()
                    .find(|e| e.item == item && e.person == person && e.kind == kind)
                    .map_or(0, |e| e.at_ms)
            };
            for (person, value) in labels {
                out.push(json!({
                    "assessment_name": schema.name,
                    "trace_id": item,
                    "source": {"source_type": "HUMAN", "source_id": person},
                    "create_time_ms": time(person, "label"),
                    "feedback": {"value": value},
                    "rationale": comment(person, "label"),
                    "metadata": {"queue": id},
                }));
            }
            if let Some((value, by)) = q.final_label(item) {
                out.push(json!({
                    "assessment_name": schema.name,
                    "trace_id": item,
                    "source": {"source_type": "HUMAN", "source_id": by},
                    "create_time_ms": time(by, "final"),
                    "feedback": {"value": value},
                    "rationale": comment(by, "final"),
                    "metadata": {"queue": id, "final": "adjudicated"},
                }));
            }
        }
        out
    })
    .await?;
    let mut text = String::new();
    for l in lines {
        text.push_str(&l.to_string());
        text.push('\n');
    }
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
        text,
    )
        .into_response())
}
