//! The streaming, parallel evaluation of files: a reader thread splits the input into raw
//! items, worker threads parse, import and judge them, and the caller receives results in
//! input order. Channels are bounded, so memory stays flat whatever the input size.

use crate::evaluator::{Evaluator, TraceResult};
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
}

/// Counts over a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub total: u64,
    pub allowed: u64,
    pub escalated: u64,
    pub blocked: u64,
    pub rejected: u64,
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
            }
            Event::Rejected(_) => self.rejected += 1,
        }
    }
}

enum Work {
    Item(RawItem),
    Error(ReadError),
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
    // At most `in_flight` items are read but not yet handed out: this bounds the reorder
    // buffer even when one trace is much slower than the ones after it.
    let in_flight = jobs * 64;
    let (work_tx, work_rx) = bounded::<(u64, Work)>(in_flight);
    let (done_tx, done_rx) = bounded::<(u64, Vec<Event>)>(in_flight);
    let (permit_tx, permit_rx) = bounded::<()>(in_flight);
    for _ in 0..in_flight {
        let _ = permit_tx.send(());
    }
    let format = options.format;
    let mut summary = Summary::default();
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || {
            let mut seq = 0u64;
            read_paths(&paths, |item| {
                if permit_rx.recv().is_err() {
                    return false;
                }
                let w = match item {
                    Ok(i) => Work::Item(i),
                    Err(e) => Work::Error(e),
                };
                let ok = work_tx.send((seq, w)).is_ok();
                seq += 1;
                ok
            })
        });
        for _ in 0..jobs {
            let rx = work_rx.clone();
            let tx = done_tx.clone();
            let evaluator = evaluator.clone();
            scope.spawn(move || {
                let mut policy = evaluator.policy_evaluator();
                for (seq, w) in rx {
                    let events = match w {
                        Work::Error(e) => vec![Event::Rejected(e)],
                        Work::Item(item) => match item.import(format) {
                            Err(e) => vec![Event::Rejected(e)],
                            Ok(traces) => traces
                                .into_iter()
                                .map(|t| {
                                    let ctx = evaluator.context_for(&t);
                                    let v = evaluator.evaluate(&t, None, ctx.as_ref(), &mut policy);
                                    Event::Result(Box::new(TraceResult::new(
                                        t.id,
                                        item.source.clone(),
                                        v,
                                    )))
                                })
                                .collect(),
                        },
                    };
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
