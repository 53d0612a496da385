//! What a held session says it keeps (the trace's footprint and `Kept::bytes`, which the
//! gate counts against `--gate-session-mb`) against the bytes it actually holds: what
//! dropping it frees, counted by this test's own allocator.

use serde_json::json;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;
use tribunal_core::size::Heap;
use tribunal_engine::{Ask, Config, Evaluator, Session};
use tribunal_formats::{import_pending, import_value, InputFormat};
use tribunal_policy::Context;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - layout.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn first(i: usize) -> serde_json::Value {
    let filler =
        format!("The customer {i} wrote in about an order that did not arrive on time. ").repeat(6);
    json!({"id": format!("t{i}"), "messages": [
        {"role": "user", "content": format!("Where is order {i}? {filler}")},
        {"role": "assistant", "content": "Let me look it up.", "tool_calls": [{"id": "c1", "type": "function",
            "function": {"name": "lookup_order", "arguments": format!("{{\"order\": \"{i}\", \"note\": \"{filler}\"}}")}}]},
        {"role": "tool", "tool_call_id": "c1", "content": format!("Order {i}: shipped, arriving tomorrow. {filler}")}
    ]})
}

fn step(i: usize) -> serde_json::Value {
    json!({"messages": [
        {"role": "assistant", "content": format!("Order {i} has shipped and arrives tomorrow.")},
        {"role": "user", "content": "Thanks. Can you email me the receipt?"}
    ]})
}

/// Bytes freed by dropping what `make` returns, per item: what the items held, whatever
/// caches shared by all of them grew by meanwhile.
fn freed_by<T>(n: usize, make: impl FnMut(usize) -> T) -> (Vec<T>, impl FnOnce(Vec<T>) -> f64) {
    let items: Vec<T> = (0..n).map(make).collect();
    (items, move |items: Vec<T>| {
        let with = LIVE.load(Ordering::Relaxed);
        drop(items);
        (with - LIVE.load(Ordering::Relaxed)) as f64 / n as f64
    })
}

#[test]
fn what_a_held_session_counts_is_what_it_keeps() {
    let cfg = Config::default_with_hash();
    let evaluator: Arc<Evaluator> = Evaluator::new(
        cfg.build_judges().unwrap(),
        cfg.build_policies(&[]).unwrap(),
        Context::default(),
    );
    let pending = Arc::new(
        import_pending(&json!({"name": "send_email", "arguments": {"to": "customer@example.com", "body": "Your receipt."}}))
            .unwrap(),
    );
    let hold = |i: usize| {
        let trace = import_value(&first(i), InputFormat::Auto, "t")
            .unwrap()
            .remove(0);
        let mut session = Session::new(trace);
        let ask = || Ask {
            pending: Some(pending.clone()),
            context: None,
            budget: None,
        };
        std::hint::black_box(session.decide(&evaluator, ask()));
        let more = import_value(&step(i), InputFormat::Auto, "t")
            .unwrap()
            .remove(0);
        session.extend(more.messages);
        std::hint::black_box(session.decide(&evaluator, ask()));
        session.into_parts()
    };
    // Caches shared by every trace (detectors' memos, lazily built tables) fill first.
    for i in 0..3000 {
        drop(hold(1_000_000 + i));
    }
    let n = 2000;
    let per = |total: usize| total as f64 / n as f64;

    // The trace as imported, against its footprint.
    let (traces, free) = freed_by(n, |i| {
        import_value(&first(i), InputFormat::Auto, "t")
            .unwrap()
            .remove(0)
    });
    let trace_counted = per(traces.iter().map(|t| t.footprint()).sum());
    let trace_real = free(traces);

    // The trace held by a session that decided twice, and what the session kept.
    let (held, free) = freed_by(n, hold);
    let counted = per(held
        .iter()
        .map(|(trace, kept)| trace.footprint() + kept.as_ref().map_or(0, |k| k.bytes()))
        .sum());
    let real = free(held);
    println!("a trace as imported: {trace_real:.0} bytes allocated, {trace_counted:.0} counted");
    println!(
        "a held trace with its session: {real:.0} bytes allocated, {counted:.0} counted ({:.2})",
        counted / real
    );
    // The count allows for the allocator's overhead per block, so it runs above what was
    // asked for; well below, something held is not counted.
    assert!(
        counted / real > 0.9 && counted / real < 1.6,
        "held {real:.0} bytes, counted {counted:.0}"
    );
    assert!(
        trace_counted / trace_real > 0.9,
        "trace: {trace_real:.0} bytes, counted {trace_counted:.0}"
    );
}
