//! What reading the text of a trace costs: the detectors (secrets, PII, prompt injection,
//! dangerous commands) and the policy's text facts (links and the identifiers of argument
//! provenance) on generated traces with long messages (200–2,000 characters, about 14 KB a
//! trace), as a ratio to parsing the same trace's JSON with serde_json, all measured in the
//! same run. The facts are measured both ways: links and identifiers each reading every text
//! on its own (`Links::scan`, then `identifiers`), and in one pass per text (`TextFacts`, what
//! the screen and the policy input use).
//!
//! Each measurement is taken `TRIBUNAL_BENCH_ROUNDS` times (5 by default), the rounds
//! interleaved, and the fastest of each is compared: on a shared machine, other work only
//! ever adds time. `TRIBUNAL_BENCH_TRACES` sets the number of traces (500 by default),
//! `TRIBUNAL_BENCH_STEPS` the fewest messages a trace has (13 by default: 13 to 15, about
//! 14 KB).

#[path = "common.rs"]
mod common;

// The same allocator as the `tribunal` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};
use tribunal_core::Trace;
use tribunal_engine::Config;
use tribunal_formats::{import_value, InputFormat};
use tribunal_judges::JudgeInput;
use tribunal_policy::facts::{Links, ToolClasses};
use tribunal_policy::provenance::{identifiers, TextFacts};

const DETECTORS: &[&str] = &["secrets", "pii", "prompt_injection", "dangerous_commands"];

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn time(f: impl FnOnce()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}

/// Every text of a trace the facts read: message contents and argument strings.
fn for_each_text(trace: &Trace, mut f: impl FnMut(&str)) {
    for m in &trace.messages {
        f(&m.content);
        for c in &m.tool_calls {
            tribunal_policy::strings_of(&c.arguments, &mut |t| f(t));
        }
    }
}

fn main() {
    let n = env("TRIBUNAL_BENCH_TRACES", 500);
    // 13 to 15 messages: about 14 KB a trace.
    let steps = env("TRIBUNAL_BENCH_STEPS", 13);
    let rounds = env("TRIBUNAL_BENCH_ROUNDS", 5).max(1);
    let texts: Vec<String> = (0..n)
        .map(|i| common::long_agent_trace(i, steps + i % 3).to_string())
        .collect();
    let traces: Vec<Trace> = texts
        .iter()
        .map(|t| {
            let v: serde_json::Value = serde_json::from_str(t).unwrap();
            import_value(&v, InputFormat::Auto, "bench")
                .unwrap()
                .remove(0)
        })
        .collect();
    let bytes: usize = texts.iter().map(String::len).sum();
    let cfg = Config::default_with_hash();
    let judges: Vec<_> = cfg
        .build_judges()
        .unwrap()
        .into_iter()
        .filter(|j| DETECTORS.contains(&j.name()))
        .collect();
    assert_eq!(judges.len(), DETECTORS.len(), "the default detectors");
    let classes = ToolClasses::from_data(&tribunal_policy::pack::default_data()).unwrap();
    let min_amount = classes.min_amount();

    let parse = || {
        time(|| {
            for t in &texts {
                let v: serde_json::Value = serde_json::from_str(t).unwrap();
                std::hint::black_box(v);
            }
        })
    };
    let detectors = || {
        time(|| {
            for trace in &traces {
                let input = JudgeInput {
                    trace,
                    pending: None,
                };
                for j in &judges {
                    std::hint::black_box(j.judge(&input));
                }
            }
        })
    };
    // Links and identifiers, each reading the text on its own.
    let facts_apart = || {
        time(|| {
            for trace in &traces {
                for_each_text(trace, |t| {
                    let mut links = Links::default();
                    links.scan(t);
                    let mut idents = Vec::new();
                    identifiers(t, min_amount, &mut idents);
                    std::hint::black_box((links, idents));
                });
            }
        })
    };
    // One pass per text.
    let facts_once = || {
        time(|| {
            for trace in &traces {
                for_each_text(trace, |t| {
                    std::hint::black_box(TextFacts::of(t, min_amount));
                });
            }
        })
    };
    let (mut p, mut d, mut fa, mut fo) = (vec![], vec![], vec![], vec![]);
    for _ in 0..rounds {
        p.push(parse());
        d.push(detectors());
        fa.push(facts_apart());
        fo.push(facts_once());
    }
    let best = |v: &[Duration]| v.iter().min().copied().unwrap_or_default();
    let base = best(&p).as_secs_f64();
    let ratio = |v: &[Duration]| best(v).as_secs_f64() / base;
    println!(
        "text scan: {n} traces of {:.1} KB on average (messages 200-2,000 characters), fastest of {rounds} rounds, one thread",
        bytes as f64 / n as f64 / 1e3
    );
    println!(
        "  baseline: parse the JSON with serde_json   {:>8.2} ms   1.00x",
        base * 1e3
    );
    println!(
        "  detectors (4 default)                      {:>8.2} ms   {:.2}x",
        best(&d).as_secs_f64() * 1e3,
        ratio(&d)
    );
    println!(
        "  facts, links and identifiers apart         {:>8.2} ms   {:.2}x",
        best(&fa).as_secs_f64() * 1e3,
        ratio(&fa)
    );
    println!(
        "  facts, one pass per text (TextFacts)       {:>8.2} ms   {:.2}x",
        best(&fo).as_secs_f64() * 1e3,
        ratio(&fo)
    );
    println!(
        "  detectors + facts: {:.2}x of the parse ({:.2}x with the facts apart)",
        ratio(&d) + ratio(&fo),
        ratio(&d) + ratio(&fa)
    );
}
