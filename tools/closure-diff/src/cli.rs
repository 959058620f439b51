//! Command-line surface of `closure-diff`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum, ValueHint};
use fromgit_nix::StoreDir;

use crate::compare::DriftPattern;

/// The exit-code table of `--help`.
pub const EXIT_CODES_HELP: &str = fromgit_cli::PROOF_EXIT_CODES_HELP;

/// Prove two system closures byte-identical by NAR hash, and explain every
/// drift down to the derivation that caused it.
///
/// `closure-diff OLD NEW` is short for `closure-diff compare OLD NEW`. Each
/// side is a store path (`./result`, `/run/current-system`), a `.drv` path, a
/// `nix path-info -r --json` dump, a directory of `.narinfo` files, a
/// snapshot made by `closure-diff snapshot`, or `ssh://[USER@]HOST[:PORT]/PATH`.
#[derive(Parser, Debug)]
#[command(
    name = "closure-diff",
    version,
    after_help = EXIT_CODES_HELP,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: fromgit_cli::GlobalArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub compare: CompareArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Compare two closures by NAR hash and explain each drift down to its root-cause derivation
    Compare(CompareArgs),
    /// Record a closure's paths, NAR hashes, references, derivers and `.drv` files in a file
    Snapshot(SnapshotArgs),
}

/// The identity levels, weakest first.
#[derive(
    ValueEnum, Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, serde::Serialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    /// Equal toplevel store paths: same recipe, bytes not checked
    SamePath,
    /// Equal closures with equal NAR hash, NAR size and references for every path
    #[default]
    ByteIdentical,
    /// Byte-identical, and every local path's NAR recomputed from disk matches
    VerifiedOnDisk,
}

impl Level {
    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::SamePath => "same-path",
            Self::ByteIdentical => "byte-identical",
            Self::VerifiedOnDisk => "verified-on-disk",
        }
    }
}

#[derive(Args, Debug, Clone, Default)]
pub struct StoreArgs {
    /// Root of a local chroot store (as `nix --store DIR`): its database is
    /// `DIR/nix/var/nix/db/db.sqlite` and its objects `DIR/nix/store` [default: /]
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub store: Option<PathBuf>,
    /// The logical store directory every input must belong to
    #[arg(
        long,
        value_name = "DIR",
        env = "NIX_STORE_DIR",
        default_value = "/nix/store"
    )]
    pub store_dir: StoreDir,
    /// Query local store paths through `nix path-info --json` instead of reading the database
    #[arg(long)]
    pub use_cli: bool,
}

#[derive(Args, Debug, Clone, Default)]
pub struct CompareArgs {
    /// The reference closure
    #[arg(value_name = "OLD", required = true)]
    pub old: Option<String>,
    /// The closure to check against it
    #[arg(value_name = "NEW", required = true)]
    pub new: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// The identity level that must hold for exit code 0
    #[arg(long, value_enum, value_name = "LEVEL", default_value_t = Level::ByteIdentical)]
    pub level: Level,
    /// Recompute the NAR hash of every local path in parallel (same as `--level verified-on-disk`)
    #[arg(long)]
    pub verify_on_disk: bool,
    /// A package allowed to differ (glob on its name, e.g. `sops-nix*`); repeatable
    #[arg(long = "expect-drift", value_name = "PATTERN")]
    pub expect_drift: Vec<DriftPattern>,
    /// Skip the root-cause walk of the `.drv` graphs
    #[arg(long)]
    pub no_root_cause: bool,
    /// Threads for `--verify-on-disk` [default: number of CPUs]
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    #[command(flatten)]
    pub report: fromgit_cli::ReportArgs,
}

#[derive(Args, Debug, Clone)]
pub struct SnapshotArgs {
    /// The closure to record (any input `compare` accepts)
    #[arg(value_name = "CLOSURE")]
    pub closure: String,
    /// Where to write the snapshot [default: stdout]
    #[arg(short, long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub output: Option<PathBuf>,
    /// Leave the `.drv` files out (no root-cause analysis from this snapshot)
    #[arg(long)]
    pub no_drvs: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}
