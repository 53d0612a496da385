//! The policy judge: gates written in Rego, evaluated with regorus over
//! `{trace, pending, scores, findings, context}` with `data.tribunal.config` from configuration.
//!
//! A policy is any Rego module that defines a `violation` set of objects
//! `{rule, severity: "block"|"escalate"|"warn", message, evidence: [ids]}`. The strictest
//! severity wins. A policy that fails to evaluate or runs out of time produces a
//! `tribunal.policy_error` violation whose severity follows the fail mode (closed by
//! default): a broken policy never silently allows.

mod data_check;
pub mod facts;
pub mod input;
pub mod pack;
pub mod provenance;
pub mod screen;
mod unread;
pub use screen::ScreenMemo;
pub mod testing;

pub use input::{policy_input, policy_input_json, policy_input_with, Context};
pub use testing::{run_policy_tests, TestOutcome};

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;
use tribunal_core::{Severity, Violation};

/// What happens when a policy cannot decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailMode {
    /// Block (the default).
    #[default]
    Closed,
    /// Send to a person.
    Escalate,
    /// Allow, with a warning in the verdict.
    Open,
}

impl FailMode {
    pub const NAMES: &'static [&'static str] = &["closed", "escalate", "open"];

    pub fn parse(s: &str) -> Option<FailMode> {
        match s {
            "closed" => Some(FailMode::Closed),
            "escalate" => Some(FailMode::Escalate),
            "open" => Some(FailMode::Open),
            _ => None,
        }
    }

    pub fn severity(self) -> Severity {
        match self {
            FailMode::Closed => Severity::Block,
            FailMode::Escalate => Severity::Escalate,
            FailMode::Open => Severity::Warn,
        }
    }
}

#[derive(Debug, Error)]
pub enum PolicyError {
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    /// The reason is part of the message (not a separate source), so it is said once.
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("policy data: {0}")]
    Data(String),
}

/// One Rego module's text and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySource {
    pub path: String,
    pub text: String,
}

/// What a policy folder holds.
#[derive(Debug, Clone, Default)]
pub struct PolicyDir {
    pub sources: Vec<PolicySource>,
    /// `data.json` files: (path, document).
    pub data: Vec<(String, Value)>,
}

/// Reads every `.rego` file in a folder (recursively, in name order) and every
/// `data.json` beside them.
pub fn load_dir(dir: &Path) -> Result<PolicyDir, PolicyError> {
    let mut files = Vec::new();
    collect(dir, &mut files).map_err(|error| PolicyError::Io {
        path: dir.display().to_string(),
        error,
    })?;
    files.sort();
    let mut sources = Vec::new();
    let mut data = Vec::new();
    for f in files {
        let path = f.display().to_string();
        let text = std::fs::read_to_string(&f).map_err(|error| PolicyError::Io {
            path: path.clone(),
            error,
        })?;
        if f.extension().is_some_and(|e| e == "rego") {
            sources.push(PolicySource { path, text });
        } else {
            let v: Value = serde_json::from_str(&text).map_err(|e| PolicyError::Invalid {
                path: format!("{path}:{}:{}", e.line(), e.column()),
                message: format!("invalid JSON data: {e}"),
            })?;
            if let Err(message) = data_check::document(&v) {
                return Err(PolicyError::Invalid { path, message });
            }
            data.push((path, v));
        }
    }
    Ok(PolicyDir { sources, data })
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if dir.is_file() {
        out.push(dir.to_path_buf());
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let p = entry?.path();
        if p.is_dir() {
            collect(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "rego")
            || p.file_name().is_some_and(|n| n == "data.json")
        {
            out.push(p);
        }
    }
    Ok(())
}

/// Settings for a policy set.
#[derive(Debug, Clone)]
pub struct PolicyOptions {
    pub fail_mode: FailMode,
    /// Wall-clock limit for one policy's evaluation.
    pub timeout: Duration,
    /// Run the gates compiled on regorus's virtual machine.
    pub compile: Compile,
    /// Skip the built-in pack on traces none of its rules can fire on (see [`screen`]).
    pub screen: bool,
    /// What a judge that was asked and gave no usable answer does to the decision.
    pub judge_errors: JudgeErrors,
    /// What a trace with nothing to judge (no message text, tool call, span input or
    /// output, nor a pending step) gets: `tribunal.no_content` at this severity.
    pub no_content: Severity,
}

/// What a judge that was asked and gave no usable answer (its feedback carries `error`)
/// does to the decision: a `tribunal.judge_error` violation, whatever the policies say.
/// Block unless the judge is configured otherwise; an optional judge's failure is reported
/// as a warning and leaves the decision to the rest. An answer the judge was not sure
/// enough of (below its calibrated trust threshold) is `tribunal.judge_untrusted` instead:
/// people decide (escalate) unless the judge says otherwise (`on_untrusted`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JudgeErrors {
    /// The severity for judges not named in `by_judge`; block when unset.
    pub default: Option<Severity>,
    /// Per judge (instance name): its severity (`Warn` for an optional judge).
    pub by_judge: std::collections::BTreeMap<String, Severity>,
    /// Per judge: the severity of an answer it was not sure enough of; escalate when unset.
    pub untrusted: std::collections::BTreeMap<String, Severity>,
}

impl JudgeErrors {
    /// The severity of a failure of the judge named `judge`.
    pub fn severity(&self, judge: &str) -> Severity {
        self.by_judge
            .get(judge)
            .copied()
            .or(self.default)
            .unwrap_or(Severity::Block)
    }

    /// The `tribunal.judge_error` (or `tribunal.judge_untrusted`) violations for the failed
    /// judges among `feedback`, one per judge (a judge may give several pieces of feedback).
    pub fn violations(&self, feedback: &[tribunal_core::Feedback]) -> Vec<Violation> {
        let mut out: Vec<Violation> = Vec::new();
        let mut seen: Vec<&str> = Vec::new();
        for f in feedback {
            let Some(error) = &f.error else { continue };
            // A judge's feedback is named after it, or `judge.part` for its parts.
            let judge = match f.name.split_once('.') {
                Some((judge, _)) if !self.by_judge.contains_key(&f.name) => judge,
                _ => f.name.as_str(),
            };
            if seen.contains(&judge) {
                continue;
            }
            seen.push(judge);
            let untrusted = f.is_untrusted();
            let severity = if untrusted {
                self.untrusted
                    .get(judge)
                    .copied()
                    .unwrap_or(Severity::Escalate)
            } else {
                self.severity(judge)
            };
            let consequence = match severity {
                Severity::Warn => "it is optional, so the others decide",
                Severity::Escalate => "the decision goes to a person",
                Severity::Block => "the decision fails closed",
            };
            let (rule, message) = if untrusted {
                (
                    "tribunal.judge_untrusted",
                    format!("judge {judge} was not sure enough ({error}); {consequence}"),
                )
            } else {
                (
                    "tribunal.judge_error",
                    format!("judge {judge} gave no usable answer ({error}); {consequence}"),
                )
            };
            out.push(Violation {
                rule: rule.into(),
                severity,
                message,
                evidence: Vec::new(),
            });
        }
        out
    }
}

/// When gates run compiled on regorus's virtual machine instead of its interpreter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compile {
    /// Compiled when every gate is from the built-in pack (whose cases are tested on the
    /// virtual machine); interpreted as soon as other policies are loaded.
    #[default]
    Auto,
    /// Compiled, unless a policy of the user's own has a rule with `else`: the virtual
    /// machine leaves such a rule undefined when a body before the `else` iterates and
    /// fails, where the interpreter (and OPA) take the `else`, so a gate reading it would
    /// let through what it should stop. Those policies run interpreted.
    Always,
    Never,
}

impl Compile {
    pub const NAMES: &'static [&'static str] = &["auto", "always", "never"];

    pub fn parse(s: &str) -> Option<Compile> {
        match s {
            "auto" => Some(Compile::Auto),
            "always" => Some(Compile::Always),
            "never" => Some(Compile::Never),
            _ => None,
        }
    }
}

impl Default for PolicyOptions {
    fn default() -> Self {
        PolicyOptions {
            fail_mode: FailMode::Closed,
            timeout: Duration::from_millis(100),
            compile: Compile::Auto,
            screen: true,
            judge_errors: JudgeErrors::default(),
            no_content: Severity::Escalate,
        }
    }
}

/// Compiled policies and their data, ready to be cloned into per-thread evaluators.
#[derive(Clone)]
pub struct PolicySet {
    engine: regorus::Engine,
    /// Packages that define `violation`, with the file that defines it.
    gates: Vec<(String, String)>,
    /// One rule that gathers every gate's violations, so a decision is one evaluation.
    aggregate: Option<String>,
    /// The aggregate rule compiled for regorus's virtual machine, when it compiles.
    program: Option<std::sync::Arc<regorus::rvm::program::Program>>,
    /// The rule gathering the gates that are not the pack's, when the pack is screened and
    /// there are such gates, and its compiled form.
    user_aggregate: Option<String>,
    user_program: Option<std::sync::Arc<regorus::rvm::program::Program>>,
    data: regorus::Value,
    classes: facts::ToolClasses,
    /// Set when the policies are exactly the built-in pack.
    screen: Option<screen::Screen>,
    version: String,
    options: PolicyOptions,
    sources: Vec<PolicySource>,
}

impl std::fmt::Debug for PolicySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicySet")
            .field("gates", &self.gates)
            .field("version", &self.version)
            .finish()
    }
}

/// The file and line of the first `else` in a rule of a policy that is not the built-in
/// pack's (whose cases are checked on the virtual machine and the interpreter alike).
fn else_after_a_body(engine: &mut regorus::Engine) -> Option<(String, u32)> {
    use regorus::unstable::Rule;
    engine.get_modules().iter().find_map(|m| {
        m.policy.iter().find_map(|r| match r.as_ref() {
            Rule::Spec { bodies, .. } => bodies
                .iter()
                .find(|b| b.is_else)
                .map(|b| (b.span.source.get_path().clone(), b.span.line))
                .filter(|(path, _)| !path.starts_with(pack::PREFIX)),
            _ => None,
        })
    })
}

impl PolicySet {
    /// Compiles the sources. `data` is merged under `data.tribunal.config` in order (later wins),
    /// after the default pack's data.
    pub fn new(
        sources: Vec<PolicySource>,
        data: &[Value],
        options: PolicyOptions,
    ) -> Result<PolicySet, PolicyError> {
        let mut engine = regorus::Engine::new();
        engine.set_strict_builtin_errors(false);
        let mut hasher = Sha256::new();
        let mut gates = Vec::new();
        // A module of the user's own that joins the pack's package changes the pack.
        let mut pack_extended = false;
        let mut packages = Vec::with_capacity(sources.len());
        for s in &sources {
            let package = engine
                .add_policy(s.path.clone(), s.text.clone())
                .map_err(|e| PolicyError::Invalid {
                    path: s.path.clone(),
                    message: clean_error(&e.to_string()),
                })?;
            if !s.path.starts_with(pack::PREFIX) && package == PACK_PACKAGE {
                pack_extended = true;
            }
            hasher.update(s.path.as_bytes());
            hasher.update([0]);
            hasher.update(s.text.as_bytes());
            hasher.update([0]);
            if defines_rule(&s.text, "violation") && !gates.iter().any(|(p, _)| p == &package) {
                gates.push((package.clone(), s.path.clone()));
            }
            packages.push(package);
        }
        let gate_packages: Vec<String> = gates.iter().map(|(p, _)| p.clone()).collect();
        let own = sources
            .iter()
            .zip(&packages)
            .filter(|(s, _)| !s.path.starts_with(pack::PREFIX))
            .map(|(s, p)| (s.path.as_str(), s.text.as_str(), p.as_str()));
        unread::check(own, &gate_packages)
            .map_err(|(path, message)| PolicyError::Invalid { path, message })?;
        // One generated rule gathers every gate's violations as [gate index, violation]: the
        // gates then share one evaluation (and its cached helper rules).
        let aggregate = if gates.is_empty() {
            None
        } else {
            let mut text = format!("package {AGGREGATE_PACKAGE}\nimport rego.v1\n");
            for (i, (package, _)) in gates.iter().enumerate() {
                text.push_str(&format!(
                    "violations contains [{i}, v] if {{\n\tsome v in {package}.violation\n}}\n"
                ));
            }
            // The gates that are not the pack's, under the same indices: what still runs
            // on a trace the screen clears of the pack.
            for (i, (package, path)) in gates.iter().enumerate() {
                if !path.starts_with(pack::PREFIX) {
                    text.push_str(&format!(
                        "user_violations contains [{i}, v] if {{\n\tsome v in {package}.violation\n}}\n"
                    ));
                }
            }
            engine
                .add_policy("(generated gates)".into(), text)
                .map_err(|e| PolicyError::Invalid {
                    path: "(generated gates)".into(),
                    message: clean_error(&e.to_string()),
                })?;
            Some(format!("data.{AGGREGATE_PACKAGE}.violations"))
        };
        let user_gates = gates
            .iter()
            .any(|(_, path)| !path.starts_with(pack::PREFIX));
        let mut merged = pack::default_data();
        for d in data {
            data_check::check(d, &merged).map_err(PolicyError::Data)?;
            deep_merge(&mut merged, d.clone());
        }
        let classes = facts::ToolClasses::from_data(&merged).map_err(PolicyError::Data)?;
        // The screen stands in front of the pack when the pack is loaded as shipped.
        let builtin: Vec<PolicySource> = sources
            .iter()
            .filter(|s| s.path.starts_with(pack::PREFIX))
            .cloned()
            .collect();
        let screen = if options.screen && !pack_extended && builtin == pack::sources() {
            screen::Screen::from_data(&merged)
        } else {
            None
        };
        hasher.update(merged.to_string().as_bytes());
        let data = regorus::Value::from(serde_json::json!({ "tribunal": { "config": merged } }));
        engine
            .add_data(data.clone())
            .map_err(|e| PolicyError::Data(e.to_string()))?;
        engine.set_execution_timer_config(timer(&options));
        let compile = match options.compile {
            Compile::Always => else_after_a_body(&mut engine).is_none(),
            Compile::Never => false,
            Compile::Auto => gates.iter().all(|(_, path)| path.starts_with(pack::PREFIX)),
        };
        let compile_rule = |rule: &str| {
            let entry: regorus::Rc<str> = rule.into();
            let compiled = engine.clone().compile_with_entrypoint(&entry).ok()?;
            regorus::languages::rego::compiler::Compiler::compile_from_policy(&compiled, &[rule])
                .ok()
        };
        let program = aggregate
            .as_deref()
            .filter(|_| compile)
            .and_then(compile_rule);
        let user_aggregate = user_gates
            .then(|| format!("data.{AGGREGATE_PACKAGE}.user_violations"))
            .filter(|_| screen.is_some());
        let user_program = user_aggregate
            .as_deref()
            .filter(|_| compile)
            .and_then(compile_rule);
        let digest = hasher.finalize();
        let version = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        Ok(PolicySet {
            engine,
            gates,
            aggregate,
            program,
            user_aggregate,
            user_program,
            data,
            classes,
            screen,
            version,
            options,
            sources,
        })
    }

    /// The default pack alone, with default data.
    pub fn builtin() -> PolicySet {
        PolicySet::new(pack::sources(), &[], PolicyOptions::default())
            .expect("the default policy pack compiles")
    }

    /// A short hash of every policy text and the merged data.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The packages that act as gates (define `violation`).
    pub fn gates(&self) -> impl Iterator<Item = &str> {
        self.gates.iter().map(|(p, _)| p.as_str())
    }

    pub fn sources(&self) -> &[PolicySource] {
        &self.sources
    }

    /// A private copy for one thread: evaluation mutates the engine's input.
    pub fn evaluator(&self) -> PolicyEvaluator {
        let load = |program: &std::sync::Arc<regorus::rvm::program::Program>| {
            let mut vm = regorus::rvm::vm::RegoVM::new();
            vm.load_program(program.clone());
            vm.set_data(self.data.clone()).ok()?;
            vm.set_execution_timer_config(Some(timer(&self.options)));
            Some(vm)
        };
        PolicyEvaluator {
            vm: self.program.as_ref().and_then(load),
            user_vm: self.user_program.as_ref().and_then(load),
            engine: self.engine.clone(),
            gates: self.gates.clone(),
            aggregate: self.aggregate.clone(),
            user_aggregate: self.user_aggregate.clone(),
            classes: self.classes.clone(),
            screen: self.screen.clone(),
            skips: screen::SkipValues::default(),
            fail_mode: self.options.fail_mode,
            judge_errors: self.options.judge_errors.clone(),
            no_content: self.options.no_content,
        }
    }

    /// Whether traces the pack cannot fire on skip the evaluation (see [`screen`]).
    pub fn is_screened(&self) -> bool {
        self.screen.is_some()
    }

    /// The screen in front of the pack, when it is used.
    pub fn screen(&self) -> Option<&screen::Screen> {
        self.screen.as_ref()
    }

    /// The tool classes of the policy data.
    pub fn tool_classes(&self) -> &facts::ToolClasses {
        &self.classes
    }

    /// Whether the gates run compiled on regorus's virtual machine (otherwise interpreted).
    pub fn is_compiled(&self) -> bool {
        self.program.is_some()
    }

    pub fn fail_mode(&self) -> FailMode {
        self.options.fail_mode
    }

    /// What judges' failures do to the decision.
    pub fn judge_errors(&self) -> &JudgeErrors {
        &self.options.judge_errors
    }

    /// The engine with policies and data loaded (for policy unit tests).
    pub(crate) fn engine(&self) -> &regorus::Engine {
        &self.engine
    }
}

/// Evaluates the gates of a [`PolicySet`] on one input at a time.
pub struct PolicyEvaluator {
    /// The compiled gates, when the policies compile for the virtual machine.
    vm: Option<regorus::rvm::vm::RegoVM>,
    /// The compiled gates that are not the pack's (see [`PolicySet`]'s `user_aggregate`).
    user_vm: Option<regorus::rvm::vm::RegoVM>,
    engine: regorus::Engine,
    gates: Vec<(String, String)>,
    aggregate: Option<String>,
    user_aggregate: Option<String>,
    classes: facts::ToolClasses,
    screen: Option<screen::Screen>,
    /// The policy input's `screen` values made so far (see [`screen::Fires`]).
    skips: screen::SkipValues,
    fail_mode: FailMode,
    judge_errors: JudgeErrors,
    no_content: Severity,
}

const AGGREGATE_PACKAGE: &str = "tribunal_internal.gates";
/// The package of the built-in pack, as regorus names it.
const PACK_PACKAGE: &str = "data.tribunal.pack";

impl PolicyEvaluator {
    /// Every violation of every gate for a trace. Errors become `tribunal.policy_error`
    /// violations with the fail mode's severity.
    pub fn evaluate_trace(
        &mut self,
        trace: &tribunal_core::Trace,
        pending: Option<&tribunal_core::Pending>,
        feedback: &[tribunal_core::Feedback],
        context: &Context,
    ) -> Vec<Violation> {
        let mut memo = ScreenMemo::default();
        self.evaluate_grown(&mut memo, trace, pending, feedback, context)
    }

    /// [`PolicyEvaluator::evaluate_trace`] for a trace that grows between calls: `memo` is
    /// what the screen kept of it on an earlier call by an evaluator of the same policy set,
    /// when the trace then was a prefix of this one (see [`screen::Screen::fires_grown`]).
    pub fn evaluate_grown(
        &mut self,
        memo: &mut ScreenMemo,
        trace: &tribunal_core::Trace,
        pending: Option<&tribunal_core::Pending>,
        feedback: &[tribunal_core::Feedback],
        context: &Context,
    ) -> Vec<Violation> {
        // A judge that was asked and gave no usable answer fails the decision closed (unless
        // it is optional), whatever the policies read.
        let mut out = self.judge_errors.violations(feedback);
        // Nothing to judge is not a clean trace: the content was not captured.
        if !trace.has_content()
            && pending.is_none_or(|p| p.content.trim().is_empty() && p.tool_calls.is_empty())
        {
            out.push(Violation {
                rule: "tribunal.no_content".into(),
                severity: self.no_content,
                message: format!(
                    "trace {} has no content to judge ({} spans, {} messages, none with text, \
                     tool calls, inputs or outputs); turn on content capture in the agent's \
                     instrumentation",
                    trace.id,
                    trace.spans.len(),
                    trace.messages.len()
                ),
                evidence: trace.spans.iter().take(5).map(|s| s.id.clone()).collect(),
            });
        }
        if self.gates.is_empty() {
            return out;
        }
        let fires = self
            .screen
            .as_ref()
            .map(|s| s.fires_grown(memo, trace, pending, feedback, context, &self.classes));
        // The messages' facts, read by the screen or an earlier call, are read once.
        let facts = memo.facts();
        if fires.is_none_or(|f| f.any()) {
            let mut input =
                policy_input_with(trace, pending, feedback, context, &self.classes, facts);
            if let Some(fires) = fires {
                // The rules the screen knows cannot fire are not evaluated.
                let screen = self.skips.value(fires);
                if let Ok(fields) = input.as_object_mut() {
                    fields.insert(regorus::Value::from("screen"), screen);
                }
            }
            out.extend(self.evaluate_value(input));
        } else if self.user_aggregate.is_some() {
            // The pack cannot fire; the user's own gates still decide.
            let input = policy_input_with(trace, pending, feedback, context, &self.classes, facts);
            out.extend(self.evaluate_gates(input, true));
        }
        out
    }

    /// Every violation of every gate for a raw JSON input.
    pub fn evaluate(&mut self, input: Value) -> Vec<Violation> {
        self.evaluate_value(regorus::Value::from(input))
    }

    fn evaluate_value(&mut self, input: regorus::Value) -> Vec<Violation> {
        self.evaluate_gates(input, false)
    }

    /// Every gate's violations, or with `user_only` those of the gates that are not the
    /// pack's: one query (compiled when possible), else gate by gate to name a failing one.
    fn evaluate_gates(&mut self, input: regorus::Value, user_only: bool) -> Vec<Violation> {
        let vm = if user_only {
            self.user_vm.as_mut()
        } else {
            self.vm.as_mut()
        };
        if let Some(vm) = vm {
            vm.set_input(input.clone());
            let done = vm.execute();
            // The input's lists are shared with what the policy input keeps of a growing
            // trace: let go of them, so the next call extends them in place.
            vm.set_input(regorus::Value::Null);
            if let Ok(v) = done {
                if let Some(out) = self.split_aggregate(&v) {
                    return out;
                }
            }
        }
        self.engine.set_input(input);
        let rule = if user_only {
            &self.user_aggregate
        } else {
            &self.aggregate
        };
        if let Some(rule) = rule {
            if let Ok(v) = self.engine.eval_rule(rule.clone()) {
                if let Some(out) = self.split_aggregate(&v) {
                    return out;
                }
            }
            // Something failed: evaluate gate by gate to say which one.
        }
        self.evaluate_each(user_only)
    }

    fn split_aggregate(&self, v: &regorus::Value) -> Option<Vec<Violation>> {
        if matches!(v, regorus::Value::Undefined) {
            return Some(Vec::new());
        }
        let Value::Array(pairs) = serde_json::to_value(v).ok()? else {
            return None;
        };
        let mut by_gate: Vec<Vec<Value>> = vec![Vec::new(); self.gates.len()];
        for pair in pairs {
            let Value::Array(mut pair) = pair else {
                return None;
            };
            if pair.len() != 2 {
                return None;
            }
            let violation = pair.pop()?;
            let index = pair.pop()?.as_u64()? as usize;
            by_gate.get_mut(index)?.push(violation);
        }
        let mut out = Vec::new();
        for (items, (package, _)) in by_gate.into_iter().zip(&self.gates) {
            collect_items(items, package, &mut out).ok()?;
        }
        Some(out)
    }

    fn evaluate_each(&mut self, user_only: bool) -> Vec<Violation> {
        let mut out = Vec::new();
        for (package, path) in &self.gates {
            if user_only && path.starts_with(pack::PREFIX) {
                continue;
            }
            match self.engine.eval_rule(format!("{package}.violation")) {
                Ok(v) => {
                    if let Err(message) = collect_violations(&v, package, &mut out) {
                        out.push(self.error_violation(package, path, &message));
                    }
                }
                Err(e) => {
                    out.push(self.error_violation(package, path, &clean_error(&e.to_string())))
                }
            }
        }
        out
    }

    fn error_violation(&self, package: &str, path: &str, message: &str) -> Violation {
        Violation {
            rule: "tribunal.policy_error".into(),
            severity: self.fail_mode.severity(),
            message: format!(
                "policy {} ({path}) failed to evaluate: {message}; fail mode applies",
                package.trim_start_matches("data.")
            ),
            evidence: Vec::new(),
        }
    }
}

fn collect_violations(
    v: &regorus::Value,
    package: &str,
    out: &mut Vec<Violation>,
) -> Result<(), String> {
    if matches!(v, regorus::Value::Undefined) {
        return Ok(());
    }
    let json = serde_json::to_value(v).map_err(|e| e.to_string())?;
    let items = match json {
        Value::Array(items) => items,
        other => return Err(format!("`violation` must be a set, found {other}")),
    };
    collect_items(items, package, out)
}

fn collect_items(items: Vec<Value>, package: &str, out: &mut Vec<Violation>) -> Result<(), String> {
    let default_rule = package.trim_start_matches("data.");
    for item in items {
        out.push(match item {
            Value::String(message) => Violation {
                rule: default_rule.to_owned(),
                severity: Severity::Block,
                message,
                evidence: Vec::new(),
            },
            Value::Object(o) => {
                let severity = match o.get("severity").and_then(Value::as_str) {
                    None => Severity::Block,
                    Some(s) => Severity::parse(s).ok_or_else(|| {
                        format!("violation severity {s:?} is not one of block, escalate, warn")
                    })?,
                };
                Violation {
                    rule: o
                        .get("rule")
                        .and_then(Value::as_str)
                        .unwrap_or(default_rule)
                        .to_owned(),
                    severity,
                    // `msg` is Conftest's name for it.
                    message: o
                        .get("message")
                        .or_else(|| o.get("msg"))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    evidence: o
                        .get("evidence")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(|e| e.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default(),
                }
            }
            other => {
                return Err(format!(
                    "a violation must be an object or a string, found {other}"
                ))
            }
        });
    }
    Ok(())
}

fn timer(options: &PolicyOptions) -> regorus::utils::limits::ExecutionTimerConfig {
    regorus::utils::limits::ExecutionTimerConfig {
        limit: options.timeout,
        check_interval: NonZeroU32::new(1000).expect("non-zero"),
    }
}

/// Does the module text define a rule with this name (at the start of a line)?
pub(crate) fn defines_rule(text: &str, name: &str) -> bool {
    text.lines().any(|l| unread::rule_name(l) == Some(name))
}

/// regorus errors can be long and multi-line; keep them readable on one screen.
fn clean_error(s: &str) -> String {
    s.trim().to_owned()
}

/// Deep-merges `b` into `a`: objects merge key by key, anything else is replaced.
pub fn deep_merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(&k) {
                    Some(existing) => deep_merge(existing, v),
                    None => {
                        a.insert(k, v);
                    }
                }
            }
        }
        (a, b) => *a = b,
    }
}

/// Every string inside a JSON value (object keys excluded).
pub fn strings_of(v: &Value, f: &mut impl FnMut(&str)) {
    match v {
        Value::String(s) => f(s),
        Value::Array(a) => a.iter().for_each(|x| strings_of(x, f)),
        Value::Object(o) => o.values().for_each(|x| strings_of(x, f)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(text: &str, mode: FailMode) -> PolicySet {
        PolicySet::new(
            vec![PolicySource {
                path: "t.rego".into(),
                text: text.into(),
            }],
            &[],
            PolicyOptions {
                fail_mode: mode,
                ..PolicyOptions::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn violations_are_read_with_their_severity() {
        let p = set(
            r#"package t
violation contains {"rule": "r1", "severity": "escalate", "message": "m", "evidence": ["m1"]} if input.x > 1
violation contains "plain" if input.x > 5
"#,
            FailMode::Closed,
        );
        let mut e = p.evaluator();
        assert!(e.evaluate(json!({"x": 0})).is_empty());
        let v = e.evaluate(json!({"x": 2}));
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].severity, Severity::Escalate);
        assert_eq!(v[0].evidence, vec!["m1"]);
        let v = e.evaluate(json!({"x": 9}));
        assert!(v
            .iter()
            .any(|v| v.rule == "t" && v.severity == Severity::Block));
    }

    #[test]
    fn a_module_that_decides_under_a_name_the_gate_does_not_read_is_refused() {
        let load = |sources: Vec<(&str, &str)>| {
            PolicySet::new(
                sources
                    .into_iter()
                    .map(|(path, text)| PolicySource {
                        path: path.into(),
                        text: text.into(),
                    })
                    .collect(),
                &[],
                PolicyOptions::default(),
            )
        };
        let conftest = "package mine\nimport rego.v1\n\ndeny contains msg if {\n  input.x > 1\n  msg := \"no\"\n}\n";
        match load(vec![("policies/mine.rego", conftest)]) {
            Err(PolicyError::Invalid { path, message }) => {
                assert_eq!(path, "policies/mine.rego:4");
                assert!(
                    message.contains("`deny` is not read by the gate"),
                    "{message}"
                );
            }
            other => panic!("expected the module refused, got {other:?}"),
        }
        // Read from a gate's `violation`, the same rule is a helper.
        let gate = "package gate\nimport rego.v1\nimport data.mine\nviolation contains m if some m in mine.deny\n";
        let p = load(vec![
            ("policies/mine.rego", conftest),
            ("policies/gate.rego", gate),
        ])
        .unwrap();
        let v = p.evaluator().evaluate(json!({"x": 2}));
        assert_eq!((v.len(), v[0].message.as_str()), (1, "no"));
        // Conftest's `msg` is read as the message.
        let p = set(
            "package t\nviolation contains {\"msg\": \"too large\"} if input.x > 1\n",
            FailMode::Closed,
        );
        assert_eq!(
            p.evaluator().evaluate(json!({"x": 2}))[0].message,
            "too large"
        );
    }

    #[test]
    fn a_failing_policy_follows_the_fail_mode() {
        let text = r#"package t
violation contains {"rule": "r", "severity": "nonsense"} if true
"#;
        for (mode, sev) in [
            (FailMode::Closed, Severity::Block),
            (FailMode::Escalate, Severity::Escalate),
            (FailMode::Open, Severity::Warn),
        ] {
            let v = set(text, mode).evaluator().evaluate(json!({}));
            assert_eq!(v.len(), 1);
            assert_eq!(v[0].rule, "tribunal.policy_error");
            assert_eq!(v[0].severity, sev);
        }
    }

    #[test]
    fn runaway_policies_time_out_closed() {
        for compile in [Compile::Never, Compile::Always] {
            let p = PolicySet::new(
                vec![PolicySource {
                    path: "slow.rego".into(),
                    text: r#"package slow
import rego.v1
violation contains {"rule": "x", "message": "never"} if {
  some i in numbers.range(1, 400)
  some j in numbers.range(1, 400)
  some k in numbers.range(1, 400)
  i + j + k < 0
}
"#
                    .into(),
                }],
                &[],
                PolicyOptions {
                    fail_mode: FailMode::Closed,
                    timeout: Duration::from_millis(5),
                    compile,
                    screen: true,
                    ..PolicyOptions::default()
                },
            )
            .unwrap();
            assert_eq!(p.is_compiled(), compile == Compile::Always);
            let started = std::time::Instant::now();
            let v = p.evaluator().evaluate(json!({}));
            assert_eq!(v.len(), 1, "{compile:?}: {v:?}");
            assert_eq!(v[0].rule, "tribunal.policy_error");
            assert_eq!(v[0].severity, Severity::Block);
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{compile:?} did not stop"
            );
        }
    }

    /// A rule with `else` whose first body iterates and fails takes its `else` whatever
    /// `compile` says (regorus's virtual machine left it undefined, and the gate allowed).
    #[test]
    fn a_rule_with_else_takes_it_when_compiled_too() {
        let text = r#"package custom
import rego.v1
kind := "big" if {
    some c in input.calls
    c == "issue_refund"
} else := "small"
size(calls) := "big" if {
    some c in calls
    c == "issue_refund"
} else := "small"
violation contains {"rule": "custom.kind", "severity": "block"} if kind == "small"
violation contains {"rule": "custom.size", "severity": "block"} if size(input.calls) == "small"
"#;
        for compile in [Compile::Never, Compile::Auto, Compile::Always] {
            let p = PolicySet::new(
                vec![PolicySource {
                    path: "custom.rego".into(),
                    text: text.into(),
                }],
                &[],
                PolicyOptions {
                    compile,
                    ..PolicyOptions::default()
                },
            )
            .unwrap();
            let mut rules: Vec<String> = p
                .evaluator()
                .evaluate(json!({"calls": ["lookup"]}))
                .into_iter()
                .map(|v| v.rule)
                .collect();
            rules.sort();
            assert_eq!(rules, ["custom.kind", "custom.size"], "{compile:?}");
            assert!(!p.is_compiled(), "{compile:?}");
        }
        let mut engine = regorus::Engine::new();
        engine
            .add_policy("custom.rego".into(), text.into())
            .unwrap();
        assert_eq!(
            else_after_a_body(&mut engine),
            Some(("custom.rego".to_owned(), 6))
        );
    }

    #[test]
    fn invalid_policy_names_file_and_line() {
        let err = PolicySet::new(
            vec![PolicySource {
                path: "bad.rego".into(),
                text: "package bad\n\nviolation contains x if {\n  x := \n}\n".into(),
            }],
            &[],
            PolicyOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("bad.rego"), "{err}");
        assert!(err.contains(":4") || err.contains(":5"), "{err}");
    }

    #[test]
    fn data_merges_over_pack_defaults() {
        let mut a = json!({"x": {"a": 1, "b": 2}, "l": [1]});
        deep_merge(&mut a, json!({"x": {"b": 3}, "l": [2, 3]}));
        assert_eq!(a, json!({"x": {"a": 1, "b": 3}, "l": [2, 3]}));
    }
}

#[cfg(test)]
mod judge_error_tests {
    use super::*;
    use tribunal_core::{Feedback, FeedbackSource, SourceType, Trace};

    fn llm_feedback(error: Option<&str>) -> Feedback {
        Feedback {
            name: "grounded".into(),
            value: if error.is_some() {
                Value::Null
            } else {
                Value::String("yes".into())
            },
            rationale: None,
            source: FeedbackSource {
                source_type: SourceType::LlmJudge,
                source_id: "openai:/m".into(),
                version: None,
                kind: None,
            },
            error: error.map(str::to_owned),
            evidence: vec![],
            findings: vec![],
            usage: None,
        }
    }

    #[test]
    fn a_failed_judge_fails_closed_whatever_the_policies_read() {
        // Policies that read the score by name, by iteration, or not at all; and no policy.
        let texts = [
            "package g\nimport rego.v1\nviolation contains \"unsupported\" if input.scores.grounded.value == \"no\"\n",
            "package g\nimport rego.v1\nviolation contains \"unsupported\" if { some name, s in input.scores; name == \"grounded\"; s.value == \"no\" }\n",
            "package g\nimport rego.v1\nviolation contains \"x\" if false\n",
        ];
        let t = Trace::default();
        // Something to judge, so only the judge's failure counts.
        let reply = tribunal_core::Pending {
            kind: "reply".into(),
            tool_calls: Vec::new(),
            content: "hello".into(),
        };
        let pending = Some(&reply);
        let ctx = Context::default();
        let mut sets: Vec<Vec<PolicySource>> = texts
            .iter()
            .map(|t| {
                vec![PolicySource {
                    path: "g.rego".into(),
                    text: (*t).into(),
                }]
            })
            .collect();
        sets.push(Vec::new());
        for sources in sets {
            let set = PolicySet::new(sources.clone(), &[], PolicyOptions::default()).unwrap();
            let mut e = set.evaluator();
            assert!(e
                .evaluate_trace(&t, pending, &[llm_feedback(None)], &ctx)
                .is_empty());
            let v = e.evaluate_trace(&t, pending, &[llm_feedback(Some("HTTP 500"))], &ctx);
            assert_eq!(v.len(), 1, "{sources:?}: {v:?}");
            assert_eq!(v[0].rule, "tribunal.judge_error");
            assert_eq!(v[0].severity, Severity::Block);
            assert!(v[0].message.contains("HTTP 500") && v[0].message.contains("grounded"));
            // Configured to escalate, or optional (reported, does not decide).
            for (sev, by_judge) in [
                (Severity::Escalate, true),
                (Severity::Warn, true),
                (Severity::Escalate, false),
            ] {
                let judge_errors = if by_judge {
                    JudgeErrors {
                        default: None,
                        by_judge: [("grounded".to_owned(), sev)].into(),
                        ..JudgeErrors::default()
                    }
                } else {
                    JudgeErrors {
                        default: Some(sev),
                        ..JudgeErrors::default()
                    }
                };
                let options = PolicyOptions {
                    judge_errors,
                    ..PolicyOptions::default()
                };
                let v = PolicySet::new(sources.clone(), &[], options)
                    .unwrap()
                    .evaluator()
                    .evaluate_trace(&t, pending, &[llm_feedback(Some("HTTP 500"))], &ctx);
                assert_eq!(v.len(), 1);
                assert_eq!(v[0].severity, sev);
            }
        }
    }
}

#[cfg(test)]
mod no_content_tests {
    use super::*;
    use tribunal_core::{Span, Trace};

    #[test]
    fn a_trace_with_nothing_to_judge_is_escalated_not_allowed() {
        let ctx = Context::default();
        let spans_only = Trace {
            id: "t".into(),
            spans: vec![Span {
                id: "s1".into(),
                name: "chat gpt-4o".into(),
                ..Span::default()
            }],
            ..Trace::default()
        };
        for (severity, options) in [
            (Severity::Escalate, PolicyOptions::default()),
            (
                Severity::Block,
                PolicyOptions {
                    no_content: Severity::Block,
                    ..PolicyOptions::default()
                },
            ),
        ] {
            for sources in [vec![], pack::sources()] {
                let v = PolicySet::new(sources, &[], options.clone())
                    .unwrap()
                    .evaluator()
                    .evaluate_trace(&spans_only, None, &[], &ctx);
                assert_eq!(v.len(), 1, "{v:?}");
                assert_eq!(v[0].rule, "tribunal.no_content");
                assert_eq!(v[0].severity, severity);
                assert_eq!(v[0].evidence, vec!["s1"]);
            }
        }
        // Content anywhere counts.
        let mut with_output = spans_only.clone();
        with_output.spans[0].outputs = Some(serde_json::json!("hi"));
        let mut with_inputs = spans_only.clone();
        with_inputs.inputs = Some(serde_json::json!({"question": "hi"}));
        for t in [with_output, with_inputs] {
            assert!(PolicySet::builtin()
                .evaluator()
                .evaluate_trace(&t, None, &[], &ctx)
                .is_empty());
        }
    }
}
