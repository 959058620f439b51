//! Suppressions that survive edits, moves and rebases: `.leak-scan.toml`
//! keys each one by the finding's content fingerprint (a keyed hash of the
//! rule and the matched value), never by line or commit, and requires a
//! reason. A different secret written on the same line later is a new
//! finding. An entry that matches nothing any more is reported, so stale
//! suppressions get removed. The file never holds plaintext.

use std::path::Path;

use serde::Deserialize;

/// Why `.leak-scan.toml` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SuppressError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Not TOML, or the wrong shape.
    #[error("`{file}` is not valid: {reason}")]
    Shape { file: String, reason: String },
    /// An entry without a reason.
    #[error(
        "`{file}`: the suppression of `{fingerprint}` has no reason; every suppression needs one"
    )]
    NoReason { file: String, fingerprint: String },
    /// A fingerprint that is not hex, or too short to be unambiguous.
    #[error("`{file}`: `{fingerprint}` is not a fingerprint (12 to 32 hex digits, as `leak-scan` prints them)")]
    BadFingerprint { file: String, fingerprint: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    /// Hex salt of the content fingerprints (optional; a fixed one otherwise).
    #[serde(default)]
    salt: Option<String>,
    #[serde(default)]
    suppress: Vec<Entry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub fingerprint: String,
    #[serde(default)]
    pub rule: Option<String>,
    #[serde(default)]
    pub reason: String,
}

/// The loaded suppressions, with a use count per entry.
#[derive(Debug, Default)]
pub struct Suppressions {
    pub salt: Option<Vec<u8>>,
    pub entries: Vec<Entry>,
    used: Vec<bool>,
}

/// The salt of content fingerprints when `.leak-scan.toml` sets none.
pub const DEFAULT_SALT: &[u8] = b"leak-scan content fingerprint v1";

impl Suppressions {
    pub fn load(path: &Path) -> Result<Self, SuppressError> {
        let text = fs_err::read_to_string(path)?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, name: &str) -> Result<Self, SuppressError> {
        let file: File = toml::from_str(text).map_err(|err| SuppressError::Shape {
            file: name.to_owned(),
            reason: err.message().to_owned(),
        })?;
        let salt = file
            .salt
            .map(|hex_salt| {
                hex::decode(hex_salt.trim()).map_err(|err| SuppressError::Shape {
                    file: name.to_owned(),
                    reason: format!("`salt` is not hex: {err}"),
                })
            })
            .transpose()?;
        let mut entries = Vec::new();
        for mut entry in file.suppress {
            entry.fingerprint = entry.fingerprint.trim().to_ascii_lowercase();
            let fp = &entry.fingerprint;
            if fp.len() < 12 || fp.len() > 32 || !fp.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(SuppressError::BadFingerprint {
                    file: name.to_owned(),
                    fingerprint: entry.fingerprint,
                });
            }
            if entry.reason.trim().is_empty() {
                return Err(SuppressError::NoReason {
                    file: name.to_owned(),
                    fingerprint: entry.fingerprint,
                });
            }
            entries.push(entry);
        }
        let used = vec![false; entries.len()];
        Ok(Suppressions {
            salt,
            entries,
            used,
        })
    }

    /// Whether a finding is suppressed; marks the entry used.
    pub fn suppresses(&mut self, rule: &str, fingerprint: &str) -> bool {
        let mut hit = false;
        for (entry, used) in self.entries.iter().zip(self.used.iter_mut()) {
            if fingerprint.starts_with(entry.fingerprint.as_str())
                && entry.rule.as_deref().is_none_or(|r| r == rule)
            {
                *used = true;
                hit = true;
            }
        }
        hit
    }

    /// Entries that matched nothing in this run.
    pub fn unused(&self) -> impl Iterator<Item = &Entry> {
        self.entries
            .iter()
            .zip(&self.used)
            .filter(|(_, used)| !**used)
            .map(|(entry, _)| entry)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_reason_is_required_and_matching_is_by_fingerprint() {
        let err =
            Suppressions::parse("[[suppress]]\nfingerprint = \"0123456789ab\"\n", "x").unwrap_err();
        assert!(matches!(err, SuppressError::NoReason { .. }));
        let err = Suppressions::parse("[[suppress]]\nfingerprint = \"01\"\nreason = \"r\"\n", "x")
            .unwrap_err();
        assert!(matches!(err, SuppressError::BadFingerprint { .. }));
        let mut s = Suppressions::parse(
            "[[suppress]]\nfingerprint = \"0123456789AB\"\nreason = \"fixture\"\n[[suppress]]\nfingerprint = \"ffffffffffff\"\nrule = \"x\"\nreason = \"old\"\n",
            "x",
        )
        .unwrap();
        assert!(s.suppresses("any", "0123456789abcdef0123456789abcdef"));
        assert!(!s.suppresses("any", "1123456789abcdef0123456789abcdef"));
        assert!(!s.suppresses("y", "ffffffffffffcdef0123456789abcdef"));
        let unused: Vec<_> = s.unused().map(|e| e.reason.clone()).collect();
        assert_eq!(unused, ["old"]);
    }
}
