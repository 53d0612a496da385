//! The same store code against a real PostgreSQL server (`TRIBUNAL_TEST_POSTGRES_URL`,
//! default `postgres://postgres@127.0.0.1:5432/test`; `.ci/run` starts the server). Each run
//! works in a database of its own, created and dropped here.

use std::sync::Arc;
use std::time::Duration;
use tribunal_llm::{cache_key, ChatRequest, ChatResponse, ModelUri, ResponseCache, Usage};

const BASE: &str = "https://api.anthropic.com";
use tribunal_store::testing::TestDatabase;
use tribunal_store::{InputErrorRecord, ResultRecord, RunRecord, Store, StoreCache};

fn run(id: &str) -> RunRecord {
    RunRecord {
        id: id.into(),
        started_at: "2026-01-01T00:00:00Z".into(),
        finished_at: None,
        command: "tribunal eval x".into(),
        inputs: "x.jsonl".into(),
        policy_version: "abc".into(),
        config: "built-in defaults".into(),
        config_hash: "def".into(),
        status: "running".into(),
        total: 0,
        allowed: 0,
        escalated: 0,
        blocked: 0,
        rejected: 0,
    }
}

#[tokio::test]
async fn runs_and_results_round_trip_on_postgres() {
    let db = TestDatabase::create("tribunal_test")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let url = db.url.clone();

    let store = Store::open(&url).await.unwrap();
    store.create_run(&run("run-a1")).await.unwrap();
    assert!(store.create_run(&run("run-a1")).await.is_err());
    let mut again = run("run-a1");
    store.create_new_run(&mut again).await.unwrap();
    assert_ne!(again.id, "run-a1");
    // Several multi-row statements' worth.
    let rows: Vec<ResultRecord> = (0..250)
        .map(|i| ResultRecord {
            seq: i,
            trace_id: format!("t{i}"),
            source_file: "x.jsonl".into(),
            source_line: i + 1,
            decision: "allow".into(),
            result: "{\"verdict\":\"allow\"}".into(),
            trace: None,
        })
        .collect();
    store.insert_results("run-a1", &rows).await.unwrap();
    store
        .insert_input_errors(
            "run-a1",
            &[InputErrorRecord {
                seq: 3,
                source_file: "x.jsonl".into(),
                source_line: 4,
                message: "bad".into(),
            }],
        )
        .await
        .unwrap();
    let mut done = run("run-a1");
    done.status = "done".into();
    done.total = 3;
    done.allowed = 3;
    done.rejected = 1;
    done.finished_at = Some("2026-01-01T00:00:01Z".into());
    store.finish_run(&done).await.unwrap();
    assert_eq!(store.find_run("run-a").await.unwrap(), done);
    assert_eq!(store.run_results("run-a1").await.unwrap(), rows);
    assert_eq!(store.run_input_errors("run-a1").await.unwrap().len(), 1);
    assert_eq!(
        store.list_runs(5).await.unwrap().len(),
        2,
        "run-a1 and the run given another id"
    );
    store.close().await;

    db.drop().await.unwrap();
}

#[tokio::test]
async fn the_response_cache_round_trips_on_postgres() {
    let db = TestDatabase::create("tribunal_cache")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let url = db.url.clone();

    let store = Store::open(&url).await.unwrap();
    let cache: Arc<dyn ResponseCache> = Arc::new(StoreCache::new(
        store.clone(),
        tokio::runtime::Handle::current(),
    ));
    let model: ModelUri = "anthropic:/claude-3-5-haiku-latest".parse().unwrap();
    let key = cache_key(&model, BASE, &ChatRequest::new("Is the reply grounded?"));
    assert_eq!(cache.get(&key).await.unwrap(), None);
    let answer = |result: &str| ChatResponse {
        model: model.clone(),
        text: format!("{{\"rationale\": \"r\", \"result\": \"{result}\"}}"),
        json: Some(serde_json::json!({"rationale": "r", "result": result})),
        usage: Usage {
            input_tokens: 100,
            output_tokens: 20,
        },
        latency: Duration::from_millis(200),
        stop_reason: Some("tool_use".into()),
        tool_calls: Vec::new(),
        attempts: 1,
        cached: false,
        logprobs: None,
    };
    cache.put(&key, &answer("yes")).await.unwrap();
    // The same request again replaces the answer (ON CONFLICT on PostgreSQL too).
    cache.put(&key, &answer("no")).await.unwrap();
    assert_eq!(cache.get(&key).await.unwrap(), Some(answer("no")));
    assert_eq!(store.cached_response_count().await.unwrap(), 1);
    store.close().await;

    db.drop().await.unwrap();
}

/// The store's connections commit synchronously and give up on a lock held elsewhere after
/// 10 s, whatever the database's defaults: a database tuned with `synchronous_commit = off`
/// would otherwise lose answered decisions on a crash of the database server.
#[tokio::test]
async fn connections_commit_synchronously_whatever_the_databases_default() {
    let db = TestDatabase::create("tribunal_sync")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    db.set_default("synchronous_commit", "off").await.unwrap();
    db.set_default("lock_timeout", "0").await.unwrap();
    let store = Store::open(&db.url).await.unwrap();
    for _ in 0..6 {
        assert_eq!(
            tribunal_store::testing::setting(&store, "synchronous_commit")
                .await
                .unwrap(),
            "on"
        );
        assert_eq!(
            tribunal_store::testing::setting(&store, "lock_timeout")
                .await
                .unwrap(),
            "10s"
        );
    }
    store.close().await;
    // A stronger setting than `on` is kept.
    db.set_default("synchronous_commit", "remote_write")
        .await
        .unwrap();
    let store = Store::open(&db.url).await.unwrap();
    assert_eq!(
        tribunal_store::testing::setting(&store, "synchronous_commit")
            .await
            .unwrap(),
        "remote_write"
    );
    store.close().await;
    db.drop().await.unwrap();
}

/// A database that does not exist is named as such at once, not after the pool's 30 s of
/// retries as a timeout.
#[tokio::test]
async fn a_missing_database_is_named_when_the_store_opens() {
    let admin = tribunal_store::testing::admin_url();
    let base = &admin[..admin.rfind('/').unwrap()];
    let url = format!("{base}/tribunal_no_such_db_{}", std::process::id());
    let err = Store::open(&url).await.unwrap_err().to_string();
    assert!(
        err.contains("does not exist") && err.contains("tribunal_no_such_db"),
        "{err}"
    );
}

/// A database server that accepts the connection and then says nothing fails the opening
/// with that said, rather than the pool's retries ending in a bare timeout.
#[tokio::test]
async fn a_database_server_that_does_not_answer_is_named() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts, holds the connection, never answers.
    let held = tokio::spawn(async move {
        let mut kept = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            kept.push(socket);
        }
    });
    let url = format!("postgres://postgres@127.0.0.1:{port}/test");
    let err = Store::open(&url).await.unwrap_err().to_string();
    assert!(err.contains("no answer from the database server"), "{err}");
    held.abort();
}
