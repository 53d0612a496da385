//! Request bodies: size limit (also after gzip), content type and encoding checks, and JSON
//! parsing with a depth limit, each failure a 4xx with its own code.

use crate::error::{ApiError, Code};
use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap};
use http_body_util::BodyExt;
use serde_json::Value;
use std::io::Read;
use std::time::Duration;

/// The body, read up to `limit` bytes within `timeout` and gunzipped when
/// `Content-Encoding: gzip`. A body that ends early (the client closed the connection) or
/// does not arrive in time is `invalid_body`; one over the limit is `body_too_large`.
pub async fn read(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, ApiError> {
    let limited = http_body_util::Limited::new(body, limit);
    let raw = match tokio::time::timeout(timeout, limited.collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(ApiError::new(
                Code::BodyTooLarge,
                format!("the request body exceeds {limit} bytes"),
            ))
        }
        Ok(Err(e)) => {
            return Err(ApiError::new(
                Code::InvalidBody,
                format!("the request body could not be read: {e}"),
            ))
        }
        Err(_) => {
            return Err(ApiError::new(
                Code::InvalidBody,
                format!(
                    "the request body did not arrive within {} ms",
                    timeout.as_millis()
                ),
            ))
        }
    };
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    match encoding.as_str() {
        "" | "identity" => Ok(raw),
        "gzip" | "x-gzip" => gunzip(&raw, limit),
        other => Err(ApiError::new(
            Code::UnsupportedMediaType,
            format!("Content-Encoding {other:?} is not supported; use gzip or none"),
        )),
    }
}

fn gunzip(raw: &[u8], limit: usize) -> Result<Bytes, ApiError> {
    let mut out = Vec::with_capacity(raw.len() * 4);
    let mut dec = flate2::read::GzDecoder::new(raw).take(limit as u64 + 1);
    dec.read_to_end(&mut out)
        .map_err(|e| ApiError::new(Code::InvalidGzip, format!("the gzip body is corrupt: {e}")))?;
    if out.len() > limit {
        return Err(ApiError::new(
            Code::BodyTooLarge,
            format!("the request body exceeds {limit} bytes after decompression"),
        ));
    }
    Ok(Bytes::from(out))
}

/// The media type without parameters, lower-cased; `None` when absent.
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
}

/// Requires a JSON content type (absent is accepted as JSON).
pub fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    match media_type(headers).as_deref() {
        None | Some("application/json") => Ok(()),
        Some(t) if t.ends_with("+json") => Ok(()),
        Some(t) => Err(ApiError::new(
            Code::UnsupportedMediaType,
            format!("expected Content-Type application/json, found {t}"),
        )),
    }
}

/// Parses JSON after checking that it nests at most `max_depth` levels.
pub fn parse_json(bytes: &[u8], max_depth: usize) -> Result<Value, ApiError> {
    check_depth(bytes, max_depth)?;
    parse_json_checked(bytes)
}

/// Parses JSON whose nesting [`check_depth`] has checked. An object that names a key twice
/// is refused as JSON that does not read ([`tribunal_core::json`]).
pub fn parse_json_checked(bytes: &[u8]) -> Result<Value, ApiError> {
    tribunal_core::json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            Code::InvalidJson,
            format!("line {} column {}: {e}", e.line(), e.column()),
        )
    })
}

/// A JSON request body read as every route reads one: a JSON content type (absent is taken
/// as JSON, anything else is `415 unsupported_media_type`), at most `LIMIT` bytes and never
/// more than `--max-body-bytes` (`413 body_too_large`, also after gzip), arriving within
/// `--body-timeout-ms` (`400 invalid_body`), nesting at most `--max-json-depth` levels.
/// Handlers take this (or call [`json`]) instead of axum's `Json`, which reads any size
/// for as long as the client takes. [`JsonBody::to`] reads the document as the route's
/// type.
pub struct JsonBody<const LIMIT: usize = { usize::MAX }>(pub Value);

impl<const LIMIT: usize> axum::extract::FromRequest<std::sync::Arc<crate::AppState>>
    for JsonBody<LIMIT>
{
    type Rejection = ApiError;

    async fn from_request(
        req: axum::extract::Request,
        state: &std::sync::Arc<crate::AppState>,
    ) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        document(state, &parts.headers, body, LIMIT)
            .await
            .map(JsonBody)
    }
}

impl<const LIMIT: usize> JsonBody<LIMIT> {
    /// The document as a `T`; `shape` is shown when it does not fit.
    pub fn to<T: serde::de::DeserializeOwned>(self, shape: &str) -> Result<T, ApiError> {
        shaped(self.0, shape)
    }
}

/// Reads a JSON body as [`JsonBody`] does (`limit` capped by `--max-body-bytes`).
pub async fn document(
    state: &crate::AppState,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Value, ApiError> {
    require_json(headers)?;
    let limit = limit.min(state.options.max_body_bytes);
    let bytes = read(headers, body, limit, state.options.body_timeout).await?;
    parse_json(&bytes, state.options.max_json_depth)
}

/// Reads a JSON body of type `T` as [`JsonBody`] does; `shape` is shown when it does not fit.
pub async fn json<T: serde::de::DeserializeOwned>(
    state: &crate::AppState,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    shape: &str,
) -> Result<T, ApiError> {
    shaped(document(state, headers, body, limit).await?, shape)
}

/// `doc` as a `T`; an error names the member at fault (`overlap: invalid type: …`) and
/// shows `shape`.
pub fn shaped<T: serde::de::DeserializeOwned>(doc: Value, shape: &str) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(doc).map_err(|e| {
        let at = e.path().to_string();
        let e = e.into_inner().to_string();
        // The root has no name; an unknown member already names itself.
        let last = at.rsplit('.').next().unwrap_or_default();
        let named = at == "." || e.contains(&format!("`{last}`"));
        if named {
            ApiError::request(format!("{e}; expected {shape}"))
        } else {
            ApiError::request(format!("{at}: {e}; expected {shape}"))
        }
    })
}

/// Counts bracket nesting outside strings, without parsing. Inside a string it jumps to the
/// next quote or backslash.
pub fn check_depth(bytes: &[u8], max_depth: usize) -> Result<(), ApiError> {
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                // Skip the string: to its closing quote, stepping over escapes.
                i += 1;
                loop {
                    match bytes
                        .get(i..)
                        .and_then(|rest| memchr::memchr2(b'"', b'\\', rest))
                    {
                        Some(k) if bytes[i + k] == b'\\' => i += k + 2,
                        Some(k) => {
                            i += k;
                            break;
                        }
                        // Unterminated: the parser reports it.
                        None => return Ok(()),
                    }
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > max_depth {
                    return Err(ApiError::new(
                        Code::TooDeep,
                        format!("the JSON nests deeper than {max_depth} levels"),
                    ));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_only_structure() {
        assert!(parse_json(br#"{"a": "[[[[[[[[[["}"#, 2).is_ok());
        assert!(parse_json(br#"{"a": "\"[[[["}"#, 2).is_ok());
        assert_eq!(parse_json(b"[[[1]]]", 2).unwrap_err().code, Code::TooDeep);
        // Brackets inside strings, escaped quotes and backslashes do not count.
        assert!(check_depth(br#"[{"a": "[[[[\"{{{", "b": "\\", "c": ["x\\\"]]]"]}]"#, 3).is_ok());
        assert_eq!(
            check_depth(br#"[{"a": "\\"}, [[["deep"]]]]"#, 3)
                .unwrap_err()
                .code,
            Code::TooDeep
        );
        // Ends inside a string, or on an escape: no panic; the parser says what is wrong.
        for text in [&br#"["abc"#[..], br#"["abc\"#, br#"["\"#, br#"\"#] {
            assert!(check_depth(text, 2).is_ok());
            assert_eq!(parse_json(text, 2).unwrap_err().code, Code::InvalidJson);
        }
        assert!(parse_json(b"[[[1]]]", 3).is_ok());
        assert_eq!(parse_json(b"{", 3).unwrap_err().code, Code::InvalidJson);
    }

    #[test]
    fn gzip_bombs_stop_at_the_limit() {
        use flate2::write::GzEncoder;
        use std::io::Write;
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&vec![b' '; 1 << 20]).unwrap();
        let gz = enc.finish().unwrap();
        assert_eq!(gunzip(&gz, 1000).unwrap_err().code, Code::BodyTooLarge);
        assert_eq!(gunzip(&gz, 2 << 20).unwrap().len(), 1 << 20);
        assert_eq!(
            gunzip(b"not gzip", 1000).unwrap_err().code,
            Code::InvalidGzip
        );
    }
}
