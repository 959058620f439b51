//! The writers of the suite: every file the tools write goes through
//! `fromgit-fs`. This scans the sources of every crate under `tools/` for
//! the calls that write or replace a file by hand, outside this crate and
//! outside test code, and fails naming each one by `file:line`; the few
//! that are not file writes are allowed below, each with its reason.

use std::path::{Path, PathBuf};

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

fn tools_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tools/")
        .to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = fs_err::read_dir(dir)
        .expect("readable source directory")
        .map(|e| e.expect("entry").path())
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

/// The lines of a source file that are not test code: everything before a
/// `#[cfg(test)]` that opens a module (tests sit at the bottom of a file).
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

/// Whether `code` holds `call` as a whole path: `fs::write(` is in
/// `std::fs::write(` but not in `fromgit_fs::write(`.
fn calls(code: &str, call: &str) -> bool {
    code.match_indices(call).any(|(at, _)| {
        !code[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// Files that are test modules: declared only under `#[cfg(test)]`.
fn is_test_module(path: &Path) -> bool {
    let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
        return false;
    };
    let Some(dir) = path.parent() else {
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

#[test]
fn every_write_goes_through_fromgit_fs() {
    let tools = tools_dir();
    let mut crates: Vec<PathBuf> = fs_err::read_dir(&tools)
        .expect("tools/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.join("src").is_dir() && !p.ends_with("fromgit-fs"))
        .collect();
    crates.sort();
    assert!(crates.len() >= 7, "found only {crates:?}");
    let mut raw = Vec::new();
    let mut used = vec![false; ALLOWED.len()];
    for krate in &crates {
        let mut files = Vec::new();
        rust_files(&krate.join("src"), &mut files);
        for file in files.iter().filter(|f| !is_test_module(f)) {
            let relative = file
                .strip_prefix(&tools)
                .expect("under tools/")
                .to_string_lossy()
                .into_owned();
            let text = fs_err::read_to_string(file).expect("readable");
            for (number, line) in non_test_lines(&text) {
                let code = line.split("//").next().unwrap_or_default();
                for call in RAW_WRITES.iter().filter(|call| calls(code, call)) {
                    match ALLOWED
                        .iter()
                        .position(|(f, c, _)| *f == relative && c == call)
                    {
                        Some(index) => used[index] = true,
                        None => raw.push(format!("tools/{relative}:{number}: `{}`", line.trim())),
                    }
                }
            }
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
    assert!(calls("std::fs::write(p, b)", "fs::write("));
    assert!(!calls("fromgit_fs::write(p, b, mode)", "fs::write("));
}
