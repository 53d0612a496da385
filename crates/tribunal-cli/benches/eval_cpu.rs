//! Whole-process CPU of `tribunal eval` on long-message traces, against a program that only
//! reads the same JSONL file and parses every line with serde_json into a `Value`.
//!
//! The traces are generated agent runs of 13 to 15 messages, every message between 200 and
//! 2,000 characters (about 14 KB a trace). `tribunal eval FILE` runs as a user runs it: the
//! default configuration (every default judge, the built-in pack) and the default store
//! (`.tribunal/tribunal.db` in a fresh folder each round), the table report going to
//! `/dev/null`. It runs once more with `--no-store` to show what saving the run costs. The
//! baseline is this benchmark's own binary started again in parse mode, with the same
//! allocator as `tribunal`.
//!
//! Each figure is a child process's user + system CPU time (from `getrusage` of the waited
//! children), taken `TRIBUNAL_BENCH_ROUNDS` times (3 by default) with the rounds
//! interleaved; the smallest of each is compared, since other work on a shared machine only
//! ever adds time. `TRIBUNAL_BENCH_TRACES` sets the number of traces (20,000 by default, about
//! 290 MB).
//! `TRIBUNAL_BENCH_BIN` measures another `tribunal` binary instead of this build's;
//! `TRIBUNAL_BENCH_COMPARE` names one more (an older build) measured in the same rounds, both
//! ways. The target: eval at most 3 times the parse's CPU.

#[path = "../../tribunal-engine/benches/common.rs"]
mod common;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::{BufRead, BufWriter, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Set in the child that only parses: the file to read.
const PARSE_ONLY: &str = "TRIBUNAL_EVAL_CPU_PARSE_ONLY";
const TARGET: f64 = 3.0;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The baseline program: read the file and parse every line into a `serde_json::Value`.
fn parse_only(path: &Path) {
    let reader = std::io::BufReader::with_capacity(256 * 1024, std::fs::File::open(path).unwrap());
    let mut parsed = 0usize;
    for line in reader.lines() {
        let line = line.unwrap();
        if line.is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        std::hint::black_box(&v);
        parsed += 1;
    }
    println!("{parsed}");
}

/// User + system CPU of every child waited for so far.
fn children_cpu() -> Duration {
    // SAFETY: `getrusage` only writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    assert_eq!(rc, 0, "getrusage");
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Runs `cmd` to its end and answers its CPU time and wall time.
fn measure(mut cmd: Command, what: &str) -> (Duration, Duration) {
    let before = children_cpu();
    let t = Instant::now();
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("starting {what}: {e}"));
    let wall = t.elapsed();
    let cpu = children_cpu() - before;
    // eval exits 1 when some trace is blocked; 2 and above are errors.
    let code = out.status.code().unwrap_or(-1);
    assert!(
        (0..=1).contains(&code),
        "{what} exited with {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    (cpu, wall)
}

fn main() {
    if let Some(path) = std::env::var_os(PARSE_ONLY) {
        parse_only(Path::new(&path));
        return;
    }
    let n = env("TRIBUNAL_BENCH_TRACES", 20_000);
    let rounds = env("TRIBUNAL_BENCH_ROUNDS", 3).max(1);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("traces.jsonl");
    {
        let mut w = BufWriter::new(std::fs::File::create(&path).unwrap());
        for i in 0..n {
            serde_json::to_writer(&mut w, &common::long_agent_trace(i, 13 + i % 3)).unwrap();
            w.write_all(b"\n").unwrap();
        }
        w.flush().unwrap();
    }
    let bytes = std::fs::metadata(&path).unwrap().len();
    let tribunal = std::env::var_os("TRIBUNAL_BENCH_BIN")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_tribunal").into());
    let me = std::env::current_exe().unwrap();

    let parse = || {
        let mut cmd = Command::new(&me);
        cmd.env(PARSE_ONLY, &path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        measure(cmd, "the parse")
    };
    let compare = std::env::var_os("TRIBUNAL_BENCH_COMPARE");
    let eval = |bin: &std::ffi::OsStr, store: bool, round: usize| {
        let cwd = dir.path().join(format!("run-{round}-{store}"));
        std::fs::create_dir_all(&cwd).unwrap();
        let mut cmd = Command::new(bin);
        cmd.arg("eval").arg(&path);
        if !store {
            cmd.arg("--no-store");
        }
        cmd.current_dir(&cwd)
            .env_remove("TRIBUNAL_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let m = measure(cmd, "tribunal eval");
        std::fs::remove_dir_all(&cwd).unwrap();
        m
    };
    let (mut p, mut e, mut ns) = (vec![], vec![], vec![]);
    let (mut ce, mut cns) = (vec![], vec![]);
    for round in 0..rounds {
        p.push(parse());
        e.push(eval(&tribunal, true, round));
        ns.push(eval(&tribunal, false, round));
        if let Some(other) = &compare {
            ce.push(eval(other, true, round));
            cns.push(eval(other, false, round));
        }
    }
    let best = |v: &[(Duration, Duration)]| {
        let cpu = v.iter().map(|m| m.0).min().unwrap_or_default();
        let wall = v.iter().map(|m| m.1).min().unwrap_or_default();
        (cpu.as_secs_f64(), wall.as_secs_f64())
    };
    let (base, base_wall) = best(&p);
    let (ev, ev_wall) = best(&e);
    let (nst, nst_wall) = best(&ns);
    println!(
        "eval CPU: {n} traces, {:.1} MB ({:.1} KB a trace, messages 200-2,000 characters), smallest of {rounds} interleaved rounds, whole-process user+system CPU",
        bytes as f64 / 1e6,
        bytes as f64 / n as f64 / 1e3
    );
    println!(
        "  baseline: read + parse every line with serde_json   {:>7.2} s CPU  ({:.2} s wall)   1.00x",
        base, base_wall
    );
    println!(
        "  tribunal eval FILE (default config and store)       {:>7.2} s CPU  ({:.2} s wall)   {:.2}x (target <= {TARGET:.1}: {})",
        ev,
        ev_wall,
        ev / base,
        if ev / base <= TARGET { "met" } else { "NOT met" }
    );
    println!(
        "  tribunal eval FILE --no-store                       {:>7.2} s CPU  ({:.2} s wall)   {:.2}x",
        nst,
        nst_wall,
        nst / base
    );
    if let Some(other) = &compare {
        let (oe, oe_wall) = best(&ce);
        let (ons, ons_wall) = best(&cns);
        println!("  compared with {}:", other.to_string_lossy());
        println!(
            "    eval FILE            {:>7.2} s CPU  ({:.2} s wall)   {:.2}x   (measured binary: {:.2}x its CPU)",
            oe,
            oe_wall,
            oe / base,
            ev / oe
        );
        println!(
            "    eval FILE --no-store {:>7.2} s CPU  ({:.2} s wall)   {:.2}x   (measured binary: {:.2}x its CPU)",
            ons,
            ons_wall,
            ons / base,
            nst / ons
        );
    }
}
