//! The human report: a renderer over [`Report`], readable without colour.

use std::fmt::Write as _;

use crate::compare::ChangeKind;
use crate::report::{Outcome, Report, Status};

/// Colours for terminals; all empty when colour is off.
struct Paint {
    on: bool,
}

impl Paint {
    fn wrap(&self, code: &str, s: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }
}

/// A NAR size for people: `1.5 KiB`, `-3.2 MiB`.
pub fn human_size(bytes: i128) -> String {
    let sign = if bytes < 0 { "-" } else { "" };
    let n = bytes.unsigned_abs();
    if n < 1024 {
        return format!("{sign}{n} B");
    }
    let units = ["KiB", "MiB", "GiB", "TiB"];
    #[allow(clippy::cast_precision_loss)]
    let mut v = n as f64 / 1024.0;
    let mut unit = units[0];
    for u in &units[1..] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{sign}{v:.1} {unit}")
}

fn signed_size(bytes: i64) -> String {
    let s = human_size(i128::from(bytes));
    if bytes > 0 {
        format!("+{s}")
    } else {
        s
    }
}

fn versions(v: &[String]) -> String {
    if v.is_empty() {
        "∅".to_owned()
    } else {
        v.iter()
            .map(|x| if x.is_empty() { "ε" } else { x.as_str() })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn clip(s: &str) -> String {
    let one_line = s.replace('\n', "\\n");
    if one_line.chars().count() > 160 {
        let cut: String = one_line.chars().take(157).collect();
        format!("{cut}…")
    } else {
        one_line
    }
}

/// Renders the report as text, section by section.
#[allow(clippy::too_many_lines)]
pub fn human(r: &Report, color: bool) -> String {
    let paint = Paint { on: color };
    let mut o = String::new();
    let v = &r.verdict;
    let (word, code) = match v.result {
        Outcome::Identical => ("IDENTICAL", "32;1"),
        Outcome::IdenticalExceptExpected => ("IDENTICAL EXCEPT EXPECTED", "32;1"),
        Outcome::Differs => ("DIFFERS", "31;1"),
        Outcome::Unproven => ("UNPROVEN", "33;1"),
    };
    let _ = writeln!(
        o,
        "closure-diff: {} (requested level: {})",
        paint.wrap(code, word),
        v.requested_level.name()
    );
    for (label, s) in [("old", &r.old), ("new", &r.new)] {
        let source = serde_json::to_value(s.source)
            .ok()
            .and_then(|x| x.as_str().map(str::to_owned))
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "  {label}: {} ({source}, {} paths) from `{}`",
            s.roots.join(" "),
            s.paths,
            s.input
        );
        if !s.missing_references.is_empty() {
            let _ = writeln!(
                o,
                "       {} referenced paths are missing from this input",
                s.missing_references.len()
            );
        }
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "Levels:");
    for l in &v.levels {
        let status = match l.status {
            Status::Holds => "holds",
            Status::Fails => "FAILS",
            Status::Unproven => "unproven",
            Status::NotChecked => "not checked",
        };
        let _ = writeln!(o, "  {:<17} {:<12} {}", l.level.name(), status, l.evidence);
    }
    if !r.packages.is_empty() {
        let _ = writeln!(o);
        let _ = writeln!(o, "Packages ({} differ; A added, R removed, U upgraded, D downgraded, C changed, B rebuilt with the same version):", r.packages.len());
        let width = r
            .packages
            .iter()
            .map(|p| p.name.len() + p.output.len() + 3)
            .max()
            .unwrap_or(0)
            .min(48);
        for p in &r.packages {
            let label = if p.output == "out" {
                p.name.clone()
            } else {
                format!("{} ({})", p.name, p.output)
            };
            let change = match p.kind {
                ChangeKind::Rebuilt => {
                    format!("{} rebuilt, different bytes", versions(&p.new_versions))
                }
                _ => format!(
                    "{} → {}",
                    versions(&p.old_versions),
                    versions(&p.new_versions)
                ),
            };
            let mut line = format!(
                "  [{}] {label:<width$} {change}, {}",
                p.kind.tag(),
                signed_size(p.size_delta)
            );
            if p.old_paths > 1 || p.new_paths > 1 {
                let _ = write!(line, " ({} → {} paths)", p.old_paths, p.new_paths);
            }
            if !p.same_path_different_bytes.is_empty() {
                let _ = write!(line, " [same store path, different NAR hash]");
            }
            if let Some(pat) = &p.expected_by {
                let _ = write!(line, " (expected: `{pat}`)");
            }
            let _ = writeln!(o, "{line}");
        }
    }
    if let Some(why) = &r.packages_skipped {
        let _ = writeln!(o);
        let _ = writeln!(o, "Packages: not compared: {why}");
    }
    let t = &r.totals;
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "Totals: {} → {} paths ({} added, {} removed, {} same path with other bytes), {} → {} ({})",
        t.old_paths,
        t.new_paths,
        r.paths.added.len(),
        r.paths.removed.len(),
        r.paths.changed.len(),
        human_size(i128::from(t.old_size)),
        human_size(i128::from(t.new_size)),
        signed_size(t.size_delta)
    );
    if !r.paths.changed.is_empty() {
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "Same store path, different bytes (a non-reproducible build, or a modified store):"
        );
        for c in &r.paths.changed {
            let _ = writeln!(
                o,
                "  {}: {} → {}{}",
                c.path,
                c.old_nar_hash.as_deref().unwrap_or("?"),
                c.new_nar_hash.as_deref().unwrap_or("?"),
                if c.references_differ {
                    " (references differ)"
                } else {
                    ""
                }
            );
        }
    }
    if !r.paths.unknown_hash.is_empty() {
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "Paths without a recorded NAR hash (never counted as identical): {}",
            r.paths.unknown_hash.len()
        );
        for p in r.paths.unknown_hash.iter().take(20) {
            let _ = writeln!(o, "  {p}");
        }
    }
    if let Some(rc) = &r.root_cause {
        let _ = writeln!(o);
        if let Some(why) = &rc.skipped {
            let _ = writeln!(o, "Root cause: not analysed: {why}");
        } else {
            let frontier = rc.causes.iter().filter(|c| !c.inputs_changed).count();
            let _ = writeln!(
                o,
                "Root cause ({frontier} on the frontier, {} with own changes, {} changed derivations walked):",
                rc.causes.len(),
                rc.changed_derivations
            );
            for c in &rc.causes {
                let tag = if c.inputs_changed {
                    "also changed"
                } else {
                    "frontier"
                };
                let mut head = format!("  [{tag}] {} → {}", c.old_drv, c.new_drv);
                if let Some(p) = &c.expected_by {
                    let _ = write!(head, " (expected: `{p}`)");
                }
                let _ = writeln!(o, "{head}");
                for ch in &c.changes {
                    let _ = writeln!(
                        o,
                        "      {}: {} → {}",
                        ch.field,
                        ch.old
                            .as_deref()
                            .map_or("∅".to_owned(), |s| format!("\"{}\"", clip(s))),
                        ch.new
                            .as_deref()
                            .map_or("∅".to_owned(), |s| format!("\"{}\"", clip(s)))
                    );
                }
                for (what, list) in [
                    ("input added", &c.inputs_added),
                    ("input removed", &c.inputs_removed),
                    ("source added", &c.sources_added),
                    ("source removed", &c.sources_removed),
                ] {
                    for x in list {
                        let _ = writeln!(o, "      {what}: {x}");
                    }
                }
            }
            if !rc.missing_drvs.is_empty() {
                let _ = writeln!(
                    o,
                    "  Missing .drv files ({}), so the walk is incomplete:",
                    rc.missing_drvs.len()
                );
                for m in &rc.missing_drvs {
                    let _ = writeln!(o, "    {m}");
                }
            }
        }
    }
    if let Some(d) = &r.disk {
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "On disk: {} paths re-hashed ({} of NAR in {:.2} s), {} mismatches, {} not checked",
            d.checked,
            human_size(i128::from(d.nar_bytes)),
            d.seconds,
            d.mismatches.len(),
            d.unchecked.len()
        );
        for m in &d.mismatches {
            let _ = writeln!(
                o,
                "  MODIFIED {}: recorded {}, on disk {}",
                m.path, m.recorded, m.actual
            );
        }
        for u in d.unchecked.iter().take(20) {
            let _ = writeln!(o, "  not checked {}: {}", u.path, u.reason);
        }
    }
    if !r.expected_drift.is_empty() {
        let _ = writeln!(o);
        let _ = writeln!(o, "Expected drift:");
        for m in &r.expected_drift {
            let pk = if m.packages.is_empty() {
                "nothing".to_owned()
            } else {
                m.packages.join(", ")
            };
            let _ = writeln!(o, "  `{}` matched packages: {pk}", m.pattern);
            for d in &m.derivations {
                let _ = writeln!(o, "      and derivation {d}");
            }
        }
        for u in &r.unexpected_drift {
            let _ = writeln!(o, "  UNEXPECTED {u}");
        }
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "Verdict: {} ({})", paint.wrap(code, word), v.reason);
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(-3 * 1024 * 1024), "-3.0 MiB");
        assert_eq!(signed_size(2048), "+2.0 KiB");
    }
}
