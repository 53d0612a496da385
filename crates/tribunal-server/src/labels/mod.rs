//! Labeling: label schemas, queues and the people working in them, over the REST API. The
//! rules (overlap, locks, skips, gold items, blind mode) are `tribunal-labels`'s; what a
//! queue's items are and where they come from is [`items`]; each server's copy of a queue
//! and how it stays the same as every other server's is [`held`]; the agreement and quality
//! figures are `tribunal_labels::figures`; labels in and out of other tools are [`transfer`]. A person is a
//! token: one token per person.

pub mod held;
pub mod items;
pub mod transfer;

use crate::auth::{Caller, Permission};
use crate::error::{ApiError, Code};
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use held::{change, def_of, read, schema_of, Did, QueueDef};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use tribunal_labels::figures;
use tribunal_labels::queue::{Next, QueueError};
use tribunal_labels::schema::Schema;
use tribunal_labels::state::final_record;
use tribunal_store::clock;

pub use held::Queues;

/// The JSON body of a labeling route, read bounded and timed like every body
/// ([`crate::body::JsonBody`]).
type Body = crate::body::JsonBody;

fn body<T: serde::de::DeserializeOwned>(b: Body, expected: &str) -> Result<T, ApiError> {
    b.to(expected)
}

/// `POST /api/v1/label-schemas` (admin).
pub async fn create_schema(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    b: Body,
) -> Result<Response, ApiError> {
    caller.require(Permission::Admin)?;
    let expected = "a label schema {name, type, …}";
    let raw: Value = body(b, expected)?;
    foreign_schema_fields(&raw)?;
    let schema: Schema = crate::body::shaped(raw, expected)?;
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

/// Refuses a field that no label schema of the body's type has (`options` on a `text`
/// schema), rather than dropping it unread.
fn foreign_schema_fields(raw: &Value) -> Result<(), ApiError> {
    let (Some(o), Some(kind)) = (raw.as_object(), raw.get("type").and_then(Value::as_str)) else {
        return Ok(());
    };
    let own: &[&str] = match kind {
        "categorical" => &["options", "multiple", "ordered"],
        "numeric" => &["min", "max"],
        "pass_fail" | "text" | "pairwise" => &[],
        // An unknown type is reported by the schema's reader.
        _ => return Ok(()),
    };
    let common = ["name", "type", "instructions", "comment", "judge"];
    match o
        .keys()
        .find(|k| !common.contains(&k.as_str()) && !own.contains(&k.as_str()))
    {
        Some(k) => Err(ApiError::request(format!(
            "{k}: not a field of a {kind} label schema (its fields: {})",
            common
                .iter()
                .chain(own)
                .copied()
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        None => Ok(()),
    }
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

/// A queue as asked for: its items given (a list, e.g. read from a file) or taken `from` a
/// trace filter, an eval run or a judge's low-confidence results.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewQueue {
    id: String,
    schema: String,
    #[serde(default)]
    items: Option<Vec<Value>>,
    #[serde(default)]
    from: Option<items::Source>,
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
    #[serde(default)]
    spread: f64,
    #[serde(default)]
    review_against_judge: bool,
    /// Add the traces whose answer from this judge was not trusted, as they are judged.
    #[serde(default)]
    untrusted_from: Option<String>,
}

/// The longest an item stays locked for the person given it: 7 days.
const MAX_LOCK_S: u64 = 7 * 86_400;

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
    b: Body,
) -> Result<Response, ApiError> {
    caller.require(Permission::Admin)?;
    let q: NewQueue = body(
        b,
        "{id, schema, items | from, overlap?, lock_s?, gold?, gold_rate?, blind?, people?, spread?, review_against_judge?}",
    )?;
    if q.id.is_empty()
        || !q
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
    {
        return Err(ApiError::request("id: letters, digits, _ or -"));
    }
    if !(1..=MAX_LOCK_S).contains(&q.lock_s) {
        return Err(ApiError::request(format!(
            "lock_s: expected 1 to {MAX_LOCK_S} seconds (7 days), found {}",
            q.lock_s
        )));
    }
    if q.overlap == 0 || q.overlap > 50 {
        return Err(ApiError::request("overlap: 1..50 people per item"));
    }
    if !(0.0..=0.5).contains(&q.gold_rate) || (q.gold_rate > 0.0 && q.gold.is_empty()) {
        return Err(ApiError::request(
            "gold_rate: 0 to 0.5, with gold items when above 0",
        ));
    }
    if !(q.spread.is_finite() && q.spread >= 0.0) {
        return Err(ApiError::request("spread: a number of 0 or more"));
    }
    if let Some(people) = &q.people {
        // Each person named must be a token of this project that may label: a queue no one
        // can work on would wait for ever.
        let tokens = state.store.list_tokens().await?;
        for (i, id) in people.iter().enumerate() {
            let fits = tokens.iter().any(|t| {
                t.id == *id
                    && t.project == caller.project
                    && t.revoked_at.is_none()
                    && crate::auth::allows(&t.role, Permission::Annotate)
            });
            if !fits {
                return Err(ApiError::request(format!(
                    "people[{i}]: {id:?} is not a token of this project that may label (an annotator's, a reviewer's or an admin's)"
                )));
            }
        }
    }
    let schema = schema_of(&state, &caller.project, &q.schema).await?;
    for (item, answer) in &q.gold {
        schema
            .value(answer)
            .map_err(|e| ApiError::request(format!("gold.{item}: {e}")))?;
    }
    if q.review_against_judge && schema.judge.is_none() {
        return Err(ApiError::request(format!(
            "review_against_judge: the schema {:?} is not tied to a judge",
            schema.name
        )));
    }
    let mut list = match (&q.items, &q.from) {
        (Some(list), None) => {
            let list = items::read_items(list).map_err(ApiError::request)?;
            items::check_runs(&caller.project, &list)?;
            list
        }
        (None, Some(source)) => items::fill(&state.store, &caller.project, source).await?,
        (None, None) if q.untrusted_from.is_some() => Vec::new(),
        (None, None) => {
            return Err(ApiError::request(
                "items: expected the items, where to take them from (from), or a judge whose untrusted answers fill the queue (untrusted_from)",
            ))
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::request(
                "items or from: give the items, or where to take them from, not both",
            ))
        }
    };
    if list.is_empty() && q.untrusted_from.is_none() {
        return Err(ApiError::request(
            "items: at least one item (the source gave none)",
        ));
    }
    // A gold item is a check given among the items, never an item itself: one id in both
    // would be handed out as gold to a person who must label it as an item.
    for g in q.gold.keys() {
        items::read_item(&Value::String(g.clone()), &format!("gold.{g}"))
            .map_err(ApiError::request)?;
        if list.iter().any(|i| &i.id == g) {
            return Err(ApiError::request(format!(
                "gold.{g}: also an item of the queue; a gold item is a check with a known answer, not an item to label: take it out of items or of gold"
            )));
        }
    }
    if matches!(schema.kind, tribunal_labels::schema::Kind::Pairwise) {
        if let Some(i) = list.iter().position(|i| i.pair.is_none()) {
            return Err(ApiError::request(format!(
                "items[{i}]: a pairwise schema labels pairs; expected {{\"pair\": {{a, b}}}}"
            )));
        }
    } else if let Some(i) = list.iter().position(|i| i.pair.is_some()) {
        return Err(ApiError::request(format!(
            "items[{i}]: a pair needs a pairwise schema, and {:?} is not one",
            schema.name
        )));
    }
    if let Some(judge) = &schema.judge {
        items::attach_judge_values(&state.store, &caller.project, judge, &mut list).await?;
    }
    let def = QueueDef {
        id: q.id.clone(),
        schema: q.schema,
        items: list
            .iter()
            .map(|i| serde_json::to_value(i).unwrap_or(Value::Null))
            .collect(),
        gold: q.gold,
        overlap: q.overlap,
        lock_s: q.lock_s,
        gold_rate: q.gold_rate,
        blind: q.blind,
        people: q.people,
        spread: q.spread,
        review_against_judge: q.review_against_judge,
        from: q.from.as_ref().and_then(|f| serde_json::to_value(f).ok()),
        untrusted_from: q.untrusted_from,
    };
    let text = serde_json::to_string(&def).map_err(|e| ApiError::request(e.to_string()))?;
    // Read before the queue is made: a store that fails here leaves no queue behind.
    let missing = items::not_found(&state, &caller.project, &list).await?;
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
    let with_judge = list.iter().filter(|i| i.judge_value.is_some()).count();
    let warnings = warnings(&state, &caller, &def);
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"id": q.id, "items": list.len(), "with_judge_value": with_judge,
            "not_found": missing, "warnings": warnings}),
        ),
    )
        .into_response())
}

/// What may keep a queue from filling as its maker expects: an `untrusted_from` naming no
/// judge the project's gate runs now (a judge may be added later, so it is not refused).
fn warnings(state: &AppState, caller: &Caller, def: &QueueDef) -> Vec<String> {
    let Some(judge) = &def.untrusted_from else {
        return Vec::new();
    };
    let Ok(project) = state.project(caller) else {
        return Vec::new();
    };
    let rt = project.runtime();
    let names: Vec<&str> = rt.evaluator().judges().iter().map(|j| j.name()).collect();
    if names.contains(&judge.as_str()) {
        return Vec::new();
    }
    let runs = if names.is_empty() {
        "it runs none".to_owned()
    } else {
        format!("it runs {}", names.join(", "))
    };
    vec![format!(
        "untrusted_from: the gate of this project runs no judge {judge:?} now ({runs}); nothing is added to the queue until a judge of that name answers below its trust threshold"
    )]
}

/// Whether the caller may see the queue: reviewers and admins see every queue, others the
/// queues open to everyone and the ones they are named on.
fn may_see(caller: &Caller, def: &QueueDef) -> bool {
    crate::auth::allows(&caller.role, Permission::Review)
        || def
            .people
            .as_ref()
            .is_none_or(|p| p.contains(&caller.token_id))
}

fn hidden(id: &str) -> ApiError {
    ApiError::new(
        Code::Forbidden,
        format!("this token is not one of the people of queue {id:?}"),
    )
}

fn summary(def: &QueueDef) -> Value {
    json!({"id": def.id, "schema": def.schema, "items": def.items.len(), "overlap": def.overlap,
        "blind": def.blind, "gold_rate": def.gold_rate, "lock_s": def.lock_s, "spread": def.spread,
        "review_against_judge": def.review_against_judge, "people": def.people, "from": def.from,
        "untrusted_from": def.untrusted_from})
}

/// `GET /api/v1/queues`: the queues the caller may work on (all, for reviewers and admins).
pub async fn list_queues(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let mut out = Vec::new();
    for (_, b) in state.store.label_queues(&caller.project).await? {
        let Ok(def) = serde_json::from_str::<QueueDef>(&b) else {
            continue;
        };
        if may_see(&caller, &def) {
            out.push(summary(&def));
        }
    }
    Ok(Json(json!({ "queues": out })))
}

/// `GET /api/v1/queues/{id}`: the queue's settings and progress (the caller's own, and for
/// reviewers and admins everyone's).
pub async fn get_queue(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let all = crate::auth::allows(&caller.role, Permission::Review);
    let out = read(&state, &caller.project, &id, |h| {
        if !may_see(&caller, &h.def) {
            return Err(hidden(&id));
        }
        let overlap = h.def.overlap;
        let (mut labels, mut complete, mut finals, mut review) = (0, 0, 0, 0);
        let mut mine = 0;
        let mut per_person: BTreeMap<&str, usize> = BTreeMap::new();
        for (item, l) in h.queue.all_labels() {
            labels += l.len();
            complete += usize::from(l.len() >= overlap);
            finals += usize::from(h.queue.final_label(item).is_some());
            review += usize::from(figures::review_reason(h, item, l, h.def.spread).is_some());
            for (p, _) in l {
                *per_person.entry(p).or_default() += 1;
                mine += usize::from(*p == caller.token_id);
            }
        }
        let mut v = summary(&h.def);
        v["warnings"] = json!(warnings(&state, &caller, &h.def));
        v["items"] = json!(h.items.len());
        v["schema_definition"] = json!(h.schema);
        v["progress"] = json!({
            "labels": labels, "labels_needed": h.items.len() * overlap,
            "items_complete": complete, "final": finals, "in_review": review, "mine": mine,
        });
        if all {
            v["progress"]["people"] = json!(per_person);
        }
        Ok(v)
    })
    .await??;
    Ok(Json(out))
}

fn refused(e: QueueError) -> ApiError {
    match e {
        QueueError::NotAllowed(_) => ApiError::new(Code::Forbidden, e.to_string()),
        QueueError::NoSuchItem(_) => ApiError::not_found(e.to_string()),
        _ => ApiError::new(Code::Conflict, e.to_string()),
    }
}

/// `POST /api/v1/queues/{id}/next` (annotators): the caller's next item, locked for them,
/// with what to show.
pub async fn next(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Annotate)?;
    let person = caller.token_id.clone();
    let (next, schema, item) = change(&state, &caller.project, &id, |h, now| {
        let next = h.queue.next(&person, now).map_err(refused)?;
        let mut did = Vec::new();
        let mut item = None;
        if let Next::Item {
            item: i,
            gold,
            until_ms,
        } = &next
        {
            did.push(Did {
                item: i.clone(),
                person: person.clone(),
                kind: "lock",
                value: Some(json!({"until_ms": until_ms, "gold": gold}).to_string()),
                comment: None,
                at_ms: None,
                shown: None,
            });
            item = Some(h.items.get(i).cloned().unwrap_or_else(|| bare_item(i)));
        }
        Ok(((next, h.schema.clone(), item), did))
    })
    .await?;
    match next {
        Next::Done => Ok(Json(json!({"done": true}))),
        Next::Wait { until_ms } => Ok(Json(json!({"done": false, "wait_until_ms": until_ms}))),
        Next::Item {
            item: item_id,
            until_ms,
            ..
        } => {
            // A gold item is not marked as one: people label it like any other; nor is the
            // judge's value shown, so it does not sway them.
            let mut item = item.expect("set with the item");
            item.judge_value = None;
            let content = items::content(&state.store, &caller.project, &item).await?;
            // What the person is shown now is what their label is read against, whatever
            // the trace under the same id becomes before they label it (none recorded when
            // the trace is not stored: the label then reads the trace as it is then).
            if item.trace.is_some() || item.pair.as_ref().is_some_and(items::has_trace_side) {
                let shown = items::shown_in(&item, &content);
                let person = caller.token_id.clone();
                change(&state, &caller.project, &id, |_, _| {
                    let did = Did {
                        item: item_id.clone(),
                        person,
                        kind: "shown",
                        value: None,
                        comment: None,
                        at_ms: None,
                        shown,
                    };
                    Ok(((), vec![did]))
                })
                .await?;
            }
            Ok(Json(json!({
                "done": false, "item": item_id, "until_ms": until_ms, "schema": schema,
                "trace": content.get("trace").cloned().unwrap_or(Value::Null),
                "content": content,
            })))
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
    b: Body,
) -> Result<Response, ApiError> {
    caller.require(Permission::Annotate)?;
    let b: LabelBody = body(b, "{value, comment?}")?;
    let person = caller.token_id.clone();
    let shown = shown_to(&state, &caller.project, &id, &item, &person).await?;
    let value = change(&state, &caller.project, &id, |h, now| {
        let value = h
            .schema
            .value(&b.value)
            .map_err(|e| ApiError::request(e.to_string()))?;
        if b.comment.is_some() && !h.schema.comment {
            return Err(ApiError::request(format!(
                "comment: the schema {:?} takes no comment",
                h.schema.name
            )));
        }
        h.queue
            .submit(&person, &item, value.clone(), now)
            .map_err(refused)?;
        let did = Did {
            item: item.clone(),
            person: person.clone(),
            kind: "label",
            value: Some(value.to_string()),
            comment: b.comment,
            at_ms: None,
            shown,
        };
        Ok((value, vec![did]))
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"item": item, "value": value})),
    )
        .into_response())
}

/// What `person` was shown of `item` of queue `id` when it was given to them (`next`
/// records it), else what the store shows of it now: the record their label keeps, so a
/// trace changed under the same id, before or after the label, is not taken as the one
/// labelled.
async fn shown_to(
    state: &AppState,
    project: &str,
    id: &str,
    item: &str,
    person: &str,
) -> Result<Option<String>, ApiError> {
    let key = (item.to_owned(), person.to_owned(), "shown".to_owned());
    let given = read(state, project, id, |h| {
        h.notes.get(&key).and_then(|n| n.shown.clone())
    })
    .await?;
    match given {
        Some(s) => Ok(Some(s)),
        None => shown_now(state, project, id, item).await,
    }
}

/// What the store shows of `item` of queue `id` now, for the label given to it: a trace
/// changed later under the same id is then not taken as the one labelled.
async fn shown_now(
    state: &AppState,
    project: &str,
    id: &str,
    item: &str,
) -> Result<Option<String>, ApiError> {
    let def = read(state, project, id, |h| h.items.get(item).cloned()).await?;
    let def = def.unwrap_or_else(|| bare_item(item));
    items::shown(&state.store, project, &def).await
}

/// An item known only by its id: the stored trace of that id.
fn bare_item(id: &str) -> items::Item {
    items::Item {
        id: id.to_owned(),
        trace: Some(id.to_owned()),
        span: None,
        run: None,
        pair: None,
        judge_value: None,
    }
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
    b: Body,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Annotate)?;
    let b: SkipBody = body(b, "{reason}")?;
    if b.reason.trim().is_empty() {
        return Err(ApiError::request("reason: say why the item is skipped"));
    }
    let person = caller.token_id.clone();
    change(&state, &caller.project, &id, |h, _| {
        h.queue.skip(&person, &item).map_err(refused)?;
        let did = Did {
            item: item.clone(),
            person: person.clone(),
            kind: "skip",
            value: Some(b.reason),
            comment: None,
            at_ms: None,
            shown: None,
        };
        Ok(((), vec![did]))
    })
    .await?;
    Ok(Json(json!({"item": item, "skipped": true})))
}

/// `GET /api/v1/queues/{id}/labels`: in a blind queue, an annotator gets only their own
/// labels and no final labels; reviewers and admins get every label and the final ones.
pub async fn labels(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let all = crate::auth::allows(&caller.role, Permission::Review);
    let out = read(&state, &caller.project, &id, |h| {
        if !may_see(&caller, &h.def) {
            return Err(hidden(&id));
        }
        let q = &h.queue;
        Ok(q.all_labels()
            .filter_map(|(item, _)| {
                let labels: Vec<Value> = q
                    .labels_for(&caller.token_id, item, all)
                    .into_iter()
                    .map(|(who, v)| json!({"person": who, "value": v}))
                    .collect();
                let fin = if all || !q.settings.blind {
                    q.final_label(item)
                        .map(|(v, by)| json!({"value": v, "by": by, "how": h.how(item, by)}))
                } else {
                    None
                };
                (!labels.is_empty() || fin.is_some())
                    .then(|| json!({"item": item, "labels": labels, "final": fin}))
            })
            .collect::<Vec<_>>())
    })
    .await??;
    Ok(Json(json!({ "items": out })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewQuery {
    spread: Option<f64>,
}

/// `GET /api/v1/queues/{id}/review` (reviewers): items whose labels disagree (categorical
/// labels not unanimous, numbers further apart than the queue's `spread`, or people against
/// the judge when the queue says so) and that no one has decided; `?spread=` overrides the
/// queue's spread for this look.
pub async fn review(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    q: Result<Query<ReviewQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Review)?;
    let Query(rq) = q.map_err(|e| ApiError::request(format!("{e}; the filter is spread")))?;
    let out = read(&state, &caller.project, &id, |h| {
        let spread = rq.spread.unwrap_or(h.def.spread);
        h.queue
            .all_labels()
            .filter_map(|(item, l)| {
                let why = figures::review_reason(h, item, l, spread)?;
                let labels: Vec<Value> = l
                    .iter()
                    .map(|(who, v)| {
                        let comment = h
                            .notes
                            .get(&(item.to_owned(), who.clone(), "label".to_owned()))
                            .and_then(|n| n.comment.clone());
                        json!({"person": who, "value": v, "comment": comment})
                    })
                    .collect();
                let it = h.items.get(item);
                Some(json!({
                    "item": item, "why": why, "labels": labels,
                    "judge_value": it.and_then(|i| i.judge_value.clone()),
                    "consensus": figures::consensus(h, item, l),
                }))
            })
            .collect::<Vec<_>>()
    })
    .await?;
    Ok(Json(json!({ "items": out })))
}

/// `GET /api/v1/queues/{id}/items/{item}` (reviewers): what the item shows, with its labels.
pub async fn item(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path((id, item)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Review)?;
    let (it, labels, fin) = read(&state, &caller.project, &id, |h| {
        let it = h.items.get(&item).cloned();
        let labels = h.queue.labels_for("", &item, true);
        let fin = h
            .queue
            .final_label(&item)
            .map(|(v, by)| json!({"value": v, "by": by, "how": h.how(&item, by)}));
        (it, labels, fin)
    })
    .await?;
    let it =
        it.ok_or_else(|| ApiError::not_found(format!("item {item:?} is not in this queue")))?;
    let mut content = items::content(&state.store, &caller.project, &it).await?;
    content["judge_value"] = it.judge_value.clone().unwrap_or(Value::Null);
    content["labels"] = labels
        .into_iter()
        .map(|(p, v)| json!({"person": p, "value": v}))
        .collect();
    content["final"] = fin.unwrap_or(Value::Null);
    Ok(Json(content))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdjudicateBody {
    value: Value,
    #[serde(default)]
    note: Option<String>,
}

/// `POST /api/v1/queues/{id}/items/{item}/adjudicate` (reviewers): the final label; the
/// item never comes back. It records how it was decided: `accepted` (the label everyone
/// gave, e.g. where people stand against the judge), `adjudicated` (one of the labels people
/// gave, where they disagreed) or `corrected` (a label nobody gave).
pub async fn adjudicate(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path((id, item)): Path<(String, String)>,
    b: Body,
) -> Result<Response, ApiError> {
    caller.require(Permission::Review)?;
    let b: AdjudicateBody = body(b, "{value, note?}")?;
    let by = caller.token_id.clone();
    let shown = shown_now(&state, &caller.project, &id, &item).await?;
    let (value, how) = change(&state, &caller.project, &id, |h, _| {
        let value = h
            .schema
            .value(&b.value)
            .map_err(|e| ApiError::request(e.to_string()))?;
        let labels = h.queue.labels_for("", &item, true);
        let same = |v: &Value| tribunal_labels::queue::same_value(v, &value);
        let unanimous = !labels.is_empty()
            && !tribunal_labels::queue::disagree(&labels, 0.0)
            && same(&labels[0].1);
        let how = if unanimous {
            "accepted"
        } else if labels.iter().any(|(_, v)| same(v)) {
            "adjudicated"
        } else {
            "corrected"
        };
        h.queue
            .adjudicate(&item, value.clone(), &by)
            .map_err(refused)?;
        let did = Did {
            item: item.clone(),
            person: by.clone(),
            kind: "final",
            value: Some(final_record(&value, how)),
            comment: b.note,
            at_ms: None,
            shown,
        };
        Ok(((value, how), vec![did]))
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"item": item, "final": value, "by": caller.token_id, "how": how})),
    )
        .into_response())
}

/// `GET /api/v1/queues/{id}/agreement` (reviewers): the queue's agreement and quality
/// figures (see [`figures`]).
pub async fn agreement(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Review)?;
    Ok(Json(
        read(&state, &caller.project, &id, figures::figures).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddItems {
    items: Vec<Value>,
}

/// Adds `items` to a queue (those it has already are left as they are); answers how many
/// were added.
async fn add(
    state: &AppState,
    project: &str,
    id: &str,
    items: Vec<items::Item>,
) -> Result<usize, ApiError> {
    change(state, project, id, |h, _| {
        let mut did = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            if h.items.contains_key(&item.id) || h.queue.is_gold(&item.id) {
                continue;
            }
            let pairwise = matches!(h.schema.kind, tribunal_labels::schema::Kind::Pairwise);
            if pairwise != item.pair.is_some() {
                return Err(ApiError::request(format!(
                    "items[{i}]: does not fit the schema {:?} (pairwise schemas label pairs, others do not)",
                    h.schema.name
                )));
            }
            did.push(Did {
                item: item.id.clone(),
                person: "tribunal".into(),
                kind: "add",
                value: Some(serde_json::to_string(&item).unwrap_or_default()),
                comment: None,
                at_ms: None,
                shown: None,
            });
        }
        Ok((did.len(), did))
    })
    .await
}

/// `POST /api/v1/queues/{id}/items` (admin): `{items: [...]}` in the forms a queue is made
/// with, added at the end of the queue.
pub async fn add_items(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    b: Body,
) -> Result<Response, ApiError> {
    caller.require(Permission::Admin)?;
    let b: AddItems = body(b, "{items: [...]}")?;
    if b.items.is_empty() {
        return Err(ApiError::request("items: at least one item to add"));
    }
    let list = items::read_items(&b.items).map_err(ApiError::request)?;
    items::check_runs(&caller.project, &list)?;
    let missing = items::not_found(&state, &caller.project, &list).await?;
    let added = add(&state, &caller.project, &id, list).await?;
    Ok((
        StatusCode::OK,
        Json(json!({"added": added, "not_found": missing})),
    )
        .into_response())
}

/// The judges among `feedback` whose answer was not trusted.
pub fn untrusted_judges(feedback: &[tribunal_core::Feedback]) -> Vec<String> {
    let mut out: Vec<String> = feedback
        .iter()
        .filter(|f| f.is_untrusted())
        .map(|f| f.name.split('.').next().unwrap_or(&f.name).to_owned())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Adds `trace` to every queue of the project that collects the untrusted answers of one of
/// `judges`. A failure is logged: the decision it came with stands.
pub async fn collect_untrusted(state: &AppState, project: &str, trace: &str, judges: &[String]) {
    let queues = match state.store.label_queues(project).await {
        Ok(q) => q,
        Err(e) => {
            tracing::error!(error = %e, trace, "reading the labeling queues failed");
            return;
        }
    };
    for (id, body) in queues {
        let Ok(def) = serde_json::from_str::<QueueDef>(&body) else {
            continue;
        };
        if !def
            .untrusted_from
            .as_ref()
            .is_some_and(|j| judges.contains(j))
        {
            continue;
        }
        let item = items::Item {
            id: trace.to_owned(),
            trace: Some(trace.to_owned()),
            span: None,
            run: None,
            pair: None,
            judge_value: None,
        };
        if let Err(e) = add(state, project, &id, vec![item]).await {
            tracing::error!(queue = %id, trace, error = %e.message, "adding an untrusted answer to its queue failed");
        }
    }
}

/// `GET /api/v1/label-schemas/{name}/agreement` (reviewers): the figures over every queue
/// of the schema, as if its queues were one (items named `queue/item`).
pub async fn schema_agreement(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Review)?;
    schema_of(&state, &caller.project, &name).await?;
    let mut states = Vec::new();
    for (id, body) in state.store.label_queues(&caller.project).await? {
        let Ok(def) = serde_json::from_str::<QueueDef>(&body) else {
            continue;
        };
        if def.schema == name {
            if let Some(q) = state.store.queue_state(&caller.project, &id).await? {
                states.push(q);
            }
        }
    }
    let refs: Vec<&tribunal_labels::state::QueueState> = states.iter().collect();
    let Some(merged) = tribunal_labels::state::QueueState::merged(&refs) else {
        return Ok(Json(
            json!({"schema": name, "queues": [], "not_computable": "the schema has no queue"}),
        ));
    };
    let mut out = figures::figures(&merged);
    out["queues"] = json!(states.iter().map(|q| q.def.id.clone()).collect::<Vec<_>>());
    Ok(Json(out))
}

/// The queue's definition, for routes that need it before reading the queue.
pub async fn queue_def(state: &AppState, project: &str, id: &str) -> Result<QueueDef, ApiError> {
    def_of(state, project, id).await
}
