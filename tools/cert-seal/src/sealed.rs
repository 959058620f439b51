//! The sealed layout and what can be read from it without a key.
//!
//! ```yaml
//! tls:
//!     fullchain: ENC[…]          # normalised PEM, leaf first
//!     key: ENC[…]
//!     certificate_unencrypted:   # clear, but covered by the MAC
//!         sha256_fingerprint: "AB:CD:…"
//!         names: ["*.example.net", "example.net"]
//!         …
//! ```
//!
//! The clear values let anyone inspect, renew-compare and probe against the
//! sealed certificate with no decryption key; sops' `_unencrypted` suffix
//! keeps them in plaintext while the MAC still binds them to the secrets.

use std::fmt::Write as _;

use serde::Serialize;
use sha2::{Digest as _, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use x509_parser::prelude::X509Certificate;
use zeroize::Zeroizing;

use fromgit_sops::metadata::SelectionMatcher;
use fromgit_sops::{Kind, Map, Scalar, Value};

use crate::check;

/// Top-level key of the sealed pair in the sops file.
pub const TLS_KEY: &str = "tls";
pub const FULLCHAIN_KEY: &str = "fullchain";
pub const PRIVATE_KEY_KEY: &str = "key";
pub const CLEAR_KEY: &str = "certificate_unencrypted";

/// What is known about a certificate without its key.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CertSummary {
    pub sha256_fingerprint: String,
    pub names: Vec<String>,
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub not_before: String,
    pub not_after: String,
    pub key_type: String,
}

/// `AB:CD:…`, as `openssl x509 -fingerprint -sha256` prints it.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    digest
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn rfc3339(timestamp: i64) -> String {
    OffsetDateTime::from_unix_timestamp(timestamp)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

impl CertSummary {
    pub fn of(cert: &X509Certificate<'_>) -> Self {
        CertSummary {
            sha256_fingerprint: fingerprint(cert.as_ref()),
            names: check::dns_names(cert),
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            serial: cert.raw_serial_as_string().to_ascii_uppercase(),
            not_before: rfc3339(cert.validity().not_before.timestamp()),
            not_after: rfc3339(cert.validity().not_after.timestamp()),
            key_type: check::key_type(cert)
                .map(|k| k.to_string())
                .unwrap_or_default(),
        }
    }

    /// Whole days from `now` to `not_after` (negative once expired).
    pub fn days_left(&self, now: OffsetDateTime) -> Option<i64> {
        let not_after = OffsetDateTime::parse(&self.not_after, &Rfc3339).ok()?;
        Some(check::whole_days_between(
            now.unix_timestamp(),
            not_after.unix_timestamp(),
        ))
    }

    fn to_value(&self) -> Value {
        let string = |s: &str| Value::Scalar(Scalar::string(s));
        Value::Map(vec![
            (
                "sha256_fingerprint".into(),
                string(&self.sha256_fingerprint),
            ),
            (
                "names".into(),
                Value::List(self.names.iter().map(|n| string(n)).collect()),
            ),
            ("subject".into(), string(&self.subject)),
            ("issuer".into(), string(&self.issuer)),
            ("serial".into(), string(&self.serial)),
            ("not_before".into(), string(&self.not_before)),
            ("not_after".into(), string(&self.not_after)),
            ("key_type".into(), string(&self.key_type)),
        ])
    }

    fn from_value(value: &Value) -> Option<Self> {
        let Value::Map(map) = value else { return None };
        let text = |key: &str| match map.iter().find(|(k, _)| k == key) {
            Some((_, Value::Scalar(s))) if s.kind == Kind::Str => Some(s.text.as_str().to_owned()),
            _ => None,
        };
        let names = match map.iter().find(|(k, _)| k == "names") {
            Some((_, Value::List(items))) => items
                .iter()
                .map(|item| match item {
                    Value::Scalar(s) => Some(s.text.as_str().to_owned()),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()?,
            _ => return None,
        };
        Some(CertSummary {
            sha256_fingerprint: text("sha256_fingerprint")?,
            names,
            subject: text("subject")?,
            issuer: text("issuer")?,
            serial: text("serial")?,
            not_before: text("not_before")?,
            not_after: text("not_after")?,
            key_type: text("key_type")?,
        })
    }
}

/// The `tls` subtree: encrypted chain and key, clear summary.
pub fn tls_value(
    fullchain: Zeroizing<String>,
    key: Zeroizing<String>,
    summary: &CertSummary,
) -> Value {
    Value::Map(vec![
        (
            FULLCHAIN_KEY.into(),
            Value::Scalar(Scalar {
                kind: Kind::Str,
                text: fullchain,
            }),
        ),
        (
            PRIVATE_KEY_KEY.into(),
            Value::Scalar(Scalar {
                kind: Kind::Str,
                text: key,
            }),
        ),
        (CLEAR_KEY.into(), summary.to_value()),
    ])
}

/// Puts the `tls` subtree into a document, replacing an existing one in place.
pub fn with_tls(mut tree: Map, tls: Value) -> Map {
    match tree.iter_mut().find(|(k, _)| k == TLS_KEY) {
        Some((_, slot)) => *slot = tls,
        None => tree.push((TLS_KEY.into(), tls)),
    }
    tree
}

/// Whether the file's selection rule encrypts the chain and key and leaves the
/// summary clear; a rule that does not would leak the key or hide the summary.
pub fn layout_is_protected(matcher: &SelectionMatcher) -> bool {
    let encrypts = |keys: &[&str]| matcher.encrypts(keys.iter().copied());
    encrypts(&[TLS_KEY, FULLCHAIN_KEY])
        && encrypts(&[TLS_KEY, PRIVATE_KEY_KEY])
        && !encrypts(&[TLS_KEY, CLEAR_KEY, "sha256_fingerprint"])
}

/// Reads the clear summary from an encrypted file's tree, no key needed.
pub fn clear_summary(tree: &Map) -> Option<CertSummary> {
    let (_, Value::Map(tls)) = tree.iter().find(|(k, _)| k == TLS_KEY)? else {
        return None;
    };
    let (_, clear) = tls.iter().find(|(k, _)| k == CLEAR_KEY)?;
    CertSummary::from_value(clear)
}

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
