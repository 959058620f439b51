//! The one configuration file, `vm-prove.toml`. Everything a run touches is
//! named here (server, project, image, the one secret, the runbook, the
//! checks), so that a reviewer can read what a proof will do before it runs.
//! Relative paths are resolved against the directory of the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("Failed to read the configuration")]
    Read(#[from] std::io::Error),
    /// The TOML did not parse or did not match the schema.
    #[error("Invalid configuration `{path}`: {message}")]
    Parse { path: String, message: String },
    /// A value parsed but makes no sense.
    #[error("Invalid configuration `{path}`: {message}")]
    Invalid { path: String, message: String },
}

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

/// A duration, written `"120s"`, `"15m"` or `"2h"` (a bare integer is read
/// as seconds, for configurations written before the units).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub struct Seconds(pub u64);

impl Seconds {
    pub fn duration(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.0)
    }
}

impl From<Seconds> for String {
    fn from(s: Seconds) -> String {
        s.to_string()
    }
}

impl std::fmt::Display for Seconds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}s", self.0)
    }
}

impl std::str::FromStr for Seconds {
    type Err = String;

    fn from_str(text: &str) -> Result<Seconds, String> {
        let t = text.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (number, unit) = t.split_at(split);
        let bad = || format!("`{text}` is not a duration: write it as \"120s\", \"15m\" or \"2h\"");
        let n: u64 = number.parse().map_err(|_| bad())?;
        let factor = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            _ => return Err(bad()),
        };
        n.checked_mul(factor).map(Seconds).ok_or_else(bad)
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Seconds, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Bare(u64),
            Text(String),
        }
        match Written::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom("a duration is written \"120s\", \"15m\" or \"2h\"")
        })? {
            Written::Bare(n) => Ok(Seconds(n)),
            Written::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
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

fn default_root() -> String {
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

fn default_max_age() -> Seconds {
    Seconds(6 * 3600)
}

impl Config {
    /// Reads, parses and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = fs_err::read_to_string(path)?;
        let shown = path.display().to_string();
        let mut config: Config = toml::from_str(&text).map_err(|err| ConfigError::Parse {
            path: shown.clone(),
            message: located(&text, &err),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve(base);
        config.normalise().map_err(|message| ConfigError::Invalid {
            path: shown.clone(),
            message,
        })?;
        config.validate().map_err(|message| ConfigError::Invalid {
            path: shown,
            message,
        })?;
        Ok(config)
    }

    /// Earlier spellings (`secret.uid`/`gid`, `sweep.max_age_minutes`) in
    /// the one notation; both spellings at once is an error.
    fn normalise(&mut self) -> Result<(), String> {
        let secret = &mut self.secret;
        for (numeric, named, field) in [
            (secret.uid.take(), &mut secret.owner, "owner"),
            (secret.gid.take(), &mut secret.group, "group"),
        ] {
            if let Some(id) = numeric {
                if *named != default_root() {
                    return Err(format!(
                        "`secret.{field}` and its earlier numeric spelling are both set"
                    ));
                }
                *named = format!("#{id}");
            }
        }
        if let Some(minutes) = self.sweep.max_age_minutes.take() {
            if self.sweep.max_age != default_max_age() {
                return Err("`sweep.max_age` and `sweep.max_age_minutes` are both set".to_owned());
            }
            self.sweep.max_age = Seconds(minutes.saturating_mul(60));
        }
        Ok(())
    }

    fn resolve(&mut self, base: &Path) {
        for p in [
            &mut self.incus.client_cert,
            &mut self.incus.client_key,
            &mut self.incus.server_cert,
            &mut self.secret.source,
            &mut self.runbook.path,
            &mut self.evidence.dir,
        ]
        .into_iter()
        .chain(self.repos.iter_mut().map(|r| &mut r.path))
        .chain(self.checks.tls.iter_mut().map(|t| &mut t.sealed))
        .chain(
            self.checks
                .sops_secrets
                .iter_mut()
                .map(|s| &mut s.sops_file),
        ) {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }

    fn validate(&self) -> Result<(), String> {
        if !self.incus.url.starts_with("https://") {
            return Err(format!(
                "`incus.url` must be https://…, not `{}`",
                self.incus.url
            ));
        }
        if self.incus.project.is_empty() || !self.incus.project.chars().all(name_char) {
            return Err(format!(
                "`incus.project` `{}` is not a project name",
                self.incus.project
            ));
        }
        parse_size(&self.instance.memory).map_err(|e| format!("`instance.memory`: {e}"))?;
        parse_size(&self.guardrails.memory_budget)
            .map_err(|e| format!("`guardrails.memory_budget`: {e}"))?;
        parse_mode(&self.secret.mode).map_err(|e| format!("`secret.mode`: {e}"))?;
        if !self.secret.path.starts_with('/') {
            return Err(format!(
                "`secret.path` must be absolute, not `{}`",
                self.secret.path
            ));
        }
        if self.instance.name_prefix.is_empty()
            || !self.instance.name_prefix.chars().all(name_char)
            || !self
                .instance
                .name_prefix
                .starts_with(|c: char| c.is_ascii_alphabetic())
        {
            return Err(
                "`instance.name_prefix` must be letters, digits and `-`, starting with a letter"
                    .to_owned(),
            );
        }
        if self.guardrails.allowed_projects.is_empty() {
            return Err("`guardrails.allowed_projects` must name at least one project".to_owned());
        }
        if self.guardrails.allowed_name_prefixes.is_empty()
            || self
                .guardrails
                .allowed_name_prefixes
                .iter()
                .any(|p| p.is_empty() || !p.chars().all(name_char))
        {
            return Err(
                "`guardrails.allowed_name_prefixes` must name at least one prefix (letters, digits, `-`)"
                    .to_owned(),
            );
        }
        if let Some(resize) = &self.guardrails.resize {
            parse_size(&resize.memory).map_err(|e| format!("`guardrails.resize.memory`: {e}"))?;
            if resize.instance.is_empty() || !resize.instance.chars().all(name_char) {
                return Err(format!(
                    "`guardrails.resize.instance` `{}` is not an instance name",
                    resize.instance
                ));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for repo in &self.repos {
            if repo.name.is_empty() || !repo.name.chars().all(name_char) {
                return Err(format!(
                    "`repos` name `{}` must be letters, digits, `-` and `_`",
                    repo.name
                ));
            }
            if !names.insert(repo.name.as_str()) {
                return Err(format!("`repos` name `{}` appears twice", repo.name));
            }
            if repo.rev.is_empty() || repo.rev.starts_with('-') {
                return Err(format!("`repos` `{}`: `rev` must name a ref", repo.name));
            }
        }
        if let Some(toplevel) = &self.checks.current_system {
            if !toplevel.starts_with('/') || toplevel.contains(char::is_whitespace) {
                return Err(format!(
                    "`checks.current_system` must be an absolute store path, not `{toplevel}`"
                ));
            }
        }
        for tls in &self.checks.tls {
            if tls.host_port().is_none() {
                return Err(format!(
                    "`checks.tls` address `{}` must be `host:port`",
                    tls.address
                ));
            }
        }
        for (field, owner) in [
            ("secret.owner", &self.secret.owner),
            ("secret.group", &self.secret.group),
        ] {
            parse_owner(owner).map_err(|e| format!("`{field}`: {e}"))?;
        }
        for check in &self.checks.sops_secrets {
            let name_ok = !check.name.is_empty()
                && !check.name.starts_with('/')
                && check.name.split('/').all(|part| {
                    !part.is_empty()
                        && part != ".."
                        && part.chars().all(|c| {
                            c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | '+')
                        })
                });
            if !name_ok {
                return Err(format!(
                    "`checks.sops_secrets` name `{}` is not a sops-nix secret name",
                    check.name
                ));
            }
            parse_mode(&check.mode)
                .map_err(|e| format!("`checks.sops_secrets` `{}`: {e}", check.name))?;
            for owner in [&check.owner, &check.group] {
                parse_owner(owner)
                    .map_err(|e| format!("`checks.sops_secrets` `{}`: {e}", check.name))?;
            }
        }
        for check in &self.checks.secrets {
            parse_mode(&check.mode)
                .map_err(|e| format!("`checks.secrets` `{}`: {e}", check.path))?;
            for owner in [&check.owner, &check.group] {
                parse_owner(owner)
                    .map_err(|e| format!("`checks.secrets` `{}`: {e}", check.path))?;
            }
            if check.path == self.secret.path {
                // The pushed key, listed again: one check, so both must agree.
                let same = parse_mode(&check.mode) == parse_mode(&self.secret.mode)
                    && check.owner == self.secret.owner
                    && check.group == self.secret.group;
                if !same {
                    return Err(format!(
                        "`checks.secrets` `{}` is the pushed key: its owner, group and mode ({} {} {}) must be those of `[secret]` ({} {} {})",
                        check.path,
                        check.owner,
                        check.group,
                        check.mode,
                        self.secret.owner,
                        self.secret.group,
                        self.secret.mode
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A parse error with the line it is on, so the message names the field.
fn located(text: &str, err: &toml::de::Error) -> String {
    let Some(span) = err.span() else {
        return err.message().to_owned();
    };
    let start = span.start.min(text.len());
    let line_no = text[..start].matches('\n').count() + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or_default().trim();
    format!("line {line_no} (`{line}`): {}", err.message())
}

/// An owner or group: a name, or `#<numeric id>`.
pub fn parse_owner(text: &str) -> Result<Owner, String> {
    if let Some(id) = text.strip_prefix('#') {
        return id
            .parse()
            .map(Owner::Id)
            .map_err(|_| format!("`{text}` is neither a name nor `#<numeric id>`"));
    }
    let valid = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !text.starts_with('-');
    if valid {
        Ok(Owner::Name(text.to_owned()))
    } else {
        Err(format!("`{text}` is neither a name nor `#<numeric id>`"))
    }
}

/// A user or group as written in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    Name(String),
    Id(u32),
}

fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// Parses an Incus memory size (`512MiB`, `2GiB`, `1GB`, `1073741824`) into bytes.
/// Percentages are refused: they cannot be added up against a budget.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if t.ends_with('%') {
        return Err(format!("`{t}` is a percentage, which cannot be budgeted"));
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{t}` is not a memory size"))?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "kB" | "KB" => 1000,
        "MB" => 1000_u64.pow(2),
        "GB" => 1000_u64.pow(3),
        "TB" => 1000_u64.pow(4),
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        other => return Err(format!("`{t}`: unknown unit `{other}`")),
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("`{t}` is too large"))
}

/// Parses an octal mode string (`"0600"`, `"600"`) into its bits.
pub fn parse_mode(text: &str) -> Result<u32, String> {
    let m = u32::from_str_radix(text.trim(), 8)
        .map_err(|_| format!("`{text}` is not an octal mode"))?;
    if m > 0o7777 {
        return Err(format!("`{text}` is not a file mode"));
    }
    Ok(m)
}

/// Renders bytes the way Incus writes them, for messages and evidence.
pub fn human_size(bytes: u64) -> String {
    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;
    if bytes == 0 {
        "0B".to_owned()
    } else if bytes % GIB == 0 {
        format!("{}GiB", bytes / GIB)
    } else if bytes % MIB == 0 {
        format!("{}MiB", bytes / MIB)
    } else {
        format!("{bytes}B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("50%").is_err());
        assert!(parse_size("lots").is_err());
        assert!(parse_size("1XB").is_err());
        assert_eq!(human_size(3 << 30), "3GiB");
        assert_eq!(human_size(1536 << 20), "1536MiB");
    }

    #[test]
    fn durations_in_one_notation() {
        assert_eq!("120s".parse(), Ok(Seconds(120)));
        assert_eq!("15m".parse(), Ok(Seconds(900)));
        assert_eq!("2h".parse(), Ok(Seconds(7200)));
        assert!("120".parse::<Seconds>().is_err());
        assert!("2 min".parse::<Seconds>().is_err());
        assert_eq!(Seconds(90).to_string(), "90s");
    }

    #[test]
    fn owners() {
        assert_eq!(parse_owner("nginx"), Ok(Owner::Name("nginx".to_owned())));
        assert_eq!(parse_owner("#0"), Ok(Owner::Id(0)));
        assert!(parse_owner("#x").is_err());
        assert!(parse_owner("a b").is_err());
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("0600"), Ok(0o600));
        assert_eq!(parse_mode("600"), Ok(0o600));
        assert!(parse_mode("0800").is_err());
        assert!(parse_mode("77777").is_err());
    }

    #[test]
    fn a_minimal_file_loads_with_paths_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("vm-prove.toml");
        fs_err::write(
            &file,
            r#"
[incus]
url = "https://127.0.0.1:8443"
project = "fromgit-ci"
client_cert = "client.crt"
client_key = "client.key"
server_cert = "server.crt"

[instance]
image = "debian"
memory = "1GiB"

[guardrails]
allowed_projects = ["fromgit-ci"]
allowed_name_prefixes = ["vmprove"]
memory_budget = "4GiB"

[secret]
source = "bootstrap.txt"

[runbook]
path = "install.md"
"#,
        )
        .unwrap();
        let config = Config::load(&file).unwrap();
        assert_eq!(config.incus.client_cert, dir.path().join("client.crt"));
        assert_eq!(config.secret.path, "/var/lib/sops-nix/key.txt");
        assert_eq!(config.instance.kind, InstanceType::Container);
        assert_eq!(config.evidence.dir, dir.path().join("vm-prove-evidence"));
        assert_eq!(config.secret.owner, "root");
        assert_eq!(config.instance.ready_timeout, Seconds(120));
    }

    fn load_with(extra: &str) -> Result<Config, String> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("vm-prove.toml");
        let mut text = String::from(
            "[incus]\nurl = \"https://127.0.0.1:8443\"\nproject = \"p\"\nclient_cert = \"c\"\nclient_key = \"k\"\nserver_cert = \"s\"\n\
             [instance]\nimage = \"i\"\nmemory = \"1GiB\"\nready_timeout = READY\n\
             [guardrails]\nallowed_projects = [\"p\"]\nallowed_name_prefixes = [\"vmprove\"]\nmemory_budget = \"4GiB\"\n\
             [secret]\nsource = \"b\"\nSECRET\n[runbook]\npath = \"r\"\n[sweep]\nSWEEP\n[checks]\nCHECKS\n"
        );
        for entry in extra.split(";;").filter(|e| !e.is_empty()) {
            let (slot, value) = entry.split_once('|').unwrap();
            text = text.replace(slot, value);
        }
        for slot in ["SECRET", "SWEEP", "CHECKS"] {
            text = text.replace(slot, "");
        }
        let text = text.replace("READY", "\"90s\"");
        fs_err::write(&file, text).unwrap();
        Config::load(&file).map_err(|e| e.to_string())
    }

    #[test]
    fn durations_owners_and_the_key_listed_twice() {
        let c = load_with("").unwrap();
        assert_eq!(c.instance.ready_timeout, Seconds(90));
        assert_eq!(c.sweep.max_age, Seconds(6 * 3600));
        // Bare integers are seconds, for configurations written before the units.
        let c = load_with("READY|120").unwrap();
        assert_eq!(c.instance.ready_timeout, Seconds(120));
        let err = load_with("READY|\"120x\"").unwrap_err();
        assert!(
            err.contains("`ready_timeout = \"120x\"`") && err.contains("not a duration"),
            "{err}"
        );
        let c = load_with("SWEEP|max_age_minutes = 30;;SECRET|uid = 1000\ngid = 100").unwrap();
        assert_eq!(c.sweep.max_age, Seconds(1800));
        assert_eq!(
            (c.secret.owner.as_str(), c.secret.group.as_str()),
            ("#1000", "#100")
        );
        let err = load_with("SECRET|owner = \"admin\"\nuid = 1000").unwrap_err();
        assert!(err.contains("`secret.owner`"), "{err}");
        let err = load_with("SECRET|owner = \"a b\"").unwrap_err();
        assert!(err.contains("`secret.owner`"), "{err}");
        // The pushed key listed in checks.secrets: fine when it agrees, an error when not.
        let same = "CHECKS|secrets = [{ path = \"/var/lib/sops-nix/key.txt\", mode = \"0600\" }]";
        assert!(load_with(same).is_ok());
        let err = load_with(&same.replace("0600", "0400")).unwrap_err();
        assert!(err.contains("is the pushed key"), "{err}");
    }

    #[test]
    fn unknown_fields_and_bad_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        fs_err::write(&file, "[incus]\nurl = \"http://x\"\nbogus = 1\n").unwrap();
        let err = Config::load(&file).unwrap_err().to_string();
        assert!(err.contains("bogus") || err.contains("unknown"), "{err}");
    }
}
