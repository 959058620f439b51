//! What a renewal changes between the sealed certificate and its
//! replacement: `seal` refuses a dropped name unless asked, and writes the
//! differences into the commit message it suggests.

use std::fmt::Write as _;

use fromgit_tls::CertSummary;
use serde::Serialize;

/// What changed between the sealed certificate and its replacement.
#[derive(Debug, Serialize)]
pub struct Renewal {
    pub names_added: Vec<String>,
    pub names_removed: Vec<String>,
    pub issuer: Option<(String, String)>,
    pub key_type: Option<(String, String)>,
    pub validity: ((String, String), (String, String)),
    pub same_certificate: bool,
}

impl Renewal {
    pub fn between(old: &CertSummary, new: &CertSummary) -> Self {
        let changed = |a: &String, b: &String| (a != b).then(|| (a.clone(), b.clone()));
        Renewal {
            names_added: new
                .names
                .iter()
                .filter(|n| !old.names.contains(n))
                .cloned()
                .collect(),
            names_removed: old
                .names
                .iter()
                .filter(|n| !new.names.contains(n))
                .cloned()
                .collect(),
            issuer: changed(&old.issuer, &new.issuer),
            key_type: changed(&old.key_type, &new.key_type),
            validity: (
                (old.not_before.clone(), old.not_after.clone()),
                (new.not_before.clone(), new.not_after.clone()),
            ),
            same_certificate: old.sha256_fingerprint == new.sha256_fingerprint,
        }
    }

    /// The summary an operator pastes into the commit message.
    pub fn commit_message(&self, new: &CertSummary) -> String {
        let subject = new
            .names
            .iter()
            .find(|n| n.starts_with("*."))
            .or(new.names.first())
            .cloned()
            .unwrap_or_default();
        let mut text = format!(
            "tls: renew {subject} certificate, valid until {}\n\n",
            date(&new.not_after)
        );
        let ((old_from, old_to), (new_from, new_to)) = &self.validity;
        let _ = writeln!(
            text,
            "- validity: {} .. {} -> {} .. {}",
            date(old_from),
            date(old_to),
            date(new_from),
            date(new_to)
        );
        for name in &self.names_added {
            let _ = writeln!(text, "- name added: {name}");
        }
        for name in &self.names_removed {
            let _ = writeln!(text, "- name removed: {name}");
        }
        if let Some((old, new)) = &self.issuer {
            let _ = writeln!(text, "- issuer: {old} -> {new}");
        }
        if let Some((old, new)) = &self.key_type {
            let _ = writeln!(text, "- key type: {old} -> {new}");
        }
        let _ = writeln!(text, "- sha256 fingerprint: {}", new.sha256_fingerprint);
        text
    }
}

fn date(rfc3339: &str) -> &str {
    rfc3339.get(..10).unwrap_or(rfc3339)
}
