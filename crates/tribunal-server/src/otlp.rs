//! `POST /v1/traces` and `POST /v1/logs`: the OTLP/HTTP receivers. Protobuf
//! (`application/x-protobuf`) and JSON (`application/json`), optionally gzip-encoded. A trace
//! request is read with the same importer as OTLP files (so a bad request is refused with the
//! field that is wrong), split into spans and written in one transaction before the answer:
//! what is acknowledged is on disk. A logs request keeps the GenAI events among its records
//! (`gen_ai.user.message`, `gen_ai.choice`, `gen_ai.client.inference.operation.details`…)
//! that name a trace and span, as instrumentations that send message content as log events
//! do; they are joined to their span when the trace is assembled. Spans and events of one
//! trace may come in several requests; the trace is judged once it has been quiet for a
//! moment (see `scorer`).

use crate::auth::{Caller, Permission};
use crate::error::{ApiError, Code};
use crate::{body, AppState};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use serde_json::Value;
use std::sync::Arc;
use std::time::Instant;
use tribunal_store::{clock, SpanEventRecord, SpanRecord};

pub const PROTOBUF: &str = "application/x-protobuf";

/// An OTLP protobuf request as OTLP/JSON.
pub fn protobuf_to_json(bytes: &[u8]) -> Result<Value, ApiError> {
    let req = ExportTraceServiceRequest::decode(bytes).map_err(|e| {
        ApiError::new(
            Code::InvalidProtobuf,
            format!("not an OTLP ExportTraceServiceRequest: {e}"),
        )
    })?;
    serde_json::to_value(&req)
        .map_err(|e| ApiError::new(Code::InvalidProtobuf, format!("unreadable span data: {e}")))
}

/// An OTLP protobuf logs request as OTLP/JSON.
pub fn logs_protobuf_to_json(bytes: &[u8]) -> Result<Value, ApiError> {
    let req = ExportLogsServiceRequest::decode(bytes).map_err(|e| {
        ApiError::new(
            Code::InvalidProtobuf,
            format!("not an OTLP ExportLogsServiceRequest: {e}"),
        )
    })?;
    serde_json::to_value(&req)
        .map_err(|e| ApiError::new(Code::InvalidProtobuf, format!("unreadable log data: {e}")))
}

/// `google.rpc.Status`, the error body OTLP/HTTP asks for in the request's encoding
/// (`details` is never sent).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// The gRPC status code closest to an HTTP status.
fn rpc_code(status: StatusCode) -> i32 {
    match status.as_u16() {
        400 | 413 | 415 => 3, // INVALID_ARGUMENT
        401 => 16,            // UNAUTHENTICATED
        403 => 7,             // PERMISSION_DENIED
        404 => 5,             // NOT_FOUND
        429 => 8,             // RESOURCE_EXHAUSTED
        503 => 14,            // UNAVAILABLE
        _ => 13,              // INTERNAL
    }
}

pub async fn handle(
    state: State<Arc<AppState>>,
    caller: Extension<Caller>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let protobuf = body::media_type(&headers).as_deref() == Some(PROTOBUF);
    answer(protobuf, receive(state, caller, headers, body).await)
}

/// `POST /v1/logs`.
pub async fn handle_logs(
    state: State<Arc<AppState>>,
    caller: Extension<Caller>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let protobuf = body::media_type(&headers).as_deref() == Some(PROTOBUF);
    answer(protobuf, receive_logs(state, caller, headers, body).await)
}

fn answer(protobuf: bool, result: Result<Response, ApiError>) -> Response {
    match result {
        Ok(r) => r,
        Err(e) if protobuf => protobuf_error(&e),
        Err(e) => e.into_response(),
    }
}

/// An error as a protobuf client gets it: a `google.rpc.Status` with the error's code and
/// message, at the error's HTTP status.
pub fn protobuf_error(e: &ApiError) -> Response {
    let status = e.status();
    let message = format!("{}: {}", e.code, e.message);
    (
        status,
        [(header::CONTENT_TYPE, PROTOBUF)],
        RpcStatus {
            code: rpc_code(status),
            message,
        }
        .encode_to_vec(),
    )
        .into_response()
}

/// Whether the request is protobuf (else JSON): anything else is a 415.
fn encoding(headers: &HeaderMap) -> Result<bool, ApiError> {
    match body::media_type(headers).as_deref() {
        Some(PROTOBUF) => Ok(true),
        Some("application/json") => Ok(false),
        other => Err(ApiError::new(
            Code::UnsupportedMediaType,
            format!(
                "expected Content-Type {PROTOBUF} or application/json, found {}",
                other.unwrap_or("none")
            ),
        )),
    }
}

/// The answer to an accepted export: an empty response message in the request's encoding.
fn accepted(protobuf: bool, empty_protobuf: Vec<u8>) -> Response {
    if protobuf {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, PROTOBUF)],
            empty_protobuf,
        )
            .into_response()
    } else {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            "{}",
        )
            .into_response()
    }
}

/// An export request's permission, encoding and body, read as OTLP/JSON (`from_protobuf`
/// converts the protobuf form); whether it was protobuf, to answer in kind.
async fn read_export(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    body: Body,
    from_protobuf: fn(&[u8]) -> Result<Value, ApiError>,
) -> Result<(bool, Value), ApiError> {
    caller.require(Permission::Ingest)?;
    state.project(caller)?;
    let protobuf = encoding(headers)?;
    let bytes = body::read(
        headers,
        body,
        state.options.max_body_bytes,
        state.options.body_timeout,
    )
    .await?;
    let doc = if protobuf {
        from_protobuf(&bytes)?
    } else {
        body::parse_json(&bytes, state.options.max_json_depth)?
    };
    Ok((protobuf, doc))
}

/// Stores what `store` writes for the traces `ids` (nothing when there are none), given the
/// project and the agent the caller's token is bound to: a trace the gate holds for another
/// agent is refused first (the store refuses one it holds for another), and once stored, a
/// held trace no agent owned becomes the caller's agent's.
async fn stored_claiming<'a, F, Fut>(
    state: &AppState,
    caller: &'a Caller,
    ids: &[&str],
    store: F,
) -> Result<(), ApiError>
where
    F: FnOnce((&'a str, Option<&'a str>)) -> Fut,
    Fut: std::future::Future<Output = Result<(), tribunal_store::StoreError>>,
{
    held_by_other(state, caller, ids.iter().copied(), false)?;
    if ids.is_empty() {
        return Ok(());
    }
    store((&caller.project, caller.agent.as_deref())).await?;
    // Stored: a trace another agent began here meanwhile keeps its owner.
    let _ = held_by_other(state, caller, ids.iter().copied(), true);
    Ok(())
}

/// Refuses spans or events a token bound to an agent sends for a trace the gate holds for
/// another agent (not yet in the store, whose insert checks the rest); with `take` (once
/// they are stored), a held trace no agent owned becomes the token's agent's.
fn held_by_other<'a>(
    state: &AppState,
    caller: &Caller,
    ids: impl Iterator<Item = &'a str>,
    take: bool,
) -> Result<(), ApiError> {
    let Some(agent) = caller.agent.as_deref() else {
        return Ok(());
    };
    for id in ids {
        state
            .sessions
            .check_owner(&caller.project, id, (Some(agent), take))?;
    }
    Ok(())
}

async fn receive_logs(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (protobuf, doc) =
        read_export(&state, &caller, &headers, body, logs_protobuf_to_json).await?;
    let (events, _other) = tribunal_formats::otlp::split_logs(&doc)
        .map_err(|e| ApiError::new(Code::InvalidLogs, e.to_string()))?;
    let records: Vec<SpanEventRecord> = events
        .into_iter()
        .map(|e| {
            let body = e.event.to_string();
            let time_ns = e
                .event
                .get("timeUnixNano")
                .and_then(|t| t.as_u64().or_else(|| t.as_str()?.parse().ok()))
                .and_then(|t| i64::try_from(t).ok())
                .unwrap_or(0);
            SpanEventRecord {
                event_key: crate::audit::digest(body.as_bytes()),
                trace_id: e.trace_id,
                span_id: e.span_id,
                time_ns,
                body,
            }
        })
        .collect();
    let ids: Vec<&str> = records.iter().map(|r| r.trace_id.as_str()).collect();
    let (at, at_ms) = clock::now_both();
    stored_claiming(&state, &caller, &ids, |owner| {
        state.store.insert_span_events(owner, &records, &at, at_ms)
    })
    .await?;
    state
        .metrics
        .log_events_ingested
        .add(&[("project", &caller.project)], records.len() as u64);
    Ok(accepted(
        protobuf,
        ExportLogsServiceResponse::default().encode_to_vec(),
    ))
}

async fn receive(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (protobuf, doc) = read_export(&state, &caller, &headers, body, protobuf_to_json).await?;
    let started = Instant::now();
    let parts = tribunal_formats::otlp::split_request(&doc)
        .map_err(|e| ApiError::new(Code::InvalidTrace, e.to_string()))?;
    // Read the whole request as traces now, so what is stored can be judged later.
    tribunal_formats::otlp::import_request(&doc)
        .map_err(|e| ApiError::new(Code::InvalidTrace, e.to_string()))?;
    let records: Vec<SpanRecord> = parts
        .into_iter()
        .map(|p| SpanRecord {
            trace_id: p.trace_id,
            span_id: p.span_id,
            body: p.body.to_string(),
        })
        .collect();
    let ids: Vec<&str> = records.iter().map(|r| r.trace_id.as_str()).collect();
    let (at, at_ms) = clock::now_both();
    stored_claiming(&state, &caller, &ids, |owner| {
        state.store.insert_spans(owner, &records, &at, at_ms)
    })
    .await?;
    let project = [("project", caller.project.as_str())];
    state
        .metrics
        .spans_ingested
        .add(&project, records.len() as u64);
    state.metrics.otlp_requests.add(&project, 1);
    state.metrics.ingest_latency.observe(started.elapsed());
    Ok(accepted(
        protobuf,
        ExportTraceServiceResponse::default().encode_to_vec(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.into())),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn protobuf_requests_read_like_their_json_form() {
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", "shop")],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        trace_id: vec![0xab; 16],
                        span_id: vec![0x01; 8],
                        name: "chat gpt-4o".into(),
                        kind: 3,
                        start_time_unix_nano: 1_700_000_000_000_000_000,
                        end_time_unix_nano: 1_700_000_000_500_000_000,
                        attributes: vec![
                            kv("gen_ai.operation.name", "chat"),
                            kv("gen_ai.request.model", "gpt-4o"),
                        ],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let doc = protobuf_to_json(&req.encode_to_vec()).unwrap();
        let traces = tribunal_formats::otlp::import_request(&doc).unwrap();
        assert_eq!(traces.len(), 1);
        assert_eq!(traces[0].id, "ab".repeat(16));
        assert_eq!(traces[0].spans[0].name, "chat gpt-4o");
        assert_eq!(traces[0].spans[0].duration_ms(), Some(500.0));
        let parts = tribunal_formats::otlp::split_request(&doc).unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].span_id, "01".repeat(8));
        let again = tribunal_formats::otlp::import_request(&tribunal_formats::otlp::assemble(
            parts.iter().map(|p| &p.body),
        ))
        .unwrap();
        assert_eq!(again, traces);
        assert_eq!(
            protobuf_to_json(b"\xff\xff\xff").unwrap_err().code,
            Code::InvalidProtobuf
        );
    }
}
