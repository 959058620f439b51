//! The public keys fromgit accepts in a TLS certificate, in a form that can
//! be compared: a certificate's key with a private key's public half, and
//! the key type a summary reports.

use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
    OID_SIG_ED25519,
};
use x509_parser::prelude::X509Certificate;
use x509_parser::public_key::PublicKey;

/// The key algorithms fromgit accepts for a TLS certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Rsa(usize),
    P256,
    P384,
    Ed25519,
}

impl std::fmt::Display for KeyType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyType::Rsa(bits) => write!(f, "RSA {bits}"),
            KeyType::P256 => f.write_str("ECDSA P-256"),
            KeyType::P384 => f.write_str("ECDSA P-384"),
            KeyType::Ed25519 => f.write_str("Ed25519"),
        }
    }
}

/// A public key in a comparable form.
#[derive(PartialEq, Eq)]
pub enum PublicKeyBits {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    P256(Vec<u8>),
    P384(Vec<u8>),
    Ed25519(Vec<u8>),
}

/// The certificate's public key, if it is of a type fromgit accepts.
pub fn certificate_key(cert: &X509Certificate<'_>) -> Option<PublicKeyBits> {
    let spki = cert.public_key();
    let bits = spki.subject_public_key.data.as_ref();
    let oid = &spki.algorithm.algorithm;
    if *oid == OID_PKCS1_RSAENCRYPTION {
        use rsa::pkcs1::DecodeRsaPublicKey as _;
        use rsa::traits::PublicKeyParts as _;
        let key = rsa::RsaPublicKey::from_pkcs1_der(bits).ok()?;
        return Some(PublicKeyBits::Rsa {
            n: key.n().to_bytes_be(),
            e: key.e().to_bytes_be(),
        });
    }
    if *oid == OID_SIG_ED25519 {
        return Some(PublicKeyBits::Ed25519(bits.to_vec()));
    }
    if *oid == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki.algorithm.parameters.as_ref()?.as_oid().ok()?;
        if curve == OID_EC_P256 {
            let point = p256::PublicKey::from_sec1_bytes(bits).ok()?;
            return Some(PublicKeyBits::P256(sec1_uncompressed_p256(&point)));
        }
        if curve == OID_NIST_EC_P384 {
            let point = p384::PublicKey::from_sec1_bytes(bits).ok()?;
            return Some(PublicKeyBits::P384(sec1_uncompressed_p384(&point)));
        }
    }
    None
}

fn sec1_uncompressed_p256(key: &p256::PublicKey) -> Vec<u8> {
    use p256::elliptic_curve::sec1::ToSec1Point as _;
    key.to_sec1_point(false).as_bytes().to_vec()
}

fn sec1_uncompressed_p384(key: &p384::PublicKey) -> Vec<u8> {
    use p384::elliptic_curve::sec1::ToSec1Point as _;
    key.to_sec1_point(false).as_bytes().to_vec()
}

/// The public half of a private key given as the DER of a PEM block and
/// its label (`RSA PRIVATE KEY`, `EC PRIVATE KEY` or `PRIVATE KEY`).
pub fn private_key_public_bits(label: &str, der: &[u8]) -> Option<PublicKeyBits> {
    use p256::pkcs8::DecodePrivateKey as _;
    use rsa::pkcs1::DecodeRsaPrivateKey as _;
    // rsa 0.9 is on pkcs8 0.10, p256 and ed25519-dalek on 0.11.
    use rsa::pkcs8::DecodePrivateKey as _;
    use rsa::traits::PublicKeyParts as _;
    let rsa_public = |private: rsa::RsaPrivateKey| {
        let public = private.to_public_key();
        PublicKeyBits::Rsa {
            n: public.n().to_bytes_be(),
            e: public.e().to_bytes_be(),
        }
    };
    match label {
        "RSA PRIVATE KEY" => rsa::RsaPrivateKey::from_pkcs1_der(der).ok().map(rsa_public),
        "EC PRIVATE KEY" => p256::SecretKey::from_sec1_der(der)
            .ok()
            .map(|k| PublicKeyBits::P256(sec1_uncompressed_p256(&k.public_key())))
            .or_else(|| {
                p384::SecretKey::from_sec1_der(der)
                    .ok()
                    .map(|k| PublicKeyBits::P384(sec1_uncompressed_p384(&k.public_key())))
            }),
        "PRIVATE KEY" => rsa::RsaPrivateKey::from_pkcs8_der(der)
            .ok()
            .map(rsa_public)
            .or_else(|| {
                p256::SecretKey::from_pkcs8_der(der)
                    .ok()
                    .map(|k| PublicKeyBits::P256(sec1_uncompressed_p256(&k.public_key())))
            })
            .or_else(|| {
                p384::SecretKey::from_pkcs8_der(der)
                    .ok()
                    .map(|k| PublicKeyBits::P384(sec1_uncompressed_p384(&k.public_key())))
            })
            .or_else(|| {
                ed25519_dalek::SigningKey::from_pkcs8_der(der)
                    .ok()
                    .map(|k| PublicKeyBits::Ed25519(k.verifying_key().as_bytes().to_vec()))
            }),
        _ => None,
    }
}

/// The leaf's key type and size, for summaries and the weak-key check.
pub fn key_type(cert: &X509Certificate<'_>) -> Option<KeyType> {
    match certificate_key(cert)? {
        PublicKeyBits::Rsa { .. } => match cert.public_key().parsed().ok()? {
            PublicKey::RSA(rsa) => Some(KeyType::Rsa(rsa.key_size())),
            _ => None,
        },
        PublicKeyBits::P256(_) => Some(KeyType::P256),
        PublicKeyBits::P384(_) => Some(KeyType::P384),
        PublicKeyBits::Ed25519(_) => Some(KeyType::Ed25519),
    }
}
