//! A Python virtual environment with the packages a test needs, made on first use under
//! the target directory (from PyPI, as `pip` finds it) and shared by later runs. A machine
//! without `python3` or without access to the package index fails the test that asks,
//! with the reason: such a test is never skipped.

use std::path::PathBuf;
use std::process::Command;

/// The `python` of a virtual environment that has `packages` (pip requirement strings).
pub fn python_with(packages: &[&str]) -> PathBuf {
    let name: String = packages
        .iter()
        .map(|p| {
            p.chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("-");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("py-{name}"));
    let python = dir.join("bin/python");
    let ready = dir.join(".ready");
    // Tests of one binary run in parallel: one makes the environment, the others wait.
    let lock = dir.with_extension("lock");
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    let _guard = FileLock::take(&lock);
    if ready.exists() {
        return python;
    }
    let status = Command::new("python3")
        .args(["-m", "venv", "--clear"])
        .arg(&dir)
        .status()
        .expect("python3 is needed for this test (Debian: apt-get install python3-venv)");
    assert!(status.success(), "python3 -m venv {} failed", dir.display());
    let out = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(packages)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pip install {packages:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&ready, packages.join("\n")).unwrap();
    python
}

/// An exclusive lock on a file, released when dropped (or when the process ends).
struct FileLock(#[allow(dead_code)] std::fs::File);

impl FileLock {
    fn take(path: &std::path::Path) -> FileLock {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .unwrap();
        file.lock().unwrap();
        FileLock(file)
    }
}
