//! Inputs a user or an attacker controls, end to end: counts too large to add, empty or
//! trace-less inputs, control characters in ids, byte-order marks.

mod common;

use common::{text, tribunal};
use serde_json::{json, Value};

/// An OTLP chat span with input and output text and `input_tokens` as given.
fn chat_span(i: usize, input_tokens: &str) -> Value {
    json!({
        "traceId": "0af7651916cd43dd8448eb211c80319c",
        "spanId": format!("b7ad6b716920333{i}"),
        "name": "chat gpt-4o-mini",
        "startTimeUnixNano": "1", "endTimeUnixNano": "2",
        "attributes": [
            {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
            {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o-mini"}},
            {"key": "input.value", "value": {"stringValue": "What is the weather?"}},
            {"key": "output.value", "value": {"stringValue": "Sunny."}},
            {"key": "gen_ai.usage.input_tokens", "value": {"intValue": input_tokens}}
        ]
    })
}

fn rows(stdout: &[u8]) -> Vec<Value> {
    text(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn token_counts_too_large_to_add_saturate_and_exceed_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let max = i64::MAX.to_string();
    let spans: Vec<Value> = [max.as_str(), max.as_str(), "2"]
        .iter()
        .enumerate()
        .map(|(i, n)| chat_span(i, n))
        .collect();
    let otlp = json!({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]});
    std::fs::write(dir.path().join("spans.json"), otlp.to_string()).unwrap();
    let out = tribunal(
        dir.path(),
        &["eval", "spans.json", "--no-store", "-f", "jsonl"],
    );
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let rows = rows(&out.stdout);
    assert_eq!(rows.len(), 1, "{stderr}");
    let row = &rows[0];
    assert_eq!(row["verdict"], "block", "{row}");
    assert!(
        row["violations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["rule"] == "c8.max_tokens"),
        "{row}"
    );
    assert_eq!(out.status.code(), Some(1), "{stderr}");
}

/// A small chat trace as one JSONL line.
fn chat_line(id: &str) -> String {
    json!({
        "id": id,
        "messages": [
            {"role": "user", "content": "Where is my order?"},
            {"role": "assistant", "content": "It ships tomorrow."}
        ]
    })
    .to_string()
}

/// `tribunal eval PATH` in `dir` without a store: its exit code, stdout and stderr.
fn eval(dir: &std::path::Path, args: &[&str]) -> (Option<i32>, String, String) {
    let mut all = vec!["eval"];
    all.extend_from_slice(args);
    all.push("--no-store");
    let out = tribunal(dir, &all);
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn inputs_without_traces_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("empty.jsonl"), "").unwrap();
    std::fs::write(d.join("list.json"), "[]").unwrap();
    std::fs::write(d.join("otlp.json"), r#"{"resourceSpans":[]}"#).unwrap();
    std::fs::create_dir(d.join("nothing")).unwrap();
    std::fs::write(d.join("nothing/notes.txt"), chat_line("t")).unwrap();
    for input in ["empty.jsonl", "list.json", "nothing"] {
        let (code, stdout, stderr) = eval(d, &[input]);
        assert_eq!(code, Some(2), "{input}: {stdout} {stderr}");
        assert!(
            stderr.contains(&format!("no traces found in {input}")),
            "{input}: {stderr}"
        );
        // The table still names the configuration it would have used.
        assert!(
            stdout.starts_with("configuration: built-in defaults\n"),
            "{input}: {stdout}"
        );
    }
    // A document that holds no trace is rejected, named by its file and line.
    let (code, stdout, stderr) = eval(d, &["otlp.json", "-f", "jsonl"]);
    assert_eq!(code, Some(2), "{stdout} {stderr}");
    assert!(stderr.contains("otlp.json:1: "), "{stderr}");
    assert!(stderr.contains("holding none"), "{stderr}");
}

#[test]
fn a_line_that_imports_no_trace_is_rejected_with_its_number() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let odd = json!({"messages": [{"role": "user", "content": "hi"}], "resourceSpans": []});
    let text = format!("{}\n{}\n{}\n", chat_line("a"), odd, chat_line("b"));
    std::fs::write(d.join("t.jsonl"), text).unwrap();
    let (code, stdout, stderr) = eval(d, &["t.jsonl", "-f", "jsonl"]);
    assert_eq!(code, Some(2), "{stdout} {stderr}");
    let rows = rows(stdout.as_bytes());
    assert_eq!(rows.len(), 3, "{stdout}");
    assert_eq!(rows[1]["source"]["line"], 2, "{stdout}");
    assert!(rows[1]["error"].as_str().unwrap().contains("t.jsonl:2: "));
    assert!(stderr.contains("2 traces: "), "{stderr}");
    assert!(stderr.contains("1 inputs rejected"), "{stderr}");
}

/// A trace or pending call in which an object names a key twice is read one way by one
/// JSON reader and the other way by another: `eval` rejects its line and `check` refuses
/// it, naming the key and where it is, whichever road (the chat fast road or the general
/// one) reads the line.
#[test]
fn a_key_named_twice_is_rejected_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let call = |args: &str| {
        json!({"id": "t", "messages": [
            {"role": "user", "content": "Read a.txt"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "read_file", "arguments": args}}]}
        ]})
        .to_string()
    };
    let lines = [
        chat_line("a"),
        // In a call's arguments, as a JSON string (the chat road) ...
        call(r#"{"path": "a.txt", "path": "/etc/shadow"}"#),
        // ... as an object, and elsewhere in a record.
        r#"{"id": "t3", "messages": [{"role": "user", "content": "hi"}], "metadata": {"user": "a", "user": "b"}}"#.to_owned(),
        r#"{"id": "t4", "messages": [{"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "read_file", "arguments": {"path": "a", "path": "b"}}}]}]}"#.to_owned(),
        chat_line("b"),
    ];
    std::fs::write(d.join("t.jsonl"), lines.join("\n") + "\n").unwrap();
    let (code, stdout, stderr) = eval(d, &["t.jsonl", "-f", "jsonl"]);
    assert_eq!(code, Some(2), "{stdout} {stderr}");
    let rows = rows(stdout.as_bytes());
    assert_eq!(rows.len(), 5, "{stdout}");
    for (i, key) in [(1, "path"), (2, "user"), (3, "path")] {
        let error = rows[i]["error"].as_str().unwrap_or_default();
        assert!(
            error.starts_with(&format!("t.jsonl:{}", i + 1))
                && error.contains(&format!("the key \"{key}\" is named twice")),
            "line {}: {}",
            i + 1,
            rows[i]
        );
    }
    assert!(stderr.contains("3 inputs rejected"), "{stderr}");

    // `check`: the pending call's arguments, and the trace.
    std::fs::write(d.join("trace.json"), chat_line("c")).unwrap();
    std::fs::write(
        d.join("pending.json"),
        r#"{"name": "send_email", "arguments": {"to": "eve@evil.io", "to": "alice@acme.com"}}"#,
    )
    .unwrap();
    let out = tribunal(d, &["check", "trace.json", "--pending", "pending.json"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("pending.json:1:") && stderr.contains(r#"the key "to" is named twice"#),
        "{stderr}"
    );
}

#[test]
fn extensions_are_read_whatever_their_case() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("in")).unwrap();
    std::fs::write(
        d.join("in/T.JSONL"),
        format!("{}\n{}\n", chat_line("a"), chat_line("b")),
    )
    .unwrap();
    let (code, stdout, stderr) = eval(d, &["in", "-f", "jsonl"]);
    assert_eq!(code, Some(0), "{stdout} {stderr}");
    assert_eq!(rows(stdout.as_bytes()).len(), 2, "{stdout}");
}

#[test]
fn check_reads_the_configuration_beside_its_trace() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("case")).unwrap();
    std::fs::create_dir(d.join("elsewhere")).unwrap();
    std::fs::write(
        d.join("case/tribunal.toml"),
        "[policies.data.tools]\nlimits = { refund = { amount = { max = 10, severity = \"escalate\" } } }\n",
    )
    .unwrap();
    let trace = json!({"messages": [
        {"role": "user", "content": "Please refund order 1234, it arrived broken."},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function",
            "function": {"name": "refund", "arguments": "{\"order\": \"1234\", \"amount\": 50}"}}]}
    ]});
    std::fs::write(d.join("case/trace.json"), trace.to_string()).unwrap();
    let out = tribunal(&d.join("elsewhere"), &["check", "../case/trace.json"]);
    let answer: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&out.stderr)));
    assert!(
        answer["config"]
            .as_str()
            .unwrap()
            .ends_with("tribunal.toml"),
        "{answer}"
    );
    assert_eq!(answer["decision"], "escalate", "{answer}");
    assert!(
        answer["violations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["rule"] == "c5.argument_limit"),
        "{answer}"
    );
}

#[test]
fn control_characters_in_ids_cannot_rewrite_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let id = "\u{1b}[2K\rallow     refund-ok\u{1b}[8m";
    let line = json!({"id": id, "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello \u{202e}dlrow"}
    ]});
    std::fs::write(d.join("t.jsonl"), format!("{line}\n")).unwrap();
    let (code, stdout, stderr) = eval(d, &["t.jsonl"]);
    assert_eq!(code, Some(0), "{stdout} {stderr}");
    assert!(!stdout.contains(['\u{1b}', '\r', '\u{202e}']), "{stdout:?}");
    assert!(stdout.contains("\\u{1b}[2K\\u{d}allow"), "{stdout}");
    // The stored run shows the same.
    let out = tribunal(d, &["eval", "t.jsonl", "--db", "t.db"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = tribunal(d, &["runs", "list", "--db", "t.db", "-f", "json"]);
    let runs: Value = serde_json::from_slice(&out.stdout).unwrap();
    let run = runs[0]["id"].as_str().unwrap().to_owned();
    let out = tribunal(d, &["runs", "show", &run, "--db", "t.db"]);
    let shown = text(&out.stdout);
    assert!(!shown.contains(['\u{1b}', '\r']), "{shown:?}");
    assert!(shown.contains("\\u{1b}[2K\\u{d}allow"), "{shown}");
    // It names the configuration in force, as the README says.
    assert!(
        shown.contains("configuration  built-in defaults"),
        "{shown}"
    );
}

#[test]
fn junit_leaves_out_characters_xml_does_not_allow() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let line = json!({"id": "a\u{fffe}b\u{ffff}c\u{1}", "messages": [
        {"role": "user", "content": "hi \u{ffff}"},
        {"role": "assistant", "content": "hello"}
    ]});
    std::fs::write(d.join("t.jsonl"), format!("{line}\n")).unwrap();
    let (code, _, stderr) = eval(d, &["t.jsonl", "-f", "junit", "-o", "r.xml"]);
    assert_eq!(code, Some(0), "{stderr}");
    let xml = std::fs::read_to_string(d.join("r.xml")).unwrap();
    assert!(xml.contains("abc"), "{xml}");
    assert!(!xml.contains(['\u{fffe}', '\u{ffff}', '\u{1}']), "{xml:?}");
    // An XML parser reads it, where one is at hand.
    if let Ok(out) = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, xml.etree.ElementTree as E; E.parse(sys.argv[1])",
        ])
        .arg(d.join("r.xml"))
        .output()
    {
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
}

#[test]
fn byte_order_marks_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("t.jsonl"), format!("\u{feff}{}\n", chat_line("a"))).unwrap();
    let (code, stdout, stderr) = eval(d, &["t.jsonl", "-f", "jsonl"]);
    assert_eq!(code, Some(0), "{stdout} {stderr}");
    assert_eq!(rows(stdout.as_bytes()).len(), 1, "{stdout}");

    std::fs::write(d.join("trace.json"), format!("\u{feff}{}", chat_line("a"))).unwrap();
    std::fs::write(
        d.join("call.json"),
        format!(
            "\u{feff}{}",
            json!({"name": "lookup_order", "arguments": {"order": "1"}})
        ),
    )
    .unwrap();
    let out = tribunal(d, &["check", "trace.json", "--pending", "call.json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let pair = json!({"prompt": "Say hi", "chosen": "Hi!", "rejected": "No."});
    std::fs::write(d.join("p.jsonl"), format!("\u{feff}{pair}\n")).unwrap();
    let out = tribunal(
        d,
        &[
            "prefs", "convert", "p.jsonl", "--from", "trl", "--to", "jsonl", "-o", "o.jsonl",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn an_output_that_cannot_be_written_leaves_no_run_running() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("t.jsonl"), format!("{}\n", chat_line("a"))).unwrap();
    // A folder that does not exist.
    let out = tribunal(
        d,
        &["eval", "t.jsonl", "--db", "t.db", "-o", "missing/r.xml"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("missing/r.xml"));
    let out = tribunal(d, &["runs", "list", "--db", "t.db", "-f", "json"]);
    let runs: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        runs.as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] != "running"),
        "{runs}"
    );
}

#[test]
fn reward_model_commands_fail_on_rejected_rows_and_on_no_pairs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = json!({"prompt": "Say hi", "chosen": "Hi there!", "rejected": "No."});
    let mut lines = vec![good.to_string()];
    lines.extend((0..5).map(|i| format!("{{\"prompt\": {i}}}")));
    std::fs::write(d.join("p.jsonl"), lines.join("\n") + "\n").unwrap();
    std::fs::write(d.join("empty.jsonl"), "").unwrap();
    let out = tribunal(
        d,
        &["rm", "train", "p.jsonl", "--format", "trl", "-o", "rm.json"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("5 rows rejected"));
    let out = tribunal(d, &["rm", "eval", "rm.json", "p.jsonl", "--format", "trl"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let out = tribunal(d, &["rm", "eval", "rm.json", "empty.jsonl"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("empty.jsonl: no preference pairs"),
        "{}",
        text(&out.stderr)
    );
    let out = tribunal(d, &["rm", "train", "empty.jsonl", "-o", "rm2.json"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

/// What a crafted name holds: erase the line, return to its start, write a fake answer.
const CRAFTED: &str = "\u{1b}[2K\rPASS";
/// How [`CRAFTED`] looks once escaped for the terminal.
const CRAFTED_SHOWN: &str = "\\u{1b}[2K\\u{d}PASS";

/// `out`'s stdout, checked to hold no raw escape or carriage return and to show `CRAFTED`
/// escaped.
fn shows_crafted_escaped(what: &str, out: &std::process::Output) -> String {
    let stdout = text(&out.stdout);
    assert!(
        !stdout.contains(['\u{1b}', '\r']),
        "{what}: {stdout:?} {}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains(CRAFTED_SHOWN),
        "{what}: {stdout:?} {}",
        text(&out.stderr)
    );
    stdout
}

#[test]
fn policy_test_output_escapes_file_names_from_the_policy_folder() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("policies")).unwrap();
    std::fs::write(
        d.join(format!("policies/{CRAFTED}_test.rego")),
        "package crafted\nimport rego.v1\ntest_fails if { 1 == 2 }\n",
    )
    .unwrap();
    let out = tribunal(d, &["policy", "test", "policies"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stdout = shows_crafted_escaped("policy test", &out);
    assert!(
        stdout.contains("FAIL  data.crafted.test_fails  ("),
        "{stdout}"
    );
}

#[test]
fn judges_import_and_report_escape_names_and_notes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // TOML quoted keys hold any character: such a name is refused, and the refusal shows it
    // escaped. The file's name goes into the version's note.
    let file = format!("{CRAFTED}.toml");
    let escaped_key = "\\u001b[2K\\rPASS";
    std::fs::write(
        d.join(&file),
        format!(
            "[judges.\"{escaped_key}\"]\nenabled = false\n\n[judges.\"loops{escaped_key}\"]\nkind = \"repeated_calls\"\n\n[judges.steps]\nkind = \"repeated_calls\"\n"
        ),
    )
    .unwrap();
    let out = tribunal(d, &["judges", "import", &file, "--db", "j.db"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains(['\u{1b}', '\r']), "{err:?}");
    assert!(
        err.contains(&format!("{CRAFTED_SHOWN}.toml:1: [judges.")),
        "{err}"
    );
    // Valid names in a file of that name: stored, and the note shows the file escaped.
    std::fs::write(
        d.join(&file),
        "[judges.steps]\nkind = \"repeated_calls\"\n\n[judges.loops]\nenabled = false\nkind = \"repeated_calls\"\n",
    )
    .unwrap();
    let out = tribunal(d, &["judges", "import", &file, "--db", "j.db"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(!stdout.contains(['\u{1b}', '\r']), "{stdout:?}");
    assert!(
        stdout.contains("loops: enabled = false, skipped"),
        "{stdout}"
    );
    assert!(stdout.contains("steps: added version 1"), "{stdout}");
    let out = tribunal(d, &["judges", "report", "steps", "--db", "j.db"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = shows_crafted_escaped("judges report", &out);
    assert!(
        stdout.contains(&format!("imported from {CRAFTED_SHOWN}.toml")),
        "{stdout}"
    );
}

#[test]
fn labels_list_escapes_queue_ids_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("l.db");
    let db = db.to_str().unwrap().to_owned();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = tribunal_store::Store::open(&db).await.unwrap();
        let (state, background) =
            tribunal_server::start(store.clone(), tribunal_server::ServerOptions::default())
                .await
                .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(tribunal_server::serve(
            listener,
            state,
            background,
            async move {
                let _ = stopped.await;
            },
        ));
        let admin = tribunal_server::auth::create_token(&store, "default", "admin", "t")
            .await
            .unwrap()
            .1;
        let client = reqwest::Client::new();
        for (path, body) in [
            (
                "/api/v1/label-schemas",
                json!({"name": "better", "type": "pairwise"}),
            ),
            (
                "/api/v1/queues",
                json!({"id": "pairs", "schema": "better",
                    "items": [{"id": "p1", "pair": {"prompt": "Greet me",
                        "a": {"text": "Hello!"}, "b": {"text": "What."}}}]}),
            ),
        ] {
            let r = client
                .post(format!("{url}{path}"))
                .bearer_auth(&admin)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status();
            assert!(
                status.is_success(),
                "{path}: {status} {}",
                r.text().await.unwrap()
            );
        }
        let _ = stop.send(());
        server.await.unwrap().unwrap();
        // The server refuses such an id; a row written to the shared database by other
        // means holds whatever it was given.
        let (_, body) = store.label_queues("default").await.unwrap().remove(0);
        let mut def: Value = serde_json::from_str(&body).unwrap();
        let id = format!("pairs{CRAFTED}");
        def["id"] = json!(id);
        let added = store
            .insert_label_queue(
                "default",
                &id,
                &def.to_string(),
                "2026-01-01T00:00:00Z",
                "t",
            )
            .await
            .unwrap();
        assert!(added);
        store.close().await;
    });
    let out = tribunal(dir.path(), &["labels", "list", "--db", &db]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = shows_crafted_escaped("labels list", &out);
    assert!(
        stdout.contains(&format!("pairs{CRAFTED_SHOWN}  schema better  1 items")),
        "{stdout}"
    );
    assert!(stdout.contains("pairs  schema better  1 items"), "{stdout}");
}

#[test]
fn bench_tables_escape_task_ids_from_the_results() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let id = format!("g-1{CRAFTED}");
    std::fs::write(
        d.join("answers.jsonl"),
        format!(
            "{}\n",
            json!({"task_id": id, "Level": 1, "Final answer": "1000", "file_name": ""})
        ),
    )
    .unwrap();
    std::fs::write(
        d.join("submission.jsonl"),
        format!("{}\n", json!({"task_id": id, "model_answer": "12"})),
    )
    .unwrap();
    let out = tribunal(
        d,
        &[
            "bench",
            "gaia",
            "submission.jsonl",
            "--answers",
            "answers.jsonl",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = shows_crafted_escaped("bench gaia", &out);
    assert!(
        stdout.contains(&format!("incorrect (1): g-1{CRAFTED_SHOWN}\n")),
        "{stdout}"
    );
    // The JSON output keeps the id as it is.
    let out = tribunal(
        d,
        &[
            "bench",
            "gaia",
            "submission.jsonl",
            "--answers",
            "answers.jsonl",
            "-f",
            "json",
        ],
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["per_task"][0]["task_id"], id.as_str(), "{report}");
}
