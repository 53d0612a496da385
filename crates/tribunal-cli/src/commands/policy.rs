//! `tribunal policy test`: run the Rego unit tests (`test_` rules) of policy folders.

use super::load_config;
use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use tribunal_core::terminal::escape as for_terminal;
use tribunal_policy::{load_dir, pack, run_policy_tests, PolicySource};

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Run the `test_` rules of every *.rego file in the folders; exit 1 if any fails.
    Test(TestArgs),
}

#[derive(Args)]
pub struct TestArgs {
    /// Policy folders or files (with their *_test.rego files and data.json).
    pub paths: Vec<PathBuf>,
    /// Also run the default pack's own tests.
    #[arg(long)]
    pub builtin: bool,
    /// Output: table or json.
    #[arg(long, short = 'f', default_value = "table")]
    pub format: String,
}

pub fn run(config: Option<&Path>, cmd: PolicyCommand) -> Result<u8> {
    let PolicyCommand::Test(mut args) = cmd;
    if !matches!(args.format.as_str(), "table" | "json") {
        bail!("--format: expected table or json, found {:?}", args.format);
    }
    let cfg = load_config(config)?;
    if args.paths.is_empty() && !args.builtin {
        // The folders the configuration loads (`[policies] paths`).
        args.paths = cfg
            .policies
            .paths
            .iter()
            .map(|p| cfg.base_dir.join(p))
            .collect();
    }
    if args.paths.is_empty() && !args.builtin {
        bail!("policy test: give policy folders (or list them in [policies] paths of tribunal.toml), or --builtin for the default pack's tests");
    }
    let mut policies: Vec<PolicySource> = Vec::new();
    let mut tests: Vec<PolicySource> = Vec::new();
    // The pack is always loaded so user policies can use its helpers (data.tribunal.lib).
    if cfg.policies.builtin || args.builtin {
        policies.extend(pack::sources());
    }
    if args.builtin {
        tests.extend(pack::test_sources());
    }
    let mut data = Vec::new();
    if !cfg.policies.data.is_empty() {
        data.push(serde_json::to_value(&cfg.policies.data)?);
    }
    for p in &args.paths {
        // A test file given alone is run with the policies of its folder, which it tests.
        let alone = p.is_file()
            && p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with("_test.rego"));
        if alone {
            let folder = p.parent().filter(|d| !d.as_os_str().is_empty());
            let folder = folder.unwrap_or(Path::new("."));
            let dir = load_dir(folder)?;
            tests.extend(
                dir.sources
                    .into_iter()
                    .filter(|s| !s.path.ends_with("_test.rego")),
            );
            data.extend(dir.data.into_iter().map(|(_, v)| v));
        }
        let dir = load_dir(p)?;
        let (sources, d) = (dir.sources, dir.data);
        // Policies and their *_test.rego files load together; `test_` rules run wherever
        // they are defined.
        tests.extend(sources);
        data.extend(d.into_iter().map(|(_, v)| v));
    }
    let outcomes = run_policy_tests(policies, tests, &data)?;
    let failed = outcomes.iter().filter(|o| !o.passed).count();
    if args.format == "json" {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "passed": outcomes.len() - failed,
                "failed": failed,
                "tests": outcomes,
            }))?
        );
    } else {
        // Test names, files and failure details come from the policy files.
        for o in &outcomes {
            let (name, file) = (for_terminal(&o.name), for_terminal(&o.file));
            if o.passed {
                println!("PASS  {name}  ({file})");
            } else {
                println!("FAIL  {name}  ({file}): {}", for_terminal(&o.detail));
            }
        }
        println!("{} passed, {} failed", outcomes.len() - failed, failed);
    }
    if outcomes.is_empty() {
        eprintln!("no test_ rules found");
        return Ok(1);
    }
    Ok(if failed > 0 { 1 } else { 0 })
}
