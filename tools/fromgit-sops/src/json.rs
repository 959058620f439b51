//! JSON store. Reads into the ordered tree through a serde visitor of our own
//! (so strings land in zeroizing buffers and duplicate keys are refused), and
//! writes the shape sops writes: tab indentation, one array element a line.
//!
//! As in sops, every JSON number is a float (Go decodes JSON numbers as
//! float64), so `1` is stored as `type:float` with plaintext `1`.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use zeroize::Zeroizing;

use crate::text::SecretText;
use crate::value::{go_format_float, Kind, Map, Scalar, Value, MAX_DEPTH};
use crate::yaml::{push_quoted, too_deep_reason};

/// Why a JSON text could not be read. Carries no document content.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JsonError {
    #[error("line {line}, column {column}: {reason}")]
    At {
        line: usize,
        column: usize,
        reason: String,
    },
    /// The top-level value is not an object.
    #[error("the top level of the document must be an object")]
    RootNotObject,
}

/// Parses a JSON object into an ordered map.
pub fn parse(text: &str) -> Result<Map, JsonError> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = deserializer
        .deserialize_any(ValueVisitor { depth: 0 })
        .map_err(to_error)?;
    deserializer.end().map_err(to_error)?;
    match value {
        Value::Map(map) => Ok(map),
        _ => Err(JsonError::RootNotObject),
    }
}

#[allow(clippy::needless_pass_by_value)] // used as `map_err(to_error)`
fn to_error(err: serde_json::Error) -> JsonError {
    let reason = match err.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            "invalid JSON syntax".to_owned()
        }
        // Our own visitor's messages: they name keys, never values.
        _ => err
            .to_string()
            .split(" at line ")
            .next()
            .unwrap_or_default()
            .to_owned(),
    };
    JsonError::At {
        line: err.line(),
        column: err.column(),
        reason,
    }
}

/// `depth` counts the objects and arrays around the value being read, so
/// that [`MAX_DEPTH`] is enforced here, below `serde_json`'s own limit of 128
/// and with a message that says what is wrong.
struct ValueVisitor {
    depth: usize,
}

impl ValueVisitor {
    fn nested<E: de::Error>(&self) -> Result<Seed, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom(too_deep_reason()));
        }
        Ok(Seed {
            depth: self.depth + 1,
        })
    }
}

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        let text = if value { "True" } else { "False" };
        Ok(Value::Scalar(Scalar {
            kind: Kind::Bool,
            text: Zeroizing::new(text.to_owned()),
        }))
    }

    #[allow(clippy::cast_precision_loss)] // JSON numbers are float64 in sops too
    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(float(value as f64))
    }

    #[allow(clippy::cast_precision_loss)]
    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(float(value as f64))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(float(value))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::Scalar(Scalar::string(value)))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::Scalar(Scalar {
            kind: Kind::Str,
            text: Zeroizing::new(value),
        }))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let seed = self.nested()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(seed)? {
            items.push(item);
        }
        Ok(Value::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let seed = self.nested()?;
        let mut map: Map = Vec::new();
        let mut keys_seen: HashSet<String> = HashSet::new();
        while let Some(key) = access.next_key::<String>()? {
            if !keys_seen.insert(key.clone()) {
                return Err(de::Error::custom(format!("duplicate key `{key}`")));
            }
            let value = access.next_value_seed(seed)?;
            map.push((key, value));
        }
        Ok(Value::Map(map))
    }
}

/// Reads the value inside an object or array, one level deeper.
#[derive(Clone, Copy)]
struct Seed {
    depth: usize,
}

impl<'de> de::DeserializeSeed<'de> for Seed {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(ValueVisitor { depth: self.depth })
    }
}

fn float(value: f64) -> Value {
    Value::Scalar(Scalar {
        kind: Kind::Float,
        text: Zeroizing::new(go_format_float(value)),
    })
}

/// Emits a map as a JSON object in sops' layout.
pub fn emit(map: &Map) -> Zeroizing<String> {
    let mut out = SecretText::new();
    emit_map(&mut out, map, 0);
    out.push('\n');
    out.into_inner()
}

/// Emits any node as a JSON document (for `--extract` of a list).
pub fn emit_value_document(value: &Value) -> Zeroizing<String> {
    let mut out = SecretText::new();
    emit_value(&mut out, value, 0);
    out.push('\n');
    out.into_inner()
}

fn emit_map(out: &mut SecretText, map: &Map, depth: usize) {
    if map.is_empty() {
        out.push_str("{}");
        return;
    }
    out.push_str("{\n");
    for (index, (key, value)) in map.iter().enumerate() {
        tabs(out, depth + 1);
        push_quoted(out, key);
        out.push_str(": ");
        emit_value(out, value, depth + 1);
        if index + 1 < map.len() {
            out.push(',');
        }
        out.push('\n');
    }
    tabs(out, depth);
    out.push('}');
}

fn emit_value(out: &mut SecretText, value: &Value, depth: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Map(map) => emit_map(out, map, depth),
        Value::List(items) => {
            // Comments have no place in JSON; sops drops them there too.
            let items: Vec<&Value> = items.iter().filter(|v| !is_comment(v)).collect();
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push_str("[\n");
            for (index, item) in items.iter().enumerate() {
                tabs(out, depth + 1);
                emit_value(out, item, depth + 1);
                if index + 1 < items.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            tabs(out, depth);
            out.push(']');
        }
        Value::Scalar(scalar) => match scalar.kind {
            Kind::Int => out.push_str(&scalar.text),
            Kind::Float => match scalar.text.as_str() {
                // JSON has no spelling for these: write them as strings.
                "NaN" | "+Inf" | "-Inf" => push_quoted(out, &scalar.text),
                text => out.push_str(text),
            },
            Kind::Bool => out.push_str(if scalar.as_bool() { "true" } else { "false" }),
            Kind::Str | Kind::Bytes | Kind::Time | Kind::Comment => push_quoted(out, &scalar.text),
        },
    }
}

fn is_comment(value: &Value) -> bool {
    matches!(
        value,
        Value::Scalar(Scalar {
            kind: Kind::Comment,
            ..
        })
    )
}

fn tabs(out: &mut SecretText, depth: usize) {
    out.extend(std::iter::repeat_n('\t', depth));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_floats_and_order_is_kept() {
        let map =
            parse(r#"{"z":1,"a":{"n":null,"b":true,"l":["x",2.5]},"s":"é\n"}"#).expect("parses");
        let keys: Vec<&str> = map.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["z", "a", "s"]);
        assert_eq!(
            map[0].1,
            Value::Scalar(Scalar {
                kind: Kind::Float,
                text: Zeroizing::new("1".into())
            })
        );
        let emitted = emit(&map);
        assert!(emitted.starts_with("{\n\t\"z\": 1,\n\t\"a\": {\n\t\t\"n\": null,"));
        assert_eq!(parse(&emitted), Ok(map));
        // Exact float parsing (found by fuzzing): sops parses JSON numbers
        // with Go's correctly rounded ParseFloat, and the MAC hashes their text.
        let big = parse(r#"{"a":22222222222222222222222222222222222222222222222222222}"#)
            .expect("parses");
        assert_eq!(parse(&emit(&big)), Ok(big));
    }

    #[test]
    fn errors_name_the_position_and_never_the_content() {
        match parse("{\"a\": \"secret-value\",\n \"a\": 2}") {
            Err(JsonError::At { line, reason, .. }) => {
                assert_eq!(line, 2);
                assert!(reason.contains("duplicate key `a`"), "{reason}");
                assert!(!reason.contains("secret-value"));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(parse("{\"a\": \"secret-value"), Err(JsonError::At { reason, .. }) if !reason.contains("secret"))
        );
        assert_eq!(parse("[1]"), Err(JsonError::RootNotObject));
    }
}
