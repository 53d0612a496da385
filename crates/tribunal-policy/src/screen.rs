//! A screen in front of the default pack: for each rule of the pack, a condition that must
//! hold before the rule can fire, checked in Rust on the trace and the judges' feedback. When
//! no condition holds, the pack cannot produce a violation and the evaluation (building the
//! input, running the gates) is skipped. When some hold, the gates run and decide as always,
//! and the rules whose condition does not hold are named in the input (`screen.skip`), which
//! each rule of the pack reads first: they are not evaluated. The screen never produces a
//! violation itself, so the Rego text stays the one definition of what the pack blocks.
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

/// C12: the gate named tools whose definition changed since it was pinned
/// (`context.tool_changes`; anything there but an empty object or null lets the rule run).
fn context_fires(context: &Context) -> Fires {
    match context.extra.get("tool_changes") {
        None | Some(Value::Null) => Fires::NONE,
        Some(Value::Object(o)) if o.is_empty() => Fires::NONE,
        Some(_) => Fires::TOOL_DEFINITION_CHANGED,
    }
}

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

/// More argument names the pack reads as a path written (a move's or copy's destination):
/// `written_path_keys` in `c6_dangerous_commands.rego`, with [`PATH_KEYS`].
const WRITTEN_PATH_KEYS: &[&str] = &[
    "destination",
    "dest",
    "destination_path",
    "new_path",
    "to_path",
    "target_path",
    "output_path",
    "output_file",
    "outfile",
];

/// Whether a call of `called` is a call of the tool a list names `listed`, as the pack's
/// `tool_named` reads it: the same name in another case or with `-` for `_`, or the name an
/// MCP client gives a server's tool (`mcp__server__name`).
fn tool_named(called: &str, listed: &str) -> bool {
    // Lower-cased as Rego's `lower` does, every letter, not only ASCII.
    let same =
        |a: &str, b: &str| a.replace('-', "_").to_lowercase() == b.replace('-', "_").to_lowercase();
    same(called, listed)
        || called
            .strip_prefix("mcp__")
            .and_then(|rest| rest.split_once("__"))
            .is_some_and(|(_, tool)| same(tool, listed))
}

/// The rules of the pack, by the name their guard reads in `input.screen.skip` (the model
/// judges' rules, `c9.<judge>`, share "c9"); the position of a name is its bit in [`Fires`].
pub const RULES: [&str; 29] = [
    "c1.direct_injection",
    "c2.indirect_injection",
    "c3.untrusted_to_sensitive_action",
    "c3.untrusted_destination",
    "c3.untrusted_argument",
    "c3.unwarranted_action",
    "c4.secret_in_arguments",
    "c4.secret_in_reply",
    "c4.pii_in_arguments",
    "c4.egress_domain",
    "c4.external_recipient",
    "c4.markdown_image_exfiltration",
    "c4.system_prompt_leak",
    "c5.denied_tool",
    "c5.tool_not_allowed",
    "c5.invalid_arguments",
    "c5.argument_limit",
    "c5.destructive_tool",
    "c5.path_outside_allowed",
    "c6.dangerous_command",
    "c8.max_steps",
    "c8.max_tool_calls",
    "c8.max_calls_per_tool",
    "c8.repeated_calls",
    "c8.max_tokens",
    "c8.max_cost",
    "c9",
    "c12.tool_definition_changed",
    "c6.sensitive_file_written",
];

/// The rules of the pack whose condition holds: those that may fire (one bit per name of
/// [`RULES`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fires(u32);

impl Fires {
    pub const NONE: Fires = Fires(0);
    pub const DIRECT_INJECTION: Fires = Fires(1 << 0);
    pub const INDIRECT_INJECTION: Fires = Fires(1 << 1);
    pub const UNTRUSTED_TO_SENSITIVE: Fires = Fires(1 << 2);
    pub const UNTRUSTED_DESTINATION: Fires = Fires(1 << 3);
    pub const UNTRUSTED_ARGUMENT: Fires = Fires(1 << 4);
    pub const UNWARRANTED_ACTION: Fires = Fires(1 << 5);
    pub const SECRET_IN_ARGUMENTS: Fires = Fires(1 << 6);
    pub const SECRET_IN_REPLY: Fires = Fires(1 << 7);
    pub const PII_IN_ARGUMENTS: Fires = Fires(1 << 8);
    pub const EGRESS_DOMAIN: Fires = Fires(1 << 9);
    pub const EXTERNAL_RECIPIENT: Fires = Fires(1 << 10);
    pub const MARKDOWN_IMAGE: Fires = Fires(1 << 11);
    pub const SYSTEM_PROMPT_LEAK: Fires = Fires(1 << 12);
    pub const DENIED_TOOL: Fires = Fires(1 << 13);
    pub const TOOL_NOT_ALLOWED: Fires = Fires(1 << 14);
    pub const INVALID_ARGUMENTS: Fires = Fires(1 << 15);
    pub const ARGUMENT_LIMIT: Fires = Fires(1 << 16);
    pub const DESTRUCTIVE_TOOL: Fires = Fires(1 << 17);
    pub const PATH_OUTSIDE_ALLOWED: Fires = Fires(1 << 18);
    pub const DANGEROUS_COMMAND: Fires = Fires(1 << 19);
    pub const MAX_STEPS: Fires = Fires(1 << 20);
    pub const MAX_TOOL_CALLS: Fires = Fires(1 << 21);
    pub const MAX_CALLS_PER_TOOL: Fires = Fires(1 << 22);
    pub const REPEATED_CALLS: Fires = Fires(1 << 23);
    pub const MAX_TOKENS: Fires = Fires(1 << 24);
    pub const MAX_COST: Fires = Fires(1 << 25);
    pub const MODEL_JUDGES: Fires = Fires(1 << 26);
    pub const TOOL_DEFINITION_CHANGED: Fires = Fires(1 << 27);
    pub const SENSITIVE_FILE_WRITTEN: Fires = Fires(1 << 28);

    /// Whether any rule may fire.
    pub fn any(self) -> bool {
        self.0 != 0
    }

    pub fn contains(self, rules: Fires) -> bool {
        self.0 & rules.0 == rules.0
    }

    /// The names (of [`RULES`]) of the rules that may fire.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        RULES
            .iter()
            .enumerate()
            .filter(move |(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, name)| *name)
    }

    /// The names of the rules known not to fire: what `input.screen.skip` holds.
    pub fn skipped(self) -> impl Iterator<Item = &'static str> {
        Fires(!self.0).names()
    }

    /// `{"skip": {name: true, ...}}` for the rules known not to fire, as the policy input's
    /// `screen`.
    pub fn input_value(self) -> regorus::Value {
        let skip: std::collections::BTreeMap<regorus::Value, regorus::Value> = self
            .skipped()
            .map(|name| (regorus::Value::from(name), regorus::Value::from(true)))
            .collect();
        let mut screen = std::collections::BTreeMap::new();
        screen.insert(regorus::Value::from("skip"), regorus::Value::from(skip));
        regorus::Value::from(screen)
    }
}

/// The policy input's `screen` values ([`Fires::input_value`]) made so far, each made once:
/// a held trace asks for the same rules at most steps.
#[derive(Debug, Default, Clone)]
pub struct SkipValues(Vec<(Fires, regorus::Value)>);

impl SkipValues {
    /// Values kept at most.
    const KEPT: usize = 32;

    pub fn value(&mut self, fires: Fires) -> regorus::Value {
        if let Some((_, v)) = self.0.iter().find(|(f, _)| *f == fires) {
            return v.clone();
        }
        let v = fires.input_value();
        if self.0.len() >= Self::KEPT {
            self.0.remove(0);
        }
        self.0.push((fires, v.clone()));
        v
    }
}

impl std::ops::BitOr for Fires {
    type Output = Fires;
    fn bitor(self, other: Fires) -> Fires {
        Fires(self.0 | other.0)
    }
}

impl std::ops::BitOrAssign for Fires {
    fn bitor_assign(&mut self, other: Fires) {
        self.0 |= other.0;
    }
}

/// The pack's settings the conditions depend on, read once from the merged policy data.
#[derive(Debug, Clone)]
pub struct Screen {
    /// Injection scores: the user's messages (C1), untrusted content (C2), before a
    /// sensitive call (C3).
    injection_user: f64,
    injection_untrusted: f64,
    injection_flow: f64,
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
            injection_user: num("injection.user_threshold")?,
            injection_untrusted: num("injection.untrusted_threshold")?,
            injection_flow: num("injection.flow_threshold")?,
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
        self.fires(trace, pending, feedback, context, classes).any()
    }

    /// The rules of the pack that could fire on this trace; the others are known not to.
    pub fn fires(
        &self,
        trace: &Trace,
        pending: Option<&Pending>,
        feedback: &[Feedback],
        context: &Context,
        classes: &ToolClasses,
    ) -> Fires {
        self.fires_grown(
            &mut ScreenMemo::default(),
            trace,
            pending,
            feedback,
            context,
            classes,
        )
    }

    /// [`Screen::fires`] for a trace that grows between calls: `memo` is what this screen
    /// kept of the trace on an earlier call, when its messages then were the first
    /// messages of `trace`, unchanged (or a new memo). Only the new messages are read; the
    /// answer is the same.
    pub fn fires_grown(
        &self,
        memo: &mut ScreenMemo,
        trace: &Trace,
        pending: Option<&Pending>,
        feedback: &[Feedback],
        context: &Context,
        classes: &ToolClasses,
    ) -> Fires {
        memo.fit(trace);
        self.fold(memo, trace, classes);
        self.findings_fire(feedback)
            | self.budget_fires(trace, pending, feedback)
            | self.calls_fire(memo, trace, pending, context, classes)
            | self.images_fire(memo, pending)
            | context_fires(context)
    }

    /// C1–C3 (injection scores), C4 secrets and personal data, C5 invalid arguments, C6, C9
    /// (model judges' answers).
    fn findings_fire(&self, feedback: &[Feedback]) -> Fires {
        // NaN scores count as reaching the threshold.
        let at_least = |score: f64, threshold: f64| score.is_nan() || score >= threshold - ROOM;
        let mut fires = Fires::NONE;
        // Injection scores combine per message over every finding, as the pack does:
        // 1 - prod(1 - s).
        let mut injection: Vec<(&str, f64)> = Vec::new();
        for x in feedback
            .iter()
            .filter(|f| f.kind() == "prompt_injection")
            .flat_map(|f| &f.findings)
        {
            let id = x.location.id.as_str();
            match injection.iter_mut().find(|(i, _)| *i == id) {
                Some((_, keep)) => *keep *= 1.0 - x.score,
                None => injection.push((id, 1.0 - x.score)),
            }
        }
        for (_, keep) in injection {
            let score = 1.0 - keep;
            for (threshold, rule) in [
                (self.injection_user, Fires::DIRECT_INJECTION),
                (self.injection_untrusted, Fires::INDIRECT_INJECTION),
                (self.injection_flow, Fires::UNTRUSTED_TO_SENSITIVE),
            ] {
                if at_least(score, threshold) {
                    fires |= rule;
                }
            }
        }
        let model_judge_flags = |f: &Feedback| {
            f.value.as_str().is_some_and(|answer| {
                self.model_judges
                    .iter()
                    .any(|(kind, answers)| kind == f.kind() && answers.iter().any(|a| a == answer))
            })
        };
        for f in feedback {
            if model_judge_flags(f) {
                fires |= Fires::MODEL_JUDGES;
            }
            fires |= match f.kind() {
                "secrets" if f.findings.iter().any(|x| at_least(x.score, self.secrets)) => {
                    Fires::SECRET_IN_ARGUMENTS | Fires::SECRET_IN_REPLY
                }
                "pii"
                    if f.findings.iter().any(|x| {
                        x.location.field == "arguments" && at_least(x.score, self.pii)
                    }) =>
                {
                    Fires::PII_IN_ARGUMENTS
                }
                "dangerous_commands"
                    if f.findings.iter().any(|x| at_least(x.score, self.commands)) =>
                {
                    Fires::DANGEROUS_COMMAND
                }
                "tool_arguments" if !f.findings.is_empty() => Fires::INVALID_ARGUMENTS,
                _ => Fires::NONE,
            };
        }
        fires
    }

    /// C8: counters against the budget.
    fn budget_fires(
        &self,
        trace: &Trace,
        pending: Option<&Pending>,
        feedback: &[Feedback],
    ) -> Fires {
        let mut fires = Fires::NONE;
        let calls = trace
            .messages
            .iter()
            .map(|m| m.tool_calls.len())
            .sum::<usize>()
            + pending.map_or(0, |p| p.tool_calls.len());
        if trace.messages.len() as f64 > self.max_steps - ROOM {
            fires |= Fires::MAX_STEPS;
        }
        if calls as f64 > self.max_tool_calls - ROOM {
            fires |= Fires::MAX_TOOL_CALLS;
        }
        if calls as f64 > self.max_calls_per_tool - ROOM {
            fires |= Fires::MAX_CALLS_PER_TOOL;
        }
        if trace
            .token_usage()
            .is_some_and(|u| u.total() as f64 > self.max_total_tokens - ROOM)
        {
            fires |= Fires::MAX_TOKENS;
        }
        for f in feedback {
            match f.name.as_str() {
                // Anything but a number below the limit (the engine orders values of other
                // types too) lets the gates decide.
                "repeated_calls"
                    if !f
                        .value
                        .as_f64()
                        .is_some_and(|n| n < self.max_identical_calls - ROOM) =>
                {
                    fires |= Fires::REPEATED_CALLS
                }
                "cost"
                    if f.value
                        .as_f64()
                        .is_some_and(|n| n > self.max_cost_usd - ROOM) =>
                {
                    fires |= Fires::MAX_COST
                }
                _ => {}
            }
        }
        fires
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
                .any(|m| m.role == Role::Assistant && crate::facts::has_image_markup(&m.content));
        }
        memo.any_calls = memo.any_calls || new.iter().any(|m| !m.tool_calls.is_empty());
        if !memo.any_calls {
            return;
        }
        // Texts of earlier calls against the new system messages.
        if !memo.texts.is_empty()
            && !memo.fired.contains(Fires::SYSTEM_PROMPT_LEAK)
            && new
                .iter()
                .filter(|m| m.provenance.label() == "system")
                .any(|m| self.copies_a_line(&m.content, &memo.texts))
        {
            memo.fired |= Fires::SYSTEM_PROMPT_LEAK;
        }
        if memo.fired.contains(Fires::SYSTEM_PROMPT_LEAK) {
            memo.texts = Vec::new();
        }
        for (i, m) in new.iter().enumerate() {
            for c in &m.tool_calls {
                let (fires, text) = self.call_fires(memo, trace, from + i, c, classes);
                memo.fired |= fires;
                if !memo.fired.contains(Fires::SYSTEM_PROMPT_LEAK) {
                    memo.texts.extend(text);
                }
            }
        }
    }

    /// C3 destinations, C4 egress and system-prompt leaks, C5: the calls of the trace (as
    /// folded into `memo`) and of the pending step.
    fn calls_fire(
        &self,
        memo: &mut ScreenMemo,
        trace: &Trace,
        pending: Option<&Pending>,
        context: &Context,
        classes: &ToolClasses,
    ) -> Fires {
        let pending_calls = pending.map_or(&[][..], |p| &p.tool_calls[..]);
        if !memo.any_calls && pending_calls.is_empty() {
            return Fires::NONE;
        }
        let mut fires = memo.fired;
        let agent_list = context.agent.as_deref().is_some_and(|a| {
            self.agent_allow_lists
                .as_ref()
                .is_some_and(|m| m.contains_key(a))
        });
        if self.global_allow_list || agent_list {
            fires |= Fires::TOOL_NOT_ALLOWED;
        }
        if self.limits {
            fires |= Fires::ARGUMENT_LIMIT;
        }
        let at = trace.messages.len();
        for c in pending_calls {
            fires |= self.call_fires(memo, trace, at, c, classes).0;
        }
        fires
    }

    /// What a call (in message `index`, or the pending step's at the trace's length) lets
    /// fire; with the argument text of a sensitive call, which a system message of the trace
    /// may yet appear in.
    fn call_fires(
        &self,
        memo: &mut ScreenMemo,
        trace: &Trace,
        index: usize,
        c: &ToolCall,
        classes: &ToolClasses,
    ) -> (Fires, Option<String>) {
        let mut fires = Fires::NONE;
        // Each tool's class is looked up once per trace.
        let class = match memo.tools.iter().find(|(n, _)| *n == c.name) {
            Some(&(_, class)) => class,
            None => {
                let class = classes.class_of(&c.name, &trace.tools);
                memo.tools.push((c.name.clone(), class));
                class
            }
        };
        // The call's own class: a shell's commands, an address read with a query.
        let class = classes.of_call(class, c);
        if self.denied.iter().any(|d| tool_named(&c.name, d)) {
            fires |= Fires::DENIED_TOOL;
        }
        if class.destructive {
            fires |= Fires::DESTRUCTIVE_TOOL;
        }
        let sensitive = class.sensitive;
        if let Value::Object(args) = &c.arguments {
            let path = |keys: &[&str]| {
                args.iter()
                    .any(|(k, v)| v.is_string() && keys.contains(&k.as_str()))
            };
            if path(PATH_KEYS) {
                fires |= Fires::PATH_OUTSIDE_ALLOWED;
            }
            // C6: a state-changing call given a path may write a file that says who may log
            // in or what runs by itself (the pack compares the path).
            if class.state_changing && (path(PATH_KEYS) || path(WRITTEN_PATH_KEYS)) {
                fires |= Fires::SENSITIVE_FILE_WRITTEN;
            }
        }
        // C6: so may a call whose commands write a file (`echo … >> /etc/hosts`).
        if !fires.contains(Fires::SENSITIVE_FILE_WRITTEN)
            && !crate::facts::files_written(&c.arguments).is_empty()
        {
            fires |= Fires::SENSITIVE_FILE_WRITTEN;
        }
        // What is left reads the destinations of sensitive calls, and the hosts of any
        // call when an allow-list of domains is set.
        if !sensitive && !self.allowed_domains {
            return (fires, None);
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
            if facts.untrusted_target() {
                fires |= Fires::UNTRUSTED_ARGUMENT;
            }
            if facts.class.state_changing && facts.after_untrusted.is_some() && !facts.warranted {
                fires |= Fires::UNWARRANTED_ACTION;
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
            if let Some((_, _, links, text)) = &memo.pending_facts {
                fires |= self.facts_fire(
                    &mut memo.untrusted,
                    &mut memo.idents,
                    classes,
                    trace,
                    index,
                    sensitive,
                    links,
                    text,
                );
            }
            return (fires, None);
        }
        let (links, text) = crate::facts::argument_facts(&c.arguments, sensitive);
        fires |= self.facts_fire(
            &mut memo.untrusted,
            &mut memo.idents,
            classes,
            trace,
            index,
            sensitive,
            &links,
            &text,
        );
        (fires, sensitive.then_some(text))
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
    ) -> Fires {
        let mut fires = Fires::NONE;
        if self.allowed_domains && !links.hosts.is_empty() {
            fires |= Fires::EGRESS_DOMAIN;
        }
        if !sensitive {
            return fires;
        }
        if self.allowed_recipients && !links.emails.is_empty() {
            fires |= Fires::EXTERNAL_RECIPIENT;
        }
        if self.system_prompt_copied(trace, text) {
            fires |= Fires::SYSTEM_PROMPT_LEAK;
        }
        // A destination that earlier untrusted content mentions (the untrusted messages'
        // links are read once, as far as a sensitive call with destinations needs them).
        let destinations: Vec<&String> = links.hosts.iter().chain(&links.emails).collect();
        if destinations.is_empty() {
            return fires;
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
        let mentioned = untrusted.messages.iter().any(|&i| {
            i < index && {
                let l = &facts.of(&trace.messages, i, min_amount).links;
                l.hosts
                    .iter()
                    .chain(&l.emails)
                    .any(|d| destinations.contains(&d))
            }
        });
        if mentioned {
            fires |= Fires::UNTRUSTED_DESTINATION;
        }
        fires
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
    fn images_fire(&self, memo: &ScreenMemo, pending: Option<&Pending>) -> Fires {
        if self.block_images
            && (memo.images || pending.is_some_and(|p| crate::facts::has_image_markup(&p.content)))
        {
            Fires::MARKDOWN_IMAGE
        } else {
            Fires::NONE
        }
    }
}

/// What the screen keeps of a growing trace between calls ([`Screen::fires_grown`]):
/// what its first `messages` messages let fire, each read once.
#[derive(Debug, Default, Clone)]
pub struct ScreenMemo {
    messages: usize,
    /// The rules a call among them lets fire whatever comes after.
    fired: Fires,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every rule of the pack reads its guard first, under a name of [`RULES`], and every
    /// name is some rule's: a rule added without a guard, or a guard naming a rule the
    /// screen does not know, fails here.
    #[test]
    fn every_rule_of_the_pack_is_guarded_by_a_name_the_screen_knows() {
        let mut used = std::collections::BTreeSet::new();
        let mut rules = 0;
        for (path, text) in crate::pack::PACK {
            let lines: Vec<&str> = text.lines().collect();
            for (i, line) in lines.iter().enumerate() {
                if !line.starts_with("violation contains") {
                    continue;
                }
                rules += 1;
                let guard = lines.get(i + 1).map(|l| l.trim()).unwrap_or_default();
                let name = guard
                    .strip_prefix("not skip[\"")
                    .and_then(|rest| rest.strip_suffix("\"]"))
                    .unwrap_or_else(|| panic!("{path}:{}: no skip guard first: {guard}", i + 2));
                assert!(RULES.contains(&name), "{path}: unknown rule {name}");
                let body: String = lines[i..].iter().take(40).copied().collect();
                let named = body.contains(&format!("\"rule\": \"{name}\""))
                    || (name == "c9" && body.contains("\"rule\": sprintf(\"c9."));
                assert!(
                    named,
                    "{path}:{}: the guard names {name}, the rule another",
                    i + 2
                );
                used.insert(name);
            }
        }
        assert!(rules >= RULES.len());
        let unused: Vec<_> = RULES.iter().filter(|r| !used.contains(*r)).collect();
        assert!(unused.is_empty(), "names no rule reads: {unused:?}");
    }

    #[test]
    fn the_input_names_the_rules_that_cannot_fire() {
        let fires = Fires::UNWARRANTED_ACTION | Fires::MODEL_JUDGES;
        assert_eq!(
            fires.names().collect::<Vec<_>>(),
            ["c3.unwarranted_action", "c9"]
        );
        let v = serde_json::to_value(fires.input_value()).unwrap();
        let skip = v["skip"].as_object().unwrap();
        assert_eq!(skip.len(), RULES.len() - 2);
        assert!(!skip.contains_key("c9") && skip.contains_key("c5.path_outside_allowed"));
        let mut kept = SkipValues::default();
        assert_eq!(kept.value(fires), fires.input_value());
        assert_eq!(kept.value(Fires::NONE), Fires::NONE.input_value());
    }
}
