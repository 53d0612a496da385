//! Memory of the gate's held traces under a stream of distinct trace ids: the in-process
//! server on loopback with the default judges and pack, agents that each send a new trace
//! (a user message, an assistant message with a tool call, a tool result and a pending
//! call, about 2 KB) and then append one step to it, so every held trace carries its judges'
//! states and the screen's memo. The resident set size of the process (server and agents) is
//! printed at checkpoints beside what the held-session cache counts, against the limit
//! (`--gate-session-mb`, here `TRIBUNAL_BENCH_SESSION_MB`, default 32) with no count limit
//! that binds first. A measurement, not a test: it asserts nothing.
//!
//! `TRIBUNAL_BENCH_TRACES` sets how many distinct traces (default 1,000,000).
//! Run: `cargo bench --profile dev -p tribunal-server --bench held_memory`.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tribunal_server::ServerOptions;
use tribunal_store::Store;

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The first request of trace `i`: sent whole.
fn whole(i: usize) -> Vec<u8> {
    let filler = "The customer wrote in about an order that did not arrive on time. ".repeat(6);
    json!({
        "trace_id": format!("t{i}"),
        "trace": [
            {"role": "user", "content": format!("Where is order {i}? {filler}")},
            {"role": "assistant", "content": "Let me look it up.", "tool_calls": [{"id": "c1", "type": "function",
                "function": {"name": "lookup_order", "arguments": format!("{{\"order\": \"{i}\", \"note\": \"{filler}\"}}")}}]},
            {"role": "tool", "tool_call_id": "c1", "content": format!("Order {i}: shipped, arriving tomorrow. {filler}")}
        ],
        "pending": {"kind": "reply", "content": "It has shipped and arrives tomorrow."}
    })
    .to_string()
    .into_bytes()
}

/// The second request of trace `i`: one step appended.
fn append(i: usize) -> Vec<u8> {
    json!({
        "trace_id": format!("t{i}"),
        "offset": 3,
        "append": [{"role": "assistant", "content": format!("Order {i} has shipped and arrives tomorrow.")},
                   {"role": "user", "content": "Thanks. Can you email me the receipt?"}],
        "pending": {"name": "send_email", "arguments": {"to": format!("customer{i}@example.com"), "body": "Your receipt."}}
    })
    .to_string()
    .into_bytes()
}

fn main() {
    let traces = env("TRIBUNAL_BENCH_TRACES", 1_000_000);
    let limit_mb = env("TRIBUNAL_BENCH_SESSION_MB", 32);
    let agents = 8;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("bench.db").to_str().unwrap())
            .await
            .unwrap();
        let mut options = ServerOptions {
            score_quiet: Duration::from_secs(3600),
            ..ServerOptions::default()
        };
        options.gate.sessions = usize::MAX / 2;
        options.gate.session_bytes = limit_mb << 20;
        let (state, background) = tribunal_server::start(store.clone(), options)
            .await
            .unwrap();
        let app = tribunal_server::router(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let token = tribunal_server::auth::create_token(&store, "default", "agent", "bench")
            .await
            .unwrap()
            .1;
        let gate = reqwest::Url::parse(&format!("{base}/api/v1/gate")).unwrap();
        println!(
            "{traces} distinct traces through the gate ({agents} agents, each trace sent whole then appended once), --gate-session-mb {limit_mb}"
        );
        println!("RSS at start: {:.1} MB", rss_mb());
        let next = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..agents {
            let (next, done, gate, token) = (next.clone(), done.clone(), gate.clone(), token.clone());
            tasks.push(tokio::spawn(async move {
                let client = reqwest::Client::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= traces {
                        return;
                    }
                    for body in [whole(i), append(i)] {
                        let res = client
                            .post(gate.clone())
                            .bearer_auth(&token)
                            .header("content-type", "application/json")
                            .body(body)
                            .send()
                            .await
                            .unwrap();
                        assert!(res.status().is_success(), "{}", res.status());
                        res.bytes().await.unwrap();
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        let checkpoint = (traces / 10).max(1);
        let mut seen = 0;
        let mut peak: f64 = 0.0;
        while seen < traces {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = done.load(Ordering::Relaxed);
            peak = peak.max(rss_mb());
            if now / checkpoint > seen / checkpoint || now >= traces {
                println!(
                    "  {now:>9} traces: RSS {:>7.1} MB (peak {:>7.1}), held {:>6} traces counted at {:>6.1} MB, {:.0} traces/s",
                    rss_mb(),
                    peak,
                    state.sessions.len(),
                    state.sessions.bytes() as f64 / (1 << 20) as f64,
                    now as f64 / started.elapsed().as_secs_f64()
                );
            }
            seen = now;
        }
        for t in tasks {
            t.await.unwrap();
        }
        println!(
            "RSS at the end {:.1} MB, peak {:.1} MB; the limit is {limit_mb} MB",
            rss_mb(),
            peak
        );
        background.shutdown(&state).await;
    });
}
