//! The same store code against a real PostgreSQL server (`TRIBUNAL_TEST_POSTGRES_URL`,
//! default `postgres://postgres@127.0.0.1:5432/test`; `.ci/run` starts the server). Each run
//! works in a database of its own, created and dropped here.

use sqlx::Connection;
use tribunal_store::{InputErrorRecord, ResultRecord, RunRecord, Store};

fn admin_url() -> String {
    std::env::var("TRIBUNAL_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn run(id: &str) -> RunRecord {
    RunRecord {
        id: id.into(),
        started_at: "2026-01-01T00:00:00Z".into(),
        finished_at: None,
        command: "tribunal eval x".into(),
        inputs: "x.jsonl".into(),
        policy_version: "abc".into(),
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
    let admin = admin_url();
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {admin} is needed for this test: {e}"));
    let db = format!(
        "tribunal_test_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let url = match admin.rfind('/') {
        Some(i) => format!("{}/{db}", &admin[..i]),
        None => panic!("database URL without a path: {admin}"),
    };

    let store = Store::open(&url).await.unwrap();
    store.create_run(&run("run-a1")).await.unwrap();
    let rows: Vec<ResultRecord> = (0..3)
        .map(|i| ResultRecord {
            seq: i,
            trace_id: format!("t{i}"),
            source_file: "x.jsonl".into(),
            source_line: i + 1,
            decision: "allow".into(),
            result: "{\"verdict\":\"allow\"}".into(),
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
    assert_eq!(store.list_runs(5).await.unwrap().len(), 1);
    store.close().await;

    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE {db}")))
        .execute(&mut conn)
        .await
        .unwrap();
}
