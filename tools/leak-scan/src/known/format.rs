//! The fingerprint file as written to disk, and the keyed hashes that
//! enrolment writes and matching recomputes: both sides call the same
//! functions here, so a file enrolled today still matches tomorrow.

use hmac::{Hmac, KeyInit as _, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::tokens::Tokenizer;
use crate::rules::{INSTANCE_ADDRESS, INSTANCE_DOMAIN, INSTANCE_EMAIL, INSTANCE_SECRET};

pub const FORMAT: &str = "leak-scan-fingerprints";
pub const ALGORITHM: &str = "hmac-sha256-128";

/// What an enrolled value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Secret,
    Domain,
    Address,
    Email,
}

impl Kind {
    pub fn rule_id(self) -> &'static str {
        match self {
            Kind::Secret => INSTANCE_SECRET,
            Kind::Domain => INSTANCE_DOMAIN,
            Kind::Address => INSTANCE_ADDRESS,
            Kind::Email => INSTANCE_EMAIL,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Secret => "secret",
            Kind::Domain => "domain",
            Kind::Address => "address",
            Kind::Email => "email",
        }
    }

    fn tag(self) -> &'static [u8] {
        match self {
            Kind::Secret => b"v",
            Kind::Domain => b"h",
            Kind::Address => b"i",
            Kind::Email => b"e",
        }
    }
}

/// One line of the fingerprint file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EntryRecord {
    pub label: String,
    pub kind: Kind,
    pub transform: String,
    pub tokenizer: Tokenizer,
    pub len: usize,
    pub fp: String,
}

/// The fingerprint file: no plaintext, only keyed hashes and their shapes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FingerprintFile {
    pub schema_version: u32,
    pub format: String,
    pub algorithm: String,
    pub salt: String,
    pub entries: Vec<EntryRecord>,
    pub check: String,
}

pub(super) fn keyed(salt: &[u8]) -> Hmac<Sha256> {
    #[allow(clippy::expect_used)]
    Hmac::<Sha256>::new_from_slice(salt).expect("HMAC accepts keys of any length")
}

pub(super) fn fingerprint(key: &Hmac<Sha256>, kind: Kind, form: &[u8]) -> [u8; 16] {
    let mut mac = key.clone();
    mac.update(b"leak-scan/fp/v1\0");
    mac.update(kind.tag());
    mac.update(&[0]);
    mac.update(form);
    let full = mac.finalize().into_bytes();
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

pub(super) fn check_value(key: &Hmac<Sha256>, entries: &[EntryRecord]) -> String {
    let mut mac = key.clone();
    mac.update(b"leak-scan/check/v1\0");
    for e in entries {
        for part in [
            e.label.as_str(),
            e.kind.name(),
            e.transform.as_str(),
            &format!("{:?}", e.tokenizer),
            &e.len.to_string(),
            e.fp.as_str(),
        ] {
            mac.update(part.as_bytes());
            mac.update(&[0]);
        }
    }
    hex::encode(mac.finalize().into_bytes())
}
