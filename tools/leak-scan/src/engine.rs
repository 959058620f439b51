//! The one scanning engine the three modes share: given the bytes of a
//! file, a blob, a commit or a name, it returns hits with their positions
//! and content fingerprints, and nothing else. Where the bytes came from
//! (a path, a blob id, a commit) is the caller's business, so that a blob
//! seen in many commits is scanned once.
//!
//! A hit carries no secret bytes: only the rule, the position and a keyed
//! fingerprint of the normalised secret, which is what suppressions key on.

use std::fmt::Write as _;

use hmac::{Hmac, KeyInit as _, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::known::KnownSet;
use crate::rules::{
    RuleMatch, RuleSet, INSTANCE_ADDRESS, INSTANCE_DOMAIN, INSTANCE_EMAIL, INSTANCE_SECRET,
    SOPS_NOT_ENCRYPTED, SOPS_PLAINTEXT, SOPS_UNPARSABLE,
};
use crate::sopscheck;

/// How severe a finding is, in SARIF's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error,
    Warning,
}

/// A rule of any kind (regex, instance fingerprint, sops structure), as
/// listed in reports.
#[derive(Debug, Clone, Serialize)]
pub struct RuleInfo {
    pub id: String,
    pub name: String,
    pub description: String,
    pub level: Level,
    pub tags: Vec<&'static str>,
}

fn structural_rules() -> Vec<RuleInfo> {
    let info = |id: &str, name: &str, description: &str, tags| RuleInfo {
        id: id.to_owned(),
        name: name.to_owned(),
        description: description.to_owned(),
        level: Level::Error,
        tags,
    };
    vec![
        info(SOPS_PLAINTEXT, "Plaintext value in a sops file", "A file with a sops metadata block holds a value in clear that its selection rule says must be encrypted (a decrypted or hand-edited sops file)", vec!["security", "secret", "sops"]),
        info(SOPS_UNPARSABLE, "sops file that cannot be read", "A file with the shape of a sops file (`ENC[…]` values and a top-level `sops` entry) that the sops reader refuses (not valid YAML or JSON, nested deeper than sops allows, anchors, tags, duplicate keys, no valid metadata): its values could not be checked for plaintext", vec!["security", "secret", "sops"]),
        info(SOPS_NOT_ENCRYPTED, "File covered by a sops creation rule is not sops-encrypted", "A `.sops.yaml` creation rule covers this file, but it is not a valid sops file", vec!["security", "secret", "sops"]),
        info(INSTANCE_SECRET, "Instance secret", "A value of the instance's sops secrets (or a line, or its base64 or hex form), matched by keyed fingerprint", vec!["security", "secret", "instance"]),
        info(INSTANCE_DOMAIN, "Instance domain", "The instance's domain or one of its subdomains, matched by keyed fingerprint", vec!["security", "instance"]),
        info(INSTANCE_ADDRESS, "Instance IP address", "An IP address of the instance, matched by keyed fingerprint", vec!["security", "instance"]),
        info(INSTANCE_EMAIL, "Instance e-mail address", "An e-mail address of the instance, matched by keyed fingerprint", vec!["security", "instance"]),
    ]
}

/// A hit inside one piece of content; positions are 1-based, columns count characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub rule: String,
    pub line: usize,
    pub column: usize,
    pub end_line: usize,
    pub end_column: usize,
    /// Keyed fingerprint of the rule and the normalised secret (16 bytes).
    pub fingerprint: [u8; 16],
    /// For instance hits: the enrolled entry's label, kind and transform.
    pub known: Option<KnownHit>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KnownHit {
    pub label: String,
    pub kind: String,
    pub transform: String,
}

/// Blobs larger than this are not text we can scan line by line.
pub const BINARY_SNIFF: usize = 8000;

/// Whether content is scanned as text: valid UTF-8 without NUL near its start.
pub fn is_text(data: &[u8]) -> bool {
    let head = &data[..data.len().min(BINARY_SNIFF)];
    memchr::memchr(0, head).is_none() && std::str::from_utf8(data).is_ok()
}

/// Rules, instance fingerprints and the key of content fingerprints.
pub struct Engine {
    pub rules: RuleSet,
    pub known: Option<KnownSet>,
    content_key: Hmac<Sha256>,
}

impl Engine {
    pub fn new(rules: RuleSet, known: Option<KnownSet>, salt: &[u8]) -> Self {
        #[allow(clippy::expect_used)]
        let content_key =
            Hmac::<Sha256>::new_from_slice(salt).expect("HMAC accepts keys of any length");
        Engine {
            rules,
            known,
            content_key,
        }
    }

    /// Every rule a report may name.
    pub fn catalog(&self) -> Vec<RuleInfo> {
        let mut out: Vec<RuleInfo> = self
            .rules
            .rules
            .iter()
            .map(|rule| RuleInfo {
                id: rule.spec.id.clone(),
                name: rule.spec.name.clone(),
                description: rule.spec.description.clone(),
                level: Level::Error,
                tags: vec!["security", "secret"],
            })
            .collect();
        out.extend(structural_rules());
        out
    }

    /// The content fingerprint of a rule hit: HMAC(salt, rule ‖ 0 ‖ secret without whitespace).
    pub fn fingerprint(&self, rule: &str, secret: &[u8]) -> [u8; 16] {
        let mut mac = self.content_key.clone();
        mac.update(b"leak-scan/content/v1\0");
        mac.update(rule.as_bytes());
        mac.update(&[0]);
        for chunk in secret.split(u8::is_ascii_whitespace) {
            mac.update(chunk);
        }
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        out
    }

    /// The fingerprint a finding is reported and suppressed by: the rule,
    /// where it was found (the path, or for a commit, tag or unreachable
    /// blob its id) and the content fingerprint, under the same salt. One
    /// suppression can therefore never hide the same rule in another file,
    /// nor another value in the same file.
    pub fn finding_fingerprint(&self, rule: &str, location: &str, content: &[u8; 16]) -> [u8; 16] {
        let mut mac = self.content_key.clone();
        mac.update(b"leak-scan/finding/v2\0");
        mac.update(rule.as_bytes());
        mac.update(&[0]);
        mac.update(location.as_bytes());
        mac.update(&[0]);
        mac.update(content);
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        out
    }

    /// A name (a path, a ref) or any text a report prints, with every span a
    /// rule or a fingerprint matches replaced by `[rule]` or `[label]` (a
    /// file named after the instance's domain must not print the domain) and
    /// every control or bidirectional character escaped (a crafted name must
    /// not start a new line, move the cursor or forge a verdict).
    pub fn redact(&self, name: &str) -> String {
        let data = name.as_bytes();
        let mut spans: Vec<(usize, usize, String)> = Vec::new();
        let mut matches = Vec::new();
        self.rules.scan(data, true, &mut matches);
        for m in matches {
            let id = self.rules.rules[m.rule].spec.id.clone();
            spans.push((m.secret_start, m.secret_end, id));
        }
        if let Some(known) = &self.known {
            for k in known.scan(data) {
                spans.push((k.start, k.end, known.entries[k.entry].label.clone()));
            }
        }
        spans.sort();
        let mut out = String::new();
        let mut at = 0;
        for (start, end, label) in spans {
            if start < at {
                // Overlaps the previous span: extend it.
                at = at.max(end);
                continue;
            }
            out.push_str(&escape_text(&String::from_utf8_lossy(&data[at..start])));
            let _ = write!(out, "[{}]", escape_text(&label));
            at = end;
        }
        out.push_str(&escape_text(&String::from_utf8_lossy(
            &data[at.min(data.len())..],
        )));
        out
    }

    /// Scans one piece of content.
    pub fn scan(&self, data: &[u8]) -> Vec<Hit> {
        let text = is_text(data);
        let mut matches: Vec<RuleMatch> = Vec::new();
        self.rules.scan(data, text, &mut matches);
        let known_matches = self
            .known
            .as_ref()
            .map(|known| known.scan(data))
            .unwrap_or_default();
        let sops_matches = if text {
            sopscheck::check(data)
        } else {
            Vec::new()
        };
        if matches.is_empty() && known_matches.is_empty() && sops_matches.is_empty() {
            return Vec::new();
        }
        let lines = LineIndex::new(data);
        let mut hits: Vec<Hit> = matches
            .iter()
            .map(|m| {
                let rule = &self.rules.rules[m.rule].spec.id;
                let (line, column) = lines.position(data, m.secret_start);
                let (end_line, end_column) = lines.position(data, m.secret_end);
                Hit {
                    rule: rule.clone(),
                    line,
                    column,
                    end_line,
                    end_column,
                    fingerprint: self.fingerprint(rule, &data[m.secret_start..m.secret_end]),
                    known: None,
                }
            })
            .collect();
        if let Some(known) = &self.known {
            for k in known_matches {
                let (line, column) = lines.position(data, k.start);
                let (end_line, end_column) = lines.position(data, k.end);
                let entry = &known.entries[k.entry];
                let mut mac = self.content_key.clone();
                mac.update(b"leak-scan/known/v1\0");
                mac.update(&entry.fp);
                let full = mac.finalize().into_bytes();
                let mut fingerprint = [0u8; 16];
                fingerprint.copy_from_slice(&full[..16]);
                hits.push(Hit {
                    rule: entry.kind.rule_id().to_owned(),
                    line,
                    column,
                    end_line,
                    end_column,
                    fingerprint,
                    known: Some(KnownHit {
                        label: entry.label.clone(),
                        kind: entry.kind.name().to_owned(),
                        transform: entry.transform.clone(),
                    }),
                });
            }
        }
        for sops in sops_matches {
            let (line, column) = lines.position(data, sops.offset);
            hits.push(Hit {
                rule: sops.rule.to_owned(),
                line,
                column,
                end_line: line,
                end_column: column,
                fingerprint: self.fingerprint(sops.rule, &sops.material),
                known: None,
            });
        }
        dedup(&mut hits);
        hits
    }
}

/// Two rules matching the same span (a PEM body found as a key and as an
/// instance line) stay two findings; the same rule at the same place is one.
fn dedup(hits: &mut Vec<Hit>) {
    hits.sort_by(|a, b| {
        (a.line, a.column, &a.rule, a.fingerprint).cmp(&(b.line, b.column, &b.rule, b.fingerprint))
    });
    hits.dedup_by(|a, b| a.rule == b.rule && a.line == b.line && a.column == b.column);
}

/// Maps byte offsets to 1-based lines and character columns.
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(data: &[u8]) -> Self {
        let mut starts = vec![0];
        starts.extend(memchr::memchr_iter(b'\n', data).map(|i| i + 1));
        LineIndex { starts }
    }

    pub fn position(&self, data: &[u8], offset: usize) -> (usize, usize) {
        let line = match self.starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = self.starts[line];
        let end = offset.min(data.len());
        let prefix = &data[start..end];
        let column = match std::str::from_utf8(prefix) {
            Ok(s) => s.chars().count(),
            Err(_) => prefix.len(),
        };
        (line + 1, column + 1)
    }
}

/// Escapes what a terminal or a reader would not show as itself: control
/// characters (`\n`, `\r`, `\t`, `\xNN`), C1 controls, and the
/// bidirectional and line-separator characters that reorder or split a line
/// (`\u{202e}`).
pub fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_ascii_control() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            '\u{80}'..='\u{9f}'
            | '\u{61c}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}' => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// Renders bytes as text, escaping what is not UTF-8 as `\xNN` (paths, ref names).
pub fn display_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn engine() -> Engine {
        Engine::new(
            RuleSet::load(&[] as &[&std::path::Path]).unwrap(),
            None,
            b"t",
        )
    }

    #[test]
    fn positions_are_one_based_characters() {
        let data = "ab\nçd x".as_bytes();
        let index = LineIndex::new(data);
        assert_eq!(index.position(data, 0), (1, 1));
        assert_eq!(index.position(data, 3), (2, 1));
        assert_eq!(index.position(data, 7), (2, 4));
    }

    #[test]
    fn fingerprint_ignores_whitespace_and_depends_on_rule() {
        let e = engine();
        assert_eq!(e.fingerprint("r", b"ab cd\n"), e.fingerprint("r", b"abcd"));
        assert_ne!(e.fingerprint("r", b"abcd"), e.fingerprint("s", b"abcd"));
        assert_ne!(e.fingerprint("r", b"abcd"), e.fingerprint("r", b"abce"));
    }

    #[test]
    fn binary_content_gets_binary_rules_only() {
        let e = engine();
        let key = format!(
            "AGE-SECRET-{}",
            "KEY-15FERYXHRDZ9M6Y09MR8WRERWZGJ6F8NTXVHXYRDLM5AAHN0T09NL4UJY86"
        );
        let mut data = vec![0u8, 1, 2, 0xff];
        data.extend_from_slice(key.as_bytes());
        data.extend_from_slice(b"\0password = \"mHFwUbbYrEqmSM9wCZ7Uw9xfogoEmvnEN5N\"\0");
        let hits = e.scan(&data);
        let rules: Vec<&str> = hits.iter().map(|h| h.rule.as_str()).collect();
        assert_eq!(rules, ["age-secret-key"]);
    }

    #[test]
    fn control_and_bidi_characters_are_escaped_in_printed_names() {
        let e = engine();
        assert_eq!(
            e.redact("a\nproven clean\r\u{1b}[2K\u{202e}b\u{85}"),
            "a\\nproven clean\\r\\x1b[2K\\u{202e}b\\u{85}"
        );
        assert_eq!(e.redact("hosts/ç.nix"), "hosts/ç.nix");
    }

    #[test]
    fn non_utf8_bytes_are_escaped() {
        assert_eq!(display_bytes(b"a\xffb"), "a\\xffb");
    }
}
