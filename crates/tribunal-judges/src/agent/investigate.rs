//! The tool loop: the model gets the trace tools and `submit_verdict`, each of its calls is
//! answered (trace content quoted as untrusted data), and the loop ends with a checked final
//! answer or a clear failure: out of turns, tokens or time, or stuck repeating itself.
//!
//! Limits: `max_turns` model calls; `max_tokens` summed over the calls (reported usage, or
//! the request's estimate when the provider reports none); `max_wall` for the whole
//! investigation. Before each call, when the conversation's estimate exceeds
//! `context_tokens`, the oldest tool results are replaced by a short note (the model can call
//! the tool again). An identical call repeated is answered with a note rather than re-run
//! while its first result is still in context; `max_stalled` turns in a row of nothing but
//! repeats end the investigation.

use super::answer::{AnswerKind, FinalAnswer, SUBMIT};
use super::tools::TraceTools;
use crate::llm::prompt::quote;
use crate::llm::Unusable;
use crate::metrics::util::canonical;
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;
use tribunal_core::Trace;
use tribunal_llm::{
    BoxFuture, ChatRequest, ChatResponse, ChatTurn, LlmClient, LlmError, ModelToolCall, Usage,
};

/// Something that answers chat requests: an [`LlmClient`], or a scripted model in tests and
/// benchmarks.
pub trait ChatModel: Send + Sync {
    fn chat<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<ChatResponse, LlmError>>;
}

impl ChatModel for LlmClient {
    fn chat<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<ChatResponse, LlmError>> {
        Box::pin(LlmClient::chat(self, request))
    }
}

/// Bounds on one investigation.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub max_turns: u32,
    pub max_tokens: u64,
    pub max_wall: Duration,
    pub context_tokens: u64,
    /// Longest tool result, in characters (longer ones are cut with a marker).
    pub max_result_chars: usize,
    pub max_stalled: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_turns: 30,
            max_tokens: 400_000,
            max_wall: Duration::from_secs(300),
            context_tokens: 60_000,
            max_result_chars: 12_000,
            max_stalled: 3,
        }
    }
}

/// What to investigate and how to answer.
#[derive(Debug, Clone)]
pub struct Task {
    pub system: String,
    pub user: String,
    pub answer: AnswerKind,
    pub temperature: Option<f64>,
    /// Answer tokens per turn.
    pub max_tokens: Option<u32>,
}

/// How an investigation went, success or not.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Effort {
    pub turns: u32,
    pub tool_calls: u32,
    /// Tokens of every turn, cached or not (what the token budget counts).
    pub usage: Usage,
    /// Turns answered by the provider, and their tokens (what the investigation cost).
    pub provider_calls: u32,
    pub billed: Usage,
    /// Turns answered from the response cache.
    pub cached_calls: u32,
    /// Tool results pruned to keep the context small.
    pub pruned: u32,
    /// Answers rejected (unknown ids, wrong type) before the accepted one.
    pub rejected: u32,
}

/// An accepted answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub answer: FinalAnswer,
    pub effort: Effort,
}

/// An investigation that ended without an answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub message: String,
    /// Why the last answer the model gave was rejected, when it gave one.
    pub rejected: Option<Box<Unusable>>,
    pub effort: Effort,
}

impl Failure {
    /// What went wrong, quoting the model's rejected answer only when `quote`.
    pub fn describe(&self, quote: bool) -> String {
        match &self.rejected {
            Some(problem) => format!(
                "{}; the last answer was rejected: {}",
                self.message,
                problem.shown(quote)
            ),
            None => self.message.clone(),
        }
    }
}

const PRUNED: &str = "[pruned: this tool result was removed to keep the context small; call the tool again if you need it]";

/// Runs one investigation of `trace`.
pub async fn investigate<M: ChatModel + ?Sized>(
    model: &M,
    trace: &Trace,
    task: &Task,
    limits: &Limits,
) -> Result<Outcome, Failure> {
    let tools = TraceTools::new(trace);
    let mut specs = TraceTools::specs();
    specs.push(task.answer.submit_tool());
    let mut request = ChatRequest::new(task.user.clone())
        .with_system(task.system.clone())
        .with_tools(specs);
    request.temperature = task.temperature;
    request.max_tokens = task.max_tokens;

    let started = Instant::now();
    let mut effort = Effort::default();
    // Calls answered and still in context: (tool, canonical arguments) -> turn index.
    let mut answered: HashMap<(String, String), usize> = HashMap::new();
    let mut stalled = 0u32;
    let mut last_problem: Option<Unusable> = None;
    let fail = |message: String, effort: &Effort, last: &Option<Unusable>| Failure {
        message,
        rejected: last.clone().map(Box::new),
        effort: effort.clone(),
    };

    loop {
        if effort.turns >= limits.max_turns {
            return Err(fail(
                format!(
                    "no accepted final answer within the turn limit ({} turns, {} tool calls)",
                    limits.max_turns, effort.tool_calls
                ),
                &effort,
                &last_problem,
            ));
        }
        let Some(remaining) = limits.max_wall.checked_sub(started.elapsed()) else {
            return Err(fail(
                format!(
                    "no final answer within the time limit of {:?} ({} turns)",
                    limits.max_wall, effort.turns
                ),
                &effort,
                &last_problem,
            ));
        };
        effort.pruned += prune(&mut request, limits.context_tokens, &mut answered);
        let estimate = request.estimated_tokens();
        let response = match tokio::time::timeout(remaining, model.chat(&request)).await {
            Err(_) => {
                return Err(fail(
                    format!(
                        "no final answer within the time limit of {:?} ({} turns)",
                        limits.max_wall, effort.turns
                    ),
                    &effort,
                    &last_problem,
                ))
            }
            Ok(Err(e)) => {
                return Err(fail(
                    format!("the model call failed at turn {}: {e}", effort.turns + 1),
                    &effort,
                    &last_problem,
                ))
            }
            Ok(Ok(r)) => r,
        };
        effort.turns += 1;
        let used = if response.usage.total() > 0 {
            response.usage
        } else {
            Usage {
                input_tokens: estimate,
                output_tokens: 0,
            }
        };
        effort.usage.input_tokens = effort.usage.input_tokens.saturating_add(used.input_tokens);
        effort.usage.output_tokens = effort
            .usage
            .output_tokens
            .saturating_add(used.output_tokens);
        if response.cached {
            effort.cached_calls += 1;
        } else {
            effort.provider_calls += 1;
            effort.billed.input_tokens = effort
                .billed
                .input_tokens
                .saturating_add(response.usage.input_tokens);
            effort.billed.output_tokens = effort
                .billed
                .output_tokens
                .saturating_add(response.usage.output_tokens);
        }

        if response.tool_calls.is_empty() {
            // A model that answers in text: accept a JSON answer, else ask for a tool call.
            let problem = match tribunal_llm::extract_json(&response.text) {
                Some(json) => match task.answer.parse(&json, &tools) {
                    Ok(answer) => return Ok(Outcome { answer, effort }),
                    Err(problem) => problem,
                },
                None => Unusable::new("the reply called no tool and is not a JSON answer"),
            };
            effort.rejected += u32::from(!response.text.trim().is_empty());
            stalled += 1;
            request.turns.push(ChatTurn::Assistant {
                text: response.text,
                tool_calls: Vec::new(),
            });
            request.turns.push(ChatTurn::User {
                text: format!(
                    "{problem}. Investigate with the tools, then call {SUBMIT} with your answer."
                ),
            });
            last_problem = Some(problem);
        } else {
            let turn_index = request.turns.len();
            let mut results = Vec::with_capacity(response.tool_calls.len());
            let mut fresh = false;
            for call in &response.tool_calls {
                effort.tool_calls += 1;
                if call.name == SUBMIT {
                    match task.answer.parse(&call.arguments, &tools) {
                        Ok(answer) => return Ok(Outcome { answer, effort }),
                        Err(problem) => {
                            effort.rejected += 1;
                            fresh = true;
                            results.push(error_result(call, format!("answer rejected: {problem}")));
                            last_problem = Some(problem);
                        }
                    }
                    continue;
                }
                let key = (call.name.clone(), canonical(&call.arguments));
                if let Some(&earlier) = answered.get(&key) {
                    results.push(ChatTurn::Tool {
                        call_id: call.id.clone(),
                        name: call.name.clone(),
                        content: format!(
                            "duplicate call: {} was already called with these arguments (turn {}); its result above has not changed. Call something else or {SUBMIT}.",
                            call.name,
                            turn_number(&request.turns, earlier)
                        ),
                        is_error: false,
                    });
                    continue;
                }
                fresh = true;
                match tools.call(&call.name, &call.arguments) {
                    Ok(text) => {
                        answered.insert(key, turn_index);
                        results.push(ChatTurn::Tool {
                            call_id: call.id.clone(),
                            name: call.name.clone(),
                            content: quote(
                                &format!("{} result", call.name),
                                &text,
                                limits.max_result_chars,
                            ),
                            is_error: false,
                        });
                    }
                    Err(problem) => results.push(error_result(call, problem)),
                }
            }
            stalled = if fresh { 0 } else { stalled + 1 };
            request.turns.push(ChatTurn::Assistant {
                text: response.text,
                tool_calls: response.tool_calls,
            });
            request.turns.extend(results);
        }
        if stalled >= limits.max_stalled {
            return Err(fail(
                format!(
                    "the judge made no progress for {stalled} turns in a row (only repeated calls or replies without a tool call) after {} turns",
                    effort.turns
                ),
                &effort,
                &last_problem,
            ));
        }
        if effort.usage.total() > limits.max_tokens {
            return Err(fail(
                format!(
                    "the token budget ran out: {} tokens used of {} after {} turns",
                    effort.usage.total(),
                    limits.max_tokens,
                    effort.turns
                ),
                &effort,
                &last_problem,
            ));
        }
    }
}

fn error_result(call: &ModelToolCall, problem: String) -> ChatTurn {
    ChatTurn::Tool {
        call_id: call.id.clone(),
        name: call.name.clone(),
        content: format!("error: {problem}"),
        is_error: true,
    }
}

/// The model turn number (1-based) of the assistant turn at `index`.
fn turn_number(turns: &[ChatTurn], index: usize) -> usize {
    turns[..index.min(turns.len())]
        .iter()
        .filter(|t| matches!(t, ChatTurn::Assistant { .. }))
        .count()
        + 1
}

/// Replaces the oldest tool results by a note until the request fits `budget` tokens (or
/// nothing is left to prune); forgets the calls whose results went. Returns how many went.
fn prune(
    request: &mut ChatRequest,
    budget: u64,
    answered: &mut HashMap<(String, String), usize>,
) -> u32 {
    let mut pruned = 0;
    let mut chars = request.prompt_chars() as u64;
    if chars.div_ceil(4) <= budget {
        return 0;
    }
    let mut assistant_at = 0;
    for i in 0..request.turns.len() {
        if chars.div_ceil(4) <= budget {
            break;
        }
        if matches!(request.turns[i], ChatTurn::Assistant { .. }) {
            assistant_at = i;
            continue;
        }
        if let ChatTurn::Tool { content, .. } = &mut request.turns[i] {
            if content.as_str() == PRUNED || content.len() <= PRUNED.len() {
                continue;
            }
            chars -= (content.len() - PRUNED.len()) as u64;
            *content = PRUNED.to_owned();
            pruned += 1;
            answered.retain(|_, turn| *turn != assistant_at);
        }
    }
    pruned
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::OutputType;
    use serde_json::json;
    use std::sync::Mutex;
    use tribunal_core::{Message, Role};

    /// Answers from a list, keeping every request it saw.
    struct Scripted {
        replies: Mutex<Vec<Vec<ModelToolCall>>>,
        seen: Mutex<Vec<ChatRequest>>,
    }

    impl ChatModel for Scripted {
        fn chat<'a>(
            &'a self,
            request: &'a ChatRequest,
        ) -> BoxFuture<'a, Result<ChatResponse, LlmError>> {
            self.seen.lock().unwrap().push(request.clone());
            let calls = self.replies.lock().unwrap().remove(0);
            Box::pin(async move {
                Ok(ChatResponse {
                    model: "openai:/m".parse().unwrap(),
                    text: String::new(),
                    json: None,
                    usage: Usage::default(),
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

    fn call(name: &str, arguments: serde_json::Value) -> ModelToolCall {
        ModelToolCall {
            id: format!("id-{name}"),
            name: name.into(),
            arguments,
        }
    }

    #[test]
    fn old_results_are_pruned_and_may_be_fetched_again() {
        let big = "x".repeat(8_000);
        let trace = Trace {
            id: "t".into(),
            messages: vec![
                Message::new("m0", Role::User, big.clone()),
                Message::new("m1", Role::Assistant, big),
            ],
            ..Trace::default()
        };
        let get = |id: &str| call("get_span", json!({"id": id, "max_chars": 20_000}));
        let model = Scripted {
            replies: Mutex::new(vec![
                vec![get("m0")],
                vec![get("m1")],
                vec![get("m0")],
                vec![call(
                    SUBMIT,
                    json!({"rationale": "r", "result": "yes", "span_ids": ["m1"]}),
                )],
            ]),
            seen: Mutex::default(),
        };
        let task = Task {
            system: "s".into(),
            user: "u".into(),
            answer: AnswerKind::Verdict(OutputType::YesNo),
            temperature: None,
            max_tokens: None,
        };
        let limits = Limits {
            context_tokens: 3_500,
            ..Limits::default()
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let outcome = rt
            .block_on(investigate(&model, &trace, &task, &limits))
            .unwrap();
        assert_eq!(outcome.answer.span_ids, ["m1"]);
        assert_eq!(outcome.effort.pruned, 2);
        let seen = model.seen.lock().unwrap();
        let content = |r: &ChatRequest, i: usize| match &r.turns[i] {
            ChatTurn::Tool { content, .. } => content.clone(),
            other => panic!("{other:?}"),
        };
        // Before the third call, the first result went; the third call ran again rather
        // than being answered as a duplicate.
        assert_eq!(content(&seen[2], 1), PRUNED);
        assert!(content(&seen[2], 3).contains("xxxx"));
        assert!(
            content(&seen[3], 5).contains("xxxx"),
            "{}",
            content(&seen[3], 5)
        );
        assert!(seen.iter().all(|r| r.prompt_chars() / 4 <= 3_500 + 2_100));
    }
}
