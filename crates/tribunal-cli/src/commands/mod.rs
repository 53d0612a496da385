//! One module per subcommand, plus the loading they share.

pub mod bench;
pub mod check;
pub mod eval;
pub mod init;
pub mod policy;
pub mod runs;
pub mod serve;

use anyhow::{Context as _, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tribunal_engine::{Config, Evaluator};

/// The explicit config file, else `./tribunal.toml` when it exists, else the defaults.
pub fn load_config(explicit: Option<&Path>) -> Result<Config> {
    load_config_near(explicit, &[])
}

/// Like [`load_config`], and when neither is there, a `tribunal.toml` inside the first
/// input directory (so a dataset folder can carry its own configuration).
pub fn load_config_near(explicit: Option<&Path>, inputs: &[PathBuf]) -> Result<Config> {
    if let Some(p) = explicit {
        return Ok(Config::load(p)?);
    }
    let here = Path::new("tribunal.toml");
    if here.exists() {
        return Ok(Config::load(here)?);
    }
    if let Some(dir) = inputs.first().filter(|p| p.is_dir()) {
        let p = dir.join("tribunal.toml");
        if p.exists() {
            eprintln!("using {}", p.display());
            return Ok(Config::load(&p)?);
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

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}
