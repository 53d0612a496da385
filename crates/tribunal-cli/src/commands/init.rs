//! `tribunal init`: a commented starter configuration and an example policy with tests.

use anyhow::{bail, Context as _, Result};
use clap::Args;
use std::path::PathBuf;
use tribunal_engine::config::{STARTER_CONFIG, STARTER_POLICY, STARTER_POLICY_TEST};

#[derive(Args)]
pub struct InitArgs {
    /// Folder to write into.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Overwrite existing files.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: InitArgs) -> Result<u8> {
    let files = [
        (args.dir.join("tribunal.toml"), STARTER_CONFIG),
        (args.dir.join("policies/refunds.rego"), STARTER_POLICY),
        (
            args.dir.join("policies/refunds_test.rego"),
            STARTER_POLICY_TEST,
        ),
    ];
    if !args.force {
        if let Some((p, _)) = files.iter().find(|(p, _)| p.exists()) {
            bail!("{} already exists (use --force to overwrite)", p.display());
        }
    }
    for (path, text) in &files {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    println!("next: tribunal policy test policies/   and   tribunal eval <traces>");
    Ok(0)
}
