//! Projects: each has its own configuration (judges, policies, context), loaded from a
//! `tribunal.toml` and reloadable without a restart. A reload builds everything anew and
//! swaps it in only when it all compiled; requests in flight finish on the old version.

use crate::error::ApiError;
use anyhow::Context as _;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tribunal_core::{Feedback, Pending, Trace, Violation};
use tribunal_engine::{Config, Evaluator};
use tribunal_policy::{Context, PolicyEvaluator, PolicySet};

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
    pub shadow: Option<PolicySet>,
    pub judges: Vec<JudgeInfo>,
    pub config_hash: String,
    pub loaded_at: String,
    /// The model judges' latency budget the project's policies ask for
    /// (`[policies.data.gate] budget_ms`), used when a request names none.
    pub budget: Option<Duration>,
    pool: Mutex<Vec<PolicyEvaluator>>,
    shadow_pool: Mutex<Vec<PolicyEvaluator>>,
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
            evaluator: Evaluator::new(built, policies, cfg.context.clone()),
            shadow,
            judges,
            config_hash: cfg.hash.clone(),
            loaded_at: tribunal_store::clock::now_rfc3339(),
            pool: Mutex::new(Vec::new()),
            shadow_pool: Mutex::new(Vec::new()),
        })
    }

    pub fn evaluator(&self) -> &Arc<Evaluator> {
        &self.evaluator
    }

    pub fn policy_version(&self) -> &str {
        self.evaluator().policies().version()
    }

    /// Runs the enforced gates (and the shadow gates, when configured) over a trace and the
    /// feedback already gathered, reusing per-thread policy evaluators.
    pub fn gates(
        &self,
        trace: &Trace,
        pending: Option<&Pending>,
        feedback: &[Feedback],
        context: &Context,
    ) -> (Vec<Violation>, Option<Vec<Violation>>) {
        let main = with_pooled(&self.pool, self.evaluator().policies(), |p| {
            p.evaluate_trace(trace, pending, feedback, context)
        });
        let shadow = self.shadow.as_ref().map(|set| {
            with_pooled(&self.shadow_pool, set, |p| {
                p.evaluate_trace(trace, pending, feedback, context)
            })
        });
        (main, shadow)
    }
}

fn with_pooled<T>(
    pool: &Mutex<Vec<PolicyEvaluator>>,
    set: &PolicySet,
    f: impl FnOnce(&mut PolicyEvaluator) -> T,
) -> T {
    let taken = pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
    let mut ev = taken.unwrap_or_else(|| set.evaluator());
    let out = f(&mut ev);
    pool.lock().unwrap_or_else(|p| p.into_inner()).push(ev);
    out
}

/// A project and its current runtime.
pub struct Project {
    pub spec: ProjectSpec,
    cache: SharedCache,
    current: RwLock<Arc<Runtime>>,
}

impl Project {
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

    /// Rebuilds from the files; on failure the running version stays.
    pub fn reload(&self) -> Result<Arc<Runtime>, ApiError> {
        let rt = Runtime::build(&self.spec, &self.cache).map_err(|e| {
            ApiError::request(format!(
                "reloading project {} failed, the running version stays: {e:#}",
                self.spec.name
            ))
        })?;
        let rt = Arc::new(rt);
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
