//! The house keeps its shape: no import cycle between the top-level modules
//! of a crate (`crate::a` in `b` and `crate::b` in `a`), and no Rust file
//! over 600 lines without a `//!` line at its top saying why.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use fromgit_testkit::repo_root;

const LONG: usize = 600;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs_err::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if path.is_dir() {
            if !matches!(name, "target" | "snapshots" | "fixtures") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src` belongs to (`""` for the crate root).
fn top_module(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next().unwrap();
    let first = first.as_os_str().to_str().unwrap();
    let first = first.strip_suffix(".rs").unwrap_or(first);
    if matches!(first, "lib" | "main") {
        String::new()
    } else {
        first.to_owned()
    }
}

/// The code of a file without its unit tests (`#[cfg(test)]` onwards).
fn without_tests(text: &str) -> &str {
    text.split("#[cfg(test)]").next().unwrap_or(text)
}

fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, bool>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_owned(), true);
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next.as_str()) {
                Some(true) => {
                    let start = path.iter().position(|p| p == next).unwrap();
                    let mut found = path[start..].to_vec();
                    found.push(next.clone());
                    return Some(found);
                }
                Some(false) => {}
                None => {
                    if let Some(found) = visit(next, graph, state, path) {
                        return Some(found);
                    }
                }
            }
        }
        path.pop();
        state.insert(node.to_owned(), false);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if !state.contains_key(node) {
            if let Some(found) = visit(node, graph, &mut state, &mut Vec::new()) {
                return Some(found);
            }
        }
    }
    None
}

#[test]
fn no_import_cycle_between_the_modules_of_a_crate() {
    let mut cycles = Vec::new();
    for entry in fs_err::read_dir(repo_root().join("tools")).unwrap() {
        let src = entry.unwrap().path().join("src");
        if !src.is_dir() {
            continue;
        }
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let tops: BTreeSet<String> = files.iter().map(|f| top_module(&src, f)).collect();
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for file in &files {
            let top = top_module(&src, file);
            if top.is_empty() {
                continue;
            }
            let text = fs_err::read_to_string(file).unwrap();
            let code = without_tests(&text);
            // `super::x` in a top-level file names the crate root's `x`.
            let direct = file.parent() == Some(src.as_path())
                || file.file_name().is_some_and(|n| n == "mod.rs")
                    && file.parent().and_then(Path::parent) == Some(src.as_path());
            let mut prefixes = vec!["crate::"];
            if direct {
                prefixes.push("super::");
            }
            for prefix in prefixes {
                for (at, _) in code.match_indices(prefix) {
                    let name: String = code[at + prefix.len()..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if name != top && tops.contains(&name) {
                        graph.entry(top.clone()).or_default().insert(name);
                    }
                }
            }
        }
        if let Some(found) = cycle(&graph) {
            cycles.push(format!("{}: {}", src.display(), found.join(" → ")));
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn a_long_file_says_why_at_its_top() {
    let root = repo_root();
    let mut files = Vec::new();
    rust_files(&root.join("tools"), &mut files);
    rust_files(&root.join("tests"), &mut files);
    let unexplained: Vec<String> = files
        .iter()
        .filter_map(|file| {
            let text = fs_err::read_to_string(file).unwrap();
            let lines = text.lines().count();
            let explained = text
                .lines()
                .take_while(|l| l.starts_with("//!"))
                .any(|l| l.contains("600 lines"));
            (lines > LONG && !explained).then(|| {
                format!(
                    "{} ({lines} lines)",
                    file.strip_prefix(&root).unwrap().display()
                )
            })
        })
        .collect();
    assert!(
        unexplained.is_empty(),
        "over {LONG} lines with no `//!` line at the top saying why (\"Over 600 lines on purpose: …\"):\n{}",
        unexplained.join("\n")
    );
}
