//! `instance-extract`: turns a monolithic NixOS flake into a generic base
//! repo and a private instance repo. Its `secrets` subcommands are the
//! command-line face of the `fromgit-sops` library, compatible with sops.

mod accept;
mod basecheck;
pub mod classify;
pub mod cli;
mod evalread;
mod extract;
mod facts;
mod history;
mod historycheck;
mod hosts;
mod inline;
mod lock;
mod nesting;
pub mod nixsrc;
mod renames;
mod rewrite;
mod runtime_options;
mod secrets;
mod sops_check;
mod split;
pub mod wiring;

use fromgit_cli::ExitStatus;

/// Runs one command; errors become exit code 2 in `main`.
pub fn run(cli: &cli::Cli) -> anyhow::Result<ExitStatus> {
    match &cli.command {
        cli::Command::Plan(args) => {
            split::plan(args, &fromgit_cli::Printer::new(&cli.global, &args.report)?)
        }
        cli::Command::Apply(args) => {
            split::apply(args, &fromgit_cli::Printer::new(&cli.global, &args.report)?)
        }
        cli::Command::Verify(args) => {
            split::verify(args, &fromgit_cli::Printer::new(&cli.global, &args.report)?)
        }
        cli::Command::Secrets(command) => secrets::run(command, &cli.global),
    }
}
