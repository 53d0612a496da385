//! `eval` throughput: a generated JSONL of traces (100,000 by default) evaluated with every
//! default judge and the default pack, against a baseline that only parses the same file
//! with serde_json, measured in the same run.

#[path = "common.rs"]
mod common;

// The same allocator as the `tribunal` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::{BufRead, BufWriter, Write};
use std::time::Instant;
use tribunal_engine::{run_eval, Config, Evaluator, Event, RunOptions};
use tribunal_formats::InputFormat;
use tribunal_policy::Context;

fn main() {
    let n: usize = std::env::var("TRIBUNAL_BENCH_TRACES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("traces.jsonl");
    {
        let mut w = BufWriter::new(std::fs::File::create(&path).unwrap());
        for i in 0..n {
            serde_json::to_writer(&mut w, &common::agent_trace(i, 8 + i % 8)).unwrap();
            w.write_all(b"\n").unwrap();
        }
    }
    let bytes = std::fs::metadata(&path).unwrap().len();

    // Baseline: read and parse every line with serde_json, one thread.
    let t = Instant::now();
    let mut parsed = 0usize;
    let reader = std::io::BufReader::with_capacity(256 * 1024, std::fs::File::open(&path).unwrap());
    for line in reader.lines() {
        let v: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        std::hint::black_box(&v);
        parsed += 1;
    }
    let baseline = t.elapsed();
    assert_eq!(parsed, n);

    let jobs = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let run = |cfg: Config| {
        let evaluator = Evaluator::new(
            cfg.build_judges().unwrap(),
            cfg.build_policies(&[]).unwrap(),
            Context::default(),
        );
        let t = Instant::now();
        let mut results = 0usize;
        let summary = run_eval(
            std::slice::from_ref(&path),
            evaluator,
            &RunOptions {
                format: InputFormat::Auto,
                jobs,
            },
            |e| {
                if let Event::Result(_) = e {
                    results += 1;
                }
            },
        )
        .unwrap();
        assert_eq!(results, n);
        (t.elapsed(), summary)
    };
    let metrics_only = Config::parse("[policies]\nbuiltin = false\n", "bench").unwrap();
    let (metrics, _) = run(metrics_only);
    let (eval, summary) = run(Config::default_with_hash());
    let mut unscreened = Config::default_with_hash();
    unscreened.policies.screen = false;
    let (gated, _) = run(unscreened);
    println!(
        "eval throughput: {n} traces, {:.1} MB, {jobs} workers",
        bytes as f64 / 1e6
    );
    println!(
        "  baseline (parse with serde_json, 1 thread): {:>7.2} s  {:>9.0} traces/s",
        baseline.as_secs_f64(),
        n as f64 / baseline.as_secs_f64()
    );
    let ratio = |d: std::time::Duration| d.as_secs_f64() / baseline.as_secs_f64();
    println!("  eval, code metrics + detectors only:        {:>7.2} s  {:>9.0} traces/s   {:.2}x parse time", metrics.as_secs_f64(), n as f64 / metrics.as_secs_f64(), ratio(metrics));
    println!("  eval as run by default (+ default pack):    {:>7.2} s  {:>9.0} traces/s   {:.2}x parse time (target <= 2.0: {})", eval.as_secs_f64(), n as f64 / eval.as_secs_f64(), ratio(eval), if ratio(eval) <= 2.0 { "met" } else { "NOT met" });
    println!("  eval with the gates run on every trace (screen off): {:>7.2} s  {:>9.0} traces/s   {:.2}x parse time", gated.as_secs_f64(), n as f64 / gated.as_secs_f64(), ratio(gated));
    println!("  verdicts: {summary:?}");
}
