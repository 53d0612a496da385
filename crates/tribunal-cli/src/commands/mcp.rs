//! `tribunal mcp proxy`: an MCP server behind the gate (tribunal-mcp).

use anyhow::{bail, Context as _, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::time::Duration;
use tribunal_mcp::{Proxy, Settings};

#[derive(Subcommand)]
pub enum McpCommand {
    /// Run an MCP server behind the gate: the command after `--` over stdio, or an upstream
    /// Streamable HTTP endpoint (`--upstream URL --listen ADDR`). Every tools/call is asked
    /// about at a running `tribunal serve` before the server sees it.
    Proxy(ProxyArgs),
}

#[derive(Args)]
pub struct ProxyArgs {
    /// The gate's base URL (else TRIBUNAL_GATE_URL, else http://127.0.0.1:7878).
    #[arg(long)]
    pub gate: Option<String>,
    /// An agent token of the gate (else TRIBUNAL_TOKEN).
    #[arg(long)]
    pub token: Option<String>,
    /// The session's trace id at the gate (default: a new one).
    #[arg(long)]
    pub trace_id: Option<String>,
    /// The agent name the gate is told (`context.agent`), under which it pins this server's
    /// tool definitions. Default: one per upstream server, `mcp:` with the program and its
    /// first argument (or the URL's host, port and path) and a hash of the whole command
    /// line (or URL), e.g. `mcp:npx server-github#1a2b3c4d`; the same command line keeps
    /// its name across restarts. Give a name when the command line changes from run to run
    /// (a temporary path, a port) or when several proxies are one agent.
    #[arg(long)]
    pub agent: Option<String>,
    /// The file pinning each tool's description by hash. Default: one per agent,
    /// `.tribunal/mcp-pins/<agent>-<hash>.json` (started, the first time, from the pins of
    /// `.tribunal/mcp-pins.json` when that file exists).
    #[arg(long)]
    pub pins: Option<PathBuf>,
    /// Seconds an escalated call is held for a reviewer before it is refused.
    #[arg(long, default_value_t = 300)]
    pub wait_s: u64,
    /// Seconds one gate request may take (besides the wait for a reviewer).
    #[arg(long, default_value_t = 30)]
    pub timeout_s: u64,
    /// The upstream server's Streamable HTTP endpoint (`http://127.0.0.1:9000/mcp`); the
    /// proxy then serves HTTP on `--listen` instead of running a command.
    #[arg(long, requires = "listen")]
    pub upstream: Option<String>,
    /// Where the HTTP proxy listens (`127.0.0.1:7879`).
    #[arg(long, requires = "upstream")]
    pub listen: Option<String>,
    /// The MCP server's command and its arguments.
    #[arg(last = true)]
    pub command: Vec<String>,
}

pub fn run(c: McpCommand) -> Result<u8> {
    match c {
        McpCommand::Proxy(a) => proxy(a),
    }
}

fn proxy(a: ProxyArgs) -> Result<u8> {
    if a.command.is_empty() == a.upstream.is_none() {
        bail!(
            "give the MCP server's command (tribunal mcp proxy [OPTIONS] -- COMMAND [ARGS...]) \
             or its HTTP endpoint (--upstream URL --listen ADDR), not both"
        );
    }
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let trace_id = a.trace_id.unwrap_or_else(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        format!("mcp-{}-{}", now.as_millis(), std::process::id())
    });
    let agent = a.agent.unwrap_or_else(|| {
        tribunal_mcp::default_agent_name(match &a.upstream {
            Some(url) => tribunal_mcp::Upstream::Url(url),
            None => tribunal_mcp::Upstream::Command(&a.command),
        })
    });
    let settings = Settings {
        gate: a
            .gate
            .or_else(|| env("TRIBUNAL_GATE_URL"))
            .unwrap_or_else(|| "http://127.0.0.1:7878".into()),
        token: a.token.or_else(|| env("TRIBUNAL_TOKEN")),
        trace_id,
        pins_from: a
            .pins
            .is_none()
            .then(|| PathBuf::from(tribunal_mcp::SHARED_PINS)),
        pins: a
            .pins
            .unwrap_or_else(|| tribunal_mcp::default_pins_path(&agent)),
        agent,
        wait: Duration::from_secs(a.wait_s),
        timeout: Duration::from_secs(a.timeout_s),
    };
    let agent = settings.agent.clone();
    let proxy = Proxy::new(settings)?;
    if let (Some(upstream), Some(listen)) = (a.upstream, a.listen) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind(&listen)
                .await
                .with_context(|| format!("--listen {listen}"))?;
            eprintln!(
                "tribunal mcp proxy listening on http://{} (upstream {upstream}, agent {agent:?})",
                listener.local_addr()?
            );
            tribunal_mcp::http::serve(proxy, upstream, listener).await?;
            anyhow::Ok(())
        })?;
        return Ok(0);
    }
    eprintln!("tribunal mcp proxy: the gate knows this server as agent {agent:?}");
    let code = tribunal_mcp::stdio::run(proxy, &a.command)?;
    Ok(u8::try_from(code).unwrap_or(1))
}
