//! The checks that stand between a certificate and the instance repo: a
//! certificate committed here is served by the host at its next rebuild,
//! so everything that would break TLS is refused before sealing.
//!
//! Every refusal is collected (not just the first) so the operator sees the
//! whole list at once.

use fromgit_tls::facts::{dns_names, whole_days_between};
use fromgit_tls::key::{certificate_key, key_type, private_key_public_bits, KeyType};
use serde::Serialize;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::pem_input::{ChainInput, KeyInput};

/// Why a certificate is refused: a stable id for scripts and a message.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Refusal {
    pub check: &'static str,
    pub message: String,
}

fn refuse(check: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        check,
        message: message.into(),
    }
}

/// What the checks need besides the input.
pub struct Policy<'a> {
    pub domain: &'a str,
    pub now: OffsetDateTime,
    pub min_days: i64,
    pub allow_short: bool,
}

/// Parses every certificate of the chain; a block that is not a certificate
/// is reported with its position.
pub fn parse_chain(chain: &ChainInput) -> Result<Vec<X509Certificate<'_>>, Refusal> {
    chain
        .der
        .iter()
        .enumerate()
        .map(|(index, der)| {
            X509Certificate::from_der(der)
                .map(|(_, cert)| cert)
                .map_err(|_| {
                    refuse(
                        "input",
                        format!(
                            "certificate {} of the chain is not a valid X.509 certificate",
                            index + 1
                        ),
                    )
                })
        })
        .collect()
}

/// Runs every check; an empty list means the pair may be sealed.
pub fn check(chain: &[X509Certificate<'_>], key: &KeyInput, policy: &Policy<'_>) -> Vec<Refusal> {
    let mut refusals = Vec::new();
    let Some(leaf) = chain.first() else {
        return vec![refuse("input", "the chain holds no certificate")];
    };
    check_key(leaf, key, &mut refusals);
    check_names(leaf, policy.domain, &mut refusals);
    check_chain(chain, &mut refusals);
    check_validity(chain, policy, &mut refusals);
    check_purpose(leaf, &mut refusals);
    refusals
}

fn check_key(leaf: &X509Certificate<'_>, key: &KeyInput, refusals: &mut Vec<Refusal>) {
    let Some(certified) = certificate_key(leaf) else {
        refusals.push(refuse(
            "key-type",
            "the leaf's public key is not RSA, ECDSA P-256/P-384 or Ed25519",
        ));
        return;
    };
    match private_key_public_bits(&key.label, &key.der) {
        None => refusals.push(refuse(
            "key-type",
            format!(
                "the private key (`{}`) is not an RSA, ECDSA P-256/P-384 or Ed25519 key fromgit can read",
                key.label
            ),
        )),
        Some(derived) if derived != certified => refusals.push(refuse(
            "key-mismatch",
            "the private key does not belong to the leaf certificate (their public keys differ)",
        )),
        Some(_) => {}
    }
}

fn check_names(leaf: &X509Certificate<'_>, domain: &str, refusals: &mut Vec<Refusal>) {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let names = dns_names(leaf);
    // A wildcard covers exactly one label and never the apex, and the common
    // name does not count: both names must be listed as they are.
    let missing: Vec<String> = [format!("*.{domain}"), domain.clone()]
        .into_iter()
        .filter(|wanted| !names.contains(wanted))
        .collect();
    if !missing.is_empty() {
        refusals.push(refuse(
            "names",
            format!(
                "the leaf's subjectAltNames ({}) do not cover {}",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                },
                missing
                    .iter()
                    .map(|m| format!("`{m}`"))
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
        ));
    }
}

fn describe(index: usize, cert: &X509Certificate<'_>) -> String {
    format!("certificate {} (`{}`)", index + 1, cert.subject())
}

fn check_chain(chain: &[X509Certificate<'_>], refusals: &mut Vec<Refusal>) {
    for (index, cert) in chain.iter().enumerate() {
        if let Some(first) = chain[..index]
            .iter()
            .position(|c| c.as_ref() == cert.as_ref())
        {
            refusals.push(refuse(
                "chain-duplicate",
                format!(
                    "{} repeats certificate {}",
                    describe(index, cert),
                    first + 1
                ),
            ));
        }
    }
    for (index, pair) in chain.windows(2).enumerate() {
        let (child, parent) = (&pair[0], &pair[1]);
        if child.as_ref() == parent.as_ref() {
            continue;
        }
        let signed = child.issuer() == parent.subject()
            && child.verify_signature(Some(parent.public_key())).is_ok();
        if !signed {
            refusals.push(refuse(
                "chain-order",
                format!(
                    "{} is not signed by {}: the chain must run leaf first, each certificate followed by its issuer",
                    describe(index, child),
                    describe(index + 1, parent)
                ),
            ));
        }
    }
    if let Some(last) = chain.last() {
        let index = chain.len() - 1;
        if index > 0 && last.issuer() == last.subject() && last.verify_signature(None).is_ok() {
            refusals.push(refuse(
                "chain-root",
                format!(
                    "{} is a self-signed root; leave the root out of the chain (clients have it)",
                    describe(index, last)
                ),
            ));
        }
    }
}

fn check_validity(chain: &[X509Certificate<'_>], policy: &Policy<'_>, refusals: &mut Vec<Refusal>) {
    let now = policy.now.unix_timestamp();
    for (index, cert) in chain.iter().enumerate() {
        let validity = cert.validity();
        if now < validity.not_before.timestamp() {
            refusals.push(refuse(
                "not-yet-valid",
                format!(
                    "{} is not valid before {}",
                    describe(index, cert),
                    validity.not_before
                ),
            ));
        }
        if now >= validity.not_after.timestamp() {
            refusals.push(refuse(
                "expired",
                format!(
                    "{} expired on {}",
                    describe(index, cert),
                    validity.not_after
                ),
            ));
        }
    }
    if let Some(leaf) = chain.first() {
        let left = whole_days_between(now, leaf.validity().not_after.timestamp());
        if left >= 0 && left < policy.min_days && !policy.allow_short {
            refusals.push(refuse(
                "expires-soon",
                format!(
                    "the leaf expires in {left} day(s), under `--min-days {}`; pass `--allow-short` to seal it anyway",
                    policy.min_days
                ),
            ));
        }
    }
}

fn check_purpose(leaf: &X509Certificate<'_>, refusals: &mut Vec<Refusal>) {
    match leaf.extended_key_usage() {
        Ok(Some(eku)) if eku.value.server_auth => {}
        Ok(Some(_)) => refusals.push(refuse(
            "server-auth",
            "the leaf's extendedKeyUsage does not include serverAuth",
        )),
        Ok(None) | Err(_) => refusals.push(refuse(
            "server-auth",
            "the leaf has no extendedKeyUsage extension with serverAuth",
        )),
    }
    if let Some(KeyType::Rsa(bits)) = key_type(leaf) {
        if bits < 2048 {
            refusals.push(refuse(
                "weak-key",
                format!("the leaf's RSA key has {bits} bits; at least 2048 are required"),
            ));
        }
    }
}

#[cfg(test)]
mod tests;
