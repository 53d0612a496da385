//! The web UI's side of the server: its files (`GET /`, `GET /ui/*`, from `tribunal-web`)
//! served with a content security policy, and browser sessions. A person signs in with an
//! API token (`POST /api/v1/sessions`); the answer sets an HttpOnly, SameSite=Strict cookie
//! naming a session held here, and gives a CSRF token that every state-changing request made
//! with the cookie must repeat in `X-CSRF-Token`. Agents' tokens cannot sign in: agents have
//! no UI. A session ends when it is signed out, when its token is revoked (checked on every
//! request), or after `SESSION_HOURS`.

use crate::auth::{self, Caller};
use crate::error::{ApiError, Code};
use crate::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The cookie that names a browser session.
pub const COOKIE: &str = "tribunal_session";
/// How long a session lasts.
pub const SESSION_HOURS: u64 = 12;

/// A signed-in browser.
#[derive(Debug, Clone)]
struct WebSession {
    /// The hash of the token it signed in with (checked again on every request, so a
    /// revoked token ends its sessions).
    token_hash: String,
    caller: Caller,
    csrf: String,
    expires: Instant,
}

/// Browser sessions by the hash of their cookie value.
#[derive(Debug, Default)]
pub struct WebSessions(Mutex<HashMap<String, WebSession>>);

impl WebSessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, WebSession>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `GET /` and `GET /ui/*`: the UI's files.
pub async fn asset(uri: Uri) -> Response {
    let Some(a) = tribunal_web::asset(uri.path()) else {
        return ApiError::not_found("no such file").into_response();
    };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, a.content_type),
            (
                header::CONTENT_SECURITY_POLICY,
                tribunal_web::CONTENT_SECURITY_POLICY,
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        a.body,
    )
        .into_response()
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    token: String,
}

/// The largest sign-in body: a token and room to spare. Anyone may send one, before any
/// token is checked.
const SIGN_IN_BYTES: usize = 2 << 10;

/// `POST /api/v1/sessions`: signs in with an API token.
pub async fn sign_in(
    State(state): State<Arc<AppState>>,
    body: crate::body::JsonBody<SIGN_IN_BYTES>,
) -> Result<Response, ApiError> {
    let body: SignIn = body.to("{\"token\": \"trb_…\"}")?;
    let header = format!("Bearer {}", body.token.trim());
    let caller = auth::authenticate(&state.store, Some(&header)).await?;
    if caller.role == "agent" {
        return Err(ApiError::new(
            Code::Forbidden,
            "an agent's token cannot sign in to the UI; use a viewer, annotator, reviewer or admin token",
        ));
    }
    let id = crate::audit::hex(&auth::random_bytes::<32>());
    let csrf = crate::audit::hex(&auth::random_bytes::<32>());
    let session = WebSession {
        token_hash: auth::hash_secret(body.token.trim()),
        caller: caller.clone(),
        csrf: csrf.clone(),
        expires: Instant::now() + Duration::from_secs(SESSION_HOURS * 3600),
    };
    {
        let mut sessions = state.web.lock();
        sessions.retain(|_, s| s.expires > Instant::now());
        sessions.insert(auth::hash_secret(&id), session);
    }
    let cookie = format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        SESSION_HOURS * 3600
    );
    let mut res = Json(describe(&caller, Some(&csrf))).into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| ApiError::new(Code::Internal, e.to_string()))?,
    );
    Ok(res)
}

/// `GET /api/v1/session`: who is signed in (and the CSRF token, for a page loaded again).
pub async fn current(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Json<Value> {
    let csrf = cookie(&headers).and_then(|id| {
        state
            .web
            .lock()
            .get(&auth::hash_secret(id))
            .map(|s| s.csrf.clone())
    });
    Json(describe(&caller, csrf.as_deref()))
}

/// `DELETE /api/v1/session`: signs out.
pub async fn sign_out(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Some(id) = cookie(&headers) {
        state.web.lock().remove(&auth::hash_secret(id));
    }
    let mut res = Json(json!({"signed_out": true})).into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("tribunal_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    res
}

fn describe(caller: &Caller, csrf: Option<&str>) -> Value {
    json!({
        "project": caller.project,
        "role": caller.role,
        "token_id": caller.token_id,
        "csrf": csrf,
    })
}

/// The session cookie's value, when the request carries one.
fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// The caller of a request that carries a session cookie and no token: `None` when there is
/// no cookie. A state-changing request must repeat the session's CSRF token.
pub async fn from_cookie(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
) -> Option<Result<Caller, ApiError>> {
    let id = cookie(headers)?;
    let key = auth::hash_secret(id);
    let session = {
        let sessions = state.web.lock();
        sessions.get(&key).cloned()
    };
    let Some(session) = session.filter(|s| s.expires > Instant::now()) else {
        return Some(Err(ApiError::new(
            Code::Unauthenticated,
            "the session has ended; sign in again",
        )));
    };
    let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe {
        let sent = headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !constant_time_eq(sent.as_bytes(), session.csrf.as_bytes()) {
            return Some(Err(ApiError::new(
                Code::CsrfFailed,
                "a request made with the session cookie must carry the session's X-CSRF-Token header",
            )));
        }
    }
    // The token behind the session must still be valid (revocation ends the session).
    match state.store.token_by_hash(&session.token_hash).await {
        Ok(Some(t)) if t.revoked_at.is_none() => Some(Ok(session.caller)),
        Ok(_) => {
            state.web.lock().remove(&key);
            Some(Err(ApiError::new(
                Code::Unauthenticated,
                "the token this session signed in with was revoked",
            )))
        }
        Err(e) => Some(Err(e.into())),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
