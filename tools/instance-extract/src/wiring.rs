//! The sops-nix side of the split: which key sops-nix decrypts with on the
//! host, and who may read each secret.
//!
//! A freshly built host holds only the bootstrap key. Left to its defaults,
//! sops-nix decrypts with the host's new SSH keys when OpenSSH is enabled
//! (no secret is encrypted to them) and with nothing otherwise, so the
//! instance module names the key file and empties the SSH key lists. A
//! secret's reader is found where the monolith used the file: the service
//! that reads it as its own user gets it, and a unit reading it at start is
//! restarted when it changes; an owner that neither the configuration nor
//! NixOS declares is never written (sops-nix's `group` default would fail).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use rnix::{SyntaxKind, SyntaxNode};
use serde::Serialize;

use fromgit_nix::literal::string as nix_string;

use crate::nixsrc::{Finding, FindingKind, NixFile};
use crate::rewrite;

/// Where `docs/install.md` puts the bootstrap key on the host.
pub const DEFAULT_KEY_FILE: &str = "/var/lib/sops-nix/key.txt";
/// The host key sops-nix converts to an age identity with host-key decryption.
pub const HOST_ED25519_KEY: &str = "/etc/ssh/ssh_host_ed25519_key";

/// How the host decrypts: the bootstrap key file, and optionally its SSH host key.
#[derive(Debug, Clone)]
pub struct KeyWiring {
    pub key_file: String,
    pub host_key_decryption: bool,
}

impl Default for KeyWiring {
    fn default() -> Self {
        KeyWiring {
            key_file: DEFAULT_KEY_FILE.to_owned(),
            host_key_decryption: false,
        }
    }
}

/// What the command line says about sops-nix.
#[derive(Debug, Clone, Default)]
pub struct SopsRequest {
    pub keys: KeyWiring,
    pub overrides: Vec<SecretOverride>,
}

/// One `--secret-attr NAME:KEY=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretOverride {
    pub secret: String,
    pub setting: Setting,
}

/// A secret setting the operator may override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Setting {
    Owner(String),
    Group(String),
    Mode(String),
    RestartUnit(String),
    ReloadUnit(String),
}

/// Parses `NAME:KEY=VALUE` (`owner`, `group`, `mode`, `restartUnits`, `reloadUnits`).
pub fn parse_override(text: &str) -> Result<SecretOverride, String> {
    let (secret, rest) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("`{text}` is not `NAME:KEY=VALUE`"))?;
    let (key, value) = rest
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not `NAME:KEY=VALUE`"))?;
    let name_ok = |v: &str| {
        !v.is_empty()
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
    };
    if secret.is_empty() {
        return Err(format!("`{text}` names no secret"));
    }
    let setting = match key {
        "owner" | "group" if !name_ok(value) => {
            return Err(format!("`{value}` is not a user or group name"))
        }
        "owner" => Setting::Owner(value.to_owned()),
        "group" => Setting::Group(value.to_owned()),
        "mode" => {
            let octal =
                (3..=4).contains(&value.len()) && value.chars().all(|c| ('0'..='7').contains(&c));
            if !octal {
                return Err(format!("`{value}` is not an octal mode such as `0440`"));
            }
            Setting::Mode(value.to_owned())
        }
        "restartUnits" | "reloadUnits" if !name_ok(value) => {
            return Err(format!("`{value}` is not a unit name"))
        }
        "restartUnits" => Setting::RestartUnit(value.to_owned()),
        "reloadUnits" => Setting::ReloadUnit(value.to_owned()),
        _ => {
            return Err(format!(
                "`{key}` is not one of `owner`, `group`, `mode`, `restartUnits`, `reloadUnits`"
            ))
        }
    };
    Ok(SecretOverride {
        secret: secret.to_owned(),
        setting,
    })
}

/// The lines of the instance module that choose sops-nix's key sources.
pub fn key_lines(keys: &KeyWiring, indent: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{indent}# The bootstrap key, put on the host by hand (fromgit's docs/install.md)."
    );
    let _ = writeln!(
        out,
        "{indent}sops.age.keyFile = {};",
        nix_string(&keys.key_file)
    );
    if keys.host_key_decryption {
        let _ = writeln!(
            out,
            "{indent}# Also the host's own key: its age recipient is in `.sops.yaml`."
        );
        let _ = writeln!(
            out,
            "{indent}sops.age.sshKeyPaths = [ {} ];",
            nix_string(HOST_ED25519_KEY)
        );
    } else {
        let _ = writeln!(
            out,
            "{indent}# Not the host's SSH keys: on a new host they are new, nothing is encrypted to them."
        );
        let _ = writeln!(out, "{indent}sops.age.sshKeyPaths = [ ];");
    }
    let _ = writeln!(out, "{indent}sops.gnupg.sshKeyPaths = [ ];");
    let _ = writeln!(out, "{indent}sops.age.generateKey = false;");
    out
}

/// The instance repo's `flake.nix`.
pub fn instance_flake(name: &str, keys: &KeyWiring) -> String {
    format!(
        "{{\n  description = \"Private instance data for {}\";\n\n  outputs = {{ self }}: {{\n    \
         nixosModules.instance = {{ ... }}: {{\n      {}.instance = import ./instance.nix;\n      \
         sops.defaultSopsFile = ./secrets/secrets.yaml;\n{}    }};\n  }};\n}}\n",
        name.replace('"', ""),
        rewrite::attr_name(name),
        key_lines(keys, "      ")
    )
}

/// A moved secret's sops-nix settings, and where the monolith used it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SecretSettings {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub restart_units: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reload_units: Vec<String>,
    /// The options that read the file in the monolith.
    pub used_at: Vec<String>,
}

/// A service whose NixOS module reads files as its own user.
struct ServiceRule {
    service: &'static str,
    user: &'static str,
    restart: Option<&'static str>,
    reload: Option<&'static str>,
}

/// The services whose NixOS module declares a system user (of the same
/// name) when enabled with its defaults.
const SERVICES: &[ServiceRule] = &[
    ServiceRule {
        service: "nginx",
        user: "nginx",
        restart: None,
        reload: Some("nginx.service"),
    },
    ServiceRule {
        service: "traefik",
        user: "traefik",
        restart: Some("traefik.service"),
        reload: None,
    },
    ServiceRule {
        service: "webhook",
        user: "webhook",
        restart: Some("webhook.service"),
        reload: None,
    },
];

/// What the base's Nix source declares, read statically (no evaluation).
#[derive(Default)]
struct Declarations {
    /// Users with a group (or `isNormalUser`, whose group is `users`).
    users: BTreeSet<String>,
    /// Services with `enable = true`.
    enabled: BTreeSet<String>,
}

/// The attribute path of every binding around `node`, outermost first,
/// without quotes.
fn full_path(node: &SyntaxNode) -> Vec<String> {
    let mut parts: Vec<String> = node
        .ancestors()
        .filter(|n| n.kind() == SyntaxKind::NODE_ATTRPATH_VALUE)
        .map(|n| rewrite::binding_path(&n).replace('"', ""))
        .collect();
    parts.reverse();
    parts
        .join(".")
        .split('.')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn declarations(files: &[NixFile]) -> Declarations {
    let mut found = Declarations::default();
    for file in files {
        for binding in file
            .root
            .descendants()
            .filter(|n| n.kind() == SyntaxKind::NODE_ATTRPATH_VALUE)
        {
            let path = full_path(&binding);
            let value = rewrite::binding_value(&binding)
                .map(|v| v.text().to_string())
                .unwrap_or_default();
            let is_true = value.trim() == "true";
            match path.iter().map(String::as_str).collect::<Vec<_>>()[..] {
                ["users", "users", user, "group"] => {
                    found.users.insert(user.to_owned());
                }
                ["users", "users", user, "isNormalUser"] if is_true => {
                    found.users.insert(user.to_owned());
                }
                ["services", service, "enable"] if is_true => {
                    found.enabled.insert(service.to_owned());
                }
                _ => {}
            }
        }
    }
    found
}

/// The option path at which a finding sits in its file.
fn use_path(files: &[NixFile], finding: &Finding) -> Option<Vec<String>> {
    let file = files.iter().find(|f| f.relative == finding.file)?;
    let token = file
        .root
        .token_at_offset(finding.range.start())
        .right_biased()?;
    let parent = token.parent()?;
    Some(full_path(&parent))
}

/// Derives each moved secret's owner and units from where the monolith used
/// it, applies the operator's overrides, and says what to declare when the
/// reader's user is not declared.
pub fn secret_settings(
    files: &[NixFile],
    findings: &[Finding],
    secrets: &[(String, String)],
    overrides: &[SecretOverride],
) -> (Vec<SecretSettings>, Vec<String>) {
    let declared = declarations(files);
    let mut notes = Vec::new();
    let mut all = Vec::new();
    for (name, _) in secrets {
        let mut settings = SecretSettings {
            name: name.clone(),
            ..SecretSettings::default()
        };
        let uses: Vec<Vec<String>> = findings
            .iter()
            .filter(|f| f.kind == FindingKind::SecretPath && f.secret.as_deref() == Some(name))
            .filter_map(|f| use_path(files, f))
            .collect();
        settings.used_at = uses.iter().map(|p| p.join(".")).collect();
        for path in &uses {
            derive_from_use(name, path, &declared, &mut settings, &mut notes);
        }
        for o in overrides.iter().filter(|o| &o.secret == name) {
            match &o.setting {
                Setting::Owner(owner) => {
                    settings.owner = (owner != "root").then(|| owner.clone());
                    if owner != "root" && !is_declared(owner, &declared) {
                        notes.push(format!(
                            "secret `{name}`: owner `{owner}` is not declared by the base; declare `users.users.{owner}` with a `group`, or sops-nix fails to evaluate"
                        ));
                    }
                }
                Setting::Group(group) => settings.group = Some(group.clone()),
                Setting::Mode(mode) => settings.mode = Some(mode.clone()),
                Setting::RestartUnit(unit) => push_unique(&mut settings.restart_units, unit),
                Setting::ReloadUnit(unit) => push_unique(&mut settings.reload_units, unit),
            }
        }
        all.push(settings);
    }
    for o in overrides {
        if !secrets.iter().any(|(name, _)| name == &o.secret) {
            notes.push(format!(
                "`--secret-attr {}:…` names no `--secret`; ignored",
                o.secret
            ));
        }
    }
    (all, notes)
}

fn is_declared(user: &str, declared: &Declarations) -> bool {
    user == "root"
        || declared.users.contains(user)
        || SERVICES
            .iter()
            .any(|s| s.user == user && declared.enabled.contains(s.service))
}

fn push_unique(list: &mut Vec<String>, unit: &str) {
    if !list.iter().any(|u| u == unit) {
        list.push(unit.to_owned());
    }
}

fn derive_from_use(
    name: &str,
    path: &[String],
    declared: &Declarations,
    settings: &mut SecretSettings,
    notes: &mut Vec<String>,
) {
    let parts: Vec<&str> = path.iter().map(String::as_str).collect();
    let at = path.join(".");
    match parts[..] {
        // A systemd `EnvironmentFile` is read by systemd itself, as root,
        // when the unit starts.
        ["systemd", "services", unit, "serviceConfig", "EnvironmentFile", ..] => {
            push_unique(&mut settings.restart_units, &format!("{unit}.service"));
        }
        ["services", service, ..] => {
            let rule = SERVICES.iter().find(|r| r.service == service);
            let user = rule.map_or(service, |r| r.user);
            if is_declared(user, declared) {
                if settings.owner.as_deref().is_some_and(|o| o != user) {
                    notes.push(format!(
                        "secret `{name}` is read by two services (`{at}` and another); it keeps owner `{}`: override with `--secret-attr {name}:owner=USER`",
                        settings.owner.as_deref().unwrap_or("root")
                    ));
                    return;
                }
                settings.owner = Some(user.to_owned());
                if let Some(rule) = rule {
                    settings
                        .restart_units
                        .extend(rule.restart.map(str::to_owned));
                    settings.reload_units.extend(rule.reload.map(str::to_owned));
                }
            } else {
                let enable = if rule.is_some() {
                    format!("`services.{service}.enable = true` or ")
                } else {
                    String::new()
                };
                notes.push(format!(
                    "secret `{name}` is read at `{at}`, probably as user `{user}`, which the base does not declare: it stays root-only; declare {enable}`users.users.{user}` with a `group`, then pass `--secret-attr {name}:owner={user}`"
                ));
            }
        }
        _ => {}
    }
}

/// The human report's lines on who reads each secret.
pub fn settings_report(settings: &[SecretSettings]) -> String {
    let mut text = String::new();
    for s in settings {
        let mut parts = vec![format!("owner {}", s.owner.as_deref().unwrap_or("root"))];
        parts.extend(s.group.as_ref().map(|g| format!("group {g}")));
        parts.push(format!("mode {}", s.mode.as_deref().unwrap_or("0400")));
        if !s.restart_units.is_empty() {
            parts.push(format!("restarts {}", s.restart_units.join(" ")));
        }
        if !s.reload_units.is_empty() {
            parts.push(format!("reloads {}", s.reload_units.join(" ")));
        }
        let used = if s.used_at.is_empty() {
            String::new()
        } else {
            format!(" (read at {})", s.used_at.join(", "))
        };
        let _ = writeln!(text, "  {}: {}{used}", s.name, parts.join(", "));
    }
    text
}

/// One `sops.secrets` entry of the generated options module.
pub fn secret_entry(name: &str, path: &str, settings: Option<&SecretSettings>) -> String {
    let mut fields = vec![format!("path = {};", nix_string(path))];
    if let Some(s) = settings {
        if let Some(owner) = &s.owner {
            fields.push(format!("owner = {};", nix_string(owner)));
        }
        if let Some(group) = &s.group {
            fields.push(format!("group = {};", nix_string(group)));
        }
        if let Some(mode) = &s.mode {
            fields.push(format!("mode = {};", nix_string(mode)));
        }
        for (key, units) in [
            ("restartUnits", &s.restart_units),
            ("reloadUnits", &s.reload_units),
        ] {
            if !units.is_empty() {
                let list: Vec<String> = units.iter().map(|u| nix_string(u)).collect();
                fields.push(format!("{key} = [ {} ];", list.join(" ")));
            }
        }
    }
    format!("    {} = {{ {} }};", nix_string(name), fields.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_parse_and_bad_ones_are_refused() {
        assert_eq!(
            parse_override("tls/key:owner=nginx"),
            Ok(SecretOverride {
                secret: "tls/key".into(),
                setting: Setting::Owner("nginx".into())
            })
        );
        assert_eq!(
            parse_override("a:mode=0440").map(|o| o.setting),
            Ok(Setting::Mode("0440".into()))
        );
        assert!(parse_override("a:mode=0999").is_err());
        assert!(parse_override("a:owner=ng inx").is_err());
        assert!(parse_override("a:colour=red").is_err());
        assert!(parse_override("owner=nginx").is_err());
    }

    fn settings_for(source: &str, secret: &str) -> (Vec<SecretSettings>, Vec<String>) {
        let base = std::path::Path::new("/base");
        let file = NixFile::parse(base, "configuration.nix".into(), source.to_owned())
            .expect("fixture parses");
        let secrets = vec![(secret.to_owned(), "/var/lib/s/file".to_owned())];
        let needles = crate::nixsrc::Needles {
            domain: "example.invalid",
            secrets: &secrets,
        };
        let findings = crate::nixsrc::scan(&file, &needles);
        secret_settings(&[file], &findings, &secrets, &[])
    }

    #[test]
    fn an_enabled_nginx_gets_its_certificate_and_an_environment_file_restarts_its_unit() {
        let (settings, notes) = settings_for(
            "{ ... }: { services.nginx = { enable = true; virtualHosts.\"x\".sslCertificateKey = \"/var/lib/s/file\"; }; }",
            "tls/key",
        );
        assert_eq!(settings[0].owner.as_deref(), Some("nginx"));
        assert_eq!(settings[0].reload_units, ["nginx.service"]);
        assert!(notes.is_empty(), "{notes:?}");
        let (settings, _) = settings_for(
            "{ ... }: { systemd.services.app.serviceConfig.EnvironmentFile = \"/var/lib/s/file\"; }",
            "app/env",
        );
        assert_eq!(settings[0].owner, None);
        assert_eq!(settings[0].restart_units, ["app.service"]);
    }

    #[test]
    fn an_undeclared_reader_is_reported_not_written() {
        let (settings, notes) = settings_for(
            "{ ... }: { services.traefik.dynamicConfigOptions.tls.certificates = [ { keyFile = \"/var/lib/s/file\"; } ]; }",
            "tls/key",
        );
        assert_eq!(settings[0].owner, None);
        assert!(
            notes.iter().any(|n| n.contains("services.traefik.enable")),
            "{notes:?}"
        );
    }
}
