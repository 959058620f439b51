//! Rules are data (`rules/*.toml`), not code, so that adding a token format
//! is a reviewed data change whose examples are checked by a test. This
//! module loads them, compiles them once into a keyword prefilter (one
//! SIMD substring finder per distinct keyword, which over a few dozen rare
//! keywords beats a shared Aho-Corasick automaton on source text) plus one
//! regex per rule, and runs a rule's regex on a blob only when one of its
//! keywords occurs in it: most blobs run no keyword-gated regex at all.
//! It also owns the ids of the rules implemented in code (sops structure,
//! instance fingerprints), so every module that raises or lists a rule
//! depends on this one and never on another rule's implementer.

use std::collections::HashSet;
use std::path::Path;

use memchr::memmem::Finder;
use regex::bytes::Regex;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The built-in rule files, compiled in.
pub const BUILTIN: &[(&str, &str)] = &[
    ("rules/keys.toml", include_str!("../rules/keys.toml")),
    ("rules/tokens.toml", include_str!("../rules/tokens.toml")),
    (
        "rules/credentials.toml",
        include_str!("../rules/credentials.toml"),
    ),
];

/// The ids of the rules implemented in code rather than as patterns; the
/// modules that implement them and the engine that lists them name them here.
pub const SOPS_PLAINTEXT: &str = "sops-plaintext-value";
pub const SOPS_NOT_ENCRYPTED: &str = "sops-not-encrypted";
pub const SOPS_UNPARSABLE: &str = "sops-unreadable";
pub const INSTANCE_SECRET: &str = "instance-secret";
pub const INSTANCE_DOMAIN: &str = "instance-domain";
pub const INSTANCE_ADDRESS: &str = "instance-address";
pub const INSTANCE_EMAIL: &str = "instance-email";

/// Why a rule file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// The file could not be read.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The file is not valid TOML or has the wrong shape.
    #[error("`{file}` is not a valid rule file: {reason}")]
    Shape { file: String, reason: String },
    /// A pattern does not compile.
    #[error("`{file}`: rule `{id}` has an invalid {what}: {reason}")]
    Pattern {
        file: String,
        id: String,
        what: &'static str,
        reason: String,
    },
    /// Two rules share an id.
    #[error("`{file}`: rule id `{id}` is defined twice")]
    Duplicate { file: String, id: String },
    /// A rule has no usable id.
    #[error("`{file}`: rule id `{id}` must be non-empty kebab-case")]
    BadId { file: String, id: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    rule: Vec<RuleSpec>,
}

/// One rule as written in a rule file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub id: String,
    pub name: String,
    pub description: String,
    pub pattern: String,
    #[serde(default)]
    pub keywords: Vec<String>,
    #[serde(default)]
    pub binary: bool,
    #[serde(default)]
    pub min_entropy: Option<f64>,
    #[serde(default)]
    pub reject: Option<String>,
    #[serde(default)]
    pub examples: Vec<String>,
    #[serde(default)]
    pub negative_examples: Vec<String>,
}

/// A compiled rule.
#[derive(Debug)]
pub struct Rule {
    pub spec: RuleSpec,
    /// The file it came from (`rules/keys.toml`, or a `--rules` path).
    pub origin: String,
    regex: Regex,
    reject: Option<Regex>,
    secret_group: Option<usize>,
}

/// One match of a rule in a blob: byte offsets of the whole match and of the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleMatch {
    pub rule: usize,
    pub start: usize,
    pub end: usize,
    pub secret_start: usize,
    pub secret_end: usize,
}

/// All rules, with their shared keyword prefilter.
#[derive(Debug)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
    /// Each distinct keyword, with the rules it gates.
    keywords: Vec<(Finder<'static>, Vec<usize>)>,
    /// Rules without keywords: always run.
    always: Vec<usize>,
    /// SHA-256 over every rule file's text: keys the clean-blob cache.
    pub digest: [u8; 32],
}

fn parse_file(file: &str, text: &str) -> Result<Vec<RuleSpec>, RuleError> {
    let parsed: RuleFile = toml::from_str(text).map_err(|err| RuleError::Shape {
        file: file.to_owned(),
        reason: err.message().to_owned(),
    })?;
    Ok(parsed.rule)
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl RuleSet {
    /// The built-in rules plus the rule files given with `--rules`.
    pub fn load(extra: &[impl AsRef<Path>]) -> Result<Self, RuleError> {
        let mut sources: Vec<(String, String)> = BUILTIN
            .iter()
            .map(|(name, text)| ((*name).to_owned(), (*text).to_owned()))
            .collect();
        for path in extra {
            let path = path.as_ref();
            sources.push((path.display().to_string(), fs_err::read_to_string(path)?));
        }
        Self::from_sources(&sources)
    }

    /// Compiles rule files given as (name, text).
    pub fn from_sources(sources: &[(String, String)]) -> Result<Self, RuleError> {
        let mut hasher = Sha256::new();
        let mut rules = Vec::new();
        let mut seen = HashSet::new();
        for (file, text) in sources {
            hasher.update(file.as_bytes());
            hasher.update([0]);
            hasher.update(text.as_bytes());
            hasher.update([0]);
            for spec in parse_file(file, text)? {
                if !valid_id(&spec.id) {
                    return Err(RuleError::BadId {
                        file: file.clone(),
                        id: spec.id,
                    });
                }
                if !seen.insert(spec.id.clone()) {
                    return Err(RuleError::Duplicate {
                        file: file.clone(),
                        id: spec.id,
                    });
                }
                let pattern_error = |what, err: regex::Error| RuleError::Pattern {
                    file: file.clone(),
                    id: spec.id.clone(),
                    what,
                    reason: err.to_string(),
                };
                let regex = regex::bytes::RegexBuilder::new(&spec.pattern)
                    .size_limit(64 << 20)
                    .build()
                    .map_err(|err| pattern_error("pattern", err))?;
                let reject = spec
                    .reject
                    .as_deref()
                    .map(Regex::new)
                    .transpose()
                    .map_err(|err| pattern_error("reject pattern", err))?;
                let secret_group = regex
                    .capture_names()
                    .position(|name| name == Some("secret"));
                rules.push(Rule {
                    origin: file.clone(),
                    regex,
                    reject,
                    secret_group,
                    spec,
                });
            }
        }
        let mut keyword_list: Vec<String> = Vec::new();
        let mut keyword_rules: Vec<Vec<usize>> = Vec::new();
        let mut always = Vec::new();
        for (index, rule) in rules.iter().enumerate() {
            if rule.spec.keywords.is_empty() {
                always.push(index);
            }
            for keyword in &rule.spec.keywords {
                if let Some(pos) = keyword_list.iter().position(|k| k == keyword) {
                    keyword_rules[pos].push(index);
                } else {
                    keyword_list.push(keyword.clone());
                    keyword_rules.push(vec![index]);
                }
            }
        }
        let keywords = keyword_list
            .iter()
            .zip(keyword_rules)
            .map(|(keyword, rules)| (Finder::new(keyword.as_bytes()).into_owned(), rules))
            .collect();
        Ok(RuleSet {
            rules,
            keywords,
            always,
            digest: hasher.finalize().into(),
        })
    }

    /// Runs every rule that applies to `data`; `text` says whether it is UTF-8
    /// text (binary blobs get only the rules marked `binary`).
    pub fn scan(&self, data: &[u8], text: bool, out: &mut Vec<RuleMatch>) {
        let mut wanted = vec![false; self.rules.len()];
        let mut any = false;
        for index in &self.always {
            wanted[*index] = true;
            any = true;
        }
        for (finder, rules) in &self.keywords {
            if rules.iter().all(|rule| wanted[*rule]) || finder.find(data).is_none() {
                continue;
            }
            for rule in rules {
                wanted[*rule] = true;
            }
            any = true;
        }
        if !any {
            return;
        }
        for (index, rule) in self.rules.iter().enumerate() {
            if !wanted[index] || (!text && !rule.spec.binary) {
                continue;
            }
            rule.scan(index, data, out);
        }
    }

    pub fn get(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|rule| rule.spec.id == id)
    }
}

impl Rule {
    fn scan(&self, index: usize, data: &[u8], out: &mut Vec<RuleMatch>) {
        for caps in self.regex.captures_iter(data) {
            let Some(whole) = caps.get(0) else { continue };
            let secret = self
                .secret_group
                .and_then(|group| caps.get(group))
                .unwrap_or(whole);
            let bytes = secret.as_bytes();
            if let Some(min) = self.spec.min_entropy {
                if shannon_entropy(bytes) < min {
                    continue;
                }
            }
            if let Some(reject) = &self.reject {
                if reject.is_match(bytes) {
                    continue;
                }
            }
            out.push(RuleMatch {
                rule: index,
                start: whole.start(),
                end: whole.end(),
                secret_start: secret.start(),
                secret_end: secret.end(),
            });
        }
    }

    /// Whether the rule finds something in `text` (used by the example checks).
    pub fn finds(&self, text: &str) -> bool {
        let mut out = Vec::new();
        self.scan(0, text.as_bytes(), &mut out);
        !out.is_empty()
    }
}

/// Shannon entropy in bits per byte.
pub fn shannon_entropy(bytes: &[u8]) -> f64 {
    if bytes.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for b in bytes {
        counts[usize::from(*b)] += 1;
    }
    #[allow(clippy::cast_precision_loss)]
    let len = bytes.len() as f64;
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            let p = f64::from(*c) / len;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    #[test]
    fn every_builtin_rule_matches_its_examples_and_none_of_its_negatives() {
        let set = RuleSet::load(&[] as &[&Path]).unwrap();
        assert!(set.rules.len() >= 10, "{} rules", set.rules.len());
        for rule in &set.rules {
            assert!(
                !rule.spec.examples.is_empty(),
                "rule `{}` has no example",
                rule.spec.id
            );
            for example in &rule.spec.examples {
                assert!(
                    rule.finds(example),
                    "rule `{}` misses its example {example:?}",
                    rule.spec.id
                );
                // The keyword prefilter must let the example through too.
                let mut out = Vec::new();
                set.scan(example.as_bytes(), true, &mut out);
                assert!(
                    out.iter()
                        .any(|m| set.rules[m.rule].spec.id == rule.spec.id),
                    "rule `{}`: keywords filter out {example:?}",
                    rule.spec.id
                );
            }
            for negative in &rule.spec.negative_examples {
                assert!(
                    !rule.finds(negative),
                    "rule `{}` matches its negative example {negative:?}",
                    rule.spec.id
                );
            }
        }
    }

    #[test]
    fn the_rule_files_do_not_contain_what_they_find() {
        let set = RuleSet::load(&[] as &[&Path]).unwrap();
        for (name, text) in BUILTIN {
            let mut out = Vec::new();
            set.scan(text.as_bytes(), true, &mut out);
            let ids: Vec<&str> = out
                .iter()
                .map(|m| set.rules[m.rule].spec.id.as_str())
                .collect();
            assert!(ids.is_empty(), "`{name}` contains findings of {ids:?}");
        }
    }

    #[test]
    fn an_invalid_pattern_is_an_error_naming_the_rule() {
        let bad =
            "[[rule]]\nid = \"bad\"\nname = \"b\"\ndescription = \"d\"\npattern = \"(unclosed\"\n";
        let err = RuleSet::from_sources(&[("x.toml".into(), bad.into())]).unwrap_err();
        assert!(err.to_string().contains("`bad`"), "{err}");
        let dup = "[[rule]]\nid = \"a\"\nname = \"b\"\ndescription = \"d\"\npattern = \"x\"\n";
        let twice = format!("{dup}{dup}");
        assert!(matches!(
            RuleSet::from_sources(&[("x.toml".into(), twice)]),
            Err(RuleError::Duplicate { .. })
        ));
    }

    #[test]
    fn entropy_of_simple_strings() {
        assert!(shannon_entropy(b"aaaa") < 0.01);
        assert!((shannon_entropy(b"abcd") - 2.0).abs() < 1e-9);
    }
}
