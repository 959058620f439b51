//! The command-line conventions every binary shares (`tools/fromgit-cli`):
//! `--help` on stdout ending with the exit-code table, `--version`, and a
//! usage error (exit 2, nothing on stdout, the offending flag named) for an
//! unknown flag, for the binary and each of its subcommands.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Output;

use fromgit_e2e::{fromgit_bin, run};

const BINARIES: [&str; 5] = [
    "instance-extract",
    "cert-seal",
    "leak-scan",
    "closure-diff",
    "vm-prove",
];

fn call(binary: &str, args: &[&str]) -> Output {
    run(&fromgit_bin(binary), args, Path::new("."), &[], b"")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The names in the `Commands:` section of a help text.
fn commands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter(|line| !line.starts_with("   "))
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .filter(|name| name != "help")
        .collect()
}

#[test]
fn help_version_and_usage_errors() {
    for binary in BINARIES {
        let help = call(binary, &["--help"]);
        let stdout = text(&help.stdout);
        assert_eq!(help.status.code(), Some(0), "{binary} --help");
        assert!(
            stdout.contains("Usage:") && stdout.contains("Exit codes:"),
            "{binary} --help:\n{stdout}"
        );
        let subcommands = commands(&stdout);
        assert!(
            !subcommands.is_empty(),
            "{binary} lists no subcommand:\n{stdout}"
        );

        let version = call(binary, &["--version"]);
        assert_eq!(version.status.code(), Some(0), "{binary} --version");
        assert!(
            text(&version.stdout).starts_with(binary),
            "{binary} --version: {}",
            text(&version.stdout)
        );

        for prefix in
            std::iter::once(Vec::new()).chain(subcommands.iter().map(|s| vec![s.as_str()]))
        {
            let mut args = prefix.clone();
            args.push("--no-such-flag");
            let usage = call(binary, &args);
            assert_eq!(usage.status.code(), Some(2), "{binary} {args:?}");
            assert!(
                usage.stdout.is_empty(),
                "{binary} {args:?}: stdout must stay empty"
            );
            assert!(
                text(&usage.stderr).contains("--no-such-flag"),
                "{binary} {args:?}: {}",
                text(&usage.stderr)
            );
            let mut help_args = prefix.clone();
            help_args.push("--help");
            assert_eq!(
                call(binary, &help_args).status.code(),
                Some(0),
                "{binary} {help_args:?}"
            );
        }
    }
}
