//! Labels in and out. Out: a queue's labels as JSONL (one line per item with its labels and
//! final label, and who decided it and how) or as MLflow assessments (HUMAN source, the
//! schema's name as the assessment's name) to log into MLflow. In: JSONL lines in the export's
//! form, single labels (`{item, person, value, comment?}`), MLflow assessments, or MLflow
//! trace exports, which carry their assessments; the assessments of the schema's name from
//! people are taken. A bad line is refused with its number and field; the others go in.

use super::held::{change, read, Did};
use super::{body, Body};
use crate::auth::{Caller, Permission};
use crate::error::ApiError;
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use tribunal_labels::state::final_record;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    format: Option<String>,
}

/// `GET /api/v1/queues/{id}/export?format=jsonl|mlflow` (reviewers).
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
    let text = read(&state, &caller.project, &id, |h| {
        h.export(format == "mlflow")
    })
    .await?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
        text,
    )
        .into_response())
}

/// A label read from a line: on which item, by whom, and whether it is a final label.
#[derive(Debug, Clone, PartialEq)]
struct Imported {
    item: String,
    person: String,
    value: Value,
    comment: Option<String>,
    final_how: Option<String>,
    /// When it was given, when the line says (ms since the epoch).
    at_ms: Option<i64>,
    /// What its person was shown, when the line is this server's export and says.
    shown: Option<String>,
    /// A skip (with its reason) rather than a label, from an export's `skips`.
    skip: Option<String>,
}

/// The fields a line of each form may have: a field not listed is a typo, refused rather
/// than ignored (a misspelled `comment` would otherwise drop the comment silently).
const EXPORT_FIELDS: &[&str] = &[
    "queue", "schema", "item", "trace", "span", "pair", "labels", "final", "skips",
];
const EXPORT_LABEL_FIELDS: &[&str] = &["person", "value", "at_ms", "shown", "comment"];
const EXPORT_FINAL_FIELDS: &[&str] = &["value", "by", "how", "at_ms", "shown", "note"];
const EXPORT_SKIP_FIELDS: &[&str] = &["person", "reason", "at_ms"];
const LABEL_FIELDS: &[&str] = &["item", "person", "value", "comment", "at_ms"];

/// Refuses a field of `v` (named under `at`) that is not in `known`.
fn only_fields(v: &Value, known: &[&str], at: &str) -> Result<(), String> {
    let Some(o) = v.as_object() else {
        return Err(format!("{at}: expected a JSON object"));
    };
    match o.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(format!(
            "{at}{}{k}: not a field of this line (its fields: {})",
            if at.is_empty() { "" } else { "." },
            known.join(", ")
        )),
        None => Ok(()),
    }
}

/// The labels a line holds for `schema` (`Ok(vec![])` for a line about something else).
fn read_line(v: &Value, schema: &str) -> Result<Vec<Imported>, String> {
    let o = v.as_object().ok_or("expected a JSON object".to_owned())?;
    let text = |k: &str| -> Result<Option<String>, String> {
        match o.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("{k}: expected a string")),
        }
    };
    // An MLflow trace export: its assessments.
    if let Some(info) = o.get("info").filter(|i| i.is_object()) {
        let trace = tribunal_formats::mlflow::import_trace(v, "")
            .map_err(|e| format!("{}: expected {}", e.field, e.expected))?;
        let trace_id = info["trace_id"]
            .as_str()
            .or(info["request_id"].as_str())
            .map(str::to_owned)
            .unwrap_or(trace.id.clone());
        return Ok(trace
            .assessments
            .iter()
            .filter(|a| a.name == schema && a.source_type == "HUMAN")
            .map(|a| Imported {
                item: match &a.span_id {
                    Some(s) => format!("{trace_id}/{s}"),
                    None => trace_id.clone(),
                },
                person: if a.source_id.is_empty() {
                    "imported".to_owned()
                } else {
                    a.source_id.clone()
                },
                value: a.value.clone(),
                comment: a.rationale.clone(),
                final_how: None,
                at_ms: None,
                shown: None,
                skip: None,
            })
            .collect());
    }
    // An MLflow assessment.
    if o.contains_key("assessment_name") {
        let a = tribunal_formats::mlflow::import_assessment(v)
            .map_err(|e| format!("{}: expected {}", e.field, e.expected))?;
        let Some(a) = a.filter(|a| a.name == schema && a.source_type == "HUMAN") else {
            return Ok(vec![]);
        };
        let trace = text("trace_id")?.ok_or("trace_id: expected the trace's id")?;
        let is_final = o
            .get("metadata")
            .and_then(|m| m.get("final"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        return Ok(vec![Imported {
            item: match &a.span_id {
                Some(s) => format!("{trace}/{s}"),
                None => trace,
            },
            person: if a.source_id.is_empty() {
                "imported".to_owned()
            } else {
                a.source_id
            },
            value: a.value,
            comment: a.rationale,
            final_how: is_final,
            at_ms: at_ms_of(o.get("create_time_ms"), "create_time_ms")?,
            shown: None,
            skip: None,
        }]);
    }
    let item = text("item")?.ok_or("item: expected the item's id")?;
    // A line of this server's JSONL export.
    if let Some(list) = o.get("labels") {
        if text("schema")?.is_some_and(|s| s != schema) {
            return Ok(vec![]);
        }
        only_fields(v, EXPORT_FIELDS, "")?;
        let list = list.as_array().ok_or("labels: expected a list")?;
        let mut out = Vec::new();
        for (i, l) in list.iter().enumerate() {
            only_fields(l, EXPORT_LABEL_FIELDS, &format!("labels[{i}]"))?;
            let person = l["person"]
                .as_str()
                .ok_or(format!("labels[{i}].person: expected a string"))?;
            out.push(Imported {
                item: item.clone(),
                person: person.to_owned(),
                value: l.get("value").cloned().unwrap_or(Value::Null),
                comment: l["comment"].as_str().map(str::to_owned),
                final_how: None,
                at_ms: at_ms_of(l.get("at_ms"), &format!("labels[{i}].at_ms"))?,
                shown: l
                    .get("shown")
                    .filter(|v| v.is_object())
                    .map(Value::to_string),
                skip: None,
            });
        }
        let skips = match o.get("skips") {
            None | Some(Value::Null) => &[][..],
            Some(Value::Array(list)) => &list[..],
            Some(_) => return Err("skips: expected a list".to_owned()),
        };
        for (i, k) in skips.iter().enumerate() {
            only_fields(k, EXPORT_SKIP_FIELDS, &format!("skips[{i}]"))?;
            let person = k["person"]
                .as_str()
                .ok_or(format!("skips[{i}].person: expected a string"))?;
            let reason = k["reason"]
                .as_str()
                .filter(|r| !r.trim().is_empty())
                .ok_or(format!(
                    "skips[{i}].reason: expected why the item was skipped"
                ))?;
            out.push(Imported {
                item: item.clone(),
                person: person.to_owned(),
                value: Value::Null,
                comment: None,
                final_how: None,
                at_ms: at_ms_of(k.get("at_ms"), &format!("skips[{i}].at_ms"))?,
                shown: None,
                skip: Some(reason.to_owned()),
            });
        }
        if let Some(f) = o.get("final").filter(|f| !f.is_null()) {
            only_fields(f, EXPORT_FINAL_FIELDS, "final")?;
            let how = match f.get("how") {
                None | Some(Value::Null) => "adjudicated",
                Some(Value::String(h))
                    if ["accepted", "adjudicated", "corrected", "unanimous"]
                        .contains(&h.as_str()) =>
                {
                    h.as_str()
                }
                Some(other) => {
                    return Err(format!(
                        "final.how: expected accepted, adjudicated or corrected, found {other}"
                    ))
                }
            };
            // A unanimous final label (as exported) is the people's labels agreeing: it is
            // made again from them, not imported.
            if how != "unanimous" {
                let by = f["by"]
                    .as_str()
                    .ok_or("final.by: expected who decided it")?;
                out.push(Imported {
                    item: item.clone(),
                    person: by.to_owned(),
                    value: f.get("value").cloned().unwrap_or(Value::Null),
                    comment: f["note"].as_str().map(str::to_owned),
                    final_how: Some(how.to_owned()),
                    at_ms: at_ms_of(f.get("at_ms"), "final.at_ms")?,
                    shown: f
                        .get("shown")
                        .filter(|v| v.is_object())
                        .map(Value::to_string),
                    skip: None,
                });
            }
        }
        return Ok(out);
    }
    // One label.
    only_fields(v, LABEL_FIELDS, "")?;
    let person = text("person")?.ok_or("person: expected who gave the label")?;
    Ok(vec![Imported {
        item,
        person,
        value: o.get("value").cloned().ok_or("value: expected the label")?,
        comment: text("comment")?,
        final_how: None,
        at_ms: at_ms_of(o.get("at_ms"), "at_ms")?,
        shown: None,
        skip: None,
    }])
}

/// The latest time a label may say it was given: the year 3000, in milliseconds.
const LAST_MS: i64 = 32_503_680_000_000;

/// When a label was given, as a line says (`field` names it): milliseconds since 1970, a
/// whole number after 1970 and before the year 3000; `None` when the line does not say.
fn at_ms_of(v: Option<&Value>, field: &str) -> Result<Option<i64>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_i64() {
            Some(ms) if ms > 0 && ms < LAST_MS => Ok(Some(ms)),
            _ => Err(format!(
                "{field}: expected when the label was given, in milliseconds since 1970 (a whole number after 1970 and before the year 3000), found {v}"
            )),
        },
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportBody {
    /// JSONL text.
    lines: String,
}

/// `POST /api/v1/queues/{id}/import` (admin): `{"lines": "<JSONL>"}`. Labels go to the
/// queue's items as given by the people they name; a label a person already gave is kept
/// (counted as already there when the line says the same, refused when it says otherwise).
pub async fn import(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    b: Body,
) -> Result<Response, ApiError> {
    caller.require(Permission::Admin)?;
    let b: ImportBody = body(b, "{lines: JSONL text}")?;
    // A label may name someone outside the server (labels made elsewhere), never a token of
    // another project: its labels would count in this project's figures as that person's.
    let elsewhere: std::collections::HashSet<String> = state
        .store
        .list_tokens()
        .await?
        .into_iter()
        .filter(|t| t.project != caller.project)
        .map(|t| t.id)
        .collect();
    let report = change(&state, &caller.project, &id, |h, _| {
        let mut did = Vec::new();
        let mut refused: Vec<Value> = Vec::new();
        let (mut imported, mut kept, mut other, mut skips) = (0usize, 0usize, 0usize, 0usize);
        for (n, line) in b.lines.lines().enumerate() {
            let no = n + 1;
            if line.trim().is_empty() {
                continue;
            }
            // Read strictly: a key named twice would make one of two labels count.
            let labels = tribunal_core::json::from_str(line)
                .map_err(|e| format!("not JSON: {e}"))
                .and_then(|v| read_line(&v, &h.schema.name));
            let labels = match labels {
                Ok(l) if l.is_empty() => {
                    other += 1;
                    continue;
                }
                Ok(l) => l,
                Err(e) => {
                    refused.push(json!({"line": no, "error": e}));
                    continue;
                }
            };
            for l in labels {
                if !h.items.contains_key(&l.item) && !h.queue.is_gold(&l.item) {
                    refused.push(json!({"line": no, "error": format!("item: {:?} is not in this queue", l.item)}));
                    continue;
                }
                if let Some(reason) = l.skip {
                    if l.person.trim().is_empty() || elsewhere.contains(&l.person) {
                        refused.push(json!({"line": no, "error": format!(
                            "skips.person: {:?} is empty or a token of another project", l.person
                        )}));
                        continue;
                    }
                    let key = (l.item.clone(), l.person.clone(), "skip".to_owned());
                    if h.notes.contains_key(&key) {
                        kept += 1;
                        continue;
                    }
                    h.queue.restore_skip(&l.person, &l.item);
                    did.push(Did {
                        item: l.item,
                        person: l.person,
                        kind: "skip",
                        value: Some(reason),
                        comment: None,
                        at_ms: l.at_ms,
                        shown: None,
                    });
                    skips += 1;
                    continue;
                }
                let value = match h.schema.value(&l.value) {
                    Ok(v) => v,
                    Err(e) => {
                        refused.push(json!({"line": no, "error": e.to_string()}));
                        continue;
                    }
                };
                if l.comment.is_some() && l.final_how.is_none() && !h.schema.comment {
                    refused.push(json!({"line": no, "error": format!(
                        "comment: the schema {:?} takes no comment", h.schema.name
                    )}));
                    continue;
                }
                if l.person.trim().is_empty() {
                    refused.push(json!({"line": no, "error": "person: expected who gave the label, found an empty name"}));
                    continue;
                }
                if elsewhere.contains(&l.person) {
                    refused.push(json!({"line": no, "error": format!(
                        "person: {:?} is a token of another project", l.person
                    )}));
                    continue;
                }
                if let Some(how) = &l.final_how {
                    if let Some((there, by)) = h.queue.final_label(&l.item) {
                        if tribunal_labels::queue::same_value(there, &value) {
                            kept += 1;
                        } else {
                            refused.push(json!({"line": no, "error": format!(
                                "final: item {:?} already has the final label {there} (by {by:?}); the label there is kept, not {value}",
                                l.item
                            )}));
                        }
                        continue;
                    }
                    h.queue.restore_final(&l.item, value.clone(), &l.person);
                    did.push(Did {
                        item: l.item,
                        person: l.person,
                        kind: "final",
                        value: Some(final_record(&value, how)),
                        comment: l.comment,
                        at_ms: l.at_ms,
                        shown: l.shown,
                    });
                    imported += 1;
                    continue;
                }
                let given = h.queue.labels_for("", &l.item, true);
                if let Some((_, there)) = given.iter().find(|(p, _)| *p == l.person) {
                    if tribunal_labels::queue::same_value(there, &value) {
                        kept += 1;
                    } else {
                        refused.push(json!({"line": no, "error": format!(
                            "value: {:?} already labelled item {:?} {there}; the label there is kept, not {value}",
                            l.person, l.item
                        )}));
                    }
                    continue;
                }
                h.queue.restore_label(&l.person, &l.item, value.clone());
                did.push(Did {
                    item: l.item,
                    person: l.person,
                    kind: "label",
                    value: Some(value.to_string()),
                    comment: l.comment,
                    at_ms: l.at_ms,
                    shown: l.shown,
                });
                imported += 1;
            }
        }
        let report = json!({"imported": imported, "skips_imported": skips,
            "already_there": kept, "other_lines": other, "refused": refused});
        Ok((report, did))
    })
    .await?;
    // Refused only when nothing went in and nothing was there already: importing the same
    // file again is not an error.
    let status = if report["imported"] == 0
        && report["skips_imported"] == 0
        && report["already_there"] == 0
        && !report["refused"].as_array().is_some_and(Vec::is_empty)
    {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok((status, Json(report)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_form_gives_its_labels() {
        let one = json!({"item": "t1", "person": "ann", "value": "yes", "comment": "fine"});
        assert_eq!(
            read_line(&one, "helpful").unwrap(),
            vec![Imported {
                item: "t1".into(),
                person: "ann".into(),
                value: json!("yes"),
                comment: Some("fine".into()),
                final_how: None,
                at_ms: None,
                shown: None,
                skip: None,
            }]
        );
        let export = json!({"schema": "helpful", "item": "t2",
            "labels": [{"person": "a", "value": "no", "shown": {"messages": 2, "digest": "ab"}}],
            "final": {"value": "yes", "by": "rev", "how": "corrected",
                "shown": {"messages": 3, "digest": "cd"}},
            "skips": [{"person": "b", "reason": "not my field", "at_ms": 1_700_000_000_000i64}]});
        let l = read_line(&export, "helpful").unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(l[2].final_how.as_deref(), Some("corrected"));
        // A skip and its reason come along.
        assert_eq!(
            (l[1].person.as_str(), l[1].skip.as_deref(), l[1].at_ms),
            ("b", Some("not my field"), Some(1_700_000_000_000))
        );
        // What the person was shown comes along, so alignment here reads the label against
        // the same conversation.
        let shown: Value = serde_json::from_str(l[0].shown.as_deref().unwrap()).unwrap();
        assert_eq!(shown, json!({"messages": 2, "digest": "ab"}));
        let shown: Value = serde_json::from_str(l[2].shown.as_deref().unwrap()).unwrap();
        assert_eq!(shown, json!({"messages": 3, "digest": "cd"}));
        assert!(read_line(&export, "other").unwrap().is_empty());
        let assessment = json!({"assessment_name": "helpful", "trace_id": "tr-1",
            "source": {"source_type": "HUMAN", "source_id": "bob"}, "feedback": {"value": "no"}, "rationale": "off"});
        let l = read_line(&assessment, "helpful").unwrap();
        assert_eq!((l[0].item.as_str(), l[0].person.as_str()), ("tr-1", "bob"));
        let judge = json!({"assessment_name": "helpful", "trace_id": "tr-1",
            "source": {"source_type": "LLM_JUDGE", "source_id": "gpt"}, "feedback": {"value": "no"}});
        assert!(read_line(&judge, "helpful").unwrap().is_empty());
        let trace = json!({"info": {"trace_id": "tr-9", "assessments": [
            {"assessment_name": "helpful", "source": {"source_type": "HUMAN", "source_id": "cy"}, "feedback": {"value": "yes"}},
            {"assessment_name": "other", "source": {"source_type": "HUMAN", "source_id": "cy"}, "feedback": {"value": 1}}
        ]}, "data": {"spans": []}});
        let l = read_line(&trace, "helpful").unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!((l[0].item.as_str(), l[0].person.as_str()), ("tr-9", "cy"));
        for (bad, says) in [
            (json!([1]), "expected a JSON object"),
            (json!({"person": "a", "value": 1}), "item:"),
            (json!({"item": "t", "value": 1}), "person:"),
            (json!({"item": "t", "person": "p"}), "value:"),
            (
                json!({"assessment_name": "helpful", "source": {"source_type": "HUMAN"}, "feedback": {"value": 1}}),
                "trace_id:",
            ),
            (
                json!({"item": "t", "labels": [], "final": {"value": "yes", "by": "rev", "how": "overruled"}}),
                "final.how:",
            ),
            (
                json!({"item": "t", "labels": [], "final": {"value": "yes", "by": "rev", "how": 3}}),
                "final.how:",
            ),
            (
                json!({"item": "t", "person": "p", "value": 1, "at_ms": -5}),
                "at_ms: expected when the label was given",
            ),
            (
                json!({"item": "t", "person": "p", "value": 1, "at_ms": "yesterday"}),
                "at_ms:",
            ),
            (
                json!({"item": "t", "person": "p", "value": 1, "at_ms": 1e300}),
                "at_ms:",
            ),
            (
                json!({"item": "t", "labels": [{"person": "a", "value": 1, "at_ms": 0}]}),
                "labels[0].at_ms:",
            ),
            (
                json!({"item": "t", "labels": [], "final": {"value": "yes", "by": "rev", "at_ms": 1.5}}),
                "final.at_ms:",
            ),
            // A misspelled field is refused, not ignored.
            (
                json!({"item": "t", "person": "p", "value": 1, "coment": "x"}),
                "coment: not a field",
            ),
            (
                json!({"item": "t", "labels": [{"person": "a", "value": 1, "coment": "x"}]}),
                "labels[0].coment: not a field",
            ),
            (
                json!({"item": "t", "labels": [], "final": {"value": 1, "by": "r", "notes": "x"}}),
                "final.notes: not a field",
            ),
            (
                json!({"item": "t", "labels": [], "skips": [{"person": "a"}]}),
                "skips[0].reason:",
            ),
            (
                json!({"item": "t", "labels": [], "extra": 1}),
                "extra: not a field",
            ),
        ] {
            let e = read_line(&bad, "helpful").unwrap_err();
            assert!(e.starts_with(says), "{bad}: {e}");
        }
    }
}
