//! The `ENC[AES256_GCM,…]` value cipher, exactly as sops' `aes/cipher.go`
//! writes it: AES-256-GCM with a 32-byte nonce (so GCM derives J0 by
//! `GHASHing` the nonce, unlike the common 12-byte variant), the key path as
//! additional data, and the 16-byte tag stored apart from the ciphertext.

use aes_gcm::aead::consts::U32;
use aes_gcm::aead::{Aead, KeyInit, Nonce, Payload};
use aes_gcm::aes::Aes256;
use aes_gcm::AesGcm;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use zeroize::{Zeroize, Zeroizing};

use crate::value::Kind;

/// How every value sops encrypts begins (its AES256-GCM cipher).
pub const ENCRYPTED_PREFIX: &str = "ENC[AES256_GCM,";

/// Whether a scalar is an encrypted value.
pub fn is_encrypted(text: &str) -> bool {
    text.starts_with(ENCRYPTED_PREFIX)
}

type SopsGcm = AesGcm<Aes256, U32>;

const TAG_LEN: usize = 16;
/// Every IV we write is 32 bytes, as sops writes it.
pub const IV_LEN: usize = 32;

/// The per-file AES-256 data key. Zeroized on drop.
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    /// A fresh key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        fill_random(key.as_mut());
        DataKey(key)
    }

    /// A key recovered from a recipient stanza; anything but 32 bytes is refused.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let array: [u8; 32] = bytes.try_into().ok()?;
        Some(DataKey(Zeroizing::new(array)))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// Why an `ENC[…]` value could not be read or opened. No variant carries plaintext.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CipherError {
    /// The text is not of the form `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]`.
    #[error("not a sops value of the form `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]`")]
    Malformed,
    /// One of the base64 fields does not decode.
    #[error("field `{0}` is not valid base64")]
    BadBase64(&'static str),
    /// The IV is empty or the tag is not 16 bytes.
    #[error("field `{0}` has the wrong length")]
    BadLength(&'static str),
    /// The `type:` field names no type sops knows.
    #[error("unknown value type `{0}`")]
    UnknownType(String),
    /// AES-GCM authentication failed: wrong key, moved value, or altered bytes.
    #[error("authentication failed (wrong data key, a value moved to another key, or altered ciphertext)")]
    Authentication,
    /// The plaintext is not UTF-8 text.
    #[error("decrypted value is not UTF-8 text")]
    NotUtf8,
}

/// A parsed `ENC[…]` string.
pub struct EncValue {
    data: Vec<u8>,
    iv: Vec<u8>,
    tag: Vec<u8>,
    pub kind: Kind,
}

impl EncValue {
    /// Parses the sops text form. Mirrors sops' regex
    /// `^ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]`.
    pub fn parse(text: &str) -> Result<Self, CipherError> {
        let body = text
            .strip_prefix("ENC[AES256_GCM,data:")
            .and_then(|rest| rest.strip_suffix(']'))
            .ok_or(CipherError::Malformed)?;
        let (data, rest) = body.split_once(",iv:").ok_or(CipherError::Malformed)?;
        let (iv, rest) = rest.split_once(",tag:").ok_or(CipherError::Malformed)?;
        let (tag, kind) = rest.split_once(",type:").ok_or(CipherError::Malformed)?;
        if data.is_empty() || iv.is_empty() || tag.is_empty() || kind.is_empty() {
            return Err(CipherError::Malformed);
        }
        let decode = |field: &'static str, b64: &str| {
            B64.decode(b64).map_err(|_| CipherError::BadBase64(field))
        };
        let value = EncValue {
            data: decode("data", data)?,
            iv: decode("iv", iv)?,
            tag: decode("tag", tag)?,
            kind: Kind::from_sops_name(kind)
                .ok_or_else(|| CipherError::UnknownType(kind.chars().take(16).collect()))?,
        };
        if value.iv.is_empty() {
            return Err(CipherError::BadLength("iv"));
        }
        if value.tag.len() != TAG_LEN {
            return Err(CipherError::BadLength("tag"));
        }
        Ok(value)
    }

    /// Whether `text` looks like an `ENC[…]` value at all (for selection checks).
    pub fn looks_encrypted(text: &str) -> bool {
        is_encrypted(text)
    }

    /// Decrypts with `aad` (the key path, or `lastmodified` for the MAC).
    pub fn open(&self, key: &DataKey, aad: &str) -> Result<Zeroizing<String>, CipherError> {
        let mut sealed = Vec::with_capacity(self.data.len() + TAG_LEN);
        sealed.extend_from_slice(&self.data);
        sealed.extend_from_slice(&self.tag);
        let plaintext = if let Ok(iv) = Nonce::<SopsGcm>::try_from(self.iv.as_slice()) {
            let cipher = SopsGcm::new(key.as_bytes().into());
            cipher.decrypt(
                &iv,
                Payload {
                    msg: &sealed,
                    aad: aad.as_bytes(),
                },
            )
        } else {
            // sops reads any IV length (it uses len(iv) as the nonce size);
            // writers other than sops have used 12 bytes.
            open_with_short_iv(key, &self.iv, &sealed, aad.as_bytes())?
        }
        .map_err(|_| CipherError::Authentication)?;
        match String::from_utf8(plaintext) {
            Ok(text) => Ok(Zeroizing::new(text)),
            Err(err) => {
                err.into_bytes().zeroize();
                Err(CipherError::NotUtf8)
            }
        }
    }
}

fn open_with_short_iv(
    key: &DataKey,
    iv: &[u8],
    sealed: &[u8],
    aad: &[u8],
) -> Result<Result<Vec<u8>, aes_gcm::Error>, CipherError> {
    let iv = Nonce::<aes_gcm::Aes256Gcm>::try_from(iv).map_err(|_| CipherError::BadLength("iv"))?;
    let cipher = aes_gcm::Aes256Gcm::new(key.as_bytes().into());
    Ok(cipher.decrypt(&iv, Payload { msg: sealed, aad }))
}

/// Encrypts `plaintext` with a fresh random IV and returns the `ENC[…]` text.
pub fn seal(key: &DataKey, plaintext: &[u8], aad: &str, kind: Kind) -> String {
    let mut iv = [0u8; IV_LEN];
    fill_random(&mut iv);
    seal_with_iv(key, &iv, plaintext, aad, kind)
}

/// Encrypts with a given IV. Only tests and [`seal`] call this: reusing an IV
/// for a different plaintext under the same key would break GCM.
pub(crate) fn seal_with_iv(
    key: &DataKey,
    iv: &[u8; IV_LEN],
    plaintext: &[u8],
    aad: &str,
    kind: Kind,
) -> String {
    let cipher = SopsGcm::new(key.as_bytes().into());
    let sealed = cipher
        .encrypt(
            iv.into(),
            Payload {
                msg: plaintext,
                aad: aad.as_bytes(),
            },
        )
        .unwrap_or_else(|_| unreachable_gcm_limit());
    let (data, tag) = sealed.split_at(sealed.len() - TAG_LEN);
    format!(
        "ENC[AES256_GCM,data:{},iv:{},tag:{},type:{}]",
        B64.encode(data),
        B64.encode(iv),
        B64.encode(tag),
        kind.sops_name()
    )
}

/// AES-GCM refuses only messages over 64 GiB, far beyond any file we read.
#[allow(clippy::panic)]
fn unreachable_gcm_limit() -> Vec<u8> {
    panic!("AES-GCM message length limit exceeded")
}

/// The operating system's CSPRNG. Like the `OsRng` it replaces, a failure of
/// the OS generator is fatal: a key or IV must never be made from anything else.
#[allow(clippy::panic)]
fn fill_random(buf: &mut [u8]) {
    if let Err(err) = getrandom::fill(buf) {
        panic!("the operating system's random number generator failed: {err}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> DataKey {
        DataKey::from_slice(&[7u8; 32]).expect("32 bytes")
    }

    #[test]
    fn seal_then_open_round_trips_with_aad() {
        let enc = seal(&key(), b"hunter2", "db:password:", Kind::Str);
        assert!(enc.starts_with("ENC[AES256_GCM,data:"));
        assert!(enc.ends_with(",type:str]"));
        let parsed = EncValue::parse(&enc).expect("parses");
        assert_eq!(parsed.iv.len(), IV_LEN);
        assert_eq!(
            parsed.open(&key(), "db:password:").expect("opens").as_str(),
            "hunter2"
        );
        assert_eq!(
            parsed.open(&key(), "db:other:").err(),
            Some(CipherError::Authentication)
        );
    }

    #[test]
    fn pinned_iv_gives_identical_text() {
        let iv = [9u8; IV_LEN];
        let a = seal_with_iv(&key(), &iv, b"x", "k:", Kind::Str);
        let b = seal_with_iv(&key(), &iv, b"x", "k:", Kind::Str);
        assert_eq!(a, b);
    }

    #[test]
    fn malformed_values_are_refused_with_their_reason() {
        let good = seal(&key(), b"v", "k:", Kind::Str);
        let truncated = &good[..good.len() - 10];
        assert_eq!(
            EncValue::parse(truncated).err(),
            Some(CipherError::Malformed)
        );
        let bad_b64 = good.replacen("data:", "data:!!", 1);
        assert_eq!(
            EncValue::parse(&bad_b64).err(),
            Some(CipherError::BadBase64("data"))
        );
        let bad_type = good.replace("type:str", "type:blob");
        assert!(matches!(
            EncValue::parse(&bad_type),
            Err(CipherError::UnknownType(t)) if t == "blob"
        ));
        let (head, _) = good.split_once(",tag:").expect("has tag");
        let short_tag = format!("{head},tag:AAAA,type:str]");
        assert_eq!(
            EncValue::parse(&short_tag).err(),
            Some(CipherError::BadLength("tag"))
        );
    }

    #[test]
    fn wrong_tag_fails_authentication() {
        let good = seal(&key(), b"value", "k:", Kind::Str);
        let (head, rest) = good.split_once(",tag:").expect("has tag");
        let (_, kind) = rest.split_once(",type:").expect("has type");
        let forged = format!("{head},tag:{},type:{kind}", B64.encode([0u8; 16]));
        let parsed = EncValue::parse(&forged).expect("well-formed");
        assert_eq!(
            parsed.open(&key(), "k:").err(),
            Some(CipherError::Authentication)
        );
    }
}
