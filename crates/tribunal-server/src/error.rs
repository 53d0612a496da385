//! The API's errors: one table of codes, each with its HTTP status. Every error body is
//! `{"error": {"code": "...", "message": "...", "type": "...", "link": "..."}}`: the message
//! says what was wrong, `type` the kind of error (`invalid_request`, `auth`, `system`,
//! `internal`) and `link` where the code is described (`/api/v1/errors/{code}`).

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
    Forbidden = ("forbidden", 403, "the token's role may not use this route, or may not set a field it sent (the message names it)"),
    AgentMismatch = ("agent_mismatch", 403, "the gate request's context names another agent than the one its token is bound to"),
    TraceOwned = ("trace_owned", 403, "the trace id of a gate request, a span or an event names a trace begun by another agent's token; a token bound to an agent may send and extend only its own agent's traces"),
    CsrfFailed = ("csrf_failed", 403, "a request made with the browser session's cookie lacks the session's X-CSRF-Token header"),
    NotFound = ("not_found", 404, "no such route, or no such object in the token's project"),
    MethodNotAllowed = ("method_not_allowed", 405, "the route exists but not with this method"),
    BodyTooLarge = ("body_too_large", 413, "the request body (after decompression) exceeds the server's limit"),
    InvalidBody = ("invalid_body", 400, "the request body ended before its announced length or did not arrive in time"),
    UnsupportedMediaType = ("unsupported_media_type", 415, "the content type or content encoding is not accepted here"),
    InvalidJson = ("invalid_json", 400, "the body is not valid JSON, or an object in it names a key twice (JSON readers differ on which value counts, so the gate does not judge such a call); the message gives the key, line and column"),
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
    OffsetMismatch = ("offset_mismatch", 409, "an append's offset is not the number of messages the gate holds for the trace (a retry, or calls out of order; the message says how many it holds), or another server extended the trace since this one read it (send it whole)"),
    NotEnoughLabels = ("not_enough_labels", 422, "too few labels, labels of one class only, or labels of another type than the judge's output, to align or calibrate it; the message says how many more are needed"),
    RateLimited = ("rate_limited", 429, "too many requests of this kind; retry later"),
    AlignmentFailed = ("alignment_failed", 502, "aligning a judge could not finish: its model or the reflection model failed or answered unusably; the message says which"),
    StoreUnavailable = ("store_unavailable", 503, "the store did not answer; for the gate, the decision could not be logged and so is not given"),
    Internal = ("internal", 500, "an unexpected failure; the server log has details"),
}

impl Code {
    /// The kind of error: the request is wrong (`invalid_request`), the caller may not
    /// (`auth`), the server cannot now (`system`), or it failed (`internal`).
    pub const fn kind(self) -> &'static str {
        match self {
            Code::Unauthenticated
            | Code::Forbidden
            | Code::AgentMismatch
            | Code::TraceOwned
            | Code::CsrfFailed => "auth",
            Code::StoreUnavailable | Code::AlignmentFailed => "system",
            Code::Internal => "internal",
            _ => "invalid_request",
        }
    }

    /// The code of a name as the API writes it.
    pub fn parse(name: &str) -> Option<Code> {
        Code::ALL.iter().copied().find(|c| c.as_str() == name)
    }

    /// The code an HTTP error status stands for when nothing more is known (an error
    /// answered by the HTTP layer rather than by a handler).
    pub fn of_status(status: u16) -> Code {
        match status {
            400 | 422 => Code::InvalidRequest,
            401 => Code::Unauthenticated,
            403 => Code::Forbidden,
            404 => Code::NotFound,
            405 => Code::MethodNotAllowed,
            409 => Code::Conflict,
            413 => Code::BodyTooLarge,
            415 => Code::UnsupportedMediaType,
            429 => Code::RateLimited,
            503 => Code::StoreUnavailable,
            _ => Code::Internal,
        }
    }

    /// Where the code is described: a route of the API that needs no token.
    pub fn link(self) -> String {
        format!("/api/v1/errors/{}", self.as_str())
    }

    /// The description served at [`Code::link`].
    pub fn describe(self) -> serde_json::Value {
        json!({"code": self.as_str(), "status": self.status(), "type": self.kind(),
               "meaning": self.meaning(), "link": self.link()})
    }
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
        if let tribunal_store::StoreError::Owned { trace_id } = &e {
            return ApiError::new(
                Code::TraceOwned,
                format!(
                    "trace {trace_id}: begun by another agent's token; a token bound to an agent sends spans and events only of its own agent's traces (nothing of this request was stored)"
                ),
            );
        }
        // The database's own words (its name, statements, addresses) go to the server's
        // log, not to whoever called.
        tracing::error!(error = %e, "store error");
        ApiError::new(
            Code::StoreUnavailable,
            format!(
                "the store failed ({}); try again",
                public_reason(&e.to_string())
            ),
        )
    }
}

/// What a caller is told of a store failure described by `text`: that the store's file was
/// moved or deleted, which the operator must act on, or else only where to look.
fn public_reason(text: &str) -> &'static str {
    if text.contains(tribunal_store::MOVED) {
        tribunal_store::MOVED
    } else {
        "the server's log says why"
    }
}

impl From<crate::audit::AuditError> for ApiError {
    fn from(e: crate::audit::AuditError) -> ApiError {
        if let crate::audit::AuditError::Stale(trace_id) = &e {
            return ApiError::new(
                Code::OffsetMismatch,
                format!(
                    "offset: trace {trace_id:?} was extended through another server since this one read it; the decision is not given: send the trace whole"
                ),
            );
        }
        let said = match &e {
            crate::audit::AuditError::Store(text) => {
                tracing::error!(error = %e, "decision log error");
                format!(
                    "the decision log could not be written ({})",
                    public_reason(text)
                )
            }
            crate::audit::AuditError::Closed | crate::audit::AuditError::Stale(_) => e.to_string(),
        };
        ApiError::new(
            Code::StoreUnavailable,
            format!("{said}; the decision is not given, ask again"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {
            "code": self.code.as_str(),
            "message": self.message,
            "type": self.code.kind(),
            "link": self.code.link(),
        }});
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

    #[test]
    fn every_error_body_has_message_code_type_and_link() {
        for code in Code::ALL {
            let r = ApiError::new(*code, "what was wrong").into_response();
            assert_eq!(r.status().as_u16(), code.status());
            let body = futures_body(r);
            let e = &body["error"];
            assert_eq!(e["code"], code.as_str());
            assert_eq!(e["message"], "what was wrong");
            assert!(
                ["invalid_request", "auth", "system", "internal"]
                    .contains(&e["type"].as_str().unwrap()),
                "{body}"
            );
            assert_eq!(e["link"], format!("/api/v1/errors/{code}"));
            assert_eq!(Code::parse(code.as_str()), Some(*code));
        }
        for status in [400, 401, 403, 404, 405, 409, 413, 415, 422, 429, 500, 503] {
            let c = Code::of_status(status);
            assert_eq!(
                c.status(),
                if status == 422 { 400 } else { status },
                "{status}"
            );
        }
    }

    fn futures_body(r: Response) -> serde_json::Value {
        let bytes = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(axum::body::to_bytes(r.into_body(), 1 << 16))
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
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
