//! The policies page's API: the project's policy modules with their text, the rules they
//! raise with severity and description, the Rego unit tests (the pack's and the project's
//! `*_test.rego` files) run on request, and a changed module tried on stored traces by
//! replaying them (see `replay.rs`) before the change is written anywhere.

use crate::auth::{Caller, Permission};
use crate::error::{ApiError, Code};
use crate::project::ProjectSpec;
use crate::{judges, replay, AppState};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use tribunal_engine::{Config, Evaluator};
use tribunal_policy::{pack, PolicySource};

/// Traces a try replays at most.
const MAX_TRY_TRACES: i64 = 5000;

fn config_of(spec: &ProjectSpec) -> Result<Config, ApiError> {
    match &spec.config {
        Some(p) => Config::load(p).map_err(|e| {
            ApiError::new(
                Code::Conflict,
                format!("the project's configuration no longer loads: {e}"),
            )
        }),
        None => Ok(Config::default_with_hash()),
    }
}

/// The policy folders of a project: the configuration's, then the server's extra ones.
fn folders(cfg: &Config, spec: &ProjectSpec) -> Vec<PathBuf> {
    cfg.policies
        .paths
        .iter()
        .map(|p| cfg.base_dir.join(p))
        .chain(spec.policies.iter().cloned())
        .collect()
}

/// Every `"rule": "..."` a module raises, with the `"severity"` beside it, and the
/// module's leading comment as its description.
pub fn rules_of(source: &PolicySource) -> Vec<Value> {
    let description: String = source
        .text
        .lines()
        .take_while(|l| l.trim_start().starts_with('#'))
        .map(|l| l.trim_start().trim_start_matches('#').trim())
        .collect::<Vec<_>>()
        .join(" ");
    let quoted_after = |text: &str, key: &str| -> Option<String> {
        let at = text.find(key)? + key.len();
        let rest = text[at..].trim_start().strip_prefix(':')?.trim_start();
        let rest = rest.strip_prefix('"')?;
        Some(rest[..rest.find('"')?].to_owned())
    };
    let mut out: Vec<Value> = Vec::new();
    let text = &source.text;
    let mut from = 0;
    while let Some(i) = text[from..].find("\"rule\"") {
        let start = from + i;
        from = start + 6;
        let Some(rule) = quoted_after(&text[start..], "\"rule\"") else {
            continue;
        };
        // The severity within the same object literal (before its closing brace).
        let end = text[start..].find('}').map_or(text.len(), |e| start + e);
        let severity = quoted_after(&text[start..end], "\"severity\"");
        if out.iter().any(|r| r["rule"] == rule.as_str()) {
            continue;
        }
        out.push(json!({
            "rule": rule,
            "severity": severity,
            "description": description,
            "file": source.path,
        }));
    }
    out
}

/// `GET /api/v1/policies/modules`: the enforced modules with their text and rules, the
/// test files found beside them, and the shadow policies' status.
pub async fn modules(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let p = state.project(&caller)?;
    let rt = p.runtime();
    let set = rt.evaluator().policies();
    let modules: Vec<Value> = set
        .sources()
        .iter()
        .map(|s| {
            json!({
                "path": s.path,
                "builtin": s.path.starts_with(pack::PREFIX),
                "package": tribunal_policy::testing::package_of(&s.text),
                "text": s.text,
                "rules": rules_of(s),
            })
        })
        .collect();
    let rules: Vec<Value> = set.sources().iter().flat_map(rules_of).collect();
    Ok(Json(json!({
        "version": set.version(),
        "loaded_at": rt.loaded_at,
        "modules": modules,
        "rules": rules,
        "shadow": rt.shadow().map(|s| json!({
            "version": s.version(),
            "gates": s.gates().collect::<Vec<_>>(),
            "files": s.sources().iter().filter(|x| !x.path.starts_with(pack::PREFIX)).map(|x| x.path.as_str()).collect::<Vec<_>>(),
            "enforced": false,
        })),
    })))
}

/// `POST /api/v1/policies/test`: runs the pack's Rego unit tests and the project's
/// `*_test.rego` files against its policies.
pub async fn run_tests(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let spec = state.project(&caller)?.spec.clone();
    let outcomes = tokio::task::spawn_blocking(move || -> Result<_, ApiError> {
        let cfg = config_of(&spec)?;
        let mut policies: Vec<PolicySource> = Vec::new();
        if cfg.policies.builtin {
            policies.extend(pack::sources());
        }
        let mut tests = pack::test_sources();
        let mut data = Vec::new();
        if !cfg.policies.data.is_empty() {
            data.push(serde_json::to_value(&cfg.policies.data).unwrap_or(Value::Null));
        }
        for dir in folders(&cfg, &spec) {
            let d = tribunal_policy::load_dir(&dir)
                .map_err(|e| ApiError::new(Code::Conflict, format!("policies: {e}")))?;
            tests.extend(d.sources);
            data.extend(d.data.into_iter().map(|(_, v)| v));
        }
        tribunal_policy::run_policy_tests(policies, tests, &data)
            .map_err(|e| ApiError::new(Code::InvalidPolicy, format!("policy tests: {e}")))
    })
    .await
    .map_err(|e| ApiError::new(Code::Internal, format!("running the tests failed: {e}")))??;
    let failed = outcomes.iter().filter(|o| !o.passed).count();
    Ok(Json(json!({
        "passed": outcomes.len() - failed,
        "failed": failed,
        "tests": outcomes,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TryBody {
    /// The module's path as `GET /api/v1/policies/modules` names it (a new path adds one).
    path: String,
    text: String,
    /// Most recent stored traces to replay (default 500).
    limit: Option<i64>,
}

/// `POST /api/v1/policies/try`: the project's policies with one module changed, replayed
/// over its most recent stored traces: which decisions would change. Nothing is written.
pub async fn try_change(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Admin)?;
    let b: TryBody = judges::json_body(
        &state,
        &headers,
        body,
        "{\"path\": string, \"text\": string, \"limit\"?: integer}",
    )
    .await?;
    if b.path.trim().is_empty() {
        return Err(ApiError::request("path: expected the module's path"));
    }
    let limit = b.limit.unwrap_or(500);
    if !(1..=MAX_TRY_TRACES).contains(&limit) {
        return Err(ApiError::request(format!(
            "limit: expected 1 to {MAX_TRY_TRACES}, found {limit}"
        )));
    }
    let p = state.project(&caller)?;
    let spec = p.spec.clone();
    let rt = p.runtime();
    let source = PolicySource {
        path: b.path.clone(),
        text: b.text,
    };
    let evaluator = tokio::task::spawn_blocking(move || -> Result<Arc<Evaluator>, ApiError> {
        let cfg = config_of(&spec)?;
        let policies = cfg
            .build_policies_with(&spec.policies, Some(&source))
            .map_err(|e| ApiError::new(Code::InvalidPolicy, e.to_string()))?;
        let judges = cfg.build_judges().map_err(|e| {
            ApiError::new(
                Code::Conflict,
                format!("the project's judges no longer build: {e}"),
            )
        })?;
        Ok(Evaluator::new(
            judges,
            policies,
            rt.evaluator().context().clone(),
        ))
    })
    .await
    .map_err(|e| ApiError::new(Code::Internal, format!("building the policies failed: {e}")))??;
    let report = replay::replay(&state.store, &caller.project, &evaluator, limit).await?;
    Ok(Json(json!({
        "path": b.path,
        "policy_version": report.policy_version,
        "enforced_version": state.project(&caller)?.runtime().policy_version(),
        "traces": report.traces,
        "unchanged": report.unchanged,
        "skipped": report.skipped,
        "transitions": report.transitions().into_iter().map(|(k, n)| json!({"change": k, "count": n})).collect::<Vec<_>>(),
        "changes": report.changes,
    })))
}

/// The policy routes for the OpenAPI description.
pub fn openapi_paths() -> serde_json::Map<String, Value> {
    let err = json!({"$ref": "#/components/responses/Error"});
    let doc = json!({
        "/api/v1/policies/modules": {"get": {"summary": "The enforced policy modules with their text and the rules each raises ({rule, severity, description, file}), every rule, and the shadow policies' status", "responses": {"200": {"description": "{version, loaded_at, modules, rules, shadow}"}, "401": err, "403": err}}},
        "/api/v1/policies/test": {"post": {"summary": "Run the pack's Rego unit tests and the project's *_test.rego files: {passed, failed, tests: [{name, file, passed, detail}]}", "responses": {"200": {"description": "results"}, "400": err, "401": err, "403": err, "409": err}}},
        "/api/v1/policies/try": {"post": {"summary": "Try a changed module (role: admin): the project's policies with the module at `path` replaced by `text` (or added) replayed over its `limit` (default 500) most recent stored traces: {policy_version, enforced_version, traces, unchanged, skipped, transitions: [{change, count}], changes: [{trace_id, source, before, after, reasons}]}; a module that does not compile is invalid_policy",
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["path", "text"], "properties": {"path": {"type": "string"}, "text": {"type": "string"}, "limit": {"type": "integer", "minimum": 1, "maximum": 5000}}}}}},
            "responses": {"200": {"description": "the replay"}, "400": err, "401": err, "403": err, "409": err}}}
    });
    match doc {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_with_severity_and_description() {
        let s = PolicySource {
            path: "x.rego".into(),
            text: "# Refunds: large ones wait.\npackage mine\nviolation contains v if {\n v := {\"rule\": \"mine.big\", \"severity\": \"escalate\", \"message\": \"m\"}\n}\nviolation contains {\"rule\":\"mine.two\",\"message\":\"n\"} if false\n".into(),
        };
        let r = rules_of(&s);
        assert_eq!(r.len(), 2, "{r:?}");
        assert_eq!(r[0]["rule"], "mine.big");
        assert_eq!(r[0]["severity"], "escalate");
        assert_eq!(r[0]["description"], "Refunds: large ones wait.");
        assert_eq!(r[1]["rule"], "mine.two");
        assert_eq!(r[1]["severity"], Value::Null);
        let pack_rules: Vec<Value> = pack::sources().iter().flat_map(rules_of).collect();
        assert!(pack_rules
            .iter()
            .any(|r| r["rule"] == "c4.secret_in_arguments" && r["severity"] == "block"));
        // A severity the pack reads from its data is not written beside the rule.
        assert!(pack_rules
            .iter()
            .any(|r| r["rule"] == "c6.dangerous_command" && r["severity"].is_null()));
    }
}
