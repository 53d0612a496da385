//! Constitution files: parsing with errors that name the file, line and field; the version
//! as a content hash; seeded principle draws; the records critiques and comparisons make.

use crate::data;
use tribunal_prefs::{Constitution, ProvenanceKind, Turns};

fn fixture() -> Constitution {
    let text = std::fs::read_to_string(data("constitution.toml")).expect("fixture");
    Constitution::parse("constitution.toml", &text).expect("parses")
}

fn error(text: &str) -> (usize, String, String) {
    let e = Constitution::parse("c.toml", text).expect_err("rejected");
    assert_eq!(e.file, "c.toml");
    assert!(e.to_string().starts_with("c.toml"), "{e}");
    (e.line, e.field, e.message)
}

const ONE: &str = "name = \"x\"\n\n[[principles]]\nid = \"a\"\ntext = \"t\"\ncritique = \"c\"\nrevision = \"r\"\n";

#[test]
fn the_fixture_parses_with_defaults_for_compare() {
    let c = fixture();
    assert_eq!(c.name, "helpful-harmless");
    let ids: Vec<&str> = c.principles.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["harmless", "honest", "helpful"]);
    assert_eq!(
        c.principles[0].compare,
        "Which reply better follows this principle: The reply does not help anyone hurt people."
    );
    assert_eq!(
        c.principle("honest").unwrap().compare,
        "Which reply makes fewer claims the assistant cannot know?"
    );
    assert!(c.version.starts_with("sha256:") && c.version.len() == 7 + 64);
}

#[test]
fn the_version_follows_the_content_not_the_formatting() {
    let text = std::fs::read_to_string(data("constitution.toml")).unwrap();
    let base = fixture().version;
    let reformatted = format!("# another comment\n{}", text.replace(" = ", "="));
    assert_eq!(
        Constitution::parse("f", &reformatted).unwrap().version,
        base
    );
    let changed = text.replace("hurt people.\"\ncritique", "hurt anyone.\"\ncritique");
    assert_ne!(changed, text);
    assert_ne!(Constitution::parse("f", &changed).unwrap().version, base);
    let reordered = ONE.replace("id = \"a\"", "id = \"b\"");
    assert_ne!(
        Constitution::parse("f", ONE).unwrap().version,
        Constitution::parse("f", &reordered).unwrap().version
    );
}

#[test]
fn bad_files_name_their_line_and_field() {
    // A missing field: the line of the principle's table.
    let (line, field, msg) = error(&ONE.replace("revision = \"r\"\n", ""));
    assert_eq!(
        (line, field.as_str()),
        (3, "principles[0].revision"),
        "{msg}"
    );
    // An empty field: its own line.
    let (line, field, _) = error(&ONE.replace("critique = \"c\"", "critique = \"  \""));
    assert_eq!((line, field.as_str()), (6, "principles[0].critique"));
    // An unknown key.
    let (line, field, msg) = error(&ONE.replace("text = \"t\"", "txet = \"t\""));
    assert_eq!((line, field.as_str()), (5, "txet"), "{msg}");
    // A wrong type: the key is named, not the value.
    let (line, field, msg) = error(&ONE.replace("text = \"t\"", "text = 3"));
    assert_eq!((line, field.as_str()), (5, "text"), "{msg}");
    // Broken TOML.
    let (line, _, _) = error("name = \"x\"\n[[principles]\n");
    assert_eq!(line, 2);
    // A duplicate id names the first one's line.
    let twice = format!(
        "{ONE}\n[[principles]]\nid = \"a\"\ntext = \"t\"\ncritique = \"c\"\nrevision = \"r\"\n"
    );
    let (line, field, msg) = error(&twice);
    assert_eq!((line, field.as_str()), (10, "principles[1].id"));
    assert!(msg.contains("line 4"), "{msg}");
    // Ids are plain.
    let (_, field, msg) = error(&ONE.replace("id = \"a\"", "id = \"a b\""));
    assert_eq!(field, "principles[0].id", "{msg}");
    // No name, no principles.
    assert_eq!(
        error("[[principles]]\nid=\"a\"\ntext=\"t\"\ncritique=\"c\"\nrevision=\"r\"\n").1,
        "name"
    );
    assert_eq!(error("name = \"x\"\n").1, "principles");
}

#[test]
fn principle_draws_are_seeded_per_item_and_in_file_order() {
    let c = fixture();
    assert_eq!(c.sample(None, 1, "t1").len(), 3);
    assert_eq!(c.sample(Some(5), 1, "t1").len(), 3);
    let ids = |seed: u64, key: &str| -> Vec<String> {
        c.sample(Some(2), seed, key)
            .into_iter()
            .map(|p| p.id.clone())
            .collect()
    };
    assert_eq!(ids(7, "t1"), ids(7, "t1"));
    let order: Vec<&str> = ["harmless", "honest", "helpful"].to_vec();
    let mut seen = std::collections::BTreeSet::new();
    for k in 0..60 {
        let drawn = ids(7, &format!("trace-{k}"));
        assert_eq!(drawn.len(), 2);
        let pos: Vec<usize> = drawn
            .iter()
            .map(|d| order.iter().position(|o| o == d).unwrap())
            .collect();
        assert!(pos[0] < pos[1], "{drawn:?}");
        seen.insert(drawn);
    }
    // Over 60 items every one of the three possible draws comes up.
    assert_eq!(seen.len(), 3);
}

#[test]
fn a_revision_is_preferred_over_the_original_with_its_provenance() {
    let c = fixture();
    let r = c.revision_pair(
        "openai:/m",
        "harmless",
        Turns::Text("How do I pick a lock?".into()),
        "Here is how to break into a house.",
        "I can explain how locks work.",
        &["t1".into()],
    );
    assert_eq!(
        r.chosen,
        Turns::Text("I can explain how locks work.".into())
    );
    assert_eq!(
        r.rejected,
        Turns::Text("Here is how to break into a house.".into())
    );
    assert_eq!(r.provenance.kind, ProvenanceKind::Constitution);
    assert_eq!(r.provenance.model.as_deref(), Some("openai:/m"));
    assert_eq!(r.provenance.principle.as_deref(), Some("harmless"));
    assert_eq!(
        r.provenance.constitution_version.as_deref(),
        Some(c.version.as_str())
    );
    assert_eq!(r.provenance.source_trace_ids, ["t1"]);
    assert_eq!(r.target(), 1.0);
}

#[test]
fn comparisons_average_both_orders_and_flag_flips() {
    let c = fixture();
    let (p, a, b) = (
        Turns::Text("q".into()),
        Turns::Text("A reply".into()),
        Turns::Text("B reply".into()),
    );
    let rec = |x, y| c.comparison("m", "honest", p.clone(), a.clone(), b.clone(), x, y, &[]);
    let both_a = rec(true, true);
    assert_eq!(
        (both_a.chosen.clone(), both_a.soft_label),
        (a.clone(), Some(1.0))
    );
    assert!(!both_a.provenance.inconsistent);
    let both_b = rec(false, false);
    assert_eq!(
        (both_b.chosen.clone(), both_b.soft_label),
        (b.clone(), Some(1.0))
    );
    assert!(!both_b.provenance.inconsistent);
    for (x, y) in [(true, false), (false, true)] {
        let flip = rec(x, y);
        assert!(flip.provenance.inconsistent);
        assert_eq!(flip.soft_label, Some(0.5));
        assert_eq!(flip.target(), 0.5);
    }
}
