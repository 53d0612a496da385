//! The UI in a real headless Chromium, driven over WebDriver (chromedriver): sign in, find a
//! blocked trace by its rule, open it and see the evidence highlighted, see a trace that
//! carries markup shown as text, approve an escalation, and check that a viewer cannot reach
//! the review queue. Screenshots of the pages go to `target/ui-screenshots/`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them when missing).

mod common;

use common::TestServer;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tribunal_server::ServerOptions;

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn browser(profile: &std::path::Path) -> (Driver, Client) {
    let port = free_port();
    let driver = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver is needed for the UI tests (Debian: apt-get install chromium chromium-driver; .ci/run installs them)");
    let driver = Driver(driver);
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("chromium is needed for the UI tests (Debian: apt-get install chromium)");
    let caps: serde_json::Map<String, Value> = serde_json::from_value(json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                format!("--user-data-dir={}", profile.display()),
            ]
        }
    }))
    .unwrap();
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let mut last = None;
    for _ in 0..100 {
        match ClientBuilder::new(connector.clone())
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(c) => return (driver, c),
            Err(e) => {
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    panic!("chromedriver did not start a browser: {last:?}");
}

async fn wait_for(c: &Client, css: &str) -> fantoccini::elements::Element {
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
}

async fn screenshot(c: &Client, name: &str) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("../ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = c.screenshot().await.unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

async fn sign_in(c: &Client, url: &str, token: &str) {
    // A full load (a new query string), so no earlier page is still being replaced.
    c.goto(&format!("{url}/?signin")).await.unwrap();
    let input = wait_for(c, "#token").await;
    input.send_keys(token).await.unwrap();
    c.find(Locator::Css("#signin button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(c, "#filters").await;
}

async fn gate(s: &TestServer, token: &str, body: Value) -> Value {
    TestServer::client()
        .post(format!("{}/api/v1/gate", s.url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_finds_a_blocked_trace_sees_its_evidence_and_reviews_an_escalation() {
    let mut s = TestServer::start(ServerOptions::default()).await;
    let agent = s.token("default", "agent").await;
    let admin = s.token("default", "admin").await;
    let viewer = s.token("default", "viewer").await;

    let v = gate(&s, &agent, json!({"trace_id": "wipe-disk",
        "trace": [{"role": "user", "content": "Free up some space"},
                  {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "shell", "arguments": "{\"command\": \"rm -rf / --no-preserve-root\"}"}}]}],
        "pending": {"name": "shell", "arguments": {"command": "rm -rf / --no-preserve-root"}}})).await;
    assert_eq!(v["decision"], "block", "{v}");
    let v = gate(&s, &agent, json!({"trace_id": "markup",
        "trace": [{"role": "user", "content": "<img src=x onerror=\"window.__xss=1\"><script>window.__xss=2</script> hello"}],
        "pending": {"kind": "reply", "content": "Hi"}})).await;
    assert_eq!(v["decision"], "allow", "{v}");
    let v = gate(
        &s,
        &agent,
        json!({"trace_id": "close-account",
        "trace": [{"role": "user", "content": "close my account"}],
        "pending": {"name": "delete_account", "arguments": {"customer": "C-1"}}}),
    )
    .await;
    assert_eq!(v["decision"], "escalate", "{v}");
    let escalation = v["escalation"]["id"].as_str().unwrap().to_owned();
    // Gate traces are stored within half a second.
    tokio::time::sleep(Duration::from_millis(1200)).await;

    let profile = tempfile::tempdir().unwrap();
    let (_driver, c) = browser(profile.path()).await;

    // Signing in with the agent's token is refused; an admin's works.
    c.goto(&format!("{}/", s.url)).await.unwrap();
    wait_for(&c, "#token")
        .await
        .send_keys(&agent)
        .await
        .unwrap();
    c.find(Locator::Css("#signin button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let status = wait_for(&c, "#signin-status .error").await;
    assert!(status.text().await.unwrap().contains("forbidden"));
    screenshot(&c, "signin").await;
    sign_in(&c, &s.url, &admin).await;
    wait_for(&c, "#traces").await;
    screenshot(&c, "traces").await;

    // Find the blocked trace by its rule.
    let rule = c
        .find(Locator::Css("#filters input[name=rule]"))
        .await
        .unwrap();
    rule.send_keys("c6.dangerous_command").await.unwrap();
    c.find(Locator::Css("#filters button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let rows = rows_when(&c, |rows| rows.len() == 1).await;
    assert_eq!(rows, ["wipe-disk"]);
    assert!(c
        .current_url()
        .await
        .unwrap()
        .as_str()
        .ends_with("#/traces?rule=c6.dangerous_command"));
    c.find(Locator::LinkText("wipe-disk"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    // The evidence is highlighted where it is.
    wait_for(&c, "#verdict .violation").await;
    let verdict = c
        .find(Locator::Css("#verdict"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        verdict.contains("block") && verdict.contains("c6.dangerous_command"),
        "{verdict}"
    );
    let marked = c.find_all(Locator::Css(".evidence")).await.unwrap();
    assert!(!marked.is_empty(), "no evidence highlighted");
    let mut marked_text = String::new();
    for m in &marked {
        marked_text.push_str(&m.text().await.unwrap());
    }
    assert!(marked_text.contains("rm -rf"), "{marked_text}");
    // No absent part shows as text (the log entry's JSON body may hold nulls of its own).
    for part in ["#verdict", "#conversation", "#judges"] {
        let shown = c
            .find(Locator::Css(part))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            !shown.contains("null") && !shown.contains("undefined"),
            "{part}: {shown}"
        );
    }
    // The decision-log entry behind the answer.
    let entry = wait_for(&c, "#log-entry").await.text().await.unwrap();
    assert!(
        entry.contains("Decision-log entry") && entry.contains("c6.dangerous_command"),
        "{entry}"
    );
    screenshot(&c, "trace").await;

    // Markup from a trace is text, never HTML.
    c.goto(&format!("{}/#/traces/markup", s.url)).await.unwrap();
    wait_for(&c, "#conversation .content").await;
    let shown = c
        .find(Locator::Css("#conversation .content"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(shown.contains("<script>window.__xss=2</script>"), "{shown}");
    assert!(c
        .find_all(Locator::Css("#conversation img, #conversation script"))
        .await
        .unwrap()
        .is_empty());
    let xss = c
        .execute("return window.__xss === undefined;", vec![])
        .await
        .unwrap();
    assert_eq!(xss, json!(true), "script from a trace ran");

    // Approve the escalation.
    c.goto(&format!("{}/#/reviews", s.url)).await.unwrap();
    let item = wait_for(&c, &format!("[data-escalation='{escalation}']")).await;
    screenshot(&c, "reviews").await;
    item.find(Locator::Css(".comment"))
        .await
        .unwrap()
        .send_keys("checked with the customer")
        .await
        .unwrap();
    item.find(Locator::Css("button.approve"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath(&format!(
            "//li[@data-escalation='{escalation}']//span[@role='status'][contains(., 'approved')]"
        )))
        .await
        .unwrap();
    let e: Value = TestServer::client()
        .get(format!("{}/api/v1/escalations/{escalation}", s.url))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (e["status"].as_str(), e["note"].as_str()),
        (Some("approved"), Some("checked with the customer")),
        "{e}"
    );

    // The dashboard counts the decisions.
    c.goto(&format!("{}/#/dashboard?since=1d", s.url))
        .await
        .unwrap();
    let figures = wait_for(&c, "#figures").await.text().await.unwrap();
    assert!(
        figures.starts_with("3\ndecisions") || figures.contains("3\ndecisions"),
        "{figures}"
    );
    assert!(c.find(Locator::Css("figure svg")).await.is_ok());
    screenshot(&c, "dashboard").await;

    // A viewer sees traces but not the review queue.
    c.find(Locator::Css("#signout"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&c, "#token").await;
    sign_in(&c, &s.url, &viewer).await;
    assert!(!c
        .find(Locator::Css("nav a[href='#/reviews']"))
        .await
        .unwrap()
        .is_displayed()
        .await
        .unwrap());
    c.goto(&format!("{}/#/reviews", s.url)).await.unwrap();
    wait_for(&c, "#forbidden").await;
    screenshot(&c, "forbidden").await;

    c.close().await.unwrap();
    s.stop().await;
}

/// The trace ids listed, once `done` holds of them (or after ten seconds).
async fn rows_when(c: &Client, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..100 {
        out.clear();
        if let Ok(rows) = c.find_all(Locator::Css("#traces tbody tr")).await {
            for r in rows {
                if let Ok(Some(id)) = r.attr("data-trace").await {
                    out.push(id);
                }
            }
            if done(&out) {
                return out;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_annotator_labels_five_items_with_the_keyboard_only() {
    use fantoccini::key::Key;
    let mut s = TestServer::start(ServerOptions::default()).await;
    let agent = s.token("default", "agent").await;
    let admin = s.token("default", "admin").await;
    let annotator = s.token("default", "annotator").await;
    let mut items = Vec::new();
    for i in 0..5 {
        let id = format!("conv-{i}");
        gate(&s, &agent, json!({"trace_id": id, "trace": [{"role": "user", "content": format!("question {i}")}, {"role": "assistant", "content": format!("answer {i}")}]})).await;
        items.push(id);
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let c = TestServer::client();
    for (path, body) in [
        (
            "/api/v1/label-schemas",
            json!({"name": "helpful", "type": "categorical", "options": ["good", "bad", "unclear"], "instructions": "Was the answer helpful?"}),
        ),
        (
            "/api/v1/queues",
            json!({"id": "q", "schema": "helpful", "items": items}),
        ),
    ] {
        let r = c
            .post(format!("{}{path}", s.url))
            .bearer_auth(&admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let profile = tempfile::tempdir().unwrap();
    let (_driver, b) = browser(profile.path()).await;
    sign_in(&b, &s.url, &annotator).await;
    b.goto(&format!("{}/#/queues/q/label", s.url))
        .await
        .unwrap();
    wait_for(&b, "#label-pad #label-item").await;
    let shown = b
        .find(Locator::Css("#main"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !shown.contains("null") && !shown.contains("undefined"),
        "{shown}"
    );
    screenshot(&b, "labeling").await;
    let submit: String = [
        char::from(Key::Control),
        char::from(Key::Enter),
        char::from(Key::Null),
    ]
    .into_iter()
    .collect();
    let mut seen = Vec::new();
    for round in 0..5 {
        let item = wait_for(&b, "#label-item").await.text().await.unwrap();
        assert!(!seen.contains(&item), "round {round}: {item} again");
        seen.push(item.clone());
        let pad = b.find(Locator::Css("#label-pad")).await.unwrap();
        // "2" picks the second option, the right arrow then the left one come back to it.
        pad.send_keys("2").await.unwrap();
        let pad = b.find(Locator::Css("#label-pad")).await.unwrap();
        pad.send_keys(&format!(
            "{}{}",
            char::from(Key::Right),
            char::from(Key::Left)
        ))
        .await
        .unwrap();
        let chosen = b
            .find(Locator::Css(".choice.chosen"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(chosen.contains("bad"), "{chosen}");
        let pad = b.find(Locator::Css("#label-pad")).await.unwrap();
        pad.send_keys(&submit).await.unwrap();
        // The next item (or the end) replaces this one.
        for _ in 0..100 {
            let now = match b.find(Locator::Css("#label-item")).await {
                Ok(e) => e.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if now != item {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    wait_for(&b, "#label-done").await;
    let labels: Value = c
        .get(format!("{}/api/v1/queues/q/labels", s.url))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let values: Vec<&Value> = labels["items"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| i["labels"].as_array().unwrap())
        .map(|l| &l["value"])
        .collect();
    assert_eq!(values, vec![&json!("bad"); 5], "{labels}");
    b.close().await.unwrap();
    s.stop().await;
}

/// A model server speaking the OpenAI protocol that finds a reply unhelpful when it says
/// "no idea".
async fn model_server() -> String {
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        post(|axum::Json(body): axum::Json<Value>| async move {
            let user = body["messages"][1]["content"].as_str().unwrap_or_default().to_owned();
            let result = if user.contains("no idea") { "no" } else { "yes" };
            axum::Json(json!({
                "id": "c", "object": "chat.completion", "model": "m",
                "choices": [{"index": 0, "message": {"role": "assistant",
                    "content": format!("{{\"rationale\": \"read the reply\", \"result\": \"{result}\"}}")}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 40, "completion_tokens": 8, "total_tokens": 48}
            }))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_judge_is_built_tried_on_three_traces_saved_and_changed() {
    let mut s = TestServer::start(ServerOptions::default()).await;
    let agent = s.token("default", "agent").await;
    let admin = s.token("default", "admin").await;
    let viewer = s.token("default", "viewer").await;
    let model = model_server().await;
    for (id, reply) in [
        ("helpful-1", "Your order ships tomorrow."),
        ("helpful-2", "Refunds take 5 days."),
        ("clueless", "I have no idea."),
    ] {
        gate(&s, &agent, json!({"trace_id": id, "trace": [{"role": "user", "content": "help me"}, {"role": "assistant", "content": reply}]})).await;
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let profile = tempfile::tempdir().unwrap();
    let (_driver, b) = browser(profile.path()).await;
    sign_in(&b, &s.url, &admin).await;
    b.goto(&format!("{}/#/judges/new", s.url)).await.unwrap();
    wait_for(&b, "#judge-form").await;
    b.find(Locator::Css("#judge-name"))
        .await
        .unwrap()
        .send_keys("helpful")
        .await
        .unwrap();
    let instructions = b.find(Locator::Css("#judge-instructions")).await.unwrap();
    instructions
        .send_keys("Is the assistant's reply helpful? ")
        .await
        .unwrap();
    b.find(Locator::Css("button.insert[data-var='conversation']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let text = b
        .execute(
            "return document.getElementById('judge-instructions').value;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        text,
        json!("Is the assistant's reply helpful? {{ conversation }}")
    );
    b.find(Locator::Css("#judge-model"))
        .await
        .unwrap()
        .send_keys("openai:/gpt-4o-mini")
        .await
        .unwrap();
    b.find(Locator::Css("#judge-extra"))
        .await
        .unwrap()
        .send_keys(&json!({"base_url": model, "max_retries": 0}).to_string())
        .await
        .unwrap();
    b.find(Locator::Css("#try-traces"))
        .await
        .unwrap()
        .send_keys("helpful-1\nhelpful-2\nclueless")
        .await
        .unwrap();
    b.find(Locator::Css("#try-run"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&b, "#try-table tbody tr[data-trace='clueless']").await;
    let table = b
        .find(Locator::Css("#try-table"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (id, want) in [
        ("helpful-1", "yes"),
        ("helpful-2", "yes"),
        ("clueless", "no"),
    ] {
        let cell = b
            .find(Locator::Css(&format!(
                "#try-table tbody tr[data-trace='{id}'] td:nth-child(2)"
            )))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(cell, want, "{id}: {table}");
    }
    assert!(
        table.contains("40 in + 8 out tokens"),
        "tokens and cost per trace: {table}"
    );
    screenshot(&b, "judge-try").await;
    b.find(Locator::Css("#judge-save"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&b, "#versions tr[data-version='1']").await;

    // A second version from the editor, then its diff against the first.
    b.find(Locator::Css("#edit-judge"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let instructions = wait_for(&b, "#judge-instructions").await;
    instructions
        .send_keys(" Answer no when it is vague.")
        .await
        .unwrap();
    b.find(Locator::Css("#judge-note"))
        .await
        .unwrap()
        .send_keys("stricter")
        .await
        .unwrap();
    b.find(Locator::Css("#judge-save"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&b, "#versions tr[data-version='2']").await;
    let diff = wait_for(&b, "#judge-diff").await.text().await.unwrap();
    assert!(
        diff.contains("settings.instructions") && diff.contains("Answer no when it is vague"),
        "{diff}"
    );
    screenshot(&b, "judge-versions").await;

    // A viewer cannot reach the editor.
    b.find(Locator::Css("#signout"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&b, "#token").await;
    sign_in(&b, &s.url, &viewer).await;
    b.goto(&format!("{}/#/judges/new", s.url)).await.unwrap();
    wait_for(&b, "#forbidden").await;
    b.close().await.unwrap();
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_judge_is_switched_on_for_live_traffic_from_the_monitoring_page() {
    let mut s = TestServer::start(ServerOptions::default()).await;
    let agent = s.token("default", "agent").await;
    let admin = s.token("default", "admin").await;
    // A stored judge: passes replies that mention a refund.
    let r = TestServer::client()
        .post(format!("{}/api/v1/judges/refunds/versions", s.url))
        .bearer_auth(&admin)
        .json(&json!({"kind": "regex_match", "settings": {"pattern": "(?i)refund"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let profile = tempfile::tempdir().unwrap();
    let (_driver, b) = browser(profile.path()).await;
    sign_in(&b, &s.url, &admin).await;
    b.goto(&format!("{}/#/monitors", s.url)).await.unwrap();
    wait_for(&b, "#monitor-form").await;
    let rate = b.find(Locator::Css("#monitor-rate")).await.unwrap();
    rate.clear().await.unwrap();
    rate.send_keys("1").await.unwrap();
    b.find(Locator::Css("#monitor-on"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&b, "#monitor-empty").await;

    // Live gate traffic after the switch.
    for (id, reply) in [
        ("live-ok", "Your refund is on its way."),
        ("live-bad", "Please call the shop."),
    ] {
        gate(&s, &agent, json!({"trace_id": id, "trace": [{"role": "user", "content": "money back?"}, {"role": "assistant", "content": reply}]})).await;
    }
    let mut rows = Vec::new();
    for _ in 0..100 {
        b.find(Locator::Css("#monitor-refresh"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        rows = match b.find_all(Locator::Css("#monitor-results tbody tr")).await {
            Ok(r) => {
                let mut t = Vec::new();
                for e in r {
                    t.push(e.text().await.unwrap_or_default());
                }
                t
            }
            Err(_) => Vec::new(),
        };
        if rows.len() == 2 {
            break;
        }
    }
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows.iter()
            .any(|r| r.contains("live-ok") && r.contains("pass")),
        "{rows:?}"
    );
    assert!(
        rows.iter()
            .any(|r| r.contains("live-bad") && r.contains("fail")),
        "{rows:?}"
    );
    let rate = wait_for(&b, "#monitor-pass-rate")
        .await
        .text()
        .await
        .unwrap();
    assert!(rate.contains("50.0 %"), "{rate}");
    wait_for(&b, "#monitor-chart").await;
    screenshot(&b, "monitor").await;
    // The result links to its trace, which shows it.
    b.find(Locator::Css("#monitor-results tr[data-trace='live-bad'] a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let seen = wait_for(&b, "#monitored").await.text().await.unwrap();
    assert!(seen.contains("fail"), "{seen}");
    // The monitors list shows it switched on; switching it off from the page sticks.
    b.goto(&format!("{}/#/monitors", s.url)).await.unwrap();
    let switch = wait_for(&b, "#monitors input.switch").await;
    assert_eq!(
        switch.prop("checked").await.unwrap().as_deref(),
        Some("true")
    );
    switch.click().await.unwrap();
    wait_for(&b, "#monitor-status").await;
    let mut off = false;
    for _ in 0..50 {
        let v: Value = TestServer::client()
            .get(format!("{}/api/v1/monitors", s.url))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["monitors"][0]["enabled"] == false {
            off = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(off, "the switch did not turn the monitor off");
    b.close().await.unwrap();
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policies_page_shows_rules_runs_tests_and_tries_a_change() {
    let mut s = TestServer::start(ServerOptions::default()).await;
    let agent = s.token("default", "agent").await;
    let admin = s.token("default", "admin").await;
    let v = gate(
        &s,
        &agent,
        json!({"trace_id": "wipe",
        "trace": [{"role": "user", "content": "Free up some space"}],
        "pending": {"name": "shell", "arguments": {"command": "rm -rf / --no-preserve-root"}}}),
    )
    .await;
    assert_eq!(v["decision"], "block", "{v}");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let profile = tempfile::tempdir().unwrap();
    let (_driver, b) = browser(profile.path()).await;
    sign_in(&b, &s.url, &admin).await;
    b.goto(&format!("{}/#/policies", s.url)).await.unwrap();
    let row = wait_for(&b, "#policy-rules tr[data-rule='c6.dangerous_command']")
        .await
        .text()
        .await
        .unwrap();
    assert!(row.contains("block"), "{row}");
    let shadow = wait_for(&b, "#shadow-status").await.text().await.unwrap();
    assert!(shadow.contains("No shadow policies"), "{shadow}");
    b.find(Locator::Css("#run-policy-tests"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let summary = wait_for(&b, "#policy-tests-summary")
        .await
        .text()
        .await
        .unwrap();
    assert!(summary.ends_with("passed, 0 failed"), "{summary}");
    // Dangerous commands escalate instead: the stored blocked trace would change.
    b.find(Locator::Css(
        "#try-module option[value='builtin:c6_dangerous_commands.rego']",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    let area = b.find(Locator::Css("#try-text")).await.unwrap();
    let text = area.prop("value").await.unwrap().unwrap_or_default();
    assert!(text.contains("c6.dangerous_command"), "{text}");
    let softer = text.replace("\"severity\": \"block\"", "\"severity\": \"escalate\"");
    b.execute(
        "document.getElementById('try-text').value = arguments[0];",
        vec![json!(softer)],
    )
    .await
    .unwrap();
    b.find(Locator::Css("#try-run"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let changed = wait_for(&b, "#try-changes tr[data-trace='wipe']")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        changed.contains("block") && changed.contains("escalate"),
        "{changed}"
    );
    screenshot(&b, "policies").await;
    b.close().await.unwrap();
    s.stop().await;
}
