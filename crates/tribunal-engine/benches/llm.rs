//! Model-judge throughput: 1,000 traces judged by one `llm` judge through the engine
//! (`run_eval`, its workers and the judge's client) against a local OpenAI-compatible server
//! that answers every request after 200 ms, at concurrency 32. Prints calls/s against the
//! ideal (concurrency ÷ latency) and the CPU time per call, three times: without a cache,
//! with the store-backed response cache empty (answers are written to it), and again
//! answered from that cache.
//!
//! The server runs in a child process (this binary started again with
//! `TRIBUNAL_BENCH_MOCK_SERVER=1`), so the CPU time measured is the engine's alone. Only the
//! model judge runs: the code judges and the policy pack are turned off.
//! `TRIBUNAL_BENCH_CALLS`, `TRIBUNAL_BENCH_CONCURRENCY` and `TRIBUNAL_BENCH_LATENCY_MS`
//! change the figures.

#[path = "common.rs"]
mod common;

// The same allocator as the `tribunal` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::{BufRead, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tribunal_engine::config::share_response_cache;
use tribunal_engine::{run_eval, Config, Evaluator, Event, RunOptions};
use tribunal_formats::InputFormat;
use tribunal_judges::BUILTINS;
use tribunal_llm::ResponseCache;
use tribunal_store::{Store, StoreCache};

const MOCK_ENV: &str = "TRIBUNAL_BENCH_MOCK_SERVER";

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if std::env::var_os(MOCK_ENV).is_some() {
        mock_server(Duration::from_millis(setting(
            "TRIBUNAL_BENCH_LATENCY_MS",
            200,
        )));
        return;
    }
    let calls = setting("TRIBUNAL_BENCH_CALLS", 1000) as usize;
    let concurrency = setting("TRIBUNAL_BENCH_CONCURRENCY", 32) as usize;
    let latency_ms = setting("TRIBUNAL_BENCH_LATENCY_MS", 200);

    let server = MockServer::start();
    let dir = tempfile::tempdir().unwrap();
    let traces = dir.path().join("traces.jsonl");
    {
        let mut w = BufWriter::new(std::fs::File::create(&traces).unwrap());
        for i in 0..calls {
            serde_json::to_writer(&mut w, &common::agent_trace(i, 8)).unwrap();
            w.write_all(b"\n").unwrap();
        }
    }
    let cfg = config(&server.base_url, concurrency);
    let store_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let db = dir.path().join("tribunal.db");
    let store = store_rt
        .block_on(Store::open(db.to_str().unwrap()))
        .unwrap();
    let cache: Arc<dyn ResponseCache> =
        Arc::new(StoreCache::new(store.clone(), store_rt.handle().clone()));

    let ideal = concurrency as f64 / (latency_ms as f64 / 1000.0);
    println!(
        "llm judge through the engine: {calls} calls, server latency {latency_ms} ms, concurrency {concurrency}"
    );
    println!("ideal (concurrency / latency): {ideal:.1} calls/s");

    let requests_before = server.requests();
    let uncached = measure(&cfg, None, &traces, calls);
    let uncached_requests = server.requests() - requests_before;
    assert_eq!(uncached_requests, calls as u64, "one request per trace");
    uncached.print("provider (no cache)", ideal, uncached_requests);

    let requests_before = server.requests();
    let cold = measure(&cfg, Some(&cache), &traces, calls);
    let cold_requests = server.requests() - requests_before;
    assert_eq!(
        cold.cached, 0,
        "the first run found answers in an empty cache"
    );
    assert_eq!(cold_requests, calls as u64, "one request per trace");
    cold.print("provider (cold cache)", ideal, cold_requests);

    let requests_before = server.requests();
    let warm = measure(&cfg, Some(&cache), &traces, calls);
    let warm_requests = server.requests() - requests_before;
    assert_eq!(warm.cached, calls, "every answer comes from the cache");
    assert_eq!(warm_requests, 0, "the cached run reached the server");
    warm.print("store cache (warm)", ideal, warm_requests);

    store_rt.block_on(store.close());
    server.stop();
}

/// Only the model judge: every default judge off, no policy pack.
fn config(base_url: &str, concurrency: usize) -> Config {
    let mut text = String::from("[policies]\nbuiltin = false\n\n");
    for b in BUILTINS.iter().filter(|b| b.default_on) {
        text.push_str(&format!("[judges.{}]\nenabled = false\n\n", b.kind));
    }
    text.push_str(&format!(
        r#"[judges.grounded]
kind = "llm"
instructions = """Is every claim in the agent's last reply supported by the tool results?
{{{{ conversation }}}}"""
model = "openai:/gpt-4o-mini"
base_url = "{base_url}"
concurrency = {concurrency}
max_retries = 0
timeout_ms = 30000
"#
    ));
    Config::parse(&text, "bench.toml").unwrap()
}

struct Pass {
    wall: Duration,
    cpu: Duration,
    results: usize,
    cached: usize,
}

impl Pass {
    fn print(&self, label: &str, ideal: f64, requests: u64) {
        let per_second = self.results as f64 / self.wall.as_secs_f64();
        println!(
            "{label:<22} {per_second:>9.1} calls/s  {:>7.1}% of ideal  CPU {:>7.1} µs/call  wall {:>6.2} s  HTTP requests {requests}",
            100.0 * per_second / ideal,
            self.cpu.as_secs_f64() * 1e6 / self.results as f64,
            self.wall.as_secs_f64(),
        );
    }
}

fn measure(
    cfg: &Config,
    cache: Option<&Arc<dyn ResponseCache>>,
    traces: &Path,
    calls: usize,
) -> Pass {
    let mut judges = cfg.build_judges().unwrap();
    if let Some(cache) = cache {
        share_response_cache(&mut judges, cache).unwrap();
    }
    let evaluator = Evaluator::new(
        judges,
        cfg.build_policies(&[]).unwrap(),
        cfg.context.clone(),
    );
    let (mut results, mut cached) = (0usize, 0usize);
    let cpu = cpu_time();
    let t = Instant::now();
    run_eval(
        &[traces.to_path_buf()],
        evaluator,
        &RunOptions {
            format: InputFormat::Auto,
            jobs: 0,
            keep_traces: false,
        },
        |e| match e {
            Event::Result(r) => {
                let f = r
                    .feedback
                    .iter()
                    .find(|f| f.name == "grounded")
                    .expect("the judge's feedback");
                assert!(f.error.is_none(), "{:?}", f.error);
                assert_eq!(f.value, "yes");
                let usage = f.usage.as_ref().expect("usage");
                cached += usage.cached_calls as usize;
                results += 1;
            }
            Event::Rejected(e) => panic!("{e}"),
        },
    )
    .unwrap();
    let wall = t.elapsed();
    let cpu = cpu_time() - cpu;
    assert_eq!(results, calls);
    Pass {
        wall,
        cpu,
        results,
        cached,
    }
}

/// User plus system CPU time of this process, all threads.
fn cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given; RUSAGE_SELF is always valid.
    let usage = unsafe {
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()), 0);
        usage.assume_init()
    };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// The server in its child process.
struct MockServer {
    child: Child,
    base_url: String,
    addr: String,
}

impl MockServer {
    fn start() -> MockServer {
        let exe: PathBuf = std::env::current_exe().unwrap();
        let mut child = Command::new(exe)
            .env(MOCK_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line.trim().to_owned();
        assert!(!addr.is_empty(), "the mock server did not start");
        MockServer {
            child,
            base_url: format!("http://{addr}/v1"),
            addr,
        }
    }

    /// Requests the server has answered so far.
    fn requests(&self) -> u64 {
        let mut s = std::net::TcpStream::connect(&self.addr).unwrap();
        write!(
            s,
            "GET /stats HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .unwrap();
        let mut response = String::new();
        s.read_to_string(&mut response).unwrap();
        let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
        body.trim().parse().unwrap()
    }

    fn stop(mut self) {
        // Closing its stdin ends the server.
        drop(self.child.stdin.take());
        self.child.wait().unwrap();
    }
}

/// Answers every chat completion with a verdict after `latency`; `GET /stats` returns the
/// number answered. Prints its address, then serves until stdin closes.
fn mock_server(latency: Duration) {
    use axum::routing::{get, post};
    use std::sync::atomic::{AtomicU64, Ordering};

    let answered = Arc::new(AtomicU64::new(0));
    let counter = answered.clone();
    let app = axum::Router::new()
        .route(
            "/v1/chat/completions",
            post(move |axum::Json(_body): axum::Json<serde_json::Value>| {
                let counter = counter.clone();
                async move {
                    tokio::time::sleep(latency).await;
                    counter.fetch_add(1, Ordering::SeqCst);
                    axum::Json(serde_json::json!({
                        "id": "chatcmpl-bench", "object": "chat.completion", "model": "gpt-4o-mini",
                        "choices": [{"index": 0, "message": {"role": "assistant",
                            "content": "{\"rationale\": \"the tool results say so\", \"result\": \"yes\"}"},
                            "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 900, "completion_tokens": 20, "total_tokens": 920}
                    }))
                }
            }),
        )
        .route(
            "/stats",
            get(move || async move { answered.load(Ordering::SeqCst).to_string() }),
        );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("{}", listener.local_addr().unwrap());
        std::io::stdout().flush().unwrap();
        let stop = tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
        });
        tokio::select! {
            r = axum::serve(listener, app) => r.unwrap(),
            _ = stop => {}
        }
    });
}
