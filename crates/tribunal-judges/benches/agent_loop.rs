//! Tool-loop overhead per turn, model latency excluded.
//!
//! 1. In process: the loop against a scripted model that answers at once, so each turn costs
//!    only the loop's own work (running the trace tool, quoting its result, pruning checks,
//!    answer checks).
//! 2. Through the HTTP client: the same script served by a local server that answers at once,
//!    against the baseline of one plain LLM-judge call (system + user prompt + answer schema)
//!    through the same client and server, measured in the same run.
//!
//! Run: `cargo bench -p tribunal-judges --bench agent_loop`.

use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tribunal_core::{Message, Role, Span, SpanKind, SpanStatus, ToolCall, Trace};
use tribunal_judges::agent::{investigate, AnswerKind, ChatModel, Limits, Task, SUBMIT};
use tribunal_judges::llm::OutputType;
use tribunal_llm::{
    BoxFuture, ChatRequest, ChatResponse, ClientConfig, LlmClient, LlmError, ModelToolCall,
    ResponseSchema, Usage,
};

const TURNS: usize = 20;

/// A 3-agent run of 60 spans with a few KB of content.
fn trace() -> Trace {
    let mut spans = vec![Span {
        id: "root".into(),
        kind: SpanKind::Chain,
        name: "crew".into(),
        start_ns: Some(0),
        end_ns: Some(60_000_000),
        status: SpanStatus::ok(),
        ..Span::default()
    }];
    let mut messages = vec![Message::new(
        "u",
        Role::User,
        "Plan a trip to Lisbon in May.",
    )];
    for a in 0..3 {
        let agent = format!("agent{a}");
        spans.push(Span {
            id: agent.clone(),
            parent_id: Some("root".into()),
            kind: SpanKind::Agent,
            name: ["planner", "researcher", "writer"][a].into(),
            start_ns: Some(a as u64 * 20_000_000),
            end_ns: Some((a as u64 + 1) * 20_000_000),
            status: SpanStatus::ok(),
            ..Span::default()
        });
        for k in 0..19 {
            let id = format!("s{a}_{k}");
            let tool = k % 2 == 1;
            let start = a as u64 * 20_000_000 + k as u64 * 1_000_000;
            spans.push(Span {
                id: id.clone(),
                parent_id: Some(agent.clone()),
                kind: if tool { SpanKind::Tool } else { SpanKind::Llm },
                name: if tool {
                    format!("search_{}", k % 3)
                } else {
                    "chat".into()
                },
                start_ns: Some(start),
                end_ns: Some(start + 900_000),
                inputs: Some(
                    json!({"query": format!("hotels in Lisbon near sight {k}"), "page": k}),
                ),
                outputs: Some(json!(format!("Result {k}: ").repeat(40))),
                status: if k == 7 && a == 1 {
                    SpanStatus {
                        code: "error".into(),
                        message: "timeout".into(),
                    }
                } else {
                    SpanStatus::ok()
                },
                ..Span::default()
            });
            if tool {
                let mut call = Message::new(format!("{id}.call"), Role::Assistant, "");
                call.tool_calls.push(ToolCall {
                    id: format!("c_{id}"),
                    name: format!("search_{}", k % 3),
                    arguments: json!({"q": format!("sight {k}")}),
                    span_id: Some(id.clone()),
                });
                let mut result =
                    Message::new(id.clone(), Role::Tool, format!("Result {k}: ").repeat(40));
                result.tool_call_id = Some(format!("c_{id}"));
                messages.push(call);
                messages.push(result);
            }
        }
    }
    messages.push(Message::new("s2_18", Role::Assistant, "Here is your plan."));
    Trace {
        id: "bench".into(),
        spans,
        messages,
        ..Trace::default()
    }
}

/// Nineteen investigating turns over all six tools, then the answer.
fn script() -> Vec<Vec<ModelToolCall>> {
    let call = |i: usize, name: &str, args: Value| ModelToolCall {
        id: format!("t{i}"),
        name: name.into(),
        arguments: args,
    };
    let mut out: Vec<Vec<ModelToolCall>> = (0..TURNS - 1)
        .map(|i| {
            vec![match i % 6 {
                0 => call(i, "get_trace_info", json!({})),
                1 => call(i, "list_spans", json!({"offset": i, "limit": 10})),
                2 => call(i, "get_span", json!({"id": format!("s1_{}", i % 19)})),
                3 => call(
                    i,
                    "search_trace",
                    json!({"pattern": format!("sight {}", i % 19), "limit": 5}),
                ),
                4 => call(i, "get_tool_calls", json!({"offset": i % 20, "limit": 5})),
                _ => call(i, "timing_report", json!({})),
            }]
        })
        .collect();
    // Repeated calls would be answered as duplicates; vary the repeating ones.
    for (i, turn) in out.iter_mut().enumerate() {
        if turn[0].name == "get_trace_info" && i > 0 {
            turn[0] = call(i, "list_spans", json!({"kind": "tool", "offset": i}));
        }
        if turn[0].name == "timing_report" && i > 5 {
            turn[0] = call(i, "list_spans", json!({"status": "error", "offset": i % 2}));
        }
    }
    out.push(vec![call(
        TURNS,
        SUBMIT,
        json!({"rationale": "s1_7 timed out", "result": "no", "span_ids": ["s1_7"]}),
    )]);
    out
}

/// Answers each request with the next turn of the script, at once.
struct InProcess {
    script: Vec<Vec<ModelToolCall>>,
    next: AtomicUsize,
}

impl ChatModel for InProcess {
    fn chat<'a>(
        &'a self,
        _request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<ChatResponse, LlmError>> {
        let k = self.next.fetch_add(1, Ordering::Relaxed) % self.script.len();
        let calls = self.script[k].clone();
        Box::pin(async move {
            Ok(ChatResponse {
                model: "openai:/scripted".parse().expect("uri"),
                text: String::new(),
                json: None,
                usage: Usage {
                    input_tokens: 100,
                    output_tokens: 10,
                },
                latency: Duration::ZERO,
                stop_reason: None,
                tool_calls: calls,
                attempts: 1,
                cached: false,
                logprobs: None,
            })
        })
    }
}

fn task() -> Task {
    Task {
        system: "You are an impartial evaluator.".into(),
        user: "Did the agents plan the trip well? Investigate the trace.".into(),
        answer: AnswerKind::Verdict(OutputType::YesNo),
        temperature: Some(0.0),
        max_tokens: None,
    }
}

/// A server that plays the script over the OpenAI protocol (the turn is the number of
/// assistant messages so far), or gives a verdict to requests without tools.
fn serve(script: Vec<Vec<ModelToolCall>>) -> String {
    let script = Arc::new(script);
    let handler = move |Json(body): Json<Value>| {
        let script = script.clone();
        async move {
            let message = if body.get("tools").is_none() {
                json!({"role": "assistant", "content": "{\"rationale\": \"fine\", \"result\": \"yes\"}"})
            } else {
                let turn = body["messages"]
                    .as_array()
                    .map_or(0, |m| m.iter().filter(|m| m["role"] == "assistant").count());
                let calls: Vec<Value> = script[turn.min(script.len() - 1)]
                    .iter()
                    .map(|c| json!({"id": c.id, "type": "function",
                                    "function": {"name": c.name, "arguments": c.arguments.to_string()}}))
                    .collect();
                json!({"role": "assistant", "content": null, "tool_calls": calls})
            };
            Json(json!({"id": "c", "object": "chat.completion", "model": "m",
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 100, "completion_tokens": 10}}))
        }
    };
    let app = Router::new().route("/v1/chat/completions", post(handler));
    let addr = tribunal_llm::testing::serve(app);
    format!("http://{}/v1", addr)
}

fn micros(d: Duration, n: usize) -> f64 {
    d.as_secs_f64() * 1e6 / n as f64
}

fn main() {
    let trace = trace();
    let task = task();
    let limits = Limits::default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    // 1. In process.
    let model = InProcess {
        script: script(),
        next: AtomicUsize::new(0),
    };
    let runs = 300;
    for _ in 0..20 {
        black_box(
            rt.block_on(investigate(&model, &trace, &task, &limits))
                .expect("answer"),
        );
    }
    model.next.store(0, Ordering::Relaxed);
    let started = Instant::now();
    let mut turns = 0usize;
    for _ in 0..runs {
        let outcome = rt
            .block_on(investigate(&model, &trace, &task, &limits))
            .expect("answer");
        turns += outcome.effort.turns as usize;
    }
    let in_process = micros(started.elapsed(), turns);

    // 2. Through the client and a local server, against one plain judge call.
    let url = serve(script());
    let client = LlmClient::with_env(
        ClientConfig::new("openai:/gpt-4o-mini".parse().expect("uri")).with_base_url(url),
        |_| None,
    )
    .expect("client");
    let plain = ChatRequest::new(format!(
        "Did the agents plan the trip well?\n<<<UNTRUSTED_DATA conversation>>>\n{}\n<<<END_UNTRUSTED_DATA>>>",
        "Result 3: ".repeat(300)
    ))
    .with_system("You are an impartial evaluator.")
    .with_schema(ResponseSchema::new("verdict", OutputType::YesNo.schema()));
    let calls = 600;
    for _ in 0..50 {
        black_box(rt.block_on(client.chat(&plain)).expect("call"));
    }
    let started = Instant::now();
    for _ in 0..calls {
        black_box(rt.block_on(client.chat(&plain)).expect("call"));
    }
    let baseline = micros(started.elapsed(), calls);
    let http_runs = 30;
    for _ in 0..3 {
        black_box(
            rt.block_on(investigate(&client, &trace, &task, &limits))
                .expect("answer"),
        );
    }
    let started = Instant::now();
    let mut http_turns = 0usize;
    for _ in 0..http_runs {
        let outcome = rt
            .block_on(investigate(&client, &trace, &task, &limits))
            .expect("answer");
        assert_eq!(outcome.answer.span_ids, ["s1_7"]);
        http_turns += outcome.effort.turns as usize;
    }
    let per_turn = micros(started.elapsed(), http_turns);

    println!(
        "agent tool loop, {} spans, {TURNS} turns per investigation",
        trace.spans.len()
    );
    println!("  in process (scripted model):       {in_process:>9.1} µs per turn  ({runs} investigations)");
    println!("  baseline: one plain judge call:    {baseline:>9.1} µs per call  (same client, local server)");
    println!("  tool loop over the same client:    {per_turn:>9.1} µs per turn  ({http_runs} investigations)");
    println!(
        "  per turn vs baseline call:         {:>9.2}×   (loop overhead {:+.1} µs per turn; in-process share {:.0}%)",
        per_turn / baseline,
        per_turn - baseline,
        100.0 * in_process / per_turn
    );
}
