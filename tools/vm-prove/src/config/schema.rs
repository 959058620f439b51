//! The shape of `vm-prove.toml`: one struct per section, with the default a
//! missing field takes. Unknown fields are refused, so a typo is never a silent default.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::values::Seconds;

/// The whole file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub incus: IncusConfig,
    pub instance: InstanceConfig,
    pub guardrails: Guardrails,
    pub secret: SecretConfig,
    pub runbook: RunbookConfig,
    /// Local git checkouts pushed into the instance as bundles.
    #[serde(default)]
    pub repos: Vec<RepoConfig>,
    #[serde(default)]
    pub checks: ChecksConfig,
    #[serde(default)]
    pub evidence: EvidenceConfig,
    #[serde(default)]
    pub sweep: SweepConfig,
}

/// How to reach the Incus (or LXD) server.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IncusConfig {
    /// `https://host:port` of the server's REST API.
    pub url: String,
    /// The one project vm-prove may touch.
    pub project: String,
    /// PEM client certificate trusted by the server.
    pub client_cert: PathBuf,
    /// PEM private key of the client certificate.
    pub client_key: PathBuf,
    /// PEM server certificate, pinned: the server must present exactly this certificate.
    pub server_cert: PathBuf,
    /// Optional SOCKS5 proxy, e.g. `socks5h://127.0.0.1:1055`.
    #[serde(default)]
    pub proxy: Option<String>,
    /// Ordinary requests (long-polls on operations are not bounded by it).
    #[serde(default = "default_request_timeout")]
    pub request_timeout: Seconds,
}

fn default_request_timeout() -> Seconds {
    Seconds(30)
}

/// Instance kind, as Incus names it.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceType {
    Container,
    VirtualMachine,
}

impl InstanceType {
    pub fn api_name(self) -> &'static str {
        match self {
            InstanceType::Container => "container",
            InstanceType::VirtualMachine => "virtual-machine",
        }
    }
}

/// The throwaway instance.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceConfig {
    /// Image alias or fingerprint, visible to the project.
    pub image: String,
    #[serde(rename = "type", default = "default_type")]
    pub kind: InstanceType,
    /// `limits.memory` of the new instance (e.g. `2GiB`); required, it enters the memory budget.
    pub memory: String,
    /// `limits.cpu`, optional.
    #[serde(default)]
    pub cpu: Option<u32>,
    /// Profiles to apply.
    #[serde(default = "default_profiles")]
    pub profiles: Vec<String>,
    /// Instance names are `<prefix>-<run id>`.
    #[serde(default = "default_prefix")]
    pub name_prefix: String,
    /// How long to wait for the instance to be up (running, systemd settled).
    #[serde(default = "default_ready_timeout")]
    pub ready_timeout: Seconds,
}

fn default_type() -> InstanceType {
    InstanceType::Container
}
fn default_profiles() -> Vec<String> {
    vec!["default".to_owned()]
}
fn default_prefix() -> String {
    "vmprove".to_owned()
}
fn default_ready_timeout() -> Seconds {
    Seconds(120)
}

/// Limits checked before anything changes.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Guardrails {
    /// The only projects vm-prove may change anything in, whatever the
    /// client certificate permits.
    pub allowed_projects: Vec<String>,
    /// The only instance name prefixes vm-prove may create, change or
    /// delete (`<prefix>-…`), besides the one named `resize.instance`.
    pub allowed_name_prefixes: Vec<String>,
    /// The host's memory guideline for the project: the running instances'
    /// `limits.memory` plus the new instance's must stay within it.
    pub memory_budget: String,
    /// Optionally, make room first: one named instance gets a new
    /// `limits.memory` (stop, set, start, wait; no hotplug).
    #[serde(default)]
    pub resize: Option<Resize>,
}

/// The one instance vm-prove may change without having created it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Resize {
    pub instance: String,
    /// Its new `limits.memory`.
    pub memory: String,
    /// How long its clean shutdown may take; a host is never force-stopped.
    #[serde(default = "default_stop_timeout")]
    pub stop_timeout: Seconds,
}

fn default_stop_timeout() -> Seconds {
    Seconds(120)
}

/// The one secret pushed into the instance: the bootstrap age key.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SecretConfig {
    /// Local file holding the age identity (`AGE-SECRET-KEY-1…`).
    pub source: PathBuf,
    /// Absolute destination path inside the instance.
    #[serde(default = "default_secret_path")]
    pub path: String,
    /// Owner inside the instance: a user name, or `#<uid>`.
    #[serde(default = "default_root")]
    pub owner: String,
    /// Group inside the instance: a group name, or `#<gid>`.
    #[serde(default = "default_root")]
    pub group: String,
    /// Earlier spelling of `owner = "#<uid>"`.
    #[serde(default, skip_serializing)]
    pub uid: Option<u32>,
    /// Earlier spelling of `group = "#<gid>"`.
    #[serde(default, skip_serializing)]
    pub gid: Option<u32>,
    /// Octal mode, as a string (`"0600"`).
    #[serde(default = "default_secret_mode")]
    pub mode: String,
}

fn default_secret_path() -> String {
    "/var/lib/sops-nix/key.txt".to_owned()
}
fn default_secret_mode() -> String {
    "0600".to_owned()
}

/// The install runbook.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RunbookConfig {
    /// Markdown file whose `vm-prove=run` blocks are executed in order.
    pub path: PathBuf,
    /// Values for the `{{ name }}` placeholders in the blocks.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// Timeout of a block without `timeout=`.
    #[serde(default = "default_block_timeout")]
    pub default_timeout: Seconds,
}

fn default_block_timeout() -> Seconds {
    Seconds(600)
}

/// A local git checkout made available inside the instance as a git bundle
/// at `/var/lib/vm-prove/repos/<name>.bundle`; the runbook sees
/// `{{ repos.<name>.bundle }}` and `{{ repos.<name>.commit }}`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RepoConfig {
    /// Letters, digits, `-` and `_`.
    pub name: String,
    /// The local checkout.
    pub path: PathBuf,
    /// The ref to bundle: `HEAD`, a branch or a tag.
    #[serde(default = "default_rev")]
    pub rev: String,
}

fn default_rev() -> String {
    "HEAD".to_owned()
}

/// Where repository bundles land inside the instance.
pub const REPOS_DIR: &str = "/var/lib/vm-prove/repos";

/// Read-only checks after the runbook.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChecksConfig {
    /// Units that must have converged (a oneshot counts when it succeeded).
    #[serde(default)]
    pub units: Vec<String>,
    /// Secret files that must exist with this owner, group and mode.
    #[serde(default)]
    pub secrets: Vec<SecretCheck>,
    /// sops-nix secrets, by their NixOS name, that activation must have
    /// installed with this owner, group, mode and content.
    #[serde(default)]
    pub sops_secrets: Vec<SopsSecretCheck>,
    /// How long to wait for pending systemd jobs to drain.
    #[serde(default = "default_settle_timeout")]
    pub settle_timeout: Seconds,
    /// TLS endpoints that must serve the sealed certificate.
    #[serde(default)]
    pub tls: Vec<TlsCheck>,
    /// The toplevel `/run/current-system` must resolve to, e.g. the output of
    /// `nix build .#nixosConfigurations.<host>.config.system.build.toplevel`.
    #[serde(default)]
    pub current_system: Option<String>,
}

/// A TLS endpoint, reached from inside the instance (so the operator need
/// not route to it), that must serve the certificate sealed by cert-seal.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsCheck {
    /// `host:port` as seen from inside the instance.
    #[serde(default = "default_tls_address")]
    pub address: String,
    /// The name sent as SNI, e.g. `ci.example.org`.
    pub server_name: String,
    /// The sealed sops file written by `cert-seal seal`; only its clear
    /// certificate summary is read, no key is needed.
    pub sealed: PathBuf,
}

fn default_tls_address() -> String {
    "127.0.0.1:443".to_owned()
}

impl TlsCheck {
    /// Host and port of `address` (`[v6]:port` accepted).
    pub fn host_port(&self) -> Option<(&str, u16)> {
        let (host, port) = self.address.rsplit_once(':')?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let valid_host = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
        valid_host.then_some(())?;
        Some((host, port.parse().ok().filter(|p| *p > 0)?))
    }
}

fn default_settle_timeout() -> Seconds {
    Seconds(60)
}

/// A secret as sops-nix installs it: `sops.secrets.<name>` becomes
/// `/run/secrets/<name>`, a path inside the newest generation
/// `/run/secrets.d/<n>/` that `/run/secrets` links to, with the secret's
/// owner, group and mode, holding the value decrypted from its sops file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SopsSecretCheck {
    /// The attribute name in `sops.secrets` (may contain `/`).
    pub name: String,
    /// The sops file the value comes from, on this machine (the instance
    /// repo's); vm-prove decrypts it with the pushed key to compare hashes.
    pub sops_file: PathBuf,
    /// The value's key in that file, `/` between levels; the name by default,
    /// as in sops-nix.
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default = "default_root")]
    pub owner: String,
    #[serde(default = "default_root")]
    pub group: String,
    #[serde(default = "default_check_mode")]
    pub mode: String,
}

impl SopsSecretCheck {
    /// The key in the sops file.
    pub fn key(&self) -> &str {
        self.key.as_deref().unwrap_or(&self.name)
    }
}

/// One secret file expected after the runbook.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SecretCheck {
    pub path: String,
    #[serde(default = "default_root")]
    pub owner: String,
    #[serde(default = "default_root")]
    pub group: String,
    #[serde(default = "default_check_mode")]
    pub mode: String,
}

pub(super) fn default_root() -> String {
    "root".to_owned()
}
fn default_check_mode() -> String {
    "0400".to_owned()
}

/// Where the evidence goes.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceConfig {
    /// Directory for `<run id>.json` and `<run id>.md`.
    #[serde(default = "default_evidence_dir")]
    pub dir: PathBuf,
    /// Lines of each block's output kept in the evidence.
    #[serde(default = "default_tail_lines")]
    pub tail_lines: usize,
}

impl Default for EvidenceConfig {
    fn default() -> Self {
        EvidenceConfig {
            dir: default_evidence_dir(),
            tail_lines: default_tail_lines(),
        }
    }
}

fn default_evidence_dir() -> PathBuf {
    PathBuf::from("vm-prove-evidence")
}
fn default_tail_lines() -> usize {
    40
}

impl Default for ChecksConfig {
    fn default() -> Self {
        ChecksConfig {
            units: Vec::new(),
            secrets: Vec::new(),
            sops_secrets: Vec::new(),
            settle_timeout: default_settle_timeout(),
            tls: Vec::new(),
            current_system: None,
        }
    }
}

/// What `sweep` may delete.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SweepConfig {
    /// A tagged instance from another host counts as abandoned after this long.
    #[serde(default = "default_max_age")]
    pub max_age: Seconds,
    /// Earlier spelling of `max_age`, in minutes.
    #[serde(default, skip_serializing)]
    pub max_age_minutes: Option<u64>,
}

impl Default for SweepConfig {
    fn default() -> Self {
        SweepConfig {
            max_age: default_max_age(),
            max_age_minutes: None,
        }
    }
}

pub(super) fn default_max_age() -> Seconds {
    Seconds(6 * 3600)
}
