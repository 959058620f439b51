//! Command-line surface of `instance-extract`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum, ValueHint};

/// Split a monolithic NixOS flake into a generic base and a private instance
/// repo, and manage the instance's sops-encrypted secrets.
#[derive(Parser, Debug)]
#[command(name = "instance-extract", version, after_help = fromgit_cli::EXIT_CODES_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: fromgit_cli::GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List every place in the base's Nix files that carries instance data (exit 1 when the domain occurs nowhere)
    Plan(PlanArgs),
    /// Rewrite the base over one instance option, move the host secrets into a new instance repo, wire the flakes
    Apply(ApplyArgs),
    /// Prove that the one bootstrap identity is the only secret outside git (exit 1 when it is not)
    Verify(VerifyArgs),
    /// Encrypt, decrypt and re-key sops files (compatible with sops 3.7 to 3.13 and sops-nix)
    #[command(subcommand)]
    Secrets(SecretsCommand),
}

#[derive(Args, Debug)]
pub struct SplitArgs {
    /// The monolithic flake to make generic (the base repo)
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub base: PathBuf,
    /// The instance's domain (a DNS name of two labels or more, matched in any letter case)
    #[arg(long, value_name = "D", value_parser = parse_domain)]
    pub domain: String,
    /// A secret the host reads from a file placed there by hand: `NAME=HOSTPATH` (repeatable);
    /// `NAME` is the sops-nix key (`a/b` nests)
    #[arg(long = "secret", value_name = "NAME=HOSTPATH", value_parser = parse_secret)]
    pub secrets: Vec<(String, String)>,
    /// The option namespace: references become `config.<NAME>.instance.domain` (default: the base directory's name)
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// The base's entry module, which imports the generated options module
    #[arg(long, value_name = "FILE", default_value = "configuration.nix")]
    pub module: PathBuf,
}

/// A DNS name of at least two labels, in lower case: labels of letters,
/// digits and inner hyphens, 63 bytes at most, 253 in all, not all digits at
/// the end (an IP address is not a domain).
pub fn parse_domain(text: &str) -> Result<String, String> {
    let name = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
    let labels: Vec<&str> = name.split('.').collect();
    let label_ok = |label: &&str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if name.is_empty() {
        return Err("the domain is empty".to_owned());
    }
    if labels.len() < 2 {
        return Err(format!(
            "`{text}` is a single label; give the instance's domain, e.g. `example.org`"
        ));
    }
    if name.len() > 253
        || !labels.iter().all(label_ok)
        || labels
            .last()
            .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!("`{text}` is not a DNS name"));
    }
    Ok(name)
}

fn parse_secret(text: &str) -> Result<(String, String), String> {
    let (name, path) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not `NAME=HOSTPATH`"))?;
    if name.is_empty() || name.starts_with('/') || name.ends_with('/') || name.contains("//") {
        return Err(format!("`{name}` is not a sops-nix secret name"));
    }
    if !path.starts_with('/') {
        return Err(format!("`{path}` is not an absolute host path"));
    }
    Ok((name.to_owned(), path.to_owned()))
}

#[derive(Args, Debug)]
pub struct PlanArgs {
    #[command(flatten)]
    pub split: SplitArgs,
    #[command(flatten)]
    pub report: fromgit_cli::ReportArgs,
}

#[derive(Args, Debug)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub split: SplitArgs,
    /// The private instance repo to create
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub instance: PathBuf,
    #[command(flatten)]
    pub recipients: RecipientSourceArgs,
    /// The flake URL of the instance repo, as the base's `instance` input
    #[arg(long, value_name = "URL", default_value = "path:../instance")]
    pub instance_url: String,
    /// Print the unified diff of every change and write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Start the base's git history anew: one commit of the generic tree; the
    /// monolith's git directory is kept beside the base as `<base>.monolith.git`
    #[arg(long)]
    pub new_history: bool,
    #[command(flatten)]
    pub sops: SopsWiringArgs,
    #[command(flatten)]
    pub report: fromgit_cli::ReportArgs,
}

/// How sops-nix on the host decrypts, and who reads each secret.
#[derive(Args, Debug)]
pub struct SopsWiringArgs {
    /// Where the bootstrap age key lives on the host (`sops.age.keyFile`)
    #[arg(long, value_name = "PATH", default_value = crate::wiring::DEFAULT_KEY_FILE)]
    pub key_file: String,
    /// Also decrypt with the host's `ssh-ed25519` key; its recipient must be given with `--recipient-ssh`
    #[arg(long)]
    pub host_key_decryption: bool,
    /// Override a secret's sops-nix setting: `NAME:KEY=VALUE`, KEY one of `owner`, `group`,
    /// `mode`, `restartUnits`, `reloadUnits` (repeatable)
    #[arg(long = "secret-attr", value_name = "NAME:KEY=VALUE", value_parser = crate::wiring::parse_override)]
    pub overrides: Vec<crate::wiring::SecretOverride>,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The private instance repo
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub instance: PathBuf,
    #[command(flatten)]
    pub identity: IdentityArgs,
    /// Also check that the base holds no domain, reads no host secret outside sops-nix,
    /// and that sops-nix, composed with the instance, decrypts with the bootstrap key
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub base: Option<PathBuf>,
    /// The base's entry module, composed with the instance module (with `--base`)
    #[arg(long, value_name = "FILE", default_value = "configuration.nix")]
    pub module: PathBuf,
    /// Where the bootstrap key lives on the host: sops-nix must use this key file
    #[arg(long, value_name = "PATH", default_value = crate::wiring::DEFAULT_KEY_FILE)]
    pub key_file: String,
    /// A host's `ssh-ed25519` public key whose recipient lets sops-nix decrypt with its host key (repeatable)
    #[arg(long = "host-key", value_name = "HOST_KEY.pub", value_hint = ValueHint::FilePath)]
    pub host_keys: Vec<PathBuf>,
    #[command(flatten)]
    pub report: fromgit_cli::ReportArgs,
}

#[derive(Subcommand, Debug)]
pub enum SecretsCommand {
    /// Encrypt a plaintext YAML or JSON file for age recipients
    ///
    /// Recipients and the selection rule come from the first matching
    /// creation rule of the nearest `.sops.yaml` (searched upward from the
    /// working directory), unless recipients are given on the command line.
    Encrypt(EncryptArgs),
    /// Decrypt a sops file and print the plaintext on stdout (MAC verified)
    Decrypt(DecryptArgs),
    /// Set one value, read from stdin, keeping the ciphertext of every other value
    Set(SetArgs),
    /// Re-wrap the data key for the recipients of the matching creation rule;
    /// values, MAC and `lastmodified` stay byte-identical
    Updatekeys(UpdatekeysArgs),
    /// Draw a new data key and re-encrypt every value (revokes removed recipients for new versions)
    Rotate(RotateArgs),
    /// Print the age recipient that sops-nix derives from an `ssh-ed25519` host key
    Recipient(RecipientArgs),
    /// Create the bootstrap age key: the identity goes to a new file (mode 0600), the recipient to stdout
    Keygen(KeygenArgs),
}

#[derive(Args, Debug)]
pub struct InputTypeArgs {
    /// Format of the file, when its extension does not say
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub input_type: Option<FileFormat>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Yaml,
    Json,
}

#[derive(Args, Debug)]
pub struct IdentityArgs {
    /// An age key file or an OpenSSH ed25519 private key (repeatable);
    /// default: `SOPS_AGE_KEY_FILE`, then `SOPS_AGE_KEY`
    #[arg(long = "identity", value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub identities: Vec<PathBuf>,
}

#[derive(Args, Debug)]
pub struct RecipientSourceArgs {
    /// An age X25519 recipient (`age1…`); repeatable
    #[arg(short = 'r', long = "recipient", value_name = "AGE1…")]
    pub recipients: Vec<String>,
    /// A host's `ssh-ed25519` public key file, converted as sops-nix does; repeatable
    #[arg(long = "recipient-ssh", value_name = "HOST_KEY.pub", value_hint = ValueHint::FilePath)]
    pub recipient_ssh: Vec<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ConfigArgs {
    /// The `.sops.yaml` to use instead of searching upward from the working directory
    #[arg(long, value_name = "PATH", value_hint = ValueHint::FilePath)]
    pub config: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct EncryptArgs {
    /// The plaintext file
    #[arg(value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub file: PathBuf,
    #[command(flatten)]
    pub recipients: RecipientSourceArgs,
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Match creation rules and infer the format as if the file had this path
    #[arg(long, value_name = "PATH")]
    pub filename_override: Option<PathBuf>,
    #[command(flatten)]
    pub format: InputTypeArgs,
    /// Replace FILE with its encrypted form (checked, then renamed into place)
    #[arg(short = 'i', long, conflicts_with = "output")]
    pub in_place: bool,
    /// Write the encrypted file here instead of stdout
    #[arg(short = 'o', long, value_name = "PATH", value_hint = ValueHint::FilePath)]
    pub output: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct DecryptArgs {
    /// The encrypted file
    #[arg(value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub file: PathBuf,
    #[command(flatten)]
    pub identity: IdentityArgs,
    /// Print only this value, in sops' syntax: `["tls"]["key"]`
    #[arg(long, value_name = "PATH")]
    pub extract: Option<String>,
    #[command(flatten)]
    pub format: InputTypeArgs,
    /// Print the plaintext in this format (default: the file's own)
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub output_type: Option<FileFormat>,
}

#[derive(Args, Debug)]
pub struct SetArgs {
    /// The encrypted file
    #[arg(value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub file: PathBuf,
    /// Where to set the value, in sops' syntax: `["tls"]["key"]`
    #[arg(value_name = "PATH")]
    pub path: String,
    /// Set the empty string when standard input is empty (refused otherwise:
    /// an empty input is usually a pipe that failed)
    #[arg(long)]
    pub allow_empty: bool,
    #[command(flatten)]
    pub identity: IdentityArgs,
    #[command(flatten)]
    pub format: InputTypeArgs,
}

#[derive(Args, Debug)]
pub struct UpdatekeysArgs {
    /// The encrypted file
    #[arg(value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub file: PathBuf,
    #[command(flatten)]
    pub identity: IdentityArgs,
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub format: InputTypeArgs,
    /// Show the recipient changes without writing
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub report: fromgit_cli::FormatArgs,
}

#[derive(Args, Debug)]
pub struct RotateArgs {
    /// The encrypted file
    #[arg(value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub file: PathBuf,
    #[command(flatten)]
    pub identity: IdentityArgs,
    /// Add this age recipient; repeatable
    #[arg(long = "add-recipient", value_name = "AGE1…")]
    pub add: Vec<String>,
    /// Remove this age recipient; repeatable
    #[arg(long = "rm-recipient", value_name = "AGE1…")]
    pub remove: Vec<String>,
    /// Take the recipients from the matching creation rule (sync and rotate in one step)
    #[arg(long, conflicts_with_all = ["add", "remove"])]
    pub sync_rules: bool,
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub format: InputTypeArgs,
    /// Show the recipient changes without writing
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub report: fromgit_cli::FormatArgs,
}

#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// The key file to create (refused if it exists)
    #[arg(short = 'o', long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub output: PathBuf,
    #[command(flatten)]
    pub report: fromgit_cli::FormatArgs,
}

#[derive(Args, Debug)]
pub struct RecipientArgs {
    /// The host's `ssh-ed25519` public key file (`-` for stdin)
    #[arg(long = "ssh", value_name = "HOST_KEY.pub", value_hint = ValueHint::FilePath)]
    pub ssh: PathBuf,
    #[command(flatten)]
    pub report: fromgit_cli::ReportArgs,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_dns_names_in_lower_case() {
        assert_eq!(
            parse_domain("CI.Example.NET."),
            Ok("ci.example.net".to_owned())
        );
        for bad in [
            "",
            ".",
            "localhost",
            "a..b",
            "-a.b",
            "a.b-",
            "a b.c",
            "203.0.113.7",
            "a/b.c",
            "é.org",
        ] {
            assert!(parse_domain(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_domain(&format!("{}.org", "a".repeat(64))).is_err());
    }
}
