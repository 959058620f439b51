//! vm-prove exists to prove on a live machine what the other tools prove on
//! paper. It performs one rebuild on a throwaway Incus instance, behind
//! guardrails that keep it away from anything real, pushes exactly one secret,
//! checks that the system converges, that the secret arrives and that TLS is
//! served, then writes the evidence and tears the instance down.

use anyhow::bail;
use fromgit_cli::{ExitStatus, GlobalArgs, EXIT_CODES_HELP};

/// Prove a live rebuild on a throwaway Incus instance, then tear it down.
#[derive(clap::Parser, Debug)]
#[command(name = "vm-prove", version, after_help = EXIT_CODES_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Show what a run would do (instance, guardrails, the secret to push, the checks) without doing it
    Plan,
    /// Launch the throwaway instance, rebuild, push the secret, run the checks, record evidence, tear down
    Run,
}

/// Runs the chosen subcommand.
pub fn run(cli: &Cli) -> anyhow::Result<ExitStatus> {
    match &cli.command {
        Command::Plan => bail!("`vm-prove plan` is not implemented yet"),
        Command::Run => bail!("`vm-prove run` is not implemented yet"),
    }
}
