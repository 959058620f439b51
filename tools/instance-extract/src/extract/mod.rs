//! The split of a monolithic flake into a generic base and a private
//! instance repo: the plan (what is instance-specific, and where), and the
//! changes that apply it, computed entirely in memory before anything is
//! written.

mod base_wiring;
mod changes;
mod edits;
mod instance;
mod plan;
mod scope;

use std::path::{Path, PathBuf};

use fromgit_nix::literal::string as nix_string;
use serde::Serialize;

use crate::nixsrc;

pub use changes::{changes, Changes};
pub use plan::Plan;

/// The module the base gains: the instance option, declared once, and the
/// sops-nix declarations of the moved secrets.
pub const OPTIONS_MODULE: &str = "instance-options.nix";

/// What the command line asked for.
pub struct Request<'a> {
    pub base: &'a Path,
    pub domain: &'a str,
    /// `(name, host path)` pairs.
    pub secrets: &'a [(String, String)],
    /// The option namespace: `config.<name>.instance.domain`.
    pub name: &'a str,
    /// The base's entry module, relative to the base.
    pub module: &'a Path,
    /// The sops-nix key wiring and per-secret overrides.
    pub sops: &'a crate::wiring::SopsRequest,
}

impl Request<'_> {
    fn secret_expression(name: &str) -> String {
        format!("config.sops.secrets.{}.path", nix_string(name))
    }
}

/// Errors of plan and apply; each names the file, flag or key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("`{0}` is not a flake: it has no `flake.nix`")]
    NotAFlake(PathBuf),
    #[error(transparent)]
    Source(#[from] nixsrc::SourceError),
    #[error("`{file}` line {line}: {reason}")]
    Unrewritable {
        file: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("the entry module `{0}` does not exist (pass `--module`)")]
    NoEntryModule(PathBuf),
    #[error("`--secret {name}={path}`: cannot read the host file: {source}")]
    SecretUnreadable {
        name: String,
        path: String,
        source: std::io::Error,
    },
    #[error("`--secret {0}`: the secret file is not UTF-8 text")]
    SecretNotText(String),
    #[error(transparent)]
    Sops(#[from] fromgit_sops::SopsError),
    #[error(transparent)]
    Accept(#[from] crate::accept::AcceptError),
}

/// A file to create or replace, with its previous content for the diff.
pub struct FileChange {
    pub path: PathBuf,
    pub before: Option<String>,
    pub after: String,
    /// For a sops file: what checks that the bytes written decrypt to the
    /// intended values.
    pub sealed: Option<fromgit_sops::Written>,
}

/// A secret moved into the instance repo, as the report shows it.
#[derive(Debug, Serialize)]
pub struct MovedSecret {
    pub name: String,
    pub source: String,
    pub sha256: String,
}
