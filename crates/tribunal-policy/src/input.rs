//! The document policies see as `input`: the trace reduced to what gates reason about, the
//! pending step, every judge's scores and findings, and the call's context. It is built
//! directly as a regorus value (no JSON text in between); fields that would be null or empty
//! are left out.
//!
//! ```text
//! input.trace.messages[i]   {id, index, role, source, name?, trusted, content, tool_call_id?,
//!                            images?: [{url, host}]}   (their tool calls are in input.trace.tool_calls)
//! input.trace.mentions[d]   [{id, index, source, trusted}]: messages that mention URL host or email d
//! input.trace.calls_per_tool[name]  calls in the trace and the pending step
//! input.trace.tool_calls[i] {id, name, arguments, message_id, index, sensitive, destructive,
//!                            read_only, state_changing, external, navigation, class_from,
//!                            warranted, requested, after_untrusted?, argument_sources?, hosts?, emails?,
//!                            arguments_text? (every argument string, one per line; sensitive calls only),
//!                            files_written? (the files the call's commands write)}
//! input.trace.spans[i]      {id, parent_id?, kind, name, status, duration_ms?, model?}
//! input.trace.tools[name]   {description?, annotations?}   the tools offered (absent when none);
//!                           annotations as their provider gave them (MCP: readOnlyHint,
//!                           destructiveHint, idempotentHint, openWorldHint, title)
//! input.trace.usage         {input_tokens, output_tokens, total_tokens}        (absent when unknown)
//! input.pending             {kind, content, tool_calls, images?}                (absent when none)
//!                           pending tool calls have message_id "pending" and index = number of messages
//! input.scores[name]        {value, error?, evidence, rationale?}
//! input.findings[i]         {detector, kind, score, id, field, tool_call_id?, tool?, source, trusted,
//!                            copied_from?}
//! input.context             {agent?, user?, environment?, ...}
//! input.screen.skip[rule]   true for each rule of the built-in pack known not to fire
//!                           (absent when the screen is off or the pack is not screened;
//!                           added by the evaluator, see `crate::screen`)
//! ```
//! `hosts`, `emails`, `images` and `mentions` come from the URL hosts, email addresses and
//! markdown images found in the text (lower-cased), extracted once so that flow rules are
//! lookups; `sensitive` and `destructive` come from the tool classes in the policy data.
//!
//! A call's class (`read_only`, `state_changing`, `external`, `destructive`, `navigation`)
//! comes from `tools.classes` in the policy data, else the MCP annotations of the trace's tool
//! definitions, else the words of the tool's name or description (`tools.verbs`);
//! `class_from` says which. `argument_sources[arg]` lists the identifiers in argument `arg`
//! (see [`crate::provenance`]) as `{kind, value, vouched, in_text, target, id?, index?,
//! source?, trusted?}`: `id`, `index`, `source` and `trusted` describe the earliest message
//! before the call that carries the value (the agent's own messages do not count), `vouched`
//! says a user or system message before the call carries it, `in_text` that an untrusted one
//! carries it inside prose and none carries it as a plain field, `target` that the argument
//! is a destination, recipient or target rather than content (`provenance.target_arguments`,
//! `provenance.content_arguments`). `after_untrusted` is the index of the first untrusted
//! message before the call; `requested` says the user's words name the call's action (a verb
//! of `tools.verbs` in its name, or a synonym in `alignment.synonyms`); `warranted` says the
//! user's request relates to the call (`requested`, another word of its name, a delegation
//! phrase of `alignment.delegation`, an identifier the user or operator gave, or an argument
//! value the user gave: an order number, a title, an amount they named).
//!
//! A finding in the agent's own text (a reply or the pending one) has `copied_from`: the
//! sources (`system`, `user`, `tool`, ...) of the earlier messages, not the agent's own, whose
//! content carries the found text, in order of first appearance; empty when none does (the
//! agent made it up or took it from somewhere the trace does not show).

use crate::facts::{Links, ToolClasses};
use crate::provenance::{call_facts, MessageFacts};
use regorus::Value as R;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::LazyLock;
use tribunal_core::{Feedback, Message, Pending, Provenance, ToolCall, Trace};

/// Who is asking: the agent, its user, the environment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Context {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The keys and fixed values of the input document, allocated once and shared: a key costs a
/// reference-count increment instead of a string allocation.
struct Words {
    id: R,
    index: R,
    role: R,
    source: R,
    name: R,
    trusted: R,
    content: R,
    tool_call_id: R,
    images: R,
    url: R,
    host: R,
    arguments: R,
    arguments_text: R,
    sensitive: R,
    destructive: R,
    message_id: R,
    hosts: R,
    emails: R,
    messages: R,
    tool_calls: R,
    mentions: R,
    calls_per_tool: R,
    spans: R,
    parent_id: R,
    kind: R,
    status: R,
    duration_ms: R,
    model: R,
    usage: R,
    input_tokens: R,
    output_tokens: R,
    total_tokens: R,
    tags: R,
    metadata: R,
    trace: R,
    pending: R,
    value: R,
    error: R,
    rationale: R,
    evidence: R,
    detector: R,
    judge: R,
    score: R,
    field: R,
    tool: R,
    copied_from: R,
    scores: R,
    findings: R,
    context: R,
    agent: R,
    user: R,
    environment: R,
    read_only: R,
    state_changing: R,
    external: R,
    class_from: R,
    warranted: R,
    requested: R,
    navigation: R,
    target: R,
    after_untrusted: R,
    argument_sources: R,
    files_written: R,
    vouched: R,
    in_text: R,
    /// Provenance labels and roles.
    system: R,
    assistant: R,
    retrieval: R,
    empty_list: R,
}

static WORDS: LazyLock<Words> = LazyLock::new(|| Words {
    id: s("id"),
    index: s("index"),
    role: s("role"),
    source: s("source"),
    name: s("name"),
    trusted: s("trusted"),
    content: s("content"),
    tool_call_id: s("tool_call_id"),
    images: s("images"),
    url: s("url"),
    host: s("host"),
    arguments: s("arguments"),
    arguments_text: s("arguments_text"),
    sensitive: s("sensitive"),
    destructive: s("destructive"),
    message_id: s("message_id"),
    hosts: s("hosts"),
    emails: s("emails"),
    messages: s("messages"),
    tool_calls: s("tool_calls"),
    mentions: s("mentions"),
    calls_per_tool: s("calls_per_tool"),
    spans: s("spans"),
    parent_id: s("parent_id"),
    kind: s("kind"),
    status: s("status"),
    duration_ms: s("duration_ms"),
    model: s("model"),
    usage: s("usage"),
    input_tokens: s("input_tokens"),
    output_tokens: s("output_tokens"),
    total_tokens: s("total_tokens"),
    tags: s("tags"),
    metadata: s("metadata"),
    trace: s("trace"),
    pending: s("pending"),
    value: s("value"),
    error: s("error"),
    rationale: s("rationale"),
    evidence: s("evidence"),
    detector: s("detector"),
    judge: s("judge"),
    score: s("score"),
    field: s("field"),
    tool: s("tool"),
    copied_from: s("copied_from"),
    scores: s("scores"),
    findings: s("findings"),
    context: s("context"),
    agent: s("agent"),
    user: s("user"),
    environment: s("environment"),
    read_only: s("read_only"),
    state_changing: s("state_changing"),
    external: s("external"),
    class_from: s("class_from"),
    warranted: s("warranted"),
    requested: s("requested"),
    navigation: s("navigation"),
    target: s("target"),
    after_untrusted: s("after_untrusted"),
    argument_sources: s("argument_sources"),
    files_written: s("files_written"),
    vouched: s("vouched"),
    in_text: s("in_text"),
    system: s("system"),
    assistant: s("assistant"),
    retrieval: s("retrieval"),
    empty_list: R::from(Vec::<R>::new()),
});

impl Words {
    /// A provenance label or role as a shared value.
    fn label(&self, label: &str) -> R {
        match label {
            "system" => self.system.clone(),
            "user" => self.user.clone(),
            "assistant" => self.assistant.clone(),
            "tool" => self.tool.clone(),
            "retrieval" => self.retrieval.clone(),
            "agent" => self.agent.clone(),
            other => s(other),
        }
    }
}

/// Objects of a known set of keys, built by copying a frozen template (regorus's compact
/// sorted storage) and filling in its values: no tree is built and then flattened, and the
/// keys are shared. One template per subset of the optional keys, so an absent field is
/// absent, not null.
struct Shape<const N: usize, const M: usize> {
    required: [R; N],
    optional: [R; M],
    templates: Vec<regorus::value::Object>,
}

impl<const N: usize, const M: usize> Shape<N, M> {
    fn new(required: [&R; N], optional: [&R; M]) -> Self {
        let templates = (0..1usize << M)
            .map(|mask| {
                let mut m = BTreeMap::new();
                for k in required {
                    m.insert(k.clone(), R::Null);
                }
                for (i, k) in optional.iter().enumerate() {
                    if mask & (1 << i) != 0 {
                        m.insert((*k).clone(), R::Null);
                    }
                }
                match R::from(m) {
                    R::Object(o) => (*o).clone(),
                    _ => regorus::value::Object::new(),
                }
            })
            .collect();
        Shape {
            required: required.map(R::clone),
            optional: optional.map(R::clone),
            templates,
        }
    }

    /// The object with `required[i]` and the present `optional[i]` under the keys given to
    /// [`Shape::new`], in the same order.
    fn make(&self, required: [R; N], optional: [Option<R>; M]) -> R {
        let mut mask = 0;
        for (i, v) in optional.iter().enumerate() {
            if v.is_some() {
                mask |= 1 << i;
            }
        }
        let mut o = self.templates[mask].clone();
        for (k, v) in self.required.iter().zip(required) {
            if let Some(slot) = o.get_mut(k) {
                *slot = v;
            }
        }
        for (k, v) in self.optional.iter().zip(optional) {
            if let (Some(v), Some(slot)) = (v, o.get_mut(k)) {
                *slot = v;
            }
        }
        R::from(o)
    }
}

/// The objects the input is mostly made of, one shape each.
struct Shapes {
    /// id, index, role, source, trusted, content; name?, tool_call_id?, images?
    message: Shape<6, 3>,
    /// id, name, sensitive, destructive, arguments, message_id, index, read_only,
    /// state_changing, external, navigation, class_from, warranted, requested;
    /// arguments_text?, hosts?, emails?, after_untrusted?, argument_sources?, files_written?
    call: Shape<14, 6>,
    /// kind, value, vouched, in_text, target; id?, index?, source?, trusted?
    source: Shape<5, 4>,
    /// id, index, source, trusted
    mention: Shape<4, 0>,
    /// url, host
    image: Shape<2, 0>,
    /// detector, kind, score, id, field, source, trusted; tool_call_id?, tool?, copied_from?,
    /// judge?
    finding: Shape<7, 4>,
    /// value, evidence; error?, rationale?, kind?
    score: Shape<2, 3>,
}

static SHAPES: LazyLock<Shapes> = LazyLock::new(|| {
    let w = &*WORDS;
    Shapes {
        message: Shape::new(
            [&w.id, &w.index, &w.role, &w.source, &w.trusted, &w.content],
            [&w.name, &w.tool_call_id, &w.images],
        ),
        call: Shape::new(
            [
                &w.id,
                &w.name,
                &w.sensitive,
                &w.destructive,
                &w.arguments,
                &w.message_id,
                &w.index,
                &w.read_only,
                &w.state_changing,
                &w.external,
                &w.navigation,
                &w.class_from,
                &w.warranted,
                &w.requested,
            ],
            [
                &w.arguments_text,
                &w.hosts,
                &w.emails,
                &w.after_untrusted,
                &w.argument_sources,
                &w.files_written,
            ],
        ),
        source: Shape::new(
            [&w.kind, &w.value, &w.vouched, &w.in_text, &w.target],
            [&w.id, &w.index, &w.source, &w.trusted],
        ),
        mention: Shape::new([&w.id, &w.index, &w.source, &w.trusted], []),
        image: Shape::new([&w.url, &w.host], []),
        finding: Shape::new(
            [
                &w.detector,
                &w.kind,
                &w.score,
                &w.id,
                &w.field,
                &w.source,
                &w.trusted,
            ],
            [&w.tool_call_id, &w.tool, &w.copied_from, &w.judge],
        ),
        score: Shape::new([&w.value, &w.evidence], [&w.error, &w.rationale, &w.kind]),
    }
});

/// An object under construction.
struct Obj(BTreeMap<R, R>);

impl Obj {
    fn new() -> Obj {
        Obj(BTreeMap::new())
    }
    fn set(&mut self, k: &R, v: R) -> &mut Obj {
        self.0.insert(k.clone(), v);
        self
    }
    fn opt(&mut self, k: &R, v: Option<R>) -> &mut Obj {
        if let Some(v) = v {
            self.0.insert(k.clone(), v);
        }
        self
    }
    /// A key that is not one of the document's own (a score name, a context field).
    fn set_str(&mut self, k: &str, v: R) -> &mut Obj {
        self.0.insert(s(k), v);
        self
    }
    fn done(&mut self) -> R {
        R::from(std::mem::take(&mut self.0))
    }
}

fn s(v: &str) -> R {
    R::from(v)
}

fn strings(v: &[String]) -> Option<R> {
    (!v.is_empty()).then(|| R::from(v.iter().map(|x| s(x)).collect::<Vec<_>>()))
}

fn images(v: &[(String, String)]) -> Option<R> {
    (!v.is_empty()).then(|| {
        R::from(
            v.iter()
                .map(|(url, host)| SHAPES.image.make([s(url), s(host)], []))
                .collect::<Vec<_>>(),
        )
    })
}

/// A JSON value as a regorus value, without an intermediate copy.
fn json(v: &Value) -> R {
    match v {
        Value::Null => R::Null,
        Value::Bool(b) => R::from(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => R::from(u),
            (_, Some(i), _) => R::from(i),
            (_, _, Some(f)) => R::from(f),
            _ => R::Null,
        },
        Value::String(x) => s(x),
        Value::Array(a) => R::from(a.iter().map(json).collect::<Vec<_>>()),
        Value::Object(o) => json_map(o),
    }
}

fn json_map(o: &Map<String, Value>) -> R {
    R::from(
        o.iter()
            .map(|(k, v)| (s(k), json(v)))
            .collect::<BTreeMap<R, R>>(),
    )
}

/// Where a call was made and what it can see: the trace, the call's message and its index.
struct At<'a> {
    trace: &'a Trace,
    message_id: &'a R,
    index: usize,
}

fn call_value(c: &ToolCall, at: &At, classes: &ToolClasses, idents: &mut MessageFacts) -> R {
    let w = &*WORDS;
    let facts = call_facts(
        &at.trace.messages,
        at.index,
        c,
        &at.trace.tools,
        classes,
        idents,
    );
    let class = facts.class;
    let sensitive = class.sensitive;
    let (links, text) = crate::facts::argument_facts(&c.arguments, sensitive);
    let sources = (!facts.sources.is_empty()).then(|| {
        let mut by_arg: BTreeMap<R, Vec<R>> = BTreeMap::new();
        for (arg, src) in &facts.sources {
            let first = src
                .first
                .and_then(|i| at.trace.messages.get(i).map(|m| (i, m)));
            by_arg.entry(s(arg)).or_default().push(SHAPES.source.make(
                [
                    s(src.kind),
                    s(&src.value),
                    R::from(src.vouched),
                    R::from(src.in_text),
                    R::from(src.target),
                ],
                [
                    first.map(|(_, m)| s(&m.id)),
                    first.map(|(i, _)| R::from(i)),
                    first.map(|(_, m)| w.label(m.provenance.label())),
                    first.map(|(_, m)| R::from(!m.provenance.is_untrusted())),
                ],
            ));
        }
        R::from(
            by_arg
                .into_iter()
                .map(|(k, v)| (k, R::from(v)))
                .collect::<BTreeMap<R, R>>(),
        )
    });
    SHAPES.call.make(
        [
            s(&c.id),
            s(&c.name),
            R::from(sensitive),
            R::from(class.destructive),
            json(&c.arguments),
            at.message_id.clone(),
            R::from(at.index),
            R::from(class.read_only),
            R::from(class.state_changing),
            R::from(class.external),
            R::from(class.navigation),
            s(class.from),
            R::from(facts.warranted),
            R::from(facts.requested),
        ],
        [
            sensitive.then(|| s(&text)),
            strings(&links.hosts),
            strings(&links.emails),
            facts.after_untrusted.map(R::from),
            sources,
            strings(&crate::facts::files_written(&c.arguments)),
        ],
    )
}

fn message_value(
    m: &Message,
    id: &R,
    index: usize,
    links: &Links,
    mentions: &mut Vec<(String, R)>,
    w: &Words,
) -> R {
    let name = match &m.provenance {
        Provenance::Tool { name } | Provenance::Agent { name } => Some(name.as_str()),
        Provenance::Retrieval { name } => name.as_deref(),
        _ => m.name.as_deref(),
    };
    let source = w.label(m.provenance.label());
    let trusted = R::from(!m.provenance.is_untrusted());
    for d in links.hosts.iter().chain(&links.emails) {
        mentions.push((
            d.clone(),
            SHAPES.mention.make(
                [id.clone(), R::from(index), source.clone(), trusted.clone()],
                [],
            ),
        ));
    }
    SHAPES.message.make(
        [
            id.clone(),
            R::from(index),
            w.label(role(m)),
            source,
            trusted,
            s(&m.content),
        ],
        [
            name.filter(|n| !n.is_empty()).map(s),
            m.tool_call_id.as_deref().map(s),
            images(&links.images),
        ],
    )
}

/// What the input keeps of a trace's messages between calls while the trace grows (see
/// [`MessageFacts`], which starts over when the tools offered change): each message's value,
/// its tool calls' values and its mentions, and the tools offered.
#[derive(Debug, Default, Clone)]
pub(crate) struct Built {
    /// `None` until built for a trace.
    tools_value: Option<Option<R>>,
    messages: Vec<BuiltMessage>,
    /// The heap of the values of the first `.0` messages, counted when first asked for (a
    /// trace judged once never asks).
    messages_heap: std::cell::Cell<(usize, usize)>,
    gathered: Gathered,
}

/// The built messages' values, their calls' values, their mentions by domain and their
/// calls per tool, gathered for the first `upto` messages. The input takes the lists as
/// they are (shared, not copied), and the next call of a growing trace adds its new
/// messages to them, so assembling the input does not go over every message again.
#[derive(Debug, Default, Clone)]
struct Gathered {
    upto: usize,
    messages: Option<R>,
    tool_calls: Option<R>,
    mentions: BTreeMap<String, R>,
    per_tool: BTreeMap<String, u64>,
}

#[derive(Debug, Clone)]
struct BuiltMessage {
    value: R,
    calls: Vec<R>,
    mentions: Vec<(String, R)>,
}

impl Built {
    fn tools_value(tools: &[tribunal_core::ToolDef]) -> Option<R> {
        (!tools.is_empty()).then(|| {
            R::from(
                tools
                    .iter()
                    .map(|d| {
                        let mut o = Obj::new();
                        if !d.description.is_empty() {
                            o.set_str("description", s(&d.description));
                        }
                        if !d.annotations.is_empty() {
                            o.set_str("annotations", json_map(&d.annotations));
                        }
                        (s(&d.name), o.done())
                    })
                    .collect::<BTreeMap<R, R>>(),
            )
        })
    }

    /// How many messages were built.
    pub(crate) fn len(&self) -> usize {
        self.messages.len()
    }
}

impl tribunal_core::Heap for Built {
    fn heap(&self) -> usize {
        let (counted, mut bytes) = self.messages_heap.get();
        if counted < self.messages.len() {
            bytes += self.messages[counted..]
                .iter()
                .map(BuiltMessage::heap)
                .sum::<usize>();
            self.messages_heap.set((self.messages.len(), bytes));
        }
        // The gathered lists hold the values counted above; only the lists are theirs.
        let g = &self.gathered;
        let list = |v: &R| match v {
            R::Array(a) => {
                tribunal_core::size::ALLOCATION + 16 + a.len() * std::mem::size_of::<R>()
            }
            _ => 0,
        };
        let gathered = g
            .messages
            .iter()
            .chain(&g.tool_calls)
            .map(list)
            .sum::<usize>()
            + g.mentions
                .iter()
                .map(|(k, v)| k.heap() + list(v) + 2 * std::mem::size_of::<R>() + 16)
                .sum::<usize>()
            + g.per_tool
                .keys()
                .map(|k| k.heap() + std::mem::size_of::<(String, u64)>() + 16)
                .sum::<usize>();
        self.tools_value
            .iter()
            .flatten()
            .map(value_heap)
            .sum::<usize>()
            + bytes
            + gathered
            + self.messages.capacity() * std::mem::size_of::<BuiltMessage>()
    }
}

impl BuiltMessage {
    fn heap(&self) -> usize {
        value_heap(&self.value)
            + self.calls.iter().map(value_heap).sum::<usize>()
            + self
                .mentions
                .iter()
                .map(|(d, v)| tribunal_core::Heap::heap(d) + value_heap(v))
                .sum::<usize>()
            + (self.calls.capacity() + self.mentions.capacity()) * std::mem::size_of::<R>()
    }
}

/// Roughly the heap a policy value holds. Object keys are not counted: they are the input's
/// shared words, or names the trace itself holds.
fn value_heap(v: &R) -> usize {
    use tribunal_core::size::ALLOCATION;
    let r = std::mem::size_of::<R>();
    match v {
        R::String(x) => x.len() + ALLOCATION + 16,
        R::Array(a) => ALLOCATION + 16 + a.len() * r + a.iter().map(value_heap).sum::<usize>(),
        R::Set(a) => ALLOCATION + 16 + a.len() * (r + 16) + a.iter().map(value_heap).sum::<usize>(),
        R::Object(o) => {
            ALLOCATION + 16 + o.len() * (2 * r + 16) + o.values().map(value_heap).sum::<usize>()
        }
        _ => 0,
    }
}

fn role(m: &Message) -> &'static str {
    match m.role {
        tribunal_core::Role::System => "system",
        tribunal_core::Role::User => "user",
        tribunal_core::Role::Assistant => "assistant",
        tribunal_core::Role::Tool => "tool",
    }
}

/// Builds the policy input. Pure: the same arguments give the same document.
pub fn policy_input(
    trace: &Trace,
    pending: Option<&Pending>,
    feedback: &[Feedback],
    context: &Context,
    classes: &ToolClasses,
) -> R {
    let mut facts = MessageFacts::default();
    policy_input_with(trace, pending, feedback, context, classes, &mut facts)
}

/// [`policy_input`] with the facts of the trace's messages read so far (`facts`, kept
/// between calls on a trace that grows: only new messages are read).
pub fn policy_input_with(
    trace: &Trace,
    pending: Option<&Pending>,
    feedback: &[Feedback],
    context: &Context,
    classes: &ToolClasses,
    facts: &mut MessageFacts,
) -> R {
    let w = &*WORDS;
    let min_amount = classes.min_amount();
    // What was built of the messages on an earlier call stays: a message's value, its
    // calls' and its mentions depend only on it, the messages before it, the tools offered
    // and the tool classes.
    facts.fit(trace);
    let mut built = std::mem::take(&mut facts.built);
    let tools_value = built
        .tools_value
        .get_or_insert_with(|| Built::tools_value(&trace.tools))
        .clone();
    for index in built.messages.len()..trace.messages.len() {
        let m = &trace.messages[index];
        let id = s(&m.id);
        let links = &facts.of(&trace.messages, index, min_amount).links;
        let mut mentions = Vec::new();
        let value = message_value(m, &id, index, links, &mut mentions, w);
        let at = At {
            trace,
            message_id: &id,
            index,
        };
        let calls = m
            .tool_calls
            .iter()
            .map(|c| call_value(c, &at, classes, facts))
            .collect();
        built.messages.push(BuiltMessage {
            value,
            calls,
            mentions,
        });
    }
    let g = &mut built.gathered;
    let list = || R::from(Vec::<R>::new());
    let messages = g.messages.get_or_insert_with(list);
    let tool_calls = g.tool_calls.get_or_insert_with(list);
    for (b, m) in built.messages[g.upto..]
        .iter()
        .zip(&trace.messages[g.upto..])
    {
        // Made as lists above: never anything else.
        const LIST: &str = "a gathered list";
        messages.as_array_mut().expect(LIST).push(b.value.clone());
        tool_calls
            .as_array_mut()
            .expect(LIST)
            .extend(b.calls.iter().cloned());
        for (d, mention) in &b.mentions {
            g.mentions
                .entry(d.clone())
                .or_insert_with(list)
                .as_array_mut()
                .expect(LIST)
                .push(mention.clone());
        }
        for c in &m.tool_calls {
            *g.per_tool.entry(c.name.clone()).or_default() += 1;
        }
    }
    g.upto = built.messages.len();
    let mut per_tool: BTreeMap<&str, u64> =
        g.per_tool.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    for c in pending.iter().flat_map(|p| &p.tool_calls) {
        *per_tool.entry(c.name.as_str()).or_default() += 1;
    }
    let mut t = Obj::new();
    t.set(&w.id, s(&trace.id))
        .set(&w.messages, messages.clone())
        .set(&w.tool_calls, tool_calls.clone())
        .set(
            &w.mentions,
            R::from(
                g.mentions
                    .iter()
                    .map(|(k, v)| (s(k), v.clone()))
                    .collect::<BTreeMap<R, R>>(),
            ),
        )
        .set(
            &w.calls_per_tool,
            R::from(
                per_tool
                    .into_iter()
                    .map(|(k, v)| (s(k), R::from(v)))
                    .collect::<BTreeMap<R, R>>(),
            ),
        );
    if !trace.spans.is_empty() {
        let spans = trace
            .spans
            .iter()
            .map(|sp| {
                Obj::new()
                    .set(&w.id, s(&sp.id))
                    .opt(&w.parent_id, sp.parent_id.as_deref().map(s))
                    .set(
                        &w.kind,
                        json(&serde_json::to_value(sp.kind).unwrap_or(Value::Null)),
                    )
                    .set(&w.name, s(&sp.name))
                    .set(&w.status, s(&sp.status.code))
                    .opt(&w.duration_ms, sp.duration_ms().map(R::from))
                    .opt(&w.model, sp.model.as_deref().map(s))
                    .done()
            })
            .collect::<Vec<_>>();
        t.set(&w.spans, R::from(spans));
    }
    if let Some(tools) = tools_value {
        t.set_str("tools", tools);
    }
    if let Some(u) = trace.token_usage() {
        t.set(
            &w.usage,
            Obj::new()
                .set(&w.input_tokens, R::from(u.input_tokens))
                .set(&w.output_tokens, R::from(u.output_tokens))
                .set(&w.total_tokens, R::from(u.total()))
                .done(),
        );
    }
    if !trace.tags.is_empty() {
        t.set(
            &w.tags,
            R::from(
                trace
                    .tags
                    .iter()
                    .map(|(k, v)| (s(k), s(v)))
                    .collect::<BTreeMap<R, R>>(),
            ),
        );
    }
    if !trace.metadata.is_empty() {
        t.set(&w.metadata, json_map(&trace.metadata));
    }

    let mut root = Obj::new();
    root.set(&w.trace, t.done());
    if let Some(p) = pending {
        let n = trace.messages.len();
        let pending_id = s(Pending::ID);
        let at = At {
            trace,
            message_id: &pending_id,
            index: n,
        };
        let mut links = Links::default();
        links.scan(&p.content);
        root.set(
            &w.pending,
            Obj::new()
                .set(&w.kind, s(&p.kind))
                .set(&w.content, s(&p.content))
                .set(
                    &w.tool_calls,
                    R::from(
                        p.tool_calls
                            .iter()
                            .map(|c| call_value(c, &at, classes, facts))
                            .collect::<Vec<_>>(),
                    ),
                )
                .opt(&w.images, images(&links.images))
                .done(),
        );
    }
    let mut scores = Obj::new();
    let mut findings = Vec::new();
    for f in feedback {
        scores.set_str(
            &f.name,
            SHAPES.score.make(
                [
                    json(&f.value),
                    strings(&f.evidence).unwrap_or_else(|| w.empty_list.clone()),
                ],
                [
                    f.error.as_deref().map(s),
                    f.rationale.as_deref().map(s),
                    f.source.kind.as_deref().map(s),
                ],
            ),
        );
        if f.findings.is_empty() {
            continue;
        }
        // The detector's kind (`secrets`), which the pack reads; the instance's own name
        // beside it when it has one.
        let detector = s(f.kind());
        let judge = f.source.kind.is_some().then(|| s(&f.name));
        for x in &f.findings {
            let untrusted = matches!(
                x.location.provenance.as_str(),
                "tool" | "retrieval" | "agent"
            );
            findings.push(SHAPES.finding.make(
                [
                    detector.clone(),
                    s(&x.kind),
                    R::from(x.score),
                    s(&x.location.id),
                    s(&x.location.field),
                    w.label(&x.location.provenance),
                    R::from(!untrusted),
                ],
                [
                    x.location.tool_call_id.as_deref().map(s),
                    x.location.tool.as_deref().map(s),
                    copied_from(trace, pending, &x.location).map(|from| {
                        R::from(from.into_iter().map(|l| w.label(l)).collect::<Vec<_>>())
                    }),
                    judge.clone(),
                ],
            ));
        }
    }
    root.set(&w.scores, scores.done());
    root.set(&w.findings, R::from(findings));
    let mut ctx = Obj::new();
    ctx.opt(&w.agent, context.agent.as_deref().map(s))
        .opt(&w.user, context.user.as_deref().map(s))
        .opt(&w.environment, context.environment.as_deref().map(s));
    for (k, v) in &context.extra {
        ctx.set_str(k, json(v));
    }
    root.set(&w.context, ctx.done());
    facts.built = built;
    root.done()
}

/// For a finding in the agent's own content (a reply, or the pending step's): the sources of
/// the earlier messages, not the agent's own, whose content carries the found text, in order
/// of first appearance. `None` for findings elsewhere (arguments, others' messages) and when
/// the location does not point into the text.
fn copied_from(
    trace: &Trace,
    pending: Option<&Pending>,
    at: &tribunal_core::Location,
) -> Option<Vec<&'static str>> {
    if at.field != "content" || at.provenance != Provenance::Assistant.label() {
        return None;
    }
    let (text, before) = if at.id == Pending::ID {
        (pending?.content.as_str(), trace.messages.len())
    } else {
        let i = trace.messages.iter().position(|m| m.id == at.id)?;
        (trace.messages[i].content.as_str(), i)
    };
    let found = text
        .get(at.start..at.end)
        .filter(|t| !t.trim().is_empty())?;
    let mut from: Vec<&'static str> = Vec::new();
    for m in &trace.messages[..before] {
        let label = m.provenance.label();
        if label != Provenance::Assistant.label()
            && !from.contains(&label)
            && m.content.contains(found)
        {
            from.push(label);
        }
    }
    Some(from)
}

/// The same input as JSON (for display and debugging).
pub fn policy_input_json(
    trace: &Trace,
    pending: Option<&Pending>,
    feedback: &[Feedback],
    context: &Context,
    classes: &ToolClasses,
) -> Value {
    serde_json::to_value(policy_input(trace, pending, feedback, context, classes))
        .unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offered_tools_and_their_annotations_are_in_the_input() {
        let mut trace = Trace {
            id: "t".into(),
            ..Default::default()
        };
        let classes = ToolClasses::default();
        let context = Context::default();
        let bare = policy_input_json(&trace, None, &[], &context, &classes);
        assert!(bare["trace"].get("tools").is_none(), "{bare}");
        trace.tools = vec![
            tribunal_core::ToolDef {
                name: "drop_table".into(),
                description: "Drops a table.".into(),
                parameters: Value::Null,
                annotations: serde_json::json!({"destructiveHint": true, "openWorldHint": false})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            },
            tribunal_core::ToolDef {
                name: "search".into(),
                description: String::new(),
                parameters: Value::Null,
                annotations: Map::new(),
            },
        ];
        let v = policy_input_json(&trace, None, &[], &context, &classes);
        assert_eq!(
            v["trace"]["tools"],
            serde_json::json!({
                "drop_table": {"description": "Drops a table.",
                               "annotations": {"destructiveHint": true, "openWorldHint": false}},
                "search": {}
            })
        );
    }

    #[test]
    fn json_numbers_keep_their_kind() {
        let v: Value = serde_json::json!({"a": 1, "b": -2, "c": 1.5, "d": [true, null, "x"]});
        let r = json(&v);
        assert_eq!(serde_json::to_value(&r).unwrap(), v);
    }
}
