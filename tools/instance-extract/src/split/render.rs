//! How `plan` and `apply` show their results: one line per finding, the
//! dry run's unified diffs, and the apply report as text or JSON.

use std::fmt::Write as _;
use std::path::Path;

use fromgit_cli::Printer;
use serde::Serialize;

use crate::cli::ApplyArgs;
use crate::extract::{self, Changes};
use crate::nixsrc::{Finding, FindingKind};

pub(super) fn finding_line(finding: &Finding) -> String {
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
    #[serde(skip_serializing_if = "Option::is_none")]
    lock: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    options_checked: Option<&'a str>,
    files: Vec<String>,
}

pub(super) fn unified_diff(path: &Path, before: Option<&str>, after: &str) -> String {
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

pub(super) fn report_apply(
    printer: &Printer,
    args: &ApplyArgs,
    changes: &Changes,
    history: Option<&str>,
    locked: Option<&str>,
    options_checked: Option<&str>,
) -> anyhow::Result<()> {
    if printer.json() {
        return apply_json(
            printer,
            args,
            changes,
            history,
            locked,
            options_checked,
            false,
        );
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
    if let Some(locked) = locked {
        let _ = writeln!(text, "\nLock: {locked}");
    }
    if let Some(checked) = options_checked {
        let _ = writeln!(text, "\nRuntime-file options: {checked}");
    }
    for note in &changes.manual {
        let _ = writeln!(text, "\nmanual: {note}");
    }
    printer.print_text(&text)?;
    Ok(())
}

/// The JSON form of `apply`: what was written or, with `--dry-run`, what would be.
pub(super) fn apply_json(
    printer: &Printer,
    args: &ApplyArgs,
    changes: &Changes,
    history: Option<&str>,
    locked: Option<&str>,
    options_checked: Option<&str>,
    dry_run: bool,
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
    printer
        .print_json(&ApplyReport {
            schema_version: 1,
            dry_run,
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
            lock: locked,
            options_checked,
            files,
        })
        .map_err(Into::into)
}
