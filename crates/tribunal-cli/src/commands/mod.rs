//! One module per subcommand, plus the loading they share.

pub mod align;
pub mod bench;
pub mod check;
pub mod constitution;
pub mod eval;
pub mod init;
pub mod judges;
pub mod labels;
pub mod mcp;
pub mod policy;
pub mod prefs;
pub mod report;
pub mod rm;
pub mod runs;
pub mod serve;

use anyhow::{Context as _, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tribunal_engine::{Config, Evaluator};

/// The configuration in force: the explicit file (`--config`), else `TRIBUNAL_CONFIG`, else
/// the first `tribunal.toml` found from the current directory up through its parents (as
/// cargo finds `Cargo.toml`), else the built-in defaults.
pub fn load_config(explicit: Option<&Path>) -> Result<Config> {
    load_config_near(explicit, &[])
}

/// Like [`load_config`], looking first beside the first input (in it, for a folder) and up
/// through its parents, so `eval dir/` and `eval dir/traces.jsonl` find the same file.
pub fn load_config_near(explicit: Option<&Path>, inputs: &[PathBuf]) -> Result<Config> {
    let env = std::env::var_os("TRIBUNAL_CONFIG").filter(|v| !v.is_empty());
    if let Some(p) = explicit.map(Path::to_path_buf).or(env.map(PathBuf::from)) {
        return Ok(Config::load(&p)?);
    }
    let mut starts: Vec<PathBuf> = Vec::new();
    if let Some(input) = inputs.first().filter(|p| p.as_os_str() != "-") {
        let input = std::path::absolute(input).unwrap_or_else(|_| input.clone());
        if input.is_dir() {
            starts.push(input);
        } else if let Some(parent) = input.parent() {
            starts.push(parent.to_path_buf());
        }
    }
    if let Ok(cwd) = std::env::current_dir() {
        starts.push(cwd);
    }
    for start in &starts {
        if let Some(found) = start
            .ancestors()
            .map(|d| d.join("tribunal.toml"))
            .find(|p| p.is_file())
        {
            return Ok(Config::load(&found)?);
        }
    }
    Ok(Config::default_with_hash())
}

/// Both judges from configuration plus policy folders given on the command line.
pub fn build_evaluator(cfg: &Config, extra_policies: &[PathBuf]) -> Result<Arc<Evaluator>> {
    let judges = cfg.build_judges().context("configuring judges")?;
    let policies = cfg
        .build_policies(extra_policies)
        .context("loading policies")?;
    Ok(Evaluator::new(judges, policies, cfg.context.clone()))
}

/// The default store, in the current directory.
pub const DEFAULT_STORE: &str = ".tribunal/tribunal.db";

/// The store location: the command line first, then configuration (a relative path is
/// relative to the config file), then `.tribunal/tribunal.db` in the current directory.
pub fn store_location(cfg: &Config, db: Option<&Path>) -> String {
    if let Some(p) = db {
        return p.display().to_string();
    }
    match &cfg.store.path {
        None => DEFAULT_STORE.to_owned(),
        Some(path) if path.contains("://") || Path::new(path).is_absolute() => path.clone(),
        Some(path) => cfg.base_dir.join(path).display().to_string(),
    }
}

/// Opens a store a command reads from: a store file that is not there is an error, where
/// opening it would make an empty one (a mistyped `--db` would then be reported as a store
/// holding nothing, and an export of it would overwrite its output with nothing).
pub async fn open_existing(location: &str) -> Result<tribunal_store::Store> {
    if !location.contains("://")
        && !location.starts_with("sqlite:")
        && !Path::new(location).exists()
    {
        anyhow::bail!(
            "{}: no store there (check --db or [store] path in tribunal.toml; tribunal eval, tribunal serve and the imports make one)",
            tribunal_core::terminal::escape(location)
        );
    }
    Ok(tribunal_store::Store::open(location).await?)
}

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}
