//! The workspace's own Rust sources, read as text by the tests that enforce
//! a house rule over them (one write path, one walker): which files, which
//! lines are not test code, and whether a line calls a given path.

use std::path::{Path, PathBuf};

use crate::repo_root;

/// One line of non-test code that makes a call a rule watches.
#[derive(Debug)]
pub struct Hit {
    /// The file, relative to `tools/` (`leak-scan/src/tree.rs`).
    pub file: String,
    /// The line number, from 1.
    pub line: usize,
    /// The call found, one of those asked for.
    pub call: &'static str,
    /// The line, trimmed.
    pub text: String,
}

/// The crates under `tools/` except `except` (the one crate a rule allows).
pub fn crates_except(except: &str) -> Vec<PathBuf> {
    let mut crates: Vec<PathBuf> = fs_err::read_dir(repo_root().join("tools"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("src").is_dir() && !p.ends_with(except))
        .collect();
    crates.sort();
    assert!(crates.len() >= 7, "found only {crates:?}");
    crates
}

/// Every call of `calls` in the non-test code of every crate but `except`.
pub fn hits_outside(except: &str, watched: &[&'static str]) -> Vec<Hit> {
    let tools = repo_root().join("tools");
    let mut hits = Vec::new();
    for krate in crates_except(except) {
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
                for call in watched.iter().filter(|call| calls(code, call)) {
                    hits.push(Hit {
                        file: relative.clone(),
                        line: number,
                        call,
                        text: line.trim().to_owned(),
                    });
                }
            }
        }
    }
    hits
}

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
pub fn non_test_lines(text: &str) -> Vec<(usize, &str)> {
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
pub fn calls(code: &str, call: &str) -> bool {
    code.match_indices(call).any(|(at, _)| {
        !code[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// Files declared only under `#[cfg(test)]` (`mod tests;` beside `lib.rs`).
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

#[cfg(test)]
mod tests {
    use super::{calls, non_test_lines};

    #[test]
    fn unit_tests_at_the_bottom_are_not_scanned_and_calls_are_whole_paths() {
        let text = "fn f() {\n    fs_err::write(path, b\"x\")?;\n}\n#[cfg(test)]\nmod tests {\n    fn t() { fs_err::write(p, b\"y\").unwrap(); }\n}\n";
        let hits: Vec<usize> = non_test_lines(text)
            .into_iter()
            .filter(|(_, line)| calls(line, "fs_err::write("))
            .map(|(number, _)| number)
            .collect();
        assert_eq!(hits, [2]);
        assert!(calls("std::fs::write(p, b)", "fs::write("));
        assert!(!calls("fromgit_fs::write(p, b, mode)", "fs::write("));
        assert!(!calls("my_read_dir(p)", "read_dir("));
    }
}
