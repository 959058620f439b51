//! `apply`: computes every change of the split in memory, then hands them
//! to the transaction that writes all of them or none.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Context as _};
use fromgit_cli::{ExitStatus, GlobalArgs};

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
        if global.json {
            fromgit_cli::write_json(&serde_json::json!({
                "schema_version": 1,
                "nothing_to_do": true,
                "base": args.split.base.display().to_string(),
                "instance": args.instance.display().to_string(),
            }))?;
            return Ok(ExitStatus::Success);
        }
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
    if args.dry_run && global.json {
        apply_json(args, &changes, None, true)?;
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
