//! leak-scan exists to prove that the generic base repo stays generic: no
//! secret and no instance data may reach it, in its tree, in the next
//! commit, or anywhere in its history. It is instance-aware without holding
//! instance data: an instance enrolls salted keyed fingerprints of its
//! values, and the scanner matches against those instead of the values.
//! Where it cannot prove absence (a shallow clone, a skipped blob, an
//! unreadable fingerprint file) it says so with exit code 3.

pub mod cache;
pub mod cli;
pub mod engine;
pub mod enroll;
pub mod git;
pub mod known;
pub mod report;
pub mod rules;
pub mod sopscheck;
pub mod suppress;
pub mod tree;

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use fromgit_cli::{ExitStatus, GlobalArgs};

use crate::cli::{Command, EnrollArgs, Format, RulesArgs, ScanArgs};
use crate::engine::{Engine, Hit, Level};
use crate::known::KnownSet;
use crate::report::{Finding, Report, Source, UnusedSuppression};
use crate::rules::RuleSet;
use crate::suppress::Suppressions;

pub use cli::Cli;

/// The suppressions file looked for at the root of the scanned tree.
pub const SUPPRESSIONS_FILE: &str = ".leak-scan.toml";

/// Runs one command; errors become exit code 2 in `main`.
pub fn run(cli: &Cli) -> anyhow::Result<ExitStatus> {
    if let Some(command) = &cli.command {
        let name = match command {
            Command::Enroll(_) => "enroll",
            Command::Rules(_) => "rules",
        };
        let stray = cli.scan.scan_flags_given();
        if !stray.is_empty() {
            anyhow::bail!(
                "{} applies to a scan, not to `leak-scan {name}`",
                stray.join(", ")
            );
        }
    }
    match &cli.command {
        Some(Command::Enroll(args)) => enroll_command(args, &cli.global),
        Some(Command::Rules(rules)) => rules_command(&cli.scan, rules, &cli.global),
        None => scan_command(&cli.scan, &cli.global),
    }
}

/// The output format; `--json` with another `--format` is a contradiction,
/// refused rather than one silently winning.
fn format_of(args: &ScanArgs, global: &GlobalArgs) -> anyhow::Result<Format> {
    match (global.json, args.format) {
        (false, format) => Ok(format),
        (true, Format::Human | Format::Json) => Ok(Format::Json),
        (true, Format::Sarif) => Err(fromgit_cli::JsonNotApplicable {
            command: "leak-scan --format sarif",
            reason: "prints SARIF, a JSON format of its own",
            hint: Some("give `--format sarif` or `--json`, not both"),
        }
        .into()),
    }
}

fn rules_command(
    args: &ScanArgs,
    rules: &RulesArgs,
    global: &GlobalArgs,
) -> anyhow::Result<ExitStatus> {
    let catalog = Engine::new(RuleSet::load(&args.rules)?, None, suppress::DEFAULT_SALT).catalog();
    // `leak-scan --format json rules`, the scan's flag before the command, still works.
    let mut report = rules.report.clone();
    if report.format.format.is_none() && args.format == Format::Json {
        report.format.format = Some(fromgit_cli::ReportFormat::Json);
    }
    fromgit_cli::Printer::new(global, &report)?.print(&catalog, || {
        let mut text = String::new();
        for rule in &catalog {
            let _ = writeln!(text, "{:<28} {}", rule.id, rule.name);
        }
        text
    })?;
    Ok(ExitStatus::Success)
}

fn enroll_command(args: &EnrollArgs, global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let printer = fromgit_cli::Printer::to_stdout(global, &args.report)?;
    let (enroller, summary) = enroll::enroll(&args.instance, &args.identities, &args.domains)?;
    let file = enroller.finish();
    let mut text = serde_json::to_string_pretty(&file)?;
    text.push('\n');
    // The file holds only salted hashes, but they are keyed to the secrets:
    // owner-only, written whole or not at all.
    fromgit_fs::write_checked(
        &args.output,
        text.as_bytes(),
        fromgit_fs::Mode::Private,
        |bytes| serde_json::from_slice::<serde_json::Value>(bytes).map(drop),
    )?;
    for warning in &summary.warnings {
        fromgit_cli::warn(warning);
    }
    let line = format!(
        "enrolled {} secret(s), {} domain(s), {} address(es), {} e-mail address(es) as {} fingerprints in `{}`\n",
        summary.secrets,
        summary.domains,
        summary.addresses,
        summary.emails,
        summary.entries,
        args.output.display()
    );
    if printer.json() {
        let doc = serde_json::json!({
            "schema_version": 1,
            "output": args.output.display().to_string(),
            "secrets": summary.secrets,
            "domains": summary.domains,
            "addresses": summary.addresses,
            "emails": summary.emails,
            "fingerprints": summary.entries,
            "warnings": summary.warnings,
        });
        printer.print_json(&doc)?;
    } else if global.quiet == 0 {
        printer.print_text(&line)?;
    }
    Ok(ExitStatus::Success)
}

/// Where `.leak-scan.toml` and `.sops.yaml` are looked for.
fn scan_root(args: &ScanArgs) -> anyhow::Result<(PathBuf, Option<gix::Repository>)> {
    if args.staged || args.history {
        let repo = git::open(&args.dir)?;
        Ok((git::root_of(&repo), Some(repo)))
    } else {
        anyhow::ensure!(
            args.dir.is_dir(),
            "`{}` is not a directory",
            args.dir.display()
        );
        Ok((args.dir.clone(), None))
    }
}

fn scan_command(args: &ScanArgs, global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    format_of(args, global)?;
    let (root, repo) = scan_root(args)?;
    let suppressions_path = args
        .suppressions
        .clone()
        .or_else(|| Some(root.join(SUPPRESSIONS_FILE)).filter(|p| p.is_file()));
    let mut suppressions = match &suppressions_path {
        Some(path) => Suppressions::load(path)
            .with_context(|| format!("Failed to use the suppressions in `{}`", path.display()))?,
        None => Suppressions::default(),
    };
    let rules = RuleSet::load(&args.rules).context("Failed to load the rules")?;
    let mut unproven = Vec::new();
    let known = match &args.fingerprints {
        Some(path) => match KnownSet::load(path) {
            Ok(set) => Some(set),
            Err(err) => {
                unproven.push(format!(
                    "the fingerprint file `{}` is unreadable ({err}): the instance's values were not checked",
                    path.display()
                ));
                None
            }
        },
        None => None,
    };
    let cache_key = (!args.no_cache).then(|| {
        cache::key(
            &rules.digest,
            known.as_ref().map(|k| &k.digest),
            args.max_size,
        )
    });
    let salt = suppressions
        .salt
        .clone()
        .unwrap_or_else(|| suppress::DEFAULT_SALT.to_vec());
    let engine = Engine::new(rules, known, &salt);
    let catalog = engine.catalog();

    let progress = global.quiet == 0 && !global.json && args.format == Format::Human;
    let (mode, located, coverage, more_unproven) = if let Some(repo) = repo {
        if args.staged {
            let outcome = git::staged(&repo, &engine, args.max_size, cache_key.as_deref())?;
            (
                "staged",
                from_git(outcome.hits),
                outcome.coverage,
                outcome.unproven,
            )
        } else {
            let options = git::HistoryOptions {
                since: args.since.as_deref(),
                max_size: args.max_size,
                cache_key,
                progress,
            };
            let outcome = git::history(&repo, &engine, &options)?;
            (
                "history",
                from_git(outcome.hits),
                outcome.coverage,
                outcome.unproven,
            )
        }
    } else {
        let outcome = tree::scan(&root, &engine, args.max_size, progress)?;
        let located = outcome
            .hits
            .into_iter()
            .map(|h| Located {
                hit: h.hit,
                source: if h.file_name {
                    Source::FileName
                } else {
                    Source::File
                },
                path: Some(h.path),
                commit: None,
                blob: None,
                history_only: false,
            })
            .collect();
        ("tree", located, outcome.coverage, outcome.unproven)
    };
    unproven.extend(more_unproven);

    let mut findings = Vec::new();
    let mut suppressed = 0;
    for item in located {
        let location = item
            .path
            .as_deref()
            .or(item.commit.as_deref())
            .or(item.blob.as_deref())
            .unwrap_or_default();
        let fingerprint = hex::encode(engine.finding_fingerprint(
            &item.hit.rule,
            location,
            &item.hit.fingerprint,
        ));
        if suppressions.suppresses(&item.hit.rule, &fingerprint) {
            suppressed += 1;
            continue;
        }
        findings.push(finding(&catalog, item, fingerprint));
    }
    findings.sort_by(|a, b| {
        (&a.path, a.line, a.column, &a.rule, &a.commit)
            .cmp(&(&b.path, b.line, b.column, &b.rule, &b.commit))
    });
    let unused: Vec<UnusedSuppression> = suppressions
        .unused()
        .map(|e| UnusedSuppression {
            fingerprint: e.fingerprint.clone(),
            reason: e.reason.clone(),
        })
        .collect();
    let mut report = Report {
        schema_version: 1,
        tool: "leak-scan",
        version: env!("CARGO_PKG_VERSION"),
        mode,
        complete: unproven.is_empty(),
        unproven_reasons: unproven,
        findings,
        suppressed,
        unused_suppressions: unused,
        coverage,
        rules: catalog,
    };
    sanitize(&engine, &mut report);
    for u in &report.unused_suppressions {
        fromgit_cli::warn(&format!(
            "suppression `{}` ({}) matches nothing any more: remove it",
            u.fingerprint, u.reason
        ));
    }
    let text = match format_of(args, global)? {
        Format::Human => report::human(&report),
        Format::Json => report::json(&report)?,
        Format::Sarif => report::sarif(&report)?,
    };
    fromgit_cli::write_report(args.output.as_deref(), &text)?;
    Ok(
        if !report.findings.is_empty()
            || (args.fail_unused_suppressions && !report.unused_suppressions.is_empty())
        {
            ExitStatus::Failure
        } else if !report.complete {
            ExitStatus::Unproven
        } else {
            ExitStatus::Success
        },
    )
}

/// Every text a report prints that came from the scanned repository or a
/// user's file (paths, ref names, skipped and ignored entries, unproven
/// reasons, rule names, suppression reasons) goes through the engine's
/// redaction and escaping, in one place, so that no renderer can print a
/// secret held in a file name or a crafted name's control characters.
fn sanitize(engine: &Engine, report: &mut Report) {
    for f in &mut report.findings {
        f.path = f.path.as_deref().map(|path| engine.redact(path));
        f.message = engine.redact(&f.message);
    }
    for s in &mut report.coverage.skipped {
        s.what = engine.redact(&s.what);
        s.reason = engine.redact(&s.reason);
    }
    for entry in &mut report.coverage.ignored {
        *entry = engine.redact(entry);
    }
    for reason in &mut report.unproven_reasons {
        *reason = engine.redact(reason);
    }
    for u in &mut report.unused_suppressions {
        u.fingerprint = engine.redact(&u.fingerprint);
        u.reason = engine.redact(&u.reason);
    }
}

struct Located {
    hit: Hit,
    source: Source,
    path: Option<String>,
    commit: Option<String>,
    blob: Option<String>,
    history_only: bool,
}

fn from_git(hits: Vec<git::GitHit>) -> Vec<Located> {
    hits.into_iter()
        .map(|h| Located {
            hit: h.hit,
            source: h.source,
            path: h.path,
            commit: h.commit,
            blob: h.blob,
            history_only: h.history_only,
        })
        .collect()
}

fn finding(catalog: &[engine::RuleInfo], item: Located, fingerprint: String) -> Finding {
    let info = catalog.iter().find(|r| r.id == item.hit.rule);
    let name = info.map_or_else(|| item.hit.rule.clone(), |r| r.name.clone());
    let message = match &item.hit.known {
        Some(known) => format!(
            "{name}: known {} `{}` ({} form)",
            known.kind, known.label, known.transform
        ),
        None => name,
    };
    let message = match item.source {
        Source::FileName => format!("{message}, in a file name"),
        Source::Commit => format!("{message}, in a commit message or author"),
        Source::Tag => format!("{message}, in a tag"),
        Source::Ref => format!("{message}, in a ref name"),
        Source::UnreachableBlob => format!("{message}, in a blob no ref reaches"),
        Source::File => message,
    };
    Finding {
        level: info.map_or(Level::Error, |r| r.level),
        rule: item.hit.rule,
        message,
        source: item.source,
        path: item.path,
        line: item.hit.line,
        column: item.hit.column,
        end_line: item.hit.end_line,
        end_column: item.hit.end_column,
        commit: item.commit,
        blob: item.blob,
        history_only: item.history_only,
        id: fingerprint[..12].to_owned(),
        fingerprint,
        content_fingerprint: hex::encode(item.hit.fingerprint),
        known: item.hit.known,
    }
}
