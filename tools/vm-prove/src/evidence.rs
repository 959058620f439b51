//! The evidence of a run: one model, written as JSON (for machines) and as a
//! Markdown summary (to paste into a review log). It is written before the
//! instance is created, so that a crash still leaves the instance's name on
//! disk, and rewritten when the run ends. It holds hashes, sizes, modes and
//! exit statuses, never the content of the secret.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::incus::ServerInfo;
use crate::repos::RepoRecord;

/// One guardrail, with the numbers it was decided on.
#[derive(Debug, Clone, Serialize)]
pub struct Guardrail {
    pub name: String,
    pub passed: bool,
    pub detail: String,
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub numbers: serde_json::Value,
}

/// The instance the run created (or would create).
#[derive(Debug, Clone, Serialize)]
pub struct InstanceRecord {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub image: String,
    pub image_fingerprint: String,
    pub config: std::collections::BTreeMap<String, String>,
    pub profiles: Vec<String>,
    pub created: bool,
}

/// The one secret pushed, described without its content.
#[derive(Debug, Clone, Serialize, Default)]
pub struct SecretRecord {
    pub source: String,
    pub destination: String,
    /// As configured: a name, or `#<id>`.
    pub owner: String,
    pub group: String,
    /// Resolved inside the instance.
    pub uid: u32,
    pub gid: u32,
    pub mode: String,
    pub size: usize,
    pub pushed: bool,
    /// `stat` inside the instance after the push: mode, uid, gid, size.
    pub observed: Option<String>,
    /// The SHA-256 inside the instance equals the local file's (the hash itself is not recorded).
    pub content_matches: Option<bool>,
}

/// One executed runbook block.
#[derive(Debug, Clone, Serialize)]
pub struct BlockRecord {
    pub name: String,
    pub line: usize,
    pub source_sha256: String,
    pub timeout_seconds: u64,
    pub exit: Option<i32>,
    pub timed_out: bool,
    pub duration_seconds: f64,
    /// The last lines of stdout and stderr, with the secret redacted if it appeared.
    pub output_tail: String,
    pub error: Option<String>,
    /// Why the block was not run (`needs NixOS`), when it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_run: Option<String>,
}

/// One check after the runbook.
#[derive(Debug, Clone, Serialize)]
pub struct CheckRecord {
    pub name: String,
    pub passed: bool,
    pub expected: String,
    pub observed: String,
    /// Why the check was not run (`needs NixOS`), when it was not; such a
    /// check neither passed nor failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_run: Option<String>,
}

/// The resize done before the run, with the values before and after.
#[derive(Debug, Clone, Serialize)]
pub struct ResizeRecord {
    pub instance: String,
    pub before: Option<String>,
    pub after: String,
    /// `limits.memory` read back after the change.
    pub observed: Option<String>,
    pub restarted: bool,
    pub seconds: f64,
}

/// What teardown did.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Teardown {
    pub action: String,
    pub deleted: bool,
    pub error: Option<String>,
}

/// The whole record.
#[derive(Debug, Clone, Serialize)]
pub struct Evidence {
    pub schema_version: u32,
    pub tool: String,
    pub tool_version: String,
    pub run_id: String,
    pub started: String,
    pub finished: Option<String>,
    pub config_file: String,
    pub project: String,
    pub server: Option<ServerInfo>,
    pub runbook: String,
    pub runbook_sha256: String,
    pub runbook_vars: std::collections::BTreeMap<String, String>,
    pub repos: Vec<RepoRecord>,
    pub guardrails: Vec<Guardrail>,
    pub resize: Option<ResizeRecord>,
    pub instance: Option<InstanceRecord>,
    pub readiness: Option<String>,
    /// What the instance runs (`/etc/os-release`), and whether it is NixOS.
    pub instance_os: Option<String>,
    pub nixos: Option<bool>,
    /// What this run can prove at most, in words: "a NixOS rebuild" or
    /// "mechanics on a Debian container (not NixOS)".
    pub level: String,
    pub secret: SecretRecord,
    pub blocks: Vec<BlockRecord>,
    /// The sops-nix secrets whose values the pushed key decrypted here (to
    /// compare hashes with what activation installed): names only.
    pub sops_decrypted: Vec<String>,
    pub checks: Vec<CheckRecord>,
    /// What every command run in the instance was for, in order: the
    /// runbook's blocks and the read-only readiness, key and check commands.
    pub executed: Vec<String>,
    pub teardown: Teardown,
    /// `passed`, `unproven`, `failed`, `refused`, `interrupted` or `error`.
    pub verdict: String,
    pub error: Option<String>,
}

/// The current time, RFC 3339 in UTC.
pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl Evidence {
    pub fn json_path(dir: &Path, run_id: &str) -> PathBuf {
        dir.join(format!("{run_id}.json"))
    }

    pub fn markdown_path(dir: &Path, run_id: &str) -> PathBuf {
        dir.join(format!("{run_id}.md"))
    }

    /// Writes both files (each through a temporary file and a rename). The
    /// evidence names the instance, the repos and what ran, and keeps output
    /// tails: the directory and the files are the operator's alone.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        if !dir.is_dir() {
            use std::os::unix::fs::DirBuilderExt as _;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
        }
        let mut json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        json.push('\n');
        write_private(&Self::json_path(dir, &self.run_id), json.as_bytes())?;
        write_private(
            &Self::markdown_path(dir, &self.run_id),
            self.markdown().as_bytes(),
        )
    }

    /// The one-line account: what ran, what passed, what was not run, at
    /// which level, and whether the instance is gone.
    pub fn account(&self) -> String {
        let ran = self.blocks.iter().filter(|b| b.not_run.is_none()).count();
        let blocks_not_run = self.blocks.len() - ran;
        let checks_run = self.checks.iter().filter(|c| c.not_run.is_none()).count();
        let checks_not_run = self.checks.len() - checks_run;
        let mut text = format!(
            "{}: {ran} block(s) ran ({} exited 0), {} of {checks_run} check(s) passed",
            self.level,
            self.blocks.iter().filter(|b| b.exit == Some(0)).count(),
            self.checks.iter().filter(|c| c.passed).count(),
        );
        if blocks_not_run + checks_not_run > 0 {
            use std::fmt::Write as _;
            let _ = write!(
                text,
                ", {blocks_not_run} block(s) and {checks_not_run} check(s) not run: needs NixOS"
            );
        }
        let instance = if self.teardown.deleted {
            "deleted"
        } else if self.instance.as_ref().is_some_and(|i| i.created) {
            "NOT deleted"
        } else {
            "never created"
        };
        format!("{text}; the instance was {instance}.")
    }

    /// The Markdown summary.
    pub fn markdown(&self) -> String {
        use std::fmt::Write as _;
        let mut m = String::new();
        let _ = writeln!(m, "# vm-prove run `{}`: {}\n", self.run_id, self.verdict);
        let _ = writeln!(m, "{}\n", self.account());
        let _ = writeln!(m, "- tool: {} {}", self.tool, self.tool_version);
        let _ = writeln!(
            m,
            "- started: {}, finished: {}",
            self.started,
            self.finished.as_deref().unwrap_or("(not finished)")
        );
        let _ = writeln!(m, "- configuration: `{}`", self.config_file);
        if let Some(server) = &self.server {
            let _ = writeln!(
                m,
                "- server: {:?} {} ({} API extensions), project `{}`",
                server.kind, server.version, server.extension_count, self.project
            );
        }
        let _ = writeln!(
            m,
            "- runbook: `{}` (sha256 `{}`)",
            self.runbook, self.runbook_sha256
        );
        for (k, v) in &self.runbook_vars {
            let _ = writeln!(m, "  - `{k}` = `{v}`");
        }
        for r in &self.repos {
            let _ = writeln!(
                m,
                "- repository `{}`: `{}` at `{}` = `{}`, flake.lock sha256 `{}`{}; bundle {} bytes (sha256 `{}`) → `{}`, pushed: {}",
                r.name,
                r.source,
                r.rev,
                r.commit,
                r.flake_lock_sha256.as_deref().unwrap_or("(none)"),
                if r.uncommitted_changes { " (the checkout had uncommitted changes, not in the bundle)" } else { "" },
                r.bundle_size,
                &r.bundle_sha256[..r.bundle_sha256.len().min(16)],
                r.destination,
                r.pushed
            );
        }
        if let Some(error) = &self.error {
            let _ = writeln!(m, "- error: {error}");
        }
        let _ = writeln!(m, "\n## Guardrails\n");
        for g in &self.guardrails {
            let _ = writeln!(
                m,
                "- {} **{}**: {}",
                if g.passed { "ok" } else { "REFUSED" },
                g.name,
                g.detail
            );
        }
        if let Some(r) = &self.resize {
            let _ = writeln!(
                m,
                "\n## Resize\n\n- `{}` limits.memory {} → {} (read back: {}), restarted: {}, {:.1} s",
                r.instance,
                r.before.as_deref().unwrap_or("(unset)"),
                r.after,
                r.observed.as_deref().unwrap_or("-"),
                r.restarted,
                r.seconds
            );
        }
        if let Some(i) = &self.instance {
            let _ = writeln!(m, "\n## Instance\n");
            let _ = writeln!(
                m,
                "- `{}` ({}), image `{}` (`{}`), created: {}",
                i.name, i.kind, i.image, i.image_fingerprint, i.created
            );
            for (k, v) in &i.config {
                let _ = writeln!(m, "  - `{k}` = `{v}`");
            }
            if let Some(r) = &self.readiness {
                let _ = writeln!(m, "- readiness: {r}");
            }
        }
        let s = &self.secret;
        let _ = writeln!(m, "\n## The one secret\n");
        let _ = writeln!(
            m,
            "- `{}` → `{}` (uid {}, gid {}, mode {}, {} bytes), pushed: {}, observed: {}, content matches: {}",
            s.source,
            s.destination,
            s.uid,
            s.gid,
            s.mode,
            s.size,
            s.pushed,
            s.observed.as_deref().unwrap_or("-"),
            s.content_matches.map_or("-".to_owned(), |b| b.to_string())
        );
        self.markdown_blocks(&mut m);
        self.markdown_checks(&mut m);
        let _ = writeln!(m, "\n## Teardown\n");
        let _ = writeln!(
            m,
            "- {}: deleted {}{}",
            self.teardown.action,
            self.teardown.deleted,
            self.teardown
                .error
                .as_ref()
                .map(|e| format!(", error: {e}"))
                .unwrap_or_default()
        );
        m
    }

    fn markdown_blocks(&self, m: &mut String) {
        use std::fmt::Write as _;
        let _ = writeln!(m, "\n## Runbook blocks\n");
        let _ = writeln!(
            m,
            "| block | line | sha256 | exit | seconds |\n|---|---|---|---|---|"
        );
        for b in &self.blocks {
            let exit = match (b.exit, b.timed_out, &b.error) {
                _ if b.not_run.is_some() => {
                    format!("not run: {}", b.not_run.as_deref().unwrap_or_default())
                }
                (_, true, _) => format!("timed out ({} s)", b.timeout_seconds),
                (Some(code), _, _) => code.to_string(),
                (None, _, Some(e)) => format!("not run: {e}"),
                (None, _, None) => "-".to_owned(),
            };
            let _ = writeln!(
                m,
                "| `{}` | {} | `{}` | {} | {:.2} |",
                b.name,
                b.line,
                &b.source_sha256[..b.source_sha256.len().min(16)],
                exit,
                b.duration_seconds
            );
        }
        for b in self.blocks.iter().filter(|b| !b.output_tail.is_empty()) {
            let _ = writeln!(
                m,
                "\n<details><summary>{} output (tail)</summary>\n\n```\n{}\n```\n</details>",
                b.name,
                b.output_tail.trim_end()
            );
        }
    }

    fn markdown_checks(&self, m: &mut String) {
        use std::fmt::Write as _;
        let _ = writeln!(m, "\n## Checks\n");
        for c in &self.checks {
            if let Some(why) = &c.not_run {
                let _ = writeln!(m, "- not run **{}**: {why}", c.name);
                continue;
            }
            let _ = writeln!(
                m,
                "- {} **{}**: expected {}; observed {}",
                if c.passed { "ok" } else { "FAILED" },
                c.name,
                c.expected,
                c.observed
            );
        }
        let _ = writeln!(
            m,
            "\n## Everything executed in the instance\n\nBeyond the runbook's blocks, only the read-only readiness, key and check commands ran:\n"
        );
        for (what, times) in collapse(&self.executed) {
            if times > 1 {
                let _ = writeln!(m, "- {what} (×{times})");
            } else {
                let _ = writeln!(m, "- {what}");
            }
        }
    }
}

/// Writes an owner-only file through fromgit's one write path.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    fromgit_fs::write(path, bytes, fromgit_fs::Mode::Private).map_err(std::io::Error::other)
}

/// Runs of equal entries as (entry, count): a polled check reads as one line.
fn collapse(items: &[String]) -> Vec<(&str, usize)> {
    let mut out: Vec<(&str, usize)> = Vec::new();
    for item in items {
        match out.last_mut() {
            Some((last, times)) if *last == item.as_str() => *times += 1,
            _ => out.push((item, 1)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_is_owner_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let evidence_dir = dir.path().join("a/evidence");
        let ev = Evidence {
            schema_version: 1,
            tool: "vm-prove".to_owned(),
            tool_version: "0".to_owned(),
            run_id: "r".to_owned(),
            started: now(),
            finished: None,
            config_file: String::new(),
            project: String::new(),
            server: None,
            runbook: String::new(),
            runbook_sha256: String::new(),
            runbook_vars: std::collections::BTreeMap::new(),
            repos: Vec::new(),
            guardrails: Vec::new(),
            resize: None,
            instance: None,
            readiness: None,
            instance_os: None,
            nixos: None,
            level: String::new(),
            secret: SecretRecord::default(),
            blocks: Vec::new(),
            sops_decrypted: Vec::new(),
            checks: Vec::new(),
            executed: Vec::new(),
            teardown: Teardown::default(),
            verdict: "running".to_owned(),
            error: None,
        };
        ev.write(&evidence_dir).unwrap();
        ev.write(&evidence_dir).unwrap();
        let mode = |p: &Path| fs_err::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&evidence_dir), 0o700);
        assert_eq!(mode(&Evidence::json_path(&evidence_dir, "r")), 0o600);
        assert_eq!(mode(&Evidence::markdown_path(&evidence_dir, "r")), 0o600);
    }

    #[test]
    fn polled_commands_collapse() {
        let items: Vec<String> = ["a", "b", "b", "b", "a"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        assert_eq!(collapse(&items), [("a", 1), ("b", 3), ("a", 1)]);
    }
}
