//! age recipients and identities, and the conversion of OpenSSH ed25519 host
//! keys into them.
//!
//! sops wraps the data key once per recipient, each as its own armored age
//! file. sops-nix decrypts on the host with an identity derived from the
//! host's `ssh_host_ed25519_key` (ssh-to-age), so the file must list the
//! X25519 recipient derived from the host's public key. Both conversions here
//! are byte-compatible with ssh-to-age: the public key goes through the
//! Edwards-to-Montgomery map, the private key is the first half of
//! SHA-512(seed), bech32-encoded without clamping.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use bech32::{Bech32, Hrp};
use curve25519_dalek::edwards::CompressedEdwardsY;
use sha2::{Digest, Sha512};
use zeroize::{Zeroize, Zeroizing};

use crate::cipher::DataKey;

/// Why a key could not be parsed, converted or used. Never carries key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Not an `age1…` X25519 recipient.
    #[error("`{0}` is not an age X25519 recipient (`age1…`)")]
    BadRecipient(String),
    /// An `ssh-ed25519` key given where an age recipient is needed.
    #[error("`{0}…` is an ssh key; sops-nix needs the age recipient derived from it")]
    SshRecipient(String),
    /// A recipient type fromgit does not write.
    #[error("recipient `{0}…` is a plugin or post-quantum recipient; fromgit writes X25519 recipients only")]
    UnsupportedRecipient(String),
    /// The OpenSSH public key does not parse or is not ed25519.
    #[error("not an `ssh-ed25519` public key: {0}")]
    BadSshPublicKey(String),
    /// The OpenSSH private key does not parse, is encrypted or is not ed25519.
    #[error("not a usable OpenSSH ed25519 private key: {0}")]
    BadSshPrivateKey(&'static str),
    /// A line of an identity file is not an age secret key.
    #[error("`{path}` line {line}: not an age secret key (`AGE-SECRET-KEY-1…`)")]
    BadIdentityLine { path: PathBuf, line: usize },
    /// An identity file holds no key at all.
    #[error("`{0}` holds no age secret key")]
    EmptyIdentityFile(PathBuf),
    /// No identity was given and sops' environment names none.
    #[error("no identity to decrypt with; pass `--identity FILE` or set `SOPS_AGE_KEY_FILE`")]
    NoIdentity,
    /// Reading a key file failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Writing a new key file failed, or the file exists.
    #[error(transparent)]
    Write(#[from] fromgit_fs::WriteError),
    /// age refused to wrap the data key.
    #[error("age could not wrap the data key: {0}")]
    Wrap(String),
    /// An `enc` block is not an armored age file.
    #[error("the wrapped data key is not an armored age file: {0}")]
    BadStanza(String),
    /// The unwrapped data key is not 32 bytes.
    #[error("the wrapped data key is {0} bytes, not 32")]
    BadDataKeyLength(usize),
}

/// A validated `age1…` X25519 recipient.
#[derive(Clone)]
pub struct Recipient {
    text: String,
    key: age::x25519::Recipient,
}

impl Recipient {
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        if text.starts_with("ssh-") {
            return Err(KeyError::SshRecipient(text.chars().take(20).collect()));
        }
        // Plugin (`age1<name>1…`) and post-quantum (`age1pq1…`) recipients
        // carry a second separator; X25519 ones are exactly 62 characters.
        if text.len() != 62
            && text
                .strip_prefix("age1")
                .is_some_and(|rest| rest.contains('1'))
        {
            return Err(KeyError::UnsupportedRecipient(
                text.chars().take(16).collect(),
            ));
        }
        let key = text
            .parse::<age::x25519::Recipient>()
            .map_err(|_| KeyError::BadRecipient(text.to_owned()))?;
        Ok(Recipient {
            text: text.to_owned(),
            key,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Wraps the data key for this recipient as an armored age file, the
    /// form sops stores in `enc`.
    pub fn wrap(&self, data_key: &DataKey) -> Result<String, KeyError> {
        let encryptor =
            age::Encryptor::with_recipients(std::iter::once(&self.key as &dyn age::Recipient))
                .map_err(|err| KeyError::Wrap(err.to_string()))?;
        let mut armored = Vec::new();
        let armor =
            age::armor::ArmoredWriter::wrap_output(&mut armored, age::armor::Format::AsciiArmor)?;
        let mut writer = encryptor.wrap_output(armor)?;
        writer.write_all(data_key.as_bytes())?;
        writer.finish()?.finish()?;
        String::from_utf8(armored).map_err(|err| KeyError::Wrap(err.to_string()))
    }
}

impl std::fmt::Display for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::fmt::Debug for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Recipient({})", self.text)
    }
}

/// The age identities a decryption may use, with where each came from.
#[derive(Default)]
pub struct Identities {
    keys: Vec<age::x25519::Identity>,
    sources: Vec<String>,
}

impl Identities {
    /// Where the identities came from, for messages.
    pub fn sources(&self) -> &[String] {
        &self.sources
    }

    /// The recipients these identities decrypt for.
    pub fn recipients(&self) -> Vec<String> {
        self.keys
            .iter()
            .map(|k| k.to_public().to_string())
            .collect()
    }

    /// Loads an age key file (`AGE-SECRET-KEY-1…` lines, `#` comments) or an
    /// unencrypted OpenSSH ed25519 private key, converted as sops-nix does.
    pub fn add_file(&mut self, path: &Path) -> Result<(), KeyError> {
        let text = Zeroizing::new(fs_err::read_to_string(path)?);
        if text
            .trim_start()
            .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----")
        {
            self.keys.push(ssh_private_key_to_identity(&text)?);
            self.sources.push(path.display().to_string());
            Ok(())
        } else {
            self.add_age_keys(&text, path)
        }
    }

    /// The identities a command was given: each of `files`, or else sops'
    /// environment (`SOPS_AGE_KEY_FILE`, then `SOPS_AGE_KEY`).
    pub fn from_files_or_env(files: &[PathBuf]) -> Result<Self, KeyError> {
        let mut identities = Identities::default();
        if !files.is_empty() {
            for path in files {
                identities.add_file(path)?;
            }
        } else if let Some(path) = std::env::var_os("SOPS_AGE_KEY_FILE").filter(|v| !v.is_empty()) {
            identities.add_file(Path::new(&path))?;
        } else if let Some(keys) = std::env::var("SOPS_AGE_KEY").ok().filter(|v| !v.is_empty()) {
            let keys = Zeroizing::new(keys);
            identities.add_age_keys(&keys, Path::new("$SOPS_AGE_KEY"))?;
        } else {
            return Err(KeyError::NoIdentity);
        }
        Ok(identities)
    }

    /// Loads age secret keys from text (the `SOPS_AGE_KEY` form), naming
    /// `origin` in errors.
    pub fn add_age_keys(&mut self, text: &str, origin: &Path) -> Result<(), KeyError> {
        let before = self.keys.len();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let key =
                line.parse::<age::x25519::Identity>()
                    .map_err(|_| KeyError::BadIdentityLine {
                        path: origin.to_owned(),
                        line: index + 1,
                    })?;
            self.keys.push(key);
        }
        if self.keys.len() == before {
            return Err(KeyError::EmptyIdentityFile(origin.to_owned()));
        }
        self.sources.push(origin.display().to_string());
        Ok(())
    }

    /// Tries to unwrap the data key from one `enc` block. `Ok(None)` means
    /// none of our identities is a recipient of this block.
    pub fn unwrap(&self, enc: &str) -> Result<Option<DataKey>, KeyError> {
        let armored = age::armor::ArmoredReader::new(enc.as_bytes());
        let decryptor =
            age::Decryptor::new(armored).map_err(|err| KeyError::BadStanza(err.to_string()))?;
        let mut reader = match decryptor.decrypt(self.keys.iter().map(|k| k as &dyn age::Identity))
        {
            Ok(reader) => reader,
            Err(age::DecryptError::NoMatchingKeys) => return Ok(None),
            Err(err) => return Err(KeyError::BadStanza(err.to_string())),
        };
        let mut plaintext = Zeroizing::new(Vec::with_capacity(32));
        reader.read_to_end(&mut plaintext)?;
        DataKey::from_slice(&plaintext)
            .map(Some)
            .ok_or(KeyError::BadDataKeyLength(plaintext.len()))
    }
}

/// Creates a new age identity in a new file (mode 0600, never overwriting),
/// in the `age-keygen` layout, and returns its recipient.
pub fn generate_identity_file(path: &Path) -> Result<String, KeyError> {
    use age::secrecy::ExposeSecret as _;
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let created = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc())
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let secret = identity.to_string();
    let text = Zeroizing::new(format!(
        "# created: {created}\n# public key: {recipient}\n{}\n",
        secret.expose_secret()
    ));
    fromgit_fs::create_new(path, text.as_bytes(), fromgit_fs::Mode::Private)?;
    Ok(recipient)
}

/// ssh-to-age for a public key: `ssh-ed25519 AAAA… comment` to `age1…`.
pub fn ssh_public_key_to_recipient(line: &str) -> Result<Recipient, KeyError> {
    let keys = line
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count();
    if keys > 1 {
        // Taking the first of several would silently pick a host.
        return Err(KeyError::BadSshPublicKey(format!(
            "it holds {keys} public keys; give exactly one"
        )));
    }
    let key = ssh_key::PublicKey::from_openssh(line.trim())
        .map_err(|err| KeyError::BadSshPublicKey(err.to_string()))?;
    let ed25519 = key
        .key_data()
        .ed25519()
        .ok_or_else(|| KeyError::BadSshPublicKey(format!("the key is `{}`", key.algorithm())))?;
    let montgomery = CompressedEdwardsY(ed25519.0)
        .decompress()
        .ok_or_else(|| KeyError::BadSshPublicKey("not a point on the curve".into()))?
        .to_montgomery();
    let text = bech32::encode::<Bech32>(Hrp::parse_unchecked("age"), montgomery.as_bytes())
        .map_err(|err| KeyError::BadSshPublicKey(err.to_string()))?;
    Recipient::parse(&text)
}

/// ssh-to-age for a private key: the identity sops-nix derives from a host key.
pub fn ssh_private_key_to_identity(text: &str) -> Result<age::x25519::Identity, KeyError> {
    let key = ssh_key::PrivateKey::from_openssh(text)
        .map_err(|_| KeyError::BadSshPrivateKey("the OpenSSH private key does not parse"))?;
    if key.is_encrypted() {
        return Err(KeyError::BadSshPrivateKey(
            "the key is protected by a passphrase",
        ));
    }
    let keypair = key
        .key_data()
        .ed25519()
        .ok_or(KeyError::BadSshPrivateKey("the key is not ed25519"))?;
    let mut seed = keypair.private.to_bytes();
    let mut digest = Sha512::digest(seed);
    seed.zeroize();
    let encoded = bech32::encode::<Bech32>(Hrp::parse_unchecked("age-secret-key-"), &digest[..32]);
    digest.as_mut_slice().zeroize();
    let mut encoded =
        Zeroizing::new(encoded.map_err(|_| KeyError::BadSshPrivateKey("bech32 encoding failed"))?);
    encoded.make_ascii_uppercase();
    encoded
        .parse::<age::x25519::Identity>()
        .map_err(|_| KeyError::BadSshPrivateKey("the derived age identity does not parse"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_then_unwrap_recovers_the_data_key() {
        let identity = age::x25519::Identity::generate();
        let recipient = Recipient::parse(&identity.to_public().to_string()).expect("valid");
        let key = DataKey::generate();
        let enc = recipient.wrap(&key).expect("wraps");
        assert!(enc.starts_with("-----BEGIN AGE ENCRYPTED FILE-----\n"));
        assert!(enc.ends_with("-----END AGE ENCRYPTED FILE-----\n"));
        let mut ids = Identities::default();
        ids.add_age_keys(
            identity.to_string().expose_secret_for_test(),
            Path::new("test"),
        )
        .expect("loads");
        let unwrapped = ids.unwrap(&enc).expect("reads").expect("matches");
        assert_eq!(unwrapped.as_bytes(), key.as_bytes());

        let mut other = Identities::default();
        other
            .add_age_keys(
                age::x25519::Identity::generate()
                    .to_string()
                    .expose_secret_for_test(),
                Path::new("other"),
            )
            .expect("loads");
        assert!(other.unwrap(&enc).expect("reads").is_none());
    }

    #[test]
    fn recipients_of_other_kinds_are_refused_by_name() {
        assert!(matches!(
            Recipient::parse("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG"),
            Err(KeyError::SshRecipient(_))
        ));
        assert!(matches!(
            Recipient::parse("age1yubikey1qwerty"),
            Err(KeyError::UnsupportedRecipient(_))
        ));
        assert!(matches!(
            Recipient::parse("age1yt3tfqlfrwdwx0z0ynwplcr6qxcxfaqycuprpmy89nr83ltx74tqdpszlx"),
            Err(KeyError::BadRecipient(_))
        ));
    }

    #[test]
    fn identity_file_errors_name_the_line_not_the_key() {
        let err = Identities::default()
            .add_age_keys(
                "# comment\nAGE-SECRET-KEY-1NOTAKEY\n",
                Path::new("keys.txt"),
            )
            .expect_err("refused");
        let message = err.to_string();
        assert!(message.contains("`keys.txt` line 2"), "{message}");
        assert!(!message.contains("NOTAKEY"));
    }

    trait ExposeForTest {
        fn expose_secret_for_test(&self) -> &str;
    }
    impl ExposeForTest for age::secrecy::SecretString {
        fn expose_secret_for_test(&self) -> &str {
            use age::secrecy::ExposeSecret;
            self.expose_secret()
        }
    }
}
