//! Labeling over the API: schemas, a queue with overlap 3 worked by six annotators at once
//! (every item ends with three labels from three people), blind mode, skips, review and
//! adjudication, agreement figures, the role matrix, bad input, and a queue read back from
//! the store.

mod common;

use common::{call, TestServer};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use tribunal_server::ServerOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_annotators_label_a_queue_with_overlap_three() {
    let mut s = TestServer::start(ServerOptions::default()).await;
    let admin = s.token("default", "admin").await;
    let reviewer = s.token("default", "reviewer").await;
    let viewer = s.token("default", "viewer").await;
    let agent = s.token("default", "agent").await;
    let mut annotators = Vec::new();
    for _ in 0..6 {
        annotators.push(s.token("default", "annotator").await);
    }
    let schema = json!({"name": "helpful", "type": "categorical", "options": ["yes", "no", "partly"], "instructions": "Was the reply helpful?"});
    assert_eq!(
        call(
            &s.url,
            &annotators[0],
            "POST",
            "/api/v1/label-schemas",
            Some(schema.clone())
        )
        .await
        .0,
        403
    );
    assert_eq!(
        call(
            &s.url,
            &admin,
            "POST",
            "/api/v1/label-schemas",
            Some(schema.clone())
        )
        .await
        .0,
        201
    );
    assert_eq!(
        call(
            &s.url,
            &admin,
            "POST",
            "/api/v1/label-schemas",
            Some(schema)
        )
        .await
        .0,
        409
    );
    let (st, v) = call(
        &s.url,
        &admin,
        "POST",
        "/api/v1/label-schemas",
        Some(json!({"name": "x", "type": "categorical", "options": ["one"]})),
    )
    .await;
    assert_eq!(st, 400);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("options"),
        "{v}"
    );
    // A field that no schema of its type has is refused, not dropped.
    let (st, v) = call(
        &s.url,
        &admin,
        "POST",
        "/api/v1/label-schemas",
        Some(json!({"name": "y", "type": "text", "min": 1})),
    )
    .await;
    assert_eq!(st, 400);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("min: not a field of a text label schema"),
        "{v}"
    );

    let items: Vec<String> = (0..60).map(|i| format!("t{i}")).collect();
    let gold: serde_json::Map<String, Value> =
        (0..5).map(|i| (format!("g{i}"), json!("yes"))).collect();
    let queue = json!({"id": "q1", "schema": "helpful", "items": items, "overlap": 3, "blind": true, "gold": gold, "gold_rate": 0.1});
    assert_eq!(
        call(
            &s.url,
            &admin,
            "POST",
            "/api/v1/queues",
            Some(queue.clone())
        )
        .await
        .0,
        201
    );
    assert_eq!(
        call(&s.url, &admin, "POST", "/api/v1/queues", Some(queue))
            .await
            .0,
        409
    );
    assert_eq!(
        call(
            &s.url,
            &admin,
            "POST",
            "/api/v1/queues",
            Some(json!({"id": "q2", "schema": "nope", "items": ["a"]}))
        )
        .await
        .0,
        404
    );
    assert_eq!(
        call(
            &s.url,
            &admin,
            "POST",
            "/api/v1/queues",
            Some(json!({"id": "q2", "schema": "helpful", "items": []}))
        )
        .await
        .0,
        400
    );
    // A lock time outside 1 second to 7 days is refused, naming the field.
    for lock_s in [
        json!(0),
        json!(9_223_372_036_854_775u64),
        json!(7 * 86_400 + 1),
    ] {
        let (st, v) = call(
            &s.url,
            &admin,
            "POST",
            "/api/v1/queues",
            Some(json!({"id": "qlock", "schema": "helpful", "items": ["a"], "lock_s": lock_s})),
        )
        .await;
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (400, Some("invalid_request")),
            "{v}"
        );
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("lock_s:"),
            "{v}"
        );
    }
    // A member of the wrong type is named, at any depth.
    for (body, at) in [
        (
            json!({"id": "qt", "schema": "helpful", "items": ["a"], "overlap": "2"}),
            "overlap: invalid type",
        ),
        (
            json!({"id": "qt", "schema": "helpful", "items": [{"id": "x", "trace": 5}]}),
            "items",
        ),
        (
            json!({"id": "qt", "schema": "helpful", "from": {"filter": {"limit": "ten"}}}),
            "from.filter.limit: invalid type",
        ),
    ] {
        let (st, v) = call(&s.url, &admin, "POST", "/api/v1/queues", Some(body.clone())).await;
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (400, Some("invalid_request")),
            "{body}: {v}"
        );
        assert!(
            v["error"]["message"].as_str().unwrap().starts_with(at),
            "{body}: {v}"
        );
    }
    assert_eq!(
        call(&s.url, &viewer, "POST", "/api/v1/queues/q1/next", None)
            .await
            .0,
        403
    );
    assert_eq!(
        call(&s.url, &agent, "GET", "/api/v1/queues", None).await.0,
        403
    );
    assert_eq!(
        call(
            &s.url,
            &annotators[0],
            "POST",
            "/api/v1/queues/nope/next",
            None
        )
        .await
        .0,
        404
    );
    assert_eq!(
        call(
            &s.url,
            &annotators[0],
            "POST",
            "/api/v1/queues/q1/items/t1/label",
            Some(json!({"value": "yes"}))
        )
        .await
        .0,
        409,
        "not held"
    );

    // Six people at once; each labels by a rule of their own; two of them skip every seventh
    // item (so every item still has three people left for it).
    let mut tasks = Vec::new();
    for (n, token) in annotators.iter().enumerate() {
        let (url, token) = (s.url.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let c = TestServer::client();
            let mut done = 0;
            for step in 0.. {
                let v: Value = c
                    .post(format!("{url}/api/v1/queues/q1/next"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                if v["done"] == true {
                    break;
                }
                if v["wait_until_ms"].is_number() {
                    // Items held by others may come free.
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
                let item = v["item"].as_str().unwrap().to_owned();
                if n < 2 && step % 7 == 6 && !item.starts_with('g') {
                    let r = c
                        .post(format!("{url}/api/v1/queues/q1/items/{item}/skip"))
                        .bearer_auth(&token)
                        .json(&json!({"reason": "not sure"}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                    continue;
                }
                let value = if item.starts_with('g') {
                    "yes"
                } else if (n + item.len()).is_multiple_of(3) {
                    "no"
                } else {
                    "yes"
                };
                let r = c
                    .post(format!("{url}/api/v1/queues/q1/items/{item}/label"))
                    .bearer_auth(&token)
                    .json(&json!({"value": value}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201, "{item}: {}", r.text().await.unwrap());
                done += 1;
            }
            done
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap() > 0);
    }
    let (_, all) = call(&s.url, &reviewer, "GET", "/api/v1/queues/q1/labels", None).await;
    let items = all["items"].as_array().unwrap();
    assert_eq!(items.len(), 60);
    for it in items {
        let people: HashSet<&str> = it["labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["person"].as_str().unwrap())
            .collect();
        assert_eq!(
            (people.len(), it["labels"].as_array().unwrap().len()),
            (3, 3),
            "{it}"
        );
    }

    // Blind: an annotator's view holds only their own labels.
    let (_, mine) = call(
        &s.url,
        &annotators[0],
        "GET",
        "/api/v1/queues/q1/labels",
        None,
    )
    .await;
    let (me, _) = {
        let (_, who) = call(&s.url, &annotators[0], "GET", "/api/v1/session", None).await;
        (who["token_id"].as_str().unwrap().to_owned(), ())
    };
    for it in mine["items"].as_array().unwrap() {
        for l in it["labels"].as_array().unwrap() {
            assert_eq!(l["person"], me.as_str());
        }
        assert!(it["final"].is_null());
    }
    let bad = call(
        &s.url,
        &annotators[0],
        "POST",
        "/api/v1/queues/q1/next",
        None,
    )
    .await;
    assert_eq!(bad.1["done"], true);

    // Review: disagreements go to a reviewer; adjudication is final.
    assert_eq!(
        call(
            &s.url,
            &annotators[0],
            "GET",
            "/api/v1/queues/q1/review",
            None
        )
        .await
        .0,
        403
    );
    let (_, rv) = call(&s.url, &reviewer, "GET", "/api/v1/queues/q1/review", None).await;
    let disputed = rv["items"].as_array().unwrap();
    assert!(!disputed.is_empty(), "{rv}");
    let first = disputed[0]["item"].as_str().unwrap().to_owned();
    assert_eq!(
        call(
            &s.url,
            &reviewer,
            "POST",
            &format!("/api/v1/queues/q1/items/{first}/adjudicate"),
            Some(json!({"value": "maybe"}))
        )
        .await
        .0,
        400
    );
    assert_eq!(
        call(
            &s.url,
            &reviewer,
            "POST",
            &format!("/api/v1/queues/q1/items/{first}/adjudicate"),
            Some(json!({"value": "no"}))
        )
        .await
        .0,
        201
    );
    assert_eq!(
        call(
            &s.url,
            &reviewer,
            "POST",
            &format!("/api/v1/queues/q1/items/{first}/adjudicate"),
            Some(json!({"value": "yes"}))
        )
        .await
        .0,
        409
    );
    let (_, rv2) = call(&s.url, &reviewer, "GET", "/api/v1/queues/q1/review", None).await;
    assert_eq!(rv2["items"].as_array().unwrap().len(), disputed.len() - 1);

    // Agreement and gold.
    let (st, ag) = call(
        &s.url,
        &reviewer,
        "GET",
        "/api/v1/queues/q1/agreement",
        None,
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(ag["items_complete"], 60);
    assert!(
        ag["krippendorff_alpha"].is_number() && ag["fleiss_kappa"].is_number(),
        "{ag}"
    );
    assert!(
        ag["people"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["gold"]["right"].as_u64() > Some(0)),
        "{ag}"
    );

    // Export: one line per item with its final label (adjudicated or unanimous), and MLflow
    // assessments with a HUMAN source.
    let c = TestServer::client();
    let export = |format: &str| {
        c.get(format!("{}/api/v1/queues/q1/export?format={format}", s.url))
            .bearer_auth(&reviewer)
            .send()
    };
    let jsonl = export("jsonl").await.unwrap().text().await.unwrap();
    let rows: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 60);
    let adjudicated = rows.iter().find(|r| r["item"] == first.as_str()).unwrap();
    assert_eq!(adjudicated["final"]["how"], "adjudicated", "{adjudicated}");
    assert!(
        rows.iter().any(|r| r["final"]["how"] == "unanimous"),
        "{jsonl}"
    );
    assert!(rows
        .iter()
        .all(|r| r["final"].is_null() || r["final"]["value"].is_string()));
    // The skips go with their items, each with its person and reason.
    let skipped: Vec<&Value> = rows
        .iter()
        .flat_map(|r| r["skips"].as_array().unwrap())
        .collect();
    assert!(!skipped.is_empty(), "{jsonl}");
    assert!(
        skipped
            .iter()
            .all(|s| s["reason"].is_string() && s["person"].is_string() && s["at_ms"].is_i64()),
        "{skipped:?}"
    );
    let mlflow = export("mlflow").await.unwrap().text().await.unwrap();
    let assessments: Vec<Value> = mlflow
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(assessments.len(), 181, "180 labels and one final label");
    assert!(assessments
        .iter()
        .all(|a| a["source"]["source_type"] == "HUMAN" && a["assessment_name"] == "helpful"));
    assert_eq!(export("csv").await.unwrap().status(), 400);
    let r = c
        .get(format!("{}/api/v1/queues/q1/export", s.url))
        .bearer_auth(&annotators[0])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // Read back from the store: the same labels and the final one.
    s.state.label_queues.clear();
    let (_, again) = call(&s.url, &reviewer, "GET", "/api/v1/queues/q1/labels", None).await;
    let again = again["items"].as_array().unwrap();
    let sorted = |v: &Value| {
        let mut l: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.to_string())
            .collect();
        l.sort();
        l
    };
    for (x, y) in again.iter().zip(all["items"].as_array().unwrap()) {
        assert_eq!(x["item"], y["item"]);
        assert_eq!(sorted(&x["labels"]), sorted(&y["labels"]));
    }
    let fin = again.iter().find(|x| x["item"] == first.as_str()).unwrap();
    assert_eq!(fin["final"]["value"], "no", "{fin}");
    s.stop().await;
}

/// The labels a judge is aligned on: a `yes_no` judge's answers fit a `pass_fail` schema,
/// and a trace labelled in several queues tied to the judge counts once (twice the same:
/// once; two different labels: left out, counted), so it cannot fall in both the train and
/// the held-out part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_labelled_in_two_queues_is_one_label_for_alignment() {
    let mut s = TestServer::start(ServerOptions::default()).await;
    let (admin, agent, person) = (
        s.token("default", "admin").await,
        s.token("default", "agent").await,
        s.token("default", "annotator").await,
    );
    for i in 0..3 {
        let (st, v) = call(
            &s.url,
            &agent,
            "POST",
            "/api/v1/gate",
            Some(json!({"trace_id": format!("t{i}"),
            "trace": [{"role": "user", "content": format!("question {i}")}],
            "pending": {"kind": "reply", "content": format!("answer {i}")}})),
        )
        .await;
        assert_eq!(st, 200, "{v}");
    }
    // The same question as pass/fail and as a category: "pass" is the pass/fail's true.
    for schema in [
        json!({"name": "polite", "type": "pass_fail", "judge": "tone"}),
        json!({"name": "polite_category", "type": "categorical", "options": ["pass", "fail"], "judge": "tone"}),
    ] {
        make_schema(&s, &admin, schema).await;
    }
    for (q, schema, labels) in [
        ("a", "polite", [json!(true), json!(true), json!(true)]),
        ("b", "polite", [json!(true), json!(false), json!(true)]),
        (
            "c",
            "polite_category",
            [json!("pass"), json!("fail"), json!("fail")],
        ),
    ] {
        let items: Vec<Value> = (0..3)
            .map(|i| json!({"trace": format!("t{i}"), "judge_value": "yes"}))
            .collect();
        let (st, v) = call(
            &s.url,
            &admin,
            "POST",
            "/api/v1/queues",
            Some(json!({"id": q, "schema": schema, "items": items})),
        )
        .await;
        assert_eq!(st, 201, "{v}");
        loop {
            let (_, v) = call(
                &s.url,
                &person,
                "POST",
                &format!("/api/v1/queues/{q}/next"),
                None,
            )
            .await;
            let Some(item) = v["item"].as_str() else {
                break;
            };
            let i: usize = item[1..].parse().unwrap();
            let (st, r) = call(
                &s.url,
                &person,
                "POST",
                &format!("/api/v1/queues/{q}/items/{item}/label"),
                Some(json!({"value": &labels[i]})),
            )
            .await;
            assert_eq!(st, 201, "{r}");
        }
        if q == "c" {
            continue;
        }
        // The judge's yes fits the pass_fail schema: it is compared with the people.
        let (_, f) = call(
            &s.url,
            &admin,
            "GET",
            &format!("/api/v1/queues/{q}/agreement"),
            None,
        )
        .await;
        assert_eq!(f["judge"]["judge_values_not_fitting_the_schema"], 0, "{f}");
    }
    for _ in 0..200 {
        if s.store.get_trace("default", "t2").await.unwrap().is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let (labels, about) = tribunal_server::tuning::judge_labels(&s.store, "default", "tone")
        .await
        .unwrap();
    // t0: true, true, "pass": one label. t1: true, false, "fail": left out. t2: true,
    // true, "fail": left out.
    let ids: HashSet<&str> = labels.iter().map(|l| l.id.as_str()).collect();
    assert_eq!(labels.len(), 1, "{about}");
    assert_eq!(ids, HashSet::from(["t0"]), "{about}");
    assert_eq!(
        (
            about["same_trace_again"].as_u64(),
            about["conflicting_traces_left_out"].as_u64()
        ),
        (Some(3), Some(2)),
        "{about}"
    );
    s.stop().await;
}

/// A label is read against the conversation its person was shown: a trace that grew since
/// is read as it was then (its reply then, not the latest), and a trace id sent again with
/// another conversation keeps the question and reply that were labelled, instead of lending
/// its label to a conversation nobody labelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_label_is_read_against_the_trace_its_person_was_shown() {
    let mut s = TestServer::start(ServerOptions::default()).await;
    let (admin, agent, person) = (
        s.token("default", "admin").await,
        s.token("default", "agent").await,
        s.token("default", "annotator").await,
    );
    gate_reply(
        &s,
        &agent,
        "grow",
        json!([{"role": "user", "content": "question g"}]),
        "answer g1",
    )
    .await;
    gate_reply(
        &s,
        &agent,
        "swap",
        json!([{"role": "user", "content": "question s"}]),
        "answer s1",
    )
    .await;
    stored_with(&s, "grow", "answer g1").await;
    stored_with(&s, "swap", "answer s1").await;
    make_schema(
        &s,
        &admin,
        json!({"name": "polite", "type": "pass_fail", "judge": "tone"}),
    )
    .await;
    let (st, v) = call(
        &s.url,
        &admin,
        "POST",
        "/api/v1/queues",
        Some(json!({"id": "q", "schema": "polite", "items": ["grow", "swap"]})),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    loop {
        let (_, v) = call(&s.url, &person, "POST", "/api/v1/queues/q/next", None).await;
        let Some(item) = v["item"].as_str() else {
            break;
        };
        let (st, r) = call(
            &s.url,
            &person,
            "POST",
            &format!("/api/v1/queues/q/items/{item}/label"),
            Some(json!({"value": true})),
        )
        .await;
        assert_eq!(st, 201, "{r}");
    }
    // The conversation goes on under one id; another is sent under the other.
    gate_reply(
        &s,
        &agent,
        "grow",
        json!([{"role": "user", "content": "question g"},
            {"role": "assistant", "content": "answer g1"},
            {"role": "user", "content": "and then?"}]),
        "answer g2",
    )
    .await;
    gate_reply(
        &s,
        &agent,
        "swap",
        json!([{"role": "user", "content": "another talk"}]),
        "other answer",
    )
    .await;
    stored_with(&s, "grow", "answer g2").await;
    stored_with(&s, "swap", "another talk").await;
    let (labels, about) = tribunal_server::tuning::judge_labels(&s.store, "default", "tone")
        .await
        .unwrap();
    let read: HashMap<&str, (&Value, &Value)> = labels
        .iter()
        .map(|l| (l.id.as_str(), (&l.inputs, &l.outputs)))
        .collect();
    assert_eq!(
        read,
        HashMap::from([
            ("grow", (&json!("question g"), &json!("answer g1"))),
            ("swap", (&json!("question s"), &json!("answer s1"))),
        ]),
        "the question and reply each person labelled: {about}"
    );
    assert_eq!(about["read_as_labelled"], 2, "{about}");
    s.stop().await;
}

/// What a label records is what its person was shown when the item was given to them: a
/// trace that grows between `next` and the label is read as it was shown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_label_records_the_trace_as_given_not_as_it_grew_before_the_label() {
    let mut s = TestServer::start(ServerOptions::default()).await;
    let (admin, agent, person) = (
        s.token("default", "admin").await,
        s.token("default", "agent").await,
        s.token("default", "annotator").await,
    );
    one_trace_queue(&s, (&admin, &agent), "grow", ("question g", "answer g1")).await;
    let (_, given) = call(&s.url, &person, "POST", "/api/v1/queues/q/next", None).await;
    assert_eq!(given["item"], "grow", "{given}");
    assert!(given.to_string().contains("answer g1"), "{given}");
    // The agent goes on while the person reads.
    gate_reply(
        &s,
        &agent,
        "grow",
        json!([{"role": "user", "content": "question g"},
            {"role": "assistant", "content": "answer g1"},
            {"role": "user", "content": "and then?"}]),
        "answer g2",
    )
    .await;
    stored_with(&s, "grow", "answer g2").await;
    let (st, r) = call(
        &s.url,
        &person,
        "POST",
        "/api/v1/queues/q/items/grow/label",
        Some(json!({"value": true})),
    )
    .await;
    assert_eq!(st, 201, "{r}");
    let (labels, about) = tribunal_server::tuning::judge_labels(&s.store, "default", "tone")
        .await
        .unwrap();
    assert_eq!(labels.len(), 1, "{about}");
    assert_eq!(
        (&labels[0].inputs, &labels[0].outputs),
        (&json!("question g"), &json!("answer g1")),
        "the reply the person was given: {about}"
    );
    // The export says so too.
    let text = TestServer::client()
        .get(format!("{}/api/v1/queues/q/export", s.url))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(line["labels"][0]["shown"]["outputs"], "answer g1", "{line}");
    s.stop().await;
}

/// An item given to the same person again (the page reloaded, or the lock ran out) records
/// what it shows then, in the store as well as in this server's copy: a label is read
/// against the conversation its person last had on screen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_given_again_records_what_it_shows_then() {
    let mut s = TestServer::start(ServerOptions::default()).await;
    let (admin, agent, person) = (
        s.token("default", "admin").await,
        s.token("default", "agent").await,
        s.token("default", "annotator").await,
    );
    one_trace_queue(&s, (&admin, &agent), "again", ("question a", "answer a1")).await;
    let (_, given) = call(&s.url, &person, "POST", "/api/v1/queues/q/next", None).await;
    assert!(given.to_string().contains("answer a1"), "{given}");
    gate_reply(
        &s,
        &agent,
        "again",
        json!([{"role": "user", "content": "question a"},
            {"role": "assistant", "content": "answer a1"},
            {"role": "user", "content": "more?"}]),
        "answer a2",
    )
    .await;
    stored_with(&s, "again", "answer a2").await;
    // The page is loaded again: the same item, as it is now.
    let (_, again) = call(&s.url, &person, "POST", "/api/v1/queues/q/next", None).await;
    assert_eq!(again["item"], "again", "{again}");
    assert!(again.to_string().contains("answer a2"), "{again}");
    // The label is read from the store's record, as another server (or this one after a
    // restart) reads it.
    s.state.label_queues.clear();
    let (st, r) = call(
        &s.url,
        &person,
        "POST",
        "/api/v1/queues/q/items/again/label",
        Some(json!({"value": true})),
    )
    .await;
    assert_eq!(st, 201, "{r}");
    let (labels, about) = tribunal_server::tuning::judge_labels(&s.store, "default", "tone")
        .await
        .unwrap();
    assert_eq!(
        (&labels[0].inputs, &labels[0].outputs),
        (&json!("question a"), &json!("answer a2")),
        "the reply on the person's screen when they labelled: {about}"
    );
    s.stop().await;
}

/// A queue's export goes into another queue whole: labels, final labels and the skips
/// with their reasons. Importing it again is not an error; a misspelled field is refused
/// with its line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_imports_with_its_skips_and_again_without_error() {
    let mut s = TestServer::start(ServerOptions::default()).await;
    let (admin, a, b) = (
        s.token("default", "admin").await,
        s.token("default", "annotator").await,
        s.token("default", "annotator").await,
    );
    make_schema(&s, &admin, json!({"name": "ok", "type": "pass_fail"})).await;
    for q in ["q1", "q2"] {
        let (st, v) = call(
            &s.url,
            &admin,
            "POST",
            "/api/v1/queues",
            Some(json!({"id": q, "schema": "ok", "items": ["t1", "t2"]})),
        )
        .await;
        assert_eq!(st, 201, "{v}");
    }
    let (_, given) = call(&s.url, &a, "POST", "/api/v1/queues/q1/next", None).await;
    let skipped = given["item"].as_str().unwrap().to_owned();
    let (st, v) = call(
        &s.url,
        &a,
        "POST",
        &format!("/api/v1/queues/q1/items/{skipped}/skip"),
        Some(json!({"reason": "not my field 🤔"})),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    for person in [&a, &b] {
        loop {
            let (_, v) = call(&s.url, person, "POST", "/api/v1/queues/q1/next", None).await;
            let Some(item) = v["item"].as_str() else {
                break;
            };
            let (st, r) = call(
                &s.url,
                person,
                "POST",
                &format!("/api/v1/queues/q1/items/{item}/label"),
                Some(json!({"value": true})),
            )
            .await;
            assert_eq!(st, 201, "{r}");
        }
    }
    let export = |q: &'static str| {
        let (url, admin) = (s.url.clone(), admin.clone());
        async move {
            TestServer::client()
                .get(format!("{url}/api/v1/queues/{q}/export"))
                .bearer_auth(admin)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let lines: Vec<Value> = export("q1")
        .await
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (st, v) = import(&s, &admin, "q2", &lines).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["skips_imported"], 1, "{v}");
    let again: Vec<Value> = export("q2")
        .await
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let line = again
        .iter()
        .find(|l| l["item"] == skipped.as_str())
        .unwrap();
    assert_eq!(line["skips"][0]["reason"], "not my field 🤔", "{line}");
    assert_eq!(
        line["skips"][0]["person"],
        lines
            .iter()
            .find(|l| l["item"] == skipped.as_str())
            .unwrap()["skips"][0]["person"]
    );
    // The same file again: everything is there already, which is not an error.
    let (st, v) = import(&s, &admin, "q2", &lines).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (&v["imported"], &v["skips_imported"]),
        (&json!(0), &json!(0)),
        "{v}"
    );
    // A misspelled field is named with its line, not dropped.
    let (st, v) = import(
        &s,
        &admin,
        "q2",
        &[json!({"item": "t1", "person": "someone", "value": true, "coment": "typo"})],
    )
    .await;
    assert_eq!(st, 400, "{v}");
    assert!(
        v["refused"][0]["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("coment: not a field")),
        "{v}"
    );
    s.stop().await;
}

/// Queue items that cannot work are refused when the queue is made: a gold item that is
/// also an item, an id a URL path cannot name, a pair side with no text. A reviewer's value
/// equal to a label as a number (4 and 4.0) is that label.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unworkable_items_are_refused_and_numbers_equal_as_numbers() {
    let mut s = TestServer::start(ServerOptions::default()).await;
    let (admin, a, b, rev) = (
        s.token("default", "admin").await,
        s.token("default", "annotator").await,
        s.token("default", "annotator").await,
        s.token("default", "reviewer").await,
    );
    make_schema(&s, &admin, json!({"name": "ok", "type": "pass_fail"})).await;
    make_schema(&s, &admin, json!({"name": "cmp", "type": "pairwise"})).await;
    make_schema(
        &s,
        &admin,
        json!({"name": "score", "type": "numeric", "min": 1, "max": 5}),
    )
    .await;
    for (schema, says) in [
        (
            json!({"name": "tied", "type": "pass_fail", "judge": "no/../x"}),
            "judge:",
        ),
        (
            json!({"name": "x".repeat(129), "type": "pass_fail"}),
            "name:",
        ),
    ] {
        let (st, v) = call(
            &s.url,
            &admin,
            "POST",
            "/api/v1/label-schemas",
            Some(schema),
        )
        .await;
        assert_eq!(st, 400, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(says)),
            "{v}"
        );
    }
    for (body, says) in [
        (
            json!({"id": "g", "schema": "ok", "items": ["g1", "g2"], "gold": {"g1": true}, "gold_rate": 0.5}),
            "gold.g1: also an item of the queue",
        ),
        (
            json!({"id": "d", "schema": "ok", "items": [".."]}),
            "items[0]: expected a trace id",
        ),
        (
            json!({"id": "f", "schema": "ok", "from": {"filter": {"decision": "maybe"}}}),
            "from.filter.decision: expected allow or escalate or block",
        ),
        (
            json!({"id": "e", "schema": "ok"}),
            "items: expected the items",
        ),
        (
            json!({"id": "d", "schema": "ok", "items": [{"id": "..", "trace": "t1"}]}),
            "items[0].id: expected an id",
        ),
        (
            json!({"id": "p", "schema": "cmp", "items": [{"pair": {"a": {"text": "yes"}, "b": {"text": " "}}}]}),
            "items[0].pair.b.text:",
        ),
    ] {
        let (st, v) = call(&s.url, &admin, "POST", "/api/v1/queues", Some(body.clone())).await;
        assert_eq!(st, 400, "{body}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(says)),
            "{body}: {v}"
        );
    }
    let (st, v) = call(
        &s.url,
        &admin,
        "POST",
        "/api/v1/queues",
        Some(json!({"id": "n", "schema": "score", "items": ["t1"], "overlap": 2})),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    for (items, says) in [
        (json!([]), "items: at least one"),
        (
            json!([{"pair": {"a": {"text": "x"}, "b": {"text": "y"}}}]),
            "items[0]: does not fit",
        ),
    ] {
        let (st, v) = call(
            &s.url,
            &admin,
            "POST",
            "/api/v1/queues/n/items",
            Some(json!({ "items": items })),
        )
        .await;
        assert_eq!(st, 400, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(says)),
            "{v}"
        );
    }
    for (person, value) in [(&a, json!(2.5)), (&b, json!(4))] {
        let (_, v) = call(&s.url, person, "POST", "/api/v1/queues/n/next", None).await;
        assert_eq!(v["item"], "t1", "{v}");
        let (st, r) = call(
            &s.url,
            person,
            "POST",
            "/api/v1/queues/n/items/t1/label",
            Some(json!({ "value": value })),
        )
        .await;
        assert_eq!(st, 201, "{r}");
    }
    let (st, v) = call(
        &s.url,
        &rev,
        "POST",
        "/api/v1/queues/n/items/t1/adjudicate",
        Some(json!({"value": 4.0})),
    )
    .await;
    assert!(st < 300, "{v}");
    assert_eq!(v["how"], "adjudicated", "4.0 is the label 4: {v}");
    s.stop().await;
}

/// Items naming a trace, span or run result the store does not hold are kept (a trace may
/// still arrive) and listed in the answer, so a mistyped id is seen when the queue is made
/// or grown, not by the person handed an empty item.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_naming_what_the_store_lacks_are_reported() {
    let mut s = TestServer::start(ServerOptions::default()).await;
    let (admin, agent) = (
        s.token("default", "admin").await,
        s.token("default", "agent").await,
    );
    let (st, v) = call(
        &s.url,
        &agent,
        "POST",
        "/api/v1/gate",
        Some(
            json!({"trace_id": "t-real", "trace": [{"role": "user", "content": "hi"}],
            "pending": {"kind": "reply", "content": "hello"}}),
        ),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    make_schema(&s, &admin, json!({"name": "ok", "type": "pass_fail"})).await;
    let items = json!(["t-real", "ghost", {"id": "s1", "trace": "t-real", "span": "no-span"},
        {"id": "r1", "trace": "t-real", "run": "run-nope"}]);
    let (st, v) = call(
        &s.url,
        &admin,
        "POST",
        "/api/v1/queues",
        Some(json!({"id": "q", "schema": "ok", "items": items})),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["items"], 4, "{v}");
    assert_eq!(
        v["not_found"],
        json!({"traces": ["ghost"], "spans": ["s1"], "runs": ["r1"]}),
        "{v}"
    );
    let (st, v) = call(
        &s.url,
        &admin,
        "POST",
        "/api/v1/queues/q/items",
        Some(json!({"items": ["t-real2", "t-real"]})),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["not_found"], json!({"traces": ["t-real2"]}), "{v}");
    // An imported label may not carry what the schema does not take, as a given one may not.
    let lines = [
        json!({"item": "t-real", "person": "ann", "value": true, "comment": "c"}),
        json!({"item": "t-real", "person": "bob", "value": true, "at_ms": -5}),
    ];
    let (st, v) = import(&s, &admin, "q", &lines).await;
    assert_eq!(st, 400, "{v}");
    let errors: Vec<&str> = v["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["error"].as_str().unwrap())
        .collect();
    assert!(errors[0].contains("takes no comment"), "{v}");
    assert!(errors[1].starts_with("at_ms:"), "{v}");
    // A label may name a person from elsewhere, never a token of another project.
    s.token("shop", "annotator").await;
    let other_id = s
        .store
        .list_tokens()
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.project == "shop")
        .unwrap()
        .id;
    let lines = [
        json!({"item": "t-real", "person": "an expert", "value": true}),
        json!({"item": "t-real", "person": other_id, "value": true}),
    ];
    let (st, v) = import(&s, &admin, "q", &lines).await;
    assert_eq!((st, v["imported"].as_u64()), (200, Some(1)), "{v}");
    let refused = v["refused"].as_array().unwrap();
    assert_eq!(refused.len(), 1, "{v}");
    assert_eq!(refused[0]["line"], 2, "{v}");
    assert!(
        refused[0]["error"]
            .as_str()
            .unwrap()
            .contains("a token of another project"),
        "{v}"
    );
    s.stop().await;
}

/// Imports `lines` (one label record each) into queue `queue`: the status and the answer.
async fn import(s: &TestServer, admin: &str, queue: &str, lines: &[Value]) -> (u16, Value) {
    let text: Vec<String> = lines.iter().map(Value::to_string).collect();
    call(
        &s.url,
        admin,
        "POST",
        &format!("/api/v1/queues/{queue}/import"),
        Some(json!({"lines": text.join("\n")})),
    )
    .await
}

async fn make_schema(s: &TestServer, admin: &str, schema: Value) {
    let (st, v) = call(&s.url, admin, "POST", "/api/v1/label-schemas", Some(schema)).await;
    assert_eq!(st, 201, "{v}");
}

/// Asks the gate about `reply` after `messages` of trace `trace_id`, as `agent`.
async fn gate_reply(s: &TestServer, agent: &str, trace_id: &str, messages: Value, reply: &str) {
    let body = json!({"trace_id": trace_id, "trace": messages,
        "pending": {"kind": "reply", "content": reply}});
    let (st, v) = call(&s.url, agent, "POST", "/api/v1/gate", Some(body)).await;
    assert_eq!(st, 200, "{v}");
}

/// Waits until the gate has stored trace `trace_id` with `text` in it.
async fn stored_with(s: &TestServer, trace_id: &str, text: &str) {
    for _ in 0..500 {
        let row = s.store.get_trace("default", trace_id).await.unwrap();
        if row.is_some_and(|r| r.body.unwrap_or_default().contains(text)) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("trace {trace_id} was not stored with {text:?}");
}

/// Trace `trace_id` (`question`, then the gate asked about `reply`) stored, and queue `q`
/// of that one item, labelled with schema `polite` tied to the judge `tone`.
async fn one_trace_queue(
    s: &TestServer,
    (admin, agent): (&str, &str),
    trace_id: &str,
    (question, reply): (&str, &str),
) {
    gate_reply(
        s,
        agent,
        trace_id,
        json!([{"role": "user", "content": question}]),
        reply,
    )
    .await;
    stored_with(s, trace_id, reply).await;
    make_schema(
        s,
        admin,
        json!({"name": "polite", "type": "pass_fail", "judge": "tone"}),
    )
    .await;
    let (st, v) = call(
        &s.url,
        admin,
        "POST",
        "/api/v1/queues",
        Some(json!({"id": "q", "schema": "polite", "items": [trace_id]})),
    )
    .await;
    assert_eq!(st, 201, "{v}");
}
