//! What a parsed configuration must satisfy before a run may use it: names
//! and paths that make sense, and the pushed key agreeing with its own check.

use super::schema::Config;
use super::values::{parse_mode, parse_owner, parse_size};

impl Config {
    pub(super) fn validate(&self) -> Result<(), String> {
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

fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}
