//! The `tribunal` command: argument parsing and wiring of the library crates. No logic of
//! its own beyond choosing what to call and which exit code to return.

mod commands;

use clap::{CommandFactory as _, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Judging is allocation-heavy (JSON values, policy documents) and multi-threaded. Built
/// without transparent huge pages (the workspace's `no_thp`): memory the allocator returns
/// to the system and takes again would otherwise be faulted back 2 MB at a time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "tribunal",
    version,
    about = "Secures and evaluates AI agents: judges execution traces and returns allow, block or escalate."
)]
struct Cli {
    /// Configuration file (default: ./tribunal.toml when present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Evaluate traces from files or directories; exit 1 when any is blocked.
    Eval(commands::eval::EvalArgs),
    /// Judge one trace and the step the agent wants to take next; prints the verdict as JSON.
    Check(commands::check::CheckArgs),
    /// Policy tools.
    #[command(subcommand)]
    Policy(commands::policy::PolicyCommand),
    /// Reports over what the server did (`report value`).
    #[command(subcommand)]
    Report(commands::report::ReportCommand),
    /// Past evaluation runs in the store.
    #[command(subcommand)]
    Runs(commands::runs::RunsCommand),
    /// Write a commented starter tribunal.toml and a policies/ folder.
    Init(commands::init::InitArgs),
    /// Benchmark results scored with their official metrics: tau, tau2, gaia, webarena.
    #[command(subcommand)]
    Bench(commands::bench::BenchCommand),
    /// Preference data files (convert between TRL, hh-rlhf, UltraFeedback and JSONL).
    #[command(subcommand)]
    Prefs(commands::prefs::PrefsCommand),
    /// Reward models: train a Bradley–Terry model on preference pairs, evaluate it.
    #[command(subcommand)]
    Rm(commands::rm::RmCommand),
    /// Constitutions: critique and revise replies against principles, compare replies in
    /// both orders; the results are preference records.
    #[command(subcommand)]
    Constitution(commands::constitution::ConstitutionCommand),
    /// Run the server: gate API, OTLP receiver, review queue, REST API, metrics.
    Serve(commands::serve::ServeArgs),
    /// API tokens for the server.
    #[command(subcommand)]
    Token(commands::serve::TokenCommand),
    /// The server's decision log.
    #[command(subcommand)]
    Audit(commands::serve::AuditCommand),
    /// Judges stored by the server's Judge Builder, to and from tribunal.toml tables.
    #[command(subcommand)]
    Judges(commands::judges::JudgesCommand),
    /// Labeling queues in the store: list them, export their labels.
    #[command(subcommand)]
    Labels(commands::labels::LabelsCommand),
    /// Judge stored traces again with a new policy version and show what would change.
    Replay(commands::serve::ReplayArgs),
    /// MCP servers behind the gate (`mcp proxy -- COMMAND`).
    #[command(subcommand)]
    Mcp(commands::mcp::McpCommand),
    /// Print shell completions for bash, zsh or fish on standard output
    /// (`tribunal completions bash > /etc/bash_completion.d/tribunal`).
    Completions {
        #[arg(value_enum)]
        shell: Shell,
    },
}

/// The shells completions are written for.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// Writes the completion script for `shell` to standard output.
fn completions(shell: Shell) -> anyhow::Result<u8> {
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut command = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(shell, &mut command, "tribunal", &mut out);
    std::io::Write::flush(&mut out)?;
    Ok(0)
}

/// Commands that print to a pipe end as other Unix tools do when the reader goes away
/// (`tribunal check … | head`): quietly, by SIGPIPE, instead of failing on every write.
/// The server keeps ignoring it: a closed connection is an error on that connection only.
#[cfg(unix)]
fn end_quietly_on_broken_pipe() {
    // SAFETY: restoring the default disposition of one signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(not(unix))]
fn end_quietly_on_broken_pipe() {}

/// The environment variable an invalid value came from, when it did not come from the command
/// line (`TRIBUNAL_BUDGET_MS=soon tribunal serve`): clap's message names only the flag.
fn value_from_env(err: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue};
    let Some(ContextValue::String(arg)) = err.get(ContextKind::InvalidArg) else {
        return None;
    };
    let long = arg.split_whitespace().next()?.strip_prefix("--")?;
    let flag = format!("--{long}");
    if std::env::args().any(|a| a == flag || a.starts_with(&format!("{flag}="))) {
        return None;
    }
    let command = Cli::command();
    let var = command
        .get_subcommands()
        .flat_map(|sub| sub.get_arguments())
        .chain(command.get_arguments())
        .filter(|a| a.get_long() == Some(long))
        .find_map(|a| a.get_env().filter(|v| std::env::var_os(v).is_some()))?;
    Some(var.to_string_lossy().into_owned())
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => match value_from_env(&e) {
            Some(var) => {
                let _ = e.print();
                eprintln!("(the value came from the environment variable {var})");
                return ExitCode::from(2);
            }
            None => e.exit(),
        },
    };
    if !matches!(cli.command, Command::Serve(_)) {
        end_quietly_on_broken_pipe();
    }
    let result = match cli.command {
        Command::Eval(a) => commands::eval::run(cli.config.as_deref(), a),
        Command::Check(a) => commands::check::run(cli.config.as_deref(), a),
        Command::Policy(c) => commands::policy::run(cli.config.as_deref(), c),
        Command::Runs(c) => commands::runs::run(cli.config.as_deref(), c),
        Command::Report(c) => commands::report::run(cli.config.as_deref(), c),
        Command::Judges(c) => commands::judges::run(cli.config.as_deref(), c),
        Command::Labels(c) => commands::labels::run(cli.config.as_deref(), c),
        Command::Init(a) => commands::init::run(a),
        Command::Bench(c) => commands::bench::run(c),
        Command::Prefs(c) => commands::prefs::run(cli.config.as_deref(), c),
        Command::Rm(c) => commands::rm::run(c),
        Command::Constitution(c) => commands::constitution::run(c),
        Command::Serve(a) => commands::serve::serve(cli.config.as_deref(), a),
        Command::Token(c) => commands::serve::token(cli.config.as_deref(), c),
        Command::Audit(c) => commands::serve::audit(cli.config.as_deref(), c),
        Command::Replay(a) => commands::serve::replay(cli.config.as_deref(), a),
        Command::Mcp(c) => commands::mcp::run(c),
        Command::Completions { shell } => completions(shell),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // The message may quote input (a file name, a trace's text): control characters
            // are shown, not sent to the terminal.
            let message = format!("{e:#}");
            let lines: Vec<_> = message
                .lines()
                .map(tribunal_core::terminal::escape)
                .collect();
            eprintln!("error: {}", lines.join("\n"));
            ExitCode::from(2)
        }
    }
}
