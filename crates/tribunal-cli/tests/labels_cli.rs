//! Labels people gave in the server's queues, used from the command line on the same store:
//! `tribunal labels list|export`, `tribunal judges align` with no label file (the settled
//! labels of the queues tied to the judge, on their stored traces), and `tribunal prefs
//! from-queue` (a pairwise queue's settled labels as preference records). The model is a
//! local scripted server; nothing here measures a model's quality.

mod common;

use axum::routing::post;
use axum::{Json, Router};
use common::{text, tribunal};
use serde_json::{json, Value};

async fn chat(Json(body): Json<Value>) -> Json<Value> {
    let system = body["messages"][0]["content"].as_str().unwrap_or_default();
    let answer = if system.contains("You improve the instructions") {
        json!({"guidelines": ["Refunds after 30 days fail."]}).to_string()
    } else {
        json!({"rationale": "scripted", "result": "yes"}).to_string()
    };
    Json(json!({
        "id": "c1", "object": "chat.completion", "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}
    }))
}

async fn call(url: &str, token: &str, path: &str, body: Value) -> Value {
    let r = reqwest::Client::new()
        .post(format!("{url}{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let st = r.status().as_u16();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    assert!(st < 300, "{path}: {st} {v}");
    v
}

/// Gate traffic, a queue tied to the judge `refund` labelled by one person, and a pairwise
/// queue labelled by two, all in the store at `db` through a server that then stops.
fn people_label(db: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = tribunal_store::Store::open(db).await.unwrap();
        let (state, background) =
            tribunal_server::start(store.clone(), tribunal_server::ServerOptions::default())
                .await
                .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(tribunal_server::serve(listener, state, background, async move {
            let _ = stopped.await;
        }));
        let token = |role: &'static str| {
            let store = store.clone();
            async move {
                tribunal_server::auth::create_token(&store, "default", role, "t")
                    .await
                    .unwrap()
                    .1
            }
        };
        let (agent, admin, ann, ann2) = (token("agent").await, token("admin").await, token("annotator").await, token("annotator").await);
        for i in 0..40 {
            let days = (i * 7) % 60;
            // The reply the gate judged is the trace's reply.
            call(&url, &agent, "/api/v1/gate", json!({"trace_id": format!("r{i:02}"), "trace": [
                {"role": "user", "content": format!("refund request after {days} days (case {i})")}
            ], "pending": {"kind": "reply", "content": "Refund approved."}})).await;
        }
        // A trace whose step was a tool call: it has no reply to compare.
        call(&url, &agent, "/api/v1/gate", json!({"trace_id": "noreply", "trace": [
            {"role": "user", "content": "where is order 7?"}
        ], "pending": {"name": "lookup_order", "arguments": {"id": "7"}}})).await;
        // The gate stores its traces a moment after it answers: people label stored ones.
        for id in (0..40).map(|i| format!("r{i:02}")).chain(["noreply".to_owned()]) {
            let mut tries = 0;
            while store.get_trace("default", &id).await.unwrap().is_none() {
                tries += 1;
                assert!(tries < 500, "trace {id} was not stored");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
        call(&url, &admin, "/api/v1/label-schemas", json!({"name": "refund_ok", "type": "pass_fail", "judge": "refund", "comment": true})).await;
        // The judge said yes to every refund when the queue was filled.
        let items: Vec<Value> = (0..40).map(|i| json!({"trace": format!("r{i:02}"), "judge_value": true})).collect();
        call(&url, &admin, "/api/v1/queues", json!({"id": "refunds", "schema": "refund_ok", "items": items})).await;
        loop {
            let v = call(&url, &ann, "/api/v1/queues/refunds/next", json!({})).await;
            let Some(item) = v["item"].as_str() else { break };
            let i: usize = item[1..].parse().unwrap();
            let days = (i * 7) % 60;
            call(&url, &ann, &format!("/api/v1/queues/refunds/items/{item}/label"),
                json!({"value": days < 30, "comment": format!("{days} days")})).await;
        }
        // A reviewer settles two items: the judge is right on one of them.
        for (item, value) in [("r00", true), ("r05", false)] {
            call(&url, &admin, &format!("/api/v1/queues/refunds/items/{item}/adjudicate"), json!({"value": value})).await;
        }
        call(&url, &admin, "/api/v1/label-schemas", json!({"name": "better", "type": "pairwise"})).await;
        call(&url, &admin, "/api/v1/queues", json!({"id": "pairs", "schema": "better", "overlap": 2, "items": [
            {"id": "p1", "pair": {"prompt": "Greet me", "a": {"text": "Hello there!"}, "b": {"text": "What."}}},
            {"id": "p2", "pair": {"a": {"trace": "r01"}, "b": {"text": "No refunds, ever."}}},
            {"id": "p3", "pair": {"prompt": "Sum 2+2", "a": {"text": "4"}, "b": {"text": "four"}}},
            {"id": "p4", "pair": {"a": {"trace": "noreply"}, "b": {"text": "Order 7 is on its way."}}},
            // Two conversations that answer different questions.
            {"id": "p5", "pair": {"a": {"trace": "r02"}, "b": {"trace": "r03"}}},
            // A written reply against a trace's: the trace's question is the prompt.
            {"id": "p6", "pair": {"a": {"text": "Refunds take 5 days."}, "b": {"trace": "r04"}}}
        ]})).await;
        for (person, answers) in [(&ann, ["a", "a", "tie", "b", "a", "b"]), (&ann2, ["a", "a", "b", "b", "a", "b"])] {
            for _ in 0..6 {
                let v = call(&url, person, "/api/v1/queues/pairs/next", json!({})).await;
                let item = v["item"].as_str().unwrap().to_owned();
                let k: usize = item[1..].parse::<usize>().unwrap() - 1;
                call(&url, person, &format!("/api/v1/queues/pairs/items/{item}/label"), json!({"value": answers[k]})).await;
            }
        }
        // Trace r01 is sent again with another reply after it was compared: the preference
        // is between the replies people were shown.
        call(&url, &agent, "/api/v1/gate", json!({"trace_id": "r01", "trace": [
            {"role": "user", "content": "refund request after 7 days (case 1)"}
        ], "pending": {"kind": "reply", "content": "Refund denied."}})).await;
        let _ = stop.send(());
        server.await.unwrap().unwrap();
    });
}

#[test]
fn labels_from_the_servers_queues_feed_align_exports_and_preferences() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let db = dir.join("t.db").display().to_string();
    people_label(&db);

    let out = tribunal(dir, &["labels", "list", "--db", &db]);
    let said = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        said.contains("refunds  schema refund_ok  40 items × 1  40 labels  40 settled"),
        "{said}"
    );
    assert!(
        said.contains("pairs  schema better  6 items × 2  12 labels  5 settled"),
        "{said}"
    );

    let out = tribunal(
        dir,
        &[
            "labels", "export", "refunds", "--format", "mlflow", "--db", &db,
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 42, "40 labels and 2 final labels");
    assert_eq!(
        lines
            .iter()
            .filter(
                |l| l["metadata"]["final"] == "corrected" || l["metadata"]["final"] == "accepted"
            )
            .count(),
        2
    );
    assert!(lines
        .iter()
        .all(|l| l["assessment_name"] == "refund_ok" && l["source"]["source_type"] == "HUMAN"));
    let out = tribunal(dir, &["labels", "export", "nope", "--db", &db]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no queue \"nope\""),
        "{}",
        text(&out.stderr)
    );

    // The judge tied to the schema aligns on the people's labels, read from the store.
    let url = format!(
        "http://{}/v1",
        tribunal_llm::testing::serve(Router::new().route("/v1/chat/completions", post(chat)))
    );
    std::fs::write(
        dir.join("tribunal.toml"),
        format!(
            "[judges.refund]\nkind = \"llm\"\ninstructions = \"\"\"Does the reply follow the refund policy?\n{{{{ inputs }}}}\n{{{{ outputs }}}}\"\"\"\noutput = \"yes_no\"\nmodel = \"openai:/gpt-4o-mini\"\nbase_url = \"{url}\"\nmax_retries = 0\n"
        ),
    )
    .unwrap();
    let out = tribunal(dir, &["judges", "import", "tribunal.toml", "--db", &db]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = tribunal(
        dir,
        &[
            "judges",
            "align",
            "refund",
            "--holdout",
            "0.3",
            "--seed",
            "3",
            "--db",
            &db,
        ],
    );
    let (said, err) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{said}\n{err}");
    assert!(err.contains("labels from the store: {\"not_settled\":0,\"queues\":[\"refunds\"],\"read_as_labelled\":40,\"settled\":40,\"without_stored_trace\":0}"), "{err}");
    assert!(
        said.contains("40 labels read, 40 usable (28 train, 12 held out, seed 3)"),
        "{said}"
    );
    assert!(said.contains("refund: stored as version 2"), "{said}");
    // People and the judge side by side.
    let out = tribunal(
        dir,
        &[
            "judges",
            "report",
            "refund",
            "--hourly-rate",
            "60",
            "--db",
            &db,
        ],
    );
    let said = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(said.contains("people and the judge (queues refunds): 40 items; the judge answered 40, people labelled 40 (0 sent to people as untrusted)"), "{said}");
    assert!(
        said.contains("against 2 adjudicated labels: judge agreement 0.500 ["),
        "{said}"
    );
    assert!(
        said.contains("people agreement 1.000 [1.000, 1.000] on 2 labels"),
        "{said}"
    );
    assert!(
        said.contains("  people: median ") && said.contains(" per item at 60 an hour"),
        "{said}"
    );
    let out = tribunal(dir, &["judges", "align", "other", "--db", &db]);
    assert!(!out.status.success());

    // Pairs people settled on become preference records.
    let out = tribunal(dir, &["prefs", "from-queue", "pairs", "--db", &db]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr)
            .contains("3 preference records (3 added, 0 already stored); 2 pairs not settled, or with a side whose trace is not stored or has no reply; 1 pairs of two traces answering different questions (give the pair a prompt)"),
        "{}",
        text(&out.stderr)
    );
    let out = tribunal(
        dir,
        &[
            "prefs",
            "export",
            "--format",
            "jsonl",
            "-o",
            "prefs.jsonl",
            "--db",
            &db,
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let records: Vec<Value> = std::fs::read_to_string(dir.join("prefs.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 3, "{records:?}");
    let written = records
        .iter()
        .find(|r| r["rejected"] == "Refunds take 5 days.")
        .unwrap();
    assert_eq!(
        (&written["prompt"], &written["chosen"]),
        (
            &json!("refund request after 28 days (case 4)"),
            &json!("Refund approved.")
        ),
        "{written}"
    );
    let greet = records.iter().find(|r| r["prompt"] == "Greet me").unwrap();
    assert_eq!(
        (greet["chosen"].as_str(), greet["rejected"].as_str()),
        (Some("Hello there!"), Some("What."))
    );
    assert_eq!(greet["provenance"]["kind"], "human");
    let refund = records
        .iter()
        .find(|r| r["rejected"] == "No refunds, ever.")
        .unwrap();
    assert_eq!(
        refund["chosen"], "Refund approved.",
        "the trace's reply: {refund}"
    );
    assert_eq!(refund["prompt"], "refund request after 7 days (case 1)");
    assert_eq!(refund["provenance"]["source_trace_ids"], json!(["r01"]));
    let out = tribunal(dir, &["prefs", "from-queue", "refunds", "--db", &db]);
    assert!(
        text(&out.stderr).contains("not pairwise"),
        "{}",
        text(&out.stderr)
    );
}
