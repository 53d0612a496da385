//! JSON read without the case RFC 8259 (section 4) leaves open: an object that names a key
//! twice. Readers disagree on such an object: most keep the last value, some (cJSON,
//! RapidJSON's `FindMember`) the first, some refuse it. A gate that judged one value while
//! the tool acts on the other would judge a call that is not the one made, so every
//! document the gate judges is read here, and an object that names a key twice is an error
//! that names the key (serde_json adds its line and column).
//!
//! Everything else is read as `serde_json` reads it.

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Number, Value};
use std::collections::BTreeMap;
use std::fmt;

/// Where every message about a key named twice begins ([`is_duplicate`]).
const TWICE: &str = "the key ";
const TWICE_END: &str = " is named twice in one object";

fn twice<E: de::Error>(key: &str) -> E {
    // The key written as JSON writes it, so that `duplicated_key` reads it back.
    let quoted = Value::String(key.to_owned());
    E::custom(format_args!(
        "{TWICE}{quoted}{TWICE_END} (readers differ on which value counts)"
    ))
}

/// Whether `e` is a key named twice (rather than JSON that does not read at all).
pub fn is_duplicate(e: &serde_json::Error) -> bool {
    duplicated_key(e).is_some()
}

/// The key `e` says is named twice; `None` when `e` is another error.
pub fn duplicated_key(e: &serde_json::Error) -> Option<String> {
    if e.classify() != serde_json::error::Category::Data {
        return None;
    }
    let s = e.to_string();
    let quoted = s.strip_prefix(TWICE)?.split(TWICE_END).next()?;
    serde_json::from_str(quoted).ok()
}

/// `text` as a JSON value; an object that names a key twice is an error.
pub fn from_str(text: &str) -> serde_json::Result<Value> {
    serde_json::from_str::<Unique>(text).map(|u| u.0)
}

/// [`from_str`] of bytes.
pub fn from_slice(bytes: &[u8]) -> serde_json::Result<Value> {
    serde_json::from_slice::<Unique>(bytes).map(|u| u.0)
}

/// For `#[serde(deserialize_with = "tribunal_core::json::unique")]` on a `Value` field.
pub fn unique<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
    Unique::deserialize(d).map(|u| u.0)
}

/// [`unique`] for an `Option<Value>` field (`null` is `None`, as serde reads it; give the
/// field `#[serde(default)]` too, for when it is absent).
pub fn unique_option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Option::<Unique>::deserialize(d).map(|o| o.map(|u| u.0))
}

/// A JSON value whose objects name each key once.
#[derive(Debug, Clone, PartialEq)]
pub struct Unique(pub Value);

impl<'de> Deserialize<'de> for Unique {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Unique, D::Error> {
        d.deserialize_any(ValueVisitor).map(Unique)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Unique::deserialize(d).map(|u| u.0)
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(Unique(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            match out.entry(key) {
                serde_json::map::Entry::Vacant(slot) => {
                    let Unique(v) = map.next_value()?;
                    slot.insert(v);
                }
                serde_json::map::Entry::Occupied(taken) => return Err(twice(taken.key())),
            }
        }
        Ok(Value::Object(out))
    }
}

/// A JSON object read as a map whose keys are named once each, its values read as `V`.
#[derive(Debug)]
pub struct UniqueMap<V>(pub BTreeMap<String, V>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for UniqueMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<UniqueMap<V>, D::Error> {
        struct MapVisitor<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for MapVisitor<V> {
            type Value = UniqueMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UniqueMap<V>, A::Error> {
                let mut out = BTreeMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    if out.contains_key(&key) {
                        return Err(twice(&key));
                    }
                    let v = map.next_value::<V>()?;
                    out.insert(key, v);
                }
                Ok(UniqueMap(out))
            }
        }
        d.deserialize_map(MapVisitor(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_what_serde_json_reads() {
        let text = r#"{"a": [1, -2, 3.5, "x\n", null, true, {"b": {}}], "c": 18446744073709551615, "d": ""}"#;
        assert_eq!(
            from_str(text).unwrap(),
            serde_json::from_str::<Value>(text).unwrap()
        );
        assert_eq!(from_slice(b"[]").unwrap(), json!([]));
    }

    #[test]
    fn a_key_named_twice_is_an_error_that_names_it() {
        for text in [
            r#"{"to": "alice@acme.com", "to": "eve@evil.io"}"#,
            r#"{"a": 1, "b": {"x": 1, "y": 2, "x": 3}}"#,
            r#"[{"k": 1}, {"k": 1, "k": 1}]"#,
            // The same key written with an escape is the same key.
            r#"{"to": 1, "t\u006f": 2}"#,
        ] {
            let e = from_str(text).unwrap_err();
            assert!(is_duplicate(&e), "{text}: {e}");
            assert!(e.to_string().contains("is named twice"), "{e}");
            assert!(e.line() == 1 && e.column() > 0, "{e}");
        }
        let e = from_str(r#"{"to": 1, "to": 2}"#).unwrap_err();
        assert!(
            e.to_string().starts_with(r#"the key "to" is named twice"#),
            "{e}"
        );
        let e = from_str(r#"{"a \"quoted\" key": 1, "a \"quoted\" key": 2}"#).unwrap_err();
        assert_eq!(duplicated_key(&e).as_deref(), Some(r#"a "quoted" key"#));
        assert_eq!(duplicated_key(&from_str("{").unwrap_err()), None);
        // Not a duplicate: JSON that does not read, or keys that differ in case.
        assert!(!is_duplicate(&from_str("{").unwrap_err()));
        assert!(!is_duplicate(&from_str("nope").unwrap_err()));
        assert!(from_str(r#"{"to": 1, "To": 2}"#).is_ok());
    }

    #[test]
    fn maps_and_fields_read_here_refuse_a_key_named_twice() {
        let m: UniqueMap<Value> = serde_json::from_str(r#"{"a": [1], "b": {"c": 2}}"#).unwrap();
        assert_eq!(m.0["b"], json!({"c": 2}));
        let e = serde_json::from_str::<UniqueMap<Value>>(r#"{"a": 1, "a": 2}"#).unwrap_err();
        assert!(is_duplicate(&e), "{e}");

        #[derive(Deserialize)]
        struct Call {
            #[serde(deserialize_with = "unique")]
            arguments: Value,
            #[serde(default, deserialize_with = "unique_option")]
            extra: Option<Value>,
        }
        let ok: Call = serde_json::from_str(r#"{"arguments": {"to": 1}}"#).unwrap();
        assert_eq!(ok.arguments, json!({"to": 1}));
        assert_eq!(ok.extra, None);
        for text in [
            r#"{"arguments": {"to": 1, "to": 2}}"#,
            r#"{"arguments": {}, "extra": {"a": {"b": 1, "b": 1}}}"#,
        ] {
            let e = serde_json::from_str::<Call>(text).err().unwrap();
            assert!(is_duplicate(&e), "{e}");
        }
    }
}
