//! sops enforcement, which no general scanner does: a file that a
//! `.sops.yaml` creation rule covers must be a valid sops file, and every
//! value of a sops file must be `ENC[…]` unless the file's own selection
//! rule leaves it clear. A sops file with values in clear is what a
//! decrypt-in-place or a bad merge leaves behind.

use std::path::Path;

use fromgit_sops::{EncryptedFile, Format, KeyPath, Value};

use crate::engine::{SOPS_NOT_ENCRYPTED, SOPS_PLAINTEXT};

/// Why `.sops.yaml` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The config is not YAML, has the wrong shape or an invalid `path_regex`.
    #[error(transparent)]
    Config(#[from] fromgit_sops::config::ConfigError),
}

fn sniff_format(data: &[u8]) -> Format {
    match data.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Format::Json,
        _ => Format::Yaml,
    }
}

/// Offsets (and the rule) of values in clear in a text that looks like a sops file.
pub fn plaintext_values(data: &[u8]) -> Vec<(usize, &'static str)> {
    if memchr::memmem::find(data, b"ENC[AES256_GCM,").is_none()
        || memchr::memmem::find(data, b"sops").is_none()
        || memchr::memmem::find(data, b"mac").is_none()
    {
        return Vec::new();
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return Vec::new();
    };
    let Ok(file) = EncryptedFile::parse(text, sniff_format(data)) else {
        return Vec::new();
    };
    clear_leaves(&file)
        .into_iter()
        .map(|key| (locate_key(text, &key), SOPS_PLAINTEXT))
        .collect()
}

/// Key names of leaves that should be encrypted but are not.
fn clear_leaves(file: &EncryptedFile) -> Vec<String> {
    let Ok(matcher) = file.metadata.selection.matcher() else {
        return vec!["sops".to_owned()];
    };
    let mut out = Vec::new();
    let mut path = KeyPath::default();
    walk(&file.tree, &mut path, &mut |path, value| {
        let encrypted_by_rule = matcher.encrypts(path.keys());
        let clear = match value {
            Value::Scalar(scalar) => {
                !scalar.text.starts_with("ENC[AES256_GCM,") && !scalar.text.is_empty()
            }
            _ => false,
        };
        if encrypted_by_rule && clear {
            out.push(path.keys().last().unwrap_or("").to_owned());
        }
    });
    out
}

fn walk(map: &[(String, Value)], path: &mut KeyPath, f: &mut dyn FnMut(&KeyPath, &Value)) {
    for (key, value) in map {
        path.push(fromgit_sops::value::PathStep::Key(key.clone()));
        walk_value(value, path, f);
        path.pop();
    }
}

fn walk_value(value: &Value, path: &mut KeyPath, f: &mut dyn FnMut(&KeyPath, &Value)) {
    match value {
        Value::Map(map) => walk(map, path, f),
        Value::List(items) => {
            for (index, item) in items.iter().enumerate() {
                path.push(fromgit_sops::value::PathStep::Index(index));
                walk_value(item, path, f);
                path.pop();
            }
        }
        leaf => f(path, leaf),
    }
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
    let format = Format::from_path(Path::new(relative)).unwrap_or_else(|| sniff_format(data));
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
    match EncryptedFile::parse(text, format) {
        Ok(_) => None,
        Err(_) => Some(SOPS_NOT_ENCRYPTED),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const ENCRYPTED: &str = "db:\n    password: ENC[AES256_GCM,data:q83v,iv:AAAA,tag:BBBB,type:str]\n    user_unencrypted: app\nsops:\n    age:\n        - recipient: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\n          enc: |\n            -----BEGIN AGE ENCRYPTED FILE-----\n            YWdl\n            -----END AGE ENCRYPTED FILE-----\n    lastmodified: \"2026-01-01T00:00:00Z\"\n    mac: ENC[AES256_GCM,data:q83v,iv:AAAA,tag:BBBB,type:str]\n    unencrypted_suffix: _unencrypted\n    version: 3.9.4\n";

    #[test]
    fn a_proper_sops_file_is_clean_and_a_clear_value_is_found() {
        assert!(plaintext_values(ENCRYPTED.as_bytes()).is_empty());
        let edited = ENCRYPTED.replace(
            "password: ENC[AES256_GCM,data:q83v,iv:AAAA,tag:BBBB,type:str]",
            "password: hunter2",
        );
        let found = plaintext_values(edited.as_bytes());
        assert_eq!(found.len(), 1);
        assert_eq!(&edited[found[0].0..found[0].0 + 9], "password:");
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
}
