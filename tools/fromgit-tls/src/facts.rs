//! The facts the tools report about a certificate (names, issuer, validity,
//! key type, fingerprint), read from its DER: the same summary describes a
//! sealed certificate and a served one, so the two can be compared.

use serde::Serialize;
use sha2::{Digest as _, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::key;

/// Parses a single DER certificate.
pub fn parse_der(der: &[u8]) -> Option<X509Certificate<'_>> {
    X509Certificate::from_der(der).ok().map(|(_, cert)| cert)
}

/// The leaf's DNS subjectAltNames, lower-cased, without a trailing dot.
pub fn dns_names(cert: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            x509_parser::extensions::GeneralName::DNSName(dns) => {
                Some(dns.trim_end_matches('.').to_ascii_lowercase())
            }
            _ => None,
        })
        .collect()
}

/// Whole days from `from` to `to` (Unix seconds), rounded down.
pub fn whole_days_between(from: i64, to: i64) -> i64 {
    (to - from).div_euclid(86_400)
}

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
            names: dns_names(cert),
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            serial: cert.raw_serial_as_string().to_ascii_uppercase(),
            not_before: rfc3339(cert.validity().not_before.timestamp()),
            not_after: rfc3339(cert.validity().not_after.timestamp()),
            key_type: key::key_type(cert)
                .map(|k| k.to_string())
                .unwrap_or_default(),
        }
    }

    /// Whole days from `now` to `not_after` (negative once expired).
    pub fn days_left(&self, now: OffsetDateTime) -> Option<i64> {
        let not_after = OffsetDateTime::parse(&self.not_after, &Rfc3339).ok()?;
        Some(whole_days_between(
            now.unix_timestamp(),
            not_after.unix_timestamp(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_days_round_down_on_both_sides_of_zero() {
        assert_eq!(whole_days_between(0, 86_399), 0);
        assert_eq!(whole_days_between(0, 86_400), 1);
        assert_eq!(whole_days_between(100, 100 + 3 * 86_400 - 1), 2);
        assert_eq!(whole_days_between(0, -1), -1);
        assert_eq!(whole_days_between(86_400, 0), -1);
    }
}
