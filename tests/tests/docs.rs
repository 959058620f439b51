//! The docs cannot drift from the tools unnoticed: every invocation of a
//! fromgit binary that the docs show (in code blocks and inline code) names
//! subcommands and flags that the binary's own `--help` lists, and every
//! link and repository path the docs name resolves.

#![allow(clippy::unwrap_used, clippy::panic, clippy::print_stderr)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use fromgit_testkit::{fromgit_bin, repo_root as repo, run, BINARIES};

/// Repository directories whose paths the docs may name.
const TOP_DIRS: [&str; 9] = [
    "docs/",
    "tools/",
    "tests/",
    "templates/",
    "examples/",
    "bench/",
    "nix/",
    "fuzz/",
    ".ci/",
];

/// Every Markdown document a user reads: the README, `docs/`, and the
/// READMEs of the templates, the example and the tools.
fn documents() -> Vec<PathBuf> {
    let root = repo();
    let mut docs = vec![root.join("README.md")];
    for dir in ["docs", "templates", "examples", "tools"] {
        collect_markdown(&root.join(dir), &mut docs);
    }
    docs.sort();
    docs
}

fn collect_markdown(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs_err::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            collect_markdown(&path, out);
        } else if path.extension().is_some_and(|e| e == "md") {
            out.push(path);
        }
    }
}

/// The text a reader would run or read as code: fenced blocks (with `\`
/// continuations joined) and inline code spans, each with its line number.
fn code_of(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut in_block = false;
    let mut pending = String::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block {
            if let Some(head) = line.strip_suffix('\\') {
                pending.push_str(head);
                pending.push(' ');
                continue;
            }
            pending.push_str(line);
            out.push((number, std::mem::take(&mut pending)));
        } else {
            for (i, span) in line.split('`').enumerate() {
                if i % 2 == 1 {
                    out.push((number, span.to_owned()));
                }
            }
        }
    }
    out
}

/// `(binary, arguments)` for every invocation of a fromgit binary in `code`.
fn invocations(code: &str) -> Vec<(&'static str, Vec<String>)> {
    let tokens: Vec<&str> = code.split_whitespace().collect();
    let mut found = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        let token = token.trim_start_matches("$(").trim_start_matches('(');
        let Some(binary) = BINARIES.iter().find(|b| **b == token) else {
            continue;
        };
        let args: Vec<String> = tokens[i + 1..]
            .iter()
            .take_while(|t| !matches!(**t, "|" | "||" | "&&" | ";" | "#") && !t.starts_with('>'))
            .map(|t| (*t).to_owned())
            .collect();
        found.push((*binary, args));
    }
    found
}

/// What one `--help` lists: its subcommands and its flags.
#[derive(Default)]
struct Help {
    commands: BTreeSet<String>,
    flags: BTreeSet<String>,
}

fn help_of<'a>(binary: &str, path: &[String], cache: &'a mut BTreeMap<String, Help>) -> &'a Help {
    let key = format!("{binary} {}", path.join(" "));
    cache.entry(key).or_insert_with(|| {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let output = run(&fromgit_bin(binary), &args, &repo(), &[], b"");
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "`{binary} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        parse_help(&text)
    })
}

fn parse_help(text: &str) -> Help {
    let mut help = Help::default();
    let mut section = "";
    for line in text.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            section = line;
            continue;
        }
        let trimmed = line.trim_start();
        if section == "Commands:" && line.starts_with("  ") && !line.starts_with("   ") {
            if let Some(name) = trimmed.split_whitespace().next() {
                help.commands.insert(name.to_owned());
            }
        }
        if trimmed.starts_with('-') {
            for word in trimmed.split([' ', ',']) {
                let word = word.split(['=', '<', '[']).next().unwrap_or_default();
                if word.starts_with('-') && word.len() > 1 {
                    help.flags.insert(word.trim_end_matches("...").to_owned());
                }
            }
        }
    }
    help
}

/// Whether `token` is a flag, as opposed to a value such as `-` (stdin) or `-1`.
fn flag_name(token: &str) -> Option<&str> {
    let name = token.split('=').next().unwrap_or_default();
    let is_long = name.len() > 2
        && name.starts_with("--")
        && name[2..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-');
    let is_short =
        name.len() == 2 && name.starts_with('-') && name.as_bytes()[1].is_ascii_alphabetic();
    (is_long || is_short).then_some(name)
}

#[test]
fn every_command_and_flag_the_docs_name_exists() {
    let root = repo();
    let mut cache = BTreeMap::new();
    let mut problems = Vec::new();
    let mut checked = 0;
    for doc in documents() {
        let text = fs_err::read_to_string(&doc).unwrap();
        let shown = doc
            .strip_prefix(&root)
            .unwrap_or(&doc)
            .display()
            .to_string();
        for (line, code) in code_of(&text) {
            for (binary, args) in invocations(&code) {
                let mut path: Vec<String> = Vec::new();
                for arg in &args {
                    if arg == "--" {
                        break;
                    }
                    if let Some(flag) = flag_name(arg) {
                        checked += 1;
                        if !help_of(binary, &path, &mut cache).flags.contains(flag) {
                            problems.push(format!(
                                "{shown}:{line}: `{binary} {}` has no flag `{flag}`",
                                path.join(" ")
                            ));
                        }
                    } else if help_of(binary, &path, &mut cache)
                        .commands
                        .contains(arg.as_str())
                    {
                        path.push(arg.clone());
                    }
                }
            }
        }
    }
    assert!(
        checked > 50,
        "only {checked} flags found in the docs: is the parser broken?"
    );
    assert!(
        problems.is_empty(),
        "the docs name what the tools do not have:\n{}",
        problems.join("\n")
    );
}

/// GitHub's anchor for a heading: lower case, spaces as `-`, punctuation dropped.
fn anchor_of(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors_of(text: &str) -> BTreeSet<String> {
    let mut in_block = false;
    let mut anchors = BTreeSet::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
        } else if !in_block && line.starts_with('#') {
            anchors.insert(anchor_of(line.trim_start_matches('#')));
        }
    }
    anchors
}

/// Every `[text](target)` target of a line.
fn link_targets(line: &str) -> Vec<&str> {
    let mut targets = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        let Some(end) = after.find(')') else { break };
        targets.push(&after[..end]);
        rest = &after[end..];
    }
    targets
}

#[test]
fn every_link_and_repository_path_the_docs_name_resolves() {
    let root = repo();
    // What a build makes (`fuzz/target`, …) exists only after one: the
    // anchored entries of `.gitignore`.
    let generated: Vec<String> = fs_err::read_to_string(root.join(".gitignore"))
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix('/'))
        .map(str::to_owned)
        .collect();
    let mut problems = Vec::new();
    let mut checked = 0;
    for doc in documents() {
        let text = fs_err::read_to_string(&doc).unwrap();
        let shown = doc
            .strip_prefix(&root)
            .unwrap_or(&doc)
            .display()
            .to_string();
        let dir = doc.parent().unwrap_or(&root);
        for (index, line) in text.lines().enumerate() {
            for target in link_targets(line) {
                if target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                checked += 1;
                let (file, anchor) = target.split_once('#').unwrap_or((target, ""));
                let file_path = if file.is_empty() {
                    doc.clone()
                } else {
                    dir.join(file)
                };
                if !file_path.exists() {
                    problems.push(format!("{shown}:{}: link to missing `{target}`", index + 1));
                    continue;
                }
                if !anchor.is_empty() && file_path.extension().is_some_and(|e| e == "md") {
                    let linked = fs_err::read_to_string(&file_path).unwrap();
                    if !anchors_of(&linked).contains(anchor) {
                        problems.push(format!("{shown}:{}: no heading for `{target}`", index + 1));
                    }
                }
            }
        }
        for (line, code) in code_of(&text) {
            for token in code.split_whitespace() {
                let token = token.trim_matches(|c: char| "\"'(),:;".contains(c));
                let named = TOP_DIRS.iter().any(|d| token.starts_with(d))
                    && token
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c));
                // Upper-case segments are placeholders (`fuzz/regressions/TARGET`).
                if !named
                    || token
                        .split('/')
                        .any(|s| s.len() > 1 && s == s.to_uppercase())
                    || generated.iter().any(|g| token.starts_with(g.as_str()))
                {
                    continue;
                }
                checked += 1;
                if !root.join(token).exists() {
                    problems.push(format!("{shown}:{line}: no such path `{token}`"));
                }
            }
        }
    }
    assert!(
        checked > 20,
        "only {checked} links and paths found: is the parser broken?"
    );
    assert!(
        problems.is_empty(),
        "the docs name what does not exist:\n{}",
        problems.join("\n")
    );
}

/// Every command block of the runbook says where it runs: executed by
/// `vm-prove` (and so by the test suite, `tests/tests/vm_prove.rs`), or on
/// the operator's workstation, or only on the real host and network. A
/// block with neither mark is one nobody has checked.
#[test]
fn every_command_block_of_the_runbook_is_run_or_marked() {
    let text = fs_err::read_to_string(repo().join("docs/install.md")).unwrap();
    let mut unmarked = Vec::new();
    let mut blocks = 0;
    let mut in_block = false;
    for (index, line) in text.lines().enumerate() {
        let Some(info) = line.trim_start().strip_prefix("```") else {
            continue;
        };
        if in_block {
            in_block = false;
            continue;
        }
        in_block = true;
        let language = info.split([' ', '{']).next().unwrap_or_default();
        if !matches!(language, "sh" | "bash" | "console" | "shell") {
            continue;
        }
        blocks += 1;
        let marked = info.contains("vm-prove=run")
            || info.contains("runs=workstation")
            || info.contains("runs=real-host");
        if !marked {
            unmarked.push(format!("docs/install.md:{}: {line}", index + 1));
        }
    }
    assert!(
        blocks >= 10,
        "only {blocks} command blocks found: is the parser broken?"
    );
    assert!(
        unmarked.is_empty(),
        "command blocks without `vm-prove=run`, `runs=workstation` or `runs=real-host`:\n{}",
        unmarked.join("\n")
    );
}
