//! The one-walker rule: every directory tree is walked by
//! `fromgit_fs::walk`, whose caller states each filter. This scans the
//! non-test sources of every crate under `tools/` but `fromgit-fs` for the
//! calls that list or walk directories by hand, and fails naming each one
//! by `file:line`; the listings of one directory are allowed below, each
//! with its reason. It also fails on a crate that depends on a walker crate.

#![allow(clippy::unwrap_used, clippy::panic)]

use fromgit_testkit::source::{calls, crates_except, hits_outside, non_test_lines};

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

#[test]
fn every_tree_is_walked_by_fromgit_fs() {
    let mut found = Vec::new();
    let mut used = vec![false; SINGLE_DIRECTORY.len()];
    for hit in hits_outside("fromgit-fs", WALKS) {
        match SINGLE_DIRECTORY.iter().position(|(f, _)| *f == hit.file) {
            Some(index) => used[index] = true,
            None => found.push(format!("tools/{}:{}: `{}`", hit.file, hit.line, hit.text)),
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
    for krate in crates_except("fromgit-fs") {
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
}
