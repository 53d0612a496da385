//! The API's errors: one table of codes, each with its HTTP status. Every error body is
//! `{"error": {"code": "...", "message": "..."}}` and the message says what was wrong.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Defines [`Code`] and [`ERROR_CODES`] from one table: each variant with its code, HTTP
/// status and meaning.
macro_rules! codes {
    ($($variant:ident = ($code:literal, $status:literal, $meaning:literal),)*) => {
        /// Every error code the API returns.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $($variant,)*
        }

        impl Code {
            /// Every code, in the table's order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code as the API writes it (`invalid_request`).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $code,)*
                }
            }

            /// The HTTP status it is answered with.
            pub const fn status(self) -> u16 {
                match self {
                    $(Code::$variant => $status,)*
                }
            }

            /// What it means, as the OpenAPI description and the README say.
            pub const fn meaning(self) -> &'static str {
                match self {
                    $(Code::$variant => $meaning,)*
                }
            }
        }

        /// Every error code with its status and meaning (served in the OpenAPI description
        /// and listed in the README), made from the same table as [`Code`].
        pub const ERROR_CODES: &[(&str, u16, &str)] = &[$(($code, $status, $meaning),)*];
    };
}

codes! {
    Unauthenticated = ("unauthenticated", 401, "no bearer token, or a token that is unknown or revoked"),
    Forbidden = ("forbidden", 403, "the token's role may not use this route"),
    CsrfFailed = ("csrf_failed", 403, "a request made with the browser session's cookie lacks the session's X-CSRF-Token header"),
    NotFound = ("not_found", 404, "no such route, or no such object in the token's project"),
    MethodNotAllowed = ("method_not_allowed", 405, "the route exists but not with this method"),
    BodyTooLarge = ("body_too_large", 413, "the request body (after decompression) exceeds the server's limit"),
    InvalidBody = ("invalid_body", 400, "the request body ended before its announced length or did not arrive in time"),
    UnsupportedMediaType = ("unsupported_media_type", 415, "the content type or content encoding is not accepted here"),
    InvalidJson = ("invalid_json", 400, "the body is not valid JSON; the message gives line and column"),
    TooDeep = ("too_deep", 400, "the JSON nests deeper than the server's limit"),
    InvalidProtobuf = ("invalid_protobuf", 400, "the body is not a valid OTLP protobuf message"),
    InvalidGzip = ("invalid_gzip", 400, "the body says gzip but does not decompress"),
    InvalidRequest = ("invalid_request", 400, "a field is missing or has the wrong type; the message names it"),
    InvalidTrace = ("invalid_trace", 400, "the trace could not be read in any supported format"),
    InvalidLogs = ("invalid_logs", 400, "the OTLP logs request could not be read; the message names the record and field"),
    InvalidJudge = ("invalid_judge", 400, "a judge definition does not build (unknown kind, or a setting that is unknown, missing or of the wrong type); the message names it"),
    InvalidPolicy = ("invalid_policy", 400, "a policy module tried in place of one of the project's does not compile; the message names the file, line and column"),
    Conflict = ("conflict", 409, "the object is not in a state that allows this (e.g. already decided, or a judge version equal to the latest)"),
    TraceNotHeld = ("trace_not_held", 409, "an append names a trace the gate does not hold (never sent, idle past the limit, or let go and not stored); send the whole trace"),
    OffsetMismatch = ("offset_mismatch", 409, "an append's offset is not the number of messages the gate holds for the trace (a retry, or calls out of order); the message says how many it holds"),
    RateLimited = ("rate_limited", 429, "too many requests of this kind; retry later"),
    StoreUnavailable = ("store_unavailable", 503, "the store did not answer; for the gate, the decision could not be logged and so is not given"),
    Internal = ("internal", 500, "an unexpected failure; the server log has details"),
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error answered to an API client.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: Code,
    pub message: String,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    pub fn request(message: impl Into<String>) -> ApiError {
        ApiError::new(Code::InvalidRequest, message)
    }

    pub fn not_found(what: impl Into<String>) -> ApiError {
        ApiError::new(Code::NotFound, what)
    }
}

impl From<tribunal_store::StoreError> for ApiError {
    fn from(e: tribunal_store::StoreError) -> ApiError {
        tracing::error!(error = %e, "store error");
        ApiError::new(Code::StoreUnavailable, format!("the store failed: {e}"))
    }
}

impl From<crate::audit::AuditError> for ApiError {
    fn from(e: crate::audit::AuditError) -> ApiError {
        ApiError::new(
            Code::StoreUnavailable,
            format!("{e}; the decision is not given, ask again"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code.as_str(), "message": self.message}});
        let mut r = (self.status(), axum::Json(body)).into_response();
        if self.code == Code::Unauthenticated {
            // RFC 9110 §11.6.1: a 401 names the scheme that would be accepted.
            r.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"tribunal\""),
            );
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_map_to_their_status() {
        assert_eq!(Code::ALL.len(), ERROR_CODES.len());
        for (i, (code, &(name, status, meaning))) in Code::ALL.iter().zip(ERROR_CODES).enumerate() {
            assert!(
                ERROR_CODES[i + 1..].iter().all(|(c, _, _)| *c != name),
                "{name} twice"
            );
            assert_eq!(
                (code.as_str(), code.status(), code.meaning()),
                (name, status, meaning)
            );
            assert_eq!(ApiError::new(*code, "x").status().as_u16(), status);
            assert!(StatusCode::from_u16(status).is_ok(), "{name}: {status}");
        }
    }

    /// The README's table of error codes is this table: every row a code with its status
    /// and meaning, every code a row.
    #[test]
    fn the_readme_lists_every_code_and_only_these() {
        let readme = include_str!("../../../README.md");
        let table_rows = readme
            .lines()
            .skip_while(|l| l.trim() != "| code | status | meaning |")
            .skip(2)
            .take_while(|l| l.trim_start().starts_with('|'));
        let mut rows = Vec::new();
        for line in table_rows {
            let cells: Vec<&str> = line
                .trim()
                .trim_matches('|')
                .split('|')
                .map(str::trim)
                .collect();
            let [code, status, meaning] = cells[..] else {
                panic!("README error table row {line:?}: expected three cells");
            };
            let code = code.trim_matches('`').to_owned();
            let status: u16 = status
                .parse()
                .unwrap_or_else(|e| panic!("{line:?}: status {e}"));
            rows.push((code, status, meaning.replace('`', "")));
        }
        assert!(
            !rows.is_empty(),
            "the README has a table headed | code | status | meaning |"
        );
        let table: Vec<(String, u16, String)> = Code::ALL
            .iter()
            .map(|c| (c.as_str().to_owned(), c.status(), c.meaning().to_owned()))
            .collect();
        for row in &rows {
            assert!(
                table.contains(row),
                "README row {row:?} is not a code in error.rs (or differs)"
            );
        }
        for row in &table {
            assert!(
                rows.contains(row),
                "code {row:?} is missing from the README's table"
            );
        }
    }
}
