//! The top-level `sops:` block: wrapped data keys, timestamp, MAC, the
//! selection rule and the version.
//!
//! The reader accepts every layout sops 3.7 to 3.13 writes (the empty
//! `kms: []` lists of old versions, pgp entries, alphabetical order). The
//! writer emits `age, lastmodified, mac, <rule>, version`, the order sops 3.10
//! to 3.13 produce, and nothing it cannot vouch for.

use regex::Regex;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

use crate::value::{Kind, Map, Scalar, Value};

/// The `version:` we write: a real sops release that every reader from 3.7 on
/// accepts and that names no feature newer than what we emit.
pub const WRITTEN_VERSION: &str = "3.9.4";

/// One age recipient and the data key wrapped for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgeStanza {
    pub recipient: String,
    /// The armored age file holding the 32-byte data key.
    pub enc: String,
}

/// Which leaves are encrypted: sops records at most one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    UnencryptedSuffix(String),
    EncryptedSuffix(String),
    UnencryptedRegex(String),
    EncryptedRegex(String),
}

impl Default for Selection {
    fn default() -> Self {
        Selection::UnencryptedSuffix("_unencrypted".to_owned())
    }
}

impl Selection {
    pub const FIELDS: [&'static str; 4] = [
        "unencrypted_suffix",
        "encrypted_suffix",
        "unencrypted_regex",
        "encrypted_regex",
    ];

    fn from_field(field: &str, value: String) -> Option<Self> {
        Some(match field {
            "unencrypted_suffix" => Selection::UnencryptedSuffix(value),
            "encrypted_suffix" => Selection::EncryptedSuffix(value),
            "unencrypted_regex" => Selection::UnencryptedRegex(value),
            "encrypted_regex" => Selection::EncryptedRegex(value),
            _ => return None,
        })
    }

    fn field(&self) -> (&'static str, &str) {
        match self {
            Selection::UnencryptedSuffix(v) => ("unencrypted_suffix", v),
            Selection::EncryptedSuffix(v) => ("encrypted_suffix", v),
            Selection::UnencryptedRegex(v) => ("unencrypted_regex", v),
            Selection::EncryptedRegex(v) => ("encrypted_regex", v),
        }
    }

    /// Picks the one selection option out of a `.sops.yaml` rule or a
    /// metadata block; more than one is an error, as in sops.
    pub fn from_map(map: &Map) -> Result<Option<Self>, MetadataError> {
        let mut found = None;
        for field in Self::FIELDS {
            if let Some(value) = get_str(map, field)? {
                if found.is_some() {
                    return Err(MetadataError::SeveralSelections);
                }
                found = Self::from_field(field, value);
            }
        }
        Ok(found)
    }

    /// Compiles the rule into a matcher over key paths.
    pub fn matcher(&self) -> Result<SelectionMatcher, MetadataError> {
        Ok(match self {
            Selection::UnencryptedSuffix(s) => SelectionMatcher::Suffix(s.clone(), false),
            Selection::EncryptedSuffix(s) => SelectionMatcher::Suffix(s.clone(), true),
            Selection::UnencryptedRegex(r) | Selection::EncryptedRegex(r) => {
                let regex = Regex::new(r).map_err(|err| MetadataError::BadRegex {
                    pattern: r.clone(),
                    reason: err.to_string(),
                })?;
                SelectionMatcher::Regex(regex, matches!(self, Selection::EncryptedRegex(_)))
            }
        })
    }
}

/// A compiled selection rule. The flag says whether a match means "encrypt".
pub enum SelectionMatcher {
    Suffix(String, bool),
    Regex(Regex, bool),
}

impl SelectionMatcher {
    /// sops' rule: a match on any key of the path decides for the whole subtree.
    pub fn encrypts<'a>(&self, mut keys: impl Iterator<Item = &'a str>) -> bool {
        let (matched, match_means_encrypt) = match self {
            // sops skips an empty rule, which leaves every value encrypted.
            SelectionMatcher::Suffix(suffix, _) if suffix.is_empty() => return true,
            SelectionMatcher::Regex(regex, _) if regex.as_str().is_empty() => return true,
            SelectionMatcher::Suffix(suffix, flag) => {
                (keys.any(|key| key.ends_with(suffix.as_str())), *flag)
            }
            SelectionMatcher::Regex(regex, flag) => (keys.any(|key| regex.is_match(key)), *flag),
        };
        matched == match_means_encrypt
    }
}

/// The parsed `sops:` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    pub age: Vec<AgeStanza>,
    /// The timestamp as written in the file (the MAC's AAD is its UTC form).
    pub lastmodified: String,
    pub mac: String,
    pub selection: Selection,
    pub mac_only_encrypted: bool,
    pub version: Option<String>,
    /// Key sources other than age that hold entries (`pgp`, `kms`, …).
    pub foreign_key_sources: Vec<String>,
    /// Comment selection regexes (sops 3.9+): fine to read, not ours to rewrite.
    pub comment_selection: Option<String>,
}

/// Why a `sops:` block could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MetadataError {
    /// No top-level `sops` key: not an encrypted file.
    #[error("no `sops` metadata block: the file is not sops-encrypted")]
    Missing,
    /// A required field is absent.
    #[error("metadata field `sops.{0}` is missing")]
    MissingField(&'static str),
    /// A field has the wrong shape.
    #[error("metadata field `sops.{0}` has the wrong type")]
    WrongType(String),
    /// `lastmodified` is not an RFC 3339 timestamp.
    #[error("metadata field `sops.lastmodified` is not an RFC 3339 timestamp")]
    BadTimestamp,
    /// More than one of the selection options.
    #[error("more than one of `unencrypted_suffix`, `encrypted_suffix`, `unencrypted_regex`, `encrypted_regex`")]
    SeveralSelections,
    /// A selection regex does not compile.
    #[error("selection regex `{pattern}` is invalid: {reason}")]
    BadRegex { pattern: String, reason: String },
    /// Several key groups (Shamir secret sharing).
    #[error("the file uses {groups} key groups with Shamir threshold {threshold}; fromgit reads and writes one key group only")]
    KeyGroups { groups: usize, threshold: usize },
}

const KEY_SOURCES: [&str; 7] = [
    "pgp", "kms", "gcp_kms", "azure_kv", "hc_vault", "hckms", "age",
];

impl Metadata {
    /// Reads the `sops` entry of a document's root map.
    pub fn from_value(value: &Value) -> Result<Self, MetadataError> {
        let Value::Map(map) = value else {
            return Err(MetadataError::WrongType("sops".into()));
        };
        let (age, foreign) = match map.iter().find(|(k, _)| k == "key_groups") {
            Some((_, Value::List(groups))) if groups.len() > 1 => {
                let threshold = get_str(map, "shamir_threshold")
                    .ok()
                    .flatten()
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(groups.len());
                return Err(MetadataError::KeyGroups {
                    groups: groups.len(),
                    threshold,
                });
            }
            Some((_, Value::List(groups))) => match groups.first() {
                Some(Value::Map(group)) => key_sources(group)?,
                _ => (Vec::new(), Vec::new()),
            },
            Some(_) => return Err(MetadataError::WrongType("key_groups".into())),
            None => key_sources(map)?,
        };
        let lastmodified =
            get_str(map, "lastmodified")?.ok_or(MetadataError::MissingField("lastmodified"))?;
        let mac = get_str(map, "mac")?.ok_or(MetadataError::MissingField("mac"))?;
        let comment_selection = match get_str(map, "unencrypted_comment_regex")? {
            Some(regex) => Some(regex),
            None => get_str(map, "encrypted_comment_regex")?,
        };
        Ok(Metadata {
            age,
            lastmodified,
            mac,
            selection: Selection::from_map(map)?.unwrap_or_default(),
            mac_only_encrypted: get_bool(map, "mac_only_encrypted")?,
            version: get_str(map, "version")?,
            foreign_key_sources: foreign,
            comment_selection,
        })
    }

    /// The MAC's additional data: `lastmodified` re-rendered as sops renders
    /// it (UTC, whole seconds, `Z`), not the literal text in the file.
    pub fn mac_aad(&self) -> Result<String, MetadataError> {
        let parsed = OffsetDateTime::parse(&self.lastmodified, &Rfc3339)
            .map_err(|_| MetadataError::BadTimestamp)?;
        Ok(format_lastmodified(parsed))
    }

    /// The metadata as a map node, in the field order we write.
    pub fn to_value(&self) -> Value {
        let mut map: Map = Vec::new();
        let stanzas = self
            .age
            .iter()
            .map(|stanza| {
                Value::Map(vec![
                    ("recipient".into(), string(&stanza.recipient)),
                    ("enc".into(), string(&stanza.enc)),
                ])
            })
            .collect();
        map.push(("age".into(), Value::List(stanzas)));
        map.push(("lastmodified".into(), string(&self.lastmodified)));
        map.push(("mac".into(), string(&self.mac)));
        let (field, value) = self.selection.field();
        map.push((field.into(), string(value)));
        if self.mac_only_encrypted {
            map.push((
                "mac_only_encrypted".into(),
                Value::Scalar(Scalar {
                    kind: Kind::Bool,
                    text: "True".to_owned().into(),
                }),
            ));
        }
        let version = self.version.as_deref().unwrap_or(WRITTEN_VERSION);
        map.push(("version".into(), string(version)));
        Value::Map(map)
    }
}

/// `lastmodified` as sops writes it: UTC, whole seconds, `Z`.
pub fn format_lastmodified(when: OffsetDateTime) -> String {
    let utc = when.to_offset(UtcOffset::UTC);
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    utc.format(&format).unwrap_or_default()
}

pub fn now_lastmodified() -> String {
    format_lastmodified(OffsetDateTime::now_utc())
}

fn string(text: &str) -> Value {
    Value::Scalar(Scalar::string(text))
}

fn key_sources(map: &Map) -> Result<(Vec<AgeStanza>, Vec<String>), MetadataError> {
    let mut age = Vec::new();
    let mut foreign = Vec::new();
    for source in KEY_SOURCES {
        let entries = match map.iter().find(|(k, _)| k == source) {
            None | Some((_, Value::Null)) => continue,
            Some((_, Value::List(entries))) => entries,
            Some(_) => return Err(MetadataError::WrongType(source.into())),
        };
        if source != "age" {
            if !entries.is_empty() {
                foreign.push(format!("{source} ({} entries)", entries.len()));
            }
            continue;
        }
        for (index, entry) in entries.iter().enumerate() {
            let Value::Map(fields) = entry else {
                return Err(MetadataError::WrongType(format!("age[{index}]")));
            };
            let field = |name: &'static str| {
                get_str(fields, name)
                    .map_err(|_| MetadataError::WrongType(format!("age[{index}].{name}")))?
                    .ok_or(MetadataError::MissingField(name))
            };
            age.push(AgeStanza {
                recipient: field("recipient")?,
                enc: field("enc")?,
            });
        }
    }
    Ok((age, foreign))
}

fn get_str(map: &Map, key: &str) -> Result<Option<String>, MetadataError> {
    match map.iter().find(|(k, _)| k == key) {
        None | Some((_, Value::Null)) => Ok(None),
        Some((_, Value::Scalar(scalar))) => Ok(Some(scalar.text.as_str().to_owned())),
        Some(_) => Err(MetadataError::WrongType(key.into())),
    }
}

fn get_bool(map: &Map, key: &str) -> Result<bool, MetadataError> {
    match map.iter().find(|(k, _)| k == key) {
        None | Some((_, Value::Null)) => Ok(false),
        Some((_, Value::Scalar(scalar))) if scalar.kind == Kind::Bool => Ok(scalar.as_bool()),
        Some(_) => Err(MetadataError::WrongType(key.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_aad_is_the_go_rendering() {
        let mut meta = Metadata {
            age: Vec::new(),
            lastmodified: "2026-01-01T01:00:00.123+01:00".into(),
            mac: String::new(),
            selection: Selection::default(),
            mac_only_encrypted: false,
            version: None,
            foreign_key_sources: Vec::new(),
            comment_selection: None,
        };
        assert_eq!(meta.mac_aad().as_deref(), Ok("2026-01-01T00:00:00Z"));
        meta.lastmodified = "yesterday".into();
        assert_eq!(meta.mac_aad(), Err(MetadataError::BadTimestamp));
    }

    #[test]
    fn selection_matches_any_key_on_the_path() {
        let unencrypted = Selection::default().matcher().expect("compiles");
        assert!(unencrypted.encrypts(["a", "b"].into_iter()));
        assert!(!unencrypted.encrypts(["a_unencrypted", "b"].into_iter()));
        let only = Selection::EncryptedRegex("^(data|stringData)$".into())
            .matcher()
            .expect("compiles");
        assert!(only.encrypts(["data", "x"].into_iter()));
        assert!(!only.encrypts(["metadata", "name"].into_iter()));
        assert!(matches!(
            Selection::EncryptedRegex("(".into()).matcher(),
            Err(MetadataError::BadRegex { .. })
        ));
    }
}
