//! Nix store formats shared by the fromgit tools: NAR serialisation and
//! hashing, Nix32, hashes in every encoding, store paths, derivations
//! (`ATerm` and JSON), package names and versions, path-info JSON and
//! `.narinfo`, read-only access to the local store database, the Nix
//! string literals the tools write into `.nix` files, and the `nix` and
//! `ssh` command lines the tools run.
//!
//! The formats follow the Nix manual's protocol pages and were checked
//! against Nix 2.8 (`nix-store --dump`, `nix-hash`, `nix path-info`).

pub mod base_name;
pub mod command;
pub mod db;
pub mod drv;
pub mod hash;
pub mod json;
pub mod literal;
pub mod names;
pub mod nar;
pub mod nix32;
pub mod pathinfo;
pub mod store_path;

pub use base_name::StoreBaseName;
pub use hash::Sha256Hash;
pub use pathinfo::PathInfo;
pub use store_path::{StoreDir, StorePath};
