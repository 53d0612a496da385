//! Import, export and their round trips.

use crate::{read, records};
use tribunal_prefs::record::OrderShown;
use tribunal_prefs::{
    export, import, ExportError, Format, Message, PreferenceRecord, ProvenanceKind, Turns,
};

fn export_bytes(records: &[PreferenceRecord], format: Format) -> Vec<u8> {
    let mut out = Vec::new();
    export(records, format, &mut out).expect("export");
    out
}

/// export → import → export gives the same bytes, and a fixture already in the format's
/// canonical spelling comes out unchanged.
fn check_round_trip(name: &str, format: Format) {
    let original = read(name);
    let first = export_bytes(&records(name, format), format);
    assert_eq!(
        String::from_utf8_lossy(&first),
        String::from_utf8_lossy(&original),
        "{name}: import → export changed the file"
    );
    let again = import(first.as_slice(), format).expect("import");
    assert!(again.rejected.is_empty(), "{:?}", again.rejected);
    let second = export_bytes(&again.records, format);
    assert_eq!(first, second, "{name}: export → import → export differs");
}

#[test]
fn every_format_round_trips_byte_for_byte() {
    check_round_trip("hh.jsonl", Format::HhRlhf);
    check_round_trip("trl_explicit_text.jsonl", Format::Trl);
    check_round_trip("trl_explicit_conv.jsonl", Format::Trl);
    check_round_trip("trl_implicit_text.jsonl", Format::TrlImplicit);
    check_round_trip("trl_implicit_conv.jsonl", Format::TrlImplicit);
    check_round_trip("ultrafeedback.jsonl", Format::UltraFeedback);
    check_round_trip("records.jsonl", Format::Jsonl);
}

#[test]
fn conversions_between_formats_come_back_unchanged() {
    // Every message-based fixture through every format that can hold it and back.
    for (name, format, via) in [
        (
            "hh.jsonl",
            Format::HhRlhf,
            &[Format::Jsonl, Format::Trl, Format::TrlImplicit][..],
        ),
        (
            "ultrafeedback.jsonl",
            Format::UltraFeedback,
            &[Format::Jsonl][..],
        ),
        (
            "trl_implicit_conv.jsonl",
            Format::TrlImplicit,
            &[Format::Jsonl, Format::Trl][..],
        ),
        ("trl_explicit_text.jsonl", Format::Trl, &[Format::Jsonl][..]),
    ] {
        let recs = records(name, format);
        let direct = export_bytes(&recs, format);
        for &v in via {
            let there = export_bytes(&recs, v);
            let back = import(there.as_slice(), v).expect("import");
            assert!(
                back.rejected.is_empty(),
                "{name} via {v}: {:?}",
                back.rejected
            );
            assert_eq!(
                String::from_utf8_lossy(&export_bytes(&back.records, format)),
                String::from_utf8_lossy(&direct),
                "{name} via {v}"
            );
        }
    }
}

#[test]
fn conversions_that_drop_labels_keep_the_content() {
    // TRL and hh-rlhf rows have no place for UltraFeedback's scores and prompt id; the
    // conversation itself survives.
    let recs = records("ultrafeedback.jsonl", Format::UltraFeedback);
    for via in [Format::Trl, Format::TrlImplicit, Format::HhRlhf] {
        let there = export_bytes(&recs, via);
        let back = import(there.as_slice(), via).expect("import").records;
        let ids = |rs: &[PreferenceRecord]| rs.iter().map(|r| r.content_id()).collect::<Vec<_>>();
        assert_eq!(ids(&back), ids(&recs), "via {via}");
    }
}

#[test]
fn hh_rlhf_transcripts_split_into_prompt_and_final_replies() {
    let recs = records("hh.jsonl", Format::HhRlhf);
    assert_eq!(recs.len(), 4);
    assert_eq!(
        recs[0].prompt,
        Turns::Messages(vec![Message::new("user", "How do I bake bread?")])
    );
    assert_eq!(
        recs[0].rejected,
        Turns::Messages(vec![Message::new("assistant", "I can't help with that.")])
    );
    // Multi-turn, unicode: three shared turns.
    let Turns::Messages(p) = &recs[1].prompt else {
        panic!("messages")
    };
    assert_eq!(p.len(), 3);
    assert_eq!(p[2].content, "日本語は話せますか？");
    assert_eq!(recs[1].chosen.text(), "はい、少し話せます。");
    // No prompt at all.
    assert!(recs[2].prompt.is_empty());
    // Two human turns in a row, a newline inside a turn, an empty reply.
    let Turns::Messages(p) = &recs[3].prompt else {
        panic!("messages")
    };
    assert_eq!(p[0].content, "Line one\nline two\n");
    assert_eq!(recs[3].chosen.text(), "");
    assert_eq!(recs[3].provenance.kind, ProvenanceKind::Import);
}

#[test]
fn trl_implicit_prompt_is_the_shared_beginning() {
    let recs = records("trl_implicit_text.jsonl", Format::TrlImplicit);
    assert_eq!(recs[0].prompt, Turns::Text("The sky is ".into()));
    assert_eq!(recs[0].chosen, Turns::Text("blue.".into()));
    // "blue" and "black" share "bl": the prompt stops at the word boundary.
    assert_eq!(recs[1].prompt, Turns::Text("The sky is ".into()));
    assert_eq!(recs[1].rejected, Turns::Text("black.".into()));
    assert_eq!(recs[2].prompt, Turns::Text(String::new()));
    let conv = records("trl_implicit_conv.jsonl", Format::TrlImplicit);
    let Turns::Messages(p) = &conv[1].prompt else {
        panic!("messages")
    };
    assert_eq!(p.len(), 3);
    assert_eq!(conv[1].margin, Some(0.25));
    // The explicit form of the same rows is read by the implicit reader too.
    let explicit = import(
        read("trl_explicit_conv.jsonl").as_slice(),
        Format::TrlImplicit,
    )
    .expect("import");
    assert_eq!(
        explicit.records,
        records("trl_explicit_conv.jsonl", Format::Trl)
    );
}

#[test]
fn ultrafeedback_rows_keep_scores_and_prompt_id() {
    let recs = records("ultrafeedback.jsonl", Format::UltraFeedback);
    assert_eq!(recs[0].score_chosen, Some(8.5));
    assert_eq!(recs[0].score_rejected, Some(3.0));
    assert_eq!(recs[0].prompt_id.as_deref(), Some("abc123"));
    assert_eq!(
        recs[0].prompt,
        Turns::Messages(vec![Message::new("user", "Write a haiku about rain")])
    );
    assert_eq!(recs[1].rejected.text(), "");
}

#[test]
fn record_jsonl_keeps_labels_and_provenance() {
    let recs = records("records.jsonl", Format::Jsonl);
    let r = &recs[0];
    assert_eq!(r.margin, Some(2.0));
    assert_eq!(r.soft_label, Some(0.9));
    assert_eq!(r.subset.as_deref(), Some("summaries"));
    assert_eq!(r.provenance.kind, ProvenanceKind::Human);
    assert_eq!(r.provenance.annotator.as_deref(), Some("ann-7"));
    assert_eq!(r.provenance.order_shown, Some(OrderShown::RejectedFirst));
    assert_eq!(r.provenance.source_trace_ids, vec!["t-1", "t-2"]);
    assert!(recs[1].tie);
    assert_eq!(recs[1].target(), 0.5);
    assert_eq!(recs[1].provenance.principle.as_deref(), Some("be honest"));
}

#[test]
fn bad_rows_are_rejected_with_line_and_field_and_the_rest_go_in() {
    let got = import(read("bad_hh.jsonl").as_slice(), Format::HhRlhf).expect("import");
    assert_eq!(got.records.len(), 2);
    let where_: Vec<(usize, &str)> = got
        .rejected
        .iter()
        .map(|r| (r.line, r.field.as_str()))
        .collect();
    assert_eq!(
        where_,
        vec![(2, "rejected"), (3, "line"), (5, "chosen"), (6, "rejected")]
    );
    assert!(got.rejected[0].reason.contains("missing"));
    assert!(got.rejected[0]
        .to_string()
        .starts_with("line 2: field `rejected`"));
}

/// A pair of the same reply twice says nothing: refused, naming the row.
#[test]
fn a_pair_of_identical_replies_is_rejected() {
    let rows = concat!(
        r#"{"prompt": "P ", "chosen": "same", "rejected": "same"}"#,
        "\n",
        r#"{"prompt": "P ", "chosen": "one", "rejected": "two"}"#,
        "\n"
    );
    let got = import(rows.as_bytes(), Format::Trl).expect("import");
    assert_eq!(got.records.len(), 1);
    assert_eq!(
        (got.rejected[0].line, got.rejected[0].field.as_str()),
        (1, "rejected")
    );
}

/// Messages of a role no chat has, and a reply that is not the assistant's, are refused
/// naming the message.
#[test]
fn messages_of_unknown_roles_and_replies_not_the_assistants_are_rejected() {
    let rows = [
        r#"{"prompt": [{"role": "wizard", "content": "hi"}], "chosen": "c", "rejected": "d"}"#,
        r#"{"prompt": "hi", "chosen": [{"role": "user", "content": "c"}], "rejected": "d"}"#,
        r#"{"prompt": "hi", "chosen": "c", "rejected": [{"role": "assistant", "content": "d"}, {"role": "tool", "content": "x"}]}"#,
        r#"{"prompt": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}], "chosen": [{"role": "assistant", "content": "c"}], "rejected": [{"role": "assistant", "content": "d"}]}"#,
    ]
    .join("\n");
    let got = import(rows.as_bytes(), Format::Trl).expect("import");
    assert_eq!(got.records.len(), 1);
    let refused: Vec<(usize, &str)> = got
        .rejected
        .iter()
        .map(|r| (r.line, r.field.as_str()))
        .collect();
    assert_eq!(refused, [(1, "prompt"), (2, "chosen"), (3, "rejected")]);
}

#[test]
fn record_jsonl_names_the_bad_field() {
    let input = concat!(
        r#"{"prompt":"","chosen":"a","rejected":"b","provenance":{"kind":"robot"}}"#,
        "\n",
        r#"{"prompt":"","chosen":"a","rejected":"b","soft_label":1.5}"#,
        "\n",
        r#"{"prompt":"","chosen":"a","rejected":"b","colour":"red"}"#,
        "\n",
        r#"{"prompt":"","chosen":[{"role":"user"}],"rejected":"b"}"#,
        "\n",
        r#"{"prompt":"","chosen":"a","rejected":"b"}"#,
        "\n",
    );
    let got = import(input.as_bytes(), Format::Jsonl).expect("import");
    assert_eq!(got.records.len(), 1);
    let fields: Vec<(usize, &str)> = got
        .rejected
        .iter()
        .map(|r| (r.line, r.field.as_str()))
        .collect();
    assert_eq!(
        fields,
        vec![
            (1, "provenance"),
            (2, "soft_label"),
            (3, "colour"),
            (4, "chosen")
        ]
    );
}

#[test]
fn invalid_utf8_is_rejected_by_line() {
    let mut input = b"\xff\xfe\n".to_vec();
    input.extend_from_slice(br#"{"prompt":"p","chosen":"a","rejected":"b"}"#);
    let got = import(input.as_slice(), Format::Trl).expect("import");
    assert_eq!(got.records.len(), 1);
    assert_eq!(
        (got.rejected[0].line, got.rejected[0].field.as_str()),
        (1, "line")
    );
}

#[test]
fn export_refuses_what_the_format_cannot_hold() {
    let mut r = PreferenceRecord::new(
        Turns::Messages(vec![Message::new("system", "be kind")]),
        Turns::Text("a".into()),
        Turns::Text("b".into()),
    );
    let err = export(&[r.clone()], Format::HhRlhf, Vec::new()).unwrap_err();
    assert!(
        matches!(&err, ExportError::Unrepresentable { record: 0, field, .. } if field == "chosen"),
        "{err}"
    );
    r.prompt = Turns::Text("x\n\nHuman: y".into());
    assert!(export(&[r.clone()], Format::HhRlhf, Vec::new()).is_err());
    r.prompt = Turns::Text("ok".into());
    r.margin = Some(f64::NAN);
    let err = export(&[r], Format::Trl, Vec::new()).unwrap_err();
    assert!(err.to_string().contains("margin"), "{err}");
}

/// Formats that say only which reply is better never state a preference the other way
/// round: a soft label below 0.5 is written with the replies swapped, a tie is left out,
/// both counted; jsonl keeps them as they are.
#[test]
fn soft_labels_and_ties_keep_their_direction_in_every_format() {
    let mut favours_rejected = PreferenceRecord::new(
        Turns::Text("Which is better? ".into()),
        Turns::Text("worse".into()),
        Turns::Text("better".into()),
    );
    favours_rejected.soft_label = Some(0.1);
    favours_rejected.margin = Some(2.0);
    let mut tie = PreferenceRecord::new(
        Turns::Text("Pick one: ".into()),
        Turns::Text("one".into()),
        Turns::Text("two".into()),
    );
    tie.tie = true;
    let mut half = tie.clone();
    half.tie = false;
    half.soft_label = Some(0.5);
    let plain = PreferenceRecord::new(
        Turns::Text("Rate this: ".into()),
        Turns::Text("good".into()),
        Turns::Text("bad".into()),
    );
    let all = [favours_rejected, tie, half, plain];
    for format in [Format::Trl, Format::HhRlhf, Format::TrlImplicit] {
        let mut out = Vec::new();
        let done = export(&all, format, &mut out).expect("export");
        assert_eq!(
            (done.written, done.turned, done.ties_left_out),
            (2, 1, 2),
            "{format}"
        );
        let back = import(out.as_slice(), format).expect("import").records;
        let replies = |t: &Turns| match t {
            Turns::Text(s) => s.clone(),
            Turns::Messages(m) => m.last().map(|m| m.content.clone()).unwrap_or_default(),
        };
        let pairs: Vec<(String, String)> = back
            .iter()
            .map(|r| (replies(&r.chosen), replies(&r.rejected)))
            .collect();
        assert_eq!(
            pairs,
            [
                ("better".into(), "worse".into()),
                ("good".into(), "bad".into())
            ],
            "{format}"
        );
    }
    let mut out = Vec::new();
    let done = export(&all, Format::Jsonl, &mut out).expect("export");
    assert_eq!((done.written, done.turned, done.ties_left_out), (4, 0, 0));
}

/// Text that would not split back into the same prompt and replies is left out of an
/// implicit-prompt export, counted (here the prompt does not end at a space and the replies
/// begin alike); the other records are written.
#[test]
fn implicit_prompts_leave_out_text_that_would_not_read_back() {
    let r = PreferenceRecord::new(
        Turns::Text("Hello".into()),
        Turns::Text("Hi there".into()),
        Turns::Text("Hi you".into()),
    );
    let fine = PreferenceRecord::new(
        Turns::Text("Say hi: ".into()),
        Turns::Text("hello".into()),
        Turns::Text("go away".into()),
    );
    let mut out = Vec::new();
    let done = export(&[r.clone(), fine], Format::TrlImplicit, &mut out).unwrap();
    assert_eq!((done.written, done.not_readable_back), (1, 1));
    assert!(String::from_utf8_lossy(&out).contains("Say hi: hello"));
    assert!(export(&[r], Format::Trl, Vec::new()).is_ok());
}

#[test]
fn content_id_is_stable_and_ignores_labels() {
    let recs = records("records.jsonl", Format::Jsonl);
    let id = recs[0].content_id();
    assert_eq!(id.len(), 64);
    let mut other = recs[0].clone();
    other.margin = None;
    other.provenance = Default::default();
    assert_eq!(other.content_id(), id);
    other.chosen = Turns::Text("The agent called search twice.".into());
    assert_eq!(
        other.content_id(),
        id,
        "text and one assistant message are one content"
    );
    other.chosen = Turns::Text("different".into());
    assert_ne!(other.content_id(), id);
    // Pinned: a change to the encoding changes every stored id.
    let fixed = PreferenceRecord::new(
        Turns::Text("p".into()),
        Turns::Text("a".into()),
        Turns::Text("b".into()),
    );
    assert_eq!(fixed.content_id(), fixed.clone().content_id());
    assert_eq!(
        fixed.content_id(),
        "2a79899c1356580bdb06a3c87816ccdc066875f31c5373aae33eee8679ce6b79",
    );
}
