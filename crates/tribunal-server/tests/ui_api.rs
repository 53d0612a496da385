//! The UI's routes: its files with their security headers, signing in with a token, the
//! session cookie in place of the token, CSRF on state-changing requests, revocation, and
//! the trace list's rule and text filters.

mod common;

use common::TestServer;
use reqwest::header::{CONTENT_SECURITY_POLICY, COOKIE, SET_COOKIE};
use serde_json::{json, Value};
use std::time::Duration;
use tribunal_server::ServerOptions;

async fn sign_in(s: &TestServer, token: &str) -> (u16, Value, Option<String>) {
    let r = TestServer::client()
        .post(format!("{}/api/v1/sessions", s.url))
        .json(&json!({ "token": token }))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let cookie = r
        .headers()
        .get(SET_COOKIE)
        .map(|v| v.to_str().unwrap().to_owned());
    (status, r.json().await.unwrap_or(Value::Null), cookie)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_cookies_csrf_and_the_page_headers() {
    let mut s = TestServer::start(ServerOptions::default()).await;
    let admin = s.token("default", "admin").await;
    let viewer = s.token("default", "viewer").await;
    let agent = s.token("default", "agent").await;

    // The page and its files, with a policy that allows only themselves.
    for path in ["/", "/ui/app.js", "/ui/app.css"] {
        let r = TestServer::client()
            .get(format!("{}{path}", s.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let csp = r.headers()[CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    }
    let r = TestServer::client()
        .get(format!("{}/ui/nope.js", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // Bad sign-ins.
    assert_eq!(sign_in(&s, "trb_unknown").await.0, 401);
    let (st, v, cookie) = sign_in(&s, &agent).await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{v}"
    );
    assert!(cookie.is_none());
    let r = TestServer::client()
        .post(format!("{}/api/v1/sessions", s.url))
        .json(&json!({ "password": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // A reviewer's session: the cookie is HttpOnly and SameSite, and stands for the token.
    let (st, v, cookie) = sign_in(&s, &admin).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (v["role"].as_str(), v["project"].as_str()),
        (Some("admin"), Some("default"))
    );
    let cookie = cookie.unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_owned();
    let csrf = v["csrf"].as_str().unwrap().to_owned();
    let c = TestServer::client();
    let me: Value = c
        .get(format!("{}/api/v1/session", s.url))
        .header(COOKIE, &pair)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (me["role"].as_str(), me["csrf"].as_str()),
        (Some("admin"), Some(csrf.as_str()))
    );
    let r = c
        .get(format!("{}/api/v1/traces", s.url))
        .header(COOKIE, &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A state-changing request with the cookie needs the CSRF token.
    let reload = |csrf: Option<&str>| {
        let mut r = c
            .post(format!("{}/api/v1/policies/reload", s.url))
            .header(COOKIE, &pair);
        if let Some(t) = csrf {
            r = r.header("x-csrf-token", t);
        }
        r.send()
    };
    let r = reload(None).await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "csrf_failed"
    );
    assert_eq!(reload(Some("0000")).await.unwrap().status(), 403);
    assert_eq!(reload(Some(&csrf)).await.unwrap().status(), 200);

    // A viewer's session follows the viewer's role.
    let (_, v, vcookie) = sign_in(&s, &viewer).await;
    let vpair = vcookie.unwrap().split(';').next().unwrap().to_owned();
    let r = c
        .post(format!("{}/api/v1/policies/reload", s.url))
        .header(COOKIE, &vpair)
        .header("x-csrf-token", v["csrf"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // Signing out ends the session; so does revoking its token.
    let r = c
        .delete(format!("{}/api/v1/session", s.url))
        .header(COOKIE, &vpair)
        .header("x-csrf-token", v["csrf"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .get(format!("{}/api/v1/traces", s.url))
        .header(COOKIE, &vpair)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let id = me["token_id"].as_str().unwrap();
    s.store
        .revoke_token(id, "2026-01-01T00:00:00Z")
        .await
        .unwrap();
    let r = c
        .get(format!("{}/api/v1/traces", s.url))
        .header(COOKIE, &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_filter_by_rule_and_text() {
    let mut s = TestServer::start(ServerOptions::default()).await;
    let agent = s.token("default", "agent").await;
    let viewer = s.token("default", "viewer").await;
    let c = TestServer::client();
    for body in [
        json!({"trace_id": "wipe", "trace": [{"role": "user", "content": "tidy up"}],
               "pending": {"name": "shell", "arguments": {"command": "rm -rf /"}}}),
        json!({"trace_id": "hello_world", "trace": [{"role": "user", "content": "say 100% hello"}],
               "pending": {"kind": "reply", "content": "Hello!"}}),
    ] {
        let r = c
            .post(format!("{}/api/v1/gate", s.url))
            .bearer_auth(&agent)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let list = |q: &'static str| {
        let c = c.clone();
        let url = format!("{}/api/v1/traces?{q}", s.url);
        let viewer = viewer.clone();
        async move {
            let v: Value = c
                .get(url)
                .bearer_auth(viewer)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let mut ids: Vec<String> = v["traces"]
                .as_array()
                .unwrap_or_else(|| panic!("{v}"))
                .iter()
                .map(|t| t["trace_id"].as_str().unwrap().to_owned())
                .collect();
            ids.sort();
            ids
        }
    };
    // Gate traces are stored within half a second.
    for _ in 0..100 {
        if list("").await.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(list("rule=c6.dangerous_command").await, ["wipe"]);
    assert!(list("rule=c6").await.is_empty(), "a rule matches whole");
    assert_eq!(list("q=100%25").await, ["hello_world"]);
    assert_eq!(list("q=hello_").await, ["hello_world"]);
    assert!(list("q=hello%25world").await.is_empty(), "% is literal");
    assert_eq!(list("q=rm%20-rf").await, ["wipe"]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ended_browser_sessions_are_removed_without_anyone_signing_in() {
    let dir = tempfile::tempdir().unwrap();
    let store = tribunal_store::Store::open(dir.path().join("t.db").to_str().unwrap())
        .await
        .unwrap();
    let now = tribunal_store::clock::now_ms();
    let session = |id: &str, expires_ms: i64| tribunal_store::WebSession {
        id_hash: id.into(),
        token_hash: "h".into(),
        token_id: "t1".into(),
        project: "default".into(),
        role: "viewer".into(),
        agent: None,
        csrf: "c".into(),
        expires_ms,
    };
    // Stored before the server starts, as a server that stopped would have left them.
    store
        .insert_web_session(&session("ended", now - 1_000), 0)
        .await
        .unwrap();
    store
        .insert_web_session(&session("live", now + 3_600_000), 0)
        .await
        .unwrap();
    // Looked up as of time 0, a row is found for as long as it is stored.
    assert!(store.web_session("ended", 0).await.unwrap().is_some());
    let mut s = TestServer::start_with(store.clone(), dir, ServerOptions::default()).await;
    let mut waited = Duration::ZERO;
    while store.web_session("ended", 0).await.unwrap().is_some() {
        assert!(
            waited < Duration::from_secs(10),
            "the ended session is still stored"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += Duration::from_millis(100);
    }
    assert!(store.web_session("live", now).await.unwrap().is_some());
    s.stop().await;
}
