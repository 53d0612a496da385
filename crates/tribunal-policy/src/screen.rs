//! A screen in front of the default pack: for each rule of the pack, a condition that must
//! hold before the rule can fire, checked in Rust on the trace and the judges' feedback. When
//! no condition holds, the pack cannot produce a violation and the evaluation (building the
//! input, running the gates) is skipped. When any holds, the gates run and decide as always:
//! the screen never produces a violation itself, so the Rego text stays the one definition of
//! what the pack blocks.
//!
//! Each condition is wider than its rule (it may let through a trace that the rule then
//! allows, never the reverse); `tests/screen.rs` checks that on generated traces. The screen
//! is only used when the pack is loaded as shipped (no module of the user's own joins its
//! package), and only when the configuration has the types the pack expects (otherwise the
//! gates run, and report any error themselves). Gates of the user's own still run on a trace
//! the screen clears of the pack.

use crate::facts::{Links, ToolClasses};
use crate::input::Context;
use serde_json::Value;
use tribunal_core::{Feedback, Pending, Role, ToolCall, Trace};

/// Scores are compared with this much room, so that a rounding difference between Rust and
/// the policy engine can only make the screen let more through.
const ROOM: f64 = 1e-9;

/// Argument names the pack reads as file paths (`path_keys` in `c5_tool_use.rego`).
const PATH_KEYS: &[&str] = &[
    "path",
    "file",
    "filename",
    "file_path",
    "filepath",
    "directory",
    "dir",
    "target",
];

/// The pack's settings the conditions depend on, read once from the merged policy data.
#[derive(Debug, Clone)]
pub struct Screen {
    injection_min: f64,
    secrets: f64,
    pii: f64,
    commands: f64,
    allowed_domains: bool,
    allowed_recipients: bool,
    block_images: bool,
    system_prompt_min_line: f64,
    denied: Vec<String>,
    global_allow_list: bool,
    agent_allow_lists: Option<serde_json::Map<String, Value>>,
    limits: bool,
    max_steps: f64,
    max_tool_calls: f64,
    max_calls_per_tool: f64,
    max_identical_calls: f64,
    max_total_tokens: f64,
    max_cost_usd: f64,
    /// C9: score names and the answers of theirs the pack acts on.
    model_judges: Vec<(String, Vec<String>)>,
}

impl Screen {
    /// The screen for the merged `data.tribunal.config`, or `None` when a setting the pack
    /// reads does not have the type it expects (the gates then always run).
    pub fn from_data(config: &Value) -> Option<Screen> {
        let get = |path: &str| path.split('.').try_fold(config, |v, k| v.get(k));
        let num = |path: &str| get(path).and_then(Value::as_f64);
        let list = |path: &str| get(path).and_then(Value::as_array);
        let strings = |path: &str| -> Option<Vec<String>> {
            list(path)?
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect()
        };
        let agents = match get("tools.agents") {
            None | Some(Value::Null) => None,
            Some(Value::Object(o)) => Some(o.clone()),
            Some(_) => return None,
        };
        let limits = match get("tools.limits") {
            None | Some(Value::Null) => false,
            Some(Value::Object(o)) => !o.is_empty(),
            Some(Value::Array(a)) => !a.is_empty(),
            Some(_) => return None,
        };
        let model_judges = match get("model_judges") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(o)) => o
                .iter()
                .map(|(name, answers)| {
                    let answers = answers.as_object()?.keys().cloned().collect();
                    Some((name.clone(), answers))
                })
                .collect::<Option<Vec<_>>>()?,
            Some(_) => return None,
        };
        let global_allow_list = match get("tools.allowed") {
            None | Some(Value::Null) => false,
            Some(Value::Array(a)) => !a.is_empty(),
            Some(_) => return None,
        };
        Some(Screen {
            injection_min: num("injection.user_threshold")?
                .min(num("injection.untrusted_threshold")?)
                .min(num("injection.flow_threshold")?),
            secrets: num("secrets.threshold")?,
            pii: num("pii.threshold")?,
            commands: num("commands.threshold")?,
            allowed_domains: !list("egress.allowed_domains")?.is_empty(),
            allowed_recipients: !list("egress.allowed_recipient_domains")?.is_empty(),
            block_images: !matches!(
                get("egress.block_markdown_image_urls"),
                None | Some(Value::Bool(false))
            ),
            system_prompt_min_line: num("egress.system_prompt_min_line")?,
            denied: strings("tools.denied")?,
            global_allow_list,
            agent_allow_lists: agents,
            limits,
            max_steps: num("budget.max_steps")?,
            max_tool_calls: num("budget.max_tool_calls")?,
            max_calls_per_tool: num("budget.max_calls_per_tool")?,
            max_identical_calls: num("budget.max_identical_calls")?,
            max_total_tokens: num("budget.max_total_tokens")?,
            max_cost_usd: num("budget.max_cost_usd")?,
            model_judges,
        })
    }

    /// Whether any rule of the pack could fire on this trace; `false` means the pack's
    /// answer is known to be "no violation".
    pub fn may_fire(
        &self,
        trace: &Trace,
        pending: Option<&Pending>,
        feedback: &[Feedback],
        context: &Context,
        classes: &ToolClasses,
    ) -> bool {
        self.may_fire_grown(
            &mut ScreenMemo::default(),
            trace,
            pending,
            feedback,
            context,
            classes,
        )
    }

    /// [`Screen::may_fire`] for a trace that grows between calls: `memo` is what this screen
    /// kept of the trace on an earlier call, when its messages then were the first
    /// messages of `trace`, unchanged (or a new memo). Only the new messages are read; the
    /// answer is the same.
    pub fn may_fire_grown(
        &self,
        memo: &mut ScreenMemo,
        trace: &Trace,
        pending: Option<&Pending>,
        feedback: &[Feedback],
        context: &Context,
        classes: &ToolClasses,
    ) -> bool {
        memo.fit(trace);
        self.findings_may_fire(feedback) || self.budget_may_fire(trace, pending, feedback) || {
            // The new messages are read only when the cheaper conditions did not decide;
            // a memo left behind reads them on a later call.
            self.fold(memo, trace, classes);
            self.calls_may_fire(memo, trace, pending, context, classes)
                || self.images_may_fire(memo, pending)
        }
    }

    /// C1–C3 (injection scores), C4 secrets and personal data, C5 invalid arguments, C6, C9
    /// (model judges' answers).
    fn findings_may_fire(&self, feedback: &[Feedback]) -> bool {
        // NaN scores count as reaching the threshold.
        let at_least = |score: f64, threshold: f64| score.is_nan() || score >= threshold - ROOM;
        // Injection scores combine per message over every finding, as the pack does:
        // 1 - prod(1 - s).
        let mut injection: Vec<(&str, f64)> = Vec::new();
        for x in feedback
            .iter()
            .filter(|f| f.name == "prompt_injection")
            .flat_map(|f| &f.findings)
        {
            let id = x.location.id.as_str();
            match injection.iter_mut().find(|(i, _)| *i == id) {
                Some((_, keep)) => *keep *= 1.0 - x.score,
                None => injection.push((id, 1.0 - x.score)),
            }
        }
        if injection
            .iter()
            .any(|(_, keep)| at_least(1.0 - keep, self.injection_min))
        {
            return true;
        }
        let model_judge_flags = |f: &Feedback| {
            f.value.as_str().is_some_and(|answer| {
                self.model_judges
                    .iter()
                    .any(|(name, answers)| *name == f.name && answers.iter().any(|a| a == answer))
            })
        };
        feedback.iter().any(|f| match f.name.as_str() {
            _ if model_judge_flags(f) => true,
            "secrets" => f.findings.iter().any(|x| at_least(x.score, self.secrets)),
            "pii" => f
                .findings
                .iter()
                .any(|x| x.location.field == "arguments" && at_least(x.score, self.pii)),
            "dangerous_commands" => f.findings.iter().any(|x| at_least(x.score, self.commands)),
            "tool_arguments" => !f.findings.is_empty(),
            _ => false,
        })
    }

    /// C8: counters against the budget.
    fn budget_may_fire(
        &self,
        trace: &Trace,
        pending: Option<&Pending>,
        feedback: &[Feedback],
    ) -> bool {
        let calls = trace
            .messages
            .iter()
            .map(|m| m.tool_calls.len())
            .sum::<usize>()
            + pending.map_or(0, |p| p.tool_calls.len());
        if trace.messages.len() as f64 > self.max_steps - ROOM
            || calls as f64 > self.max_tool_calls - ROOM
            || calls as f64 > self.max_calls_per_tool - ROOM
        {
            return true;
        }
        if trace
            .token_usage()
            .is_some_and(|u| u.total() as f64 > self.max_total_tokens - ROOM)
        {
            return true;
        }
        feedback.iter().any(|f| match f.name.as_str() {
            // Anything but a number below the limit (the engine orders values of other
            // types too) lets the gates decide.
            "repeated_calls" => !f
                .value
                .as_f64()
                .is_some_and(|n| n < self.max_identical_calls - ROOM),
            "cost" => f
                .value
                .as_f64()
                .is_some_and(|n| n > self.max_cost_usd - ROOM),
            _ => false,
        })
    }

    /// Reads the messages `memo` has not seen: their tool calls (what each lets fire
    /// whatever comes after), the argument texts of sensitive calls (a later system message
    /// may be copied in them), the markdown images of the assistant.
    fn fold(&self, memo: &mut ScreenMemo, trace: &Trace, classes: &ToolClasses) {
        let from = memo.messages;
        memo.messages = trace.messages.len();
        if from == memo.messages {
            return;
        }
        let new = &trace.messages[from..];
        if self.block_images && !memo.images {
            memo.images = new
                .iter()
                .any(|m| m.role == Role::Assistant && m.content.contains("!["));
        }
        memo.any_calls = memo.any_calls || new.iter().any(|m| !m.tool_calls.is_empty());
        if memo.fired || !memo.any_calls {
            return;
        }
        // Texts of earlier calls against the new system messages.
        let earlier = memo.texts.len();
        if earlier > 0
            && new
                .iter()
                .filter(|m| m.provenance.label() == "system")
                .any(|m| self.copies_a_line(&m.content, &memo.texts))
        {
            memo.fired = true;
            return;
        }
        for (i, m) in new.iter().enumerate() {
            for c in &m.tool_calls {
                let (fires, text) = self.call_fires(memo, trace, from + i, c, classes);
                if fires {
                    memo.fired = true;
                    return;
                }
                memo.texts.extend(text);
            }
        }
    }

    /// C3 destinations, C4 egress and system-prompt leaks, C5: the calls of the trace (as
    /// folded into `memo`) and of the pending step.
    fn calls_may_fire(
        &self,
        memo: &mut ScreenMemo,
        trace: &Trace,
        pending: Option<&Pending>,
        context: &Context,
        classes: &ToolClasses,
    ) -> bool {
        let pending_calls = pending.map_or(&[][..], |p| &p.tool_calls[..]);
        if !memo.any_calls && pending_calls.is_empty() {
            return false;
        }
        let agent_list = context.agent.as_deref().is_some_and(|a| {
            self.agent_allow_lists
                .as_ref()
                .is_some_and(|m| m.contains_key(a))
        });
        if self.global_allow_list || agent_list || self.limits || memo.fired {
            return true;
        }
        let at = trace.messages.len();
        pending_calls
            .iter()
            .any(|c| self.call_fires(memo, trace, at, c, classes).0)
    }

    /// Whether a call (in message `index`, or the pending step's at the trace's length)
    /// lets a rule fire; with the argument text of a sensitive call, which a system message
    /// of the trace may yet appear in.
    fn call_fires(
        &self,
        memo: &mut ScreenMemo,
        trace: &Trace,
        index: usize,
        c: &ToolCall,
        classes: &ToolClasses,
    ) -> (bool, Option<String>) {
        // Each tool's class is looked up once per trace.
        let class = match memo.tools.iter().find(|(n, _)| *n == c.name) {
            Some(&(_, class)) => class,
            None => {
                let class = classes.class_of(&c.name, &trace.tools);
                if self.denied.iter().any(|d| d == &c.name) || class.destructive {
                    return (true, None);
                }
                memo.tools.push((c.name.clone(), class));
                class
            }
        };
        let sensitive = class.sensitive;
        if let Value::Object(args) = &c.arguments {
            if args
                .iter()
                .any(|(k, v)| v.is_string() && PATH_KEYS.contains(&k.as_str()))
            {
                return (true, None);
            }
        }
        // What is left reads the destinations of sensitive calls, and the hosts of any
        // call when an allow-list of domains is set.
        if !sensitive && !self.allowed_domains {
            return (false, None);
        }
        // C3: a value only untrusted prose gave, or an action the user did not ask for after
        // untrusted content.
        if sensitive {
            let facts = crate::provenance::call_facts(
                &trace.messages,
                index,
                c,
                &trace.tools,
                classes,
                &mut memo.idents,
            );
            if facts.untrusted_target()
                || (class.state_changing && facts.after_untrusted.is_some() && !facts.warranted)
            {
                return (true, None);
            }
        }
        if index == trace.messages.len() {
            // The pending step's call: its facts are kept, for the same call asked again.
            let kept = matches!(&memo.pending_facts,
                Some((args, s, _, _)) if *s == sensitive && *args == c.arguments);
            if !kept {
                let (links, text) = crate::facts::argument_facts(&c.arguments, sensitive);
                memo.pending_facts = Some((c.arguments.clone(), sensitive, links, text));
            }
            let Some((_, _, links, text)) = &memo.pending_facts else {
                return (true, None);
            };
            let fires = self.facts_fire(
                &mut memo.untrusted,
                &mut memo.idents,
                classes,
                trace,
                index,
                sensitive,
                links,
                text,
            );
            return (fires, None);
        }
        let (links, text) = crate::facts::argument_facts(&c.arguments, sensitive);
        let fires = self.facts_fire(
            &mut memo.untrusted,
            &mut memo.idents,
            classes,
            trace,
            index,
            sensitive,
            &links,
            &text,
        );
        (fires, (sensitive && !fires).then_some(text))
    }

    /// What a call's argument facts (`links`, and `text` for a sensitive call) let fire.
    #[allow(clippy::too_many_arguments)]
    fn facts_fire(
        &self,
        untrusted: &mut Untrusted,
        facts: &mut crate::provenance::MessageFacts,
        classes: &ToolClasses,
        trace: &Trace,
        index: usize,
        sensitive: bool,
        links: &Links,
        text: &str,
    ) -> bool {
        if self.allowed_domains && !links.hosts.is_empty() {
            return true;
        }
        if !sensitive {
            return false;
        }
        if self.allowed_recipients && !links.emails.is_empty() {
            return true;
        }
        if self.system_prompt_copied(trace, text) {
            return true;
        }
        // A destination that earlier untrusted content mentions (the untrusted messages'
        // links are read once, as far as a sensitive call with destinations needs them).
        let destinations: Vec<&String> = links.hosts.iter().chain(&links.emails).collect();
        if destinations.is_empty() {
            return false;
        }
        for (i, m) in trace.messages[..index]
            .iter()
            .enumerate()
            .skip(untrusted.read)
        {
            if m.provenance.is_untrusted() {
                untrusted.messages.push(i);
            }
        }
        untrusted.read = untrusted.read.max(index);
        let min_amount = classes.min_amount();
        untrusted.messages.iter().any(|&i| {
            i < index && {
                let l = &facts.of(&trace.messages, i, min_amount).links;
                l.hosts
                    .iter()
                    .chain(&l.emails)
                    .any(|d| destinations.contains(&d))
            }
        })
    }

    /// Does a line of a system message (long enough to count) appear in `arguments`?
    fn system_prompt_copied(&self, trace: &Trace, arguments: &str) -> bool {
        trace
            .messages
            .iter()
            .filter(|m| m.provenance.label() == "system")
            .any(|m| self.copies_a_line(&m.content, std::slice::from_ref(&arguments)))
    }

    /// Does a line of `system` (long enough to count) appear in any of `texts`?
    fn copies_a_line(&self, system: &str, texts: &[impl AsRef<str>]) -> bool {
        system.split('\n').any(|line| {
            let line = line.trim();
            // Bytes: never fewer than the characters or UTF-16 units the engine counts.
            line.len() as f64 >= self.system_prompt_min_line - ROOM
                && texts.iter().any(|t| t.as_ref().contains(line))
        })
    }

    /// C4: markdown images in what the agent said (as folded into `memo`) or is about to
    /// say.
    fn images_may_fire(&self, memo: &ScreenMemo, pending: Option<&Pending>) -> bool {
        self.block_images && (memo.images || pending.is_some_and(|p| p.content.contains("![")))
    }
}

/// What the screen keeps of a growing trace between calls ([`Screen::may_fire_grown`]):
/// what its first `messages` messages let fire, each read once.
#[derive(Debug, Default, Clone)]
pub struct ScreenMemo {
    messages: usize,
    /// A call among them lets a rule fire whatever comes after.
    fired: bool,
    any_calls: bool,
    /// An assistant message among them shows a markdown image.
    images: bool,
    /// Argument texts of their sensitive calls.
    texts: Vec<String>,
    /// Tools looked up: (name, class).
    tools: Vec<(String, crate::facts::Class)>,
    /// The facts of the messages (links, identifiers), read as the provenance of calls and
    /// the policy input need them.
    idents: crate::provenance::MessageFacts,
    untrusted: Untrusted,
    /// The last pending call's arguments, whether its tool is sensitive, and their facts.
    pending_facts: Option<(Value, bool, Links, String)>,
}

impl tribunal_core::Heap for ScreenMemo {
    fn heap(&self) -> usize {
        self.texts.heap()
            + self.tools.heap()
            + self.idents.heap()
            + self.untrusted.messages.heap()
            + self.pending_facts.as_ref().map_or(0, |(v, _, l, s)| {
                std::mem::size_of::<(Value, bool, Links, String)>()
                    + tribunal_core::size::ALLOCATION
                    + v.heap()
                    + l.heap()
                    + s.heap()
            })
    }
}

impl ScreenMemo {
    /// The facts of `trace`'s messages read so far, for the policy input (which checks
    /// they can be of this trace, see [`crate::provenance::MessageFacts::fit`]).
    pub fn facts(&mut self) -> &mut crate::provenance::MessageFacts {
        &mut self.idents
    }

    /// Starts over when what was kept cannot be of `trace` grown: it covers more messages
    /// than the trace has, or it was read with other tools offered (a call's class reads
    /// them).
    fn fit(&mut self, trace: &Trace) {
        if self.messages > trace.messages.len() {
            *self = ScreenMemo::default();
        }
        if !self.idents.fit(trace) {
            let idents = std::mem::take(&mut self.idents);
            *self = ScreenMemo {
                idents,
                ..ScreenMemo::default()
            };
        }
    }
}

/// The untrusted messages among a trace's first `read` messages (their links are in the
/// memo's message facts).
#[derive(Debug, Default, Clone)]
struct Untrusted {
    messages: Vec<usize>,
    read: usize,
}
