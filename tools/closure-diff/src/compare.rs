//! The comparison model: path-level differences, the package view, and the
//! identity levels. Renderers (human and JSON) work from this model only.

use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::{FxHashMap, FxHashSet};

use fromgit_nix::names;
use fromgit_nix::StoreBaseName;
use serde::Serialize;

use crate::side::Side;

/// A path present on one side only.
#[derive(Debug, Clone, Serialize)]
pub struct PathEntry {
    /// Absolute store path.
    pub path: String,
    /// NAR size, when recorded.
    pub nar_size: Option<u64>,
}

/// A path on both sides whose recorded metadata differs.
#[derive(Debug, Clone, Serialize)]
pub struct ChangedPath {
    /// Absolute store path.
    pub path: String,
    /// The old NAR hash (`sha256:<nix32>`).
    pub old_nar_hash: Option<String>,
    /// The new NAR hash.
    pub new_nar_hash: Option<String>,
    /// The old NAR size.
    pub old_nar_size: Option<u64>,
    /// The new NAR size.
    pub new_nar_size: Option<u64>,
    /// Whether the references differ.
    pub references_differ: bool,
}

/// Path-level differences.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PathDiff {
    /// Paths of both closures with identical recorded NAR hash, size and references.
    pub identical: usize,
    /// Only in the new closure.
    pub added: Vec<PathEntry>,
    /// Only in the old closure.
    pub removed: Vec<PathEntry>,
    /// Same store path, different NAR hash, size or references.
    pub changed: Vec<ChangedPath>,
    /// Paths whose NAR hash is not known on one side (not recorded, or the
    /// path is referenced but missing from an incomplete input): never
    /// counted as identical, nor as added or removed.
    pub unknown_hash: Vec<String>,
}

/// How a package differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    /// Only in the new closure.
    Added,
    /// Only in the old closure.
    Removed,
    /// One version, to a higher one (Nix's `compareVersions`).
    Upgraded,
    /// One version, to a lower one.
    Downgraded,
    /// Several versions, or versions that cannot be ordered (git hashes).
    Changed,
    /// The same versions, but different store paths or bytes.
    Rebuilt,
}

impl ChangeKind {
    /// A one-letter tag for the human report.
    pub fn tag(self) -> &'static str {
        match self {
            Self::Added => "A",
            Self::Removed => "R",
            Self::Upgraded => "U",
            Self::Downgraded => "D",
            Self::Changed => "C",
            Self::Rebuilt => "B",
        }
    }
}

/// One package (name and output) that differs.
#[derive(Debug, Clone, Serialize)]
pub struct PackageChange {
    /// Package name by Nix's `DrvName` rule, output suffix removed.
    pub name: String,
    /// The output (`out`, `dev`, `lib` …).
    pub output: String,
    /// How it differs.
    pub kind: ChangeKind,
    /// Old versions (sorted, duplicates kept).
    pub old_versions: Vec<String>,
    /// New versions.
    pub new_versions: Vec<String>,
    /// Number of old paths.
    pub old_paths: usize,
    /// Number of new paths.
    pub new_paths: usize,
    /// New NAR size minus old NAR size, in bytes.
    pub size_delta: i64,
    /// Store paths present on both sides whose NAR hash differs (non-reproducible builds).
    pub same_path_different_bytes: Vec<String>,
    /// The `--expect-drift` pattern that allows this change.
    pub expected_by: Option<String>,
}

/// Counts and sizes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    /// Paths in the old closure.
    pub old_paths: usize,
    /// Paths in the new closure.
    pub new_paths: usize,
    /// Total old NAR size.
    pub old_size: u64,
    /// Total new NAR size.
    pub new_size: u64,
    /// New minus old.
    pub size_delta: i64,
    /// Packages by kind of change.
    pub packages: BTreeMap<String, usize>,
}

fn size_of(side: &Side) -> u64 {
    side.infos.values().filter_map(|i| i.nar_size).sum()
}

fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Compares the path sets and recorded metadata.
pub fn diff_paths(old: &Side, new: &Side) -> PathDiff {
    let mut d = PathDiff::default();
    let entry = |side: &Side, p: &StoreBaseName| PathEntry {
        path: side.abs(p),
        nar_size: side.infos.get(p).and_then(|i| i.nar_size),
    };
    for (p, o) in &old.infos {
        match new.infos.get(p) {
            None if new.missing_references.contains(p) => d.unknown_hash.push(old.abs(p)),
            None => d.removed.push(entry(old, p)),
            Some(n) => {
                let refs_differ = {
                    let a: BTreeSet<&StoreBaseName> = o.references.iter().collect();
                    let b: BTreeSet<&StoreBaseName> = n.references.iter().collect();
                    a != b
                };
                match (o.nar_hash, n.nar_hash) {
                    (Some(a), Some(b)) if a == b && o.nar_size == n.nar_size && !refs_differ => {
                        d.identical += 1;
                    }
                    (Some(_), Some(_)) => d.changed.push(ChangedPath {
                        path: old.abs(p),
                        old_nar_hash: o.nar_hash.map(|h| h.to_string()),
                        new_nar_hash: n.nar_hash.map(|h| h.to_string()),
                        old_nar_size: o.nar_size,
                        new_nar_size: n.nar_size,
                        references_differ: refs_differ,
                    }),
                    _ => d.unknown_hash.push(old.abs(p)),
                }
            }
        }
    }
    for p in new.infos.keys() {
        if old.missing_references.contains(p) {
            d.unknown_hash.push(new.abs(p));
        } else if !old.infos.contains_key(p) {
            d.added.push(entry(new, p));
        }
    }
    d.added.sort_by(|a, b| a.path.cmp(&b.path));
    d.removed.sort_by(|a, b| a.path.cmp(&b.path));
    d.changed.sort_by(|a, b| a.path.cmp(&b.path));
    d.unknown_hash.sort();
    d
}

#[derive(Default)]
struct Group<'a> {
    old: Vec<(&'a StoreBaseName, &'a str)>,
    new: Vec<(&'a StoreBaseName, &'a str)>,
}

/// An `--expect-drift` pattern, compiled once: a glob on package names in
/// which only `*` (any run of characters) and `?` (one character) are
/// special; every other character, `[`, `{` and `\` included, is literal.
#[derive(Debug, Clone)]
pub struct DriftPattern {
    text: String,
    matcher: globset::GlobMatcher,
}

impl DriftPattern {
    /// Compiles `text`.
    pub fn new(text: &str) -> Result<Self, globset::Error> {
        let mut glob = String::with_capacity(text.len() * 2);
        for c in text.chars() {
            match c {
                // `**` would be a recursive wildcard to globset; here it is `*`.
                '*' if glob.ends_with('*') => {}
                '*' | '?' => glob.push(c),
                '[' | ']' | '{' | '}' | '\\' => {
                    glob.push('\\');
                    glob.push(c);
                }
                c => glob.push(c),
            }
        }
        let matcher = globset::GlobBuilder::new(&glob)
            .literal_separator(false)
            .backslash_escape(true)
            .build()?
            .compile_matcher();
        Ok(Self {
            text: text.to_owned(),
            matcher,
        })
    }

    /// The pattern as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `name` matches.
    pub fn is_match(&self, name: &str) -> bool {
        self.matcher.is_match(name)
    }
}

impl std::str::FromStr for DriftPattern {
    type Err = globset::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl std::fmt::Display for DriftPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// The first pattern matching a package (its name, `name-version` or `name-output`).
pub fn matching_pattern<'p>(
    patterns: &'p [DriftPattern],
    name: &str,
    versions: &[&str],
    output: &str,
) -> Option<&'p DriftPattern> {
    patterns.iter().find(|pat| {
        pat.is_match(name)
            || pat.is_match(&format!("{name}-{output}"))
            || versions
                .iter()
                .any(|v| pat.is_match(&format!("{name}-{v}")))
    })
}

fn parts(p: &StoreBaseName) -> (&str, &str, &str) {
    names::package_parts(p.name(), None)
}

/// Whether a path differs between the sides (absent, or other bytes).
fn path_differs(p: &StoreBaseName, old: &Side, new: &Side) -> bool {
    match (old.infos.get(p), new.infos.get(p)) {
        // An unknown hash is not a difference (it is reported as unknown).
        (Some(a), Some(b)) => {
            a.nar_hash.is_some()
                && b.nar_hash.is_some()
                && (a.nar_hash != b.nar_hash || a.nar_size != b.nar_size)
        }
        _ => true,
    }
}

/// The package view: paths grouped by (package name, output). Only groups
/// with at least one differing path are built.
pub fn packages(old: &Side, new: &Side, patterns: &[DriftPattern]) -> (Vec<PackageChange>, Totals) {
    let mut dirty: FxHashSet<(&str, &str)> = FxHashSet::default();
    for (side, other) in [(old, new), (new, old)] {
        for p in side.infos.keys() {
            if !other.missing_references.contains(p) && path_differs(p, old, new) {
                let (pname, _, output) = parts(p);
                dirty.insert((pname, output));
            }
        }
    }
    let mut groups: FxHashMap<(&str, &str), Group<'_>> = FxHashMap::default();
    for (side, other, is_old) in [(old, new, true), (new, old, false)] {
        for p in side.infos.keys() {
            if other.missing_references.contains(p) {
                // Unknown on the other side: neither a change nor the same.
                continue;
            }
            let (pname, version, output) = parts(p);
            if !dirty.contains(&(pname, output)) {
                continue;
            }
            let g = groups.entry((pname, output)).or_default();
            if is_old {
                g.old.push((p, version));
            } else {
                g.new.push((p, version));
            }
        }
    }
    let mut keys: Vec<(&str, &str)> = groups.keys().copied().collect();
    keys.sort_unstable();
    let mut out = Vec::new();
    for key in keys {
        let Some(mut g) = groups.remove(&key) else {
            continue;
        };
        let (name, output) = (key.0.to_owned(), key.1.to_owned());
        g.old.sort_unstable();
        g.new.sort_unstable();
        let mut sp_db = Vec::new();
        for (p, _) in &g.old {
            if let (Some(a), Some(b)) = (old.infos.get(*p), new.infos.get(*p)) {
                if a.nar_hash.is_some() && b.nar_hash.is_some() && a.nar_hash != b.nar_hash {
                    sp_db.push(old.abs(p));
                }
            }
        }
        let mut ov: Vec<String> = g.old.iter().map(|x| x.1.to_owned()).collect();
        let mut nv: Vec<String> = g.new.iter().map(|x| x.1.to_owned()).collect();
        ov.sort();
        nv.sort();
        let kind = if g.old.is_empty() {
            ChangeKind::Added
        } else if g.new.is_empty() {
            ChangeKind::Removed
        } else if ov == nv {
            ChangeKind::Rebuilt
        } else if ov.len() == 1
            && nv.len() == 1
            && !names::is_hash_like(&ov[0])
            && !names::is_hash_like(&nv[0])
        {
            match names::compare_versions(&ov[0], &nv[0]) {
                std::cmp::Ordering::Less => ChangeKind::Upgraded,
                std::cmp::Ordering::Greater => ChangeKind::Downgraded,
                std::cmp::Ordering::Equal => ChangeKind::Changed,
            }
        } else {
            ChangeKind::Changed
        };
        let size = |side: &Side, items: &[(&StoreBaseName, &str)]| -> u64 {
            items
                .iter()
                .filter_map(|(p, _)| side.infos.get(*p).and_then(|i| i.nar_size))
                .sum()
        };
        let size_delta = signed(size(new, &g.new)) - signed(size(old, &g.old));
        let versions: Vec<&str> = ov.iter().chain(nv.iter()).map(String::as_str).collect();
        out.push(PackageChange {
            expected_by: matching_pattern(patterns, &name, &versions, &output)
                .map(|p| p.as_str().to_owned()),
            name,
            output,
            kind,
            old_paths: g.old.len(),
            new_paths: g.new.len(),
            old_versions: ov,
            new_versions: nv,
            size_delta,
            same_path_different_bytes: sp_db,
        });
    }
    let mut totals = Totals {
        old_paths: old.infos.len(),
        new_paths: new.infos.len(),
        old_size: size_of(old),
        new_size: size_of(new),
        ..Totals::default()
    };
    totals.size_delta = signed(totals.new_size) - signed(totals.old_size);
    for c in &out {
        let key = serde_json::to_value(c.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        *totals.packages.entry(key).or_default() += 1;
    }
    (out, totals)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob_match(pattern: &str, name: &str) -> bool {
        DriftPattern::new(pattern).unwrap().is_match(name)
    }

    /// The matcher closure-diff used before `globset`: `*` and `?` only.
    fn reference_match(pattern: &str, name: &str) -> bool {
        let (p, n) = (pattern.as_bytes(), name.as_bytes());
        let (mut pi, mut ni) = (0, 0);
        let (mut star, mut mark) = (None, 0);
        while ni < n.len() {
            if pi < p.len() && (p[pi] == b'?' || p[pi] == n[ni]) {
                pi += 1;
                ni += 1;
            } else if pi < p.len() && p[pi] == b'*' {
                star = Some(pi);
                pi += 1;
                mark = ni;
            } else if let Some(s) = star {
                pi = s + 1;
                mark += 1;
                ni = mark;
            } else {
                return false;
            }
        }
        while pi < p.len() && p[pi] == b'*' {
            pi += 1;
        }
        pi == p.len()
    }

    #[test]
    fn globs() {
        assert!(glob_match("sops-nix*", "sops-nix"));
        assert!(glob_match("sops-nix*", "sops-nix-1.0"));
        assert!(glob_match("*firmware*", "linux-firmware"));
        assert!(glob_match("h?llo", "hello"));
        assert!(!glob_match("hello", "hello-2.10"));
        assert!(!glob_match("a*b", "acd"));
    }

    #[test]
    fn globset_matches_exactly_what_the_hand_written_matcher_did() {
        let patterns = [
            "",
            "*",
            "**",
            "***",
            "?",
            "??",
            "a",
            "a*",
            "*a",
            "*a*",
            "a*b",
            "a**b",
            "a?b",
            "?*?",
            "*-1.?",
            "sops-nix*",
            "*firmware*",
            "[ab]",
            "[!a]",
            "{a,b}",
            "a,b",
            "\\*",
            "a\\b",
            "\\",
            "a/b",
            "/*",
            "!a",
            "^a",
            "a.b",
            "a+b",
            "a=b",
            "a?=b",
            "*.drv",
            "é",
            "[",
            "]",
            "{",
            "}",
            "a[*",
            "**/x",
            "x/**",
            "-*",
            ".*",
        ];
        let names = [
            "",
            "a",
            "b",
            "ab",
            "aab",
            "abb",
            "acb",
            "a-b",
            "a*b",
            "a?b",
            "a,b",
            "[ab]",
            "{a,b}",
            "[",
            "]",
            "{",
            "}",
            "\\",
            "a\\b",
            "\\x",
            "a/b",
            "/x",
            "x/y",
            "!a",
            "^a",
            "a.b",
            "a+b",
            "a=b",
            "a?=b",
            "sops-nix",
            "sops-nix-1.0",
            "linux-firmware",
            "hello-1.0.drv",
            "x-1.2",
            "é",
            ".hidden",
            "-x",
            "a[b",
            "a[xyz",
        ];
        // Package names come from store path names, which never hold `*`
        // (the old matcher let a `*` in the pattern match one literally).
        for p in patterns {
            for n in names.iter().filter(|n| !n.contains('*')) {
                assert_eq!(glob_match(p, n), reference_match(p, n), "`{p}` on `{n}`");
            }
        }
    }
}
