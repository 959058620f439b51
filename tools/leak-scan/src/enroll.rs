//! `leak-scan enroll`: decrypt an instance's sops files once, in memory, and
//! write the fingerprint file (see `known`). Also reads `instance.nix` for
//! the domain, subdomains, IP addresses and e-mail addresses. Decrypted
//! values stay in zeroizing buffers and are dropped when enrollment ends;
//! only key paths (never values) are logged, and only with `-v`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use fromgit_fs::walk::{IgnoreFiles, Kind, SkipName, Walk};
use fromgit_sops::detect;
use fromgit_sops::keys::Identities;
use fromgit_sops::value::PathStep;
use fromgit_sops::{EncryptedFile, Format, Map, Value};
use regex::Regex;

use crate::known::Enroller;

/// Public names an instance file may mention that are not instance data.
const PUBLIC_SUFFIXES: &[&str] = &[
    "nixos.org",
    "nixos.wiki",
    "github.com",
    "githubusercontent.com",
    "gitlab.com",
    "codeberg.org",
    "letsencrypt.org",
    "cachix.org",
    "gnu.org",
    "kernel.org",
    "gmail.com",
];

/// Things that look like host names in Nix but are file names.
const FILE_EXTENSIONS: &[&str] = &[
    "nix", "yaml", "yml", "json", "toml", "txt", "pem", "key", "crt", "age", "sh", "conf", "md",
    "lock", "cfg", "ini", "py", "rs", "pub", "service", "socket", "target", "timer", "d", "so",
];

pub struct EnrollSummary {
    pub secrets: usize,
    pub domains: usize,
    pub addresses: usize,
    pub emails: usize,
    pub entries: usize,
    pub warnings: Vec<String>,
}

/// The sops files under `dir`, whatever an ignore file says: a secret kept
/// out of the instance's git (a `.gitignore`d file) or hidden by a committed
/// `.ignore` is still a secret the base must never hold, so it is enrolled;
/// an unreadable directory is left out.
fn sops_files(dir: &Path) -> Vec<PathBuf> {
    let walk = Walk::new(dir)
        .skip(SkipName::Exactly(".git"))
        .ignore_files(IgnoreFiles::NONE)
        .include_hidden(true)
        .follow_symlinks(false);
    let mut out: Vec<PathBuf> = walk
        .entries()
        .flatten()
        .filter(|entry| entry.kind() == Kind::File && Format::from_path(entry.path()).is_some())
        .map(fromgit_fs::walk::Entry::into_path)
        .collect();
    out.sort();
    out
}

/// The secrets of a sops file: the leaves that are encrypted values in the
/// file, as key paths (`a.0.b`) with their decrypted text.
fn leaves<'a>(encrypted: &Map, decrypted: &'a Value) -> Vec<(String, &'a str)> {
    let mut found = Vec::new();
    fromgit_sops::value::walk_leaves(encrypted, &mut |path, value| {
        let Value::Scalar(scalar) = value else { return };
        if !detect::is_encrypted(&scalar.text) {
            return;
        }
        if let Some(Value::Scalar(clear)) = decrypted.get(path) {
            let steps: Vec<String> = path
                .steps()
                .iter()
                .map(|step| match step {
                    PathStep::Key(key) => key.clone(),
                    PathStep::Index(index) => index.to_string(),
                })
                .collect();
            found.push((steps.join("."), clear.text.as_str()));
        }
    });
    found
}

pub fn enroll(
    instance: &Path,
    identities: &[PathBuf],
    domains: &[String],
) -> anyhow::Result<(Enroller, EnrollSummary)> {
    anyhow::ensure!(
        instance.is_dir(),
        "`{}` is not a directory",
        instance.display()
    );
    let mut enroller = Enroller::new().context("Failed to draw a random salt")?;
    let mut summary = EnrollSummary {
        secrets: 0,
        domains: 0,
        addresses: 0,
        emails: 0,
        entries: 0,
        warnings: Vec::new(),
    };
    let mut keys: Option<Identities> = None;
    for path in sops_files(instance) {
        let text = zeroize::Zeroizing::new(fs_err::read_to_string(&path)?);
        if !detect::mentions_sops(&text) {
            continue;
        }
        let Some(format) = Format::from_path(&path) else {
            continue;
        };
        let rel = path
            .strip_prefix(instance)
            .unwrap_or(&path)
            .display()
            .to_string();
        let file = EncryptedFile::parse(&text, format)
            .with_context(|| format!("`{rel}` is not a valid sops file"))?;
        if keys.is_none() {
            keys =
                Some(Identities::from_files_or_env(identities).context(
                    "Failed to load the identities to decrypt the instance's sops files",
                )?);
        }
        let Some(ids) = keys.as_ref() else { continue };
        let decrypted = file
            .decrypt(ids)
            .with_context(|| format!("Failed to decrypt `{rel}`"))?;
        let decrypted_tree = Value::Map(decrypted.tree.clone());
        for (key_path, value) in leaves(&file.tree, &decrypted_tree) {
            let origin = format!("`{rel}`: `{key_path}`");
            if let Some(label) = enroller.secret(&origin, value) {
                tracing::info!("{label}: {origin}");
                summary.secrets += 1;
            }
        }
    }
    let nix = instance.join("instance.nix");
    let mut names: Vec<String> = domains.to_vec();
    let mut addresses = Vec::new();
    let mut emails = Vec::new();
    if nix.is_file() {
        let text = fs_err::read_to_string(&nix)?;
        let found = instance_values(&text);
        names.extend(found.domains);
        addresses.extend(found.addresses);
        emails.extend(found.emails);
    } else {
        summary.warnings.push(format!(
            "no `instance.nix` in `{}`: no domain, address or e-mail enrolled except `--domain`",
            instance.display()
        ));
    }
    for email in &emails {
        if let Some((_, domain)) = email.rsplit_once('@') {
            names.push(domain.to_owned());
        }
    }
    names.sort();
    names.dedup();
    for name in names {
        if is_public(&name) {
            continue;
        }
        if let Some(label) = enroller.domain(&name) {
            tracing::info!("{label}: domain");
            summary.domains += 1;
        }
    }
    addresses.sort();
    addresses.dedup();
    for ip in addresses {
        let label = enroller.address(ip);
        tracing::info!("{label}: address");
        summary.addresses += 1;
    }
    emails.sort();
    emails.dedup();
    for email in emails {
        let label = enroller.email(&email);
        tracing::info!("{label}: e-mail address");
        summary.emails += 1;
    }
    if summary.domains + summary.addresses + summary.emails > 0 {
        summary.warnings.push(
            "domains, addresses and e-mail addresses are guessable: keep the fingerprint file as private as the instance's names".to_owned(),
        );
    }
    summary.warnings.append(&mut enroller.warnings);
    summary.entries = enroller.entries.len();
    Ok((enroller, summary))
}

fn is_public(name: &str) -> bool {
    PUBLIC_SUFFIXES
        .iter()
        .any(|p| name == *p || name.ends_with(&format!(".{p}")))
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct InstanceValues {
    pub domains: Vec<String>,
    pub addresses: Vec<IpAddr>,
    pub emails: Vec<String>,
}

/// Host names, addresses and e-mail addresses inside the string literals of
/// a Nix file (`"…"` and `''…''`); attribute paths outside strings are code.
pub fn instance_values(text: &str) -> InstanceValues {
    #[allow(clippy::expect_used)]
    let strings = Regex::new(r#"(?s)"((?:[^"\\]|\\.)*)"|''(.*?)''"#).expect("valid regex");
    #[allow(clippy::expect_used)]
    let host = Regex::new(
        r"(?i)\b(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]\b",
    )
    .expect("valid regex");
    #[allow(clippy::expect_used)]
    let email =
        Regex::new(r"(?i)\b[a-z0-9._%+-]+@(?:[a-z0-9-]+\.)+[a-z]{2,}\b").expect("valid regex");
    #[allow(clippy::expect_used)]
    let ip = Regex::new(r"[0-9A-Fa-f:.]{3,}").expect("valid regex");
    let mut out = InstanceValues::default();
    for caps in strings.captures_iter(text) {
        let Some(literal) = caps.get(1).or_else(|| caps.get(2)) else {
            continue;
        };
        let literal = literal.as_str();
        for m in email.find_iter(literal) {
            out.emails.push(m.as_str().to_ascii_lowercase());
        }
        for m in host.find_iter(literal) {
            let name = m.as_str().to_ascii_lowercase();
            let tld = name.rsplit('.').next().unwrap_or("");
            if FILE_EXTENSIONS.contains(&tld) || tld.chars().all(|c| c.is_ascii_digit()) {
                continue;
            }
            // The local part of an e-mail address is not a host.
            let before = &literal[..m.start()];
            if before.ends_with('@') || literal[m.end()..].starts_with('@') {
                if before.ends_with('@') {
                    out.domains.push(name);
                }
                continue;
            }
            out.domains.push(name);
        }
        for m in ip.find_iter(literal) {
            let token = m.as_str().trim_matches(|c| c == ':' || c == '.');
            if let Ok(addr) = token.parse::<IpAddr>() {
                if !(addr.is_loopback() || addr.is_unspecified()) {
                    out.addresses.push(addr);
                }
            }
        }
    }
    out.domains.sort();
    out.domains.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_values_come_from_string_literals_only() {
        let nix = r#"{
  domain = "fabrikam.test";
  hosts.web = { fqdn = "web.fabrikam.test"; address = "192.0.2.10"; v6 = "2001:db8::10"; };
  acme.email = "ops@fabrikam.test";
  services.nginx.enable = true;
  imports = [ "./hosts/web.nix" ];
  cache = "https://cache.nixos.org";
  motd = ''
    Welcome to mail.fabrikam.test (127.0.0.1)
  '';
}"#;
        let found = instance_values(nix);
        assert_eq!(
            found.domains,
            [
                "cache.nixos.org",
                "fabrikam.test",
                "mail.fabrikam.test",
                "web.fabrikam.test"
            ]
        );
        assert_eq!(found.emails, ["ops@fabrikam.test"]);
        let ips: Vec<String> = found.addresses.iter().map(ToString::to_string).collect();
        assert_eq!(ips, ["192.0.2.10", "2001:db8::10"]);
        assert!(is_public("cache.nixos.org"));
    }

    #[test]
    fn no_ignore_file_hides_a_sops_file_from_enrollment() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for (path, text) in [
            (".ignore", "*\n"),
            (".gitignore", "secrets/\nlocal.yaml\n"),
            ("secrets/web.yaml", "a: 1\n"),
            ("local.yaml", "b: 2\n"),
            (".git/config.yaml", "c: 3\n"),
        ] {
            fs_err::create_dir_all(root.join(path).parent().unwrap()).unwrap();
            fromgit_fs::write(&root.join(path), text.as_bytes(), fromgit_fs::Mode::Private)
                .unwrap();
        }
        let found: Vec<PathBuf> = sops_files(root)
            .into_iter()
            .map(|p| p.strip_prefix(root).unwrap().to_path_buf())
            .collect();
        assert_eq!(
            found,
            [
                PathBuf::from("local.yaml"),
                PathBuf::from("secrets/web.yaml")
            ]
        );
    }
}
