//! Encrypted files: reading, decrypting with MAC verification, and the three
//! ways of writing them (a new file, a re-encryption after an edit that
//! keeps the ciphertext of unchanged values, and a key change).
//!
//! `updatekeys` and `rotate` are deliberately distinct, as in sops:
//! `updatekeys` re-wraps the same data key for a new recipient set and
//! leaves every value, the MAC and `lastmodified` byte-identical (a removed
//! recipient that kept the old data key can still read the file);
//! `rotate` draws a new data key and re-encrypts every value.

use zeroize::Zeroizing;

use crate::cipher::{self, CipherError, DataKey, EncValue};
use crate::json::{self, JsonError};
use crate::keys::{Identities, KeyError, Recipient};
use crate::metadata::{self, AgeStanza, Metadata, MetadataError, Selection, SelectionMatcher};
use crate::value::{self, KeyPath, Kind, Map, Value, ValueError, MAX_DEPTH};
use crate::yaml::{self, YamlError};

mod walk;
use walk::{DecryptWalk, EncryptWalk, MacHasher, Stash};

/// The stores fromgit reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

impl Format {
    /// The format sops infers from a file name.
    pub fn from_path(path: &std::path::Path) -> Option<Format> {
        match path.extension()?.to_str()? {
            "yaml" | "yml" => Some(Format::Yaml),
            "json" => Some(Format::Json),
            _ => None,
        }
    }

    /// The format of a text whose name says none: JSON when it opens with
    /// `{`, YAML otherwise.
    pub fn sniff(data: &[u8]) -> Format {
        match data.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => Format::Json,
            _ => Format::Yaml,
        }
    }

    /// The format the name says, else the one the content says.
    pub fn of(path: &std::path::Path, data: &[u8]) -> Format {
        Format::from_path(path).unwrap_or_else(|| Format::sniff(data))
    }

    pub fn parse(self, text: &str) -> Result<Map, SopsError> {
        match self {
            Format::Yaml => yaml::parse(text).map_err(SopsError::Yaml),
            Format::Json => json::parse(text).map_err(SopsError::Json),
        }
    }

    pub fn emit(self, map: &Map) -> Zeroizing<String> {
        match self {
            Format::Yaml => yaml::emit(map),
            Format::Json => json::emit(map),
        }
    }

    /// Emits a list as a whole document.
    pub fn emit_list(self, items: &[Value]) -> Zeroizing<String> {
        match self {
            Format::Yaml => yaml::emit_list_document(items),
            Format::Json => json::emit_value_document(&Value::List(items.to_vec())),
        }
    }
}

/// Everything that can go wrong reading, decrypting or writing a sops file.
/// No variant carries a secret value; paths are key paths, not values.
#[derive(Debug, thiserror::Error)]
pub enum SopsError {
    #[error(transparent)]
    Yaml(YamlError),
    #[error(transparent)]
    Json(JsonError),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A plaintext document uses the key sops reserves for its metadata.
    #[error("the document has a top-level `sops` key, which sops reserves for its metadata (is the file already encrypted?)")]
    ReservedKey,
    /// An `ENC[…]` value is malformed or fails to decrypt.
    #[error("value at `{path}` could not be decrypted: {source}")]
    Value { path: KeyPath, source: CipherError },
    /// A decrypted value does not parse as its declared type.
    #[error("value at `{path}`: {source}")]
    ValueType { path: KeyPath, source: ValueError },
    /// A value that the selection rule says is encrypted is in plaintext.
    #[error("value at `{path}` should be encrypted under the file's selection rule but is not an `ENC[…]` value")]
    NotEncrypted { path: KeyPath },
    /// The MAC cannot be decrypted with the data key.
    #[error("the MAC could not be decrypted: {0}")]
    MacUnreadable(CipherError),
    /// The MAC does not match the values.
    #[error("MAC mismatch: the values do not match the file's MAC (was it edited outside sops or fromgit?)")]
    MacMismatch,
    /// None of the identities is a recipient of the file.
    #[error("no identity decrypts the data key; the file is encrypted for: {}; the identities given are for: {}", list(.file_recipients), list(.identity_recipients))]
    NoMatchingIdentity {
        file_recipients: Vec<String>,
        identity_recipients: Vec<String>,
    },
    /// The file has no age recipient at all.
    #[error("the file has no age recipient (key sources: {})", list(.0))]
    NoAgeRecipient(Vec<String>),
    /// A rewrite would lose something fromgit cannot reproduce.
    #[error("fromgit cannot rewrite this file without losing data: {0}")]
    NotRewritable(String),
    /// A rewrite was asked for with no recipient.
    #[error("at least one age recipient is required")]
    NoRecipients,
    /// The document nests deeper than any reader of fromgit's accepts.
    #[error("the document nests {0} levels deep; fromgit writes at most {MAX_DEPTH}, the most it reads back")]
    TooDeep(usize),
    /// The text we were about to write did not decrypt back to the intended values.
    #[error("self-check failed: the file written would not decrypt to the intended values ({0})")]
    SelfCheck(String),
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".to_owned()
    } else {
        items.join(", ")
    }
}

/// A parsed, still-encrypted sops file.
#[derive(Debug, Clone)]
pub struct EncryptedFile {
    pub format: Format,
    /// The document without its `sops` entry; encrypted leaves are `ENC[…]` strings.
    pub tree: Map,
    pub metadata: Metadata,
    /// `#ENC[…]` comment lines, which the YAML reader does not keep.
    encrypted_comments: usize,
}

impl EncryptedFile {
    pub fn parse(text: &str, format: Format) -> Result<Self, SopsError> {
        let mut tree = format.parse(text)?;
        let position = tree
            .iter()
            .position(|(k, _)| k == "sops")
            .ok_or(MetadataError::Missing)?;
        let (_, meta_value) = tree.remove(position);
        let metadata = Metadata::from_value(&meta_value)?;
        let encrypted_comments = match format {
            Format::Yaml => text
                .lines()
                .filter(|line| line.contains("#ENC[AES256_GCM,"))
                .count(),
            Format::Json => 0,
        };
        Ok(EncryptedFile {
            format,
            tree,
            metadata,
            encrypted_comments,
        })
    }

    /// The file as text, the `sops` block last.
    pub fn to_text(&self) -> Zeroizing<String> {
        let mut map = self.tree.clone();
        map.push(("sops".to_owned(), self.metadata.to_value()));
        self.format.emit(&map)
    }

    pub fn recipients(&self) -> Vec<String> {
        self.metadata
            .age
            .iter()
            .map(|stanza| stanza.recipient.clone())
            .collect()
    }

    /// Recovers the data key with any of `identities`, then decrypts.
    pub fn decrypt(&self, identities: &Identities) -> Result<DecryptedFile, SopsError> {
        if self.metadata.age.is_empty() {
            return Err(SopsError::NoAgeRecipient(
                self.metadata.foreign_key_sources.clone(),
            ));
        }
        let mut first_error = None;
        for stanza in &self.metadata.age {
            match identities.unwrap(&stanza.enc) {
                Ok(Some(key)) => return self.decrypt_with_key(key),
                Ok(None) => {}
                Err(err) => {
                    tracing::debug!(recipient = %stanza.recipient, "unreadable age stanza: {err}");
                    first_error.get_or_insert(err);
                }
            }
        }
        if let Some(err) = first_error {
            return Err(err.into());
        }
        let mut file_recipients = self.recipients();
        file_recipients.extend(self.metadata.foreign_key_sources.iter().cloned());
        Err(SopsError::NoMatchingIdentity {
            file_recipients,
            identity_recipients: identities.recipients(),
        })
    }

    /// Decrypts every value with a known data key and verifies the MAC.
    pub fn decrypt_with_key(&self, data_key: DataKey) -> Result<DecryptedFile, SopsError> {
        let (tree, stash) = self.open(&data_key, true)?;
        Ok(DecryptedFile {
            tree,
            data_key,
            stash,
            encrypted: self.clone(),
        })
    }

    /// Decrypts every value and checks the MAC. The stash of original
    /// ciphertexts, which only a rewrite needs, is kept when `keep_stash`.
    fn open(&self, data_key: &DataKey, keep_stash: bool) -> Result<(Map, Stash), SopsError> {
        let matcher = self.metadata.selection.matcher()?;
        let mac_aad = self.metadata.mac_aad()?;
        let mut walk = DecryptWalk {
            key: data_key,
            matcher: &matcher,
            mac: MacHasher::new(self.metadata.mac_only_encrypted),
            mac_only_encrypted: self.metadata.mac_only_encrypted,
            stash: Stash::default(),
            keep_stash,
            path: KeyPath::default(),
        };
        let tree = walk.map(&self.tree)?;
        let computed = walk.mac.finish();
        let stored = EncValue::parse(&self.metadata.mac)
            .and_then(|enc| enc.open(data_key, &mac_aad))
            .map_err(SopsError::MacUnreadable)?;
        if stored.as_str() != computed.as_str() {
            return Err(SopsError::MacMismatch);
        }
        Ok((tree, walk.stash))
    }

    /// Refuses when a rewrite would drop what fromgit does not model.
    fn ensure_rewritable(&self) -> Result<(), SopsError> {
        if self.encrypted_comments > 0 {
            return Err(SopsError::NotRewritable(format!(
                "{} encrypted comment line(s) (`#ENC[…]`) would be dropped; remove the comments with sops first",
                self.encrypted_comments
            )));
        }
        if !self.metadata.foreign_key_sources.is_empty() {
            return Err(SopsError::NotRewritable(format!(
                "it has non-age keys ({}) that fromgit would drop",
                self.metadata.foreign_key_sources.join(", ")
            )));
        }
        if self.metadata.comment_selection.is_some() {
            return Err(SopsError::NotRewritable(
                "it uses a comment selection regex".to_owned(),
            ));
        }
        Ok(())
    }
}

/// A decrypted file, still holding what is needed to write it back: the data
/// key, the original ciphertexts of unchanged values, the original metadata.
pub struct DecryptedFile {
    /// The plaintext document.
    pub tree: Map,
    data_key: DataKey,
    stash: Stash,
    encrypted: EncryptedFile,
}

/// What an `updatekeys` or `rotate` did to the recipient set.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecipientChanges {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub kept: Vec<String>,
}

impl RecipientChanges {
    fn between(old: &[String], new: &[Recipient]) -> Self {
        let new: Vec<String> = new.iter().map(|r| r.as_str().to_owned()).collect();
        RecipientChanges {
            added: new.iter().filter(|r| !old.contains(r)).cloned().collect(),
            removed: old.iter().filter(|r| !new.contains(r)).cloned().collect(),
            kept: new.iter().filter(|r| old.contains(r)).cloned().collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

impl DecryptedFile {
    pub fn format(&self) -> Format {
        self.encrypted.format
    }

    /// Encrypts `tree` as the new content of this file: same data key and
    /// recipients, the original ciphertext for every unchanged value, fresh
    /// IVs for new or changed ones, a new MAC and `lastmodified`.
    pub fn reencrypt(&self, tree: &Map) -> Result<Written, SopsError> {
        self.encrypted.ensure_rewritable()?;
        let metadata = Metadata {
            mac_only_encrypted: false,
            ..self.encrypted.metadata.clone()
        };
        let mut stash = self.stash.clone();
        seal(
            self.format(),
            tree,
            self.data_key.clone(),
            metadata,
            Some(&mut stash),
        )
    }

    /// Re-wraps the same data key for `recipients`. Values, MAC and
    /// `lastmodified` stay byte-identical; kept recipients keep their stanza.
    pub fn updatekeys(
        &self,
        recipients: &[Recipient],
    ) -> Result<(Written, RecipientChanges), SopsError> {
        self.encrypted.ensure_rewritable()?;
        if recipients.is_empty() {
            return Err(SopsError::NoRecipients);
        }
        let old = &self.encrypted.metadata.age;
        let mut age = Vec::with_capacity(recipients.len());
        for recipient in recipients {
            let stanza = match old.iter().find(|s| s.recipient == recipient.as_str()) {
                Some(existing) => existing.clone(),
                None => AgeStanza {
                    recipient: recipient.as_str().to_owned(),
                    enc: recipient.wrap(&self.data_key)?,
                },
            };
            age.push(stanza);
        }
        let changes = RecipientChanges::between(&self.encrypted.recipients(), recipients);
        let file = EncryptedFile {
            metadata: Metadata {
                age,
                ..self.encrypted.metadata.clone()
            },
            ..self.encrypted.clone()
        };
        let written = Written {
            text: file.to_text(),
            data_key: self.data_key.clone(),
            expected: self.tree.clone(),
            recipients: recipients.iter().map(|r| r.as_str().to_owned()).collect(),
            format: file.format,
        };
        Ok((written, changes))
    }

    /// A new data key, every value re-encrypted, wrapped for `recipients`.
    pub fn rotate(
        &self,
        recipients: &[Recipient],
    ) -> Result<(Written, RecipientChanges), SopsError> {
        self.encrypted.ensure_rewritable()?;
        let changes = RecipientChanges::between(&self.encrypted.recipients(), recipients);
        let written = encrypt_new(
            self.format(),
            &self.tree,
            recipients,
            self.encrypted.metadata.selection.clone(),
        )?;
        Ok((written, changes))
    }
}

/// Encrypts a plaintext document for `recipients` with a fresh data key.
pub fn encrypt_new(
    format: Format,
    tree: &Map,
    recipients: &[Recipient],
    selection: Selection,
) -> Result<Written, SopsError> {
    if tree.iter().any(|(k, _)| k == "sops") {
        return Err(SopsError::ReservedKey);
    }
    ensure_writable_depth(tree)?;
    if recipients.is_empty() {
        return Err(SopsError::NoRecipients);
    }
    let data_key = DataKey::generate();
    let age = recipients
        .iter()
        .map(|r| {
            Ok(AgeStanza {
                recipient: r.as_str().to_owned(),
                enc: r.wrap(&data_key)?,
            })
        })
        .collect::<Result<Vec<_>, KeyError>>()?;
    let metadata = Metadata {
        age,
        lastmodified: String::new(),
        mac: String::new(),
        selection,
        mac_only_encrypted: false,
        version: None,
        foreign_key_sources: Vec::new(),
        comment_selection: None,
    };
    seal(format, tree, data_key, metadata, None)
}

/// Refuses a tree that the readers would refuse once written: the same limit
/// on write as on read.
fn ensure_writable_depth(tree: &Map) -> Result<(), SopsError> {
    let depth = value::depth(tree);
    if depth > MAX_DEPTH {
        return Err(SopsError::TooDeep(depth));
    }
    Ok(())
}

/// Encrypts `tree` under `metadata`'s key and selection, computing a new MAC.
fn seal(
    format: Format,
    tree: &Map,
    data_key: DataKey,
    mut metadata: Metadata,
    stash: Option<&mut Stash>,
) -> Result<Written, SopsError> {
    ensure_writable_depth(tree)?;
    let matcher = metadata.selection.matcher()?;
    let mut walk = EncryptWalk {
        key: &data_key,
        matcher: &matcher,
        mac: MacHasher::new(false),
        stash,
        path: KeyPath::default(),
    };
    let encrypted_tree = walk.map(tree);
    let mac = walk.mac.finish();
    metadata.lastmodified = metadata::now_lastmodified();
    metadata.mac = cipher::seal(&data_key, mac.as_bytes(), &metadata.lastmodified, Kind::Str);
    let recipients = metadata.age.iter().map(|s| s.recipient.clone()).collect();
    let file = EncryptedFile {
        format,
        tree: encrypted_tree,
        metadata,
        encrypted_comments: 0,
    };
    Ok(Written {
        text: file.to_text(),
        data_key,
        expected: tree.clone(),
        recipients,
        format,
    })
}

/// The text of an encrypted file about to be written, with what is needed
/// to check it: [`Written::verify`] must pass on the bytes actually written.
pub struct Written {
    pub text: Zeroizing<String>,
    data_key: DataKey,
    expected: Map,
    recipients: Vec<String>,
    format: Format,
}

impl Written {
    /// Replaces `target` with this file once the bytes read back from disk
    /// pass [`Written::verify`]; on any failure `target` is left as it was.
    /// An existing file keeps its mode, a new one is owner-only, as sops
    /// makes it.
    pub fn write_to(
        &self,
        target: &std::path::Path,
    ) -> Result<(), fromgit_fs::WriteError<SopsError>> {
        fromgit_fs::write_checked(
            target,
            self.text.as_bytes(),
            fromgit_fs::Mode::KeepOrPrivate,
            |bytes| self.verify(bytes),
        )
    }

    /// Parses `bytes` as an encrypted file and checks that it lists exactly the
    /// intended recipients, that each stanza is an age file, and that it
    /// decrypts, MAC included, to the intended values.
    pub fn verify(&self, bytes: &[u8]) -> Result<(), SopsError> {
        let check = |what: &str| SopsError::SelfCheck(what.to_owned());
        let text = std::str::from_utf8(bytes).map_err(|_| check("not UTF-8"))?;
        let file = EncryptedFile::parse(text, self.format)?;
        if file.recipients() != self.recipients {
            return Err(check("recipient list differs"));
        }
        for stanza in &file.metadata.age {
            age::Decryptor::new(age::armor::ArmoredReader::new(stanza.enc.as_bytes()))
                .map_err(|_| check("a recipient stanza is not an age file"))?;
        }
        let (tree, _) = file.open(&self.data_key, false)?;
        if tree != self.expected {
            return Err(check("decrypted values differ"));
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "file_tests.rs"]
mod tests;
