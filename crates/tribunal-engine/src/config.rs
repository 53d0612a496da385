//! `tribunal.toml`: which judges run with which settings, which policy folders load, the
//! policy data, fail modes and run defaults. Everything has a default: no file is needed.

use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;
use tribunal_judges::metrics::usage::PriceTable;
use tribunal_judges::{build_versioned, Judge, JudgeSpec, BUILTINS};
use tribunal_llm::ResponseCache;
use tribunal_policy::{FailMode, JudgeErrors, PolicyError, PolicyOptions, PolicySet, PolicySource};

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error(transparent)]
    Judge(#[from] tribunal_judges::JudgeConfigError),
    /// A judge's table in a file: `at` is `FILE:LINE` of its `[judges.NAME]` header.
    #[error("{at}: {source}")]
    JudgeAt {
        at: String,
        source: tribunal_judges::JudgeConfigError,
    },
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub eval: EvalSettings,
    pub store: StoreSettings,
    pub policies: PolicySettings,
    /// `[judges.NAME]` tables: `kind` (defaults to NAME), `enabled`, and the judge's settings.
    pub judges: BTreeMap<String, toml::Table>,
    /// Default context for every trace: agent, user, environment.
    pub context: tribunal_policy::Context,
    /// Where the file was read from (for relative paths).
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// Hash of the file's text.
    #[serde(skip)]
    pub hash: String,
    /// The file it was read from; `None` for the built-in defaults.
    #[serde(skip)]
    pub path: Option<PathBuf>,
    /// `FILE:LINE` of each `[judges.NAME]` table, for errors about it.
    #[serde(skip)]
    judge_at: BTreeMap<String, String>,
}

/// The `judges` tables' names with where each is written.
#[derive(Deserialize)]
struct JudgeNames {
    #[serde(default)]
    judges: BTreeMap<toml::Spanned<String>, serde::de::IgnoredAny>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalSettings {
    /// `block` (default) or `escalate`: the lowest decision that fails a run.
    pub fail_on: String,
    /// Worker threads; 0 means one per core.
    pub jobs: usize,
    /// `auto`, `openai`, `anthropic`, `mlflow` or `otlp`.
    pub input_format: String,
    /// Keep model judges' answers in the store and answer repeated requests from there
    /// (only when runs are stored).
    pub cache: bool,
    /// Store each trace as judged with its result, so a labeling queue made from the run
    /// shows people the conversation (only when runs are stored).
    pub keep_traces: bool,
}

impl Default for EvalSettings {
    fn default() -> Self {
        EvalSettings {
            fail_on: "block".into(),
            jobs: 0,
            input_format: "auto".into(),
            cache: true,
            keep_traces: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSettings {
    /// SQLite file path (relative to the config file) or database URL. Unset: the default
    /// `.tribunal/tribunal.db` in the current directory.
    pub path: Option<String>,
    /// Save runs at all.
    pub enabled: bool,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            path: None,
            enabled: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicySettings {
    /// Load the built-in default pack.
    pub builtin: bool,
    /// Folders (or files) of `.rego` policies and `data.json` files.
    pub paths: Vec<PathBuf>,
    /// `closed` (block, the default), `escalate` or `open` (allow with a warning).
    pub fail_mode: String,
    /// Time limit per policy evaluation, in milliseconds.
    pub timeout_ms: u64,
    /// Merged into `data.tribunal.config` over the pack's defaults.
    pub data: toml::Table,
    /// `auto` (compiled when only the built-in pack is loaded), `always` or `never`:
    /// whether gates run compiled on regorus's virtual machine or interpreted. `always`
    /// interprets policies of the user's own with a rule using `else`, which the virtual
    /// machine can leave undefined.
    pub compile: String,
    /// Skip the built-in pack on traces that none of its rules can fire on (checked in
    /// Rust before the gates run; other gates still run); `false` runs every gate on every
    /// trace.
    pub screen: bool,
    /// `escalate` (default), `block` or `warn`: what a trace with no content to judge gets
    /// (`tribunal.no_content`), e.g. spans exported without message content.
    pub no_content: String,
}

impl Default for PolicySettings {
    fn default() -> Self {
        PolicySettings {
            builtin: true,
            paths: Vec::new(),
            fail_mode: "closed".into(),
            timeout_ms: 100,
            data: toml::Table::new(),
            compile: "auto".into(),
            screen: true,
            no_content: "escalate".into(),
        }
    }
}

impl Config {
    /// Reads a config file. Errors name the file, line and the setting.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let mut cfg = Config::parse(&text, &path.display().to_string())?;
        cfg.base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        cfg.path = Some(path.to_path_buf());
        Ok(cfg)
    }

    /// The configuration in force, as reports name it: the file's path, or
    /// `built-in defaults`.
    pub fn describe(&self) -> String {
        match &self.path {
            Some(p) => p.display().to_string(),
            None => "built-in defaults".to_owned(),
        }
    }

    /// The built-in defaults, as if from an empty file.
    pub fn default_with_hash() -> Config {
        Config::parse("", "(defaults)").expect("the empty configuration is valid")
    }

    /// Parses config text; `name` is used in error messages.
    pub fn parse(text: &str, name: &str) -> Result<Config, ConfigError> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| ConfigError::File {
            path: match e.span() {
                Some(span) => {
                    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                    format!("{name}:{line}")
                }
                None => name.to_owned(),
            },
            message: e.message().to_owned(),
        })?;
        cfg.hash = short_hash(text);
        let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        if let Ok(names) = toml::from_str::<JudgeNames>(text) {
            cfg.judge_at = names
                .judges
                .keys()
                .map(|k| {
                    (
                        k.get_ref().clone(),
                        format!("{name}:{}", line_of(k.span().start)),
                    )
                })
                .collect();
        }
        cfg.check_judge_names(name)?;
        if !matches!(cfg.eval.fail_on.as_str(), "block" | "escalate") {
            return Err(ConfigError::File {
                path: name.to_owned(),
                message: format!(
                    "eval.fail_on: expected block or escalate, found {:?}",
                    cfg.eval.fail_on
                ),
            });
        }
        if FailMode::parse(&cfg.policies.fail_mode).is_none() {
            return Err(ConfigError::File {
                path: name.to_owned(),
                message: format!(
                    "policies.fail_mode: expected one of {}, found {:?}",
                    FailMode::NAMES.join(", "),
                    cfg.policies.fail_mode
                ),
            });
        }
        if tribunal_core::Severity::parse(&cfg.policies.no_content).is_none()
            || !matches!(
                cfg.policies.no_content.as_str(),
                "escalate" | "block" | "warn"
            )
        {
            return Err(ConfigError::File {
                path: name.to_owned(),
                message: format!(
                    "policies.no_content: expected escalate, block or warn, found {:?}",
                    cfg.policies.no_content
                ),
            });
        }
        if tribunal_policy::Compile::parse(&cfg.policies.compile).is_none() {
            return Err(ConfigError::File {
                path: name.to_owned(),
                message: format!(
                    "policies.compile: expected one of {}, found {:?}",
                    tribunal_policy::Compile::NAMES.join(", "),
                    cfg.policies.compile
                ),
            });
        }
        if tribunal_formats::InputFormat::parse(&cfg.eval.input_format).is_none() {
            return Err(ConfigError::File {
                path: name.to_owned(),
                message: format!(
                    "eval.input_format: expected one of {}, found {:?}",
                    tribunal_formats::InputFormat::NAMES.join(", "),
                    cfg.eval.input_format
                ),
            });
        }
        Ok(cfg)
    }

    /// Every `[judges.NAME]` table either names a built-in judge or says which kind of
    /// judge it adds (`kind = "..."`): a misspelt name (`[judges.repeated_call]
    /// enabled = false`) would otherwise change nothing while the user believes it did.
    fn check_judge_names(&self, file: &str) -> Result<(), ConfigError> {
        for (name, table) in &self.judges {
            let kind = match table.get("kind") {
                None => name.as_str(),
                Some(toml::Value::String(kind)) => kind.as_str(),
                // Reported with the table's other settings.
                Some(_) => continue,
            };
            if BUILTINS.iter().any(|b| b.kind == kind) {
                continue;
            }
            let at = self
                .judge_at
                .get(name)
                .cloned()
                .unwrap_or_else(|| file.to_owned());
            let known = tribunal_judges::registry::valid_kinds();
            let message = if table.contains_key("kind") {
                format!(
                    "[judges.{name}]: unknown judge kind {kind:?}{}; known kinds: {known}",
                    did_you_mean(kind)
                )
            } else {
                format!(
                    "[judges.{name}]: no built-in judge is named {name:?}{}; known names: {known} \
                     (a judge of your own takes any name and says its kind: kind = \"llm\", ...)",
                    did_you_mean(kind)
                )
            };
            return Err(ConfigError::File { path: at, message });
        }
        Ok(())
    }

    /// `error` about a judge, with the file and line of its table when it has one.
    fn judge_error(&self, error: tribunal_judges::JudgeConfigError) -> ConfigError {
        let name = match &error {
            tribunal_judges::JudgeConfigError::UnknownKind { name, .. }
            | tribunal_judges::JudgeConfigError::Invalid { name, .. } => name,
        };
        match self.judge_at.get(name) {
            Some(at) => ConfigError::JudgeAt {
                at: at.clone(),
                source: error,
            },
            None => ConfigError::Judge(error),
        }
    }

    /// The judge instances: every default built-in, changed, disabled or added to by the
    /// `[judges.*]` tables.
    pub fn judge_specs(&self) -> Result<Vec<JudgeSpec>, ConfigError> {
        let mut specs: Vec<JudgeSpec> = BUILTINS
            .iter()
            .filter(|b| b.default_on)
            .map(|b| JudgeSpec {
                name: b.kind.to_owned(),
                kind: b.kind.to_owned(),
                params: Value::Null,
            })
            .collect();
        for (name, table) in &self.judges {
            specs.retain(|s| &s.name != name);
            if let Some(mut spec) = self.table_spec(name, table).map_err(|e| match e {
                ConfigError::Judge(e) => self.judge_error(e),
                other => other,
            })? {
                if let Some(e) = tribunal_judges::registry::replaces_a_default(&spec) {
                    return Err(self.judge_error(e));
                }
                // Files a judge reads are relative to the configuration file, like policy
                // folders and the store.
                if let Some(Value::String(path)) = spec.params.get_mut("path") {
                    if Path::new(path.as_str()).is_relative()
                        && !self.base_dir.as_os_str().is_empty()
                    {
                        *path = self.base_dir.join(&*path).display().to_string();
                    }
                }
                specs.push(spec);
            }
        }
        Ok(specs)
    }

    /// The judge a `[judges.NAME]` table declares: its `kind` (NAME when absent) and its
    /// settings (the other keys but `enabled`, `optional` and `on_error`); `None` when it
    /// says `enabled = false`.
    pub fn table_spec(
        &self,
        name: &str,
        table: &toml::Table,
    ) -> Result<Option<JudgeSpec>, ConfigError> {
        let mut table = table.clone();
        let kind = match table.remove("kind") {
            Some(toml::Value::String(k)) => k,
            Some(_) => {
                return Err(tribunal_judges::JudgeConfigError::invalid(
                    name,
                    "`kind` must be a string",
                )
                .into())
            }
            None => name.to_owned(),
        };
        let enabled = match table.remove("enabled") {
            Some(toml::Value::Boolean(b)) => b,
            Some(_) => {
                return Err(tribunal_judges::JudgeConfigError::invalid(
                    name,
                    "`enabled` must be true or false",
                )
                .into())
            }
            None => true,
        };
        // What a failure of the judge does is the policy judge's business.
        table.remove("optional");
        table.remove("on_error");
        table.remove("on_untrusted");
        if !enabled {
            return Ok(None);
        }
        let params = serde_json::to_value(&table)
            .map_err(|e| tribunal_judges::JudgeConfigError::invalid(name, e.to_string()))?;
        Ok(Some(JudgeSpec {
            name: name.to_owned(),
            kind,
            params,
        }))
    }

    /// What each judge's failure does to the decision: `on_error = "block"` (the default,
    /// or `escalate` when `[policies] fail_mode = "escalate"`), `on_error = "escalate"`, or
    /// `optional = true` (reported as a warning; the other judges and the gates decide).
    pub fn judge_errors(&self) -> Result<JudgeErrors, ConfigError> {
        self.judge_errors_unplaced()
            .map_err(|e| self.judge_error(e))
    }

    fn judge_errors_unplaced(&self) -> Result<JudgeErrors, tribunal_judges::JudgeConfigError> {
        let mut out = JudgeErrors {
            default: (FailMode::parse(&self.policies.fail_mode) == Some(FailMode::Escalate))
                .then_some(tribunal_core::Severity::Escalate),
            ..JudgeErrors::default()
        };
        for (name, table) in &self.judges {
            let optional = match table.get("optional") {
                None => false,
                Some(toml::Value::Boolean(b)) => *b,
                Some(_) => {
                    return Err(tribunal_judges::JudgeConfigError::invalid(
                        name,
                        "`optional` must be true or false",
                    ))
                }
            };
            let on_error = match table.get("on_error") {
                None => None,
                Some(toml::Value::String(s)) if s == "block" => {
                    Some(tribunal_core::Severity::Block)
                }
                Some(toml::Value::String(s)) if s == "escalate" => {
                    Some(tribunal_core::Severity::Escalate)
                }
                Some(other) => {
                    return Err(tribunal_judges::JudgeConfigError::invalid(
                        name,
                        format!("`on_error` must be \"block\" or \"escalate\", found {other:?}"),
                    ))
                }
            };
            if optional && on_error.is_some() {
                return Err(tribunal_judges::JudgeConfigError::invalid(
                    name,
                    "`optional = true` and `on_error` contradict each other; keep one",
                ));
            }
            if optional {
                out.by_judge
                    .insert(name.clone(), tribunal_core::Severity::Warn);
            } else if let Some(s) = on_error {
                out.by_judge.insert(name.clone(), s);
            }
            // An answer the judge was not sure enough of: people decide unless it says
            // otherwise.
            let on_untrusted = match table.get("on_untrusted") {
                None => None,
                Some(toml::Value::String(s)) => match s.as_str() {
                    "escalate" => Some(tribunal_core::Severity::Escalate),
                    "block" => Some(tribunal_core::Severity::Block),
                    "warn" => Some(tribunal_core::Severity::Warn),
                    _ => None,
                },
                Some(_) => None,
            };
            match (table.get("on_untrusted"), on_untrusted) {
                (Some(other), None) => {
                    return Err(tribunal_judges::JudgeConfigError::invalid(
                        name,
                        format!(
                            "`on_untrusted` must be \"escalate\", \"block\" or \"warn\", found {other:?}"
                        ),
                    )
                    )
                }
                (_, Some(s)) => {
                    out.untrusted.insert(name.clone(), s);
                }
                _ => {}
            }
        }
        Ok(out)
    }

    pub fn build_judges(&self) -> Result<Vec<Box<dyn Judge>>, ConfigError> {
        self.judge_specs()?
            .iter()
            .map(|s| build_versioned(s).map_err(|e| self.judge_error(e)))
            .collect()
    }

    /// The prices that cost model judges' calls: the `cost` judge's table, with its
    /// `prices` setting when one is configured.
    pub fn price_table(&self) -> Result<PriceTable, ConfigError> {
        match self.judge_specs()?.into_iter().find(|s| s.kind == "cost") {
            Some(spec) => PriceTable::from_cost_settings(&spec.name, &spec.params)
                .map_err(|e| self.judge_error(e)),
            None => Ok(PriceTable::builtin()),
        }
    }

    /// The policy set: the built-in pack (unless turned off), then every configured folder;
    /// `extra` folders (from the command line) come last.
    pub fn build_policies(&self, extra: &[PathBuf]) -> Result<PolicySet, ConfigError> {
        self.build_policies_with(extra, None)
    }

    /// [`Config::build_policies`] with one module's text in place of the file at its path
    /// (or added, when no loaded module has that path): a policy change tried before it is
    /// written.
    pub fn build_policies_with(
        &self,
        extra: &[PathBuf],
        replace: Option<&PolicySource>,
    ) -> Result<PolicySet, ConfigError> {
        let mut sources: Vec<PolicySource> = Vec::new();
        if self.policies.builtin {
            sources.extend(tribunal_policy::pack::sources());
        }
        let mut data = Vec::new();
        for p in self
            .policies
            .paths
            .iter()
            .map(|p| self.base_dir.join(p))
            .chain(extra.iter().cloned())
        {
            let dir = tribunal_policy::load_dir(&p)?;
            let before = sources.len();
            sources.extend(dir.sources.into_iter().filter(|s| !is_test_file(&s.path)));
            // A folder named for policies that holds none (a wrong path, files not yet
            // written, only tests) would leave every trace to the other gates.
            if sources.len() == before && dir.data.is_empty() {
                return Err(ConfigError::File {
                    path: p.display().to_string(),
                    message: "no policies here: expected .rego modules (other than *_test.rego \
                              unit tests) or a data.json file"
                        .into(),
                });
            }
            data.extend(dir.data.into_iter().map(|(_, v)| v));
        }
        if !self.policies.data.is_empty() {
            data.push(serde_json::to_value(&self.policies.data).map_err(|e| {
                ConfigError::File {
                    path: "policies.data".into(),
                    message: e.to_string(),
                }
            })?);
        }
        if let Some(r) = replace {
            match sources.iter_mut().find(|s| s.path == r.path) {
                Some(s) => s.text = r.text.clone(),
                None => sources.push(r.clone()),
            }
        }
        let options = PolicyOptions {
            fail_mode: FailMode::parse(&self.policies.fail_mode).unwrap_or_default(),
            timeout: std::time::Duration::from_millis(self.policies.timeout_ms.max(1)),
            compile: tribunal_policy::Compile::parse(&self.policies.compile).unwrap_or_default(),
            screen: self.policies.screen,
            judge_errors: self.judge_errors()?,
            no_content: tribunal_core::Severity::parse(&self.policies.no_content)
                .unwrap_or(tribunal_core::Severity::Escalate),
        };
        Ok(PolicySet::new(sources, &data, options)?)
    }
}

/// ` (did you mean "NAME"?)` for the built-in judge whose name is closest to `name`
/// (a letter or two apart, or one name inside the other), else nothing.
fn did_you_mean(name: &str) -> String {
    let distance = |a: &str, b: &str| {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let here = row[j + 1];
                row[j + 1] = (row[j + 1] + 1)
                    .min(row[j] + 1)
                    .min(prev + usize::from(ca != *cb));
                prev = here;
            }
        }
        row[b.len()]
    };
    let lower = name.to_ascii_lowercase();
    BUILTINS
        .iter()
        .map(|b| {
            let d = distance(&lower, b.kind);
            let inside = lower.len() >= 4 && (b.kind.contains(&lower) || lower.contains(b.kind));
            (if inside { d.min(1) } else { d }, b.kind)
        })
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, kind)| format!(" (did you mean {kind:?}?)"))
        .unwrap_or_default()
}

/// Gives `cache` to every judge that calls a model, so repeated requests are answered
/// from it.
pub fn share_response_cache(
    judges: &mut [Box<dyn Judge>],
    cache: &Arc<dyn ResponseCache>,
) -> Result<(), ConfigError> {
    for judge in judges {
        judge.set_response_cache(cache.clone())?;
    }
    Ok(())
}

/// `*_test.rego` files hold unit tests: loaded by `policy test`, not by evaluation.
pub fn is_test_file(path: &str) -> bool {
    path.ends_with("_test.rego")
}

pub fn short_hash(text: &str) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(text.as_bytes());
    d[..6].iter().map(|b| format!("{b:02x}")).collect()
}

/// A commented starter configuration, written by `tribunal init`.
pub const STARTER_CONFIG: &str = include_str!("../starter/tribunal.toml");
/// A starter policy with its unit test, written by `tribunal init`.
pub const STARTER_POLICY: &str = include_str!("../starter/policies/refunds.rego");
pub const STARTER_POLICY_TEST: &str = include_str!("../starter/policies/refunds_test.rego");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_runs_every_default_judge_and_the_pack() {
        let cfg = Config::parse("", "t.toml").unwrap();
        let judges = cfg.build_judges().unwrap();
        assert_eq!(
            judges.len(),
            BUILTINS.iter().filter(|b| b.default_on).count()
        );
        let policies = cfg.build_policies(&[]).unwrap();
        assert_eq!(
            policies.gates().collect::<Vec<_>>(),
            vec!["data.tribunal.pack"]
        );
    }

    #[test]
    fn unknown_setting_names_line_and_valid_choices() {
        let err = Config::parse("[eval]\njobs = 2\nfail_onn = \"block\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("t.toml:3"), "{err}");
        assert!(err.contains("fail_onn") && err.contains("fail_on"), "{err}");
    }

    /// A judge of another kind under a default judge's name (a Judge Builder judge exported
    /// as `[judges.dangerous_commands] kind = "llm"`) would remove the detector the pack
    /// reads: refused, naming the line.
    #[test]
    fn a_judge_may_not_take_a_default_judges_place() {
        let text = "[judges.dangerous_commands]\nkind = \"llm\"\ninstructions = \"Is {{ outputs }} fine?\"\nmodel = \"openai:/local\"\nbase_url = \"http://127.0.0.1:9/v1\"\n";
        let err = Config::parse(text, "t.toml")
            .and_then(|c| c.judge_specs().map(drop))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("t.toml:1: judges.dangerous_commands: kind \"llm\"")
                && err.contains("would replace it"),
            "{err}"
        );
        let ok = "[judges.my_commands]\nkind = \"dangerous_commands\"\n[judges.dangerous_commands]\nenabled = false\n";
        let specs = Config::parse(ok, "t.toml").unwrap().judge_specs().unwrap();
        assert!(specs.iter().any(|s| s.name == "my_commands"));
        assert!(!specs.iter().any(|s| s.name == "dangerous_commands"));
    }

    #[test]
    fn unknown_judge_names_valid_kinds() {
        let err = Config::parse(
            "[eval]\njobs = 1\n[judges.sekrets]\nthreshold = 1\n",
            "t.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("t.toml:3: [judges.sekrets]"), "{err}");
        assert!(err.contains("did you mean \"secrets\"?"), "{err}");
        assert!(err.contains("known names: step_count,"), "{err}");
        let err = Config::parse("[judges.mine]\nkind = \"lmm\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "t.toml:1: [judges.mine]: unknown judge kind \"lmm\" (did you mean \"llm\"?)"
            ),
            "{err}"
        );
        // A judge of one's own under any name, with its kind.
        Config::parse("[judges.mine]\nkind = \"llm\"\n", "t.toml").unwrap();
    }

    #[test]
    fn a_judge_table_that_does_not_build_names_its_file_and_line() {
        let cfg = Config::parse(
            "[eval]\njobs = 1\n\n[judges.secrets]\nentropy_threshold = \"high\"\n",
            "t.toml",
        )
        .unwrap();
        let err = cfg.build_judges().err().unwrap().to_string();
        assert!(err.starts_with("t.toml:4: judges.secrets: "), "{err}");
        let cfg = Config::parse("[judges.pii]\noptional = 1\n", "t.toml").unwrap();
        let err = cfg.judge_errors().err().unwrap().to_string();
        assert!(err.starts_with("t.toml:1: judges.pii: `optional`"), "{err}");
    }

    #[test]
    fn judges_can_be_disabled_and_added() {
        let cfg = Config::parse(
            "[judges.pii]\nenabled = false\n[judges.strict_loops]\nkind = \"repeated_calls\"\n",
            "t.toml",
        )
        .unwrap();
        let specs = cfg.judge_specs().unwrap();
        assert!(!specs.iter().any(|s| s.name == "pii"));
        assert!(specs
            .iter()
            .any(|s| s.name == "strict_loops" && s.kind == "repeated_calls"));
    }

    #[test]
    fn judges_carry_the_version_of_their_definition() {
        let a = Config::parse("[judges.repeated_calls]\nignore_tools = []\n", "t.toml").unwrap();
        let b = Config::parse(
            "[judges.repeated_calls]\nignore_tools = [\"poll\"]\n",
            "t.toml",
        )
        .unwrap();
        let version = |c: &Config| {
            c.judge_specs()
                .unwrap()
                .into_iter()
                .find(|s| s.name == "repeated_calls")
                .unwrap()
                .version()
        };
        assert_ne!(version(&a), version(&b));
        assert_eq!(version(&a), version(&a.clone()));
        let trace = tribunal_core::Trace {
            messages: vec![tribunal_core::Message::new(
                "m0",
                tribunal_core::Role::User,
                "hi",
            )],
            ..Default::default()
        };
        let judges = a.build_judges().unwrap();
        let input = tribunal_judges::JudgeInput {
            trace: &trace,
            pending: None,
        };
        let f = judges
            .iter()
            .flat_map(|j| j.judge(&input))
            .find(|f| f.name == "step_count")
            .unwrap();
        assert_eq!(f.source.version.as_deref().map(str::len), Some(12));
    }

    #[test]
    fn model_calls_are_priced_with_the_cost_judges_prices() {
        let cfg = Config::parse("", "t.toml").unwrap();
        assert!(cfg.eval.cache);
        let builtin = cfg.price_table().unwrap();
        assert_eq!(builtin.usd("ollama:/llama3.1", 1_000_000, 0), None);
        let cfg = Config::parse(
            "[eval]\ncache = false\n[judges.cost.prices]\n\"llama3.1\" = { input_per_million = 0.5, output_per_million = 1.0 }\n",
            "t.toml",
        )
        .unwrap();
        assert!(!cfg.eval.cache);
        let prices = cfg.price_table().unwrap();
        assert_eq!(prices.usd("ollama:/llama3.1", 1_000_000, 0), Some(0.5));
        assert!(prices.usd("openai:/gpt-4o-mini", 1_000_000, 0).is_some());
    }

    #[test]
    fn bad_fail_mode_lists_choices() {
        let err = Config::parse("[policies]\nfail_mode = \"maybe\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("closed, escalate, open"), "{err}");
    }

    #[test]
    fn starter_config_is_valid() {
        let cfg = Config::parse(STARTER_CONFIG, "starter").unwrap();
        cfg.build_judges().unwrap();
    }

    /// Every setting the starter shows commented out (`# key = value`, `# [table]`) is
    /// valid once a user uncomments it.
    #[test]
    fn starter_config_is_valid_with_every_commented_setting() {
        let mut uncommented = 0;
        let text: String = STARTER_CONFIG
            .lines()
            .map(|l| {
                let Some(rest) = l.strip_prefix("# ") else {
                    return format!("{l}\n");
                };
                let key = rest.split(" = ").next().unwrap_or("");
                let setting = (rest.starts_with('[') && rest.ends_with(']'))
                    || (rest.contains(" = ")
                        && !key.is_empty()
                        && key.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
                if setting {
                    uncommented += 1;
                    format!("{rest}\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        assert!(uncommented >= 4, "{text}");
        let cfg = Config::parse(&text, "starter").unwrap_or_else(|e| panic!("{e}\n{text}"));
        cfg.build_judges().unwrap_or_else(|e| panic!("{e}\n{text}"));
    }
}
