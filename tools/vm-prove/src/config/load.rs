//! Reading a configuration file: parse the TOML, resolve relative paths
//! against the file's directory, bring earlier spellings into the one
//! notation, then validate, so every caller gets a configuration it can trust.

use std::path::Path;

use super::schema::{default_max_age, default_root, Config};
use super::values::Seconds;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::InstanceType;

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
