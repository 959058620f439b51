//! `cert-seal`: the wildcard certificate of an instance, validated and
//! sealed into its sops file, so that TLS comes from git like every other
//! secret. Renewal needs only public recipients; inspecting and probing need
//! no key at all, because the certificate's public facts are kept in clear
//! values that the MAC still covers.

pub mod check;
pub mod cli;
pub mod nix;
pub mod pem_input;
pub mod renewal;

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context as _};
use fromgit_cli::{ExitStatus, Printer};
use fromgit_sops::keys::Identities;
use fromgit_sops::{config, EncryptedFile, Format, Recipient};
use fromgit_tls::sealed::{self, read_sealed, sealed_summary, summary_of};
use fromgit_tls::{probe, CertSummary};
use serde::Serialize;
use time::OffsetDateTime;

use crate::check::{Policy, Refusal};
use crate::cli::{CheckArgs, Command, InspectArgs, NixArgs, PairArgs, ProbeArgs, SealArgs};
use crate::pem_input::{normalised_pem, Read};
use crate::renewal::Renewal;

pub use cli::Cli;

/// Runs one command; errors become exit code 2 in `main`.
pub fn run(cli: &Cli) -> anyhow::Result<ExitStatus> {
    match &cli.command {
        Command::Check(args) => check_command(args, &Printer::new(&cli.global, &args.report)?),
        Command::Seal(args) => seal_command(args, &Printer::to_stdout(&cli.global, &args.format)?),
        Command::Inspect(args) => inspect_command(args, &Printer::new(&cli.global, &args.report)?),
        Command::Probe(args) => probe_command(args, &Printer::new(&cli.global, &args.report)?),
        Command::Nix(args) => {
            fromgit_cli::refuse_json(
                &cli.global,
                "cert-seal nix",
                "prints Nix source, not data",
                None,
            )?;
            nix_command(args)
        }
    }
}

/// A checked pair: the chain and key as normalised PEM, the leaf's summary.
struct CheckedPair {
    fullchain: zeroize::Zeroizing<String>,
    key: zeroize::Zeroizing<String>,
    summary: CertSummary,
}

enum Checked {
    Passed(CheckedPair),
    Refused(Vec<Refusal>, Option<CertSummary>),
}

fn check_pair(pair: &PairArgs) -> anyhow::Result<Checked> {
    let input_refusal = |refusal: pem_input::InputRefusal| Refusal {
        check: "input",
        message: refusal.to_string(),
    };
    let chain = match pem_input::read_chain(&pair.cert)? {
        Read::Ok(chain) => chain,
        Read::Refused(refusal) => return Ok(Checked::Refused(vec![input_refusal(refusal)], None)),
    };
    let key = match pem_input::read_key(&pair.key)? {
        Read::Ok(key) => key,
        Read::Refused(refusal) => return Ok(Checked::Refused(vec![input_refusal(refusal)], None)),
    };
    let certificates = match check::parse_chain(&chain) {
        Ok(certificates) => certificates,
        Err(refusal) => return Ok(Checked::Refused(vec![refusal], None)),
    };
    let policy = Policy {
        domain: &pair.domain,
        now: OffsetDateTime::now_utc(),
        min_days: pair.min_days,
        allow_short: pair.allow_short,
    };
    let refusals = check::check(&certificates, &key, &policy);
    let Some(summary) = certificates.first().map(CertSummary::of) else {
        return Ok(Checked::Refused(refusals, None));
    };
    if !refusals.is_empty() {
        return Ok(Checked::Refused(refusals, Some(summary)));
    }
    let mut fullchain = zeroize::Zeroizing::new(String::new());
    for der in &chain.der {
        fullchain.push_str(&normalised_pem("CERTIFICATE", der));
    }
    Ok(Checked::Passed(CheckedPair {
        fullchain,
        key: normalised_pem(&key.label, &key.der),
        summary,
    }))
}

#[derive(Serialize)]
struct CheckReport<'a> {
    schema_version: u32,
    verdict: &'static str,
    refusals: &'a [Refusal],
    certificate: Option<&'a CertSummary>,
}

fn report_refusals(
    printer: &Printer,
    refusals: &[Refusal],
    summary: Option<&CertSummary>,
) -> anyhow::Result<ExitStatus> {
    if printer.json() {
        printer.print_json(&CheckReport {
            schema_version: 1,
            verdict: "refused",
            refusals,
            certificate: summary,
        })?;
    } else {
        let mut text = String::new();
        for refusal in refusals {
            let _ = writeln!(text, "refused ({}): {}", refusal.check, refusal.message);
        }
        printer.print_text(&text)?;
    }
    Ok(ExitStatus::Failure)
}

fn describe_summary(summary: &CertSummary, now: OffsetDateTime) -> String {
    let days = summary
        .days_left(now)
        .map_or_else(String::new, |d| format!(" ({d} days left)"));
    format!(
        "names:       {}\nissuer:      {}\nkey:         {}\nfingerprint: {}\nvalid:       {} .. {}{days}\n",
        summary.names.join(", "),
        summary.issuer,
        summary.key_type,
        summary.sha256_fingerprint,
        summary.not_before,
        summary.not_after,
    )
}

fn check_command(args: &CheckArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    match check_pair(&args.pair)? {
        Checked::Refused(refusals, summary) => {
            report_refusals(printer, &refusals, summary.as_ref())
        }
        Checked::Passed(pair) => {
            if printer.json() {
                printer.print_json(&CheckReport {
                    schema_version: 1,
                    verdict: "pass",
                    refusals: &[],
                    certificate: Some(&pair.summary),
                })?;
            } else {
                let text = format!(
                    "pass\n{}",
                    describe_summary(&pair.summary, OffsetDateTime::now_utc())
                );
                printer.print_text(&text)?;
            }
            Ok(ExitStatus::Success)
        }
    }
}

#[derive(Serialize)]
struct SealReport<'a> {
    schema_version: u32,
    verdict: &'static str,
    file: String,
    certificate: &'a CertSummary,
    renewal: Option<&'a Renewal>,
    commit_message: String,
}

fn seal_command(args: &SealArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let pair = match check_pair(&args.pair)? {
        Checked::Refused(refusals, summary) => {
            return report_refusals(printer, &refusals, summary.as_ref())
        }
        Checked::Passed(pair) => pair,
    };
    let tls = sealed::tls_value(pair.fullchain.clone(), pair.key.clone(), &pair.summary);
    let (target, previous, written) = if let Some(into) = &args.into {
        let file = read_sealed(into)?;
        let previous = sealed::clear_summary(&file.tree);
        ensure_protected(&file.metadata.selection, into)?;
        let identities = Identities::from_files_or_env(&args.identities)
            .context("Failed to load the identities")?;
        let decrypted = file
            .decrypt(&identities)
            .with_context(|| format!("Failed to decrypt `{}`", into.display()))?;
        let tree = sealed::with_tls(decrypted.tree.clone(), tls);
        let written = decrypted
            .reencrypt(&tree)
            .with_context(|| format!("Failed to re-encrypt `{}`", into.display()))?;
        (into, previous, written)
    } else {
        let out = args
            .out
            .as_ref()
            .context("`--out` or `--into` is required")?;
        let previous = if out.exists() {
            sealed::clear_summary(&read_sealed(out)?.tree)
        } else {
            None
        };
        let (recipients, selection) = if args.recipients.is_empty() {
            let rule = config::rule_for(args.config.as_deref(), out)?;
            (rule.recipients, rule.selection.unwrap_or_default())
        } else {
            let recipients = args
                .recipients
                .iter()
                .map(|r| Recipient::parse(r))
                .collect::<Result<Vec<_>, _>>()
                .context("Invalid `--recipient`")?;
            (recipients, fromgit_sops::metadata::Selection::default())
        };
        ensure_protected(&selection, out)?;
        let format = Format::from_path(out).unwrap_or(Format::Yaml);
        let tree = sealed::with_tls(Vec::new(), tls);
        let written = fromgit_sops::encrypt_new(format, &tree, &recipients, selection)
            .with_context(|| format!("Failed to encrypt `{}`", out.display()))?;
        (out, previous, written)
    };
    let renewal = previous
        .as_ref()
        .map(|old| Renewal::between(old, &pair.summary));
    if let Some(renewal) = &renewal {
        if !renewal.names_removed.is_empty() && !args.allow_name_removal {
            let refusal = Refusal {
                check: "names-removed",
                message: format!(
                    "the new certificate drops {} that `{}` covers; pass `--allow-name-removal` if that is intended",
                    renewal.names_removed.join(", "),
                    target.display()
                ),
            };
            return report_refusals(printer, &[refusal], Some(&pair.summary));
        }
    }
    written.write_to(target)?;
    let commit_message = match &renewal {
        Some(renewal) => renewal.commit_message(&pair.summary),
        None => format!(
            "tls: seal {} certificate, valid until {}\n",
            pair.summary.names.join(", "),
            pair.summary.not_after.get(..10).unwrap_or_default()
        ),
    };
    if printer.json() {
        printer.print_json(&SealReport {
            schema_version: 1,
            verdict: "sealed",
            file: target.display().to_string(),
            certificate: &pair.summary,
            renewal: renewal.as_ref(),
            commit_message,
        })?;
    } else {
        let text = format!(
            "sealed `{}`\n{}\ncommit message:\n\n{commit_message}",
            target.display(),
            describe_summary(&pair.summary, OffsetDateTime::now_utc())
        );
        printer.print_text(&text)?;
    }
    Ok(ExitStatus::Success)
}

fn ensure_protected(
    selection: &fromgit_sops::metadata::Selection,
    file: &Path,
) -> anyhow::Result<()> {
    let matcher = selection.matcher()?;
    if !sealed::layout_is_protected(&matcher) {
        bail!(
            "the selection rule for `{}` ({selection:?}) would not encrypt `tls.fullchain` and `tls.key` while keeping `tls.{}` clear\nhint: use the default `unencrypted_suffix: _unencrypted` for this file",
            file.display(),
            sealed::CLEAR_KEY
        );
    }
    Ok(())
}

#[derive(Serialize)]
struct InspectReport<'a> {
    schema_version: u32,
    file: String,
    certificate: &'a CertSummary,
    days_left: Option<i64>,
    min_days: i64,
    ok: bool,
    /// Whether the clear values were checked against the decrypted
    /// certificate (`--identity`); without it they are unauthenticated.
    authenticated: bool,
    /// With `--identity`: whether the clear values match the certificate.
    matches_sealed: Option<bool>,
}

/// Why the clear values of a sealed file are not those of its certificate.
enum Mismatch {
    /// The MAC does not cover the file as it is: something was edited.
    Mac,
    /// The MAC holds, but the clear values describe another certificate.
    Values,
}

/// Decrypts the sealed chain and compares its leaf with the clear summary.
fn check_clear_values(
    file: &EncryptedFile,
    path: &Path,
    identities: &[std::path::PathBuf],
    clear: &CertSummary,
) -> anyhow::Result<Option<Mismatch>> {
    let identities =
        Identities::from_files_or_env(identities).context("Failed to load the identities")?;
    let decrypted = match file.decrypt(&identities) {
        Ok(decrypted) => decrypted,
        Err(fromgit_sops::SopsError::MacMismatch) => return Ok(Some(Mismatch::Mac)),
        Err(err) => {
            return Err(err).with_context(|| format!("Failed to decrypt `{}`", path.display()))
        }
    };
    let fullchain = match decrypted.tree.iter().find(|(k, _)| k == sealed::TLS_KEY) {
        Some((_, fromgit_sops::Value::Map(tls))) => {
            match tls.iter().find(|(k, _)| k == sealed::FULLCHAIN_KEY) {
                Some((_, fromgit_sops::Value::Scalar(scalar))) => scalar.text.clone(),
                _ => None.with_context(|| {
                    format!("`{}` has no sealed `tls.fullchain`", path.display())
                })?,
            }
        }
        _ => None.with_context(|| format!("`{}` has no sealed `tls`", path.display()))?,
    };
    let chain = match pem_input::chain_from_bytes(path, fullchain.as_bytes()) {
        Read::Ok(chain) => chain,
        Read::Refused(refusal) => bail!("the sealed chain of `{}`: {refusal}", path.display()),
    };
    let leaf = chain
        .der
        .first()
        .and_then(|der| fromgit_tls::parse_der(der))
        .with_context(|| {
            format!(
                "the sealed leaf of `{}` is not a valid X.509 certificate",
                path.display()
            )
        })?;
    Ok((CertSummary::of(&leaf) != *clear).then_some(Mismatch::Values))
}

fn inspect_command(args: &InspectArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let file = read_sealed(&args.file)?;
    let summary = summary_of(&file, &args.file)?;
    let mismatch = if args.identities.is_empty() {
        None
    } else {
        Some(check_clear_values(
            &file,
            &args.file,
            &args.identities,
            &summary,
        )?)
    };
    let matches_sealed = mismatch.as_ref().map(Option::is_none);
    let now = OffsetDateTime::now_utc();
    let days_left = summary.days_left(now);
    let fresh = days_left.is_some_and(|d| d >= args.min_days);
    let ok = fresh && matches_sealed != Some(false);
    if printer.json() {
        printer.print_json(&InspectReport {
            schema_version: 1,
            file: args.file.display().to_string(),
            certificate: &summary,
            days_left,
            min_days: args.min_days,
            ok,
            authenticated: matches_sealed.is_some(),
            matches_sealed,
        })?;
    } else {
        let mut text = describe_summary(&summary, now);
        match &mismatch {
            None => text.push_str(
                "checked:     no: these clear values are unauthenticated without the key \
                 (pass `--identity` to check them against the sealed certificate)\n",
            ),
            Some(None) => {
                text.push_str("checked:     yes: they match the decrypted certificate\n");
            }
            Some(Some(Mismatch::Mac)) => text.push_str(
                "MISMATCH: the file does not match its MAC: it was edited outside sops or \
                 fromgit, so these values cannot be trusted\n",
            ),
            Some(Some(Mismatch::Values)) => text
                .push_str("MISMATCH: these clear values do not describe the sealed certificate\n"),
        }
        if !fresh {
            let _ = writeln!(text, "renew: fewer than {} days left", args.min_days);
        }
        printer.print_text(&text)?;
    }
    Ok(if ok {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}

#[derive(Serialize)]
struct ProbeReport<'a> {
    schema_version: u32,
    address: &'a str,
    sni: &'a str,
    matches: bool,
    served: &'a CertSummary,
    sealed: &'a CertSummary,
}

fn probe_command(args: &ProbeArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let expected = sealed_summary(&args.expect)?;
    let sni = match &args.sni {
        Some(sni) => sni.clone(),
        None => args
            .address
            .rsplit_once(':')
            .map_or(args.address.as_str(), |(host, _)| host)
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
    };
    let chain = probe::served_chain(&args.address, &sni, Duration::from_secs(args.timeout))?;
    let leaf = fromgit_tls::parse_der(&chain[0]).with_context(|| {
        format!(
            "`{}` served a leaf that is not a valid X.509 certificate",
            args.address
        )
    })?;
    let served = CertSummary::of(&leaf);
    let matches = served.sha256_fingerprint == expected.sha256_fingerprint;
    if printer.json() {
        printer.print_json(&ProbeReport {
            schema_version: 1,
            address: &args.address,
            sni: &sni,
            matches,
            served: &served,
            sealed: &expected,
        })?;
    } else {
        let verdict = if matches { "match" } else { "MISMATCH" };
        let text = format!(
            "{verdict}: `{}` (SNI `{sni}`) serves the {} certificate\n\
             served: {} valid {} .. {}\nsealed: {} valid {} .. {}\n",
            args.address,
            if matches { "sealed" } else { "wrong" },
            served.sha256_fingerprint,
            served.not_before,
            served.not_after,
            expected.sha256_fingerprint,
            expected.not_before,
            expected.not_after,
        );
        printer.print_text(&text)?;
    }
    Ok(if matches {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}

fn nix_command(args: &NixArgs) -> anyhow::Result<ExitStatus> {
    let file = read_sealed(&args.file)?;
    let has_pair = matches!(
        file.tree.iter().find(|(k, _)| k == sealed::TLS_KEY),
        Some((_, fromgit_sops::Value::Map(tls)))
            if tls.iter().any(|(k, _)| k == sealed::FULLCHAIN_KEY) && tls.iter().any(|(k, _)| k == sealed::PRIVATE_KEY_KEY)
    );
    if !has_pair {
        bail!(
            "`{}` has no sealed `tls.fullchain` and `tls.key`",
            args.file.display()
        );
    }
    let text = nix::declarations(&nix::Wiring {
        sops_file: &args.file,
        fullchain_path: &args.fullchain_path,
        key_path: &args.key_path,
        owner: &args.owner,
        group: args.group.as_deref(),
        restart_units: &args.restart_units,
        reload_units: &args.reload_units,
    })?;
    fromgit_cli::write_stdout(text.as_bytes())?;
    Ok(ExitStatus::Success)
}
