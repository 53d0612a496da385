//! The server over HTTP on loopback, with the default judges and policy pack. Each client is
//! an agent that asks the gate before every step of a 20-message support conversation (a
//! new conversation, with new texts, every 19 calls), in two ways: sending the whole
//! conversation each time, and sending it once then appending each new message.
//! - gate latency, one request at a time (p50/p99; targets p99 ≤ 0.75 ms with the decision
//!   committed before the answer, and no stalls: p99 within 3× of p50);
//! - gate throughput with several clients, as a ratio to a bare endpoint of the same server
//!   stack (same router, token check and middleware, a handler that reads the body and
//!   answers a constant) sent the same requests in the same run (target ≥ 0.45), the two
//!   measured in alternating rounds. The agents run on a runtime of their own (two
//!   threads, apart from the server's, as agents run in their own processes) and read the
//!   decision from each answer as an agent would (into a typed struct; the rest of the
//!   answer is skipped over, not built into a JSON tree);
//! - OTLP ingest into SQLite, spans per second, protobuf requests of 100 spans.
//!
//! `TRIBUNAL_BENCH_ITERATIONS` sets the number of latency samples (default 3000);
//! `TRIBUNAL_BENCH_WAYS=whole` or `=append` runs one of the two ways only (for profiling);
//! `TRIBUNAL_BENCH_STEPS` sets the conversation's length (default 20) and
//! `TRIBUNAL_BENCH_SHAPE=long` makes its messages like real agents' (200–2,000 characters
//! each: about 9.5 KB at 5 steps, 38 KB at 20, 190 KB at 100) instead of short ones.

#[path = "../../tribunal-engine/benches/common.rs"]
mod common;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tribunal_server::ServerOptions;
use tribunal_store::Store;

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Sends one request and reads the answer as a `T`.
async fn send<T: serde::de::DeserializeOwned>(
    c: &reqwest::Client,
    url: &reqwest::Url,
    token: &str,
    body: Vec<u8>,
) -> T {
    let res = c
        .post(url.clone())
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let bytes = res.bytes().await.unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// What an agent reads of an answer to decide what to do.
#[derive(serde::Deserialize)]
struct Decided {
    decision: String,
}

/// Sends one request and reads the decision.
async fn decide(c: &reqwest::Client, url: &reqwest::Url, token: &str, body: Vec<u8>) -> String {
    send::<Decided>(c, url, token, body).await.decision
}

/// The requests of an agent that asks the gate before each step of its conversations.
struct Walk {
    client: usize,
    round: usize,
    step: usize,
    append: bool,
    messages: Vec<Value>,
    id: String,
}

/// The conversation's length (`TRIBUNAL_BENCH_STEPS`).
fn steps() -> usize {
    static STEPS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *STEPS.get_or_init(|| {
        std::env::var("TRIBUNAL_BENCH_STEPS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n| n >= 3)
            .unwrap_or(20)
    })
}

/// Whether messages are as long as real agents' (`TRIBUNAL_BENCH_SHAPE=long`).
fn long() -> bool {
    std::env::var("TRIBUNAL_BENCH_SHAPE").is_ok_and(|v| v == "long")
}

impl Walk {
    fn new(client: usize, append: bool) -> Walk {
        let mut w = Walk {
            client,
            round: 0,
            step: 0,
            append,
            messages: Vec::new(),
            id: String::new(),
        };
        w.start_round();
        w
    }

    fn start_round(&mut self) {
        // Distinct customers, orders and ids per client and round: new texts every round.
        let seed = 1 + self.client * 1_000_000 + self.round;
        let t = if long() {
            common::long_agent_trace(seed, steps())
        } else {
            common::agent_trace(seed, steps())
        };
        self.messages = t["messages"].as_array().unwrap().clone();
        self.id = format!("bench-{}-{}-{}", self.append, self.client, self.round);
        self.step = 2;
    }

    /// The next request body.
    fn next(&mut self) -> Vec<u8> {
        if self.step > steps() {
            self.round += 1;
            self.start_round();
        }
        let n = self.step;
        let pending = json!({"name": "send_email", "arguments": {"to": format!("customer{}@example.com", self.client), "body": "Your order ships soon."}});
        let body = if self.append && n > 2 {
            json!({"trace_id": self.id, "offset": n - 1, "append": [self.messages[n - 1]], "pending": pending, "context": {"agent": "support"}})
        } else {
            json!({"trace": {"id": self.id, "messages": &self.messages[..n]}, "pending": pending, "context": {"agent": "support"}})
        };
        self.step += 1;
        body.to_string().into_bytes()
    }
}

/// CPU time this process has used (user and system, all threads), when the system says.
fn cpu_time() -> Option<Duration> {
    // /proc/self/stat: utime and stime are fields 14 and 15, in clock ticks (100 per second),
    // counted after the command name, which may hold spaces but ends at the last ')'.
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Requests per second with `clients` concurrent agents for `dur`. The agents run on a
/// runtime of their own, on one thread apart from the server's, as agents calling a gate
/// run in their own process.
/// Clients are numbered from `first` (their conversations, and so their texts and trace ids,
/// follow from the number) and spread over `urls` (servers) by number.
fn throughput(
    urls: &[reqwest::Url],
    token: &str,
    append: bool,
    (first, clients): (usize, usize),
    dur: Duration,
) -> f64 {
    let (urls, token) = (urls.to_vec(), token.to_owned());
    let agents = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let stop = Instant::now() + dur;
            let mut tasks = tokio::task::JoinSet::new();
            for client in first..first + clients {
                let (url, token) = (urls[client % urls.len()].clone(), token.clone());
                tasks.spawn(async move {
                    let c = reqwest::Client::new();
                    let mut walk = Walk::new(client, append);
                    let mut n = 0u64;
                    while Instant::now() < stop {
                        std::hint::black_box(decide(&c, &url, &token, walk.next()).await);
                        n += 1;
                    }
                    n
                });
            }
            let mut total = 0;
            while let Some(n) = tasks.join_next().await {
                total += n.unwrap();
            }
            total
        })
    });
    agents.join().unwrap() as f64 / dur.as_secs_f64()
}

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn otlp_batch(batch: u64, spans: u64) -> Vec<u8> {
    let mut trace_id = [0u8; 16];
    trace_id[..8].copy_from_slice(&batch.to_be_bytes());
    // An all-zero id is not a trace id (OTLP refuses it).
    trace_id[15] = 1;
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: (0..spans)
                    .map(|i| Span {
                        trace_id: trace_id.to_vec(),
                        span_id: (i + 1).to_be_bytes().to_vec(),
                        parent_span_id: if i == 0 {
                            vec![]
                        } else {
                            1u64.to_be_bytes().to_vec()
                        },
                        name: format!("chat step {i}"),
                        start_time_unix_nano: 1_700_000_000_000_000_000 + i * 1_000_000,
                        end_time_unix_nano: 1_700_000_000_000_500_000 + i * 1_000_000,
                        attributes: vec![
                            kv("gen_ai.operation.name", "chat"),
                            kv("gen_ai.request.model", "gpt-4o-mini"),
                        ],
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn main() {
    let iterations: usize = std::env::var("TRIBUNAL_BENCH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("bench.db").to_str().unwrap())
            .await
            .unwrap();
        let (state, background) = tribunal_server::start(
            store.clone(),
            ServerOptions {
                score_quiet: Duration::from_secs(3600),
                ..ServerOptions::default()
            },
        )
        .await
        .unwrap();
        let bare = axum::Router::new().route(
            "/bench/bare",
            post(|body: axum::body::Bytes| async move {
                std::hint::black_box(body.len());
                axum::Json(json!({"decision": "allow"}))
            }),
        );
        let app = tribunal_server::router_with(state.clone(), bare);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let token = tribunal_server::auth::create_token(&store, "default", "agent", "bench")
            .await
            .unwrap()
            .1;

        let gate = reqwest::Url::parse(&format!("{base}/api/v1/gate")).unwrap();
        let bare = reqwest::Url::parse(&format!("{base}/bench/bare")).unwrap();
        let client = reqwest::Client::new();
        let ways = std::env::var("TRIBUNAL_BENCH_WAYS").unwrap_or_default();
        for append in [false, true] {
            if !ways.is_empty() && ways != if append { "append" } else { "whole" } {
                continue;
            }
            let way = if append {
                "appending each step"
            } else {
                "whole trace each call"
            };
            let mut walk = Walk::new(1000, append);
            let mut bytes = 0;
            let mut answer = 0;
            let mut inside = 0;
            let calls = 10 * (steps() - 1);
            for _ in 0..calls {
                let body = walk.next();
                bytes += body.len();
                let a: Value = send(&client, &gate, &token, body).await;
                answer += a.to_string().len();
                inside += a["elapsed_us"].as_u64().unwrap_or(0) as usize;
            }
            println!(
                "{way}, {} steps{}: requests of {} bytes, answers of {} bytes, {} µs in the gate (elapsed_us) on average",
                steps(),
                if long() { " (long messages)" } else { "" },
                bytes / calls,
                answer / calls,
                inside / calls
            );
            for (name, url) in [("bare endpoint", &bare), ("gate", &gate)] {
                // Both endpoints get the same requests.
                let mut walk = Walk::new(100, append);
                for _ in 0..iterations / 10 {
                    decide(&client, url, &token, walk.next()).await;
                }
                let mut samples = Vec::with_capacity(iterations);
                for _ in 0..iterations {
                    let body = walk.next();
                    let t = Instant::now();
                    std::hint::black_box(decide(&client, url, &token, body).await);
                    samples.push(t.elapsed());
                }
                samples.sort();
                let (p50, p99) = (pct(&samples, 0.5), pct(&samples, 0.99));
                println!(
                    "  {name:<14} latency over HTTP: p50 {:>7.1} µs  p99 {:>7.1} µs  p99/p50 {:.1}{}",
                    us(p50),
                    us(p99),
                    us(p99) / us(p50),
                    if name == "gate" {
                        format!(
                            "  (targets p99 ≤ 750 µs: {}; p99/p50 ≤ 3: {})",
                            if us(p99) <= 750.0 { "met" } else { "NOT met" },
                            if us(p99) <= 3.0 * us(p50) { "met" } else { "NOT met" }
                        )
                    } else {
                        String::new()
                    }
                );
            }
            // Alternating rounds, so that a change in the machine's load (other tenants of
            // a shared host) weighs on both endpoints alike.
            let (rounds, dur, clients) = (4, Duration::from_millis(1500), 8);
            let (mut bare_n, mut gate_n, mut each) = (0.0, 0.0, Vec::new());
            // CPU time of the whole process (agents, server, database) per request.
            let (mut bare_cpu, mut gate_cpu) = (0.0, 0.0);
            for round in 0..rounds {
                // Both endpoints get the same requests in a round; every round has clients,
                // conversations and texts of its own.
                let who = (10_000 + round * clients, clients);
                let c0 = cpu_time();
                let b = tokio::task::block_in_place(|| throughput(std::slice::from_ref(&bare), &token, append, who, dur));
                let c1 = cpu_time();
                let g = tokio::task::block_in_place(|| throughput(std::slice::from_ref(&gate), &token, append, who, dur));
                let c2 = cpu_time();
                bare_n += b;
                gate_n += g;
                each.push(format!("{:.2}", g / b));
                if let (Some(c0), Some(c1), Some(c2)) = (c0, c1, c2) {
                    let secs = dur.as_secs_f64();
                    bare_cpu += (c1 - c0).as_secs_f64() / (b * secs);
                    gate_cpu += (c2 - c1).as_secs_f64() / (g * secs);
                }
            }
            let ratio = gate_n / bare_n;
            println!(
                "  throughput, {clients} clients, {rounds} alternating rounds of {:.1} s: bare {:.0} req/s, gate {:.0} req/s, ratio {ratio:.2} (rounds {}; target ≥ 0.45: {})",
                dur.as_secs_f64(),
                bare_n / rounds as f64,
                gate_n / rounds as f64,
                each.join(" "),
                if ratio >= 0.45 { "met" } else { "NOT met" }
            );
            if gate_cpu > 0.0 {
                println!(
                    "  CPU per request, agents and server together: bare {:.1} µs, gate {:.1} µs (bare / gate {:.2})",
                    bare_cpu / rounds as f64 * 1e6,
                    gate_cpu / rounds as f64 * 1e6,
                    bare_cpu / gate_cpu
                );
            }
        }

        let otlp = format!("{base}/v1/traces");
        let batches = 200u64;
        let per = 100u64;
        let payloads: Vec<Vec<u8>> = (0..batches).map(|b| otlp_batch(b, per)).collect();
        let t = Instant::now();
        for p in payloads {
            let res = client
                .post(&otlp)
                .bearer_auth(&token)
                .header("content-type", "application/x-protobuf")
                .body(p)
                .send()
                .await
                .unwrap();
            let status = res.status();
            assert!(status.is_success(), "{status}: {:?}", res.text().await);
        }
        let el = t.elapsed();
        println!(
            "OTLP ingest into SQLite: {} spans in {:.2} s = {:.0} spans/s ({} requests of {per} spans, each durable before its answer)",
            batches * per,
            el.as_secs_f64(),
            (batches * per) as f64 / el.as_secs_f64(),
            batches
        );
        background.shutdown(&state).await;
        if std::env::var("TRIBUNAL_BENCH_POSTGRES").is_ok() {
            two_servers_on_postgres(&ways).await;
        }
    });
}

/// Starts a server on `url`'s store, on this runtime, listening on loopback: its state,
/// background tasks and gate URL.
async fn server_on(
    url: &str,
) -> (
    std::sync::Arc<tribunal_server::AppState>,
    tribunal_server::Background,
    reqwest::Url,
) {
    let store = Store::open(url).await.unwrap();
    let (state, background) = tribunal_server::start(
        store,
        ServerOptions {
            score_quiet: Duration::from_secs(3600),
            ..ServerOptions::default()
        },
    )
    .await
    .unwrap();
    let app = tribunal_server::router(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gate = format!("http://{}/api/v1/gate", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (state, background, reqwest::Url::parse(&gate).unwrap())
}

/// Gate throughput of one server on a PostgreSQL database, and of two servers sharing one
/// (the agents spread over both, every decision committed to the one chain before its
/// answer), in alternating rounds (`TRIBUNAL_BENCH_POSTGRES`; the database server is the
/// tests' one, `TRIBUNAL_TEST_POSTGRES_URL`). Both servers run in this process, so they share
/// its cores: the figure shows what sharing the database and its chain costs, not what a
/// second machine adds.
async fn two_servers_on_postgres(ways: &str) {
    let db = tribunal_store::testing::TestDatabase::create("tribunal_bench")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (a, a_bg, gate_a) = server_on(&db.url).await;
    let (b, b_bg, gate_b) = server_on(&db.url).await;
    let token = tribunal_server::auth::create_token(&a.store, "default", "agent", "bench")
        .await
        .unwrap()
        .1;
    for append in [false, true] {
        if !ways.is_empty() && ways != if append { "append" } else { "whole" } {
            continue;
        }
        let (rounds, dur, clients) = (3, Duration::from_millis(1500), 8);
        let (mut one_n, mut two_n) = (0.0, 0.0);
        for round in 0..rounds {
            let who = (50_000 + round * 2 * clients, clients);
            let one = [gate_a.clone()];
            let two = [gate_a.clone(), gate_b.clone()];
            one_n += tokio::task::block_in_place(|| throughput(&one, &token, append, who, dur));
            let who = (who.0 + clients, clients);
            two_n += tokio::task::block_in_place(|| throughput(&two, &token, append, who, dur));
        }
        println!(
            "PostgreSQL, {}, {clients} clients: one server {:.0} req/s, two servers on one database {:.0} req/s, ratio {:.2}",
            if append { "appending each step" } else { "whole trace each call" },
            one_n / rounds as f64,
            two_n / rounds as f64,
            two_n / one_n
        );
    }
    a_bg.shutdown(&a).await;
    b_bg.shutdown(&b).await;
    let r = tribunal_server::audit::verify(&a.store).await.unwrap();
    println!(
        "  the shared log after both: {} entries, chain {}",
        r.entries,
        if r.ok() { "verifies" } else { "BROKEN" }
    );
    a.store.close().await;
    b.store.close().await;
    db.drop().await.unwrap();
}
