//! leak-scan exists to prove that the generic base repo stays generic: no host
//! names, addresses, keys or other instance data may reach it. It scans the
//! working tree, the staged changes before a commit, and the full history, and
//! it is instance-aware without holding instance data itself: an instance
//! enrolls salted fingerprints of its values, and the scanner matches against
//! those instead of the values.

use std::path::PathBuf;

use anyhow::bail;
use clap::ValueHint;
use fromgit_cli::{ExitStatus, GlobalArgs, EXIT_CODES_HELP};

/// Prove the base repo stays generic: scan the tree, staged changes and history.
#[derive(clap::Parser, Debug)]
#[command(name = "leak-scan", version, after_help = EXIT_CODES_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Scan the files of a working tree
    Tree {
        /// Directory to scan
        #[arg(value_name = "DIR", default_value = ".", value_hint = ValueHint::DirPath)]
        dir: PathBuf,
    },
    /// Scan the changes staged for the next commit (for a pre-commit hook)
    Staged,
    /// Scan every commit reachable in the repository's history
    History,
    /// Enroll an instance's values as salted fingerprints, so scans can spot them without storing them
    Enroll,
}

/// Runs the chosen subcommand.
pub fn run(cli: &Cli) -> anyhow::Result<ExitStatus> {
    match &cli.command {
        Command::Tree { .. } => bail!("`leak-scan tree` is not implemented yet"),
        Command::Staged => bail!("`leak-scan staged` is not implemented yet"),
        Command::History => bail!("`leak-scan history` is not implemented yet"),
        Command::Enroll => bail!("`leak-scan enroll` is not implemented yet"),
    }
}
