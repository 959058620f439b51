//! The command tree of a fromgit binary, read from its `--help`.

use std::path::Path;

use crate::{fromgit_bin, run, text};

/// The names in the `Commands:` section of a help text, without `help`.
pub fn commands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter(|line| !line.starts_with("   "))
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .filter(|name| name != "help")
        .collect()
}

/// `binary <path…> --help`, asserted to succeed.
pub fn help(binary: &str, path: &[String]) -> String {
    let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
    args.push("--help");
    let output = run(&fromgit_bin(binary), &args, Path::new("."), &[], b"");
    assert!(
        output.status.success(),
        "`{binary} {}` failed: {}",
        args.join(" "),
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// Every command of `binary` at every level, parents before their
/// subcommands: `[]` (the binary itself), `["secrets"]`, `["secrets", "set"]`, …
pub fn command_tree(binary: &str) -> Vec<Vec<String>> {
    fn walk(binary: &str, path: &[String], out: &mut Vec<Vec<String>>) {
        let subcommands = commands(&help(binary, path));
        out.push(path.to_vec());
        for name in subcommands {
            let mut child = path.to_vec();
            child.push(name);
            walk(binary, &child, out);
        }
    }
    let mut out = Vec::new();
    walk(binary, &[], &mut out);
    out
}

/// The commands of `binary` that have no subcommand of their own.
pub fn leaf_commands(binary: &str) -> Vec<Vec<String>> {
    let tree = command_tree(binary);
    tree.iter()
        .filter(|path| {
            !tree
                .iter()
                .any(|other| other.len() > path.len() && other.starts_with(path))
        })
        .cloned()
        .collect()
}
