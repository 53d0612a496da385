//! A trace sent whole again with new messages at its end, read from its new messages only.
//!
//! An agent that sends the whole conversation before every step repeats, byte for byte,
//! what it sent the last time and adds a message or two. For OpenAI chat traces the gate
//! keeps the raw JSON of the last request's trace beside the held trace ([`Sent`]). A new
//! request whose trace has the same members besides `messages`, and whose messages start
//! with the same raw messages, is read without building the repeated ones into JSON trees
//! or importing them again: only the new messages are parsed and imported after the held
//! ones. That gives the trace a full import gives, because the OpenAI import reads each
//! message on its own, numbered by its position, with the tools called before it
//! (`tribunal_formats::openai::import_messages_after`).
//!
//! Only bare lists of messages (named by the request's `trace_id`) and trace objects whose
//! other members are ones the import reads apart from the messages qualify, so the format
//! a full import would detect stays OpenAI as long as no message uses Anthropic blocks
//! (checked on the new messages; the held ones were read as OpenAI when sent) and, for a
//! list, its first message is the one held. Anything else, and any error, takes the full
//! path, which gives the error.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::marker::PhantomData;
use tribunal_formats::openai::RECORD_FIELDS;

/// A whole gate request read without building its trace: the raw JSON of the trace's
/// members and messages, borrowed from the request.
pub struct Split<'a> {
    /// The request's members other than `trace`, parsed.
    pub rest: Map<String, Value>,
    /// The id the trace is held under.
    pub trace_id: String,
    /// The format is named (`openai`): no detection.
    pub named: bool,
    /// The trace is a bare list of messages (its format is told by the first one).
    pub list: bool,
    /// The trace's members besides `messages`, raw, by name.
    frame: Vec<(&'a str, &'a str)>,
    /// Its messages, raw.
    pub messages: Vec<&'a str>,
}

/// Reads a request that sends an OpenAI chat trace whole with an id; `None` when the
/// request is anything else (the full path reads it). One pass over the request: the
/// messages are only delimited, not built.
pub fn split(bytes: &[u8]) -> Option<Split<'_>> {
    let Top { trace, rest } = serde_json::from_slice(bytes).ok()?;
    if rest.contains_key("append") {
        return None;
    }
    let named = match rest.get("format") {
        None => false,
        Some(Value::String(f)) if f == "auto" => false,
        Some(Value::String(f)) if f == "openai" => true,
        Some(_) => return None,
    };
    let given = match rest.get("trace_id") {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        None | Some(Value::Null) => None,
        Some(_) => return None,
    };
    let (messages, frame, list, trace_id) = match trace? {
        // A bare list of messages: its id is the request's.
        RawTrace::List(messages) => (messages, Vec::new(), true, given?),
        RawTrace::Object { frame, messages } => {
            // Only members that leave the format an OpenAI record and are read the same
            // whatever the messages are.
            if frame.iter().any(|(k, _)| !RECORD_FIELDS.contains(k)) {
                return None;
            }
            let id = match given {
                Some(id) => id,
                None => own_id(&frame)?,
            };
            (messages?, frame, false, id)
        }
    };
    Some(Split {
        rest,
        trace_id,
        named,
        list,
        frame: frame.into_iter().map(|(k, v)| (k, v.get())).collect(),
        messages: messages.into_iter().map(RawValue::get).collect(),
    })
}

/// A request's members: `trace` delimited, the others parsed.
struct Top<'a> {
    trace: Option<RawTrace<'a>>,
    rest: Map<String, Value>,
}

/// A trace delimited: a list of messages, or an object's members and its messages.
enum RawTrace<'a> {
    List(Vec<&'a RawValue>),
    Object {
        frame: Vec<(&'a str, &'a RawValue)>,
        messages: Option<Vec<&'a RawValue>>,
    },
}

impl<'de: 'a, 'a> Deserialize<'de> for Top<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Top<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a gate request")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top<'a>, A::Error> {
                let mut top = Top {
                    trace: None,
                    rest: Map::new(),
                };
                while let Some(k) = map.next_key::<&'de str>()? {
                    if k == "trace" {
                        top.trace = Some(map.next_value()?);
                    } else {
                        top.rest.insert(k.to_owned(), map.next_value()?);
                    }
                }
                Ok(top)
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RawTrace<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = RawTrace<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of messages or an object with messages")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawTrace<'a>, A::Error> {
                let mut out = Vec::new();
                while let Some(m) = seq.next_element::<&'de RawValue>()? {
                    out.push(m);
                }
                Ok(RawTrace::List(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawTrace<'a>, A::Error> {
                let (mut frame, mut messages) = (Vec::new(), None);
                while let Some(k) = map.next_key::<&'de str>()? {
                    if k == "messages" {
                        messages = Some(map.next_value()?);
                    } else {
                        frame.retain(|(name, _)| *name != k);
                        frame.push((k, map.next_value()?));
                    }
                }
                // In name order, as the frame is compared.
                frame.sort_by(|a, b| a.0.cmp(b.0));
                Ok(RawTrace::Object { frame, messages })
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// The trace's own id, as the OpenAI import reads it (`id`, else `trace_id`; a string or a
/// number).
fn own_id(frame: &[(&str, &RawValue)]) -> Option<String> {
    for key in ["id", "trace_id"] {
        let raw = frame.iter().find(|(k, _)| *k == key).map(|(_, v)| v.get());
        match raw.map(serde_json::from_str::<Value>) {
            None | Some(Ok(Value::Null)) => continue,
            Some(Ok(Value::String(s))) => return Some(s),
            Some(Ok(Value::Number(n))) => return Some(n.to_string()),
            Some(_) => return None,
        }
    }
    None
}

impl Split<'_> {
    /// What the gate keeps of this request to recognise the next one.
    pub fn sent(&self) -> Sent {
        let mut messages = String::with_capacity(self.messages.iter().map(|m| m.len()).sum());
        let mut ends = Vec::with_capacity(self.messages.len());
        for m in &self.messages {
            messages.push_str(m);
            ends.push(messages.len());
        }
        Sent {
            frame: frame_key(self.list, &self.frame),
            messages,
            ends,
        }
    }

    /// The messages after the first `n`, parsed.
    pub fn new_messages(&self, n: usize) -> Option<Vec<Value>> {
        self.messages
            .get(n..)?
            .iter()
            .map(|m| serde_json::from_str(m).ok())
            .collect()
    }
}

/// The frame as one string: the trace's shape, then each member's name and raw value,
/// NUL-separated (neither a name nor raw JSON holds a NUL byte unescaped).
fn frame_key(list: bool, frame: &[(&str, &str)]) -> String {
    let mut out = String::from(if list { "[" } else { "{" });
    for (k, v) in frame {
        out.push_str(k);
        out.push('\0');
        out.push_str(v);
        out.push('\0');
    }
    out
}

/// The raw trace of the last whole request of a held trace.
#[derive(Debug, Clone)]
pub struct Sent {
    frame: String,
    /// The raw messages one after the other; `ends[i]` is where message `i` ends.
    messages: String,
    ends: Vec<usize>,
}

impl Sent {
    /// Messages sent.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Whether `split` repeats this trace: the same frame, and its messages start with the
    /// ones sent here, byte for byte.
    pub fn continued_by(&self, split: &Split<'_>) -> bool {
        if split.messages.len() < self.ends.len()
            || frame_key(split.list, &split.frame) != self.frame
        {
            return false;
        }
        let mut start = 0;
        self.ends.iter().zip(&split.messages).all(|(&end, m)| {
            let same = self.messages[start..end] == **m;
            start = end;
            same
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: Value) -> Vec<u8> {
        v.to_string().into_bytes()
    }

    #[test]
    fn only_whole_openai_traces_with_an_id_split() {
        let msgs = serde_json::json!([{"role": "user", "content": "hi"}]);
        for (body, id) in [
            (
                serde_json::json!({"trace": {"id": "a", "messages": msgs}}),
                Some("a"),
            ),
            (
                serde_json::json!({"trace": {"id": 7, "messages": msgs}}),
                Some("7"),
            ),
            (
                serde_json::json!({"trace": {"trace_id": "b", "messages": msgs}}),
                Some("b"),
            ),
            (
                serde_json::json!({"trace_id": "c", "trace": {"id": "a", "messages": msgs}}),
                Some("c"),
            ),
            (
                serde_json::json!({"format": "openai", "trace": {"id": "a", "messages": msgs, "tools": []}}),
                Some("a"),
            ),
            // No id: named after its content, which changes as it grows.
            (serde_json::json!({"trace": {"messages": msgs}}), None),
            // A bare list takes the request's id.
            (serde_json::json!({"trace": msgs}), None),
            (
                serde_json::json!({"trace_id": "d", "trace": msgs}),
                Some("d"),
            ),
            (
                serde_json::json!({"format": "anthropic", "trace": {"id": "a", "messages": msgs}}),
                None,
            ),
            (
                serde_json::json!({"trace": {"id": "a", "system": "s", "messages": msgs}}),
                None,
            ),
            (
                serde_json::json!({"trace": {"id": "a", "task_id": "t", "messages": msgs}}),
                None,
            ),
            (
                serde_json::json!({"trace_id": "a", "offset": 0, "append": msgs}),
                None,
            ),
            (
                serde_json::json!({"trace_id": 5, "trace": {"id": "a", "messages": msgs}}),
                None,
            ),
        ] {
            let bytes = req(body.clone());
            assert_eq!(
                split(&bytes).map(|s| s.trace_id),
                id.map(str::to_owned),
                "{body}"
            );
        }
    }

    #[test]
    fn a_trace_is_continued_only_by_the_same_frame_and_the_same_first_messages() {
        let a = serde_json::json!({"role": "user", "content": "hi"});
        let b = serde_json::json!({"role": "assistant", "content": "hello"});
        let first = req(serde_json::json!({"trace": {"id": "t", "messages": [a]}}));
        let sent = split(&first).unwrap().sent();
        assert_eq!(sent.len(), 1);
        let next = req(serde_json::json!({"trace": {"id": "t", "messages": [a, b]}}));
        let s = split(&next).unwrap();
        assert!(sent.continued_by(&s));
        assert_eq!(s.new_messages(sent.len()).unwrap(), vec![b.clone()]);
        // The same request again continues it with nothing new.
        assert!(sent.continued_by(&split(&first).unwrap()));
        for other in [
            serde_json::json!({"trace": {"id": "t", "messages": [b, a]}}),
            serde_json::json!({"trace": {"id": "t", "messages": []}}),
            serde_json::json!({"trace": {"id": "t", "tags": {"x": "y"}, "messages": [a, b]}}),
            serde_json::json!({"trace": {"id": "t", "messages": [{"role": "user", "content": "hi!"}, b]}}),
        ] {
            assert!(
                !sent.continued_by(&split(&req(other.clone())).unwrap()),
                "{other}"
            );
        }
        // Spacing is part of what is compared: a message written differently is read again.
        let spaced = br#"{"trace": {"id": "t", "messages": [{"role": "user",  "content": "hi"}]}}"#;
        assert!(!sent.continued_by(&split(spaced).unwrap()));
    }
}
