//! `tribunal serve`, `tribunal token ...`, `tribunal audit verify` and `tribunal replay`:
//! the server and the commands that manage what it keeps.

use super::{load_config, store_location};
use anyhow::{bail, Context as _, Result};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tribunal_server::{escalation::ReviewSettings, GateSettings, ProjectSpec, ServerOptions};
use tribunal_store::Store;

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7878", env = "TRIBUNAL_LISTEN")]
    pub listen: String,
    /// A second address serving only `/metrics`, without a token (for a scraper on a
    /// private network); `/metrics` on --listen still asks for one.
    #[arg(long, env = "TRIBUNAL_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// The store (SQLite file or database URL); default from configuration, else
    /// .tribunal/tribunal.db.
    #[arg(long, env = "TRIBUNAL_DB")]
    pub db: Option<PathBuf>,
    /// More projects, each with its own configuration: NAME=path/to/tribunal.toml.
    /// The configuration given with --config (or ./tribunal.toml) is the `default` project.
    #[arg(long = "project", env = "TRIBUNAL_PROJECTS", value_delimiter = ',')]
    pub projects: Vec<String>,
    /// Extra policy folders for the default project.
    #[arg(
        long = "policies",
        short = 'p',
        env = "TRIBUNAL_POLICIES",
        value_delimiter = ','
    )]
    pub policies: Vec<PathBuf>,
    /// Policy folders run in shadow mode for the default project: decided and logged,
    /// never enforced.
    #[arg(
        long = "shadow-policies",
        env = "TRIBUNAL_SHADOW_POLICIES",
        value_delimiter = ','
    )]
    pub shadow_policies: Vec<PathBuf>,
    /// Latency budget for model judges when a gate request names none, in milliseconds.
    #[arg(long, default_value_t = 2000, env = "TRIBUNAL_BUDGET_MS")]
    pub budget_ms: u64,
    /// The severity of `tribunal.budget_exceeded` when model judges run out of budget: closed
    /// (block), escalate or open (a warning). A late judge's own `tribunal.judge_error` still
    /// blocks unless that judge is `optional` (or says otherwise with `on_error`).
    #[arg(long, default_value = "closed", env = "TRIBUNAL_FAIL_MODE")]
    pub fail_mode: String,
    /// Traces the gate holds between calls so agents can send only new steps (`append`).
    #[arg(long, default_value_t = 10_000, env = "TRIBUNAL_GATE_SESSIONS")]
    pub gate_sessions: usize,
    /// Seconds a held trace may go without a gate call before it is let go.
    #[arg(long, default_value_t = 1800, env = "TRIBUNAL_GATE_SESSION_IDLE_S")]
    pub gate_session_idle_s: u64,
    /// Megabytes of requests the held traces may add up to.
    #[arg(long, default_value_t = 256, env = "TRIBUNAL_GATE_SESSION_MB")]
    pub gate_session_mb: usize,
    /// How long an escalation waits for a reviewer, in seconds.
    #[arg(long, default_value_t = 900, env = "TRIBUNAL_REVIEW_DEADLINE_S")]
    pub review_deadline_s: u64,
    /// What applies when no reviewer decides in time or the queue is full: block or allow.
    #[arg(long, default_value = "block", env = "TRIBUNAL_REVIEW_DEFAULT")]
    pub review_default: String,
    /// New escalations per project per minute before the default applies instead.
    #[arg(long, default_value_t = 30, env = "TRIBUNAL_REVIEWS_PER_MINUTE")]
    pub reviews_per_minute: u32,
    /// Largest request body in bytes (after decompression).
    #[arg(long, default_value_t = 8 << 20, env = "TRIBUNAL_MAX_BODY_BYTES")]
    pub max_body_bytes: usize,
    /// Deepest JSON nesting accepted.
    #[arg(long, default_value_t = 64, env = "TRIBUNAL_MAX_JSON_DEPTH")]
    pub max_json_depth: usize,
    /// Milliseconds without new spans before an ingested trace is judged.
    #[arg(long, default_value_t = 1000, env = "TRIBUNAL_SCORE_QUIET_MS")]
    pub score_quiet_ms: u64,
    /// Decision-log entries and gate traces each writer may fall behind the requests
    /// before requests wait for the store.
    #[arg(long, default_value_t = 10_000, env = "TRIBUNAL_WRITE_QUEUE")]
    pub write_queue: usize,
    /// Connections served at once; more wait to be accepted until one closes.
    #[arg(long, default_value_t = 512, env = "TRIBUNAL_MAX_CONNECTIONS")]
    pub max_connections: usize,
    /// Milliseconds a client may take to send a request header (or stay idle between
    /// requests) before its connection is closed.
    #[arg(long, default_value_t = 10_000, env = "TRIBUNAL_HEADER_TIMEOUT_MS")]
    pub header_timeout_ms: u64,
    /// Milliseconds a client may take to send a request body before the request fails.
    #[arg(long, default_value_t = 30_000, env = "TRIBUNAL_BODY_TIMEOUT_MS")]
    pub body_timeout_ms: u64,
    /// Seconds shutdown (SIGTERM, Ctrl-C) may take to finish requests and writes.
    #[arg(long, default_value_t = 10, env = "TRIBUNAL_SHUTDOWN_TIMEOUT_S")]
    pub shutdown_timeout_s: u64,
    /// Log lines as text or json (one object per line), on standard error.
    #[arg(long, default_value = "text", env = "TRIBUNAL_LOG_FORMAT")]
    pub log_format: String,
    /// error, warn, info (default; one line per request) or debug.
    #[arg(long, default_value = "info", env = "TRIBUNAL_LOG_LEVEL")]
    pub log_level: String,
}

fn init_logs(format: &str, level: &str) -> Result<()> {
    let level: tracing::Level = level.parse().map_err(|_| {
        anyhow::anyhow!("--log-level: expected error, warn, info or debug, found {level:?}")
    })?;
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr);
    match format {
        "text" => builder.with_ansi(false).init(),
        "json" => builder.json().init(),
        other => bail!("--log-format: expected text or json, found {other:?}"),
    }
    Ok(())
}

fn parse_project(s: &str) -> Result<ProjectSpec> {
    let (name, config) = s
        .split_once('=')
        .with_context(|| format!("--project: expected NAME=CONFIG, found {s:?}"))?;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
    {
        bail!("--project: the name must be letters, digits, - or _, found {name:?}");
    }
    Ok(ProjectSpec {
        name: name.to_owned(),
        config: Some(PathBuf::from(config)),
        ..ProjectSpec::default()
    })
}

fn options(config: Option<&Path>, args: &ServeArgs) -> Result<ServerOptions> {
    // As for the store's location (`load_config`): --config, else TRIBUNAL_CONFIG, else
    // ./tribunal.toml when present.
    let from_env = std::env::var_os("TRIBUNAL_CONFIG")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let default_config = match config {
        Some(p) => Some(p.to_path_buf()),
        None => from_env.or_else(|| Some(PathBuf::from("tribunal.toml")).filter(|p| p.exists())),
    };
    let mut projects = vec![ProjectSpec {
        name: "default".into(),
        config: default_config,
        policies: args.policies.clone(),
        shadow_policies: args.shadow_policies.clone(),
    }];
    for p in &args.projects {
        projects.push(parse_project(p)?);
    }
    let fail_mode = tribunal_policy::FailMode::parse(&args.fail_mode).with_context(|| {
        format!(
            "--fail-mode: expected closed, escalate or open, found {:?}",
            args.fail_mode
        )
    })?;
    let default = match args.review_default.as_str() {
        "block" => tribunal_core::Decision::Block,
        "allow" => tribunal_core::Decision::Allow,
        other => bail!("--review-default: expected block or allow, found {other:?}"),
    };
    if args.reviews_per_minute == 0 {
        bail!("--reviews-per-minute: expected at least 1");
    }
    if args.write_queue == 0 {
        bail!("--write-queue: expected at least 1 record");
    }
    if args.max_connections == 0 {
        bail!("--max-connections: expected at least 1");
    }
    if args.header_timeout_ms == 0 || args.body_timeout_ms == 0 {
        bail!("--header-timeout-ms and --body-timeout-ms: expected at least 1");
    }
    Ok(ServerOptions {
        projects,
        max_body_bytes: args.max_body_bytes,
        max_json_depth: args.max_json_depth.max(2),
        gate: GateSettings {
            budget: Duration::from_millis(args.budget_ms),
            fail_mode,
            sessions: args.gate_sessions.max(1),
            session_idle: Duration::from_secs(args.gate_session_idle_s),
            session_bytes: args.gate_session_mb.saturating_mul(1 << 20),
            ..GateSettings::default()
        },
        review: ReviewSettings {
            deadline: Duration::from_secs(args.review_deadline_s),
            default,
            per_minute: args.reviews_per_minute,
        },
        score_quiet: Duration::from_millis(args.score_quiet_ms),
        write_queue: args.write_queue,
        max_connections: args.max_connections,
        header_timeout: Duration::from_millis(args.header_timeout_ms),
        body_timeout: Duration::from_millis(args.body_timeout_ms),
        shutdown_timeout: Duration::from_secs(args.shutdown_timeout_s),
        ..ServerOptions::default()
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    eprintln!("shutting down: finishing requests in flight");
}

/// SIGHUP reloads every project from its files, like `POST /api/v1/policies/reload`.
#[cfg(unix)]
async fn reload_on_hangup(state: std::sync::Arc<tribunal_server::AppState>) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        return;
    };
    while hup.recv().await.is_some() {
        let mut names: Vec<String> = state.projects.keys().cloned().collect();
        names.sort();
        for name in names {
            match state.reload(&name, "SIGHUP").await {
                Ok((rt, _)) => tracing::info!(
                    target: "tribunal::reload",
                    "project {name}: policy version {}",
                    rt.policy_version()
                ),
                Err(e) => tracing::error!(target: "tribunal::reload", "{}", e.message),
            }
        }
    }
}

pub fn serve(config: Option<&Path>, args: ServeArgs) -> Result<u8> {
    let cfg = load_config(config)?;
    let location = store_location(&cfg, args.db.as_deref());
    let opts = options(config, &args)?;
    init_logs(&args.log_format, &args.log_level)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let served = rt.block_on(async move {
        let store = Store::open(&location).await?;
        let (state, background) = tribunal_server::start(store, opts).await?;
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("--listen {}", args.listen))?;
        let addr = listener.local_addr()?;
        let metrics = match &args.metrics_listen {
            Some(at) => Some(
                tokio::net::TcpListener::bind(at)
                    .await
                    .with_context(|| format!("--metrics-listen {at}"))?,
            ),
            None => None,
        };
        let names: Vec<&str> = state.projects.keys().map(String::as_str).collect();
        eprintln!(
            "tribunal serving on http://{addr} (store {}; projects: {})",
            tribunal_core::redact::secrets(&location),
            names.join(", ")
        );
        if let Some(metrics) = metrics {
            eprintln!(
                "metrics without a token on http://{}/metrics",
                metrics.local_addr()?
            );
            // Ends with the process: a scrape in flight at shutdown is simply cut.
            let state = state.clone();
            tokio::spawn(async move {
                let served =
                    tribunal_server::metrics::serve_metrics(metrics, state, std::future::pending())
                        .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "the metrics address stopped serving");
                }
            });
        }
        #[cfg(unix)]
        tokio::spawn(reload_on_hangup(state.clone()));
        tribunal_server::serve(listener, state, background, shutdown_signal()).await?;
        anyhow::Ok(())
    });
    // Work still running past the shutdown deadline (a model call, a store that does not
    // answer) does not hold the process.
    rt.shutdown_timeout(Duration::from_millis(500));
    served?;
    Ok(0)
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token; the secret is printed once and only its hash is kept.
    Create {
        /// admin, reviewer, annotator, viewer or agent.
        #[arg(long)]
        role: String,
        #[arg(long, default_value = "default")]
        project: String,
        /// A label for people (who or what uses it).
        #[arg(long, default_value = "")]
        name: String,
        /// Bind an agent token to this agent: the gate judges its requests as this agent's
        /// (its allow-list applies) and refuses ones whose context names another.
        #[arg(long)]
        agent: Option<String>,
        #[arg(long)]
        db: Option<PathBuf>,
    },
    /// List tokens (never their secrets).
    List {
        #[arg(long)]
        db: Option<PathBuf>,
    },
    /// Revoke a token by id.
    Revoke {
        id: String,
        #[arg(long)]
        db: Option<PathBuf>,
    },
}

fn open_store(
    config: Option<&Path>,
    db: Option<&Path>,
) -> Result<(tokio::runtime::Runtime, Store)> {
    let cfg = load_config(config)?;
    let location = store_location(&cfg, db);
    let rt = super::runtime()?;
    let store = rt.block_on(Store::open(&location))?;
    Ok((rt, store))
}

pub fn token(config: Option<&Path>, cmd: TokenCommand) -> Result<u8> {
    match cmd {
        TokenCommand::Create {
            role,
            project,
            name,
            agent,
            db,
        } => {
            let (rt, store) = open_store(config, db.as_deref())?;
            let (record, secret) = rt.block_on(tribunal_server::auth::create_token_for(
                &store,
                &project,
                &role,
                &name,
                agent.as_deref(),
            ))?;
            let bound = match &record.agent {
                Some(a) => format!(", agent {a}"),
                None => String::new(),
            };
            eprintln!(
                "created {} (project {}, role {}{bound}); the token is shown only now:",
                record.id, record.project, record.role
            );
            println!("{secret}");
        }
        TokenCommand::List { db } => {
            let (rt, store) = open_store(config, db.as_deref())?;
            let tokens = rt.block_on(store.list_tokens())?;
            println!(
                "{:<22} {:<12} {:<10} {:<20} {:<20} {:<16} name",
                "id", "project", "role", "created", "revoked", "agent"
            );
            for t in tokens {
                println!(
                    "{:<22} {:<12} {:<10} {:<20} {:<20} {:<16} {}",
                    t.id,
                    t.project,
                    t.role,
                    t.created_at,
                    t.revoked_at.as_deref().unwrap_or("-"),
                    t.agent.as_deref().unwrap_or("-"),
                    t.name
                );
            }
        }
        TokenCommand::Revoke { id, db } => {
            let (rt, store) = open_store(config, db.as_deref())?;
            let at = tribunal_store::clock::now_rfc3339();
            if !rt.block_on(store.revoke_token(&id, &at))? {
                bail!("no active token {id:?} (see tribunal token list)");
            }
            eprintln!("revoked {id}");
        }
    }
    Ok(0)
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the decision log's hash chain; exit 1 when an entry was edited or removed.
    Verify {
        #[arg(long)]
        db: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// A head saved earlier (what `tribunal audit head -f json` printed): the log must
        /// still hold that entry, so a log cut back behind it is caught.
        #[arg(long)]
        head: Option<PathBuf>,
    },
    /// Print the log's head (last sequence number and hash), to keep elsewhere and give
    /// to `tribunal audit verify --head` later.
    Head {
        #[arg(long)]
        db: Option<PathBuf>,
        /// Output: text or json.
        #[arg(long, short = 'f', default_value = "text")]
        format: String,
    },
}

pub fn audit(config: Option<&Path>, cmd: AuditCommand) -> Result<u8> {
    match cmd {
        AuditCommand::Head { db, format } => {
            if !matches!(format.as_str(), "text" | "json") {
                bail!("--format: expected text or json, found {format:?}");
            }
            let (rt, store) = open_store(config, db.as_deref())?;
            let head = rt.block_on(tribunal_server::audit::head(&store))?;
            if format == "json" {
                println!("{}", serde_json::to_string(&head)?);
            } else {
                println!(
                    "{} {}",
                    head.seq,
                    if head.hash.is_empty() {
                        "-"
                    } else {
                        &head.hash
                    }
                );
            }
            Ok(0)
        }
        AuditCommand::Verify { db, json, head } => {
            let saved: Option<tribunal_server::audit::Head> = match &head {
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("--head {}", path.display()))?;
                    Some(serde_json::from_str(&text).with_context(|| {
                        format!(
                            "--head {}: expected what `tribunal audit head -f json` prints",
                            path.display()
                        )
                    })?)
                }
                None => None,
            };
            let (rt, store) = open_store(config, db.as_deref())?;
            let report = rt.block_on(tribunal_server::audit::verify_against(
                &store,
                saved.as_ref(),
            ))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else if report.ok() {
                println!(
                    "decision log intact: {} entries, head {} {}",
                    report.entries,
                    report.head_seq,
                    if report.head_hash.is_empty() {
                        "-"
                    } else {
                        &report.head_hash
                    }
                );
            } else {
                println!("decision log damaged ({} entries read):", report.entries);
                for p in &report.problems {
                    println!("  {p}");
                }
            }
            Ok(if report.ok() { 0 } else { 1 })
        }
    }
}

#[derive(Args)]
pub struct ReplayArgs {
    /// The new policy version: folders that replace the configuration's policy folders.
    #[arg(long = "policies", short = 'p', required = true)]
    pub policies: Vec<PathBuf>,
    #[arg(long, default_value = "default")]
    pub project: String,
    /// How many of the most recent traces.
    #[arg(long, default_value_t = 10_000)]
    pub limit: i64,
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// table or json.
    #[arg(long, default_value = "table")]
    pub format: String,
}

pub fn replay(config: Option<&Path>, args: ReplayArgs) -> Result<u8> {
    if !matches!(args.format.as_str(), "table" | "json") {
        bail!("--format: expected table or json, found {:?}", args.format);
    }
    let cfg = load_config(config)?;
    let mut new_cfg = cfg.clone();
    new_cfg.policies.paths.clear();
    let evaluator = super::build_evaluator(&new_cfg, &args.policies)?;
    let (rt, store) = open_store(config, args.db.as_deref())?;
    let report = rt.block_on(tribunal_server::replay::replay(
        &store,
        &args.project,
        &evaluator,
        args.limit,
    ))?;
    if args.format == "json" {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "replayed {} traces of project {} with policy version {}: {} unchanged, {} changed, {} skipped",
            report.traces,
            report.project,
            report.policy_version,
            report.unchanged,
            report.changes.len(),
            report.skipped
        );
        for (t, n) in report.transitions() {
            println!("  {t}: {n}");
        }
        for c in &report.changes {
            println!(
                "  {} ({}): {} -> {}  {}",
                c.trace_id,
                c.source,
                c.before,
                c.after,
                c.reasons.first().map(String::as_str).unwrap_or("")
            );
        }
    }
    Ok(0)
}
