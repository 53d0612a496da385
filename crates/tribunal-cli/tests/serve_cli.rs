//! `tribunal token`, `tribunal serve`, `tribunal audit verify` and `tribunal replay` as a
//! user runs them: a token is created, the server started, asked twice, stopped with
//! SIGTERM; the decision log is verified, tampered with and verified again; the stored
//! traces are replayed under a stricter policy, and under the same one reproduce every
//! decision the gate gave.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn tribunal(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tribunal"))
        .args(args)
        .current_dir(dir)
        .env_remove("CI")
        .output()
        .expect("run tribunal")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// One HTTP/1.1 request over a fresh connection; (status, body).
fn http(addr: &str, method: &str, path: &str, token: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    // The server answers with a fixed length or chunks; JSON bodies here are one chunk.
    let body = if out
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body.split_once("\r\n")
            .map(|x| x.1)
            .unwrap_or("")
            .rsplit_once("\r\n0\r\n")
            .map(|x| x.0)
            .unwrap_or("")
            .to_owned()
    } else {
        body.to_owned()
    };
    (status, body)
}

/// Starts `tribunal serve` on a free port; (child, address).
fn start_server(d: &Path) -> (std::process::Child, String) {
    start_server_with(d, &[])
}

fn start_server_with(d: &Path, extra: &[&str]) -> (std::process::Child, String) {
    let mut args = vec!["--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let (server, addr, _, _) = spawn_server(d, &args, &[]);
    (server, addr)
}

/// `tribunal serve ARGS` with the environment variables `envs` added; (child, address, the
/// first log line, the log lines after it as they come).
fn spawn_server(
    d: &Path,
    args: &[&str],
    envs: &[(&str, &str)],
) -> (
    std::process::Child,
    String,
    String,
    std::sync::mpsc::Receiver<String>,
) {
    let mut server = Command::new(env!("CARGO_BIN_EXE_tribunal"))
        .arg("serve")
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(d)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_owned();
    // Keep reading the log so the server never blocks on a full pipe.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (server, addr, first, rx)
}

#[test]
fn acknowledged_spans_survive_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = tribunal(d, &["token", "create", "--role", "agent"]);
    let token = text(&out.stdout).trim().to_owned();
    let (mut server, addr) = start_server(d);
    let doc = json!({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331", "name": "root",
         "startTimeUnixNano": "1", "endTimeUnixNano": "2"}]}]}]});
    let (st, body) = http(&addr, "POST", "/v1/traces", &token, &doc.to_string());
    assert_eq!((st, body.as_str()), (200, "{}"));
    // No time to flush anything: the process is killed right after the answer.
    server.kill().unwrap();
    server.wait().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let spans = rt.block_on(async {
        let store = tribunal_store::Store::open(d.join(".tribunal/tribunal.db").to_str().unwrap())
            .await
            .unwrap();
        store
            .trace_spans("default", "0af7651916cd43dd8448eb211c80319c")
            .await
            .unwrap()
    });
    assert_eq!(spans.len(), 1);
}

#[test]
fn tokens_serve_audit_and_replay() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    let out = tribunal(d, &["token", "create", "--role", "root"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("admin, reviewer, annotator, viewer, agent"),
        "{}",
        text(&out.stderr)
    );
    let out = tribunal(d, &["serve", "--write-queue", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--write-queue: expected at least 1"),
        "{}",
        text(&out.stderr)
    );
    let out = tribunal(
        d,
        &["token", "create", "--role", "agent", "--name", "shop-bot"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let token = text(&out.stdout).trim().to_owned();
    assert!(token.starts_with("trb_") && token.len() > 40, "{token}");
    let out = tribunal(d, &["token", "list"]);
    let listing = text(&out.stdout);
    assert!(
        listing.contains("shop-bot") && listing.contains("agent"),
        "{listing}"
    );
    assert!(!listing.contains(&token), "secrets are never shown again");

    let (mut server, addr) = start_server(d);

    let allowed = json!({"trace": [{"role": "user", "content": "hi"}], "pending": {"kind": "reply", "content": "Hello!"}});
    let blocked = json!({"trace": [{"role": "user", "content": "tidy up"}], "pending": {"name": "shell", "arguments": {"command": "rm -rf /"}}});
    let (st, body) = http(&addr, "POST", "/api/v1/gate", &token, &allowed.to_string());
    assert_eq!(st, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["decision"], "allow", "{v}");
    let (_, body) = http(&addr, "POST", "/api/v1/gate", &token, &blocked.to_string());
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["decision"], "block", "{v}");
    let (st, _) = http(&addr, "GET", "/api/v1/traces", &token, "");
    assert_eq!(st, 403, "an agent token may not read traces");
    std::thread::sleep(std::time::Duration::from_millis(300));

    let killed = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = server.wait().unwrap();
    assert!(status.success(), "graceful shutdown exits 0: {status:?}");

    let out = tribunal(d, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("intact: 3 entries"),
        "{}",
        text(&out.stdout)
    );

    // Replay: a policy that blocks every reply changes the allowed decision only.
    std::fs::create_dir(d.join("strict")).unwrap();
    std::fs::write(
        d.join("strict/replies.rego"),
        "package strict\nimport rego.v1\nviolation contains {\"rule\": \"strict.reply\", \"severity\": \"block\", \"message\": \"no replies\"} if input.pending.kind == \"reply\"\n",
    )
    .unwrap();
    let out = tribunal(d, &["replay", "--policies", "strict", "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["traces"], 2, "{r}");
    assert_eq!(r["changes"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["changes"][0]["before"], "allow");
    assert_eq!(r["changes"][0]["after"], "block");
    let out = tribunal(d, &["replay", "--policies", "strict"]);
    assert!(
        text(&out.stdout).contains("allow -> block: 1"),
        "{}",
        text(&out.stdout)
    );

    // Tampering with an entry is caught.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = tribunal_store::Store::open(d.join(".tribunal/tribunal.db").to_str().unwrap())
            .await
            .unwrap();
        store
            .execute_raw(
                "UPDATE audit_log SET body = replace(body, '\"block\"', '\"allow\"') WHERE seq = 3",
            )
            .await
            .unwrap();
        store.close().await;
    });
    let out = tribunal(d, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("entry 3"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn sighup_reloads_policies_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("mine")).unwrap();
    let rule = |cond: &str| {
        format!("package mine\nimport rego.v1\nviolation contains {{\"rule\": \"mine.reply\", \"severity\": \"block\", \"message\": \"no\"}} if {cond}\n")
    };
    std::fs::write(d.join("mine/r.rego"), rule("false")).unwrap();
    let out = tribunal(d, &["token", "create", "--role", "agent"]);
    let token = text(&out.stdout).trim().to_owned();
    let (mut server, addr) = start_server_with(d, &["--policies", "mine"]);
    let req = json!({"trace": [{"role": "user", "content": "hi"}], "pending": {"kind": "reply", "content": "Hello!"}}).to_string();
    let decision = || -> String {
        let (_, body) = http(&addr, "POST", "/api/v1/gate", &token, &req);
        let v: Value = serde_json::from_str(&body).unwrap();
        v["decision"].as_str().unwrap().to_owned()
    };
    assert_eq!(decision(), "allow");
    std::fs::write(
        d.join("mine/r.rego"),
        rule("input.pending.kind == \"reply\""),
    )
    .unwrap();
    Command::new("kill")
        .args(["-HUP", &server.id().to_string()])
        .status()
        .unwrap();
    let mut now = String::new();
    for _ in 0..100 {
        now = decision();
        if now == "block" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(30));
    }
    assert_eq!(now, "block", "the new policy applies after SIGHUP");
    server.kill().unwrap();
    server.wait().unwrap();
}

/// Every decision the gate gave, reproduced by `tribunal replay` over the stored traffic with
/// the same configuration: whole traces, traces grown by appends, decisions that hang on the
/// request's context, and an escalation (compared as the gate's `escalate`, whatever the
/// review made of it).
#[test]
fn replay_reproduces_every_decision_the_gate_gave() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("mine")).unwrap();
    // Interns may not reply: decided by the context sent with the request only.
    std::fs::write(
        d.join("mine/r.rego"),
        "package mine\nimport rego.v1\nviolation contains {\"rule\": \"mine.intern\", \"severity\": \"block\", \"message\": \"interns may not reply\"} if {\n\tinput.context.agent == \"intern\"\n\tinput.pending.kind == \"reply\"\n}\n",
    )
    .unwrap();
    let token = |role: &str| {
        text(&tribunal(d, &["token", "create", "--role", role]).stdout)
            .trim()
            .to_owned()
    };
    let (agent, reviewer) = (token("agent"), token("reviewer"));
    let (mut server, addr) = start_server_with(d, &["--policies", "mine"]);
    let mut gave: std::collections::BTreeMap<String, String> = Default::default();
    let mut ask = |body: Value| -> Value {
        let (st, answer) = http(&addr, "POST", "/api/v1/gate", &agent, &body.to_string());
        assert_eq!(st, 200, "{answer}");
        let v: Value = serde_json::from_str(&answer).unwrap();
        gave.insert(
            v["trace_id"].as_str().unwrap().to_owned(),
            v["decision"].as_str().unwrap().to_owned(),
        );
        v
    };
    let reply = json!({"kind": "reply", "content": "It has shipped."});
    // Whole traces: allowed, blocked by the pack, blocked by the context.
    ask(
        json!({"trace_id": "w-allow", "trace": [{"role": "user", "content": "where is my order?"}], "pending": reply}),
    );
    ask(
        json!({"trace_id": "w-block", "trace": [{"role": "user", "content": "tidy up"}],
        "pending": {"name": "shell", "arguments": {"command": "rm -rf /"}}}),
    );
    ask(
        json!({"trace_id": "w-intern", "trace": [{"role": "user", "content": "hi"}], "pending": reply,
        "context": {"agent": "intern"}}),
    );
    // Traces grown by appends (stored whole, normalized): one ends allowed, one blocked by
    // its context, one by the pack.
    for (id, context, last) in [
        ("a-allow", json!({"agent": "support"}), reply.clone()),
        ("a-intern", json!({"agent": "intern"}), reply.clone()),
        (
            "a-block",
            json!({"agent": "support"}),
            json!({"name": "shell", "arguments": {"command": "rm -rf /"}}),
        ),
    ] {
        let v = ask(
            json!({"trace_id": id, "trace": [{"role": "user", "content": "hello"}],
            "pending": {"kind": "reply", "content": "Hi!"}, "context": context}),
        );
        let n = v["messages"].as_u64().unwrap();
        let v = ask(json!({"trace_id": id, "offset": n, "append": [
            {"role": "assistant", "content": "Hi!"},
            {"role": "user", "content": "and now?"}], "pending": last, "context": context}));
        assert!(v["messages"].as_u64().unwrap() > n, "{v}");
    }
    // An escalation, approved by a reviewer while the agent waits.
    let waiting = {
        let (addr, agent) = (addr.clone(), agent.clone());
        std::thread::spawn(move || {
            let body = json!({"trace_id": "e-approved", "trace": [{"role": "user", "content": "close my account"}],
                "pending": {"name": "delete_account", "arguments": {"customer": "C-1"}}, "wait_ms": 60_000});
            http(&addr, "POST", "/api/v1/gate", &agent, &body.to_string())
        })
    };
    let mut id = String::new();
    for _ in 0..600 {
        let (_, body) = http(
            &addr,
            "GET",
            "/api/v1/escalations?status=pending",
            &reviewer,
            "",
        );
        let v: Value = serde_json::from_str(&body).unwrap();
        if let Some(e) = v["escalations"].as_array().and_then(|a| a.first()) {
            id = e["id"].as_str().unwrap().to_owned();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let (st, body) = http(
        &addr,
        "POST",
        &format!("/api/v1/escalations/{id}/decision"),
        &reviewer,
        &json!({"decision": "approve"}).to_string(),
    );
    assert_eq!(st, 200, "{body}");
    let (_, answer) = waiting.join().unwrap();
    let v: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(v["decision"], "allow", "{v}");
    gave.insert("e-approved".into(), "escalate".into());
    let distinct: std::collections::BTreeSet<&String> = gave.values().collect();
    assert_eq!(
        distinct.len(),
        3,
        "allow, block and escalate were all given: {gave:?}"
    );

    // Stopped with SIGTERM: every held trace is stored.
    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(server.wait().unwrap().success());
    let out = tribunal(d, &["replay", "--policies", "mine", "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["changes"], json!([]), "{r}");
    assert_eq!(
        (
            r["traces"].as_u64(),
            r["unchanged"].as_u64(),
            r["skipped"].as_u64()
        ),
        (Some(gave.len() as u64), Some(gave.len() as u64), Some(0)),
        "{r}"
    );
}

/// Every `serve` flag can come from a `TRIBUNAL_*` variable (for containers); a flag on the
/// command line wins over its variable.
#[test]
fn serve_flags_come_from_the_environment_and_the_command_line_wins() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("other.toml"), "").unwrap();
    let out = tribunal(d, &["token", "create", "--role", "agent", "--db", "env.db"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let token = text(&out.stdout).trim().to_owned();
    let out = tribunal(
        d,
        &["token", "create", "--role", "viewer", "--db", "env.db"],
    );
    let viewer = text(&out.stdout).trim().to_owned();
    std::fs::write(
        d.join("conf.toml"),
        "[judges.from_env_config]\nkind = \"secrets\"\n",
    )
    .unwrap();
    let env = [
        ("TRIBUNAL_CONFIG", "conf.toml"),
        ("TRIBUNAL_LISTEN", "127.0.0.1:0"),
        ("TRIBUNAL_DB", "env.db"),
        ("TRIBUNAL_PROJECTS", "alpha=other.toml,beta=other.toml"),
        ("TRIBUNAL_MAX_BODY_BYTES", "300"),
        ("TRIBUNAL_LOG_FORMAT", "json"),
        ("TRIBUNAL_METRICS_LISTEN", "127.0.0.1:0"),
    ];
    let big = json!({"trace": [{"role": "user", "content": "x".repeat(400)}],
        "pending": {"kind": "reply", "content": "ok"}})
    .to_string();
    let small = json!({"trace": [{"role": "user", "content": "hi"}],
        "pending": {"kind": "reply", "content": "ok"}})
    .to_string();

    // Only variables: the address, the store, the projects, the body limit and the log format.
    let (mut server, addr, first, log) = spawn_server(d, &[], &env);
    assert!(!addr.ends_with(":7878"), "{first}");
    assert!(first.contains("env.db"), "{first}");
    assert!(first.contains("alpha") && first.contains("beta"), "{first}");
    // The metrics address, announced next, answers without a token.
    let announced = log
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the metrics address");
    let metrics_addr = announced
        .split("http://")
        .nth(1)
        .and_then(|r| r.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("no metrics address in {announced:?}"))
        .to_owned();
    assert_ne!(metrics_addr, addr);
    let (st, body) = http(&metrics_addr, "GET", "/metrics", "", "");
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("tribunal_build_info{version="), "{body}");
    let (st, _) = http(&addr, "GET", "/metrics", "", "");
    assert_eq!(st, 401);
    let (st, body) = http(&addr, "POST", "/api/v1/gate", &token, &small);
    assert_eq!(st, 200, "{body}");
    let (st, body) = http(&addr, "POST", "/api/v1/gate", &token, &big);
    assert_eq!(st, 413, "{body}");
    // The default project is configured by the file TRIBUNAL_CONFIG names.
    let (st, body) = http(&addr, "GET", "/api/v1/judges", &viewer, "");
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("from_env_config"), "{body}");
    let line = log
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("a request log line");
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert!(v.is_object(), "{line}");
    server.kill().unwrap();
    server.wait().unwrap();

    // A flag given on the command line wins over its variable.
    let (mut server, addr, first, _log) = spawn_server(
        d,
        &[
            "--max-body-bytes",
            "100000",
            "--project",
            "gamma=other.toml",
        ],
        &env,
    );
    assert!(
        first.contains("gamma") && !first.contains("alpha"),
        "{first}"
    );
    let (st, body) = http(&addr, "POST", "/api/v1/gate", &token, &big);
    assert_eq!(st, 200, "{body}");
    server.kill().unwrap();
    server.wait().unwrap();

    // A bad value from a variable is refused before anything starts.
    let out = Command::new(env!("CARGO_BIN_EXE_tribunal"))
        .arg("serve")
        .envs(env)
        .env("TRIBUNAL_BUDGET_MS", "soon")
        .current_dir(d)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("soon") && err.contains("budget-ms"), "{err}");
    assert!(err.contains("TRIBUNAL_BUDGET_MS"), "{err}");
}
