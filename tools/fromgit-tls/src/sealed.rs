//! The sealed layout and what can be read from it without a key. It lives
//! here because `cert-seal` writes it and `vm-prove` reads it.
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

use std::path::Path;

use zeroize::Zeroizing;

use fromgit_sops::metadata::SelectionMatcher;
use fromgit_sops::{EncryptedFile, Format, Kind, Map, Scalar, Value};

use crate::facts::CertSummary;

/// Top-level key of the sealed pair in the sops file.
pub const TLS_KEY: &str = "tls";
pub const FULLCHAIN_KEY: &str = "fullchain";
pub const PRIVATE_KEY_KEY: &str = "key";
pub const CLEAR_KEY: &str = "certificate_unencrypted";

impl CertSummary {
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

/// Why a sealed file's clear summary could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SealedError {
    #[error(transparent)]
    Read(#[from] std::io::Error),
    #[error("cannot read sops file `{path}`")]
    Parse {
        path: String,
        #[source]
        source: fromgit_sops::SopsError,
    },
    #[error("`{path}` has no clear certificate summary (`tls.{CLEAR_KEY}`); was it sealed by `cert-seal seal`?")]
    NoSummary { path: String },
}

/// Reads a sops file (YAML unless its name says JSON) without decrypting it.
pub fn read_sealed(path: &Path) -> Result<EncryptedFile, SealedError> {
    let format = Format::from_path(path).unwrap_or(Format::Yaml);
    let text = fs_err::read_to_string(path)?;
    EncryptedFile::parse(&text, format).map_err(|source| SealedError::Parse {
        path: path.display().to_string(),
        source,
    })
}

/// The clear summary of a sealed certificate file, read without any key.
pub fn sealed_summary(path: &Path) -> Result<CertSummary, SealedError> {
    let file = read_sealed(path)?;
    summary_of(&file, path)
}

/// The clear summary of a file already read (`path` names it in the error).
pub fn summary_of(file: &EncryptedFile, path: &Path) -> Result<CertSummary, SealedError> {
    clear_summary(&file.tree).ok_or_else(|| SealedError::NoSummary {
        path: path.display().to_string(),
    })
}
