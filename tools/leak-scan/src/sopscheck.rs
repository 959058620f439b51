//! sops enforcement, which no general scanner does: a file that a
//! `.sops.yaml` creation rule covers must be a valid sops file, and every
//! value of a sops file must be `ENC[…]` unless the file's own selection
//! rule leaves it clear. A sops file with values in clear is what a
//! decrypt-in-place or a bad merge leaves behind.

use std::path::Path;

use fromgit_sops::detect::{self, looks_like_sops};
use fromgit_sops::{EncryptedFile, Format, Value};
use yaml_rust2::parser::{Event, Parser};
use zeroize::Zeroizing;

use crate::rules::{SOPS_NOT_ENCRYPTED, SOPS_PLAINTEXT, SOPS_UNPARSABLE};

/// The deepest nesting handed to the sops reader: fromgit-sops' own limit
/// (deeper files it refuses, and they are reported as unreadable here, never
/// clean). The count on the event stream comes first because a recursive
/// reader given a hostile file nested 20,000 levels would overflow its stack
/// and abort the whole scan.
pub const MAX_DEPTH: usize = fromgit_sops::value::MAX_DEPTH;

/// Nesting up to this depth is read on the calling thread (a scan worker's
/// stack); deeper files get a thread whose stack is sized for their depth.
const INLINE_DEPTH: usize = 64;

/// The deepest `.sops.yaml` accepted: a real one is a handful of levels
/// deep, and its rules live for the whole scan, so it is read on the
/// calling thread.
pub const CONFIG_MAX_DEPTH: usize = INLINE_DEPTH;

/// Stack per nesting level for the sops reader, generous for a debug build.
const STACK_PER_LEVEL: usize = 16 << 10;

/// Why `.sops.yaml` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The config is not YAML, has the wrong shape or an invalid `path_regex`.
    #[error(transparent)]
    Config(#[from] fromgit_sops::config::ConfigError),
    /// The config is not YAML, or nested deeper than a config ever is.
    #[error("`{0}` is not YAML, or is nested deeper than {CONFIG_MAX_DEPTH} levels")]
    TooDeep(String),
}

/// A hit of the sops checks: where, which rule, and the bytes its content
/// fingerprint is made of (the key path and the clear value, or the whole
/// unreadable file), zeroized after use.
pub struct SopsHit {
    pub offset: usize,
    pub rule: &'static str,
    pub material: Zeroizing<Vec<u8>>,
}

/// The deepest nesting of mappings and sequences, counted on the event
/// stream without building a tree; `None` when the text is not YAML (or
/// JSON) or the count passes [`MAX_DEPTH`]. The event parser keeps its own
/// state stack on the heap, so this never recurses.
pub fn nesting_depth(text: &str) -> Option<usize> {
    let mut parser = Parser::new_from_str(text);
    let (mut depth, mut deepest) = (0usize, 0usize);
    loop {
        let (event, _) = parser.next_token().ok()?;
        match event {
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                depth += 1;
                deepest = deepest.max(depth);
                if deepest > MAX_DEPTH {
                    return None;
                }
            }
            Event::MappingEnd | Event::SequenceEnd => depth = depth.saturating_sub(1),
            Event::StreamEnd => return Some(deepest),
            _ => {}
        }
    }
}

/// The deepest nesting of a JSON text's arrays and objects (strings
/// skipped); `None` past [`MAX_DEPTH`]. Malformed JSON is left to the reader.
pub fn json_depth(text: &str) -> Option<usize> {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for b in text.bytes() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
                if deepest > MAX_DEPTH {
                    return None;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Some(deepest)
}

/// Runs `read` (which parses and drops a sops tree) with a stack deep
/// enough for `depth` levels; `None` if it could not run.
fn with_stack_for<T: Send>(depth: usize, read: impl FnOnce() -> T + Send) -> Option<T> {
    if depth <= INLINE_DEPTH {
        return Some(read());
    }
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("sops-reader".to_owned())
            .stack_size((depth + INLINE_DEPTH) * STACK_PER_LEVEL)
            .spawn_scoped(scope, read)
            .ok()?
            .join()
            .ok()
    })
}

/// Parses a sops file behind the depth guard, and hands the parsed file to
/// `inspect` on the same stack; `None` when the reader refuses the text
/// (not YAML/JSON, nested too deep, not a sops file).
fn read_guarded<T: Send>(
    text: &str,
    format: Format,
    inspect: impl FnOnce(&EncryptedFile) -> T + Send,
) -> Option<T> {
    let depth = match format {
        Format::Yaml => nesting_depth(text)?,
        Format::Json => json_depth(text)?,
    };
    with_stack_for(depth, || {
        EncryptedFile::parse(text, format)
            .ok()
            .map(|file| inspect(&file))
    })
    .flatten()
}

/// The sops checks for one piece of content: values in clear in a sops
/// file, and a file that looks like sops but cannot be read (its values
/// could not be checked, so it is never clean).
pub fn check(data: &[u8]) -> Vec<SopsHit> {
    if !looks_like_sops(data) {
        return Vec::new();
    }
    let unreadable = || {
        vec![SopsHit {
            offset: 0,
            rule: SOPS_UNPARSABLE,
            material: Zeroizing::new(data.to_vec()),
        }]
    };
    let Ok(text) = std::str::from_utf8(data) else {
        return unreadable();
    };
    let Some(leaves) = read_guarded(text, Format::sniff(data), clear_leaves) else {
        return unreadable();
    };
    leaves
        .into_iter()
        .map(|(key, material)| SopsHit {
            offset: locate_key(text, &key),
            rule: SOPS_PLAINTEXT,
            material,
        })
        .collect()
}

/// Leaves that should be encrypted but are not: the last key of each, and
/// its key path and value as fingerprint material.
fn clear_leaves(file: &EncryptedFile) -> Vec<(String, Zeroizing<Vec<u8>>)> {
    let Ok(matcher) = file.metadata.selection.matcher() else {
        return vec![("sops".to_owned(), Zeroizing::new(b"sops".to_vec()))];
    };
    let mut out = Vec::new();
    fromgit_sops::value::walk_leaves(&file.tree, &mut |path, value| {
        let encrypted_by_rule = matcher.encrypts(path.keys());
        let clear = match value {
            Value::Scalar(scalar) => !detect::is_encrypted(&scalar.text) && !scalar.text.is_empty(),
            _ => false,
        };
        if let (true, Value::Scalar(scalar)) = (encrypted_by_rule && clear, value) {
            let mut material = Zeroizing::new(Vec::new());
            for key in path.keys() {
                material.extend_from_slice(key.as_bytes());
                material.push(0);
            }
            material.extend_from_slice(scalar.text.as_bytes());
            out.push((path.keys().last().unwrap_or("").to_owned(), material));
        }
    });
    out
}

/// The offset of the first `key:` or `"key"` in the text (0 when not found).
fn locate_key(text: &str, key: &str) -> usize {
    [format!("{key}:"), format!("\"{key}\"")]
        .iter()
        .filter_map(|needle| text.find(needle.as_str()))
        .min()
        .unwrap_or(0)
}

/// The creation rules of a `.sops.yaml`: which files must be sops files.
pub struct Policy(fromgit_sops::config::CreationRules);

impl Policy {
    /// Reads `<root>/.sops.yaml`, if there is one.
    pub fn load(root: &Path) -> Result<Option<Self>, PolicyError> {
        let path = root.join(fromgit_sops::config::CONFIG_NAME);
        if !path.is_file() {
            return Ok(None);
        }
        let text = fs_err::read_to_string(&path)?;
        Self::parse(&text, &path.display().to_string()).map(Some)
    }

    pub fn parse(text: &str, name: &str) -> Result<Self, PolicyError> {
        if nesting_depth(text).is_none_or(|depth| depth > CONFIG_MAX_DEPTH) {
            return Err(PolicyError::TooDeep(name.to_owned()));
        }
        Ok(Policy(fromgit_sops::config::CreationRules::parse(
            Path::new(name),
            text,
        )?))
    }

    /// Whether a creation rule covers this path (relative to the config's directory).
    pub fn covers(&self, relative: &str) -> bool {
        self.0.matching(relative).is_some()
    }
}

/// The finding for a covered file, if any: not a sops file at all. (Values
/// in clear inside a valid sops file are found for every file by the engine.)
pub fn check_covered(data: &[u8], relative: &str) -> Option<&'static str> {
    let Ok(text) = std::str::from_utf8(data) else {
        return Some(SOPS_NOT_ENCRYPTED);
    };
    let format = Format::of(Path::new(relative), data);
    let extension = Path::new(relative)
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    if matches!(extension.as_deref(), Some("age" | "bin")) {
        // Binary-format sops files and age files: must at least be ciphertext.
        let ok = text.contains("\"sops\"")
            || text.starts_with("age-encryption.org/v1")
            || text.starts_with("-----BEGIN AGE ENCRYPTED FILE-----");
        return (!ok).then_some(SOPS_NOT_ENCRYPTED);
    }
    match read_guarded(text, format, |_| ()) {
        Some(()) => None,
        None => Some(SOPS_NOT_ENCRYPTED),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const ENCRYPTED: &str = "db:\n    password: ENC[AES256_GCM,data:q83v,iv:AAAA,tag:BBBB,type:str]\n    user_unencrypted: app\nsops:\n    age:\n        - recipient: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\n          enc: |\n            -----BEGIN AGE ENCRYPTED FILE-----\n            YWdl\n            -----END AGE ENCRYPTED FILE-----\n    lastmodified: \"2026-01-01T00:00:00Z\"\n    mac: ENC[AES256_GCM,data:q83v,iv:AAAA,tag:BBBB,type:str]\n    unencrypted_suffix: _unencrypted\n    version: 3.9.4\n";

    #[test]
    fn a_proper_sops_file_is_clean_and_a_clear_value_is_found() {
        assert!(check(ENCRYPTED.as_bytes()).is_empty());
        let edited = ENCRYPTED.replace(
            "password: ENC[AES256_GCM,data:q83v,iv:AAAA,tag:BBBB,type:str]",
            "password: hunter2",
        );
        let found = check(edited.as_bytes());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].rule, SOPS_PLAINTEXT);
        assert_eq!(&edited[found[0].offset..found[0].offset + 9], "password:");
    }

    #[test]
    fn creation_rules_decide_coverage() {
        let policy = Policy::parse(
            "creation_rules:\n  - path_regex: secrets/.*\\.yaml$\n    age: age1x\n",
            ".sops.yaml",
        )
        .unwrap();
        assert!(policy.covers("secrets/web.yaml"));
        assert!(!policy.covers("docs/web.yaml"));
        assert_eq!(
            check_covered(b"a: 1\n", "secrets/web.yaml"),
            Some(SOPS_NOT_ENCRYPTED)
        );
        assert_eq!(
            check_covered(ENCRYPTED.as_bytes(), "secrets/web.yaml"),
            None
        );
    }

    /// Runs `f` on a thread with a scan worker's default stack (2 MiB).
    fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(f)
            .unwrap()
            .join()
            .unwrap()
    }

    #[test]
    fn a_sops_file_nested_20000_deep_is_unreadable_not_an_abort() {
        for deep in [
            "- ".repeat(20_000) + "x",
            "[".repeat(20_000) + &"]".repeat(20_000),
        ] {
            let text = format!("{ENCRYPTED}deep:\n{deep}\n");
            let found = on_small_stack(move || check(text.as_bytes()));
            assert_eq!(found.len(), 1);
            assert_eq!(found[0].rule, SOPS_UNPARSABLE);
        }
        let json = format!(
            "{{\"a\": \"ENC[AES256_GCM,data:x]\", \"sops\": {{}}, \"d\": {}{}}}",
            "[".repeat(20_000),
            "]".repeat(20_000)
        );
        let found = on_small_stack(move || check(json.as_bytes()));
        assert_eq!(found[0].rule, SOPS_UNPARSABLE);
        let config = format!("creation_rules:\n{}x\n", "- ".repeat(20_000));
        let err = on_small_stack(move || Policy::parse(&config, ".sops.yaml").err());
        assert!(matches!(err, Some(PolicyError::TooDeep(_))), "{err:?}");
    }

    #[test]
    fn a_deep_but_allowed_sops_file_is_read_on_a_stack_sized_for_it() {
        let deep = format!("{}password: hunter2\n", "- ".repeat(MAX_DEPTH - 3));
        let text = format!("{ENCRYPTED}deep:\n{deep}");
        let found = on_small_stack(move || check(text.as_bytes()));
        let rules: Vec<&str> = found.iter().map(|h| h.rule).collect();
        assert_eq!(rules, [SOPS_PLAINTEXT]);
    }

    #[test]
    fn a_sops_file_the_reader_refuses_is_unreadable_never_clean() {
        for extra in [
            "mode: 0755\n",
            "anchored: &a x\n",
            "tagged: !!binary aGk=\n",
            "db:\n    password: again\n",
            "when: 2026-01-01\n",
        ] {
            let text = format!("{extra}{ENCRYPTED}");
            let found = check(text.as_bytes());
            let rules: Vec<&str> = found.iter().map(|h| h.rule).collect();
            assert_eq!(rules, [SOPS_UNPARSABLE], "{extra:?}");
        }
    }

    #[test]
    fn prose_and_code_about_sops_are_not_sops_files() {
        let rust = format!("const A: &str = {ENCRYPTED:?};\n");
        assert!(!looks_like_sops(rust.as_bytes()));
        assert!(
            check(b"Values look like ENC[AES256_GCM,data:...] under a sops: key.\n").is_empty()
        );
        assert!(looks_like_sops(ENCRYPTED.as_bytes()));
        assert!(looks_like_sops(
            b"{\n\t\"a\": \"ENC[AES256_GCM,data:x]\",\n\t\"sops\" : {\n\t}\n}"
        ));
        // Split so that this file does not have the shape it describes.
        let flow = concat!(
            "{password: hunter2, a: 'ENC[AES256_GCM,data:x]', so",
            "ps: {mac: x}}"
        );
        assert!(looks_like_sops(flow.as_bytes()));
        assert_eq!(check(flow.as_bytes())[0].rule, SOPS_UNPARSABLE);
        assert!(!looks_like_sops(
            b"a: ENC[AES256_GCM,data:x]\nb:\n  sops: nested\n"
        ));
        let code = concat!(
            "let v = json!({\"a\": \"ENC[AES256_GCM,data:x]\", \"so",
            "ps\": {}});"
        );
        assert!(!looks_like_sops(code.as_bytes()));
    }

    #[test]
    fn the_content_fingerprint_material_is_the_key_path_and_value() {
        let one = ENCRYPTED.replace(
            "password: ENC[AES256_GCM,data:q83v,iv:AAAA,tag:BBBB,type:str]",
            "password: hunter2",
        );
        let two = one.replace("hunter2", "correct-horse");
        let (a, b) = (check(one.as_bytes()), check(two.as_bytes()));
        assert_eq!((a[0].offset, a[0].rule), (b[0].offset, b[0].rule));
        assert_ne!(*a[0].material, *b[0].material);
    }
}
