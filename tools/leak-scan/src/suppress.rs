//! Suppressions that survive edits and rebases: `.leak-scan.toml` keys
//! each one by the finding's fingerprint, a keyed hash of the rule, the
//! location (the path, or a commit, tag or blob id) and the matched value,
//! never by line number, and requires a reason and the rule. A different
//! secret written on the same line later is a new finding, and so is the
//! same value in another file. An entry that matches nothing any more is
//! reported, so stale suppressions get removed. The file never holds
//! plaintext.
//!
//! Version 1 fingerprints covered only the rule and the value (and for
//! `sops-plaintext-value`, the line number), so one entry could hide a
//! finding in every file. A file of version 1 entries is refused with the
//! way to migrate, rather than half-honoured.

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
    /// Entries written for version 1 fingerprints, which no longer hold.
    #[error("`{file}` holds suppressions of version 1, whose fingerprints cover only the rule and the value (or a line number), so one entry could hide a finding in any file; run `leak-scan` without them, put the fingerprint it now prints for each finding (rule, location and value) in its entry, and add `version = 2` at the top of the file")]
    OldVersion { file: String },
    /// An entry without its rule.
    #[error("`{file}`: the suppression of `{fingerprint}` has no `rule`; every suppression names the rule it silences")]
    NoRule { file: String, fingerprint: String },
    /// A fingerprint that is not hex, or too short to be unambiguous.
    #[error("`{file}`: `{fingerprint}` is not a fingerprint (12 to 32 hex digits, as `leak-scan` prints them)")]
    BadFingerprint { file: String, fingerprint: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    /// The fingerprint version the entries were written for (2; absent means 1).
    #[serde(default)]
    version: Option<u32>,
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

/// The version of the finding fingerprints the entries are written for.
pub const VERSION: u32 = 2;

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
        if !file.suppress.is_empty() && file.version != Some(VERSION) {
            return Err(SuppressError::OldVersion {
                file: name.to_owned(),
            });
        }
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
            if entry.rule.as_deref().is_none_or(|r| r.trim().is_empty()) {
                return Err(SuppressError::NoRule {
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
                && entry.rule.as_deref() == Some(rule)
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
    fn a_reason_and_a_rule_are_required_and_matching_is_by_fingerprint_and_rule() {
        let err = Suppressions::parse(
            "version = 2\n[[suppress]]\nfingerprint = \"0123456789ab\"\nrule = \"r\"\n",
            "x",
        )
        .unwrap_err();
        assert!(matches!(err, SuppressError::NoReason { .. }));
        let err = Suppressions::parse(
            "version = 2\n[[suppress]]\nfingerprint = \"0123456789ab\"\nreason = \"r\"\n",
            "x",
        )
        .unwrap_err();
        assert!(matches!(err, SuppressError::NoRule { .. }));
        let err = Suppressions::parse(
            "version = 2\n[[suppress]]\nfingerprint = \"01\"\nrule = \"r\"\nreason = \"r\"\n",
            "x",
        )
        .unwrap_err();
        assert!(matches!(err, SuppressError::BadFingerprint { .. }));
        let mut s = Suppressions::parse(
            "version = 2\n[[suppress]]\nfingerprint = \"0123456789AB\"\nrule = \"x\"\nreason = \"fixture\"\n[[suppress]]\nfingerprint = \"ffffffffffff\"\nrule = \"x\"\nreason = \"old\"\n",
            "x",
        )
        .unwrap();
        assert!(s.suppresses("x", "0123456789abcdef0123456789abcdef"));
        assert!(!s.suppresses("y", "0123456789abcdef0123456789abcdef"));
        assert!(!s.suppresses("x", "1123456789abcdef0123456789abcdef"));
        let unused: Vec<_> = s.unused().map(|e| e.reason.clone()).collect();
        assert_eq!(unused, ["old"]);
    }

    #[test]
    fn version_1_entries_are_refused_with_the_way_to_migrate() {
        let v1 = "[[suppress]]\nfingerprint = \"0123456789ab\"\nrule = \"r\"\nreason = \"r\"\n";
        let err = Suppressions::parse(v1, ".leak-scan.toml").unwrap_err();
        assert!(matches!(err, SuppressError::OldVersion { .. }));
        assert!(err.to_string().contains("version = 2"), "{err}");
        assert!(Suppressions::parse("salt = \"00ff\"\n", "x").is_ok());
    }
}
