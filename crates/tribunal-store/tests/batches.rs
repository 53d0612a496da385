//! Batched writes of the server's records (gate traces, decision-log entries, received spans
//! and their events), on SQLite and on a real PostgreSQL server: batches larger than one
//! statement, and a record sent several times within one batch.

use tribunal_store::testing::TestDatabase;
use tribunal_store::{
    AuditRow, GateTraceRow, HeadGuard, NewAuditEntry, SpanEventRecord, SpanRecord, Store,
    TraceFilter,
};

fn gate_row(trace: usize, i: usize) -> GateTraceRow {
    GateTraceRow {
        project: "default".into(),
        trace_id: format!("t{trace}"),
        body: format!("{{\"request\":{i}}}"),
        decision: if i.is_multiple_of(2) {
            "allow"
        } else {
            "block"
        }
        .into(),
        result: format!("{{\"answer\":{i}}}"),
        at: format!("2026-11-24T08:{:02}:{:02}Z", i / 60 % 60, i % 60),
        at_ms: i as i64,
        agent: None,
        digest: None,
    }
}

async fn check(store: &Store) {
    // 250 requests about 200 traces: more than one statement, and the first 50 traces are
    // sent twice in the same batch.
    let rows: Vec<GateTraceRow> = (0..250).map(|i| gate_row(i % 200, i)).collect();
    store.upsert_gate_traces(&rows).await.unwrap();
    // A second batch updates a trace stored by the first.
    store.upsert_gate_traces(&[gate_row(3, 900)]).await.unwrap();
    let all = store
        .list_traces(
            "default",
            &TraceFilter {
                source: Some("gate".into()),
                limit: 1000,
                ..TraceFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 200);
    let t7 = store.get_trace("default", "t7").await.unwrap().unwrap();
    // The later request of the batch wins; the first one's time is kept.
    assert_eq!(t7.body.as_deref(), Some("{\"request\":207}"));
    assert_eq!(t7.decision.as_deref(), Some("block"));
    assert_eq!(t7.first_seen, gate_row(7, 7).at);
    assert_eq!(t7.last_seen, gate_row(7, 207).at);
    let t3 = store.get_trace("default", "t3").await.unwrap().unwrap();
    assert_eq!(t3.body.as_deref(), Some("{\"request\":900}"));
    assert_eq!(t3.first_seen, gate_row(3, 3).at);
    let t150 = store.get_trace("default", "t150").await.unwrap().unwrap();
    assert_eq!(t150.body.as_deref(), Some("{\"request\":150}"));

    // Large traces: a batch of more bytes than one transaction takes is written in several,
    // every trace with its last request, one sent twice in the batch too.
    let big = |trace: usize, i: usize| GateTraceRow {
        body: format!("{{\"request\":{i},\"pad\":\"{}\"}}", "x".repeat(60_000)),
        ..gate_row(trace, i)
    };
    let rows: Vec<GateTraceRow> = (0..13).map(|i| big(1000 + i % 12, 1000 + i)).collect();
    store.upsert_gate_traces(&rows).await.unwrap();
    for t in 1000..1012 {
        let got = store
            .get_trace("default", &format!("t{t}"))
            .await
            .unwrap()
            .unwrap();
        let want = if t == 1000 { 1012 } else { t };
        assert_eq!(got.body, Some(big(t, want).body), "trace t{t}");
        assert_eq!(got.first_seen, gate_row(t, t).at);
    }

    let entries: Vec<AuditRow> = (1..=230)
        .map(|seq| AuditRow {
            seq,
            at: "2026-11-24T08:00:00Z".into(),
            project: "default".into(),
            kind: "gate".into(),
            body: format!("{{\"i\":{seq}}}"),
            prev_hash: if seq == 1 {
                String::new()
            } else {
                format!("h{}", seq - 1)
            },
            hash: format!("h{seq}"),
        })
        .collect();
    let new: Vec<NewAuditEntry> = entries
        .iter()
        .map(|e| NewAuditEntry {
            at: e.at.clone(),
            project: e.project.clone(),
            kind: e.kind.clone(),
            body: e.body.clone(),
        })
        .collect();
    let hash = |seq: i64, _: &NewAuditEntry, _: &str| format!("h{seq}");
    assert_eq!(store.append_audit(&new[..120], hash).await.unwrap(), 1);
    assert_eq!(store.append_audit(&new[120..], hash).await.unwrap(), 121);
    assert_eq!(store.audit_head().await.unwrap(), (230, "h230".to_owned()));
    let back = store.audit_entries(0, 1000).await.unwrap();
    assert_eq!(back, entries);

    // 250 spans of one request over two traces, ten of trace "s0" sent twice within the
    // same statement's rows (the later copy is kept), then one again in a later request.
    let span = |trace: usize, id: usize, copy: usize| SpanRecord {
        trace_id: format!("s{trace}"),
        span_id: format!("{id:016x}"),
        body: format!("{{\"copy\":{copy}}}"),
    };
    let mut spans: Vec<SpanRecord> = (0..240).map(|i| span(i % 2, i, 0)).collect();
    spans.extend((0..10).map(|i| span(0, 220 + 2 * i, 1)));
    store
        .insert_spans(("default", None), &spans, "2026-11-24T08:00:00Z", 1)
        .await
        .unwrap();
    store
        .insert_spans(
            ("default", None),
            &[span(0, 4, 2)],
            "2026-11-24T08:00:01Z",
            2,
        )
        .await
        .unwrap();
    let s0 = store.trace_spans("default", "s0").await.unwrap();
    assert_eq!(s0.len(), 120);
    for s in &s0 {
        let id = usize::from_str_radix(&s.span_id, 16).unwrap();
        let copy = match id {
            4 => 2,
            id if id >= 220 => 1,
            _ => 0,
        };
        assert_eq!(s.body, format!("{{\"copy\":{copy}}}"), "span {id}");
    }
    assert_eq!(store.trace_spans("default", "s1").await.unwrap().len(), 120);

    // 230 events, one sent twice in the request: its first copy stays.
    let event = |i: usize, copy: usize| SpanEventRecord {
        trace_id: "s0".into(),
        span_id: format!("{:016x}", i % 3),
        event_key: format!("e{i}"),
        time_ns: i as i64,
        body: format!("{{\"event\":{i},\"copy\":{copy}}}"),
    };
    let mut events: Vec<SpanEventRecord> = (0..229).map(|i| event(i, 0)).collect();
    events.push(event(7, 1));
    store
        .insert_span_events(("default", None), &events, "2026-11-24T08:00:02Z", 3)
        .await
        .unwrap();
    let back = store.trace_span_events("default", "s0").await.unwrap();
    assert_eq!(back.len(), 229);
    assert!(back.iter().all(|e| e.body.ends_with("\"copy\":0}")));

    // A gate decision on a trace of spans takes its row (replay then judges what the gate
    // judged): a judgement of the spans made before it does not replace it, one of spans
    // received after it does.
    let s0 = |store: &Store| {
        let store = store.clone();
        async move { store.get_trace("default", "s0").await.unwrap().unwrap() }
    };
    store
        .set_trace_result("default", "s0", "allow", "{}", 3)
        .await
        .unwrap();
    assert_eq!(s0(store).await.source, "otlp");
    let gated = GateTraceRow {
        trace_id: "s0".into(),
        decision: "block".into(),
        at_ms: 10,
        ..gate_row(0, 1)
    };
    store.upsert_gate_traces(&[gated]).await.unwrap();
    let row = s0(store).await;
    assert_eq!(
        (row.source.as_str(), row.decision.as_deref(), row.dirty),
        ("gate", Some("block"), false)
    );
    store
        .set_trace_result("default", "s0", "allow", "{}", 3)
        .await
        .unwrap();
    assert_eq!(s0(store).await.decision.as_deref(), Some("block"));
    store
        .insert_spans(
            ("default", None),
            &[span(0, 900, 0)],
            "2026-11-24T08:00:09Z",
            20,
        )
        .await
        .unwrap();
    store
        .set_trace_result("default", "s0", "allow", "{}", 20)
        .await
        .unwrap();
    let row = s0(store).await;
    assert_eq!(
        (row.source.as_str(), row.decision.as_deref(), row.dirty),
        ("otlp", Some("allow"), false)
    );

    // A trace an agent's token began is not replaced by another agent's; a token of the
    // whole project replaces it and it stays the agent's; an unowned one is taken.
    let owned = |trace: usize, i: usize, agent: Option<&str>| GateTraceRow {
        agent: agent.map(str::to_owned),
        ..gate_row(trace, i)
    };
    let body = |trace: &'static str| {
        let store = store.clone();
        async move {
            let r = store.get_trace("default", trace).await.unwrap().unwrap();
            (r.body.unwrap(), r.agent)
        }
    };
    let a = Some("a".to_owned());
    store
        .upsert_gate_traces(&[owned(5000, 1, Some("a"))])
        .await
        .unwrap();
    store
        .upsert_gate_traces(&[owned(5000, 2, Some("b"))])
        .await
        .unwrap();
    assert_eq!(body("t5000").await, ("{\"request\":1}".into(), a.clone()));
    store
        .upsert_gate_traces(&[owned(5000, 3, None)])
        .await
        .unwrap();
    assert_eq!(body("t5000").await, ("{\"request\":3}".into(), a.clone()));
    store
        .upsert_gate_traces(&[owned(5001, 1, None), owned(5001, 2, Some("a"))])
        .await
        .unwrap();
    assert_eq!(body("t5001").await, ("{\"request\":2}".into(), a.clone()));
    store
        .upsert_gate_traces(&[owned(5001, 4, Some("b"))])
        .await
        .unwrap();
    assert_eq!(body("t5001").await, ("{\"request\":2}".into(), a));

    // Where a gate trace stands moves only from where a decision found it; a body written
    // behind it does not replace the one written at it.
    let entry = NewAuditEntry {
        at: "2026-11-24T08:00:00Z".into(),
        project: "default".into(),
        kind: "gate".into(),
        body: "{}".into(),
    };
    let guard = |prev: Option<&str>, digest: &str| HeadGuard {
        project: "default".into(),
        trace_id: "t6000".into(),
        prev: prev.map(str::to_owned),
        digest: digest.into(),
    };
    let hash = |seq: i64, _: &NewAuditEntry, prev: &str| format!("{prev}{seq}");
    let given = store
        .append_audit_guarded(
            &[entry.clone(), entry.clone(), entry.clone(), entry.clone()],
            &[
                Some(guard(None, "w")),
                Some(guard(Some("x"), "y")),
                Some(guard(Some("w"), "w2")),
                None,
            ],
            hash,
        )
        .await
        .unwrap();
    assert!(given[0].is_some() && given[1].is_none(), "{given:?}");
    assert_eq!(given[2].zip(given[0]).map(|(b, a)| b - a), Some(1));
    assert_eq!(given[3].zip(given[2]).map(|(b, a)| b - a), Some(1));
    let head = store.gate_head("default", "t6000").await.unwrap();
    assert_eq!(head, Some(("w2".into(), None)));
    let at = |i: usize, digest: &str| GateTraceRow {
        digest: Some(digest.into()),
        ..gate_row(6000, i)
    };
    store.upsert_gate_traces(&[at(1, "w")]).await.unwrap();
    store.upsert_gate_traces(&[at(2, "w2")]).await.unwrap();
    store.upsert_gate_traces(&[at(3, "w")]).await.unwrap();
    let (stored, _) = body("t6000").await;
    assert_eq!(stored, "{\"request\":2}");
    let head = store.gate_head("default", "t6000").await.unwrap();
    assert_eq!(head, Some(("w2".into(), Some("w2".into()))));
}

#[tokio::test]
async fn batches_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("b.db").to_str().unwrap())
        .await
        .unwrap();
    check(&store).await;
}

#[tokio::test]
async fn batches_on_postgres() {
    let db = TestDatabase::create("tribunal_batches")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let store = Store::open(&db.url).await.unwrap();
    check(&store).await;
    store.close().await;
    db.drop().await.unwrap();
}

/// A write whose transaction the database rolls back by itself (SQLite does on a full disk
/// or an I/O error; here a trigger's `RAISE(ROLLBACK)` does) fails, and the writes after it
/// go through once the cause is gone: the store's connection is not left believing it is
/// still inside the transaction, which made every later write fail until a restart.
#[tokio::test]
async fn a_write_the_database_rolled_back_by_itself_does_not_stop_later_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("full.db").to_str().unwrap())
        .await
        .unwrap();
    store
        .execute_raw(
            "CREATE TRIGGER disk_full BEFORE INSERT ON traces \
             BEGIN SELECT RAISE(ROLLBACK, 'database or disk is full'); END",
        )
        .await
        .unwrap();
    let err = store
        .upsert_gate_traces(&[gate_row(1, 1)])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("disk is full"), "{err}");
    store.execute_raw("DROP TRIGGER disk_full").await.unwrap();
    for i in 2..5 {
        store.upsert_gate_traces(&[gate_row(i, i)]).await.unwrap();
    }
    let t3 = store.get_trace("default", "t3").await.unwrap().unwrap();
    assert_eq!(t3.body.as_deref(), Some("{\"request\":3}"));
    assert!(store.get_trace("default", "t1").await.unwrap().is_none());
}

/// A store path naming a file that is not a SQLite database (a trace file, a damaged
/// database) is an error that says so at once, not a 30-second wait for a pool.
#[tokio::test]
async fn a_file_that_is_no_database_is_named_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("traces.jsonl");
    std::fs::write(
        &path,
        "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]} and more text than a header\n",
    )
    .unwrap();
    let started = std::time::Instant::now();
    let err = Store::open(path.to_str().unwrap()).await.err().unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let err = err.to_string();
    assert!(
        err.contains("traces.jsonl") && err.contains("not a database"),
        "{err}"
    );
}

/// A SQLite file deleted (or moved) while the store has it open still takes writes that no
/// one reads again: the decision log's connection and the pool's write transactions refuse
/// it, so nothing is answered as stored that is lost.
#[cfg(unix)]
#[tokio::test]
async fn a_database_file_deleted_while_open_takes_no_more_writes() {
    use tribunal_store::NewAuditEntry;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gone.db");
    let store = Store::open(path.to_str().unwrap()).await.unwrap();
    let mut log = store.log_connection().unwrap().expect("a SQLite file");
    let entry = NewAuditEntry {
        at: "2026-01-01T00:00:00Z".into(),
        project: "default".into(),
        kind: "gate".into(),
        body: "{}".into(),
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let hash = |seq: i64, _: &NewAuditEntry, prev: &str| format!("{seq}:{prev}");
    assert_eq!(
        log.append(std::slice::from_ref(&entry), hash, deadline)
            .unwrap(),
        1
    );
    store.upsert_gate_traces(&[gate_row(1, 1)]).await.unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let err = log
        .append(std::slice::from_ref(&entry), hash, deadline)
        .unwrap_err()
        .to_string();
    assert!(err.contains("moved or deleted while open"), "{err}");
    let err = store
        .upsert_gate_traces(&[gate_row(2, 2)])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("moved or deleted while open"), "{err}");
}
