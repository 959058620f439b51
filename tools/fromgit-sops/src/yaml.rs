//! YAML store: a reader over `yaml-rust2`'s event parser and a small emitter
//! of our own.
//!
//! The reader keeps document order and resolves plain scalars the way sops'
//! Go YAML library (yaml.v3) does for the unambiguous cases: null, the
//! true/false spellings, decimal integers and decimal floats. Plain scalars
//! that the two YAML worlds read differently (`0755`, `1_000`, `0x1F`, `.inf`,
//! dates) are refused with a hint to quote them, rather than guessed.
//!
//! The emitter writes the shape sops writes: four-space indentation,
//! sequences indented under their key, literal blocks for multi-line text,
//! double-quoted strings wherever a plain scalar could be misread.

use std::collections::HashSet;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};
use zeroize::Zeroizing;

use crate::text::SecretText;

use crate::value::{Kind, Map, Scalar, Value, MAX_DEPTH};

/// Why a YAML text could not be read. Line and column are 1-based; no
/// variant carries document content.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum YamlError {
    #[error("line {line}, column {column}: {reason}")]
    At {
        line: usize,
        column: usize,
        reason: String,
    },
    /// The stream holds more than one document.
    #[error("more than one YAML document: sops reads only the first, so fromgit refuses the file")]
    MultiDocument,
    /// The top-level node is not a mapping.
    #[error("the top level of the document must be a mapping")]
    RootNotMap,
}

fn at(mark: Marker, reason: impl Into<String>) -> YamlError {
    YamlError::At {
        line: mark.line(),
        column: mark.col() + 1,
        reason: reason.into(),
    }
}

/// Parses a YAML document into an ordered map. An empty document is an empty map.
pub fn parse(text: &str) -> Result<Map, YamlError> {
    let mut reader = Reader {
        parser: Parser::new_from_str(text),
        depth: 0,
    };
    reader.expect_stream_start()?;
    let (event, mark) = reader.next()?;
    let root = match event {
        Event::StreamEnd => return Ok(Vec::new()),
        Event::DocumentStart => {
            let (event, mark) = reader.next()?;
            reader.node(event, mark)?
        }
        _ => return Err(at(mark, "expected a document")),
    };
    match reader.next()?.0 {
        Event::DocumentEnd => {}
        _ => return Err(YamlError::MultiDocument),
    }
    match reader.next()?.0 {
        Event::StreamEnd => {}
        _ => return Err(YamlError::MultiDocument),
    }
    match root {
        Value::Map(map) => Ok(map),
        Value::Null => Ok(Vec::new()),
        _ => Err(YamlError::RootNotMap),
    }
}

struct Reader<'a> {
    parser: Parser<std::str::Chars<'a>>,
    /// Maps and lists open around the current event.
    depth: usize,
}

impl Reader<'_> {
    fn next(&mut self) -> Result<(Event, Marker), YamlError> {
        self.parser.next_token().map_err(|err| {
            let mark = *err.marker();
            at(mark, err.info().to_owned())
        })
    }

    fn expect_stream_start(&mut self) -> Result<(), YamlError> {
        match self.next()? {
            (Event::StreamStart, _) => Ok(()),
            (_, mark) => Err(at(mark, "expected the start of a YAML stream")),
        }
    }

    fn node(&mut self, event: Event, mark: Marker) -> Result<Value, YamlError> {
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                refuse_anchor(anchor, mark)?;
                resolve_scalar(text, style, tag.as_ref(), mark)
            }
            Event::MappingStart(anchor, tag) => {
                refuse_anchor(anchor, mark)?;
                refuse_tag(tag.as_ref(), mark)?;
                self.enter(mark)?;
                let map = self.mapping();
                self.depth -= 1;
                map
            }
            Event::SequenceStart(anchor, tag) => {
                refuse_anchor(anchor, mark)?;
                refuse_tag(tag.as_ref(), mark)?;
                self.enter(mark)?;
                let list = self.sequence();
                self.depth -= 1;
                list
            }
            Event::Alias(_) => Err(at(mark, "aliases (`*name`) are not supported")),
            _ => Err(at(mark, "unexpected YAML structure")),
        }
    }

    /// Opens one more level of nesting, refusing to go past [`MAX_DEPTH`]
    /// before the recursion does.
    fn enter(&mut self, mark: Marker) -> Result<(), YamlError> {
        if self.depth >= MAX_DEPTH {
            return Err(at(mark, too_deep_reason()));
        }
        self.depth += 1;
        Ok(())
    }

    fn mapping(&mut self) -> Result<Value, YamlError> {
        let mut map: Map = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        loop {
            let (event, mark) = self.next()?;
            let key = match event {
                Event::MappingEnd => return Ok(Value::Map(map)),
                Event::Scalar(text, style, anchor, tag) => {
                    refuse_anchor(anchor, mark)?;
                    match resolve_scalar(text, style, tag.as_ref(), mark)? {
                        Value::Scalar(Scalar {
                            kind: Kind::Str,
                            text,
                        }) => text.to_string(),
                        _ => return Err(at(mark, "mapping keys must be strings (quote this key)")),
                    }
                }
                _ => return Err(at(mark, "mapping keys must be strings")),
            };
            if key == "<<" {
                return Err(at(mark, "merge keys (`<<`) are not supported"));
            }
            if !seen.insert(key.clone()) {
                return Err(at(mark, format!("duplicate key `{key}`")));
            }
            let (event, mark) = self.next()?;
            let value = self.node(event, mark)?;
            map.push((key, value));
        }
    }

    fn sequence(&mut self) -> Result<Value, YamlError> {
        let mut items = Vec::new();
        loop {
            let (event, mark) = self.next()?;
            if event == Event::SequenceEnd {
                return Ok(Value::List(items));
            }
            items.push(self.node(event, mark)?);
        }
    }
}

/// The reason given for a document nested deeper than fromgit reads, in
/// every format.
pub(crate) fn too_deep_reason() -> String {
    format!(
        "nested deeper than {MAX_DEPTH} levels, the most fromgit reads or writes \
         (sops itself stops at 10000)"
    )
}

fn refuse_anchor(anchor: usize, mark: Marker) -> Result<(), YamlError> {
    if anchor == 0 {
        Ok(())
    } else {
        Err(at(mark, "anchors (`&name`) are not supported"))
    }
}

fn refuse_tag(tag: Option<&yaml_rust2::parser::Tag>, mark: Marker) -> Result<(), YamlError> {
    match tag {
        None => Ok(()),
        Some(tag) => Err(at(
            mark,
            format!("tag `{}{}` is not supported", tag.handle, tag.suffix),
        )),
    }
}

fn resolve_scalar(
    text: String,
    style: TScalarStyle,
    tag: Option<&yaml_rust2::parser::Tag>,
    mark: Marker,
) -> Result<Value, YamlError> {
    let text = Zeroizing::new(text);
    if let Some(tag) = tag {
        if tag.handle == "tag:yaml.org,2002:" && tag.suffix == "str" {
            return Ok(Value::Scalar(Scalar {
                kind: Kind::Str,
                text,
            }));
        }
        return Err(at(
            mark,
            format!("tag `{}{}` is not supported", tag.handle, tag.suffix),
        ));
    }
    if style != TScalarStyle::Plain {
        return Ok(Value::Scalar(Scalar {
            kind: Kind::Str,
            text,
        }));
    }
    let kind =
        match plain_kind(&text) {
            PlainKind::Null => return Ok(Value::Null),
            PlainKind::Ambiguous => return Err(at(
                mark,
                "this unquoted value reads differently in Go and Rust YAML (octal, underscore, \
                 hex, infinity or date); quote it",
            )),
            PlainKind::Typed(kind) => kind,
        };
    Scalar::canonical(kind, text)
        .map(Value::Scalar)
        .map_err(|err| at(mark, err.to_string()))
}

enum PlainKind {
    Null,
    Typed(Kind),
    Ambiguous,
}

/// yaml.v3's resolution of a plain scalar, restricted to the forms both YAML
/// worlds read alike.
fn plain_kind(text: &str) -> PlainKind {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return PlainKind::Null,
        "true" | "True" | "TRUE" | "false" | "False" | "FALSE" => {
            return PlainKind::Typed(Kind::Bool)
        }
        _ => {}
    }
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let Some(first) = unsigned.chars().next() else {
        return PlainKind::Typed(Kind::Str);
    };
    if !(first.is_ascii_digit() || first == '.') {
        return PlainKind::Typed(Kind::Str);
    }
    let all_digits = unsigned.bytes().all(|b| b.is_ascii_digit());
    if all_digits {
        return if unsigned.len() > 1 && unsigned.starts_with('0') {
            PlainKind::Ambiguous // yaml.v3 reads 0755 as octal
        } else if text.parse::<i64>().is_ok() {
            PlainKind::Typed(Kind::Int)
        } else {
            PlainKind::Ambiguous // beyond int64: yaml.v3 switches to uint64 or float
        };
    }
    if is_decimal_float(unsigned) {
        // yaml.v3 keeps a float that overflows (Go's ParseFloat fails with
        // ErrRange) as a string.
        let finite = text.parse::<f64>().is_ok_and(f64::is_finite);
        return PlainKind::Typed(if finite { Kind::Float } else { Kind::Str });
    }
    let lower = unsigned.to_ascii_lowercase();
    let looks_like_date = unsigned.len() >= 8
        && unsigned.as_bytes()[..4].iter().all(u8::is_ascii_digit)
        && unsigned.as_bytes()[4] == b'-';
    if unsigned.contains('_')
        || lower.starts_with("0x")
        || lower.starts_with("0o")
        || lower.starts_with("0b")
        || matches!(lower.as_str(), ".inf" | ".nan")
        || looks_like_date
    {
        return PlainKind::Ambiguous;
    }
    PlainKind::Typed(Kind::Str)
}

/// yaml.v3's `yamlStyleFloat`: `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`,
/// applied to the unsigned part.
fn is_decimal_float(unsigned: &str) -> bool {
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(i) => (&unsigned[..i], Some(&unsigned[i + 1..])),
        None => (unsigned, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => {
            int.bytes().all(|b| b.is_ascii_digit())
                && frac.bytes().all(|b| b.is_ascii_digit())
                && (!int.is_empty() || !frac.is_empty())
        }
        None => !mantissa.is_empty() && mantissa.bytes().all(|b| b.is_ascii_digit()),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let digits = e.strip_prefix(['-', '+']).unwrap_or(e);
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    });
    mantissa_ok && exponent_ok
}

/// Whether a YAML text holds comment lines, which the reader does not keep.
pub fn comment_lines(text: &str) -> usize {
    text.lines()
        .filter(|line| line.trim_start().starts_with('#'))
        .count()
}

/// Emits a mapping as a YAML document.
pub fn emit(map: &Map) -> Zeroizing<String> {
    let mut out = SecretText::new();
    if map.is_empty() {
        out.push_str("{}\n");
    } else {
        emit_map(&mut out, map, 0, 0);
    }
    out.into_inner()
}

/// Emits a list as a YAML document (for `--extract` of a list).
pub fn emit_list_document(items: &[Value]) -> Zeroizing<String> {
    let mut out = SecretText::new();
    if items.is_empty() {
        out.push_str("[]\n");
    } else {
        emit_list(&mut out, items, 0);
    }
    out.into_inner()
}

const INDENT: usize = 4;

/// YAML's limit on an implicit (`key: value`) key's length, with a margin.
const MAX_IMPLICIT_KEY: usize = 1000;

/// `key_column` is where keys start; `level` is the mapping's indentation level
/// (the dash column for a mapping inside a sequence item), which block
/// scalars are indented from, as yaml.v3 does.
fn emit_map(out: &mut SecretText, map: &Map, key_column: usize, level: usize) {
    for (index, (key, value)) in map.iter().enumerate() {
        if index > 0 {
            pad(out, key_column);
        }
        let mut key_text = SecretText::new();
        emit_string(&mut key_text, key, false);
        let key_text = key_text.into_inner();
        if key_text.chars().count() > MAX_IMPLICIT_KEY {
            // YAML limits implicit keys to 1024 characters: use an explicit key.
            out.push_str("? ");
            out.push_str(&key_text);
            out.push('\n');
            pad(out, key_column);
        } else {
            out.push_str(&key_text);
        }
        out.push(':');
        match value {
            Value::Map(inner) if !inner.is_empty() => {
                out.push('\n');
                pad(out, key_column + INDENT);
                emit_map(out, inner, key_column + INDENT, key_column + INDENT);
            }
            Value::List(items) if !items.is_empty() => {
                out.push('\n');
                emit_list(out, items, key_column + INDENT);
            }
            _ => {
                out.push(' ');
                emit_leaf(out, value, level + INDENT);
            }
        }
    }
}

fn emit_list(out: &mut SecretText, items: &[Value], dash_column: usize) {
    for item in items {
        pad(out, dash_column);
        match item {
            Value::Scalar(Scalar {
                kind: Kind::Comment,
                text,
            }) => {
                for (index, line) in text.split('\n').enumerate() {
                    if index > 0 {
                        pad(out, dash_column);
                    }
                    out.push('#');
                    out.push_str(line);
                    out.push('\n');
                }
            }
            Value::Map(inner) if !inner.is_empty() => {
                out.push_str("- ");
                emit_map(out, inner, dash_column + 2, dash_column);
            }
            Value::List(inner) if !inner.is_empty() => {
                out.push_str("-\n");
                emit_list(out, inner, dash_column + INDENT);
            }
            _ => {
                out.push_str("- ");
                emit_leaf(out, item, dash_column + INDENT);
            }
        }
    }
}

fn pad(out: &mut SecretText, width: usize) {
    out.extend(std::iter::repeat_n(' ', width));
}

/// Writes a leaf and its line end; block scalar content goes at `block_column`.
fn emit_leaf(out: &mut SecretText, value: &Value, block_column: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Map(_) => out.push_str("{}"),
        Value::List(_) => out.push_str("[]"),
        Value::Scalar(scalar) => match scalar.kind {
            Kind::Int => out.push_str(&scalar.text),
            Kind::Float => emit_float(out, &scalar.text),
            Kind::Bool => out.push_str(if scalar.as_bool() { "true" } else { "false" }),
            Kind::Str | Kind::Bytes | Kind::Time | Kind::Comment => {
                if block_safe(&scalar.text) {
                    emit_literal_block(out, &scalar.text, block_column);
                    return;
                }
                emit_string(out, &scalar.text, true);
            }
        },
    }
    out.push('\n');
}

fn emit_float(out: &mut SecretText, text: &str) {
    match text {
        "NaN" => out.push_str(".nan"),
        "+Inf" => out.push_str(".inf"),
        "-Inf" => out.push_str("-.inf"),
        _ => {
            out.push_str(text);
            // Keep it a float when read back: `1` would come back as an int.
            if !text.contains(['.', 'e', 'E']) {
                out.push_str(".0");
            }
        }
    }
}

/// Multi-line text that a literal block reproduces exactly.
fn block_safe(text: &str) -> bool {
    let body = text.trim_end_matches('\n');
    text.contains('\n')
        && !text.starts_with([' ', '\t', '\n'])
        && text
            .chars()
            .all(|c| c == '\n' || c == '\t' || !needs_escape(c))
        && body
            .split('\n')
            .all(|line| line.is_empty() || !line.trim().is_empty())
}

fn emit_literal_block(out: &mut SecretText, text: &str, column: usize) {
    let trailing_newlines = text.len() - text.trim_end_matches('\n').len();
    out.push_str(match trailing_newlines {
        0 => "|-",
        1 => "|",
        _ => "|+",
    });
    out.push('\n');
    let body = text.trim_end_matches('\n');
    for line in body.split('\n') {
        if !line.is_empty() {
            pad(out, column);
            out.push_str(line);
        }
        out.push('\n');
    }
    for _ in 1..trailing_newlines {
        out.push('\n');
    }
}

/// Writes a string plain when no YAML reader could take it for anything
/// else, and double-quoted (JSON-compatible escapes) otherwise.
fn emit_string(out: &mut SecretText, text: &str, is_value: bool) {
    if plain_safe(text, is_value) {
        out.push_str(text);
    } else {
        push_quoted(out, text);
    }
}

fn plain_safe(text: &str, is_value: bool) -> bool {
    if is_value && text.starts_with("ENC[AES256_GCM,") && !text.contains(['\n', '#', '"']) {
        return true;
    }
    let mut chars = text.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    // Letters of any script are plain in every YAML reader; punctuation is not.
    let first_ok = first.is_alphabetic() || first == '_';
    let rest_ok = chars.all(|c| c.is_alphanumeric() || "_.-/@".contains(c));
    let is_version = {
        let parts: Vec<&str> = text.split('.').collect();
        parts.len() == 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    };
    // YAML 1.1 readers take these words for booleans or null.
    let reserved = matches!(
        text.to_ascii_lowercase().as_str(),
        "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null"
    );
    (first_ok && rest_ok && !reserved) || is_version
}

fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{feff}')
}

/// A double-quoted string with escapes that YAML and JSON read alike.
pub(crate) fn push_quoted(out: &mut SecretText, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if needs_escape(c) => {
                use std::fmt::Write as _;
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests;
