//! `plan`, `apply` and `verify`: the command-line side of the split.
//!
//! `apply` computes every change in memory, then writes all of them or none:
//! the instance repo is assembled in a temporary directory and renamed into
//! place, the base's files are staged as temporary files beside their
//! targets and renamed last; a failure on the way restores what was renamed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use fromgit_cli::{ExitStatus, GlobalArgs};
use fromgit_sops::{config, EncryptedFile, Format};
use serde::Serialize;

use crate::cli::{ApplyArgs, PlanArgs, SplitArgs, VerifyArgs};
use crate::extract::{self, Changes, FileChange, Plan, Request};
use crate::nixsrc::{Finding, FindingKind};

fn default_name(base: &Path) -> String {
    std::path::absolute(base)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .map(|n| {
            n.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '-'
                    }
                })
                .collect()
        })
        .filter(|n: &String| n.starts_with(|c: char| c.is_ascii_alphabetic()))
        .unwrap_or_else(|| "site".to_owned())
}

fn request<'a>(
    split: &'a SplitArgs,
    name: &'a str,
    sops: &'a crate::wiring::SopsRequest,
) -> Request<'a> {
    Request {
        base: &split.base,
        domain: &split.domain,
        secrets: &split.secrets,
        name,
        module: &split.module,
        sops,
    }
}

fn finding_line(finding: &Finding) -> String {
    let kind = serde_json::to_value(finding.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let secret = finding
        .secret
        .as_deref()
        .map_or_else(String::new, |s| format!(" (secret `{s}`)"));
    let reason = finding
        .reason
        .as_deref()
        .map_or_else(String::new, |r| format!(" — {r}"));
    let key = match (finding.kind, &finding.accept_key) {
        (FindingKind::LiteralSecret, Some(key)) => format!(" [accept key `{key}`]"),
        (FindingKind::IpAddress | FindingKind::ForeignEmail, Some(key)) => {
            format!(" [key `{key}`]")
        }
        _ => String::new(),
    };
    format!(
        "{}:{}:{}: {kind}: {}{secret}{reason}{key}\n",
        finding.file.display(),
        finding.line,
        finding.column,
        finding.detail
    )
}

#[derive(Serialize)]
struct PlanReport<'a> {
    schema_version: u32,
    domain: &'a str,
    findings: &'a [Finding],
}

/// The option namespace the command line asked for, or the base's name.
fn namespace(split: &SplitArgs) -> String {
    split
        .name
        .clone()
        .unwrap_or_else(|| default_name(&split.base))
}

fn read_plan(request: &Request<'_>) -> anyhow::Result<Plan> {
    Plan::read(request)
        .with_context(|| format!("Failed to read the base `{}`", request.base.display()))
}

pub fn plan(args: &PlanArgs, global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let name = namespace(&args.split);
    let sops = crate::wiring::SopsRequest::default();
    let request = request(&args.split, &name, &sops);
    let plan = read_plan(&request)?;
    if global.json {
        fromgit_cli::write_json(&PlanReport {
            schema_version: 1,
            domain: &args.split.domain,
            findings: &plan.findings,
        })?;
    } else {
        let mut text: String = plan.findings.iter().map(finding_line).collect();
        let _ = writeln!(
            text,
            "{} finding(s) in {} Nix file(s)",
            plan.findings.len(),
            plan.files.len()
        );
        fromgit_cli::write_stdout(text.as_bytes())?;
    }
    if !plan.mentions_domain() {
        fromgit_cli::warn(&format!(
            "`{}` occurs nowhere in the base's Nix files",
            args.split.domain
        ));
        return Ok(ExitStatus::Failure);
    }
    Ok(ExitStatus::Success)
}

/// Whether `dir` is an instance repo made for this domain by an earlier apply.
fn is_our_instance(dir: &Path, domain: &str) -> bool {
    fs_err::read_to_string(dir.join("instance.nix"))
        .is_ok_and(|text| text.contains(&format!("domain = \"{domain}\";")))
}

#[derive(Serialize)]
struct ApplyReport<'a> {
    schema_version: u32,
    dry_run: bool,
    base: String,
    instance: String,
    options: &'a [String],
    rewritten: &'a [Finding],
    secrets: &'a [extract::MovedSecret],
    sops_settings: &'a [crate::wiring::SecretSettings],
    left_as_is: &'a [Finding],
    manual: &'a [String],
    other_hosts: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    new_history: Option<&'a str>,
    files: Vec<String>,
}

pub fn apply(args: &ApplyArgs, global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let name = namespace(&args.split);
    let sops = crate::wiring::SopsRequest {
        keys: crate::wiring::KeyWiring {
            key_file: args.sops.key_file.clone(),
            host_key_decryption: args.sops.host_key_decryption,
        },
        overrides: args.sops.overrides.clone(),
    };
    if !sops.keys.key_file.starts_with('/') {
        bail!(
            "`--key-file {}` is not an absolute path on the host",
            sops.keys.key_file
        );
    }
    if sops.keys.host_key_decryption && args.recipients.recipient_ssh.is_empty() {
        bail!("`--host-key-decryption` needs the host's recipient in `.sops.yaml`\nhint: pass `--recipient-ssh HOST_KEY.pub` (the host's `ssh_host_ed25519_key.pub`)");
    }
    let request = request(&args.split, &name, &sops);
    let plan = read_plan(&request)?;
    let instance_exists = args.instance.exists();
    let nothing_left = plan.findings.iter().all(|f| {
        (f.kind == FindingKind::IpAddress && f.reason.is_some())
            || matches!(
                f.kind,
                FindingKind::SecretDirectory | FindingKind::PublicValue | FindingKind::Accepted
            )
    });
    if nothing_left && instance_exists && is_our_instance(&args.instance, &args.split.domain) {
        fromgit_cli::write_stdout(
            format!(
                "nothing to do: `{}` is already generic and `{}` holds its instance\n",
                args.split.base.display(),
                args.instance.display()
            )
            .as_bytes(),
        )?;
        return Ok(ExitStatus::Success);
    }
    if !plan.mentions_domain() {
        fromgit_cli::warn(&format!(
            "`{}` occurs nowhere in the base's Nix files: nothing to extract",
            args.split.domain
        ));
        return Ok(ExitStatus::Failure);
    }
    if instance_exists && fs_err::read_dir(&args.instance)?.next().is_some() {
        bail!(
            "the instance directory `{}` already holds files; give a new or empty directory",
            args.instance.display()
        );
    }
    let recipients = crate::secrets::explicit_recipients(&args.recipients)?;
    if recipients.is_empty() {
        bail!("no recipient for the instance secrets\nhint: pass `--recipient AGE1…` (the bootstrap key) and `--recipient-ssh HOST_KEY.pub`");
    }
    let mut changes = extract::changes(&request, &plan, &recipients, &args.instance_url)
        .with_context(|| {
            format!(
                "Failed to plan the split of `{}`",
                args.split.base.display()
            )
        })?;
    if args.dry_run {
        let mut text = String::new();
        for (old, new) in &changes.renamed {
            let _ = writeln!(text, "rename `{}` → `{}`", old.display(), new.display());
        }
        for change in changes.base.iter().chain(&changes.instance) {
            let path = if change.path.is_absolute() || change.path.starts_with(&args.split.base) {
                change.path.clone()
            } else {
                args.instance.join(&change.path)
            };
            text.push_str(&unified_diff(
                &path,
                change.before.as_deref(),
                &change.after,
            ));
        }
        fromgit_cli::write_stdout(text.as_bytes())?;
        return Ok(ExitStatus::Success);
    }
    if args.new_history {
        crate::history::check(&args.split.base)?;
    }
    write_all(&changes, &args.instance)?;
    let (stale, why) = crate::lock::try_lock(&args.split.base);
    if !stale.is_empty() {
        changes.manual.push(format!(
            "flake.lock is stale: it does not lock {}; run `nix flake lock` in `{}` (`verify` calls the base unproven until then){}",
            stale.iter().map(|i| format!("`{i}`")).collect::<Vec<_>>().join(", "),
            args.split.base.display(),
            why.map_or_else(String::new, |why| format!("; {why}"))
        ));
    }
    let history = if args.new_history {
        let (commit, kept) = crate::history::restart(&args.split.base)
            .context("The split is written, but the new history could not be made")?;
        let kept = kept.map_or_else(String::new, |k| {
            format!(
                "; the monolith's history is kept in `{}` (it names the instance: keep it private)",
                k.display()
            )
        });
        Some(format!(
            "`{}` starts a new git history: one commit, {commit}{kept}",
            args.split.base.display()
        ))
    } else {
        None
    };
    report_apply(global, args, &changes, history.as_deref())?;
    Ok(ExitStatus::Success)
}

fn unified_diff(path: &Path, before: Option<&str>, after: &str) -> String {
    let display = path.display().to_string();
    let old_name = if before.is_some() {
        format!("a/{display}")
    } else {
        "/dev/null".to_owned()
    };
    similar::TextDiff::from_lines(before.unwrap_or_default(), after)
        .unified_diff()
        .context_radius(3)
        .header(&old_name, &format!("b/{display}"))
        .to_string()
}

fn report_apply(
    global: &GlobalArgs,
    args: &ApplyArgs,
    changes: &Changes,
    history: Option<&str>,
) -> anyhow::Result<()> {
    let files: Vec<String> = changes
        .base
        .iter()
        .map(|c| c.path.display().to_string())
        .chain(
            changes
                .instance
                .iter()
                .map(|c| args.instance.join(&c.path).display().to_string()),
        )
        .collect();
    if global.json {
        return fromgit_cli::write_json(&ApplyReport {
            schema_version: 1,
            dry_run: false,
            base: args.split.base.display().to_string(),
            instance: args.instance.display().to_string(),
            options: &changes.options,
            rewritten: &changes.rewritten,
            secrets: &changes.moved,
            sops_settings: &changes.settings,
            left_as_is: &changes.left,
            manual: &changes.manual,
            other_hosts: &changes.other_hosts,
            new_history: history,
            files,
        })
        .map_err(Into::into);
    }
    let mut text = format!(
        "Split the instance out of `{}` into `{}`\n\n",
        args.split.base.display(),
        args.instance.display()
    );
    let _ = writeln!(text, "Options introduced: {}", changes.options.join(", "));
    let _ = writeln!(text, "\nRewritten ({}):", changes.rewritten.len());
    for finding in &changes.rewritten {
        text.push_str("- ");
        text.push_str(&finding_line(finding));
    }
    if !changes.moved.is_empty() {
        let _ = writeln!(text, "\nSecrets moved into the instance repo:");
        for secret in &changes.moved {
            let _ = writeln!(
                text,
                "- {} from {} (sha256 {})",
                secret.name, secret.source, secret.sha256
            );
        }
        text.push_str(&crate::wiring::settings_report(&changes.settings));
    }
    if !changes.left.is_empty() {
        let _ = writeln!(text, "\nLeft as they are (review by hand):");
        for finding in &changes.left {
            text.push_str("- ");
            text.push_str(&finding_line(finding));
        }
    }
    if !changes.renamed.is_empty() {
        let _ = writeln!(text, "\nRenamed (the name carried the domain):");
        for (old, new) in &changes.renamed {
            let _ = writeln!(text, "- `{}` → `{}`", old.display(), new.display());
        }
    }
    if !changes.other_hosts.is_empty() {
        let _ = writeln!(
            text,
            "\nOther hosts of the flake, left as they are: {}",
            changes.other_hosts.join(", ")
        );
    }
    if let Some(history) = history {
        let _ = writeln!(text, "\nNew history: {history}");
    }
    for note in &changes.manual {
        let _ = writeln!(text, "\nmanual: {note}");
    }
    fromgit_cli::write_stdout(text.as_bytes())?;
    Ok(())
}

/// Writes every change or none.
fn write_all(changes: &Changes, instance: &Path) -> anyhow::Result<()> {
    // Stage the base: temporary files beside their targets.
    let mut staged = Vec::new();
    for change in &changes.base {
        let dir = change.path.parent().unwrap_or(Path::new("."));
        fs_err::create_dir_all(dir)?;
        let mut temp = tempfile::Builder::new()
            .prefix(".fromgit-")
            .tempfile_in(dir)
            .with_context(|| format!("Failed to stage `{}`", change.path.display()))?;
        std::io::Write::write_all(&mut temp, change.after.as_bytes())?;
        temp.as_file().sync_all()?;
        if let Ok(meta) = fs_err::metadata(&change.path) {
            temp.as_file().set_permissions(meta.permissions())?;
        } else {
            use std::os::unix::fs::PermissionsExt as _;
            temp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o644))?;
        }
        staged.push((temp, change));
    }
    for (_, new) in &changes.renamed {
        if let Some(dir) = new.parent() {
            fs_err::create_dir_all(dir)?;
        }
    }
    // Assemble the instance repo in a temporary sibling directory.
    let absolute = std::path::absolute(instance)?;
    let parent = absolute.parent().unwrap_or(Path::new("/")).to_path_buf();
    fs_err::create_dir_all(&parent)?;
    let assembly = tempfile::Builder::new()
        .prefix(".fromgit-instance-")
        .tempdir_in(&parent)
        .with_context(|| {
            format!(
                "Failed to stage the instance repo in `{}`",
                parent.display()
            )
        })?;
    for change in &changes.instance {
        let path = assembly.path().join(&change.path);
        if let Some(dir) = path.parent() {
            fs_err::create_dir_all(dir)?;
        }
        fs_err::write(&path, &change.after)?;
    }
    // Commit: the instance directory first (one rename), then the base files.
    if absolute.exists() {
        fs_err::remove_dir(&absolute)?; // empty, checked before
    }
    let assembled = assembly.keep();
    fs_err::rename(&assembled, &absolute)?;
    let mut done: Vec<&FileChange> = Vec::new();
    for (temp, change) in staged {
        if let Err(err) = temp.persist(&change.path) {
            restore(&done, &absolute);
            return Err(err.error).with_context(|| {
                format!(
                    "Failed to replace `{}`; the split was rolled back",
                    change.path.display()
                )
            });
        }
        done.push(change);
    }
    // Last, the files whose names carried the domain, and the directories
    // they leave empty.
    for (old, _) in &changes.renamed {
        fs_err::remove_file(old)?;
        let mut dir = old.parent();
        while let Some(parent) = dir {
            if fs_err::remove_dir(parent).is_err() {
                break;
            }
            dir = parent.parent();
        }
    }
    Ok(())
}

fn restore(done: &[&FileChange], instance: &Path) {
    for change in done {
        let _ = match &change.before {
            Some(before) => fs_err::write(&change.path, before),
            None => fs_err::remove_file(&change.path),
        };
    }
    let _ = fs_err::remove_dir_all(instance);
}

#[derive(Serialize)]
struct Check {
    name: String,
    ok: bool,
    detail: String,
}

#[derive(Serialize)]
struct VerifyReport<'a> {
    schema_version: u32,
    instance: String,
    ok: bool,
    checks: &'a [Check],
    #[serde(skip_serializing_if = "Option::is_none")]
    unproven: Option<&'a str>,
    /// Inputs the base's `flake.lock` does not lock: exit 3 (unproven).
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stale_lock: &'a [String],
}

pub fn verify(args: &VerifyArgs, global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let identities = crate::secrets::load_identities(&args.identity)?;
    let config_path = args.instance.join(config::CONFIG_NAME);
    if !config_path.is_file() {
        bail!(
            "`{}` has no `{}`",
            args.instance.display(),
            config::CONFIG_NAME
        );
    }
    let mut checks = Vec::new();
    let mut files = Vec::new();
    collect_files(&args.instance.join("secrets"), &mut files)?;
    if files.is_empty() {
        checks.push(Check {
            name: "secrets".into(),
            ok: false,
            detail: format!(
                "`{}` holds no secrets file",
                args.instance.join("secrets").display()
            ),
        });
    }
    for file in &files {
        checks.push(verify_secrets_file(file, &config_path, &identities));
    }
    let outside = crate::sops_check::symlinks_outside(&args.instance);
    if !outside.is_empty() {
        checks.push(Check {
            name: "secrets: no link out of the repo".into(),
            ok: false,
            detail: format!(
                "symlinks whose target is not in the instance repo: {}",
                outside.join(", ")
            ),
        });
    }
    let mut unproven = None;
    if let Some(base) = &args.base {
        checks.extend(verify_base(base, &args.instance)?);
        match crate::sops_check::check(
            base,
            &args.module,
            &args.instance,
            &args.key_file,
            &args.host_keys,
            &identities,
        )? {
            crate::sops_check::Outcome::Checked(items) => {
                checks.extend(items.into_iter().map(|i| Check {
                    name: i.name,
                    ok: i.ok,
                    detail: i.detail,
                }));
            }
            crate::sops_check::Outcome::Unproven(why) => unproven = Some(why),
        }
        if let Some(outcome) = crate::historycheck::check(base, &args.instance, &identities) {
            checks.push(Check {
                name: outcome.name.into(),
                ok: outcome.ok,
                detail: outcome.detail,
            });
        }
    }
    let ok = checks.iter().all(|c| c.ok);
    let stale_lock = args
        .base
        .as_deref()
        .map(crate::lock::stale_inputs)
        .unwrap_or_default();
    if global.json {
        fromgit_cli::write_json(&VerifyReport {
            schema_version: 1,
            instance: args.instance.display().to_string(),
            ok,
            checks: &checks,
            unproven: unproven.as_deref(),
            stale_lock: &stale_lock,
        })?;
    } else {
        let mut text = String::new();
        if !stale_lock.is_empty() {
            let _ = writeln!(
                text,
                "UNPROVEN base: flake.lock does not lock {}: the inputs would be locked at the first build; run `nix flake lock`",
                stale_lock.iter().map(|i| format!("`{i}`")).collect::<Vec<_>>().join(", ")
            );
        }
        for check in &checks {
            let _ = writeln!(
                text,
                "{} {}: {}",
                if check.ok { "ok  " } else { "FAIL" },
                check.name,
                check.detail
            );
        }
        if let Some(why) = &unproven {
            let _ = writeln!(text, "unproven sops-nix: {why}");
        }
        let _ = writeln!(
            text,
            "{}",
            if !ok {
                "not proven: see the failures above"
            } else if unproven.is_some() {
                "unproven: the sops-nix checks did not run"
            } else if !stale_lock.is_empty() {
                "unproven: the base's lock is stale"
            } else {
                "the bootstrap identity is the only secret outside git"
            }
        );
        fromgit_cli::write_stdout(text.as_bytes())?;
    }
    Ok(if !ok {
        ExitStatus::Failure
    } else if unproven.is_some() || !stale_lock.is_empty() {
        ExitStatus::Unproven
    } else {
        ExitStatus::Success
    })
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let Ok(entries) = fs_err::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            collect_files(&path, out)?;
        } else {
            out.push(path);
        }
    }
    out.sort();
    Ok(())
}

fn verify_secrets_file(
    file: &Path,
    config_path: &Path,
    identities: &fromgit_sops::Identities,
) -> Check {
    let name = file.display().to_string();
    let fail = |detail: String| Check {
        name: name.clone(),
        ok: false,
        detail,
    };
    let Some(format) = Format::from_path(file) else {
        return fail("not a YAML or JSON sops file".into());
    };
    let text = match fs_err::read_to_string(file) {
        Ok(text) => text,
        Err(err) => return fail(err.to_string()),
    };
    let encrypted = match EncryptedFile::parse(&text, format) {
        Ok(encrypted) => encrypted,
        Err(err) => return fail(format!("not an encrypted sops file: {err}")),
    };
    if let Err(err) = encrypted.decrypt(identities) {
        return fail(format!("does not decrypt with the identity: {err}"));
    }
    let rule = match config::rule_for_file(config_path, file) {
        Ok(rule) => rule,
        Err(err) => return fail(err.to_string()),
    };
    let mut wanted: Vec<String> = rule
        .recipients
        .iter()
        .map(|r| r.as_str().to_owned())
        .collect();
    let mut actual = encrypted.recipients();
    wanted.sort();
    actual.sort();
    if wanted != actual {
        return fail(format!(
            "recipients differ from creation rule {}: the file has {}, the rule wants {} (run `instance-extract secrets updatekeys`)",
            rule.index,
            actual.join(", "),
            wanted.join(", ")
        ));
    }
    Check {
        name,
        ok: true,
        detail: format!(
            "decrypts with a valid MAC; recipients match creation rule {}",
            rule.index
        ),
    }
}

/// The base holds no domain (in any text file) and reads no secret-looking
/// host path outside the generated sops-nix declarations.
fn verify_base(base: &Path, instance: &Path) -> anyhow::Result<Vec<Check>> {
    let instance_nix = fs_err::read_to_string(instance.join("instance.nix"))?;
    let domain = instance_nix
        .split("domain = \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .filter(|d| !d.is_empty())
        .with_context(|| {
            format!(
                "`{}` sets no `domain`",
                instance.join("instance.nix").display()
            )
        })?
        .to_owned();
    let mut text_files = Vec::new();
    collect_text_files(base, base, &mut text_files)?;
    let mut domain_hits = Vec::new();
    let mut path_hits = Vec::new();
    let secret_path = regex::Regex::new(
        r#"/(?:var/lib|etc|run/keys|root|srv|home)/[^\s"';]*(?:secret|key|token|passw|cred|\.pem|htpasswd)[^\s"';]*"#,
    )?;
    for (relative, text) in &text_files {
        for (line_number, line) in text.lines().enumerate() {
            if !crate::nixsrc::domain_matches(line, &domain).is_empty() {
                domain_hits.push(format!("{}:{}", relative.display(), line_number + 1));
            }
            let generated = relative == Path::new(extract::OPTIONS_MODULE);
            if relative.extension().is_some_and(|e| e == "nix") && !generated {
                for found in secret_path.find_iter(line) {
                    path_hits.push(format!(
                        "{}:{}: {}",
                        relative.display(),
                        line_number + 1,
                        found.as_str()
                    ));
                }
            }
        }
    }
    let mut checks = vec![
        Check {
            name: "base: no instance domain".into(),
            ok: domain_hits.is_empty(),
            detail: if domain_hits.is_empty() {
                format!("`{domain}` occurs nowhere in `{}`", base.display())
            } else {
                format!("`{domain}` still occurs at {}", domain_hits.join(", "))
            },
        },
        Check {
            name: "base: no out-of-band secret".into(),
            ok: path_hits.is_empty(),
            detail: if path_hits.is_empty() {
                "every host secret path is declared through sops-nix".to_owned()
            } else {
                format!(
                    "host paths that would stay out-of-band secrets: {}",
                    path_hits.join("; ")
                )
            },
        },
    ];
    checks.extend(
        crate::basecheck::run(base, &instance_nix, &text_files)
            .into_iter()
            .map(|outcome| Check {
                name: outcome.name.into(),
                ok: outcome.ok,
                detail: outcome.detail,
            }),
    );
    Ok(checks)
}

fn collect_text_files(
    base: &Path,
    dir: &Path,
    out: &mut Vec<(PathBuf, String)>,
) -> std::io::Result<()> {
    for entry in fs_err::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == ".git" || name.starts_with("result") {
            continue;
        }
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            collect_text_files(base, &path, out)?;
        } else if let Ok(text) = String::from_utf8(fs_err::read(&path)?) {
            out.push((path.strip_prefix(base).unwrap_or(&path).to_path_buf(), text));
        }
    }
    Ok(())
}
