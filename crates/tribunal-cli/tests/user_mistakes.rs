//! Mistakes a new user makes in `tribunal.toml` and in policy folders: each is an error
//! naming where it is and what was expected (exit 2), never a setting that silently does
//! nothing while traces are allowed.

mod common;

use common::{text, tribunal};
use std::path::Path;

/// A trace every check here would see: a shell call that deletes everything.
const TRACE: &str = r#"{"id": "t", "messages": [{"role": "user", "content": "tidy up"}, {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "shell", "arguments": "{\"command\": \"rm -rf /\"}"}}]}]}"#;

fn setup(config: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.jsonl"), format!("{TRACE}\n")).unwrap();
    std::fs::write(dir.path().join("tribunal.toml"), config).unwrap();
    dir
}

/// Runs `eval` and `check` on the trace; both must refuse to start with exit 2. Returns
/// the error of `eval`.
fn refused(dir: &Path) -> String {
    let out = tribunal(dir, &["eval", "t.jsonl", "--no-store"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}\n{}", text(&out.stdout));
    let out = tribunal(dir, &["check", "t.jsonl"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    err
}

#[test]
fn a_judge_table_under_a_name_no_judge_has_is_an_error_naming_its_line_and_the_known_names() {
    // Meant to turn the loop detector off: a misspelt name turned nothing off.
    let dir = setup("[eval]\njobs = 1\n\n[judges.repeated_call]\nenabled = false\n");
    let err = refused(dir.path());
    assert!(
        err.contains("tribunal.toml:4: [judges.repeated_call]"),
        "{err}"
    );
    assert!(err.contains("did you mean \"repeated_calls\"?"), "{err}");
    assert!(
        err.contains("known names: step_count, latency,") && err.contains("secrets"),
        "{err}"
    );

    // A judge of one's own says its kind; a misspelt kind is named too.
    let dir = setup("[judges.refunds]\nkind = \"lmm\"\ninstructions = \"ok?\"\n");
    let err = refused(dir.path());
    assert!(
        err.contains(
            "tribunal.toml:1: [judges.refunds]: unknown judge kind \"lmm\" (did you mean \"llm\"?)"
        ),
        "{err}"
    );

    // A setting of the wrong type names the file and line of its judge's table.
    let dir = setup(
        "[policies]\nfail_mode = \"closed\"\n[judges.secrets]\nentropy_threshold = \"high\"\n",
    );
    let err = refused(dir.path());
    assert!(
        err.contains("tribunal.toml:3: judges.secrets: invalid type: string \"high\""),
        "{err}"
    );
}

#[test]
fn a_threshold_outside_its_range_is_an_error_not_a_rule_that_never_fires() {
    // Findings score 0 to 1: a threshold of 3 would let every leaked secret through.
    let dir = setup("[policies.data.secrets]\nthreshold = 3\n");
    let err = refused(dir.path());
    assert!(
        err.contains("secrets.threshold: expected a number from 0 to 1") && err.contains("3"),
        "{err}"
    );
    let dir = setup("[policies.data.injection]\nuntrusted_threshold = 1.5\n");
    let err = refused(dir.path());
    assert!(err.contains("injection.untrusted_threshold"), "{err}");
    // No run of token characters holds more than 6 bits a character.
    let dir = setup("[judges.secrets]\nentropy_threshold = 7\n");
    let err = refused(dir.path());
    assert!(
        err.contains("tribunal.toml:1: judges.secrets: entropy_threshold: 7 is above 6"),
        "{err}"
    );
    // In range, the same settings load.
    let dir =
        setup("[policies.data.secrets]\nthreshold = 1\n[judges.secrets]\nentropy_threshold = 6\n");
    let out = tribunal(dir.path(), &["eval", "t.jsonl", "--no-store"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
}

#[test]
fn a_policy_folder_without_policies_is_an_error() {
    let dir = setup("[policies]\npaths = [\"policies\"]\n");
    // Missing, then empty, then only unit tests: the user's gates would never run.
    let err = refused(dir.path());
    assert!(err.contains("policies"), "{err}");
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    let err = refused(dir.path());
    assert!(
        err.contains("policies: no policies here: expected .rego modules"),
        "{err}"
    );
    std::fs::write(
        dir.path().join("policies/refunds_test.rego"),
        "package policies.refunds_test\nimport rego.v1\ntest_x if true\n",
    )
    .unwrap();
    let err = refused(dir.path());
    assert!(err.contains("no policies here"), "{err}");
    // An empty folder given on the command line too.
    std::fs::create_dir(dir.path().join("more")).unwrap();
    std::fs::write(
        dir.path().join("policies/refunds.rego"),
        "package policies.refunds\nimport rego.v1\nviolation contains \"no\" if false\n",
    )
    .unwrap();
    let out = tribunal(dir.path(), &["eval", "t.jsonl", "--no-store", "-p", "more"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("more: no policies here"),
        "{}",
        text(&out.stderr)
    );
    // A folder of data alone is data for the other policies.
    std::fs::write(dir.path().join("more/data.json"), "{\"refunds\": {}}").unwrap();
    let out = tribunal(dir.path(), &["eval", "t.jsonl", "--no-store", "-p", "more"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
}

/// A folder of traces where one entry cannot be read (a link to a file that was moved): it
/// is rejected by name and the other traces are judged; the run exits 2 for the rejection.
#[cfg(unix)]
#[test]
fn an_unreadable_entry_in_a_folder_is_rejected_and_the_rest_judged() {
    let dir = setup("");
    std::fs::create_dir(dir.path().join("traces")).unwrap();
    std::fs::write(dir.path().join("traces/a.jsonl"), format!("{TRACE}\n")).unwrap();
    std::os::unix::fs::symlink(
        dir.path().join("moved.jsonl"),
        dir.path().join("traces/b.jsonl"),
    )
    .unwrap();
    let out = tribunal(dir.path(), &["eval", "traces", "--no-store"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stdout.contains("block") && stdout.contains("a.jsonl:1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("REJECTED")
            && stdout.contains("b.jsonl")
            && stdout.contains("1 inputs rejected"),
        "{stdout}{stderr}"
    );
}

/// A report written over an input emptied it before it was read, and one written inside an
/// input folder was read as traces by the run writing it: both are refused before anything
/// is written, and the input is kept.
#[test]
fn a_report_over_an_input_or_inside_an_input_folder_is_refused() {
    let dir = setup("");
    std::fs::create_dir(dir.path().join("traces")).unwrap();
    std::fs::write(dir.path().join("traces/a.jsonl"), format!("{TRACE}\n")).unwrap();
    for (input, output) in [
        ("t.jsonl", "t.jsonl"),
        ("t.jsonl", "./t.jsonl"),
        ("traces", "traces/report.json"),
    ] {
        let out = tribunal(
            dir.path(),
            &["eval", input, "--no-store", "-f", "json", "-o", output],
        );
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{input} -o {output}: {err}");
        assert!(
            err.contains("--output") && err.contains("write the report elsewhere"),
            "{err}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(dir.path().join("t.jsonl")).unwrap(),
        format!("{TRACE}\n")
    );
    assert!(!dir.path().join("traces/report.json").exists());
    let out = tribunal(
        dir.path(),
        &[
            "eval",
            "t.jsonl",
            "--no-store",
            "-f",
            "json",
            "-o",
            "report.json",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
}

/// A data.json that is not an object (a list, a string) took the place of all the policy
/// data, the pack's defaults included, and every rule reading them stopped firing: the
/// dangerous command below was allowed. It is an error naming the file.
#[test]
fn a_data_file_that_is_not_an_object_is_an_error() {
    let dir = setup("[policies]\npaths = [\"policies\"]\n");
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    for data in ["[\"admin_console\"]", "\"denied\"", "null"] {
        std::fs::write(dir.path().join("policies/data.json"), data).unwrap();
        let err = refused(dir.path());
        assert!(
            err.contains("policies/data.json: the data: expected a JSON object"),
            "{data}: {err}"
        );
    }
    std::fs::write(
        dir.path().join("policies/data.json"),
        "{\"tools\": {\"denied\": [\"admin_console\"]}}",
    )
    .unwrap();
    let out = tribunal(dir.path(), &["eval", "t.jsonl", "--no-store"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("c6.dangerous_command"));
}

/// `check` judges one trace; given a file of several (JSONL), it says so and names the
/// command that judges each, rather than "invalid JSON: trailing characters".
#[test]
fn check_given_a_file_of_traces_names_the_command_for_it() {
    let dir = setup("");
    std::fs::write(dir.path().join("two.jsonl"), format!("{TRACE}\n{TRACE}\n")).unwrap();
    let out = tribunal(dir.path(), &["check", "two.jsonl"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("two.jsonl: holds more than one JSON document")
            && err.contains("tribunal eval two.jsonl"),
        "{err}"
    );
    // One trace a line, one line: judged.
    let out = tribunal(dir.path(), &["check", "t.jsonl"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    // Damaged JSON is still reported where it is.
    std::fs::write(dir.path().join("bad.json"), "{\"messages\": [}").unwrap();
    let out = tribunal(dir.path(), &["check", "bad.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("bad.json:1:"),
        "{}",
        text(&out.stderr)
    );
}

/// A mistyped `--db` given to a command that reads the store is an error naming the path:
/// no empty store is made and reported as holding nothing, and an export does not
/// overwrite its output.
#[test]
fn a_store_that_is_not_there_is_an_error_for_commands_that_read_it() {
    let dir = setup("");
    std::fs::write(dir.path().join("judges.toml"), "[judges.kept]\n").unwrap();
    for args in [
        &["runs", "list", "--db", "typo.db"][..],
        &["labels", "list", "--db", "typo.db"],
        &["judges", "export", "--db", "typo.db", "-o", "judges.toml"],
        &[
            "prefs", "export", "--format", "jsonl", "-o", "p.jsonl", "--db", "typo.db",
        ],
        &["judges", "report", "tone", "--db", "typo.db"],
    ] {
        let out = tribunal(dir.path(), args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("typo.db: no store there"), "{args:?}: {err}");
        assert!(!dir.path().join("typo.db").exists(), "{args:?}");
    }
    assert_eq!(
        std::fs::read_to_string(dir.path().join("judges.toml")).unwrap(),
        "[judges.kept]\n"
    );
    assert!(!dir.path().join("p.jsonl").exists());
}
