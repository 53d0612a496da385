//! The Streamable HTTP transport: the proxy listens where the client connects and passes
//! each request on to the upstream server's MCP endpoint after [`Proxy`] has seen it.
//!
//! A `POST` carrying a `tools/call` the gate refuses is answered by the proxy (a JSON
//! response with the JSON-RPC error). Other `POST`s go upstream with the MCP headers
//! (`Mcp-Session-Id`, `MCP-Protocol-Version`, `Accept`, `Authorization`, `Last-Event-ID`);
//! the answer, JSON or a server-sent event stream, is read whole so its messages are
//! recorded, then passed back with its status and headers; a request the upstream server
//! cannot be connected to gets a 502 and its calls are taken out of the trace (they never
//! ran). Requests are told apart by their `Mcp-Session-Id`. `DELETE` (the end of a session)
//! is passed on; `GET` (a stream the server opens on its own) is answered `405`, which the
//! protocol allows, so nothing reaches the client unseen.

use crate::{read_client_message, read_server_message, Action, Proxy, Read, Scope};
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::sync::Arc;

/// Headers passed both ways.
const PASSED: &[&str] = &[
    "content-type",
    "accept",
    "mcp-session-id",
    "mcp-protocol-version",
    "authorization",
    "last-event-id",
];

struct Upstream {
    proxy: Proxy,
    url: String,
    http: reqwest::Client,
}

/// Serves the proxy on `listener` until the process ends.
pub async fn serve(
    proxy: Proxy,
    upstream: String,
    listener: tokio::net::TcpListener,
) -> std::io::Result<()> {
    let state = Arc::new(Upstream {
        proxy,
        url: upstream,
        http: reqwest::Client::new(),
    });
    let app = axum::Router::new().fallback(handle).with_state(state);
    axum::serve(listener, app).await
}

async fn handle(
    axum::extract::State(up): axum::extract::State<Arc<Upstream>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if method == Method::GET {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [("allow", "POST, DELETE")],
            "this proxy does not relay server-initiated streams",
        )
            .into_response();
    }
    if method == Method::POST {
        let read = read_client_message(&body);
        if let Read::Refused(answers) = &read {
            return answer_with(StatusCode::BAD_REQUEST, answers);
        }
        if let Read::Json(v) = read {
            let (msgs, batch): (Vec<&Value>, bool) = match &v {
                Value::Array(a) => (a.iter().collect(), true),
                v => (vec![v], false),
            };
            let actions = up.proxy.from_client_request(&msgs, scope(&headers)).await;
            if actions.iter().any(|a| !matches!(a, Action::Forward)) {
                // Nothing of the request is passed on: each request in it gets an answer
                // (its refusal, or that it was held back with the refused one), in a list
                // for a batch; a call sent as a notification gets an error with a null id.
                let mut answers = Vec::new();
                let mut status = StatusCode::OK;
                for (m, action) in msgs.iter().zip(actions) {
                    match action {
                        Action::Reply(r) => answers.push(r),
                        Action::Drop => {
                            status = StatusCode::BAD_REQUEST;
                            answers.push(json!({"jsonrpc": "2.0", "id": null, "error": {
                                "code": crate::INVALID_REQUEST,
                                "message": "a tools/call needs an id: the Tribunal gate judges and answers every call, and a notification cannot be answered"
                            }}));
                        }
                        Action::Forward => {
                            if let Some(id) = m.get("id").filter(|_| m.get("method").is_some()) {
                                answers.push(json!({"jsonrpc": "2.0", "id": id, "error": {
                                    "code": crate::INVALID_REQUEST,
                                    "message": "not passed on: another message of this batch was refused by the Tribunal gate"
                                }}));
                            }
                        }
                    }
                }
                let body = if batch {
                    Value::Array(answers).to_string()
                } else {
                    answers.pop().unwrap_or(Value::Null).to_string()
                };
                let mut resp = (status, body).into_response();
                resp.headers_mut()
                    .insert("content-type", HeaderValue::from_static("application/json"));
                if let Some(s) = headers.get("mcp-session-id") {
                    resp.headers_mut().insert("mcp-session-id", s.clone());
                }
                return resp;
            }
        }
    }
    let reqwest_method = match method {
        Method::POST => reqwest::Method::POST,
        Method::DELETE => reqwest::Method::DELETE,
        _ => return StatusCode::METHOD_NOT_ALLOWED.into_response(),
    };
    let mut req = up.http.request(reqwest_method, &up.url).body(body.to_vec());
    let sent = (method == Method::POST).then_some(&body);
    for name in PASSED {
        if let Some(v) = headers.get(*name).and_then(|v| v.to_str().ok()) {
            req = req.header(*name, v);
        }
    }
    let answer = match req.send().await {
        Ok(a) => a,
        Err(e) => {
            if let (true, Some(Read::Json(v))) =
                (e.is_connect(), sent.map(|b| read_client_message(b)))
            {
                // Nothing reached the server: its calls did not run.
                let msgs: Vec<&Value> = match &v {
                    Value::Array(a) => a.iter().collect(),
                    v => vec![v],
                };
                up.proxy.withdraw(&msgs, scope(&headers)).await;
            }
            return (
                StatusCode::BAD_GATEWAY,
                format!("the upstream MCP server did not answer: {e}"),
            )
                .into_response();
        }
    };
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut out = HeaderMap::new();
    for name in PASSED {
        if let Some(v) = answer.headers().get(*name).and_then(|v| v.to_str().ok()) {
            if let (Ok(n), Ok(v)) = (HeaderName::try_from(*name), HeaderValue::from_str(v)) {
                out.insert(n, v);
            }
        }
    }
    let text = match answer.bytes().await {
        Ok(b) => b,
        Err(e) => {
            return (
                StatusCode::BAD_GATEWAY,
                format!("the upstream MCP server's answer broke off: {e}"),
            )
                .into_response()
        }
    };
    let sse = out
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/event-stream"));
    let messages = match messages(&text, sse) {
        Ok(m) => m,
        Err(answers) => {
            eprintln!("tribunal mcp: a server answer that names a key twice was not passed on");
            return answer_with(StatusCode::BAD_GATEWAY, &answers);
        }
    };
    // The answer is the session's the request named (a session's first answer gives its id,
    // but answers only `initialize`, which holds no call).
    for m in messages {
        up.proxy.from_server(&m, scope(&headers)).await;
    }
    (status, out, text).into_response()
}

/// The client session a request belongs to, by its `Mcp-Session-Id`.
fn scope(headers: &HeaderMap) -> Scope<'_> {
    Scope(
        headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    )
}

/// JSON-RPC answers given by the proxy itself, with `status`.
fn answer_with(status: StatusCode, answers: &[Value]) -> Response {
    let body = match answers {
        [one] => one.to_string(),
        many => Value::Array(many.to_vec()).to_string(),
    };
    let mut resp = (status, body).into_response();
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    resp
}

/// The JSON-RPC messages of an answer: the JSON body, or each event's `data` lines; the
/// proxy's answers in its place when one of them names a key twice.
fn messages(body: &[u8], sse: bool) -> Result<Vec<Value>, Vec<Value>> {
    let text = String::from_utf8_lossy(body);
    let mut out = Vec::new();
    let mut refused = None;
    let mut push = |s: &str| match read_server_message(s.as_bytes()) {
        Read::Json(Value::Array(a)) => out.extend(a),
        Read::Json(v) => out.push(v),
        Read::Refused(answers) => {
            refused.get_or_insert(answers);
        }
        Read::NotJson => {}
    };
    if !sse {
        push(&text);
        return refused.map_or(Ok(out), Err);
    }
    let mut data = String::new();
    for line in text.lines().chain(std::iter::once("")) {
        if let Some(d) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(d.strip_prefix(' ').unwrap_or(d));
        } else if line.trim().is_empty() && !data.is_empty() {
            push(&data);
            data.clear();
        }
    }
    refused.map_or(Ok(out), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch holding a refused call is answered whole, as a list, one answer per request:
    /// the refusal, and for the others that they were held back. (The gate here cannot be
    /// reached, so every call is refused; the upstream cannot be either, so anything passed
    /// on would come back as a 502.)
    #[test]
    fn a_batch_with_a_refused_call_is_answered_for_every_request() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let proxy = crate::tests::proxy_without_gate("batch");
        let answers: Value = rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let at = listener.local_addr().unwrap();
            tokio::spawn(serve(proxy, "http://127.0.0.1:9/mcp".into(), listener));
            let batch = json!([
                {"jsonrpc": "2.0", "id": 1, "method": "ping"},
                {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "shell", "arguments": {"command": "rm -rf /"}}},
                {"jsonrpc": "2.0", "method": "notifications/initialized"}
            ]);
            let res = reqwest::Client::new()
                .post(format!("http://{at}/mcp"))
                .header("content-type", "application/json")
                .body(batch.to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            serde_json::from_str(&res.text().await.unwrap()).unwrap()
        });
        let answers = answers.as_array().expect("a list of answers");
        let ids: Vec<&Value> = answers.iter().map(|a| &a["id"]).collect();
        assert_eq!(ids, [&json!(1), &json!(2)], "{answers:?}");
        assert!(answers[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not passed on"));
        assert!(answers[1]["error"].is_object(), "{answers:?}");
    }

    /// A call allowed and passed on to a server that cannot be connected to never ran: it is
    /// not in the trace the next call is judged on.
    #[test]
    fn a_call_that_never_reached_the_server_is_taken_out() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (proxy, seen) = crate::tests::proxy_with_gate(&rt, "unreached");
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let at = listener.local_addr().unwrap();
            tokio::spawn(serve(proxy, "http://127.0.0.1:9/mcp".into(), listener));
            let call = |id: u64, path: &str| {
                json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                "params": {"name": "read_file", "arguments": {"path": path}}})
            };
            // A batch of two (the gate is sent the first with the second), then one call.
            for body in [
                json!([call(1, "first.txt"), call(2, "second.txt")]),
                call(3, "third.txt"),
            ] {
                let res = reqwest::Client::new()
                    .post(format!("http://{at}/mcp"))
                    .header("content-type", "application/json")
                    .header("mcp-session-id", "s1")
                    .body(body.to_string())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 502);
            }
        });
        let asked = crate::lock(&seen).clone();
        assert_eq!(asked.len(), 3);
        assert!(asked[1].to_string().contains("first.txt"), "{}", asked[1]);
        // The gate held the first call: it is sent the whole trace, without either.
        assert!(asked[2]["trace"].is_array(), "{}", asked[2]);
        assert!(
            !asked[2]["trace"].to_string().contains(".txt"),
            "{}",
            asked[2]
        );
    }

    #[test]
    fn event_streams_give_each_events_message() {
        let body = b"event: message\r\nid: 1\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\r\ndata: \"result\":{}}\r\n\r\n: ping\n\ndata: {\"id\":2}\n";
        let got = messages(body, true).unwrap();
        assert_eq!(
            got,
            vec![
                serde_json::json!({"jsonrpc": "2.0", "id": 1, "result": {}}),
                serde_json::json!({"id": 2})
            ]
        );
        assert_eq!(
            messages(b"{\"id\":3}", false).unwrap(),
            vec![serde_json::json!({"id": 3})]
        );
        // An event that names a key twice: the proxy's answer instead, to the id it answers.
        let twice =
            b"data: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"content\":[],\"content\":[]}}\n\n";
        let answers = messages(twice, true).unwrap_err();
        assert_eq!(answers[0]["id"], 7);
        assert_eq!(answers[0]["error"]["code"], crate::INTERNAL_ERROR);
    }
}
