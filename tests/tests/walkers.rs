//! The one-walker rule: every directory tree is walked by
//! `fromgit_fs::walk`, whose caller states each filter. This scans the
//! non-test sources of every crate under `tools/` but `fromgit-fs` for the
//! calls that list or walk directories by hand, and fails naming each one
//! by `file:line`; the listings of one directory are allowed below, each
//! with its reason. It also fails on a crate that depends on a walker crate.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};

use fromgit_testkit::repo_root;

/// Calls that list a directory or walk a tree.
const WALKS: &[&str] = &[
    "read_dir(",
    "WalkBuilder",
    "ignore::Walk",
    "walkdir::",
    "WalkDir",
    "jwalk::",
];

/// Crates that walk trees; only `fromgit-fs` depends on one.
const WALKER_CRATES: &[&str] = &["ignore", "walkdir", "jwalk"];

/// `(file, reason)`: listings of a single directory, not walks.
const SINGLE_DIRECTORY: &[(&str, &str)] = &[
    (
        "closure-diff/src/input.rs",
        "lists the `.narinfo` files of one binary cache directory",
    ),
    (
        "instance-extract/src/split/apply.rs",
        "checks whether the instance directory is empty",
    ),
    (
        "leak-scan/src/git/packwalk.rs",
        "lists the pack indices of `.git/objects/pack`",
    ),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = fs_err::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The lines of a source file before its unit tests (a `#[cfg(test)]`
/// that opens a module: tests sit at the bottom of a file).
fn non_test_lines(text: &str) -> Vec<(usize, &str)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        if line.trim() == "#[cfg(test)]" {
            let next = lines[index + 1..].iter().find(|l| !l.trim().is_empty());
            if next.is_some_and(|l| l.trim_start().starts_with("mod ")) {
                break;
            }
        }
        out.push((index + 1, *line));
    }
    out
}

/// Whether `code` holds `call` as a whole path: `read_dir(` is in
/// `fs_err::read_dir(` but not in `my_read_dir(`.
fn calls(code: &str, call: &str) -> bool {
    code.match_indices(call).any(|(at, _)| {
        !code[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// Files declared only under `#[cfg(test)]`.
fn is_test_module(path: &Path) -> bool {
    let (Some(stem), Some(dir)) = (path.file_stem().and_then(|s| s.to_str()), path.parent()) else {
        return false;
    };
    let declaration = format!("mod {stem};");
    ["lib.rs", "main.rs", "mod.rs"]
        .iter()
        .filter_map(|parent| fs_err::read_to_string(dir.join(parent)).ok())
        .any(|text| {
            let lines: Vec<&str> = text.lines().map(str::trim).collect();
            lines.iter().enumerate().any(|(index, line)| {
                line.ends_with(&declaration) && index > 0 && lines[index - 1] == "#[cfg(test)]"
            })
        })
}

fn crates() -> Vec<PathBuf> {
    let mut crates: Vec<PathBuf> = fs_err::read_dir(repo_root().join("tools"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("src").is_dir() && !p.ends_with("fromgit-fs"))
        .collect();
    crates.sort();
    assert!(crates.len() >= 7, "found only {crates:?}");
    crates
}

#[test]
fn every_tree_is_walked_by_fromgit_fs() {
    let tools = repo_root().join("tools");
    let mut found = Vec::new();
    let mut used = vec![false; SINGLE_DIRECTORY.len()];
    for krate in crates() {
        let mut files = Vec::new();
        rust_files(&krate.join("src"), &mut files);
        for file in files.iter().filter(|f| !is_test_module(f)) {
            let relative = file
                .strip_prefix(&tools)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let text = fs_err::read_to_string(file).unwrap();
            for (number, line) in non_test_lines(&text) {
                let code = line.split("//").next().unwrap_or_default();
                if !WALKS.iter().any(|call| calls(code, call)) {
                    continue;
                }
                match SINGLE_DIRECTORY.iter().position(|(f, _)| *f == relative) {
                    Some(index) => used[index] = true,
                    None => found.push(format!("tools/{relative}:{number}: `{}`", line.trim())),
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "directories walked outside fromgit-fs (use `fromgit_fs::walk::Walk`, or allow a single-directory listing with its reason):\n{}",
        found.join("\n")
    );
    let stale: Vec<&str> = SINGLE_DIRECTORY
        .iter()
        .zip(&used)
        .filter(|(_, used)| !**used)
        .map(|((file, _), _)| *file)
        .collect();
    assert!(stale.is_empty(), "allowed but no longer there: {stale:?}");
}

#[test]
fn no_other_crate_depends_on_a_walker() {
    let mut found = Vec::new();
    for krate in crates() {
        let manifest = fs_err::read_to_string(krate.join("Cargo.toml")).unwrap();
        for line in manifest.lines() {
            let name = line.split(['=', ' ', '.']).next().unwrap_or_default();
            if WALKER_CRATES.contains(&name) {
                found.push(format!("{}: `{}`", krate.display(), line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "walker crates outside fromgit-fs: {found:?}"
    );
}

#[test]
fn the_scan_sees_a_walk() {
    let text = "fn f() {\n    for e in fs_err::read_dir(d)? {}\n    let w = ignore::WalkBuilder::new(d);\n}\n#[cfg(test)]\nmod tests {\n    fn t() { std::fs::read_dir(p).unwrap(); }\n}\n";
    let hits: Vec<usize> = non_test_lines(text)
        .into_iter()
        .filter(|(_, line)| WALKS.iter().any(|call| calls(line, call)))
        .map(|(number, _)| number)
        .collect();
    assert_eq!(hits, [2, 3]);
    assert!(!calls("my_read_dir(p)", "read_dir("));
}
