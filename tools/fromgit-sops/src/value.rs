//! The ordered document tree shared by the YAML and JSON stores.
//!
//! Order is part of the format: the MAC hashes leaves in document order, so
//! maps are kept as ordered lists of entries and never sorted. Scalars keep
//! their sops type and their exact plaintext bytes in zeroizing buffers, and
//! their `Debug` form never shows the text.

use std::fmt;

use zeroize::Zeroizing;

/// A sops value type, as named in the `type:` field of `ENC[…]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Str,
    Int,
    Float,
    Bool,
    Time,
    Bytes,
    Comment,
}

impl Kind {
    pub fn from_sops_name(name: &str) -> Option<Kind> {
        Some(match name {
            "str" => Kind::Str,
            "int" => Kind::Int,
            "float" => Kind::Float,
            "bool" => Kind::Bool,
            "time" => Kind::Time,
            "bytes" => Kind::Bytes,
            "comment" => Kind::Comment,
            _ => return None,
        })
    }

    pub fn sops_name(self) -> &'static str {
        match self {
            Kind::Str => "str",
            Kind::Int => "int",
            Kind::Float => "float",
            Kind::Bool => "bool",
            Kind::Time => "time",
            Kind::Bytes => "bytes",
            Kind::Comment => "comment",
        }
    }
}

/// A leaf: its sops type and its text in the canonical form sops' `ToBytes`
/// produces (the bytes the MAC hashes and the cipher encrypts).
#[derive(Clone, PartialEq, Eq)]
pub struct Scalar {
    pub kind: Kind,
    pub text: Zeroizing<String>,
}

impl Scalar {
    pub fn string(text: impl Into<String>) -> Self {
        Scalar {
            kind: Kind::Str,
            text: Zeroizing::new(text.into()),
        }
    }

    /// Builds a typed scalar from decrypted bytes, normalising them the way
    /// sops parses and re-serialises each type (`"+07"` as int is `7`).
    pub fn canonical(kind: Kind, text: Zeroizing<String>) -> Result<Self, ValueError> {
        let text = match kind {
            Kind::Str | Kind::Bytes | Kind::Comment | Kind::Time => text,
            Kind::Int => {
                let parsed: i64 = text.parse().map_err(|_| ValueError::BadTyped(kind))?;
                Zeroizing::new(parsed.to_string())
            }
            Kind::Float => {
                let parsed: f64 = text.parse().map_err(|_| ValueError::BadTyped(kind))?;
                Zeroizing::new(go_format_float(parsed))
            }
            Kind::Bool => {
                let value = parse_go_bool(&text).ok_or(ValueError::BadTyped(kind))?;
                Zeroizing::new(if value { "True" } else { "False" }.to_owned())
            }
        };
        Ok(Scalar { kind, text })
    }

    /// The boolean value of a `Bool` scalar.
    pub fn as_bool(&self) -> bool {
        self.text.as_str() == "True"
    }
}

impl fmt::Debug for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Scalar({}, <{} bytes>)",
            self.kind.sops_name(),
            self.text.len()
        )
    }
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)`: shortest round-trip digits, no
/// exponent. Rust's `Display` for `f64` agrees except for the non-finite values.
pub fn go_format_float(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{value}")
    }
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// A document node.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Value {
    Null,
    Scalar(Scalar),
    Map(Map),
    List(Vec<Value>),
}

/// An ordered mapping; keys are unique (the readers refuse duplicates).
pub type Map = Vec<(String, Value)>;

/// The deepest nesting of maps and lists that fromgit reads or writes, the
/// root map being level 1. One limit for every reader and writer, so that
/// nothing fromgit writes is refused when read back, by fromgit (whose JSON
/// reader stops at 128) or by sops (whose readers stop at 10,000); and low
/// enough that the recursive walks over a tree stay far within any thread's
/// stack. Real secrets files nest a handful of levels.
pub const MAX_DEPTH: usize = 100;

/// The nesting depth of a document, the root map being level 1. Measured
/// with an explicit stack, so a tree of any depth can be measured.
pub fn depth(map: &Map) -> usize {
    let mut deepest = 1;
    let mut pending: Vec<(&Value, usize)> = map.iter().map(|(_, value)| (value, 2)).collect();
    while let Some((value, level)) = pending.pop() {
        match value {
            Value::Map(inner) => {
                deepest = deepest.max(level);
                pending.extend(inner.iter().map(|(_, value)| (value, level + 1)));
            }
            Value::List(items) => {
                deepest = deepest.max(level);
                pending.extend(items.iter().map(|value| (value, level + 1)));
            }
            Value::Null | Value::Scalar(_) => {}
        }
    }
    deepest
}

/// Calls `f` with the path and value of every leaf (scalar or null) of
/// `map`, in document order. Recursive: for a tree read by this crate,
/// whose depth is at most [`MAX_DEPTH`].
pub fn walk_leaves(map: &Map, f: &mut dyn FnMut(&KeyPath, &Value)) {
    walk_map(map, &mut KeyPath::default(), f);
}

fn walk_map(map: &Map, path: &mut KeyPath, f: &mut dyn FnMut(&KeyPath, &Value)) {
    for (key, value) in map {
        path.push(PathStep::Key(key.clone()));
        walk_value(value, path, f);
        path.pop();
    }
}

fn walk_value(value: &Value, path: &mut KeyPath, f: &mut dyn FnMut(&KeyPath, &Value)) {
    match value {
        Value::Map(map) => walk_map(map, path, f),
        Value::List(items) => {
            for (index, item) in items.iter().enumerate() {
                path.push(PathStep::Index(index));
                walk_value(item, path, f);
                path.pop();
            }
        }
        leaf => f(path, leaf),
    }
}

/// Errors about values, independent of the file they come from.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ValueError {
    /// A decrypted `type:int|float|bool` value does not parse as that type.
    #[error("decrypted value does not parse as type `{}`", .0.sops_name())]
    BadTyped(Kind),
}

/// The map keys from the root to a leaf plus the list indices on the way:
/// the keys form the AAD, the whole path names the leaf in messages.
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub struct KeyPath(Vec<PathStep>);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathStep {
    Key(String),
    Index(usize),
}

impl KeyPath {
    pub fn push(&mut self, step: PathStep) {
        self.0.push(step);
    }

    pub fn pop(&mut self) {
        self.0.pop();
    }

    pub fn steps(&self) -> &[PathStep] {
        &self.0
    }

    /// The map keys on the path (list indices never enter the AAD).
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|step| match step {
            PathStep::Key(key) => Some(key.as_str()),
            PathStep::Index(_) => None,
        })
    }

    /// sops' additional data: the keys joined with `:`, plus a trailing `:`.
    pub fn aad(&self) -> String {
        let mut aad = String::new();
        for key in self.keys() {
            aad.push_str(key);
            aad.push(':');
        }
        if aad.is_empty() {
            aad.push(':');
        }
        aad
    }

    /// Parses sops' `--extract` syntax: `["a"]["b"][0]`.
    pub fn parse_extract(text: &str) -> Result<Self, ExtractSyntaxError> {
        let mut steps = Vec::new();
        let mut rest = text.trim();
        while !rest.is_empty() {
            let inner = rest.strip_prefix('[').ok_or(ExtractSyntaxError::Syntax)?;
            if let Some(quoted) = inner.strip_prefix('"') {
                let end = quoted.find("\"]").ok_or(ExtractSyntaxError::Syntax)?;
                steps.push(PathStep::Key(quoted[..end].to_owned()));
                rest = &quoted[end + 2..];
            } else {
                let end = inner.find(']').ok_or(ExtractSyntaxError::Syntax)?;
                let index = inner[..end]
                    .trim()
                    .parse()
                    .map_err(|_| ExtractSyntaxError::Syntax)?;
                steps.push(PathStep::Index(index));
                rest = &inner[end + 1..];
            }
        }
        if steps.is_empty() {
            return Err(ExtractSyntaxError::Syntax);
        }
        // A path of n steps puts its value at level n + 1.
        if steps.len() >= MAX_DEPTH {
            return Err(ExtractSyntaxError::TooDeep(steps.len()));
        }
        Ok(KeyPath(steps))
    }
}

/// Renders in the `--extract` syntax, `["tls"]["key"]`, so messages point at a
/// leaf the user can pass back.
impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for step in &self.0 {
            match step {
                PathStep::Key(key) => write!(f, "[{key:?}]")?,
                PathStep::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExtractSyntaxError {
    /// The text is not in the `--extract` syntax.
    #[error("expected a path such as `[\"tls\"][\"key\"]` or `[\"list\"][0]`")]
    Syntax,
    /// The path would put a value deeper than fromgit writes.
    #[error("the path has {0} steps; fromgit nests at most {MAX_DEPTH} levels")]
    TooDeep(usize),
}

impl Value {
    /// Finds the node at `path`.
    pub fn get(&self, path: &KeyPath) -> Option<&Value> {
        let mut node = self;
        for step in path.steps() {
            node = match (step, node) {
                (PathStep::Key(key), Value::Map(map)) => &map.iter().find(|(k, _)| k == key)?.1,
                (PathStep::Index(index), Value::List(items)) => items.get(*index)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// Sets the node at `path`, creating maps for missing keys. Returns false
    /// when the path crosses a scalar or an index beyond a list's end.
    pub fn set(&mut self, path: &KeyPath, value: Value) -> bool {
        let Some((last, parents)) = path.steps().split_last() else {
            *self = value;
            return true;
        };
        let mut node = self;
        for step in parents {
            node = match (step, node) {
                (PathStep::Key(key), Value::Map(map)) => map_entry(map, key),
                (PathStep::Index(index), Value::List(items)) => match items.get_mut(*index) {
                    Some(item) => item,
                    None => return false,
                },
                _ => return false,
            };
        }
        match (last, node) {
            (PathStep::Key(key), Value::Map(map)) => {
                *map_entry(map, key) = value;
                true
            }
            (PathStep::Index(index), Value::List(items)) => {
                if let Some(slot) = items.get_mut(*index) {
                    *slot = value;
                    true
                } else {
                    false
                }
            }
            _ => false,
        }
    }
}

fn map_entry<'a>(map: &'a mut Map, key: &str) -> &'a mut Value {
    let position = map.iter().position(|(k, _)| k == key).unwrap_or_else(|| {
        map.push((key.to_owned(), Value::Map(Vec::new())));
        map.len() - 1
    });
    &mut map[position].1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aad_joins_keys_and_skips_indices() {
        let mut path = KeyPath::default();
        assert_eq!(path.aad(), ":");
        path.push(PathStep::Key("nested".into()));
        path.push(PathStep::Index(3));
        path.push(PathStep::Key("file".into()));
        assert_eq!(path.aad(), "nested:file:");
        assert_eq!(path.to_string(), r#"["nested"][3]["file"]"#);
    }

    #[test]
    fn extract_syntax_round_trips() {
        let path = KeyPath::parse_extract(r#"["tls"]["wildcard"][1]"#).expect("valid");
        assert_eq!(path.to_string(), r#"["tls"]["wildcard"][1]"#);
        assert!(KeyPath::parse_extract(r#"["open"#).is_err());
        assert!(KeyPath::parse_extract("tls.key").is_err());
        assert!(KeyPath::parse_extract("").is_err());
        let deepest = r#"["k"]"#.repeat(MAX_DEPTH - 1);
        assert!(KeyPath::parse_extract(&deepest).is_ok());
        let too_deep = r#"["k"]"#.repeat(MAX_DEPTH);
        assert_eq!(
            KeyPath::parse_extract(&too_deep),
            Err(ExtractSyntaxError::TooDeep(MAX_DEPTH))
        );
    }

    #[test]
    fn walk_leaves_visits_every_leaf_in_document_order_with_its_path() {
        let map: Map = vec![
            ("a".to_owned(), Value::Scalar(Scalar::string("1"))),
            (
                "b".to_owned(),
                Value::List(vec![
                    Value::Map(vec![("c".to_owned(), Value::Null)]),
                    Value::Scalar(Scalar::string("2")),
                    Value::Map(Vec::new()),
                ]),
            ),
        ];
        let mut seen = Vec::new();
        walk_leaves(&map, &mut |path, value| {
            seen.push((path.steps().to_vec(), matches!(value, Value::Null)));
        });
        let key = |k: &str| PathStep::Key(k.to_owned());
        assert_eq!(
            seen,
            [
                (vec![key("a")], false),
                (vec![key("b"), PathStep::Index(0), key("c")], true),
                (vec![key("b"), PathStep::Index(1)], false),
            ]
        );
    }

    #[test]
    fn depth_counts_maps_and_lists_from_the_root() {
        assert_eq!(depth(&Vec::new()), 1);
        let mut nested = Value::Scalar(Scalar::string("leaf"));
        for level in 0..20_000 {
            nested = if level % 2 == 0 {
                Value::List(vec![nested])
            } else {
                Value::Map(vec![("k".to_owned(), nested)])
            };
        }
        let root = vec![("top".to_owned(), nested)];
        assert_eq!(depth(&root), 20_001);
        // Dropping a tree this deep would recurse past a test thread's stack.
        std::mem::forget(root);
    }

    #[test]
    fn canonical_forms_follow_go() {
        let canon = |kind, text: &str| {
            Scalar::canonical(kind, Zeroizing::new(text.to_owned()))
                .map(|s| s.text.as_str().to_owned())
        };
        assert_eq!(canon(Kind::Int, "+07").as_deref(), Ok("7"));
        assert_eq!(canon(Kind::Float, "1").as_deref(), Ok("1"));
        assert_eq!(canon(Kind::Float, "1.50").as_deref(), Ok("1.5"));
        assert_eq!(
            canon(Kind::Float, "1e21").as_deref(),
            Ok("1000000000000000000000")
        );
        assert_eq!(canon(Kind::Float, "1e-7").as_deref(), Ok("0.0000001"));
        assert_eq!(canon(Kind::Bool, "true").as_deref(), Ok("True"));
        assert_eq!(canon(Kind::Bool, "F").as_deref(), Ok("False"));
        assert_eq!(
            canon(Kind::Bool, "yes"),
            Err(ValueError::BadTyped(Kind::Bool))
        );
        assert_eq!(
            canon(Kind::Int, "1.5"),
            Err(ValueError::BadTyped(Kind::Int))
        );
    }

    #[test]
    fn debug_never_shows_text() {
        let scalar = Scalar::string("hunter2");
        assert!(!format!("{scalar:?}").contains("hunter2"));
        assert!(!format!("{:?}", Value::Scalar(scalar)).contains("hunter2"));
    }

    #[test]
    fn set_creates_maps_and_get_finds_them() {
        let mut root = Value::Map(Vec::new());
        let path = KeyPath::parse_extract(r#"["tls"]["key"]"#).expect("valid");
        assert!(root.set(&path, Value::Scalar(Scalar::string("k"))));
        assert_eq!(root.get(&path), Some(&Value::Scalar(Scalar::string("k"))));
        let through_scalar = KeyPath::parse_extract(r#"["tls"]["key"]["x"]"#).expect("valid");
        assert!(!root.set(&through_scalar, Value::Null));
    }
}
