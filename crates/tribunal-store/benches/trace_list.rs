//! The trace list the UI pages through, with 100,000 stored gate traces in SQLite: server
//! time of a page with no filter, by decision, by rule, by text, and a deep page, as p50 and
//! p95 over repeated queries (target: p95 ≤ 100 ms). Run with
//! `cargo bench -p tribunal-store --bench trace_list` (`TRACES=N` to change the count).

use std::time::Instant;
use tribunal_store::{GateTraceRow, Store, TraceFilter};

fn main() {
    let n: usize = std::env::var("TRACES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = rt
        .block_on(Store::open(dir.path().join("bench.db").to_str().unwrap()))
        .unwrap();
    let rules = [
        "c6.dangerous_command",
        "c2.indirect_injection",
        "c4.external_recipient",
        "c5.denied_tool",
    ];
    let started = Instant::now();
    let mut batch = Vec::with_capacity(1000);
    for i in 0..n {
        let decision = match i % 10 {
            0 => "block",
            1 => "escalate",
            _ => "allow",
        };
        let violations = if decision == "allow" {
            String::new()
        } else {
            format!(
                r#"{{"rule":"{}","severity":"{decision}","message":"m","evidence":["m1"]}}"#,
                rules[i % rules.len()]
            )
        };
        let body = format!(
            r#"{{"trace_id":"t{i}","trace":[{{"role":"user","content":"please look at order {i} and tell me where it is; {}"}}]}}"#,
            "some words of a realistic message ".repeat(8)
        );
        let result = format!(
            r#"{{"decision":"{decision}","violations":[{violations}],"feedback":[{{"name":"secrets","value":0.0}},{{"name":"pii","value":0.0}}],"trace_id":"t{i}"}}"#
        );
        let ms = 1_700_000_000_000i64 + i as i64 * 1000;
        batch.push(GateTraceRow {
            project: "default".into(),
            trace_id: format!("t{i}"),
            body,
            decision: decision.into(),
            result,
            at: tribunal_store::clock::rfc3339_from_ms(ms),
            at_ms: ms,
            agent: None,
            digest: None,
        });
        if batch.len() == 1000 {
            rt.block_on(store.upsert_gate_traces(&batch)).unwrap();
            batch.clear();
        }
    }
    rt.block_on(store.upsert_gate_traces(&batch)).unwrap();
    println!(
        "stored {n} traces in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let cases: Vec<(&str, TraceFilter)> = vec![
        (
            "newest page",
            TraceFilter {
                limit: 50,
                ..TraceFilter::default()
            },
        ),
        (
            "decision=block",
            TraceFilter {
                decision: Some("block".into()),
                limit: 50,
                ..TraceFilter::default()
            },
        ),
        (
            "rule=c5.denied_tool",
            TraceFilter {
                rule: Some("c5.denied_tool".into()),
                limit: 50,
                ..TraceFilter::default()
            },
        ),
        (
            "text=order 4242 (rare)",
            TraceFilter {
                text: Some("order 4242 ".into()),
                limit: 50,
                ..TraceFilter::default()
            },
        ),
        (
            "page 1000 (offset 50,000)",
            TraceFilter {
                limit: 50,
                offset: 50_000,
                ..TraceFilter::default()
            },
        ),
    ];
    println!("{:<28} {:>9} {:>9}", "query", "p50 ms", "p95 ms");
    for (name, f) in cases {
        let mut times: Vec<f64> = (0..20)
            .map(|_| {
                let t = Instant::now();
                let rows = rt.block_on(store.list_traces("default", &f)).unwrap();
                std::hint::black_box(rows);
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        times.sort_by(f64::total_cmp);
        println!("{name:<28} {:>9.1} {:>9.1}", times[9], times[18]);
    }
}
