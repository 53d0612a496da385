//! The API's errors: one table of codes, each with its HTTP status. Every error body is
//! `{"error": {"code": "...", "message": "..."}}` and the message says what was wrong.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Every error code the API returns, with its status and meaning (served in the OpenAPI
/// description and listed in the README).
pub const ERROR_CODES: &[(&str, u16, &str)] = &[
    (
        "unauthenticated",
        401,
        "no bearer token, or a token that is unknown or revoked",
    ),
    ("forbidden", 403, "the token's role may not use this route"),
    (
        "csrf_failed",
        403,
        "a request made with the browser session's cookie lacks the session's X-CSRF-Token header",
    ),
    (
        "not_found",
        404,
        "no such route, or no such object in the token's project",
    ),
    (
        "method_not_allowed",
        405,
        "the route exists but not with this method",
    ),
    (
        "body_too_large",
        413,
        "the request body (after decompression) exceeds the server's limit",
    ),
    (
        "invalid_body",
        400,
        "the request body ended before its announced length or did not arrive in time",
    ),
    (
        "unsupported_media_type",
        415,
        "the content type or content encoding is not accepted here",
    ),
    (
        "invalid_json",
        400,
        "the body is not valid JSON; the message gives line and column",
    ),
    (
        "too_deep",
        400,
        "the JSON nests deeper than the server's limit",
    ),
    (
        "invalid_protobuf",
        400,
        "the body is not a valid OTLP protobuf message",
    ),
    (
        "invalid_gzip",
        400,
        "the body says gzip but does not decompress",
    ),
    (
        "invalid_request",
        400,
        "a field is missing or has the wrong type; the message names it",
    ),
    (
        "invalid_trace",
        400,
        "the trace could not be read in any supported format",
    ),
    (
        "invalid_logs",
        400,
        "the OTLP logs request could not be read; the message names the record and field",
    ),
    (
        "invalid_judge",
        400,
        "a judge definition does not build (unknown kind, or a setting that is unknown, missing or of the wrong type); the message names it",
    ),
    (
        "conflict",
        409,
        "the object is not in a state that allows this (e.g. already decided, or a judge version equal to the latest)",
    ),
    (
        "trace_not_held",
        409,
        "an append names a trace the gate does not hold (never sent, idle past the limit, or let go and not stored); send the whole trace",
    ),
    (
        "offset_mismatch",
        409,
        "an append's offset is not the number of messages the gate holds for the trace (a retry, or calls out of order); the message says how many it holds",
    ),
    (
        "rate_limited",
        429,
        "too many requests of this kind; retry later",
    ),
    (
        "store_unavailable",
        503,
        "the store did not answer; for the gate, the decision could not be logged and so is not given",
    ),
    (
        "internal",
        500,
        "an unexpected failure; the server log has details",
    ),
];

/// An error answered to an API client.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(code: &'static str, message: impl Into<String>) -> ApiError {
        debug_assert!(ERROR_CODES.iter().any(|(c, _, _)| *c == code));
        ApiError {
            code,
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        let code = ERROR_CODES
            .iter()
            .find(|(c, _, _)| *c == self.code)
            .map_or(500, |(_, s, _)| *s);
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    pub fn request(message: impl Into<String>) -> ApiError {
        ApiError::new("invalid_request", message)
    }

    pub fn not_found(what: impl Into<String>) -> ApiError {
        ApiError::new("not_found", what)
    }
}

impl From<tribunal_store::StoreError> for ApiError {
    fn from(e: tribunal_store::StoreError) -> ApiError {
        tracing::error!(error = %e, "store error");
        ApiError::new("store_unavailable", format!("the store failed: {e}"))
    }
}

impl From<crate::audit::AuditError> for ApiError {
    fn from(e: crate::audit::AuditError) -> ApiError {
        ApiError::new(
            "store_unavailable",
            format!("{e}; the decision is not given, ask again"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        (self.status(), axum::Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_map_to_their_status() {
        for (i, (code, status, _)) in ERROR_CODES.iter().enumerate() {
            assert!(
                ERROR_CODES[i + 1..].iter().all(|(c, _, _)| c != code),
                "{code} twice"
            );
            assert_eq!(ApiError::new(code, "x").status().as_u16(), *status);
        }
    }
}
