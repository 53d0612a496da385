//! `tribunal serve` as a process: an answered decision is in the log even when the process
//! is killed right after (`kill -9` under load, several times, on SQLite and on
//! PostgreSQL), numbers are never given
//! twice, a head kept elsewhere catches a log cut back, two servers on one PostgreSQL
//! database keep one chain and stop on SIGTERM, and clients that send half a request do
//! not keep an agent from its answers. Two servers on one PostgreSQL database share reviews
//! (an escalation raised on one and decided on the other wakes the agent waiting on the
//! first) and reloads.

use serde_json::{json, Value};
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tribunal_store::testing::TestDatabase;
use tribunal_store::{AuditRow, Store};

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

/// A server process, killed if the test ends before it does.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for Server {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Server {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

/// Starts `command` (a `tribunal serve` on port 0) and reads its address from the log line
/// that announces it.
fn start(mut command: Command) -> (Server, String) {
    let mut server = Server(command.stderr(Stdio::piped()).spawn().unwrap());
    let mut lines = BufReader::new(server.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("the server announces its address")
            .unwrap();
        if let Some(rest) = line.split("serving on http://").nth(1) {
            break rest.split_whitespace().next().unwrap_or("").to_owned();
        }
    };
    // Keep reading the log so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (server, addr)
}

fn serve(dir: &Path, extra: &[&str]) -> (Server, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tribunal"));
    c.args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .current_dir(dir);
    start(c)
}

/// One gate request over a fresh connection: (status, answer), or `None` when the
/// connection failed or the answer was cut off (the server was killed).
fn gate(addr: &str, token: &str, i: usize) -> Option<(u16, Value)> {
    let body = json!({"trace": [{"role": "user", "content": format!("where is order {i}?")}],
        "pending": {"kind": "reply", "content": "It has shipped."}})
    .to_string();
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    write!(
        s,
        "POST /api/v1/gate HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.get(9..12)?.parse().ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return None;
    }
    Some((status, serde_json::from_str(body).ok()?))
}

/// One request over a fresh connection: (status, JSON answer).
fn http(addr: &str, method: &str, path: &str, token: &str, body: &str) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        // The answers here are one chunk.
        body.split_once("\r\n")
            .map(|x| x.1)
            .unwrap_or("")
            .rsplit_once("\r\n0\r\n")
            .map(|x| x.0)
            .unwrap_or("")
    } else {
        body
    };
    let v = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
    (status, v)
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// Waits for the process to end; a process that does not end within a minute is killed
/// and the test fails (a hang guard, not a measure).
fn wait_ended(child: &mut Child) -> std::process::ExitStatus {
    for _ in 0..600 {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    panic!("the server did not end after SIGTERM");
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

async fn all_entries(store: &Store) -> Vec<AuditRow> {
    let mut all = Vec::new();
    loop {
        let after = all.last().map_or(0, |r: &AuditRow| r.seq);
        let rows = store.audit_entries(after, 1000).await.unwrap();
        if rows.is_empty() {
            return all;
        }
        all.extend(rows);
    }
}

/// Agents asking the gate over and over until told to stop; each answered decision id.
struct Load {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicUsize>,
    ids: Arc<Mutex<Vec<i64>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(addrs: &[String], token: &str, agents: usize, first: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicUsize::new(0));
        let ids = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..agents)
            .map(|a| {
                let (stop, answered, ids) = (stop.clone(), answered.clone(), ids.clone());
                let (addr, token) = (addrs[a % addrs.len()].clone(), token.to_owned());
                std::thread::spawn(move || {
                    let mut i = first + a * 100_000;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        if let Some((200, v)) = gate(&addr, &token, i) {
                            if let Some(id) = v["decision_id"].as_i64() {
                                ids.lock().unwrap().push(id);
                                answered.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            answered,
            ids,
            threads,
        }
    }

    /// Waits until `n` decisions were answered.
    fn until(&self, n: usize) {
        while self.answered.load(Ordering::Relaxed) < n {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn finish(self) -> Vec<i64> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        let ids = self.ids.lock().unwrap().clone();
        ids
    }
}

/// Rounds of: a server on `store` (extra `serve` arguments), agents asking it, the server
/// killed with SIGKILL while they do. Then every decision id any agent received is checked:
/// given once, in the log (read from `url`), and the log verifies.
fn kill_9_rounds(d: &Path, store: &[&str], url: &str, rounds: usize) {
    let mut args = vec!["token", "create", "--role", "agent"];
    args.extend(store);
    let out = tribunal(d, &args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let token = text(&out.stdout).trim().to_owned();
    let mut answered = Vec::new();
    for round in 0..rounds {
        let (mut server, addr) = serve(d, store);
        let load = Load::start(&[addr], &token, 6, round * 1_000_000);
        load.until(50 * (round + 1));
        // Killed while agents keep asking: answers are on their way.
        server.kill().unwrap();
        server.wait().unwrap();
        let ids = load.finish();
        assert!(!ids.is_empty());
        answered.extend(ids);
    }
    let unique: HashSet<i64> = answered.iter().copied().collect();
    assert_eq!(
        unique.len(),
        answered.len(),
        "a decision id was given twice"
    );
    let entries = block_on(async {
        let store = Store::open(url).await.unwrap();
        let e = all_entries(&store).await;
        store.close().await;
        e
    });
    let gates: HashSet<i64> = entries
        .iter()
        .filter(|e| e.kind == "gate")
        .map(|e| e.seq)
        .collect();
    let missing: Vec<i64> = unique.difference(&gates).copied().collect();
    assert!(
        missing.is_empty(),
        "answered but not logged: {missing:?} ({} answered)",
        unique.len()
    );
    let mut args = vec!["audit", "verify"];
    args.extend(store);
    let out = tribunal(d, &args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
}

#[test]
fn answered_decisions_survive_kill_9_and_their_numbers_are_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join(".tribunal/tribunal.db");
    kill_9_rounds(d, &[], db.to_str().unwrap(), 4);
}

#[test]
fn answered_decisions_survive_kill_9_on_postgres() {
    let db = block_on(TestDatabase::create("tribunal_kill_pg")).unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    kill_9_rounds(dir.path(), &["--db", &db.url], &db.url, 4);
    block_on(db.drop()).unwrap();
}

#[test]
fn a_saved_head_catches_a_log_cut_back_behind_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let token = text(&tribunal(d, &["token", "create", "--role", "agent"]).stdout)
        .trim()
        .to_owned();
    let (mut server, addr) = serve(d, &[]);
    for i in 0..3 {
        let (st, v) = gate(&addr, &token, i).unwrap();
        assert_eq!(st, 200, "{v}");
    }
    signal(&server, "-TERM");
    assert!(wait_ended(&mut server).success());

    let out = tribunal(d, &["audit", "head", "-f", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let head: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(head["seq"], 4, "{head}");
    assert_eq!(head["hash"].as_str().unwrap().len(), 64, "{head}");
    let out = tribunal(d, &["audit", "head"]);
    assert_eq!(
        text(&out.stdout).trim(),
        format!("4 {}", head["hash"].as_str().unwrap())
    );
    std::fs::write(d.join("head.json"), serde_json::to_vec(&head).unwrap()).unwrap();
    let out = tribunal(d, &["audit", "verify", "--head", "head.json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));

    // The last entry removed and the head record moved back with it.
    block_on(async {
        let store = Store::open(d.join(".tribunal/tribunal.db").to_str().unwrap())
            .await
            .unwrap();
        store
            .execute_raw("DELETE FROM audit_log WHERE seq = 4")
            .await
            .unwrap();
        store
            .execute_raw(
                "UPDATE audit_head SET seq = 3, hash = (SELECT hash FROM audit_log WHERE seq = 3)",
            )
            .await
            .unwrap();
        store.close().await;
    });
    let out = tribunal(d, &["audit", "verify"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "consistent in itself: {}",
        text(&out.stdout)
    );
    let out = tribunal(d, &["audit", "verify", "--head", "head.json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("saved head names entry 4"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn two_servers_on_one_postgres_database_keep_one_chain_and_stop_on_sigterm() {
    let db = block_on(TestDatabase::create("tribunal_two_serve")).unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = tribunal(d, &["token", "create", "--role", "agent", "--db", &db.url]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let token = text(&out.stdout).trim().to_owned();
    let (mut a, addr_a) = serve(d, &["--db", &db.url]);
    let (mut b, addr_b) = serve(d, &["--db", &db.url]);
    let load = Load::start(&[addr_a, addr_b], &token, 6, 0);
    load.until(300);
    let ids = load.finish();
    for server in [&mut a, &mut b] {
        signal(server, "-TERM");
        let status = wait_ended(server);
        assert!(status.success(), "graceful shutdown exits 0: {status:?}");
    }
    let out = tribunal(d, &["audit", "verify", "--db", &db.url]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let entries = block_on(async {
        let store = Store::open(&db.url).await.unwrap();
        let e = all_entries(&store).await;
        store.close().await;
        e
    });
    let mut logged: Vec<i64> = entries
        .iter()
        .filter(|e| e.kind == "gate")
        .map(|e| e.seq)
        .collect();
    let mut answered = ids.clone();
    answered.sort();
    logged.sort();
    assert_eq!(answered, logged, "every answered decision logged, once");
    block_on(db.drop()).unwrap();
}

#[test]
fn clients_that_send_half_a_request_do_not_keep_an_agent_from_its_answers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let token = text(&tribunal(d, &["token", "create", "--role", "agent"]).stdout)
        .trim()
        .to_owned();
    // The server may hold 256 files; more slow clients than that connect.
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(format!(
            "ulimit -n 256 && exec '{}' serve --listen 127.0.0.1:0 --max-connections 100 --header-timeout-ms 300",
            env!("CARGO_BIN_EXE_tribunal")
        ))
        .current_dir(d);
    let (mut server, addr) = start(c);
    let mut slow = Vec::new();
    for _ in 0..400 {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.write_all(b"POST /api/v1/gate HTTP/1.1\r\nHost: x\r\nContent-Ty")
            .unwrap();
        slow.push(s);
    }
    for i in 0..5 {
        let (st, v) = gate(&addr, &token, i).expect("an answer");
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["decision"], "allow", "{v}");
    }
    drop(slow);
    signal(&server, "-TERM");
    assert!(wait_ended(&mut server).success());
}

#[test]
fn two_servers_on_one_postgres_database_share_reviews_and_reloads() {
    let db = block_on(TestDatabase::create("tribunal_two_share")).unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("mine")).unwrap();
    let rule = |cond: &str| {
        format!("package mine\nimport rego.v1\nviolation contains {{\"rule\": \"mine.reply\", \"severity\": \"block\", \"message\": \"no\"}} if {cond}\n")
    };
    std::fs::write(d.join("mine/r.rego"), rule("false")).unwrap();
    let token = |role: &str| {
        let out = tribunal(d, &["token", "create", "--role", role, "--db", &db.url]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).trim().to_owned()
    };
    let (agent, reviewer, admin) = (token("agent"), token("reviewer"), token("admin"));
    let args = ["--db", db.url.as_str(), "--policies", "mine"];
    let (mut a, addr_a) = serve(d, &args);
    let (mut b, addr_b) = serve(d, &args);

    // 1. An agent waits on A; a reviewer approves on B; the agent gets `allow` from A.
    let waiting = {
        let (addr, agent) = (addr_a.clone(), agent.clone());
        std::thread::spawn(move || {
            let body = json!({"trace": [{"role": "user", "content": "close my account"}],
                "pending": {"name": "delete_account", "arguments": {"customer": "C-1"}},
                "wait_ms": 60_000});
            http(&addr, "POST", "/api/v1/gate", &agent, &body.to_string())
        })
    };
    let mut id = String::new();
    for _ in 0..600 {
        let (st, v) = http(
            &addr_b,
            "GET",
            "/api/v1/escalations?status=pending",
            &reviewer,
            "",
        );
        assert_eq!(st, 200, "{v}");
        if let Some(e) = v["escalations"].as_array().and_then(|a| a.first()) {
            id = e["id"].as_str().unwrap().to_owned();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!id.is_empty(), "the escalation raised on A is listed on B");
    let (st, v) = http(
        &addr_b,
        "POST",
        &format!("/api/v1/escalations/{id}/decision"),
        &reviewer,
        &json!({"decision": "approve"}).to_string(),
    );
    assert_eq!(st, 200, "{v}");
    let (st, answered) = waiting.join().unwrap();
    assert_eq!(st, 200, "{answered}");
    assert_eq!(answered["decision"], "allow", "{answered}");
    assert_eq!(answered["escalation"]["id"], id.as_str(), "{answered}");
    assert_eq!(answered["escalation"]["status"], "approved", "{answered}");

    // 2. A reload on A reaches B.
    let version = |addr: &str| {
        let (st, v) = http(addr, "GET", "/api/v1/policies", &admin, "");
        assert_eq!(st, 200, "{v}");
        v["version"].as_str().unwrap().to_owned()
    };
    let before = version(&addr_b);
    assert_eq!(before, version(&addr_a));
    std::fs::write(
        d.join("mine/r.rego"),
        rule("input.pending.kind == \"reply\""),
    )
    .unwrap();
    let (st, v) = http(&addr_a, "POST", "/api/v1/policies/reload", &admin, "");
    assert_eq!(st, 200, "{v}");
    let after = v["version"].as_str().unwrap().to_owned();
    assert_ne!(after, before, "{v}");
    let mut seen = before.clone();
    for _ in 0..600 {
        seen = version(&addr_b);
        if seen != before {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(seen, after, "B runs the version A reloaded");
    // SIGHUP on B reaches A.
    std::fs::write(
        d.join("mine/r.rego"),
        rule("input.pending.kind == \"tool_call\""),
    )
    .unwrap();
    signal(&b, "-HUP");
    let mut third = after.clone();
    for _ in 0..600 {
        third = version(&addr_a);
        if third != after {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_ne!(third, after, "A reloaded after SIGHUP on B");
    assert_eq!(third, version(&addr_b));

    for server in [&mut a, &mut b] {
        signal(server, "-TERM");
        let status = wait_ended(server);
        assert!(status.success(), "graceful shutdown exits 0: {status:?}");
    }
    // Each server logged its own `config` entry for the reload.
    let entries = block_on(async {
        let store = Store::open(&db.url).await.unwrap();
        let e = all_entries(&store).await;
        store.close().await;
        e
    });
    let reloads = entries
        .iter()
        .filter(|e| {
            e.kind == "config"
                && serde_json::from_str::<Value>(&e.body).unwrap()["policy_version"]
                    == after.as_str()
        })
        .count();
    assert_eq!(
        reloads, 2,
        "one config entry per server for the new version"
    );
    let out = tribunal(d, &["audit", "verify", "--db", &db.url]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    block_on(db.drop()).unwrap();
}
