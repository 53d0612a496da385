//! The labeling workforce through the API, on servers that share one database: ten
//! annotators over a thousand items with overlap 3 (spread over two servers, with skips and
//! locks left to time out), the same on PostgreSQL; queues filled from a trace filter, an
//! eval run and a judge's low-confidence results; pairs; review of people against the judge;
//! labels exported and imported again; the role matrix of the routes.

mod common;

use common::{call, TestServer};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;
use tribunal_server::ServerOptions;
use tribunal_store::testing::TestDatabase;
use tribunal_store::{ResultRecord, RunRecord, Store};

/// Two servers, each with its own connection pool, on one store.
async fn two_servers(location: &str) -> Vec<TestServer> {
    let mut out = Vec::new();
    for _ in 0..2 {
        let store = Store::open(location).await.unwrap();
        out.push(
            TestServer::start_with(
                store,
                tempfile::tempdir().unwrap(),
                ServerOptions::default(),
            )
            .await,
        );
    }
    out
}

/// What the annotators did, as they saw it.
#[derive(Default)]
struct Work {
    labelled: Vec<(String, String)>,
    skipped: Vec<(String, String)>,
    given: HashMap<String, HashSet<String>>,
}

/// Ten annotators (and three who take an item and walk away) work queue `q` until it is
/// done, each asking the two servers in turn. A person skips an item when a hash of the pair
/// says so (about 1 in `skip_one_in`).
async fn work_the_queue(
    urls: Vec<String>,
    people: Vec<String>,
    leavers: Vec<String>,
    q: &str,
    skip_one_in: u64,
) -> Work {
    for (k, p) in leavers.iter().enumerate() {
        let (st, v) = call(
            &urls[k % 2],
            p,
            "POST",
            &format!("/api/v1/queues/{q}/next"),
            None,
        )
        .await;
        assert_eq!(st, 200, "{v}");
        assert!(v["item"].is_string(), "{v}");
    }
    let mut tasks = Vec::new();
    for (k, person) in people.into_iter().enumerate() {
        let (urls, q) = (urls.clone(), q.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut w = Work::default();
            let mut round = k;
            loop {
                round += 1;
                let url = &urls[round % urls.len()];
                let (st, v) = call(
                    url,
                    &person,
                    "POST",
                    &format!("/api/v1/queues/{q}/next"),
                    None,
                )
                .await;
                assert_eq!(st, 200, "{v}");
                if v["done"] == true {
                    break;
                }
                if let Some(until) = v["wait_until_ms"].as_i64() {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_millis() as i64;
                    tokio::time::sleep(Duration::from_millis((until - now).clamp(10, 300) as u64))
                        .await;
                    continue;
                }
                let item = v["item"].as_str().unwrap().to_owned();
                w.given
                    .entry(person.clone())
                    .or_default()
                    .insert(item.clone());
                let h = item
                    .bytes()
                    .chain(person.bytes())
                    .fold(7u64, |a, b| a.wrapping_mul(31).wrapping_add(u64::from(b)));
                let url = &urls[(round + 1) % urls.len()];
                if !item.starts_with('g') && h % skip_one_in == 0 {
                    let (st, v) = call(
                        url,
                        &person,
                        "POST",
                        &format!("/api/v1/queues/{q}/items/{item}/skip"),
                        Some(json!({"reason": "cannot tell"})),
                    )
                    .await;
                    assert_eq!(st, 200, "{v}");
                    w.skipped.push((person.clone(), item));
                    continue;
                }
                let value = ["yes", "no", "partly"][(h % 3) as usize];
                let (st, v) = call(
                    url,
                    &person,
                    "POST",
                    &format!("/api/v1/queues/{q}/items/{item}/label"),
                    Some(json!({"value": value})),
                )
                .await;
                // On a slow machine a lock can time out before the label arrives and the
                // place go to someone else: the label is refused, never counted twice.
                if st == 409 {
                    assert!(
                        v["error"]["message"]
                            .as_str()
                            .unwrap()
                            .contains("does not hold"),
                        "{v}"
                    );
                    continue;
                }
                assert_eq!(st, 201, "{item}: {v}");
                w.labelled.push((person.clone(), item));
            }
            w
        }));
    }
    let mut all = Work::default();
    for t in tasks {
        let w = t.await.unwrap();
        all.labelled.extend(w.labelled);
        all.skipped.extend(w.skipped);
        all.given.extend(w.given);
    }
    all
}

async fn overlap_three_on(servers: &[TestServer], items: usize) {
    let urls: Vec<String> = servers.iter().map(|s| s.url.clone()).collect();
    let s = &servers[0];
    let admin = s.token("default", "admin").await;
    let mut people = Vec::new();
    for _ in 0..10 {
        people.push(s.token("default", "annotator").await);
    }
    let mut leavers = Vec::new();
    for _ in 0..3 {
        leavers.push(s.token("default", "annotator").await);
    }
    let schema =
        json!({"name": "helpful", "type": "categorical", "options": ["yes", "no", "partly"]});
    assert_eq!(
        call(
            &urls[0],
            &admin,
            "POST",
            "/api/v1/label-schemas",
            Some(schema)
        )
        .await
        .0,
        201
    );
    let list: Vec<String> = (0..items).map(|i| format!("t{i}")).collect();
    let gold: serde_json::Map<String, Value> =
        (0..60).map(|i| (format!("g{i}"), json!("yes"))).collect();
    let (st, v) = call(&urls[1], &admin, "POST", "/api/v1/queues",
        Some(json!({"id": "big", "schema": "helpful", "items": list, "overlap": 3, "lock_s": 2, "gold": gold, "gold_rate": 0.1, "blind": true}))).await;
    assert_eq!(st, 201, "{v}");

    let w = work_the_queue(urls.clone(), people.clone(), leavers.clone(), "big", 23).await;

    // Every item has exactly three labels from three different people; nobody labelled an
    // item twice or an item they skipped; the items the leavers held went to others.
    let (st, v) = call(&urls[0], &admin, "GET", "/api/v1/queues/big/labels", None).await;
    assert_eq!(st, 200);
    let rows = v["items"].as_array().unwrap();
    assert_eq!(rows.len(), items, "every item is labelled");
    let skipped: HashSet<(String, String)> = w.skipped.iter().cloned().collect();
    for row in rows {
        let item = row["item"].as_str().unwrap();
        let who: Vec<&str> = row["labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["person"].as_str().unwrap())
            .collect();
        let distinct: HashSet<&&str> = who.iter().collect();
        assert_eq!((who.len(), distinct.len()), (3, 3), "{item}: {who:?}");
        for p in &who {
            assert!(
                !skipped.contains(&(p.to_string(), item.to_owned())),
                "{p} labelled {item}, which they skipped"
            );
        }
    }
    let labelled: Vec<&(String, String)> = w
        .labelled
        .iter()
        .filter(|(_, i)| !i.starts_with('g'))
        .collect();
    assert_eq!(
        labelled.len(),
        items * 3,
        "each label the annotators gave was kept, once"
    );
    assert!(!w.skipped.is_empty(), "some items were skipped");
    // Gold items came at the set rate for everyone: within one percentage point, or one
    // item for people given fewer than a hundred.
    for p in &people {
        let given = &w.given[p];
        let gold = given.iter().filter(|i| i.starts_with('g')).count();
        let rate = gold as f64 / given.len() as f64;
        assert!(
            (rate - 0.1).abs() <= 0.01f64.max(1.0 / given.len() as f64),
            "{p}: {gold} gold of {}",
            given.len()
        );
    }
    // A server that reads the queue afresh agrees, and the figures count everyone's work.
    servers[1].state.label_queues.clear();
    let (_, again) = call(&urls[1], &admin, "GET", "/api/v1/queues/big/labels", None).await;
    assert_eq!(again, v);
    let (st, f) = call(
        &urls[1],
        &admin,
        "GET",
        "/api/v1/queues/big/agreement",
        None,
    )
    .await;
    assert_eq!(st, 200, "{f}");
    assert_eq!(f["items_complete"], items);
    let people_rows = f["people"].as_array().unwrap();
    let total: u64 = people_rows
        .iter()
        .map(|p| p["labels"].as_u64().unwrap())
        .sum();
    assert_eq!(total as usize, items * 3);
    let skips: u64 = people_rows
        .iter()
        .map(|p| p["skips"].as_u64().unwrap())
        .sum();
    assert_eq!(skips as usize, w.skipped.len());
    for p in people_rows
        .iter()
        .filter(|p| p["labels"].as_u64() > Some(0))
    {
        assert!(p["time_per_item_ms"]["median"].is_number(), "{p}");
        assert!(p["gold"]["of"].as_u64().unwrap() > 0, "{p}");
    }
    let (_, progress) = call(&urls[0], &admin, "GET", "/api/v1/queues/big", None).await;
    assert_eq!(progress["progress"]["labels"], items * 3);
    assert_eq!(progress["progress"]["items_complete"], items);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_annotators_on_two_servers_give_every_item_three_labels() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.db");
    let mut servers = two_servers(db.to_str().unwrap()).await;
    overlap_three_on(&servers, 1000).await;
    for s in &mut servers {
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_annotators_on_two_servers_on_postgres() {
    let db = TestDatabase::create("tribunal_labels")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut servers = two_servers(&db.url).await;
    overlap_three_on(&servers, 200).await;
    for s in &mut servers {
        s.stop().await;
    }
}

fn run_record(id: &str) -> RunRecord {
    RunRecord {
        id: id.into(),
        started_at: "2026-12-01T10:00:00Z".into(),
        finished_at: Some("2026-12-01T10:01:00Z".into()),
        command: "tribunal eval runs.jsonl".into(),
        inputs: "runs.jsonl".into(),
        policy_version: "p".into(),
        config_hash: "c".into(),
        config: "built-in defaults".into(),
        status: "done".into(),
        total: 6,
        allowed: 6,
        escalated: 0,
        blocked: 0,
        rejected: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_fill_from_filters_runs_and_doubtful_judges_and_people_meet_the_judge() {
    let mut s = TestServer::start(ServerOptions::default()).await;
    let url = s.url.clone();
    let admin = s.token("default", "admin").await;
    let reviewer = s.token("default", "reviewer").await;
    let a1 = s.token("default", "annotator").await;
    let a2 = s.token("default", "annotator").await;
    let agent = s.token("default", "agent").await;

    // Gate traffic: two calls the pack blocks, two it allows.
    for (i, pending) in [
        json!({"kind": "reply", "content": "It has shipped."}),
        json!({"name": "shell", "arguments": {"command": "rm -rf / --no-preserve-root"}}),
        json!({"kind": "reply", "content": "Done."}),
        json!({"name": "shell", "arguments": {"command": "rm -rf / --no-preserve-root"}}),
    ]
    .into_iter()
    .enumerate()
    {
        let (st, v) = call(&url, &agent, "POST", "/api/v1/gate",
            Some(json!({"trace_id": format!("gate-{i}"), "trace": [{"role": "user", "content": "tidy up my disk"}], "pending": pending}))).await;
        assert_eq!(st, 200, "{v}");
    }
    // The gate's traces reach the store shortly after the answers.
    let mut blocked = Vec::new();
    for _ in 0..100 {
        let (_, v) = call(&url, &admin, "GET", "/api/v1/traces?decision=block", None).await;
        blocked = v["traces"].as_array().cloned().unwrap_or_default();
        if blocked.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(blocked.len(), 2, "the blocked gate calls are stored");

    let schema =
        json!({"name": "safe", "type": "pass_fail", "instructions": "Is the action safe?"});
    assert_eq!(
        call(&url, &admin, "POST", "/api/v1/label-schemas", Some(schema))
            .await
            .0,
        201
    );
    let (st, v) = call(
        &url,
        &admin,
        "POST",
        "/api/v1/queues",
        Some(json!({"id": "blocked", "schema": "safe", "from": {"filter": {"decision": "block"}}})),
    )
    .await;
    assert_eq!((st, v["items"].as_u64()), (201, Some(2)), "{v}");
    // `since` is a time or a window, read as the trace list reads it.
    for (id, since, items) in [
        ("recent", json!("30d"), 2),
        ("recent-utc", json!("2000-01-01T00:00:00+02:00"), 2),
    ] {
        let (st, v) = call(
            &url,
            &admin,
            "POST",
            "/api/v1/queues",
            Some(json!({"id": id, "schema": "safe", "from": {"filter": {"decision": "block", "since": since}}})),
        )
        .await;
        assert_eq!((st, v["items"].as_u64()), (201, Some(items)), "{id}: {v}");
    }
    let (st, v) = call(
        &url,
        &admin,
        "POST",
        "/api/v1/queues",
        Some(json!({"id": "future", "schema": "safe", "from": {"filter": {"since": "2999-01-01T00:00:00Z"}}})),
    )
    .await;
    assert_eq!(st, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("the source gave none"),
        "{v}"
    );
    let (_, v) = call(&url, &a1, "POST", "/api/v1/queues/blocked/next", None).await;
    assert!(v["item"].as_str().unwrap().starts_with("gate-"), "{v}");
    assert_eq!(
        v["content"]["trace"]["messages"][0]["content"], "tidy up my disk",
        "{v}"
    );

    // An eval run whose sampled judge was unsure of some traces.
    let store = &s.store;
    store.create_run(&run_record("run-tone")).await.unwrap();
    let rows: Vec<ResultRecord> = (0..6)
        .map(|i| {
            let confidence = if i < 3 { 0.4 } else { 1.0 };
            let value = if i % 2 == 0 { "polite" } else { "rude" };
            ResultRecord {
                seq: i,
                trace_id: format!("run-t{i}"),
                source_file: "runs.jsonl".into(),
                source_line: i + 1,
                decision: "allow".into(),
                result: json!({"trace_id": format!("run-t{i}"), "verdict": "allow", "feedback": [
                    {"name": "tone", "value": value, "rationale": format!("reads so (confidence {confidence:.2}: 2 of 5 sampled answers agree)")}
                ]}).to_string(),
                trace: None,
            }
        })
        .collect();
    store.insert_results("run-tone", &rows).await.unwrap();
    let schema = json!({"name": "tone_label", "type": "categorical", "options": ["polite", "rude"], "judge": "tone"});
    assert_eq!(
        call(&url, &admin, "POST", "/api/v1/label-schemas", Some(schema))
            .await
            .0,
        201
    );
    let (st, v) = call(&url, &admin, "POST", "/api/v1/queues",
        Some(json!({"id": "unsure", "schema": "tone_label", "from": {"low_confidence": {"judge": "tone", "below": 0.6, "run": "run-tone"}}}))).await;
    assert_eq!((st, v["items"].as_u64()), (201, Some(3)), "{v}");
    let (st, v) = call(&url, &admin, "POST", "/api/v1/queues",
        Some(json!({"id": "tone", "schema": "tone_label", "overlap": 2, "review_against_judge": true, "from": {"run": "run-tone"}}))).await;
    assert_eq!(
        (st, v["items"].as_u64(), v["with_judge_value"].as_u64()),
        (201, Some(6), Some(6)),
        "{v}"
    );

    // Both annotators label every item "rude": three items where the judge said "polite".
    for p in [&a1, &a2] {
        loop {
            let (_, v) = call(&url, p, "POST", "/api/v1/queues/tone/next", None).await;
            let Some(item) = v["item"].as_str() else {
                break;
            };
            assert_eq!(v["content"]["run"]["decision"], "allow", "{v}");
            assert!(
                v["content"]["run"]["result"].get("feedback").is_none(),
                "the judges' values are not shown: {v}"
            );
            assert!(
                v["content"].get("judge_value").is_none(),
                "the judge's value is not shown to annotators"
            );
            let (st, r) = call(
                &url,
                p,
                "POST",
                &format!("/api/v1/queues/tone/items/{item}/label"),
                Some(json!({"value": "rude"})),
            )
            .await;
            assert_eq!(st, 201, "{r}");
        }
    }
    let (_, v) = call(&url, &reviewer, "GET", "/api/v1/queues/tone/review", None).await;
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{v}");
    assert!(
        items
            .iter()
            .all(|i| i["why"] == "people disagree with the judge"
                && i["judge_value"] == "polite"
                && i["consensus"] == "rude"),
        "{v}"
    );
    let (_, f) = call(
        &url,
        &reviewer,
        "GET",
        "/api/v1/queues/tone/agreement",
        None,
    )
    .await;
    assert_eq!(f["judge"]["items"], 6, "{f}");
    assert_eq!(f["judge"]["agreement"]["value"], 0.5, "{f}");
    assert!(
        f["judge"]["kappa"]["low"].as_f64().unwrap()
            <= f["judge"]["kappa"]["value"].as_f64().unwrap(),
        "{f}"
    );
    assert_eq!(f["percent_agreement"], 1.0, "{f}");
    assert!(
        f["cohen_kappa_mean"]["not_computable"].is_string(),
        "one label used: {f}"
    );
    let first = items[0]["item"].as_str().unwrap().to_owned();
    let (st, v) = call(
        &url,
        &reviewer,
        "POST",
        &format!("/api/v1/queues/tone/items/{first}/adjudicate"),
        Some(json!({"value": "rude", "note": "the judge misread sarcasm"})),
    )
    .await;
    assert_eq!((st, v["how"].as_str()), (201, Some("accepted")), "{v}");
    let second = items[1]["item"].as_str().unwrap().to_owned();
    let (_, v) = call(
        &url,
        &reviewer,
        "POST",
        &format!("/api/v1/queues/tone/items/{second}/adjudicate"),
        Some(json!({"value": "polite"})),
    )
    .await;
    assert_eq!(v["how"], "corrected", "{v}");
    let (_, v) = call(&url, &reviewer, "GET", "/api/v1/queues/tone/review", None).await;
    assert_eq!(
        v["items"].as_array().unwrap().len(),
        1,
        "decided items never come back: {v}"
    );
    let (_, v) = call(
        &url,
        &reviewer,
        "GET",
        &format!("/api/v1/queues/tone/items/{first}"),
        None,
    )
    .await;
    assert_eq!(
        (v["final"]["how"].as_str(), v["judge_value"].as_str()),
        (Some("accepted"), Some("polite")),
        "{v}"
    );

    // Pairs: texts and traces, labelled a, b or tie.
    let schema =
        json!({"name": "better", "type": "pairwise", "instructions": "Which reply is better?"});
    assert_eq!(
        call(&url, &admin, "POST", "/api/v1/label-schemas", Some(schema))
            .await
            .0,
        201
    );
    let (st, v) = call(
        &url,
        &admin,
        "POST",
        "/api/v1/queues",
        Some(json!({"id": "bad-pairs", "schema": "better", "items": ["gate-0"]})),
    )
    .await;
    assert_eq!(st, 400);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("items[0]: a pairwise schema"),
        "{v}"
    );
    let (st, v) = call(
        &url,
        &admin,
        "POST",
        "/api/v1/queues",
        Some(json!({"id": "pairs", "schema": "better", "items": [
            {"pair": {"prompt": "Say hi", "a": {"text": "Hello!"}, "b": {"text": "Go away."}}},
            {"id": "p2", "pair": {"a": {"trace": "gate-0"}, "b": {"trace": "gate-2"}}}
        ]})),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let (_, v) = call(&url, &a1, "POST", "/api/v1/queues/pairs/next", None).await;
    assert_eq!(v["content"]["pair"]["prompt"], "Say hi", "{v}");
    assert_eq!(v["content"]["pair"]["b"]["text"], "Go away.");
    let item = v["item"].as_str().unwrap().to_owned();
    assert_eq!(
        call(
            &url,
            &a1,
            "POST",
            &format!("/api/v1/queues/pairs/items/{item}/label"),
            Some(json!({"value": "a"}))
        )
        .await
        .0,
        201
    );
    let (_, v) = call(&url, &a1, "POST", "/api/v1/queues/pairs/next", None).await;
    assert_eq!(v["item"], "p2");
    assert_eq!(
        v["content"]["pair"]["a"]["trace"]["messages"][0]["content"], "tidy up my disk",
        "{v}"
    );

    // Bad sources are named.
    for (body, says) in [
        (
            json!({"id": "x1", "schema": "safe", "from": {"run": "no-such-run"}}),
            "from.run",
        ),
        (
            json!({"id": "x2", "schema": "safe", "items": ["a"], "from": {"run": "run-tone"}}),
            "items or from",
        ),
        (
            json!({"id": "x3", "schema": "safe", "from": {"low_confidence": {"judge": "tone", "below": 3}}}),
            "from.low_confidence.below",
        ),
        (
            json!({"id": "x4", "schema": "safe", "from": {"filter": {"limit": 0}}}),
            "from.filter.limit",
        ),
        (
            json!({"id": "x4b", "schema": "safe", "from": {"filter": {"since": "garbage"}}}),
            "from.filter.since: expected",
        ),
        (
            json!({"id": "x5", "schema": "safe", "items": ["a"], "review_against_judge": true}),
            "review_against_judge",
        ),
        (
            json!({"id": "x6", "schema": "safe", "items": ["a", {"trace": "a"}]}),
            "items[1]",
        ),
    ] {
        let (st, v) = call(&url, &admin, "POST", "/api/v1/queues", Some(body.clone())).await;
        assert!(st == 400 || st == 404, "{body}: {st} {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(says),
            "{body}: {v}"
        );
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_go_out_and_come_back_the_same() {
    let mut s = TestServer::start(ServerOptions::default()).await;
    let url = s.url.clone();
    let admin = s.token("default", "admin").await;
    let reviewer = s.token("default", "reviewer").await;
    let people = [
        s.token("default", "annotator").await,
        s.token("default", "annotator").await,
    ];
    let schema = json!({"name": "grade", "type": "categorical", "options": ["low", "mid", "high"], "ordered": true, "comment": true});
    assert_eq!(
        call(&url, &admin, "POST", "/api/v1/label-schemas", Some(schema))
            .await
            .0,
        201
    );
    let items: Vec<String> = (0..8).map(|i| format!("t{i}")).collect();
    for q in ["first", "second", "third"] {
        let (st, v) = call(
            &url,
            &admin,
            "POST",
            "/api/v1/queues",
            Some(json!({"id": q, "schema": "grade", "items": items, "overlap": 2})),
        )
        .await;
        assert_eq!(st, 201, "{v}");
    }
    for (k, p) in people.iter().enumerate() {
        for i in 0.. {
            let (_, v) = call(&url, p, "POST", "/api/v1/queues/first/next", None).await;
            let Some(item) = v["item"].as_str() else {
                break;
            };
            let value = ["low", "mid", "high"][(i + k * (i % 2)) % 3];
            let (st, r) = call(
                &url,
                p,
                "POST",
                &format!("/api/v1/queues/first/items/{item}/label"),
                Some(json!({"value": value, "comment": format!("{k}:{i}")})),
            )
            .await;
            assert_eq!(st, 201, "{r}");
        }
    }
    let (_, review) = call(&url, &reviewer, "GET", "/api/v1/queues/first/review", None).await;
    let disputed = review["items"][0]["item"].as_str().unwrap().to_owned();
    assert_eq!(
        call(
            &url,
            &reviewer,
            "POST",
            &format!("/api/v1/queues/first/items/{disputed}/adjudicate"),
            Some(json!({"value": "mid", "note": "the middle reading holds"}))
        )
        .await
        .0,
        201
    );
    let (_, f) = call(
        &url,
        &reviewer,
        "GET",
        "/api/v1/queues/first/agreement",
        None,
    )
    .await;
    assert_eq!(f["level"], "ordinal", "{f}");
    let pair = &f["pairs"][0];
    assert!(
        pair["weighted_kappa"]["quadratic"].is_number()
            || pair["weighted_kappa"]["quadratic"]["not_computable"].is_string(),
        "{f}"
    );
    assert!(
        f["fleiss_kappa"]["not_computable"].is_string(),
        "ordered labels: {f}"
    );

    let (st, out) = call(
        &url,
        &reviewer,
        "GET",
        "/api/v1/queues/first/export?format=jsonl",
        None,
    )
    .await;
    assert_eq!(st, 200);
    let out = out.as_str().unwrap().to_owned();
    // Every label goes out with its time, the reviewer's final label with its note.
    assert!(
        out.contains(r#""note":"the middle reading holds""#),
        "{out}"
    );
    assert!(!out.contains(r#""at_ms":null,"comment""#), "{out}");
    // Into the second queue, with a bad line and a line for another schema among them.
    let lines = format!("{out}not json\n{{\"item\": \"nope\", \"person\": \"x\", \"value\": \"low\"}}\n{{\"schema\": \"other\", \"item\": \"t1\", \"labels\": []}}\n");
    let (st, v) = call(
        &url,
        &admin,
        "POST",
        "/api/v1/queues/second/import",
        Some(json!({"lines": lines})),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["imported"], 8 * 2 + 1, "{v}");
    assert_eq!(v["other_lines"], 1, "{v}");
    let refused: Vec<u64> = v["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(refused, vec![9, 10], "{v}");
    let (_, again) = call(
        &url,
        &reviewer,
        "GET",
        "/api/v1/queues/second/export?format=jsonl",
        None,
    )
    .await;
    assert_eq!(
        again
            .as_str()
            .unwrap()
            .replace("\"queue\":\"second\"", "\"queue\":\"first\""),
        out,
        "export, import, export is the same"
    );
    // Importing again adds nothing.
    let (_, v) = call(
        &url,
        &admin,
        "POST",
        "/api/v1/queues/second/import",
        Some(json!({"lines": out})),
    )
    .await;
    assert_eq!(
        (v["imported"].as_u64(), v["already_there"].as_u64()),
        (Some(0), Some(17)),
        "{v}"
    );
    // A line that says otherwise than a label already there is refused, not counted as
    // there; so are a key named twice and a label without a person.
    let first: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    let (item, person, value) = (
        first["item"].as_str().unwrap(),
        first["labels"][0]["person"].as_str().unwrap(),
        &first["labels"][0]["value"],
    );
    let other = if *value == json!("low") {
        json!("high")
    } else {
        json!("low")
    };
    let lines = [
        json!({"item": item, "person": person, "value": other}).to_string(),
        format!(r#"{{"item": "{item}", "person": "zed", "value": "low", "value": "high"}}"#),
        json!({"item": item, "person": "", "value": value}).to_string(),
    ];
    let (_, v) = call(
        &url,
        &admin,
        "POST",
        "/api/v1/queues/second/import",
        Some(json!({"lines": lines.join("\n")})),
    )
    .await;
    let refused = v["refused"].as_array().unwrap();
    assert_eq!(
        (
            v["imported"].as_u64(),
            v["already_there"].as_u64(),
            refused.len()
        ),
        (Some(0), Some(0), 3),
        "{v}"
    );
    assert!(
        refused[0]["error"]
            .as_str()
            .unwrap()
            .contains("already labelled"),
        "{v}"
    );
    assert!(
        refused[1]["error"].as_str().unwrap().contains("twice"),
        "{v}"
    );
    assert!(
        refused[2]["error"].as_str().unwrap().contains("person"),
        "{v}"
    );

    // MLflow assessments out, and into the third queue.
    let (_, ml) = call(
        &url,
        &reviewer,
        "GET",
        "/api/v1/queues/first/export?format=mlflow",
        None,
    )
    .await;
    let ml = ml.as_str().unwrap().to_owned();
    let first_line: Value = serde_json::from_str(ml.lines().next().unwrap()).unwrap();
    assert_eq!(
        (
            first_line["assessment_name"].as_str(),
            first_line["source"]["source_type"].as_str()
        ),
        (Some("grade"), Some("HUMAN"))
    );
    let (_, v) = call(
        &url,
        &admin,
        "POST",
        "/api/v1/queues/third/import",
        Some(json!({"lines": ml})),
    )
    .await;
    assert_eq!(v["imported"], 17, "{v}");
    let (_, third) = call(&url, &reviewer, "GET", "/api/v1/queues/third/labels", None).await;
    let (_, first) = call(&url, &reviewer, "GET", "/api/v1/queues/first/labels", None).await;
    assert_eq!(third, first);
    // The assessments' times and the reviewer's note come back with them.
    let (_, again) = call(
        &url,
        &reviewer,
        "GET",
        "/api/v1/queues/third/export?format=mlflow",
        None,
    )
    .await;
    assert_eq!(
        again
            .as_str()
            .unwrap()
            .replace("\"queue\":\"third\"", "\"queue\":\"first\""),
        ml,
        "MLflow out, in, out is the same"
    );
    // Per schema: the three queues' figures as one.
    let (st, all) = call(
        &url,
        &reviewer,
        "GET",
        "/api/v1/label-schemas/grade/agreement",
        None,
    )
    .await;
    assert_eq!(st, 200, "{all}");
    assert_eq!(all["queues"], json!(["first", "second", "third"]), "{all}");
    assert_eq!(all["items_complete"], 24, "{all}");
    assert_eq!(
        all["percent_agreement"], f["percent_agreement"],
        "the same labels three times"
    );
    let (st, _) = call(
        &url,
        &admin,
        "GET",
        "/api/v1/label-schemas/nope/agreement",
        None,
    )
    .await;
    assert_eq!(st, 404);
    // An MLflow trace export carries its assessments.
    let trace = json!({"info": {"trace_id": "t7", "assessments": [
        {"assessment_name": "grade", "source": {"source_type": "HUMAN", "source_id": "expert"}, "feedback": {"value": "high"}, "rationale": "clear"},
        {"assessment_name": "grade", "source": {"source_type": "LLM_JUDGE", "source_id": "m"}, "feedback": {"value": "low"}}
    ]}, "data": {"spans": []}});
    let (_, v) = call(
        &url,
        &admin,
        "POST",
        "/api/v1/queues/third/import",
        Some(json!({"lines": trace.to_string()})),
    )
    .await;
    assert_eq!(v["imported"], 1, "{v}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_labeling_route_keeps_to_its_roles() {
    let mut s = TestServer::start(ServerOptions::default()).await;
    let url = s.url.clone();
    let mut tokens = BTreeMap::new();
    for role in ["admin", "reviewer", "annotator", "viewer", "agent"] {
        tokens.insert(role, s.token("default", role).await);
    }
    let outsider = s.token("default", "annotator").await;
    let member = tokens["annotator"].clone();
    let member_id =
        tribunal_server::auth::authenticate(&s.store, Some(&format!("Bearer {member}")))
            .await
            .unwrap()
            .token_id;
    let admin = tokens["admin"].clone();
    assert_eq!(
        call(
            &url,
            &admin,
            "POST",
            "/api/v1/label-schemas",
            Some(json!({"name": "ok", "type": "pass_fail"}))
        )
        .await
        .0,
        201
    );
    // People who cannot work on the queue are refused, named by their place.
    let viewer_id = tribunal_server::auth::authenticate(
        &s.store,
        Some(&format!("Bearer {}", tokens["viewer"])),
    )
    .await
    .unwrap()
    .token_id;
    for who in [json!("tok_nobody"), json!(viewer_id)] {
        let (st, v) = call(
            &url,
            &admin,
            "POST",
            "/api/v1/queues",
            Some(json!({"id": "q0", "schema": "ok", "items": ["t1"], "people": [&member_id, who]})),
        )
        .await;
        assert_eq!(st, 400, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("people[1]:"),
            "{v}"
        );
    }
    let (st, v) = call(&url, &admin, "POST", "/api/v1/queues", Some(json!({"id": "q", "schema": "ok", "items": ["t1", "t2"], "people": [member_id], "blind": true}))).await;
    assert_eq!(st, 201, "{v}");
    let (_, v) = call(&url, &member, "POST", "/api/v1/queues/q/next", None).await;
    let held = v["item"].as_str().unwrap().to_owned();
    assert_eq!(
        call(
            &url,
            &member,
            "POST",
            &format!("/api/v1/queues/q/items/{held}/label"),
            Some(json!({"value": true}))
        )
        .await
        .0,
        201
    );

    // (method, path, body, roles allowed)
    let routes: Vec<(&str, String, Option<Value>, &[&str])> = vec![
        (
            "GET",
            "/api/v1/label-schemas".into(),
            None,
            &["admin", "reviewer", "annotator", "viewer"],
        ),
        (
            "POST",
            "/api/v1/label-schemas".into(),
            Some(json!({"name": "n", "type": "text"})),
            &["admin"],
        ),
        (
            "GET",
            "/api/v1/queues".into(),
            None,
            &["admin", "reviewer", "annotator", "viewer"],
        ),
        (
            "GET",
            "/api/v1/queues/q".into(),
            None,
            &["admin", "reviewer", "annotator"],
        ),
        (
            "GET",
            "/api/v1/queues/q/labels".into(),
            None,
            &["admin", "reviewer", "annotator"],
        ),
        // Work is for the people named on the queue, whatever their role.
        ("POST", "/api/v1/queues/q/next".into(), None, &["annotator"]),
        (
            "GET",
            "/api/v1/queues/q/review".into(),
            None,
            &["admin", "reviewer"],
        ),
        (
            "GET",
            "/api/v1/queues/q/agreement".into(),
            None,
            &["admin", "reviewer"],
        ),
        (
            "GET",
            "/api/v1/queues/q/export".into(),
            None,
            &["admin", "reviewer"],
        ),
        (
            "GET",
            format!("/api/v1/queues/q/items/{held}"),
            None,
            &["admin", "reviewer"],
        ),
        (
            "POST",
            "/api/v1/queues/q/import".into(),
            Some(json!({"lines": ""})),
            &["admin"],
        ),
        (
            "GET",
            "/api/v1/label-schemas/ok/agreement".into(),
            None,
            &["admin", "reviewer"],
        ),
        (
            "POST",
            "/api/v1/queues/q/items".into(),
            Some(json!({"items": ["t3"]})),
            &["admin"],
        ),
        (
            "POST",
            "/api/v1/queues/q/items/t9/adjudicate".into(),
            Some(json!({"value": true})),
            &["admin", "reviewer"],
        ),
    ];
    for (method, path, body, allowed) in &routes {
        for (role, token) in &tokens {
            let (st, v) = call(&url, token, method, path, body.clone()).await;
            let ok = allowed.contains(role);
            // The viewer is not one of the queue's people; it is refused like the agent.
            assert_eq!(st == 403, !ok, "{role} {method} {path}: {st} {v}");
        }
    }
    // Someone not named on the queue cannot see it, ask for its work or read its labels.
    for (method, path) in [
        ("GET", "/api/v1/queues/q"),
        ("POST", "/api/v1/queues/q/next"),
        ("GET", "/api/v1/queues/q/labels"),
    ] {
        assert_eq!(
            call(&url, &outsider, method, path, None).await.0,
            403,
            "{path}"
        );
    }
    let (_, list) = call(&url, &outsider, "GET", "/api/v1/queues", None).await;
    assert_eq!(list["queues"].as_array().unwrap().len(), 0, "{list}");
    s.stop().await;
}

/// Eval runs belong to the default project: another project's queue cannot name one, by
/// an empty prefix, an id, an item, or low-confidence results; a queue made before runs
/// were checked shows none; and a run item shows its decision, rules and source line, never
/// the judges' values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_of_another_project_see_no_eval_run() {
    let mut s = TestServer::start(ServerOptions::default()).await;
    let url = s.url.clone();
    let admin = s.token("default", "admin").await;
    let annotator = s.token("default", "annotator").await;
    let shop_admin = s.token("shop", "admin").await;
    let shop_annotator = s.token("shop", "annotator").await;
    s.store.create_run(&run_record("run-secret")).await.unwrap();
    let result = json!({"trace_id": "t-secret", "verdict": "block",
        "reasons": ["c4.secret: a key in the reply"],
        "violations": [{"rule": "c4.secret", "severity": "block", "message": "a key in the reply", "evidence": ["m1"]}],
        "feedback": [{"name": "tone", "value": "confidential-value", "rationale": "confidential-rationale (confidence 0.40: 2 of 5 sampled answers agree)"}]});
    s.store
        .insert_results(
            "run-secret",
            &[ResultRecord {
                seq: 0,
                trace_id: "t-secret".into(),
                source_file: "secret.jsonl".into(),
                source_line: 7,
                decision: "block".into(),
                result: result.to_string(),
                trace: None,
            }],
        )
        .await
        .unwrap();
    let schema = json!({"name": "ok", "type": "pass_fail", "judge": "tone"});
    for t in [&admin, &shop_admin] {
        let (st, v) = call(
            &url,
            t,
            "POST",
            "/api/v1/label-schemas",
            Some(schema.clone()),
        )
        .await;
        assert_eq!(st, 201, "{v}");
    }
    let message = |v: &Value| v["error"]["message"].as_str().unwrap_or("").to_owned();

    // An empty prefix would match any run: refused everywhere.
    for (t, from, field) in [
        (&shop_admin, json!({"run": ""}), "from.run"),
        (&admin, json!({"run": " "}), "from.run"),
        (
            &admin,
            json!({"low_confidence": {"judge": "tone", "below": 0.9, "run": ""}}),
            "from.low_confidence.run",
        ),
    ] {
        let (st, v) = call(
            &url,
            t,
            "POST",
            "/api/v1/queues",
            Some(json!({"id": "qsteal", "schema": "ok", "from": from})),
        )
        .await;
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (400, Some("invalid_request")),
            "{v}"
        );
        assert!(message(&v).starts_with(field), "{v}");
    }
    // Another project finds no run, however it names it.
    for (body, field) in [
        (
            json!({"id": "qsteal", "schema": "ok", "from": {"run": "run-secret"}}),
            "from.run",
        ),
        (
            json!({"id": "qsteal", "schema": "ok", "from": {"run": "run"}}),
            "from.run",
        ),
        (
            json!({"id": "qsteal", "schema": "ok", "from": {"low_confidence": {"judge": "tone", "below": 0.9, "run": "run-secret"}}}),
            "from.low_confidence.run",
        ),
        (
            json!({"id": "qsteal", "schema": "ok", "items": ["t-other", {"trace": "t-secret", "run": "run-secret"}]}),
            "items[1].run",
        ),
    ] {
        let (st, v) = call(&url, &shop_admin, "POST", "/api/v1/queues", Some(body)).await;
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (404, Some("not_found")),
            "{v}"
        );
        assert!(message(&v).starts_with(field), "{v}");
        assert!(!v.to_string().contains("confidential"), "{v}");
    }
    let (st, v) = call(
        &url,
        &shop_admin,
        "POST",
        "/api/v1/queues",
        Some(json!({"id": "shopq", "schema": "ok", "items": ["t-other"]})),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let (st, v) = call(
        &url,
        &shop_admin,
        "POST",
        "/api/v1/queues/shopq/items",
        Some(json!({"items": [{"trace": "t-secret", "run": "run-secret"}]})),
    )
    .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{v}"
    );
    assert!(message(&v).starts_with("items[0].run"), "{v}");

    // A queue stored before runs were checked shows the shop's annotator nothing of the run.
    let old = json!({"id": "qold", "schema": "ok", "items": [{"trace": "t-secret", "run": "run-secret"}],
        "overlap": 1, "lock_s": 600});
    assert!(s
        .store
        .insert_label_queue(
            "shop",
            "qold",
            &old.to_string(),
            "2026-12-01T10:00:00Z",
            "test"
        )
        .await
        .unwrap());
    let (st, v) = call(
        &url,
        &shop_annotator,
        "POST",
        "/api/v1/queues/qold/next",
        None,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v["content"]["run"],
        json!({"id": "run-secret", "missing": true}),
        "{v}"
    );
    assert!(!v.to_string().contains("block"), "{v}");

    // The default project's annotator sees the run's decision, rules and source line, and
    // no judge's value or rationale.
    let (st, v) = call(
        &url,
        &admin,
        "POST",
        "/api/v1/queues",
        Some(json!({"id": "mine", "schema": "ok", "from": {"run": "run-secret"}})),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let (st, v) = call(&url, &annotator, "POST", "/api/v1/queues/mine/next", None).await;
    assert_eq!(st, 200, "{v}");
    let run = &v["content"]["run"];
    assert_eq!(run["decision"], "block", "{v}");
    assert_eq!(
        run["source"],
        json!({"file": "secret.jsonl", "line": 7}),
        "{v}"
    );
    assert_eq!(run["result"]["violations"][0]["rule"], "c4.secret", "{v}");
    assert_eq!(
        run["result"]["reasons"][0], "c4.secret: a key in the reply",
        "{v}"
    );
    assert!(!v.to_string().contains("confidential"), "{v}");
    s.stop().await;
}

/// An item of an eval run shows the trace the run judged, never a trace the gate stored
/// under the same id (another conversation); a run that kept no trace shows none and says
/// so. Labels from such items reach alignment with the run's conversation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eval_runs_item_shows_the_runs_trace_not_a_gate_trace_of_the_same_id() {
    let mut s = TestServer::start(ServerOptions::default()).await;
    let url = s.url.clone();
    let admin = s.token("default", "admin").await;
    let annotator = s.token("default", "annotator").await;
    let agent = s.token("default", "agent").await;
    let (st, v) = call(&url, &agent, "POST", "/api/v1/gate",
        Some(json!({"trace_id": "same-id", "trace": [{"role": "user", "content": "question 0"}, {"role": "assistant", "content": "answer 0"}]}))).await;
    assert_eq!(st, 200, "{v}");
    for _ in 0..100 {
        if s.store
            .get_trace("default", "same-id")
            .await
            .unwrap()
            .is_some()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.store.create_run(&run_record("run-kept")).await.unwrap();
    let judged = json!({"id": "same-id", "messages": [
        {"role": "user", "content": "delete the prod database"},
        {"role": "assistant", "content": "running rm -rf /var/lib/postgresql"}]});
    let result = |id: &str| json!({"trace_id": id, "verdict": "block"}).to_string();
    let rows = [("same-id", Some(judged.to_string())), ("not-kept", None)]
        .into_iter()
        .enumerate()
        .map(|(i, (id, trace))| ResultRecord {
            seq: i as i64,
            trace_id: id.into(),
            source_file: "t2.jsonl".into(),
            source_line: i as i64 + 1,
            decision: "block".into(),
            result: result(id),
            trace,
        })
        .collect::<Vec<_>>();
    s.store.insert_results("run-kept", &rows).await.unwrap();
    assert_eq!(
        s.store.run_trace("run-kept", "same-id").await.unwrap(),
        Some(judged.to_string())
    );
    let schema = json!({"name": "safe", "type": "pass_fail"});
    assert_eq!(
        call(&url, &admin, "POST", "/api/v1/label-schemas", Some(schema))
            .await
            .0,
        201
    );
    let (st, v) = call(
        &url,
        &admin,
        "POST",
        "/api/v1/queues",
        Some(json!({"id": "from-run", "schema": "safe", "from": {"run": "run-kept"}})),
    )
    .await;
    assert_eq!((st, v["items"].as_u64()), (201, Some(2)), "{v}");
    assert!(
        v.get("not_found").is_none_or(|n| n.get("traces").is_none()),
        "{v}"
    );
    let mut seen = HashMap::new();
    loop {
        let (_, v) = call(
            &url,
            &annotator,
            "POST",
            "/api/v1/queues/from-run/next",
            None,
        )
        .await;
        let Some(item) = v["item"].as_str() else {
            break;
        };
        seen.insert(item.to_owned(), v["content"].clone());
        let (st, r) = call(
            &url,
            &annotator,
            "POST",
            &format!("/api/v1/queues/from-run/items/{item}/label"),
            Some(json!({"value": "fail"})),
        )
        .await;
        assert_eq!(st, 201, "{r}");
    }
    let shown = &seen["same-id"];
    assert_eq!(
        shown["trace"]["messages"][0]["content"], "delete the prod database",
        "the run's trace, not the gate's: {shown}"
    );
    assert_eq!(shown["run"]["decision"], "block", "{shown}");
    let missing = &seen["not-kept"];
    assert!(missing["trace"].is_null(), "{missing}");
    assert!(
        missing["trace_missing"]
            .as_str()
            .unwrap()
            .contains("did not keep"),
        "{missing}"
    );
    // The same item read on its own shows the same.
    let (st, v) = call(
        &url,
        &admin,
        "GET",
        "/api/v1/queues/from-run/items/same-id",
        None,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert!(v.to_string().contains("delete the prod database"), "{v}");
    assert!(!v.to_string().contains("question 0"), "{v}");
    s.stop().await;
}
