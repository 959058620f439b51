//! `.sops.yaml` creation rules, applied as sops applies them: the config is
//! found by walking up from the working directory, each rule's `path_regex`
//! is matched (unanchored, RE2 syntax) against the file's path relative to
//! the config file's directory, and the first matching rule wins.
//!
//! fromgit writes one key group of age recipients. A rule that asks for
//! anything else (PGP, KMS, Vault, several groups, Shamir) is refused rather
//! than written without the keys it names.

use std::path::{Path, PathBuf};

use regex::Regex;

use crate::keys::{KeyError, Recipient};
use crate::metadata::{MetadataError, Selection};
use crate::value::{Map, Value};
use crate::yaml;

/// The config file name sops looks for (`.sops.yml` is ignored by sops too).
pub const CONFIG_NAME: &str = ".sops.yaml";
const MAX_LOOKUP_DEPTH: usize = 100;

/// Why a creation rule could not be found or used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No `.sops.yaml` in the working directory or above it.
    #[error("no `{CONFIG_NAME}` found in `{0}` or any directory above it")]
    NotFound(PathBuf),
    /// The config file could not be read.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The config file is not valid YAML.
    #[error("`{path}` is not valid YAML: {source}")]
    Yaml {
        path: PathBuf,
        source: yaml::YamlError,
    },
    /// A field of the config has the wrong shape.
    #[error("`{path}`: {what}")]
    Shape { path: PathBuf, what: String },
    /// A `path_regex` does not compile.
    #[error("`{path}`: creation rule {rule} has an invalid `path_regex`: {reason}")]
    BadPathRegex {
        path: PathBuf,
        rule: usize,
        reason: String,
    },
    /// No rule matches the file.
    #[error("no creation rule in `{config}` matches `{file}`")]
    NoMatchingRule { config: PathBuf, file: String },
    /// The matching rule asks for keys fromgit cannot write.
    #[error("creation rule {rule} of `{config}` uses {what}; fromgit writes one key group of age recipients and will not drop keys silently")]
    Unsupported {
        config: PathBuf,
        rule: usize,
        what: String,
    },
    /// The matching rule names no age recipient.
    #[error("creation rule {rule} of `{config}` names no age recipient")]
    NoRecipients { config: PathBuf, rule: usize },
    /// A recipient in the rule does not parse.
    #[error("creation rule {rule} of `{config}`: {source}")]
    Recipient {
        config: PathBuf,
        rule: usize,
        source: KeyError,
    },
    /// The rule's selection options are invalid.
    #[error("creation rule {rule} of `{config}`: {source}")]
    Selection {
        config: PathBuf,
        rule: usize,
        source: MetadataError,
    },
}

/// What a matching rule says about a new file.
#[derive(Debug)]
pub struct CreationRule {
    /// The config file it came from.
    pub config: PathBuf,
    /// 1-based index of the rule in `creation_rules`.
    pub index: usize,
    pub recipients: Vec<Recipient>,
    pub selection: Option<Selection>,
}

/// Finds `.sops.yaml` in `start` or the nearest directory above it.
pub fn find_config(start: &Path) -> Result<PathBuf, ConfigError> {
    let start = std::path::absolute(start)?;
    let mut dir = Some(start.as_path());
    for _ in 0..MAX_LOOKUP_DEPTH {
        let Some(current) = dir else { break };
        let candidate = current.join(CONFIG_NAME);
        if candidate.is_file() {
            return Ok(candidate);
        }
        dir = current.parent();
    }
    Err(ConfigError::NotFound(start))
}

/// The rule for `file` in `config`, or in the `.sops.yaml` found upward from
/// the working directory when `config` is `None` (as sops does).
pub fn rule_for(config: Option<&Path>, file: &Path) -> Result<CreationRule, ConfigError> {
    let found;
    let config = if let Some(path) = config {
        path
    } else {
        found = find_config(Path::new("."))?;
        &found
    };
    let rule = rule_for_file(config, file)?;
    tracing::info!(
        "creation rule {} of `{}` matches `{}`",
        rule.index,
        config.display(),
        file.display()
    );
    Ok(rule)
}

/// The rule for `file` in the config at `config`.
pub fn rule_for_file(config: &Path, file: &Path) -> Result<CreationRule, ConfigError> {
    CreationRules::load(config)?.rule_for(file)
}

/// The creation rules of one `.sops.yaml`, parsed and compiled once.
pub struct CreationRules {
    config: PathBuf,
    rules: Vec<(Regex, Map)>,
}

impl CreationRules {
    pub fn load(config: &Path) -> Result<Self, ConfigError> {
        let text = fs_err::read_to_string(config)?;
        Self::parse(config, &text)
    }

    /// Parses the text of the config at `config` (the path names it in errors
    /// and anchors `path_regex`).
    pub fn parse(config: &Path, text: &str) -> Result<Self, ConfigError> {
        let root = yaml::parse(text).map_err(|source| ConfigError::Yaml {
            path: config.to_owned(),
            source,
        })?;
        let shape = |what: &str| ConfigError::Shape {
            path: config.to_owned(),
            what: what.to_owned(),
        };
        let list = match root.into_iter().find(|(k, _)| k == "creation_rules") {
            Some((_, Value::List(rules))) => rules,
            Some(_) => return Err(shape("`creation_rules` must be a list")),
            None => return Err(shape("no `creation_rules`")),
        };
        let mut rules = Vec::with_capacity(list.len());
        for (offset, rule) in list.into_iter().enumerate() {
            let index = offset + 1;
            let Value::Map(rule) = rule else {
                return Err(shape(&format!("creation rule {index} is not a mapping")));
            };
            let pattern = string_field(&rule, "path_regex")
                .map_err(|()| {
                    shape(&format!(
                        "creation rule {index}: `path_regex` is not a string"
                    ))
                })?
                .unwrap_or_default();
            let regex = Regex::new(&pattern).map_err(|err| ConfigError::BadPathRegex {
                path: config.to_owned(),
                rule: index,
                reason: err.to_string(),
            })?;
            rules.push((regex, rule));
        }
        Ok(CreationRules {
            config: config.to_owned(),
            rules,
        })
    }

    /// The 1-based index of the first rule whose `path_regex` matches a path
    /// already relative to the config's directory.
    pub fn matching(&self, relative: &str) -> Option<usize> {
        self.rules
            .iter()
            .position(|(regex, _)| regex.is_match(relative))
            .map(|i| i + 1)
    }

    /// The first rule that matches `file`, interpreted for writing.
    pub fn rule_for(&self, file: &Path) -> Result<CreationRule, ConfigError> {
        let relative = relative_to_config(&self.config, file)?;
        match self.matching(&relative) {
            Some(index) => interpret_rule(&self.config, index, &self.rules[index - 1].1),
            None => Err(ConfigError::NoMatchingRule {
                config: self.config.clone(),
                file: relative,
            }),
        }
    }
}

/// sops: the absolute file path with the config directory's prefix removed
/// (lexically, without resolving symlinks, as Go's `filepath.Abs`).
fn relative_to_config(config: &Path, file: &Path) -> Result<String, ConfigError> {
    let config_dir = std::path::absolute(config)?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let file = std::path::absolute(file)?;
    let relative = file.strip_prefix(&config_dir).unwrap_or(&file);
    Ok(relative.to_string_lossy().into_owned())
}

const FOREIGN_SOURCES: [&str; 6] = [
    "pgp",
    "kms",
    "gcp_kms",
    "azure_keyvault",
    "hc_vault_transit_uri",
    "hckms",
];

fn interpret_rule(config: &Path, index: usize, rule: &Map) -> Result<CreationRule, ConfigError> {
    let unsupported = |what: String| ConfigError::Unsupported {
        config: config.to_owned(),
        rule: index,
        what,
    };
    let shape = |what: &str| ConfigError::Shape {
        path: config.to_owned(),
        what: format!("creation rule {index}: {what}"),
    };
    if let Some(threshold) = string_field(rule, "shamir_threshold")
        .map_err(|()| shape("`shamir_threshold` is not a number"))?
    {
        if threshold != "1" {
            return Err(unsupported(format!("`shamir_threshold: {threshold}`")));
        }
    }
    let group = match rule.iter().find(|(k, _)| k == "key_groups") {
        Some((_, Value::List(groups))) if groups.len() == 1 => match &groups[0] {
            Value::Map(group) => group,
            _ => return Err(shape("`key_groups` entries must be mappings")),
        },
        Some((_, Value::List(groups))) => {
            return Err(unsupported(format!("{} key groups", groups.len())))
        }
        Some(_) => return Err(shape("`key_groups` must be a list")),
        None => rule,
    };
    for source in FOREIGN_SOURCES {
        let present = match group.iter().find(|(k, _)| k == source) {
            None | Some((_, Value::Null)) => false,
            Some((_, Value::List(items))) => !items.is_empty(),
            Some((_, Value::Scalar(s))) => !s.text.trim().is_empty(),
            Some(_) => true,
        };
        if present {
            return Err(unsupported(format!("`{source}` keys")));
        }
    }
    let recipients = group_recipients(config, index, group)?;
    if recipients.is_empty() {
        return Err(ConfigError::NoRecipients {
            config: config.to_owned(),
            rule: index,
        });
    }
    let selection = Selection::from_map(rule).map_err(|source| ConfigError::Selection {
        config: config.to_owned(),
        rule: index,
        source,
    })?;
    if let Some(selection) = &selection {
        selection
            .matcher()
            .map_err(|source| ConfigError::Selection {
                config: config.to_owned(),
                rule: index,
                source,
            })?;
    }
    for field in [
        "unencrypted_comment_regex",
        "encrypted_comment_regex",
        "mac_only_encrypted",
    ] {
        if rule.iter().any(|(k, v)| k == field && *v != Value::Null) {
            return Err(unsupported(format!("`{field}`")));
        }
    }
    Ok(CreationRule {
        config: config.to_owned(),
        index,
        recipients,
        selection,
    })
}

/// The age recipients of a key group: a comma-separated string, or (sops
/// 3.11+) a list of such strings; duplicates collapse.
fn group_recipients(
    config: &Path,
    index: usize,
    group: &Map,
) -> Result<Vec<Recipient>, ConfigError> {
    let shape = |what: &str| ConfigError::Shape {
        path: config.to_owned(),
        what: format!("creation rule {index}: {what}"),
    };
    let mut recipients = Vec::new();
    let mut add = |text: &str| -> Result<(), ConfigError> {
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let recipient = Recipient::parse(part).map_err(|source| ConfigError::Recipient {
                config: config.to_owned(),
                rule: index,
                source,
            })?;
            if !recipients
                .iter()
                .any(|r: &Recipient| r.as_str() == recipient.as_str())
            {
                recipients.push(recipient);
            }
        }
        Ok(())
    };
    match group.iter().find(|(k, _)| k == "age") {
        None | Some((_, Value::Null)) => {}
        Some((_, Value::Scalar(s))) => add(&s.text)?,
        Some((_, Value::List(items))) => {
            for item in items {
                match item {
                    Value::Scalar(s) => add(&s.text)?,
                    _ => return Err(shape("`age` list entries must be strings")),
                }
            }
        }
        Some(_) => return Err(shape("`age` must be a string or a list of strings")),
    }
    Ok(recipients)
}

fn string_field(map: &Map, key: &str) -> Result<Option<String>, ()> {
    match map.iter().find(|(k, _)| k == key) {
        None | Some((_, Value::Null)) => Ok(None),
        Some((_, Value::Scalar(s))) => Ok(Some(s.text.as_str().to_owned())),
        Some(_) => Err(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "age1yt3tfqlfrwdwx0z0ynwplcr6qxcxfaqycuprpmy89nr83ltx74tqdpszlw";
    const BOB: &str = "age1a8pk4akrdamj7nvqy3zywgtny8dxz7t5xzu7u8v9mhrayp9freqsqatyrs";

    fn config(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join(CONFIG_NAME);
        fs_err::write(&path, text).expect("write config");
        path
    }

    #[test]
    fn first_matching_rule_wins_relative_to_the_config() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = config(
            dir.path(),
            &format!(
                "creation_rules:\n  - path_regex: ^hosts/web/secrets\\.yaml$\n    age: {ALICE}\n    \
                 encrypted_regex: ^(data)$\n  - path_regex: secrets/.*\n    age: >-\n      {ALICE},\n      {BOB}\n  \
                 - age:\n      - {BOB}\n"
            ),
        );
        let web = rule_for_file(&cfg, &dir.path().join("hosts/web/secrets.yaml")).expect("matches");
        assert_eq!(web.index, 1);
        assert_eq!(
            web.selection,
            Some(Selection::EncryptedRegex("^(data)$".into()))
        );
        let other = rule_for_file(&cfg, &dir.path().join("x/secrets/a.yaml")).expect("matches");
        assert_eq!(other.index, 2);
        let names: Vec<&str> = other.recipients.iter().map(Recipient::as_str).collect();
        assert_eq!(names, [ALICE, BOB]);
        let fallback = rule_for_file(&cfg, &dir.path().join("z.yaml")).expect("matches");
        assert_eq!(fallback.index, 3);
    }

    #[test]
    fn lookup_walks_upward() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = config(dir.path(), "creation_rules: []\n");
        let deep = dir.path().join("a/b/c");
        fs_err::create_dir_all(&deep).expect("mkdir");
        assert_eq!(find_config(&deep).expect("found"), cfg);
    }

    #[test]
    fn unsupported_and_unmatched_rules_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = config(
            dir.path(),
            &format!(
                "creation_rules:\n  - path_regex: pgp\\.yaml\n    pgp: ABCD\n    age: {ALICE}\n  \
                 - path_regex: groups\\.yaml\n    key_groups:\n      - age: [{ALICE}]\n      - age: [{BOB}]\n  \
                 - path_regex: none\\.yaml\n    unencrypted_suffix: _x\n"
            ),
        );
        let err = rule_for_file(&cfg, &dir.path().join("pgp.yaml")).expect_err("refused");
        assert!(err.to_string().contains("`pgp` keys"), "{err}");
        let err = rule_for_file(&cfg, &dir.path().join("groups.yaml")).expect_err("refused");
        assert!(err.to_string().contains("2 key groups"), "{err}");
        let err = rule_for_file(&cfg, &dir.path().join("none.yaml")).expect_err("refused");
        assert!(
            matches!(err, ConfigError::NoRecipients { rule: 3, .. }),
            "{err}"
        );
        let err = rule_for_file(&cfg, &dir.path().join("other.json")).expect_err("refused");
        assert!(matches!(err, ConfigError::NoMatchingRule { .. }), "{err}");
    }
}
