//! Projects: each has its own configuration (judges, policies, context), loaded from a
//! `tribunal.toml` and reloadable without a restart. A reload builds everything anew and
//! swaps it in only when it all compiled; requests in flight finish on the old version.

use crate::error::ApiError;
use anyhow::Context as _;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;
use tribunal_engine::{Config, Evaluator};
use tribunal_policy::PolicySet;

/// How a project is configured on the command line: `NAME=CONFIG` plus policy folders.
#[derive(Debug, Clone, Default)]
pub struct ProjectSpec {
    pub name: String,
    /// A `tribunal.toml`; `None` for the defaults.
    pub config: Option<PathBuf>,
    /// Extra policy folders, after the configuration's.
    pub policies: Vec<PathBuf>,
    /// Policy folders evaluated in shadow mode: decided and logged, never enforced.
    pub shadow_policies: Vec<PathBuf>,
}

/// A judge as the API lists it.
#[derive(Debug, Clone, Serialize)]
pub struct JudgeInfo {
    pub name: String,
    pub kind: String,
    pub version: String,
}

/// Everything built from one version of a project's configuration.
pub struct Runtime {
    evaluator: Arc<Evaluator>,
    pub judges: Vec<JudgeInfo>,
    pub config_hash: String,
    pub loaded_at: String,
    /// The model judges' latency budget the project's policies ask for
    /// (`[policies.data.gate] budget_ms`), used when a request names none.
    pub budget: Option<Duration>,
    /// The decision-log entry that records this version of the configuration, set before it
    /// takes requests; gate entries name it instead of repeating every version.
    logged_as: OnceLock<i64>,
}

/// Where model judges remember their answers (the server's store), unless the project's
/// configuration turns the cache off (`[eval] cache = false`).
pub type SharedCache = Option<Arc<dyn tribunal_llm::ResponseCache>>;

impl Runtime {
    pub fn build(spec: &ProjectSpec, cache: &SharedCache) -> anyhow::Result<Runtime> {
        let cfg = match &spec.config {
            Some(p) => Config::load(p)?,
            None => Config::default_with_hash(),
        };
        let judges = cfg
            .judge_specs()
            .context("configuring judges")?
            .iter()
            .map(|s| JudgeInfo {
                name: s.name.clone(),
                kind: s.kind.clone(),
                version: s.version(),
            })
            .collect();
        let mut built = cfg.build_judges().context("configuring judges")?;
        if let Some(c) = cache.as_ref().filter(|_| cfg.eval.cache) {
            tribunal_engine::config::share_response_cache(&mut built, c)
                .context("configuring judges")?;
        }
        let policies = cfg
            .build_policies(&spec.policies)
            .context("loading policies")?;
        let shadow = if spec.shadow_policies.is_empty() {
            None
        } else {
            let mut shadow_cfg = cfg.clone();
            shadow_cfg.policies.paths.clear();
            Some(
                shadow_cfg
                    .build_policies(&spec.shadow_policies)
                    .context("loading shadow policies")?,
            )
        };
        let budget = match cfg.policies.data.get("gate").and_then(|g| g.get("budget_ms")) {
            None => None,
            Some(toml::Value::Integer(ms)) if *ms >= 0 => Some(Duration::from_millis(*ms as u64)),
            Some(other) => anyhow::bail!(
                "policies.data.gate.budget_ms: expected milliseconds (a whole number ≥ 0), found {other:?}"
            ),
        };
        Ok(Runtime {
            budget,
            evaluator: Evaluator::with_shadow(built, policies, shadow, cfg.context.clone()),
            judges,
            config_hash: cfg.hash.clone(),
            loaded_at: tribunal_store::clock::now_rfc3339(),
            logged_as: OnceLock::new(),
        })
    }

    /// What the decision log records of this version (a `config` entry): the policy
    /// versions, the configuration's hash and every judge's version.
    pub fn record(&self) -> serde_json::Value {
        let judges: serde_json::Map<String, serde_json::Value> = self
            .judges
            .iter()
            .map(|j| (j.name.clone(), j.version.clone().into()))
            .collect();
        serde_json::json!({
            "policy_version": self.policy_version(),
            "shadow_policy_version": self.shadow().map(|s| s.version()),
            "config_hash": self.config_hash,
            "judges": judges,
        })
    }

    /// The sequence number of the `config` entry that records this version (0 before it is
    /// logged).
    pub fn config_entry(&self) -> i64 {
        self.logged_as.get().copied().unwrap_or(0)
    }

    pub fn evaluator(&self) -> &Arc<Evaluator> {
        &self.evaluator
    }

    pub fn policy_version(&self) -> &str {
        self.evaluator().policies().version()
    }

    /// The shadow policies, when the project has any.
    pub fn shadow(&self) -> Option<&PolicySet> {
        self.evaluator.shadow()
    }
}

/// A project and its current runtime.
pub struct Project {
    pub spec: ProjectSpec,
    cache: SharedCache,
    current: RwLock<Arc<Runtime>>,
}

impl Project {
    /// Builds the project's first version; the server logs it ([`Project::install`]) once
    /// the decision log is open, before it takes requests.
    pub fn load(spec: ProjectSpec, cache: SharedCache) -> anyhow::Result<Project> {
        let rt = Runtime::build(&spec, &cache).with_context(|| format!("project {}", spec.name))?;
        Ok(Project {
            spec,
            cache,
            current: RwLock::new(Arc::new(rt)),
        })
    }

    pub fn runtime(&self) -> Arc<Runtime> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Builds a new version from the files (blocking work: policies compile), without
    /// putting it in place.
    pub fn rebuild(&self) -> Result<Runtime, ApiError> {
        Runtime::build(&self.spec, &self.cache).map_err(|e| {
            ApiError::request(format!(
                "reloading project {} failed, the running version stays: {e:#}",
                self.spec.name
            ))
        })
    }

    /// Logs `rt` in the decision log as a `config` entry (`by` says what loaded it, `more`
    /// adds members) and puts it in place: requests from here on use it. When the entry
    /// cannot be written the running version stays.
    pub async fn install(
        &self,
        audit: &crate::audit::AuditLog,
        rt: Arc<Runtime>,
        by: &str,
        more: serde_json::Value,
    ) -> Result<Arc<Runtime>, crate::audit::AuditError> {
        let mut record = rt.record();
        if let Some(r) = record.as_object_mut() {
            r.insert("by".into(), by.into());
            if let serde_json::Value::Object(more) = more {
                r.extend(more);
            }
        }
        let seq = audit.append(&self.spec.name, "config", &record).await?;
        let _ = rt.logged_as.set(seq);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = rt.clone();
        Ok(rt)
    }
}

/// Settings for a decision that the spec leaves to the operator.
#[derive(Debug, Clone)]
pub struct GateSettings {
    /// Time model judges get when a request names none.
    pub budget: Duration,
    /// Upper bound on a request's own budget.
    pub max_budget: Duration,
    /// What an exhausted budget means: `closed` (block), `escalate` or `open` (allow with a
    /// warning).
    pub fail_mode: tribunal_policy::FailMode,
    /// Traces held for appends, at most.
    pub sessions: usize,
    /// How long a held trace may go without a call before it is let go.
    pub session_idle: Duration,
    /// Bytes of requests the held traces may add up to.
    pub session_bytes: usize,
}

impl Default for GateSettings {
    fn default() -> Self {
        GateSettings {
            budget: Duration::from_secs(2),
            max_budget: Duration::from_secs(60),
            fail_mode: tribunal_policy::FailMode::Closed,
            sessions: 10_000,
            session_idle: Duration::from_secs(30 * 60),
            session_bytes: 256 << 20,
        }
    }
}
