//! `apply`: computes every change of the split in memory, then hands them
//! to the transaction that writes all of them or none.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Context as _};
use fromgit_cli::{ExitStatus, Printer};

use super::render::{apply_json, report_apply, unified_diff};
use super::transaction::write_all;
use super::{namespace, read_plan, request};
use crate::cli::ApplyArgs;
use crate::extract;
use crate::nixsrc::FindingKind;

/// Whether `dir` is an instance repo made for this domain by an earlier apply.
fn is_our_instance(dir: &Path, domain: &str) -> bool {
    fs_err::read_to_string(dir.join("instance.nix"))
        .is_ok_and(|text| text.contains(&format!("domain = \"{domain}\";")))
}

pub fn apply(args: &ApplyArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
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
    // Files only the flake's other hosts use are left as they are.
    let others_only = crate::hosts::Hosts::new(&plan.files, request.module).others_only;
    let left = plan
        .findings
        .iter()
        .filter(|f| !others_only.contains(&f.file))
        .find(|f| {
            !((f.kind == FindingKind::IpAddress && f.reason.is_some())
                || matches!(
                    f.kind,
                    FindingKind::SecretDirectory | FindingKind::PublicValue | FindingKind::Accepted
                ))
        });
    let nothing_left = left.is_none();
    if nothing_left && instance_exists && is_our_instance(&args.instance, &args.split.domain) {
        let others = plan
            .findings
            .iter()
            .filter(|f| others_only.contains(&f.file))
            .count();
        report_nothing_to_do(args, printer, others)?;
        return Ok(ExitStatus::Success);
    }
    if !plan.mentions_domain() {
        fromgit_cli::warn(&format!(
            "`{}` occurs nowhere in the base's Nix files: nothing to extract",
            args.split.domain
        ));
        return Ok(ExitStatus::Failure);
    }
    if instance_exists && is_our_instance(&args.instance, &args.split.domain) {
        if let Some(finding) = left {
            bail!(
                "`{}` holds the instance of an earlier apply, but `{}` line {} still names the instance ({}); rewrite it by hand, or start again from the monolith with a new instance directory",
                args.instance.display(),
                args.split.base.join(&finding.file).display(),
                finding.line,
                finding.detail
            );
        }
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
    let options_checked = check_runtime_options(&args.split.base, &mut changes)?;
    if args.dry_run && printer.json() {
        apply_json(
            printer,
            args,
            &changes,
            None,
            None,
            options_checked.as_deref(),
            true,
        )?;
        return Ok(ExitStatus::Success);
    }
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
        printer.print_text(&text)?;
        return Ok(ExitStatus::Success);
    }
    if args.new_history {
        crate::history::check(&args.split.base)?;
    }
    write_all(&changes, &args.instance)?;
    let lock = crate::lock::try_lock(&args.split.base, &args.instance, &args.instance_url);
    if !lock.stale.is_empty() {
        changes.manual.push(format!(
            "flake.lock is stale: it does not lock {}; run `{}` in `{}` (`verify` calls the base unproven until then){}",
            lock.stale.iter().map(|i| format!("`{i}`")).collect::<Vec<_>>().join(", "),
            lock.command,
            args.split.base.display(),
            lock.why.map_or_else(String::new, |why| format!("; {why}"))
        ));
    }
    let locked = lock.instance_from.map(|from| {
        format!(
            "flake.lock pins `instance` by content (narHash) as read from `{from}`; the host overrides the input with its own checkout (docs/install.md)"
        )
    });
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
    report_apply(
        printer,
        args,
        &changes,
        history.as_deref(),
        locked.as_deref(),
        options_checked.as_deref(),
    )?;
    Ok(ExitStatus::Success)
}

/// Refuses a rewrite whose runtime-file option the host does not have; says
/// what was checked, or in a `manual:` note why it could not be.
fn check_runtime_options(
    base: &std::path::Path,
    changes: &mut extract::Changes,
) -> anyhow::Result<Option<String>> {
    use crate::runtime_options::{check, Checked};
    if changes.runtime_options.is_empty() {
        return Ok(None);
    }
    let names = || {
        changes
            .runtime_options
            .iter()
            .map(|o| format!("`{}`", o.dotted()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match check(base, changes.host.as_deref(), &changes.runtime_options) {
        Checked::Declared => Ok(Some(format!(
            "{} declared in host `{}`'s option tree (`nix eval --offline` of its `options`)",
            names(),
            changes.host.as_deref().unwrap_or_default()
        ))),
        Checked::Missing(missing) => {
            let lines: Vec<String> = missing
                .iter()
                .map(|o| {
                    format!(
                        "`{}` line {}: `{}` is not an option of host `{}`: this service has no runtime-file form of that name; bind the secret to the option it has by hand",
                        base.join(&o.file).display(),
                        o.line,
                        o.dotted(),
                        changes.host.as_deref().unwrap_or_default()
                    )
                })
                .collect();
            bail!("{}", lines.join("\n"))
        }
        Checked::Unproven(why) => {
            let names = names();
            changes.manual.push(format!(
                "the runtime-file options {names} follow the NixOS naming convention but were not looked up in the host's options: {why}; check that each exists"
            ));
            Ok(None)
        }
    }
}

/// The answer of an `apply` that finds the host's files already generic.
fn report_nothing_to_do(args: &ApplyArgs, printer: &Printer, others: usize) -> anyhow::Result<()> {
    if printer.json() {
        printer.print_json(&serde_json::json!({
            "schema_version": 1,
            "nothing_to_do": true,
            "other_hosts_findings": others,
            "base": args.split.base.display().to_string(),
            "instance": args.instance.display().to_string(),
        }))?;
        return Ok(());
    }
    let others = if others == 0 {
        String::new()
    } else {
        format!(" ({others} finding(s) remain in files only the flake's other hosts use)")
    };
    printer.print_text(&format!(
        "nothing to do: `{}` is already generic for this host and `{}` holds its instance{others}\n",
        args.split.base.display(),
        args.instance.display()
    ))?;
    Ok(())
}
