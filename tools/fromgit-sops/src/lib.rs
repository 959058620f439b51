//! fromgit's sops library: read and write sops-encrypted YAML and JSON files
//! that the `sops` CLI (3.7 to 3.13) and sops-nix decrypt, with age X25519
//! recipients, `.sops.yaml` creation rules, MAC verification, `updatekeys`
//! and `rotate`, and writes that are checked before they replace a file.
//!
//! Plaintext stays in memory, in zeroizing buffers; no error or `Debug`
//! output carries a secret value.

pub mod cipher;
pub mod config;
pub mod detect;
pub mod file;
pub mod json;
pub mod keys;
pub mod metadata;
mod text;
pub mod value;
pub mod yaml;

pub use file::{
    encrypt_new, DecryptedFile, EncryptedFile, Format, RecipientChanges, SopsError, Written,
};
pub use keys::{Identities, Recipient};
pub use value::{KeyPath, Kind, Map, Scalar, Value};
