//! JSON read so that a key given twice is never silently resolved:
//! `serde_json` keeps the last of two equal keys, so which of two entries
//! for one store path wins would depend on their order in the file. Here a
//! key repeated with the same value is accepted (it says nothing new) and a
//! key repeated with a different value is an error naming the key.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// The message of the error for a conflicting repeated key. Callers can
/// find it in a `serde_json::Error`'s text to tell this case apart.
pub const CONFLICT: &str = "is given twice with different values";

/// Parses a JSON document like `serde_json::from_slice`, but refuses an
/// object that gives one key two different values.
pub fn parse_strict(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue.deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

#[derive(Clone, Copy)]
struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(StrictValue)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            let value = access.next_value_seed(StrictValue)?;
            match map.get(&key) {
                Some(previous) if *previous != value => {
                    return Err(de::Error::custom(format!("`{key}` {CONFLICT}")));
                }
                Some(_) => {}
                None => {
                    map.insert(key, value);
                }
            }
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_repeated_with_another_value_is_refused_by_name() {
        let doc = br#"{"a":{"narHash":"x"},"b":1,"a":{"narHash":"y"}}"#;
        let err = parse_strict(doc).expect_err("conflict");
        assert!(err.to_string().contains("`a` is given twice"), "{err}");
        let same = parse_strict(br#"{"a":[1,{"k":2}],"a":[1,{"k":2}]}"#).expect("identical");
        assert_eq!(same, serde_json::json!({"a":[1,{"k":2}]}));
        let nested = parse_strict(br#"[{"p":{"h":1,"h":2}}]"#).expect_err("nested conflict");
        assert!(
            nested.to_string().contains("`h` is given twice"),
            "{nested}"
        );
        assert_eq!(
            parse_strict(b"[1, 2.5, null, true, \"s\"]").expect("parses"),
            serde_json::json!([1, 2.5, null, true, "s"])
        );
    }
}
