//! Command-line surface of `cert-seal`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueHint};

/// Validate a wildcard certificate and key, seal them into the instance repo,
/// inspect and renew them without the decryption key, and probe what a
/// server serves.
#[derive(Parser, Debug)]
#[command(name = "cert-seal", version, after_help = fromgit_cli::EXIT_CODES_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: fromgit_cli::GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check that a certificate chain and key would serve `D` and `*.D` (exit 1 when refused)
    Check(CheckArgs),
    /// Check, then seal the chain and key into a sops file (no decryption key needed for a new file)
    Seal(SealArgs),
    /// Show the sealed certificate from its clear values, without any key (exit 1 when it expires soon)
    Inspect(InspectArgs),
    /// Connect to a TLS server and compare the certificate it serves with the sealed one
    Probe(ProbeArgs),
    /// Print the sops-nix declarations that decrypt the sealed pair to fixed paths
    Nix(NixArgs),
}

#[derive(Args, Debug)]
pub struct PairArgs {
    /// The full chain, leaf first, PEM
    #[arg(long, value_name = "FULLCHAIN.pem", value_hint = ValueHint::FilePath)]
    pub cert: PathBuf,
    /// The leaf's private key, PEM, unencrypted
    #[arg(long, value_name = "PRIVKEY.pem", value_hint = ValueHint::FilePath)]
    pub key: PathBuf,
    /// The instance domain: the leaf must name both `D` and `*.D`
    #[arg(long, value_name = "D", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub domain: String,
    /// Refuse a leaf that expires within this many days
    #[arg(long, value_name = "DAYS", default_value_t = 30)]
    pub min_days: i64,
    /// Accept a leaf that expires within `--min-days`
    #[arg(long)]
    pub allow_short: bool,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    pub pair: PairArgs,
    #[command(flatten)]
    pub report: fromgit_cli::ReportArgs,
}

#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("target").required(true).args(["out", "into"]))]
pub struct SealArgs {
    #[command(flatten)]
    pub pair: PairArgs,
    /// Write a new sops file holding only the sealed pair (replaces an existing one)
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub out: Option<PathBuf>,
    /// Update the `tls` keys inside this existing sops file, keeping every other value's ciphertext
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub into: Option<PathBuf>,
    /// An age key file or OpenSSH ed25519 private key to open the `--into` file (repeatable;
    /// default: `SOPS_AGE_KEY_FILE`, then `SOPS_AGE_KEY`)
    #[arg(long = "identity", value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub identities: Vec<PathBuf>,
    /// An age recipient (`age1…`), instead of the `.sops.yaml` creation rule (repeatable)
    #[arg(short = 'r', long = "recipient", value_name = "AGE1…")]
    pub recipients: Vec<String>,
    /// The `.sops.yaml` to use instead of searching upward from the working directory
    #[arg(long, value_name = "PATH", value_hint = ValueHint::FilePath)]
    pub config: Option<PathBuf>,
    /// Accept a renewal that drops names the sealed certificate had
    #[arg(long)]
    pub allow_name_removal: bool,
    // No `-o` for the report: `--out` names the sealed file this command writes.
    #[command(flatten)]
    pub format: fromgit_cli::FormatArgs,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// A sealed sops file
    #[arg(value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub file: PathBuf,
    /// Exit 1 when fewer days than this remain
    #[arg(long, value_name = "DAYS", default_value_t = 30)]
    pub min_days: i64,
    /// An age key file or OpenSSH ed25519 private key: decrypt the sealed
    /// certificate and check the clear values against it (exit 1 when they
    /// differ); without it the clear values are unauthenticated (repeatable)
    #[arg(long = "identity", value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub identities: Vec<PathBuf>,
    #[command(flatten)]
    pub report: fromgit_cli::ReportArgs,
}

#[derive(Args, Debug)]
pub struct ProbeArgs {
    /// The server, `HOST:PORT`
    #[arg(value_name = "HOST:PORT")]
    pub address: String,
    /// The server name to send (default: the host part of HOST:PORT)
    #[arg(long, value_name = "NAME")]
    pub sni: Option<String>,
    /// The sealed sops file whose certificate the server must serve
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub expect: PathBuf,
    /// Give up connecting or reading after this many seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub timeout: u64,
    #[command(flatten)]
    pub report: fromgit_cli::ReportArgs,
}

#[derive(Args, Debug)]
pub struct NixArgs {
    /// The sealed sops file, as the Nix module should reference it
    #[arg(value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub file: PathBuf,
    /// Where sops-nix puts the full chain
    #[arg(
        long,
        value_name = "PATH",
        default_value = "/var/lib/tls/fullchain.pem"
    )]
    pub fullchain_path: String,
    /// Where sops-nix puts the private key
    #[arg(long, value_name = "PATH", default_value = "/var/lib/tls/key.pem")]
    pub key_path: String,
    /// Owner of both files
    #[arg(long, value_name = "USER", default_value = "root")]
    pub owner: String,
    /// Group of both files (the key becomes readable by it: mode 0440)
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// A unit to restart when the pair changes (repeatable)
    #[arg(long = "restart-unit", value_name = "UNIT")]
    pub restart_units: Vec<String>,
    /// A unit to reload when the pair changes (repeatable)
    #[arg(long = "reload-unit", value_name = "UNIT")]
    pub reload_units: Vec<String>,
}
