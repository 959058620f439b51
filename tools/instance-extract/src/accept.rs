//! Findings the operator has judged and accepted, kept in the base as
//! `instance-extract.toml`.
//!
//! The classification of literals is a heuristic; when it calls a public
//! value secret, the operator says so once, with a reason, in a file that is
//! reviewed like any other. Each entry is keyed on the SHA-256 of the value,
//! so it stops matching the moment the value changes.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The file's name in the base.
pub const ACCEPT_FILE: &str = "instance-extract.toml";

/// The acceptance key of a literal value: its SHA-256, never the value.
pub fn accept_key(value: &str) -> String {
    use sha2::Digest as _;
    format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(value.as_bytes()))
    )
}

/// The file: accepted findings, and names for instance facts.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub accept: Vec<Entry>,
    #[serde(default)]
    pub fact: Vec<FactName>,
}

/// The operator's name for an address or e-mail address that moves into
/// `instance.nix` (instead of `a1`, `e1`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FactName {
    /// `sha256:<hex>` of the value, as `plan` prints it.
    pub key: String,
    /// An attribute name: a letter, then letters, digits, `_` or `-`.
    pub name: String,
}

/// One accepted finding.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// `sha256:<hex>` of the value, as `plan` prints it.
    pub key: String,
    /// Why the value may stay in the base.
    pub reason: String,
}

/// Why the accept file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    #[error("`{path}`: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

fn is_key(key: &str) -> bool {
    let hex = key.strip_prefix("sha256:").unwrap_or_default();
    hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The base's accept file (empty when it has none).
pub fn read(base: &Path) -> Result<Config, AcceptError> {
    let path = base.join(ACCEPT_FILE);
    if !path.exists() {
        return Ok(Config::default());
    }
    let text = fs_err::read_to_string(&path)?;
    let invalid = |reason: String| AcceptError::Invalid {
        path: path.clone(),
        reason,
    };
    let file: Config = toml::from_str(&text).map_err(|err| invalid(err.to_string()))?;
    for (index, fact) in file.fact.iter().enumerate() {
        let identifier = fact.name.starts_with(|c: char| c.is_ascii_alphabetic())
            && fact
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !is_key(&fact.key) || !identifier {
            return Err(invalid(format!(
                "`fact[{index}]` needs `key = \"sha256:<64 hex digits>\"` and a `name` that is an attribute name"
            )));
        }
    }
    for (index, entry) in file.accept.iter().enumerate() {
        if !is_key(&entry.key) {
            return Err(invalid(format!(
                "`accept[{index}].key` is not `sha256:<64 hex digits>` as `plan` prints it"
            )));
        }
        if entry.reason.trim().is_empty() {
            return Err(invalid(format!(
                "`accept[{index}].reason` is empty: say why the value may stay in the base"
            )));
        }
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_need_a_key_and_a_reason() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(read(dir.path()).expect("no file").accept.is_empty());
        let key = format!("sha256:{}", "ab".repeat(32));
        let path = dir.path().join(ACCEPT_FILE);
        fs_err::write(
            &path,
            format!("[[accept]]\nkey = \"{key}\"\nreason = \"the deploy key is public\"\n"),
        )
        .expect("write");
        assert_eq!(read(dir.path()).expect("valid").accept[0].key, key);
        fs_err::write(
            &path,
            format!("[[accept]]\nkey = \"{key}\"\nreason = \" \"\n"),
        )
        .expect("write");
        let err = read(dir.path()).expect_err("no reason").to_string();
        assert!(
            err.contains("instance-extract.toml`: `accept[0].reason` is empty"),
            "{err}"
        );
        fs_err::write(&path, "[[accept]]\nkey = \"md5:00\"\nreason = \"x\"\n").expect("write");
        assert!(read(dir.path()).is_err());
    }
}
