//! The writers of the suite: every file the tools write goes through
//! `fromgit-fs`. This scans the sources of every crate under `tools/` for
//! the calls that write or replace a file by hand, outside this crate and
//! outside test code, and fails naming each one by `file:line`; the few
//! that are not file writes are allowed below, each with its reason.

#![allow(clippy::unwrap_used, clippy::panic)]

use fromgit_testkit::source::{calls, hits_outside, non_test_lines};

/// Calls that write, create or replace a file.
const RAW_WRITES: &[&str] = &[
    "fs::write(",
    "fs_err::write(",
    "File::create",
    "File::options",
    "OpenOptions",
    ".persist(",
    ".persist_noclobber(",
    "fs::rename(",
    "fs_err::rename(",
    "fs::copy(",
    "fs_err::copy(",
    "tempfile_in(",
    "NamedTempFile",
];

/// `(file, call, reason)`: raw calls that are not file writes.
const ALLOWED: &[(&str, &str, &str)] = &[
    (
        "instance-extract/src/split/transaction.rs",
        "fs_err::rename(",
        "moves the assembled instance directory into place; its files were written by fromgit-fs",
    ),
    (
        "instance-extract/src/history.rs",
        "fs_err::rename(",
        "moves the old `.git` directory aside before a new history starts: a directory, not a file",
    ),
];

#[test]
fn every_write_goes_through_fromgit_fs() {
    let mut raw = Vec::new();
    let mut used = vec![false; ALLOWED.len()];
    for hit in hits_outside("fromgit-fs", RAW_WRITES) {
        match ALLOWED
            .iter()
            .position(|(f, c, _)| *f == hit.file && *c == hit.call)
        {
            Some(index) => used[index] = true,
            None => raw.push(format!("tools/{}:{}: `{}`", hit.file, hit.line, hit.text)),
        }
    }
    assert!(
        raw.is_empty(),
        "files written outside fromgit-fs (use `fromgit_fs::write`, `write_checked`, `create_new` or `stage`):\n{}",
        raw.join("\n")
    );
    let stale: Vec<String> = ALLOWED
        .iter()
        .zip(&used)
        .filter(|(_, used)| !**used)
        .map(|((file, call, _), _)| format!("tools/{file}: `{call}`"))
        .collect();
    assert!(stale.is_empty(), "allowed but no longer there: {stale:?}");
}

#[test]
fn the_scan_sees_a_raw_write() {
    let text = "fn f() {\n    fs_err::write(path, b\"x\")?;\n}\n#[cfg(test)]\nmod tests {\n    fn t() { fs_err::write(p, b\"y\").unwrap(); }\n}\n";
    let hits: Vec<usize> = non_test_lines(text)
        .into_iter()
        .filter(|(_, line)| RAW_WRITES.iter().any(|call| calls(line, call)))
        .map(|(number, _)| number)
        .collect();
    assert_eq!(hits, [2]);
}
