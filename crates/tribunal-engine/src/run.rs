//! The streaming, parallel evaluation of files: a reader thread splits the input into raw
//! items, worker threads parse, import and judge them, and the caller receives results in
//! input order. Channels are bounded, so memory stays flat whatever the input size.
//!
//! Items travel in chunks (up to [`CHUNK_ITEMS`] items or [`CHUNK_BYTES`] of text) so that
//! threads hand over work a few times per thousand traces rather than once per trace: on a
//! small machine, waking a thread per item costs as much as judging it. When a judge waits
//! on a model, chunks hold one item, so slow items spread over every worker; so they do when
//! reading standard input, which may be a live stream.

use crate::evaluator::{Evaluator, TraceResult};
use crate::session::{Ask, Session};
use crossbeam_channel::bounded;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use tribunal_core::Decision;
use tribunal_formats::{read_paths, InputFormat, RawItem, ReadError};

/// What the caller receives, in input order.
#[derive(Debug)]
pub enum Event {
    Result(Box<TraceResult>),
    /// An input that could not be read or imported; the run goes on.
    Rejected(ReadError),
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub format: InputFormat,
    /// Worker threads; 0 means one per core.
    pub jobs: usize,
    /// Give each result its trace as judged ([`TraceResult::trace`]), so a run that is
    /// stored can show what it judged.
    pub keep_traces: bool,
}

/// Counts over a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub total: u64,
    pub allowed: u64,
    pub escalated: u64,
    pub blocked: u64,
    pub rejected: u64,
    /// Traces on which a judge that is not optional gave no usable answer.
    pub judge_errors: u64,
}

impl Summary {
    pub fn add(&mut self, e: &Event) {
        match e {
            Event::Result(r) => {
                self.total += 1;
                match r.verdict {
                    Decision::Allow => self.allowed += 1,
                    Decision::Escalate => self.escalated += 1,
                    Decision::Block => self.blocked += 1,
                }
                if r.judge_failed() {
                    self.judge_errors += 1;
                }
            }
            Event::Rejected(_) => self.rejected += 1,
        }
    }
}

enum Work {
    Item(RawItem),
    Error(ReadError),
}

/// The most items in one chunk handed to a worker.
pub const CHUNK_ITEMS: usize = 64;
/// A chunk is handed over once its items hold this much text.
pub const CHUNK_BYTES: usize = 1 << 20;

fn judge_item(evaluator: &Arc<Evaluator>, options: &RunOptions, w: Work, out: &mut Vec<Event>) {
    match w {
        Work::Error(e) => out.push(Event::Rejected(e)),
        Work::Item(item) => match item.import(options.format) {
            Err(e) => out.push(Event::Rejected(e)),
            Ok(traces) => out.extend(traces.into_iter().map(|t| {
                let started = std::time::Instant::now();
                let id = t.id.clone();
                let kept = options
                    .keep_traces
                    .then(|| serde_json::to_string(&t).ok())
                    .flatten();
                let decided = Session::new(t).decide_once(evaluator, Ask::default());
                let mut r = TraceResult::new(id, item.source.clone(), decided.verdict);
                r.elapsed = started.elapsed();
                r.trace = kept;
                Event::Result(Box::new(r))
            })),
        },
    }
}

/// Evaluates every trace in `paths`, calling `sink` with each event in input order.
/// Returns an error only when a path cannot be opened at all.
pub fn run_eval(
    paths: &[PathBuf],
    evaluator: Arc<Evaluator>,
    options: &RunOptions,
    mut sink: impl FnMut(Event),
) -> Result<Summary, ReadError> {
    // Directories are walked once, here; a missing path fails before any work starts.
    let paths = tribunal_formats::reader::expand_paths(paths)?;
    let jobs = if options.jobs == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .max(evaluator.max_in_flight())
    } else {
        options.jobs
    };
    // Standard input may be a live stream: each trace is judged as soon as it arrives.
    let streaming = paths.iter().any(|p| p.as_os_str() == "-");
    let chunk_items = if evaluator.max_in_flight() > 0 || streaming {
        1
    } else {
        CHUNK_ITEMS
    };
    // At most `in_flight` chunks are read but not yet handed out: this bounds the reorder
    // buffer even when one trace is much slower than the ones after it.
    let in_flight = jobs * if chunk_items == 1 { 64 } else { 4 };
    let (work_tx, work_rx) = bounded::<(u64, Vec<Work>)>(in_flight);
    let (done_tx, done_rx) = bounded::<(u64, Vec<Event>)>(in_flight);
    let (permit_tx, permit_rx) = bounded::<()>(in_flight);
    for _ in 0..in_flight {
        let _ = permit_tx.send(());
    }
    let mut summary = Summary::default();
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || {
            let mut seq = 0u64;
            let mut chunk: Vec<Work> = Vec::with_capacity(chunk_items);
            let mut bytes = 0usize;
            let mut send = |chunk: &mut Vec<Work>| -> bool {
                if permit_rx.recv().is_err() {
                    return false;
                }
                let full = std::mem::replace(chunk, Vec::with_capacity(chunk_items));
                let ok = work_tx.send((seq, full)).is_ok();
                seq += 1;
                ok
            };
            let read = read_paths(&paths, |item| {
                chunk.push(match item {
                    Ok(i) => {
                        bytes += i.text.len();
                        Work::Item(i)
                    }
                    Err(e) => Work::Error(e),
                });
                if chunk.len() >= chunk_items || bytes >= CHUNK_BYTES {
                    bytes = 0;
                    return send(&mut chunk);
                }
                true
            });
            if !chunk.is_empty() {
                send(&mut chunk);
            }
            read
        });
        for _ in 0..jobs {
            let rx = work_rx.clone();
            let tx = done_tx.clone();
            let evaluator = evaluator.clone();
            scope.spawn(move || {
                for (seq, chunk) in rx {
                    let mut events = Vec::with_capacity(chunk.len());
                    for w in chunk {
                        judge_item(&evaluator, options, w, &mut events);
                    }
                    if tx.send((seq, events)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(done_tx);
        drop(work_rx);
        // Hand results out in input order.
        let mut next = 0u64;
        let mut waiting: BTreeMap<u64, Vec<Event>> = BTreeMap::new();
        for (seq, events) in done_rx {
            waiting.insert(seq, events);
            while let Some(events) = waiting.remove(&next) {
                for e in events {
                    summary.add(&e);
                    sink(e);
                }
                next += 1;
                let _ = permit_tx.send(());
            }
        }
        match reader.join() {
            Ok(r) => r,
            Err(_) => Err(ReadError {
                file: String::new(),
                line: 0,
                column: None,
                message: "the input reader failed".into(),
            }),
        }
    })?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;
    use std::io::Write;

    /// Results come out in input order across chunks, with a bad line in place.
    #[test]
    fn chunks_keep_input_order_and_rejections_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let mut f = std::fs::File::create(&path).unwrap();
        let n = CHUNK_ITEMS * 5 + 7;
        for i in 0..n {
            if i == CHUNK_ITEMS * 2 + 3 {
                writeln!(f, "{{not json").unwrap();
            } else {
                writeln!(
                    f,
                    r#"{{"id": "t{i}", "messages": [{{"role": "user", "content": "hi {i}"}}]}}"#
                )
                .unwrap();
            }
        }
        drop(f);
        let cfg = Config::default_with_hash();
        let evaluator = Evaluator::new(
            cfg.build_judges().unwrap(),
            cfg.build_policies(&[]).unwrap(),
            tribunal_policy::Context::default(),
        );
        let mut seen = Vec::new();
        let summary = run_eval(
            &[path],
            evaluator,
            &RunOptions {
                format: InputFormat::Auto,
                jobs: 2,
                keep_traces: false,
            },
            |e| match e {
                Event::Result(r) => seen.push(r.trace_id.clone()),
                Event::Rejected(e) => seen.push(format!("rejected line {}", e.line)),
            },
        )
        .unwrap();
        let expected: Vec<String> = (0..n)
            .map(|i| {
                if i == CHUNK_ITEMS * 2 + 3 {
                    format!("rejected line {}", i + 1)
                } else {
                    format!("t{i}")
                }
            })
            .collect();
        assert_eq!(seen, expected);
        assert_eq!(summary.total, n as u64 - 1);
        assert_eq!(summary.rejected, 1);
    }
}
