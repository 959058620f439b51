//! NAR hashes in every form Nix, Lix and Determinate Nix write them,
//! normalised to 32 raw bytes on input and compared as bytes.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use thiserror::Error;

use crate::nix32;

/// A SHA-256 digest (the only algorithm Nix uses for NAR hashes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Hash(pub [u8; 32]);

/// Why a hash string or object is not a SHA-256 hash.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum HashError {
    /// The algorithm is not SHA-256.
    #[error("unsupported hash algorithm `{0}` (only sha256 is supported)")]
    Algorithm(String),
    /// The text matches none of the SRI, `algo:nix32`, `algo:base16` or `algo:base64` forms.
    #[error("`{0}` is not a sha256 hash in SRI, Nix32, base16 or base64 form")]
    Syntax(String),
    /// A structured hash object lacks a known encoding field.
    #[error("hash object has no `base16`, `nix32`, `base32`, `base64` or `hash` field")]
    Object,
}

impl Sha256Hash {
    /// Nix32 encoding, as printed by `nix-hash --type sha256 --base32`.
    pub fn to_nix32(&self) -> String {
        nix32::encode(&self.0)
    }

    /// Lower-case hexadecimal.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// SRI form, `sha256-<base64>`.
    pub fn to_sri(&self) -> String {
        format!(
            "sha256-{}",
            base64::engine::general_purpose::STANDARD.encode(self.0)
        )
    }

    /// Decodes the digest part alone (Nix32, hex or base64, told apart by length).
    pub fn parse_digest(s: &str, whole: &str) -> Result<Self, HashError> {
        let err = || HashError::Syntax(whole.to_owned());
        if s.len() == 64 {
            let mut out = [0u8; 32];
            hex::decode_to_slice(s, &mut out).map_err(|_| err())?;
            return Ok(Self(out));
        }
        let bytes = match s.len() {
            52 => nix32::decode(s).map_err(|_| err())?,
            44 => base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|_| err())?,
            _ => return Err(err()),
        };
        bytes.try_into().map(Self).map_err(|_| err())
    }

    /// Parses a structured hash object, e.g. `{"algo":"sha256","base16":"…"}`.
    pub fn from_json(value: &serde_json::Value) -> Result<Self, HashError> {
        match value {
            serde_json::Value::String(s) => s.parse(),
            serde_json::Value::Object(map) => {
                if let Some(algo) = map.get("algo").and_then(|a| a.as_str()) {
                    if algo != "sha256" {
                        return Err(HashError::Algorithm(algo.to_owned()));
                    }
                }
                for key in ["base16", "nix32", "base32", "base64", "hash"] {
                    if let Some(s) = map.get(key).and_then(|v| v.as_str()) {
                        if key == "hash" {
                            return s.parse();
                        }
                        return Self::parse_digest(s, s);
                    }
                }
                Err(HashError::Object)
            }
            _ => Err(HashError::Object),
        }
    }
}

impl FromStr for Sha256Hash {
    type Err = HashError;

    /// Accepts `sha256-<base64>` (SRI), `sha256:<nix32|base16|base64>`, and a bare digest.
    fn from_str(s: &str) -> Result<Self, HashError> {
        let s = s.trim();
        if let Some((algo, rest)) = s.split_once([':', '-']) {
            if algo != "sha256" {
                if algo.chars().all(|c| c.is_ascii_alphanumeric())
                    && matches!(algo, "md5" | "sha1" | "sha512" | "blake3")
                {
                    return Err(HashError::Algorithm(algo.to_owned()));
                }
                return Self::parse_digest(s, s);
            }
            let sri = s.as_bytes().get(6) == Some(&b'-');
            if sri {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(rest)
                    .map_err(|_| HashError::Syntax(s.to_owned()))?;
                return bytes
                    .try_into()
                    .map(Self)
                    .map_err(|_| HashError::Syntax(s.to_owned()));
            }
            return Self::parse_digest(rest, s);
        }
        Self::parse_digest(s, s)
    }
}

impl fmt::Display for Sha256Hash {
    /// `sha256:<nix32>`, the form `nix-store -q --hash` prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.to_nix32())
    }
}

impl fmt::Debug for Sha256Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "faff3005b947c9d41204e314ed55ec97654b85ae1b77a58b2f49862798e3500a";

    #[test]
    fn every_form_normalises_to_the_same_bytes() {
        let want = Sha256Hash(hex::decode(HEX).unwrap().try_into().unwrap());
        for form in [
            "sha256-+v8wBblHydQSBOMU7VXsl2VLha4bd6WLL0mGJ5jjUAo=",
            "sha256:02jhwfc2g1j95y5saxqvms2lnrcpxiays5730h9d9ja7p42k1zzs",
            &format!("sha256:{HEX}"),
            "sha256:+v8wBblHydQSBOMU7VXsl2VLha4bd6WLL0mGJ5jjUAo=",
            "02jhwfc2g1j95y5saxqvms2lnrcpxiays5730h9d9ja7p42k1zzs",
        ] {
            assert_eq!(form.parse::<Sha256Hash>().unwrap(), want, "{form}");
        }
        let obj = serde_json::json!({"algo": "sha256", "base16": HEX});
        assert_eq!(Sha256Hash::from_json(&obj).unwrap(), want);
        assert_eq!(
            want.to_sri(),
            "sha256-+v8wBblHydQSBOMU7VXsl2VLha4bd6WLL0mGJ5jjUAo="
        );
        assert_eq!(
            want.to_string(),
            "sha256:02jhwfc2g1j95y5saxqvms2lnrcpxiays5730h9d9ja7p42k1zzs"
        );
    }

    #[test]
    fn rejects_other_algorithms_and_garbage() {
        assert!(matches!(
            "sha1:0000".parse::<Sha256Hash>(),
            Err(HashError::Algorithm(_))
        ));
        assert!("sha256:xyz".parse::<Sha256Hash>().is_err());
        assert!("sha256-AAAA".parse::<Sha256Hash>().is_err());
        assert!(Sha256Hash::from_json(&serde_json::json!(3)).is_err());
    }
}
