//! vm-prove exists to prove on a live machine what the other tools prove on
//! paper. It performs one rebuild on a throwaway Incus instance, behind
//! guardrails that keep it away from anything real, pushes exactly one secret,
//! checks that the system converges, that the secret arrives and that TLS is
//! served, then writes the evidence and tears the instance down.

pub mod config;
pub mod evidence;
pub mod guard;
pub mod incus;
pub mod prove;
pub mod repos;
pub mod runbook;
pub mod tls;

use std::path::PathBuf;

use anyhow::Context as _;
use clap::ValueHint;
use fromgit_cli::{ExitStatus, GlobalArgs};

/// The proof tools' exit-code table, with what 2 and 3 mean for vm-prove.
const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success (the requested proof holds)
  1  negative result (a block or a check failed)
  2  error (bad input, I/O, a failed external program), or a guardrail
     refused before anything was created (verdict `refused`)
  3  unproven (everything that ran passed, but blocks marked `needs=nixos`
     were not run: the instance is not NixOS)";

/// Prove a live rebuild on a throwaway Incus instance, then tear it down.
#[derive(clap::Parser, Debug)]
#[command(name = "vm-prove", version, after_help = EXIT_CODES_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// The configuration file every subcommand reads.
#[derive(clap::Args, Debug)]
pub struct ConfigArg {
    /// The `vm-prove.toml` to use (see docs/vm-prove.md)
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub config: PathBuf,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Show the guardrail evaluation and the steps a run would take, changing nothing
    Plan {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        report: fromgit_cli::ReportArgs,
    },
    /// Create the throwaway instance, push the key, run the runbook and the checks, record evidence, delete it
    Run {
        #[command(flatten)]
        config: ConfigArg,
        /// Keep the instance when the proof fails (the only exception to teardown)
        #[arg(long)]
        keep_on_failure: bool,
        #[command(flatten)]
        report: fromgit_cli::ReportArgs,
    },
    /// Delete instances left tagged by a vm-prove run that no longer exists (and only those)
    Sweep {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        report: fromgit_cli::ReportArgs,
    },
}

fn load(arg: &ConfigArg) -> anyhow::Result<config::Config> {
    config::Config::load(&arg.config)
        .with_context(|| format!("Failed to load `{}`", arg.config.display()))
}

/// Runs the chosen subcommand.
pub fn run(cli: &Cli) -> anyhow::Result<ExitStatus> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("Failed to start the async runtime")?;
    let printer = |report| fromgit_cli::Printer::new(&cli.global, report);
    match &cli.command {
        Command::Plan { config, report } => {
            let cfg = load(config)?;
            runtime.block_on(prove::plan(&cfg, &config.config, &printer(report)?))
        }
        Command::Run {
            config,
            keep_on_failure,
            report,
        } => {
            let cfg = load(config)?;
            let printer = printer(report)?;
            let options = prove::RunOptions {
                keep_on_failure: *keep_on_failure,
                progress: cli.global.quiet == 0 && !printer.json(),
                printer,
            };
            runtime.block_on(prove::run(&cfg, &config.config, options))
        }
        Command::Sweep { config, report } => {
            let cfg = load(config)?;
            runtime.block_on(prove::sweep(&cfg, &printer(report)?))
        }
    }
}
