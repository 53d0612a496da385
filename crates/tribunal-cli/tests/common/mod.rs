//! What the command-line tests share: running the `tribunal` binary as a user would.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// `tribunal ARGS` in `dir`, with no CI or configuration from the environment and a test
/// API key.
pub fn tribunal(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tribunal"))
        .args(args)
        .current_dir(dir)
        .env_remove("CI")
        .env_remove("TRIBUNAL_CONFIG")
        .env("OPENAI_API_KEY", "sk-test")
        .output()
        .expect("run tribunal")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
