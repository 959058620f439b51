//! closure-diff exists to prove that splitting a flake into a base and an
//! instance changed nothing that gets deployed: two system closures are
//! identical when every store path in them has the same NAR hash. When they
//! are not, it explains every drift, following each differing path down to
//! the derivation whose change caused it.

pub mod cli;
pub mod compare;
pub mod input;
pub mod render;
pub mod report;
pub mod rootcause;
pub mod side;
pub mod snapshot;
pub mod ssh;
pub mod verify;

use anyhow::{Context as _, Result};
use fromgit_cli::{ExitStatus, GlobalArgs, Printer};

pub use cli::Cli;
use cli::{CompareArgs, Level, SnapshotArgs};
use report::Outcome;

/// Runs the chosen subcommand.
pub fn run(cli: &Cli) -> Result<ExitStatus> {
    match &cli.command {
        Some(cli::Command::Compare(args)) => compare(args, &cli.global),
        Some(cli::Command::Snapshot(args)) => snapshot(args, &cli.global),
        None => compare(&cli.compare, &cli.global),
    }
}

/// Builds the report for a comparison (no printing); `progress` draws a bar
/// on a terminal while `--verify-on-disk` hashes store paths.
pub fn compare_report(args: &CompareArgs, progress: bool) -> Result<report::Report> {
    let (Some(old_spec), Some(new_spec)) = (&args.old, &args.new) else {
        anyhow::bail!("two closures are needed: `closure-diff OLD NEW`");
    };
    let start = std::time::Instant::now();
    let level = if args.verify_on_disk {
        Level::VerifiedOnDisk
    } else {
        args.level
    };
    // With two local toplevels, the `.drv` walk starts at once and runs
    // while the closures load; otherwise it starts once they are loaded.
    let local = input::local_pair(old_spec, new_spec, &args.store);
    let early = if args.no_root_cause {
        None
    } else {
        local
            .as_ref()
            .and_then(|l| input::drv_only_pair(l, old_spec, new_spec, &args.store))
            .filter(|(a, b)| a.roots_differ(b))
    };
    std::thread::scope(|s| {
        let early_walk = match &early {
            Some((a, b)) => Some(spawn_walk(s, a, b, &args.expect_drift)?),
            None => None,
        };
        let (old, new) = input::load_pair(old_spec, new_spec, &args.store, local)?;
        tracing::debug!("loaded both sides in {:?}", start.elapsed());
        let paths = compare::diff_paths(&old, &new);
        let (mut packages, totals) = compare::packages(&old, &new, &args.expect_drift);
        if old.unrealised || new.unrealised {
            // One side has no paths: every package would read as added or removed.
            packages.clear();
        }
        tracing::debug!("package view done at {:?}", start.elapsed());
        let root_cause = if let Some(handle) = early_walk {
            Some(
                handle
                    .join()
                    .map_err(|_| anyhow::anyhow!("the root-cause walk crashed"))??,
            )
        } else if !args.no_root_cause && old.roots_differ(&new) {
            Some(std::thread::scope(|inner| {
                spawn_walk(inner, &old, &new, &args.expect_drift)?
                    .join()
                    .map_err(|_| anyhow::anyhow!("the root-cause walk crashed"))?
            })?)
        } else {
            None
        };
        tracing::debug!("compared and walked in {:?}", start.elapsed());
        let disk = (level == Level::VerifiedOnDisk)
            .then(|| verify::verify(&[&old, &new], args.jobs, progress));
        let report = report::build(report::Findings {
            old: &old,
            new: &new,
            paths,
            packages,
            totals,
            root_cause,
            disk,
            patterns: &args.expect_drift,
            level,
        });
        // The sides hold every path of both closures; the report is printed
        // and the process ends right after, so they are not freed one by one.
        std::mem::forget(old);
        std::mem::forget(new);
        Ok(report)
    })
}

/// Starts the root-cause walk on its own thread: derivation graphs are
/// deep, so it gets a large stack.
fn spawn_walk<'scope, 'env>(
    s: &'scope std::thread::Scope<'scope, 'env>,
    old: &'env side::Side,
    new: &'env side::Side,
    patterns: &'env [compare::DriftPattern],
) -> Result<std::thread::ScopedJoinHandle<'scope, Result<rootcause::RootCause>>> {
    std::thread::Builder::new()
        .stack_size(256 * 1024 * 1024)
        .spawn_scoped(s, move || rootcause::analyse(old, new, patterns))
        .context("Failed to start the root-cause thread")
}

fn compare(args: &CompareArgs, global: &GlobalArgs) -> Result<ExitStatus> {
    let printer = Printer::new(global, &args.report)?;
    let report = compare_report(args, global.quiet == 0 && !printer.json())?;
    printer.print(&report, || render::human(&report, printer.color()))?;
    let status = match report.verdict.result {
        Outcome::Identical | Outcome::IdenticalExceptExpected => ExitStatus::Success,
        Outcome::Differs => ExitStatus::Failure,
        Outcome::Unproven => ExitStatus::Unproven,
    };
    // The process ends next: freeing thousands of small allocations one by
    // one would only delay the exit.
    std::mem::forget(report);
    Ok(status)
}

fn snapshot(args: &SnapshotArgs, global: &GlobalArgs) -> Result<ExitStatus> {
    let side = input::load(&args.closure, &args.store)?;
    let doc = snapshot::render(&side, !args.no_drvs)?;
    let mut text = serde_json::to_string(&doc)?;
    text.push('\n');
    match &args.output {
        Some(path) => {
            fromgit_fs::write(path, text.as_bytes(), fromgit_fs::Mode::KeepOrPublic)?;
            if global.json {
                // The snapshot went to the file; stdout says what was written.
                fromgit_cli::write_json(&serde_json::json!({
                    "schema_version": 1,
                    "written": path.display().to_string(),
                    "paths": side.infos.len(),
                }))?;
            } else if global.quiet == 0 {
                tracing::info!("wrote {} paths to `{}`", side.infos.len(), path.display());
            }
        }
        None => fromgit_cli::write_stdout(text.as_bytes())?,
    }
    Ok(ExitStatus::Success)
}
