//! The schemas of the API's successful answers, one per operation (by `operationId`), with
//! the status and content type each is answered with. The OpenAPI description is completed
//! from this table (`api::openapi_document`), and a test checks every route has an entry
//! and that real answers validate against them.
//!
//! Each schema names the members an answer always has and their types; nested documents
//! whose shape belongs to another part (a trace, a judge's feedback, a report) are described
//! by their type and the members a client relies on.

use serde_json::{json, Value};

/// An object with these members, all required.
fn obj(members: &[(&str, Value)]) -> Value {
    let required: Vec<&str> = members.iter().map(|(k, _)| *k).collect();
    let properties: serde_json::Map<String, Value> = members
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    json!({"type": "object", "required": required, "properties": properties})
}

fn list(items: Value) -> Value {
    json!({"type": "array", "items": items})
}

fn string() -> Value {
    json!({"type": "string"})
}

fn int() -> Value {
    json!({"type": "integer"})
}

fn number() -> Value {
    json!({"type": "number"})
}

fn boolean() -> Value {
    json!({"type": "boolean"})
}

fn object() -> Value {
    json!({"type": "object"})
}

fn nullable(t: &str) -> Value {
    json!({"type": [t, "null"]})
}

/// Any JSON value.
fn any() -> Value {
    json!({})
}

fn decision() -> Value {
    json!({"type": "string", "enum": ["allow", "escalate", "block"]})
}

fn violation() -> Value {
    obj(&[
        ("rule", string()),
        (
            "severity",
            json!({"type": "string", "enum": ["block", "escalate", "warn"]}),
        ),
        ("message", string()),
        ("evidence", list(string())),
    ])
}

/// A stored trace's summary (`GET /api/v1/traces`).
fn trace_row() -> Value {
    obj(&[
        ("project", string()),
        ("trace_id", string()),
        (
            "source",
            json!({"type": "string", "enum": ["gate", "otlp"]}),
        ),
        ("first_seen", string()),
        ("last_seen", string()),
        ("span_count", int()),
        ("dirty", boolean()),
        ("decision", nullable("string")),
    ])
}

fn gate_answer() -> Value {
    let mut a = obj(&[
        ("decision", decision()),
        ("reasons", list(string())),
        ("violations", list(violation())),
        ("evidence", list(string())),
        ("scores", object()),
        ("trace_id", string()),
        ("messages", int()),
        ("decision_id", int()),
        ("policy_version", string()),
        ("budget_exceeded", boolean()),
        ("elapsed_us", int()),
        ("context", object()),
    ]);
    a["properties"]["feedback"] = list(object());
    a["properties"]["judge_versions"] = object();
    a["properties"]["escalation"] = obj(&[("status", string())]);
    a
}

fn tool_pin() -> Value {
    obj(&[
        ("agent", string()),
        ("tool", string()),
        ("hash", string()),
        ("definition", any()),
        ("pinned_at", string()),
        ("changed", {
            let mut c = obj(&[("hash", string()), ("definition", any()), ("at", string())]);
            c["type"] = json!(["object", "null"]);
            c
        }),
    ])
}

fn escalation() -> Value {
    obj(&[
        ("id", string()),
        ("status", string()),
        // The outcome once settled; null while pending.
        ("decision", json!({"enum": ["allow", "block", null]})),
        ("created_at", string()),
        ("deadline_ms", int()),
        ("decision_id", int()),
        ("summary", any()),
        ("reviewer", nullable("string")),
        ("note", nullable("string")),
        ("decided_at", nullable("string")),
    ])
}

fn monitor() -> Value {
    obj(&[
        ("id", string()),
        ("judge", string()),
        ("version", int()),
        ("sample_rate", number()),
        ("filter", any()),
        ("pass_threshold", number()),
        ("enabled", boolean()),
        ("since", string()),
    ])
}

fn policies() -> Value {
    obj(&[
        ("version", string()),
        ("gates", list(string())),
        ("files", list(string())),
        ("shadow", json!({"type": ["object", "null"]})),
        ("loaded_at", string()),
    ])
}

fn feedback_row() -> Value {
    obj(&[
        ("id", string()),
        ("trace_id", string()),
        ("name", string()),
        ("value", any()),
        ("author", string()),
        ("created_at", string()),
    ])
}

fn session() -> Value {
    obj(&[
        ("project", string()),
        ("role", string()),
        ("token_id", string()),
        ("csrf", nullable("string")),
    ])
}

/// Every operation's answer: (operationId, status, content type, schema). `None` schema:
/// the answer has no body.
pub fn responses() -> Vec<(&'static str, u16, &'static str, Option<Value>)> {
    let j = "application/json";
    let text = "text/plain";
    vec![
        (
            "get_healthz",
            200,
            text,
            Some(json!({"type": "string", "const": "ok"})),
        ),
        (
            "get_readyz",
            200,
            text,
            Some(json!({"type": "string", "const": "ready"})),
        ),
        (
            "get_metrics",
            200,
            "text/plain; version=0.0.4",
            Some(string()),
        ),
        (
            "get_openapi_json",
            200,
            j,
            Some(obj(&[
                ("openapi", string()),
                ("paths", object()),
                ("info", object()),
            ])),
        ),
        (
            "get_errors_by_code",
            200,
            j,
            Some(obj(&[
                ("code", string()),
                ("status", int()),
                ("type", string()),
                ("meaning", string()),
                ("link", string()),
            ])),
        ),
        ("get", 200, "text/html", Some(string())),
        ("get_ui_by_file", 200, "text/*", Some(string())),
        ("post_sessions", 200, j, Some(session())),
        ("get_session", 200, j, Some(session())),
        (
            "delete_session",
            200,
            j,
            Some(obj(&[("signed_out", json!({"const": true}))])),
        ),
        ("post_gate", 200, j, Some(gate_answer())),
        ("post_v1_traces", 200, j, Some(object())),
        ("post_v1_logs", 200, j, Some(object())),
        (
            "get_traces",
            200,
            j,
            Some(obj(&[("traces", list(trace_row()))])),
        ),
        (
            "get_traces_by_id",
            200,
            j,
            Some(obj(&[
                ("summary", trace_row()),
                ("monitors", any()),
                ("trace", json!({"type": ["object", "null"]})),
                ("pending", json!({"type": ["object", "null"]})),
                ("result", json!({"type": ["object", "null"]})),
                ("human_feedback", list(feedback_row())),
            ])),
        ),
        (
            "get_traces_by_id_feedback",
            200,
            j,
            Some(obj(&[("feedback", list(feedback_row()))])),
        ),
        ("post_traces_by_id_feedback", 201, j, Some(feedback_row())),
        (
            "get_runs",
            200,
            j,
            Some(obj(&[(
                "runs",
                list(obj(&[
                    ("id", string()),
                    ("started_at", string()),
                    ("status", string()),
                ])),
            )])),
        ),
        (
            "get_runs_by_id",
            200,
            j,
            Some(obj(&[
                ("run", object()),
                ("results", json!({"type": "array"})),
                ("rejected", any()),
            ])),
        ),
        (
            "get_judges",
            200,
            j,
            Some(obj(&[
                ("judges", any()),
                ("config_hash", string()),
                ("stored", any()),
            ])),
        ),
        (
            "get_judges_builtins",
            200,
            j,
            Some(obj(&[("builtins", list(object()))])),
        ),
        (
            "post_judges_try",
            200,
            j,
            Some(obj(&[
                ("results", list(object())),
                ("totals", object()),
                ("compare_totals", json!({"type": ["object", "null"]})),
                ("version_hash", string()),
            ])),
        ),
        (
            "get_judges_by_name_versions",
            200,
            j,
            Some(obj(&[("name", string()), ("versions", list(object()))])),
        ),
        (
            "post_judges_by_name_versions",
            201,
            j,
            Some(obj(&[
                ("name", string()),
                ("version", int()),
                ("hash", string()),
            ])),
        ),
        (
            "get_judges_by_name_diff",
            200,
            j,
            Some(obj(&[
                ("name", string()),
                ("from", int()),
                ("to", int()),
                ("changes", json!({"type": "array"})),
                ("text", string()),
            ])),
        ),
        (
            "get_judges_by_name_align",
            200,
            j,
            Some(obj(&[
                ("name", string()),
                ("latest_version", int()),
                ("labels", int()),
                ("found", any()),
                ("reason", json!({"type": ["string", "null"]})),
                ("optimizers", list(string())),
            ])),
        ),
        (
            "post_judges_by_name_align",
            201,
            j,
            Some(obj(&[
                ("name", string()),
                ("from_version", int()),
                ("version", int()),
                ("unchanged", json!({"type": "boolean"})),
                ("read", int()),
                ("usable", int()),
                ("skipped", object()),
                ("aligned", object()),
            ])),
        ),
        (
            "post_judges_by_name_rollback",
            201,
            j,
            Some(obj(&[
                ("name", string()),
                ("version", int()),
                ("hash", string()),
            ])),
        ),
        (
            "get_monitors",
            200,
            j,
            Some(obj(&[("monitors", list(monitor()))])),
        ),
        ("post_monitors", 201, j, Some(monitor())),
        ("patch_monitors_by_id", 200, j, Some(monitor())),
        (
            "get_monitors_by_id_results",
            200,
            j,
            Some(obj(&[
                ("monitor", monitor()),
                ("window_seconds", int()),
                ("bucket_seconds", int()),
                ("totals", object()),
            ])),
        ),
        (
            "get_monitors_by_id_alerts",
            200,
            j,
            Some(obj(&[("alerts", list(object()))])),
        ),
        (
            "post_monitors_by_id_alerts",
            201,
            j,
            Some(obj(&[("id", string())])),
        ),
        ("delete_monitors_by_id_alerts_by_alert", 204, j, None),
        ("get_policies", 200, j, Some(policies())),
        (
            "post_policies_reload",
            200,
            j,
            Some({
                let mut p = policies();
                p["properties"]["previous_version"] = nullable("string");
                p
            }),
        ),
        (
            "get_policies_modules",
            200,
            j,
            Some(obj(&[
                ("version", string()),
                ("loaded_at", string()),
                ("modules", list(object())),
                ("rules", any()),
            ])),
        ),
        (
            "post_policies_test",
            200,
            j,
            Some(obj(&[
                ("passed", int()),
                ("failed", int()),
                ("tests", list(object())),
            ])),
        ),
        (
            "post_policies_try",
            200,
            j,
            Some(obj(&[
                ("path", string()),
                ("policy_version", string()),
                ("enforced_version", string()),
                ("traces", int()),
                ("unchanged", int()),
                ("skipped", int()),
                (
                    "transitions",
                    list(obj(&[("change", string()), ("count", int())])),
                ),
                ("changes", json!({"type": "array"})),
            ])),
        ),
        (
            "get_tools_pins",
            200,
            j,
            Some(obj(&[("pins", list(tool_pin()))])),
        ),
        ("post_tools_pins_approve", 200, j, Some(tool_pin())),
        (
            "post_tools_pins_remove",
            200,
            j,
            Some(obj(&[
                ("removed", boolean()),
                ("tool", string()),
                ("agent", string()),
            ])),
        ),
        (
            "get_escalations",
            200,
            j,
            Some(obj(&[("escalations", list(escalation()))])),
        ),
        ("get_escalations_by_id", 200, j, Some(escalation())),
        (
            "post_escalations_by_id_decision",
            200,
            j,
            Some(escalation()),
        ),
        (
            "get_audit_verify",
            200,
            j,
            Some(obj(&[
                ("ok", boolean()),
                (
                    "report",
                    obj(&[
                        ("entries", int()),
                        ("head_seq", int()),
                        ("head_hash", string()),
                        ("problems", list(string())),
                    ]),
                ),
            ])),
        ),
        (
            "get_audit_entries_by_seq",
            200,
            j,
            Some(obj(&[
                ("seq", int()),
                ("at", string()),
                ("kind", string()),
                ("body", any()),
                ("prev_hash", string()),
                ("hash", string()),
            ])),
        ),
        (
            "get_report_value",
            200,
            j,
            Some(obj(&[
                ("project", string()),
                ("since", string()),
                ("decisions", object()),
                ("over_time", json!({"type": "array"})),
                ("top_rules", json!({"type": "array"})),
                ("blocked_by_kind", json!({"type": "array"})),
                ("escalations", object()),
                ("gate_latency", object()),
                ("judges", json!({"type": "array"})),
                ("adoption", object()),
            ])),
        ),
        (
            "get_label_schemas",
            200,
            j,
            Some(obj(&[("schemas", list(object()))])),
        ),
        (
            "post_label_schemas",
            201,
            j,
            Some(obj(&[("name", string())])),
        ),
        (
            "get_label_schemas_by_name_agreement",
            200,
            j,
            Some(obj(&[("schema", string()), ("queues", list(string()))])),
        ),
        (
            "get_queues",
            200,
            j,
            Some(obj(&[("queues", list(object()))])),
        ),
        (
            "post_queues",
            201,
            j,
            Some(obj(&[("id", string()), ("items", int())])),
        ),
        (
            "get_queues_by_id",
            200,
            j,
            Some(obj(&[
                ("id", string()),
                ("schema", string()),
                ("items", int()),
                ("progress", object()),
            ])),
        ),
        (
            "post_queues_by_id_items",
            200,
            j,
            Some(obj(&[("added", int())])),
        ),
        (
            "get_queues_by_id_items_by_item",
            200,
            j,
            Some(obj(&[("id", string()), ("labels", list(object()))])),
        ),
        (
            "post_queues_by_id_import",
            200,
            j,
            Some(obj(&[
                ("imported", int()),
                ("already_there", int()),
                ("refused", list(object())),
            ])),
        ),
        (
            "post_queues_by_id_next",
            200,
            j,
            Some(obj(&[("done", boolean())])),
        ),
        (
            "get_queues_by_id_labels",
            200,
            j,
            Some(obj(&[("items", list(object()))])),
        ),
        (
            "get_queues_by_id_review",
            200,
            j,
            Some(obj(&[("items", list(object()))])),
        ),
        (
            "get_queues_by_id_agreement",
            200,
            j,
            Some(obj(&[
                ("items_complete", int()),
                ("people", list(object())),
            ])),
        ),
        (
            "get_queues_by_id_export",
            200,
            "application/x-ndjson",
            Some(string()),
        ),
        (
            "post_queues_by_id_items_by_item_label",
            201,
            j,
            Some(obj(&[("item", string()), ("value", any())])),
        ),
        (
            "post_queues_by_id_items_by_item_skip",
            200,
            j,
            Some(obj(&[
                ("item", string()),
                ("skipped", json!({"const": true})),
            ])),
        ),
        (
            "post_queues_by_id_items_by_item_adjudicate",
            201,
            j,
            Some(obj(&[
                ("item", string()),
                ("final", any()),
                ("by", string()),
            ])),
        ),
    ]
}

/// Completes an OpenAPI document: each operation's success answer gets its status,
/// content type and schema from [`responses`] (the status the route really answers with
/// replaces the one described, if they differ), and an operation that reads a query string
/// or a body documents the `400` answering one it cannot read.
pub fn complete(doc: &mut Value) {
    let table = responses();
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for ops in paths.values_mut() {
        for op in ops.as_object_mut().into_iter().flat_map(|o| o.values_mut()) {
            let Some(id) = op.get("operationId").and_then(Value::as_str) else {
                continue;
            };
            let Some((_, status, media, schema)) = table.iter().find(|(i, ..)| *i == id) else {
                continue;
            };
            let takes_input = op.get("requestBody").is_some()
                || op
                    .get("parameters")
                    .and_then(Value::as_array)
                    .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"));
            let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
                continue;
            };
            let described: Vec<String> = responses
                .keys()
                .filter(|k| k.starts_with('2'))
                .cloned()
                .collect();
            let mut answer = described
                .first()
                .and_then(|k| responses.get(k))
                .cloned()
                .unwrap_or_else(|| json!({"description": "done"}));
            for k in described {
                responses.remove(&k);
            }
            match schema {
                Some(s) => answer["content"] = json!({ *media: {"schema": s} }),
                None => {
                    if let Some(a) = answer.as_object_mut() {
                        a.remove("content");
                    }
                }
            }
            responses.insert(status.to_string(), answer);
            if responses.contains_key("401") {
                // A 401 names the accepted scheme in WWW-Authenticate.
                responses.insert(
                    "401".into(),
                    json!({"$ref": "#/components/responses/Unauthenticated"}),
                );
            }
            if takes_input && !responses.contains_key("400") {
                // A query string or body the server cannot read is answered with the one
                // error shape, whatever the operation.
                responses.insert(
                    "400".into(),
                    json!({"$ref": "#/components/responses/Error"}),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `.route(PATH, METHOD(handler)...)` of the router, read from its source: the
    /// routes as written, so a route added without a description fails here.
    fn routes_in_router() -> Vec<(String, String)> {
        let src = include_str!("lib.rs");
        let mut out = Vec::new();
        let mut rest = src;
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            // The call's text, up to its closing parenthesis.
            let mut depth = 1;
            let mut end = 0;
            for (i, c) in rest.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            end = i;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let call = &rest[..end];
            let path = call.split('"').nth(1).expect("a route's path literal");
            for method in ["get", "post", "put", "patch", "delete"] {
                let named = |prefix: &str| {
                    call.match_indices(&format!("{prefix}{method}("))
                        .next()
                        .is_some()
                };
                // `get(...)`, `.post(...)`, `axum::routing::patch(...)`, `delete(...)`
                if named(" ") || named(".") || named("::") || named("\n") || named("(") {
                    out.push((method.to_owned(), path.to_owned()));
                }
            }
        }
        out
    }

    #[test]
    fn every_route_is_described_with_an_answer_schema() {
        let routes = routes_in_router();
        assert!(routes.len() > 50, "{routes:?}");
        assert!(routes.contains(&("patch".into(), "/api/v1/monitors/{id}".into())));
        assert!(routes.contains(&("post".into(), "/api/v1/judges/{name}/versions".into())));
        let doc = crate::api::openapi_document();
        let table = responses();
        let mut described = 0;
        for (method, path) in &routes {
            let op = &doc["paths"][path][method];
            assert!(
                op.is_object(),
                "{method} {path} is not in the OpenAPI description"
            );
            let id = op["operationId"].as_str().unwrap();
            let (_, status, media, schema) = table
                .iter()
                .find(|(i, ..)| *i == id)
                .unwrap_or_else(|| panic!("{id} ({method} {path}) has no answer in schemas.rs"));
            let answer = &op["responses"][status.to_string()];
            assert!(answer.is_object(), "{id}: no {status} answer");
            let reads_query = op["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"));
            if reads_query || op.get("requestBody").is_some() {
                assert!(
                    op["responses"]["400"].is_object(),
                    "{id}: reads input but documents no 400"
                );
            }
            match schema {
                Some(s) => assert_eq!(&answer["content"][*media]["schema"], s, "{id}"),
                None => assert!(answer.get("content").is_none(), "{id}"),
            }
            if let Some(s) = schema {
                // Each schema is itself valid.
                jsonschema::validator_for(s).unwrap_or_else(|e| panic!("{id}: {e}"));
            }
            described += 1;
        }
        // And nothing is described that the router does not serve.
        let ops: usize = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|o| o.as_object().unwrap().len())
            .sum();
        assert_eq!(ops, described, "operations described but not routed");
        assert_eq!(table.len(), described, "schemas of operations not routed");
    }
}
