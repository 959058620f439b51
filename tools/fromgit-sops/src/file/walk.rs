//! The walks over a sops tree: decrypting (checking the MAC and keeping
//! each value's ciphertext for a rewrite) and encrypting (reusing a kept
//! ciphertext for an unchanged value), and sops' MAC over the leaves.

use std::collections::HashMap;

use sha2::{Digest, Sha256, Sha512};
use zeroize::Zeroizing;

use super::{cipher, DataKey, EncValue, SelectionMatcher, SopsError};
use crate::value::{KeyPath, Kind, Map, PathStep, Scalar, Value};

/// sops' MAC: SHA-512 over the canonical bytes of every non-null,
/// non-comment leaf in document order, as upper-case hex.
pub(super) struct MacHasher(Sha512);

impl MacHasher {
    pub(super) fn new(mac_only_encrypted: bool) -> Self {
        let mut hasher = Sha512::new();
        if mac_only_encrypted {
            // sops' MACOnlyEncryptedInitialization: sha256("sops").
            hasher.update(Sha256::digest(b"sops"));
        }
        MacHasher(hasher)
    }

    pub(super) fn add(&mut self, scalar: &Scalar) {
        if scalar.kind != Kind::Comment {
            self.0.update(scalar.text.as_bytes());
        }
    }

    pub(super) fn finish(self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode_upper(self.0.finalize()))
    }
}

/// Original ciphertexts by (AAD, type, plaintext) digest, each usable once,
/// so that rewriting an unchanged value reproduces its exact bytes.
#[derive(Clone, Default)]
pub(super) struct Stash(HashMap<[u8; 32], Vec<String>>);

impl Stash {
    pub(super) fn digest(aad: &str, scalar: &Scalar) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(aad.as_bytes());
        hasher.update([0]);
        hasher.update(scalar.kind.sops_name().as_bytes());
        hasher.update([0]);
        hasher.update(scalar.text.as_bytes());
        hasher.finalize().into()
    }

    pub(super) fn put(&mut self, aad: &str, scalar: &Scalar, enc: &str) {
        self.0
            .entry(Self::digest(aad, scalar))
            .or_default()
            .push(enc.to_owned());
    }

    pub(super) fn take(&mut self, aad: &str, scalar: &Scalar) -> Option<String> {
        let entries = self.0.get_mut(&Self::digest(aad, scalar))?;
        if entries.is_empty() {
            None
        } else {
            Some(entries.remove(0))
        }
    }
}

pub(super) struct DecryptWalk<'a> {
    pub(super) key: &'a DataKey,
    pub(super) matcher: &'a SelectionMatcher,
    pub(super) mac: MacHasher,
    pub(super) mac_only_encrypted: bool,
    pub(super) stash: Stash,
    pub(super) keep_stash: bool,
    pub(super) path: KeyPath,
}

impl DecryptWalk<'_> {
    pub(super) fn map(&mut self, map: &Map) -> Result<Map, SopsError> {
        let mut out = Vec::with_capacity(map.len());
        for (key, value) in map {
            self.path.push(PathStep::Key(key.clone()));
            let decrypted = self.value(value)?;
            self.path.pop();
            out.push((key.clone(), decrypted));
        }
        Ok(out)
    }

    pub(super) fn value(&mut self, value: &Value) -> Result<Value, SopsError> {
        Ok(match value {
            Value::Null => Value::Null,
            Value::Map(map) => Value::Map(self.map(map)?),
            Value::List(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (index, item) in items.iter().enumerate() {
                    self.path.push(PathStep::Index(index));
                    out.push(self.value(item)?);
                    self.path.pop();
                }
                Value::List(out)
            }
            Value::Scalar(scalar) => Value::Scalar(self.scalar(scalar)?),
        })
    }

    pub(super) fn scalar(&mut self, scalar: &Scalar) -> Result<Scalar, SopsError> {
        let encrypted = self.matcher.encrypts(self.path.keys());
        let plain = if !encrypted || (scalar.kind == Kind::Str && scalar.text.is_empty()) {
            scalar.clone()
        } else if scalar.kind == Kind::Str && EncValue::looks_encrypted(&scalar.text) {
            let path = || self.path.clone();
            let enc = EncValue::parse(&scalar.text).map_err(|source| SopsError::Value {
                path: path(),
                source,
            })?;
            let aad = self.path.aad();
            let text = enc
                .open(self.key, &aad)
                .map_err(|source| SopsError::Value {
                    path: path(),
                    source,
                })?;
            let plain =
                Scalar::canonical(enc.kind, text).map_err(|source| SopsError::ValueType {
                    path: path(),
                    source,
                })?;
            if self.keep_stash {
                self.stash.put(&aad, &plain, &scalar.text);
            }
            plain
        } else {
            return Err(SopsError::NotEncrypted {
                path: self.path.clone(),
            });
        };
        if encrypted || !self.mac_only_encrypted {
            self.mac.add(&plain);
        }
        Ok(plain)
    }
}

pub(super) struct EncryptWalk<'a, 's> {
    pub(super) key: &'a DataKey,
    pub(super) matcher: &'a SelectionMatcher,
    pub(super) mac: MacHasher,
    pub(super) stash: Option<&'s mut Stash>,
    pub(super) path: KeyPath,
}

impl EncryptWalk<'_, '_> {
    pub(super) fn map(&mut self, map: &Map) -> Map {
        map.iter()
            .map(|(key, value)| {
                self.path.push(PathStep::Key(key.clone()));
                let encrypted = self.value(value);
                self.path.pop();
                (key.clone(), encrypted)
            })
            .collect()
    }

    pub(super) fn value(&mut self, value: &Value) -> Value {
        match value {
            Value::Null => Value::Null,
            Value::Map(map) => Value::Map(self.map(map)),
            Value::List(items) => Value::List(
                items
                    .iter()
                    .enumerate()
                    .map(|(index, item)| {
                        self.path.push(PathStep::Index(index));
                        let encrypted = self.value(item);
                        self.path.pop();
                        encrypted
                    })
                    .collect(),
            ),
            Value::Scalar(scalar) => Value::Scalar(self.scalar(scalar)),
        }
    }

    pub(super) fn scalar(&mut self, scalar: &Scalar) -> Scalar {
        self.mac.add(scalar);
        // sops never encrypts the empty string: `data:` cannot be empty.
        if !self.matcher.encrypts(self.path.keys()) || scalar.text.is_empty() {
            return scalar.clone();
        }
        let aad = self.path.aad();
        let reused = self
            .stash
            .as_mut()
            .and_then(|stash| stash.take(&aad, scalar));
        let enc = reused
            .unwrap_or_else(|| cipher::seal(self.key, scalar.text.as_bytes(), &aad, scalar.kind));
        Scalar::string(enc)
    }
}
