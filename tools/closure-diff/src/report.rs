//! The report model: every finding and the verdict, rendered as JSON or text.

use serde::Serialize;

use crate::cli::Level;
use crate::compare::{ChangeKind, DriftPattern, PackageChange, PathDiff, Totals};
use crate::rootcause::RootCause;
use crate::side::{Side, Source};
use crate::verify::DiskCheck;

/// The JSON schema version of the report.
pub const SCHEMA_VERSION: u32 = 1;

/// A side, as reported.
#[derive(Debug, Clone, Serialize)]
pub struct SideSummary {
    /// The input as given.
    pub input: String,
    /// The evidence source.
    pub source: Source,
    /// The store directory.
    pub store_dir: String,
    /// Toplevel store paths.
    pub roots: Vec<String>,
    /// Paths in the closure.
    pub paths: usize,
    /// Referenced paths that the input does not describe (an incomplete dump).
    pub missing_references: Vec<String>,
    /// Whether the toplevel is an unrealised derivation output (no path metadata).
    pub unrealised: bool,
}

impl SideSummary {
    /// Summarises a side.
    pub fn of(side: &Side) -> Self {
        let mut roots: Vec<String> = side.roots.iter().map(ToString::to_string).collect();
        roots.sort();
        Self {
            input: side.spec.clone(),
            source: side.source,
            store_dir: side.store_dir.to_string(),
            roots,
            paths: side.infos.len(),
            missing_references: side
                .missing_references
                .iter()
                .map(|r| side.abs(r))
                .collect(),
            unrealised: side.unrealised,
        }
    }
}

/// The status of one identity level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// The level holds.
    Holds,
    /// The level does not hold: a difference was found.
    Fails,
    /// Evidence is missing.
    Unproven,
    /// Not requested.
    NotChecked,
}

/// One level and its evidence.
#[derive(Debug, Clone, Serialize)]
pub struct LevelResult {
    /// The level.
    pub level: Level,
    /// Its status.
    pub status: Status,
    /// What it rests on, or why it fails.
    pub evidence: String,
}

/// The overall result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The requested level holds.
    Identical,
    /// The requested level holds except for drift allowed by `--expect-drift`.
    IdenticalExceptExpected,
    /// The requested level does not hold.
    Differs,
    /// The requested level could not be established.
    Unproven,
}

/// The verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// The outcome for the requested level.
    pub result: Outcome,
    /// The level asked for.
    pub requested_level: Level,
    /// The strongest level that holds, if any.
    pub strongest_level_holding: Option<Level>,
    /// The three levels with their evidence.
    pub levels: Vec<LevelResult>,
    /// Why the result is what it is, in one line.
    pub reason: String,
}

/// What one `--expect-drift` pattern matched.
#[derive(Debug, Clone, Serialize)]
pub struct ExpectedMatch {
    /// The pattern.
    pub pattern: String,
    /// Packages it matched (`name` or `name (output)`).
    pub packages: Vec<String>,
    /// Root-cause derivations it matched.
    pub derivations: Vec<String>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Always [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The old side.
    pub old: SideSummary,
    /// The new side.
    pub new: SideSummary,
    /// The verdict.
    pub verdict: Verdict,
    /// Path-level differences.
    pub paths: PathDiff,
    /// Package-level differences.
    pub packages: Vec<PackageChange>,
    /// Why there is no package view, when there is none.
    pub packages_skipped: Option<String>,
    /// Counts and sizes.
    pub totals: Totals,
    /// The root-cause walk, when done.
    pub root_cause: Option<RootCause>,
    /// What each `--expect-drift` pattern matched.
    pub expected_drift: Vec<ExpectedMatch>,
    /// Differences no pattern allows (with `--expect-drift`).
    pub unexpected_drift: Vec<String>,
    /// The on-disk check, when requested.
    pub disk: Option<DiskCheck>,
}

fn level_same_path(old: &Side, new: &Side) -> LevelResult {
    let mut a: Vec<String> = old.roots.iter().map(ToString::to_string).collect();
    let mut b: Vec<String> = new.roots.iter().map(ToString::to_string).collect();
    a.sort();
    b.sort();
    let (status, evidence) = if a == b {
        (
            Status::Holds,
            format!(
                "equal toplevels `{}`: same recipe, bytes not checked by this level",
                a.join(" ")
            ),
        )
    } else {
        (
            Status::Fails,
            format!("toplevels differ: `{}` vs `{}`", a.join(" "), b.join(" ")),
        )
    };
    LevelResult {
        level: Level::SamePath,
        status,
        evidence,
    }
}

fn level_bytes(old: &Side, new: &Side, d: &PathDiff) -> LevelResult {
    let source = |s: &Side| {
        serde_json::to_value(s.source)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    let counted = !d.added.is_empty() || !d.removed.is_empty() || !d.changed.is_empty();
    let (status, evidence) = if counted && !old.unrealised && !new.unrealised {
        (
            Status::Fails,
            format!(
                "{} paths added, {} removed, {} with the same path but a different NAR hash, size or references",
                d.added.len(),
                d.removed.len(),
                d.changed.len()
            ),
        )
    } else if old.roots_differ(new) {
        (
            Status::Fails,
            "the toplevels differ, so the closures are not the same set of paths".to_owned(),
        )
    } else if old.unrealised || new.unrealised {
        (
            Status::Unproven,
            "a `.drv` input's outputs are not realised: no NAR hashes to compare".to_owned(),
        )
    } else if !d.unknown_hash.is_empty()
        || !old.missing_references.is_empty()
        || !new.missing_references.is_empty()
    {
        (
            Status::Unproven,
            format!(
                "{} paths without a recorded NAR hash, {} references missing from the inputs",
                d.unknown_hash.len(),
                old.missing_references.len() + new.missing_references.len()
            ),
        )
    } else {
        (
            Status::Holds,
            format!(
                "{} paths with equal NAR hash, NAR size and references (evidence: {} vs {})",
                d.identical,
                source(old),
                source(new)
            ),
        )
    };
    LevelResult {
        level: Level::ByteIdentical,
        status,
        evidence,
    }
}

fn level_disk(bytes: &LevelResult, disk: Option<&DiskCheck>) -> LevelResult {
    let (status, evidence) = match disk {
        None => (
            Status::NotChecked,
            "not requested (use `--verify-on-disk`)".to_owned(),
        ),
        Some(d) if !d.mismatches.is_empty() => (
            Status::Fails,
            format!(
                "{} of {} paths on disk do not match their recorded NAR hash",
                d.mismatches.len(),
                d.checked
            ),
        ),
        Some(d) if d.checked == 0 => (
            Status::Unproven,
            "no side is a local store: nothing to read from disk".to_owned(),
        ),
        Some(_) if bytes.status == Status::Fails => (
            Status::Fails,
            "the closures are not byte-identical".to_owned(),
        ),
        Some(d) if !d.unchecked.is_empty() => (
            Status::Unproven,
            format!("{} paths could not be checked", d.unchecked.len()),
        ),
        Some(_) if bytes.status != Status::Holds => (
            Status::Unproven,
            "byte identity is not established".to_owned(),
        ),
        Some(d) => (
            Status::Holds,
            format!(
                "{} paths re-hashed from disk ({} NAR bytes) match their recorded NAR hash",
                d.checked, d.nar_bytes
            ),
        ),
    };
    LevelResult {
        level: Level::VerifiedOnDisk,
        status,
        evidence,
    }
}

/// Inputs to the verdict.
pub struct Findings<'a> {
    /// Old side.
    pub old: &'a Side,
    /// New side.
    pub new: &'a Side,
    /// Path diff.
    pub paths: PathDiff,
    /// Package view.
    pub packages: Vec<PackageChange>,
    /// Totals.
    pub totals: Totals,
    /// Root cause.
    pub root_cause: Option<RootCause>,
    /// Disk check.
    pub disk: Option<DiskCheck>,
    /// Patterns.
    pub patterns: &'a [DriftPattern],
    /// Requested level.
    pub level: Level,
}

fn package_label(p: &PackageChange) -> String {
    if p.output == "out" {
        p.name.clone()
    } else {
        format!("{} ({})", p.name, p.output)
    }
}

/// Builds the report and its verdict.
pub fn build(f: Findings<'_>) -> Report {
    let same = level_same_path(f.old, f.new);
    let bytes = level_bytes(f.old, f.new, &f.paths);
    let disk = level_disk(&bytes, f.disk.as_ref());
    let levels = [&same, &bytes, &disk];
    let strongest = levels
        .iter()
        .rev()
        .find(|l| l.status == Status::Holds)
        .map(|l| l.level);
    let requested = match f.level {
        Level::SamePath => &same,
        Level::ByteIdentical => &bytes,
        Level::VerifiedOnDisk => &disk,
    };
    let mut result = match requested.status {
        Status::Holds => Outcome::Identical,
        Status::Fails => Outcome::Differs,
        Status::Unproven | Status::NotChecked => Outcome::Unproven,
    };
    let mut reason = format!("{}: {}", requested.level.name(), requested.evidence);

    let mut expected: Vec<ExpectedMatch> = f
        .patterns
        .iter()
        .map(|p| ExpectedMatch {
            pattern: p.as_str().to_owned(),
            packages: Vec::new(),
            derivations: Vec::new(),
        })
        .collect();
    for p in &f.packages {
        if let Some(m) = expected
            .iter_mut()
            .find(|m| Some(&m.pattern) == p.expected_by.as_ref())
        {
            m.packages.push(package_label(p));
        }
    }
    if let Some(rc) = &f.root_cause {
        for c in &rc.causes {
            if let Some(m) = expected
                .iter_mut()
                .find(|m| Some(&m.pattern) == c.expected_by.as_ref())
            {
                m.derivations.push(c.new_drv.clone());
            }
        }
    }
    let mut unexpected = Vec::new();
    if !f.patterns.is_empty() && result == Outcome::Differs && f.level != Level::SamePath {
        let mut needs_causes = false;
        for p in f.packages.iter().filter(|p| p.expected_by.is_none()) {
            if p.kind == ChangeKind::Rebuilt && p.same_path_different_bytes.is_empty() {
                needs_causes = true;
            } else {
                unexpected
                    .push(format!("package `{}` ({:?})", package_label(p), p.kind).to_lowercase());
            }
        }
        if let Some(d) = &f.disk {
            for m in &d.mismatches {
                unexpected.push(format!("`{}` was modified on disk", m.path));
            }
        }
        let mut unproven = false;
        if needs_causes {
            match &f.root_cause {
                Some(rc) if rc.complete => {
                    for c in rc.causes.iter().filter(|c| c.expected_by.is_none()) {
                        unexpected.push(format!("derivation `{}` changed", c.new_drv));
                    }
                }
                _ => unproven = true,
            }
        }
        if !unexpected.is_empty() {
            reason = format!(
                "differences no `--expect-drift` pattern allows: {}",
                unexpected.join(", ")
            );
        } else if unproven || !f.paths.unknown_hash.is_empty() {
            result = Outcome::Unproven;
            "rebuilt packages remain, and without a complete `.drv` graph they cannot be traced to the expected drift"
                .clone_into(&mut reason);
        } else {
            result = Outcome::IdenticalExceptExpected;
            "every difference is allowed by `--expect-drift` or follows from it"
                .clone_into(&mut reason);
        }
    }
    Report {
        schema_version: SCHEMA_VERSION,
        old: SideSummary::of(f.old),
        new: SideSummary::of(f.new),
        verdict: Verdict {
            result,
            requested_level: f.level,
            strongest_level_holding: strongest,
            levels: vec![same, bytes, disk],
            reason,
        },
        paths: f.paths,
        packages_skipped: [f.old, f.new].iter().find(|s| s.unrealised).map(|s| {
            format!(
                "the outputs of `{}` are not realised: there are no paths to compare",
                s.spec
            )
        }),
        packages: f.packages,
        totals: f.totals,
        root_cause: f.root_cause,
        expected_drift: expected,
        unexpected_drift: unexpected,
        disk: f.disk,
    }
}
