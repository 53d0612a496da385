//! Gate decision latency in-process: every default judge plus the default policy pack on a
//! 20-step trace with a pending tool call. Prints p50/p99 against the 100 µs target and
//! against parsing the same trace's JSON (the baseline, measured in the same run).
//! `TRIBUNAL_BENCH_SHAPE=long` makes the messages like real agents' (200–2,000 characters,
//! about 38 KB in all) instead of short ones.

#[path = "common.rs"]
mod common;

// The same allocator as the `tribunal` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::time::{Duration, Instant};
use tribunal_core::{Pending, Trace};
use tribunal_engine::{Ask, Config, Evaluator, Session};
use tribunal_formats::{import_pending, import_value, InputFormat};
use tribunal_policy::Context;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

fn measure(iterations: usize, mut f: impl FnMut()) -> Vec<Duration> {
    for _ in 0..iterations / 10 {
        f();
    }
    let mut out = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let t = Instant::now();
        f();
        out.push(t.elapsed());
    }
    out.sort();
    out
}

/// One decision on a trace seen whole.
fn decide(
    ev: &Arc<Evaluator>,
    trace: &Arc<Trace>,
    pending: &Arc<Pending>,
    ctx: &Context,
) -> tribunal_core::Verdict {
    let ask = Ask {
        pending: Some(pending.clone()),
        context: Some(ctx.clone()),
        budget: None,
    };
    Session::new(trace.clone()).decide(ev, ask).verdict
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let iterations: usize = std::env::var("TRIBUNAL_BENCH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let cfg = Config::default_with_hash();
    let evaluator = Evaluator::new(
        cfg.build_judges().unwrap(),
        cfg.build_policies(&[]).unwrap(),
        Context::default(),
    );
    let long = std::env::var("TRIBUNAL_BENCH_SHAPE").is_ok_and(|v| v == "long");
    let doc = if long {
        common::long_agent_trace(7, 20)
    } else {
        common::agent_trace(7, 20)
    };
    let text = doc.to_string();
    let trace = import_value(&doc, InputFormat::Auto, "bench")
        .unwrap()
        .remove(0);
    assert_eq!(trace.messages.len(), 20);
    let pending = import_pending(&serde_json::json!({"name": "send_email", "arguments": {"to": "customer7@example.com", "body": "Your order ships soon."}})).unwrap();
    let ctx = Context {
        agent: Some("support".into()),
        ..Context::default()
    };
    let mut policy = evaluator.policy_evaluator();
    let shared = Arc::new(trace.clone());
    let pending_arc = Arc::new(pending.clone());

    let parse = measure(iterations, || {
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        std::hint::black_box(v);
    });
    let judges = measure(iterations, || {
        std::hint::black_box(evaluator.feedback(&trace, Some(&pending)));
    });
    let feedback = evaluator.feedback(&trace, Some(&pending));
    let classes =
        tribunal_policy::facts::ToolClasses::from_data(&tribunal_policy::pack::default_data())
            .unwrap();
    let input_only = measure(iterations, || {
        let input =
            tribunal_policy::policy_input(&trace, Some(&pending), &feedback, &ctx, &classes);
        std::hint::black_box(input);
    });
    let policies = measure(iterations, || {
        std::hint::black_box(policy.evaluate_trace(&trace, Some(&pending), &feedback, &ctx));
    });
    let full = measure(iterations, || {
        std::hint::black_box(decide(&evaluator, &shared, &pending_arc, &ctx));
    });
    // The same decision with the gates run even when the screen would skip them, and on a
    // pending call whose destination an earlier tool result mentions (the screen lets it
    // through, so the gates decide).
    let mut unscreened = Config::default_with_hash();
    unscreened.policies.screen = false;
    let gated = Evaluator::new(
        unscreened.build_judges().unwrap(),
        unscreened.build_policies(&[]).unwrap(),
        Context::default(),
    );
    let full_gated = measure(iterations, || {
        std::hint::black_box(decide(&gated, &shared, &pending_arc, &ctx));
    });
    let mut poisoned = trace.clone();
    poisoned.messages[3]
        .content
        .push_str(" Questions: customer7@example.com");
    let poisoned = Arc::new(poisoned);
    let full_flagged = measure(iterations, || {
        std::hint::black_box(decide(&evaluator, &poisoned, &pending_arc, &ctx));
    });
    // What every step of a held trace asks.
    let held_ask = || Ask {
        pending: Some(pending_arc.clone()),
        context: Some(ctx.clone()),
        budget: None,
    };
    // A trace of the same shape with texts of its own: held-trace steps are timed on
    // messages the process has not seen before, as a gate serving many agents sees them
    // (judging the same texts again would find them in the detectors' kept passes).
    let mut seed = 1_000usize;
    let mut fresh = || {
        seed += 1;
        let doc = if long {
            common::long_agent_trace(seed, 20)
        } else {
            common::agent_trace(seed, 20)
        };
        import_value(&doc, InputFormat::Auto, "bench")
            .unwrap()
            .remove(0)
    };
    // A held trace: the session decided at every step before, and this call adds the 20th
    // message (only the new step is the work; the setup is not timed).
    let mut held = Vec::with_capacity(iterations);
    let mut step = |timed: &mut Vec<Duration>| {
        let mut prefix = fresh();
        let last = prefix.messages.pop().unwrap();
        let mut session = Session::new(Trace {
            messages: Vec::new(),
            ..prefix.clone()
        });
        for m in prefix.messages {
            session.extend([m]);
            let ask = held_ask();
            std::hint::black_box(session.decide(&evaluator, ask));
        }
        let ask = held_ask();
        let t = Instant::now();
        session.extend([last]);
        std::hint::black_box(session.decide(&evaluator, ask));
        timed.push(t.elapsed());
    };
    for _ in 0..iterations / 10 {
        step(&mut Vec::new());
    }
    for _ in 0..iterations {
        step(&mut held);
    }
    held.sort();
    // Every step of a held trace timed, not only the last: a step that adds a tool's
    // result (read for identifiers and scanned by the detectors) costs more than one
    // that adds an assistant's message.
    let mut every = Vec::new();
    let rounds = (iterations / trace.messages.len()).max(10);
    for round in 0..rounds + rounds / 10 {
        let grown = fresh();
        let mut session = Session::new(Trace {
            messages: Vec::new(),
            ..grown.clone()
        });
        for m in grown.messages {
            let ask = held_ask();
            let t = Instant::now();
            session.extend([m]);
            std::hint::black_box(session.decide(&evaluator, ask));
            if round >= rounds / 10 {
                every.push(t.elapsed());
            }
        }
    }
    every.sort();
    // A long conversation: a held trace of 100 user turns and answers (about 110 KB), grown
    // by 200 more messages. Each step's pending call is weighed against every user turn
    // before it, so what a step costs shows whether that reading grows with the turns.
    let many_turns = {
        let mut messages = Vec::new();
        for k in 0..100 {
            let turn = common::long_agent_trace(500_000 + k, 5);
            messages.push(turn["messages"][1].clone());
            messages.push(
                serde_json::json!({"role": "assistant", "content": turn["messages"][2]["content"]}),
            );
        }
        let doc = serde_json::json!({"id": "turns", "messages": messages});
        let mut session = Session::new(
            import_value(&doc, InputFormat::Auto, "bench")
                .unwrap()
                .remove(0),
        );
        std::hint::black_box(session.decide(&evaluator, held_ask()));
        let mut timed = Vec::new();
        for k in 0..200 {
            // The agent's next message (the third of a generated run).
            let m = fresh().messages.swap_remove(2);
            let t = Instant::now();
            session.extend([m]);
            std::hint::black_box(session.decide(&evaluator, held_ask()));
            if k >= 20 {
                timed.push(t.elapsed());
            }
        }
        timed.sort();
        timed
    };
    let decision = decide(&evaluator, &shared, &pending_arc, &ctx);
    println!(
        "gate decision, 20-step trace ({} messages, {} bytes), default judges + default pack ({iterations} iterations, decision {}, gates {})",
        if long { "long" } else { "short" },
        text.len(),
        decision.decision,
        if evaluator.policies().is_compiled() { "compiled" } else { "interpreted" }
    );
    println!(
        "  baseline: parse the trace JSON     p50 {:>8.1} us  p99 {:>8.1} us",
        us(percentile(&parse, 0.5)),
        us(percentile(&parse, 0.99))
    );
    println!(
        "  judges only (metrics + detectors)  p50 {:>8.1} us  p99 {:>8.1} us",
        us(percentile(&judges, 0.5)),
        us(percentile(&judges, 0.99))
    );
    println!(
        "  policy input (build + convert)     p50 {:>8.1} us  p99 {:>8.1} us",
        us(percentile(&input_only, 0.5)),
        us(percentile(&input_only, 0.99))
    );
    println!(
        "  policies only (input + all gates)  p50 {:>8.1} us  p99 {:>8.1} us",
        us(percentile(&policies, 0.5)),
        us(percentile(&policies, 0.99))
    );
    println!(
        "  full decision (judges + policies)  p50 {:>8.1} us  p99 {:>8.1} us",
        us(percentile(&full, 0.5)),
        us(percentile(&full, 0.99))
    );
    println!(
        "  full decision, screen off          p50 {:>8.1} us  p99 {:>8.1} us",
        us(percentile(&full_gated, 0.5)),
        us(percentile(&full_gated, 0.99))
    );
    println!(
        "  full decision, screen lets it by   p50 {:>8.1} us  p99 {:>8.1} us  (destination mentioned by a tool result)",
        us(percentile(&full_flagged, 0.5)),
        us(percentile(&full_flagged, 0.99))
    );
    println!(
        "  held trace, one new step (session) p50 {:>8.1} us  p99 {:>8.1} us  (new texts each time)",
        us(percentile(&held, 0.5)),
        us(percentile(&held, 0.99))
    );
    println!(
        "  held trace, every step (session)   p50 {:>8.1} us  p99 {:>8.1} us  ({} steps of {} traces grown message by message)",
        us(percentile(&every, 0.5)),
        us(percentile(&every, 0.99)),
        every.len(),
        every.len() / trace.messages.len()
    );
    println!(
        "  held trace of 100 user turns, one new step p50 {:>8.1} us  p99 {:>8.1} us  ({} steps)",
        us(percentile(&many_turns, 0.5)),
        us(percentile(&many_turns, 0.99)),
        many_turns.len()
    );
    println!(
        "  p99 / target (100 us): whole {:.2}, held {:.2} (screen off: {:.2})   p50 decision / p50 parse: {:.1}x",
        us(percentile(&full, 0.99)) / 100.0,
        us(percentile(&held, 0.99)) / 100.0,
        us(percentile(&full_gated, 0.99)) / 100.0,
        us(percentile(&full, 0.5)) / us(percentile(&parse, 0.5))
    );
}
