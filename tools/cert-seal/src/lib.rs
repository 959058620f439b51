//! cert-seal exists because a site's wildcard TLS certificate is the one secret
//! that expires on its own and breaks the site when it does. It validates a
//! wildcard certificate and its key before anything depends on them, seals them
//! into the private instance repo as sops secrets, inspects and renews them
//! without needing the decryption key, and probes what a server actually
//! serves, so a rotation can be checked end to end.

use anyhow::bail;
use fromgit_cli::{ExitStatus, GlobalArgs, EXIT_CODES_HELP};

/// Validate, seal, inspect and renew a wildcard TLS certificate and key.
#[derive(clap::Parser, Debug)]
#[command(name = "cert-seal", version, after_help = EXIT_CODES_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Validate a wildcard certificate and key: chain, expiry, names, and that the key matches
    Check,
    /// Seal a validated certificate and key into the instance repo as sops secrets
    Seal,
    /// Show what is sealed (names, issuer, expiry) without the decryption key
    Inspect,
    /// Replace the sealed certificate with a renewed one, without the decryption key
    Renew,
    /// Connect to a server and report the certificate it actually serves
    Probe {
        /// Server to connect to, as `HOST` or `HOST:PORT`
        #[arg(value_name = "HOST[:PORT]")]
        target: String,
    },
}

/// Runs the chosen subcommand.
pub fn run(cli: &Cli) -> anyhow::Result<ExitStatus> {
    match &cli.command {
        Command::Check => bail!("`cert-seal check` is not implemented yet"),
        Command::Seal => bail!("`cert-seal seal` is not implemented yet"),
        Command::Inspect => bail!("`cert-seal inspect` is not implemented yet"),
        Command::Renew => bail!("`cert-seal renew` is not implemented yet"),
        Command::Probe { .. } => bail!("`cert-seal probe` is not implemented yet"),
    }
}
