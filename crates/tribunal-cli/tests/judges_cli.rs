//! `tribunal judges import` and `export` as a user runs them: tables of a tribunal.toml are
//! stored as versions, exported as tables the configuration accepts with the same versions,
//! and a round trip adds nothing; a changed table adds a version, a bad one stores nothing.

use std::path::Path;
use std::process::{Command, Output};

fn tribunal(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tribunal"))
        .args(args)
        .current_dir(dir)
        .env_remove("CI")
        .env_remove("TRIBUNAL_CONFIG")
        // Model judges are built (never called) on import.
        .env("OPENAI_API_KEY", "sk-test")
        .output()
        .expect("run tribunal")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const CONFIG: &str = r#"[policies]
fail_mode = "closed"

[judges.refunds]
kind = "llm"
instructions = """Did the agent follow the "refund" rules?
Rules: at most 250 \\ order, \t tabbed.
{{ conversation }}"""
output = "yes_no"
model = "openai:/gpt-4o-mini"
max_retries = 1
optional = true

[judges.loops]
kind = "repeated_calls"
ignore_tools = ["poll", "wait"]

[judges.safety]

[judges.pii]
enabled = false
"#;

#[test]
fn import_export_round_trip_and_changes() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    std::fs::write(dir.join("tribunal.toml"), CONFIG).unwrap();
    let db = dir.join("j.db");
    let db = db.to_str().unwrap();

    let out = tribunal(dir, &["judges", "import", "tribunal.toml", "--db", db]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    for line in [
        "pii: enabled = false, skipped",
        "loops: added version 1",
        "refunds: added version 1",
        "safety: added version 1",
    ] {
        assert!(said.contains(line), "{line}: {said}");
    }

    let out = tribunal(
        dir,
        &["judges", "export", "--db", db, "-o", "exported.toml"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let exported = std::fs::read_to_string(dir.join("exported.toml")).unwrap();
    assert!(
        exported.contains("[judges.refunds]\nkind = \"llm\"\n"),
        "{exported}"
    );
    assert!(
        !exported.contains("pii") && !exported.contains("optional"),
        "{exported}"
    );

    // The exported tables are a configuration with the same judges and versions.
    let original = tribunal_engine::Config::parse(CONFIG, "t").unwrap();
    let back = tribunal_engine::Config::load(&dir.join("exported.toml")).unwrap();
    let versions = |c: &tribunal_engine::Config| {
        c.judge_specs()
            .unwrap()
            .into_iter()
            .filter(|s| ["refunds", "loops", "safety"].contains(&s.name.as_str()))
            .map(|s| {
                (
                    s.name.clone(),
                    s.kind.clone(),
                    s.params.clone(),
                    s.version(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(versions(&back), versions(&original));
    assert_eq!(versions(&back).len(), 3);
    for (name, _, _, hash) in versions(&back) {
        assert!(
            exported.contains(&format!("hash {hash}\n[judges.{name}]")),
            "{name}: {exported}"
        );
    }

    // Round trip: importing the export adds nothing.
    let out = tribunal(dir, &["judges", "import", "exported.toml", "--db", db]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(!said.contains("added"), "{said}");
    assert_eq!(
        said.matches("unchanged, same as version 1").count(),
        3,
        "{said}"
    );
    let out = tribunal(dir, &["judges", "export", "--db", db]);
    assert_eq!(text(&out.stdout), exported);

    // One judge only; a changed table adds a version.
    let out = tribunal(dir, &["judges", "export", "--db", db, "--name", "loops"]);
    let one = text(&out.stdout);
    assert!(
        one.contains("[judges.loops]") && !one.contains("refunds"),
        "{one}"
    );
    std::fs::write(
        dir.join("changed.toml"),
        "[judges.loops]\nkind = \"repeated_calls\"\nignore_tools = [\"poll\"]\n",
    )
    .unwrap();
    let out = tribunal(dir, &["judges", "import", "changed.toml", "--db", db]);
    assert!(
        text(&out.stdout).contains("loops: added version 2"),
        "{}",
        text(&out.stdout)
    );
    let out = tribunal(dir, &["judges", "export", "--db", db, "--name", "loops"]);
    assert!(
        text(&out.stdout).contains("# version 2,"),
        "{}",
        text(&out.stdout)
    );

    // The provider's key is needed where a model judge runs, not to store its definition.
    std::fs::write(
        dir.join("nokey.toml"),
        "[judges.polite]\nkind = \"llm\"\ninstructions = \"Polite? {{ outputs }}\"\noutput = \"yes_no\"\n\
         [judges.own_key]\nkind = \"llm\"\ninstructions = \"Kind? {{ outputs }}\"\noutput = \"yes_no\"\napi_key_env = \"TRIBUNAL_TEST_UNSET_KEY\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tribunal"))
        .args(["judges", "import", "nokey.toml", "--db", db])
        .current_dir(dir)
        .env_remove("OPENAI_API_KEY")
        .env_remove("TRIBUNAL_TEST_UNSET_KEY")
        .env_remove("TRIBUNAL_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("polite: added version 1"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stdout).contains("own_key: added version 1"),
        "{}",
        text(&out.stdout)
    );

    // A table that does not build stores nothing, and the error names it.
    std::fs::write(
        dir.join("bad.toml"),
        "[judges.loops]\nkind = \"repeated_calls\"\n[judges.worse]\nkind = \"repeated_calls\"\nbogus = 1\n",
    )
    .unwrap();
    let out = tribunal(dir, &["judges", "import", "bad.toml", "--db", db]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("worse") && err.contains("bogus"), "{err}");
    let out = tribunal(dir, &["judges", "export", "--db", db, "--name", "loops"]);
    assert!(
        text(&out.stdout).contains("# version 2,"),
        "{}",
        text(&out.stdout)
    );
    let out = tribunal(dir, &["judges", "export", "--db", db, "--name", "worse"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--name"),
        "{}",
        text(&out.stderr)
    );

    // Another project has its own judges.
    let out = tribunal(dir, &["judges", "export", "--db", db, "--project", "other"]);
    assert!(out.status.success());
    assert!(
        !text(&out.stdout).contains("[judges."),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn import_refuses_table_names_the_store_and_the_api_refuse() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let db = dir.join("j.db");
    let db = db.to_str().unwrap();
    let long = "j".repeat(129);
    let long_shown = format!("\"{long}\"");
    for (file, table, shown) in [
        ("spaced.toml", "\"bad name\"".to_owned(), "\"bad name\""),
        ("dotted.toml", "\"a.b\"".to_owned(), "\"a.b\""),
        ("long.toml", long.clone(), long_shown.as_str()),
        // A disabled table is refused too: the file is not one the store could hold.
        (
            "escape.toml",
            "\"x\\u001b[2J\"".to_owned(),
            "\"x\\u{1b}[2J\"",
        ),
    ] {
        std::fs::write(
            dir.join(file),
            format!(
                "[judges.good]\nkind = \"repeated_calls\"\n[judges.{table}]\nkind = \"repeated_calls\"\nenabled = {}\n",
                file != "escape.toml"
            ),
        )
        .unwrap();
        let out = tribunal(dir, &["judges", "import", file, "--db", db]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{file}: {err}");
        assert!(
            err.contains(&format!("{file}: [judges.{shown}]")),
            "{file}: {err}"
        );
        assert!(
            err.contains("name: expected 1 to 128 letters, digits, _ or -, found"),
            "{file}: {err}"
        );
        assert!(!err.contains('\u{1b}'), "{file}: {err}");
        assert!(text(&out.stdout).is_empty(), "{}", text(&out.stdout));
    }
    // Nothing was stored, not even the valid table beside the bad one: the store was not
    // even made.
    let out = tribunal(dir, &["judges", "export", "--db", db]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("no store there"),
        "{}",
        text(&out.stderr)
    );
}
