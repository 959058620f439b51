//! `verify`: proves an instance repo sound (its secrets decrypt and match
//! their creation rules) and, given the base, that the base holds no
//! instance data and wires sops-nix as the instance expects.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use fromgit_cli::{ExitStatus, Printer};
use fromgit_fs::walk::{Entry, Kind, SkipName, Walk};
use fromgit_sops::{config, EncryptedFile, Format};
use serde::Serialize;

use crate::cli::VerifyArgs;
use crate::extract;

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

pub fn verify(args: &VerifyArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
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
    let files = secrets_files(&args.instance.join("secrets"));
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
    if printer.json() {
        printer.print_json(&VerifyReport {
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
        printer.print_text(&text)?;
    }
    Ok(if !ok {
        ExitStatus::Failure
    } else if unproven.is_some() || !stale_lock.is_empty() {
        ExitStatus::Unproven
    } else {
        ExitStatus::Success
    })
}

/// Everything under `secrets/` that is not a directory, links followed (a
/// broken link is listed, and fails its check); what cannot be read, a
/// missing `secrets/` included, is left out.
fn secrets_files(dir: &Path) -> Vec<PathBuf> {
    let walk = Walk::new(dir).include_hidden(true).follow_symlinks(true);
    let mut out: Vec<PathBuf> = walk
        .entries()
        .flatten()
        .filter(|entry| entry.kind() != Kind::Dir)
        .map(Entry::into_path)
        .collect();
    out.sort();
    out
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
    let text_files = text_files(base)?;
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

/// The UTF-8 files of the base (not `.git`, not `result*`), relative to
/// it, in path order; a symlink is read through. An unreadable directory
/// or file fails, naming it.
fn text_files(base: &Path) -> anyhow::Result<Vec<(PathBuf, String)>> {
    let walk = Walk::new(base)
        .include_hidden(true)
        .skip(SkipName::Exactly(".git"))
        .skip(SkipName::StartsWith("result"))
        .follow_symlinks(false);
    let mut out = Vec::new();
    for entry in walk.entries() {
        let entry = entry?;
        if entry.kind() == Kind::Dir {
            continue;
        }
        let path = entry.path();
        if let Ok(text) = String::from_utf8(fs_err::read(path)?) {
            out.push((path.strip_prefix(base).unwrap_or(path).to_path_buf(), text));
        }
    }
    Ok(out)
}
