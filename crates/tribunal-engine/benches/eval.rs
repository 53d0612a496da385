//! `eval` throughput: a generated JSONL of traces (100,000 by default) evaluated with every
//! default judge and the default pack, against a baseline that only parses the same file
//! with serde_json, measured in the same run.
//!
//! Each measurement is taken `TRIBUNAL_BENCH_ROUNDS` times (3 by default), the rounds
//! interleaved, and the fastest of each is compared: on a shared machine, other work only
//! ever adds time. The slowest round is printed too.

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
    let parse_all = || {
        let t = Instant::now();
        let mut parsed = 0usize;
        let reader =
            std::io::BufReader::with_capacity(256 * 1024, std::fs::File::open(&path).unwrap());
        for line in reader.lines() {
            let v: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
            std::hint::black_box(&v);
            parsed += 1;
        }
        assert_eq!(parsed, n);
        t.elapsed()
    };
    let rounds: usize = std::env::var("TRIBUNAL_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);

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
                keep_traces: false,
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
    let mut unscreened = Config::default_with_hash();
    unscreened.policies.screen = false;
    let (mut baselines, mut metrics, mut evals, mut gateds) = (vec![], vec![], vec![], vec![]);
    let mut summary = None;
    for _ in 0..rounds {
        baselines.push(parse_all());
        metrics.push(run(metrics_only.clone()).0);
        let (e, s) = run(Config::default_with_hash());
        evals.push(e);
        summary = Some(s);
        gateds.push(run(unscreened.clone()).0);
    }
    let best = |v: &[std::time::Duration]| *v.iter().min().unwrap();
    let worst = |v: &[std::time::Duration]| *v.iter().max().unwrap();
    let baseline = best(&baselines);
    let (metrics_s, eval, gated) = (best(&metrics), best(&evals), best(&gateds));
    println!(
        "eval throughput: {n} traces, {:.1} MB, {jobs} workers, fastest of {rounds} interleaved rounds",
        bytes as f64 / 1e6
    );
    println!(
        "  baseline (parse with serde_json, 1 thread): {:>7.2} s  {:>9.0} traces/s   (slowest round {:.2} s)",
        baseline.as_secs_f64(),
        n as f64 / baseline.as_secs_f64(),
        worst(&baselines).as_secs_f64()
    );
    let ratio = |d: std::time::Duration| d.as_secs_f64() / baseline.as_secs_f64();
    println!("  eval, code metrics + detectors only:        {:>7.2} s  {:>9.0} traces/s   {:.2}x parse time   (slowest round {:.2} s)", metrics_s.as_secs_f64(), n as f64 / metrics_s.as_secs_f64(), ratio(metrics_s), worst(&metrics).as_secs_f64());
    println!("  eval as run by default (+ default pack):    {:>7.2} s  {:>9.0} traces/s   {:.2}x parse time (target <= 2.0: {})   (slowest round {:.2} s)", eval.as_secs_f64(), n as f64 / eval.as_secs_f64(), ratio(eval), if ratio(eval) <= 2.0 { "met" } else { "NOT met" }, worst(&evals).as_secs_f64());
    println!("  eval with the gates run on every trace (screen off): {:>7.2} s  {:>9.0} traces/s   {:.2}x parse time", gated.as_secs_f64(), n as f64 / gated.as_secs_f64(), ratio(gated));
    println!("  verdicts: {:?}", summary.unwrap());
}
