//! closure-diff exists to prove that splitting a flake into a base and an
//! instance changed nothing that gets deployed: two system closures are
//! identical when every store path in them has the same NAR hash. When they
//! are not, it explains every drift, following each differing path down to
//! the derivation whose change caused it.

use anyhow::bail;
use fromgit_cli::{ExitStatus, GlobalArgs, EXIT_CODES_HELP};

/// Prove two system closures byte-identical by NAR hash and explain every drift.
#[derive(clap::Parser, Debug)]
#[command(name = "closure-diff", version, after_help = EXIT_CODES_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Compare two closures by NAR hash and explain each drift down to its root-cause derivation
    Compare {
        /// The reference closure (store path or snapshot)
        #[arg(value_name = "OLD")]
        old: String,
        /// The closure to check against it (store path or snapshot)
        #[arg(value_name = "NEW")]
        new: String,
    },
    /// Record a closure's paths and NAR hashes for a later comparison
    Snapshot {
        /// The closure to record (store path)
        #[arg(value_name = "CLOSURE")]
        closure: String,
    },
}

/// Runs the chosen subcommand.
pub fn run(cli: &Cli) -> anyhow::Result<ExitStatus> {
    match &cli.command {
        Command::Compare { .. } => bail!("`closure-diff compare` is not implemented yet"),
        Command::Snapshot { .. } => bail!("`closure-diff snapshot` is not implemented yet"),
    }
}
