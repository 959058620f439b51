//! Command-line surface of `leak-scan`.

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum, ValueHint};

/// Prove the base repo stays generic: scan a directory tree (default), the
/// staged changes (`--staged`) or the whole history (`--history`) for secrets,
/// for the instance's own values (by keyed fingerprint, `--fingerprints`) and
/// for files that should be sops-encrypted and are not.
#[derive(Parser, Debug)]
#[command(
    name = "leak-scan",
    version,
    subcommand_precedence_over_arg = true,
    after_help = fromgit_cli::PROOF_EXIT_CODES_HELP
)]
pub struct Cli {
    #[command(flatten)]
    pub global: fromgit_cli::GlobalArgs,
    #[command(flatten)]
    pub scan: ScanArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write a fingerprint file of an instance's secrets, domains, addresses
    /// and e-mail addresses: salted keyed hashes only, no plaintext
    Enroll(EnrollArgs),
    /// List the rules, with their ids and descriptions
    Rules(RulesArgs),
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
    Sarif,
}

#[derive(Args, Debug)]
#[allow(clippy::struct_excessive_bools)]
pub struct ScanArgs {
    /// Directory to scan (tree mode), or a directory inside the repository (`--staged`, `--history`)
    #[arg(value_name = "DIR", default_value = ".", value_hint = ValueHint::DirPath)]
    pub dir: PathBuf,
    /// Scan the blobs staged in the git index that differ from `HEAD` (pre-commit)
    #[arg(long, conflicts_with = "history")]
    pub staged: bool,
    /// Scan every object in the repository: all blobs once each, commits,
    /// tags, file names and ref names
    #[arg(long)]
    pub history: bool,
    /// With `--history`: skip objects reachable from REV (pre-push: `@{upstream}`)
    #[arg(long, value_name = "REV", requires = "history")]
    pub since: Option<String>,
    /// A fingerprint file written by `leak-scan enroll`
    #[arg(long, value_name = "FILE", env = "LEAK_SCAN_FINGERPRINTS", value_hint = ValueHint::FilePath)]
    pub fingerprints: Option<PathBuf>,
    /// Suppressions file (default: `.leak-scan.toml` at the root, when present)
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub suppressions: Option<PathBuf>,
    /// Extra rule file(s), in the format of the built-in `rules/*.toml` (repeatable)
    #[arg(long = "rules", value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub rules: Vec<PathBuf>,
    /// Output format (`--json` is short for `--format json`)
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Write the report to FILE instead of stdout (atomically; `-` is stdout)
    #[arg(short, long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub output: Option<PathBuf>,
    /// Skip (and count) blobs larger than this many bytes; any skip makes the run unproven
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_SIZE)]
    pub max_size: u64,
    /// Ignore and do not update the clean-object cache in `.git/leak-scan/`
    #[arg(long)]
    pub no_cache: bool,
    /// Exit 1 when a suppression matches nothing any more
    #[arg(long)]
    pub fail_unused_suppressions: bool,
}

impl ScanArgs {
    /// The scan-mode flags given on the command line (or differing from
    /// their defaults), for a command that is not a scan: subcommands take
    /// precedence over the `DIR` argument, so `leak-scan -v rules` lists the
    /// rules, and a scan flag given with a command is an error, not ignored.
    /// `--rules` and `--format` also shape `leak-scan rules`.
    pub fn scan_flags_given(&self) -> Vec<&'static str> {
        let mut given = Vec::new();
        for (set, flag) in [
            (self.dir != Path::new("."), "DIR"),
            (self.staged, "--staged"),
            (self.history, "--history"),
            (self.since.is_some(), "--since"),
            (self.suppressions.is_some(), "--suppressions"),
            (self.output.is_some(), "--output"),
            (self.max_size != DEFAULT_MAX_SIZE, "--max-size"),
            (self.no_cache, "--no-cache"),
            (self.fail_unused_suppressions, "--fail-unused-suppressions"),
        ] {
            if set {
                given.push(flag);
            }
        }
        given
    }
}

/// `--max-size`'s default: 64 MiB.
pub const DEFAULT_MAX_SIZE: u64 = 64 << 20;

#[derive(Args, Debug)]
pub struct RulesArgs {
    #[command(flatten)]
    pub report: fromgit_cli::ReportArgs,
}

#[derive(Args, Debug)]
pub struct EnrollArgs {
    /// The instance repository: its sops files are decrypted, its `instance.nix` is read
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub instance: PathBuf,
    /// An age key file or OpenSSH ed25519 private key that opens the sops files
    /// (repeatable; default: `SOPS_AGE_KEY_FILE`, then `SOPS_AGE_KEY`)
    #[arg(long = "identity", value_name = "KEY", value_hint = ValueHint::FilePath)]
    pub identities: Vec<PathBuf>,
    /// Where to write the fingerprint file
    #[arg(short, long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub output: PathBuf,
    /// Also enroll this domain (repeatable)
    #[arg(long = "domain", value_name = "NAME")]
    pub domains: Vec<String>,
    // No `-o` for the report: `-o` names the fingerprint file.
    #[command(flatten)]
    pub report: fromgit_cli::FormatArgs,
}
