//! The web UI's side of the server: its files (`GET /`, `GET /ui/*`, from `tribunal-web`)
//! served with a content security policy, and browser sessions. A person signs in with an
//! API token (`POST /api/v1/sessions`); the answer sets an HttpOnly, SameSite=Strict cookie
//! naming a session kept in the store (by the hash of the cookie's value, so every server on
//! the database knows it), and gives a CSRF token that every state-changing request made
//! with the cookie must repeat in `X-CSRF-Token`. Agents' tokens cannot sign in: agents have
//! no UI. A session ends when it is signed out, when its token is revoked (checked on every
//! request, in the query that reads the session), or after `SESSION_HOURS`.

use crate::auth::{self, Caller};
use crate::error::{ApiError, Code};
use crate::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};
use std::sync::Arc;
use tribunal_store::{clock, WebSession};

/// The cookie that names a browser session.
pub const COOKIE: &str = "tribunal_session";
/// How long a session lasts.
pub const SESSION_HOURS: u64 = 12;

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
    let now = clock::now_ms();
    let session = WebSession {
        id_hash: auth::hash_secret(&id),
        token_hash: auth::hash_secret(body.token.trim()),
        token_id: caller.token_id.clone(),
        project: caller.project.clone(),
        role: caller.role.clone(),
        agent: caller.agent.clone(),
        csrf: csrf.clone(),
        expires_ms: now + (SESSION_HOURS * 3600 * 1000) as i64,
    };
    state.store.insert_web_session(&session, now).await?;
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
) -> Result<Json<Value>, ApiError> {
    let csrf = match cookie(&headers) {
        Some(id) => state
            .store
            .web_session(&auth::hash_secret(id), clock::now_ms())
            .await?
            .map(|s| s.session.csrf),
        None => None,
    };
    Ok(Json(describe(&caller, csrf.as_deref())))
}

/// `DELETE /api/v1/session`: signs out.
pub async fn sign_out(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(id) = cookie(&headers) {
        state
            .store
            .remove_web_session(&auth::hash_secret(id))
            .await?;
    }
    let mut res = Json(json!({"signed_out": true})).into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("tribunal_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    Ok(res)
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
    let live = match state.store.web_session(&key, clock::now_ms()).await {
        Ok(live) => live,
        Err(e) => return Some(Err(e.into())),
    };
    let Some(live) = live else {
        return Some(Err(ApiError::new(
            Code::Unauthenticated,
            "the session has ended; sign in again",
        )));
    };
    let session = live.session;
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
    if !live.token_valid {
        if let Err(e) = state.store.remove_web_session(&key).await {
            tracing::warn!(error = %e, "ending a session of a revoked token failed");
        }
        return Some(Err(ApiError::new(
            Code::Unauthenticated,
            "the token this session signed in with was revoked",
        )));
    }
    Some(Ok(Caller {
        token_id: session.token_id,
        project: session.project,
        role: session.role,
        agent: session.agent,
    }))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
