//! `tribunal serve`: the runtime gate (`POST /api/v1/gate`), the OTLP receiver
//! (`POST /v1/traces`), the review queue, the hash-chained decision log, the REST API over
//! traces, runs, judges, policies and feedback, and operations endpoints, on one port.
//!
//! Every route except `/healthz`, `/readyz`, the UI's files and signing in needs a bearer
//! token or a browser session made from one; the token decides the project (whose data
//! alone it sees) and the role (what it may do).

// The OpenAPI description is one `json!` document.
#![recursion_limit = "256"]

pub mod api;
pub mod audit;
pub mod auth;
pub mod batch;
pub mod body;
pub mod error;
pub mod escalation;
pub mod gate;
pub mod judges;
pub mod labels;
pub mod metrics;
pub mod monitor;
pub mod otlp;
pub mod peers;
pub mod policies;
pub mod project;
pub mod replay;
pub mod schemas;
pub mod scorer;
pub mod session;
pub mod tool_pins;
pub mod tuning;
pub mod ui;
pub mod value;

use auth::Caller;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use error::{ApiError, Code};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tribunal_store::Store;

pub use project::{GateSettings, Project, ProjectSpec, Runtime};

/// Everything `tribunal serve` can be told.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub projects: Vec<ProjectSpec>,
    /// Largest accepted request body, after decompression.
    pub max_body_bytes: usize,
    /// Deepest accepted JSON nesting.
    pub max_json_depth: usize,
    pub gate: GateSettings,
    pub review: escalation::ReviewSettings,
    /// How long a trace must be quiet (no new spans) before it is judged.
    pub score_quiet: Duration,
    /// How long a verified token is trusted without asking the store again.
    pub token_cache: Duration,
    /// Records (decision-log entries, gate traces) each writer may fall behind before
    /// requests wait for it.
    pub write_queue: usize,
    /// Connections served at once; more wait to be accepted until one closes.
    pub max_connections: usize,
    /// How long a client may take to send a request's header (and an open connection may
    /// stay idle between requests) before the connection is closed.
    pub header_timeout: Duration,
    /// How long a client may take to send a request's body before the request fails.
    pub body_timeout: Duration,
    /// How long shutdown may take: requests in flight, then the writers. What is not done
    /// by then is abandoned.
    pub shutdown_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            projects: vec![ProjectSpec {
                name: "default".into(),
                ..ProjectSpec::default()
            }],
            max_body_bytes: 8 << 20,
            max_json_depth: 64,
            gate: GateSettings::default(),
            review: escalation::ReviewSettings::default(),
            score_quiet: Duration::from_millis(1000),
            token_cache: Duration::from_secs(2),
            write_queue: 10_000,
            max_connections: 512,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

/// Shared by every request.
pub struct AppState {
    pub store: Store,
    pub projects: HashMap<String, Project>,
    pub options: ServerOptions,
    pub metrics: metrics::Metrics,
    pub audit: audit::AuditLog,
    pub reviews: escalation::Queue,
    /// Traces held between gate calls, for appends.
    pub sessions: session::Sessions,
    /// Work a request goes on with when its connection ends.
    pub detached: Detached,
    /// Labeling queues in use.
    pub label_queues: labels::Queues,
    /// What this server last read of the tool definitions pinned in the store.
    pub tool_pins: tool_pins::Pins,
    /// This process, among the servers sharing a PostgreSQL store.
    pub instance: String,
    tokens: Mutex<HashMap<String, (Caller, Instant)>>,
    /// Gate traces to store, written in batches after the answers.
    gate_traces: Mutex<Option<tokio::sync::mpsc::Sender<tribunal_store::GateTraceRow>>>,
}

impl AppState {
    /// Rebuilds a project from its files and puts the new version in place, logged as a
    /// `config` entry (`by`: who or what asked); on failure the running version stays.
    /// Returns the new version and the policy version it replaced. The other servers on a
    /// shared store are told to reload the project too.
    pub async fn reload(
        self: &Arc<Self>,
        name: &str,
        by: &str,
    ) -> Result<(Arc<Runtime>, String), ApiError> {
        let done = self.reload_here(name, by).await?;
        peers::reloaded(self, name, by).await;
        Ok(done)
    }

    /// [`AppState::reload`] in this process only.
    pub async fn reload_here(
        self: &Arc<Self>,
        name: &str,
        by: &str,
    ) -> Result<(Arc<Runtime>, String), ApiError> {
        let p = self
            .projects
            .get(name)
            .ok_or_else(|| ApiError::not_found(format!("project {name:?} is not served here")))?;
        let before = p.runtime().policy_version().to_owned();
        // Compiling policies is blocking work.
        let st = self.clone();
        let n = name.to_owned();
        let rt = tokio::task::spawn_blocking(move || st.projects[&n].rebuild())
            .await
            .map_err(|e| ApiError::new(Code::Internal, format!("reload failed: {e}")))??;
        let more = serde_json::json!({"policy_version_before": before});
        let rt = p.install(&self.audit, Arc::new(rt), by, more).await?;
        Ok((rt, before))
    }

    pub fn project(&self, caller: &Caller) -> Result<&Project, ApiError> {
        self.projects.get(&caller.project).ok_or_else(|| {
            ApiError::not_found(format!(
                "project {:?} is not served here (start the server with --project {}=CONFIG)",
                caller.project, caller.project
            ))
        })
    }

    /// Queues a gate trace for the store; waits while the queue is full.
    pub async fn store_gate_trace(&self, row: tribunal_store::GateTraceRow) {
        let tx = self
            .gate_traces
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let sent = match tx {
            Some(t) => t.send(row).await.is_ok(),
            None => false,
        };
        if !sent {
            tracing::error!("the gate trace writer is closed; a trace was not stored");
        }
    }

    /// The writer queues and the records waiting in each.
    pub fn queue_depths(&self) -> [(&'static str, usize); 2] {
        let traces = self
            .gate_traces
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map_or(0, batch::depth);
        [
            ("decision_log", self.audit.queued()),
            ("gate_traces", traces),
        ]
    }

    async fn caller(&self, header: Option<&str>) -> Result<Caller, ApiError> {
        let key = header.map(auth::hash_secret);
        if let Some(k) = &key {
            let cache = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((c, at)) = cache.get(k) {
                if at.elapsed() < self.options.token_cache {
                    return Ok(c.clone());
                }
            }
        }
        let c = auth::authenticate(&self.store, header).await?;
        if let Some(k) = key {
            let mut cache = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
            if cache.len() > 10_000 {
                cache.clear();
            }
            cache.insert(k, (c.clone(), Instant::now()));
        }
        Ok(c)
    }
}

/// A running server's background work, to be stopped after the HTTP side has drained.
pub struct Background {
    audit_writer: tokio::task::JoinHandle<()>,
    trace_writer: tokio::task::JoinHandle<()>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Background {
    /// Stops the scorer and the review timer, then writes what the writers still hold,
    /// within `options.shutdown_timeout`.
    pub async fn shutdown(self, state: &AppState) {
        let deadline = tokio::time::Instant::now() + state.options.shutdown_timeout;
        self.shutdown_by(state, deadline).await;
    }

    /// [`Background::shutdown`] by `deadline`: whatever is not done by then is abandoned
    /// (a store that does not answer cannot hold shutdown up).
    pub async fn shutdown_by(self, state: &AppState, deadline: tokio::time::Instant) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            finish_by(t, deadline, "a background task").await;
        }
        state.audit.close();
        state
            .gate_traces
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        finish_by(self.audit_writer, deadline, "the decision log writer").await;
        finish_by(self.trace_writer, deadline, "the gate trace writer").await;
    }
}

/// Work a request leaves running when its connection ends (a decision that waits on model
/// judges or on a review, which then logs, answers and keeps its trace): at most as many at
/// once as connections run through [`Detached::run`], so agents that hang up cannot pile it
/// up, and every piece of it, counted or not, is waited for at shutdown before the writers
/// close.
pub struct Detached {
    permits: Arc<tokio::sync::Semaphore>,
    running: Arc<Running>,
}

/// How many pieces of detached work are under way, and a wake-up for when none is.
#[derive(Default)]
struct Running {
    count: std::sync::atomic::AtomicUsize,
    none: tokio::sync::Notify,
}

/// One piece of detached work under way: shutdown waits until it is dropped.
pub struct Place {
    running: Arc<Running>,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Drop for Place {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering;
        // The permit goes first: work waiting for it is under way before shutdown can see
        // none running.
        drop(self.permit.take());
        if self.running.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.running.none.notify_waiters();
        }
    }
}

impl Detached {
    pub fn new(limit: usize) -> Detached {
        let limit = limit.clamp(1, 1 << 20);
        Detached {
            permits: Arc::new(tokio::sync::Semaphore::new(limit)),
            running: Arc::default(),
        }
    }

    fn place(&self, permit: Option<tokio::sync::OwnedSemaphorePermit>) -> Place {
        self.running
            .count
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Place {
            running: self.running.clone(),
            permit,
        }
    }

    /// Runs `work` in a task of its own (waiting for a place when as many run already) and
    /// waits for it.
    pub async fn run<F>(&self, work: F) -> Result<F::Output, tokio::task::JoinError>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let permit = self.permits.clone().acquire_owned().await.ok();
        let place = self.place(permit);
        tokio::spawn(async move {
            let _place = place;
            work.await
        })
        .await
    }

    /// A place for work already in a task of its own (a logged decision whose agent hung
    /// up): it is not refused when every counted place is taken, since the decision it
    /// finishes was already accepted, and shutdown waits for it as for the rest.
    pub fn hold(&self) -> Place {
        self.place(None)
    }

    /// Waits until none runs, or `deadline`.
    pub async fn finish_by(&self, deadline: tokio::time::Instant) {
        let running = &self.running;
        let none = async {
            loop {
                let woken = running.none.notified();
                tokio::pin!(woken);
                // Registered before the count is read: a drop in between still wakes it.
                woken.as_mut().enable();
                if running.count.load(std::sync::atomic::Ordering::Acquire) == 0 {
                    return;
                }
                woken.await;
            }
        };
        if tokio::time::timeout_at(deadline, none).await.is_err() {
            tracing::error!("decisions of requests whose agents hung up were still running at the shutdown deadline");
        }
    }
}

/// Waits for a task until `deadline`, then stops it.
async fn finish_by(task: tokio::task::JoinHandle<()>, deadline: tokio::time::Instant, what: &str) {
    let abort = task.abort_handle();
    if tokio::time::timeout_at(deadline, task).await.is_err() {
        abort.abort();
        tracing::error!("{what} did not finish by the shutdown deadline; stopped");
    }
}

/// Opens the store, loads every project and starts the background tasks.
pub async fn start(
    store: Store,
    options: ServerOptions,
) -> anyhow::Result<(Arc<AppState>, Background)> {
    let mut projects = HashMap::new();
    for spec in &options.projects {
        if projects.contains_key(&spec.name) {
            anyhow::bail!("project {} is given twice", spec.name);
        }
        // Each project's model answers are cached apart from the others'.
        let cache: project::SharedCache = Some(Arc::new(tribunal_store::StoreCache::for_project(
            store.clone(),
            tokio::runtime::Handle::current(),
            &spec.name,
        )));
        // Loading compiles policies and may build model clients: off the async threads.
        let spec = spec.clone();
        let p = tokio::task::spawn_blocking(move || Project::load(spec, cache)).await??;
        projects.insert(p.spec.name.clone(), p);
    }
    let (audit, audit_writer) = audit::AuditLog::open(store.clone(), options.write_queue).await?;
    let reviews = escalation::Queue::new(options.review.clone());
    let (traces_tx, trace_writer) = batch::spawn(
        "gate traces",
        store.clone(),
        options.write_queue,
        batch::LINGER,
        |store, rows| async move {
            let result = store.upsert_gate_traces(&rows).await;
            (rows, result)
        },
    );
    let sessions = session::Sessions::new(
        options.gate.sessions,
        options.gate.session_idle,
        options.gate.session_bytes,
    );
    let options_connections = options.max_connections;
    let state = Arc::new(AppState {
        store,
        projects,
        options,
        metrics: metrics::Metrics::default(),
        audit,
        reviews,
        sessions,
        detached: Detached::new(options_connections),
        label_queues: labels::Queues::default(),
        tool_pins: tool_pins::Pins::default(),
        instance: auth::random_id("srv_"),
        tokens: Mutex::new(HashMap::new()),
        gate_traces: Mutex::new(Some(traces_tx)),
    });
    // Each project's configuration is logged before the first decision that uses it.
    let mut names: Vec<&String> = state.projects.keys().collect();
    names.sort();
    for name in names {
        let p = &state.projects[name];
        p.install(&state.audit, p.runtime(), "start", serde_json::json!({}))
            .await?;
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let tasks = vec![
        tokio::spawn(scorer::run(state.clone(), stopped.clone())),
        tokio::spawn(escalation::expire_loop(state.clone(), stopped.clone())),
        tokio::spawn(session::flush_loop(state.clone(), stopped.clone())),
        tokio::spawn(monitor::run(state.clone(), stopped.clone())),
        tokio::spawn(batch::checkpoints(state.store.clone(), stopped.clone())),
        tokio::spawn(peers::listen(state.clone(), stopped)),
    ];
    Ok((
        state,
        Background {
            audit_writer,
            trace_writer,
            tasks,
            stop,
        },
    ))
}

/// Every route.
pub fn router(state: Arc<AppState>) -> Router {
    router_with(state, Router::new())
}

/// Every route plus `extra` ones behind the same token check and middleware.
pub fn router_with(state: Arc<AppState>, extra: Router<Arc<AppState>>) -> Router {
    let authed = extra
        .route("/api/v1/gate", post(gate::handle))
        .route("/v1/traces", post(otlp::handle))
        .route("/v1/logs", post(otlp::handle_logs))
        .route("/api/v1/traces", get(api::list_traces))
        .route("/api/v1/traces/{id}", get(api::get_trace))
        .route(
            "/api/v1/traces/{id}/feedback",
            get(api::list_feedback).post(api::add_feedback),
        )
        .route("/api/v1/runs", get(api::list_runs))
        .route("/api/v1/runs/{id}", get(api::get_run))
        .route("/api/v1/judges", get(api::list_judges))
        .route("/api/v1/judges/builtins", get(judges::builtins))
        .route("/api/v1/judges/try", post(judges::try_judge))
        .route(
            "/api/v1/judges/{name}/versions",
            get(judges::versions).post(judges::add_version),
        )
        .route("/api/v1/judges/{name}/diff", get(judges::diff))
        .route("/api/v1/judges/{name}/rollback", post(judges::rollback))
        .route(
            "/api/v1/judges/{name}/align",
            get(judges::align_status).post(judges::align),
        )
        .route("/api/v1/monitors", get(monitor::list).post(monitor::create))
        .route(
            "/api/v1/monitors/{id}",
            axum::routing::patch(monitor::update),
        )
        .route("/api/v1/monitors/{id}/results", get(monitor::results))
        .route(
            "/api/v1/monitors/{id}/alerts",
            get(monitor::list_alerts).post(monitor::add_alert),
        )
        .route(
            "/api/v1/monitors/{id}/alerts/{alert}",
            delete(monitor::delete_alert),
        )
        .route("/api/v1/policies", get(api::list_policies))
        .route("/api/v1/policies/reload", post(api::reload))
        .route("/api/v1/policies/modules", get(policies::modules))
        .route("/api/v1/policies/test", post(policies::run_tests))
        .route("/api/v1/policies/try", post(policies::try_change))
        .route("/api/v1/tools/pins", get(tool_pins::list))
        .route("/api/v1/tools/pins/approve", post(tool_pins::approve))
        .route("/api/v1/tools/pins/remove", post(tool_pins::remove))
        .route("/api/v1/escalations", get(escalation::list))
        .route("/api/v1/escalations/{id}", get(escalation::get))
        .route(
            "/api/v1/escalations/{id}/decision",
            post(escalation::decide),
        )
        .route("/api/v1/audit/verify", get(api::verify_audit))
        .route("/api/v1/audit/entries/{seq}", get(api::audit_entry))
        .route("/api/v1/session", get(ui::current).delete(ui::sign_out))
        .route("/api/v1/report/value", get(api::value_report))
        .route(
            "/api/v1/label-schemas",
            get(labels::list_schemas).post(labels::create_schema),
        )
        .route(
            "/api/v1/label-schemas/{name}/agreement",
            get(labels::schema_agreement),
        )
        .route(
            "/api/v1/queues",
            get(labels::list_queues).post(labels::create_queue),
        )
        .route("/api/v1/queues/{id}/next", post(labels::next))
        .route("/api/v1/queues/{id}/labels", get(labels::labels))
        .route("/api/v1/queues/{id}/review", get(labels::review))
        .route("/api/v1/queues/{id}/agreement", get(labels::agreement))
        .route("/api/v1/queues/{id}", get(labels::get_queue))
        .route("/api/v1/queues/{id}/export", get(labels::transfer::export))
        .route("/api/v1/queues/{id}/import", post(labels::transfer::import))
        .route("/api/v1/queues/{id}/items", post(labels::add_items))
        .route("/api/v1/queues/{id}/items/{item}", get(labels::item))
        .route(
            "/api/v1/queues/{id}/items/{item}/label",
            post(labels::label),
        )
        .route("/api/v1/queues/{id}/items/{item}/skip", post(labels::skip))
        .route(
            "/api/v1/queues/{id}/items/{item}/adjudicate",
            post(labels::adjudicate),
        )
        .route("/metrics", get(api::metrics))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_token,
        ));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/", get(ui::asset))
        .route("/ui/{file}", get(ui::asset))
        .route("/api/v1/sessions", post(ui::sign_in))
        .route("/readyz", get(readyz))
        .route("/api/v1/openapi.json", get(api::openapi))
        .route("/api/v1/errors/{code}", get(api::error_code))
        .merge(authed)
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                Code::MethodNotAllowed,
                "this route does not take that method",
            )
        })
        .layer(axum::middleware::from_fn(uniform_errors))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            count_status,
        ))
        // Bodies are read by `body::JsonBody` (or `body::read`), bounded and timed; axum's
        // own extractors, should one be used, stop at the same size.
        .layer(axum::extract::DefaultBodyLimit::max(
            state.options.max_body_bytes,
        ))
        .with_state(state)
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    match state.store.ping().await {
        Ok(()) => "ready".into_response(),
        Err(e) => {
            // Without a token: the cause (a file's path, a database address) goes to the log.
            tracing::error!(error = %e, "not ready: the store does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: the store does not answer (the server's log says why)",
            )
                .into_response()
        }
    }
}

async fn require_token(
    State(state): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let header = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    // A browser signed in to the UI carries a session cookie instead of a token.
    let caller = match header {
        None => match ui::from_cookie(&state, req.method(), req.headers()).await {
            Some(c) => c,
            None => state.caller(None).await,
        },
        Some(_) => state.caller(header).await,
    };
    match caller {
        Ok(c) => {
            req.extensions_mut().insert(c);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

/// Counts every answer by status class and logs it (method, path, status, time).
/// Every error answered in the API's one shape: an error the HTTP layer answered in plain
/// text (a query string, path or body that its extractor refused) becomes the JSON error of
/// its status, with the text as its message; and an OTLP export sent as protobuf gets its
/// error as a protobuf `google.rpc.Status`, whoever answered it (the token check too).
async fn uniform_errors(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let otlp_protobuf = (path == "/v1/traces" || path == "/v1/logs")
        && body::media_type(req.headers()).as_deref() == Some(otlp::PROTOBUF);
    let res = next.run(req).await;
    let status = res.status();
    if !status.is_client_error() && !status.is_server_error() {
        return res;
    }
    let media = body::media_type(res.headers()).unwrap_or_default();
    if media == otlp::PROTOBUF || (media == "application/json" && !otlp_protobuf) {
        return res;
    }
    let (parts, body) = res.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 16)
        .await
        .unwrap_or_default();
    let error = if media == "application/json" {
        // The API's own error, to be re-encoded.
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let code = v["error"]["code"]
            .as_str()
            .and_then(Code::parse)
            .unwrap_or_else(|| Code::of_status(status.as_u16()));
        let message = v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        ApiError::new(code, message)
    } else {
        let text = String::from_utf8_lossy(&bytes).trim().to_owned();
        let text = if text.is_empty() {
            status.canonical_reason().unwrap_or("error").to_owned()
        } else {
            text
        };
        ApiError::new(Code::of_status(status.as_u16()), text)
    };
    let mut out = if otlp_protobuf {
        otlp::protobuf_error(&error)
    } else {
        error.into_response()
    };
    if let Some(v) = parts.headers.get(axum::http::header::WWW_AUTHENTICATE) {
        out.headers_mut()
            .insert(axum::http::header::WWW_AUTHENTICATE, v.clone());
    }
    out
}

async fn count_status(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let res = next.run(req).await;
    let status = res.status().as_u16();
    state.metrics.status(status);
    let micros = started.elapsed().as_micros() as u64;
    if status >= 500 {
        tracing::error!(target: "tribunal::http", %method, %path, status, micros, "request");
    } else if status >= 400 {
        tracing::warn!(target: "tribunal::http", %method, %path, status, micros, "request");
    } else {
        tracing::info!(target: "tribunal::http", %method, %path, status, micros, "request");
    }
    res
}

/// Serves until `shutdown` resolves, then finishes the requests in flight and the
/// background work, within `options.shutdown_timeout`.
///
/// At most `options.max_connections` connections are served at once (the others wait in
/// the listen backlog); a connection whose client does not send a whole request header
/// within `options.header_timeout` (also between requests) is closed.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    background: Background,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let app = router(state.clone());
    let limit = state.options.max_connections.clamp(1, 1 << 20);
    let slots = Arc::new(tokio::sync::Semaphore::new(limit));
    let header_timeout = state.options.header_timeout;
    let (closing, closed) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            _ = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(s) => s,
                Err(_) => break,
            },
        };
        let io = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((io, _)) => io,
                Err(e) => {
                    // Out of descriptors or a connection reset before it was taken: wait a
                    // little rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let _ = io.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let mut closed = closed.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            let mut conn = std::pin::pin!(builder.serve_connection(TokioIo::new(io), service));
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended");
                    }
                    return;
                }
                _ = closed.wait_for(|c| *c) => {}
            }
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        });
    }
    drop(listener);
    let deadline = tokio::time::Instant::now() + state.options.shutdown_timeout;
    // Agents waiting for a review are answered now, not when the deadline cuts them off.
    state.reviews.close();
    let _ = closing.send(true);
    // Every connection gives its slot back when it ends.
    let all = u32::try_from(limit).unwrap_or(u32::MAX);
    if tokio::time::timeout_at(deadline, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::error!("connections were still open at the shutdown deadline");
    }
    state.detached.finish_by(deadline).await;
    background.shutdown_by(&state, deadline).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Detached;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    /// Every piece of detached work is waited for at shutdown, also one taken when every
    /// counted place was in use.
    #[tokio::test]
    async fn shutdown_waits_for_detached_work_beyond_the_counted_places() {
        let d = Detached::new(1);
        let (first, second) = (d.hold(), d.hold());
        let ended = Arc::new(AtomicBool::new(false));
        let (e, started) = (ended.clone(), tokio::time::Instant::now());
        tokio::spawn(async move {
            drop(first);
            tokio::time::sleep(Duration::from_millis(300)).await;
            e.store(true, Ordering::SeqCst);
            drop(second);
        });
        d.finish_by(started + Duration::from_secs(10)).await;
        assert!(
            ended.load(Ordering::SeqCst),
            "shutdown went on before the second piece of work ended"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        // Work run through `run` counts too, and nothing under way returns at once.
        let d = Arc::new(d);
        let (runner, ran) = (d.clone(), Arc::new(AtomicBool::new(false)));
        let r = ran.clone();
        tokio::spawn(async move {
            runner
                .run(async move {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    r.store(true, Ordering::SeqCst);
                })
                .await
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        d.finish_by(tokio::time::Instant::now() + Duration::from_secs(10))
            .await;
        assert!(ran.load(Ordering::SeqCst));
        d.finish_by(tokio::time::Instant::now() + Duration::from_secs(10))
            .await;
    }
}
